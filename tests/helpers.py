"""Small structure builders and numerical checks shared by the tests."""

from __future__ import annotations

import numpy as np
from ase import Atoms


def random_cell_atoms(n: int, cell, pbc=True, seed: int = 0, min_dist: float = 0.9, symbols="Ar") -> Atoms:
    """Random atoms in ``cell`` with no pair closer than ``min_dist`` Å (images included)."""
    rng = np.random.default_rng(seed)
    cell = np.asarray(cell, float)
    atoms = Atoms(cell=cell, pbc=pbc)
    tries = 0
    while len(atoms) < n and tries < 20000:
        tries += 1
        frac = rng.random(3)
        pos = frac @ cell
        trial = atoms.copy()
        sym = symbols if isinstance(symbols, str) else symbols[len(atoms) % len(symbols)]
        trial += Atoms(sym, positions=[pos])
        if len(trial) > 1:
            d = trial.get_distances(len(trial) - 1, range(len(trial) - 1), mic=bool(np.any(pbc)))
            if d.min() < min_dist:
                continue
        atoms = trial
    return atoms


def central_difference_forces(energy_fn, positions: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """−∂E/∂R by 4th-order central differences, ``[N, 3]``."""
    pos = np.array(positions, float)
    out = np.zeros_like(pos)
    for a in range(pos.shape[0]):
        for k in range(3):
            vals = []
            for s in (-2, -1, 1, 2):
                p = pos.copy()
                p[a, k] += s * h
                vals.append(energy_fn(p))
            out[a, k] = -(vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    return out


def morse_frames(sizes) -> list:
    """Random 3.6 Å periodic cells of ``sizes[s]`` atoms (seed ``s``), labelled by ASE's Morse potential.

    Reference data for the training tests, which fit a jaxmlp Morse model to these labels.
    """
    from ase.calculators.morse import MorsePotential

    frames = []
    for s, n in enumerate(sizes):
        a = random_cell_atoms(n, np.eye(3) * 3.6, seed=s, min_dist=1.05)
        a.calc = MorsePotential(epsilon=1.0, rho0=1.6 * 1.3, r0=1.3, rcut1=0.7 * 3.5 / 1.3, rcut2=3.5 / 1.3)
        a.get_forces()
        frames.append(a)
    return frames
