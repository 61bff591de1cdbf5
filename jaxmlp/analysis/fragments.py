"""Cutting hydrogen-saturated fragments around a reference atom (Herbold & Behler 2022/2023).

A fragment is the sphere of radius ``r_frag`` around a reference atom of a
molecule or periodic crystal (periodic images are unwrapped: the fragment is
a finite cluster in Cartesian coordinates), enlarged so that

* the reference atom keeps all its bonds,
* terminal atoms (H, halogens: one bond) follow the atom they are bonded to,
* functional groups are kept whole: aromatic/conjugated planar 5- and
  6-rings, carboxylates (O–C–O), double bonds (C=C, C=O, C=N: shorter than
  0.9 × the sum of covalent radii) are detected automatically, whole
  molecules (finite connected components of the bond graph, e.g. every
  water molecule of a liquid) on request (``keep_whole=(..., "molecules")``),
  and any user-given groups (e.g. a MOF secondary building unit, as index
  lists) are added,

and every bond the sphere cuts is capped by a hydrogen atom placed on the
broken bond at a fixed distance from the kept atom: 1.05 Å for C–H (the
paper's value), 1.01 Å for N–H, 0.97 Å for O–H, 1.34 Å for S–H and the sum
of covalent radii otherwise (``cap_lengths`` overrides).  Bonds are pairs
closer than ``bond_scale`` × the sum of ASE covalent radii.  Results are
deterministic: atoms are ordered by parent index and image, caps last.

:func:`complete_environment` marks the fragment atoms whose environment
within a cutoff is exactly the parent's (the "central atoms" of Herbold &
Behler 2023, Tables 1 and 2).

:func:`fragment_series` runs the fragment-convergence study: force on the
reference atom in fragments of increasing radius versus the full system,
and the Hessian group matrices ``G`` / ``G′`` of the excluded atoms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

__all__ = [
    "CAP_LENGTHS",
    "Fragment",
    "FragmentSeries",
    "complete_environment",
    "cut",
    "detect_bonds",
    "detect_groups",
    "fragment_series",
    "group_removal_fragments",
    "remove_units",
    "units_along_chain",
]

#: X–H distance (Å) of the capping hydrogen on a cut bond of element X.
CAP_LENGTHS = {"C": 1.05, "N": 1.01, "O": 0.97, "S": 1.34}

_GROUP_KINDS = ("rings", "carboxylates", "double_bonds")
#: every kind :func:`detect_groups` knows; ``keep_whole=True`` means :data:`_GROUP_KINDS` (not "molecules")
_ALL_GROUP_KINDS = _GROUP_KINDS + ("molecules",)


class Fragment(Atoms):
    """An ``ase.Atoms`` cluster cut from a parent structure.

    Extra per-atom arrays (kept by ``copy()`` and slicing):

    * ``parent_index`` — index of the atom in the parent structure, ``-1``
      for capping hydrogens;
    * ``cap_bonded_to`` — for caps, the parent index of the fragment atom
      the cap is bonded to (``-1`` otherwise);
    * ``cap_replaces`` — for caps, the parent index of the removed atom whose
      bond was cut (``-1`` otherwise).

    ``info["center_index"]`` is the reference atom's index in the fragment,
    ``info["radius"]`` the requested radius (Å).
    """

    @property
    def parent_indices(self) -> np.ndarray:
        """Parent index of every fragment atom, ``[n]`` int (``-1`` for caps)."""
        return self.arrays["parent_index"].copy()

    @property
    def saturating(self) -> np.ndarray:
        """Indices (in the fragment) of the capping hydrogens, ``[k]`` int."""
        return np.flatnonzero(self.arrays["parent_index"] < 0)

    @property
    def center(self) -> int:
        """Index of the reference atom in the fragment."""
        return int(self.info["center_index"])

    @property
    def atoms(self) -> Atoms:
        """A plain ``ase.Atoms`` copy (no extra arrays), e.g. for calculators."""
        return Atoms(self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)

    def excluded(self, n_parent: int) -> np.ndarray:
        """Parent atoms (of a finite parent with ``n_parent`` atoms) not in the fragment."""
        kept = np.zeros(n_parent, bool)
        p = self.arrays["parent_index"]
        kept[p[p >= 0]] = True
        return np.flatnonzero(~kept)


class _Bonds(NamedTuple):
    i: np.ndarray  # [B] directed bonds i -> j with image shift S
    j: np.ndarray
    S: np.ndarray  # [B, 3] int


def _positions_cell(atoms):
    pbc = np.asarray(atoms.pbc, bool)
    cell = np.where(pbc[:, None], atoms.cell.array, 0.0)
    return np.asarray(atoms.positions, float), cell, pbc


def detect_bonds(atoms: Atoms, bond_scale: float = 1.2, bonds=None) -> _Bonds:
    """Covalent bonds: pairs closer than ``bond_scale × (r_cov,A + r_cov,B)``.

    Parameters
    ----------
    atoms : ase.Atoms (molecule or periodic)
    bond_scale : float
    bonds : [B, 2] int, optional
        Explicit undirected bonds (molecules only, e.g. the topology of an
        unstrained structure reused for scaled copies).

    Returns
    -------
    _Bonds
        Directed bonds ``(i, j, S)`` in both directions, sorted.
    """
    R, cell, pbc = _positions_cell(atoms)
    n = len(atoms)
    if bonds is not None:
        b = np.asarray(bonds, int).reshape(-1, 2)
        if pbc.any():
            raise ValueError("explicit bonds are supported for non-periodic structures only")
        if np.any((b < 0) | (b >= n)) or np.any(b[:, 0] == b[:, 1]):
            raise ValueError("explicit bonds must be pairs of distinct atom indices in range")
        i = np.r_[b[:, 0], b[:, 1]]
        j = np.r_[b[:, 1], b[:, 0]]
        S = np.zeros((len(i), 3), int)
    else:
        if not bond_scale > 0:
            raise ValueError(f"bond_scale must be positive, got {bond_scale}")
        from ..graph.neighbours import neighbour_list

        rad = covalent_radii[atoms.numbers]
        rmax = 2.0 * bond_scale * float(rad.max(initial=0.5))
        nl = neighbour_list(R, cell, pbc, rmax)
        d = np.linalg.norm(R[nl.neighbours] - R[nl.centres] + nl.offsets @ cell, axis=1)
        ok = (d < bond_scale * (rad[nl.centres] + rad[nl.neighbours])) & (d > 0)
        i, j, S = nl.centres[ok], nl.neighbours[ok], nl.offsets[ok]
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return _Bonds(i[order].astype(int), j[order].astype(int), S[order].astype(int))


def _adjacency(bonds: _Bonds, n: int):
    adj = [[] for _ in range(n)]
    for a, b, s in zip(bonds.i, bonds.j, bonds.S):
        adj[a].append((int(b), tuple(int(x) for x in s)))
    return adj


def detect_groups(atoms: Atoms, bonds: _Bonds | None = None, kinds: Sequence[str] = _GROUP_KINDS) -> list[list[int]]:
    """Functional groups to keep whole, as sorted lists of parent indices.

    ``kinds`` from ``"rings"`` (planar 5/6-rings of C, N, O, S whose atoms
    have at most 3 bonds: aromatic and conjugated rings), ``"carboxylates"``
    (C bonded to two O that carry no H), ``"double_bonds"`` (bonded C/N/O
    pairs closer than 0.9 × the sum of covalent radii) and ``"molecules"``
    (connected components of the bond graph with at least two atoms that
    are finite: in a periodic cell, no chain of bonds joins an atom to its
    own periodic image; a framework that does is not a group).
    """
    unknown = set(kinds) - set(_ALL_GROUP_KINDS)
    if unknown:
        raise ValueError(f"unknown group kinds {sorted(unknown)}; known: {_ALL_GROUP_KINDS}")
    bonds = detect_bonds(atoms) if bonds is None else bonds
    n = len(atoms)
    Z = atoms.numbers
    R, cell, _ = _positions_cell(atoms)
    adj = _adjacency(bonds, n)
    heavy_ring = {6, 7, 8, 16}
    groups: list[list[int]] = []
    if "rings" in kinds:
        seen = set()
        for start in range(n):
            if Z[start] not in heavy_ring or len(adj[start]) > 3:
                continue
            # DFS over simple paths of length <= 6 returning to start with zero total shift
            stack = [(start, (0, 0, 0), [start])]
            while stack:
                a, s, path = stack.pop()
                for b, sb in adj[a]:
                    tot = tuple(x + y for x, y in zip(s, sb))
                    if b == start and len(path) in (5, 6) and tot == (0, 0, 0):
                        key = frozenset(path)
                        if key not in seen and len(key) == len(path):
                            seen.add(key)
                            pos = _ring_positions(R, cell, adj, path)
                            if pos is not None and _planar(pos):
                                groups.append(sorted(path))
                    elif b not in path and len(path) < 6 and Z[b] in heavy_ring and len(adj[b]) <= 3 and b > start:
                        stack.append((b, tot, path + [b]))
    if "carboxylates" in kinds:
        for c in range(n):
            if Z[c] != 6:
                continue
            oxy = [b for b, _ in adj[c] if Z[b] == 8 and not any(Z[x] == 1 for x, _ in adj[b])
                   and all(Z[x] not in (1, 6) or x == c for x, _ in adj[b])]
            if len(set(oxy)) == 2:
                groups.append(sorted({c, *oxy}))
    if "double_bonds" in kinds:
        rad = covalent_radii[Z]
        for a, b, s in zip(bonds.i, bonds.j, bonds.S):
            if a < b and Z[a] in (6, 7, 8) and Z[b] in (6, 7, 8):
                d = np.linalg.norm(R[b] + s @ cell - R[a])
                if d < 0.9 * (rad[a] + rad[b]):
                    groups.append([int(a), int(b)])
    if "molecules" in kinds:
        groups.extend(_finite_molecules(adj, n))
    # deterministic, unique
    uniq = sorted({tuple(g) for g in groups})
    return [list(g) for g in uniq]


def _finite_molecules(adj, n: int) -> list[list[int]]:
    """Connected components (≥ 2 atoms) whose bonds close no loop through a periodic image."""
    shift: dict[int, tuple] = {}
    out = []
    for start in range(n):
        if start in shift or not adj[start]:
            continue
        shift[start] = (0, 0, 0)
        comp, queue, finite = [start], [start], True
        while queue:
            a = queue.pop()
            for b, s in adj[a]:
                sb = tuple(x + y for x, y in zip(shift[a], s))
                if b not in shift:
                    shift[b] = sb
                    comp.append(b)
                    queue.append(b)
                elif shift[b] != sb:
                    finite = False  # a bond path reaches an image of an atom already placed: infinite
        if finite:
            out.append(sorted(comp))
    return out


def _ring_positions(R, cell, adj, path):
    pos = [R[path[0]]]
    for a, b in zip(path[:-1], path[1:]):
        nxt = [s for x, s in adj[a] if x == b]
        if not nxt:
            return None
        pos.append(pos[-1] + (R[b] - R[a]) + np.asarray(nxt[0]) @ cell)
    return np.array(pos)


def _planar(pos, tol=0.15):
    c = pos - pos.mean(0)
    return np.linalg.svd(c, compute_uv=False)[-1] / np.sqrt(len(pos)) < tol


def _group_shifts(group, adj):
    """Image shift of each member relative to the first, via bonds inside the group."""
    members = set(group)
    rel = {group[0]: (0, 0, 0)}
    queue = [group[0]]
    while queue:
        a = queue.pop()
        for b, s in adj[a]:
            if b in members and b not in rel:
                rel[b] = tuple(x + y for x, y in zip(rel[a], s))
                queue.append(b)
    for m in group:  # disconnected members: same image as the first
        rel.setdefault(m, (0, 0, 0))
    return rel


def _cap_length(sym: str, cap_lengths: dict) -> float:
    if sym in cap_lengths:
        return float(cap_lengths[sym])
    return float(covalent_radii[atomic_numbers[sym]] + covalent_radii[1])


def cut(
    atoms: Atoms,
    center: int,
    radius: float,
    keep_whole: bool | Sequence[str] = True,
    bond_lengths: dict | None = None,
    groups: Sequence[Sequence[int]] = (),
    bond_scale: float = 1.2,
    bonds=None,
) -> Fragment:
    """Hydrogen-saturated spherical fragment around atom ``center``.

    Parameters
    ----------
    atoms : ase.Atoms
        Molecule or periodic crystal (images are unwrapped).
    center : int
        Reference atom ``A``.
    radius : float, Å
        Fragment radius ``r_frag``: atoms (images) closer than this to ``A``
        are kept, then the fragment is completed (module docstring).
    keep_whole : bool or sequence of str
        ``True``: detect rings, carboxylates and double bonds; ``False``:
        none; or a subset of ``("rings", "carboxylates", "double_bonds",
        "molecules")`` (``"molecules"``: never cut a finite molecule, e.g.
        the water molecules of a liquid; a molecule one of whose atoms is in
        the sphere comes whole).
    bond_lengths : dict, optional
        Element symbol → X–H distance (Å) of the capping hydrogen, overriding
        :data:`CAP_LENGTHS` (C 1.05, N 1.01, O 0.97, S 1.34 Å).
    groups : sequence of sequences of int
        Extra groups kept whole (e.g. a MOF SBU), parent indices.
    bond_scale : float
        Bond criterion ``d < bond_scale × (r_cov,A + r_cov,B)``.
    bonds : [B, 2] int, optional
        Explicit bonds (molecules), instead of detecting them.

    Returns
    -------
    Fragment
        ``ase.Atoms`` subclass with ``.parent_indices``, ``.saturating``,
        ``.center``.

    Raises
    ------
    ValueError
        Centre out of range, radius not positive or smaller than the longest
        bond of the reference atom, bad groups.
    """
    if not isinstance(atoms, Atoms):
        raise TypeError(f"cut expects an ase.Atoms, got {type(atoms).__name__}")
    n = len(atoms)
    if not isinstance(center, (int, np.integer)) or not 0 <= int(center) < n:
        raise ValueError(f"center {center!r} out of range for {n} atoms")
    center = int(center)
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be a positive number of Å, got {radius!r}")
    cap_lengths = {**CAP_LENGTHS, **(bond_lengths or {})}
    for sym in cap_lengths:
        if sym not in atomic_numbers:
            raise ValueError(f"bond_lengths: unknown element {sym!r}")
    if keep_whole is True:
        kinds = _GROUP_KINDS
    elif keep_whole is False or keep_whole is None:
        kinds = ()
    else:
        kinds = tuple(keep_whole)
    user_groups = [sorted(int(x) for x in g) for g in groups]
    for g in user_groups:
        if not g or min(g) < 0 or max(g) >= n:
            raise ValueError(f"group {g} empty or out of range for {n} atoms")

    R, cell, pbc = _positions_cell(atoms)
    bnd = detect_bonds(atoms, bond_scale, bonds)
    adj = _adjacency(bnd, n)
    center_bonds = [np.linalg.norm(R[b] + np.asarray(s) @ cell - R[center]) for b, s in adj[center]]
    if center_bonds and radius < max(center_bonds):
        raise ValueError(
            f"radius {radius} Å is too small: shorter than the longest bond of the reference atom {center} "
            f"({max(center_bonds):.3f} Å); the reference atom's bonds are never cut"
        )
    all_groups = (detect_groups(atoms, bnd, kinds) if kinds else []) + user_groups
    rel = [_group_shifts(g, adj) for g in all_groups]
    member_of: dict[int, list[int]] = {}
    for k, g in enumerate(all_groups):
        for m in g:
            member_of.setdefault(m, []).append(k)

    # 1. atoms (with image shifts) inside the sphere, from the neighbour list
    #    (any cell: triclinic, 2-D with a zero third vector, smaller than the radius)
    from ..graph.neighbours import neighbour_list

    nl = neighbour_list(R, cell, pbc, radius)
    near = nl.centres == center
    nodes = {(int(b), tuple(int(x) for x in s)) for b, s in zip(nl.neighbours[near], nl.offsets[near])}
    terminal = np.array([len(adj[a]) == 1 for a in range(n)])
    zero = (0, 0, 0)
    # a terminal atom inside the sphere comes with its partner only if it is part of a whole molecule
    in_molecule = set().union(*map(set, _finite_molecules(adj, n))) if "molecules" in kinds else set()
    nodes = {(b, s) for b, s in nodes if not terminal[b] or b in in_molecule or (b, s) == (center, zero)}
    nodes.add((center, zero))
    for b, s in adj[center]:  # never cut the reference atom's bonds
        nodes.add((b, s))

    # 2. closure: groups whole, terminal atoms follow their partner
    changed = True
    while changed:
        changed = False
        for b, s in sorted(nodes):
            for k in member_of.get(b, []):
                for m in all_groups[k]:
                    sm = tuple(x - y + z for x, y, z in zip(s, rel[k][b], rel[k][m]))
                    if (m, sm) not in nodes:
                        nodes.add((m, sm))
                        changed = True
            for x, sx in adj[b]:
                if terminal[x]:
                    node = (x, tuple(p + q for p, q in zip(s, sx)))
                    if node not in nodes:
                        nodes.add(node)
                        changed = True

    # 3. caps on every cut bond
    order = sorted(nodes)
    syms = atoms.get_chemical_symbols()
    caps = []
    for b, s in order:
        rb = R[b] + np.asarray(s) @ cell
        for x, sx in adj[b]:
            node = (x, tuple(p + q for p, q in zip(s, sx)))
            if node not in nodes:
                caps.append((b, x, _cap_position(rb, R[x] + np.asarray(node[1]) @ cell, syms[b], cap_lengths)))
    frag = _capped_fragment([int(atoms.numbers[b]) for b, _ in order], [R[b] + np.asarray(s) @ cell for b, s in order],
                            [b for b, _ in order], caps, order.index((center, zero)))
    frag.info["radius"] = float(radius)
    return frag


def complete_environment(fragment: Fragment, parent: Atoms, cutoff: float, atol: float = 1e-6) -> np.ndarray:
    """Which fragment atoms see exactly their parent environment within ``cutoff``.

    Atom ``k`` of the fragment (a parent atom, not a cap) has a complete
    environment when the fragment atoms closer than ``cutoff`` to it are
    exactly the parent's atoms (all periodic images) closer than ``cutoff``
    to its parent atom, at the same relative positions (within ``atol``);
    an H cap or a missing neighbour inside the sphere makes it incomplete.
    These are the "central atoms" of Herbold & Behler (2023), whose count
    their Tables 1 and 2 give: a model with cutoff ``R_c`` sees them as in
    the parent, so their atomic energies are bulk-like.

    Parameters
    ----------
    fragment : Fragment
        Cut from ``parent`` (:func:`cut`, :func:`remove_units`).
    parent : ase.Atoms
        The structure the fragment was cut from (molecule or periodic).
    cutoff : float, Å
    atol : float, Å — tolerance on the relative positions.

    Returns
    -------
    [n] bool, one per fragment atom (caps are ``False``).
    """
    from ..graph.neighbours import neighbour_list

    if not isinstance(fragment, Fragment):
        raise TypeError(f"complete_environment expects a Fragment, got {type(fragment).__name__}")
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"cutoff must be a positive number of Å, got {cutoff!r}")
    par = fragment.arrays["parent_index"]
    if len(par) and par.max() >= len(parent):
        raise ValueError(f"the fragment refers to parent atom {int(par.max())} but the parent has {len(parent)} atoms")
    R, cell, pbc = _positions_cell(parent)
    nl = neighbour_list(R, cell, pbc, cutoff)
    vec = R[nl.neighbours] - R[nl.centres] + nl.offsets @ cell
    order = np.argsort(nl.centres, kind="stable")
    starts = np.searchsorted(nl.centres[order], np.arange(len(parent) + 1))
    X = np.asarray(fragment.positions, float)
    out = np.zeros(len(fragment), bool)
    for k in np.flatnonzero(par >= 0):
        p = int(par[k])
        sel = order[starts[p]:starts[p + 1]]
        ref_v, ref_j = vec[sel], nl.neighbours[sel]
        keep = np.linalg.norm(ref_v, axis=1) > 0
        ref_v, ref_j = ref_v[keep], ref_j[keep]
        d = X - X[k]
        r = np.linalg.norm(d, axis=1)
        mine = np.flatnonzero((r < cutoff) & (np.arange(len(X)) != k))
        if len(mine) != len(ref_v):
            continue
        if len(mine) == 0:
            out[k] = True
            continue
        gap = np.linalg.norm(d[mine][:, None, :] - ref_v[None, :, :], axis=2)  # [m, m]
        best = gap.argmin(axis=1)
        out[k] = (np.all(gap[np.arange(len(mine)), best] < atol) and len(set(best.tolist())) == len(mine)
                  and np.array_equal(par[mine], ref_j[best]))
    return out


def _cap_position(r_kept, r_removed, symbol: str, cap_lengths: dict) -> np.ndarray:
    """Position of the H cap on the kept atom, along the cut bond towards the removed atom."""
    u = (r_removed - r_kept) / np.linalg.norm(r_removed - r_kept)
    return r_kept + _cap_length(symbol, cap_lengths) * u


def _capped_fragment(numbers, positions, parents, caps, center_index: int) -> Fragment:
    """A :class:`Fragment` of kept atoms followed by H caps, each cap ``(bonded_to, replaces, position)``."""
    n = len(numbers)
    frag = Fragment(numbers=list(numbers) + [1] * len(caps),
                    positions=np.array(list(positions) + [c[2] for c in caps], float).reshape(-1, 3), pbc=False)
    frag.arrays["parent_index"] = np.asarray(list(parents) + [-1] * len(caps), int)
    frag.arrays["cap_bonded_to"] = np.asarray([-1] * n + [c[0] for c in caps], int)
    frag.arrays["cap_replaces"] = np.asarray([-1] * n + [c[1] for c in caps], int)
    frag.info["center_index"] = int(center_index)
    return frag


# ----------------------------------------------------------------------------
# fragment series (G′ vs ||Δf||)
# ----------------------------------------------------------------------------
class FragmentSeries(NamedTuple):
    """Result of :func:`fragment_series`.

    Attributes
    ----------
    center : int — reference atom (parent index).
    force_full : [3] eV/Å — its force in the full system.
    rows : list of dict, one per distinct fragment (largest first), with
        ``radius`` (Å), ``n_atoms``, ``n_saturating``, ``n_excluded``,
        ``delta_f`` ([3] eV/Å, full − fragment), ``delta_f_norm``,
        ``G_norm`` and ``Gprime_norm`` (eV/Å²).
    fragments : list of Fragment
    """

    center: int
    force_full: np.ndarray
    rows: list
    fragments: list


def _is_jaxmlp_calc(calculator) -> bool:
    from ..calculator import Calculator

    return isinstance(calculator, Calculator)


def fragment_series(
    atoms: Atoms,
    calculator,
    center: int,
    radii: Sequence[float] | None = None,
    hessian=None,
    delta: float = 0.0025,
    progress: bool = False,
    **cut_kwargs,
) -> FragmentSeries:
    """Force convergence of the reference atom with fragment size, and ``G′``.

    For each radius a fragment is cut (:func:`cut`), the force on the
    reference atom is computed in it and compared with the full system,
    ``Δf = f_A(full) − f_A(fragment)``; the excluded atoms form the group
    ``g`` with ``G = Σ_{B∈g} h_AB`` from the full system's Hessian and
    ``G′ = G − Σ_b h_Ab`` with the blocks of the capping hydrogens ``b``
    taken from the fragment's Hessian (finite differences of ``calculator``,
    6 force calls per cap; analytic for a :class:`jaxmlp.Calculator`).

    Parameters
    ----------
    atoms : ase.Atoms
        The full reference system: a finite molecule or cluster (for a
        crystal, cut a large reference cluster first, as in the paper).
    calculator : ASE calculator (forces)
    center : int
    radii : sequence of float, Å, optional
        Default: just beyond each distinct heavy-atom distance from the
        centre (every fragment that differs).
    hessian : [3N, 3N] or SparseHessian, optional
        Hessian of ``atoms``; default: :func:`jaxmlp.fd_hessian` (or the
        analytic one for a jaxmlp calculator).
    delta : float, Å — finite-difference step.
    progress : bool
    **cut_kwargs
        Passed to :func:`cut` (``keep_whole``, ``groups``, ``bonds``, ...).

    Returns
    -------
    FragmentSeries
    """
    from ..hessians import fd_hessian, fd_hessian_columns
    from .locality import group_matrix

    if np.any(atoms.pbc):
        raise ValueError("fragment_series needs a finite reference system; cut a large reference cluster from the crystal first")
    n = len(atoms)
    if not isinstance(center, (int, np.integer)) or not 0 <= int(center) < n:
        raise ValueError(f"center {center!r} out of range for {n} atoms")
    center = int(center)
    analytic = _is_jaxmlp_calc(calculator)
    if hessian is None:
        hessian = calculator.get_hessian(atoms.copy()) if analytic else fd_hessian(atoms, calculator, delta, progress=progress)
    full = atoms.copy()
    full.calc = calculator
    f_full = np.asarray(full.get_forces(), float)[center].copy()
    if radii is None:
        d = np.linalg.norm(atoms.positions - atoms.positions[center], axis=1)
        heavy = atoms.numbers > 1
        radii = np.unique(np.round(d[heavy & (d > 0)], 3)) + 0.01
    radii = sorted((float(r) for r in radii), reverse=True)
    rows, frags, seen = [], [], set()
    for r in radii:
        try:
            frag = cut(atoms, center, r, **cut_kwargs)
        except ValueError as err:
            if "too small" in str(err):
                continue
            raise
        key = tuple(sorted(int(p) for p in frag.parent_indices if p >= 0))
        excluded = frag.excluded(n)
        if key in seen or len(excluded) == 0:
            continue
        seen.add(key)
        fa = frag.atoms
        fa.calc = calculator
        c = frag.center
        f_frag = np.asarray(fa.get_forces(), float)[c].copy()
        sat = frag.saturating
        if len(sat):
            if analytic:
                Hf = calculator.get_hessian(fa)
                cols = Hf[:, np.ravel([[3 * b, 3 * b + 1, 3 * b + 2] for b in sat])]
            else:
                cols = fd_hessian_columns(fa, calculator, sat, delta)
            hAb = cols[3 * c : 3 * c + 3].reshape(3, len(sat), 3).transpose(1, 0, 2)
        else:
            hAb = np.zeros((0, 3, 3))
        G = group_matrix(hessian, center, excluded)
        Gp = G - hAb.sum(axis=0)
        df = f_full - f_frag
        rows.append({
            "radius": r, "n_atoms": len(frag), "n_saturating": len(sat), "n_excluded": len(excluded),
            "delta_f": df.tolist(), "delta_f_norm": float(np.linalg.norm(df)),
            "G_norm": float(np.linalg.norm(G)), "Gprime_norm": float(np.linalg.norm(Gp)),
        })
        frags.append(frag)
    return FragmentSeries(center=center, force_full=f_full, rows=rows, fragments=frags)


# ----------------------------------------------------------------------------
# group-removal fragments (the paper's model-system protocol)
# ----------------------------------------------------------------------------
_UNIT_KINDS = ("CH2", "C2H2", "ring")


def _molecule_bonds(atoms: Atoms, bonds, bond_scale: float):
    if np.any(atoms.pbc):
        raise ValueError("group-removal fragments need a finite molecule or cluster (pbc all False)")
    bnd = detect_bonds(atoms, bond_scale, bonds)
    adj = [set() for _ in range(len(atoms))]
    for a, b in zip(bnd.i, bnd.j):
        adj[int(a)].add(int(b))
    return adj


def _check_reference(reference, n: int) -> int:
    if not isinstance(reference, (int, np.integer)) or not 0 <= int(reference) < n:
        raise ValueError(f"reference atom {reference!r} out of range for {n} atoms")
    return int(reference)


def _graph_distances(adj, start: int, allowed) -> dict:
    dist, queue = {start: 0}, [start]
    while queue:
        nxt = []
        for a in queue:
            for b in sorted(adj[a]):
                if b in allowed and b not in dist:
                    dist[b] = dist[a] + 1
                    nxt.append(b)
        queue = nxt
    return dist


def units_along_chain(atoms: Atoms, reference: int, kind: str = "CH2", bonds=None, bond_scale: float = 1.2) -> list[list[int]]:
    """Functional units of a chain or ring system, ordered from ``reference`` outward.

    Every unit is a sorted list of atom indices: its heavy atoms plus the
    terminal atoms (H) bonded to them; the first unit holds ``reference``.

    Parameters
    ----------
    atoms : ase.Atoms (finite)
    reference : int
        Reference atom ``A``; for ``"CH2"`` and ``"C2H2"`` it must be a chain
        end (one heavy neighbour).
    kind : {"CH2", "C2H2", "ring"}
        ``"CH2"``: one heavy atom per unit (CH3/CH2 of an alkane, ordered by
        bond-graph distance from ``A``); ``"C2H2"``: two consecutive heavy
        atoms per unit along an unbranched chain (a conjugated polyene: each
        unit is a C=C, units are joined by single bonds, which is checked:
        the joining bond must be at least 0.9 × the sum of covalent radii);
        ``"ring"``: one planar 5/6-ring per unit (phenylene rings of
        oligophenyls), ordered by the graph distance of the ring's closest
        atom to ``A``.
    bonds : [B, 2] int, optional
        Explicit bonds (e.g. of the unscaled structure, reused at every σ).
    bond_scale : float

    Returns
    -------
    list of list of int

    Raises
    ------
    ValueError
        Unknown ``kind``, a branched chain, a reference that is not a chain
        end, heavy atoms outside every ring, a double bond between units.
    """
    if kind not in _UNIT_KINDS:
        raise ValueError(f"kind must be one of {_UNIT_KINDS}, got {kind!r}")
    n = len(atoms)
    A = _check_reference(reference, n)
    adj = _molecule_bonds(atoms, bonds, bond_scale)
    Z = atoms.numbers
    terminal = [a for a in range(n) if len(adj[a]) == 1 and Z[a] == 1]
    heavy = {a for a in range(n) if Z[a] > 1}
    if A not in heavy:
        raise ValueError(f"the reference atom {A} must be a heavy atom")

    def with_h(core):
        out = set(core)
        for a in core:
            out |= {t for t in adj[a] if t in terminal}
        return sorted(out)

    dist = _graph_distances(adj, A, heavy)
    if len(dist) != len(heavy):
        raise ValueError("the heavy atoms do not form one connected molecule")
    if kind in ("CH2", "C2H2"):
        if any(len(adj[a] & heavy) > 2 for a in heavy):
            raise ValueError(f"kind={kind!r} needs an unbranched chain; atom(s) "
                             f"{[a for a in heavy if len(adj[a] & heavy) > 2]} have more than two heavy neighbours")
        if len(adj[A] & heavy) != 1:
            raise ValueError(f"the reference atom {A} is not a chain end (it has {len(adj[A] & heavy)} heavy neighbours)")
        chain = sorted(heavy, key=lambda a: dist[a])
        if kind == "CH2":
            return [with_h([a]) for a in chain]
        if len(chain) % 2:
            raise ValueError(f"kind='C2H2' needs an even number of chain atoms, got {len(chain)}")
        R = atoms.positions
        rad = covalent_radii[Z]
        for k in range(1, len(chain) // 2):
            a, b = chain[2 * k - 1], chain[2 * k]
            if np.linalg.norm(R[a] - R[b]) < 0.9 * (rad[a] + rad[b]):
                raise ValueError(f"the bond {a}-{b} joining two C2H2 units is a double bond; the units would cut it")
        return [with_h(chain[2 * k : 2 * k + 2]) for k in range(len(chain) // 2)]
    rings = detect_groups(atoms, detect_bonds(atoms, bond_scale, bonds), kinds=("rings",))
    in_ring = set().union(*map(set, rings)) if rings else set()
    if heavy - in_ring:
        raise ValueError(f"kind='ring': heavy atoms {sorted(heavy - in_ring)} belong to no planar ring")
    if any(len(set(r) & set(s)) for i, r in enumerate(rings) for s in rings[i + 1:]):
        raise ValueError("kind='ring': fused rings share atoms; give the units explicitly")
    rings = sorted(rings, key=lambda r: (min(dist[a] for a in r), min(r)))
    if A not in rings[0]:
        raise ValueError(f"the reference atom {A} is in no ring")
    return [with_h(r) for r in rings]


def remove_units(
    atoms: Atoms,
    reference: int,
    units: Sequence[Sequence[int]],
    n_removed: int,
    bond_lengths: dict | None = None,
    bonds=None,
    bond_scale: float = 1.2,
) -> Fragment:
    """The fragment ``Y_g``: ``atoms`` without its last ``n_removed`` units, H-capped.

    ``units`` are atom-index groups ordered from the reference atom outward
    (e.g. from :func:`units_along_chain`, or a MOF's SBUs, carboxylates and
    rings given explicitly); the last ``n_removed`` of them are removed and
    every bond between a kept and a removed atom is replaced by a hydrogen
    on the kept atom, on the line of the broken bond, at
    :data:`CAP_LENGTHS` (C–H 1.05 Å; ``bond_lengths`` overrides).  Atoms in
    no unit are always kept.  The fragment's ``info["removed"]`` lists the
    removed atoms (parent indices), ``info["n_removed_units"]`` the count.

    Raises
    ------
    ValueError
        Units overlapping or out of range, ``reference`` in a removed unit,
        or a bond of the reference atom cut (the paper never cuts them).
    """
    n = len(atoms)
    A = _check_reference(reference, n)
    units = [sorted(int(x) for x in u) for u in units]
    flat = [x for u in units for x in u]
    if any(not u for u in units) or any(x < 0 or x >= n for x in flat):
        raise ValueError(f"units must be non-empty lists of atom indices in range for {n} atoms")
    if len(set(flat)) != len(flat):
        raise ValueError("units overlap (an atom is listed in two units)")
    if not isinstance(n_removed, (int, np.integer)) or not 0 <= int(n_removed) < len(units):
        raise ValueError(f"n_removed must be in 0..{len(units) - 1}, got {n_removed!r}")
    n_removed = int(n_removed)
    removed = sorted(x for u in units[len(units) - n_removed:] for x in u)
    if A in removed:
        raise ValueError(f"the reference atom {A} is in a removed unit")
    adj = _molecule_bonds(atoms, bonds, bond_scale)
    gone = set(removed)
    if adj[A] & gone:
        raise ValueError(f"removing {n_removed} unit(s) cuts a bond of the reference atom {A} (to {sorted(adj[A] & gone)})")
    cap_lengths = {**CAP_LENGTHS, **(bond_lengths or {})}
    kept = [a for a in range(n) if a not in gone]
    R = np.asarray(atoms.positions, float)
    syms = atoms.get_chemical_symbols()
    caps = [(a, x, _cap_position(R[a], R[x], syms[a], cap_lengths)) for a in kept for x in sorted(adj[a] & gone)]
    frag = _capped_fragment([int(atoms.numbers[a]) for a in kept], [R[a] for a in kept], kept, caps, kept.index(A))
    frag.info["removed"] = removed
    frag.info["n_removed_units"] = n_removed
    return frag


def group_removal_fragments(atoms: Atoms, reference: int, units: Sequence[Sequence[int]], **kwargs) -> list[Fragment]:
    """Every fragment ``Y_g`` of the group-removal series, ``g = 1, 2, …`` (largest first).

    ``Y_g`` removes the last ``g`` units (:func:`remove_units`); removals
    that would cut a bond of the reference atom end the series (for an
    alkane with ``A`` = C1 the smallest fragment is ethane, for a polyene
    ethylene, for an oligophenyl benzene).  ``kwargs`` go to
    :func:`remove_units`.
    """
    out = []
    for g in range(1, len(units)):
        try:
            out.append(remove_units(atoms, reference, units, g, **kwargs))
        except ValueError as err:
            if "cuts a bond of the reference atom" in str(err):
                break
            raise
    return out
