"""Config files for ``jaxmlp-bench train`` (TOML, YAML or JSON), validated strictly.

Example (TOML)::

    [model]
    kind = "hdnnp"        # lj | morse | hdnnp | mlace
    cutoff = 5.0          # Å
    n_layers = 2          # ml-ACE only
    basis = "default"     # ml-ACE only: default | small (jaxmlp.models.mlace.PRESETS)

    [data]
    path = "train.extxyz" # a labelled file; or, instead of path, a built-in set:
    # default = "cu_clusters_emt"
    # n = 60
    split = [0.8, 0.1, 0.1]   # train, valid, test fractions

    [training]            # any field of jaxmlp.training.TrainConfig except buckets
    loss = "forces"
    epochs = 50
    learning_rate = 0.003

Every section and key is checked: an unknown or misspelt one (``pth`` for
``path``), a section that is not a table, or a value of the wrong type
raises :class:`~jaxmlp.bench.common.CLIError` (exit status 2) naming the
file, the section and the key, with the closest allowed names.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import pathlib
import time
from collections.abc import Callable
from typing import Any

from ..utils import write_json
from .common import CLIError, load_structures, plot_xy
from .factory import MODEL_KINDS, make_model, scalar_metrics

__all__ = ["load_config", "run_config", "run_train", "validate_config"]

DEFAULTS = {
    "model": {"cutoff": 5.0, "n_layers": 1, "basis": "default"},
    "data": {"default": "cu_clusters_emt", "n": 60, "split": [0.8, 0.1, 0.1]},
}


# ---------------------------------------------------------------- value checks (return the value or raise ValueError)
def _string(v):
    if not isinstance(v, str) or not v:
        raise ValueError("expected a non-empty string")
    return v


def _positive_number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError("expected a positive number")
    return float(v)


def _positive_int(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError("expected a positive integer")
    return v


def _one_of(choices) -> Callable[[Any], Any]:
    def check(v):
        if v not in choices:
            close = difflib.get_close_matches(str(v), list(choices), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"expected one of {', '.join(map(str, choices))}{hint}")
        return v

    return check


def _split(v):
    ok = isinstance(v, (list, tuple)) and len(v) == 3 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0 for x in v)
    if not ok or sum(v) > 1 + 1e-9 or v[0] == 0 or v[2] == 0:
        raise ValueError("expected [train, valid, test] fractions >= 0 summing to at most 1, train and test > 0")
    return [float(x) for x in v]


def _any(v):
    return v  # checked by TrainConfig itself


def _schema() -> dict[str, dict[str, Callable[[Any], Any]]]:
    from jaxmlp.data.generate import DEFAULT_DATASETS
    from jaxmlp.models.mlace import PRESETS
    from jaxmlp.training import TrainConfig

    training = {f.name: _any for f in dataclasses.fields(TrainConfig) if f.name != "buckets"}
    return {
        "model": {"kind": _one_of(MODEL_KINDS), "cutoff": _positive_number, "n_layers": _positive_int, "basis": _one_of(tuple(PRESETS))},
        "data": {"path": _string, "default": _one_of(tuple(DEFAULT_DATASETS)), "n": _positive_int, "split": _split},
        "training": training,
    }


def _unknown(name: str, allowed, what: str, where: str) -> CLIError:
    close = difflib.get_close_matches(name, list(allowed), n=2)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return CLIError(f"{where}: unknown {what} {name!r}{hint} (allowed: {', '.join(sorted(allowed))})")


def validate_config(cfg, source="config") -> dict:
    """Check a parsed config against the schema; return a normalised copy.

    ``source`` (the file name) prefixes every message. Raises
    :class:`CLIError` for an unknown section or key, a section that is not a
    table, a missing ``[model] kind``, a value of the wrong type, or
    ``path`` together with ``default``/``n`` in ``[data]``.
    """
    if not isinstance(cfg, dict):
        raise CLIError(f"{source}: the top level must be a table/mapping of sections, got {type(cfg).__name__}")
    schema = _schema()
    out: dict[str, dict] = {}
    for section, body in cfg.items():
        if section not in schema:
            raise _unknown(str(section), schema, "config section", source)
        if not isinstance(body, dict):
            raise CLIError(f"{source}: section [{section}] must be a table of key = value pairs, got {type(body).__name__}")
        checked = {}
        for key, value in body.items():
            if key not in schema[section]:
                raise _unknown(str(key), schema[section], f"key in [{section}]", source)
            try:
                checked[key] = schema[section][key](value)
            except ValueError as exc:
                raise CLIError(f"{source}: [{section}] {key} = {value!r}: {exc}") from None
        out[section] = checked
    if "kind" not in out.get("model", {}):
        raise CLIError(f"{source}: [model] needs kind = {' | '.join(MODEL_KINDS)}")
    data = out.get("data", {})
    if "path" in data and ({"default", "n"} & set(data)):
        extra = sorted({"default", "n"} & set(data))
        raise CLIError(f"{source}: [data] {', '.join(extra)} select a built-in data set and cannot be combined with path")
    return out


def load_config(path) -> dict:
    """Parse and validate a TOML/YAML/JSON config file (see the module docstring)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CLIError(f"config file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise CLIError(f"{path}: unknown config format {suffix!r}: use .toml, .yaml or .json")
    text = path.read_text()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise CLIError("YAML configs need PyYAML (pip install pyyaml); TOML works without it") from None
        parse, errors = yaml.safe_load, (yaml.YAMLError,)
    elif suffix == ".toml":
        import tomllib

        parse, errors = tomllib.loads, (tomllib.TOMLDecodeError,)
    else:
        parse, errors = json.loads, (json.JSONDecodeError,)
    try:
        cfg = parse(text)
    except errors as exc:
        raise CLIError(f"cannot parse config {path}: {exc}") from exc
    return validate_config(cfg, source=str(path))


def run_config(cfg: dict, out: pathlib.Path, seed: int = 0, progress: bool = True, source: str = "config") -> dict:
    """Train the model described by ``cfg``; save model, history and test metrics in ``out``.

    Writes ``model.jaxmlp`` (:func:`jaxmlp.save`), ``train.json`` (config,
    split, wall time, test metrics of :func:`jaxmlp.training.metrics.evaluate`
    on the test split, history) and ``train.png``.
    """
    import jaxmlp
    from jaxmlp import training

    cfg = validate_config(cfg, source)
    mcfg = {**DEFAULTS["model"], **cfg["model"]}
    dcfg = {**DEFAULTS["data"], **cfg.get("data", {})}
    tcfg = {"seed": seed, "progress": progress, **cfg.get("training", {})}
    try:
        config = training.TrainConfig(**tcfg)
    except (ValueError, TypeError) as exc:  # a value of the wrong type, e.g. time_limit = "1h"
        raise CLIError(f"{source}: [training]: {exc}") from None
    ds = load_structures(dcfg.get("path"), dcfg["default"], dcfg["n"], seed)
    train_set, valid_set, test_set = ds.split(dcfg["split"], seed=seed)
    if len(train_set) == 0 or len(test_set) == 0:
        raise CLIError(f"{source}: [data] split {dcfg['split']} of {len(ds)} structures leaves the "
                       f"{'training' if len(train_set) == 0 else 'test'} set empty")
    model = make_model(mcfg["kind"], ds.elements, mcfg["cutoff"], n_layers=mcfg["n_layers"], dataset=train_set, basis=mcfg["basis"])
    t0 = time.perf_counter()
    params, history = training.train(model, train_set, valid_set if len(valid_set) else None, config)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.jaxmlp"
    jaxmlp.save(model_path, model, params)
    metrics = scalar_metrics(model, params, test_set)
    record = {"study": "train", "config": cfg, "split": {"fractions": dcfg["split"], "seed": seed,
                                                        "sizes": [len(train_set), len(valid_set), len(test_set)]},
              "seconds": seconds, "test_metrics": metrics, "history": history}
    files = [model_path, write_json(out / "train.json", record)]
    curve = {key: ([h["epoch"] for h in history if key in h], [h[key] for h in history if key in h])
             for key in ("train_loss", "valid_loss") if any(key in h for h in history)}
    if curve:
        files.append(plot_xy(out / "train.png", curve, "epoch", "loss", "learning curve", logy=True))
    return {"files": files, "metrics": metrics}


def run_train(args, out: pathlib.Path) -> dict:
    """``jaxmlp-bench train --config FILE``: :func:`load_config` then :func:`run_config`."""
    cfg = load_config(args.config)
    return run_config(cfg, out, seed=args.seed, progress=not args.no_progress, source=args.config)
