"""ACE building blocks: cutoff, radial basis, Chebyshev, Y_lm, invariant products."""

import itertools

import e3nn_jax as e3nn
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
    nu4_couplings,
    product_basis,
    radial_basis,
    spherical_harmonics,
    spherical_harmonics_e3nn,
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


@pytest.mark.parametrize("kind,n", [("bessel", 6), ("bessel", 16), ("chebyshev", 6)])
def test_radial_basis_formula(kind, n):
    rc = 5.0
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
    if kind == "bessel":  # the sine recurrence differentiates like the closed form
        k = np.arange(1, n + 1)[None]
        x = r[:, None]
        d_ref = np.sqrt(2 / rc) * (k * np.pi / rc * np.cos(k * np.pi * x / rc) / x - np.sin(k * np.pi * x / rc) / x**2)
        dfc = np.where(r < rc, -6 * r / rc**2 * (1 - (r / rc) ** 2) ** 2, 0.0)[:, None]
        d_ref = d_ref * fc[:, None] + ref * dfc
        d = np.asarray(jax.jacfwd(lambda t: radial_basis(t, rc, n, kind))(jnp.asarray(r)))
        np.testing.assert_allclose(np.einsum("ini->in", d), d_ref, atol=1e-12)


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


def test_spherical_harmonics_polynomials_equal_e3nn():
    """The explicit polynomials give e3nn-jax's harmonics and their derivatives (l ≤ 6), also under jit."""
    rng = np.random.default_rng(11)
    u = rng.normal(size=(50, 3))
    u = jnp.asarray(u / np.linalg.norm(u, axis=1, keepdims=True))
    l_max = 6
    np.testing.assert_allclose(np.asarray(jax.jit(spherical_harmonics, static_argnums=1)(u, l_max)),
                               np.asarray(spherical_harmonics_e3nn(u, l_max)), rtol=0, atol=1e-13)
    w = jnp.asarray(rng.normal(size=(l_max + 1) ** 2))
    grad = lambda f: jax.vmap(jax.grad(lambda v: jnp.dot(f(v, l_max), w)))(u)  # noqa: E731
    np.testing.assert_allclose(np.asarray(grad(spherical_harmonics)), np.asarray(grad(spherical_harmonics_e3nn)),
                               rtol=0, atol=1e-12)
    assert spherical_harmonics(u[:3], 0).shape == (3, 1)


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
        legendre = nplegendre.legval(cos, np.eye(l + 1)[l])
        np.testing.assert_allclose(np.sum(Yu[:, sl] * Yv[:, sl], axis=1), (2 * l + 1) * legendre, atol=1e-12)
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
    assert b4.correlation_order == 4 and b4.n_channels == 1 and b4.l_max_all == 2
    with pytest.raises(ValueError, match="correlation_order"):
        product_basis(2, 2, 5)
    with pytest.raises(ValueError, match="correlation_order"):
        product_basis(2, 2, True)
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


@pytest.mark.parametrize("order", [3, 4])
def test_products_rotation_and_inversion_invariant(order):
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(7, 3)) * 2.0
    w = rng.uniform(0.3, 1.5, size=3)
    b = product_basis(3, (0, 3, 2, 2)[:order], order)
    if order == 4:  # the odd-L couplings are in the basis and checked too
        assert any(g.order == 4 and (sum(g.ls[:2]) + g.L) % 2 for g in b.groups)
    B = np.asarray(evaluate_products(_random_base(vecs, w, b.l_max_all), b))
    assert B.shape == (1, b.size)
    assert np.all(np.abs(B) > 1e-10), "an enumerated invariant vanishes identically"
    for seed in range(3):
        Q = Rotation.random(random_state=seed).as_matrix()
        for M in (Q, -Q):  # proper rotation and rotation ∘ inversion
            Bq = np.asarray(evaluate_products(_random_base(vecs @ M.T, w, b.l_max_all), b))
            np.testing.assert_allclose(Bq, B, rtol=1e-10, atol=1e-10)


def test_deprecated_order_keywords_warn_and_agree():
    ref = product_basis(2, 1, 3).labels()
    for kw in ("max_order", "max_body_order"):
        with pytest.warns(DeprecationWarning, match="correlation_order"):
            assert product_basis(2, 1, **{kw: 3}).labels() == ref
    with pytest.warns(DeprecationWarning, match="correlation_order"):
        assert product_basis(2, 1, 3).max_order == 3


# --------------------------------------------------------------------------
# completeness: counts from group characters, rank over random environments,
# and the span of invariants built independently (Wigner D null space)


