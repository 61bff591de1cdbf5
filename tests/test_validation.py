"""Validation beyond RMSE: RDF normalisation, force outliers, stability criteria, NVE order."""

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

import jaxmlp
from jaxmlp import validation
from jaxmlp.md import MDConfig
from jaxmlp.models import morse

CU = {"D": 0.3429, "alpha": 1.3588, "r0": 2.866, "cutoff": 5.0}


@pytest.fixture(scope="module")
def cu_model():
    m = morse(**CU)
    return m, m.init(None)


def _coordination(res, key, rho, r_upper):
    sel = res["r"] < r_upper
    dr = np.diff(res["edges"])[sel]
    return float(np.sum(4 * np.pi * res["r"][sel] ** 2 * rho * res["g"][key][sel] * dr))


def test_rdf_fcc_shells_in_a_one_atom_skewed_cell():
    """Primitive fcc cell (1 atom, 60° cell, r_max > cell size): 12 first and 6 second neighbours."""
    a = 3.61
    prim = bulk("Cu", "fcc", a=a)
    res = validation.rdf(prim, r_max=4.5, n_bins=449)
    rho = len(prim) / prim.get_volume()
    # exact shell counts: the shell-volume normalisation and the periodic images are right
    assert _coordination(res, "Cu-Cu", rho, 0.5 * (a / np.sqrt(2) + a)) == pytest.approx(12.0, rel=1e-3)
    assert _coordination(res, "Cu-Cu", rho, 4.0) == pytest.approx(18.0, rel=1e-3)  # + 6 at a
    assert _coordination(res, "Cu-Cu", rho, 4.5) == pytest.approx(42.0, rel=1e-3)  # + 24 at a·√(3/2) = 4.42 Å
    peak = res["r"][np.argmax(res["g"]["Cu-Cu"])]
    assert peak == pytest.approx(a / np.sqrt(2), abs=0.01)
    # the same lattice as a cubic supercell gives the same curve
    sup = validation.rdf(bulk("Cu", "fcc", a=a, cubic=True).repeat(2), r_max=4.5, n_bins=449)
    np.testing.assert_allclose(sup["g"]["Cu-Cu"], res["g"]["Cu-Cu"], rtol=1e-10, atol=1e-10)


def test_rdf_uniform_two_element_gas_is_one():
    """Uncorrelated random positions in a triclinic cell: g_ab → 1 for every pair, and g_HO = g_OH."""
    rng = np.random.default_rng(0)
    cell = np.array([[12.0, 0.0, 0.0], [4.0, 11.0, 0.0], [-3.0, 2.0, 10.0]])
    frames = []
    for _ in range(4):
        n = 600
        frac = rng.random((n, 3))
        frames.append(Atoms(["O"] * 200 + ["H"] * 400, scaled_positions=frac, cell=cell, pbc=True))
    res = validation.rdf(frames, r_max=5.0, n_bins=25)
    for k in ("H-H", "H-O", "O-O"):
        g = res["g"][k][5:]  # r > 1 Å: enough pairs per bin
        assert np.mean(g) == pytest.approx(1.0, abs=0.03), (k, g)
    ordered = validation.rdf(frames, r_max=5.0, n_bins=25, pairs=[("O", "H")])
    np.testing.assert_allclose(ordered["g"]["H-O"], res["g"]["H-O"])
    d = validation.rdf_distance(res, res)
    assert d["mean"] == 0.0
    other = validation.rdf(frames[:1], r_max=5.0, n_bins=25)
    assert 0 < validation.rdf_distance(res, other)["mean"] < 0.2
    with pytest.raises(ValueError, match="same bins"):
        validation.rdf_distance(res, validation.rdf(frames[:1], r_max=4.0, n_bins=25))
    with pytest.raises(ValueError, match="element Cu"):
        validation.rdf(frames, pairs=[("Cu", "O")])
    with pytest.raises(ValueError, match="periodic"):
        validation.rdf(Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]]))


