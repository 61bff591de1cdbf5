"""Factorised wide angular ACSF (type 9, integer ζ) against the triplet path: in-process A/B.

For each system and descriptor layout one process (pinned to ``--cores``) builds the same HDNNP
twice, ``factorise_wide=True`` (wide functions from per-edge harmonics, triplets only for the
remaining narrow / non-integer-ζ functions, pruned by their ``r_jk`` bound) and ``False`` (every
angular function on the triplet list), and times both in turn on the same structure:

* graph build (neighbour list + triplet list, with the model's ``triplet_filter``) and the
  triplet count of each model;
* jitted energy + forces on the prebuilt graph: CPU time (``time.process_time``) and wall time,
  median of ``--repeats`` after a compile call;
* agreement of energy and forces between the two.

Peak RSS (``ru_maxrss``) comes from separate processes, one per (system, layout, setting), that
build the graph and evaluate energy + forces once (``--rss``).

Systems: fcc Cu 2048 / 16384 (``benchmarks/hdnnp.py``'s model: 8 radial + 20 wide + 2 narrow,
R_c 6 Å), ``cu2048_wide_only`` (the same without the 2 narrow functions and without scaling: no
triplets at all when factorised) and n2p2's Cu2S_PBE potential (``input.data`` structure 0).  Layouts: ``triplets``
(edge / triplet lists) and ``dense`` (``max_neighbors`` = :func:`jaxmlp.graph.max_degree`).
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` is set so one process uses one core.

Usage::

    taskset -c 1 python benchmarks/acsf_wide.py --cores 1 --systems cu2048 cu16384 cu2s --rss

Results: ``benchmarks/results/acsf_wide.json`` (written atomically); the docs table is printed from
it (nothing is run) by ``python benchmarks/acsf_wide.py --table benchmarks/results/acsf_wide.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

SYSTEMS = {"cu2048": ("cu", 2048), "cu16384": ("cu", 16384), "cu2s": ("n2p2", "Cu2S_PBE"),
           "cu2048_wide_only": ("cuw", 2048)}


def _models(kind, arg, layout):
    """(model on, model off, params, atoms, max_neighbors) for one system and layout."""
    from hdnnp import _cu_model_and_atoms, _n2p2_model_and_atoms

    from jaxmlp.graph import max_degree
    from jaxmlp.models import hdnnp

    if kind == "cuw":  # the Cu model without its 2 narrow functions (8 radial + 20 wide), no scaling
        import jax

        from jaxmlp.descriptors import angular_set, radial_grid

        _, _, atoms = _cu_model_and_atoms(arg)
        fns = radial_grid(["Cu"], 6.0, 8) + angular_set(["Cu"], 6.0, etas=(0.0, 0.005), zetas=(1, 2, 4, 8, 16))
        model = hdnnp(["Cu"], fns, hidden=(25, 25), activation="tanh", cutoff_type="poly2", e0={"Cu": -3.5})
        params = model.init(jax.random.PRNGKey(0))
    else:
        model, params, atoms = _cu_model_and_atoms(arg) if kind == "cu" else _n2p2_model_and_atoms(arg)
    cfg = {k: v for k, v in model.config.items() if k != "factorise_wide"}
    k = max_degree([atoms], model.cutoff) if layout == "dense" else None
    cfg["max_neighbors"] = k
    return hdnnp(**cfg, factorise_wide=True), hdnnp(**cfg, factorise_wide=False), params, atoms, k


def _build(model, atoms):
    import jaxmlp

    return jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets,
                                 triplet_filter=model.extras.get("triplet_filter"))


def _worker(name, layout, cores):
    """In a fresh worker process: pin to ``cores``, float64, and the two models of ``(name, layout)``."""
    if cores:
        os.sched_setaffinity(0, cores)
    import jax

    jax.config.update("jax_enable_x64", True)
    kind, arg = SYSTEMS[name]
    return _models(kind, arg, layout)


def _ab_case(name, layout, repeats, cores, queue):
    import jax
    import numpy as np

    import jaxmlp

    try:
        m_on, m_off, params, atoms, k = _worker(name, layout, cores)
        out = {"system": name, "layout": layout, "max_neighbors": k, "n_atoms": len(atoms), "settings": {}}
        results = {}
        for label, model in (("factorised", m_on), ("triplets", m_off)):
            builds_cpu, builds_wall = [], []
            for _ in range(max(2, repeats)):
                t0, c0 = time.perf_counter(), time.process_time()
                g = _build(model, atoms)
                builds_wall.append(time.perf_counter() - t0)
                builds_cpu.append(time.process_time() - c0)
            g = jax.device_put(g)
            ef = jax.jit(lambda p, g, model=model: jaxmlp.energy_and_forces(model, p, g))
            t0, c0 = time.perf_counter(), time.process_time()
            e, f = jax.block_until_ready(ef(params, g))
            compile_wall, compile_cpu = time.perf_counter() - t0, time.process_time() - c0
            cpu, wall = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                jax.block_until_ready(ef(params, g))
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            results[label] = (np.asarray(e), np.asarray(f))
            n = len(atoms)
            out["settings"][label] = {
                "needs_triplets": bool(model.needs_triplets),
                "n_edges": int(g.n_edge[0]),
                "n_triplets": int(len(g.globals["triplets"])),
                "graph_build_cpu_median_s": float(np.median(builds_cpu)),
                "graph_build_wall_median_s": float(np.median(builds_wall)),
                "compile_plus_first_call_cpu_s": compile_cpu,
                "compile_plus_first_call_wall_s": compile_wall,
                "energy_forces_cpu_median_s": float(np.median(cpu)),
                "energy_forces_wall_median_s": float(np.median(wall)),
                "energy_forces_cpu_all_s": cpu,
                "energy_forces_wall_all_s": wall,
                "atoms_per_cpu_s_compute_only": n / float(np.median(cpu)),
                "atoms_per_cpu_s_incl_graph_build": n / (float(np.median(cpu)) + float(np.median(builds_cpu))),
            }
        (e1, f1), (e0, f0) = results["factorised"], results["triplets"]
        s_on, s_off = out["settings"]["factorised"], out["settings"]["triplets"]
        out["speedup_energy_forces_cpu"] = s_off["energy_forces_cpu_median_s"] / s_on["energy_forces_cpu_median_s"]
        out["speedup_incl_graph_build_cpu"] = ((s_off["energy_forces_cpu_median_s"] + s_off["graph_build_cpu_median_s"])
                                               / (s_on["energy_forces_cpu_median_s"] + s_on["graph_build_cpu_median_s"]))
        out["energy_abs_diff_eV"] = float(np.abs(e1 - e0).max())
        out["energy_rel_diff"] = float(np.abs(e1 - e0).max() / np.abs(e0).max())
        out["forces_max_abs_diff_eV_per_A"] = float(np.abs(f1 - f0).max())
        out["forces_max_abs"] = float(np.abs(f0).max())
        queue.put(out)
    except Exception as err:  # noqa: BLE001 - report and carry on with the other cases
        queue.put({"system": name, "layout": layout, "error": f"{type(err).__name__}: {err}"})


def _rss_case(name, layout, setting, cores, queue):
    import jax

    import jaxmlp

    try:
        m_on, m_off, params, atoms, k = _worker(name, layout, cores)
        model = m_on if setting == "factorised" else m_off
        g = _build(model, atoms)
        jax.block_until_ready(jax.jit(lambda p, g: jaxmlp.energy_and_forces(model, p, g))(params, g))
        queue.put({"system": name, "layout": layout, "setting": setting, "n_triplets": int(len(g.globals["triplets"])),
                   "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20})
    except Exception as err:  # noqa: BLE001
        queue.put({"system": name, "layout": layout, "setting": setting, "error": f"{type(err).__name__}: {err}"})


def _spawn(target, args, timeout):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=args + (q,))
    p.start()
    try:
        res = q.get(timeout=timeout)
    except Exception as err:  # noqa: BLE001
        res = {"args": [str(a) for a in args], "error": f"no result within {timeout} s ({type(err).__name__})"}
    p.join(10)
    if p.is_alive():
        p.kill()
    return res


def table(path) -> str:
    """The docs table (markdown) from a results file; nothing is run."""
    import json

    rec = json.loads(Path(path).read_text())
    rss = {(r["system"], r["layout"], r["setting"]): r.get("peak_rss_gib") for r in rec.get("peak_rss", []) if "error" not in r}
    rows = ["| system | layout | triplets (factorised / all) | E+F CPU s factorised | E+F CPU s triplets | speed-up | "
            "incl. graph build | peak RSS GiB factorised / triplets |",
            "|---|---|---|---|---|---|---|---|"]
    for c in rec["cases"]:
        if "error" in c:
            rows.append(f"| {c['system']} | {c['layout']} | error: {c['error']} | | | | | |")
            continue
        on, off = c["settings"]["factorised"], c["settings"]["triplets"]
        r_on, r_off = rss.get((c["system"], c["layout"], "factorised")), rss.get((c["system"], c["layout"], "triplets"))
        mem = f"{r_on:.2f} / {r_off:.2f}" if r_on is not None and r_off is not None else "—"
        trip = "none (dense)" if c["layout"] == "dense" else f"{on['n_triplets']:,} / {off['n_triplets']:,}"
        rows.append(f"| {c['system']} ({c['n_atoms']} atoms) | {c['layout']} | {trip} | {on['energy_forces_cpu_median_s']:.3f} | "
                    f"{off['energy_forces_cpu_median_s']:.3f} | {c['speedup_energy_forces_cpu']:.2f}× | "
                    f"{c['speedup_incl_graph_build_cpu']:.2f}× | {mem} |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=["cu2048", "cu2s"], choices=sorted(SYSTEMS))
    ap.add_argument("--layouts", nargs="+", default=["triplets", "dense"], choices=["triplets", "dense"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cores", default="", help="comma-separated core ids for the worker processes")
    ap.add_argument("--rss", action="store_true", help="also measure peak RSS per setting (Cu systems)")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "acsf_wide.json"))
    ap.add_argument("--table", metavar="RESULTS", help="print the docs table from a results file and exit")
    ap.add_argument("--append", action="store_true", help="add the cases to an existing results file")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    cores = [int(c) for c in args.cores.split(",") if c] or None
    from jaxmlp.utils.files import write_json

    record = {
        "benchmark": "acsf_wide",
        "description": "energy+forces, HDNNP with factorised wide ACSF vs all-triplet path, same process, float64",
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "cores": cores,
        "xla_flags": os.environ["XLA_FLAGS"],
        "host": platform.node(),
        "load_caveat": "loaded machine (2 cores shared by 2 engineers): compare CPU times within one case",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": [],
        "peak_rss": [],
    }
    if args.append and Path(args.out).exists():
        import json

        old = json.loads(Path(args.out).read_text())
        old.setdefault("appended_commands", []).append(record["command"])
        record = {**old, "cases": list(old.get("cases", [])), "peak_rss": list(old.get("peak_rss", []))}
    for name in args.systems:
        for layout in args.layouts:
            res = _spawn(_ab_case, (name, layout, args.repeats, cores), args.timeout)
            print(res, flush=True)
            record["cases"].append(res)
            write_json(args.out, record)
    if args.rss:
        for name in [s for s in args.systems if SYSTEMS[s][0] == "cu"]:
            for layout in args.layouts:
                for setting in ("factorised", "triplets"):
                    res = _spawn(_rss_case, (name, layout, setting, cores), args.timeout)
                    print(res, flush=True)
                    record["peak_rss"].append(res)
                    write_json(args.out, record)
    record["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(args.out, record)


if __name__ == "__main__":
    main()
