"""Multilayer atomic cluster expansion with scalar indicators (ml-ACE).

Bochkarev, Lysogorskiy, Ortner, Csányi, Drautz (2022), with one rotation
invariant scalar indicator ``θ`` per atom and layer.

Layer ``n = 0 … L−1`` on atom ``i`` (edges ``j → i`` within ``R_c``):

* single-bond basis ``φ_{c l m}(σ_ji) = Σ_{q κ k} W^{(n)}_{z_i; q κ k; l c}
  g_q(r_ji) e_κ(z_j) T_k(θ_j^{(n)}) · Y_lm(r̂_ji)`` — radial functions
  ``g_q`` with a smooth cutoff (:func:`jaxmlp.descriptors.ace.radial_basis`),
  a learnable element embedding ``e_κ(z_j)`` (one-hot at initialisation), the
  Chebyshev polynomials ``T_k`` of the neighbour's indicator (layer 0 has no
  indicator: ``T_0 = 1`` only) and real spherical harmonics from e3nn-jax.
  The learnable radial coefficients ``W`` contract the product basis
  ``g_q e_κ T_k`` into ``n_max`` radial channels ``c`` per ``l``, as
  pacemaker's ``crad`` coefficients do;
* atomic base ``A_{i c lm} = Σ_j φ_{c l m}(σ_ji) / n_avg`` (segment sum over
  the edges of each centre; ``n_avg`` = ``avg_num_neighbors``);
* invariant products ``B_i`` up to correlation order ν = ``correlation_order``
  (:func:`jaxmlp.descriptors.ace.product_basis`);
* atomic properties ``φ_i^{(p,n)} = Σ_v c̃^{(p,n)}_v B_{iv} + b^{(p,n)}_{z_i}``
  (linear in the invariant basis);
* hidden layers: indicator ``θ_i^{(n+1)} = tanh(φ_i^{(1,n)})``;
  output layer: ``E_i = E0_{z_i} + F(φ_i^{(1)}, …, φ_i^{(P)})`` with
  ``F = φ1 + Σ_{p≥2} φ_p (1 + φ_p²)^{−1/4}`` (``embedding="fs"``, a smooth,
  sign-preserving Finnis–Sinclair square root: ``~ sign(φ)√|φ|`` for large
  ``|φ|``, linear near 0 so Hessians stay finite) or ``F = Σ_p φ_p``
  (``embedding="linear"``).

With L layers the energy of atom i depends on atoms within ``L·R_c``, forces
on atoms within ``2·L·R_c`` (``Model.n_layers = L``).  A 1-layer model with
``embedding="linear"`` and one property is a linear ACE.

Parameters are a plain pytree::

    {"embed": [S, K], "E0": [S], "norm": [] (not trained: stop_gradient),
     "layers": [{"radial": [S, Q·K·T_n, (l+1)·C], "coeffs": [S, n_f, P_n],
                 "bias": [S, P_n]}, ...]}

with S elements, Q radial functions, K = ``n_embed``, T_n = 1 for layer 0 and
``k_max + 1`` after, C = ``max(n_max)`` channels, n_f functions per element
(:func:`basis_sizes`) and P_n properties (1 for hidden layers,
``n_properties`` for the output layer). ``shared_coefficients=True`` drops
the leading S of ``coeffs``; ``contraction=None`` makes ``radial``
``[S, Q, (l+1)·max(n_max)]`` (the ``R_nl``).

Centre indicator: in layers ≥ 1 the products carry the factor
``A^{(0)}(σ_ii) = T_k(θ_i)`` of the centre (``σ_ii = (z_i, θ_i)``; ``z_i``
enters through the per-element coefficients), see ``centre_indicator``.
Parameter trees of models saved before this layout (shared ``coeffs [n_B, P]``,
no centre factor) do not load into the new defaults.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..descriptors.ace import (
    RADIAL_BASES,
    chebyshev,
    evaluate_products,
    product_basis,
    radial_basis,
    spherical_harmonics,
)
from ..graph.ops import edge_vectors, safe_norm
from .base import Model, element_symbol, per_element, register_model, species_table

__all__ = ["mlace", "mlace_layers", "basis_sizes", "EMBEDDINGS", "CONTRACTIONS", "PRESETS", "PAPER_ETHANOL_FUNCTIONS"]

EMBEDDINGS = ("fs", "linear")
CONTRACTIONS = ("learned", None)

#: Named basis sizes for :func:`mlace` (``mlace(elements, cutoff, **PRESETS["small"])``).
#: ``"default"``: the defaults of :func:`mlace` (252 invariants per layer at ν ≤ 3);
#: ``"small"``: 32 invariants per layer, for quick studies, examples and CI
#: (compiles several times faster; expect lower accuracy).
PRESETS = {
    "default": dict(correlation_order=3, l_max=[0, 3, 2], n_max=[8, 6, 4], k_max=3, n_radial=8),
    "small": dict(correlation_order=3, l_max=[0, 2, 1], n_max=[4, 3, 2], k_max=2, n_radial=4),
}

#: Paper-comparison bases for C/H/O (3 elements, ``n_embed = 3``), one per layer
#: count L (use with ``n_layers=L``): the uncontracted single-bond basis of eq. 10
#: (``contraction=None``), per-element coefficients and the centre indicator,
#: sized so the functions per element summed over all layers
#: (:func:`basis_sizes`) match Bochkarev et al.'s ethanol table (SM Table I):
#: 1207 / 1363 / 2269 / 2982 for L = 1–4 (ours: 1207 / 1363 / 2269 / 2981).
#: The paper does not list its per-layer split; these splits are our choice.
_PAPER = dict(correlation_order=3, contraction=None, k_max=1, n_radial=8)
PRESETS.update({
    "paper-L1": dict(_PAPER, l_max=[0, 4, 3], n_max=[8, 3, 2]),
    "paper-L2": dict(_PAPER, l_max=[0, 3, 2], n_max=[3, 1, 1], hidden_l_max=[0, 2, 1], hidden_n_max=[5, 3, 1]),
    "paper-L3": dict(_PAPER, l_max=[0, 3, 1], n_max=[3, 2, 1], hidden_l_max=[0, 2, 2], hidden_n_max=[3, 1, 1]),
    "paper-L4": dict(_PAPER, l_max=[0, 2, 2], n_max=[3, 1, 1], hidden_l_max=[0, 2, 1], hidden_n_max=[3, 2, 1]),
})
#: The paper's functions per element (all layers) for ethanol, by number of layers.
PAPER_ETHANOL_FUNCTIONS = {1: 1207, 2: 1363, 3: 2269, 4: 2982}


def _fs(x):
    return x * (1.0 + x * x) ** -0.25


def _as_list(v):
    return int(v) if isinstance(v, (int, np.integer)) else [int(x) for x in v]


@register_model("mlace")
def mlace(
    elements,
    cutoff: float = 5.0,
    n_layers: int = 2,
    correlation_order: int = 3,
    l_max=(0, 3, 2),
    n_max=(8, 6, 4),
    k_max: int = 3,
    n_radial: int = 8,
    radial_basis_kind: str = "bessel",
    n_embed: int | None = None,
    n_properties: int = 2,
    embedding: str = "fs",
    hidden_n_max=None,
    hidden_l_max=None,
    avg_num_neighbors: float | None = None,
    init_scale: float = 0.1,
    e0=None,
    max_neighbors: int | None = None,
    centre_indicator: bool = True,
    shared_coefficients: bool = False,
    contraction: str | None = "learned",
    *,
    max_body_order: int | None = None,
) -> Model:
    """Build a multilayer ACE model with scalar indicators.

    Parameters
    ----------
    elements : sequence of int or str
        Chemical elements (atomic numbers or symbols) the model knows.
    cutoff : float, Å
        Per-layer cutoff ``R_c``; graphs are built with it.
    n_layers : int >= 1
        Number of layers ``L``; ``interaction_range = 2·L·R_c``.
    correlation_order : int in 1..4
        Largest correlation order ν of the invariant products, the number of
        atomic-base factors ``A`` (ν = 3: three factors, body order 4 with the
        centre atom). ``max_body_order=`` is a deprecated spelling (also
        accepted in stored configs).
    l_max : int or sequence of int
        Largest ``l`` per correlation order (order 1 always uses l = 0).
    n_max : int or sequence of int
        Radial channels per correlation order (``contraction="learned"``), or
        radial functions ``R_nl`` per order (``contraction=None``: the
        channels are then ``n_max[ν]·K·T_n`` products ``R_nl e_κ T_k``).
    k_max : int >= 0
        Largest Chebyshev order of the indicator (layers ≥ 1).
    n_radial : int
        Number of radial basis functions ``g_q``.
    radial_basis_kind : {"bessel", "chebyshev"}
    n_embed : int, optional
        Element-embedding width K (default: number of elements).
    n_properties : int >= 1
        Atomic properties ``φ^{(p)}`` of the output layer.
    embedding : {"fs", "linear"}
        Output function F, see the module docstring.
    hidden_n_max, hidden_l_max : optional
        Smaller bases for the hidden (indicator) layers; default as the output layer.
    avg_num_neighbors : float, optional
        Normalisation ``n_avg`` of the atomic base. Default: the mean number
        of edges per real atom of the graph passed to ``init``, stored in
        ``params["norm"]`` (never trained).
    init_scale : float
        Standard deviation of the initial expansion coefficients (scaled
        by ``1/√n_B``).
    max_neighbors : int, optional
        Evaluate the single-bond basis in a dense ``[atoms, max_neighbors]``
        neighbour layout: only the edge vectors are scattered into the slots,
        the neighbour sum is one batched matrix product per atom and the
        radial contraction is applied per atom after it (the fast path on
        CPU). Only neighbours inside ``R_c`` count. Edges that get no slot
        (an atom with more neighbours, or edges not sorted by receiver) are
        summed by the edge-list path and added (``lax.cond``, skipped when
        there are none), so the result never depends on this setting.
        Default: the edge-list path only.
    e0 : dict element → float, optional
        Initial per-element reference energies ``params["E0"]`` (eV per atom;
        trained with the rest), e.g. from
        :func:`jaxmlp.data.fit_reference_energies`. Default 0.
    centre_indicator : bool
        Include the centre atom's own indicator (the paper's
        ``A^{(0)}(σ_ii)`` factor, ``σ_ii = (z_i, θ_i)``): in layers ≥ 1 every
        invariant is multiplied by ``T_k(θ_i)``, k = 0..k_max, and the
        ``T_k(θ_i)`` with k ≥ 1 are functions of their own (ν = 0), so a layer
        has ``(k_max + 1)·(n_B + 1) − 1`` functions per element. Default True.
    shared_coefficients : bool
        Share the expansion coefficients ``c̃`` by all centre elements
        (``coeffs [n_f, P]``; only the bias is per element). Default False:
        one set per element (``coeffs [S, n_f, P]``) as in the paper.
    contraction : {"learned", None}
        ``"learned"`` (default, the fast option): a learnable matrix contracts
        ``g_q e_κ T_k`` into ``max(n_max)`` channels per ``l``.
        ``None``: the uncontracted single-bond basis of eq. 10,
        ``e_κ(z_j) R_nl(r) Y_lm T_k(θ_j)`` with ``κ``, ``n`` and ``k`` basis
        indices of their own and learnable ``R_nl = Σ_q W_{z_i,l,n,q} g_q``.

    Returns
    -------
    Model
        ``name="mlace"``, ``n_layers=L``, ``elements`` the atomic numbers.
    """
    from ase.data import atomic_numbers

    try:
        zs = tuple(int(atomic_numbers[e]) if isinstance(e, str) else int(e) for e in elements)
    except (KeyError, TypeError) as err:
        raise ValueError(f"elements must be atomic numbers or chemical symbols, got {elements!r}") from err
    if len(zs) == 0 or len(set(zs)) != len(zs) or any(not 0 < z < 119 for z in zs):
        raise ValueError(f"elements must be a non-empty list of distinct elements, got {elements!r}")
    if not (isinstance(cutoff, (int, float)) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive number (Å), got {cutoff!r}")
    if not (isinstance(n_layers, (int, np.integer)) and n_layers >= 1):
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    if not (isinstance(k_max, (int, np.integer)) and k_max >= 0):
        raise ValueError(f"k_max must be an int >= 0, got {k_max!r}")
    if not (isinstance(n_radial, (int, np.integer)) and n_radial >= 1):
        raise ValueError(f"n_radial must be an int >= 1, got {n_radial!r}")
    if radial_basis_kind not in RADIAL_BASES:
        raise ValueError(f"radial_basis_kind must be one of {RADIAL_BASES}, got {radial_basis_kind!r}")
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
    if not (isinstance(n_properties, (int, np.integer)) and n_properties >= 1):
        raise ValueError(f"n_properties must be an int >= 1, got {n_properties!r}")
    if max_neighbors is not None and not (isinstance(max_neighbors, (int, np.integer)) and max_neighbors >= 1):
        raise ValueError(f"max_neighbors must be None or an int >= 1, got {max_neighbors!r}")
    if avg_num_neighbors is not None and not avg_num_neighbors > 0:
        raise ValueError(f"avg_num_neighbors must be positive, got {avg_num_neighbors!r}")
    if max_body_order is not None:
        warnings.warn("mlace(max_body_order=...) is deprecated; use correlation_order (the number of A factors, "
                      "body order − 1)", DeprecationWarning, stacklevel=2)
        correlation_order = max_body_order
    if contraction not in CONTRACTIONS:
        raise ValueError(f"contraction must be one of {CONTRACTIONS}, got {contraction!r}")
    for flag, value in (("centre_indicator", centre_indicator), ("shared_coefficients", shared_coefficients)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{flag} must be a bool, got {value!r}")
    symbols = [element_symbol(z) for z in zs]
    e0_map = per_element(e0, symbols, "e0")
    e0_init = [e0_map[sym] for sym in symbols]
    n_species = len(zs)
    n_embed = n_species if n_embed is None else int(n_embed)
    if n_embed < 1:
        raise ValueError(f"n_embed must be >= 1, got {n_embed}")

    n_T = [1] + [k_max + 1] * (n_layers - 1)
    hid_n = n_max if hidden_n_max is None else hidden_n_max
    hid_l = l_max if hidden_l_max is None else hidden_l_max
    spec = [(hid_n, hid_l)] * (n_layers - 1) + [(n_max, l_max)]
    bases, n_radfn = [], []
    for n, (nm, lm) in enumerate(spec):
        b = product_basis(nm, lm, correlation_order=correlation_order)
        if contraction is None:  # channels (n, κ, k) of eq. 10, n slowest
            n_radfn.append(b.n_channels)
            b = product_basis([c * n_embed * n_T[n] for c in b.n_max], lm, correlation_order=correlation_order)
        bases.append(b)
    bases = tuple(bases)
    n_props = [1] * (n_layers - 1) + [int(n_properties)]
    centre = [bool(centre_indicator) and n > 0 for n in range(n_layers)]
    n_funcs = [n_T[n] * (b.size + 1) - 1 if centre[n] else b.size for n, b in enumerate(bases)]
    table = jnp.asarray(species_table(zs))
    l_all = max(b.l_max_all for b in bases)

    def _rows(graph, dense: bool):
        """Rows of the single-bond basis: edge vectors, inside mask, senders, receivers.

        Without ``dense`` the rows are the edges.  With it they are the
        ``[N·max_neighbors]`` neighbour slots (only the 3 coordinates of an edge
        are scattered into its slot; everything else is computed there), and the
        edges inside that got no slot (:func:`_dense_slots`) are returned too.
        """
        vec = edge_vectors(graph)
        mask = graph.edges["mask"]
        inside = mask & (safe_norm(vec, mask) < cutoff)
        if not dense:
            return (vec, inside, graph.senders, graph.receivers), None
        k = int(max_neighbors)
        n_nodes = graph.nodes["positions"].shape[0]
        idx, overflow = _dense_slots(graph.receivers, inside, n_nodes, k)
        put = lambda z, x: z.at[idx].set(x, mode="drop", unique_indices=True)  # noqa: E731
        rows = (put(jnp.zeros((n_nodes * k, 3), vec.dtype), vec), put(jnp.zeros(n_nodes * k, bool), inside),
                put(jnp.zeros(n_nodes * k, graph.senders.dtype), graph.senders),
                jnp.arange(n_nodes * k, dtype=graph.receivers.dtype) // k)
        return rows, (vec, overflow, graph.senders, graph.receivers)

    def _geometry(vec, inside):
        r = safe_norm(vec, inside)
        r_safe = jnp.where(inside, r, 0.5 * cutoff)
        unit = jnp.where(inside[:, None], vec / r_safe[:, None], jnp.asarray([0.0, 0.0, 1.0], vec.dtype))
        g = radial_basis(r_safe, cutoff, n_radial, radial_basis_kind)
        g = jnp.where(inside[:, None], g, 0.0)
        return g, spherical_harmonics(unit, l_all)

    def init(key, graph):
        if key is None:
            raise TypeError("mlace.init needs a jax.random key")
        if graph is None:
            raise TypeError("mlace.init needs an example graph (for the atomic-base normalisation)")
        if avg_num_neighbors is None:
            nodes = max(int(np.sum(np.asarray(graph.nodes["mask"]))), 1)
            norm = max(float(np.sum(np.asarray(graph.edges["mask"]))) / nodes, 1.0)
        else:
            norm = float(avg_num_neighbors)
        keys = jax.random.split(key, 2 * n_layers + 1)
        embed = jnp.eye(n_species, n_embed) + 0.1 * jax.random.normal(keys[-1], (n_species, n_embed))
        layers = []
        for n in range(n_layers):
            b = bases[n]
            fan_in = n_radial * n_embed * n_T[n] if contraction is not None else n_radial
            C = b.n_channels if contraction is not None else n_radfn[n]
            lb = b.l_max_all
            radial = jax.random.normal(keys[2 * n], (n_species, fan_in, (lb + 1) * C)) / math.sqrt(fan_in)
            shape = (n_funcs[n], n_props[n]) if shared_coefficients else (n_species, n_funcs[n], n_props[n])
            coeffs = init_scale * jax.random.normal(keys[2 * n + 1], shape) / math.sqrt(n_funcs[n])
            layers.append({"radial": radial, "coeffs": coeffs, "bias": jnp.zeros((n_species, n_props[n]))})
        return {"embed": embed, "E0": jnp.array(e0_init, dtype=float), "norm": jnp.array(norm, dtype=float), "layers": layers}

    def _prepare(params, graph, dense: bool = False):
        """Per-row inputs of every layer (rows: the edges, or the dense slots plus the overflow edges)."""
        (vec, inside, senders, receivers), over = _rows(graph, dense)
        g, Y = _geometry(vec, inside)
        n_nodes = graph.nodes["positions"].shape[0]
        s = jnp.maximum(table[graph.nodes["numbers"]], 0)
        return dict(g=g, Y=Y, s=s, senders=senders, receivers=receivers, dense=dense, overflow=over,
                    n_nodes=n_nodes)

    def _layer(params, graph, n, theta, pre=None):
        """Properties ``φ^{(·,n)}`` [N, P_n] of layer ``n`` given the indicator ``θ^{(n)}`` [N] (None for n = 0)."""
        if pre is None:
            pre = _prepare(params, graph)
        layer = params["layers"][n]
        g, Y, s, n_nodes = (pre[k] for k in ("g", "Y", "s", "n_nodes"))
        senders, receivers = pre["senders"], pre["receivers"]
        dtype = g.dtype
        b = bases[n]
        lb = b.l_max_all
        # neighbour channels e_κ(z_j) T_k(θ_j) depend on the neighbour only: formed per atom, then one row gather
        # (materialised: a gather fused into the per-row products would be repeated for every product)
        if n == 0:
            chan_atoms = params["embed"].astype(dtype)[s]  # [N, K]
        else:
            T_atoms = chebyshev(theta.astype(dtype), k_max)  # [N, k+1]
            chan_atoms = (params["embed"].astype(dtype)[s][:, :, None] * T_atoms[:, None, :]).reshape(n_nodes, -1)
        chan = jax.lax.optimization_barrier(chan_atoms[senders])  # [rows, K·T]
        W = layer["radial"].astype(dtype)  # [S, F, (lb+1)·C]
        Yb = Y[:, : (lb + 1) ** 2]
        direct = lambda Yb, g, chan, receivers: _base_direct(  # noqa: E731
            Yb, g, chan, W, s[receivers], receivers, n_nodes, lb, contraction is None, b.n_channels,
            n_radfn[n] if contraction is None else None)
        if not pre["dense"]:
            A = direct(Yb, g, chan, receivers)
        else:
            A = _base_reordered(Yb, g, chan, W, s, n_nodes, lb, contraction is None)
            # edges that got no dense slot: the edge-list sum over them (skipped, at no cost, when there are none;
            # rematerialised so the skipped branch leaves no residuals behind)
            vec_e, over, snd_e, rcv_e = pre["overflow"]

            def overflow(vec_e, over, chan_atoms):
                g_o, Y_o = _geometry(vec_e, over)
                return direct(Y_o[:, : (lb + 1) ** 2], g_o, chan_atoms[snd_e], rcv_e)

            A = A + jax.lax.cond(jnp.any(over), jax.checkpoint(overflow), lambda *_: jnp.zeros_like(A),
                                 vec_e, over, chan_atoms)
        A = A / jax.lax.stop_gradient(params["norm"]).astype(dtype)  # [N, nlm, C]
        B = evaluate_products(jnp.swapaxes(A, 1, 2), b)  # [N, n_B]
        c = layer["coeffs"].astype(dtype)
        c = c[None] if shared_coefficients else c  # [S or 1, n_f, P]
        if centre[n]:
            # A^(0)(σ_ii) = T_k(θ_i): functions [T_{k≥1}(θ_i), T_0 B, T_1 B, …] (k slowest); their products with the
            # coefficients are summed per k, never forming the [N, (k+1)·n_B] functions
            T_i = chebyshev(theta.astype(dtype), k_max)  # [N, k+1]
            c_b = c[:, k_max:].reshape(c.shape[0], k_max + 1, B.shape[1], -1)  # [S, k+1, n_B, P]
            P_all = jnp.einsum("nk,nskp->nsp", T_i, jnp.einsum("nb,skbp->nskp", B, c_b))
            P_all = P_all + jnp.einsum("nk,skp->nsp", T_i[:, 1:], c[:, :k_max])
        else:
            P_all = jnp.einsum("nf,sfp->nsp", B, c)
        props = P_all[:, 0] if P_all.shape[1] == 1 else jnp.take_along_axis(P_all, s[:, None, None], axis=1)[:, 0]
        return props + layer["bias"].astype(dtype)[s]

    def _outputs(params, graph, pre):
        theta = None
        outs = []
        for n in range(len(params["layers"])):
            props = _layer(params, graph, n, theta, pre)
            outs.append(props)
            theta = jnp.tanh(props[:, 0])
        return outs

    def layer_outputs(params, graph):
        """Per-layer properties ``[φ^{(·,0)} [N, P_0], ...]`` (padding nodes finite).

        With ``max_neighbors`` the atomic bases come from the dense layout, plus the
        edge-list sum over any edges that did not fit (same values either way).
        """
        return _outputs(params, graph, _prepare(params, graph, max_neighbors is not None))

    def apply(params, graph):
        props = layer_outputs(params, graph)[-1]
        s = jnp.maximum(table[graph.nodes["numbers"]], 0)
        if embedding == "fs":
            e = props[:, 0] + jnp.sum(_fs(props[:, 1:]), axis=1)
        else:
            e = jnp.sum(props, axis=1)
        return e + params["E0"].astype(e.dtype)[s]

    config = dict(
        elements=list(zs),
        cutoff=float(cutoff),
        n_layers=int(n_layers),
        correlation_order=int(correlation_order),
        l_max=_as_list(l_max),
        n_max=_as_list(n_max),
        k_max=int(k_max),
        n_radial=int(n_radial),
        radial_basis_kind=radial_basis_kind,
        n_embed=int(n_embed),
        n_properties=int(n_properties),
        embedding=embedding,
        hidden_n_max=None if hidden_n_max is None else _as_list(hidden_n_max),
        hidden_l_max=None if hidden_l_max is None else _as_list(hidden_l_max),
        avg_num_neighbors=None if avg_num_neighbors is None else float(avg_num_neighbors),
        init_scale=float(init_scale),
        e0=e0_map,
        max_neighbors=None if max_neighbors is None else int(max_neighbors),
        centre_indicator=bool(centre_indicator),
        shared_coefficients=bool(shared_coefficients),
        contraction=contraction,
    )
    return Model("mlace", config, float(cutoff), init, apply, needs_triplets=False, elements=zs, n_layers=int(n_layers),
                 extras={"layer_outputs": layer_outputs, "layer": _layer, "bases": bases,
                         "n_functions": tuple(n_funcs)})


def _single_bond(g, chan):
    """``u = g_q · (e_κ T_k)`` per row, ``[rows, Q·K·T]`` (q slowest, then κ, then k)."""
    return (g[:, :, None] * chan[:, None, :]).reshape(g.shape[0], -1)


def _base_direct(Y, g, chan, W, s_i, receivers, n_nodes, lb, uncontracted, n_channels, n_radfn):
    """Atomic base ``A_{i,lm,c}`` over edges: radial channels per edge, then a segment sum.

    ``chan`` [E, K·T] holds the neighbour channels ``e_κ(z_j) T_k(θ_j)``.  ``R = u W_{z_i}``
    per edge (learned contraction; ``u`` = :func:`_single_bond`), or ``R_{nl} e_κ T_k`` with
    ``R_{nl} = g W_{z_i}`` (``uncontracted``); ``φ = Y_lm R_lc`` summed over the edges of
    each centre → ``[n_nodes, (lb+1)², C]``.
    """
    n_rows = g.shape[0]
    n_species = W.shape[0]
    u = g if uncontracted else _single_bond(g, chan)
    if n_species == 1:
        R = u @ W[0]
    else:
        R_all = (u @ jnp.moveaxis(W, 0, 1).reshape(W.shape[1], -1)).reshape(n_rows, n_species, -1)
        R = jnp.take_along_axis(R_all, s_i[:, None, None], axis=1)[:, 0]
    if uncontracted:  # channels (n, κ, k) with n slowest
        R = (R.reshape(-1, lb + 1, n_radfn, 1) * chan[:, None, None, :]).reshape(n_rows, lb + 1, -1)
    else:
        R = R.reshape(-1, lb + 1, n_channels)
    phi = jnp.concatenate([Y[:, l * l : (l + 1) ** 2, None] * R[:, l : l + 1, :] for l in range(lb + 1)], axis=1)
    return jax.ops.segment_sum(phi, receivers, num_segments=n_nodes)


def _base_reordered(Y, g, chan, W, s, n_nodes, lb, uncontracted):
    """The same atomic base from dense ``[n_nodes·k]`` slot rows, the radial contraction moved after the sum.

    ``A_{i,lm,c} = Σ_F W_{z_i; F, lc} Σ_j Y_lm(j) u_F(j)``: the neighbour sum
    ``A'_{i,lm,F} = Σ_j Y_lm u_F`` is one batched matrix product per atom (no per-edge
    channels, no scatter), and ``W`` is applied once per atom.  Exactly the sum of
    :func:`_base_direct` in another order.
    """
    k = Y.shape[0] // n_nodes
    u = _single_bond(g, chan)  # [rows, Q·K·T]
    A1 = jnp.einsum("nkm,nkf->nmf", Y.reshape(n_nodes, k, -1), u.reshape(n_nodes, k, -1))  # [N, (lb+1)², F]
    Wn = W[0][None] if W.shape[0] == 1 else W[s]  # [N or 1, F_w, (lb+1)·X]
    out = []
    for l in range(lb + 1):
        A_l = A1[:, l * l : (l + 1) ** 2]  # [N, 2l+1, Q·K·T]
        if uncontracted:  # W [·, Q, (lb+1)·n_radfn]; channels (n, κ, k), n slowest
            Q = Wn.shape[1]
            W_l = Wn.reshape(Wn.shape[0], Q, lb + 1, -1)[:, :, l]  # [·, Q, n_radfn]
            A_l = A_l.reshape(n_nodes, 2 * l + 1, Q, -1)  # [N, m, Q, K·T]
            A_l = jnp.einsum("nmqx,nqr->nmrx", A_l, jnp.broadcast_to(W_l, (n_nodes,) + W_l.shape[1:]))
            out.append(A_l.reshape(n_nodes, 2 * l + 1, -1))
        else:  # W [·, Q·K·T, (lb+1)·C]
            W_l = Wn.reshape(Wn.shape[0], Wn.shape[1], lb + 1, -1)[:, :, l]  # [·, F, C]
            if W.shape[0] == 1:
                out.append(A_l @ W_l[0])
            else:
                out.append(jnp.einsum("nmf,nfc->nmc", A_l, W_l))
    return jnp.concatenate(out, axis=1)


def _dense_slots(receivers, inside, n_nodes: int, k: int):
    """Dense neighbour layout of the edges inside the cutoff.

    Returns ``(idx, overflow)``: ``idx[e] = receivers[e]·k + slot`` for the
    edges inside that get one of their centre's ``k`` slots (slot = rank among
    the centre's inside edges), ``n_nodes·k`` (dropped) otherwise;
    ``overflow [E]`` marks the edges inside that get none — those beyond the
    ``k``-th of an atom, or every edge inside when the receivers are not sorted.
    """
    ins = inside.astype(jnp.int32)
    count = jax.ops.segment_sum(ins, receivers, num_segments=n_nodes)
    start = jnp.cumsum(count) - count
    slot = jnp.cumsum(ins) - 1 - start[receivers]
    ordered = jnp.all(receivers[1:] >= receivers[:-1])
    keep = inside & (slot < k) & ordered
    return jnp.where(keep, receivers * k + slot, n_nodes * k), inside & ~keep


def mlace_layers(model: Model, params, graph):
    """Per-layer atomic properties and bases of an ml-ACE model (analysis).

    Parameters
    ----------
    model : Model built by :func:`mlace`
    params : its parameter pytree
    graph : GraphsTuple

    Returns
    -------
    props : list of [N, P_n] arrays
        ``φ^{(p,n)}`` of each layer; the indicator of layer n+1 is
        ``tanh(props[n][:, 0])``.
    """
    if not (isinstance(model, Model) and "layer_outputs" in model.extras):
        raise TypeError(f"mlace_layers needs a model built by jaxmlp.models.mlace, got {model!r}")
    return model.extras["layer_outputs"](params, graph)


def basis_sizes(model: Model) -> list:
    """Basis functions per centre element of each layer of an ml-ACE model.

    The invariant products of the layer's atomic base, times the centre's
    ``T_k(θ_i)`` factors in layers ≥ 1 when ``centre_indicator`` is on (the
    rows of the layer's expansion coefficients).
    """
    if not (isinstance(model, Model) and "bases" in model.extras):
        raise TypeError(f"basis_sizes needs a model built by jaxmlp.models.mlace, got {model!r}")
    return list(model.extras["n_functions"])
