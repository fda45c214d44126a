"""``dw_pw``: depthwise kxk (+epilogue) -> pointwise 1x1 (+epilogue) as one kernel, tiled over
output rows (the paper's ``dw_pw_CHW_CHW_HWC_rows``; columns within rows when a row does not fit):
per tile, the input rows it needs (halo included) are copied L2->L1, the DW writes an HWC
intermediate tile that lives only in L1, the PW reduces it over channels into an L1 output tile,
which is copied L1->L2. The channel-staged variant runs the DW per DW channel tile into the
tile's full-channel intermediate, for layers too wide for the first.
"""

from __future__ import annotations

import math

from tvm import s_tir, te

from ..cost import cycles
from ..ir.vocab import INPUT, INTERMEDIATE, OUTPUT, WEIGHT
from . import layout, patterns
from .conv import CHANNEL_BLOCK, tile_pixels
from .fused import (FusedKernelSpec, channel_placeholders, dw_channel_by_channel, first_out,
                    fused_family, pixel_tiles, stage_first_out, steps_cycles, table_buffers,
                    table_placeholders)
from .lut import apply_steps
from .staging import (Operand, finish_staged, padded_input, scalar_accumulator, stage_buffers)
from .tiling import (ROOT, L1Buffer, LayerCost, candidates, dtype_bytes, input_copies, output_bytes,
                     padded, param_buffers, plan_from, search)


def dw_pw_compute(spec: FusedKernelSpec):
    """TE graph of DW -> epilogue -> PW -> epilogue; the intermediate in ``layouts.mid``
    (HWC: the PW reads each pixel's channels contiguously, the paper's choice)."""
    _, c, h, w = spec.in_shape
    dw = spec.first
    k, (sh, sw) = dw.kernel, dw.stride
    _, o, oh, ow = spec.out_shape
    lay = spec.layouts
    # the MACs read the raw integers: each bias holds -zp * sum(w) (``requantization``)
    xpad, xin = Operand(spec.dtype, spec.in_zp), Operand(spec.dtype)
    mid_in = Operand(spec.mid_dtype)
    wop = Operand(spec.weight_dtype)
    x = layout.placeholder(spec.in_shape, lay.source, spec.dtype, "x")
    w_dw = te.placeholder((c, 1, k, k), spec.weight_dtype, name="w_dw")
    w_pw = te.placeholder((o, c, 1, 1), spec.weight_dtype, name="w_pw")
    chans, tables = channel_placeholders(spec), table_placeholders(spec)
    rk = te.reduce_axis((0, k), name="rk")
    rl = te.reduce_axis((0, k), name="rl")
    xp = padded_input(x, xpad, dw.padding, lay)
    dw_acc = layout.stage(
        (c, oh, ow),
        lambda ci, i, j: te.sum(
            xin.load(layout.element(xp, lay.tile, 0, ci, i * sh + rk, j * sw + rl))
            * wop.load(w_dw[ci, 0, rk, rl]), axis=[rk, rl]),
        lay.mid, "dw_acc")
    first = first_out(spec, lambda ci, i, j: layout.element(dw_acc, lay.mid, ci, i, j), 0,
                      chans, "dw_req", lay.mid, (c, oh, ow))
    mid = layout.stage((c, oh, ow),
                       lambda ci, i, j: apply_steps(spec.mid_steps, first(ci, i, j), tables),
                       lay.mid, "dw_out")
    rc = te.reduce_axis((0, c), name="rc")
    pw_acc = layout.stage(
        (1, o, oh, ow),
        lambda n, oc, i, j: te.sum(mid_in.load(layout.element(mid, lay.mid, rc, i, j))
                                   * wop.load(w_pw[oc, rc, 0, 0]), axis=rc),
        lay.out, "pw_acc")
    y = layout.stage((1, o, oh, ow),
                     lambda n, oc, i, j: spec.second_epilogue.apply(
                         layout.element(pw_acc, lay.out, n, oc, i, j), oc, chans),
                     lay.out, "pw_out")
    return [x, w_dw, w_pw, *chans, *tables, y]


