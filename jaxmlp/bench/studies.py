"""The studies behind the ``jaxmlp-bench`` subcommands.

Each ``run_<study>(args, out)`` takes the parsed arguments and the output
folder, calls library functions (graphs, observables, Hessians,
:mod:`jaxmlp.analysis.locality`, :mod:`jaxmlp.analysis.fragments`,
:func:`jaxmlp.training.train`, :func:`jaxmlp.training.metrics.evaluate`) and
writes its results; it computes no physics of its own.
"""

from __future__ import annotations

import pathlib
import time
from functools import partial

import numpy as np

from ..utils import cast_floats, write_json
from .common import CLIError, load_structures, plot_errorbars, plot_xy, time_call, write_csv
from .factory import (
    PAIR_PARAMETERS,
    cu_cell,
    make_model,
    pair_parameters,
    scalar_metrics,
)

__all__ = ["run_cutoff", "run_layers", "run_locality", "run_speed", "study_config", "aggregate", "reference_locality", "DEMO_NOTE"]


def _graph(model, atoms, dtype=np.float64):
    from jaxmlp.graph import atoms_to_graph

    return cast_floats(atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets), dtype)


# ---------------------------------------------------------------- speed
def run_speed(args, out: pathlib.Path) -> dict:
    """Energy+forces (and dense/sparse Hessian) wall time of each model vs N on periodic Cu."""
    import jax
    from tqdm.auto import tqdm

    import jaxmlp

    dtype = np.float32 if args.float32 else np.float64
    rows = []
    jobs = [(m, n) for m in args.models for n in args.sizes]
    for kind, n in tqdm(jobs, desc="speed", disable=args.no_progress):
        atoms = cu_cell(n, args.seed)
        model = make_model(kind, [29], args.cutoff, structures=[atoms])
        t0 = time.perf_counter()
        g = _graph(model, atoms, dtype)
        t_graph = time.perf_counter() - t0
        params = cast_floats(model.init(jax.random.PRNGKey(args.seed), g), dtype)
        ef = jax.jit(partial(jaxmlp.energy_and_forces, model))
        t_ef = time_call(lambda ef=ef, params=params, g=g: jax.block_until_ready(ef(params, g)), repeat=args.repeat)
        row = {"model": kind, "n_atoms": len(atoms), "n_edges": int(g.n_edge[0]), "dtype": np.dtype(dtype).name,
               "energy_forces_s": t_ef, "atoms_per_s": len(atoms) / t_ef, "graph_build_s": t_graph}
        if args.hessian:
            if len(atoms) <= 256:
                row["dense_hessian_s"] = time_call(
                    lambda m=model, p=params, g=g: jax.block_until_ready(jaxmlp.hessian(m, p, g)), repeat=1)
            row["sparse_hessian_s"] = time_call(
                lambda m=model, p=params, g=g: jax.block_until_ready(jaxmlp.sparse_hessian(m, p, g).blocks), repeat=1)
        rows.append(row)
    files = [write_json(out / "speed.json", {"study": "speed", "cutoff": args.cutoff, "rows": rows}),
             write_csv(out / "speed.csv", rows)]
    series = {m: ([r["n_atoms"] for r in rows if r["model"] == m], [r["atoms_per_s"] for r in rows if r["model"] == m]) for m in args.models}
    files.append(plot_xy(out / "speed.png", series, "atoms", "energy+forces throughput (atoms/s)", "jaxmlp-bench speed", logx=True, logy=True))
    return {"rows": rows, "files": files}


# ---------------------------------------------------------------- locality
def reference_calculator(spec: str, atoms):
    """``(ase_calculator, None)`` or ``(None, (model, params))`` for ``--calculator spec`` on ``atoms``.

    ``lj``/``morse`` get the published parameters of the structure's element
    (:func:`jaxmlp.bench.factory.pair_parameters`) or a :class:`CLIError`.
    """
    spec_l = spec.lower()
    if spec_l == "emt":
        from ase.calculators.emt import EMT

        return EMT(), None
    if spec_l in ("xtb", "gfn2", "gfn2-xtb"):
        from jaxmlp.data.label import xtb_calculator

        return xtb_calculator(), None
    if spec_l in PAIR_PARAMETERS:
        cutoff = pair_parameters(spec_l, atoms.numbers)["cutoff"]
        model = make_model(spec_l, atoms.numbers, cutoff)
        return None, (model, model.init(None))
    path = pathlib.Path(spec)
    if path.is_file():
        import jaxmlp

        return None, jaxmlp.load(path)
    raise CLIError(f"unknown calculator {spec!r}: use emt, xtb, lj, morse or the path of a saved jaxmlp model")


