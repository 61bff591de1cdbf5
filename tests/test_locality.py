"""Hessian locality analysis: block norms, decay, 2·R_c range, G/G′ (CO2), Γ."""

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import jaxmlp
from jaxmlp.analysis.locality import (
    block_norms,
    decay,
    force_range,
    gamma,
    group_matrix,
)


def _co2(d=0.0):
    r = 1.176 + d
    return Atoms("OCO", positions=[[0, 0, -r], [0, 0, 0], [0, 0, r]])


MORSE = jaxmlp.models.morse(D=5.0, alpha=2.0, r0=1.176, cutoff=3.0)


def _hessian(model, atoms):
    params = model.init(None)
    return np.asarray(jaxmlp.hessian(model, params, jaxmlp.atoms_to_graph(atoms, model.cutoff)))


def test_block_norms_shapes_and_values():
    H = np.arange(36.0).reshape(6, 6)
    N = block_norms(H)
    assert N.shape == (2, 2)
    assert N[0, 1] == pytest.approx(np.linalg.norm(H[0:3, 3:6]))
    with pytest.raises(ValueError, match="3N, 3N"):
        block_norms(np.zeros((5, 5)))


def test_co2_force_zero_but_group_matrix_not():
    """Herbold & Behler Fig. 2: symmetric stretch, f_C = 0 by symmetry, ||G_C|| > 0 and varies."""
    params = MORSE.init(None)
    G_norms = []
    for d in (-0.1, 0.0, 0.1):
        atoms = _co2(d)
        g = jaxmlp.atoms_to_graph(atoms, MORSE.cutoff)
        f_c = np.asarray(jaxmlp.forces(MORSE, params, g))[1]
        assert np.linalg.norm(f_c) < 1e-12
        H = np.asarray(jaxmlp.hessian(MORSE, params, g))
        G = group_matrix(H, 1, [0, 2])
        # translation sum rule: Σ_{B≠A} h_AB = −h_AA
        assert np.allclose(G, -H[3:6, 3:6], atol=1e-10)
        G_norms.append(np.linalg.norm(G))
    assert min(G_norms) > 0.1
    assert len(set(np.round(G_norms, 6))) == 3  # the norm reflects the bond length


def test_group_matrix_saturating_forms():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(12, 12))
    H = M + M.T
    G = group_matrix(H, 0, [1, 2])
    assert np.allclose(G, H[0:3, 3:6] + H[0:3, 6:9])
    Gp = group_matrix(H, 0, [1, 2], saturating=[3])
    assert np.allclose(Gp, G - H[0:3, 9:12])
    blocks = rng.normal(size=(2, 3, 3))
    assert np.allclose(group_matrix(H, 0, [1, 2], saturating=blocks), G - blocks.sum(0))
    with pytest.raises(ValueError, match="reference atom"):
        group_matrix(H, 0, [0, 1])
    with pytest.raises(ValueError, match="out of range"):
        group_matrix(H, 7, [1])
    with pytest.raises(ValueError, match="duplicate"):
        group_matrix(H, 0, [1, 1])


def test_lj_blocks_vanish_beyond_two_cutoffs_and_decay():
    """A strictly local model: h_AB = 0 exactly beyond 2·R_c, non-zero just inside."""
    model = jaxmlp.models.lennard_jones(epsilon=0.01, sigma=1.0, cutoff=3.0, mode="smooth", onset=2.0)
    atoms = Atoms("Ar10", positions=[[1.1 * k, 0.3 * (k % 2), 0] for k in range(10)])
    r = force_range(model, model.init(None), atoms)
    assert r.interaction_range == 6.0
    assert r.n_beyond > 0 and r.max_beyond == 0.0
    assert 2.0 < r.radius < 3.0  # a pair model couples direct pairs only (range R_c ≤ 2·R_c)
    H = _hessian(model, atoms)
    dec = decay(H, atoms, bin_width=1.0)
    c = dec.curves["all"]
    assert np.all(c["max"][7:][c["count"][7:] > 0] == 0.0)
    assert c["max"][1] > 0 and np.all(c["max"][3:][c["count"][3:] > 0] == 0.0)
    assert ("Ar", "Ar") in dec.curves and sum(c["count"]) == 90
    # the sparse Hessian gives the same decay rows where it stores pairs
    S = jaxmlp.sparse_hessian(model, model.init(None), atoms)
    ds = decay(S, atoms, bin_width=1.0, r_max=dec.edges[-1] - 1.0)
    assert np.allclose(np.nan_to_num(ds.curves["all"]["max"][:6]), np.nan_to_num(c["max"][:6]))


