"""Built-in datasets generated offline at run time, and simple geometry builders.

Nothing here downloads anything: structures come from our own geometry code
(and :mod:`ase.build` / :mod:`ase.cluster`) and are labelled with ASE's
:class:`~ase.calculators.emt.EMT` (Cu) or GFN2-xTB through tblite (organic
molecules). :func:`default_dataset` caches the labelled files so examples and
the CLI pay the labelling cost once.

Geometry builders (all lengths in Å, non-periodic unless stated):

* :func:`alkane` — all-trans n-alkane C_nH_{2n+2}, C–C 1.54 Å, C–H 1.09 Å,
  tetrahedral angles.
* :func:`polyene` — all-trans planar polyene C_nH_{n+2} with alternating
  C=C 1.34 Å / C–C 1.46 Å bonds, C–H 1.09 Å, 120° angles.
* :func:`biphenyl` — two phenyl rings (C–C 1.39 Å) joined by a 1.48 Å bond,
  twisted by a dihedral angle.
* :func:`linear_chain` — equally spaced atoms on a line, for locality tests.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

__all__ = [
    "DEFAULT_DATASETS",
    "alkane",
    "biphenyl",
    "cu_bulk",
    "cu_clusters",
    "default_cache_dir",
    "default_dataset",
    "linear_chain",
    "organic_molecules",
    "polyene",
]

#: Bumped whenever a generator changes what it makes, so stale caches are not reused.
GENERATOR_VERSION = 1

CC_SINGLE = 1.54
CC_CONJ_SINGLE = 1.46
CC_DOUBLE = 1.34
CC_AROMATIC = 1.39
CC_BIARYL = 1.48
CH = 1.09
TETRAHEDRAL = float(np.degrees(np.arccos(-1.0 / 3.0)))  # 109.47°
CU_LATTICE = 3.6


# ----------------------------------------------------------------------------
# geometry builders
# ----------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _zigzag(bond_lengths: Sequence[float], angle: float) -> np.ndarray:
    """Planar (xy) zig-zag backbone with the given bond lengths and bond angle (degrees)."""
    beta = np.radians(180.0 - angle) / 2.0
    points = [np.zeros(3)]
    for i, length in enumerate(bond_lengths):
        sign = 1.0 if i % 2 == 0 else -1.0
        points.append(points[-1] + length * np.array([np.cos(beta), sign * np.sin(beta), 0.0]))
    return np.array(points)


def _virtual_ends(backbone: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions from the first/last atom to where the zig-zag would continue."""
    beta = np.radians(180.0 - angle) / 2.0
    n_bonds = len(backbone) - 1
    # the bond before the first atom has sign -1 (alternation), i.e. direction (cos β, -sin β)
    before = -np.array([np.cos(beta), -np.sin(beta), 0.0])
    sign_after = 1.0 if n_bonds % 2 == 0 else -1.0
    after = np.array([np.cos(beta), sign_after * np.sin(beta), 0.0])
    return before, after


