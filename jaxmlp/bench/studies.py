"""The studies behind ``jaxmlp-bench`` subcommands (library functions, no argparse)."""

from __future__ import annotations

import pathlib
import time
from functools import partial

import numpy as np

from ..graph import max_degree
from .common import CLIError, load_structures, plot_xy, time_call, write_csv, write_json

# Morse parameters for Cu (Girifalco & Weizer 1959) and a Cu-like LJ.
CU_MORSE = dict(D=0.3429, alpha=1.3588, r0=2.866)
CU_LJ = dict(epsilon=0.409, sigma=2.338)


# ---------------------------------------------------------------- models
def make_model(kind: str, elements, cutoff: float, n_layers: int = 1, dataset=None, basis: str = "default", structures=None):
    """A default model of ``kind`` for ``elements`` (atomic numbers) and ``cutoff`` Å.

    With a training ``dataset`` the HDNNP gets n2p2-style symmetry-function
    scaling (min/max, centred) and per-element E0 fitted on it (ml-ACE: the initial E0).  ``basis``
    names an ml-ACE basis preset (:data:`jaxmlp.models.mlace.PRESETS`);
    ml-ACE's ``max_neighbors`` comes from ``structures`` (default: the
    dataset's), see :func:`max_degree`.
    """
    from jaxmlp import models

    elements = sorted(int(z) for z in elements)
    if kind == "lj":
        return models.lennard_jones(cutoff=cutoff, **CU_LJ)
    if kind == "morse":
        return models.morse(cutoff=cutoff, **CU_MORSE)
    if kind == "hdnnp":
        from jaxmlp.descriptors import acsf
        from jaxmlp.data import fit_reference_energies

        sfs = acsf.radial_grid(elements, cutoff, 8) + acsf.angular_set(elements, cutoff, etas=(0.0, 0.02), zetas=(1.0, 4.0))
        scaling, e0 = None, None
        if dataset is not None:
            stats = acsf.ACSF(elements, sfs).statistics(dataset.graphs(cutoff, triplets=True))
            scaling = {"mode": "scalecenter", "smin": -1.0, "smax": 1.0, "stats": stats}
            e0 = fit_reference_energies(dataset, elements)
        return models.hdnnp(elements, sfs, hidden=(25, 25), activation="tanh", scaling=scaling, e0=e0)
    if kind == "mlace":
        from jaxmlp.models.mlace import PRESETS

        if basis not in PRESETS:
            raise CLIError(f"unknown ml-ACE basis {basis!r}; choose from {', '.join(PRESETS)}")
        e0 = None
        if dataset is not None:
            from jaxmlp.data import fit_reference_energies

            e0 = fit_reference_energies(dataset, elements)
        if structures is None and dataset is not None:
            structures = dataset.structures
        k = None if structures is None else max_degree(structures, cutoff)
        return models.mlace(elements, cutoff, n_layers=n_layers, e0=e0, max_neighbors=k, **PRESETS[basis])
    raise CLIError(f"unknown model {kind!r}; choose from lj, morse, hdnnp, mlace")


def _init(model, graph, seed=0):
    import jax

    return model.init(jax.random.PRNGKey(seed), graph)


def _cast(tree, dtype):
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda x: x.astype(dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x, tree)


def _graph(model, atoms, dtype=np.float64):
    import jaxmlp

    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
    return g._replace(nodes={**g.nodes, "positions": g.nodes["positions"].astype(dtype)},
                      globals={**g.globals, "cell": g.globals["cell"].astype(dtype)})


def cu_cell(n_atoms: int, seed: int = 0):
    """Rattled periodic fcc Cu supercell with about ``n_atoms`` atoms."""
    from ase.build import bulk

    reps = max(1, round((n_atoms / 4) ** (1 / 3)))
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((reps, reps, reps))
    atoms.rattle(0.05, seed=seed)
    return atoms


