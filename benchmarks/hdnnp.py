"""HDNNP throughput and memory: energy + forces, jaxmlp and n2p2 in the same run.

Systems
-------
* periodic fcc Cu (a = 3.61 Å) with 256 / 2048 / 16384 atoms, R_c = 6 Å,
  8 radial (type 2) + 22 angular (20 wide type 9, 2 narrow type 3) symmetry
  functions, 2×25 tanh networks, scaling from the structure's own statistics;
* the four n2p2 example potentials (imported with :func:`jaxmlp.io.load_n2p2`)
  on their ``input.data`` structures.  When ``N2P2_BENCH`` names n2p2's
  ``nnp_bench`` (or ``nnp_bench_omp``; built by ``shared/tools/n2p2/build.sh``)
  the C++ code is timed **in the same run, on the same cores** (``taskset``;
  ``OMP_NUM_THREADS`` = number of cores for the OpenMP build) and both numbers
  and their ratio are written.  Without it the n2p2 figures and the ratio are
  ``null`` (never read from a stored figure).

jaxmlp evaluates the descriptor in the dense ``[atoms, K]`` layout by default
(``max_neighbors`` = :func:`jaxmlp.graph.max_degree` of the structure, graph
without triplets; ``--layout triplets`` for the triplet list, which is pruned
by the model's ``extras["triplet_filter"]`` as n2p2 prunes: only triplets
that can contribute; ``--layout both`` runs each case in both layouts).

Every (system, dtype) runs in its own process pinned to ``--cores``, so peak
memory (``ru_maxrss``) belongs to that case alone.  Reported per case: graph
build time (neighbour list + triplets), compile time, energy+forces time
(median and best of ``repeats``), atoms/s **compute only** (prebuilt graph) and
**including the neighbour list** (graph build + evaluation), peak RSS.  For n2p2
``nnp_bench`` reports the same two figures (its neighbour list is part of its
median total; "compute only" is total − neighbour list).  Ratios are
``jaxmlp / n2p2`` of atoms/s from the medians (> 1: jaxmlp faster).

Usage::

    N2P2_BENCH=/path/nnp_bench_omp python benchmarks/hdnnp.py --n2p2-only --cores 0,1
    python benchmarks/hdnnp.py --quick    # 256 and 2048 Cu + three n2p2 potentials

Results: ``benchmarks/results/hdnnp.json`` (``--out`` to change).  The docs
table is printed from that file (nothing is run) by::

    python benchmarks/hdnnp.py --table benchmarks/results/hdnnp.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

N2P2_SYSTEMS = ("H2O_RPBE-D3", "Cu2S_PBE", "Anisole_SCAN", "DMABN_SCAN")

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


def _with_layout(model, atoms, layout: str):
    """The same model in the requested descriptor layout (``dense``: ``max_neighbors`` from the structure)."""
    if layout == "triplets":
        return model, None
    from jaxmlp.graph import max_degree
    from jaxmlp.models import hdnnp

    k = max_degree([atoms], model.cutoff)
    return hdnnp(**{**model.config, "max_neighbors": k}), k


def _run_case(kind: str, arg, dtype: str, repeats: int, cores, queue, layout: str = "dense"):
    if cores:
        os.sched_setaffinity(0, cores)
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp
    import numpy as np

    import jaxmlp
    from jaxmlp.utils import cast_floats

    try:
        model, params, atoms = _cu_model_and_atoms(arg) if kind == "cu" else _n2p2_model_and_atoms(arg)
        model, k = _with_layout(model, atoms, layout)
        ftype = jnp.float64 if dtype == "float64" else jnp.float32
        params = cast_floats(params, ftype)
        ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
        tfilter = model.extras.get("triplet_filter")  # n2p2's pruning: only triplets that can contribute
        builds = []
        for _ in range(max(2, repeats)):
            t0 = time.perf_counter()
            g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets, triplet_filter=tfilter)
            builds.append(time.perf_counter() - t0)
        g = jax.device_put(cast_floats(g, ftype))
        t0 = time.perf_counter()
        e, f = jax.block_until_ready(ef(model, params, g))
        compile_s = time.perf_counter() - t0
        times, totals = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(ef(model, params, g))
            times.append(time.perf_counter() - t0)
        for _ in range(repeats):  # the whole job: Atoms → graph → energy + forces on the host
            t0 = time.perf_counter()
            gg = cast_floats(jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets, triplet_filter=tfilter), ftype)
            ee, ff = ef(model, params, gg)
            np.asarray(ff)
            totals.append(time.perf_counter() - t0)
        n = len(atoms)
        t_ef, t_tot = float(np.median(times)), float(np.median(totals))
        queue.put({
            "system": f"fcc Cu {n}" if kind == "cu" else arg,
            "dtype": dtype,
            "layout": layout,
            "max_neighbors": k,
            "n_atoms": n,
            "n_edges": int(g.n_edge[0]),
            "n_triplets": int(len(g.globals["triplets"])),
            "n_symmetry_functions": list(model.extras["descriptor"].n_functions),
            "graph_build_s": float(np.median(builds)),
            "compile_plus_first_call_s": compile_s,
            "energy_forces_median_s": t_ef,
            "energy_forces_min_s": min(times),
            "energy_forces_all_s": times,
            "incl_neighbour_list_median_s": t_tot,
            "incl_neighbour_list_all_s": totals,
            "atoms_per_s_compute_only": n / t_ef,
            "atoms_per_s_incl_neighbour_list": n / t_tot,
            "graph_build_fraction": float(np.median(builds)) / t_tot,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "energy_eV": float(e[0]),
            "max_abs_force": float(jnp.abs(f).max()),
        })
    except Exception as err:  # noqa: BLE001 - report and carry on with other cases
        queue.put({"system": str(arg), "dtype": dtype, "error": f"{type(err).__name__}: {err}"})


def run_n2p2(name: str, repeats: int, cores, timeout: float) -> dict | None:
    """Time n2p2's ``nnp_bench`` on ``name`` (same cores); None without ``N2P2_BENCH``."""
    exe = os.environ.get("N2P2_BENCH")
    if not exe:
        return None
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(len(cores) if cores else os.cpu_count())
    cmd = [exe, str(SHARED / name), str(repeats), name]
    if cores:
        cmd = ["taskset", "-c", ",".join(map(str, cores))] + cmd
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=True).stdout
    except (subprocess.SubprocessError, OSError) as err:
        return {"error": f"{type(err).__name__}: {err}", "command": " ".join(cmd)}
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return {"error": "nnp_bench printed no RESULT line", "command": " ".join(cmd)}
    res = json.loads(lines[-1][len("RESULT "):])
    res["command"] = " ".join(cmd) + f"  (OMP_NUM_THREADS={env['OMP_NUM_THREADS']})"
    res["atoms_per_s_compute_only"] = res["n_atoms"] / (res["median_total_s"] - res["median_nl_s"])
    res["atoms_per_s_incl_neighbour_list"] = res["n_atoms"] / res["median_total_s"]
    return res


