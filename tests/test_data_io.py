"""File IO (extxyz, XSF, n2p2 input.data) and structure validation."""

import os
import re

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import Bohr, Hartree

from jaxmlp.data import detect_format, read, write
from jaxmlp.data.io import SUPPORTED_FORMATS
from jaxmlp.graph import validate


def _cu(seed):
    # seed 0: orthorhombic cell; otherwise the triclinic primitive fcc cell
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1)) if seed == 0 else bulk("Cu", "fcc", a=3.6).repeat(2)
    atoms.rattle(0.05, seed=seed)
    atoms.set_cell(atoms.cell * (1.0 + 0.01 * seed), scale_atoms=True)
    atoms.calc = EMT()
    atoms.get_forces(), atoms.get_stress(), atoms.get_potential_energies()
    atoms.info["tag"] = f"cu-{seed}"
    return atoms


def _molecule():
    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(3)
    atoms.calc = SinglePointCalculator(atoms, energy=-1234.5678901234567, forces=rng.normal(size=(9, 3)))
    return atoms


@pytest.fixture
def frames():
    return [_cu(0), _cu(1), _molecule()]


def _assert_same(a, b, atol=1e-12, stress=True, energies=True):
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=atol)
    np.testing.assert_allclose(np.asarray(a.cell), np.asarray(b.cell), rtol=0, atol=atol)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    ra, rb = a.calc.results, b.calc.results
    np.testing.assert_allclose(rb["energy"], ra["energy"], rtol=1e-15, atol=atol)
    np.testing.assert_allclose(rb["forces"], ra["forces"], rtol=0, atol=atol)
    if stress and "stress" in ra:
        np.testing.assert_allclose(b.get_stress(), a.get_stress(), rtol=0, atol=atol)
    if energies and "energies" in ra:
        np.testing.assert_allclose(b.get_potential_energies(), a.get_potential_energies(), rtol=0, atol=atol)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", ["data.extxyz", "data.xyz"])
def test_extxyz_round_trip_is_exact(tmp_path, frames, name):
    path = tmp_path / name
    write(path, frames)
    back = read(path)
    assert len(back) == 3
    for a, b in zip(frames, back):
        _assert_same(a, b, atol=0.0)
    assert back[0].info["tag"] == "cu-0"
    assert "stress" not in back[2].calc.results
    assert back[0].get_stress().shape == (6,)
    assert back[0].get_potential_energies().shape == (8,)


def test_extxyz_interoperates_with_ase(tmp_path, frames):
    ours = tmp_path / "ours.extxyz"
    write(ours, frames)
    by_ase = ase.io.read(ours, ":")
    for a, b in zip(frames, by_ase):
        _assert_same(a, b, atol=0.0)
    theirs = tmp_path / "theirs.extxyz"
    ase.io.write(theirs, frames, format="extxyz")
    for a, b in zip(frames, read(theirs)):
        _assert_same(a, b, atol=1e-8)  # ASE's writer rounds per-atom columns to 8 decimals


def test_xsf_round_trip(tmp_path, frames):
    periodic = frames[:2]
    path = tmp_path / "cu.xsf"
    write(path, periodic)
    back = read(path)
    for a, b in zip(periodic, back):
        _assert_same(a, b, atol=1e-12, stress=False, energies=False)
    assert "stress" not in back[0].calc.results

    single = tmp_path / "mol.xsf"
    write(single, frames[2])
    (mol,) = read(single)
    _assert_same(frames[2], mol, atol=1e-12)
    assert not mol.pbc.any()


def test_xsf_aenet_style_file(tmp_path):
    text = """# total energy = -10.5 eV

CRYSTAL
PRIMVEC
 3.0 0.0 0.0
 0.0 3.0 0.0
 0.0 0.0 3.0
PRIMCOORD
 2 1
 Ti 0.0 0.0 0.0  0.1 -0.2 0.3
 O  1.5 1.5 1.5 -0.1  0.2 -0.3
"""
    path = tmp_path / "aenet.xsf"
    path.write_text(text)
    (atoms,) = read(path, force_unit=1.0)
    assert atoms.get_potential_energy() == -10.5
    np.testing.assert_allclose(atoms.get_forces(), [[0.1, -0.2, 0.3], [-0.1, 0.2, -0.3]], atol=1e-15)
    (hartree,) = read(path)
    np.testing.assert_allclose(hartree.get_forces(), atoms.get_forces() * Hartree, rtol=1e-14)


