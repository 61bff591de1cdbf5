"""ASE ``Atoms`` → ``jraph.GraphsTuple`` with periodic offsets and triplets.

Graph layout (every jaxmlp graph, padded or not)
------------------------------------------------
``nodes``  : ``positions [N, 3]`` float (Å), ``numbers [N]`` int (atomic
             numbers, 0 for padding), ``mask [N]`` bool.
``edges``  : ``offsets [E, 3]`` int (cell shifts), ``mask [E]`` bool.
``senders = j`` (neighbour), ``receivers = i`` (centre); the edge vector is
``r_ij = R[j] - R[i] + offsets @ cell`` and is formed inside jitted code
(:func:`jaxmlp.graph.edge_vectors`) so derivatives with respect to positions
and strain are exact.
``globals``: ``cell [G, 3, 3]`` (rows are lattice vectors, zeros when not
             periodic), ``pbc [G, 3]`` bool, ``mask [G]`` bool,
             ``n_triplet [G]`` int and ``triplets [T, 2]`` int.

``triplets`` is the one array whose leading axis is not ``G``: row ``t`` holds
the two edge indices ``(e_ij, e_ik)`` of an unordered pair of distinct edges
with the same centre ``i`` (the j<k sum of angular descriptors).  It is empty
(``[0, 2]``) unless the graph was built with ``triplets=True``.  Because of it,
jaxmlp graphs are batched with :func:`jaxmlp.graph.batch_graphs`, not
``jraph.batch`` (which would not re-index the triplets).
"""

from __future__ import annotations

import jraph
import numpy as np

from .neighbours import neighbour_list
from .validation import validate as check_structure

__all__ = ["atoms_to_graph", "build_triplets"]


def build_triplets(receivers: np.ndarray) -> np.ndarray:
    """Pairs of distinct edges sharing a centre.

    Parameters
    ----------
    receivers : [E] int, sorted ascending (as produced by the neighbour list)

    Returns
    -------
    [T, 2] int
        ``(e1, e2)`` with ``e1 < e2`` and ``receivers[e1] == receivers[e2]``;
        ``T = Σ_i d_i (d_i - 1) / 2`` with ``d_i`` the number of edges of ``i``.
    """
    receivers = np.asarray(receivers)
    n_edge = len(receivers)
    if n_edge == 0:
        return np.zeros((0, 2), np.int32)
    if np.any(receivers[1:] < receivers[:-1]):
        raise ValueError("build_triplets needs edges sorted by receiver")
    itype = np.int32 if n_edge < 2**31 - 1 else np.int64
    # block start and size of each edge's centre
    starts = np.flatnonzero(np.r_[True, receivers[1:] != receivers[:-1]]).astype(itype)
    sizes = np.diff(np.r_[starts, itype(n_edge)]).astype(itype)
    local = np.arange(n_edge, dtype=itype) - np.repeat(starts, sizes)
    count = np.repeat(sizes, sizes) - local - 1  # partners after this edge in its block
    n_trip = int(count.sum(dtype=np.int64))
    if n_trip >= 2**31 - 1:
        itype = np.int64
    out = np.empty((n_trip, 2), itype)
    out[:, 0] = np.repeat(np.arange(n_edge, dtype=itype), count)
    # e2 − e1 runs through 1..count[e1] for each e1
    out[:, 1] = out[:, 0] + _within_run_index(count, n_trip, itype) + 1
    return out


def _within_run_index(count, total, itype):
    """``[0, 1, …, c0−1, 0, 1, …, c1−1, …]`` for run lengths ``count``."""
    idx = np.ones(total, itype)
    nz = count[count > 0]
    if len(nz) == 0:
        return np.zeros(0, itype)
    first = np.cumsum(nz, dtype=np.int64) - nz
    idx[0] = 0
    idx[first[1:]] = 1 - nz[:-1]
    return np.cumsum(idx, dtype=itype)


def atoms_to_graph(atoms, cutoff: float, triplets: bool = False, validate: bool = True) -> jraph.GraphsTuple:
    """Build the graph of one structure.

    Parameters
    ----------
    atoms : ase.Atoms
        Molecule, cluster or (mixed-)periodic cell of any size; cells smaller
        than the cutoff are fine (several images of a neighbour become
        several edges).
    cutoff : float
        Neighbour cutoff R_c in Å: every directed pair (and periodic image)
        with distance < R_c becomes an edge.
    triplets : bool
        Also build the list of edge pairs sharing a centre (needed by angular
        descriptors such as ACSF types 3, 9, 22).
    validate : bool
        Check the structure first (:func:`jaxmlp.graph.validate`): empty
        structures, NaN/inf positions, atoms closer than 0.1 Å, zero-volume
        periodic cells, unknown elements raise ``ValueError``.

    Returns
    -------
    jraph.GraphsTuple
        One graph (``n_node = [N]``, ``n_edge = [E]``), no padding; layout in
        the module docstring.
    """
    from ase import Atoms

    if not isinstance(atoms, Atoms):
        raise TypeError(f"atoms_to_graph expects an ase.Atoms, got {type(atoms).__name__}")
    if validate:
        check_structure(atoms)
    positions = np.asarray(atoms.get_positions(), np.float64)
    pbc = np.asarray(atoms.get_pbc(), bool)
    cell = np.asarray(atoms.get_cell().array, np.float64)
    cell = np.where(pbc[:, None], cell, 0.0)
    nl = neighbour_list(positions, cell, pbc, cutoff)
    n, e = len(atoms), len(nl.centres)
    trip = build_triplets(nl.centres) if triplets else np.zeros((0, 2), np.int64)
    return jraph.GraphsTuple(
        nodes={
            "positions": positions,
            "numbers": np.asarray(atoms.get_atomic_numbers(), np.int32),
            "mask": np.ones(n, bool),
        },
        edges={"offsets": nl.offsets, "mask": np.ones(e, bool)},
        senders=nl.neighbours,
        receivers=nl.centres,
        globals={
            "cell": cell[None],
            "pbc": pbc[None],
            "mask": np.ones(1, bool),
            "n_triplet": np.array([len(trip)], np.int32),
            "triplets": trip.astype(np.int32, copy=False),
        },
        n_node=np.array([n], np.int32),
        n_edge=np.array([e], np.int32),
    )
