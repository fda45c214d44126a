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

from dataclasses import dataclass, field

from ..vocab import INTERMEDIATE, L1_SCOPE, ROLE_ANN, WEIGHT
from .spec import TypedOperands
from .staging import (Operand, double_buffer, finish, inside,
                     padded_input, scalar_accumulator, stage_padded_input,
                     stage_in, stage_out, stage_params)
from . import patterns
from .epilogue import Epilogue
from .family import KernelFamily
from .geometry import ConvGeom, conv_geom
from .stages import read_composite, spec_fields
from .tiling import plan_fused

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

    @property
    def out_dtype(self) -> str:
        return self.second_epilogue.out_dtype or self.dtype

    @property
    def epilogues(self) -> tuple:
        return (self.first_epilogue, self.second_epilogue)

    @property
    def mid_dtype(self) -> str:
        return self.first_epilogue.out_dtype or self.dtype

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
        from .conv import ConvKernelSpec

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
    "dw_pw": {"input": "CHW", "intermediate": "HWC", "output": "CHW"},
    "pw_dw": {"input": "CHW", "intermediate": "CHW", "output": "CHW"},
    "conv": {"input": "CHW", "output": "CHW"},
}


def _params(spec):
    from tvm import te

    return [te.placeholder(shape, spec.channel_dtype(i), name=f"p{i}")
            for i, shape in enumerate(spec.channel_shapes)]


