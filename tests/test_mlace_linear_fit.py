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


def test_split_validation_is_a_fixed_disjoint_part_of_the_training_frames(ma, setup):
    _, _, train, _ = setup
    fit, val = ma.split_validation(train, 2, seed=1)
    assert len(fit) == 4 and len(val) == 2
    ids = lambda xs: {id(x) for x in xs}  # noqa: E731
    assert ids(fit) | ids(val) == ids(train) and not ids(fit) & ids(val)
    fit2, val2 = ma.split_validation(train, 2, seed=1)
    assert ids(val2) == ids(val)
    for bad in (0, 6, 2.5):
        with pytest.raises(ValueError, match="n_val"):
            ma.split_validation(train, bad)


def test_ridge_sweep_matches_the_linear_fit_and_evaluate(ma, setup):
    """Each point of the sweep is :func:`linear_fit` with that ridge; its validation numbers are those of ``evaluate``."""
    import jaxmlp

    model, params, train, _ = setup
    fit, val = ma.split_validation(train, 2, seed=1)
    ridges = [1e-10, 1e-3, 1.0]
    best, curve = ma.ridge_sweep(model, params, fit, val, ridges, chunk=4)
    assert [c["ridge"] for c in curve] == ridges
    assert best == min(curve, key=lambda c: c["val_loss"])["ridge"]
    fitted, info = ma.linear_fit(model, params, fit, ridge=1e-3, chunk=4)
    assert curve[1]["train_loss"] == pytest.approx(info["ls_loss"], rel=1e-8)
    buckets = jaxmlp.suggest_buckets([jaxmlp.atoms_to_graph(a, model.cutoff) for a, _, _ in train], 4)
    m = ma.evaluate(model, fitted, val, buckets, 4)
    assert curve[1]["val_loss"] == pytest.approx(m["loss"], rel=1e-8)
    assert curve[1]["val_energy_mae_meV"] == pytest.approx(m["energy_mae_meV"], rel=1e-8)
    assert curve[1]["val_force_mae_meV_per_A"] == pytest.approx(m["force_mae_meV_per_A"], rel=1e-8)
    # a large ridge pulls the fit away from the training optimum
    assert curve[2]["train_loss"] > curve[0]["train_loss"]
    with pytest.raises(ValueError, match="ridges"):
        ma.ridge_sweep(model, params, fit, val, [])
    with pytest.raises(ValueError, match="ridges"):
        ma.ridge_sweep(model, params, fit, val, [-1.0])


def test_gauss_newton_bad_regularisation_options(ma, setup):
    model, params, train, test = setup
    with pytest.raises(ValueError, match="tikhonov"):
        ma.train_model_gn(model, train, test, budget_s=1.0, params=params, tikhonov=-1.0)
    with pytest.raises(ValueError, match="patience"):
        ma.train_model_gn(model, train, test, budget_s=1.0, params=params, val=train[:2], patience=0)
    with pytest.raises(ValueError, match="tikhonov"):
        ma._tikhonov("auto", 1e-6)
    assert ma._tikhonov("ridge", 1e-6) == 1e-6


@pytest.mark.slow  # compile-heavy optimiser run; CI time
def test_gauss_newton_with_tikhonov_and_early_stopping(ma, setup):
    """The penalty pulls the coefficients in, and with validation frames
    the returned parameters are those of the best validation iteration."""
    model, params, train, test = setup
    fit, val = ma.split_validation(train, 2, seed=1)
    quiet = lambda *a, **k: None  # noqa: E731
    kw = dict(budget_s=1e9, chunk=2, params=params, window=50, eval_every_s=0.0, log=quiet, max_iterations=4)
    out0, m0 = ma.train_model_gn(model, fit, test, ridge=1e-2, tikhonov=0.0, **kw)
    out1, m1 = ma.train_model_gn(model, fit, test, ridge=1e-2, tikhonov=1e-2, val=val, patience=4, **kw)
    assert m1["tikhonov"] == 1e-2 and m1["n_val"] == 2 and len(m1["val_curve"]) == m1["iterations"] + 1
    vl = [c["loss"] for c in m1["val_curve"]]
    assert m1["best_iteration"] == int(np.argmin(vl)) and m1["best_val_loss"] == pytest.approx(min(vl))
    import jaxmlp

    buckets = jaxmlp.suggest_buckets([jaxmlp.atoms_to_graph(a, model.cutoff) for a, _, _ in train + test], 2)
    assert ma.evaluate(model, out1, val, buckets, 2)["loss"] == pytest.approx(min(vl), rel=1e-8)
    c0 = np.linalg.norm(np.asarray(out0["layers"][-1]["coeffs"][..., 0]))
    c1 = np.linalg.norm(np.asarray(out1["layers"][-1]["coeffs"][..., 0]))
    assert c1 < c0


def test_gn_init_density_scale(ma, setup):
    """``density_scale``: the output layer's second property gets that RMS over the atoms of the initial frames."""
    import jaxmlp
    from jaxmlp.models.mlace import mlace_layers

    model, _, train, _ = setup
    p = ma.gn_init(model, train, chunk=6, density_scale=0.5)
    g = jaxmlp.batch_graphs([jaxmlp.atoms_to_graph(a, model.cutoff) for a, _, _ in train])
    props = np.asarray(mlace_layers(model, p, g)[-1])[np.asarray(g.nodes["mask"])]
    assert np.sqrt(np.mean(props[:, 1] ** 2)) == pytest.approx(0.5, rel=1e-6)
    q = ma.gn_init(model, train, chunk=6)
    np.testing.assert_array_equal(p["layers"][-1]["coeffs"][..., 0], q["layers"][-1]["coeffs"][..., 0])
    with pytest.raises(ValueError, match="density_scale"):
        ma.gn_init(model, train, density_scale=0.0)
    with pytest.raises(ValueError, match="radial_init"):
        ma.gn_init(model, train, radial_init="smooth")
