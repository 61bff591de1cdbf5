"""ACSF descriptors: agreement with a brute-force loop, ordering, padding/jit/chunk invariance, scaling."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list

import jaxmlp
from jaxmlp.descriptors import (
    ACSF,
    angular_narrow,
    angular_set,
    angular_wide,
    compact_angular,
    compact_radial,
    radial,
    radial_grid,
    scale_features,
    sort_functions,
)

from helpers import random_cell_atoms

RC = 4.2


def _functions():
    fns = []
    for c in ("H", "O"):
        for e in ("H", "O"):
            fns += [radial(c, e, 0.5, RC, 0.0), radial(c, e, 2.0, RC - 0.7, 1.4), compact_radial(c, e, -RC, RC, "p2"),
                    compact_radial(c, e, 0.8, 3.5, "p3a")]
        for pair in (("H", "H"), ("O", "H"), ("O", "O")):
            fns += [angular_narrow(c, pair, 0.1, 1.0, 2.0, RC), angular_narrow(c, pair, 0.2, -1.0, 1.0, RC - 0.5, 0.3),
                    angular_wide(c, pair, 0.05, -1.0, 4.0, RC), angular_wide(c, pair, 0.0, 1.0, 1.5, RC - 1.0),
                    compact_angular(c, pair, -RC, RC, 0.0, 180.0, "p2"), compact_angular(c, pair, 1.0, 3.9, 60.0, 150.0, "p2a"),
                    compact_angular(c, pair, -RC, RC, -90.0, 90.0, "p2")]
    return fns


@pytest.fixture(scope="module")
def system():
    atoms = random_cell_atoms(10, np.diag([5.1, 4.7, 5.4]) + 0.4 * np.tri(3, k=-1), seed=3, min_dist=1.0, symbols=["O", "H", "H"])
    acsf = ACSF(["O", "H"], _functions(), cutoff_type="cos", cutoff_alpha=0.1)
    return atoms, acsf


def _brute(atoms, acsf):
    """Plain-Python n2p2 loops over neighbours and unordered neighbour pairs."""
    i_, j_, d_, D_ = neighbor_list("ijdD", atoms, acsf.cutoff + 0.3)
    sym = atoms.get_chemical_symbols()
    out = np.zeros((len(atoms), acsf.n_max))
    assert acsf.cutoff_type == "cos"

    def fc(r, rc):  # n2p2 CT_COS with inner cutoff alpha
        rci = acsf.cutoff_alpha * rc
        if r >= rc:
            return 0.0
        return 1.0 if r < rci else 0.5 * (math.cos(math.pi * (r - rci) / (rc - rci)) + 1.0)

    def compact_function(a, left, right, core, asym=False):  # n2p2 CompactFunction + CoreFunction
        x = abs(a - 0.5 * (left + right)) / (0.5 * (right - left))
        if x >= 1.0:
            return 0.0
        if asym:
            x = (2.0 - x) * x
        return {"p2": lambda x: ((15 - 6 * x) * x - 10) * x**3 + 1,
                "p3": lambda x: (x * (x * (20 * x - 70) + 84) - 35) * x**4 + 1}[core](x)
    for a in range(len(atoms)):
        nb = np.flatnonzero(i_ == a)
        for col, f in enumerate(acsf.functions[sym[a]]):
            g = 0.0
            t = f["type"]
            if t in (2, 20):
                for n in nb:
                    if sym[j_[n]] != f["e1"] or d_[n] >= f["rc"]:
                        continue
                    r = d_[n]
                    if t == 2:
                        g += math.exp(-f["eta"] * (r - f["rs"]) ** 2) * fc(r, f["rc"])
                    elif r > f["rl"]:
                        g += float(compact_function(r, f["rl"], f["rc"], f["subtype"][:2], f["subtype"].endswith("a")))
            else:
                for x in range(len(nb)):
                    for y in range(x + 1, len(nb)):
                        p, q = nb[x], nb[y]
                        if sorted([sym[j_[p]], sym[j_[q]]]) != sorted([f["e1"], f["e2"]]):
                            continue
                        rij, rik = d_[p], d_[q]
                        if rij >= f["rc"] or rik >= f["rc"]:
                            continue
                        cos = float(np.dot(D_[p], D_[q]) / (rij * rik))
                        rjk = float(np.linalg.norm(D_[q] - D_[p]))
                        if t in (3, 9):
                            if t == 3 and rjk >= f["rc"]:
                                continue
                            base = 1 + f["lambda"] * cos
                            if base <= 0:
                                continue
                            ex = (rij - f["rs"]) ** 2 + (rik - f["rs"]) ** 2 + ((rjk - f["rs"]) ** 2 if t == 3 else 0)
                            v = 2 ** (1 - f["zeta"]) * base ** f["zeta"] * math.exp(-f["eta"] * ex) * fc(rij, f["rc"]) * fc(rik, f["rc"])
                            g += v * (fc(rjk, f["rc"]) if t == 3 else 1.0)
                        else:
                            if rij <= f["rl"] or rik <= f["rl"]:
                                continue
                            th = math.acos(cos)
                            core, asym = f["subtype"][:2], f["subtype"].endswith("a")
                            g += (float(compact_function(rij, f["rl"], f["rc"], core, asym))
                                  * float(compact_function(rik, f["rl"], f["rc"], core, asym))
                                  * float(compact_function(th, math.radians(f["angle_left"]), math.radians(f["angle_right"]), core)))
            out[a, col] = g
    return out


@pytest.mark.parametrize("subset", ["all", "uniform_rc"])
def test_matches_brute_force(system, subset):
    atoms, acsf = system
    if subset == "uniform_rc":  # one cutoff radius, r_s = 0, integer zeta: the factorised angular path
        fns = [f for f in _functions() if f["rc"] == RC and f.get("rs", 0.0) == 0.0 and float(f.get("zeta", 1.0)).is_integer()]
        acsf = ACSF(["O", "H"], fns, cutoff_type="cos", cutoff_alpha=0.1)
        assert acsf._fast_exp([k for k in acsf._akeys if k[0] == "aexp"])
    g = jaxmlp.atoms_to_graph(atoms, acsf.cutoff + 0.3, triplets=True)  # skin: edges beyond rc must be inert
    G = np.asarray(jax.jit(acsf.__call__)(g))
    ref = _brute(atoms, acsf)
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(G, ref, rtol=1e-12, atol=1e-13)
    # columns beyond an element's count are zero
    for a, s in enumerate(atoms.get_chemical_symbols()):
        n = acsf.n_functions[acsf.symbols.index(s)]
        assert np.all(G[a, n:] == 0.0)


def test_padding_jit_and_chunking_invariance(system):
    atoms, _ = system
    fns = [f for f in _functions() if (f["type"], f["center"]) in ((2, "O"), (3, "H"), (22, "O"), (20, "H"))][::2]
    acsf = ACSF(["O", "H"], fns, cutoff_type="poly2")
    g = jaxmlp.atoms_to_graph(atoms, acsf.cutoff, triplets=True)
    G0 = np.asarray(acsf(g))
    b = jaxmlp.batch_graphs([g, g], jaxmlp.Buckets(n_node=32, n_edge=2 * len(g.senders) + 10, n_graph=3,
                                                   n_triplet=2 * len(g.globals["triplets"]) + 7))
    small = ACSF(**{**acsf.config(), "triplet_chunk": 1000})
    for fn in (jax.jit(acsf.__call__), jax.jit(small.__call__)):
        Gb = np.asarray(fn(b))
        assert np.all(np.isfinite(Gb))
        n = len(atoms)
        np.testing.assert_allclose(Gb[:n], G0, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(Gb[n : 2 * n], G0, rtol=1e-13, atol=1e-14)
    # gradients through padding stay finite
    gradfn = jax.jit(jax.grad(lambda pos, gr: jnp.sum(small(gr._replace(nodes={**gr.nodes, "positions": pos})) ** 2)))
    assert np.all(np.isfinite(np.asarray(gradfn(jnp.asarray(b.nodes["positions"]), b))))


def test_n2p2_sort_order():
    fns = [
        angular_narrow("Cu", ("Cu", "S"), 0.1, 1, 2, 6.0),
        radial("Cu", "S", 0.5, 6.0),
        radial("Cu", "Cu", 0.5, 6.0),
        radial("Cu", "S", 0.1, 6.0),
        radial("Cu", "S", 0.1, 5.0),
        angular_narrow("Cu", ("S", "S"), 0.1, -1, 2, 6.0),
        angular_wide("Cu", ("S", "Cu"), 0.1, -1, 1, 6.0),
        radial("S", "Cu", 0.5, 6.0),
    ]
    out = sort_functions(fns, ["Cu", "S"])
    assert list(out) == ["S", "Cu"]  # by atomic number
    cu = out["Cu"]
    # type first, then rc, eta, rs, zeta, lambda, e1, e2 (element index by Z: S=0, Cu=1)
    assert [(f["type"], f["rc"], f["eta"], f.get("e1")) for f in cu[:4]] == [
        (2, 5.0, 0.1, "S"), (2, 6.0, 0.1, "S"), (2, 6.0, 0.5, "S"), (2, 6.0, 0.5, "Cu")]
    assert [(f["type"], f.get("lambda"), f["e1"], f["e2"]) for f in cu[4:]] == [
        (3, -1.0, "S", "S"), (3, 1.0, "S", "Cu"), (9, -1.0, "S", "Cu")]
    with pytest.raises(ValueError, match="duplicate"):
        sort_functions(fns + [radial("Cu", "S", 0.5, 6.0)], ["Cu", "S"])
    with pytest.raises(ValueError, match="not in the model"):
        sort_functions([radial("Cu", "O", 0.5, 6.0)], ["Cu", "S"])


def test_spec_validation():
    with pytest.raises(ValueError, match="unsupported symmetry function type"):
        ACSF(["H"], [{"type": 21, "center": "H", "e1": "H"}])
    with pytest.raises(ValueError, match="rc must be positive"):
        radial("H", "H", 1.0, -1.0)
    with pytest.raises(ValueError, match="zeta"):
        angular_wide("H", ("H", "H"), 0.1, 1.0, 0.5, 3.0)
    with pytest.raises(ValueError, match="angular support"):
        compact_angular("H", ("H", "H"), -3.0, 3.0, 20.0, 200.0)
    with pytest.raises(ValueError, match="subtype"):
        compact_radial("H", "H", -3.0, 3.0, "p9")
    with pytest.raises(ValueError, match="unknown element"):
        radial("Xx", "H", 1.0, 3.0)
    with pytest.raises(ValueError, match="at least one"):
        ACSF(["H"], [])
    for bad in (0, -5, True, 2.5, "4096"):
        with pytest.raises(ValueError, match="triplet_chunk"):
            ACSF(["H"], [radial("H", "H", 1.0, 3.0)], triplet_chunk=bad)


def test_triplet_chunk_default_follows_the_backend():
    fns = [radial("H", "H", 1.0, 3.0)]
    auto = ACSF(["H"], fns)
    assert auto.triplet_chunk is None and auto.config()["triplet_chunk"] is None
    expect = ACSF.CPU_TRIPLET_CHUNK if jax.default_backend() == "cpu" else ACSF.DEVICE_TRIPLET_CHUNK
    assert auto._triplet_chunk() == expect
    assert ACSF(["H"], fns, triplet_chunk=97)._triplet_chunk() == 97


def test_generators():
    r = radial_grid(["Cu"], 6.0, 8)
    assert len(r) == 8 and all(f["type"] == 2 for f in r)
    assert r[0]["rs"] == 0.5 and r[-1]["rs"] == 6.0
    rc = radial_grid(["H", "O"], 5.0, 4, mode="centered")
    assert len(rc) == 16 and all(f["rs"] == 0.0 for f in rc)
    a = angular_set(["H", "O"], 5.0, etas=(0.0,), zetas=(1, 4), lambdas=(-1, 1))
    assert len(a) == 2 * 3 * 4  # centres × unordered pairs × (zeta, lambda)
    assert len(angular_set(["Cu"], 5.0, kind="narrow")) == 16
    with pytest.raises(ValueError):
        radial_grid(["Cu"], 6.0, 0)
    with pytest.raises(ValueError):
        angular_set(["Cu"], 6.0, kind="medium")


def test_statistics_and_scaling(system):
    atoms, acsf = system
    graphs = [jaxmlp.atoms_to_graph(a, acsf.cutoff, triplets=True) for a in (atoms, atoms.copy())]
    graphs[1].nodes["positions"][:] += 0.05 * np.random.default_rng(0).standard_normal((len(atoms), 3))
    stats = acsf.statistics(graphs)
    Gs = [np.asarray(acsf(g)) for g in graphs]
    sym = np.array(atoms.get_chemical_symbols())
    for k, s in enumerate(acsf.symbols):
        X = np.concatenate([G[sym == s, : acsf.n_functions[k]] for G in Gs])
        np.testing.assert_allclose(stats[s]["mean"], X.mean(0), rtol=1e-12)
        np.testing.assert_allclose(stats[s]["sigma"], X.std(0, ddof=1), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(stats[s]["min"], X.min(0))
    # n2p2's formulas for every scaling mode
    rng = np.random.default_rng(1)
    G = rng.random((5, 3))
    sp = jnp.array([0, 1, 0, 1, 1])
    tab = {k: rng.random((2, 3)) + (1.0 if k == "max" else 0.0) for k in ("min", "max", "mean", "sigma")}
    t = {k: v[np.asarray(sp)] for k, v in tab.items()}
    smin, smax = -1.0, 2.0
    want = {
        "none": G,
        "scale": smin + (smax - smin) * (G - t["min"]) / (t["max"] - t["min"]),
        "center": G - t["mean"],
        "scalecenter": smin + (smax - smin) * (G - t["mean"]) / (t["max"] - t["min"]),
        "sigma": smin + (smax - smin) * (G - t["mean"]) / t["sigma"],
    }
    for mode, w in want.items():
        np.testing.assert_allclose(scale_features(jnp.asarray(G), sp, tab, mode, smin, smax), w, rtol=1e-12)
    with pytest.raises(ValueError, match="scaling mode"):
        scale_features(jnp.asarray(G), sp, tab, "minmax")


def test_scaling_data_of_n2p2_example(shared_dir):
    """Reading Cu2S's scaling.data gives n2p2's scaled values (formula applied row by row)."""
    from jaxmlp.io import load_n2p2

    model, _ = load_n2p2(shared_dir / "n2p2" / "Cu2S_PBE")
    cfg = model.config["scaling"]
    assert cfg["mode"] == "sigma" and cfg["smin"] == 0.0 and cfg["smax"] == 1.0
    rows = [line.split() for line in (shared_dir / "n2p2" / "Cu2S_PBE" / "scaling.data").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    # element index 1 = S (Z = 16), 2 = Cu (Z = 29)
    for row in rows[:3] + rows[-3:]:
        e = ["S", "Cu"][int(row[0]) - 1]
        k = int(row[1]) - 1
        mn, mx, mean, sigma = (float(x) for x in row[2:6])
        assert cfg["stats"][e]["mean"][k] == mean and cfg["stats"][e]["sigma"][k] == sigma
        G = jnp.zeros((1, 100)).at[0, k].set(0.37)
        sp = jnp.array([["S", "Cu"].index(e)])
        tab = {key: np.array([cfg["stats"][s][key] + [0.0] * (100 - len(cfg["stats"][s][key])) for s in ("S", "Cu")])
               for key in ("min", "max", "mean", "sigma")}
        got = float(scale_features(G, sp, tab, "sigma", 0.0, 1.0)[0, k])
        assert got == pytest.approx(0.0 + 1.0 * (0.37 - mean) / sigma, rel=1e-14)
    assert model.extras["descriptor"].symbols == ("S", "Cu")
    assert atomic_numbers["Cu"] in model.elements


def _dense_variant(acsf, k):
    return ACSF(**{**acsf.config(), "max_neighbors": k})


def test_dense_layout_matches_brute_force_and_triplets(system):
    """The dense [atoms, K] layout (no triplets) gives the brute-force values and the triplet path's gradients."""
    atoms, acsf = system
    skin = acsf.cutoff + 0.3  # edges beyond rc must be inert (and not take slots)
    k = jaxmlp.graph.max_degree([atoms], acsf.cutoff)
    g0 = jaxmlp.atoms_to_graph(atoms, skin)
    gt = jaxmlp.atoms_to_graph(atoms, skin, triplets=True)
    ref = _brute(atoms, acsf)

    def energy(desc, gr):
        return lambda pos: jnp.sum(jnp.sin(desc(gr._replace(nodes={**gr.nodes, "positions": pos}))))

    pos = jnp.asarray(atoms.get_positions())
    grad_t = jax.jit(jax.grad(energy(acsf, gt)))(pos)
    tangent = jnp.asarray(np.random.default_rng(0).normal(size=pos.shape))
    def hvp_fn(desc, gr):
        return jax.jit(lambda p, t: jax.jvp(jax.grad(energy(desc, gr)), (p,), (t,))[1])

    hvp_t = hvp_fn(acsf, gt)(pos, tangent)
    for kk, block in ((k, None), (k + 1, 3)):  # even and odd K (the K/2 offset meets each pair twice); one and 4 blocks
        dense = _dense_variant(acsf, kk)
        assert not dense.needs_triplets
        if block is not None:
            dense._dense_block = lambda _k, b=block: b  # several checkpointed blocks of atoms, the last one padded
        G = np.asarray(jax.jit(dense.__call__)(g0))
        np.testing.assert_allclose(G, ref, rtol=1e-12, atol=1e-13)
        if block is None:
            np.testing.assert_allclose(np.asarray(dense(g0)), G, rtol=1e-13, atol=1e-14)  # jit = no jit
        np.testing.assert_allclose(jax.jit(jax.grad(energy(dense, g0)))(pos), grad_t, rtol=1e-11, atol=1e-12)
        # forward-over-reverse (Hessian-vector products, as the Hessians use)
        if block is not None:
            np.testing.assert_allclose(hvp_fn(dense, g0)(pos, tangent), hvp_t, rtol=1e-10, atol=1e-11)


