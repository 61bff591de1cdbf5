"""Public alias of :mod:`jaxmlp.analysis.locality` (``jaxmlp.locality.block_norms`` etc.)."""

from .analysis.locality import *  # noqa: F401,F403
from .analysis.locality import __all__  # noqa: F401
