"""Training: losses, Taylor-expansion force data, the jitted multi-device loop, metrics.

Quick start::

    from jaxmlp.training import TrainConfig, train, evaluate
    params, history = train(model, train_set, valid_set, TrainConfig(loss="forces", epochs=50))
    print(evaluate(model, params, test_set))

Several processes or hosts: call ``jaxmlp.training.distributed.initialize()``
first in every process (start them with ``python -m jaxmlp.training.launch``
on one machine, or ``srun`` under SLURM); see ``docs/distributed.md``.
"""

from .checkpoint import CheckpointManager
from .config import TrainConfig
from .loop import (
    data_mesh,
    device_batches,
    is_converged,
    learning_rate_schedule,
    make_eval_step,
    make_optimiser,
    make_train_step,
    run_fingerprint,
    train,
)
from .losses import energy_loss, force_loss, loss, loss_sums, penalty, stress_loss
from .metrics import evaluate, force_angle_errors, learning_curve_plot, nve_energy_drift, parity_plot
from .taylor import taylor_augment, taylor_displacements, taylor_energy

__all__ = [
    "TrainConfig",
    "train",
    "is_converged",
    "make_optimiser",
    "learning_rate_schedule",
    "run_fingerprint",
    "make_train_step",
    "make_eval_step",
    "device_batches",
    "data_mesh",
    "CheckpointManager",
    "loss",
    "loss_sums",
    "penalty",
    "energy_loss",
    "force_loss",
    "stress_loss",
    "taylor_displacements",
    "taylor_energy",
    "taylor_augment",
    "evaluate",
    "force_angle_errors",
    "parity_plot",
    "learning_curve_plot",
    "nve_energy_drift",
]
