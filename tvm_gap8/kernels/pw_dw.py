"""``pw_dw``: pointwise (+epilogue) -> depthwise (+epilogue) as one kernel (the expansion half of
an inverted residual), tiled over output rows (columns within rows when needed) and channels
(the paper's ``pw_dw_*_rows`` / ``*_channels`` variants): per tile, the PW computes the channels
and padded input rows (halo recomputed) the DW tile needs into a CHW intermediate in L1.
"""

from __future__ import annotations

import math

from tvm import s_tir, te, tirx

from ..cost import cycles
from ..ir.box import inside
from ..ir.vocab import INPUT, INTERMEDIATE, OUTPUT, WEIGHT
from . import layout, patterns
from .conv import tile_pixels
from .fused import (FusedKernelSpec, channel_placeholders, first_out, fused_family, pixel_tiles,
                    stage_first_out, steps_cycles, table_buffers, table_placeholders)
from .lut import apply_steps
from .staging import Operand, finish_staged, padded_input, scalar_accumulator, stage_buffers
from .tiling import (ROOT, L1Buffer, LayerCost, choose_plan, dtype_bytes, halo_rows, input_copies,
                     output_bytes, padded, param_buffers, plan_from)


def pw_dw_compute(spec: FusedKernelSpec):
    """TE graph of PW -> epilogue -> DW -> epilogue with a CHW intermediate."""
    _, c, h, w = spec.in_shape
    pw, dw = spec.first, spec.second
    hid = pw.out_channels
    k, (sh, sw) = dw.kernel, dw.stride
    t, l, _, _ = dw.padding
    _, _, oh, ow = spec.out_shape
    # the MACs read the raw integers: each bias holds -zp * sum(w) (``requantization``); the
    # padding rings hold the zero points, so a padded tap's z * w cancels there too
    xpad, xin = Operand(spec.dtype, spec.in_zp), Operand(spec.dtype)
    mid_in = Operand(spec.mid_dtype)
    wop = Operand(spec.weight_dtype)
    lay = spec.layouts
    x = layout.placeholder(spec.in_shape, lay.source, spec.dtype, "x")
    w_pw = te.placeholder((hid, c, 1, 1), spec.weight_dtype, name="w_pw")
    w_dw = te.placeholder((hid, 1, k, k), spec.weight_dtype, name="w_dw")
    chans, tables = channel_placeholders(spec), table_placeholders(spec)
    hp, wp = h + t + spec.second.padding[2], w + l + spec.second.padding[3]
    rc = te.reduce_axis((0, c), name="rc")
    # The PW runs in the DW's *padded* coordinates (input padded with its zero point), so the
    # intermediate needs a fixed number of rows per tile (TVM compacts its L1 buffer to exactly
    # the tile) and the DW reads it without bounds checks. Its padding ring holds the real
    # value 0 (the intermediate's zero point in an int8 kernel).
    xp = padded_input(x, xpad, dw.padding, lay)
    pw_acc = layout.stage(
        (hid, hp, wp),
        lambda hc, i, j: te.sum(xin.load(layout.element(xp, lay.tile, 0, rc, i, j))
                                * wop.load(w_pw[hc, rc, 0, 0]), axis=rc),
        lay.mid, "pw_acc")
    pad_value = tirx.const(spec.mid_zp if spec.first_epilogue.is_integer else 0, spec.mid_dtype)
    first = first_out(spec, lambda hc, i, j: layout.element(pw_acc, lay.mid, hc, i, j), 0,
                      chans, "pw_req", lay.mid, (hid, hp, wp))
    mid = layout.stage(
        (hid, hp, wp),
        lambda hc, i, j: tirx.if_then_else(
            inside(i, j, t, l, h, w), apply_steps(spec.mid_steps, first(hc, i, j), tables),
            pad_value),
        lay.mid, "pw_out")
    rk = te.reduce_axis((0, k), name="rk")
    rl = te.reduce_axis((0, k), name="rl")
    dw_acc = layout.stage(
        (1, hid, oh, ow),
        lambda n, hc, i, j: te.sum(
            mid_in.load(layout.element(mid, lay.mid, hc, i * sh + rk, j * sw + rl))
            * wop.load(w_dw[hc, 0, rk, rl]), axis=[rk, rl]),
        lay.out, "dw_acc")
    y = layout.stage((1, hid, oh, ow),
                     lambda n, hc, i, j: spec.second_epilogue.apply(
                         layout.element(dw_acc, lay.out, n, hc, i, j), hc, chans),
                     lay.out, "dw_out")
    return [x, w_pw, w_dw, *chans, *tables, y]


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
    qt, cols, pixel, in_tile, moved = pixel_tiles(dw, (h, w, hp, wp), oh, ow, rows, cols,
                                                   c * dtype_bytes(spec.dtype))
    rt, ct = math.ceil(oh / rows), math.ceil(hid / channels)
    db = input_copies(hw, qt if qt > 1 else rt)
    tile_at = "channels" if ct > 1 else ROOT
    bufs = (
        L1Buffer("dw_out", OUTPUT, channels * rows * cols, spec.out_dtype, db if ct == 1 else 1,
                 "channels" if ct > 1 else pixel, moved=output_bytes(spec)),
        L1Buffer("pw_out", INTERMEDIATE, channels * in_tile, spec.mid_dtype, 1, "channels"),
        L1Buffer("x_pad", INPUT, c * in_tile, spec.dtype, db, pixel, moved=moved,
                 transposing=spec.layouts.transposing, planes=c),
        L1Buffer("w_pw", WEIGHT, channels * c, spec.weight_dtype, 1, tile_at),
        L1Buffer("w_dw", WEIGHT, channels * dw.kernel ** 2, spec.weight_dtype, 1, tile_at),
        *param_buffers(spec, channels, hid, tile_at,
                       set(range(len(spec.channel_shapes))) if ct > 1 else set()),
        *table_buffers(spec))
    in_rows = halo_rows(rows, dw.sh, dw.kernel, hp)
    lay = spec.layouts
    # the same PW / DW formulas as the standalone kernels on the same tiles
    # (``cycles.pointwise`` over the padded rows x columns the DW reads, ``cycles.depthwise``)
    compute = rt * qt * ct * (cycles.pointwise(c, channels, in_rows, in_tile // in_rows,
                                               lay.tile, lay.mid, costs=hw.compute)
                              + cycles.depthwise(channels, rows, cols, dw.kernel, lay.mid,
                                                 lay.out, dw.sh, hw.compute)
                              + steps_cycles(spec, hw, channels * in_tile))
    # the PW runs over the padded tile: halo rows recomputed, padding ring included
    macs = spec.macs() + (rt * qt * in_tile - h * w) * c * spec.first.out_channels
    return plan_from("pw_dw", rows, channels, (("rows", rt), ("cols", qt), ("channels", ct)),
                     bufs, macs, LayerCost(hw, compute), pixel if db == 2 else "",
                     cols=cols if qt > 1 else 0)