def _dw_pw_shapes(spec):
    _, c, h, w = spec.in_shape
    _, o, oh, ow = spec.out_shape
    k, s = spec.first.kernel, spec.first.stride
    hp, wp = padded((h, w), spec.first.padding, ow, s[1], k)
    return c, h, w, o, oh, ow, k, s, hp, wp


def dw_pw_tiling(spec: FusedKernelSpec, hw, rows: int, channels: int, cols: int = 0):
    """Pixel tiles (rows, or columns within rows when ``cols``; pipelined): the input rows x
    columns with halo of all channels, the DW into the tile's HWC intermediate, then the PW
    over output-channel tiles (its weights and parameters per channel tile when there is more
    than one: re-fetched for every pixel tile)."""
    c, h, w, o, oh, ow, k, s, hp, wp = _dw_pw_shapes(spec)
    qt, cols, pixel, in_tile, moved = pixel_tiles(spec.first, (h, w, hp, wp), oh, ow, rows,
                                                   cols, c * dtype_bytes(spec.dtype))
    rt, ct = math.ceil(oh / rows), math.ceil(o / channels)
    db = input_copies(hw, qt if qt > 1 else rt)
    tile_at = "channels" if ct > 1 else ROOT
    bufs = (
        L1Buffer("pw_out", OUTPUT, channels * rows * cols, spec.out_dtype,
                 db if ct == 1 else 1, "channels" if ct > 1 else pixel, moved=output_bytes(spec)),
        L1Buffer("dw_out", INTERMEDIATE, rows * cols * c, spec.mid_dtype, 1, pixel),
        L1Buffer("x_pad", INPUT, c * in_tile, spec.dtype, db, pixel, moved=moved,
                 transposing=spec.layouts.transposing, planes=c),
        L1Buffer("w_dw", WEIGHT, c * k * k, spec.weight_dtype),
        L1Buffer("w_pw", WEIGHT, channels * c, spec.weight_dtype, 1, tile_at),
        *param_buffers(spec, channels, o, tile_at,
                       spec.second_epilogue.channels() if ct > 1 else set()),
        *table_buffers(spec))
    lay = spec.layouts
    # the same DW / PW formulas as the standalone kernels on the same tiles
    # (``cycles.depthwise`` / ``cycles.pointwise``)
    compute = rt * qt * (cycles.depthwise(c, rows, cols, k, lay.tile, lay.mid, s[0],
                                          hw.compute)
                         + ct * cycles.pointwise(c, channels, rows, cols, lay.mid, lay.out,
                                                 costs=hw.compute)
                         + steps_cycles(spec, hw, rows * cols * c))
    return plan_from("dw_pw", rows, channels, (("rows", rt), ("cols", qt), ("channels", ct)),
                     bufs, spec.macs(), LayerCost(hw, compute),
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
    qt, cols, pixel, in_tile, moved = pixel_tiles(spec.first, (h, w, hp, wp), oh, ow, rows,
                                                   cols, c * dtype_bytes(spec.dtype))
    rt, ct, dt = math.ceil(oh / rows), math.ceil(o / channels), math.ceil(c / dw_channels)
    db = input_copies(hw, dt)
    tile_at = "channels" if ct > 1 else ROOT
    bufs = (
        L1Buffer("pw_out", OUTPUT, channels * rows * cols, spec.out_dtype, 1, "channels",
                 moved=output_bytes(spec)),
        L1Buffer("dw_out", INTERMEDIATE, rows * cols * c, spec.mid_dtype, 1, pixel),
        L1Buffer("x_pad", INPUT, dw_channels * in_tile, spec.dtype, db, "dw_channels",
                 moved=moved, transposing=spec.layouts.transposing, planes=dw_channels),
        L1Buffer("w_dw", WEIGHT, dw_channels * k * k, spec.weight_dtype, db, "dw_channels"),
        L1Buffer("w_pw", WEIGHT, channels * c, spec.weight_dtype, 1, tile_at),
        *param_buffers(spec, channels, o, tile_at,
                       spec.second_epilogue.channels() if ct > 1 else set()),
        *table_buffers(spec))
    lay = spec.layouts
    compute = rt * qt * (dt * cycles.depthwise(dw_channels, rows, cols, k, lay.tile, lay.mid,
                                               s[0], hw.compute)
                         + ct * cycles.pointwise(c, channels, rows, cols, lay.mid, lay.out,
                                                 costs=hw.compute)
                         + steps_cycles(spec, hw, rows * cols * c))
    px = rt * qt
    trips = {ROOT: 1, "rows": rt, "cols": px, "channels": px * ct, "dw_channels": px * dt}
    return plan_from("dw_pw", rows, channels, trips, bufs, spec.macs(),
                     LayerCost(hw, compute), "dw_channels" if db == 2 else "",
                     dw_channels, cols=cols if qt > 1 else 0)


def plan_dw_pw(spec: FusedKernelSpec, hw, layer: str = "?"):
    """The cheapest dw_pw plan that fits ``hw.l1_budget``: the row-tiled kernel and the
    channel-staged variant at every DW channel tile that divides the channels (all of them at
    once is ``dw_pw_tiling``)."""
    dw_tiles = candidates(spec.in_shape[1])[1:]

    def plans(variant, rows, channels, cols=0):
        yield dw_pw_tiling(spec, variant, rows, channels, cols)
        for dc in dw_tiles:
            yield dw_pw_staged_tiling(spec, variant, rows, channels, dc, cols)

    return search(spec, hw, layer, plans, tile_cols=True)


def schedule_dw_pw(spec: FusedKernelSpec, plan):
    """Loop nest: row tile { input rows+halo L2->L1; DW -> HWC intermediate (L1, all
    channels); channel tile { [PW weight slice L2->L1]; PW -> output tile (L1); output tile
    L1->L2 } }. The channel-staged variant (``plan.dw_channels``) runs the DW part per DW
    channel tile { input rows+halo of those channels and their DW weights L2->L1; DW -> their
    slice of the intermediate }."""
    sch = s_tir.Schedule(te.create_prim_func(dw_pw_compute(spec)))
    loops, j = tile_pixels(sch, sch.get_sblock("pw_out"), plan, spec.layouts.out, CHANNEL_BLOCK,
                           spec.in_shape[1])
    scalar_accumulator(sch, sch.get_sblock("pw_acc"), j)
    stage_buffers(sch, plan, loops, (OUTPUT, INTERMEDIATE))
    mid = sch.get_sblock("dw_out")
    pixel = loops["cols" if plan.cols else "rows"]
    if plan.dw_channels:
        loops["dw_channels"] = _dw_channel_tiles(sch, mid, pixel, plan.dw_channels,
                                                 spec.layouts.mid)
    else:
        dw_channel_by_channel(sch, mid, pixel, spec.layouts.mid)
    stage_first_out(sch, spec, "dw_req", mid)
    scalar_accumulator(sch, sch.get_sblock("dw_acc"), sch.get_loops(mid)[-1])
    return finish_staged(sch, plan, loops, (INPUT, WEIGHT))


def _dw_channel_tiles(sch, mid, row_loop, dw_channels, mid_layout):
    """Split the intermediate's channel loop (inside the row tile) into DW channel tiles of
    ``dw_channels``, outermost: the loop the DW input and weights are staged at."""
    loops = list(sch.get_loops(mid))
    # below the row tile: rows, columns, channels in storage order (compute_at drops unit
    # loops; the channel loop is never one)
    rest = loops[[sch.get(lp).same_as(sch.get(row_loop)) for lp in loops].index(True) + 1:]
    c, pixels = (rest[-1], rest[:-1]) if mid_layout == layout.HWC else (rest[0], rest[1:])
    ct, ci = sch.split(c, [None, dw_channels])
    # channel by channel inside the tile whatever the intermediate's layout, as
    # ``dw_channel_by_channel`` runs the unstaged DW (taps and requantization values loaded
    # once per channel)
    sch.reorder(ct, ci, *pixels)
    return ct


DW_PW = fused_family("dw_pw", (patterns.q_dw_pw_pattern, patterns.dw_pw_pattern), ("dw", "pw"),
                     plan_dw_pw, schedule_dw_pw)
