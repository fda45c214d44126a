"""``pw_dw_pw``: a whole inverted residual as one L1-resident kernel: pointwise expansion
(+epilogue) -> depthwise (+epilogue) -> pointwise projection (+epilogue) [-> the residual Add
with the block's input (+ReLU/Clip)], float or int8.

Tiled over output rows (and, when the projection's weights do not fit at once, its output
channels): per row tile, the input rows the DW needs (halo included) are copied L2->L1 once;
the expansion PW computes the expanded rows of that tile (halo rows recomputed per tile, as
``pw_dw`` does: see ``docs/fusion-and-layouts.md`` for why recompute and not a row ring) into a
CHW intermediate in L1; the DW writes an HWC intermediate in L1 (the projection reduces over
each pixel's channels); the projection writes the output tile, adding the block's input from the
input tile already in L1. Neither intermediate leaves L1.

Formed before the pairs, and only when the model says so (``chain_problem``): for every layout
of its input and output tensors, the chain's modelled cycles must beat every way the planner
could run the block without it (unfused, ``pw`` + ``dw_pw``, ``pw_dw`` + ``pw``, each with the
residual Add as its own kernel), each of those costed at its cheapest tile layouts. Otherwise
it is refused with both figures, and the pairs form as before.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from tvm import relax, s_tir, te, tirx

from ..cost import calibrated, cycles
from ..errors import TilingError, UnsupportedError
from ..ir.box import inside
from ..ir.vocab import (CHW, HALO_ANN, HWC, INPUT, INTERMEDIATE, OUTPUT, RING_ANN, ROLE_ANN,
                        SPLIT_ANN, WEIGHT)
from ..target import GAP8
from . import layout, patterns
from .composite import (DEQUANTIZE, QUANTIZE, CompositeReader, QuantAct, activation_range,
                        clip_bounds, output_dtype)
from .conv import CHANNEL_BLOCK, ConvKernelSpec, tile_pixels
from .eltwise import AddKernelSpec, add_multipliers, add_value
from .family import KernelFamily
from .fused import DEFAULT_LAYOUTS, FusedKernelSpec, channel_placeholders, dw_channel_by_channel
from .geometry import ConvGeom, conv_geom
from .layout import KernelLayouts
from .requant import DEFAULT_REQUANT, activation_bounds
from .spec import TypedOperands
from .stages import Kernel, read_kernel, spec_fields
from .staging import (Operand, finish_staged, padded_input, scalar_accumulator, stage_buffers,
                      stage_intermediate)
from .tiling import (ROOT, L1Buffer, LayerCost, choose_plan, dtype_bytes, halo_rows, input_copies,
                     output_bytes, padded, param_buffers, plan_from, span)

KIND = "pw_dw_pw"
#: the DW reads its input plane by plane (CHW), the projection each pixel's channels (HWC)
EXPANDED, DEPTHWISE_OUT = CHW, HWC


@dataclass(frozen=True)
class ChainKernelSpec(TypedOperands):
    """Everything needed to build one chain kernel (``layouts.mid``: the DW output's layout,
    always HWC; the expanded tensor is CHW)."""

    in_shape: tuple  # (1, C, H, W)
    expand: ConvGeom
    dw: ConvGeom
    project: ConvGeom
    conv_epilogues: tuple  # the Epilogue of the expansion, the depthwise, the projection
    channel_shapes: tuple = ()
    channel_dtypes: tuple = ()
    dtype: str = "float32"
    in_zp: int = 0
    mid_zps: tuple = (0, 0)  # zero points of the expanded and the depthwise output (int8)
    w_dtype: str = ""
    residual: AddKernelSpec | None = None  # the Add with the block's input, when there is one
    input_first: bool = False  # the Add reads the block's input as its first operand
    layouts: KernelLayouts = KernelLayouts(mid=DEPTHWISE_OUT)
    kind: str = KIND

    def __post_init__(self):
        if self.layouts.mid != DEPTHWISE_OUT:  # the planner's layouts name no intermediate
            object.__setattr__(self, "layouts", replace(self.layouts, mid=DEPTHWISE_OUT))

    @property
    def epilogues(self) -> tuple:
        return self.conv_epilogues

    @property
    def hidden(self) -> int:
        return self.expand.out_channels

    def mid_dtype(self, i: int) -> str:
        return self.conv_epilogues[i].out_dtype or self.dtype

    @property
    def out_dtype(self) -> str:
        return self.residual.out_dtype if self.residual else self.mid_dtype(2)

    @property
    def out_shape(self) -> tuple:
        _, _, h, w = self.in_shape
        return (1, self.project.out_channels, *self.dw.out_hw(h, w))

    def describe_epilogues(self) -> list:
        names = super().describe_epilogues()
        return names + (["residual add"] if self.residual else [])

    def macs(self) -> int:
        _, c, h, w = self.in_shape
        _, o, oh, ow = self.out_shape
        hid = self.hidden
        return hid * c * h * w + hid * oh * ow * self.dw.kernel ** 2 + o * hid * oh * ow

    # -- the block without the chain -----------------------------------------------------

    def _part(self, stages, in_shape, in_zp):
        """(spec fields, epilogues reindexed to their own channel tensors, input shape) of the
        convs ``stages`` (indices 0..2) as kernels of their own."""
        used = sorted(set().union(*(self.conv_epilogues[i].channels() for i in stages)))
        where = {k: i for i, k in enumerate(used)}
        return dict(channel_shapes=tuple(self.channel_shapes[k] for k in used),
                    channel_dtypes=tuple(self.channel_dtype(k) for k in used),
                    dtype=self.dtype if not stages[0] else self.mid_dtype(stages[0] - 1),
                    in_zp=in_zp, w_dtype=self.w_dtype, layouts=None), \
            [self.conv_epilogues[i].reindexed(where) for i in stages], in_shape

    def shapes(self) -> tuple:
        """The input shapes of the three convs."""
        _, c, h, w = self.in_shape
        return self.in_shape, (1, self.hidden, h, w), (1, self.hidden, *self.dw.out_hw(h, w))

    def convs(self) -> tuple:
        """The three convs as standalone kernels (intermediates in L2)."""
        geoms, zps = (self.expand, self.dw, self.project), (self.in_zp, *self.mid_zps)
        out = []
        for i, (geom, shape, zp) in enumerate(zip(geoms, self.shapes(), zps)):
            fields, (epi,), _ = self._part((i,), shape, zp)
            fields.pop("layouts")
            groups = shape[1] if i == 1 else 1
            out.append(ConvKernelSpec(shape, geom, groups, epi, kind=("pw", "dw", "pw")[i],
                                      **fields))
        return tuple(out)

    def pairs(self) -> tuple:
        """(pw_dw of the expansion and the DW, dw_pw of the DW and the projection)."""
        out = []
        for first, kind in ((0, "pw_dw"), (1, "dw_pw")):
            fields, epis, shape = self._part((first, first + 1), self.shapes()[first],
                                                (self.in_zp, *self.mid_zps)[first])
            fields.pop("layouts")
            geoms = (self.expand, self.dw, self.project)[first:first + 2]
            out.append(FusedKernelSpec(kind, shape, *geoms, *epis, mid_zp=self.mid_zps[first],
                                       **fields))
        return tuple(out)

    def work_parts(self, plan=None) -> list:
        """(part, layout of the tile it reads, MACs it recomputes) for ``cost/work.py``: the
        three convs and the residual Add, the expansion's recomputed halo under ``plan``."""
        pw, dw, proj = self.convs()
        recomputed = plan.macs - self.macs() if plan is not None else 0
        parts = [(pw, self.layouts.tile, recomputed), (dw, EXPANDED, 0),
                 (proj, DEPTHWISE_OUT, 0)]
        return parts + ([(self.residual, self.layouts.out, 0)] if self.residual else [])

    def fill_elements(self, plan=None) -> int:
        """Elements of the expanded tile the cores store besides its expansion per layer
        under ``plan``, for ``cost/work.py``: each row tile's padding ring, set to the zero
        point before its interior is computed (``schedule_chain``; the C stores the ring only),
        and the kept halo rows moved up (``kept_halo_rows``; a load and a store: two)."""
        if plan is None:
            return 0
        h, w = self.in_shape[2:]
        t, l = self.dw.padding[:2]
        sh, k = self.dw.sh, self.dw.kernel
        hp, wp = padded((h, w), self.dw.padding, self.out_shape[3], self.dw.sw, k)
        tile_rows = halo_rows(plan.rows, sh, k, hp)
        image_cols = min(wp, l + w) - l
        ring = sum(wp if y < t or y >= t + h else wp - image_cols
                   for first in range(0, plan.row_tiles * plan.rows * sh, plan.rows * sh)
                   for y in range(first, min(first + tile_rows, hp)))
        moved = 2 * kept_halo_rows(self, plan.row_tiles) * wp * (plan.row_tiles - 1)
        return self.hidden * (ring + moved)

    def expanded_image_rows(self, rows: int, row_tiles: int) -> list:
        """Image rows the expansion computes in each row tile of ``rows`` output rows: the
        rows the tile reads, but those kept from the tile before (``kept_halo_rows``)."""
        h = self.in_shape[2]
        t, sh, k = self.dw.padding[0], self.dw.sh, self.dw.kernel
        hp = padded((h, 1), self.dw.padding)[0]
        kept, step, tile_rows = kept_halo_rows(self, row_tiles), rows * sh, \
            halo_rows(rows, sh, k, hp)
        out = []
        for r in range(row_tiles):
            first, end = r * step + (kept if r else 0), min(r * step + tile_rows, hp)
            out.append(max(0, min(end, t + h) - max(first, t)))
        return out

    def alternatives(self) -> dict:
        """{name: kernel specs} of every way to run the block without the chain."""
        add = (self.residual,) if self.residual else ()
        (pw, dw, proj), (pw_dw, dw_pw) = self.convs(), self.pairs()
        return {"unfused": (pw, dw, proj, *add), "pw + dw_pw": (pw, dw_pw, *add),
                "pw_dw + pw": (pw_dw, proj, *add)}


