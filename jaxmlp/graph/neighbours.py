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

__all__ = ["NeighbourList", "check_pair_budget", "estimate_pairs", "max_degree", "neighbour_list"]

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


#: Most bins along one axis of the pair-count bound (keeps the int64 bin keys exact).
_MAX_BINS_PER_AXIS = 1 << 20


def _bin_bound(heights, periodic, extent, cutoff, split):
    """Pair-count bound from bins of width ``>= cutoff / split`` along each face normal.

    ``heights [N, 3]`` are the atoms' distances from the three pairs of cell
    faces (wrapped into ``[0, extent)`` along periodic axes).  Two atoms within
    ``cutoff`` differ by less than ``cutoff`` in every height, so a pair
    ``(i, j, S)`` can only join bins whose unwrapped index offsets are at most
    ``split`` apart on every axis; each unwrapped offset is one periodic image,
    so counting ``c_b · c_b'`` over those offsets bounds the directed pairs
    (self-pairs with ``S = 0`` included, then removed).
    """
    n = len(heights)
    index = np.empty((n, 3), np.int64)
    n_bins = np.empty(3, np.int64)
    per_axis = []  # [(offset delta, multiplicity)] per axis after folding images
    for k in range(3):
        if periodic[k]:
            m = int(min(max(1, math.floor(split * extent[k] / cutoff)), _MAX_BINS_PER_AXIS))
            width = extent[k] / m
            reach = math.ceil(cutoff / width)
            index[:, k] = np.minimum((heights[:, k] / width).astype(np.int64), m - 1)
            # unwrapped offsets o in [-reach, reach] land on bin (b + o) mod m
            mult = np.bincount(np.arange(-reach, reach + 1) % m, minlength=m)
            per_axis.append([(d, int(c)) for d, c in enumerate(mult) if c])
        else:
            low = heights[:, k].min()
            span = heights[:, k].max() - low
            width = max(cutoff / split, span / (_MAX_BINS_PER_AXIS - 1))
            m = int(span / width) + 1
            reach = math.ceil(cutoff / width)
            index[:, k] = np.minimum(((heights[:, k] - low) / width).astype(np.int64), m - 1)
            per_axis.append([(d, 1) for d in range(-reach, reach + 1)])
        n_bins[k] = m
    keys = (index[:, 0] * n_bins[1] + index[:, 1]) * n_bins[2] + index[:, 2]
    occupied, counts = np.unique(keys, return_counts=True)
    b0 = occupied // (n_bins[1] * n_bins[2])
    b1 = (occupied // n_bins[2]) % n_bins[1]
    b2 = occupied % n_bins[2]
    counts = counts.astype(np.int64)
    total = 0
    for d0, w0 in per_axis[0]:
        for d1, w1 in per_axis[1]:
            for d2, w2 in per_axis[2]:
                c = [b0 + d0, b1 + d1, b2 + d2]
                ok = np.ones(len(occupied), bool)
                for k in range(3):
                    if periodic[k]:
                        c[k] = c[k] % n_bins[k]
                    else:
                        ok &= (c[k] >= 0) & (c[k] < n_bins[k])
                other = (c[0] * n_bins[1] + c[1]) * n_bins[2] + c[2]
                pos = np.searchsorted(occupied, other)
                pos = np.minimum(pos, len(occupied) - 1)
                hit = ok & (occupied[pos] == other)
                total += w0 * w1 * w2 * int(np.dot(counts[hit], counts[pos[hit]]))
    return total - n


def estimate_pairs(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> int:
    """Upper bound on the number of directed pairs (with images) within ``cutoff``.

    Counted before the search, in ``O(N log N)`` time and ``O(N)`` memory, from
    a cell list: atoms are binned by their distance from the cell faces (bins
    at least ``cutoff`` wide) and every pair of bins close enough to hold a
    pair, with each periodic image counted once, contributes ``n_b · n_b'``.
    The bound holds for any distribution of atoms (clusters in a large box,
    slabs and wires with a zero vacuum vector, cells smaller than the cutoff).
    It is within about 8× of the true count for homogeneous matter; when that
    exceeds ``MAX_PAIRS`` it is refined with bins ``cutoff / 2`` wide (about 4×).

    Parameters
    ----------
    positions : [N, 3] float, Å
    cell : [3, 3] float, Å (rows; ignored along non-periodic axes)
    pbc : [3] bool
    cutoff : float, Å

    Returns
    -------
    int
        ``>=`` the length of :func:`neighbour_list` ``(positions, cell, pbc, cutoff)``.
    """
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    pbc = np.asarray(pbc, bool)
    n = len(positions)
    if n == 0:
        return 0
    if pbc.any():
        box = _complete_box(positions, np.asarray(cell, np.float64), pbc, cutoff)
    else:
        box = np.eye(3)
    extent = _interplanar_distances(box)
    frac = np.linalg.solve(box.T, positions.T).T
    frac[:, pbc] %= 1.0
    heights = frac * extent
    heights[:, pbc] = np.clip(heights[:, pbc], 0.0, np.nextafter(extent[pbc], 0.0))
    coarse = _bin_bound(heights, pbc, extent, cutoff, split=1)
    if coarse <= MAX_PAIRS:
        return coarse
    return min(coarse, _bin_bound(heights, pbc, extent, cutoff, split=2))


def check_pair_budget(positions, cell, pbc, cutoff: float, what: str = "cutoff") -> None:
    """Raise ``ValueError`` if the pairs within ``cutoff`` could exceed ``MAX_PAIRS``."""
    bound = estimate_pairs(positions, cell, pbc, cutoff)
    if bound > MAX_PAIRS:
        raise ValueError(
            f"{what} {cutoff} Å is too large for this structure ({len(positions)} atoms, "
            f"pbc={np.asarray(pbc, bool).tolist()}): the neighbour list could hold up to {bound:.3g} "
            f"directed pairs (limit {MAX_PAIRS:.0e}); use a smaller cutoff or a larger cell"
        )


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
        If the cutoff is not positive or could produce more than
        ``MAX_PAIRS`` pairs (:func:`estimate_pairs`); the message names the cutoff.
    """
    import vesin

    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"cutoff must be a positive finite number of Å, got {cutoff!r}")
    if not pbc.any() and len(positions) <= _BRUTE_FORCE_MAX_ATOMS:
        return _brute_force(positions, float(cutoff))
    box = cell.copy()
    if not pbc.all():
        # vesin needs a well-defined box; non-periodic directions get a vector
        # orthogonal to the periodic ones and long enough never to matter.
        box = _complete_box(positions, cell, pbc, cutoff)
    if pbc.any() and abs(np.linalg.det(box)) < 1e-9:
        raise ValueError("periodic cell has zero volume (linearly dependent cell vectors)")
    check_pair_budget(positions, cell, pbc, cutoff)
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


#: Molecules up to this size are searched by all pairs (vesin's cell grid costs milliseconds for
#: a small cutoff in a large bounding box, e.g. the 0.1 Å overlap check of :func:`jaxmlp.graph.validate`).
_BRUTE_FORCE_MAX_ATOMS = 256


def _brute_force(positions: np.ndarray, cutoff: float) -> NeighbourList:
    """All directed pairs ``i != j`` closer than ``cutoff`` of a non-periodic structure, by centre then neighbour."""
    d = positions[None, :, :] - positions[:, None, :]
    close = np.einsum("ijk,ijk->ij", d, d) < cutoff * cutoff
    np.fill_diagonal(close, False)
    i, j = np.nonzero(close)
    return NeighbourList(
        centres=i.astype(np.int32), neighbours=j.astype(np.int32), offsets=np.zeros((len(i), 3), np.int32)
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
