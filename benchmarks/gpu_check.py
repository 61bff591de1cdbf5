"""The GPU check: tests that matter on a GPU, energy+forces throughput, a training epoch, peak memory; one JSON.

Run through ``benchmarks/gpu_check.sh`` (sets the environment and a hard
time limit).  Sections, in this order and each in a share of ``--budget``
(default 420 s; throughput until 55 %, training until 80 %, the tests get
the rest, at least 60 s) so that the whole check ends in under 8 minutes on
one H100/H200:

* ``throughput``: HDNNP and ml-ACE energy+forces of rattled fcc Cu at 2k,
  16k and 100k atoms in float32 and float64: graph build time (host),
  compile time, median of ``--repeats`` jitted evaluations, atom-steps/s
  (atoms / median, prebuilt graph) and the device's peak memory so far;
* ``training``: time of one epoch of force training (HDNNP, ``loss="forces"``)
  on the water (DeePMD) and ethanol (rMD17) sets of ``shared/data/datasets``:
  epoch 1 (with compilation) and epoch 2 (steady);
* ``tests``: ``pytest`` on the float32/float64 agreement, jit = no-jit and
  sharding tests (a subprocess on the same device; pass/fail counts and the
  tail of the output);
* ``peak_memory_bytes``: the device allocator's peak (``memory_stats``; null
  on CPU, which has none).

A case that fails (out of memory, missing data) is recorded with its error
and the check continues; a case that would start after its section's time
budget is recorded as skipped.  ``--tiny`` shrinks every size so that the
check runs in seconds on a CPU (``tests/test_gpu_check.py``).

Target on one H100-class GPU: >= 1e6 atom-steps/s for HDNNP energy+forces
(ML-PACE in LAMMPS: 1.7–2.2e6 on an A100); ``summary`` says whether the best
HDNNP case reached it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JAXMLP_SHARED", ROOT.parent / "shared")) / "data" / "datasets"
GPU_TESTS = ("tests/test_float32.py", "tests/test_padding_jit.py", "tests/test_sharding.py")
TARGET_ATOM_STEPS = 1e6
TRAINING_SETS = {"water": "water_deepmd_train.extxyz", "ethanol": "ethanol_rmd17.extxyz"}


def _peak(device) -> int | None:
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return None if not stats else int(stats.get("peak_bytes_in_use", 0))


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:400] if text else ''}"


def pytest_counts(text: str) -> dict:
    """``{"passed": 3, "failed": 1, ...}`` from pytest's last summary line (``3 passed, 1 failed in 2.1s``)."""
    counts: dict = {}
    lines = [ln for ln in text.splitlines() if " in " in ln and any(w in ln for w in ("passed", "failed", "error", "skipped"))]
    if lines:
        for part in lines[-1].strip("= ").split(" in ")[0].split(","):
            bits = part.strip().split(" ")
            if len(bits) == 2 and bits[0].isdigit():
                counts[bits[1]] = int(bits[0])
    return counts


def run_tests(paths, timeout: float) -> dict:
    """``pytest -q`` on ``paths`` in a subprocess; counts from its summary line."""
    if not paths:
        return {"skipped": "no tests selected"}
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        text, code = out.stdout + out.stderr, out.returncode
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or ""
        text, code = raw.decode(errors="replace") if isinstance(raw, bytes) else raw, None
    counts = pytest_counts(text)
    return {"paths": list(paths), "returncode": code, "timed_out": code is None, "counts": counts,
            "ok": code == 0 and counts.get("passed", 0) > 0, "seconds": time.perf_counter() - t0, "tail": text[-2000:]}


def _model(kind: str, cutoff: float, n_atoms: int):
    from jaxmlp.bench.factory import cu_cell, make_model

    atoms = cu_cell(n_atoms)
    return make_model(kind, [29], cutoff, structures=[atoms]), atoms


