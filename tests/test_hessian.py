"""Dense analytic Hessians: finite differences of forces, symmetry, sum rules, float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk, molecule

import jaxmlp

from helpers import random_cell_atoms


def _fd_of_forces(model, params, atoms, h=1e-4):
    """−∂F/∂R by 4th-order central differences of the analytic forces, [3N, 3N]."""
    # a skin beyond the cutoff keeps every pair a displacement can bring inside (those edges are inert)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff + 0.5, triplets=model.needs_triplets)
    fj = jax.jit(lambda x, g: jaxmlp.forces(model, params, g._replace(nodes={**g.nodes, "positions": x})))

    def f(x):
        return fj(x, g)

    R = np.asarray(atoms.positions, float)
    n3 = R.size
    H = np.zeros((n3, n3))
    for c in range(n3):
        cols = []
        for s in (-2, -1, 1, 2):
            x = R.copy().reshape(-1)
            x[c] += s * h
            cols.append(-np.asarray(f(x.reshape(R.shape))).reshape(-1))
        H[:, c] = (cols[0] - 8 * cols[1] + 8 * cols[2] - cols[3]) / (12 * h)
    return H


@pytest.mark.parametrize(
    "model,atoms",
    [
        (jaxmlp.models.lennard_jones(epsilon=0.2, sigma=2.0, cutoff=4.5), random_cell_atoms(10, np.eye(3) * 5.0, seed=4, min_dist=2.0)),
        (jaxmlp.models.morse(D=0.5, alpha=1.3, r0=2.5, cutoff=5.0), bulk("Cu", "fcc", a=3.61) * (2, 1, 1)),
        (jaxmlp.models.morse(D=1.0, alpha=1.5, r0=1.3, cutoff=3.0), molecule("C2H6")),
    ],
    ids=["lj-periodic", "morse-small-cell", "morse-molecule"],
)
def test_dense_hessian_matches_fd_of_forces(model, atoms):
    atoms = atoms.copy()
    atoms.rattle(0.03, seed=7)
    params = model.init(None)
    H = np.asarray(jaxmlp.hessian(model, params, jaxmlp.atoms_to_graph(atoms, model.cutoff), chunk_size=7))
    H_fd = _fd_of_forces(model, params, atoms)
    scale = np.abs(H).max()
    assert np.abs(H - H_fd).max() < 1e-6 * scale
    # symmetric and translation sum rule Σ_B h_AB = 0 (rows of each Cartesian component)
    assert np.abs(H - H.T).max() < 1e-10 * scale
    n = len(atoms)
    rowsum = H.reshape(3 * n, n, 3).sum(axis=1)
    assert np.abs(rowsum).max() < 1e-10 * scale


def _hdnnp():
    from test_hdnnp import _make

    _, model, params = _make()
    return model, params, ["Cu", "O"]


def _mlace_2_layers():
    model = jaxmlp.models.mlace(["Cu", "Ag"], cutoff=3.5, n_layers=2, l_max=(0, 2, 1), n_max=(3, 2, 2), k_max=2, n_radial=4)
    atoms = random_cell_atoms(5, np.eye(3) * 4.0, pbc=False, seed=8, min_dist=2.0, symbols=["Cu", "Ag"])
    params = model.init(jax.random.PRNGKey(2), jaxmlp.atoms_to_graph(atoms, model.cutoff))
    params["layers"] = [{**l, "coeffs": 10.0 * l["coeffs"]} for l in params["layers"]]  # indicators that vary
    return model, params, ["Cu", "Ag"]


@pytest.mark.parametrize("name", ["hdnnp", "mlace-2-layers"])
def test_learned_model_hessian_matches_fd_of_forces(name):
    """Values, not only sparse-vs-dense: the dense autodiff Hessian of HDNNP (with
    angular triplets) and 2-layer ml-ACE against central differences of the forces,
    on a small skewed cell where several images of each atom lie inside the cutoff."""
    model, params, symbols = {"hdnnp": _hdnnp, "mlace-2-layers": _mlace_2_layers}[name]()
    atoms = random_cell_atoms(4, np.array([[4.2, 0.0, 0.0], [1.3, 4.0, 0.0], [1.1, -0.9, 4.3]]), seed=8, min_dist=1.6, symbols=symbols)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
    H = np.asarray(jaxmlp.hessian(model, params, g, chunk_size=None))
    H_fd = _fd_of_forces(model, params, atoms)
    scale = np.abs(H).max()
    assert scale > 1e-2  # a non-trivial Hessian
    assert np.abs(H - H_fd).max() < 1e-6 * scale
    assert np.abs(H - H.T).max() < 1e-10 * scale


def test_rotational_sum_rule_molecule():
    """Rotation invariance: H (ω × R) = −ω × F for every geometry of a free molecule."""
    model = jaxmlp.models.morse(D=1.0, alpha=1.5, r0=1.3, cutoff=3.0)
    params = model.init(None)
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    H = np.asarray(jaxmlp.hessian(model, params, g))
    F = np.asarray(jaxmlp.forces(model, params, g))
    assert np.abs(F).max() > 0.1  # a non-trivial check
    for axis in np.eye(3):
        v = np.cross(axis, atoms.positions).reshape(-1)
        assert np.allclose(H @ v, -np.cross(axis, F).reshape(-1), atol=1e-9)


def test_float32_hessian_close_to_float64():
    model = jaxmlp.models.lennard_jones(epsilon=0.2, sigma=2.0, cutoff=4.5)
    atoms = random_cell_atoms(8, np.eye(3) * 5.0, seed=2, min_dist=2.0)
    g64 = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    H64 = np.asarray(jaxmlp.hessian(model, model.init(None), g64))
    g32 = g64._replace(nodes={**g64.nodes, "positions": np.asarray(g64.nodes["positions"], np.float32)},
                       globals={**g64.globals, "cell": np.asarray(g64.globals["cell"], np.float32)})
    p32 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), model.init(None))
    H32 = jaxmlp.hessian(model, p32, g32)
    assert H32.dtype == jnp.float32
    S32 = jaxmlp.sparse_hessian(model, p32, g32)
    assert S32.blocks.dtype == np.float32
    scale = np.abs(H64).max()
    assert np.abs(np.asarray(H32, float) - H64).max() < 1e-4 * scale
    assert np.abs(S32.to_dense().astype(float) - H64).max() < 1e-4 * scale


def test_hessian_is_the_dense_function():
    """``jaxmlp.hessian`` is the dense Hessian; the sparse/FD module is ``jaxmlp.hessians``."""
    import jaxmlp.hessians

    model = jaxmlp.models.lennard_jones(cutoff=3.0)
    g = jaxmlp.atoms_to_graph(molecule("H2O"), 3.0)
    params = model.init(None)
    a = np.asarray(jaxmlp.hessian(model, params, g))
    assert callable(jaxmlp.hessian) and a.shape == (9, 9)
    np.testing.assert_allclose(jaxmlp.hessians.sparse_hessian(model, params, g).to_dense(), a, atol=1e-12)
