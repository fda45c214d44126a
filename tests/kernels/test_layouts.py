"""Every layout variant of every kernel family: built for the host, the result (stored in the
variant's output layout) equals the reference (float) or, bit for bit, the all-CHW kernel
(int8, itself checked against the integer reference by the model tests); the IR's copies are
the plan's (IR == plan), a transposing input copy is annotated and counted as such."""

import itertools
from dataclasses import replace

import numpy as np
import pytest
import tvm

from tvm_gap8.cost.ir import kernel_counts
from tvm_gap8.kernels import build_kernel, plan_kernel
from tvm_gap8.kernels.conv import ConvKernelSpec, uses_weight_rows, weight_rows
from tvm_gap8.kernels.epilogue import ACC, Epilogue, EpilogueOp, Ref, Requant
from tvm_gap8.kernels.geometry import ConvGeom
from tvm_gap8.kernels.layout import CHW, HWC, KernelLayouts, physical
from tvm_gap8.target import GAP8
from tvm_gap8.ir.tirwalk import sblocks
from tvm_gap8.ir.vocab import (DMA_TRANSFERS, L1_TO_L2_ACT, L2_TO_L1_ACT, L2_TO_L1_TRANSPOSED,
                               L2_TO_L1_WGT, TRANSPOSE_ANN)

BIAS_RELU6 = Epilogue((EpilogueOp("relax.add", (ACC, Ref("channel", 0))),
                       EpilogueOp("relax.clip", (Ref("val", 0),), (0.0, 6.0))))


def _requant(c):
    return (Epilogue(requant=Requant(-3, -128, 127, "int8", 0, 1, 2)), ((1, c, 1, 1),) * 3,
            ("int32",) * 3)


def to_layout(a, layout):
    return a if layout == CHW or a.ndim != 4 else np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def from_layout(a, layout):
    return a if layout == CHW or a.ndim != 4 else np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def run(spec, plan, args, in_count=1):
    """Build ``spec`` under ``plan`` and run it on logical (NCHW) ``args``: the first
    ``in_count`` are stored in the spec's source layout; the output is returned logical."""
    func = build_kernel(spec, plan).with_attr("global_symbol", "main")
    lib = tvm.compile(tvm.IRModule({"main": func}), target="llvm")
    lay = spec.layouts
    stored = [to_layout(a, lay.source) if i < in_count else a for i, a in enumerate(args)]
    out = tvm.runtime.tensor(np.zeros(physical(spec.out_shape, lay.out), spec.out_dtype))
    lib["main"](*[tvm.runtime.tensor(a) for a in stored], out)
    return from_layout(out.numpy(), lay.out)


def assert_ir_is_plan(func, plan) -> dict:
    """The kernel's L1 peak and every traffic figure read off its IR equal the plan's."""
    counts = kernel_counts(func)
    figures = plan.figures()
    assert counts["traffic"] == {k: figures[k] for k in (
        L2_TO_L1_ACT, L1_TO_L2_ACT, L2_TO_L1_WGT, DMA_TRANSFERS, L2_TO_L1_TRANSPOSED)}
    assert counts["l1_peak_bytes"] == plan.l1_bytes
    return counts


def assert_variant_equals_default(spec, lay, args):
    """``spec`` in layouts ``lay`` computes what ``spec`` in its default layouts computes
    (float within 1e-5, int8 bit for bit) and its IR is its plan. Returns (variant, plan,
    kernel)."""
    expected = run(spec, plan_kernel(spec, GAP8), args)
    variant = _variant(spec, lay)
    plan = plan_kernel(variant, GAP8)
    if isinstance(variant, ConvKernelSpec) and uses_weight_rows(variant, plan):
        # what lowering does (passes/lower.py: hwc_weights): (o, kh, kw*i padded) weights
        variant = replace(variant, weight_order="ohwi")
        args = [args[0], weight_rows(variant, args[1]), *args[2:]]
    got = run(variant, plan, args)
    if spec.dtype == "int8":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    func = build_kernel(variant, plan)
    assert_ir_is_plan(func, plan)
    return variant, plan, func


