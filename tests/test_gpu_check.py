"""benchmarks/gpu_check.sh runs end to end on a CPU in tiny mode and writes the JSON the GPU run will write."""

import importlib.util
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _driver():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pytest_summary_parsing():
    counts = _driver().pytest_counts("....F\n=== 4 passed, 1 failed, 2 deselected in 3.20s ===\n")
    assert counts == {"passed": 4, "failed": 1, "deselected": 2}
    assert _driver().pytest_counts("no summary here") == {}


def test_gpu_check_tiny_on_cpu(tmp_path, shared_dir):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu", GPU_CHECK_LIMIT="400")
    cmd = [str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny", "--out", str(out), "--models", "hdnnp",
           "--sizes", "32", "--datasets", "ethanol,water", "--train-structures", "4",
           "--tests", "tests/test_gpu_check.py::test_pytest_summary_parsing"]
    env["JAXMLP_SHARED"] = str(shared_dir.parent)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=450)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["device"]["platform"] == "cpu" and res["tiny"] is True
    assert res["tests"]["ok"] and res["tests"]["counts"] == {"passed": 1}
    cases = res["throughput"]
    assert [(c["model"], c["dtype"], c["n_atoms"]) for c in cases] == [("hdnnp", "float32", 32), ("hdnnp", "float64", 32)]
    for c in cases:
        assert c["finite"] and c["atom_steps_per_s"] == pytest.approx(c["n_atoms"] / c["median_s"])
        assert c["n_edges"] > 0 and c["compile_s"] > 0
    assert [t["dataset"] for t in res["training"]] == ["ethanol", "water"]
    for t in res["training"]:
        assert "error" not in t, t
        assert t["n_structures"] == 4 and t["epoch_2_s"] > 0 and len(t["train_loss"]) == 2
    assert res["peak_memory_bytes"] is None  # the CPU client has no allocator statistics
    s = res["summary"]
    assert s["tests_ok"] and s["cases_failed"] == 0 and s["cases_skipped"] == 0
    assert s["hdnnp_best_atom_steps_per_s"] == max(c["atom_steps_per_s"] for c in cases)
    assert s["target_met"] is False  # 32 atoms on a CPU are far from 1e6 atom-steps/s


def test_gpu_check_rejects_unknown_model(tmp_path):
    proc = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--models", "mace", "--out", str(tmp_path / "x.json")],
                          cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown model 'mace'" in proc.stderr
    assert not (tmp_path / "x.json").exists()
