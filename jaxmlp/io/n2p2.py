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
import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from ..descriptors.acsf import sort_functions
from ..descriptors.cutoffs import cutoff_type_id
from ..models.hdnnp import N2P2_ACTIVATIONS, hdnnp

# jaxmlp activation name -> n2p2 letter
_TO_N2P2 = {v: k for k, v in N2P2_ACTIVATIONS.items()}

__all__ = ["load_n2p2", "save_n2p2", "read_input_nn"]

_SCALING_FROM_FLAGS = "scale", "center", "scalecenter", "sigma", "none"


def read_input_nn(path) -> dict[str, list[list[str]]]:
    """Parse an n2p2 ``input.nn`` into ``keyword → list of argument lists``.

    Comments (``#`` to end of line) and blank lines are skipped; repeated
    keywords (``symfunction_short``, ``atom_energy``) keep every occurrence.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"n2p2 settings file not found: {p}")
    out: dict[str, list[list[str]]] = {}
    for raw in p.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split("#", 1)[0].split()
        if line:
            out.setdefault(line[0], []).append(line[1:])
    return out


def _one(settings, key, path, default=None):
    if key not in settings:
        if default is None:
            raise ValueError(f"{path}: required keyword '{key}' missing")
        return default
    return settings[key][-1]


def _float(value, what, path):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {what} is not a number: {value!r}") from None


def _parse_sf(args, L, path):
    """One ``symfunction_short`` line (file units) → spec in Å."""
    try:
        t = int(args[1])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: malformed symfunction_short line: {' '.join(args)}") from None
    f = lambda k: _float(args[k], f"symfunction_short field {k + 1}", path)  # noqa: E731
    try:
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
    except IndexError:
        raise ValueError(f"{path}: too few fields in symfunction_short line: {' '.join(args)}") from None
    raise ValueError(
        f"{path}: symmetry function type {t} is not supported (supported: 2, 3, 9, 20, 22): {' '.join(args)}"
    )


def _scaling_mode(settings) -> str:
    scale, center = "scale_symmetry_functions" in settings, "center_symmetry_functions" in settings
    if scale and not center:
        return "scale"
    if center and not scale:
        return "center"
    if scale and center:
        return "scalecenter"
    if "scale_symmetry_functions_sigma" in settings:
        return "sigma"
    return "none"


def _read_table(path, ncols, what):
    rows = []
    for lineno, raw in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        if len(line) < ncols:
            raise ValueError(f"{path}, line {lineno}: {what} row needs at least {ncols} columns, got {len(line)}")
        rows.append((lineno, line))
    return rows


def load_n2p2(directory, length_unit: float = 1.0, energy_unit: float = 1.0):
    """Load an n2p2 2G-HDNNP as a jaxmlp ``hdnnp`` model working in Å and eV.

    Parameters
    ----------
    directory : str or os.PathLike
        Folder with ``input.nn``, ``scaling.data`` and ``weights.ZZZ.data``.
    length_unit : float
        Å per length unit of the files (``ase.units.Bohr`` for Bohr).
    energy_unit : float
        eV per energy unit of the files (``ase.units.Hartree`` for Hartree).

    Returns
    -------
    (Model, params)
        ``jaxmlp.models.hdnnp`` whose per-atom energy is
        ``energy_unit · (NN_i / conv_energy + mean_energy + atom_energy_Z)``;
        forces from :mod:`jaxmlp.observables` are in eV/Å.

    Raises
    ------
    FileNotFoundError
        For a missing directory or file.
    ValueError
        For a 4G (or 3G) potential (charges/electrostatics not supported
        yet), unsupported symmetry-function types, inconsistent scaling or
        weight files, and malformed lines (the message names file and line).
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"n2p2 potential directory not found: {d}")
    L, U = float(length_unit), float(energy_unit)
    if not (L > 0 and U > 0 and math.isfinite(L) and math.isfinite(U)):
        raise ValueError(f"length_unit and energy_unit must be positive, got {length_unit}, {energy_unit}")
    nn_path = d / "input.nn"
    s = read_input_nn(nn_path)
    gen = int(_float(_one(s, "nnp_generation", nn_path, ["2"])[0], "nnp_generation", nn_path))
    if "nnp_type" in s:
        gen = {"1": 2, "2": 3, "3": 4}.get(_one(s, "nnp_type", nn_path)[0], gen)
    if gen == 4:
        raise ValueError(f"{d}: 4G-HDNNP (charges/electrostatics) not supported yet; only 2G potentials can be loaded")
    if gen != 2:
        raise ValueError(f"{d}: nnp_generation {gen} not supported yet; only 2G potentials can be loaded")
    elements = _one(s, "elements", nn_path)
    n_el = int(_float(_one(s, "number_of_elements", nn_path)[0], "number_of_elements", nn_path))
    if n_el != len(elements):
        raise ValueError(f"{nn_path}: number_of_elements = {n_el} but elements lists {len(elements)}: {elements}")
    for e in elements:
        if e not in atomic_numbers:
            raise ValueError(f"{nn_path}: unknown element {e!r}")
    symbols = sorted(elements, key=lambda e: atomic_numbers[e])
    ct = _one(s, "cutoff_type", nn_path)
    cutoff_type = cutoff_type_id(int(_float(ct[0], "cutoff_type", nn_path)))
    alpha = _float(ct[1], "cutoff alpha", nn_path) if len(ct) > 1 else 0.0
    hidden = [int(_float(x, "global_nodes_short", nn_path)) for x in _one(s, "global_nodes_short", nn_path)]
    n_hidden = int(_float(_one(s, "global_hidden_layers_short", nn_path, [str(len(hidden))])[0], "global_hidden_layers_short", nn_path))
    if n_hidden != len(hidden):
        raise ValueError(f"{nn_path}: global_hidden_layers_short = {n_hidden} but global_nodes_short lists {hidden}")
    acts = _one(s, "global_activation_short", nn_path)
    if len(acts) != len(hidden) + 1:
        raise ValueError(f"{nn_path}: global_activation_short needs {len(hidden) + 1} letters, got {acts}")
    for a in acts:
        if a not in N2P2_ACTIVATIONS:
            raise ValueError(f"{nn_path}: unknown activation {a!r}; n2p2 letters are {sorted(N2P2_ACTIVATIONS)}")
    if "symfunction_short" not in s:
        raise ValueError(f"{nn_path}: no symfunction_short lines")
    functions = [_parse_sf(args, L, nn_path) for args in s["symfunction_short"]]
    sorted_fns = sort_functions(functions, symbols)
    mode = _scaling_mode(s)
    smin = _float(_one(s, "scale_min_short", nn_path, ["0.0"])[0], "scale_min_short", nn_path)
    smax = _float(_one(s, "scale_max_short", nn_path, ["1.0"])[0], "scale_max_short", nn_path)
    mean_energy = _float(_one(s, "mean_energy", nn_path, ["0.0"])[0], "mean_energy", nn_path)
    conv_energy = _float(_one(s, "conv_energy", nn_path, ["1.0"])[0], "conv_energy", nn_path)
    atom_energy = {e: 0.0 for e in symbols}
    for args in s.get("atom_energy", []):
        if len(args) < 2 or args[0] not in atom_energy:
            raise ValueError(f"{nn_path}: bad atom_energy line: {' '.join(args)}")
        atom_energy[args[0]] = _float(args[1], "atom_energy", nn_path)

    # scaling.data
    stats = None
    if mode != "none":
        sc_path = d / "scaling.data"
        if not sc_path.is_file():
            raise FileNotFoundError(f"scaling file not found: {sc_path}")
        stats = {e: {k: [None] * len(sorted_fns[e]) for k in ("min", "max", "mean", "sigma")} for e in symbols}
        for lineno, row in _read_table(sc_path, 5, "scaling.data"):
            try:
                ei, fi = int(row[0]), int(row[1])
                vals = [float(x) for x in row[2:6]] + ([] if len(row) > 5 else [0.0])
            except ValueError:
                raise ValueError(f"{sc_path}, line {lineno}: non-numeric field in {row}") from None
            if not 1 <= ei <= len(symbols) or not 1 <= fi <= len(sorted_fns[symbols[ei - 1]]):
                raise ValueError(f"{sc_path}, line {lineno}: element/function index ({ei}, {fi}) out of range")
            for k, v in zip(("min", "max", "mean", "sigma"), vals):
                stats[symbols[ei - 1]][k][fi - 1] = v
        for e in symbols:
            if any(v is None for v in stats[e]["min"]):
                raise ValueError(f"{sc_path}: statistics missing for some functions of element {e}")
    scaling = {"mode": mode, "smin": smin, "smax": smax, "stats": stats}

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
    )

    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    networks = {}
    for e, nf in zip(model.extras["descriptor"].symbols, model.extras["descriptor"].n_functions):
        wpath = d / f"weights.{atomic_numbers[e]:03d}.data"
        if not wpath.is_file():
            raise FileNotFoundError(f"weights file for {e} not found: {wpath}")
        sizes = [nf] + hidden + [1]
        kernels = [np.full((a, b), np.nan) for a, b in zip(sizes[:-1], sizes[1:])]
        biases = [np.full(b, np.nan) for b in sizes[1:]]
        rows = _read_table(wpath, 1, "weights")
        expected = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        if len(rows) != expected:
            raise ValueError(
                f"{wpath}: {len(rows)} values but the network {'-'.join(map(str, sizes))} needs {expected}"
            )
        for lineno, row in rows:
            try:
                v = float(row[0])
                if len(row) >= 7 and row[1] == "a":
                    ls, ns, le, ne = (int(x) for x in row[3:7])
                    if le != ls + 1 or not 1 <= le <= len(kernels):
                        raise ValueError
                    kernels[le - 1][ns - 1, ne - 1] = v
                elif len(row) >= 5 and row[1] == "b":
                    le, ne = int(row[3]), int(row[4])
                    biases[le - 1][ne - 1] = v
                else:
                    raise ValueError
            except (ValueError, IndexError):
                raise ValueError(f"{wpath}, line {lineno}: malformed weight line {' '.join(row)}") from None
        if any(np.isnan(k).any() for k in kernels) or any(np.isnan(b).any() for b in biases):
            raise ValueError(f"{wpath}: some weights or biases are missing")
        networks[e] = {
            f"layer_{k}": {"kernel": jnp.asarray(w, dtype), "bias": jnp.asarray(b, dtype)}
            for k, (w, b) in enumerate(zip(kernels, biases))
        }
    return model, {"networks": networks}