# ---------------------------------------------------------------- speed
def run_speed(args, out: pathlib.Path) -> dict:
    """Energy+forces (and Hessian) throughput of each model vs N."""
    import jax
    import jaxmlp
    from tqdm.auto import tqdm

    dtype = np.float32 if args.float32 else np.float64
    rows = []
    jobs = [(m, n) for m in args.models for n in args.sizes]
    for kind, n in tqdm(jobs, desc="speed", disable=args.no_progress):
        atoms = cu_cell(n, args.seed)
        model = make_model(kind, [29], args.cutoff, structures=[atoms])
        g = _graph(model, atoms, dtype)
        params = _cast(_init(model, g, args.seed), dtype)
        ef = jax.jit(partial(jaxmlp.energy_and_forces, model))
        t_ef = time_call(lambda: jax.block_until_ready(ef(params, g)), repeat=args.repeat)
        t0 = time.perf_counter()
        _graph(model, atoms, dtype)
        t_graph = time.perf_counter() - t0
        row = {"model": kind, "n_atoms": len(atoms), "n_edges": int(g.n_edge[0]), "dtype": np.dtype(dtype).name,
               "energy_forces_s": t_ef, "atoms_per_s": len(atoms) / t_ef, "graph_build_s": t_graph}
        if args.hessian:
            if len(atoms) <= 256:
                t_h = time_call(lambda: jax.block_until_ready(jaxmlp.hessian(model, params, g)), repeat=1)
                row["dense_hessian_s"] = t_h
            if hasattr(jaxmlp, "sparse_hessian"):
                t_s = time_call(lambda: jax.block_until_ready(jaxmlp.sparse_hessian(model, params, g).blocks), repeat=1)
                row["sparse_hessian_s"] = t_s
        rows.append(row)
    name = "speed"
    files = [write_json(out / f"{name}.json", {"study": name, "cutoff": args.cutoff, "rows": rows}),
             write_csv(out / f"{name}.csv", rows)]
    series = {m: ([r["n_atoms"] for r in rows if r["model"] == m], [r["atoms_per_s"] for r in rows if r["model"] == m]) for m in args.models}
    files.append(plot_xy(out / f"{name}.png", series, "atoms", "energy+forces throughput (atoms/s)", "jaxmlp-bench speed", logx=True, logy=True))
    return {"rows": rows, "files": files}


# ---------------------------------------------------------------- locality
def _reference_calculator(spec: str):
    spec_l = spec.lower()
    if spec_l == "emt":
        from ase.calculators.emt import EMT

        return EMT(), None
    if spec_l in ("xtb", "gfn2", "gfn2-xtb"):
        from jaxmlp.data.label import xtb_calculator

        return xtb_calculator(), None
    if spec_l in ("lj", "morse"):
        model = make_model(spec_l, [1], 5.0)
        return None, (model, model.init(None))
    path = pathlib.Path(spec)
    if path.exists():
        import jaxmlp

        model, params = jaxmlp.load(path)
        return None, (model, params)
    raise CLIError(f"unknown calculator {spec!r}: use emt, xtb, lj, morse or the path of a saved jaxmlp model")


def _distances(atoms):
    if atoms.pbc.any():
        return atoms.get_all_distances(mic=True)
    return atoms.get_all_distances()


def decay_curve(norms: np.ndarray, dist: np.ndarray, bin_width: float):
    """Max and mean ||h_AB|| per distance bin (A ≠ B)."""
    n = len(norms)
    off = ~np.eye(n, dtype=bool)
    d, h = dist[off], norms[off]
    edges = np.arange(0.0, d.max() + bin_width, bin_width)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (d >= lo) & (d < hi)
        if sel.any():
            rows.append({"r_lo": lo, "r_hi": hi, "max_norm": float(h[sel].max()), "mean_norm": float(h[sel].mean()), "n_pairs": int(sel.sum())})
    return rows


