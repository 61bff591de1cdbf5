"""ml-ACE: the model contract (check_model), forces, padding/jit, serialisation, linear-ACE reference."""

import json

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

import jaxmlp
from jaxmlp.models import build_model, mlace
from jaxmlp.models.mlace import basis_sizes, mlace_layers
from jaxmlp.testing import ALL_CHECKS, check_model
from jaxmlp.utils import cast_floats

from helpers import central_difference_forces, random_cell_atoms

CELL = np.array([[6.0, 0.3, 0.0], [0.5, 5.5, 0.2], [0.1, 0.4, 6.5]])
SMALL = dict(l_max=(0, 2, 1), n_max=(3, 2, 2), k_max=2, n_radial=4)


def _model(n_layers=2, **kw):
    cfg = dict(SMALL, elements=["Cu", "Ag"], cutoff=3.5, n_layers=n_layers, correlation_order=3)
    cfg.update(kw)
    return mlace(**cfg)


def _params(model, atoms, seed=0, scale=1.0):
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    p = model.init(jax.random.PRNGKey(seed), g)
    # larger coefficients than the (training-friendly) default, so indicators vary
    p["layers"] = [{**l, "coeffs": l["coeffs"] * scale / 0.1} for l in p["layers"]]
    p["E0"] = jnp.array([-0.5, -0.3])
    return p


@pytest.fixture(scope="module")
def system():
    atoms = random_cell_atoms(10, CELL, pbc=True, seed=3, min_dist=2.0, symbols=["Cu", "Ag"])
    model = _model(2)
    return model, _params(model, atoms), atoms


def _efs(model, params, atoms):
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    e, f, s = jax.jit(jaxmlp.energy_forces_stress, static_argnums=0)(model, params, g)
    return float(e[0]), np.asarray(f), np.asarray(s[0])


def test_model_contract(system):
    model, params, atoms = system
    assert model.name == "mlace" and model.n_layers == 2
    assert model.interaction_range == pytest.approx(2 * 2 * 3.5)
    assert model.elements == (29, 47)
    cfg = json.loads(json.dumps(model.config))
    again = build_model("mlace", cfg)
    assert _efs(again, params, atoms)[0] == pytest.approx(_efs(model, params, atoms)[0], abs=1e-12)
    assert len(basis_sizes(model)) == 2
    props = jax.jit(lambda p, g: mlace_layers(model, p, g))(params, jaxmlp.atoms_to_graph(atoms, model.cutoff))
    assert props[0].shape == (len(atoms), 1) and props[1].shape == (len(atoms), 2)
    theta = np.tanh(np.asarray(props[0][:, 0]))
    assert np.std(theta) > 1e-3  # the indicator carries information


def test_bad_input():
    with pytest.raises(ValueError, match="elements"):
        mlace(["Xx"], cutoff=3.0)
    with pytest.raises(ValueError, match="n_layers"):
        mlace(["Cu"], cutoff=3.0, n_layers=0)
    with pytest.raises(ValueError, match="cutoff"):
        mlace(["Cu"], cutoff=-1.0)
    with pytest.raises(ValueError, match="embedding"):
        mlace(["Cu"], cutoff=3.0, embedding="exp")
    with pytest.raises(ValueError, match="order"):
        mlace(["Cu"], cutoff=3.0, correlation_order=6)
    with pytest.raises(TypeError, match="built by"):
        basis_sizes(jaxmlp.models.morse())
    with pytest.raises(ValueError, match="unknown element"):
        jaxmlp.Calculator(mlace(["Cu"], cutoff=3.0), None).get_potential_energy(Atoms("Ag2", positions=[[0, 0, 0], [0, 0, 2.5]]))
    with pytest.raises(ValueError, match="e0 given for element Ag"):
        mlace(["Cu"], cutoff=3.0, e0={"Ag": -1.0})


