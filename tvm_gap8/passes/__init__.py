"""Relax passes of the GAP8 flow; each is usable alone in a ``tvm.transform.Sequential``."""

from .formation import (FormAddKernels, FormConvKernels, FormDenseKernels, FormKernels,
                        FormLutKernels, FormMulKernels, FormPoolKernels, FuseDepthwisePointwise,
                        FusePointwiseDepthwise, refusals_of)
from .lower import LowerFusedKernels
from .qdq import SimplifyQDQ
from .unfused import (explain_unfused, record_fusion_disabled, record_unfused_depthwise, unfused_of)

__all__ = ["FormAddKernels", "FormConvKernels", "FormDenseKernels", "FormKernels",
           "FormLutKernels", "FormMulKernels", "FormPoolKernels", "FuseDepthwisePointwise",
           "FusePointwiseDepthwise", "LowerFusedKernels", "SimplifyQDQ", "explain_unfused",
           "record_fusion_disabled", "record_unfused_depthwise", "refusals_of", "unfused_of"]
