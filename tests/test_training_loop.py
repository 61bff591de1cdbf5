"""The training loop: it learns, it selects the best epoch, it stops early, it rejects bad input."""

import json

import jax
import numpy as np
import pytest
from ase.calculators.morse import MorsePotential

from jaxmlp.models import morse
from jaxmlp.training import TrainConfig, evaluate, train

from helpers import random_cell_atoms

data = pytest.importorskip("jaxmlp.data")


TRUE = morse(D=1.0, alpha=1.6, r0=1.3, cutoff=3.5)
MODEL = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5)  # same family, wrong parameters


def morse_dataset(n, seed=0, atoms=6, model=TRUE):
    """Random periodic 6-atom cells labelled by a reference Morse potential."""
    c = model.config  # ASE's MorsePotential is the same function (see jaxmlp.models.morse)
    frames = []
    for s in range(n):
        a = random_cell_atoms(atoms, np.eye(3) * 3.8, seed=1000 * seed + s, min_dist=1.05)
        a.calc = MorsePotential(epsilon=c["D"], rho0=c["alpha"] * c["r0"], r0=c["r0"], rcut1=c["onset"] / c["r0"],
                                rcut2=c["cutoff"] / c["r0"])
        a.get_forces()
        frames.append(a)
    return data.Dataset.from_atoms(frames)


@pytest.fixture(scope="module")
def sets():
    return morse_dataset(8, seed=1), morse_dataset(4, seed=2)


@pytest.mark.parametrize("loss", ["energy", "forces", "taylor"])
def test_training_reduces_loss_and_beats_untrained(sets, loss):
    tr, va = sets
    cfg = TrainConfig(loss=loss, epochs=20, batch_size=4, learning_rate=0.01, schedule="cosine", a=2, delta=0.01,
                      kappa=0.5)
    params, hist = train(MODEL, tr, va, cfg)
    assert len(hist) == 20
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    before = evaluate(MODEL, MODEL.init(None), va)
    after = evaluate(MODEL, params, va)
    # the returned parameters are those of the best validation epoch
    best = min(h["valid_energy_rmse"] if loss != "forces" else h["valid_loss"] for h in hist)
    if loss != "forces":
        assert after["energy_rmse"] == pytest.approx(best, rel=1e-9)
    assert after["energy_rmse"] < 0.6 * before["energy_rmse"]
    if loss == "forces":  # direct force training identifies the potential
        assert after["force_rmse"] < 0.5 * before["force_rmse"]
        # 40 Adam steps of at most ~0.01 each: every parameter moved most of the way to the truth
        true, start = TRUE.init(None), MODEL.init(None)
        for k, tol in (("D", 0.15), ("alpha", 0.15), ("r0", 0.05)):
            assert abs(float(params[k]) - float(true[k])) < min(tol, 0.5 * abs(float(start[k]) - float(true[k]))), k
    if loss == "taylor":
        assert hist[0]["n_train"] == 8 * 3


def test_lbfgs_full_batch_recovers_the_potential(sets):
    tr, va = sets
    # full batch: one L-BFGS iteration per epoch on the exact training loss
    cfg = TrainConfig(loss="forces", optimiser="lbfgs", epochs=14, batch_size=8, shuffle=False)
    params, hist = train(MODEL, tr, va, cfg)
    assert hist[-1]["train_loss"] < 1e-14
    for k, v in TRUE.init(None).items():
        assert abs(float(params[k]) - float(v)) <= 1e-6, (k, float(params[k]))


def test_deterministic_and_logged(sets, tmp_path):
    tr, va = sets
    cfg = TrainConfig(loss="forces", epochs=2, batch_size=3, learning_rate=0.01, seed=4,
                      log_file=str(tmp_path / "log.csv"))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "log.csv.tmp").symlink_to(victim)  # the old fixed temporary name must not be followed
    p1, h1 = train(MODEL, tr, va, cfg)
    assert victim.read_text() == "keep"
    p2, h2 = train(MODEL, tr, va, cfg.replace(log_file=str(tmp_path / "log.json")))
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    assert [h["train_loss"] for h in h1] == [h["train_loss"] for h in h2]
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0].startswith("epoch") and len(lines) == 3
    assert len(json.loads((tmp_path / "log.json").read_text())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "log.csv.tmp", "log.json", "victim.txt"]
    p3, _ = train(MODEL, tr, va, cfg.replace(seed=5, log_file=None))
    assert not all(np.array_equal(p1[k], p3[k]) for k in p1)  # another shuffle order


