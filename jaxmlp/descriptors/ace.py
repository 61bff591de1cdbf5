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
  for every intermediate ``L`` allowed by both triangle rules, of either
  parity (``l1 + l2 + L`` odd is allowed: ``(a × b)·(c × d)`` is the L = 1
  coupling of four l = 1 factors and a true scalar), with ``l1 + … + l4``
  even (inversion invariance).

Parity: every product has ``Σ l`` even, so it is invariant under rotations
*and* inversion (O(3)); the pseudo-scalars (``a·(b × c)``) are left out.

Each product is enumerated once per multiset of ``(l, c)`` pairs (sorted), so
permuting equal factors adds nothing. For ν = 4 the ``(12)(34)`` couplings of
a multiset with repeated factors are linearly dependent (four equal l = 1
factors give one invariant, ``(a·a)²``, not three); :func:`nu4_couplings`
keeps a linearly independent subset, chosen deterministically (greedy in
``L``, rank tested on fixed-seed random factors), so the basis is complete
and free of redundant functions.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
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
    "nu4_couplings",
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
        # sin(nx) by the Chebyshev recurrence sin((n+1)x) = 2 cos x sin(nx) − sin((n−1)x): one sin and
        # one cos per distance instead of n_basis sines (error ≲ n² ε; the sines dominated the cost)
        x = np.pi * r / cutoff
        c2 = 2.0 * jnp.cos(x)
        sines = [jnp.sin(x)]
        prev = jnp.zeros_like(x)
        for _ in range(1, n_basis):
            sines.append(c2 * sines[-1] - prev)
            prev = sines[-2]
        g = math.sqrt(2.0 / cutoff) * jnp.stack(sines, axis=-1) / r[..., None]
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
    """Real spherical harmonics of unit vectors, ``[..., (l_max+1)²]``: e3nn-jax's values, as explicit polynomials.

    e3nn-jax's ``spherical_harmonics(…, normalize=False)`` of degree ``l`` is a
    homogeneous polynomial of degree ``l`` in ``(x, y, z)``; its monomial
    coefficients are fitted once per ``l`` (float64, exact to rounding)
    and evaluated here as plain products and sums, which fuse into one loop on
    CPU (e3nn builds them by tensor products with Clebsch–Gordan arrays, several
    small contractions per ``l``).  Same values to rounding (test).

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
    x, y, z = unit[..., 0], unit[..., 1], unit[..., 2]
    powers = {}

    def pw(v, name, k):
        if (name, k) not in powers:
            powers[(name, k)] = jnp.ones_like(v) if k == 0 else (v if k == 1 else pw(v, name, k - 1) * v)
        return powers[(name, k)]

    cols = []
    for l in range(l_max + 1):
        for terms in _sh_coefficients(l):
            col = None
            for coef, a, b, c in terms:
                mono = pw(x, "x", a) * pw(y, "y", b) * pw(z, "z", c)
                col = coef * mono if col is None else col + coef * mono
            cols.append(jnp.zeros_like(x) if col is None else col)
    return jnp.stack(cols, axis=-1)


def spherical_harmonics_e3nn(unit: jax.Array, l_max: int) -> jax.Array:
    """The same harmonics from e3nn-jax directly (reference for :func:`spherical_harmonics`)."""
    return e3nn.spherical_harmonics(_irreps(l_max), unit, normalize=False, normalization="component").array


@functools.lru_cache(maxsize=None)
def _sh_coefficients(l: int) -> tuple:
    """``((coef, a, b, c), ...)`` per ``m``: e3nn-jax's ``Y_lm(v) = Σ coef · x^a y^b z^c`` (|α| = l).

    A homogeneous polynomial of degree ``l`` is fixed by its values on the unit
    sphere, so the coefficients solve a least-squares fit to e3nn's values (float64)
    at 4× as many random unit vectors as there are monomials (exact up to rounding,
    ~1e-15; much cheaper than ``l``-th derivatives for large ``l``).
    """
    monos = [(a, b, l - a - b) for a in range(l, -1, -1) for b in range(l - a, -1, -1)]
    rng = np.random.default_rng(12345 + l)
    v = rng.normal(size=(4 * len(monos) + 8, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
        Y = np.asarray(e3nn.spherical_harmonics(_irreps(l)[-1:], jnp.asarray(v, jnp.float64), normalize=False,
                                                normalization="component").array, np.float64)
    M = np.stack([v[:, 0] ** a * v[:, 1] ** b * v[:, 2] ** c for a, b, c in monos], axis=1)
    C = np.linalg.lstsq(M, Y, rcond=None)[0]  # [monomials, 2l+1]
    out = []
    for m in range(2 * l + 1):
        out.append(tuple((float(C[i, m]), a, b, c) for i, (a, b, c) in enumerate(monos) if abs(C[i, m]) > 1e-12))
    return tuple(out)


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
        Radial channels used at each correlation order ν = 1..correlation_order.
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
    def correlation_order(self) -> int:
        """Largest correlation order ν (body order ν + 1)."""
        return len(self.n_max)

    @property
    def max_order(self) -> int:
        """Deprecated name of :attr:`correlation_order`."""
        warnings.warn("ProductBasis.max_order is deprecated; use correlation_order", DeprecationWarning, stacklevel=2)
        return self.correlation_order

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


def _per_order(value, correlation_order: int, name: str) -> tuple:
    if isinstance(value, (int, np.integer)):
        vals = (int(value),) * correlation_order
    else:
        vals = tuple(int(v) for v in value)
        if len(vals) != correlation_order:
            raise ValueError(
                f"{name} must be an int or have one entry per correlation order (1..{correlation_order}), got {value!r}"
            )
    return vals


def _nu4_candidates(ls: tuple) -> list:
    """Intermediate ``L`` of the ``(l1 l2)(l3 l4)`` coupling allowed by both triangle rules (any parity)."""
    l1, l2, l3, l4 = ls
    return list(range(max(abs(l1 - l2), abs(l3 - l4)), min(l1 + l2, l3 + l4) + 1))


def _nu4_value(factors: Sequence, ls: tuple, L: int) -> np.ndarray:
    """``Σ_M (f1 ⊗ f2)_{LM} (f3 ⊗ f4)_{LM}`` for factors ``[K, 2l+1]`` each -> ``[K]``."""
    c12 = np.asarray(e3nn.clebsch_gordan(ls[0], ls[1], L), np.float64)
    c34 = np.asarray(e3nn.clebsch_gordan(ls[2], ls[3], L), np.float64)
    x = np.einsum("ka,kb,abq->kq", factors[0], factors[1], c12)
    y = np.einsum("kc,kd,cdq->kq", factors[2], factors[3], c34)
    return np.sum(x * y, axis=1)


@functools.lru_cache(maxsize=None)
def nu4_couplings(ls: tuple, pattern: tuple = (0, 1, 2, 3)) -> tuple:
    """Linearly independent intermediate couplings ``L`` of a ν = 4 product.

    Parameters
    ----------
    ls : tuple of 4 int
        Angular momenta of the sorted factors; ``Σ l`` must be even.
    pattern : tuple of 4 int
        Which factors are the same atomic-base component: ``pattern[k]`` is
        the index of the first factor equal to factor ``k`` (``(0, 1, 2, 3)``
        all distinct, ``(0, 0, 0, 0)`` one component to the fourth power).

    Returns
    -------
    tuple of int
        The ``L`` kept, ascending. All ``L`` of both triangle rules are
        candidates; they are taken in ascending order and one is kept when it
        raises the rank of the candidates evaluated on 4·(number of candidates) + 8 random
        factors (fixed seed, float64), so the choice is deterministic. For
        distinct factors every candidate is kept (the ``(12)(34)`` couplings
        are a basis of the invariants of ``V_l1 ⊗ … ⊗ V_l4``); repeated
        factors keep the dimension of the symmetrised invariants.
    """
    ls = tuple(int(l) for l in ls)
    pattern = tuple(int(p) for p in pattern)
    if len(ls) != 4 or len(pattern) != 4 or sum(ls) % 2:
        raise ValueError(f"nu4_couplings needs 4 angular momenta with an even sum and a 4-entry pattern, got {ls}, {pattern}")
    if any(pattern[k] > k or pattern[pattern[k]] != pattern[k] or ls[pattern[k]] != ls[k] for k in range(4)):
        raise ValueError(f"pattern {pattern} must point each factor at its first equal factor (same l), for ls={ls}")
    cands = _nu4_candidates(ls)
    if not cands:
        return ()
    rng = np.random.default_rng(20260)
    n_samples = 4 * len(cands) + 8
    distinct = {p: rng.normal(size=(n_samples, 2 * ls[p] + 1)) for p in sorted(set(pattern))}
    factors = [distinct[p] for p in pattern]
    cols = np.stack([_nu4_value(factors, ls, L) for L in cands], axis=1)
    norms = np.linalg.norm(cols, axis=0)
    nonzero = norms > 1e-10 * norms.max()  # odd L of two equal factors vanishes identically
    cols = cols / np.where(nonzero, norms, 1.0)
    kept: list = []
    for k, L in enumerate(cands):
        if not nonzero[k]:
            continue
        sv = np.linalg.svd(cols[:, [cands.index(x) for x in kept] + [k]], compute_uv=False)
        if sv[-1] > 1e-8 * sv[0]:  # column k is independent of those kept
            kept.append(L)
    return tuple(kept)


def product_basis(n_max, l_max, correlation_order: int = 3, *, max_order=None, max_body_order=None) -> ProductBasis:
    """Enumerate the invariant products of the atomic base.

    Parameters
    ----------
    n_max : int or sequence of int
        Radial channels per correlation order (``n_max[ν−1]``), or one int for all.
    l_max : int or sequence of int
        Largest ``l`` per correlation order; order 1 always uses ``l = 0``.
    correlation_order : int in 1..4
        Largest correlation order ν, the number of atomic-base factors in a
        product (body order ν + 1). ``max_order=`` and ``max_body_order=``
        are deprecated spellings of it.

    Returns
    -------
    ProductBasis
        Rotation- and inversion-invariant, linearly independent products; for
        ν ≤ 3 one per multiset of ``(l, c)`` factors allowed by parity and the
        triangle rule, for ν = 4 one per multiset and independent coupling
        ``L`` (:func:`nu4_couplings`).
    """
    for old, value in (("max_order", max_order), ("max_body_order", max_body_order)):
        if value is not None:
            warnings.warn(
                f"product_basis({old}=...) is deprecated; use correlation_order (the number of A factors, body order − 1)",
                DeprecationWarning,
                stacklevel=2,
            )
            correlation_order = value
    is_int = isinstance(correlation_order, (int, np.integer)) and not isinstance(correlation_order, bool)
    if not is_int or not 1 <= correlation_order <= 4:
        raise ValueError(
            f"correlation_order (number of A factors, body order − 1) must be an int in 1..4, got {correlation_order!r}"
        )
    n_max = _per_order(n_max, correlation_order, "n_max")
    l_max = _per_order(l_max, correlation_order, "l_max")
    if any(n < 1 for n in n_max):
        raise ValueError(f"n_max entries must be >= 1, got {n_max}")
    if any(l < 0 for l in l_max):
        raise ValueError(f"l_max entries must be >= 0, got {l_max}")
    l_max = (0,) + l_max[1:]
    groups = []
    for order in range(1, correlation_order + 1):
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
                keys = nu4_couplings(ls, tuple(combo.index(x) for x in combo))
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
