"""ml-ACE energy+forces throughput (atoms/s) versus number of layers.

Systems: periodic fcc Cu (2048 atoms, R_c = 6 Å) and batches of rMD17
ethanol molecules (R_c = 4 Å); 1-4 layers; float32 and float64, side by side
in one run with the default HDNNP of ``jaxmlp-bench`` and a 1-layer ml-ACE on
the edge-list path (no ``max_neighbors``).  Timing: jitted
``jaxmlp.energy_and_forces`` after one compile call, median of ``--repeat``
calls (``block_until_ready``).  Results go to ``benchmarks/results/mlace.json``.

References (optional, ``--reference-python``: the interpreter of a scratch
venv with ``pip install ace-jax python-ace``; neither is a jaxmlp
dependency): a linear ACE of ace-jax (order 3, total degree 13: 286
functions) and the C++ PACE evaluator of python-ace with the same 252
functions per layer as our default basis (``nradmax_by_orders=[8,6,4]``,
``lmax_by_orders=[0,3,2]``), both on the same Cu cell, run right after ours.

Same work on both sides (``same_work`` in the JSON, the table of
``docs/mlace.md``): *compute only* = our jitted call on a prebuilt graph vs
PACE's ``compute`` on a prebuilt atomic environment; *incl. neighbour list* =
``atoms_to_graph`` + our call vs pyace's ``aseatoms_to_atomicenvironment`` +
``compute``, new positions each call.  PACE runs with ``OMP_NUM_THREADS=1``
and both inherit the caller's CPU affinity, so ``taskset -c 0`` compares one
core with one core.  (ace-jax reuses its neighbour list: compute only, and
its basis is not the same size.)

Usage::

    python benchmarks/mlace.py                  # everything (several minutes)
    python benchmarks/mlace.py --quick          # 1-2 layers, Cu only, float64
    # the reference run (one core each, same cell, same 252-function basis); writes benchmarks/results/mlace.json:
    taskset -c 0 python benchmarks/mlace.py --reference-python /tmp/ref-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from ase.build import bulk  # noqa: E402

import jaxmlp  # noqa: E402
from jaxmlp.graph import max_degree  # noqa: E402
from jaxmlp.models import mlace  # noqa: E402
from jaxmlp.models.mlace import basis_sizes  # noqa: E402

# Timing script for ace-jax (run by a separate interpreter, e.g. a scratch venv
# with ``pip install ace-jax``; ace-jax is not a jaxmlp dependency).  Same Cu
# structure; the neighbour list is built once (skin) and reused, as our graph is.
ACEJAX_SCRIPT = r"""
import json, sys, time, statistics
import jax
jax.config.update("jax_enable_x64", True)
from ase.build import bulk
from ace_jax.basis.model import build_model
from ace_jax import ACECalculator
deg, repeat = int(sys.argv[1]), int(sys.argv[2])
b = build_model(["Cu"], 3, deg, rcut=6.0)
atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(8)
atoms.rattle(0.05, seed=1)
out = {"n_B": int(b.meta["n_B"]), "totaldegree": deg, "order": 3, "rcut": 6.0, "n_atoms": len(atoms)}
for dt in ("float64", "float32"):
    calc = ACECalculator(*b.eval_pair(), dtype=dt)
    atoms.calc = calc
    t = time.perf_counter(); atoms.get_forces(); first = time.perf_counter() - t
    times = []
    for k in range(repeat):
        atoms.positions[0, 0] += 1e-4  # new positions: recompute, neighbour list reused
        t = time.perf_counter(); atoms.get_potential_energy(); atoms.get_forces(); times.append(time.perf_counter() - t)
    med = statistics.median(times)
    out[dt] = {"first_call_s": first, "time_s": med, "atoms_per_s": len(atoms) / med}
