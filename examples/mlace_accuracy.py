"""ml-ACE accuracy versus number of layers (Bochkarev et al. 2022, Table I).

Trains 1-, 2- and 3-layer ml-ACE models on rMD17 ethanol and on the built-in
EMT Cu-cluster dataset, and
reports energy MAE (meV per structure) and force MAE (meV/Å) on the held-out
frames.  Every model gets the same wall-clock training budget, so the study
fits a fixed total time.

Usage::

    python examples/mlace_accuracy.py            # fast smoke run (~1 min: 1-2 layers, small basis, 5 s each)
    python examples/mlace_accuracy.py --full     # the study (~20 min on 2 cores)
    # full-batch L-BFGS (as pacemaker's BFGS): budget in CPU seconds, stops when the loss is flat
    taskset -c 0 python examples/mlace_accuracy.py --full --optimiser lbfgs --datasets ethanol --layers 1 \
        --budget 800 --max-wall 2000 --out benchmarks/results/mlace_accuracy_ethanol_lbfgs_L1.json

Results are written as JSON (``--out``, default
``benchmarks/results/mlace_accuracy.json`` for ``--full``).

The paper's setup (Bochkarev et al. 2022, SM Table I): cutoff 4 Å for
ethanol, loss ``(1−κ)·⟨(ΔE/N)²⟩ + κ·⟨|ΔF|²⟩`` (means over the structures and
over the atoms of a batch, ``|ΔF|²`` summed over x, y, z) with **κ = 0.99**,
and with ``--basis paper`` (the ``--full`` default) the ``"paper-L<L>"``
presets of :data:`jaxmlp.models.mlace.PRESETS`: uncontracted eq. 10 basis,
per-element coefficients, centre indicator, functions per element summed over
the layers 1207 / 1363 / 2269 / 2981 for L = 1–4 (paper 1207 / 1363 / 2269 /
2982). Split: the shared ethanol file holds 1000 rMD17 frames, so the revMD17
convention of 1000 training frames leaves nothing to test on; ``--full`` uses
800 train / 200 held-out frames (a fixed-seed permutation). The paper fits
with BFGS in tensorpotential; here Adam with the learning rate decayed
exponentially over the time budget (so the errors are not converged values),
or with ``--optimiser lbfgs`` full-batch L-BFGS (``optax.lbfgs``, zoom line
search) that records the held-out errors against training time (``curve``)
and reports ``converged`` (loss flat to ``--rtol`` over ``--window``
iterations, :func:`jaxmlp.training.is_converged`).
Per-element E0 are fitted by least squares on the training energies first.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmlp
from jaxmlp.graph import max_degree
from jaxmlp.models import mlace
from jaxmlp.models.mlace import basis_sizes

ETHANOL = "datasets/ethanol_rmd17.extxyz"
PAPER_ETHANOL = {1: (1.9, 9.8), 2: (1.0, 6.2), 3: (0.8, 5.4), 4: (0.7, 4.4)}


def _shared_data() -> pathlib.Path:
    root = os.environ.get("JAXMLP_SHARED", pathlib.Path(__file__).resolve().parents[2] / "shared")
    return pathlib.Path(root) / "data"


def load_ethanol(n_train: int, n_test: int, seed: int = 0):
    """rMD17 ethanol frames → (train, test) lists of (atoms, E [eV], F [N,3] eV/Å)."""
    import ase.io

    frames = ase.io.read(_shared_data() / ETHANOL, ":")
    data = [(a, float(a.get_potential_energy()), np.asarray(a.get_forces())) for a in frames]
    idx = np.random.default_rng(seed).permutation(len(data))
    return [data[i] for i in idx[:n_train]], [data[i] for i in idx[n_train : n_train + n_test]]


def load_cu_clusters(n_train: int, n_test: int, seed: int = 0):
    """Built-in EMT Cu clusters (``jaxmlp.data``) → (train, test) or None if unavailable."""
    try:
        from jaxmlp.data.generate import default_dataset
    except ImportError:
        return None
    ds = default_dataset("cu_clusters_emt", n=n_train + n_test, seed=seed)
    data = [(a, float(e), np.asarray(f)) for a, e, f in zip(ds.structures, ds.energy, ds.forces)]
    return data[:n_train], data[n_train:]


def fit_e0(model, train) -> jnp.ndarray:
    """Least-squares per-element reference energies ``[S]`` eV."""
    zs = list(model.elements)
    X = np.array([[np.sum(a.numbers == z) for z in zs] for a, _, _ in train], float)
    y = np.array([e for _, e, _ in train])
    return jnp.asarray(np.linalg.lstsq(X, y, rcond=None)[0])


def _batches(data, cutoff, batch_size, buckets, rng=None):
    order = np.arange(len(data)) if rng is None else rng.permutation(len(data))
    for s in range(0, len(order), batch_size):
        chunk = [data[i] for i in order[s : s + batch_size]]
        graphs = [jaxmlp.atoms_to_graph(a, cutoff) for a, _, _ in chunk]
        g = jaxmlp.batch_graphs(graphs, buckets)
        G, N = g.n_node.shape[0], g.nodes["positions"].shape[0]
        e = np.zeros(G)
        f = np.zeros((N, 3))
        nat = np.ones(G)
        e[: len(chunk)] = [x[1] for x in chunk]
        nat[: len(chunk)] = [len(x[0]) for x in chunk]
        f[: sum(len(x[0]) for x in chunk)] = np.concatenate([x[2] for x in chunk])
        yield g, jnp.asarray(e), jnp.asarray(f), jnp.asarray(nat)


def train_model(model, train, test, budget_s: float, batch_size: int = 16, lr: float = 5e-3, kappa: float = 0.99, seed: int = 0, log=print):
    """Train for ``budget_s`` seconds; return params and held-out metrics (meV, meV/Å).

    Loss ``(1−κ)·⟨(ΔE/N)²⟩ + κ·⟨|ΔF|²⟩`` (κ = 0.99 as in the paper).
    """
    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"kappa must be in [0, 1], got {kappa!r}")
    graphs = [jaxmlp.atoms_to_graph(a, model.cutoff) for a, _, _ in train[:64]]
    buckets = jaxmlp.suggest_buckets([jaxmlp.atoms_to_graph(a, model.cutoff) for a, _, _ in train + test], batch_size)
    params = model.init(jax.random.PRNGKey(seed), jaxmlp.batch_graphs(graphs[:batch_size]))
    params["E0"] = fit_e0(model, train)
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
    state = opt.init(params)

    def loss_fn(p, g, e_ref, f_ref, nat):
        e, f = jaxmlp.energy_and_forces(model, p, g)
        gm = g.globals["mask"]
        nm = g.nodes["mask"]
        le = jnp.sum(jnp.where(gm, ((e - e_ref) / nat) ** 2, 0.0)) / jnp.sum(gm)
        lf = jnp.sum(jnp.where(nm[:, None], (f - f_ref) ** 2, 0.0)) / jnp.sum(nm)
        return (1.0 - kappa) * le + kappa * lf

    @jax.jit
    def step(p, s, g, e_ref, f_ref, nat):
        loss, grads = jax.value_and_grad(loss_fn)(p, g, e_ref, f_ref, nat)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    rng = np.random.default_rng(seed)
    # compile once outside the time budget (a zero-learning-rate step)
    tc = time.perf_counter()
    state.hyperparams["learning_rate"] = 0.0
    g, e, f, nat = next(_batches(train, model.cutoff, batch_size, buckets))
    jax.block_until_ready(step(params, state, g, e, f, nat))
    compile_s = time.perf_counter() - tc
    t0 = time.perf_counter()
    epoch, n_steps = 0, 0
    while time.perf_counter() - t0 < budget_s:
        total = 0.0
        for g, e, f, nat in _batches(train, model.cutoff, batch_size, buckets, rng):
            frac = min((time.perf_counter() - t0) / budget_s, 1.0)
            state.hyperparams["learning_rate"] = lr * (0.02**frac)
            params, state, loss = step(params, state, g, e, f, nat)
            total += float(loss)
            n_steps += 1
            if time.perf_counter() - t0 > budget_s:
                break
        epoch += 1
        if epoch % 10 == 1:
            log(f"    epoch {epoch:4d}  loss {total:.4g}  t={time.perf_counter() - t0:.0f}s")
    train_time = time.perf_counter() - t0
    metrics = evaluate(model, params, test, buckets, batch_size)
    metrics.update(epochs=epoch, steps=n_steps, train_time_s=round(train_time, 1), compile_s=round(compile_s, 1))
    return params, metrics


def train_model_lbfgs(model, train, test, budget_s: float, chunk: int = 100, kappa: float = 0.99, seed: int = 0,
                      memory_size: int = 20, window: int = 50, rtol: float = 1e-4, eval_every_s: float = 60.0, log=print,
                      params=None, max_wall_s: float | None = None):
    """Full-batch L-BFGS (``optax.lbfgs``, zoom line search) for ``budget_s`` CPU seconds or until converged.

    The budget counts the process's CPU time of the optimisation steps
    (``time.process_time``: on a shared machine, pin the run to one core
    with ``taskset -c 0`` and this is the time on that core); ``max_wall_s``
    caps the wall time as well.  Both are reported (``cpu_s``,
    ``train_time_s`` = wall).

    The loss is the one of :func:`train_model` over the *whole* training set
    (no mini-batches, as pacemaker's BFGS fits); it is summed over fixed
    ``chunk``-structure sub-batches in a ``lax.scan`` with rematerialisation
    so memory stays at one chunk.  The run stops when the training loss is
    flat (:func:`jaxmlp.training.is_converged` with ``window`` iterations and
    relative tolerance ``rtol``) or the budget is spent.  The held-out MAEs
    are recorded every ``eval_every_s`` CPU seconds of training as ``curve``
    (evaluation time excluded from ``train_time_s``).
    """
    from jaxmlp.training import is_converged

    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"kappa must be in [0, 1], got {kappa!r}")
    buckets = jaxmlp.suggest_buckets([jaxmlp.atoms_to_graph(a, model.cutoff) for a, _, _ in train + test], chunk)
    chunks = list(_batches(train, model.cutoff, chunk, buckets))
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *chunks)
    n_struct = float(len(train))
    n_atoms = float(sum(len(a) for a, _, _ in train))
    if params is None:
        params = model.init(jax.random.PRNGKey(seed), chunks[0][0])
        params["E0"] = fit_e0(model, train)

    @jax.checkpoint
    def chunk_sums(p, batch):
        g, e_ref, f_ref, nat = batch
        e, f = jaxmlp.energy_and_forces(model, p, g)
        se = jnp.sum(jnp.where(g.globals["mask"], ((e - e_ref) / nat) ** 2, 0.0))
        sf = jnp.sum(jnp.where(g.nodes["mask"][:, None], (f - f_ref) ** 2, 0.0))
        return se, sf

    def loss_fn(p):
        def body(carry, batch):
            se, sf = chunk_sums(p, batch)
            return (carry[0] + se, carry[1] + sf), None

        (se, sf), _ = jax.lax.scan(body, (0.0, 0.0), stacked)
        return (1.0 - kappa) * se / n_struct + kappa * sf / n_atoms

    opt = optax.lbfgs(memory_size=memory_size,
                      linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one"))
    value_and_grad = optax.value_and_grad_from_state(loss_fn)

    @jax.jit
    def step(p, s):
        value, grad = value_and_grad(p, state=s)
        updates, s = opt.update(grad, s, p, value=value, grad=grad, value_fn=loss_fn)
        return optax.apply_updates(p, updates), s, value

    state = opt.init(params)
    tc = time.perf_counter()
    p1, s1, _ = step(params, state)  # compile outside the budget (results discarded); the state after the
    jax.block_until_ready(step(p1, s1))  # first update has other (non-weak) dtypes, so it compiles a second program
    compile_s = time.perf_counter() - tc
    losses, curve = [], []
    t_train, cpu, t_next, it, converged = 0.0, 0.0, 0.0, 0, False
    max_wall = float("inf") if max_wall_s is None else float(max_wall_s)
    while cpu < budget_s and t_train < max_wall:
        t0, c0 = time.perf_counter(), time.process_time()
        params, state, value = step(params, state)
        value = float(value)
        t_train += time.perf_counter() - t0
        cpu += time.process_time() - c0
        it += 1
        losses.append(value)
        if not np.isfinite(value):
            raise FloatingPointError(f"L-BFGS iteration {it}: loss {value}")
        converged = is_converged(losses, window, rtol)
        if cpu >= t_next or converged or cpu >= budget_s or t_train >= max_wall:
            m = evaluate(model, params, test, buckets, chunk)
            curve.append({"cpu_s": round(cpu, 1), "train_time_s": round(t_train, 1), "iteration": it, "train_loss": value, **m})
            log(f"    it {it:5d}  loss {value:.5g}  cpu={cpu:.0f}s wall={t_train:.0f}s  test E {m['energy_mae_meV']:.2f} meV  "
                f"F {m['force_mae_meV_per_A']:.2f} meV/A", flush=True)
            t_next = cpu + eval_every_s
        if converged:
            break
    metrics = evaluate(model, params, test, buckets, chunk)
    metrics.update(optimiser="lbfgs", iterations=it, cpu_s=round(cpu, 1), train_time_s=round(t_train, 1), compile_s=round(compile_s, 1),
                   stop="converged" if converged else ("cpu_budget" if cpu >= budget_s else "wall_cap"),
                   converged=bool(converged), convergence={"window": window, "rtol": rtol}, final_train_loss=losses[-1],
                   curve=curve)
    return params, metrics


def evaluate(model, params, data, buckets, batch_size=16) -> dict:
    """Energy MAE (meV/structure), energy MAE per atom (meV/atom), force MAE (meV/Å)."""
    ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
    de, dea, df = [], [], []
    for g, e_ref, f_ref, nat in _batches(data, model.cutoff, batch_size, buckets):
        e, f = ef(model, params, g)
        gm = np.asarray(g.globals["mask"])
        nm = np.asarray(g.nodes["mask"])
        err = np.abs(np.asarray(e - e_ref))[gm]
        de.append(err)
        dea.append(err / np.asarray(nat)[gm])
        df.append(np.abs(np.asarray(f - f_ref))[nm].ravel())
    return {
        "energy_mae_meV": 1000 * float(np.mean(np.concatenate(de))),
        "energy_mae_meV_per_atom": 1000 * float(np.mean(np.concatenate(dea))),
        "force_mae_meV_per_A": 1000 * float(np.mean(np.concatenate(df))),
    }


def _model(elements, cutoff, n_layers, basis, data):
    """ml-ACE with the dense neighbour layout sized to the data (:func:`max_degree`)."""
    from jaxmlp.models.mlace import PRESETS

    basis = dict(PRESETS[f"paper-L{n_layers}"]) if basis == "paper" else basis
    k = max_degree([a for a, _, _ in data], cutoff)
    return mlace(elements, cutoff=cutoff, n_layers=n_layers, max_neighbors=k, **basis)


def main(full: bool = False, layers=None, budget_s: float | None = None, out: str | None = None, datasets=("ethanol", "cu_clusters"),
         basis: str | None = None, sizes: dict | None = None, optimiser: str = "adam", chunk: int = 100,
         rtol: float = 1e-4, window: int = 50, eval_every_s: float = 60.0, max_wall_s: float | None = None) -> dict:
    """Run the study; return (and optionally write) the results dict.

    Parameters
    ----------
    full : bool
        False: a smoke run (few frames, layers 1-2, small basis, 5 s per
        model, about a minute). True: 800/200
        ethanol frames and 160/40 Cu clusters, ``budget_s`` per model.
    layers : sequence of int, optional
        Default (1, 2), or (1, 2, 3) with ``full``.
    budget_s : float, optional
        Training wall time per model (default 5 s, or 150 s with ``full``).
    out : str, optional
        JSON output path.
    datasets : sequence of {"ethanol", "cu_clusters"}
    basis : {"paper", "default", "small"}, optional
        ml-ACE basis preset (:data:`jaxmlp.models.mlace.PRESETS`; "paper":
        the ``"paper-L<L>"`` preset of each layer count, sized for C/H/O);
        default "small", or "paper" with ``full``.
    sizes : dict, optional
        ``{dataset: (n_train, n_test)}`` overriding the defaults.
    optimiser : {"adam", "lbfgs"}
        ``"adam"``: :func:`train_model` (mini-batches, exponential decay over
        the budget).  ``"lbfgs"``: :func:`train_model_lbfgs` (full batch,
        zoom line search, stops early when the loss is flat to ``rtol`` over
        ``window`` iterations; ``chunk`` structures per scanned sub-batch;
        ``budget_s`` counts CPU seconds, ``max_wall_s`` caps the wall time;
        held-out errors every ``eval_every_s`` CPU s go to the run's ``curve``).
    """
    if optimiser not in ("adam", "lbfgs"):
        raise ValueError(f"optimiser must be 'adam' or 'lbfgs', got {optimiser!r}")
    jax.config.update("jax_enable_x64", True)
    budget = (150.0 if full else 5.0) if budget_s is None else float(budget_s)
    layers = ((1, 2, 3) if full else (1, 2)) if layers is None else tuple(layers)
    basis = ("paper" if full else "small") if basis is None else basis
    from jaxmlp.models.mlace import PRESETS

    preset = basis
    basis = "paper" if preset == "paper" else dict(PRESETS[preset])
    results = {
        "config": {"full": full, "optimiser": optimiser, "budget_s_per_model": budget, "basis_preset": preset, "basis": basis, "kappa": 0.99,
                   "float": "float64", "host_cpus": os.cpu_count()},
        "paper_ethanol_meV_meV_per_A": {str(k): v for k, v in PAPER_ETHANOL.items()},
        "runs": [],
    }
    t_start = time.perf_counter()
    for name in datasets:
        if name == "ethanol":
            n_tr, n_te = (sizes or {}).get(name, (800, 200) if full else (64, 32))
            if not (_shared_data() / ETHANOL).exists():
                print(f"skipping ethanol: {_shared_data() / ETHANOL} not found")
                continue
            train, test = load_ethanol(n_tr, n_te)
            elements, cutoff = ["C", "H", "O"], 4.0
        elif name == "cu_clusters":
            n_tr, n_te = (sizes or {}).get(name, (160, 40) if full else (24, 8))
            split = load_cu_clusters(n_tr, n_te)
            if split is None:
                print("skipping cu_clusters: jaxmlp.data.generate.default_dataset is not available")
                continue
            train, test = split
            elements, cutoff = ["Cu"], 5.0
        else:
            raise ValueError(f"unknown dataset {name!r}")
        for L in layers:
            model = _model(elements, cutoff, L, basis, train + test)
            print(f"{name}: {L} layer(s), {len(train)} train / {len(test)} test, budget {budget:.0f}s")
            if optimiser == "lbfgs":
                _, m = train_model_lbfgs(model, train, test, budget, chunk=min(chunk, len(train)), rtol=rtol, window=window,
                                         eval_every_s=eval_every_s, max_wall_s=max_wall_s)
            else:
                _, m = train_model(model, train, test, budget)
            run = {"dataset": name, "n_layers": L, "cutoff": cutoff, "n_train": len(train), "n_test": len(test),
                   "functions_per_element": basis_sizes(model), **m}
            print("   ", json.dumps(run))
            results["runs"].append(run)
    results["total_time_s"] = round(time.perf_counter() - t_start, 1)
    print(f"total {results['total_time_s']} s")
    if out is None and full:
        out = str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "mlace_accuracy.json")
    if out:
        pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
        from jaxmlp.utils import write_json

        write_json(out, results, indent=2)
        print(f"wrote {out}")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="run the full study (~20 min)")
    ap.add_argument("--layers", type=int, nargs="+", default=None, help="default: 1 2 (smoke) or 1 2 3 (--full)")
    ap.add_argument("--budget", type=float, default=None, help="training seconds per model")
    ap.add_argument("--datasets", nargs="+", default=["ethanol", "cu_clusters"])
    ap.add_argument("--out", default=None)
    ap.add_argument("--basis", default=None, choices=["paper", "default", "small"], help="ml-ACE basis preset (default: small, or paper with --full)")
    ap.add_argument("--optimiser", default="adam", choices=["adam", "lbfgs"], help="adam (mini-batch) or lbfgs (full batch, line search)")
    ap.add_argument("--chunk", type=int, default=100, help="L-BFGS: structures per scanned sub-batch (memory)")
    ap.add_argument("--rtol", type=float, default=1e-4, help="L-BFGS: converged when the loss gains < rtol over --window iterations")
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--eval-every", type=float, default=60.0, help="L-BFGS: CPU seconds of training between held-out evaluations")
    ap.add_argument("--max-wall", type=float, default=None, help="L-BFGS: wall-time cap in seconds (the budget counts CPU seconds)")
    a = ap.parse_args()
    main(full=a.full, layers=a.layers, budget_s=a.budget, out=a.out, datasets=tuple(a.datasets), basis=a.basis,
         optimiser=a.optimiser, chunk=a.chunk, rtol=a.rtol, window=a.window, eval_every_s=a.eval_every,
         max_wall_s=a.max_wall)
    sys.exit(0)
