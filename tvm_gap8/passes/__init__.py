"""Relax passes of the GAP8 flow; each is usable alone in a ``tvm.transform.Sequential``."""

from .fusion import (FormConvKernels, FuseDepthwisePointwise, FusePointwiseDepthwise,
                     explain_unfused, record_unfused_depthwise, refusals_of, unfused_of)
from .lower import LowerFusedKernels

__all__ = ["FormConvKernels", "FuseDepthwisePointwise", "FusePointwiseDepthwise", "LowerFusedKernels",
           "explain_unfused", "record_unfused_depthwise", "refusals_of",
           "unfused_of"]
