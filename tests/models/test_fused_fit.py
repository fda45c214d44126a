"""Fusion is never the reason a valid model fails to compile: a DW->PW pair whose fused kernel
fits no tile of L1 stays two kernels (refused with the bytes vs the budget), and layers too
wide for the row-tiled DW->PW kernel fuse with its channel-staged variant."""

import re
import time

import pytest

from tests.conftest import compile_checked
from tests.models.test_gap8_tiling import _assert_tiled_within
from tvm_gap8.target import GAP8
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

# 64 channels at 32x32: the PW alone needs one input row of all channels (float: 8,192 B);
# the fused kernel also holds that row as its intermediate plus the DW's tiles
WIDE = dict(cin=64, cout=64, h=32, w=32)


def _refusal_bytes(reason):
    m = re.search(r"needs (\d+) B, the L1 budget is (\d+) B", reason)
    assert m, reason
    return int(m.group(1)), int(m.group(2))


# budgets below the fused kernel's smallest tile (1 row x 1 column x 1 channel, DW 1 channel at
# a time: float 588 B, int8 ~150 B) that the DW and the PW alone fit (columns and input channels
# tiled)
@pytest.mark.parametrize("dtype,budget", [("float32", 500), ("int8", 120)])
def test_pair_that_fits_no_tile_stays_unfused(dtype, budget):
    model = M.dw_pw_block(**WIDE)
    model = quantized(model) if dtype == "int8" else model
    result = compile_checked(model, hw=GAP8.with_l1_budget(budget))
    report = result.report
    assert report["fusion"]["fused"] == []
    (refused,) = report["fusion"]["refused"]
    assert refused["onnx_nodes"] == ["dw_0"]
    assert "the fused kernel cannot fit L1 on gap8" in refused["reason"]
    needed, have = _refusal_bytes(refused["reason"])
    assert have == budget < needed
    kinds = [layer["kind"] for layer in _assert_tiled_within(result, budget)]
    assert kinds == ["dw", "pw"]


def test_pw_dw_pair_that_fits_no_tile_stays_unfused():
    result = compile_checked(M.pw_dw_block(cin=8, hidden=48, h=16, w=16),
                             hw=GAP8.with_l1_budget(300))  # fused: >= 396 B
    assert result.report["fusion"]["fused"] == []
    (refused,) = result.report["fusion"]["refused"]
    assert "producer: the fused kernel cannot fit L1 on gap8" in refused["reason"]
    needed, have = _refusal_bytes(refused["reason"])
    assert have == 300 < needed
    assert [layer["kind"] for layer in _assert_tiled_within(result, 300)] == ["pw", "dw"]


def test_wide_block_fuses_channel_staged_under_a_small_l1():
    """In CI: at 10,000 B only the channel-staged variant fits the fused block (the row-tiled
    one stages 3 input rows of all 64 channels: over 26 kB at one row; staged: 9,276 B)."""
    result = compile_checked(M.dw_pw_block(**WIDE), hw=GAP8.with_l1_budget(10000))
    (layer,) = _assert_tiled_within(result, 10000)
    assert layer["kind"] == "dw_pw"
    assert 0 < layer["tile"]["dw_channels"] < 64
    assert result.report["fusion"]["refused"] == []


# about 5-13 s each on 2 cores here (under the 30 s the `slow` marker is for); the int8
# version is tests/models/test_gap8_tiling.py::test_mobilenet_v1_10_128_int8_fits_64kB
def test_mobilenet_v1_10_128_float_fuses_all_13_pairs_within_64kB():
    t0 = time.perf_counter()
    result = compile_checked(M.mobilenet_v1(alpha=1.0, resolution=128))
    elapsed = time.perf_counter() - t0
    assert len(result.report["fusion"]["fused"]) == 13
    assert result.report["fusion"]["refused"] == []
    tiled = _assert_tiled_within(result, 64000)
    staged = [layer["name"] for layer in tiled if layer["tile"].get("dw_channels")]
    assert len(staged) == 13  # b2..b12 fit only channel-staged; b0, b1: fewer modelled cycles
    print(f"float MobileNetV1 x1.0 @128 compiled and checked in {elapsed:.1f} s")
