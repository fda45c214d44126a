"""The lowered IR against the tile planner: for every kernel family the IR's peak L1 bytes and
the bytes and transfers of its copy stages (counted exactly off the loop nests) equal the
plan's, within the L1 budget; double-buffered inputs have their two versions in the IR."""

import numpy as np
import pytest
import tvm

from tvm_gap8.cost.ir import kernel_counts, lower_for_inspection
from tvm_gap8.ir.tirwalk import allocations, sblocks
from tvm_gap8.kernels.conv import (ConvKernelSpec, conv_compute, conv_tiling, plan_conv,
                                   schedule_conv)
from tvm_gap8.kernels.dense import DenseKernelSpec, dense_tiling
from tvm_gap8.kernels.eltwise import AddKernelSpec, add_tiling
from tvm_gap8.kernels.epilogue import ACC, Epilogue, EpilogueOp, Ref, Requant
from tvm_gap8.kernels import build_kernel, plan_kernel
from tvm_gap8.kernels.dw_pw import dw_pw_compute, dw_pw_staged_tiling, dw_pw_tiling
from tvm_gap8.kernels.fused import ConvGeom, FusedKernelSpec
from tvm_gap8.kernels.pw_dw import pw_dw_compute, pw_dw_tiling
from tvm_gap8.kernels.pw_dw_pw import ChainKernelSpec
from tvm_gap8.kernels.layout import HWC, KernelLayouts
from tvm_gap8.kernels.lut import IntStep, LutKernelSpec, MulKernelSpec, lut_tiling, mul_tiling
from tvm_gap8.errors import TilingError
from tvm_gap8.kernels.tiling import choose_plan
from tvm_gap8.kernels.pool import PoolKernelSpec, pool_tiling
from tvm_gap8.kernels.requant import quantize_multiplier
from tvm_gap8.target import GAP8
from tvm_gap8.ir.vocab import COPY_ANN, L1_SCOPE, ROLE_ANN


def _requant_epilogue(c, first_channel=0):
    requant = Requant(-3, -128, 127, "int8", first_channel, first_channel + 1,
                      first_channel + 2)
    return Epilogue(requant=requant), [(1, c, 1, 1)] * 3, ["int32"] * 3


#: HardSwish between the convs as onnxruntime's quantizer leaves it: a HardSigmoid table of
#: the intermediate (value 0 -> 1), then the requantized product of values 0 and 1 (-> 2)
HARDSWISH_STEPS = (IntStep("table", (0,), "int8", table=0),
                   IntStep("mul", (0, 1), "int8", zps=(-1, -128), mult=11 << 20, shift=30,
                           out_zp=-113))
LEAKY_STEPS = (IntStep("table", (0,), "int8", table=0),)


