"""Fragment-to-bulk training workflow (Herbold & Behler 2023): each step checked on physics it must get right."""

import importlib.util
import pathlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from jaxmlp.analysis.fragments import complete_environment, cut, detect_groups
from jaxmlp.analysis.locality import group_matrix
from jaxmlp.data import Dataset, fit_reference_energies, read
from jaxmlp.data.label import LabellingError, label
from jaxmlp.hessians import fd_hessian
from jaxmlp.workflows import fragment_training as ft


def water_box(n=3, spacing=3.1, seed=0):
    """``n³`` randomly oriented water molecules on a cubic grid, periodic."""
    rng = np.random.default_rng(seed)
    w = molecule("H2O")
    atoms = Atoms(cell=np.eye(3) * n * spacing, pbc=True)
    for i in range(n):
        for j in range(n):
            for k in range(n):
                m = w.copy()
                m.rotate(rng.uniform(0, 360), rng.normal(size=3) + 1e-3, center="COM")
                m.translate(spacing * np.array([i, j, k]) + rng.uniform(-0.2, 0.2, 3))
                atoms += m
    return atoms


def fcc(a=3.61, reps=3, rattle=0.05, seed=0):
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((reps, reps, reps))
    atoms.rattle(rattle, seed=seed)
    return atoms


