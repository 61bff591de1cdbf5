"""Training a 4G-HDNNP in n2p2's two stages.

Stage 1 (:func:`fit_charges`): the electronegativity networks and the
hardness are fitted to reference charges (e.g. Hirshfeld or RuNNer charges
in ``input.data``), loss ``mean_i (q_i − q_i^ref)²`` over all atoms of a
batch, Adam (optax) on padded batches, one jitted step.

Stage 2: the short-range networks are fitted to energies and forces with the
ordinary loop (:func:`jaxmlp.training.train`) on
:func:`short_range_model` — the same 4G model with the charge part frozen
(its parameters are constants of that model), so the loop, losses,
checkpoints and early stopping are the usual ones. :func:`merge_short_range`
puts the result back into the full parameter tree.

Reference charges are read from ``atoms.calc.results["charges"]`` (what
:func:`jaxmlp.data.read` keeps from n2p2 ``input.data``) or
``atoms.get_initial_charges()``; the total charge of a structure from
``atoms.info["charge"]`` (else the sum of the reference charges).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..graph import atoms_to_graph, batch_graphs
from ..graph.padding import Buckets
from ..models.base import Model, check_elements

__all__ = ["reference_charges", "charge_rmse", "fit_charges", "short_range_model", "merge_short_range"]


def _check_4g(model):
    if not isinstance(model, Model) or "charges" not in model.extras:
        raise TypeError(f"a 4G model (jaxmlp.models.hdnnp4g) is needed, got {getattr(model, 'name', type(model).__name__)!r}")


def reference_charges(atoms) -> tuple[np.ndarray, float]:
    """``(charges [N] e, total charge e)`` of a labelled structure (``ValueError`` if it has none)."""
    q = None
    if atoms.calc is not None and "charges" in getattr(atoms.calc, "results", {}):
        q = np.asarray(atoms.calc.results["charges"], float)
    elif atoms.has("initial_charges"):
        q = np.asarray(atoms.get_initial_charges(), float)
    if q is None or q.shape != (len(atoms),) or not np.all(np.isfinite(q)):
        raise ValueError(f"structure {atoms.get_chemical_formula()} has no finite reference charges")
    total = float(atoms.info.get("charge", q.sum()))
    return q, total


def _batches(model, structures, batch_size, shuffle, seed):
    """Padded graph batches with ``globals["charge"]`` and node-level reference charges."""
    items = []
    for a in structures:
        check_elements(model, a.numbers)
        q, total = reference_charges(a)
        g = atoms_to_graph(a, model.cutoff, triplets=model.needs_triplets)
        g = g._replace(globals={**g.globals, "charge": np.array([total], float)})
        items.append((g, q))
    n_node = max(len(q) for _, q in items) * batch_size + 1
    n_edge = max(len(g.senders) for g, _ in items) * batch_size + 2
    n_trip = max(len(g.globals["triplets"]) for g, _ in items) * batch_size
    buckets = Buckets(n_node=n_node, n_edge=n_edge, n_graph=batch_size + 1, n_triplet=n_trip)
    order = np.random.default_rng(seed).permutation(len(items)) if shuffle else np.arange(len(items))
    out = []
    for start in range(0, len(items), batch_size):
        chunk = [items[k] for k in order[start : start + batch_size]]
        gs = [g for g, _ in chunk]
        charge = np.concatenate([g.globals["charge"] for g in gs] + [np.zeros(buckets.n_graph - len(gs))])
        b = batch_graphs([g._replace(globals={k: v for k, v in g.globals.items() if k != "charge"}) for g in gs], buckets)
        b = b._replace(globals={**b.globals, "charge": charge})
        qref = np.zeros(n_node)
        qref[: sum(len(q) for _, q in chunk)] = np.concatenate([q for _, q in chunk])
        out.append((b, qref))
    return out


def _charge_loss(model, params, batch, qref):
    q = model.extras["charges"](params, batch)
    m = batch.nodes["mask"]
    d = jnp.where(m, q - qref, 0.0)
    return jnp.sum(d * d) / jnp.maximum(jnp.sum(m), 1)


def charge_rmse(model: Model, params, structures: Sequence, batch_size: int = 4) -> float:
    """RMS charge error (e) over all atoms of ``structures``."""
    _check_4g(model)
    f = jax.jit(lambda p, b, q: _charge_loss(model, p, b, q))
    sq, n = 0.0, 0
    for b, q in _batches(model, structures, batch_size, False, 0):
        k = int(np.sum(b.nodes["mask"]))
        sq += float(f(params, b, q)) * k
        n += k
    return float(np.sqrt(sq / max(n, 1)))


def fit_charges(model: Model, params, structures: Sequence, valid: Sequence | None = None, *, epochs: int = 100,
                learning_rate: float = 1e-3, batch_size: int = 4, train_hardness: bool = True, seed: int = 0,
                log_every: int = 0) -> tuple[Any, list[dict]]:
    """Stage 1: fit the electronegativity networks (and hardness) to reference charges.

    Parameters
    ----------
    model : Model
        A :func:`jaxmlp.models.hdnnp4g`.
    params : pytree
        Starting parameters (``model.init(key)``); the short-range networks
        are returned unchanged.
    structures, valid : sequences of ase.Atoms
        Training and (optional) validation structures with reference charges.
    epochs, learning_rate, batch_size, seed
        Adam steps over shuffled padded batches.
    train_hardness : bool
        Also fit the per-element hardness (n2p2 does).
    log_every : int
        Print a line every this many epochs (0: silent).

    Returns
    -------
    params : pytree
        Parameters of the epoch with the lowest validation (else training)
        charge RMSE.
    history : list of dict
        ``epoch``, ``train_charge_rmse`` (e, mean over the epoch's batches),
        ``valid_charge_rmse`` (e or None), ``time`` (s).
    """
    _check_4g(model)
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError("epochs and batch_size must be >= 1 and learning_rate > 0")
    structures = list(structures)
    if not structures:
        raise ValueError("fit_charges needs at least one structure")
    labels = {"networks": False, "electronegativity": True, "hardness": bool(train_hardness)}
    mask = {k: jax.tree.map(lambda _, v=v: v, params[k]) for k, v in labels.items()}
    opt = optax.masked(optax.adam(learning_rate), mask)
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch, qref):
        loss, grad = jax.value_and_grad(lambda p: _charge_loss(model, p, batch, qref))(params)
        upd, state = opt.update(grad, state, params)
        return optax.apply_updates(params, upd), state, loss

    best, best_val, history = params, np.inf, []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        losses = []
        for b, q in _batches(model, structures, batch_size, True, seed + epoch):
            params, state, loss = step(params, state, b, q)
            losses.append(float(loss))
        train_rmse = float(np.sqrt(np.mean(losses)))
        val = charge_rmse(model, params, valid, batch_size) if valid else None
        sel = val if val is not None else train_rmse
        if sel < best_val:
            best, best_val = params, sel
        history.append({"epoch": epoch, "train_charge_rmse": train_rmse, "valid_charge_rmse": val,
                        "time": time.perf_counter() - t0})
        if log_every and epoch % log_every == 0:
            print(f"stage 1 epoch {epoch:4d}  charge RMSE train {train_rmse:.4e} e  valid {val}")
    return best, history


def short_range_model(model: Model, params) -> Model:
    """Stage 2: ``model`` with its charge part (electronegativity networks, hardness) frozen at ``params``.

    The returned model's parameters are ``{"networks": short-range
    networks}``; its energies equal ``model.apply`` with the merged
    parameters, so :func:`jaxmlp.training.train` fits the short-range part
    only. It is not registered for ``jaxmlp.save``: save the full model with
    :func:`merge_short_range`.
    """
    _check_4g(model)
    frozen = {k: v for k, v in params.items() if k != "networks"}

    def init(key, graph=None):
        return {"networks": model.init(key, graph)["networks"]}

    def apply(p, graph):
        return model.apply({**frozen, "networks": p["networks"]}, graph)

    return Model(f"{model.name}_short_range", dict(model.config), model.cutoff, init, apply,
                 needs_triplets=model.needs_triplets, elements=model.elements, n_layers=model.n_layers,
                 local=model.local, extras={"descriptor": model.extras.get("descriptor")})


def merge_short_range(params, short_params):
    """Full 4G parameters with the short-range networks of ``short_params`` (from stage 2)."""
    return {**params, "networks": short_params["networks"]}
