"""One convolution (standard, depthwise or pointwise) with its epilogue, as one tiled kernel.

Used for every conv the fusion passes leave alone (stems, heads, expansion PWs, refused DWs):
tiled over output rows and output channels; per tile the input rows it needs (halo included;
for a depthwise conv only the tile's channels) are copied L2->L1, weights per channel tile (or
once, when one tile holds all channels), and the output tile is copied L1->L2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import tvm
from tvm import relax, s_tir, te

from ..cost import cycles
from ..ir.vocab import INPUT, INTERMEDIATE, OUTPUT, WEIGHT
from . import layout, patterns
from .epilogue import Epilogue
from .family import KernelFamily
from .geometry import ConvGeom, conv_geom, conv_kind
from .layout import KernelLayouts
from .requant import DEFAULT_REQUANT
from .spec import TypedOperands
from .stages import read_composite, spec_fields
from .staging import (Operand, finish_staged, padded_input, scalar_accumulator, stage_buffers)
from .tiling import (ROOT, L1Buffer, LayerCost, choose_plan, dtype_bytes, halo_rows, input_copies,
                     output_bytes, padded, param_buffers, plan_from, span)


@dataclass(frozen=True)
class ConvKernelSpec(TypedOperands):
    in_shape: tuple  # (1, C, H, W)
    geom: ConvGeom
    groups: int = 1
    epilogue: Epilogue = Epilogue()
    channel_shapes: tuple = ()
    channel_dtypes: tuple = ()
    dtype: str = "float32"
    in_zp: int = 0  # the padding value; the MACs read raw integers (the bias holds -zp sum(w))
    w_dtype: str = ""
    kind: str = "conv"  # conv | dw | pw (for reports)
    layouts: KernelLayouts = KernelLayouts()
    # the weight tensor's order: "oihw" (ONNX), or "ohwi" (``hwc_weights``: an ungrouped kxk
    # conv over an HWC tile, each kernel row's k x C taps contiguous in both operands)
    weight_order: str = "oihw"

    @property
    def epilogues(self) -> tuple:
        return (self.epilogue,)

    @property
    def out_dtype(self) -> str:
        return self.epilogue.out_dtype or self.dtype

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_shape[1]

    @property
    def out_shape(self) -> tuple:
        _, _, h, w = self.in_shape
        oh, ow = self.geom.out_hw(h, w)
        return (1, self.geom.out_channels, oh, ow)

    def macs(self) -> int:
        cg = self.in_shape[1] // self.groups
        return math.prod(self.out_shape) * cg * self.geom.kernel ** 2


def conv_compute(spec: ConvKernelSpec):
    _, c, h, w = spec.in_shape
    g = spec.geom
    k, (sh, sw) = g.kernel, g.stride
    _, o, oh, ow = spec.out_shape
    cg, og = c // spec.groups, o // spec.groups
    # the MACs read the raw integers: the bias holds -in_zp * sum(w) (``requantization``)
    xpad, xin, wop = Operand(spec.dtype, spec.in_zp), Operand(spec.dtype), \
        Operand(spec.weight_dtype)
    lay = spec.layouts
    x = layout.placeholder(spec.in_shape, lay.source, spec.dtype, "x")
    ohwi = spec.weight_order == "ohwi"
    row = weight_row_bytes(spec)
    wt = te.placeholder((o, k, row) if ohwi else (o, cg, k, k), spec.weight_dtype, name="w")
    chans = [te.placeholder(sh, spec.channel_dtype(i), name=f"p{i}")
             for i, sh in enumerate(spec.channel_shapes)]
    rc = te.reduce_axis((0, cg), name="rc")
    rk = te.reduce_axis((0, k), name="rk")
    rl = te.reduce_axis((0, k), name="rl")
    xp = padded_input(x, xpad, g.padding, lay)
    acc = layout.stage(
        (1, o, oh, ow),
        lambda n, oc, i, j: te.sum(
            xin.load(layout.element(xp, lay.tile, 0, (oc // og) * cg + rc, i * sh + rk,
                                    j * sw + rl))
            * wop.load(wt[oc, rk, rl * cg + rc] if ohwi else wt[oc, rc, rk, rl]),
            axis=[rk, rl, rc] if ohwi else [rc, rk, rl]),
        lay.out, "conv_acc")
    y = layout.stage((1, o, oh, ow),
                     lambda n, oc, i, j: spec.epilogue.apply(
                         layout.element(acc, lay.out, n, oc, i, j), oc, chans),
                     lay.out, "conv_out")
    return [x, wt, *chans, y]


def conv_tiling(spec: ConvKernelSpec, hw, rows: int, channels: int, cols: int = 0,
                in_channels: int = 0):
    """Rows x [columns x] output channels per tile (``cols``: 0, every tile spans the whole
    width). A depthwise tile reads only its own input channels (its input, weights and
    parameters staged per channel tile, the pipelined loop); any other conv reads all input
    channels once per pixel tile (rows, or columns within rows: the pipelined loop), weights
    per channel tile when there is more than one. Inputs with their halo on both axes.
    ``in_channels``: input-channel tiles too (``conv_ic_tiling``)."""
    if in_channels:
        return conv_ic_tiling(spec, hw, rows, channels, cols, in_channels)
    _, c, h, w = spec.in_shape
    _, o, oh, ow = spec.out_shape
    k, (sh, sw) = spec.geom.kernel, spec.geom.stride
    qt = math.ceil(ow / cols) if cols else 1
    cols = cols or ow
    rt, ct = math.ceil(oh / rows), math.ceil(o / channels)
    dw = spec.depthwise
    pixel = "cols" if qt > 1 else "rows"
    pipelined = "channels" if dw else pixel
    db = input_copies(hw, ct if dw else (qt if qt > 1 else rt))
    tile_at, tile_db = ("channels", db if dw else 1) if ct > 1 else (ROOT, 1)
    # zero-padded weight rows (``hwc_weights``) are staged whole, once: a channel tile's copy
    # would hold only the taps its compute reads (TVM compacts the region), rows of kw x C
    # bytes that ``gap8_rows4_i8`` then reads unaligned, with a masked tail
    w_at, w_db, w_channels = (ROOT, 1, o) if hwc_rows(spec) else (tile_at, tile_db, channels)
    hp, wp = padded((h, w), spec.geom.padding, ow, sw, k)
    cg = c // spec.groups
    t, l = spec.geom.padding[:2]
    bufs = [
        L1Buffer("conv_out", OUTPUT, channels * rows * cols, spec.out_dtype,
                 db if dw or ct == 1 else 1, "channels" if dw or ct > 1 else pixel,
                 moved=output_bytes(spec)),
        L1Buffer("x_pad", INPUT, (channels if dw else c) * halo_rows(rows, sh, k, hp)
                 * halo_rows(cols, sw, k, wp), spec.dtype, db, pipelined,
                 moved=c * dtype_bytes(spec.dtype) * span(oh, rows, h, sh, k, t)
                 * (span(ow, cols, w, sw, k, l) if qt > 1 else w),
                 transposing=spec.layouts.transposing, planes=channels if dw else c),
        L1Buffer("w", WEIGHT, w_channels * k * (weight_row_bytes(spec) if hwc_rows(spec)
                                                else cg * k), spec.weight_dtype, w_db, w_at),
        *param_buffers(spec, channels, o, tile_at,
                       set(range(len(spec.channel_shapes))) if ct > 1 else set(), tile_db)]
    lay = spec.layouts
    compute = rt * qt * ct * cycles.conv(channels if dw else c, channels, rows, cols, k,
                                         channels if dw else spec.groups, lay.tile, lay.out,
                                         sh, hw.compute)
    cost = LayerCost(hw, compute)
    return plan_from(spec.kind, rows, channels, (("rows", rt), ("cols", qt), ("channels", ct)),
                     bufs, spec.macs(), cost, pipelined if db == 2 else "",
                     cols=cols if qt > 1 else 0)


def conv_ic_tiling(spec: ConvKernelSpec, hw, rows: int, channels: int, cols: int,
                   in_channels: int):
    """An ungrouped conv / PW tiled over input channels too, for layers whose input and
    weights per output channel do not fit whole: per pixel x output-channel tile, the partial
    sums (int32, float32 for float) live in L1; per input-channel tile (the pipelined loop)
    those channels' input rows x columns with halo and weights are copied in and accumulated;
    the epilogue runs after the last input-channel tile into the (single-buffered) output
    tile. The input is re-fetched for every output-channel tile."""
    _, c, h, w = spec.in_shape
    _, o, oh, ow = spec.out_shape
    k, (sh, sw) = spec.geom.kernel, spec.geom.stride
    qt = math.ceil(ow / cols) if cols else 1
    cols = cols or ow
    rt, ct, it = math.ceil(oh / rows), math.ceil(o / channels), math.ceil(c / in_channels)
    db = input_copies(hw, it)
    hp, wp = padded((h, w), spec.geom.padding, ow, sw, k)
    t, l = spec.geom.padding[:2]
    tile_at = "channels" if ct > 1 else ROOT
    bufs = [
        L1Buffer("conv_out", OUTPUT, channels * rows * cols, spec.out_dtype, 1, "channels",
                 moved=output_bytes(spec)),
        L1Buffer("conv_acc", INTERMEDIATE, channels * rows * cols,
                 Operand(spec.dtype).acc_dtype(), 1, "channels"),
        L1Buffer("x_pad", INPUT, in_channels * halo_rows(rows, sh, k, hp)
                 * halo_rows(cols, sw, k, wp), spec.dtype, db, "in_channels",
                 moved=ct * c * dtype_bytes(spec.dtype) * span(oh, rows, h, sh, k, t)
                 * (span(ow, cols, w, sw, k, l) if qt > 1 else w),
                 transposing=spec.layouts.transposing, planes=in_channels),
        L1Buffer("w", WEIGHT, channels * in_channels * k * k, spec.weight_dtype, db,
                 "in_channels"),
        *param_buffers(spec, channels, o, tile_at,
                       set(range(len(spec.channel_shapes))) if ct > 1 else set())]
    # the partial sums' read-modify-write per extra input-channel tile: OUR ASSUMPTION, costed
    # as an element-wise pass over the tile (``cycles.eltwise``, itself our assumption)
    lay = spec.layouts
    compute = rt * qt * ct * (it * cycles.conv(in_channels, channels, rows, cols, k, 1,
                                               lay.tile, lay.out, sh, hw.compute)
                              + (it - 1) * cycles.eltwise(hw, channels * rows * cols))
    cost = LayerCost(hw, compute)

    loops = (("rows", rt), ("cols", qt), ("channels", ct), ("in_channels", it))
    return plan_from(spec.kind, rows, channels, loops, bufs, spec.macs(), cost,
                     "in_channels" if db == 2 else "", cols=cols if qt > 1 else 0,
                     in_channels=in_channels)


#: output channels a 1x1 reduction computes per pass over a pixel's input channels (register
#: blocking: each activation word loaded feeds this many ``pv.sdotsp.b``, ``gap8_dot4_i8``)
CHANNEL_BLOCK = 4
#: and this many adjacent pixels of a row (each weight word loaded feeds this many)
PIXEL_BLOCK = 2
#: ... when the reduction is at least this long (shorter, the 4 x 2 call's fixed costs lose
#: to 4 x 1: MobileNetV1 x1.0's 32-channel PW on GVSOC, 4.93 vs 5.58 MAC/cycle)
PIXEL_BLOCK_MIN_REDUCTION = 64


def tile_pixels(sch, block, plan, out_layout: str = layout.CHW, channel_block: int = 1,
                reduction: int = 0, order: str = ""):
    """Split ``block``'s (n, channels, rows, columns) loops (stored in ``out_layout``) into
    the plan's tiles: row tile { [column tile] { channel tile { the tile's elements in storage
    order } } }. Returns the tile loops by label and the loop to compute one output's (or, with
    ``channel_block`` > 1 dividing the channel tile, one pixel's ``channel_block`` consecutive
    channels', times ``PIXEL_BLOCK`` adjacent pixels when the row splits evenly and the
    ``reduction`` is long enough) accumulators at: the innermost loop, or the one above the
    block loops. ``order`` (default ``out_layout``) is the layout whose storage order the
    tile's element loops follow."""
    order = order or out_layout
    _, o, i, j = layout.logical_loops(sch.get_loops(block), out_layout)
    it, ii = sch.split(i, [None, plan.rows])
    ot, oi = sch.split(o, [None, plan.channels])
    tiles = {"rows": it}
    if plan.cols:
        tiles["cols"], j = sch.split(j, [None, plan.cols])
    tiles["channels"] = ot
    if channel_block > 1 and plan.channels % channel_block == 0:
        oo, ob = sch.split(oi, [None, channel_block])
        if int(sch.get(j).extent) % PIXEL_BLOCK == 0 and \
                reduction >= PIXEL_BLOCK_MIN_REDUCTION:  # and two adjacent pixels (4x2)
            jo, jb = sch.split(j, [None, PIXEL_BLOCK])
            inner = (oo, ii, jo, ob, jb) if order == layout.CHW else (ii, jo, oo, ob, jb)
            sch.reorder(*tiles.values(), *inner)
            return tiles, inner[-3]
        inner = (oo, ii, j, ob) if order == layout.CHW else (ii, j, oo, ob)
        sch.reorder(*tiles.values(), *inner)
        return tiles, inner[-2]
    inner = (oi, ii, j) if order == layout.CHW else (ii, j, oi)
    sch.reorder(*tiles.values(), *inner)
    return tiles, inner[-1]


