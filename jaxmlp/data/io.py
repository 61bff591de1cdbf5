"""Reading and writing labelled structures: extended XYZ, XSF and n2p2.

Every reader returns a ``list[ase.Atoms]``. Reference labels live in a
:class:`~ase.calculators.singlepoint.SinglePointCalculator` attached to each
structure (the ASE >= 3.23 convention), so they come back with
``atoms.get_potential_energy()`` (eV), ``atoms.get_forces()`` (``[N, 3]``,
eV/Å), ``atoms.get_stress()`` (``[6]`` Voigt xx yy zz yz xz xy, eV/Å³, ASE
sign) and ``atoms.get_potential_energies()`` (``[N]``, eV).

Formats
-------
``"extxyz"``
    Read with :mod:`ase.io.extxyz` (so any ASE-compatible file works) and
    checked afterwards; errors are reported with the file name and line
    number. Written by our own writer, which stores every float with full
    (round-trip) precision, whereas ASE's writer rounds per-atom columns to
    8 decimals. Files we write are read by ASE and other extxyz readers.
``"xsf"``
    XCrySDen structure files through :mod:`ase.io.xsf`. Forces in the file
    are in Hartree/Å by default (the XCrySDen/ASE convention); aenet-style
    files store eV/Å, pass ``force_unit=1.0`` for those. The total energy is
    taken from an aenet-style ``# total energy = <E> eV`` comment line.
``"n2p2"``
    RuNNer/n2p2 ``input.data`` files (``begin``, ``comment``, ``lattice``
    x3, ``atom x y z element charge n fx fy fz``, ``energy``, ``charge``,
    ``end``), with our own reader and writer. ``length_unit`` and
    ``energy_unit`` give the file's units in Å and eV (for example
    ``ase.units.Bohr`` and ``ase.units.Hartree``): values are converted to
    Å/eV on reading and back on writing.

Writing is atomic: data go to a temporary file in the destination folder,
which then replaces the destination with :func:`os.replace`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers, chemical_symbols
from ase.units import Hartree

__all__ = [
    "SUPPORTED_FORMATS",
    "detect_format",
    "read",
    "write",
    "read_extxyz",
    "write_extxyz",
    "read_xsf",
    "write_xsf",
    "read_n2p2",
    "write_n2p2",
    "calc_results",
]

#: Names accepted by ``format=``.
SUPPORTED_FORMATS = ("extxyz", "xsf", "n2p2")

_FORMAT_ALIASES = {
    "extxyz": "extxyz",
    "xyz": "extxyz",
    "xsf": "xsf",
    "n2p2": "n2p2",
    "runner": "n2p2",
    "input.data": "n2p2",
}

PathLike = str | os.PathLike


# ----------------------------------------------------------------------------
# helpers shared by all formats
# ----------------------------------------------------------------------------


def detect_format(path: PathLike, format: str | None = None) -> str:
    """Return the canonical format name for ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        File name; only its name is inspected. ``*.extxyz`` and ``*.xyz``
        map to ``"extxyz"``, ``*.xsf`` to ``"xsf"``, ``input.data``,
        ``input.data.*`` and ``*.data`` to ``"n2p2"``.
    format : str, optional
        Explicit format (case-insensitive); one of :data:`SUPPORTED_FORMATS`
        or the aliases ``"xyz"``, ``"runner"``, ``"input.data"``. Overrides
        the extension.

    Returns
    -------
    str
        One of :data:`SUPPORTED_FORMATS`.

    Raises
    ------
    ValueError
        If ``format`` is unknown or the extension gives no format; the
        message lists the supported formats.
    """
    supported = ", ".join(repr(f) for f in SUPPORTED_FORMATS)
    if format is not None:
        key = str(format).lower()
        if key not in _FORMAT_ALIASES:
            raise ValueError(f"unknown format {format!r}; supported formats are {supported}")
        return _FORMAT_ALIASES[key]
    name = Path(path).name.lower()
    if name.endswith((".extxyz", ".xyz")):
        return "extxyz"
    if name.endswith(".xsf"):
        return "xsf"
    if name == "input.data" or name.startswith("input.data.") or name.endswith(".data"):
        return "n2p2"
    raise ValueError(
        f"cannot tell the format of {str(path)!r} from its name; pass format= "
        f"one of {supported}"
    )


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


def _check_exists(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {str(p)!r}")
    if p.is_dir():
        raise IsADirectoryError(f"expected a file, got a directory: {str(p)!r}")
    return p


def _check_not_empty(path: Path, text: str) -> None:
    if not text.strip():
        raise ValueError(f"{path}: file is empty")


def _select(frames: list[Atoms], index: int | slice | str | Sequence[int], path: Path) -> list[Atoms]:
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


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(path: PathLike, write_fn: Callable[[IO[str]], None]) -> None:
    """Write a text file atomically: temp file in the same folder, then os.replace."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder does not exist: {str(folder)!r} (writing {str(target)!r})")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            write_fn(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _as_list(structures: Atoms | Iterable[Atoms]) -> list[Atoms]:
    if isinstance(structures, Atoms):
        return [structures]
    frames = list(structures)
    for k, atoms in enumerate(frames):
        if not isinstance(atoms, Atoms):
            raise TypeError(f"structure {k} is a {type(atoms).__name__}, expected ase.Atoms")
    return frames


def _attach(atoms: Atoms, results: dict[str, Any]) -> Atoms:
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


# ----------------------------------------------------------------------------
# extended XYZ
# ----------------------------------------------------------------------------

_PROPERTIES_RE = re.compile(r"Properties\s*=\s*([^\s\"]+)", re.IGNORECASE)
_COLUMN_TYPES = {"S": "string", "R": "real", "I": "integer", "L": "logical"}


def _parse_properties(comment: str) -> list[tuple[str, str, int]] | None:
    match = _PROPERTIES_RE.search(comment)
    if match is None:
        return None
    fields = match.group(1).split(":")
    if len(fields) % 3 != 0:
        return []
    columns = []
    for name, kind, count in zip(fields[0::3], fields[1::3], fields[2::3]):
        try:
            columns.append((name, kind.upper(), int(count)))
        except ValueError:
            return []
    return columns


def _locate_extxyz_error(lines: list[str]) -> tuple[int, str] | None:
    """Find the first structural problem in an extxyz file.

    Returns ``(line_number, message)`` with 1-based line numbers, or None
    when the layout looks fine (the problem is then inside a value that ASE
    rejected).
    """
    i = 0
    n_lines = len(lines)
    frame = 0
    while i < n_lines:
        if not lines[i].strip():  # ASE skips blank lines between frames
            i += 1
            continue
        try:
            n_atoms = int(lines[i].strip())
        except ValueError:
            return i + 1, f"expected the atom count of frame {frame}, got {lines[i].strip()[:60]!r}"
        if n_atoms < 0:
            return i + 1, f"negative atom count {n_atoms} for frame {frame}"
        if i + 1 >= n_lines:
            return i + 1, f"frame {frame} has no comment line (file ends)"
        columns = _parse_properties(lines[i + 1])
        if columns == []:
            return i + 2, f"malformed Properties= entry in the comment line of frame {frame}"
        if columns is None:
            columns = [("species", "S", 1), ("pos", "R", 3)]
            exact = False
        else:
            exact = True
        n_fields = sum(c for _, _, c in columns)
        for k in range(n_atoms):
            j = i + 2 + k
            if j >= n_lines or not lines[j].strip():
                what = "a blank line follows" if j < n_lines else "the file ends"
                return min(j + 1, n_lines), (
                    f"frame {frame} (starting at line {i + 1}) declares {n_atoms} atoms "
                    f"but only {k} atom line(s) follow before {what}"
                )
            fields = lines[j].split()
            if (exact and len(fields) != n_fields) or len(fields) < n_fields:
                return j + 1, (
                    f"atom line of frame {frame} has {len(fields)} fields, expected "
                    f"{n_fields} from Properties "
                    + ":".join(f"{a}:{b}:{c}" for a, b, c in columns)
                )
            pos = 0
            for name, kind, count in columns:
                for value in fields[pos : pos + count]:
                    try:
                        if kind == "R":
                            float(value)
                        elif kind == "I":
                            int(value)
                        elif kind == "L" and value not in ("T", "F", "True", "False", "true", "false"):
                            raise ValueError
                    except ValueError:
                        return j + 1, (
                            f"field {value!r} of column {name!r} is not a valid "
                            f"{_COLUMN_TYPES.get(kind, kind)} (frame {frame})"
                        )
                pos += count
        i += n_atoms + 2
        frame += 1
    return None


def _check_frame(atoms: Atoms, path: Path, k: int) -> None:
    n = len(atoms)
    results = atoms.calc.results if atoms.calc is not None else {}
    expected = {"forces": (n, 3), "energies": (n,), "stress": (6,)}
    for key, shape in expected.items():
        if key in results and np.shape(results[key]) != shape:
            raise ValueError(f"{path}: frame {k}: {key!r} has shape {np.shape(results[key])}, expected {shape}")
    if "energy" in results and np.ndim(results["energy"]) != 0:
        raise ValueError(f"{path}: frame {k}: 'energy' must be a scalar, got shape {np.shape(results['energy'])}")


def read_extxyz(path: PathLike, index: int | slice | str = ":") -> list[Atoms]:
    """Read an extended XYZ file.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.
    index : int, slice or str, optional
        Frames to return (ASE syntax: ``":"``, ``"-1"``, ``"0:10:2"``, ...).

    Returns
    -------
    list of ase.Atoms
        Positions in Å; labels (energy eV, forces ``[N, 3]`` eV/Å, stress
        ``[6]`` eV/Å³, per-atom energies ``[N]`` eV) in a SinglePointCalculator.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For an empty or malformed file; the message names the file and the
        line number where the layout breaks, and carries ASE's own message.
    """
    import ase.io

    p = _check_exists(path)
    text = p.read_text(encoding="utf-8", errors="replace")
    _check_not_empty(p, text)
    try:
        frames = ase.io.read(p, index=":", format="extxyz")
    except Exception as exc:  # ase raises several types (XYZError, ValueError, IndexError, ...)
        where = _locate_extxyz_error(text.splitlines())
        if where is not None:
            line, message = where
            raise ValueError(f"{p}, line {line}: {message} [ase: {exc}]") from exc
        raise ValueError(f"{p}: not a valid extxyz file: {type(exc).__name__}: {exc}") from exc
    if not isinstance(frames, list):
        frames = [frames]
    for k, atoms in enumerate(frames):
        _check_frame(atoms, p, k)
    return _select(frames, index, p)


def _format_value(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "T" if value else "F"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    text = str(value)
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"extxyz column values may not contain whitespace: {text!r}")
    return text


def _column_kind(array: np.ndarray) -> str:
    kind = array.dtype.kind
    if kind == "f":
        return "R"
    if kind in "iu":
        return "I"
    if kind == "b":
        return "L"
    if kind in "US":
        return "S"
    raise ValueError(f"cannot write arrays of dtype {array.dtype} to extxyz")


def _extxyz_frame(atoms: Atoms) -> str:
    """One frame of extended XYZ text with full float precision."""
    from ase.io.extxyz import key_val_dict_to_str, per_atom_properties, per_config_properties

    n = len(atoms)
    results = calc_results(atoms)
    columns: list[tuple[str, np.ndarray]] = [
        ("species", np.array(atoms.get_chemical_symbols())),
        ("pos", np.asarray(atoms.positions, dtype=float)),
    ]
    skip = {"numbers", "positions", "species", "pos", "symbols"}
    per_atom = {k: np.asarray(v) for k, v in results.items() if k in per_atom_properties and np.shape(v)[:1] == (n,)}
    for key, value in atoms.arrays.items():
        if key in skip or key in per_atom:
            continue
        columns.append((key, np.asarray(value)))
    for key, value in per_atom.items():
        columns.append(("charge" if key == "charges" else key, value))

    props = []
    table = []
    for name, array in columns:
        if array.ndim == 1:
            ncol = 1
            array = array[:, None]
        elif array.ndim == 2:
            ncol = array.shape[1]
        else:
            raise ValueError(f"cannot write array {name!r} with shape {array.shape} to extxyz")
        props.append(f"{name}:{_column_kind(array)}:{ncol}")
        table.append(array)

    header: dict[str, Any] = {}
    if np.asarray(atoms.cell).any():
        header["Lattice"] = np.asarray(atoms.cell, dtype=float).T
    header["Properties"] = ":".join(props)
    for key, value in results.items():
        if key in per_config_properties and key not in per_atom:
            if key == "stress":
                s = np.asarray(value, dtype=float)
                value = np.array([[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])
            header[key] = value
    for key, value in atoms.info.items():
        if key not in header and key not in ("pbc", "Lattice", "Properties"):
            if isinstance(value, str):
                # one extxyz frame header is one line: newlines cannot be stored
                value = " ".join(value.splitlines())
            header[key] = value
    header["pbc"] = np.asarray(atoms.pbc, dtype=bool)

    lines = [str(n), key_val_dict_to_str(header)]
    for i in range(n):
        lines.append(" ".join(_format_value(v) for array in table for v in array[i]))
    return "\n".join(lines) + "\n"


def write_extxyz(path: PathLike, structures: Atoms | Iterable[Atoms]) -> None:
    """Write structures and their stored labels to an extended XYZ file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; replaced atomically.
    structures : ase.Atoms or iterable of ase.Atoms
        Structures with positions ``[N, 3]`` Å; stored calculator results
        (energy eV, forces ``[N, 3]`` eV/Å, stress ``[6]`` eV/Å³, energies
        ``[N]`` eV, ...), ``atoms.info`` and extra ``atoms.arrays`` are
        written too (newlines in string values become spaces, since the
        frame header is a single line). Constraints are not written.

    Raises
    ------
    ValueError
        If there is nothing to write or a value cannot be represented.
    """
    frames = _as_list(structures)
    if not frames:
        raise ValueError(f"{path}: nothing to write (no structures)")
    chunks = [_extxyz_frame(atoms) for atoms in frames]
    _atomic_write(path, lambda fh: fh.writelines(chunks))


# ----------------------------------------------------------------------------
# XSF
# ----------------------------------------------------------------------------

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

    p = _check_exists(path)
    text = p.read_text(encoding="utf-8", errors="replace")
    _check_not_empty(p, text)
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
        out.append(_attach(atoms, results))
    return _select(out, index, p)


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

    frames = _as_list(structures)
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

    _atomic_write(path, _write)


# ----------------------------------------------------------------------------
# n2p2 / RuNNer input.data
# ----------------------------------------------------------------------------

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
        non-numeric field, an unknown element, a missing ``end``, an
        ``atom``/``lattice``/... line outside ``begin``/``end``, a structure
        with 1, 2 or more than 3 ``lattice`` lines or with no atoms, and a
        repeated ``energy``/``charge`` line. The message names the file and
        the line number.
    """
    p = _check_exists(path)
    text = p.read_text(encoding="utf-8", errors="replace")
    _check_not_empty(p, text)
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
    return _select(frames, index, p)


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
    return _attach(atoms, results)


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
    frames = _as_list(structures)
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
    _atomic_write(path, lambda fh: fh.writelines(chunks))


# ----------------------------------------------------------------------------
# front door
# ----------------------------------------------------------------------------

_READERS: dict[str, Callable[..., list[Atoms]]] = {
    "extxyz": read_extxyz,
    "xsf": read_xsf,
    "n2p2": read_n2p2,
}
_WRITERS: dict[str, Callable[..., None]] = {
    "extxyz": write_extxyz,
    "xsf": write_xsf,
    "n2p2": write_n2p2,
}


def read(path: PathLike, index: int | slice | str = ":", format: str | None = None, **kwargs: Any) -> list[Atoms]:
    """Read labelled structures from extxyz, XSF or n2p2 ``input.data``.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.
    index : int, slice or str, optional
        Frames to return, ASE syntax (``":"`` all, ``-1`` last,
        ``"0:10:2"``). An int still returns a one-element list.
    format : str, optional
        ``"extxyz"``, ``"xsf"`` or ``"n2p2"``; by default from the file name
        (see :func:`detect_format`).
    **kwargs
        Format options: ``length_unit``, ``energy_unit`` (n2p2, file units in
        Å and eV) and ``force_unit`` (xsf, eV/Å).

    Returns
    -------
    list of ase.Atoms
        Positions ``[N, 3]`` in Å, cell ``[3, 3]`` in Å; labels in a
        SinglePointCalculator: energy (eV), forces ``[N, 3]`` (eV/Å),
        stress ``[6]`` (eV/Å³, Voigt xx yy zz yz xz xy, ASE sign), per-atom
        energies ``[N]`` (eV), as far as the file holds them.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For an unknown format (the message lists the supported ones), an
        empty file or a malformed file (the message names the file and the
        line number).
    """
    p = _check_exists(path)
    fmt = detect_format(p, format)
    return _READERS[fmt](p, index, **kwargs)


def write(path: PathLike, structures: Atoms | Iterable[Atoms], format: str | None = None, **kwargs: Any) -> None:
    """Write structures with their stored labels; atomic replace of ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its folder must exist.
    structures : ase.Atoms or iterable of ase.Atoms
        Structures (a :class:`~jaxmlp.data.Dataset` works too); labels are
        taken from the stored calculator results, no calculation is run.
    format : str, optional
        ``"extxyz"``, ``"xsf"`` or ``"n2p2"``; by default from the file name.
    **kwargs
        Format options: ``length_unit``, ``energy_unit`` (n2p2) and
        ``force_unit`` (xsf).

    Raises
    ------
    ValueError
        For an unknown format, no structures, or a structure the format
        cannot represent.
    """
    fmt = detect_format(path, format)
    _WRITERS[fmt](path, structures, **kwargs)
