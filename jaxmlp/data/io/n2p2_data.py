"""n2p2/RuNNer ``input.data`` structure files, with our own reader and writer.

Blocks of ``begin``, ``comment``, ``lattice`` x3,
``atom x y z element charge n fx fy fz``, ``energy``, ``charge``, ``end``.
``length_unit`` and ``energy_unit`` give the file's units in Å and eV (for
example ``ase.units.Bohr`` and ``ase.units.Hartree``): values are converted
to Å/eV on reading and back on writing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from ...utils import atomic_write
from .common import (
    PathLike,
    as_atoms_list,
    attach_results,
    calc_results,
    read_text,
    select_frames,
)

__all__ = ["read_n2p2", "write_n2p2"]

_N2P2_KEYWORDS = ("begin", "end", "comment", "lattice", "atom", "energy", "charge")



class _N2P2Block:
    """Accumulates one begin/end block while parsing."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.comments: list[str] = []
        self.lattice: list[list[float]] = []
        self.symbols: list[str] = []
        self.positions: list[list[float]] = []
        self.charges: list[float] = []
        self.n_column: list[float] = []
        self.forces: list[list[float]] = []
        self.energy: float | None = None
        self.charge: float | None = None


def _n2p2_error(path: Path, line: int, message: str) -> ValueError:
    return ValueError(f"{path}, line {line}: {message}")


def _n2p2_floats(path: Path, lineno: int, keyword: str, fields: list[str]) -> list[float]:
    values = []
    for field in fields:
        try:
            values.append(float(field))
        except ValueError:
            raise _n2p2_error(path, lineno, f"non-numeric field {field!r} in '{keyword}' line") from None
        if not np.isfinite(values[-1]):
            raise _n2p2_error(path, lineno, f"non-finite field {field!r} in '{keyword}' line")
    return values


def read_n2p2(
    path: PathLike,
    index: int | slice | str = ":",
    length_unit: float = 1.0,
    energy_unit: float = 1.0,
) -> list[Atoms]:
    """Read an n2p2/RuNNer ``input.data`` file.

    Parameters
    ----------
    path : str or os.PathLike
        File to read. Lines may start with blanks; blank lines are ignored.
    index : int, slice or str, optional
        Structures to return.
    length_unit : float, optional
        Length unit of the file in Å (``ase.units.Bohr`` for Bohr).
    energy_unit : float, optional
        Energy unit of the file in eV (``ase.units.Hartree`` for Hartree).

    Returns
    -------
    list of ase.Atoms
        Positions ``[N, 3]`` and cell in Å; structures with ``lattice`` lines
        are fully periodic, the others non-periodic with a zero cell. The
        SinglePointCalculator holds ``energy`` (eV, when an ``energy`` line
        exists), ``forces [N, 3]`` (eV/Å) and, when any is non-zero, the
        per-atom ``charges [N]`` (e). ``info['comment']`` holds the comment
        lines (joined by newlines), ``info['charge']`` the total charge line,
        and ``arrays['n2p2_n']`` the unused ``n`` column when any is non-zero.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For an empty file, an unknown keyword, a wrong field count, a
        non-numeric or non-finite (``nan``, ``inf``) field, an unknown element, a missing ``end``, an
        ``atom``/``lattice``/... line outside ``begin``/``end``, a structure
        with 1, 2 or more than 3 ``lattice`` lines or with no atoms, and a
        repeated ``energy``/``charge`` line. The message names the file and
        the line number.
    """
    p, text = read_text(path)
    force_unit = energy_unit / length_unit
    frames: list[Atoms] = []
    block: _N2P2Block | None = None
    n_lines = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        n_lines = lineno
        fields = raw.split()
        if not fields:
            continue
        key = fields[0]
        if key not in _N2P2_KEYWORDS:
            raise _n2p2_error(
                p, lineno, f"unknown keyword {key!r}; expected one of {', '.join(_N2P2_KEYWORDS)}"
            )
        if key == "begin":
            if len(fields) != 1:
                raise _n2p2_error(p, lineno, f"'begin' takes no fields, got {len(fields) - 1}")
            if block is not None:
                raise _n2p2_error(
                    p, lineno, f"'begin' inside the structure started at line {block.start} (missing 'end')"
                )
            block = _N2P2Block(lineno)
            continue
        if block is None:
            raise _n2p2_error(p, lineno, f"'{key}' line outside a begin/end block")
        if key == "comment":
            block.comments.append(raw.strip()[len("comment") :].strip())
        elif key == "lattice":
            if len(fields) != 4:
                raise _n2p2_error(p, lineno, f"'lattice' needs 3 numbers, got {len(fields) - 1} field(s)")
            if len(block.lattice) == 3:
                raise _n2p2_error(p, lineno, "more than 3 'lattice' lines in one structure")
            block.lattice.append(_n2p2_floats(p, lineno, key, fields[1:]))
        elif key == "atom":
            if len(fields) != 10:
                raise _n2p2_error(
                    p, lineno,
                    f"'atom' needs 9 fields (x y z element charge n fx fy fz), got {len(fields) - 1}",
                )
            symbol = fields[4]
            if symbol not in atomic_numbers or atomic_numbers[symbol] == 0:
                raise _n2p2_error(p, lineno, f"unknown element {symbol!r}")
            numbers = _n2p2_floats(p, lineno, key, fields[1:4] + fields[5:10])
            block.symbols.append(symbol)
            block.positions.append(numbers[0:3])
            block.charges.append(numbers[3])
            block.n_column.append(numbers[4])
            block.forces.append(numbers[5:8])
        elif key in ("energy", "charge"):
            if len(fields) != 2:
                raise _n2p2_error(p, lineno, f"'{key}' needs 1 number, got {len(fields) - 1} field(s)")
            if getattr(block, key) is not None:
                raise _n2p2_error(p, lineno, f"second '{key}' line in the structure started at line {block.start}")
            setattr(block, key, _n2p2_floats(p, lineno, key, fields[1:])[0])
        elif key == "end":
            if len(fields) != 1:
                raise _n2p2_error(p, lineno, f"'end' takes no fields, got {len(fields) - 1}")
            if len(block.lattice) not in (0, 3):
                raise _n2p2_error(
                    p, lineno,
                    f"structure started at line {block.start} has {len(block.lattice)} 'lattice' "
                    "line(s); need 3 (periodic) or none (non-periodic)",
                )
            if not block.symbols:
                raise _n2p2_error(p, lineno, f"structure started at line {block.start} has no atoms")
            frames.append(_n2p2_block_to_atoms(block, length_unit, energy_unit, force_unit))
            block = None
    if block is not None:
        raise _n2p2_error(
            p, block.start, f"structure started here has no 'end' (file ends at line {n_lines})"
        )
    if not frames:
        raise ValueError(f"{p}: no structures found (no begin/end blocks)")
    return select_frames(frames, index, p)