def _specs():
    bias = Epilogue((EpilogueOp("relax.add", (ACC, Ref("channel", 0))),
                     EpilogueOp("relax.clip", (Ref("val", 0),), (0.0, 6.0))))
    yield "dw_pw float", FusedKernelSpec(
        "dw_pw", (1, 32, 24, 24), ConvGeom(32, 32, 3, 1, (1, 1, 1, 1)), ConvGeom(32, 64, 1),
        bias, Epilogue(), ((1, 32, 1, 1),)), None
    e1, s1, d1 = _requant_epilogue(48)
    e2, s2, d2 = _requant_epilogue(48, 3)
    yield "pw_dw int8", FusedKernelSpec(
        "pw_dw", (1, 8, 20, 20), ConvGeom(8, 48, 1), ConvGeom(48, 48, 5, 2, (2, 2, 2, 2)),
        e1, e2, tuple(s1 + s2), "int8", channel_dtypes=tuple(d1 + d2), in_zp=5, mid_zp=-128), None
    e1, s1, d1 = _requant_epilogue(64)
    e2, s2, d2 = _requant_epilogue(128, 3)
    yield "dw_pw int8", FusedKernelSpec(
        "dw_pw", (1, 64, 16, 16), ConvGeom(64, 64, 3, 2, (0, 0, 1, 1)), ConvGeom(64, 128, 1),
        e1, e2, tuple(s1 + s2), "int8", channel_dtypes=tuple(d1 + d2), in_zp=1, mid_zp=-128), None
    yield "dw_pw int8 hardswish between", FusedKernelSpec(
        "dw_pw", (1, 64, 16, 16), ConvGeom(64, 64, 3, 2, (0, 0, 1, 1)), ConvGeom(64, 128, 1),
        e1, e2, tuple(s1 + s2), "int8", channel_dtypes=tuple(d1 + d2), in_zp=1, mid_zp=-113,
        mid_steps=HARDSWISH_STEPS, table_dtypes=("int8",)), None
    e1, s1, d1 = _requant_epilogue(48)
    e2, s2, d2 = _requant_epilogue(48, 3)
    yield "pw_dw int8 table between", FusedKernelSpec(
        "pw_dw", (1, 8, 20, 20), ConvGeom(8, 48, 1), ConvGeom(48, 48, 3, 1, (1, 1, 1, 1)),
        e1, e2, tuple(s1 + s2), "int8", channel_dtypes=tuple(d1 + d2), in_zp=5, mid_zp=-100,
        mid_steps=LEAKY_STEPS, table_dtypes=("int8",)), None
    yield from _chain_specs()
    yield "conv float", ConvKernelSpec((1, 3, 32, 32), ConvGeom(3, 16, 3, 2, (1, 1, 1, 1))), \
        conv_tiling
    e, s, d = _requant_epilogue(32)
    yield "dw int8", ConvKernelSpec((1, 32, 20, 20), ConvGeom(32, 32, 3, 1, (1, 1, 1, 1)),
                                    groups=32, epilogue=e, channel_shapes=tuple(s),
                                    channel_dtypes=tuple(d), dtype="int8", in_zp=3), conv_tiling
    yield "pw float", ConvKernelSpec((1, 24, 12, 12), ConvGeom(24, 96, 1)), conv_tiling
    m, n = quantize_multiplier(0.7)
    yield "add int8", AddKernelSpec((1, 24, 12, 12), "int8", 1, -2, 3 << 20, 5 << 20, 22, 0,
                                    -128, 127), add_tiling
    yield "add float relu", AddKernelSpec((1, 16, 10, 10), lo=0.0), add_tiling
    yield "pool int8", PoolKernelSpec((1, 96, 6, 6), "int8", 3, m, n, -1), pool_tiling
    yield "dense float", DenseKernelSpec((1, 256), 100), dense_tiling
    e, s, d = _requant_epilogue(10)  # a 10-class head: its reduction split over the cores
    yield "dense int8 partial sums", DenseKernelSpec((1, 256), 10, e, tuple(s), tuple(d), "int8",
                                                     3, "int8"), dense_tiling
    # a sequence (attention's Linear over 40 steps): weights staged once per feature tile
    yield "dense float rows", DenseKernelSpec((40, 96), 160), dense_tiling
    yield "lut int8", LutKernelSpec((1, 24, 12, 12), "int8", "int8"), lut_tiling
    yield "mul int8 per-channel", MulKernelSpec((1, 24, 12, 12), (1, 24, 1, 1), "int8", 3, -128,
                                                m, n, 5, "int8"), mul_tiling
    yield "lut 2-D", LutKernelSpec((1, 96), "int8", "int8"), lut_tiling
    yield "mul 2-D", MulKernelSpec((1, 64), (1, 64), "int8", 1, 2, m, n, 0, "int8"), mul_tiling
    yield "mul uint8", MulKernelSpec((1, 16, 10, 10), (1, 16, 10, 10), "uint8", 3, 128, m, n,
                                     5, "uint8"), mul_tiling


def _chain_specs():
    """PW -> DW -> PW chains: int8 with the residual Add, float stride 2 in HWC tiles."""
    e1, s1, d1 = _requant_epilogue(96)
    e2, s2, d2 = _requant_epilogue(96, 3)
    e3, s3, d3 = _requant_epilogue(16, 6)
    yield "chain int8 residual", ChainKernelSpec(
        (1, 16, 18, 18), ConvGeom(16, 96, 1), ConvGeom(96, 96, 3, 1, (1, 1, 1, 1)),
        ConvGeom(96, 16, 1), (e1, e2, e3), tuple(s1 + s2 + s3), tuple(d1 + d2 + d3), "int8",
        in_zp=3, mid_zps=(-128, -128),
        residual=AddKernelSpec((1, 16, 18, 18), "int8", -1, 3, 3 << 20, 5 << 20, 22, 2,
                               -128, 127)), None
    yield "chain float stride 2 HWC", ChainKernelSpec(
        (1, 8, 12, 12), ConvGeom(8, 24, 1), ConvGeom(24, 24, 5, 2, (2, 2, 2, 2)),
        ConvGeom(24, 16, 1), (Epilogue(), Epilogue(), Epilogue()),
        layouts=KernelLayouts(HWC, HWC, HWC)), None