def _first(lines, prefix, start=0):
    """1-based number of the first line at or after index ``start`` that starts with ``prefix``."""
    return next(k for k in range(start, len(lines)) if lines[k].strip().startswith(prefix)) + 1


def _xsf_edit(prefix, offset, change, error_offset=None):
    """Edit the line ``offset`` after the first line starting with ``prefix``.

    Returns ``edit(lines) -> line number the error must name`` (``offset``,
    or ``error_offset`` after the same line).
    """

    def edit(lines):
        k = _first(lines, prefix) - 1 + offset
        lines[k] = change(lines[k].split())
        return k + 1 - offset + (offset if error_offset is None else error_offset)

    return edit


def _field(k, value):
    return lambda f: " ".join(f[:k] + [value] + f[k + 1 :])


@pytest.mark.parametrize(
    "edit, message",
    [
        (_xsf_edit("PRIMCOORD", 3, _field(2, "abc")), "atom line of frame 0: 'abc' is not a number"),
        (_xsf_edit("PRIMCOORD", 2, lambda f: " ".join(f[:5])), "atom line of frame 0 has 5 fields"),
        (_xsf_edit("PRIMCOORD", 2, _field(0, "Xx")), "unknown element 'Xx'"),
        (_xsf_edit("PRIMVEC", 2, lambda f: " ".join(f[:2])), "PRIMVEC vector needs 3 numbers"),
        # 7 atoms declared, 8 lines follow: ASE would silently drop the last atom of the last frame
        (_xsf_edit("PRIMCOORD", 1, lambda f: "7 1", error_offset=9), "declares 7 atoms"),
        (_xsf_edit("PRIMCOORD", 1, lambda f: "0 1"), "frame 0 has no atoms"),
        # an ANIMSTEPS count below the frames: ASE would silently read only the first ones
        (_xsf_edit("ANIMSTEPS", 0, lambda f: "ANIMSTEPS 1"), "ANIMSTEPS 1 but the file holds 2 frame(s)"),
        (_xsf_edit("ANIMSTEPS", 0, lambda f: "ANIMSTEPS 3"), "ANIMSTEPS 3 but the file holds 2 frame(s)"),
        (_xsf_edit("CRYSTAL", 0, lambda f: "MOLECULE"), "expected CRYSTAL, SLAB, POLYMER or ATOMS"),
    ],
)
def test_malformed_xsf_names_the_line(tmp_path, frames, edit, message):
    path = tmp_path / "bad.xsf"
    write(path, frames[:2])  # two periodic frames of 8 Cu atoms with forces
    lines = path.read_text().splitlines()
    assert lines[_first(lines, "PRIMCOORD")].split() == ["8", "1"]
    line_no = edit(lines)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as info:
        read(path)
    assert f"{path}, line {line_no}:" in str(info.value), str(info.value)
    assert message in str(info.value), str(info.value)


def test_xsf_several_frames_without_animsteps_are_refused(tmp_path, frames):
    path = tmp_path / "two.xsf"
    write(path, frames[:2])
    lines = [s for s in path.read_text().splitlines() if not s.startswith("ANIMSTEPS")]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="2 frames but no ANIMSTEPS line"):
        read(path)


@pytest.mark.parametrize("length_unit, energy_unit", [(1.0, 1.0), (Bohr, Hartree)])
def test_n2p2_round_trip(tmp_path, frames, length_unit, energy_unit):
    frames[0].info["comment"] = "first structure"
    path = tmp_path / "input.data"
    write(path, frames, length_unit=length_unit, energy_unit=energy_unit)
    back = read(path, length_unit=length_unit, energy_unit=energy_unit)
    for a, b in zip(frames, back):
        _assert_same(a, b, atol=1e-12, stress=False, energies=False)
    assert back[0].info["comment"] == "first structure"
    assert not back[2].pbc.any()


