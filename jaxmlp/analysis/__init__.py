"""Analysis of trained and reference potentials: Hessian locality and fragments.

* :mod:`jaxmlp.analysis.locality` — ``||h_AB||``, decay with distance, the
  2·L·R_c force range of a model, group matrices ``G``/``G′`` and Γ;
* :mod:`jaxmlp.analysis.fragments` — hydrogen-saturated fragments with
  functional groups kept whole, and the fragment-convergence series;
* :mod:`jaxmlp.analysis.group_series` — Herbold & Behler's model-system
  protocol: A's Hessian row from six force calls, fragments made by removing
  functional units from the far end, ``||Δf||``/``||G′||`` per fragment, the
  smallest fragment a Γ accepts, and a disk cache of force calls.

Each function has one import path, through its module::

    from jaxmlp.analysis.locality import block_norms, gamma
    from jaxmlp.analysis import fragments
    fragments.cut(atoms, centre=0, radius=4.0)
"""

from . import fragments, group_series, locality

__all__ = ["fragments", "group_series", "locality"]
