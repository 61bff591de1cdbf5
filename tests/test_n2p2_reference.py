"""Imported n2p2 potentials reproduce n2p2's own predictions (reference.json), and export round-trips."""

import json
import re

import jax
import numpy as np
import pytest
from ase.units import Bohr, Hartree

import jaxmlp
from jaxmlp.data import read
from jaxmlp.io import load_n2p2, save_n2p2

UNITS = {"H2O_RPBE-D3": (Bohr, Hartree), "Cu2S_PBE": (1.0, 1.0), "Anisole_SCAN": (Bohr, Hartree), "DMABN_SCAN": (Bohr, Hartree)}

_ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)


def _read_structure(path, length_unit):
    """First structure of an n2p2 input.data, positions in Å."""
    return read(path, format="n2p2", length_unit=length_unit)[0]


def _predict(model, params, atoms):
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
    e, f = _ef(model, params, g)
    return float(e[0]), np.asarray(f)


@pytest.mark.parametrize(
    "name", ["H2O_RPBE-D3", "Cu2S_PBE", "DMABN_SCAN", "Anisole_SCAN"]
)
def test_reproduces_n2p2(shared_dir, name):
    ref = json.loads((shared_dir / "n2p2" / "reference.json").read_text())[name]
    L, U = UNITS[name]
    model, params = load_n2p2(shared_dir / "n2p2" / name, length_unit=L, energy_unit=U)
    atoms = _read_structure(shared_dir / "n2p2" / name / "input.data", L)
    assert len(atoms) == ref["n_atoms"]
    e, f = _predict(model, params, atoms)
    e_file, f_file = e / U, f / (U / L)
    f_ref = np.array(ref["forces"])
    assert abs(e_file - ref["energy"]) <= 1e-12 * abs(ref["energy"])
    # n2p2's own regression tolerance is 2.2e-13 absolute per component
    assert np.abs(f_file - f_ref).max() <= 1e-12 * max(1.0, np.abs(f_ref).max())


def test_dense_layout_import_reproduces_n2p2(shared_dir):
    """load_n2p2(max_neighbors=K): the dense ACSF layout gives n2p2's energy and forces too (no triplets needed)."""
    name = "DMABN_SCAN"
    ref = json.loads((shared_dir / "n2p2" / "reference.json").read_text())[name]
    L, U = UNITS[name]
    atoms = _read_structure(shared_dir / "n2p2" / name / "input.data", L)
    model, params = load_n2p2(shared_dir / "n2p2" / name, L, U, max_neighbors=len(atoms))
    assert not model.needs_triplets
    e, f = _predict(model, params, atoms)
    assert abs(e / U - ref["energy"]) <= 1e-12 * abs(ref["energy"])
    assert np.abs(f / (U / L) - np.array(ref["forces"])).max() <= 1e-12 * max(1.0, np.abs(ref["forces"]).max())
    with pytest.raises(ValueError, match="max_neighbors"):
        load_n2p2(shared_dir / "n2p2" / "H2O_RPBE-D3_4G", Bohr, Hartree, max_neighbors=8)


def test_4g_potential_loads_as_nonlocal_model(shared_dir):
    """n2p2 4G potentials load as the 4G-HDNNP (agreement with nnp-predict is in test_hdnnp4g.py); they are not local."""
    model, _ = load_n2p2(shared_dir / "n2p2" / "H2O_RPBE-D3_4G", Bohr, Hartree)
    assert model.name == "hdnnp4g" and not model.local and model.interaction_range == float("inf")


