"""Lennard-Jones and Morse agree with ASE's own calculators to 1e-10 (float64)."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential

import jaxmlp
from jaxmlp.models import lennard_jones, morse

from helpers import random_cell_atoms


def structures():
    rng = np.random.default_rng(0)
    small = bulk("Ar", "fcc", a=5.26, cubic=True)  # 4 atoms, cell < cutoff
    small.rattle(0.1, seed=1)
    small.set_cell(small.cell.array @ (np.eye(3) + 0.05 * rng.normal(size=(3, 3))), scale_atoms=True)
    big = bulk("Ar", "fcc", a=5.26).repeat((3, 3, 3))
    big.rattle(0.15, seed=2)
    cluster = random_cell_atoms(13, np.eye(3) * 8.0, pbc=False, seed=3, min_dist=3.0)
    slab = random_cell_atoms(10, np.diag([6.0, 7.0, 14.0]), pbc=(True, True, False), seed=4, min_dist=3.0)
    return {"small_periodic": small, "fcc_bulk": big, "cluster": cluster, "slab": slab}


STRUCTS = structures()


def compare(model, params, atoms, ref_calc):
    atoms = atoms.copy()
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    e, f, s = jaxmlp.energy_forces_stress(model, params, g)
    ea = jaxmlp.per_atom_energies(model, params, g)
    atoms.calc = ref_calc
    np.testing.assert_allclose(float(e[0]), atoms.get_potential_energy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(f), atoms.get_forces(), rtol=0, atol=1e-10)
    if atoms.pbc.all():
        np.testing.assert_allclose(np.asarray(s[0]), atoms.get_stress(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(np.asarray(ea), atoms.get_potential_energies(), rtol=0, atol=1e-10)
    else:
        assert np.all(np.isnan(np.asarray(s[0])))


@pytest.mark.parametrize("name", list(STRUCTS))
@pytest.mark.parametrize("mode,smooth", [("smooth", True), ("shift", False)])
def test_lennard_jones_matches_ase(name, mode, smooth):
    m = lennard_jones(epsilon=0.0104, sigma=3.4, cutoff=8.5, mode=mode)
    compare(m, m.init(None), STRUCTS[name], LennardJones(epsilon=0.0104, sigma=3.4, rc=8.5, smooth=smooth))


@pytest.mark.parametrize("name", list(STRUCTS))
def test_morse_matches_ase(name):
    D, rho0, r0 = 0.35, 4.5, 3.7
    m = morse(D=D, alpha=rho0 / r0, r0=r0, cutoff=2.7 * r0, onset=1.9 * r0)
    compare(m, m.init(None), STRUCTS[name], MorsePotential(epsilon=D, rho0=rho0, r0=r0, rcut1=1.9, rcut2=2.7))


def test_dimer_curve_and_cutoff_modes():
    m_plain = lennard_jones(cutoff=2.5, mode="plain")
    m_shift = lennard_jones(cutoff=2.5, mode="shift")
    p = m_plain.init(None)
    for r in (0.95, 1.12, 2.0):
        g = jaxmlp.atoms_to_graph(Atoms("Ar2", positions=[[0, 0, 0], [r, 0, 0]]), 2.5)
        exact = 4 * (r**-12 - r**-6)
        assert float(jaxmlp.energy(m_plain, p, g)[0]) == pytest.approx(exact, abs=1e-14)
        assert float(jaxmlp.energy(m_shift, p, g)[0]) == pytest.approx(exact - 4 * (2.5**-12 - 2.5**-6), abs=1e-14)
    g = jaxmlp.atoms_to_graph(Atoms("Ar2", positions=[[0, 0, 0], [2.6, 0, 0]]), 3.0)
    assert float(jaxmlp.energy(m_plain, p, g)[0]) == 0.0


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="mode"):
        lennard_jones(mode="soft")
    with pytest.raises(ValueError, match="onset"):
        morse(cutoff=2.0, onset=3.0)
    with pytest.raises(ValueError, match="cutoff"):
        morse(cutoff=-1.0)
