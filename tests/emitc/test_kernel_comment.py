"""Readable kernels: the comment above each emitted kernel lists its tile loops (named after
their axis, as the C indexes them) and its L1 arena exactly as the C lays it out; the fixed
requantization is one named call; the master core's copies in one block, waited for once."""

import re

import tvm

from tvm_gap8.compiler import compile_model
from tvm_gap8.emitc.plainc import plain_kernel
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def test_comment_states_tile_loops_and_arena_as_the_c_does():
    model = quantized(M.dw_pw_block(cin=16, cout=32, h=48, w=48), samples=2)
    lowered = compile_model(model, fusion="all", layout="chw", l1_kb=16).lowered
    kernels = [plain_kernel(gv.name_hint, f) for gv, f in lowered.functions_items()
               if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "gap8.kind" in f.attrs]
    tiled = 0
    for k in kernels:
        comment, body = k.source.split("*/\n", 1)
        assert comment.startswith(f"/* {k.name}\n") and f"void {k.name}(" in body
        # every arena row is a buffer the body places at that offset of l1_p
        rows = re.findall(r"^ \*\s+(\d+)\s+(\d+)  (\w+) \(", comment, re.M)
        assert rows, comment
        for offset, nbytes, name in rows:
            assert re.search(rf"\b{name} = .*&\(l1_p\[{offset}\]\)", body), (name, offset)
            assert int(offset) + int(nbytes) <= k.l1_bytes
        # tile loops: named in the comment and indexing the C loops
        loops = re.search(r"tile loops: (.*)", comment).group(1)
        for name, trips in re.findall(r"(\w+_tile) \((\d+) tiles\)", loops):
            assert f"for (int32_t {name} = 0; {name} < {trips}; ++{name})" in body
            tiled += 1
        assert "int64_t)32" not in body  # the requantization: gap8_requantize calls
        # consecutive master statements: one master block, one barrier, copies issued back to
        # back and waited for once
        master_then_master = (r"if \(gap8_is_master\(\) != 0\) \{\n[^{}]*\}\n\s*gap8_barrier\(\);"
                              r"\n\s*if \(gap8_is_master\(\) != 0\)")
        assert not re.search(master_then_master, body)
        for group in re.findall(r"gap8_dma_group_begin\(\);\n(.*?)gap8_dma_group_end", body, re.S):
            assert group.count("gap8_dma_copy_") >= 2 and group.count(";") == \
                group.count("gap8_dma_copy_"), group
    assert tiled, "16 kB of L1 tiles the block"
    assert any("gap8_requantize(" in k.source for k in kernels)
    # a run of one-run copies is shared by the team, round robin (copy slot 1 of a run of 2+),
    # not issued by the master core alone
    assert any(re.search(r"gap8_dma_copy_1d_team\(gap8_core_of\(\w+\), 1, [2-9]", k.source)
               for k in kernels)