SPECS = list(_specs())


@pytest.mark.parametrize("l1", [64000, 16000])
@pytest.mark.parametrize("name,spec,make", SPECS, ids=[s[0] for s in SPECS])
def test_ir_matches_plan(name, spec, make, l1):
    hw = GAP8.with_l1_budget(l1)
    if make is None:
        plan = plan_kernel(spec, hw)
        func = build_kernel(spec, plan)
    else:
        plan = choose_plan(spec, hw, name, make)
        func = build_kernel(spec, plan)
    assert plan.l1_bytes <= l1
    _assert_counts_are_plan(func, plan)
    # double buffering is in the IR: the input tile has two versions
    lowered = lower_for_inspection(func)
    inputs = [b for b, _ in allocations(lowered)
              if b.scope() == L1_SCOPE and (b.name.startswith("x") or b.name[:2] in ("a_", "b_"))]
    assert inputs
    for buf in inputs:  # two versions exactly where the plan declares two copies
        (declared,) = [b for b in plan.buffers if buf.name == f"{b.name}_{L1_SCOPE}"]
        assert (int(buf.shape[0]) == 2) == (declared.copies == 2), (buf.name, buf.shape)
    assert plan.double_buffered == any(b.copies == 2 for b in plan.buffers)
    # every buffer of the kernel is in L1 or a register
    assert {b.scope() for b, _ in allocations(lowered)} <= {L1_SCOPE, "local"}


def test_smaller_l1_means_more_tiles_same_result():
    spec = FusedKernelSpec("dw_pw", (1, 32, 24, 24), ConvGeom(32, 32, 3, 1, (1, 1, 1, 1)),
                           ConvGeom(32, 64, 1))
    big = plan_kernel(spec, GAP8)
    small = plan_kernel(spec, GAP8.with_l1_budget(16000))
    assert small.row_tiles * small.channel_tiles > big.row_tiles * big.channel_tiles
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype("float32")
            for s in [(1, 32, 24, 24), (32, 1, 3, 3), (64, 32, 1, 1)]]
    outs = []
    for plan in (big, small):
        f = tvm.compile(tvm.IRModule({"main": build_kernel(spec, plan).with_attr(
            "global_symbol", "main")}), target="llvm")
        out = tvm.runtime.tensor(np.zeros(spec.out_shape, "float32"))
        f["main"](*[tvm.runtime.tensor(a) for a in args], out)
        outs.append(out.numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)


def _staged_specs():
    """Wide-ish DW->PW blocks for the channel-staged variant (``dw_pw_staged_tiling``)."""
    bias = Epilogue((EpilogueOp("relax.add", (ACC, Ref("channel", 0))),
                     EpilogueOp("relax.clip", (Ref("val", 0),), (0.0, 6.0))))
    yield "float", FusedKernelSpec(
        "dw_pw", (1, 32, 12, 12), ConvGeom(32, 32, 3, 1, (1, 1, 1, 1)), ConvGeom(32, 64, 1),
        bias, Epilogue(), ((1, 32, 1, 1),))
    e1, s1, d1 = _requant_epilogue(64)
    e2, s2, d2 = _requant_epilogue(96, 3)
    yield "int8", FusedKernelSpec(
        "dw_pw", (1, 64, 10, 10), ConvGeom(64, 64, 3, 2, (0, 0, 1, 1)), ConvGeom(64, 96, 1),
        e1, e2, tuple(s1 + s2), "int8", channel_dtypes=tuple(d1 + d2), in_zp=1, mid_zp=-128)
    yield "int8 hardswish between", FusedKernelSpec(
        "dw_pw", (1, 64, 10, 10), ConvGeom(64, 64, 3, 2, (0, 0, 1, 1)), ConvGeom(64, 96, 1),
        e1, e2, tuple(s1 + s2), "int8", channel_dtypes=tuple(d1 + d2), in_zp=1, mid_zp=-113,
        mid_steps=HARDSWISH_STEPS, table_dtypes=("int8",))


STAGED = list(_staged_specs())


