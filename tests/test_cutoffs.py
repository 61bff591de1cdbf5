"""Cutoff and compact core functions: n2p2 formulas, limits and smoothness at r_c."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp.descriptors import compact_function, core_function, cutoff_function, cutoff_type_id, cutoff_type_name

RC = 5.0

# number of derivatives (value included) that vanish at r_c: cos/poly1 are C1, poly2 C2, poly3 C3,
# poly4 C4, tanh³ C2, exp C∞ (checked up to 4)
SMOOTH = {"cos": 2, "poly1": 2, "poly2": 3, "poly3": 4, "poly4": 5, "tanhu": 3, "tanh": 3, "exp": 4}


def _ref(kind, r, rc, alpha):
    """n2p2's CutoffFunction written out in plain Python."""
    if r >= rc:
        return 0.0
    if kind == "hard":
        return 1.0
    if kind in ("tanhu", "tanh"):
        v = math.tanh(1 - r / rc) ** 3
        return v / math.tanh(1.0) ** 3 if kind == "tanh" else v
    rci = alpha * rc
    if r < rci:
        return 1.0
    x = (r - rci) / (rc - rci)
    return {
        "cos": 0.5 * (math.cos(math.pi * x) + 1),
        "exp": math.e * math.exp(1 / (x * x - 1)),
        "poly1": (2 * x - 3) * x * x + 1,
        "poly2": ((15 - 6 * x) * x - 10) * x**3 + 1,
        "poly3": (x * (x * (20 * x - 70) + 84) - 35) * x**4 + 1,
        "poly4": (x * (x * ((315 - 70 * x) * x - 540) + 420) - 126) * x**5 + 1,
    }[kind]


@pytest.mark.parametrize("kind", ["hard", "cos", "tanhu", "tanh", "exp", "poly1", "poly2", "poly3", "poly4"])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_cutoff_matches_n2p2_formula(kind, alpha):
    r = np.array([0.0, 0.4, 1.2, 1.7, 2.5, 3.3, 4.1, 4.9, 4.999, 5.0, 5.5, 100.0])
    got = np.asarray(cutoff_function(jnp.asarray(r), RC, kind, alpha))
    want = np.array([_ref(kind, x, RC, alpha) for x in r])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=5e-14)


@pytest.mark.parametrize("kind", list(SMOOTH))
def test_cutoff_smooth_at_rc(kind):
    """Value and the derivatives n2p2 promises vanish as r → r_c, and f = 1 at 0 (or inside α r_c)."""
    f = lambda r: cutoff_function(r, RC, kind, 0.2)  # noqa: E731
    r = RC - 1e-4
    d = f
    for order in range(SMOOTH[kind]):
        val = float(d(jnp.asarray(r)))
        assert abs(val) < 1e3 * 1e-4 ** (SMOOTH[kind] - order) + 1e-12, (kind, order, val)
        d = jax.grad(d)
    assert float(f(jnp.asarray(RC))) == 0.0
    # gradients finite everywhere, including exactly at r_c and far beyond
    for x in (0.0, 0.2 * RC, RC, 2 * RC):
        assert np.isfinite(float(jax.grad(f)(jnp.asarray(x))))
    if kind not in ("tanhu", "tanh"):
        assert float(f(jnp.asarray(0.5))) == 1.0  # inside the inner cutoff
    assert float(cutoff_function(jnp.asarray(0.0), RC, "tanh")) == pytest.approx(1.0, abs=1e-14)


def test_hard_cutoff_step():
    assert float(cutoff_function(jnp.asarray(4.99), RC, 0)) == 1.0
    assert float(cutoff_function(jnp.asarray(5.0), RC, 0)) == 0.0


def test_cutoff_names_and_errors():
    assert cutoff_type_id("poly2") == 6 and cutoff_type_id(2) == 2 and cutoff_type_name(6) == "poly2"
    assert cutoff_type_name("TANHU") == "tanhu"
    with pytest.raises(ValueError, match="unknown cutoff type"):
        cutoff_type_id("gauss")
    with pytest.raises(ValueError, match="unknown cutoff type"):
        cutoff_type_id(9)
    with pytest.raises(TypeError):
        cutoff_type_id(1.5j)
    with pytest.raises(ValueError, match="alpha"):
        cutoff_function(jnp.ones(3), RC, "cos", alpha=1.0)


@pytest.mark.parametrize("core", ["c", "p1", "p2", "p3", "p4", "e"])
def test_core_and_compact_functions(core):
    x = jnp.linspace(0.0, 1.2, 13)
    v = np.asarray(core_function(core, x))
    assert v[0] == pytest.approx(1.0, abs=1e-15)
    assert np.all(np.abs(v[x >= 1.0 - 1e-12]) < 1e-12)
    assert np.all(np.diff(v) <= 1e-14)  # monotone decreasing on [0, 1]
    # compact function: 1 at the centre, 0 at and beyond the support edges, symmetric
    left, right = -2.0, 6.0
    a = jnp.array([2.0, -2.0, 6.0, 7.0, 0.5, 3.5])
    c = np.asarray(compact_function(a, left, right, core))
    assert c[0] == pytest.approx(1.0) and c[1] == 0.0 and c[2] == 0.0 and c[3] == 0.0
    assert c[4] == pytest.approx(c[5], abs=1e-15)
    assert np.isfinite(np.asarray(jax.vmap(jax.grad(lambda t: compact_function(t, left, right, core)))(a))).all()


def test_asymmetric_polynomial():
    """n2p2 'p2a': core evaluated at (2 − x) x."""
    x = jnp.array([0.0, 0.25, 0.5, 0.9])
    want = core_function("p2", (2 - x) * x)
    np.testing.assert_allclose(core_function("p2", x, asymmetric=True), want, rtol=1e-15)
    with pytest.raises(ValueError, match="unknown core"):
        core_function("q", x)
