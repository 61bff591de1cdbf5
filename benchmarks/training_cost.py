"""Cost per epoch of energy-only, direct-force and Taylor training vs system size.

For fcc Cu cells from 12 to 1372 atoms (EMT labels, thermal rattling) and an
HDNNP (radial + angular ACSF, 2×16 tanh; or a Morse potential with
``--model morse``), this times one jitted ``train_step`` per structure
(``batch_size = 1``, compile excluded, median of repeats) for

* ``energy``  : per-atom energy loss,
* ``forces``  : direct force loss (gradient of the force error = second derivatives),
* ``taylor``  : the Taylor-expansion training step itself
  (``TrainConfig(loss="taylor")``, :func:`jaxmlp.training.taylor_augment`
  strategy B, ``a`` displaced structures per reference): measured as the
  sum of the ``1 + a`` batch-size-1 steps over one reference and its
  displaced copies (``taylor_step_s``, the per-reference cost at the same
  batch size as the other two) and as one step on a batch of those
  ``1 + a`` structures (``taylor_batched_step_s``).  The Taylor data are
  prepared once (not timed); ``taylor_model_s = (1 + a) × energy step`` is
  the old estimate, kept for comparison.

Per-epoch cost of a data set of ``S`` structures is ``S × step``.  Results
go to ``benchmarks/results/training_cost.json``.  Run:
``python benchmarks/training_cost.py [--sizes 12 32 108 256 500 1372] [--a 8]``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import time

import jax
import numpy as np


def cu_cells(reps, n_per_size=3, seed=0):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    out = {}
    for rep in reps:
        frames = []
        for _k in range(n_per_size):
            a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(rep)
            a.positions += rng.normal(scale=0.08, size=a.positions.shape)
            a.calc = EMT()
            a.get_forces()
            frames.append(a)
        out[len(frames[0])] = frames
    return out


def make_model(kind, cutoff):
    from jaxmlp import models

    if kind == "morse":
        return models.morse(D=0.35, alpha=1.35, r0=2.6, cutoff=cutoff)
    from jaxmlp.descriptors import acsf

    sfs = acsf.radial_grid(["Cu"], cutoff, 6) + acsf.angular_set(["Cu"], cutoff, etas=(0.0,), zetas=(1.0, 4.0))
    return models.hdnnp(["Cu"], sfs, hidden=(16, 16), activation="tanh")


def time_steps(step, params, opt_state, batches, repeat):
    for _ in range(2):  # compile; the second call compiles again for the committed (replicated) params it returned
        params, opt_state, _ = step(params, opt_state, batches[0])
        jax.block_until_ready(params)
    times = []
    for _ in range(repeat):
        for b in batches:
            t0 = time.perf_counter()
            params, opt_state, aux = step(params, opt_state, b)
            jax.block_until_ready(params)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_taylor(model, params, ds, cutoff, a, mesh, repeat):
    """Measured Taylor training step per reference structure (seconds), batch size 1 and 1 + a."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxmlp.training import TrainConfig, device_batches, make_optimiser, make_train_step, taylor_augment

    cfg = TrainConfig(loss="taylor", epochs=1, batch_size=1, learning_rate=1e-4, schedule="constant", a=a)
    opt = make_optimiser(cfg, 1)
    step = make_train_step(model, opt, cfg, mesh)
    ref = ds[0:1]
    aug = taylor_augment(ref, strategy="B", delta=0.01, a=a, key=0)  # 1 + a structures of one reference
    n_dev = mesh.devices.size
    out = {}
    for per, name in ((1, "taylor_step_s"), (1 + a, "taylor_batched_step_s")):
        buckets = aug.buckets(cutoff, per, model.needs_triplets)
        batches = [jax.device_put(b, NamedSharding(mesh, P("data")))
                   for b in device_batches(aug, cutoff, buckets, n_dev, per, False, 0, model.needs_triplets)]
        t = time_steps(step, params, opt.init(params), batches, repeat)
        out[name] = t * len(batches)  # the steps of one reference structure and its displaced copies
    return out


