"""Validation of potentials beyond test-set RMSEs.

Two potentials with the same RMSE can behave very differently in MD (Behler,
2024: only simulations — radial distribution functions, larger boxes,
force-correlation outliers — separate them).  This module gives:

* :func:`stability` — run MD until a time limit or a failure criterion
  (atoms closer than a threshold, energy drift per atom per ps in NVE,
  temperature runaway, non-finite energies) and report the time to failure;
* :func:`rdf` / :func:`rdf_distance` — element-pair radial distribution
  functions of any cells (triclinic, smaller than ``2·r_max``: periodic images
  are counted explicitly) and a distance between two sets of curves;
* :func:`force_outliers` — per-atom force errors on a test set and the atoms
  with the largest ones;
* :func:`nve_energy_conservation` — NVE fluctuation and drift against the
  time step, with the fitted order (2 for velocity Verlet);
* ``plot_*`` helpers writing PNGs (matplotlib, Agg backend).

Units: Å, eV, fs, K.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations_with_replacement

import numpy as np
from ase import Atoms

from .graph import atoms_to_graph, batch_graphs, neighbour_list, suggest_buckets
from .md import MDConfig, MDEngine, MDUnstableError
from .observables import energy_and_forces

__all__ = [
    "force_outliers",
    "min_distance",
    "nve_energy_conservation",
    "plot_force_parity",
    "plot_rdfs",
    "rdf",
    "rdf_distance",
    "stability",
]


def _check_frames(frames, what="frames") -> list[Atoms]:
    if isinstance(frames, Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise ValueError(f"{what}: no structures given")
    for k, a in enumerate(frames):
        if not isinstance(a, Atoms):
            raise TypeError(f"{what}[{k}] is a {type(a).__name__}, not an ase.Atoms")
    return frames


def min_distance(atoms: Atoms, within: float = 3.0) -> float:
    """Shortest interatomic distance (Å, periodic images included); ``inf`` when none is below ``within``."""
    cell = np.where(atoms.pbc[:, None], atoms.cell.array, 0.0)
    nl = neighbour_list(atoms.positions, cell, atoms.pbc, within)
    if len(nl.centres) == 0:
        return math.inf
    d = atoms.positions[nl.neighbours] - atoms.positions[nl.centres] + nl.offsets @ cell
    return float(np.sqrt(np.min(np.sum(d**2, axis=1))))


# -- structure -------------------------------------------------------------------
def rdf(frames, r_max: float = 6.0, n_bins: int = 120, pairs: Sequence[tuple[str, str]] | None = None) -> dict:
    """Element-pair radial distribution functions averaged over ``frames``.

    ``g_ab(r) = <n_ab(r)> / (N_a · (N_b / V) · 4π/3 [(r+dr)³ − r³])`` with
    ``n_ab`` the number of ordered pairs (centre of element a, neighbour of
    element b, any periodic image) in the shell, so ``g → 1`` in a uniform
    liquid and ``g_ab = g_ba``.  Works for any cell shape and for cells
    smaller than ``2·r_max`` (images are explicit neighbours).

    Parameters
    ----------
    frames : ase.Atoms or sequence of them
        3-D periodic structures with the same composition.
    r_max : float, Å
    n_bins : int
    pairs : sequence of (str, str), optional
        Element pairs (default: all unordered pairs of the elements present,
        alphabetical, e.g. ``H-H, H-O, O-O``).

    Returns
    -------
    dict
        ``{"r": [n_bins] bin centres, "edges": [n_bins + 1], "g": {"A-B": [n_bins]}, "n_frames": int}``.
    """
    frames = _check_frames(frames)
    if not (r_max > 0 and math.isfinite(r_max)):
        raise ValueError(f"r_max must be a positive number of Å, got {r_max!r}")
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    symbols0 = sorted(frames[0].get_chemical_symbols())
    for k, a in enumerate(frames):
        if not a.pbc.all() or a.cell.rank != 3:
            raise ValueError(f"rdf needs 3-D periodic frames; frame {k} has pbc={a.pbc.tolist()}")
        if sorted(a.get_chemical_symbols()) != symbols0:
            raise ValueError(f"rdf needs frames of one composition; frame {k} differs from frame 0")
    elements = sorted(set(symbols0))
    if pairs is None:
        pairs = list(combinations_with_replacement(elements, 2))
    pairs = [tuple(sorted(p)) for p in pairs]
    for p in pairs:
        for e in p:
            if e not in elements:
                raise ValueError(f"rdf pair {'-'.join(p)}: element {e} is not in the frames ({', '.join(elements)})")
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell = 4.0 * np.pi / 3.0 * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = {f"{a}-{b}": np.zeros(n_bins) for a, b in pairs}
    for atoms in frames:
        sym = np.array(atoms.get_chemical_symbols())
        cell = atoms.cell.array
        vol = abs(np.linalg.det(cell))
        nl = neighbour_list(atoms.positions, cell, atoms.pbc, r_max)
        d = np.linalg.norm(atoms.positions[nl.neighbours] - atoms.positions[nl.centres] + nl.offsets @ cell, axis=1)
        si, sj = sym[nl.centres], sym[nl.neighbours]
        for a, b in pairs:
            sel = (si == a) & (sj == b)
            hist = np.histogram(d[sel], bins=edges)[0]
            n_a, n_b = int(np.sum(sym == a)), int(np.sum(sym == b))
            g[f"{a}-{b}"] += hist / (n_a * (n_b / vol) * shell)
    return {"r": 0.5 * (edges[1:] + edges[:-1]), "edges": edges, "g": {k: v / len(frames) for k, v in g.items()}, "n_frames": len(frames)}


def rdf_distance(a: dict, b: dict) -> dict:
    """Distance between two :func:`rdf` results on the same bins.

    Per pair: the RMS difference ``sqrt(∫(g_a − g_b)² dr / r_max)`` and the
    largest absolute difference; ``"mean"`` averages the RMS over pairs.
    """
    if not np.allclose(a["edges"], b["edges"]):
        raise ValueError("rdf_distance needs RDFs on the same bins (same r_max and n_bins)")
    missing = sorted(set(a["g"]) ^ set(b["g"]))
    if missing:
        raise ValueError(f"rdf_distance: pairs {', '.join(missing)} are in only one of the RDFs")
    dr = np.diff(a["edges"])
    out = {}
    for k in a["g"]:
        diff = np.asarray(a["g"][k]) - np.asarray(b["g"][k])
        out[k] = {"rms": float(np.sqrt(np.sum(diff**2 * dr) / np.sum(dr))), "max": float(np.max(np.abs(diff)))}
    out["mean"] = float(np.mean([v["rms"] for v in out.values()]))
    return out


# -- stability ----------------------------------------------------------------------
def stability(
    model,
    params,
    atoms: Atoms,
    config: MDConfig,
    max_time: float,
    min_dist: float = 0.5,
    max_temperature: float | None = None,
    max_drift: float = 1e-2,
    drift_window: float = 200.0,
    trajectory=None,
    write_every: int | None = None,
    progress: bool = False,
) -> dict:
    """Run MD until ``max_time`` fs or until a failure criterion fires.

    Criteria, checked at every logged step (``config.log_every``):

    * ``min_distance``: two atoms closer than ``min_dist`` Å;
    * ``temperature``: kinetic temperature above ``max_temperature`` K
      (default ``3 × config.temperature`` for thermostatted runs, ``10 ×``
      the start temperature in NVE);
    * ``drift`` (NVE only): ``|dE/dt|`` of the total energy, fitted over the
      last ``drift_window`` fs, above ``max_drift`` eV/atom/ps;
    * ``non_finite``: a NaN/inf energy;
    * ``step_displacement``: one step moved an atom by more than
      ``config.skin / 2`` (:class:`jaxmlp.md.MDUnstableError`).

    Returns
    -------
    dict
        ``stable`` (bool), ``reason`` (criterion or ``None``),
        ``time_to_failure_fs`` (``None`` when stable), ``simulated_fs``,
        ``criteria`` (the thresholds used), ``log`` (the MD log) and the
        final ``min_distance`` / ``temperature``.
    """
    if not max_time > 0:
        raise ValueError(f"max_time must be > 0 fs, got {max_time!r}")
    if not min_dist >= 0:
        raise ValueError(f"min_dist must be >= 0 Å, got {min_dist!r}")
    eng = MDEngine(model, params, atoms, config)
    n = len(atoms)
    if max_temperature is None:
        base = config.temperature if config.ensemble != "nve" else max(eng.temperature(), config.temperature, 1.0)
        max_temperature = (3.0 if config.ensemble != "nve" else 10.0) * base
    verdict = {"reason": None, "time": None}
    times, etot = [], []
    check_radius = max(min_dist * 1.01, 1e-3)

    def check(engine, rec):
        t = rec["time_fs"]
        e = rec["epot"] + rec["ekin"]
        reason = None
        if not math.isfinite(e):
            reason = "non_finite"
        elif rec["temperature"] > max_temperature:
            reason = "temperature"
        elif min_dist > 0 and min_distance(_positions_atoms(engine), check_radius) < min_dist:
            reason = "min_distance"
        elif config.ensemble == "nve":
            times.append(t)
            etot.append(e)
            t_arr = np.asarray(times)
            sel = t_arr >= t - drift_window
            if t_arr[0] <= t - drift_window and np.sum(sel) >= 3:
                slope = np.polyfit(t_arr[sel], np.asarray(etot)[sel], 1)[0]  # eV/fs
                if abs(slope) * 1000.0 / n > max_drift:
                    reason = "drift"
        if reason is not None:
            verdict["reason"], verdict["time"] = reason, t
            return True
        return False

    n_steps = int(math.ceil(max_time / config.timestep))
    try:
        log = eng.run(n_steps, trajectory=trajectory, write_every=write_every, progress=progress, callback=check)
    except MDUnstableError as exc:
        # one step moved an atom by more than skin/2: the dynamics has exploded
        verdict["reason"], verdict["time"] = "step_displacement", (exc.step + 1) * config.timestep
        log = {k: list(v) for k, v in eng.state.log.items()}
    return {
        "stable": verdict["reason"] is None,
        "reason": verdict["reason"],
        "time_to_failure_fs": verdict["time"],
        "simulated_fs": eng.time_fs,
        "criteria": {"min_dist": min_dist, "max_temperature": max_temperature, "max_drift_eV_atom_ps": max_drift, "drift_window_fs": drift_window},
        "final_temperature": eng.temperature(),
        "final_min_distance": min_distance(_positions_atoms(eng), 3.0),
        "log": {k: v for k, v in log.items() if k != "stopped"},
        "engine": eng,
    }


def _positions_atoms(engine) -> Atoms:
    return engine.atoms(results=False)


# -- NVE energy conservation ----------------------------------------------------------
def nve_energy_conservation(model, params, atoms: Atoms, timesteps: Sequence[float], time: float = 500.0, skin: float = 0.5) -> dict:
    """NVE energy fluctuation and drift against the time step.

    Each time step runs ``time`` fs from the same start (``atoms`` with their
    momenta, or 300 K velocities if they have none).  ``fluctuation`` is the
    largest ``|E(t) − E(0)|`` per atom, ``drift`` the slope of a linear fit in
    eV/atom/ps; ``order`` is the slope of ``log fluctuation`` vs ``log dt``
    (2 for a correct velocity Verlet in its asymptotic range).
    """
    timesteps = [float(dt) for dt in timesteps]
    if len(timesteps) < 1 or any(not dt > 0 for dt in timesteps):
        raise ValueError(f"timesteps must be positive numbers of fs, got {timesteps!r}")
    n = len(atoms)
    rows = []
    for dt in timesteps:
        n_steps = max(int(round(time / dt)), 1)
        log_every = max(1, n_steps // 200)
        n_steps = (n_steps // log_every) * log_every
        cfg = MDConfig("nve", timestep=dt, skin=skin, log_every=log_every, steps_per_call=log_every * max(1, 50 // log_every))
        eng = MDEngine(model, params, atoms, cfg)
        e0 = eng.conserved_energy()
        log = eng.run(n_steps)
        t = np.r_[0.0, log["time_fs"]]
        e = np.r_[e0, np.asarray(log["epot"]) + np.asarray(log["ekin"])]
        fluct = float(np.max(np.abs(e - e0)) / n)
        drift = float(np.polyfit(t, e, 1)[0] * 1000.0 / n) if len(t) > 2 else float("nan")
        rows.append(
            {
                "timestep_fs": dt,
                "fluctuation_eV_atom": fluct,
                "drift_eV_atom_ps": drift,
                "steps": n_steps,
                "mean_temperature": float(np.mean(log["temperature"])),
            }
        )
    order = None
    if len(rows) >= 2:
        x = np.log([r["timestep_fs"] for r in rows])
        y = np.log([max(r["fluctuation_eV_atom"], 1e-300) for r in rows])
        order = float(np.polyfit(x, y, 1)[0])
    return {"rows": rows, "order": order, "time_fs": time}


# -- force outliers -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _energy_and_forces_jit():
    """``jax.jit(energy_and_forces)`` (model static), made once per process: repeated calls re-use its cache."""
    import jax

    return jax.jit(energy_and_forces, static_argnums=0)


def force_outliers(model, params, frames, top: int = 10, batch_size: int = 8) -> dict:
    """Per-atom force errors of ``(model, params)`` on reference ``frames`` and the worst atoms.

    Parameters
    ----------
    frames : sequence of ase.Atoms
        Each with reference forces (``atoms.get_forces()`` from a
        SinglePointCalculator, as read from extxyz).
    top : int
        Number of atoms with the largest ``|F_pred − F_ref|`` to list.

    Returns
    -------
    dict
        ``reference`` and ``predicted`` (``[M, 3]`` over all atoms),
        ``error`` (``[M]`` norms), ``frame``/``atom``/``element`` per row,
        ``rmse`` (component RMSE, eV/Å) overall and ``per_element``, and
        ``outliers``: the ``top`` rows with frame, atom, element, error,
        ``|F_ref|`` and the distance to the nearest neighbour (the
        environments where the model is weakest).
    """
    import jax

    frames = _check_frames(frames)
    ref_f, frame_idx, atom_idx, elem = [], [], [], []
    for k, a in enumerate(frames):
        try:
            f = np.asarray(a.get_forces(), float)
        except Exception as exc:  # no calculator / no forces stored
            raise ValueError(f"frame {k} has no reference forces ({exc})") from None
        if f.shape != (len(a), 3) or not np.isfinite(f).all():
            raise ValueError(f"frame {k}: reference forces must be finite and [N, 3], got shape {f.shape}")
        ref_f.append(f)
        frame_idx += [k] * len(a)
        atom_idx += list(range(len(a)))
        elem += a.get_chemical_symbols()

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    # one bucket that fits any batch_size of the frames: every batch (the last, shorter one included) is
    # padded to the same shapes, so the whole test set compiles a single program
    graphs = [atoms_to_graph(a, model.cutoff, triplets=model.needs_triplets) for a in frames]
    buckets = suggest_buckets(graphs, batch_size)
    pred = []
    for start in range(0, len(frames), batch_size):
        chunk = graphs[start : start + batch_size]
        batch = batch_graphs(chunk, buckets)
        _, f = _energy_and_forces_jit()(model, params, jax.tree_util.tree_map(np.asarray, batch))
        f = np.asarray(f, float)
        off = 0
        for g in chunk:
            n_g = int(np.sum(g.n_node))
            pred.append(f[off : off + n_g])
            off += n_g
    ref = np.concatenate(ref_f)
    pr = np.concatenate(pred)
    err = np.linalg.norm(pr - ref, axis=1)
    frame_idx, atom_idx, elem = np.array(frame_idx), np.array(atom_idx), np.array(elem)
    order = np.argsort(err)[::-1][: max(0, int(top))]
    outliers = []
    for i in order:
        a = frames[frame_idx[i]]
        cell = np.where(a.pbc[:, None], a.cell.array, 0.0)
        nl = neighbour_list(a.positions, cell, a.pbc, 4.0)
        sel = nl.centres == atom_idx[i]
        d = np.linalg.norm(a.positions[nl.neighbours[sel]] - a.positions[atom_idx[i]] + nl.offsets[sel] @ cell, axis=1)
        outliers.append(
            {
                "frame": int(frame_idx[i]),
                "atom": int(atom_idx[i]),
                "element": str(elem[i]),
                "error": float(err[i]),
                "ref_force_norm": float(np.linalg.norm(ref[i])),
                "nearest_neighbour": float(d.min()) if len(d) else None,
            }
        )
    per_element = {e: float(np.sqrt(np.mean((pr[elem == e] - ref[elem == e]) ** 2))) for e in sorted(set(elem))}
    return {
        "reference": ref,
        "predicted": pr,
        "error": err,
        "frame": frame_idx,
        "atom": atom_idx,
        "element": elem,
        "rmse": float(np.sqrt(np.mean((pr - ref) ** 2))),
        "per_element": per_element,
        "outliers": outliers,
        "error_percentiles": {str(q): float(np.percentile(err, q)) for q in (50, 90, 99, 100)},
    }


# -- plots ------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rdfs(curves: dict, path, title: str = "") -> None:
    """One panel per element pair; ``curves`` maps a label to an :func:`rdf` result."""
    from .utils import atomic_write

    plt = _pyplot()
    first = next(iter(curves.values()))
    pairs = list(first["g"])
    fig, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 3.2), squeeze=False)
    for ax, p in zip(axes[0], pairs):
        for label, c in curves.items():
            ax.plot(c["r"], c["g"][p], label=label)
        ax.set_xlabel("r (Å)")
        ax.set_ylabel(f"g(r) {p}")
    axes[0][0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), binary=True, make_parents=True)
    plt.close(fig)


def plot_force_parity(result: dict, path, title: str = "") -> None:
    """Parity plot of force components with the :func:`force_outliers` atoms highlighted."""
    from .utils import atomic_write

    plt = _pyplot()
    ref, pred = result["reference"], result["predicted"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(ref.ravel(), pred.ravel(), s=2, alpha=0.3, label=f"all atoms (RMSE {result['rmse']:.3f} eV/Å)")
    rows = {(o["frame"], o["atom"]) for o in result["outliers"]}
    mask = np.array([(f, a) in rows for f, a in zip(result["frame"], result["atom"])])
    if mask.any():
        ax.scatter(ref[mask].ravel(), pred[mask].ravel(), s=14, color="red", label=f"{int(mask.sum())} largest errors")
    lim = float(np.max(np.abs(np.r_[ref.ravel(), pred.ravel()]))) * 1.05
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    ax.set_xlabel("reference force (eV/Å)")
    ax.set_ylabel("predicted force (eV/Å)")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), binary=True, make_parents=True)
    plt.close(fig)


def plot_energy_conservation(result: dict, path) -> None:
    """Log-log NVE fluctuation vs time step with a dt² guide."""
    from .utils import atomic_write

    plt = _pyplot()
    dt = np.array([r["timestep_fs"] for r in result["rows"]])
    fl = np.array([r["fluctuation_eV_atom"] for r in result["rows"]])
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.loglog(dt, fl, "o-", label=f"max |E(t)−E(0)| (order {result['order']:.2f})" if result["order"] is not None else "max |E(t)−E(0)|")
    ax.loglog(dt, fl[0] * (dt / dt[0]) ** 2, "k--", lw=0.8, label="∝ dt²")
    ax.set_xlabel("time step (fs)")
    ax.set_ylabel("eV/atom")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), binary=True, make_parents=True)
    plt.close(fig)