def test_n2p2_units_are_converted(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 1.0]])
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=[[0, 0, 1.0], [0, 0, -1.0]])
    path = tmp_path / "input.data"
    write(path, atoms, length_unit=Bohr, energy_unit=Hartree)
    fields = {line.split()[0]: line.split() for line in path.read_text().splitlines()}
    assert float(fields["energy"][1]) == pytest.approx(-1.0 / Hartree, rel=1e-15)
    atom_lines = [line.split() for line in path.read_text().splitlines() if line.startswith("atom")]
    assert float(atom_lines[1][3]) == pytest.approx(1.0 / Bohr, rel=1e-15)
    assert float(atom_lines[0][9]) == pytest.approx(Bohr / Hartree, rel=1e-15)
    # read in the wrong units gives scaled values; in the right ones the originals
    (plain,) = read(path)
    assert plain.get_potential_energy() == pytest.approx(-1.0 / Hartree)
    (converted,) = read(path, length_unit=Bohr, energy_unit=Hartree)
    assert converted.get_potential_energy() == pytest.approx(-1.0, rel=1e-15)


# ------------------------------------------------------------ shared n2p2 data


def test_read_shared_n2p2_h2o(shared_dir):
    path = shared_dir / "n2p2" / "configuration-sets" / "input.data.H2O_RPBE-D3"
    frames = read(path, length_unit=Bohr, energy_unit=Hartree)
    assert len(frames) == 20
    sizes = sorted(len(a) for a in frames)
    assert sizes.count(48) == 11 and sizes.count(192) == 7 and sizes.count(96) == 2
    first = frames[0]
    assert first.pbc.all() and len(first) == 192
    np.testing.assert_allclose(np.diag(first.cell), 24.623508 * Bohr, rtol=1e-15)
    assert first.get_potential_energy() == pytest.approx(-4900.37328433 * Hartree, rel=1e-15)
    np.testing.assert_allclose(first.positions[0], np.array([3.735290838, 2.327841157, 3.501304856]) * Bohr, rtol=1e-15)
    np.testing.assert_allclose(
        first.get_forces()[0], np.array([-0.006530137, -0.002852459, -0.027992554]) * Hartree / Bohr, rtol=1e-15
    )
    assert first.get_chemical_symbols()[:3] == ["O", "H", "H"]
    assert first.get_charges()[0] == pytest.approx(-0.22638936)
    assert first.info["comment"] == "written by RuNNerDecom"


def test_read_shared_n2p2_cu2s_and_lj(shared_dir):
    folder = shared_dir / "n2p2" / "configuration-sets"
    cu2s = read(folder / "input.data.Cu2S_PBE")
    assert len(cu2s) == 20 and all(len(a) == 144 and a.pbc.all() for a in cu2s)
    assert cu2s[0].get_potential_energy() == -567.404752
    assert set(cu2s[0].get_chemical_symbols()) == {"Cu", "S"}
    assert cu2s[0].cell[2, 0] == pytest.approx(-6.055885795)  # non-orthogonal cell kept

    lj = read(folder / "input.data.LJ")
    assert len(lj) == 101
    for atoms in lj[::10]:
        # comment: "r = <r>, E = <E>, dEdr = <dE/dr>"; check labels against it
        r, energy, dedr = (float(x) for x in re.findall(r"=\s*(\S+?),?(?:\s|$)", atoms.info["comment"]))
        assert not atoms.pbc.any()
        assert atoms.get_distance(0, 1) == pytest.approx(r, rel=1e-7)
        assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-7)
        unit = (atoms.positions[1] - atoms.positions[0]) / r
        np.testing.assert_allclose(atoms.get_forces()[0], dedr * unit, atol=1e-6)
        np.testing.assert_allclose(atoms.get_forces().sum(axis=0), 0.0, atol=1e-7)


