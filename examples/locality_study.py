"""Hessian locality study on Herbold & Behler's protocol (J. Chem. Phys. 156, 114106 (2022)), with GFN2-xTB.

Reference method: GFN2-xTB (tblite, ``accuracy=0.01``) instead of the
paper's RPBE-TS.  For each model system — hexadecane (HD),
hexadeca-octaene (HDOE), planar and orthogonal para-quinquephenyl (QPP,
QPO):

1. the geometry is optimised (BFGS, fmax ≤ 0.01 eV/Å).  HDOE and QPP are
   symmetrised onto the xy plane and kept there exactly (``FixedPlane``,
   normal z); in QPO rings 1, 3, 5 are put into the xy plane and rings 2, 4
   into the xz plane and held there (``FixedPlane`` normals z and y), the
   atoms on the long axis on it (``FixedLine`` along x), so the rings stay
   exactly orthogonal.  HD is optimised without constraints;
2. every coordinate is scaled by σ = 0.90, 0.95, …, 1.20;
3. reference atom A = the terminal carbon (HD: C1; HDOE: the terminal =CH2;
   QPP/QPO: the para CH of a terminal ring, on the long axis);
4. the fragments Y_g remove functional units one at a time from the far
   end (HD: CH2/CH3; HDOE: C2H2; QPP/QPO: rings), cut C–C bonds capped by H
   at 1.05 Å, bonds of A never cut (:mod:`jaxmlp.analysis.group_series`);
5. ``||Δf_A||``, ``||G′||`` per g; Γ = the largest ``||G′||`` compatible
   with ``||Δf|| ≤ 0.15 eV/Å`` at σ = 0.90 (linear interpolation between the
   last compliant and the first violating fragment, sorted by ``||G′||``:
   :func:`jaxmlp.analysis.locality.gamma`), and the smallest fragment the
   paper's Γ = 0.35 eV/Å² accepts at σ = 1.00.

Only A's Hessian row is needed: 6 force calls per structure.  Every force
call is cached on disk (``--cache``, default ``~/.cache/jaxmlp/locality_study``),
so an interrupted run resumes.  ``--variant radius`` runs the older
central-atom radius-cut series instead (full FD Hessians, much slower).

Run ``python examples/locality_study.py`` (fast: HDOE at σ = 0.90 and 1.00,
under a minute) or ``--full`` (four systems × seven σ; a few minutes on one
core).  Results: ``benchmarks/results/locality_study.json`` (full) or
``locality_study_fast.json``, figures ``docs/img/locality_*.png`` (full).
``--mof-cost`` times GFN2-xTB force calls on the paper's 214-atom 1D MOF-5
model (:func:`mof_1d_system`); ``--mof-1d`` runs its group-removal series
(:func:`mof_1d_units`; about 11 min on one core), written to
``benchmarks/results/locality_study_mof1d.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SYSTEMS = {
    "HD": "hexadecane.xyz",
    "HDOE": "hexadecaoctaene.xyz",
    "QPP": "quinquephenyl_planar.xyz",
    "QPO": "quinquephenyl_orthogonal.xyz",
}
UNIT_KIND = {"HD": "CH2", "HDOE": "C2H2", "QPP": "ring", "QPO": "ring"}
ALL_SIGMAS = [0.90, 0.95, 1.00, 1.05, 1.10, 1.15, 1.20]
ACCURACY = 0.01
XTB_TAG = f"GFN2-xTB tblite accuracy={ACCURACY}"

#: Herbold & Behler (2022), RPBE-TS: Γ at σ = 0.90 (Sec. IV.A.4; QPO: all
#: fragments converged), the smallest fragment Γ = 0.35 eV/Å² accepts at
#: σ = 1.00, and Table S1 (σ = 1.00): (||Δf||, ||G′||) per g.
PAPER = {
    "HD": {"gamma": 0.47, "smallest": {"g": 13, "name": "propane"},
           "table": [(0.0000, 0.01), (0.0001, 0.01), (0.0001, 0.01), (0.0001, 0.01), (0.0001, 0.01), (0.0001, 0.01),
                     (0.0002, 0.01), (0.0004, 0.01), (0.0007, 0.01), (0.0013, 0.01), (0.0027, 0.02), (0.0049, 0.02),
                     (0.0296, 0.08), (0.2184, 1.07)]},
    "HDOE": {"gamma": 0.37, "smallest": {"g": 5, "name": "hexatriene"},
             "table": [(0.0045, 0.02), (0.0124, 0.04), (0.0264, 0.07), (0.0532, 0.14), (0.1111, 0.29), (0.2663, 0.71),
                       (1.0192, 3.71)]},
    "QPP": {"gamma": 0.55, "smallest": {"g": 3, "name": "biphenyl"},
            "table": [(0.0003, 0.01), (0.0018, 0.02), (0.0113, 0.05), (0.1315, 0.48)]},
    "QPO": {"gamma": None, "smallest": {"g": 4, "name": "benzene"},
            "table": [(0.0000, 0.01), (0.0000, 0.01), (0.0002, 0.01), (0.0484, 0.26)]},
}


def shared_structures() -> pathlib.Path | None:
    """``../shared/data/structures`` (or ``$JAXMLP_SHARED/data/structures``) if present."""
    base = pathlib.Path(os.environ.get("JAXMLP_SHARED", ROOT.parent / "shared"))
    d = base / "data" / "structures"
    return d if d.is_dir() else None


def load_system(name: str):
    """The structure of a model system: shared file, else jaxmlp's own builders (HD, HDOE)."""
    import ase.io

    d = shared_structures()
    if d is not None and (d / SYSTEMS[name]).exists():
        return ase.io.read(d / SYSTEMS[name])
    from jaxmlp.data import generate

    if name == "HD":
        return generate.alkane(16)
    if name == "HDOE":
        return generate.polyene(16)
    raise FileNotFoundError(f"no structure for {name} without the shared data")


