"""Relax passes of the GAP8 flow; each is usable alone in a ``tvm.transform.Sequential``."""

from .fusion import (FormAddKernels, FormConvKernels, FormDenseKernels, FormLutKernels,
                     FormMulKernels, FormPoolKernels,
                     FuseDepthwisePointwise, FusePointwiseDepthwise,
                     explain_unfused, record_unfused_depthwise, refusals_of, unfused_of)
from .lower import LowerFusedKernels
from .qdq import SimplifyQDQ

__all__ = ["FormAddKernels", "FormConvKernels", "FormDenseKernels", "FormLutKernels",
           "FormMulKernels", "FormPoolKernels",
           "FuseDepthwisePointwise", "FusePointwiseDepthwise", "LowerFusedKernels", "SimplifyQDQ",
           "explain_unfused", "record_unfused_depthwise", "refusals_of",
           "unfused_of"]
