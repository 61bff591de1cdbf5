"""The model family: pure ``init``/``apply`` pairs returning per-atom energies."""

from .base import MODEL_REGISTRY, Model, build_model, check_elements, register_model, species_table
from .combine import sum_models, with_core_repulsion
from .hdnnp import hdnnp
from .hdnnp4g import hdnnp4g
from .mlace import mlace
from .pair import lennard_jones, morse
from .repulsion import core_radii, gap_barrier, pair_gaps, wall_repulsion, zbl_repulsion

__all__ = [
    "Model",
    "MODEL_REGISTRY",
    "build_model",
    "register_model",
    "species_table",
    "check_elements",
    "lennard_jones",
    "morse",
    "hdnnp",
    "hdnnp4g",
    "mlace",
    "zbl_repulsion",
    "core_radii",
    "gap_barrier",
    "pair_gaps",
    "wall_repulsion",
    "sum_models",
    "with_core_repulsion",
]
