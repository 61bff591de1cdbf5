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
    """Fast mode of the paper's protocol on hexatriene: C2H2 units removed from the far end, H caps, Γ, resumable cache."""
    pytest.importorskip("tblite")
    from jaxmlp.data.generate import polyene

    module = _load("locality_study")
    monkeypatch.setattr(module, "load_system", lambda name: polyene(6))  # hexatriene instead of hexadeca-octaene
    kw = dict(systems=["HDOE"], sigmas=[0.9, 1.0], out=tmp_path / "loc.json", img=tmp_path, cache=tmp_path / "cache")
    res = module.main(**kw)
    saved = json.loads((tmp_path / "loc.json").read_text())
    hdoe = saved["systems"]["HDOE"]
    assert hdoe["n_atoms"] == 14 and hdoe["optimisation"]["fmax"] <= 0.01
    rows = hdoe["sigma"]["1.00"]["rows"]
    assert [(r["g"], r["formula"], r["n_caps"]) for r in rows] == [(1, "C4H6", 1), (2, "C2H4", 1)]  # butadiene, ethylene
    # the planar polyene stays planar: no out-of-plane force error on A
    assert all(abs(r["delta_f"][2]) < 1e-6 for r in rows) and rows[1]["delta_f_norm"] > rows[0]["delta_f_norm"] > 1e-3
    s = saved["summary"]["HDOE"]
    assert s["sigma_min"] == 0.9 and s["paper"]["gamma"] == 0.37
    assert s["gamma_sigma_min"] is None or 0.0 <= s["gamma_sigma_min"] < 10.0
    assert hdoe["force_calls"] == 2 * 7 * 3  # 2 σ × (full + 2 fragments) × (force + 6 displacements of A)
    assert "jaxmlp_models" not in res  # the model range check runs in --full only (tests/test_locality.py covers it)
    assert any(pathlib.Path(f).suffix == ".png" for f in res["files"])
    # a second run resumes from the disk cache: no new force call, the same numbers
    again = module.main(**kw)
    assert again["systems"]["HDOE"]["force_calls"] == 0 and again["systems"]["HDOE"]["optimisation"]["from_cache"]
    assert again["systems"]["HDOE"]["sigma"]["1.00"]["rows"] == rows


def test_locality_study_mof_1d_model():
    """The paper's 1D MOF-5 model: 6 SBUs + 5 BDC + formates, every atom fully coordinated, no overlaps."""
    module = _load("locality_study")
    if module.shared_structures() is None:
        pytest.skip("shared IRMOF-1 structure not available")
    from ase.neighborlist import neighbor_list

    mol = module.mof_1d_system()
    assert mol.get_chemical_formula() == "C66H46O78Zn24" and not mol.pbc.any()
    i, j, d = neighbor_list("ijd", mol, 2.2)
    Z = mol.numbers
    assert d.min() > 1.0
    cov = {(a, b) for a, b, r in zip(i, j, d) if r < (2.2 if 30 in (Z[a], Z[b]) else 1.6)}  # Zn–O 1.93, C–C ≤ 1.49 Å
    neighbours = np.bincount([a for a, _ in cov], minlength=len(mol))
    assert set(neighbours[Z == 6]) == {3}  # sp2 carbons: rings, carboxylates, formates (caps complete)
    assert set(neighbours[Z == 1]) == {1}
    zn_o = np.bincount([a for a, b in cov if Z[a] == 30 and Z[b] == 8], minlength=len(mol))[Z == 30]
    assert set(zn_o) == {4}  # each Zn keeps its tetrahedron: central O + three carboxylate O
    from jaxmlp.analysis.fragments import group_removal_fragments

    bonds = module.bond_pairs(mol)
    units, A = module.mof_1d_units(mol, bonds)
    assert [len(u) for u in units] == [28, 10, 27, 10, 27, 10, 27, 10, 27, 10, 28]  # SBU+carboxylates, C6H4, ...
    assert Z[A] == 6 and A in units[0]
    frags = group_removal_fragments(mol, A, units, bonds=bonds)
    assert len(frags) == 9 and frags[-1].get_chemical_formula() == "C12H10O13Zn4"  # Zn4O(HCO2)5(C6H5CO2): SBU1 + phenyl
    assert all(len(f.saturating) == 1 for f in frags)


@pytest.mark.slow
def test_locality_study_full_matches_paper_fragments(tmp_path):
    """--full (about 5 min on one core): the smallest fragments Γ = 0.35 accepts at σ = 1 are the paper's."""
    pytest.importorskip("tblite")
    module = _load("locality_study")
    if module.shared_structures() is None:
        pytest.skip("shared model-system structures not available")
    res = module.main(full=True, out=tmp_path / "loc.json", img=tmp_path, cache=tmp_path / "cache", models=False)
    got = {k: v["smallest_accepted_sigma_1"]["formula"] for k, v in res["summary"].items()}
    assert got == {"HD": "C3H8", "HDOE": "C6H8", "QPP": "C12H10", "QPO": "C6H6"}  # propane, hexatriene, biphenyl, benzene
    assert [len(res["systems"][k]["sigma"]["1.00"]["rows"]) for k in ("HD", "HDOE", "QPP", "QPO")] == [14, 7, 4, 4]
    assert res["summary"]["QPO"]["gamma_sigma_min"] is None  # every QPO fragment within 0.15 eV/Å, as in the paper
    for k in ("HD", "HDOE", "QPP"):
        assert 0.2 < res["summary"][k]["gamma_sigma_min"] < 0.6


def test_train_4g_water_smoke(shared_dir):
    """The 4G example's two stages: stage 1 lowers the test charge error, stage 2 trains the short-range part."""
    data = shared_dir / "n2p2" / "configuration-sets" / "input.data.H2O_RPBE-D3"
    res = _load("train_4g_water").main(n_structures=2, epochs_charges=2, epochs_short=1, data=data)
    assert res["test_charge_rmse_e"]["after_stage_1"] < res["test_charge_rmse_e"]["initial"]
    assert np.isfinite(res["stage2_train_loss"]).all()
