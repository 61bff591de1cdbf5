"""Imported n2p2 potentials reproduce n2p2's own predictions (reference.json), and export round-trips."""

import json

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.units import Bohr, Hartree

import jaxmlp
from jaxmlp.io import load_n2p2, save_n2p2

UNITS = {"H2O_RPBE-D3": (Bohr, Hartree), "Cu2S_PBE": (1.0, 1.0), "Anisole_SCAN": (Bohr, Hartree), "DMABN_SCAN": (Bohr, Hartree)}

_ef = jax.jit(jaxmlp.energy_and_forces, static_argnums=0)


def _read_structure(path, length_unit):
    """First structure of an n2p2 input.data (jaxmlp.data's reader when available)."""
    try:
        from jaxmlp.data import read

        return read(path, format="n2p2", length_unit=length_unit)[0]
    except ImportError:
        pass
    lattice, symbols, positions = [], [], []
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if f[0] == "lattice":
            lattice.append([float(x) for x in f[1:4]])
        elif f[0] == "atom":
            positions.append([float(x) for x in f[1:4]])
            symbols.append(f[4])
        elif f[0] == "end":
            break
    cell = np.array(lattice) * length_unit if lattice else None
    return Atoms(symbols, positions=np.array(positions) * length_unit, cell=cell, pbc=bool(lattice))


def _predict(model, params, atoms):
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
    e, f = _ef(model, params, g)
    return float(e[0]), np.asarray(f)


@pytest.mark.parametrize(
    "name", ["H2O_RPBE-D3", "Cu2S_PBE", "DMABN_SCAN", pytest.param("Anisole_SCAN", marks=pytest.mark.slow)]
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


def test_4g_potential_is_refused(shared_dir):
    with pytest.raises(ValueError, match="4G-HDNNP .*not supported yet"):
        load_n2p2(shared_dir / "n2p2" / "H2O_RPBE-D3_4G", Bohr, Hartree)


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