def test_index_selection(tmp_path, frames):
    path = tmp_path / "sel.extxyz"
    write(path, frames)
    assert [len(a) for a in read(path, index=-1)] == [9]
    assert [len(a) for a in read(path, index="0:2")] == [8, 8]
    assert [len(a) for a in read(path, index=slice(None, None, 2))] == [8, 9]
    n2p2 = tmp_path / "input.data"
    write(n2p2, frames)
    assert [len(a) for a in read(n2p2, index=2)] == [9]
    with pytest.raises(IndexError):
        read(n2p2, index=5)


# ------------------------------------------------------------------ formats


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.extxyz", "extxyz"),
        ("A.XYZ", "extxyz"),
        ("b.xsf", "xsf"),
        ("input.data", "n2p2"),
        ("input.data.H2O_RPBE-D3", "n2p2"),
        ("train.data", "n2p2"),
    ],
)
def test_detect_format(name, expected):
    assert detect_format(name) == expected


def test_unknown_format_lists_supported(tmp_path, frames):
    path = tmp_path / "x.pdb"
    path.write_text("x")
    for call in (lambda: read(path), lambda: read(path, format="pdb"), lambda: write(tmp_path / "y.cif", frames)):
        with pytest.raises(ValueError) as info:
            call()
        assert all(fmt in str(info.value) for fmt in SUPPORTED_FORMATS)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.extxyz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read(path)