def run(cases, repeats: int, timeout: float, cores, dtypes=("float32", "float64"), layout: str = "dense"):
    layouts = ("dense", "triplets") if layout == "both" else (layout,)
    ctx = mp.get_context("spawn")
    results = []
    for kind, arg in cases:
        ref = run_n2p2(arg, max(repeats, 5), cores, timeout) if kind == "n2p2" else None
        for dtype, layout in [(d, lay) for d in dtypes for lay in layouts]:
            q = ctx.Queue()
            p = ctx.Process(target=_run_case, args=(kind, arg, dtype, repeats, cores, q, layout))
            p.start()
            try:
                res = q.get(timeout=timeout)
            except Exception:  # noqa: BLE001 - timeout
                res = {"system": str(arg), "dtype": dtype, "error": f"timed out after {timeout} s"}
            p.join(5)
            if p.is_alive():
                p.terminate()
            if kind == "n2p2":
                res["n2p2"] = ref
                ok = ref is not None and "error" not in ref and "error" not in res
                for what in ("compute_only", "incl_neighbour_list"):
                    key = f"atoms_per_s_{what}"
                    res[f"ratio_to_n2p2_{what}"] = res[key] / ref[key] if ok else None
                if ok:  # nnp_bench prints the energy in the potential's own unit
                    from ase.units import Hartree

                    unit = 1.0 if arg == "Cu2S_PBE" else Hartree
                    res["energy_minus_n2p2_eV"] = res["energy_eV"] - ref["energy"] * unit
            results.append(res)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()
                              if not k.endswith("_all_s")}), flush=True)
    return results