def _read_structure(args):
    if args.structure is None:
        from jaxmlp.data.generate import alkane

        return alkane(8), "built-in n-octane"
    path = pathlib.Path(args.structure)
    if not path.is_file():
        raise CLIError(f"structure file not found: {args.structure}")
    from ase.io import read

    try:
        atoms = read(path, index=args.index)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise CLIError(f"cannot read structure {path} (frame {args.index}): {exc}") from exc
    return atoms, str(path)


def run_locality(args, out: pathlib.Path) -> dict:
    """Hessian of one structure (analytic for jaxmlp models, finite differences
    otherwise), ``||h_AB||`` decay with distance, the model's force range and
    the optional fragment G′ series (``--radii``)."""
    import jaxmlp
    from jaxmlp.analysis import locality
    from jaxmlp.graph import validate

    atoms, source = _read_structure(args)
    validate(atoms)
    calc, model_params = reference_calculator(args.calculator, atoms)
    result = {"study": "locality", "structure": source, "n_atoms": len(atoms)}
    t0 = time.perf_counter()
    if model_params is not None:
        model, params = model_params
        H = np.asarray(jaxmlp.hessian(model, params, _graph(model, atoms)))
        result["method"] = f"analytic ({model.name})"
    else:
        H = jaxmlp.fd_hessian(atoms, calc, delta=args.delta, progress=not args.no_progress)
        result["method"] = f"finite differences ({args.calculator}, δ = {args.delta} Å)"
    result["hessian_seconds"] = time.perf_counter() - t0
    norms = locality.block_norms(H)
    result["max_offdiag_norm"] = float(norms[~np.eye(len(atoms), dtype=bool)].max(initial=0.0))
    dec = locality.decay(H, atoms, bin_width=args.bin)
    if model_params is not None:
        fr = locality.force_range(model, params, atoms, hessian=H)
        result.update({"interaction_range_2LRc": fr.local_range, "max_norm_beyond_2LRc": fr.max_beyond,
                       "n_pairs_beyond_2LRc": fr.n_beyond, "radius_all_nonzero_blocks": fr.radius})
    curve = dec.rows("all")
    result["decay"] = curve
    result["decay_by_element_pair"] = {"-".join(k): dec.rows(k) for k in dec.curves if k != "all"}
    if args.radii:
        result["fragments"] = _fragment_series(atoms, H, calc, model_params, args)
    files = [write_json(out / "locality.json", result), write_csv(out / "locality_decay.csv", curve)]
    shown = [r for r in curve if r["count"] > 0]
    mids = [0.5 * (r["r_lo"] + r["r_hi"]) for r in shown]
    files.append(plot_xy(out / "locality.png", {"max ||h_AB||": (mids, [max(r["max"], 1e-16) for r in shown]),
                                                   "mean ||h_AB||": (mids, [max(r["mean"], 1e-16) for r in shown])},
                         "distance |R_A − R_B| (Å)", "||h_AB|| (eV/Å²)", f"Hessian decay: {result['method']}", logy=True))
    result["files"] = files
    return result