def xtb():
    from jaxmlp.data.label import xtb_calculator

    return xtb_calculator("GFN2-xTB", accuracy=ACCURACY)


def bond_pairs(atoms) -> np.ndarray:
    """Undirected bonds ``[B, 2]`` of the unscaled structure, reused at every σ."""
    from jaxmlp.analysis.fragments import detect_bonds

    b = detect_bonds(atoms)
    pairs = np.stack([b.i, b.j], 1)
    return pairs[pairs[:, 0] < pairs[:, 1]]


def symmetrise(name: str, atoms):
    """Put the molecule onto its exact symmetry planes and attach the constraints that keep it there."""
    from ase.constraints import FixedLine, FixedPlane

    from jaxmlp.analysis.fragments import units_along_chain

    atoms = atoms.copy()
    atoms.positions -= atoms.positions.mean(0)
    if name in ("HDOE", "QPP"):
        atoms.positions[:, 2] = 0.0
        atoms.set_constraint(FixedPlane(list(range(len(atoms))), (0, 0, 1)))
        return atoms, "all atoms on the xy plane, FixedPlane(normal z)"
    if name == "QPO":
        C = np.flatnonzero(atoms.numbers == 6)
        A = int(C[np.argmin(atoms.positions[C, 0])])
        rings = units_along_chain(atoms, A, "ring")
        P = atoms.positions
        axis = np.flatnonzero((np.abs(P[:, 1]) < 0.05) & (np.abs(P[:, 2]) < 0.05))
        in_xy, in_xz = [], []
        for ring in rings:
            flat_z = np.ptp(P[ring, 2]) < np.ptp(P[ring, 1])
            (in_xy if flat_z else in_xz).extend(a for a in ring if a not in axis)
        P[in_xy, 2] = 0.0
        P[in_xz, 1] = 0.0
        P[axis, 1:] = 0.0
        atoms.positions = P
        atoms.set_constraint([FixedPlane(in_xy, (0, 0, 1)), FixedPlane(in_xz, (0, 1, 0)), FixedLine(list(axis), (1, 0, 0))])
        return atoms, "rings 1, 3, 5 on xy (FixedPlane z), rings 2, 4 on xz (FixedPlane y), axial atoms FixedLine(x)"
    return atoms, "none"


