"""Cutoff and compact core functions in n2p2's conventions.

Cutoff functions ``f_c(r)`` (n2p2 ``cutoff_type`` numbering, ``x = (r − α r_c)
/ (r_c − α r_c)``, ``f_c = 1`` for ``r < α r_c`` and ``f_c = 0`` for
``r ≥ r_c``):

====  =======  =====================================  ==========================
 id   name     f_c                                    smoothness at r_c
====  =======  =====================================  ==========================
 0    hard     1                                      discontinuous
 1    cos      ½[cos(πx) + 1]                         C¹ (f'' jumps)
 2    tanhu    tanh³(1 − r/r_c) (not normalised)      C² (α ignored)
 3    tanh     tanh³(1 − r/r_c) / tanh³(1)            C² (α ignored)
 4    exp      e · exp(1 / (x² − 1))                  C∞
 5    poly1    (2x − 3)x² + 1                         C¹
 6    poly2    ((15 − 6x)x − 10)x³ + 1                C²
 7    poly3    (x(x(20x − 70) + 84) − 35)x⁴ + 1       C³
 8    poly4    (x(x((315 − 70x)x − 540) + 420) − 126)x⁵ + 1   C⁴
====  =======  =====================================  ==========================

The same polynomial/cos/exp cores (on ``x ∈ [0, 1]``, 1 at 0 and 0 at 1)
define n2p2's compact symmetry functions (types 20–25); their ``"a"``
(asymmetric) variants use ``x → (2 − x)x`` first.

All functions are jittable, act elementwise on arrays and give finite values
*and gradients* for any input (including ``r = r_c`` and padding values).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

__all__ = [
    "CUTOFF_TYPES",
    "CORE_TYPES",
    "cutoff_type_id",
    "cutoff_type_name",
    "core_function",
    "cutoff_function",
    "compact_function",
]

#: n2p2 ``cutoff_type`` integer → name.
CUTOFF_TYPES = {0: "hard", 1: "cos", 2: "tanhu", 3: "tanh", 4: "exp", 5: "poly1", 6: "poly2", 7: "poly3", 8: "poly4"}
_CUTOFF_IDS = {v: k for k, v in CUTOFF_TYPES.items()}

#: Core functions available for compact symmetry functions (n2p2 subtype letters).
CORE_TYPES = ("c", "p1", "p2", "p3", "p4", "e")

_TANH_PRE = ((math.e + 1 / math.e) / (math.e - 1 / math.e)) ** 3  # 1 / tanh(1)^3, as n2p2


def cutoff_type_id(kind) -> int:
    """n2p2 integer of a cutoff type given by name or integer.

    Parameters
    ----------
    kind : str or int
        ``"hard"``, ``"cos"``, ``"tanhu"``, ``"tanh"``, ``"exp"``,
        ``"poly1"`` … ``"poly4"`` or the n2p2 integer 0–8.

    Returns
    -------
    int
    """
    if isinstance(kind, bool):
        raise TypeError(f"cutoff type must be a name or an int, got {kind!r}")
    if isinstance(kind, (int,)) or (hasattr(kind, "__index__") and not isinstance(kind, str)):
        k = int(kind)
        if k not in CUTOFF_TYPES:
            raise ValueError(f"unknown cutoff type {k}; n2p2 types are {CUTOFF_TYPES}")
        return k
    if isinstance(kind, str):
        key = kind.strip().lower()
        if key.isdigit():
            return cutoff_type_id(int(key))
        if key not in _CUTOFF_IDS:
            raise ValueError(f"unknown cutoff type {kind!r}; known: {sorted(_CUTOFF_IDS)}")
        return _CUTOFF_IDS[key]
    raise TypeError(f"cutoff type must be a name or an int, got {type(kind).__name__}")


def cutoff_type_name(kind) -> str:
    """Canonical name (``"poly2"``, …) of a cutoff type given by name or n2p2 integer."""
    return CUTOFF_TYPES[cutoff_type_id(kind)]


def _core(name: str, x):
    """Core function on ``x ∈ [0, 1]`` (no range checks)."""
    if name == "c":
        return 0.5 * (jnp.cos(jnp.pi * x) + 1.0)
    if name == "p1":
        return (2.0 * x - 3.0) * x * x + 1.0
    if name == "p2":
        return ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0
    if name == "p3":
        x2 = x * x
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0
    if name == "p4":
        x2 = x * x
        return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0
    if name == "e":
        return math.e * jnp.exp(1.0 / (x * x - 1.0))
    raise ValueError(f"unknown core function {name!r}; known: {CORE_TYPES}")


def core_function(name: str, x, asymmetric: bool = False):
    """n2p2 core function ``f(x)`` on ``x ∈ [0, 1]``, zero for ``x ≥ 1``.

    Parameters
    ----------
    name : {"c", "p1", "p2", "p3", "p4", "e"}
        Cosine, polynomials of increasing smoothness, or exponential bump.
    x : array
        Argument (dimensionless); values ≥ 1 give 0, values < 0 are treated
        like 0 (f = 1).
    asymmetric : bool
        n2p2's ``"a"`` variant: evaluate at ``(2 − x)x`` instead of ``x``.

    Returns
    -------
    array, same shape as ``x``
    """
    x = jnp.asarray(x)
    inside = x < 1.0
    xs = jnp.where(inside, jnp.clip(x, 0.0, 1.0), 0.5)
    if asymmetric:
        xs = (2.0 - xs) * xs
    return jnp.where(inside, jnp.where(x > 0.0, _core(name, xs), 1.0), 0.0)


def cutoff_function(r, rc, kind="poly2", alpha: float = 0.0):
    """Cutoff function ``f_c(r)`` of n2p2 type ``kind`` with inner cutoff ``α``.

    Parameters
    ----------
    r : array
        Distances (any length unit, the same as ``rc``).
    rc : float or array broadcastable to ``r``
        Cutoff radius.
    kind : str or int
        Cutoff type, see the module docstring (n2p2 integer or name).
    alpha : float
        Inner cutoff as a fraction of ``rc`` (``0 ≤ α < 1``): ``f_c = 1``
        below ``α r_c``. Ignored by ``tanhu``/``tanh`` (as in n2p2).

    Returns
    -------
    array, broadcast shape of ``r`` and ``rc``
        0 for ``r ≥ rc``; finite value and gradient everywhere.
    """
    name = cutoff_type_name(kind)
    if not (0.0 <= float(alpha) < 1.0):
        raise ValueError(f"cutoff alpha must satisfy 0 <= alpha < 1, got {alpha}")
    r = jnp.asarray(r)
    rc = jnp.asarray(rc, dtype=r.dtype)
    inside = r < rc
    if name == "hard":
        return jnp.where(inside, 1.0, 0.0).astype(r.dtype)
    if name in ("tanhu", "tanh"):
        rs = jnp.where(inside, r, 0.0)
        t = jnp.tanh(1.0 - rs / rc)
        val = t * t * t
        if name == "tanh":
            val = _TANH_PRE * val
        return jnp.where(inside, val, 0.0)
    rci = alpha * rc
    x = (r - rci) / (rc - rci)
    core = {"cos": "c", "exp": "e", "poly1": "p1", "poly2": "p2", "poly3": "p3", "poly4": "p4"}[name]
    return core_function(core, x)


def compact_function(a, left, right, core: str = "p2", asymmetric: bool = False):
    """n2p2 ``CompactFunction``: ``f(|a − c| / w)`` on ``[left, right]``.

    Parameters
    ----------
    a : array
        Argument (a distance, or an angle in radians).
    left, right : float or array
        Support; centre ``c = (left + right)/2``, half-width ``w = (right − left)/2``.
    core : str
        Core function name (see :func:`core_function`).
    asymmetric : bool
        Asymmetric polynomial variant (n2p2 subtypes ``p1a`` … ``p4a``).

    Returns
    -------
    array
        1 at the centre, 0 outside ``(left, right)``.
    """
    a = jnp.asarray(a)
    centre = 0.5 * (right + left)
    scale = 1.0 / (0.5 * (right - left))
    return core_function(core, jnp.abs((a - centre) * scale), asymmetric)