def schedule_conv(spec: ConvKernelSpec, plan):
    sch = s_tir.Schedule(te.create_prim_func(conv_compute(spec)))
    pointwise = spec.geom.kernel == 1 and spec.groups == 1 and not plan.in_channels
    # a 1x1 reduction, or a kxk one row by row over an HWC tile (``hwc_weights``):
    # CHANNEL_BLOCK output channels per pass (gap8_dot4[x2]_i8 / gap8_rows4_i8: each
    # activation word loaded feeds that many pv.sdotsp.b)
    rows = spec.weight_order == "ohwi"
    # a depthwise conv over a CHW tile: channel by channel whatever the output layout (its
    # taps and requantization values loaded once per channel: emitc/hoist.py)
    order = layout.CHW if spec.depthwise and spec.layouts.tile == layout.CHW else ""
    loops, j = tile_pixels(sch, sch.get_sblock("conv_out"), plan, spec.layouts.out,
                           CHANNEL_BLOCK if pointwise or rows else 1,
                           spec.in_shape[1] if pointwise else 0, order)
    if not plan.in_channels:
        scalar_accumulator(sch, sch.get_sblock("conv_acc"), j)
        return finish_staged(sch, plan, loops)
    # partial sums in L1 over the output tile; the input-channel tile loop outermost in it
    stage_buffers(sch, plan, loops, (OUTPUT, INTERMEDIATE))
    acc_loops = list(sch.get_loops(sch.get_sblock("conv_acc")))
    # below the output-channel tile: the tile's pixel loops, then rc, rk, rl (compute_at
    # drops unit loops: rk, rl of a 1x1 kernel; rc has more than one tile, so it stays)
    first = [sch.get(lp).same_as(sch.get(loops["channels"])) for lp in acc_loops].index(True)
    rc = len(acc_loops) - (3 if spec.geom.kernel > 1 else 1)
    rco, _ = sch.split(acc_loops[rc], [None, plan.in_channels])
    pixels = acc_loops[first + 1:rc]
    if pixels:
        sch.reorder(rco, *pixels)
    loops["in_channels"] = rco
    return finish_staged(sch, plan, loops, (INPUT, WEIGHT))


