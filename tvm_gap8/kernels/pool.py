"""Global average pooling (``mean`` over H, W) as a channel-tiled L1 kernel, float or int8
(int8: the int32 sum requantized with ``M = s_x / (s_y * H * W)``)."""

from __future__ import annotations

from ..errors import UnsupportedError
from .composite import CompositeReader, layer_parts, shape_of
from . import patterns
from .spec import KernelSpec
from .family import KernelFamily
from .requant import quantize_multiplier
from .tiling import choose_plan
import math
from dataclasses import dataclass

from .staging import Operand, double_buffer, finish, scalar_accumulator, stage_in, stage_out
from .requant import dtype_range, requant_expr


@dataclass(frozen=True)
class PoolKernelSpec(KernelSpec):
    in_shape: tuple  # (1, C, H, W)
    dtype: str = "float32"
    zx: int = 0
    mult: int = 0
    shift: int = 0
    zy: int = 0
    kind: str = "pool"

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
    from tvm import te, tirx

    _, c, h, w = spec.in_shape
    x = te.placeholder(spec.in_shape, spec.dtype, name="x")
    op = Operand(spec.dtype, spec.zx)
    ri = te.reduce_axis((0, h), name="ri")
    rj = te.reduce_axis((0, w), name="rj")
    acc = te.compute(spec.out_shape,
                     lambda n, ch, i, j: te.sum(op.load(x[n, ch, ri, rj]), axis=[ri, rj]),
                     name="pool_acc")
    if spec.integer:
        i32 = "int32"

        def body(n, ch, i, j):
            return requant_expr(acc[n, ch, i, j], tirx.const(spec.mult, i32),
                                tirx.const(spec.shift, i32), spec.zy, *dtype_range(spec.dtype),
                                spec.dtype)
    else:
        def body(n, ch, i, j):
            return acc[n, ch, i, j] / tirx.const(h * w, spec.dtype)
    y = te.compute(spec.out_shape, body, name="pool_out")
    return [x, y]


def schedule_pool(spec: PoolKernelSpec, plan):
    from tvm import s_tir, te

    sch = s_tir.Schedule(te.create_prim_func(pool_compute(spec)))
    out = sch.get_sblock("pool_out")
    _, c, i, j = sch.get_loops(out)
    ct, ci = sch.split(c, [None, plan.channels])
    stage_out(sch, out, ct)
    acc = sch.get_sblock("pool_acc")
    scalar_accumulator(sch, acc, sch.get_loops(out)[-1])
    stage_in(sch, acc, "x", "input", ct)
    if plan.double_buffered:
        double_buffer(sch, ct)
    return finish(sch)


def plan_pool(spec: PoolKernelSpec, hw, rows: int, channels: int):
    from .tiling import L1Buffer, TilePlan, dtype_bytes, input_copies

    _, c, h, w = spec.in_shape
    ct = math.ceil(c / channels)
    db = input_copies(hw, ct)
    e = dtype_bytes(spec.dtype)
    bufs = (L1Buffer("x", "input", channels * h * w, spec.dtype, db),
            L1Buffer("pool_out", "output", channels, spec.dtype, db))
    transfers = 2 * ct
    cycles = c * h * w * e / hw.dma_bytes_per_cycle + transfers * hw.dma_setup_cycles + \
        ct * hw.eltwise_cycles(channels * h * w)
    return TilePlan("pool", 1, channels, 1, ct, bufs, c * h * w * e, c * e, 0, transfers, 0,
                    cycles, db == 2)


def read_pool(func, args):
    """A ``gap8.pool`` composite -> (PoolKernelSpec, [x])."""
    r = CompositeReader(func, args)
    parts = layer_parts(r, "pool")
    if parts.out is None:
        x = r.resolve(parts.anchor.args[0])
        return PoolKernelSpec(shape_of(x), str(x.ty.dtype)), [x]
    (q,) = parts.inputs
    out, dtype = parts.out
    shape = shape_of(q.source)
    m, n = quantize_multiplier(q.params.scale / (out.scale * shape[2] * shape[3]))
    if str(q.source.ty.dtype) != dtype:
        raise UnsupportedError("pooling that changes the integer type")
    return PoolKernelSpec(shape, dtype, q.params.zero_point, m, n, out.zero_point), [q.source]


POOL = KernelFamily(kind="pool", patterns=(patterns.q_pool_pattern, patterns.pool_pattern),
                    layer_keys=("anchor",), read=read_pool,
                    plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, plan_pool),
                    schedule=schedule_pool, problem=patterns.anchored(patterns.pool_problem))