# -- TE compute and schedule --------------------------------------------------------------

def _expansion(spec, xp, w_pw, chans, hp, wp):
    """The expanded tensor over the DW's padded coordinates (ring: its zero point)."""
    _, c, h, w = spec.in_shape
    t, l = spec.dw.padding[:2]
    lay = spec.layouts
    xin, wop = Operand(spec.dtype), Operand(spec.weight_dtype)
    rc = te.reduce_axis((0, c), name="rc")
    # the MACs only inside the image (``acc`` over its h x w pixels): the padding ring of the
    # expanded tile is the zero point, computed by no MAC
    acc = layout.stage((spec.hidden, h, w),
                       lambda hc, i, j: te.sum(
                           xin.load(layout.element(xp, lay.tile, 0, rc, i + t, j + l))
                           * wop.load(w_pw[hc, rc, 0, 0]), axis=rc),
                       EXPANDED, "pw_acc")
    pad = tirx.const(spec.mid_zps[0] if spec.conv_epilogues[0].is_integer else 0,
                     spec.mid_dtype(0))
    return layout.stage(
        (spec.hidden, hp, wp),
        lambda hc, i, j: tirx.if_then_else(
            inside(i, j, t, l, h, w),
            spec.conv_epilogues[0].apply(
                layout.element(acc, EXPANDED, hc, i - t, j - l), hc, chans), pad),
        EXPANDED, "pw_out")


