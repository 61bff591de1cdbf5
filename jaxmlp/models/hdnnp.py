"""High-dimensional neural network potential (Behler–Parrinello, 2G-HDNNP).

``E = Σ_i [s · NN_{Z_i}(G̃_i) + E0_{Z_i}]`` where ``G̃_i`` are the scaled
atom-centred symmetry functions of atom ``i`` (:mod:`jaxmlp.descriptors.acsf`,
n2p2 conventions), ``NN_Z`` one feed-forward network per element (flax), ``s``
an output scale (1 for native models; ``energy_unit / conv_energy`` for
imported n2p2 potentials) and ``E0_Z`` per-element reference energies (eV),
fitted by least squares (:func:`jaxmlp.data.fit_reference_energies`).

Scaling statistics and E0 are data-derived constants: they live in the
model's config (JSON), not in the trainable params.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from ..descriptors.acsf import ACSF, SCALING_MODES, scale_features
from .base import Model, element_symbol, per_element, register_model

__all__ = ["hdnnp", "ACTIVATIONS", "N2P2_ACTIVATIONS", "activation_function"]

_EXP_LIMIT = 35.0  # n2p2 saturates logistic/softplus beyond |x| > 35


def _softplus(x):
    big, small = x > _EXP_LIMIT, x < -_EXP_LIMIT
    xs = jnp.where(big | small, 0.0, x)
    return jnp.where(big, x, jnp.where(small, 0.0, jnp.log(1.0 + jnp.exp(xs))))


def _logistic(x):
    big, small = x > _EXP_LIMIT, x < -_EXP_LIMIT
    xs = jnp.where(big | small, 0.0, x)
    return jnp.where(big, 1.0, jnp.where(small, 0.0, 1.0 / (1.0 + jnp.exp(-xs))))


#: Activation name → function (n2p2's definitions).
ACTIVATIONS = {
    "linear": lambda x: x,
    "tanh": jnp.tanh,
    "logistic": _logistic,
    "softplus": _softplus,
    "shifted_softplus": lambda x: _softplus(x) - jnp.log(2.0),
    "relu": lambda x: jnp.where(x > 0, x, 0.0),
    "gaussian": lambda x: jnp.exp(-0.5 * x * x),
    "cos": jnp.cos,
    "revlogistic": lambda x: 1.0 - 1.0 / (1.0 + jnp.exp(-x)),
    "expneg": lambda x: jnp.exp(-x),
    "harmonic": lambda x: x * x,
}

#: n2p2 ``global_activation_short`` letters → activation names.
N2P2_ACTIVATIONS = {
    "l": "linear", "t": "tanh", "s": "logistic", "p": "softplus", "r": "relu", "g": "gaussian",
    "c": "cos", "S": "revlogistic", "e": "expneg", "h": "harmonic",
}


def activation_function(name: str):
    """The activation called ``name`` (a key of :data:`ACTIVATIONS` or an n2p2 letter)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, got {type(name).__name__}")
    key = N2P2_ACTIVATIONS.get(name, name)
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)} or n2p2 letters {sorted(N2P2_ACTIVATIONS)}")
    return ACTIVATIONS[key]


def hidden_widths(hidden, name: str = "hidden") -> tuple[int, ...]:
    """Hidden-layer widths as a tuple of positive ints (``name`` labels the error)."""
    hidden = tuple(int(h) for h in hidden)
    if any(h < 1 for h in hidden):
        raise ValueError(f"{name} widths must be >= 1, got {hidden}")
    return hidden


def layer_activations(activation, hidden, name: str = "activation") -> tuple[str, ...]:
    """One activation per hidden layer (a single name is repeated), validated, n2p2 letters mapped to names."""
    acts = (activation,) * len(hidden) if isinstance(activation, str) else tuple(activation)
    if len(acts) != len(hidden):
        raise ValueError(f"{name}: {len(acts)} activations for {len(hidden)} hidden layers")
    for a in acts:
        activation_function(a)
    return tuple(N2P2_ACTIVATIONS.get(a, a) for a in acts)


