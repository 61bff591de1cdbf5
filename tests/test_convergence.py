"""Convergence test of the training loop: is_converged on analytic curves, and train() stopping when the loss is flat."""

import math

import numpy as np
import pytest
from test_training_loop import MODEL, TRUE, morse_dataset

from jaxmlp.models import morse
from jaxmlp.training import TrainConfig, is_converged, run_fingerprint, train


def test_is_converged_on_analytic_curves():
    k = np.arange(60)
    geometric = 2.0 ** -k  # halves every step: never flat to 1e-3
    assert not any(is_converged(geometric[: n + 1], 5, 1e-3) for n in range(len(k)))
    plateau = 1.0 + np.exp(-k)  # the gain over a 5-step window at step n is ~exp(-(n-5)): flat once that is < 1e-3
    flags = [is_converged(plateau[: n + 1], 5, 1e-3) for n in range(len(k))]
    first = flags.index(True)
    assert all(flags[first:])
    # the first n where the best before the window (1 + e^-(n-5)) exceeds the window's best (1 + e^-n) by <= 1e-3·(1 + e^-(n-5))
    expected = next(n for n in range(6, 60) if (math.exp(-(n - 5)) - math.exp(-n)) <= 1e-3 * (1 + math.exp(-(n - 5))))
    assert first == expected
    assert is_converged([1.0, 0.5, 0.6, 0.7], 2, 0.0)  # rising after the minimum (over-fitting) is flat
    assert not is_converged([1.0, 0.5], 2, 0.1)  # too short for a window of 2
    assert not is_converged([float("nan"), 1.0, 1.0], 1, 0.1)
    assert is_converged([0.0, 0.0, 0.0], 1, 0.0)  # zero loss: flat with zero tolerance
    assert is_converged([1.0, 0.999], 1, 0.0, atol=2e-3)


@pytest.mark.parametrize("window, rtol", [(0, 1e-3), (1.5, 1e-3), (True, 1e-3), (2, -1.0), (2, float("inf"))])
def test_is_converged_rejects_bad_arguments(window, rtol):
    with pytest.raises(ValueError):
        is_converged([1.0, 1.0, 1.0], window, rtol)


@pytest.mark.parametrize("kwargs, error", [(dict(convergence_window=0), ValueError), (dict(convergence_rtol=-1e-3), ValueError),
                                           (dict(convergence_window=True), TypeError), (dict(convergence_rtol="1e-3"), TypeError)])
def test_config_checks_convergence_fields(kwargs, error):
    with pytest.raises(error, match="convergence"):
        TrainConfig(**kwargs)


def test_lbfgs_on_an_unrepresentable_potential_converges_and_stops():
    # labels from a Morse potential with a 3.5 Å cutoff, model cut at 3.0 Å: the loss has a positive minimum
    short = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.0)
    tr, va = morse_dataset(8, seed=1, model=TRUE), morse_dataset(4, seed=2, model=TRUE)
    cfg = TrainConfig(loss="forces", optimiser="lbfgs", epochs=80, batch_size=8, shuffle=False,
                      convergence_window=3, convergence_rtol=1e-6)
    params, hist = train(short, tr, va, cfg)
    assert len(hist) < 80
    assert hist[-1]["stop"] == "converged" and hist[-1]["converged"] is True
    assert not any(h["converged"] for h in hist[:-1])
    assert hist[-1]["valid_loss"] > 1e-6  # a positive plateau, not an exact fit
    scores = [h["valid_loss"] for h in hist]
    assert is_converged(scores, 3, 1e-6) and not is_converged(scores[:-1], 3, 1e-6)


def test_slow_adam_does_not_converge_in_the_budget(sets_small):
    tr, va = sets_small
    cfg = TrainConfig(loss="forces", epochs=4, batch_size=4, learning_rate=1e-3, schedule="constant",
                      convergence_window=2, convergence_rtol=1e-6)
    _, hist = train(MODEL, tr, va, cfg)
    assert len(hist) == 4 and all("stop" not in h for h in hist)
    assert [h["converged"] for h in hist] == [False] * 4
    assert all(b["valid_loss"] < a["valid_loss"] for a, b in zip(hist, hist[1:]))  # still falling every epoch
    _, plain = train(MODEL, tr, va, cfg.replace(convergence_window=None))
    assert all("converged" not in h for h in plain)
    assert [h["train_loss"] for h in plain] == [h["train_loss"] for h in hist]  # the test does not change the trajectory


def test_convergence_settings_do_not_enter_the_resume_fingerprint(sets_small):
    tr, va = sets_small
    cfg = TrainConfig(loss="forces", epochs=3)
    assert run_fingerprint(MODEL, tr, va, cfg) == run_fingerprint(MODEL, tr, va, cfg.replace(convergence_window=5, convergence_rtol=0.1))


@pytest.fixture(scope="module")
def sets_small():
    return morse_dataset(8, seed=1), morse_dataset(4, seed=2)
