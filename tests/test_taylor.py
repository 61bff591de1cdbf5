"""Taylor-expansion labels: sign, O(δ²) accuracy on analytic potentials, CoM removal."""

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones

import jaxmlp
from jaxmlp.models import morse
from jaxmlp.training import taylor_augment, taylor_displacements, taylor_energy

from helpers import random_cell_atoms


def _lj_cluster():
    atoms = random_cell_atoms(6, np.eye(3) * 3.2, pbc=False, seed=3, min_dist=1.0)
    atoms.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=4.0, smooth=True)
    return atoms


def _exact(atoms):
    a = atoms.copy()
    a.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=4.0, smooth=True)
    return a.get_potential_energy()


def test_sign_on_dimer():
    """Stretching a compressed LJ dimer lowers the energy: the label must too."""
    d = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 1.0]])  # r < 2^(1/6)σ: repulsive
    d.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=4.0, smooth=True)
    e0, f = d.get_potential_energy(), d.get_forces()
    assert f[1, 2] > 0  # atom 1 is pushed outwards (+z)
    delta = 1e-3
    # strategy A, all 12 displacements: each must match the exact energy to O(δ²)
    for new in taylor_displacements(d, f, strategy="A", delta=delta, n=12, key=0, energy=e0):
        exact = _exact(new)
        label = new.get_potential_energy()
        # ½ φ''(1) δ² = ½·456·δ² bounds the error; a flipped sign would be off by 2δ|F| = 0.048 eV
        assert abs(label - exact) < 250 * delta**2, (label, exact)
    # explicit: displacing atom 1 by −δ ẑ (compressing) raises the energy by +δ F_z
    disp = np.zeros((2, 3))
    disp[1, 2] = -delta
    e_minus = taylor_energy(e0, f, disp)
    assert e_minus > e0
    assert e_minus == pytest.approx(e0 + delta * f[1, 2])
    moved = d.copy()
    moved.positions += disp
    assert _exact(moved) > e0


@pytest.mark.parametrize("strategy", ["A", "B"])
def test_error_is_second_order(strategy):
    atoms = _lj_cluster()
    e0, f = atoms.get_potential_energy(), atoms.get_forces()
    errs = []
    for delta in (0.02, 0.01, 0.005):
        new = taylor_displacements(atoms, f, strategy=strategy, delta=delta, n=8, key=7, energy=e0)
        errs.append(np.mean([abs(s.get_potential_energy() - _exact(s)) for s in new]))
    # same key → same directions, displacement ∝ δ → error ∝ δ²
    r1, r2 = errs[0] / errs[1], errs[1] / errs[2]
    assert 3.5 < r1 < 4.5 and 3.5 < r2 < 4.5, errs


def test_second_order_with_hessian_is_third_order():
    # float64 from conftest
    model = morse(D=1.0, alpha=1.5, r0=1.2, cutoff=4.0)
    params = model.init(jax.random.PRNGKey(0))
    atoms = random_cell_atoms(5, np.eye(3) * 3.0, pbc=False, seed=1, min_dist=1.0)
    calc = jaxmlp.Calculator(model, params)
    atoms.calc = calc
    e0, f = atoms.get_potential_energy(), atoms.get_forces()
    H = np.asarray(jaxmlp.hessian(model, params, jaxmlp.atoms_to_graph(atoms, model.cutoff)))

    def exact(a):
        b = a.copy()
        b.calc = jaxmlp.Calculator(model, params)
        return b.get_potential_energy()

    e1, e2 = [], []
    for delta in (0.04, 0.02):
        first = taylor_displacements(atoms, f, "B", delta, 6, key=2, energy=e0)
        second = taylor_displacements(atoms, f, "B", delta, 6, key=2, energy=e0, hessian=H)
        e1.append(np.mean([abs(s.get_potential_energy() - exact(s)) for s in first]))
        e2.append(np.mean([abs(s.get_potential_energy() - exact(s)) for s in second]))
        assert second[0].info["taylor"]["order"] == 2
    assert e2[0] < e1[0] / 5
    assert 6.5 < e2[0] / e2[1] < 9.5, e2  # O(δ³)


