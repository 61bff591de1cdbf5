"""Energy-only vs direct-force vs Taylor-expansion force training (Cooper et al. 2020).

For each data set — bulk water (64 H2O, DeePMD revPBE0-like AIMD frames,
``water_deepmd_*.extxyz``), rMD17 ethanol and the built-in ``cu_emt`` set —
an HDNNP (radial + angular ACSF, n2p2 scaling and E0 from the training set)
is trained with

* ``energy``      : per-atom energy loss only,
* ``forces``      : direct force loss ``(1−κ)(ΔE/N)² + κ|ΔF|²/3N``,
* ``taylor-B``    : energy loss on the training set plus ``a`` Taylor-expanded
  structures per reference (strategy B, several ``a`` and δ_max),
* ``taylor-A``    : the same with single-atom ±δ displacements,

first at **equal epochs**, then energy-only and Taylor again at **equal wall
time** (the wall time of the direct-force run).  Validation energy and force
errors of the best-validation epoch are reported, with cost per epoch.

``main()`` runs a small version in about a minute (built-in Cu only, few epochs);
``python examples/force_training_study.py --full`` runs the larger study
(≈ 20 min on 2 CPU cores).  Results: JSON + learning-curve and parity plots
under ``benchmarks/results/force_training/``.  If ``jaxmlp.models.hdnnp`` is
not importable the study falls back (and says so) to a Morse pair model.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "datasets"


def build_model(train_set, cutoff, n_radial=5, hidden=(12, 12)):
    """A small HDNNP fitted to ``train_set``'s descriptor statistics, or a Morse fallback."""
    try:
        from jaxmlp.data import fit_reference_energies
        from jaxmlp.descriptors import acsf
        from jaxmlp.models import hdnnp
    except ImportError as err:  # pragma: no cover - depends on the checkout
        from jaxmlp.models import morse

        print(f"[study] HDNNP not available ({err}); FALLING BACK to a Morse pair model")
        return morse(D=0.3, alpha=1.5, r0=1.5, cutoff=cutoff), "morse"
    elements = list(train_set.elements)
    sfs = acsf.radial_grid(elements, cutoff, n_radial) + acsf.angular_set(elements, cutoff, etas=(0.0,), zetas=(1.0, 4.0))
    stats = acsf.ACSF(elements, sfs).statistics(train_set.graphs(cutoff, triplets=True))
    scaling = {"mode": "scalecenter", "smin": -1.0, "smax": 1.0, "stats": stats}
    # labelled copies: fit_reference_energies reads Dataset.structures, which carry no energies
    e0 = fit_reference_energies(list(train_set), elements)
    return hdnnp(elements, sfs, hidden=hidden, activation="tanh", scaling=scaling, e0=e0), "hdnnp"


def load(name, n_train, n_valid, seed=0):
    from jaxmlp.data import Dataset

    if name == "water":
        tr = Dataset.from_file(SHARED / "water_deepmd_train.extxyz")
        va = Dataset.from_file(SHARED / "water_deepmd_test.extxyz")
        rng = np.random.default_rng(seed)
        return tr[np.sort(rng.permutation(len(tr))[:n_train])], va[:n_valid], 4.0
    if name == "ethanol":
        ds = Dataset.from_file(SHARED / "ethanol_rmd17.extxyz")
        tr, va, _ = ds.split((n_train / len(ds), n_valid / len(ds), 1 - (n_train + n_valid) / len(ds)), seed=seed)
        return tr, va, 4.0
    if name == "cu_emt":
        from jaxmlp.data.generate import default_dataset

        ds = default_dataset("cu_emt", n=n_train + n_valid, seed=seed)
        tr, va = ds.split((n_train / len(ds), 1 - n_train / len(ds)), seed=seed)
        return tr, va, 4.0
    raise ValueError(f"unknown data set {name!r}")


def run(model, tr, va, cfg, label, results, histories, out_dir, parity=False):
    from jaxmlp.training import evaluate, parity_plot, train

    t0 = time.perf_counter()
    params, hist = train(model, tr, va, cfg)
    wall = time.perf_counter() - t0
    res = evaluate(model, params, va, batch_size=cfg.batch_size, return_predictions=parity)
    if parity:
        parity_plot(res, str(out_dir / f"parity_{label}.png"), title=label)
    epoch_time = float(np.median([h["time"] for h in hist[1:]])) if len(hist) > 1 else hist[0]["time"]
    row = {"run": label, "loss": cfg.loss, "a": cfg.a if cfg.loss == "taylor" else 0,
           "delta": cfg.delta if cfg.loss == "taylor" else None, "strategy": cfg.strategy if cfg.loss == "taylor" else None,
           "epochs": len(hist), "n_train_structures": hist[0]["n_train"], "time_per_epoch_s": epoch_time,
           "train_time_s": float(sum(h["time"] for h in hist)), "wall_s": wall,
           **{k: float(v) for k, v in res.items() if np.ndim(v) == 0}}
    results.append(row)
    histories[label] = hist
    print(f"  {label:28s} epochs {row['epochs']:3d}  E {1e3 * row['energy_rmse']:8.2f} meV/atom  "
          f"F {row['force_rmse']:.3f} eV/Å  angle {row['force_angle_median']:5.1f}°  {epoch_time:.2f} s/epoch", flush=True)
    return row


