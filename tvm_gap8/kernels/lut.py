"""Integer elementwise kernels for the QDQ ops with no conv around them.

``LutKernelSpec``: ``quantize(f(dequantize(x)))`` for any elementwise ``f`` of one tensor (the
HardSigmoid/HardSwish, Sigmoid, Clip that exporters and the quantizer leave standing) is a
256-entry table of the int8 input; the table is computed at compile time with onnxruntime's
float32 arithmetic, so the kernel is one load per element, integer only.

``MulKernelSpec``: ``quantize(dequantize(a) * dequantize(b))`` (squeeze-excite's gate, the
product of HardSwish) with ``b`` either the same shape or one value per channel: the int32
product of the zero-point-free operands, requantized like a conv accumulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tvm import relax, te, tirx

from ..errors import UnsupportedError
from . import patterns
from .composite import (DEQUANTIZE, QUANTIZE, CompositeReader, QuantConst, clip_bounds, real_value,
                        shape_of)
from .eltwise import elementwise_tiling, schedule_elementwise
from .family import KernelFamily
from .requant import dtype_range, quantize_multiplier, requant_expr
from .spec import KernelSpec
from .staging import Operand
from .tiling import choose_plan


@dataclass(frozen=True)
class LutKernelSpec(KernelSpec):
    in_shape: tuple  # (1, C, H, W)
    dtype: str  # input element type (int8 | uint8)
    out_dtype: str
    kind: str = "lut"

    @property
    def out_shape(self):
        return self.in_shape

    def macs(self) -> int:
        return 0


def lut_compute(spec: LutKernelSpec):
    x = te.placeholder(spec.in_shape, spec.dtype, name="x")
    table = te.placeholder((256,), spec.out_dtype, name="table")
    offset = 128 if spec.dtype == "int8" else 0
    y = te.compute(spec.in_shape, lambda *i: table[x(*i).astype("int32") + offset], name="lut_out")
    # (any rank: the schedule tiles NCHW by rows x channels and [N, F] by features)
    return [x, table, y]


@dataclass(frozen=True)
class MulKernelSpec(KernelSpec):
    in_shape: tuple  # (1, C, H, W) of the output and of ``a``
    b_shape: tuple  # same, or (1, C, 1, 1)
    dtype: str
    za: int
    zb: int
    mult: int
    shift: int
    out_zp: int
    out_dtype: str
    kind: str = "mul"

    @property
    def out_shape(self):
        return self.in_shape

    def macs(self) -> int:
        return math.prod(self.in_shape)


def mul_compute(spec: MulKernelSpec):
    a = te.placeholder(spec.in_shape, spec.dtype, name="a")
    b = te.placeholder(spec.b_shape, spec.dtype, name="b")
    per_channel = spec.b_shape != spec.in_shape
    oa, ob = Operand(spec.dtype, spec.za), Operand(spec.dtype, spec.zb)

    def body(*idx):
        bv = b[0, idx[1], 0, 0] if per_channel else b[idx]
        prod = oa.load(a[idx]) * ob.load(bv)
        return requant_expr(prod, tirx.const(spec.mult, "int32"), tirx.const(spec.shift, "int32"),
                            spec.out_zp, *dtype_range(spec.out_dtype), spec.out_dtype)

    y = te.compute(spec.in_shape, body, name="mul_out")
    return [a, b, y]


def schedule_lut(spec, plan):
    return schedule_elementwise(lut_compute, spec, plan)


def schedule_mul(spec, plan):
    return schedule_elementwise(mul_compute, spec, plan)


def lut_tiling(spec, hw, rows, channels):
    """The input per tile, the 256-entry table once."""
    return elementwise_tiling(spec, hw, rows, channels, "lut_out", ("x",),
                              (("table", 256, spec.out_dtype),))


def mul_tiling(spec, hw, rows, channels):
    """Both operands per tile, or ``b`` once when it holds one value per channel."""
    if spec.b_shape != spec.in_shape:
        return elementwise_tiling(spec, hw, rows, channels, "mul_out", ("a",),
                                  (("b", spec.in_shape[1], spec.dtype),))
    return elementwise_tiling(spec, hw, rows, channels, "mul_out", ("a", "b"))


def _table_op(op, args, bounds):
    """onnxruntime's float32 arithmetic for the elementwise ops a table may hold.

    Every op is one float32-rounded IEEE operation, so the table is the same on every CPU,
    except for transcendentals, whose numpy float32 implementations are SIMD code that may
    differ by CPU: Sigmoid's ``exp`` is evaluated in float64 and rounded to float32, then
    ``1 / (1 + e)`` in float32. (float64 ``exp`` implementations differ by at most about an
    ulp of float64; that changes the float32 rounding only for a value within ~2^-29 relative
    of a float32 rounding boundary.) ``tvm_gap8.reference.ops.sigmoid`` uses the same
    definition."""
    f32 = np.float32
    binary = {"relax.add": np.add, "relax.subtract": np.subtract, "relax.multiply": np.multiply,
              "relax.divide": np.divide, "relax.maximum": np.maximum,
              "relax.minimum": np.minimum}
    if op in binary:
        return binary[op](args[0], args[1]).astype(f32)
    if op == "relax.nn.relu":
        return np.maximum(args[0], f32(0))
    if op == "relax.clip":
        return np.clip(args[0], f32(bounds[0]), f32(bounds[1])).astype(f32)
    if op == "relax.sigmoid":
        e = np.exp(-np.asarray(args[0], np.float64)).astype(f32)
        return (f32(1) / (f32(1) + e)).astype(f32)
    raise UnsupportedError(f"{op} in an int8 table")


def _table_values(r: CompositeReader, call, values):
    """The float32 value of ``call`` for each of the 256 inputs (constants broadcast)."""
    operands = []
    for a in call.args:
        if isinstance(a, relax.Var) and a in values:
            operands.append(values[a])
        elif r.value(a) is not None:
            operands.append(real_value(r.value(a)).astype(np.float32).reshape(()))
    bounds = clip_bounds(call) if call.op.name == "relax.clip" else None
    return _table_op(call.op.name, operands, bounds)


def read_lut(func: relax.Function, args):
    """``quantize(f(dequantize(x)))`` -> (LutKernelSpec, [x, table]). The table holds the 8-bit
    output for each of the 256 inputs, computed as onnxruntime would: dequantize, f in float32,
    divide by the scale, round half to even, add the zero point, saturate."""
    r = CompositeReader(func, args)
    values, x, out = {}, None, None
    for b in r.bindings():
        call = b.value
        if call.op.name == DEQUANTIZE:
            value = r.dequantize(b.var, call)
            if isinstance(value, QuantConst):  # a quantized constant operand
                q = value.q.astype(np.int64)
                scale, zp = np.float32(value.scale.reshape(())), int(value.zero_point.reshape(()))
            else:  # the input: each of its 256 values
                x = value.source
                lo = dtype_range(str(x.ty.dtype))[0]
                q = np.arange(lo, lo + 256, dtype=np.int64)
                scale, zp = np.float32(value.params.scale), value.params.zero_point
            values[b.var] = ((q - zp).astype(np.float32) * scale).astype(np.float32)
        elif call.op.name == QUANTIZE:
            params, dtype = r.per_tensor(call, "quantize"), str(call.ty.dtype)
            lo, hi = dtype_range(dtype)
            v = values[call.args[0]]
            out = np.clip(np.rint((v / np.float32(params.scale)).astype(np.float32))
                          + params.zero_point, lo, hi).astype(dtype)
        else:
            values[b.var] = _table_values(r, call, values)
    spec = LutKernelSpec(shape_of(x), str(x.ty.dtype), str(out.dtype))
    return spec, [x, relax.const(out)]


def read_mul(func: relax.Function, args):
    """``quantize(dequantize(a) * dequantize(b))`` -> (MulKernelSpec, [a, b])."""
    r = CompositeReader(func, args)
    mul, out = None, None
    for b in r.bindings():
        call = b.value
        if call.op.name == DEQUANTIZE:
            r.dequantize(b.var, call)
        elif call.op.name == "relax.multiply":
            mul = call
        elif call.op.name == QUANTIZE:
            out = (r.per_tensor(call, "quantize"), str(call.ty.dtype))
    qa, qb = (r.values[v] for v in mul.args)
    if str(qa.source.ty.dtype) != str(qb.source.ty.dtype):
        raise UnsupportedError("multiply of tensors with different integer types")
    (params, dtype) = out
    scale = (np.float32(qa.params.scale) * np.float32(qb.params.scale)) / \
        np.float32(params.scale)
    m, n = quantize_multiplier(scale)
    spec = MulKernelSpec(shape_of(qa.source), shape_of(qb.source), str(qa.source.ty.dtype),
                         qa.params.zero_point, qb.params.zero_point, m, n, params.zero_point,
                         dtype)
    return spec, [qa.source, qb.source]


def _integer_only(rule):
    anchored = patterns.anchored(rule)
    return lambda ctx: patterns.activation_quantization_problem(ctx) or anchored(ctx)


LUT = KernelFamily(kind="lut", patterns=(patterns.q_lut_pattern,), layer_keys=("anchor",),
                   read=read_lut,
                   plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, lut_tiling),
                   schedule=schedule_lut, problem=_integer_only(patterns.lut_problem),
                   integer_only=True)
MUL = KernelFamily(kind="mul", patterns=(patterns.q_mul_pattern,), layer_keys=("anchor",),
                   read=read_mul,
                   plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, mul_tiling),
                   schedule=schedule_mul, problem=_integer_only(patterns.mul_problem),
                   integer_only=True)
