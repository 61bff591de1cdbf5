"""Train a small 4G-HDNNP on water in n2p2's two stages (charges, then short-range energies and forces).

Data: ``../shared/data/n2p2/configuration-sets/input.data.H2O_RPBE-D3`` (20
periodic water cells, RPBE-D3 energies and forces, RuNNer charges; Bohr and
Hartree, read into Å and eV). The default ``main()`` is a fast demonstration
(few structures, radial symmetry functions only, a few epochs): its numbers
are **not converged** and only show that both stages run and reduce their
losses. Run ``python examples/train_4g_water.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import pathlib

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from ase.units import Bohr, Hartree  # noqa: E402

from jaxmlp.data import Dataset, read  # noqa: E402
from jaxmlp.models import hdnnp4g  # noqa: E402
from jaxmlp.models.electrostatics import EwaldSettings, required_ranges  # noqa: E402
from jaxmlp.training import TrainConfig, train  # noqa: E402
from jaxmlp.training.charges import charge_rmse, fit_charges, merge_short_range, short_range_model  # noqa: E402
from jaxmlp.utils import write_json  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "n2p2" / "configuration-sets" / "input.data.H2O_RPBE-D3"


def symmetry_functions(rc: float = 5.0):
    """Radial type-2 functions for H/O centres and neighbours (Å)."""
    return [{"type": 2, "center": c, "e1": e, "eta": eta, "rs": 0.0, "rc": rc}
            for c in "HO" for e in "HO" for eta in (0.2, 0.8, 2.0)]


def main(n_structures: int = 4, epochs_charges: int = 5, epochs_short: int = 3, hidden=(5,), data=DATA,
         out: str | None = None, seed: int = 0) -> dict:
    frames = [a for a in read(data, format="n2p2", length_unit=Bohr, energy_unit=Hartree) if len(a) <= 48]
    frames = frames[: max(n_structures, 2)]
    n_train = max(1, len(frames) - 1)
    train_frames, test_frames = frames[:n_train], frames[n_train:]
    ewald = {"precision": 1e-4, "max_charge": 1.0}
    settings = EwaldSettings(min_eta=1.0, **ewald)
    ranges = [required_ranges(a.cell.array, len(a), settings) for a in frames]
    img = tuple(int(max(r[0][k] for r in ranges)) for k in range(3))
    ks = tuple(int(max(r[1][k] for r in ranges)) for k in range(3))
    e_per_atom = np.mean([a.get_potential_energy() / len(a) for a in train_frames])
    model = hdnnp4g(["H", "O"], symmetry_functions(), hidden=hidden, sigma={"H": 0.6, "O": 1.0},
                    hardness={"H": 8.0, "O": 12.0}, screening={"inner": 1.0, "outer": 5.0}, ewald=ewald,
                    image_range=img, kspace_range=ks, e0={"H": e_per_atom, "O": e_per_atom})
    params = model.init(jax.random.PRNGKey(seed))

    # stage 1: electronegativity networks and hardness against the reference charges
    q0 = charge_rmse(model, params, test_frames)
    params, h1 = fit_charges(model, params, train_frames, epochs=epochs_charges, learning_rate=1e-2, batch_size=2,
                             seed=seed)
    q1 = charge_rmse(model, params, test_frames)

    # stage 2: short-range networks on energies and forces, the charge part frozen, with the ordinary loop
    short = short_range_model(model, params)
    cfg = TrainConfig(loss="forces", epochs=epochs_short, batch_size=2, learning_rate=3e-3, seed=seed)
    short_params, h2 = train(short, Dataset.from_atoms(train_frames), Dataset.from_atoms(test_frames), cfg,
                             params={"networks": params["networks"]})
    params = merge_short_range(params, short_params)
    result = {
        "note": "fast demonstration, NOT converged",
        "n_train": len(train_frames), "n_test": len(test_frames),
        "test_charge_rmse_e": {"initial": q0, "after_stage_1": q1},
        "stage1_train_charge_rmse_e": [r["train_charge_rmse"] for r in h1],
        "stage2_train_loss": [r["train_loss"] for r in h2],
        "stage2_valid_energy_rmse_eV_per_atom": [r["valid_energy_rmse"] for r in h2],
        "stage2_valid_force_rmse_eV_per_A": [r["valid_force_rmse"] for r in h2],
        "image_range": list(img), "kspace_range": list(ks),
    }
    for k, v in result.items():
        print(f"{k:40s} {v}")
    if out:
        write_json(out, result)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structures", type=int, default=4)
    ap.add_argument("--epochs-charges", type=int, default=5)
    ap.add_argument("--epochs-short", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    main(a.structures, a.epochs_charges, a.epochs_short, out=a.out)
