"""Jitted MD (jax-md integrators driving jaxmlp models): physics and bookkeeping.

Energy conservation with the dt² law of velocity Verlet, the Langevin
thermostat reaching its target, agreement with the independent ASE loop
(``ase.md.VelocityVerlet`` + :class:`jaxmlp.Calculator`) across neighbour
rebuilds in cubic and skewed cells, molecules, and exact resume.
"""

import jax
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk

import jaxmlp
from jaxmlp.md import MDConfig, MDEngine
from jaxmlp.models import morse

CU = {"D": 0.3429, "alpha": 1.3588, "r0": 2.866, "cutoff": 5.0}


@pytest.fixture(scope="module")
def cu_model():
    m = morse(**CU)
    return m, m.init(None)


def _hot_cu(temperature=600.0, seed=1, skew=False):
    if skew:
        # primitive fcc cell (60° angles) repeated: a strongly non-orthogonal periodic cell
        atoms = bulk("Cu", "fcc", a=3.61).repeat((3, 3, 3))
    else:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=seed)
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((len(atoms), 3)) * np.sqrt(atoms.get_masses()[:, None] * units.kB * temperature)
    p -= atoms.get_masses()[:, None] * p.sum(0) / atoms.get_masses().sum()
    atoms.set_momenta(p)
    return atoms


def _nve_fluctuation(model, params, atoms, dt, t_total=80.0):
    cfg = MDConfig("nve", timestep=dt, skin=0.5, steps_per_call=50, log_every=1)
    eng = MDEngine(model, params, atoms, cfg)
    e0 = eng.conserved_energy()
    log = eng.run(int(round(t_total / dt)))
    etot = np.array(log["epot"]) + np.array(log["ekin"])
    return np.max(np.abs(etot - e0)), eng


def test_nve_energy_conservation_scales_with_dt_squared(cu_model):
    model, params = cu_model
    atoms = _hot_cu(600.0)
    dev = {}
    for dt in (1.0, 2.0, 4.0):
        dev[dt], eng = _nve_fluctuation(model, params, atoms, dt)
        assert eng.state.n_builds > 1, "the run should cross neighbour rebuilds"
    n = len(atoms)
    assert dev[1.0] / n < 2e-5, dev  # eV/atom over 80 fs at 1 fs
    # velocity Verlet's shadow-Hamiltonian error is O(dt²): ×2 in dt → ×4 in the fluctuation
    for a, b in ((1.0, 2.0), (2.0, 4.0)):
        ratio = dev[b] / dev[a]
        assert 3.0 < ratio < 5.5, (a, b, ratio, dev)


@pytest.mark.parametrize("skew", [False, True], ids=["cubic", "skewed"])
def test_matches_ase_loop_across_rebuilds(cu_model, skew):
    """Same trajectory as ASE's VelocityVerlet on the jaxmlp Calculator, rebuilding every few steps."""
    from ase.md.verlet import VelocityVerlet

    model, params = cu_model
    atoms = _hot_cu(900.0, seed=2, skew=skew)
    n_steps, dt = 60, 2.0
    eng = MDEngine(model, params, atoms, MDConfig("nve", timestep=dt, skin=0.08, steps_per_call=25, log_every=5))
    eng.run(n_steps)
    assert eng.state.n_builds >= 4, f"only {eng.state.n_builds} builds: the test must cross rebuilds"

    ref = atoms.copy()
    ref.calc = jaxmlp.Calculator(model, params, skin=0.3)
    VelocityVerlet(ref, dt * units.fs).run(n_steps)
    # the engine wraps positions at rebuilds: compare modulo lattice vectors
    d = eng.positions() - ref.positions
    frac = d @ np.linalg.inv(ref.cell.array)
    d = (frac - np.round(frac)) @ ref.cell.array
    np.testing.assert_allclose(d, 0.0, atol=1e-9)
    np.testing.assert_allclose(eng.atoms().get_momenta(), ref.get_momenta(), atol=1e-9)
    np.testing.assert_allclose(eng.forces(), ref.get_forces(), atol=1e-9)
    assert eng.potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-9)

    if skew:
        return
    # a large skin (no rebuild at all) gives the same trajectory
    big = MDEngine(model, params, atoms, MDConfig("nve", timestep=dt, skin=2.0, steps_per_call=25, log_every=5))
    big.run(n_steps)
    assert big.state.n_builds == 1
    d = big.positions() - eng.positions()
    frac = d @ np.linalg.inv(ref.cell.array)
    np.testing.assert_allclose((frac - np.round(frac)) @ ref.cell.array, 0.0, atol=1e-9)


