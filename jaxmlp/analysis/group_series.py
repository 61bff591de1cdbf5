"""The group-removal locality series of Herbold & Behler (J. Chem. Phys. 156, 114106 (2022)).

For a reference atom ``A`` of a finite structure ``Y`` and functional units
ordered from ``A`` outward (:func:`jaxmlp.analysis.fragments.units_along_chain`
or explicit index lists), the fragment ``Y_g`` removes the last ``g`` units
and caps the cut bonds with H (:func:`jaxmlp.analysis.fragments.remove_units`).
Per fragment (eqs. 4, 6, 7 of the paper):

* ``Δf_A = f_A(Y) − f_A(Y_g)`` [3] eV/Å and its norm;
* ``G = Σ_{B removed} h_AB`` from the full structure's Hessian row of ``A``;
* ``G′ = G − Σ_{caps b} h_Ab`` with ``h_Ab`` from the fragment's Hessian
  row of ``A``; Frobenius norms (eV/Å²).

Only ``A``'s row of each Hessian is needed.  :func:`hessian_row` gets it
from the 6 force calls that displace ``A`` alone (the Hessian is symmetric,
so ``h_AB = ∂²E/∂R_A∂R_B = −∂F_B/∂R_A``).  :class:`ForceCache` stores every
force call on disk under a hash of the structure, so long studies resume.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from ase import Atoms

from ..hessians import fd_hessian_columns

__all__ = ["ForceCache", "GroupSeries", "group_series", "hessian_row", "smallest_converged"]


class ForceCache:
    """Forces of an ASE calculator, cached on disk per structure.

    The key is the SHA-256 of ``tag``, the atomic numbers, positions, cell
    and pbc (exact float64 bytes), so a changed geometry or a different
    calculator setting (put it in ``tag``) is a new entry.  Files are
    ``<directory>/<key>.npy`` ``[N, 3]`` eV/Å, written atomically.

    Parameters
    ----------
    directory : str or Path, optional
        ``None``: no disk cache (every call computes).
    tag : str
        Identifies the calculator and its settings.
    """

    def __init__(self, directory=None, tag: str = ""):
        self.directory = None if directory is None else os.fspath(directory)
        self.tag = str(tag)
        self.hits = 0
        self.calls = 0

    def key(self, atoms: Atoms) -> str:
        h = hashlib.sha256(self.tag.encode())
        for arr in (np.asarray(atoms.numbers, np.int64), np.asarray(atoms.positions, np.float64),
                    np.asarray(atoms.cell.array, np.float64), np.asarray(atoms.pbc, bool)):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:32]

    def forces(self, atoms: Atoms, calculator) -> np.ndarray:
        """Forces ``[N, 3]`` eV/Å of ``atoms`` (a copy is given to ``calculator``)."""
        path = None
        if self.directory is not None:
            path = os.path.join(self.directory, self.key(atoms) + ".npy")
            if os.path.exists(path):
                f = np.load(path)
                if f.shape == (len(atoms), 3):
                    self.hits += 1
                    return f
        a = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        a.calc = calculator
        f = np.array(a.get_forces(), dtype=np.float64)
        self.calls += 1
        if path is not None:
            from ..utils import atomic_write

            atomic_write(path, lambda fh: np.save(fh, f), binary=True, make_parents=True)
        return f


def hessian_row(atoms: Atoms, calculator, index: int, delta: float = 0.0025, cache: ForceCache | None = None) -> np.ndarray:
    """Row ``A = index`` of the Hessian by central differences, ``[N, 3, 3]`` eV/Å².

    ``out[B, α, β] = h_AB[α, β] = ∂²E/∂R_Aα∂R_Bβ ≈ −(F_Bβ(R_A + δe_α) −
    F_Bβ(R_A − δe_α)) / 2δ``: 6 force calls, displacing atom ``A`` only
    (the Hessian is symmetric, so the column of displacements of ``A`` is its
    row).  Error O(δ²) plus the force noise of the calculator divided by 2δ.

    Parameters
    ----------
    atoms : ase.Atoms
    calculator : ASE calculator (forces)
    index : int — atom ``A``.
    delta : float, Å — displacement (the paper: 0.0025 Å).
    cache : ForceCache, optional
    """
    n = len(atoms)
    if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < n:
        raise ValueError(f"index {index!r} out of range for {n} atoms")
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a positive number of Å, got {delta!r}")
    cache = cache or ForceCache()
    # column 3B+β, α of the FD columns is ∂²E/∂R_Bβ∂R_Aα = h_AB[α, β]
    cols = fd_hessian_columns(atoms, calculator, [int(index)], delta, forces=lambda a: cache.forces(a, calculator))
    return cols.reshape(n, 3, 3).transpose(0, 2, 1)


class GroupSeries(NamedTuple):
    """Result of :func:`group_series`.

    Attributes
    ----------
    reference : int — atom ``A`` (index in the full structure).
    force_full : [3] eV/Å — ``f_A`` of the full structure.
    row_full : [N, 3, 3] eV/Å² — ``A``'s Hessian row of the full structure.
    rows : list of dict, one per fragment ``g = 1, 2, …`` with ``g``,
        ``formula``, ``n_atoms``, ``n_removed`` (atoms), ``n_caps``,
        ``delta_f`` [3] and ``delta_f_norm`` (eV/Å), ``G_norm``,
        ``Gprime_norm``, ``caps_norm`` (``||Σ_b h_Ab||``) (eV/Å²),
        ``cap_distances`` (Å) and ``cap_h_norms`` (``||h_Ab||`` per cap).
    fragments : list of Fragment
    """

    reference: int
    force_full: np.ndarray
    row_full: np.ndarray
    rows: list
    fragments: list


def group_series(
    atoms: Atoms,
    calculator,
    reference: int,
    units: Sequence[Sequence[int]],
    delta: float = 0.0025,
    cache: ForceCache | None = None,
    progress: bool = False,
    desc: str = "",
    **remove_kwargs,
) -> GroupSeries:
    """Force errors and ``G′`` of the group-removal fragments of ``atoms``.

    Cost: 7 force calls for the full structure and 7 per fragment (the
    force plus the 6 displacements of ``A``).

    Parameters
    ----------
    atoms : ase.Atoms (finite)
    calculator : ASE calculator (forces)
    reference : int
    units : sequence of sequences of int
        Functional units ordered from ``A`` outward (the first holds ``A``).
    delta : float, Å
    cache : ForceCache, optional
    progress : bool — a tqdm bar over the force calls.
    desc : str — label of the progress bar.
    **remove_kwargs
        Passed to :func:`jaxmlp.analysis.fragments.remove_units`
        (``bond_lengths``, ``bonds``, ``bond_scale``).

    Returns
    -------
    GroupSeries
    """
    from .fragments import group_removal_fragments

    frags = group_removal_fragments(atoms, reference, units, **remove_kwargs)
    cache = cache or ForceCache()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=7 * (1 + len(frags)), desc=desc or "group series", unit="force")

    def step():
        if bar is not None:
            bar.update(7)

    A = int(reference)
    f_full = cache.forces(atoms, calculator)[A].copy()
    row_full = hessian_row(atoms, calculator, A, delta, cache)
    step()
    R = np.asarray(atoms.positions)
    rows = []
    for frag in frags:
        fa = frag.atoms
        c = frag.center
        f_frag = cache.forces(fa, calculator)[c]
        row = hessian_row(fa, calculator, c, delta, cache)
        caps = frag.saturating
        removed = np.asarray(frag.info["removed"], int)
        G = row_full[removed].sum(axis=0)
        hcap = row[caps]
        Gp = G - hcap.sum(axis=0)
        df = f_full - f_frag
        rows.append({
            "g": int(frag.info["n_removed_units"]),
            "formula": fa.get_chemical_formula(),
            "n_atoms": len(frag),
            "n_removed": len(removed),
            "n_caps": len(caps),
            "delta_f": df.tolist(),
            "delta_f_norm": float(np.linalg.norm(df)),
            "G_norm": float(np.linalg.norm(G)),
            "Gprime_norm": float(np.linalg.norm(Gp)),
            "caps_norm": float(np.linalg.norm(hcap.sum(axis=0))),
            "cap_distances": np.linalg.norm(fa.positions[caps] - fa.positions[c], axis=1).tolist(),
            "cap_h_norms": np.linalg.norm(hcap, axis=(1, 2)).tolist(),
            "removed_max_distance": float(np.linalg.norm(R[removed] - R[A], axis=1).max()),
        })
        step()
    if bar is not None:
        bar.close()
    return GroupSeries(reference=A, force_full=f_full, row_full=row_full, rows=rows, fragments=frags)


def smallest_converged(gprime_norms: Sequence[float], threshold: float = 0.35) -> int | None:
    """Index of the smallest fragment a threshold Γ accepts, or ``None``.

    ``gprime_norms[k]`` is ``||G′||`` of the fragment with ``k + 1`` units
    removed (nested groups, largest fragment first).  The accepted fragment
    is the last ``k`` such that every fragment up to it has ``||G′|| ≤ Γ``
    (the paper's reading of Table S1: HD13 propane for Γ = 0.35 eV/Å²);
    ``None`` if even the first fragment exceeds Γ.
    """
    gp = np.asarray(gprime_norms, float).reshape(-1)
    if not np.all(np.isfinite(gp)) or np.any(gp < 0):
        raise ValueError("gprime_norms must be finite and non-negative")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    bad = np.flatnonzero(gp > threshold)
    last = (int(bad[0]) if len(bad) else len(gp)) - 1
    return None if last < 0 else last
