"""Taylor-expansion force training data (Cooper, Kästner, Urban & Artrith 2020).

Force information is turned into extra *energy* labels: for a structure σ
with reference energy ``E`` and forces ``F_i`` (eV/Å), a displaced structure
``σ' = σ + δ`` gets the first-order label

    E(σ') ≈ E(σ) − Σ_i δ_i · F_i                       (F = −∂E/∂R)

(and, with a reference Hessian ``H`` [3N, 3N] eV/Å², the second-order term
``+ ½ δᵀ H δ``).  Sign check: moving an atom *along* its force lowers the
energy.  The paper's printed eq. 11 for a negative displacement ``−δ x̂``
reads ``E − δ F_x``; the correct value is ``E + δ F_x`` — this module uses
the expansion above for every displacement, tested on analytic potentials.

Strategies
----------
``"A"``
    One atom displaced by ±δ along one Cartesian axis per new structure; the
    ``n`` structures are distinct (atom, axis, sign) choices drawn at random
    without replacement (at most ``6N``).
``"B"``
    Every atom displaced by a random vector drawn uniformly from the ball
    ``|δ_i| ≤ δ_max``; the mass-weighted centre-of-mass shift is removed and,
    if that pushes an atom beyond its δ_max, all displacements are scaled
    down together, so ``|δ_i| ≤ δ_max`` holds exactly.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

__all__ = ["taylor_displacements", "taylor_energy", "taylor_augment"]


def _as_key(key):
    if key is None:
        return jax.random.PRNGKey(0)
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    return key


def _per_atom_delta(atoms: Atoms, delta: float, per_element: Mapping[Any, float] | None) -> np.ndarray:
    d = np.full(len(atoms), float(delta))
    if per_element:
        table = {}
        for k, v in per_element.items():
            z = atomic_numbers[k] if isinstance(k, str) else int(k)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"delta_max_per_element[{k!r}] must be positive and finite, got {v}")
            table[z] = float(v)
        for i, z in enumerate(atoms.numbers):
            if int(z) in table:
                d[i] = table[int(z)]
    return d


def taylor_energy(energy: float, forces: np.ndarray, displacement: np.ndarray, hessian: np.ndarray | None = None) -> float:
    """Taylor-expanded energy of a displaced structure, eV.

    Parameters
    ----------
    energy : float
        Reference energy ``E(σ)``, eV.
    forces : [N, 3]
        Reference forces ``F = −∂E/∂R``, eV/Å.
    displacement : [N, 3]
        ``δ = R' − R``, Å.
    hessian : [3N, 3N], optional
        Reference Hessian (atom-major), eV/Å²; adds ``½ δᵀ H δ``.

    Returns
    -------
    float
        ``E − Σ_i δ_i·F_i (+ ½ δᵀHδ)``.
    """
    d = np.asarray(displacement, float)
    e = float(energy) - float(np.sum(d * np.asarray(forces, float)))
    if hessian is not None:
        v = d.reshape(-1)
        e += 0.5 * float(v @ np.asarray(hessian, float) @ v)
    return e


def taylor_displacements(
    atoms: Atoms,
    forces: np.ndarray | None = None,
    strategy: str = "B",
    delta: float = 0.01,
    n: int = 1,
    key: Any = None,
    energy: float | None = None,
    hessian: np.ndarray | None = None,
    delta_max_per_element: Mapping[Any, float] | None = None,
) -> list[Atoms]:
    """Displaced copies of ``atoms`` labelled with Taylor-expanded energies.

    Parameters
    ----------
    atoms : ase.Atoms
        Reference structure σ (``N`` atoms).
    forces : [N, 3], optional
        Reference forces in eV/Å (default: ``atoms.get_forces()`` from its
        calculator).
    strategy : {"A", "B"}
        See the module docstring.
    delta : float
        Å: the displacement δ of strategy A, the maximal displacement δ_max
        of strategy B.  Must be positive.
    n : int
        Number of displaced structures (the paper's ``a`` per reference).
    key : jax.random key or int, optional
        Randomness (default ``PRNGKey(0)``); same key → same structures.
    energy : float, optional
        Reference energy in eV (default ``atoms.get_potential_energy()``).
    hessian : [3N, 3N], optional
        Reference Hessian in eV/Å² (atom-major) for a second-order label.
    delta_max_per_element : mapping, optional
        Per-element δ (keys: symbols or atomic numbers) overriding ``delta``.

    Returns
    -------
    list of ase.Atoms
        ``n`` structures with a SinglePointCalculator holding ``energy``
        (the Taylor label, eV) and ``forces`` (the first-order estimate
        ``F`` or, with a Hessian, ``F − Hδ``; approximate, eV/Å) and
        ``info["taylor"] = {"strategy", "delta", "order"}``.  Positions are
        not wrapped back into the cell.

    Raises
    ------
    ValueError
        δ ≤ 0, ``n < 1``, unknown strategy, shape mismatches, non-finite
        labels, more than ``6N`` strategy-A displacements requested, or
        strategy B on a single atom (its only motion is a translation).
    """
    if not isinstance(atoms, Atoms):
        raise TypeError(f"atoms must be an ase.Atoms, got {type(atoms).__name__}")
    if strategy not in ("A", "B"):
        raise ValueError(f"unknown Taylor strategy {strategy!r}; choose 'A' or 'B'")
    if not (isinstance(delta, (int, float, np.floating)) and np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a positive displacement in Å, got {delta!r}")
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    N = len(atoms)
    if N == 0:
        raise ValueError("cannot displace an empty structure")
    if forces is None:
        if atoms.calc is None:
            raise ValueError("no forces given and atoms carry no calculator results")
        forces = atoms.get_forces()
    forces = np.asarray(forces, float)
    if forces.shape != (N, 3):
        raise ValueError(f"forces have shape {forces.shape}, expected {(N, 3)}")
    if energy is None:
        if atoms.calc is None:
            raise ValueError("no energy given and atoms carry no calculator results")
        energy = atoms.get_potential_energy()
    energy = float(energy)
    if not (np.isfinite(energy) and np.isfinite(forces).all()):
        raise ValueError("reference energy and forces must be finite")
    if hessian is not None:
        hessian = np.asarray(hessian, float)
        if hessian.shape != (3 * N, 3 * N):
            raise ValueError(f"hessian has shape {hessian.shape}, expected {(3 * N, 3 * N)}")
    d_atom = _per_atom_delta(atoms, float(delta), delta_max_per_element)
    key = _as_key(key)

    disps = np.zeros((n, N, 3))
    if strategy == "A":
        if n > 6 * N:
            raise ValueError(f"strategy A gives at most 6N = {6 * N} distinct displacements, asked for {n}")
        choice = np.asarray(jax.random.permutation(key, 6 * N))[:n]
        atom, rest = np.divmod(choice, 6)
        axis, sign = np.divmod(rest, 2)
        disps[np.arange(n), atom, axis] = np.where(sign == 0, 1.0, -1.0) * d_atom[atom]
    else:
        if N < 2:
            raise ValueError("strategy B needs at least 2 atoms (one atom can only translate)")
        k_dir, k_rad = jax.random.split(key)
        g = np.asarray(jax.random.normal(k_dir, (n, N, 3)), float)
        u = np.asarray(jax.random.uniform(k_rad, (n, N)), float)
        norm = np.linalg.norm(g, axis=-1, keepdims=True)
        disps = g / np.where(norm > 0, norm, 1.0) * (u ** (1.0 / 3.0) * d_atom)[..., None]
        masses = atoms.get_masses()
        com = np.einsum("i,kij->kj", masses, disps) / masses.sum()
        disps = disps - com[:, None, :]
        ratio = np.max(np.linalg.norm(disps, axis=-1) / d_atom, axis=1)
        disps = disps / np.maximum(ratio, 1.0)[:, None, None]

    out = []
    for k in range(n):
        new = atoms.copy()
        new.calc = None
        new.positions = atoms.positions + disps[k]
        e_new = taylor_energy(energy, forces, disps[k], hessian)
        f_new = forces if hessian is None else forces - (hessian @ disps[k].reshape(-1)).reshape(N, 3)
        new.info = dict(atoms.info)
        new.info["taylor"] = {"strategy": strategy, "delta": float(delta), "order": 1 if hessian is None else 2}
        new.calc = SinglePointCalculator(new, energy=e_new, forces=np.array(f_new))
        out.append(new)
    return out


def taylor_augment(
    dataset,
    strategy: str = "B",
    delta: float = 0.01,
    a: int = 8,
    key: Any = None,
    include_original: bool = True,
    delta_max_per_element: Mapping[Any, float] | None = None,
    weight: float = 1.0,
):
    """A dataset extended by ``a`` Taylor-displaced structures per reference.

    Parameters
    ----------
    dataset : jaxmlp.data.Dataset
        Reference structures with energy (eV) and forces (eV/Å).
    strategy, delta, delta_max_per_element
        See :func:`taylor_displacements`.
    a : int
        Displaced structures per reference structure (the paper's multiple).
    key : jax.random key or int, optional
        Structure ``k`` uses ``fold_in(key, k)``: deterministic.
    include_original : bool
        Keep the reference structures first (as in the paper).
    weight : float
        Loss weight of a displaced structure relative to its parent.

    Returns
    -------
    jaxmlp.data.Dataset
        ``len(dataset)·(a + include_original)`` structures: the originals
        (if kept) followed by the displaced ones, parent by parent.
    """
    from jaxmlp.data import Dataset

    if not isinstance(dataset, Dataset):
        raise TypeError(f"taylor_augment needs a jaxmlp.data.Dataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("taylor_augment got an empty dataset")
    if not (np.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight must be finite and non-negative, got {weight}")
    key = _as_key(key)
    frames, weights = [], []
    for k in range(len(dataset)):
        ref = dataset[k]
        new = taylor_displacements(
            ref, dataset.forces[k], strategy=strategy, delta=delta, n=a, key=jax.random.fold_in(key, k),
            energy=float(dataset.energy[k]), delta_max_per_element=delta_max_per_element,
        )
        frames.extend(new)
        weights.extend([weight * float(dataset.weight[k])] * a)
    extra = Dataset(frames, [f.calc.results["energy"] for f in frames], [f.calc.results["forces"] for f in frames],
                    weight=weights)
    return dataset.concat(extra) if include_original else extra
