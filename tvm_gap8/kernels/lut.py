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
from dataclasses import dataclass, replace

import numpy as np
from tvm import relax, te

from ..errors import UnsupportedError
from . import layout, patterns
from .composite import (DEQUANTIZE, QUANTIZE, CompositeReader, QuantAct, QuantConst, QuantParams,
                        clip_bounds, output_dtype, real_value, shape_of)
from .eltwise import elementwise_tiling, schedule_elementwise
from .family import KernelFamily
from .requant import DEFAULT_REQUANT, dtype_range, requant_mode
from .layout import KernelLayouts
from .spec import KernelSpec
from .staging import Operand
from .tiling import choose_plan


@dataclass(frozen=True)
class LutKernelSpec(KernelSpec):
    in_shape: tuple  # (1, C, H, W)
    dtype: str  # input element type (int8 | uint8)
    out_dtype: str
    kind: str = "lut"
    layouts: KernelLayouts = KernelLayouts()  # 4-D only: input and output in one layout

    @property
    def out_shape(self):
        return self.in_shape

    def macs(self) -> int:
        return 0


def table_lookup(table, value, in_dtype: str):
    """``table[value]`` of an 8-bit ``value``: the table is indexed from the type's minimum."""
    offset = -dtype_range(in_dtype)[0]
    index = value.astype("int32")
    return table[index + offset] if offset else table[index]


def mul_requant(a, b, za: int, zb: int, mult: int, shift: int, out_zp: int, out_dtype: str,
                in_dtype: str = "int8", mode: str = DEFAULT_REQUANT):
    """``quantize(dequantize(a) * dequantize(b))`` of two 8-bit values, integer only: the
    int32 product of the zero-point-free operands, requantized like a conv accumulator (by
    requantization mode ``mode``)."""
    oa, ob = Operand(in_dtype, za), Operand(in_dtype, zb)
    return requant_mode(mode).const_expr(oa.load(a) * ob.load(b), mult, shift, out_zp,
                                         *dtype_range(out_dtype), out_dtype)


def _stored(shape, spec) -> tuple:
    """A tensor's stored shape: 4-D tensors in the spec's layout, others as they are."""
    return layout.physical(shape, spec.layouts.out) if len(shape) == 4 else tuple(shape)


def lut_compute(spec: LutKernelSpec):
    x = te.placeholder(_stored(spec.in_shape, spec), spec.dtype, name="x")
    table = te.placeholder((256,), spec.out_dtype, name="table")
    y = te.compute(x.shape, lambda *i: table_lookup(table, x(*i), spec.dtype),
                   name="lut_out")
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
    requant: str = DEFAULT_REQUANT  # the requantization mode (``requant.py``)
    kind: str = "mul"
    layouts: KernelLayouts = KernelLayouts()  # 4-D only: a, b and the output in one layout

    @property
    def out_shape(self):
        return self.in_shape

    def macs(self) -> int:
        return math.prod(self.in_shape)