def test_langevin_reaches_target_temperature(cu_model):
    """From a perfect lattice at rest (zero force, zero momentum) the noise alone heats to T."""
    model, params = cu_model
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    target, gamma = 500.0, 0.05  # K, 1/fs
    eng = MDEngine(
        model,
        params,
        atoms,
        MDConfig("langevin", timestep=4.0, temperature=target, friction=gamma, init_temperature=0.0, steps_per_call=250, log_every=5, seed=3),
    )
    assert eng.temperature() == 0.0
    eng.run(250)  # 1 ps ≫ 1/γ = 20 fs: equilibrated
    log = eng.run(1500)
    t = np.array(log["temperature"])
    # σ of the mean: per-sample spread sqrt(2/N_dof)·T, samples 20 fs apart ≈ independent (1/(2γ) = 10 fs)
    sigma = target * np.sqrt(2.0 / eng.n_dof) / np.sqrt(len(t))
    assert abs(t.mean() - target) < 4 * sigma, (t.mean(), sigma)
    assert t.std() == pytest.approx(target * np.sqrt(2.0 / eng.n_dof), rel=0.25)


def test_nose_hoover_invariant_and_temperature(cu_model):
    """The chain heats 300 K → 700 K while the extended-system invariant stays put.

    Without the thermostat energy the 'invariant' would change by the heating,
    ~0.05 eV/atom; the bound is 500× tighter (observed ±4e-5 eV/atom at 1 fs,
    ×4 at 2 fs: integration error, not drift).
    """
    model, params = cu_model
    atoms = _hot_cu(300.0, seed=4)
    eng = MDEngine(model, params, atoms, MDConfig("nose_hoover", timestep=1.0, temperature=700.0, tau=20.0, steps_per_call=100, log_every=10))
    h0 = eng.conserved_energy()
    dev = []
    for _ in range(5):
        log = eng.run(200)
        dev.append(abs(eng.conserved_energy() - h0) / len(atoms))
    assert max(dev) < 1e-4, dev
    t = np.array(eng.state.log["temperature"])[50:]
    assert abs(t.mean() - 700.0) < 0.12 * 700.0, t.mean()
    assert log["temperature"]


def test_molecule_conserves_energy_and_momentum(cu_model):
    model, params = cu_model
    cluster = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    cluster.rattle(0.05, seed=5)
    eng = MDEngine(model, params, cluster, MDConfig("nve", timestep=1.0, temperature=300.0, skin=0.3, steps_per_call=50, log_every=10))
    e0 = eng.conserved_energy()
    eng.run(200)
    assert abs(eng.conserved_energy() - e0) / len(cluster) < 2e-5
    np.testing.assert_allclose(eng.atoms().get_momenta().sum(0), 0.0, atol=1e-10)
    assert eng.state.n_builds > 1


def test_resume_continues_exactly(cu_model, tmp_path):
    model, params = cu_model
    atoms = _hot_cu(800.0, seed=6)
    cfg = MDConfig("langevin", timestep=2.0, temperature=800.0, friction=0.02, skin=0.1, steps_per_call=20, log_every=5, seed=7)
    straight = MDEngine(model, params, atoms, cfg)
    straight.run(80)

    first = MDEngine(model, params, atoms, cfg)
    traj = tmp_path / "md.extxyz"
    first.run(45, trajectory=traj, write_every=15, checkpoint=tmp_path / "md.npz")
    second = MDEngine(model, params, atoms, cfg)
    second.load(tmp_path / "md.npz")
    assert second.state.step == 45
    second.run(35, trajectory=traj, write_every=15)
    assert second.state.n_builds > 2
    np.testing.assert_array_equal(second.positions(), straight.positions())
    np.testing.assert_array_equal(second.momenta(), straight.momenta())
    assert second.state.log["epot"] == straight.state.log["epot"]

    from ase.io import read

    frames = read(traj, ":")
    assert [f.info["step"] for f in frames] == [15, 30, 45, 60, 75]
    # frames carry the momenta: their kinetic energy is the logged one at that step
    assert frames[-1].get_kinetic_energy() == pytest.approx(straight.state.log["ekin"][14], rel=1e-8)  # extxyz keeps ~10 digits
    assert frames[0].get_potential_energy() == pytest.approx(straight.state.log["epot"][2], abs=1e-10)

    other = MDEngine(model, params, atoms, MDConfig("langevin", timestep=1.0, temperature=800.0, friction=0.02, skin=0.1, steps_per_call=20, log_every=5))
    with pytest.raises(ValueError, match="timestep"):
        other.load(tmp_path / "md.npz")


