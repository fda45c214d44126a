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

from .staging import Operand
from .eltwise import plan_elementwise, schedule_elementwise
from .requant import dtype_range, requant_expr


@dataclass(frozen=True)
class LutKernelSpec:
    shape: tuple  # (1, C, H, W)
    dtype: str  # input element type (int8 | uint8)
    out_dtype: str
    kind: str = "lut"

    @property
    def out_shape(self):
        return self.shape

    def macs(self) -> int:
        return 0


def lut_compute(spec: LutKernelSpec):
    from tvm import te

    x = te.placeholder(spec.shape, spec.dtype, name="x")
    table = te.placeholder((256,), spec.out_dtype, name="table")
    offset = 128 if spec.dtype == "int8" else 0
    y = te.compute(spec.shape, lambda *i: table[x(*i).astype("int32") + offset], name="lut_out")
    # (any rank: the schedule tiles NCHW by rows x channels and [N, F] by features)
    return [x, table, y]


@dataclass(frozen=True)
class MulKernelSpec:
    shape: tuple  # (1, C, H, W) of the output and of ``a``
    b_shape: tuple  # same, or (1, C, 1, 1)
    dtype: str
    za: int
    zb: int
    mult: int
    shift: int
    zy: int
    out_dtype: str
    kind: str = "mul"

    @property
    def out_shape(self):
        return self.shape

    def macs(self) -> int:
        return math.prod(self.shape)


def mul_compute(spec: MulKernelSpec):
    from tvm import te, tirx

    a = te.placeholder(spec.shape, spec.dtype, name="a")
    b = te.placeholder(spec.b_shape, spec.dtype, name="b")
    per_channel = spec.b_shape != spec.shape
    oa, ob = Operand(spec.dtype, spec.za), Operand(spec.dtype, spec.zb)

    def body(*idx):
        bv = b[0, idx[1], 0, 0] if per_channel else b[idx]
        prod = oa.load(a[idx]) * ob.load(bv)
        return requant_expr(prod, tirx.const(spec.mult, "int32"), tirx.const(spec.shift, "int32"),
                            spec.zy, *dtype_range(spec.out_dtype), spec.out_dtype)

    y = te.compute(spec.shape, body, name="mul_out")
    return [a, b, y]


def schedule_lut(spec, plan):
    return schedule_elementwise(lut_compute, spec, plan, [("x", "input"), ("table", "weight")],
                          "lut_out")


def schedule_mul(spec, plan):
    per_channel = spec.b_shape != spec.shape
    return schedule_elementwise(mul_compute, spec, plan,
                          [("a", "input"), ("b", "weight" if per_channel else "input")],
                          "mul_out")


def plan_lut(spec, hw, rows, channels):
    return plan_elementwise(spec, hw, rows, channels, False, 256, "lut")


def plan_mul(spec, hw, rows, channels):
    per_channel = spec.b_shape != spec.shape
    return plan_elementwise(spec, hw, rows, channels, not per_channel,
                      spec.shape[1] if per_channel else 0, "mul")
