"""HDNNP model: forces vs finite differences, the model contract (check_model), float32, E0 fit, Calculator."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms

import jaxmlp
from jaxmlp.data import fit_reference_energies
from jaxmlp.descriptors import ACSF, angular_narrow, angular_set, angular_wide, compact_angular, compact_radial, radial_grid
from jaxmlp.models import hdnnp
from jaxmlp.testing import check_model

from helpers import random_cell_atoms

RC = 3.6


@functools.lru_cache(maxsize=None)
def _make():
    """One small Cu/O model using every family: radial 2 and 20, angular 3, 9 and 22."""
    fns = radial_grid(["Cu", "O"], RC, 2) + angular_set(["Cu", "O"], RC, etas=(0.05,), zetas=(1, 4), lambdas=(-1.0,)) + [
        angular_narrow("O", ("Cu", "O"), 0.1, 1.0, 2.0, RC)]
    fns += [compact_radial(c, e, -RC, RC, "p2a") for c in ("Cu", "O") for e in ("Cu", "O")]
    fns += [compact_angular(c, p, -RC, RC, 30.0, 150.0, "p2") for c in ("Cu", "O") for p in (("Cu", "Cu"), ("Cu", "O"))]
    atoms = random_cell_atoms(8, np.diag([4.2, 4.0, 4.4]) + 0.3 * np.tri(3, k=-1), seed=7, min_dist=1.3, symbols=["Cu", "O"])
    acsf = ACSF(["Cu", "O"], fns, "poly2")
    g = jaxmlp.atoms_to_graph(atoms, RC, triplets=True)
    stats = acsf.statistics([g])
    model = hdnnp(["Cu", "O"], fns, hidden=(8, 6), activation="tanh", cutoff_type="poly2",
                  scaling={"mode": "scalecenter", "smin": -1.0, "smax": 1.0, "stats": stats}, e0={"Cu": -1.5, "O": -0.3})
    params = model.init(jax.random.PRNGKey(0), g)
    return atoms, model, params


@pytest.fixture(scope="module")
def setup():
    return _make()


_ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
_e = jax.jit(jaxmlp.energy, static_argnums=0)


def _graph(model, atoms):
    return jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=True)


def test_forces_match_finite_differences(setup):
    atoms, model, params = setup
    g = _graph(model, atoms)
    _, f = _ef(model, params, g)

    def efn(pos):
        a = atoms.copy()
        a.positions = pos
        return float(_e(model, params, _graph(model, a))[0])

    # 4th-order central differences of the full energy for the first three atoms
    pos0 = atoms.positions.copy()
    fd = np.zeros((3, 3))
    h = 1e-4
    for a in range(3):
        for k in range(3):
            vals = []
            for s in (-2, -1, 1, 2):
                p = pos0.copy()
                p[a, k] += s * h
                vals.append(efn(p))
            fd[a, k] = -(vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    assert np.abs(fd).max() > 1e-3
    np.testing.assert_allclose(np.asarray(f)[:3], fd, rtol=1e-6, atol=1e-8)
    assert abs(float(np.asarray(f).sum(0).max())) < 1e-10  # Newton's third law (translation invariance)


# strongly skewed triclinic cell: tilts of 29-36 % of the box lengths
SKEWED = np.array([[4.4, 0.0, 0.0], [1.5, 4.2, 0.0], [1.4, -1.3, 4.5]])


def test_contract_skewed_periodic_cell(setup):
    """Invariances of energy, forces and stress (σ → R σ Rᵀ), FD forces and stress, padding, range."""
    _, model, params = setup
    atoms = random_cell_atoms(8, SKEWED, seed=2, min_dist=1.3, symbols=["Cu", "O"])
    report = check_model(model, params, atoms, skip=["jit", "param_gradients"])
    assert {"rotation", "reflection", "permutation", "wrapping", "fd_forces", "fd_stress", "padding", "range"} <= set(report["checks"])
    assert report["errors"]["fd_stress"]["scale"] > 1e-3  # a non-trivial stress
    # stress covariance: σ → R σ Rᵀ under rotation and reflection, invariant under the other moves
    for check in ("translation", "rotation", "reflection", "permutation", "wrapping"):
        assert report["compared"][check] == ["energy", "forces", "stress"] or check == "translation"
    assert any("stress" in what for what in report["compared"]["padding"])
    assert report["errors"]["range"]["max_error"] == 0.0


def test_contract_molecule(setup):
    _, model, params = setup
    atoms = random_cell_atoms(6, np.eye(3) * 4.0, pbc=False, seed=4, min_dist=1.4, symbols=["Cu", "O"])
    report = check_model(model, params, atoms, checks=["translation", "rotation", "permutation", "fd_forces", "jit", "param_gradients"])
    assert report["checks"] == ["translation", "rotation", "permutation", "fd_forces", "param_gradients", "jit"]
    assert report["errors"]["fd_forces"]["scale"] > 1e-2


def test_float32_matches_float64():
    atoms, model, params = _make()
    g = _graph(model, atoms)
    e64, f64 = _ef(model, params, g)
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
    g32 = g._replace(nodes={**g.nodes, "positions": g.nodes["positions"].astype(np.float32)},
                     globals={**g.globals, "cell": g.globals["cell"].astype(np.float32)})
    e32, f32 = _ef(model, p32, g32)
    assert e32.dtype == jnp.float32
    assert float(e32[0]) == pytest.approx(float(e64[0]), rel=1e-5)
    np.testing.assert_allclose(np.asarray(f32), np.asarray(f64), atol=1e-3 * float(np.abs(f64).max()) + 1e-5)


def test_unknown_element_and_bad_config():
    atoms, model, params = _make()
    bad = atoms.copy()
    bad[0].symbol = "H"
    with pytest.raises(ValueError, match="unknown element"):
        model.apply(params, jaxmlp.atoms_to_graph(bad, model.cutoff, triplets=True))
    with pytest.raises(ValueError, match="unknown element"):
        jaxmlp.Calculator(model, params).get_potential_energy(bad)
    fns = radial_grid(["Cu"], RC, 2)
    with pytest.raises(ValueError, match="activation"):
        hdnnp(["Cu"], fns, activation="swish")
    with pytest.raises(ValueError, match="no symmetry functions"):
        hdnnp(["Cu", "O"], fns)
    with pytest.raises(ValueError, match="functions"):
        hdnnp(["Cu"], fns, scaling={"mode": "scale", "stats": {"Cu": {"min": [0.0], "max": [1.0], "mean": [0.0]}}})


def test_fit_reference_energies_known_answer():
    rng = np.random.default_rng(0)
    true = {1: -13.6, 8: -432.1, 29: -1000.25}
    numbers = [rng.choice([1, 8, 29], size=rng.integers(2, 9)) for _ in range(12)]
    energies = [sum(true[int(z)] for z in n) for n in numbers]
    e0 = fit_reference_energies((numbers, energies))
    assert e0 == pytest.approx({"H": -13.6, "O": -432.1, "Cu": -1000.25}, rel=1e-12)
    # from ASE structures with attached energies, noise averages out
    from ase.calculators.singlepoint import SinglePointCalculator

    structs = []
    for n, e in zip(numbers, energies):
        a = Atoms(numbers=n, positions=rng.random((len(n), 3)) * 5)
        a.calc = SinglePointCalculator(a, energy=e + 1e-9 * rng.standard_normal())
        structs.append(a)
    e0b = fit_reference_energies(structs)
    assert e0b["Cu"] == pytest.approx(-1000.25, abs=1e-6)
    # from a jaxmlp Dataset (bare structures, energies held by the dataset)
    from jaxmlp.data import Dataset

    ds = Dataset(structs, [a.get_potential_energy() for a in structs], [np.zeros((len(a), 3)) for a in structs])
    assert fit_reference_energies(ds) == pytest.approx(e0b, rel=1e-12)
    with pytest.raises(ValueError, match="not in elements"):
        fit_reference_energies((numbers, energies), elements=["H", "O"])
    with pytest.raises(ValueError, match="at least one"):
        fit_reference_energies(([], []))


def test_calculator_energy_forces_stress_hessian():
    atoms, model, params = _make()
    atoms = atoms.copy()
    atoms.calc = jaxmlp.Calculator(model, params)
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    g = _graph(model, atoms)
    e_ref, f_ref = _ef(model, params, g)
    assert e == pytest.approx(float(e_ref[0]), rel=1e-12)
    np.testing.assert_allclose(f, np.asarray(f_ref), atol=1e-10)
    s = atoms.get_stress()
    # reference: central differences of the energy under strain, each from a freshly built graph
    d, V, s_num = 1e-5, atoms.get_volume(), np.zeros(6)
    for v, (i, j) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        ep = []
        for sign in (1, -1):
            eps = np.eye(3)
            eps[i, j] += sign * d / (1 if i == j else 2)
            eps[j, i] = eps[i, j]
            a = atoms.copy()
            a.set_cell(atoms.cell.array @ eps, scale_atoms=True)
            ep.append(float(_e(model, params, _graph(model, a))[0]))
        s_num[v] = (ep[0] - ep[1]) / (2 * d * V)
    np.testing.assert_allclose(s, s_num, rtol=1e-6, atol=1e-8)
    h = atoms.calc.get_hessian(atoms)
    assert h.shape == (3 * len(atoms), 3 * len(atoms))
    np.testing.assert_allclose(h, h.T, atol=1e-8 * np.abs(h).max())


def test_dense_layout_model_matches_triplet_model(setup):
    """``max_neighbors``: same energies, forces and stress without triplets; config round trip; contract checks."""
    atoms, model, params = setup
    k = jaxmlp.graph.max_degree([atoms], model.cutoff)
    dense = hdnnp(**{**model.config, "max_neighbors": k})
    assert not dense.needs_triplets and dense.config["max_neighbors"] == k
    assert hdnnp(**dense.config).config == dense.config
    g = _graph(model, atoms)
    g0 = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    e, f = _ef(model, params, g)
    ed, fd = _ef(dense, params, g0)
    np.testing.assert_allclose(ed, e, rtol=1e-13)
    np.testing.assert_allclose(fd, f, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(jaxmlp.stress(dense, params, g0), jaxmlp.stress(model, params, g), rtol=1e-10, atol=1e-12)
    report = check_model(dense, params, atoms, checks=["fd_forces", "padding"])
    assert set(report["checks"]) == {"fd_forces", "padding"}


@functools.lru_cache(maxsize=None)
def _make_prunable():
    """A Cu/O model whose triplets can be pruned: narrow-only triples, one triple without functions, mixed cutoffs."""
    fns = radial_grid(["Cu", "O"], RC, 2)
    fns += [angular_narrow("Cu", ("Cu", "Cu"), 0.05, -1.0, 2.0, RC), angular_narrow("Cu", ("Cu", "Cu"), 0.0, 1.0, 1.0, 3.1),
            angular_narrow("Cu", ("Cu", "O"), 0.1, 1.0, 4.0, 3.0),
            angular_wide("O", ("Cu", "O"), 0.02, 1.0, 2.0, 2.9), angular_narrow("O", ("Cu", "O"), 0.1, -1.0, 1.0, 2.9),
            compact_angular("O", ("Cu", "Cu"), -3.2, 3.2, 30.0, 150.0, "p2")]  # no function for O with (O, O), Cu with (O, O)
    atoms = random_cell_atoms(12, np.diag([4.6, 4.4, 4.8]) + 0.3 * np.tri(3, k=-1), seed=11, min_dist=1.3, symbols=["Cu", "O", "Cu"])
    model = hdnnp(["Cu", "O"], fns, hidden=(6,), activation="tanh", cutoff_type="poly2", e0={"Cu": -1.5, "O": -0.3})
    params = model.init(jax.random.PRNGKey(1), _graph(model, atoms))
    return atoms, model, params


def _same_buckets(graphs):
    """Pad graphs to one shape so one compilation serves them all."""
    b = jaxmlp.Buckets(n_node=max(len(g.nodes["positions"]) for g in graphs) + 1, n_edge=max(len(g.senders) for g in graphs) + 2,
                       n_graph=2, n_triplet=max(len(g.globals["triplets"]) for g in graphs) + 1)
    return [jaxmlp.batch_graphs([g], b) for g in graphs]


def test_triplet_filter_is_exact():
    """Pruned triplets contribute exactly nothing: energy, forces, stress, Hessian agree with the full list; FD on the pruned graph."""
    atoms, model, params = _make_prunable()
    tf = model.extras["triplet_filter"]
    sp = {s: k for k, s in enumerate(model.extras["descriptor"].symbols)}
    assert tf.rc_pair[sp["O"], sp["O"], sp["O"]] == 0.0 and tf.rc_pair[sp["Cu"], sp["O"], sp["O"]] == 0.0
    assert tf.rc_jk[sp["Cu"], sp["Cu"], sp["Cu"]] == RC and np.isinf(tf.rc_jk[sp["O"], sp["Cu"], sp["Cu"]])  # type 22: no r_jk bound
    assert tf.rc_jk[sp["O"], sp["Cu"], sp["O"]] == 2.9  # its wide function is factorised (no triplets): the narrow bound
    skin = 0.2  # the finite differences below move atoms inside the pruned graph's skin
    full = jaxmlp.atoms_to_graph(atoms, model.cutoff + skin, triplets=True)
    pruned = jaxmlp.atoms_to_graph(atoms, model.cutoff + skin, triplets=True, triplet_filter=tf)
    assert len(pruned.globals["triplets"]) < 0.7 * len(full.globals["triplets"])
    full, pruned = _same_buckets([full, pruned])
    n = len(atoms)
    efs = jax.jit(jaxmlp.energy_forces_stress, static_argnums=0)
    ref, got = efs(model, params, full), efs(model, params, pruned)
    for a, b in zip(ref, got):
        assert np.abs(np.asarray(a)).max() > 1e-4
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-13, atol=1e-13)
    # Hessian columns (forward-over-reverse) along a few directions
    V = np.random.default_rng(0).normal(size=(3 * (n + 1), 4))
    V[3 * n:] = 0.0
    hvp = jax.jit(jaxmlp.hessian_vector_product, static_argnums=0)
    HV_ref, HV = np.asarray(hvp(model, params, full, V)), np.asarray(hvp(model, params, pruned, V))
    assert np.abs(HV_ref).max() > 1e-2
    np.testing.assert_allclose(HV, HV_ref, rtol=1e-12, atol=1e-12 * np.abs(HV_ref).max())
    # forces and Hessian columns by central differences on the pruned graph
    f = np.asarray(got[1])
    pos0 = np.asarray(pruned.nodes["positions"])
    at = lambda p: pruned._replace(nodes={**pruned.nodes, "positions": p})  # noqa: E731
    h = 1e-5
    for a, k in ((0, 0), (1, 2), (5, 1)):
        vals = []
        for s in (1, -1):
            p = pos0.copy()
            p[a, k] += s * h
            vals.append(float(efs(model, params, at(p))[0][0]))  # same compiled function as above
        assert f[a, k] == pytest.approx(-(vals[0] - vals[1]) / (2 * h), rel=1e-6, abs=1e-8)
    v = V[:, 0].reshape(-1, 3)
    fp, fm = (np.asarray(efs(model, params, at(pos0 + s * h * v))[1]) for s in (1, -1))
    np.testing.assert_allclose(-(fp - fm).reshape(-1) / (2 * h), HV[:, 0], rtol=1e-5, atol=1e-6 * np.abs(HV).max())


def test_triplet_filter_with_skin_stays_exact_while_atoms_move():
    """A graph pruned at cutoff + skin stays exact for displacements up to skin / 2 (as the Calculator and MD re-use it)."""
    atoms, model, params = _make_prunable()
    tf = model.extras["triplet_filter"]
    skin = 0.6
    pruned = jaxmlp.atoms_to_graph(atoms, model.cutoff + skin, triplets=True, triplet_filter=tf)
    unpruned_here = jaxmlp.atoms_to_graph(atoms, model.cutoff + skin, triplets=True)
    assert len(pruned.globals["triplets"]) < len(unpruned_here.globals["triplets"])
    rng = np.random.default_rng(3)
    step = rng.normal(size=atoms.positions.shape)
    step *= 0.49 * skin / np.linalg.norm(step, axis=1, keepdims=True).max()
    moved = atoms.copy()
    moved.positions += step
    stale = pruned._replace(nodes={**pruned.nodes, "positions": moved.positions})
    e_ref, f_ref = _ef(model, params, _graph(model, moved))
    e, f = _ef(model, params, stale)
    assert float(e[0]) == pytest.approx(float(e_ref[0]), rel=1e-13, abs=1e-13)
    np.testing.assert_allclose(np.asarray(f), np.asarray(f_ref), rtol=1e-12, atol=1e-12)


def test_calculator_uses_the_triplet_filter():
    atoms, model, params = _make_prunable()
    atoms = atoms.copy()
    calc = jaxmlp.Calculator(model, params)
    atoms.calc = calc
    e = atoms.get_potential_energy()
    g = calc.graph_for(atoms)
    full = jaxmlp.atoms_to_graph(atoms, calc.graph_cutoff + calc.skin, triplets=True)
    assert int(g.globals["n_triplet"][0]) < len(full.globals["triplets"])
    assert e == pytest.approx(float(_e(model, params, _graph(model, atoms))[0]), rel=1e-12)
