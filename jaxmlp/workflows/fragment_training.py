"""Bulk potentials from under-converged fragments (Herbold & Behler, Digital Discovery 2023).

The workflow, one function per step:

1. **Range of the reference** — :func:`locality_rows` runs the Hessian
   locality test of one site in a finite reference cluster (A's Hessian row
   from 6 force calls, :func:`jaxmlp.analysis.group_series.hessian_row`;
   spherical H-capped fragments, :func:`jaxmlp.analysis.fragments.cut`):
   per fragment radius the force error ``||Δf_A||`` against the cluster and
   ``||G′||`` of the removed atoms.  :func:`reference_range` turns the rows
   of all inequivalent sites into ``R_frag^conv`` (smallest radius whose
   ``||G′||`` stays ≤ Γ = 0.35 eV/Å², or whose ``||Δf||`` stays ≤ a force
   tolerance, for it and every larger fragment) and proposes
   ``R_c = R_frag^conv / 2``.
2. **Fragments from bulk** — :func:`cut_fragments`: site-centred fragments
   of periodic snapshots (unwrapped, bonds H-capped, groups and whole
   molecules kept whole), each with a mask of its central atoms (complete
   environment within the model cutoff, :func:`~jaxmlp.analysis.fragments.complete_environment`);
   :func:`environment_table` is the paper's Table 1/2.
3. **Labelling** — :func:`jaxmlp.data.label.label` (resumable, progress bar,
   ``executor=`` / ``workers=``).
4. **HDNNPs** — :func:`fragment_hdnnp` (ACSF grid for a cutoff, scaling and
   per-element E0 fitted on the fragment set) and :func:`train_hdnnps`
   (several models, one :class:`~jaxmlp.training.TrainConfig`: same
   protocol and budget).
5. **Validation on bulk** — :func:`bulk_errors` (force RMSE/MAE, energy
   RMSE/MAE after the paper's constant offset correction from one reference
   structure: Table 6), :func:`central_force_errors` (the reference's own
   ``||f_bulk − f_fragment||`` of central atoms: Figs. 6/7) and
   :func:`model_range` (model Hessian: ``||h_AB|| = 0`` beyond ``2·R_c`` and
   the measured force range).

Energies in eV, lengths in Å, forces in eV/Å, Hessian blocks in eV/Å².
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from ase import Atoms

from ..analysis.fragments import Fragment, complete_environment, cut
from ..analysis.group_series import ForceCache, hessian_row
from ..analysis.locality import force_range

__all__ = [
    "ReferenceRange",
    "bulk_errors",
    "central_force_errors",
    "converged_radius",
    "cut_fragments",
    "environment_table",
    "fragment_hdnnp",
    "locality_rows",
    "model_range",
    "reference_range",
    "train_hdnnps",
]


# ----------------------------------------------------------------------------
# 1. range of the reference
# ----------------------------------------------------------------------------
def locality_rows(cluster: Atoms, calculator, centre: int, radii: Sequence[float], delta: float = 0.0025,
                  cache: ForceCache | None = None, progress: bool = False, **cut_kwargs) -> list[dict]:
    """Hessian locality test of one site: ``||Δf_A||`` and ``||G′||`` per fragment radius.

    ``cluster`` is a finite reference system around the site (for a crystal
    or liquid: a large fragment cut from a periodic snapshot, as in the
    paper).  A's Hessian row of the cluster comes from 6 force calls; each
    fragment costs one force call plus, if it has H caps, 6 more for the
    cap blocks ``h_Ab`` of its own Hessian row.

    Parameters
    ----------
    cluster : ase.Atoms (finite)
    calculator : ASE calculator (forces)
    centre : int — site ``A`` (index in ``cluster``).
    radii : sequence of float, Å — fragment radii (fragments that do not
        differ from the cluster or from a larger one are skipped).
    delta : float, Å — finite-difference step.
    cache : ForceCache, optional — disk cache of force calls (resumable).
    progress : bool
    **cut_kwargs — passed to :func:`jaxmlp.analysis.fragments.cut`.

    Returns
    -------
    list of dict, by increasing radius: ``radius``, ``n_atoms``, ``n_caps``,
    ``n_removed``, ``delta_f_norm`` (eV/Å), ``G_norm``, ``Gprime_norm`` (eV/Å²).
    """
    if np.any(cluster.pbc):
        raise ValueError("locality_rows needs a finite reference cluster; cut one from the periodic structure first")
    n = len(cluster)
    if not isinstance(centre, (int, np.integer)) or not 0 <= int(centre) < n:
        raise ValueError(f"centre {centre!r} out of range for {n} atoms")
    A = int(centre)
    cache = cache or ForceCache()
    f_full = cache.forces(cluster, calculator)[A]
    row_full = hessian_row(cluster, calculator, A, delta, cache)
    rows, seen = [], set()
    radii = sorted(float(r) for r in radii)
    it = radii
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(radii, desc=f"locality of site {A}", unit="fragment")
    for r in it:
        frag = cut(cluster, A, r, **cut_kwargs)
        key = tuple(sorted(int(p) for p in frag.parent_indices if p >= 0))
        removed = frag.excluded(n)
        if key in seen or len(removed) == 0:
            continue
        seen.add(key)
        fa, c, caps = frag.atoms, frag.center, frag.saturating
        f_frag = cache.forces(fa, calculator)[c]
        G = row_full[removed].sum(axis=0)
        # without caps G' is G itself (not G − 0, whose norm may differ from G's in the last bit)
        Gp = G - hessian_row(fa, calculator, c, delta, cache)[caps].sum(axis=0) if len(caps) else G
        rows.append({"radius": r, "n_atoms": len(frag), "n_caps": len(caps), "n_removed": len(removed),
                     "delta_f_norm": float(np.linalg.norm(f_full - f_frag)),
                     "G_norm": float(np.linalg.norm(G)), "Gprime_norm": float(np.linalg.norm(Gp))})
    return rows


def converged_radius(rows: Sequence[Mapping], threshold: float, key: str = "Gprime_norm") -> float | None:
    """Smallest fragment radius whose ``key`` stays ≤ ``threshold`` for it and every larger fragment.

    Parameters
    ----------
    rows : sequence of dict with ``radius`` and ``key`` (e.g. from :func:`locality_rows`).
    threshold : float — Γ (eV/Å²) for ``"Gprime_norm"``, a force tolerance (eV/Å) for ``"delta_f_norm"``.
    key : str

    Returns
    -------
    float (Å) or None when even the largest fragment exceeds the threshold.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    if not rows:
        raise ValueError("converged_radius needs at least one row")
    rs = sorted(rows, key=lambda row: float(row["radius"]))
    best = None
    for row in reversed(rs):
        value = float(row[key])
        if not np.isfinite(value) or value > threshold:
            break
        best = float(row["radius"])
    return best


