"""Read and write n2p2 (2G-HDNNP) potentials.

An n2p2 potential directory holds ``input.nn`` (settings and symmetry
functions), ``scaling.data`` (symmetry-function statistics) and one
``weights.ZZZ.data`` per element (ZZZ = atomic number).  Conventions (see
n2p2's ``Mode.cpp``, ``SymFnc*.cpp``, ``NeuralNetwork.cpp``):

* elements are indexed by increasing atomic number; per element the
  symmetry functions are sorted (:func:`jaxmlp.descriptors.sort_functions`);
  ``scaling.data`` rows are ``e_index sf_index min max mean sigma`` (1-based);
* weight files list, layer by layer, the weights with the previous-layer
  neuron as the outer loop, then the biases; the first column is the value;
* normalisation keywords (``mean_energy``, ``conv_energy``, ``conv_length``)
  mean that the networks output ``(E_i − mean_energy)·conv_energy``;
  ``atom_energy`` offsets are added per atom.

jaxmlp models work in Å and eV: :func:`load_n2p2` converts with
``length_unit`` (Å per file length unit, e.g. ``ase.units.Bohr``) and
``energy_unit`` (eV per file energy unit, e.g. ``ase.units.Hartree``).
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from ase.data import atomic_numbers

from ..descriptors.acsf import sort_functions
from ..descriptors.cutoffs import cutoff_type_id
from ..models.hdnnp import N2P2_ACTIVATIONS, hdnnp
from ..models.hdnnp4g import hdnnp4g
from ..utils import atomic_write

# jaxmlp activation name -> n2p2 letter
_TO_N2P2 = {v: k for k, v in N2P2_ACTIVATIONS.items()}

__all__ = ["load_n2p2", "read_input_nn", "save_n2p2"]

_SCALING_FROM_FLAGS = "scale", "center", "scalecenter", "sigma", "none"


def _read_settings(path) -> dict[str, list[tuple[int, list[str]]]]:
    """``keyword → [(line number, arguments), ...]`` of an ``input.nn`` (comments and blanks skipped)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"n2p2 settings file not found: {p}")
    out: dict[str, list[tuple[int, list[str]]]] = {}
    for lineno, raw in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if line:
            out.setdefault(line[0], []).append((lineno, line[1:]))
    return out


def read_input_nn(path) -> dict[str, list[list[str]]]:
    """Parse an n2p2 ``input.nn`` into ``keyword → list of argument lists``.

    Comments (``#`` to end of line) and blank lines are skipped; repeated
    keywords (``symfunction_short``, ``atom_energy``) keep every occurrence.
    """
    return {k: [args for _, args in v] for k, v in _read_settings(path).items()}


#: Single-valued keywords the importer reads: each may appear once (a repeat would silently win).
_SINGLE = (
    "nnp_generation", "nnp_type", "number_of_elements", "elements", "cutoff_type",
    "global_hidden_layers_short", "global_nodes_short", "global_activation_short",
    "scale_symmetry_functions", "center_symmetry_functions", "scale_symmetry_functions_sigma",
    "scale_min_short", "scale_max_short", "mean_energy", "conv_energy", "conv_length", "normalize_nodes",
)

#: Keywords that change the model n2p2 evaluates but that this importer does not implement.
_UNSUPPORTED = {
    "element_nodes_short": "element-specific network sizes",
    "element_activation_short": "element-specific activation functions",
    "use_electrostatics": "electrostatics (3G/4G)",
    "electrostatic_type": "electrostatics (3G/4G)",
}


def _one(settings, key, path, default=None) -> tuple[str, list[str]]:
    """``(where, arguments)`` of a single-valued keyword; ``where`` is "file, line n" for messages."""
    if key not in settings:
        if default is None:
            raise ValueError(f"{path}: required keyword '{key}' missing")
        return f"{path} ({key} default)", default
    lineno, args = settings[key][-1]
    where = f"{path}, line {lineno}"
    if not args and default is None:
        raise ValueError(f"{where}: keyword '{key}' needs a value")
    return where, args if args else default


def _float(value, what, where):
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: {what} is not finite: {value!r}")
    return x


def _int(value, what, where):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} is not an integer: {value!r}") from None


def _parse_sf(args, L, where):
    """One ``symfunction_short`` line (file units) → spec in Å."""
    text = " ".join(args)
    try:
        t = int(args[1])
    except (IndexError, ValueError):
        raise ValueError(f"{where}: malformed symfunction_short line: {text}") from None
    def f(k):
        return _float(args[k], f"symfunction_short field {k + 1}", where)
    counts = {2: (6, 6), 3: (8, 9), 9: (8, 9), 20: (6, 6), 22: (9, 9)}
    if t in counts and not counts[t][0] <= len(args) <= counts[t][1]:
        lo, hi = counts[t]
        expected = str(lo) if lo == hi else f"{lo} or {hi}"
        raise ValueError(
            f"{where}: symfunction_short of type {t} needs {expected} fields after the keyword, "
            f"got {len(args)}: {text}"
        )
    for k in ((2,) if t in (2, 20) else (2, 3) if t in (3, 9, 22) else ()):
        if args[k] not in atomic_numbers:
            raise ValueError(f"{where}: unknown element {args[k]!r} in symfunction_short line: {text}")
    if t == 2:
        return {"type": 2, "center": args[0], "e1": args[2], "eta": f(3) / L**2, "rs": f(4) * L, "rc": f(5) * L}
    if t in (3, 9):
        rs = f(8) * L if len(args) > 8 else 0.0
        return {"type": t, "center": args[0], "e1": args[2], "e2": args[3], "eta": f(4) / L**2,
                "lambda": f(5), "zeta": f(6), "rc": f(7) * L, "rs": rs}
    if t == 20:
        return {"type": 20, "center": args[0], "e1": args[2], "rl": f(3) * L, "rc": f(4) * L, "subtype": args[5]}
    if t == 22:
        return {"type": 22, "center": args[0], "e1": args[2], "e2": args[3], "rl": f(4) * L, "rc": f(5) * L,
                "angle_left": f(6), "angle_right": f(7), "subtype": args[8]}
    raise ValueError(
        f"{where}: symmetry function type {t} is not supported (supported: 2, 3, 9, 20, 22): {text}"
    )


