"""Graph-build cost: jaxmlp vs bare neighbour lists of vesin, matscipy and ASE.

Periodic fcc Cu supercells of about 2k, 16k and 128k atoms, R_c = 6 Å.
For each size we time (best of ``--repeat``):

* ``vesin``, ``matscipy``, ``ase``: the library's bare full neighbour list
  (i, j, shift), which is what a graph needs;
* ``jaxmlp_pairs``: ``atoms_to_graph(..., triplets=False, validate=False)``;
* ``jaxmlp_graph``: ``atoms_to_graph(..., triplets=False)`` with validation;
* ``jaxmlp_triplets``: ``atoms_to_graph(..., triplets=True)``, everything.

Ratios are against the fastest bare list measured in the same run.
Results: ``benchmarks/results/neighbours.json``.

Usage: ``python benchmarks/neighbours.py [--quick] [--sizes 2048 16384]``
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

from ase.build import bulk

import jaxmlp


def cu_supercell(n_target: int):
    reps = max(1, round((n_target / 4) ** (1 / 3)))
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((reps, reps, reps))
    atoms.rattle(0.05, seed=0)
    return atoms


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def bare_lists(atoms, cutoff):
    import vesin

    fns = {}

    def v():
        nl = vesin.NeighborList(cutoff=cutoff, full_list=True)
        return nl.compute(points=atoms.positions, box=atoms.cell.array, periodic=True, quantities="ijS")[0].size

    fns["vesin"] = v
    try:
        from matscipy.neighbours import neighbour_list as msp

        fns["matscipy"] = lambda: msp("ijS", atoms, cutoff)[0].size
    except ImportError:  # pragma: no cover - optional
        pass
    from ase.neighborlist import neighbor_list as ase_nl

    fns["ase"] = lambda: ase_nl("ijS", atoms, cutoff)[0].size
    return fns


def main(sizes=(2048, 16384, 131072), cutoff=6.0, repeat=3, skip_ase_above=20000, out=None):
    results = {"cutoff": cutoff, "machine": platform.processor() or platform.machine(), "rows": []}
    for n in sizes:
        atoms = cu_supercell(n)
        row = {"n_atoms": len(atoms)}
        for name, fn in bare_lists(atoms, cutoff).items():
            if name == "ase" and len(atoms) > skip_ase_above:
                continue
            row[name], n_pairs = best_time(fn, 1 if name == "ase" else repeat)
            row["n_pairs"] = int(n_pairs)
        row["jaxmlp_pairs"], _ = best_time(lambda a=atoms: jaxmlp.atoms_to_graph(a, cutoff, validate=False), repeat)
        row["jaxmlp_graph"], _ = best_time(lambda a=atoms: jaxmlp.atoms_to_graph(a, cutoff), repeat)
        row["jaxmlp_triplets"], g = best_time(lambda a=atoms: jaxmlp.atoms_to_graph(a, cutoff, triplets=True), 1)
        row["n_triplets"] = int(len(g.globals["triplets"]))
        del g
        fastest = min(row[k] for k in ("vesin", "matscipy", "ase") if k in row)
        for k in ("jaxmlp_pairs", "jaxmlp_graph", "jaxmlp_triplets", "vesin", "matscipy", "ase"):
            if k in row:
                row[f"ratio_{k}"] = row[k] / fastest
        results["rows"].append(row)
        print(json.dumps(row))
    out = pathlib.Path(out or pathlib.Path(__file__).parent / "results" / "neighbours.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 16384, 131072])
    ap.add_argument("--cutoff", type=float, default=6.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="sizes 2048 and 16384 only")
    args = ap.parse_args()
    sizes = [2048, 16384] if args.quick else args.sizes
    main(sizes, args.cutoff, args.repeat)
