"""Jittable graph operations used inside energy functions.

These are the only places where geometry is derived from a graph, so that
every model differentiates through the same, exact expression
``r_ij = R[j] - R[i] + offsets_ij @ cell[g(ij)]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph

__all__ = [
    "dense_slots",
    "edge_graph_index",
    "edge_vectors",
    "node_graph_index",
    "safe_norm",
    "sum_per_graph",
    "take_rows",
]


def node_graph_index(graph: jraph.GraphsTuple) -> jax.Array:
    """Graph index of every node, ``[N]`` int."""
    n_graph = graph.n_node.shape[0]
    n = graph.nodes["positions"].shape[0]
    return jnp.repeat(jnp.arange(n_graph), graph.n_node, total_repeat_length=n)


def edge_graph_index(graph: jraph.GraphsTuple) -> jax.Array:
    """Graph index of every edge, ``[E]`` int."""
    n_graph = graph.n_edge.shape[0]
    e = graph.senders.shape[0]
    return jnp.repeat(jnp.arange(n_graph), graph.n_edge, total_repeat_length=e)


def take_rows(x: jax.Array, idx: jax.Array) -> jax.Array:
    """``x[idx]`` for ``x [M, C, ...]`` as one 1-D gather per column.

    Same values as ``x[idx]``.  XLA's CPU backend runs a gather of whole rows
    (and its transpose, a scatter of rows) several times slower per element
    than 1-D gathers, which fuse into the surrounding loops; with ``C`` small
    and ``idx`` long (edges, triplets) this is the faster form.
    """
    x = jnp.asarray(x)
    if x.ndim < 2:
        return x[idx]
    flat = x.reshape(x.shape[0], -1)
    cols = [flat[:, c][idx] for c in range(flat.shape[1])]
    return jnp.stack(cols, axis=-1).reshape(idx.shape + x.shape[1:])


def edge_vectors(graph: jraph.GraphsTuple, positions: jax.Array | None = None, cell: jax.Array | None = None) -> jax.Array:
    """Edge vectors ``r_ij = R[j] - R[i] + S_ij @ cell``, ``[E, 3]`` Å.

    Parameters
    ----------
    graph : GraphsTuple
    positions : [N, 3], optional
        Positions to use instead of ``graph.nodes["positions"]`` (the
        variable that forces and Hessians differentiate).
    cell : [G, 3, 3], optional
        Cells to use instead of ``graph.globals["cell"]`` (strained cells for
        the stress).
    """
    R = jnp.asarray(graph.nodes["positions"] if positions is None else positions)
    C = jnp.asarray(graph.globals["cell"] if cell is None else cell)  # numpy graphs closed over in jit too
    shifts = graph.edges["offsets"].astype(R.dtype)
    if C.shape[0] == 1:  # one structure: no per-edge copy of its cell; three broadcasts (a [E,3]@[3,3]
        c = C[0].astype(R.dtype)  # dot_general is several times slower on CPU and does not fuse)
        lattice = shifts[:, :1] * c[0] + shifts[:, 1:2] * c[1] + shifts[:, 2:3] * c[2]
    else:
        lattice = jnp.einsum("ei,eij->ej", shifts, take_rows(C.astype(R.dtype), edge_graph_index(graph)))
    return take_rows(R, graph.senders) - take_rows(R, graph.receivers) + lattice


def safe_norm(v: jax.Array, mask: jax.Array | None = None, axis: int = -1) -> jax.Array:
    """Euclidean norm with a finite gradient everywhere.

    Where ``mask`` is False (or the vector is exactly zero) the result is 0
    and the gradient is 0 instead of NaN (the "double where" pattern).
    """
    sq = jnp.sum(v * v, axis=axis)
    ok = sq > 0 if mask is None else (sq > 0) & mask
    safe = jnp.where(ok, sq, 1.0)
    return jnp.where(ok, jnp.sqrt(safe), 0.0)


def sum_per_graph(values: jax.Array, graph: jraph.GraphsTuple, mask: bool = True) -> jax.Array:
    """Sum per-node values into per-graph totals, ``[N, ...] -> [G, ...]``.

    Padding nodes are excluded when ``mask`` is True.
    """
    if mask:
        m = graph.nodes["mask"].reshape((-1,) + (1,) * (values.ndim - 1))
        values = jnp.where(m, values, 0.0)
    return jax.ops.segment_sum(
        values, node_graph_index(graph), num_segments=graph.n_node.shape[0], indices_are_sorted=True
    )


def dense_slots(receivers: jax.Array, inside: jax.Array, n_nodes: int, k: int) -> tuple[jax.Array, jax.Array]:
    """Slots of a dense ``[n_nodes, k]`` neighbour layout for the edges ``inside``.

    Parameters
    ----------
    receivers : [E] int
        Centre of every edge; the inside edges must be grouped by centre in
        ascending order (as every jaxmlp graph is: padding edges, which are
        never inside, may sit anywhere).
    inside : [E] bool
        Edges to place (e.g. real edges shorter than the cutoff).
    n_nodes : int
        Number of nodes N (static).
    k : int
        Slots per node (static).

    Returns
    -------
    fits : [] bool
        True when the inside edges are grouped by ascending centre and no
        node has more than ``k`` of them (only then is ``idx`` valid).
    idx : [E] int
        ``receivers[e]·k + slot`` for inside edges (slot = rank among the
        node's inside edges), ``n_nodes·k`` (out of range: drop it when
        scattering) for the others.
    """
    ins = inside.astype(jnp.int32)
    count = jax.ops.segment_sum(ins, receivers, num_segments=n_nodes)
    start = jnp.cumsum(count) - count
    slot = jnp.cumsum(ins) - 1 - start[receivers]
    r_in = jnp.where(inside, receivers, -1)
    prev = jnp.concatenate([jnp.full((1,), -1, r_in.dtype), jax.lax.cummax(r_in)[:-1]]) if r_in.shape[0] else r_in
    grouped = jnp.all(jnp.where(inside, receivers >= prev, True))
    fits = grouped & (jnp.max(count, initial=0) <= k)
    idx = jnp.where(inside, receivers * k + slot, n_nodes * k)
    return fits, idx