def _scaling_mode(settings, path) -> str:
    scale, center = "scale_symmetry_functions" in settings, "center_symmetry_functions" in settings
    sigma = "scale_symmetry_functions_sigma" in settings
    if sigma and (scale or center):
        lines = sorted(n for k in ("scale_symmetry_functions", "center_symmetry_functions",
                                   "scale_symmetry_functions_sigma") for n, _ in settings.get(k, []))
        raise ValueError(
            f"{path}, lines {', '.join(map(str, lines))}: scale_symmetry_functions_sigma together with "
            "scale_symmetry_functions/center_symmetry_functions is ambiguous; keep one scaling mode"
        )
    if scale and not center:
        return "scale"
    if center and not scale:
        return "center"
    if scale and center:
        return "scalecenter"
    if sigma:
        return "sigma"
    return "none"


def _read_table(path, ncols, what, exact=False):
    """Non-blank, non-comment rows of a table file as ``[(line number, fields)]``."""
    rows = []
    for lineno, raw in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        if len(line) < ncols or (exact and len(line) != ncols):
            need = f"{ncols}" if exact else f"at least {ncols}"
            raise ValueError(f"{path}, line {lineno}: {what} row needs {need} columns, got {len(line)}")
        rows.append((lineno, line))
    return rows


def _read_scaling(path, symbols, n_functions) -> dict:
    """``scaling.data`` → ``{element: {"min"|"max"|"mean"|"sigma": [value per sorted function]}}``.

    Every row must have the six columns ``e_index sf_index min max mean
    sigma`` (a missing sigma would silently mean σ = 0), appear once, and
    together the rows must cover every function of every element.
    """
    stats = {e: {k: [None] * n_functions[e] for k in ("min", "max", "mean", "sigma")} for e in symbols}
    seen: dict[tuple[int, int], int] = {}
    for lineno, row in _read_table(
        path, 6, "scaling.data (e_index sf_index sf_min sf_max sf_mean sf_sigma)", exact=True
    ):
        where = f"{path}, line {lineno}"
        ei = _int(row[0], "element index", where)
        fi = _int(row[1], "function index", where)
        vals = [_float(x, name, where) for x, name in zip(row[2:6], ("sf_min", "sf_max", "sf_mean", "sf_sigma"))]
        if not 1 <= ei <= len(symbols) or not 1 <= fi <= n_functions[symbols[ei - 1]]:
            raise ValueError(f"{where}: element/function index ({ei}, {fi}) out of range")
        if (ei, fi) in seen:
            raise ValueError(
                f"{where}: statistics for element {ei} ({symbols[ei - 1]}), function {fi} "
                f"already given on line {seen[ei, fi]}"
            )
        seen[ei, fi] = lineno
        for k, v in zip(("min", "max", "mean", "sigma"), vals):
            stats[symbols[ei - 1]][k][fi - 1] = v
    for ei, e in enumerate(symbols, 1):
        missing = [j + 1 for j, v in enumerate(stats[e]["min"]) if v is None]
        if missing:
            raise ValueError(
                f"{path}: no statistics for element {ei} ({e}), function(s) {missing[:10]}"
                + (" ..." if len(missing) > 10 else "")
                + f" of {n_functions[e]}"
            )
    return stats