def test_force_outliers_finds_the_corrupted_atom(cu_model, tmp_path):
    model, params = cu_model
    frames = []
    for seed in range(3):
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        a.rattle(0.1, seed=seed)
        g = jaxmlp.atoms_to_graph(a, model.cutoff)
        e, f = jaxmlp.energy_and_forces(model, params, g)
        f = np.array(f)
        if seed == 1:
            f[7] += [0.6, 0.0, -0.8]  # |Δ| = 1 eV/Å
        a.calc = SinglePointCalculator(a, energy=float(e[0]), forces=f)
        frames.append(a)
    res = validation.force_outliers(model, params, frames, top=3)
    top = res["outliers"][0]
    assert (top["frame"], top["atom"], top["element"]) == (1, 7, "Cu")
    assert top["error"] == pytest.approx(1.0, abs=1e-9)
    assert res["outliers"][1]["error"] < 1e-9
    assert res["rmse"] == pytest.approx(np.sqrt(1.0 / (3 * 96)), rel=1e-6)
    assert res["per_element"]["Cu"] == pytest.approx(res["rmse"])
    validation.plot_force_parity(res, tmp_path / "parity.png")
    assert (tmp_path / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frames[0].calc = None
    with pytest.raises(ValueError, match="frame 0 has no reference forces"):
        validation.force_outliers(model, params, frames)


def test_force_outliers_compiles_once_for_uneven_batches(cu_model):
    """Frames of different sizes and a short last batch share one padded bucket: one compilation, per-frame forces."""
    model, params = cu_model
    frames = []
    for seed, n_vac in enumerate((0, 3, 1, 5, 2)):
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        del a[list(range(n_vac))]
        a.rattle(0.08, seed=seed)
        a.calc = SinglePointCalculator(a, energy=0.0, forces=np.zeros((len(a), 3)))
        frames.append(a)
    jitted = validation._energy_and_forces_jit()
    before = jitted._cache_size()
    res = validation.force_outliers(model, params, frames, top=2, batch_size=2)  # batches of 2, 2, 1 frames
    assert jitted._cache_size() == before + 1
    expected = np.concatenate([np.asarray(jaxmlp.energy_and_forces(model, params, jaxmlp.atoms_to_graph(a, model.cutoff))[1]) for a in frames])
    np.testing.assert_allclose(res["predicted"], expected, rtol=1e-10, atol=1e-12)
    assert res["frame"].tolist() == [k for k, a in enumerate(frames) for _ in range(len(a))]
    validation.force_outliers(model, params, frames[::-1], top=1, batch_size=2)  # same bucket again: no new program
    assert jitted._cache_size() == before + 1
    with pytest.raises(ValueError, match="batch_size"):
        validation.force_outliers(model, params, frames, batch_size=0)


def _warm_cu(temperature):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    rng = np.random.default_rng(0)
    p = rng.standard_normal((len(atoms), 3)) * np.sqrt(atoms.get_masses()[:, None] * units.kB * temperature)
    p -= atoms.get_masses()[:, None] * p.sum(0) / atoms.get_masses().sum()
    atoms.set_momenta(p)
    return atoms


def test_stability_criteria_fire(cu_model):
    model, params = cu_model
    atoms = _warm_cu(300.0)
    cfg = MDConfig("nve", timestep=2.0, skin=0.5, steps_per_call=50, log_every=10)
    ok = validation.stability(model, params, atoms, cfg, max_time=400.0)
    assert ok["stable"] and ok["reason"] is None and ok["time_to_failure_fs"] is None
    assert ok["simulated_fs"] == pytest.approx(400.0)
    # the same run fails the drift criterion when its tolerance is below the run's own noise
    drift = validation.stability(model, params, atoms, cfg, max_time=400.0, max_drift=1e-9, drift_window=100.0)
    assert drift["reason"] == "drift" and 100.0 <= drift["time_to_failure_fs"] < 400.0
    # nearest neighbours sit at a/√2 = 2.553 Å: a 2.6 Å threshold fires at the first check
    close = validation.stability(model, params, atoms, cfg, max_time=400.0, min_dist=2.6)
    assert close["reason"] == "min_distance" and close["time_to_failure_fs"] == pytest.approx(20.0)
    # a temperature ceiling below the run's temperature fires the runaway criterion
    hot = validation.stability(model, params, atoms, cfg, max_time=400.0, max_temperature=100.0)
    assert hot["reason"] == "temperature" and hot["time_to_failure_fs"] == pytest.approx(20.0)
    # a 60 fs step for Cu (a third of a vibration period) moves atoms by more than skin/2 in one step
    blow = validation.stability(model, params, atoms, MDConfig("nve", timestep=60.0, skin=0.5, steps_per_call=10, log_every=2), max_time=6000.0)
    assert not blow["stable"] and blow["reason"] == "step_displacement" and blow["time_to_failure_fs"] == 60.0


def test_nve_conservation_order_is_two(cu_model, tmp_path):
    model, params = cu_model
    atoms = _warm_cu(500.0)
    res = validation.nve_energy_conservation(model, params, atoms, timesteps=(1.0, 2.0, 4.0), time=80.0)
    assert 1.7 < res["order"] < 2.4, res
    fl = [r["fluctuation_eV_atom"] for r in res["rows"]]
    assert fl[0] < fl[1] < fl[2]
    validation.plot_energy_conservation(res, tmp_path / "nve.png")
    assert (tmp_path / "nve.png").stat().st_size > 1000


def test_cli_validate_writes_json_and_plots(cu_model, tmp_path):
    """``jaxmlp-bench validate`` end to end on reference frames labelled by the model itself."""
    import json

    from ase.io import write

    from jaxmlp.bench.cli import main

    model, params = cu_model
    frames = []
    for seed in range(2):
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        a.rattle(0.05, seed=seed)
        e, f = jaxmlp.energy_and_forces(model, params, jaxmlp.atoms_to_graph(a, model.cutoff))
        a.calc = SinglePointCalculator(a, energy=float(e[0]), forces=np.asarray(f))
        frames.append(a)
    ref = tmp_path / "ref.extxyz"
    write(ref, frames)
    out = tmp_path / "out"
    argv = [
        "--out",
        str(out),
        "--no-progress",
        "validate",
        "--reference",
        str(ref),
        "--time",
        "200",
        "--timestep",
        "2",
        "--write-every",
        "10",
        "--nve-timesteps",
        "1",
        "2",
        "--nve-time",
        "40",
        "--rdf-rmax",
        "4.5",
        "--top",
        "3",
    ]
    assert main(argv) == 0
    res = json.loads((out / "validate.json").read_text())
    assert res["stability"]["stable"] is True and res["stability"]["simulated_fs"] == 200.0
    assert res["forces"]["rmse"] < 1e-6  # frames labelled by the same model (extxyz rounding only)
    assert set(res["rdf_distance"]) == {"Cu-Cu", "mean"} and res["rdf_distance"]["mean"] > 0
    assert len(res["nve_conservation"]["rows"]) == 2
    for name in ("validate_rdf.png", "validate_parity.png", "validate_nve.png", "validate_md.extxyz"):
        assert (out / name).stat().st_size > 0, name