def plan_pw_dw(spec: FusedKernelSpec, hw, layer: str = "?"):
    """The cheapest pw_dw plan that fits ``hw.l1_budget``."""
    return choose_plan(spec, hw, layer, pw_dw_tiling, tile_cols=True)


def schedule_pw_dw(spec: FusedKernelSpec, plan):
    """Loop nest: row tile { input rows+halo, all input channels, L2->L1; channel tile {
    [weight slices L2->L1]; PW -> CHW intermediate (L1, halo rows recomputed); DW -> output
    tile (L1); output tile L1->L2 } }."""
    sch = s_tir.Schedule(te.create_prim_func(pw_dw_compute(spec)))
    loops, j = tile_pixels(sch, sch.get_sblock("dw_out"), plan, spec.layouts.out)
    scalar_accumulator(sch, sch.get_sblock("dw_acc"), j)
    stage_buffers(sch, plan, loops, (OUTPUT, INTERMEDIATE))
    mid = sch.get_sblock("pw_out")
    stage_first_out(sch, spec, "pw_req", mid)
    scalar_accumulator(sch, sch.get_sblock("pw_acc"), sch.get_loops(mid)[-1])
    return finish_staged(sch, plan, loops, (INPUT, WEIGHT))


PW_DW = fused_family("pw_dw", (patterns.q_pw_dw_pattern, patterns.pw_dw_pattern), ("pw", "dw"),
                     plan_pw_dw, schedule_pw_dw)