print("RESULT " + json.dumps(out))
"""

# C++ PACE evaluator (python-ace), same basis size as our default per layer, random coefficients.
# Same work as ours, on one structure: "compute only" evaluates a prebuilt atomic environment
# (neighbour list built once, as our prebuilt graph); "incl. neighbour list" rebuilds it for new
# positions each call (pyace's aseatoms_to_atomicenvironment, as our atoms_to_graph).  Both the
# B-basis evaluator and the C-tilde evaluator (what LAMMPS pair_style pace runs from a .yace).
PACE_SCRIPT = r"""
import json, sys, time, statistics
import numpy as np
from ase.build import bulk
from pyace import create_multispecies_basis_config, PyACECalculator
from pyace.basis import ACEBBasisSet
repeat = int(sys.argv[1])
cfg = {"deltaSplineBins": 0.001, "elements": ["Cu"],
       "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
       "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 6.0, "dcut": 0.01, "NameOfCutoffFunction": "cos"}},
       "functions": {"ALL": {"nradmax_by_orders": [8, 6, 4], "lmax_by_orders": [0, 3, 2]}}}
bconf = create_multispecies_basis_config(cfg)
n_funcs = sum(len(b.funcspecs) for b in bconf.funcspecs_blocks)
c = bconf.get_all_coeffs()
bconf.set_all_coeffs(np.random.default_rng(0).normal(size=len(c)) * 0.01)
atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(8)
atoms.rattle(0.05, seed=1)
out = {"code": "python-ace C++ PACE evaluator", "n_functions": n_funcs, "rcut": 6.0, "n_atoms": len(atoms)}
def med(fn):
    fn()
    ts = []
    for k in range(repeat):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)
for name, basis in (("B", bconf), ("ctilde", ACEBBasisSet(bconf).to_ACECTildeBasisSet())):
    calc = PyACECalculator(basis)
    ae = calc.get_atomic_env(atoms)
    t_c = med(lambda: calc.ace.compute(ae, compute_projections=False))
    def incl():
        atoms.positions[0, 0] += 1e-5
        calc.ace.compute(calc.get_atomic_env(atoms), compute_projections=False)
    t_nl = med(incl)
    out[name] = {"compute_only_s": t_c, "compute_only_atoms_per_s": len(atoms) / t_c,
                 "incl_nl_s": t_nl, "incl_nl_atoms_per_s": len(atoms) / t_nl, "energy": float(calc.ace.energy)}
best = max(("B", "ctilde"), key=lambda k: out[k]["compute_only_atoms_per_s"])
out["float64"] = {"evaluator": best, "compute_only_atoms_per_s": out[best]["compute_only_atoms_per_s"],
                  "incl_nl_atoms_per_s": max(out[k]["incl_nl_atoms_per_s"] for k in ("B", "ctilde"))}
print("RESULT " + json.dumps(out))
"""

BASIS = dict(correlation_order=3, l_max=[0, 3, 2], n_max=[8, 6, 4], k_max=3, n_radial=8)
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cast(tree, dtype):
    return jax.tree_util.tree_map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _graph_dtype(g, dtype):
    return g._replace(
        nodes={**g.nodes, "positions": jnp.asarray(g.nodes["positions"], dtype)},
        globals={**g.globals, "cell": jnp.asarray(g.globals["cell"], dtype)},
    )


def time_model(model, graph, n_atoms, dtype, repeat=5, seed=0):
    """Compile time (s) and median wall time (s) of one energy+forces call."""
    params = _cast(model.init(jax.random.PRNGKey(seed), graph), dtype)
    g = _graph_dtype(graph, dtype)
    ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
    t = time.perf_counter()
    jax.block_until_ready(ef(model, params, g))
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(ef(model, params, g))
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"compile_s": round(compile_s, 2), "time_s": med, "atoms_per_s": n_atoms / med}


def time_model_incl_graph(model, atoms, cutoff, dtype, repeat=5, seed=0):
    """Median wall time (s) of graph build (neighbour list) + one energy+forces call, new positions each call."""
    atoms = atoms.copy()
    g0 = jaxmlp.atoms_to_graph(atoms, cutoff, triplets=model.needs_triplets)
    params = _cast(model.init(jax.random.PRNGKey(seed), g0), dtype)
    ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)

    def call():
        atoms.positions[0, 0] += 1e-5  # same edge count: no recompilation
        g = _graph_dtype(jaxmlp.atoms_to_graph(atoms, cutoff, triplets=model.needs_triplets), dtype)
        return jax.block_until_ready(ef(model, params, g))

    call()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"incl_graph_time_s": med, "incl_graph_atoms_per_s": len(atoms) / med}


def cu_graph(cutoff=6.0, n_rep=8):
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(n_rep)
    atoms.rattle(0.05, seed=1)
    return atoms, jaxmlp.atoms_to_graph(atoms, cutoff)


def ethanol_graph(batch=64, cutoff=4.0):
    import ase.io

    shared = pathlib.Path(os.environ.get("JAXMLP_SHARED", ROOT.parent / "shared")) / "data" / "datasets" / "ethanol_rmd17.extxyz"
    if not shared.exists():
        return None, None
    frames = ase.io.read(shared, f":{batch}")
    g = jaxmlp.batch_graphs([jaxmlp.atoms_to_graph(a, cutoff) for a in frames])
    return frames, g


def reference(python: str, script: str, *args) -> dict:
    """Run a reference timing ``script`` in another interpreter; its ``RESULT`` line as a dict."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([python, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=1200, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr or proc.stdout)[-2000:]}


