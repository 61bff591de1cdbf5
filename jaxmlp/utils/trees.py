"""One dtype cast for parameter pytrees and graphs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["cast_floats"]


def cast_floats(tree, dtype):
    """Cast every floating-point leaf of ``tree`` to ``dtype``; integer and bool leaves are kept.

    Works for parameter pytrees and for ``jraph.GraphsTuple`` (positions,
    cell and any float features are cast; senders, receivers, species and
    integer cell offsets keep their dtype). NumPy leaves stay NumPy arrays
    (graphs built on the host remain host arrays), JAX leaves stay JAX arrays.
    Note that with ``jax_enable_x64`` off, a float64 request for a JAX leaf
    yields float32, as JAX itself does.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"cast_floats: dtype must be a floating type, got {dtype}")

    def cast(x):
        if x is None:
            return x
        if isinstance(x, np.ndarray) or np.isscalar(x):
            a = np.asarray(x)
            return a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else x
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree_util.tree_map(cast, tree)
