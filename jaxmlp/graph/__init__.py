"""Structures → graphs: validation, neighbour lists, periodic offsets, triplets, padding."""

from .build import TripletFilter, atoms_to_graph, build_triplets, filter_triplets
from .neighbours import NeighbourList, max_degree, neighbour_list
from .ops import (
    edge_graph_index,
    edge_vectors,
    node_graph_index,
    safe_norm,
    sum_per_graph,
)
from .padding import Buckets, batch_graphs, grow_buckets, suggest_buckets
from .validation import validate

__all__ = [
    "Buckets",
    "NeighbourList",
    "TripletFilter",
    "atoms_to_graph",
    "batch_graphs",
    "build_triplets",
    "edge_graph_index",
    "edge_vectors",
    "filter_triplets",
    "grow_buckets",
    "max_degree",
    "neighbour_list",
    "node_graph_index",
    "safe_norm",
    "suggest_buckets",
    "sum_per_graph",
    "validate",
]