class ReferenceRange(NamedTuple):
    """Result of :func:`reference_range`.

    Attributes
    ----------
    r_frag_conv : float or None, Å — largest converged radius over the sites
        (``None``: some site did not converge within the radii tried).
    r_c : float or None, Å — proposed cutoff ``r_frag_conv / 2``.
    sites : dict label → converged radius (Å, or None).
    criterion : str — ``"Gprime_norm"`` (Γ) or ``"delta_f_norm"`` (force tolerance).
    threshold : float — Γ in eV/Å² or the tolerance in eV/Å.
    """

    r_frag_conv: float | None
    r_c: float | None
    sites: dict
    criterion: str
    threshold: float


def reference_range(site_rows: Mapping[str, Sequence[Mapping]], gamma: float = 0.35,
                    force_tolerance: float | None = None) -> ReferenceRange:
    """``R_frag^conv`` over inequivalent sites and the proposed ``R_c = R_frag^conv / 2``.

    Parameters
    ----------
    site_rows : dict site label → rows of :func:`locality_rows`.
    gamma : float, eV/Å² — threshold on ``||G′||`` (the paper's Γ = 0.35).
    force_tolerance : float, eV/Å, optional — use ``||Δf||`` ≤ tolerance instead of Γ.
    """
    if not site_rows:
        raise ValueError("reference_range needs the rows of at least one site")
    key, thr = ("delta_f_norm", float(force_tolerance)) if force_tolerance is not None else ("Gprime_norm", float(gamma))
    sites = {str(k): converged_radius(v, thr, key) for k, v in site_rows.items()}
    if any(v is None for v in sites.values()):
        return ReferenceRange(None, None, sites, key, thr)
    r = max(sites.values())
    return ReferenceRange(r, r / 2.0, sites, key, thr)


