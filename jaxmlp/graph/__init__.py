"""Structures → graphs: validation, neighbour lists, periodic offsets, triplets, padding."""

from .build import atoms_to_graph, build_triplets
from .neighbours import NeighbourList, max_degree, neighbour_list
from .ops import edge_graph_index, edge_vectors, node_graph_index, safe_norm, sum_per_graph
from .padding import Buckets, batch_graphs, grow_buckets, suggest_buckets
from .validation import validate

__all__ = [
    "max_degree",
    "atoms_to_graph",
    "build_triplets",
    "NeighbourList",
    "neighbour_list",
    "edge_vectors",
    "edge_graph_index",
    "node_graph_index",
    "safe_norm",
    "sum_per_graph",
    "Buckets",
    "batch_graphs",
    "suggest_buckets",
    "grow_buckets",
    "validate",
]