def same_work_table(res: dict) -> dict:
    """jaxmlp ml-ACE (dense layout) against PACE on the same Cu cell, both "compute only" and "incl. neighbour list".

    Ratios are jaxmlp atoms/s over PACE float64 atoms/s (PACE's faster evaluator), measured in this run; missing
    (None) when the reference did not run.  PACE has one layer: L >= 2 rows compare a deeper ml-ACE with the same
    1-layer PACE (cost per layer).
    """
    pace = res.get("pace") or {}
    ref = pace.get("float64") if "error" not in pace else None
    rows = []
    for run in res["runs"]:
        if not (run["system"].startswith("Cu") and run["model"].startswith("ml-ACE L=") and "edge-list" not in run["model"]):
            continue
        row = {"model": run["model"], "dtype": run["dtype"], "compute_only_atoms_per_s": run["atoms_per_s"],
               "incl_nl_atoms_per_s": run.get("incl_graph_atoms_per_s"),
               "pace_compute_only_atoms_per_s": None if ref is None else ref["compute_only_atoms_per_s"],
               "pace_incl_nl_atoms_per_s": None if ref is None else ref["incl_nl_atoms_per_s"]}
        row["vs_pace_compute_only"] = None if ref is None else run["atoms_per_s"] / ref["compute_only_atoms_per_s"]
        row["vs_pace_incl_nl"] = None if ref is None or row["incl_nl_atoms_per_s"] is None else (
            row["incl_nl_atoms_per_s"] / ref["incl_nl_atoms_per_s"])
        rows.append(row)
    return {"reference": None if ref is None else {"code": pace.get("code"), "evaluator": ref["evaluator"], "n_functions": pace.get("n_functions")},
            "note": "same cores for both (the whole script runs under the caller's taskset; OMP_NUM_THREADS=1 for PACE unless set); "
                    "goal >= 1.5x PACE per core both ways",
            "rows": rows}


def markdown_table(res: dict) -> str:
    """The same-work table of ``docs/mlace.md`` from a results dict (``same_work``)."""
    sw = res.get("same_work") or same_work_table(res)
    lines = ["| model | dtype | compute only (atoms/s) | × PACE | incl. neighbour list (atoms/s) | × PACE |", "|---|---|---|---|---|---|"]

    def f(x, fmt):
        return "—" if x is None else format(x, fmt)

    for r in sw["rows"]:
        lines.append(f"| {r['model']} | {r['dtype']} | {f(r['compute_only_atoms_per_s'], ',.0f')} | {f(r['vs_pace_compute_only'], '.2f')} | "
                     f"{f(r['incl_nl_atoms_per_s'], ',.0f')} | {f(r['vs_pace_incl_nl'], '.2f')} |")
    ref = sw["rows"][0] if sw["rows"] else {}
    if sw.get("reference"):
        lines.append(f"| PACE C++ ({sw['reference']['evaluator']} evaluator), {sw['reference']['n_functions']} functions | float64 | "
                     f"{f(ref.get('pace_compute_only_atoms_per_s'), ',.0f')} | 1 | {f(ref.get('pace_incl_nl_atoms_per_s'), ',.0f')} | 1 |")
    return "\n".join(lines)