def _o3_invariant_count(n_channels, l_max, order, ls=None, improper=True, n_grid=720):
    """Invariants of degree ``order`` in ``W = ⊕_l n_channels · V_l`` (V_l of parity (−1)^l) under O(3).

    ``l`` runs over ``0..l_max`` (or over ``ls`` when given). The dimension of
    the invariant subspace of ``Sym^order(W)`` is the Haar average of its
    character. The character of ``Sym^ν`` comes from the power sums
    ``p_k(g) = χ_W(g^k)`` by ``h_ν = (1/ν) Σ_k p_k h_{ν−k}``; ``χ_l`` of a rotation
    by θ is ``Σ_m e^{imθ}``; the improper element ``−R`` has ``χ_l(−R) = (−1)^l χ_l(R)``
    (``improper=False``: SO(3) only). SO(3) class functions integrate as
    ``(1/2π) ∫_0^{2π} f(θ) (1 − cos θ) dθ`` (a trigonometric polynomial: the
    uniform grid is exact).
    """
    ls = range(l_max + 1) if ls is None else ls
    theta = 2 * np.pi * np.arange(n_grid) / n_grid
    weight = (1 - np.cos(theta)) / n_grid

    def chi_l(l, t):
        return 1 + 2 * sum(np.cos(m * t) for m in range(1, l + 1))

    total = 0.0
    for sign in ((False, True) if improper else (False,)):
        p = [None] + [
            n_channels * sum(((-1) ** (l * k) if sign else 1) * chi_l(l, k * theta) for l in ls) for k in range(1, order + 1)
        ]
        h = [np.ones_like(theta)]
        for nu in range(1, order + 1):
            h.append(sum(p[k] * h[nu - k] for k in range(1, nu + 1)) / nu)
        total += np.sum(weight * h[order]) / (2 if improper else 1)
    count = int(round(total))
    assert abs(total - count) < 1e-8
    return count


def test_character_count_known_values():
    # textbook invariant theory the counting must reproduce
    assert _o3_invariant_count(4, None, 2, ls=[1]) == 10  # a_i·a_j of four vectors
    assert _o3_invariant_count(2, None, 4, ls=[1]) == 6  # degree-2 monomials in a², b², a·b
    assert _o3_invariant_count(3, None, 3, ls=[1]) == 0  # det(a, b, c) is a pseudo-scalar ...
    assert _o3_invariant_count(3, None, 3, ls=[1], improper=False) == 1  # ... invariant under SO(3) only
    assert [_o3_invariant_count(1, None, k, ls=[2]) for k in (2, 3, 4)] == [1, 1, 1]  # tr Q², tr Q³, (tr Q²)²
    assert _o3_invariant_count(4, 1, 2) == 20  # plus the 10 products of four scalars


