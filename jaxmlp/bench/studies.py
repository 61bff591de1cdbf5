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
from .common import CLIError, load_structures, plot_xy, time_call, write_csv
from .factory import (
    PAIR_PARAMETERS,
    cu_cell,
    make_model,
    pair_parameters,
    scalar_metrics,
)

__all__ = ["run_cutoff", "run_layers", "run_locality", "run_speed"]


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
        result.update({"interaction_range_2LRc": fr.interaction_range, "max_norm_beyond_2LRc": fr.max_beyond,
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
def _train(model, train_set, valid_set, epochs, loss, seed, progress):
    from jaxmlp import training

    cfg = training.TrainConfig(loss=loss, epochs=epochs, seed=seed, progress=progress)
    t0 = time.perf_counter()
    params, history = training.train(model, train_set, valid_set, cfg)
    return params, history, time.perf_counter() - t0


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
    ds = load_structures(args.data, "cu_clusters_emt", args.n_structures, args.seed)
    parts = ds.split((0.7, 0.15, 0.15), seed=args.seed)
    if min(len(p) for p in parts) == 0:
        raise CLIError(f"{len(ds)} structures are too few for a 70/15/15 train/valid/test split "
                       f"(sizes {[len(p) for p in parts]}); use more structures")
    return (ds, *parts)


def run_cutoff(args, out: pathlib.Path) -> dict:
    """Test errors (E/F), cost and force range of a model trained at each cutoff."""
    from tqdm.auto import tqdm

    ds, train, valid, test = _dataset_and_split(args)
    rows = []
    for rc in tqdm(sorted(args.cutoffs), desc="cutoffs", disable=args.no_progress):
        model = make_model(args.model, ds.elements, rc, dataset=train, basis=args.basis)
        params, _, t_train = _train(model, train, valid, args.epochs, args.loss, args.seed, not args.no_progress)
        rows.append({"cutoff": rc, "train_seconds": t_train, **scalar_metrics(model, params, test),
                     "seconds_per_atom": _cost_per_atom(model, params, test), **_model_force_range(model, params, test)})
    files = [write_json(out / "cutoff.json", {"study": "cutoff", "model": args.model, "rows": rows}), write_csv(out / "cutoff.csv", rows)]
    files.append(plot_xy(out / "cutoff.png", {"force_mae": ([r["cutoff"] for r in rows], [r["force_mae"] for r in rows])},
                         "cutoff R_c (Å)", "force MAE (eV/Å)", f"{args.model}: accuracy vs cutoff"))
    return {"rows": rows, "files": files}


def run_layers(args, out: pathlib.Path) -> dict:
    """ml-ACE test errors, cost and measured force range vs number of layers."""
    from tqdm.auto import tqdm

    ds, train, valid, test = _dataset_and_split(args)
    rows = []
    for L in tqdm(sorted(args.layers), desc="layers", disable=args.no_progress):
        model = make_model("mlace", ds.elements, args.cutoff, n_layers=L, dataset=train, basis=args.basis)
        params, _, t_train = _train(model, train, valid, args.epochs, "forces", args.seed, not args.no_progress)
        rows.append({"n_layers": L, "cutoff": args.cutoff, "2LRc": 2 * L * args.cutoff, "train_seconds": t_train,
                     **scalar_metrics(model, params, test), "seconds_per_atom": _cost_per_atom(model, params, test),
                     **_model_force_range(model, params, test)})
    files = [write_json(out / "layers.json", {"study": "layers", "rows": rows}), write_csv(out / "layers.csv", rows)]
    files.append(plot_xy(out / "layers.png", {"force_mae": ([r["n_layers"] for r in rows], [r["force_mae"] for r in rows])},
                         "ml-ACE layers L", "force MAE (eV/Å)", "ml-ACE: accuracy vs layers"))
    return {"rows": rows, "files": files}