def dw_pw_compute(spec: FusedKernelSpec):
    """TE graph of DW -> epilogue -> PW -> epilogue with an HWC intermediate."""
    from tvm import te

    _, c, h, w = spec.in_shape
    dw = spec.first
    k, s = dw.kernel, dw.stride
    t, l, _, _ = dw.padding
    _, o, oh, ow = spec.out_shape
    xin = Operand(spec.dtype, spec.in_zp)
    mid_in = Operand(spec.mid_dtype, spec.mid_zp)
    wop = Operand(spec.weight_dtype)
    x = te.placeholder(spec.in_shape, spec.dtype, name="x")
    w_dw = te.placeholder((c, 1, k, k), spec.weight_dtype, name="w_dw")
    w_pw = te.placeholder((o, c, 1, 1), spec.weight_dtype, name="w_pw")
    chans = _params(spec)
    rk = te.reduce_axis((0, k), name="rk")
    rl = te.reduce_axis((0, k), name="rl")
    xp = padded_input(x, xin, dw.padding)
    dw_acc = te.compute(
        (oh, ow, c),
        lambda i, j, ci: te.sum(xin.load(xp[0, ci, i * s + rk, j * s + rl])
                                * wop.load(w_dw[ci, 0, rk, rl]), axis=[rk, rl]),
        name="dw_acc")
    mid = te.compute((oh, ow, c),
                     lambda i, j, ci: spec.first_epilogue.apply(dw_acc[i, j, ci], ci, chans),
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
    return [x, w_dw, w_pw, *chans, y]


def pw_dw_compute(spec: FusedKernelSpec):
    """TE graph of PW -> epilogue -> DW -> epilogue with a CHW intermediate."""
    from tvm import te, tirx

    _, c, h, w = spec.in_shape
    pw, dw = spec.first, spec.second
    hid = pw.out_channels
    k, s = dw.kernel, dw.stride
    t, l, _, _ = dw.padding
    _, _, oh, ow = spec.out_shape
    xin = Operand(spec.dtype, spec.in_zp)
    mid_in = Operand(spec.mid_dtype, spec.mid_zp)
    wop = Operand(spec.weight_dtype)
    x = te.placeholder(spec.in_shape, spec.dtype, name="x")
    w_pw = te.placeholder((hid, c, 1, 1), spec.weight_dtype, name="w_pw")
    w_dw = te.placeholder((hid, 1, k, k), spec.weight_dtype, name="w_dw")
    chans = _params(spec)
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
    mid = te.compute(
        (hid, hp, wp),
        lambda hc, i, j: tirx.if_then_else(
            inside(i, j, t, l, h, w), spec.first_epilogue.apply(pw_acc[hc, i, j], hc, chans),
            pad_value),
        name="pw_out")
    rk = te.reduce_axis((0, k), name="rk")
    rl = te.reduce_axis((0, k), name="rl")
    dw_acc = te.compute(
        (1, hid, oh, ow),
        lambda n, hc, i, j: te.sum(
            mid_in.load(mid[hc, i * s + rk, j * s + rl]) * wop.load(w_dw[hc, 0, rk, rl]),
            axis=[rk, rl]),
        name="dw_acc")
    y = te.compute((1, hid, oh, ow),
                   lambda n, hc, i, j: spec.second_epilogue.apply(dw_acc[n, hc, i, j], hc, chans),
                   name="dw_out")
    return [x, w_pw, w_dw, *chans, y]


def _param_names(spec):
    return [f"p{i}" for i in range(len(spec.channel_shapes))]


def _tiled_names(spec):
    from .tiling import tiled_params

    return {f"p{i}" for i in tiled_params(spec)}


def schedule_dw_pw(spec: FusedKernelSpec, plan):
    """DW->PW tiled over output rows (``plan.rows``) and PW output channels (``plan.channels``).

    Loop nest: row tile { input rows+halo L2->L1; DW -> HWC intermediate (L1, all channels);
    channel tile { [PW weight slice L2->L1]; PW -> output tile (L1); output tile L1->L2 } }.
    The channel-staged variant (``plan.dw_channels``, see ``plan.plan_dw_pw_staged``) replaces
    the DW part by DW channel tile { input rows+halo of those channels and their DW weights
    L2->L1; DW -> their slice of the intermediate }.
    """
    from tvm import s_tir, te

    sch = s_tir.Schedule(te.create_prim_func(dw_pw_compute(spec)))
    out = sch.get_sblock("pw_out")
    _, o, i, j = sch.get_loops(out)
    it, ii = sch.split(i, [None, plan.rows])
    ot, oi = sch.split(o, [None, plan.channels])
    sch.reorder(it, ot, oi, ii, j)
    staged = bool(plan.dw_channels)
    # with one channel tile the output tile is a child of the row loop, so it can be double
    # buffered with the input (not in the staged variant: there the pipelined loop is the DW
    # channel loop inside the row loop)
    stage_out(sch, out, ot if plan.channel_tiles > 1 or staged else it)
    pw_acc = sch.get_sblock("pw_acc")  # one scalar accumulator per output element
    scalar_accumulator(sch, pw_acc, j)
    mid = sch.get_sblock("dw_out")  # the intermediate: this row tile, all channels, L1 only
    sch.compute_at(mid, it)
    sch.set_scope(mid, 0, L1_SCOPE)
    sch.annotate(mid, ROLE_ANN, "intermediate")
    dw_loop = _dw_channel_tiles(sch, mid, it, plan.dw_channels) if staged else it
    dw_acc = sch.get_sblock("dw_acc")
    scalar_accumulator(sch, dw_acc, sch.get_loops(mid)[-1])
    stage_padded_input(sch, dw_loop)
    stage_in(sch, dw_acc, "w_dw", "weight", dw_loop if staged else None)
    stage_in(sch, pw_acc, "w_pw", "weight", ot if plan.channel_tiles > 1 else None)
    stage_params(sch, [mid, out], _param_names(spec), ot if plan.channel_tiles > 1 else None,
                 _tiled_names(spec))
    if plan.double_buffered:
        double_buffer(sch, dw_loop)
    return finish(sch)


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
    """PW->DW tiled over output rows (``plan.rows``) and channels (``plan.channels``).

    Loop nest: row tile { input rows+halo, all input channels, L2->L1; channel tile {
    [weight slices L2->L1]; PW -> CHW intermediate (L1, halo rows recomputed); DW -> output tile
    (L1); output tile L1->L2 } }.
    """
    from tvm import s_tir, te

    sch = s_tir.Schedule(te.create_prim_func(pw_dw_compute(spec)))
    out = sch.get_sblock("dw_out")
    _, c, i, j = sch.get_loops(out)
    it, ii = sch.split(i, [None, plan.rows])
    ct, ci = sch.split(c, [None, plan.channels])
    sch.reorder(it, ct, ci, ii, j)
    stage_out(sch, out, ct if plan.channel_tiles > 1 else it)
    dw_acc = sch.get_sblock("dw_acc")
    scalar_accumulator(sch, dw_acc, j)
    mid = sch.get_sblock("pw_out")
    sch.compute_at(mid, ct)
    sch.set_scope(mid, 0, L1_SCOPE)
    sch.annotate(mid, ROLE_ANN, "intermediate")
    pw_acc = sch.get_sblock("pw_acc")
    scalar_accumulator(sch, pw_acc, sch.get_loops(mid)[-1])
    stage_padded_input(sch, it)
    per_tile = ct if plan.channel_tiles > 1 else None
    stage_in(sch, pw_acc, "w_pw", "weight", per_tile)
    stage_in(sch, dw_acc, "w_dw", "weight", per_tile)
    stage_params(sch, [mid, out], _param_names(spec), per_tile, _tiled_names(spec))
    if plan.double_buffered:
        double_buffer(sch, it)
    return finish(sch)


def build_fused(spec: FusedKernelSpec, plan):
    """The scheduled PrimFunc of a fused kernel under ``plan``."""
    return schedule_dw_pw(spec, plan) if spec.kind == "dw_pw" else schedule_pw_dw(spec, plan)


def fused_spec(kind: str, kernel) -> FusedKernelSpec:
    """The spec of a ``dw_pw`` / ``pw_dw`` group read by ``read_composite``."""
    from ..errors import UnsupportedError

    stages = kernel.stages
    if len(stages) != 2:
        raise UnsupportedError(f"{kind} group with {len(stages)} convs")
    if stages[0].integer != stages[1].integer:
        raise UnsupportedError(f"{kind} group mixing integer and float stages")
    return FusedKernelSpec(
        kind=kind, in_shape=tuple(int(v) for v in kernel.x.ty.shape.values),
        first=conv_geom(stages[0].conv), second=conv_geom(stages[1].conv),
        first_epilogue=kernel.epilogues[0], second_epilogue=kernel.epilogues[1],
        layouts=dict(LAYOUTS[kind]), mid_zp=stages[1].in_zp, **spec_fields(kernel))


def fused_reader(kind: str):
    """The reader of a ``kind`` composite -> (FusedKernelSpec, [x, w1, w2, per-channel])."""
    def read(func, args):
        from tvm import relax

        kernel = read_composite(func, args)
        spec = fused_spec(kind, kernel)
        weights = [relax.const(stage.weight) for stage in kernel.stages]
        return spec, [kernel.x, *weights] + kernel.channel_tensors

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
