"""Padding to buckets and jit leave energies, forces, stress and Hessians unchanged."""

from functools import partial

import jax
import numpy as np
import pytest
from ase.build import bulk, molecule

import jaxmlp
from jaxmlp.graph import Buckets, batch_graphs, suggest_buckets
from jaxmlp.models import lennard_jones

from helpers import random_cell_atoms

MODEL = lennard_jones(epsilon=0.01, sigma=2.3, cutoff=5.0)
PARAMS = MODEL.init(None)


def mixed_structures():
    a = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    a.rattle(0.05, seed=0)
    b = molecule("CH3CH2OH")
    c = random_cell_atoms(5, np.diag([4.0, 4.5, 5.0]), pbc=True, seed=2, min_dist=2.0)
    d = bulk("Ar", "fcc", a=5.2)  # one atom, tiny cell
    return [a, b, c, d]


def test_batched_equals_separate():
    structs = mixed_structures()
    graphs = [jaxmlp.atoms_to_graph(s, MODEL.cutoff, triplets=True) for s in structs]
    batch = batch_graphs(graphs, Buckets(n_node=64, n_edge=4096, n_graph=6, n_triplet=200000))
    assert int(np.sum(batch.n_node)) == 64 and int(np.sum(batch.n_edge)) == 4096 and len(batch.n_node) == 6
    e, f, s = jaxmlp.energy_forces_stress(MODEL, PARAMS, batch)
    start = 0
    for k, g in enumerate(graphs):
        e1, f1, s1 = jaxmlp.energy_forces_stress(MODEL, PARAMS, g)
        n = int(g.n_node[0])
        np.testing.assert_allclose(float(e[k]), float(e1[0]), atol=1e-12)
        np.testing.assert_allclose(np.asarray(f[start : start + n]), np.asarray(f1), atol=1e-12)
        np.testing.assert_allclose(np.asarray(s[k]), np.asarray(s1[0]), atol=1e-12, equal_nan=True)
        start += n
    # padding: exactly zero energy and forces, finite everything
    assert np.all(np.asarray(e[len(graphs):]) == 0.0)
    assert np.all(np.asarray(f[start:]) == 0.0)
    assert np.all(np.isfinite(np.asarray(f)))
    # gradients w.r.t. parameters are finite and unaffected by padding
    gp = jax.grad(lambda p: jaxmlp.energy(MODEL, p, batch).sum())(PARAMS)
    gs = sum(jax.grad(lambda p, g=g: jaxmlp.energy(MODEL, p, g).sum())(PARAMS)["sigma"] for g in graphs)
    np.testing.assert_allclose(float(gp["sigma"]), float(gs), rtol=1e-12)


def test_per_atom_energies_from_the_same_pass():
    structs = mixed_structures()
    graphs = [jaxmlp.atoms_to_graph(s, MODEL.cutoff) for s in structs]
    batch = batch_graphs(graphs, Buckets(n_node=64, n_edge=4096, n_graph=6))
    e, f, s = jaxmlp.energy_forces_stress(MODEL, PARAMS, batch)
    e2, ea, f2, s2 = jaxmlp.energy_forces_stress(MODEL, PARAMS, batch, per_atom=True)
    np.testing.assert_array_equal(np.asarray(e), np.asarray(e2))
    np.testing.assert_array_equal(np.asarray(f), np.asarray(f2))
    np.testing.assert_array_equal(np.asarray(s), np.asarray(s2))
    ref = np.asarray(jaxmlp.per_atom_energies(MODEL, PARAMS, batch))
    np.testing.assert_allclose(np.asarray(ea), ref, atol=1e-14)
    mask = np.asarray(batch.nodes["mask"])
    assert np.all(np.asarray(ea)[~mask] == 0.0) and np.abs(ref[mask]).max() > 1e-4
    sums = np.array([ea[mask][sum(len(x) for x in structs[:k]):][: len(structs[k])].sum() for k in range(len(structs))])
    np.testing.assert_allclose(sums, np.asarray(e)[: len(structs)], atol=1e-12)


