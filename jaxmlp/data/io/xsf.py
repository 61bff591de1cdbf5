"""XSF (XCrySDen structure files) through :mod:`ase.io.xsf`.

Forces in the file are in Hartree/Å by default (the XCrySDen/ASE
convention); aenet-style files store eV/Å, pass ``force_unit=1.0`` for
those. The total energy is taken from aenet-style ``# total energy = <E> eV``
comment lines, one per frame.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import IO

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
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
        Missing, empty or malformed file (the message names the file).
    """
    import ase.io

    p, text = read_text(path)
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
