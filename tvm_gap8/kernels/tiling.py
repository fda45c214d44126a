"""L1 tile plans for the fused kernels: what lives in L1, how big, how much moves.

A ``TilePlan`` is produced by ``plan_fused`` (the tiler), consumed by the schedules
(``fused.py``) and checked against the lowered IR by the tests. The footprint formulas mirror
exactly the buffers the schedule creates (after TVM's buffer compaction): the input tile with
its halo, the intermediate, the output tile, and the weight tiles. Input and output tiles are
counted twice when the target double-buffers (the DMA fills one while the cores use the other).

Objective: minimum modelled cycles = compute (the target's per-kernel cycle models, evaluated
per tile, so small tiles pay their loop overheads) + DMA not hidden by double buffering +
per-transfer set-up, over the tiles that fit the L1 budget; ties go to the bigger tile.
Deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import TilingError
from ..target import Gap8Target
from ..vocab import (DMA_TRANSFERS, INPUT, INTERMEDIATE, L1_TO_L2_ACT, L2_TO_L1_ACT,
                     L2_TO_L1_WGT, OUTPUT, WEIGHT)


def dtype_bytes(dtype: str) -> int:
    return {"float32": 4, "int32": 4, "int64": 8, "int8": 1, "uint8": 1, "int16": 2,
            "float16": 2}[dtype]


def _param_bytes(spec, which=None) -> int:
    return sum(math.prod(sh) * dtype_bytes(spec.channel_dtype(i))
               for i, sh in enumerate(spec.channel_shapes) if which is None or i in which)


def tiled_params(spec) -> set:
    """Per-channel tensors (bias, requantization) indexed by the tiled output channel: copied
    per channel tile, like the weights, when there is more than one."""
    if spec.kind == "dw_pw":
        return spec.second_epilogue.channels()
    return set(range(len(spec.channel_shapes)))


def _params(spec, channels, extent, rt, ct, tiled_copies=1):
    """(L1 bytes, bytes moved, transfers) of the per-channel tensors."""
    tiled = tiled_params(spec) if ct > 1 else set()
    root = _param_bytes(spec) - _param_bytes(spec, tiled)
    per_tile = _param_bytes(spec, tiled)
    l1 = root + per_tile * channels // extent * tiled_copies
    moved = root + per_tile * rt
    n_root = len(spec.channel_shapes) - len(tiled)
    return l1, moved, n_root + len(tiled) * rt * ct


#: The loop label of a buffer staged once, outside every tile loop.
ROOT = "root"


@dataclass(frozen=True)
class L1Buffer:
    """One L1 buffer of a kernel, declared once by the family's tiling: the plan's footprint,
    traffic and transfers are computed from it, and the schedule stages it from it
    (``staging.stage_buffers``).

    ``name``: the TE tensor copied in (an input or weight placeholder; ``x_pad`` for the padded
    input stage), or the block whose result it holds (output, intermediate). ``at``: the label
    of the loop it is staged at (``ROOT``: once)."""

    name: str
    role: str  # input | intermediate | output | weight
    elements: int  # per tile, one version
    dtype: str
    copies: int = 1  # 2 when double-buffered
    at: str = ROOT
    moved: int | None = None  # bytes moved in all; None: elements x size x trips of ``at``
    transfers: int | None = None  # None: the trips of ``at`` (an intermediate: none)

    @property
    def bytes(self) -> int:
        return self.elements * dtype_bytes(self.dtype) * self.copies

    def resolved(self, trips: dict) -> "L1Buffer":
        """With ``moved`` and ``transfers`` filled in from the trip counts of the loops."""
        if self.role == INTERMEDIATE:
            return replace(self, moved=0, transfers=0)
        n = trips[self.at]
        moved = self.moved if self.moved is not None else \
            self.elements * dtype_bytes(self.dtype) * n
        return replace(self, moved=moved,
                       transfers=self.transfers if self.transfers is not None else n)


def loop_trips(loops) -> dict:
    """{label: executions} of a loop nest given outermost first as (label, trip count)."""
    trips, n = {ROOT: 1}, 1
    for label, count in loops:
        n *= count
        trips[label] = n
    return trips


def moved_by(buffers, role: str) -> int:
    return sum(b.moved for b in buffers if b.role == role)


def param_buffers(spec, channels: int, extent: int, at: str, tiled: set, copies: int = 1):
    """The per-channel tensors ``p{i}`` (bias, requantization) as L1 buffers: the ones in
    ``tiled`` sliced per output-channel tile at ``at``, the others whole at the root."""
    out = []
    for i, shape in enumerate(spec.channel_shapes):
        size = math.prod(shape)
        if i in tiled:
            out.append(L1Buffer(f"p{i}", WEIGHT, size * channels // extent,
                                spec.channel_dtype(i), copies, at))
        else:
            out.append(L1Buffer(f"p{i}", WEIGHT, size, spec.channel_dtype(i)))
    return out


@dataclass(frozen=True)
class TilePlan:
    kind: str
    rows: int  # output rows per tile
    channels: int  # output channels per tile (dw_pw: PW outputs; pw_dw: DW channels)
    row_tiles: int
    channel_tiles: int
    buffers: tuple
    l2_to_l1_act: int
    l1_to_l2_act: int
    l2_to_l1_wgt: int
    dma_transfers: int
    macs: int
    cycles: float
    double_buffered: bool = False  # the input copy of tile i+1 overlaps the compute of tile i
    # dw_pw only: DW channels per DW channel tile (the channel-staged variant, see
    # ``plan_dw_pw_staged``); 0: the DW reads all its input channels of a row tile at once
    dw_channels: int = 0
    pipelined: str = ""  # label of the double-buffered (software-pipelined) loop

    @property
    def l1_bytes(self) -> int:
        return sum(b.bytes for b in self.buffers)

    def tile(self) -> dict:
        """The tile (report.json's ``tile``)."""
        d = {"rows": self.rows, "channels": self.channels, "row_tiles": self.row_tiles,
             "channel_tiles": self.channel_tiles, "double_buffered": self.double_buffered}
        if self.dw_channels:  # only the channel-staged variant says so (other reports unchanged)
            d["dw_channels"] = self.dw_channels
        return d

    def figures(self) -> dict:
        """The plan's own figures (report.json's ``plan``), which the IR tests compare with the
        counts read off the lowered kernel."""
        return {"l1_bytes": self.l1_bytes, "cycles": int(round(self.cycles)),
                L2_TO_L1_ACT: self.l2_to_l1_act, L1_TO_L2_ACT: self.l1_to_l2_act,
                L2_TO_L1_WGT: self.l2_to_l1_wgt, DMA_TRANSFERS: self.dma_transfers}

    def describe(self) -> str:
        """The tile in words, for messages."""
        dw = f", DW {self.dw_channels} channel(s) at a time" if self.dw_channels else ""
        return f"{self.rows} row(s) x {self.channels} channel(s){dw}"


def plan_from(kind: str, rows: int, channels: int, loops, buffers, macs: int, cycles,
              pipelined: str = "", dw_channels: int = 0) -> TilePlan:
    """The TilePlan of declared ``buffers`` staged in the loop nest ``loops`` (outermost
    first, (label, trips)). ``cycles``: the cost model, called with the plan's traffic
    (act_in, act_out, wgt, transfers); ``pipelined``: the label of the double-buffered loop
    ("" if none)."""
    trips = loop_trips(loops)
    bufs = tuple(b.resolved(trips) for b in buffers)
    counts = dict(loops)
    traffic = (moved_by(bufs, INPUT), moved_by(bufs, OUTPUT), moved_by(bufs, WEIGHT),
               sum(b.transfers for b in bufs))
    return TilePlan(kind, rows, channels, counts.get("rows", 1), counts.get("channels", 1),
                    bufs, *traffic, macs, cycles(*traffic), bool(pipelined), dw_channels,
                    pipelined)


def input_copies(hw: Gap8Target, trips: int) -> int:
    """Versions of the input tile in L1: two when the DMA can fill the next while the cores
    use this one (and there is a next)."""
    return 2 if hw.double_buffering and trips > 1 else 1


def candidates(n: int):
    """Tile sizes for an extent ``n``: its divisors, largest first. Equal tiles keep every
    buffer region of the IR fixed, so TVM compacts each L1 buffer to exactly one tile and the
    IR has no edge-tile predicates (a ragged last tile would make the compaction give up and
    allocate the whole tensor)."""
    return [d for d in range(n, 0, -1) if n % d == 0]


def halo_rows(rows, stride, k, h):
    """Rows of the (padded) input one tile of ``rows`` output rows reads, halo included."""
    return min(h, (rows - 1) * stride + k)


def padded(spec_hw, padding, out_w=None, stride=1, k=1):
    """(rows, columns) of the padded input; columns limited to those the output reads."""
    h, w = spec_hw
    t, l, b, r = padding
    wp = w + l + r
    if out_w is not None:
        wp = min(wp, (out_w - 1) * stride + k)
    return h + t + b, wp


def plan_dw_pw(spec, hw: Gap8Target, rows: int, channels: int) -> TilePlan:
    _, c, h, w = spec.in_shape
    _, o, oh, ow = spec.out_shape
    k, s = spec.first.kernel, spec.first.stride
    wt = spec.weight_dtype
    rt, ct = math.ceil(oh / rows), math.ceil(o / channels)
    db = input_copies(hw, rt)  # pipelined loop: the row tiles
    hp, wp = padded((h, w), spec.first.padding, ow, s, k)
    in_rows = halo_rows(rows, s, k, hp)
    bufs = (
        L1Buffer("x", "input", c * in_rows * wp, spec.dtype, db),
        L1Buffer("dw_out", "intermediate", rows * ow * c, spec.mid_dtype),
        L1Buffer("pw_out", "output", channels * rows * ow, spec.out_dtype,
                 db if ct == 1 else 1),
        L1Buffer("w_dw", "weight", c * k * k, wt),
        L1Buffer("w_pw", "weight", channels * c, wt),
        L1Buffer("params", "weight", _params(spec, channels, o, rt, ct)[0], "uint8"),
    )
    e, we = dtype_bytes(spec.dtype), dtype_bytes(wt)
    # bytes actually moved: input rows with halo per row tile (clamped at the borders)
    act_in = sum(c * w * e * (min(h, r0 * s + (min(rows, oh - r0) - 1) * s + k - spec.first.padding[0])
                              - max(0, r0 * s - spec.first.padding[0]))
                 for r0 in range(0, oh, rows))
    act_out = o * oh * ow * dtype_bytes(spec.out_dtype)
    _, pmoved, ptransfers = _params(spec, channels, o, rt, ct)
    wgt = c * k * k * we + pmoved + (o * c * we) * (rt if ct > 1 else 1)
    # input per row tile, output per tile, w_dw once, w_pw once or per tile, params
    transfers = rt + rt * ct + 1 + (rt * ct if ct > 1 else 1) + ptransfers
    compute = rt * (hw.conv_cycles(c, c, rows, ow, k, c)
                    + ct * hw.conv_cycles(c, channels, rows, ow, 1))
    return _finish(spec, hw, rows, channels, rt, ct, bufs, act_in, act_out, wgt, transfers,
                   db == 2, compute)


def plan_dw_pw_staged(spec, hw: Gap8Target, rows: int, channels: int,
                      dw_channels: int) -> TilePlan:
    """The channel-staged DW->PW variant, for layers too wide for ``plan_dw_pw``: per row
    tile, the DW runs over DW channel tiles of ``dw_channels`` (its input rows with halo and its
    weights staged per channel tile, double-buffered along that loop) into the row tile's
    full-channel intermediate in L1; then the PW runs over output-channel tiles of
    ``channels`` reading the whole intermediate (its weights staged per output-channel tile,
    so re-fetched for every row tile when there is more than one).

    The output tile is single-buffered: double buffering it would need the row loop pipelined
    around the already pipelined DW channel loop (see ``fused.schedule_dw_pw``)."""
    _, c, h, w = spec.in_shape
    _, o, oh, ow = spec.out_shape
    k, s = spec.first.kernel, spec.first.stride
    wt = spec.weight_dtype
    rt, ct, dt = math.ceil(oh / rows), math.ceil(o / channels), math.ceil(c / dw_channels)
    db = input_copies(hw, dt)  # pipelined loop: the DW channel tiles of a row tile
    hp, wp = padded((h, w), spec.first.padding, ow, s, k)
    in_rows = halo_rows(rows, s, k, hp)
    bufs = (
        L1Buffer("x", "input", dw_channels * in_rows * wp, spec.dtype, db),
        L1Buffer("dw_out", "intermediate", rows * ow * c, spec.mid_dtype),
        L1Buffer("pw_out", "output", channels * rows * ow, spec.out_dtype),
        L1Buffer("w_dw", "weight", dw_channels * k * k, wt, db),
        L1Buffer("w_pw", "weight", channels * c, wt),
        L1Buffer("params", "weight", _params(spec, channels, o, rt, ct)[0], "uint8"),
    )
    e, we = dtype_bytes(spec.dtype), dtype_bytes(wt)
    act_in = rows_moved(c, w, e, rows, oh, h, s, k, spec.first.padding[0])
    act_out = o * oh * ow * dtype_bytes(spec.out_dtype)
    _, pmoved, ptransfers = _params(spec, channels, o, rt, ct)
    # w_dw per (row tile, DW channel tile): all of it once per row tile; w_pw as plan_dw_pw
    wgt = rt * c * k * k * we + pmoved + (o * c * we) * (rt if ct > 1 else 1)
    # input and w_dw per (row, DW channel) tile, output per tile, w_pw once or per tile
    transfers = 2 * rt * dt + rt * ct + (rt * ct if ct > 1 else 1) + ptransfers
    compute = rt * (dt * hw.dw_cycles(dw_channels, rows, ow, k)
                    + ct * hw.conv_cycles(c, channels, rows, ow, 1))
    return _finish(spec, hw, rows, channels, rt, ct, bufs, act_in, act_out, wgt, transfers,
                   db == 2, compute, overlap=(act_in, dt), dw_channels=dw_channels)


def plan_pw_dw(spec, hw: Gap8Target, rows: int, channels: int) -> TilePlan:
    _, c, h, w = spec.in_shape
    _, hid, oh, ow = spec.out_shape
    k, s = spec.second.kernel, spec.second.stride
    wt = spec.weight_dtype
    rt, ct = math.ceil(oh / rows), math.ceil(hid / channels)
    db = input_copies(hw, rt)
    hp, wp = padded((h, w), spec.second.padding, ow, s, k)
    in_rows = halo_rows(rows, s, k, hp)
    bufs = (
        L1Buffer("x", "input", c * in_rows * wp, spec.dtype, db),
        L1Buffer("pw_out", "intermediate", channels * in_rows * wp, spec.mid_dtype),
        L1Buffer("dw_out", "output", channels * rows * ow, spec.out_dtype, db if ct == 1 else 1),
        L1Buffer("w_pw", "weight", channels * c, wt),
        L1Buffer("w_dw", "weight", channels * k * k, wt),
        L1Buffer("params", "weight", _params(spec, channels, hid, rt, ct)[0], "uint8"),
    )
    e, we = dtype_bytes(spec.dtype), dtype_bytes(wt)
    pad_t = spec.second.padding[0]
    act_in = sum(c * w * e * (min(h, r0 * s + (min(rows, oh - r0) - 1) * s + k - pad_t)
                              - max(0, r0 * s - pad_t))
                 for r0 in range(0, oh, rows))
    act_out = hid * oh * ow * dtype_bytes(spec.out_dtype)
    _, pmoved, ptransfers = _params(spec, channels, hid, rt, ct)
    wgt = pmoved + (hid * c + hid * k * k) * we * (rt if ct > 1 else 1)
    transfers = rt + rt * ct + ptransfers + (2 * rt * ct if ct > 1 else 2)
    # the PW runs over the padded tile (halo rows recomputed), then the DW
    compute = rt * ct * (hw.conv_cycles(c, channels, in_rows, wp, 1)
                         + hw.conv_cycles(channels, channels, rows, ow, k, channels))
    return _finish(spec, hw, rows, channels, rt, ct, bufs, act_in, act_out, wgt, transfers,
                   db == 2, compute)


def rows_moved(c, w, e, rows, oh, h, s, k, pad_t):
    """Bytes of input rows (halo included, clamped at the borders) over all row tiles."""
    return sum(c * w * e * (min(h, r0 * s + (min(rows, oh - r0) - 1) * s + k - pad_t)
                            - max(0, r0 * s - pad_t))
               for r0 in range(0, oh, rows))


def _finish(spec, hw, rows, channels, rt, ct, bufs, act_in, act_out, wgt, transfers,
            double_buffered, compute, overlap=None, dw_channels=0):
    """``compute``: the kernel's compute cycles over all its tiles (the target's kernel
    models, so small tiles pay their overheads). ``overlap``: (bytes, trips) the pipelined
    loop's copies move and its trip count; default: the activations in and out over all
    tiles."""
    macs = spec.macs()
    if spec.kind == "pw_dw":  # the PW recomputes the halo rows of every row tile
        _, c, h, w = spec.in_shape
        k, s = spec.second.kernel, spec.second.stride
        ow = spec.out_shape[3]
        hp, wp = padded((h, w), spec.second.padding, ow, s, k)
        # the PW runs over the padded tile: halo rows recomputed, padding ring included
        macs += (rt * halo_rows(rows, s, k, hp) * wp - h * w) * c * spec.first.out_channels
    dma = (act_in + act_out + wgt) / hw.dma_bytes_per_cycle
    if double_buffered:  # all but the first load and the last store hide behind compute
        moved, tiles = overlap or (act_in + act_out, rt * ct)
        tiles = max(1, tiles)
        hidden = min(moved / hw.dma_bytes_per_cycle * (tiles - 1) / tiles, compute)
        dma -= hidden
    cycles = compute + dma + transfers * hw.dma_setup_cycles
    return TilePlan(spec.kind, rows, channels, rt, ct, bufs, act_in, act_out, wgt, transfers,
                    macs, cycles, double_buffered, dw_channels)


def plan_fused(spec, hw: Gap8Target, layer: str = "?") -> TilePlan:
    """The cheapest plan for a fused kernel that fits ``hw.l1_budget``; a DW->PW kernel also
    tries the channel-staged variant (``plan_dw_pw_staged``) at every DW channel tile that
    divides the channels (all of them at once is ``plan_dw_pw``)."""
    if spec.kind == "pw_dw":
        return choose_plan(spec, hw, layer, plan_pw_dw)
    dw_tiles = candidates(spec.in_shape[1])[1:]

    def plans(variant, rows, channels):
        yield plan_dw_pw(spec, variant, rows, channels)
        for dc in dw_tiles:
            yield plan_dw_pw_staged(spec, variant, rows, channels, dc)

    return _search(spec, hw, layer, plans)


def choose_plan(spec, hw: Gap8Target, layer, make) -> TilePlan:
    """Search rows x channels tiles: minimum modelled cycles among the plans that fit the L1
    budget (ties: the bigger tile). TilingError naming the layer if none fits."""
    return _search(spec, hw, layer,
                   lambda variant, rows, channels: [make(spec, variant, rows, channels)])


def _search(spec, hw: Gap8Target, layer, plans) -> TilePlan:
    """``plans(hw variant, rows, channels)``: the plans of one rows x channels tile."""
    shape = spec.out_shape
    chan_extent, oh = (shape[1], shape[2]) if len(shape) == 4 else (shape[-1], 1)
    best, smallest = None, None
    # double buffering is preferred by the cost model but optional: a tile that only fits
    # single-buffered still beats no tile at all
    variants = [hw, hw.replace(double_buffering=False)] if hw.double_buffering else [hw]

    def key(p):  # ties: the bigger tile, double-buffered, all DW channels at once or fewer
        return (p.cycles, -p.rows * p.channels, not p.double_buffered, bool(p.dw_channels),
                -p.dw_channels)

    for rows in candidates(oh):
        for channels in candidates(chan_extent):
            for variant in variants:
                for p in plans(variant, rows, channels):
                    if smallest is None or p.l1_bytes < smallest.l1_bytes:
                        smallest = p
                    if p.l1_bytes <= hw.l1_budget and (best is None or key(p) < key(best)):
                        best = p
    if best is None:
        reason = (f"its smallest tile ({smallest.describe()}) needs {smallest.l1_bytes} B, "
                  f"the L1 budget is {hw.l1_budget} B")
        err = TilingError(f"layer {layer} ({spec.kind}) cannot fit L1: {reason}")
        err.reason = reason
        raise err
    return best


def fused_fit_problem(spec, hw: Gap8Target) -> str | None:
    """Why a fused kernel fits no tile of L1 (the bytes its smallest tile needs and the
    budget), or None when some tile fits: the fusion passes refuse such a pair."""
    try:
        plan_fused(spec, hw)
    except TilingError as err:
        return f"the fused kernel cannot fit L1 on {hw.name}: {err.reason}"
    return None
