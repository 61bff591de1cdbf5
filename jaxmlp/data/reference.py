"""Per-element reference energies ``E0`` fitted to a training set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from ..models.base import element_symbol

__all__ = ["fit_reference_energies"]


def fit_reference_energies(data, elements: Sequence | None = None) -> dict[str, float]:
    """Per-element reference energies ``E0`` by linear least squares.

    Solves ``min Σ_g (E_g − Σ_Z n_gZ E0_Z)²`` over structures ``g``.

    Parameters
    ----------
    data : Dataset, sequence of ase.Atoms, or (numbers_list, energies)
        A :class:`jaxmlp.data.Dataset` (anything with ``.structures`` or
        iterable of ``ase.Atoms`` carrying an energy), or a pair
        ``(list of [N_g] int arrays of atomic numbers, [G] energies in eV)``.
    elements : sequence of str or int, optional
        Elements to fit (default: all present). Elements not present get
        ``E0 = 0``.

    Returns
    -------
    dict symbol → float (eV per atom)

    Raises
    ------
    ValueError
        For empty data, mismatched lengths, non-finite energies or a
        structure containing an element not in ``elements``.
    """
    if isinstance(data, tuple) and len(data) == 2:
        numbers_list, energies = data
        numbers_list = [np.asarray(n, int).ravel() for n in numbers_list]
        energies = np.asarray(energies, float).ravel()
    elif hasattr(data, "structures") and hasattr(data, "energy"):  # jaxmlp.data.Dataset
        numbers_list = [np.asarray(a.get_atomic_numbers(), int) for a in data.structures]
        energies = np.asarray(data.energy, float).ravel()
    else:
        structures = data
        numbers_list, energies = [], []
        for atoms in structures:
            numbers_list.append(np.asarray(atoms.get_atomic_numbers(), int))
            try:
                energies.append(float(atoms.get_potential_energy()))
            except Exception as err:  # noqa: BLE001 - any missing-energy error
                raise ValueError(f"structure {len(energies)} has no energy: {err}") from None
        energies = np.asarray(energies, float)
    if len(numbers_list) == 0:
        raise ValueError("fit_reference_energies needs at least one structure")
    if len(numbers_list) != len(energies):
        raise ValueError(f"{len(numbers_list)} structures but {len(energies)} energies")
    if not np.all(np.isfinite(energies)):
        raise ValueError("energies must be finite")
    present = sorted({int(z) for n in numbers_list for z in n})
    zs = present if elements is None else sorted({atomic_numbers[element_symbol(e)] for e in elements})
    extra = sorted(set(present) - set(zs))
    if extra:
        raise ValueError(f"structures contain element(s) {[chemical_symbols[z] for z in extra]} not in elements")
    col = {z: k for k, z in enumerate(zs)}
    A = np.zeros((len(energies), len(zs)))
    for g, n in enumerate(numbers_list):
        for z in n:
            A[g, col[int(z)]] += 1.0
    sol, *_ = np.linalg.lstsq(A, energies, rcond=None)
    return {chemical_symbols[z]: float(sol[col[z]]) for z in zs}
