"""jaxmlp.testing.check_model: the pair potentials keep the contract, and the kit catches broken models."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import molecule

from jaxmlp.graph import edge_vectors, node_graph_index, safe_norm
from jaxmlp.models import lennard_jones, morse
from jaxmlp.testing import ALL_CHECKS, check_model

from helpers import random_cell_atoms

# strongly skewed triclinic cell (tilts of 30-40 % of the box length)
SKEWED = np.array([[5.6, 0.0, 0.0], [2.0, 5.3, 0.0], [1.9, -1.7, 5.8]])
LJ = lennard_jones(epsilon=0.02, sigma=2.3, cutoff=4.5)
MORSE = morse(D=0.3, alpha=1.4, r0=2.6, cutoff=4.5, onset=3.5)


def _cell():
    return random_cell_atoms(7, SKEWED, pbc=True, seed=3, min_dist=2.1)


def _molecule():
    return random_cell_atoms(6, np.eye(3) * 4.5, pbc=False, seed=5, min_dist=2.1)


@pytest.mark.parametrize("model", [LJ, MORSE], ids=["lj", "morse"])
@pytest.mark.parametrize("kind", ["cell", "molecule"])
def test_pair_models_keep_the_contract(model, kind):
    atoms = _cell() if kind == "cell" else _molecule()
    # op-by-op (jit) and parameter-gradient checks compile most: once per model
    skip = ["jit", "param_gradients"] if kind == "cell" else []
    report = check_model(model, model.init(None), atoms, skip=skip)
    expected = set(ALL_CHECKS) - (set(skip) if kind == "cell" else {"wrapping", "fd_stress"})
    assert set(report["checks"]) == expected
    assert report["periodic"] == (kind == "cell") and report["dtype"] == "float64"
    # the checks are tight: every comparison far inside its tolerance, range blocks exactly zero
    assert all(v["ratio"] < 1e-2 for v in report["errors"].values()), report["errors"]
    assert report["errors"]["range"]["max_error"] == 0.0
    if kind == "cell":
        assert report["errors"]["fd_stress"]["scale"] > 1e-4  # a non-trivial stress was compared


def test_mixed_periodic_slab():
    atoms = random_cell_atoms(6, np.diag([5.0, 5.5, 9.0]), pbc=(True, True, False), seed=2, min_dist=2.2)
    report = check_model(LJ, LJ.init(None), atoms, checks=["rotation", "wrapping", "fd_stress"])
    assert report["checks"] == ["rotation", "wrapping"]
    assert "fd_stress" in report["skipped"]


# ---------------------------------------------------------------- broken models


def _broken(apply, **kw):
    return dataclasses.replace(LJ, apply=apply, **kw)


def _absolute_position(params, graph):  # energy depends on where the structure is
    return LJ.apply(params, graph) + 0.05 * jnp.sin(graph.nodes["positions"][:, 0])


def _axis_dependent(params, graph):  # translation invariant, not rotation invariant
    vec = edge_vectors(graph)
    extra = jnp.where(graph.edges["mask"], 0.01 * vec[:, 2] ** 2, 0.0)
    n = graph.nodes["positions"].shape[0]
    return LJ.apply(params, graph) + jnp.zeros(n).at[graph.receivers].add(extra)


def _chiral(params, graph):  # rotation invariant, changes sign under reflection
    vec = edge_vectors(graph)
    r = safe_norm(vec, graph.edges["mask"])
    w = jnp.where(graph.edges["mask"] & (r < 4.5), jnp.exp(-r), 0.0)
    a = jnp.zeros((graph.nodes["positions"].shape[0], 3)).at[graph.receivers].add(w[:, None] * vec)
    b = jnp.zeros_like(a).at[graph.receivers].add((w**2)[:, None] * vec)
    c = jnp.zeros_like(a).at[graph.receivers].add((w**3)[:, None] * vec)
    return LJ.apply(params, graph) + 0.5 * jnp.sum(jnp.cross(a, b) * c, axis=1)


def _index_dependent(params, graph):  # depends on the order of the atoms
    n = graph.nodes["positions"].shape[0]
    return LJ.apply(params, graph) * (1.0 + 0.01 * jnp.arange(n))


def _stopped_gradient(params, graph):  # forces are not −∂E/∂R
    import jax

    vec = edge_vectors(graph)
    r = safe_norm(vec, graph.edges["mask"])
    e = jnp.where(graph.edges["mask"] & (r < 4.5), jax.lax.stop_gradient(0.1 * jnp.exp(-r)), 0.0)
    return LJ.apply(params, graph) + jnp.zeros(graph.nodes["positions"].shape[0]).at[graph.receivers].add(e)


def _leaks_padding(params, graph):  # the result depends on the size of the padded arrays
    return LJ.apply(params, graph) + 1e-3 * graph.nodes["positions"].shape[0]


def _padding_energy(params, graph):  # padding atoms get energy (observables mask that)...
    return LJ.apply(params, graph) + jnp.where(graph.nodes["mask"], 0.0, 1.0) * jnp.sum(graph.nodes["positions"] ** 2)


def _non_local(params, graph):  # claims 2·R_c range, couples every atom of its graph
    R = graph.nodes["positions"]
    w = graph.nodes["mask"].astype(R.dtype)
    gi = node_graph_index(graph)
    G = graph.n_node.shape[0]
    count = jnp.maximum(jnp.zeros(G).at[gi].add(w), 1.0)
    centre = jnp.zeros((G, 3)).at[gi].add(w[:, None] * R) / count[:, None]
    return LJ.apply(params, graph) + w * 1e-3 * jnp.sum((R - centre[gi]) ** 2, 1)


BROKEN = [
    (_absolute_position, "translation", {}),
    (_axis_dependent, "rotation", {}),
    (_chiral, "reflection", {}),
    (_index_dependent, "permutation", {}),
    (_stopped_gradient, "fd_forces", {}),
    (_leaks_padding, "padding", {}),
    (_non_local, "range", {}),
]


@pytest.mark.parametrize("apply,check,kw", BROKEN, ids=[b[1] for b in BROKEN])
def test_check_model_catches_broken_models(apply, check, kw):
    model = _broken(apply, **kw)
    atoms = _molecule()
    # the violated check fails, naming itself and the size of the violation
    with pytest.raises(AssertionError, match=rf"check_model\[{check}\].*exceeds tolerance \d"):
        check_model(model, model.init(None), atoms, checks=[check])
    # and the checks before it pass: it is the first failure of a full run
    before = list(ALL_CHECKS[: ALL_CHECKS.index(check)])
    if check not in ("padding", "range"):  # (those would compile the padded batch / a larger structure)
        check_model(model, model.init(None), atoms, checks=before)


def test_padding_atoms_with_energy_are_masked_by_the_observables():
    """A model may return anything on padding atoms: the observables mask it, so the contract holds."""
    model = _broken(_padding_energy)
    report = check_model(model, model.init(None), _molecule(), checks=["padding"])
    assert report["checks"] == ["padding"] and report["errors"]["padding"]["ratio"] < 1e-2


def test_wrapping_catches_image_dependence():
    def image_dependent(params, graph):  # periodic model that ignores the cell offsets of the edges
        R = graph.nodes["positions"]
        vec = R[graph.senders] - R[graph.receivers]
        r = safe_norm(vec, graph.edges["mask"])
        e = jnp.where(graph.edges["mask"], 0.01 * jnp.exp(-0.1 * r), 0.0)
        return LJ.apply(params, graph) + jnp.zeros(R.shape[0]).at[graph.receivers].add(e)

    model = _broken(image_dependent)
    with pytest.raises(AssertionError, match=r"check_model\[wrapping\]"):
        check_model(model, model.init(None), _cell(), checks=["wrapping"])


def test_bad_arguments():
    atoms = _molecule()
    with pytest.raises(TypeError, match="Model"):
        check_model(LJ.apply, None, atoms)
    with pytest.raises(TypeError, match="ase.Atoms"):
        check_model(LJ, LJ.init(None), atoms.positions)
    with pytest.raises(ValueError, match="unknown check"):
        check_model(LJ, LJ.init(None), atoms, checks=["rotations"])
    hd = molecule("H2O")
    with pytest.raises(ValueError, match="unknown element"):
        check_model(dataclasses.replace(LJ, elements=(29,)), LJ.init(None), hd)
