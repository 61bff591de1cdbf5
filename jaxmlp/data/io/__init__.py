"""Reading and writing labelled structures: extended XYZ, XSF and n2p2.

Every reader returns a ``list[ase.Atoms]``. Reference labels live in a
:class:`~ase.calculators.singlepoint.SinglePointCalculator` attached to each
structure (the ASE >= 3.23 convention), so they come back with
``atoms.get_potential_energy()`` (eV), ``atoms.get_forces()`` (``[N, 3]``,
eV/Å), ``atoms.get_stress()`` (``[6]`` Voigt xx yy zz yz xz xy, eV/Å³, ASE
sign) and ``atoms.get_potential_energies()`` (``[N]``, eV).

Formats (one module each)
-------------------------
``"extxyz"`` (:mod:`.extxyz`)
    Read with :mod:`ase.io.extxyz` and checked afterwards (file, frame and
    line in every error); written with full float precision.
``"xsf"`` (:mod:`.xsf`)
    XCrySDen files through :mod:`ase.io.xsf`; forces in Hartree/Å by
    default (``force_unit=1.0`` for aenet's eV/Å); energies from
    ``# total energy = <E> eV`` comment lines.
``"n2p2"`` (:mod:`.n2p2_data`)
    RuNNer/n2p2 ``input.data`` files; ``length_unit`` and ``energy_unit``
    give the file's units in Å and eV.

Writing is atomic (:func:`jaxmlp.utils.atomic_write`): data go to a
temporary file in the destination folder, which then replaces the
destination.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ase import Atoms

from .common import PathLike, calc_results, check_exists
from .extxyz import read_extxyz, write_extxyz
from .n2p2_data import read_n2p2, write_n2p2
from .xsf import read_xsf, write_xsf

__all__ = [
    "SUPPORTED_FORMATS",
    "calc_results",
    "detect_format",
    "read",
    "read_extxyz",
    "read_n2p2",
    "read_xsf",
    "write",
    "write_extxyz",
    "write_n2p2",
    "write_xsf",
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
    p = check_exists(path)
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
