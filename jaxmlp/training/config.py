"""Training configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Any

import numpy as np

__all__ = ["TrainConfig", "LOSSES", "OPTIMISERS", "SCHEDULES", "LOSS_VARIANTS"]

LOSSES = ("energy", "forces", "taylor")
OPTIMISERS = ("adam", "lbfgs")
SCHEDULES = ("constant", "cosine", "exponential")
LOSS_VARIANTS = ("mse", "mae", "huber")
STRATEGIES = ("A", "B")


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`jaxmlp.training.train` needs besides model and data.

    Attributes
    ----------
    loss : {"energy", "forces", "taylor"}
        ``"energy"``: per-atom normalised energy MSE only.  ``"forces"``:
        direct force training ``(1−κ)·(ΔE/N)² + κ·|ΔF|²/(3N)`` per structure.
        ``"taylor"``: energy loss on the training set augmented with ``a``
        Taylor-expanded displaced structures per reference
        (:func:`jaxmlp.training.taylor_augment`).
    kappa : float
        Force weight κ ∈ [0, 1] of the direct force loss.
    variant : {"mse", "mae", "huber"}
        Residual penalty ρ applied to the per-atom energy residual and to each
        force component (``huber_delta`` in eV/atom resp. eV/Å).
    huber_delta : float
    stress_weight : float
        Weight of the stress term (eV/Å³)² (0: off; needs stress labels).
    delta : float
        Taylor displacement in Å: δ of strategy A, δ_max of strategy B.
    a : int
        Taylor structures generated per reference structure.
    strategy : {"A", "B"}
    optimiser : {"adam", "lbfgs"}
        ``"lbfgs"`` is ``optax.lbfgs`` with its zoom line search evaluated on
        the current batch (use ``batch_size >= len(train_set)`` for a true
        full-batch L-BFGS as in the paper).
    learning_rate : float
        Peak Adam learning rate (ignored by L-BFGS, which line-searches).
    schedule : {"constant", "cosine", "exponential"}
    decay_rate : float
        Exponential schedule: factor per epoch, ``lr·decay_rate^(t/S)`` at
        step ``t`` with ``S`` steps per epoch.  Cosine: final fraction of the
        peak rate, ``lr·(d + (1−d)·(1 + cos(π·t/T))/2)`` over the ``T`` steps
        after warm-up.
    warmup_epochs : int
        Linear warm-up before the schedule (Adam only): with ``W`` warm-up
        steps, step ``t < W`` (0-based) uses ``lr·(t+1)/W`` and step ``t ≥ W``
        the schedule at ``t − W`` (see
        :func:`jaxmlp.training.learning_rate_schedule`).
    grad_clip : float or None
        Global-norm gradient clipping (Adam only).
    epochs : int
    batch_size : int
        Structures per optimisation step over all devices together; each of
        the D local devices gets ``ceil(batch_size / D)`` of them.
    buckets : Buckets or None
        Fixed padded sizes of one device's sub-batch (None: chosen once from
        the data so that the whole run compiles a single program).
    shuffle : bool
    seed : int
        Seeds parameter initialisation, shuffling and Taylor displacements:
        a run is deterministic given the seed.
    patience : int or None
        Early stopping after this many epochs without validation improvement
        (the returned parameters are those of the best epoch).
    convergence_window : int or None
        Convergence test on the selection loss (validation loss, or training
        loss without validation set): after every epoch the record gets
        ``"converged"`` = :func:`jaxmlp.training.is_converged` over the last
        ``convergence_window`` epochs with ``convergence_rtol``, and training
        stops (``"stop": "converged"``) at the first epoch where it holds.
        ``None``: no test and no ``"converged"`` key.
    convergence_rtol : float
        Relative tolerance of that test: the run is converged when the best
        loss of the last window improved on the best before it by at most
        this fraction.
    checkpoint_dir : str or None
        Orbax checkpoints (atomic); an existing checkpoint there is resumed
        (see ``resume``).
    checkpoint_every : int
        Epochs between checkpoints.
    keep_checkpoints : int
    resume : True or "force"
        ``True``: an existing checkpoint is resumed only if it was written
        for the same run — same model name and config, the same training
        settings that shape the trajectory (loss and its parameters,
        optimiser, learning-rate schedule, batch size, shuffling, seed,
        Taylor settings for ``loss="taylor"``, ``epochs`` for the cosine
        schedule) and the same training and validation data (a SHA-256 of
        numbers, positions, cells, pbc, energies, forces, stresses and
        weights); otherwise :func:`~jaxmlp.training.train` raises a
        ``ValueError`` listing what differs.  Settings that do not change the
        trajectory (``epochs`` of a non-cosine schedule, ``patience``, the convergence test,
        ``time_limit``, checkpointing, logging, ``buckets``) may change.
        ``"force"``: resume whatever differs (the parameter and optimiser
        trees must still fit the model).
    time_limit : float or None
        Stop after the first epoch at which the cumulative training time
        (seconds, steps only) reaches this budget — for equal-wall-time
        comparisons.  The last history record then has ``"stop":
        "time_limit"`` (``"patience"`` for early stopping, ``"converged"``
        for the convergence test).
    progress : bool
        tqdm progress bar over epochs.
    log_file : str or None
        Per-epoch history, written atomically after every epoch as CSV
        (``.csv``) or JSON (otherwise).

    Raises
    ------
    TypeError
        A field of the wrong type (``bool`` is not an integer or a number,
        strings are not booleans); the message names the field.
    ValueError
        A value out of range or an unknown choice; the message names the field.
    """

    loss: str = "forces"
    kappa: float = 0.5
    variant: str = "mse"
    huber_delta: float = 0.1
    stress_weight: float = 0.0
    delta: float = 0.01
    a: int = 8
    strategy: str = "B"
    optimiser: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    decay_rate: float = 0.1
    warmup_epochs: int = 0
    grad_clip: float | None = None
    epochs: int = 100
    batch_size: int = 8
    buckets: Any = None
    shuffle: bool = True
    seed: int = 0
    patience: int | None = None
    convergence_window: int | None = None
    convergence_rtol: float = 1e-3
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    resume: Any = True
    time_limit: float | None = None
    progress: bool = False
    log_file: str | None = None

    def __post_init__(self):
        def bad(msg):
            raise ValueError(f"TrainConfig: {msg}")

        def wrong_type(name, what):
            v = getattr(self, name)
            raise TypeError(f"TrainConfig: {name} must be {what}, got {type(v).__name__} {v!r}")

        def set_(name, value):  # normalise to plain Python types (frozen dataclass)
            object.__setattr__(self, name, value)

        for name, choices in (("loss", LOSSES), ("optimiser", OPTIMISERS), ("schedule", SCHEDULES),
                              ("variant", LOSS_VARIANTS), ("strategy", STRATEGIES)):
            v = getattr(self, name)
            if not isinstance(v, str):
                wrong_type(name, f"a string, one of {choices}")
            if v not in choices:
                bad(f"unknown {name} {v!r}; choose one of {choices}")
        for name, optional in (("kappa", False), ("huber_delta", False), ("stress_weight", False), ("delta", False),
                               ("learning_rate", False), ("decay_rate", False), ("grad_clip", True), ("convergence_rtol", False),
                               ("time_limit", True)):
            v = getattr(self, name)
            if v is None and optional:
                continue
            if not _is_real(v):
                wrong_type(name, "a real number" + (" or None" if optional else ""))
            set_(name, float(v))
            if not math.isfinite(float(v)):
                bad(f"{name} must be finite, got {v!r}")
        for name, lo, optional in (("epochs", 1, False), ("batch_size", 1, False), ("a", 1, False),
                                   ("checkpoint_every", 1, False), ("keep_checkpoints", 1, False),
                                   ("warmup_epochs", 0, False), ("seed", 0, False), ("patience", 1, True),
                                   ("convergence_window", 1, True)):
            v = getattr(self, name)
            if v is None and optional:
                continue
            if not _is_int(v):
                wrong_type(name, "an integer" + (" or None" if optional else ""))
            set_(name, int(v))
            if int(v) < lo:
                bad(f"{name} must be {'a positive' if lo == 1 else 'a non-negative'} integer, got {v!r}")
        if self.seed >= 2**63:
            bad(f"seed must be below 2**63, got {self.seed}")
        for name in ("shuffle", "progress"):
            v = getattr(self, name)
            if not isinstance(v, (bool, np.bool_)):
                wrong_type(name, "True or False")
            set_(name, bool(v))
        for name in ("checkpoint_dir", "log_file"):
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, (str, os.PathLike)):
                wrong_type(name, "a path (str or os.PathLike) or None")
            set_(name, os.fspath(v))
            if not getattr(self, name):
                bad(f"{name} must not be empty (use None for none)")
        if self.resume is not True and self.resume != "force":
            if not isinstance(self.resume, str):
                wrong_type("resume", "True or 'force'")
            bad(f"resume must be True or 'force', got {self.resume!r}")
        if self.buckets is not None:
            from ..graph.padding import Buckets

            if not isinstance(self.buckets, Buckets):
                wrong_type("buckets", "a jaxmlp.Buckets or None")
        if not 0.0 <= self.kappa <= 1.0:
            bad(f"kappa must lie in [0, 1], got {self.kappa!r}")
        for name in ("learning_rate", "delta", "huber_delta", "decay_rate"):
            if not getattr(self, name) > 0:
                bad(f"{name} must be a positive finite number, got {getattr(self, name)!r}")
        if self.convergence_rtol < 0:
            bad(f"convergence_rtol must be >= 0, got {self.convergence_rtol!r}")
        if self.stress_weight < 0:
            bad(f"stress_weight must be >= 0, got {self.stress_weight!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            bad(f"time_limit must be None or positive seconds, got {self.time_limit!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            bad(f"grad_clip must be None or positive, got {self.grad_clip!r}")

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-able dictionary (buckets as a list)."""
        d = dataclasses.asdict(self)
        if self.buckets is not None:
            d["buckets"] = list(self.buckets)
        return d