# ----------------------------------------------------------------------------
# 2. fragments from bulk snapshots
# ----------------------------------------------------------------------------
def cut_fragments(frames: Sequence[Atoms], centres: Sequence[Sequence[int]] | Callable[[int, Atoms], Sequence[int]],
                  radius: float, cutoff: float, keep_whole: Any = True, **cut_kwargs) -> list[Fragment]:
    """Site-centred fragments of radius ``radius`` from every snapshot, with their central atoms.

    Parameters
    ----------
    frames : sequence of ase.Atoms — periodic (or finite) snapshots.
    centres : per-frame sequences of site indices, or ``f(frame_index, atoms) -> indices``.
    radius : float, Å — fragment radius (``R_c`` small, ``R_frag^conv`` large).
    cutoff : float, Å — model cutoff that defines the central atoms.
    keep_whole : passed to :func:`~jaxmlp.analysis.fragments.cut` (for a
        molecular liquid add ``"molecules"`` so that no molecule is cut).
    **cut_kwargs — further :func:`~jaxmlp.analysis.fragments.cut` options.

    Returns
    -------
    list of Fragment, frame by frame; each has ``info["frame"]``,
    ``info["site"]`` (parent index), ``info["n_central"]`` and the per-atom
    bool array ``"central"``.
    """
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"cutoff must be a positive number of Å, got {cutoff!r}")
    if not callable(centres) and len(centres) != len(frames):
        raise ValueError(f"{len(centres)} centre lists for {len(frames)} frames")
    out = []
    for k, atoms in enumerate(frames):
        sites = centres(k, atoms) if callable(centres) else centres[k]
        for c in sites:
            frag = cut(atoms, int(c), radius, keep_whole=keep_whole, **cut_kwargs)
            mask = complete_environment(frag, atoms, cutoff)
            frag.arrays["central"] = mask
            frag.info.update(frame=int(k), site=int(c), n_central=int(mask.sum()), cutoff=float(cutoff))
            out.append(frag)
    return out


def environment_table(fragments: Sequence[Fragment], by: Callable[[Fragment], str] | None = None) -> dict:
    """``N_atom``, ``N_central`` and ``N_central/N_atom`` of fragments (the paper's Tables 1/2).

    Parameters
    ----------
    fragments : fragments of :func:`cut_fragments` (with ``info["n_central"]``).
    by : callable fragment → group label (default: the element of the site).

    Returns
    -------
    dict label → ``{"n_fragments", "n_atom_mean", "n_central_mean", "ratio", "n_atom_total", "n_central_total"}``
    """
    if by is None:
        def by(f):
            return f.get_chemical_symbols()[f.center]
    groups: dict[str, list] = {}
    for f in fragments:
        if "n_central" not in f.info:
            raise ValueError("fragments need info['n_central'] (use cut_fragments)")
        groups.setdefault(str(by(f)), []).append(f)
    table = {}
    for lab, fs in sorted(groups.items()):
        na = np.array([len(f) for f in fs], float)
        nc = np.array([f.info["n_central"] for f in fs], float)
        table[lab] = {"n_fragments": len(fs), "n_atom_mean": float(na.mean()), "n_central_mean": float(nc.mean()),
                      "ratio": float(nc.sum() / na.sum()), "n_atom_total": int(na.sum()), "n_central_total": int(nc.sum())}
    return table


def central_force_errors(fragments: Sequence[Fragment], labelled: Sequence[Atoms], bulk: Mapping[int, Atoms]) -> dict:
    """The reference's own force error of central atoms, ``||f_bulk − f_fragment||`` (Figs. 6/7).

    Parameters
    ----------
    fragments : fragments of :func:`cut_fragments` (``"central"`` mask, ``info["frame"]``).
    labelled : the same fragments labelled (forces in eV/Å), same order.
    bulk : frame index → labelled bulk snapshot (forces of the parent).

    Returns
    -------
    dict with ``norms`` [M] (eV/Å, central atoms of fragments whose frame is
    in ``bulk``), ``elements`` [M] str, ``site_only`` [K] (the site atom of
    each such fragment) and summary ``mean``, ``median``, ``max``, ``rmse``
    (of the components), ``n``.
    """
    if len(fragments) != len(labelled):
        raise ValueError(f"{len(fragments)} fragments but {len(labelled)} labelled structures")
    norms, elems, site = [], [], []
    for frag, lab in zip(fragments, labelled):
        k = frag.info["frame"]
        if k not in bulk:
            continue
        if len(lab) != len(frag) or not np.allclose(lab.positions, frag.positions, atol=1e-6):
            raise ValueError(f"labelled structure does not match fragment of frame {k}, site {frag.info['site']}")
        fb = np.asarray(bulk[k].get_forces(), float)
        ff = np.asarray(lab.get_forces(), float)
        idx = np.flatnonzero(frag.arrays["central"])
        par = frag.arrays["parent_index"][idx]
        d = np.linalg.norm(fb[par] - ff[idx], axis=1)
        norms.extend(d.tolist())
        elems.extend(np.asarray(frag.get_chemical_symbols())[idx].tolist())
        site.append(float(np.linalg.norm(fb[frag.info["site"]] - ff[frag.center])))
    a = np.asarray(norms)
    summ = {"n": int(len(a))}
    if len(a):
        summ.update(mean=float(a.mean()), median=float(np.median(a)), max=float(a.max()),
                    rmse=float(np.sqrt(np.mean(a**2) / 3.0)))
    return {"norms": a.tolist(), "elements": elems, "site_only": site, **summ}