def scaling_tables(scaling, acsf: ACSF):
    """Validate a symmetry-function ``scaling`` spec; ``(mode, smin, smax, tables)``.

    ``tables`` is None (mode ``"none"`` or no scaling) or ``{"min", "max",
    "mean", "sigma"} → [n_elements, acsf.n_max]`` arrays in ``acsf.symbols``
    order, zero-padded beyond each element's function count.
    """
    mode, smin, smax, tables = "none", 0.0, 1.0, None
    if scaling is not None:
        mode = scaling.get("mode", "scalecenter")
        if mode not in SCALING_MODES:
            raise ValueError(f"scaling mode must be one of {SCALING_MODES}, got {mode!r}")
        smin, smax = float(scaling.get("smin", 0.0)), float(scaling.get("smax", 1.0))
        stats = scaling.get("stats")
        if mode != "none":
            if not isinstance(stats, Mapping):
                raise ValueError("scaling needs 'stats': {symbol: {'min','max','mean','sigma'}}")
            tables = {k: np.zeros((len(acsf.symbols), acsf.n_max)) for k in ("min", "max", "mean", "sigma")}
            for i, (s, nf) in enumerate(zip(acsf.symbols, acsf.n_functions)):
                if s not in stats:
                    raise ValueError(f"scaling statistics lack element {s}")
                for k in tables:
                    vals = np.asarray(stats[s].get(k, np.zeros(nf)) if k == "sigma" else stats[s][k], float)
                    if vals.shape != (nf,):
                        raise ValueError(f"scaling statistics '{k}' of {s} have {vals.size} values for {nf} functions")
                    tables[k][i, :nf] = vals
    return mode, smin, smax, tables


def scaling_config(mode, smin, smax, tables, acsf: ACSF) -> dict:
    """The JSON form of :func:`scaling_tables`' result (the ``scaling`` argument that rebuilds it)."""
    return {
        "mode": mode, "smin": smin, "smax": smax,
        "stats": None if tables is None else {
            s: {k: tables[k][i, :nf].tolist() for k in ("min", "max", "mean", "sigma")}
            for i, (s, nf) in enumerate(zip(acsf.symbols, acsf.n_functions))
        },
    }

def refuse_unknown_elements(graph, acsf: ACSF, model_name: str) -> None:
    """Raise ``ValueError`` naming real atoms of ``graph`` whose element ``acsf`` does not know (skipped under tracing)."""
    try:
        num = np.asarray(graph.nodes["numbers"])
    except jax.errors.TracerArrayConversionError:
        return
    known = np.zeros(119, bool)
    known[list(acsf.numbers)] = True
    m = np.asarray(graph.nodes["mask"]) & (num > 0)
    bad = sorted(set(num[m & ~known[np.clip(num, 0, 118)]].tolist()))
    if bad:
        raise ValueError(f"unknown element(s) {[chemical_symbols[z] for z in bad]} for this {model_name} model "
                         f"(it knows {list(acsf.symbols)})")


def element_networks(modules, params, X, sp, acsf: ACSF):
    """Per-atom outputs ``[N]`` of the network of each atom's element.

    ``X`` is ``[N, n_max]`` (element ``s`` reads its first ``n_functions``
    columns) or ``{symbol: [N, n_in]}``; ``sp [N]`` are species indices in
    ``acsf.symbols`` order; ``modules``/``params`` map symbols to networks.
    """
    first = next(iter(X.values())) if isinstance(X, dict) else X
    out = jnp.zeros(first.shape[0], first.dtype)
    for k, (s, nf) in enumerate(zip(acsf.symbols, acsf.n_functions)):
        x = X[s] if isinstance(X, dict) else X[:, :nf]
        e = modules[s].apply({"params": params[s]}, x)
        out = e if len(acsf.symbols) == 1 else jnp.where(sp == k, e, out)
    return out



