"""The ml-ACE accuracy example's least-squares start: it is the optimum of the training loss in the linear coefficients,
its whitening makes that block well conditioned, and L-BFGS from it lowers the loss further."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "mlace_accuracy.py"


@pytest.fixture(scope="module")
def ma():
    spec = importlib.util.spec_from_file_location("example_mlace_accuracy_fit", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(ma):
    import jaxmlp
    from jaxmlp.models import mlace
    from jaxmlp.models.mlace import PRESETS

    train, test = ma.load_cu_clusters(6, 3)
    model = mlace(["Cu"], cutoff=4.0, n_layers=1, **PRESETS["small"])
    graphs = [jaxmlp.atoms_to_graph(a, model.cutoff) for a, _, _ in train]
    params = model.init(jax.random.PRNGKey(0), jaxmlp.batch_graphs(graphs))
    params["E0"] = ma.fit_e0(model, train)
    return model, params, train, test


def _loss(model, params, data, kappa=0.99):
    """The κ loss of the example, from one padded batch of all structures (independent of the example's batching)."""
    import jaxmlp

    g = jaxmlp.batch_graphs([jaxmlp.atoms_to_graph(a, model.cutoff) for a, _, _ in data])
    en, fn = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)(model, params, g)
    nat = np.array([len(a) for a, _, _ in data])
    de = (en[: len(data)] - jnp.array([e for _, e, _ in data])) / nat
    df = fn[: nat.sum()] - jnp.concatenate([f for _, _, f in data])
    return (1 - kappa) * jnp.mean(de**2) + kappa * jnp.sum(df**2) / nat.sum()


def test_linear_fit_is_the_least_squares_optimum(ma, setup):
    model, params, train, _ = setup
    fitted, info = ma.linear_fit(model, params, train, ridge=1e-12, chunk=4)
    loss = float(_loss(model, fitted, train))
    assert loss == pytest.approx(info["ls_loss"], rel=1e-6)
    assert loss < 0.5 * float(_loss(model, params, train))

    # stationary in the linear coefficients: the gradient is ~0 relative to the one at the start
    def loss_c(c, p):
        lay = dict(p["layers"][-1])
        lay["coeffs"] = lay["coeffs"].at[..., 0].set(c)
        return _loss(model, dict(p, layers=[lay]), train)

    g_fit = jax.grad(loss_c)(fitted["layers"][-1]["coeffs"][..., 0], fitted)
    g_start = jax.grad(loss_c)(params["layers"][-1]["coeffs"][..., 0], params)
    assert float(jnp.linalg.norm(g_fit)) < 1e-4 * float(jnp.linalg.norm(g_start))
    # other parameters are untouched
    np.testing.assert_array_equal(fitted["layers"][-1]["radial"], params["layers"][-1]["radial"])
    np.testing.assert_array_equal(fitted["layers"][-1]["coeffs"][..., 1], params["layers"][-1]["coeffs"][..., 1])

    # whitening: with c = M u the Hessian of the (sum-of-squares) loss in u is 2·diag(s / (s + ridge))
    c0 = fitted["layers"][-1]["coeffs"][..., 0]
    M = jnp.asarray(info["M"])
    Hu = jax.hessian(lambda u: loss_c(c0 + (M @ u).reshape(c0.shape), fitted))(jnp.zeros(M.shape[1]))
    ev = np.linalg.eigvalsh(np.asarray(Hu))
    expected = np.sort(2.0 * info["s"] / (info["s"] + info["ridge"]))
    np.testing.assert_allclose(ev, expected, atol=1e-6)