def test_export_round_trip(shared_dir, tmp_path):
    """Imported model → save_n2p2 (in Å/eV and in Bohr/Hartree) → load_n2p2 gives identical predictions."""
    model, params = load_n2p2(shared_dir / "n2p2" / "DMABN_SCAN", Bohr, Hartree)
    atoms = _read_structure(shared_dir / "n2p2" / "DMABN_SCAN" / "input.data", Bohr)
    e0, f0 = _predict(model, params, atoms)
    save_n2p2(tmp_path / "ev", model, params)
    m1, p1 = load_n2p2(tmp_path / "ev")
    e1, f1 = _predict(m1, p1, atoms)
    assert e1 == pytest.approx(e0, rel=1e-14)
    np.testing.assert_allclose(f1, f0, rtol=1e-12, atol=1e-13)
    # in Bohr/Hartree file units: same model up to the unit conversion round-off
    save_n2p2(tmp_path / "bohr", m1, p1, length_unit=Bohr, energy_unit=Hartree)
    m2, p2 = load_n2p2(tmp_path / "bohr", Bohr, Hartree)
    for fa, fb in zip(m1.config["symmetry_functions"], m2.config["symmetry_functions"]):
        assert fa.keys() == fb.keys()
        for k in fa:
            assert fa[k] == fb[k] if isinstance(fa[k], str) else fa[k] == pytest.approx(fb[k], rel=1e-14, abs=1e-300)
    assert m2.config["energy_scale"] == pytest.approx(m1.config["energy_scale"], rel=1e-15)
    assert m2.config["e0"] == pytest.approx(m1.config["e0"], rel=1e-15)
    assert m2.config["scaling"] == m1.config["scaling"]
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_errors(shared_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_n2p2(tmp_path / "nothing")
    src = shared_dir / "n2p2" / "Cu2S_PBE"
    d = tmp_path / "bad"
    d.mkdir()
    for f in src.iterdir():
        (d / f.name).write_text(f.read_text())
    text = (src / "input.nn").read_text()
    (d / "input.nn").write_text(text + "\nsymfunction_short S 21 S S 1.0 6.0 0.0 180.0 p2\n")
    with pytest.raises(ValueError, match="type 21 is not supported"):
        load_n2p2(d)
    (d / "input.nn").write_text(text)
    lines = (src / "weights.016.data").read_text().splitlines()
    (d / "weights.016.data").write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(ValueError, match="values but the network"):
        load_n2p2(d)
    (d / "weights.016.data").unlink()
    with pytest.raises(FileNotFoundError, match="weights"):
        load_n2p2(d)


def _copy_potential(shared_dir, tmp_path, name="Cu2S_PBE"):
    """A private copy of an n2p2 potential (no input.data) to corrupt; never committed."""
    src = shared_dir / "n2p2" / name
    d = tmp_path / name
    d.mkdir()
    for f in src.iterdir():
        if f.name != "input.data" and f.is_file():
            (d / f.name).write_text(f.read_text())
    return d


def _data_lines(path):
    """1-based numbers of the non-comment, non-blank lines of a file."""
    return [i for i, raw in enumerate(path.read_text().splitlines(), 1) if raw.split("#", 1)[0].strip()]


def _edit_line(path, lineno, change):
    lines = path.read_text().splitlines()
    lines[lineno - 1] = change(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")


def test_scaling_row_without_sigma_is_refused(shared_dir, tmp_path):
    # Cu2S uses scale_symmetry_functions_sigma: a row without its sigma column used to load with
    # sigma = 0 and move the energy from -573.656 to -551.195 eV without a word
    d = _copy_potential(shared_dir, tmp_path)
    path = d / "scaling.data"
    row = _data_lines(path)[7]
    _edit_line(path, row, lambda s: " ".join(s.split()[:5]))
    with pytest.raises(ValueError, match=rf"{path}, line {row}: .*needs 6 columns, got 5"):
        load_n2p2(d)


def test_scaling_row_repeated_or_missing_is_refused(shared_dir, tmp_path):
    d = _copy_potential(shared_dir, tmp_path)
    path = d / "scaling.data"
    rows = _data_lines(path)
    lines = path.read_text().splitlines()
    first, second = lines[rows[2] - 1].split(), lines[rows[3] - 1].split()
    # row 4 claims the indices of row 3: row 3 would be silently overridden and row 4's function left out
    _edit_line(path, rows[3], lambda s: " ".join(first[:2] + second[2:]))
    with pytest.raises(ValueError, match=rf"{path}, line {rows[3]}: .*already given on line {rows[2]}"):
        load_n2p2(d)
    path.write_text("\n".join(ln for k, ln in enumerate(lines, 1) if k != rows[3]) + "\n")
    with pytest.raises(ValueError, match=rf"{path}: no statistics for element {second[0]} .*function\(s\) \[{second[1]}\]"):
        load_n2p2(d)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda f: ["abc"] + f[1:], "weight value is not a number: 'abc'"),
        (lambda f: f[:4] + ["999"] + f[5:], "neuron index out of range"),
        (lambda f: f[:4] + ["0"] + f[5:], "neuron index out of range"),  # 0 would wrap to the last neuron
        (lambda f: f[:1] + ["c"] + f[2:], "malformed weight line"),
        (lambda f: f + ["7"], "malformed weight line"),
    ],
)
def test_malformed_weight_lines_name_the_line(shared_dir, tmp_path, change, fragment):
    d = _copy_potential(shared_dir, tmp_path)
    path = d / "weights.016.data"
    row = _data_lines(path)[5]
    assert path.read_text().splitlines()[row - 1].split()[1] == "a"
    _edit_line(path, row, lambda s: " ".join(change(s.split())))
    with pytest.raises(ValueError, match=rf"{path}, line {row}: .*{re.escape(fragment)}"):
        load_n2p2(d)