def _read_weights(path, sizes) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``weights.ZZZ.data`` of a network with layer sizes ``sizes`` → kernels and biases."""
    kernels = [np.full((a, b), np.nan) for a, b in pairwise(sizes)]
    biases = [np.full(b, np.nan) for b in sizes[1:]]
    rows = _read_table(path, 1, "weights")
    expected = sum(a * b + b for a, b in pairwise(sizes))
    if len(rows) != expected:
        raise ValueError(f"{path}: {len(rows)} values but the network {'-'.join(map(str, sizes))} needs {expected}")
    seen: dict[tuple, int] = {}
    n_layers = len(kernels)
    for lineno, row in rows:
        where = f"{path}, line {lineno}"
        text = " ".join(row)
        v = _float(row[0], "weight value", where)
        if len(row) == 7 and row[1] == "a":
            ls, ns, le, ne = (_int(x, "layer/neuron index", where) for x in row[3:7])
            if le != ls + 1 or not 1 <= le <= n_layers:
                raise ValueError(f"{where}: connection from layer {ls} to layer {le} does not exist: {text}")
            if not (1 <= ns <= sizes[ls] and 1 <= ne <= sizes[le]):
                raise ValueError(
                    f"{where}: neuron index out of range (layer {ls} has {sizes[ls]}, "
                    f"layer {le} has {sizes[le]} neurons): {text}"
                )
            key = ("a", le, ns, ne)
            target, index = kernels[le - 1], (ns - 1, ne - 1)
        elif len(row) == 5 and row[1] == "b":
            le, ne = _int(row[3], "layer index", where), _int(row[4], "neuron index", where)
            if not 1 <= le <= n_layers or not 1 <= ne <= sizes[le]:
                raise ValueError(f"{where}: bias of a neuron that does not exist: {text}")
            key = ("b", le, ne)
            target, index = biases[le - 1], ne - 1
        else:
            raise ValueError(
                f"{where}: malformed weight line {text} (expected 'value a index l_s n_s l_e n_e' "
                "or 'value b index l_e n_e')"
            )
        if key in seen:
            raise ValueError(f"{where}: the same weight is already given on line {seen[key]}: {text}")
        seen[key] = lineno
        target[index] = v
    # the count matched and no entry repeats, so every weight and bias is set
    return kernels, biases


#: Single-valued keywords of 4G potentials.
_SINGLE_4G = (
    "global_hidden_layers_electrostatic", "global_nodes_electrostatic", "global_activation_electrostatic",
    "screen_electrostatics", "ewald_truncation_error_method", "ewald_prec", "four_pi_epsilon",
)

#: 4G keywords that change the model but are not implemented.
_UNSUPPORTED_4G = {
    "element_nodes_electrostatic": "element-specific electrostatic network sizes",
    "element_activation_electrostatic": "element-specific electrostatic activation functions",
}


def _network_params(d, prefix, symbols, n_inputs, hidden):
    """``{symbol: {"layer_k": {"kernel", "bias"}}}`` from ``<prefix>.ZZZ.data`` files."""
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    networks = {}
    for e, nf in zip(symbols, n_inputs):
        wpath = d / f"{prefix}.{atomic_numbers[e]:03d}.data"
        if not wpath.is_file():
            raise FileNotFoundError(f"{prefix} file for {e} not found: {wpath}")
        kernels, biases = _read_weights(wpath, [nf] + list(hidden) + [1])
        networks[e] = {
            f"layer_{k}": {"kernel": jnp.asarray(w, dtype), "bias": jnp.asarray(b, dtype)}
            for k, (w, b) in enumerate(zip(kernels, biases))
        }
    return networks


def _per_element_lines(s, key, symbols, nn_path, L):
    """``key <element> <value>`` lines → {element: value·L}; every element exactly once."""
    out, seen = {}, {}
    for lineno, args in s.get(key, []):
        where = f"{nn_path}, line {lineno}"
        if len(args) != 2 or args[0] not in symbols:
            raise ValueError(f"{where}: bad {key} line (expected '{key} <element> <value>'): {' '.join(args)}")
        if args[0] in seen:
            raise ValueError(f"{where}: {key} of {args[0]} already given on line {seen[args[0]]}")
        seen[args[0]] = lineno
        out[args[0]] = _float(args[1], key, where) * L
    lacking = [e for e in symbols if e not in out]
    if lacking:
        raise ValueError(f"{nn_path}: {key} missing for element(s) {lacking}")
    return out


def _load_4g(d, s, nn_path, symbols, sorted_fns, hidden, acts, cutoff_type, alpha, scaling, atom_energy,
             normalize_nodes, L, U, image_range, kspace_range):
    """The 4G branch of :func:`load_n2p2` (settings already parsed and checked)."""
    for key, what in _UNSUPPORTED_4G.items():
        if key in s:
            raise ValueError(f"{nn_path}, line {s[key][0][0]}: '{key}' ({what}) is not supported by load_n2p2")
    where, args = _one(s, "global_nodes_electrostatic", nn_path)
    hidden_e = [_int(x, "global_nodes_electrostatic", where) for x in args]
    h_where, args = _one(s, "global_hidden_layers_electrostatic", nn_path, [str(len(hidden_e))])
    if _int(args[0], "global_hidden_layers_electrostatic", h_where) != len(hidden_e) or any(h < 1 for h in hidden_e):
        raise ValueError(f"{h_where}: global_hidden_layers_electrostatic = {args[0]} but "
                         f"global_nodes_electrostatic lists {hidden_e}")
    where, acts_e = _one(s, "global_activation_electrostatic", nn_path)
    if len(acts_e) != len(hidden_e) + 1 or any(a not in N2P2_ACTIVATIONS for a in acts_e):
        raise ValueError(f"{where}: global_activation_electrostatic needs {len(hidden_e) + 1} n2p2 letters, got {acts_e}")
    sigma = _per_element_lines(s, "fixed_gausswidth", symbols, nn_path, L)
    hardness = {}
    for e in symbols:
        hpath = d / f"hardness.{atomic_numbers[e]:03d}.data"
        if not hpath.is_file():
            raise FileNotFoundError(f"hardness file for {e} not found: {hpath}")
        rows = _read_table(hpath, 1, "hardness")
        if len(rows) != 1:
            raise ValueError(f"{hpath}: expected one hardness value, got {len(rows)} rows")
        hardness[e] = U * _float(rows[0][1][0], "hardness", f"{hpath}, line {rows[0][0]}")
    screening = None
    if "screen_electrostatics" in s:
        where, args = _one(s, "screen_electrostatics", nn_path)
        if len(args) not in (2, 3):
            raise ValueError(f"{where}: screen_electrostatics needs 'inner outer [core]', got {args}")
        screening = {"inner": _float(args[0], "inner radius", where) * L, "outer": _float(args[1], "outer radius", where) * L,
                     "core": args[2] if len(args) == 3 else "c"}
    method = "jackson_catlow"
    if "ewald_truncation_error_method" in s:
        where, args = _one(s, "ewald_truncation_error_method", nn_path)
        if args[0] not in ("0", "1"):
            raise ValueError(f"{where}: ewald_truncation_error_method must be 0 or 1, got {args[0]!r}")
        method = {"0": "jackson_catlow", "1": "kolafa_perram"}[args[0]]
    ewald = {"method": method, "precision": 1e-6, "estimate_coulomb": U * L, "min_eta": max(sigma.values())}
    if "ewald_prec" in s:
        where, args = _one(s, "ewald_prec", nn_path)
        if (method == "jackson_catlow" and len(args) != 1) or not 1 <= len(args) <= 3:
            raise ValueError(f"{where}: ewald_prec takes 1 value for method 0 and 1-3 for method 1, got {args}")
        prec = _float(args[0], "Ewald precision", where)
        ewald["precision"] = prec * U / L if method == "kolafa_perram" else prec
        if len(args) >= 2:
            ewald["max_charge"] = _float(args[1], "Ewald maximum charge", where)
        if len(args) == 3:
            ewald["r_cut"] = _float(args[2], "Ewald real-space cutoff", where) * L
    elif method == "kolafa_perram":
        raise ValueError(f"{nn_path}: ewald_truncation_error_method 1 requires ewald_prec")
    where, args = _one(s, "four_pi_epsilon", nn_path, ["1.0"])
    four_pi_eps = _float(args[0], "four_pi_epsilon", where)
    if not four_pi_eps > 0:
        raise ValueError(f"{where}: four_pi_epsilon must be positive")

    model = hdnnp4g(
        symbols,
        [f for e in symbols for f in sorted_fns[e]],
        hidden=hidden,
        activation=[N2P2_ACTIVATIONS[a] for a in acts[:-1]],
        output_activation=N2P2_ACTIVATIONS[acts[-1]],
        hidden_electronegativity=hidden_e,
        activation_electronegativity=[N2P2_ACTIVATIONS[a] for a in acts_e[:-1]],
        output_activation_electronegativity=N2P2_ACTIVATIONS[acts_e[-1]],
        sigma=sigma,
        hardness=hardness,
        screening=screening,
        ewald=ewald,
        coulomb=U * L / four_pi_eps,
        cutoff_type=cutoff_type,
        cutoff_alpha=alpha,
        scaling=scaling,
        e0={e: U * atom_energy[e] for e in symbols},
        energy_scale=U,
        electronegativity_scale=U,
        normalize_nodes=normalize_nodes,
        image_range=image_range,
        kspace_range=kspace_range,
    )
    acsf = model.extras["descriptor"]
    short = _network_params(d, "weights", acsf.symbols, [nf + 1 for nf in acsf.n_functions], hidden)
    chi = _network_params(d, "weightse", acsf.symbols, list(acsf.n_functions), hidden_e)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return model, {"networks": short, "electronegativity": chi,
                   "hardness": {e: jnp.asarray(hardness[e], dtype) for e in acsf.symbols}}


def load_n2p2(directory, length_unit: float = 1.0, energy_unit: float = 1.0, *, image_range=(2, 2, 2),
              kspace_range=(3, 3, 3), max_neighbors: int | None = None):
    """Load an n2p2 2G-HDNNP (``hdnnp``) or 4G-HDNNP (``hdnnp4g``) as a jaxmlp model working in Å and eV.

    Parameters
    ----------
    directory : str or os.PathLike
        Folder with ``input.nn``, ``scaling.data`` and ``weights.ZZZ.data``.
    length_unit : float
        Å per length unit of the files (``ase.units.Bohr`` for Bohr).
    energy_unit : float
        eV per energy unit of the files (``ase.units.Hartree`` for Hartree).

    image_range, kspace_range : 3 ints
        4G only: static Ewald grids of the model (see
        :func:`jaxmlp.models.hdnnp4g`; they must reach the Ewald cutoffs of
        the periodic structures to be evaluated).
    max_neighbors : int or None
        2G only: the dense neighbour layout of :func:`jaxmlp.models.hdnnp`
        (``K`` slots per atom, e.g. :func:`jaxmlp.graph.max_degree` of the
        structures; faster, and graphs need no triplets). ``None``: the
        triplet list.

    Returns
    -------
    (Model, params)
        For a 4G potential (``nnp_generation 4``) a
        :func:`jaxmlp.models.hdnnp4g` with n2p2's electronegativity networks
        (``weightse.ZZZ.data``), hardness (``hardness.ZZZ.data``, not
        ``initial_hardness``), ``fixed_gausswidth``, ``screen_electrostatics``,
        ``ewald_truncation_error_method``/``ewald_prec`` and
        ``four_pi_epsilon`` (Coulomb constant ``energy_unit·length_unit /
        four_pi_epsilon``); short-range networks take the charge as their
        last input. Otherwise ``jaxmlp.models.hdnnp`` whose per-atom energy is
        ``energy_unit · (NN_i / conv_energy + mean_energy + atom_energy_Z)``;
        forces from :mod:`jaxmlp.observables` are in eV/Å. ``conv_length``
        needs no conversion: n2p2 keeps symmetry-function parameters in
        physical units and the symmetry-function values are unitless.

    Raises
    ------
    FileNotFoundError
        For a missing directory or file.
    ValueError
        For a 3G potential, a 4G potential with data-set normalisation
        keywords (not supported for 4G), keywords that change the model but are not implemented
        (element-specific network sizes or activations), a partial set of
        the normalisation keywords ``mean_energy``, ``conv_energy``,
        ``conv_length`` (n2p2 needs all or none), a single-valued
        keyword given twice, an ambiguous scaling mode, unsupported or
        malformed symmetry functions, ``scaling.data`` rows without all six
        columns (a missing sigma would mean σ = 0), repeated or missing
        ``scaling.data`` rows, and repeated, out-of-range, missing or
        malformed weights. Messages name the file and the line.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"n2p2 potential directory not found: {d}")
    L, U = float(length_unit), float(energy_unit)
    if not (L > 0 and U > 0 and math.isfinite(L) and math.isfinite(U)):
        raise ValueError(f"length_unit and energy_unit must be positive, got {length_unit}, {energy_unit}")
    nn_path = d / "input.nn"
    s = _read_settings(nn_path)
    where, args = _one(s, "nnp_generation", nn_path, ["2"])
    gen = _int(args[0], "nnp_generation", where)
    if "nnp_type" in s:
        gen = {"1": 2, "2": 3, "3": 4}.get(_one(s, "nnp_type", nn_path)[1][0], gen)
    if gen not in (2, 4):
        raise ValueError(f"{d}: nnp_generation {gen} not supported; only 2G and 4G potentials can be loaded")
    for key in _SINGLE + (_SINGLE_4G if gen == 4 else ()):
        if len(s.get(key, [])) > 1:
            lines = ", ".join(str(n) for n, _ in s[key])
            raise ValueError(f"{nn_path}, lines {lines}: keyword '{key}' given {len(s[key])} times")
    for key, what in _UNSUPPORTED.items():
        if key in s:
            raise ValueError(f"{nn_path}, line {s[key][0][0]}: '{key}' ({what}) is not supported by load_n2p2")
    where, elements = _one(s, "elements", nn_path)
    n_where, n_args = _one(s, "number_of_elements", nn_path)
    n_el = _int(n_args[0], "number_of_elements", n_where)
    if n_el != len(elements):
        raise ValueError(f"{n_where}: number_of_elements = {n_el} but elements lists {len(elements)}: {elements}")
    for e in elements:
        if e not in atomic_numbers or atomic_numbers[e] == 0:
            raise ValueError(f"{where}: unknown element {e!r}")
    if len(set(elements)) != len(elements):
        raise ValueError(f"{where}: elements listed twice: {elements}")
    symbols = sorted(elements, key=lambda e: atomic_numbers[e])
    where, ct = _one(s, "cutoff_type", nn_path)
    cutoff_type = cutoff_type_id(_int(ct[0], "cutoff_type", where))
    alpha = _float(ct[1], "cutoff alpha", where) if len(ct) > 1 else 0.0
    where, args = _one(s, "global_nodes_short", nn_path)
    hidden = [_int(x, "global_nodes_short", where) for x in args]
    h_where, args = _one(s, "global_hidden_layers_short", nn_path, [str(len(hidden))])
    n_hidden = _int(args[0], "global_hidden_layers_short", h_where)
    if n_hidden != len(hidden) or any(h < 1 for h in hidden):
        raise ValueError(f"{h_where}: global_hidden_layers_short = {n_hidden} but global_nodes_short lists {hidden}")
    where, acts = _one(s, "global_activation_short", nn_path)
    if len(acts) != len(hidden) + 1:
        raise ValueError(f"{where}: global_activation_short needs {len(hidden) + 1} letters, got {acts}")
    for a in acts:
        if a not in N2P2_ACTIVATIONS:
            raise ValueError(f"{where}: unknown activation {a!r}; n2p2 letters are {sorted(N2P2_ACTIVATIONS)}")
    if "symfunction_short" not in s:
        raise ValueError(f"{nn_path}: no symfunction_short lines")
    functions = []
    for lineno, args in s["symfunction_short"]:
        spec = _parse_sf(args, L, f"{nn_path}, line {lineno}")
        for key in ("center", "e1", "e2"):
            if key in spec and spec[key] not in symbols:
                raise ValueError(
                    f"{nn_path}, line {lineno}: element {spec[key]!r} of a symfunction_short line "
                    f"is not in elements {elements}"
                )
        functions.append(spec)
    sorted_fns = sort_functions(functions, symbols)
    mode = _scaling_mode(s, nn_path)
    norm = ("mean_energy", "conv_energy", "conv_length")
    present = [k for k in norm if k in s]
    if present and len(present) != len(norm):
        # n2p2 normalises only with all three keywords (and refuses a partial set);
        # applying a lone mean_energy or conv_energy would shift or scale every energy
        lines = ", ".join(str(s[k][0][0]) for k in present)
        raise ValueError(
            f"{nn_path}, line(s) {lines}: {', '.join(present)} without "
            f"{', '.join(k for k in norm if k not in s)}; use all or none of {', '.join(norm)}"
        )
    scalars = {}
    for key, default in (("scale_min_short", "0.0"), ("scale_max_short", "1.0"), ("mean_energy", "0.0")):
        where, args = _one(s, key, nn_path, [default])
        scalars[key] = _float(args[0], key, where)
    smin, smax, mean_energy = scalars["scale_min_short"], scalars["scale_max_short"], scalars["mean_energy"]
    c_where, c_args = _one(s, "conv_energy", nn_path, ["1.0"])
    conv_energy = _float(c_args[0], "conv_energy", c_where)
    if conv_energy == 0:
        raise ValueError(f"{c_where}: conv_energy must not be 0")
    atom_energy = {e: 0.0 for e in symbols}
    ae_seen: dict[str, int] = {}
    for lineno, args in s.get("atom_energy", []):
        where = f"{nn_path}, line {lineno}"
        if len(args) != 2 or args[0] not in atom_energy:
            raise ValueError(f"{where}: bad atom_energy line (expected 'atom_energy <element> <E>'): {' '.join(args)}")
        if args[0] in ae_seen:
            raise ValueError(f"{where}: atom_energy of {args[0]} already given on line {ae_seen[args[0]]}")
        ae_seen[args[0]] = lineno
        atom_energy[args[0]] = _float(args[1], "atom_energy", where)

    if gen == 4 and present:
        raise ValueError(
            f"{nn_path}, line(s) {', '.join(str(s[k][0][0]) for k in present)}: data-set normalisation "
            f"({', '.join(present)}) is not supported for 4G-HDNNPs by load_n2p2"
        )
    stats = None
    if mode != "none":
        sc_path = d / "scaling.data"
        if not sc_path.is_file():
            raise FileNotFoundError(f"scaling file not found: {sc_path}")
        stats = _read_scaling(sc_path, symbols, {e: len(sorted_fns[e]) for e in symbols})
    scaling = {"mode": mode, "smin": smin, "smax": smax, "stats": stats}

    if gen == 4:
        if max_neighbors is not None:
            raise ValueError("load_n2p2: max_neighbors (the dense ACSF layout) is not available for 4G-HDNNPs")
        return _load_4g(d, s, nn_path, symbols, sorted_fns, hidden, acts, cutoff_type, alpha, scaling, atom_energy,
                        "normalize_nodes" in s, L, U, image_range, kspace_range)
    model = hdnnp(
        symbols,
        [f for e in symbols for f in sorted_fns[e]],
        hidden=hidden,
        activation=[N2P2_ACTIVATIONS[a] for a in acts[:-1]],
        output_activation=N2P2_ACTIVATIONS[acts[-1]],
        cutoff_type=cutoff_type,
        cutoff_alpha=alpha,
        scaling=scaling,
        e0={e: U * (mean_energy + atom_energy[e]) for e in symbols},
        energy_scale=U / conv_energy,
        normalize_nodes="normalize_nodes" in s,
        max_neighbors=max_neighbors,
    )

    acsf = model.extras["descriptor"]
    return model, {"networks": _network_params(d, "weights", acsf.symbols, acsf.n_functions, hidden)}


