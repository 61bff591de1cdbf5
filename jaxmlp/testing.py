"""Contract kit for jaxmlp models: :func:`check_model`.

Every jaxmlp potential — the built-in ones and users' own
:class:`~jaxmlp.models.Model` objects — promises the same physics:

* energies are invariant and forces covariant under translation, rotation,
  reflection and relabelling of atoms; for periodic cells also under the
  choice of periodic image (wrapping); stress rotates as ``R σ Rᵀ``;
* forces are ``−∂E/∂R`` and stress is the strain derivative of the energy
  (checked by finite differences, not by the same autodiff that made them);
* padding to buckets changes nothing, and padding atoms and graphs get
  exactly zero energy and force;
* jitted and op-by-op evaluation agree;
* forces on atom A do not depend on atoms farther than
  ``model.interaction_range`` (``2·L·R_c``): moving them leaves ``F_A``
  unchanged (the Hessian blocks ``h_AB`` vanish).

:func:`check_model` runs these checks on one structure and raises
``AssertionError`` naming the first violated check and the size of the
violation (in the style of e3nn-jax's ``assert_equivariant``).  See
``docs/testing.md``.
"""

from __future__ import annotations

from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from .graph import Buckets, atoms_to_graph, batch_graphs
from .models.base import Model, check_elements
from .observables import energy, energy_forces_stress, per_atom_energies

__all__ = ["check_model", "ALL_CHECKS"]

#: Names of the checks, in the order they run.
ALL_CHECKS = (
    "translation",
    "rotation",
    "reflection",
    "permutation",
    "wrapping",
    "fd_forces",
    "fd_stress",
    "padding",
    "param_gradients",
    "jit",
    "range",
)

_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))

_efs_jit = jax.jit(energy_forces_stress, static_argnums=0)


def _energy_sum(params, model, graph):
    return jnp.sum(energy(model, params, graph))


_param_grad_jit = jax.jit(jax.grad(_energy_sum), static_argnums=1)