def run_locality(args, out: pathlib.Path) -> dict:
    """Hessian of a structure (analytic for jaxmlp models, finite differences
    otherwise), ||h_AB|| decay with distance, force range and G′ series."""
    import jaxmlp

    if args.structure is None:
        from jaxmlp.data.generate import alkane

        atoms = alkane(8)
        source = "built-in n-octane"
    else:
        path = pathlib.Path(args.structure)
        if not path.exists():
            raise CLIError(f"structure file not found: {args.structure}")
        from ase.io import read

        try:
            atoms = read(path, index=args.index)
        except Exception as exc:  # ASE raises many types for bad files
            raise CLIError(f"cannot read structure {path}: {exc}") from exc
        source = str(path)
    if isinstance(atoms, list):
        raise CLIError("--index must select one frame")
    jaxmlp.data.validate(atoms)
    calc, model_params = _reference_calculator(args.calculator)
    t0 = time.perf_counter()
    if model_params is not None:
        model, params = model_params
        H = np.asarray(jaxmlp.hessian(model, params, jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)))
        interaction_range = model.interaction_range
        method = f"analytic ({model.name})"
    else:
        H = jaxmlp.fd_hessian(atoms, calc, delta=args.delta, progress=not args.no_progress)
        interaction_range = None
        method = f"finite differences ({args.calculator}, δ = {args.delta} Å)"
    t_h = time.perf_counter() - t0
    norms = np.asarray(jaxmlp.locality.block_norms(H))
    dist = _distances(atoms)
    curve = decay_curve(norms, dist, args.bin)
    off = ~np.eye(len(atoms), dtype=bool)
    tol = 1e-8 * max(norms.max(), 1e-300)
    nonzero = off & (norms > tol)
    result = {
        "study": "locality",
        "structure": source,
        "n_atoms": len(atoms),
        "method": method,
        "hessian_seconds": t_h,
        "max_offdiag_norm": float(norms[off].max()) if off.any() else 0.0,
        "radius_all_nonzero_blocks": float(dist[nonzero].max()) if nonzero.any() else 0.0,
        "interaction_range_2LRc": interaction_range,
        "decay": curve,
    }
    if interaction_range is not None:
        beyond = off & (dist > interaction_range)
        result["max_norm_beyond_2LRc"] = float(norms[beyond].max()) if beyond.any() else 0.0
    if args.radii:
        result["fragments"] = _fragment_series(atoms, H, calc, model_params, args)
    files = [write_json(out / "locality.json", result), write_csv(out / "locality_decay.csv", curve)]
    mids = [0.5 * (r["r_lo"] + r["r_hi"]) for r in curve]
    files.append(plot_xy(out / "locality.png", {"max ||h_AB||": (mids, [max(r["max_norm"], 1e-16) for r in curve]),
                                                   "mean ||h_AB||": (mids, [max(r["mean_norm"], 1e-16) for r in curve])},
                         "distance |R_A − R_B| (Å)", "||h_AB|| (eV/Å²)", f"Hessian decay: {method}", logy=True))
    result["files"] = files
    return result


def _fragment_series(atoms, H, calc, model_params, args):
    """G, G′ and ||Δf|| of the centre atom for fragments of increasing radius,
    and the threshold Γ (0.15 eV/Å force tolerance) when it can be bracketed."""
    import jaxmlp
    from jaxmlp.analysis.fragments import fragment_series
    from jaxmlp.analysis.locality import gamma

    center = args.center
    if center is None:
        heavy = [i for i, z in enumerate(atoms.numbers) if z > 1] or list(range(len(atoms)))
        com = atoms.positions[heavy].mean(0)
        center = int(heavy[int(np.argmin(np.linalg.norm(atoms.positions[heavy] - com, axis=1)))])
    if not 0 <= center < len(atoms):
        raise CLIError(f"--center {center} out of range for {len(atoms)} atoms")
    if model_params is not None:
        calc = jaxmlp.Calculator(*model_params)
    series = fragment_series(atoms, calc, center, radii=sorted(args.radii), hessian=H, delta=args.delta)
    rows = [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in r.items()} for r in series.rows]
    out = {"center": center, "series": rows}
    try:
        out["gamma_eV_per_A2"] = float(gamma([r["delta_f_norm"] for r in rows], [r["Gprime_norm"] for r in rows], force_tolerance=0.15))
        if not np.isfinite(out["gamma_eV_per_A2"]):
            out["gamma_eV_per_A2"] = None
            out["gamma_note"] = "no fragment exceeds the 0.15 eV/Å force tolerance: Γ is unbounded (use smaller radii)"
    except ValueError as exc:  # too few or unbracketed points
        out["gamma_eV_per_A2"] = None
        out["gamma_note"] = str(exc)
    return out


# ---------------------------------------------------------------- training-based studies
def _train(model, train_set, valid_set, epochs, loss, seed, progress):
    from jaxmlp import training

    cfg = training.TrainConfig(loss=loss, epochs=epochs, seed=seed, progress=progress)
    t0 = time.perf_counter()
    params, history = training.train(model, train_set, valid_set, cfg)
    return params, history, time.perf_counter() - t0


