"""Fused depthwise-separable kernels as one scheduled TIR PrimFunc each.

``dw_pw``: depthwise kxk (+epilogue) -> pointwise 1x1 (+epilogue), tiled over output rows (the
paper's ``dw_pw_CHW_CHW_HWC_rows``): per row tile, the input rows it needs (halo included) are
copied L2->L1, the DW writes an HWC intermediate tile that lives only in L1, the PW reduces it
over channels into an L1 output tile, which is copied L1->L2.

``pw_dw``: pointwise (+epilogue) -> depthwise (+epilogue), tiled over output rows and channels
(the paper's ``pw_dw_*_rows`` / ``*_channels`` variants): per tile, the PW computes the channels
and input rows (halo included) the DW tile needs into a CHW intermediate in L1.

Both are built with TE and scheduled with ``tvm.s_tir``: every L2<->L1 copy is a ``cache_read`` /
``cache_write`` stage in the L1 scope, annotated ``gap8.copy`` with its direction so the IR
inspection (``tvm_gap8.cost.ir``) and the tests can find it; accumulators are scalars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tvm import relax, s_tir, te, tirx

from ..cost import cycles
from ..errors import TilingError, UnsupportedError
from ..vocab import INPUT, INTERMEDIATE, OUTPUT, WEIGHT
from . import patterns
from .conv import ConvKernelSpec, tile_pixels
from .epilogue import Epilogue
from .family import KernelFamily
from .geometry import ConvGeom, conv_geom
from .lut import apply_steps
from .spec import TypedOperands
from .stages import read_composite, spec_fields
from .staging import (Operand, finish_staged, inside, padded_input, scalar_accumulator,
                      stage_buffers)
from .tiling import (ROOT, L1Buffer, candidates, choose_plan, dtype_bytes, halo_rows, input_copies,
                     output_bytes, padded, param_buffers, plan_from, search, span)


@dataclass(frozen=True)
class FusedKernelSpec(TypedOperands):
    """Everything needed to build one fused kernel; produced by the lowering pass."""

    kind: str  # "dw_pw" | "pw_dw"
    in_shape: tuple  # (1, C, H, W)
    first: ConvGeom
    second: ConvGeom
    first_epilogue: Epilogue = Epilogue()
    second_epilogue: Epilogue = Epilogue()
    channel_shapes: tuple = ()  # shapes of the per-channel tensors the epilogues use
    dtype: str = "float32"  # element type of the input (and, float kernels, of everything)
    layouts: dict = field(default_factory=dict, compare=False, hash=False)
    channel_dtypes: tuple = ()  # element types of the per-channel tensors (default: dtype)
    in_zp: int = 0  # integer kernels: zero point of the input
    mid_zp: int = 0  # zero point of the intermediate (requantized output of the first conv)
    w_dtype: str = ""  # weights' element type (default: dtype)
    # integer kernels: the ops the quantizer left between the convs (lut.IntStep), applied to
    # the 8-bit intermediate in L1; their 256-entry tables are kernel inputs t0, t1, ...
    mid_steps: tuple = ()
    table_dtypes: tuple = ()

    @property
    def out_dtype(self) -> str:
        return self.second_epilogue.out_dtype or self.dtype

    @property
    def epilogues(self) -> tuple:
        return (self.first_epilogue, self.second_epilogue)

    @property
    def mid_dtype(self) -> str:
        """The intermediate's element type (after the ops between the convs)."""
        if self.mid_steps:
            return self.mid_steps[-1].out_dtype
        return self.first_epilogue.out_dtype or self.dtype

    def describe_epilogues(self) -> list:
        """The first conv's epilogue names the integer ops applied after it (``+lut+mul``)."""
        first, second = super().describe_epilogues()
        return ["+".join([first, *(st.describe() for st in self.mid_steps)]), second]

    @property
    def dw(self) -> ConvGeom:
        return self.first if self.kind == "dw_pw" else self.second

    @property
    def out_shape(self) -> tuple:
        _, _, h, w = self.in_shape
        oh, ow = self.dw.out_hw(h, w)
        return (1, self.second.out_channels, oh, ow)

    def split(self) -> tuple:
        """The two conv kernels this pair is without fusion: same geometry, epilogues and
        per-channel tensors, the intermediate in L2 (what the fusion policy compares with)."""
        _, c, h, w = self.in_shape
        mid_hw = self.first.out_hw(h, w)
        ins = [(self.in_shape, self.dtype, self.in_zp),
               ((1, self.first.out_channels, *mid_hw), self.mid_dtype, self.mid_zp)]
        convs = []
        for geom, epilogue, (shape, dtype, zp) in zip((self.first, self.second),
                                                      self.epilogues, ins):
            used = sorted(epilogue.channels())
            groups = shape[1] if geom is self.dw else 1
            convs.append(ConvKernelSpec(
                shape, geom, groups, epilogue.reindexed({k: i for i, k in enumerate(used)}),
                tuple(self.channel_shapes[k] for k in used),
                tuple(self.channel_dtype(k) for k in used), dtype, zp, self.w_dtype,
                kind="dw" if geom is self.dw else "pw"))
        return tuple(convs)

    def macs(self) -> int:
        _, c, h, w = self.in_shape
        _, o, oh, ow = self.out_shape
        if self.kind == "dw_pw":
            k = self.first.kernel
            return c * oh * ow * k * k + o * c * oh * ow
        k = self.second.kernel
        hid = self.first.out_channels
        return hid * c * h * w + hid * oh * ow * k * k


