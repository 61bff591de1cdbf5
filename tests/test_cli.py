"""``jaxmlp-bench`` end to end on tiny built-in defaults.

The numbers the CLI reports are checked against independent computations:
the reloaded trained model re-evaluated on the test split, the library's
force range and decay on the same structure, pair-potential locality (no
coupling beyond R_c), and G′ / Δf recomputed from raw finite differences.
Bad arguments and bad config files fail with exit status 2 and a message
naming the problem.
"""

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read, write

from jaxmlp.bench.cli import COMMANDS, build_parser, main

# Published Morse parameters for Cu (Girifalco & Weizer 1959), typed here
# independently of the CLI's table.
CU_MORSE = {"D": 0.3429, "alpha": 1.3588, "r0": 2.866}


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


def fails(tmp_path, capsys, *argv):
    """Run the CLI expecting exit status 2; return the error message."""
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "o"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith(("jaxmlp-bench: error:", "usage: jaxmlp-bench")) and "error:" in err
    return err


def cu_rod(tmp_path):
    """A rattled 6×1×1 fcc Cu rod (24 atoms, 21.7 Å long: pairs beyond 2·R_c = 10 Å exist)."""
    rod = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((6, 1, 1))
    rod.pbc = False
    rod.rattle(0.05, seed=1)
    path = tmp_path / "rod.xyz"
    write(path, rod)
    return read(path), path  # as the CLI sees it (the file rounds positions)


def test_speed(tmp_path):
    from ase.neighborlist import neighbor_list

    from jaxmlp.bench.factory import cu_cell

    out = run(tmp_path, "speed", "--models", "lj", "morse", "--sizes", "32", "--repeat", "1", "--hessian")
    rows = load(out / "speed.json")["rows"]
    assert [r["model"] for r in rows] == ["lj", "morse"]
    n_pairs = len(neighbor_list("i", cu_cell(32, 0), 5.0))  # ASE's count of directed neighbour pairs
    for r in rows:
        assert r["n_atoms"] == 32 and r["n_edges"] == n_pairs
        assert r["atoms_per_s"] == pytest.approx(32 / r["energy_forces_s"])
        assert r["dense_hessian_s"] > 0 and r["sparse_hessian_s"] > 0
    assert (out / "speed.png").stat().st_size > 0 and (out / "speed.csv").read_text().startswith("model,n_atoms")


def test_locality_pair_model_matches_library(tmp_path):
    import jaxmlp
    from jaxmlp.analysis.locality import decay, distance_matrix, force_range

    rod, path = cu_rod(tmp_path)
    out = run(tmp_path, "locality", "--structure", str(path), "--calculator", "morse")
    res = load(out / "locality.json")
    model = jaxmlp.models.morse(cutoff=5.0, **CU_MORSE)
    params = model.init(None)
    fr = force_range(model, params, rod)
    assert res["interaction_range_2LRc"] == fr.interaction_range == 10.0
    assert res["n_pairs_beyond_2LRc"] == fr.n_beyond > 0
    assert res["max_norm_beyond_2LRc"] == fr.max_beyond == 0.0
    assert res["radius_all_nonzero_blocks"] == pytest.approx(fr.radius, abs=1e-12)
    # a pair potential couples only atoms within R_c: the radius is the longest pair distance below 5 Å
    d = distance_matrix(rod)
    assert res["radius_all_nonzero_blocks"] == pytest.approx(d[d < 5.0].max(), abs=1e-12)
    H = np.asarray(jaxmlp.hessian(model, params, jaxmlp.atoms_to_graph(rod, 5.0)))
    ref = decay(H, rod, bin_width=0.5).rows()
    assert [(r["r_lo"], r["r_hi"], r["count"]) for r in res["decay"]] == [(r["r_lo"], r["r_hi"], r["count"]) for r in ref]
    for got, want in zip(res["decay"], ref):
        for key in ("max", "mean"):
            if want["count"] == 0:
                assert got[key] is None  # empty bin: NaN in the library, null in strict JSON
            else:
                assert got[key] == pytest.approx(want[key], rel=1e-10, abs=1e-12)
    assert res["max_offdiag_norm"] == pytest.approx(fr.max_norm, rel=1e-10)
    assert set(res["decay_by_element_pair"]) == {"Cu-Cu"}


