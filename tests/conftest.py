"""Test configuration: float64 everywhere, and the one fixture for shared data."""

import os
import pathlib

import jax
import pytest

# Tests run in float64 (float32 is tested explicitly where it matters).
jax.config.update("jax_enable_x64", True)

_SHARED = pathlib.Path(os.environ.get("JAXMLP_SHARED", pathlib.Path(__file__).resolve().parents[1].parent / "shared"))


def _in_ci() -> bool:
    """True when the ``CI`` environment variable is set to a true value (GitHub Actions, GitLab, ``.ci/run``)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    """``../shared/data`` beside the project.

    Skips the test when absent (a fresh clone without the reference data),
    except in CI (``CI=true``), where missing references fail the run so the
    n2p2 agreement and data-file checks cannot silently go green.
    """
    data = _SHARED / "data"
    if not data.is_dir():
        msg = f"shared reference data not found at {data} (set JAXMLP_SHARED to its parent)"
        if _in_ci():
            pytest.fail(f"CI=true but {msg}; reference tests must run in CI", pytrace=False)
        pytest.skip(msg)
    return data


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_functions():
    """Drop JAX's compiled executables after each test module.

    The suite compiles thousands of functions in one process; every loaded
    XLA CPU executable holds memory mappings, and without this the process
    grows until the kernel's map limit (``vm.max_map_count``) or memory is
    reached. Modules keep their own caches while they run.
    """
    yield
    import gc

    jax.clear_caches()
    gc.collect()