LAYOUTS = {
    # input, intermediate, output: the intermediate layout is the one its consumer reads best:
    # the PW reduces over channels per pixel (HWC), the DW slides over a channel's plane (CHW).
    "dw_pw": {INPUT: "CHW", INTERMEDIATE: "HWC", OUTPUT: "CHW"},
    "pw_dw": {INPUT: "CHW", INTERMEDIATE: "CHW", OUTPUT: "CHW"},
    "conv": {"input": "CHW", "output": "CHW"},
}


def _params(spec):
    return [te.placeholder(shape, spec.channel_dtype(i), name=f"p{i}")
            for i, shape in enumerate(spec.channel_shapes)]


def _tables(spec):
    return [te.placeholder((256,), dtype, name=f"t{i}")
            for i, dtype in enumerate(spec.table_dtypes)]


def _first_out(spec, acc, channel_axis: int, chans, name: str):
    """The first conv's output per element: its epilogue applied to the accumulator ``acc``.
    With integer ops between the convs, the requantized value is a stage of its own (``name``,
    one register per element, ``_stage_first_out``): the ops read it twice (``x *
    table(x)``), and inlining the requantization twice would grow the expression beyond what
    TVM's simplifier handles quickly."""
    def value(*idx):
        return spec.first_epilogue.apply(acc[idx], idx[channel_axis], chans)

    if not spec.mid_steps:
        return value
    req = te.compute(acc.shape, value, name=name)
    return lambda *idx: req[idx]


def _stage_first_out(sch, spec, name: str, mid):
    """The first conv's requantized value (``_first_out``) in a register, per element of the
    intermediate; its accumulator then goes at the same loop."""
    if spec.mid_steps:
        scalar_accumulator(sch, sch.get_sblock(name), sch.get_loops(mid)[-1])


def _steps_cycles(spec, hw, elements: int) -> int:
    """The ops between the convs on ``elements`` intermediate values, costed as the standalone
    table / multiply kernels' compute is (``cycles.eltwise``)."""
    return len(spec.mid_steps) * cycles.eltwise(hw, elements)


def table_buffers(spec):
    """The tables of the ops between the convs: whole, once per kernel, in L1."""
    return tuple(L1Buffer(f"t{i}", WEIGHT, 256, dtype) for i, dtype in enumerate(spec.table_dtypes))


