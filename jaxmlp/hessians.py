"""Sparse (blocked) analytic Hessians of local models, and finite-difference Hessians.

A model whose per-atom energy ``E_i`` depends on the atoms within ``R_c`` of
``i`` (through ``L`` message-passing layers: within ``L·R_c``) has a Hessian
whose 3×3 blocks ``h_AB = ∂²E/∂R_A∂R_B`` vanish exactly when every image of
``B`` is farther than ``2·L·R_c`` from ``A``.  :func:`sparse_hessian` stores
only the blocks of the pairs that can be non-zero (:func:`hessian_pairs`), at
a cost that grows linearly with the number of atoms.  Two exact algorithms:

``"environment"`` (strictly local models, ``model.n_layers == 1``)
    ``E = Σ_i E_i(star_i)`` where ``star_i`` is atom ``i`` with its
    neighbours (every periodic image a node of its own).  The Hessian of each
    ``E_i`` is a dense ``3(d_i+1)`` square; a batch of disjoint stars is
    evaluated at once and, because the stars do not share atoms, one
    Hessian-vector product per (neighbour slot, direction) gives that column
    of *every* star in the batch.  The star Hessians are scatter-added into
    the blocks of the parent atoms, so images of one atom are summed: the
    result is the Hessian of the periodic crystal.  Cost: ``3·K`` HVPs of
    one star per centre (``K`` = neighbours + 1), i.e. ``O(N·K³)`` for an
    angular descriptor.  The work of one compiled call is kept small
    (``batch_budget``: about one 40-neighbour star, its columns split into
    blocks when they do not fit) because cache-resident intermediates made
    a star 2–2.5× cheaper than batches of ~16 stars; every call has the same
    padded shape (one compilation), and two threads with a block
    accumulator each share the stars, so their calls do not depend on each
    other and can run on two cores at once (XLA releases the GIL; the gain
    was not measurable on the loaded development machine).
``"colouring"`` (any model, e.g. ``n_layers > 1``)
    Atoms are coloured such that two atoms of one colour never have a row in
    common (every image farther than ``2 × 2·L·R_c`` apart).  One
    Hessian-vector product of the whole structure per colour and direction
    then returns the columns of all atoms of that colour without overlap.

Both reproduce the dense :func:`jaxmlp.hessian` to round-off.

:func:`fd_hessian` is the reference for any ASE calculator (EMT, tblite
GFN2-xTB, :class:`jaxmlp.Calculator`): central differences of the forces,
resumable from a checkpoint file.

Units: positions Å, Hessian blocks eV/Å².  Dense Hessians are ``[3N, 3N]``,
atom-major (row ``3·A + α``); a block ``h_AB[α, β] = ∂²E/∂R_Aα ∂R_Bβ``.
"""

from __future__ import annotations

import dataclasses
import pathlib
from functools import partial

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from .graph.build import atoms_to_graph, build_triplets
from .graph.neighbours import neighbour_list
from .graph.padding import Buckets, batch_graphs
from .models.base import Model, check_elements
from .utils import atomic_write

__all__ = ["SparseHessian", "fd_hessian", "fd_hessian_columns", "hessian_pairs", "sparse_hessian"]


