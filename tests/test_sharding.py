"""Data-parallel training (and evaluation) over 2 (virtual CPU) devices equals 1 device, and resumes exactly."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("jaxmlp.data")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import jax
    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, {tests!r})
    from helpers import morse_frames
    from jaxmlp.data import Dataset
    from jaxmlp.models import morse
    from jaxmlp.training import TrainConfig, train, device_batches, data_mesh, evaluate
    from jax.sharding import NamedSharding, PartitionSpec as P

    frames = morse_frames([4 + s % 3 for s in range(12)])
    ds = Dataset.from_atoms(frames).with_weight([1.0 + (k % 4) for k in range(12)])
    tr, va = ds[:9], ds[9:]  # 9 = 2 full global batches of 4 + a last one of 1
    model = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5)
    cfg = TrainConfig(loss="forces", epochs=3, batch_size=4, learning_rate=0.01, seed=1)
    params, hist = train(model, tr, va, cfg)
    mesh = data_mesh()
    per = 4 // mesh.devices.size
    b = next(device_batches(tr, 3.5, tr.buckets(3.5, per), mesh.devices.size, per, True, 0))
    arr = jax.device_put(b.energy, NamedSharding(mesh, P("data")))

    class Stop(Exception):
        pass

    def stop(epoch, record):
        if epoch == 2:
            raise Stop

    run = cfg.replace(checkpoint_dir={ckpt!r})
    try:
        train(model, tr, va, run, callback=stop)
    except Stop:
        pass
    ran = []
    resumed, rhist = train(model, tr, va, run, callback=lambda epoch, record: ran.append(epoch))
    # 11 structures in sub-batches of 4: 3 real sub-batches, the second step on 2 devices is half filler
    par = evaluate(model, params, ds[:11], batch_size=8, return_predictions=True, parallel=True)
    ser = evaluate(model, params, ds[:11], batch_size=3, return_predictions=True)
    ev = {{"n": par["n_structures"], "same_refs": bool(np.array_equal(par["energy_ref"], ser["energy_ref"])),
          "de": float(np.max(np.abs(par["energy_pred"] - ser["energy_pred"]))),
          "df": float(np.max(np.abs(par["forces_pred"] - ser["forces_pred"]))),
          "rmse": [par["force_rmse"], ser["force_rmse"]]}}
    print(json.dumps({{"evaluate": ev, "n_devices": jax.device_count(), "shards": len(arr.addressable_shards),
                       "params": {{k: float(v) for k, v in params.items()}},
                       "resumed_params": {{k: float(v) for k, v in resumed.items()}},
                       "resumed_train_loss": [h["train_loss"] for h in rhist], "resumed_epochs": ran,
                       "train_loss": [h["train_loss"] for h in hist], "valid_loss": [h["valid_loss"] for h in hist]}}))
    """
)


def _run(n_devices, ckpt):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n_devices}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    tests = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=tests, ckpt=str(ckpt))], env=env,
                         capture_output=True, text=True, timeout=600, cwd=os.path.dirname(tests))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_devices_match_one(tmp_path):
    one, two = _run(1, tmp_path / "one"), _run(2, tmp_path / "two")
    assert one["n_devices"] == 1 and two["n_devices"] == 2
    assert two["shards"] == 2  # the leading (device) axis really is split
    for k, v in one["params"].items():
        assert two["params"][k] == pytest.approx(v, rel=1e-10, abs=1e-12), k
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=1e-10)
    np.testing.assert_allclose(two["valid_loss"], one["valid_loss"], rtol=1e-10)
    for run in (one, two):  # data-parallel evaluate = serial evaluate, no structure lost or repeated
        ev = run["evaluate"]
        assert ev["n"] == 11 and ev["same_refs"]
        assert ev["de"] < 1e-12 and ev["df"] < 1e-12
        assert ev["rmse"][0] == pytest.approx(ev["rmse"][1], rel=1e-12)
    # interrupted after epoch 2 and resumed: exactly the uninterrupted run, on 1 and on 2 devices
    for run in (one, two):
        assert run["resumed_epochs"] == [3]  # it continued from the checkpoint, not from scratch
        assert run["resumed_params"] == run["params"]
        assert run["resumed_train_loss"] == run["train_loss"]


LARGE = textwrap.dedent(
    """
    import json
    import numpy as np
    import jax
    jax.config.update("jax_enable_x64", True)
    from jaxmlp import observables
    from jaxmlp.bench.factory import cu_cell, make_model
    from jaxmlp.graph import atoms_to_graph
    from jaxmlp.training.distributed import shard_structure, sharded_energy_and_forces

    out = {{}}
    for kind, n in [({kind!r}, {n})]:
        atoms = cu_cell(n)
        model = make_model(kind, [29], 4.0, structures=[atoms])
        g = atoms_to_graph(atoms, 4.0, triplets=bool(model.needs_triplets))
        params = model.init(jax.random.PRNGKey(0), jax.tree.map(jax.numpy.asarray, g))
        e0, f0 = jax.jit(lambda p, g: observables.energy_and_forces(model, p, g))(params, jax.tree.map(jax.numpy.asarray, g))
        e1, f1 = sharded_energy_and_forces(model, params, g)
        sg, n_real, _ = shard_structure(model, g)
        off = sg.edges["offsets"]
        out[kind] = {{"n": n_real, "e0": float(e0[0]), "e1": e1, "df": float(np.abs(np.asarray(f0) - f1).max()),
                     "fmax": float(np.abs(f1).max()), "shape": list(f1.shape),
                     "edge_shards": [list(s.data.shape) for s in off.addressable_shards], "edges": list(off.shape),
                     "trip_shards": [list(s.data.shape) for s in sg.globals["triplets"].addressable_shards]
                                    if "triplets" in sg.globals else None}}
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("kind, n", [("hdnnp", 2048), pytest.param("mlace", 256, marks=pytest.mark.slow)])
def test_one_large_structure_sharded_over_two_devices(kind, n):
    """Atoms, edges (and triplets) of one cell split over 2 devices: energy and forces as unsharded."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    tests = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", LARGE.format(kind=kind, n=n)], env=env, capture_output=True, text=True, timeout=600,
                         cwd=os.path.dirname(tests))
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    r = res[kind]
    assert r["n"] == n and r["shape"] == [n, 3]
    assert r["e1"] == pytest.approx(r["e0"], rel=1e-12, abs=1e-12)
    assert r["df"] <= 1e-10 * r["fmax"] and r["fmax"] > 1e-5  # forces of a rattled cell, not zeros
    e_total = r["edges"][0]
    assert r["edge_shards"] == [[e_total // 2, 3], [e_total // 2, 3]]  # the edge axis really is split
    if kind == "hdnnp":  # angular symmetry functions: the triplet axis is split too
        assert [s[0] for s in r["trip_shards"]] == [r["trip_shards"][0][0]] * 2
