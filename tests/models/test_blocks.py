"""Whole ONNX blocks through the full flow (frontend, fusion, lowering, host build) against
onnxruntime, fused and unfused."""

import numpy as np
import pytest

from tests.conftest import compile_checked
from tvm_gap8.testing import onnx_models as M


def _fused_kinds(result):
    return [f["kind"] for f in result.report["fusion"]["fused"]]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("act", ["relu", "relu6", "hardswish"])
def test_mobilenet_v1_block(stride, k, act):
    model = M.dw_pw_block(cin=8, cout=16, h=13, w=11, k=k, stride=stride, act=act,
                          act_after_pw=act)
    fused = compile_checked(model)
    assert _fused_kinds(fused) == ["dw_pw"]
    unfused = compile_checked(model, fuse=False)
    assert _fused_kinds(unfused) == []


@pytest.mark.parametrize("act", ["hardswish_decomposed", None])
def test_exporter_forms_of_activations_fuse(act):
    model = M.dw_pw_block(cin=8, cout=8, h=9, w=9, act=act, batchnorm=False)
    result = compile_checked(model)
    assert _fused_kinds(result) == ["dw_pw"]
    if act:
        assert result.report["fusion"]["fused"][0]["epilogues"][0] == "bias+hardswish"


@pytest.mark.parametrize("stride", [1, 2])
def test_pw_dw_block(stride):
    result = compile_checked(M.pw_dw_block(cin=8, hidden=48, h=12, w=12, stride=stride))
    assert _fused_kinds(result) == ["pw_dw"]
    compile_checked(M.pw_dw_block(cin=8, hidden=48, h=12, w=12, stride=stride), fuse=False)


def test_inverted_residual_with_add():
    model = M.inverted_residual_block(cin=16, h=12, w=12, t=6)
    result = compile_checked(model)
    assert _fused_kinds(result) == ["dw_pw"]
    kinds = [layer["kind"] for layer in result.report["layers"]]
    assert kinds == ["pw", "dw_pw", "add"]  # expand PW+ReLU6 kernel, fused DW->PW, residual add
    compile_checked(model, fuse=False)


def test_asymmetric_padding_block():
    model = M.dw_pw_block(cin=4, cout=8, h=7, w=10, k=3, stride=2, pads=[0, 0, 1, 1])
    assert _fused_kinds(compile_checked(model)) == ["dw_pw"]


_EPILOGUE_NAMES = {"leakyrelu": "leakyrelu", "prelu": "prelu", "sigmoid": "sigmoid",
                   "silu": "silu", "tanh": "tanh"}


@pytest.mark.parametrize("act", sorted(_EPILOGUE_NAMES))
def test_float_activations_fuse_dw_pw_and_pass_check(act):
    """DW -> act -> PW -> act (ONNX LeakyRelu, PRelu per channel, Sigmoid, SiLU, Tanh) is one
    dw_pw kernel computing the activations in float, equal to onnxruntime."""
    model = M.dw_pw_block(cin=8, cout=16, h=11, w=9, act=act, act_after_pw=act, batchnorm=False)
    result = compile_checked(model)
    assert _fused_kinds(result) == ["dw_pw"]
    (fused,) = result.report["fusion"]["fused"]
    assert fused["epilogues"] == [f"bias+{_EPILOGUE_NAMES[act]}"] * 2, fused
    assert not result.report["fusion"]["refused"]


@pytest.mark.parametrize("act", sorted(_EPILOGUE_NAMES))
def test_float_activations_fuse_pw_dw_and_pass_check(act):
    model = M.pw_dw_block(cin=8, hidden=24, h=10, w=10, stride=2, act=act, act_after_dw=act)
    result = compile_checked(model)
    assert _fused_kinds(result) == ["pw_dw"]
    (fused,) = result.report["fusion"]["fused"]
    assert fused["epilogues"] == [f"bias+{_EPILOGUE_NAMES[act]}"] * 2, fused


def test_conv_kernel_epilogue_takes_an_activation_chain():
    """A standard conv -> SiLU -> LeakyRelu -> PRelu is one gap8 conv kernel (no fallback op)."""
    b = M.GraphBuilder(0)
    y = b.act(b.conv("input", 3, 8, 3, base="stem"), "silu", 8)
    y = b.act(b.act(y, "leakyrelu", 8), "prelu", 8)
    result = compile_checked(b.model("input", [1, 3, 12, 12], y))
    (layer,) = result.report["layers"]
    assert layer["kind"] == "conv" and layer["tiled"], layer
    assert layer["epilogues"] == ["bias+sigmoid+multiply+leakyrelu+prelu"], layer


@pytest.mark.parametrize("slope_shape, fuses", [((1,), True), ((8, 1, 1), True), ((8,), False)])
def test_prelu_slope_shapes(slope_shape, fuses):
    """ONNX broadcasts PRelu's slope from the right: (1,) is a scalar, (C, 1, 1) per channel,
    (8,) per column of the width-8 map, which the per-channel epilogue cannot take (refused,
    and still equal to onnxruntime unfused)."""
    b = M.GraphBuilder(0)
    y = b.conv("input", 8, 8, 3, groups=8, base="dw")
    slope = np.random.default_rng(0).uniform(0.1, 0.5, slope_shape).astype(np.float32)
    y = b.node("PRelu", [y, b.const("slope", slope)], "prelu")
    result = compile_checked(b.model("input", [1, 8, 8, 8], b.conv(y, 8, 16, 1, base="pw")))
    assert _fused_kinds(result) == (["dw_pw"] if fuses else [])
    refused = [r["reason"] for r in result.report["fusion"]["refused"]]
    assert refused == ([] if fuses else
                       ["prelu with 8 slopes along axis 3 is not per-channel (node prelu_0)"])