# ----------------------------------------------------------------------------
# containers and pair lists
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SparseHessian:
    """Blocked Hessian ``{(A, B): h_AB}`` of the pairs that can be non-zero.

    Attributes
    ----------
    blocks : [P, 3, 3] float, eV/Å²
        ``blocks[p][α, β] = ∂²E/∂R_Aα ∂R_Bβ`` for ``(A, B) = pairs[p]``; for
        periodic systems the sum over all images of ``B`` (the Hessian of the
        infinite crystal with respect to moving an atom and all its images).
    pairs : [P, 2] int
        ``(A, B)``, sorted by ``A`` then ``B``; every ordered pair with some
        image of ``B`` within ``radius`` of ``A`` (``A == B`` included), so
        both ``(A, B)`` and ``(B, A)`` are present.
    distances : [P] float, Å
        Distance from ``A`` to the nearest image of ``B`` (0 for ``A == B``).
    n_atoms : int
    radius : float, Å
        Radius of the pair list (``2·L·R_c`` of the model, or twice the
        graph's largest edge if that is longer).
    method : str
        ``"environment"`` or ``"colouring"``.
    n_hvp : int
        Hessian-vector products that were evaluated (a cost measure).
    """

    blocks: np.ndarray
    pairs: np.ndarray
    distances: np.ndarray
    n_atoms: int
    radius: float
    method: str
    n_hvp: int = 0

    @property
    def n_pairs(self) -> int:
        """Number of stored blocks ``P``."""
        return int(self.pairs.shape[0])

    def norms(self) -> np.ndarray:
        """Frobenius norms ``||h_AB||`` of the stored blocks, ``[P]`` eV/Å²."""
        return np.sqrt(np.sum(self.blocks**2, axis=(1, 2)))

    def block(self, a: int, b: int) -> np.ndarray:
        """The block ``h_ab`` ``[3, 3]`` (zeros if the pair is not stored)."""
        n = self.n_atoms
        if not (0 <= a < n and 0 <= b < n):
            raise ValueError(f"atom indices ({a}, {b}) out of range for {n} atoms")
        keys = self.pairs[:, 0].astype(np.int64) * n + self.pairs[:, 1]
        k = np.searchsorted(keys, a * n + b)
        if k < len(keys) and keys[k] == a * n + b:
            return self.blocks[k].copy()
        return np.zeros((3, 3), self.blocks.dtype)

    def to_dense(self) -> np.ndarray:
        """Dense Hessian ``[3N, 3N]`` eV/Å², atom-major (periodic images summed)."""
        n = self.n_atoms
        H = np.zeros((n, 3, n, 3), self.blocks.dtype)
        H[self.pairs[:, 0], :, self.pairs[:, 1], :] = self.blocks
        return H.reshape(3 * n, 3 * n)

    def to_scipy(self):
        """``scipy.sparse.bsr_array`` ``[3N, 3N]`` with 3×3 blocks."""
        import scipy.sparse as sp

        n = self.n_atoms
        indptr = np.searchsorted(self.pairs[:, 0], np.arange(n + 1))
        return sp.bsr_array((self.blocks, self.pairs[:, 1], indptr), shape=(3 * n, 3 * n))


def _structure(system):
    """(positions [N,3], cell [3,3], pbc [3]) of an Atoms or single-structure graph."""
    from ase import Atoms

    if isinstance(system, Atoms):
        pbc = np.asarray(system.pbc, bool)
        cell = np.where(pbc[:, None], system.cell.array, 0.0)
        return np.asarray(system.positions, float), cell, pbc
    if isinstance(system, jraph.GraphsTuple):
        _check_single(system)
        return (
            np.asarray(system.nodes["positions"], float),
            np.asarray(system.globals["cell"], float)[0],
            np.asarray(system.globals["pbc"], bool)[0],
        )
    raise TypeError(f"expected ase.Atoms or jraph.GraphsTuple, got {type(system).__name__}")


def _check_single(graph):
    if np.asarray(graph.n_node).shape[0] != 1:
        raise ValueError(
            "sparse Hessians need a single unpadded structure (one graph from jaxmlp.atoms_to_graph), "
            f"got a batch of {np.asarray(graph.n_node).shape[0]} graphs"
        )
    if not np.all(np.asarray(graph.nodes["mask"])) or not np.all(np.asarray(graph.edges["mask"])):
        raise ValueError("sparse Hessians need an unpadded graph (all node and edge masks True)")