@pytest.mark.parametrize("double_buffering", [True, False])
@pytest.mark.parametrize("rows,channels,dw_channels", [(4, 16, 8), (2, 32, 16), (1, 8, 1)])
@pytest.mark.parametrize("name,spec", STAGED, ids=[s[0] for s in STAGED])
def test_staged_dw_pw_ir_matches_plan(name, spec, rows, channels, dw_channels,
                                      double_buffering):
    """The channel-staged DW->PW kernel: L1 peak and every copy's bytes and transfers read off
    the IR equal the plan's; the input tile (and the DW weight tile) is double-buffered along
    the DW channel loop when the plan says so."""
    hw = GAP8.replace(double_buffering=double_buffering)
    plan = dw_pw_staged_tiling(spec, hw, rows, channels, dw_channels)
    assert plan.double_buffered == double_buffering
    func = build_kernel(spec, plan)
    if spec.dtype == "int8":  # integer-only, like the other fused int8 kernels
        assert "float" not in func.script()
    assert sum(b.name.startswith("t") for b in plan.buffers) == len(spec.table_dtypes)
    _assert_counts_are_plan(func, plan)
    lowered = lower_for_inspection(func)
    staged = {b.name: b for b, _ in allocations(lowered) if b.scope() == L1_SCOPE}
    for name_ in ("x_pad_global.l1", "w_dw_global.l1"):
        buf = next(b for n, b in staged.items() if n.startswith(name_.split(".")[0]))
        assert (int(buf.shape[0]) == 2) == double_buffering, (buf.name, buf.shape)
    # the intermediate holds the whole row tile, all channels
    mid = next(b for n, b in staged.items() if n.startswith("dw_out"))
    assert [int(d) for d in mid.shape] == [rows, spec.out_shape[3], spec.in_shape[1]]


def test_staged_dw_pw_is_what_fits_a_wide_layer():
    """A 1024-channel float DW->PW at 4x4 (MobileNetV1 x1.0 @128's last block) fits 64 kB only
    channel-staged; its PW weights are re-fetched for every row tile in both variants."""
    spec = FusedKernelSpec("dw_pw", (1, 1024, 4, 4), ConvGeom(1024, 1024, 3, 1, (1, 1, 1, 1)),
                           ConvGeom(1024, 1024, 1))
    with pytest.raises(TilingError):
        choose_plan(spec, GAP8, "wide", dw_pw_tiling)
    plan = plan_kernel(spec, GAP8, "wide")
    assert plan.dw_channels and plan.l1_bytes <= GAP8.l1_budget
    w_pw = 1024 * 1024 * 4
    assert plan.l2_to_l1_wgt >= w_pw * (plan.row_tiles if plan.channel_tiles > 1 else 1)
    small = FusedKernelSpec("dw_pw", (1, 16, 8, 8), ConvGeom(16, 16, 3, 1, (1, 1, 1, 1)),
                            ConvGeom(16, 32, 1))
    for make in (lambda hw, r, ch: dw_pw_tiling(small, hw, r, ch),
                 lambda hw, r, ch: dw_pw_staged_tiling(small, hw, r, ch, 4)):
        one, many = make(GAP8, 4, 32), make(GAP8, 4, 8)
        assert many.l2_to_l1_wgt - one.l2_to_l1_wgt == 16 * 32 * 4 * (2 - 1)


def test_staged_dw_pw_matches_unstaged_numerically():
    spec = STAGED[0][1]
    rng = np.random.default_rng(1)
    args = [rng.standard_normal(s).astype("float32")
            for s in [spec.in_shape, (32, 1, 3, 3), (64, 32, 1, 1), (1, 32, 1, 1)]]
    outs = []
    for plan in (dw_pw_tiling(spec, GAP8, 12, 64), dw_pw_staged_tiling(spec, GAP8, 4, 16, 8)):
        f = tvm.compile(tvm.IRModule({"main": build_kernel(spec, plan).with_attr(
            "global_symbol", "main")}), target="llvm")
        out = tvm.runtime.tensor(np.zeros(spec.out_shape, "float32"))
        f["main"](*[tvm.runtime.tensor(a) for a in args], out)
        outs.append(out.numpy())
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("name,spec", [s[:2] for s in SPECS if s[1].__dict__.get("mid_steps")],
                         ids=[s[0] for s in SPECS if s[1].__dict__.get("mid_steps")])