def main(sizes=(12, 32, 108, 256, 500, 1372), a=8, model_kind="hdnnp", cutoff=4.0, repeat=2, out=None):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxmlp.data import Dataset
    from jaxmlp.training import TrainConfig, data_mesh, device_batches, make_optimiser, make_train_step

    reps = {12: (3, 1, 1), 32: (2, 2, 2), 108: (3, 3, 3), 256: (4, 4, 4), 500: (5, 5, 5), 1372: (7, 7, 7),
            864: (6, 6, 6), 2048: (8, 8, 8)}
    cells = cu_cells([reps[s] for s in sizes])
    model = make_model(model_kind, cutoff)
    mesh = data_mesh()
    rows = []
    for n_atoms, frames in cells.items():
        ds = Dataset.from_atoms(frames)
        buckets = ds.buckets(cutoff, 1, model.needs_triplets)
        batches = [jax.device_put(b, NamedSharding(mesh, P("data")))
                   for b in device_batches(ds, cutoff, buckets, mesh.devices.size, 1, False, 0, model.needs_triplets)]
        params = model.init(jax.random.PRNGKey(0), jax.tree.map(lambda x: x[0], batches[0].graph))
        row = {"n_atoms": n_atoms, "n_edges": int(buckets.n_edge), "n_triplets": int(buckets.n_triplet)}
        for loss in ("energy", "forces"):
            cfg = TrainConfig(loss=loss, epochs=1, batch_size=1, learning_rate=1e-4, schedule="constant")
            opt = make_optimiser(cfg, 1)
            step = make_train_step(model, opt, cfg, mesh)
            row[f"{loss}_step_s"] = time_steps(step, params, opt.init(params), batches, repeat)
        row.update(time_taylor(model, params, ds, cutoff, a, mesh, repeat))
        row["taylor_model_s"] = (1 + a) * row["energy_step_s"]  # the former estimate: (1+a) energy steps per reference
        row["forces_over_energy"] = row["forces_step_s"] / row["energy_step_s"]
        row["taylor_over_energy"] = row["taylor_step_s"] / row["energy_step_s"]
        row["forces_over_taylor"] = row["forces_step_s"] / row["taylor_step_s"]
        row["forces_over_taylor_batched"] = row["forces_step_s"] / row["taylor_batched_step_s"]
        rows.append(row)
        print(f"N={n_atoms:5d}  energy {1e3 * row['energy_step_s']:8.2f} ms  forces {1e3 * row['forces_step_s']:8.2f} ms  "
              f"ratio {row['forces_over_energy']:.2f}  taylor(a={a}) {1e3 * row['taylor_step_s']:8.2f} ms "
              f"(batched {1e3 * row['taylor_batched_step_s']:8.2f} ms, model {1e3 * row['taylor_model_s']:8.2f} ms)", flush=True)
    result = {
        "description": "seconds per train step (one structure), compile excluded; epoch cost = structures x step",
        "model": model_kind, "cutoff": cutoff, "a": a, "dtype": str(jax.numpy.zeros(1).dtype),
        "device": str(jax.devices()[0].device_kind), "n_devices": jax.device_count(), "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "rows": rows,
        "goal_forces_le_3x_energy": all(r["forces_over_energy"] <= 3.0 for r in rows),
    }
    out = pathlib.Path(out or pathlib.Path(__file__).parent / "results" / "training_cost.json")
    from jaxmlp.utils import write_json

    write_json(out, result, indent=1)
    print("wrote", out)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[12, 32, 108, 256, 500, 1372])
    ap.add_argument("--a", type=int, default=8)
    ap.add_argument("--model", default="hdnnp", choices=["hdnnp", "morse"])
    ap.add_argument("--cutoff", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--float64", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    main(tuple(args.sizes), args.a, args.model, args.cutoff, args.repeat, args.out)
