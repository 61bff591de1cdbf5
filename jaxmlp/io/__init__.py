"""Import and export of potentials in other codes' formats (n2p2)."""

from .n2p2 import load_n2p2, read_input_nn, save_n2p2

__all__ = ["load_n2p2", "save_n2p2", "read_input_nn"]