def test_fused_table_is_staged_once_in_l1(name, spec):
    """The table of the ops between the convs is one 256-entry L1 buffer, copied in once per
    kernel (a weight copy at the root, not per tile), read by the intermediate's block; and the
    kernel stays integer-only."""
    plan = plan_kernel(spec, GAP8.with_l1_budget(16000))
    assert plan.row_tiles * plan.channel_tiles > 1  # a per-tile copy would be counted more
    (table,) = [b for b in plan.buffers if b.name == "t0"]
    assert (table.elements, table.role, table.at) == (256, "weight", "root")
    func = build_kernel(spec, plan)
    assert "float" not in func.script()
    lowered = lower_for_inspection(func)
    l1 = {b.name: b for b, _ in allocations(lowered) if b.scope() == L1_SCOPE}
    assert [int(d) for d in l1["t0_global.l1"].shape] == [256]
    copies = [blk for blk in sblocks(func) if blk.annotations.get(COPY_ANN) is not None
              and blk.reads[0].source.name == "t0"]
    assert len(copies) == 1 and str(copies[0].annotations[ROLE_ANN]) == "weight"
    (mid,) = [blk for blk in sblocks(func) if blk.annotations.get(ROLE_ANN) == "intermediate"]
    assert any(r.source.name == "t0_global.l1" for r in mid.reads)


def test_ops_between_the_convs_cost_their_table_and_compute():
    """The same tile with the HardSwish ops between the convs: 256 more L1 bytes (the table)
    and more modelled cycles (the table and the product on every intermediate value), for
    every fused tiling."""
    import dataclasses


    (with_ops,) = [s[1] for s in SPECS if s[0] == "dw_pw int8 hardswish between"]
    (pw_dw,) = [s[1] for s in SPECS if s[0] == "pw_dw int8 table between"]
    cases = [(with_ops, lambda sp: dw_pw_tiling(sp, GAP8, 4, 64)),
             (with_ops, lambda sp: dw_pw_staged_tiling(sp, GAP8, 4, 64, 16)),
             (pw_dw, lambda sp: pw_dw_tiling(sp, GAP8, 5, 24))]
    for spec, tiling in cases:
        plain = dataclasses.replace(spec, mid_steps=(), table_dtypes=())
        a, b = tiling(spec), tiling(plain)
        assert a.l1_bytes == b.l1_bytes + 256
        assert a.cycles > b.cycles


def _assert_counts_are_plan(func, plan):
    """L1 peak, bytes per direction and transfers read off the IR equal the plan's."""
    counts = kernel_counts(func)
    assert counts["l1_peak_bytes"] == plan.l1_bytes
    assert counts["traffic"] == {"l2_to_l1_act": plan.l2_to_l1_act,
                                 "l1_to_l2_act": plan.l1_to_l2_act,
                                 "l2_to_l1_wgt": plan.l2_to_l1_wgt,
                                 "dma_transfers": plan.dma_transfers,
                                 "l2_to_l1_transposed": plan.l2_to_l1_transposed}


def _assert_ir_is_plan(func, plan):
    _assert_counts_are_plan(func, plan)
    lowered = lower_for_inspection(func)
    inputs = [b for b, _ in allocations(lowered)
              if b.scope() == L1_SCOPE and b.name.startswith("x")]
    assert inputs and all((int(b.shape[0]) == 2) == plan.double_buffered for b in inputs)


