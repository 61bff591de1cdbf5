"""The scripts in ``examples/`` run end to end in a fast mode and write their results."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tutorial(tmp_path, capsys):
    """The tutorial's printed numbers: energy and forces agree with ASE's Morse, the Hessian is local and symmetric."""
    from ase.calculators.morse import MorsePotential

    from jaxmlp.data.generate import alkane

    res = _load("tutorial").main(n_carbon=4, out=str(tmp_path / "tutorial.png"))
    assert (tmp_path / "tutorial.png").stat().st_size > 0
    printed = capsys.readouterr().out
    for key, value in res.items():
        assert f"{key:32s} {value}" in printed
    atoms = alkane(4)
    assert res["n_atoms"] == len(atoms) == 14
    # the tutorial's Morse (D=0.35 eV, α=1.6/Å, r0=1.3 Å, cutoff 3 Å, quintic switch from 0.7·cutoff) is ASE's
    atoms.calc = MorsePotential(epsilon=0.35, rho0=1.6 * 1.3, r0=1.3, rcut1=0.7 * 3.0 / 1.3, rcut2=3.0 / 1.3)
    assert res["energy_eV"] == pytest.approx(atoms.get_potential_energy(), rel=1e-10, abs=1e-10)
    assert res["max_force_eV_per_A"] == pytest.approx(np.abs(atoms.get_forces()).max(), rel=1e-9, abs=1e-10)
    assert res["max_force_eV_per_A"] > 1e-3  # butane is not at the Morse minimum
    assert res["hessian_asymmetry"] < 1e-10
    assert res["max_norm_beyond_2Rc"] == 0.0
    # a pair potential couples only atoms within one cutoff: the farthest coupled pair is the farthest pair inside R_c
    dist = atoms.get_all_distances()
    assert res["largest_nonzero_block_distance"] == pytest.approx(dist[(dist > 0) & (dist < 3.0)].max(), rel=1e-12)


def test_mlace_accuracy_smoke(tmp_path):
    out = tmp_path / "mlace.json"
    res = _load("mlace_accuracy").main(layers=(1,), budget_s=1.0, datasets=("cu_clusters",), basis="small",
                                       sizes={"cu_clusters": (8, 4)}, out=str(out))
    saved = json.loads(out.read_text())
    (run,) = saved["runs"]
    assert run["n_layers"] == 1 and run["n_train"] == 8 and run["n_test"] == 4
    assert np.isfinite(run["energy_mae_meV"]) and run["force_mae_meV_per_A"] > 0 and run["steps"] >= 1
    assert res["runs"] == saved["runs"]


def test_force_training_study_smoke(tmp_path):
    plan = {"cu_emt": (6, 4, 2, 3, [("B", 2, 0.02)], 1e-2)}
    res = _load("force_training_study").main(datasets=["cu_emt"], out_dir=tmp_path, plan=plan)
    (study,) = res["studies"]
    runs = {r["run"]: r for r in study["runs"]}
    assert {"energy", "forces"} <= set(runs) and any(k.startswith("taylor") for k in runs)
    assert all(r["force_mae"] > 0 for r in runs.values())
    assert json.loads((tmp_path / "study_fast.json").read_text())["studies"]


def test_locality_study_smoke(tmp_path, monkeypatch):
    pytest.importorskip("tblite")
    from jaxmlp.data.generate import alkane

    module = _load("locality_study")
    monkeypatch.setattr(module, "load_system", lambda name: alkane(4))  # butane instead of hexadecane
    res = module.main(systems=["HD"], sigmas=[1.0], out=tmp_path / "loc.json", img=tmp_path)
    saved = json.loads((tmp_path / "loc.json").read_text())
    assert saved["systems"]["HD"]["n_atoms"] == 14
    for r in res["jaxmlp_models"].values():
        if isinstance(r, dict):  # analytic model Hessians: exactly zero beyond 2·R_c, sparse = dense
            assert r["max_beyond"] == 0.0 and r["sparse_vs_dense_max_abs"] < 1e-10
    assert any(pathlib.Path(f).suffix == ".png" for f in res["files"])
