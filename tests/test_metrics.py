"""Metrics: exact model has zero error, hand-checked angles, plots written, NVE energy conserved."""

import numpy as np
import pytest

from jaxmlp.models import morse
from jaxmlp.training import evaluate, force_angle_errors, learning_curve_plot, nve_energy_drift, parity_plot

from helpers import morse_frames

data = pytest.importorskip("jaxmlp.data")

TRUE = morse(D=1.0, alpha=1.6, r0=1.3, cutoff=3.5)


@pytest.fixture(scope="module")
def dataset():
    frames = morse_frames([5] * 5)
    return data.Dataset.from_atoms(frames)


def test_angles():
    ref = np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 1.0], [1.0, 0, 0]])
    pred = np.array([[2.0, 0, 0], [0, -1.0, 0], [1.0, 0, 1.0], [0, 0, 0]])
    ang = force_angle_errors(pred, ref)
    np.testing.assert_allclose(ang[:3], [0.0, 180.0, 45.0], atol=1e-6)
    assert np.isnan(ang[3])
    with pytest.raises(ValueError, match="shape"):
        force_angle_errors(pred[:2], ref)


def test_evaluate_exact_and_perturbed(dataset, tmp_path):
    exact = evaluate(TRUE, TRUE.init(None), dataset, batch_size=2)
    assert exact["energy_rmse"] < 1e-10 and exact["force_rmse"] < 1e-10
    assert exact["n_structures"] == 5 and exact["n_atoms"] == 25
    wrong = {"D": np.asarray(1.2), "alpha": np.asarray(1.6), "r0": np.asarray(1.3)}
    res = evaluate(TRUE, wrong, dataset, batch_size=2, return_predictions=True)
    # scaling D by 1.2 scales every energy and force by 1.2: errors are 0.2·|reference|
    e_ref = res["energy_ref"] / res["n_atoms_per_structure"]
    assert res["energy_rmse"] == pytest.approx(0.2 * np.sqrt(np.mean(e_ref**2)), rel=1e-8)
    assert res["force_rmse"] == pytest.approx(0.2 * np.sqrt(np.mean(res["forces_ref"] ** 2)), rel=1e-8)
    assert res["force_angle_mean"] == pytest.approx(0.0, abs=1e-4)
    assert res["force_norm_mae"] == pytest.approx(0.2 * np.mean(np.linalg.norm(res["forces_ref"], axis=1)), rel=1e-8)
    p = parity_plot(res, str(tmp_path / "parity.png"), title="test")
    hist = [{"epoch": i + 1, "valid_energy_rmse": 1.0 / (i + 1), "valid_force_rmse": 2.0 / (i + 1), "time": 0.1}
            for i in range(5)]
    q = learning_curve_plot({"a": hist}, str(tmp_path / "curve.png"), x="wall")
    for f in (p, q):
        with open(f, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="return_predictions"):
        parity_plot(exact, str(tmp_path / "x.png"))


@pytest.mark.filterwarnings("ignore:jaxmlp.training.metrics.nve_energy_drift is deprecated:DeprecationWarning")
def test_nve_energy_conservation():
    from ase.build import bulk

    model = morse(D=0.35, alpha=1.35, r0=2.6, cutoff=5.0)  # Cu-like Morse
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    with pytest.warns(DeprecationWarning, match="jaxmlp.validation.nve_energy_conservation"):
        res = nve_energy_drift(model, model.init(None), atoms, timestep_fs=1.0, steps=60, temperature_K=300, seed=0)
    assert len(res["energy_per_atom"]) == 61
    # observed: drift 8.2e-5 eV/atom/ps, max deviation 4.2e-6 eV/atom over 60 fs
    assert abs(res["drift"]) < 2e-4  # eV/atom/ps
    assert res["max_deviation"] < 1e-5
    assert res["temperature"].max() > 50
    # velocity Verlet: the energy error over the same 60 fs scales as dt² (observed ratios 4.00)
    dev = {dt: nve_energy_drift(model, model.init(None), atoms, timestep_fs=dt, steps=int(60 / dt), temperature_K=300,
                                seed=0)["max_deviation"] for dt in (2.0, 0.5)}
    dev[1.0] = res["max_deviation"]
    assert 3.5 < dev[2.0] / dev[1.0] < 4.5
    assert 3.5 < dev[1.0] / dev[0.5] < 4.5
    with pytest.raises(ValueError):
        nve_energy_drift(model, model.init(None), atoms, timestep_fs=0.0)
