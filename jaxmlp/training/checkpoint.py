"""Training checkpoints with orbax-checkpoint (atomic, resumable).

A checkpoint at step ``epoch`` holds the training state pytree (``params``,
``opt_state``, ``best_params`` and scalar counters) and a JSON item with the
history and metadata.  Orbax writes every checkpoint into a temporary
directory and renames it when complete, so an interrupted write never leaves
a checkpoint that looks valid.  Restoring needs a *target* pytree of the same
structure (the freshly initialised state), so optax states (NamedTuples)
come back with their types.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

__all__ = ["CheckpointManager"]


class CheckpointManager:
    """Save and restore training states under ``directory``.

    Parameters
    ----------
    directory : str or os.PathLike
        Created if missing; must be writable.
    max_to_keep : int
        Newest checkpoints kept on disk.

    Notes
    -----
    Saves are synchronous (the call returns once the checkpoint is final),
    which keeps resumption exact and tests simple.  In a multi-host run
    (``jax.distributed.initialize``) every process must call :meth:`save`
    with the same step; orbax coordinates the write.
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        if not isinstance(max_to_keep, int) or max_to_keep < 1:
            raise ValueError(f"max_to_keep must be a positive integer, got {max_to_keep!r}")
        import orbax.checkpoint as ocp  # imported lazily: it is slow to import

        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        os.makedirs(self.directory, exist_ok=True)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True)
        self._mgr = ocp.CheckpointManager(self.directory, options=options)

    @property
    def latest_step(self) -> int | None:
        """Newest complete checkpoint's step (epoch), or None."""
        return self._mgr.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Write ``state`` (pytree of arrays) and ``meta`` (JSON-able dict) as ``step``."""
        ocp = self._ocp
        state = jax.tree.map(lambda x: np.asarray(jax.device_get(x)), state)
        self._mgr.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=True,
        )
        self._mgr.wait_until_finished()

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Load ``(state, meta)`` of ``step`` (default newest) into the structure of ``target``.

        Raises
        ------
        FileNotFoundError
            If there is no checkpoint.
        """
        step = self.latest_step if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        ocp = self._ocp
        abstract = jax.tree.map(lambda x: np.asarray(jax.device_get(x)), target)
        out = self._mgr.restore(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        return out["state"], out["meta"]

    def close(self) -> None:
        """Release orbax resources."""
        self._mgr.close()
