"""Fourth-generation HDNNP (Ko et al., Nat. Commun. 12, 398 (2021)): charge equilibration + Ewald.

Per atom ``i`` with scaled symmetry functions ``G̃_i`` (:mod:`jaxmlp.descriptors.acsf`):

1. electronegativity ``χ_i = s_χ · NNχ_{Z_i}(G̃_i)`` (eV/e);
2. charges ``q`` from charge equilibration with Gaussian charges of element
   widths ``σ_Z`` and hardness ``J_Z`` under the total-charge constraint of
   each structure (:func:`jaxmlp.models.electrostatics.qeq_charges`; a
   linear solve inside the jitted function, differentiated implicitly);
3. ``E = Σ_i [s · NN_{Z_i}(G̃_i, q_i) + E0_{Z_i}] + E_elec(q)``: short-range
   networks take the charge as one extra (last, unscaled) input, and
   ``E_elec`` is the (screened) Gaussian-charge electrostatic energy, Ewald
   summed in periodic cells, direct for molecules
   (:func:`jaxmlp.models.electrostatics.coulomb_matrices`).

The model's ``apply`` returns per-atom energies (``E_elec`` split as
``½ q_i [(M + S) q]_i``), so forces, stress and Hessians are the usual
transforms of the energy and go through the Qeq solve. The model is not
local (``Model.local = False``): the charges, hence every force, depend on
all atoms of a structure.

The total charge of a structure is ``graph.globals["charge"]`` ``[G]`` when
the graph has it, else the model's ``total_charge``.

Params: ``{"networks": {symbol: short net, inputs n_SF + 1},
"electronegativity": {symbol: χ net, inputs n_SF}, "hardness": {symbol:
scalar J, eV/e²}}`` (hardness is trained in n2p2's stage 1 too).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from ase.data import atomic_numbers

from ..descriptors.acsf import ACSF, scale_features
from ..graph.ops import node_graph_index
from .base import Model, element_symbol, per_element, register_model
from .electrostatics import COULOMB, EwaldSettings, ScreeningSettings, coulomb_matrices, electrostatic_energies, qeq_charges
from .hdnnp import (
    _MLP,
    N2P2_ACTIVATIONS,
    activation_function,
    element_networks,
    hidden_widths,
    layer_activations,
    refuse_unknown_elements,
    scaling_config,
    scaling_tables,
)

__all__ = ["hdnnp4g"]


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _range3(value, name):
    v = tuple(int(x) for x in value)
    if len(v) != 3 or any(x < 0 for x in v):
        raise ValueError(f"{name} must be 3 non-negative integers, got {value}")
    return v


@register_model("hdnnp4g")
def hdnnp4g(
    elements: Sequence,
    symmetry_functions: Iterable[Mapping],
    hidden: Sequence[int] = (25, 25),
    activation="tanh",
    output_activation: str = "linear",
    hidden_electronegativity: Sequence[int] | None = None,
    activation_electronegativity=None,
    output_activation_electronegativity: str = "linear",
    sigma: Mapping | None = None,
    hardness: Mapping | None = None,
    screening: Mapping | None = None,
    ewald: Mapping | None = None,
    coulomb: float = COULOMB,
    total_charge: float = 0.0,
    image_range: Sequence[int] = (2, 2, 2),
    kspace_range: Sequence[int] = (3, 3, 3),
    cutoff_type="poly2",
    cutoff_alpha: float = 0.0,
    scaling: Mapping | None = None,
    e0: Mapping | None = None,
    energy_scale: float = 1.0,
    electronegativity_scale: float = 1.0,
    normalize_nodes: bool = False,
    triplet_chunk: int | None = None,
) -> Model:
    """4G-HDNNP: electronegativity networks, Qeq, Ewald/direct electrostatics, charge-aware short-range networks.

    Parameters
    ----------
    elements, symmetry_functions, hidden, activation, output_activation, cutoff_type, cutoff_alpha, scaling, e0,
    energy_scale, normalize_nodes, triplet_chunk
        As :func:`jaxmlp.models.hdnnp` (short-range networks; their input
        is the scaled symmetry functions followed by the atom's charge).
    hidden_electronegativity, activation_electronegativity, output_activation_electronegativity
        Electronegativity networks (default: same sizes and activations as
        the short-range ones).
    sigma : dict element → float
        Gaussian charge width per element, Å (default 1 Å).
    hardness : dict element → float
        Initial atomic hardness ``J``, eV/e² (default 10 eV/e²); a
        trainable parameter (``params["hardness"]``).
    screening : dict or None
        ``{"inner": Å, "outer": Å, "core": "c"}`` — n2p2's
        ``screen_electrostatics`` (None: no screening).
    ewald : dict or None
        Keywords of :class:`~jaxmlp.models.electrostatics.EwaldSettings`
        (``method``, ``precision`` eV/Å, ``max_charge`` e, ``r_cut`` Å,
        ``min_eta`` Å, ``estimate_coulomb`` eV·Å). Default: Kolafa–Perram,
        precision 1e-5 eV/Å, max charge 1 e, ``min_eta`` the largest σ.
    coulomb : float
        Coulomb constant e²/(4πε₀), eV·Å.
    total_charge : float
        Charge of each structure (e) when the graph has no ``globals["charge"]``.
    image_range, kspace_range : 3 ints
        Static grids of lattice images and reciprocal vectors (from −n to n
        along each lattice vector); they must reach the Ewald cutoffs of the
        structures (:func:`jaxmlp.models.electrostatics.required_ranges`).
        Too small a grid gives NaN energies under ``jit`` and a
        ``ValueError`` on concrete input.
    electronegativity_scale : float
        Factor applied to the χ network outputs (eV/e per output unit).

    Returns
    -------
    Model
        ``local=False`` (infinite interaction range). ``extras``:
        ``"descriptor"`` (the ACSF), ``"charges"`` (``(params, graph) →
        q [N]``), ``"parts"`` (``(params, graph) → dict`` with ``charges``,
        ``electronegativity``, ``short`` and ``electrostatic`` per-atom
        arrays).

    Raises
    ------
    ValueError
        Bad specifications (as ``hdnnp``), non-positive widths, unknown
        screening core, bad Ewald settings, bad grids; on concrete input
        unknown elements, mixed periodicity (slabs) and too small grids.
    """
    symbols = sorted({element_symbol(e) for e in elements}, key=lambda s: atomic_numbers[s])
    if not symbols:
        raise ValueError("hdnnp4g needs at least one element")
    functions = [dict(f) for f in symmetry_functions]
    acsf = ACSF(symbols, functions, cutoff_type, cutoff_alpha, triplet_chunk)
    missing = [s for s, n in zip(acsf.symbols, acsf.n_functions) if n == 0]
    if missing:
        raise ValueError(f"element(s) {missing} have no symmetry functions centred on them")
    hidden = hidden_widths(hidden, "hidden")
    hidden_chi = hidden if hidden_electronegativity is None else hidden_widths(hidden_electronegativity, "hidden_electronegativity")
    acts = layer_activations(activation, hidden, "activation")
    if activation_electronegativity is None:
        acts_chi = acts if len(hidden_chi) == len(hidden) else layer_activations(acts[0], hidden_chi, "activation_electronegativity")
    else:
        acts_chi = layer_activations(activation_electronegativity, hidden_chi, "activation_electronegativity")
    for a in (output_activation, output_activation_electronegativity):
        activation_function(a)
    out_act = N2P2_ACTIVATIONS.get(output_activation, output_activation)
    out_chi = N2P2_ACTIVATIONS.get(output_activation_electronegativity, output_activation_electronegativity)

    mode, smin, smax, tables = scaling_tables(scaling, acsf)

    sigma_map = per_element(sigma, acsf.symbols, "sigma", 1.0)
    if any(not v > 0 for v in sigma_map.values()):
        raise ValueError(f"Gaussian widths sigma must be positive, got {sigma_map}")
    hardness_map = per_element(hardness, acsf.symbols, "hardness", 10.0)
    screen = None if screening is None else ScreeningSettings(**dict(screening))
    ew_kw = dict(ewald or {})
    ew_kw.setdefault("min_eta", max(sigma_map.values()))
    ew = EwaldSettings(**ew_kw)
    coulomb = float(coulomb)
    if not coulomb > 0:
        raise ValueError(f"coulomb must be positive, got {coulomb}")
    image_range = _range3(image_range, "image_range")
    kspace_range = _range3(kspace_range, "kspace_range")
    e0_map = per_element(e0, acsf.symbols, "e0")
    e0_arr = np.array([e0_map[s] for s in acsf.symbols])
    sigma_arr = np.array([sigma_map[s] for s in acsf.symbols])
    energy_scale, chi_scale, total_charge = float(energy_scale), float(electronegativity_scale), float(total_charge)

    nets = {s: _MLP(hidden + (1,), acts + (out_act,), bool(normalize_nodes)) for s in acsf.symbols}
    nets_chi = {s: _MLP(hidden_chi + (1,), acts_chi + (out_chi,), bool(normalize_nodes)) for s in acsf.symbols}

    def _check(graph):
        refuse_unknown_elements(graph, acsf, "hdnnp4g")
        pbc = graph.globals["pbc"]
        if _is_concrete(pbc):
            p = np.asarray(pbc, bool)
            gm = np.asarray(graph.globals["mask"], bool)
            mixed = gm & p.any(-1) & ~p.all(-1)
            if mixed.any():
                raise ValueError("hdnnp4g electrostatics supports fully periodic cells and molecules, "
                                 f"not mixed boundary conditions (pbc {p[mixed][0].tolist()})")
            return bool((p.all(-1) & gm).any())
        return True

    def parts(params, graph):
        any_periodic = _check(graph)
        G = acsf(graph)
        sp = acsf.species(graph.nodes["numbers"])
        if tables is not None:
            G = scale_features(G, sp, tables, mode, smin, smax)
        dtype = G.dtype
        mask = jnp.asarray(graph.nodes["mask"])
        gi = node_graph_index(graph)
        chi = chi_scale * element_networks(nets_chi, params["electronegativity"], G, sp, acsf)
        J = jnp.stack([jnp.asarray(params["hardness"][s], dtype).reshape(()) for s in acsf.symbols])[sp]
        sig = jnp.where(mask, jnp.asarray(sigma_arr, dtype)[sp], 1.0)
        pbc = jnp.asarray(graph.globals["pbc"])
        periodic = jnp.all(pbc, -1)
        M, S, covered = coulomb_matrices(graph.nodes["positions"], gi, mask, graph.globals["cell"], periodic, sig,
                                         coulomb=coulomb, ewald=ew, screening=screen, image_range=image_range,
                                         kspace_range=kspace_range, any_periodic=any_periodic)
        covered = covered & ~(jnp.any(pbc, -1) & ~periodic)
        if _is_concrete(covered):
            bad = ~np.asarray(covered) & np.asarray(graph.globals["mask"], bool)
            if bad.any():
                raise ValueError(
                    f"image_range {image_range} / kspace_range {kspace_range} do not reach the Ewald cutoffs of "
                    f"structure(s) {np.flatnonzero(bad).tolist()}; use "
                    "jaxmlp.models.electrostatics.required_ranges(cell, n_atoms, EwaldSettings(...)) and larger ranges"
                )
        n_graph = graph.n_node.shape[0]
        Q = graph.globals.get("charge") if isinstance(graph.globals, Mapping) else None
        Q = jnp.full(n_graph, total_charge, dtype) if Q is None else jnp.asarray(Q, dtype).reshape(n_graph)
        q, _ = qeq_charges(M, J, chi, gi, mask, Q)
        n_sf = {s: nf for s, nf in zip(acsf.symbols, acsf.n_functions)}
        X = {s: jnp.concatenate([G[:, : n_sf[s]], q[:, None]], axis=1) for s in acsf.symbols}
        short = energy_scale * element_networks(nets, params["networks"], X, sp, acsf) + jnp.asarray(e0_arr, dtype)[sp]
        elec = electrostatic_energies(q, M, S)
        nan = jnp.asarray(jnp.nan, dtype)
        ok = covered[gi]
        return {"charges": jnp.where(ok, q, nan), "electronegativity": chi,
                "short": jnp.where(ok, short, nan), "electrostatic": jnp.where(ok, elec, nan)}

    def init(key, graph=None):
        dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
        keys = jax.random.split(key, 2 * len(acsf.symbols))
        short, chi = {}, {}
        for k, (s, nf) in enumerate(zip(acsf.symbols, acsf.n_functions)):
            short[s] = _MLP(hidden + (1,), acts + (out_act,), bool(normalize_nodes), dtype).init(
                keys[2 * k], jnp.zeros((1, nf + 1), dtype))["params"]
            chi[s] = _MLP(hidden_chi + (1,), acts_chi + (out_chi,), bool(normalize_nodes), dtype).init(
                keys[2 * k + 1], jnp.zeros((1, nf), dtype))["params"]
        return {"networks": short, "electronegativity": chi,
                "hardness": {s: jnp.asarray(hardness_map[s], dtype) for s in acsf.symbols}}

    def apply(params, graph):
        p = parts(params, graph)
        return p["short"] + p["electrostatic"]

    def charges(params, graph):
        return parts(params, graph)["charges"]

    config = dict(
        elements=list(acsf.symbols),
        symmetry_functions=[f for s in acsf.symbols for f in acsf.functions[s]],
        hidden=list(hidden),
        activation=list(acts),
        output_activation=out_act,
        hidden_electronegativity=list(hidden_chi),
        activation_electronegativity=list(acts_chi),
        output_activation_electronegativity=out_chi,
        sigma=sigma_map,
        hardness=hardness_map,
        screening=None if screen is None else screen.to_dict(),
        ewald=ew.to_dict(),
        coulomb=coulomb,
        total_charge=total_charge,
        image_range=list(image_range),
        kspace_range=list(kspace_range),
        cutoff_type=acsf.cutoff_type,
        cutoff_alpha=acsf.cutoff_alpha,
        scaling=None if scaling is None else scaling_config(mode, smin, smax, tables, acsf),
        e0=e0_map,
        energy_scale=energy_scale,
        electronegativity_scale=chi_scale,
        normalize_nodes=bool(normalize_nodes),
        triplet_chunk=acsf.triplet_chunk,
    )
    return Model("hdnnp4g", config, float(acsf.cutoff), init, apply, needs_triplets=acsf.needs_triplets,
                 elements=tuple(acsf.numbers), n_layers=1, local=False,
                 extras={"descriptor": acsf, "charges": charges, "parts": parts})
