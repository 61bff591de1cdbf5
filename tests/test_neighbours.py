"""Neighbour lists and triplets against brute force over explicit images."""

import itertools
import math

import numpy as np
import pytest
from ase import Atoms

import jaxmlp
from jaxmlp.graph import build_triplets, neighbour_list
from jaxmlp.graph.neighbours import MAX_PAIRS, _interplanar_distances, estimate_pairs


def brute_force_pairs(positions, cell, pbc, cutoff):
    """Set of (i, j, Sx, Sy, Sz) with |R_j - R_i + S @ cell| < cutoff."""
    ranges = []
    if np.any(pbc):
        dist = _interplanar_distances(np.where(np.asarray(pbc)[:, None], cell, np.eye(3)))
    for k in range(3):
        if pbc[k]:
            m = math.ceil(cutoff / dist[k]) + 1
            ranges.append(range(-m, m + 1))
        else:
            ranges.append(range(1))
    out = set()
    for S in itertools.product(*ranges):
        shift = np.asarray(S) @ cell
        d = np.linalg.norm(positions[None, :, :] - positions[:, None, :] + shift, axis=-1)
        for i, j in zip(*np.nonzero(d < cutoff)):
            if i == j and not any(S):
                continue
            out.add((int(i), int(j)) + tuple(int(s) for s in S))
    return out


def random_triclinic(rng, scale):
    cell = np.eye(3) * scale + rng.normal(scale=0.3 * scale, size=(3, 3))
    if np.linalg.det(cell) < 0:
        cell[0] *= -1
    return cell


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale,n,cutoff", [(2.5, 3, 4.0), (4.0, 6, 3.0), (7.0, 12, 3.5)])
def test_periodic_triclinic_vs_brute_force(seed, scale, n, cutoff):
    """Random triclinic cells, including cells much smaller than the cutoff."""
    rng = np.random.default_rng(seed)
    cell = random_triclinic(rng, scale)
    # atoms partly outside the cell: the list must not depend on wrapping
    pos = (rng.random((n, 3)) * 1.4 - 0.2) @ cell
    nl = neighbour_list(pos, cell, np.array([True] * 3), cutoff)
    got = {(int(i), int(j)) + tuple(int(s) for s in S) for i, j, S in zip(nl.centres, nl.neighbours, nl.offsets)}
    assert len(got) == len(nl.centres), "duplicate pairs"
    assert got == brute_force_pairs(pos, cell, [True] * 3, cutoff)


@pytest.mark.parametrize("pbc", [(True, False, False), (True, True, False), (False, True, True)])
def test_mixed_pbc_vs_brute_force(pbc):
    rng = np.random.default_rng(7)
    cell = random_triclinic(rng, 3.0)
    pos = rng.random((8, 3)) @ cell * 1.5
    cutoff = 3.2
    pbc = np.array(pbc)
    atoms = Atoms("Ar8", positions=pos, cell=cell, pbc=pbc)
    g = jaxmlp.atoms_to_graph(atoms, cutoff, validate=False)
    got = {(int(i), int(j)) + tuple(int(s) for s in S) for i, j, S in zip(g.receivers, g.senders, g.edges["offsets"])}
    # the graph zeroes cell vectors along non-periodic axes; offsets there must be 0
    assert np.all(g.edges["offsets"][:, ~pbc] == 0)
    assert got == brute_force_pairs(pos, cell, pbc, cutoff)


def test_molecule_vs_brute_force():
    rng = np.random.default_rng(3)
    pos = rng.random((20, 3)) * 6.0
    atoms = Atoms("C20", positions=pos)
    g = jaxmlp.atoms_to_graph(atoms, 2.5, validate=False)
    got = {(int(i), int(j), 0, 0, 0) for i, j in zip(g.receivers, g.senders)}
    assert got == brute_force_pairs(pos, np.zeros((3, 3)), [False] * 3, 2.5)
    assert np.all(g.edges["offsets"] == 0)


