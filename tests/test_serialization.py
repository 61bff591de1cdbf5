"""jaxmlp.save / jaxmlp.load: round trips for registered models and clear errors for bad files."""

import json
import zipfile

import jax
import numpy as np
import pytest

import jaxmlp
from jaxmlp.descriptors import angular_set, radial_grid
from jaxmlp.models import hdnnp, lennard_jones, morse
from jaxmlp.serialization import FORMAT_VERSION

from helpers import random_cell_atoms


@pytest.mark.parametrize(
    "factory",
    [lambda: lennard_jones(epsilon=0.2, sigma=2.1, cutoff=5.0), lambda: morse(D=0.5, alpha=1.3, r0=2.4, cutoff=5.0, mode="shift")],
)
def test_pair_model_round_trip(tmp_path, factory):
    model = factory()
    params = model.init(jax.random.PRNGKey(0), None)
    jaxmlp.save(tmp_path / "m.npz", model, params)
    m2, p2 = jaxmlp.load(tmp_path / "m.npz")
    assert m2.name == model.name and m2.config == model.config and m2.cutoff == model.cutoff
    assert jax.tree.structure(p2) == jax.tree.structure(params)
    atoms = random_cell_atoms(6, np.eye(3) * 6.0, seed=1, min_dist=2.0)
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff)
    assert float(jaxmlp.energy(m2, p2, g)[0]) == float(jaxmlp.energy(model, params, g)[0])


def test_hdnnp_round_trip(tmp_path):
    fns = radial_grid(["H", "O"], 3.5, 2) + angular_set(["H", "O"], 3.5, etas=(0.0,), zetas=(1.0,), lambdas=(1.0,))
    atoms = random_cell_atoms(6, np.eye(3) * 5.0, seed=2, min_dist=1.2, symbols=["O", "H", "H"])
    g = jaxmlp.atoms_to_graph(atoms, 3.5, triplets=True)
    stats = hdnnp(["H", "O"], fns).extras["descriptor"].statistics([g])
    model = hdnnp(["H", "O"], fns, hidden=(4,), activation="softplus",
                  scaling={"mode": "sigma", "stats": stats}, e0={"H": -0.5, "O": -2.25})
    params = model.init(jax.random.PRNGKey(1), g)
    jaxmlp.save(tmp_path / "h.npz", model, params)
    m2, p2 = jaxmlp.load(tmp_path / "h.npz")
    assert m2.config == model.config and m2.elements == model.elements
    assert m2.needs_triplets is model.needs_triplets is False  # wide-only angular set: factorised, no triplets
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p2)):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))
    en = jax.jit(jaxmlp.energy, static_argnums=0)
    assert float(en(model, params, g)[0]) == float(en(m2, p2, g)[0])


def test_lists_and_overwrite(tmp_path):
    """Params with lists/tuples survive, and saving over an existing file replaces it atomically."""
    model = lennard_jones()
    params = {"a": [np.arange(3.0), (np.ones(2), np.zeros((1, 2)))], "b": np.float32(2.0)}
    jaxmlp.save(tmp_path / "x.npz", model, params)
    jaxmlp.save(tmp_path / "x.npz", model, params)
    _, p2 = jaxmlp.load(tmp_path / "x.npz")
    assert isinstance(p2["a"], list) and isinstance(p2["a"][1], tuple)
    assert p2["b"].dtype == np.float32
    np.testing.assert_array_equal(p2["a"][0], np.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]  # no temporary files left


def _rewrite_header(path, change):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["__header__"][()]))
    change(header)
    arrays["__header__"] = np.array(json.dumps(header))
    np.savez(path, **arrays)


def test_errors(tmp_path):
    model = lennard_jones()
    params = model.init(None)
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError, match="Model"):
        jaxmlp.save(path, "not a model", params)
    with pytest.raises(FileNotFoundError):
        jaxmlp.load(tmp_path / "missing.npz")
    # corrupt / truncated / foreign files
    jaxmlp.save(path, model, params)
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        jaxmlp.load(tmp_path / "trunc.npz")
    (tmp_path / "junk.npz").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="corrupt|not a jaxmlp"):
        jaxmlp.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", x=np.ones(3))
    with pytest.raises(ValueError, match="not a jaxmlp model file"):
        jaxmlp.load(tmp_path / "plain.npz")
    # newer format version, unknown model, missing parameter
    _rewrite_header(path, lambda h: h.update(version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match="newer"):
        jaxmlp.load(path)
    jaxmlp.save(path, model, params)
    _rewrite_header(path, lambda h: h.update(model="no_such_model"))
    with pytest.raises(ValueError, match="unknown model"):
        jaxmlp.load(path)
    jaxmlp.save(path, model, params)
    _rewrite_header(path, lambda h: h["leaves"].append(["gamma", "float64", []]))
    with pytest.raises(ValueError, match="missing"):
        jaxmlp.load(path)
    assert zipfile.is_zipfile(path)


def test_config_errors_name_the_file_and_the_key(tmp_path):
    model = lennard_jones(epsilon=0.3, cutoff=4.0)
    params = model.init(None)
    path = tmp_path / "lj.npz"
    # a key this jaxmlp's lennard_jones does not take (a file from another version): ValueError, not TypeError
    jaxmlp.save(path, model, params)
    _rewrite_header(path, lambda h: h["config"].update(epsilonn=1.0))
    with pytest.raises(ValueError, match=rf"{path}.*key\(s\) \['epsilonn'\]"):
        jaxmlp.load(path)
    # a required key missing (hdnnp needs elements and symmetry_functions)
    hd = hdnnp(["H"], radial_grid(["H"], rc=3.0, n=2))
    hpath = tmp_path / "hd.npz"
    jaxmlp.save(hpath, hd, {"x": np.zeros(1)})
    _rewrite_header(hpath, lambda h: h["config"].pop("elements"))
    with pytest.raises(ValueError, match=rf"{hpath}.*lacks required key\(s\) \['elements'\]"):
        jaxmlp.load(hpath)
    # a config that is not an object
    jaxmlp.save(path, model, params)
    _rewrite_header(path, lambda h: h.update(config=[1, 2]))
    with pytest.raises(ValueError, match=rf"{path}: model config must be a JSON object"):
        jaxmlp.load(path)
    # a value the factory rejects is reported with the file name
    jaxmlp.save(path, model, params)
    _rewrite_header(path, lambda h: h["config"].update(mode="no_such_mode"))
    with pytest.raises(ValueError, match=rf"{path}: cannot re-create model 'lennard_jones'"):
        jaxmlp.load(path)
    # a malformed parameter index
    jaxmlp.save(path, model, params)
    _rewrite_header(path, lambda h: h["leaves"].append(["gamma", 3]))
    with pytest.raises(ValueError, match=rf"{path} is corrupt: malformed parameter entry"):
        jaxmlp.load(path)
    # the untouched file still loads and gives the same energy parameters
    jaxmlp.save(path, model, params)
    back, _ = jaxmlp.load(path)
    assert back.config == model.config