def test_float32_runs_close_to_float64(cu_model):
    model, params = cu_model
    atoms = _hot_cu(600.0, seed=8)
    runs = {}
    for dtype in ("float64", "float32"):
        eng = MDEngine(model, params, atoms, MDConfig("nve", timestep=2.0, skin=0.5, steps_per_call=20, log_every=20, dtype=dtype))
        eng.run(20)
        assert eng.positions().dtype == np.float64
        assert np.asarray(eng.state.sim.position).dtype == np.dtype(dtype)
        runs[dtype] = eng.positions()
    err = np.abs(runs["float32"] - runs["float64"]).max()
    assert 0 < err < 1e-4


def test_float32_with_float64_energy_accumulation(cu_model):
    """dtype=float32 + energy_dtype=float64: float32 per-atom energies summed in float64 recover the float64 total.

    864 atoms, ~2000 eV: a float32 sum loses ~1e-3 eV; the float64 sum keeps only the per-atom float32 rounding.
    The forces (float32 gradient of either sum) are the same, so the two float32 trajectories coincide.
    """
    model, params = cu_model
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((6, 6, 6))
    atoms.rattle(0.05, seed=3)
    atoms.positions = atoms.positions.astype(np.float32).astype(np.float64)  # the float32 runs see the same start
    n = len(atoms)
    engines, logs = {}, {}
    for name, kw in {"f64": {}, "f32": {"dtype": "float32"}, "acc": {"dtype": "float32", "energy_dtype": "float64"}}.items():
        cfg = MDConfig("nve", timestep=2.0, skin=0.5, steps_per_call=10, log_every=5, init_temperature=600.0, seed=2, **kw)
        engines[name] = MDEngine(model, params, atoms, cfg)
    e = {k: eng.potential_energy() for k, eng in engines.items()}
    err32, err_acc = abs(e["f32"] - e["f64"]), abs(e["acc"] - e["f64"])
    assert err_acc / n < 1e-6 < err32 / n  # eV/atom
    assert err_acc < err32 / 5
    for k, eng in engines.items():
        logs[k] = np.array(eng.run(10)["epot"])
    np.testing.assert_array_equal(engines["acc"].positions(), engines["f32"].positions())
    assert np.abs(logs["acc"] - logs["f64"]).max() < np.abs(logs["f32"] - logs["f64"]).max() / 3
    assert engines["acc"].energy_dtype == np.float64 and engines["f32"].energy_dtype == np.float32


def test_bad_input_is_rejected(cu_model):
    model, params = cu_model
    with pytest.raises(ValueError, match="ensemble"):
        MDConfig("npt")
    with pytest.raises(ValueError, match="timestep"):
        MDConfig(timestep=-1.0)
    with pytest.raises(ValueError, match="multiple of log_every"):
        MDConfig(steps_per_call=25, log_every=10)
    with pytest.raises(ValueError, match="temperature"):
        MDConfig("langevin", temperature=0.0)
    with pytest.raises(ValueError, match="energy_dtype"):
        MDConfig(energy_dtype="float16")
    with pytest.raises(ValueError, match="lower the precision"):
        MDConfig(energy_dtype="float32")
    with pytest.raises(TypeError, match="ase.Atoms"):
        MDEngine(model, params, np.zeros((3, 3)))
    with pytest.raises(ValueError):
        MDEngine(model, params, Atoms("Cu2", positions=[[0, 0, 0], [0.01, 0, 0]]))


def test_hdnnp_with_pruned_triplets_gives_full_list_forces_along_the_run():
    """The engine builds HDNNP graphs with the model's triplet filter (+ skin): after a run that crossed rebuilds,
    its forces equal those of a full, unpruned triplet list at the same positions."""
    from jaxmlp.descriptors import angular_narrow, radial_grid
    from jaxmlp.models import hdnnp

    rc = 3.2
    fns = radial_grid(["Cu"], rc=rc, n=3) + [angular_narrow("Cu", ("Cu", "Cu"), 0.2, s, 1.0, rc) for s in (1.0, -1.0)]
    model = hdnnp(["Cu"], fns, hidden=(4,), activation="tanh", cutoff_type="cos", e0={"Cu": -3.0})
    atoms = _hot_cu(900.0, seed=4)
    params = model.init(jax.random.PRNGKey(0), jaxmlp.atoms_to_graph(atoms, rc, triplets=True))
    assert model.extras["triplet_filter"] is not None
    eng = MDEngine(model, params, atoms, MDConfig("nve", timestep=2.0, skin=0.3, steps_per_call=10))
    eng.run(60)
    assert eng.state.n_builds > 1
    full = jaxmlp.atoms_to_graph(eng.atoms(results=False), rc, triplets=True)
    _, f_full = jaxmlp.energy_and_forces(model, params, full)
    np.testing.assert_allclose(eng.forces(), np.asarray(f_full), rtol=1e-10, atol=1e-10)