def test_early_stopping(sets):
    tr, _ = sets
    # validation data labelled by the *starting* model: training towards the
    # true potential makes validation worse every epoch, so it stops after
    # 1 + patience epochs and returns the first epoch's parameters
    va = morse_dataset(3, seed=3, model=MODEL)
    params, hist = train(MODEL, tr, va, TrainConfig(loss="forces", epochs=50, patience=3, batch_size=4,
                                                     learning_rate=0.01, schedule="constant"))
    assert len(hist) == 4
    assert all(h["valid_loss"] > hist[0]["valid_loss"] for h in hist[1:])
    assert abs(float(params["r0"]) - 1.45) < 0.03


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(loss="dipoles"), "unknown loss"),
        (dict(optimiser="sgd"), "unknown optimiser"),
        (dict(schedule="step"), "unknown schedule"),
        (dict(delta=0.0), "delta"),
        (dict(delta=-1e-3), "delta"),
        (dict(kappa=1.5), "kappa"),
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(learning_rate=float("nan")), "learning_rate"),
        (dict(strategy="C"), "strategy"),
        (dict(a=0), "a must"),
        (dict(seed=-1), "seed"),
        (dict(warmup_epochs=-1), "warmup_epochs"),
        (dict(resume="yes"), "resume"),
        (dict(grad_clip=0.0), "grad_clip"),
        (dict(time_limit=-1.0), "time_limit"),
        (dict(checkpoint_dir=""), "checkpoint_dir"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(seed=1.5), dict(seed=True), dict(shuffle="false"), dict(shuffle=0), dict(progress="yes"),
     dict(patience=True), dict(patience=2.0), dict(epochs=True), dict(epochs=10.0), dict(batch_size="8"),
     dict(learning_rate="1e-3"), dict(learning_rate=True), dict(kappa=None), dict(grad_clip=False),
     dict(loss=None), dict(loss=["forces"]), dict(log_file=3), dict(resume=False), dict(buckets=(8, 64, 2))],
)
def test_config_types_are_strict(kwargs):
    (name, value), = kwargs.items()
    with pytest.raises(TypeError, match=f"TrainConfig: {name} must be"):
        TrainConfig(**kwargs)


def test_config_accepts_and_normalises_numpy_and_paths(tmp_path):
    cfg = TrainConfig(seed=np.int64(3), learning_rate=np.float32(0.5), epochs=np.int32(2), shuffle=np.bool_(False),
                      checkpoint_dir=tmp_path, kappa=1, resume="force")
    assert type(cfg.seed) is int and type(cfg.epochs) is int and type(cfg.learning_rate) is float
    assert cfg.shuffle is False and cfg.kappa == 1.0 and cfg.checkpoint_dir == str(tmp_path)
    assert json.loads(json.dumps(cfg.to_dict()))["seed"] == 3
    with pytest.raises(TypeError, match="taylor_order"):
        TrainConfig(taylor_order=1)  # removed: only first order was ever possible


def test_bad_data(sets):
    tr, va = sets
    cfg = TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="empty"):
        train(MODEL, tr[:0], va, cfg)
    with pytest.raises(ValueError, match="empty"):
        train(MODEL, tr, va[:0], cfg)
    with pytest.raises(TypeError, match="Dataset"):
        train(MODEL, list(tr), va, cfg)
    with pytest.raises(TypeError, match="TrainConfig"):
        train(MODEL, tr, va, {"loss": "forces"})
    bad = tr[0]
    bad.calc.results["energy"] = float("nan")
    with pytest.raises(ValueError, match="energy"):
        data.Dataset.from_atoms([bad])
    with pytest.raises(ValueError, match="unknown element"):
        train(MODEL.__class__(**{**vars(MODEL), "elements": (1,)}), tr, va, cfg)


def test_time_limit_stops_early_and_reports_it(sets):
    tr, va = sets
    cfg = TrainConfig(loss="energy", epochs=50, batch_size=8, learning_rate=0.01, schedule="constant")
    _, hist = train(MODEL, tr, va, cfg.replace(time_limit=1e-9))
    assert len(hist) == 1 and hist[-1]["stop"] == "time_limit"
    _, hist = train(MODEL, tr, va, cfg.replace(epochs=3, time_limit=1e6))
    assert len(hist) == 3 and all("stop" not in h for h in hist)


def _adam_steps(cfg, steps_per_epoch, grads):
    """Updates of make_optimiser(cfg) for a sequence of gradients of a one-parameter-vector model."""
    from jaxmlp.training import make_optimiser

    opt = make_optimiser(cfg, steps_per_epoch)
    params = {"w": np.zeros(len(grads[0]))}
    state = opt.init(params)
    out = []
    for g in grads:
        upd, state = opt.update({"w": np.asarray(g, float)}, state, params)
        out.append(np.asarray(upd["w"]))
    return out


@pytest.mark.parametrize("schedule", ["exponential", "cosine", "constant"])
def test_learning_rate_used_per_step_matches_the_formula(schedule):
    lr, d, S, W, E = 0.1, 0.3, 3, 2, 5
    cfg = TrainConfig(learning_rate=lr, decay_rate=d, schedule=schedule, warmup_epochs=W, epochs=E)

    def expected(t):  # written from the documented formulas, not from the code
        if t < W * S:
            return lr * (t + 1) / (W * S)
        u, T = t - W * S, E * S - W * S
        if schedule == "exponential":
            return lr * d ** (u / S)
        if schedule == "cosine":
            return lr * (d + (1 - d) * 0.5 * (1 + np.cos(np.pi * min(u, T) / T)))
        return lr

    # with a constant gradient Adam's bias-corrected step is -lr_t·g/(|g| + 1e-8): the rate itself
    ups = _adam_steps(cfg, S, [[1.0, -2.0]] * (E * S + 2))
    for t, u in enumerate(ups):
        np.testing.assert_allclose(u, [-expected(t), expected(t)], rtol=1e-7, err_msg=f"step {t}")


