"""float32 as users get it: JAX's default (x64 off) in a fresh process.

The test session enables x64 (conftest), so every other "float32" test runs
float32 arrays inside x64-enabled JAX. Here HDNNP and ml-ACE parameters are
saved from the float64 session, loaded by a subprocess with
``JAX_ENABLE_X64=0``, evaluated there in float32 (energy, forces, stress,
and the float32 defaults of ``check_model``) and compared with float64.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
from ase.io import write
from test_hdnnp import _make as make_hdnnp

import jaxmlp
from jaxmlp.models import mlace

from helpers import random_cell_atoms

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
import jax
import numpy as np
from ase.io import read
import jaxmlp
from jaxmlp.testing import check_model

assert not jax.config.jax_enable_x64
out = {}
for name in sys.argv[2:]:
    model, params = jaxmlp.load(f"{sys.argv[1]}/{name}.jaxmlp")
    atoms = read(f"{sys.argv[1]}/{name}.xyz")
    g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
    e, f, s = jax.jit(jaxmlp.energy_forces_stress, static_argnums=0)(model, params, g)
    report = check_model(model, params, atoms, checks=["rotation", "permutation", "fd_forces"])
    out[name] = {"dtypes": [str(e.dtype), str(f.dtype), str(s.dtype)] + sorted({str(x.dtype) for x in jax.tree.leaves(params)}),
                 "energy": float(e[0]), "forces": np.asarray(f, float).tolist(), "stress": np.asarray(s[0], float).tolist(),
                 "report": report}
print(json.dumps(out))
"""


def test_float32_in_a_fresh_process_without_x64(tmp_path):
    hd_atoms, hd_model, hd_params = make_hdnnp()
    ace_atoms = random_cell_atoms(8, np.array([[5.6, 0.0, 0.0], [1.0, 5.3, 0.0], [0.9, -0.7, 5.8]]), seed=1, min_dist=2.0, symbols=["Cu", "Ag"])
    ace_model = mlace(["Cu", "Ag"], cutoff=3.5, n_layers=2, l_max=(0, 2, 1), n_max=(3, 2, 2), k_max=2, n_radial=4, e0={"Cu": -0.5, "Ag": -0.3})
    ace_params = ace_model.init(jax.random.PRNGKey(1), jaxmlp.atoms_to_graph(ace_atoms, ace_model.cutoff))
    ace_params["layers"] = [{**l, "coeffs": 10.0 * l["coeffs"]} for l in ace_params["layers"]]  # indicators that vary
    ref = {}
    for name, model, params, atoms in (("hdnnp", hd_model, hd_params, hd_atoms), ("mlace", ace_model, ace_params, ace_atoms)):
        jaxmlp.save(tmp_path / f"{name}.jaxmlp", model, params)
        write(tmp_path / f"{name}.xyz", atoms, format="extxyz")
        g = jaxmlp.atoms_to_graph(atoms, model.cutoff, triplets=model.needs_triplets)
        e, f, s = jax.jit(jaxmlp.energy_forces_stress, static_argnums=0)(model, params, g)
        assert f.dtype == np.float64
        ref[name] = float(e[0]), np.asarray(f), np.asarray(s[0])
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), "hdnnp", "mlace"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, (e64, f64, s64) in ref.items():
        got = out[name]
        assert set(got["dtypes"]) == {"float32"}, got["dtypes"]
        # float32 rounding (eps ≈ 1.2e-7) relative to the scale of each quantity, with margin
        assert abs(got["energy"] - e64) < 1e-5 * abs(e64), (name, got["energy"], e64)
        assert np.abs(np.asarray(got["forces"]) - f64).max() < 1e-5 * np.abs(f64).max(), name
        assert np.abs(np.asarray(got["stress"]) - s64).max() < 1e-5 * np.abs(s64).max(), name
        assert np.abs(f64).max() > 5e-3 and np.abs(s64).max() > 1e-4  # non-trivial values were compared
        # check_model picks float32 tolerances and step sizes by itself
        assert got["report"]["dtype"] == "float32" and got["report"]["checks"] == ["rotation", "permutation", "fd_forces"]
