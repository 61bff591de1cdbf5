"""Analysis of trained and reference potentials: Hessian locality and fragments.

* :mod:`jaxmlp.analysis.locality` — ``||h_AB||``, decay with distance, the
  2·L·R_c force range of a model, group matrices ``G``/``G′`` and Γ;
* :mod:`jaxmlp.analysis.fragments` — hydrogen-saturated fragments with
  functional groups kept whole, and the fragment-convergence series.

Each function has one import path, through its module::

    from jaxmlp.analysis.locality import block_norms, gamma
    from jaxmlp.analysis import fragments
    fragments.cut(atoms, centre=0, radius=4.0)
"""

from . import fragments, locality

__all__ = ["fragments", "locality"]
