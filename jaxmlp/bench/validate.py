"""``jaxmlp-bench validate``: MD stability, RDFs against reference frames, force outliers, NVE vs time step.

The command parses its options and calls :mod:`jaxmlp.validation` and
:mod:`jaxmlp.md`; it writes ``validate.json`` and the plots
``validate_rdf.png``, ``validate_parity.png``, ``validate_nve.png`` and the
trajectory ``validate_md.extxyz`` under ``--out``.
"""

from __future__ import annotations

import pathlib

import numpy as np

from .common import CLIError

__all__ = ["add_parser", "run_validate"]


def add_parser(sub, positive_float, positive_int) -> None:
    """Register the ``validate`` subcommand on the argparse ``sub`` parsers."""
    s = sub.add_parser("validate", help="MD stability, RDFs vs reference frames, force outliers, NVE vs time step")
    s.add_argument("--model", default="morse", help="path to a saved jaxmlp model, or 'morse' (built-in Cu Morse) (default: %(default)s)")
    s.add_argument("--reference", help="reference frames with forces (extxyz...): RDF reference and force-outlier test set")
    s.add_argument("--structure", help="start structure (default: first reference frame, or a 108-atom fcc Cu cell for 'morse')")
    s.add_argument("--index", type=int, default=0, help="frame of --structure (default: %(default)s)")
    s.add_argument("--ensemble", default="langevin", choices=["nve", "langevin", "nose_hoover"])
    s.add_argument("--temperature", type=positive_float, default=300.0, help="K (default: %(default)s)")
    s.add_argument("--timestep", type=positive_float, default=1.0, help="fs (default: %(default)s)")
    s.add_argument("--time", type=positive_float, default=2000.0, help="MD time limit in fs (default: %(default)s)")
    s.add_argument("--friction", type=positive_float, default=0.01, help="Langevin friction in 1/fs (default: %(default)s)")
    s.add_argument("--skin", type=float, default=1.0, help="neighbour-list skin in Å (default: %(default)s)")
    s.add_argument("--min-dist", type=float, default=0.5, help="failure: two atoms closer than this (Å) (default: %(default)s)")
    s.add_argument("--max-temperature", type=positive_float, help="failure: temperature above this (K) (default: 3 × target)")
    s.add_argument("--max-drift", type=positive_float, default=1e-2, help="failure (NVE): drift in eV/atom/ps (default: %(default)s)")
    s.add_argument("--equilibration", type=float, default=0.2, help="fraction of the run left out of the RDF (default: %(default)s)")
    s.add_argument("--rdf-rmax", type=positive_float, default=6.0, help="Å (default: %(default)s)")
    s.add_argument("--rdf-bins", type=positive_int, default=120)
    s.add_argument("--top", type=positive_int, default=20, help="force outliers to list (default: %(default)s)")
    s.add_argument("--nve-timesteps", nargs="*", type=positive_float, default=[0.5, 1.0, 2.0], help="fs; empty to skip (default: %(default)s)")
    s.add_argument("--nve-time", type=positive_float, default=200.0, help="fs per NVE run (default: %(default)s)")
    s.add_argument("--write-every", type=positive_int, default=20, help="steps between trajectory frames and stability checks (default: %(default)s)")


def _model(spec: str):
    import jaxmlp
    from jaxmlp.models import morse

    from .factory import PAIR_PARAMETERS

    if spec == "morse":
        p = dict(PAIR_PARAMETERS["morse"]["Cu"])
        m = morse(**p)
        return m, m.init(None), "morse (Cu, Girifalco-Weizer)"
    path = pathlib.Path(spec)
    if not path.is_file():
        raise CLIError(f"--model {spec!r}: not 'morse' and no such file")
    m, params = jaxmlp.load(path)
    return m, params, str(path)


def run_validate(args, out: pathlib.Path) -> dict:
    from ase.build import bulk

    from jaxmlp import validation
    from jaxmlp.data.io import read
    from jaxmlp.md import MDConfig
    from jaxmlp.utils import write_json

    model, params, model_name = _model(args.model)
    reference = read(args.reference, ":") if args.reference else None
    if args.structure:
        start = read(args.structure, args.index)[0]
    elif reference:
        start = reference[0].copy()
    elif args.model == "morse":
        start = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    else:
        raise CLIError("give --structure or --reference for the start structure of a saved model")
    start.calc = None
    if not 0 <= args.equilibration < 1:
        raise CLIError(f"--equilibration must be in [0, 1), got {args.equilibration}")

    files = []
    result = {
        "study": "validate",
        "model": model_name,
        "n_atoms": len(start),
        "ensemble": args.ensemble,
        "temperature_K": args.temperature,
        "timestep_fs": args.timestep,
    }
    log_every = int(args.write_every)  # the failure criteria are checked at every frame
    cfg = MDConfig(
        args.ensemble,
        timestep=args.timestep,
        temperature=args.temperature,
        friction=args.friction,
        skin=args.skin,
        log_every=log_every,
        steps_per_call=log_every * max(1, 100 // log_every),
        init_temperature=args.temperature,
        seed=args.seed,
        dtype="float32" if args.float32 else "float64",
    )
    traj = out / "validate_md.extxyz"
    if traj.exists():
        traj.unlink()
    stab = validation.stability(
        model,
        params,
        start,
        cfg,
        max_time=args.time,
        min_dist=args.min_dist,
        max_temperature=args.max_temperature,
        max_drift=args.max_drift,
        trajectory=traj,
        write_every=log_every,
        progress=not args.no_progress,
    )
    stab.pop("engine")
    result["stability"] = stab
    files.append(traj)

    from ase.io import read as ase_read

    frames = ase_read(traj, ":") if traj.exists() else []
    keep = [f for f in frames if f.info.get("time_fs", 0.0) >= args.equilibration * stab["simulated_fs"]]
    if keep and start.pbc.all():
        curves = {"model MD": validation.rdf(keep, args.rdf_rmax, args.rdf_bins)}
        if reference:
            curves["reference"] = validation.rdf(reference, args.rdf_rmax, args.rdf_bins)
            result["rdf_distance"] = validation.rdf_distance(curves["model MD"], curves["reference"])
        result["rdf"] = {k: {"r": c["r"], "g": c["g"], "n_frames": c["n_frames"]} for k, c in curves.items()}
        path = out / "validate_rdf.png"
        validation.plot_rdfs(curves, path, title=f"{model_name}: {args.ensemble} {args.temperature:g} K")
        files.append(path)

    if reference:
        fo = validation.force_outliers(model, params, reference, top=args.top)
        result["forces"] = {k: fo[k] for k in ("rmse", "per_element", "outliers", "error_percentiles")}
        path = out / "validate_parity.png"
        validation.plot_force_parity(fo, path, title=model_name)
        files.append(path)

    if args.nve_timesteps:
        base = start.copy()
        rng = np.random.default_rng(args.seed)
        from ase import units

        m = base.get_masses()[:, None]
        p = rng.standard_normal((len(base), 3)) * np.sqrt(m * units.kB * args.temperature)
        p -= m * p.sum(0) / m.sum()
        base.set_momenta(p)
        nve = validation.nve_energy_conservation(model, params, base, args.nve_timesteps, time=args.nve_time, skin=args.skin)
        result["nve_conservation"] = nve
        path = out / "validate_nve.png"
        validation.plot_energy_conservation(nve, path)
        files.append(path)

    files.insert(0, write_json(out / "validate.json", result))
    result["files"] = [str(f) for f in files]
    return result
