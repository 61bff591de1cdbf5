"""Dataset: construction from labelled Atoms, indexing, splits, padded batches."""

from collections import Counter

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from jaxmlp.data import Batch, Dataset, write


def _emt(atoms, stress):
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if stress:
        results["stress"] = atoms.get_stress()
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def _frames(n_bulk=7, n_mol=5, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_bulk):
        atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 1 + k % 3))
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(_emt(atoms, stress=True))
    for k in range(n_mol):
        atoms = molecule(["CH4", "C2H6", "CH3OH"][k % 3])
        atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
        frames.append(_emt(atoms, stress=False))
    return frames


@pytest.fixture(scope="module")
def dataset():
    return Dataset.from_atoms(_frames())


# ---------------------------------------------------------------- construction


def test_from_atoms_reads_labels(dataset):
    frames = _frames()
    assert len(dataset) == len(frames) == 12
    np.testing.assert_array_equal(dataset.energy, [a.get_potential_energy() for a in frames])
    for f, a in zip(dataset.forces, frames):
        np.testing.assert_array_equal(f, a.get_forces())
    assert dataset.stress.shape == (12, 6)
    np.testing.assert_array_equal(dataset.stress_mask, [True] * 7 + [False] * 5)
    np.testing.assert_array_equal(dataset.stress[:7], [a.get_stress() for a in frames[:7]])
    np.testing.assert_array_equal(dataset.stress[7:], 0.0)
    np.testing.assert_array_equal(dataset.n_atoms, [len(a) for a in frames])
    assert dataset.elements == (1, 6, 8, 29)
    np.testing.assert_array_equal(dataset.weight, 1.0)


def test_legacy_info_arrays_labels():
    atoms = molecule("H2O")
    atoms.info["energy"] = -3.0
    atoms.arrays["forces"] = np.ones((3, 3))
    ds = Dataset.from_atoms([atoms])
    assert ds.energy[0] == -3.0 and ds.stress is None


@pytest.mark.parametrize(
    "results, fragment",
    [
        ({"forces": np.zeros((3, 3))}, "frame 2 (H2O): no energy"),
        ({"energy": np.nan, "forces": np.zeros((3, 3))}, "frame 2 (H2O): energy is nan"),
        ({"energy": 1.0}, "frame 2 (H2O): no forces"),
        ({"energy": 1.0, "forces": np.full((3, 3), np.inf)}, "frame 2 (H2O): forces contain NaN or inf"),
        ({"energy": 1.0, "forces": np.zeros((2, 3))}, "frame 2 (H2O): forces have shape"),
        ({"energy": 1.0, "forces": np.zeros((3, 3)), "stress": np.full(6, np.nan)}, "frame 2 (H2O): stress"),
    ],
)
def test_from_atoms_errors_name_the_frame(results, fragment):
    frames = _frames(n_bulk=1, n_mol=1)
    bad = molecule("H2O")
    bad.calc = SinglePointCalculator(bad, **results)
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Dataset.from_atoms(frames + [bad])


def test_non_numeric_labels_and_empty_structures_name_the_frame():
    frames = _frames(n_bulk=1, n_mol=1)
    bad = molecule("H2O")
    bad.calc = SinglePointCalculator(bad, forces=np.zeros((3, 3)))
    bad.calc.results["energy"] = True  # float(True) would be a 1.0 eV label
    with pytest.raises(ValueError, match=r"frame 2 \(H2O\): energy is not a real number: True"):
        Dataset.from_atoms(frames + [bad])
    bad.calc.results["energy"] = "abc"
    with pytest.raises(ValueError, match=r"frame 2 \(H2O\): energy is not a real number: 'abc'"):
        Dataset.from_atoms(frames + [bad])
    empty = Atoms()
    empty.calc = SinglePointCalculator(empty, energy=0.0, forces=np.zeros((0, 3)))
    # the message used to read "frame 2 (): ..." with the chemical formula of nothing
    with pytest.raises(ValueError, match=r"^frame 2: structure has no atoms$"):
        Dataset.from_atoms(frames + [empty])


def test_from_file_errors_name_the_file(tmp_path):
    path = tmp_path / "unlabelled.extxyz"
    write(path, [molecule("H2O")])
    with pytest.raises(ValueError, match=rf"^{path}: frame 0 \(H2O\): no energy label"):
        Dataset.from_file(path)


def test_unlabelled_frame_is_rejected():
    with pytest.raises(ValueError, match="frame 0 .*no energy"):
        Dataset.from_atoms([molecule("H2O")])


