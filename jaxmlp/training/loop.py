"""The training loop: one jitted, data-parallel ``train_step`` for every model.

Data parallelism
----------------
All devices form a 1-D :class:`jax.sharding.Mesh` with axis ``"data"``.  Each
step takes ``D`` padded sub-batches (one per device, the same bucket sizes)
stacked on a leading axis that is sharded over ``"data"``
(``NamedSharding(mesh, P("data"))``); parameters and optimiser state are
replicated (``P()``).  The step computes, per sub-batch, the weighted loss
numerator ``Σ_g w_g ℓ_g`` and the weight ``Σ_g w_g`` (:func:`loss_sums`),
sums both over devices and divides, so the loss (and its gradient) is the
weighted mean over all *real* structures of the global batch no matter how
they are spread over devices and padding.  XLA inserts the all-reduce.  One
device is the same code path with ``D = 1``; with ``batch_size`` divisible
by ``D`` and the same seed, 1 and ``D`` devices see the same global batches
and give the same parameters up to floating-point summation order.

Multi-process / multi-host (tested with 2 and 4 processes on localhost in
``tests/test_distributed.py``; see ``docs/distributed.md``): call
:func:`jaxmlp.training.distributed.initialize` in every process before
:func:`train`.  The mesh then spans ``jax.devices()`` of all processes; every
process iterates the same shuffled order and fills only the shards of its
own devices (``jax.make_array_from_callback``), so each structure is used
once per epoch.  Checkpoints are written by orbax collectively (all
processes call save) and hold host arrays, so a run resumes with another
process count.  A failed collective (a peer died) raises a ``RuntimeError``
that names the epoch and the checkpoint the restarted run resumes from.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..models.base import Model, check_elements
from ..utils import atomic_write, json_ready, write_json
from .checkpoint import CheckpointManager
from .config import TrainConfig
from .losses import loss_sums

__all__ = ["train", "is_converged", "make_optimiser", "learning_rate_schedule", "run_fingerprint", "make_train_step", "make_eval_step",
           "device_batches", "data_mesh"]


# ----------------------------------------------------------------- plumbing


def data_mesh(devices=None) -> Mesh:
    """1-D mesh ``("data",)`` over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), ("data",))


def _stack(batches):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches)


def _zero_weight(batch):
    return batch._replace(weight=np.zeros_like(batch.weight))


def model_triplets(model):
    """The ``triplets`` argument of :meth:`jaxmlp.data.Dataset.batches` for ``model``: its triplet
    filter when it has one (only the triplets that can contribute; same values), else whether it
    needs triplets at all."""
    tfilter = model.extras.get("triplet_filter") if model.needs_triplets else None
    return tfilter if tfilter is not None else bool(model.needs_triplets)


def device_batches(dataset, cutoff: float, buckets, n_devices: int, per_device: int, shuffle: bool, seed: int,
                   triplets=False) -> Iterator[Any]:
    """One epoch of global batches: ``n_devices`` padded sub-batches stacked on axis 0.

    Parameters
    ----------
    dataset : jaxmlp.data.Dataset
    cutoff : float
        Graph cutoff, Å.
    buckets : Buckets
        Sizes of one sub-batch.
    n_devices, per_device : int
        Sub-batches per step and structures per sub-batch.
    shuffle, seed
        Epoch order (``numpy.random.default_rng(seed)`` permutation).
    triplets : bool or TripletFilter (see :func:`model_triplets`)

    Yields
    ------
    Batch
        Every leaf has a leading axis of length ``n_devices``; a final
        incomplete group is filled with zero-weight copies (they add nothing
        to loss or gradient).
    """
    group = []
    for b in dataset.batches(cutoff, buckets=buckets, batch_size=per_device, shuffle=shuffle, seed=seed, triplets=triplets):
        group.append(b)
        if len(group) == n_devices:
            yield _stack(group)
            group = []
    if group:
        group += [_zero_weight(group[0])] * (n_devices - len(group))
        yield _stack(group)