def test_e0_initial_values_and_round_trip(tmp_path):
    model = _model(1, e0={"Ag": -2.5, 29: -1.25})
    atoms = random_cell_atoms(4, CELL, pbc=True, seed=1, min_dist=2.0, symbols=["Cu", "Ag"])
    params = model.init(jax.random.PRNGKey(0), jaxmlp.atoms_to_graph(atoms, model.cutoff))
    np.testing.assert_array_equal(np.asarray(params["E0"]), [-1.25, -2.5])  # element order Cu, Ag
    jaxmlp.save(tmp_path / "m.jaxmlp", model, params)
    m2, p2 = jaxmlp.load(tmp_path / "m.jaxmlp")
    assert m2.config["e0"] == {"Cu": -1.25, "Ag": -2.5}
    assert _efs(m2, p2, atoms)[0] == _efs(model, params, atoms)[0]


# strongly skewed triclinic cell: tilts of 30-40 % of the box lengths
SKEWED = np.array([[5.6, 0.0, 0.0], [2.0, 5.3, 0.0], [1.9, -1.7, 5.8]])
_FAST = ["translation", "rotation", "reflection", "permutation", "wrapping", "fd_forces", "fd_stress"]


@pytest.mark.parametrize(
    "n_layers,kind,checks",
    [
        # everything but the op-by-op run, on the model with the longest range (2·2·R_c = 14 Å)
        (2, "cell", [c for c in ALL_CHECKS if c not in ("jit", "param_gradients")]),
        (1, "molecule", list(ALL_CHECKS)),
        (1, "cell", _FAST),
        (2, "molecule", _FAST),
    ],
    ids=["2-layers-cell", "1-layer-molecule", "1-layer-cell", "2-layers-molecule"],
)
def test_model_contract_check(n_layers, kind, checks):
    """Invariances of energy, forces and stress, FD forces and stress on a strongly
    skewed cell, padding, jit and the 2·L·R_c range, via jaxmlp.testing.check_model."""
    atoms = random_cell_atoms(8 if kind == "cell" else 6, SKEWED if kind == "cell" else CELL * 0.75,
                              pbc=kind == "cell", seed=3, min_dist=2.0, symbols=["Cu", "Ag"])
    model = _model(n_layers)
    params = _params(model, atoms)
    report = check_model(model, params, atoms, checks=checks)
    assert set(report["checks"]) == set(checks) - ({"wrapping", "fd_stress"} if kind == "molecule" else set())
    assert report["errors"]["fd_forces"]["scale"] > 1e-3  # non-trivial forces
    if kind == "cell":
        assert report["errors"]["fd_stress"]["scale"] > 5e-5  # non-trivial stress (FD error ~1e-9)
        # stress covariance: σ → R σ Rᵀ under rotation and reflection, invariant under permutation
        assert all("stress" in report["compared"][c] for c in ("rotation", "reflection", "permutation"))
    if "range" in checks:
        assert report["errors"]["range"]["max_error"] == 0.0


def test_forces_and_stress_finite_differences(system):
    model, params, atoms = system
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    e_fn = jax.jit(jaxmlp.energy, static_argnums=0)
    _, f, s = _efs(model, params, atoms)

    def energy_at(pos):
        return float(e_fn(model, params, g._replace(nodes={**g.nodes, "positions": jnp.asarray(pos)}))[0])

    f_fd = central_difference_forces(energy_at, atoms.positions, h=1e-4)
    np.testing.assert_allclose(f, f_fd, atol=1e-8 + 1e-6 * np.abs(f_fd).max())
    # stress by finite strain (graph rebuilt, so the neighbour list is exercised too)
    eps = 1e-5
    s_fd = np.zeros(6)
    for k, (a, b) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        vals = []
        for sign in (1, -1):
            d = np.eye(3)
            d[a, b] += sign * eps / (1 if a == b else 2)
            d[b, a] += 0 if a == b else sign * eps / 2
            st = atoms.copy()
            st.set_cell(atoms.cell.array @ d, scale_atoms=True)
            vals.append(_efs(model, params, st)[0])
        s_fd[k] = (vals[0] - vals[1]) / (2 * eps) / atoms.get_volume()
    np.testing.assert_allclose(s, s_fd, atol=1e-8)