def _random_environments(n_env, n_channels, l_max, n_neigh=12, seed=0):
    """Atomic bases of random environments: ``A_{c,lm} = Σ_j w_{jc} Y_lm(r̂_j)``, ``[n_env, C, (l_max+1)²]``."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n_env, n_neigh, 3))
    Y = np.asarray(spherical_harmonics(jnp.asarray(v / np.linalg.norm(v, axis=-1, keepdims=True)), l_max))
    w = rng.normal(size=(n_env, n_neigh, n_channels))  # any radial dependence, one value per neighbour and channel
    return np.einsum("ejc,ejm->ecm", w, Y)


def _numerical_rank(X):
    """Rank of the column space, columns scaled to unit norm; identically vanishing columns count 0."""
    norms = np.linalg.norm(X, axis=0)
    X = X[:, norms > 1e-10 * norms.max()] / norms[norms > 1e-10 * norms.max()]
    s = np.linalg.svd(X, compute_uv=False)
    return int(np.sum(s > 1e-9 * s[0]))


_evaluate = jax.jit(evaluate_products, static_argnums=1)  # one compile instead of one per einsum


def _order_block(basis, B, order):
    sizes = [(g.order, g.size) for g in basis.groups]
    mask = np.concatenate([np.full(size, o == order) for o, size in sizes])
    return B[:, mask]


@pytest.mark.parametrize("n_channels,l_max,expected", [(3, 2, 300), (4, 2, 841), (2, 3, None)])
def test_nu4_block_complete_and_independent(n_channels, l_max, expected):
    """Old rule: 318 functions of rank 291 (n=3) and 850 of rank 802 (n=4); the true counts are 300 and 841."""
    count = _o3_invariant_count(n_channels, l_max, 4)
    if expected is not None:
        assert count == expected
    b = product_basis(n_channels, l_max, 4)
    A = _random_environments(int(1.3 * count) + 40, n_channels, l_max, seed=n_channels)
    X = _order_block(b, np.asarray(_evaluate(jnp.asarray(A), b)), 4)
    assert X.shape[1] == count, "ν = 4 block size differs from the O(3) character count"
    assert _numerical_rank(X) == count, "ν = 4 functions are linearly dependent"


@pytest.mark.parametrize("n_channels,l_max", [(1, 6), (2, 5), (3, 3)])
def test_nu4_size_matches_characters_at_higher_l(n_channels, l_max):
    # size only (the rank tests above cover evaluation): the greedy selection keeps the true count at larger l too
    b = product_basis(n_channels, l_max, 4)
    assert sum(g.size for g in b.groups if g.order == 4) == _o3_invariant_count(n_channels, l_max, 4)


def test_default_preset_nu_le_3_complete():
    n_max, l_max = (8, 6, 4), (0, 3, 2)
    b = product_basis(n_max, l_max, 3)
    counts = [_o3_invariant_count(n, l, k) for k, (n, l) in enumerate(zip(n_max, l_max), 1)]  # degree k in A
    assert b.size == sum(counts) == 252
    A = _random_environments(400, max(n_max), max(l_max), seed=7)
    assert _numerical_rank(np.asarray(_evaluate(jnp.asarray(A), b))) == 252


def test_nu4_couplings_four_vectors():
    # four distinct l = 1 factors: L = 0, 1, 2, and the L = 1 one is (a × b)·(c × d) up to a constant
    assert nu4_couplings((1, 1, 1, 1)) == (0, 1, 2)
    assert nu4_couplings((1, 1, 1, 1), (0, 0, 0, 0)) == (0,)  # (a·a)²
    assert nu4_couplings((1, 1, 1, 1), (0, 0, 2, 2)) == (0, 2)  # (a·a)(b·b), (a·b)²
    assert nu4_couplings((1, 1, 1, 1), (0, 1, 1, 1)) == (0,)  # (a·b)(b·b)
    assert nu4_couplings((2, 2, 2, 2), (0, 0, 0, 0)) == (0,)  # (tr Q²)²; tr Q⁴ = ½ (tr Q²)² for 3×3
    assert nu4_couplings((0, 1, 1, 2)) == (1,)  # a scalar, two vectors and Q: the one L = 1 coupling
    with pytest.raises(ValueError, match="even"):
        nu4_couplings((1, 1, 1, 2))
    with pytest.raises(ValueError, match="pattern"):
        nu4_couplings((1, 1, 2, 2), (0, 0, 0, 0))
    b = product_basis(4, (0, 1, 1, 1), 4)
    (g,) = [g for g in b.groups if g.order == 4 and g.ls == (1, 1, 1, 1) and g.L == 1]
    row = [k for k, c in enumerate(g.channels.tolist()) if c == [0, 1, 2, 3]]
    assert len(row) == 1
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(20, 4, 3))  # e3nn's l = 1 is (x, y, z) up to the component normalisation √3
    A = np.zeros((20, 4, 4))
    A[:, :, 1:] = vecs
    B = np.asarray(evaluate_products(jnp.asarray(A), b))
    offset = sum(h.size for h in b.groups[: b.groups.index(g)])
    val = B[:, offset + row[0]]
    a, bb, c, d = (vecs[:, k] for k in range(4))
    cross = np.sum(np.cross(a, bb) * np.cross(c, d), axis=1)
    ratio = val / cross
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-10)
    assert abs(ratio[0]) > 1e-3


def _wigner_ds(M, l_max):
    """``[D_0(M), …, D_lmax(M)]`` in e3nn's real basis, fitted from ``Y_l(M u) = D_l(M) Y_l(u)`` (no Clebsch–Gordan tables)."""
    rng = np.random.default_rng(11)
    u = rng.normal(size=(40, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    Yu = np.asarray(spherical_harmonics(jnp.asarray(u), l_max))
    Ymu = np.asarray(spherical_harmonics(jnp.asarray(u @ M.T), l_max))
    out = []
    for l in range(l_max + 1):
        sl = slice(l * l, (l + 1) ** 2)
        Dt, *_ = np.linalg.lstsq(Yu[:, sl], Ymu[:, sl], rcond=None)
        out.append(Dt.T)
    return out


def _invariant_tensors(ls, group_ds):
    """All T in V_l1 ⊗ … ⊗ V_l4 with (D ⊗ D ⊗ D ⊗ D) T = T for each element: rows [K, Π(2l+1)]."""
    gram = 0.0
    for ds in group_ds:
        Dk = np.ones((1, 1))
        for l in ls:
            Dk = np.kron(Dk, ds[l])
        R = Dk - np.eye(Dk.shape[0])
        gram = gram + R.T @ R
    evals, evecs = np.linalg.eigh(gram)
    return evecs[:, evals < 1e-9].T


def test_nu4_span_equals_independent_invariants():
    """Every ν = 4 invariant built from Wigner D matrices alone lies in the basis' span, and vice versa."""
    n_channels, l_max = 2, 2
    Q1 = Rotation.random(random_state=1).as_matrix()
    Q2 = Rotation.random(random_state=2).as_matrix()
    group = [_wigner_ds(M, l_max) for M in (Q1, -Q2)]  # a proper and an improper element: dense in O(3)
    A = _random_environments(260, n_channels, l_max, seed=5)
    items = [(l, c) for l in range(l_max + 1) for c in range(n_channels)]
    ref_cols, tensors = [], {}
    for combo in itertools.combinations_with_replacement(items, 4):
        ls = tuple(l for l, _ in combo)
        if ls not in tensors:
            tensors[ls] = _invariant_tensors(ls, group)
        for T in tensors[ls]:
            T = T.reshape([2 * l + 1 for l in ls])
            f = [A[:, c, l * l : (l + 1) ** 2] for l, c in combo]
            col = np.einsum("abcd,ea,eb,ec,ed->e", T, *f)
            scale = np.linalg.norm(np.prod([np.linalg.norm(x, axis=1) for x in f], axis=0))  # |T| = 1
            if np.linalg.norm(col) > 1e-9 * scale:  # T's symmetrisation over equal factors may vanish
                ref_cols.append(col)
    assert all(len(tensors[ls]) == 0 for ls in tensors if sum(ls) % 2), "odd Σl has no O(3) invariant"
    ref = np.stack(ref_cols, axis=1)
    b = product_basis(n_channels, l_max, 4)
    X = _order_block(b, np.asarray(_evaluate(jnp.asarray(A), b)), 4)
    count = _o3_invariant_count(n_channels, l_max, 4)
    assert _numerical_rank(ref) == count  # the independent construction agrees with the characters
    assert X.shape[1] == count and _numerical_rank(X) == count
    assert _numerical_rank(np.concatenate([X, ref], axis=1)) == count  # same space


def test_nu4_values_match_brute_force_loops():
    """Each ν = 4 function, from explicit loops over neighbours and Clebsch–Gordan indices."""
    rng = np.random.default_rng(9)
    n_channels, l_max, n_neigh = 2, 2, 5
    vecs = rng.normal(size=(n_neigh, 3))
    w = rng.normal(size=(n_neigh, n_channels))
    b = product_basis(n_channels, l_max, 4)
    Yj = np.asarray(spherical_harmonics(jnp.asarray(vecs / np.linalg.norm(vecs, axis=1, keepdims=True)), l_max))
    A = np.zeros((n_channels, (l_max + 1) ** 2))
    for j in range(n_neigh):
        for c in range(n_channels):
            for lm in range((l_max + 1) ** 2):
                A[c, lm] += w[j, c] * Yj[j][lm]
    B = np.asarray(_evaluate(jnp.asarray(A[None]), b))[0]
    seen = 0
    for k, (order, items, L) in enumerate(b.labels()):
        if order != 4:
            continue
        (l1, c1), (l2, c2), (l3, c3), (l4, c4) = items
        C12 = np.asarray(e3nn.clebsch_gordan(l1, l2, L))
        C34 = np.asarray(e3nn.clebsch_gordan(l3, l4, L))
        tot = 0.0
        for M in range(2 * L + 1):
            x = y = 0.0
            for m1 in range(2 * l1 + 1):
                for m2 in range(2 * l2 + 1):
                    x += C12[m1, m2, M] * A[c1, l1 * l1 + m1] * A[c2, l2 * l2 + m2]
            for m3 in range(2 * l3 + 1):
                for m4 in range(2 * l4 + 1):
                    y += C34[m3, m4, M] * A[c3, l3 * l3 + m3] * A[c4, l4 * l4 + m4]
            tot += x * y
        np.testing.assert_allclose(B[k], tot, rtol=1e-10, atol=1e-12)
        seen += 1
    assert seen == _o3_invariant_count(n_channels, l_max, 4)