def _depthwise(spec, mid, w_dw, chans):
    _, _, oh, ow = spec.out_shape
    k, (sh, sw) = spec.dw.kernel, spec.dw.stride
    mid_in, wop = Operand(spec.mid_dtype(0)), Operand(spec.weight_dtype)
    rk = te.reduce_axis((0, k), name="rk")
    rl = te.reduce_axis((0, k), name="rl")
    acc = layout.stage((spec.hidden, oh, ow),
                       lambda hc, i, j: te.sum(
                           mid_in.load(layout.element(mid, EXPANDED, hc, i * sh + rk, j * sw + rl))
                           * wop.load(w_dw[hc, 0, rk, rl]), axis=[rk, rl]),
                       DEPTHWISE_OUT, "dw_acc")
    return layout.stage(
        (spec.hidden, oh, ow),
        lambda hc, i, j: spec.conv_epilogues[1].apply(
            layout.element(acc, DEPTHWISE_OUT, hc, i, j), hc, chans),
        DEPTHWISE_OUT, "dw_out")


def chain_compute(spec: ChainKernelSpec):
    """TE graph: x -> padded input tile -> expansion PW (CHW) -> DW (HWC) -> projection PW
    [-> + the input tile's element] -> output."""
    _, c, h, w = spec.in_shape
    hid, k = spec.hidden, spec.dw.kernel
    t, l, b, r = spec.dw.padding
    _, o, oh, ow = spec.out_shape
    lay = spec.layouts
    x = layout.placeholder(spec.in_shape, lay.source, spec.dtype, "x")
    w_pw = te.placeholder((hid, c, 1, 1), spec.weight_dtype, name="w_pw")
    w_dw = te.placeholder((hid, 1, k, k), spec.weight_dtype, name="w_dw")
    w_proj = te.placeholder((o, hid, 1, 1), spec.weight_dtype, name="w_proj")
    chans = channel_placeholders(spec)
    xp = padded_input(x, Operand(spec.dtype, spec.in_zp), spec.dw.padding, lay)
    mid = _expansion(spec, xp, w_pw, chans, h + t + b, w + l + r)
    dw = _depthwise(spec, mid, w_dw, chans)
    mid_in, wop = Operand(spec.mid_dtype(1)), Operand(spec.weight_dtype)
    rc = te.reduce_axis((0, hid), name="rh")
    acc = layout.stage((1, o, oh, ow),
                       lambda n, oc, i, j: te.sum(
                           mid_in.load(layout.element(dw, DEPTHWISE_OUT, rc, i, j))
                           * wop.load(w_proj[oc, rc, 0, 0]), axis=rc),
                       lay.out, "proj_acc")

    def out(n, oc, i, j):
        v = spec.conv_epilogues[2].apply(layout.element(acc, lay.out, n, oc, i, j), oc, chans)
        if spec.residual is None:
            return v
        xv = layout.element(xp, lay.tile, n, oc, i + t, j + l)  # the input tile, in L1
        return add_value(spec.residual, *((xv, v) if spec.input_first else (v, xv)))

    y = layout.stage((1, o, oh, ow), out, lay.out, "chain_out")
    return [x, w_pw, w_dw, w_proj, *chans, y]


