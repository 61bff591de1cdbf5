"""examples/md_water.py in its fast mode: train, MD, stability, RDFs against the DFT frames, force outliers, JSON + PNG."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "md_water.py"


def _load():
    spec = importlib.util.spec_from_file_location("example_md_water", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # ~3.5 min on an idle core (HDNNP-with-triplets compilations: training, evaluation, two MD engines), 12 min on the loaded machine
def test_md_water_fast_mode(shared_dir, tmp_path):
    module = _load()
    assert (shared_dir / "datasets" / "water_deepmd_train.extxyz").is_file()
    module.SHARED = shared_dir / "datasets"  # the fixture honours JAXMLP_SHARED
    res = module.main(out_dir=tmp_path, results=tmp_path)
    saved = json.loads((tmp_path / "md_water_fast.json").read_text())
    assert saved["mode"] == "fast" and (tmp_path / "md_water_rdf_fast.png").read_bytes()[:4] == b"\x89PNG"
    for label in ("trained", "undertrained"):
        md = saved[label]["md"]
        assert md["steps"] >= 1 and md["md"]["dtype"] == "float32" and md["md"]["energy_dtype"] == "float64"
        assert md["stable"] == (md["reason"] is None)
        # a verdict for every model: flagged by the stability check or by the RDF distance, or passing both
        assert set(md["flagged_by"]) <= {"stability", "rdf"}
        assert ("rdf" in md["flagged_by"]) == (not md["rdf_ok"])
        assert saved[label]["training"]["converged"] is False  # a few epochs: labelled unconverged
        fo = saved["force_outliers"][label]
        assert fo["rmse_eV_A"] > 0 and len(fo["outliers"]) == 5
        assert fo["outliers"][0]["error"] >= fo["outliers"][-1]["error"]
    ref = saved["rdf"]["DFT frames"]
    r, g_oo = np.array(ref["r"]), np.array(ref["g"]["O-O"])
    assert 2.6 < r[np.argmax(g_oo)] < 3.0  # the DFT frames' first O–O peak (liquid water: 2.8 Å)
    r_oh = r[np.argmax(np.array(ref["g"]["H-O"]))]
    assert 0.9 < r_oh < 1.1  # intramolecular O–H
    assert saved["rdf_reference"]["tolerance"] >= 0.1
    assert res["mode"] == "fast"