def mul_compute(spec: MulKernelSpec):
    a = te.placeholder(_stored(spec.in_shape, spec), spec.dtype, name="a")
    b = te.placeholder(_stored(spec.b_shape, spec), spec.dtype, name="b")
    lay = spec.layouts.out if len(spec.in_shape) == 4 else layout.CHW
    per_channel = spec.b_shape != spec.in_shape

    def body(*idx):  # logical indices
        bv = layout.element(b, lay, 0, idx[1], 0, 0) if per_channel else \
            layout.element(b, lay, *idx) if len(idx) == 4 else b[idx]
        av = layout.element(a, lay, *idx) if len(idx) == 4 else a[idx]
        return mul_requant(av, bv, spec.za, spec.zb, spec.mult, spec.shift, spec.out_zp,
                           spec.out_dtype, spec.dtype, spec.requant)

    if len(spec.in_shape) != 4:
        return [a, b, te.compute(spec.in_shape, body, name="mul_out")]
    return [a, b, layout.stage(spec.in_shape, body, lay, "mul_out")]


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
    """onnxruntime's float32 arithmetic for the elementwise ops a table may hold (``bounds``:
    Clip's bounds, LeakyRelu's alpha).

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
    if op == "relax.nn.leakyrelu":  # onnxruntime: x >= 0 ? x : alpha * x
        x = np.asarray(args[0], f32)
        return np.where(x >= 0, x, (f32(bounds) * x).astype(f32)).astype(f32)
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
    bounds = clip_bounds(call) if call.op.name == "relax.clip" else \
        float(call.attrs.alpha) if call.op.name == "relax.nn.leakyrelu" else None
    return _table_op(call.op.name, operands, bounds)


def table_of(r: CompositeReader, bindings) -> tuple:
    """(the 8-bit source, its table) of ``bindings``: ``quantize(f(dequantize(x)))`` for one
    tensor ``x``. The table holds the 8-bit output for each of the 256 inputs, computed as
    onnxruntime would: dequantize, f in float32, divide by the scale, round half to even, add
    the zero point, saturate."""
    values, x, out = {}, None, None
    for b in bindings:
        call = b.value
        if call.op.name == DEQUANTIZE:
            value = r.dequantize(b.var, call)
            if isinstance(value, QuantConst):  # a quantized constant operand
                q = value.q.astype(np.int64)
                scale, zp = np.float32(value.scale.reshape(())), int(value.zero_point.reshape(()))
            else:  # the input: each of its 256 values
                if x is not None and not value.source.same_as(x):
                    raise UnsupportedError("a table of two tensors")
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
    return x, out


def read_lut(func: relax.Function, args, requant: str = DEFAULT_REQUANT):
    """``quantize(f(dequantize(x)))`` -> (LutKernelSpec, [x, table]) (``table_of``; a table
    needs no requantization, whatever ``requant``)."""
    r = CompositeReader(func, args)
    x, out = table_of(r, list(r.bindings()))
    spec = LutKernelSpec(shape_of(x), str(x.ty.dtype), str(out.dtype))
    return spec, [x, relax.const(out)]


def mul_multiplier(qa: QuantParams, qb: QuantParams, out: QuantParams,
                   mode: str = DEFAULT_REQUANT) -> tuple[int, int]:
    """The requantization (multiplier, shift) of a product in mode ``mode``'s encoding:
    onnxruntime's float32 ``fl32(s_a s_b) / s_y``."""
    scale = (np.float32(qa.scale) * np.float32(qb.scale)) / np.float32(out.scale)
    return requant_mode(mode).multiplier(scale)


def read_mul(func: relax.Function, args, requant: str = DEFAULT_REQUANT):
    """``quantize(dequantize(a) * dequantize(b))`` -> (MulKernelSpec, [a, b]), requantized by
    mode ``requant``."""
    r = CompositeReader(func, args, requant)
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
    m, n = mul_multiplier(qa.params, qb.params, params, r.requant)
    spec = MulKernelSpec(shape_of(qa.source), shape_of(qb.source), str(qa.source.ty.dtype),
                         qa.params.zero_point, qb.params.zero_point, m, n, params.zero_point,
                         dtype, r.requant)
    return spec, [qa.source, qb.source]


# -- the same ops on a fused kernel's intermediate ------------------------------------------

@dataclass(frozen=True)
class IntStep:
    """One integer elementwise op on a fused kernel's 8-bit intermediate, producing value
    number ``len(steps before) + 1`` (value 0: the requantized first conv). ``table``: index
    ``table`` of the kernel's tables applied to value ``args[0]``; ``mul``: the requantized
    product of values ``args`` (``zps``: their zero points; ``mult``, ``shift``, ``out_zp``;
    ``requant``: the requantization mode)."""

    kind: str  # "table" | "mul"
    args: tuple
    out_dtype: str
    in_dtype: str = "int8"
    table: int = -1
    zps: tuple = (0, 0)
    mult: int = 0
    shift: int = 0
    out_zp: int = 0
    requant: str = DEFAULT_REQUANT

    def describe(self) -> str:
        return "lut" if self.kind == "table" else "mul"


def apply_steps(steps, value, tables):
    """The TIR value of the last of ``steps`` applied to ``value`` (``tables``: TE tensors)."""
    vals = [value]
    for st in steps:
        if st.kind == "table":
            vals.append(table_lookup(tables[st.table], vals[st.args[0]], st.in_dtype))
        else:
            a, b = (vals[i] for i in st.args)
            vals.append(mul_requant(a, b, *st.zps, st.mult, st.shift, st.out_zp, st.out_dtype,
                                    st.in_dtype, st.requant))
    return vals[-1]


def _mul_step(r: CompositeReader, group, index: dict, out) -> IntStep | None:
    """The group as a product of two 8-bit values, or None if it is not one."""
    ops = [b.value for b in group if b.value.op.name not in (DEQUANTIZE, QUANTIZE)]
    if len(ops) != 1 or ops[0].op.name != "relax.multiply":
        return None
    acts = [r.values.get(a) for a in ops[0].args]
    if not all(isinstance(a, QuantAct) and a.source in index for a in acts):
        return None
    m, n = mul_multiplier(acts[0].params, acts[1].params, out[0], r.requant)
    dtypes = {str(a.source.ty.dtype) for a in acts}
    if len(dtypes) != 1:
        raise UnsupportedError("multiply of tensors with different integer types")
    return IntStep("mul", tuple(index[a.source] for a in acts), out[1], dtypes.pop(), zps=tuple(
        a.params.zero_point for a in acts), mult=m, shift=n, out_zp=out[0].zero_point,
        requant=r.requant)