# ----------------------------------------------------------------------------
# 4. HDNNPs
# ----------------------------------------------------------------------------
def fragment_hdnnp(train_set, cutoff: float, n_radial: int = 6, etas: Sequence[float] = (0.0, 0.05),
                   zetas: Sequence[float] = (1.0, 4.0), hidden: Sequence[int] = (16, 16), elements=None,
                   max_neighbors: int | None = None):
    """An HDNNP for a fragment training set: ACSF grid for ``cutoff``, scaling and E0 from the set.

    ``n_radial`` shifted radial functions per element pair from 0.8 Å to
    ``cutoff`` and wide angular functions (``etas`` in 1/Å², ``zetas``,
    λ = ±1; none when ``etas`` or ``zetas`` is empty) per centre and
    neighbour pair — the same recipe for every
    cutoff, so models with ``R_c`` and ``2·R_c`` have the same number of
    functions.  Symmetry functions are scaled to [−1, 1] (centred) with the
    training set's statistics; per-element reference energies ``E0`` are the
    least-squares fit of :func:`jaxmlp.data.fit_reference_energies` to the
    training energies (for fragments of one stoichiometry family, e.g.
    (H2O)_n, the split between elements is the minimum-norm one; the
    network learns the rest).

    ``max_neighbors`` selects the dense ACSF layout (no triplet lists; much
    faster on CPU for long cutoffs): pass it with a margin over the largest
    neighbour count of any structure the model will see (an atom with more
    neighbours makes the energy NaN, see :func:`jaxmlp.models.hdnnp`).

    Returns
    -------
    Model (``model.cutoff == cutoff``, interaction range ``2·cutoff``).
    """
    from ..data import fit_reference_energies
    from ..descriptors import acsf
    from ..models import hdnnp

    elements = sorted(set(int(z) for z in np.concatenate([a.numbers for a in train_set.structures]))) if elements is None \
        else sorted(int(z) for z in elements)
    angular = acsf.angular_set(elements, cutoff, etas=etas, zetas=zetas) if len(etas) and len(zetas) else []
    sfs = acsf.radial_grid(elements, cutoff, n_radial, r_min=0.8) + angular
    stats = acsf.ACSF(elements, sfs).statistics(train_set.graphs(cutoff, triplets=bool(angular)))
    scaling = {"mode": "scalecenter", "smin": -1.0, "smax": 1.0, "stats": stats}
    e0 = fit_reference_energies(train_set, elements)
    return hdnnp(elements, sfs, hidden=tuple(hidden), activation="tanh", scaling=scaling, e0=e0,
                 max_neighbors=max_neighbors)


