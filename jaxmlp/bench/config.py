"""Config files for ``jaxmlp-bench train`` (TOML, YAML or JSON).

Example (TOML)::

    [model]
    kind = "hdnnp"        # lj | morse | hdnnp | mlace
    cutoff = 5.0
    n_layers = 2          # ml-ACE only
    basis = "default"     # ml-ACE only: default | small (jaxmlp.models.mlace.PRESETS)

    [data]
    path = "train.extxyz" # omit for a built-in dataset
    default = "cu_clusters_emt"
    n = 60
    split = [0.8, 0.1, 0.1]

    [training]            # any field of jaxmlp.training.TrainConfig
    loss = "forces"
    epochs = 50
    learning_rate = 0.003
"""

from __future__ import annotations

import json
import pathlib
import time

from .common import CLIError, load_structures, plot_xy, write_json

_SECTIONS = {"model", "data", "training"}


def load_config(path) -> dict:
    """Parse a TOML/YAML/JSON config file into a dict, with clear errors."""
    path = pathlib.Path(path)
    if not path.exists():
        raise CLIError(f"config file not found: {path}")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            cfg = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise CLIError("YAML configs need PyYAML (pip install pyyaml); TOML works without it") from None
            cfg = yaml.safe_load(text)
        elif suffix == ".json":
            cfg = json.loads(text)
        else:
            raise CLIError(f"unknown config format {suffix!r}: use .toml, .yaml or .json")
    except CLIError:
        raise
    except Exception as exc:
        raise CLIError(f"cannot parse config {path}: {exc}") from exc
    if not isinstance(cfg, dict):
        raise CLIError(f"config {path} must be a table/mapping at the top level")
    unknown = set(cfg) - _SECTIONS
    if unknown:
        raise CLIError(f"unknown config section(s) {sorted(unknown)} in {path}; allowed: {sorted(_SECTIONS)}")
    if "model" not in cfg:
        raise CLIError(f"config {path} needs a [model] section")
    return cfg


def run_config(cfg: dict, out: pathlib.Path, seed: int = 0, progress: bool = True) -> dict:
    """Train the model described by ``cfg``; save model, history and metrics in ``out``."""
    import jaxmlp
    from jaxmlp import training

    from .studies import _errors, make_model

    mcfg = dict(cfg["model"])
    dcfg = dict(cfg.get("data", {}))
    tcfg = dict(cfg.get("training", {}))
    kind = mcfg.pop("kind", None)
    if kind is None:
        raise CLIError("[model] needs kind = lj | morse | hdnnp | mlace")
    cutoff = float(mcfg.pop("cutoff", 5.0))
    n_layers = int(mcfg.pop("n_layers", 1))
    basis = str(mcfg.pop("basis", "default"))
    if mcfg:
        raise CLIError(f"unknown [model] option(s): {sorted(mcfg)}")
    ds = load_structures(dcfg.get("path"), dcfg.get("default", "cu_clusters_emt"), int(dcfg.get("n", 60)), seed)
    split = tuple(dcfg.get("split", (0.8, 0.1, 0.1)))
    train_set, valid_set, test_set = ds.split(split, seed=seed)
    model = make_model(kind, ds.elements, cutoff, n_layers=n_layers, dataset=train_set, basis=basis)
    tcfg.setdefault("seed", seed)
    tcfg.setdefault("progress", progress)
    try:
        config = training.TrainConfig(**tcfg)
    except TypeError as exc:
        raise CLIError(f"bad [training] section: {exc}") from exc
    t0 = time.perf_counter()
    params, history = training.train(model, train_set, valid_set, config)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.jaxmlp"
    jaxmlp.save(model_path, model, params)
    metrics = _errors(model, params, test_set)
    hist = history if isinstance(history, (list, dict)) else getattr(history, "__dict__", str(history))
    files = [model_path, write_json(out / "train.json", {"study": "train", "config": cfg, "seconds": seconds, "test_metrics": metrics, "history": hist})]
    curve = _loss_curve(hist)
    if curve:
        files.append(plot_xy(out / "train.png", curve, "epoch", "loss", "learning curve", logy=True))
    return {"files": files, "metrics": metrics}


def _loss_curve(hist):
    """Extract ``name -> (epochs, values)`` series from a history object."""
    series = {}
    if isinstance(hist, list) and hist and isinstance(hist[0], dict):
        for key in ("train_loss", "valid_loss"):
            vals = [h[key] for h in hist if key in h]
            if vals:
                series[key] = (list(range(1, len(vals) + 1)), vals)
    elif isinstance(hist, dict):
        for key in ("train_loss", "valid_loss"):
            if key in hist and len(hist[key]):
                series[key] = (list(range(1, len(hist[key]) + 1)), list(hist[key]))
    return series
