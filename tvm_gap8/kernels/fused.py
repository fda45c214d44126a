"""What the two fused depthwise-separable families share (the pairs themselves: ``dw_pw.py``,
``pw_dw.py``): the spec, its reader, the pair rules, the ops the quantizer left between the
convs (tables, products), pixel tiles and the conv-like cost.

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
from dataclasses import dataclass

from tvm import relax, te

from ..cost import cycles
from ..errors import UnsupportedError
from ..ir.vocab import WEIGHT
from . import layout, patterns
from .conv import ConvKernelSpec
from .epilogue import Epilogue
from .family import KernelFamily
from .geometry import ConvGeom, conv_geom
from .layout import KernelLayouts
from .requant import DEFAULT_REQUANT
from .spec import TypedOperands
from .stages import read_composite, spec_fields
from .staging import scalar_accumulator
from .tiling import L1Buffer, halo_rows, span


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
    layouts: KernelLayouts = None  # None: the kind's default (``DEFAULT_LAYOUTS``)
    channel_dtypes: tuple = ()  # element types of the per-channel tensors (default: dtype)
    # integer kernels: zero points of the input and of the intermediate (the requantized output
    # of the first conv): the padding values; the MACs read raw integers, each conv's bias
    # holds -zp * sum(w) (``composite.requantization``)
    in_zp: int = 0
    mid_zp: int = 0
    w_dtype: str = ""  # weights' element type (default: dtype)
    # integer kernels: the ops the quantizer left between the convs (lut.IntStep), applied to
    # the 8-bit intermediate in L1; their 256-entry tables are kernel inputs t0, t1, ...
    mid_steps: tuple = ()
    table_dtypes: tuple = ()

    def __post_init__(self):
        if self.layouts is None:
            object.__setattr__(self, "layouts", DEFAULT_LAYOUTS[self.kind])

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
        per-channel tensors, the intermediate in L2 (what the fusion policy compares with).
        With integer ops between the convs, the first writes its requantized output and the
        ops run as their own kernels in between (``split_steps``)."""
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

    def split_steps(self) -> tuple:
        """The ops between the convs as the standalone kernels they are without fusion, in
        order, on the intermediate's shape (step ``i`` makes value ``i + 1``; value 0 is the
        first conv's output): a table -> ``LutKernelSpec``, a product -> ``MulKernelSpec``.
        Kernel ``i + 1`` of the split pair (``split`` first conv, these, second conv) makes
        value ``i + 1``, so a step reads the outputs of the kernels its ``args`` name."""
        from .lut import LutKernelSpec, MulKernelSpec  # lut imports nothing of the fused pairs

        _, _, h, w = self.in_shape
        shape = (1, self.first.out_channels, *self.first.out_hw(h, w))
        out = []
        for st in self.mid_steps:
            if st.kind == "table":
                out.append(LutKernelSpec(shape, st.in_dtype, st.out_dtype))
            else:
                out.append(MulKernelSpec(shape, shape, st.in_dtype, st.zps[0], st.zps[1],
                                         st.mult, st.shift, st.out_zp, st.out_dtype))
        return tuple(out)

    def macs(self) -> int:
        _, c, h, w = self.in_shape
        _, o, oh, ow = self.out_shape
        if self.kind == "dw_pw":
            k = self.first.kernel
            return c * oh * ow * k * k + o * c * oh * ow
        k = self.second.kernel
        hid = self.first.out_channels
        return hid * c * h * w + hid * oh * ow * k * k


#: Without a layout plan: CHW tensors in L2 and tiles, the intermediate in the layout its
#: consumer reads best: the PW reduces over channels per pixel (HWC), the DW slides over a
#: channel's plane (CHW).
DEFAULT_LAYOUTS = {"dw_pw": KernelLayouts(mid=layout.HWC), "pw_dw": KernelLayouts(mid=layout.CHW)}