def _fragment_series(atoms, H, calc, model_params, args):
    """G, G′ and ||Δf|| of the centre atom for fragments of increasing radius
    (:func:`jaxmlp.analysis.fragments.fragment_series`), and the threshold Γ
    for a 0.15 eV/Å force tolerance (:func:`jaxmlp.analysis.locality.gamma`)."""
    import jaxmlp
    from jaxmlp.analysis.fragments import fragment_series
    from jaxmlp.analysis.locality import gamma

    center = args.center
    if center is None:  # the heavy atom closest to the heavy atoms' centroid
        heavy = np.flatnonzero(atoms.numbers > 1)
        heavy = heavy if len(heavy) else np.arange(len(atoms))
        com = atoms.positions[heavy].mean(0)
        center = int(heavy[int(np.argmin(np.linalg.norm(atoms.positions[heavy] - com, axis=1)))])
    if not 0 <= center < len(atoms):
        raise CLIError(f"--center {center} out of range for {len(atoms)} atoms")
    if model_params is not None:
        calc = jaxmlp.Calculator(*model_params)
    series = fragment_series(atoms, calc, center, radii=sorted(args.radii), hessian=H, delta=args.delta)
    out = {"center": center, "series": series.rows}
    try:
        g = gamma([r["delta_f_norm"] for r in series.rows], [r["Gprime_norm"] for r in series.rows], force_tolerance=0.15)
    except ValueError as exc:  # no fragment differs from the full system
        out["gamma_eV_per_A2"] = None
        out["gamma_note"] = str(exc)
        return out
    out["gamma_eV_per_A2"] = g if np.isfinite(g) else None
    if not np.isfinite(g):
        out["gamma_note"] = "no fragment exceeds the 0.15 eV/Å force tolerance: Γ is unbounded (use smaller radii)"
    return out


# ---------------------------------------------------------------- training-based studies
#: Built-in default data of the training studies: a demonstration, not a converged benchmark.
DEMO_NOTE = ("demonstration on the built-in EMT Cu clusters (about a minute); pass --data FILE "
             "(extxyz or n2p2 input.data) for a study on real data")


def study_config(args, train_set, seed: int):
    """The :class:`~jaxmlp.training.TrainConfig` a study row trains with.

    ``--optimiser auto`` picks full-batch L-BFGS (``optax.lbfgs`` with its
    zoom line search, one iteration per epoch on the whole training split)
    when the training split has at most ``--lbfgs-max-atoms`` atoms, and
    Adam with a cosine learning-rate schedule (``--learning-rate`` peak,
    ``--batch-size``) otherwise.  Both stop when the validation loss is flat
    (``--convergence-window`` epochs, ``--convergence-rtol``), after
    ``--patience`` epochs without improvement, at ``--epochs`` or after
    ``--time-limit`` seconds; the best-validation parameters are kept.
    """
    from jaxmlp import training

    n_atoms = int(np.sum(train_set.n_atoms))
    optimiser = args.optimiser
    if optimiser == "auto":
        optimiser = "lbfgs" if n_atoms <= args.lbfgs_max_atoms else "adam"
    common = dict(loss=args.loss, epochs=args.epochs, seed=seed, patience=args.patience,
                  convergence_window=args.convergence_window, convergence_rtol=args.convergence_rtol,
                  time_limit=args.time_limit, progress=not args.no_progress)
    if optimiser == "lbfgs":
        return training.TrainConfig(optimiser="lbfgs", batch_size=len(train_set), shuffle=False, **common)
    return training.TrainConfig(optimiser="adam", learning_rate=args.learning_rate, schedule="cosine",
                                batch_size=min(args.batch_size, len(train_set)), **common)


def _train(model, train_set, valid_set, args, seed):
    """Train one model; return params and the row fields of the run (epochs, time, convergence)."""
    from jaxmlp import training

    cfg = study_config(args, train_set, seed)
    t0 = time.perf_counter()
    params, history = training.train(model, train_set, valid_set, cfg)
    seconds = time.perf_counter() - t0
    last = history[-1]
    info = {"seed": seed, "optimiser": cfg.optimiser, "epochs": len(history), "train_seconds": seconds,
            "converged": bool(last.get("converged", False)), "stop": last.get("stop", "max_epochs"),
            "best_valid_loss": min(h["valid_loss"] for h in history)}
    return params, info


def _cost_per_atom(model, params, dataset):
    """Best wall time of jitted energy+forces on the first structure, per atom (s)."""
    import jax

    import jaxmlp

    atoms = dataset[0]
    g = _graph(model, atoms)
    ef = jax.jit(partial(jaxmlp.energy_and_forces, model))
    return time_call(lambda: jax.block_until_ready(ef(params, g)), repeat=3) / len(atoms)


