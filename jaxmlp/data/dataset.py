"""Labelled structure collections and fixed-size padded batches for training.

A :class:`Dataset` holds ``n`` structures (``ase.Atoms``) and their targets:

* ``energy [n]`` (eV),
* ``forces``: ``n`` arrays ``[N_i, 3]`` (eV/Å),
* ``stress [n, 6]`` (eV/Å³, Voigt xx yy zz yz xz xy, ASE sign) or ``None``,
  with ``stress_mask [n]`` telling which structures carry a stress label,
* ``weight [n]``: per-structure loss weights (default 1).

:meth:`Dataset.batches` turns it into an iterator of :class:`Batch` padded to
one set of bucket sizes, so a jitted training step compiles once per dataset.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from .io import calc_results

if TYPE_CHECKING:  # pragma: no cover - typing only
    import jraph

    from jaxmlp.graph import Buckets

__all__ = ["Batch", "Dataset"]


def _real_label(value: Any, name: str, key: str) -> np.ndarray:
    """A label as a float array; ValueError naming the frame for bools, strings and other non-numbers."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name}: {key} is not a real number: {value!r}")
    return array.astype(float)


class Batch(NamedTuple):
    """One padded training batch.

    All arrays follow the node/graph order of ``graph`` (jraph batching
    order: the nodes of graph 0 first, then graph 1, ...); the last graph is
    the padding graph and padded entries are zero.

    Attributes
    ----------
    graph : jraph.GraphsTuple
        Padded graph with ``N`` nodes, ``E`` edges, ``G`` graphs (see
        :mod:`jaxmlp.graph`); ``graph.nodes["mask"] [N]`` and
        ``graph.globals["mask"] [G]`` mark real entries.
    energy : np.ndarray
        ``[G]`` total energies (eV), 0 for padding graphs.
    forces : np.ndarray
        ``[N, 3]`` forces (eV/Å), 0 for padding nodes.
    stress : np.ndarray
        ``[G, 6]`` stress (eV/Å³, Voigt xx yy zz yz xz xy, ASE sign); 0 where
        ``stress_mask`` is False.
    weight : np.ndarray
        ``[G]`` per-structure weights, 0 for padding graphs.
    stress_mask : np.ndarray
        ``[G]`` bool, True for real structures that have a stress label.
    """

    graph: jraph.GraphsTuple
    energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray
    weight: np.ndarray
    stress_mask: np.ndarray


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _bare_copy(atoms: Atoms) -> Atoms:
    copy = atoms.copy()  # Atoms.copy drops the calculator
    copy.calc = None
    return copy