def _neighbour_directions(backbone: np.ndarray, angle: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each backbone atom, unit vectors to its two backbone neighbours (virtual at the ends)."""
    before, after = _virtual_ends(backbone, angle)
    n = len(backbone)
    out = []
    for i in range(n):
        a = _unit(backbone[i - 1] - backbone[i]) if i > 0 else before
        b = _unit(backbone[i + 1] - backbone[i]) if i < n - 1 else after
        out.append((a, b))
    return out


def alkane(n_carbon: int) -> Atoms:
    """All-trans n-alkane C_nH_{2n+2} (methane for ``n_carbon = 1``).

    Parameters
    ----------
    n_carbon : int
        Number of carbon atoms, >= 1.

    Returns
    -------
    ase.Atoms
        ``3 n + 2`` atoms, carbons first (along +x in the xy plane), then the
        hydrogens; C–C 1.54 Å, C–H 1.09 Å, all angles tetrahedral (109.47°);
        non-periodic, no cell.
    """
    if n_carbon < 1:
        raise ValueError(f"an alkane needs at least one carbon, got {n_carbon}")
    carbons = _zigzag([CC_SINGLE] * (n_carbon - 1), TETRAHEDRAL)
    half = np.radians(TETRAHEDRAL) / 2.0
    hydrogens = []
    for i, (a, b) in enumerate(_neighbour_directions(carbons, TETRAHEDRAL)):
        if i == 0:
            hydrogens.append(carbons[i] + CH * a)  # in-plane H of the first CH3 (or CH4)
        if i == n_carbon - 1:
            hydrogens.append(carbons[i] + CH * b)
        bisector = -_unit(a + b)
        normal = _unit(np.cross(a, b))
        for s in (1.0, -1.0):
            hydrogens.append(carbons[i] + CH * (np.cos(half) * bisector + s * np.sin(half) * normal))
    positions = np.vstack([carbons, np.array(hydrogens)])
    return Atoms(["C"] * n_carbon + ["H"] * len(hydrogens), positions=positions)


def polyene(n_carbon: int) -> Atoms:
    """All-trans planar conjugated polyene C_nH_{n+2} (ethylene for ``n_carbon = 2``).

    Parameters
    ----------
    n_carbon : int
        Even number of carbons >= 2 (odd counts would be radicals).

    Returns
    -------
    ase.Atoms
        ``2 n + 2`` atoms in the xy plane, carbons first; bonds alternate
        C=C 1.34 Å and C–C 1.46 Å starting and ending with a double bond;
        C–H 1.09 Å; all angles 120°; non-periodic, no cell.
    """
    if n_carbon < 2 or n_carbon % 2:
        raise ValueError(f"a closed-shell polyene needs an even number >= 2 of carbons, got {n_carbon}")
    bonds = [CC_DOUBLE if i % 2 == 0 else CC_CONJ_SINGLE for i in range(n_carbon - 1)]
    carbons = _zigzag(bonds, 120.0)
    hydrogens = []
    for i, (a, b) in enumerate(_neighbour_directions(carbons, 120.0)):
        if i == 0:
            hydrogens.append(carbons[i] + CH * a)
        if i == n_carbon - 1:
            hydrogens.append(carbons[i] + CH * b)
        hydrogens.append(carbons[i] - CH * _unit(a + b))
    positions = np.vstack([carbons, np.array(hydrogens)])
    return Atoms(["C"] * n_carbon + ["H"] * len(hydrogens), positions=positions)


def biphenyl(dihedral: float = 40.0) -> Atoms:
    """Biphenyl C12H10: two regular phenyl rings joined along the x axis.

    Parameters
    ----------
    dihedral : float, optional
        Twist between the ring planes in degrees (about 40–45° in the gas
        phase, 0 = planar).

    Returns
    -------
    ase.Atoms
        22 atoms, 12 carbons first (ring A, then ring B; the first atom of
        each ring is the bridging ipso carbon), then 10 hydrogens; ring C–C
        1.39 Å, inter-ring C–C 1.48 Å, C–H 1.09 Å radial; non-periodic.
    """
    centre = CC_BIARYL / 2.0 + CC_AROMATIC
    tau = np.radians(dihedral)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(tau), -np.sin(tau)], [0.0, np.sin(tau), np.cos(tau)]])
    carbons, hydrogens = [], []
    for _ring, (c, phase, rotation) in enumerate(
        [(np.array([-centre, 0, 0]), 0.0, np.eye(3)), (np.array([centre, 0, 0]), np.pi, rot)]
    ):
        for k in range(6):
            theta = phase + k * np.pi / 3.0
            radial = rotation @ np.array([np.cos(theta), np.sin(theta), 0.0])
            carbons.append(c + CC_AROMATIC * radial)
            if k:
                hydrogens.append(c + (CC_AROMATIC + CH) * radial)
    positions = np.vstack([np.array(carbons), np.array(hydrogens)])
    return Atoms(["C"] * 12 + ["H"] * 10, positions=positions)


def linear_chain(n: int, spacing: float = 1.5, element: str = "C", periodic: bool = False, vacuum: float = 10.0) -> Atoms:
    """``n`` atoms equally spaced along x.

    Parameters
    ----------
    n : int
        Number of atoms, >= 1.
    spacing : float, optional
        Distance between neighbours in Å.
    element : str, optional
        Chemical symbol of every atom.
    periodic : bool, optional
        If True, an infinite chain: cell ``diag(n·spacing, vacuum, vacuum)``
        with ``pbc = (True, False, False)``. Otherwise non-periodic, no cell.
    vacuum : float, optional
        Cell size in Å across the chain when ``periodic``.

    Returns
    -------
    ase.Atoms
        Positions ``[n, 3]`` = ``(i·spacing, 0, 0)``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if spacing <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    positions = np.zeros((n, 3))
    positions[:, 0] = np.arange(n) * spacing
    if periodic:
        return Atoms([element] * n, positions=positions, cell=np.diag([n * spacing, vacuum, vacuum]), pbc=(True, False, False))
    return Atoms([element] * n, positions=positions)


# ----------------------------------------------------------------------------
# labelled datasets
# ----------------------------------------------------------------------------


def _label_in_memory(
    frames: list[Atoms], calculator: Calculator, properties: Sequence[str], threads: int | None = None
) -> list[Atoms]:
    from .label import _compute, openmp_threads

    out = []
    with openmp_threads(threads):
        for k, atoms in enumerate(frames):
            results = _compute(atoms, calculator, properties, k)
            labelled = atoms.copy()
            labelled.calc = SinglePointCalculator(labelled, **results)
            out.append(labelled)
    return out


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def cu_bulk(
    n: int = 50,
    size: tuple[int, int, int] = (3, 3, 3),
    rattle: float = 0.1,
    strain: float = 0.03,
    seed: int = 0,
    cubic: bool = False,
) -> list[Atoms]:
    """Rattled, randomly strained periodic fcc Cu supercells labelled with EMT.

    Parameters
    ----------
    n : int, optional
        Number of structures.
    size : tuple of 3 int, optional
        Supercell repetitions of the fcc cell.
    rattle : float, optional
        Standard deviation in Å of the Gaussian displacement of each atom.
    strain : float, optional
        Each component of the symmetric strain tensor ε is uniform in
        ``[-strain, strain]``; the cell becomes ``cell @ (1 + ε)``.
    seed : int, optional
        Seed of the ``numpy.random.Generator``; same seed, same structures.
    cubic : bool, optional
        Repeat the 4-atom cubic cell (``4·prod(size)`` atoms) instead of the
        1-atom primitive (triclinic) cell (``prod(size)`` atoms, default).

    Returns
    -------
    list of ase.Atoms
        Fully periodic, a = 3.6 Å before strain; energy (eV), forces
        ``[N, 3]`` (eV/Å) and stress ``[6]`` (eV/Å³) from EMT in a
        SinglePointCalculator.
    """
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=CU_LATTICE, cubic=cubic).repeat(tuple(int(s) for s in size))
    frames = []
    for _ in range(int(n)):
        atoms = base.copy()
        eps = rng.uniform(-strain, strain, size=(3, 3))
        eps = 0.5 * (eps + eps.T)
        atoms.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        frames.append(atoms)
    return _label_in_memory(frames, EMT(), ("energy", "forces", "stress"))


