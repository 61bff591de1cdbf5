"""Test configuration: float64 everywhere, and the one fixture for shared data."""

import os
import pathlib

import jax
import pytest

# Tests run in float64 (float32 is tested explicitly where it matters).
jax.config.update("jax_enable_x64", True)

_SHARED = pathlib.Path(os.environ.get("JAXMLP_SHARED", pathlib.Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    """``../shared/data`` beside the project; skips the test when absent."""
    data = _SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"shared reference data not found at {data} (set JAXMLP_SHARED to its parent)")
    return data
