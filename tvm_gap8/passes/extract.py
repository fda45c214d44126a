"""Read a gap8 composite function's body into what the kernel schedules build.

Every reader goes through :class:`~.composite.CompositeReader`. A conv stage is
``conv2d -> elementwise ops`` (float) or, in a QDQ model,
``dequantize -> conv2d(dequantize(int8 weights)) -> [+ dequantize(int32 bias)] -> [ReLU/Clip]
-> quantize``, which becomes integer arithmetic: int8 operands with zero points, an int32
accumulator and bias, and a :class:`Requant` (``composite.requantization``). Nothing of the
float graph is left inside an integer stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from tvm import relax

from ..errors import UnsupportedError
from ..kernels.epilogue import ACC, SUPPORTED_OPS, Epilogue, EpilogueOp, Ref
from ..kernels.fused import ConvGeom
from ..kernels.requant import dtype_range, quantize_multiplier
from ..kernels.composite import (DEQUANTIZE, QUANTIZE, CompositeReader, QuantAct, QuantConst,
                        activation_range, clip_bounds, output_dtype, real_value,
                        requantization, shape_of)


def conv_geom(call) -> ConvGeom:
    w = shape_of(call.args[1])
    a = call.attrs
    return ConvGeom(in_channels=int(call.args[0].ty.shape.values[1]), out_channels=w[0],
                    kernel=w[2], stride=[int(v) for v in a.strides][0],
                    padding=tuple(int(v) for v in a.padding))


@dataclass
class Stage:
    """One conv and the ops after it, as read (``ops``: (op, operands, bounds) with operands
    ``ACC``, ``Ref("val", i)`` or ``("const", value)``)."""

    conv: relax.Call
    weight: np.ndarray  # float32, or int8 for an integer stage
    groups: int
    act: QuantAct | None = None  # the dequantized input of an integer stage
    w_scale: np.ndarray | None = None  # per output channel, integer stages
    ops: list = field(default_factory=list)
    out: tuple | None = None  # (QuantParams, dtype) of the quantize closing an integer stage

    @property
    def integer(self) -> bool:
        return self.out is not None

    @property
    def in_zp(self) -> int:
        return self.act.params.zero_point if self.act is not None else 0


@dataclass
class Kernel:
    """Everything a schedule needs, plus the call_tir arguments."""

    stages: list
    x: relax.Expr  # the activation input (float, or int8 for an integer kernel)
    channel_tensors: list = field(default_factory=list)  # relax constants
    channel_shapes: list = field(default_factory=list)
    channel_dtypes: list = field(default_factory=list)
    epilogues: list = field(default_factory=list)

    def add_channel(self, arr: np.ndarray) -> int:
        c = arr.size
        self.channel_tensors.append(relax.const(arr.reshape(1, c, 1, 1)))
        self.channel_shapes.append((1, c, 1, 1))
        self.channel_dtypes.append(str(arr.dtype))
        return len(self.channel_tensors) - 1

    def requant_epilogue(self, requant, arrays) -> Epilogue:
        bias, mult, shift = (self.add_channel(a) for a in arrays)
        return Epilogue(requant=dataclasses.replace(requant, bias=bias, mult=mult, shift=shift))


# -- conv groups: conv, dw_pw, pw_dw --------------------------------------------------------

def _conv_stage(r: CompositeReader, call) -> Stage:
    wdesc = r.value(call.args[1])
    if wdesc is None:
        raise UnsupportedError("conv2d with non-constant weights")
    stage = Stage(conv=call, weight=None, groups=int(call.attrs.groups))
    act = r.values.get(call.args[0])
    if isinstance(act, QuantAct):
        if not isinstance(wdesc, QuantConst):
            raise UnsupportedError("a quantized activation with float weights")
        if np.any(wdesc.zero_point != 0):
            raise UnsupportedError("weights with a non-zero zero point")
        stage.weight, stage.act = wdesc.q, act
        stage.w_scale = np.broadcast_to(wdesc.scale.reshape(-1), (wdesc.q.shape[0],)).copy()
    else:
        if isinstance(wdesc, QuantConst):
            raise UnsupportedError("float activation with quantized weights")
        stage.weight = wdesc.astype(np.float32)
    return stage


def _stage_op(r: CompositeReader, call, cur) -> tuple:
    op = call.op.name
    if op not in SUPPORTED_OPS:
        raise UnsupportedError(f"{op} inside a fused group")
    operands = []
    for a in call.args:
        if isinstance(a, relax.Var) and a in cur:
            operands.append(cur[a])
            continue
        value = r.value(a)
        if value is None:
            if op == "relax.clip":
                continue  # the bounds: PrimValues, carried in `bounds`
            raise UnsupportedError(f"operand of {op} is not a constant")
        operands.append(("const", value))
    return op, tuple(operands), clip_bounds(call) if op == "relax.clip" else None


def _read_stages(r: CompositeReader):
    stages, x, cur = [], None, {}
    for b in r.bindings():
        call = b.value
        op = call.op.name
        if op == DEQUANTIZE:
            r.dequantize(b.var, call)
        elif r.alias_constant(b.var, call):
            pass
        elif op == "relax.nn.conv2d":
            stage = _conv_stage(r, call)
            if x is None:
                x = stage.act.source if stage.act is not None else r.resolve(call.args[0])
            stages.append(stage)
            cur = {b.var: ACC}
        elif not stages:
            raise UnsupportedError(f"{op} before the first conv of a group")
        elif op == QUANTIZE:
            if stages[-1].act is None:
                raise UnsupportedError("quantize after a float conv")
            stages[-1].out = (r.per_tensor(call, "quantize"), output_dtype(call, "quantize"))
        else:
            stages[-1].ops.append(_stage_op(r, call, cur))
            cur[b.var] = Ref("val", len(stages[-1].ops) - 1)
    return stages, x


def _integer_epilogue(kernel: Kernel, stage: Stage) -> Epilogue:
    """quantize(act(conv + bias)): only a bias add and ReLU/Clip may sit in between."""
    bias, acts = None, []
    for op, operands, bounds in stage.ops:
        if op == "relax.add" and operands[0] == ACC and operands[1][0] == "const" \
                and bias is None:
            bias = real_value(operands[1][1])
        elif op in ("relax.nn.relu", "relax.clip"):
            acts.append((op, bounds))
        else:
            raise UnsupportedError(f"{op} inside an integer conv stage (supported: bias add, "
                                   "ReLU, Clip)")
    out, dtype = stage.out
    requant, arrays = requantization(stage.act.params.scale, stage.w_scale, out, dtype,
                                     activation_range(acts), bias)
    return kernel.requant_epilogue(requant, arrays)


def _float_epilogue(kernel: Kernel, stage: Stage) -> Epilogue:
    def ref(o):
        if not isinstance(o, tuple):
            return o
        arr = real_value(o[1]).astype(np.float32)
        return Ref("scalar", float(arr.reshape(()))) if arr.size == 1 else \
            Ref("channel", kernel.add_channel(arr))

    return Epilogue(tuple(EpilogueOp(op, tuple(ref(o) for o in operands), bounds)
                          for op, operands, bounds in stage.ops))


def read_composite(func: relax.Function, args) -> Kernel:
    """A conv / dw_pw / pw_dw composite -> its stages, input and epilogues."""
    stages, x = _read_stages(CompositeReader(func, args))
    kernel = Kernel(stages=stages, x=x)
    for stage in stages:
        make = _integer_epilogue if stage.integer else _float_epilogue
        kernel.epilogues.append(make(kernel, stage))
    return kernel


# -- single-op layers: add, pool, dense ---------------------------------------------------

@dataclass
class _LayerParts:
    inputs: list = field(default_factory=list)  # QuantAct of each dequantized activation
    anchor: relax.Call | None = None
    bias: relax.Expr | None = None  # dense
    acts: list = field(default_factory=list)  # (op, bounds)
    out: tuple | None = None  # (QuantParams, dtype)


def _layer_parts(r: CompositeReader, kind: str) -> _LayerParts:
    parts = _LayerParts()
    for b in r.bindings():
        call = b.value
        op = call.op.name
        if op == DEQUANTIZE:
            value = r.dequantize(b.var, call)
            if isinstance(value, QuantAct):
                parts.inputs.append(value)
        elif op == "relax.permute_dims":
            r.values[b.var] = r.values.get(call.args[0])
        elif op in ("relax.add", "relax.mean", "relax.matmul") and parts.anchor is None:
            parts.anchor = call
        elif op == "relax.add" and kind == "dense":
            parts.bias = call.args[1]
        elif op in ("relax.nn.relu", "relax.clip"):
            parts.acts.append((op, clip_bounds(call) if op == "relax.clip" else None))
        elif op == QUANTIZE:
            parts.out = (r.per_tensor(call, kind), output_dtype(call, kind))
        else:
            raise UnsupportedError(f"{op} inside a {kind} group")
    return parts


def _read_add(r: CompositeReader, parts: _LayerParts):
    from ..kernels.eltwise import AddKernelSpec, add_multipliers
    from ..kernels.requant import activation_bounds

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


def _read_pool(r: CompositeReader, parts: _LayerParts):
    from ..kernels.pool import PoolKernelSpec

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


def _read_dense(r: CompositeReader, parts: _LayerParts):
    from ..kernels.dense import DenseKernelSpec

    kernel = Kernel(stages=[], x=None)
    if parts.out is None:
        x, wt = r.resolve(parts.anchor.args[0]), r.constant(parts.anchor.args[1])  # [K, O]
        ops = ()
        if parts.bias is not None:
            bias = r.constant(parts.bias).reshape(-1).astype(np.float32)
            ops = (EpilogueOp("relax.add", (ACC, Ref("channel", kernel.add_channel(bias)))),)
        spec = DenseKernelSpec(shape_of(x), wt.shape[1], Epilogue(ops),
                               tuple(kernel.channel_shapes), tuple(kernel.channel_dtypes),
                               str(x.ty.dtype))
        return spec, [x, relax.const(np.ascontiguousarray(wt.T))] + kernel.channel_tensors
    (q,) = parts.inputs
    w = r.values[parts.anchor.args[1]]
    if np.any(w.zero_point != 0):
        raise UnsupportedError("dense weights with a non-zero zero point")
    w_scale = np.broadcast_to(w.scale.reshape(-1), (w.q.shape[0],))
    bias = r.values[parts.bias].real() if parts.bias is not None else None
    requant, arrays = requantization(q.params.scale, w_scale, *parts.out,
                                     activation_range(parts.acts), bias)
    epilogue = kernel.requant_epilogue(requant, arrays)
    spec = DenseKernelSpec(shape_of(q.source), w.q.shape[0], epilogue,
                           tuple(kernel.channel_shapes), tuple(kernel.channel_dtypes),
                           str(q.source.ty.dtype), q.params.zero_point, str(w.q.dtype))
    return spec, [q.source, relax.const(w.q)] + kernel.channel_tensors


_LAYER_READERS = {"add": _read_add, "pool": _read_pool, "dense": _read_dense}


def read_layer(kind: str, func: relax.Function, args):
    """(spec, call_tir arguments) of a ``gap8.add`` / ``gap8.pool`` / ``gap8.dense`` group."""
    r = CompositeReader(func, args)
    return _LAYER_READERS[kind](r, _layer_parts(r, kind))


# -- int8 elementwise: tables and products ---------------------------------------------------

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
    from ..kernels.lut import LutKernelSpec

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
    from ..kernels.lut import MulKernelSpec

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
