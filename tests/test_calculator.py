"""The ASE calculator: ASE agreement, graph re-use with a skin, errors."""

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
    for step in range(6):
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
