"""Sparse (blocked) Hessians equal the dense Hessian, and exploit locality."""

import dataclasses

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

import jaxmlp

from helpers import random_cell_atoms

LJ = jaxmlp.models.lennard_jones(epsilon=0.2, sigma=2.0, cutoff=4.0)


def _dense(model, params, g):
    return np.asarray(jaxmlp.hessian(model, params, g))


CASES = {
    "molecule": molecule("C6H6"),
    # cell edges 4.2–5 Å < 2·R_c = 8 Å: many images of every atom in range
    "small-cell": random_cell_atoms(9, np.diag([5.0, 4.6, 4.2]), seed=3, min_dist=1.9),
    "triclinic": random_cell_atoms(12, [[6.0, 0, 0], [1.5, 5.5, 0], [0.7, 1.1, 5.2]], seed=5, min_dist=1.9),
    "slab": random_cell_atoms(14, np.diag([7.0, 7.0, 12.0]), pbc=(True, True, False), seed=6, min_dist=1.9),
    "larger-than-range": random_cell_atoms(40, np.diag([18.0, 9.0, 9.0]), seed=8, min_dist=2.0),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("method", ["environment", "colouring"])
def test_sparse_equals_dense_lj(case, method):
    atoms = CASES[case]
    params = LJ.init(None)
    g = jaxmlp.atoms_to_graph(atoms, LJ.cutoff)
    H = _dense(LJ, params, g)
    S = jaxmlp.sparse_hessian(LJ, params, g, method=method, batch_budget=20_000)
    assert S.method == method and S.blocks.shape == (S.n_pairs, 3, 3) and S.pairs.shape == (S.n_pairs, 2)
    assert np.abs(S.to_dense() - H).max() < 1e-10 * max(1.0, np.abs(H).max())
    # every pair with a non-zero dense block is in the pair list
    nz = np.argwhere(jaxmlp.analysis.locality.block_norms(H) > 0)
    keys = set(map(tuple, S.pairs.tolist()))
    assert all(tuple(p) in keys for p in nz.tolist())
    # scipy export agrees
    assert np.abs(S.to_scipy().toarray() - H).max() < 1e-10 * max(1.0, np.abs(H).max())


def test_sparse_is_sparse_and_linear():
    """Periodic Cu: pairs per atom independent of N (only pairs within 2·R_c stored)."""
    params = LJ.init(None)
    per_atom = []
    for n in (5, 6):  # cells > 2·(2·R_c): one image per pair
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (n, n, n)
        S = jaxmlp.sparse_hessian(LJ, params, atoms)
        per_atom.append(S.n_pairs / len(atoms))
        assert S.distances.max() < LJ.interaction_range + 1e-6
        # translational sum rule on the sparse blocks
        rowsum = np.zeros((len(atoms), 3, 3))
        np.add.at(rowsum, S.pairs[:, 0], S.blocks)
        assert np.abs(rowsum).max() < 1e-10
    assert per_atom[0] == pytest.approx(per_atom[1])
    assert per_atom[1] < 0.3 * 4 * 6**3  # far fewer than N pairs per atom


def test_sparse_equals_dense_mlace_two_layers():
    model = jaxmlp.models.mlace([1, 6, 8], cutoff=2.5, n_layers=2, l_max=(0, 1), n_max=(4, 3), correlation_order=2, n_radial=4)
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.02, seed=1)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
    params = model.init(jax.random.PRNGKey(0), g)
    S = jaxmlp.sparse_hessian(model, params, g)
    assert S.method == "colouring"
    H = _dense(model, params, g)
    assert np.abs(S.to_dense() - H).max() < 1e-10 * max(1.0, np.abs(H).max())
    with pytest.raises(ValueError, match="strictly local"):
        jaxmlp.sparse_hessian(model, params, g, method="environment")


@pytest.mark.parametrize("budget", [150_000, 1_000])
def test_sparse_hdnnp_periodic_small_cell(budget):
    from jaxmlp.descriptors import angular_set, radial_grid

    sf = radial_grid(["Cu"], 3.5, 3) + angular_set(["Cu"], 3.5, etas=(0.0,), zetas=(1.0, 2.0))
    model = jaxmlp.models.hdnnp(["Cu"], sf, hidden=(6,))
    atoms = bulk("Cu", "fcc", a=3.61) * (1, 1, 2)
    atoms.rattle(0.05, seed=2)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=True)
    params = model.init(jax.random.PRNGKey(1), g)
    H = _dense(model, params, g)
    # 150,000: several stars per call, all 3K columns at once; 1,000: one star per call, its columns in blocks
    S = jaxmlp.sparse_hessian(model, params, g, batch_budget=budget)
    assert S.method == "environment"
    assert np.abs(S.to_dense() - H).max() < 1e-10 * max(1.0, np.abs(H).max())


