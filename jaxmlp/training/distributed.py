"""Start JAX's multi-process runtime for training across processes and hosts.

Every process of a run calls :func:`initialize` once, before any other JAX
computation, then :func:`jaxmlp.training.train` as usual: the data mesh spans
the devices of all processes, every process walks the same shuffled epoch
order and feeds only its own devices, and checkpoints are written
collectively.

Where the settings come from, first match wins:

1. the arguments of :func:`initialize`;
2. the environment set by :mod:`jaxmlp.training.launch`
   (``JAXMLP_COORDINATOR_ADDRESS``, ``JAXMLP_NUM_PROCESSES``,
   ``JAXMLP_PROCESS_ID``);
3. JAX's cluster auto-detection (SLURM, Open MPI, TPU pods), i.e. a plain
   ``jax.distributed.initialize()``.

On the CPU platform the cross-process collectives are gloo's
(``jax_cpu_collectives_implementation="gloo"``); without them a CPU
all-reduce across processes is not implemented.

Failure of a peer: when a process dies, the collectives of the others fail
(gloo reports the broken connection) or, at the latest after
``heartbeat_timeout`` seconds without heartbeats, the coordination service
stops the surviving processes with an error.  A run therefore never hangs
forever on a lost process; restart it and it resumes from the last
checkpoint (see ``TrainConfig.checkpoint_dir``).
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

__all__ = ["initialize", "is_initialized", "shard_structure", "sharded_energy_and_forces", "ENV_COORDINATOR", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID"]

ENV_COORDINATOR = "JAXMLP_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAXMLP_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXMLP_PROCESS_ID"

_STATE = {"initialized": False}


def is_initialized() -> bool:
    """True after a successful :func:`initialize` in this process."""
    return _STATE["initialized"]


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, heartbeat_timeout: int = 100, initialization_timeout: int = 300,
               shutdown_timeout: int = 60) -> tuple[int, int]:
    """Join this process to a multi-process JAX run; return ``(process_index, process_count)``.

    Parameters
    ----------
    coordinator_address : str, optional
        ``host:port`` of process 0's coordinator (default: the launcher's
        environment, else auto-detection).
    num_processes, process_id : int, optional
        Size of the run and this process's rank ``0 … num_processes − 1``.
    heartbeat_timeout : int
        Seconds without heartbeats after which a process counts as dead and
        the others are stopped with an error (JAX's default: 100).
    initialization_timeout : int
        Seconds to wait for all processes to connect.
    shutdown_timeout : int
        Seconds a finishing process waits for the others at shutdown.

    Raises
    ------
    ValueError
        Inconsistent settings (a rank outside ``0 … num_processes − 1``,
        only some of address/count/rank given, non-integer environment).
    RuntimeError
        Called a second time, or after JAX computations already started
        in this process (JAX's own error, re-raised with advice).
    """
    if _STATE["initialized"]:
        raise RuntimeError("jaxmlp.training.distributed.initialize was already called in this process")
    address = coordinator_address if coordinator_address is not None else os.environ.get(ENV_COORDINATOR) or None
    count = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    rank = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    given = [v is not None for v in (address, count, rank)]
    if any(given) and not all(given):
        raise ValueError(
            "give all of coordinator_address, num_processes and process_id (or the environment variables "
            f"{ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}) or none of them for auto-detection; got "
            f"coordinator_address={address!r}, num_processes={count!r}, process_id={rank!r}"
        )
    for name, value in (("heartbeat_timeout", heartbeat_timeout), ("initialization_timeout", initialization_timeout),
                        ("shutdown_timeout", shutdown_timeout)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer of seconds, got {value!r}")
    if count is not None:
        if count < 1:
            raise ValueError(f"num_processes must be >= 1, got {count}")
        if not 0 <= rank < count:
            raise ValueError(f"process_id must be in 0 … {count - 1}, got {rank}")
    platforms = os.environ.get("JAX_PLATFORMS", "") or str(jax.config.jax_platforms or "")
    if platforms == "" or "cpu" in platforms.split(","):
        # CPU all-reduce across processes needs gloo; harmless for GPU/TPU processes
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = dict(heartbeat_timeout_seconds=heartbeat_timeout, initialization_timeout=initialization_timeout,
                  shutdown_timeout_seconds=shutdown_timeout)
    if address is not None:
        kwargs.update(coordinator_address=address, num_processes=count, process_id=rank)
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as exc:
        raise RuntimeError(f"jax.distributed.initialize failed ({exc}); call jaxmlp.training.distributed.initialize "
                           "once per process, before any other JAX computation") from exc
    _STATE["initialized"] = True
    return jax.process_index(), jax.process_count()


# ----------------------------------------------------------------- one large structure over many devices


def _round_to(x: int, d: int) -> int:
    return -(-x // d) * d


@functools.lru_cache(maxsize=8)
def _sharded_step(model, mesh):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxmlp import observables

    repl = NamedSharding(mesh, P())
    return jax.jit(lambda p, g: observables.energy_and_forces(model, p, g), out_shardings=(repl, repl))


def shard_structure(model, atoms, mesh=None):
    """The padded graph of one structure with node, edge and triplet arrays split over ``mesh``.

    Returns ``(graph, n_atoms, mesh)``: ``graph`` holds global arrays whose
    leading node/edge/triplet axis is sharded ``P("data")`` (padded to a
    multiple of the device count; padding is inert), the rest replicated.
    See :func:`sharded_energy_and_forces`.
    """
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxmlp.graph import Buckets, atoms_to_graph, batch_graphs

    from .loop import _put, data_mesh

    mesh = data_mesh() if mesh is None else mesh
    if tuple(mesh.axis_names) != ("data",):
        raise ValueError(f"mesh must be 1-D with axis 'data', got axes {tuple(mesh.axis_names)}")
    graph = atoms if hasattr(atoms, "n_node") else atoms_to_graph(atoms, model.cutoff, triplets=bool(model.needs_triplets))
    if int(np.asarray(graph.n_node).shape[0]) != 1:
        raise ValueError(f"sharded_energy_and_forces takes one structure, got a graph of {len(graph.n_node)} graphs")
    d = int(mesh.devices.size)
    n, e = int(np.sum(graph.n_node)), int(np.sum(graph.n_edge))
    n_trip = int(np.sum(graph.globals["n_triplet"])) if "n_triplet" in graph.globals else 0
    buckets = Buckets(n_node=_round_to(n + 1, d), n_edge=_round_to(e + 2, d), n_graph=2,
                      n_triplet=_round_to(n_trip + 1, d) if "triplets" in graph.globals else 0)
    padded = batch_graphs([graph], buckets)
    split = {buckets.n_node, buckets.n_edge} | ({buckets.n_triplet} if buckets.n_triplet else set())
    rows, repl = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    shardings = jax.tree.map(lambda x: rows if np.ndim(x) and np.shape(x)[0] in split else repl, padded)
    graph_on_mesh = jax.tree.map(lambda x, s: _put(x, s), padded, shardings)
    return graph_on_mesh, n, mesh


def sharded_energy_and_forces(model, params, atoms, mesh=None) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces ``[N, 3]`` (eV/Å) of one large structure with atoms and edges split over devices.

    The structure's graph is padded so that its node, edge and triplet
    arrays divide evenly over the 1-D ``mesh`` (default: all devices,
    :func:`jaxmlp.training.data_mesh`), and every array whose leading axis is
    the node, edge or triplet axis is sharded along it (``P("data")``);
    parameters and cell are replicated.  XLA's SPMD partitioner splits the
    neighbour gathers and per-atom sums accordingly and inserts the
    communication, so the edge- and triplet-sized arrays (the large ones)
    live split over the devices; how much of each intermediate is
    replicated is XLA's choice and not measured here.  Results equal the unsharded
    :func:`jaxmlp.observables.energy_and_forces` up to summation order.

    Parameters
    ----------
    model, params
        Any jaxmlp model and its parameters (dtype as given).
    atoms : ase.Atoms or jraph.GraphsTuple
        One structure, or its unpadded graph (:func:`jaxmlp.graph.atoms_to_graph`
        with ``triplets=model.needs_triplets``).
    mesh : jax.sharding.Mesh, optional
        1-D mesh with axis ``"data"``.

    Returns
    -------
    energy : float
    forces : numpy.ndarray ``[N, 3]``
    """
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from .loop import _put

    graph_on_mesh, n, mesh = shard_structure(model, atoms, mesh)
    repl = NamedSharding(mesh, P())
    energy, forces = _sharded_step(model, mesh)(_put(params, repl), graph_on_mesh)
    return float(np.asarray(energy)[0]), np.asarray(forces)[:n]
