"""Group-removal fragment series (Herbold & Behler's model-system protocol) on analytic models."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

import jaxmlp
from jaxmlp.analysis.fragments import group_removal_fragments, remove_units, units_along_chain
from jaxmlp.analysis.group_series import ForceCache, group_series, hessian_row, smallest_converged
from jaxmlp.analysis.locality import gamma
from jaxmlp.data.generate import alkane, biphenyl, polyene


def _morse_calc(cutoff=3.0):
    model = jaxmlp.models.morse(D=1.0, alpha=1.5, r0=1.4, cutoff=cutoff)
    return jaxmlp.Calculator(model, model.init(None), skin=0.3)


def _rattled(atoms, seed=0, scale=0.05):
    out = atoms.copy()
    out.positions += np.random.default_rng(seed).normal(scale=scale, size=out.positions.shape)
    return out


def test_hessian_row_matches_analytic_row():
    atoms = _rattled(alkane(4))
    calc = _morse_calc()
    H = calc.get_hessian(atoms.copy())
    for A in (0, 5):
        row = hessian_row(atoms, calc, A, delta=0.0025)
        exact = H[3 * A : 3 * A + 3].reshape(3, len(atoms), 3).transpose(1, 0, 2)
        assert np.abs(exact).max() > 1.0  # a row with real couplings
        np.testing.assert_allclose(row, exact, atol=2e-5 * np.abs(exact).max())
    with pytest.raises(ValueError, match="out of range"):
        hessian_row(atoms, calc, len(atoms))
    with pytest.raises(ValueError, match="delta"):
        hessian_row(atoms, calc, 0, delta=0.0)


def test_alkane_units_fragments_and_caps():
    atoms = alkane(5)  # pentane, A = C1 (index 0)
    units = units_along_chain(atoms, 0, "CH2")
    assert [len(u) for u in units] == [4, 3, 3, 3, 4]  # CH3, CH2, CH2, CH2, CH3
    assert [sorted(atoms.numbers[u]).count(6) for u in units] == [1] * 5
    frags = group_removal_fragments(atoms, 0, units)
    assert [f.get_chemical_formula() for f in frags] == ["C4H10", "C3H8", "C2H6"]  # down to ethane: A's C–C bond is kept
    for g, frag in enumerate(frags, start=1):
        assert frag.info["n_removed_units"] == g
        assert frag.info["removed"] == sorted(x for u in units[-g:] for x in u)
        caps = frag.saturating
        assert len(caps) == 1
        kept_c = frag.arrays["cap_bonded_to"][caps[0]]
        gone_c = frag.arrays["cap_replaces"][caps[0]]
        assert atoms.numbers[kept_c] == 6 and atoms.numbers[gone_c] == 6
        u = atoms.positions[gone_c] - atoms.positions[kept_c]
        v = frag.positions[caps[0]] - atoms.positions[kept_c]
        assert np.linalg.norm(v) == pytest.approx(1.05, abs=1e-12)
        assert np.cross(u, v) == pytest.approx(np.zeros(3), abs=1e-12)  # on the broken bond
        assert u @ v > 0
        assert frag.positions[frag.center] == pytest.approx(atoms.positions[0])
    with pytest.raises(ValueError, match="cuts a bond of the reference atom"):
        remove_units(atoms, 0, units, 4)


def test_polyene_and_ring_units():
    atoms = polyene(6)  # hexatriene, units C2H3, C2H2, C2H3
    A = int(np.argmin(np.where(atoms.numbers == 6, atoms.positions[:, 0], np.inf)))
    units = units_along_chain(atoms, A, "C2H2")
    assert [len(u) for u in units] == [5, 4, 5]
    frags = group_removal_fragments(atoms, A, units)
    assert [f.get_chemical_formula() for f in frags] == ["C4H6", "C2H4"]  # butadiene, ethylene
    with pytest.raises(ValueError, match="not a chain end"):
        units_along_chain(atoms, int(units[1][0]) if atoms.numbers[units[1][0]] == 6 else int(units[1][1]), "CH2")
    bp = biphenyl(dihedral=0.0)
    C = np.flatnonzero(bp.numbers == 6)
    A = int(C[np.argmin(bp.positions[C, 0])])
    rings = units_along_chain(bp, A, "ring")
    assert [len(r) for r in rings] == [11, 11] and A in rings[0]
    (benzene,) = group_removal_fragments(bp, A, rings)
    assert benzene.get_chemical_formula() == "C6H6" and len(benzene.saturating) == 1
    with pytest.raises(ValueError, match="kind"):
        units_along_chain(bp, A, "CH3")
    with pytest.raises(ValueError, match="overlap"):
        remove_units(bp, A, [rings[0], rings[1] + [rings[0][0]]], 1)


def test_series_matches_sums_by_hand():
    """Δf, G and G′ recomputed from analytic Hessians of the full system and of each fragment."""
    atoms = _rattled(alkane(5), seed=1, scale=0.03)
    calc = _morse_calc(cutoff=3.0)  # a pair potential: h_AB = 0 beyond R_c = 3 Å (C1–C3 2.5 Å, C1–C5 5.1 Å)
    units = units_along_chain(atoms, 0, "CH2")
    series = group_series(atoms, calc, 0, units, delta=0.0025)
    assert [r["g"] for r in series.rows] == [1, 2, 3]
    H = calc.get_hessian(atoms.copy())
    f_full = calc.get_forces(atoms.copy())[0]
    assert series.force_full == pytest.approx(f_full, abs=1e-12)
    nontrivial = 0
    for row, frag in zip(series.rows, series.fragments):
        removed = frag.info["removed"]
        G = sum(H[0:3, 3 * b : 3 * b + 3] for b in removed)
        fa = frag.atoms
        Hf = calc.get_hessian(fa.copy())
        c = frag.center
        caps = frag.saturating
        Gp = G - sum(Hf[3 * c : 3 * c + 3, 3 * b : 3 * b + 3] for b in caps)
        df = f_full - calc.get_forces(fa.copy())[c]
        scale = max(1.0, np.linalg.norm(G))
        assert row["G_norm"] == pytest.approx(np.linalg.norm(G), abs=1e-4 * scale)
        assert row["Gprime_norm"] == pytest.approx(np.linalg.norm(Gp), abs=1e-4 * scale)
        assert np.asarray(row["delta_f"]) == pytest.approx(df, abs=1e-12)
        assert row["n_removed"] == len(removed) and row["n_caps"] == len(caps) == 1
        nontrivial += np.linalg.norm(Gp) > 1e-3
    assert nontrivial >= 1  # the smallest fragment (ethane) lost C3, within R_c of C1
    # a strictly local model: a group beyond its range changes nothing
    far = series.rows[0]
    assert far["removed_max_distance"] > 4.0 and far["delta_f_norm"] < 1e-10 and far["G_norm"] < 1e-6
    assert series.rows[-1]["delta_f_norm"] > 1e-3


class _Counting(Calculator):
    implemented_properties = ["energy", "forces"]

    def __init__(self):
        super().__init__()
        self.n = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.n += 1
        d = self.atoms.positions - self.atoms.positions.mean(0)
        self.results = {"energy": 0.5 * float((d**2).sum()), "forces": -d}


def test_force_cache_resumes_from_disk(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]])
    calc = _Counting()
    row = hessian_row(atoms, calc, 0, cache=ForceCache(tmp_path, "harmonic"))
    assert calc.n == 6 and len(list(tmp_path.glob("*.npy"))) == 6
    again = hessian_row(atoms, calc, 0, cache=ForceCache(tmp_path, "harmonic"))
    assert calc.n == 6 and np.array_equal(row, again)  # all from disk
    # E = ½|R − R̄|²: h_00 = (1 − 1/2)·I, h_01 = −½·I
    assert row[0] == pytest.approx(0.5 * np.eye(3), abs=1e-8)
    assert row[1] == pytest.approx(-0.5 * np.eye(3), abs=1e-8)
    moved = atoms.copy()
    moved.positions[1, 0] += 1e-12
    c = ForceCache(tmp_path, "harmonic")
    assert c.key(moved) != c.key(atoms) and c.key(atoms) != ForceCache(tmp_path, "other").key(atoms)


def test_gamma_on_paper_table_and_smallest_fragment():
    # Table S1 of the paper, HDOE at σ = 1.00: (||G′||, ||Δf||) for g = 1..7
    gp = [0.02, 0.04, 0.07, 0.14, 0.29, 0.71, 3.71]
    df = [0.0045, 0.0124, 0.0264, 0.0532, 0.1111, 0.2663, 1.0192]
    # linear interpolation between g = 5 (last compliant) and g = 6 (first violating)
    assert gamma(df, gp, 0.15) == pytest.approx(0.29 + (0.15 - 0.1111) * (0.71 - 0.29) / (0.2663 - 0.1111))
    assert smallest_converged(gp, 0.35) == 4  # g = 5: hexatriene, as in the paper
    hd = [0.01] * 10 + [0.02, 0.02, 0.08, 1.07]
    assert smallest_converged(hd, 0.35) == 12  # g = 13: propane
    assert smallest_converged([0.5, 0.1], 0.35) is None
    assert smallest_converged([0.1, 0.4, 0.2], 0.35) == 0  # the first violation ends the accepted run
    with pytest.raises(ValueError):
        smallest_converged([0.1, -1.0])
