"""Int8 QDQ models: integer kernels end to end, checked bit for bit against the integer
reference (and every layer within one step of the QDQ spec)."""

import pytest

from tests.conftest import compile_checked
from tvm_gap8.irutil import bindings
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

    from tvm_gap8.tirwalk import allocations, sblocks
    from tvm_gap8.vocab import ROLE_ANN

    result = compile_checked(quantized(M.mobilenet_v2(alpha=0.35, resolution=64)))
    text = result.lowered.script()  # what lowered.py holds
    prims = {gv.name_hint: f for gv, f in result.lowered.functions_items()
             if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "gap8.kind" in f.attrs}
    fused = {n: f for n, f in prims.items() if str(f.attrs["gap8.kind"]) in ("dw_pw", "pw_dw")}
    assert len(fused) >= 5
    for name, prim in fused.items():
        assert "float" not in prim.script(), name  # no float buffer, cast or constant at all
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