def test_edge_convention_and_sorting():
    """senders = neighbour j, receivers = centre i, vector R_j - R_i + S·cell."""
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [1.5, 0, 0]], cell=np.eye(3) * 10, pbc=True)
    g = jaxmlp.atoms_to_graph(atoms, 2.0, validate=False)
    assert list(g.receivers) == [0, 1] and list(g.senders) == [1, 0]
    vec = np.asarray(jaxmlp.graph.edge_vectors(g))
    np.testing.assert_allclose(vec, [[1.5, 0, 0], [-1.5, 0, 0]])


def test_small_cell_many_images_of_self():
    """One atom in a 1.5 Å cubic cell with R_c = 3.1 Å sees its own images."""
    atoms = Atoms("Ar", positions=[[0.1, 0.2, 0.3]], cell=np.eye(3) * 1.5, pbc=True)
    g = jaxmlp.atoms_to_graph(atoms, 3.1, validate=False)
    expected = sum(1 for S in itertools.product(range(-3, 4), repeat=3) if 0 < np.linalg.norm(np.array(S) * 1.5) < 3.1)
    assert int(g.n_edge[0]) == expected
    assert np.all(g.senders == 0) and np.all(g.receivers == 0)


def brute_force_triplets(receivers):
    out = set()
    for a in range(len(receivers)):
        for b in range(a + 1, len(receivers)):
            if receivers[a] == receivers[b]:
                out.add((a, b))
    return out


def test_triplets_vs_brute_force():
    rng = np.random.default_rng(1)
    cell = random_triclinic(rng, 3.5)
    atoms = Atoms("Ar5", positions=rng.random((5, 3)) @ cell, cell=cell, pbc=True)
    g = jaxmlp.atoms_to_graph(atoms, 3.0, triplets=True, validate=False)
    t = g.globals["triplets"]
    assert t.shape[1] == 2 and int(g.globals["n_triplet"][0]) == len(t)
    assert {tuple(map(int, r)) for r in t} == brute_force_triplets(np.asarray(g.receivers))
    assert build_triplets(np.array([], int)).shape == (0, 2)


def test_triplets_need_sorted_receivers():
    with pytest.raises(ValueError, match="sorted"):
        build_triplets(np.array([1, 0, 1]))


def test_cutoff_errors():
    atoms = Atoms("Ar", positions=[[0, 0, 0]], cell=np.eye(3) * 1.0, pbc=True)
    with pytest.raises(ValueError, match="positive"):
        jaxmlp.atoms_to_graph(atoms, -1.0, validate=False)
    with pytest.raises(ValueError, match=r"cutoff 1000.0 Å is too large for this structure .*up to .* pairs"):
        jaxmlp.atoms_to_graph(atoms, 1000.0, validate=False)
    with pytest.raises(TypeError, match="ase.Atoms"):
        jaxmlp.atoms_to_graph(np.zeros((3, 3)), 2.0)


# ------------------------------------------------------ pair-count guard


def _slab(nx=30, ny=20, layers=10):
    """Cu(111) slab, pbc in-plane, zero third cell vector (no vacuum vector)."""
    from ase.build import fcc111

    slab = fcc111("Cu", size=(nx, ny, layers), vacuum=None)
    slab.pbc = (True, True, False)
    slab.cell[2] = 0.0
    return slab


def test_large_2d_slab_builds():
    """A 6000-atom slab at R_c = 5 Å used to be refused (N²·images estimate)."""
    slab = _slab()
    assert len(slab) == 6000
    g = jaxmlp.atoms_to_graph(slab, 5.0)  # validation included
    n_pairs = int(g.n_edge[0])
    bound = estimate_pairs(slab.positions, slab.cell.array, slab.pbc, 5.0)
    assert n_pairs <= bound < 10 * n_pairs
    # bulk-like atoms of fcc Cu within 5 Å have 12 + 6 + 24 = 42 neighbours
    assert 30 * len(slab) < n_pairs < 42 * len(slab)


def test_wire_builds():
    wire = Atoms("Cu", positions=[[0, 0, 0]], cell=[0, 0, 2.5], pbc=[False, False, True]).repeat((1, 1, 9000))
    g = jaxmlp.atoms_to_graph(wire, 5.1)
    assert int(g.n_edge[0]) == 4 * len(wire)  # neighbours at ±2.5 Å and ±5.0 Å