def main(quick=False, layers=(1, 2, 3, 4), dtypes=("float64", "float32"), repeat=5, out=None, reference_python=None):
    """Run the benchmark; return the results dict (also written as JSON).

    ``reference_python``: interpreter of a scratch venv with ace-jax and
    python-ace, timed on the same Cu cell right after ours (same machine load).
    """
    if quick:
        layers, dtypes, repeat = (1, 2), ("float64",), 3
    res = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__, "backend": jax.default_backend(),
                    "loadavg_start": os.getloadavg()},
        "basis": BASIS,
        "quick": bool(quick),
        "command": "python benchmarks/mlace.py" + (" --quick" if quick else "") + (" --reference-python PY" if reference_python else ""),
        "runs": [],
    }
    atoms_cu, g_cu = cu_graph()
    atoms_cu = [atoms_cu]
    frames_eth, g_eth = ethanol_graph()
    systems = [("Cu fcc periodic 2048 atoms, Rc=6", ["Cu"], 6.0, g_cu, len(atoms_cu[0]))]
    n_eth = sum(len(a) for a in frames_eth) if frames_eth else 0
    if g_eth is not None and not quick:
        systems.append(("ethanol x64 (rMD17), Rc=4", ["C", "H", "O"], 4.0, g_eth, n_eth))
    from jaxmlp.bench.factory import make_model

    for name, elements, rc, g, n in systems:
        n_edges = int(np.sum(np.asarray(g.edges["mask"])))
        k = max_degree(atoms_cu if "Cu" in name else frames_eth, rc)
        zs = mlace(elements, rc).elements
        variants = [(f"ml-ACE L={L}", L, mlace(elements, cutoff=rc, n_layers=L, max_neighbors=k, **BASIS)) for L in layers]
        variants.append(("ml-ACE L=1 edge-list path", 1, mlace(elements, cutoff=rc, n_layers=1, **BASIS)))
        hd = make_model("hdnnp", zs, rc)
        variants.append(("HDNNP (jaxmlp-bench default)", None, hd))
        for label, L, model in variants:
            graph = g if not model.needs_triplets else jaxmlp.batch_graphs(
                [jaxmlp.atoms_to_graph(a, rc, triplets=True) for a in (atoms_cu if "Cu" in name else frames_eth)])
            for dt in dtypes:
                r = time_model(model, graph, n, jnp.dtype(dt), repeat=repeat)
                if "Cu" in name and label.startswith("ml-ACE"):  # same work as PACE's "incl. neighbour list"
                    r.update(time_model_incl_graph(model, atoms_cu[0], rc, jnp.dtype(dt), repeat=repeat))
                run = {"system": name, "model": label, "n_atoms": n, "n_edges": n_edges, "n_layers": L, "dtype": dt,
                       "max_neighbors": model.config.get("max_neighbors"),
                       "basis_per_layer": basis_sizes(model) if model.name == "mlace" else None, **r}
                print(json.dumps(run), flush=True)
                res["runs"].append(run)
    if reference_python:
        res["acejax"] = reference(reference_python, ACEJAX_SCRIPT, 13, repeat)
        print("ace-jax:", json.dumps(res["acejax"]), flush=True)
        res["pace"] = reference(reference_python, PACE_SCRIPT, repeat)
        print("PACE:", json.dumps(res["pace"]), flush=True)
    res["same_work"] = same_work_table(res)
    for row in res["same_work"]["rows"]:
        print(json.dumps(row), flush=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    res["machine"]["affinity"] = sorted(os.sched_getaffinity(0))
    out = out or str(ROOT / "benchmarks" / "results" / ("mlace_quick.json" if quick else "mlace.json"))
    from jaxmlp.utils import write_json

    write_json(out, res, indent=2)
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="ml-ACE energy+forces throughput")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--reference-python", default=None, help="python of a venv with ace-jax and python-ace, for reference timings")
    ap.add_argument("--table", metavar="JSON", default=None, help="print the docs' same-work table of a results file and exit")
    a = ap.parse_args()
    if a.table:
        print(markdown_table(json.loads(pathlib.Path(a.table).read_text())))
        raise SystemExit(0)
    main(quick=a.quick, layers=tuple(a.layers), dtypes=tuple(a.dtypes), repeat=a.repeat, out=a.out, reference_python=a.reference_python)
