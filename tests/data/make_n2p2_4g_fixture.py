"""Generate ``n2p2_4g_reference.json``: n2p2's own 4G-HDNNP predictions for the tests of jaxmlp's 4G import.

Runs ``nnp-predict`` (an n2p2 build, not part of jaxmlp) on the example
potential ``../shared/data/n2p2/H2O_RPBE-D3_4G`` for a few structures and
keeps only the numbers it prints: total energy (Hartree), charges (e) and
forces (Hartree/Bohr), per atom in input order. No n2p2 file is copied into
the repository; the structures are rebuilt by the tests from the shared data
(the ``source`` entry says how).

Usage::

    python tests/data/make_n2p2_4g_fixture.py [--n2p2-bin DIR] [--shared DIR]

Structures
----------
``example_384``      the example's own ``input.data`` (384 atoms, periodic, Ewald)
``water_48``         structure 2 of ``configuration-sets/input.data.H2O_RPBE-D3`` (48 atoms, periodic)
``cluster_24``       the first 24 atoms of the example, no cell (direct sum)
``cluster_24_plus1`` the same with total charge +1 e
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from jaxmlp.utils import write_json  # noqa: E402


def _blocks(path: Path) -> list[list[str]]:
    """``begin``…``end`` blocks of an input.data as lists of stripped lines."""
    out, cur = [], None
    for line in path.read_text().splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "begin":
            cur = []
        elif f[0] == "end":
            out.append(cur)
            cur = None
        elif cur is not None:
            cur.append(line.strip())
    return out


def _structure(block, n_atoms=None, periodic=True, charge=None) -> str:
    atoms = [ln for ln in block if ln.startswith("atom")]
    lattice = [ln for ln in block if ln.startswith("lattice")]
    atoms = atoms if n_atoms is None else atoms[:n_atoms]
    total = 0.0 if charge is None else charge
    lines = ["begin", "comment jaxmlp 4G fixture"] + (lattice if periodic else []) + atoms
    lines += ["energy 0.0", f"charge {total!r}", "end"]
    return "\n".join(lines) + "\n"


def _run(bin_dir: Path, potential: Path, structure: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for f in potential.iterdir():
            if f.name != "input.data":
                shutil.copy(f, t / f.name)
        (t / "input.data").write_text(structure)
        subprocess.run([str(bin_dir / "nnp-predict"), "0"], cwd=t, check=True, capture_output=True)
        energy, charges, forces = None, [], []
        for line in (t / "output.data").read_text().splitlines():
            f = line.split()
            if f and f[0] == "energy":
                energy = float(f[1])
            elif f and f[0] == "atom":
                charges.append(float(f[5]))
                forces.append([float(x) for x in f[7:10]])
        return {"energy": energy, "charges": charges, "forces": forces}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n2p2-bin", type=Path, default=Path("/work/n2p2-build/n2p2/bin"))
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("n2p2_4g_reference.json"))
    args = ap.parse_args(argv)
    data = args.shared / "data" / "n2p2"
    potential = data / "H2O_RPBE-D3_4G"
    example = _blocks(potential / "input.data")[0]
    water = _blocks(data / "configuration-sets" / "input.data.H2O_RPBE-D3")[1]
    cases = {
        "example_384": (_structure(example), {"file": "n2p2/H2O_RPBE-D3_4G/input.data", "index": 0}),
        "water_48": (_structure(water), {"file": "n2p2/configuration-sets/input.data.H2O_RPBE-D3", "index": 1}),
        "cluster_24": (_structure(example, 24, periodic=False),
                       {"file": "n2p2/H2O_RPBE-D3_4G/input.data", "index": 0, "first_atoms": 24, "periodic": False}),
        "cluster_24_plus1": (_structure(example, 24, periodic=False, charge=1.0),
                             {"file": "n2p2/H2O_RPBE-D3_4G/input.data", "index": 0, "first_atoms": 24,
                              "periodic": False, "total_charge": 1.0}),
    }
    out = {"potential": "n2p2/H2O_RPBE-D3_4G", "units": "Bohr, Hartree, e (n2p2 file units)",
           "generator": "tests/data/make_n2p2_4g_fixture.py (nnp-predict of n2p2 61daa0df)", "structures": {}}
    for name, (text, source) in cases.items():
        res = _run(args.n2p2_bin, potential, text)
        out["structures"][name] = {"source": source, **res}
        print(f"{name}: {len(res['charges'])} atoms, E = {res['energy']!r} Ha")
    write_json(args.out, out, indent=1)


if __name__ == "__main__":
    main()