def _fmt(x: float) -> str:
    return f"{float(x):.17E}"


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
        (``shifted_softplus``).
    """
    if getattr(model, "name", None) != "hdnnp":
        raise ValueError(f"save_n2p2 exports hdnnp models only, got {getattr(model, 'name', type(model).__name__)!r}")
    cfg = model.config
    L, U = float(length_unit), float(energy_unit)
    acts = list(cfg["activation"]) + [cfg["output_activation"]]
    for a in acts:
        if a not in _TO_N2P2:
            raise ValueError(f"activation {a!r} has no n2p2 equivalent; n2p2 supports {sorted(_TO_N2P2)}")
    if cfg["energy_scale"] == 0:
        raise ValueError("energy_scale 0 cannot be written as n2p2 conv_energy")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    symbols = cfg["elements"]
    fns = sort_functions(cfg["symmetry_functions"], symbols)
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
    _atomic_write_text(d / "input.nn", "\n".join(lines) + "\n")

    stats = scaling.get("stats")
    rows = ["# e_index sf_index sf_min sf_max sf_mean sf_sigma (written by jaxmlp)"]
    for i, e in enumerate(symbols, 1):
        for j in range(len(fns[e])):
            vals = [stats[e][k][j] for k in ("min", "max", "mean", "sigma")] if stats else [0.0, 1.0, 0.0, 1.0]
            rows.append(f"{i:10d} {j + 1:10d} " + " ".join(_fmt(v) for v in vals))
    _atomic_write_text(d / "scaling.data", "\n".join(rows) + "\n")

    for e in symbols:
        net = params["networks"][e]
        out = ["# connection t index l_s n_s l_e n_e (written by jaxmlp)"]
        idx = 1
        k = 0
        while f"layer_{k}" in net:
            W = np.asarray(net[f"layer_{k}"]["kernel"], np.float64)
            b = np.asarray(net[f"layer_{k}"]["bias"], np.float64)
            for a in range(W.shape[0]):
                for c in range(W.shape[1]):
                    out.append(f"{_fmt(W[a, c])} a {idx:9d} {k:5d} {a + 1:5d} {k + 1:5d} {c + 1:5d}")
                    idx += 1
            for c in range(b.shape[0]):
                out.append(f"{_fmt(b[c])} b {idx:9d} {k + 1:5d} {c + 1:5d}")
                idx += 1
            k += 1
        _atomic_write_text(d / f"weights.{atomic_numbers[e]:03d}.data", "\n".join(out) + "\n")