def conv_specs():
    """(name, spec, args) of a DW 3x3 s2, a PW and a standard 3x3 conv, float and int8."""
    rng = np.random.default_rng(0)

    def args(spec, integer):
        o, cg, k = spec.geom.out_channels, spec.in_shape[1] // spec.groups, spec.geom.kernel
        if integer:
            x = rng.integers(-128, 128, spec.in_shape).astype("int8")
            w = rng.integers(-128, 128, (o, cg, k, k)).astype("int8")
            chans = [rng.integers(-2000, 2000, (1, o, 1, 1)).astype("int32"),
                     np.full((1, o, 1, 1), 1 << 30, "int32"), np.full((1, o, 1, 1), 38, "int32")]
            return [x, w, *chans]
        return [rng.standard_normal(spec.in_shape).astype("float32"),
                rng.standard_normal((o, cg, k, k)).astype("float32"),
                rng.standard_normal((1, o, 1, 1)).astype("float32")]

    for name, shape, geom, groups in (
            ("dw", (1, 16, 11, 10), ConvGeom(16, 16, 3, (2, 1), (1, 1, 1, 1)), 16),
            ("pw", (1, 12, 7, 9), ConvGeom(12, 20, 1), 1),
            ("conv", (1, 3, 9, 9), ConvGeom(3, 8, 3, 2, (1, 1, 1, 1)), 1)):
        yield f"{name} float", ConvKernelSpec(shape, geom, groups, BIAS_RELU6, ((1, geom.out_channels, 1, 1),)), args
        e, s, d = _requant(geom.out_channels)
        yield f"{name} int8", ConvKernelSpec(shape, geom, groups, e, s, d, "int8", 3), args


CONV = list(conv_specs())
VARIANTS = [KernelLayouts(src, tile, out) for src, tile, out in itertools.product((CHW, HWC),
                                                                                 repeat=3)]


def _variant(spec, lay):
    from dataclasses import replace
    return replace(spec, layouts=lay)


@pytest.mark.parametrize("lay", VARIANTS, ids=[v.name() for v in VARIANTS])
@pytest.mark.parametrize("name,spec,make_args", CONV, ids=[c[0] for c in CONV])
def test_conv_variant_equals_reference(name, spec, make_args, lay):
    args = make_args(spec, spec.dtype == "int8")
    variant, plan, func = assert_variant_equals_default(spec, lay, args)
    counts = kernel_counts(func)
    transposing = [b for b in sblocks(func) if TRANSPOSE_ANN in b.annotations]
    assert bool(transposing) == lay.transposing
    assert (counts["traffic"][L2_TO_L1_TRANSPOSED] > 0) == lay.transposing
    _assert_l1_layouts(func, variant, plan)


def _assert_l1_layouts(func, spec, plan):
    """The L1 tiles are stored in the variant's layouts: the input tile's innermost axis is its
    channels for an HWC tile (its columns for CHW), the output tile's likewise."""
    from tvm_gap8.cost.ir import lower_for_inspection
    from tvm_gap8.ir.tirwalk import allocations
    from tvm_gap8.ir.vocab import L1_SCOPE
    bufs = {b.name: [int(d) for d in b.shape] for b, _ in allocations(lower_for_inspection(func))
            if b.scope() == L1_SCOPE}
    x = next(shape for name, shape in bufs.items() if name.startswith("x_pad"))
    out = next(shape for name, shape in bufs.items() if name.startswith("conv_out"))
    in_channels = plan.channels if spec.depthwise else spec.in_shape[1]
    if spec.layouts.tile == HWC:
        assert x[-1] == in_channels, x
    else:
        assert x[-3] == in_channels or in_channels == 1, x
    if spec.layouts.out == HWC:
        assert out[-1] == plan.channels, out
    else:
        assert out[-3] == plan.channels or plan.channels == 1, out


