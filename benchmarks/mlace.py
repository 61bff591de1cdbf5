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

Usage::

    python benchmarks/mlace.py                  # everything (several minutes)
    python benchmarks/mlace.py --quick          # 1-2 layers, Cu only, float64
    taskset -c 0 python benchmarks/mlace.py --reference-python /tmp/ref-venv/bin/python   # one core
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
PACE_SCRIPT = r"""
import json, sys, time, statistics
import numpy as np
from ase.build import bulk
from pyace import create_multispecies_basis_config, PyACECalculator
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
atoms.calc = PyACECalculator(bconf)
t = time.perf_counter(); atoms.get_forces(); first = time.perf_counter() - t
times = []
for k in range(repeat):
    atoms.positions[0, 0] += 1e-4
    t = time.perf_counter(); atoms.get_potential_energy(); atoms.get_forces(); times.append(time.perf_counter() - t)
med = statistics.median(times)
print("RESULT " + json.dumps({"code": "python-ace C++ PACE evaluator", "n_functions": n_funcs, "rcut": 6.0, "n_atoms": len(atoms),
      "float64": {"first_call_s": first, "time_s": med, "atoms_per_s": len(atoms) / med}}))
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
    res["machine"]["loadavg_end"] = os.getloadavg()
    out = out or str(ROOT / "benchmarks" / "results" / ("mlace_quick.json" if quick else "mlace.json"))
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(out).write_text(json.dumps(res, indent=2))
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
    a = ap.parse_args()
    main(quick=a.quick, layers=tuple(a.layers), dtypes=tuple(a.dtypes), repeat=a.repeat, out=a.out, reference_python=a.reference_python)