def optimise(name: str, atoms, cache: pathlib.Path, fmax: float = 0.01, progress: bool = False):
    """GFN2-xTB geometry (cached on disk by the input geometry and settings)."""
    from ase import Atoms
    from ase.optimize import BFGS

    atoms, constraint = symmetrise(name, atoms)
    key = hashlib.sha256((XTB_TAG + f"fmax={fmax}" + constraint).encode() + atoms.positions.tobytes()
                         + atoms.numbers.tobytes()).hexdigest()[:16]
    path = cache / f"opt_{name}_{key}.npz"
    if path.exists():
        with np.load(path) as z:
            out = Atoms(z["numbers"], positions=z["positions"])
            info = json.loads(str(z["info"]))
        return out, {**info, "constraint": constraint, "from_cache": True}
    atoms.calc = xtb()
    t0 = time.perf_counter()
    opt = BFGS(atoms, logfile="-" if progress else None, maxstep=0.1)
    converged = bool(opt.run(fmax=fmax, steps=2000))
    info = {"steps": int(opt.nsteps), "converged": converged, "fmax": float(np.abs(atoms.get_forces()).max()),
            "energy_eV": float(atoms.get_potential_energy()), "seconds": time.perf_counter() - t0}
    if not converged:
        raise RuntimeError(f"{name}: geometry optimisation did not reach fmax {fmax} eV/Å in {opt.nsteps} steps")
    out = Atoms(atoms.numbers, positions=atoms.positions)  # exact float64 positions: the force cache keys on them
    from jaxmlp.utils import atomic_write

    atomic_write(path, lambda fh: np.savez(fh, numbers=out.numbers, positions=out.positions, info=json.dumps(info)),
                 binary=True, make_parents=True)
    return out, {**info, "constraint": constraint, "from_cache": False}


def reference_atom(name: str, atoms, bonds) -> int:
    """The paper's terminal reference carbon (the C at the −x end of the long axis)."""
    C = np.flatnonzero(atoms.numbers == 6)
    A = int(C[np.argmin(atoms.positions[C, 0])])
    partners = np.r_[bonds[bonds[:, 0] == A, 1], bonds[bonds[:, 1] == A, 0]]
    n_h = int(np.sum(atoms.numbers[partners] == 1))
    want = {"HD": 3, "HDOE": 2, "QPP": 1, "QPO": 1}[name]
    if n_h != want:
        raise ValueError(f"{name}: the terminal carbon {A} carries {n_h} H, expected {want}")
    return A


def scaled(atoms, sigma: float):
    out = atoms.copy()
    c = out.positions.mean(0)
    out.positions = c + sigma * (out.positions - c)
    return out


def study_system(name, sigmas, delta, cache, progress):
    from jaxmlp.analysis.fragments import units_along_chain
    from jaxmlp.analysis.group_series import ForceCache, group_series
    from jaxmlp.analysis.locality import distance_matrix

    t0 = time.perf_counter()
    atoms0, opt = optimise(name, load_system(name), cache, progress=progress)
    bonds = bond_pairs(atoms0)
    A = reference_atom(name, atoms0, bonds)
    units = units_along_chain(atoms0, A, UNIT_KIND[name], bonds=bonds)
    fc = ForceCache(cache / "forces", XTB_TAG)
    out = {"n_atoms": len(atoms0), "formula": atoms0.get_chemical_formula(), "reference_atom": A,
           "unit_kind": UNIT_KIND[name], "units": units, "optimisation": opt, "sigma": {}}
    sym = np.asarray(atoms0.get_chemical_symbols())
    calc = xtb()
    for sigma in sigmas:
        atoms = scaled(atoms0, sigma)
        ts = time.perf_counter()
        s = group_series(atoms, calc, A, units, delta=delta, cache=fc, progress=progress,
                         desc=f"{name} σ={sigma:.2f}", bonds=bonds)
        others = np.arange(len(atoms)) != A
        out["sigma"][f"{sigma:.2f}"] = {
            "force_full": s.force_full.tolist(),
            "rows": s.rows,
            "seconds": time.perf_counter() - ts,
            "h_row": {"distance": distance_matrix(atoms)[A][others].tolist(),
                      "norm": np.linalg.norm(s.row_full, axis=(1, 2))[others].tolist(),
                      "element": sym[others].tolist()},
        }
    out["force_calls"] = fc.calls
    out["force_cache_hits"] = fc.hits
    out["seconds"] = time.perf_counter() - t0
    print(f"{name}: {fc.calls} force calls, {fc.hits} from cache, {out['seconds']:.0f} s", flush=True)
    return out


