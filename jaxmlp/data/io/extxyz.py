"""Extended XYZ: read with :mod:`ase.io.extxyz`, written by our own writer.

Reading goes through ASE (so any ASE-compatible file works) and is checked
afterwards; layout errors are reported with the file name and line number,
and labels (energy, forces, stress, per-atom energies) must be real numbers:
``energy=T`` (which ASE turns into ``True``) or ``energy=abc`` is refused
with the file, frame and line. The writer stores every float with full
(round-trip) precision, whereas ASE's writer rounds per-atom columns to 8
decimals; files we write are read by ASE and other extxyz readers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ...utils import atomic_write
from .common import PathLike, as_atoms_list, calc_results, read_text, select_frames

__all__ = ["extxyz_frame_text", "read_extxyz", "write_extxyz"]

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


#: Per-atom columns that hold labels: they must be real (``R``) or integer (``I``).
_LABEL_COLUMNS = ("forces", "energies", "stresses", "charges", "magmoms")


def _is_real(value: Any) -> bool:
    """A real number or a numeric array: not a bool (``T``/``F``), not a string."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return False
    kind = np.asarray(value).dtype.kind
    return kind in "iuf"


def _check_labels(lines: list[str], path: Path) -> list[int]:
    """Check every frame's header labels; return the 1-based line of each frame's count line.

    Only the two header lines of each frame are parsed (atom lines are
    skipped), so this is cheap. A per-configuration label (``energy``,
    ``free_energy``, ``stress``, ...) must be a real number: ASE would read
    ``energy=T`` as ``True`` and store 1.0 eV, and keep ``energy=abc`` as a
    string that fails much later. Per-atom label columns (``forces``,
    ``energies``, ...) must be declared ``R`` or ``I`` (a logical column
    would become 0/1 eV/Å). Stops quietly where the layout breaks; ASE and
    :func:`_locate_extxyz_error` report that. A header ASE cannot parse
    (for example a non-numeric ``stress``) is reported with its line.
    """
    from ase.io.extxyz import key_val_str_to_dict, per_config_properties

    starts: list[int] = []
    i, n_lines = 0, len(lines)
    while i < n_lines:
        if not lines[i].strip():
            i += 1
            continue
        try:
            n_atoms = int(lines[i].strip())
        except ValueError:
            break
        if i + 1 >= n_lines or n_atoms < 0:
            break
        frame, line = len(starts), i + 2
        starts.append(i + 1)
        where = f"{path}, line {line} (frame {frame})"
        try:
            header = key_val_str_to_dict(lines[i + 1])
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}: malformed comment line: {exc}") from None
        for key in per_config_properties:
            if key in header and not _is_real(header[key]):
                raise ValueError(f"{where}: {key}={_raw_value(lines[i + 1], key)} is not a number")
        for name, kind, count in _parse_properties(lines[i + 1]) or []:
            if name in _LABEL_COLUMNS and kind not in ("R", "I"):
                raise ValueError(
                    f"{where}: column {name!r} is declared {name}:{kind}:{count} "
                    f"({_COLUMN_TYPES.get(kind, kind)}); labels must be real numbers (R)"
                )
        if n_atoms == 0:
            raise ValueError(f"{path}, line {i + 1} (frame {frame}): structure has no atoms")
        i += n_atoms + 2
    return starts


def _raw_value(comment: str, key: str) -> str:
    """The raw text after ``key=`` in an extxyz comment line (for messages)."""
    match = re.search(rf"(?:^|\s){re.escape(key)}\s*=\s*(\"[^\"]*\"|\S+)", comment, re.IGNORECASE)
    return match.group(1) if match else "?"


def _check_frame(atoms: Atoms, path: Path, k: int, start: int | None) -> None:
    where = f"{path}, line {start} (frame {k})" if start is not None else f"{path}: frame {k}"
    n = len(atoms)
    results = atoms.calc.results if atoms.calc is not None else {}
    expected = {"forces": (n, 3), "energies": (n,), "stress": (6,)}
    for key, shape in expected.items():
        if key in results and np.shape(results[key]) != shape:
            raise ValueError(f"{where}: {key!r} has shape {np.shape(results[key])}, expected {shape}")
    for key, value in results.items():
        if not _is_real(value):
            raise ValueError(f"{where}: {key!r} is not a number: {value!r}")
    if "energy" in results and np.ndim(results["energy"]) != 0:
        raise ValueError(f"{where}: 'energy' must be a scalar, got shape {np.shape(results['energy'])}")


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
        Also for a label that is not a real number (``energy=T``,
        ``energy=abc``, a non-numeric stress, a ``forces`` column declared
        logical or string) and for a frame with no atoms; the message names
        the file, the line and the frame.
    """
    import ase.io

    p, text = read_text(path)
    lines = text.splitlines()
    starts = _check_labels(lines, p)
    try:
        frames = ase.io.read(p, index=":", format="extxyz")
    except Exception as exc:  # ase raises several types (XYZError, ValueError, IndexError, ...)
        where = _locate_extxyz_error(lines)
        if where is not None:
            line, message = where
            raise ValueError(f"{p}, line {line}: {message} [ase: {exc}]") from exc
        raise ValueError(f"{p}: not a valid extxyz file: {type(exc).__name__}: {exc}") from exc
    if not isinstance(frames, list):
        frames = [frames]
    for k, atoms in enumerate(frames):
        _check_frame(atoms, p, k, starts[k] if k < len(starts) else None)
    return select_frames(frames, index, p)


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


def extxyz_frame_text(atoms: Atoms) -> str:
    """One frame of extended XYZ text with full float precision."""
    from ase.io.extxyz import (
        key_val_dict_to_str,
        per_atom_properties,
        per_config_properties,
    )

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
    frames = as_atoms_list(structures)
    if not frames:
        raise ValueError(f"{path}: nothing to write (no structures)")
    chunks = [extxyz_frame_text(atoms) for atoms in frames]
    atomic_write(path, lambda fh: fh.writelines(chunks))