def test_strategy_b_removes_com_and_respects_delta_max():
    atoms = _lj_cluster()
    atoms.set_chemical_symbols(["O", "H", "H", "O", "H", "H"])
    m = atoms.get_masses()
    dmax = {"O": 0.01, "H": 0.03}
    new = taylor_displacements(atoms, atoms.get_forces() * 0, "B", delta=0.02, n=20, key=5, energy=0.0,
                               delta_max_per_element=dmax)
    limit = np.array([dmax[s] for s in atoms.get_chemical_symbols()])
    for s in new:
        d = s.positions - atoms.positions
        np.testing.assert_allclose(m @ d / m.sum(), 0.0, atol=1e-14)
        assert np.all(np.linalg.norm(d, axis=1) <= limit * (1 + 1e-12))
        assert np.linalg.norm(d) > 0


def test_strategy_a_distinct_single_atom_moves():
    atoms = _lj_cluster()
    new = taylor_displacements(atoms, None, "A", delta=0.05, n=36, key=1)
    seen = set()
    for s in new:
        d = s.positions - atoms.positions
        nz = np.argwhere(np.abs(d) > 0)
        assert len(nz) == 1
        i, k = nz[0]
        assert abs(d[i, k]) == pytest.approx(0.05)
        seen.add((i, k, np.sign(d[i, k])))
    assert len(seen) == 36  # all 6N choices, none repeated
    with pytest.raises(ValueError, match="6N"):
        taylor_displacements(atoms, None, "A", delta=0.05, n=37, key=1)


def test_deterministic_given_key():
    atoms = _lj_cluster()
    a = taylor_displacements(atoms, None, "B", 0.01, 4, key=jax.random.PRNGKey(9))
    b = taylor_displacements(atoms, None, "B", 0.01, 4, key=jax.random.PRNGKey(9))
    c = taylor_displacements(atoms, None, "B", 0.01, 4, key=jax.random.PRNGKey(10))
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
    assert not np.array_equal(a[0].positions, c[0].positions)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(delta=0.0), "delta"),
        (dict(delta=-0.1), "delta"),
        (dict(strategy="C"), "strategy"),
        (dict(n=0), "n must"),
        (dict(forces=np.zeros((2, 3))), "forces have shape"),
        (dict(hessian=np.zeros((3, 3))), "hessian"),
    ],
)
def test_bad_input(kwargs, match):
    atoms = _lj_cluster()
    args = dict(forces=atoms.get_forces(), strategy="B", delta=0.01, n=2, key=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        taylor_displacements(atoms, **args)


def test_taylor_augment_dataset():
    data = pytest.importorskip("jaxmlp.data")
    frames = []
    for s in range(3):
        a = random_cell_atoms(4, np.eye(3) * 3.0, pbc=False, seed=s, min_dist=1.0)
        a.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=4.0, smooth=True)
        a.get_forces()
        frames.append(a)
    ds = data.Dataset.from_atoms(frames)
    aug = taylor_augment(ds, strategy="A", delta=0.01, a=5, key=3)
    assert len(aug) == 3 * 6
    np.testing.assert_array_equal(aug.energy[:3], ds.energy)
    # the first displaced structure belongs to reference 0 and carries its Taylor label
    d = aug[3].positions - ds[0].positions
    assert aug.energy[3] == pytest.approx(ds.energy[0] - np.sum(d * ds.forces[0]))
    only = taylor_augment(ds, strategy="B", delta=0.01, a=2, key=3, include_original=False)
    assert len(only) == 6
    with pytest.raises(ValueError, match="empty"):
        taylor_augment(ds[:0], a=2)