def table(path) -> str:
    """The markdown speed table of a results file (rows with n2p2 ratios; the docs table)."""
    d = json.loads(Path(path).read_text())
    fmt = lambda x: "–" if x is None else f"{x:,.0f}"  # noqa: E731
    rat = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731
    lines = ["| potential | jaxmlp dtype | atoms | jaxmlp layout (triplets) | jaxmlp compute | n2p2 f64 compute | ratio "
             "| jaxmlp incl. NL | n2p2 f64 incl. NL | ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["results"]:
        if "error" in r:
            lines.append(f"| {r['system']} | {r['dtype']} | – | error: {r['error']} | | | | | | |")
            continue
        ref = r.get("n2p2") or {}
        lay = f"dense, K = {r['max_neighbors']}" if r["layout"] == "dense" else f"pruned triplets ({r['n_triplets']:,})"
        lines.append(f"| {r['system']} | {r['dtype']} | {r['n_atoms']} | {lay} | {fmt(r['atoms_per_s_compute_only'])} "
                     f"| {fmt(ref.get('atoms_per_s_compute_only'))} | {rat(r.get('ratio_to_n2p2_compute_only'))} "
                     f"| {fmt(r['atoms_per_s_incl_neighbour_list'])} | {fmt(ref.get('atoms_per_s_incl_neighbour_list'))} "
                     f"| {rat(r.get('ratio_to_n2p2_incl_neighbour_list'))} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=None, metavar="JSON", help="print the markdown table of a results file and exit")
    ap.add_argument("--quick", action="store_true", help="256/2048 Cu and the smaller n2p2 potentials only")
    ap.add_argument("--n2p2-only", action="store_true", help="only the four n2p2 potentials")
    ap.add_argument("--systems", default=None, help="comma-separated n2p2 potentials (with --n2p2-only)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--cores", default=None, help="cores for both codes, e.g. 0,1 (default: all)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--layout", choices=("dense", "triplets", "both"), default="dense",
                    help="descriptor layout: dense [atoms, K] tiles with K = max_degree of the structure (default), "
                         "or the triplet list (pruned by the model's triplet filter, as n2p2), or both")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hdnnp.json"))
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    cores = [int(c) for c in args.cores.split(",")] if args.cores else None
    if args.n2p2_only:
        names = args.systems.split(",") if args.systems else list(N2P2_SYSTEMS)
        cases = [("n2p2", k) for k in names]
        repeats, timeout = args.repeats or 5, 1800
    elif args.quick:
        cases = [("cu", 256), ("cu", 2048), ("n2p2", "DMABN_SCAN"), ("n2p2", "Cu2S_PBE"), ("n2p2", "H2O_RPBE-D3")]
        repeats, timeout = args.repeats or 2, 600
    else:
        cases = [("cu", 256), ("cu", 2048), ("cu", 16384)] + [("n2p2", k) for k in N2P2_SYSTEMS]
        repeats, timeout = args.repeats or 3, 3600
    t0 = time.time()
    load0 = os.getloadavg()
    results = run(cases, repeats, timeout, cores, tuple(args.dtypes.split(",")), args.layout)
    import jax

    from jaxmlp.utils import write_json

    out = {
        "benchmark": "hdnnp energy+forces, jaxmlp vs n2p2 nnp_bench in the same run",
        "command": " ".join([f"N2P2_BENCH={os.environ['N2P2_BENCH']}"] if os.environ.get("N2P2_BENCH") else [])
        + " python benchmarks/hdnnp.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cores": cores,
        "load_average_before_after": [list(load0), list(os.getloadavg())],
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                    "jax": jax.__version__, "device": "cpu"},
        "wall_s": time.time() - t0,
        "results": results,
    }
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
