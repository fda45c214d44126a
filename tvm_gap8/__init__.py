"""tvm_gap8: fused depthwise-separable convolutions for GAP8, as a TVM (Relax) plugin.

Importing the package registers the ``gap8`` Relax pipeline.
"""

__version__ = "0.1.0"

from . import pipeline  # noqa: F401  (registers relax pipeline "gap8")
from .errors import Gap8Error  # noqa: F401
from .target import GAP8, Gap8Target  # noqa: F401