def _fmt(x: float) -> str:
    return f"{float(x):.17E}"


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text))


def _check_networks(params, symbols, n_functions, hidden) -> None:
    """Refuse, before any file is written, parameters that do not fit the model's networks."""
    if not isinstance(params, dict) or not isinstance(params.get("networks"), dict):
        raise TypeError("params must be a dict with a 'networks' dict holding one network per element")
    networks = params["networks"]
    for e, nf in zip(symbols, n_functions):
        if e not in networks:
            raise ValueError(f"params have no network for element {e} (networks: {sorted(networks)})")
        sizes = [nf, *hidden, 1]
        layers = networks[e]
        for k, (a, b) in enumerate(pairwise(sizes)):
            layer = layers.get(f"layer_{k}") if isinstance(layers, dict) else None
            if layer is None:
                raise ValueError(f"network of {e}: layer_{k} missing (sizes {'-'.join(map(str, sizes))})")
            W, bias = np.asarray(layer["kernel"]), np.asarray(layer["bias"])
            if W.shape != (a, b) or bias.shape != (b,):
                raise ValueError(
                    f"network of {e}: layer_{k} has kernel {W.shape} and bias {bias.shape}, expected ({a}, {b}) and ({b},)"
                )
            if not (np.isfinite(W).all() and np.isfinite(bias).all()):
                raise ValueError(f"network of {e}: layer_{k} holds NaN or inf")
        if f"layer_{len(sizes) - 1}" in layers:
            raise ValueError(f"network of {e} has more layers than the model's {len(sizes) - 1}")