def test_hessian_of_padded_batch_is_block_diagonal_and_exact():
    structs = mixed_structures()[2:]
    graphs = [jaxmlp.atoms_to_graph(s, MODEL.cutoff) for s in structs]
    batch = batch_graphs(graphs)
    H = np.asarray(jaxmlp.hessian(MODEL, PARAMS, batch, chunk_size=7))
    start = 0
    for g in graphs:
        n = 3 * int(g.n_node[0])
        h1 = np.asarray(jaxmlp.hessian(MODEL, PARAMS, g))
        np.testing.assert_allclose(H[start : start + n, start : start + n], h1, atol=1e-12)
        start += n
    assert np.all(H[start:, :] == 0.0) and np.all(H[:, start:] == 0.0)


def test_one_compilation_per_bucket():
    structs = mixed_structures()
    graphs = [jaxmlp.atoms_to_graph(s, MODEL.cutoff) for s in structs]
    buckets = suggest_buckets(graphs, batch_size=2)
    traces = []

    @jax.jit
    def f(batch):
        traces.append(1)
        return jaxmlp.energy(MODEL, PARAMS, batch)

    for pair in ([0, 1], [2, 3], [1, 3], [0, 2]):
        f(batch_graphs([graphs[i] for i in pair], buckets))
    assert len(traces) == 1


def test_overflow_raises_never_truncates():
    graphs = [jaxmlp.atoms_to_graph(s, MODEL.cutoff) for s in mixed_structures()]
    with pytest.raises(ValueError, match="does not fit"):
        batch_graphs(graphs, Buckets(n_node=10, n_edge=100, n_graph=2))
    with pytest.raises(ValueError, match="n_graph"):
        batch_graphs(graphs[:2], Buckets(n_node=1000, n_edge=10000, n_graph=2))
    with pytest.raises(ValueError):
        batch_graphs([])


def test_jit_and_no_jit_agree():
    g = jaxmlp.atoms_to_graph(mixed_structures()[0], MODEL.cutoff)
    e0, f0, s0 = jaxmlp.energy_forces_stress(MODEL, PARAMS, g)
    e1, f1, s1 = jax.jit(partial(jaxmlp.energy_forces_stress, MODEL))(PARAMS, g)
    np.testing.assert_allclose(np.asarray(e0), np.asarray(e1), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(f0), np.asarray(f1), atol=1e-13)
    np.testing.assert_allclose(np.asarray(s0), np.asarray(s1), atol=1e-13)


def test_float32_option_close_to_float64():
    g = jaxmlp.atoms_to_graph(mixed_structures()[0], MODEL.cutoff)
    g32 = g._replace(nodes={**g.nodes, "positions": g.nodes["positions"].astype(np.float32)},
                     globals={**g.globals, "cell": g.globals["cell"].astype(np.float32)})
    p32 = jax.tree_util.tree_map(lambda x: x.astype(np.float32), PARAMS)
    e32, f32 = jaxmlp.energy_and_forces(MODEL, p32, g32)
    e64, f64 = jaxmlp.energy_and_forces(MODEL, PARAMS, g)
    assert e32.dtype == np.float32 and f32.dtype == np.float32
    np.testing.assert_allclose(np.asarray(e32), np.asarray(e64), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(f32), np.asarray(f64), atol=1e-5)


@pytest.mark.parametrize("kind", ["lj", "morse", "hdnnp", "mlace"])
def test_params_are_strongly_typed(kind):
    """A weakly typed parameter leaf changes type after the first optimiser
    update, so a jitted training step would compile twice."""
    from jaxmlp.bench.factory import make_model

    if kind == "lj":  # the CLI's pair parameters are element-specific (Cu, Ar); any values do here
        model = jaxmlp.models.lennard_jones(cutoff=3.0)
    elif kind == "morse":
        model = jaxmlp.models.morse(cutoff=3.0)
    else:
        model = make_model(kind, [1, 6, 8], 3.0)
    g = jaxmlp.atoms_to_graph(molecule("CH3CH2OH"), model.cutoff, triplets=model.needs_triplets)
    params = model.init(jax.random.PRNGKey(0), g)
    weak = [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_flatten_with_path(params)[0] if x.weak_type]
    assert weak == []
