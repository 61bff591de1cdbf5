"""Energies, forces, stress, Hessians: one place, every model.

All functions take ``(model, params, graph)`` and are pure and jittable
(``model`` is static: ``jax.jit(jaxmlp.energy, static_argnums=0)``).  Shapes:

* ``energy`` → ``[G]`` eV (padding graphs give 0),
* ``forces`` → ``[N, 3]`` eV/Å, ``F = −∂E/∂R`` (padding atoms give 0),
* ``stress`` → ``[G, 6]`` eV/Å³, Voigt ``xx yy zz yz xz xy``, ASE's sign
  ``σ = (1/V) ∂E/∂ε`` (NaN for graphs without a 3-D periodic cell),
* ``hessian`` → ``[3N, 3N]`` eV/Å², atom-major (index ``3·A + α``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import jraph

from .graph.ops import node_graph_index, sum_per_graph

__all__ = [
    "per_atom_energies",
    "energy",
    "energy_and_forces",
    "forces",
    "stress",
    "energy_forces_stress",
    "hessian",
    "hessian_vector_product",
]


def _with_positions(graph: jraph.GraphsTuple, positions) -> jraph.GraphsTuple:
    return graph._replace(nodes={**graph.nodes, "positions": positions})


def per_atom_energies(model, params, graph: jraph.GraphsTuple) -> jax.Array:
    """Per-atom energies ``[N]`` eV with padding atoms exactly zero."""
    e = model.apply(params, graph)
    return jnp.where(graph.nodes["mask"], e, 0.0)


def energy(model, params, graph: jraph.GraphsTuple) -> jax.Array:
    """Total energy of each graph, ``[G]`` eV."""
    return sum_per_graph(model.apply(params, graph), graph)


def _total_energy(positions, model, params, graph):
    e = energy(model, params, _with_positions(graph, positions))
    return jnp.sum(e), e


def energy_and_forces(model, params, graph: jraph.GraphsTuple) -> tuple[jax.Array, jax.Array]:
    """``(energy [G] eV, forces [N, 3] eV/Å)`` with ``F = −∂E/∂R``."""
    grad, e = jax.grad(_total_energy, has_aux=True)(graph.nodes["positions"], model, params, graph)
    return e, -grad


def forces(model, params, graph: jraph.GraphsTuple) -> jax.Array:
    """Forces ``[N, 3]`` eV/Å."""
    return energy_and_forces(model, params, graph)[1]


def _strained_energy(strain, positions, model, params, graph):
    """Energy with every graph g homogeneously deformed by ``I + strain[g]``."""
    deform = jnp.eye(3, dtype=positions.dtype) + strain
    pos = jnp.einsum("ni,nij->nj", positions, deform[node_graph_index(graph)])
    cell = jnp.einsum("gij,gjk->gik", graph.globals["cell"].astype(positions.dtype), deform)
    g = graph._replace(nodes={**graph.nodes, "positions": pos}, globals={**graph.globals, "cell": cell})
    ea = per_atom_energies(model, params, g)
    e = sum_per_graph(ea, g)
    return jnp.sum(e), (e, ea)


def _voigt(s):
    return jnp.stack([s[:, 0, 0], s[:, 1, 1], s[:, 2, 2], s[:, 1, 2], s[:, 0, 2], s[:, 0, 1]], axis=1)


def energy_forces_stress(model, params, graph: jraph.GraphsTuple, per_atom: bool = False):
    """``(energy [G], forces [N, 3], stress [G, 6])`` in one forward and one backward pass.

    With ``per_atom=True`` returns ``(energy [G], per-atom energies [N], forces
    [N, 3], stress [G, 6])`` from the same pass (padding atoms give 0).
    """
    R = graph.nodes["positions"]
    G = graph.n_node.shape[0]
    strain = jnp.zeros((G, 3, 3), R.dtype)
    (g_strain, g_pos), (e, ea) = jax.grad(_strained_energy, argnums=(0, 1), has_aux=True)(strain, R, model, params, graph)
    cell = graph.globals["cell"].astype(R.dtype)
    volume = jnp.abs(jnp.linalg.det(cell))
    periodic = jnp.all(graph.globals["pbc"], axis=1) & (volume > 0)
    sym = 0.5 * (g_strain + jnp.swapaxes(g_strain, 1, 2))
    sigma = sym / jnp.where(periodic, volume, 1.0)[:, None, None]
    sigma = jnp.where(periodic[:, None, None], sigma, jnp.nan)
    if per_atom:
        return e, ea, -g_pos, _voigt(sigma)
    return e, -g_pos, _voigt(sigma)


def stress(model, params, graph: jraph.GraphsTuple) -> jax.Array:
    """Stress ``[G, 6]`` eV/Å³ (Voigt, ASE sign); NaN for non-periodic graphs."""
    return energy_forces_stress(model, params, graph)[2]


def _flat_grad(model, params, graph):
    R = graph.nodes["positions"]

    def g(x):
        grad, _ = jax.grad(_total_energy, has_aux=True)(x.reshape(R.shape), model, params, graph)
        return grad.reshape(-1)

    return g, R.reshape(-1)


def hessian_vector_product(model, params, graph: jraph.GraphsTuple, v: jax.Array) -> jax.Array:
    """``H @ v`` for ``v`` of shape ``[3N]`` or ``[3N, k]`` (forward-over-reverse)."""
    g, x = _flat_grad(model, params, graph)
    if v.ndim == 1:
        return jax.jvp(g, (x,), (v.astype(x.dtype),))[1]
    return jax.vmap(lambda col: jax.jvp(g, (x,), (col,))[1], in_axes=1, out_axes=1)(v.astype(x.dtype))


@partial(jax.jit, static_argnums=(0, 3))
def _hessian_columns(model, params, graph, chunk, start):
    g, x = _flat_grad(model, params, graph)
    n = x.shape[0]
    idx = start + jnp.arange(chunk)
    basis = (jnp.arange(n)[:, None] == idx[None, :]).astype(x.dtype)
    return jax.vmap(lambda col: jax.jvp(g, (x,), (col,))[1], in_axes=1, out_axes=1)(basis)


def hessian(model, params, graph: jraph.GraphsTuple, chunk_size: int | None = 96) -> jax.Array:
    """Dense Hessian of the total energy, ``[3N, 3N]`` eV/Å², atom-major.

    Built from Hessian-vector products (forward-over-reverse), ``chunk_size``
    directions at a time, so memory stays at about ``chunk_size`` gradient
    evaluations instead of ``3N`` (``jax.hessian`` pushes all 3N at once).
    ``chunk_size=None`` computes all columns in one pass.  For several
    graphs in one batch the result is block diagonal.
    """
    R = graph.nodes["positions"]
    n = R.size
    if chunk_size is None or chunk_size >= n:
        return _hessian_columns(model, params, graph, n, 0)
    cols = []
    for start in range(0, n, chunk_size):
        k = min(chunk_size, n - start)
        # fixed chunk length so one compilation serves every chunk
        block = _hessian_columns(model, params, graph, chunk_size, min(start, n - chunk_size))
        offset = start - min(start, n - chunk_size)
        cols.append(block[:, offset : offset + k])
    return jnp.concatenate(cols, axis=1)
