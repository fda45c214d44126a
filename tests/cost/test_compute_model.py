"""One compute formula per kernel kind (fused or not), its constants as data
(``cycles.ComputeCosts``, ``Gap8Target.compute``), and L3 -> L2 weight streaming costed.

The fused-vs-standalone checks run the families' real tile plans under a target whose every
cost but one kernel kind's compute is zero (no DMA, no overheads, the other kinds' constants
0): what is left of a plan's cycles is that kind's compute, which must be the same for the
fused kernel's half and the standalone kernel on the same tile and layouts."""

import dataclasses
import json

import pytest

from tvm_gap8.cost import cycles
from tvm_gap8.errors import UsageError
from tvm_gap8.kernels.conv import ConvKernelSpec, conv_tiling
from tvm_gap8.kernels.dense import DenseKernelSpec, dense_tiling
from tvm_gap8.kernels.dw_pw import dw_pw_staged_tiling, dw_pw_tiling
from tvm_gap8.kernels.fused import ConvGeom, FusedKernelSpec
from tvm_gap8.kernels.layout import KernelLayouts
from tvm_gap8.kernels.pw_dw import pw_dw_tiling
from tvm_gap8.target import GAP8, Gap8Target

HUGE = 1e30
#: The kernels' formulas are the int8 ones (a float kernel is costed as soft float instead)
INT8 = "int8"
#: Data movement and overheads free (the engine's time ~ bytes / 1e30).
NO_DMA = GAP8.replace(dma_setup_cycles=0, dma_bytes_per_cycle=HUGE, dma_cycles_per_row=0,
                      dma_transpose_bytes_per_cycle=HUGE, dma_transpose_cycles_per_channel=0,
                      l3_setup_cycles=0, l3_bytes_per_cycle=HUGE, tile_overhead_cycles=0,
                      layer_overhead_cycles=0)
_ZERO_DW = dict(dw_cycles_per_mac=0, dw_strip_word_cycles_chw=0, dw_strip_word_cycles_hwc=0)
_ZERO_PW = dict(conv_im2col_cycles_per_byte=0, conv_matmul_setup_cycles=0,
                conv_matmul_cycles_per_4_in=0, conv_requant_cycles_per_4_out=0,
                pw_single_setup_cycles=0, pw_single_cycles_per_4_in=0,
                pw_single_requant_cycles=0, pw_gather_cycles_chw=0, pw_gather_cycles_hwc=0)
PW_ONLY = NO_DMA.replace(compute=cycles.ComputeCosts(**_ZERO_DW, eltwise_cycles_per_element=0))
DW_ONLY = NO_DMA.replace(compute=cycles.ComputeCosts(**_ZERO_PW, eltwise_cycles_per_element=0))


def _same(a, b):
    assert a == pytest.approx(b, rel=1e-12, abs=1e-6)


# --- the reviewer's case: a 1024 -> 1024 PW at 4x4 --------------------------------------------

def test_pointwise_one_formula_the_reviewers_case():
    # before: fused (HoWo split) 923,392, standalone (ceil(oh/2)*ceil(ow/8)) 1,846,784
    assert cycles.conv(1024, 1024, 4, 4, 1) == cycles.pointwise(1024, 1024, 4, 4) == 923392
    for lay in ("CHW", "HWC"):
        assert (cycles.conv(64, 32, 3, 5, 1, in_layout=lay, out_layout="CHW")
                == cycles.pointwise(64, 32, 3, 5, lay, "CHW"))