def schedule_chain(spec: ChainKernelSpec, plan):
    """Loop nest: row tile { input rows+halo L2->L1; the expanded tile set to its zero point,
    expansion PW over its interior -> CHW intermediate (L1, halo rows recomputed); DW -> HWC intermediate (L1); channel tile { [projection weight slice
    L2->L1]; projection [+ residual] -> output tile (L1); output tile L1->L2 } }."""
    sch = s_tir.Schedule(te.create_prim_func(chain_compute(spec)))
    loops, j = tile_pixels(sch, sch.get_sblock("chain_out"), plan, spec.layouts.out,
                           CHANNEL_BLOCK, spec.hidden)
    scalar_accumulator(sch, sch.get_sblock("proj_acc"), j)
    stage_buffers(sch, plan, loops, (OUTPUT,))
    dw_out = sch.get_sblock("dw_out")  # consumers first
    stage_intermediate(sch, dw_out, loops["rows"])
    dw_channel_by_channel(sch, dw_out, loops["rows"], spec.layouts.mid)
    scalar_accumulator(sch, sch.get_sblock("dw_acc"), sch.get_loops(dw_out)[-1])
    pw_out = sch.get_sblock("pw_out")
    stage_intermediate(sch, pw_out, loops["rows"])
    _interior_only(sch, pw_out, spec)
    acc = sch.get_sblock("pw_acc")
    scalar_accumulator(sch, acc, _channel_blocks(sch, pw_out, spec, plan))
    return finish_staged(sch, plan, loops, (INPUT, WEIGHT))


def _interior_only(sch, pw_out, spec):
    """The expansion over the image's pixels only: its padded tile set to the zero point
    first (a block of its own, split over the cores), then the interior computed with no test
    per pixel (TVM's ``decompose_padding``; measured on GVSOC: MobileNetV2 x0.35 @96's chains
    6-12% faster each). The fill block carries the interior (``RING_ANN``): the C sets the
    ring around it only (the whole tile cost up to 18 k cycles a chain, measured)."""
    fill = sch.decompose_padding(pw_out, sch.get_loops(pw_out)[-3])
    for block in (fill, pw_out):
        sch.annotate(block, ROLE_ANN, INTERMEDIATE)
    h, w = spec.in_shape[2:]
    t, l = spec.dw.padding[:2]
    row, col = (layout.storage_axis(3, EXPANDED, axis) for axis in (1, 2))
    sch.annotate(fill, RING_ANN, [row, col, t, l, h, w])


def kept_halo_rows(spec: ChainKernelSpec, row_tiles: int) -> int:
    """Expanded rows each row tile after the first takes from the tile before it (moved up
    in L1, not recomputed): the DW's overlap ``k - stride`` when there are several row tiles
    and the expansion is computed in channel blocks (``_channel_blocks``), else 0 (every
    tile computes all its rows). One decision, read by the schedule and the tiling's cost."""
    if row_tiles < 2 or spec.hidden % CHANNEL_BLOCK:
        return 0
    return max(0, spec.dw.kernel - spec.dw.sh)