@pytest.mark.slow  # compile-heavy optimiser runs; CI time
def test_lbfgs_from_the_linear_fit_lowers_the_loss(ma, setup):
    model, params, train, test = setup
    _, info = ma.linear_fit(model, params, train, chunk=4)
    out, m = ma.train_model_lbfgs(model, train, test, budget_s=1e9, chunk=3, params=params, window=5, rtol=1e-12,
                                  eval_every_s=1e9, max_wall_s=None, log=lambda *a, **k: None, max_iterations=15)
    assert m["optimiser"] == "lbfgs+linear" and m["iterations"] == 15
    assert m["linear_fits"][0]["ls_loss"] == pytest.approx(info["ls_loss"], rel=1e-8)
    assert m["final_train_loss"] < info["ls_loss"]
    assert float(_loss(model, out, train)) == pytest.approx(m["final_train_loss"], rel=1e-3)
    assert m["compile_s"] > 0 and m["cpu_s"] > 0 and isinstance(m["converged"], bool)
    assert m["curve"] and all(np.isfinite(c["force_mae_meV_per_A"]) for c in m["curve"])


def test_bad_options(ma, setup):
    model, params, train, test = setup
    with pytest.raises(ValueError, match="ridge"):
        ma.linear_fit(model, params, train, ridge=-1.0)
    with pytest.raises(ValueError, match="refit_every_s"):
        ma.train_model_lbfgs(model, train, test, budget_s=1.0, refit_every_s=0.0)


@pytest.mark.slow  # compile-heavy optimiser runs; CI time
def test_gauss_newton_lowers_the_loss_monotonically(ma, setup):
    model, params, train, test = setup
    out, m = ma.train_model_gn(model, train, test, budget_s=1e9, chunk=3, params=params, window=50, eval_every_s=0.0,
                               log=lambda *a, **k: None, max_iterations=4)
    assert m["optimiser"] == "gauss-newton" and m["iterations"] == 4
    losses = [c["train_loss"] for c in m["curve"]]
    assert losses[0] == pytest.approx(m["linear_fit_loss"])
    assert all(b <= a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.9 * losses[0]
    assert float(_loss(model, out, train)) == pytest.approx(m["final_train_loss"], rel=1e-8)
    # the fitted set: radial functions moved, the output layer's second property did not
    assert not np.allclose(out["layers"][-1]["radial"], params["layers"][-1]["radial"])
    np.testing.assert_array_equal(out["layers"][-1]["coeffs"][..., 1], params["layers"][-1]["coeffs"][..., 1])


def test_lowest_radial_functions_are_the_first_basis_functions(ma):
    """``lowest_radial``: R_nl = g_n for n < min(n_radial, channels), zero otherwise, in every layer; only uncontracted."""
    from ase.build import molecule

    import jaxmlp
    from jaxmlp.descriptors.ace import radial_basis
    from jaxmlp.models import mlace
    from jaxmlp.models.mlace import PRESETS

    model = mlace(["C", "H", "O"], cutoff=4.0, n_layers=2, **PRESETS["paper-L2"])
    g = jaxmlp.batch_graphs([jaxmlp.atoms_to_graph(molecule("CH3CH2OH"), 4.0)])
    params = ma.lowest_radial(model, model.init(jax.random.PRNGKey(0), g))
    r = jnp.linspace(0.5, 3.9, 7)
    gq = radial_basis(r, 4.0, 8, "bessel")  # [7, Q]
    for lay, basis in zip(params["layers"], model.extras["bases"]):
        S, Q, LC = lay["radial"].shape
        n_l = basis.l_max_all + 1
        R = (gq @ lay["radial"][1]).reshape(len(r), n_l, LC // n_l)  # species 1, every l
        k = min(Q, LC // n_l)
        for l in range(n_l):
            np.testing.assert_allclose(R[:, l, :k], gq[:, :k], atol=1e-14)
            np.testing.assert_array_equal(R[:, l, k:], 0.0)
    contracted = mlace(["C", "H", "O"], cutoff=4.0, n_layers=1, **PRESETS["small"])
    with pytest.raises(ValueError, match="uncontracted"):
        ma.lowest_radial(contracted, contracted.init(jax.random.PRNGKey(0), g))