def test_warmup_and_schedule_in_training(sets):
    tr, va = sets
    lr = 0.02
    cfg = TrainConfig(loss="forces", epochs=3, batch_size=8, shuffle=False, learning_rate=lr, warmup_epochs=4,
                      schedule="exponential", decay_rate=0.5)
    params, hist = train(MODEL, tr, None, cfg.replace(epochs=1))
    # one full-batch Adam step of the first warm-up rate lr/4 moves every parameter by lr/4
    start = MODEL.init(None)
    for k in start:
        assert abs(float(params[k]) - float(start[k])) == pytest.approx(lr / 4, rel=1e-6), k
    _, hist = train(MODEL, tr, None, cfg.replace(warmup_epochs=1, epochs=3))
    # rate of each epoch's (only) step: warm-up lr·1/1, then lr·0.5^0, lr·0.5^1
    assert [h["learning_rate"] for h in hist] == pytest.approx([lr, lr, lr * 0.5], rel=1e-12)


def test_grad_clip_bounds_the_gradient_adam_sees():
    small, spike = [0.3, -0.4], [3000.0, 4000.0]  # norms 0.5 and 5000
    clipped = _adam_steps(TrainConfig(learning_rate=0.1, schedule="constant", grad_clip=1.0), 1, [small, spike, small])
    plain = _adam_steps(TrainConfig(learning_rate=0.1, schedule="constant"), 1, [small, spike, small])
    # clipping to norm 1 is the same as feeding the spike rescaled to norm 1 (the small gradient is untouched)
    rescaled = _adam_steps(TrainConfig(learning_rate=0.1, schedule="constant"), 1, [small, [0.6, 0.8], small])
    for a, b in zip(clipped, rescaled):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert np.abs(plain[2] - clipped[2]).max() > 1e-3  # without clipping the spike dominates the moments
    # and the Adam update after a spike stays at the learning-rate scale
    assert all(np.linalg.norm(u) <= 0.1 * np.sqrt(2) * 1.01 for u in clipped)


@pytest.mark.parametrize("extra", [dict(variant="mae"), dict(variant="huber", huber_delta=0.05),
                                   dict(loss="energy", stress_weight=3.0)])
def test_loss_options_reach_the_training_step(sets, extra):
    from jaxmlp.training import loss

    tr, _ = sets
    cfg = TrainConfig(**{"loss": "forces", "kappa": 0.4, **extra}, epochs=1, batch_size=8, shuffle=False)
    _, hist = train(MODEL, tr, None, cfg)
    # full batch: the first epoch's training loss is the loss at the starting parameters
    b = next(tr.batches(MODEL.cutoff, batch_size=8, shuffle=False))
    kw = {k: v for k, v in extra.items() if k != "loss"}
    f = jax.jit(loss, static_argnums=0, static_argnames=("kind", "kappa", "variant", "huber_delta", "stress_weight"))
    ref = float(f(MODEL, MODEL.init(None), b, kind=cfg.loss, kappa=0.4, **kw))
    assert hist[0]["train_loss"] == pytest.approx(ref, rel=1e-10)
    plain = float(f(MODEL, MODEL.init(None), b, kind=cfg.loss, kappa=0.4))
    assert abs(ref - plain) > 0.01 * plain  # the option changes the value


def test_hdnnp_training_with_triplets_and_resume(tmp_path):
    import jax

    from jaxmlp.descriptors import angular_set, radial_grid
    from jaxmlp.models import hdnnp

    sf = radial_grid(["Ar"], 3.5, 2) + angular_set(["Ar"], 3.5, etas=(0.0,), zetas=(1.0,), lambdas=(1.0,))
    model = hdnnp(["Ar"], sf, hidden=(4,), factorise_wide=False)  # the wide function on the triplet path
    assert model.needs_triplets and sum(f["type"] == 9 for f in model.config["symmetry_functions"]) == 1
    tr, va = morse_dataset(6, seed=5, atoms=5), morse_dataset(2, seed=6, atoms=5)
    cfg = TrainConfig(loss="forces", epochs=4, batch_size=3, learning_rate=0.02, schedule="constant", seed=2)
    ref, hist = train(model, tr, va, cfg)
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]

    class Stop(Exception):
        pass

    def stop(epoch, record):
        if epoch == 2:
            raise Stop

    run = cfg.replace(checkpoint_dir=str(tmp_path / "h"))
    with pytest.raises(Stop):
        train(model, tr, va, run, callback=stop)
    ran = []
    params, hist2 = train(model, tr, va, run, callback=lambda epoch, record: ran.append(epoch))
    assert ran == [3, 4]  # continued from the checkpoint of epoch 2
    assert [h["train_loss"] for h in hist2] == [h["train_loss"] for h in hist]
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
