"""The product-form triplet path of ACSF (hand-written JVP, radius groups skipped per chunk).

Every check compares it with the generic path (plain autodiff of the direct formulas, forced by
disabling the product form) on the same graph: values, forces, a Hessian-vector product (the
JVP rule differentiated once more), padding, chunking and the triplet filter's shell order.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmlp
from jaxmlp.descriptors import ACSF, angular_narrow, angular_wide, compact_angular, compact_radial, radial

from helpers import random_cell_atoms

RC = 4.2


def _product_functions():
    """Integer ζ, r_s = 0 and one radius for types 3/9; type 22 on three radii (several shells)."""
    fns = []
    for c in ("H", "O"):
        for e in ("H", "O"):
            fns += [radial(c, e, 0.5, RC), compact_radial(c, e, -RC, RC, "p2")]
        for pair in (("H", "H"), ("O", "H"), ("O", "O")):
            fns += [angular_narrow(c, pair, 0.1, 1.0, 2.0, RC), angular_narrow(c, pair, 0.02, -1.0, 1.0, RC),
                    angular_wide(c, pair, 0.05, -1.0, 4.0, RC), angular_wide(c, pair, 0.0, 1.0, 1.0, RC),
                    compact_angular(c, pair, -RC, RC, 0.0, 180.0, "p2"), compact_angular(c, pair, 1.0, 3.1, 60.0, 150.0, "p2a"),
                    compact_angular(c, pair, -2.4, 2.4, -90.0, 90.0, "p2")]
    return fns


@pytest.fixture(scope="module")
def case():
    atoms = random_cell_atoms(12, np.diag([5.1, 4.7, 5.4]) + 0.4 * np.tri(3, k=-1), seed=7, min_dist=0.95, symbols=["O", "H", "H"])
    atoms.rattle(0.05, seed=2)
    acsf = ACSF(["O", "H"], _product_functions(), cutoff_type="cos", cutoff_alpha=0.1, triplet_chunk=97)
    generic = ACSF(["O", "H"], _product_functions(), cutoff_type="cos", cutoff_alpha=0.1, triplet_chunk=97)
    generic._product_terms = lambda: None  # the autodiff path on the same columns
    return atoms, acsf, generic


def _readout(acsf, graph):
    w = jnp.asarray(np.random.default_rng(0).normal(size=acsf.n_max))

    def energy(R):
        G = acsf(graph._replace(nodes={**graph.nodes, "positions": R}))
        return jnp.sum(jnp.tanh(0.3 * G) @ w)
    return energy


def test_product_form_applies_and_has_shells(case):
    _, acsf, _ = case
    assert acsf._product_terms() is not None
    assert len(acsf.triplet_filter().shells) == 3


def test_values_forces_and_hessian_match_the_generic_path(case):
    atoms, acsf, generic = case
    g = jaxmlp.atoms_to_graph(atoms, acsf.cutoff, triplets=True, triplet_filter=acsf.triplet_filter())
    assert len(g.globals["triplets"]) > 3 * acsf.triplet_chunk  # several chunks, some skip radius groups
    G, G0 = np.asarray(acsf(g)), np.asarray(generic(g))
    assert np.abs(G0).max() > 0.1
    np.testing.assert_allclose(G, G0, rtol=1e-12, atol=1e-12)
    R = jnp.asarray(g.nodes["positions"])
    e, e0 = _readout(acsf, g), _readout(generic, g)
    np.testing.assert_allclose(jax.grad(e)(R), jax.grad(e0)(R), rtol=1e-10, atol=1e-11)
    v = jnp.asarray(np.random.default_rng(1).normal(size=R.shape))
    hv = jax.jvp(jax.grad(e), (R,), (v,))[1]
    hv0 = jax.jvp(jax.grad(e0), (R,), (v,))[1]
    assert np.abs(hv0).max() > 1e-3
    np.testing.assert_allclose(hv, hv0, rtol=1e-9, atol=1e-10)
    # reverse over reverse (force-loss training differentiates the forces again)
    hr = jax.grad(lambda R: jnp.vdot(jax.grad(e)(R), v))(R)
    np.testing.assert_allclose(hr, hv0, rtol=1e-9, atol=1e-10)


def test_forces_match_finite_differences(case):
    atoms, acsf, _ = case
    g = jaxmlp.atoms_to_graph(atoms, acsf.cutoff, triplets=True, triplet_filter=acsf.triplet_filter())
    e = jax.jit(_readout(acsf, g))
    R = np.asarray(g.nodes["positions"])
    grad = np.asarray(jax.grad(e)(jnp.asarray(R)))
    h = 1e-5
    for i, x in ((0, 0), (3, 1), (7, 2), (11, 0)):
        d = np.zeros_like(R)
        d[i, x] = h
        fd = (float(e(jnp.asarray(R + d))) - float(e(jnp.asarray(R - d)))) / (2 * h)
        np.testing.assert_allclose(grad[i, x], fd, rtol=1e-6, atol=1e-8)


def test_shell_order_chunking_padding_and_jit_do_not_change_values(case):
    atoms, acsf, _ = case
    tf = acsf.triplet_filter()
    g = jaxmlp.atoms_to_graph(atoms, acsf.cutoff, triplets=True, triplet_filter=tf)
    plain = jaxmlp.atoms_to_graph(atoms, acsf.cutoff, triplets=True, triplet_filter=dataclasses.replace(tf, shells=()))
    t, t0 = np.asarray(g.globals["triplets"]), np.asarray(plain.globals["triplets"])
    assert sorted(map(tuple, t.tolist())) == sorted(map(tuple, t0.tolist())) and not np.array_equal(t, t0)
    ref = np.asarray(acsf(plain))
    np.testing.assert_allclose(np.asarray(acsf(g)), ref, rtol=1e-12, atol=1e-13)
    one_chunk = ACSF(["O", "H"], _product_functions(), cutoff_type="cos", cutoff_alpha=0.1)
    np.testing.assert_allclose(np.asarray(jax.jit(one_chunk)(g)), ref, rtol=1e-12, atol=1e-13)
    b = jaxmlp.batch_graphs([plain, g], jaxmlp.Buckets(n_node=2 * len(atoms) + 5, n_edge=2 * len(g.senders) + 10, n_graph=3,
                                                       n_triplet=2 * len(t) + 50))
    Gb = np.asarray(jax.jit(acsf)(b))
    for k in range(2):
        np.testing.assert_allclose(Gb[k * len(atoms):(k + 1) * len(atoms)], ref, rtol=1e-12, atol=1e-13)


def test_float32_product_path_close_to_float64(case):
    atoms, acsf, _ = case
    g = jaxmlp.atoms_to_graph(atoms, acsf.cutoff, triplets=True, triplet_filter=acsf.triplet_filter())
    g32 = jaxmlp.utils.cast_floats(g, jnp.float32)
    G, G32 = np.asarray(acsf(g)), np.asarray(acsf(g32))
    assert G32.dtype == np.float32
    np.testing.assert_allclose(G32, G, rtol=2e-4, atol=2e-4 * np.abs(G).max())