def test_pair_models_refuse_structures_they_have_no_parameters_for(tmp_path, capsys):
    # the default structure is n-octane: Cu Morse/LJ parameters must not be applied to C and H
    for calc in ("morse", "lj"):
        err = fails(tmp_path, capsys, "locality", "--calculator", calc)
        assert "C, H" in err and "Cu" in err


def _row_of_hessian(atoms, center, delta):
    """h[center, B] for all B, [N, 3, 3], by central differences of EMT forces displacing only ``center``."""
    rows = np.zeros((len(atoms), 3, 3))
    for alpha in range(3):
        f = []
        for sign in (1, -1):
            a = atoms.copy()
            a.positions[center, alpha] += sign * delta
            a.calc = EMT()
            f.append(a.get_forces())
        rows[:, alpha, :] = -(f[0] - f[1]) / (2 * delta)  # ∂²E/∂R_cα∂R_Bβ = −∂F_Bβ/∂R_cα
    return rows


def test_locality_fd_fragments_match_independent_g_prime_and_delta_f(tmp_path):
    from jaxmlp.analysis.fragments import cut
    from jaxmlp.data.generate import alkane

    path = tmp_path / "hexane.xyz"
    write(path, alkane(6))
    hexane = read(path)
    out = run(tmp_path, "locality", "--structure", str(path), "--calculator", "emt", "--radii", "1.7", "3.0")
    res = load(out / "locality.json")
    assert res["n_atoms"] == 20 and "radius_all_nonzero_blocks" not in res  # no force range without a model
    assert set(res["decay_by_element_pair"]) == {"C-C", "C-H", "H-H"}
    frag = res["fragments"]
    c = frag["center"]
    assert hexane.numbers[c] == 6
    series = frag["series"]
    assert sorted(r["radius"] for r in series) == [1.7, 3.0] and any(r["n_saturating"] >= 1 for r in series)
    full = hexane.copy()
    full.calc = EMT()
    f_full = full.get_forces()[c]
    h_row = _row_of_hessian(hexane, c, 0.0025)
    assert res["max_offdiag_norm"] >= np.linalg.norm(np.delete(h_row, c, axis=0), axis=(1, 2)).max() * (1 - 1e-3)
    for r in series:
        f = cut(hexane, c, r["radius"])
        kept = {int(p) for p in f.parent_indices if p >= 0}
        excluded = sorted(set(range(len(hexane))) - kept)
        caps = [i for i, p in enumerate(f.parent_indices) if p < 0]
        assert (r["n_excluded"], r["n_saturating"], r["n_atoms"]) == (len(excluded), len(caps), len(f))
        fa = f.atoms
        fa.calc = EMT()
        np.testing.assert_allclose(r["delta_f"], f_full - fa.get_forces()[f.center], atol=1e-10)
        assert r["delta_f_norm"] == pytest.approx(np.linalg.norm(f_full - fa.get_forces()[f.center]), abs=1e-10)
        G = h_row[excluded].sum(axis=0)
        Gp = G - _row_of_hessian(fa, f.center, 0.0025)[caps].sum(axis=0)
        if caps:
            assert np.linalg.norm(Gp - G) > 0.01  # the caps matter: G′ differs from G
        assert r["G_norm"] == pytest.approx(np.linalg.norm(G), rel=1e-4, abs=1e-5)
        assert r["Gprime_norm"] == pytest.approx(np.linalg.norm(Gp), rel=1e-4, abs=1e-5)


def test_cutoff_study(tmp_path):
    out = run(tmp_path, "cutoff", "--model", "morse", "--cutoffs", "3.5", "4.5", "--epochs", "2", "--n-structures", "10")
    rows = load(out / "cutoff.json")["rows"]
    assert [r["cutoff"] for r in rows] == [3.5, 4.5]
    for r in rows:
        # a pair potential couples atoms within R_c only, and the test clusters have pairs that far apart
        assert r["max_norm_beyond_2LRc"] == 0.0
        assert r["cutoff"] - 0.5 < r["radius_all_nonzero_blocks"] < r["cutoff"]
        assert r["n_structures"] == 2 and r["force_rmse"] >= r["force_mae"] > 0


