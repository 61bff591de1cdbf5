"""The model family: pure ``init``/``apply`` pairs returning per-atom energies."""

from .base import MODEL_REGISTRY, Model, build_model, check_elements, register_model, species_table
from .hdnnp import hdnnp
from .hdnnp4g import hdnnp4g
from .mlace import mlace
from .pair import lennard_jones, morse

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
]
