"""The ``gap8`` Relax pipeline: fold -> fuse DW/PW pairs -> lower fused kernels -> TVM build.

Registered under the name ``gap8`` so that ``tvm.compile(mod, target, relax_pipeline="gap8")``
works; ``gap8_pipeline(hw=..., fuse=...)`` builds the same pipeline for another hardware
description or without fusion.
"""

from __future__ import annotations

import tvm
from tvm import relax

from .passes import FuseDepthwisePointwise, FusePointwiseDepthwise, LowerFusedKernels
from .target import GAP8, Gap8Target


def gap8_passes(hw: Gap8Target = GAP8, fuse: bool = True) -> list:
    """Our passes, in order, without TVM's final build passes."""
    passes = [
        relax.transform.FoldConstant(),
        relax.transform.DecomposeOpsForInference(),  # any BN onnxruntime did not fold
        relax.transform.FoldConstant(),
    ]
    if fuse:
        passes += [FuseDepthwisePointwise(), FusePointwiseDepthwise(), LowerFusedKernels(hw)]
    return passes


def gap8_pipeline(hw: Gap8Target = GAP8, fuse: bool = True) -> tvm.transform.Pass:
    return tvm.transform.Sequential(gap8_passes(hw, fuse) + [relax.get_pipeline("default_build")],
                                    name="gap8")


def _register():
    from tvm.relax.pipeline import PIPELINE_MAP

    if "gap8" not in PIPELINE_MAP:  # re-imports (e.g. importlib.reload) must not raise
        relax.register_pipeline("gap8")(gap8_pipeline)


_register()
