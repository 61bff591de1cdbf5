"""Hessian benchmarks: dense (chunked HVPs vs ``jax.hessian``) and sparse (linear scaling).

Every case runs in its own subprocess so its peak memory (max RSS, and the
increase over the RSS just before the Hessian) is measured in isolation.

* dense: periodic fcc Cu, Lennard-Jones R_c = 5 Å, N = 64 … 1024;
  ``jaxmlp.hessian`` (chunks of 96 HVPs) and plain ``jax.hessian`` where it
  fits; cost in units of one jitted energy+forces evaluation (the target is
  ≤ 3·3N);
* sparse: ``jaxmlp.sparse_hessian`` for periodic Cu with N ≈ 1k, 4k, 16k,
  R_c = 5 Å, Lennard-Jones and an (untrained) HDNNP with radial and angular
  ACSF.

Usage: ``python benchmarks/hessian.py [--quick]``; results in
``benchmarks/results/hessian.json`` (``hessian_quick.json`` with --quick).

Issue #13's target (HDNNP sparse Hessian of 10,000-atom Cu in < 2 min on 2
cores), one command, results in ``benchmarks/results/hessian_sparse_hdnnp.json``::

    taskset -c 0,1 python benchmarks/hessian.py --sparse-hdnnp 6x6x7 10x10x10 14x14x13 --compare-budget 2000000

(1008, 4000 and 10,192 atoms; cells above 5,000 atoms are timed in one call,
compilation included; ``--compare-budget`` re-times the smallest cell with
the former default ``batch_budget`` in the same run).
Timings are steady-state (second call; the first, with compilation, is
reported as ``first_s``); ``cpu_seconds`` is the process CPU time of that
call (more robust than wall time on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RC = 5.0


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def _cu(reps):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * tuple(reps)
    atoms.rattle(0.02, seed=0)
    return atoms


def _model(kind):
    import jaxmlp

    if kind == "lj":
        return jaxmlp.models.lennard_jones(epsilon=0.4, sigma=2.3, cutoff=RC)
    from jaxmlp.descriptors import angular_set, radial_grid

    sf = radial_grid(["Cu"], RC, 6) + angular_set(["Cu"], RC, etas=(0.0,), zetas=(1.0, 4.0))
    return jaxmlp.models.hdnnp(["Cu"], sf, hidden=(16, 16))


def _timed(fn, repeat=1):
    import jax

    t = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t
    best, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    _timed.cpu = cpu
    return first, best


def run_case(case: dict) -> dict:
    """Run one benchmark case in this process (called in a subprocess)."""
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from functools import partial

    import jaxmlp

    atoms = _cu(case["reps"])
    model = _model(case["model"])
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
    params = model.init(jax.random.PRNGKey(0), g)
    gj = jax.tree_util.tree_map(jax.numpy.asarray, g)
    ef = jax.jit(partial(jaxmlp.energy_and_forces, model))
    _, t_ef = _timed(lambda: ef(params, gj), repeat=3)
    base = _current_rss_mb()
    out = {**case, "n_atoms": len(atoms), "n_edges": int(g.n_edge[0]), "energy_forces_s": t_ef}
    if case["kind"] == "dense":
        first, t = _timed(lambda: jaxmlp.hessian(model, params, gj, chunk_size=96))
    elif case["kind"] == "jax.hessian":
        R = gj.nodes["positions"]

        def e(x):
            return jaxmlp.energy(model, params, gj._replace(nodes={**gj.nodes, "positions": x}))[0]

        h = jax.jit(jax.hessian(e))
        first, t = _timed(lambda: h(R))
    else:
        kw = {} if case.get("batch_budget") is None else {"batch_budget": int(case["batch_budget"])}
        last = {}

        def sparse():
            last["S"] = jaxmlp.sparse_hessian(model, params, g, **kw)
            return last["S"].blocks

        if case.get("single_call", len(atoms) > 5000):  # large cells: one call, compilation included (seconds = first_s)
            t0, c0 = time.perf_counter(), time.process_time()
            sparse()
            first = t = time.perf_counter() - t0
            _timed.cpu = time.process_time() - c0
            out["single_call"] = True
        else:
            first, t = _timed(sparse)
        S = last["S"]
        # exactness spot check on the largest cells too: the translational sum rule Σ_B h_AB = 0
        rowsum = np.zeros((S.n_atoms, 3, 3))
        np.add.at(rowsum, S.pairs[:, 0], S.blocks)
        out.update(n_pairs=S.n_pairs, n_hvp=S.n_hvp, method=S.method, batch_budget=kw.get("batch_budget", "default"),
                   max_abs_row_sum=float(np.abs(rowsum).max()), max_abs_block=float(np.abs(S.blocks).max()),
                   load_average=list(os.getloadavg()))
    out.update(first_s=first, seconds=t, cpu_seconds=_timed.cpu, cost_in_energy_forces=t / t_ef, three_3n=9 * len(atoms),
               peak_rss_mb=_rss_mb(), rss_before_mb=base, peak_increase_mb=_rss_mb() - base)
    return out


def _spawn(case: dict, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--case", json.dumps(case)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return {**case, "error": f"timeout after {timeout} s"}
    if p.returncode != 0:
        return {**case, "error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(quick: bool = False, out: pathlib.Path | None = None) -> dict:
    dense_reps = [(2, 2, 4), (4, 2, 4), (4, 4, 4)] if quick else [(2, 2, 4), (4, 2, 4), (4, 4, 4), (4, 4, 8), (8, 4, 8)]
    hdnnp_max = 1008 if quick else 4000
    jaxh_max = 128 if quick else 256
    sparse_reps = [(6, 6, 7), (10, 10, 10)] if quick else [(6, 6, 7), (10, 10, 10), (16, 16, 16)]
    cases = []
    for reps in dense_reps:
        n = 4 * reps[0] * reps[1] * reps[2]
        cases.append({"kind": "dense", "model": "lj", "reps": reps})
        if n <= jaxh_max:
            cases.append({"kind": "jax.hessian", "model": "lj", "reps": reps})
    for model in ("lj", "hdnnp"):
        for reps in sparse_reps:
            if model == "lj" or 4 * reps[0] * reps[1] * reps[2] <= hdnnp_max:
                cases.append({"kind": "sparse", "model": model, "reps": reps})
    results = []
    for case in cases:
        r = _spawn(case, timeout=900)
        results.append(r)
        msg = r.get("error") or (f"{r['seconds']:.3f} s (cpu {r['cpu_seconds']:.3f} s), peak +{r['peak_increase_mb']:.0f} MB, "
                                 f"{r['cost_in_energy_forces']:.0f} E+F (3·3N = {r['three_3n']})")
        print(f"{case['kind']:12s} {case['model']:6s} N={4 * case['reps'][0] * case['reps'][1] * case['reps'][2]:6d}: {msg}", flush=True)
    summary = {}
    for model in ("lj", "hdnnp"):
        rows = [r for r in results if r["kind"] == "sparse" and r["model"] == model and "error" not in r]
        if len(rows) >= 2:
            summary[f"sparse_{model}_time_per_atom_us"] = {r["n_atoms"]: 1e6 * r["seconds"] / r["n_atoms"] for r in rows}
            summary[f"sparse_{model}_cpu_per_atom_us"] = {r["n_atoms"]: 1e6 * r["cpu_seconds"] / r["n_atoms"] for r in rows}
            summary[f"sparse_{model}_ratio_largest_to_smallest_per_atom"] = (
                rows[-1]["seconds"] / rows[-1]["n_atoms"]) / (rows[0]["seconds"] / rows[0]["n_atoms"])
    dense = {r["n_atoms"]: r for r in results if r["kind"] == "dense" and "error" not in r}
    plain = {r["n_atoms"]: r for r in results if r["kind"] == "jax.hessian" and "error" not in r}
    summary["dense_vs_jax_hessian"] = {
        n: {"time_ratio": dense[n]["seconds"] / plain[n]["seconds"], "memory_ratio": dense[n]["peak_increase_mb"] / max(plain[n]["peak_increase_mb"], 1e-9)}
        for n in dense if n in plain
    }
    result = {
        "benchmark": "hessian",
        "quick": quick,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "timings on a shared 2-core machine (other jobs running): compare ratios, not absolute seconds",
        "cutoff": RC,
        "results": results,
        "summary": summary,
    }
    out = out or ROOT / "benchmarks" / "results" / ("hessian_quick.json" if quick else "hessian.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(summary, indent=1))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="dense and sparse Hessian benchmarks")
    p.add_argument("--quick", action="store_true", help="small sizes only")
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--sparse-hdnnp", metavar="REPS", nargs="+", default=None,
                   help="only sparse_hessian of the HDNNP on Cu cells of these repeats, e.g. 6x6x7 10x10x10; "
                        "writes hessian_sparse_hdnnp.json with a linear extrapolation to 10,000 atoms")
    p.add_argument("--from-rows", nargs="+", default=None, metavar="LOG",
                   help="build hessian_sparse_hdnnp.json (also) from case lines saved by earlier runs (logs of --sparse-hdnnp or --case)")
    p.add_argument("--compare-budget", type=int, default=None,
                   help="with --sparse-hdnnp: also time the first cell with this batch_budget (same run)")
    a = p.parse_args()
    if a.case:
        print(json.dumps(run_case(json.loads(a.case))))
    elif a.sparse_hdnnp or a.from_rows:
        from jaxmlp.utils import write_json

        rows, compare = [], []
        for path in a.from_rows or []:  # case lines printed by earlier runs of this script (one JSON object a line)
            for line in pathlib.Path(path).read_text().splitlines():
                if line.startswith("{") and '"kind": "sparse"' in line:
                    r = json.loads(line)
                    (rows if r.get("batch_budget", "default") == "default" else compare).append(r)
        rows.sort(key=lambda r: r.get("n_atoms", 0))
        for spec in a.sparse_hdnnp or []:
            reps = [int(x) for x in spec.split("x")]
            r = _spawn({"kind": "sparse", "model": "hdnnp", "reps": reps}, timeout=3000)
            rows.append(r)
            print(json.dumps(r), flush=True)
        if a.compare_budget and a.sparse_hdnnp:  # same run, smallest cell: the given (e.g. the former default 2,000,000) budget
            reps = [int(x) for x in a.sparse_hdnnp[0].split("x")]
            r = _spawn({"kind": "sparse", "model": "hdnnp", "reps": reps, "batch_budget": a.compare_budget}, timeout=3000)
            compare.append(r)
            print(json.dumps(r), flush=True)
        ok = [r for r in rows if "error" not in r]
        largest = max(ok, key=lambda r: r["n_atoms"]) if ok else None
        at_10k = [r for r in ok if r["n_atoms"] >= 10000]
        res = {
            "benchmark": "sparse_hessian of an untrained HDNNP (6 radial + 4 wide angular ACSF, 2x16 tanh), periodic fcc Cu, R_c = 5 A",
            "command": "python benchmarks/hessian.py" + (" --sparse-hdnnp " + " ".join(a.sparse_hdnnp) if a.sparse_hdnnp else "")
            + (f" --compare-budget {a.compare_budget}" if a.compare_budget else "")
            + (" --from-rows " + " ".join(a.from_rows) if a.from_rows else ""),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                        "affinity": sorted(os.sched_getaffinity(0))},
            "load_average": list(os.getloadavg()),
            "note": "seconds = steady-state second call, first_s includes compilation; cpu_seconds = process CPU time of that call; "
                    "wall times on a shared machine depend on its load (load_average per case)",
            "results": rows,
            "compare_budget": compare,
            "target_10000_atoms_s": 120.0,
            "measured_10000_atoms": None if not at_10k else {k: at_10k[0][k] for k in ("n_atoms", "seconds", "first_s", "cpu_seconds", "peak_rss_mb")},
            "target_met_wall": None if not at_10k else bool(at_10k[0]["seconds"] < 120.0),
            "cpu_bound_10000_atoms_s": None if not at_10k else {
                "one_core": at_10k[0]["cpu_seconds"], "two_cores_ideal": at_10k[0]["cpu_seconds"] / 2,
                "reading": "process CPU time of the call (measured under load): the wall time of an idle machine is "
                           "about this on one core and half of it with both cores busy"},
            "extrapolated_10000_atoms_s": None if largest is None else largest["seconds"] * 10000 / largest["n_atoms"],
            "extrapolation": "linear in N from the largest measured cell (the sparse Hessian is O(N))",
        }
        write_json(ROOT / "benchmarks" / "results" / "hessian_sparse_hdnnp.json", res, indent=1)
        print(json.dumps({k: v for k, v in res.items() if k not in ("results", "compare_budget")}, indent=1))
    else:
        main(quick=a.quick)