def _n2p2_block_to_atoms(block: _N2P2Block, length_unit: float, energy_unit: float, force_unit: float) -> Atoms:
    periodic = len(block.lattice) == 3
    atoms = Atoms(
        symbols=block.symbols,
        positions=np.array(block.positions, dtype=float) * length_unit,
        cell=np.array(block.lattice, dtype=float) * length_unit if periodic else None,
        pbc=periodic,
    )
    if block.comments:
        atoms.info["comment"] = "\n".join(block.comments)
    if block.charge is not None:
        atoms.info["charge"] = block.charge
    n_column = np.array(block.n_column, dtype=float)
    if np.any(n_column != 0.0):
        atoms.arrays["n2p2_n"] = n_column
    results: dict[str, Any] = {"forces": np.array(block.forces, dtype=float) * force_unit}
    if block.energy is not None:
        results["energy"] = block.energy * energy_unit
    charges = np.array(block.charges, dtype=float)
    if np.any(charges != 0.0):
        results["charges"] = charges
    return attach_results(atoms, results)


def _n2p2_number(value: float) -> str:
    return f"{float(value): .16e}"


def write_n2p2(
    path: PathLike,
    structures: Atoms | Iterable[Atoms],
    length_unit: float = 1.0,
    energy_unit: float = 1.0,
) -> None:
    """Write structures to an n2p2/RuNNer ``input.data`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; replaced atomically.
    structures : ase.Atoms or iterable of ase.Atoms
        Fully periodic (``lattice`` lines written) or fully non-periodic
        structures; positions ``[N, 3]`` in Å.
    length_unit : float, optional
        Length unit of the file in Å; positions and cell are divided by it.
    energy_unit : float, optional
        Energy unit of the file in eV; energies are divided by it and forces
        by ``energy_unit / length_unit``.

    Notes
    -----
    Written per structure: ``info['comment']`` (one ``comment`` line per
    text line), the stored forces (zeros when absent), the stored energy
    (``0.0`` when absent, as n2p2 requires an ``energy`` line), per-atom
    charges from the calculator's ``charges`` or ``atoms.get_initial_charges()``
    and the total charge ``info['charge']`` (else their sum). Stress and
    per-atom energies have no place in the format and are dropped. Floats
    are written with 17 significant digits, so a round trip is exact up to
    the unit conversion.

    Raises
    ------
    ValueError
        If there is nothing to write or a structure is partially periodic.
    """
    frames = as_atoms_list(structures)
    if not frames:
        raise ValueError(f"{path}: nothing to write (no structures)")
    force_unit = energy_unit / length_unit
    chunks = []
    for k, atoms in enumerate(frames):
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise ValueError(f"{path}: structure {k} has pbc={pbc.tolist()}; n2p2 needs all or none periodic")
        results = calc_results(atoms)
        n = len(atoms)
        forces = np.asarray(results.get("forces", np.zeros((n, 3))), dtype=float) / force_unit
        if "charges" in results:
            charges = np.asarray(results["charges"], dtype=float)
        else:
            charges = np.asarray(atoms.get_initial_charges(), dtype=float)
        n_column = np.asarray(atoms.arrays.get("n2p2_n", np.zeros(n)), dtype=float)
        energy = float(results.get("energy", 0.0)) / energy_unit
        total_charge = float(atoms.info.get("charge", charges.sum()))
        lines = ["begin"]
        comment = atoms.info.get("comment")
        if comment is not None:
            lines.extend(f"comment {c}".rstrip() for c in str(comment).split("\n"))
        if pbc.all():
            for vector in np.asarray(atoms.cell, dtype=float) / length_unit:
                lines.append("lattice " + " ".join(_n2p2_number(v) for v in vector))
        positions = np.asarray(atoms.positions, dtype=float) / length_unit
        symbols = atoms.get_chemical_symbols()
        for i in range(n):
            lines.append(
                "atom "
                + " ".join(_n2p2_number(v) for v in positions[i])
                + f" {symbols[i]:<2s} "
                + " ".join(_n2p2_number(v) for v in (charges[i], n_column[i], *forces[i]))
            )
        lines.append(f"energy {_n2p2_number(energy)}")
        lines.append(f"charge {_n2p2_number(total_charge)}")
        lines.append("end")
        chunks.append("\n".join(lines) + "\n")
    atomic_write(path, lambda fh: fh.writelines(chunks))
