"""Training as several JAX processes on localhost (jax.distributed + gloo CPU collectives) equals one process.

The runs are subprocesses of ``tests/distributed_worker.py`` started by
``python -m jaxmlp.training.launch`` (which is therefore tested too).  One
module fixture runs, in this order:

* K: 2 processes; process 1 kills itself (SIGKILL) after epoch 1 (its
  checkpoint is written) — process 0 must fail with a clear error, quickly;
* A: 1 process (no jax.distributed): the reference run, an interrupted and
  resumed run (1 → 1), and a resume of K's 2-process checkpoint (2 → 1);
* B: 2 processes: the full run, a resume of A's 1-process checkpoint
  (1 → 2), and a resume of K's checkpoint after the crash (2 → 2).

Tolerance: 1 and 2 processes sum the per-device loss numerators in a
different order, so parameters and losses agree to rounding (``rel 1e-10``
after 3 epochs of Adam in float64); runs with the same process count and
resumed runs agree exactly.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("jaxmlp.data")
pytest.importorskip("orbax.checkpoint")

TESTS = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(TESTS, "distributed_worker.py")
REL = 1e-10


def _env():
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["WORKER_HEARTBEAT"] = "5"
    env.pop("XLA_FLAGS", None)
    for k in ("JAXMLP_COORDINATOR_ADDRESS", "JAXMLP_NUM_PROCESSES", "JAXMLP_PROCESS_ID"):
        env.pop(k, None)
    return env


def _run(tmp, name, tasks, n_processes, devices_per_process=None, timeout=150, evaluate=None):
    spec = tmp / f"{name}.json"
    spec.write_text(json.dumps({"out": str(tmp / name), "tasks": tasks, "evaluate": evaluate}))
    if n_processes is None:  # a plain process, no jax.distributed
        cmd = [sys.executable, WORKER, str(spec)]
    else:
        cmd = [sys.executable, "-m", "jaxmlp.training.launch", "-n", str(n_processes), "--timeout", str(timeout),
               "--grace", "60"]
        if devices_per_process:
            cmd += ["--devices-per-process", str(devices_per_process)]
        cmd += ["--", WORKER, str(spec)]
    t0 = time.monotonic()
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout + 60, cwd=os.path.dirname(TESTS))
    elapsed = time.monotonic() - t0
    ranks = []
    for r in range(n_processes or 1):
        path = tmp / f"{name}.{r}.json"
        ranks.append(json.loads(path.read_text()) if path.exists() else None)
    return out, elapsed, ranks


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    ck_kill = str(tmp / "ck_kill")
    kill = _run(tmp, "K", [{"name": "kill", "ckpt": ck_kill, "kill_at": 1, "kill_rank": 1}], 2)
    shutil.copytree(ck_kill, tmp / "ck_kill_for_1")
    a_tasks = [
        {"name": "full"},
        {"name": "stop", "ckpt": str(tmp / "c1"), "stop_at": 2, "copy_to": str(tmp / "c1_at2")},
        {"name": "resume", "ckpt": str(tmp / "c1")},
        {"name": "from2", "ckpt": str(tmp / "ck_kill_for_1")},
    ]
    a_out, _, a = _run(tmp, "A", a_tasks, None)
    assert a_out.returncode == 0, a_out.stderr[-3000:]
    b_tasks = [{"name": "full"}, {"name": "from1", "ckpt": str(tmp / "c1_at2")}, {"name": "after_kill", "ckpt": ck_kill}]
    b_out, _, b = _run(tmp, "B", b_tasks, 2, evaluate=6)
    assert b_out.returncode == 0, b_out.stderr[-3000:]
    return {"kill": kill, "A": a[0], "B": b, "tmp": tmp}


def _close(p, q):
    assert set(p) == set(q)
    for k in p:
        assert q[k] == pytest.approx(p[k], rel=REL), k


def test_two_processes_train_like_one(runs):
    one, (b0, b1) = runs["A"], runs["B"]
    assert (one["process_count"], one["device_count"]) == (1, 1)
    assert (b0["process_count"], b0["device_count"], b0["local_device_count"]) == (2, 2, 1)
    assert b0["full"]["params"] == b1["full"]["params"]  # replicated: bit-identical on every process
    assert b0["full"]["train_loss"] == b1["full"]["train_loss"]
    _close(one["full"]["params"], b0["full"]["params"])
    np.testing.assert_allclose(b0["full"]["train_loss"], one["full"]["train_loss"], rtol=REL)
    np.testing.assert_allclose(b0["full"]["valid_loss"], one["full"]["valid_loss"], rtol=REL)
    loss = one["full"]["train_loss"]
    assert len(loss) == 3 and loss[2] < loss[0]  # it trained


def test_each_structure_once_per_epoch_across_processes(runs):
    one, (b0, b1) = runs["A"], runs["B"]
    for epoch in ("1", "2", "3"):
        assert one["full"]["seen"][epoch] == list(range(9))
        mine, theirs = b0["full"]["seen"][epoch], b1["full"]["seen"][epoch]
        assert sorted(mine + theirs) == list(range(9)), epoch  # every structure exactly once, on one process
        assert len(mine) >= 4 and len(theirs) >= 4  # each process has its half (9 = 4 + 4 + 1)
    assert b0["full"]["seen"]["1"] != b0["full"]["seen"]["2"]  # reshuffled every epoch


def test_checkpoints_move_between_process_counts(runs):
    one, (b0, b1) = runs["A"], runs["B"]
    # 1 → 1: interrupted after epoch 2 and resumed, exactly the uninterrupted run
    assert one["stop"]["epochs_ran"] == [1, 2] and one["resume"]["epochs_ran"] == [3]
    assert one["resume"]["params"] == one["full"]["params"]
    assert one["resume"]["train_loss"] == one["full"]["train_loss"]
    # 1 → 2: the 1-process checkpoint of epoch 2 continued by 2 processes
    assert b0["from1"]["epochs_ran"] == [3]
    _close(one["full"]["params"], b0["from1"]["params"])
    assert b0["from1"]["params"] == b1["from1"]["params"]
    # 2 → 1: the 2-process checkpoint of epoch 1 (written collectively before the crash) continued by 1 process
    assert one["from2"]["epochs_ran"] == [2, 3]
    _close(one["full"]["params"], one["from2"]["params"])
    np.testing.assert_allclose(one["from2"]["train_loss"], one["full"]["train_loss"], rtol=REL)


def test_killed_process_fails_the_others_quickly_and_the_run_resumes_exactly(runs):
    out, elapsed, ranks = runs["kill"]
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert ranks == [None, None]  # neither process finished
    assert "multi-process training failed in epoch 2: process 0 of 2 lost contact with its peers" in text, text[-3000:]
    assert "resumes from epoch 1 in" in text
    assert elapsed < 120  # failure detected, no hang (heartbeat 5 s; startup dominates)
    # restarted with the same settings: continues from the epoch-1 checkpoint, exactly like the uninterrupted run
    b0, b1 = runs["B"]
    assert b0["after_kill"]["epochs_ran"] == [2, 3]
    assert b0["after_kill"]["params"] == b0["full"]["params"]
    assert b1["after_kill"]["params"] == b0["full"]["params"]
    assert b0["after_kill"]["train_loss"] == b0["full"]["train_loss"]


def test_data_parallel_evaluate_across_processes(runs):
    """evaluate(parallel=True) on 2 processes (12 structures, batches of 6 = 3 per device) equals the serial one."""
    from jaxmlp.data import Dataset
    from jaxmlp.models import morse
    from jaxmlp.training import evaluate

    from helpers import morse_frames

    b0, b1 = runs["B"]
    assert b0["evaluate"] == b1["evaluate"]  # gathered: every process has all predictions
    ds = Dataset.from_atoms(morse_frames([4 + s % 3 for s in range(12)]))
    params = {k: np.asarray(v) for k, v in b0["full"]["params"].items()}
    ref = evaluate(morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5), params, ds, batch_size=5, return_predictions=True)
    got = b0["evaluate"]
    assert got["n_structures"] == 12
    np.testing.assert_allclose(got["energy_ref"], ref["energy_ref"], rtol=0, atol=0)  # same order, no duplicates
    np.testing.assert_allclose(got["energy_pred"], ref["energy_pred"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["forces_pred"], ref["forces_pred"], rtol=1e-12, atol=1e-12)
    assert got["force_rmse"] == pytest.approx(ref["force_rmse"], rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("n_processes, devices_per_process", [(4, 1), (2, 2)])
def test_more_processes_and_devices(runs, tmp_path, n_processes, devices_per_process):
    out, _, ranks = _run(tmp_path, "M", [{"name": "full"}], n_processes, devices_per_process, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    one = runs["A"]
    assert ranks[0]["device_count"] == 4 and ranks[0]["local_device_count"] == devices_per_process
    for r in ranks:
        assert r["full"]["params"] == ranks[0]["full"]["params"]
    _close(one["full"]["params"], ranks[0]["full"]["params"])
    np.testing.assert_allclose(ranks[0]["full"]["train_loss"], one["full"]["train_loss"], rtol=REL)
    for epoch in ("1", "2", "3"):
        assert sorted(sum((r["full"]["seen"][epoch] for r in ranks), [])) == list(range(9))


# ----------------------------------------------------------------- launcher and initialize, no JAX run


def test_launcher_reports_the_failing_process_and_stops_the_others(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        "import os, sys, time\n"
        "rank = int(os.environ['JAXMLP_PROCESS_ID'])\n"
        "assert os.environ['JAXMLP_NUM_PROCESSES'] == '3' and os.environ['JAXMLP_COORDINATOR_ADDRESS'].startswith('127.0.0.1:')\n"
        "open(os.path.join(sys.argv[1], f'r{rank}'), 'w').write(os.environ['XLA_FLAGS'])\n"
        "if rank == 1:\n    sys.exit(3)\n"
        "time.sleep(0 if rank == 0 else 600)\n"
    )
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "jaxmlp.training.launch", "-n", "3", "--grace", "1",
                          "--devices-per-process", "2", "--", str(script), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr
    assert time.monotonic() - t0 < 60  # rank 2 (sleeping 600 s) was killed after the grace period
    assert "exited with status 3" in out.stderr
    for r in range(3):
        assert "--xla_force_host_platform_device_count=2" in (tmp_path / f"r{r}").read_text()


def test_launcher_and_initialize_reject_bad_settings(monkeypatch):
    from jaxmlp.training import distributed
    from jaxmlp.training.launch import launch, main

    with pytest.raises(ValueError, match="no script"):
        launch([], 2)
    with pytest.raises(ValueError, match="num_processes"):
        launch(["x.py"], 0)
    with pytest.raises(SystemExit):
        main(["-n", "2"])
    for k in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ValueError, match="all of coordinator_address, num_processes and process_id"):
        distributed.initialize("127.0.0.1:1234", num_processes=2)
    with pytest.raises(ValueError, match=r"process_id must be in 0 … 1, got 2"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "two")
    with pytest.raises(ValueError, match="JAXMLP_NUM_PROCESSES must be an integer"):
        distributed.initialize()
    assert not distributed.is_initialized()