def _channel_blocks(sch, pw_out, spec, plan):
    """The expansion's (CHW) loops as (channel block, row x column chunk, columns, 4
    channels), as the standalone PW blocks its output channels: one pixel's 4 accumulators
    share each input word (``gap8_dot4_i8``). Every core runs the blocks; rows and column
    chunks are one loop, the one split over the cores (``gap8.split``), with as many chunks as
    make the rows a tile computes divide among them (13 rows x 8 chunks of 6 columns: 13 a
    core). The block index is then an outer loop's, so a block's requantization values sit at
    fixed offsets of one pointer (measured on GVSOC, MobileNetV2 x0.35 @96 all-chains:
    2,663,872 -> 2,609,303 cycles; before, the block index was a division per row). Where no
    chunking divides the columns, rows x blocks is the split loop (rows alone put the ring rows
    on two cores; columns alone give each core ~6 of a row). Either way the split loop walks
    rows outermost, so the rows a tile keeps from the one before (``kept_halo_rows``) are its
    first iterations: ``HALO_ANN`` tells ``ir/halo.py`` to compute them on the first tile
    only and move them up on the others. Returns the loop to compute a block's accumulators
    at."""
    hc, i, j = sch.get_loops(pw_out)[-3:]
    if spec.hidden % CHANNEL_BLOCK:
        return j
    kept = kept_halo_rows(spec, plan.row_tiles)
    image_rows = max(0, kept - spec.dw.padding[0])  # of the first tile's kept rows
    ho, hb = sch.split(hc, [None, CHANNEL_BLOCK])
    rows = int(sch.get(i).extent) - kept  # the rows every tile computes
    # chunks that share the rows every tile computes, and the first tile's kept image rows,
    # evenly among the C's team
    chunks = GAP8.cores // math.gcd(rows, image_rows, GAP8.cores)
    if int(sch.get(j).extent) % chunks:
        sch.reorder(i, ho, j, hb)
        split, per_row, inner = sch.fuse(i, ho), spec.hidden // CHANNEL_BLOCK, j
    else:
        jo, ji = sch.split(j, [chunks, None])
        sch.reorder(ho, i, jo, ji, hb)
        split, per_row, inner = sch.fuse(i, jo), chunks, ji
    sch.annotate(split, SPLIT_ANN, 1)
    if kept:
        step = plan.rows * spec.dw.sh
        sch.annotate(split, HALO_ANN, [kept, step, per_row,
                                       layout.storage_axis(3, EXPANDED, 1), image_rows])
    return inner


# -- tiling -------------------------------------------------------------------------------

def chain_tiling(spec: ChainKernelSpec, hw, rows: int, channels: int):
    """Row tiles (pipelined) x projection channel tiles: the input rows with halo of all
    channels per row tile; the expanded rows (halo recomputed) and the DW output of all hidden
    channels in L1; the projection's weights and parameters per channel tile when there is
    more than one."""
    _, c, h, w = spec.in_shape
    _, o, oh, ow = spec.out_shape
    dw, hid = spec.dw, spec.hidden
    hp, wp = padded((h, w), dw.padding, ow, dw.sw, dw.kernel)
    in_rows = halo_rows(rows, dw.sh, dw.kernel, hp)
    rt, ct = math.ceil(oh / rows), math.ceil(o / channels)
    db = input_copies(hw, rt)
    tile_at = "channels" if ct > 1 else ROOT
    in_rows_moved = span(oh, rows, h, dw.sh, dw.kernel, dw.padding[0])  # image rows, all tiles
    moved = c * dtype_bytes(spec.dtype) * in_rows_moved * w
    bufs = (
        L1Buffer("chain_out", OUTPUT, channels * rows * ow, spec.out_dtype, db if ct == 1 else 1,
                 "channels" if ct > 1 else "rows", moved=output_bytes(spec)),
        L1Buffer("dw_out", INTERMEDIATE, hid * rows * ow, spec.mid_dtype(1), 1, "rows"),
        L1Buffer("pw_out", INTERMEDIATE, hid * in_rows * wp, spec.mid_dtype(0), 1, "rows"),
        # the input tile: the image's rows and columns only (the expansion computes the
        # interior of its tile: no padding row or column is read)
        L1Buffer("x_pad", INPUT, c * min(in_rows, h) * w, spec.dtype, db, "rows", moved=moved,
                 transposing=spec.layouts.transposing, planes=c),
        L1Buffer("w_pw", WEIGHT, hid * c, spec.weight_dtype),
        L1Buffer("w_dw", WEIGHT, hid * dw.kernel ** 2, spec.weight_dtype),
        L1Buffer("w_proj", WEIGHT, channels * hid, spec.weight_dtype, 1, tile_at),
        *param_buffers(spec, channels, o, tile_at,
                       spec.conv_epilogues[2].channels() if ct > 1 else set()))
    lay = spec.layouts
    # the standalone kernels' formulas on the same tiles (``cycles.pointwise`` over the image
    # rows each tile's expansion computes, ``cycles.depthwise``), the residual as the add
    # kernel's
    expanded = spec.expanded_image_rows(rows, rt)
    per_tile = cycles.depthwise(hid, rows, ow, dw.kernel, EXPANDED, DEPTHWISE_OUT, dw.sh,
                                hw.compute) \
        + ct * cycles.pointwise(hid, channels, rows, ow, DEPTHWISE_OUT, lay.out,
                                costs=hw.compute) \
        + (cycles.eltwise(hw, o * rows * ow) if spec.residual else 0)
    compute = rt * per_tile + sum(cycles.pointwise(c, hid, n, w, lay.tile, EXPANDED,
                                                   costs=hw.compute) for n in expanded if n)
    # the expansion runs over the image rows each tile reads but those it keeps (the padding
    # ring is the zero point, no MAC): recomputed halo rows where it keeps none
    macs = spec.macs() + (sum(expanded) - h) * w * c * hid
    return plan_from(KIND, rows, channels, (("rows", rt), ("channels", ct)), bufs, macs,
                     LayerCost(hw, compute), "rows" if db == 2 else "")


