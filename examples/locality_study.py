"""Hessian locality study after Herbold & Behler (J. Chem. Phys. 156, 114106 (2022)).

Reference: GFN2-xTB (tblite) Hessians by central finite differences
(δ = 0.0025 Å) of the paper's model systems — hexadecane (HD),
hexadeca-octaene (HDOE), planar and orthogonal para-quinquephenyl (QPP,
QPO) — at structural scalings σ (positions scaled about the centroid).  For
each system and σ:

* the decay of ``||h_AB||`` of the reference carbon with distance (C and H),
* the fragment series around the reference carbon: force error
  ``||Δf||`` of fragments of increasing radius versus ``||G′||`` of the
  excluded atoms (capping hydrogens at 1.05 Å, rings and double bonds kept
  whole),
* Γ for a force tolerance of 0.15 eV/Å.

Then the same Hessian analysis for jaxmlp models (Morse and, if available,
an HDNNP) shows ``h_AB = 0`` beyond ``2·R_c`` while the reference's are not.

Run ``python examples/locality_study.py`` (fast: HD and HDOE at σ = 0.90
and 1.00, reference atom in the chain centre, about a minute) or
``--full`` (all four systems, σ = 0.90, 0.95, 1.00, 1.10, 1.20, central and
terminal reference carbons; about 10 minutes on 2 cores).  Results:
``benchmarks/results/locality_study.json`` and plots in ``docs/img/``.
"""

from __future__ import annotations

import argparse
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


def shared_structures() -> pathlib.Path | None:
    """``../shared/data/structures`` (or ``$JAXMLP_SHARED/data/structures``) if present."""
    base = pathlib.Path(os.environ.get("JAXMLP_SHARED", ROOT.parent / "shared"))
    d = base / "data" / "structures"
    return d if d.is_dir() else None


def load_system(name: str):
    """The structure of a model system: shared file, else jaxmlp's own builders."""
    import ase.io

    d = shared_structures()
    if d is not None and (d / SYSTEMS[name]).exists():
        return ase.io.read(d / SYSTEMS[name])
    try:
        from jaxmlp.data import generate
    except ImportError as err:  # pragma: no cover - depends on checkout
        raise FileNotFoundError(f"no structure for {name}: shared data missing and jaxmlp.data.generate unavailable") from err
    if name == "HD":
        return generate.alkane(16)
    if name == "HDOE":
        return generate.polyene(16)
    raise FileNotFoundError(f"no structure for {name} without the shared data")


def reference_carbons(atoms) -> dict:
    """Central (closest to the carbon centroid) and terminal (farthest along x) carbons."""
    C = np.flatnonzero(atoms.numbers == 6)
    pc = atoms.positions[C]
    central = int(C[np.argmin(np.linalg.norm(pc - pc.mean(0), axis=1))])
    terminal = int(C[np.argmin(pc[:, 0])])
    return {"central": central, "terminal": terminal}


def scaled(atoms, sigma: float):
    out = atoms.copy()
    c = out.positions.mean(0)
    out.positions = c + sigma * (out.positions - c)
    return out


def xtb():
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", accuracy=0.1, verbosity=0)


