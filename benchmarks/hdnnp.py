"""HDNNP throughput and memory: energy + forces in float32 and float64.

Systems
-------
* periodic fcc Cu (a = 3.61 Å) with 256 / 2048 / 16384 atoms, R_c = 6 Å,
  8 radial (type 2) + 22 angular (20 wide type 9, 2 narrow type 3) symmetry
  functions, 2×25 tanh networks, scaling from the structure's own statistics;
* the four n2p2 example potentials (imported with :func:`jaxmlp.io.load_n2p2`)
  on their ``input.data`` structures, compared with n2p2's C++ throughput on
  this machine (energy + forces, float64, neighbour list included).

Every (system, dtype) runs in its own process, so peak memory (``ru_maxrss``)
belongs to that case alone.  Reported per case: graph build time (neighbour
list + triplets), compile time, warm energy+forces time (best of ``repeats``),
atoms/s with and without the graph build, graph build as a fraction of one
evaluation, peak RSS.

Usage::

    python benchmarks/hdnnp.py            # everything (16384 atoms takes long)
    python benchmarks/hdnnp.py --quick    # 256 and 2048 Cu + three n2p2 potentials

Results: ``benchmarks/results/hdnnp.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path

N2P2_REFERENCE_ATOMS_PER_S = {  # n2p2 C++ on this machine, energy+forces, float64, incl. neighbour list
    "H2O_RPBE-D3": {"1_thread": 2340, "2_threads": 3530},
    "Cu2S_PBE": {"1_thread": 2180, "2_threads": 3010},
    "Anisole_SCAN": {"1_thread": 152, "2_threads": 276},
    "DMABN_SCAN": {"1_thread": 3880},
}

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JAXMLP_SHARED", ROOT.parent / "shared")) / "data" / "n2p2"


def _cu_model_and_atoms(n_atoms: int):
    import jax
    from ase.build import bulk

    import jaxmlp
    from jaxmlp.descriptors import ACSF, angular_narrow, angular_set, radial_grid
    from jaxmlp.models import hdnnp

    reps = {256: (4, 4, 4), 2048: (8, 8, 8), 16384: (16, 16, 16)}[n_atoms]
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)
    atoms.rattle(0.05, seed=1)
    rc = 6.0
    fns = radial_grid(["Cu"], rc, 8) + angular_set(["Cu"], rc, etas=(0.0, 0.005), zetas=(1, 2, 4, 8, 16)) + [
        angular_narrow("Cu", ("Cu", "Cu"), 0.01, lam, 1.0, rc) for lam in (-1.0, 1.0)]
    assert len(fns) == 30
    # statistics on a small cell (the descriptor is local; values are the same per atom type of environment)
    small = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((4, 4, 4))
    small.rattle(0.05, seed=2)
    stats = ACSF(["Cu"], fns).statistics([jaxmlp.atoms_to_graph(small, rc, triplets=True)])
    model = hdnnp(["Cu"], fns, hidden=(25, 25), activation="tanh", cutoff_type="poly2",
                  scaling={"mode": "scalecenter", "stats": stats}, e0={"Cu": -3.5})
    params = model.init(jax.random.PRNGKey(0))
    return model, params, atoms


def _n2p2_model_and_atoms(name: str):
    from ase.units import Bohr, Hartree

    from jaxmlp.data import read
    from jaxmlp.io import load_n2p2

    L, U = (1.0, 1.0) if name == "Cu2S_PBE" else (Bohr, Hartree)
    model, params = load_n2p2(SHARED / name, L, U)
    atoms = read(SHARED / name / "input.data", format="n2p2", length_unit=L, energy_unit=U)[0]
    return model, params, atoms


def _run_case(kind: str, arg, dtype: str, repeats: int, queue):
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp
    import numpy as np

    import jaxmlp

    try:
        model, params, atoms = _cu_model_and_atoms(arg) if kind == "cu" else _n2p2_model_and_atoms(arg)
        ftype = jnp.float64 if dtype == "float64" else jnp.float32
        params = jax.tree.map(lambda x: jnp.asarray(x, ftype), params)
        builds = []
        for _ in range(2):
            t0 = time.perf_counter()
            g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
            builds.append(time.perf_counter() - t0)
        npf = np.float64 if dtype == "float64" else np.float32
        g = g._replace(nodes={**g.nodes, "positions": g.nodes["positions"].astype(npf)},
                       globals={**g.globals, "cell": g.globals["cell"].astype(npf)})
        g = jax.device_put(g)
        ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
        t0 = time.perf_counter()
        e, f = jax.block_until_ready(ef(model, params, g))
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(ef(model, params, g))
            times.append(time.perf_counter() - t0)
        t_ef = min(times)
        t_build = min(builds)
        n = len(atoms)
        queue.put({
            "system": f"fcc Cu {n}" if kind == "cu" else arg,
            "dtype": dtype,
            "n_atoms": n,
            "n_edges": int(g.n_edge[0]),
            "n_triplets": int(len(g.globals["triplets"])),
            "n_symmetry_functions": list(model.extras["descriptor"].n_functions),
            "graph_build_s": t_build,
            "compile_plus_first_call_s": compile_s,
            "energy_forces_s": t_ef,
            "energy_forces_all_s": times,
            "atoms_per_s": n / t_ef,
            "atoms_per_s_incl_graph_build": n / (t_ef + t_build),
            "graph_build_fraction_of_eval": t_build / t_ef,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "energy_eV": float(e[0]),
            "max_abs_force": float(jnp.abs(f).max()),
        })
    except Exception as err:  # noqa: BLE001 - report and carry on with other cases
        queue.put({"system": str(arg), "dtype": dtype, "error": f"{type(err).__name__}: {err}"})


def run(cases, repeats: int, timeout: float):
    ctx = mp.get_context("spawn")
    results = []
    for kind, arg in cases:
        for dtype in ("float32", "float64"):
            q = ctx.Queue()
            p = ctx.Process(target=_run_case, args=(kind, arg, dtype, repeats, q))
            p.start()
            try:
                res = q.get(timeout=timeout)
            except Exception:  # noqa: BLE001 - timeout
                res = {"system": str(arg), "dtype": dtype, "error": f"timed out after {timeout} s"}
            p.join(5)
            if p.is_alive():
                p.terminate()
            if kind == "n2p2" and arg in N2P2_REFERENCE_ATOMS_PER_S:
                res["n2p2_cpp_atoms_per_s"] = N2P2_REFERENCE_ATOMS_PER_S[arg]
                if "atoms_per_s_incl_graph_build" in res and dtype == "float64":
                    ref = N2P2_REFERENCE_ATOMS_PER_S[arg]
                    res["ratio_to_n2p2_best"] = res["atoms_per_s_incl_graph_build"] / max(ref.values())
            results.append(res)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()
                              if k not in ("energy_forces_all_s",)}), flush=True)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256/2048 Cu and the smaller n2p2 potentials only")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hdnnp.json"))
    args = ap.parse_args(argv)
    if args.quick:
        cases = [("cu", 256), ("cu", 2048), ("n2p2", "DMABN_SCAN"), ("n2p2", "Cu2S_PBE"), ("n2p2", "H2O_RPBE-D3")]
        repeats, timeout = args.repeats or 2, 600
    else:
        cases = [("cu", 256), ("cu", 2048), ("cu", 16384)] + [("n2p2", k) for k in N2P2_REFERENCE_ATOMS_PER_S]
        repeats, timeout = args.repeats or 3, 3600
    t0 = time.time()
    results = run(cases, repeats, timeout)
    import jax

    out = {
        "benchmark": "hdnnp energy+forces",
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                    "jax": jax.__version__, "device": "cpu"},
        "wall_s": time.time() - t0,
        "results": results,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