def _put(tree, sharding):
    """Place a host batch stacked over all devices (leading axis) onto the mesh.

    Every process holds the same global host batch; each fills only the
    shards of its own devices (``jax.make_array_from_callback``), so the
    sub-batch of mesh position ``d`` lands on ``mesh.devices[d]`` whatever
    the order of processes and devices.
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, jax.device_get(tree))


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int) -> Callable[[Any], jax.Array]:
    """Adam's learning rate as a function of the 0-based step ``t``.

    With peak rate ``lr``, ``S = steps_per_epoch``, ``W = warmup_epochs·S``
    warm-up steps and ``T = max(epochs·S − W, 1)`` steps after them:

    * warm-up, ``t < W``: ``lr·(t + 1)/W`` (the first step already moves;
      step ``W − 1`` uses the full ``lr``);
    * then, with ``u = t − W``: constant ``lr``; cosine
      ``lr·(d + (1 − d)·(1 + cos(π·min(u, T)/T))/2)`` with ``d =
      decay_rate``; exponential ``lr·decay_rate^(u/S)``.
    """
    if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
    lr, d = config.learning_rate, config.decay_rate
    warm = config.warmup_epochs * steps_per_epoch
    total = max(config.epochs * steps_per_epoch - warm, 1)
    kind = config.schedule

    def schedule(step):
        t = jnp.asarray(step, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
        u = jnp.maximum(t - warm, 0.0)
        if kind == "constant":
            after = lr * jnp.ones_like(u)
        elif kind == "cosine":
            after = lr * (d + (1.0 - d) * 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(u, total) / total)))
        else:
            after = lr * d ** (u / steps_per_epoch)
        if warm == 0:
            return after
        return jnp.where(t < warm, lr * (t + 1.0) / warm, after)

    return schedule


def make_optimiser(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """The optax transformation described by ``config``.

    Adam (``optax.adam``, default moments) with the learning rate of
    :func:`learning_rate_schedule`, after optional global-norm clipping of
    the gradient to ``grad_clip`` (the gradient Adam sees has norm at most
    ``grad_clip``).  L-BFGS is ``optax.lbfgs()`` (zoom line search,
    memory 10).
    """
    if config.optimiser == "lbfgs":
        return optax.lbfgs()
    parts = [optax.clip_by_global_norm(config.grad_clip)] if config.grad_clip is not None else []
    return optax.chain(*parts, optax.adam(learning_rate_schedule(config, steps_per_epoch)))


def _loss_kwargs(config: TrainConfig) -> dict:
    return dict(kappa=config.kappa, variant=config.variant, huber_delta=config.huber_delta, stress_weight=config.stress_weight)


def _global_loss(model, kind, kwargs):
    def f(params, batch):
        nums, dens, aux = jax.vmap(lambda b: loss_sums(model, params, b, kind=kind, **kwargs))(batch)
        den = jnp.sum(dens)
        aux = jax.tree.map(jnp.sum, aux)
        aux["weight"] = den
        aux["numerator"] = jnp.sum(nums)
        return jnp.sum(nums) / jnp.maximum(den, 1e-30), aux

    return f


def make_train_step(model: Model, optimiser: optax.GradientTransformation, config: TrainConfig, mesh: Mesh) -> Callable:
    """Jitted ``(params, opt_state, batch) -> (params, opt_state, stats)``.

    ``batch`` is a stacked global batch (see :func:`device_batches`) sharded
    over ``mesh``; params and optimiser state are replicated.  ``stats``
    holds the batch's loss numerator and weight and squared-error sums.
    """
    kind = "energy" if config.loss == "taylor" else config.loss
    f = _global_loss(model, kind, _loss_kwargs(config))
    lbfgs = config.optimiser == "lbfgs"

    def step(params, opt_state, batch):
        (value, aux), grads = jax.value_and_grad(f, has_aux=True)(params, batch)
        if lbfgs:
            updates, opt_state = optimiser.update(
                grads, opt_state, params, value=value, grad=grads, value_fn=lambda p: f(p, batch)[0]
            )
        else:
            updates, opt_state = optimiser.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, aux

    repl = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P("data"))
    return jax.jit(step, in_shardings=(repl, repl, data), out_shardings=(repl, repl, repl))


def make_eval_step(model: Model, config: TrainConfig, mesh: Mesh) -> Callable:
    """Jitted ``(params, batch) -> stats`` with the selection loss and force errors.

    The selection loss is the training loss for ``loss="forces"`` and the
    per-atom energy loss for ``"energy"``/``"taylor"`` (validation data are
    never Taylor-augmented).  Force squared errors are always computed.
    """
    kwargs = _loss_kwargs(config)
    kind = "forces" if config.loss == "forces" else "energy"
    sel = _global_loss(model, kind, kwargs)
    mon = _global_loss(model, "forces", {**kwargs, "kappa": 1.0, "stress_weight": 0.0})

    def step(params, batch):
        _, aux = sel(params, batch)
        if kind != "forces":
            _, aux_f = mon(params, batch)
            aux["se_forces"] = aux_f["se_forces"]
            aux["n_force_components"] = aux_f["n_force_components"]
        return aux

    repl = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P("data"))
    return jax.jit(step, in_shardings=(repl, data), out_shardings=repl)


_STEP_FIELDS = ("loss", "kappa", "variant", "huber_delta", "stress_weight", "optimiser", "learning_rate", "schedule",
                "decay_rate", "warmup_epochs", "grad_clip", "epochs")


@functools.lru_cache(maxsize=16)
def _compiled_steps(model, key, steps_per_epoch, mesh):
    """(optimiser, train_step, eval_step) shared by runs with the same model and step settings.

    Jitted closures are cached so that repeated or resumed runs in one
    process reuse the compiled programs.
    """
    config = TrainConfig(**dict(zip(_STEP_FIELDS, key)))
    optimiser = make_optimiser(config, steps_per_epoch)
    return optimiser, make_train_step(model, optimiser, config, mesh), make_eval_step(model, config, mesh)


# ----------------------------------------------------------------- convergence


def is_converged(values, window: int, rtol: float, atol: float = 0.0) -> bool:
    """Whether a loss curve is flat: the last ``window`` values gained at most ``rtol`` on the best before them.

    With ``b`` the lowest value before the last ``window`` entries and ``r``
    the lowest among them, the curve is flat when ``b − r ≤ rtol·|b| +
    atol``: in ``window`` epochs (or iterations) the best loss improved by
    less than the relative tolerance.  A curve that rises in the window
    (over-fitting) is flat too.  Fewer than ``window + 1`` values, or a
    non-finite best value, are never flat.

    Parameters
    ----------
    values : sequence of float
        Loss per epoch/iteration, oldest first (any unit).
    window : int
        Positive number of trailing entries.
    rtol, atol : float
        Non-negative relative and absolute tolerances (atol in the unit of ``values``).

    Raises
    ------
    ValueError
        ``window < 1`` or a negative / non-finite tolerance.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(tol, (int, float, np.floating)) and math.isfinite(tol) and tol >= 0):
            raise ValueError(f"{name} must be a non-negative finite number, got {tol!r}")
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size <= window:
        return False
    before, recent = np.min(v[:-window]), np.min(v[-window:])
    if not (math.isfinite(before) and math.isfinite(recent)):
        return False
    return bool(before - recent <= rtol * abs(before) + atol)


