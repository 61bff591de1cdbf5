"""One atomic writer and one strict-JSON writer for every file jaxmlp writes.

:func:`atomic_write` writes into a temporary file with a unique name in the
destination folder, flushes and fsyncs it, gives it the permissions a plain
``open(path, "w")`` would (umask honoured), then renames it over the
destination with :func:`os.replace`. A reader therefore sees either the old
file or the complete new one, never a partial file, and a crash leaves no
half-written destination. The temporary name comes from :func:`tempfile.mkstemp`
(``O_EXCL``), so it never follows a symlink planted at a predictable name.
If the destination itself is a symlink, the link is replaced by the new file
(the link target is left untouched).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

__all__ = ["atomic_write", "json_ready", "write_json"]


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path, write_fn: Callable[[IO], None], *, binary: bool = False, make_parents: bool = False) -> Path:
    """Write ``path`` atomically by calling ``write_fn(fh)`` on a temporary file.

    Parameters
    ----------
    path: destination file.
    write_fn: called once with the open temporary file (text, UTF-8, ``\\n``
        newlines, or binary when ``binary=True``).
    binary: open the temporary file in binary mode.
    make_parents: create missing parent folders; otherwise a missing folder
        raises :class:`FileNotFoundError` naming it.

    Returns the destination as a :class:`pathlib.Path`. On any exception the
    temporary file is removed and the destination is unchanged.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise FileNotFoundError(f"folder does not exist: {str(folder)!r} (writing {str(target)!r})")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        if binary:
            fh = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        with fh:
            write_fn(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def json_ready(x):
    """A JSON-ready copy: numpy/jax → Python, non-finite floats → ``None`` (strict JSON has no NaN/Infinity)."""
    if isinstance(x, dict):
        return {str(k): json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_ready(x.tolist())
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist"):  # jax arrays and other array-likes
        return json_ready(x.tolist())
    return str(x)


def write_json(path, obj: Any, *, indent: int | None = 2, make_parents: bool = True) -> Path:
    """Write ``obj`` as strict JSON (NaN/±inf → ``null``), atomically. Returns the path."""
    text = json.dumps(json_ready(obj), indent=indent, allow_nan=False)
    return atomic_write(path, lambda fh: fh.write(text + "\n"), make_parents=make_parents)