def study_system(name, sigmas, refs, delta, progress):
    import jaxmlp
    from jaxmlp.analysis.fragments import detect_bonds

    atoms0 = load_system(name)
    bonds0 = detect_bonds(atoms0)
    bond_pairs = np.stack([bonds0.i, bonds0.j], 1)
    bond_pairs = bond_pairs[bond_pairs[:, 0] < bond_pairs[:, 1]]
    groups = jaxmlp.analysis.fragments.detect_groups(atoms0, bonds0)
    centres = reference_carbons(atoms0)
    out = {"n_atoms": len(atoms0), "formula": atoms0.get_chemical_formula(), "reference_atoms": {k: centres[k] for k in refs}, "sigma": {}}
    d0 = np.linalg.norm(atoms0.positions[:, None] - atoms0.positions[None], axis=-1)
    for sigma in sigmas:
        atoms = scaled(atoms0, sigma)
        calc = xtb()
        t0 = time.perf_counter()
        H = jaxmlp.fd_hessian(atoms, calc, delta=delta, progress=progress)
        t_h = time.perf_counter() - t0
        norms = jaxmlp.analysis.locality.block_norms(H)
        dist = jaxmlp.analysis.locality.distance_matrix(atoms)
        entry = {"hessian_seconds": t_h, "force_calls": 6 * len(atoms), "references": {}}
        for ref in refs:
            A = centres[ref]
            # radii: just beyond each distinct heavy-atom distance (σ = 1), scaled with σ
            dh = d0[A][(atoms0.numbers > 1) & (d0[A] > 0)]
            radii = sigma * (np.unique(np.round(dh, 3)) + 0.01)
            t0 = time.perf_counter()
            series = jaxmlp.analysis.fragments.fragment_series(
                atoms, calc, A, radii=radii, hessian=H, delta=delta, bonds=bond_pairs, groups=groups, keep_whole=False
            )
            others = np.arange(len(atoms)) != A
            entry["references"][ref] = {
                "atom": A,
                "force_full": series.force_full.tolist(),
                "series_seconds": time.perf_counter() - t0,
                "rows": series.rows,
                "h_decay": {
                    "distance": dist[A][others].tolist(),
                    "norm": norms[A][others].tolist(),
                    "element": np.asarray(atoms.get_chemical_symbols())[others].tolist(),
                },
            }
        out["sigma"][f"{sigma:.2f}"] = entry
        print(f"{name} σ={sigma:.2f}: FD Hessian {t_h:.1f} s ({6 * len(atoms)} force calls)", flush=True)
    return out


def gammas(result, tol):
    import jaxmlp

    table = {}
    for name, sysres in result["systems"].items():
        for ref in next(iter(sysres["sigma"].values()))["references"]:
            rows_all, rows_min = [], None
            smin = min(sysres["sigma"], key=float)
            for s, e in sysres["sigma"].items():
                rows = e["references"][ref]["rows"]
                rows_all += rows
                if s == smin:
                    rows_min = rows
            g_min = jaxmlp.analysis.locality.gamma([r["delta_f_norm"] for r in rows_min], [r["Gprime_norm"] for r in rows_min], tol)
            g_all = jaxmlp.analysis.locality.gamma([r["delta_f_norm"] for r in rows_all], [r["Gprime_norm"] for r in rows_all], tol)
            table[f"{name}/{ref}"] = {"sigma_min": float(smin), "gamma_sigma_min": g_min, "gamma_all_sigma": g_all}
    return table


