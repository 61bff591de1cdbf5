"""Helpers shared by the readers and writers of :mod:`jaxmlp.data.io`.

Stored labels are read with :func:`calc_results` (no calculation is run);
readers attach theirs with :func:`attach_results`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

__all__ = [
    "PathLike",
    "as_atoms_list",
    "attach_results",
    "calc_results",
    "check_exists",
    "read_text",
    "select_frames",
]

PathLike = str | os.PathLike


def calc_results(atoms: Atoms) -> dict[str, Any]:
    """Stored reference results of a structure, without triggering a calculation.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure with ``N`` atoms.

    Returns
    -------
    dict
        A shallow copy of ``atoms.calc.results`` (for example ``energy``
        float eV, ``forces [N, 3]`` eV/Å, ``stress [6]`` eV/Å³,
        ``energies [N]`` eV). Falls back to the pre-3.23 ASE locations
        ``atoms.info['energy'|'stress']`` and ``atoms.arrays['forces'|'energies']``
        for keys the calculator lacks. Empty when nothing is stored.
    """
    results: dict[str, Any] = {}
    if atoms.calc is not None:
        results.update(getattr(atoms.calc, "results", {}) or {})
    for key in ("energy", "free_energy", "stress"):
        if key not in results and key in atoms.info:
            results[key] = atoms.info[key]
    for key in ("forces", "energies"):
        if key not in results and key in atoms.arrays:
            results[key] = atoms.arrays[key]
    if "stress" in results:
        stress = np.asarray(results["stress"], dtype=float)
        if stress.shape == (3, 3):
            stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        results["stress"] = stress
    return results


def check_exists(path: PathLike) -> Path:
    """``path`` as a Path; FileNotFoundError / IsADirectoryError naming it otherwise."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {str(p)!r}")
    if p.is_dir():
        raise IsADirectoryError(f"expected a file, got a directory: {str(p)!r}")
    return p


def read_text(path: PathLike) -> tuple[Path, str]:
    """Check that ``path`` is an existing, non-empty file and return ``(Path, text)``."""
    p = check_exists(path)
    text = p.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError(f"{p}: file is empty")
    return p, text


def select_frames(frames: list[Atoms], index: int | slice | str | Sequence[int], path: Path) -> list[Atoms]:
    """Apply an ASE-style index (int, slice, ``":"``, ``"2:8:2"``, ``"-1"``, list)."""
    if isinstance(index, str):
        text = index.strip()
        if ":" in text:
            parts = [p.strip() for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError(f"bad index string {index!r}")
            values = [int(p) if p else None for p in parts]
            index = slice(*values)
        else:
            index = int(text)
    if isinstance(index, slice):
        return frames[index]
    if isinstance(index, (int, np.integer)):
        try:
            return [frames[int(index)]]
        except IndexError:
            raise IndexError(f"{path}: index {int(index)} out of range for {len(frames)} frame(s)") from None
    return [frames[int(i)] for i in index]


def as_atoms_list(structures: Atoms | Iterable[Atoms]) -> list[Atoms]:
    """One structure or an iterable of them as a list; TypeError naming a non-Atoms entry."""
    if isinstance(structures, Atoms):
        return [structures]
    frames = list(structures)
    for k, atoms in enumerate(frames):
        if not isinstance(atoms, Atoms):
            raise TypeError(f"structure {k} is a {type(atoms).__name__}, expected ase.Atoms")
    return frames


def attach_results(atoms: Atoms, results: dict[str, Any]) -> Atoms:
    """Store ``results`` on ``atoms`` in a SinglePointCalculator (nothing when empty)."""
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


