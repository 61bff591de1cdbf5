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
        first, t = _timed(lambda: jaxmlp.sparse_hessian(model, params, g).blocks)
        S = jaxmlp.sparse_hessian(model, params, g)
        out.update(n_pairs=S.n_pairs, n_hvp=S.n_hvp, method=S.method)
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
    a = p.parse_args()
    if a.case:
        print(json.dumps(run_case(json.loads(a.case))))
    elif a.sparse_hdnnp:
        rows = []
        for spec in a.sparse_hdnnp:
            reps = [int(x) for x in spec.split("x")]
            r = _spawn({"kind": "sparse", "model": "hdnnp", "reps": reps}, timeout=3000)
            rows.append(r)
            print(json.dumps(r), flush=True)
        ok = [r for r in rows if "error" not in r]
        largest = max(ok, key=lambda r: r["n_atoms"]) if ok else None
        res = {
            "benchmark": "sparse_hessian of an untrained HDNNP (6 radial + 4 wide angular ACSF, 2x16 tanh), periodic fcc Cu, R_c = 5 A",
            "command": "python benchmarks/hessian.py --sparse-hdnnp " + " ".join(a.sparse_hdnnp),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "load_average": list(os.getloadavg()),
            "results": rows,
            "extrapolated_10000_atoms_s": None if largest is None else largest["seconds"] * 10000 / largest["n_atoms"],
            "extrapolation": "linear in N from the largest measured cell (the sparse Hessian is O(N))",
        }
        (ROOT / "benchmarks" / "results" / "hessian_sparse_hdnnp.json").write_text(json.dumps(res, indent=1))
        print(json.dumps({k: v for k, v in res.items() if k != "results"}, indent=1))
    else:
        main(quick=a.quick)
