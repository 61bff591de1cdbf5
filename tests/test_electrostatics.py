"""Gaussian-charge electrostatics: Ewald sum vs lattice sums and molecules, Qeq constraint, n2p2's truncation choice."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp.models.electrostatics import (
    COULOMB,
    EwaldSettings,
    ScreeningSettings,
    coulomb_matrices,
    electrostatic_energies,
    ewald_parameters,
    qeq_charges,
    required_ranges,
)

MADELUNG_NACL = 1.747564594633182  # rock salt, per ion pair, in units of k_e/r0


@partial(jax.jit, static_argnames=("periodic", "ewald", "screening", "img", "ks"))
def _energy_jit(pos, cell, q, sigma, periodic, ewald, screening, img, ks):
    n = len(pos)
    M, S, ok = coulomb_matrices(pos, jnp.zeros(n, int), jnp.ones(n, bool), cell[None], jnp.array([periodic]),
                                jnp.full(n, sigma), ewald=ewald, screening=screening, image_range=img, kspace_range=ks,
                                any_periodic=periodic)
    return jnp.sum(electrostatic_energies(q, M, S)), ok[0]


def _energy(pos, cell, q, sigma, periodic=True, ewald=None, screening=None):
    """E_elec (eV) of fixed charges q in one structure, grids from :func:`required_ranges`."""
    ewald = ewald or EwaldSettings(precision=1e-10, max_charge=1.0)
    img, ks = required_ranges(cell, len(pos), ewald) if periodic else ((0, 0, 0), (0, 0, 0))
    e, ok = _energy_jit(jnp.asarray(pos, float), jnp.asarray(cell, float), jnp.asarray(q, float), float(sigma),
                        periodic, ewald, screening, img, ks)
    assert bool(ok)
    return float(e)


def _rock_salt(a=5.64):
    base = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    pos = np.concatenate([base, base + [0.5, 0, 0]]) * a
    q = np.array([1.0] * 4 + [-1.0] * 4)
    return pos, np.eye(3) * a, q


def test_ewald_reproduces_the_madelung_constant_of_rock_salt():
    """Point-like Gaussians (σ = 0.01 Å) on the NaCl lattice: E = −4·M·k_e/r0 per conventional cell."""
    pos, cell, q = _rock_salt()
    e = _energy(pos, cell, q, 0.01)
    ref = -4 * MADELUNG_NACL * COULOMB / (5.64 / 2)
    assert abs(e - ref) <= 1e-9 * abs(ref)


def test_ewald_does_not_depend_on_the_splitting_width():
    rng = np.random.default_rng(0)
    cell = np.array([[6.0, 0.3, 0.0], [0.0, 5.5, 0.4], [0.2, 0.0, 7.0]])
    pos = rng.uniform(0, 5, (6, 3))
    q = rng.normal(size=6)
    q -= q.mean()
    e1 = _energy(pos, cell, q, 0.8, ewald=EwaldSettings(precision=1e-10, max_charge=2.0))
    e2 = _energy(pos, cell, q, 0.8, ewald=EwaldSettings(precision=1e-10, max_charge=2.0, min_eta=4.0))
    e3 = _energy(pos, cell, q, 0.8, ewald=EwaldSettings(method="jackson_catlow", precision=1e-12))
    assert abs(e1 - e2) <= 1e-8 * abs(e1)
    assert abs(e1 - e3) <= 1e-8 * abs(e1)


def test_ewald_agrees_with_a_direct_lattice_sum():
    """Neutral, dipole-free cell: Ewald = Σ over whole image cells in growing spheres of the Gaussian pair energies."""
    cell = np.eye(3) * 4.0
    pos = np.array([[0.5, 0.5, 0.5], [1.5, 0.5, 0.5], [2.5, 0.5, 0.5], [0.5, 1.0, 2.5], [0.5, 3.0, 2.5], [0.5, 2.0, 2.5]])
    q = np.array([-0.5, 1.0, -0.5, -0.3, -0.3, 0.6])  # each triplet is symmetric: no dipole
    assert abs(q.sum()) < 1e-14 and np.abs(q @ pos).max() < 1e-12
    sigma = 0.7
    e_ewald = _energy(pos, cell, q, sigma)
    gam = math.sqrt(2 * 2 * sigma**2)
    r = np.arange(-14, 15)
    n = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    n = n[np.linalg.norm(n, axis=1) <= 14]
    d = pos[None, :, None, :] - pos[:, None, None, :] + (n @ cell)[None, None]
    dist = np.linalg.norm(d, axis=-1)
    self_term = (dist == 0)
    from scipy.special import erf

    pair = np.where(self_term, 0.0, erf(dist / gam) / np.where(self_term, 1.0, dist))
    e_direct = 0.5 * COULOMB * np.einsum("i,j,ijn->", q, q, pair)
    assert abs(e_ewald - e_direct) <= 2e-4 * abs(e_direct)


def test_molecule_limit_of_the_periodic_sum():
    """A molecule in a growing cubic box tends to the direct sum (after the tin-foil dipole term 2π k_e D²/3V)."""
    pos = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0], [2.8, 0.1, 0.2], [3.3, 0.9, 0.1]])
    q = np.array([-0.8, 0.4, 0.4, -0.2, 0.2])
    e_mol = _energy(pos, np.zeros((3, 3)), q, 0.9, periodic=False)
    errors = []
    for L in (15.0, 30.0):
        D = q @ pos
        e_box = _energy(pos + L / 2, np.eye(3) * L, q, 0.9) + 2 * math.pi * COULOMB * (D @ D) / (3 * L**3)
        errors.append(abs(e_box - e_mol))
    assert errors[1] < errors[0] and errors[1] <= 1e-4 * abs(e_mol)


def test_screening_switches_pair_interactions_off_at_short_range():
    """With screening, two charges closer than the inner radius do not interact; beyond the outer radius fully."""
    scr = ScreeningSettings(1.0, 3.0)
    q = np.array([1.0, -1.0])
    for r, factor in ((0.8, 0.0), (4.0, 1.0)):
        pos = np.array([[0.0, 0, 0], [r, 0, 0]])
        e = _energy(pos, np.zeros((3, 3)), q, 0.5, periodic=False, screening=scr)
        ref = -COULOMB * math.erf(r / (2 * 0.5)) / r * factor
        assert abs(e - ref) <= 1e-12 * COULOMB
    assert float(scr(2.0)) == pytest.approx(0.5)


def test_qeq_conserves_charge_and_masks_padding():
    """Two structures and two padding atoms in one system: each structure's charge is exact, padding charges are 0."""
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, 4, (7, 3))
    gi = jnp.array([0, 0, 0, 1, 1, 2, 2])
    mask = jnp.array([True] * 5 + [False] * 2)
    chi = jnp.asarray(rng.normal(size=7))

    @jax.jit
    def solve(pos, chi):
        M, _, _ = coulomb_matrices(pos, gi, mask, jnp.zeros((3, 3, 3)), jnp.zeros(3, bool), jnp.full(7, 0.8),
                                   any_periodic=False)
        return M, *qeq_charges(M, jnp.full(7, 8.0), chi, gi, mask, jnp.array([0.0, 1.0, 0.0]))

    M, q, lam = solve(jnp.asarray(pos), chi)
    q = np.asarray(q)
    assert abs(q[:3].sum()) <= 1e-15 * 3 and abs(q[3:5].sum() - 1.0) <= 1e-15 * 3
    assert np.all(q[5:] == 0.0) and float(lam[2]) == 0.0
    # the charges minimise the Qeq energy: its gradient is the constant −λ within each structure
    grad = np.asarray(chi + 8.0 * q + M @ q)[:5]
    assert np.allclose(grad[:3], -float(lam[0]), atol=1e-12) and np.allclose(grad[3:], -float(lam[1]), atol=1e-12)


