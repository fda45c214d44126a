"""L1 tile plans: what lives in L1, how big, how much moves, declared once per family.

Each kernel family's tiling declares, per candidate tile, its L1 buffers (``L1Buffer``: role,
the loop it is staged at, elements per tile, copies); ``plan_from`` turns that into a
``TilePlan`` (footprint, traffic and transfers derived from the declaration), the family's
schedule stages exactly those buffers (``staging.stage_buffers``), and the tests check the
lowered IR against the plan. Buffers match what TVM's buffer compaction leaves: the input tile
with its halo, the intermediate, the output tile, the weight tiles; tiles in the pipelined loop
are counted twice when the target double-buffers (the DMA fills one while the cores use the
other).

Objective: minimum modelled cycles = compute (the target's per-kernel cycle models, evaluated
per tile, so small tiles pay their loop overheads) + DMA not hidden by double buffering +
per-transfer set-up, over the tiles that fit the L1 budget; ties go to the bigger tile.
Deterministic.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from ..cost import calibrated, cycles
from ..errors import TilingError
from ..target import Gap8Target
from ..ir.vocab import (DMA_TRANSFERS, INPUT, INTERMEDIATE, L1_TO_L2_ACT, L2_TO_L1_ACT,
                        L2_TO_L1_TRANSPOSED, L2_TO_L1_WGT, OUTPUT, WEIGHT)


def dtype_bytes(dtype: str) -> int:
    return {"float32": 4, "int32": 4, "int64": 8, "int8": 1, "uint8": 1, "int16": 2,
            "float16": 2}[dtype]


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
    transposing: bool = False  # an input copied L2->L1 transposing its layout (HWC <-> CHW)
    planes: int = 1  # channels per transfer of a transposing copy (one 2-D copy per channel)

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


def output_bytes(spec) -> int:
    """Bytes of a kernel's whole output: what its output tiles move, ragged last tiles too."""
    return math.prod(spec.out_shape) * dtype_bytes(spec.out_dtype)


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
    # ``fused.dw_pw_staged_tiling``); 0: the DW reads all its input channels of a row tile at once
    dw_channels: int = 0
    pipelined: str = ""  # label of the double-buffered (software-pipelined) loop
    # output columns per tile when the columns are tiled (0: every tile spans the whole width;
    # see ``search``: columns are tiled only when no whole-width tile fits)
    cols: int = 0
    col_tiles: int = 1
    # input channels per tile of a conv/PW accumulating partial sums in L1 (0: all at once)
    in_channels: int = 0
    l2_to_l1_transposed: int = 0  # the bytes of l2_to_l1_act copied transposing the layout

    @property
    def l1_bytes(self) -> int:
        return sum(b.bytes for b in self.buffers)

    def tile(self) -> dict:
        """The tile (report.json's ``tile``)."""
        d = {"rows": self.rows, "channels": self.channels, "row_tiles": self.row_tiles,
             "channel_tiles": self.channel_tiles, "double_buffered": self.double_buffered}
        if self.dw_channels:  # only the channel-staged variant says so (other reports unchanged)
            d["dw_channels"] = self.dw_channels
        if self.cols:  # only column-tiled kernels say so (other reports unchanged)
            d.update(cols=self.cols, col_tiles=self.col_tiles)
        if self.in_channels:
            d["in_channels"] = self.in_channels
        return d

    @property
    def weight_tile_bytes(self) -> int:
        """The largest weight buffer of one tile (one version): the most one weight copy moves."""
        return max((b.elements * dtype_bytes(b.dtype) for b in self.buffers if b.role == WEIGHT),
                   default=0)

    def figures(self) -> dict:
        """The plan's own figures (report.json's ``plan``), which the IR tests compare with the
        counts read off the lowered kernel."""
        return {"l1_bytes": self.l1_bytes, "cycles": int(round(self.cycles)),
                L2_TO_L1_ACT: self.l2_to_l1_act, L1_TO_L2_ACT: self.l1_to_l2_act,
                L2_TO_L1_WGT: self.l2_to_l1_wgt, DMA_TRANSFERS: self.dma_transfers,
                L2_TO_L1_TRANSPOSED: self.l2_to_l1_transposed}

    def describe(self) -> str:
        """The tile in words, for messages."""
        dw = f", DW {self.dw_channels} channel(s) at a time" if self.dw_channels else ""
        cols = f"{self.cols} column(s) x " if self.cols else ""
        ic = f" x {self.in_channels} input channel(s)" if self.in_channels else ""
        return f"{self.rows} row(s) x {cols}{self.channels} channel(s){ic}{dw}"