def test_cutoff_study_default_model(tmp_path):
    # the default model (HDNNP) gets symmetry-function scaling and E0 from the training split
    out = run(tmp_path, "cutoff", "--cutoffs", "3.5", "--epochs", "1", "--n-structures", "8")
    res = load(out / "cutoff.json")
    assert res["model"] == "hdnnp" and len(res["rows"]) == 1
    row = res["rows"][0]
    assert row["max_norm_beyond_2LRc"] == 0.0 and 0 < row["radius_all_nonzero_blocks"] <= 7.0
    assert row["force_rmse"] >= row["force_mae"] > 0 and row["energy_rmse"] >= row["energy_mae"] > 0


def test_layers_study(tmp_path):
    # the small basis preset keeps this to two quick ml-ACE compilations (~1 min on one core)
    out = run(tmp_path, "layers", "--layers", "1", "2", "--cutoff", "3.0", "--epochs", "1", "--n-structures", "8", "--basis", "small")
    rows = load(out / "layers.json")["rows"]
    assert [r["n_layers"] for r in rows] == [1, 2]
    assert [r["2LRc"] for r in rows] == [6.0, 12.0]
    for r in rows:
        assert r["max_norm_beyond_2LRc"] == 0.0 and r["radius_all_nonzero_blocks"] <= r["2LRc"]
        assert r["force_rmse"] >= r["force_mae"] > 0 and r["seconds_per_atom"] > 0


def test_train_metrics_are_those_of_the_saved_model(tmp_path):
    import jaxmlp
    from jaxmlp.data.generate import default_dataset
    from jaxmlp.training.metrics import evaluate

    cfg = tmp_path / "run.toml"
    cfg.write_text('[model]\nkind = "morse"\ncutoff = 4.0\n[data]\nn = 10\n[training]\nloss = "forces"\nepochs = 3\nlearning_rate = 0.01\n')
    out = run(tmp_path, "train", "--config", str(cfg))
    res = load(out / "train.json")
    assert len(res["history"]) == 3 and res["split"] == {"fractions": [0.8, 0.1, 0.1], "seed": 0, "sizes": [8, 1, 1]}
    model, params = jaxmlp.load(out / "model.jaxmlp")
    _, _, test = default_dataset("cu_clusters_emt", n=10, seed=0).split((0.8, 0.1, 0.1), seed=0)
    again = evaluate(model, params, test)
    for key, value in res["test_metrics"].items():
        assert value == pytest.approx(again[key], rel=1e-10, abs=1e-12), key
    untrained = evaluate(model, model.init(None), test)  # the published Cu parameters the run started from
    assert float(params["D"]) != CU_MORSE["D"]
    assert res["test_metrics"]["force_mae"] < 0.9 * untrained["force_mae"]
    assert res["test_metrics"]["force_rmse"] < untrained["force_rmse"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[modle]\nkind = "morse"\n', ["bad.toml", "unknown config section 'modle'", "did you mean 'model'"]),
        ('[model]\nkind = "morse"\n[data]\npth = "my_dft_data.xyz"\n', ["bad.toml", "[data]", "'pth'", "did you mean 'path'"]),
        ('model = {kind = "morse"}\ndata = ["my_dft_data.xyz"]\n', ["bad.toml", "[data] must be a table", "list"]),
        ('[model]\nkind = "mors"\n', ["bad.toml", "[model] kind", "did you mean 'morse'"]),
        ('[model]\ncutoff = 4.0\n', ["bad.toml", "[model] needs kind"]),
        ('[model]\nkind = "morse"\ncutoff = "4"\n', ["[model] cutoff", "positive number"]),
        ('[model]\nkind = "morse"\n[data]\nn = 10.5\n', ["[data] n", "positive integer"]),
        ('[model]\nkind = "morse"\n[data]\ndefault = "cu_clusters"\n', ["[data] default", "did you mean 'cu_clusters_emt'"]),
        ('[model]\nkind = "morse"\n[data]\nsplit = [0.8, 0.2]\n', ["[data] split"]),
        ('[model]\nkind = "morse"\n[data]\npath = "x.xyz"\nn = 5\n', ["[data] n", "cannot be combined with path"]),
        ('[model]\nkind = "morse"\n[training]\nepoch = 3\n', ["[training]", "'epoch'", "did you mean 'epochs'"]),
        ('[model]\nkind = "morse"\n[training]\nepochs = 0\n', ["bad.toml", "[training]", "epochs must be a positive integer"]),
        ('[model]\nkind = "morse"\n[training]\ntime_limit = "1h"\n', ["bad.toml", "[training]", "time_limit"]),
        ('[model\nkind = "morse"\n', ["cannot parse config", "bad.toml"]),
    ],
)
def test_bad_config_files_name_file_section_and_key(tmp_path, capsys, text, expected):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    err = fails(tmp_path, capsys, "train", "--config", str(cfg))
    for part in expected:
        assert part in err
    assert not (tmp_path / "o").exists()  # nothing trained, nothing written


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_json_and_yaml_configs_are_validated_like_toml(tmp_path, capsys, suffix):
    cfg = tmp_path / f"bad{suffix}"
    body = {"model": {"kind": "morse"}, "data": {"pth": "my_dft_data.xyz"}}
    if suffix == ".yaml":
        yaml = pytest.importorskip("yaml")
        cfg.write_text(yaml.safe_dump(body))
    else:
        cfg.write_text(json.dumps(body))
    err = fails(tmp_path, capsys, "train", "--config", str(cfg))
    assert f"bad{suffix}" in err and "[data]" in err and "did you mean 'path'" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["speed", "--sizes", "-3"], "must be >= 1, got -3"),
        (["speed", "--cutoff", "abc"], "not a number: 'abc'"),
        (["speed", "--models", "quantum"], "invalid choice: 'quantum'"),
        (["locality", "--index", "first"], "invalid int value: 'first'"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["locality", "--structure", "/no/such/file.xyz"], "structure file not found: /no/such/file.xyz"),
        (["locality", "--calculator", "unknown-method"], "unknown calculator 'unknown-method'"),
        (["train", "--config", "/no/such/config.toml"], "config file not found: /no/such/config.toml"),
        (["cutoff", "--data", "/no/such/data.extxyz"], "data file not found: /no/such/data.extxyz"),
        (["cutoff", "--n-structures", "3"], "too few"),
    ],
)
def test_bad_inputs_exit_2_with_a_message(tmp_path, argv, message, capsys):
    assert message in fails(tmp_path, capsys, *argv)


