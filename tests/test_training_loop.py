"""The training loop: it learns, it selects the best epoch, it stops early, it rejects bad input."""

import json

import jax
import numpy as np
import pytest
from ase.calculators.morse import MorsePotential

from jaxmlp.models import morse
from jaxmlp.training import TrainConfig, evaluate, train

from helpers import random_cell_atoms

data = pytest.importorskip("jaxmlp.data")


TRUE = morse(D=1.0, alpha=1.6, r0=1.3, cutoff=3.5)
MODEL = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5)  # same family, wrong parameters


def morse_dataset(n, seed=0, atoms=6, model=TRUE):
    """Random periodic 6-atom cells labelled by a reference Morse potential."""
    c = model.config  # ASE's MorsePotential is the same function (see jaxmlp.models.morse)
    frames = []
    for s in range(n):
        a = random_cell_atoms(atoms, np.eye(3) * 3.8, seed=1000 * seed + s, min_dist=1.05)
        a.calc = MorsePotential(epsilon=c["D"], rho0=c["alpha"] * c["r0"], r0=c["r0"], rcut1=c["onset"] / c["r0"],
                                rcut2=c["cutoff"] / c["r0"])
        a.get_forces()
        frames.append(a)
    return data.Dataset.from_atoms(frames)


@pytest.fixture(scope="module")
def sets():
    return morse_dataset(8, seed=1), morse_dataset(4, seed=2)


@pytest.mark.parametrize("loss", ["energy", "forces", "taylor"])
def test_training_reduces_loss_and_beats_untrained(sets, loss):
    tr, va = sets
    cfg = TrainConfig(loss=loss, epochs=20, batch_size=4, learning_rate=0.01, schedule="cosine", a=2, delta=0.01,
                      kappa=0.5)
    params, hist = train(MODEL, tr, va, cfg)
    assert len(hist) == 20
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    before = evaluate(MODEL, MODEL.init(None), va)
    after = evaluate(MODEL, params, va)
    # the returned parameters are those of the best validation epoch
    best = min(h["valid_energy_rmse"] if loss != "forces" else h["valid_loss"] for h in hist)
    if loss != "forces":
        assert after["energy_rmse"] == pytest.approx(best, rel=1e-9)
    assert after["energy_rmse"] < 0.6 * before["energy_rmse"]
    if loss == "forces":  # direct force training identifies the potential
        assert after["force_rmse"] < 0.5 * before["force_rmse"]
    if loss == "taylor":
        assert hist[0]["n_train"] == 8 * 3


def test_lbfgs_full_batch(sets):
    tr, va = sets
    cfg = TrainConfig(loss="forces", optimiser="lbfgs", epochs=4, batch_size=8, shuffle=False)
    params, hist = train(MODEL, tr, va, cfg)
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]


def test_deterministic_and_logged(sets, tmp_path):
    tr, va = sets
    cfg = TrainConfig(loss="forces", epochs=2, batch_size=3, learning_rate=0.01, seed=4,
                      log_file=str(tmp_path / "log.csv"))
    p1, h1 = train(MODEL, tr, va, cfg)
    p2, h2 = train(MODEL, tr, va, cfg.replace(log_file=str(tmp_path / "log.json")))
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    assert [h["train_loss"] for h in h1] == [h["train_loss"] for h in h2]
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0].startswith("epoch") and len(lines) == 3
    assert len(json.loads((tmp_path / "log.json").read_text())) == 2
    p3, _ = train(MODEL, tr, va, cfg.replace(seed=5, log_file=None))
    assert not all(np.array_equal(p1[k], p3[k]) for k in p1)  # another shuffle order


def test_early_stopping(sets):
    tr, _ = sets
    # validation data labelled by the *starting* model: training towards the
    # true potential makes validation worse every epoch, so it stops after
    # 1 + patience epochs and returns the first epoch's parameters
    va = morse_dataset(3, seed=3, model=MODEL)
    params, hist = train(MODEL, tr, va, TrainConfig(loss="forces", epochs=50, patience=3, batch_size=4,
                                                     learning_rate=0.01, schedule="constant"))
    assert len(hist) == 4
    assert all(h["valid_loss"] > hist[0]["valid_loss"] for h in hist[1:])
    assert abs(float(params["r0"]) - 1.45) < 0.03


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(loss="dipoles"), "unknown loss"),
        (dict(optimiser="sgd"), "unknown optimiser"),
        (dict(schedule="step"), "unknown schedule"),
        (dict(delta=0.0), "delta"),
        (dict(delta=-1e-3), "delta"),
        (dict(kappa=1.5), "kappa"),
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(learning_rate=float("nan")), "learning_rate"),
        (dict(strategy="C"), "strategy"),
        (dict(a=0), "a must"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_bad_data(sets):
    tr, va = sets
    cfg = TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="empty"):
        train(MODEL, tr[:0], va, cfg)
    with pytest.raises(ValueError, match="empty"):
        train(MODEL, tr, va[:0], cfg)
    with pytest.raises(TypeError, match="Dataset"):
        train(MODEL, list(tr), va, cfg)
    with pytest.raises(TypeError, match="TrainConfig"):
        train(MODEL, tr, va, {"loss": "forces"})
    bad = tr[0]
    bad.calc.results["energy"] = float("nan")
    with pytest.raises(ValueError, match="energy"):
        data.Dataset.from_atoms([bad])
    with pytest.raises(ValueError, match="unknown element"):
        train(MODEL.__class__(**{**vars(MODEL), "elements": (1,)}), tr, va, cfg)
