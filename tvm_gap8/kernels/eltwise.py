"""Residual Add (optionally with ReLU/Clip) as a row-tiled L1 kernel, float or int8.

int8 (QDQ ``quantize(add(dequantize(a), dequantize(b)))``): both operands are rescaled to the
output scale with integer multipliers sharing one shift,
``y = clamp(z_y + (((a - z_a) m_a + (b - z_b) m_b + 2^(n-1)) >> n), lo, hi)``.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .composite import CompositeReader, activation_range, layer_parts, shape_of
from . import patterns
from .spec import KernelSpec
from .family import KernelFamily
from .requant import activation_bounds
import math
from dataclasses import dataclass

from .tiling import choose_plan
from .staging import Operand, double_buffer, finish, stage_in, stage_out


@dataclass(frozen=True)
class AddKernelSpec(KernelSpec):
    shape: tuple  # (1, C, H, W)
    dtype: str = "float32"
    # int8 only: zero points, multipliers and shift, output zero point and clamp
    za: int = 0
    zb: int = 0
    ma: int = 0
    mb: int = 0
    shift: int = 0
    zy: int = 0
    lo: float = -math.inf
    hi: float = math.inf
    kind: str = "add"

    @property
    def out_shape(self):
        return self.shape

    @property
    def out_dtype(self):
        return self.dtype


    def macs(self) -> int:
        return 0


def add_multipliers(sa: float, sb: float, sy: float) -> tuple[int, int, int]:
    """m_a / 2^n ~= sa / sy and m_b / 2^n ~= sb / sy with max(m_a, m_b) < 2^30."""
    big = max(sa, sb) / sy
    n = 30 - max(0, math.frexp(big)[1])
    n = max(1, min(n, 62))
    return int(round(sa / sy * 2 ** n)), int(round(sb / sy * 2 ** n)), n


def add_compute(spec: AddKernelSpec):
    from tvm import te, tirx

    a = te.placeholder(spec.shape, spec.dtype, name="a")
    b = te.placeholder(spec.shape, spec.dtype, name="b")

    def body(n, c, i, j):
        if not spec.integer:
            v = a[n, c, i, j] + b[n, c, i, j]
            if math.isfinite(spec.lo):
                v = tirx.max(v, tirx.const(spec.lo, spec.dtype))
            if math.isfinite(spec.hi):
                v = tirx.min(v, tirx.const(spec.hi, spec.dtype))
            return v
        i64 = "int64"
        av = Operand(spec.dtype, spec.za).load(a[n, c, i, j]).astype(i64)
        bv = Operand(spec.dtype, spec.zb).load(b[n, c, i, j]).astype(i64)
        acc = av * tirx.const(spec.ma, i64) + bv * tirx.const(spec.mb, i64) + \
            tirx.const(1 << (spec.shift - 1), i64)
        v = tirx.shift_right(acc, tirx.const(spec.shift, i64)) + tirx.const(spec.zy, i64)
        v = tirx.max(tirx.min(v, tirx.const(int(spec.hi), i64)), tirx.const(int(spec.lo), i64))
        return v.astype(spec.dtype)

    y = te.compute(spec.shape, body, name="add_out")
    return [a, b, y]


def schedule_elementwise(compute, spec, plan, inputs, out_name):
    """Tile an elementwise kernel (NCHW: rows x channels; [N, F]: features): inputs staged per
    tile (``role == "input"``) or once (``"weight"``), the channel-tile loop pipelined."""
    from tvm import s_tir, te

    sch = s_tir.Schedule(te.create_prim_func(compute(spec)))
    out = sch.get_sblock(out_name)
    loops = sch.get_loops(out)
    if len(loops) == 4:  # NCHW: rows x channels tiles
        _, c, i, j = loops
        it, ii = sch.split(i, [None, plan.rows])
        ct, ci = sch.split(c, [None, plan.channels])
        sch.reorder(it, ct, ci, ii, j)
    else:  # [N, F]: feature tiles
        _, c = loops
        ct, ci = sch.split(c, [None, plan.channels])
    stage_out(sch, out, ct)
    for name, role in inputs:
        stage_in(sch, out, name, role, ct if role == "input" else None)
    if plan.double_buffered:
        double_buffer(sch, ct)
    return finish(sch)


def schedule_add(spec: AddKernelSpec, plan):
    return schedule_elementwise(add_compute, spec, plan, [("a", "input"), ("b", "input")],
                                "add_out")


def plan_elementwise(spec, hw, rows, channels, extra_in, extra_wgt, kind):
    """Plan of ``schedule_elementwise``: one input (two with ``extra_in``), the output, and
    ``extra_wgt`` bytes copied once."""
    from .tiling import L1Buffer, TilePlan, dtype_bytes, input_copies

    _, c, h, w = spec.shape if len(spec.shape) == 4 else (*spec.shape, 1, 1)
    rt, ct = math.ceil(h / rows), math.ceil(c / channels)
    db = input_copies(hw, ct)
    tile = channels * rows * w
    bufs = [L1Buffer("x", "input", tile, spec.dtype, db)]
    if extra_in:
        bufs.append(L1Buffer("b", "input", tile, spec.dtype, db))
    bufs.append(L1Buffer("out", "output", tile, spec.out_dtype, db))
    if extra_wgt:
        bufs.append(L1Buffer("w", "weight", extra_wgt, "uint8"))
    act_in = c * h * w * dtype_bytes(spec.dtype) * (2 if extra_in else 1)
    act_out = c * h * w * dtype_bytes(spec.out_dtype)
    transfers = rt * ct * (3 if extra_in else 2) + (1 if extra_wgt else 0)
    cycles = (act_in + act_out + extra_wgt) / hw.dma_bytes_per_cycle + \
        transfers * hw.dma_setup_cycles + rt * ct * hw.eltwise_cycles(tile)
    return TilePlan(kind, rows, channels, rt, ct, tuple(bufs), act_in, act_out, extra_wgt,
                    transfers, 0, cycles, db == 2)


def plan_add(spec: AddKernelSpec, hw, rows: int, channels: int):
    return plan_elementwise(spec, hw, rows, channels, True, 0, "add")


def read_add(func, args):
    """A ``gap8.add`` composite -> (AddKernelSpec, [a, b])."""
    r = CompositeReader(func, args)
    parts = layer_parts(r, "add")
    lo_real, hi_real = activation_range(parts.acts)
    if parts.out is None:
        a, b = (r.resolve(x) for x in parts.anchor.args)
        return AddKernelSpec(shape_of(a), str(a.ty.dtype),
                             lo=lo_real if lo_real is not None else -np.inf,
                             hi=hi_real if hi_real is not None else np.inf), [a, b]
    qa, qb = parts.inputs
    (out, dtype) = parts.out
    ma, mb, n = add_multipliers(qa.params.scale, qb.params.scale, out.scale)
    lo, hi = activation_bounds("clip", lo_real, hi_real, out.scale, out.zero_point, dtype)
    if {str(qa.source.ty.dtype), str(qb.source.ty.dtype)} != {dtype}:
        raise UnsupportedError("add of tensors with different integer types")
    return AddKernelSpec(shape_of(qa.source), dtype, qa.params.zero_point,
                         qb.params.zero_point, ma, mb, n, out.zero_point, lo, hi), \
        [qa.source, qb.source]


ADD = KernelFamily(kind="add", patterns=(patterns.q_add_pattern, patterns.add_pattern),
                   layer_keys=("anchor",), read=read_add,
                   plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, plan_add),
                   schedule=schedule_add, problem=patterns.anchored(patterns.add_problem))
