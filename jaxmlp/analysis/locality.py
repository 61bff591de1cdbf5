"""Hessian locality analysis (Herbold & Behler, J. Chem. Phys. 156, 114106 (2022)).

Quantities (units eV/Å² unless stated):

* atomic Hessian submatrix ``h_AB = ∂²E/∂R_A∂R_B`` ``[3, 3]`` and its
  Frobenius norm ``||h_AB||`` (:func:`block_norms`);
* its decay with the distance ``d_AB`` (minimum image for periodic cells),
  per element pair (:func:`decay`);
* the range of the forces of a jaxmlp model (:func:`force_range`): a model
  with ``L`` layers of cutoff ``R_c`` has ``h_AB = 0`` exactly beyond
  ``2·L·R_c``;
* the Hessian group matrix ``G_A^g = Σ_{B∈g} h_AB`` of a group ``g`` of
  atoms removed from a reference system and the effective one
  ``G′_A^g = G_A^g − Σ_b h_Ab`` without the saturating hydrogens ``b``
  (:func:`group_matrix`, eqs. 4 and 6 of the paper);
* the threshold Γ on ``||G′||`` below which the force error of the
  reference atom stays within a tolerance (:func:`gamma`; the paper finds
  0.37–0.55 eV/Å² for 0.15 eV/Å and recommends Γ = 0.35 eV/Å²).

Hessians are accepted dense ``[3N, 3N]`` (atom-major) or as
:class:`jaxmlp.SparseHessian`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "Decay",
    "ForceRange",
    "block_norms",
    "decay",
    "distance_matrix",
    "force_range",
    "gamma",
    "group_matrix",
    "hessian_blocks",
]


def _dense(H) -> np.ndarray:
    from ..hessians import SparseHessian

    if isinstance(H, SparseHessian):
        return H.to_dense()
    H = np.asarray(H, float)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] % 3:
        raise ValueError(f"Hessian must be [3N, 3N], got shape {H.shape}")
    return H


def hessian_blocks(H) -> np.ndarray:
    """3×3 blocks ``h[A, B]`` of a Hessian, ``[N, N, 3, 3]`` eV/Å².

    Parameters
    ----------
    H : [3N, 3N] array (atom-major) or SparseHessian
    """
    H = _dense(H)
    n = H.shape[0] // 3
    return H.reshape(n, 3, n, 3).transpose(0, 2, 1, 3)


def block_norms(H) -> np.ndarray:
    """Frobenius norms ``||h_AB||`` of all 3×3 blocks, ``[N, N]`` eV/Å².

    Parameters
    ----------
    H : [3N, 3N] array (atom-major) or SparseHessian
    """
    from ..hessians import SparseHessian

    if isinstance(H, SparseHessian):
        out = np.zeros((H.n_atoms, H.n_atoms))
        out[H.pairs[:, 0], H.pairs[:, 1]] = H.norms()
        return out
    return np.sqrt(np.sum(hessian_blocks(H) ** 2, axis=(2, 3)))


def distance_matrix(atoms) -> np.ndarray:
    """Interatomic distances ``[N, N]`` Å (minimum image along periodic axes)."""
    from ase import Atoms

    if not isinstance(atoms, Atoms):
        raise TypeError(f"expected ase.Atoms, got {type(atoms).__name__}")
    return atoms.get_all_distances(mic=bool(np.any(atoms.pbc)))


class Decay(NamedTuple):
    """``||h_AB||`` versus distance, binned.

    Attributes
    ----------
    edges : [M + 1] float, Å — bin edges.
    curves : dict
        ``(sym_A, sym_B)`` (sorted pair of element symbols) and ``"all"`` →
        dict with ``max [M]``, ``mean [M]`` (eV/Å², NaN for empty bins) and
        ``count [M]`` (int) over off-diagonal pairs ``A ≠ B``.
    """

    edges: np.ndarray
    curves: dict

    def rows(self, key="all") -> list[dict]:
        """The curve ``key`` as a list of JSON-able rows."""
        c = self.curves[key]
        return [
            {"r_lo": float(self.edges[k]), "r_hi": float(self.edges[k + 1]), "max": float(c["max"][k]),
             "mean": float(c["mean"][k]), "count": int(c["count"][k])}
            for k in range(len(self.edges) - 1)
        ]


def decay(H, atoms, bin_width: float = 0.5, r_max: float | None = None, centers: Sequence[int] | None = None) -> Decay:
    """Max and mean ``||h_AB||`` per distance bin, per element pair.

    Parameters
    ----------
    H : [3N, 3N] array or SparseHessian
        Hessian of ``atoms`` (a SparseHessian uses its stored pairs and
        distances, so this scales to large systems).
    atoms : ase.Atoms
    bin_width : float, Å
    r_max : float, Å, optional
        Last bin edge (default: the largest distance).
    centers : sequence of int, optional
        Restrict ``A`` to these atoms (e.g. one reference atom).

    Returns
    -------
    Decay
    """
    from ..hessians import SparseHessian

    if not bin_width > 0:
        raise ValueError(f"bin_width must be positive, got {bin_width}")
    n = len(atoms)
    if isinstance(H, SparseHessian):
        if H.n_atoms != n:
            raise ValueError(f"Hessian has {H.n_atoms} atoms, structure {n}")
        a, b, d, h = H.pairs[:, 0], H.pairs[:, 1], H.distances, H.norms()
    else:
        norms = block_norms(H)
        if norms.shape[0] != n:
            raise ValueError(f"Hessian has {norms.shape[0]} atoms, structure {n}")
        dist = distance_matrix(atoms)
        a, b = np.nonzero(np.ones((n, n), bool))
        d, h = dist[a, b], norms[a, b]
    keep = a != b
    if centers is not None:
        centers = np.asarray(centers, int)
        if np.any((centers < 0) | (centers >= n)):
            raise ValueError(f"centers out of range for {n} atoms")
        keep &= np.isin(a, centers)
    a, b, d, h = a[keep], b[keep], d[keep], h[keep]
    if r_max is None:
        # the last bin must hold the largest distance, also when it is a multiple of bin_width
        n_bins = int(np.floor(float(d.max(initial=0.0)) / bin_width)) + 1
    else:
        if not r_max > 0:
            raise ValueError(f"r_max must be positive, got {r_max}")
        n_bins = max(1, int(np.ceil(float(r_max) / bin_width - 1e-9)))
    edges = bin_width * np.arange(n_bins + 1, dtype=float)
    sym = np.asarray(atoms.get_chemical_symbols())
    pair_key = np.where(sym[a] <= sym[b], np.char.add(np.char.add(sym[a], "-"), sym[b]),
                        np.char.add(np.char.add(sym[b], "-"), sym[a])) if len(a) else np.array([], str)
    curves = {}
    for key in ["all"] + sorted(set(pair_key.tolist())):
        sel = np.ones(len(a), bool) if key == "all" else pair_key == key
        k = np.digitize(d[sel], edges) - 1
        k = np.where(d[sel] == edges[-1], len(edges) - 2, k)  # the last bin is closed on the right
        ok = (k >= 0) & (k < len(edges) - 1)
        k, hv = k[ok], h[sel][ok]
        m = len(edges) - 1
        count = np.bincount(k, minlength=m)
        total = np.bincount(k, weights=hv, minlength=m)
        mx = np.full(m, -np.inf)
        np.maximum.at(mx, k, hv)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        mx = np.where(count > 0, mx, np.nan)
        curves[key if key == "all" else tuple(key.split("-"))] = {"max": mx, "mean": mean, "count": count}
    return Decay(edges=edges, curves=curves)


class ForceRange(NamedTuple):
    """Range of the forces of a model on one structure.

    Attributes
    ----------
    max_beyond : float, eV/Å²
        Largest ``||h_AB||`` with ``d_AB > local_range`` (exactly 0 for a
        strictly local model; non-zero for a model with a long-range term
        such as a 4G-HDNNP, whose charges couple every pair of atoms).
    radius : float, Å
        Smallest radius holding all blocks with ``||h_AB|| > tol`` (the
        largest distance of such a pair).
    interaction_range : float, Å
        ``model.interaction_range``: ``2·L·R_c``, or ``inf`` for a non-local model.
    max_norm : float, eV/Å² — largest off-diagonal ``||h_AB||``.
    n_beyond : int — pairs farther apart than ``local_range``.
    local_range : float, Å
        ``2·L·R_c`` of the model's cutoff and layers (equal to
        ``interaction_range`` for a local model; for a non-local one the
        range its descriptors alone would give).
    local : bool — ``model.local``.
    """

    max_beyond: float
    radius: float
    interaction_range: float
    max_norm: float
    n_beyond: int
    local_range: float = float("nan")
    local: bool = True


def force_range(model, params, atoms, tol: float = 0.0, chunk_size: int | None = 96, hessian=None) -> ForceRange:
    """Check that a model's ``h_AB`` vanish beyond ``2·L·R_c`` (or show that they do not, for a non-local model).

    Computes the *dense* Hessian (chunked Hessian-vector products, so every
    pair is evaluated, not only the ones a sparse pair list would keep) and
    compares it with the minimum-image distances.

    Parameters
    ----------
    model : jaxmlp Model
    params : pytree
    atoms : ase.Atoms
        Molecule or periodic cell (for a meaningful test, larger than
        ``2·L·R_c`` in some direction).
    tol : float, eV/Å²
        Blocks with norm ≤ ``tol`` count as zero for ``radius``.
    chunk_size : int, optional
        Columns per batch of the dense Hessian.
    hessian : [3N, 3N] array, optional
        The model's dense Hessian of ``atoms`` if already computed (e.g. by
        :func:`jaxmlp.hessian`); it is then used as given, not recomputed.

    Returns
    -------
    ForceRange
    """
    from ..graph.build import atoms_to_graph
    from ..models.base import check_elements
    from ..observables import hessian as dense_hessian

    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    check_elements(model, atoms.numbers)
    if hessian is None:
        g = atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
        H = np.asarray(dense_hessian(model, params, g, chunk_size=chunk_size), float)
    else:
        H = np.asarray(hessian, float)
        if H.shape != (3 * len(atoms), 3 * len(atoms)):
            raise ValueError(f"hessian has shape {H.shape}, expected {(3 * len(atoms),) * 2} for {len(atoms)} atoms")
    norms = block_norms(H)
    dist = distance_matrix(atoms)
    off = ~np.eye(len(atoms), dtype=bool)
    local = bool(getattr(model, "local", True))
    local_range = 2.0 * model.n_layers * float(model.cutoff)
    beyond = off & (dist > local_range)
    nonzero = off & (norms > tol)
    return ForceRange(
        max_beyond=float(norms[beyond].max(initial=0.0)),
        radius=float(dist[nonzero].max(initial=0.0)),
        interaction_range=float(model.interaction_range),
        max_norm=float(norms[off].max(initial=0.0)),
        n_beyond=int(beyond.sum()),
        local_range=local_range,
        local=local,
    )


def group_matrix(H, A: int, group: Sequence[int], saturating=()) -> np.ndarray:
    """Hessian group matrix ``G_A^g`` or the effective ``G′_A^g``, ``[3, 3]`` eV/Å².

    ``G = Σ_{B∈group} h_AB`` (eq. 4).  With saturating hydrogens,
    ``G′ = G − Σ_b h_Ab`` (eq. 6).

    Parameters
    ----------
    H : [3N, 3N] array or SparseHessian
        Hessian of the reference (full) system.
    A : int
        Reference atom.
    group : sequence of int
        Atoms ``B`` removed from the reference system (must not contain
        ``A``; no duplicates).
    saturating : sequence of int, or array [k, 3, 3]
        Either indices ``b`` into ``H`` (when ``H`` contains the saturating
        atoms), or the blocks ``h_Ab`` themselves ``[k, 3, 3]``, e.g. taken
        from the Hessian of the fragment, where the capping hydrogens exist
        (that is what :func:`jaxmlp.analysis.fragments.fragment_series` passes).

    Returns
    -------
    [3, 3] float
    """
    from ..hessians import SparseHessian

    sparse = isinstance(H, SparseHessian)
    n = H.n_atoms if sparse else _dense(H).shape[0] // 3
    if not isinstance(A, (int, np.integer)) or not 0 <= int(A) < n:
        raise ValueError(f"reference atom A={A!r} out of range for {n} atoms")
    A = int(A)
    group = np.asarray(list(group), dtype=int).reshape(-1)
    if np.any((group < 0) | (group >= n)):
        raise ValueError(f"group indices out of range for {n} atoms")
    if len(np.unique(group)) != len(group):
        raise ValueError("group contains duplicate atoms")
    if A in group:
        raise ValueError(f"the reference atom {A} must not be part of the group")

    def row_blocks(idx):
        if sparse:
            return np.stack([H.block(A, int(b)) for b in idx]) if len(idx) else np.zeros((0, 3, 3))
        Hd = _dense(H)
        return Hd[3 * A : 3 * A + 3].reshape(3, n, 3)[:, idx, :].transpose(1, 0, 2)

    G = row_blocks(group).sum(axis=0)
    sat = np.asarray(saturating, dtype=float) if len(saturating) else np.zeros((0,))
    if sat.size == 0:
        return G
    if sat.ndim == 3 and sat.shape[1:] == (3, 3):
        return G - sat.sum(axis=0)
    idx = np.asarray(saturating)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError("saturating must be a sequence of atom indices or an array of blocks [k, 3, 3]")
    if np.any((idx < 0) | (idx >= n)):
        raise ValueError(f"saturating indices out of range for {n} atoms")
    return G - row_blocks(idx).sum(axis=0)


def gamma(delta_f_norms, gprime_norms, force_tolerance: float = 0.15, method: str = "interpolate") -> float:
    """Threshold Γ on ``||G′||`` (eV/Å²) that keeps force errors within tolerance.

    Γ is the ``||G′||`` value up to which every fragment's force error
    ``||Δf_A||`` stays at or below ``force_tolerance`` (Herbold & Behler
    read it off their Fig. 7 for the most compressed structures; Γ =
    0.37–0.55 eV/Å² for 0.15 eV/Å).

    Parameters
    ----------
    delta_f_norms : [M] float, eV/Å
        Force errors ``||f_A(full) − f_A(fragment)||``.
    gprime_norms : [M] float, eV/Å²
        ``||G′||`` of the same fragments.
    force_tolerance : float, eV/Å
    method : {"interpolate", "data"}
        ``"data"``: the largest observed ``||G′||`` such that no point with a
        smaller or equal ``||G′||`` violates the tolerance.  ``"interpolate"``
        (default): the ``||G′||`` where the straight line between that last
        compliant point and the first violating one (sorted by ``||G′||``)
        reaches the tolerance.

    Returns
    -------
    float
        Γ in eV/Å²; ``inf`` if no fragment violates the tolerance, 0 if the
        smallest ``||G′||`` already does.
    """
    df = np.asarray(delta_f_norms, float).reshape(-1)
    gp = np.asarray(gprime_norms, float).reshape(-1)
    if df.shape != gp.shape:
        raise ValueError(f"delta_f_norms and gprime_norms differ in length: {df.shape} vs {gp.shape}")
    if len(df) == 0:
        raise ValueError("gamma needs at least one (||Δf||, ||G′||) point")
    if not np.all(np.isfinite(df)) or not np.all(np.isfinite(gp)) or np.any(df < 0) or np.any(gp < 0):
        raise ValueError("norms must be finite and non-negative")
    if not force_tolerance > 0:
        raise ValueError(f"force_tolerance must be positive, got {force_tolerance}")
    if method not in ("interpolate", "data"):
        raise ValueError(f"method must be 'interpolate' or 'data', got {method!r}")
    order = np.lexsort((-df, gp))  # by ||G′||, worst error first on ties
    gp, df = gp[order], df[order]
    bad = np.flatnonzero(df > force_tolerance)
    if len(bad) == 0:
        return float("inf")
    k = int(bad[0])
    if k == 0:
        return 0.0
    g0, f0, g1, f1 = gp[k - 1], df[k - 1], gp[k], df[k]
    if method == "data" or g1 == g0:
        return float(g0)
    return float(g0 + (force_tolerance - f0) * (g1 - g0) / (f1 - f0))