# ----------------------------------------------------------------- checks


def _check_dataset(ds, name, model):
    from jaxmlp.data import Dataset

    if not isinstance(ds, Dataset):
        raise TypeError(f"{name} must be a jaxmlp.data.Dataset, got {type(ds).__name__}")
    if len(ds) == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(ds.energy).all() or not all(np.isfinite(f).all() for f in ds.forces):
        raise ValueError(f"{name} has NaN or infinite targets")
    if not (np.asarray(ds.weight) > 0).any():
        raise ValueError(f"{name} has no structure with a positive weight")
    for z in ds.elements:
        check_elements(model, [z])


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _write_log(path: str, history: list[dict]) -> None:
    if path.endswith(".csv"):
        keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))

        def write(fh):
            w = csv.DictWriter(fh, fieldnames=keys, lineterminator="\n")
            w.writeheader()
            w.writerows(history)

        atomic_write(path, write)
    else:
        write_json(path, history, indent=1, make_parents=False)  # NaN losses → null


def _finish(sums: dict) -> dict:
    out = {}
    w = float(sums.get("weight", 0.0))
    out["loss"] = float(sums["numerator"]) / w if w > 0 else float("nan")
    n = float(sums.get("n_structures", 0))
    if n > 0:
        out["energy_rmse"] = math.sqrt(float(sums["se_energy_per_atom"]) / n)
    if float(sums.get("n_force_components", 0)) > 0:
        out["force_rmse"] = math.sqrt(float(sums["se_forces"]) / float(sums["n_force_components"]))
    return out


def _accumulate(total: dict, aux: dict) -> None:
    for k, v in jax.device_get(aux).items():
        total[k] = total.get(k, 0.0) + np.asarray(v, np.float64)


# ----------------------------------------------------------------- resume