def summary(result, tol: float, threshold: float = 0.35):
    """Γ at the smallest σ, over all σ, and the smallest fragment ``threshold`` accepts at σ = 1."""
    from jaxmlp.analysis.group_series import smallest_converged
    from jaxmlp.analysis.locality import gamma

    table = {}
    for name, sysres in result["systems"].items():
        sig = sysres["sigma"]
        smin = min(sig, key=float)
        rows_min = sig[smin]["rows"]
        rows_all = [r for e in sig.values() for r in e["rows"]]
        g_min = gamma([r["delta_f_norm"] for r in rows_min], [r["Gprime_norm"] for r in rows_min], tol)
        g_all = gamma([r["delta_f_norm"] for r in rows_all], [r["Gprime_norm"] for r in rows_all], tol)
        entry = {"sigma_min": float(smin), "gamma_sigma_min": None if np.isinf(g_min) else g_min,
                 "gamma_all_sigma": None if np.isinf(g_all) else g_all,
                 "all_converged_sigma_min": bool(np.isinf(g_min))}
        if "1.00" in sig:
            rows = sig["1.00"]["rows"]
            k = smallest_converged([r["Gprime_norm"] for r in rows], threshold)
            entry["smallest_accepted_sigma_1"] = None if k is None else {
                "g": rows[k]["g"], "formula": rows[k]["formula"], "delta_f_norm": rows[k]["delta_f_norm"],
                "Gprime_norm": rows[k]["Gprime_norm"]}
            bad = [r for r in rows if r["delta_f_norm"] > tol]
            entry["smallest_force_converged_sigma_1"] = (
                {"g": rows[-1]["g"], "formula": rows[-1]["formula"]} if not bad
                else ({"g": bad[0]["g"] - 1, "formula": rows[bad[0]["g"] - 2]["formula"]} if bad[0]["g"] > 1 else None))
        entry["paper"] = {k: v for k, v in PAPER.get(name, {}).items() if k != "table"}
        table[name] = entry
    return table


def xtb_beyond(result, rc_values=(3.0, 4.0, 5.0, 6.0)):
    """Largest xTB ``||h_AB||`` of A beyond 2·R_c at σ = 1 (``None``: no atom that far)."""
    out = {}
    for name, sysres in result["systems"].items():
        e = sysres["sigma"].get("1.00")
        if e is None:
            continue
        d, h = np.asarray(e["h_row"]["distance"]), np.asarray(e["h_row"]["norm"])
        out[name] = {f"2x{rc:g}A": (float(h[d > 2 * rc].max()) if np.any(d > 2 * rc) else None) for rc in rc_values}
    return out