def dw_pw_compute(spec: FusedKernelSpec):
    """TE graph of DW -> epilogue -> PW -> epilogue with an HWC intermediate."""
    _, c, h, w = spec.in_shape
    dw = spec.first
    k, (sh, sw) = dw.kernel, dw.stride
    _, o, oh, ow = spec.out_shape
    xin = Operand(spec.dtype, spec.in_zp)
    mid_in = Operand(spec.mid_dtype, spec.mid_zp)
    wop = Operand(spec.weight_dtype)
    x = te.placeholder(spec.in_shape, spec.dtype, name="x")
    w_dw = te.placeholder((c, 1, k, k), spec.weight_dtype, name="w_dw")
    w_pw = te.placeholder((o, c, 1, 1), spec.weight_dtype, name="w_pw")
    chans, tables = _params(spec), _tables(spec)
    rk = te.reduce_axis((0, k), name="rk")
    rl = te.reduce_axis((0, k), name="rl")
    xp = padded_input(x, xin, dw.padding)
    dw_acc = te.compute(
        (oh, ow, c),
        lambda i, j, ci: te.sum(xin.load(xp[0, ci, i * sh + rk, j * sw + rl])
                                * wop.load(w_dw[ci, 0, rk, rl]), axis=[rk, rl]),
        name="dw_acc")
    first = _first_out(spec, dw_acc, 2, chans, "dw_req")
    mid = te.compute((oh, ow, c),
                     lambda i, j, ci: apply_steps(spec.mid_steps, first(i, j, ci), tables),
                     name="dw_out")
    rc = te.reduce_axis((0, c), name="rc")
    pw_acc = te.compute(
        (1, o, oh, ow),
        lambda n, oc, i, j: te.sum(mid_in.load(mid[i, j, rc]) * wop.load(w_pw[oc, rc, 0, 0]),
                                   axis=rc),
        name="pw_acc")
    y = te.compute((1, o, oh, ow),
                   lambda n, oc, i, j: spec.second_epilogue.apply(pw_acc[n, oc, i, j], oc, chans),
                   name="pw_out")
    return [x, w_dw, w_pw, *chans, *tables, y]


def pw_dw_compute(spec: FusedKernelSpec):
    """TE graph of PW -> epilogue -> DW -> epilogue with a CHW intermediate."""
    _, c, h, w = spec.in_shape
    pw, dw = spec.first, spec.second
    hid = pw.out_channels
    k, (sh, sw) = dw.kernel, dw.stride
    t, l, _, _ = dw.padding
    _, _, oh, ow = spec.out_shape
    xin = Operand(spec.dtype, spec.in_zp)
    mid_in = Operand(spec.mid_dtype, spec.mid_zp)
    wop = Operand(spec.weight_dtype)
    x = te.placeholder(spec.in_shape, spec.dtype, name="x")
    w_pw = te.placeholder((hid, c, 1, 1), spec.weight_dtype, name="w_pw")
    w_dw = te.placeholder((hid, 1, k, k), spec.weight_dtype, name="w_dw")
    chans, tables = _params(spec), _tables(spec)
    hp, wp = h + t + spec.second.padding[2], w + l + spec.second.padding[3]
    rc = te.reduce_axis((0, c), name="rc")
    # The PW runs in the DW's *padded* coordinates (input padded with its zero point), so the
    # intermediate needs a fixed number of rows per tile (TVM compacts its L1 buffer to exactly
    # the tile) and the DW reads it without bounds checks. Its padding ring holds the real
    # value 0 (the intermediate's zero point in an int8 kernel).
    xp = padded_input(x, xin, dw.padding)
    pw_acc = te.compute(
        (hid, hp, wp),
        lambda hc, i, j: te.sum(xin.load(xp[0, rc, i, j]) * wop.load(w_pw[hc, rc, 0, 0]),
                                axis=rc),
        name="pw_acc")
    pad_value = tirx.const(spec.mid_zp if spec.first_epilogue.is_integer else 0, spec.mid_dtype)
    first = _first_out(spec, pw_acc, 0, chans, "pw_req")
    mid = te.compute(
        (hid, hp, wp),
        lambda hc, i, j: tirx.if_then_else(
            inside(i, j, t, l, h, w), apply_steps(spec.mid_steps, first(hc, i, j), tables),
            pad_value),
        name="pw_out")
    rk = te.reduce_axis((0, k), name="rk")
    rl = te.reduce_axis((0, k), name="rl")
    dw_acc = te.compute(
        (1, hid, oh, ow),
        lambda n, hc, i, j: te.sum(
            mid_in.load(mid[hc, i * sh + rk, j * sw + rl]) * wop.load(w_dw[hc, 0, rk, rl]),
            axis=[rk, rl]),
        name="dw_acc")
    y = te.compute((1, hid, oh, ow),
                   lambda n, hc, i, j: spec.second_epilogue.apply(dw_acc[n, hc, i, j], hc, chans),
                   name="dw_out")
    return [x, w_pw, w_dw, *chans, *tables, y]


