"""Data: file IO, datasets and batching, reference labelling, built-in datasets.

Units everywhere: Å, eV, eV/Å (forces), eV/Å³ (stress, Voigt xx yy zz yz xz
xy, ASE sign). Reference labels travel on ``ase.Atoms`` in a
``SinglePointCalculator`` (``atoms.get_potential_energy()`` etc.).

>>> from jaxmlp import data
>>> ds = data.default_dataset("cu_emt", n=20)            # doctest: +SKIP
>>> train, val, test = ds.split((0.8, 0.1, 0.1), seed=0)  # doctest: +SKIP
>>> for batch in train.batches(cutoff=5.0, batch_size=4): # doctest: +SKIP
...     ...
"""

from .dataset import Batch, Dataset
from .generate import (
    DEFAULT_DATASETS,
    alkane,
    biphenyl,
    cu_bulk,
    cu_clusters,
    default_cache_dir,
    default_dataset,
    linear_chain,
    organic_molecules,
    polyene,
)
from .io import (
    SUPPORTED_FORMATS,
    detect_format,
    read,
    read_extxyz,
    read_n2p2,
    read_xsf,
    write,
    write_extxyz,
    write_n2p2,
    write_xsf,
)
from .label import LabellingError, label, xtb_calculator
from .reference import fit_reference_energies

__all__ = [
    "fit_reference_energies",
    # io
    "SUPPORTED_FORMATS",
    "detect_format",
    "read",
    "write",
    "read_extxyz",
    "write_extxyz",
    "read_xsf",
    "write_xsf",
    "read_n2p2",
    "write_n2p2",
    # datasets
    "Dataset",
    "Batch",
    # labelling
    "label",
    "xtb_calculator",
    "LabellingError",
    # built-in data
    "default_dataset",
    "default_cache_dir",
    "DEFAULT_DATASETS",
    "cu_bulk",
    "cu_clusters",
    "organic_molecules",
    "alkane",
    "polyene",
    "biphenyl",
    "linear_chain",
]