@pytest.mark.parametrize("name", ["e.extxyz", "e.xsf", "input.data"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("\n  \n")
    with pytest.raises(ValueError, match="empty"):
        read(path)


def test_nothing_to_write(tmp_path):
    with pytest.raises(ValueError, match="nothing to write"):
        write(tmp_path / "x.extxyz", [])


def test_n2p2_rejects_partial_pbc(tmp_path):
    atoms = Atoms("H", cell=[2, 2, 2], pbc=(True, True, False))
    with pytest.raises(ValueError, match="all or none periodic"):
        write(tmp_path / "input.data", atoms)


def test_write_is_atomic(tmp_path, frames, monkeypatch):
    path = tmp_path / "keep.extxyz"
    write(path, frames[:1])
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write(path, frames)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.extxyz"]


# ---------------------------------------------------------- malformed files

_ATOM = "atom 0.0 0.0 0.0 H 0.0 0.0 0.0 0.0 0.0"
_ATOM2 = "atom 0.0 0.0 0.74 H 0.0 0.0 0.0 0.0 0.0"
_LAT = ["lattice 5.0 0.0 0.0", "lattice 0.0 5.0 0.0", "lattice 0.0 0.0 5.0"]


@pytest.mark.parametrize(
    "lines, line_no, fragment",
    [
        (["begin", _ATOM, "energie 1.0", "end"], 3, "unknown keyword"),
        (["begin", "atom 0.0 0.0 0.0 H 0.0 0.0 0.0 0.0", "end"], 2, "needs 9 fields"),
        (["begin", _ATOM, "atom 0.0 abc 0.0 H 0.0 0.0 0.0 0.0 0.0", "end"], 3, "non-numeric field 'abc'"),
        (["begin", _ATOM, "energy 1.0 2.0", "end"], 3, "needs 1 number"),
        (["begin", _ATOM, "energy one", "end"], 3, "non-numeric"),
        (["begin", _ATOM, "energy nan", "end"], 3, "non-finite field 'nan' in 'energy' line"),
        (["begin", "atom 0.0 inf 0.0 H 0.0 0.0 0.0 0.0 0.0", "end"], 2, "non-finite field 'inf'"),
        (["begin", _ATOM, "energy 1.0"], 1, "no 'end'"),
        (["begin", _ATOM, "begin", _ATOM, "end"], 3, "missing 'end'"),
        ([_ATOM, "begin", _ATOM, "end"], 1, "outside a begin/end block"),
        (["begin", _ATOM, "end", _ATOM2], 4, "outside a begin/end block"),
        (["begin", _LAT[0], _ATOM, "energy 0.0", "end"], 5, "1 'lattice' line"),
        (["begin", *_LAT[:2], _ATOM, "end"], 5, "2 'lattice' line"),
        (["begin", *_LAT, _LAT[0], _ATOM, "end"], 5, "more than 3 'lattice'"),
        (["begin", "lattice 1.0 0.0", *_LAT[1:], _ATOM, "end"], 2, "needs 3 numbers"),
        (["begin", "atom 0.0 0.0 0.0 Qq 0.0 0.0 0.0 0.0 0.0", "end"], 2, "unknown element 'Qq'"),
        (["begin", _ATOM, "energy 1.0", "energy 2.0", "end"], 4, "second 'energy'"),
        (["begin", "comment nothing here", "end"], 3, "no atoms"),
        (["end"], 1, "outside a begin/end block"),
        (["comment hello"], 1, "outside a begin/end block"),
    ],
)
def test_malformed_n2p2(tmp_path, lines, line_no, fragment):
    path = tmp_path / "input.data"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as info:
        read(path)
    message = str(info.value)
    assert f"{path}, line {line_no}:" in message
    assert fragment in message


def test_n2p2_leading_blanks_and_blank_lines(tmp_path):
    text = "\n  begin\n   comment  spaced   out\n\n" + "\n".join("  " + x for x in (_ATOM, _ATOM2)) + "\n energy -1.5\n end\n\n"
    path = tmp_path / "input.data"
    path.write_text(text)
    (atoms,) = read(path)
    assert atoms.get_potential_energy() == -1.5
    assert atoms.info["comment"] == "spaced   out"
    assert atoms.get_distance(0, 1) == pytest.approx(0.74)


def _good_extxyz(tmp_path, frames):
    path = tmp_path / "good.extxyz"
    write(path, frames[:2])
    return path.read_text().splitlines()


@pytest.mark.parametrize(
    "edit, line_no, fragment",
    [
        (lambda L: L[:3] + [L[3].replace(L[3].split()[2], "abc", 1)] + L[4:], 4, "'abc'"),
        (lambda L: L[:4] + [" ".join(L[4].split()[:5])] + L[5:], 5, "has 5 fields"),
        (lambda L: ["eight"] + L[1:], 1, "atom count"),
        (lambda L: ["9"] + L[1:], 11, "has 1 fields"),
        (lambda L: L[:-2], 18, "only 6 atom line(s) follow before the file ends"),
        (lambda L: L[:5] + [""] + L[5:], 6, "3 atom line(s) follow before a blank line"),
    ],
)
def test_malformed_extxyz(tmp_path, frames, edit, line_no, fragment):
    lines = edit(_good_extxyz(tmp_path, frames))
    path = tmp_path / "bad.extxyz"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as info:
        read(path)
    message = str(info.value)
    assert f"{path}, line {line_no}:" in message, message
    assert fragment in message



@pytest.mark.parametrize(
    "pattern, replacement, fragment",
    [
        (r"energy=\S+", "energy=T", "energy=T is not a number"),  # ASE would store 1.0 eV
        (r"energy=\S+", "energy=abc", "energy=abc is not a number"),
        (r"free_energy=\S+", "free_energy=F", "free_energy=F is not a number"),
        (r'stress="[^"]*"', 'stress="1 2 3 4 5 6 7 8 x"', "malformed comment line"),
        (r"forces:R:3", "forces:L:3", "column 'forces' is declared forces:L:3 (logical)"),
        (r"energies:R:1", "energies:S:1", "column 'energies' is declared energies:S:1 (string)"),
    ],
)
def test_extxyz_non_numeric_labels_are_refused_with_frame_and_line(tmp_path, frames, pattern, replacement, fragment):
    lines = _good_extxyz(tmp_path, frames)
    assert lines[10] == "8" and re.search(pattern, lines[11])  # frame 1 starts at line 11
    lines[11] = re.sub(pattern, replacement, lines[11], count=1)
    path = tmp_path / "bad.extxyz"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as info:
        read(path)
    message = str(info.value)
    assert f"{path}, line 12 (frame 1):" in message, message
    assert fragment in message, message


def test_extxyz_frame_without_atoms_is_refused(tmp_path, frames):
    lines = _good_extxyz(tmp_path, frames) + ["0", 'energy=1.0 pbc="F F F"']
    path = tmp_path / "empty_frame.extxyz"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 21 (frame 2): structure has no atoms")):
        read(path)


# ------------------------------------------------------------------ validate


def test_validate_accepts_sane_structures(frames):
    for atoms in frames:
        assert validate(atoms) is None
    validate(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]))  # no cell, no pbc