# TrainConfig fields that shape the optimisation trajectory (the others may change on resume)
_RUN_FIELDS = ("loss", "kappa", "variant", "huber_delta", "stress_weight", "optimiser", "batch_size", "shuffle", "seed")
_ADAM_FIELDS = ("learning_rate", "schedule", "decay_rate", "warmup_epochs", "grad_clip")
_TAYLOR_FIELDS = ("delta", "a", "strategy")


def _dataset_digest(ds) -> str | None:
    """SHA-256 of a dataset's structures, labels and weights (None for no dataset)."""
    if ds is None:
        return None
    h = hashlib.sha256()

    def add(arr, dtype):
        a = np.ascontiguousarray(np.asarray(arr, dtype))
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())

    add([len(ds)], np.int64)
    for atoms, f in zip(ds.structures, ds.forces):
        add(atoms.numbers, np.int64)
        add(atoms.positions, np.float64)
        add(atoms.cell.array, np.float64)
        add(atoms.pbc, np.bool_)
        add(f, np.float64)
    add(ds.energy, np.float64)
    add(ds.weight, np.float64)
    add(ds.stress_mask, np.bool_)
    add(np.zeros((0, 6)) if ds.stress is None else ds.stress, np.float64)
    return h.hexdigest()


def run_fingerprint(model: Model, train_set, valid_set, config: TrainConfig) -> dict:
    """What a checkpoint must match to be resumed by ``train(model, train_set, valid_set, config)``.

    A JSON-ready dict: ``model`` (registry name and config), ``training``
    (the :class:`TrainConfig` fields that shape the trajectory, see
    ``TrainConfig.resume``) and ``train_data`` / ``valid_data`` (SHA-256 of
    numbers, positions, cells, pbc, forces, energies, weights and stresses;
    ``None`` without validation set).
    """
    fields = _RUN_FIELDS
    if config.optimiser == "adam":
        fields += _ADAM_FIELDS + (("epochs",) if config.schedule == "cosine" else ())
    if config.loss == "taylor":
        fields += _TAYLOR_FIELDS
    fp = {
        "model": {"name": model.name, "config": model.config},
        "training": {f: getattr(config, f) for f in fields},
        "train_data": _dataset_digest(train_set),
        "valid_data": _dataset_digest(valid_set),
    }
    return json.loads(json.dumps(json_ready(fp), allow_nan=False))  # as it reads back from the checkpoint


def _short(v) -> str:
    text = "(absent)" if v is _ABSENT else json.dumps(v)
    return text if len(text) <= 80 else text[:77] + "..."


_ABSENT = object()


def _fingerprint_differences(stored, current, prefix: str = "") -> list[str]:
    """``"key: checkpoint X, now Y"`` lines for every difference (nested dicts walked)."""
    if not prefix and not isinstance(stored, dict):
        return ["no run fingerprint stored (checkpoint written by an older jaxmlp)"]
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for k in sorted(set(stored) | set(current)):
            out += _fingerprint_differences(stored.get(k, _ABSENT), current.get(k, _ABSENT), f"{prefix}{k}.")
        return out
    if stored == current:
        return []
    name = prefix[:-1]
    if name.endswith("_data"):
        return [f"{name}: other structures, labels or weights (SHA-256 {_short(stored)[:13]}..., "
                f"now {_short(current)[:13]}...)"]
    return [f"{name}: checkpoint {_short(stored)}, now {_short(current)}"]


# ----------------------------------------------------------------- train


