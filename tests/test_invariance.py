"""Permutation, translation and rotation invariance of graph-based energies."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import jaxmlp
from jaxmlp.models import lennard_jones, morse

from helpers import random_cell_atoms

MODELS = [lennard_jones(epsilon=0.01, sigma=2.3, cutoff=5.0), morse(D=0.2, alpha=1.3, r0=2.5, cutoff=5.0)]


def efs(model, atoms):
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    e, f, s = jaxmlp.energy_forces_stress(model, model.init(None), g)
    return float(e[0]), np.asarray(f), np.asarray(s[0])


@pytest.mark.parametrize("model", MODELS, ids=["lj", "morse"])
@pytest.mark.parametrize("pbc", [True, False])
def test_permutation_translation_rotation(model, pbc):
    atoms = random_cell_atoms(10, np.array([[6.0, 0.3, 0.0], [0.5, 5.5, 0.2], [0.1, 0.4, 6.5]]), pbc=pbc, seed=5, min_dist=2.0)
    e, f, s = efs(model, atoms)
    perm = np.random.default_rng(0).permutation(len(atoms))
    e_p, f_p, _ = efs(model, atoms[perm])
    assert e_p == pytest.approx(e, abs=1e-11)
    np.testing.assert_allclose(f_p, f[perm], atol=1e-11)
    moved = atoms.copy()
    moved.translate([3.3, -1.7, 12.9])  # also moves atoms out of the cell
    e_t, f_t, _ = efs(model, moved)
    assert e_t == pytest.approx(e, abs=1e-11)
    np.testing.assert_allclose(f_t, f, atol=1e-11)
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    rotated = atoms.copy()
    rotated.set_positions(atoms.positions @ rot.T)
    rotated.set_cell(atoms.cell.array @ rot.T)
    e_r, f_r, _ = efs(model, rotated)
    assert e_r == pytest.approx(e, abs=1e-11)
    np.testing.assert_allclose(f_r, f @ rot.T, atol=1e-11)
    if pbc:  # wrapping atoms into the cell changes nothing either
        wrapped = moved.copy()
        wrapped.wrap()
        assert efs(model, wrapped)[0] == pytest.approx(e, abs=1e-11)