def _voigt_to_matrix(s):
    s = np.asarray(s, float)
    return np.array([[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])


class _Checker:
    """State of one :func:`check_model` run: tolerances and the report."""

    def __init__(self, tol, fd_tol):
        self.tol = tol
        self.fd_tol = fd_tol
        self.report = {"checks": [], "skipped": {}, "errors": {}, "compared": {}}

    def compare(self, check, what, got, ref, fd=False, noise=0.0):
        """Assert ``max|got − ref| ≤ atol + rtol·max|ref| + noise``; keep the worst ratio per check."""
        rtol, atol = self.fd_tol if fd else self.tol
        got = np.asarray(got, float)
        ref = np.asarray(ref, float)
        if got.shape != ref.shape:
            raise AssertionError(f"check_model[{check}]: {what}: shape {got.shape} != expected {ref.shape}")
        if not np.all(np.isfinite(got)):
            raise AssertionError(f"check_model[{check}]: {what}: non-finite values")
        err = float(np.max(np.abs(got - ref))) if got.size else 0.0
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        tol = atol + rtol * scale + noise
        self._record(check, what, err, tol, scale)
        if not err <= tol:
            raise AssertionError(
                f"check_model[{check}]: {what}: max |difference| {err:.3e} exceeds tolerance {tol:.3e} "
                f"(scale of the reference {scale:.3e})"
            )

    def exact_zero(self, check, what, values):
        values = np.asarray(values, float)
        err = float(np.max(np.abs(values))) if values.size else 0.0
        self._record(check, what, err, 0.0, 0.0)
        if not err == 0.0:
            raise AssertionError(f"check_model[{check}]: {what}: must be exactly zero, max |value| {err:.3e}")

    def _record(self, check, what, err, tol, scale):
        seen = self.report["compared"].setdefault(check, [])
        if what not in seen:
            seen.append(what)
        ratio = err / tol if tol > 0 else (0.0 if err == 0 else np.inf)
        old = self.report["errors"].get(check)
        if old is None or ratio > old["ratio"]:
            self.report["errors"][check] = {"what": what, "max_error": err, "tolerance": tol, "scale": scale, "ratio": ratio}


def check_model(
    model: Model,
    params,
    atoms,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    fd_rtol: float | None = None,
    fd_atol: float | None = None,
    fd_step: float | None = None,
    strain_step: float | None = None,
    checks: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    fd_atoms: int | None = 12,
    max_range_atoms: int = 400,
    seed: int = 0,
) -> dict:
    """Check that ``model`` keeps the jaxmlp model contract on ``atoms``.

    Parameters
    ----------
    model : Model
    params : pytree
        Parameters of ``model`` (their dtype sets the precision of the run).
    atoms : ase.Atoms
        A molecule, cluster or (mixed-)periodic cell the model knows. Small
        structures (a few to a few tens of atoms) keep the check fast.
    rtol, atol : float, optional
        Tolerance of the exact identities (invariances, padding, jit, range):
        a comparison passes if ``max|a − b| ≤ atol + rtol·max|b|``. Defaults:
        ``1e-8, 1e-10`` in float64, ``1e-4, 1e-5`` in float32.
    fd_rtol, fd_atol : float, optional
        Tolerance of the finite-difference checks, plus an estimate of the
        rounding noise of the differences (``~ 10·eps·|E|/h``). Defaults:
        ``1e-6, 1e-8`` in float64, ``1e-2, 1e-3`` in float32.
    fd_step, strain_step : float, optional
        Displacement (Å) and strain steps of the 4th-order central
        differences (defaults ``1e-4``/``1e-5`` in float64, ``1e-2``/``1e-3``
        in float32).
    checks : iterable of str, optional
        Subset of :data:`ALL_CHECKS` to run (default: all that apply;
        ``wrapping`` and ``fd_stress`` need a periodic cell).
    skip : iterable of str
        Checks to leave out.
    fd_atoms : int or None
        Finite-difference forces are checked on at most this many atoms
        (spread over the structure); None: all atoms.
    max_range_atoms : int
        The range check moves every atom farther than
        ``model.interaction_range`` (+0.1 Å) from atom A by 0.05 Å and asks
        that the force on A stays the same. It enlarges the structure
        (periodic repeats along one direction, or chained copies of a
        molecule) until such pairs exist, and is skipped, with a note in the
        report, if that needs more atoms than this.
    seed : int
        Seed of the random rotation, translation and permutation.

    Returns
    -------
    dict
        ``{"checks": [names run], "skipped": {name: reason}, "errors":
        {name: {"what", "max_error", "tolerance", "scale", "ratio"}} (the
        worst comparison of each check), "compared": {name: [what, ...]}
        (every quantity compared, e.g. ``"stress"`` under ``"rotation"``),
        "dtype", "n_atoms", "periodic"}``.

    Raises
    ------
    AssertionError
        On the first violated check, naming it (``check_model[rotation]:
        forces: …``) and giving the size of the violation and the tolerance.
    TypeError, ValueError
        On bad arguments (not a Model / ase.Atoms, unknown check names,
        elements the model does not know).
    """
    from ase import Atoms

    if not isinstance(model, Model):
        raise TypeError(f"check_model expects a jaxmlp Model, got {type(model).__name__}")
    if not isinstance(atoms, Atoms):
        raise TypeError(f"check_model expects an ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise ValueError("check_model needs a structure with at least one atom")
    selected = list(ALL_CHECKS if checks is None else checks)
    skip = list(skip)
    unknown = sorted(set(selected + skip) - set(ALL_CHECKS))
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {list(ALL_CHECKS)}")
    selected = [c for c in ALL_CHECKS if c in selected and c not in skip]
    check_elements(model, atoms.numbers)

    atoms = atoms.copy()
    atoms.calc = None
    pbc = np.asarray(atoms.pbc, bool)
    periodic = bool(pbc.all())
    rng = np.random.default_rng(seed)

    def graph_of(a):
        return atoms_to_graph(a, model.cutoff, triplets=model.needs_triplets)

    def evaluate(a):
        e, f, s = _efs_jit(model, params, graph_of(a))
        return float(e[0]), np.asarray(f, float), np.asarray(s[0], float)

    g0 = graph_of(atoms)
    e_dev, f_dev, _ = _efs_jit(model, params, g0)
    dtype = np.dtype(f_dev.dtype)
    single = dtype == np.float32
    rtol = (1e-4 if single else 1e-8) if rtol is None else rtol
    atol = (1e-5 if single else 1e-10) if atol is None else atol
    fd_rtol = (1e-2 if single else 1e-6) if fd_rtol is None else fd_rtol
    fd_atol = (1e-3 if single else 1e-8) if fd_atol is None else fd_atol
    h = (1e-2 if single else 1e-4) if fd_step is None else fd_step
    hs = (1e-3 if single else 1e-5) if strain_step is None else strain_step
    eps = float(np.finfo(dtype).eps)

    ck = _Checker((rtol, atol), (fd_rtol, fd_atol))
    report = ck.report
    report.update(dtype=str(dtype), n_atoms=len(atoms), periodic=periodic)
    E, F, S = evaluate(atoms)
    if not (np.isfinite(E) and np.all(np.isfinite(F))):
        raise AssertionError(f"check_model[finite]: energy or forces are not finite (E = {E})")
    if periodic and not np.all(np.isfinite(S)):
        raise AssertionError("check_model[finite]: stress of a periodic cell is not finite")

    def run(name, fn, reason=None):
        if name not in selected:
            return
        if reason is None:
            reason = fn()  # a check may find out itself that it cannot run
        if reason is not None:
            report["skipped"][name] = reason
            return
        report["checks"].append(name)

    def compare_state(check, a, f_expected, s_expected=None):
        e2, f2, s2 = evaluate(a)
        ck.compare(check, "energy", e2, E)
        ck.compare(check, "forces", f2, f_expected)
        if periodic and s_expected is not None:
            ck.compare(check, "stress", s2, s_expected)

    # ---- invariances -------------------------------------------------------
    def translation():
        shift = rng.normal(size=3) * 3.0
        a = atoms.copy()
        a.positions = atoms.positions + shift  # not wrapped: atoms may leave the cell
        compare_state("translation", a, F, S)
        # a translation-invariant energy has no net force (Newton's third law)
        ck.compare("translation", "sum of forces", F.sum(axis=0), np.zeros(3), noise=rtol * np.abs(F).max() * len(F))

    def orthogonal(proper):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if (np.linalg.det(q) > 0) != proper:
            q[:, 0] = -q[:, 0]
        return q

    def rotated(name, M):
        a = atoms.copy()
        a.set_cell(atoms.cell.array @ M.T, scale_atoms=False)
        a.positions = atoms.positions @ M.T
        s_exp = None
        if periodic:
            s3 = M @ _voigt_to_matrix(S) @ M.T
            s_exp = np.array([s3[i, j] for i, j in _VOIGT])
        compare_state(name, a, F @ M.T, s_exp)

    def permutation():
        perm = rng.permutation(len(atoms))
        if len(atoms) > 1 and np.all(perm == np.arange(len(atoms))):
            perm = np.roll(perm, 1)
        compare_state("permutation", atoms[perm], F[perm], S)

    def wrapping():
        cell = atoms.cell.array
        a = atoms.copy()
        # each atom moved to another periodic image, then everything wrapped back
        n = rng.integers(-2, 3, size=(len(atoms), 3)) * pbc
        a.positions = atoms.positions + n @ cell
        compare_state("wrapping", a, F, S)
        b = atoms.copy()
        b.positions = atoms.positions + rng.normal(size=3) * 2.0
        b.wrap()
        compare_state("wrapping", b, F, S)

    run("translation", translation)
    run("rotation", lambda: rotated("rotation", orthogonal(True)))
    run("reflection", lambda: rotated("reflection", orthogonal(False)))
    run("permutation", permutation, None if len(atoms) > 1 else "one atom")
    run("wrapping", wrapping, None if pbc.any() else "no periodic direction")

    # ---- finite differences on the fixed graph ------------------------------
    def with_geometry(pos, cell=None):
        globals_ = g0.globals if cell is None else {**g0.globals, "cell": cell[None].astype(g0.globals["cell"].dtype)}
        return g0._replace(nodes={**g0.nodes, "positions": pos.astype(g0.nodes["positions"].dtype)}, globals=globals_)

    def e_fixed(pos, cell=None):
        return float(_efs_jit(model, params, with_geometry(pos, cell))[0][0])

    coeff = {-2: 1.0, -1: -8.0, 1: 8.0, 2: -1.0}
    noise_e = 10.0 * eps * max(abs(E), 1e-12)

    def fd_forces():
        n = len(atoms)
        which = np.arange(n) if fd_atoms is None or fd_atoms >= n else np.unique(np.linspace(0, n - 1, fd_atoms).round().astype(int))
        pos0 = atoms.positions.copy()
        fd = np.zeros((len(which), 3))
        for row, a in enumerate(which):
            for k in range(3):
                tot = 0.0
                for s, c in coeff.items():
                    p = pos0.copy()
                    p[a, k] += s * h
                    tot += c * e_fixed(p)
                fd[row, k] = -tot / (12.0 * h)
        ck.compare("fd_forces", f"forces on atoms {which.tolist()} vs central differences", F[which], fd, fd=True, noise=noise_e / h)

    def fd_stress():
        cell0 = atoms.cell.array
        volume = abs(np.linalg.det(cell0))
        fd = np.zeros(6)
        for k, (i, j) in enumerate(_VOIGT):
            tot = 0.0
            for s, c in coeff.items():
                eps_m = np.zeros((3, 3))
                eps_m[i, j] += 0.5 * s * hs
                eps_m[j, i] += 0.5 * s * hs
                d = np.eye(3) + eps_m
                tot += c * e_fixed(atoms.positions @ d, cell0 @ d)
            fd[k] = tot / (12.0 * hs) / volume
        ck.compare("fd_stress", "stress vs central strain differences", S, fd, fd=True, noise=noise_e / (hs * volume))

    run("fd_forces", fd_forces)
    run("fd_stress", fd_stress, None if periodic else "needs a 3-D periodic cell")

    # ---- padding, parameter gradients, jit -----------------------------------
    n, e_count, t_count = len(atoms), len(g0.senders), len(g0.globals["triplets"])

    def padded_pair():
        moved = atoms.copy()
        moved.positions = atoms.positions + rng.normal(size=3)
        buckets = Buckets(n_node=2 * n + 3, n_edge=2 * e_count + 5, n_graph=4,
                          n_triplet=2 * t_count + 3 if model.needs_triplets else 0)
        return batch_graphs([g0, graph_of(moved)], buckets)

    def padding():
        batch = padded_pair()
        e, f, s = (np.asarray(x, float) for x in _efs_jit(model, params, batch))
        for k in range(2):
            ck.compare("padding", f"energy of graph {k} in a padded batch", e[k], E)
            ck.compare("padding", f"forces of graph {k} in a padded batch", f[k * n : (k + 1) * n], F)
            if periodic:
                ck.compare("padding", f"stress of graph {k} in a padded batch", s[k], S)
        if not np.all(np.isfinite(f)):
            raise AssertionError("check_model[padding]: non-finite forces in the padded batch")
        ck.exact_zero("padding", "energy of the padding graphs", e[2:])
        ck.exact_zero("padding", "forces on padding atoms", f[2 * n :])

    def param_gradients():
        leaves = [x for x in jax.tree_util.tree_leaves(params) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
        if not leaves:
            return "no floating-point parameters"
        def flat(tree):
            return np.concatenate([np.ravel(np.asarray(x, float)) for x in jax.tree_util.tree_leaves(tree)] or [np.zeros(0)])

        g_single = flat(_param_grad_jit(params, model, g0))
        g_batch = flat(_param_grad_jit(params, model, padded_pair()))
        ck.compare("param_gradients", "∂E/∂params of a padded batch of two copies vs 2× one graph", g_batch, 2.0 * g_single)

    def jit_check():
        # op by op (eager) evaluation of the model; forces come from the same
        # library autodiff in both paths, so the forward pass is what can differ
        e_eager = np.asarray(per_atom_energies(model, params, g0), float)
        if not np.all(np.isfinite(e_eager)):
            raise AssertionError("check_model[jit]: non-finite per-atom energies without jit")
        ck.compare("jit", "energy without jit (sum of per-atom energies)", float(e_eager.sum()), E)

    run("padding", padding)
    run("param_gradients", param_gradients)
    run("jit", jit_check)

    # ---- 2·L·R_c range ---------------------------------------------------------
    def range_check():
        step = 0.05  # Å; pairs are "far" with a margin of 2·step, so they stay far when moved
        big, far = _structure_with_far_pairs(atoms, model, max_range_atoms, margin=2 * step)
        if big is None:
            return far
        gb = graph_of(big) if big is not atoms else g0
        pos = np.asarray(big.positions, float)

        def forces_at(p):
            return np.asarray(_efs_jit(model, params, gb._replace(nodes={**gb.nodes, "positions": p.astype(gb.nodes["positions"].dtype)}))[1], float)

        f_big = forces_at(pos)
        scale = float(np.abs(f_big).max())
        centres = sorted(far, key=lambda a: -len(far[a]))[:3]
        for a in centres:
            b = np.asarray(sorted(far[a]))
            moved = pos.copy()
            d = rng.normal(size=(len(b), 3))
            moved[b] += step * d / np.linalg.norm(d, axis=1, keepdims=True)
            f_moved = forces_at(moved)
            what = f"force on atom {a} when {len(b)} atoms beyond {model.interaction_range:g} Å move by {step} Å"
            err = float(np.abs(f_moved[a] - f_big[a]).max())
            tol = atol + rtol * scale
            ck._record("range", what, err, tol, scale)
            if not err <= tol:
                raise AssertionError(
                    f"check_model[range]: {what}: changes by {err:.3e}, exceeds tolerance {tol:.3e}; "
                    f"forces depend on atoms beyond model.interaction_range = 2·L·R_c"
                )
        report["range_structure_atoms"] = len(big)

    if model.local:
        run("range", range_check)
    else:
        run("range", range_check, reason="model is not local (Model.local is False): its forces depend on every atom, there is no 2·L·R_c range to check")
    for v in report["errors"].values():
        v["ratio"] = float(v["ratio"])
    return report


def _far_pairs(atoms, reach):
    """``{A: {B, ...}}`` of pairs with no periodic image within ``reach`` Å (A ≠ B)."""
    from ase.neighborlist import neighbor_list

    n = len(atoms)
    i, j = neighbor_list("ij", atoms, reach, self_interaction=False)
    near = np.zeros((n, n), bool)
    near[i, j] = True
    np.fill_diagonal(near, True)
    return {a: set(np.flatnonzero(~near[a]).tolist()) for a in range(n) if (~near[a]).any()}


def _structure_with_far_pairs(atoms, model, max_atoms, margin=0.0):
    """The structure, enlarged until some pair lies beyond the interaction range.

    A periodic cell is repeated along one periodic direction (the one needing
    the fewest atoms); a structure without periodic directions gets chained
    copies along x, close enough to interact. Returns ``(atoms, far_pairs)``
    or ``(None, reason)``.
    """
    reach = float(model.interaction_range) + margin
    pbc = np.asarray(atoms.pbc, bool)
    far = _far_pairs(atoms, reach)
    if far:
        return atoms, far
    for n in range(2, max_atoms // len(atoms) + 1):
        if pbc.any():
            for k in np.flatnonzero(pbc):
                reps = [1, 1, 1]
                reps[k] = n
                big = atoms.repeat(tuple(reps))
                far = _far_pairs(big, reach)
                if far:
                    return big, far
        else:
            shift = np.ptp(atoms.positions[:, 0]) + 0.7 * model.cutoff
            big = atoms.copy()
            for c in range(1, n):
                more = atoms.copy()
                more.positions = atoms.positions + np.array([c * shift, 0.0, 0.0])
                big += more
            far = _far_pairs(big, reach)
            if far:
                return big, far
    return None, f"no pair beyond {reach:g} Å within {max_atoms} atoms (raise max_range_atoms)"