def plan_chain(spec: ChainKernelSpec, hw, layer: str = "?"):
    """The cheapest chain plan that fits ``hw.l1_budget`` (TilingError naming ``layer``)."""
    return choose_plan(spec, hw, layer, chain_tiling)


# -- reading a composite ------------------------------------------------------------------

class _PrefixReader(CompositeReader):
    """A composite's bindings up to (not including) its residual Add: the three conv stages."""

    def __init__(self, func, args, requant, count: int):
        super().__init__(func, args, requant)
        self.count = count

    def bindings(self):
        return itertools.islice(super().bindings(), self.count)


def _residual_index(r: CompositeReader, binds) -> int | None:
    """Index of the residual Add (the last add of two activations), None without one."""
    values = {b.var: b.value for b in binds}

    def activation(e) -> bool:
        v = values.get(e)
        if v is None:
            return r.constant(e) is None  # a parameter: the caller's activation or a constant
        if getattr(v.op, "name", "") in (DEQUANTIZE, "relax.reshape", "relax.permute_dims"):
            return activation(v.args[0])
        return True

    adds = [i for i, b in enumerate(binds) if getattr(b.value.op, "name", "") == "relax.add"
            and all(activation(a) for a in b.value.args)]
    return adds[-1] if adds else None


def _residual(r: CompositeReader, tail, kernel: Kernel) -> tuple:
    """(AddKernelSpec, the block's input is the first operand) of the residual Add and the
    ReLU/Clip and quantize after it."""
    add, acts, out = tail[0].value, [], None
    for b in tail[1:]:
        op = b.value.op.name
        if op in ("relax.nn.relu", "relax.clip"):
            acts.append((op, clip_bounds(b.value) if op == "relax.clip" else None))
        elif op == QUANTIZE:
            out = (r.per_tensor(b.value, "residual add"), output_dtype(b.value, "residual add"))
        else:
            raise UnsupportedError(f"{op} after the residual add of a chain")
    lo, hi = activation_range(acts)
    shape = tuple(int(v) for v in kernel.x.ty.shape.values)
    if out is None:
        a, b = (r.resolve(v) for v in add.args)
        if not (a.same_as(kernel.x) or b.same_as(kernel.x)):
            raise UnsupportedError("the residual add does not read the block's input")
        return AddKernelSpec(shape, str(kernel.x.ty.dtype), lo=-math.inf if lo is None else lo,
                             hi=math.inf if hi is None else hi), a.same_as(kernel.x)
    qa, qb = (r.values.get(v) for v in add.args)
    if not (isinstance(qa, QuantAct) and isinstance(qb, QuantAct)) or not any(q.source.same_as(kernel.x) for q in (qa, qb)):
        raise UnsupportedError("the residual add does not read the block's input")
    params, dtype = out
    ma, mb, n = add_multipliers(qa.params.scale, qb.params.scale, params.scale)
    lo_q, hi_q = activation_bounds("clip", lo, hi, params.scale, params.zero_point, dtype)
    return AddKernelSpec(shape, dtype, qa.params.zero_point, qb.params.zero_point, ma, mb, n,
                         params.zero_point, lo_q, hi_q), qa.source.same_as(kernel.x)


