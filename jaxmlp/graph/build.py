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
(``[0, 2]``) unless the graph was built with ``triplets=True``.  With a
:class:`TripletFilter` (``Model.extras["triplet_filter"]`` of an HDNNP) only
the triplets that can contribute are kept (n2p2's pruning): element triples
without an angular function, pairs with ``r_ij`` or ``r_ik`` beyond the
triple's largest angular cutoff and, where all its functions are narrow
(type 3), pairs with ``r_jk`` beyond it are dropped, each with the graph's
skin margin (build cutoff − model cutoff) added so the graph stays exact
while atoms move by less than half the skin.  Because of it,
jaxmlp graphs are batched with :func:`jaxmlp.graph.batch_graphs`, not
``jraph.batch`` (which would not re-index the triplets).
"""

from __future__ import annotations

import dataclasses

import jraph
import numpy as np

from .neighbours import neighbour_list
from .validation import validate as check_structure

__all__ = ["TripletFilter", "atoms_to_graph", "build_triplets", "filter_triplets"]

#: Absolute slack (Å) added to every filter radius: the host (numpy) and the
#: jitted distances may differ in the last bits, so a triplet is only dropped
#: when it is clearly outside (a 'hard' cutoff would otherwise jump).
FILTER_SLACK = 1e-9


@dataclasses.dataclass(frozen=True)
class TripletFilter:
    """Which triplets ``(i; j, k)`` of a graph can contribute to a model.

    Parameters
    ----------
    numbers : tuple of int, length S
        Atomic numbers of the model's elements (species index = position).
    cutoff : float
        The model's (radial) cutoff in Å; a graph built with a larger cutoff
        ``R`` has the skin margin ``R − cutoff`` added to every radius below.
    rc_pair : [S, S, S] array of float
        ``rc_pair[c, a, b]``: largest cutoff (Å) of the angular functions of
        centre species ``c`` with neighbour species ``{a, b}`` (symmetric in
        ``a, b``); 0 where there is none (the triple is dropped).  A triplet
        is kept only if ``r_ij`` and ``r_ik`` are below it.
    rc_jk : [S, S, S] array of float
        Bound on ``r_jk`` (Å): the largest cutoff where every function of
        the triple has the factor ``f_c(r_jk)`` (n2p2 type 3), ``inf``
        otherwise.
    shells : tuple of float, optional
        Ascending cutoff radii (Å) of groups of angular functions.  When
        given, :func:`filter_triplets` orders the kept triplets by the number
        of radii at most ``max(r_ij, r_ik)``, descending (stable within a
        shell): triplets that only the longest-ranged functions see come
        first, so a descriptor can skip the shorter-ranged functions for
        whole chunks of triplets.  The order does not change any value.
    """

    numbers: tuple
    cutoff: float
    rc_pair: np.ndarray
    rc_jk: np.ndarray
    shells: tuple = ()

    def __post_init__(self):
        numbers = tuple(int(z) for z in self.numbers)
        S = len(numbers)
        if S == 0 or len(set(numbers)) != S or min(numbers) < 1 or max(numbers) > 118:
            raise ValueError(f"TripletFilter.numbers must be distinct atomic numbers 1..118, got {self.numbers!r}")
        rc_pair = np.array(self.rc_pair, np.float64)
        rc_jk = np.array(self.rc_jk, np.float64)
        for name, a in (("rc_pair", rc_pair), ("rc_jk", rc_jk)):
            if a.shape != (S, S, S):
                raise ValueError(f"TripletFilter.{name} must have shape {(S, S, S)}, got {a.shape}")
            if np.isnan(a).any() or (a < 0).any():
                raise ValueError(f"TripletFilter.{name} must be >= 0 (inf allowed)")
            if not np.array_equal(a, a.transpose(0, 2, 1)):
                raise ValueError(f"TripletFilter.{name} must be symmetric in the two neighbour species")
        if not np.isfinite(rc_pair).all():
            raise ValueError("TripletFilter.rc_pair must be finite")
        cutoff = float(self.cutoff)
        if not (cutoff > 0 and np.isfinite(cutoff)):
            raise ValueError(f"TripletFilter.cutoff must be positive and finite, got {self.cutoff!r}")
        shells = tuple(float(x) for x in self.shells)
        if any(not (x > 0 and np.isfinite(x)) for x in shells) or list(shells) != sorted(set(shells)):
            raise ValueError(f"TripletFilter.shells must be distinct, ascending, positive radii, got {self.shells!r}")
        object.__setattr__(self, "shells", shells)
        rc_pair.setflags(write=False)
        rc_jk.setflags(write=False)
        object.__setattr__(self, "numbers", numbers)
        object.__setattr__(self, "cutoff", cutoff)
        object.__setattr__(self, "rc_pair", rc_pair)
        object.__setattr__(self, "rc_jk", rc_jk)

    def species(self, numbers: np.ndarray) -> np.ndarray:
        """Species index ``[N]`` of atomic numbers; −1 for elements the filter does not know."""
        table = np.full(119, -1, np.int64)
        table[list(self.numbers)] = np.arange(len(self.numbers))
        return table[np.clip(np.asarray(numbers), 0, 118)]


def filter_triplets(vectors: np.ndarray, centres: np.ndarray, neighbours: np.ndarray, numbers: np.ndarray,
                    tfilter: TripletFilter, margin: float = 0.0) -> np.ndarray:
    """The triplets of a neighbour list that can contribute (vectorised, host side).

    Parameters
    ----------
    vectors : [E, 3] float, edge vectors ``r_ij`` in Å
    centres : [E] int, sorted ascending (receivers ``i``)
    neighbours : [E] int (senders ``j``)
    numbers : [N] int, atomic numbers
    tfilter : TripletFilter
    margin : float ≥ 0
        Skin (Å) added to every radius (distances may change by up to this
        much before the graph is rebuilt).

    Returns
    -------
    [T, 2] int
        The rows of :func:`build_triplets` ``(centres)`` that the filter
        keeps, in the same order (or ordered by shell when the filter has
        :attr:`TripletFilter.shells`).
    """
    margin = float(margin)
    if not margin >= 0.0:
        raise ValueError(f"triplet filter margin must be >= 0, got {margin}")
    vectors = np.asarray(vectors, np.float64)
    centres = np.asarray(centres)
    neighbours = np.asarray(neighbours)
    sp = tfilter.species(numbers)
    if len(centres) == 0:
        return np.zeros((0, 2), np.int32)
    if (sp[np.unique(np.r_[centres, neighbours])] < 0).any():
        # unknown elements: the model refuses them; keep every triplet so the error comes from there
        return build_triplets(centres)
    slack = margin + FILTER_SLACK
    rc_pair, rc_jk = tfilter.rc_pair, tfilter.rc_jk
    has_fn = rc_pair > 0.0
    r = np.sqrt(np.einsum("ex,ex->e", vectors, vectors))
    r_max = float(r.max())
    # which checks can drop anything at all (each is skipped when it cannot)
    check_type = not has_fn.all()
    check_r = bool((rc_pair[has_fn] + slack <= r_max).any())
    check_jk = bool(np.isfinite(rc_jk[has_fn]).any())
    if not (check_type or check_r or check_jk):
        return _order_by_shell(build_triplets(centres), r, tfilter.shells)
    sc, sn = sp[centres], sp[neighbours]
    # an edge takes part only if some triple (c, s_j, ·) has a function reaching beyond r_ij
    reach = rc_pair.max(axis=2)
    sub = np.flatnonzero(r < np.where(reach > 0.0, reach + slack, -1.0)[sc, sn])
    if len(sub) < 2:
        return np.zeros((0, 2), np.int32)
    return _order_by_shell(_filter_tiles(sub, vectors, r, centres, sc, sn, tfilter, slack, check_jk), r, tfilter.shells)


#: Elements of one ``[centres, K, K]`` tile of :func:`_filter_tiles` (bounds its memory to ~100 MB).
_TILE = 1 << 21


def _filter_tiles(sub, vectors, r, centres, sc, sn, tfilter, slack, check_jk):
    """Kept triplets among the edges ``sub``, tested centre by centre on dense tiles.

    The edges of each centre are laid out in ``K`` slots (``K`` = largest count) and
    every pair of slots is tested at once on ``[C, K, K]`` tiles: species bounds by one
    table lookup per pair, ``r_jk²`` from the Gram matrix of the edge vectors (one
    small matrix product per centre, error ~1e-14 Å², far inside :data:`FILTER_SLACK`'s
    1e-8 Å² on the squared bound).  No per-triplet gathers of edge rows; the result
    is in :func:`build_triplets` order (``e1`` ascending, then ``e2``).
    """
    S = len(tfilter.numbers)
    # tables over (centre, s_j, s_k) with an extra 'empty slot' species S whose bound is −1 (never kept)
    has_fn = tfilter.rc_pair > 0.0
    pair_tab = np.full((S, S + 1, S + 1), -1.0)
    pair_tab[:, :S, :S] = np.where(has_fn, tfilter.rc_pair + slack, -1.0)
    jk_tab = np.full((S, S + 1, S + 1), -1.0)
    jk_tab[:, :S, :S] = np.where(has_fn, (tfilter.rc_jk + slack) ** 2, -1.0)  # inf stays inf
    has_tab = (pair_tab > 0.0).reshape(-1)
    pair_tab, jk_tab = pair_tab.reshape(-1), jk_tab.reshape(-1)
    # the r_ij/r_ik bounds matter only if an edge of `sub` can be beyond some triple's cutoff
    check_r_any = bool(np.any(r[sub] >= np.min(np.where(has_fn, tfilter.rc_pair + slack, np.inf))))
    c_sub = centres[sub]
    starts = np.flatnonzero(np.r_[True, c_sub[1:] != c_sub[:-1]])
    sizes = np.diff(np.r_[starts, len(sub)])
    K = int(sizes.max())
    upper = np.triu(np.ones((K, K), bool), 1)
    n_c = len(starts)
    slot = np.arange(len(sub)) - np.repeat(starts, sizes)
    row = np.repeat(np.arange(n_c), sizes)
    V = np.zeros((n_c, K, 3))
    V[row, slot] = vectors[sub]
    R = np.zeros((n_c, K))
    R[row, slot] = r[sub]
    SP = np.full((n_c, K), S, np.intp)  # intp codes: np.take converts any other index type first
    SP[row, slot] = sn[sub]
    code_c = (sc[sub][starts] * (S + 1) * (S + 1)).astype(np.intp)
    E = np.full((n_c, K), -1, np.int64)
    E[row, slot] = sub
    Vt = np.ascontiguousarray(V.transpose(0, 2, 1))
    E = E.reshape(-1)
    step = max(1, _TILE // (K * K))
    out = []
    for c0 in range(0, n_c, step):
        c1 = min(n_c, c0 + step)
        sp_b = SP[c0:c1]
        code = code_c[c0:c1, None, None] + sp_b[:, :, None] * (S + 1) + sp_b[:, None, :]
        rb = R[c0:c1]
        if check_r_any:
            bound = np.take(pair_tab, code)
            ok = rb[:, :, None] < bound
            ok &= rb[:, None, :] < bound
            ok &= upper
        elif check_jk:  # the r_jk bound table is −1 where there is no function: that test covers both
            ok = np.broadcast_to(upper, code.shape)
        else:
            ok = np.take(has_tab, code) & upper
        if check_jk:
            gram = np.empty((c1 - c0, K, K))
            for c in range(c0, c1):  # one small GEMM per centre (faster than a batched matmul)
                np.dot(V[c], Vt[c], out=gram[c - c0])
            nsq = rb * rb
            gram *= -2.0
            gram += nsq[:, :, None]
            gram += nsq[:, None, :]
            ok = ok & (gram < np.take(jk_tab, code))
        f = np.flatnonzero(ok)
        ca = f // K + c0 * K  # flat (centre, slot a)
        cb = (f // (K * K) + c0) * K + f % K  # flat (centre, slot b)
        out.append(np.stack([E[ca], E[cb]], axis=1))
    trip = np.concatenate(out) if out else np.zeros((0, 2), np.int64)
    itype = np.int32 if len(vectors) < 2**31 - 1 else np.int64
    return trip.astype(itype, copy=False)


def _order_by_shell(trip: np.ndarray, r: np.ndarray, shells: tuple) -> np.ndarray:
    """``trip`` ordered by the number of ``shells`` radii ≤ max(r_ij, r_ik), descending (stable)."""
    if len(shells) < 2 or len(trip) == 0:
        return trip
    # the count is monotone in the distance: max over the two edges of each edge's own count
    edge_level = np.searchsorted(np.asarray(shells), r, side="right").astype(np.int8)
    level = np.maximum(np.take(edge_level, trip[:, 0]), np.take(edge_level, trip[:, 1]))
    np.negative(level, out=level)
    return np.take(trip, np.argsort(level, kind="stable"), axis=0)


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


def atoms_to_graph(atoms, cutoff: float, triplets: bool = False, validate: bool = True,
                   triplet_filter: TripletFilter | None = None) -> jraph.GraphsTuple:
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
    triplet_filter : TripletFilter, optional
        Keep only the triplets that can contribute to the model that made it
        (``model.extras.get("triplet_filter")``); the skin margin is
        ``cutoff − triplet_filter.cutoff`` (at least 0).  Values and all
        derivatives of the model are unchanged while no atom moves by more
        than half that margin.  Ignored unless ``triplets=True``.

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
    if not triplets:
        trip = np.zeros((0, 2), np.int64)
    elif triplet_filter is None:
        trip = build_triplets(nl.centres)
    else:
        if not isinstance(triplet_filter, TripletFilter):
            raise TypeError(f"triplet_filter must be a TripletFilter, got {type(triplet_filter).__name__}")
        vectors = positions[nl.neighbours] - positions[nl.centres] + nl.offsets @ cell
        trip = filter_triplets(vectors, nl.centres, nl.neighbours, atoms.get_atomic_numbers(), triplet_filter,
                               margin=max(0.0, float(cutoff) - triplet_filter.cutoff))
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
