"""Checkpoints: an interrupted and resumed run ends with exactly the same parameters."""

import os

import numpy as np
import pytest

from jaxmlp.models import lennard_jones, morse
from jaxmlp.training import CheckpointManager, TrainConfig, train

from helpers import morse_frames

data = pytest.importorskip("jaxmlp.data")


def _sets():
    frames = morse_frames([5] * 10)
    ds = data.Dataset.from_atoms(frames)
    return ds[:7], ds[7:]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("optimiser", ["adam", "lbfgs"])
def test_resume_is_exact(tmp_path, optimiser):
    tr, va = _sets()
    model = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5)
    cfg = TrainConfig(loss="forces", epochs=4, batch_size=3, learning_rate=0.01, schedule="cosine", optimiser=optimiser)
    ref_params, ref_hist = train(model, tr, va, cfg.replace(checkpoint_dir=str(tmp_path / "a")))

    def stop_after_two(epoch, record):
        if epoch == 2:
            raise Interrupt

    run = cfg.replace(checkpoint_dir=str(tmp_path / "b"))
    with pytest.raises(Interrupt):
        train(model, tr, va, run, callback=stop_after_two)
    assert CheckpointManager(run.checkpoint_dir).latest_step == 2
    ran = []
    params, hist = train(model, tr, va, run, callback=lambda epoch, record: ran.append(epoch))
    assert ran == [3, 4]  # continued from the checkpoint of epoch 2, not from scratch
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    for k in ref_params:
        assert np.array_equal(np.asarray(params[k]), np.asarray(ref_params[k])), k
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in ref_hist]
    # a finished run resumes to a no-op that returns the same parameters
    again, hist2 = train(model, tr, va, run)
    assert len(hist2) == 4 and all(np.array_equal(again[k], params[k]) for k in params)
    # only complete checkpoints (no temporary directories) are left behind
    assert all(not name.startswith(".") and "tmp" not in name for name in os.listdir(run.checkpoint_dir))


def test_manager_errors(tmp_path):
    mgr = CheckpointManager(tmp_path / "empty")
    assert mgr.latest_step is None
    with pytest.raises(FileNotFoundError):
        mgr.restore({"x": np.zeros(2)})
    with pytest.raises(ValueError, match="max_to_keep"):
        CheckpointManager(tmp_path / "x", max_to_keep=0)
    mgr.save(3, {"x": np.arange(3.0)}, {"note": "hi"})
    state, meta = mgr.restore({"x": np.zeros(3)})
    np.testing.assert_array_equal(state["x"], [0.0, 1.0, 2.0])
    assert meta == {"note": "hi"}


def _two_epochs(tmp_path, name="run"):
    tr, va = _sets()
    model = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5)
    cfg = TrainConfig(loss="forces", epochs=2, batch_size=7, learning_rate=0.01, schedule="constant",
                      checkpoint_dir=str(tmp_path / name))
    params, hist = train(model, tr, va, cfg)
    return tr, va, model, cfg, params, hist


def test_resume_refuses_another_run(tmp_path):
    tr, va, model, cfg, params, hist = _two_epochs(tmp_path)
    more = cfg.replace(epochs=3)  # a constant schedule does not depend on epochs: continuing is allowed
    cases = [
        (morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.4), tr, va, more, r"model\.config\.cutoff: checkpoint 3\.5, now 3\.4"),
        (model, tr[1:], va, more, "train_data: other structures"),
        (model, tr.with_weight(np.arange(1.0, 8.0)), va, more, "train_data"),
        (model, tr, None, more, "valid_data"),
        (model, tr, va, more.replace(learning_rate=0.02), r"training\.learning_rate: checkpoint 0\.01, now 0\.02"),
        (model, tr, va, more.replace(seed=1, kappa=0.2), r"training\.kappa(.|\n)*training\.seed"),
    ]
    for m, a, b, c, match in cases:
        with pytest.raises(ValueError, match=match) as info:
            train(m, a, b, c)
        assert "resume='force'" in str(info.value)
    # forcing does not make another parameter tree fit: a clear error, not orbax internals
    lj = lennard_jones(epsilon=1.0, sigma=1.0, cutoff=3.5)
    with pytest.raises(ValueError, match=r"does not fit the current parameter/optimiser state(.|\n)*epsilon"):
        train(lj, tr, va, more.replace(resume="force"))
    # nothing was overwritten by the refused runs
    assert CheckpointManager(cfg.checkpoint_dir).latest_step == 2
    # the same run with more epochs continues; "force" continues another run on purpose
    _, h3 = train(model, tr, va, more)
    assert [h["epoch"] for h in h3] == [1, 2, 3] and h3[:2] == hist
    forced = more.replace(epochs=4, learning_rate=0.02, resume="force")
    _, h4 = train(model, tr, va, forced)
    assert [h["epoch"] for h in h4] == [1, 2, 3, 4] and h4[:3] == h3
    assert h4[-1]["learning_rate"] == 0.02


def test_resume_checkpoint_without_fingerprint_is_refused(tmp_path):
    from jaxmlp.training import make_optimiser

    tr, va, model, cfg, params, hist = _two_epochs(tmp_path)
    start = model.init(None)
    target = {"params": start, "opt_state": make_optimiser(cfg, 1).init(start), "best_params": start,
              "best_valid": np.asarray(np.inf), "epoch": np.asarray(0), "bad_epochs": np.asarray(0)}
    state, meta = CheckpointManager(cfg.checkpoint_dir).restore(target)
    assert meta["fingerprint"]["training"]["learning_rate"] == 0.01
    old = CheckpointManager(tmp_path / "old")
    old.save(2, state, {"history": hist, "stopped": False})  # metadata as an older version wrote it
    old.close()
    run = cfg.replace(epochs=3, checkpoint_dir=str(tmp_path / "old"))
    with pytest.raises(ValueError, match="no run fingerprint"):
        train(model, tr, va, run)
    _, h3 = train(model, tr, va, run.replace(resume="force"))
    assert [h["epoch"] for h in h3] == [1, 2, 3]