def _model_force_range(model, params, dataset):
    """:func:`jaxmlp.analysis.locality.force_range` on the largest structure of ``dataset``."""
    from jaxmlp.analysis.locality import force_range

    r = force_range(model, params, max(dataset, key=len))
    return {"max_norm_beyond_2LRc": r.max_beyond, "radius_all_nonzero_blocks": r.radius}


def _dataset_and_split(args):
    """(all data, train, valid, test, split record) from ``--data``/``--test-data`` or the built-in demonstration set.

    Sizes: ``--train-size/--valid-size/--test-size`` structures (a
    ``--seed`` permutation of the file), or a 70/15/15 split by default.
    With ``--test-data`` the test structures come from that file (its
    first ``--test-size`` frames, or all) and the sizes split ``--data``
    into train and valid only.
    """
    ds = load_structures(args.data, "cu_clusters_emt", args.n_structures, args.seed)
    test_file = getattr(args, "test_data", None)
    sizes = (args.train_size, args.valid_size, args.test_size)
    record = {"source": args.data or "built-in cu_clusters_emt", "seed": args.seed, "test_source": test_file}
    if test_file is not None:
        test_all = load_structures(test_file, "cu_clusters_emt", 1, args.seed)
        n_te = len(test_all) if args.test_size is None else min(args.test_size, len(test_all))
        test = test_all[:n_te] if n_te < len(test_all) else test_all
        n_tr = args.train_size if args.train_size is not None else round(0.85 * len(ds))
        n_va = args.valid_size if args.valid_size is not None else len(ds) - n_tr
        if n_tr + n_va > len(ds):
            raise CLIError(f"--train-size {n_tr} + --valid-size {n_va} exceed the {len(ds)} structures of {args.data}")
        train, valid = ds.split((n_tr / len(ds), n_va / len(ds)), seed=args.seed)
    elif any(v is not None for v in sizes):
        n_tr = args.train_size if args.train_size is not None else round(0.7 * len(ds))
        n_va = args.valid_size if args.valid_size is not None else round(0.15 * len(ds))
        n_te = args.test_size if args.test_size is not None else len(ds) - n_tr - n_va
        if n_tr + n_va + n_te > len(ds) or n_te < 1:
            raise CLIError(f"sizes train {n_tr} + valid {n_va} + test {n_te} do not fit the {len(ds)} structures")
        train, valid, test = ds.split((n_tr / len(ds), n_va / len(ds), n_te / len(ds)), seed=args.seed)
    else:
        train, valid, test = ds.split((0.7, 0.15, 0.15), seed=args.seed)
    parts = (train, valid, test)
    if min(len(p) for p in parts) == 0:
        raise CLIError(f"{len(ds)} structures are too few for a train/valid/test split "
                       f"(sizes {[len(p) for p in parts]}); use more structures")
    record.update(sizes=[len(p) for p in parts], demonstration=args.data is None)
    if args.data is None:
        record["note"] = DEMO_NOTE
    return ds, train, valid, test, record


