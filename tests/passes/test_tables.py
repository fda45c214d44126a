"""MergeTables: two lut kernels back to back are one kernel with the composed table."""

import numpy as np

from tests.conftest import compile_checked
from tvm_gap8.kernels.lut import compose_tables
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def test_compose_tables_indexes_the_second_by_the_first():
    first = np.arange(-128, 128, dtype=np.int8)[::-1].copy()  # v -> -v - 1
    second = (np.arange(256) % 7).astype(np.int8)  # indexed from -128
    composed = compose_tables(first, second, "int8")
    for v in (-128, -1, 0, 5, 127):
        assert composed[v + 128] == second[int(first[v + 128]) + 128]


def _keras_hardswish_block():
    b = M.GraphBuilder(0)
    y = b.conv("input", 8, 16, 1, base="pw")
    y = b.act(y, "hardswish_keras")
    y = b.conv(y, 16, 16, 3, groups=16, base="dw")
    return b.model("input", [1, 8, 16, 16], y)


def test_keras_hardswish_is_one_table_and_a_product():
    """relu6(x + 3) and * 1/6 (each a table of one 8-bit value) run as one table kernel,
    bit-exact to the integer reference; the merged layer carries both layers' nodes."""
    result = compile_checked(quantized(_keras_hardswish_block(), samples=2), fusion="none")
    kinds = [(la["name"], la["kind"]) for la in result.report["layers"] if la.get("tiled")]
    assert kinds == [("pw_0", "pw"), ("hs_add_0+hs_scale_0", "lut"), ("hs_mul_0", "mul"),
                     ("dw_0", "dw")], kinds
    lut = next(la for la in result.report["layers"] if la["kind"] == "lut")
    assert "hs_add_0" in lut["onnx_nodes"] and "hs_scale_0" in lut["onnx_nodes"]


def test_consecutive_table_steps_compose_and_renumber():
    from tvm_gap8.kernels.lut import IntStep, merge_table_steps

    t1 = np.arange(-128, 128, dtype=np.int8)[::-1].copy()
    t2 = (np.arange(256) % 5).astype(np.int8)
    steps = [IntStep("table", (0,), "int8", table=0), IntStep("table", (1,), "int8", table=1),
             IntStep("mul", (0, 2), "int8")]
    merged, tables = merge_table_steps(steps, [t1, t2])
    assert [(s.kind, s.args) for s in merged] == [("table", (0,)), ("mul", (0, 1))]
    assert len(tables) == 1 and merged[0].table == 0
    assert np.array_equal(tables[0], compose_tables(t1, t2, "int8"))
    # a table value read twice (by the second table and the product) stays
    shared = [steps[0], steps[1], IntStep("mul", (1, 2), "int8")]
    assert merge_table_steps(shared, [t1, t2])[0] == shared


def test_keras_hardswish_inside_a_fused_pair_is_one_table():
    """PW -> Keras hard_swish (two tables, then x * them) -> DW fuses; inside the kernel the
    two tables are one (the epilogue: one lut, one mul), bit-exact to the integer reference;
    the planner, free to split it, compiles it too."""
    model = quantized(_keras_hardswish_block(), samples=2)
    fused = compile_checked(model, fusion="all").report["fusion"]["fused"]
    assert [f["kind"] for f in fused] == ["pw_dw"]
    assert fused[0]["epilogues"][0].endswith("+lut+mul"), fused[0]["epilogues"]
    compile_checked(model, fusion="auto", layout="auto")
