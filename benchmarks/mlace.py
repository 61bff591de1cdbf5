"""ml-ACE energy+forces throughput (atoms/s) versus number of layers.

Systems: periodic fcc Cu (2048 atoms, R_c = 6 Å) and batches of rMD17
ethanol molecules (R_c = 4 Å); 1-4 layers; float32 and float64, in one run.
Timing: jitted ``jaxmlp.energy_and_forces`` after one compile call, median of
``--repeat`` calls (``block_until_ready``).  Results go to
``benchmarks/results/mlace.json``.

Usage::

    python benchmarks/mlace.py                  # everything (a few minutes on 2 cores)
    python benchmarks/mlace.py --quick          # 1-2 layers, Cu only, float64
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

BASIS = dict(max_body_order=3, l_max=[0, 3, 2], n_max=[8, 6, 4], k_max=3, n_radial=8)
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
    return sum(len(a) for a in frames), g


def acejax_reference(python: str, totaldegree: int = 13, repeat: int = 3) -> dict:
    """Time ace-jax (order 3, ``totaldegree`` → 286 functions at 13) on the same Cu cell.

    Parameters
    ----------
    python : str
        Interpreter of an environment with ace-jax installed.
    """
    import subprocess

    proc = subprocess.run([python, "-c", ACEJAX_SCRIPT, str(totaldegree), str(repeat)], capture_output=True, text=True, timeout=1200)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr or proc.stdout)[-2000:]}


def main(quick=False, layers=(1, 2, 3, 4), dtypes=("float64", "float32"), repeat=5, out=None, acejax_python=None):
    """Run the benchmark; return the results dict (also written as JSON).

    ``acejax_python``: interpreter of a scratch venv with ace-jax, timed on
    the same Cu cell right after ours (same machine load).
    """
    if quick:
        layers, dtypes, repeat = (1, 2), ("float64",), 3
    res = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__, "backend": jax.default_backend(),
                    "loadavg_start": os.getloadavg()},
        "basis": BASIS,
        "runs": [],
    }
    atoms, g_cu = cu_graph()
    n_eth, g_eth = ethanol_graph()
    systems = [("Cu fcc periodic 2048 atoms, Rc=6", ["Cu"], 6.0, g_cu, len(atoms))]
    if g_eth is not None and not quick:
        systems.append(("ethanol x64 (rMD17), Rc=4", ["C", "H", "O"], 4.0, g_eth, n_eth))
    for name, elements, rc, g, n in systems:
        n_edges = int(np.sum(np.asarray(g.edges["mask"])))
        for L in layers:
            model = mlace(elements, cutoff=rc, n_layers=L, **BASIS)
            for dt in dtypes:
                r = time_model(model, g, n, jnp.dtype(dt), repeat=repeat)
                run = {"system": name, "n_atoms": n, "n_edges": n_edges, "n_layers": L, "dtype": dt,
                       "basis_per_layer": basis_sizes(model), **r}
                print(json.dumps(run), flush=True)
                res["runs"].append(run)
    if acejax_python:
        res["acejax"] = acejax_reference(acejax_python, repeat=repeat)
        print("ace-jax:", json.dumps(res["acejax"]), flush=True)
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
    ap.add_argument("--acejax-python", default=None, help="python of a venv with ace-jax, for the reference timing")
    a = ap.parse_args()
    main(quick=a.quick, layers=tuple(a.layers), dtypes=tuple(a.dtypes), repeat=a.repeat, out=a.out, acejax_python=a.acejax_python)