def _cluster(size: int, rng: np.random.Generator) -> Atoms:
    from ase.build import bulk
    from ase.cluster import Icosahedron, Octahedron

    builders: dict[int, Callable[[], Atoms]] = {
        13: lambda: Icosahedron("Cu", 2, latticeconstant=CU_LATTICE),
        19: lambda: Octahedron("Cu", 3, latticeconstant=CU_LATTICE),
        38: lambda: Octahedron("Cu", 4, cutoff=1, latticeconstant=CU_LATTICE),
        55: lambda: Icosahedron("Cu", 3, latticeconstant=CU_LATTICE),
        147: lambda: Icosahedron("Cu", 4, latticeconstant=CU_LATTICE),
    }
    if size in builders:
        atoms = builders[size]()
    else:
        # spherical cut of an fcc crystal around a random centre
        reps = int(np.ceil((size / 4.0) ** (1.0 / 3.0))) + 3
        crystal = bulk("Cu", "fcc", a=CU_LATTICE, cubic=True).repeat((reps, reps, reps))
        centre = crystal.cell.sum(axis=0) / 2.0 + rng.uniform(-0.5, 0.5, 3) * CU_LATTICE
        order = np.argsort(np.linalg.norm(crystal.positions - centre, axis=1), kind="stable")
        atoms = Atoms(f"Cu{size}", positions=crystal.positions[order[:size]])
    atoms.positions -= atoms.positions.mean(axis=0)
    atoms.cell = np.zeros((3, 3))
    atoms.pbc = False
    return atoms


