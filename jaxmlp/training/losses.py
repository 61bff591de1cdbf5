"""Loss functions: pure functions of ``(model, params, batch)``.

Every loss derives predictions from :mod:`jaxmlp.observables` (never from
model internals), masks padding (``graph.globals["mask"]``,
``graph.nodes["mask"]``) and weights real structures by ``batch.weight``.
A ``batch`` is a :class:`jaxmlp.data.Batch` (or any object / dict with the
fields ``graph``, ``energy [G]`` eV, ``forces [N, 3]`` eV/Å, ``stress
[G, 6]`` eV/Å³ and ``weight [G]``).

Per structure ``g`` with ``N_g`` atoms and residual penalty ρ (MSE: x²,
MAE: |x|, Huber):

* energy: ``ρ(ΔE_g / N_g)`` (per-atom normalised),
* direct force: ``(1−κ)·ρ(ΔE_g/N_g) + κ·(1/3N_g) Σ_{i∈g,α} ρ(ΔF_iα)`` —
  the DESIGN's ``(1−κ)·ΔE²/N² + κ·|ΔF|²`` with the force term averaged per
  component so that both terms are intensive,
* stress: ``(1/6) Σ_k ρ(Δσ_gk)`` (periodic structures with
  ``batch.stress_mask`` True only).

The loss of a batch is ``Σ_g w_g ℓ_g / Σ_g w_g``.  :func:`loss_sums` returns
numerator and denominator separately: the multi-device training step sums
both over devices before dividing, so structures are weighted correctly
however they are spread over devices and padding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import observables
from ..graph.ops import node_graph_index

__all__ = [
    "penalty",
    "loss_sums",
    "loss",
    "energy_loss",
    "force_loss",
    "stress_loss",
]


def _field(batch, name):
    if isinstance(batch, dict):
        return batch[name]
    return getattr(batch, name)


def penalty(x: jax.Array, variant: str = "mse", huber_delta: float = 0.1) -> jax.Array:
    """Element-wise residual penalty ρ(x) (same shape as ``x``).

    ``"mse"``: x²; ``"mae"``: |x|; ``"huber"``: x² for |x| ≤ d and
    ``2d|x| − d²`` beyond (twice the textbook Huber function, so that it
    equals the MSE for small residuals; C¹ at |x| = d).
    """
    if variant == "mse":
        return x * x
    if variant == "mae":
        return jnp.abs(x)
    if variant == "huber":
        ax = jnp.abs(x)
        return jnp.where(ax <= huber_delta, x * x, 2.0 * huber_delta * ax - huber_delta**2)
    raise ValueError(f"unknown loss variant {variant!r}; choose 'mse', 'mae' or 'huber'")


def _stress_labelled(batch):
    """``[G]`` bool: structures with a stress label (``batch.stress_mask`` when present)."""
    try:
        return jnp.asarray(_field(batch, "stress_mask"), bool)
    except (KeyError, AttributeError):
        return jnp.ones(_field(batch, "graph").n_node.shape[0], bool)


def _structure_weights(batch):
    graph = _field(batch, "graph")
    w = jnp.asarray(_field(batch, "weight"))
    return jnp.where(graph.globals["mask"], w, 0.0)


def _atoms_per_structure(graph):
    n = jax.ops.segment_sum(
        graph.nodes["mask"].astype(jnp.int32), node_graph_index(graph), num_segments=graph.n_node.shape[0]
    )
    return jnp.maximum(n, 1)


def loss_sums(
    model,
    params,
    batch,
    kind: str = "forces",
    kappa: float = 0.5,
    variant: str = "mse",
    huber_delta: float = 0.1,
    stress_weight: float = 0.0,
) -> tuple[jax.Array, jax.Array, dict]:
    """Weighted loss numerator, weight sum and per-batch diagnostics.

    Parameters
    ----------
    model, params
        A :class:`jaxmlp.models.Model` and its parameters.
    batch
        Padded batch (see module docstring).
    kind : {"energy", "forces", "taylor"}
        ``"taylor"`` is the energy loss (the Taylor data are energies).
    kappa : float
        Force weight κ of the direct force loss.
    variant, huber_delta
        Residual penalty, see :func:`penalty`.
    stress_weight : float
        Adds ``stress_weight · (1/6) Σ_k ρ(Δσ_k)`` for periodic structures.

    Returns
    -------
    numerator : scalar
        ``Σ_g w_g ℓ_g``.
    weight : scalar
        ``Σ_g w_g`` over real structures.
    aux : dict
        Sums of squared errors for monitoring: ``"se_energy_per_atom"``
        (eV/atom)², ``"n_structures"``, and for ``kind="forces"`` also
        ``"se_forces"`` (eV/Å)² and ``"n_force_components"``.
    """
    if kind not in ("energy", "forces", "taylor"):
        raise ValueError(f"unknown loss {kind!r}; choose 'energy', 'forces' or 'taylor'")
    graph = _field(batch, "graph")
    w = _structure_weights(batch)
    real = graph.globals["mask"]
    n_atoms = _atoms_per_structure(graph).astype(w.dtype)
    want_forces = kind == "forces" and kappa > 0
    want_stress = stress_weight > 0
    if want_stress:
        e_pred, f_pred, s_pred = observables.energy_forces_stress(model, params, graph)
    elif want_forces:
        e_pred, f_pred = observables.energy_and_forces(model, params, graph)
    else:
        e_pred = observables.energy(model, params, graph)
    e_ref = jnp.asarray(_field(batch, "energy"), e_pred.dtype)
    de = jnp.where(real, (e_pred - e_ref) / n_atoms, 0.0)
    per_structure = penalty(de, variant, huber_delta)
    aux = {"se_energy_per_atom": jnp.sum(jnp.where(w > 0, de * de, 0.0)), "n_structures": jnp.sum(w > 0)}
    if want_forces:
        node_real = graph.nodes["mask"]
        f_ref = jnp.asarray(_field(batch, "forces"), f_pred.dtype)
        df = jnp.where(node_real[:, None], f_pred - f_ref, 0.0)
        per_atom = jnp.sum(penalty(df, variant, huber_delta), axis=1)
        per_graph = jax.ops.segment_sum(per_atom, node_graph_index(graph), num_segments=graph.n_node.shape[0])
        per_structure = (1.0 - kappa) * per_structure + kappa * per_graph / (3.0 * n_atoms)
        node_w = (w > 0)[node_graph_index(graph)] & node_real
        aux["se_forces"] = jnp.sum(jnp.where(node_w[:, None], df * df, 0.0))
        aux["n_force_components"] = 3 * jnp.sum(node_w)
    if want_stress:
        s_ref = jnp.asarray(_field(batch, "stress"), s_pred.dtype)
        periodic = real & _stress_labelled(batch) & jnp.all(jnp.isfinite(s_pred), axis=1)
        ds = jnp.where(periodic[:, None], jnp.nan_to_num(s_pred) - s_ref, 0.0)
        per_structure = per_structure + stress_weight * jnp.mean(penalty(ds, variant, huber_delta), axis=1)
    num = jnp.sum(w * jnp.where(real, per_structure, 0.0))
    return num, jnp.sum(w), aux


def loss(model, params, batch, kind: str = "forces", **kwargs) -> jax.Array:
    """Weighted mean loss of one batch, scalar (see :func:`loss_sums`)."""
    num, den, _ = loss_sums(model, params, batch, kind=kind, **kwargs)
    return num / jnp.maximum(den, 1e-30)


def energy_loss(model, params, batch, variant: str = "mse", huber_delta: float = 0.1) -> jax.Array:
    """Per-atom normalised energy loss ``Σ_g w_g ρ(ΔE_g/N_g) / Σ_g w_g``, (eV/atom)² for MSE."""
    return loss(model, params, batch, kind="energy", variant=variant, huber_delta=huber_delta)


def force_loss(
    model, params, batch, kappa: float = 0.5, variant: str = "mse", huber_delta: float = 0.1
) -> jax.Array:
    """Direct force loss ``(1−κ)·ρ(ΔE/N) + κ·mean_components ρ(ΔF)``, weighted mean over structures."""
    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"kappa must lie in [0, 1], got {kappa}")
    return loss(model, params, batch, kind="forces", kappa=kappa, variant=variant, huber_delta=huber_delta)


def stress_loss(model, params, batch, variant: str = "mse", huber_delta: float = 0.1) -> jax.Array:
    """Stress loss ``mean_k ρ(Δσ_k)`` over periodic structures, (eV/Å³)² for MSE.

    Non-periodic structures contribute nothing (their stress is undefined).
    """
    graph = _field(batch, "graph")
    w = _structure_weights(batch)
    _, _, s_pred = observables.energy_forces_stress(model, params, graph)
    periodic = graph.globals["mask"] & _stress_labelled(batch) & jnp.all(jnp.isfinite(s_pred), axis=1)
    s_ref = jnp.asarray(_field(batch, "stress"), s_pred.dtype)
    ds = jnp.where(periodic[:, None], jnp.nan_to_num(s_pred) - s_ref, 0.0)
    wp = jnp.where(periodic, w, 0.0)
    return jnp.sum(wp * jnp.mean(penalty(ds, variant, huber_delta), axis=1)) / jnp.maximum(jnp.sum(wp), 1e-30)