def read_chain(func, args, requant: str = DEFAULT_REQUANT):
    """A ``gap8.pw_dw_pw`` composite -> (ChainKernelSpec, [x, w_pw, w_dw, w_proj,
    per-channel tensors])."""
    binds = list(CompositeReader(func, args, requant).bindings())
    cut = _residual_index(CompositeReader(func, args, requant), binds)
    r = _PrefixReader(func, args, requant, len(binds) if cut is None else cut)
    kernel = read_kernel(r)
    stages, x = kernel.stages, kernel.x
    if len(stages) != 3 or len({s.integer for s in stages}) != 1:
        raise UnsupportedError("a chain needs three convs, all integer or all float")
    residual, first = _residual(r, binds[cut:], kernel) if cut is not None else (None, False)
    spec = ChainKernelSpec(
        tuple(int(v) for v in x.ty.shape.values), *(conv_geom(s.conv) for s in stages),
        tuple(kernel.epilogues), mid_zps=(stages[1].in_zp, stages[2].in_zp),
        residual=residual, input_first=first, **spec_fields(kernel))
    weights = [relax.const(stage.weight) for stage in stages]
    return spec, [x, *weights] + kernel.channel_tensors


# -- patterns and rules -------------------------------------------------------------------

def _core(quantized: bool):
    x = patterns.wildcard()
    conv, stage = (patterns.qconv2d, patterns.qstage) if quantized else \
        (patterns.conv2d, patterns.stage)
    pw = conv(x)
    dw = conv(stage(pw))
    proj = conv(stage(dw))
    return x, stage(proj), {"pw": pw, "dw": dw, "proj": proj}


def chain_pattern():
    _, out, ann = _core(False)
    return out, ann


def q_chain_pattern():
    _, out, ann = _core(True)
    return out, ann


def residual_chain_pattern():
    x, out, ann = _core(False)
    add = patterns.is_op("relax.add")(out, x) | patterns.is_op("relax.add")(x, out)
    return patterns.activated(add), ann


def q_residual_chain_pattern():
    x, out, ann = _core(True)
    dq = patterns.dequantized
    add = patterns.is_op("relax.add")(dq(out), dq(x)) | patterns.is_op("relax.add")(dq(x), dq(out))
    return patterns.quantized(patterns.activated(add)), ann


def _is_chain(ctx) -> bool:
    return patterns.is_depthwise_like(ctx.annotated_expr["dw"])  # else: ordinary convs


def chain_rule(ctx) -> str | None:
    """The chain's rules: its expansion and projection 1x1 pointwise convs, a depthwise conv
    we can tile between them, no intermediate read outside, per-channel or scalar constants."""
    pw, dw, proj = (ctx.annotated_expr[k] for k in ("pw", "dw", "proj"))
    return (patterns.dtype_problem(pw) or patterns.dtype_problem(dw)
            or patterns.dtype_problem(proj) or patterns.depthwise_problem(dw)
            or _role(patterns.pointwise_problem(pw), "expansion")
            or _role(patterns.pointwise_problem(proj), "projection")
            or patterns.escape_problem(ctx)
            or patterns.epilogue_problem(ctx.matched_bindings.values()))


def _role(problem: str | None, role: str) -> str | None:
    return f"the {role} conv: {problem}" if problem else None


# -- the model's choice: chain or the block without it ------------------------------------

def _layout_choices(spec, policy: str, src=None, dst=None):
    """The KernelLayouts the planner may give ``spec`` under layout ``policy`` reading its
    input in ``src`` and writing ``dst`` (None: either)."""
    if policy == "chw":  # every kernel in its default layouts
        return [DEFAULT_LAYOUTS[spec.kind] if isinstance(spec, FusedKernelSpec)
                else KernelLayouts(mid=DEPTHWISE_OUT) if isinstance(spec, ChainKernelSpec)
                else KernelLayouts()]
    ends = (CHW, HWC)
    if isinstance(spec, AddKernelSpec):
        return [KernelLayouts(lay, lay, lay) for lay in ends
                if src in (None, lay) and dst in (None, lay)]
    tiles = ((CHW,) if spec.kind == "dw" else (HWC,)) if policy == "hwc" else ends
    mids = (DEPTHWISE_OUT,) if isinstance(spec, ChainKernelSpec) else \
        ends if isinstance(spec, FusedKernelSpec) else ("",)
    return [KernelLayouts(s, t, o, m)
            for s, t, o, m in itertools.product((src,) if src else ends, tiles,
                                                (dst,) if dst else ends, mids)]


def _best(spec, hw, policy, plans, src=None, dst=None) -> float:
    best = math.inf
    for lay in _layout_choices(spec, policy, src, dst):
        try:
            best = min(best, plans.plan(replace(spec, layouts=lay), hw).cycles)
        except TilingError:
            continue
    return best


