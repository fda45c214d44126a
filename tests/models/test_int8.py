"""Int8 QDQ models: integer kernels end to end, checked bit for bit against the integer
reference (and every layer within one step of the QDQ spec)."""

import numpy as np
import pytest

from tests.conftest import compile_checked
from tvm_gap8.ir.irutil import bindings
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def _kinds(result):
    return [layer["kind"] for layer in result.report["layers"]]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("act", ["relu", "relu6"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_int8_dw_pw_block(stride, act, per_channel):
    model = quantized(M.dw_pw_block(cin=16, cout=32, h=15, w=13, k=3, stride=stride, act=act,
                                    act_after_pw=act), per_channel=per_channel)
    result = compile_checked(model)
    assert [f["kind"] for f in result.report["fusion"]["fused"]] == ["dw_pw"]
    (out,) = result.report["check"]["outputs"]
    assert out["max_lsb_err"] == 0 and out["equal_fraction"] == 1.0  # the integer reference
    assert result.report["float_layers"] == []


@pytest.mark.parametrize("stride", [1, 2])
def test_int8_pw_dw_block(stride):
    model = quantized(M.pw_dw_block(cin=8, hidden=32, h=12, w=12, k=5, stride=stride))
    result = compile_checked(model)
    assert [f["kind"] for f in result.report["fusion"]["fused"]] == ["pw_dw"]


def test_int8_inverted_residual_add_is_integer():
    result = compile_checked(quantized(M.inverted_residual_block(cin=16, h=10, w=10, t=4)))
    assert [k for k in _kinds(result) if k not in ("quantize", "dequantize")] == \
        ["pw", "dw_pw", "add"]
    assert result.report["float_layers"] == []
    assert all(layer["integer"] for layer in result.report["layers"] if layer.get("tiled"))


def test_fused_kernels_are_integer_only_in_the_ir():
    import tvm

    from tvm_gap8.ir.tirwalk import allocations, sblocks
    from tvm_gap8.ir.vocab import ROLE_ANN

    result = compile_checked(quantized(M.mobilenet_v2(alpha=0.35, resolution=64)))
    text = result.lowered.script()  # what lowered.py holds
    prims = {gv.name_hint: f for gv, f in result.lowered.functions_items()
             if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "gap8.kind" in f.attrs}
    fused = {n: f for n, f in prims.items() if str(f.attrs["gap8.kind"]) in ("dw_pw", "pw_dw")}
    assert len(fused) >= 5
    for name, prim in fused.items():
        assert "float" not in prim.script(), name  # no float buffer, cast or constant at all
        # ReLU6 is folded into the clamp: nothing is applied between the convs
        assert not [p for p in prim.params if p.name.startswith("t")], name
        assert not any("lut" in e or "mul" in e for e in prim.attrs["gap8.epilogues"]), name
        assert f"def {name}(" in text
        allocs = {b.name: (str(b.dtype), b.scope()) for b, _ in allocations(prim)}
        (mid,) = [blk for blk in sblocks(prim) if blk.annotations.get(ROLE_ANN) == "intermediate"]
        assert allocs[mid.writes[0].source.name] == ("int8", "global.l1"), name
        assert allocs["x_pad_global.l1"][0] == "int8"
        accumulators = [v for k, v in allocs.items() if k.endswith("_acc_local")]
        assert accumulators and all(v == ("int32", "local") for v in accumulators), name
    # and the main function moves int8 tensors between the kernels
    call_tir = tvm.ir.Op.get("relax.call_tir")
    for b in bindings(result.lowered["main"]):
        if hasattr(b.value, "op") and b.value.op.same_as(call_tir):
            assert str(b.value.ty.dtype) == "int8"


@pytest.mark.parametrize("build", [
    lambda: M.dw_pw_block(cin=16, cout=24, h=12, w=12, stride=2),
    lambda: M.inverted_residual_block(cin=8, h=10, w=10, t=3),
    lambda: M.mobilenet_v1(alpha=0.25, resolution=64)], ids=["dw_pw", "inverted_residual",
                                                            "mobilenet_v1"])
def test_uint8_activations(build):
    result = compile_checked(quantized(build(), activation_type="uint8"))
    assert result.report["float_layers"] == []
    assert any(layer["kind"] == "dw_pw" for layer in result.report["layers"])
    (out,) = result.report["check"]["outputs"]
    assert out["max_lsb_err"] == 0 and out["equal_fraction"] == 1.0  # the integer reference


def test_int8_squeeze_excite_refused_for_the_right_reason_and_integer():
    result = compile_checked(quantized(M.squeeze_excite_block()))
    (refused,) = result.report["fusion"]["refused"]
    assert "non-elementwise op, mean (se_pool_0)" in refused["reason"]
    # HardSwish, the SE gate (HardSigmoid) and the SE scale run as integer kernels
    assert result.report["float_layers"] == []
    kinds = [layer["kind"] for layer in result.report["layers"]]
    assert "lut" in kinds and "mul" in kinds


def _fused_prims(result):
    import tvm

    return {gv.name_hint: f for gv, f in result.lowered.functions_items()
            if isinstance(f, tvm.tirx.PrimFunc) and f.attrs
            and str(f.attrs.get("gap8.kind", "")) in ("dw_pw", "pw_dw")}


def _block(kind, act, stride):
    if kind == "dw_pw":
        return M.dw_pw_block(cin=16, cout=24, h=12, w=11, k=3, stride=stride, act=act,
                             act_after_pw=None)
    return M.pw_dw_block(cin=8, hidden=24, h=12, w=11, k=3, stride=stride, act=act,
                         act_after_dw=None)


# The activation between the convs, quantized on its own by onnxruntime's quantizer
# (DW -> Q -> DQ -> act -> Q -> DQ -> PW), applied to the int8 intermediate in L1: HardSwish as
# the quantizer rewrites it (the HardSigmoid table, then the requantized product with x), and
# LeakyRelu as one 256-entry table.
@pytest.mark.parametrize("kind,act,stride,per_channel,steps", [
    ("dw_pw", "hardswish", 1, True, "+lut+mul"), ("dw_pw", "hardswish", 2, False, "+lut+mul"),
    ("dw_pw", "leakyrelu", 2, True, "+lut"), ("dw_pw", "leakyrelu", 1, False, "+lut"),
    ("pw_dw", "hardswish", 1, False, "+lut+mul"), ("pw_dw", "hardswish", 2, True, "+lut+mul"),
    ("pw_dw", "leakyrelu", 1, True, "+lut"), ("pw_dw", "leakyrelu", 2, False, "+lut")])
def test_int8_activation_between_the_convs_fuses(kind, act, stride, per_channel, steps):
    result = compile_checked(quantized(_block(kind, act, stride), per_channel=per_channel))
    (fused,) = result.report["fusion"]["fused"]
    assert fused["kind"] == kind and fused["epilogues"][0].endswith(steps)
    # one kernel: no table or multiply kernel left between the convs
    assert [k for k in _kinds(result) if k not in ("quantize", "dequantize")] == [kind]
    (out,) = result.report["check"]["outputs"]
    assert out["max_lsb_err"] == 0 and out["equal_fraction"] == 1.0  # the integer reference
    assert result.report["check"]["reference"].startswith("integer reference")  # exact
    ((name, prim),) = _fused_prims(result).items()
    assert "float" not in prim.script(), name  # the table and product are integer-only
    # one table (HardSigmoid / LeakyRelu), a kernel input staged in L1
    assert [p.name for p in prim.params if p.name.startswith("t")] == ["t0"]
    assert 't0: T.Buffer((256,), "int8")' in prim.script()
    assert 't0_global_l1 = T.sblock_alloc_buffer((256,), "int8", scope="global.l1")' in \
        prim.script()


@pytest.mark.parametrize("kind", ["dw_pw", "pw_dw"])
def test_uint8_hardswish_between_the_convs_fuses(kind):
    """uint8 activations: the tables are indexed from 0, the product's zero points are
    uint8's."""
    result = compile_checked(quantized(_block(kind, "hardswish", 1), activation_type="uint8"))
    assert [f["kind"] for f in result.report["fusion"]["fused"]] == [kind]
    ((_, prim),) = _fused_prims(result).items()
    assert 't0: T.Buffer((256,), "uint8")' in prim.script()
    assert [k for k in _kinds(result) if k not in ("quantize", "dequantize")] == [kind]
    (out,) = result.report["check"]["outputs"]
    assert out["max_lsb_err"] == 0 and out["equal_fraction"] == 1.0


def test_int8_lcnet_like_network_fuses_every_pair():
    """MobileNetV1 with HardSwish everywhere (PP-LCNet's backbone without squeeze-excite): every
    DW fuses with its PW, the HardSwish between them inside the kernel; exact."""
    result = compile_checked(quantized(M.mobilenet_v1(alpha=0.25, resolution=32,
                                                      act="hardswish")))
    fused = result.report["fusion"]["fused"]
    assert len(fused) == 13 and {f["kind"] for f in fused} == {"dw_pw"}
    assert all(f["epilogues"][0].endswith("+lut+mul") for f in fused)
    kinds = _kinds(result)
    assert "dw" not in kinds and "pw" not in kinds
    # what is left standalone: the stem's and each PW's HardSwish (a table and a product each)
    assert kinds.count("lut") == kinds.count("mul") == 14
    assert result.report["float_layers"] == []
    (out,) = result.report["check"]["outputs"]
    assert out["max_lsb_err"] == 0 and out["equal_fraction"] == 1.0


def test_int8_leakyrelu_after_the_pair_is_a_table_kernel():
    """LeakyRelu with nothing to fuse into: the standalone 256-entry table kernel, exact."""
    result = compile_checked(quantized(M.dw_pw_block(cin=8, cout=16, h=10, w=10, act="relu",
                                                     act_after_pw="leakyrelu")))
    assert [k for k in _kinds(result) if k not in ("quantize", "dequantize")] == ["dw_pw", "lut"]
    assert result.report["float_layers"] == []


@pytest.mark.parametrize("act", ["hardswish", "hardswish_decomposed"])
def test_int8_hardswish_between_dw_and_pw_is_integer(act):
    result = compile_checked(quantized(M.dw_pw_block(cin=8, cout=16, h=12, w=12, act=act)))
    assert result.report["float_layers"] == []
    (out,) = result.report["check"]["outputs"]
    assert out["max_lsb_err"] == 0 and out["equal_fraction"] == 1.0  # the integer reference


def test_int8_classifier_hardswish_on_2d_tensors_is_integer():
    """MobileNetV3's classifier: Linear -> HardSwish -> Linear, on [1, F] tensors."""
    result = compile_checked(quantized(M.classifier_head()))
    assert result.report["float_layers"] == []
    assert {"lut", "mul"} <= {layer["kind"] for layer in result.report["layers"]}


def _constant_operand_model(op: str, shape):
    """conv -> relu -> ``op`` with a constant of ``shape`` -> DW -> PW."""
    b = M.GraphBuilder(8)
    a = b.act(b.conv("x", 8, 8, 3, base="c1"), "relu")
    k = b.const("K", np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    y = b.node(op, [a, k], "op")
    y = b.conv(b.act(b.conv(y, 8, 8, 3, groups=8, base="dw"), "relu"), 8, 8, 1, base="pw")
    return b.model("x", [1, 8, 12, 12], y)


@pytest.mark.parametrize("op,shape", [("Add", (1, 8, 12, 12)), ("Mul", (1, 8, 12, 12)),
                                      ("Add", (1, 8, 1, 1))])
def test_int8_op_with_a_constant_operand_stays_on_tvm_and_is_exact(op, shape):
    """An int8 Add/Mul of an activation and a quantized constant (full-size or per-channel)
    is no integer add/product/table kernel (they take two activations or scalar constants):
    it computes in float (TVM's ops, or the float add kernel on the dequantized operands),
    says so, and the network is exact (found by review: it crashed)."""
    result = compile_checked(quantized(_constant_operand_model(op, shape)), fusion="auto",
                             layout="auto")
    assert not [layer for layer in result.report["layers"]
                if layer["kind"] in ("add", "mul", "lut") and layer.get("integer")]
    assert any(rec["name"] == "op_0" for rec in result.report["float_layers"])
