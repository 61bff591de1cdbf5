"""Finite-difference Hessians of ASE calculators: agreement with analytic, resume, symmetry."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.emt import EMT

import jaxmlp


class _Counting(EMT):
    """EMT that counts force evaluations and can fail after ``fail_after`` calls."""

    def __init__(self, fail_after=None):
        super().__init__()
        self.calls = 0
        self.fail_after = fail_after

    def calculate(self, *args, **kwargs):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        super().calculate(*args, **kwargs)


def _cluster():
    atoms = Atoms("Cu4", positions=[[0, 0, 0], [2.5, 0, 0], [0.2, 2.4, 0.1], [1.2, 1.1, 2.2]])
    return atoms


def test_fd_hessian_of_jaxmlp_calculator_matches_analytic():
    model = jaxmlp.models.morse(D=1.0, alpha=1.5, r0=1.3, cutoff=3.0)
    params = model.init(None)
    atoms = molecule("CH3OH")
    atoms.rattle(0.02, seed=0)
    calc = jaxmlp.Calculator(model, params, skin=0.5)
    before = atoms.positions.copy()  # before the calls
    H_fd = jaxmlp.fd_hessian(atoms, calc, delta=1e-3, progress=False)
    H = np.asarray(jaxmlp.hessian(model, params, jaxmlp.atoms_to_graph(atoms, model.cutoff)))
    # central differences: error O(δ²·f''''), relative ~1e-5 here
    assert np.abs(H_fd - H).max() < 1e-4 * np.abs(H).max()
    raw = jaxmlp.fd_hessian(atoms, calc, delta=1e-3, progress=False, symmetrize=False)
    assert np.allclose(0.5 * (raw + raw.T), H_fd)
    assert not np.array_equal(raw, raw.T)  # the raw FD matrix is only symmetric to O(δ²)
    assert np.array_equal(atoms.positions, before)  # the input is not displaced


def test_fd_hessian_emt_properties_and_columns():
    from jaxmlp.hessians import fd_hessian_columns

    atoms = _cluster()
    before = atoms.copy()  # taken before any call
    raw = jaxmlp.fd_hessian(atoms, EMT(), progress=False, symmetrize=False)
    H = jaxmlp.fd_hessian(atoms, EMT(), progress=False)
    assert H.shape == (12, 12)
    # the raw central differences are symmetric only to O(δ²): a real check of the columns
    assert 0 < np.abs(raw - raw.T).max() < 1e-3 * np.abs(raw).max()
    np.testing.assert_allclose(H, 0.5 * (raw + raw.T), atol=1e-12)
    n = len(atoms)
    assert np.abs(H.reshape(12, n, 3).sum(axis=1)).max() < 1e-3 * np.abs(H).max()  # translation sum rule
    cols = fd_hessian_columns(atoms, EMT(), [2])
    np.testing.assert_allclose(cols, raw[:, 6:9], atol=1e-12)
    # the input structure is neither displaced nor given a calculator
    assert np.array_equal(atoms.positions, before.positions) and atoms.calc is None


def _lj_pair_hessian(positions, eps, sigma):
    """Closed-form Hessian of Σ_{i<j} 4ε[(σ/r)¹² − (σ/r)⁶], ``[3N, 3N]``, written out by hand."""
    n = len(positions)
    H = np.zeros((n, 3, n, 3))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            r_vec = positions[j] - positions[i]
            r = np.linalg.norm(r_vec)
            u = r_vec / r
            d1 = 4 * eps * (-12 * sigma**12 / r**13 + 6 * sigma**6 / r**7)
            d2 = 4 * eps * (156 * sigma**12 / r**14 - 42 * sigma**6 / r**8)
            block = d2 * np.outer(u, u) + d1 / r * (np.eye(3) - np.outer(u, u))
            H[i, :, j, :] = -block
            H[i, :, i, :] += block
    return H.reshape(3 * n, 3 * n)


def test_fd_hessian_of_ase_lennard_jones_matches_closed_form():
    """FD of an ASE calculator (not a jaxmlp one) against a hand-written analytic Hessian."""
    from ase.calculators.lj import LennardJones

    eps, sigma = 0.0104, 3.4
    atoms = Atoms("Ar4", positions=[[0, 0, 0], [3.8, 0, 0], [1.7, 3.4, 0.2], [1.9, 1.2, 3.3]])
    before = atoms.positions.copy()
    calc = LennardJones(epsilon=eps, sigma=sigma, rc=20.0)  # every pair inside rc: shift only
    H_fd = jaxmlp.fd_hessian(atoms, calc, delta=2.5e-3, progress=False)
    H = _lj_pair_hessian(atoms.positions, eps, sigma)
    assert np.abs(H).max() > 1e-2
    assert np.abs(H_fd - H).max() < 1e-4 * np.abs(H).max()
    assert np.array_equal(atoms.positions, before)


def test_fd_hessian_resumes_from_checkpoint(tmp_path):
    atoms = _cluster()
    ck = tmp_path / "hess.npz"
    ref = jaxmlp.fd_hessian(atoms, EMT(), progress=False)
    calc = _Counting(fail_after=9)  # dies in the 5th column (2 calls per column)
    with pytest.raises(KeyboardInterrupt):
        jaxmlp.fd_hessian(atoms, calc, progress=False, checkpoint=ck)
    with np.load(ck) as saved:
        assert saved["done"].sum() == 4
    calc2 = _Counting()
    H = jaxmlp.fd_hessian(atoms, calc2, progress=False, checkpoint=ck)
    assert calc2.calls == 2 * (12 - 4)
    assert np.allclose(H, ref, atol=1e-12)
    # a completed checkpoint makes no calls; another structure is refused
    calc3 = _Counting()
    jaxmlp.fd_hessian(atoms, calc3, progress=False, checkpoint=ck)
    assert calc3.calls == 0
    other = atoms.copy()
    other.positions[0, 0] += 0.1
    with pytest.raises(ValueError, match="different structure"):
        jaxmlp.fd_hessian(other, EMT(), progress=False, checkpoint=ck)
    assert not list(tmp_path.glob("*.tmp*"))  # atomic writes leave no temporaries


def test_fd_hessian_bad_input():
    with pytest.raises(TypeError):
        jaxmlp.fd_hessian("Cu", EMT())
    with pytest.raises(ValueError, match="delta"):
        jaxmlp.fd_hessian(_cluster(), EMT(), delta=0.0)
    with pytest.raises(ValueError, match="calculator"):
        jaxmlp.fd_hessian(_cluster(), None)
