"""MD throughput: the jitted engine (:mod:`jaxmlp.md`) vs the ASE calculator loop, same run.

Systems (``--systems``):

* ``cu``: periodic fcc Cu (a = 3.61 Å) with ``--atoms`` atoms (default 2048,
  rounded to a cubic supercell), NVE from 300 K, 2 fs steps;
* ``water``: 64 H2O (192 atoms), the first frame of
  ``../shared/data/datasets/water_deepmd_test.extxyz`` (read at run time,
  skipped when absent), NVE from 300 K, 0.5 fs steps.

Models (``--models``): Morse Cu (Girifalco–Weizer, R_c = 5 Å; Cu only), the
bench factory's HDNNP (8 radial + 8 angular ACSFs per element pair, 25-25
tanh, R_c = 4 Å) and its one-layer ml-ACE (``default`` basis, R_c = 4 Å),
random weights (the cost per step is what matters, not the weights; for the
water HDNNP the factory's scaling is fitted on the frame so that the random
network sees O(1) inputs and the NVE run stays sane).

For each model, in one process on the same cores (run it under ``taskset``):

* ``bare``: one jitted ``energy_and_forces`` on the padded graph (median of
  ``--repeat``) — the floor for one MD step;
* ``engine``: :class:`jaxmlp.md.MDEngine` NVE, ``--steps`` steps after a
  warm-up (compile) run, neighbour rebuilds included;
* ``ase``: ``ase.md.VelocityVerlet`` on :class:`jaxmlp.Calculator`,
  ``--ase-steps`` steps after a warm-up.

Reported: steps/s, ns/day, the engine's per-step cost relative to ``bare``,
its speed-up over the ASE loop, and where the engine's time goes: the share
spent in host-side neighbour-list rebuilds (vesin + padding + transfer) and
the number of rebuilds.

Usage::

    taskset -c 1 python benchmarks/md.py                 # 2048 Cu, Morse + HDNNP
    taskset -c 1 python benchmarks/md.py --systems water --models hdnnp mlace --out benchmarks/results/md_water192.json
    taskset -c 1 python benchmarks/md.py --atoms 256 --steps 100 --ase-steps 20   # quick

Results: ``benchmarks/results/md.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _cu(n_atoms: int):
    from ase.build import bulk

    k = max(1, round((n_atoms / 4) ** (1 / 3)))
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(k)


WATER = ROOT.parent / "shared" / "data" / "datasets" / "water_deepmd_test.extxyz"


def _water():
    """192-atom water box (first DFT test frame, wrapped), or ``None`` without ``../shared``."""
    if not WATER.is_file():
        return None
    from ase.io import read

    a = read(WATER, 0)
    a.calc = None
    a.wrap()
    return a


def _model(kind: str, atoms):
    import jax

    from jaxmlp.bench.factory import make_model
    from jaxmlp.data import Dataset
    from jaxmlp.graph import atoms_to_graph

    elements = sorted(set(atoms.numbers.tolist()))
    if kind == "morse":
        m = make_model("morse", elements, 5.0)
        return m, m.init(None)
    labelled = atoms.copy()
    from ase.calculators.singlepoint import SinglePointCalculator

    labelled.calc = SinglePointCalculator(labelled, energy=0.0, forces=np.zeros((len(atoms), 3)))
    ds = Dataset.from_atoms([labelled]) if len(elements) > 1 else None
    m = make_model(kind, elements, 4.0, dataset=ds, structures=[atoms])
    g = atoms_to_graph(atoms, 4.0, triplets=m.needs_triplets)
    return m, m.init(jax.random.PRNGKey(0), g)


def _median_time(fn, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def bench(kind: str, atoms, steps: int, ase_steps: int, repeat: int, dt: float = 2.0, dtype: str = "float64", system: str = "") -> dict:
    import jax
    from ase import units
    from ase.md.verlet import VelocityVerlet

    import jaxmlp
    from jaxmlp.graph import atoms_to_graph, batch_graphs, grow_buckets
    from jaxmlp.md import MDConfig, MDEngine

    model, params = _model(kind, atoms)
    atoms = atoms.copy()
    rng = np.random.default_rng(0)
    m = atoms.get_masses()[:, None]
    p = rng.standard_normal((len(atoms), 3)) * np.sqrt(m * units.kB * 300.0)
    atoms.set_momenta(p - m * p.sum(0) / m.sum())
    skin = 1.0
    row = {"system": system, "model": kind, "n_atoms": len(atoms), "cutoff": model.cutoff, "skin": skin, "timestep_fs": dt, "dtype": dtype}

    # bare energy + forces on the same padded graph the engine uses
    g = atoms_to_graph(atoms, model.cutoff + skin, triplets=model.needs_triplets)
    padded = jax.tree_util.tree_map(jax.numpy.asarray, batch_graphs([g], grow_buckets([g])._replace(n_node=len(atoms) + 1)))
    efs = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
    if dtype == "float32":
        from jaxmlp.utils import cast_floats

        params_b, padded = cast_floats(params, jax.numpy.float32), cast_floats(padded, jax.numpy.float32)
    else:
        params_b = params
    jax.block_until_ready(efs(model, params_b, padded))
    row["bare_s"] = _median_time(lambda: jax.block_until_ready(efs(model, params_b, padded)), repeat)
    row["n_edges"] = int(g.n_edge[0])

    cfg = MDConfig("nve", timestep=dt, skin=skin, steps_per_call=50, log_every=50, dtype=dtype,
                   energy_dtype="float64" if dtype == "float32" else None)
    eng = MDEngine(model, params, atoms, cfg)
    t = time.perf_counter()
    eng.run(50)
    row["engine_compile_and_first_50_s"] = time.perf_counter() - t
    b0 = eng.state.n_builds
    # where the time goes: host-side rebuilds (vesin, padding, transfer) timed separately
    rebuild_s = [0.0]
    plain_rebuild = eng._rebuild

    def timed_rebuild():
        t0 = time.perf_counter()
        plain_rebuild()
        rebuild_s[0] += time.perf_counter() - t0

    eng._rebuild = timed_rebuild
    t = time.perf_counter()
    eng.run(steps)
    el = time.perf_counter() - t
    row.update({"engine_steps": steps, "engine_s": el, "engine_rebuilds": eng.state.n_builds - b0,
                "engine_rebuild_s": rebuild_s[0], "engine_rebuild_fraction": rebuild_s[0] / el})
    row["engine_steps_per_s"] = steps / el
    row["engine_per_step_over_bare"] = (el / steps) / row["bare_s"]

    a = atoms.copy()
    a.calc = jaxmlp.Calculator(model, params, skin=skin)
    dyn = VelocityVerlet(a, dt * units.fs)
    dyn.run(2)  # compile
    t = time.perf_counter()
    dyn.run(ase_steps)
    el = time.perf_counter() - t
    row.update({"ase_steps": ase_steps, "ase_s": el, "ase_steps_per_s": ase_steps / el})
    row["speedup_engine_over_ase"] = row["engine_steps_per_s"] / row["ase_steps_per_s"]
    for k in ("engine", "ase"):
        row[f"{k}_ns_per_day"] = row[f"{k}_steps_per_s"] * dt * 86400 * 1e-6
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", nargs="+", default=["cu"], choices=["cu", "water"])
    p.add_argument("--atoms", type=int, default=2048, help="Cu atoms (default: %(default)s)")
    p.add_argument("--models", nargs="+", default=["morse", "hdnnp"], choices=["morse", "hdnnp", "mlace"])
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="float32: float32 step with float64 energy accumulation (default: %(default)s)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--ase-steps", type=int, default=40)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "md.json"))
    args = p.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)
    from jaxmlp.utils import write_json

    rows = []
    for system in args.systems:
        atoms, dt = (_cu(args.atoms), 2.0) if system == "cu" else (_water(), 0.5)
        if atoms is None:
            print(f"[md] {system}: {WATER} not found, skipped", flush=True)
            continue
        for kind in args.models:
            if kind == "morse" and system != "cu":
                continue
            row = bench(kind, atoms, args.steps, args.ase_steps, args.repeat, dt=dt, dtype=args.dtype, system=system)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
            rows.append(row)
    result = {
        "benchmark": "md",
        "dtype": args.dtype,
        "note": "CPU timings on a shared 2-core machine loaded by other jobs; ratios within one run are the meaningful numbers",
        "cores": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "jax_backend": jax.default_backend(),
        "rows": rows,
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
