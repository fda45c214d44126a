"""The C emitter gets its target once, from the compile (``CompileResult.hw``): the very target
the tiles were planned on, DMA mode and requantization applied."""

import inspect
import os

from tvm_gap8.compiler import compile_model
from tvm_gap8.emitc.run import emit_and_run
from tvm_gap8.target import GAP8
from tvm_gap8.testing import onnx_models as M


def test_emitter_reads_the_compiled_target(tmp_path):
    assert "hw" not in inspect.signature(emit_and_run).parameters
    hw = GAP8.with_l1_budget(20000)
    result = compile_model(M.dw_pw_block(cin=8, cout=16, h=10, w=10), hw=hw, dma="blocking",
                           fusion="all", layout="chw")
    assert (result.hw.dma_mode, result.hw.double_buffering) == ("blocking", False)
    assert result.hw.l1_bytes == hw.l1_bytes and result.report["target"] == result.hw.to_dict()
    report = emit_and_run(result, str(tmp_path))
    with open(os.path.join(tmp_path, "gap8", "gap8_memory.ld"), encoding="utf-8") as f:
        assert f"L1 (rw) : ORIGIN = 0x80580000, LENGTH = {result.hw.l1_bytes}" in f.read()
    assert report["emit_c"]["l1_arena_bytes"] <= result.hw.l1_bytes
