"""Descriptors: cutoff functions and atom-centred symmetry functions (n2p2 conventions).

The ACE building blocks (radial bases, Y_lm, invariant products up to
correlation order 4) live in :mod:`jaxmlp.descriptors.ace`; they are not
re-exported here (its ``cutoff_function`` is the ACE polynomial cutoff, not
the n2p2 one).
"""

from .acsf import (
    ACSF,
    SCALING_MODES,
    angular_narrow,
    angular_set,
    angular_wide,
    compact_angular,
    compact_radial,
    radial,
    radial_grid,
    scale_features,
    sort_functions,
)
from .cutoffs import CORE_TYPES, CUTOFF_TYPES, compact_function, core_function, cutoff_function, cutoff_type_id, cutoff_type_name

__all__ = [
    "ACSF",
    "SCALING_MODES",
    "radial",
    "angular_narrow",
    "angular_wide",
    "compact_radial",
    "compact_angular",
    "radial_grid",
    "angular_set",
    "scale_features",
    "sort_functions",
    "CUTOFF_TYPES",
    "CORE_TYPES",
    "cutoff_function",
    "core_function",
    "compact_function",
    "cutoff_type_id",
    "cutoff_type_name",
]