def _sf_lines(fns, symbols, L) -> list[str]:
    """``symfunction_short`` lines (file length unit ``L`` Å) of the sorted functions ``fns[element]``."""
    lines = []
    for e in symbols:
        for f in fns[e]:
            t = f["type"]
            if t == 2:
                body = f"{f['e1']} {_fmt(f['eta'] * L**2)} {_fmt(f['rs'] / L)} {_fmt(f['rc'] / L)}"
            elif t in (3, 9):
                body = (f"{f['e1']} {f['e2']} {_fmt(f['eta'] * L**2)} {_fmt(f['lambda'])} {_fmt(f['zeta'])} "
                        f"{_fmt(f['rc'] / L)} {_fmt(f['rs'] / L)}")
            elif t == 20:
                body = f"{f['e1']} {_fmt(f['rl'] / L)} {_fmt(f['rc'] / L)} {f['subtype']}"
            else:
                body = (f"{f['e1']} {f['e2']} {_fmt(f['rl'] / L)} {_fmt(f['rc'] / L)} {_fmt(f['angle_left'])} "
                        f"{_fmt(f['angle_right'])} {f['subtype']}")
            lines.append(f"symfunction_short {e} {t} {body}")
    return lines


def _scaling_text(stats, fns, symbols) -> str:
    rows = ["# e_index sf_index sf_min sf_max sf_mean sf_sigma (written by jaxmlp)"]
    for i, e in enumerate(symbols, 1):
        for j in range(len(fns[e])):
            vals = [stats[e][k][j] for k in ("min", "max", "mean", "sigma")] if stats else [0.0, 1.0, 0.0, 1.0]
            rows.append(f"{i:10d} {j + 1:10d} " + " ".join(_fmt(v) for v in vals))
    return "\n".join(rows) + "\n"


