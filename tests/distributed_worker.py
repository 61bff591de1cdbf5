"""One process of the multi-process training tests (run by tests/test_distributed.py, not collected by pytest).

Usage: ``python tests/distributed_worker.py SPEC.json``.  Under
``jaxmlp.training.launch`` it joins the run (``distributed.initialize``);
without the launcher's environment it is a plain single process.

SPEC: ``{"out": path prefix, "evaluate": batch size (optional), "tasks": [{"name", "ckpt", "stop_at", "copy_to", "kill_at", "kill_rank", "epochs"}]}``.
Each task trains the same Morse model on the same data; the results of
process ``r`` go to ``<out>.<r>.json``: parameters, loss histories, the
epochs that actually ran, and per epoch the training structures whose
sub-batches were placed on *this process's* devices (read back from the
addressable shards of the global batch arrays).
"""

import json
import os
import shutil
import signal
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jaxmlp.training import distributed  # noqa: E402

if os.environ.get(distributed.ENV_NUM_PROCESSES):
    distributed.initialize(heartbeat_timeout=int(os.environ.get("WORKER_HEARTBEAT", "10")), shutdown_timeout=10)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from jax.experimental import multihost_utils  # noqa: E402

from jaxmlp.data import Dataset  # noqa: E402
from jaxmlp.models import morse  # noqa: E402
from jaxmlp.training import TrainConfig, evaluate, train  # noqa: E402
from jaxmlp.training import loop as _loop  # noqa: E402

from helpers import morse_frames  # noqa: E402


class Stop(Exception):
    pass


def main(spec_path):
    with open(spec_path) as fh:
        spec = json.load(fh)
    frames = morse_frames([4 + s % 3 for s in range(12)])
    ds = Dataset.from_atoms(frames).with_weight([1.0 + (k % 4) for k in range(12)])
    tr, va = ds[:9], ds[9:]  # 9 = 2 full global batches of 4 + one of 1
    by_energy = {float(e): k for k, e in enumerate(tr.energy)}
    assert len(by_energy) == len(tr)
    model = morse(D=0.7, alpha=1.3, r0=1.45, cutoff=3.5)
    rank = jax.process_index()

    seen = []  # training structures placed on this process's devices, current epoch
    put = _loop._put

    def recording_put(tree, sharding):
        out = put(tree, sharding)
        if hasattr(out, "energy") and hasattr(out, "weight"):
            for e_shard, w_shard in zip(out.energy.addressable_shards, out.weight.addressable_shards):
                e, w = np.asarray(e_shard.data).ravel(), np.asarray(w_shard.data).ravel()
                seen.extend(by_energy[float(x)] for x, wt in zip(e, w) if wt > 0 and float(x) in by_energy)
        return out

    _loop._put = recording_put
    results = {"process_count": jax.process_count(), "device_count": jax.device_count(),
               "local_device_count": jax.local_device_count()}
    for task in spec["tasks"]:
        cfg = TrainConfig(loss="forces", epochs=task.get("epochs", 3), batch_size=4, learning_rate=0.01, seed=1,
                          checkpoint_dir=task.get("ckpt"), keep_checkpoints=3)
        ran, per_epoch = [], {}

        def callback(epoch, record, task=task, ran=ran, per_epoch=per_epoch):
            ran.append(epoch)
            per_epoch[epoch] = sorted(seen)
            seen.clear()
            if task.get("kill_at") == epoch and task.get("kill_rank") == rank:
                os.kill(os.getpid(), signal.SIGKILL)
            if task.get("stop_at") == epoch:
                raise Stop

        seen.clear()
        try:
            params, hist = train(model, tr, va, cfg, callback=callback)
            out = {"params": {k: float(v) for k, v in params.items()},
                   "train_loss": [h["train_loss"] for h in hist], "valid_loss": [h["valid_loss"] for h in hist]}
        except Stop:
            out = {"stopped": True}
            if task.get("copy_to") and rank == 0:
                shutil.copytree(task["ckpt"], task["copy_to"])
            if jax.process_count() > 1:
                multihost_utils.sync_global_devices(f"copied {task['name']}")
        out.update(epochs_ran=ran, seen=per_epoch)
        results[task["name"]] = out
    if spec.get("evaluate"):  # data-parallel evaluation of all 12 structures with the parameters of task "full"
        params = {k: np.asarray(v) for k, v in results["full"]["params"].items()}
        ev = evaluate(model, params, ds, batch_size=spec["evaluate"], return_predictions=True, parallel=True)
        results["evaluate"] = {"energy_pred": ev["energy_pred"].tolist(), "forces_pred": ev["forces_pred"].tolist(),
                               "energy_ref": ev["energy_ref"].tolist(), "force_rmse": ev["force_rmse"],
                               "n_structures": ev["n_structures"]}
    with open(f"{spec['out']}.{rank}.json", "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main(sys.argv[1])
