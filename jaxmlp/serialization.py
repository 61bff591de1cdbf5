"""Save and load any registered model with its parameters.

File format (one ``.npz`` file, written atomically):

* ``__header__``: a JSON string ``{"format": "jaxmlp-model", "version": 1,
  "model": name, "config": {...}, "leaves": [[path, dtype, shape], ...],
  "jaxmlp_version": "..."}``; the model is re-created with
  :func:`jaxmlp.models.build_model` (``name``, ``config``);
* one array per parameter leaf, keyed ``p/<path>`` where ``<path>`` joins the
  dict keys / list indices of the parameter pytree with ``/``.

Parameter trees are nested dicts (and lists/tuples) of arrays, which covers
every jaxmlp model.
"""

from __future__ import annotations

import inspect
import json
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .models.base import MODEL_REGISTRY, Model, build_model
from .utils import atomic_write

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load", "save"]

FORMAT_NAME = "jaxmlp-model"
FORMAT_VERSION = 1


def _flatten(tree, prefix, out):
    if isinstance(tree, dict):
        for k in sorted(tree):
            if not isinstance(k, str) or "/" in k:
                raise ValueError(f"parameter keys must be strings without '/', got {k!r}")
            _flatten(tree[k], f"{prefix}/{k}" if prefix else k, out)
    elif isinstance(tree, (list, tuple)):
        out.append((prefix, "__list__" if isinstance(tree, list) else "__tuple__", len(tree)))
        for i, v in enumerate(tree):
            _flatten(v, f"{prefix}/{i}" if prefix else str(i), out)
    else:
        arr = np.asarray(tree)
        if arr.dtype == object:
            raise TypeError(f"parameter leaf {prefix!r} is not an array: {type(tree).__name__}")
        out.append((prefix, arr, None))


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"model config value of type {type(obj).__name__} is not JSON-serialisable")


def save(path, model: Model, params) -> None:
    """Write ``model`` (registry name + config) and ``params`` to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Target file (conventionally ``*.npz``); replaced atomically.
    model : Model
        Any model built by a registered factory.
    params : pytree of arrays
        Nested dicts/lists of arrays.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`Model` or its config is not JSON-able.
    ValueError
        If the model's name is not registered.
    """
    if not isinstance(model, Model):
        raise TypeError(f"save expects a jaxmlp Model, got {type(model).__name__}")
    if model.name not in MODEL_REGISTRY:
        raise ValueError(f"model {model.name!r} is not registered; it could not be loaded again")
    leaves: list = []
    _flatten(params, "", leaves)
    arrays, index = {}, []
    for p, arr, n in leaves:
        if isinstance(arr, str):
            index.append([p, arr, n])
        else:
            arrays[f"p/{p}"] = arr
            index.append([p, str(arr.dtype), list(arr.shape)])
    from . import __version__

    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": model.name,
        "config": model.config,
        "leaves": index,
        "jaxmlp_version": __version__,
    }
    text = json.dumps(header, default=_json_default, allow_nan=True)
    atomic_write(
        path, lambda fh: np.savez(fh, __header__=np.array(text), **arrays), binary=True, make_parents=True
    )


def _set(tree, parts, value):
    for p in parts[:-1]:
        tree = tree.setdefault(p, {})
    tree[parts[-1]] = value


def _rebuild(node):
    """Turn ``{"__seq__": kind, "0": ..., "1": ...}`` markers back into lists/tuples."""
    if not isinstance(node, dict):
        return node
    kind = node.pop("__seq__", None)
    children = {k: _rebuild(v) for k, v in node.items()}
    if kind is None:
        return children
    seq = [children[str(i)] for i in range(len(children))]
    return seq if kind == "__list__" else tuple(seq)


