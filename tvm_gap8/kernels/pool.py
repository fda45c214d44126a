"""Global average pooling (``mean`` over H, W) as a channel-tiled L1 kernel, float or int8
(int8: the int32 sum of the raw integers, ``-z_x * H * W`` as the requantization's bias,
requantized with ``M = s_x / (s_y * H * W)``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tvm import s_tir, te, tirx

from ..cost import cycles
from ..errors import UnsupportedError
from ..ir.vocab import INPUT, OUTPUT
from . import layout, patterns
from .composite import CompositeReader, layer_parts, shape_of
from .family import KernelFamily
from .layout import KernelLayouts
from .requant import DEFAULT_REQUANT, dtype_range, requant_mode
from .spec import KernelSpec
from .staging import Operand, finish_staged, scalar_accumulator
from .tiling import LayerCost, L1Buffer, choose_plan, input_copies, plan_from


@dataclass(frozen=True)
class PoolKernelSpec(KernelSpec):
    in_shape: tuple  # (1, C, H, W)
    dtype: str = "float32"
    in_zp: int = 0
    mult: int = 0
    shift: int = 0
    out_zp: int = 0
    requant: str = DEFAULT_REQUANT  # the requantization mode (``requant.py``)
    kind: str = "pool"
    layouts: KernelLayouts = KernelLayouts()  # input staged as stored (source == tile)

    @property
    def out_shape(self):
        n, c, _, _ = self.in_shape
        return (n, c, 1, 1)

    @property
    def out_dtype(self):
        return self.dtype


    def macs(self) -> int:
        return 0


def pool_compute(spec: PoolKernelSpec):
    _, c, h, w = spec.in_shape
    lay = spec.layouts
    x = layout.placeholder(spec.in_shape, lay.source, spec.dtype, "x")
    op = Operand(spec.dtype)  # raw integers: the requantization's bias holds -in_zp * h * w
    ri = te.reduce_axis((0, h), name="ri")
    rj = te.reduce_axis((0, w), name="rj")
    acc = te.compute(spec.out_shape,
                     lambda n, ch, i, j: te.sum(op.load(layout.element(x, lay.source, n, ch, ri,
                                                                       rj)), axis=[ri, rj]),
                     name="pool_acc")
    if spec.integer:
        def body(n, ch, i, j):
            return requant_mode(spec.requant).const_expr(
                acc[n, ch, i, j], spec.mult, spec.shift, spec.out_zp, *dtype_range(spec.dtype),
                spec.dtype, -spec.in_zp * h * w)
    else:
        def body(n, ch, i, j):
            return acc[n, ch, i, j] / tirx.const(h * w, spec.dtype)
    y = layout.stage(spec.out_shape, body, lay.out, "pool_out")
    return [x, y]


def pool_tiling(spec: PoolKernelSpec, hw, rows: int, channels: int):
    """Channel tiles, each with all its pixels (input and output staged per tile,
    pipelined)."""
    _, c, h, w = spec.in_shape
    ct = math.ceil(c / channels)
    db = input_copies(hw, ct)
    bufs = (L1Buffer("pool_out", OUTPUT, channels, spec.dtype, db, "channels"),
            L1Buffer("x", INPUT, channels * h * w, spec.dtype, db, "channels"))
    compute = ct * cycles.eltwise(hw, channels * h * w)

    cost = LayerCost(hw, compute)  # every copy costed, the pipelined ones overlapping

    return plan_from("pool", 1, channels, (("channels", ct),), bufs, 0, cost,
                     "channels" if db == 2 else "")


def schedule_pool(spec: PoolKernelSpec, plan):
    sch = s_tir.Schedule(te.create_prim_func(pool_compute(spec)))
    out = sch.get_sblock("pool_out")
    _, c, i, j = layout.logical_loops(sch.get_loops(out), spec.layouts.out)
    ct, ci = sch.split(c, [None, plan.channels])
    sch.reorder(ct, *(lp for lp in sch.get_loops(out)[1:] if not sch.get(lp).same_as(sch.get(ct))))
    scalar_accumulator(sch, sch.get_sblock("pool_acc"), sch.get_loops(out)[-1])
    return finish_staged(sch, plan, {"channels": ct})


def read_pool(func, args, requant: str = DEFAULT_REQUANT):
    """A ``gap8.pool`` composite -> (PoolKernelSpec, [x]), an integer one requantized by mode
    ``requant``."""
    r = CompositeReader(func, args, requant)
    parts = layer_parts(r, "pool")
    if parts.out is None:
        x = r.resolve(parts.anchor.args[0])
        return PoolKernelSpec(shape_of(x), str(x.ty.dtype)), [x]
    (q,) = parts.inputs
    out, dtype = parts.out
    shape = shape_of(q.source)
    m, n = requant_mode(r.requant).multiplier(q.params.scale / (out.scale * shape[2] * shape[3]))
    if str(q.source.ty.dtype) != dtype:
        raise UnsupportedError("pooling that changes the integer type")
    return PoolKernelSpec(shape, dtype, q.params.zero_point, m, n, out.zero_point,
                          r.requant), [q.source]


POOL = KernelFamily(kind="pool", layout_rule="reduce",
                    patterns=(patterns.q_pool_pattern, patterns.pool_pattern),
                    layer_keys=("anchor",), read=read_pool,
                    plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, pool_tiling),
                    schedule=schedule_pool, problem=patterns.anchored(patterns.pool_problem))