def test_pointwise_is_plinio_when_the_split_is_even():
    # rows and cols multiples of 8: the HoWo split is PLiNIO's ceil(oh/2)*ceil(ow/8) pairs
    plinio = (48 // 2) * (48 // 8) * (32 * 2 + 16 * (5 + 8 * 14 + 10))
    assert cycles.pointwise(32, 64, 48, 48) == plinio


# --- fused halves == standalone kernels on the same tile --------------------------------------

DW_PW_CASES = [  # (c, o, h, w, k, stride, pad, layouts, rows, channels, cols)
    (32, 64, 12, 12, 3, 1, (1, 1, 1, 1), KernelLayouts("CHW", "CHW", "CHW", "HWC"), 3, 64, 0),
    (32, 64, 12, 12, 3, 1, (1, 1, 1, 1), KernelLayouts("HWC", "HWC", "HWC", "CHW"), 4, 32, 0),
    (64, 128, 8, 8, 3, 2, (0, 0, 1, 1), KernelLayouts("CHW", "CHW", "HWC", "HWC"), 1, 64, 0),
    (16, 24, 9, 9, 3, 1, (1, 1, 1, 1), KernelLayouts("HWC", "CHW", "CHW", "HWC"), 3, 24, 3),
    (256, 256, 4, 4, 3, 1, (1, 1, 1, 1), KernelLayouts("CHW", "CHW", "CHW", "HWC"), 4, 64, 0),
]


def _dw_pw(c, o, h, w, k, s, pad, lay):
    return FusedKernelSpec("dw_pw", (1, c, h, w), ConvGeom(c, c, k, s, pad), ConvGeom(c, o, 1),
                           layouts=lay, dtype=INT8)


@pytest.mark.parametrize("case", DW_PW_CASES)
def test_dw_pw_pw_half_costs_the_standalone_pw(case):
    c, o, h, w, k, s, pad, lay, rows, channels, cols = case
    spec = _dw_pw(c, o, h, w, k, s, pad, lay)
    _, _, oh, ow = spec.out_shape
    pw = ConvKernelSpec((1, c, oh, ow), ConvGeom(c, o, 1), dtype=INT8, kind="pw",
                        layouts=KernelLayouts(lay.mid, lay.mid, lay.out))
    fused = dw_pw_tiling(spec, PW_ONLY, rows, channels, cols)
    alone = conv_tiling(pw, PW_ONLY, rows, channels, cols)
    assert fused.cycles > 0
    _same(fused.cycles, alone.cycles)
    # the channel-staged variant: the same PW
    _same(dw_pw_staged_tiling(spec, PW_ONLY, rows, channels, c // 2, cols).cycles, alone.cycles)


@pytest.mark.parametrize("case", DW_PW_CASES)
def test_dw_pw_dw_half_costs_the_standalone_dw(case):
    c, o, h, w, k, s, pad, lay, rows, channels, cols = case
    spec = _dw_pw(c, o, h, w, k, s, pad, lay)
    dw = ConvKernelSpec((1, c, h, w), ConvGeom(c, c, k, s, pad), groups=c, dtype=INT8, kind="dw",
                        layouts=KernelLayouts(lay.source, lay.tile, lay.mid))
    fused = dw_pw_tiling(spec, DW_ONLY, rows, channels, cols)
    alone = conv_tiling(dw, DW_ONLY, rows, c, cols)
    assert fused.cycles > 0
    _same(fused.cycles, alone.cycles)
    # the channel-staged variant runs the DW per channel tile: the standalone DW's channel tiles
    _same(dw_pw_staged_tiling(spec, DW_ONLY, rows, channels, c // 2, cols).cycles,
          conv_tiling(dw, DW_ONLY, rows, c // 2, cols).cycles)


PW_DW_CASES = [  # (c, hid, h, w, k, stride, pad, layouts, channels)
    (8, 48, 10, 10, 3, 1, (1, 1, 1, 1), KernelLayouts("CHW", "CHW", "CHW", "CHW"), 48),
    (8, 48, 10, 10, 3, 2, (1, 1, 1, 1), KernelLayouts("HWC", "HWC", "HWC", "CHW"), 16),
    (16, 96, 6, 6, 5, 1, (2, 2, 2, 2), KernelLayouts("CHW", "HWC", "CHW", "HWC"), 32),
]


def _pw_dw(c, hid, h, w, k, s, pad, lay):
    return FusedKernelSpec("pw_dw", (1, c, h, w), ConvGeom(c, hid, 1),
                           ConvGeom(hid, hid, k, s, pad), layouts=lay, dtype=INT8)


@pytest.mark.parametrize("case", PW_DW_CASES)
def test_pw_dw_halves_cost_the_standalone_kernels(case):
    """One tile of all rows: the PW half is the standalone PW on the padded rows x columns the
    DW reads (the fused kernel computes its halo / padding ring), the DW half the standalone DW
    of the same channels."""
    c, hid, h, w, k, s, pad, lay, channels = case
    spec = _pw_dw(c, hid, h, w, k, s, pad, lay)
    _, _, oh, ow = spec.out_shape
    t, l, b, r = pad
    hp, wp = h + t + b, min(w + l + r, (ow - 1) * s + k)
    pw = ConvKernelSpec((1, c, hp, wp), ConvGeom(c, hid, 1), dtype=INT8, kind="pw",
                        layouts=KernelLayouts(lay.source, lay.tile, lay.mid))
    dw = ConvKernelSpec((1, hid, hp, wp), ConvGeom(hid, hid, k, s), groups=hid, dtype=INT8, kind="dw",
                        layouts=KernelLayouts(lay.mid, lay.mid, lay.out))
    assert dw.out_shape[2:] == (oh, ow)
    _same(pw_dw_tiling(spec, PW_ONLY, oh, channels).cycles,
          conv_tiling(pw, PW_ONLY, hp, channels).cycles)
    _same(pw_dw_tiling(spec, DW_ONLY, oh, channels).cycles,
          conv_tiling(dw, DW_ONLY, oh, channels).cycles)


def test_compute_costs_are_data_a_fit_changes_the_plans_cycles():
    spec = _dw_pw(*DW_PW_CASES[0][:8])
    base = dw_pw_tiling(spec, GAP8, 3, 64)
    slower_pw = GAP8.replace(compute=GAP8.compute.replace(conv_matmul_cycles_per_4_in=28))
    assert dw_pw_tiling(spec, slower_pw, 3, 64).cycles > base.cycles
    assert GAP8.compute == cycles.DEFAULT_COSTS
    fields = {f.name for f in dataclasses.fields(cycles.ComputeCosts)}
    assert GAP8.to_dict()["compute"].keys() == fields


def test_compute_costs_from_json(tmp_path):
    p = tmp_path / "hw.json"
    p.write_text(json.dumps({"compute": {"dw_cycles_per_mac": 2}, "l3_bytes_per_cycle": 2.0}))
    hw = Gap8Target.from_json(str(p))
    assert hw.compute.dw_cycles_per_mac == 2 and hw.l3_bytes_per_cycle == 2.0
    assert hw.compute.conv_matmul_cycles_per_4_in == 14
    p.write_text(json.dumps({"compute": {"dw_cycles": 2}}))
    with pytest.raises(UsageError):
        Gap8Target.from_json(str(p))


# --- L3 -> L2 weight streaming costs cycles ----------------------------------------------------

def test_weights_streamed_from_l3_cost_cycles():
    """The same PW, the same tile: weights the placement put in L3 (``weights_memory``) cost
    the L3 copy on top (blocking: every L3 byte and set-up; the weights are loaded once at the
    root, so nothing hides even double-buffered)."""
    spec = ConvKernelSpec((1, 256, 8, 8), ConvGeom(256, 256, 1), kind="pw", dtype="int8")
    for hw in (GAP8, GAP8.replace(dma_mode="blocking")):
        in_l2 = conv_tiling(spec, hw, 8, 256)
        in_l3 = conv_tiling(spec, hw.replace(weights_memory="L3"), 8, 256)
        assert in_l3.l2_to_l1_wgt == in_l2.l2_to_l1_wgt == 256 * 256
        n_wgt = sum(b.transfers for b in in_l3.buffers if b.role == "weight")
        assert in_l3.cycles - in_l2.cycles == pytest.approx(
            in_l3.l2_to_l1_wgt / hw.l3_bytes_per_cycle + n_wgt * hw.l3_setup_cycles)


def test_l3_weights_overlap_only_when_double_buffered():
    """A dense layer's weights are copied per output tile at its pipelined loop: their L3 copies
    hide behind compute like their L2->L1 copies when double-buffered, not when blocking."""
    spec = DenseKernelSpec((16, 256), 1000, dtype="int8")  # compute enough to hide behind
    for mode, hides in (("double", True), ("blocking", False)):
        hw = GAP8.replace(dma_mode=mode)
        in_l2 = dense_tiling(spec, hw, 1, 100)
        in_l3 = dense_tiling(spec, hw.replace(weights_memory="L3"), 1, 100)
        assert in_l3.double_buffered
        n_wgt = sum(b.transfers for b in in_l3.buffers if b.role == "weight")
        unhidden = in_l3.l2_to_l1_wgt / hw.l3_bytes_per_cycle + n_wgt * hw.l3_setup_cycles
        extra = in_l3.cycles - in_l2.cycles
        assert extra > 0
        assert (extra < unhidden) if hides else extra == pytest.approx(unhidden)


def test_weights_memory_must_be_a_level():
    with pytest.raises(UsageError, match="weights_memory"):
        GAP8.replace(weights_memory="L4")


def test_l3_dma_kind():
    assert cycles.dma_cycles(GAP8, 1000, "l3") == GAP8.l3_setup_cycles + 1000 / 1.0
    assert (cycles.dma_cycles(GAP8, 1000, "l3") - GAP8.l3_setup_cycles
            > cycles.dma_cycles(GAP8, 1000, "contiguous") - GAP8.dma_setup_cycles)


# --- float kernels are costed as soft float (GAP8's cluster has no FPU) -----------------------

def test_float_layer_costed_as_soft_float():
    """A float PW's modelled cycles carry its MACs at the measured soft-float figure
    (benchmarks/soft_float_rv32.py), in the analytical model and the GVSOC-fitted one: doubling
    the soft-float MAC cost adds exactly MACs x that cost / cores (blocking DMA: nothing
    overlaps); an int8 PW does not move."""
    from tvm_gap8.cost import calibrated

    costs = GAP8.compute
    assert costs.soft_float_mac_cycles == pytest.approx(174.7)
    doubled = costs.replace(soft_float_mac_cycles=2 * costs.soft_float_mac_cycles)
    for dtype, moves in (("float32", True), ("int8", False)):
        spec = ConvKernelSpec((1, 64, 8, 8), ConvGeom(64, 64, 1), kind="pw", dtype=dtype)
        hw = GAP8.replace(dma_mode="blocking", cycle_model="analytical")
        base = conv_tiling(spec, hw, 8, 64)
        more = conv_tiling(spec, hw.replace(compute=doubled), 8, 64)
        extra = spec.macs() * costs.soft_float_mac_cycles / hw.cores
        assert more.cycles - base.cycles == (pytest.approx(extra) if moves else 0)
        if moves:  # far above the int8 formula for the same work
            assert base.cycles > spec.macs() * costs.soft_float_mac_cycles / hw.cores
        cal = calibrated.SHIPPED
        if cal is not None:
            fitted = calibrated.plan_cycles(cal, spec, base, costs)
            fitted_more = calibrated.plan_cycles(cal, spec, base, doubled)
            assert fitted_more - fitted == (pytest.approx(extra) if moves else 0)
