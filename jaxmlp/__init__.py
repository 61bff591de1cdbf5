"""jaxmlp: machine-learning interatomic potentials in JAX.

Graphs from ASE structures, a functional model family (pair potentials,
HDNNP, ml-ACE), observables (forces, stress, Hessians) as transforms of the
energy, the Hessian locality test, and force-training studies.
"""

from . import data, graph, models, observables
from .calculator import Calculator
from .graph import Buckets, atoms_to_graph, batch_graphs, suggest_buckets
from .hessians import SparseHessian, fd_hessian, hessian_pairs, sparse_hessian
from . import analysis
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

from . import descriptors, io
from .serialization import load, save
from . import training
from .training import TrainConfig, train

__version__ = "0.1.0"

__all__ = [
    "data",
    "graph",
    "models",
    "observables",
    "Calculator",
    "Buckets",
    "atoms_to_graph",
    "batch_graphs",
    "suggest_buckets",
    "energy",
    "energy_and_forces",
    "energy_forces_stress",
    "forces",
    "stress",
    "per_atom_energies",
    "hessian",
    "hessian_vector_product",
    "SparseHessian",
    "sparse_hessian",
    "hessian_pairs",
    "fd_hessian",
    "analysis",
    "descriptors",
    "io",
    "save",
    "load",
    "training",
    "TrainConfig",
    "train",
]