def test_from_file_round_trip(tmp_path, dataset):
    path = tmp_path / "ds.extxyz"
    dataset.write(path)
    back = Dataset.from_file(path)
    np.testing.assert_array_equal(back.energy, dataset.energy)
    np.testing.assert_array_equal(back.stress, dataset.stress)
    np.testing.assert_array_equal(back.stress_mask, dataset.stress_mask)
    for a, b in zip(back.forces, dataset.forces):
        np.testing.assert_array_equal(a, b)
    n2p2 = tmp_path / "input.data"
    write(n2p2, dataset)
    assert Dataset.from_file(n2p2).stress is None  # n2p2 has no stress


# ------------------------------------------------------------------- sequence


def test_int_index_gives_labelled_copy(dataset):
    atoms = dataset[3]
    assert isinstance(atoms, Atoms)
    assert atoms.get_potential_energy() == dataset.energy[3]
    np.testing.assert_array_equal(atoms.get_forces(), dataset.forces[3])
    np.testing.assert_array_equal(atoms.get_stress(), dataset.stress[3])
    atoms.positions += 1.0
    assert not np.allclose(dataset[3].positions, atoms.positions)  # dataset unchanged
    assert dataset[-1].get_potential_energy() == dataset.energy[-1]
    assert "stress" not in dataset[-1].calc.results
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_targets_are_read_only(dataset):
    with pytest.raises(ValueError):
        dataset.energy[0] = 0.0
    with pytest.raises(ValueError):
        dataset.forces[0][0, 0] = 0.0


@pytest.mark.parametrize(
    "index, expected",
    [
        (slice(2, 5), [2, 3, 4]),
        (slice(None, None, -4), [11, 7, 3]),
        ([0, 11, 5], [0, 11, 5]),
        (np.array([1, -1]), [1, 11]),
        (np.arange(12) % 5 == 0, [0, 5, 10]),
        ([], []),
    ],
)
def test_subset_index(dataset, index, expected):
    sub = dataset[index]
    assert isinstance(sub, Dataset)
    np.testing.assert_array_equal(sub.energy, dataset.energy[expected])
    np.testing.assert_array_equal(sub.n_atoms, dataset.n_atoms[expected])


def test_iteration_and_repr(dataset):
    energies = [a.get_potential_energy() for a in dataset]
    np.testing.assert_array_equal(energies, dataset.energy)
    assert "n=12" in repr(dataset) and "HCOCu" in repr(dataset)


def test_concat_mixes_stress_and_weights(dataset):
    no_stress = Dataset.from_atoms(_frames(n_bulk=0, n_mol=2, seed=5)).with_weight([2.0, 3.0])
    assert no_stress.stress is None
    both = dataset.concat(no_stress)
    assert len(both) == 14
    np.testing.assert_array_equal(both.stress_mask, list(dataset.stress_mask) + [False, False])
    np.testing.assert_array_equal(both.weight[-2:], [2.0, 3.0])
    assert len(Dataset.concat(dataset[:2], dataset[2:4], dataset[4:])) == 12
    np.testing.assert_array_equal((dataset[:3] + dataset[3:]).energy, dataset.energy)


def test_invalid_weights():
    with pytest.raises(ValueError, match="non-negative"):
        Dataset.from_atoms(_frames(1, 1), weight=[1.0, -1.0])
    with pytest.raises(ValueError, match="entries"):
        Dataset.from_atoms(_frames(1, 1), weight=[1.0])


# --------------------------------------------------------------------- splits


def test_split_is_reproducible_and_disjoint(dataset):
    parts = dataset.split((0.5, 0.25, 0.25), seed=3)
    again = dataset.split((0.5, 0.25, 0.25), seed=3)
    other = dataset.split((0.5, 0.25, 0.25), seed=4)
    assert [len(p) for p in parts] == [6, 3, 3]
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a.energy, b.energy)
    assert any(not np.array_equal(a.energy, b.energy) for a, b in zip(parts, other))
    ids = [e for p in parts for e in p.energy]  # EMT energies are distinct per frame
    assert sorted(ids) == sorted(dataset.energy)
    assert len(set(ids)) == len(dataset)


def test_split_partial_and_invalid(dataset):
    train, test = dataset.split((0.5, 0.25))
    assert len(train) == 6 and len(test) == 3
    assert not set(train.energy) & set(test.energy)
    with pytest.raises(ValueError, match="sum"):
        dataset.split((0.8, 0.3))
    with pytest.raises(ValueError, match="non-negative"):
        dataset.split((1.2, -0.2))


