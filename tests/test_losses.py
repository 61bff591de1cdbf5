"""Losses: hand-computed values, padding invariance, parameter gradients vs finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.calculators.lj import LennardJones

import jaxmlp
from jaxmlp.models import lennard_jones
from jaxmlp.training import energy_loss, force_loss, loss, loss_sums, penalty, stress_loss

from helpers import random_cell_atoms

data = pytest.importorskip("jaxmlp.data")


@pytest.fixture(scope="module")
def dataset():
    frames = []
    for s, n in enumerate((5, 8, 6)):
        a = random_cell_atoms(n, np.eye(3) * 3.6, seed=s, min_dist=1.0)
        a.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=3.0, smooth=True, ro=0.66 * 3.0)
        a.get_stress()
        frames.append(a)
    return data.Dataset.from_atoms(frames).with_weight([1.0, 2.0, 0.5])


MODEL = lennard_jones(epsilon=0.8, sigma=1.05, cutoff=3.0)
PARAMS = {"epsilon": jnp.asarray(0.8), "sigma": jnp.asarray(1.05)}


_STATIC = ("kind", "kappa", "variant", "huber_delta", "stress_weight")
jloss = jax.jit(loss, static_argnums=0, static_argnames=_STATIC)
jsums = jax.jit(loss_sums, static_argnums=0, static_argnames=_STATIC)
jef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
ONE = jaxmlp.Buckets(n_node=16, n_edge=512, n_graph=2)


def _batch(ds, buckets=None):
    return next(ds.batches(3.0, buckets=buckets, batch_size=len(ds), shuffle=False))


def _rho(x, variant, hd):
    """The residual penalties written out by hand (not the module's ``penalty``)."""
    x = np.asarray(x, float)
    if variant == "mse":
        return x**2
    if variant == "mae":
        return np.abs(x)
    return np.where(np.abs(x) <= hd, x**2, 2 * hd * np.abs(x) - hd**2)  # Huber ×2: C¹ at |x| = hd


def _force_residuals(ds):
    out = []
    for k in range(len(ds)):
        g = jaxmlp.batch_graphs([jaxmlp.atoms_to_graph(ds[k], 3.0)], ONE)
        out.append(np.asarray(jef(MODEL, PARAMS, g)[1])[: len(ds[k])] - ds.forces[k])
    return np.concatenate(out).ravel()


def _reference(ds, kappa, variant="mse", hd=0.1):
    """Loss evaluated structure by structure with the ASE-equivalent model."""
    num = den = 0.0

    def rho(x):
        return _rho(x, variant, hd)

    for k in range(len(ds)):
        g = jaxmlp.batch_graphs([jaxmlp.atoms_to_graph(ds[k], 3.0)], ONE)
        e, f = jef(MODEL, PARAMS, g)
        n = len(ds[k])
        le = rho((float(e[0]) - ds.energy[k]) / n)
        lf = np.sum(rho(np.asarray(f)[:n] - ds.forces[k])) / (3 * n)
        num += ds.weight[k] * ((1 - kappa) * le + kappa * lf)
        den += ds.weight[k]
    return num / den


@pytest.mark.parametrize("variant", ["mse", "mae", "huber"])
def test_value_matches_per_structure_reference(dataset, variant):
    b = _batch(dataset)
    # Huber's δ at the median force residual: half the components on each side of it
    hd = float(np.median(np.abs(_force_residuals(dataset)))) if variant == "huber" else 0.1
    if variant == "huber":
        r = np.abs(_force_residuals(dataset))
        assert (r < 0.9 * hd).sum() > 10 and (r > 1.1 * hd).sum() > 10
    assert float(jloss(MODEL, PARAMS, b, kind="forces", kappa=0.3, variant=variant, huber_delta=hd)) == pytest.approx(
        _reference(dataset, 0.3, variant, hd), rel=1e-10)
    assert float(jloss(MODEL, PARAMS, b, kind="energy", variant=variant, huber_delta=hd)) == pytest.approx(
        _reference(dataset, 0.0, variant, hd), rel=1e-10)
    if variant == "mse":  # the public convenience wrappers, eager
        assert float(force_loss(MODEL, PARAMS, b, kappa=0.3)) == pytest.approx(_reference(dataset, 0.3), rel=1e-10)
        assert float(energy_loss(MODEL, PARAMS, b)) == pytest.approx(_reference(dataset, 0.0), rel=1e-10)


def test_exact_model_has_zero_loss(dataset):
    b = _batch(dataset)
    exact = {"epsilon": jnp.asarray(1.0), "sigma": jnp.asarray(1.0)}
    assert float(jloss(MODEL, exact, b, kind="forces", kappa=0.5, stress_weight=1.0)) < 1e-20
    assert float(stress_loss(MODEL, exact, b)) < 1e-20


def test_penalty_by_hand():
    x = np.array([-0.5, -0.1, -0.03, 0.0, 0.02, 0.1, 0.7])
    for variant in ("mse", "mae", "huber"):
        np.testing.assert_allclose(np.asarray(penalty(jnp.asarray(x), variant, 0.1)), _rho(x, variant, 0.1), rtol=1e-15)
    # the two Huber branches meet with equal value and slope at |x| = δ
    np.testing.assert_allclose(np.asarray(penalty(jnp.asarray([0.7]), "huber", 0.1)), [2 * 0.1 * 0.7 - 0.01])
    slope = jax.grad(lambda t: penalty(t, "huber", 0.1))
    assert float(slope(0.1 - 1e-9)) == pytest.approx(float(slope(0.1 + 1e-9)), rel=1e-6)


def test_stress_loss_at_wrong_parameters_matches_ase(dataset):
    # ASE's smooth LJ at the model's (wrong) parameters gives σ_pred independently of jaxmlp
    ref = LennardJones(sigma=1.05, epsilon=0.8, rc=3.0, smooth=True, ro=0.66 * 3.0)
    s_pred = []
    for k in range(len(dataset)):
        a = dataset[k]
        a.calc = ref
        s_pred.append(a.get_stress())
    s_pred = np.array(s_pred)
    mask = np.array([True, False, True])
    ds = data.Dataset(dataset.structures, dataset.energy, dataset.forces, dataset.stress, dataset.weight, mask)
    per = np.mean((s_pred - dataset.stress) ** 2, axis=1)
    assert per.min() > 1e-6  # wrong parameters: a real stress error on every structure
    w = dataset.weight
    expect = np.sum((w * per)[mask]) / np.sum(w[mask])
    b = _batch(ds)
    assert float(stress_loss(MODEL, PARAMS, b)) == pytest.approx(expect, rel=1e-10)
    # the masked structure is ignored: a wild label there changes nothing
    wild = np.array(dataset.stress)
    wild[1] += 10.0
    bw = _batch(data.Dataset(dataset.structures, dataset.energy, dataset.forces, wild, dataset.weight, mask))
    assert float(stress_loss(MODEL, PARAMS, bw)) == pytest.approx(expect, rel=1e-10)
    # in the combined loss the stress term is weighted by all structures' weights
    e_only = float(jloss(MODEL, PARAMS, b, kind="energy"))
    total = float(jloss(MODEL, PARAMS, b, kind="energy", stress_weight=2.0))
    assert total - e_only == pytest.approx(2.0 * np.sum((w * per)[mask]) / np.sum(w), rel=1e-9)
    # Huber on stress, by hand
    hd = float(np.median(np.abs(s_pred - dataset.stress)))
    expect_h = np.sum((w * np.mean(_rho(s_pred - dataset.stress, "huber", hd), axis=1))[mask]) / np.sum(w[mask])
    assert float(stress_loss(MODEL, PARAMS, b, variant="huber", huber_delta=hd)) == pytest.approx(expect_h, rel=1e-10)


def test_padding_and_batching_invariance(dataset):
    small = _batch(dataset)
    big = _batch(dataset, jaxmlp.Buckets(n_node=64, n_edge=2048, n_graph=7))
    for kind in ("energy", "forces"):
        a = float(jloss(MODEL, PARAMS, small, kind=kind, stress_weight=0.1))
        b = float(jloss(MODEL, PARAMS, big, kind=kind, stress_weight=0.1))
        assert a == pytest.approx(b, rel=1e-12)
    # one structure per batch, weights summed by hand
    parts = list(dataset.batches(3.0, buckets=ONE, batch_size=1, shuffle=False))
    sums = [jsums(MODEL, PARAMS, p, kind="forces")[:2] for p in parts]
    num, den = sum(float(s[0]) for s in sums), sum(float(s[1]) for s in sums)
    assert num / den == pytest.approx(float(jloss(MODEL, PARAMS, small, kind="forces")), rel=1e-12)


@pytest.mark.parametrize("kind, extra", [("energy", {}), ("forces", {"kappa": 0.7}),
                                         ("forces", {"kappa": 0.7, "variant": "huber"}), ("energy", {"stress_weight": 2.0})])
def test_parameter_gradient_finite_differences(dataset, kind, extra):
    b = jax.tree.map(jnp.asarray, _batch(dataset))
    f = jax.jit(lambda p: loss(MODEL, p, b, kind=kind, **extra))
    g = jax.grad(f)(PARAMS)
    h = 1e-5
    for name in PARAMS:
        up = dict(PARAMS, **{name: PARAMS[name] + h})
        dn = dict(PARAMS, **{name: PARAMS[name] - h})
        fd = (float(f(up)) - float(f(dn))) / (2 * h)
        assert float(g[name]) == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_float32_loss_close_to_float64(dataset):
    b = _batch(dataset)
    b32 = jax.tree.map(lambda x: np.asarray(x, np.float32) if np.asarray(x).dtype == np.float64 else x, b)
    p32 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), PARAMS)
    v64 = float(jloss(MODEL, PARAMS, b, kind="forces", kappa=0.5))
    v32 = jloss(MODEL, p32, b32, kind="forces", kappa=0.5)
    assert v32.dtype == jnp.float32
    assert float(v32) == pytest.approx(v64, rel=1e-4)


def test_bad_arguments(dataset):
    b = _batch(dataset)
    with pytest.raises(ValueError, match="unknown loss"):
        loss(MODEL, PARAMS, b, kind="dipole")
    with pytest.raises(ValueError, match="variant"):
        loss(MODEL, PARAMS, b, kind="energy", variant="l3")
    with pytest.raises(ValueError, match="kappa"):
        force_loss(MODEL, PARAMS, b, kappa=1.5)
