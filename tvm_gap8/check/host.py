"""The host build of a lowered module (TVM's build passes + LLVM) and one run of it: what
``--check`` and ``--emit-c --run`` compare against."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from ..ir.float_exp import TIR_PIPELINE, register_tir_pipeline
from ..target import tvm_target


def build_host(lowered: tvm.IRModule):
    """TVM's build passes + LLVM codegen for the host: runs the same lowered kernels."""
    register_tir_pipeline()  # float exp as the emitted C computes it (float_exp.py)
    return tvm.compile(lowered, target=tvm_target(host=True), relax_pipeline="default_build",
                       tir_pipeline=TIR_PIPELINE)


def run_host(executable, imported, inputs: dict) -> list[np.ndarray]:
    """The outputs of ``executable`` (``build_host``) on ``inputs``, by the model ``imported``'s
    input names, as numpy arrays in the graph's order."""
    vm = relax.VirtualMachine(executable, tvm.cpu())
    args = [tvm.runtime.tensor(inputs[n]) for n in imported.input_shapes]
    out = vm["main"](*args)
    outs = out if isinstance(out, (list, tuple)) or hasattr(out, "__len__") and \
        not hasattr(out, "numpy") else [out]
    return [o.numpy() for o in outs]
