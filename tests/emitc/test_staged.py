"""The staged-parameter fact (which kernel parameters only DMA calls read: they may live in L3)
is read off the kernel's final TIR (``plainc._staged_params``); the C text agrees."""

import re

import pytest
import tvm

from tvm_gap8.compiler import compile_model
from tvm_gap8.emitc.plainc import plain_kernel
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def _text_staged(kernel) -> set:
    """The C text's answer: every line naming the parameter's pointer is a DMA call."""
    body = kernel.source.split("{", 1)[1]
    out = set()
    for name, _ in kernel.params:
        uses = [line for line in body.splitlines() if re.search(rf"\b{name}_p\b", line)]
        if uses and all("gap8_dma_copy_" in ln or "gap8_copy_strided_part" in ln for ln in uses):
            out.add(name)
    return out


@pytest.mark.parametrize("build", [
    lambda: M.dw_pw_block(cin=8, cout=16, h=10, w=10),
    lambda: quantized(M.squeeze_excite_block(), samples=2),
    lambda: quantized(M.classifier_head(), samples=2),
], ids=["dw_pw float", "se int8", "head int8"])
def test_staged_parameters_come_from_the_ir(build):
    lowered = compile_model(build(), fusion="auto", layout="auto").lowered
    kernels = [plain_kernel(gv.name_hint, f) for gv, f in lowered.functions_items()
               if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "gap8.kind" in f.attrs]
    assert kernels
    for k in kernels:
        assert set(k.staged) == _text_staged(k), k.name
        assert k.staged <= {name for name, _ in k.params}
    # the weights of a tiled kernel are DMA-staged
    assert any("w" in k.staged or "w_dw" in k.staged for k in kernels)