#: an HWC kxk conv's weight rows (kw x C taps) are padded with zeros to a multiple of this many
#: bytes: every row starts word-aligned (``gap8_rows4_i8`` loads weights as aligned words)
WEIGHT_ROW_ALIGN = 4


def hwc_rows(spec: ConvKernelSpec) -> bool:
    """An ungrouped integer kxk conv (k > 1) over an HWC tile: reduced kernel row by kernel row
    (kw x C contiguous taps), its weights reordered by ``hwc_weights`` (unless it needs
    input-channel tiles)."""
    return (spec.groups == 1 and spec.geom.kernel > 1 and spec.layouts.tile == layout.HWC
            and not spec.dtype.startswith("float"))


def weight_row_bytes(spec: ConvKernelSpec) -> int:
    """Bytes per kernel row of (o, kh, kw * C) weights: kw * C rounded up to
    ``WEIGHT_ROW_ALIGN``."""
    taps = spec.geom.kernel * (spec.in_shape[1] // spec.groups)
    return -(-taps // WEIGHT_ROW_ALIGN) * WEIGHT_ROW_ALIGN


def hwc_weights(spec: ConvKernelSpec, plan, tensors):
    """An ``hwc_rows`` conv without input-channel tiles (the stem): its weights reordered to
    (o, kh, kw * i), each row zero-padded to ``weight_row_bytes``, the reduction to (kh, kw,
    i), so each kernel row's k x C taps are contiguous in the tile and in the weights (per pixel
    one ``gap8_rows4_i8`` call for 4 output channels: emitc/intrinsics.py). Integer convs only
    (a float conv keeps its summation order). Returns (spec, tensors), unchanged for any other
    conv."""
    if not (uses_weight_rows(spec, plan) and isinstance(tensors[1], tvm.ir.expr.GenericConst)):
        return spec, tensors
    rows = weight_rows(spec, tensors[1].value.numpy())
    return replace(spec, weight_order="ohwi"), [tensors[0], relax.const(rows), *tensors[2:]]


def uses_weight_rows(spec: ConvKernelSpec, plan) -> bool:
    """``hwc_weights`` reorders this conv's (oihw) weights under ``plan``."""
    return hwc_rows(spec) and not plan.in_channels and spec.weight_order == "oihw"


def weight_rows(spec: ConvKernelSpec, w: np.ndarray) -> np.ndarray:
    """(o, i, kh, kw) weights -> (o, kh, ``weight_row_bytes``): each kernel row's kw x i taps
    in (kw, i) order, then zeros."""
    w = w.transpose(0, 2, 3, 1)
    o, k = w.shape[:2]
    rows = np.zeros((o, k, weight_row_bytes(spec)), w.dtype)
    rows[:, :, :w.shape[2] * w.shape[3]] = w.reshape(o, k, -1)
    return rows


def read_conv(func, args, requant: str = DEFAULT_REQUANT):
    """A ``gap8.conv`` composite -> (ConvKernelSpec, [x, w, per-channel tensors]), an integer
    conv requantized by mode ``requant``."""
    kernel = read_composite(func, args, requant)
    (stage,) = kernel.stages
    geom = conv_geom(stage.conv)
    x_shape = tuple(int(v) for v in kernel.x.ty.shape.values)
    sub = conv_kind(stage.groups, x_shape[1], (geom.kernel, geom.kernel))
    spec = ConvKernelSpec(in_shape=x_shape, geom=geom, groups=stage.groups,
                          epilogue=kernel.epilogues[0], kind=sub, **spec_fields(kernel))
    return spec, [kernel.x, relax.const(stage.weight)] + kernel.channel_tensors


def plan_conv(spec: ConvKernelSpec, hw, layer: str = "?"):
    """Rows x output channels; columns when no whole-width tile fits; input channels (an
    ungrouped conv / PW) when still none fits."""
    return choose_plan(spec, hw, layer, conv_tiling, tile_cols=True,
                       tile_in=spec.in_shape[1] if spec.groups == 1 else 0)


def _problem(ctx):
    conv = ctx.annotated_expr["conv"]
    return (patterns.dtype_problem(conv) or patterns.conv_problem(conv)
            or patterns.escape_problem(ctx)
            or patterns.epilogue_problem(ctx.matched_bindings.values()))


CONV = KernelFamily(layout_rule="conv", 
    kind="conv", kernel_kinds=("conv", "dw", "pw"),
    patterns=(patterns.q_conv_pattern, patterns.conv_pattern), layer_keys=("conv",),
    read=read_conv, plan=plan_conv,
    schedule=schedule_conv, problem=_problem)
