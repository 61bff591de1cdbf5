"""``jaxmlp-bench``: cutoff, layers, locality, speed and train studies.

Every subcommand runs offline on built-in default data when no data is
given, shows progress, and writes ``<out>/<name>.json`` (+ ``.csv`` and a
``.png`` plot) so results can be compared across runs and machines.

Examples
--------
``jaxmlp-bench speed``                       throughput of the models vs N
``jaxmlp-bench locality --structure x.xyz --calculator emt``
``jaxmlp-bench cutoff --cutoffs 3 4 5``      accuracy/cost/force range vs R_c (converged; --seeds N, --data FILE)
``jaxmlp-bench layers --layers 1 2 3``       ml-ACE accuracy/cost/range vs L
``jaxmlp-bench train --config run.toml``     train from a config file
``jaxmlp-bench validate --model m.npz --reference frames.extxyz``  MD stability, RDFs, force outliers
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from . import config, studies, validate
from .common import CLIError
from .factory import MODEL_KINDS

PRESET_CHOICES = ["default", "small", "paper-L1", "paper-L2", "paper-L3", "paper-L4"]

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommands: name -> ``run(args, out) -> dict`` (``dict["files"]``: the paths written).
COMMANDS = {
    "speed": studies.run_speed,
    "cutoff": studies.run_cutoff,
    "layers": studies.run_layers,
    "locality": studies.run_locality,
    "train": config.run_train,
    "validate": validate.run_validate,
}


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
    return v


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s}")
    return v


def _study_options(s) -> None:
    """Data, split, convergence and seed options shared by the training studies (cutoff, layers)."""
    d = s.add_argument_group("data and split")
    d.add_argument("--data", help="labelled data (extxyz, n2p2 input.data, ...); default: built-in EMT Cu clusters (a demonstration)")
    d.add_argument("--test-data", help="separate test file (then --data gives train and valid only)")
    d.add_argument("--n-structures", type=_positive_int, default=60, help="size of the built-in data set (default: %(default)s)")
    d.add_argument("--train-size", type=_positive_int, help="training structures (default: 70 %% of --data)")
    d.add_argument("--valid-size", type=_positive_int, help="validation structures for early stopping (default: 15 %%)")
    d.add_argument("--test-size", type=_positive_int, help="test structures (default: 15 %%, or all of --test-data)")
    t = s.add_argument_group("training (converged by default)")
    t.add_argument("--loss", default="forces", choices=["energy", "forces", "taylor"])
    t.add_argument("--optimiser", default="auto", choices=["auto", "adam", "lbfgs"],
                   help="auto: full-batch L-BFGS up to --lbfgs-max-atoms training atoms, else Adam with a cosine schedule")
    t.add_argument("--lbfgs-max-atoms", type=_positive_int, default=5000, help="(default: %(default)s)")
    t.add_argument("--epochs", type=_positive_int, default=300, help="most epochs (L-BFGS: iterations) per model (default: %(default)s)")
    t.add_argument("--patience", type=_positive_int, default=30, help="early stopping on the validation loss (default: %(default)s)")
    t.add_argument("--convergence-window", type=_positive_int, default=20,
                   help="converged: validation loss gains < --convergence-rtol over this many epochs (default: %(default)s)")
    t.add_argument("--convergence-rtol", type=_positive_float, default=1e-3, help="(default: %(default)s)")
    t.add_argument("--time-limit", type=_positive_float, help="training seconds per model (then rows may be unconverged)")
    t.add_argument("--learning-rate", type=_positive_float, default=3e-3, help="Adam peak rate (default: %(default)s)")
    t.add_argument("--batch-size", type=_positive_int, default=8, help="Adam mini-batch (default: %(default)s)")
    t.add_argument("--seeds", type=_positive_int, default=1, help="models per setting (seeds --seed … --seed+N-1); mean ± std")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jaxmlp-bench",
        description="Layer, cutoff, locality and speed studies for jaxmlp potentials.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples\n--------\n", 1)[1],
    )
    p.add_argument("--out", default="jaxmlp-bench-results", help="output directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--float32", action="store_true", help="run in float32 (default: float64)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("speed", help="energy+forces and Hessian throughput vs system size")
    s.add_argument("--models", nargs="+", choices=MODEL_KINDS, default=["lj", "morse", "hdnnp"], help="models: lj morse hdnnp mlace (default: %(default)s)")
    s.add_argument("--sizes", nargs="+", type=_positive_int, default=[32, 108, 256], help="atoms per periodic Cu cell (rounded to fcc supercells)")
    s.add_argument("--cutoff", type=_positive_float, default=5.0, help="cutoff in Å (default: %(default)s)")
    s.add_argument("--hessian", action="store_true", help="also time the dense (small N) and sparse Hessians")
    s.add_argument("--repeat", type=_positive_int, default=3)

    s = sub.add_parser("cutoff", help="accuracy, cost and force range vs cutoff radius (converged, seeds, real data)")
    s.add_argument("--model", default="hdnnp", choices=MODEL_KINDS)
    s.add_argument("--cutoffs", nargs="+", type=_positive_float, default=[3.5, 4.5, 5.5])
    s.add_argument("--basis", default="default", choices=PRESET_CHOICES, help="ml-ACE basis preset (default: %(default)s)")
    _study_options(s)
    s.add_argument("--reference", help="reference calculator for the locality check: emt | xtb | a saved jaxmlp model; "
                   "reports its converged fragment radius and the implied R_c = R_frag^conv / 2")
    s.add_argument("--reference-structure", help="finite structure for that check (default: the first finite test structure)")
    s.add_argument("--reference-radii", nargs="+", type=_positive_float, default=[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                   help="fragment radii in Å (default: 2 … 10)")
    s.add_argument("--force-tolerance", type=_positive_float, default=0.125,
                   help="||Δf|| of a converged fragment in eV/Å (default: %(default)s, Herbold & Behler)")

    s = sub.add_parser("layers", help="ml-ACE accuracy, cost and force range vs number of layers (converged, seeds, real data)")
    s.add_argument("--layers", nargs="+", type=_positive_int, default=[1, 2])
    s.add_argument("--basis", default="default", choices=PRESET_CHOICES,
                   help="ml-ACE basis preset: default (252 invariants/layer), small (32; fast), paper-L<L> (default: %(default)s)")
    s.add_argument("--cutoff", type=_positive_float, default=4.0)
    _study_options(s)

    s = sub.add_parser("locality", help="Hessian locality analysis of one structure")
    s.add_argument("--structure", help="structure file (any format ASE reads); default: a built-in alkane")
    s.add_argument("--calculator", default="emt",
                   help="emt | xtb | lj | morse (single-element Cu/Ar structures only) | path to a saved jaxmlp model (default: %(default)s)")
    s.add_argument("--index", type=int, default=0, help="frame of the structure file, negative counts from the end (default: %(default)s)")
    s.add_argument("--delta", type=_positive_float, default=0.0025, help="finite-difference step in Å for reference Hessians")
    s.add_argument("--bin", type=_positive_float, default=0.5, help="distance bin width in Å for the decay curve")
    s.add_argument("--center", type=int, help="atom index for the fragment / G′ analysis (default: most central heavy atom)")
    s.add_argument("--radii", nargs="+", type=_positive_float, help="fragment radii in Å for the G′ vs ||Δf|| series")

    s = sub.add_parser("train", help="train a model from a TOML/YAML/JSON config file")
    s.add_argument("--config", required=True, help="config file (TOML, YAML or JSON)")

    validate.add_parser(sub, _positive_float, _positive_int)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", not args.float32)
    out = pathlib.Path(args.out)
    run = COMMANDS[args.command]
    try:
        result = run(args, out)
    except CLIError as exc:
        parser.exit(2, f"jaxmlp-bench: error: {exc}\n")
    except (ValueError, FileNotFoundError) as exc:  # the library's messages for bad input
        parser.exit(2, f"jaxmlp-bench: error: {type(exc).__name__}: {exc}\n")
    for line in result.get("summary", []):
        print(line)
    for path in result.get("files", []):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
