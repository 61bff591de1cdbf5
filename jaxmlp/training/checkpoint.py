"""Training checkpoints with orbax-checkpoint (atomic, resumable).

A checkpoint at step ``epoch`` holds the training state pytree (``params``,
``opt_state``, ``best_params`` and scalar counters) and a JSON item with the
history and metadata.  Orbax writes every checkpoint into a temporary
directory and renames it when complete, so an interrupted write never leaves
a checkpoint that looks valid.  Restoring needs a *target* pytree of the same
structure (the freshly initialised state), so optax states (NamedTuples)
come back with their types.  Orbax owns the directory layout and its atomic
rename; this module writes no side files.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from ..utils import json_ready

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
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(json_ready(meta))),
            force=True,
        )
        self._mgr.wait_until_finished()

    def _step(self, step):
        step = self.latest_step if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return int(step)

    def restore_meta(self, step: int | None = None) -> dict:
        """Only the JSON item of ``step`` (default newest), without touching the arrays.

        Raises
        ------
        FileNotFoundError
            If there is no checkpoint.
        """
        step = self._step(step)
        out = self._mgr.restore(step, args=self._ocp.args.Composite(meta=self._ocp.args.JsonRestore()))
        return out["meta"]

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Load ``(state, meta)`` of ``step`` (default newest) into the structure of ``target``.

        Raises
        ------
        FileNotFoundError
            If there is no checkpoint.
        ValueError
            If the stored state does not have the tree structure, leaf
            shapes and dtypes of ``target`` (e.g. a checkpoint of another
            model or optimiser); the message names the first mismatching
            entries.
        """
        step = self._step(step)
        ocp = self._ocp
        abstract = jax.tree.map(lambda x: np.asarray(jax.device_get(x)), target)
        where = f"{self.directory} (step {step})"
        try:
            out = self._mgr.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
            )
        except (ValueError, KeyError, TypeError) as exc:
            try:
                stored = self._mgr.item_metadata(step)["state"]
                stored = getattr(stored, "tree", stored)
                problems = _tree_mismatches(abstract, stored)
            except Exception:  # noqa: BLE001 - the message below is the useful part
                problems = []
            if not problems:
                text = str(exc).strip()
                problems = [text.splitlines()[0][:500] if text else type(exc).__name__]
            raise ValueError(
                f"checkpoint {where} does not fit the current parameter/optimiser state "
                f"(another model, model size or optimiser?): " + "; ".join(problems[:5])
            ) from exc
        state = out["state"]
        problems = _tree_mismatches(abstract, state)
        if problems:
            raise ValueError(
                f"checkpoint {where} does not fit the current parameter/optimiser state "
                f"(another model, model size or optimiser?): " + "; ".join(problems[:5])
            )
        return state, out["meta"]

    def close(self) -> None:
        """Release orbax resources."""
        self._mgr.close()


def _tree_mismatches(expected: Any, got: Any) -> list[str]:
    """Human-readable differences in structure, shapes and dtypes between two pytrees."""
    exp_leaves, exp_def = jax.tree_util.tree_flatten_with_path(expected)
    got_leaves, got_def = jax.tree_util.tree_flatten_with_path(got)
    exp = {_path(k): v for k, v in exp_leaves}
    have = {_path(k): v for k, v in got_leaves}
    out = [f"{k} missing in the checkpoint" for k in exp if k not in have]
    out += [f"{k} only in the checkpoint" for k in have if k not in exp]
    for k in exp:
        if k in have:
            a, b = exp[k], have[k]
            sa, sb = tuple(np.shape(a)), tuple(getattr(b, "shape", np.shape(b)))
            da, db = np.asarray(a).dtype, np.dtype(getattr(b, "dtype", np.asarray(b).dtype))
            if sa != sb:
                out.append(f"{k} has shape {sb} in the checkpoint, {sa} now")
            elif da != db:
                out.append(f"{k} has dtype {db} in the checkpoint, {da} now")
    if not out and exp_def != got_def:
        out.append(f"tree structure differs: {got_def} in the checkpoint, {exp_def} now")
    return out


def _path(keys) -> str:
    """``a/b/0`` for a pytree key path (dict keys, attribute names and indices alike)."""
    parts = []
    for k in keys:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)