def test_dense_neighbour_layout_matches_edge_list(system):
    """max_neighbors only changes the algorithm: values, forces, parameter
    gradients and Hessians agree with the edge-list path, also in a padded
    batch, a graph with edges beyond R_c, and when an atom overflows."""
    atoms = system[2]
    model = _model(1)  # the base is evaluated the same way in every layer; one layer compiles faster
    params = _params(model, atoms)
    other = random_cell_atoms(6, CELL * 0.8, pbc=False, seed=9, min_dist=2.1, symbols=["Ag", "Cu"])
    batch = jaxmlp.batch_graphs([jaxmlp.atoms_to_graph(a, model.cutoff + 0.7) for a in (atoms, other)],
                                jaxmlp.Buckets(n_node=24, n_edge=700, n_graph=3))
    deg = int(np.max(np.bincount(jaxmlp.atoms_to_graph(atoms, model.cutoff).receivers)))
    cfg = dict(model.config)

    def grads(m, g):
        return jax.jit(jax.grad(lambda p: jnp.sum(jaxmlp.energy_and_forces(m, p, g)[1] ** 2)))(params)

    ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
    e0, f0 = ef(model, params, batch)
    g0 = grads(model, batch)
    H0 = np.asarray(jaxmlp.hessian(model, params, jaxmlp.atoms_to_graph(other, model.cutoff)))
    for k in (deg + 3, deg - 1):  # fits / one atom overflows (edge-list fallback)
        dense = build_model("mlace", {**cfg, "max_neighbors": k})
        e1, f1 = ef(dense, params, batch)
        np.testing.assert_allclose(np.asarray(e1), np.asarray(e0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(f1), np.asarray(f0), atol=1e-12)
        if k > deg:
            for a, b in zip(jax.tree.leaves(grads(dense, batch)), jax.tree.leaves(g0)):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
    H1 = np.asarray(jaxmlp.hessian(build_model("mlace", {**cfg, "max_neighbors": deg + 3}), params,
                                   jaxmlp.atoms_to_graph(other, model.cutoff)))
    np.testing.assert_allclose(H1, H0, atol=1e-11)
    with pytest.raises(ValueError, match="max_neighbors"):
        mlace(["Cu"], cutoff=3.0, max_neighbors=0)


@pytest.mark.parametrize("contraction", ["learned", None])
def test_dense_layout_two_layers_matches_edge_list(system, contraction):
    """The dense path moves the radial contraction after the neighbour sum (per atom, per element);
    with indicator channels T_k(θ_j), the centre indicator and both contractions it gives the
    edge list's energies and forces."""
    atoms = system[2]
    model = _model(2, contraction=contraction)
    params = _params(model, atoms, seed=4)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff + 0.5)
    deg = int(np.max(np.bincount(np.asarray(jaxmlp.atoms_to_graph(atoms, model.cutoff).receivers))))
    dense = build_model("mlace", {**model.config, "max_neighbors": deg + 2})
    ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
    (e0, f0), (e1, f1) = ef(model, params, g), ef(dense, params, g)
    assert float(jnp.std(f0)) > 1e-5  # forces are not trivially zero
    np.testing.assert_allclose(np.asarray(e1), np.asarray(e0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(f1), np.asarray(f0), atol=1e-11)


def test_padding_and_jit_invariance(system):
    model, params, atoms = system
    other = random_cell_atoms(6, CELL * 0.8, pbc=False, seed=9, min_dist=2.1, symbols=["Ag", "Cu"])
    g1 = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    g2 = jaxmlp.atoms_to_graph(other, model.cutoff)
    ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)
    e1, f1 = ef(model, params, g1)
    e2, f2 = ef(model, params, g2)
    # without jit (op by op) the same numbers
    np.testing.assert_allclose(np.asarray(model.apply(params, g2)), np.asarray(jax.jit(model.apply)(params, g2)), atol=1e-12)
    batch = jaxmlp.batch_graphs([g1, g2], jaxmlp.Buckets(n_node=24, n_edge=256, n_graph=3))
    eb, fb = ef(model, params, batch)
    np.testing.assert_allclose(eb[:2], [e1[0], e2[0]], atol=1e-11)
    assert float(eb[2]) == 0.0
    np.testing.assert_allclose(fb[: len(atoms)], f1, atol=1e-11)
    np.testing.assert_allclose(fb[len(atoms) : len(atoms) + len(other)], f2, atol=1e-11)
    assert np.all(np.asarray(fb[len(atoms) + len(other) :]) == 0.0)
    raw = model.apply(params, batch)
    assert np.all(np.isfinite(np.asarray(raw)))
    grads = jax.jit(jax.grad(lambda p, g: jnp.sum(jaxmlp.energy(model, p, g))))(params, batch)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(grads))