def test_dense_layout_overflow_falls_back_or_is_nan(system):
    atoms, acsf = system
    small = _dense_variant(acsf, 3)  # far fewer slots than neighbours
    gt = jaxmlp.atoms_to_graph(atoms, acsf.cutoff, triplets=True)
    np.testing.assert_allclose(np.asarray(jax.jit(small.__call__)(gt)), np.asarray(acsf(gt)), rtol=1e-13, atol=1e-14)
    G = np.asarray(jax.jit(small.__call__)(jaxmlp.atoms_to_graph(atoms, acsf.cutoff)))
    assert np.all(np.isnan(G))  # never silently truncated
    radial_only = ACSF(["O", "H"], [f for f in _functions() if f["type"] == 2], max_neighbors=3)
    g0 = jaxmlp.atoms_to_graph(atoms, acsf.cutoff)
    np.testing.assert_allclose(np.asarray(radial_only(g0)), np.asarray(ACSF(**{**radial_only.config(), "max_neighbors": None})(g0)),
                               rtol=1e-13, atol=1e-14)
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="max_neighbors"):
            ACSF(["O", "H"], _functions(), max_neighbors=bad)


def test_dense_layout_padding(system):
    atoms, acsf = system
    k = jaxmlp.graph.max_degree([atoms], acsf.cutoff)
    dense = _dense_variant(acsf, k)
    g = jaxmlp.atoms_to_graph(atoms, acsf.cutoff)
    G0 = np.asarray(dense(g))
    b = jaxmlp.batch_graphs([g, g], jaxmlp.Buckets(n_node=32, n_edge=2 * len(g.senders) + 10, n_graph=3, n_triplet=0))
    Gb = np.asarray(jax.jit(dense.__call__)(b))
    assert np.all(np.isfinite(Gb))
    n = len(atoms)
    np.testing.assert_allclose(Gb[:n], G0, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(Gb[n : 2 * n], G0, rtol=1e-13, atol=1e-14)
    gradfn = jax.jit(jax.grad(lambda pos, gr: jnp.sum(dense(gr._replace(nodes={**gr.nodes, "positions": pos})) ** 2)))
    assert np.all(np.isfinite(np.asarray(gradfn(jnp.asarray(b.nodes["positions"]), b))))


@pytest.mark.parametrize("cutoff_type", ["hard", "cos", "tanhu"])
def test_triplet_filter_gives_identical_values(system, cutoff_type):
    """Triplets dropped by ACSF.triplet_filter contribute exactly 0, also for the discontinuous 'hard' cutoff."""
    atoms, _ = system
    fns = [f for f in _functions() if f["type"] in (2, 3) or (f["type"] == 22 and f["center"] == "O")]
    fns = [f for f in fns if not (f["type"] == 3 and f["center"] == "O" and f["e1"] == f["e2"] == "H")]  # O-(H, H): type 22 only
    fns = [f for f in fns if not (f["center"] == "H" and f.get("e2") == "O" and f["e1"] == "O")]  # no H-(O, O) function
    acsf = ACSF(["O", "H"], fns, cutoff_type=cutoff_type, cutoff_alpha=0.1)
    tf = acsf.triplet_filter()
    for skin in (0.0, 0.3):
        full = jaxmlp.atoms_to_graph(atoms, acsf.cutoff + skin, triplets=True)
        pruned = jaxmlp.atoms_to_graph(atoms, acsf.cutoff + skin, triplets=True, triplet_filter=tf)
        assert len(pruned.globals["triplets"]) < len(full.globals["triplets"])
        G_full, G = np.asarray(acsf(full)), np.asarray(acsf(pruned))
        assert np.abs(G_full).max() > 0.1
        np.testing.assert_allclose(G, G_full, rtol=1e-13, atol=1e-13)
    assert ACSF(["O", "H"], [f for f in fns if f["type"] == 2]).triplet_filter() is None