def fused_specs():
    """(name, spec, args) of a dw_pw (3x3 s2 with padding) and a pw_dw, float and int8 (the
    int8 dw_pw with a table between the convs, as HardSwish leaves one)."""
    from tvm_gap8.kernels.fused import FusedKernelSpec
    from tvm_gap8.kernels.lut import IntStep
    rng = np.random.default_rng(1)

    def float_args(spec, shapes):
        return [rng.standard_normal(s).astype("float32") for s in shapes]

    def int_args(spec, shapes):
        x, w1, w2 = (rng.integers(-128, 128, s).astype("int8") for s in shapes[:3])
        chans = []
        for c in (shapes[1][0], shapes[2][0]):
            chans += [rng.integers(-2000, 2000, (1, c, 1, 1)).astype("int32"),
                      np.full((1, c, 1, 1), 1 << 30, "int32"), np.full((1, c, 1, 1), 38, "int32")]
        tables = [rng.integers(-128, 128, 256).astype("int8")] if spec.table_dtypes else []
        return [x, w1, w2, *chans, *tables]

    c, o = 12, 16
    dw, pw = ConvGeom(c, c, 3, 2, (1, 1, 1, 1)), ConvGeom(c, o, 1)
    spec = FusedKernelSpec("dw_pw", (1, c, 9, 8), dw, pw, BIAS_RELU6, Epilogue(), ((1, c, 1, 1),))
    yield "dw_pw float", spec, lambda s: float_args(s, [(1, c, 9, 8), (c, 1, 3, 3), (o, c, 1, 1),
                                                        (1, c, 1, 1)])
    e1 = Epilogue(requant=Requant(-3, -128, 127, "int8", 0, 1, 2))
    e2 = Epilogue(requant=Requant(5, -128, 127, "int8", 3, 4, 5))
    chans = ((1, c, 1, 1),) * 3 + ((1, o, 1, 1),) * 3
    spec = FusedKernelSpec("dw_pw", (1, c, 9, 8), dw, pw, e1, e2, chans, "int8",
                           channel_dtypes=("int32",) * 6, in_zp=1, mid_zp=-7,
                           mid_steps=(IntStep("table", (0,), "int8", table=0),),
                           table_dtypes=("int8",))
    yield "dw_pw int8", spec, lambda s: int_args(s, [(1, c, 9, 8), (c, 1, 3, 3), (o, c, 1, 1)])
    hid = 20
    pw, dw = ConvGeom(c, hid, 1), ConvGeom(hid, hid, 3, 1, (1, 1, 1, 1))
    spec = FusedKernelSpec("pw_dw", (1, c, 7, 6), pw, dw, BIAS_RELU6, Epilogue(),
                           ((1, hid, 1, 1),))
    yield "pw_dw float", spec, lambda s: float_args(s, [(1, c, 7, 6), (hid, c, 1, 1),
                                                        (hid, 1, 3, 3), (1, hid, 1, 1)])
    e1 = Epilogue(requant=Requant(-3, -128, 127, "int8", 0, 1, 2))
    e2 = Epilogue(requant=Requant(5, -128, 127, "int8", 3, 4, 5))
    spec = FusedKernelSpec("pw_dw", (1, c, 7, 6), pw, dw, e1, e2, ((1, hid, 1, 1),) * 6, "int8",
                           channel_dtypes=("int32",) * 6, in_zp=1, mid_zp=-7)
    yield "pw_dw int8", spec, lambda s: int_args(s, [(1, c, 7, 6), (hid, c, 1, 1),
                                                     (hid, 1, 3, 3)])


FUSED = list(fused_specs())
FUSED_VARIANTS = [KernelLayouts(src, tile, out, mid)
                  for src, tile, out, mid in itertools.product((CHW, HWC), repeat=4)]


@pytest.mark.parametrize("lay", FUSED_VARIANTS, ids=[v.name() for v in FUSED_VARIANTS])
@pytest.mark.parametrize("name,spec,make_args", FUSED, ids=[c[0] for c in FUSED])
def test_fused_variant_equals_default(name, spec, make_args, lay):
    """Every (input, tile, intermediate, output) layout of dw_pw and pw_dw computes what the
    default layouts compute (checked against numpy / the integer reference elsewhere): float
    within 1e-5, int8 bit for bit; IR == plan; transposition annotated iff it happens."""
    _, _, func = assert_variant_equals_default(spec, lay, make_args(spec))
    assert bool([b for b in sblocks(func) if TRANSPOSE_ANN in b.annotations]) == lay.transposing


@pytest.mark.parametrize("mid", [CHW, HWC])
@pytest.mark.parametrize("tile", [CHW, HWC])
def test_staged_dw_pw_in_every_intermediate_layout(tile, mid):
    """The channel-staged DW->PW (DW channel tiles into the full-channel intermediate) in both
    intermediate and tile layouts: equal to the default kernel bit for bit (int8); IR == plan."""
    from tvm_gap8.kernels.dw_pw import dw_pw_staged_tiling
    name, spec, make_args = FUSED[1]  # dw_pw int8, a table between the convs
    args = make_args(spec)
    expected = run(spec, plan_kernel(spec, GAP8), args)
    variant = _variant(spec, KernelLayouts(HWC, tile, CHW, mid))
    plan = dw_pw_staged_tiling(variant, GAP8, 1, 8, 2)  # 2 channels a tile, 4 columns
    np.testing.assert_array_equal(run(variant, plan, args), expected)
    func = build_kernel(variant, plan)
    assert_ir_is_plan(func, plan)
    # inside its channel tile the DW runs channel by channel (its taps and requantization
    # values loaded once per channel: emitc/hoist.py), the intermediate HWC or CHW
    from tvm import s_tir
    from tvm_gap8.ir.tirwalk import walk
    from tvm_gap8.ir.vocab import TILE_ANN
    loops = next(lps for st, lps in walk(func.body) if isinstance(st, s_tir.SBlockRealize)
                 and st.block.name_hint == "dw_out")
    k = next(i for i, lp in enumerate(loops) if lp.annotations.get(TILE_ANN) == "dw_channels")
    assert int(loops[k + 1].extent) == plan.dw_channels, [int(lp.extent) for lp in loops]