def throughput_case(kind: str, n_atoms: int, dtype: str, cutoff: float, repeats: int, cache: dict) -> dict:
    """Energy+forces of one rattled Cu cell: graph (built once per model and size), compile and evaluation times."""
    import jax
    import jax.numpy as jnp

    from jaxmlp import observables
    from jaxmlp.graph import atoms_to_graph
    from jaxmlp.utils import cast_floats

    if (kind, n_atoms) not in cache:
        cache.clear()  # one large graph in host memory at a time
        model, atoms = _model(kind, cutoff, n_atoms)
        t0 = time.perf_counter()
        graph = atoms_to_graph(atoms, cutoff, triplets=bool(model.needs_triplets))
        cache[(kind, n_atoms)] = (model, atoms, graph, time.perf_counter() - t0)
    model, atoms, graph, t_graph = cache[(kind, n_atoms)]
    dt = jnp.float32 if dtype == "float32" else jnp.float64
    graph = cast_floats(jax.tree.map(jnp.asarray, graph), dt)
    params = cast_floats(model.init(jax.random.PRNGKey(0), graph), dt)
    f = jax.jit(lambda p, g: observables.energy_and_forces(model, p, g))
    t0 = time.perf_counter()
    e, forces = jax.block_until_ready(f(params, graph))
    t_compile = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(params, graph))
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    n = len(atoms)
    finite = bool(jnp.all(jnp.isfinite(e)) and jnp.all(jnp.isfinite(forces)))
    return {"model": kind, "n_atoms": n, "dtype": dtype, "cutoff": cutoff,
            "n_edges": int(graph.senders.shape[0]), "graph_build_s": t_graph, "compile_s": t_compile,
            "median_s": med, "best_s": min(times), "repeats": repeats, "atom_steps_per_s": n / med,
            "finite": finite, "peak_memory_bytes": _peak(jax.local_devices()[0])}