def plan_from(kind: str, rows: int, channels: int, loops, buffers, macs: int, cost,
              pipelined: str = "", dw_channels: int = 0, cols: int = 0,
              in_channels: int = 0) -> TilePlan:
    """The TilePlan of declared ``buffers`` staged in ``loops``: a nest given outermost first
    as (label, trip count) pairs, or {label: executions} (for sibling loops). ``cost``: the
    cost model, called with the plan's traffic (act_in, act_out, wgt, transfers), or a
    ``LayerCost`` (compute cycles; the DMA costed per transfer from the buffers);
    ``pipelined``: the label of the double-buffered loop ("" if none); ``cols``: output
    columns per tile when the ``cols`` loop (inside ``rows``) tiles them (0: not tiled)."""
    trips = loops if isinstance(loops, dict) else loop_trips(loops)
    bufs = tuple(b.resolved(trips) for b in buffers)
    if isinstance(cost, LayerCost):
        if is_float_kernel(bufs):  # no FPU on GAP8's cluster: soft-float compute
            cost = cost.soft_float(macs, moved_by(bufs, OUTPUT) // 4)
        cost = cost.bind(bufs, trips, pipelined)
    rt = trips.get("rows", 1)
    pixel_tiles = trips.get("cols", rt)
    traffic = (moved_by(bufs, INPUT), moved_by(bufs, OUTPUT), moved_by(bufs, WEIGHT),
               sum(b.transfers for b in bufs))
    transposed = sum(b.moved for b in bufs if b.transposing)
    return TilePlan(kind, rows, channels, rt, trips.get("channels", pixel_tiles) // pixel_tiles,
                    bufs, *traffic, macs, cost(*traffic), bool(pipelined), dw_channels,
                    pipelined, cols, pixel_tiles // rt if cols else 1, in_channels, transposed)


@dataclass(frozen=True)
class LayerCost:
    """A kernel's modelled cycles from its compute cycles and its declared buffers: every copy
    a DMA transfer of its kind (``transposing`` for a transposing input copy, else
    ``contiguous``: MATCH's +1 cycle per row of a 2-D copy is left out), the copies at the
    pipelined loop overlapping compute under double buffering, per-tile and per-layer
    overheads (``cycles.kernel_cycles``, the one home of the model). When the weights stream
    from L3 (the network's placement put them there: ``hw.weights_memory``), every weight copy is
    preceded by its L3->L2 copy (kind ``l3``, the same bytes), which overlaps compute only where
    its L2->L1 copy does: at the pipelined (double-buffered) loop; so are input copies when the
    layer's inputs are in L3 (``hw.inputs_memory``), and output copies are followed by their
    L2->L3 copy when its output is (``hw.output_memory``; the same kind: the HyperBus is one
    bus either way)."""

    hw: Gap8Target
    compute: float

    def soft_float(self, macs: int, out_elements: int) -> "LayerCost":
        """This cost with the compute of a float kernel: soft-float MACs and adds
        (``cycles.soft_float``), whatever the int8 formula said."""
        return LayerCost(self.hw, cycles.soft_float(self.hw.compute, self.hw.cores, macs,
                                                    out_elements))

    def bind(self, bufs, trips: dict, pipelined: str):
        records = [_transfer(b) for b in bufs if b.transfers]
        overlap = [_transfer(b) for b in bufs if b.transfers and b.at == pipelined] \
            if pipelined else []
        l3 = [(b, _transfer(b, "l3")) for b in bufs
              if b.transfers and b.role in l3_roles(self.hw)]
        records += [r for _, r in l3]
        overlap += [r for b, r in l3 if pipelined and b.at == pipelined]
        overlap = (overlap, trips[pipelined]) if pipelined else ([], 1)
        tiles = max(trips.values())
        return lambda *_: cycles.kernel_cycles(self.hw, self.compute, records, tiles, overlap)


def l3_roles(hw: Gap8Target) -> tuple:
    """The buffer roles whose copies cross L3 <-> L2 too, where the placement put the layer's
    weights, inputs and output (``hw.*_memory``)."""
    memories = ((WEIGHT, hw.weights_memory), (INPUT, hw.inputs_memory),
                (OUTPUT, hw.output_memory))
    return tuple(role for role, memory in memories if memory == "L3")


def is_float_kernel(bufs) -> bool:
    """A kernel computing in float: its output (or any) L1 buffer holds floats."""
    return any(str(b.dtype).startswith("float") for b in bufs)


def _transfer(b: L1Buffer, kind: str = "") -> tuple:
    """(bytes per transfer, kind, rows, channels, count) of a resolved buffer's copies."""
    kind = kind or ("transposing" if b.transposing else "contiguous")
    return (b.moved / b.transfers, kind, 1, b.planes, b.transfers)


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


def rows_moved(c, w, e, rows, oh, h, s, k, pad_t):
    """Bytes of input rows (halo included, clamped at the borders) over all row tiles."""
    return sum(c * w * e * (min(h, r0 * s + (min(rows, oh - r0) - 1) * s + k - pad_t)
                            - max(0, r0 * s - pad_t))
               for r0 in range(0, oh, rows))


def span(out: int, tile: int, n: int, s: int, k: int, pad: int) -> int:
    """Input positions (of ``n``, padding excluded, halo included) that the tiles of ``tile``
    outputs (of ``out``) read along one axis, summed over the tiles."""
    return rows_moved(1, 1, 1, tile, out, n, s, k, pad)


def choose_plan(spec, hw: Gap8Target, layer, make, tile_cols: bool = False,
                tile_in: int = 0) -> TilePlan:
    """Search rows x channels tiles (and, ``tile_cols``, columns when no whole-width tile
    fits; ``tile_in``, input channels of that extent when nothing else fits): minimum
    modelled cycles among the plans that fit the L1 budget (ties: the bigger tile).
    TilingError naming the layer if none fits."""
    def plans(variant, rows, channels, *extra):
        return [make(spec, variant, rows, channels, *extra) if extra
                else make(spec, variant, rows, channels)]

    return search(spec, hw, layer, plans, tile_cols, tile_in)


def _costed(plans, spec, hw: Gap8Target):
    """``plans`` priced by the target's cycle model: ``gvsoc`` (default), the model fitted to
    GVSOC measurements of our kernels (cost/calibrated.py), when the package ships a fit;
    ``analytical``, the per-family formulas of cost/cycles.py the plans carry."""
    cal = calibrated.SHIPPED
    if hw.cycle_model != "gvsoc" or cal is None:
        return plans
    return lambda *args: [replace(p, cycles=calibrated.plan_cycles(cal, spec, p, hw.compute))
                          for p in plans(*args)]


def _key(p):  # ties: the bigger tile, double-buffered, all DW channels at once or fewer
    return (p.cycles, -p.rows * p.channels * (p.cols or 1) * p.col_tiles,
            not p.double_buffered, bool(p.dw_channels), -p.dw_channels)


def search(spec, hw: Gap8Target, layer, plans, tile_cols: bool = False,
           tile_in: int = 0) -> TilePlan:
    """``plans(hw variant, rows, channels[, cols[, in_channels]])``: the plans of one tile.
    Whole-width tiles first (rows x channels); only if none of them fits, and ``tile_cols``,
    column tiles too (every divisor of the output width below it); only if still none fits,
    and ``tile_in`` (the input channels), input-channel tiles (every divisor below it) with
    or without column tiles. Bounded, deterministic passes that leave every layer that fitted
    before exactly as it was."""
    plans = _costed(plans, spec, hw)
    shape = spec.out_shape
    chan_extent, oh = (shape[1], shape[2]) if len(shape) == 4 else (shape[-1], 1)
    # double buffering is preferred by the cost model but optional: a tile that only fits
    # single-buffered still beats no tile at all
    variants = [hw, hw.replace(double_buffering=False)] if hw.double_buffering else [hw]
    col_cands = candidates(shape[3])[1:] if tile_cols else []
    passes = [[()], [(c,) for c in col_cands],
              [(c, ic) for ic in candidates(tile_in)[1:] for c in [0, *col_cands]]]
    best, smallest = None, None
    for col_tiles in passes:
        if best is not None:
            break
        for cols, rows, channels, variant in itertools.product(
                col_tiles, candidates(oh), candidates(chan_extent), variants):
            for p in plans(variant, rows, channels, *cols):
                if smallest is None or p.l1_bytes < smallest.l1_bytes:
                    smallest = p
                if p.l1_bytes <= hw.l1_budget and (best is None or _key(p) < _key(best)):
                    best = p
    if best is None:
        reason = (TilingError.NEEDS.format(tile=smallest.describe(), needed=smallest.l1_bytes)
                  + hw.describe_l1_budget())
        err = TilingError(f"layer {layer} ({spec.kind}) cannot fit L1: {reason}")
        err.reason = reason
        raise err
    return best