# ----------------------------------------------------------------------------- fragments
def test_water_molecules_never_cut():
    """Every water molecule with any atom inside the sphere is in the fragment whole (across images); none is split."""
    box = water_box()
    mol_of = np.repeat(np.arange(len(box) // 3), 3)  # molecule() gives O, H, H per molecule
    assert len(detect_groups(box, kinds=("molecules",))) == len(box) // 3
    dist = box.get_all_distances(mic=True)
    for centre in (0, 1, 14, 40):
        for r in (2.0, 3.3, 4.7):
            frag = cut(box, centre, r, keep_whole=("molecules",))
            par = frag.parent_indices
            assert len(frag.saturating) == 0  # no bond is cut, so nothing is capped
            counts = np.bincount(mol_of[par], minlength=len(box) // 3)
            assert set(counts[counts > 0].tolist()) <= {3, 6, 9}  # whole molecules (an image may come twice in a big sphere)
            inside = np.unique(mol_of[np.flatnonzero(dist[centre] < r)])
            assert set(inside) <= set(mol_of[par])
            # unwrapped: intramolecular O-H stay ~0.97 Å in the cluster
            R = frag.positions
            for o in np.flatnonzero(frag.numbers == 8):
                d = np.linalg.norm(R[frag.numbers == 1] - R[o], axis=1)
                assert np.sum(d < 1.2) == 2


def test_molecules_kind_skips_infinite_frameworks():
    """A bonded crystal is one infinite component: no 'molecule' group; a finite molecule in vacuum is one."""
    assert detect_groups(fcc(rattle=0.0), kinds=("molecules",)) == []
    assert detect_groups(molecule("C6H6"), kinds=("molecules",)) == [list(range(12))]
    with pytest.raises(ValueError, match="unknown group kinds"):
        detect_groups(molecule("H2O"), kinds=("blobs",))


def _brute_complete(parent, frag, cutoff):
    """Independent count: parent images within cutoff of each fragment atom, matched by position and identity."""
    shifts = np.array([(i, j, k) for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3)]) @ parent.cell.array
    imgs = (parent.positions[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    ids = np.tile(np.arange(len(parent)), len(shifts))
    out = []
    for k, p in enumerate(frag.parent_indices):
        if p < 0:
            out.append(False)
            continue
        x = frag.positions[k]
        rel = imgs - (parent.positions[p] - x)  # parent images placed around the fragment atom
        want = np.linalg.norm(rel - x, axis=1)
        sel = (want < cutoff) & (want > 1e-9)
        have = np.linalg.norm(frag.positions - x, axis=1)
        mine = (have < cutoff) & (have > 1e-9)
        ok = mine.sum() == sel.sum() and all(
            np.any((np.linalg.norm(frag.positions[mine] - y, axis=1) < 1e-6) & (frag.parent_indices[mine] == i))
            for y, i in zip(rel[sel], ids[sel]))
        out.append(bool(ok))
    return np.array(out)


@pytest.mark.parametrize("radius,cutoff", [(5.0, 2.8), (6.0, 3.7), (3.0, 3.0)])
def test_complete_environment_counts_match_brute_force(radius, cutoff):
    parent = fcc(reps=2)
    frag = cut(parent, 3, radius, keep_whole=False, bond_scale=0.5)
    mask = complete_environment(frag, parent, cutoff)
    np.testing.assert_array_equal(mask, _brute_complete(parent, frag, cutoff))
    assert mask[frag.center]  # radius >= cutoff: the site sees its whole cutoff sphere
    # an atom is complete only if its whole cutoff sphere fits: |x - centre| + cutoff <= radius is enough
    d = np.linalg.norm(frag.positions - frag.positions[frag.center], axis=1)
    assert np.all(mask[d + cutoff < radius - 0.3])


def test_caps_make_environments_incomplete():
    """In an alkane fragment, atoms within the cutoff of an H cap are not central."""
    from jaxmlp.data.generate import alkane

    mol = alkane(8)
    frag = cut(mol, 0, 3.0)
    assert len(frag.saturating) >= 1
    mask = complete_environment(frag, mol, 2.0)
    caps = frag.saturating
    near_cap = np.linalg.norm(frag.positions[:, None] - frag.positions[caps][None], axis=2).min(axis=1) < 2.0
    assert not np.any(mask & near_cap) and not np.any(mask[caps])
    assert mask.sum() > 0


def test_cut_fragments_and_table():
    box = water_box()
    frags = ft.cut_fragments([box, box], [[0, 1], [2]], 3.5, 3.0, keep_whole=("molecules",))
    assert [(f.info["frame"], f.info["site"]) for f in frags] == [(0, 0), (0, 1), (1, 2)]
    table = ft.environment_table(frags)
    assert set(table) == {"O", "H"}
    assert table["H"]["n_fragments"] == 2 and table["O"]["n_fragments"] == 1
    assert table["H"]["n_central_total"] == sum(int(f.arrays["central"].sum()) for f in frags[1:])
    assert 0 < table["O"]["ratio"] <= 1


# ----------------------------------------------------------------------------- range of the reference
def test_converged_radius_needs_every_larger_fragment():
    rows = [{"radius": 3.0, "g": 1.0}, {"radius": 4.0, "g": 0.2}, {"radius": 5.0, "g": 0.5}, {"radius": 6.0, "g": 0.1}]
    assert ft.converged_radius(rows, 0.35, "g") == 6.0  # 4 Å dips below Γ, but 5 Å does not
    assert ft.converged_radius(rows, 0.6, "g") == 4.0
    assert ft.converged_radius(rows, 0.05, "g") is None
    rng = ft.reference_range({"a": [{"radius": 4.0, "Gprime_norm": 0.1}], "b": [{"radius": 6.0, "Gprime_norm": 0.2}]})
    assert rng.r_frag_conv == 6.0 and rng.r_c == 3.0 and rng.criterion == "Gprime_norm"
    frows = [{"radius": r["radius"], "delta_f_norm": r["g"]} for r in rows]
    by_force = ft.reference_range({"a": frows}, force_tolerance=0.6)
    assert by_force.criterion == "delta_f_norm" and by_force.r_frag_conv == 4.0
    unconv = ft.reference_range({"a": frows}, force_tolerance=0.01)
    assert unconv.r_frag_conv is None and unconv.r_c is None and unconv.sites == {"a": None}
    with pytest.raises(ValueError):
        ft.converged_radius(rows, 0.0, "g")


def test_locality_rows_agree_with_the_full_hessian():
    """G from A's 6-call Hessian row equals Σ h_AB of the dense FD Hessian of the cluster; Δf is the force change."""
    cluster = cut(fcc(reps=2), 0, 4.0, keep_whole=False, bond_scale=0.5).atoms
    calc = EMT()
    rows = ft.locality_rows(cluster, calc, 0, [2.6, 3.0], keep_whole=False, bond_scale=0.5)
    H = fd_hessian(cluster, calc, 0.0025)
    c = cluster.copy()
    c.calc = EMT()
    f0 = c.get_forces()[0]
    for row in rows:
        frag = cut(cluster, 0, row["radius"], keep_whole=False, bond_scale=0.5)
        G = group_matrix(H, 0, frag.excluded(len(cluster)))
        assert row["G_norm"] == pytest.approx(np.linalg.norm(G), rel=1e-6)
        assert row["Gprime_norm"] == row["G_norm"]  # no caps
        fa = frag.atoms
        fa.calc = EMT()
        assert row["delta_f_norm"] == pytest.approx(np.linalg.norm(f0 - fa.get_forces()[frag.center]), abs=1e-10)
    with pytest.raises(ValueError, match="finite reference cluster"):
        ft.locality_rows(fcc(reps=2), calc, 0, [3.0])


# ----------------------------------------------------------------------------- reference force errors (Figs. 6/7)
def test_central_atoms_of_a_short_ranged_reference_have_bulk_forces():
    """With a truncated pair potential (force range = its cutoff), central atoms of a fragment feel exactly the bulk force."""
    parent = fcc(reps=3, rattle=0.05)
    lj = LennardJones(sigma=2.3, epsilon=0.4, rc=3.0)
    b = parent.copy()
    b.calc = lj
    bulk_lab = b.copy()
    from ase.calculators.singlepoint import SinglePointCalculator

    bulk_lab.calc = SinglePointCalculator(bulk_lab, energy=b.get_potential_energy(), forces=b.get_forces())
    frags = ft.cut_fragments([parent], [[0, 5]], 6.0, 3.0, keep_whole=False, bond_scale=0.5)
    lab = []
    for f in frags:
        a = f.atoms
        a.calc = LennardJones(sigma=2.3, epsilon=0.4, rc=3.0)
        a.get_forces()
        lab.append(a)
    err = ft.central_force_errors(frags, lab, {0: bulk_lab})
    assert err["n"] == sum(f.info["n_central"] for f in frags) > 10
    assert err["max"] < 1e-10
    # atoms that are not central do feel a different force (the fragment surface)
    f = frags[0]
    outer = np.flatnonzero(~f.arrays["central"])
    df = np.linalg.norm(b.get_forces()[f.parent_indices[outer]] - lab[0].get_forces()[outer], axis=1)
    assert df.max() > 1e-3


# ----------------------------------------------------------------------------- labelling
def _frames(n=6, seed=0):
    out = []
    for k in range(n):
        a = fcc(reps=2, rattle=0.05, seed=seed + k)
        if k % 2:
            a = a[:13]
            a.pbc = False
            a.cell = np.zeros((3, 3))
        out.append(a)
    return out


def test_executor_labelling_equals_serial(tmp_path):
    frames = _frames()
    serial = label(frames, EMT(), tmp_path / "s.extxyz", progress=False)
    with ThreadPoolExecutor(3) as ex:
        par = label(frames, EMT(), tmp_path / "p.extxyz", progress=False, executor=ex, max_pending=2)
    back = read(tmp_path / "p.extxyz")
    for a, b, c, f in zip(serial, par, back, frames):
        np.testing.assert_array_equal(c.positions, f.positions)  # input order on disk
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(c.get_forces(), a.get_forces(), atol=1e-10)
    with pytest.raises(TypeError, match="executor"):
        label(frames, EMT(), tmp_path / "x.extxyz", progress=False, executor=object())
    with pytest.raises(ValueError, match="workers"):
        label(frames, EMT(), tmp_path / "x.extxyz", progress=False, workers=0)


def test_dask_distributed_executor_labels_like_serial(tmp_path):
    """A local dask.distributed cluster through ``client.get_executor()`` (the interface a cluster gives;
    threaded workers here, since worker processes would each import jax: ~10 s apiece on CI)."""
    distributed = pytest.importorskip("distributed")
    frames = _frames(4)
    serial = label(frames, EMT(), tmp_path / "s.extxyz", progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        par = label(frames, EMT(), tmp_path / "d.extxyz", progress=False, executor=client.get_executor())
    back = read(tmp_path / "d.extxyz")
    for a, b, c, f in zip(serial, par, back, frames):
        np.testing.assert_array_equal(c.positions, f.positions)
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(c.get_forces(), a.get_forces(), atol=1e-10)


class _FailOnCluster(EMT):
    """EMT that fails on 13-atom clusters whose first x coordinate is ``bad_x``; counts calls across copies."""

    calls = 0
    lock = threading.Lock()

    def __init__(self, bad_x=None):
        super().__init__()
        self.bad_x = bad_x

    def calculate(self, atoms=None, properties=("energy",), system_changes=("positions",)):
        with _FailOnCluster.lock:
            _FailOnCluster.calls += 1
        if self.bad_x is not None and len(atoms) == 13 and atoms.positions[0, 0] == self.bad_x:
            raise RuntimeError("simulated crash")
        super().calculate(atoms, properties, system_changes)


def test_executor_labelling_resumes_after_a_failure(tmp_path):
    frames = _frames(8)
    path = tmp_path / "run.extxyz"
    k = 3
    with ThreadPoolExecutor(2) as ex:
        with pytest.raises(LabellingError, match=f"frame {k}") as info:
            label(frames, _FailOnCluster(bad_x=frames[k].positions[0, 0]), path, progress=False, executor=ex)
    assert info.value.frame == k
    stored = read(path)
    assert len(stored) == k  # the prefix before the failed frame, in order
    for a, f in zip(stored, frames):
        np.testing.assert_array_equal(a.positions, f.positions)
    _FailOnCluster.calls = 0
    with ThreadPoolExecutor(2) as ex:
        out = label(frames, _FailOnCluster(), path, progress=False, executor=ex)
    assert len(out) == len(read(path)) == len(frames)
    assert _FailOnCluster.calls == len(frames) - k  # only the missing frames were computed
    assert LabellingError("m", 4).__reduce__()[1] == ("m", 4)  # survives pickling from a process pool


@pytest.mark.slow
def test_local_process_pool_labelling(tmp_path):
    """workers=2: a spawn-started local process pool gives the serial labels (slow: each worker imports jax)."""
    frames = _frames(4)
    serial = label(frames, EMT(), tmp_path / "s.extxyz", progress=False)
    par = label(frames, EMT(), tmp_path / "p.extxyz", progress=False, workers=2)
    for a, b in zip(serial, par):
        np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-10)


# ----------------------------------------------------------------------------- models: E0, offsets, Hessian range
def _emt(a):
    from ase.calculators.singlepoint import SinglePointCalculator

    b = a.copy()
    b.calc = EMT()
    e, f = b.get_potential_energy(), b.get_forces()
    b.calc = SinglePointCalculator(b, energy=e, forces=f)
    return b


def test_e0_and_offset_correction():
    """E0 is the least-squares fit; the offset-corrected bulk energy error ignores the reference's energy zero."""
    import jax

    frags = ft.cut_fragments([fcc(reps=2)], [[0, 1, 2]], 3.0, 2.8, keep_whole=False, bond_scale=0.5)
    train = Dataset.from_atoms([_emt(f.atoms) for f in frags])
    model = ft.fragment_hdnnp(train, 2.8, n_radial=3, etas=(), zetas=(), hidden=(4,))
    assert model.cutoff == 2.8
    params = model.init(jax.random.PRNGKey(0), train.graphs(2.8)[0])
    e0 = fit_reference_energies(train, [29])
    bulk_frames = [_emt(fcc(reps=2, seed=s)) for s in (1, 2, 3)]
    ds = Dataset.from_atoms(bulk_frames[1:])
    err = ft.bulk_errors(model, params, ds, offset_structure=bulk_frames[0])
    assert np.isfinite(err["energy_rmse"]) and err["offset"] == "reference structure"

    def shifted(a, c):  # the same structure with the reference energy zero moved by c eV/atom
        from ase.calculators.singlepoint import SinglePointCalculator

        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=a.get_potential_energy() + c * len(a), forces=a.get_forces())
        return b

    c = -3.7
    err2 = ft.bulk_errors(model, params, Dataset.from_atoms([shifted(a, c) for a in bulk_frames[1:]]),
                          offset_structure=shifted(bulk_frames[0], c))
    assert err2["energy_rmse"] == pytest.approx(err["energy_rmse"], abs=1e-9)
    assert err2["offset_per_atom"] == pytest.approx(err["offset_per_atom"] + c, abs=1e-9)
    assert err2["force_rmse"] == pytest.approx(err["force_rmse"], abs=1e-12)
    # the offset reference itself has zero corrected error: reference = the one structure evaluated
    self_err = ft.bulk_errors(model, params, Dataset.from_atoms(bulk_frames[1:2] * 2), offset_structure=bulk_frames[1])
    assert self_err["energy_rmse"] < 1e-10 and self_err["energy_rmse_raw"] > 1e-6
    assert e0["Cu"] == pytest.approx(np.mean(train.energy / train.n_atoms), rel=1e-9)  # one element: E0 = mean E/N


def _small_hdnnp_and_cluster(seed):
    """A 2.8 Å HDNNP (random weights ``seed``) on EMT Cu and a 7 Å fcc cluster to measure its range on."""
    import jax

    train = Dataset.from_atoms([_emt(fcc(reps=2, seed=s)) for s in (0, 1)])
    model = ft.fragment_hdnnp(train, 2.8, n_radial=3, etas=(), zetas=(), hidden=(4,))
    params = model.init(jax.random.PRNGKey(seed), train.graphs(2.8)[0])
    return model, params, cut(fcc(reps=3), 0, 7.0, keep_whole=False, bond_scale=0.5).atoms


def test_model_hessian_vanishes_beyond_twice_the_cutoff():
    """An HDNNP with cutoff R_c couples atoms up to 2·R_c and not beyond; the measured range lies in (R_c, 2·R_c]."""
    model, params, cluster = _small_hdnnp_and_cluster(1)
    mr = ft.model_range(model, params, cluster)
    assert mr["interaction_range"] == pytest.approx(5.6)
    assert mr["n_pairs_beyond"] > 0 and mr["max_beyond"] == 0.0
    assert 2.8 < mr["measured_range"] <= 5.6
    beyond = [row for row in mr["decay"] if row["r_lo"] >= 5.6 and row["count"] > 0]
    assert beyond and all(row["max"] == 0.0 for row in beyond)


def test_model_range_rows_agree_with_the_dense_hessian():
    """Hessian rows of a few atoms (3 HVPs each) give the dense Hessian's blocks: same zeros beyond 2·R_c, same range."""
    from jaxmlp.graph.build import atoms_to_graph
    from jaxmlp.observables import hessian

    model, params, cluster = _small_hdnnp_and_cluster(2)
    dense = ft.model_range(model, params, cluster)
    every = ft.model_range(model, params, cluster, rows=range(len(cluster)))
    assert every["max_beyond"] == 0.0 and every["n_pairs_beyond"] == dense["n_pairs_beyond"]
    assert every["measured_range"] == pytest.approx(dense["measured_range"], abs=1e-9)
    assert every["max_norm"] == pytest.approx(dense["max_norm"], rel=1e-10)
    rows = [3, 17, 40]
    part = ft.model_range(model, params, cluster, rows=rows)
    H = np.asarray(hessian(model, params, atoms_to_graph(cluster, model.cutoff)), float)
    n = len(cluster)
    blocks = np.linalg.norm(H.reshape(n, 3, n, 3).transpose(0, 2, 1, 3)[rows], axis=(2, 3))
    d = np.linalg.norm(cluster.positions[rows][:, None] - cluster.positions[None], axis=-1)
    off = d > 0
    assert part["max_norm"] == pytest.approx(blocks[off].max(), rel=1e-10)
    assert part["measured_range"] == pytest.approx(d[off & (blocks > 1e-8)].max(), abs=1e-9)
    assert part["n_pairs_beyond"] == int((d > 5.6).sum()) > 0 and part["max_beyond"] == 0.0
    with pytest.raises(ValueError, match="distinct atom indices"):
        ft.model_range(model, params, cluster, rows=[0, 0])
    with pytest.raises(ValueError, match="finite cluster"):
        ft.model_range(model, params, fcc(reps=2), rows=[0])


def test_dense_neighbour_layout_gives_the_same_model():
    """fragment_hdnnp(max_neighbors=K) evaluates the same energies and forces as the triplet layout."""
    import jax

    from jaxmlp.graph import max_degree
    from jaxmlp.graph.build import atoms_to_graph
    from jaxmlp.observables import energy_and_forces

    frames = [_emt(fcc(reps=2, seed=s)) for s in (0, 1)]
    train = Dataset.from_atoms(frames)
    kw = dict(n_radial=3, etas=(0.0,), zetas=(1.0,), hidden=(4,))
    sparse = ft.fragment_hdnnp(train, 3.0, **kw)
    dense = ft.fragment_hdnnp(train, 3.0, max_neighbors=max_degree(frames, 3.0) + 8, **kw)
    assert not sparse.needs_triplets and not dense.needs_triplets  # wide-only ACSF: factorised, no triplets in either layout
    assert sparse.config["max_neighbors"] is None and dense.config["max_neighbors"] is not None
    g = atoms_to_graph(frames[0], 3.0, triplets=True)
    params = sparse.init(jax.random.PRNGKey(0), g)
    e1, f1 = energy_and_forces(sparse, params, g)
    e2, f2 = energy_and_forces(dense, params, atoms_to_graph(frames[0], 3.0))
    np.testing.assert_allclose(np.asarray(e2), np.asarray(e1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(f2), np.asarray(f1), atol=1e-10)


def test_train_hdnnps_seeds():
    """One model per spec, one run per seed: the seed-0 run is the plain run; another seed is another run."""
    from jaxmlp.training import TrainConfig

    frames = [_emt(fcc(reps=2, seed=s)) for s in range(4)]
    ds = Dataset.from_atoms(frames)
    spec = {"M": {"train": ds[:3], "valid": ds[3:], "cutoff": 2.8}}
    kw = dict(n_radial=3, etas=(), zetas=(), hidden=(4,))
    cfg = TrainConfig(loss="forces", epochs=30, batch_size=2, learning_rate=3e-3, seed=0, convergence_window=3,
                      convergence_rtol=0.5)
    plain = ft.train_hdnnps(spec, cfg, **kw)["M"]
    multi = ft.train_hdnnps(spec, cfg, seeds=[0, 5], **kw)["M"]
    assert [r["seed"] for r in multi["runs"]] == [0, 5] and "params" not in multi
    assert all(r["cpu_s"] > 0 and r["wall_s"] > 0 for r in multi["runs"])
    a = jax_leaves(plain["params"])
    b = jax_leaves(multi["runs"][0]["params"])
    c = jax_leaves(multi["runs"][1]["params"])
    assert all(np.allclose(x, y, rtol=0, atol=1e-12) for x, y in zip(a, b))
    assert not all(np.allclose(x, y) for x, y in zip(a, c))
    # the loose convergence test stops every run early and says so
    for r in [plain, *multi["runs"]]:
        assert r["history"][-1].get("stop") == "converged" and r["history"][-1]["converged"]
        assert len(r["history"]) < 30
    with pytest.raises(ValueError, match="seeds"):
        ft.train_hdnnps(spec, cfg, seeds=[], **kw)


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


# ----------------------------------------------------------------------------- the example's fast mode
def test_example_fast_mode(tmp_path):
    """The whole workflow on EMT Cu: R_c from Γ, Table 1/2 counts, labels cached, three HDNNPs × 2 seeds, Hessian ranges."""
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fragment_training.py"
    spec = importlib.util.spec_from_file_location("example_fragment_training", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "ft.json"
    res = module.main("fast", out=out, cache=tmp_path / "cache", figures=False)
    assert out.exists()
    assert res["r_c"] == pytest.approx(res["range"]["r_frag_conv"] / 2)
    plan = module.PLANS["fast"]
    for m in res["models"].values():
        assert m["hessian"]["max_beyond"] == 0.0
        assert m["hessian"]["measured_range"] <= 2 * m["cutoff"] + 1e-9
        assert [r["seed"] for r in m["runs"]] == list(plan["seeds"])
        for r in m["runs"]:
            assert np.isfinite(r["bulk"]["force_rmse"]) and 1 <= r["epochs"] <= plan["train"]["epochs"]
            assert len(r["history"]) == r["epochs"] and all("valid_force_rmse" in h for h in r["history"])
            # a run that stopped early passed the convergence test; one that did not is flagged unconverged
            assert r["converged"] == (r["stopped"] == "converged")
            assert r["stopped"] in ("converged", "epochs", "time_limit")
        fr = m["bulk_summary"]["force_rmse"]
        assert fr["mean"] == pytest.approx(np.mean([r["bulk"]["force_rmse"] for r in m["runs"]]))
        assert fr["std"] == pytest.approx(np.std([r["bulk"]["force_rmse"] for r in m["runs"]], ddof=1))
        assert m["converged_all"] == all(r["converged"] for r in m["runs"])
    assert res["models"]["HDNNP3"]["cutoff"] == pytest.approx(2 * res["models"]["HDNNP1"]["cutoff"])
    small, large3 = res["tables"]["small_Rc"]["Cu"], res["tables"]["large_2Rc"]["Cu"]
    assert small["n_central_total"] >= small["n_fragments"]  # every site is complete within R_c of an R_c fragment
    assert large3["n_central_total"] >= large3["n_fragments"]
    # the reference's own error: large fragments' central atoms are far closer to bulk than small ones'
    ref = res["reference_force_errors"]
    assert ref["large_2Rc"]["mean"] < ref["small_Rc"]["mean"]
    # options: a force tolerance picks R_frag^conv by ||Δf||; bad options are refused by name
    with pytest.raises(ValueError, match="force_tolerance"):
        module.main("fast", out=out, cache=tmp_path / "cache", figures=False, force_tolerance=-1.0)
    with pytest.raises(ValueError, match="seeds"):
        module.main("fast", out=out, cache=tmp_path / "cache", figures=False, seeds=[])
