"""The PaddleOCR-style text recognizer (``text_recognizer``): the model as exporters write it at
opset 12, float and int8 at the full 48x320 (fusion through HardSwish, per-axis strides, wide
rows), and the int8 layers left in float listed with the reason (read off the ops, not the
names). ``benchmarks/text_recognizer.py`` compares it with onnxruntime element by element."""

import numpy as np
import onnx
import pytest

from tvm_gap8.check.session import reference_session
from tvm_gap8.report.floatlayers import LAYERNORM_REASON, MATMUL_REASON, SOFTMAX_REASON
from tvm_gap8.frontend.quantize import quantize_model
from tvm_gap8.report.contents import format_table, unwrap
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

from ..conftest import compile_checked

LN_OPS = ["ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add"]
#: a short backbone (one block of each DW stride PaddleOCR uses, one SE) for fast int8 tests
SMALL = ((3, 32, (2, 2), False), (3, 64, (2, 1), True), (5, 64, (1, 2), False))


def _ops(model):
    return [n.op_type for n in model.graph.node]


def test_full_size_model_is_an_opset12_export_that_onnxruntime_runs():
    m = M.text_recognizer()  # 48 x 320
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [12]
    ops = _ops(m)
    assert "HardSwish" not in ops and "LayerNormalization" not in ops  # opset 14 / 17 ops
    for op in ("HardSigmoid", "GlobalAveragePool", "MatMul", "Softmax", "Sqrt", "Pow"):
        assert op in ops
    ln = [n.op_type for n in m.graph.node if n.name.startswith("attn_ln_")]
    assert ln == LN_OPS
    dw = [n for n in m.graph.node if n.op_type == "Conv" and
          next(a.i for a in n.attribute if a.name == "group") > 1]
    strides = {tuple(next(a.ints for a in n.attribute if a.name == "strides")) for n in dw}
    kernels = {tuple(next(a.ints for a in n.attribute if a.name == "kernel_shape")) for n in dw}
    assert strides == {(1, 1), (2, 2), (2, 1), (1, 2)} and kernels == {(3, 3), (5, 5)}
    x = np.random.default_rng(0).standard_normal((1, 3, 48, 320)).astype(np.float32)
    (y,) = reference_session(m).run(None, {"input": x})
    assert y.shape == (1, 40, 37) and np.all(np.isfinite(y)) and np.std(y) > 0.1


def test_float_recognizer_compiles_and_matches_onnxruntime():
    result = compile_checked(M.text_recognizer(32, 64, 0.25))
    assert result.report["float_layers"] == []
    kinds = {layer["kind"] for layer in result.report["layers"]}
    assert {"dw_pw", "pool", "dense"} <= kinds


def _renamed(model):
    """Every node renamed n0, n1, ...: nothing may depend on the builder's names."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i, n in enumerate(m.graph.node):
        n.name = f"n{i}"
    return m


@pytest.fixture(scope="module")
def int8_small():
    original = M.text_recognizer(16, 32, 0.25, blocks=SMALL)
    ln_nodes = [f"n{i}" for i, n in enumerate(original.graph.node) if n.name.startswith("attn_ln")]
    model = _renamed(original)
    return model, ln_nodes, compile_checked(quantized(model))


def test_int8_recognizer_float_layers_carry_their_reason(int8_small):
    model, ln_nodes, result = int8_small
    report = result.report
    records = report["float_layers"]
    assert records and all(set(r) == {"name", "kind", "reason"} and r["reason"] for r in records)
    by_kind: dict = {}
    for r in records:
        by_kind.setdefault(r["kind"], []).append(r)
    # the nine LayerNorm nodes, found by structure although their names say nothing
    assert [_ops(model)[int(n[1:])] for n in ln_nodes] == LN_OPS
    assert sorted(r["name"] for r in by_kind["layernorm"]) == sorted(ln_nodes)
    assert {r["reason"] for r in by_kind["layernorm"]} == {LAYERNORM_REASON}
    assert [r["reason"] for r in by_kind["softmax"]] == [SOFTMAX_REASON]
    assert [r["reason"] for r in by_kind["matmul"]] == [MATMUL_REASON] * 2
    assert "conv" not in by_kind  # (2,1) and (1,2) strides: integer kernels too
    assert "dense" not in by_kind  # the Linear layers (Gemm transB=0): integer dense kernels
    assert sum(layer["kind"] == "dense" and layer.get("integer", False)
               for layer in report["layers"]) == 5
    # every integer-capable backbone op is an integer kernel: no float PW, SE or table
    assert not any(layer["kind"] in ("pw", "dw_pw", "lut", "mul") and not layer.get("integer")
                   for layer in report["layers"])
    table = unwrap(format_table(report))
    assert f"still float, layernorm ({len(LN_OPS)}): " in table and LAYERNORM_REASON in table


def test_int8_recognizer_check_names_the_float_reductions(int8_small):
    check = int8_small[2].report["check"]
    assert check["passed"] and not check["exact"]["applicable"]
    assert any("(Softmax)" in r for r in check["exact"]["reasons"])
    assert check["spec"]["max_step_diff"] <= 1


def _dw_pairs(report):
    """{DW node: how it was lowered} for the recognizer's backbone DWs."""
    fused = {n: f["kind"] for f in report["fusion"]["fused"] for n in f["onnx_nodes"]
             if n.endswith("_dw_0")}
    refused = {r["onnx_nodes"][0]: "refused" for r in report["fusion"]["refused"]}
    return {**fused, **refused}


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_full_size_recognizer_fuses_every_dw_hardswish_pw_pair(tmp_path, int8):
    """The issue's must-show: 48x320, opset 12 (int8: through ``tvm-gap8 quantize``, which
    converts to opset 13), --check passes, every DW -> HardSwish -> PW pair fuses whatever its
    stride ((1,1), (2,2), (2,1), (1,2)), the DW of a squeeze-excite block is refused for its
    pooling, and no conv is left as an untiled fallback."""
    model = M.text_recognizer()
    if int8:
        path = tmp_path / "rec_int8.onnx"
        quantize_model(model, str(path), samples=4, warn=False)
        model = onnx.load(path)
    report = compile_checked(model).report
    pairs = _dw_pairs(report)
    plain = [f"b{i}_dw_0" for i in range(6)]  # DW -> HardSwish -> PW, strides of every kind
    assert all(pairs[n] == "dw_pw" for n in plain), pairs
    assert pairs["b6_dw_0"] == "refused"  # squeeze-excite's pooling between
    assert not [layer["name"] for layer in report["layers"]
                if layer["kind"] in ("conv", "dw", "pw") and not layer.get("tiled")]
    assert all(layer["l1_peak_bytes"] <= 64000 for layer in report["layers"] if layer.get("tiled"))