def _without_chain(kernels, hw, policy, plans, src, dst) -> float:
    """A lower bound on the block's modelled cycles as ``kernels`` (each at its cheapest
    layouts, only the first's input and the last's output fixed)."""
    last = len(kernels) - 1
    return sum(_best(k, hw, policy, plans, src if i == 0 or isinstance(k, AddKernelSpec) else None,
                     dst if i == last else None) for i, k in enumerate(kernels))


def chain_margin(hw) -> float:
    """How much slower than the block's other kernels a chain may be modelled and still form:
    the fitted model's median error on chains (``Calibration.chain_error``, measured by
    ``benchmarks/model_vs_measured.py``), within which it cannot tell them apart, and the
    chain moves fewer L2 bytes; 0 under the analytical model."""
    cal = calibrated.SHIPPED
    return cal.chain_error if hw.cycle_model == "gvsoc" and cal is not None else 0.0


#: ops between a conv and the value its consumer reads (its epilogue, int8 or float)
_EPILOGUE_OPS = ("relax.add", "relax.subtract", "relax.multiply", "relax.clip", "relax.nn.relu",
                 "relax.astype", QUANTIZE, DEQUANTIZE)


def _conv_input(call):
    """The variable a conv reads, through its dequantize."""
    e = call.args[0]
    while isinstance(e, relax.Call) and getattr(e.op, "name", "") == DEQUANTIZE:
        e = e.args[0]
    return e


def paired_depthwise(ctx):
    """The depthwise conv whose output (through its epilogue, used by nothing else) the
    chain's expansion reads: the DW -> PW pair the chain would break (the chain of a
    MobileNetV1 is one block's PW with the next block's DW and PW), or None."""
    values = {var: value for value, var in ctx.value_to_bound_var.items()}
    e = _conv_input(ctx.annotated_expr["pw"])
    while isinstance(e, relax.Var) and len(ctx.var_usages.get(e, [])) == 1:
        value = values.get(e)
        op = getattr(getattr(value, "op", None), "name", "")
        if op == "relax.nn.conv2d":
            return value if patterns.is_depthwise_like(value) else None
        if op not in _EPILOGUE_OPS:
            return None
        e = next((a for a in value.args if isinstance(a, relax.Var)), None)
    return None


def chain_problem(spec: ChainKernelSpec, hw, policy: str, plans, ctx=None) -> str | None:
    """Why the chain must not form on ``hw`` under layout ``policy``: it would break the
    DW -> PW pair of its expansion (``paired_depthwise``: the rule weighs the chain against the
    ways to run its own three convs only, not against that pair; measured on MobileNetV1 x0.25
    @96, four of its six such chains lost 1.3-7.1% to the two pairs they replace), or for some
    layout of the block's input and output tensors, a way to run it without the chain is
    modelled faster by more than the model's error on chains (``chain_margin``; None: the chain
    is modelled within it or faster everywhere, and it always moves fewer L2 bytes)."""
    dw = paired_depthwise(ctx) if ctx is not None else None
    if dw is not None:
        return (f"the chain would break the DW -> PW pair of {patterns.node(dw)} and "
                f"{patterns.node(ctx.annotated_expr['pw'])}, which the planner keeps (a chain "
                "is weighed against its own three convs only)")
    ends = (CHW,) if policy == "chw" else (CHW, HWC)
    margin = chain_margin(hw)
    for src, dst in itertools.product(ends, ends):
        chain = _best(spec, hw, policy, plans, src, dst)
        for name, kernels in spec.alternatives().items():
            alt = _without_chain(kernels, hw, policy, plans, src, dst)
            if chain >= alt * (1 + margin):
                return (f"the chain is not faster on {hw.name}: {chain:,.0f} modelled cycles "
                        f"vs {alt:,.0f} as {name} (input {src}, output {dst})"
                        + (f", beyond the model's {100 * margin:.1f}% error on chains"
                           if margin else ""))
    return None


def chain_alternatives(spec: ChainKernelSpec, hw, policy: str, plans) -> list:
    """[(way to run the block, modelled cycles)] for the report, at the chain's own input
    and output layouts."""
    src, dst = spec.layouts.source, spec.layouts.out
    return [(name, _without_chain(kernels, hw, policy, plans, src, dst))
            for name, kernels in spec.alternatives().items()]


PW_DW_PW = KernelFamily(
    kind=KIND, patterns=(q_residual_chain_pattern, residual_chain_pattern, q_chain_pattern,
                         chain_pattern),
    layer_keys=("pw", "dw", "proj"), read=read_chain, plan=plan_chain, schedule=schedule_chain,
    problem=chain_rule, candidate=_is_chain, fused=True, layouts=KernelLayouts(mid=DEPTHWISE_OUT),
    layout_rule="conv", compare=chain_problem)