def _column_specs():
    """Kernels tiled over columns too, with per-axis strides (the (2,1) / (1,2) DWs of
    recognizer backbones): (name, spec, tiling(hw, rows, channels, cols), tiles, build)."""
    bias = Epilogue((EpilogueOp("relax.add", (ACC, Ref("channel", 0))),))
    e, s, d = _requant_epilogue(16)
    yield ("pw float", ConvKernelSpec((1, 16, 4, 40), ConvGeom(16, 24, 1)),
           conv_tiling, (2, 8, 8), schedule_conv)
    yield ("conv float s2", ConvKernelSpec((1, 3, 12, 30), ConvGeom(3, 8, 3, 2, (1, 1, 1, 1))),
           conv_tiling, (3, 4, 5), schedule_conv)
    yield ("dw int8 (2,1)", ConvKernelSpec(
        (1, 16, 8, 24), ConvGeom(16, 16, 3, (2, 1), (1, 1, 1, 1)), groups=16, epilogue=e,
        channel_shapes=tuple(s), channel_dtypes=tuple(d), dtype="int8", in_zp=3),
        conv_tiling, (2, 8, 6), schedule_conv)
    yield ("dw_pw float (2,1)", FusedKernelSpec(
        "dw_pw", (1, 16, 8, 24), ConvGeom(16, 16, 3, (2, 1), (1, 1, 1, 1)), ConvGeom(16, 24, 1),
        bias, Epilogue(), ((1, 16, 1, 1),)), dw_pw_tiling, (2, 8, 6), build_kernel)
    e1, s1, d1 = _requant_epilogue(16)
    e2, s2, d2 = _requant_epilogue(24, 3)
    q = FusedKernelSpec(
        "dw_pw", (1, 16, 8, 24), ConvGeom(16, 16, 3, (1, 2), (1, 1, 1, 1)), ConvGeom(16, 24, 1),
        e1, e2, tuple(s1 + s2), "int8", channel_dtypes=tuple(d1 + d2), in_zp=1, mid_zp=-128)
    yield "dw_pw int8 (1,2)", q, dw_pw_tiling, (4, 24, 4), build_kernel
    yield ("dw_pw int8 (1,2) staged", q,
           lambda spec, hw, r, ch, cols: dw_pw_staged_tiling(spec, hw, r, ch, 4, cols),
           (2, 12, 3), build_kernel)
    e1, s1, d1 = _requant_epilogue(32)
    e2, s2, d2 = _requant_epilogue(32, 3)
    yield ("pw_dw int8 (2,1)", FusedKernelSpec(
        "pw_dw", (1, 8, 8, 20), ConvGeom(8, 32, 1), ConvGeom(32, 32, 3, (2, 1), (1, 1, 1, 1)),
        e1, e2, tuple(s1 + s2), "int8", channel_dtypes=tuple(d1 + d2), in_zp=5, mid_zp=-128),
        pw_dw_tiling, (2, 16, 5), build_kernel)


COLUMNS = list(_column_specs())


@pytest.mark.parametrize("double_buffering", [True, False])
@pytest.mark.parametrize("name,spec,tiling,tiles,build", COLUMNS, ids=[c[0] for c in COLUMNS])
def test_column_tiles_ir_matches_plan(name, spec, tiling, tiles, build, double_buffering):
    """Column tiles (input columns with their halo, per-axis strides): the L1 peak and every
    copy's bytes and transfers read off the IR equal the plan's, and the kernel computes what
    the whole-width kernel computes."""
    hw = GAP8.replace(double_buffering=double_buffering)
    plan = tiling(spec, hw, *tiles)
    assert plan.cols == tiles[2] and plan.col_tiles == spec.out_shape[3] // tiles[2] > 1
    assert plan.tile()["col_tiles"] == plan.col_tiles
    func = build(spec, plan)
    _assert_ir_is_plan(func, plan)
    whole = tiling(spec, hw, spec.out_shape[2], spec.out_shape[1], 0)
    assert whole.cols == 0 and "cols" not in whole.tile()
    _assert_same_outputs(spec, func, build(spec, whole))


def _assert_same_outputs(spec, func, other, exact=True):
    compute = {"dw_pw": dw_pw_compute, "pw_dw": pw_dw_compute}.get(spec.kind, conv_compute)
    rng = np.random.default_rng(3)
    args = [tvm.runtime.tensor(_random(rng, t)) for t in compute(spec)[:-1]]
    outs = []
    for f in (func, other):
        lib = tvm.compile(tvm.IRModule({"main": f.with_attr("global_symbol", "main")}),
                          target="llvm")
        out = tvm.runtime.tensor(np.zeros(spec.out_shape, spec.out_dtype))
        lib["main"](*args, out)
        outs.append(out.numpy())
    assert len(np.unique(outs[0])) > 10  # not a saturated constant
    if exact:
        np.testing.assert_array_equal(outs[0], outs[1])
    else:  # float partial sums are added in another order
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)


