"""Atom-centred symmetry functions (ACSF) in n2p2's conventions.

Supported types (n2p2 ``symfunction_short`` numbering; lengths in the unit of
the graph, Å in jaxmlp):

* **2** radial ``G = Σ_j exp(−η (r_ij − r_s)²) f_c(r_ij)`` over neighbours
  ``j`` of element ``e1``;
* **3** narrow angular ``G = 2^(1−ζ) Σ_{j<k} (1 + λ cos θ_ijk)^ζ
  exp(−η[(r_ij−r_s)² + (r_ik−r_s)² + (r_jk−r_s)²]) f_c(r_ij) f_c(r_ik) f_c(r_jk)``
  over unordered neighbour pairs with elements ``{e1, e2}``; terms with
  ``1 + λ cos θ ≤ 0`` are 0;
* **9** wide angular: type 3 without the ``r_jk`` terms;
* **20** compact radial ``G = Σ_j c_r(r_ij)`` with ``c_r`` a compact core
  function on ``(r_l, r_c)``;
* **22** compact wide angular ``G = Σ_{j<k} c_r(r_ij) c_r(r_ik) c_a(θ_ijk)``
  with ``c_a`` the (always symmetric) core function of the angle on
  ``[θ_l, θ_r]`` (degrees in the spec, radians inside).

Compact subtypes are ``"p1"``–``"p4"`` (polynomials), ``"p1a"``–``"p4a"``
(asymmetric radial polynomial), ``"c"`` (cosine) and ``"e"`` (exponential).
Types 2/3/9 share one global cutoff function (``cutoff_type``, ``α``), as in
n2p2.

Functions are specified as plain dicts (JSON-able) made by the helpers
:func:`radial`, :func:`angular_narrow`, :func:`angular_wide`,
:func:`compact_radial`, :func:`compact_angular` or the generators
:func:`radial_grid`, :func:`angular_set`.  Per centre element they are
sorted in n2p2's order, which is the network input order and the row order
of n2p2's ``scaling.data``.

Evaluation (:class:`ACSF`) works on jaxmlp graphs built with
``triplets=True`` (not needed when every angular function is a wide one in
factorised form, see ``factorise_wide``): all functions of all elements are evaluated at once per
edge ``[E, K_r]`` and per triplet ``[T, K_a]`` with small parameter tables
gathered by (centre element, neighbour element(s)), then reduced with
segment sums — no Python loop over atoms, jittable, padding-safe.  Large
triplet sets are processed in checkpointed chunks so memory stays linear.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from ..graph.build import TripletFilter
from ..graph.ops import dense_slots, edge_vectors, safe_norm
from .cutoffs import CORE_TYPES, compact_function, cutoff_function, cutoff_type_name

__all__ = [
    "ACSF",
    "radial",
    "angular_narrow",
    "angular_wide",
    "compact_radial",
    "compact_angular",
    "radial_grid",
    "angular_set",
    "sort_functions",
    "SCALING_MODES",
    "scale_features",
]

RADIAL_TYPES = (2, 20)
ANGULAR_TYPES = (3, 9, 22)
SCALING_MODES = ("none", "scale", "center", "scalecenter", "sigma")


# ---------------------------------------------------------------------------
# specifications
# ---------------------------------------------------------------------------


def _symbol(e) -> str:
    if isinstance(e, str):
        if e not in atomic_numbers or atomic_numbers[e] == 0:
            raise ValueError(f"unknown element symbol {e!r}")
        return e
    if isinstance(e, bool):
        raise TypeError(f"element must be a symbol or an atomic number, got {e!r}")
    try:
        z = int(e)
    except (TypeError, ValueError):
        raise TypeError(f"element must be a symbol or an atomic number, got {e!r}") from None
    if not 1 <= z < len(chemical_symbols):
        raise ValueError(f"atomic number out of range: {z}")
    return chemical_symbols[z]


def _pos(name, value):
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return v


def _optional_count(name, value):
    """None, or ``value`` as an int ≥ 1 (bools and non-integers refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be None or an int >= 1, got {value!r}")
    return int(value)


def _nonneg(name, value):
    v = float(value)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be >= 0 and finite, got {value}")
    return v


def _subtype(s):
    if not isinstance(s, str) or not s:
        raise ValueError(f"compact subtype must be a string such as 'p2' or 'p2a', got {s!r}")
    core, asym = (s[:-1], True) if s.endswith("a") else (s, False)
    if core not in CORE_TYPES or (asym and not core.startswith("p")):
        raise ValueError(f"unknown compact subtype {s!r}; use one of {CORE_TYPES} (polynomials may end in 'a')")
    return s


def radial(center, neighbor, eta: float, rc: float, rs: float = 0.0) -> dict:
    """Radial symmetry function, n2p2 type 2.

    Parameters
    ----------
    center, neighbor : str or int
        Centre element and neighbour element.
    eta : float
        Gaussian width parameter, 1/length².
    rc : float
        Cutoff radius, length.
    rs : float
        Gaussian centre, length.

    Returns
    -------
    dict
        JSON-able specification.
    """
    return _canonical({"type": 2, "center": center, "e1": neighbor, "eta": eta, "rs": rs, "rc": rc})


def _angular(kind, center, neighbors, eta, lambda_, zeta, rc, rs):
    if len(neighbors) != 2:
        raise ValueError(f"angular functions need two neighbour elements, got {neighbors!r}")
    return _canonical(
        {"type": kind, "center": center, "e1": neighbors[0], "e2": neighbors[1], "eta": eta,
         "lambda": lambda_, "zeta": zeta, "rc": rc, "rs": rs}
    )


def angular_narrow(center, neighbors, eta: float, lambda_: float, zeta: float, rc: float, rs: float = 0.0) -> dict:
    """Narrow angular symmetry function, n2p2 type 3 (includes ``r_jk``).

    Parameters
    ----------
    center : str or int
    neighbors : pair of str or int
        Elements of the two neighbours (order irrelevant).
    eta : float, 1/length²
    lambda_ : float, usually ±1
    zeta : float, ≥ 1
    rc : float, length
    rs : float, length

    Returns
    -------
    dict
    """
    return _angular(3, center, neighbors, eta, lambda_, zeta, rc, rs)


def angular_wide(center, neighbors, eta: float, lambda_: float, zeta: float, rc: float, rs: float = 0.0) -> dict:
    """Wide angular symmetry function, n2p2 type 9 (no ``r_jk`` terms).

    Parameters as :func:`angular_narrow`.
    """
    return _angular(9, center, neighbors, eta, lambda_, zeta, rc, rs)


def compact_radial(center, neighbor, rl: float, rc: float, subtype: str = "p2") -> dict:
    """Compact radial symmetry function, n2p2 type 20.

    Parameters
    ----------
    center, neighbor : str or int
    rl, rc : float
        Support ``(rl, rc)`` in length units; ``rl`` may be negative
        (``rl = −rc`` centres the core function at 0).
    subtype : str
        ``"p1"``–``"p4"``, ``"p1a"``–``"p4a"``, ``"c"`` or ``"e"``.

    Returns
    -------
    dict
    """
    return _canonical({"type": 20, "center": center, "e1": neighbor, "rl": rl, "rc": rc, "subtype": subtype})


def compact_angular(center, neighbors, rl: float, rc: float, angle_left: float, angle_right: float, subtype: str = "p2") -> dict:
    """Compact wide angular symmetry function, n2p2 type 22.

    Parameters
    ----------
    center : str or int
    neighbors : pair of str or int
    rl, rc : float
        Radial support (length).
    angle_left, angle_right : float
        Angular support in degrees (n2p2 rules: inside [0, 180] unless
        centred at 0 or 180; width ≤ 360).
    subtype : str
        As :func:`compact_radial`; the angular core is always symmetric.

    Returns
    -------
    dict
    """
    if len(neighbors) != 2:
        raise ValueError(f"angular functions need two neighbour elements, got {neighbors!r}")
    return _canonical(
        {"type": 22, "center": center, "e1": neighbors[0], "e2": neighbors[1], "rl": rl, "rc": rc,
         "angle_left": angle_left, "angle_right": angle_right, "subtype": subtype}
    )


def _canonical(sf: Mapping) -> dict:
    """Validate a specification and return it with canonical keys and types."""
    if not isinstance(sf, Mapping):
        raise TypeError(f"a symmetry function must be a dict, got {type(sf).__name__}")
    try:
        t = int(sf["type"])
    except KeyError:
        raise ValueError(f"symmetry function without 'type': {dict(sf)}") from None
    try:
        out = {"type": t, "center": _symbol(sf["center"]), "e1": _symbol(sf["e1"])}
        if t == 2:
            out.update(eta=_nonneg("eta", sf["eta"]), rs=float(sf.get("rs", 0.0)), rc=_pos("rc", sf["rc"]))
        elif t in (3, 9):
            e2 = _symbol(sf["e2"])
            a, b = sorted([out["e1"], e2], key=lambda s: atomic_numbers[s])
            zeta = float(sf["zeta"])
            if not zeta >= 1.0:
                raise ValueError(f"zeta must be >= 1, got {zeta}")
            out.update(e1=a, e2=b, eta=_nonneg("eta", sf["eta"]), **{"lambda": float(sf["lambda"])},
                       zeta=zeta, rc=_pos("rc", sf["rc"]), rs=float(sf.get("rs", 0.0)))
        elif t == 20:
            rl, rc = float(sf["rl"]), _pos("rc", sf["rc"])
            if not rl < rc:
                raise ValueError(f"compact radial function needs rl < rc, got rl={rl}, rc={rc}")
            out.update(rl=rl, rc=rc, subtype=_subtype(sf["subtype"]))
        elif t == 22:
            e2 = _symbol(sf["e2"])
            a, b = sorted([out["e1"], e2], key=lambda s: atomic_numbers[s])
            rl, rc = float(sf["rl"]), _pos("rc", sf["rc"])
            if not rl < rc:
                raise ValueError(f"compact angular function needs rl < rc, got rl={rl}, rc={rc}")
            al, ar = float(sf["angle_left"]), float(sf["angle_right"])
            if not al < ar:
                raise ValueError(f"angle_left must be < angle_right, got {al}, {ar}")
            c = 0.5 * (al + ar)
            if (al < 0.0 and c != 0.0) or (ar > 180.0 and c != 180.0) or ar - al > 360.0:
                raise ValueError(
                    f"angular support [{al}, {ar}] degrees must lie in [0, 180] unless centred at 0 or 180 "
                    "and be at most 360 wide"
                )
            out.update(e1=a, e2=b, rl=rl, rc=rc, angle_left=al, angle_right=ar, subtype=_subtype(sf["subtype"]))
        else:
            raise ValueError(
                f"unsupported symmetry function type {t}; supported: radial 2, 20 and angular 3, 9, 22"
            )
    except KeyError as err:
        raise ValueError(f"symmetry function of type {t} lacks parameter {err.args[0]!r}: {dict(sf)}") from None
    return out


def _sort_key(sf: dict, zindex: Mapping[str, int]):
    """n2p2's ``SymFnc*::operator<`` key (centre element handled outside)."""
    t = sf["type"]
    if t == 2:
        return (t, sf["rc"], sf["eta"], sf["rs"], 0.0, 0.0, zindex[sf["e1"]], 0)
    if t in (3, 9):
        return (t, sf["rc"], sf["eta"], sf["rs"], sf["zeta"], sf["lambda"], zindex[sf["e1"]], zindex[sf["e2"]])
    if t == 20:
        return (t, sf["subtype"], zindex[sf["e1"]], sf["rc"], sf["rl"])
    return (t, sf["subtype"], zindex[sf["e1"]], zindex[sf["e2"]], sf["rc"], sf["rl"], sf["angle_left"], sf["angle_right"])


def sort_functions(functions: Iterable[Mapping], elements: Sequence) -> dict[str, list[dict]]:
    """Group by centre element and sort in n2p2's order.

    Parameters
    ----------
    functions : iterable of dict
        Symmetry-function specifications.
    elements : sequence of str or int
        Elements of the model.

    Returns
    -------
    dict symbol → list of dict
        Per element (keys ordered by atomic number) the canonical
        specifications in n2p2's order: by type, then the type's parameters
        as n2p2's ``operator<`` (types 2/3/9: r_c, η, r_s, ζ, λ, e1, e2;
        type 20: subtype, e1, r_c, r_l; type 22: subtype, e1, e2, r_c, r_l,
        θ_l, θ_r), element indices by increasing atomic number.
    """
    symbols = sorted({_symbol(e) for e in elements}, key=lambda s: atomic_numbers[s])
    zindex = {s: k for k, s in enumerate(symbols)}
    out: dict[str, list[dict]] = {s: [] for s in symbols}
    seen = set()
    for f in functions:
        c = _canonical(f)
        for key in ("center", "e1", "e2"):
            if key in c and c[key] not in zindex:
                raise ValueError(f"symmetry function {c} uses element {c[key]} not in the model's elements {symbols}")
        ident = tuple(sorted(c.items()))
        if ident in seen:
            raise ValueError(f"duplicate symmetry function {c}")
        seen.add(ident)
        out[c["center"]].append(c)
    for s in symbols:
        out[s].sort(key=lambda f: _sort_key(f, zindex))
    return out


# ---------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------


def radial_grid(elements: Sequence, rc: float, n: int, mode: str = "shifted", r_min: float = 0.5) -> list[dict]:
    """A grid of ``n`` type-2 radial functions for every (centre, neighbour) pair.

    Follows n2p2's ``nnp-sfparamgen`` recipe (Imbalzano et al. 2018):

    * ``"centered"``: ``r_s = 0`` and ``η_k = 1 / (2 r_k²)`` for ``r_k`` on an
      equidistant grid from ``r_min`` to ``rc``;
    * ``"shifted"``: ``r_s = r_k`` on the same grid and
      ``η = 1 / (2 Δr²)`` with ``Δr = (rc − r_min)/(n − 1)``.

    Parameters
    ----------
    elements : sequence of str or int
    rc, r_min : float, length
    n : int ≥ 1

    Returns
    -------
    list of dict
        ``n · len(elements)²`` specifications.
    """
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rc, r_min = _pos("rc", rc), _pos("r_min", r_min)
    if not r_min < rc:
        raise ValueError(f"r_min must be < rc, got {r_min} >= {rc}")
    n = int(n)
    grid = np.linspace(r_min, rc, n) if n > 1 else np.array([r_min])
    if mode == "centered":
        params = [(1.0 / (2.0 * r * r), 0.0) for r in grid]
    elif mode == "shifted":
        dr = (rc - r_min) / max(n - 1, 1)
        params = [(1.0 / (2.0 * dr * dr), float(r)) for r in grid]
    else:
        raise ValueError(f"mode must be 'shifted' or 'centered', got {mode!r}")
    return [radial(c, e, eta, rc, rs) for c in elements for e in elements for eta, rs in params]


def angular_set(
    elements: Sequence,
    rc: float,
    etas: Sequence[float] = (0.0, 0.01),
    zetas: Sequence[float] = (1.0, 2.0, 4.0, 16.0),
    lambdas: Sequence[float] = (-1.0, 1.0),
    kind: str = "wide",
) -> list[dict]:
    """Angular functions (type 9 ``"wide"`` or 3 ``"narrow"``) for every centre and neighbour pair.

    Parameters
    ----------
    elements : sequence of str or int
    rc : float, length
    etas : floats, 1/length²
    zetas : floats ≥ 1
    lambdas : floats (±1)
    kind : {"wide", "narrow"}

    Returns
    -------
    list of dict
        ``len(etas)·len(zetas)·len(lambdas)`` functions per centre and
        unordered neighbour pair.
    """
    make = {"wide": angular_wide, "narrow": angular_narrow}.get(kind)
    if make is None:
        raise ValueError(f"kind must be 'wide' or 'narrow', got {kind!r}")
    syms = sorted({_symbol(e) for e in elements}, key=lambda s: atomic_numbers[s])
    pairs = [(a, b) for i, a in enumerate(syms) for b in syms[i:]]
    return [
        make(c, p, eta, lam, zeta, rc)
        for c in syms for p in pairs for eta in etas for zeta in zetas for lam in lambdas
    ]


# ---------------------------------------------------------------------------
# scaling
# ---------------------------------------------------------------------------


def scale_features(G, species, tables: Mapping[str, jax.Array], mode: str, smin: float = 0.0, smax: float = 1.0):
    """Scale raw symmetry functions as n2p2 does.

    Parameters
    ----------
    G : [N, F] raw values (columns beyond an element's count are ignored)
    species : [N] int, species index of each atom
    tables : dict with ``"min"``, ``"max"``, ``"mean"``, ``"sigma"`` each ``[S, F]``
    mode : {"none", "scale", "center", "scalecenter", "sigma"}
        ``scale``: ``smin + (smax−smin)(G − min)/(max − min)``;
        ``center``: ``G − mean``; ``scalecenter``:
        ``smin + (smax−smin)(G − mean)/(max − min)``; ``sigma``:
        ``smin + (smax−smin)(G − mean)/sigma``. A zero range or sigma gives a
        factor 0 instead of inf.
    smin, smax : float

    Returns
    -------
    [N, F] scaled values
    """
    if mode not in SCALING_MODES:
        raise ValueError(f"scaling mode must be one of {SCALING_MODES}, got {mode!r}")
    if mode == "none":
        return G
    take = lambda name: jnp.asarray(tables[name], G.dtype)[species]  # noqa: E731
    if mode == "center":
        return G - take("mean")
    denom = take("sigma") if mode == "sigma" else take("max") - take("min")
    factor = jnp.where(denom != 0, (smax - smin) / jnp.where(denom != 0, denom, 1.0), 0.0)
    ref = take("min") if mode == "scale" else take("mean")
    return smin + factor * (G - ref)


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------


def _triplet_geometry(ax, ay, az, bx, by, bz, rij, rik, ok):
    """``r_jk`` and ``cos θ_ijk`` of triplets from the components of ``r_ij``, ``r_ik`` (0 where not ``ok``)."""
    dx, dy, dz = bx - ax, by - ay, bz - az
    sq = dx * dx + dy * dy + dz * dz
    okj = ok & (sq > 0.0)
    rjk = jnp.where(okj, jnp.sqrt(jnp.where(okj, sq, 1.0)), 0.0)
    den = jnp.where(ok, rij * rik, 1.0)
    cos = jnp.where(ok, (ax * bx + ay * by + az * bz) / den, 0.0)
    return rjk, cos


def _core_code(subtype: str) -> tuple[str, bool]:
    return (subtype[:-1], True) if subtype.endswith("a") else (subtype, False)


_WIDE_ZETA_MAX = 32  # larger integer ζ stay on the triplet path ((ζ+1)² harmonics per edge)
#: ``factorise_wide="auto"`` factorises the wide functions when their largest ζ is at most this.
_AUTO_ZETA_MAX = 8


def _legendre_coefficients(lam: float, zeta: int) -> np.ndarray:
    """``a_l`` with ``(1 + λ c)^ζ = Σ_{l=0}^{ζ} a_l P_l(c)``, exact rationals in λ's powers, as float64.

    Built from ``c · P_l = ((l + 1) P_{l+1} + l P_{l−1}) / (2l + 1)`` in exact fractions (the
    binomial coefficients of ``c^m`` times ``λ^m`` are added last, in float64).
    """
    from fractions import Fraction

    series = [Fraction(1)]  # c^0 in the Legendre basis
    out = np.zeros(zeta + 1)
    for m in range(zeta + 1):
        if m:
            nxt = [Fraction(0)] * (m + 1)
            for l, v in enumerate(series):
                if v:
                    nxt[l + 1] += v * Fraction(l + 1, 2 * l + 1)
                    if l:
                        nxt[l - 1] += v * Fraction(l, 2 * l + 1)
            series = nxt
        coef = math.comb(zeta, m) * float(lam) ** m
        for l, v in enumerate(series):
            out[l] += coef * float(v)
    return out


def _harmonic_degrees(lmax: int) -> np.ndarray:
    """Degree ``l`` of every entry of :func:`_addition_harmonics`' ``[(lmax + 1)²]`` square, row-major."""
    i, j = np.meshgrid(np.arange(lmax + 1), np.arange(lmax + 1), indexing="ij")
    return np.where(i >= j, i, j).reshape(-1)


def _addition_harmonics(x, y, z, lmax: int):
    """Real harmonics of unit vectors ``(x, y, z)`` normalised so that ``Σ_m Y_lm(a) Y_lm(b) = P_l(a·b)``
    (the addition theorem without its ``4π/(2l + 1)``), as ``[(lmax + 1)², ...]``.

    ``Y_l0 = P_l(z)``, ``Y_lm^{c,s} = √2 q_l^m(z) {Re, Im}(x + i y)^m`` (``1 ≤ m ≤ l``) with ``q_l^m``
    the associated Legendre function without its ``(1 − z²)^(m/2)`` factor, times
    ``√((l−m)!/(l+m)!)``: every value is O(1).  The ``(lmax + 1)²`` functions fill a square
    ``X[i, j]`` without gathers: ``i ≥ j`` holds ``Y_ij^c`` (degree ``i``), ``i < j`` holds
    ``Y_{j, i+1}^s`` (degree ``j``); :func:`_harmonic_degrees` gives the degree of each entry.
    The recursion in ``l`` runs for all ``m`` at once (a few dozen XLA ops for any ``lmax``).
    """
    L = int(lmax)
    dtype = x.dtype
    c, s = [jnp.ones_like(x)], [jnp.zeros_like(x)]
    for _ in range(L):
        c, s = c + [x * c[-1] - y * s[-1]], s + [x * s[-1] + y * c[-1]]
    C, S = jnp.stack(c), jnp.stack(s)  # [L+1 (m), ...]: Re, Im (x + i y)^m
    m = np.arange(L + 1)
    qmm = np.cumprod(np.concatenate([[1.0], np.sqrt((2 * m[1:] - 1) / (2 * m[1:]))]))  # q_m^m
    col = (slice(None),) + (None,) * x.ndim
    const = lambda v: jnp.asarray(v, dtype)[col]  # noqa: E731  [L+1] → [L+1, 1, …]
    Q = [const(np.eye(L + 1)[0]) * jnp.ones_like(x)]
    for l in range(1, L + 1):
        lo = m < l
        den = np.where(lo, (l - m) * (l + m), 1.0)
        a = np.where(lo, (2 * l - 1) / np.sqrt(den), 0.0)
        nxt = const(a) * z * Q[-1] + const(np.where(m == l, qmm, 0.0))
        if l >= 2:
            nxt = nxt - const(np.where(m < l - 1, np.sqrt(np.abs((l + m - 1) * (l - m - 1)) / den), 0.0)) * Q[-2]
        Q.append(nxt)
    Q = jnp.stack(Q)  # [L+1 (l), L+1 (m), ...], 0 for m > l
    scale = np.where(m > 0, math.sqrt(2.0), 1.0)
    lower = Q * (jnp.asarray(scale, dtype)[col] * C)[None]
    Qs = jnp.concatenate([jnp.swapaxes(Q, 0, 1)[1:], jnp.zeros_like(Q[:1])])  # [i, j] = Q[j, i + 1]
    Ss = jnp.concatenate([S[1:], jnp.zeros_like(S[:1])])  # [i] = S[i + 1]
    upper = math.sqrt(2.0) * Qs * Ss[:, None]
    tri = np.tril(np.ones((L + 1, L + 1), bool)).reshape((L + 1, L + 1) + (1,) * x.ndim)
    return jnp.where(tri, lower, upper).reshape(((L + 1) ** 2,) + x.shape)

class ACSF:
    """A set of element-resolved symmetry functions, evaluated on graphs.

    Parameters
    ----------
    elements : sequence of str or int
        Elements of the model (ordered internally by atomic number, as n2p2).
    functions : iterable of dict
        Symmetry-function specifications (see the module docstring).
    cutoff_type : str or int
        Cutoff function of types 2/3/9 (n2p2 numbering or name).
    cutoff_alpha : float
        Inner cutoff fraction ``α``.
    triplet_chunk : int or None
        Triplets are processed in checkpointed chunks of this size when there
        are more (bounds memory for large systems).  None (default): 4096 on
        CPU, where chunks that stay in cache make energy + forces 1.2–1.8x
        faster than 2^18 on n2p2's potentials, and 2^18 on accelerators, where each chunk is
        a round of kernel launches (chosen when the model is traced).
    max_neighbors : int, optional
        Evaluate in the dense ``[atoms, max_neighbors]`` layout (angular sums
        on ``[atoms, K, K]`` tiles as batched matrix products, in checkpointed
        blocks of atoms) instead of the triplet list.  The graph then needs no
        triplets (:attr:`needs_triplets` is False).  When an atom has more
        than ``max_neighbors`` neighbours inside the cutoff the values come
        from the triplet list if the graph has one, and are NaN otherwise
        (never silently truncated): choose it with a margin, e.g.
        :func:`jaxmlp.graph.max_degree`.
    factorise_wide : bool or "auto"
        Evaluate wide angular functions (type 9) with integer ``1 ≤ ζ ≤ 32``
        and ``|λ| ≤ 1`` without triplets (any η, r_s and cutoff).  Default
        ``"auto"``: factorise when their largest ζ is at most 8 (at most 81
        harmonics per edge and weight); measured in ``benchmarks/acsf_wide.py``,
        Cu2S_PBE (ζ ≤ 6) runs 1.3–2.2× faster factorised, the Cu benchmark set
        (ζ up to 16) 0.85–0.96× as fast.  True / False force it on / off. with ``(1 + λ c)^ζ = Σ_l a_l P_l(c)`` (exact coefficients)
        and the addition theorem ``P_l(r̂_j·r̂_k) = Σ_m Y_lm(r̂_j) Y_lm(r̂_k)``
        (real harmonics normalised so), the pair sum over neighbours of
        species ``a, b`` is ``Σ_l a_l Σ_m A^a_lm A^b_lm`` with moments
        ``A^a_lm = Σ_{j∈a} w(r_ij) Y_lm(r̂_ij)``, ``w = exp(−η (r − r_s)²)
        f_c(r)``; for ``a = b`` the ``j < k`` sum is half of that minus the
        ``j = k`` terms ``(1 + λ)^ζ Σ_j w_j²``.  Cost ``O(edges · (ζ_max + 1)²)``
        instead of ``O(triplets · columns)``, the same in both layouts.
        Precision: the Legendre terms alternate in sign for ``λ = −1``; the
        absolute error is ≲ a few ``eps · 2 (Σ_j w_j)²``, i.e. ``eps`` times
        the function's scale (not times its value, which can be much smaller;
        tested to 10 eps for ``ζ = 16, λ = −1``).  Values and derivatives agree
        with the triplet path to ~1e-12 relative to that scale in float64.
        Only the remaining angular functions need triplets
        (:attr:`needs_triplets`, :meth:`triplet_filter`); False keeps every
        angular function on the triplet path.  Stored in :meth:`config` only
        when False.

    Attributes
    ----------
    symbols : tuple of str, atomic numbers : tuple of int
    functions : dict symbol → list of dict (n2p2 order)
    n_functions : tuple of int, per element
    n_max : int, width of the output ``[N, n_max]``
    cutoff : float, the largest ``rc`` (graph cutoff)
    needs_triplets : bool
    """

    #: :attr:`triplet_chunk` None: triplets per chunk on CPU and on accelerators.
    CPU_TRIPLET_CHUNK = 1 << 12
    DEVICE_TRIPLET_CHUNK = 1 << 18

    def __init__(self, elements, functions, cutoff_type="poly2", cutoff_alpha: float = 0.0, triplet_chunk: int | None = None,
                 max_neighbors: int | None = None, factorise_wide: bool | str = "auto"):
        functions = list(functions)
        if not functions:
            raise ValueError("ACSF needs at least one symmetry function")
        self.functions = sort_functions(functions, elements)
        self.symbols = tuple(self.functions)
        self.numbers = tuple(atomic_numbers[s] for s in self.symbols)
        self.cutoff_type = cutoff_type_name(cutoff_type)
        self.cutoff_alpha = float(cutoff_alpha)
        if not 0.0 <= self.cutoff_alpha < 1.0:
            raise ValueError(f"cutoff_alpha must satisfy 0 <= alpha < 1, got {cutoff_alpha}")
        self.triplet_chunk = _optional_count("triplet_chunk", triplet_chunk)
        self.max_neighbors = _optional_count("max_neighbors", max_neighbors)
        if not (isinstance(factorise_wide, (bool, np.bool_)) or (isinstance(factorise_wide, str) and factorise_wide == "auto")):
            raise TypeError(f"factorise_wide must be a bool or 'auto', got {factorise_wide!r}")
        #: the requested setting (True, False or "auto"); ``factorise_wide`` is what it resolved to
        self.factorise_wide_setting = factorise_wide if isinstance(factorise_wide, str) else bool(factorise_wide)
        self.factorise_wide = bool(factorise_wide) if not isinstance(factorise_wide, str) else True
        S = len(self.symbols)
        zi = {s: k for k, s in enumerate(self.symbols)}
        self.n_functions = tuple(len(self.functions[s]) for s in self.symbols)
        self.n_max = max(self.n_functions)
        allf = [f for s in self.symbols for f in self.functions[s]]
        self.cutoff = max(f["rc"] for f in allf)
        self.has_angular = any(f["type"] in ANGULAR_TYPES for f in allf)

        pair_index = np.zeros((S, S), np.int32)
        pairs = [(a, b) for a in range(S) for b in range(a, S)]
        for q, (a, b) in enumerate(pairs):
            pair_index[a, b] = pair_index[b, a] = q
        self._pair_index = pair_index
        self._npair = len(pairs)

        # Distinct parameter sets ("columns") per family.  Every edge/triplet is
        # evaluated for all distinct columns with the parameters as constants
        # (no per-triplet parameter gathers); the element resolution comes from
        # the segment (centre atom, neighbour element / element pair).
        def key(f):
            t = f["type"]
            if t == 2:
                return ("rexp", f["eta"], f["rs"], f["rc"])
            if t == 20:
                return ("rcomp",) + _core_code(f["subtype"]) + (f["rl"], f["rc"])
            if t in (3, 9):
                return ("aexp", t == 3, f["eta"], f["rs"], f["lambda"], f["zeta"], f["rc"])
            return ("acomp",) + _core_code(f["subtype"]) + (f["rl"], f["rc"], f["angle_left"], f["angle_right"])

        order = {"rexp": 0, "rcomp": 1, "aexp": 2, "acomp": 3}  # = concatenation order of the values
        keys = sorted({key(f) for f in allf}, key=lambda k: (order[k[0]], repr(k)))
        rkeys = [k for k in keys if k[0] in ("rexp", "rcomp")]
        # angular columns: the triplet path (``_akeys``) and the factorised wide ones (``_wkeys``,
        # type 9 with integer ζ and |λ| ≤ 1, evaluated per edge without triplets; see _wide_setup)
        candidates = [k for k in keys if self._is_factorisable(k)]
        if self.factorise_wide_setting == "auto":  # cheaper when the harmonics stay few (ζ ≤ 8: ≤ 81 per edge and weight)
            self.factorise_wide = bool(candidates) and max(k[5] for k in candidates) <= _AUTO_ZETA_MAX
        wkeys = candidates if self.factorise_wide else []
        akeys = [k for k in keys if k[0] in ("aexp", "acomp") and k not in wkeys]
        self._rkeys, self._akeys, self._wkeys = rkeys, akeys, wkeys
        ur, ua, uw = len(rkeys), len(akeys), len(wkeys)
        self._ur, self._ua, self._uw = ur, ua, uw
        self.needs_triplets = ua > 0 and self.max_neighbors is None
        rpos = {k: u for u, k in enumerate(rkeys)}
        apos = {k: u for u, k in enumerate(akeys)}
        wpos = {k: u for u, k in enumerate(wkeys)}
        n_rad_cols = S * ur
        n_trip_cols = self._npair * ua
        zero_col = n_rad_cols + n_trip_cols + self._npair * uw
        colmap = np.full((S, self.n_max), zero_col, np.int32)
        for s in self.symbols:
            for col, f in enumerate(self.functions[s]):
                k = key(f)
                if f["type"] in RADIAL_TYPES:
                    colmap[zi[s], col] = zi[f["e1"]] * ur + rpos[k]
                else:
                    q = pair_index[zi[f["e1"]], zi[f["e2"]]]
                    if k in wpos:
                        colmap[zi[s], col] = n_rad_cols + n_trip_cols + q * uw + wpos[k]
                    else:
                        colmap[zi[s], col] = n_rad_cols + q * ua + apos[k]
        self._colmap = colmap
        self._width = zero_col + 1
        self._wide_setup()
        rcs_exp = {f["rc"] for f in allf if f["type"] in (2, 3, 9)}
        self._uniform_rc = rcs_exp.pop() if len(rcs_exp) == 1 else None
        self._species = np.full(119, 0, np.int32)
        for k, z in enumerate(self.numbers):
            self._species[z] = k

    def triplet_filter(self) -> TripletFilter | None:
        """The triplets that can contribute (for :func:`jaxmlp.graph.atoms_to_graph`), None without angular functions.

        Per (centre, neighbour, neighbour) species: the largest cutoff of its
        angular functions (0 when it has none), and the same bound on
        ``r_jk`` when all of them are narrow (type 3, factor ``f_c(r_jk)``).
        A dropped triplet contributes exactly 0 to every value and, since
        every cutoff and compact core is 0 with derivative 0 from ``r_c`` on in
        this implementation, to every derivative.

        Only the functions on the triplet path count: wide functions evaluated
        in factorised form (see :class:`ACSF`, ``factorise_wide``) need no
        triplets, so a set of narrow and factorised wide functions is pruned by
        the narrow functions' ``r_jk`` bound, and None is returned when no
        function needs triplets (:attr:`needs_triplets` is then False).
        """
        if not self._ua:
            return None
        S = len(self.symbols)
        zi = {s: k for k, s in enumerate(self.symbols)}
        rc_pair = np.zeros((S, S, S))
        jk_max = np.zeros((S, S, S))
        all_narrow = np.ones((S, S, S), bool)
        on_triplets = [f for s in self.symbols for f in self.functions[s] if self._on_triplet_path(f)]
        for s in self.symbols:
            for f in self.functions[s]:
                if not self._on_triplet_path(f):
                    continue
                c, a, b = zi[s], zi[f["e1"]], zi[f["e2"]]
                for x, y in ((a, b), (b, a)):
                    rc_pair[c, x, y] = max(rc_pair[c, x, y], f["rc"])
                    jk_max[c, x, y] = max(jk_max[c, x, y], f["rc"])
                    all_narrow[c, x, y] &= f["type"] == 3
        rc_jk = np.where(all_narrow & (rc_pair > 0), jk_max, np.inf)
        shells = tuple(sorted({f["rc"] for f in on_triplets}))
        return TripletFilter(self.numbers, self.cutoff, rc_pair, rc_jk, shells if len(shells) > 1 else ())

    def _on_triplet_path(self, f) -> bool:
        """Whether the angular function ``f`` (canonical dict) is evaluated from the triplet list."""
        if f["type"] not in ANGULAR_TYPES:
            return False
        if f["type"] != 9 or not self.factorise_wide:
            return True
        return not self._is_factorisable(("aexp", False, f["eta"], f["rs"], f["lambda"], f["zeta"], f["rc"]))

    # -- helpers -----------------------------------------------------------
    def _triplet_chunk(self) -> int:
        """Triplets per chunk: :attr:`triplet_chunk`, or the default of the backend being traced for."""
        if self.triplet_chunk is not None:
            return self.triplet_chunk
        return self.CPU_TRIPLET_CHUNK if jax.default_backend() == "cpu" else self.DEVICE_TRIPLET_CHUNK

    def species(self, numbers) -> jax.Array:
        """Species index ``[N]`` of atomic numbers (unknown → 0; check elements first)."""
        return jnp.asarray(self._species)[numbers]

    def _fc(self, r, rc):
        return cutoff_function(r, rc, self.cutoff_type, self.cutoff_alpha)

    @staticmethod
    def _groups(keys, family):
        """Consecutive runs of ``keys`` of one family sharing (core, asym): [(core, asym, [params])]."""
        out = []
        for k in keys:
            if k[0] != family:
                continue
            if out and out[-1][:2] == k[1:3]:
                out[-1][2].append(k[3:])
            else:
                out.append((k[1], k[2], [k[3:]]))
        return out

    def _radial_values(self, r):
        """``[E, U_r]`` values of every distinct radial column for distances ``r [E]``."""
        dtype = r.dtype
        rr = r[:, None]
        cols = []
        exp_keys = [k for k in self._rkeys if k[0] == "rexp"]
        if exp_keys:
            eta, rs, rc = (np.array([k[i] for k in exp_keys]) for i in (1, 2, 3))
            fc = self._fc(r, self._uniform_rc)[:, None] if self._uniform_rc is not None else self._fc(rr, jnp.asarray(rc, dtype))
            d = rr - jnp.asarray(rs, dtype)
            cols.append(jnp.exp(-jnp.asarray(eta, dtype) * d * d) * fc)
        for core, asym, params in self._groups(self._rkeys, "rcomp"):
            rl, rc = (jnp.asarray(np.array([p[i] for p in params]), dtype) for i in (0, 1))
            cols.append(compact_function(rr, rl, rc, core, asym))
        return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=1)

    def _edge_factor_keys(self):
        """Per-edge factors the angular columns are built from (computed once per edge, not per triplet).

        ``("w", η)``: ``exp(−η r²) f_c(r)`` for types 3/9 on the factorised path;
        ``("c", core, asym, r_l, r_c)``: the radial compact core of type 22.
        """
        keys = []
        exp_keys = [k for k in self._akeys if k[0] == "aexp"]
        if exp_keys and self._fast_exp(exp_keys):
            keys += [("w", eta) for eta in sorted({k[2] for k in exp_keys})]
        keys += sorted({("c", k[1], k[2], k[3], k[4]) for k in self._akeys if k[0] == "acomp"}, key=repr)
        return keys

    def _edge_factors(self, r):
        """Per-edge factors (:meth:`_edge_factor_keys`) of distances ``r [E]``: a list of ``[E]``, or None."""
        keys = self._edge_factor_keys()
        if not keys:
            return None
        cols = []
        fc = self._fc(r, self._uniform_rc) if any(k[0] == "w" for k in keys) else None
        for k in keys:
            if k[0] == "w":
                cols.append(jnp.exp(-k[1] * r * r) * fc)
            else:
                cols.append(compact_function(r, k[3], k[4], k[1], k[2]))
        return cols

    def _angular_values(self, rij, rik, rjk, cos, fj=None, fk=None):
        """The ``U_a`` distinct angular columns for a chunk of triplets: a list of ``[T]``.

        ``fj``, ``fk`` are the lists of :meth:`_edge_factors` gathered at the two edges
        (required when :meth:`_edge_factor_keys` is not empty).  Columns stay separate
        ``[T]`` vectors (no ``[T, U_a]`` matrix): their segment sums and, in the
        backward pass, the gathers of the cotangents are then 1-D, which XLA's CPU
        backend runs several times faster than row-wise ones.
        """
        dtype = rij.dtype
        a, b, cs = rij[:, None], rik[:, None], cos[:, None]
        fpos = {k: p for p, k in enumerate(self._edge_factor_keys())}
        cols = []
        exp_keys = [k for k in self._akeys if k[0] == "aexp"]
        if exp_keys and self._fast_exp(exp_keys):
            cols.extend(self._angular_exp_factorised(exp_keys, rjk, cos, fj, fk, fpos))
        elif exp_keys:
            narrow, eta, rs, lam, zeta, rc = (np.array([k[i] for k in exp_keys]) for i in range(1, 7))
            c = lambda x: jnp.asarray(x, dtype)  # noqa: E731
            base = 1.0 + c(lam) * cs
            pos = base > 0.0
            logb = jnp.log(jnp.where(pos, base, 1.0))
            if np.all(rs == 0.0):
                dsq = (a * a + b * b) if not narrow.any() else None
                rsq = a * a + b * b
                if narrow.any():
                    rsq_n = rsq + (rjk * rjk)[:, None]
                    dsq = jnp.where(c(narrow).astype(bool), rsq_n, rsq) if not narrow.all() else rsq_n
            else:
                da, db, dc = a - c(rs), b - c(rs), rjk[:, None] - c(rs)
                dsq = da * da + db * db + (jnp.where(narrow, dc * dc, 0.0) if narrow.any() else 0.0)
            expo = c(zeta) * logb - c(eta) * dsq
            if self._uniform_rc is not None:
                fij, fik = self._fc(rij, self._uniform_rc), self._fc(rik, self._uniform_rc)
                fc = (fij * fik)[:, None]
                if narrow.any():
                    fjk = self._fc(rjk, self._uniform_rc)[:, None]
                    fc = fc * (fjk if narrow.all() else jnp.where(narrow, fjk, 1.0))
            else:
                fc = self._fc(a, c(rc)) * self._fc(b, c(rc))
                if narrow.any():
                    fc = fc * jnp.where(narrow, self._fc(rjk[:, None], c(rc)), 1.0)
            block = jnp.where(pos, c(np.exp2(1.0 - zeta)) * jnp.exp(expo), 0.0) * fc
            cols.extend(block[:, u] for u in range(block.shape[1]))
        groups = self._groups(self._akeys, "acomp")
        if groups:
            ok = (cos > -1.0) & (cos < 1.0)
            theta = jnp.arccos(jnp.where(ok, cos, 0.0))[:, None]
            angular, radial = {}, {}  # each distinct factor once per triplet
            for core, asym, params in groups:
                for rl, rc, al, ar in params:
                    p = fpos[("c", core, asym, rl, rc)]
                    if (core, al, ar) not in angular:
                        ang = compact_function(theta[:, 0], math.radians(al), math.radians(ar), core, False)
                        angular[(core, al, ar)] = jnp.where(ok, ang, 0.0)
                    if p not in radial:
                        radial[p] = fj[p] * fk[p]
                    cols.append(radial[p] * angular[(core, al, ar)])
        return cols

    def _fast_exp(self, exp_keys) -> bool:
        """Factorised path: r_s = 0, one cutoff radius, integer ζ ≤ 64, few columns."""
        return (
            self._uniform_rc is not None
            and len(exp_keys) <= 256
            and all(k[3] == 0.0 and float(k[5]).is_integer() and 1 <= k[5] <= 64 for k in exp_keys)
        )

    def _angular_exp_factorised(self, exp_keys, rjk, cos, fj, fk, fpos):
        """Types 3/9 with r_s = 0 as products of per-triplet factors (no exp/log per column).

        ``(1 + λ cos)^ζ`` by integer powers per distinct (λ, ζ), ``exp(−η r_ij²) f_c(r_ij) ·
        exp(−η r_ik²) f_c(r_ik)`` from the per-edge factors and ``exp(−η r_jk²) f_c(r_jk)`` per
        distinct η; each column is a product of these ``[T]`` vectors (same values as the
        direct formula up to round-off).
        """
        rc = self._uniform_rc
        any_narrow = any(k[1] for k in exp_keys)
        fjk = self._fc(rjk, rc) if any_narrow else None
        powers, weights, weights_jk, bases = {}, {}, {}, {}
        cols = []
        for k in exp_keys:
            narrow, eta, _, lam, zeta = k[1], k[2], k[3], k[4], int(k[5])
            if lam not in bases:
                b = 1.0 + lam * cos
                bases[lam] = jnp.where(b > 0.0, b, 0.0)
            if (lam, zeta) not in powers:
                powers[(lam, zeta)] = bases[lam] ** zeta
            if eta not in weights:
                p = fpos[("w", eta)]
                weights[eta] = fj[p] * fk[p]
            v = (2.0 ** (1 - zeta)) * powers[(lam, zeta)] * weights[eta]
            if narrow:
                if eta not in weights_jk:
                    weights_jk[eta] = jnp.exp(-eta * rjk * rjk) * fjk
                v = v * weights_jk[eta]
            cols.append(v)
        return cols

    # -- evaluation ----------------------------------------------------------
    def __call__(self, graph) -> jax.Array:
        """Raw (unscaled) symmetry functions of every atom.

        Parameters
        ----------
        graph : jraph.GraphsTuple
            jaxmlp graph built with cutoff ≥ :attr:`cutoff` (and
            ``triplets=True`` when :attr:`needs_triplets`).

        Returns
        -------
        [N, n_max] array
            Row ``i`` holds the functions of atom ``i``'s element in n2p2
            order; columns beyond that element's count are 0 (and padding
            atoms give finite values).
        """
        R = graph.nodes["positions"]
        n = R.shape[0]
        vec = edge_vectors(graph)
        emask = jnp.asarray(graph.edges["mask"])
        sp = self.species(graph.nodes["numbers"])
        if self.max_neighbors is None:
            flat = self._flat_edges(graph, vec, emask, sp)
        else:
            r = safe_norm(vec, emask)
            inside = emask & (r < self.cutoff)
            fits, idx = dense_slots(graph.receivers, inside, n, self.max_neighbors)
            T = graph.globals["triplets"].shape[0] if "triplets" in graph.globals else 0
            if T > 0 or not self._ua:
                fallback = lambda v: self._flat_edges(graph, v, emask, sp)  # noqa: E731
            else:
                fallback = lambda v: jnp.full((n, self._width), jnp.nan, v.dtype)  # noqa: E731
            flat = jax.lax.cond(fits, lambda v: self._flat_dense(v, idx, sp[graph.senders], n), fallback, vec)
        return jnp.take_along_axis(flat, jnp.asarray(self._colmap)[sp], axis=1)

    def _flat_edges(self, graph, vec, emask, sp):
        """``[N, S·U_r + n_pair·U_a + 1]`` distinct columns from the edge and triplet lists."""
        dtype = vec.dtype
        n = graph.nodes["positions"].shape[0]
        S = len(self.symbols)
        r = safe_norm(vec, emask)
        sj = sp[graph.senders]
        recv = jnp.asarray(graph.receivers)
        parts = []
        if self._ur:
            rv = jnp.where(emask[:, None], self._radial_values(r), 0.0)
            rseg = recv * S + sj
            g_rad = [jax.ops.segment_sum(rv[:, u], rseg, num_segments=n * S) for u in range(self._ur)]  # 1-D (see _angular_values)
            parts.append(jnp.stack(g_rad, axis=1).reshape(n, S * self._ur))
        if self._ua:
            npair = self._npair
            pair_flat = jnp.asarray(self._pair_index.reshape(-1))
            g_ang = jnp.zeros((n * npair, self._ua), dtype)
            trip = graph.globals["triplets"]
            T = trip.shape[0]
            if T > 0:
                factors = self._edge_factors(r)
                vx, vy, vz = vec[:, 0], vec[:, 1], vec[:, 2]
                chunk = min(self._triplet_chunk(), T)
                n_chunks = -(-T // chunk)
                pad = n_chunks * chunk - T
                tmask = jnp.concatenate([jnp.ones(T, bool), jnp.zeros(pad, bool)]) if pad else jnp.ones(T, bool)
                trip_p = jnp.concatenate([trip, jnp.zeros((pad, 2), trip.dtype)]) if pad else trip

                terms = self._product_terms()
                if terms is not None:  # every column a product of per-edge and per-triplet factors
                    sums_fn = self._product_sums(terms, n, S, npair, dtype, chunk, n_chunks > 1)
                    floats = (vx, vy, vz, r, tuple(factors or ()))

                    def body(acc, xs):
                        t, m = xs
                        return acc + sums_fn(floats, (t, m, emask, sj, recv)), None
                else:
                    def body(acc, xs):
                        # every per-triplet quantity is a 1-D gather of an edge array (no row gathers)
                        t, m = xs
                        e1, e2 = t[:, 0], t[:, 1]
                        ok = m & emask[e1] & emask[e2]
                        fj, fk = (None, None) if factors is None else ([f[e1] for f in factors], [f[e2] for f in factors])
                        g = (vx[e1], vy[e1], vz[e1], vx[e2], vy[e2], vz[e2], r[e1], r[e2], fj, fk, sj[e1], sj[e2], recv[e1], ok)
                        ax, ay, az, bx, by, bz, rij, rik, fj, fk, s1, s2, c1, ok = jax.lax.optimization_barrier(g)
                        rjk, cos = _triplet_geometry(ax, ay, az, bx, by, bz, rij, rik, ok)
                        seg = c1 * npair + pair_flat[s1 * S + s2]
                        cols = [jnp.where(ok, c, 0.0) for c in self._angular_values(rij, rik, rjk, cos, fj, fk)]
                        sums = [jax.ops.segment_sum(c, seg, num_segments=n * npair) for c in cols]
                        return acc + jnp.stack(sums, axis=1), None

                if n_chunks == 1:
                    g_ang, _ = body(g_ang, (trip_p, tmask))
                else:
                    xs = (trip_p.reshape(n_chunks, chunk, 2), tmask.reshape(n_chunks, chunk))
                    g_ang, _ = jax.lax.scan(jax.checkpoint(body), g_ang, xs)
            parts.append(g_ang.reshape(n, npair * self._ua))
        if self._uw:
            parts.append(self._wide_edges(vec, r, emask, sj, recv, n))
        parts.append(jnp.zeros((n, 1), dtype))
        return jnp.concatenate(parts, axis=1)

    def _product_terms(self):
        """Angular columns as products ``c · a(cos θ) · w_p(r_ij) · w_p(r_ik) · h(r_jk)``, or None.

        One entry per column of :attr:`_akeys`: ``(c, angle key, edge-factor index p,
        r_jk key or None)``.  Types 3/9 on the factorised path (:meth:`_fast_exp`) and
        type 22 have this form; any other column (r_s ≠ 0, non-integer ζ, several
        cutoff radii) makes it None and the generic path is used.
        """
        exp_keys = [k for k in self._akeys if k[0] == "aexp"]
        if exp_keys and not self._fast_exp(exp_keys):
            return None
        fpos = {k: p for p, k in enumerate(self._edge_factor_keys())}
        terms = []
        for k in self._akeys:
            if k[0] == "aexp":
                narrow, eta, lam, zeta = k[1], k[2], k[4], int(k[5])
                terms.append((2.0 ** (1 - zeta), ("p", lam, zeta), fpos[("w", eta)], ("jk", eta) if narrow else None))
            else:
                core, asym, rl, rc, al, ar = k[1:7]
                terms.append((1.0, ("a", core, al, ar), fpos[("c", core, asym, rl, rc)], None))
        return terms

    def _triplet_factor(self, key, x):
        """Per-triplet factor ``key`` of :meth:`_product_terms` (angle factor of ``cos θ`` or ``r_jk`` factor)."""
        if key[0] == "p":
            _, lam, zeta = key
            b = 1.0 + lam * x
            return jnp.where(b > 0.0, b, 0.0) ** zeta
        if key[0] == "a":
            _, core, al, ar = key
            ok = (x > -1.0) & (x < 1.0)
            theta = jnp.arccos(jnp.where(ok, x, 0.0))
            return jnp.where(ok, compact_function(theta, math.radians(al), math.radians(ar), core, False), 0.0)
        return jnp.exp(-key[1] * x * x) * self._fc(x, self._uniform_rc)

    def _product_sums(self, terms, n: int, S: int, npair: int, dtype, chunk: int, skip_groups: bool):
        """Segment sums ``[n·n_pair, U_a]`` of one chunk of triplets for product-form columns.

        ``chunk`` is the number of triplets per call; ``skip_groups`` (several chunks)
        enables skipping radius groups per chunk.  A :func:`jax.custom_jvp` function of ``(floats, ints)`` with ``floats = (x, y, z
        components of the edge vectors, r, edge factors)`` and ``ints = (triplets, chunk
        mask, edge mask, neighbour species, receivers)``.  Its JVP is written out: each
        column's tangent is ``c [a' w_j w_k h · δcos + a h (w_k δw_j + w_j δw_k) + a w_j w_k h'
        · δr_jk]`` with the factors shared between columns and computed once per triplet.
        Reverse mode transposes this linear map, so the backward pass does a few
        multiply-adds per column and triplet instead of differentiating the whole
        forward expression; higher orders (Hessians) differentiate the rule.  Gathers
        and segment sums are kept out of the arithmetic by optimisation barriers (fused
        with a gather, XLA's CPU loops are not vectorised).
        """
        pair_flat = self._pair_index.reshape(-1)  # numpy: the rules below must not close over traced arrays
        # columns grouped by cutoff radius: a chunk of triplets skips a group when none of its
        # triplets has both edges inside that radius (exact: every factor is 0 with all its
        # derivatives from r_c on); the shell order of the triplet filter makes that common
        rc_of = {}
        for u, (_, _, p, _) in enumerate(terms):
            fk = self._edge_factor_keys()[p]
            rc_of[u] = self._uniform_rc if fk[0] == "w" else fk[4]
        radii = sorted(set(rc_of.values()))
        groups = [[u for u in range(len(terms)) if rc_of[u] == rc] for rc in radii]
        order = np.argsort(np.concatenate([np.array(g_, int) for g_ in groups]))
        akeys = sorted({t[1] for t in terms}, key=repr)
        hkeys = sorted({t[3] for t in terms if t[3] is not None}, key=repr)

        def gather(floats, ints):
            vx, vy, vz, r, fac = floats
            t, m, emask, sj, recv = ints
            e1, e2 = t[:, 0], t[:, 1]
            ok = m & emask[e1] & emask[e2]
            seg = recv[e1] * npair + jnp.asarray(pair_flat)[sj[e1] * S + sj[e2]]
            g = (vx[e1], vy[e1], vz[e1], vx[e2], vy[e2], vz[e2], r[e1], r[e2],
                 tuple(f[e1] for f in fac), tuple(f[e2] for f in fac))
            return jax.lax.optimization_barrier((g, seg, ok))

        small = chunk * len(terms) <= (1 << 16)  # latency-bound: few large ops beat many vectorised ones

        def segsum(cols, seg):
            if small:
                return jax.ops.segment_sum(jnp.stack(cols, axis=1), seg, num_segments=n * npair)
            cols = jax.lax.optimization_barrier(cols)
            return jnp.stack([jax.ops.segment_sum(c, seg, num_segments=n * npair) for c in cols], axis=1)

        def by_group(compute, g, ok):
            """``compute(columns) -> tuple of [n·n_pair, len(columns)]`` per radius group, skipped
            (zeros) where no triplet of the chunk reaches inside; columns back in ``terms`` order."""
            if len(groups) == 1 or not skip_groups:  # one chunk holds the shortest triplets too: nothing to skip
                return compute(list(range(len(terms))))
            dmax = jnp.where(ok, jnp.maximum(g[6], g[7]), jnp.inf)
            outs = []
            for rc, cols in zip(radii, groups):
                zero = lambda cols=cols: compute_zeros(len(cols))  # noqa: E731
                outs.append(jax.lax.cond(jnp.any(dmax < rc), lambda cols=cols: compute(cols), zero))
            return tuple(jnp.concatenate(parts, axis=1)[:, order] for parts in zip(*outs))

        def compute_zeros(k):
            z = jnp.zeros((n * npair, k), dtype)
            return (z, z)

        def values(g, ok, with_derivatives):
            ax, ay, az, bx, by, bz, rij, rik, fj, fk = g
            rjk, cos = _triplet_geometry(ax, ay, az, bx, by, bz, rij, rik, ok)
            if with_derivatives:
                one = jnp.ones_like(cos)
                A = {k: jax.jvp(lambda x, k=k: self._triplet_factor(k, x), (cos,), (one,)) for k in akeys}
                H = {k: jax.jvp(lambda x, k=k: self._triplet_factor(k, x), (rjk,), (one,)) for k in hkeys}
            else:
                A = {k: (self._triplet_factor(k, cos), None) for k in akeys}
                H = {k: (self._triplet_factor(k, rjk), None) for k in hkeys}
            return rjk, cos, A, H

        def primal(floats, ints):
            g, seg, ok = gather(floats, ints)
            _, _, A, H = values(g, ok, False)
            fj, fk = g[8], g[9]

            def compute(us):
                cols = []
                for c, ak, p, hk in (terms[u] for u in us):
                    v = c * A[ak][0] * fj[p] * fk[p]
                    cols.append(jnp.where(ok, v if hk is None else v * H[hk][0], 0.0))
                s_ = segsum(cols, seg)
                return (s_, s_)
            return by_group(compute, g, ok)[0]

        fn = jax.custom_jvp(primal)

        @fn.defjvp
        def _jvp(primals, tangents):
            floats, ints = primals
            tfloats, _ = tangents
            g, seg, ok = gather(floats, ints)
            tg, _, _ = gather(tfloats, ints)
            ax, ay, az, bx, by, bz, rij, rik, fj, fk = g
            tax, tay, taz, tbx, tby, tbz, trij, trik, tfj, tfk = tg
            rjk, cos, A, H = values(g, ok, True)
            den = jnp.where(ok, rij * rik, 1.0)
            tdot = tax * bx + ax * tbx + tay * by + ay * tby + taz * bz + az * tbz
            tcos = jnp.where(ok, (tdot - cos * (trij * rik + rij * trik)) / den, 0.0)
            okj = ok & (rjk > 0.0)
            dx, dy, dz = bx - ax, by - ay, bz - az
            trjk = jnp.where(okj, (dx * (tbx - tax) + dy * (tby - tay) + dz * (tbz - taz)) / jnp.where(okj, rjk, 1.0), 0.0)

            def compute(us):
                cols, tcols = [], []
                for c, ak, p, hk in (terms[u] for u in us):
                    a, da = A[ak]
                    w = fj[p] * fk[p]
                    tw = fk[p] * tfj[p] + fj[p] * tfk[p]
                    v, tv = c * a * w, c * (da * w * tcos + a * tw)
                    if hk is not None:
                        h, dh = H[hk]
                        v, tv = v * h, tv * h + v * dh * trjk
                    cols.append(jnp.where(ok, v, 0.0))
                    tcols.append(jnp.where(ok, tv, 0.0))
                return segsum(cols, seg), segsum(tcols, seg)
            return by_group(compute, g, ok)

        return fn

    # -- dense layout ----------------------------------------------------------
    def _dense_column_keys(self):
        """Per angular column: (edge-weight key, angle key, r_jk key or None); the column is
        ``Σ_{j<k} w(r_ij) w(r_ik) a(θ_ijk) [w(r_jk)]``.

        ``("g", η, r_s, r_c)``: ``exp(−η (r − r_s)²) f_c(r)``; ``("c", core, asym, r_l, r_c)``:
        compact radial core; ``("p", λ, ζ)``: ``2^(1−ζ) (1 + λ cos θ)^ζ`` (0 where negative);
        ``("a", core, θ_l, θ_r)``: compact angular core.
        """
        out = []
        for k in self._akeys:
            if k[0] == "aexp":
                narrow, eta, rs, lam, zeta, rc = k[1:7]
                g = ("g", eta, rs, rc)
                out.append((g, ("p", lam, zeta), g if narrow else None))
            else:
                core, asym, rl, rc, al, ar = k[1:7]
                out.append((("c", core, asym, rl, rc), ("a", core, al, ar), None))
        return out

    def _weight(self, key, r, fc_cache=None):
        """Edge weight of :meth:`_dense_column_keys` ``key`` at distances ``r``; ``fc_cache``
        (a dict) shares ``f_c(r)`` between keys of one cutoff radius."""
        if key[0] == "g":
            _, eta, rs, rc = key
            d = r - rs if rs != 0.0 else r
            if fc_cache is None:
                fc = self._fc(r, rc)
            else:
                if rc not in fc_cache:
                    fc_cache[rc] = self._fc(r, rc)
                fc = fc_cache[rc]
            return jnp.exp(-eta * d * d) * fc
        _, core, asym, rl, rc = key
        return compact_function(r, rl, rc, core, asym)

    def _angle(self, key, cos):
        if key[0] == "p":
            _, lam, zeta = key
            b = 1.0 + lam * cos
            pos = b > 0.0
            if float(zeta).is_integer() and zeta <= 64:
                v = jnp.where(pos, b, 0.0) ** int(zeta)
            else:
                v = jnp.where(pos, jnp.exp(zeta * jnp.log(jnp.where(pos, b, 1.0))), 0.0)
            return float(np.exp2(1.0 - zeta)) * v
        _, core, al, ar = key
        ok = (cos > -1.0) & (cos < 1.0)
        theta = jnp.arccos(jnp.where(ok, cos, 0.0))
        return jnp.where(ok, compact_function(theta, math.radians(al), math.radians(ar), core, False), 0.0)

    def _dense_block(self, k: int) -> int:
        """Atoms per checkpointed block of the pair tiles (``B·K·⌊K/2⌋·U_a`` ≲ 2^17 values: cache-sized)."""
        return max(1, (1 << 17) // (k * max(k // 2, 1) * max(self._ua, 1)))

    def _flat_dense(self, vec, idx, sj, n):
        """Same columns as :meth:`_flat_edges` in the dense ``[N, K]`` layout (``idx`` from
        :func:`jaxmlp.graph.ops.dense_slots`)."""
        dtype = vec.dtype
        K = self.max_neighbors
        S = len(self.symbols)
        vd = jnp.zeros((n * K, 3), dtype).at[idx].set(vec, mode="drop", unique_indices=True).reshape(n, K, 3)
        md = jnp.zeros(n * K, bool).at[idx].set(True, mode="drop", unique_indices=True).reshape(n, K)
        sd = jnp.full(n * K, S, jnp.int32).at[idx].set(sj.astype(jnp.int32), mode="drop", unique_indices=True).reshape(n, K)
        rd = safe_norm(vd, md)
        parts = []
        if self._ur:
            onehot = (sd[:, :, None] == jnp.arange(S)).astype(dtype)  # [N, K, S], 0 in empty slots
            rv = self._radial_values(rd.reshape(-1)).reshape(n, K, self._ur)
            parts.append(jnp.einsum("nku,nks->nsu", rv, onehot).reshape(n, S * self._ur))
        if self._ua:
            parts.append(self._angular_dense(vd, rd, md, sd))
        if self._uw:
            parts.append(self._wide_dense(vd, rd, md, sd))
        parts.append(jnp.zeros((n, 1), dtype))
        return jnp.concatenate(parts, axis=1)

    def _angular_dense(self, vd, rd, md, sd):
        """``[N, n_pair·U_a]`` angular columns from ``[N, K]`` neighbour slots.

        Every unordered pair of slots ``{j, k}`` is visited once as ``(j, j + d mod K)``
        with ``d = 1 … ⌊K/2⌋`` (weight ½ for ``d = K/2``, which meets each pair twice):
        a dense ``[B, K, ⌊K/2⌋]`` tile per block of atoms, the size of the triplet list,
        built from static slices (no gathers or scatters), reduced per element pair by a
        matrix product with the pair indicator.
        """
        n, K, _ = vd.shape
        D = K // 2
        dtype = vd.dtype
        npair = self._npair
        pair_index = jnp.asarray(np.vstack([self._pair_index, np.full((1, self._pair_index.shape[1]), -1)]))
        pair_index = jnp.concatenate([pair_index, jnp.full((pair_index.shape[0], 1), -1, pair_index.dtype)], axis=1)
        cols = self._dense_column_keys()
        wkeys = sorted({c[0] for c in cols} | {c[2] for c in cols if c[2] is not None}, key=repr)
        wpos = {k: p for p, k in enumerate(wkeys)}
        any_narrow = any(c[2] is not None for c in cols)
        dweight = np.ones(D)
        if D and K % 2 == 0:
            dweight[-1] = 0.5

        def circ(full):
            """``[B, K, K, …]`` → ``[B, K, D, …]`` with ``out[:, j, d-1] = full[:, j, (j + d) % K]``."""
            B = full.shape[0]
            rest = full.shape[3:]
            f2 = jnp.concatenate([full, full], axis=2).reshape((B, 2 * K * K) + rest)
            f2 = jnp.concatenate([f2, jnp.zeros((B, K) + rest, full.dtype)], axis=1)
            return f2.reshape((B, K, 2 * K + 1) + rest)[:, :, 1 : D + 1]

        def block(vb, rb, mb, sb):
            B = vb.shape[0]
            dot = circ(jnp.einsum("bjx,bkx->bjk", vb, vb))  # [B, K, D]
            bc = lambda x: jnp.broadcast_to(x[:, None], (B, K) + x.shape[1:])  # noqa: E731  [B,K,…] → [B,K(j),K(k),…]
            rk = circ(bc(rb))
            mk = circ(bc(mb))
            sk = circ(bc(sb))
            pm = mb[:, :, None] & mk
            den = jnp.where(pm, rb[:, :, None] * rk, 1.0)
            cos = jnp.where(pm, dot / den, 0.0)
            fc_edge, fc_jk = {}, {}
            W = jnp.stack([jnp.where(mb, self._weight(k, rb, fc_edge), 0.0) for k in wkeys], axis=-1)  # [B, K, P]
            Wk = circ(bc(W))  # [B, K, D, P]
            if any_narrow:
                sq = rb[:, :, None] ** 2 + rk * rk - 2.0 * dot
                ok = pm & (sq > 0.0)
                rjk = jnp.where(ok, jnp.sqrt(jnp.where(ok, sq, 1.0)), 0.0)
            angles, jks, X = {}, {}, []
            for wk, ak, jk in cols:
                if ak not in angles:
                    angles[ak] = self._angle(ak, cos)
                x = angles[ak] * W[:, :, None, wpos[wk]] * Wk[..., wpos[wk]]
                if jk is not None:
                    if jk not in jks:
                        jks[jk] = self._weight(jk, rjk, fc_jk)
                    x = x * jks[jk]
                X.append(x)
            X = jnp.stack(X, axis=1)  # [B, U, K, D]
            q = pair_index[sb[:, :, None], sk]  # [B, K, D], −1 for empty slots
            Q = (q[..., None] == jnp.arange(npair)) & pm[..., None]
            Q = Q.astype(dtype) * jnp.asarray(dweight, dtype)[:, None]  # [B, K, D, n_pair]
            out = jnp.einsum("bujd,bjdq->bqu", X, Q)
            return out.reshape(B, npair * len(cols))

        if D == 0:
            return jnp.zeros((n, npair * len(cols)), dtype)
        return _map_atom_blocks(block, (vd, rd, md, sd), min(n, self._dense_block(K)))

    # -- factorised wide angular functions (type 9, integer ζ) ---------------------------
    @staticmethod
    def _is_factorisable(k) -> bool:
        """A type-9 column key with integer ``1 ≤ ζ ≤ 32`` and ``|λ| ≤ 1`` (so ``1 + λ cos θ ≥ 0``:
        the clip at 0 never acts and ``(1 + λ cos θ)^ζ`` is a polynomial of ``cos θ``)."""
        if k[0] != "aexp" or k[1]:
            return False
        lam, zeta = k[4], k[5]
        return float(zeta).is_integer() and 1 <= zeta <= _WIDE_ZETA_MAX and abs(lam) <= 1.0

    def _wide_setup(self):
        """Numpy tables of the factorised wide columns (``self._wkeys``).

        Weights ``w_p(r) = exp(−η (r − r_s)²) f_c(r)`` per distinct ``(η, r_s, r_c)``, harmonics
        up to ``l_max`` = the largest ζ (:func:`_addition_harmonics`, ``LM = (l_max + 1)²``);
        features ``w_p Y_lm`` (``F = P·LM``) and ``w_p²``.  ``M [F, U_w]``: column ``u``'s
        ``2^(1−ζ) a_l(ζ, λ)`` on the features of its weight and degree ``l`` (0 for ``l > ζ``);
        ``D [P, U_w]``: ``2^(1−ζ) (1 + λ)^ζ``, the ``j = k`` term.
        """
        wk = self._wkeys
        if not wk:
            self._wide = None
            return
        weights = sorted({(k[2], k[3], k[6]) for k in wk})
        lmax = max(int(k[5]) for k in wk)
        deg = _harmonic_degrees(lmax)
        LM, P = (lmax + 1) ** 2, len(weights)
        M, D = np.zeros((P * LM, len(wk))), np.zeros((P, len(wk)))
        for u, k in enumerate(wk):
            p = weights.index((k[2], k[3], k[6]))
            lam, zeta = k[4], int(k[5])
            pref = 2.0 ** (1 - zeta)
            a = np.concatenate([_legendre_coefficients(lam, zeta), np.zeros(lmax - zeta)])
            M[p * LM:(p + 1) * LM, u] = pref * a[deg]
            D[p, u] = pref * (1.0 + lam) ** zeta
        F = P * LM
        S = len(self.symbols)
        pairs = np.array([(a, b) for a in range(S) for b in range(a, S)], int).reshape(-1, 2)
        self._wide = {"weights": weights, "lmax": lmax, "LM": LM, "F": F, "P": P, "M": M, "D": D,
                      "pa": pairs[:, 0], "pb": pairs[:, 1], "same": pairs[:, 0] == pairs[:, 1]}

    def _wide_features(self, vec, r, mask):
        """``(W [..., P], Y [LM, ...])``: weights ``w_p(r)`` (0 where ``mask`` is False) and harmonics of
        ``r̂`` (:func:`_addition_harmonics`) of neighbour vectors ``vec [..., 3]`` at distances ``r``."""
        t = self._wide
        ok = mask & (r > 0.0)
        rr = jnp.where(ok, r, 1.0)
        x = jnp.where(ok, vec[..., 0] / rr, 0.0)
        y = jnp.where(ok, vec[..., 1] / rr, 0.0)
        z = jnp.where(ok, vec[..., 2] / rr, 1.0)
        Y = _addition_harmonics(x, y, z, t["lmax"])
        fc_cache = {}
        W = jnp.stack([jnp.where(ok, self._weight(("g", eta, rs, rc), r, fc_cache), 0.0) for eta, rs, rc in t["weights"]], axis=-1)
        return W, Y

    def _wide_columns(self, A, D):
        """``[n, n_pair·U_w]`` columns from the moments ``A [n, S, F]`` (``Σ_j w_p Y_lm``) and ``D [n, S, P]``
        (``Σ_j w_p²``) of every neighbour species: ``Σ_{j∈a, k∈b}`` = ``Σ_f A_a A_b M``; for ``a = b``
        the pairs ``j < k`` are half of that minus the ``j = k`` terms."""
        t = self._wide
        n = A.shape[0]
        full = (A[:, t["pa"]] * A[:, t["pb"]]) @ jnp.asarray(t["M"], A.dtype)  # [n, n_pair, U_w]
        diag = D[:, t["pa"]] @ jnp.asarray(t["D"], A.dtype)
        G = jnp.where(jnp.asarray(t["same"])[None, :, None], 0.5 * (full - diag), full)
        return G.reshape(n, -1)

    # values per chunk of edges (edge layout) / block of atoms (dense layout): cache-sized, since
    # the (l_max + 1)² harmonics per edge make the wide path memory-bound (measured on Cu 2048)
    _WIDE_BUDGET_EDGES = 1 << 15
    _WIDE_BUDGET_DENSE = 1 << 17

    def _wide_edges(self, vec, r, emask, sj, recv, n):
        """Factorised wide columns from the edge list: per-edge features ``w_p Y_lm`` and ``w_p²``
        summed per (centre, neighbour species) in checkpointed chunks of edges (memory linear)."""
        t = self._wide
        S = len(self.symbols)
        F, P = t["F"], t["P"]
        E = vec.shape[0]
        seg = recv * S + sj
        acc = jnp.zeros((n * S, F + P), vec.dtype)

        def body(acc, xs):
            v, rr, m, sg = xs
            W, Y = self._wide_features(v, rr, m)
            feats = (W[:, :, None] * Y.T[:, None, :]).reshape(W.shape[0], F)
            return acc.at[sg].add(jnp.concatenate([feats, W * W], axis=-1), mode="drop"), None

        chunk = max(1, self._WIDE_BUDGET_EDGES // (F + P))
        if E <= chunk:
            acc, _ = body(acc, (vec, r, emask, seg))
        else:
            n_chunks = -(-E // chunk)
            pad = n_chunks * chunk - E
            xs = [jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a for a in (vec, r, emask, seg)]
            xs = [a.reshape((n_chunks, chunk) + a.shape[1:]) for a in xs]
            acc, _ = jax.lax.scan(jax.checkpoint(body), acc, xs)
        acc = acc.reshape(n, S, F + P)
        return self._wide_columns(acc[..., :F], acc[..., F:])

    def _wide_dense(self, vd, rd, md, sd):
        """Factorised wide columns in the dense ``[N, K]`` layout: per block of atoms the moments are
        batched matrix products ``Σ_k (w_p 1[s_k = s]) Y_lm`` over the neighbour slots."""
        t = self._wide
        S = len(self.symbols)
        n, K, _ = vd.shape
        F, P, LM = t["F"], t["P"], t["LM"]

        def block(vb, rb, mb, sb):
            B = vb.shape[0]
            W, Y = self._wide_features(vb, rb, mb)  # [B, K, P], [LM, B, K]
            oh = (sb[..., None] == jnp.arange(S)).astype(vb.dtype)  # [B, K, S]; empty slots have species S
            Wq = (oh[..., :, None] * W[..., None, :]).reshape(B, K, S * P)
            A = jnp.einsum("bkq,lbk->bql", Wq, Y).reshape(B, S, F)
            return self._wide_columns(A, jnp.einsum("bks,bkp->bsp", oh, W * W))

        return _map_atom_blocks(block, (vd, rd, md, sd), min(n, max(1, self._WIDE_BUDGET_DENSE // (K * (LM + S * P)))))

    def statistics(self, graphs) -> dict[str, dict[str, list[float]]]:
        """Per-element min, max, mean and sigma of the raw functions (n2p2 ``scaling.data``).

        Parameters
        ----------
        graphs : iterable of GraphsTuple
            Training structures (unpadded or padded; padding atoms are skipped).

        Returns
        -------
        dict symbol → {"min", "max", "mean", "sigma": list of float}
            sigma is the sample standard deviation (n − 1), as n2p2.
            Elements absent from ``graphs`` raise ``ValueError``.
        """
        fn = jax.jit(self.__call__)
        acc = {s: [] for s in self.symbols}
        for g in graphs:
            G = np.asarray(fn(g))
            numbers = np.asarray(g.nodes["numbers"])
            mask = np.asarray(g.nodes["mask"])
            for k, s in enumerate(self.symbols):
                sel = mask & (numbers == self.numbers[k])
                if sel.any():
                    acc[s].append(G[sel, : self.n_functions[k]])
        out = {}
        for s in self.symbols:
            if not acc[s]:
                raise ValueError(f"no atoms of element {s} in the structures; cannot compute its scaling statistics")
            X = np.concatenate(acc[s], axis=0)
            sigma = X.std(axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])
            out[s] = {"min": X.min(0).tolist(), "max": X.max(0).tolist(), "mean": X.mean(0).tolist(), "sigma": sigma.tolist()}
        return out

    def config(self) -> dict:
        """JSON-able description (re-create with ``ACSF(**config)``)."""
        return {
            "elements": list(self.symbols),
            "functions": [f for s in self.symbols for f in self.functions[s]],
            "cutoff_type": self.cutoff_type,
            "cutoff_alpha": self.cutoff_alpha,
            "triplet_chunk": self.triplet_chunk,
            "max_neighbors": self.max_neighbors,
        } | ({} if self.factorise_wide_setting == "auto" else {"factorise_wide": self.factorise_wide_setting})  # default stays out


def _map_atom_blocks(block, arrays, B: int):
    """``block(*arrays)`` over blocks of ``B`` atoms (leading axis; zero-padded), each checkpointed → ``[n, ·]``."""
    n = arrays[0].shape[0]
    n_blocks = -(-n // B)
    if n_blocks == 1:
        return block(*arrays)
    pad = n_blocks * B - n
    padded = [jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a for a in arrays]
    xs = [a.reshape((n_blocks, B) + a.shape[1:]) for a in padded]
    out = jax.lax.map(lambda t: jax.checkpoint(block)(*t), xs)
    return out.reshape(n_blocks * B, -1)[:n]
