"""Neighbour lists for molecules and (mixed-)periodic cells of any size.

The pair search is delegated to `vesin <https://github.com/Luthaf/vesin>`_, a
maintained cell-list library that handles triclinic cells, mixed periodic
boundary conditions and cells smaller than the cutoff (an atom then meets
several periodic images of the same neighbour, and possibly itself).  On the
2-core development machine vesin built a 16k-atom, R_c = 6 Å list in about
0.1 s versus 0.24 s for matscipy and 3.3 s for ASE (see
``benchmarks/neighbours.py``), which is why it was chosen.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["NeighbourList", "neighbour_list", "estimate_pairs", "max_degree"]

# A neighbour list with more pairs than this is almost certainly a mistake
# (e.g. a 100 Å cutoff in a 2 Å cell) and would exhaust memory.
MAX_PAIRS = 200_000_000


class NeighbourList(NamedTuple):
    """Directed pairs within the cutoff.

    Attributes
    ----------
    centres : [E] int32
        Index ``i`` of the centre atom (the graph's ``receivers``).
    neighbours : [E] int
        Index ``j`` of the neighbour atom (the graph's ``senders``).
    offsets : [E, 3] int
        Integer cell shifts ``S`` such that the pair vector is
        ``R[j] - R[i] + S @ cell``.
    """

    centres: np.ndarray
    neighbours: np.ndarray
    offsets: np.ndarray


def _interplanar_distances(cell: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of the cell, [3] Å."""
    volume = abs(np.linalg.det(cell))
    cross = np.stack(
        [np.cross(cell[1], cell[2]), np.cross(cell[2], cell[0]), np.cross(cell[0], cell[1])]
    )
    return volume / np.linalg.norm(cross, axis=1)


def estimate_pairs(n_atoms: int, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> float:
    """Upper estimate of the number of directed pairs within ``cutoff``.

    Used to reject cutoffs that a cell cannot support in memory before the
    search starts.
    """
    pbc = np.asarray(pbc, bool)
    if not pbc.any() or n_atoms == 0:
        return float(n_atoms) ** 2
    cell = np.asarray(cell, float)
    dist = _interplanar_distances(cell)
    images = 1.0
    for k in range(3):
        if pbc[k]:
            images *= 2 * math.ceil(cutoff / dist[k]) + 1
    # density-based estimate of neighbours inside the sphere, capped by all images
    volume = abs(np.linalg.det(cell))
    if pbc.all():
        # atoms per cutoff sphere at the cell's density, with a safety margin
        per_atom = 2.0 * 4.0 / 3.0 * math.pi * cutoff**3 * n_atoms / volume
    else:
        per_atom = n_atoms * images
    return float(n_atoms) * min(per_atom * 1.5 + 1.0, n_atoms * images)


def neighbour_list(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    cutoff: float,
) -> NeighbourList:
    """All directed pairs ``(i, j, S)`` with ``|R[j] - R[i] + S @ cell| < cutoff``.

    Parameters
    ----------
    positions : [N, 3] float, Å
    cell : [3, 3] float, Å (rows are lattice vectors; ignored along non-periodic axes)
    pbc : [3] bool
    cutoff : float, Å

    Returns
    -------
    NeighbourList
        Sorted by centre ``i`` (stable), every pair once per direction and per
        periodic image; self-pairs appear only for ``S != 0``.

    Raises
    ------
    ValueError
        If the cutoff is not positive or would produce more than
        ``MAX_PAIRS`` pairs for this cell.
    """
    import vesin

    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"cutoff must be a positive finite number of Å, got {cutoff!r}")
    n = len(positions)
    box = cell.copy()
    if not pbc.all():
        # vesin needs a well-defined box; non-periodic directions get a vector
        # orthogonal to the periodic ones and long enough never to matter.
        box = _complete_box(positions, cell, pbc, cutoff)
    if pbc.any():
        if abs(np.linalg.det(box)) < 1e-9:
            raise ValueError("periodic cell has zero volume (linearly dependent cell vectors)")
        est = estimate_pairs(n, box, pbc, cutoff)
        if est > MAX_PAIRS:
            raise ValueError(
                f"cutoff {cutoff} Å is too large for this cell: about {est:.3g} pairs "
                f"(limit {MAX_PAIRS:.0e}); use a smaller cutoff or a larger cell"
            )
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, shifts = calculator.compute(
        points=positions, box=box, periodic=[bool(p) for p in pbc], quantities="ijS"
    )
    if len(i) > 1 and np.any(i[1:] < i[:-1]):
        order = np.argsort(i, kind="stable")
        i, j, shifts = i[order], j[order], shifts[order]
    return NeighbourList(
        centres=i.astype(np.int32, copy=False),
        neighbours=j.astype(np.int32, copy=False),
        offsets=shifts.astype(np.int32, copy=False),
    )


def _complete_box(positions, cell, pbc, cutoff):
    """A box whose periodic rows are the cell's and whose other rows are inert."""
    if not pbc.any():
        return np.zeros((3, 3))
    box = np.array(cell, float)
    extent = np.ptp(positions, axis=0).max() if len(positions) else 0.0
    length = 2.0 * (extent + cutoff) + 10.0
    periodic_rows = [box[k] for k in range(3) if pbc[k]]
    for k in range(3):
        if pbc[k]:
            continue
        # direction orthogonal to the periodic vectors (or any free direction)
        if len(periodic_rows) == 2:
            d = np.cross(periodic_rows[0], periodic_rows[1])
        else:
            trial = np.eye(3)
            d = None
            for t in trial:
                v = t.copy()
                for p in periodic_rows:
                    v -= np.dot(v, p) / np.dot(p, p) * p
                if np.linalg.norm(v) > 1e-6:
                    d = v
                    break
        d = d / np.linalg.norm(d)
        box[k] = d * length
        periodic_rows.append(box[k])
    return box


def max_degree(structures, cutoff: float) -> int:
    """Largest neighbour count within ``cutoff`` over ``structures``, rounded up to a multiple of 8.

    Use it as :func:`jaxmlp.models.mlace`'s ``max_neighbors`` for those structures (the
    dense layout; any overflow falls back to the edge-list path, so this
    only affects speed).

    Parameters
    ----------
    structures : iterable of ase.Atoms
    cutoff : float, Å
    """
    deg = 1
    for atoms in structures:
        centres = neighbour_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff).centres
        if len(centres):
            deg = max(deg, int(np.bincount(centres).max()))
    return 8 * -(-deg // 8)
