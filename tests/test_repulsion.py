"""ZBL core repulsion and sums of models: closed-form values, a C² switch at r_in, FD forces/stress, save/load, training."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms

import jaxmlp
from jaxmlp.descriptors.acsf import angular_set, radial_grid
from jaxmlp.models import (
    core_radii,
    gap_barrier,
    hdnnp,
    lennard_jones,
    morse,
    pair_gaps,
    sum_models,
    wall_repulsion,
    with_core_repulsion,
    zbl_repulsion,
)
from jaxmlp.testing import check_model

from helpers import morse_frames, random_cell_atoms

KE = 14.399645  # e²/(4πε₀), eV·Å (CODATA; the model uses Hartree·Bohr)


def zbl_closed_form(r, za, zb):
    """Ziegler–Biersack–Littmark universal screened Coulomb potential, written out independently."""
    a = 0.46850 / (za**0.23 + zb**0.23)
    x = r / a
    screen = 0.18175 * math.exp(-3.19980 * x) + 0.50986 * math.exp(-0.94229 * x) + 0.28022 * math.exp(-0.40290 * x) \
        + 0.02817 * math.exp(-0.20162 * x)
    return KE * za * zb / r * screen


def smooth_off(t):
    t = min(max(t, 0.0), 1.0)
    return 1.0 - 10 * t**3 + 15 * t**4 - 6 * t**5


def dimer(a, b, r):
    return Atoms(a + b, positions=[[0.0, 0.0, 0.0], [r, 0.0, 0.0]], pbc=False)


def dimer_energy(model, params, a, b, r):
    g = jaxmlp.atoms_to_graph(dimer(a, b, r), model.cutoff)
    return float(jaxmlp.energy(model, params, g)[0])


@pytest.mark.parametrize("pair,r", [(("O", "H"), 0.3), (("O", "H"), 0.55), (("H", "H"), 0.4), (("O", "O"), 1.1),
                                    (("Cu", "O"), 0.9)])
def test_zbl_matches_the_closed_formula(pair, r):
    a, b = pair
    za, zb = jaxmlp.models.repulsion.atomic_numbers[a], jaxmlp.models.repulsion.atomic_numbers[b]
    # r_in far out: below r_in − width the switch is exactly 1 and the pair energy is the bare ZBL
    model = zbl_repulsion([a, b], r_in=3.0, width=1.0)
    e = dimer_energy(model, (), a, b, r)
    ref = zbl_closed_form(r, za, zb)
    assert e == pytest.approx(ref, rel=2e-7)  # only the value of e²/(4πε₀) differs in the 7th digit
    # inside the switch: V(r)·s(t)
    model = zbl_repulsion([a, b], r_in=r + 0.1, width=0.3)
    t = (r - (r + 0.1 - 0.3)) / 0.3
    assert dimer_energy(model, (), a, b, r) == pytest.approx(ref * smooth_off(t), rel=2e-7)
    # beyond r_in: exactly zero
    model = zbl_repulsion([a, b], r_in=r - 0.01)
    assert dimer_energy(model, (), a, b, r) == 0.0


def _radial_energy(model, a, b):
    """E(r) of a dimer as a jax function of r (positions through the graph, so autodiff is exact)."""
    g = jaxmlp.atoms_to_graph(dimer(a, b, 0.5), 3.0)

    def e(r):
        pos = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).at[1, 0].set(r)
        nodes = dict(g.nodes, positions=pos)
        return jaxmlp.energy(model, (), g._replace(nodes=nodes))[0]

    return e


def test_switch_is_c2_at_r_in_and_at_the_onset():
    r_in, width = 0.9, 0.3
    model = zbl_repulsion(["H", "O"], r_in={"O-H": r_in, "H-H": 1.2, "O-O": 2.0}, width=width)
    e = _radial_energy(model, "O", "H")
    d1, d2 = jax.grad(e), jax.grad(jax.grad(e))
    # energy, force and curvature vanish at r_in from below, and are exactly zero above
    for f, tol in ((e, 1e-12), (d1, 1e-9), (d2, 1e-3)):  # ~δ³, δ², δ with δ = 1e-9 Å
        assert abs(float(f(r_in - 1e-9))) < tol
        assert float(f(r_in + 1e-9)) == 0.0
    h = 1e-4  # E, E′, E″ approach 0 like h³, h², h (the quintic switch): halving h divides them by 8, 4, 2
    for f, ratio in ((e, 8.0), (d1, 4.0), (d2, 2.0)):
        assert float(f(r_in - 2 * h)) / float(f(r_in - h)) == pytest.approx(ratio, rel=2e-3)
    # C² at the onset r_in − width: value, slope and curvature continuous
    r_on = r_in - width
    for f in (e, d1, d2):
        lo, hi = float(f(r_on - 1e-7)), float(f(r_on + 1e-7))
        assert abs(lo - hi) <= 1e-4 * max(1.0, abs(lo))
    # force = −dE/dr by central differences inside the switch
    for r in (0.65, 0.75, 0.85):
        fd = (float(e(r + 1e-5)) - float(e(r - 1e-5))) / 2e-5
        assert float(d1(r)) == pytest.approx(fd, rel=1e-6, abs=1e-8)
        assert float(d1(r)) < 0  # repulsive


def _water_like_cell(seed=0):
    # H/O atoms packed so that some pairs sit inside the core radii (r_in 1.0 Å for every pair)
    atoms = random_cell_atoms(9, np.array([[4.4, 0.0, 0.0], [0.6, 4.2, 0.0], [-0.3, 0.5, 4.6]]), pbc=True, seed=seed,
                              min_dist=0.7, symbols=["O", "H", "H"])
    d = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
    assert (d < 1.0).any()
    return atoms


def test_summed_model_keeps_the_contract():
    core = zbl_repulsion(["H", "O"], r_in=1.0, width=0.3)
    pair = morse(D=0.2, alpha=1.5, r0=1.6, cutoff=3.5, onset=2.8)
    model = sum_models(pair, core)
    params = model.init(jax.random.PRNGKey(0), None)
    assert params[1] == ()
    atoms = _water_like_cell()
    report = check_model(model, params, atoms, skip=["jit", "param_gradients"])
    assert {"fd_forces", "fd_stress", "rotation", "translation", "padding", "range"} <= set(report["checks"])
    assert all(v["ratio"] < 1e-2 for v in report["errors"].values()), report["errors"]
    assert report["errors"]["fd_stress"]["scale"] > 1e-3  # the core adds a real stress here
    # energies, forces and stress are the sums of the parts'
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    efs = jaxmlp.observables.energy_forces_stress
    (e, f, s), (e1, f1, s1), (e2, f2, s2) = efs(model, params, g), efs(pair, params[0], g), efs(core, (), g)
    assert float(e2[0]) > 1.0  # the core is active in this cell
    np.testing.assert_allclose(np.asarray(e), np.asarray(e1) + np.asarray(e2), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(f), np.asarray(f1) + np.asarray(f2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(s), np.asarray(s1) + np.asarray(s2), rtol=1e-12, atol=1e-12)
    per = model.apply(params, g)
    np.testing.assert_allclose(np.asarray(per), np.asarray(pair.apply(params[0], g) + core.apply((), g)), rtol=1e-12)


def _small_hdnnp(atoms, cutoff=3.0):
    fns = radial_grid(["H", "O"], cutoff, 2) + angular_set(["H", "O"], cutoff, etas=(0.0,), zetas=(1.0,), lambdas=(1.0,))
    g = jaxmlp.atoms_to_graph(atoms, cutoff, triplets=True)
    stats = hdnnp(["H", "O"], fns).extras["descriptor"].statistics([g])
    return hdnnp(["H", "O"], fns, hidden=(4,), scaling={"mode": "scalecenter", "smin": -1.0, "smax": 1.0, "stats": stats},
                 e0={"H": -0.5, "O": -2.0}, factorise_wide=False)  # keep the triplet path (and its filter) under test


def test_hdnnp_with_core_metadata_fd_forces_and_round_trip(tmp_path):
    atoms = _water_like_cell(seed=1)
    net = _small_hdnnp(atoms)
    model = with_core_repulsion(net, r_in={"H-H": 1.0, "H-O": 0.95, "O-O": 1.6})
    assert model.name == "sum" and model.cutoff == net.cutoff and model.needs_triplets and model.local
    assert model.elements == (1, 8) and model.interaction_range == net.interaction_range
    assert model.extras["triplet_filter"] is net.extras["triplet_filter"]
    assert model.extras["descriptor"] is net.extras["descriptor"] and model.extras["learned"] == (0,)
    params = model.init(jax.random.PRNGKey(3), None)
    report = check_model(model, params, atoms, checks=["fd_forces", "fd_stress", "rotation", "permutation"])
    assert all(v["ratio"] < 1e-2 for v in report["errors"].values()), report["errors"]
    # save / load
    jaxmlp.save(tmp_path / "m.npz", model, params)
    m2, p2 = jaxmlp.load(tmp_path / "m.npz")
    assert m2.name == "sum" and m2.config == model.config and m2.cutoff == model.cutoff
    assert jax.tree.structure(p2) == jax.tree.structure(params) and p2[1] == ()
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p2)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=True)
    assert float(jaxmlp.energy(m2, p2, g)[0]) == float(jaxmlp.energy(model, params, g)[0])
    # the Calculator of the loaded model gives the same forces
    atoms.calc = jaxmlp.Calculator(m2, p2)
    e_ref, f_ref = jaxmlp.energy_and_forces(model, params, g)
    np.testing.assert_allclose(atoms.get_forces(), np.asarray(f_ref), rtol=1e-10, atol=1e-10)


def test_training_moves_only_the_learned_part_and_agrees_with_the_bare_model():
    from jaxmlp.data import Dataset
    from jaxmlp.training import TrainConfig, train

    frames = morse_frames([4, 5, 4, 5])  # Ar cells, min distance 1.05 Å
    radii = core_radii(frames, margin=0.05)
    assert radii["Ar-Ar"] < min(f.get_all_distances(mic=True)[np.triu_indices(len(f), 1)].min() for f in frames)
    ds = Dataset.from_atoms(frames)
    bare = morse(D=0.7, alpha=1.8, r0=1.4, cutoff=3.5, onset=0.7 * 3.5)
    model = sum_models(bare, zbl_repulsion(["Ar"], radii))
    cfg = TrainConfig(loss="forces", kappa=0.5, epochs=3, batch_size=2, learning_rate=1e-2, shuffle=False, seed=0)
    p_bare, _ = train(bare, ds, None, cfg)
    p_sum, hist = train(model, ds, None, cfg)
    assert p_sum[1] == () and len(hist) == 3
    start = model.init(jax.random.PRNGKey(0), None)[0]
    assert any(float(abs(p_sum[0][k] - start[k])) > 1e-4 for k in start)  # the learned part moved
    # the core is zero on the training data: training the sum is training the bare model
    for k in p_bare:
        assert float(p_sum[0][k]) == pytest.approx(float(p_bare[k]), rel=1e-10, abs=1e-12)


def test_core_radii_from_shortest_distances():
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], cell=np.eye(3) * 6.0, pbc=True)
    second = water.copy()
    second.positions[1, 0] = 0.9
    r = core_radii([water, second], margin=0.05, r_max=7.0)
    d_hh = min(np.linalg.norm(water.positions[1] - water.positions[2]), np.linalg.norm(second.positions[1] - second.positions[2]))
    assert set(r) == {"H-H", "H-O", "O-O"}
    assert r["H-O"] == pytest.approx(0.9 - 0.05) and r["H-H"] == pytest.approx(d_hh - 0.05)
    assert r["O-O"] == pytest.approx(6.0 - 0.05)  # O–O only through the periodic image
    with pytest.raises(ValueError, match="never occurs"):
        core_radii([water], r_max=2.0)
    with pytest.raises(ValueError, match="not positive"):
        core_radii([water], margin=1.0, r_max=7.0)
    with pytest.raises(ValueError, match="margin"):
        core_radii([water], margin=-0.1)
    with pytest.raises(ValueError, match="at least one"):
        core_radii([])


def test_bad_input():
    with pytest.raises(ValueError, match="lacks element pair"):
        zbl_repulsion(["H", "O"], r_in={"H-O": 0.8})
    with pytest.raises(ValueError, match="not a pair of the model"):
        zbl_repulsion(["H"], r_in={"H-H": 0.8, "H-O": 0.8})
    with pytest.raises(ValueError, match="positive"):
        zbl_repulsion(["H"], r_in=-1.0)
    with pytest.raises(ValueError, match="pair keys"):
        zbl_repulsion(["H"], r_in={"H": 0.8})
    with pytest.raises(TypeError, match="r_in"):
        zbl_repulsion(["H"], r_in="0.8")
    with pytest.raises(ValueError, match="width"):
        zbl_repulsion(["H"], r_in=0.8, width=0.0)
    with pytest.raises(ValueError, match="unknown element"):
        zbl_repulsion(["Q"], r_in=0.8)
    core = zbl_repulsion(["H"], r_in=0.8)
    with pytest.raises(ValueError, match=r"unknown element\(s\) \['O'\]"):
        core.apply((), jaxmlp.atoms_to_graph(dimer("H", "O", 0.7), 1.0))
    with pytest.raises(ValueError, match="at least two"):
        sum_models(core)
    with pytest.raises(TypeError, match="not a jaxmlp Model"):
        sum_models(core, "lj")
    with pytest.raises(ValueError, match="share no element"):
        sum_models(core, zbl_repulsion(["O"], r_in=0.8))
    with pytest.raises(ValueError, match="not both"):
        sum_models(core, parts=[{"model": "lennard_jones", "config": {}}])
    with pytest.raises(ValueError, match=r"parts\[0\]"):
        sum_models(parts=[{"name": "lennard_jones"}, {"model": "lennard_jones", "config": {}}])
    with pytest.raises(ValueError, match="unknown model"):
        sum_models(parts=[{"model": "nope", "config": {}}, {"model": "lennard_jones", "config": {}}])
    lj = lennard_jones()
    with pytest.raises(ValueError, match="names its elements"):
        with_core_repulsion(lj, r_in=0.8)
    with pytest.raises(ValueError, match="r_in or frames"):
        with_core_repulsion(_small_hdnnp(_water_like_cell()))
    model = sum_models(lj, core)
    with pytest.raises(ValueError, match="tuple of 2"):
        model.apply(lj.init(None), jaxmlp.atoms_to_graph(dimer("H", "H", 0.7), 3.0))


def test_gap_barrier_bump_is_c2_and_zero_outside_its_window():
    lo, hi, h = 1.15, 1.35, 0.8
    model = gap_barrier(["H", "O"], {"O-H": (lo, hi)}, height=h)
    for r in (1.2, 1.25, 1.3):
        t = (r - lo) / (hi - lo)
        assert dimer_energy(model, (), "O", "H", r) == pytest.approx(h * 64 * t**3 * (1 - t) ** 3, rel=1e-12)
    assert dimer_energy(model, (), "O", "H", 0.5 * (lo + hi)) == pytest.approx(h, rel=1e-12)  # maximum h at the centre
    for r in (1.0, lo - 1e-9, hi + 1e-9, 1.6):
        assert dimer_energy(model, (), "O", "H", r) == 0.0
    assert dimer_energy(model, (), "H", "H", 1.25) == 0.0  # no window for H–H
    e = _radial_energy(model, "O", "H")
    d1, d2 = jax.grad(e), jax.grad(jax.grad(e))
    eps = 1e-5  # E, E′, E″ vanish like eps³, eps², eps at both ends
    for edge, sign in ((lo, 1.0), (hi, -1.0)):
        for f, ratio in ((e, 8.0), (d1, 4.0), (d2, 2.0)):
            assert float(f(edge + sign * 2 * eps)) / float(f(edge + sign * eps)) == pytest.approx(ratio, rel=2e-3)
    with pytest.raises(ValueError, match="lo < hi"):
        gap_barrier(["H", "O"], {"H-O": (1.3, 1.2)})
    with pytest.raises(ValueError, match="height"):
        gap_barrier(["H", "O"], {"H-O": (1.1, 1.2)}, height=-1.0)
    with pytest.raises(TypeError, match="windows"):
        gap_barrier(["H", "O"], {})


def test_pair_gaps_finds_the_empty_window():
    frames = []
    for d in (0.95, 1.0, 1.1):  # two molecules: covalent O–H up to 1.1 Å, the next O–H from 1.5 Å
        frames.append(Atoms("OHOH", positions=[[0, 0, 0], [d, 0, 0], [d + 1.5, 0, 0], [d + 2.5, 0, 0]], cell=np.eye(3) * 12,
                            pbc=True))
    gaps = pair_gaps(frames, ["O-H"], r_max=1.9, margin=0.02)
    assert set(gaps) == {"H-O"}
    assert gaps["H-O"][0] == pytest.approx(1.12) and gaps["H-O"][1] == pytest.approx(1.48)
    with pytest.raises(ValueError, match="narrower"):
        pair_gaps(frames, ["H-O"], r_max=1.9, min_width=1.0)


def test_three_part_sum_round_trip_and_fd_forces(tmp_path):
    atoms = _water_like_cell(seed=2)
    net = _small_hdnnp(atoms)
    model = sum_models(net, zbl_repulsion(["H", "O"], r_in=1.0), gap_barrier(["H", "O"], {"H-O": (1.0, 1.6)}, height=0.5))
    params = model.init(jax.random.PRNGKey(0), None)
    assert params[1] == () and params[2] == () and model.extras["learned"] == (0,)
    report = check_model(model, params, atoms, checks=["fd_forces", "fd_stress"])
    assert all(v["ratio"] < 1e-2 for v in report["errors"].values()), report["errors"]
    jaxmlp.save(tmp_path / "m.npz", model, params)
    m2, p2 = jaxmlp.load(tmp_path / "m.npz")
    assert m2.config == model.config and jax.tree.structure(p2) == jax.tree.structure(params)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=True)
    parts = [float(jaxmlp.energy(m, p, g)[0]) for m, p in zip(model.extras["parts"], params)]
    assert parts[2] > 0  # some O–H pair inside the window
    assert float(jaxmlp.energy(m2, p2, g)[0]) == pytest.approx(sum(parts), rel=1e-12)


def test_wall_repulsion_is_cubic_below_r_in():
    model = wall_repulsion(["H", "O"], {"H-H": 1.3, "H-O": 0.85, "O-O": 2.4}, stiffness=200.0)
    for r, pair in ((2.2, ("O", "O")), (2.35, ("O", "O")), (1.2, ("H", "H")), (0.7, ("O", "H"))):
        r_in = {"OO": 2.4, "HH": 1.3, "OH": 0.85}["".join(pair)]
        assert dimer_energy(model, (), *pair, r) == pytest.approx(200.0 * (r_in - r) ** 3, rel=1e-12)
    assert dimer_energy(model, (), "O", "O", 2.4 + 1e-9) == 0.0
    e = _radial_energy(model, "O", "O")
    d1, d2 = jax.grad(e), jax.grad(jax.grad(e))
    for f, ratio in ((e, 8.0), (d1, 4.0), (d2, 2.0)):  # C² at r_in
        assert float(f(2.4 - 2e-4)) / float(f(2.4 - 1e-4)) == pytest.approx(ratio, rel=1e-9)
    assert float(d1(2.3)) == pytest.approx(-3 * 200.0 * 0.1**2, rel=1e-10)
    with pytest.raises(ValueError, match="stiffness"):
        wall_repulsion(["H"], 1.0, stiffness=0.0)
    with pytest.raises(ValueError, match="lacks element pair"):
        wall_repulsion(["H", "O"], {"H-H": 1.0})