def _weights_text(net, out_factor: float = 1.0) -> str:
    """One network's weight file; ``out_factor`` multiplies the last layer (a linear output's scale)."""
    out = ["# connection t index l_s n_s l_e n_e (written by jaxmlp)"]
    idx = 1
    k = 0
    n_layers = sum(1 for key in net if key.startswith("layer_"))
    while f"layer_{k}" in net:
        f = out_factor if k == n_layers - 1 else 1.0
        W = np.asarray(net[f"layer_{k}"]["kernel"], np.float64) * f
        b = np.asarray(net[f"layer_{k}"]["bias"], np.float64) * f
        for a in range(W.shape[0]):
            for c in range(W.shape[1]):
                out.append(f"{_fmt(W[a, c])} a {idx:9d} {k:5d} {a + 1:5d} {k + 1:5d} {c + 1:5d}")
                idx += 1
        for c in range(b.shape[0]):
            out.append(f"{_fmt(b[c])} b {idx:9d} {k + 1:5d} {c + 1:5d}")
            idx += 1
        k += 1
    return "\n".join(out) + "\n"


def save_n2p2(directory, model, params, length_unit: float = 1.0, energy_unit: float = 1.0) -> None:
    """Export a jaxmlp ``hdnnp`` model to an n2p2 potential directory.

    Writes ``input.nn``, ``scaling.data`` and ``weights.ZZZ.data`` in file
    units given by ``length_unit`` (Å per unit) and ``energy_unit`` (eV per
    unit). The output scale and E0 become ``conv_energy`` and ``atom_energy``
    (``mean_energy = 0``, ``conv_length = 1``), so
    ``load_n2p2(directory, length_unit, energy_unit)`` reproduces the model.

    Parameters
    ----------
    directory : str or os.PathLike
        Created if needed; existing files of the same names are replaced.
    model : Model
        A ``hdnnp`` model.
    params : dict
        Its parameters.

    Raises
    ------
    ValueError
        If the model is not an HDNNP or uses an activation n2p2 lacks
        (``shifted_softplus``), or the parameters do not fit its networks
        (missing element, wrong layer shapes, NaN/inf); nothing is written
        then.
    """
    if getattr(model, "name", None) == "hdnnp4g":
        return _save_4g(directory, model, params, float(length_unit), float(energy_unit))
    if getattr(model, "name", None) != "hdnnp":
        raise ValueError(f"save_n2p2 exports hdnnp and hdnnp4g models only, got {getattr(model, 'name', type(model).__name__)!r}")
    cfg = model.config
    L, U = float(length_unit), float(energy_unit)
    acts = list(cfg["activation"]) + [cfg["output_activation"]]
    for a in acts:
        if a not in _TO_N2P2:
            raise ValueError(f"activation {a!r} has no n2p2 equivalent; n2p2 supports {sorted(_TO_N2P2)}")
    if cfg["energy_scale"] == 0:
        raise ValueError("energy_scale 0 cannot be written as n2p2 conv_energy")
    symbols = cfg["elements"]
    fns = sort_functions(cfg["symmetry_functions"], symbols)
    _check_networks(params, symbols, [len(fns[e]) for e in symbols], list(cfg["hidden"]))
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    scaling = cfg.get("scaling") or {"mode": "none"}
    mode = scaling["mode"]
    lines = [
        "# n2p2 2G-HDNNP written by jaxmlp.io.save_n2p2",
        f"mean_energy {_fmt(0.0)}",
        f"conv_energy {_fmt(U / cfg['energy_scale'])}",
        f"conv_length {_fmt(1.0)}",
        f"number_of_elements {len(symbols)}",
        "elements " + " ".join(symbols),
    ]
    ct = cutoff_type_id(cfg["cutoff_type"])
    lines.append(f"cutoff_type {ct} {_fmt(cfg['cutoff_alpha'])}")
    flags = {"scale": ["scale_symmetry_functions"], "center": ["center_symmetry_functions"],
             "scalecenter": ["scale_symmetry_functions", "center_symmetry_functions"],
             "sigma": ["scale_symmetry_functions_sigma"], "none": []}[mode]
    lines += flags
    if mode in ("scale", "scalecenter", "sigma"):
        lines += [f"scale_min_short {_fmt(scaling['smin'])}", f"scale_max_short {_fmt(scaling['smax'])}"]
    if cfg.get("normalize_nodes"):
        lines.append("normalize_nodes")
    lines.append(f"global_hidden_layers_short {len(cfg['hidden'])}")
    lines.append("global_nodes_short " + " ".join(str(h) for h in cfg["hidden"]))
    lines.append("global_activation_short " + " ".join(_TO_N2P2[a] for a in acts))
    for e in symbols:
        lines.append(f"atom_energy {e} {_fmt(cfg['e0'][e] / U)}")
    lines += _sf_lines(fns, symbols, L)
    _write_text(d / "input.nn", "\n".join(lines) + "\n")
    _write_text(d / "scaling.data", _scaling_text(scaling.get("stats"), fns, symbols))
    for e in symbols:
        _write_text(d / f"weights.{atomic_numbers[e]:03d}.data", _weights_text(params["networks"][e]))


