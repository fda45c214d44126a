"""Recognizer-class layers (PaddleOCR's PPLCNet at 48x320): per-axis DW strides (2,1) / (1,2)
fuse and tile like the others, and a row of all input channels wider than L1 is tiled over
columns; both pass --check in float and int8 (bit for bit against the integer reference)."""

import numpy as np
import pytest

from tests.conftest import compile_checked
from tvm_gap8.reference.ops import conv2d
from tvm_gap8.target import GAP8
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def _untiled(result):
    return [layer["name"] for layer in result.report["layers"] if layer.get("fallback")
            and layer["kind"] not in ("quantize", "dequantize")]


def test_float_pw_wider_than_l1_tiles_columns():
    """1x64x4x320 float PW: one input row of all channels is 81920 B > 64 kB (it failed with
    "cannot fit L1"); now it is tiled over columns and passes --check."""
    b = M.GraphBuilder(0)
    y = b.conv("input", 64, 64, 1, base="pw")
    result = compile_checked(b.model("input", [1, 64, 4, 320], y, name="wide_pw"))
    (layer,) = [lay for lay in result.report["layers"] if lay["kind"] == "pw"]
    assert layer["tile"]["col_tiles"] > 1 and layer["tile"]["cols"] * layer["tile"][
        "col_tiles"] == 320
    assert layer["l1_peak_bytes"] <= 64000
    assert _untiled(result) == []


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
@pytest.mark.parametrize("stride", [(2, 1), (1, 2)], ids=["s21", "s12"])
def test_per_axis_stride_dw_pw_fuses(stride, int8):
    model = M.dw_pw_block(cin=16, cout=24, h=12, w=20, k=3, stride=stride, act="relu",
                          act_after_pw="relu")
    result = compile_checked(quantized(model) if int8 else model)
    (fused,) = result.report["fusion"]["fused"]
    assert fused["kind"] == "dw_pw"
    assert _untiled(result) == []
    (layer,) = [lay for lay in result.report["layers"] if lay["kind"] == "dw_pw"]
    oh, ow = (12 // stride[0], 20 // stride[1])
    assert layer["tile"]["rows"] * layer["tile"]["row_tiles"] == oh
    if int8:
        assert result.report["float_layers"] == []
        (out,) = result.report["check"]["outputs"]
        assert out["max_lsb_err"] == 0 and out["equal_fraction"] == 1.0
    assert result.report["check"]["passed"]
    assert ow in {20, 10}


@pytest.mark.parametrize("stride", [(2, 1), (1, 2)], ids=["s21", "s12"])
def test_per_axis_stride_pw_dw_and_unfused_dw(stride):
    result = compile_checked(M.pw_dw_block(cin=8, hidden=24, h=12, w=16, stride=stride))
    assert [f["kind"] for f in result.report["fusion"]["fused"]] == ["pw_dw"]
    assert _untiled(result) == []
    unfused = compile_checked(M.dw_pw_block(cin=8, cout=16, h=12, w=16, stride=stride),
                              fuse=False)
    assert "dw" in [lay["kind"] for lay in unfused.report["layers"]]
    assert _untiled(unfused) == []


def pplcnet_like(seed=0):
    """A small PPLCNet-style recognizer backbone at 1x3x48x320 (PaddleOCR's input): conv stem
    stride 2, DW 3x3/5x5 -> HardSwish -> PW -> HardSwish blocks, two of them with stride (2,1)
    (height halved, width kept: the text line's columns) and one (1,2)."""
    b = M.GraphBuilder(seed)
    y = b.conv_bn_act("input", 3, 16, 3, stride=2, act="hardswish", base="stem")
    c = 16
    for i, (k, s, co) in enumerate([(3, 1, 32), (3, 2, 64), (3, 1, 64), (3, (2, 1), 128),
                                    (5, 1, 128), (5, (2, 1), 128), (3, (1, 2), 128)]):
        y = b.conv_bn_act(y, c, c, k, stride=s, groups=c, act="hardswish", base=f"b{i}_dw")
        y = b.conv_bn_act(y, c, co, 1, act="hardswish", base=f"b{i}_pw")
        c = co
    return b.model("input", [1, 3, 48, 320], y, name="pplcnet_like")


def test_pplcnet_like_recognizer_compiles_and_checks():
    result = compile_checked(pplcnet_like())
    layers = result.report["layers"]
    assert _untiled(result) == []
    assert [lay["kind"] for lay in layers] == ["conv"] + ["dw_pw"] * 7
    assert all(lay["l1_peak_bytes"] <= 64000 for lay in layers)


def test_int8_wide_pw_column_tiles_are_exact():
    b = M.GraphBuilder(1)
    y = b.act(b.conv("input", 64, 64, 1, base="pw"), "relu")
    result = compile_checked(quantized(b.model("input", [1, 64, 2, 320], y, name="wide_pw")),
                             hw=GAP8.with_l1_budget(16000))
    (layer,) = [lay for lay in result.report["layers"] if lay["kind"] == "pw"]
    assert layer["tile"]["col_tiles"] > 1
    (out,) = result.report["check"]["outputs"]
    assert out["max_lsb_err"] == 0 and out["equal_fraction"] == 1.0


@pytest.mark.slow
def test_int8_pplcnet_like_recognizer_is_exact():
    """The same backbone quantized (~15 s): the HardSwish between DW and PW keeps them apart as
    integer kernels with tables between; every layer tiled, bit for bit against the integer
    reference (the (2,1) / (1,2) DWs included)."""
    result = compile_checked(quantized(pplcnet_like()))
    assert _untiled(result) == [] and result.report["float_layers"] == []
    assert result.report["check"]["exact"]["equal"]


@pytest.mark.parametrize("stride", [(2, 1), (1, 2)])
@pytest.mark.parametrize("groups", [1, 8])
def test_integer_reference_conv_follows_per_axis_strides(stride, groups):
    """The integer reference reads the ONNX strides per axis: its conv equals the direct
    definition, element by element (exact int64)."""
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 8, 7, 9)).astype(np.int64)
    w = rng.integers(-128, 128, (8, 8 // groups, 3, 3)).astype(np.int64)
    pads = (1, 0, 1, 2)
    got = conv2d(x, w, list(stride), pads, groups)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 2)))
    oh, ow = (7 + 2 - 3) // stride[0] + 1, (9 + 2 - 3) // stride[1] + 1
    assert got.shape == (1, 8, oh, ow)
    cg = 8 // groups
    for o in range(8):
        g = o // (8 // groups)
        for i in range(oh):
            for j in range(ow):
                patch = xp[0, g * cg:(g + 1) * cg, i * stride[0]:i * stride[0] + 3,
                           j * stride[1]:j * stride[1] + 3]
                assert got[0, o, i, j] == (patch * w[o]).sum()