def test_mismatching_tree_is_a_clear_error(tmp_path):
    mgr = CheckpointManager(tmp_path / "c")
    mgr.save(1, {"w": np.zeros((2, 3)), "b": np.zeros(3)}, {})
    with pytest.raises(ValueError, match=r"does not fit(.|\n)*shape \(2, 3\) in the checkpoint, \(4, 3\) now"):
        mgr.restore({"w": np.zeros((4, 3)), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="does not fit"):
        mgr.restore({"w": np.zeros((2, 3)), "c": np.zeros(3)})
    state, _ = mgr.restore({"w": np.ones((2, 3)), "b": np.ones(3)})
    assert np.array_equal(state["w"], np.zeros((2, 3)))


def test_checkpoint_every_and_keep(tmp_path):
    tr, va = _sets()
    model = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5)
    run = TrainConfig(loss="energy", epochs=5, batch_size=7, learning_rate=0.01, schedule="constant",
                      checkpoint_dir=str(tmp_path / "k"), checkpoint_every=2, keep_checkpoints=2)
    seen = []

    def steps(epoch, record):
        seen.append((epoch, sorted(int(n) for n in os.listdir(run.checkpoint_dir) if n.isdigit())))

    train(model, tr, va, run, callback=steps)
    # written after epochs 2, 4 and the last one (5); only the newest two are kept
    assert seen == [(1, []), (2, [2]), (3, [2]), (4, [2, 4]), (5, [4, 5])]


def _tiny_hdnnp():
    import jax

    from jaxmlp.descriptors import angular_set, radial_grid
    from jaxmlp.models import hdnnp

    sf = radial_grid(["Ar"], 3.5, 2) + angular_set(["Ar"], 3.5, etas=(0.0,), zetas=(1.0,), lambdas=(1.0,))
    return hdnnp(["Ar"], sf, hidden=(4,)), jax.random.PRNGKey(3)


def _tiny_mlace():
    import jax

    from jaxmlp.models import mlace

    model = mlace(["Ar"], cutoff=3.5, n_layers=2, correlation_order=2, l_max=(0, 1), n_max=(2, 2), k_max=2, n_radial=3)
    return model, jax.random.PRNGKey(4)


@pytest.mark.parametrize("make", [_tiny_hdnnp, _tiny_mlace])
def test_round_trip_of_network_states(tmp_path, make):
    import jax
    import optax

    import jaxmlp

    model, key = make()
    atoms = morse_frames([5])[0]
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
    params = model.init(key, g)
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)
    grads = jax.tree.map(lambda x: np.cos(np.asarray(x)) + 0.5, params)
    _, opt_state = opt.update(grads, opt_state, params)  # non-trivial moments
    state = {"params": params, "opt_state": opt_state, "epoch": np.asarray(7)}
    mgr = CheckpointManager(tmp_path / "n")
    mgr.save(7, state, {"model": model.name})
    fresh = {"params": model.init(jax.random.PRNGKey(99), g), "opt_state": opt.init(params), "epoch": np.asarray(0)}
    back, meta = mgr.restore(fresh)
    assert meta == {"model": model.name}
    assert jax.tree.structure(back) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(state)):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fingerprint_covers_what_shapes_the_run():
    from jaxmlp.training import run_fingerprint

    tr, va = _sets()
    model = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5)
    base = TrainConfig(loss="forces", schedule="constant")
    fp = run_fingerprint(model, tr, va, base)
    same = lambda **kw: run_fingerprint(model, tr, va, base.replace(**kw)) == fp  # noqa: E731
    # free to change on resume
    assert same(epochs=7) and same(patience=3) and same(time_limit=5.0) and same(keep_checkpoints=5)
    assert same(delta=0.02, a=3)  # Taylor settings only matter for loss="taylor"
    assert run_fingerprint(model, tr, va, base.replace(optimiser="lbfgs")) == run_fingerprint(
        model, tr, va, base.replace(optimiser="lbfgs", learning_rate=0.5))  # L-BFGS line-searches
    # part of the run
    for kw in (dict(seed=1), dict(batch_size=3), dict(shuffle=False), dict(kappa=0.2), dict(variant="mae"),
               dict(learning_rate=0.5), dict(warmup_epochs=1), dict(grad_clip=1.0), dict(schedule="exponential")):
        assert not same(**kw), kw
    cos = base.replace(schedule="cosine")
    assert run_fingerprint(model, tr, va, cos) != run_fingerprint(model, tr, va, cos.replace(epochs=7))
    tay = base.replace(loss="taylor")
    assert run_fingerprint(model, tr, va, tay) != run_fingerprint(model, tr, va, tay.replace(delta=0.02))
    # the data digest sees a change of one coordinate by 1e-12 Å, and nothing else changes it
    frames = [tr[k] for k in range(len(tr))]
    assert run_fingerprint(model, data.Dataset.from_atoms(frames), va, base) == fp
    frames[3].positions[2, 1] += 1e-12
    moved = run_fingerprint(model, data.Dataset.from_atoms(frames), va, base)
    assert moved["train_data"] != fp["train_data"] and {**moved, "train_data": None} == {**fp, "train_data": None}
