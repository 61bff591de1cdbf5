"""Public alias of :mod:`jaxmlp.analysis.fragments` (``jaxmlp.fragments.cut`` etc.)."""

from .analysis.fragments import *  # noqa: F401,F403
from .analysis.fragments import CAP_LENGTHS, __all__  # noqa: F401