def _peer_failure(exc: Exception, epoch: int, ckpt) -> RuntimeError:
    """The error a process of a multi-process run raises when a collective with its peers fails."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    where = "no checkpoint_dir, the run starts from scratch"
    if ckpt is not None:
        try:
            last = ckpt.latest_step  # orbax's cached list of steps: no collective
        except Exception:  # noqa: BLE001 - the message must not hide the original failure
            last = None
        where = f"from epoch {last} in {ckpt.directory}" if last is not None else f"from scratch ({ckpt.directory} is empty)"
    return RuntimeError(
        f"multi-process training failed in epoch {epoch + 1}: process {jax.process_index()} of {jax.process_count()} "
        f"lost contact with its peers during a collective ({first}). Another process probably died; see its log. "
        f"Restart all processes with the same settings; the run resumes {where}."
    )


def train(model: Model, train_set, valid_set, config: TrainConfig, params: Any = None,
          callback: Callable[[int, dict], Any] | None = None) -> tuple[Any, list[dict]]:
    """Fit ``model`` to ``train_set``; return the best-validation parameters and the history.

    Parameters
    ----------
    model : jaxmlp.models.Model
        Any model of the family (pair potentials, HDNNP, ml-ACE, ...).
    train_set : jaxmlp.data.Dataset
        Structures with energy (eV) and forces (eV/Å).  With
        ``config.loss == "taylor"`` it is first extended by
        :func:`jaxmlp.training.taylor_augment` (``config.a``,
        ``config.delta``, ``config.strategy``; key from ``config.seed``).
    valid_set : jaxmlp.data.Dataset or None
        Evaluated after every epoch; its selection loss (see
        :func:`make_eval_step`) picks the returned parameters and drives
        early stopping.  ``None`` selects on the training loss.
    config : TrainConfig
    params : pytree, optional
        Starting parameters (default ``model.init(PRNGKey(seed), graph)``).
    callback : callable ``(epoch, record) -> Any``, optional
        Called after every epoch (after the checkpoint is written); an
        exception raised there stops training (used to simulate
        interruptions).

    Returns
    -------
    params : pytree
        Parameters of the epoch with the lowest validation selection loss.
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss``,
        ``train_energy_rmse`` (eV/atom), ``train_force_rmse`` (eV/Å, for
        ``loss="forces"``), ``valid_loss``, ``valid_energy_rmse``,
        ``valid_force_rmse``, ``time`` (s, wall time of the epoch's steps),
        ``valid_time`` (s), ``n_train`` (structures incl. Taylor ones),
        ``learning_rate`` (Adam: the rate of the epoch's last step); the
        record of an epoch that stopped the run early also has ``stop``
        (``"patience"`` or ``"time_limit"``).

    Raises
    ------
    TypeError, ValueError
        Bad config, wrong dataset types, empty datasets, NaN targets or
        elements the model does not know.
    ValueError
        ``config.checkpoint_dir`` holds a checkpoint of another run (see
        ``TrainConfig.resume``) or one whose parameter/optimiser trees do not
        fit the model.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxmlp.models.Model, got {type(model).__name__}")
    _check_dataset(train_set, "train_set", model)
    if valid_set is not None:
        _check_dataset(valid_set, "valid_set", model)

    root = jax.random.PRNGKey(config.seed)
    k_init, k_taylor = jax.random.split(root)
    if config.loss == "taylor":
        from .taylor import taylor_augment

        train_set = taylor_augment(train_set, strategy=config.strategy, delta=config.delta, a=config.a, key=k_taylor)

    mesh = data_mesh()
    n_dev = mesh.devices.size
    per_dev = -(-config.batch_size // n_dev)
    trip = model_triplets(model)
    cutoff = model.cutoff
    buckets = config.buckets if config.buckets is not None else train_set.buckets(cutoff, per_dev, trip)
    v_buckets = None if valid_set is None else valid_set.buckets(cutoff, per_dev, trip)
    steps_per_epoch = -(-len(train_set) // (per_dev * n_dev))

    data_sharding = NamedSharding(mesh, P("data"))
    repl = NamedSharding(mesh, P())
    if params is None:
        first = next(train_set.batches(cutoff, buckets=buckets, batch_size=per_dev, shuffle=False, triplets=trip))
        params = model.init(k_init, jax.tree.map(jnp.asarray, first.graph))
    # settings the compiled steps do not depend on are normalised so that those runs share programs
    if config.optimiser == "lbfgs":
        step_config = config.replace(learning_rate=1e-3, schedule="constant", decay_rate=0.1, warmup_epochs=0,
                                     grad_clip=None, epochs=1)
    else:
        step_config = config if config.schedule == "cosine" else config.replace(epochs=1)
    if config.schedule == "constant":
        step_config = step_config.replace(decay_rate=0.1)
    step_key = tuple(getattr(step_config, f) for f in _STEP_FIELDS)
    optimiser, train_step, eval_step = _compiled_steps(model, step_key, steps_per_epoch, mesh)
    opt_state = optimiser.init(params)
    lr_at = learning_rate_schedule(config, steps_per_epoch) if config.optimiser == "adam" else None

    state = {
        "params": params,
        "opt_state": opt_state,
        "best_params": params,
        "best_valid": np.asarray(np.inf),
        "epoch": np.asarray(0),
        "bad_epochs": np.asarray(0),
    }
    history: list[dict] = []
    ckpt = CheckpointManager(config.checkpoint_dir, config.keep_checkpoints) if config.checkpoint_dir else None
    stopped = False
    fingerprint = run_fingerprint(model, train_set, valid_set, config) if ckpt is not None else None
    if ckpt is not None and ckpt.latest_step is not None:
        differences = _fingerprint_differences(ckpt.restore_meta().get("fingerprint"), fingerprint)
        if differences and config.resume != "force":
            ckpt.close()
            raise ValueError(
                f"{ckpt.directory}: the checkpoint of epoch {ckpt.latest_step} was written by another run; "
                "it differs in\n  " + "\n  ".join(differences) + "\nUse a new checkpoint_dir, delete this one, "
                "or pass TrainConfig(resume='force') to continue it anyway."
            )
        try:
            state, meta = ckpt.restore(state)
        except ValueError:
            ckpt.close()
            raise
        history = list(meta.get("history", []))
        stopped = bool(meta.get("stopped", False))
    state["params"] = _put(state["params"], repl)
    state["opt_state"] = _put(state["opt_state"], repl)

    start = int(state["epoch"])
    epochs = range(start, config.epochs)
    if config.progress:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, initial=start, total=config.epochs, desc=f"train[{config.loss}]")
    epoch = start
    try:
        for epoch in ([] if stopped else epochs):
            t0 = time.perf_counter()
            sums: dict = {}
            for batch in device_batches(train_set, cutoff, buckets, n_dev, per_dev, config.shuffle,
                                        _epoch_seed(config.seed, epoch), trip):
                batch = _put(batch, data_sharding)
                state["params"], state["opt_state"], aux = train_step(state["params"], state["opt_state"], batch)
                _accumulate(sums, aux)
            jax.block_until_ready(state["params"])
            t1 = time.perf_counter()
            record = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in _finish(sums).items()}, "time": t1 - t0,
                      "n_train": len(train_set)}
            if lr_at is not None:
                record["learning_rate"] = float(lr_at((epoch + 1) * steps_per_epoch - 1))
            if valid_set is not None:
                vsums: dict = {}
                for batch in device_batches(valid_set, cutoff, v_buckets, n_dev, per_dev, False, 0, trip):
                    _accumulate(vsums, eval_step(state["params"], _put(batch, data_sharding)))
                record.update({f"valid_{k}": v for k, v in _finish(vsums).items()})
                record["valid_time"] = time.perf_counter() - t1
                score = record["valid_loss"]
            else:
                score = record["train_loss"]
            if not math.isfinite(score):
                raise FloatingPointError(f"epoch {epoch + 1}: loss became {score} (learning rate too large?)")
            if score < float(state["best_valid"]):
                state["best_valid"] = np.asarray(score)
                state["best_params"] = jax.device_get(state["params"])
                state["bad_epochs"] = np.asarray(0)
            else:
                state["bad_epochs"] = np.asarray(int(state["bad_epochs"]) + 1)
            state["epoch"] = np.asarray(epoch + 1)
            history.append(record)
            stopped = False
            if config.convergence_window is not None:
                scores = [h["valid_loss" if valid_set is not None else "train_loss"] for h in history]
                record["converged"] = is_converged(scores, config.convergence_window, config.convergence_rtol)
            if config.convergence_window is not None and record["converged"]:
                stopped, record["stop"] = True, "converged"
            elif config.patience is not None and int(state["bad_epochs"]) >= config.patience:
                stopped, record["stop"] = True, "patience"
            elif config.time_limit is not None and sum(h["time"] for h in history) >= config.time_limit:
                stopped, record["stop"] = True, "time_limit"
            if ckpt is not None and ((epoch + 1) % config.checkpoint_every == 0 or stopped or epoch + 1 == config.epochs):
                ckpt.save(epoch + 1, state, {"history": history, "stopped": stopped, "config": config.to_dict(),
                                             "fingerprint": fingerprint})
            if config.log_file:
                _write_log(config.log_file, history)
            if config.progress:
                epochs.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k.endswith(("loss", "rmse"))})
            if callback is not None:
                callback(epoch + 1, record)
            if stopped:
                break
    except jax.errors.JaxRuntimeError as exc:
        if jax.process_count() == 1:
            raise
        raise _peer_failure(exc, epoch, ckpt) from exc
    if ckpt is not None:
        ckpt.close()
    best = state["best_params"] if math.isfinite(float(state["best_valid"])) else state["params"]
    return jax.device_get(best), history