def test_calculator_and_float32(system):
    model, params, atoms = system
    calc = jaxmlp.Calculator(model, params)
    a = atoms.copy()
    a.calc = calc
    e64, f64, _ = _efs(model, params, atoms)
    assert a.get_potential_energy() == pytest.approx(e64, abs=1e-9)
    np.testing.assert_allclose(a.get_forces(), f64, atol=1e-9)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    g32, p32 = cast_floats(g, np.float32), cast_floats(params, np.float32)
    e32, f32 = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)(model, p32, g32)
    assert e32.dtype == jnp.float32 and f32.dtype == jnp.float32
    # float32 rounding (eps ≈ 1.2e-7) relative to the energy and force scales, with margin
    assert float(e32[0]) == pytest.approx(e64, rel=1e-6)
    assert np.abs(np.asarray(f32, float) - f64).max() < 1e-4 * np.abs(f64).max()


# --------------------------------------------------------------------------
# a 1-layer model is a linear ACE: reference evaluation with explicit loops


def _reference_linear_ace(model, params, atoms):
    """Per-atom energies of a 1-layer, linear-embedding ml-ACE, evaluated in numpy loops."""
    cfg = model.config
    rc, nq = cfg["cutoff"], cfg["n_radial"]
    zs = cfg["elements"]
    spec = {z: k for k, z in enumerate(zs)}
    embed = np.asarray(params["embed"])
    layer = params["layers"][0]
    W = np.asarray(layer["radial"])  # [S, Q*K, (lb+1)*C]
    coeffs = np.asarray(layer["coeffs"])[..., 0]  # [S, n_B] per element (or [n_B] shared)
    bias = np.asarray(layer["bias"])[:, 0]
    E0 = np.asarray(params["E0"])
    norm = float(params["norm"])

    basis = model.extras["bases"][0]
    C, lb = basis.n_channels, basis.l_max_all
    labels = basis.labels()
    ii, jj, D = neighbor_list("ijD", atoms, rc)
    out = np.zeros(len(atoms))
    for i in range(len(atoms)):
        si = spec[int(atoms.numbers[i])]
        A = np.zeros((C, (lb + 1) ** 2))
        for e in np.nonzero(ii == i)[0]:
            d = D[e]
            r = np.sqrt(d @ d)
            sj = spec[int(atoms.numbers[jj[e]])]
            fc = (1 - (r / rc) ** 2) ** 3
            g = [np.sqrt(2 / rc) * np.sin(q * np.pi * r / rc) / r * fc for q in range(1, nq + 1)]
            u = [g[q] * embed[sj, k] for q in range(nq) for k in range(embed.shape[1])]
            irreps = e3nn.Irreps("+".join(f"{l}{'eo'[l % 2]}" for l in range(lb + 1)))
            Y = np.asarray(e3nn.spherical_harmonics(irreps, d / r, normalize=False, normalization="component").array)
            for l in range(lb + 1):
                for c in range(C):
                    if cfg["contraction"] is None:  # c = (n, κ): R_nl(r) e_κ(z_j), R_nl = Σ_q W g_q
                        n, kappa = divmod(c, embed.shape[1])
                        Rlc = sum(g[q] * W[si, q, l * (C // embed.shape[1]) + n] for q in range(nq)) * embed[sj, kappa]
                    else:
                        Rlc = sum(u[f] * W[si, f, l * C + c] for f in range(len(u)))
                    for m in range(2 * l + 1):
                        A[c, l * l + m] += Rlc * Y[l * l + m] / norm
        B = []
        for order, items, _L in labels:
            blocks = [A[c, l * l : (l + 1) ** 2] for l, c in items]
            if order == 1:
                B.append(blocks[0][0])
            elif order == 2:
                B.append(sum(blocks[0][m] * blocks[1][m] for m in range(len(blocks[0]))))
            elif order == 3:
                cg = np.asarray(e3nn.clebsch_gordan(*[l for l, _ in items]))
                tot = 0.0
                for a in range(cg.shape[0]):
                    for b in range(cg.shape[1]):
                        for c3 in range(cg.shape[2]):
                            tot += cg[a, b, c3] * blocks[0][a] * blocks[1][b] * blocks[2][c3]
                B.append(tot)
            elif order == 4:
                (l1, _), (l2, _), (l3, _), (l4, _) = items
                x = np.einsum("a,b,abq->q", blocks[0], blocks[1], np.asarray(e3nn.clebsch_gordan(l1, l2, _L)))
                y = np.einsum("c,d,cdq->q", blocks[2], blocks[3], np.asarray(e3nn.clebsch_gordan(l3, l4, _L)))
                B.append(x @ y)
            else:
                raise AssertionError("reference covers orders 1-4")
        c_i = coeffs if coeffs.ndim == 1 else coeffs[si]
        out[i] = np.dot(c_i, B) + bias[si] + E0[si]
    return out


@pytest.mark.parametrize("extra", [
    dict(l_max=(0, 2, 2), n_max=(2, 2, 2)),
    dict(l_max=(0, 2, 2), n_max=(2, 2, 2), shared_coefficients=True),
    dict(l_max=(0, 2, 2, 2), n_max=(2, 2, 2, 2), correlation_order=4),
    dict(l_max=(0, 2, 1), n_max=(2, 1, 1), contraction=None),
], ids=["nu3", "nu3-shared", "nu4", "uncontracted"])
def test_one_layer_is_linear_ace_reference(extra):
    atoms = random_cell_atoms(7, CELL, pbc=True, seed=11, min_dist=2.0, symbols=["Cu", "Ag", "Ag"])
    model = _model(1, n_properties=1, embedding="linear", n_radial=3, **extra)
    if extra.get("correlation_order") == 4:
        assert any(order == 4 for order, _, _ in model.extras["bases"][0].labels())
    params = _params(model, atoms, seed=4)
    params["layers"][0]["bias"] = jnp.array([[0.1], [-0.2]])
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    e = np.asarray(model.apply(params, g))
    ref = _reference_linear_ace(model, params, atoms)
    np.testing.assert_allclose(e, ref, rtol=1e-10, atol=1e-12)
    # and the energy is linear in the expansion coefficients c̃
    p2 = {**params, "layers": [{**params["layers"][0], "coeffs": 2.0 * params["layers"][0]["coeffs"]}]}
    e2 = np.asarray(model.apply(p2, g))
    p0 = {**params, "layers": [{**params["layers"][0], "coeffs": 0 * params["layers"][0]["coeffs"]}]}
    np.testing.assert_allclose(e2 - e, e - np.asarray(model.apply(p0, g)), atol=1e-12)


# --------------------------------------------------------------------------
# the paper's model: centre indicator, per-element coefficients, eq. 10 basis


def _theta_test(model, atoms, seed=0):
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    params = _params(model, atoms, seed=seed)
    layer = jax.jit(lambda p, t: model.extras["layer"](p, g, 1, t))
    theta = jnp.asarray(np.random.default_rng(seed).uniform(-0.8, 0.8, len(atoms)))
    return g, params, layer, theta


@pytest.mark.parametrize("contraction", ["learned", None])
def test_centre_indicator_enters_the_layer(system, contraction):
    """A^(0)(σ_ii): layer 1's output on atom i changes when only θ_i changes
    (neighbours' θ fixed), and not at all without the centre factor."""
    atoms = system[2]
    model = _model(2, contraction=contraction, n_max=(2, 1, 1) if contraction is None else SMALL["n_max"])
    g, params, layer, theta = _theta_test(model, atoms)
    i = 3
    base = np.asarray(layer(params, theta))
    moved = np.asarray(layer(params, theta.at[i].add(0.3)))
    assert abs(moved[i, 0] - base[i, 0]) > 1e-4 * np.abs(base[:, 0]).max()
    # the layer is what layer_outputs uses: same numbers for the model's own indicator
    props = model.extras["layer_outputs"](params, g)
    np.testing.assert_allclose(np.asarray(layer(params, jnp.tanh(props[0][:, 0]))), np.asarray(props[1]), atol=1e-12)
    off = _model(2, contraction=contraction, centre_indicator=False,
                 n_max=(2, 1, 1) if contraction is None else SMALL["n_max"])
    g, p_off, layer_off, theta = _theta_test(off, atoms)
    b0, b1 = np.asarray(layer_off(p_off, theta)), np.asarray(layer_off(p_off, theta.at[i].add(0.3)))
    assert b1[i, 0] == b0[i, 0]  # only the neighbours of i see θ_i then
    assert np.abs(b1[:, 0] - b0[:, 0]).max() > 0.0
    sizes = basis_sizes(model)
    n_B = model.extras["bases"][1].size
    assert sizes[1] == (model.config["k_max"] + 1) * (n_B + 1) - 1 and basis_sizes(off)[1] == n_B


def test_per_element_coefficients(system):
    """Coefficients are per centre element: changing the Ag set leaves Cu atoms' energies unchanged."""
    model, params, atoms = system
    assert params["layers"][-1]["coeffs"].shape[0] == 2
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    e = np.asarray(jaxmlp.per_atom_energies(model, params, g))
    last = params["layers"][-1]
    p2 = {**params, "layers": params["layers"][:-1] + [{**last, "coeffs": last["coeffs"].at[1].multiply(1.5)}]}
    e2 = np.asarray(jaxmlp.per_atom_energies(model, p2, g))
    cu = atoms.numbers == 29
    assert cu.any() and (~cu).any()
    np.testing.assert_array_equal(e2[cu], e[cu])
    assert np.abs(e2[~cu] - e[~cu]).min() > 0.0
    shared = _model(2, shared_coefficients=True)
    assert shared.init(jax.random.PRNGKey(0), g)["layers"][-1]["coeffs"].ndim == 2


def test_uncontracted_model_contract():
    """contraction=None (eq. 10 basis): invariances and FD forces via check_model."""
    atoms = random_cell_atoms(6, CELL * 0.75, pbc=False, seed=3, min_dist=2.0, symbols=["Cu", "Ag"])
    model = _model(2, contraction=None, n_max=(2, 1, 1), l_max=(0, 1, 1))
    params = _params(model, atoms)
    report = check_model(model, params, atoms, checks=["rotation", "reflection", "permutation", "fd_forces"])
    assert report["errors"]["fd_forces"]["scale"] > 1e-3


def test_deprecated_max_body_order_and_old_config():
    with pytest.warns(DeprecationWarning, match="correlation_order"):
        m = mlace(["Cu"], cutoff=3.0, max_body_order=2, l_max=(0, 1), n_max=(2, 2))
    assert m.config["correlation_order"] == 2 and "max_body_order" not in m.config
    old = {k: v for k, v in m.config.items() if k != "correlation_order"} | {"max_body_order": 2}
    with pytest.warns(DeprecationWarning):
        again = build_model("mlace", old)  # a config stored before the rename
    assert again.config == m.config
    with pytest.raises(ValueError, match="contraction"):
        mlace(["Cu"], cutoff=3.0, contraction="pca")


def test_paper_presets_match_the_paper_function_counts():
    """The "paper-L<L>" presets: functions per element (all layers) within 1 of the paper's ethanol table."""
    from jaxmlp.models.mlace import PAPER_ETHANOL_FUNCTIONS, PRESETS

    for L, paper in PAPER_ETHANOL_FUNCTIONS.items():
        model = mlace(["C", "H", "O"], cutoff=4.0, n_layers=L, **PRESETS[f"paper-L{L}"])
        assert model.config["contraction"] is None and not model.config["shared_coefficients"]
        assert abs(sum(basis_sizes(model)) - paper) <= 1, (L, basis_sizes(model))