def train_hdnnps(specs: Mapping[str, Mapping], config, progress: bool = False, seeds: Sequence[int] | None = None,
                 **model_kwargs) -> dict:
    """Train several fragment HDNNPs with one protocol and budget.

    Parameters
    ----------
    specs : dict name → ``{"train": Dataset, "valid": Dataset or None, "cutoff": float}``
        and optionally ``"model_kwargs"`` (dict, overrides ``**model_kwargs``
        for that model only, e.g. ``max_neighbors`` for its cutoff).
    config : TrainConfig — the same for every model (epochs, ``time_limit``,
        convergence test, seed, ...).
    progress : bool — print one line per run.
    seeds : sequence of int, optional — train every model once per seed
        (``config.replace(seed=s)``; the model and its ACSF scaling are built
        once, so the compiled steps are shared between seeds).
    **model_kwargs — passed to :func:`fragment_hdnnp`.

    Returns
    -------
    dict name → ``{"model", "params", "history", "wall_s", "cpu_s", "cutoff", "n_train"}``
    (``cpu_s``: process CPU time of the run, all threads).  With ``seeds``
    each entry has ``"runs"`` instead: a list of ``{"seed", "params",
    "history", "wall_s", "cpu_s"}``, in the order of ``seeds``.
    """
    from ..training import train

    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must name at least one seed (or be None)")
    out = {}
    for name, spec in specs.items():
        kw = {**model_kwargs, **dict(spec.get("model_kwargs") or {})}
        model = fragment_hdnnp(spec["train"], spec["cutoff"], **kw)
        runs = []
        for seed in (seeds if seeds is not None else [None]):
            cfg = config if seed is None else config.replace(seed=seed)
            t, c = time.perf_counter(), time.process_time()
            params, history = train(model, spec["train"], spec.get("valid"), cfg)
            runs.append({"seed": cfg.seed, "params": params, "history": history,
                         "wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c})
            if progress:
                last = history[-1]
                print(f"{name} (seed {cfg.seed}): cutoff {spec['cutoff']:.2f} Å, {len(spec['train'])} structures, "
                      f"{len(history)} epochs, {runs[-1]['wall_s']:.0f} s, valid force RMSE "
                      f"{last.get('valid_force_rmse', float('nan')):.4f} eV/Å", flush=True)
        entry = {"model": model, "cutoff": float(spec["cutoff"]), "n_train": len(spec["train"])}
        if seeds is None:
            entry.update({k: v for k, v in runs[0].items() if k != "seed"})
        else:
            entry["runs"] = runs
        out[name] = entry
    return out


# ----------------------------------------------------------------------------
# 5. validation on bulk
# ----------------------------------------------------------------------------
def bulk_errors(model, params, bulk_set, offset_structure: Atoms | None = None, batch_size: int = 4) -> dict:
    """Energy and force errors on labelled bulk structures, with the paper's energy offset correction.

    The constant offset ``ΔE = E_ref(s₀) − E_model(s₀)`` of one reference
    structure ``s₀`` (the paper: the optimised bulk; here any labelled bulk
    structure not in ``bulk_set``) is added per atom, ``ΔE·N_g/N₀``, to the
    model energy of every structure ``g`` — it removes the arbitrary energy
    zero a model trained on fragments of other stoichiometries has; forces
    are unaffected.  Without ``offset_structure`` the mean per-atom offset
    of ``bulk_set`` itself is removed (errors are then deviations from the
    mean, labelled ``"offset": "mean"``).

    Returns
    -------
    dict: ``energy_rmse``, ``energy_mae`` (eV/atom, offset-corrected),
    ``energy_rmse_raw`` (eV/atom, uncorrected), ``offset_per_atom`` (eV),
    ``force_rmse``, ``force_mae`` (eV/Å per component), ``n_structures``, ``n_atoms``, ``offset``.
    """
    from ..data import Dataset
    from ..training import evaluate

    n_bulk = len(bulk_set)
    data = bulk_set if offset_structure is None else Dataset.from_atoms([offset_structure]) + bulk_set
    res = evaluate(model, params, data, batch_size=batch_size, return_predictions=True)  # one compiled evaluation
    n_at = np.asarray(res["n_atoms_per_structure"], float)
    dE_all = (np.asarray(res["energy_pred"]) - np.asarray(res["energy_ref"])) / n_at  # eV/atom
    dE = dE_all[-n_bulk:]
    if offset_structure is not None:
        off = float(-dE_all[0])
        kind = "reference structure"
    else:
        off = float(-dE.mean())
        kind = "mean"
    corr = dE + off
    n_ref = 0 if offset_structure is None else len(offset_structure)
    df = np.asarray(res["forces_pred"])[n_ref:] - np.asarray(res["forces_ref"])[n_ref:]
    return {"energy_rmse": float(np.sqrt(np.mean(corr**2))), "energy_mae": float(np.mean(np.abs(corr))),
            "energy_rmse_raw": float(np.sqrt(np.mean(dE**2))), "offset_per_atom": off, "offset": kind,
            "force_rmse": float(np.sqrt(np.mean(df**2))), "force_mae": float(np.mean(np.abs(df))),
            "n_structures": n_bulk, "n_atoms": int(len(df))}


def model_range(model, params, atoms: Atoms, tol: float = 1e-8, bin_width: float = 0.5,
                rows: Sequence[int] | None = None) -> dict:
    """The model Hessian's range: ``max ||h_AB||`` beyond ``2·R_c`` (must be 0) and the measured force range.

    Parameters
    ----------
    model, params : a local model (``2·R_c`` range) and its parameters.
    atoms : ase.Atoms — the test structure (a finite cluster larger than
        ``2·R_c`` across, or a periodic cell).
    tol : float, eV/Å² — blocks with norm ≤ ``tol`` count as zero for the measured range.
    bin_width : float, Å — bins of the decay table.
    rows : sequence of int, optional — only the Hessian rows of these atoms
        (``3·len(rows)`` Hessian-vector products instead of ``3N``; for
        long-cutoff models, pick atoms near the surface of a finite cluster:
        they have partners beyond ``2·R_c``).  Every block ``h_AB`` with
        ``A`` in ``rows`` and any ``B`` is evaluated.  Finite clusters only.

    Returns
    -------
    dict: ``interaction_range`` (Å, ``2·R_c``), ``max_beyond`` (eV/Å²),
    ``n_pairs_beyond``, ``measured_range`` (Å, largest distance with
    ``||h_AB|| > tol``), ``max_norm`` and the binned decay ``decay``
    (rows ``r_lo``, ``r_hi``, ``max``, ``mean``, ``count``); with ``rows``
    also ``rows`` (the atoms) and ``n_pairs``.
    """
    from ..analysis.locality import decay
    from ..graph.build import atoms_to_graph
    from ..observables import hessian

    g = atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
    if rows is not None:
        return _model_range_rows(model, params, atoms, g, rows, tol, bin_width)
    H = np.asarray(hessian(model, params, g, chunk_size=96), float)
    fr = force_range(model, params, atoms, tol=tol, hessian=H)
    dec = decay(H, atoms, bin_width=bin_width)
    return {"interaction_range": fr.local_range, "max_beyond": fr.max_beyond, "n_pairs_beyond": fr.n_beyond,
            "measured_range": fr.radius, "max_norm": fr.max_norm, "tol": float(tol), "decay": dec.rows()}


def _model_range_rows(model, params, atoms, graph, rows, tol, bin_width) -> dict:
    """:func:`model_range` from the Hessian rows of a few atoms (3 Hessian-vector products per atom)."""
    import jax
    import jax.numpy as jnp

    from ..observables import hessian_vector_product

    if np.any(atoms.pbc):
        raise ValueError("model_range(rows=...) needs a finite cluster (distances without periodic images)")
    n = len(atoms)
    idx = np.asarray(list(rows), dtype=int)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n or len(set(idx.tolist())) != idx.size:
        raise ValueError(f"rows must be distinct atom indices in [0, {n}), got {list(rows)!r}")
    if not np.isfinite(model.cutoff):
        raise ValueError("model_range needs a local model with a finite cutoff")
    local = 2.0 * float(model.cutoff) * int(getattr(model, "n_layers", 1) or 1)
    pos = np.asarray(atoms.positions, float)
    dtype = jnp.asarray(graph.nodes["positions"]).dtype  # the dtype JAX computes in (float32 without x64)
    hvp = jax.jit(lambda p, g, v: hessian_vector_product(model, p, g, v))  # one compilation for every row
    norms = np.zeros((idx.size, n))
    for k, a in enumerate(idx):
        basis = np.zeros((3 * n, 3))
        basis[3 * a:3 * a + 3, :] = np.eye(3)
        cols = np.asarray(hvp(params, graph, jnp.asarray(basis, dtype)), float)  # H[:, A]
        norms[k] = np.linalg.norm(cols.reshape(n, 3, 3), axis=(1, 2))
    dist = np.linalg.norm(pos[idx][:, None, :] - pos[None, :, :], axis=-1)
    off = dist > 0
    beyond = off & (dist > local)
    nz = off & (norms > tol)
    edges = np.arange(0.0, dist.max() + bin_width, bin_width)
    dec = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = off & (dist >= lo) & (dist < hi)
        if m.any():
            dec.append({"r_lo": float(lo), "r_hi": float(hi), "max": float(norms[m].max()),
                        "mean": float(norms[m].mean()), "count": int(m.sum())})
    return {"interaction_range": local, "max_beyond": float(norms[beyond].max()) if beyond.any() else 0.0,
            "n_pairs_beyond": int(beyond.sum()), "measured_range": float(dist[nz].max()) if nz.any() else 0.0,
            "max_norm": float(norms[off].max()), "tol": float(tol), "decay": dec, "rows": idx.tolist(),
            "n_pairs": int(off.sum())}
