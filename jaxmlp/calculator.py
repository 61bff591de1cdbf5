"""ASE calculator for any jaxmlp model.

Energy, per-atom energies, forces and stress come from one jitted function
and one forward/backward pass; the graph is rebuilt only when the atoms moved
more than half the skin, the cell, pbc or the atomic numbers changed, so MD
and optimisations re-use the neighbour list (built with ``cutoff + skin``;
the model masks pairs beyond its own cutoff).  Each graph is padded to
buckets (:func:`jaxmlp.graph.grow_buckets`) that only grow, geometrically, so
a rebuilt neighbour list with a few more or fewer edges re-uses the compiled
function instead of compiling a new one.
"""

from __future__ import annotations

from functools import partial

import jax
import numpy as np
from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from . import observables
from .graph import (
    atoms_to_graph,
    batch_graphs,
    grow_buckets,
    validate,
)
from .models.base import check_elements

__all__ = ["Calculator"]


@partial(jax.jit, static_argnums=0)
def _evaluate(model, params, graph):
    """Energy of graph 0, per-atom energies ``[N]``, forces ``[N, 3]``, stress ``[6]``.

    One forward and one backward pass (:func:`jaxmlp.observables.energy_forces_stress`
    with ``per_atom=True``); graph 0 is the structure, any further graphs are padding.
    """
    e, ea, f, s = observables.energy_forces_stress(model, params, graph, per_atom=True)
    return e[0], ea, f, s[0]


class Calculator(_ASECalculator):
    """ASE calculator wrapping ``(model, params)``.

    Parameters
    ----------
    model : jaxmlp.models.Model
    params : pytree
    cutoff : float, optional
        Graph cutoff in Å (default ``model.cutoff``); must be at least the
        model's cutoff.
    skin : float
        Extra neighbour-list radius in Å; the graph is rebuilt when an atom
        moved more than ``skin / 2``.

    Notes
    -----
    Properties: ``energy``, ``free_energy``, ``energies``, ``forces``,
    ``stress`` (3-D periodic cells only) and the Hessian via
    ``get_hessian``.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, params, cutoff: float | None = None, skin: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        cutoff = model.cutoff if cutoff is None else float(cutoff)
        if cutoff < model.cutoff:
            raise ValueError(f"cutoff {cutoff} Å is smaller than the model's cutoff {model.cutoff} Å")
        if skin < 0:
            raise ValueError(f"skin must be >= 0, got {skin}")
        self.model, self.params = model, params
        self.graph_cutoff = cutoff
        self.skin = float(skin)
        self._graph = None  # padded to self.buckets; atoms first, then padding
        self._ref = None  # (positions, cell, pbc, numbers) when the graph was built
        self.buckets = None  # jaxmlp.graph.Buckets of the current graph
        self.n_graph_builds = 0

    # -- graph management -------------------------------------------------
    def _needs_rebuild(self, atoms) -> bool:
        if self._graph is None:
            return True
        pos, cell, pbc, numbers = self._ref
        if len(atoms) != len(numbers) or not np.array_equal(atoms.numbers, numbers):
            return True
        if not np.array_equal(atoms.pbc, pbc) or not np.allclose(atoms.cell.array, cell, atol=1e-12):
            return True
        disp = np.linalg.norm(atoms.positions - pos, axis=1)
        return bool(disp.max(initial=0.0) > 0.5 * self.skin)

    def graph_for(self, atoms):
        """The (cached) padded graph of ``atoms`` with current positions.

        Graph 0 holds the ``N`` atoms (nodes ``0..N-1``); the rest is inert
        padding (:func:`jaxmlp.graph.batch_graphs`).  The node bucket is
        ``N + 1``; the edge and triplet buckets grow geometrically and never
        shrink while the atom count stays the same.
        """
        if self._needs_rebuild(atoms):
            check_elements(self.model, atoms.numbers)
            graph = atoms_to_graph(atoms, self.graph_cutoff + self.skin, triplets=self.model.needs_triplets,
                                   triplet_filter=self.model.extras.get("triplet_filter"))
            current = self.buckets
            if current is not None and current.n_node != len(atoms) + 1:
                current = None  # a different system: start a new ladder
            # the atom count is fixed between rebuilds: one padding node keeps
            # the Hessian only 3 rows larger than 3N
            self.buckets = grow_buckets([graph], current)._replace(n_node=len(atoms) + 1)
            self._graph = batch_graphs([graph], self.buckets)
            self._ref = (atoms.positions.copy(), atoms.cell.array.copy(), atoms.pbc.copy(), atoms.numbers.copy())
            self.n_graph_builds += 1
        else:
            validate(atoms)
        positions = np.array(self._graph.nodes["positions"])
        positions[: len(atoms)] = atoms.positions
        return self._graph._replace(nodes={**self._graph.nodes, "positions": positions})

    # -- ASE interface ------------------------------------------------------
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        graph = self.graph_for(self.atoms)
        periodic = bool(self.atoms.pbc.all()) and self.atoms.cell.rank == 3
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError("stress needs a 3-D periodic cell")
        n = len(self.atoms)
        e, ea, f, s = _evaluate(self.model, self.params, graph)
        if periodic:
            self.results["stress"] = np.asarray(s, np.float64)
        self.results["energy"] = float(e)
        self.results["free_energy"] = float(e)
        self.results["forces"] = np.asarray(f, np.float64)[:n]
        self.results["energies"] = np.asarray(ea, np.float64)[:n]

    def get_hessian(self, atoms=None) -> np.ndarray:
        """Analytic Hessian ``[3N, 3N]`` eV/Å² (atom-major, ``3·A + α``)."""
        atoms = self.atoms if atoms is None else atoms
        if atoms is None:
            raise ValueError("get_hessian needs atoms")
        graph = self.graph_for(atoms)
        m = 3 * len(atoms)
        return np.asarray(observables.hessian(self.model, self.params, graph), np.float64)[:m, :m]