@pytest.mark.parametrize(
    "case",
    ["cluster_in_big_box", "slab", "tiny_cell", "molecule", "triclinic", "wire_mixed"],
)
def test_estimate_is_an_upper_bound(case):
    rng = np.random.default_rng(5)
    if case == "cluster_in_big_box":  # was estimated 3.9e3 for 9.0e6 real pairs
        pos, cell, pbc, rc = rng.normal(size=(3000, 3)) * 1.5 + 500.0, np.eye(3) * 1000.0, [True] * 3, 5.0
    elif case == "slab":
        s = _slab(8, 8, 4)
        pos, cell, pbc, rc = s.positions, s.cell.array, s.pbc, 6.0
    elif case == "tiny_cell":
        pos, cell, pbc, rc = rng.random((2, 3)), random_triclinic(rng, 1.5), [True] * 3, 6.0
    elif case == "molecule":
        pos, cell, pbc, rc = rng.random((300, 3)) * 8.0, np.zeros((3, 3)), [False] * 3, 3.0
    elif case == "triclinic":
        cell = random_triclinic(rng, 6.0)
        pos, pbc, rc = (rng.random((50, 3)) * 1.4 - 0.2) @ cell, [True] * 3, 4.0
    else:
        cell = random_triclinic(rng, 3.0)
        pos, pbc, rc = rng.random((10, 3)) @ cell * 2.0, [False, True, True], 5.0
    pbc = np.array(pbc)
    real = len(neighbour_list(pos, np.where(pbc[:, None], cell, 0.0), pbc, rc).centres)
    bound = estimate_pairs(pos, np.where(pbc[:, None], cell, 0.0), pbc, rc)
    assert real <= bound <= 40 * max(real, 1)


def test_guard_refuses_huge_request_naming_the_cutoff():
    from ase.build import bulk

    cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((10, 10, 10))  # 4000 atoms
    # about 4000 · 0.0857 Å⁻³ · 4/3·π·60³ ≈ 3e8 pairs: more than MAX_PAIRS
    assert estimate_pairs(cu.positions, cu.cell.array, cu.pbc, 60.0) > MAX_PAIRS
    with pytest.raises(ValueError, match=r"cutoff 60.0 Å is too large for this structure \(4000 atoms"):
        jaxmlp.atoms_to_graph(cu, 60.0)


@pytest.mark.parametrize("n", [2, 60, 256, 300])
def test_small_molecules_all_pairs_path_equals_vesin(n):
    """Molecules up to 256 atoms take an all-pairs search, larger ones vesin; both give vesin's pair set."""
    import vesin

    from jaxmlp.graph import neighbour_list

    rng = np.random.default_rng(n)
    pos = rng.uniform(0.0, 2.2 * n ** (1 / 3), size=(n, 3))
    cutoff = 3.1
    nl = neighbour_list(pos, np.zeros((3, 3)), np.zeros(3, bool), cutoff)
    assert np.all(nl.offsets == 0) and np.all(np.diff(nl.centres) >= 0)
    box = np.eye(3) * (np.ptp(pos, axis=0).max() + 3 * cutoff)
    i, j = vesin.NeighborList(cutoff=cutoff, full_list=True).compute(points=pos, box=box, periodic=False, quantities="ij")
    assert sorted(zip(nl.centres.tolist(), nl.neighbours.tolist())) == sorted(zip(i.tolist(), j.tolist()))
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    assert len(nl.centres) == int(np.sum((d < cutoff) & ~np.eye(n, dtype=bool))) > 0


# -- triplet filter (n2p2's pruning of triplets that cannot contribute) -------------------------


def _filter_tables(S, rng):
    """Random symmetric [S, S, S] tables: some triples without functions, some narrow-only."""
    rc_pair = rng.uniform(2.0, 3.4, (S, S, S))
    rc_pair = np.maximum(rc_pair, rc_pair.transpose(0, 2, 1))
    rc_pair[0, 0, 0] = 0.0  # a triple without angular functions
    narrow = rng.random((S, S, S)) < 0.6
    narrow = narrow & narrow.transpose(0, 2, 1)
    rc_jk = np.where(narrow & (rc_pair > 0), rc_pair, np.inf)
    return rc_pair, rc_jk