class Dataset(Sequence):
    """An immutable sequence of labelled structures.

    Parameters
    ----------
    structures : sequence of ase.Atoms
        ``n`` structures; copied (calculators dropped).
    energy : array_like
        ``[n]`` total energies in eV.
    forces : sequence of array_like
        ``n`` arrays ``[N_i, 3]`` in eV/Å.
    stress : array_like, optional
        ``[n, 6]`` stress in eV/Å³ (Voigt xx yy zz yz xz xy, ASE sign).
    weight : array_like, optional
        ``[n]`` non-negative per-structure weights; default ones.
    stress_mask : array_like, optional
        ``[n]`` bool, which rows of ``stress`` are labels; default all True
        when ``stress`` is given.

    Raises
    ------
    ValueError
        On inconsistent lengths or shapes, non-finite targets or negative
        weights; the message names the structure index.

    Notes
    -----
    Build datasets from labelled ``Atoms`` with :meth:`from_atoms` or from a
    file with :meth:`from_file`. Indexing with an int gives an ``Atoms``
    (a fresh copy carrying its targets in a SinglePointCalculator);
    indexing with a slice, an index array or a boolean mask gives a
    ``Dataset``. Graphs built by :meth:`graphs` are cached per cutoff and
    shared with subsets.
    """

    def __init__(
        self,
        structures: Sequence[Atoms],
        energy: Any,
        forces: Sequence[Any],
        stress: Any | None = None,
        weight: Any | None = None,
        stress_mask: Any | None = None,
        *,
        _copy: bool = True,
    ) -> None:
        structures = list(structures)
        n = len(structures)
        for k, atoms in enumerate(structures):
            if not isinstance(atoms, Atoms):
                raise TypeError(f"structure {k} is a {type(atoms).__name__}, expected ase.Atoms")
        self._atoms = tuple(_bare_copy(a) for a in structures) if _copy else tuple(structures)

        energy = np.array(energy, dtype=np.float64).reshape(-1)
        if energy.shape != (n,):
            raise ValueError(f"energy has {energy.size} entries for {n} structures")
        bad = np.flatnonzero(~np.isfinite(energy))
        if bad.size:
            raise ValueError(f"structure {int(bad[0])}: energy is {energy[bad[0]]}")
        self._energy = _readonly(energy)

        forces = list(forces)
        if len(forces) != n:
            raise ValueError(f"forces has {len(forces)} entries for {n} structures")
        fixed = []
        for k, (atoms, f) in enumerate(zip(self._atoms, forces)):
            f = np.array(f, dtype=np.float64)
            if f.shape != (len(atoms), 3):
                raise ValueError(f"structure {k}: forces have shape {f.shape}, expected {(len(atoms), 3)}")
            if not np.isfinite(f).all():
                raise ValueError(f"structure {k}: forces contain NaN or inf")
            fixed.append(_readonly(f))
        self._forces = tuple(fixed)

        if stress is not None:
            stress = np.array(stress, dtype=np.float64)
            if stress.shape != (n, 6):
                raise ValueError(f"stress has shape {stress.shape}, expected {(n, 6)}")
            mask = np.ones(n, bool) if stress_mask is None else np.array(stress_mask, dtype=bool).reshape(-1)
            if mask.shape != (n,):
                raise ValueError(f"stress_mask has {mask.size} entries for {n} structures")
            stress = np.where(mask[:, None], stress, 0.0)
            bad = np.flatnonzero(~np.isfinite(stress).all(axis=1))
            if bad.size:
                raise ValueError(f"structure {int(bad[0])}: stress contains NaN or inf")
            self._stress: np.ndarray | None = _readonly(stress)
            self._stress_mask = _readonly(mask)
        else:
            if stress_mask is not None and np.any(stress_mask):
                raise ValueError("stress_mask given without stress")
            self._stress = None
            self._stress_mask = _readonly(np.zeros(n, bool))

        weight = np.ones(n) if weight is None else np.array(weight, dtype=np.float64).reshape(-1)
        if weight.shape != (n,):
            raise ValueError(f"weight has {weight.size} entries for {n} structures")
        if not (np.isfinite(weight).all() and (weight >= 0).all()):
            raise ValueError("weights must be finite and non-negative")
        self._weight = _readonly(weight)
        self._n_atoms = _readonly(np.array([len(a) for a in self._atoms], dtype=np.int64))
        self._graph_cache: dict[tuple[float, bool], list[Any]] = {}

    # ------------------------------------------------------------------ build

    @classmethod
    def from_atoms(cls, structures: Iterable[Atoms], weight: Any | None = None) -> Dataset:
        """Collect structures and the labels stored on them.

        Parameters
        ----------
        structures : iterable of ase.Atoms
            Each with an energy (eV) and forces ``[N, 3]`` (eV/Å) in its
            calculator results (``atoms.calc.results``, as left by
            :func:`jaxmlp.data.read`, :func:`jaxmlp.data.label` or any ASE
            calculator that has run), or in the pre-3.23 ASE places
            ``atoms.info['energy']`` / ``atoms.arrays['forces']``. A
            ``stress`` (``[6]`` or ``[3, 3]``, eV/Å³) is used where present.
        weight : array_like, optional
            ``[n]`` per-structure weights.

        Returns
        -------
        Dataset
            ``stress`` is ``None`` when no structure has one; otherwise
            structures without stress get ``stress_mask = False``.

        Raises
        ------
        ValueError
            If a structure has no atoms, no energy or no forces, or a target
            is not a real number (a bool or a string), NaN or infinite; the
            message names the frame index.
        """
        frames = list(structures)
        energy = np.zeros(len(frames))
        forces = []
        stress = np.zeros((len(frames), 6))
        has_stress = np.zeros(len(frames), bool)
        for k, atoms in enumerate(frames):
            if not isinstance(atoms, Atoms):
                raise TypeError(f"frame {k} is a {type(atoms).__name__}, expected ase.Atoms")
            if len(atoms) == 0:
                raise ValueError(f"frame {k}: structure has no atoms")
            name = f"frame {k} ({atoms.get_chemical_formula()})"
            results = calc_results(atoms)
            if results.get("energy") is None:
                raise ValueError(f"{name}: no energy label")
            e = _real_label(results["energy"], name, "energy")
            if np.ndim(e) != 0:
                raise ValueError(f"{name}: energy must be a scalar, got shape {np.shape(e)}")
            e = float(e)
            if not np.isfinite(e):
                raise ValueError(f"{name}: energy is {e}")
            energy[k] = e
            if results.get("forces") is None:
                raise ValueError(f"{name}: no forces label")
            f = _real_label(results["forces"], name, "forces")
            if f.shape != (len(atoms), 3):
                raise ValueError(f"{name}: forces have shape {f.shape}, expected {(len(atoms), 3)}")
            if not np.isfinite(f).all():
                raise ValueError(f"{name}: forces contain NaN or inf")
            forces.append(f)
            if results.get("stress") is not None:
                s = _real_label(results["stress"], name, "stress")
                if s.shape != (6,):
                    raise ValueError(f"{name}: stress has shape {s.shape}, expected (6,) or (3, 3)")
                if not np.isfinite(s).all():
                    raise ValueError(f"{name}: stress contains NaN or inf")
                stress[k] = s
                has_stress[k] = True
        if has_stress.any():
            return cls(frames, energy, forces, stress=stress, weight=weight, stress_mask=has_stress)
        return cls(frames, energy, forces, weight=weight)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        index: int | slice | str = ":",
        format: str | None = None,
        weight: Any | None = None,
        **read_kwargs: Any,
    ) -> Dataset:
        """Read a labelled file (extxyz, XSF, n2p2) into a Dataset.

        Parameters
        ----------
        path : str or os.PathLike
            File to read (see :func:`jaxmlp.data.read`).
        index : int, slice or str, optional
            Frames to keep (ASE syntax).
        format : str, optional
            ``"extxyz"``, ``"xsf"`` or ``"n2p2"``; default from the name.
        weight : array_like, optional
            ``[n]`` per-structure weights.
        **read_kwargs
            Passed to :func:`jaxmlp.data.read` (``length_unit``,
            ``energy_unit`` for n2p2 files in Bohr/Hartree, ...).

        Returns
        -------
        Dataset
        """
        from .io import read

        frames = read(path, index=index, format=format, **read_kwargs)
        try:
            return cls.from_atoms(frames, weight=weight)
        except ValueError as err:
            selection = "" if index == ":" else f" (frames counted within index={index!r})"
            raise ValueError(f"{path}{selection}: {err}") from None

    # --------------------------------------------------------------- sequence

    def __len__(self) -> int:
        return len(self._atoms)

    def __iter__(self) -> Iterator[Atoms]:
        for k in range(len(self)):
            yield self._atoms_at(k)

    def _atoms_at(self, k: int) -> Atoms:
        atoms = self._atoms[k].copy()
        results: dict[str, Any] = {"energy": float(self._energy[k]), "forces": np.array(self._forces[k])}
        if self._stress is not None and self._stress_mask[k]:
            results["stress"] = np.array(self._stress[k])
        atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms

    def __getitem__(self, index: Any) -> Any:
        """``int`` → ``ase.Atoms`` with targets; slice / int array / bool mask → Dataset."""
        if isinstance(index, (int, np.integer)):
            k = int(index)
            if not -len(self) <= k < len(self):
                raise IndexError(f"index {k} out of range for a Dataset of {len(self)} structures")
            return self._atoms_at(k % len(self))
        if isinstance(index, slice):
            return self._subset(np.arange(len(self))[index])
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} structures")
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif idx.dtype.kind not in "iu":
            raise TypeError(f"cannot index a Dataset with {type(index).__name__} of dtype {idx.dtype}")
        idx = idx.reshape(-1)
        if idx.size and (idx.max() >= len(self) or idx.min() < -len(self)):
            raise IndexError(f"index out of range for a Dataset of {len(self)} structures")
        return self._subset(idx % max(len(self), 1))

    def _subset(self, idx: np.ndarray) -> Dataset:
        idx = [int(i) for i in idx]
        sub = Dataset(
            [self._atoms[i] for i in idx],
            self._energy[idx] if idx else np.zeros(0),
            [self._forces[i] for i in idx],
            stress=None if self._stress is None else self._stress[idx].reshape(-1, 6),
            weight=self._weight[idx] if idx else np.zeros(0),
            stress_mask=None if self._stress is None else self._stress_mask[idx],
            _copy=False,
        )
        for key, graphs in self._graph_cache.items():
            sub._graph_cache[key] = [graphs[i] for i in idx]
        return sub

    def __add__(self, other: Dataset) -> Dataset:
        if not isinstance(other, Dataset):
            return NotImplemented
        return self.concat(other)

    def __repr__(self) -> str:
        symbols = "".join(_symbols(self.elements)) or "-"
        stress = "none" if self._stress is None else f"{int(self._stress_mask.sum())}/{len(self)}"
        return (
            f"Dataset(n={len(self)}, atoms={int(self._n_atoms.sum())}, elements={symbols}, "
            f"stress={stress})"
        )

    # ------------------------------------------------------------- properties

    @property
    def energy(self) -> np.ndarray:
        """``[n]`` total energies in eV (read-only)."""
        return self._energy

    @property
    def forces(self) -> tuple[np.ndarray, ...]:
        """``n`` read-only arrays ``[N_i, 3]`` of forces in eV/Å."""
        return self._forces

    @property
    def stress(self) -> np.ndarray | None:
        """``[n, 6]`` stress in eV/Å³ (Voigt, ASE sign) or ``None``; rows with ``stress_mask`` False are 0."""
        return self._stress

    @property
    def stress_mask(self) -> np.ndarray:
        """``[n]`` bool, True where a stress label exists."""
        return self._stress_mask

    @property
    def weight(self) -> np.ndarray:
        """``[n]`` per-structure weights."""
        return self._weight

    @property
    def n_atoms(self) -> np.ndarray:
        """``[n]`` int, number of atoms per structure."""
        return self._n_atoms

    @property
    def elements(self) -> tuple[int, ...]:
        """Sorted atomic numbers present in the dataset."""
        if not self._atoms:
            return ()
        return tuple(int(z) for z in np.unique(np.concatenate([a.numbers for a in self._atoms])))

    @property
    def structures(self) -> tuple[Atoms, ...]:
        """The stored structures (without labels). Do not modify them; index the dataset for labelled copies."""
        return self._atoms

    # ------------------------------------------------------------- operations

    def with_weight(self, weight: Any) -> Dataset:
        """Same structures and targets with new per-structure weights ``[n]``."""
        mask = self._stress_mask if self._stress is not None else None
        out = Dataset(self._atoms, self._energy, self._forces, self._stress, weight, mask, _copy=False)
        out._graph_cache = dict(self._graph_cache)
        return out

    def concat(self, *others: Dataset) -> Dataset:
        """Concatenate datasets: ``a.concat(b, c)`` or ``Dataset.concat(a, b, c)``.

        Parameters
        ----------
        *others : Dataset
            Datasets appended after ``self`` in order.

        Returns
        -------
        Dataset
            ``stress`` is kept when any part has stress (parts without stress
            get ``stress_mask = False``). Graph caches are merged for cutoffs
            cached in every part.
        """
        parts = [self, *others]
        for k, part in enumerate(parts):
            if not isinstance(part, Dataset):
                raise TypeError(f"argument {k} is a {type(part).__name__}, expected Dataset")
        any_stress = any(p._stress is not None for p in parts)
        stress = mask = None
        if any_stress:
            stress = np.concatenate([p._stress if p._stress is not None else np.zeros((len(p), 6)) for p in parts])
            mask = np.concatenate([p._stress_mask for p in parts])
        out = Dataset(
            [a for p in parts for a in p._atoms],
            np.concatenate([p._energy for p in parts]),
            [f for p in parts for f in p._forces],
            stress=stress,
            weight=np.concatenate([p._weight for p in parts]),
            stress_mask=mask,
            _copy=False,
        )
        common = set(parts[0]._graph_cache).intersection(*(p._graph_cache for p in parts[1:]))
        for key in common:
            out._graph_cache[key] = [g for p in parts for g in p._graph_cache[key]]
        return out

    def split(self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple[Dataset, ...]:
        """Random disjoint split, reproducible from ``seed``.

        Parameters
        ----------
        fractions : sequence of float, optional
            Non-negative fractions summing to at most 1; part ``k`` gets
            ``round(n·(f_0+…+f_k)) − round(n·(f_0+…+f_{k−1}))`` structures.
            When they sum to 1 every structure lands in exactly one part.
        seed : int, optional
            Seed of the ``numpy.random.Generator`` that draws the permutation.

        Returns
        -------
        tuple of Dataset
            One dataset per fraction; indices within a part keep the original
            order.
        """
        fr = np.asarray(fractions, dtype=float).reshape(-1)
        if fr.size == 0 or (fr < 0).any() or not np.isfinite(fr).all():
            raise ValueError(f"fractions must be non-negative numbers, got {list(fractions)}")
        total = fr.sum()
        if total > 1 + 1e-9:
            raise ValueError(f"fractions sum to {total:.6g} > 1")
        n = len(self)
        bounds = np.rint(np.cumsum(fr) * n).astype(int)
        if abs(total - 1) <= 1e-9:
            bounds[-1] = n
        bounds = np.minimum(bounds, n)
        perm = np.random.default_rng(seed).permutation(n)
        starts = np.r_[0, bounds[:-1]]
        return tuple(self._subset(np.sort(perm[a:b])) for a, b in zip(starts, bounds))

    def write(self, path: str | os.PathLike, format: str | None = None, **kwargs: Any) -> None:
        """Write the labelled structures with :func:`jaxmlp.data.write` (atomic replace)."""
        from .io import write

        write(path, list(self), format=format, **kwargs)

    # ----------------------------------------------------------------- graphs

    def graphs(self, cutoff: float, triplets=False) -> list[jraph.GraphsTuple]:
        """Unpadded graphs of all structures, built once per ``(cutoff, triplets)``.

        Parameters
        ----------
        cutoff : float
            Neighbour cutoff in Å.
        triplets : bool or jaxmlp.graph.TripletFilter, optional
            Also build edge pairs for angular descriptors; a
            :class:`~jaxmlp.graph.TripletFilter` (an HDNNP's
            ``model.extras["triplet_filter"]``) keeps only the triplets that can
            contribute, as :class:`jaxmlp.Calculator` does (same values, less work).

        Returns
        -------
        list of jraph.GraphsTuple
            One graph per structure (see :func:`jaxmlp.graph.atoms_to_graph`).

        Raises
        ------
        ValueError
            If a structure fails validation; the message names its index.
        """
        from jaxmlp.graph import atoms_to_graph

        want, tfilter, tkey = _triplet_option(triplets)
        key = (float(cutoff), want, tkey)
        cached = self._graph_cache.get(key)
        if cached is None:
            cached = []
            for k, atoms in enumerate(self._atoms):
                try:
                    cached.append(atoms_to_graph(atoms, float(cutoff), triplets=want, triplet_filter=tfilter))
                except ValueError as exc:
                    raise ValueError(f"structure {k}: {exc}") from exc
            self._graph_cache[key] = cached
        return list(cached)

    def buckets(self, cutoff: float, batch_size: int, triplets=False) -> Buckets:
        """Bucket sizes that fit any ``batch_size`` structures of this dataset.

        Parameters
        ----------
        cutoff : float
            Neighbour cutoff in Å.
        batch_size : int
            Structures per batch.
        triplets : bool or TripletFilter, optional
            Count triplets too (as :meth:`graphs`).

        Returns
        -------
        jaxmlp.graph.Buckets
            From :func:`jaxmlp.graph.suggest_buckets` over all graphs, so every
            batch of an epoch has the same padded shapes.
        """
        from jaxmlp.graph import suggest_buckets

        if len(self) == 0:
            raise ValueError("cannot choose buckets for an empty Dataset")
        return suggest_buckets(self.graphs(cutoff, triplets), int(batch_size))

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """Number of batches :meth:`batches` yields per epoch."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return len(self) // batch_size if drop_last else -(-len(self) // batch_size)

    def batches(
        self,
        cutoff: float,
        buckets: Buckets | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        triplets=False,
    ) -> Iterator[Batch]:
        """Iterate over one epoch of padded batches.

        Parameters
        ----------
        cutoff : float
            Neighbour cutoff in Å (graphs are cached per cutoff).
        buckets : jaxmlp.graph.Buckets, optional
            Padded sizes; by default :meth:`buckets` (fits any
            ``batch_size`` structures, so shapes are constant and ``jit``
            compiles once). Must allow ``batch_size`` real graphs
            (``n_graph >= batch_size + 1``).
        batch_size : int, optional
            Structures per batch (the last batch may be smaller).
        shuffle : bool, optional
            Shuffle the order with ``numpy.random.default_rng(seed)``; pass a
            different seed each epoch (for example the epoch number).
        seed : int, optional
            Seed of the shuffle.
        drop_last : bool, optional
            Skip a final batch with fewer than ``batch_size`` structures.
        triplets : bool or TripletFilter, optional
            Build triplets (angular descriptors), pruned by a filter (as :meth:`graphs`).

        Yields
        ------
        Batch
            ``graph`` padded to exactly ``buckets`` (``N`` nodes, ``E``
            edges, ``G`` graphs, last graph padding), ``energy [G]``,
            ``forces [N, 3]``, ``stress [G, 6]``, ``weight [G]``,
            ``stress_mask [G]``, zero on padding.

        Raises
        ------
        ValueError
            If ``batch_size < 1``, the buckets cannot hold ``batch_size``
            graphs, or a batch overflows them.
        """
        from jaxmlp.graph import batch_graphs

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        if n == 0:
            return
        graphs = self.graphs(cutoff, triplets)
        if buckets is None:
            buckets = self.buckets(cutoff, batch_size, triplets)
        if buckets.n_graph - 1 < min(batch_size, n):
            raise ValueError(
                f"buckets hold at most {buckets.n_graph - 1} real graphs (n_graph={buckets.n_graph} "
                f"includes the padding graph) but batch_size is {batch_size}"
            )
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            chunk = order[start : start + batch_size]
            if drop_last and len(chunk) < batch_size:
                break
            yield self._make_batch(chunk, graphs, buckets, batch_graphs)

    def _make_batch(self, chunk: np.ndarray, graphs: list[Any], buckets: Buckets, batch_graphs: Any) -> Batch:
        graph = batch_graphs([graphs[i] for i in chunk], buckets)
        b = len(chunk)
        n_node = np.asarray(graph.n_node)
        if not np.array_equal(n_node[:b], self._n_atoms[chunk]):
            raise RuntimeError("batched graph node counts do not match the structures (graph layout changed?)")
        dtype = np.asarray(graph.nodes["positions"]).dtype
        n_total = int(n_node.sum())
        n_graph = len(n_node)
        energy = np.zeros(n_graph, dtype)
        energy[:b] = self._energy[chunk]
        forces = np.zeros((n_total, 3), dtype)
        real = int(self._n_atoms[chunk].sum())
        forces[:real] = np.concatenate([self._forces[i] for i in chunk], axis=0)
        stress = np.zeros((n_graph, 6), dtype)
        stress_mask = np.zeros(n_graph, bool)
        if self._stress is not None:
            stress[:b] = self._stress[chunk]
            stress_mask[:b] = self._stress_mask[chunk]
        weight = np.zeros(n_graph, dtype)
        weight[:b] = self._weight[chunk]
        return Batch(graph=graph, energy=energy, forces=forces, stress=stress, weight=weight, stress_mask=stress_mask)


def _symbols(numbers: Iterable[int]) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in numbers]


def _triplet_option(triplets):
    """``(build triplets?, filter or None, cache key)`` of a ``triplets`` argument (bool or TripletFilter)."""
    from jaxmlp.graph import TripletFilter

    if isinstance(triplets, TripletFilter):
        f = triplets
        return True, f, (f.numbers, f.cutoff, f.rc_pair.tobytes(), f.rc_jk.tobytes(), f.shells)
    if isinstance(triplets, (bool, np.bool_)) or triplets in (0, 1):
        return bool(triplets), None, None
    raise TypeError(f"triplets must be a bool or a jaxmlp.graph.TripletFilter, got {type(triplets).__name__}")