def test_kolafa_perram_parameters_are_n2p2s():
    """n2p2 prints η = 9.83401028, r_cut = 35.6826886 Bohr, k_cut = 0.368974416 /Bohr for its 4G water example."""
    V = 3.3956488880283203e01 * 2.9407162188180479e01 * 2.7725343724511134e01
    ew = EwaldSettings(precision=1e-5, max_charge=0.36, min_eta=1.2491023848218, estimate_coulomb=1.0)
    eta, rc, kc = (float(x[0]) for x in ewald_parameters(jnp.array([V]), jnp.array([384]), ew))
    assert eta == pytest.approx(9.83401028, rel=1e-8)
    assert rc == pytest.approx(35.6826886, rel=1e-8)
    assert kc == pytest.approx(0.368974416, rel=1e-8)


def test_ewald_settings_validation():
    with pytest.raises(ValueError, match="method"):
        EwaldSettings(method="pme")
    with pytest.raises(ValueError, match="precision"):
        EwaldSettings(precision=0.0)
    with pytest.raises(ValueError, match="inner < outer"):
        ScreeningSettings(3.0, 1.0)


def test_forces_through_the_matrix_are_finite_differences():
    """∂E/∂R of ½ qᵀ(M+S)q at fixed charges, periodic cell with screening (the matrix part of the 4G forces)."""
    rng = np.random.default_rng(2)
    cell = np.eye(3) * 5.0 + 0.2 * rng.normal(size=(3, 3))
    pos = rng.uniform(0, 5, (4, 3))
    q = jnp.asarray([0.5, -0.2, -0.6, 0.3])
    ew = EwaldSettings(precision=1e-10, max_charge=1.0)
    img, ks = required_ranges(cell, 4, ew)
    scr = ScreeningSettings(0.5, 2.5)

    def e(p):
        M, S, _ = coulomb_matrices(p, jnp.zeros(4, int), jnp.ones(4, bool), jnp.asarray(cell)[None], jnp.array([True]),
                                   jnp.full(4, 0.6), ewald=ew, screening=scr, image_range=img, kspace_range=ks)
        return jnp.sum(electrostatic_energies(q, M, S))

    e = jax.jit(e)
    g = np.asarray(jax.jit(jax.grad(e))(jnp.asarray(pos)))
    h = 1e-5
    for a, k in ((0, 0), (2, 1), (3, 2)):
        d = np.zeros_like(pos)
        d[a, k] = h
        fd = (float(e(jnp.asarray(pos + d))) - float(e(jnp.asarray(pos - d)))) / (2 * h)
        assert abs(g[a, k] - fd) <= 1e-6 * max(1.0, abs(fd))
