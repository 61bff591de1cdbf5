"""Worked example: an HDNNP for liquid water, validated by MD rather than by its RMSE.

Behler (2024, slides 33–44 of the talk in ``shared/seeds``): potentials with
similar test-set errors can behave very differently in MD, so the validation
step is a simulation.  This example

1. trains an HDNNP plus a ZBL repulsive core (:func:`jaxmlp.models.with_core_repulsion`;
   radial + angular ACSF, n2p2 scaling, E0 from the training set; direct
   force training, κ = 0.9) on the bulk-water DFT frames
   ``water_deepmd_train.extxyz`` (64 H2O, 192 atoms) and tests it on
   ``water_deepmd_test.extxyz``;
2. runs NVT MD at 300 K (jax-md Langevin/BAOAB through :mod:`jaxmlp.md`) from
   a test frame, checks stability (:func:`jaxmlp.validation.stability`), and
   compares the O–O, O–H and H–H radial distribution functions of the model's
   trajectory with those of the DFT frames (:func:`jaxmlp.validation.rdf`,
   :func:`~jaxmlp.validation.rdf_distance`);
3. does the same for a deliberately under-trained model (energy-only loss on
   a handful of structures for a few epochs) and reports which check flags it;
4. lists the force outliers of both models on held-out test frames.

Repulsive core: the DFT frames hold no O–H pair closer than 0.88 Å, and
HDNNPs trained on them extrapolate into an attractive hole below it (every
earlier model collapsed within 100 fs).  The ZBL term acts only below the
shortest distance of each element pair in the training frames minus
0.05 Å (switched off C² there), so it is zero on all training data and
training moves only the network.  ``--gap-barrier H`` adds a C² bump of
``H`` eV inside the empty window of the DFT O–H distances (1.14–1.33 Å,
:func:`jaxmlp.models.gap_barrier`) and ``--wall K`` (with it) a cubic wall
``K (r_in − r)³`` below the core radii (:func:`jaxmlp.models.wall_repulsion`);
both are off by default: with the trained network of the full run they did
not stop its failure (``docs/md.md``).

Descriptor: ``n_radial`` shifted radial Gaussians per element pair (n2p2's
``nnp-sfparamgen`` grid, :func:`jaxmlp.descriptors.acsf.radial_grid`; 10 in
the full run, 5 in the fast mode) and the type-9 angular functions with η = 0,
ζ ∈ {1, 4}, λ = ±1 for every neighbour pair, cutoff 4 Å: 2·n_radial + 12
functions per element (32 in the full run).  n2p2's H2O_RPBE-D3 set
(57 functions, cutoff 12 Bohr = 6.35 Å) costs about 15× more per
energy+forces on 192 atoms (0.35 s vs 0.023 s on one CPU core), too much for
20 ps on this machine; the short cutoff still contains the first O–O shell
(2.8 Å) and the hydrogen-bond geometry.

MD: 1 fs steps with **deuterium masses on H** (2.014 amu; the classical
configurational distribution, hence the RDFs, does not depend on the masses,
and the slower O–D vibration makes 1 fs safe where 0.5 fs is the standard
with H masses), float32 with the float64 energy sum, skin 0.6 Å.

``main()`` (fast mode, CI) trains for a few seconds and runs 40 fs;
``python examples/md_water.py --full`` trains on the whole set and runs 20 ps
of NVT, writing ``benchmarks/results/md_water.json`` and
``benchmarks/results/md_water_rdf.png``.  The DFT frames are not part of the
project (LGPL data in ``../shared``); nothing derived from them but the
numbers of this study is written.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "datasets"
RESULTS = ROOT / "benchmarks" / "results"
CUTOFF = 4.0  # Å

FAST = {
    "n_train": 8, "n_valid": 4, "epochs": 2, "batch_size": 4, "time_limit": None, "hidden": (8, 8), "n_radial": 5,
    "learning_rate": 3e-3, "gap_barrier_eV": 0.0, "wall_stiffness": 0.0, "md_time": 40.0, "bad_md_time": 40.0, "equilibration": 10.0, "write_every": 10,
    "bad_n_train": 4, "bad_epochs": 1, "n_rdf_reference": 20, "n_force_test": 4,
}
FULL = {
    "n_train": 320, "n_valid": 20, "epochs": 30, "batch_size": 4, "time_limit": 1500.0, "hidden": (24, 24), "n_radial": 10,
    "learning_rate": 4e-3, "gap_barrier_eV": 0.0, "wall_stiffness": 0.0,
    "md_time": 20_000.0, "bad_md_time": 1_000.0, "equilibration": 2_000.0, "write_every": 50,
    "bad_n_train": 8, "bad_epochs": 2, "n_rdf_reference": 400, "n_force_test": 60,
}
TIMESTEP = 1.0  # fs, with deuterium masses on H (see md_check)
SKIN = 0.6  # Å: graph radius 4.6 Å; ~3x cheaper per step than 1 Å on this machine (measured), rebuilds every ~10 steps
CORE_MARGIN = 0.05  # Å below the shortest distance of each element pair in the training frames
CORE_WIDTH = 0.3  # Å, switch of the ZBL core
H_MASS = 2.014  # amu (deuterium) on H in the MD


def load_frames():
    """The DFT frames (train, test) as lists of ``ase.Atoms``; ``None`` when ``../shared`` is absent."""
    from ase.io import read

    paths = [SHARED / "water_deepmd_train.extxyz", SHARED / "water_deepmd_test.extxyz"]
    if not all(p.is_file() for p in paths):
        return None
    return read(paths[0], ":"), read(paths[1], ":")


def build_model(train_set, hidden, n_radial=5, core_frames=None):
    """HDNNP with the water ACSF set (module docstring), scaled on ``train_set``, plus the ZBL core.

    The core (:func:`jaxmlp.models.with_core_repulsion`) acts only below the
    shortest distance of each element pair in ``core_frames`` (default: the
    training set) minus ``CORE_MARGIN``, so it is zero on every training
    structure and training moves only the network (its params are ``()``).
    """
    from jaxmlp.data import fit_reference_energies
    from jaxmlp.descriptors import acsf
    from jaxmlp.models import hdnnp, with_core_repulsion

    elements = ["H", "O"]
    sfs = acsf.radial_grid(elements, CUTOFF, n_radial) + acsf.angular_set(elements, CUTOFF, etas=(0.0,), zetas=(1.0, 4.0))
    stats = acsf.ACSF(elements, sfs).statistics(train_set.graphs(CUTOFF, triplets=True))
    scaling = {"mode": "scalecenter", "smin": -1.0, "smax": 1.0, "stats": stats}
    e0 = fit_reference_energies(list(train_set), elements)
    net = hdnnp(elements, sfs, hidden=hidden, activation="tanh", scaling=scaling, e0=e0)
    frames = list(train_set) if core_frames is None else core_frames
    return with_core_repulsion(net, frames=frames, margin=CORE_MARGIN, width=CORE_WIDTH)


def train_model(model, train_set, valid_set, loss, epochs, batch_size, time_limit, seed=0, learning_rate=3e-3):
    from jaxmlp.training import TrainConfig, evaluate, train

    cfg = TrainConfig(loss=loss, kappa=0.9 if loss == "forces" else 0.5, epochs=epochs, batch_size=batch_size,
                      learning_rate=learning_rate, schedule="cosine", decay_rate=0.02, warmup_epochs=1 if epochs > 4 else 0,
                      seed=seed, time_limit=time_limit)
    t0 = time.perf_counter()
    def report(epoch, rec):
        print(f"[md_water]   epoch {epoch}: train {rec['train_loss']:.4g}, valid {rec.get('valid_loss', float('nan')):.4g}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    params, hist = train(model, train_set, valid_set, cfg, callback=report)
    wall = time.perf_counter() - t0
    res = evaluate(model, params, valid_set, batch_size=batch_size)
    valid = [h["valid_loss"] for h in hist]
    best = int(np.argmin(valid))
    # converged: the best validation loss is not in the last quarter of the run and the last
    # quarter improved it by less than 2 % (a cosine run that stops at its time limit is not)
    last_q = max(1, len(hist) // 4)
    tail_gain = (min(valid[:-last_q]) - min(valid)) / min(valid[:-last_q]) if len(hist) > last_q else 1.0
    converged = bool(len(hist) >= 8 and tail_gain < 0.02 and not any(h.get("stop") == "time_limit" for h in hist))
    return params, {
        "loss": loss, "kappa": cfg.kappa, "learning_rate": cfg.learning_rate, "schedule": "cosine to 2 %, 1 warm-up epoch",
        "batch_size": batch_size, "n_train": len(train_set), "n_valid": len(valid_set),
        "epochs": len(hist), "epochs_planned": epochs, "best_epoch": best + 1, "train_wall_s": wall,
        "last_quarter_relative_gain": float(tail_gain), "flat": bool(len(hist) >= 8 and tail_gain < 0.02),
        "valid_energy_rmse_meV_atom": 1e3 * float(res["energy_rmse"]), "valid_force_rmse_eV_A": float(res["force_rmse"]),
        "valid_loss_curve": valid, "converged": converged,
        "stopped_by": next((h["stop"] for h in hist if "stop" in h), None),
    }


def _shortest(frames):
    """Shortest distance per element pair seen in ``frames`` (Å), or None."""
    from jaxmlp.models import core_radii

    if not frames:
        return None
    try:
        return core_radii(frames, margin=0.0, r_max=3.0)
    except ValueError:
        return None


def md_check(model, params, start, reference_rdf, p, label, out_dir, max_time, rdf_tolerance):
    """NVT stability run, then RDFs of the written frames against the DFT RDFs."""
    from ase.io import read

    from jaxmlp.md import MDConfig
    from jaxmlp.validation import rdf, rdf_distance, stability

    # float32 dynamics with the potential energy summed in float64 (MDConfig.energy_dtype); deuterium
    # masses on H: the classical configurational distribution (hence the RDFs) does not depend on the
    # masses, and the slower O–D vibration makes 1 fs steps safe
    start = start.copy()
    masses = start.get_masses()
    masses[start.numbers == 1] = H_MASS
    start.set_masses(masses)
    cfg = MDConfig("langevin", timestep=TIMESTEP, temperature=300.0, friction=0.01, skin=SKIN, steps_per_call=100,
                   log_every=p["write_every"], seed=1, dtype="float32", energy_dtype="float64")
    traj = out_dir / f"md_water_{label}.extxyz"
    traj.unlink(missing_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    st = stability(model, params, start, cfg, max_time=max_time, min_dist=0.6, trajectory=traj, write_every=p["write_every"],
                   progress=p.get("progress", False))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    eng = st.pop("engine")
    steps = eng.state.step
    frames = read(traj, ":") if traj.is_file() else []
    frames = [f for f in frames if f.info["time_fs"] > p["equilibration"]]
    row = {
        "stable": st["stable"], "reason": st["reason"], "time_to_failure_fs": st["time_to_failure_fs"],
        "simulated_fs": st["simulated_fs"], "steps": steps, "graph_builds": eng.state.n_builds,
        "wall_s": wall, "cpu_s": cpu, "cpu_ms_per_step": 1e3 * cpu / steps if steps else None,
        "steps_per_s": steps / wall if wall > 0 else None,
        "ns_per_day": steps * cfg.timestep * 1e-6 / wall * 86400 if wall > 0 else None,
        "mean_temperature_K": float(np.mean(st["log"]["temperature"][len(st["log"]["temperature"]) // 10:])) if st["log"]["temperature"] else None,
        "final_min_distance_A": st["final_min_distance"], "criteria": st["criteria"],
        "md": {"ensemble": cfg.ensemble, "timestep_fs": cfg.timestep, "temperature_K": cfg.temperature,
               "friction_per_fs": cfg.friction, "skin_A": cfg.skin, "dtype": cfg.dtype, "energy_dtype": cfg.energy_dtype,
               "H_mass_amu": H_MASS},
        "rdf_frames": len(frames),
        "shortest_distances_A": _shortest(frames),
    }
    curve = None
    if frames:
        curve = rdf(frames, r_max=6.0, n_bins=120)
        d = rdf_distance(curve, reference_rdf)
        row["rdf_distance"] = d
        row["rdf_ok"] = bool(d["mean"] <= rdf_tolerance)
    else:
        row["rdf_distance"], row["rdf_ok"] = None, False
    row["flagged_by"] = [k for k, bad in (("stability", not row["stable"]), ("rdf", not row["rdf_ok"])) if bad]
    return row, curve


def main(full: bool = False, out_dir=None, results=None, tag: str = "", **overrides) -> dict:
    """Run the study; returns the result dict (also written as JSON).

    ``full=False`` is the fast CI mode.  ``out_dir`` receives the trajectories
    (default: a ``md_water`` folder in the system temp dir); ``results`` the
    JSON and PNG (default ``benchmarks/results`` in full mode, ``out_dir``
    otherwise).  ``overrides`` replace entries of the mode's settings.
    """
    import tempfile

    from jaxmlp.data import Dataset
    from jaxmlp.utils import write_json
    from jaxmlp.validation import force_outliers, plot_rdfs, rdf, rdf_distance

    p = {**(FULL if full else FAST), **overrides}
    data = load_frames()
    if data is None:
        print("[md_water] ../shared/data/datasets/water_deepmd_*.extxyz not found; nothing to do")
        return {"skipped": "shared data absent"}
    train_frames, test_frames = data
    out_dir = pathlib.Path(out_dir) if out_dir is not None else pathlib.Path(tempfile.gettempdir()) / "md_water"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = pathlib.Path(results) if results is not None else (RESULTS if full else out_dir)
    rng = np.random.default_rng(0)
    train_idx = np.sort(rng.permutation(len(train_frames))[: p["n_train"]])
    train_set = Dataset.from_atoms([train_frames[i] for i in train_idx])
    valid_set = Dataset.from_atoms(test_frames[: p["n_valid"]])
    t_start = time.perf_counter()
    import jaxmlp

    saved_model, saved_train = out_dir / "md_water_model.npz", out_dir / "md_water_training.json"
    if p.get("reuse") and saved_model.is_file() and saved_train.is_file():
        # --reuse: the model trained by an earlier run with the same out_dir (e.g. to rerun only the MD)
        model, params = jaxmlp.load(saved_model)
        good_train = {**json.loads(saved_train.read_text()), "reused_from": str(saved_model)}
        print(f"[md_water] reusing {saved_model}", flush=True)
    else:
        model = build_model(train_set, p["hidden"], p["n_radial"])
        print(f"[md_water] training on {len(train_set)} frames ({p['epochs']} epochs max)", flush=True)
        params, good_train = train_model(model, train_set, valid_set, "forces", p["epochs"], p["batch_size"], p["time_limit"],
                                         learning_rate=p["learning_rate"])
        jaxmlp.save(saved_model, model, params)  # for reuse (stays outside the project)
        write_json(saved_train, good_train)
    core = model.extras["parts"][1]
    gap = None
    if p.get("gap_barrier_eV"):
        # the O–H distances of the DFT frames jump from the bond (<= 1.12 Å) to the hydrogen bond (>= 1.36 Å); a network
        # trained on them makes protons in between (H3O+/OH- environments) 0.3-1.2 eV too stable, and every run with the
        # core alone fell into that hole (proton transfer, then heating).  A C² bump inside the empty window is zero on all
        # training data; it is a prior that forbids what the data never show, reported as such.
        from jaxmlp.models import gap_barrier, pair_gaps, sum_models, wall_repulsion

        windows = pair_gaps(list(train_set), ["H-O"], r_max=2.0, min_width=0.1, margin=0.02)
        gap = gap_barrier(["H", "O"], windows, height=p["gap_barrier_eV"])
        parts, extra = list(model.extras["parts"][:2]), [gap]
        if p.get("wall_stiffness"):
            # the ZBL core is soft right below the data (0.8 eV for O-O at 2.15 Å); a run with core + gap barrier
            # clustered oxygens at 2.15-2.35 Å (DFT frames: >= 2.41 Å).  A cubic wall from the same r_in stops that.
            wall = wall_repulsion(["H", "O"], core.config["r_in"], stiffness=p["wall_stiffness"])
            extra.insert(0, wall)
        model = sum_models(*parts, *extra)
        params = (*params[:2], *[() for _ in extra])
    print(f"[md_water] trained: {good_train['epochs']} epochs, E {good_train['valid_energy_rmse_meV_atom']:.2f} meV/atom, "
          f"F {good_train['valid_force_rmse_eV_A']:.3f} eV/Å, converged={good_train['converged']}", flush=True)
    # the same architecture and descriptor scaling, trained with the energy loss on a few frames for a few epochs
    bad_set = train_set[: p["bad_n_train"]]
    bad_model = model
    bad_params, bad_train = train_model(bad_model, bad_set, valid_set, "energy", p["bad_epochs"], p["batch_size"], None,
                                        learning_rate=3e-3)
    print(f"[md_water] under-trained: E {bad_train['valid_energy_rmse_meV_atom']:.2f} meV/atom, F {bad_train['valid_force_rmse_eV_A']:.3f} eV/Å", flush=True)

    # reference: RDFs of the DFT frames; its sampling noise is the distance between the train and test trajectories
    ref_frames = (train_frames + test_frames)[:: max(1, (len(train_frames) + len(test_frames)) // p["n_rdf_reference"])]
    ref_rdf = rdf(ref_frames, r_max=6.0, n_bins=120)
    noise = rdf_distance(rdf(train_frames[:: max(1, len(train_frames) // p["n_rdf_reference"])], 6.0, 120), rdf(test_frames, 6.0, 120))
    rdf_tolerance = max(0.1, 3.0 * noise["mean"])
    start = test_frames[0].copy()
    start.wrap()

    good_md, good_curve = md_check(model, params, start, ref_rdf, p, "trained", out_dir, p["md_time"], rdf_tolerance)
    print(f"[md_water] trained model MD: {good_md['simulated_fs']:.0f} fs, stable={good_md['stable']}, "
          f"RDF distance {good_md['rdf_distance']['mean'] if good_md['rdf_distance'] else None}, {good_md['steps_per_s']:.1f} steps/s", flush=True)
    bad_md, bad_curve = md_check(bad_model, bad_params, start, ref_rdf, p, "undertrained", out_dir, p["bad_md_time"], rdf_tolerance)
    print(f"[md_water] under-trained model MD: stable={bad_md['stable']} ({bad_md['reason']}), flagged by {bad_md['flagged_by']}", flush=True)

    tests = test_frames[p["n_valid"]: p["n_valid"] + p["n_force_test"]]  # not the validation frames that chose the epoch
    outl = {}
    for label, (m, prm) in {"trained": (model, params), "undertrained": (bad_model, bad_params)}.items():
        fo = force_outliers(m, prm, tests, top=5)
        outl[label] = {"rmse_eV_A": fo["rmse"], "per_element": fo["per_element"], "error_percentiles": fo["error_percentiles"],
                       "outliers": fo["outliers"]}

    curves = {"DFT frames": ref_rdf}
    if good_curve is not None:
        curves["HDNNP (trained)"] = good_curve
    if bad_curve is not None:
        curves["HDNNP (under-trained)"] = bad_curve
    png = results / (f"md_water{tag}_rdf.png" if full else "md_water_rdf_fast.png")
    plot_rdfs(curves, png, title="64 H2O, 300 K: model MD vs DFT frames")
    res = {
        "mode": "full" if full else "fast",
        "settings": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()}, "cutoff_A": CUTOFF,
                     "descriptor": f"radial_grid({p['n_radial']}, shifted) + angular_set(eta=0, zeta=1,4, lambda=±1), type 9: "
                                   f"{2 * p['n_radial'] + 12} functions per element",
                     "core_repulsion": {"kind": "ZBL, quintic switch to 0 at r_in (C2)", "r_in_A": core.config["r_in"],
                                        "width_A": core.config["width"], "rule": f"shortest pair distance in the training frames - {CORE_MARGIN} A"},
                     "timestep_note": f"{TIMESTEP} fs with deuterium masses ({H_MASS} amu) on H; the RDFs (configurational) do not depend on the masses",
                     "gap_barrier": None if gap is None else {"kind": "64 h t^3 (1-t)^3 inside the empty window of the O-H distances of the training frames",
                                                             "windows_A": gap.config["windows"], "height_eV": gap.config["height"]},
                     "wall": None if not p.get("wall_stiffness") or gap is None else {
                         "kind": "k (r_in - r)^3 below the core's r_in", "stiffness_eV_A3": p["wall_stiffness"]},
                     "skin_A": SKIN, "force_test_frames": f"test frames {p['n_valid']}..{p['n_valid'] + p['n_force_test'] - 1}"},
        "trained": {"training": good_train, "md": good_md},
        "undertrained": {"training": bad_train, "md": bad_md},
        "force_outliers": outl,
        "rdf_reference": {"frames": len(ref_frames), "train_vs_test_distance": noise, "tolerance": rdf_tolerance,
                          "tolerance_rule": "max(0.1, 3 x distance between the RDFs of the DFT train and test trajectories)"},
        "rdf": {k: {"r": c["r"].tolist(), "g": {pk: np.asarray(v).tolist() for pk, v in c["g"].items()}} for k, c in curves.items()},
        "validation_separates_models": bool(not good_md["flagged_by"] and bad_md["flagged_by"]),
        "total_wall_s": time.perf_counter() - t_start,
        "machine_note": "CPU, shared 2-core machine loaded by other jobs: timings are indicative only",
        "files": [str(png)],
    }
    write_json(results / (f"md_water{tag}.json" if full else "md_water_fast.json"), res)
    print(f"[md_water] validation separates the models: {res['validation_separates_models']}; wrote {results}", flush=True)
    return res


if __name__ == "__main__":
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 energy accumulation of the MD (MDConfig.energy_dtype)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="whole training set, 20 ps NVT (tens of minutes on one core)")
    ap.add_argument("--out-dir", help="trajectories (default: $TMPDIR/md_water)")
    ap.add_argument("--md-time", type=float, help="fs of NVT for the trained model (overrides the mode)")
    ap.add_argument("--bad-md-time", type=float, help="fs of NVT for the under-trained model (overrides the mode)")
    ap.add_argument("--train-time", type=float, help="training time limit in s (overrides the mode)")
    ap.add_argument("--epochs", type=int, help="training epochs (overrides the mode)")
    ap.add_argument("--n-radial", type=int, help="radial functions per element pair (overrides the mode)")
    ap.add_argument("--wall", type=float, help="stiffness (eV/Å³) of the cubic wall with the gap barrier; 0: none (overrides the mode)")
    ap.add_argument("--gap-barrier", type=float, help="height (eV) of the O-H gap barrier; 0: core only (overrides the mode)")
    ap.add_argument("--reuse", action="store_true", help="reuse the model trained by an earlier run with the same --out-dir")
    ap.add_argument("--progress", action="store_true", help="progress bar of the MD")
    ap.add_argument("--tag", default="", help="suffix of the result files (md_water<tag>.json, md_water<tag>_rdf.png)")
    args = ap.parse_args()
    kw = {k: v for k, v in {"md_time": args.md_time, "bad_md_time": args.bad_md_time, "time_limit": args.train_time,
                            "epochs": args.epochs, "reuse": args.reuse or None,
                            "gap_barrier_eV": args.gap_barrier, "n_radial": args.n_radial,
                            "wall_stiffness": args.wall, "progress": args.progress or None}.items() if v is not None}
    if args.md_time is not None:
        kw["equilibration"] = min(FULL["equilibration"], 0.2 * args.md_time)
    main(full=args.full, out_dir=args.out_dir, tag=args.tag, **kw)