def test_hdnnp_blocks_vanish_beyond_two_cutoffs():
    from jaxmlp.descriptors import angular_set, radial_grid

    rc = 2.6
    sf = radial_grid(["Cu"], rc, 2) + angular_set(["Cu"], rc, etas=(0.0,), zetas=(1.0,))
    model = jaxmlp.models.hdnnp(["Cu"], sf, hidden=(4,))
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (3, 1, 1)  # 10.8 Å > 2·R_c along x
    atoms.rattle(0.05, seed=0)
    g = jaxmlp.atoms_to_graph(atoms, rc, triplets=True)
    params = model.init(jax.random.PRNGKey(0), g)
    H = np.asarray(jaxmlp.hessian(model, params, g))
    norms = block_norms(H)
    dist = jaxmlp.analysis.locality.distance_matrix(atoms)
    assert np.any(dist > 2 * rc)
    assert norms[dist > 2 * rc].max() == 0.0
    assert norms[(dist > 0) & (dist < rc)].min() > 0.0
    # many-body: atoms beyond R_c but within 2·R_c still couple (through a common neighbour)
    assert norms[(dist > rc + 0.1) & (dist < 2 * rc)].max() > 0.0


def test_gamma_interpolates_first_violation():
    df = [0.01, 0.05, 0.11, 0.27, 1.0]
    gp = [0.02, 0.07, 0.29, 0.71, 3.7]
    g = gamma(df, gp, 0.15)
    assert g == pytest.approx(0.29 + (0.15 - 0.11) * (0.71 - 0.29) / (0.27 - 0.11))
    assert gamma(df, gp, 0.15, method="data") == 0.29
    assert gamma([0.01, 0.02], [0.1, 0.2]) == float("inf")
    assert gamma([0.5, 0.01], [0.1, 0.2]) == 0.0
    # a non-monotonic point below Γ that violates lowers Γ
    assert gamma([0.01, 0.2, 0.05, 0.3], [0.1, 0.2, 0.3, 0.4], method="data") == 0.1
    with pytest.raises(ValueError, match="length"):
        gamma([0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match="method"):
        gamma([0.1], [0.1], method="spline")


@pytest.mark.parametrize("alias", ["locality", "fragments"])
def test_one_import_path_no_alias_modules(alias):
    """The analysis functions live only in ``jaxmlp.analysis.<module>``."""
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"jaxmlp.{alias}")
    assert not hasattr(jaxmlp, alias)
    assert getattr(jaxmlp.analysis, alias).__name__ == f"jaxmlp.analysis.{alias}"
    # the package does not re-export the functions under a second name
    assert set(jaxmlp.analysis.__all__) == {"locality", "fragments", "group_series"}
    assert not hasattr(jaxmlp.analysis, "gamma") and not hasattr(jaxmlp.analysis, "cut")


def test_decay_keeps_a_pair_at_a_multiple_of_the_bin_width():
    from ase import Atoms

    from jaxmlp.analysis.locality import decay

    atoms = Atoms("Cu2", positions=[[0, 0, 0], [2.0, 0, 0]])
    H = np.ones((6, 6))
    dec = decay(H, atoms, bin_width=0.5)
    assert dec.curves["all"]["count"].sum() == 2  # both A≠B orderings of the one pair
    assert dec.edges[-2] <= 2.0 <= dec.edges[-1]
    np.testing.assert_allclose(np.nanmax(dec.curves["all"]["max"]), 3.0)  # ||ones(3,3)||_F
    dec = decay(H, atoms, bin_width=0.5, r_max=2.0)  # closed last bin at r_max
    assert dec.curves["all"]["count"][-1] == 2


def test_force_range_uses_a_given_hessian():
    import jax
    from ase.build import bulk

    import jaxmlp
    from jaxmlp.analysis.locality import force_range

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 1, 1))
    model = jaxmlp.models.morse(D=0.34, alpha=1.36, r0=2.87, cutoff=3.0)
    params = model.init(jax.random.PRNGKey(0), None)
    H = np.asarray(jaxmlp.hessian(model, params, jaxmlp.atoms_to_graph(atoms, model.cutoff)))
    a = force_range(model, params, atoms)
    b = force_range(model, params, atoms, hessian=H)
    assert a == b
    c = force_range(model, params, atoms, hessian=2 * H)
    assert c.max_norm == pytest.approx(2 * a.max_norm)
    with pytest.raises(ValueError, match="shape"):
        force_range(model, params, atoms, hessian=H[:3])
