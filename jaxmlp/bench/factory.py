"""Model construction and test metrics shared by the ``jaxmlp-bench`` studies and the ``train`` config.

Both :mod:`jaxmlp.bench.studies` and :mod:`jaxmlp.bench.config` import this
module; it imports neither of them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..graph import max_degree
from .common import CLIError

__all__ = ["MODEL_KINDS", "PAIR_PARAMETERS", "cu_cell", "make_model", "pair_parameters", "scalar_metrics"]

MODEL_KINDS = ("lj", "morse", "hdnnp", "mlace")

#: Published single-element parameters of the analytic pair models, keyed by
#: model kind and element symbol. ``cutoff`` (Å) is the default used where the
#: command line has no cutoff option (``locality --calculator lj|morse``).
#:
#: * Morse Cu: Girifalco & Weizer, Phys. Rev. 114, 687 (1959).
#: * Lennard-Jones Cu: Halicioglu & Pound, phys. stat. sol. (a) 30, 619 (1975).
#: * Lennard-Jones Ar: ε/k_B = 120 K, σ = 3.40 Å (Rahman, Phys. Rev. 136, A405 (1964)).
PAIR_PARAMETERS: Mapping[str, Mapping[str, Mapping[str, float]]] = {
    "morse": {"Cu": {"D": 0.3429, "alpha": 1.3588, "r0": 2.866, "cutoff": 5.0}},
    "lj": {
        "Cu": {"epsilon": 0.4093, "sigma": 2.338, "cutoff": 5.0},
        "Ar": {"epsilon": 0.01034, "sigma": 3.40, "cutoff": 8.5},
    },
}


def pair_parameters(kind: str, elements) -> dict:
    """Parameters of the ``kind`` ("lj" or "morse") pair model for ``elements`` (atomic numbers).

    The pair models have one parameter set for all atoms, so they fit only
    single-element systems with published parameters
    (:data:`PAIR_PARAMETERS`); anything else raises :class:`CLIError` naming
    the elements instead of silently applying, e.g., Cu parameters to an
    alkane.

    Returns
    -------
    dict
        Model parameters plus the default ``cutoff`` (Å).
    """
    from ase.data import chemical_symbols

    if kind not in PAIR_PARAMETERS:
        raise CLIError(f"{kind!r} is not a pair model; choose from {', '.join(PAIR_PARAMETERS)}")
    table = PAIR_PARAMETERS[kind]
    symbols = sorted({chemical_symbols[int(z)] for z in elements})
    if len(symbols) != 1 or symbols[0] not in table:
        got = ", ".join(symbols) if symbols else "no elements"
        raise CLIError(
            f"the built-in {kind} potential has parameters only for single-element {', '.join(sorted(table))} "
            f"systems; this structure/data set has {got}. Use emt, xtb or a trained jaxmlp model instead, "
            f"or a {'/'.join(sorted(table))} structure"
        )
    return dict(table[symbols[0]])


def make_model(kind: str, elements, cutoff: float, n_layers: int = 1, dataset=None, basis: str = "default", structures=None):
    """A default model of ``kind`` for ``elements`` (atomic numbers) and ``cutoff`` Å.

    * ``lj``/``morse``: published parameters for the (single) element, see
      :func:`pair_parameters` (other systems raise :class:`CLIError`).
    * ``hdnnp``: 8 radial and 8 angular ACSFs per element pair, 25-25 tanh
      networks; with a training ``dataset`` it gets n2p2-style
      symmetry-function scaling (min/max, centred) and per-element E0 fitted
      on it.
    * ``mlace``: ``n_layers`` ml-ACE with the ``basis`` preset
      (:data:`jaxmlp.models.mlace.PRESETS`), E0 from ``dataset``;
      ``max_neighbors`` from ``structures`` (default: the dataset's), see
      :func:`jaxmlp.graph.max_degree`.
    """
    from jaxmlp import models

    elements = sorted(int(z) for z in elements)
    if kind in PAIR_PARAMETERS:
        params = pair_parameters(kind, elements)
        params.pop("cutoff")
        factory = models.lennard_jones if kind == "lj" else models.morse
        return factory(cutoff=cutoff, **params)
    if kind == "hdnnp":
        from jaxmlp.data import fit_reference_energies
        from jaxmlp.descriptors import acsf

        sfs = acsf.radial_grid(elements, cutoff, 8) + acsf.angular_set(elements, cutoff, etas=(0.0, 0.02), zetas=(1.0, 4.0))
        scaling, e0 = None, None
        if dataset is not None:
            stats = acsf.ACSF(elements, sfs).statistics(dataset.graphs(cutoff, triplets=True))
            scaling = {"mode": "scalecenter", "smin": -1.0, "smax": 1.0, "stats": stats}
            e0 = fit_reference_energies(dataset, elements)
        return models.hdnnp(elements, sfs, hidden=(25, 25), activation="tanh", scaling=scaling, e0=e0)
    if kind == "mlace":
        from jaxmlp.data import fit_reference_energies
        from jaxmlp.models.mlace import PRESETS

        if basis not in PRESETS:
            raise CLIError(f"unknown ml-ACE basis {basis!r}; choose from {', '.join(PRESETS)}")
        e0 = None if dataset is None else fit_reference_energies(dataset, elements)
        if structures is None and dataset is not None:
            structures = dataset.structures
        k = None if structures is None else max_degree(structures, cutoff)
        return models.mlace(elements, cutoff, n_layers=n_layers, e0=e0, max_neighbors=k, **PRESETS[basis])
    raise CLIError(f"unknown model {kind!r}; choose from {', '.join(MODEL_KINDS)}")


def cu_cell(n_atoms: int, seed: int = 0):
    """Rattled (0.05 Å) periodic fcc Cu supercell (a = 3.61 Å) with about ``n_atoms`` atoms."""
    from ase.build import bulk

    reps = max(1, round((n_atoms / 4) ** (1 / 3)))
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((reps, reps, reps))
    atoms.rattle(0.05, seed=seed)
    return atoms


def scalar_metrics(model, params, dataset) -> dict:
    """The scalar error metrics of :func:`jaxmlp.training.metrics.evaluate` on ``dataset``."""
    from jaxmlp.training.metrics import evaluate

    return {k: v for k, v in evaluate(model, params, dataset).items() if np.ndim(v) == 0}
