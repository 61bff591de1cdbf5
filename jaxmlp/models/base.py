"""The model protocol shared by every jaxmlp potential.

A model is a pair of pure functions

* ``init(key, graph) -> params`` (a pytree of arrays), and
* ``apply(params, graph) -> per-atom energies [N]`` (eV; padding nodes may
  hold any finite value, observables mask them),

plus a ``cutoff`` (Å) that graphs must be built with, and a JSON-able
``config`` from which :func:`build_model` re-creates the same model (used by
``jaxmlp.save``/``jaxmlp.load``).  Models never compute forces, stresses or
Hessians themselves: :mod:`jaxmlp.observables` derives them for all models.

``Model`` objects hash by identity, so they can be static arguments of
``jax.jit`` (one compilation per model object and bucket).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

__all__ = ["Model", "register_model", "build_model", "species_table", "check_elements", "MODEL_REGISTRY"]

MODEL_REGISTRY: dict[str, Callable[..., "Model"]] = {}


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A potential: pure ``init``/``apply`` functions and their metadata.

    Attributes
    ----------
    name : str
        Registry name of the factory that built it (``"lennard_jones"``, ...).
    config : dict
        Keyword arguments of that factory (JSON-serialisable).
    cutoff : float
        Graph cutoff in Å. For message-passing models this is the per-layer
        cutoff; energies then depend on atoms within ``n_layers * cutoff``.
    init : callable ``(key, graph) -> params``
    apply : callable ``(params, graph) -> [N]`` per-atom energies, eV
    needs_triplets : bool
        Graphs must be built with ``triplets=True``.
    elements : tuple of int or None
        Atomic numbers the model knows (None: any element).
    n_layers : int
        Number of message-passing layers (1 for strictly local models), so
        forces range over ``2 * n_layers * cutoff``.
    local : bool
        False for models with a long-range term (the electrostatics of a
        4G-HDNNP): forces then depend on every atom, ``interaction_range`` is
        infinite and tools that rely on a finite range (the sparse Hessian)
        refuse the model.
    extras : mapping str → object
        Read-only model-specific metadata for tools (not part of the
        ``init``/``apply`` protocol): ``"descriptor"`` (the
        :class:`~jaxmlp.descriptors.acsf.ACSF` of an HDNNP), ``"triplet_filter"``
        (HDNNP: the :class:`jaxmlp.graph.TripletFilter` that graph builders may
        pass to ``atoms_to_graph`` to skip triplets that cannot contribute), ``"layer_outputs"``
        and ``"bases"`` (ml-ACE). Not serialised; rebuilt from ``config``.
    """

    name: str
    config: dict
    cutoff: float
    init: Callable[..., Any]
    apply: Callable[..., Any]
    needs_triplets: bool = False
    elements: tuple | None = None
    n_layers: int = 1
    local: bool = True
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.extras, Mapping):
            raise TypeError(f"Model.extras must be a mapping, got {type(self.extras).__name__}")
        object.__setattr__(self, "extras", types.MappingProxyType(dict(self.extras)))

    @property
    def interaction_range(self) -> float:
        """Distance beyond which ∂F_A/∂R_B vanishes exactly, ``2·L·R_c`` Å (``inf`` for a non-local model)."""
        if not self.local:
            return float("inf")
        return 2.0 * self.n_layers * self.cutoff

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"Model({self.name}, cutoff={self.cutoff}, elements={self.elements})"


def register_model(name: str):
    """Decorator registering a model factory under ``name`` for save/load."""

    def deco(factory):
        MODEL_REGISTRY[name] = factory
        return factory

    return deco


def build_model(name: str, config: dict) -> Model:
    """Re-create a model from its registry ``name`` and ``config``."""
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name](**config)


def species_table(elements) -> np.ndarray:
    """Map atomic number → species index, ``[119]`` int (-1 for unknown)."""
    table = np.full(119, -1, np.int32)
    for k, z in enumerate(elements):
        table[int(z)] = k
    return table


def check_elements(model: Model, numbers) -> None:
    """Raise ``ValueError`` if ``numbers`` holds elements the model lacks."""
    if model.elements is None:
        return
    from ase.data import chemical_symbols

    present = set(int(z) for z in np.unique(np.asarray(numbers)) if z > 0)
    unknown = sorted(present - set(int(z) for z in model.elements))
    if unknown:
        raise ValueError(
            f"unknown element(s) {[chemical_symbols[z] for z in unknown]} for this {model.name} model "
            f"(it knows {[chemical_symbols[z] for z in model.elements]})"
        )


def element_symbol(e) -> str:
    """Chemical symbol of a symbol or atomic number (``ValueError`` if unknown)."""
    from ase.data import atomic_numbers, chemical_symbols

    if isinstance(e, str):
        if e not in atomic_numbers or atomic_numbers[e] == 0:
            raise ValueError(f"unknown element {e!r}")
        return e
    z = int(e)
    if not 1 <= z < len(chemical_symbols):
        raise ValueError(f"atomic number out of range: {z}")
    return chemical_symbols[z]


def per_element(value, symbols, name: str, default: float = 0.0) -> dict:
    """``{symbol: float}`` for every symbol, from a user dict keyed by symbol or Z (validated)."""
    out = {s: float(default) for s in symbols}
    if value is None:
        return out
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict element → value, got {type(value).__name__}")
    for k, v in value.items():
        s = element_symbol(int(k) if isinstance(k, str) and k.isdigit() else k)
        if s not in out:
            raise ValueError(f"{name} given for element {s}, which is not in the model's elements {list(symbols)}")
        out[s] = float(v)
    return out
