"""``jaxmlp-bench`` end to end on tiny built-in defaults; bad arguments fail cleanly."""

import json

import numpy as np
import pytest
from ase.io import write

from jaxmlp.bench.cli import main


def run(tmp_path, *args):
    out = tmp_path / "out"
    assert main(["--out", str(out), "--no-progress", *args]) == 0
    return out


def _reject(constant):
    raise AssertionError(f"invalid JSON constant {constant} (NaN/Infinity are not JSON)")


def load(path):
    data = json.loads(path.read_text(), parse_constant=_reject)
    assert isinstance(data, dict)
    return data


def test_speed(tmp_path):
    out = run(tmp_path, "speed", "--models", "lj", "morse", "--sizes", "32", "--repeat", "1", "--hessian")
    rows = load(out / "speed.json")["rows"]
    assert {r["model"] for r in rows} == {"lj", "morse"}
    assert all(r["atoms_per_s"] > 0 and r["dense_hessian_s"] > 0 for r in rows)
    assert (out / "speed.png").stat().st_size > 0 and (out / "speed.csv").exists()


def test_locality_analytic_model_has_zero_blocks_beyond_2rc(tmp_path):
    out = run(tmp_path, "locality", "--calculator", "morse")
    res = load(out / "locality.json")
    assert res["max_norm_beyond_2LRc"] == 0.0
    assert res["radius_all_nonzero_blocks"] <= res["interaction_range_2LRc"]
    assert res["decay"] and (out / "locality.png").exists()


def test_locality_fd_reference_with_fragments(tmp_path):
    from jaxmlp.data.generate import alkane

    path = tmp_path / "hexane.xyz"
    write(path, alkane(6))
    out = run(tmp_path, "locality", "--structure", str(path), "--calculator", "emt", "--radii", "1.7", "3.0")
    res = load(out / "locality.json")
    assert res["n_atoms"] == 20 and res["max_offdiag_norm"] > 0
    series = res["fragments"]["series"]
    assert len(series) == 2 and any(r["n_saturating"] >= 1 for r in series)
    assert all(r["Gprime_norm"] >= 0 and r["delta_f_norm"] >= 0 for r in series)


def test_cutoff_study(tmp_path):
    out = run(tmp_path, "cutoff", "--model", "morse", "--cutoffs", "3.5", "4.5", "--epochs", "2", "--n-structures", "10")
    rows = load(out / "cutoff.json")["rows"]
    assert [r["cutoff"] for r in rows] == [3.5, 4.5]
    assert all(r["max_norm_beyond_2LRc"] == 0.0 for r in rows)
    assert all(r["force_mae"] > 0 for r in rows)


def test_cutoff_study_default_model(tmp_path):
    # the default model (HDNNP) gets symmetry-function scaling and E0 from the training split
    out = run(tmp_path, "cutoff", "--cutoffs", "3.5", "--epochs", "1", "--n-structures", "8")
    res = load(out / "cutoff.json")
    assert res["model"] == "hdnnp" and len(res["rows"]) == 1
    row = res["rows"][0]
    assert np.isfinite(row["energy_mae"]) and row["force_mae"] > 0 and row["max_norm_beyond_2LRc"] == 0.0


def test_layers_study(tmp_path):
    # the small basis preset keeps this to two quick ml-ACE compilations (~1 min on one core)
    out = run(tmp_path, "layers", "--layers", "1", "2", "--cutoff", "3.0", "--epochs", "1", "--n-structures", "8", "--basis", "small")
    rows = load(out / "layers.json")["rows"]
    assert [r["n_layers"] for r in rows] == [1, 2]
    assert [r["2LRc"] for r in rows] == [6.0, 12.0]
    assert all(r["max_norm_beyond_2LRc"] == 0.0 and r["force_mae"] > 0 and r["seconds_per_atom"] > 0 for r in rows)


def test_train_from_toml(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[model]\nkind = "morse"\ncutoff = 4.0\n[data]\nn = 10\n[training]\nloss = "forces"\nepochs = 3\nlearning_rate = 0.01\n')
    out = run(tmp_path, "train", "--config", str(cfg))
    res = load(out / "train.json")
    assert res["test_metrics"]["force_mae"] > 0 and len(res["history"]) == 3
    assert (out / "model.jaxmlp").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["nonsense"],
        ["speed", "--sizes", "-3"],
        ["speed", "--cutoff", "abc"],
        ["locality", "--structure", "/no/such/file.xyz"],
        ["locality", "--calculator", "unknown-method"],
        ["train", "--config", "/no/such/config.toml"],
        ["cutoff", "--data", "/no/such/data.extxyz"],
        ["speed", "--models", "quantum"],
    ],
)
def test_bad_arguments_exit_nonzero(tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "o"), "--no-progress", *argv])
    assert exc.value.code != 0
    assert "error" in capsys.readouterr().err


def test_bad_config_sections(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[modle]\nkind = "morse"\n')
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "o"), "train", "--config", str(cfg)])
    assert exc.value.code == 2 and "unknown config section" in capsys.readouterr().err


def test_help_on_every_subcommand(capsys):
    for cmd in ("speed", "cutoff", "layers", "locality", "train"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert cmd in capsys.readouterr().out


def test_max_degree_sizes_the_dense_layout():
    from ase.build import bulk, molecule

    from jaxmlp.bench.studies import make_model
    from jaxmlp.graph import max_degree

    assert max_degree([molecule("CH3CH2OH")], 4.0) == 8  # 8 neighbours per atom, rounded up to 8
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    assert max_degree([cu], 3.0) == 16  # 12 nearest neighbours
    assert make_model("mlace", [29], 3.0, structures=[cu]).config["max_neighbors"] == 16
    assert make_model("mlace", [29], 3.0).config["max_neighbors"] is None


def test_json_results_are_strict(tmp_path):
    from jaxmlp.bench.common import write_json

    path = write_json(tmp_path / "r.json", {"gamma": float("inf"), "x": np.float32(1.5), "a": np.arange(2), "nan": [np.nan]})
    assert load(path) == {"gamma": None, "x": 1.5, "a": [0, 1], "nan": [None]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary files left
