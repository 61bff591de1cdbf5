"""Molecular dynamics of jaxmlp models: jax-md integrators in a jitted ``lax.scan``, host-side neighbour rebuilds."""

from .engine import ENSEMBLES, MDConfig, MDEngine, MDState, MDUnstableError, write_frame

__all__ = ["ENSEMBLES", "MDConfig", "MDEngine", "MDState", "MDUnstableError", "write_frame"]
