"""Forces and stress against finite differences of the energy."""

import numpy as np
import pytest
from ase.build import bulk

import jaxmlp
from jaxmlp.models import lennard_jones, morse

from helpers import central_difference_forces, random_cell_atoms

MODELS = {
    "lj": lennard_jones(epsilon=0.01, sigma=2.5, cutoff=6.0),
    "morse": morse(D=0.3, alpha=1.4, r0=2.6, cutoff=5.5, onset=4.0),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("pbc", [True, False])
def test_forces_vs_central_differences(name, pbc):
    model = MODELS[name]
    params = model.init(None)
    atoms = random_cell_atoms(8, np.diag([5.0, 5.5, 6.0]) + 0.4, pbc=pbc, seed=11, min_dist=2.2)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)

    def e_of(pos):
        return float(jaxmlp.energy(model, params, g._replace(nodes={**g.nodes, "positions": pos}))[0])

    fd = central_difference_forces(e_of, atoms.positions, h=1e-4)
    _, f = jaxmlp.energy_and_forces(model, params, g)
    np.testing.assert_allclose(np.asarray(f), fd, atol=1e-8)
    # Newton's third law for a translation-invariant energy
    np.testing.assert_allclose(np.asarray(f).sum(0), 0.0, atol=1e-12)


def test_stress_vs_strain_differences():
    model = MODELS["morse"]
    params = model.init(None)
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=3)
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.05, 0.0], [0.02, 1.0, 0.03], [0, 0, 1.0]]), scale_atoms=True)
    s = np.asarray(jaxmlp.stress(model, params, jaxmlp.atoms_to_graph(atoms, model.cutoff))[0])
    h, V = 1e-5, atoms.get_volume()
    voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for k, (a, b) in enumerate(voigt):
        vals = []
        for sgn in (-1, 1):
            eps = np.zeros((3, 3))
            eps[a, b] += sgn * h / (1 if a == b else 2)
            eps[b, a] += sgn * h / (1 if a == b else 2) if a != b else 0
            at = atoms.copy()
            at.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            vals.append(float(jaxmlp.energy(model, params, jaxmlp.atoms_to_graph(at, model.cutoff))[0]))
        fd = (vals[1] - vals[0]) / (2 * h) / V
        assert s[k] == pytest.approx(fd, abs=1e-8)