def model_range(progress):
    """Analytic Hessians of jaxmlp models vs the xTB reference beyond 2·R_c (HD, σ = 1)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jaxmlp

    atoms = load_system("HD")
    out = {}
    models = {"morse_rc3": (jaxmlp.models.morse(D=1.0, alpha=1.5, r0=1.4, cutoff=3.0), None)}
    try:
        from jaxmlp.descriptors import angular_set, radial_grid

        rc = 3.0
        sf = radial_grid(["H", "C"], rc, 4) + angular_set(["H", "C"], rc, etas=(0.0,), zetas=(1.0, 4.0))
        models["hdnnp_rc3_untrained"] = (jaxmlp.models.hdnnp(["H", "C"], sf, hidden=(10, 10)), None)
    except (ImportError, AttributeError) as err:  # HDNNP not in this checkout
        out["hdnnp_note"] = f"HDNNP not included: {type(err).__name__}: {err}"
    for key, (model, params) in models.items():
        g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
        params = model.init(jax.random.PRNGKey(0), g) if params is None else params
        r = jaxmlp.analysis.locality.force_range(model, params, atoms)
        sp = jaxmlp.sparse_hessian(model, params, g)
        dense = np.asarray(jaxmlp.hessian(model, params, g))
        out[key] = {**r._asdict(), "sparse_vs_dense_max_abs": float(np.abs(sp.to_dense() - dense).max())}
    return out


def xtb_beyond(result, rc_values=(3.0, 4.0, 5.0, 6.0)):
    """Largest xTB ||h_AB|| beyond 2·R_c for the reference atoms (σ = 1)."""
    out = {}
    for name, sysres in result["systems"].items():
        e = sysres["sigma"].get("1.00")
        if e is None:
            continue
        for ref, r in e["references"].items():
            d, h = np.asarray(r["h_decay"]["distance"]), np.asarray(r["h_decay"]["norm"])
            out[f"{name}/{ref}"] = {f"2x{rc:g}A": float(h[d > 2 * rc].max(initial=0.0)) for rc in rc_values}
    return out


def _rel(f: pathlib.Path) -> str:
    try:
        return str(f.resolve().relative_to(ROOT))
    except ValueError:
        return str(f)


def plots(result, img: pathlib.Path, tol):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    files = []
    systems = list(result["systems"])
    refs = list(next(iter(result["systems"][systems[0]]["sigma"].values()))["references"])
    for ref in refs:
        fig, axes = plt.subplots(1, len(systems), figsize=(4 * len(systems), 3.6), squeeze=False)
        for ax, name in zip(axes[0], systems):
            for s, e in sorted(result["systems"][name]["sigma"].items()):
                rows = e["references"][ref]["rows"]
                ax.plot([r["delta_f_norm"] for r in rows], [r["Gprime_norm"] for r in rows], "o-", ms=3, label=f"σ={s}")
            g = result["gamma"][f"{name}/{ref}"]["gamma_sigma_min"]
            ax.axvline(tol, color="k", lw=0.8, ls="--")
            if np.isfinite(g):
                ax.axhline(g, color="k", lw=0.8)
            ax.set_title(f"{name} ({ref} C), Γ={g:.2f}" if np.isfinite(g) else f"{name} ({ref} C), all converged")
            ax.set_xlabel("||Δf_A|| (eV/Å)")
            ax.set_ylabel("||G′_A|| (eV/Å²)")
            ax.set_xlim(0, max(0.6, 2 * tol))
            ax.set_ylim(0, 2.0)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        f = img / f"locality_gprime_vs_df_{ref}.png"
        fig.savefig(f, dpi=110)
        plt.close(fig)
        files.append(_rel(f))
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
        for name in systems:
            e = result["systems"][name]["sigma"].get("1.00")
            if e is None:
                continue
            r = e["references"][ref]["h_decay"]
            d, h, el = np.asarray(r["distance"]), np.asarray(r["norm"]), np.asarray(r["element"])
            for k, sym in enumerate(("C", "H")):
                sel = el == sym
                o = np.argsort(d[sel])
                ax[k].semilogy(d[sel][o], np.maximum(h[sel][o], 1e-6), "o-", ms=3, label=name)
        for k, sym in enumerate(("C", "H")):
            ax[k].set_title(f"xTB ||h_AB||, B = {sym}, A = {ref} C (σ = 1)")
            ax[k].set_xlabel("d_AB (Å)")
            ax[k].set_ylabel("||h_AB|| (eV/Å²)")
            ax[k].legend(fontsize=7)
        fig.tight_layout()
        f = img / f"locality_decay_{ref}.png"
        fig.savefig(f, dpi=110)
        plt.close(fig)
        files.append(_rel(f))
    return files


def main(full: bool = False, systems=None, sigmas=None, refs=None, delta: float = 0.0025, tol: float = 0.15,
         out: str | pathlib.Path = ROOT / "benchmarks" / "results" / "locality_study.json",
         img: str | pathlib.Path = ROOT / "docs" / "img", progress: bool = False) -> dict:
    """Run the study; returns the result dict (also written as JSON)."""
    systems = systems or (list(SYSTEMS) if full else ["HD", "HDOE"])
    sigmas = sigmas or ([0.90, 0.95, 1.00, 1.10, 1.20] if full else [0.90, 1.00])
    refs = refs or (["central", "terminal"] if full else ["central"])
    t0 = time.perf_counter()
    result = {"reference": "GFN2-xTB (tblite, accuracy 0.1)", "delta": delta, "force_tolerance": tol,
              "sigmas": sigmas, "systems": {}}
    for name in systems:
        result["systems"][name] = study_system(name, sigmas, refs, delta, progress)
    result["gamma"] = gammas(result, tol)
    result["xtb_max_h_beyond_2rc"] = xtb_beyond(result)
    result["jaxmlp_models"] = model_range(progress)
    result["files"] = plots(result, pathlib.Path(img), tol)
    result["total_seconds"] = time.perf_counter() - t0
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    for k, v in result["gamma"].items():
        print(f"Γ {k}: σ_min={v['sigma_min']:.2f}: {v['gamma_sigma_min']:.3f} eV/Å², all σ: {v['gamma_all_sigma']:.3f} eV/Å²")
    print(f"done in {result['total_seconds']:.0f} s → {out}")
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="all systems, σ = 0.90–1.20, central and terminal carbons")
    p.add_argument("--progress", action="store_true")
    a = p.parse_args()
    main(full=a.full, progress=a.progress)
