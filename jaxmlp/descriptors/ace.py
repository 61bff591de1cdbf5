"""Atomic cluster expansion (ACE) building blocks.

Everything here is a pure function of arrays (no parameters, no graphs), so
the ml-ACE model (:mod:`jaxmlp.models.mlace`) and the tests share one
implementation:

* :func:`cutoff_function` — smooth polynomial cutoff ``(1 − (r/R_c)²)³``
  (value, first and second derivative vanish at ``R_c``; exactly zero beyond);
* :func:`radial_basis` — Bessel ``√(2/R_c) sin(nπr/R_c)/r`` or Chebyshev
  ``T_n(1 − 2r/R_c)`` functions times the cutoff, ``[..., n_basis]``;
* :func:`chebyshev` — Chebyshev polynomials of the first kind ``T_0..T_k``
  of a scalar (the ml-ACE indicator ``θ ∈ (−1, 1)``);
* :func:`spherical_harmonics` — real ``Y_lm`` of unit vectors from
  e3nn-jax (``component`` normalisation, ``|Y_l|² = 2l+1``; e3nn's real basis
  with l = 1 ordered ``(x, y, z)``);
* :class:`ProductBasis` / :func:`product_basis` / :func:`evaluate_products`
  — the rotation- and inversion-invariant products of the atomic base
  ``A_{i,c,lm}`` up to correlation order ν = 4, contracted with precomputed
  Clebsch–Gordan (Wigner 3j) coefficients of e3nn-jax (same real basis as its
  spherical harmonics, so the contraction is exactly invariant).

Correlation order ν counts the number of atomic-base factors ``A`` in a
product (body order ν + 1, the centre atom included):

* ν = 1: ``A_{c,00}``;
* ν = 2: ``Σ_m A_{c1,lm} A_{c2,lm}``;
* ν = 3: ``Σ_{m1 m2 m3} C^{l1 l2 l3}_{m1 m2 m3} A_{c1,l1m1} A_{c2,l2m2} A_{c3,l3m3}``
  with ``l1 + l2 + l3`` even (parity) and the triangle rule;
* ν = 4: ``Σ_M (A_{c1 l1} ⊗ A_{c2 l2})_{LM} (A_{c3 l3} ⊗ A_{c4 l4})_{LM}``
  with ``l1 + l2 + L`` and ``l3 + l4 + L`` even.

Each product is enumerated once per multiset of ``(l, c)`` pairs (sorted), so
permuting equal factors adds nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Sequence

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "cutoff_function",
    "radial_basis",
    "chebyshev",
    "spherical_harmonics",
    "ProductGroup",
    "ProductBasis",
    "product_basis",
    "evaluate_products",
    "RADIAL_BASES",
]

RADIAL_BASES = ("bessel", "chebyshev")


def cutoff_function(r: jax.Array, cutoff: float) -> jax.Array:
    """Smooth cutoff ``f_c(r) = (1 − (r/R_c)²)³`` for ``r < R_c``, else 0.

    Parameters
    ----------
    r : [...] distances, Å
    cutoff : float, Å

    Returns
    -------
    [...] dimensionless, in [0, 1]; C² at ``R_c`` and exactly zero beyond.
    """
    x = r / cutoff
    inside = x < 1.0
    x = jnp.where(inside, x, 0.0)
    return jnp.where(inside, (1.0 - x * x) ** 3, 0.0)


def radial_basis(r: jax.Array, cutoff: float, n_basis: int, kind: str = "bessel") -> jax.Array:
    """Radial basis functions ``g_n(r) f_c(r)``, ``[..., n_basis]``.

    Parameters
    ----------
    r : [...] distances, Å (must be > 0 for ``"bessel"``; pass a safe value
        for masked edges).
    cutoff : float, Å
    n_basis : int
        Number of functions.
    kind : {"bessel", "chebyshev"}
        ``"bessel"``: ``√(2/R_c) sin(nπ r/R_c) / r``, n = 1..n_basis (units 1/Å);
        ``"chebyshev"``: ``T_n(1 − 2 r/R_c)``, n = 0..n_basis−1 (dimensionless).

    Returns
    -------
    [..., n_basis], zero for ``r ≥ R_c``.
    """
    if kind not in RADIAL_BASES:
        raise ValueError(f"radial basis kind must be one of {RADIAL_BASES}, got {kind!r}")
    if n_basis < 1:
        raise ValueError(f"n_basis must be >= 1, got {n_basis}")
    fc = cutoff_function(r, cutoff)[..., None]
    if kind == "bessel":
        n = jnp.arange(1, n_basis + 1, dtype=r.dtype)
        g = math.sqrt(2.0 / cutoff) * jnp.sin(n * np.pi * r[..., None] / cutoff) / r[..., None]
    else:
        x = jnp.clip(1.0 - 2.0 * r / cutoff, -1.0, 1.0)
        g = chebyshev(x, n_basis - 1)
    return g * fc


def chebyshev(x: jax.Array, k_max: int) -> jax.Array:
    """Chebyshev polynomials of the first kind ``T_0(x) … T_{k_max}(x)``.

    Parameters
    ----------
    x : [...] dimensionless (the ml-ACE indicator ``θ = tanh(φ)`` lies in (−1, 1))
    k_max : int >= 0

    Returns
    -------
    [..., k_max + 1] with ``T_0 = 1``, ``T_1 = x``, ``T_{k+1} = 2x T_k − T_{k−1}``.
    """
    if k_max < 0:
        raise ValueError(f"k_max must be >= 0, got {k_max}")
    ts = [jnp.ones_like(x)]
    if k_max >= 1:
        ts.append(x)
    for _ in range(2, k_max + 1):
        ts.append(2.0 * x * ts[-1] - ts[-2])
    return jnp.stack(ts, axis=-1)


def _irreps(l_max: int) -> e3nn.Irreps:
    return e3nn.Irreps("+".join(f"{l}{'e' if l % 2 == 0 else 'o'}" for l in range(l_max + 1)))


def spherical_harmonics(unit: jax.Array, l_max: int) -> jax.Array:
    """Real spherical harmonics of unit vectors (e3nn-jax), ``[..., (l_max+1)²]``.

    Parameters
    ----------
    unit : [..., 3] unit vectors (not re-normalised here)
    l_max : int >= 0

    Returns
    -------
    [..., (l_max + 1)²] ordered ``(l, m)`` with ``l`` major; ``component``
    normalisation (``Σ_m Y_lm² = 2l + 1`` on the unit sphere).
    """
    if l_max < 0:
        raise ValueError(f"l_max must be >= 0, got {l_max}")
    return e3nn.spherical_harmonics(_irreps(l_max), unit, normalize=False, normalization="component").array


# --------------------------------------------------------------------------
# invariant products


@dataclasses.dataclass(frozen=True, eq=False)
class ProductGroup:
    """All invariants of one correlation order sharing ``ls`` (and ``L``).

    Attributes
    ----------
    order : int
        Correlation order ν (number of ``A`` factors).
    ls : tuple of int
        Angular momenta of the factors (sorted).
    L : int
        Intermediate coupling for ν = 4 (−1 otherwise).
    channels : np.ndarray [T, ν] int
        Radial channel of each factor, one row per invariant.
    coupling : tuple of np.ndarray
        ν = 3: ``(C^{l1 l2 l3},)``; ν = 4: ``(C^{l1 l2 L}, C^{l3 l4 L})``;
        empty for ν ≤ 2.
    """

    order: int
    ls: tuple
    L: int
    channels: np.ndarray
    coupling: tuple

    @property
    def size(self) -> int:
        return int(self.channels.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class ProductBasis:
    """A static description of the invariant product basis.

    Attributes
    ----------
    n_max : tuple of int
        Radial channels used at each correlation order ν = 1..max_order.
    l_max : tuple of int
        Largest ``l`` used at each correlation order.
    groups : tuple of ProductGroup
    """

    n_max: tuple
    l_max: tuple
    groups: tuple

    @property
    def size(self) -> int:
        """Number of invariant basis functions."""
        return sum(g.size for g in self.groups)

    @property
    def max_order(self) -> int:
        return len(self.n_max)

    @property
    def n_channels(self) -> int:
        """Radial channels the atomic base must provide (``max(n_max)``)."""
        return max(self.n_max)

    @property
    def l_max_all(self) -> int:
        """Largest ``l`` the atomic base must provide."""
        return max(self.l_max)

    def labels(self) -> list:
        """One label per invariant: ``(order, ((l, c), ...), L)``."""
        out = []
        for g in self.groups:
            for row in g.channels:
                out.append((g.order, tuple((int(l), int(c)) for l, c in zip(g.ls, row)), g.L))
        return out


def _per_order(value, max_order: int, name: str) -> tuple:
    if isinstance(value, (int, np.integer)):
        vals = (int(value),) * max_order
    else:
        vals = tuple(int(v) for v in value)
        if len(vals) != max_order:
            raise ValueError(f"{name} must be an int or have one entry per correlation order (1..{max_order}), got {value!r}")
    return vals


def product_basis(n_max, l_max, max_order: int = 3) -> ProductBasis:
    """Enumerate the invariant products of the atomic base.

    Parameters
    ----------
    n_max : int or sequence of int
        Radial channels per correlation order (``n_max[ν−1]``), or one int for all.
    l_max : int or sequence of int
        Largest ``l`` per correlation order; order 1 always uses ``l = 0``.
    max_order : int in 1..4
        Largest correlation order ν.

    Returns
    -------
    ProductBasis
    """
    if not isinstance(max_order, (int, np.integer)) or not 1 <= max_order <= 4:
        raise ValueError(f"max correlation (body) order must be an int in 1..4, got {max_order!r}")
    n_max = _per_order(n_max, max_order, "n_max")
    l_max = _per_order(l_max, max_order, "l_max")
    if any(n < 1 for n in n_max):
        raise ValueError(f"n_max entries must be >= 1, got {n_max}")
    if any(l < 0 for l in l_max):
        raise ValueError(f"l_max entries must be >= 0, got {l_max}")
    l_max = (0,) + l_max[1:]
    groups = []
    for order in range(1, max_order + 1):
        items = [(l, c) for l in range(l_max[order - 1] + 1) for c in range(n_max[order - 1])]
        by_key: dict = {}
        for combo in itertools.combinations_with_replacement(items, order):
            ls = tuple(l for l, _ in combo)
            cs = tuple(c for _, c in combo)
            if sum(ls) % 2:
                continue
            if order == 1:
                keys = [-1] if ls == (0,) else []
            elif order == 2:
                keys = [-1] if ls[0] == ls[1] else []
            elif order == 3:
                keys = [-1] if ls[2] <= ls[0] + ls[1] else []
            else:
                l1, l2, l3, l4 = ls
                keys = [
                    L
                    for L in range(max(abs(l1 - l2), abs(l3 - l4)), min(l1 + l2, l3 + l4) + 1)
                    if (l1 + l2 + L) % 2 == 0 and (l3 + l4 + L) % 2 == 0
                ]
            for L in keys:
                by_key.setdefault((ls, L), []).append(cs)
        for (ls, L), rows in by_key.items():
            if order == 3:
                coupling = (np.asarray(e3nn.clebsch_gordan(*ls), np.float64),)
            elif order == 4:
                coupling = (
                    np.asarray(e3nn.clebsch_gordan(ls[0], ls[1], L), np.float64),
                    np.asarray(e3nn.clebsch_gordan(ls[2], ls[3], L), np.float64),
                )
            else:
                coupling = ()
            groups.append(ProductGroup(order, ls, L, np.asarray(rows, np.int32).reshape(len(rows), order), coupling))
    return ProductBasis(n_max, l_max, tuple(groups))


def evaluate_products(A: jax.Array, basis: ProductBasis) -> jax.Array:
    """Invariant products of an atomic base, ``[N, C, (l+1)²] -> [N, basis.size]``.

    Parameters
    ----------
    A : [N, C, (L+1)²]
        Atomic base ``A_{i,c,lm}`` with at least ``basis.n_channels`` channels
        and ``L ≥ basis.l_max_all``.
    basis : ProductBasis

    Returns
    -------
    [N, basis.size] in the order of ``basis.labels()``.
    """
    if A.ndim != 3:
        raise ValueError(f"A must be [N, C, (L+1)^2], got shape {A.shape}")
    if A.shape[1] < basis.n_channels or A.shape[2] < (basis.l_max_all + 1) ** 2:
        raise ValueError(f"A of shape {A.shape} is too small for a basis with n_max={basis.n_max}, l_max={basis.l_max}")
    # Dense-then-gather: each group is contracted for all channel tuples at
    # once (a few large einsums instead of one gather per factor), then the
    # canonical (sorted) tuples are picked with one static gather.
    out = []
    for g in basis.groups:
        n_ch = basis.n_max[g.order - 1]
        blk = [A[:, :n_ch, l * l : (l + 1) ** 2] for l in g.ls]  # [N, C, 2l+1]
        if g.order == 1:
            full = blk[0][..., 0]
        elif g.order == 2:
            full = jnp.einsum("nam,nbm->nab", blk[0], blk[1])
        elif g.order == 3:
            C = jnp.asarray(g.coupling[0], A.dtype)
            t = jnp.einsum("nam,nbk,mkq->nabq", blk[0], blk[1], C)
            full = jnp.einsum("nabq,ncq->nabc", t, blk[2])
        else:
            C12, C34 = (jnp.asarray(c, A.dtype) for c in g.coupling)
            x = jnp.einsum("nam,nbk,mkq->nabq", blk[0], blk[1], C12)
            y = jnp.einsum("ncm,ndk,mkq->ncdq", blk[2], blk[3], C34)
            full = jnp.einsum("nabq,ncdq->nabcd", x, y)
        flat = np.ravel_multi_index(tuple(g.channels.T), (n_ch,) * g.order)
        out.append(full.reshape(full.shape[0], -1)[:, flat])
    return jnp.concatenate(out, axis=1)
