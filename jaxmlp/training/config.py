"""Training configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["TrainConfig", "LOSSES", "OPTIMISERS", "SCHEDULES", "LOSS_VARIANTS"]

LOSSES = ("energy", "forces", "taylor")
OPTIMISERS = ("adam", "lbfgs")
SCHEDULES = ("constant", "cosine", "exponential")
LOSS_VARIANTS = ("mse", "mae", "huber")
STRATEGIES = ("A", "B")


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
    taylor_order : int
        1 (the paper) — 2 needs reference Hessians and is only available
        through :func:`jaxmlp.training.taylor_displacements`.
    optimiser : {"adam", "lbfgs"}
        ``"lbfgs"`` is ``optax.lbfgs`` with its zoom line search evaluated on
        the current batch (use ``batch_size >= len(train_set)`` for a true
        full-batch L-BFGS as in the paper).
    learning_rate : float
        Peak Adam learning rate (ignored by L-BFGS, which line-searches).
    schedule : {"constant", "cosine", "exponential"}
    decay_rate : float
        Exponential schedule: factor per epoch.  Cosine: final fraction of
        the peak rate.
    warmup_epochs : int
        Linear warm-up before the schedule (Adam only).
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
        Early stopping after this many epochs without validation improvement.
    checkpoint_dir : str or None
        Orbax checkpoints (atomic); an existing checkpoint there is resumed.
    checkpoint_every : int
        Epochs between checkpoints.
    keep_checkpoints : int
    time_limit : float or None
        Stop after the first epoch at which the cumulative training time
        (seconds, steps only) reaches this budget — for equal-wall-time
        comparisons.
    progress : bool
        tqdm progress bar over epochs.
    log_file : str or None
        Per-epoch history, written as CSV (``.csv``) or JSON (otherwise).
    """

    loss: str = "forces"
    kappa: float = 0.5
    variant: str = "mse"
    huber_delta: float = 0.1
    stress_weight: float = 0.0
    delta: float = 0.01
    a: int = 8
    strategy: str = "B"
    taylor_order: int = 1
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
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    time_limit: float | None = None
    progress: bool = False
    log_file: str | None = None

    def __post_init__(self):
        def bad(msg):
            raise ValueError(f"TrainConfig: {msg}")

        if self.loss not in LOSSES:
            bad(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.optimiser not in OPTIMISERS:
            bad(f"unknown optimiser {self.optimiser!r}; choose one of {OPTIMISERS}")
        if self.schedule not in SCHEDULES:
            bad(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.variant not in LOSS_VARIANTS:
            bad(f"unknown loss variant {self.variant!r}; choose one of {LOSS_VARIANTS}")
        if self.strategy not in STRATEGIES:
            bad(f"unknown Taylor strategy {self.strategy!r}; choose 'A' or 'B'")
        for name in ("kappa",):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                bad(f"{name} must lie in [0, 1], got {v!r}")
        for name in ("learning_rate", "delta", "huber_delta", "decay_rate"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                bad(f"{name} must be a positive finite number, got {v!r}")
        if not (isinstance(self.stress_weight, (int, float)) and self.stress_weight >= 0):
            bad(f"stress_weight must be >= 0, got {self.stress_weight!r}")
        for name in ("epochs", "batch_size", "a", "checkpoint_every", "keep_checkpoints"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                bad(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(self.warmup_epochs, int) and self.warmup_epochs >= 0):
            bad(f"warmup_epochs must be a non-negative integer, got {self.warmup_epochs!r}")
        if self.patience is not None and not (isinstance(self.patience, int) and self.patience >= 1):
            bad(f"patience must be None or a positive integer, got {self.patience!r}")
        if self.time_limit is not None and not (self.time_limit > 0):
            bad(f"time_limit must be None or positive seconds, got {self.time_limit!r}")
        if self.grad_clip is not None and not (self.grad_clip > 0):
            bad(f"grad_clip must be None or positive, got {self.grad_clip!r}")
        if self.taylor_order not in (1,):
            bad("taylor_order must be 1 in training (second order needs reference Hessians: "
                "use taylor_displacements(..., hessian=H) and train with loss='energy')")

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-able dictionary (buckets as a list)."""
        d = dataclasses.asdict(self)
        if self.buckets is not None:
            d["buckets"] = list(self.buckets)
        return d
