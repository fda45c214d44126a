"""Residual Add (optionally with ReLU/Clip) as a row-tiled L1 kernel, float or int8.

int8 (QDQ ``quantize(add(dequantize(a), dequantize(b)))``): both operands are rescaled to the
output scale with integer multipliers sharing one shift,
``y = clamp(z_y + (((a - z_a) m_a + (b - z_b) m_b + 2^(n-1)) >> n), lo, hi)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .common import Operand, double_buffer, finish, stage_in, stage_out


@dataclass(frozen=True)
class AddKernelSpec:
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

    @property
    def integer(self):
        return not self.dtype.startswith("float")

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


def schedule_add(spec: AddKernelSpec, plan):
    from tvm import s_tir, te

    sch = s_tir.Schedule(te.create_prim_func(add_compute(spec)))
    out = sch.get_sblock("add_out")
    _, c, i, j = sch.get_loops(out)
    it, ii = sch.split(i, [None, plan.rows])
    ct, ci = sch.split(c, [None, plan.channels])
    sch.reorder(it, ct, ci, ii, j)
    stage_out(sch, out, ct)
    stage_in(sch, out, "a", "input", ct)
    stage_in(sch, out, "b", "input", ct)
    if plan.double_buffered:
        double_buffer(sch, ct)
    return finish(sch)


def plan_add(spec: AddKernelSpec, hw, rows: int, channels: int):
    from .plan import L1Buffer, TilePlan, _dtype_bytes, input_copies

    _, c, h, w = spec.shape
    rt, ct = math.ceil(h / rows), math.ceil(c / channels)
    db = input_copies(hw, ct)
    tile = channels * rows * w
    bufs = (L1Buffer("a", "input", tile, spec.dtype, db), L1Buffer("b", "input", tile, spec.dtype, db),
            L1Buffer("add_out", "output", tile, spec.dtype, db))
    total = c * h * w * _dtype_bytes(spec.dtype)
    transfers = 3 * rt * ct
    cycles = total * 3 / hw.dma_bytes_per_cycle + transfers * hw.dma_setup_cycles + \
        rt * ct * hw.eltwise_cycles(tile)
    return TilePlan("add", rows, channels, rt, ct, bufs, 2 * total, total, 0, transfers, 0,
                    cycles, db == 2)