def test_sparse_environment_batching_does_not_change_blocks():
    """One star per call with its columns split into blocks == every star in one call (LJ, small periodic cell)."""
    atoms = CASES["small-cell"]
    params = LJ.init(None)
    g = jaxmlp.atoms_to_graph(atoms, LJ.cutoff)
    one_call = jaxmlp.sparse_hessian(LJ, params, g, method="environment", batch_budget=10**9)
    split = jaxmlp.sparse_hessian(LJ, params, g, method="environment", batch_budget=100)
    assert np.array_equal(one_call.pairs, split.pairs)
    assert np.abs(one_call.blocks - split.blocks).max() < 1e-12 * np.abs(one_call.blocks).max()
    assert split.n_hvp > one_call.n_hvp  # one call per star: more (smaller) Hessian-vector products


def test_hessian_pairs_and_block_access():
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [3.0, 0, 0], [20.0, 0, 0]])
    pairs, dist = jaxmlp.hessian_pairs(atoms, 8.0)
    assert pairs.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [2, 2]]
    assert dist.tolist() == [0.0, 3.0, 3.0, 0.0, 0.0]
    S = jaxmlp.sparse_hessian(LJ, LJ.init(None), atoms)
    assert np.array_equal(S.block(0, 2), np.zeros((3, 3)))
    H = S.to_dense()
    assert np.array_equal(S.block(0, 1), H[0:3, 3:6])
    with pytest.raises(ValueError, match="out of range"):
        S.block(0, 3)
    with pytest.raises(ValueError, match="radius"):
        jaxmlp.hessian_pairs(atoms, -1.0)


def test_sparse_hessian_bad_input():
    params = LJ.init(None)
    g = jaxmlp.atoms_to_graph(molecule("H2O"), LJ.cutoff)
    with pytest.raises(ValueError, match="method"):
        jaxmlp.sparse_hessian(LJ, params, g, method="magic")
    batch = jaxmlp.batch_graphs([g, g])
    with pytest.raises(ValueError, match="single unpadded"):
        jaxmlp.sparse_hessian(LJ, params, batch)
    with pytest.raises(TypeError):
        jaxmlp.sparse_hessian(LJ, params, "H2O")
    # a model with a long-range term has no finite Hessian range: refused, never truncated
    nonlocal_lj = dataclasses.replace(LJ, local=False)
    assert nonlocal_lj.interaction_range == float("inf")
    with pytest.raises(ValueError, match="local model"):
        jaxmlp.sparse_hessian(nonlocal_lj, params, g)


@pytest.mark.parametrize("jit", [False, True])
def test_hessian_vector_product_equals_dense(jit):
    """``H @ v`` for one vector ``[3N]`` and a block ``[3N, k]`` against the dense Hessian."""
    model = jaxmlp.models.morse(D=1.0, alpha=1.5, r0=1.3, cutoff=3.0)
    params = model.init(None)
    atoms = molecule("CH3OH")
    atoms.rattle(0.03, seed=1)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    H = _dense(model, params, g)
    hvp = jaxmlp.hessian_vector_product
    if jit:
        hvp = jax.jit(hvp, static_argnums=0)
    rng = np.random.default_rng(0)
    v = rng.normal(size=3 * len(atoms))
    V = rng.normal(size=(3 * len(atoms), 4))
    hv = np.asarray(hvp(model, params, g, v))
    hV = np.asarray(hvp(model, params, g, V))
    assert hv.shape == v.shape and hV.shape == V.shape
    scale = np.abs(H).max()
    assert scale > 1.0
    np.testing.assert_allclose(hv, H @ v, atol=1e-10 * scale)
    np.testing.assert_allclose(hV, H @ V, atol=1e-10 * scale)
    # a unit vector picks one column
    np.testing.assert_allclose(np.asarray(hvp(model, params, g, np.eye(3 * len(atoms))[:, 4])), H[:, 4], atol=1e-10 * scale)