@pytest.mark.parametrize("lay", [CHW, HWC])
def test_add_and_pool_in_both_layouts(lay):
    """Add (int8, two rescaled operands) and global average pooling (int8) with their tensors
    in HWC compute what they compute in CHW, bit for bit; IR == plan."""
    from tvm_gap8.kernels.eltwise import AddKernelSpec
    from tvm_gap8.kernels.pool import PoolKernelSpec
    rng = np.random.default_rng(2)
    add = AddKernelSpec((1, 24, 6, 5), "int8", 1, -2, 3 << 20, 5 << 20, 22, 0, -128, 127)
    pool = PoolKernelSpec((1, 40, 5, 6), "int8", 3, 1 << 30, 35, -1)
    for spec, n_in in ((add, 2), (pool, 1)):
        args = [rng.integers(-128, 128, spec.in_shape).astype("int8") for _ in range(n_in)]
        expected = run(spec, plan_kernel(spec, GAP8), args, n_in)
        variant = _variant(spec, KernelLayouts(lay, lay, lay))
        plan = plan_kernel(variant, GAP8)
        np.testing.assert_array_equal(run(variant, plan, args, n_in), expected)
        assert_ir_is_plan(build_kernel(variant, plan), plan)


@pytest.mark.parametrize("lay", [CHW, HWC])
def test_tables_and_products_in_both_layouts(lay):
    """A table lookup and a requantized product (per-channel and element-wise, as SE gates and
    HardSwish leave them) with every tensor in HWC compute what they compute in CHW; IR == plan."""
    from tvm_gap8.kernels.lut import LutKernelSpec, MulKernelSpec
    rng = np.random.default_rng(3)
    specs = [(LutKernelSpec((1, 12, 5, 7), "int8", "int8"), ["x", "table"]),
             (MulKernelSpec((1, 12, 5, 7), (1, 12, 1, 1), "int8", 3, -128, 1 << 30, 33, 5,
                            "int8"), ["a", "b"]),
             (MulKernelSpec((1, 12, 5, 7), (1, 12, 5, 7), "int8", 1, 2, 1 << 30, 34, 0,
                            "int8"), ["a", "b"])]
    for spec, names in specs:
        shapes = [spec.in_shape, (256,) if names[1] == "table" else spec.b_shape]
        args = [rng.integers(-128, 128, s).astype("int8") for s in shapes]
        expected = run(spec, plan_kernel(spec, GAP8), args, 1)
        variant = _variant(spec, KernelLayouts(lay, lay, lay))
        plan = plan_kernel(variant, GAP8)
        stored = [args[0], to_layout(args[1], lay) if args[1].ndim == 4 else args[1]]
        got = run(variant, plan, stored, 1)
        np.testing.assert_array_equal(got, expected)
        assert_ir_is_plan(build_kernel(variant, plan), plan)


def test_channel_tiled_stem_keeps_its_zero_padded_weight_rows():
    """An HWC stem tiled over output channels stages its (o, kh, kw*C padded) weights whole at
    the root: a per-tile copy would drop the rows' zero padding (plan != IR, and an unaligned
    micro-kernel). Bit for bit the untiled kernel's result, its IR the plan's."""
    from tvm_gap8.kernels.conv import conv_tiling, weight_row_bytes
    e, s_, d = _requant(16)
    spec = ConvKernelSpec((1, 3, 12, 12), ConvGeom(3, 16, 3, 2, (1, 1, 1, 1)), 1, e, s_, d,
                          "int8", 3, layouts=KernelLayouts(CHW, HWC, CHW))
    rng = np.random.default_rng(1)
    args = [rng.integers(-128, 128, spec.in_shape).astype("int8"),
            rng.integers(-128, 128, (16, 3, 3, 3)).astype("int8"),
            rng.integers(-2000, 2000, (1, 16, 1, 1)).astype("int32"),
            np.full((1, 16, 1, 1), 1 << 30, "int32"), np.full((1, 16, 1, 1), 38, "int32")]
    expected = run(replace(spec, layouts=KernelLayouts()), plan_kernel(
        replace(spec, layouts=KernelLayouts()), GAP8), args)
    plan = conv_tiling(spec, GAP8, 6, 8)  # two channel tiles of 8
    assert plan.channel_tiles == 2 and uses_weight_rows(spec, plan)
    (w,) = [b for b in plan.buffers if b.name == "w"]
    assert w.elements == 16 * 3 * weight_row_bytes(spec) and w.at == "root"
    rows = replace(spec, weight_order="ohwi")
    rows_args = [args[0], weight_rows(rows, args[1]), *args[2:]]
    np.testing.assert_array_equal(run(rows, plan, rows_args), expected)
    assert_ir_is_plan(build_kernel(rows, plan), plan)
