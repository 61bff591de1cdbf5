"""Error metrics, parity plots, learning curves and an NVE energy-conservation check.

Units: energies eV (errors per atom, eV/atom), forces eV/Å (errors per
Cartesian component unless named otherwise), angles degrees, drift
eV/atom/ps.
"""

from __future__ import annotations

import warnings
from functools import lru_cache, partial
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import observables

__all__ = ["evaluate", "force_angle_errors", "parity_plot", "learning_curve_plot", "nve_energy_drift"]


@partial(jax.jit, static_argnums=0)
def _predict(model, params, graph):
    return observables.energy_and_forces(model, params, graph)


def _serial_predictions(model, params, dataset, batch_size):
    """``(batch, energies, forces)`` per padded batch, one device."""
    from .loop import model_triplets

    for b in dataset.batches(model.cutoff, batch_size=batch_size, shuffle=False, triplets=model_triplets(model)):
        e, f = jax.device_get(_predict(model, params, jax.tree.map(jnp.asarray, b.graph)))
        yield b, np.asarray(e), np.asarray(f)


@lru_cache(maxsize=8)
def _sharded_predict(model, mesh):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    def f(params, graphs):
        return jax.vmap(lambda g: observables.energy_and_forces(model, params, g))(graphs)

    repl = NamedSharding(mesh, P())
    return jax.jit(f, in_shardings=(repl, NamedSharding(mesh, P("data"))), out_shardings=repl)