# -------------------------------------------------------------------- batches

CUTOFF = 3.0


def test_batches_cover_every_structure_once_with_constant_shapes(dataset):
    batch_size = 5
    buckets = dataset.buckets(CUTOFF, batch_size)
    seen = []
    shapes = set()
    batches = list(dataset.batches(CUTOFF, batch_size=batch_size, shuffle=True, seed=1))
    assert len(batches) == dataset.num_batches(batch_size) == 3
    for batch in batches:
        assert isinstance(batch, Batch)
        g = batch.graph
        shapes.add(
            (
                g.nodes["positions"].shape,
                g.senders.shape,
                g.n_node.shape,
                batch.energy.shape,
                batch.forces.shape,
                batch.stress.shape,
                batch.weight.shape,
                batch.stress_mask.shape,
            )
        )
        assert int(np.sum(g.n_node)) == buckets.n_node and len(g.n_node) == buckets.n_graph
        real = np.asarray(g.globals["mask"])
        assert not real[-1]  # padding graph last
        np.testing.assert_array_equal(batch.weight[~real], 0.0)
        np.testing.assert_array_equal(batch.energy[~real], 0.0)
        node_mask = np.asarray(g.nodes["mask"])
        np.testing.assert_array_equal(batch.forces[~node_mask], 0.0)
        # targets follow the graph order: match each real graph with its structure
        starts = np.r_[0, np.cumsum(g.n_node)]
        for k in np.flatnonzero(real):
            (idx,) = np.flatnonzero(dataset.energy == batch.energy[k])
            seen.append(int(idx))
            sl = slice(starts[k], starts[k + 1])
            np.testing.assert_array_equal(g.nodes["positions"][sl], dataset[int(idx)].positions)
            np.testing.assert_array_equal(batch.forces[sl], dataset.forces[idx])
            assert batch.stress_mask[k] == dataset.stress_mask[idx]
            np.testing.assert_array_equal(batch.stress[k], dataset.stress[idx])
    assert len(shapes) == 1
    assert Counter(seen) == Counter(range(len(dataset)))


def test_batches_shuffle_and_order(dataset):
    def order(**kw):
        return [e for b in dataset.batches(CUTOFF, batch_size=4, **kw) for e in b.energy[np.asarray(b.graph.globals["mask"])]]

    np.testing.assert_array_equal(order(shuffle=False), dataset.energy)
    np.testing.assert_array_equal(order(seed=7), order(seed=7))
    assert not np.array_equal(order(seed=7), order(seed=8))


def test_batches_drop_last_and_bucket_checks(dataset):
    assert len(list(dataset.batches(CUTOFF, batch_size=5, drop_last=True))) == 2
    assert dataset.num_batches(5, drop_last=True) == 2
    small = dataset.buckets(CUTOFF, 2)
    with pytest.raises(ValueError, match="real graphs"):
        next(dataset.batches(CUTOFF, buckets=small, batch_size=4))
    tight = small._replace(n_graph=5, n_node=10)  # enough graphs, too few nodes
    with pytest.raises(ValueError, match="does not fit"):
        list(dataset.batches(CUTOFF, buckets=tight, batch_size=4, shuffle=False))


def test_graph_cache_shared_with_subsets(dataset):
    graphs = dataset.graphs(CUTOFF)
    assert dataset.graphs(CUTOFF)[0] is graphs[0]
    sub = dataset[[4, 2]]
    assert sub.graphs(CUTOFF)[1] is graphs[2]


def test_graph_errors_name_the_structure():
    frames = _frames(n_bulk=1, n_mol=1)
    clash = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.01]])
    clash.calc = SinglePointCalculator(clash, energy=0.0, forces=np.zeros((2, 3)))
    ds = Dataset.from_atoms(frames + [clash])
    with pytest.raises(ValueError, match="structure 2: .*closer than"):
        list(ds.batches(CUTOFF, batch_size=2))


def test_jit_compiles_once_per_epoch(dataset):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    traces = []

    @jax.jit
    def weighted(batch):
        traces.append(1)
        return jnp.sum(batch.weight * batch.energy) + jnp.sum(batch.forces * batch.graph.nodes["positions"])

    total = 0.0
    for epoch in range(2):
        for batch in dataset.batches(CUTOFF, batch_size=5, seed=epoch):
            total += float(weighted(batch))
    assert len(traces) == 1
    expected = 2 * (dataset.energy.sum() + sum(float(np.sum(f * a.positions)) for f, a in zip(dataset.forces, dataset)))
    assert total == pytest.approx(expected, rel=1e-12)
