"""Factorised wide angular ACSF (n2p2 type 9, integer ζ): per-edge harmonics instead of triplets.

``2^(1−ζ) Σ_{j<k} (1 + λ cos θ_ijk)^ζ w(r_ij) w(r_ik)`` with ``(1 + λ c)^ζ = Σ_l a_l P_l(c)`` and the
addition theorem becomes a sum over neighbours of ``w Y_lm``.  Every check compares it with the
triplet path of the same functions (``factorise_wide=False``) on the same graph: values, forces,
stress, a Hessian-vector product, both layouts, padding, jit, float32, FD forces, an atom with one
neighbour (the ``j = k`` term), and the precision bound for ``ζ = 16, λ = −1``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from test_acsf_product import _readout  # the same smooth read-out of the functions

import jaxmlp
from jaxmlp.descriptors import ACSF, angular_narrow, angular_wide, radial
from jaxmlp.descriptors.acsf import _addition_harmonics, _harmonic_degrees, _legendre_coefficients
from jaxmlp.models import hdnnp

from helpers import random_cell_atoms

ELEMENTS = ["O", "H"]
EPS = np.finfo(np.float64).eps


def _functions():
    """Wide functions on every element pair: λ = ±1, ζ ∈ {1, 2, 6, 16}, r_s ≠ 0, two cutoffs; plus a
    radial, a narrow (stays on the triplet path) and a non-integer-ζ wide function (also stays)."""
    fns = []
    for c in ("H", "O"):
        for e in ("H", "O"):
            fns.append(radial(c, e, 0.5, 4.2))
        for pair in (("H", "H"), ("O", "H"), ("O", "O")):
            for lam in (-1.0, 1.0):
                for zeta in (1, 2, 6, 16):
                    fns.append(angular_wide(c, pair, 0.05, lam, zeta, 4.2, rs=0.4 if zeta != 2 else 0.0))
            fns.append(angular_wide(c, pair, 0.0, 1.0, 3.0, 3.1))
            fns.append(angular_wide(c, pair, 0.2, 0.5, 2.0, 3.6, rs=1.1))
            fns.append(angular_wide(c, pair, 0.02, 1.0, 2.5, 4.2))  # non-integer ζ: triplet path
            fns.append(angular_narrow(c, pair, 0.1, -1.0, 2.0, 4.2))
    return fns


def _small_functions():
    """Fewer columns (faster to compile) for the derivative checks: both pair kinds, ζ = 16 with
    λ = −1 and r_s ≠ 0, ζ = 2, ζ = 6 with |λ| < 1 on a second cutoff, one narrow function."""
    fns = []
    for c in ("H", "O"):
        fns.append(radial(c, "O", 0.5, 4.2))
        for pair in (("H", "H"), ("O", "H")):
            fns += [angular_wide(c, pair, 0.05, -1.0, 16, 4.2, rs=0.4), angular_wide(c, pair, 0.0, 1.0, 2, 4.2),
                    angular_wide(c, pair, 0.2, 0.5, 6, 3.6, rs=1.1), angular_narrow(c, pair, 0.1, -1.0, 2.0, 4.2)]
    return fns


@pytest.fixture(scope="module")
def atoms():
    a = random_cell_atoms(12, np.diag([5.1, 4.7, 5.4]) + 0.4 * np.tri(3, k=-1), seed=7, min_dist=0.95, symbols=["O", "H", "H"])
    a.rattle(0.05, seed=2)
    return a


def _pair(cutoff_type="cos", alpha=0.1, small=False, **kw):
    fns = _small_functions() if small else _functions()
    return (ACSF(ELEMENTS, fns, cutoff_type=cutoff_type, cutoff_alpha=alpha, factorise_wide=True, **kw),
            ACSF(ELEMENTS, fns, cutoff_type=cutoff_type, cutoff_alpha=alpha, factorise_wide=False, **kw))


def _graph(atoms, acsf):
    return jaxmlp.atoms_to_graph(atoms, acsf.cutoff, triplets=True)


def _close(G, G0, rel=1e-12):
    """``|G − G0| ≤ rel (|G0| + scale)``, scale = the larger of the column's and the atom's largest value:
    the factorised error is relative to the function's scale ``(Σ_j w_j)²``, not to each value."""
    G, G0 = np.asarray(G), np.asarray(G0)
    scale = np.maximum(np.abs(G0).max(axis=0, keepdims=True), np.abs(G0).max(axis=1, keepdims=True))
    bad = np.abs(G - G0) > rel * (np.abs(G0) + scale)
    assert not bad.any(), np.max(np.abs(G - G0) / (np.abs(G0) + scale + 1e-300))




