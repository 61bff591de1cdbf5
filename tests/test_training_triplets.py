"""Training and evaluation build pruned triplet lists (the model's triplet filter): same numbers, fewer triplets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.calculators.emt import EMT

from jaxmlp import data, energy_and_forces
from jaxmlp.descriptors import angular_narrow, angular_wide, compact_angular, radial
from jaxmlp.models import hdnnp
from jaxmlp.training import evaluate
from jaxmlp.training.loop import model_triplets

from helpers import random_cell_atoms

RC = 4.0


@pytest.fixture(scope="module")
def case():
    fns = []
    for c in ("Cu", "Au"):
        for e in ("Cu", "Au"):
            fns.append(radial(c, e, 0.5, RC))
        fns += [angular_narrow(c, ("Cu", "Cu"), 0.05, 1.0, 2.0, RC), angular_wide(c, ("Cu", "Au"), 0.02, -1.0, 1.0, RC),
                compact_angular(c, ("Au", "Au"), -3.0, 3.0, 0.0, 180.0, "p2")]
    model = hdnnp(["Cu", "Au"], fns, hidden=(5,))
    frames = []
    for seed in range(3):
        a = random_cell_atoms(10, np.diag([5.2, 5.0, 5.4]), seed=seed, min_dist=2.0, symbols=["Cu", "Au"])
        a.calc = EMT()
        a.get_forces()
        frames.append(a)
    return model, data.Dataset.from_atoms(frames)


def test_model_triplets_is_the_filter(case):
    model, ds = case
    tf = model_triplets(model)
    assert tf is model.extras["triplet_filter"]
    full, pruned = ds.graphs(model.cutoff, True), ds.graphs(model.cutoff, tf)
    assert sum(len(g.globals["triplets"]) for g in pruned) < sum(len(g.globals["triplets"]) for g in full)
    assert ds.graphs(model.cutoff, tf) is not full and len(ds.graphs(model.cutoff, tf)) == len(ds)
    with pytest.raises(TypeError, match="TripletFilter"):
        ds.graphs(model.cutoff, "yes")


def test_pruned_batches_give_the_same_loss_gradient_and_metrics(case):
    model, ds = case
    params = model.init(jax.random.PRNGKey(1))
    tf = model.extras["triplet_filter"]

    def loss(p, b):
        g = jax.tree.map(jnp.asarray, b.graph)
        e, f = energy_and_forces(model, p, g)
        return jnp.sum((e - b.energy) ** 2 * b.weight) + jnp.sum((f - b.forces) ** 2)

    bf = next(ds.batches(model.cutoff, batch_size=3, shuffle=False, triplets=True))
    bp = next(ds.batches(model.cutoff, batch_size=3, shuffle=False, triplets=tf))
    assert bp.graph.globals["triplets"].shape[0] < bf.graph.globals["triplets"].shape[0]
    lf, gf = jax.value_and_grad(loss)(params, bf)
    lp, gp = jax.value_and_grad(loss)(params, bp)
    np.testing.assert_allclose(lp, lf, rtol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), gp, gf)
    # evaluate (which now builds pruned graphs) reproduces the errors of the full-triplet batch
    _, f_full = energy_and_forces(model, params, jax.tree.map(jnp.asarray, bf.graph))
    n = int(np.sum(bf.graph.n_node[:3]))
    rmse = float(np.sqrt(np.mean((np.asarray(f_full)[:n] - np.asarray(bf.forces)[:n]) ** 2)))
    m = evaluate(model, params, ds, batch_size=2)
    np.testing.assert_allclose(m["force_rmse"], rmse, rtol=1e-10)
