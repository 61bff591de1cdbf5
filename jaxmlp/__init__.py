"""jaxmlp: machine-learning interatomic potentials in JAX.

Graphs from ASE structures, a functional model family (pair potentials,
HDNNP, ml-ACE), observables (forces, stress, Hessians) as transforms of the
energy, the Hessian locality test, and force-training studies.
"""

from . import analysis, data, descriptors, graph, io, models, observables, training
from .calculator import Calculator
from .graph import Buckets, atoms_to_graph, batch_graphs, suggest_buckets
from .hessians import SparseHessian, fd_hessian, hessian_pairs, sparse_hessian
from .observables import (
    energy,
    energy_and_forces,
    energy_forces_stress,
    forces,
    hessian,
    hessian_vector_product,
    per_atom_energies,
    stress,
)
from .serialization import load, save
from .training import TrainConfig, train

__version__ = "0.1.0"

__all__ = [
    "Buckets",
    "Calculator",
    "SparseHessian",
    "TrainConfig",
    "analysis",
    "atoms_to_graph",
    "batch_graphs",
    "data",
    "descriptors",
    "energy",
    "energy_and_forces",
    "energy_forces_stress",
    "fd_hessian",
    "forces",
    "graph",
    "hessian",
    "hessian_pairs",
    "hessian_vector_product",
    "io",
    "load",
    "models",
    "observables",
    "per_atom_energies",
    "save",
    "sparse_hessian",
    "stress",
    "suggest_buckets",
    "train",
    "training",
]