def hessian_pairs(system, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Ordered atom pairs whose Hessian block can be non-zero.

    Parameters
    ----------
    system : ase.Atoms or GraphsTuple (single, unpadded)
    radius : float, Å
        Pair distance limit, e.g. ``model.interaction_range`` (``2·L·R_c``).

    Returns
    -------
    pairs : [P, 2] int
        ``(A, B)`` with some periodic image of ``B`` closer than ``radius``
        to ``A``; all ``(A, A)`` included; sorted by ``A`` then ``B``.
    distances : [P] float, Å
        Distance to the nearest such image (0 on the diagonal).
    """
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be a positive number of Å, got {radius!r}")
    R, cell, pbc = _structure(system)
    n = len(R)
    nl = neighbour_list(R, cell, pbc, float(radius))
    vec = R[nl.neighbours] - R[nl.centres] + nl.offsets @ cell
    dist = np.linalg.norm(vec, axis=1)
    keys = np.concatenate([nl.centres * n + nl.neighbours, np.arange(n) * (n + 1)])
    dist = np.concatenate([dist, np.zeros(n)])
    keys = keys.astype(np.int64)
    # unique keys with the minimum distance (diagonal: 0)
    order = np.lexsort((dist, keys))
    keys, dist = keys[order], dist[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    keys, dist = keys[first], dist[first]
    return np.stack([keys // n, keys % n], axis=1), dist


def _graph_of(model: Model, system):
    from ase import Atoms

    if isinstance(system, Atoms):
        check_elements(model, system.numbers)
        return atoms_to_graph(system, model.cutoff, triplets=model.needs_triplets)
    if isinstance(system, jraph.GraphsTuple):
        _check_single(system)
        deg = np.bincount(np.asarray(system.receivers), minlength=int(system.n_node[0]))
        if model.needs_triplets and len(system.globals["triplets"]) != int(np.sum(deg * (deg - 1) // 2)):
            raise ValueError(f"model {model.name} needs a graph built with triplets=True")
        return jax.tree_util.tree_map(np.asarray, system)
    raise TypeError(f"sparse_hessian expects ase.Atoms or a jraph.GraphsTuple, got {type(system).__name__}")


def _edge_vectors_np(graph) -> np.ndarray:
    R = np.asarray(graph.nodes["positions"], float)
    cell = np.asarray(graph.globals["cell"], float)[0]
    S = np.asarray(graph.edges["offsets"], float)
    return R[graph.senders] - R[graph.receivers] + S @ cell


def _progress(iterable, enabled: bool, total: int, desc: str):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return iterable
    return tqdm(iterable, total=total, desc=desc)


# ----------------------------------------------------------------------------
# the public entry point
# ----------------------------------------------------------------------------
def sparse_hessian(
    model: Model,
    params,
    graph,
    method: str = "auto",
    batch_budget: int = 150_000,
    progress: bool = False,
) -> SparseHessian:
    """Exact blocked Hessian of a local model, cost linear in the number of atoms.

    Parameters
    ----------
    model : jaxmlp.models.Model
    params : pytree
    graph : jraph.GraphsTuple or ase.Atoms
        One unpadded structure (molecule or periodic cell of any size, also
        smaller than ``2·R_c``); an ``ase.Atoms`` is turned into a graph with
        ``model.cutoff``.
    method : {"auto", "environment", "colouring"}
        Algorithm (module docstring).  ``"auto"`` picks ``"environment"`` for
        strictly local models (``model.n_layers == 1``), else ``"colouring"``.
    batch_budget : int
        Work per compiled call: roughly the number of (edge or triplet) ×
        Hessian-column entries pushed through the model at once; peak memory
        grows about linearly with it.  The default keeps the intermediates
        of one call in the CPU cache, which is fastest (about one star of
        ~40 neighbours with its 3·K columns for an angular HDNNP; a star
        whose columns exceed it is split into blocks of columns): larger
        budgets were 2–2.5× slower per star on a 2-core x86 machine.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    SparseHessian
        ``.blocks [P, 3, 3]`` eV/Å², ``.pairs [P, 2]``, ``.to_dense()``
        ``[3N, 3N]``.

    Raises
    ------
    ValueError
        Unknown method, ``"environment"`` for a message-passing model, a
        non-local model (``Model.local`` False), a batched or padded graph.
    """
    if method not in ("auto", "environment", "colouring"):
        raise ValueError(f"method must be 'auto', 'environment' or 'colouring', got {method!r}")
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxmlp Model, got {type(model).__name__}")
    if not model.local:
        raise ValueError(
            f"sparse_hessian needs a local model (forces vanish beyond 2·L·R_c); {model.name!r} has a long-range term "
            "(Model.local is False), so its Hessian has no finite range: use the dense jaxmlp.hessian instead"
        )
    if batch_budget < 1:
        raise ValueError(f"batch_budget must be positive, got {batch_budget}")
    g = _graph_of(model, graph)
    if method == "auto":
        method = "environment" if model.n_layers == 1 else "colouring"
    if method == "environment" and model.n_layers != 1:
        raise ValueError(
            f"method='environment' needs a strictly local model (n_layers == 1), this one has {model.n_layers} layers; "
            "use method='colouring'"
        )
    vec = _edge_vectors_np(g)
    r_graph = float(np.max(np.linalg.norm(vec, axis=1))) if len(vec) else 0.0
    radius = max(model.interaction_range, 2.0 * model.n_layers * r_graph) + 1e-6
    pairs, dist = hessian_pairs(g, radius)
    if method == "environment":
        blocks, n_hvp = _environment_blocks(model, params, g, pairs, vec, batch_budget, progress)
    else:
        blocks, n_hvp = _colouring_blocks(model, params, g, pairs, radius, batch_budget, progress)
    n = int(g.n_node[0])
    return SparseHessian(blocks=blocks, pairs=pairs, distances=dist, n_atoms=n, radius=radius, method=method, n_hvp=n_hvp)


# ----------------------------------------------------------------------------
# environment (star) algorithm
# ----------------------------------------------------------------------------
def _star_batch(graph, vec, centres, estart, deg, triplets):
    """One unpadded multi-graph holding the stars of ``centres`` (contiguous)."""
    R = np.asarray(graph.nodes["positions"], float)
    Z = np.asarray(graph.nodes["numbers"], np.int32)
    c0, c1 = centres[0], centres[-1] + 1
    d = deg[c0:c1]
    n_star = c1 - c0
    nn = d + 1
    node_off = np.r_[0, np.cumsum(nn)[:-1]]
    n_nodes = int(nn.sum())
    e0, e1 = estart[c0], estart[c1]
    edges = np.arange(e0, e1)
    star_of_edge = np.repeat(np.arange(n_star), d)
    local = edges - estart[c0:c1][star_of_edge]  # 0..d-1 within the star
    senders_new = node_off[star_of_edge] + 1 + local
    receivers_new = node_off[star_of_edge]

    parent = np.empty(n_nodes, np.int64)
    parent[node_off] = np.arange(c0, c1)
    parent[senders_new] = graph.senders[edges]
    pos = np.empty((n_nodes, 3), np.asarray(graph.nodes["positions"]).dtype)
    pos[node_off] = R[c0:c1]
    pos[senders_new] = R[graph.receivers[edges]] + vec[edges]
    slot = np.empty(n_nodes, np.int32)
    slot[node_off] = 0
    slot[senders_new] = 1 + local
    trip = build_triplets(receivers_new) if triplets else np.zeros((0, 2), np.int64)
    n_trip = d * (d - 1) // 2 if len(trip) else np.zeros(n_star, np.int64)
    multi = jraph.GraphsTuple(
        nodes={"positions": pos, "numbers": Z[parent], "mask": np.ones(n_nodes, bool)},
        edges={"offsets": np.zeros((len(edges), 3), np.int32), "mask": np.ones(len(edges), bool)},
        senders=senders_new.astype(np.int32),
        receivers=receivers_new.astype(np.int32),
        globals={
            "cell": np.zeros((n_star, 3, 3)),
            "pbc": np.zeros((n_star, 3), bool),
            "mask": np.ones(n_star, bool),
            "n_triplet": n_trip.astype(np.int32),
            "triplets": trip.astype(np.int32),
        },
        n_node=nn.astype(np.int32),
        n_edge=d.astype(np.int32),
    )
    return multi, node_off, parent, slot


@partial(jax.jit, static_argnums=(0,), donate_argnums=(5,))
def _star_step(model, params, batch, is_centre, slot, blocks, node_index, pair_index, directions):
    """Columns ``directions`` of the centre-energy Hessians of a batch of stars, scatter-added into ``blocks``.

    node_index : [S, K] batch node of slot k of star s (padding node if absent)
    pair_index : [S, K, K] pair row of (parent(s,l), parent(s,k)) (P = discard)
    directions : [D] int, (slot k, direction α) packed as 3k + α; -1 = no column
    """
    R = batch.nodes["positions"]

    def e_centres(x):
        g = batch._replace(nodes={**batch.nodes, "positions": x})
        e = model.apply(params, g)
        return jnp.sum(jnp.where(is_centre, e, 0.0))

    grad = jax.grad(e_centres)

    def hvp(direction):
        k, a = direction // 3, direction % 3
        v = jnp.where((slot == k)[:, None] & (jnp.arange(3) == a)[None, :] & (direction >= 0), 1.0, 0.0).astype(R.dtype)
        return jax.jvp(grad, (R,), (v,))[1]  # [n_node, 3]

    cols = jax.vmap(hvp)(directions)  # [D, n_node, 3]
    h = cols[:, node_index, :]  # [D, S, l, β] = ∂²E/∂x_lβ ∂x_(k α)
    k, a = directions // 3, directions % 3
    S = node_index.shape[0]
    rows = pair_index[:, :, jnp.where(directions >= 0, k, 0)]  # [S, l, D]
    rows = jnp.where(directions >= 0, rows, blocks.shape[0] - 1)
    # block (l, k) entry [β, α]
    flat = rows.reshape(-1)
    vals = jnp.transpose(h, (1, 2, 0, 3)).reshape(-1, 3)  # [S*l*D, β]
    aa = jnp.broadcast_to(a, (S, node_index.shape[1], a.shape[0])).reshape(-1)
    return blocks.at[flat, :, aa].add(vals)


def _environment_blocks(model, params, g, pairs, vec, batch_budget, progress):
    n = int(g.n_node[0])
    P = len(pairs)
    deg = np.bincount(np.asarray(g.receivers), minlength=n)
    estart = np.r_[0, np.cumsum(deg)]
    K = int(deg.max(initial=0)) + 1  # slots per star
    triplets = bool(model.needs_triplets)
    # work per star and Hessian column in edges + triplets (+ the centre)
    unit = deg + (deg * (deg - 1) // 2 if triplets else 0) + 1
    n_dir = 3 * K
    if int(unit.max(initial=0)) * n_dir > batch_budget:
        # one star per call, its columns in blocks of D directions
        n_blocks = -(-int(unit.max()) * n_dir // batch_budget)
        D = -(-n_dir // n_blocks)
        chunks = [(i, i + 1) for i in range(n)]
    else:
        D, work = n_dir, unit * n_dir
        # contiguous chunks of centres whose work fits the budget
        chunks, start, acc = [], 0, 0
        for i in range(n):
            if acc + work[i] > batch_budget and i > start:
                chunks.append((start, i))
                start, acc = i, 0
            acc += work[i]
        if n:
            chunks.append((start, n))
    dir_blocks = [np.where(np.arange(s, s + D) < n_dir, np.arange(s, s + D), -1) for s in range(0, n_dir, D)]
    # one bucket for every chunk: one compilation
    nodes = max(int((deg[a:b] + 1).sum()) for a, b in chunks)
    edges = max(int(deg[a:b].sum()) for a, b in chunks)
    trips = max(int((deg[a:b] * (deg[a:b] - 1) // 2).sum()) for a, b in chunks) if triplets else 0
    stars = max(b - a for a, b in chunks)
    buckets = Buckets(n_node=nodes + 1, n_edge=edges + 2, n_graph=stars + 1, n_triplet=trips)

    keys = pairs[:, 0].astype(np.int64) * n + pairs[:, 1]
    dtype = np.asarray(g.nodes["positions"]).dtype
    n_workers = 2 if len(chunks) > 1 else 1

    def prepare(a, b):
        centres = np.arange(a, b)
        multi, node_off, parent, slot = _star_batch(g, vec, centres, estart, deg, triplets)
        batch = batch_graphs([multi], buckets)
        n_pad = buckets.n_node - len(parent)
        slot_full = np.r_[slot, np.full(n_pad, -1, np.int32)]
        is_centre = np.zeros(buckets.n_node, bool)
        is_centre[node_off] = True
        S = stars
        d = deg[a:b]
        node_index = np.full((S, K), buckets.n_node - 1, np.int64)  # a padding node
        valid = np.zeros((S, K), bool)
        valid[: b - a] = np.arange(K)[None, :] <= d[:, None]
        rows, cols_ = np.nonzero(valid)
        node_index[rows, cols_] = node_off[rows] + cols_
        par = np.full((S, K), -1, np.int64)
        par[rows, cols_] = parent[node_index[rows, cols_]]
        pk = par[:, :, None] * n + par[:, None, :]
        ok = valid[:, :, None] & valid[:, None, :]
        idx = np.searchsorted(keys, np.where(ok, pk, 0))
        idx = np.where(ok, idx, P)
        if np.any(ok) and not np.all(keys[np.minimum(idx[ok], P - 1)] == pk[ok]):  # pragma: no cover - invariant
            raise RuntimeError("internal error: a star pair is missing from the pair list")
        return jax.device_put((batch, is_centre, slot_full, node_index, idx))

    import threading

    bar = _progress(range(len(chunks)), progress, len(chunks), "sparse Hessian (environments)")
    ticks = iter(bar) if progress else None
    tick_lock = threading.Lock()

    def work(w):
        # worker w owns the chunks w, w + n_workers, ... and its own accumulator: the workers'
        # calls do not depend on each other, and XLA releases the GIL while one runs
        acc = jnp.zeros((P + 1, 3, 3), dtype)
        for a, b in chunks[w::n_workers]:
            batch, is_centre, slot_full, node_index, idx = prepare(a, b)
            for dirs in dir_blocks:
                acc = _star_step(model, params, batch, is_centre, slot_full, acc, node_index, idx, jnp.asarray(dirs))
            acc.block_until_ready()  # bounds the queue of pending calls
            if ticks is not None:
                with tick_lock:
                    next(ticks, None)
        return acc

    if n_workers == 1:
        accs = [work(0)]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_workers) as pool:
            accs = list(pool.map(work, range(n_workers)))
    if ticks is not None:
        for _ in ticks:  # closes the bar
            pass
    n_hvp = len(chunks) * len(dir_blocks) * D
    blocks = np.array(accs[0][:P])
    for extra in accs[1:]:
        blocks += np.asarray(extra[:P])
    return blocks, n_hvp


# ----------------------------------------------------------------------------
# colouring algorithm (any model)
# ----------------------------------------------------------------------------
def colour_atoms(system, radius: float) -> np.ndarray:
    """Greedy colouring: atoms of one colour are farther apart than ``radius``.

    Every periodic image counts.  With ``radius = 2 × 2·L·R_c`` two atoms of
    one colour never share a non-zero Hessian row.

    Returns
    -------
    [N] int colours ``0..n_colours-1``.
    """
    R, cell, pbc = _structure(system)
    n = len(R)
    nl = neighbour_list(R, cell, pbc, float(radius))
    i, j = nl.centres, nl.neighbours
    keep = i != j
    i, j = i[keep], j[keep]
    indptr = np.searchsorted(i, np.arange(n + 1))
    colour = np.full(n, -1, np.int64)
    for a in range(n):
        used = colour[j[indptr[a] : indptr[a + 1]]]
        used = np.unique(used[used >= 0])
        # smallest colour not used by a neighbour
        c = int(np.searchsorted(used - np.arange(len(used)), 1)) if len(used) else 0
        colour[a] = c
    return colour


@partial(jax.jit, static_argnums=(0,))
def _hvp_columns(model, params, graph, V):
    from .observables import hessian_vector_product

    return hessian_vector_product(model, params, graph, V)


def _colouring_blocks(model, params, g, pairs, radius, batch_budget, progress):
    n = int(g.n_node[0])
    colour = colour_atoms(g, 2.0 * radius)
    n_col = int(colour.max(initial=-1)) + 1
    n_dir = 3 * n_col
    n_edge = max(int(g.n_edge[0]), 1) + len(g.globals["triplets"])
    per = max(1, min(n_dir, batch_budget // max(n_edge, 1)))
    dtype = np.asarray(g.nodes["positions"]).dtype
    blocks = np.zeros((len(pairs), 3, 3), dtype)
    colB = colour[pairs[:, 1]]
    order = np.argsort(colB, kind="stable")
    bounds = np.searchsorted(colB[order], np.arange(n_col + 1))
    gj = jax.tree_util.tree_map(jnp.asarray, g)
    starts = list(range(0, n_dir, per))
    for s in _progress(starts, progress, len(starts), "sparse Hessian (colouring)"):
        dirs = np.arange(s, s + per)  # fixed width: one compilation
        V = np.zeros((n, 3, per))
        ok = dirs < n_dir
        for k in np.flatnonzero(ok):
            c, a = divmod(int(dirs[k]), 3)
            V[colour == c, a, k] = 1.0
        HV = np.asarray(_hvp_columns(model, params, gj, jnp.asarray(V.reshape(3 * n, per), dtype))).reshape(n, 3, per)
        for c in range(s // 3, min(n_col, (s + per + 2) // 3)):
            rows = order[bounds[c] : bounds[c + 1]]
            for a in range(3):
                k = 3 * c + a - s
                if 0 <= k < per:
                    blocks[rows, :, a] = HV[pairs[rows, 0], :, k]
    return blocks, n_dir


# ----------------------------------------------------------------------------
# finite differences
# ----------------------------------------------------------------------------
def _forces_of(atoms, calculator, positions, forces=None):
    atoms.positions = positions
    if forces is not None:
        return np.asarray(forces(atoms), float)
    atoms.calc = calculator
    return np.asarray(atoms.get_forces(), float)


def fd_hessian_columns(atoms, calculator, indices, delta: float = 0.0025, forces=None) -> np.ndarray:
    """Columns of the finite-difference Hessian for the atoms ``indices``.

    Parameters
    ----------
    atoms : ase.Atoms (not modified)
    calculator : ase Calculator
    indices : sequence of int, the displaced atoms ``B``
    delta : float, Å
    forces : callable ``(atoms) -> [N, 3]`` eV/Å, optional
        Computes the forces of a displaced copy of ``atoms`` instead of
        ``calculator`` (e.g. a disk cache of force calls); the default
        attaches ``calculator``.

    Returns
    -------
    [3N, 3k] eV/Å²: column ``3m + β`` is ``∂²E/∂R ∂R_{B_m β}`` from
    ``−(F(+δ) − F(−δ)) / 2δ`` (raw, not symmetrised).
    """
    indices = np.asarray(indices, int).reshape(-1)
    if np.any((indices < 0) | (indices >= len(atoms))):
        raise ValueError(f"indices out of range for {len(atoms)} atoms: {indices.tolist()}")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta}")
    work = atoms.copy()
    R0 = work.positions.copy()
    out = np.zeros((3 * len(atoms), 3 * len(indices)))
    for m, b in enumerate(indices):
        for beta in range(3):
            out[:, 3 * m + beta] = _fd_column(work, calculator, R0, int(b), beta, delta, forces)
    return out


def _fd_column(work, calculator, R0, b, beta, delta, forces=None):
    p = R0.copy()
    p[b, beta] += delta
    fp = _forces_of(work, calculator, p, forces)
    p[b, beta] -= 2 * delta
    fm = _forces_of(work, calculator, p, forces)
    work.positions = R0
    return -(fp - fm).reshape(-1) / (2 * delta)


def fd_hessian(
    atoms,
    calculator,
    delta: float = 0.0025,
    progress: bool = True,
    checkpoint=None,
    symmetrize: bool = True,
    checkpoint_every: int = 1,
) -> np.ndarray:
    """Hessian ``[3N, 3N]`` eV/Å² by central differences of any ASE calculator's forces.

    Column ``3B + β`` is ``−(F(R + δ e_Bβ) − F(R − δ e_Bβ)) / 2δ`` (6N force
    calls in all), the procedure of FHI-aims' ``get_vibrations.py`` used by
    Herbold & Behler (δ = 0.0025 Å).

    Parameters
    ----------
    atoms : ase.Atoms
        Structure (not modified; a copy is displaced).
    calculator : ase.calculators.calculator.Calculator
        Anything with forces: EMT, tblite's ``TBLite``, :class:`jaxmlp.Calculator`, ...
    delta : float
        Displacement in Å.
    progress : bool
        tqdm progress bar over the 3N columns.
    checkpoint : str or path, optional
        ``.npz`` file holding the columns done so far, rewritten atomically
        (temporary file + rename) every ``checkpoint_every`` columns; an
        existing file for the same structure and δ is resumed, one for a
        different structure raises ``ValueError``.
    symmetrize : bool
        Return ``(H + Hᵀ) / 2`` (default) or the raw column-wise FD matrix.
    checkpoint_every : int
        Columns between checkpoint writes.

    Returns
    -------
    [3N, 3N] float, eV/Å², atom-major.
    """
    from ase import Atoms

    if not isinstance(atoms, Atoms):
        raise TypeError(f"fd_hessian expects an ase.Atoms, got {type(atoms).__name__}")
    if calculator is None:
        raise ValueError("fd_hessian needs an ASE calculator")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    n3 = 3 * len(atoms)
    work = atoms.copy()
    R0 = work.positions.copy()
    H = np.zeros((n3, n3))
    done = np.zeros(n3, bool)
    path = None if checkpoint is None else pathlib.Path(checkpoint)
    if path is not None and path.exists():
        with np.load(path) as ck:
            same = (
                ck["numbers"].shape == atoms.numbers.shape
                and np.array_equal(ck["numbers"], atoms.numbers)
                and np.allclose(ck["positions"], R0, atol=1e-10)
                and float(ck["delta"]) == float(delta)
            )
            if not same:
                raise ValueError(
                    f"checkpoint {path} belongs to a different structure or delta; remove it or choose another path"
                )
            H, done = np.array(ck["hessian"]), np.array(ck["done"])
    todo = np.flatnonzero(~done)
    since = 0
    for col in _progress(todo, progress, len(todo), "FD Hessian"):
        b, beta = divmod(int(col), 3)
        H[:, col] = _fd_column(work, calculator, R0, b, beta, delta)
        done[col] = True
        since += 1
        if path is not None and (since >= checkpoint_every or col == todo[-1]):
            state = {"hessian": H, "done": done, "numbers": atoms.numbers, "positions": R0, "delta": np.float64(delta)}
            atomic_write(path, lambda fh, state=state: np.savez(fh, **state), binary=True, make_parents=True)
            since = 0
    return 0.5 * (H + H.T) if symmetrize else H