def _in_channel_specs():
    e, s, d = _requant_epilogue(8)
    yield "conv float", ConvKernelSpec((1, 16, 6, 10), ConvGeom(16, 8, 3, 1, (1, 1, 1, 1))), \
        (3, 4, 5, 4)
    yield "pw int8", ConvKernelSpec((1, 32, 4, 6), ConvGeom(32, 8, 1), epilogue=e,
                                    channel_shapes=tuple(s), channel_dtypes=tuple(d),
                                    dtype="int8", in_zp=3), (2, 8, 0, 8)
    yield "conv int8 (2,1)", ConvKernelSpec(
        (1, 12, 8, 6), ConvGeom(12, 8, 3, (2, 1), (1, 1, 1, 1)), epilogue=e,
        channel_shapes=tuple(s), channel_dtypes=tuple(d), dtype="int8", in_zp=-2), (2, 4, 3, 4)


IN_CHANNELS = list(_in_channel_specs())


@pytest.mark.parametrize("double_buffering", [True, False])
@pytest.mark.parametrize("name,spec,tiles", IN_CHANNELS, ids=[c[0] for c in IN_CHANNELS])
def test_input_channel_tiles_ir_matches_plan(name, spec, tiles, double_buffering):
    """Input-channel tiles with the partial sums in L1 (int32 / float32), the epilogue after
    the last: IR == plan, double-buffered along the input-channel loop, same outputs as one
    tile of all input channels."""
    hw = GAP8.replace(double_buffering=double_buffering)
    plan = conv_tiling(spec, hw, *tiles)
    assert plan.in_channels == tiles[3] and plan.tile()["in_channels"] == tiles[3]
    assert plan.pipelined == ("in_channels" if double_buffering else "")
    func = schedule_conv(spec, plan)
    _assert_ir_is_plan(func, plan)
    acc = [b for b, _ in allocations(lower_for_inspection(func)) if b.name.startswith("conv_acc")]
    assert [(b.scope(), str(b.dtype)) for b in acc] == [
        (L1_SCOPE, "float32" if spec.dtype == "float32" else "int32")]
    if spec.dtype == "int8":
        assert "float" not in func.script()
    whole = conv_tiling(spec, hw, spec.out_shape[2], spec.out_shape[1])
    _assert_same_outputs(spec, func, schedule_conv(spec, whole), spec.dtype != "float32")


def test_input_channels_tiled_only_when_nothing_else_fits():
    """A 3x3 float conv with 1024 input channels: one output channel's weights (36864 B) and
    the input rows of all channels cannot share 40 kB, so the tiler splits the input channels
    (and names them in the smallest tile when even that does not fit)."""
    spec = ConvKernelSpec((1, 1024, 4, 4), ConvGeom(1024, 8, 3, 1, (1, 1, 1, 1)))
    hw = GAP8.with_l1_budget(40000)
    plan = plan_conv(spec, hw, "deep")
    assert plan.in_channels and plan.l1_bytes <= 40000
    _assert_ir_is_plan(schedule_conv(spec, plan), plan)
    assert plan_conv(spec, GAP8.with_l1_budget(400000), "deep").in_channels == 0
    with pytest.raises(TilingError, match=r"1 row\(s\) x 1 column\(s\) x 1 channel\(s\) x 1 "
                                          r"input channel\(s\)"):
        plan_conv(spec, GAP8.with_l1_budget(50), "deep")


def _random(rng, tensor):
    shape, dtype = [int(v) for v in tensor.shape], str(tensor.dtype)
    if dtype == "float32":
        return rng.standard_normal(shape).astype(dtype)
    if dtype == "int32":  # requantization multipliers/shifts: keep them in range
        return rng.integers(1, 20, shape).astype(dtype)
    return rng.integers(-100, 100, shape).astype(dtype)


def test_wide_float_pw_tiles_columns_only_when_needed():
    """1x64x4x320 float PW: one 320-wide row of all 64 channels (81920 B) exceeds 64 kB, so the
    tiler splits the columns; a layer whose whole-width tile fits keeps it."""
    wide = ConvKernelSpec((1, 64, 4, 320), ConvGeom(64, 64, 1))
    plan = choose_plan(wide, GAP8, "wide", conv_tiling, tile_cols=True)
    assert plan.cols and plan.l1_bytes <= GAP8.l1_budget
    _assert_ir_is_plan(schedule_conv(wide, plan), plan)
    narrow = ConvKernelSpec((1, 64, 4, 40), ConvGeom(64, 64, 1))
    assert choose_plan(narrow, GAP8, "n", conv_tiling, tile_cols=True) == \
        choose_plan(narrow, GAP8, "n", conv_tiling)