def study(name, n_train, n_valid, epochs, batch_size, taylor_grid, lr, out_dir, seed=0):
    from jaxmlp.training import TrainConfig, learning_curve_plot

    tr, va, cutoff = load(name, n_train, n_valid, seed)
    model, kind = build_model(tr, cutoff)
    print(f"[{name}] {len(tr)} train / {len(va)} valid structures, {int(np.mean(tr.n_atoms))} atoms each, model {kind}")
    base = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=lr, schedule="cosine", seed=seed, kappa=0.5)
    results, histories = [], {}
    run(model, tr, va, base.replace(loss="energy"), "energy", results, histories, out_dir, parity=True)
    force_row = run(model, tr, va, base.replace(loss="forces"), "forces", results, histories, out_dir, parity=True)
    best_taylor = None
    for strategy, a, delta in taylor_grid:
        label = f"taylor-{strategy} a={a} d={delta}"
        row = run(model, tr, va, base.replace(loss="taylor", strategy=strategy, a=a, delta=delta), label, results,
                  histories, out_dir)
        if best_taylor is None or row["force_rmse"] < best_taylor[0]["force_rmse"]:
            best_taylor = (row, strategy, a, delta)
    # equal wall time: give energy-only and the best Taylor setting the direct-force run's training time
    budget = force_row["train_time_s"]
    eq = base.replace(epochs=10_000, time_limit=budget)
    run(model, tr, va, eq.replace(loss="energy"), "energy (equal time)", results, histories, out_dir)
    _, strategy, a, delta = best_taylor
    run(model, tr, va, eq.replace(loss="taylor", strategy=strategy, a=a, delta=delta),
        f"taylor-{strategy} a={a} d={delta} (equal time)", results, histories, out_dir, parity=True)
    learning_curve_plot(histories, str(out_dir / f"curves_{name}.png"))
    learning_curve_plot(histories, str(out_dir / f"curves_{name}_wall.png"), x="wall")
    e, f = results[0], results[1]
    gain = e["force_rmse"] - f["force_rmse"]
    for r in results:
        r["fraction_of_direct_force_gain"] = (e["force_rmse"] - r["force_rmse"]) / gain if gain > 0 else None
    return {"dataset": name, "model": kind, "n_train": len(tr), "n_valid": len(va),
            "atoms_per_structure": float(np.mean(tr.n_atoms)), "cutoff": cutoff, "runs": results}


def main(full: bool = False, datasets=None, out_dir=None, seed: int = 0, plan=None):
    """Run the study; return the results dict (also written as JSON).

    Parameters
    ----------
    full : bool
        Larger subsets, more epochs and a wider Taylor grid (≈ 20 min on 2 cores).
    datasets : sequence of str, optional
        Any of ``"ethanol"``, ``"water"``, ``"cu_emt"`` that the plan covers
        (default: all of the plan; the fast plan has ``"cu_emt"`` only).
    out_dir : path, optional
        Default ``benchmarks/results/force_training``.
    plan : dict, optional
        ``{dataset: (n_train, n_valid, epochs, batch_size, [(strategy, a, δ), ...], learning_rate)}``
        replacing the built-in plans (e.g. a tiny smoke run).
    """
    out_dir = pathlib.Path(out_dir or ROOT / "benchmarks" / "results" / "force_training")
    out_dir.mkdir(parents=True, exist_ok=True)
    if plan is not None:
        plan = dict(plan)
    elif full:
        plan = {"ethanol": (200, 200, 60, 10, [("B", 4, 0.01), ("B", 16, 0.01), ("B", 16, 0.03), ("A", 16, 0.03)], 5e-3),
                "water": (24, 16, 30, 2, [("B", 8, 0.01), ("B", 24, 0.01), ("A", 8, 0.03)], 5e-3),
                "cu_emt": (80, 40, 60, 8, [("B", 4, 0.02), ("B", 16, 0.02), ("A", 16, 0.03)], 5e-3)}
    else:  # about a minute: the built-in Cu set only
        plan = {"cu_emt": (20, 10, 10, 5, [("B", 4, 0.02)], 1e-2)}
    names = list(datasets or plan)
    missing = [n for n in names if n not in plan]
    if missing:
        raise ValueError(f"no {'full' if full else 'fast'} plan for {missing}; available: {sorted(plan)} (pass plan= or full=True)")
    results = {"full": full, "seed": seed, "devices": [str(d) for d in jax.devices()], "studies": []}
    for name in names:
        if name in ("water", "ethanol") and not SHARED.is_dir():
            print(f"[{name}] skipped: {SHARED} not found")
            continue
        n_train, n_valid, epochs, bs, grid, lr = plan[name]
        results["studies"].append(study(name, n_train, n_valid, epochs, bs, grid, lr, out_dir, seed))
        (out_dir / ("study_full.json" if full else "study_fast.json")).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="force-training study (energy vs direct force vs Taylor)")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--datasets", nargs="+", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    main(args.full, args.datasets, args.out, args.seed)