def channel_placeholders(spec):
    return [te.placeholder(shape, spec.channel_dtype(i), name=f"p{i}")
            for i, shape in enumerate(spec.channel_shapes)]


def table_placeholders(spec):
    return [te.placeholder((256,), dtype, name=f"t{i}")
            for i, dtype in enumerate(spec.table_dtypes)]


def first_out(spec, acc, channel_axis: int, chans, name: str, mid_layout: str, shape):
    """The first conv's output per element (logical (c, h, w) indices): its epilogue applied
    to the accumulator ``acc`` (a function of the same indices). With integer ops between the
    convs, the requantized value is a stage of its own (``name``, stored like the
    intermediate, one register per element, ``stage_first_out``): the ops read it twice
    (``x * table(x)``), and inlining the requantization twice would grow the expression beyond
    what TVM's simplifier handles quickly."""
    def value(*idx):
        return spec.first_epilogue.apply(acc(*idx), idx[channel_axis], chans)

    if not spec.mid_steps:
        return value
    req = layout.stage(shape, value, mid_layout, name)
    return lambda *idx: layout.element(req, mid_layout, *idx)


def stage_first_out(sch, spec, name: str, mid):
    """The first conv's requantized value (``first_out``) in a register, per element of the
    intermediate; its accumulator then goes at the same loop."""
    if spec.mid_steps:
        scalar_accumulator(sch, sch.get_sblock(name), sch.get_loops(mid)[-1])


def steps_cycles(spec, hw, elements: int) -> int:
    """The ops between the convs on ``elements`` intermediate values, costed as the standalone
    table / multiply kernels' compute is (``cycles.eltwise``)."""
    return len(spec.mid_steps) * cycles.eltwise(hw, elements)


def table_buffers(spec):
    """The tables of the ops between the convs: whole, once per kernel, in L1."""
    return tuple(L1Buffer(f"t{i}", WEIGHT, 256, dtype) for i, dtype in enumerate(spec.table_dtypes))


def pixel_tiles(dw: ConvGeom, shape, oh, ow, rows, cols, e):
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
        mid_zp=stages[1].in_zp, mid_steps=tuple(kernel.steps),
        table_dtypes=tuple(str(t.dtype) for t in kernel.tables), **spec_fields(kernel))


def fused_reader(kind: str):
    """The reader of a ``kind`` composite -> (FusedKernelSpec, [x, w1, w2, per-channel]), its
    integer convs and products requantized by mode ``requant``."""
    def read(func, args, requant: str = DEFAULT_REQUANT):
        kernel = read_composite(func, args, requant)
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


def fused_family(kind: str, pats, keys, plan, schedule) -> KernelFamily:
    """The declaration of a fused pair family: the pair rules and policy, its reader; the
    caller's tiling search and schedule."""
    return KernelFamily(kind=kind, patterns=pats, layer_keys=keys, read=fused_reader(kind),
                        plan=plan, schedule=schedule, problem=_pair_problem,
                        candidate=_is_pair, fused=True, layouts=DEFAULT_LAYOUTS[kind],
                        layout_rule="fused")


def dw_channel_by_channel(sch, dw_out, tile_loop, mid_layout: str):
    """A fused DW's loops inside its tile loop, when its output (the intermediate) is HWC: as
    channel, rows, columns, as a standalone CHW DW runs (its taps and requantization values
    loaded once per channel: ``emitc/hoist.py``; its outputs stored a channel apart), not
    channels innermost. Measured on GVSOC (MobileNetV2 x0.35 @96 ``--fusion chains``): 3.28 M
    -> 3.13 M cycles."""
    if mid_layout != layout.HWC:
        return
    loops = list(sch.get_loops(dw_out))
    # rows, columns, channels in storage order (compute_at drops unit loops; channels stay)
    rest = loops[[sch.get(lp).same_as(sch.get(tile_loop)) for lp in loops].index(True) + 1:]
    if len(rest) > 1:
        sch.reorder(rest[-1], *rest[:-1])
