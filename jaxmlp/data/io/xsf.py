"""XSF (XCrySDen structure files) through :mod:`ase.io.xsf`.

Forces in the file are in Hartree/Å by default (the XCrySDen/ASE
convention); aenet-style files store eV/Å, pass ``force_unit=1.0`` for
those. The total energy is taken from aenet-style ``# total energy = <E> eV``
comment lines, one per frame.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers, chemical_symbols
from ase.units import Hartree

from ...utils import atomic_write
from .common import (
    PathLike,
    as_atoms_list,
    attach_results,
    calc_results,
    read_text,
    select_frames,
)

__all__ = ["read_xsf", "write_xsf"]

_XSF_ENERGY_RE = re.compile(r"^\s*#\s*total\s+energy\s*=\s*(\S+)\s*(\S*)", re.IGNORECASE)


_PERIODIC_KEYWORDS = {"CRYSTAL": 3, "SLAB": 2, "POLYMER": 1}


class _XSFLines:
    """Non-blank, non-comment lines of an XSF file with their 1-based line numbers."""

    def __init__(self, text: str, path: Path) -> None:
        self.path = path
        self.items = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), 1)
                      if raw.strip() and not raw.strip().startswith("#")]
        self.pos = 0

    def error(self, lineno: int, message: str) -> ValueError:
        return ValueError(f"{self.path}, line {lineno}: {message}")

    def peek(self) -> tuple[int, str] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def take(self, what: str) -> tuple[int, str]:
        item = self.peek()
        if item is None:
            last = self.items[-1][0] if self.items else 0
            raise ValueError(f"{self.path}: file ends after line {last}, expected {what}")
        self.pos += 1
        return item

    def keyword(self) -> str | None:
        item = self.peek()
        if item is None:
            return None
        word = item[1].split()[0].upper()
        return "BEGIN" if word.startswith("BEGIN_") else word


def _xsf_numbers(lines: _XSFLines, lineno: int, fields: list[str], what: str) -> None:
    for field in fields:
        try:
            float(field)
        except ValueError:
            raise lines.error(lineno, f"{what}: {field!r} is not a number") from None


def _xsf_atom(lines: _XSFLines, frame: int) -> int:
    """Check one atom line; return its number of fields (4, or 7 with forces)."""
    lineno, text = lines.take(f"an atom line of frame {frame}")
    fields = text.split()
    if len(fields) not in (4, 7):
        raise lines.error(
            lineno, f"atom line of frame {frame} has {len(fields)} fields; expected 4 (Z x y z) "
            "or 7 (Z x y z fx fy fz)"
        )
    symbol = fields[0]
    if symbol.isdigit():
        valid = 1 <= int(symbol) < len(chemical_symbols)
    else:
        valid = symbol.capitalize() in atomic_numbers and atomic_numbers[symbol.capitalize()] > 0
    if not valid:
        raise lines.error(lineno, f"unknown element {symbol!r} in an atom line of frame {frame}")
    _xsf_numbers(lines, lineno, fields[1:], f"atom line of frame {frame}")
    return len(fields)


def _check_xsf_layout(text: str, path: Path) -> None:
    """Walk the structure part of an XSF file; raise ValueError with the line of the first problem.

    ASE's reader asserts without line numbers, reads only the first frame
    when ``ANIMSTEPS`` is missing and the first ``ANIMSTEPS`` frames when
    there are more, and takes any atom count at face value; here every
    frame is checked (keywords, 3x3 vectors, declared atom count against
    the atom lines, 4 or 7 fields per atom line, elements, numbers).
    Data grids (``BEGIN_...`` blocks) end the walk.
    """
    lines = _XSFLines(text, path)
    n_steps, steps_line = None, None
    if lines.keyword() == "ANIMSTEPS":
        steps_line, line = lines.take("ANIMSTEPS")
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) < 1:
            raise lines.error(steps_line, f"ANIMSTEPS needs a positive frame count, got {line!r}")
        n_steps = int(fields[1])
    kind = lines.keyword()
    if kind in _PERIODIC_KEYWORDS:
        lines.take(kind)
    elif kind != "ATOMS":
        lineno, line = lines.take("CRYSTAL, SLAB, POLYMER or ATOMS")
        raise lines.error(lineno, f"expected CRYSTAL, SLAB, POLYMER or ATOMS, got {line[:60]!r}")
    frames, have_cell = 0, False
    while lines.keyword() not in (None, "BEGIN"):
        if kind in _PERIODIC_KEYWORDS:
            while lines.keyword() in ("PRIMVEC", "CONVVEC"):
                word = lines.keyword()
                lines.take(word)
                for _ in range(3):
                    lineno, line = lines.take(f"a {word} vector")
                    fields = line.split()
                    if len(fields) != 3:
                        raise lines.error(lineno, f"{word} vector needs 3 numbers, got {len(fields)} field(s)")
                    _xsf_numbers(lines, lineno, fields, f"{word} vector")
                have_cell = have_cell or word == "PRIMVEC"
            lineno, line = lines.take(f"PRIMCOORD of frame {frames}")
            if lines.items[lines.pos - 1][1].split()[0].upper() != "PRIMCOORD":
                raise lines.error(lineno, f"expected PRIMVEC or PRIMCOORD of frame {frames}, got {line[:60]!r}")
            if not have_cell:
                raise lines.error(lineno, f"PRIMCOORD of frame {frames} before any PRIMVEC (no cell)")
            count_line, line = lines.take("the atom count after PRIMCOORD")
            fields = line.split()
            if not fields or not fields[0].isdigit():
                raise lines.error(count_line, f"expected the atom count of frame {frames}, got {line[:60]!r}")
            n_atoms = int(fields[0])
            if n_atoms == 0:
                raise lines.error(count_line, f"frame {frames} has no atoms")
            widths = {_xsf_atom(lines, frames) for _ in range(n_atoms)}
            following = lines.keyword()
            if following not in (None, "BEGIN", "PRIMVEC", "CONVVEC", "PRIMCOORD"):
                lineno, line = lines.peek()
                raise lines.error(
                    lineno, f"expected the end of frame {frames} (line {count_line} declares {n_atoms} atoms), "
                    f"got {line[:60]!r}"
                )
        else:
            lineno, line = lines.take("ATOMS")
            if line.split()[0].upper() != "ATOMS":
                raise lines.error(lineno, f"expected ATOMS of frame {frames}, got {line[:60]!r}")
            widths = set()
            while lines.keyword() not in (None, "BEGIN", "ATOMS"):
                widths.add(_xsf_atom(lines, frames))
            if not widths:
                raise lines.error(lineno, f"frame {frames} has no atoms")
        if len(widths) > 1:
            raise lines.error(lineno, f"frame {frames} mixes atom lines with and without forces")
        frames += 1
    if frames == 0:
        raise ValueError(f"{path}: no structures found")
    if n_steps is None and frames > 1:
        raise ValueError(f"{path}: {frames} frames but no ANIMSTEPS line (ASE would read only the first)")
    if n_steps is not None and n_steps != frames:
        raise lines.error(steps_line, f"ANIMSTEPS {n_steps} but the file holds {frames} frame(s)")


def read_xsf(path: PathLike, index: int | slice | str = ":", force_unit: float = Hartree) -> list[Atoms]:
    """Read an XSF (XCrySDen) file, single structure or ``ANIMSTEPS``.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.
    index : int, slice or str, optional
        Frames to return.
    force_unit : float, optional
        Unit of the force columns in eV/Å: ``ase.units.Hartree`` (default,
        XCrySDen and ASE convention: Hartree/Å) or ``1.0`` for aenet files.

    Returns
    -------
    list of ase.Atoms
        Positions in Å; forces ``[N, 3]`` in eV/Å and, when the file has
        ``# total energy = <E> eV`` comment lines (one per frame, in order),
        the energy in eV, in a SinglePointCalculator.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing, empty or malformed file: the message names the file and
        the line (unknown keyword, a vector without 3 numbers, an atom count
        that does not match the atom lines, an atom line without 4 or 7
        fields, an unknown element, a non-number, a frame with no atoms,
        ``ANIMSTEPS`` that disagrees with the frames, a malformed
        ``# total energy`` line).
    """
    import ase.io

    p, text = read_text(path)
    _check_xsf_layout(text, p)
    try:
        frames = ase.io.read(p, index=":", format="xsf")
    except Exception as exc:
        raise ValueError(f"{p}: not a valid XSF file: {type(exc).__name__}: {exc}") from exc
    if not isinstance(frames, list):
        frames = [frames]
    energies = []
    for lineno, line in enumerate(text.splitlines(), 1):
        match = _XSF_ENERGY_RE.match(line)
        if match:
            value, unit = match.groups()
            if unit and unit.lower() not in ("ev", "ev."):
                raise ValueError(f"{p}, line {lineno}: total energy unit {unit!r} is not supported (expected eV)")
            try:
                energies.append(float(value))
            except ValueError:
                raise ValueError(f"{p}, line {lineno}: total energy {value!r} is not a number") from None
    if energies and len(energies) != len(frames):
        raise ValueError(f"{p}: {len(energies)} '# total energy' line(s) for {len(frames)} frame(s)")
    out = []
    for k, atoms in enumerate(frames):
        results = {}
        if atoms.calc is not None and "forces" in atoms.calc.results:
            results["forces"] = np.asarray(atoms.calc.results["forces"]) * (force_unit / Hartree)
        if energies:
            results["energy"] = energies[k]
        atoms.calc = None
        out.append(attach_results(atoms, results))
    return select_frames(out, index, p)


def write_xsf(path: PathLike, structures: Atoms | Iterable[Atoms], force_unit: float = Hartree) -> None:
    """Write structures to an XSF file (ANIMSTEPS for several frames).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; replaced atomically.
    structures : ase.Atoms or iterable of ase.Atoms
        All with the same pbc. Positions and cell in Å.
    force_unit : float, optional
        Unit of the force columns written, in eV/Å (default Hartree/Å).

    Notes
    -----
    Stored forces are written as extra columns. Energies, when every frame
    has one, are written as ``# total energy = <E> eV`` lines at the top of
    the file, one per frame (the aenet convention for a single frame).
    Stress is not representable in XSF and is dropped.
    """
    from ase.io.xsf import write_xsf as _ase_write_xsf

    frames = as_atoms_list(structures)
    if not frames:
        raise ValueError(f"{path}: nothing to write (no structures)")
    pbc0 = tuple(bool(b) for b in frames[0].pbc)
    prepared = []
    energies = []
    for k, atoms in enumerate(frames):
        if tuple(bool(b) for b in atoms.pbc) != pbc0:
            raise ValueError(f"{path}: all XSF frames need the same pbc; frame {k} differs")
        if sum(pbc0) not in (0, 3) and pbc0 not in ((True, True, False), (True, False, False)):
            raise ValueError(f"{path}: XSF cannot store pbc={list(pbc0)}")
        results = calc_results(atoms)
        copy = atoms.copy()
        if "forces" in results:
            copy.calc = SinglePointCalculator(copy, forces=np.asarray(results["forces"]) * (Hartree / force_unit))
        prepared.append(copy)
        energies.append(results.get("energy"))
    have_energy = all(e is not None for e in energies)

    def _write(fh: IO[str]) -> None:
        if have_energy:
            for e in energies:
                fh.write(f"# total energy = {float(e)!r} eV\n")
            fh.write("\n")
        _ase_write_xsf(fh, prepared)

    atomic_write(path, _write)
