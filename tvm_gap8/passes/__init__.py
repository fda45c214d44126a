"""Relax passes of the GAP8 flow; each is usable alone in a ``tvm.transform.Sequential``."""

from .fusion import FuseDepthwisePointwise, FusePointwiseDepthwise, explain_unfused, refusals_of
from .lower import LowerFusedKernels

__all__ = ["FuseDepthwisePointwise", "FusePointwiseDepthwise", "LowerFusedKernels",
           "explain_unfused", "refusals_of"]
