"""Jitted molecular dynamics of jaxmlp models on jax-md's integrators.

The integrators and thermostats are jax-md's (``simulate.nve`` velocity
Verlet, ``simulate.nvt_langevin`` BAOAB, ``simulate.nvt_nose_hoover``
Nosé–Hoover chains); jaxmlp supplies the energy
``E(R) = jaxmlp.energy(model, params, graph with positions R)`` and the
neighbour graph.

Neighbour graph
---------------
The graph is built on the host (vesin, :func:`jaxmlp.atoms_to_graph`) with
radius ``cutoff + skin`` and padded to buckets that only grow, geometrically
(:func:`jaxmlp.graph.grow_buckets`), so a rebuilt list that still fits the
bucket re-uses the compiled program.  ``steps_per_call`` steps run inside one
jitted :func:`jax.lax.scan`; after every step the largest displacement since
the graph was built is checked, and a step that moved an atom by more than
``skin / 2`` is *discarded* (the state before it is kept, random key
included) and the scan idles to its end.  The host then rebuilds the graph
from the kept positions and repeats that step, so every force is evaluated on
a complete neighbour list: the trajectory does not depend on when rebuilds
happen beyond round-off (tested against a rebuild after every step and the
ASE calculator loop).  A list larger than its bucket grows the bucket and
recompiles; nothing is truncated (:func:`jaxmlp.graph.batch_graphs` raises).

Units at the interface: Å, eV, amu, fs, K; :meth:`MDEngine.momenta` and
:meth:`MDEngine.atoms` give ASE momenta.  Inside, time is measured in fs
(masses in eV·fs²/Å²) because jax-md rounds the time step to float32: 1, 2,
0.5 fs are exact there, so the trajectory agrees with ASE's
``VelocityVerlet`` to round-off.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ase import units

from ..graph import atoms_to_graph, batch_graphs, grow_buckets
from ..models.base import check_elements
from ..observables import energy as _graph_energy
from ..observables import per_atom_energies as _per_atom_energies
from ..utils import atomic_write, cast_floats

__all__ = ["ENSEMBLES", "MDConfig", "MDEngine", "MDState", "MDUnstableError"]

ENSEMBLES = ("nve", "langevin", "nose_hoover")


class MDUnstableError(RuntimeError):
    """The dynamics cannot continue: a single step moved an atom farther than ``skin / 2``.

    ``step`` is the last completed step (the state is left there).
    """

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class MDConfig:
    """Settings of an MD run (ASE units: fs, K).

    Parameters
    ----------
    ensemble : {"nve", "langevin", "nose_hoover"}
    timestep : float
        Time step in fs.
    temperature : float
        Thermostat target (K) for ``langevin``/``nose_hoover``; also the
        Maxwell–Boltzmann temperature of the initial velocities when the
        atoms carry no momenta and ``init_temperature`` is ``None``.
    friction : float
        Langevin friction γ in 1/fs.
    tau : float
        Nosé–Hoover chain time constant in fs (default ``100·timestep``).
    chain_length : int
        Number of thermostats in the Nosé–Hoover chain.
    skin : float
        Neighbour-list skin in Å; the graph is rebuilt when an atom moved more
        than ``skin / 2`` since the last build.
    steps_per_call : int
        Steps inside one jitted ``lax.scan`` (a multiple of ``log_every``).
    log_every : int
        Potential energy, kinetic energy and temperature are recorded (and a
        frame may be written) every ``log_every`` steps.
    init_temperature : float or None
        Temperature of the initial Maxwell–Boltzmann velocities in K (centre
        of mass momentum removed); ``None`` uses the atoms' momenta if they
        have any, else ``temperature``.
    seed : int
        Seed of the velocity draw and the Langevin noise.
    dtype : {"float64", "float32"}
        Precision of positions, forces and parameters in the jitted step.
    energy_dtype : {None, "float64", "float32"}
        Precision of the potential-energy sum.  ``None``: the model's own sum
        in ``dtype``.  ``"float64"`` with ``dtype="float32"``: the float32
        per-atom energies are cast to float64 before they are summed (mixed
        precision; the forces are the float32 gradient of that sum, the logged
        energies lose only the per-atom float32 rounding, not the rounding of
        a float32 running sum of ~10⁴ eV totals).  Needs
        ``jax_enable_x64``.
    """

    ensemble: str = "nve"
    timestep: float = 1.0
    temperature: float = 300.0
    friction: float = 0.01
    tau: float | None = None
    chain_length: int = 3
    skin: float = 1.0
    steps_per_call: int = 50
    log_every: int = 10
    init_temperature: float | None = None
    seed: int = 0
    dtype: str = "float64"
    energy_dtype: str | None = None

    def __post_init__(self):
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLES)}, got {self.ensemble!r}")
        for name in ("timestep", "friction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"MDConfig.{name} must be a positive number, got {v!r}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"MDConfig.temperature must be >= 0 K, got {self.temperature!r}")
        if self.ensemble != "nve" and self.temperature <= 0:
            raise ValueError(f"the {self.ensemble} thermostat needs temperature > 0 K, got {self.temperature}")
        if self.tau is not None and not self.tau > 0:
            raise ValueError(f"MDConfig.tau must be > 0 fs, got {self.tau!r}")
        if self.skin < 0:
            raise ValueError(f"MDConfig.skin must be >= 0 Å, got {self.skin!r}")
        for name in ("steps_per_call", "log_every", "chain_length"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"MDConfig.{name} must be a positive integer, got {v!r}")
        if self.steps_per_call % self.log_every:
            raise ValueError(f"MDConfig.steps_per_call ({self.steps_per_call}) must be a multiple of log_every ({self.log_every})")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"MDConfig.dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if self.energy_dtype not in (None, "float64", "float32"):
            raise ValueError(f"MDConfig.energy_dtype must be None, 'float64' or 'float32', got {self.energy_dtype!r}")
        if self.energy_dtype == "float32" and self.dtype == "float64":
            raise ValueError("MDConfig.energy_dtype='float32' with dtype='float64' would lower the precision of the energy sum")

    @property
    def kT(self) -> float:
        """Thermostat temperature in eV."""
        return units.kB * self.temperature


@dataclass
class MDState:
    """Host-side record of a run: the jax-md state plus bookkeeping."""

    sim: Any  # jax-md state dataclass (position, momentum, force, mass, …)
    step: int = 0
    ref_positions: np.ndarray | None = None  # positions at the last graph build (Å)
    n_builds: int = 0
    log: dict = field(default_factory=lambda: {"step": [], "time_fs": [], "epot": [], "ekin": [], "temperature": []})


def _tree_where(flag, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(flag, a, b), new, old)


class MDEngine:
    """Run MD of ``atoms`` with ``(model, params)``.

    Parameters
    ----------
    model, params : jaxmlp model and its parameters
    atoms : ase.Atoms
        Start structure (molecule or periodic cell of any shape; mixed pbc
        allowed).  Masses from ``atoms.get_masses()``; momenta from the atoms
        if set (see :class:`MDConfig`).  Not modified.
    config : MDConfig

    Examples
    --------
    >>> eng = MDEngine(model, params, atoms, MDConfig("langevin", timestep=1.0, temperature=300))
    >>> eng.run(1000, trajectory="md.extxyz", write_every=10)
    >>> eng.atoms()  # current structure, with momenta
    """

    def __init__(self, model, params, atoms, config: MDConfig | None = None):
        from ase import Atoms
        from jax_md import simulate, space

        if not isinstance(atoms, Atoms):
            raise TypeError(f"MDEngine expects an ase.Atoms, got {type(atoms).__name__}")
        self.config = config = MDConfig() if config is None else config
        if not isinstance(config, MDConfig):
            raise TypeError(f"config must be an MDConfig, got {type(config).__name__}")
        check_elements(model, atoms.numbers)
        self.model = model
        self.dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
        self.params = cast_floats(params, self.dtype)
        self._template = atoms.copy()
        self._template.calc = None
        self.n_atoms = len(atoms)
        self.masses = np.asarray(atoms.get_masses(), np.float64)
        self.buckets = None
        self._graph = None
        self._fresh = True  # no step taken since the last graph build

        _, shift = space.free()  # positions stay unwrapped between builds: the integer offsets stay valid
        # Internal time unit: 1 fs (masses in eV·fs²/Å², momenta in eV·fs/Å).
        # jax-md rounds the time step to float32; 1, 2, 0.5 fs … are exact
        # there, whereas dt·ase.units.fs would be perturbed at 1e-8.
        dt = config.timestep
        n = self.n_atoms
        model_, params_ = self.model, self.params
        accumulate64 = config.energy_dtype == "float64" and config.dtype == "float32"
        if accumulate64 and not jax.config.jax_enable_x64:
            raise ValueError("MDConfig.energy_dtype='float64' needs jax_enable_x64 (jax.config.update('jax_enable_x64', True))")
        self.energy_dtype = jnp.float64 if accumulate64 else self.dtype

        def energy_fn(R, graph=None, **unused):
            pos = jnp.concatenate([R, graph.nodes["positions"][n:]], axis=0)
            g = graph._replace(nodes={**graph.nodes, "positions": pos})
            if accumulate64:
                # float32 per-atom energies (padding atoms exactly 0) summed in float64
                return jnp.sum(_per_atom_energies(model_, params_, g).astype(jnp.float64))
            return _graph_energy(model_, params_, g)[0]

        self._energy_fn = energy_fn
        self._energy_jit = jax.jit(energy_fn)
        if config.ensemble == "nve":
            init, apply = simulate.nve(energy_fn, shift, dt)
        elif config.ensemble == "langevin":
            init, apply = simulate.nvt_langevin(energy_fn, shift, dt, kT=config.kT, gamma=config.friction)
        else:
            tau = 100.0 * config.timestep if config.tau is None else config.tau
            init, apply = simulate.nvt_nose_hoover(energy_fn, shift, dt, kT=config.kT, chain_length=config.chain_length, tau=tau)
        self._init, self._apply = init, apply
        self._chunk = jax.jit(self._make_chunk(apply))
        self.state = self._initial_state(atoms)

    # -- graph ---------------------------------------------------------------
    def _build(self, positions: np.ndarray):
        """Wrap ``positions`` into the cell, build and pad the graph; returns the wrapped positions."""
        atoms = self._template.copy()
        atoms.positions = positions
        if atoms.pbc.any():
            atoms.wrap(eps=0.0)
        # the model's triplet filter (HDNNP) keeps every triplet within its bounds + skin: exact until the next
        # rebuild, which happens before any atom has moved by skin / 2
        graph = atoms_to_graph(atoms, self.model.cutoff + self.config.skin, triplets=self.model.needs_triplets,
                               triplet_filter=self.model.extras.get("triplet_filter"))
        self.buckets = grow_buckets([graph], self.buckets)._replace(n_node=self.n_atoms + 1)
        padded = batch_graphs([graph], self.buckets)
        self._graph = cast_floats(jax.tree_util.tree_map(jnp.asarray, padded), self.dtype)
        return np.asarray(atoms.positions)

    # -- state ---------------------------------------------------------------
    def _initial_state(self, atoms) -> MDState:
        cfg = self.config
        positions = self._build(np.asarray(atoms.positions, np.float64))
        n_builds = 1
        momenta = None
        if cfg.init_temperature is None and np.any(atoms.get_momenta() != 0):
            momenta = np.asarray(atoms.get_momenta(), np.float64)
        else:
            t0 = cfg.temperature if cfg.init_temperature is None else cfg.init_temperature
            rng = np.random.default_rng(cfg.seed)
            p = rng.standard_normal((self.n_atoms, 3)) * np.sqrt(self.masses * units.kB * t0)[:, None]
            if self.n_atoms > 1:
                p -= self.masses[:, None] * (p.sum(0) / self.masses.sum())
            momenta = p
        key = jax.random.PRNGKey(cfg.seed)
        mass = jnp.asarray(self.masses / units.fs**2, self.dtype)
        R = jnp.asarray(positions, self.dtype)
        sim = self._init(key, R, mass=mass, momenta=jnp.asarray(momenta / units.fs, self.dtype), graph=self._graph, **self._init_kwargs())
        return MDState(sim=sim, step=0, ref_positions=positions, n_builds=n_builds)

    def _init_kwargs(self):
        return {"kT": self.config.kT} if self.config.ensemble == "nve" else {}

    def _make_chunk(self, apply):
        cfg = self.config
        half_skin2 = (0.5 * cfg.skin) ** 2
        energy_fn = self._energy_fn

        def chunk(sim, graph, ref, step0, n_todo):
            """Up to ``n_todo`` steps from absolute step ``step0``; stops (keeping the last good state) when the graph goes stale.

            Returns the state, the number of steps done, the stale flag and per
            scan step ``(absolute step, E_pot, E_kin, logged)``; ``E_pot`` is
            evaluated only on logged steps (every ``log_every``-th).
            """

            def body(carry, i):
                sim, done, stale = carry
                active = (i < n_todo) & jnp.logical_not(stale)

                def step(s):
                    new = apply(s, graph=graph)
                    d2 = jnp.max(jnp.sum((new.position - ref) ** 2, axis=1))
                    ok = d2 <= half_skin2
                    return _tree_where(ok, new, s), jnp.logical_not(ok)

                sim, went_stale = jax.lax.cond(active, step, lambda s: (s, jnp.array(False)), sim)
                advanced = active & jnp.logical_not(went_stale)
                done = done + advanced.astype(jnp.int32)
                k = step0 + done
                log_now = advanced & (k % cfg.log_every == 0)
                epot = jax.lax.cond(log_now, lambda s: energy_fn(s.position, graph=graph).astype(jnp.float64), lambda s: jnp.array(jnp.nan, jnp.float64), sim)
                ekin = 0.5 * jnp.sum(sim.momentum.astype(jnp.float64) ** 2 / sim.mass.astype(jnp.float64))
                return (sim, done, stale | went_stale), (k, epot, ekin, log_now)

            (sim, done, stale), rec = jax.lax.scan(body, (sim, jnp.array(0, jnp.int32), jnp.array(False)), jnp.arange(cfg.steps_per_call))
            return sim, done, stale, rec

        return chunk

    # -- public --------------------------------------------------------------
    @property
    def time_fs(self) -> float:
        return self.state.step * self.config.timestep

    def potential_energy(self) -> float:
        """Potential energy (eV) of the current state."""
        return float(self._energy_jit(self.state.sim.position, graph=self._graph))

    def kinetic_energy(self) -> float:
        s = self.state.sim
        return float(0.5 * np.sum(np.asarray(s.momentum, np.float64) ** 2 / np.asarray(s.mass, np.float64)))

    def temperature(self, ekin: float | None = None) -> float:
        """Instantaneous kinetic temperature (K), ``2 E_kin / (N_dof k_B)`` with 3N − 3 dof for N > 1."""
        ekin = self.kinetic_energy() if ekin is None else ekin
        return 2.0 * ekin / (self.n_dof * units.kB)

    @property
    def n_dof(self) -> int:
        return 3 * self.n_atoms - 3 if self.n_atoms > 1 else 3

    def conserved_energy(self) -> float:
        """Total energy (NVE), or the Nosé–Hoover extended-system invariant, in eV."""
        if self.config.ensemble == "nose_hoover":
            from jax_md import simulate

            if not hasattr(self, "_invariant"):
                self._invariant = jax.jit(lambda sim, graph: simulate.nvt_nose_hoover_invariant(self._energy_fn, sim, self.config.kT, graph=graph))
            return float(self._invariant(self.state.sim, self._graph))
        return self.potential_energy() + self.kinetic_energy()

    def positions(self) -> np.ndarray:
        return np.asarray(self.state.sim.position, np.float64)

    def momenta(self) -> np.ndarray:
        """ASE momenta ``[N, 3]`` (amu·Å/ASE time)."""
        return np.asarray(self.state.sim.momentum, np.float64) * units.fs

    def forces(self) -> np.ndarray:
        return np.asarray(self.state.sim.force, np.float64)

    def atoms(self, results: bool = True):
        """The current structure as ``ase.Atoms`` (positions as integrated since the last build, momenta set).

        With ``results`` the potential energy and forces are attached as a
        ``SinglePointCalculator``.
        """
        from ase.calculators.singlepoint import SinglePointCalculator

        a = self._template.copy()
        a.positions = self.positions()
        a.set_momenta(self.momenta())
        if not results:
            return a
        a.calc = SinglePointCalculator(a, energy=self.potential_energy(), forces=self.forces())
        return a

    def run(
        self,
        n_steps: int,
        trajectory=None,
        write_every: int | None = None,
        progress: bool = False,
        callback=None,
        checkpoint=None,
        checkpoint_every: int | None = None,
    ):
        """Advance ``n_steps`` steps.

        Parameters
        ----------
        n_steps : int
        trajectory : path, optional
            extxyz file frames are appended to (positions, momenta, forces,
            energy, step and time in ``info``).
        write_every : int, optional
            Steps between frames (a multiple of ``log_every``; default
            ``log_every``).
        progress : bool
            Show a tqdm progress bar.
        callback : callable, optional
            ``callback(engine, record)`` after each logged step with ``record``
            a dict (``step``, ``time_fs``, ``epot``, ``ekin``,
            ``temperature``); returning ``True`` stops the run (used by the
            stability test).
        checkpoint : path, optional
            Saved atomically every ``checkpoint_every`` steps and at the end
            (:meth:`save`).

        Returns
        -------
        dict
            The log of this call (lists ``step``, ``time_fs``, ``epot``,
            ``ekin``, ``temperature``) and ``stopped`` (the callback's verdict).
        """
        cfg = self.config
        if not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
        write_every = cfg.log_every if write_every is None else int(write_every)
        if write_every < 1 or write_every % cfg.log_every:
            raise ValueError(f"write_every ({write_every}) must be a positive multiple of log_every ({cfg.log_every})")
        if checkpoint is not None and checkpoint_every is not None and checkpoint_every % cfg.log_every:
            raise ValueError(f"checkpoint_every ({checkpoint_every}) must be a multiple of log_every ({cfg.log_every})")
        out = {k: [] for k in ("step", "time_fs", "epot", "ekin", "temperature")}
        target = self.state.step + int(n_steps)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=int(n_steps), unit="step", desc=f"MD {cfg.ensemble}")
        stopped = False

        def next_multiple(k, every):
            return (k // every + 1) * every

        try:
            while self.state.step < target and not stopped:
                s0 = self.state.step
                stop_at = min(target, s0 + cfg.steps_per_call)
                if trajectory is not None:
                    stop_at = min(stop_at, next_multiple(s0, write_every))
                if checkpoint is not None and checkpoint_every:
                    stop_at = min(stop_at, next_multiple(s0, checkpoint_every))
                ref = jnp.asarray(self.state.ref_positions, self.dtype)
                sim, done, stale, (ks, epot, ekin, logged) = self._chunk(self.state.sim, self._graph, ref, jnp.int32(s0), jnp.int32(stop_at - s0))
                self.state.sim = sim
                self.state.step += int(done)
                ks, epot, ekin = np.asarray(ks), np.asarray(epot), np.asarray(ekin)
                for j in np.flatnonzero(np.asarray(logged)):
                    step = int(ks[j])
                    rec = {
                        "step": step,
                        "time_fs": step * cfg.timestep,
                        "epot": float(epot[j]),
                        "ekin": float(ekin[j]),
                        "temperature": self.temperature(float(ekin[j])),
                    }
                    for key, v in rec.items():
                        out[key].append(v)
                        self.state.log[key].append(v)
                    if callback is not None and callback(self, rec):
                        stopped = True
                        break
                if bar is not None:
                    bar.update(int(done))
                if bool(stale):
                    if int(done) == 0 and self._fresh:
                        raise MDUnstableError(
                            f"step {self.state.step + 1}: one time step moved an atom by more than skin/2 = {0.5 * cfg.skin:g} Å "
                            f"right after a neighbour-list build; the time step ({cfg.timestep:g} fs) is too large for this system "
                            "or the dynamics is exploding",
                            step=self.state.step,
                        )
                    self._rebuild()
                elif int(done) > 0:
                    self._fresh = False
                if trajectory is not None and self.state.step % write_every == 0 and self.state.step > s0:
                    write_frame(trajectory, self.atoms(), self.state.step, self.time_fs)
                if checkpoint is not None and checkpoint_every and self.state.step % checkpoint_every == 0 and self.state.step > s0:
                    self.save(checkpoint)
        finally:
            if bar is not None:
                bar.close()
        if checkpoint is not None:
            self.save(checkpoint)
        out["stopped"] = stopped
        return out

    def _rebuild(self):
        self._fresh = True
        wrapped = self._build(self.positions())
        self.state.sim = self.state.sim.set(position=jnp.asarray(wrapped, self.dtype))
        self.state.ref_positions = wrapped
        self.state.n_builds += 1

    # -- checkpoints ------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the full state (jax-md state, step, graph reference positions, log) atomically as ``.npz``."""
        leaves, _ = jax.tree_util.tree_flatten(self.state.sim)
        arrays = {f"sim_{i}": np.asarray(x) for i, x in enumerate(leaves)}
        arrays["ref_positions"] = self.state.ref_positions
        meta = {
            "step": self.state.step,
            "n_builds": self.state.n_builds,
            "ensemble": self.config.ensemble,
            "n_atoms": self.n_atoms,
            "buckets": list(self.buckets),
            "log": self.state.log,
            "config": {k: getattr(self.config, k) for k in self.config.__dataclass_fields__},
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)

        def write(f):
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            f.write(buf.getvalue())

        return atomic_write(path, write, binary=True, make_parents=True)

    def load(self, path) -> None:
        """Restore a state written by :meth:`save` (same model, atoms and config), continuing exactly."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no MD checkpoint at {path}")
        with np.load(path) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            leaves = [z[f"sim_{i}"] for i in range(len([k for k in z.files if k.startswith("sim_")]))]
            ref = np.array(z["ref_positions"])
        if meta["n_atoms"] != self.n_atoms or meta["ensemble"] != self.config.ensemble:
            raise ValueError(
                f"{path}: checkpoint of {meta['n_atoms']} atoms / {meta['ensemble']} does not match this engine ({self.n_atoms} atoms / {self.config.ensemble})"
            )
        saved = meta["config"]
        mine = {k: getattr(self.config, k) for k in self.config.__dataclass_fields__}
        differ = sorted(k for k in mine if saved.get(k) != mine[k] and k not in ("seed", "init_temperature"))
        if differ:
            raise ValueError(f"{path}: checkpoint settings differ from this engine's in {', '.join(differ)}")
        treedef = jax.tree_util.tree_structure(self.state.sim)
        if treedef.num_leaves != len(leaves):
            raise ValueError(f"{path}: checkpoint state has {len(leaves)} arrays, expected {treedef.num_leaves}")
        sim = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(x) for x in leaves])
        # the graph of the saved reference positions: the same neighbour list as the original run
        from ..graph import Buckets

        self.buckets = Buckets(*meta["buckets"])
        self._build(ref)
        self.state = MDState(sim=sim, step=int(meta["step"]), ref_positions=ref, n_builds=int(meta["n_builds"]), log=meta["log"])


def write_frame(path, atoms, step: int, time_fs: float) -> None:
    """Append ``atoms`` (positions, momenta, energy and forces of its calculator) to an extxyz file."""
    from ase.io import write

    atoms.info["step"] = int(step)
    atoms.info["time_fs"] = float(time_fs)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write(str(path), atoms, format="extxyz", append=True)