def test_help_on_every_subcommand_and_one_table(capsys):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)  # every subcommand is dispatched through the table
    for cmd in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert cmd in capsys.readouterr().out


def test_max_degree_sizes_the_dense_layout():
    from ase.build import molecule

    from jaxmlp.bench.factory import make_model
    from jaxmlp.graph import max_degree

    assert max_degree([molecule("CH3CH2OH")], 4.0) == 8  # 8 neighbours per atom, rounded up to 8
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    assert max_degree([cu], 3.0) == 16  # 12 nearest neighbours
    assert make_model("mlace", [29], 3.0, structures=[cu]).config["max_neighbors"] == 16
    assert make_model("mlace", [29], 3.0).config["max_neighbors"] is None


def test_pair_parameters_fit_the_element():
    from jaxmlp.bench.common import CLIError
    from jaxmlp.bench.factory import make_model

    assert make_model("morse", [29], 5.0).config["D"] == CU_MORSE["D"]
    assert make_model("lj", [18], 8.5).config["sigma"] == 3.40  # argon
    for kind, numbers in (("morse", [18]), ("lj", [29, 79]), ("lj", [1, 6])):
        with pytest.raises(CLIError, match="single-element"):
            make_model(kind, numbers, 5.0)


def test_csv_and_png_are_written_atomically(tmp_path):
    from jaxmlp.bench.common import plot_xy, write_csv

    target = tmp_path / "elsewhere.csv"
    target.write_text("keep me\n")
    link = tmp_path / "out" / "r.csv"
    link.parent.mkdir()
    link.symlink_to(target)
    write_csv(link, [{"a": 1, "b": 2.5}, {"a": 3, "c": "x"}])
    assert target.read_text() == "keep me\n"  # the link is replaced, its target untouched
    assert not link.is_symlink() and link.read_text().splitlines() == ["a,b,c", "1,2.5,", "3,,x"]
    png = plot_xy(tmp_path / "out" / "p.png", {"s": ([1, 2], [3, 4])}, "x", "y")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in link.parent.iterdir()) == ["p.png", "r.csv"]  # no temporary files left
