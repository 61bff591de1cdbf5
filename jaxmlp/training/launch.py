"""Run one training script as N cooperating processes on this machine.

Usage::

    python -m jaxmlp.training.launch --num-processes 2 -- train.py --my-arg 1
    python -m jaxmlp.training.launch -n 4 --devices-per-process 2 -- -m mypackage.train

Everything after ``--`` is run with this Python interpreter, once per
process, with the environment that :func:`jaxmlp.training.distributed.initialize`
reads (``JAXMLP_COORDINATOR_ADDRESS=127.0.0.1:<free port>``,
``JAXMLP_NUM_PROCESSES``, ``JAXMLP_PROCESS_ID``).  The script calls
``jaxmlp.training.distributed.initialize()`` before any other JAX work.

If a process fails, the others get ``--grace`` seconds to notice and stop on
their own (their error messages are the useful ones); then they are killed.
The launcher's exit status is 0 when all processes succeed, else that of the
first process that failed (``128 + signal`` for a signal), or 124 after
``--timeout``.

On a cluster, do not use this launcher: start one process per task with the
scheduler (``srun python train.py`` under SLURM) and let
``initialize()`` auto-detect the run (see ``docs/distributed.md``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

from .distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID

__all__ = ["free_port", "launch", "main"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (bound to port 0 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _status(code: int) -> int:
    return 128 - code if code < 0 else code


def launch(command: list[str], num_processes: int, *, host: str = "127.0.0.1", port: int | None = None,
           devices_per_process: int | None = None, timeout: float | None = None, grace: float = 30.0,
           env: dict | None = None) -> int:
    """Start ``python *command`` ``num_processes`` times as one JAX run; return the exit status.

    Parameters
    ----------
    command : list of str
        Script (or ``-m module``) and its arguments.
    num_processes : int
    host, port
        Coordinator address (default ``127.0.0.1`` and a free port).
    devices_per_process : int, optional
        Forced CPU devices per process (``--xla_force_host_platform_device_count``).
    timeout : float, optional
        Seconds after which all processes are killed (status 124).
    grace : float
        Seconds the others may run after one process failed.
    env : dict, optional
        Base environment (default ``os.environ``).
    """
    if not command:
        raise ValueError("no script given: put it after '--', e.g. launch -n 2 -- train.py")
    if not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes must be a positive integer, got {num_processes!r}")
    if devices_per_process is not None and (not isinstance(devices_per_process, int) or devices_per_process < 1):
        raise ValueError(f"devices_per_process must be a positive integer, got {devices_per_process!r}")
    port = free_port(host) if port is None else int(port)
    base = dict(os.environ if env is None else env)
    if devices_per_process is not None:
        flags = base.get("XLA_FLAGS", "")
        base["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices_per_process}".strip()
    procs = []
    for rank in range(num_processes):
        child = dict(base)
        child.update({ENV_COORDINATOR: f"{host}:{port}", ENV_NUM_PROCESSES: str(num_processes), ENV_PROCESS_ID: str(rank)})
        procs.append(subprocess.Popen([sys.executable, *command], env=child))
    start = time.monotonic()
    failed_at, status = None, 0
    try:
        while True:
            codes = [p.poll() for p in procs]
            if status == 0:
                bad = [c for c in codes if c not in (None, 0)]
                if bad:
                    status, failed_at = _status(bad[0]), time.monotonic()
                    print(f"jaxmlp.training.launch: a process exited with status {status}; waiting up to {grace:g} s "
                          "for the others", file=sys.stderr, flush=True)
            if all(c is not None for c in codes):
                return status
            now = time.monotonic()
            if failed_at is not None and now - failed_at > grace:
                print("jaxmlp.training.launch: killing the remaining processes", file=sys.stderr, flush=True)
                return status
            if timeout is not None and now - start > timeout:
                print(f"jaxmlp.training.launch: timeout after {timeout:g} s, killing all processes", file=sys.stderr,
                      flush=True)
                return 124
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" in argv:
        k = argv.index("--")
        own, command = argv[:k], argv[k + 1:]
    else:
        own, command = argv, []
    ap = argparse.ArgumentParser(prog="python -m jaxmlp.training.launch",
                                 description="Run a training script as N local processes of one JAX run.",
                                 epilog="Everything after '--' is the script and its arguments.")
    ap.add_argument("-n", "--num-processes", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1", help="coordinator host (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=None, help="coordinator port (default: a free one)")
    ap.add_argument("--devices-per-process", type=int, default=None, help="forced CPU devices per process")
    ap.add_argument("--timeout", type=float, default=None, help="kill everything after this many seconds")
    ap.add_argument("--grace", type=float, default=30.0, help="seconds the others may run after one failed")
    args = ap.parse_args(own)
    if not command:
        ap.error("no script given: put it after '--'")
    if args.num_processes < 1:
        ap.error(f"--num-processes must be >= 1, got {args.num_processes}")
    return launch(command, args.num_processes, host=args.host, port=args.port,
                  devices_per_process=args.devices_per_process, timeout=args.timeout, grace=args.grace)


if __name__ == "__main__":
    sys.exit(main())