def cu_clusters(
    n: int = 50,
    sizes: Sequence[int] = (13, 19, 38, 55),
    rattle: float = 0.1,
    seed: int = 0,
) -> list[Atoms]:
    """Rattled Cu clusters labelled with EMT.

    Parameters
    ----------
    n : int, optional
        Number of structures; sizes are drawn uniformly from ``sizes``.
    sizes : sequence of int, optional
        Atom counts. 13, 55, 147 are Mackay icosahedra, 19 a regular and 38 a
        truncated octahedron; any other count is a spherical cut of fcc Cu
        around a random centre.
    rattle : float, optional
        Standard deviation in Å of the Gaussian displacement of each atom.
    seed : int, optional
        Seed of the ``numpy.random.Generator``.

    Returns
    -------
    list of ase.Atoms
        Non-periodic (no cell), a = 3.6 Å; energy (eV) and forces ``[N, 3]``
        (eV/Å) from EMT.
    """
    from ase.calculators.emt import EMT

    sizes = [int(s) for s in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be positive atom counts, got {sizes}")
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(int(n)):
        atoms = _cluster(int(rng.choice(sizes)), rng)
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        frames.append(atoms)
    return _label_in_memory(frames, EMT(), ("energy", "forces"))


_MOLECULE_BUILDERS: dict[str, Callable[[np.random.Generator], Atoms]] = {
    "alkane": lambda rng: alkane(int(rng.integers(1, 6))),
    "polyene": lambda rng: polyene(int(rng.choice([2, 4, 6]))),
    "biphenyl": lambda rng: biphenyl(float(rng.uniform(20.0, 60.0))),
}


def organic_molecules(
    n: int = 48,
    kinds: Sequence[str] = ("alkane", "polyene", "biphenyl"),
    seed: int = 0,
    calculator: Calculator | None = None,
    rattle: float = 0.05,
    threads: int | None = 1,
) -> list[Atoms]:
    """Small rattled organic molecules labelled with GFN2-xTB (or any calculator).

    Parameters
    ----------
    n : int, optional
        Number of structures; kinds are taken in turn.
    kinds : sequence of str, optional
        ``"alkane"`` (C1–C5 alkanes), ``"polyene"`` (ethylene, butadiene,
        hexatriene) and ``"biphenyl"`` (random twist 20–60°).
    seed : int, optional
        Seed of the ``numpy.random.Generator`` (sizes, rotations, rattles).
    calculator : ase Calculator, optional
        Labelling calculator; default :func:`jaxmlp.data.xtb_calculator`
        (GFN2-xTB, needs tblite).
    rattle : float, optional
        Standard deviation in Å of the Gaussian displacement of each atom.
    threads : int or None, optional
        OpenMP threads while labelling (default 1: these molecules are too
        small to gain from more, and busy machines slow threaded runs
        down badly); ``None`` leaves the setting alone.

    Returns
    -------
    list of ase.Atoms
        Non-periodic, randomly rotated about their centre; energy (eV) and
        forces ``[N, 3]`` (eV/Å) in a SinglePointCalculator.
    """
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in _MOLECULE_BUILDERS]
    if unknown or not kinds:
        raise ValueError(f"unknown molecule kinds {unknown}; choose from {sorted(_MOLECULE_BUILDERS)}")
    if calculator is None:
        from .label import xtb_calculator

        calculator = xtb_calculator()
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(int(n)):
        atoms = _MOLECULE_BUILDERS[kinds[k % len(kinds)]](rng)
        centred = atoms.positions - atoms.positions.mean(axis=0)
        atoms.positions = centred @ _random_rotation(rng).T
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        frames.append(atoms)
    return _label_in_memory(frames, calculator, ("energy", "forces"), threads=threads)


