"""A short-range repulsive core: the ZBL screened nuclear repulsion, switched off at ``r_in``.

A learned potential has no data closer than the shortest distance of its
training set and may extrapolate into an attractive hole there (an HDNNP of
water trained on DFT frames whose shortest O–H is 0.88 Å lets two atoms fall
onto each other in MD).  Adding this term puts a wall below a per-element-pair
inner radius ``r_in`` without touching the range the data covers:

``φ_ab(r) = V_ZBL(r) · s((r − r_on)/(r_in − r_on))``, ``r_on = r_in − width``
(at least 0), with ``V_ZBL(r) = Z_a Z_b e²/(4πε₀ r) · Φ(r/a)``,
``a = 0.46850 Å / (Z_a^0.23 + Z_b^0.23)`` and the universal screening
``Φ(x) = 0.18175 e^{−3.19980x} + 0.50986 e^{−0.94229x} + 0.28022 e^{−0.40290x}
+ 0.02817 e^{−0.20162x}`` (Ziegler, Biersack, Littmark 1985).  ``s`` is the
quintic smoothstep ``1 − 10t³ + 15t⁴ − 6t⁵`` (1 for ``t ≤ 0``, 0 for
``t ≥ 1``): φ, its first and second derivative vanish at ``r_in`` (C²), and
the switch is C² at ``r_on`` too.  For ``r ≥ r_in`` the term is exactly zero,
so it adds nothing to energies, forces or stresses of structures whose pair
distances are all at least ``r_in``.

Per-atom energy ``e_i = ½ Σ_j φ(r_ij)`` over the edges whose centre is
``i`` (as :mod:`jaxmlp.models.pair`).  :func:`core_radii` picks ``r_in`` per
pair from a data set's shortest distances minus a margin.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from ase import units
from ase.data import atomic_numbers, chemical_symbols

from ..graph.ops import edge_vectors, safe_norm
from .base import Model, element_symbol, register_model

__all__ = ["zbl_repulsion", "zbl_energy", "core_radii", "gap_barrier", "pair_gaps", "wall_repulsion", "pair_key", "COULOMB_EV_A"]

#: e²/(4πε₀) in eV·Å (Hartree · Bohr).
COULOMB_EV_A = units.Hartree * units.Bohr
_ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
_ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)
_ZBL_A0 = 0.46850  # Å


def pair_key(a, b) -> str:
    """Canonical ``"A-B"`` key of an element pair (lighter element first): ``pair_key("O", 1) == "H-O"``."""
    sa, sb = sorted((element_symbol(a), element_symbol(b)), key=lambda s: atomic_numbers[s])
    return f"{sa}-{sb}"


def _parse_key(key) -> str:
    if isinstance(key, str):
        parts = key.split("-")
        if len(parts) != 2:
            raise ValueError(f"element pair keys look like 'H-O', got {key!r}")
        return pair_key(*parts)
    if isinstance(key, tuple) and len(key) == 2:
        return pair_key(*key)
    raise TypeError(f"element pair keys must be 'A-B' strings or (A, B) tuples, got {key!r}")


def zbl_energy(r, z_a, z_b):
    """Bare ZBL pair energy ``V(r)`` in eV for distances ``r`` (Å) and atomic numbers ``z_a, z_b``."""
    r = jnp.asarray(r)
    z_a, z_b = jnp.asarray(z_a, r.dtype), jnp.asarray(z_b, r.dtype)
    a = _ZBL_A0 / (z_a**0.23 + z_b**0.23)
    x = r / a
    phi = sum(c * jnp.exp(-d * x) for c, d in zip(_ZBL_C, _ZBL_D))
    return COULOMB_EV_A * z_a * z_b / r * phi


def _smoothstep_off(t):
    """1 − 10t³ + 15t⁴ − 6t⁵ on [0, 1]; 1 below, 0 above (C²)."""
    t = jnp.clip(t, 0.0, 1.0)
    return 1.0 - t**3 * (10.0 - 15.0 * t + 6.0 * t * t)


def _radii_table(symbols, r_in) -> dict:
    pairs = [pair_key(a, b) for a, b in itertools.combinations_with_replacement(symbols, 2)]
    if isinstance(r_in, bool):
        raise TypeError(f"r_in must be a number or a dict 'A-B' → Å, got {r_in!r}")
    if isinstance(r_in, (int, float, np.floating, np.integer)):
        table = {p: float(r_in) for p in pairs}
    elif isinstance(r_in, Mapping):
        table = {}
        for k, v in r_in.items():
            key = _parse_key(k)
            if key not in pairs:
                raise ValueError(f"r_in given for pair {key}, not a pair of the model's elements {list(symbols)}")
            table[key] = float(v)
        missing = [p for p in pairs if p not in table]
        if missing:
            raise ValueError(f"r_in lacks element pair(s) {missing}")
    else:
        raise TypeError(f"r_in must be a number or a dict 'A-B' → Å, got {type(r_in).__name__}")
    bad = {k: v for k, v in table.items() if not (np.isfinite(v) and v > 0)}
    if bad:
        raise ValueError(f"r_in must be positive and finite (Å), got {bad}")
    return {p: table[p] for p in pairs}


def _element_symbols(elements, who: str) -> list:
    """Sorted (by Z) element symbols of a pair term; ValueError when there are none."""
    if isinstance(elements, (str, int)):
        elements = [elements]
    symbols = sorted({element_symbol(e) for e in elements}, key=lambda s: atomic_numbers[s])
    if not symbols:
        raise ValueError(f"{who} needs at least one element")
    return symbols


def _pair_matrix(symbols, value) -> np.ndarray:
    """``[S, S]`` table ``value(pair_key(a, b))`` over the species of ``symbols``."""
    S = len(symbols)
    out = np.zeros((S, S))
    for i, j in itertools.product(range(S), repeat=2):
        out[i, j] = value(pair_key(symbols[i], symbols[j]))
    return out


def _pair_term(name: str, symbols, tables: Mapping[str, np.ndarray], edge_energy, config: dict, cutoff: float,
               **model_kw) -> Model:
    """A parameter-free model ``e_i = ½ Σ_j φ_{s_i s_j}(r_ij)`` from per-species-pair tables.

    ``tables`` maps names to ``[S, S]`` arrays; ``edge_energy(r, p)`` gets the
    edge distances and ``p[name]`` = each table at the edge's species pair and
    returns the per-edge energy (any value where the edge is padding or of an
    unknown element: those are masked here).  Unknown elements on concrete
    graphs raise ``ValueError``.
    """
    S = len(symbols)
    zs = np.array([atomic_numbers[s] for s in symbols])
    species = np.full(119, -1, np.int32)
    species[zs] = np.arange(S)

    def init(key, graph=None):
        del key, graph
        return ()

    def apply(params, graph):
        del params
        numbers = graph.nodes["numbers"]
        try:  # refuse unknown elements on concrete graphs (skipped under tracing)
            num = np.asarray(numbers)
            real = np.asarray(graph.nodes["mask"]) & (num > 0)
            bad = sorted(set(num[real & (species[np.clip(num, 0, 118)] < 0)].tolist()))
            if bad:
                raise ValueError(f"unknown element(s) {[chemical_symbols[z] for z in bad]} for this {name} "
                                 f"model (it knows {symbols})")
        except jax.errors.TracerArrayConversionError:
            pass
        mask = graph.edges["mask"]
        r = safe_norm(edge_vectors(graph), mask)
        sp = jnp.asarray(species)[jnp.clip(numbers, 0, 118)]
        si, sj = sp[graph.receivers], sp[graph.senders]
        known = mask & (si >= 0) & (sj >= 0)
        si, sj = jnp.where(known, si, 0), jnp.where(known, sj, 0)
        e = edge_energy(r, {k: jnp.asarray(v, r.dtype)[si, sj] for k, v in tables.items()})
        e = jnp.where(known, e, 0.0)
        return 0.5 * jax.ops.segment_sum(e, graph.receivers, num_segments=graph.nodes["positions"].shape[0])

    return Model(name, config, float(cutoff), init, apply, elements=tuple(int(z) for z in zs), **model_kw)


@register_model("zbl_repulsion")
def zbl_repulsion(elements, r_in, width: float = 0.3) -> Model:
    """ZBL nuclear repulsion active only below ``r_in`` per element pair (module docstring).

    Parameters
    ----------
    elements : sequence of str or int
        Elements the term knows.
    r_in : float or dict
        Inner radius in Å where the term (energy, force and curvature) reaches
        zero: one value for every pair, or ``{"A-B": r}`` for every pair of
        ``elements`` (keys in either order, or ``(A, B)`` tuples), e.g. from
        :func:`core_radii`.
    width : float
        Width of the switch in Å: the bare ZBL acts below ``r_in − width``
        (or the switch starts at 0 when ``width ≥ r_in``).

    Returns
    -------
    Model
        ``cutoff = max r_in``; no trainable parameters (``init`` returns the
        empty tuple ``()``), so it can be added to a learned model with
        :func:`jaxmlp.models.sum_models` and training moves only the learned
        part.

    Raises
    ------
    ValueError
        For no or unknown elements, missing, extra, non-positive or
        non-finite radii, a non-positive width, or (on concrete graphs)
        atoms of elements the term does not know.
    TypeError
        For radii that are neither a number nor a mapping.
    """
    symbols = _element_symbols(elements, "zbl_repulsion")
    if isinstance(width, bool) or not isinstance(width, (int, float, np.floating, np.integer)):
        raise TypeError(f"width must be a number (Å), got {width!r}")
    width = float(width)
    if not (np.isfinite(width) and width > 0):
        raise ValueError(f"width must be positive and finite (Å), got {width}")
    radii = _radii_table(symbols, r_in)
    r_out = _pair_matrix(symbols, radii.__getitem__)
    zs = np.array([atomic_numbers[s] for s in symbols], np.float64)
    tables = {"hi": r_out, "lo": np.maximum(r_out - width, 0.0),
              "za": np.broadcast_to(zs[:, None], r_out.shape), "zb": np.broadcast_to(zs[None, :], r_out.shape)}

    def edge_energy(r, p):
        hi, lo = p["hi"], p["lo"]
        inside = r < hi
        r_safe = jnp.where(inside & (r > 0), r, hi)
        e = zbl_energy(r_safe, p["za"], p["zb"]) * _smoothstep_off((r_safe - lo) / (hi - lo))
        return jnp.where(inside, e, 0.0)

    return _pair_term("zbl_repulsion", symbols, tables, edge_energy, dict(elements=symbols, r_in=radii, width=width),
                      r_out.max(), needs_triplets=False, n_layers=1, extras={"r_in": dict(radii)})


def core_radii(frames, elements=None, margin: float = 0.05, r_max: float = 3.0) -> dict:
    """Per-pair inner radii ``{"A-B": d_min(A, B) − margin}`` (Å) from the shortest distances in ``frames``.

    Parameters
    ----------
    frames : ase.Atoms or sequence of ase.Atoms (or a jaxmlp ``Dataset``)
        The training data (periodic images counted).
    elements : sequence, optional
        Elements whose pairs are needed (default: those present).
    margin : float
        Å subtracted from each shortest distance, so the core term is zero
        on every training structure.
    r_max : float
        Search radius in Å; every pair must occur closer than this.

    Returns
    -------
    dict ``"A-B"`` → Å, the ``r_in`` argument of :func:`zbl_repulsion`.

    Raises
    ------
    ValueError
        For no frames, a negative margin, a pair that never occurs within
        ``r_max``, or a radius that would not be positive.
    """
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    if isinstance(frames, Atoms):
        frames = [frames]
    frames = [f for f in frames]
    if not frames:
        raise ValueError("core_radii needs at least one structure")
    if not all(isinstance(f, Atoms) for f in frames):
        raise TypeError("core_radii expects ase.Atoms structures")
    margin, r_max = float(margin), float(r_max)
    if not (margin >= 0 and np.isfinite(margin)):
        raise ValueError(f"margin must be >= 0 (Å), got {margin}")
    if not r_max > 0:
        raise ValueError(f"r_max must be positive (Å), got {r_max}")
    present = sorted({int(z) for f in frames for z in f.numbers})
    symbols = [element_symbol(z) for z in present] if elements is None else [element_symbol(e) for e in elements]
    symbols = sorted(set(symbols), key=lambda s: atomic_numbers[s])
    shortest: dict = {}
    for f in frames:
        i, j, d = neighbor_list("ijd", f, r_max)
        zi, zj = f.numbers[i], f.numbers[j]
        for a, b in itertools.combinations_with_replacement(symbols, 2):
            za, zb = atomic_numbers[a], atomic_numbers[b]
            sel = ((zi == za) & (zj == zb)) | ((zi == zb) & (zj == za))
            if sel.any():
                key = pair_key(a, b)
                shortest[key] = min(shortest.get(key, np.inf), float(d[sel].min()))
    out = {}
    for a, b in itertools.combinations_with_replacement(symbols, 2):
        key = pair_key(a, b)
        if key not in shortest:
            raise ValueError(f"pair {key} never occurs within r_max={r_max} Å in the frames; pass a larger r_max or r_in by hand")
        r = shortest[key] - margin
        if not r > 0:
            raise ValueError(f"pair {key}: shortest distance {shortest[key]:.3f} Å minus margin {margin} Å is not positive")
        out[key] = r
    return out


@register_model("gap_barrier")
def gap_barrier(elements, windows, height: float = 1.0) -> Model:
    """A repulsive bump ``h · 64 t³(1 − t)³`` on pair distances inside empty windows of the data.

    ``t = (r − lo)/(hi − lo)`` for ``lo < r < hi`` of the pair's window, zero
    outside (C² at both ends; the maximum ``h`` at the centre). Use it where
    the training data have a gap in a pair distribution that the dynamics
    must not cross — liquid water's O–H distances jump from the covalent
    bond (≤ 1.12 Å) to the hydrogen bond (≥ 1.38 Å), and a network trained
    on such frames knows nothing about protons in between (:func:`pair_gaps`
    finds the windows). Like the core it is zero on every structure whose
    pair distances lie outside the windows, so it leaves the training data
    untouched; unlike the core it is a prior, not physics: it forbids the
    proton transfer the data never show.

    Parameters
    ----------
    elements : sequence of str or int
    windows : dict ``"A-B"`` → ``(lo, hi)`` Å
        Pairs without a window get no term.
    height : float
        Barrier height per pair, eV.

    Returns
    -------
    Model
        No trainable parameters (``()``); ``cutoff`` = largest ``hi``.
    """
    symbols = _element_symbols(elements, "gap_barrier")
    if not isinstance(windows, Mapping) or not windows:
        raise TypeError(f"windows must be a non-empty dict 'A-B' → (lo, hi), got {windows!r}")
    if isinstance(height, bool) or not isinstance(height, (int, float, np.floating, np.integer)) or not np.isfinite(height) or height <= 0:
        raise ValueError(f"height must be a positive number (eV), got {height!r}")
    pairs = [pair_key(a, b) for a, b in itertools.combinations_with_replacement(symbols, 2)]
    table_w = {}
    for k, v in windows.items():
        key = _parse_key(k)
        if key not in pairs:
            raise ValueError(f"window given for pair {key}, not a pair of the model's elements {symbols}")
        lo, hi = (float(x) for x in v)
        if not (0 < lo < hi and np.isfinite(hi)):
            raise ValueError(f"window of {key} must satisfy 0 < lo < hi, got {v!r}")
        table_w[key] = (lo, hi)
    height = float(height)
    tables = {"lo": _pair_matrix(symbols, lambda k: table_w.get(k, (0.0, 0.0))[0]),
              "hi": _pair_matrix(symbols, lambda k: table_w.get(k, (0.0, 0.0))[1])}

    def edge_energy(r, p):
        lo, hi = p["lo"], p["hi"]
        inside = (hi > 0) & (r > lo) & (r < hi)
        t = jnp.where(inside, (r - lo) / jnp.where(hi > lo, hi - lo, 1.0), 0.5)
        return jnp.where(inside, height * 64.0 * t**3 * (1.0 - t) ** 3, 0.0)

    config = dict(elements=symbols, windows={k: list(v) for k, v in table_w.items()}, height=height)
    return _pair_term("gap_barrier", symbols, tables, edge_energy, config, tables["hi"].max())


def pair_gaps(frames, pairs, r_max: float = 2.0, min_width: float = 0.15, margin: float = 0.02) -> dict:
    """The widest empty window of each pair's distances in ``frames`` (above the shortest distance, below ``r_max``).

    Returns ``{"A-B": (lo, hi)}`` with ``lo = d_k + margin``, ``hi = d_{k+1} − margin``
    around the largest jump between consecutive sorted distances; raises
    ``ValueError`` if it is narrower than ``min_width`` Å.
    """
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    if isinstance(frames, Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise ValueError("pair_gaps needs at least one structure")
    out = {}
    for p in pairs:
        key = _parse_key(p)
        za, zb = (atomic_numbers[s] for s in key.split("-"))
        ds = []
        for f in frames:
            i, j, d = neighbor_list("ijd", f, float(r_max))
            zi, zj = f.numbers[i], f.numbers[j]
            ds.append(d[((zi == za) & (zj == zb)) | ((zi == zb) & (zj == za))])
        d = np.sort(np.concatenate(ds))
        if d.size < 2:
            raise ValueError(f"pair {key}: fewer than two distances below r_max={r_max} Å")
        k = int(np.argmax(np.diff(d)))
        lo, hi = float(d[k]) + margin, float(d[k + 1]) - margin
        if hi - lo < min_width:
            raise ValueError(f"pair {key}: widest empty window {d[k]:.3f}–{d[k + 1]:.3f} Å is narrower than min_width={min_width} Å")
        out[key] = (lo, hi)
    return out


@register_model("wall_repulsion")
def wall_repulsion(elements, r_in, stiffness: float = 250.0) -> Model:
    """A cubic wall ``k (r_in − r)³`` below a per-pair ``r_in`` (zero above; C² at ``r_in``).

    The ZBL core is the bare nuclear repulsion, soft a few tenths of an Å
    inside the data (0.8 eV for O–O at 2.15 Å); a network can be more
    attractive than that there (64-H2O HDNNP: oxygens clustering at 2.15–2.35 Å,
    below the DFT frames' 2.41 Å).  This wall stops the network's
    extrapolation right below the data: ``k = 250 eV/Å³`` gives 0.25 eV at
    0.1 Å and 2 eV at 0.2 Å inside ``r_in``.

    Parameters
    ----------
    elements : sequence of str or int
    r_in : float or dict ``"A-B"`` → Å (every pair, as :func:`zbl_repulsion`)
    stiffness : float
        ``k`` in eV/Å³.

    Returns
    -------
    Model
        No trainable parameters (``()``); ``cutoff`` = largest ``r_in``.
    """
    symbols = _element_symbols(elements, "wall_repulsion")
    if isinstance(stiffness, bool) or not isinstance(stiffness, (int, float, np.floating, np.integer)) \
            or not np.isfinite(stiffness) or stiffness <= 0:
        raise ValueError(f"stiffness must be a positive number (eV/Å³), got {stiffness!r}")
    radii = _radii_table(symbols, r_in)
    tables = {"hi": _pair_matrix(symbols, radii.__getitem__)}
    k = float(stiffness)

    def edge_energy(r, p):
        hi = p["hi"]
        inside = r < hi
        return jnp.where(inside, k * (hi - jnp.where(inside, r, hi)) ** 3, 0.0)

    config = dict(elements=symbols, r_in=radii, stiffness=k)
    return _pair_term("wall_repulsion", symbols, tables, edge_energy, config, tables["hi"].max())
