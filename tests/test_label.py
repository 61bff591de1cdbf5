"""Reference labelling: EMT agreement, crash-safe resume, xTB helper."""

import sys

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from jaxmlp.data import LabellingError, alkane, label, polyene, read, xtb_calculator
from jaxmlp.data.generate import cu_clusters
from jaxmlp.data.label import openmp_threads


def _structures(n=6, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        if k % 2:
            atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
        else:
            atoms = cu_clusters(n=1, sizes=(13,), seed=k)[0]
            atoms.calc = None
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


class CountingEMT(EMT):
    """EMT that counts calculations and can fail on the ``fail_at``-th structure it sees."""

    def __init__(self, fail_at=None):
        super().__init__()
        self.calls = 0
        self.fail_at = fail_at

    def calculate(self, atoms=None, properties=("energy",), system_changes=("positions",)):
        if system_changes:
            self.calls += 1
            if self.fail_at is not None and self.calls == self.fail_at + 1:
                raise RuntimeError("simulated crash")
        super().calculate(atoms, properties, system_changes)


def _direct(atoms, stress):
    atoms = atoms.copy()
    atoms.calc = EMT()
    out = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if stress:
        out["stress"] = atoms.get_stress()
    return out


def test_emt_labels_equal_direct_calls(tmp_path):
    frames = _structures()
    out = label(frames, EMT(), tmp_path / "emt.extxyz", properties=("energy", "forces", "stress"), progress=False)
    back = read(tmp_path / "emt.extxyz")
    assert len(out) == len(back) == len(frames)
    for atoms, labelled, stored in zip(frames, out, back):
        periodic = atoms.pbc.all()
        ref = _direct(atoms, stress=periodic)
        for result in (labelled, stored):
            assert result.get_potential_energy() == ref["energy"]
            np.testing.assert_array_equal(result.get_forces(), ref["forces"])
            if periodic:
                np.testing.assert_array_equal(result.get_stress(), ref["stress"])
            else:
                assert "stress" not in result.calc.results  # stress only for periodic structures
            np.testing.assert_array_equal(result.positions, atoms.positions)
    assert frames[0].calc is None  # inputs untouched


def test_resume_after_crash(tmp_path):
    frames = _structures(n=7)
    path = tmp_path / "run.extxyz"
    k = 4
    with pytest.raises(LabellingError, match=f"frame {k}") as info:
        label(frames, CountingEMT(fail_at=k), path, progress=False)
    assert info.value.frame == k
    assert len(read(path)) == k  # everything before the crash is on disk

    calc = CountingEMT()
    out = label(frames, calc, path, progress=False)
    assert calc.calls == len(frames) - k  # only the missing frames were computed
    back = read(path)
    assert len(out) == len(back) == len(frames)
    for atoms, stored in zip(frames, back):  # no duplicates, input order
        np.testing.assert_array_equal(stored.positions, atoms.positions)
        assert stored.get_potential_energy() == _direct(atoms, False)["energy"]

    again = CountingEMT()
    label(frames, again, path, progress=False)  # nothing left to do
    assert again.calls == 0 and len(read(path)) == len(frames)


def test_resume_drops_partial_last_frame(tmp_path):
    frames = _structures(n=4)
    path = tmp_path / "partial.extxyz"
    label(frames[:2], EMT(), path, progress=False)
    text = path.read_text()
    label(frames[:3], EMT(), path, progress=False)
    full = path.read_text()
    path.write_text(full[: len(text) + (len(full) - len(text)) // 2])  # interrupted mid-frame
    with pytest.warns(UserWarning, match="incomplete last frame"):
        out = label(frames, EMT(), path, progress=False)
    back = read(path)
    assert len(out) == len(back) == 4
    for atoms, stored in zip(frames, back):
        np.testing.assert_array_equal(stored.positions, atoms.positions)


def test_resume_refuses_foreign_file(tmp_path):
    path = tmp_path / "other.extxyz"
    label(_structures(n=3, seed=1), EMT(), path, progress=False)
    with pytest.raises(ValueError, match="belongs to other structures"):
        label(_structures(n=3, seed=2), EMT(), path, progress=False)
    with pytest.raises(ValueError, match="belongs to other structures"):
        label(_structures(n=2, seed=1), EMT(), path, progress=False)  # fewer structures than frames
    with pytest.raises(ValueError, match="other properties"):
        label(_structures(n=3, seed=1), EMT(), path, properties=("energy", "forces", "energies"), progress=False)
    # resume=False starts over
    fresh = label(_structures(n=2, seed=2), EMT(), path, resume=False, progress=False)
    assert len(fresh) == len(read(path)) == 2


def test_resume_refuses_non_xyz_file(tmp_path):
    path = tmp_path / "notes.extxyz"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match="cannot resume"):
        label(_structures(n=1), EMT(), path, progress=False)
    assert path.read_text() == "hello\n"  # left alone


def test_non_finite_results_are_errors(tmp_path):
    class NaNEMT(EMT):
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            self.results["energy"] = float("nan")

    with pytest.raises(LabellingError, match="non-finite 'energy' for frame 0"):
        label(_structures(n=1), NaNEMT(), tmp_path / "nan.extxyz", progress=False)


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    label(_structures(n=2), EMT(), tmp_path / "p.extxyz", progress=True)
    assert "labelling p.extxyz" in capsys.readouterr().err
    label(_structures(n=2), EMT(), tmp_path / "q.extxyz", progress=False)
    assert capsys.readouterr().err == ""


def test_xtb_calculator_missing_tblite(monkeypatch):
    monkeypatch.setitem(sys.modules, "tblite.ase", None)
    with pytest.raises(ImportError, match="pip install tblite"):
        xtb_calculator()


def test_xtb_labels_small_molecules(tmp_path, capfd):
    pytest.importorskip("tblite.ase")
    molecules = [alkane(1), polyene(2)]
    out = label(molecules, xtb_calculator(), tmp_path / "xtb.extxyz", progress=False, threads=1)
    assert capfd.readouterr().out == ""  # quiet
    for labelled in out:
        assert np.isfinite(labelled.get_potential_energy())
        assert np.abs(labelled.get_forces().sum(axis=0)).max() < 1e-6  # isolated molecule
    # forces are -dE/dx in eV/Å: central difference on one coordinate of methane
    calc = xtb_calculator()
    h = 1e-3
    energies = []
    with openmp_threads(1):
        for s in (1, -1):
            moved = molecules[0].copy()
            moved.positions[1, 0] += s * h
            moved.calc = calc
            energies.append(moved.get_potential_energy())
    assert out[0].get_forces()[1, 0] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=2e-3)


def test_openmp_threads_is_restored():
    pytest.importorskip("tblite.ase")  # loads an OpenMP runtime
    from jaxmlp.data.label import _openmp_runtimes

    libs = _openmp_runtimes()
    if not libs:
        pytest.skip("no OpenMP runtime visible in this process")
    before = [lib.omp_get_max_threads() for lib in libs]
    with openmp_threads(1):
        assert all(lib.omp_get_max_threads() == 1 for lib in libs)
    assert [lib.omp_get_max_threads() for lib in libs] == before
    with openmp_threads(None):
        assert [lib.omp_get_max_threads() for lib in libs] == before
