"""Geometry builders and built-in datasets (generated offline, cached)."""

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.neighborlist import neighbor_list

from jaxmlp.data import (
    Dataset,
    alkane,
    biphenyl,
    cu_bulk,
    cu_clusters,
    default_dataset,
    generate,
    linear_chain,
    organic_molecules,
    polyene,
)
from jaxmlp.graph import validate


def _bonds(atoms, cutoff=1.7):
    """Set of (pair, length) for all bonds shorter than ``cutoff`` Å."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    symbols = atoms.get_chemical_symbols()
    return {("".join(sorted(symbols[a] + symbols[b])), round(float(r), 6)) for a, b, r in zip(i, j, d) if a < b}


def _angles(atoms, cutoff=1.7):
    """Bond angles (degrees) around every carbon."""
    i, _, vectors = neighbor_list("ijD", atoms, cutoff)
    out = set()
    for c in np.flatnonzero(atoms.numbers == 6):
        v = vectors[i == c]
        v = v / np.linalg.norm(v, axis=1)[:, None]
        for p in range(len(v)):
            for q in range(p + 1, len(v)):
                out.add(round(float(np.degrees(np.arccos(np.clip(v[p] @ v[q], -1, 1)))), 4))
    return out


def _degrees(atoms, cutoff=1.7):
    i = neighbor_list("i", atoms, cutoff)
    return np.bincount(i, minlength=len(atoms))


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_alkane_geometry(n):
    atoms = alkane(n)
    validate(atoms)
    assert atoms.get_chemical_formula(mode="hill") == (f"C{n}H{2 * n + 2}" if n > 1 else "CH4")
    expected = {("CH", 1.09)} | ({("CC", 1.54)} if n > 1 else set())
    assert _bonds(atoms) == expected
    assert _angles(atoms) == {109.4712}
    degree = _degrees(atoms)
    assert (degree[atoms.numbers == 6] == 4).all() and (degree[atoms.numbers == 1] == 1).all()


@pytest.mark.parametrize("n", [2, 4, 8])
def test_polyene_geometry(n):
    atoms = polyene(n)
    validate(atoms)
    assert atoms.get_chemical_formula(mode="hill") == f"C{n}H{n + 2}"
    lengths = {pair: set() for pair in ("CC", "CH")}
    for pair, r in _bonds(atoms):
        lengths[pair].add(r)
    assert lengths["CH"] == {1.09}
    assert lengths["CC"] == ({1.34, 1.46} if n > 2 else {1.34})
    assert _angles(atoms) == {120.0}
    np.testing.assert_allclose(atoms.positions[:, 2], 0.0, atol=1e-12)  # planar
    degree = _degrees(atoms)
    assert (degree[atoms.numbers == 6] == 3).all() and (degree[atoms.numbers == 1] == 1).all()


@pytest.mark.parametrize("dihedral", [0.0, 40.0, 90.0])
def test_biphenyl_geometry(dihedral):
    atoms = biphenyl(dihedral)
    validate(atoms)
    hydrogens = atoms.positions[atoms.numbers == 1]
    hh = np.linalg.norm(hydrogens[:, None] - hydrogens[None], axis=-1) + 10 * np.eye(10)
    assert hh.min() > 1.75  # ortho hydrogens of the two rings do not clash, even when planar
    assert atoms.get_chemical_formula(mode="hill") == "C12H10"
    assert _bonds(atoms) == {("CC", 1.39), ("CC", 1.48), ("CH", 1.09)}
    assert _angles(atoms) == {120.0}
    # twist between ring planes
    normals = []
    for ring in (slice(0, 6), slice(6, 12)):
        p = atoms.positions[ring]
        normals.append(np.linalg.svd(p - p.mean(axis=0))[2][-1])
    twist = np.degrees(np.arccos(abs(normals[0] @ normals[1])))
    assert twist == pytest.approx(dihedral, abs=1e-6)


def test_linear_chain():
    chain = linear_chain(5, spacing=1.2, element="Li")
    np.testing.assert_allclose(np.diff(chain.positions[:, 0]), 1.2)
    assert chain.get_chemical_symbols() == ["Li"] * 5 and not chain.pbc.any()
    ring = linear_chain(4, spacing=1.5, periodic=True)
    validate(ring)
    assert list(ring.pbc) == [True, False, False]
    d = ring.get_distance(0, 3, mic=True)
    assert d == pytest.approx(1.5)  # the chain closes through the boundary
    with pytest.raises(ValueError):
        linear_chain(0)
    with pytest.raises(ValueError):
        polyene(3)
    with pytest.raises(ValueError):
        alkane(0)


def _check_emt(frames, stress):
    for atoms in frames:
        ref = atoms.copy()
        ref.calc = EMT()
        assert atoms.get_potential_energy() == ref.get_potential_energy()
        np.testing.assert_array_equal(atoms.get_forces(), ref.get_forces())
        if stress:
            np.testing.assert_array_equal(atoms.get_stress(), ref.get_stress())


def test_cu_bulk():
    frames = cu_bulk(n=4, seed=1)
    assert len(frames) == 4
    assert all(len(a) == 27 and a.pbc.all() for a in frames)
    _check_emt(frames, stress=True)
    for atoms in frames:
        validate(atoms, min_distance=1.5)
        volume_per_atom = atoms.get_volume() / len(atoms)
        assert 3.6**3 / 4 * 0.9 < volume_per_atom < 3.6**3 / 4 * 1.1
    again = cu_bulk(n=4, seed=1)
    other = cu_bulk(n=4, seed=2)
    assert [a.get_potential_energy() for a in frames] == [a.get_potential_energy() for a in again]
    assert frames[0].get_potential_energy() != other[0].get_potential_energy()
    cubic = cu_bulk(n=1, size=(2, 2, 2), cubic=True, strain=0.0, rattle=0.0)[0]
    assert len(cubic) == 32
    np.testing.assert_allclose(cubic.cell.lengths(), 7.2)
    np.testing.assert_allclose(cubic.get_forces(), 0.0, atol=1e-12)  # perfect crystal


def test_cu_clusters():
    frames = cu_clusters(n=8, sizes=(13, 19, 38, 55, 20), rattle=0.05, seed=0)
    assert {len(a) for a in frames} <= {13, 19, 38, 55, 20}
    assert all(not a.pbc.any() for a in frames)
    _check_emt(frames, stress=False)
    for atoms in frames:
        validate(atoms, min_distance=2.0)
        nearest = neighbor_list("d", atoms, 3.0).min()
        assert 2.2 < nearest < 2.6  # Cu-Cu nearest neighbours near 3.6/sqrt(2) = 2.55 Å
    counts = {size: len(generate._cluster(size, np.random.default_rng(0))) for size in (13, 19, 38, 55, 147, 30)}
    assert counts == {13: 13, 19: 19, 38: 38, 55: 55, 147: 147, 30: 30}


def test_organic_molecules_with_emt():
    frames = organic_molecules(n=6, calculator=EMT(), seed=2)
    formulas = [a.get_chemical_formula() for a in frames]
    assert formulas[2] == formulas[5] == "C12H10"
    assert all(f.startswith("C") for f in formulas)
    _check_emt(frames, stress=False)
    for atoms in frames:
        validate(atoms, min_distance=0.8)
    with pytest.raises(ValueError, match="unknown molecule kinds"):
        organic_molecules(n=1, kinds=("benzene",), calculator=EMT())


def test_default_dataset_is_cached_and_deterministic(tmp_path, monkeypatch):
    ds = default_dataset("cu_emt", n=3, seed=5, cache_dir=tmp_path)
    assert isinstance(ds, Dataset) and len(ds) == 3 and ds.stress is not None
    (cached,) = tmp_path.glob("cu_emt-n3-seed5-*.extxyz")

    def refuse(**kwargs):
        raise AssertionError("should have loaded the cache")

    monkeypatch.setitem(generate.DEFAULT_DATASETS, "cu_emt", (refuse, 100))
    again = default_dataset("cu_emt", n=3, seed=5, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.energy, ds.energy)
    np.testing.assert_array_equal(again.stress, ds.stress)
    monkeypatch.undo()

    fresh = default_dataset("cu_emt", n=3, seed=5, cache_dir=False)  # no cache, same result
    np.testing.assert_array_equal(fresh.energy, ds.energy)
    for a, b in zip(fresh.forces, ds.forces):
        np.testing.assert_array_equal(a, b)

    cached.write_text("garbage\n")
    with pytest.warns(UserWarning, match="regenerating"):
        repaired = default_dataset("cu_emt", n=3, seed=5, cache_dir=tmp_path)
    np.testing.assert_array_equal(repaired.energy, ds.energy)


def test_default_dataset_env_and_names(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXMLP_CACHE", str(tmp_path / "env-cache"))
    ds = default_dataset("cu_clusters_emt", n=2)
    assert len(ds) == 2 and ds.stress is None
    assert len(list((tmp_path / "env-cache").glob("cu_clusters_emt-n2-seed0-*.extxyz"))) == 1
    with pytest.raises(ValueError, match="cu_emt, cu_clusters_emt, organics_xtb"):
        default_dataset("water")


def test_default_dataset_organics_xtb(tmp_path):
    pytest.importorskip("tblite.ase")
    ds = default_dataset("organics_xtb", n=3, cache_dir=tmp_path)
    assert len(ds) == 3 and ds.elements == (1, 6)
    n_c = [int((a.numbers == 6).sum()) for a in ds]
    n_h = [int((a.numbers == 1).sum()) for a in ds]
    assert n_h[0] == 2 * n_c[0] + 2  # alkane
    assert n_h[1] == n_c[1] + 2  # polyene
    assert (n_c[2], n_h[2]) == (12, 10)  # biphenyl
    for atoms in ds:
        assert np.isfinite(atoms.get_potential_energy())
        assert np.abs(atoms.get_forces().sum(axis=0)).max() < 1e-5  # isolated molecule: no net force