def _dw_pw_shapes(spec):
    _, c, h, w = spec.in_shape
    _, o, oh, ow = spec.out_shape
    k, s = spec.first.kernel, spec.first.stride
    hp, wp = padded((h, w), spec.first.padding, ow, s[1], k)
    return c, h, w, o, oh, ow, k, s, hp, wp


def _pixel_tiles(dw: ConvGeom, shape, oh, ow, rows, cols, e):
    """(column tiles, columns per tile, the pixel tile loop's label, input rows x columns
    with halo per tile, input bytes per channel moved over all tiles) of a DW geometry over
    an input ``shape`` (h, w, padded h, padded w); ``cols`` 0: one tile spans the width."""
    h, w, hp, wp = shape
    qt = math.ceil(ow / cols) if cols else 1
    cols = cols or ow
    (sh, sw), k, (t, l) = dw.stride, dw.kernel, dw.padding[:2]
    per_tile = halo_rows(rows, sh, k, hp) * halo_rows(cols, sw, k, wp)
    moved = e * span(oh, rows, h, sh, k, t) * (span(ow, cols, w, sw, k, l) if qt > 1 else w)
    return qt, cols, "cols" if qt > 1 else "rows", per_tile, moved


def _conv_like_cost(hw, compute, overlap):
    def cost(act_in, act_out, wgt, transfers):
        return cycles.tiled_kernel(hw, compute, act_in + act_out + wgt, transfers, overlap(
            act_in, act_out))

    return cost


def dw_pw_tiling(spec: FusedKernelSpec, hw, rows: int, channels: int, cols: int = 0):
    """Pixel tiles (rows, or columns within rows when ``cols``; pipelined): the input rows x
    columns with halo of all channels, the DW into the tile's HWC intermediate, then the PW
    over output-channel tiles (its weights and parameters per channel tile when there is more
    than one: re-fetched for every pixel tile)."""
    c, h, w, o, oh, ow, k, s, hp, wp = _dw_pw_shapes(spec)
    qt, cols, pixel, in_tile, moved = _pixel_tiles(spec.first, (h, w, hp, wp), oh, ow, rows,
                                                   cols, c * dtype_bytes(spec.dtype))
    rt, ct = math.ceil(oh / rows), math.ceil(o / channels)
    db = input_copies(hw, qt if qt > 1 else rt)
    tile_at = "channels" if ct > 1 else ROOT
    bufs = (
        L1Buffer("pw_out", OUTPUT, channels * rows * cols, spec.out_dtype,
                 db if ct == 1 else 1, "channels" if ct > 1 else pixel, moved=output_bytes(spec)),
        L1Buffer("dw_out", INTERMEDIATE, rows * cols * c, spec.mid_dtype, 1, pixel),
        L1Buffer("x_pad", INPUT, c * in_tile, spec.dtype, db, pixel, moved=moved),
        L1Buffer("w_dw", WEIGHT, c * k * k, spec.weight_dtype),
        L1Buffer("w_pw", WEIGHT, channels * c, spec.weight_dtype, 1, tile_at),
        *param_buffers(spec, channels, o, tile_at,
                       spec.second_epilogue.channels() if ct > 1 else set()),
        *table_buffers(spec))
    compute = rt * qt * (cycles.conv(c, c, rows, cols, k, c)
                         + ct * cycles.conv(c, channels, rows, cols, 1)
                         + _steps_cycles(spec, hw, rows * cols * c))
    overlap = (lambda a, b: (a + b, rt * qt * ct)) if db == 2 else (lambda a, b: None)
    return plan_from("dw_pw", rows, channels, (("rows", rt), ("cols", qt), ("channels", ct)),
                     bufs, spec.macs(), _conv_like_cost(hw, compute, overlap),
                     pixel if db == 2 else "", cols=cols if qt > 1 else 0)


