"""Bottom-layer utilities shared by every package: atomic files, strict JSON, dtype casts.

This package imports nothing else from jaxmlp, so any layer may use it.
"""

from .files import atomic_write, json_ready, write_json
from .trees import cast_floats

__all__ = ["atomic_write", "json_ready", "write_json", "cast_floats"]