def _parallel_predictions(model, params, dataset, batch_size):
    """Like :func:`_serial_predictions`, one padded sub-batch per device of the data mesh, results gathered."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from .loop import _put, data_mesh, device_batches, model_triplets

    mesh = data_mesh()
    n_dev = mesh.devices.size
    per = -(-batch_size // n_dev)
    trip = model_triplets(model)
    buckets = dataset.buckets(model.cutoff, per, trip)
    n_sub = -(-len(dataset) // per)  # real sub-batches; the last group is filled with copies
    predict = _sharded_predict(model, mesh)
    params = _put(params, NamedSharding(mesh, P()))
    data = NamedSharding(mesh, P("data"))
    for step, b in enumerate(device_batches(dataset, model.cutoff, buckets, n_dev, per, False, 0, trip)):
        e, f = predict(params, _put(b.graph, data))
        e, f = np.asarray(e), np.asarray(f)  # replicated: the same on every process
        for d in range(min(n_dev, n_sub - step * n_dev)):
            yield jax.tree.map(lambda x, d=d: x[d], b), e[d], f[d]


def force_angle_errors(f_pred: np.ndarray, f_ref: np.ndarray, min_norm: float = 1e-8) -> np.ndarray:
    """Angle between predicted and reference force vectors, degrees ``[N]``.

    Atoms where either force is shorter than ``min_norm`` eV/Å get NaN (no
    direction).
    """
    f_pred = np.asarray(f_pred, float).reshape(-1, 3)
    f_ref = np.asarray(f_ref, float).reshape(-1, 3)
    if f_pred.shape != f_ref.shape:
        raise ValueError(f"force arrays differ in shape: {f_pred.shape} vs {f_ref.shape}")
    npred, nref = np.linalg.norm(f_pred, axis=1), np.linalg.norm(f_ref, axis=1)
    ok = (npred > min_norm) & (nref > min_norm)
    cos = np.sum(f_pred * f_ref, axis=1) / np.where(ok, npred * nref, 1.0)
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.where(ok, ang, np.nan)


def evaluate(model, params, dataset, batch_size: int = 16, return_predictions: bool = False,
             parallel: bool = False) -> dict[str, Any]:
    """Energy and force errors of ``model`` on ``dataset``.

    Parameters
    ----------
    model, params
        Any model of the family and its parameters.
    dataset : jaxmlp.data.Dataset
        Structures with reference energies (eV) and forces (eV/Å).
    batch_size : int
        Structures per jitted evaluation (one compilation per dataset).
    return_predictions : bool
        Also return the predicted and reference values (for parity plots).
    parallel : bool
        Data-parallel over all devices of all processes (the mesh of
        :func:`jaxmlp.training.data_mesh`): each step evaluates
        ``batch_size`` structures split into one padded sub-batch per
        device, and the predictions are gathered on every process.  In a
        multi-process run every process must call ``evaluate`` with the same
        arguments (it is collective); all get the same result.  Results
        equal the serial ones up to rounding.

    Returns
    -------
    dict
        ``energy_rmse``, ``energy_mae`` (eV/atom), ``force_rmse``,
        ``force_mae`` (eV/Å per component), ``force_norm_rmse``,
        ``force_norm_mae`` (eV/Å, error of |F|), ``force_angle_mean``,
        ``force_angle_median`` (degrees), ``n_structures``, ``n_atoms``;
        with ``return_predictions``: ``energy_pred``, ``energy_ref`` [S],
        ``n_atoms_per_structure`` [S], ``forces_pred``, ``forces_ref``
        [ΣN, 3].
    """
    if len(dataset) == 0:
        raise ValueError("evaluate got an empty dataset")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    e_p, e_r, n_at, f_p, f_r = [], [], [], [], []
    for b, e, f in (_parallel_predictions if parallel else _serial_predictions)(model, params, dataset, batch_size):
        real = np.asarray(b.graph.globals["mask"])
        nodes = np.asarray(b.graph.nodes["mask"])
        e_p.append(np.asarray(e)[real])
        e_r.append(np.asarray(b.energy)[real])
        n_at.append(np.asarray(b.graph.n_node)[real])
        f_p.append(np.asarray(f)[nodes])
        f_r.append(np.asarray(b.forces)[nodes])
    e_p, e_r, n_at = np.concatenate(e_p), np.concatenate(e_r), np.concatenate(n_at)
    f_p, f_r = np.concatenate(f_p), np.concatenate(f_r)
    de = (e_p - e_r) / n_at
    df = f_p - f_r
    dn = np.linalg.norm(f_p, axis=1) - np.linalg.norm(f_r, axis=1)
    ang = force_angle_errors(f_p, f_r)
    out: dict[str, Any] = {
        "energy_rmse": float(np.sqrt(np.mean(de**2))),
        "energy_mae": float(np.mean(np.abs(de))),
        "force_rmse": float(np.sqrt(np.mean(df**2))),
        "force_mae": float(np.mean(np.abs(df))),
        "force_norm_rmse": float(np.sqrt(np.mean(dn**2))),
        "force_norm_mae": float(np.mean(np.abs(dn))),
        "force_angle_mean": float(np.nanmean(ang)) if np.isfinite(ang).any() else float("nan"),
        "force_angle_median": float(np.nanmedian(ang)) if np.isfinite(ang).any() else float("nan"),
        "n_structures": int(len(e_p)),
        "n_atoms": int(len(f_p)),
    }
    if return_predictions:
        out.update(energy_pred=e_p, energy_ref=e_r, n_atoms_per_structure=n_at, forces_pred=f_p, forces_ref=f_r)
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def parity_plot(results: Mapping[str, Any], path: str, title: str | None = None) -> str:
    """Energy/atom parity, force-component parity and force-angle error vs |F|; saved to ``path``.

    ``results`` is the output of :func:`evaluate` with
    ``return_predictions=True``.  Returns ``path``.
    """
    for k in ("energy_pred", "energy_ref", "forces_pred", "forces_ref", "n_atoms_per_structure"):
        if k not in results:
            raise ValueError(f"parity_plot needs evaluate(..., return_predictions=True); missing {k!r}")
    plt = _plt()
    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    n = results["n_atoms_per_structure"]
    er, ep = results["energy_ref"] / n, results["energy_pred"] / n
    ax[0].plot(er, ep, ".", ms=3)
    lo, hi = min(er.min(), ep.min()), max(er.max(), ep.max())
    ax[0].plot([lo, hi], [lo, hi], "k-", lw=0.5)
    ax[0].set(xlabel="reference E/N (eV/atom)", ylabel="predicted E/N (eV/atom)",
              title=f"RMSE {1000 * results['energy_rmse']:.2f} meV/atom")
    fr, fp = results["forces_ref"].ravel(), results["forces_pred"].ravel()
    ax[1].plot(fr, fp, ".", ms=1, alpha=0.4)
    lo, hi = min(fr.min(), fp.min()), max(fr.max(), fp.max())
    ax[1].plot([lo, hi], [lo, hi], "k-", lw=0.5)
    ax[1].set(xlabel="reference F (eV/Å)", ylabel="predicted F (eV/Å)", title=f"RMSE {results['force_rmse']:.3f} eV/Å")
    ang = force_angle_errors(results["forces_pred"], results["forces_ref"])
    fn = np.linalg.norm(results["forces_ref"], axis=1)
    ok = np.isfinite(ang)
    ax[2].hist2d(fn[ok], ang[ok], bins=[30, 36], range=[[0, max(fn.max(), 1e-6)], [0, 180]], cmap="magma_r")
    ax[2].set(xlabel="|F| reference (eV/Å)", ylabel="angle error (deg)", title=f"median {results['force_angle_median']:.1f}°")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curve_plot(histories: Mapping[str, Sequence[Mapping]] | Sequence[Mapping], path: str,
                        keys: Sequence[str] = ("valid_energy_rmse", "valid_force_rmse"), x: str = "epoch") -> str:
    """Learning curves (one panel per key, one line per run), log y axis; saved to ``path``.

    ``histories`` is one history (list of per-epoch dicts from
    :func:`jaxmlp.training.train`) or a mapping ``label -> history``.  Use
    ``x="wall"`` to plot against cumulative training time in seconds.
    """
    if not isinstance(histories, Mapping):
        histories = {"run": histories}
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, h in histories.items():
            ys = [r.get(key, np.nan) for r in h]
            xs = np.cumsum([r.get("time", 0.0) for r in h]) if x == "wall" else [r["epoch"] for r in h]
            ax.plot(xs, ys, label=label)
        ax.set(xlabel="training time (s)" if x == "wall" else "epoch", ylabel=key, yscale="log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def nve_energy_drift(model, params, atoms, timestep_fs: float = 0.5, steps: int = 200, temperature_K: float = 300.0,
                     seed: int = 0) -> dict[str, Any]:
    """NVE molecular dynamics (ASE VelocityVerlet via :class:`jaxmlp.Calculator`) energy conservation.

    .. deprecated::
        Use :func:`jaxmlp.validation.nve_energy_conservation`; this function
        emits a ``DeprecationWarning`` and still works.

    Parameters
    ----------
    model, params
        The potential.
    atoms : ase.Atoms
        Start structure (copied).
    timestep_fs : float
        fs.
    steps : int
    temperature_K : float
        Maxwell-Boltzmann initial velocities (momentum zeroed), K.
    seed : int
        Velocity draw.

    Returns
    -------
    dict
        ``drift`` (eV/atom/ps, slope of a linear fit of total energy per
        atom vs time), ``max_deviation`` (eV/atom, largest |E(t) − E(0)|),
        ``time_ps`` [steps+1], ``energy_per_atom`` [steps+1] (eV/atom),
        ``temperature`` [steps+1] (K).
    """
    warnings.warn("jaxmlp.training.metrics.nve_energy_drift is deprecated; use jaxmlp.validation.nve_energy_conservation",
                  DeprecationWarning, stacklevel=2)
    from ase import units
    from ase.md import velocitydistribution as vd
    from ase.md.verlet import VelocityVerlet

    from ..calculator import Calculator

    if not (timestep_fs > 0 and steps >= 1):
        raise ValueError(f"need timestep_fs > 0 and steps >= 1, got {timestep_fs}, {steps}")
    a = atoms.copy()
    a.calc = Calculator(model, params)
    rng = np.random.default_rng(seed)
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.28
        vd.thermalize_momenta(a, temperature_K, rng=rng)
    else:  # pragma: no cover - older ASE
        vd.MaxwellBoltzmannDistribution(a, temperature_K=temperature_K, rng=rng)
    vd.Stationary(a)
    dyn = VelocityVerlet(a, timestep=timestep_fs * units.fs)
    n = len(a)
    energies, temps = [], []

    def record():
        energies.append(a.get_total_energy() / n)
        temps.append(a.get_temperature())

    dyn.attach(record, interval=1)  # ASE also calls observers before the first step
    dyn.run(steps)
    if len(energies) == steps:  # older ASE: no call at step 0
        energies.insert(0, energies[0])
        temps.insert(0, temps[0])
    e = np.asarray(energies[: steps + 1])
    t = np.arange(len(e)) * timestep_fs / 1000.0
    slope = float(np.polyfit(t, e, 1)[0]) if len(e) > 1 else 0.0
    return {"drift": slope, "max_deviation": float(np.max(np.abs(e - e[0]))), "time_ps": t,
            "energy_per_atom": e, "temperature": np.asarray(temps[: steps + 1])}
