"""Start JAX's multi-process runtime for training across processes and hosts.

Every process of a run calls :func:`initialize` once, before any other JAX
computation, then :func:`jaxmlp.training.train` as usual: the data mesh spans
the devices of all processes, every process walks the same shuffled epoch
order and feeds only its own devices, and checkpoints are written
collectively.

Where the settings come from, first match wins:

1. the arguments of :func:`initialize`;
2. the environment set by :mod:`jaxmlp.training.launch`
   (``JAXMLP_COORDINATOR_ADDRESS``, ``JAXMLP_NUM_PROCESSES``,
   ``JAXMLP_PROCESS_ID``);
3. JAX's cluster auto-detection (SLURM, Open MPI, TPU pods), i.e. a plain
   ``jax.distributed.initialize()``.

On the CPU platform the cross-process collectives are gloo's
(``jax_cpu_collectives_implementation="gloo"``); without them a CPU
all-reduce across processes is not implemented.

Failure of a peer: when a process dies, the collectives of the others fail
(gloo reports the broken connection) or, at the latest after
``heartbeat_timeout`` seconds without heartbeats, the coordination service
stops the surviving processes with an error.  A run therefore never hangs
forever on a lost process; restart it and it resumes from the last
checkpoint (see ``TrainConfig.checkpoint_dir``).
"""

from __future__ import annotations

import os

import jax

__all__ = ["initialize", "is_initialized", "ENV_COORDINATOR", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID"]

ENV_COORDINATOR = "JAXMLP_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAXMLP_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXMLP_PROCESS_ID"

_STATE = {"initialized": False}


def is_initialized() -> bool:
    """True after a successful :func:`initialize` in this process."""
    return _STATE["initialized"]


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, heartbeat_timeout: int = 100, initialization_timeout: int = 300,
               shutdown_timeout: int = 60) -> tuple[int, int]:
    """Join this process to a multi-process JAX run; return ``(process_index, process_count)``.

    Parameters
    ----------
    coordinator_address : str, optional
        ``host:port`` of process 0's coordinator (default: the launcher's
        environment, else auto-detection).
    num_processes, process_id : int, optional
        Size of the run and this process's rank ``0 … num_processes − 1``.
    heartbeat_timeout : int
        Seconds without heartbeats after which a process counts as dead and
        the others are stopped with an error (JAX's default: 100).
    initialization_timeout : int
        Seconds to wait for all processes to connect.
    shutdown_timeout : int
        Seconds a finishing process waits for the others at shutdown.

    Raises
    ------
    ValueError
        Inconsistent settings (a rank outside ``0 … num_processes − 1``,
        only some of address/count/rank given, non-integer environment).
    RuntimeError
        Called a second time, or after JAX computations already started
        in this process (JAX's own error, re-raised with advice).
    """
    if _STATE["initialized"]:
        raise RuntimeError("jaxmlp.training.distributed.initialize was already called in this process")
    address = coordinator_address if coordinator_address is not None else os.environ.get(ENV_COORDINATOR) or None
    count = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    rank = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    given = [v is not None for v in (address, count, rank)]
    if any(given) and not all(given):
        raise ValueError(
            "give all of coordinator_address, num_processes and process_id (or the environment variables "
            f"{ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}) or none of them for auto-detection; got "
            f"coordinator_address={address!r}, num_processes={count!r}, process_id={rank!r}"
        )
    for name, value in (("heartbeat_timeout", heartbeat_timeout), ("initialization_timeout", initialization_timeout),
                        ("shutdown_timeout", shutdown_timeout)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer of seconds, got {value!r}")
    if count is not None:
        if count < 1:
            raise ValueError(f"num_processes must be >= 1, got {count}")
        if not 0 <= rank < count:
            raise ValueError(f"process_id must be in 0 … {count - 1}, got {rank}")
    platforms = os.environ.get("JAX_PLATFORMS", "") or str(jax.config.jax_platforms or "")
    if platforms == "" or "cpu" in platforms.split(","):
        # CPU all-reduce across processes needs gloo; harmless for GPU/TPU processes
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = dict(heartbeat_timeout_seconds=heartbeat_timeout, initialization_timeout=initialization_timeout,
                  shutdown_timeout_seconds=shutdown_timeout)
    if address is not None:
        kwargs.update(coordinator_address=address, num_processes=count, process_id=rank)
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as exc:
        raise RuntimeError(f"jax.distributed.initialize failed ({exc}); call jaxmlp.training.distributed.initialize "
                           "once per process, before any other JAX computation") from exc
    _STATE["initialized"] = True
    return jax.process_index(), jax.process_count()
