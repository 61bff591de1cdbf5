"""ACE building blocks: cutoff, radial basis, Chebyshev, Y_lm, invariant products."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import chebyshev as npcheb
from numpy.polynomial import legendre as nplegendre
from scipy.spatial.transform import Rotation

from jaxmlp.descriptors.ace import (
    chebyshev,
    cutoff_function,
    evaluate_products,
    product_basis,
    radial_basis,
    spherical_harmonics,
)


def test_cutoff_function_smooth_and_zero_beyond():
    rc = 4.0
    r = jnp.array([0.0, 1.0, 3.0, 3.999, 4.0, 5.0, 1000.0])
    f = cutoff_function(r, rc)
    np.testing.assert_allclose(f[:3], (1 - (np.array([0.0, 1.0, 3.0]) / rc) ** 2) ** 3, rtol=1e-14)
    assert np.all(np.asarray(f[4:]) == 0.0)
    d1 = jax.vmap(jax.grad(lambda x: cutoff_function(x, rc)))
    d2 = jax.vmap(jax.grad(jax.grad(lambda x: cutoff_function(x, rc))))
    # C2: value, slope and curvature go to zero at R_c and are exactly zero beyond
    assert abs(float(d1(jnp.array([rc - 1e-6]))[0])) < 1e-9
    assert abs(float(d2(jnp.array([rc - 1e-6]))[0])) < 1e-4
    assert np.all(np.asarray(d1(r[4:])) == 0.0) and np.all(np.asarray(d2(r[4:])) == 0.0)


@pytest.mark.parametrize("kind", ["bessel", "chebyshev"])
def test_radial_basis_formula(kind):
    rc, n = 5.0, 6
    r = np.linspace(0.3, 6.0, 40)
    g = np.asarray(radial_basis(jnp.asarray(r), rc, n, kind))
    fc = np.where(r < rc, (1 - (r / rc) ** 2) ** 3, 0.0)
    if kind == "bessel":
        ref = np.sqrt(2 / rc) * np.sin(np.arange(1, n + 1)[None] * np.pi * r[:, None] / rc) / r[:, None]
    else:
        x = np.clip(1 - 2 * r / rc, -1, 1)
        ref = np.stack([npcheb.chebval(x, np.eye(n)[k]) for k in range(n)], axis=1)
    np.testing.assert_allclose(g, ref * fc[:, None], atol=1e-13)
    assert g.shape == (40, n)
    assert np.all(g[r >= rc] == 0.0)


def test_radial_basis_bad_input():
    with pytest.raises(ValueError, match="radial basis kind"):
        radial_basis(jnp.ones(3), 4.0, 3, "gauss")
    with pytest.raises(ValueError, match="n_basis"):
        radial_basis(jnp.ones(3), 4.0, 0)


def test_chebyshev_matches_numpy_and_cosine():
    x = np.linspace(-1, 1, 17)
    T = np.asarray(chebyshev(jnp.asarray(x), 5))
    for k in range(6):
        np.testing.assert_allclose(T[:, k], npcheb.chebval(x, np.eye(6)[k]), atol=1e-13)
    t = np.linspace(0, np.pi, 9)
    np.testing.assert_allclose(np.asarray(chebyshev(jnp.cos(jnp.asarray(t)), 4)), np.cos(np.outer(t, np.arange(5))), atol=1e-13)
    assert chebyshev(jnp.asarray(0.3), 0).shape == (1,)
    with pytest.raises(ValueError, match="k_max"):
        chebyshev(jnp.asarray(0.3), -1)


def test_spherical_harmonics_addition_theorem_and_orthonormality():
    rng = np.random.default_rng(0)
    l_max = 4
    u = rng.normal(size=(30, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = rng.normal(size=(30, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    Yu = np.asarray(spherical_harmonics(jnp.asarray(u), l_max))
    Yv = np.asarray(spherical_harmonics(jnp.asarray(v), l_max))
    assert Yu.shape == (30, (l_max + 1) ** 2)
    cos = np.sum(u * v, axis=1)
    for l in range(l_max + 1):
        sl = slice(l * l, (l + 1) ** 2)
        # component normalisation: Σ_m Y_lm(u) Y_lm(v) = (2l+1) P_l(u·v)
        np.testing.assert_allclose(np.sum(Yu[:, sl] * Yv[:, sl], axis=1), (2 * l + 1) * nplegendre.legval(cos, np.eye(l + 1)[l]), atol=1e-12)
    # orthonormal on the sphere (mean over the sphere of Y_lm Y_l'm' = δ), Gauss–Legendre × uniform grid
    xg, wg = nplegendre.leggauss(12)
    ph = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ct, pp = np.meshgrid(xg, ph, indexing="ij")
    st = np.sqrt(1 - ct**2)
    pts = np.stack([st * np.cos(pp), st * np.sin(pp), ct], -1).reshape(-1, 3)
    w = (wg[:, None] * np.ones_like(ph)[None] / (2 * len(ph))).reshape(-1)
    Y = np.asarray(spherical_harmonics(jnp.asarray(pts), l_max))
    np.testing.assert_allclose((Y * w[:, None]).T @ Y, np.eye(Y.shape[1]), atol=1e-12)


def test_product_basis_counting():
    b = product_basis((2, 2, 2), (0, 1, 1), 3)
    # ν=1: 2 channels; ν=2: l=0 and l=1 pairs (3 each); ν=3: (0,0,0) 4 multisets, (0,1,1) 2·3
    assert b.size == 2 + 6 + 10
    assert len(b.labels()) == b.size
    assert len(set(b.labels())) == b.size
    for order, items, _ in b.labels():
        ls = [l for l, _ in items]
        assert len(items) == order and sum(ls) % 2 == 0
    b4 = product_basis(1, 2, 4)
    assert b4.max_order == 4 and b4.n_channels == 1 and b4.l_max_all == 2
    with pytest.raises(ValueError, match="order"):
        product_basis(2, 2, 5)
    with pytest.raises(ValueError, match="n_max"):
        product_basis((2, 2), 2, 3)
    with pytest.raises(ValueError, match="too small"):
        evaluate_products(jnp.ones((3, 1, 4)), product_basis(2, 1, 2))


def _random_base(vectors, weights, l_max):
    """A_{c,lm} = Σ_j w_cj(r_j) Y_lm(r̂_j) for one atom: [1, C, (l_max+1)²]."""
    r = np.linalg.norm(vectors, axis=1)
    Y = np.asarray(spherical_harmonics(jnp.asarray(vectors / r[:, None]), l_max))
    radial = np.cos(np.outer(r, weights))  # [J, C], any radial dependence
    return jnp.asarray(np.einsum("jc,jm->cm", radial, Y)[None])


@pytest.mark.parametrize("max_order", [3, 4])
def test_products_rotation_and_inversion_invariant(max_order):
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(7, 3)) * 2.0
    w = rng.uniform(0.3, 1.5, size=3)
    b = product_basis(3, (0, 3, 2, 2)[:max_order], max_order)
    B = np.asarray(evaluate_products(_random_base(vecs, w, b.l_max_all), b))
    assert B.shape == (1, b.size)
    assert np.all(np.abs(B) > 1e-10), "an enumerated invariant vanishes identically"
    for seed in range(3):
        Q = Rotation.random(random_state=seed).as_matrix()
        for M in (Q, -Q):  # proper rotation and rotation ∘ inversion
            Bq = np.asarray(evaluate_products(_random_base(vecs @ M.T, w, b.l_max_all), b))
            np.testing.assert_allclose(Bq, B, rtol=1e-10, atol=1e-10)
