"""Checkpoints: an interrupted and resumed run ends with exactly the same parameters."""

import os

import numpy as np
import pytest

from jaxmlp.models import morse
from jaxmlp.training import CheckpointManager, TrainConfig, train

from helpers import morse_frames

data = pytest.importorskip("jaxmlp.data")


def _sets():
    frames = morse_frames([5] * 10)
    ds = data.Dataset.from_atoms(frames)
    return ds[:7], ds[7:]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("optimiser", ["adam", "lbfgs"])
def test_resume_is_exact(tmp_path, optimiser):
    tr, va = _sets()
    model = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5)
    cfg = TrainConfig(loss="forces", epochs=4, batch_size=3, learning_rate=0.01, schedule="cosine", optimiser=optimiser)
    ref_params, ref_hist = train(model, tr, va, cfg.replace(checkpoint_dir=str(tmp_path / "a")))

    def stop_after_two(epoch, record):
        if epoch == 2:
            raise Interrupt

    run = cfg.replace(checkpoint_dir=str(tmp_path / "b"))
    with pytest.raises(Interrupt):
        train(model, tr, va, run, callback=stop_after_two)
    assert CheckpointManager(run.checkpoint_dir).latest_step == 2
    params, hist = train(model, tr, va, run)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    for k in ref_params:
        assert np.array_equal(np.asarray(params[k]), np.asarray(ref_params[k])), k
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in ref_hist]
    # a finished run resumes to a no-op that returns the same parameters
    again, hist2 = train(model, tr, va, run)
    assert len(hist2) == 4 and all(np.array_equal(again[k], params[k]) for k in params)
    # only complete checkpoints (no temporary directories) are left behind
    assert all(not name.startswith(".") and "tmp" not in name for name in os.listdir(run.checkpoint_dir))


def test_manager_errors(tmp_path):
    mgr = CheckpointManager(tmp_path / "empty")
    assert mgr.latest_step is None
    with pytest.raises(FileNotFoundError):
        mgr.restore({"x": np.zeros(2)})
    with pytest.raises(ValueError, match="max_to_keep"):
        CheckpointManager(tmp_path / "x", max_to_keep=0)
    mgr.save(3, {"x": np.arange(3.0)}, {"note": "hi"})
    state, meta = mgr.restore({"x": np.zeros(3)})
    np.testing.assert_array_equal(state["x"], [0.0, 1.0, 2.0])
    assert meta == {"note": "hi"}