def compose_tables(first: np.ndarray, second: np.ndarray, mid_dtype: str) -> np.ndarray:
    """``second[first[v]]`` for every 8-bit ``v`` (tables indexed from their type's minimum:
    ``first``'s entries, of type ``mid_dtype``, index ``second`` from that type's minimum)."""
    offset = -dtype_range(mid_dtype)[0]
    return second[first.astype(np.int64) + offset]


def _readers(steps, value: int) -> int:
    return sum(value in st.args for st in steps) + (value == len(steps))


def merge_table_steps(steps: list, tables: list) -> tuple:
    """Consecutive tables on a fused kernel's intermediate are one table: a table step reading
    the value of another table step that nothing else reads (a Keras HardSwish's relu6(x + 3)
    and * 1/6) reads that step's input through the composed table instead (the same
    integers: each table holds its rounding and clamping). -> (steps, tables), values
    renumbered, unused tables dropped."""
    steps, tables = list(steps), list(tables)
    k = next((k for k, st in enumerate(steps) if st.kind == "table" and st.args[0] > 0
              and steps[st.args[0] - 1].kind == "table" and _readers(steps, st.args[0]) == 1),
             None)
    if k is None:
        used = sorted({st.table for st in steps if st.kind == "table"})
        renumber = {old: new for new, old in enumerate(used)}
        return ([st if st.kind != "table" else replace(st, table=renumber[st.table])
                 for st in steps], [tables[i] for i in used])
    gone = steps[k].args[0]  # the value the merged-away step produced
    first = steps[gone - 1]
    tables.append(compose_tables(tables[first.table], tables[steps[k].table], first.out_dtype))
    steps[k] = replace(steps[k], args=first.args, in_dtype=first.in_dtype, table=len(tables) - 1)
    del steps[gone - 1]
    shifted = [replace(st, args=tuple(a - (a > gone) for a in st.args)) for st in steps]
    return merge_table_steps(shifted, tables)


def read_steps(r: CompositeReader, bindings, first) -> tuple:
    """The integer ops the quantizer left between two convs of a fused group: ``bindings``
    (between the quantize closing the first conv, bound to ``first``, and the dequantize the
    second conv reads) -> (IntStep list, tables, the var of the last 8-bit value). Each
    ``quantize`` closes one op: a product of two 8-bit values (``read_mul``'s arithmetic) or a
    table of one (``read_lut``'s)."""
    index, steps, tables, group, last = {first: 0}, [], [], [], first
    for b in bindings:
        group.append(b)
        if b.value.op.name != QUANTIZE:
            if b.value.op.name == DEQUANTIZE:
                r.dequantize(b.var, b.value)
            continue
        out = (r.per_tensor(b.value, "quantize"), output_dtype(b.value, "quantize"))
        step = _mul_step(r, group, index, out)
        if step is None:
            x, table = table_of(r, group)
            if x not in index:
                raise UnsupportedError("a table of a tensor from outside the group")
            step = IntStep("table", (index[x],), out[1], str(x.ty.dtype), table=len(tables))
            tables.append(table)
        index[b.var], last, group = len(steps) + 1, b.var, []
        steps.append(step)
    steps, tables = merge_table_steps(steps, tables)
    return steps, tables, last


def _integer_only(rule):
    anchored = patterns.anchored(rule)
    return lambda ctx: patterns.activation_quantization_problem(ctx) or anchored(ctx)


LUT = KernelFamily(kind="lut", patterns=(patterns.q_lut_pattern,), layer_keys=("anchor",),
                   read=read_lut,
                   plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, lut_tiling),
                   schedule=schedule_lut,
                   problem=lambda ctx: (_integer_only(patterns.lut_problem)(ctx)
                                        or patterns.table_constant_problem(ctx)),
                   integer_only=True, layout_rule="elementwise")
MUL = KernelFamily(kind="mul", patterns=(patterns.q_mul_pattern,), layer_keys=("anchor",),
                   read=read_mul,
                   plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, mul_tiling),
                   schedule=schedule_mul,
                   problem=lambda ctx: (_integer_only(patterns.mul_problem)(ctx)
                                        or patterns.quantized_constant_problem("a multiply")(ctx)),
                   integer_only=True, layout_rule="elementwise")