def model_range():
    """Analytic Hessians of jaxmlp models are exactly zero beyond 2·R_c (HD at σ = 1, force-field geometry)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jaxmlp

    atoms = load_system("HD")
    out = {}
    models = {"morse_rc3": jaxmlp.models.morse(D=1.0, alpha=1.5, r0=1.4, cutoff=3.0)}
    from jaxmlp.descriptors import angular_set, radial_grid

    sf = radial_grid(["H", "C"], 3.0, 4) + angular_set(["H", "C"], 3.0, etas=(0.0,), zetas=(1.0, 4.0))
    models["hdnnp_rc3_untrained"] = jaxmlp.models.hdnnp(["H", "C"], sf, hidden=(10, 10))
    for key, model in models.items():
        g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
        params = model.init(jax.random.PRNGKey(0), g)
        r = jaxmlp.analysis.locality.force_range(model, params, atoms)
        sp = jaxmlp.sparse_hessian(model, params, g)
        dense = np.asarray(jaxmlp.hessian(model, params, g))
        out[key] = {**r._asdict(), "sparse_vs_dense_max_abs": float(np.abs(sp.to_dense() - dense).max())}
    return out


def _rel(f: pathlib.Path) -> str:
    try:
        return str(f.resolve().relative_to(ROOT))
    except ValueError:
        return str(f)


def plots(result, img: pathlib.Path, tol, prefix="locality"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    files = []
    systems = list(result["systems"])
    # Fig. 5: ||h_AB|| of the terminal carbon vs d_AB, B = C and B = H, σ = 1
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    for name in systems:
        e = result["systems"][name]["sigma"].get("1.00") or next(iter(result["systems"][name]["sigma"].values()))
        d, h, el = (np.asarray(e["h_row"][k]) for k in ("distance", "norm", "element"))
        for k, sym in enumerate(("C", "H")):
            sel = el == sym
            o = np.argsort(d[sel])
            ax[k].semilogy(d[sel][o], np.maximum(h[sel][o], 1e-6), "o-", ms=3, label=name)
    for k, sym in enumerate(("C", "H")):
        ax[k].set_title(f"GFN2-xTB ||h_AB||, B = {sym}, terminal C (σ = 1)")
        ax[k].set_xlabel("d_AB (Å)")
        ax[k].set_ylabel("||h_AB|| (eV/Å²)")
        ax[k].legend(fontsize=7)
    fig.tight_layout()
    f = img / f"{prefix}_decay.png"
    fig.savefig(f, dpi=110)
    plt.close(fig)
    files.append(_rel(f))
    # Fig. 7: ||G′|| vs ||Δf|| for every σ
    fig, axes = plt.subplots(1, len(systems), figsize=(3.8 * len(systems), 3.6), squeeze=False)
    cmap = plt.get_cmap("coolwarm")
    for ax, name in zip(axes[0], systems):
        sig = result["systems"][name]["sigma"]
        for s in sorted(sig, key=float):
            rows = sig[s]["rows"]
            c = cmap((float(s) - 0.9) / 0.3)
            ax.plot([r["delta_f_norm"] for r in rows], [r["Gprime_norm"] for r in rows], "o-", ms=3, color=c, label=f"σ={s}")
        g = result["summary"][name]["gamma_sigma_min"]
        ax.axvline(tol, color="k", lw=0.8, ls="--")
        if g is not None:
            ax.axhline(g, color="k", lw=0.8)
        paper = PAPER.get(name, {}).get("gamma")
        ttl = f"{name}: Γ = {g:.2f}" if g is not None else f"{name}: all ||Δf|| ≤ {tol}"
        ax.set_title(ttl + (f" (paper {paper})" if paper else ""), fontsize=9)
        ax.set_xlabel("||Δf_A|| (eV/Å)")
        ax.set_ylabel("||G′_A|| (eV/Å²)")
        ax.set_xlim(0, 0.6)
        ax.set_ylim(0, 2.0)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    f = img / f"{prefix}_gprime_vs_df.png"
    fig.savefig(f, dpi=110)
    plt.close(fig)
    files.append(_rel(f))
    return files


def radius_variant(systems, sigmas, delta, tol, progress):
    """The older central-carbon, radius-cut series (full FD Hessians; optional)."""
    import jaxmlp
    from jaxmlp.analysis.fragments import detect_groups, fragment_series
    from jaxmlp.analysis.locality import gamma

    out = {}
    for name in systems:
        atoms0 = load_system(name)
        bonds = bond_pairs(atoms0)
        groups = detect_groups(atoms0)
        C = np.flatnonzero(atoms0.numbers == 6)
        A = int(C[np.argmin(np.linalg.norm(atoms0.positions[C] - atoms0.positions[C].mean(0), axis=1))])
        d0 = np.linalg.norm(atoms0.positions - atoms0.positions[A], axis=1)
        out[name] = {"reference_atom": A, "sigma": {}}
        for sigma in sigmas:
            atoms = scaled(atoms0, sigma)
            calc = xtb()
            H = jaxmlp.fd_hessian(atoms, calc, delta=delta, progress=progress)
            radii = sigma * (np.unique(np.round(d0[(atoms0.numbers > 1) & (d0 > 0)], 3)) + 0.01)
            s = fragment_series(atoms, calc, A, radii=radii, hessian=H, delta=delta, bonds=bonds, groups=groups, keep_whole=False)
            g = gamma([r["delta_f_norm"] for r in s.rows], [r["Gprime_norm"] for r in s.rows], tol)
            out[name]["sigma"][f"{sigma:.2f}"] = {"rows": s.rows, "gamma": None if np.isinf(g) else g}
    return out


def mof_1d_system(cif_dir: pathlib.Path | None = None):
    """The paper's 1D MOF-5 model: six Zn4O SBUs along x joined by five BDC linkers, H-saturated.

    Cut from a 3×1×1 IRMOF-1 supercell: every atom within 4 Å of the SBU row
    axis (y = z = a/4) between the outer carboxylates.  The other linkers of
    each SBU keep only their carboxylate, capped by H at 1.05 Å on the cut
    C–C bond (formates, the paper's "SBU with six formate species"); the
    X-ray ring C–H (0.927 Å) are lengthened to 1.08 Å.  C66H46O78Zn24,
    214 atoms.
    """
    import ase.io
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    d = cif_dir or shared_structures()
    if d is None or not (d / "IRMOF-1.extxyz").exists():
        raise FileNotFoundError("IRMOF-1.extxyz not found in the shared structures")
    cell = ase.io.read(d / "IRMOF-1.extxyz")
    a = float(cell.cell.lengths()[0])
    sup = cell.repeat((3, 1, 1))
    P, Z = sup.positions, sup.numbers
    c0 = a / 4
    keep = (np.abs(P[:, 1] - c0) < 4.0) & (np.abs(P[:, 2] - c0) < 4.0) & (P[:, 0] > c0 - 4.0) & (P[:, 0] < c0 + 5 * a / 2 + 4.0)
    i, j, D = neighbor_list("ijD", sup, 1.8)
    numbers, pos = list(Z[keep]), list(P[keep])
    for x, y, v in zip(i, j, D):
        if keep[x] and not keep[y] and Z[x] == 6 and Z[y] == 6:
            numbers.append(1)
            pos.append(P[x] + 1.05 * v / np.linalg.norm(v))
    mol = Atoms(numbers, positions=pos)
    i, j, D = neighbor_list("ijD", mol, 1.0)
    for x, y, v in zip(i, j, D):
        if mol.numbers[x] == 6 and mol.numbers[y] == 1:
            mol.positions[y] = mol.positions[x] + 1.08 * v / np.linalg.norm(v)
    return mol


def mof_cost(repeats: int = 2) -> dict:
    """Seconds per GFN2-xTB force call on the 1D MOF-5 model (first call, then a displaced one)."""
    from jaxmlp.data.label import openmp_threads

    mol = mof_1d_system()
    calc = xtb()
    times = []
    with openmp_threads(1):
        for k in range(repeats):
            a = mol.copy()
            a.positions[0, 0] += 0.0025 * k
            t0 = time.perf_counter()
            a.calc = calc
            a.get_forces()
            times.append(time.perf_counter() - t0)
    return {"formula": mol.get_chemical_formula(), "n_atoms": len(mol), "seconds_per_force_call": times}


def mof_1d_units(mol, bonds=None):
    """Units of the 1D MOF-5 model ordered along +x, and the reference atom.

    Units: each SBU as one entity with its six carboxylate groups (Zn4O +
    6 × CO2, and the H of its formates) and each phenylene ring (C6H4).
    The reference atom is the C1 site (carboxylate carbon) of the leftmost
    SBU that is bonded to the first linker ring, so that ring is never
    removed: nine fragments, the smallest = SBU1 + phenyl.
    """
    from jaxmlp.analysis.fragments import detect_bonds, detect_groups

    b = detect_bonds(mol, bonds=bonds)
    adj = [set() for _ in range(len(mol))]
    for x, y in zip(b.i, b.j):
        adj[int(x)].add(int(y))
    Z, P = mol.numbers, mol.positions
    zn = set(np.flatnonzero(Z == 30).tolist())
    centres = [o for o in np.flatnonzero(Z == 8) if len(adj[o] & zn) == 4]
    rings = [g for g in detect_groups(mol, b, kinds=("rings",)) if len(g) == 6]
    units = []
    for o in centres:
        zns = adj[o] & zn
        oxy = {x for z in zns for x in adj[z] if Z[x] == 8 and x != o}
        carb = {c for x in oxy for c in adj[x] if Z[c] == 6}
        hyd = {h for c in carb for h in adj[c] if Z[h] == 1}
        units.append(sorted({int(o), *map(int, zns), *map(int, oxy), *map(int, carb), *map(int, hyd)}))
    for r in rings:
        units.append(sorted({*r, *(h for c in r for h in adj[c] if Z[h] == 1)}))
    units.sort(key=lambda u: P[u, 0].mean())
    first = set(units[0])
    ring1 = set(units[1])
    A = [c for c in first if Z[c] == 6 and adj[c] & ring1]
    if len(A) != 1 or len(centres) != 6 or len(rings) != 5:
        raise ValueError(f"1D MOF-5 model: expected 6 SBUs, 5 rings and one linker carboxylate C on SBU1, got "
                         f"{len(centres)}, {len(rings)}, {len(A)}")
    return units, int(A[0])


def mof_1d_series(cache: pathlib.Path, delta: float = 0.0025, progress: bool = True) -> dict:
    """The group-removal series on the 1D MOF-5 model (units removed from the +x end)."""
    from jaxmlp.analysis.group_series import ForceCache, group_series
    from jaxmlp.data.label import openmp_threads

    mol = mof_1d_system()
    bonds = bond_pairs(mol)
    units, A = mof_1d_units(mol, bonds)
    fc = ForceCache(cache / "forces", XTB_TAG)
    t0 = time.perf_counter()
    with openmp_threads(1):
        s = group_series(mol, xtb(), A, units, delta=delta, cache=fc, progress=progress, desc="MOF-5 1D", bonds=bonds)
    d = np.linalg.norm(mol.positions - mol.positions[A], axis=1)
    others = np.arange(len(mol)) != A
    return {"formula": mol.get_chemical_formula(), "n_atoms": len(mol), "reference_atom": A,
            "reference_site": "C1 (carboxylate C of SBU1 bonded to the first ring)", "units": units,
            "force_full": s.force_full.tolist(), "rows": s.rows,
            "h_row": {"distance": d[others].tolist(), "norm": np.linalg.norm(s.row_full, axis=(1, 2))[others].tolist(),
                      "element": np.asarray(mol.get_chemical_symbols())[others].tolist()},
            "force_calls": fc.calls, "force_cache_hits": fc.hits, "seconds": time.perf_counter() - t0}


def main(full: bool = False, systems=None, sigmas=None, delta: float = 0.0025, tol: float = 0.15,
         out: str | pathlib.Path | None = None, img: str | pathlib.Path | None = None, cache=None,
         progress: bool = False, variant: str = "groups", models: bool | None = None) -> dict:
    """Run the study; returns the result dict (also written as strict JSON)."""
    from jaxmlp.data.label import openmp_threads
    from jaxmlp.utils import write_json

    if variant not in ("groups", "radius"):
        raise ValueError(f"variant must be 'groups' or 'radius', got {variant!r}")
    systems = systems or (list(SYSTEMS) if full else ["HDOE"])
    sigmas = sigmas or (ALL_SIGMAS if full else [0.90, 1.00])
    tag = "" if full else "_fast"
    out = pathlib.Path(out or ROOT / "benchmarks" / "results" / f"locality_study{tag}.json")
    img = pathlib.Path(img or (ROOT / "docs" / "img" if full else out.parent))
    cache = pathlib.Path(cache or os.environ.get("JAXMLP_LOCALITY_CACHE", pathlib.Path.home() / ".cache" / "jaxmlp" / "locality_study"))
    t0 = time.perf_counter()
    result = {"reference": XTB_TAG, "protocol": "Herbold & Behler 2022: terminal C, group removal from the far end",
              "delta": delta, "force_tolerance": tol, "gamma_threshold": 0.35, "sigmas": sigmas, "systems": {}}
    with openmp_threads(1):
        if variant == "radius":
            result["radius_variant"] = radius_variant(systems, sigmas, delta, tol, progress)
        else:
            for name in systems:
                result["systems"][name] = study_system(name, sigmas, delta, cache, progress)
            result["summary"] = summary(result, tol)
            result["xtb_max_h_beyond_2rc"] = xtb_beyond(result)
            result["files"] = plots(result, img, tol, prefix="locality" if full else "locality_fast")
    if full if models is None else models:  # about a minute of jit compilation: full mode only by default
        result["jaxmlp_models"] = model_range()
    result["total_seconds"] = time.perf_counter() - t0
    write_json(out, result, indent=1)
    for name, v in result.get("summary", {}).items():
        sa = v.get("smallest_accepted_sigma_1")
        print(f"{name}: Γ(σ={v['sigma_min']:.2f}) = {v['gamma_sigma_min']} eV/Å² (paper {v['paper'].get('gamma')}); "
              f"Γ=0.35 accepts at σ=1: {sa and (sa['g'], sa['formula'])} (paper {v['paper'].get('smallest')})")
    print(f"done in {result['total_seconds']:.0f} s → {out}")
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="all four systems, σ = 0.90, 0.95, …, 1.20")
    p.add_argument("--systems", nargs="+", choices=list(SYSTEMS))
    p.add_argument("--sigmas", nargs="+", type=float)
    p.add_argument("--variant", choices=("groups", "radius"), default="groups",
                   help="groups: the paper's terminal-carbon group removal (default); radius: central carbon, radius cuts")
    p.add_argument("--cache", help="folder of cached force calls and optimised geometries")
    p.add_argument("--no-models", action="store_true", help="skip the jaxmlp model range check")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--mof-cost", action="store_true", help="only time GFN2-xTB force calls on the 214-atom 1D MOF-5 model")
    p.add_argument("--mof-1d", action="store_true", help="the group-removal series on the 1D MOF-5 model (about 20 min)")
    a = p.parse_args()
    if a.mof_cost:
        print(mof_cost())
        raise SystemExit(0)
    if a.mof_1d:
        from jaxmlp.utils import write_json

        c = pathlib.Path(a.cache or pathlib.Path.home() / ".cache" / "jaxmlp" / "locality_study")
        res = mof_1d_series(c, progress=a.progress)
        write_json(ROOT / "benchmarks" / "results" / "locality_study_mof1d.json", res, indent=1)
        for r in res["rows"]:
            print(r["g"], r["formula"], f"|Δf| = {r['delta_f_norm']:.4f} eV/Å, |G′| = {r['Gprime_norm']:.3f} eV/Å²")
        raise SystemExit(0)
    main(full=a.full, systems=a.systems, sigmas=a.sigmas, cache=a.cache, progress=a.progress, variant=a.variant,
         models=False if a.no_models else None)