@pytest.mark.parametrize("margin", [0.0, 0.4])
def test_filter_triplets_matches_brute_force(margin):
    from jaxmlp.graph import TripletFilter, filter_triplets

    rng = np.random.default_rng(5)
    atoms = Atoms("H4O3C3", positions=rng.random((10, 3)) * [5.0, 4.5, 5.5], cell=np.diag([5.0, 4.5, 5.5]) + 0.3 * np.tri(3, k=-1), pbc=True)
    rc_pair, rc_jk = _filter_tables(3, rng)
    tf = TripletFilter((1, 6, 8), 3.4, rc_pair, rc_jk)
    g = jaxmlp.atoms_to_graph(atoms, 3.4 + margin, triplets=True, validate=False, triplet_filter=tf)
    full = jaxmlp.atoms_to_graph(atoms, 3.4 + margin, triplets=True, validate=False)
    vec = np.asarray(full.nodes["positions"])[full.senders] - np.asarray(full.nodes["positions"])[full.receivers]
    vec = vec + full.edges["offsets"] @ full.globals["cell"][0]
    sp = tf.species(atoms.numbers)
    expect = []
    for e1, e2 in full.globals["triplets"]:
        c, a, b = sp[full.receivers[e1]], sp[full.senders[e1]], sp[full.senders[e2]]
        rij, rik, rjk = (np.linalg.norm(v) for v in (vec[e1], vec[e2], vec[e2] - vec[e1]))
        bound = rc_pair[c, a, b] + margin
        if rc_pair[c, a, b] > 0 and rij < bound and rik < bound and rjk < rc_jk[c, a, b] + margin:
            expect.append((e1, e2))
    got = [tuple(t) for t in np.asarray(g.globals["triplets"]).tolist()]
    assert 0 < len(got) < len(full.globals["triplets"])
    assert got == [tuple(int(x) for x in t) for t in expect]
    assert int(g.globals["n_triplet"][0]) == len(got)
    # the same function on the raw arrays
    direct = filter_triplets(vec, full.receivers, full.senders, atoms.numbers, tf, margin=margin)
    np.testing.assert_array_equal(direct, np.asarray(g.globals["triplets"]))
    # a filter that cannot drop anything returns the full list
    wide = TripletFilter((1, 6, 8), 3.4, np.full((3, 3, 3), 3.4), np.full((3, 3, 3), np.inf))
    np.testing.assert_array_equal(filter_triplets(vec, full.receivers, full.senders, atoms.numbers, wide, margin),
                                  full.globals["triplets"])


def test_triplet_filter_validation():
    from jaxmlp.graph import TripletFilter, filter_triplets

    ok = np.full((2, 2, 2), 3.0)
    with pytest.raises(ValueError, match="shape"):
        TripletFilter((1, 8), 3.0, np.ones((2, 2)), ok)
    asym = ok.copy()
    asym[0, 0, 1] = 1.0
    with pytest.raises(ValueError, match="symmetric"):
        TripletFilter((1, 8), 3.0, asym, ok)
    with pytest.raises(ValueError, match="atomic numbers"):
        TripletFilter((1, 1), 3.0, ok, ok)
    with pytest.raises(ValueError, match=">= 0"):
        TripletFilter((1, 8), 3.0, -ok, ok)
    with pytest.raises(ValueError, match="finite"):
        TripletFilter((1, 8), 3.0, ok * np.inf, ok)
    with pytest.raises(ValueError, match="cutoff"):
        TripletFilter((1, 8), 0.0, ok, ok)
    tf = TripletFilter((1, 8), 3.0, ok, ok)
    with pytest.raises(ValueError, match="margin"):
        filter_triplets(np.ones((2, 3)), np.zeros(2, int), np.ones(2, int), np.array([1, 8]), tf, margin=-1.0)
    with pytest.raises(TypeError, match="TripletFilter"):
        jaxmlp.atoms_to_graph(Atoms("H2O", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0]]), 3.0, triplets=True, triplet_filter={"a": 1})
    assert not tf.rc_pair.flags.writeable
