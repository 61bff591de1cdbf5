"""Batching graphs into fixed-size buckets so ``jit`` compiles once per bucket.

A padded batch holds the real graphs followed by **one padding graph** that
owns all padding nodes, edges and triplets (jraph's convention).  Padding is
inert by construction:

* padding nodes have ``mask = False`` and atomic number 0; observables mask
  their per-atom energies to exactly zero;
* padding edges are self-edges of the first padding node with a non-zero cell
  offset in a padding cell of 1000 Å, so their length (≥ 1000 Å) lies beyond
  any cutoff and no norm or its derivative is singular; they also carry
  ``mask = False``;
* padding triplets join two distinct padding edges.

An overflowing bucket raises ``ValueError``; nothing is truncated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jraph
import numpy as np

__all__ = ["Buckets", "batch_graphs", "grow_buckets", "suggest_buckets"]

PAD_CELL = 1000.0


class Buckets(NamedTuple):
    """Fixed sizes of a padded batch (padding graph included).

    At most ``n_graph - 1`` real graphs, ``n_node - 1`` real nodes and
    ``n_edge - 2`` real edges fit, because the padding graph needs one node
    and two edges.
    """

    n_node: int
    n_edge: int
    n_graph: int
    n_triplet: int = 0


def _round_up(x: int, base: int = 8) -> int:
    """Next size on a coarse geometric ladder (powers of 2 and 1.5·powers of 2)."""
    x = max(int(x), base)
    p = 1 << (x - 1).bit_length()
    return p * 3 // 4 if p * 3 // 4 >= x else p


def suggest_buckets(graphs: Sequence[jraph.GraphsTuple], batch_size: int = 1) -> Buckets:
    """Bucket sizes that fit any ``batch_size`` of ``graphs`` in one batch.

    Sizes are taken from the largest ``batch_size`` graphs (for nodes, edges
    and triplets separately) and rounded up on a coarse ladder, so a dataset
    compiles a single program.
    """
    if len(graphs) == 0:
        raise ValueError("suggest_buckets needs at least one graph")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    k = min(batch_size, len(graphs))
    nodes = np.sort([int(np.sum(g.n_node)) for g in graphs])[::-1][:k].sum()
    edges = np.sort([int(np.sum(g.n_edge)) for g in graphs])[::-1][:k].sum()
    trips = np.sort([len(g.globals["triplets"]) for g in graphs])[::-1][:k].sum()
    return Buckets(
        n_node=_round_up(nodes + 1),
        n_edge=_round_up(edges + 2),
        n_graph=k + 1,
        n_triplet=_round_up(trips) if trips > 0 else 0,
    )


def grow_buckets(graphs: Sequence[jraph.GraphsTuple], current: Buckets | None = None, headroom: float = 1.2) -> Buckets:
    """Buckets that hold ``graphs`` in one batch, re-using ``current`` where it fits.

    For a stream of changing graphs (an MD run whose neighbour list is
    rebuilt): a size that still fits keeps its bucket, so ``jit`` re-uses the
    compiled program; one that overflows grows to the next ladder size
    (×1.33–1.5) above ``headroom`` times the need, so sizes that creep upward
    re-bucket only a logarithmic number of times.  Buckets never shrink.
    """
    graphs = list(graphs)
    if not graphs:
        raise ValueError("grow_buckets needs at least one graph")
    if headroom < 1:
        raise ValueError(f"headroom must be >= 1, got {headroom}")
    need = Buckets(
        n_node=sum(int(np.sum(g.n_node)) for g in graphs) + 1,
        n_edge=sum(int(np.sum(g.n_edge)) for g in graphs) + 2,
        n_graph=sum(len(g.n_node) for g in graphs) + 1,
        n_triplet=sum(len(g.globals["triplets"]) for g in graphs),
    )
    if current is None:
        current = Buckets(0, 0, 0, 0)

    def fit(have, want, ladder=True):
        if want <= have:
            return have
        if want == 0:
            return 0
        return _round_up(math.ceil(headroom * want)) if ladder else want

    return Buckets(
        n_node=fit(current.n_node, need.n_node),
        n_edge=fit(current.n_edge, need.n_edge),
        n_graph=fit(current.n_graph, need.n_graph, ladder=False),
        n_triplet=fit(current.n_triplet, need.n_triplet),
    )


def batch_graphs(graphs: Sequence[jraph.GraphsTuple], buckets: Buckets | None = None) -> jraph.GraphsTuple:
    """Concatenate jaxmlp graphs and pad them to ``buckets``.

    Parameters
    ----------
    graphs : sequence of GraphsTuple
        Unpadded graphs from :func:`jaxmlp.atoms_to_graph` (or batches of
        them without padding).
    buckets : Buckets, optional
        Target sizes. ``None`` picks :func:`suggest_buckets` for this batch.

    Returns
    -------
    GraphsTuple
        ``n_node.sum() == buckets.n_node`` etc., last graph is padding.

    Raises
    ------
    ValueError
        If the graphs do not fit the buckets (never truncates).
    """
    graphs = list(graphs)
    if not graphs:
        raise ValueError("batch_graphs needs at least one graph")
    if buckets is None:
        buckets = suggest_buckets(graphs, len(graphs))
    n_nodes = [int(np.sum(g.n_node)) for g in graphs]
    n_edges = [int(np.sum(g.n_edge)) for g in graphs]
    n_graphs = [len(g.n_node) for g in graphs]
    n_trips = [len(g.globals["triplets"]) for g in graphs]
    N, E, G, T = sum(n_nodes), sum(n_edges), sum(n_graphs), sum(n_trips)
    problems = []
    if N + 1 > buckets.n_node:
        problems.append(f"{N} nodes + 1 padding node > n_node={buckets.n_node}")
    if E + 2 > buckets.n_edge:
        problems.append(f"{E} edges + 2 padding edges > n_edge={buckets.n_edge}")
    if G + 1 > buckets.n_graph:
        problems.append(f"{G} graphs + 1 padding graph > n_graph={buckets.n_graph}")
    if T > buckets.n_triplet:
        problems.append(f"{T} triplets > n_triplet={buckets.n_triplet}")
    if problems:
        raise ValueError("batch does not fit its buckets: " + "; ".join(problems))

    node_off = np.cumsum([0] + n_nodes[:-1])
    edge_off = np.cumsum([0] + n_edges[:-1])
    pn, pe, pg, pt = buckets.n_node - N, buckets.n_edge - E, buckets.n_graph - G, buckets.n_triplet - T

    def cat(arrays, pad):
        return np.concatenate(list(arrays) + [pad], axis=0)

    dtype = np.result_type(*[g.nodes["positions"].dtype for g in graphs])
    positions = cat((g.nodes["positions"] for g in graphs), np.zeros((pn, 3), dtype))
    numbers = cat((g.nodes["numbers"] for g in graphs), np.zeros(pn, np.int32))
    node_mask = cat((g.nodes["mask"] for g in graphs), np.zeros(pn, bool))

    pad_offsets = np.zeros((pe, 3), np.int32)
    pad_offsets[:, 0] = 1
    pad_offsets[1::2, 1] = 1  # consecutive padding edges differ: |r_jk| > 0
    offsets = cat((g.edges["offsets"] for g in graphs), pad_offsets)
    edge_mask = cat((g.edges["mask"] for g in graphs), np.zeros(pe, bool))
    senders = cat((g.senders + o for g, o in zip(graphs, node_off)), np.full(pe, N, np.int32))
    receivers = cat((g.receivers + o for g, o in zip(graphs, node_off)), np.full(pe, N, np.int32))

    pad_trip = np.empty((pt, 2), np.int32)
    pad_trip[:, 0] = E
    pad_trip[:, 1] = E + 1
    triplets = cat((g.globals["triplets"] + o for g, o in zip(graphs, edge_off)), pad_trip)

    pad_cell = np.zeros((pg, 3, 3), dtype)
    pad_cell[:] = np.eye(3) * PAD_CELL
    cell = cat((g.globals["cell"] for g in graphs), pad_cell)
    pbc = cat((g.globals["pbc"] for g in graphs), np.ones((pg, 3), bool))
    gmask = cat((g.globals["mask"] for g in graphs), np.zeros(pg, bool))
    n_trip = cat((g.globals["n_triplet"] for g in graphs), np.array([0] * (pg - 1) + [pt], np.int32))

    # all padding nodes/edges/triplets belong to the last graph (jraph's
    # convention); any further padding graphs are empty.
    n_node = cat((g.n_node for g in graphs), np.array([0] * (pg - 1) + [pn], np.int32))
    n_edge = cat((g.n_edge for g in graphs), np.array([0] * (pg - 1) + [pe], np.int32))
    return jraph.GraphsTuple(
        nodes={"positions": positions, "numbers": numbers.astype(np.int32), "mask": node_mask},
        edges={"offsets": offsets.astype(np.int32), "mask": edge_mask},
        senders=senders.astype(np.int32),
        receivers=receivers.astype(np.int32),
        globals={
            "cell": cell,
            "pbc": pbc,
            "mask": gmask,
            "n_triplet": n_trip.astype(np.int32),
            "triplets": triplets.astype(np.int32),
        },
        n_node=n_node.astype(np.int32),
        n_edge=n_edge.astype(np.int32),
    )