def aggregate(runs, key: str):
    """Mean ± sample standard deviation over seeds of every numeric field, grouped by ``key``.

    Returns one row per value of ``key`` (sorted): each numeric field ``x``
    of the runs becomes ``x`` (mean) and ``x_std`` (standard deviation with
    ``ddof=1``; 0 for one seed), ``n_seeds``, ``converged`` (all seeds
    converged) and ``n_converged``.
    """
    rows = []
    for value in sorted({r[key] for r in runs}):
        group = [r for r in runs if r[key] == value]
        row = {key: value, "n_seeds": len(group)}
        for k in group[0]:
            if k in (key, "seed", "converged") or isinstance(group[0][k], (bool, str)) or group[0][k] is None:
                continue
            vals = np.asarray([g[k] for g in group], float)
            row[k] = float(vals.mean())
            row[f"{k}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        row["converged"] = all(g["converged"] for g in group)
        row["n_converged"] = sum(g["converged"] for g in group)
        row["optimiser"] = group[0]["optimiser"]
        row["stops"] = sorted({g["stop"] for g in group})
        rows.append(row)
    return rows


def _summary(rows, key, unit):
    """Terminal lines of a study: one per setting, unconverged ones flagged."""
    lines = [f"{key:>9} {'force MAE (eV/Å)':>22} {'energy MAE (eV/atom)':>24} {'epochs':>7}  converged"]
    for r in rows:
        flag = "yes" if r["converged"] else f"NO ({r['n_converged']}/{r['n_seeds']} seeds; UNCONVERGED)"
        lines.append(f"{r[key]:>7g}{unit} {r['force_mae']:>12.4g} ± {r['force_mae_std']:<8.2g} "
                     f"{r['energy_mae']:>13.4g} ± {r['energy_mae_std']:<8.2g} {r['epochs']:>7.0f}  {flag}")
    return lines


def _seeds(args):
    return [args.seed + k for k in range(args.seeds)]


def reference_locality(args, test):
    """The reference's converged fragment radius and the cutoff it implies (Herbold & Behler 2023).

    The structure is ``--reference-structure`` (default: the first finite
    test structure); the fragment series of its most central heavy atom
    (:func:`jaxmlp.analysis.fragments.fragment_series` with the
    ``--reference`` calculator, radii ``--reference-radii``) gives
    ``||Δf||`` per radius.  ``R_frag^conv`` is the smallest radius from
    which every larger fragment has ``||Δf|| ≤ --force-tolerance``
    (0.125 eV/Å in the paper) and the implied cutoff is ``½·R_frag^conv``.
    Returns None without ``--reference``; a dict with a ``note`` when no
    finite structure is available or no fragment converges.
    """
    if getattr(args, "reference", None) is None:
        return None
    from jaxmlp.analysis.fragments import fragment_series

    if args.reference_structure is not None:
        from ase.io import read

        try:
            atoms = read(args.reference_structure)
        except Exception as exc:  # ASE raises many types for unreadable files
            raise CLIError(f"cannot read --reference-structure {args.reference_structure}: {exc}") from exc
        source = args.reference_structure
    else:
        finite = [a for a in test if not np.any(a.pbc)]
        if not finite:
            return {"reference": args.reference, "note": "the test structures are periodic; fragment series need a finite "
                    "structure: pass --reference-structure (a cluster cut from the bulk)"}
        atoms, source = finite[0].copy(), "first test structure"
    calc, model_params = reference_calculator(args.reference, atoms)
    if model_params is not None:
        import jaxmlp

        calc = jaxmlp.Calculator(*model_params)
    heavy = np.flatnonzero(atoms.numbers > 1)
    heavy = heavy if len(heavy) else np.arange(len(atoms))
    com = atoms.positions[heavy].mean(0)
    center = int(heavy[int(np.argmin(np.linalg.norm(atoms.positions[heavy] - com, axis=1)))])
    series = fragment_series(atoms, calc, center, radii=sorted(args.reference_radii), delta=0.0025)
    rows = sorted(({"radius": r["radius"], "n_atoms": r["n_atoms"], "delta_f_norm": r["delta_f_norm"]} for r in series.rows),
                  key=lambda r: r["radius"])
    tol = args.force_tolerance
    r_conv = None
    for k in range(len(rows)):
        if all(x["delta_f_norm"] <= tol for x in rows[k:]):
            r_conv = rows[k]["radius"]
            break
    out = {"reference": args.reference, "structure": source, "n_atoms": len(atoms), "center": center, "force_tolerance": tol,
           "series": rows, "R_frag_conv": r_conv, "implied_cutoff": None if r_conv is None else 0.5 * r_conv}
    if not rows:
        out["note"] = "no radius gives a fragment smaller than the structure: use larger --reference-radii or a larger structure"
    elif r_conv is None:
        out["note"] = f"no fragment reaches ||Δf|| <= {tol} eV/Å: use larger radii"
    elif r_conv == rows[0]["radius"]:
        out["note"] = "already the smallest fragment is within tolerance: R_frag_conv is an upper bound (use smaller radii)"
    return out


def _study_files(out, name, result, rows, runs, key, xlabel, title, vline=None):
    files = [write_json(out / f"{name}.json", result), write_csv(out / f"{name}.csv", rows),
             write_csv(out / f"{name}_runs.csv", runs)]
    files.append(plot_errorbars(out / f"{name}.png", [r[key] for r in rows], [r["force_mae"] for r in rows],
                                [r["force_mae_std"] for r in rows], [r["converged"] for r in rows], xlabel, "force MAE (eV/Å)",
                                title, vline=vline))
    return files


def run_cutoff(args, out: pathlib.Path) -> dict:
    """Test errors (E/F, mean ± std over ``--seeds``), cost, force range and convergence of a model trained at each cutoff."""
    from tqdm.auto import tqdm

    ds, train, valid, test, split = _dataset_and_split(args)
    runs = []
    jobs = [(rc, s) for rc in sorted(args.cutoffs) for s in _seeds(args)]
    for rc, seed in tqdm(jobs, desc="cutoffs × seeds", disable=args.no_progress):
        model = make_model(args.model, ds.elements, rc, dataset=train, basis=args.basis)
        params, info = _train(model, train, valid, args, seed)
        runs.append({"cutoff": rc, **info, **scalar_metrics(model, params, test),
                     "seconds_per_atom": _cost_per_atom(model, params, test), **_model_force_range(model, params, test)})
    rows = aggregate(runs, "cutoff")
    result = {"study": "cutoff", "model": args.model, "split": split, "training": _training_record(args),
              "rows": rows, "runs": runs, "reference_locality": reference_locality(args, test)}
    if not all(r["converged"] for r in rows):
        result["warning"] = "some rows did not converge (converged: false): their errors are upper bounds, not converged values"
    loc = result["reference_locality"]
    vline = None if not loc or loc.get("implied_cutoff") is None else (loc["implied_cutoff"], "reference ½·R_frag^conv")
    files = _study_files(out, "cutoff", result, rows, runs, "cutoff", "cutoff R_c (Å)", f"{args.model}: accuracy vs cutoff", vline)
    summary = _summary(rows, "cutoff", "Å")
    if loc is not None:
        summary.append(f"reference {loc['reference']}: R_frag^conv = {loc.get('R_frag_conv')} Å, implied R_c = "
                       f"{loc.get('implied_cutoff')} Å" + (f" ({loc['note']})" if "note" in loc else ""))
    if split.get("demonstration"):
        summary.append(f"note: {DEMO_NOTE}")
    return {"rows": rows, "files": files, "summary": summary}


def run_layers(args, out: pathlib.Path) -> dict:
    """ml-ACE test errors (mean ± std over ``--seeds``), cost, measured force range and convergence vs number of layers."""
    from tqdm.auto import tqdm

    ds, train, valid, test, split = _dataset_and_split(args)
    runs = []
    jobs = [(L, s) for L in sorted(args.layers) for s in _seeds(args)]
    for L, seed in tqdm(jobs, desc="layers × seeds", disable=args.no_progress):
        model = make_model("mlace", ds.elements, args.cutoff, n_layers=L, dataset=train, basis=args.basis)
        params, info = _train(model, train, valid, args, seed)
        runs.append({"n_layers": L, "cutoff": args.cutoff, "2LRc": 2 * L * args.cutoff, **info,
                     **scalar_metrics(model, params, test), "seconds_per_atom": _cost_per_atom(model, params, test),
                     **_model_force_range(model, params, test)})
    rows = aggregate(runs, "n_layers")
    result = {"study": "layers", "split": split, "training": _training_record(args), "rows": rows, "runs": runs}
    if not all(r["converged"] for r in rows):
        result["warning"] = "some rows did not converge (converged: false): their errors are upper bounds, not converged values"
    files = _study_files(out, "layers", result, rows, runs, "n_layers", "ml-ACE layers L", "ml-ACE: accuracy vs layers")
    summary = _summary(rows, "n_layers", "")
    if split.get("demonstration"):
        summary.append(f"note: {DEMO_NOTE}")
    return {"rows": rows, "files": files, "summary": summary}


def _training_record(args) -> dict:
    keys = ("loss", "optimiser", "lbfgs_max_atoms", "epochs", "patience", "convergence_window", "convergence_rtol",
            "time_limit", "learning_rate", "batch_size", "seeds", "seed")
    return {k: getattr(args, k) for k in keys if hasattr(args, k)}
