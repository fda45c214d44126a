"""Residual Add (optionally with ReLU/Clip) as a row-tiled L1 kernel, float or int8.

int8 (QDQ ``quantize(add(dequantize(a), dequantize(b)))``): both operands are rescaled to the
output scale with integer multipliers sharing one shift,
``y = clamp(z_y + (((a - z_a) m_a + (b - z_b) m_b + 2^(n-1)) >> n), lo, hi)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tvm import s_tir, te, tirx

from ..cost import cycles
from ..errors import UnsupportedError
from ..ir.vocab import INPUT, OUTPUT, WEIGHT
from . import layout, patterns
from .composite import CompositeReader, activation_range, layer_parts, shape_of
from .family import KernelFamily
from .layout import KernelLayouts
from .requant import DEFAULT_REQUANT, activation_bounds
from .spec import KernelSpec
from .staging import Operand, finish_staged
from .tiling import LayerCost, L1Buffer, choose_plan, input_copies, plan_from


@dataclass(frozen=True)
class AddKernelSpec(KernelSpec):
    in_shape: tuple  # (1, C, H, W)
    dtype: str = "float32"
    # int8 only: zero points, multipliers and shift, output zero point and clamp
    za: int = 0
    zb: int = 0
    ma: int = 0
    mb: int = 0
    shift: int = 0
    out_zp: int = 0
    lo: float = -math.inf
    hi: float = math.inf
    kind: str = "add"
    layouts: KernelLayouts = KernelLayouts()  # both inputs and the output in one layout

    @property
    def out_shape(self):
        return self.in_shape

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
    lay = spec.layouts.out
    a = layout.placeholder(spec.in_shape, lay, spec.dtype, "a")
    b = layout.placeholder(spec.in_shape, lay, spec.dtype, "b")

    y = te.compute(a.shape, lambda *idx: add_value(spec, a[idx], b[idx]), name="add_out")
    return [a, b, y]


def add_value(spec, a_, b_):
    """One output element of the add from its two operands."""
    if not spec.integer:
        v = a_ + b_
        if math.isfinite(spec.lo):
            v = tirx.max(v, tirx.const(spec.lo, spec.dtype))
        if math.isfinite(spec.hi):
            v = tirx.min(v, tirx.const(spec.hi, spec.dtype))
        return v
    i64 = "int64"
    av = Operand(spec.dtype, spec.za).load(a_).astype(i64)
    bv = Operand(spec.dtype, spec.zb).load(b_).astype(i64)
    acc = av * tirx.const(spec.ma, i64) + bv * tirx.const(spec.mb, i64) + \
        tirx.const(1 << (spec.shift - 1), i64)
    v = tirx.shift_right(acc, tirx.const(spec.shift, i64)) + tirx.const(spec.out_zp, i64)
    v = tirx.max(tirx.min(v, tirx.const(int(spec.hi), i64)), tirx.const(int(spec.lo), i64))
    return v.astype(spec.dtype)


def schedule_elementwise(compute, spec, plan):
    """Tile an element-wise kernel (NCHW: rows x channels; [N, F]: features), its copies as
    the plan declares them."""
    sch = s_tir.Schedule(te.create_prim_func(compute(spec)))
    out = sch.get_sblock(plan.buffers[0].name)
    loops = sch.get_loops(out)
    if len(loops) == 4:  # NCHW / NHWC: rows x channels tiles
        lay = getattr(spec, "layouts", KernelLayouts()).out
        _, c, i, j = layout.logical_loops(loops, lay)
        it, ii = sch.split(i, [None, plan.rows])
        ct, ci = sch.split(c, [None, plan.channels])
        sch.reorder(it, ct, *((ci, ii, j) if lay == layout.CHW else (ii, j, ci)))
        return finish_staged(sch, plan, {"rows": it, "channels": ct})
    _, c = loops  # [N, F]: feature tiles
    ct, ci = sch.split(c, [None, plan.channels])
    return finish_staged(sch, plan, {"channels": ct})


def elementwise_tiling(spec, hw, rows, channels, out_name, inputs, weights=()):
    """Rows x channels tiles (pipelined along channels): ``inputs`` (TE names) staged per
    tile, ``weights`` ((TE name, elements, dtype)) once, the output per tile."""
    _, c, h, w = spec.in_shape if len(spec.in_shape) == 4 else (*spec.in_shape, 1, 1)
    rt, ct = math.ceil(h / rows), math.ceil(c / channels)
    db = input_copies(hw, ct)
    tile = channels * rows * w
    bufs = (L1Buffer(out_name, OUTPUT, tile, spec.out_dtype, db, "channels"),
            *(L1Buffer(name, INPUT, tile, spec.dtype, db, "channels") for name in inputs),
            *(L1Buffer(name, WEIGHT, n, dtype) for name, n, dtype in weights))
    compute = rt * ct * cycles.eltwise(hw, tile)

    cost = LayerCost(hw, compute)  # every copy costed, the pipelined ones overlapping

    loops = (("rows", rt), ("channels", ct)) if len(spec.in_shape) == 4 else (("channels", ct),)
    return plan_from(spec.kind, rows, channels, loops, bufs, 0, cost,
                     "channels" if db == 2 else "")


def schedule_add(spec: AddKernelSpec, plan):
    return schedule_elementwise(add_compute, spec, plan)


def add_tiling(spec: AddKernelSpec, hw, rows: int, channels: int):
    return elementwise_tiling(spec, hw, rows, channels, "add_out", ("a", "b"))


def read_add(func, args, requant: str = DEFAULT_REQUANT):
    """A ``gap8.add`` composite -> (AddKernelSpec, [a, b]). The integer add has one rescaling
    (``add_multipliers``, already fixed-point, rounding half up) whatever ``requant``."""
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


def _add_problem(ctx):
    return (patterns.anchored(patterns.add_problem)(ctx)
            or patterns.quantized_constant_problem("an add")(ctx))


ADD = KernelFamily(kind="add", layout_rule="elementwise",
                   patterns=(patterns.q_add_pattern, patterns.add_pattern),
                   layer_keys=("anchor",), read=read_add,
                   plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, add_tiling),
                   schedule=schedule_add, problem=_add_problem)
