"""Sanity checks for atomic structures before they enter a graph or a fit.

The checks are cheap (one short-range neighbour search) and aim at the
mistakes that otherwise surface much later as NaN losses or exploding
neighbour lists: empty structures, non-finite coordinates, overlapping
atoms (including periodic images), degenerate cells and invalid atomic
numbers.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from .neighbours import MAX_PAIRS, check_pair_budget, neighbour_list

__all__ = ["validate"]

#: Largest atomic number accepted (oganesson).
MAX_ATOMIC_NUMBER = 118

#: Cells with a smaller volume (Å³) count as degenerate when any pbc is set.
MIN_CELL_VOLUME = 1e-6

#: Cells whose volume is below this fraction of |a|·|b|·|c| count as degenerate.
MIN_CELL_SHAPE_FACTOR = 1e-8


def _label(atoms: Atoms, name: str | None) -> str:
    if name:
        return name
    if len(atoms) == 0:
        return "empty structure"
    try:
        return f"structure {atoms.get_chemical_formula()}"
    except (IndexError, KeyError):  # atomic numbers outside the periodic table
        return f"structure with {len(atoms)} atoms"


def validate(atoms: Atoms, min_distance: float = 0.1, name: str | None = None) -> None:
    """Check that a structure is physically usable; raise on the first problem.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure with ``N`` atoms: positions ``[N, 3]`` in Å, cell ``[3, 3]``
        in Å (rows are lattice vectors), pbc ``[3]`` bool.
    min_distance : float, optional
        Smallest allowed interatomic distance in Å, measured over all
        periodic images (an atom closer than this to its own image also
        fails). ``0`` disables the distance check.
    name : str, optional
        Label used in error messages (for example ``"frame 12 of data.xyz"``);
        defaults to the chemical formula.

    Raises
    ------
    ValueError
        If the structure has no atoms; a position is NaN or infinite (the
        message names the atom index); an atomic number is ``<= 0`` or
        ``> 118``; any pbc is True and the cell volume is zero or nearly so
        (or the cell holds non-finite entries); or two atoms (or an atom and
        a periodic image) are closer than ``min_distance`` (the message names
        both indices, the distance in Å and the image shift).
    TypeError
        If ``atoms`` is not an ``ase.Atoms``.
    """
    if not isinstance(atoms, Atoms):
        raise TypeError(f"validate expects ase.Atoms, got {type(atoms).__name__}")
    label = _label(atoms, name)
    n = len(atoms)
    if n == 0:
        raise ValueError(f"{label}: structure has no atoms")

    positions = np.asarray(atoms.positions, dtype=float)
    bad = ~np.isfinite(positions).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{label}: atom {i} has a non-finite position {positions[i].tolist()} "
            f"({int(bad.sum())} atom(s) affected)"
        )

    numbers = np.asarray(atoms.numbers)
    bad = (numbers <= 0) | (numbers > MAX_ATOMIC_NUMBER)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{label}: atom {i} has atomic number {int(numbers[i])}; "
            f"expected 1..{MAX_ATOMIC_NUMBER}"
        )

    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell, dtype=float)
    if pbc.any():
        periodic = cell[pbc]
        if not np.isfinite(periodic).all():
            raise ValueError(f"{label}: cell has non-finite entries {cell.tolist()}")
        # the periodic lattice vectors must be independent: their Gram
        # determinant is the squared volume (3-D), area (2-D) or length (1-D)
        lengths = np.linalg.norm(periodic, axis=1)
        measure = float(np.sqrt(max(np.linalg.det(periodic @ periodic.T), 0.0)))
        scale = float(np.prod(lengths))
        if measure < MIN_CELL_VOLUME or measure < MIN_CELL_SHAPE_FACTOR * scale:
            raise ValueError(
                f"{label}: pbc={pbc.tolist()} but the periodic cell volume "
                f"({'3-D' if pbc.sum() == 3 else f'{int(pbc.sum())}-D'} measure) is {measure:.3g} "
                f"(cell lengths {np.round(np.linalg.norm(cell, axis=1), 6).tolist()} Å); "
                "periodic directions need independent, non-zero lattice vectors"
            )

    if min_distance > 0 and (n > 1 or pbc.any()):
        search_cell = np.where(pbc[:, None], cell, 0.0)
        try:
            check_pair_budget(positions, search_cell, pbc, float(min_distance))
        except ValueError:
            raise ValueError(
                f"{label}: too many atoms overlap: the atom pairs closer than min_distance={min_distance} Å "
                f"could exceed {MAX_PAIRS:.0e}"
            ) from None
        nl = neighbour_list(positions, search_cell, pbc, float(min_distance))
        if len(nl.centres):
            d = np.linalg.norm(positions[nl.neighbours] - positions[nl.centres] + nl.offsets @ cell, axis=1)
            k = int(np.argmin(d))
            shift = nl.offsets[k].tolist()
            where = "" if not any(shift) else f" (periodic image shifted by {shift} cells)"
            raise ValueError(
                f"{label}: atoms {int(nl.centres[k])} and {int(nl.neighbours[k])} are {float(d[k]):.4g} Å apart"
                f"{where}, closer than min_distance={min_distance} Å "
                f"({len(d) // 2} close pair(s) in total)"
            )
