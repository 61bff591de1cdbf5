"""The ASE calculator: ASE agreement, graph re-use with a skin, errors."""

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.morse import MorsePotential

import jaxmlp
from jaxmlp.models import lennard_jones, morse


def test_calculator_matches_ase_morse_through_a_trajectory():
    D, rho0, r0 = 0.35, 4.5, 2.6
    model = morse(D=D, alpha=rho0 / r0, r0=r0, cutoff=2.7 * r0, onset=1.9 * r0)
    atoms = bulk("Cu", "fcc", a=3.7).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=1)
    calc = jaxmlp.Calculator(model, model.init(None), skin=0.4)
    ref = MorsePotential(epsilon=D, rho0=rho0, r0=r0, rcut1=1.9, rcut2=2.7)
    rng = np.random.default_rng(0)
    for _step in range(6):
        atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
        a_ref = atoms.copy()
        a_ref.calc = ref
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(a_ref.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), a_ref.get_forces(), atol=1e-10)
        np.testing.assert_allclose(atoms.get_stress(), a_ref.get_stress(), atol=1e-10)
        np.testing.assert_allclose(atoms.get_potential_energies().sum(), a_ref.get_potential_energy(), atol=1e-10)
    # small moves re-use the graph (built with cutoff + skin)
    assert calc.n_graph_builds < 6


def test_rebuild_on_large_move_and_cell_change():
    model = lennard_jones(epsilon=0.01, sigma=2.3, cutoff=5.0)
    calc = jaxmlp.Calculator(model, model.init(None), skin=0.2)
    atoms = bulk("Ar", "fcc", a=5.0).repeat((2, 2, 2))
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.positions[0] += 0.5
    atoms.get_potential_energy()
    assert calc.n_graph_builds == 2
    atoms.set_cell(atoms.cell * 1.01, scale_atoms=True)
    atoms.get_potential_energy()
    assert calc.n_graph_builds == 3


def test_hessian_property_and_molecule_has_no_stress():
    model = lennard_jones(epsilon=0.01, sigma=2.3, cutoff=5.0)
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [2.6, 0, 0], [1.3, 2.2, 0.1]])
    atoms.calc = jaxmlp.Calculator(model, model.init(None))
    H = atoms.calc.get_hessian(atoms)
    assert H.shape == (9, 9)
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_calculator_argument_errors():
    model = lennard_jones(cutoff=3.0)
    with pytest.raises(ValueError, match="smaller than the model's cutoff"):
        jaxmlp.Calculator(model, model.init(None), cutoff=2.0)
    with pytest.raises(ValueError, match="skin"):
        jaxmlp.Calculator(model, model.init(None), skin=-1)


_efs = jax.jit(jaxmlp.energy_forces_stress, static_argnums=0)


def _counting(model):
    """The same model, counting how often ``apply`` is traced (once per compilation and pass)."""
    import dataclasses

    calls = {"n": 0}

    def apply(params, graph):
        calls["n"] += 1
        return model.apply(params, graph)

    return dataclasses.replace(model, apply=apply), calls


def test_md_rebuilds_reuse_one_compiled_function():
    """Neighbour-list rebuilds change the edge count; the padded buckets absorb it."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    base = lennard_jones(epsilon=0.0104, sigma=3.4, cutoff=6.0)
    model, traced = _counting(base)
    atoms = bulk("Ar", "fcc", a=5.26).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=3)
    rng = np.random.default_rng(0)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(atoms.get_masses()[:, None] * units.kB * 600))
    calc = jaxmlp.Calculator(model, model.init(None), skin=0.05)
    atoms.calc = calc
    edges = []
    dyn = VelocityVerlet(atoms, 5 * units.fs)
    for _ in range(25):
        dyn.run(1)
        edges.append(int(calc._graph.n_edge[0]))
    assert calc.n_graph_builds >= 5
    assert len(set(edges)) >= 3, "the test needs rebuilds with different edge counts"
    # one trace of the model per compilation (energy, per-atom energies, forces
    # and stress in one pass) and at most one re-bucketing in the run
    assert traced["n"] <= 2, (traced["n"], sorted(set(edges)), calc.buckets)
    # the padded graph gives the unpadded observables
    g = jaxmlp.atoms_to_graph(atoms, 6.0 + 0.05)
    e, f, s = _efs(base, base.init(None), g)
    assert atoms.get_potential_energy() == pytest.approx(float(e[0]), abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f, atol=1e-12)
    np.testing.assert_allclose(atoms.get_stress(), s[0], atol=1e-12)


@pytest.mark.parametrize("periodic", [True, False])
def test_results_equal_unpadded_observables(periodic):
    model = morse(D=0.35, alpha=1.7, r0=2.6, cutoff=5.0)
    params = model.init(None)
    if periodic:
        atoms = bulk("Cu", "fcc", a=3.7).repeat((2, 2, 1))
    else:
        atoms = bulk("Cu", "fcc", a=3.7).repeat((2, 2, 1))
        atoms.pbc = False
    atoms.rattle(0.05, seed=2)
    atoms.calc = jaxmlp.Calculator(model, params, skin=0.3)
    g = jaxmlp.atoms_to_graph(atoms, 5.3)
    e, f, s = _efs(model, params, g)
    ea = jax.jit(jaxmlp.per_atom_energies, static_argnums=0)(model, params, g)
    assert atoms.get_potential_energy() == pytest.approx(float(e[0]), abs=1e-12)
    assert atoms.calc.buckets.n_edge > int(g.n_edge[0])  # padded
    np.testing.assert_allclose(atoms.get_potential_energies(), ea, atol=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f, atol=1e-12)
    if periodic:
        np.testing.assert_allclose(atoms.get_stress(), s[0], atol=1e-12)


def test_hessian_equals_finite_differences_of_forces():
    model = morse(D=0.35, alpha=1.7, r0=2.6, cutoff=5.0)
    atoms = bulk("Cu", "fcc", a=3.7).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=4)
    calc = jaxmlp.Calculator(model, model.init(None), skin=0.3)
    atoms.calc = calc
    H = calc.get_hessian(atoms)
    n, h = len(atoms), 1e-4
    fd = np.zeros((3 * n, 3 * n))
    for a in range(n):
        for k in range(3):
            cols = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[a, k] += sign * h
                moved.calc = calc
                cols.append(moved.get_forces().reshape(-1))
            fd[:, 3 * a + k] = -(cols[0] - cols[1]) / (2 * h)
    assert np.abs(H).max() > 1.0  # a non-trivial Hessian
    np.testing.assert_allclose(H, fd, atol=1e-6)


def test_grow_buckets_keeps_grows_geometrically_never_shrinks():
    from jaxmlp.graph import grow_buckets

    atoms = bulk("Ar", "fcc", a=5.26).repeat((2, 2, 2))
    small, large = jaxmlp.atoms_to_graph(atoms, 4.0), jaxmlp.atoms_to_graph(atoms, 6.0)
    b = grow_buckets([small])
    assert b.n_edge >= 1.2 * (int(small.n_edge[0]) + 2) and b.n_graph == 2
    assert grow_buckets([small], b) == b  # fits: unchanged
    b2 = grow_buckets([large], b)
    assert b2.n_edge >= 1.2 * (int(large.n_edge[0]) + 2) and b2.n_edge <= 1.2 * 1.5 * (int(large.n_edge[0]) + 2) + 8
    assert grow_buckets([small], b2) == b2  # never shrinks
    jaxmlp.batch_graphs([large], b2)  # and the batch fits