def test_repeated_weight_is_refused(shared_dir, tmp_path):
    d = _copy_potential(shared_dir, tmp_path)
    path = d / "weights.016.data"
    rows = _data_lines(path)
    lines = path.read_text().splitlines()
    first = lines[rows[0] - 1].split()
    _edit_line(path, rows[1], lambda s: " ".join(s.split()[:3] + first[3:]))
    with pytest.raises(ValueError, match=rf"{path}, line {rows[1]}: the same weight is already given on line {rows[0]}"):
        load_n2p2(d)


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ("cutoff_type 2 0.0", "keyword 'cutoff_type' given 2 times"),
        ("element_nodes_short S 2 5 5", "'element_nodes_short' (element-specific network sizes) is not supported"),
        ("scale_symmetry_functions", "is ambiguous"),  # Cu2S already scales with sigma
        ("atom_energy S 1.0\natom_energy S 2.0", "atom_energy of S already given"),
        ("symfunction_short S 2 S 1.0 0.0 abc", "symfunction_short field 6 is not a number: 'abc'"),
        ("symfunction_short S 2 S 1.0 0.0 6.0 1.0", "needs 6 fields after the keyword, got 7"),
        ("symfunction_short S 2 Zn 1.0 0.0 6.0", "element 'Zn' of a symfunction_short line is not in elements"),
    ],
)
def test_input_nn_problems_name_the_line(shared_dir, tmp_path, extra, fragment):
    d = _copy_potential(shared_dir, tmp_path)
    path = d / "input.nn"
    text = path.read_text()
    n_before = len(text.splitlines())
    path.write_text(text + extra + "\n")
    with pytest.raises(ValueError, match=rf"{path}, lines? .*{re.escape(fragment)}") as info:
        load_n2p2(d)
    assert any(str(n) in str(info.value) for n in range(n_before + 1, n_before + 3))


def test_export_refuses_params_that_do_not_fit_before_writing(tmp_path):
    from jaxmlp.descriptors import radial_grid
    from jaxmlp.models import hdnnp

    model = hdnnp(["H", "O"], radial_grid(["H", "O"], rc=3.0, n=2), hidden=[3])
    n_f = dict(zip(model.extras["descriptor"].symbols, model.extras["descriptor"].n_functions))
    rng = np.random.default_rng(0)

    def net(nf):
        return {"layer_0": {"kernel": rng.normal(size=(nf, 3)), "bias": rng.normal(size=3)},
                "layer_1": {"kernel": rng.normal(size=(3, 1)), "bias": rng.normal(size=1)}}

    good = {"networks": {e: net(n_f[e]) for e in ("H", "O")}}
    save_n2p2(tmp_path / "good", model, good)
    back, p = load_n2p2(tmp_path / "good")
    assert list(back.config["hidden"]) == [3] and back.config["elements"] == ["H", "O"]
    for a, b in zip(jax.tree.leaves(good), jax.tree.leaves(p)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    bad_cases = [
        ({"networks": {"H": good["networks"]["H"]}}, "no network for element O"),
        ({"networks": {**good["networks"], "O": {"layer_0": good["networks"]["O"]["layer_0"]}}}, "layer_1 missing"),
        ({"networks": {**good["networks"], "O": {**good["networks"]["O"],
                       "layer_1": {"kernel": np.zeros((2, 1)), "bias": np.zeros(1)}}}}, "expected (3, 1)"),
        ({"networks": {**good["networks"], "O": {**good["networks"]["O"],
                       "layer_1": {"kernel": np.full((3, 1), np.nan), "bias": np.zeros(1)}}}}, "NaN or inf"),
    ]
    for k, (params, fragment) in enumerate(bad_cases):
        with pytest.raises(ValueError, match=re.escape(fragment)):
            save_n2p2(tmp_path / f"bad{k}", model, params)
        assert not (tmp_path / f"bad{k}").exists()  # nothing half-written


def test_partial_normalisation_is_refused(shared_dir, tmp_path):
    d = _copy_potential(shared_dir, tmp_path)
    path = d / "input.nn"
    lines = path.read_text().splitlines()
    k = next(i for i, s in enumerate(lines) if s.startswith("conv_length"))
    path.write_text("\n".join(lines[:k] + lines[k + 1 :]) + "\n")
    with pytest.raises(ValueError, match=rf"{path}, line\(s\) \d+, \d+: mean_energy, conv_energy without conv_length"):
        load_n2p2(d)