class _MLP(nn.Module):
    """Dense network ``n_in → hidden… → 1``; kernels are ``[n_prev, n_cur]``."""

    features: tuple
    activations: tuple
    normalize_nodes: bool = False
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        for k, (width, act) in enumerate(zip(self.features, self.activations)):
            n_prev = x.shape[-1]
            x = nn.Dense(width, param_dtype=self.param_dtype, dtype=x.dtype, name=f"layer_{k}",
                         kernel_init=nn.initializers.variance_scaling(1.0, "fan_in", "normal"))(x)
            if self.normalize_nodes:
                x = x / n_prev
            x = ACTIVATIONS[N2P2_ACTIVATIONS.get(act, act)](x)
        return x[..., 0]


@register_model("hdnnp")
def hdnnp(
    elements: Sequence,
    symmetry_functions: Iterable[Mapping],
    hidden: Sequence[int] = (25, 25),
    activation="tanh",
    output_activation: str = "linear",
    cutoff_type="poly2",
    cutoff_alpha: float = 0.0,
    scaling: Mapping | None = None,
    e0: Mapping | None = None,
    energy_scale: float = 1.0,
    normalize_nodes: bool = False,
    triplet_chunk: int | None = None,
    max_neighbors: int | None = None,
    factorise_wide: bool | str = "auto",
) -> Model:
    """Behler–Parrinello HDNNP with n2p2-compatible symmetry functions.

    Parameters
    ----------
    elements : sequence of str or int
        Elements the model knows (ordered internally by atomic number).
    symmetry_functions : iterable of dict
        Specifications from :mod:`jaxmlp.descriptors` (lengths in Å).
    hidden : sequence of int
        Hidden-layer widths (same for every element, as n2p2).
    activation : str or sequence of str
        Hidden activations (one name for all layers, or one per layer):
        ``tanh``, ``softplus``, ``shifted_softplus``, ``logistic``, ``relu``,
        ``gaussian``, ``cos``, ``revlogistic``, ``expneg``, ``harmonic``,
        ``linear`` or n2p2 letters (``t``, ``p``, ``s``, ``r``, ``g``, ``c``,
        ``S``, ``e``, ``h``, ``l``).
    output_activation : str
        Activation of the output neuron (``linear``).
    cutoff_type, cutoff_alpha
        Cutoff function of types 2/3/9 (n2p2 numbering or name) and inner
        cutoff fraction.
    scaling : dict, optional
        ``{"mode": one of "none", "scale", "center", "scalecenter", "sigma",
        "smin": float, "smax": float, "stats": {symbol: {"min", "max",
        "mean", "sigma": list of float}}}`` with per-element lists in n2p2 order
        (e.g. from :meth:`jaxmlp.descriptors.ACSF.statistics`). None: no
        scaling.
    e0 : dict element → float, optional
        Reference energy per atom of each element, eV (default 0); see
        :func:`jaxmlp.data.fit_reference_energies`.
    energy_scale : float
        Factor applied to every network output (eV per output unit).
    normalize_nodes : bool
        n2p2's ``normalize_nodes``: divide pre-activations by the fan-in.
    triplet_chunk : int, optional
        Triplet chunk size of the descriptor (memory bound; None: the
        backend's default, see :class:`jaxmlp.descriptors.ACSF`).
    max_neighbors : int, optional
        Dense ``[atoms, max_neighbors]`` evaluation of the descriptor (faster on
        CPU; the graph needs no triplets). Atoms with more neighbours inside the
        cutoff make the energy NaN unless the graph has triplets (then the
        triplet path is used); pick it with a margin, e.g.
        :func:`jaxmlp.graph.max_degree`. See :class:`jaxmlp.descriptors.ACSF`.
    factorise_wide : bool or "auto"
        Evaluate wide angular functions (type 9, integer ζ, ``|λ| ≤ 1``) in the
        factorised per-edge form (no triplets); ``"auto"`` (default) does so
        when their largest ζ is at most 8, False keeps them on the triplet
        path (:class:`jaxmlp.descriptors.ACSF`). Stored in ``config`` only
        when not ``"auto"``.

    Returns
    -------
    Model
        ``needs_triplets`` when angular functions are present; ``params =
        {"networks": {symbol: flax params}}`` with layers ``layer_k`` holding
        ``kernel [n_prev, n_cur]`` and ``bias [n_cur]``.  ``extras``:
        ``"descriptor"`` (the :class:`~jaxmlp.descriptors.acsf.ACSF`) and
        ``"triplet_filter"`` (:meth:`ACSF.triplet_filter`, None without
        angular functions): pass it to ``atoms_to_graph(...,
        triplet_filter=...)`` to build only the triplets that can contribute
        (n2p2's pruning; :class:`jaxmlp.Calculator` does).

    Raises
    ------
    ValueError
        For bad specifications, scaling statistics of the wrong length,
        unknown activations, or (at evaluation of concrete graphs) unknown
        elements.
    """
    symbols = sorted({element_symbol(e) for e in elements}, key=lambda s: atomic_numbers[s])
    if not symbols:
        raise ValueError("hdnnp needs at least one element")
    functions = [dict(f) for f in symmetry_functions]
    acsf = ACSF(symbols, functions, cutoff_type, cutoff_alpha, triplet_chunk, max_neighbors, factorise_wide)
    missing = [s for s, n in zip(acsf.symbols, acsf.n_functions) if n == 0]
    if missing:
        raise ValueError(f"element(s) {missing} have no symmetry functions centred on them")
    hidden = hidden_widths(hidden, "hidden")
    acts = layer_activations(activation, hidden, "activation")
    activation_function(output_activation)
    out_act = N2P2_ACTIVATIONS.get(output_activation, output_activation)

    mode, smin, smax, tables = scaling_tables(scaling, acsf)
    e0_map = per_element(e0, symbols, "e0")
    e0_arr = np.array([e0_map[s] for s in acsf.symbols])
    energy_scale = float(energy_scale)

    nets = {s: _MLP(hidden + (1,), acts + (out_act,), bool(normalize_nodes)) for s in acsf.symbols}
    def _features(graph):
        G = acsf(graph)
        sp = acsf.species(graph.nodes["numbers"])
        if tables is not None:
            G = scale_features(G, sp, tables, mode, smin, smax)
        return G, sp

    def init(key, graph=None):
        dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
        keys = jax.random.split(key, len(acsf.symbols))
        params = {}
        for k, (s, nf) in enumerate(zip(acsf.symbols, acsf.n_functions)):
            net = _MLP(hidden + (1,), acts + (out_act,), bool(normalize_nodes), dtype)
            params[s] = net.init(keys[k], jnp.zeros((1, nf), dtype))["params"]
        return {"networks": params}

    def apply(params, graph):
        refuse_unknown_elements(graph, acsf, "hdnnp")
        G, sp = _features(graph)
        out = element_networks(nets, params["networks"], G, sp, acsf)
        return energy_scale * out + jnp.asarray(e0_arr, G.dtype)[sp]

    config = dict(
        elements=list(acsf.symbols),
        symmetry_functions=[f for s in acsf.symbols for f in acsf.functions[s]],
        hidden=list(hidden),
        activation=list(acts),
        output_activation=out_act,
        cutoff_type=acsf.cutoff_type,
        cutoff_alpha=acsf.cutoff_alpha,
        scaling=None if scaling is None else scaling_config(mode, smin, smax, tables, acsf),
        e0=e0_map,
        energy_scale=energy_scale,
        normalize_nodes=bool(normalize_nodes),
        triplet_chunk=acsf.triplet_chunk,
        max_neighbors=acsf.max_neighbors,
    )
    if acsf.factorise_wide_setting != "auto":
        config["factorise_wide"] = acsf.factorise_wide_setting
    model = Model("hdnnp", config, float(acsf.cutoff), init, apply, needs_triplets=acsf.needs_triplets,
                  elements=tuple(acsf.numbers), n_layers=1, extras={"descriptor": acsf, "triplet_filter": acsf.triplet_filter()})
    return model
