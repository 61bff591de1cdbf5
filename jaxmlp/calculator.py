"""ASE calculator for any jaxmlp model.

Energies, forces and stress come from :mod:`jaxmlp.observables` (one jitted
function per model); the graph is rebuilt only when the atoms moved more
than half the skin, the cell, pbc or the atomic numbers changed, so MD and
optimisations re-use the neighbour list (built with ``cutoff + skin``; the
model masks pairs beyond its own cutoff).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from . import observables
from .graph import atoms_to_graph, validate
from .models.base import check_elements

__all__ = ["Calculator"]


@partial(jax.jit, static_argnums=0)
def _efs(model, params, graph):
    e, f, s = observables.energy_forces_stress(model, params, graph)
    return e, f, s, observables.per_atom_energies(model, params, graph)


@partial(jax.jit, static_argnums=0)
def _ef(model, params, graph):
    e, f = observables.energy_and_forces(model, params, graph)
    return e, f, observables.per_atom_energies(model, params, graph)


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
        self._graph = None
        self._ref = None  # (positions, cell, pbc, numbers) when the graph was built
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
        """The (cached) graph of ``atoms`` with current positions."""
        if self._needs_rebuild(atoms):
            check_elements(self.model, atoms.numbers)
            self._graph = atoms_to_graph(atoms, self.graph_cutoff + self.skin, triplets=self.model.needs_triplets)
            self._ref = (atoms.positions.copy(), atoms.cell.array.copy(), atoms.pbc.copy(), atoms.numbers.copy())
            self.n_graph_builds += 1
        else:
            validate(atoms)
        nodes = {**self._graph.nodes, "positions": np.asarray(atoms.positions, np.float64)}
        return self._graph._replace(nodes=nodes)

    # -- ASE interface ------------------------------------------------------
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        graph = self.graph_for(self.atoms)
        periodic = bool(self.atoms.pbc.all()) and self.atoms.cell.rank == 3
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError("stress needs a 3-D periodic cell")
        if periodic:
            e, f, s, ea = _efs(self.model, self.params, graph)
            self.results["stress"] = np.asarray(s[0], np.float64)
        else:
            e, f, ea = _ef(self.model, self.params, graph)
        self.results["energy"] = float(e[0])
        self.results["free_energy"] = float(e[0])
        self.results["forces"] = np.asarray(f, np.float64)
        self.results["energies"] = np.asarray(ea, np.float64)

    def get_hessian(self, atoms=None) -> np.ndarray:
        """Analytic Hessian ``[3N, 3N]`` eV/Å² (atom-major, ``3·A + α``)."""
        atoms = self.atoms if atoms is None else atoms
        if atoms is None:
            raise ValueError("get_hessian needs atoms")
        graph = self.graph_for(atoms)
        return np.asarray(observables.hessian(self.model, self.params, graph), np.float64)