def test_validate_empty():
    with pytest.raises(ValueError, match="no atoms"):
        validate(Atoms())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_validate_non_finite_position(bad):
    atoms = molecule("H2O")
    atoms.positions[2, 1] = bad
    with pytest.raises(ValueError, match="atom 2 has a non-finite position"):
        validate(atoms)


def test_validate_close_atoms():
    atoms = Atoms("H3", positions=[[0, 0, 0], [2, 0, 0], [2.05, 0, 0]])
    with pytest.raises(ValueError, match=r"atoms (1 and 2|2 and 1) are 0\.05 Å apart"):
        validate(atoms)
    validate(atoms, min_distance=0.01)


def test_validate_close_periodic_image():
    atoms = Atoms("Cu2", positions=[[0.02, 1, 1], [3.0, 1, 1]], cell=[3.0, 4.0, 4.0], pbc=True)
    with pytest.raises(ValueError, match=r"0\.02 Å apart \(periodic image"):
        validate(atoms)
    atoms.pbc = False  # no images: the atoms are 2.98 Å apart
    validate(atoms)


def test_validate_atom_close_to_its_own_image():
    atoms = Atoms("H", positions=[[0, 0, 0]], cell=[0.05, 5.0, 5.0], pbc=True)
    with pytest.raises(ValueError, match=r"atoms 0 and 0 are 0\.05 Å apart \(periodic image"):
        validate(atoms)


@pytest.mark.parametrize(
    "cell", [np.zeros((3, 3)), [[3, 0, 0], [0, 3, 0], [3, 3, 0]], [[3, 0, 0], [0, 3, 0], [0, 0, 1e-12]]]
)
def test_validate_degenerate_cell(cell):
    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 1, 0]], cell=cell, pbc=True)
    with pytest.raises(ValueError, match="cell volume"):
        validate(atoms)
    atoms.pbc = False
    validate(atoms)


@pytest.mark.parametrize("z", [0, -1, 119])
def test_validate_atomic_numbers(z):
    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]])
    atoms.numbers[1] = z
    with pytest.raises(ValueError, match=f"atom 1 has atomic number {z}"):
        validate(atoms)


def test_validate_names_the_structure():
    with pytest.raises(ValueError, match="frame 7 of x"):
        validate(Atoms(), name="frame 7 of x")


def test_read_shared_extxyz_with_stress(shared_dir, tmp_path):
    path = shared_dir / "datasets" / "mlearn" / "Si_test.extxyz"
    if not path.exists():
        pytest.skip(f"{path} not available")
    frames = read(path)
    assert len(frames) == 25
    for atoms in frames:
        assert atoms.pbc.all()
        assert atoms.get_forces().shape == (len(atoms), 3)
        assert atoms.get_stress().shape == (6,)
    # same values as ASE's own reader, and unchanged through our writer
    for a, b in zip(ase.io.read(path, ":"), frames):
        _assert_same(a, b, atol=0.0)
    write(tmp_path / "si.extxyz", frames)
    for a, b in zip(frames, read(tmp_path / "si.extxyz")):
        _assert_same(a, b, atol=0.0)


def test_validate_accepts_slab_with_zero_vacuum_vector():
    """pbc=(T, T, F) needs only the two periodic vectors to be independent."""
    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 1, 1]], cell=[[3, 0, 0], [0, 3, 0], [0, 0, 0]], pbc=(True, True, False))
    validate(atoms)
    atoms.cell[1] = [6, 0, 0]
    with pytest.raises(ValueError, match="cell volume"):
        validate(atoms)