def training_case(name: str, path: Path, n_structures: int, batch_size: int, cutoff: float) -> dict:
    """Two epochs of HDNNP force training; the time of each (epoch 1 includes compilation)."""
    import jax

    from jaxmlp.bench.factory import make_model
    from jaxmlp.data import Dataset
    from jaxmlp.training import TrainConfig, train

    ds = Dataset.from_file(path, index=f":{n_structures}")
    model = make_model("hdnnp", ds.elements, cutoff, dataset=ds)
    t0 = time.perf_counter()
    ds.graphs(cutoff, triplets=True)
    t_graph = time.perf_counter() - t0
    cfg = TrainConfig(loss="forces", epochs=2, batch_size=min(batch_size, len(ds)), learning_rate=1e-3, seed=0)
    _, hist = train(model, ds, None, cfg)
    return {"dataset": name, "file": path.name, "n_structures": len(ds), "n_atoms": int(sum(len(a) for a in ds.structures)),
            "batch_size": cfg.batch_size, "cutoff": cutoff, "graph_build_s": t_graph,
            "epoch_1_s": hist[0]["time"], "epoch_2_s": hist[1]["time"],
            "train_loss": [h["train_loss"] for h in hist], "peak_memory_bytes": _peak(jax.local_devices()[0])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (seconds on a CPU; for testing the script)")
    ap.add_argument("--tests", default=",".join(GPU_TESTS), help="comma-separated test files ('' for none)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for the whole check (sections share it)")
    ap.add_argument("--models", default="hdnnp,mlace", help="throughput models (comma-separated)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--sizes", default=None, help="atoms per cell, comma-separated (default 2048,16384,100000)")
    ap.add_argument("--datasets", default="water,ethanol", help="training sets ('' for none)")
    ap.add_argument("--repeats", type=int, default=None, help="timed evaluations per case (default 10)")
    ap.add_argument("--train-structures", type=int, default=None, help="structures per training set (default 512)")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    dtypes = [d for d in args.dtypes.split(",") if d]
    datasets = [d for d in args.datasets.split(",") if d]
    for m in models:
        if m not in ("hdnnp", "mlace"):
            ap.error(f"--models: unknown model {m!r} (hdnnp, mlace)")
    for d in dtypes:
        if d not in ("float32", "float64"):
            ap.error(f"--dtypes: unknown dtype {d!r} (float32, float64)")
    for d in datasets:
        if d not in TRAINING_SETS:
            ap.error(f"--datasets: unknown dataset {d!r} ({', '.join(TRAINING_SETS)})")
    t_start = time.perf_counter()
    deadline = t_start + args.budget

    import jax

    jax.config.update("jax_enable_x64", True)  # float64 available; each case casts to its dtype
    from jaxmlp.utils import write_json

    dev = jax.local_devices()[0]
    if args.tiny:
        sizes, repeats, cutoff_h, cutoff_a, n_train, batch = (32, 108), 2, 4.0, 4.0, 6, 3
    else:
        sizes, repeats, cutoff_h, cutoff_a, n_train, batch = (2048, 16384, 100000), 10, 4.5, 5.0, 512, 32
    if args.sizes:
        sizes = tuple(int(x) for x in args.sizes.split(","))
    if args.train_structures:
        n_train = args.train_structures
    if args.repeats:
        repeats = args.repeats
    result = {
        "device": {"platform": dev.platform, "kind": getattr(dev, "device_kind", str(dev)), "count": jax.device_count()},
        "jax_version": jax.__version__, "python": platform.python_version(), "host": platform.node(),
        "tiny": args.tiny, "budget_s": args.budget, "sizes": list(sizes), "models": models, "dtypes": dtypes,
    }
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        result["nvidia_smi"] = smi.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        result["nvidia_smi"] = None

    def save():
        result["elapsed_s"] = time.perf_counter() - t_start
        result["peak_memory_bytes"] = _peak(dev)
        write_json(args.out, result, make_parents=True)

    section_end = t_start + 0.55 * args.budget  # then training until 0.8, then the tests
    result["throughput"] = []
    graphs: dict = {}
    for kind in models:  # HDNNP first: the target figure comes before any budget runs out
        cutoff = cutoff_h if kind == "hdnnp" else cutoff_a
        for n in sizes:
            for dtype in dtypes:  # the graph is built once for both
                case = {"model": kind, "n_atoms": n, "dtype": dtype}
                if time.perf_counter() > section_end:
                    case["skipped"] = "time budget"
                else:
                    try:
                        case = throughput_case(kind, n, dtype, cutoff, repeats, graphs)
                    except Exception as exc:  # noqa: BLE001 - recorded, the check goes on (e.g. out of memory)
                        case["error"] = _error(exc)
                print(f"gpu_check: {case}", flush=True)
                result["throughput"].append(case)
                save()
    graphs.clear()

    result["training"] = []
    for name in datasets:
        fname = TRAINING_SETS[name]
        case = {"dataset": name}
        if time.perf_counter() > t_start + 0.8 * args.budget:
            case["skipped"] = "time budget"
        else:
            try:
                case = training_case(name, SHARED / fname, n_train, batch, cutoff_h)
            except Exception as exc:  # noqa: BLE001 - recorded, the check goes on
                case["error"] = _error(exc)
        print(f"gpu_check: {case}", flush=True)
        result["training"].append(case)
        save()

    tests = [p for p in args.tests.split(",") if p.strip()]
    result["tests"] = run_tests(tests, timeout=max(60.0, deadline - time.perf_counter()))
    save()

    best = [c["atom_steps_per_s"] for c in result["throughput"] if c.get("model") == "hdnnp" and "atom_steps_per_s" in c]
    result["summary"] = {
        "tests_ok": result["tests"].get("ok"),
        "hdnnp_best_atom_steps_per_s": max(best) if best else None,
        "target_atom_steps_per_s": TARGET_ATOM_STEPS,
        "target_met": (max(best) >= TARGET_ATOM_STEPS) if best else None,
        "cases_failed": sum("error" in c for c in result["throughput"] + result["training"]),
        "cases_skipped": sum("skipped" in c for c in result["throughput"] + result["training"]),
    }
    save()
    print(f"gpu_check: wrote {args.out} after {result['elapsed_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
