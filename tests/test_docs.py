"""The documentation builds without warnings (mkdocs --strict), and the README's promises about test data hold."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "index.html").exists()


@pytest.mark.parametrize("ci", ["", "true"])
def test_shared_data_skips_for_users_and_fails_in_ci(tmp_path, ci):
    """README: reference tests skip when ../shared is absent; under CI=true they fail instead (tests/conftest.py)."""
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_uses_shared.py").write_text("def test_reads(shared_dir):\n    assert shared_dir.is_dir()\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(JAXMLP_SHARED=str(tmp_path / "missing"), CI=ci)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    if ci:
        assert proc.returncode == 1 and "1 error" in out and "CI=true but shared reference data not found" in out, out
    else:
        assert proc.returncode == 0 and "1 skipped" in out and "shared reference data not found" in out, out