def test_legendre_coefficients_and_addition_theorem():
    c = np.linspace(-1.0, 1.0, 41)
    for lam in (-1.0, 1.0, 0.5):
        for zeta in (1, 2, 6, 16):
            a = _legendre_coefficients(lam, zeta)
            np.testing.assert_allclose(np.polynomial.legendre.legval(c, a), (1 + lam * c) ** zeta, rtol=1e-13, atol=1e-13 * 2 ** zeta)
    u = np.random.default_rng(3).normal(size=(2, 50, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    Ya, Yb = (np.asarray(_addition_harmonics(*(jnp.asarray(v[:, i]) for i in range(3)), 16)) for v in u)
    dot = np.sum(u[0] * u[1], axis=-1)
    deg = _harmonic_degrees(16)
    for l in range(17):
        assert np.sum(deg == l) == 2 * l + 1
        Pl = np.polynomial.legendre.legval(dot, np.eye(17)[l])
        np.testing.assert_allclose(np.sum(Ya[deg == l] * Yb[deg == l], axis=0), Pl, atol=1e-13)


def test_which_functions_are_factorised_and_the_triplet_filter():
    acsf, tri = _pair()
    # per element pair: 8 + 2 factorised columns; the non-integer-ζ wide and the narrow one on triplets
    assert acsf._uw == 10 and acsf._ua == 2 and tri._uw == 0 and tri._ua == 12
    assert acsf.needs_triplets and tri.needs_triplets
    tf, tf0 = acsf.triplet_filter(), tri.triplet_filter()
    assert np.all(np.isinf(tf.rc_jk)) and np.all(np.isinf(tf0.rc_jk))  # a wide function is still on the triplet path
    only = [f for f in _functions() if not (f["type"] == 9 and f["zeta"] == 2.5)]
    a = ACSF(ELEMENTS, only, factorise_wide=True)
    assert np.all(np.asarray(a.triplet_filter().rc_jk) == 4.2)  # only the narrow functions' r_jk bound is left
    assert np.all(np.isinf(ACSF(ELEMENTS, only, factorise_wide=False).triplet_filter().rc_jk))
    wide = ACSF(ELEMENTS, [f for f in only if f["type"] != 3], factorise_wide=True)
    assert not wide.needs_triplets and wide.triplet_filter() is None
    assert acsf.config()["factorise_wide"] is True and ACSF(**tri.config()).factorise_wide is False
    # "auto" (the default, kept out of configs) factorises only when the largest ζ is at most 8
    auto_hi, auto_lo = ACSF(ELEMENTS, only), ACSF(ELEMENTS, [f for f in only if f["type"] != 9 or f["zeta"] <= 8])
    assert "factorise_wide" not in auto_hi.config() and max(f["zeta"] for f in only if f["type"] == 9) > 8
    assert not auto_hi.factorise_wide and auto_hi._uw == 0
    assert auto_lo.factorise_wide and auto_lo._uw > 0 and ACSF(**auto_lo.config()).factorise_wide
    with pytest.raises(TypeError, match="factorise_wide"):
        ACSF(ELEMENTS, only, factorise_wide="yes")


def test_values_forces_hessian_vector_product_and_fd_match_the_triplet_path(atoms):
    acsf, tri = _pair(small=True)
    g = _graph(atoms, acsf)
    G, G0 = jax.jit(acsf)(g), jax.jit(tri)(g)
    assert np.abs(np.asarray(G0)).max() > 0.1
    _close(G, G0)
    R = jnp.asarray(g.nodes["positions"])
    e, e0 = jax.jit(_readout(acsf, g)), _readout(tri, g)
    f, f0 = jax.jit(jax.grad(e))(R), jax.jit(jax.grad(e0))(R)
    np.testing.assert_allclose(f, f0, rtol=1e-10, atol=1e-11 * np.abs(f0).max())
    v = jnp.asarray(np.random.default_rng(1).normal(size=R.shape))
    hv = jax.jit(lambda R: jax.jvp(jax.grad(e), (R,), (v,))[1])(R)
    hv0 = jax.jit(lambda R: jax.jvp(jax.grad(e0), (R,), (v,))[1])(R)
    assert np.abs(hv0).max() > 1e-3
    np.testing.assert_allclose(hv, hv0, rtol=1e-9, atol=1e-10 * np.abs(hv0).max())
    Rn = np.asarray(R)
    h = 1e-5
    for i, x in ((0, 0), (4, 1), (9, 2)):
        d = np.zeros_like(Rn)
        d[i, x] = h
        fd = (float(e(jnp.asarray(Rn + d))) - float(e(jnp.asarray(Rn - d)))) / (2 * h)
        np.testing.assert_allclose(f[i, x], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cutoff_type, alpha", [("cos", 0.1), ("poly2", 0.0), ("tanhu", 0.0), ("exp", 0.2)])
def test_values_match_for_all_zetas_and_cutoff_types(atoms, cutoff_type, alpha):
    acsf, tri = _pair(cutoff_type, alpha)
    g = _graph(atoms, acsf)
    _close(jax.jit(acsf)(g), jax.jit(tri)(g))


@pytest.mark.slow
def test_hdnnp_energy_forces_and_stress_match(atoms):
    kw = dict(hidden=(6,), activation="tanh", cutoff_type="cos", cutoff_alpha=0.1)
    m = hdnnp(ELEMENTS, _small_functions(), factorise_wide=True, **kw)
    m0 = hdnnp(ELEMENTS, _small_functions(), factorise_wide=False, **kw)
    assert m.config["factorise_wide"] is True and m0.config["factorise_wide"] is False
    assert "factorise_wide" not in hdnnp(ELEMENTS, _small_functions(), **kw).config
    params = m.init(jax.random.PRNGKey(0))
    g = jaxmlp.atoms_to_graph(atoms, m.cutoff, triplets=True, triplet_filter=m.extras["triplet_filter"])
    g0 = jaxmlp.atoms_to_graph(atoms, m0.cutoff, triplets=True, triplet_filter=m0.extras["triplet_filter"])
    e, f, s = jax.jit(lambda p, g: jaxmlp.energy_forces_stress(m, p, g))(params, g)
    e0, f0, s0 = jax.jit(lambda p, g: jaxmlp.energy_forces_stress(m0, p, g))(params, g0)
    np.testing.assert_allclose(e, e0, rtol=1e-12)
    np.testing.assert_allclose(f, f0, rtol=1e-10, atol=1e-11 * np.abs(f0).max())
    np.testing.assert_allclose(s, s0, rtol=1e-10, atol=1e-11 * np.abs(s0).max())


def test_dense_layout_padding_batches_and_chunks(atoms):
    only_wide = [f for f in _small_functions() if f["type"] == 9]
    kw = dict(cutoff_type="cos", cutoff_alpha=0.1)
    ref_model = ACSF(ELEMENTS, only_wide, factorise_wide=False, **kw)
    g = _graph(atoms, ref_model)
    ref = np.asarray(jax.jit(ref_model)(g))
    k = jaxmlp.graph.max_degree([atoms], ref_model.cutoff)
    bare = jaxmlp.atoms_to_graph(atoms, ref_model.cutoff, triplets=False)
    edge, dense = ACSF(ELEMENTS, only_wide, factorise_wide=True, **kw), ACSF(ELEMENTS, only_wide, max_neighbors=k, factorise_wide=True, **kw)
    assert not edge.needs_triplets and not dense.needs_triplets
    _close(jax.jit(dense)(bare), ref)  # no triplet list at all
    small = ACSF(ELEMENTS, only_wide, max_neighbors=3, factorise_wide=True, **kw)  # overflow: the edge layout, which needs no triplets either
    _close(jax.jit(small)(bare), ref)
    b = jaxmlp.batch_graphs([bare, bare], jaxmlp.Buckets(n_node=2 * len(atoms) + 5, n_edge=2 * len(bare.senders) + 10,
                                                         n_graph=3, n_triplet=0))
    chunked, chunked_dense = (ACSF(ELEMENTS, only_wide, factorise_wide=True, **kw),
                              ACSF(ELEMENTS, only_wide, max_neighbors=k, factorise_wide=True, **kw))
    chunked._WIDE_BUDGET_EDGES = 3000  # several edge chunks (scan) / atom blocks (map), with padding
    chunked_dense._WIDE_BUDGET_DENSE = 20000
    for fn in (chunked, chunked_dense):
        Gb = np.asarray(jax.jit(fn)(b))
        assert np.all(np.isfinite(Gb)) and np.all(Gb[2 * len(atoms):] == 0.0)
        for i in range(2):
            _close(Gb[i * len(atoms):(i + 1) * len(atoms)], ref)


@pytest.mark.slow
def test_float32(atoms):
    acsf, tri = _pair(small=True)
    g = _graph(atoms, acsf)
    G0 = np.asarray(jax.jit(tri)(g))
    g32 = jaxmlp.utils.cast_floats(g, jnp.float32)
    for a in (acsf, ACSF(ELEMENTS, _small_functions(), cutoff_type="cos", cutoff_alpha=0.1, factorise_wide=True,
                         max_neighbors=jaxmlp.graph.max_degree([atoms], acsf.cutoff))):
        G32 = np.asarray(jax.jit(a)(g32))
        assert G32.dtype == np.float32
        _close(G32, G0, rel=2e-5)


def test_one_neighbour_and_isolated_atoms():
    """An H with one neighbour (O) has no pair: its angular values are the ``j = k`` term subtracted exactly."""
    atoms = Atoms("HOHH", positions=[[0, 0, 0], [0.97, 0, 0], [0.97 + 0.95 * np.cos(1.2), 0.95 * np.sin(1.2), 0], [10, 10, 10]])
    fns = [radial(c, e, 0.5, 1.5) for c in ELEMENTS for e in ELEMENTS] + [
        angular_wide(c, p, 0.05, lam, z, 1.5, rs=0.3) for c in ELEMENTS for p in (("H", "H"), ("H", "O"), ("O", "O"))
        for lam in (-1.0, 1.0) for z in (1, 2, 6, 16)]
    a, a0 = ACSF(ELEMENTS, fns, factorise_wide=True), ACSF(ELEMENTS, fns, factorise_wide=False)
    g = jaxmlp.atoms_to_graph(atoms, a.cutoff, triplets=True)
    G, G0 = np.asarray(jax.jit(a)(g)), np.asarray(jax.jit(a0)(g))
    _close(G, G0)
    ang = [i for i, f in enumerate(a.functions["H"]) if f["type"] == 9]
    assert np.abs(G0[1, [i for i, f in enumerate(a.functions["O"]) if f["type"] == 9]]).max() > 0.01  # O sees both H
    assert np.all(G0[[0, 2, 3]][:, ang] == 0.0)
    assert np.abs(G[[0, 2, 3]][:, ang]).max() <= 4 * EPS


def test_precision_zeta16_lambda_minus_one(atoms):
    """``ζ = 16, λ = −1``: the Legendre terms alternate; the error stays ≲ 10 eps · 2 (Σ_j w_j)² (the scale)."""
    fns = [angular_wide("O", p, 0.0, -1.0, 16, 4.2) for p in (("H", "H"), ("O", "H"))] + [
        angular_wide("H", p, 0.0, -1.0, 16, 4.2) for p in (("H", "H"), ("O", "H"))]
    a, a0 = ACSF(ELEMENTS, fns, factorise_wide=True), ACSF(ELEMENTS, fns, factorise_wide=False)
    g = _graph(atoms, a)
    G, G0 = np.asarray(jax.jit(a)(g)), np.asarray(jax.jit(a0)(g))
    # scale per atom: 2 (Σ_j w_j)² over all neighbours (w = f_c)
    r = np.linalg.norm(np.asarray(jaxmlp.graph.ops.edge_vectors(g)), axis=1)
    w = np.asarray(a._fc(jnp.asarray(r), 4.2))
    sw = np.bincount(np.asarray(g.receivers), weights=w, minlength=len(atoms))
    err = np.abs(G - G0)[:, :2].max(axis=1)
    assert np.all(err <= 10 * EPS * 2 * sw ** 2), (err / (2 * EPS * sw ** 2)).max()
    assert np.abs(G0).max() > 1e-3
