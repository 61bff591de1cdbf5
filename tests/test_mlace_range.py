"""ml-ACE range: energies reach L·R_c, Hessian blocks exactly 2·L·R_c.

A zig-zag-free 1-D chain with spacing a just below R_c (a = 1.9 Å, R_c = 2 Å):
only nearest neighbours are inside the cutoff, so information travels one
bond per layer.  Because (2L + 1)·a > 2·L·R_c for the layer counts tested,
every pair within 2·L·R_c is at most 2L bonds apart and must couple, and
every pair beyond must not: the test is tight on both sides.
"""

import jax
import numpy as np
import pytest
from ase import Atoms

import jaxmlp
from jaxmlp.models import mlace

SPACING, RC = 1.9, 2.0


def _chain(n, seed=0):
    rng = np.random.default_rng(seed)
    pos = np.zeros((n, 3))
    pos[:, 0] = SPACING * np.arange(n)
    pos[:, 1:] = 0.04 * rng.normal(size=(n, 2))  # break the line symmetry a little
    pos[:, 0] += 0.02 * rng.normal(size=n)
    return Atoms(["C", "H"] * (n // 2) + ["C"] * (n % 2), positions=pos)


def _model_params(n_layers, atoms):
    model = mlace(["C", "H"], cutoff=RC, n_layers=n_layers, l_max=(0, 2, 1), n_max=(3, 2, 2), k_max=2, n_radial=3)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    p = model.init(jax.random.PRNGKey(n_layers), g)
    p["layers"] = [{**l, "coeffs": 10.0 * l["coeffs"], "bias": l["bias"] + 0.3} for l in p["layers"]]
    return model, p, g


def _distances(atoms):
    d = atoms.positions[:, None, :] - atoms.positions[None, :, :]
    return np.linalg.norm(d, axis=-1)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_per_atom_energy_range(n_layers):
    atoms = _chain(14)
    model, params, g = _model_params(n_layers, atoms)
    assert model.interaction_range == pytest.approx(2 * n_layers * RC)
    def per_atom(R, graph):
        return jaxmlp.per_atom_energies(model, params, graph._replace(nodes={**graph.nodes, "positions": R}))

    jac = jax.jit(jax.jacrev(per_atom))(g.nodes["positions"], g)
    norm = np.linalg.norm(np.asarray(jac), axis=-1)  # [N_i, N_B]
    dist = _distances(atoms)
    far = dist > n_layers * RC
    assert np.all(norm[far] == 0.0), "per-atom energy depends on an atom beyond L·R_c"
    hops = np.abs(np.arange(len(atoms))[:, None] - np.arange(len(atoms))[None, :])
    near = (hops <= n_layers) & (hops > 0)
    assert np.all(norm[near] > 0.0), "per-atom energy misses an atom within L bonds"


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_hessian_blocks_vanish_beyond_2LRc(n_layers):
    atoms = _chain(32, seed=n_layers)
    model, params, g = _model_params(n_layers, atoms)
    H = np.asarray(jaxmlp.hessian(model, params, g, chunk_size=None))
    n = len(atoms)
    blocks = np.linalg.norm(H.reshape(n, 3, n, 3).transpose(0, 2, 1, 3), axis=(2, 3))  # Frobenius ‖h_AB‖
    dist = _distances(atoms)
    outside = dist > model.interaction_range
    inside = dist <= model.interaction_range
    assert outside.any() and inside.any()
    assert np.all(blocks[outside] == 0.0), f"max |h_AB| beyond 2LR_c: {blocks[outside].max()}"
    assert np.all(blocks[inside] > 0.0), "a Hessian block within 2·L·R_c vanishes"
    # the reach grows with the number of layers: the farthest coupled pair is 2L bonds apart
    hops = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    assert hops[blocks > 0].max() == 2 * n_layers
    np.testing.assert_allclose(H, H.T, atol=1e-10 * np.abs(H).max())