def _errors(model, params, dataset):
    from jaxmlp.training import metrics

    m = metrics.evaluate(model, params, dataset)
    return {k: float(v) for k, v in m.items() if np.ndim(v) == 0}


def _cost_per_atom(model, params, dataset):
    import jax
    import jaxmlp

    atoms = dataset[0] if not hasattr(dataset, "structures") else dataset.structures[0]
    g = _graph(model, atoms)
    ef = jax.jit(partial(jaxmlp.energy_and_forces, model))
    t = time_call(lambda: jax.block_until_ready(ef(params, g)), repeat=3)
    return t / len(atoms)


def _model_force_range(model, params, dataset):
    import jaxmlp

    atoms = max((dataset[i] for i in range(len(dataset))), key=len)
    r = jaxmlp.locality.force_range(model, params, atoms)
    return {"max_norm_beyond_2LRc": float(r.max_beyond), "radius_all_nonzero_blocks": float(r.radius)}


def _dataset_and_split(args):
    ds = load_structures(args.data, "cu_clusters_emt", args.n_structures, args.seed)
    if len(ds) < 3:
        raise CLIError(f"need at least 3 structures to split, got {len(ds)}")
    train, valid, test = ds.split((0.7, 0.15, 0.15), seed=args.seed)
    return ds, train, valid, test


def run_cutoff(args, out: pathlib.Path) -> dict:
    """Accuracy (E/F), cost and force range of a model trained at each cutoff."""
    from tqdm.auto import tqdm

    ds, train, valid, test = _dataset_and_split(args)
    rows = []
    for rc in tqdm(sorted(args.cutoffs), desc="cutoffs", disable=args.no_progress):
        model = make_model(args.model, ds.elements, rc, dataset=train, basis=args.basis)
        params, history, t_train = _train(model, train, valid, args.epochs, args.loss, args.seed, not args.no_progress)
        row = {"cutoff": rc, "train_seconds": t_train, **_errors(model, params, test),
               "seconds_per_atom": _cost_per_atom(model, params, test), **_model_force_range(model, params, test)}
        rows.append(row)
    files = [write_json(out / "cutoff.json", {"study": "cutoff", "model": args.model, "rows": rows}), write_csv(out / "cutoff.csv", rows)]
    key = _force_key(rows)
    files.append(plot_xy(out / "cutoff.png", {key: ([r["cutoff"] for r in rows], [r[key] for r in rows])}, "cutoff R_c (Å)", key, f"{args.model}: accuracy vs cutoff"))
    return {"rows": rows, "files": files}


def run_layers(args, out: pathlib.Path) -> dict:
    """ml-ACE accuracy, cost and measured force range vs number of layers."""
    from tqdm.auto import tqdm

    ds, train, valid, test = _dataset_and_split(args)
    rows = []
    for L in tqdm(sorted(args.layers), desc="layers", disable=args.no_progress):
        model = make_model("mlace", ds.elements, args.cutoff, n_layers=L, dataset=train, basis=args.basis)
        params, history, t_train = _train(model, train, valid, args.epochs, "forces", args.seed, not args.no_progress)
        row = {"n_layers": L, "cutoff": args.cutoff, "2LRc": 2 * L * args.cutoff, "train_seconds": t_train,
               **_errors(model, params, test), "seconds_per_atom": _cost_per_atom(model, params, test),
               **_model_force_range(model, params, test)}
        rows.append(row)
    files = [write_json(out / "layers.json", {"study": "layers", "rows": rows}), write_csv(out / "layers.csv", rows)]
    key = _force_key(rows)
    files.append(plot_xy(out / "layers.png", {key: ([r["n_layers"] for r in rows], [r[key] for r in rows])}, "ml-ACE layers L", key, "ml-ACE: accuracy vs layers"))
    return {"rows": rows, "files": files}


def _force_key(rows):
    for k in ("force_mae", "forces_mae", "force_rmse", "energy_mae_per_atom"):
        if k in rows[0]:
            return k
    return next(k for k, v in rows[0].items() if isinstance(v, float))


def run_train(args, out: pathlib.Path) -> dict:
    """Train from a config file through the library's ``training.train``."""
    from .config import load_config, run_config

    cfg = load_config(args.config)
    return run_config(cfg, out, seed=args.seed, progress=not args.no_progress)
