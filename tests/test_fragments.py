"""Fragment cutting: whole rings, H caps at 1.05 Å, periodic unwrapping, determinism, series."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

import jaxmlp
from jaxmlp.analysis.fragments import cut, detect_groups, fragment_series


def _biphenyl():
    """Planar biphenyl from two ideal rings (C–C 1.39, inter-ring 1.48, C–H 1.08 Å)."""
    ang = np.radians(60.0 * np.arange(6))
    ring_c = 1.39 * np.stack([np.cos(ang), np.sin(ang), 0 * ang], 1)
    ring_h = 2.47 * np.stack([np.cos(ang), np.sin(ang), 0 * ang], 1)
    shift = np.array([2 * 1.39 + 1.48, 0, 0])
    c = np.r_[ring_c, shift - ring_c]
    h = np.r_[ring_h[1:], shift - ring_h[1:]]  # no H on the two bonded carbons (angle 0)
    return Atoms("C12H10", positions=np.r_[c, h])


def test_rings_kept_whole_and_caps_at_105():
    mol = _biphenyl()
    groups = detect_groups(mol)
    rings = [g for g in groups if len(g) == 6]
    assert len(rings) == 2 and all(np.all(mol.numbers[g] == 6) for g in rings)
    centre = 3  # para carbon of the first ring (its bonds stay inside the ring)
    # a radius reaching only part of the second ring: the ring comes in whole
    d = np.linalg.norm(mol.positions - mol.positions[centre], axis=1)
    r = float(np.sort(d[rings[1]])[0]) + 0.05
    frag = cut(mol, centre, r)
    parents = set(frag.parent_indices[frag.parent_indices >= 0].tolist())
    for ring in rings:
        inside = [a in parents for a in ring]
        assert all(inside) or not any(inside)
    # a radius within the first ring cuts the inter-ring bond: one cap at 1.05 Å on the bond axis
    frag = cut(mol, centre, 2.9)
    assert set(rings[0]) <= set(frag.parent_indices.tolist())
    assert not set(rings[1]) & set(frag.parent_indices.tolist())
    assert len(frag.saturating) == 1
    b = int(frag.saturating[0])
    kept = int(frag.arrays["cap_bonded_to"][b])
    gone = int(frag.arrays["cap_replaces"][b])
    j = int(np.flatnonzero(frag.parent_indices == kept)[0])
    v = frag.positions[b] - frag.positions[j]
    assert np.linalg.norm(v) == pytest.approx(1.05)
    u = mol.positions[gone] - mol.positions[kept]
    assert np.allclose(v / np.linalg.norm(v), u / np.linalg.norm(u))
    assert frag.get_chemical_formula() == "C6H6"
    assert frag.center == int(np.flatnonzero(frag.parent_indices == centre)[0])


def test_alkane_caps_hydrogens_and_custom_lengths():
    # n-pentane zig-zag
    from ase.build import molecule as m

    mol = m("C3H8")
    carbons = np.flatnonzero(mol.numbers == 6)
    dcc = np.linalg.norm(mol.positions[carbons][:, None] - mol.positions[carbons][None], axis=-1)
    mid = int(carbons[np.argmin(dcc.sum(1))])
    end = int(carbons[np.argmax(dcc.sum(1))])
    frag = cut(mol, mid, 1.6)  # central carbon keeps its bonds: whole propane
    assert len(frag) == len(mol) and len(frag.saturating) == 0
    frag = cut(mol, end, 1.6, bond_lengths={"C": 1.10})  # terminal carbon: the far CH3 replaced by H
    assert frag.get_chemical_formula() == "C2H6"
    b = frag.saturating[0]
    j = int(np.flatnonzero(frag.parent_indices == frag.arrays["cap_bonded_to"][b])[0])
    assert np.linalg.norm(frag.positions[b] - frag.positions[j]) == pytest.approx(1.10)
    # deterministic
    again = cut(mol, end, 1.6, bond_lengths={"C": 1.10})
    assert np.array_equal(again.positions, frag.positions) and np.array_equal(again.numbers, frag.numbers)


def test_carboxylate_and_user_groups():
    # acetate-like fragment: CH3-COO with the carboxylate detected as a group
    mol = Atoms("CCOOHHH", positions=[[0, 0, 0], [1.52, 0, 0], [2.15, 1.08, 0], [2.15, -1.08, 0],
                                       [-0.36, 1.0, 0], [-0.36, -0.5, 0.87], [-0.36, -0.5, -0.87]])
    groups = detect_groups(mol)
    assert [1, 2, 3] in groups
    frag = cut(mol, 0, 1.6)
    assert {1, 2, 3} <= set(frag.parent_indices.tolist())
    # a user group pulls in atoms beyond the radius
    chain = Atoms("C4", positions=[[1.5 * k, 0, 0] for k in range(4)])
    frag = cut(chain, 0, 1.6, keep_whole=False, groups=[[2, 3]])
    assert set(frag.parent_indices[frag.parent_indices >= 0].tolist()) == {0, 1}
    frag = cut(chain, 0, 3.1, keep_whole=False, groups=[[2, 3]])
    assert set(frag.parent_indices[frag.parent_indices >= 0].tolist()) == {0, 1, 2, 3}


def test_periodic_crystal_unwrapped():
    crystal = bulk("C", "diamond", a=3.567)  # 2 atoms, cell much smaller than the sphere
    frag = cut(crystal, 0, 2.7, keep_whole=False)
    assert not frag.pbc.any()
    heavy = frag.parent_indices >= 0
    # 1 + 4 + 12 carbons within 2.7 Å in diamond (shells at 1.54, 2.52, 2.96 Å)
    assert heavy.sum() == 17
    assert set(frag.parent_indices[heavy].tolist()) == {0, 1}
    d = np.linalg.norm(frag.positions[heavy] - frag.positions[frag.center], axis=1)
    assert d.max() < 2.7
    # every outer carbon has 4 bonds: kept neighbours plus caps; caps at 1.05 Å
    for b in frag.saturating:
        j = int(np.argmin(np.linalg.norm(frag.positions[heavy] - frag.positions[b], axis=1)))
        assert np.linalg.norm(frag.positions[heavy][j] - frag.positions[b]) == pytest.approx(1.05)
    assert len(frag.saturating) == 12 * 3


def test_cut_errors():
    mol = molecule("C2H6")
    with pytest.raises(ValueError, match="out of range"):
        cut(mol, 99, 3.0)
    with pytest.raises(ValueError, match="too small"):
        cut(mol, 0, 0.5)
    with pytest.raises(ValueError, match="positive"):
        cut(mol, 0, -1.0)
    with pytest.raises(ValueError, match="unknown element"):
        cut(mol, 0, 3.0, bond_lengths={"Xx": 1.0})
    with pytest.raises(ValueError, match="group"):
        cut(mol, 0, 3.0, groups=[[0, 100]])


def test_fragment_series_with_jaxmlp_model():
    """Δf and G′ for a strictly local model: both vanish once the fragment holds all atoms within R_c."""
    model = jaxmlp.models.morse(D=1.0, alpha=1.5, r0=1.5, cutoff=2.2)
    params = model.init(None)
    # a saturated C6 chain
    chain = Atoms("C6", positions=[[1.27 * k, 0.8 * (k % 2), 0] for k in range(6)])
    calc = jaxmlp.Calculator(model, params, skin=0.3)
    series = fragment_series(chain, calc, 0, radii=[6.0, 4.5, 3.2, 1.6], keep_whole=False)
    assert len(series.rows) >= 2
    # every row recomputed by hand: Δf from two force calls, G from the full
    # Hessian over the excluded atoms, G′ = G − Σ_b h_Ab with the caps' blocks
    H = calc.get_hessian(chain.copy())
    chain.calc = calc
    f_full = chain.get_forces()[0]
    for row, frag in zip(series.rows, series.fragments):
        excluded = sorted(set(range(len(chain))) - set(frag.parent_indices.tolist()))
        assert row["n_excluded"] == len(excluded) > 0
        G = sum(H[0:3, 3 * b : 3 * b + 3] for b in excluded)
        fa = frag.copy()
        fa.calc = calc
        Hf = calc.get_hessian(fa)
        A = frag.center
        G_prime = G - sum(Hf[3 * A : 3 * A + 3, 3 * b : 3 * b + 3] for b in frag.saturating)
        assert row["G_norm"] == pytest.approx(np.linalg.norm(G), abs=1e-10)
        assert row["Gprime_norm"] == pytest.approx(np.linalg.norm(G_prime), abs=1e-10)
        assert row["delta_f_norm"] == pytest.approx(np.linalg.norm(f_full - fa.get_forces()[A]), abs=1e-10)
    big = series.rows[0]
    assert big["delta_f_norm"] < 1e-9 and big["G_norm"] < 1e-9  # excluded atoms beyond R_c
    small = series.rows[-1]
    # only the cap (H on the cut bond, 1.05 Å from atom 1) is within R_c of atom 0: G = 0 but G′ = −h_Ab ≠ 0
    assert small["delta_f_norm"] > 1e-3 and small["G_norm"] < 1e-12 and small["Gprime_norm"] > 1e-3
    gam = jaxmlp.analysis.locality.gamma([r["delta_f_norm"] for r in series.rows], [r["Gprime_norm"] for r in series.rows], 1e-3)
    assert 0 < gam < small["Gprime_norm"]
    with pytest.raises(ValueError, match="finite"):
        fragment_series(bulk("Cu"), calc, 0)


def test_paper_model_systems_groups(shared_dir):
    import ase.io

    qpp = ase.io.read(shared_dir / "structures" / "quinquephenyl_planar.xyz")
    hdoe = ase.io.read(shared_dir / "structures" / "hexadecaoctaene.xyz")
    rings = [g for g in detect_groups(qpp) if len(g) == 6]
    assert len(rings) == 5
    assert len([g for g in detect_groups(hdoe) if len(g) == 2]) == 8  # the eight C=C
    c = np.flatnonzero(qpp.numbers == 6)
    centre = int(c[np.argmin(np.linalg.norm(qpp.positions[c] - qpp.positions[c].mean(0), axis=1))])
    for radius in (2.0, 3.5, 5.0, 7.5):
        frag = cut(qpp, centre, radius)
        parents = set(frag.parent_indices.tolist())
        assert all(set(r) <= parents or not set(r) & parents for r in rings)
        for b in frag.saturating:
            j = int(np.flatnonzero(frag.parent_indices == frag.arrays["cap_bonded_to"][b])[0])
            assert np.linalg.norm(frag.positions[b] - frag.positions[j]) == pytest.approx(1.05)


def _brute_force_sphere(atoms, center, radius, m=8):
    """(atom, image) pairs within ``radius`` of ``center``: explicit loop over ±m cells per periodic axis."""
    import itertools

    cell = np.where(atoms.pbc[:, None], atoms.cell.array, 0.0)
    R = atoms.positions
    out = set()
    ranges = [range(-m, m + 1) if p else range(1) for p in atoms.pbc]
    for s in itertools.product(*ranges):
        d = np.linalg.norm(R + np.asarray(s) @ cell - R[center], axis=1)
        out |= {(int(b), s) for b in np.flatnonzero(d < radius)}
    return out


@pytest.mark.parametrize("third", ["zero", "vacuum"])
def test_2d_periodic_sphere_matches_brute_force(third):
    """Graphene with a zero third cell vector used to lose atoms (148 of 169 at 12 Å)."""
    from ase.build import graphene

    sheet = graphene(size=(2, 2, 1), vacuum=None if third == "zero" else 7.5)
    sheet.pbc = (True, True, False)
    if third == "zero":
        sheet.cell[2] = 0.0
    assert np.allclose(sheet.cell[2], 0.0) == (third == "zero")
    radius = 12.0
    frag = cut(sheet, 0, radius, keep_whole=False)
    heavy = frag.parent_indices >= 0
    expected = _brute_force_sphere(sheet, 0, radius)
    assert int(heavy.sum()) == len(expected) == 169
    # the same atoms at the same (unwrapped) places
    R = sheet.positions
    want = sorted(tuple(np.round(R[b] + np.asarray(s) @ sheet.cell.array, 6)) for b, s in expected)
    got = sorted(tuple(np.round(p, 6)) for p in frag.positions[heavy])
    np.testing.assert_allclose(got, want, atol=1e-6)
