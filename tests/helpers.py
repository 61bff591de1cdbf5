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
