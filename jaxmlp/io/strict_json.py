"""Strict JSON for result files: numpy values become Python ones, NaN/±inf become ``null``."""

from __future__ import annotations

import numpy as np

__all__ = ["json_ready"]


def json_ready(x):
    """A JSON-ready copy: numpy → Python, non-finite floats → None (strict JSON has no NaN/Infinity)."""
    if isinstance(x, dict):
        return {str(k): json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_ready(x.tolist())
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if hasattr(x, "tolist"):  # jax arrays and other array-likes
        return json_ready(x.tolist())
    return str(x)