#: Recipes of :func:`default_dataset`: name → (generator, default n).
DEFAULT_DATASETS: dict[str, tuple[Callable[..., list[Atoms]], int]] = {
    "cu_emt": (cu_bulk, 100),
    "cu_clusters_emt": (cu_clusters, 100),
    "organics_xtb": (organic_molecules, 48),
}


def default_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Folder for cached datasets: ``path``, else ``$JAXMLP_CACHE``, else ``~/.cache/jaxmlp``."""
    if path is not None:
        return Path(path)
    env = os.environ.get("JAXMLP_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "jaxmlp"


def default_dataset(
    name: str = "cu_emt",
    n: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None | bool = None,
) -> Any:
    """One of the built-in datasets, generated offline and cached.

    Parameters
    ----------
    name : str, optional
        ``"cu_emt"`` (27-atom periodic fcc Cu cells, EMT energy, forces and
        stress; default n = 100), ``"cu_clusters_emt"`` (Cu13–Cu55
        clusters, EMT; n = 100) or ``"organics_xtb"`` (alkanes, polyenes,
        biphenyl, GFN2-xTB via tblite; n = 48).
    n : int, optional
        Number of structures (default per dataset as above).
    seed : int, optional
        Generator seed; the dataset is a deterministic function of
        ``(name, n, seed)``.
    cache_dir : str, os.PathLike, None or False, optional
        Where to cache the labelled extxyz file; ``None`` uses
        ``$JAXMLP_CACHE`` or ``~/.cache/jaxmlp``; ``False`` disables
        caching. The file is written atomically; an unreadable cache file is
        regenerated.

    Returns
    -------
    jaxmlp.data.Dataset
        Energies in eV, forces in eV/Å (stress in eV/Å³ for ``cu_emt``).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    ImportError
        For ``"organics_xtb"`` when tblite is missing.
    """
    from .dataset import Dataset
    from .io import read_extxyz, write_extxyz

    if name not in DEFAULT_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DEFAULT_DATASETS)}")
    generator, default_n = DEFAULT_DATASETS[name]
    n = default_n if n is None else int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")

    target: Path | None = None
    if cache_dir is not False:
        folder = default_cache_dir(None if cache_dir in (None, True) else cache_dir)
        target = folder / f"{name}-n{n}-seed{seed}-v{GENERATOR_VERSION}.extxyz"
        if target.exists():
            try:
                frames = read_extxyz(target)
                if len(frames) == n:
                    return Dataset.from_atoms(frames)
                warnings.warn(f"{target}: cached dataset has {len(frames)} frames, expected {n}; regenerating", stacklevel=2)
            except ValueError as exc:
                warnings.warn(f"{target}: unreadable cache ({exc}); regenerating", stacklevel=2)

    frames = generator(n=n, seed=seed)
    if target is not None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_extxyz(target, frames)
        except OSError as exc:
            warnings.warn(f"could not cache dataset at {target}: {exc}", stacklevel=2)
    return Dataset.from_atoms(frames)