def _rebuild_model(path: Path, name: str, config) -> Model:
    """``build_model(name, config)`` with errors that name the file and the offending keys."""
    if not isinstance(config, dict):
        # a corrupt file, not a caller passing a wrong type: ValueError like every other load error
        raise ValueError(f"{path}: model config must be a JSON object, got {type(config).__name__}")  # noqa: TRY004
    factory = MODEL_REGISTRY[name]
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins or C callables without a signature
        signature = None
    if signature is not None:
        params = signature.parameters
        takes_any = any(q.kind is inspect.Parameter.VAR_KEYWORD for q in params.values())
        named = [k for k, q in params.items() if q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY)]
        unknown = sorted(set(config) - set(named))
        if unknown and not takes_any:
            raise ValueError(
                f"{path}: saved config of model {name!r} has key(s) {unknown} that this jaxmlp's "
                f"{name} does not accept (accepted: {sorted(named)}); the file was probably "
                "written by another jaxmlp version"
            )
        missing = sorted(
            k for k in named if params[k].default is inspect.Parameter.empty and k not in config
        )
        if missing:
            raise ValueError(f"{path}: saved config of model {name!r} lacks required key(s) {missing}")
    try:
        return build_model(name, config)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: cannot re-create model {name!r} from its saved config: {err}") from err


def load(path):
    """Read a file written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    (Model, params)
        The re-created model and its parameters (``jax`` arrays with the
        saved dtypes, subject to ``jax_enable_x64``).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a jaxmlp model file, is corrupt or truncated, has
        an unknown format version (newer than this jaxmlp), names an
        unregistered model, has a model config with keys the model does not
        accept (or lacks required ones; the message names the file and the
        keys), or misses parameter arrays.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as data:
            files = set(data.files)
            if "__header__" not in files:
                raise ValueError(f"{p} is not a jaxmlp model file (no header)")
            header = json.loads(str(data["__header__"][()]))
            arrays = {k: np.array(data[k]) for k in files if k.startswith("p/")}
    except ValueError as err:
        if "jaxmlp" in str(err):
            raise
        raise ValueError(f"{p} is corrupt or not a jaxmlp model file: {err}") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{p} is corrupt or not a jaxmlp model file: {type(err).__name__}: {err}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        found = header.get("format") if isinstance(header, dict) else header
        raise ValueError(f"{p} is not a jaxmlp model file (format {found!r})")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{p}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{p} was written with format version {version}, newer than this jaxmlp supports "
            f"({FORMAT_VERSION}); upgrade jaxmlp"
        )
    name = header.get("model")
    if name not in MODEL_REGISTRY:
        raise ValueError(f"{p}: unknown model {name!r}; registered models: {sorted(MODEL_REGISTRY)}")
    model = _rebuild_model(p, name, header.get("config", {}))
    tree: dict = {}
    root_leaf = None
    leaves = header.get("leaves", [])
    if not isinstance(leaves, list):
        raise ValueError(f"{p} is corrupt: 'leaves' in the header is not a list")
    for entry in leaves:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str) and isinstance(entry[1], str)):
            raise ValueError(f"{p} is corrupt: malformed parameter entry {entry!r} in the header")
        path_, kind, shape = entry
        parts = path_.split("/") if path_ else []
        if kind in ("__list__", "__tuple__"):
            if parts:
                _set(tree, parts + ["__seq__"], kind)
            else:
                tree["__seq__"] = kind
            continue
        key = f"p/{path_}"
        if key not in arrays:
            raise ValueError(f"{p} is corrupt: parameter array {path_!r} missing")
        arr = arrays[key]
        if list(arr.shape) != list(shape) or str(arr.dtype) != kind:
            raise ValueError(f"{p} is corrupt: parameter {path_!r} has shape {arr.shape} {arr.dtype}, header says {shape} {kind}")
        if not parts:
            root_leaf = jnp.asarray(arr)
        else:
            _set(tree, parts, jnp.asarray(arr))
    params = root_leaf if root_leaf is not None else _rebuild(tree)
    return model, params