def dw_pw_staged_tiling(spec: FusedKernelSpec, hw, rows: int, channels: int, dw_channels: int,
                        cols: int = 0):
    """The channel-staged DW->PW variant, for layers too wide for ``dw_pw_tiling``: per pixel
    tile (rows, or columns within rows when ``cols``), the DW runs over DW channel tiles of
    ``dw_channels`` (its input with halo and its weights staged per channel tile, the
    pipelined loop) into the tile's full-channel intermediate; then the PW over output-channel
    tiles as in ``dw_pw_tiling``. The output tile is single-buffered: double buffering it
    would need the pixel loop pipelined around the already pipelined DW channel loop."""
    c, h, w, o, oh, ow, k, s, hp, wp = _dw_pw_shapes(spec)
    qt, cols, pixel, in_tile, moved = _pixel_tiles(spec.first, (h, w, hp, wp), oh, ow, rows,
                                                   cols, c * dtype_bytes(spec.dtype))
    rt, ct, dt = math.ceil(oh / rows), math.ceil(o / channels), math.ceil(c / dw_channels)
    db = input_copies(hw, dt)
    tile_at = "channels" if ct > 1 else ROOT
    bufs = (
        L1Buffer("pw_out", OUTPUT, channels * rows * cols, spec.out_dtype, 1, "channels",
                 moved=output_bytes(spec)),
        L1Buffer("dw_out", INTERMEDIATE, rows * cols * c, spec.mid_dtype, 1, pixel),
        L1Buffer("x_pad", INPUT, dw_channels * in_tile, spec.dtype, db, "dw_channels",
                 moved=moved),
        L1Buffer("w_dw", WEIGHT, dw_channels * k * k, spec.weight_dtype, db, "dw_channels"),
        L1Buffer("w_pw", WEIGHT, channels * c, spec.weight_dtype, 1, tile_at),
        *param_buffers(spec, channels, o, tile_at,
                       spec.second_epilogue.channels() if ct > 1 else set()),
        *table_buffers(spec))
    compute = rt * qt * (dt * cycles.depthwise(dw_channels, rows, cols, k)
                         + ct * cycles.conv(c, channels, rows, cols, 1)
                         + _steps_cycles(spec, hw, rows * cols * c))
    overlap = (lambda a, b: (a, dt)) if db == 2 else (lambda a, b: None)
    px = rt * qt
    trips = {ROOT: 1, "rows": rt, "cols": px, "channels": px * ct, "dw_channels": px * dt}
    return plan_from("dw_pw", rows, channels, trips, bufs, spec.macs(),
                     _conv_like_cost(hw, compute, overlap), "dw_channels" if db == 2 else "",
                     dw_channels, cols=cols if qt > 1 else 0)


