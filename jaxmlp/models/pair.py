"""Analytic pair potentials: Lennard-Jones and Morse.

They are members of the model family like any learned potential, and serve
as exact references for forces, Hessians and Taylor-expansion labels.

Per-atom energy: ``e_i = ½ Σ_j φ(r_ij)`` over the edges whose centre is ``i``
(ASE's ``energies`` convention).

Cutoff treatments (``mode``)
----------------------------
``"smooth"`` (default)
    φ is multiplied by a switching function that goes from 1 at ``onset`` to
    0 at ``cutoff``.  Lennard-Jones uses ASE's (and jax-md's) C¹ function of
    r², Morse ASE's quintic smoothstep (C²).  Identical to
    ``ase.calculators.lj.LennardJones(smooth=True, ro=onset, rc=cutoff)`` and
    ``ase.calculators.morse.MorsePotential(rcut1=onset/r0, rcut2=cutoff/r0)``.
``"shift"``
    φ(r) − φ(R_c) for r < R_c: energy continuous, forces jump at R_c.  Equal
    to ``LennardJones(smooth=False, rc=cutoff)``.
``"plain"``
    Bare φ truncated at R_c (energy jumps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..graph.ops import edge_vectors, safe_norm
from .base import Model, register_model

__all__ = ["lennard_jones", "morse", "pair_energies"]

_MODES = ("smooth", "shift", "plain")


def _check(mode, cutoff, onset):
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    if mode == "smooth" and not (0 <= onset < cutoff):
        raise ValueError(f"onset must lie in [0, cutoff), got onset={onset}, cutoff={cutoff}")


def pair_energies(phi, graph, cutoff, switch=None, mode="plain"):
    """Per-atom energies ``½ Σ_j φ(r_ij) s(r_ij)`` of a radial pair function.

    ``phi`` and ``switch`` act on distances ``[E]``; padding and out-of-cutoff
    edges contribute exactly zero.
    """
    vec = edge_vectors(graph)
    mask = graph.edges["mask"]
    r = safe_norm(vec, mask)
    inside = mask & (r < cutoff)
    r_safe = jnp.where(inside, r, 0.5 * cutoff)
    e = phi(r_safe)
    if mode == "smooth":
        e = e * switch(r_safe)
    elif mode == "shift":
        e = e - phi(jnp.asarray(cutoff, r.dtype))
    e = jnp.where(inside, e, 0.0)
    n = graph.nodes["positions"].shape[0]
    return 0.5 * jax.ops.segment_sum(e, graph.receivers, num_segments=n)


@register_model("lennard_jones")
def lennard_jones(epsilon: float = 1.0, sigma: float = 1.0, cutoff: float = 3.0, onset: float | None = None, mode: str = "smooth") -> Model:
    """Lennard-Jones ``φ(r) = 4ε[(σ/r)¹² − (σ/r)⁶]``.

    Parameters
    ----------
    epsilon : float, eV
    sigma : float, Å
    cutoff : float, Å
    onset : float, Å
        Start of the smooth switch (default ``0.66·cutoff``, as in ASE).
    mode : {"smooth", "shift", "plain"}
        Cutoff treatment, see the module docstring.

    Returns
    -------
    Model
        ``params = {"epsilon": ε, "sigma": σ}`` (scalars, trainable).
    """
    onset = 0.66 * cutoff if onset is None else onset
    _check(mode, cutoff, onset)
    rc2, ro2 = cutoff**2, onset**2

    def switch(r):  # ASE/jax-md C1 switch in r²
        r2 = r * r
        mid = (rc2 - r2) ** 2 * (rc2 + 2 * r2 - 3 * ro2) / (rc2 - ro2) ** 3
        return jnp.where(r2 < ro2, 1.0, jnp.where(r2 < rc2, mid, 0.0))

    def init(key, graph=None):
        del key, graph
        return {"epsilon": jnp.asarray(epsilon, float), "sigma": jnp.asarray(sigma, float)}

    def apply(params, graph):
        eps, sig = params["epsilon"], params["sigma"]

        def phi(r):
            s6 = (sig / r) ** 6
            return 4.0 * eps * (s6 * s6 - s6)

        return pair_energies(phi, graph, cutoff, switch, mode)

    config = dict(epsilon=epsilon, sigma=sigma, cutoff=cutoff, onset=onset, mode=mode)
    return Model("lennard_jones", config, float(cutoff), init, apply)


@register_model("morse")
def morse(D: float = 1.0, alpha: float = 1.0, r0: float = 1.0, cutoff: float = 3.0, onset: float | None = None, mode: str = "smooth") -> Model:
    """Morse ``φ(r) = D [e^{−2α(r−r0)} − 2 e^{−α(r−r0)}]``.

    ASE's ``MorsePotential(epsilon, rho0, r0, rcut1, rcut2)`` is the same
    with ``D = epsilon``, ``alpha = rho0 / r0``, ``onset = rcut1·r0``,
    ``cutoff = rcut2·r0``.

    Parameters
    ----------
    D : float, eV (well depth)
    alpha : float, 1/Å
    r0 : float, Å
    cutoff, onset : float, Å (onset defaults to ``0.7·cutoff``)
    mode : {"smooth", "shift", "plain"}

    Returns
    -------
    Model
        ``params = {"D": D, "alpha": α, "r0": r0}`` (scalars, trainable).
    """
    onset = 0.7 * cutoff if onset is None else onset
    _check(mode, cutoff, onset)

    def switch(r):  # quintic smoothstep, C2
        s = 1.0 - (r - onset) / (cutoff - onset)
        mid = 6.0 * s**5 - 15.0 * s**4 + 10.0 * s**3
        return jnp.where(s >= 1.0, 1.0, jnp.where(s > 0.0, mid, 0.0))

    def init(key, graph=None):
        del key, graph
        return {"D": jnp.asarray(D, float), "alpha": jnp.asarray(alpha, float), "r0": jnp.asarray(r0, float)}

    def apply(params, graph):
        def phi(r):
            x = jnp.exp(-params["alpha"] * (r - params["r0"]))
            return params["D"] * (x * x - 2.0 * x)

        return pair_energies(phi, graph, cutoff, switch, mode)

    config = dict(D=D, alpha=alpha, r0=r0, cutoff=cutoff, onset=onset, mode=mode)
    return Model("morse", config, float(cutoff), init, apply)
