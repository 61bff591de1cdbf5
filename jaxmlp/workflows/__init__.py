"""End-to-end recipes built from the library's layers.

* :mod:`jaxmlp.workflows.fragment_training` — Herbold & Behler (2023):
  the reference's force range from the Hessian locality test, fragments of
  radius ``R_c`` and ``R_frag^conv`` cut from bulk snapshots, resumable
  parallel labelling, HDNNPs trained on fragments and validated on bulk
  (errors, the reference's own fragment force errors, model Hessian range).

One import path per function, through its module::

    from jaxmlp.workflows import fragment_training as ft
    rng = ft.reference_range({"O": ft.locality_rows(cluster, calc, 0, radii)})
"""

from . import fragment_training

__all__ = ["fragment_training"]