def _save_4g(directory, model, params, L, U) -> None:
    """The 4G branch of :func:`save_n2p2`."""
    cfg = model.config
    acts = list(cfg["activation"]) + [cfg["output_activation"]]
    acts_e = list(cfg["activation_electronegativity"]) + [cfg["output_activation_electronegativity"]]
    for a in acts + acts_e:
        if a not in _TO_N2P2:
            raise ValueError(f"activation {a!r} has no n2p2 equivalent; n2p2 supports {sorted(_TO_N2P2)}")
    # n2p2 4G networks output file units directly: the output scales go into the (linear) last layers
    f_short, f_chi = cfg["energy_scale"] / U, cfg["electronegativity_scale"] / U
    for what, act, f in (("short-range", acts[-1], f_short), ("electronegativity", acts_e[-1], f_chi)):
        if act != "linear" and abs(f - 1.0) > 1e-15:
            raise ValueError(f"the {what} output scale {f * U} differs from energy_unit {U} and its output activation "
                             f"{act!r} is not linear, so it cannot be folded into the weights")
    symbols = cfg["elements"]
    fns = sort_functions(cfg["symmetry_functions"], symbols)
    nf = [len(fns[e]) for e in symbols]
    if not isinstance(params, dict) or not all(k in params for k in ("networks", "electronegativity", "hardness")):
        raise TypeError("4G params must be a dict with 'networks', 'electronegativity' and 'hardness'")
    _check_networks(params, symbols, [n + 1 for n in nf], list(cfg["hidden"]))
    _check_networks({"networks": params["electronegativity"]}, symbols, nf, list(cfg["hidden_electronegativity"]))
    hardness = {}
    for e in symbols:
        h = np.asarray(params["hardness"].get(e, np.nan), np.float64).reshape(-1)
        if h.size != 1 or not np.isfinite(h[0]):
            raise ValueError(f"params['hardness'] of {e} must be one finite number, got {h}")
        hardness[e] = float(h[0])
    ew = cfg["ewald"]
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    scaling = cfg.get("scaling") or {"mode": "none"}
    mode = scaling["mode"]
    lines = [
        "# n2p2 4G-HDNNP written by jaxmlp.io.save_n2p2",
        "nnp_generation 4",
        f"number_of_elements {len(symbols)}",
        "elements " + " ".join(symbols),
        f"cutoff_type {cutoff_type_id(cfg['cutoff_type'])} {_fmt(cfg['cutoff_alpha'])}",
    ]
    lines += {"scale": ["scale_symmetry_functions"], "center": ["center_symmetry_functions"],
              "scalecenter": ["scale_symmetry_functions", "center_symmetry_functions"],
              "sigma": ["scale_symmetry_functions_sigma"], "none": []}[mode]
    if mode in ("scale", "scalecenter", "sigma"):
        lines += [f"scale_min_short {_fmt(scaling['smin'])}", f"scale_max_short {_fmt(scaling['smax'])}"]
    if cfg.get("normalize_nodes"):
        lines.append("normalize_nodes")
    lines += [
        f"global_hidden_layers_short {len(cfg['hidden'])}",
        "global_nodes_short " + " ".join(str(h) for h in cfg["hidden"]),
        "global_activation_short " + " ".join(_TO_N2P2[a] for a in acts),
        f"global_hidden_layers_electrostatic {len(cfg['hidden_electronegativity'])}",
        "global_nodes_electrostatic " + " ".join(str(h) for h in cfg["hidden_electronegativity"]),
        "global_activation_electrostatic " + " ".join(_TO_N2P2[a] for a in acts_e),
    ]
    lines += [f"atom_energy {e} {_fmt(cfg['e0'][e] / U)}" for e in symbols]
    lines += [f"fixed_gausswidth {e} {_fmt(cfg['sigma'][e] / L)}" for e in symbols]
    if cfg.get("screening"):
        scr = cfg["screening"]
        lines.append(f"screen_electrostatics {_fmt(scr['inner'] / L)} {_fmt(scr['outer'] / L)} {scr['core']}")
    kp = ew["method"] == "kolafa_perram"
    lines.append(f"ewald_truncation_error_method {1 if kp else 0}")
    prec = [_fmt(ew["precision"] * L / U if kp else ew["precision"])]
    if kp:
        prec.append(_fmt(ew["max_charge"]))
        if ew.get("r_cut") is not None:
            prec.append(_fmt(ew["r_cut"] / L))
    lines.append("ewald_prec " + " ".join(prec))
    lines.append(f"four_pi_epsilon {_fmt(U * L / cfg['coulomb'])}")
    lines += _sf_lines(fns, symbols, L)
    _write_text(d / "input.nn", "\n".join(lines) + "\n")
    _write_text(d / "scaling.data", _scaling_text(scaling.get("stats"), fns, symbols))
    for e in symbols:
        z = atomic_numbers[e]
        _write_text(d / f"weights.{z:03d}.data", _weights_text(params["networks"][e], f_short))
        _write_text(d / f"weightse.{z:03d}.data", _weights_text(params["electronegativity"][e], f_chi))
        _write_text(d / f"hardness.{z:03d}.data", f"{_fmt(hardness[e] / U)}\n")