def pw_dw_tiling(spec: FusedKernelSpec, hw, rows: int, channels: int, cols: int = 0):
    """Pixel tiles (rows, or columns within rows when ``cols``; pipelined) x DW channel
    tiles: the input rows x columns with halo of all input channels per pixel tile; per
    channel tile the PW computes the channels and padded rows x columns (halo recomputed) the
    DW tile needs into a CHW intermediate; weights and parameters per channel tile when there
    is more than one."""
    _, c, h, w = spec.in_shape
    _, hid, oh, ow = spec.out_shape
    dw = spec.second
    hp, wp = padded((h, w), dw.padding, ow, dw.sw, dw.kernel)
    qt, cols, pixel, in_tile, moved = _pixel_tiles(dw, (h, w, hp, wp), oh, ow, rows, cols,
                                                   c * dtype_bytes(spec.dtype))
    rt, ct = math.ceil(oh / rows), math.ceil(hid / channels)
    db = input_copies(hw, qt if qt > 1 else rt)
    tile_at = "channels" if ct > 1 else ROOT
    bufs = (
        L1Buffer("dw_out", OUTPUT, channels * rows * cols, spec.out_dtype, db if ct == 1 else 1,
                 "channels" if ct > 1 else pixel, moved=output_bytes(spec)),
        L1Buffer("pw_out", INTERMEDIATE, channels * in_tile, spec.mid_dtype, 1, "channels"),
        L1Buffer("x_pad", INPUT, c * in_tile, spec.dtype, db, pixel, moved=moved),
        L1Buffer("w_pw", WEIGHT, channels * c, spec.weight_dtype, 1, tile_at),
        L1Buffer("w_dw", WEIGHT, channels * dw.kernel ** 2, spec.weight_dtype, 1, tile_at),
        *param_buffers(spec, channels, hid, tile_at,
                       set(range(len(spec.channel_shapes))) if ct > 1 else set()),
        *table_buffers(spec))
    in_rows = halo_rows(rows, dw.sh, dw.kernel, hp)
    compute = rt * qt * ct * (cycles.conv(c, channels, in_rows, in_tile // in_rows, 1)
                              + cycles.conv(channels, channels, rows, cols, dw.kernel, channels)
                              + _steps_cycles(spec, hw, channels * in_tile))
    # the PW runs over the padded tile: halo rows recomputed, padding ring included
    macs = spec.macs() + (rt * qt * in_tile - h * w) * c * spec.first.out_channels
    overlap = (lambda a, b: (a + b, rt * qt * ct)) if db == 2 else (lambda a, b: None)
    return plan_from("pw_dw", rows, channels, (("rows", rt), ("cols", qt), ("channels", ct)),
                     bufs, macs, _conv_like_cost(hw, compute, overlap), pixel if db == 2 else "",
                     cols=cols if qt > 1 else 0)


def plan_fused(spec: FusedKernelSpec, hw, layer: str = "?"):
    """The cheapest plan for a fused kernel that fits ``hw.l1_budget``; a DW->PW kernel also
    tries the channel-staged variant at every DW channel tile that divides the channels (all
    of them at once is ``dw_pw_tiling``)."""
    if spec.kind == "pw_dw":
        return choose_plan(spec, hw, layer, pw_dw_tiling, tile_cols=True)
    dw_tiles = candidates(spec.in_shape[1])[1:]

    def plans(variant, rows, channels, cols=0):
        yield dw_pw_tiling(spec, variant, rows, channels, cols)
        for dc in dw_tiles:
            yield dw_pw_staged_tiling(spec, variant, rows, channels, dc, cols)

    return search(spec, hw, layer, plans, tile_cols=True)


def fused_fit_problem(spec: FusedKernelSpec, hw) -> str | None:
    """Why a fused kernel fits no tile of L1 (the bytes its smallest tile needs and the
    budget), or None when some tile fits: the fusion policy refuses such a pair."""
    try:
        plan_fused(spec, hw)
    except TilingError as err:
        return f"the fused kernel cannot fit L1 on {hw.name}: {err.reason}"
    return None


def schedule_dw_pw(spec: FusedKernelSpec, plan):
    """Loop nest: row tile { input rows+halo L2->L1; DW -> HWC intermediate (L1, all
    channels); channel tile { [PW weight slice L2->L1]; PW -> output tile (L1); output tile
    L1->L2 } }. The channel-staged variant (``plan.dw_channels``) runs the DW part per DW
    channel tile { input rows+halo of those channels and their DW weights L2->L1; DW -> their
    slice of the intermediate }."""
    sch = s_tir.Schedule(te.create_prim_func(dw_pw_compute(spec)))
    loops, j = tile_pixels(sch, sch.get_sblock("pw_out"), plan)
    scalar_accumulator(sch, sch.get_sblock("pw_acc"), j)
    stage_buffers(sch, plan, loops, (OUTPUT, INTERMEDIATE))
    mid = sch.get_sblock("dw_out")
    if plan.dw_channels:
        pixel = loops["cols" if plan.cols else "rows"]
        loops["dw_channels"] = _dw_channel_tiles(sch, mid, pixel, plan.dw_channels)
    _stage_first_out(sch, spec, "dw_req", mid)
    scalar_accumulator(sch, sch.get_sblock("dw_acc"), sch.get_loops(mid)[-1])
    return finish_staged(sch, plan, loops, (INPUT, WEIGHT))


def _dw_channel_tiles(sch, mid, row_loop, dw_channels):
    """Split the intermediate's channel loop (inside the row tile) into DW channel tiles of
    ``dw_channels``, outermost: the loop the DW input and weights are staged at."""
    loops = list(sch.get_loops(mid))
    # below the row tile: rows, columns, channels (compute_at drops unit loops)
    *pixels, c = loops[[sch.get(lp).same_as(sch.get(row_loop)) for lp in loops].index(True) + 1:]
    ct, ci = sch.split(c, [None, dw_channels])
    sch.reorder(ct, *pixels, ci)
    return ct


def schedule_pw_dw(spec: FusedKernelSpec, plan):
    """Loop nest: row tile { input rows+halo, all input channels, L2->L1; channel tile {
    [weight slices L2->L1]; PW -> CHW intermediate (L1, halo rows recomputed); DW -> output
    tile (L1); output tile L1->L2 } }."""
    sch = s_tir.Schedule(te.create_prim_func(pw_dw_compute(spec)))
    loops, j = tile_pixels(sch, sch.get_sblock("dw_out"), plan)
    scalar_accumulator(sch, sch.get_sblock("dw_acc"), j)
    stage_buffers(sch, plan, loops, (OUTPUT, INTERMEDIATE))
    mid = sch.get_sblock("pw_out")
    _stage_first_out(sch, spec, "pw_req", mid)
    scalar_accumulator(sch, sch.get_sblock("pw_acc"), sch.get_loops(mid)[-1])
    return finish_staged(sch, plan, loops, (INPUT, WEIGHT))


def build_fused(spec: FusedKernelSpec, plan):
    """The scheduled PrimFunc of a fused kernel under ``plan``."""
    return schedule_dw_pw(spec, plan) if spec.kind == "dw_pw" else schedule_pw_dw(spec, plan)


def fused_spec(kind: str, kernel) -> FusedKernelSpec:
    """The spec of a ``dw_pw`` / ``pw_dw`` group read by ``read_composite``."""
    stages = kernel.stages
    if len(stages) != 2:
        raise UnsupportedError(f"{kind} group with {len(stages)} convs")
    if stages[0].integer != stages[1].integer:
        raise UnsupportedError(f"{kind} group mixing integer and float stages")
    return FusedKernelSpec(
        kind=kind, in_shape=tuple(int(v) for v in kernel.x.ty.shape.values),
        first=conv_geom(stages[0].conv), second=conv_geom(stages[1].conv),
        first_epilogue=kernel.epilogues[0], second_epilogue=kernel.epilogues[1],
        layouts=dict(LAYOUTS[kind]), mid_zp=stages[1].in_zp, mid_steps=tuple(kernel.steps),
        table_dtypes=tuple(str(t.dtype) for t in kernel.tables), **spec_fields(kernel))


def fused_reader(kind: str):
    """The reader of a ``kind`` composite -> (FusedKernelSpec, [x, w1, w2, per-channel])."""
    def read(func, args):
        kernel = read_composite(func, args)
        spec = fused_spec(kind, kernel)
        weights = [relax.const(stage.weight) for stage in kernel.stages]
        tables = [relax.const(t) for t in kernel.tables]
        return spec, [kernel.x, *weights] + kernel.channel_tensors + tables

    return read


def _is_pair(ctx) -> bool:
    return patterns.is_depthwise_like(ctx.annotated_expr["dw"])  # else: two ordinary convs


def _pair_problem(ctx):
    dw, pw = ctx.annotated_expr["dw"], ctx.annotated_expr["pw"]
    return (patterns.pair_problem(dw, pw) or patterns.escape_problem(ctx)
            or patterns.epilogue_problem(ctx.matched_bindings.values()))


def _fused_family(kind, pats, keys):
    return KernelFamily(kind=kind, patterns=pats, layer_keys=keys, read=fused_reader(kind),
                        plan=plan_fused, schedule=build_fused, problem=_pair_problem,
                        candidate=_is_pair, fused=True, layouts=LAYOUTS[kind])


DW_PW = _fused_family("dw_pw", (patterns.q_dw_pw_pattern, patterns.dw_pw_pattern), ("dw", "pw"))
PW_DW = _fused_family("pw_dw", (patterns.q_pw_dw_pattern, patterns.pw_dw_pattern), ("pw", "dw"))
