"""Analysis of trained and reference potentials: Hessian locality and fragments.

* :mod:`jaxmlp.analysis.locality` — ``||h_AB||``, decay with distance, the
  2·L·R_c force range of a model, group matrices ``G``/``G′`` and Γ;
* :mod:`jaxmlp.analysis.fragments` — hydrogen-saturated fragments with
  functional groups kept whole, and the fragment-convergence series.
"""

from . import fragments, locality
from .fragments import Fragment, FragmentSeries, cut, detect_bonds, detect_groups, fragment_series
from .locality import Decay, ForceRange, block_norms, decay, distance_matrix, force_range, gamma, group_matrix, hessian_blocks

__all__ = [
    "locality",
    "fragments",
    "block_norms",
    "hessian_blocks",
    "distance_matrix",
    "Decay",
    "decay",
    "ForceRange",
    "force_range",
    "group_matrix",
    "gamma",
    "Fragment",
    "FragmentSeries",
    "cut",
    "detect_bonds",
    "detect_groups",
    "fragment_series",
]
