"""Read a gap8 composite function's body into conv stages the schedules can build.

A stage is ``conv2d -> elementwise ops`` (float) or, in a QDQ model,
``dequantize -> conv2d(dequantize(int8 weights)) -> [+ dequantize(int32 bias)] -> [ReLU/Clip]
-> quantize`` which becomes integer arithmetic: int8 operands with zero points, an int32
accumulator and bias, and requantization by integer multiply and shift with the activation
folded into the clamp (``schedules/requant.py``). Nothing of the float graph is left inside an
integer stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ..errors import UnsupportedError
from ..schedules.epilogue import SUPPORTED_OPS, Epilogue
from ..schedules.fused import ConvGeom
from ..schedules.requant import activation_bounds, float32_scale, quantize_multiplier


def _ints(a):
    return [int(v) for v in a]


def conv_geom(call) -> ConvGeom:
    w = [int(v) for v in call.args[1].ty.shape.values]
    a = call.attrs
    return ConvGeom(in_channels=int(call.args[0].ty.shape.values[1]), out_channels=w[0],
                    kernel=w[2], stride=_ints(a.strides)[0], padding=tuple(_ints(a.padding)))


@dataclass
class Stage:
    conv: relax.Call
    weight: np.ndarray  # float32, or int8 for an integer stage
    groups: int
    in_zp: int = 0
    in_scale: float | None = None  # set for an integer stage
    ops: list = field(default_factory=list)  # float epilogue program
    requant: tuple | None = None  # (zp, lo, hi, bias int32[C], mult int32[C], shift int32[C])
    w_scale: np.ndarray | None = None  # per output channel, integer stages
    out_scale: float | None = None

    @property
    def integer(self) -> bool:
        return self.requant is not None


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


def _const_array(e):
    if isinstance(e, tvm.ir.expr.GenericConst):
        return e.value.numpy()
    return None


def read_composite(func: relax.Function, args) -> Kernel:
    env = {p: a for p, a in zip(func.params, args)}
    values: dict = {}  # var -> description

    def resolve(e):
        while isinstance(e, relax.Var):
            if e in env:
                e = env[e]
            elif e in values and values[e][0] == "alias":
                e = values[e][1]
            else:
                break
        return e

    def const_of(e):
        """A constant array for e: a literal, a dequantized literal, or a reshape of one."""
        e = resolve(e)
        arr = _const_array(e)
        if arr is not None:
            return ("float", arr)
        if isinstance(e, relax.Var) and e in values and values[e][0] == "const":
            return values[e][1]
        return None

    stages: list[Stage] = []
    kernel_x = None
    cur = None  # var -> operand within the current stage
    for block in func.body.blocks:
        for b in block.bindings:
            call = b.value
            op = call.op.name
            if op == "relax.dequantize":
                src = resolve(call.args[0])
                scale, zp = _const_array(resolve(call.args[1])), _const_array(resolve(call.args[2]))
                if scale is None or zp is None:
                    raise UnsupportedError("dequantize with non-constant scale/zero point")
                q = _const_array(src)
                if q is not None:  # constant weights / bias
                    values[b.var] = ("const", ("q", q, scale.astype(np.float64),
                                               zp.astype(np.int64), int(call.attrs.axis)))
                else:  # an activation entering a stage
                    if scale.size != 1 or zp.size != 1:
                        raise UnsupportedError("per-channel activation quantization")
                    values[b.var] = ("dq_act", src, float(scale.reshape(())),
                                     int(zp.reshape(())))
                continue
            if op in ("relax.reshape", "relax.permute_dims") and const_of(call.args[0]):
                kind, *rest = const_of(call.args[0])
                values[b.var] = ("const", (kind, *rest))  # per-channel data: shape irrelevant
                continue
            if op == "relax.nn.conv2d":
                src = call.args[0]
                wdesc = const_of(call.args[1])
                if wdesc is None:
                    raise UnsupportedError("conv2d with non-constant weights")
                stage = Stage(conv=call, weight=None, groups=int(call.attrs.groups))
                if src in values and values[src][0] == "dq_act":
                    _, act_src, scale, zp = values[src]
                    if wdesc[0] != "q":
                        raise UnsupportedError("a quantized activation with float weights")
                    _, q, wscale, wzp, _axis = wdesc
                    if np.any(wzp != 0):
                        raise UnsupportedError("weights with a non-zero zero point")
                    stage.weight, stage.in_zp, stage.in_scale = q, zp, scale
                    stage.w_scale = np.broadcast_to(wscale.reshape(-1), (q.shape[0],)).copy()
                    if kernel_x is None:
                        kernel_x = act_src
                else:
                    if wdesc[0] == "q":
                        raise UnsupportedError("float activation with quantized weights")
                    stage.weight = wdesc[1].astype(np.float32)
                    if kernel_x is None:
                        kernel_x = resolve(src)
                stages.append(stage)
                cur = {b.var: ("acc",)}
                continue
            if not stages:
                raise UnsupportedError(f"{op} before the first conv of a group")
            stage = stages[-1]
            if op == "relax.quantize":
                _finish_integer_stage(stage, call, resolve, cur, b.var, values)
                continue
            if op not in SUPPORTED_OPS:
                raise UnsupportedError(f"{op} inside a fused group")
            operands = []
            for a in call.args:
                if isinstance(a, relax.Var) and a in cur:
                    operands.append(cur[a])
                    continue
                c = const_of(a)
                if c is None:
                    if op == "relax.clip":
                        continue  # the bounds: PrimValues, carried in `extra`
                    raise UnsupportedError(f"operand of {op} is not a constant")
                operands.append(("constant", c))
            extra = (float(call.args[1].value), float(call.args[2].value)) \
                if op == "relax.clip" else None
            stage.ops.append((op, tuple(operands), extra))
            cur[b.var] = ("val", len(stage.ops) - 1)
    kernel = Kernel(stages=stages, x=kernel_x)
    for stage in stages:
        kernel.epilogues.append(_epilogue(kernel, stage))
    return kernel


def _finish_integer_stage(stage, qcall, resolve, cur, var, values):
    """quantize(act(conv + bias)) -> requant parameters. Only bias add and ReLU/Clip may sit
    between the conv and the quantize of an integer stage."""
    if stage.in_scale is None:
        raise UnsupportedError("quantize after a float conv")
    sy = _const_array(resolve(qcall.args[1]))
    zy = _const_array(resolve(qcall.args[2]))
    if sy is None or zy is None or sy.size != 1 or zy.size != 1:
        raise UnsupportedError("quantize needs a constant per-tensor scale and zero point")
    sy, zy = float(sy.reshape(())), int(zy.reshape(()))
    out_dtype = str(qcall.ty.dtype)
    if out_dtype not in ("int8", "uint8"):
        raise UnsupportedError(f"activations of type {out_dtype} (int8 and uint8 are supported)")
    cout = stage.weight.shape[0]
    acc_scale = stage.in_scale * stage.w_scale  # per output channel
    bias = np.zeros(cout, np.int64)
    lo_real, hi_real = None, None
    for op, operands, extra in stage.ops:
        if op == "relax.add" and operands[0] == ("acc",) and operands[1][0] == "constant" \
                and not bias.any():
            desc = operands[1][1]
            real = _dequantized(desc).reshape(-1)
            real = np.broadcast_to(real, (cout,))
            bias = np.round(real / acc_scale).astype(np.int64)
        elif op == "relax.nn.relu":
            lo_real = 0.0 if lo_real is None else max(lo_real, 0.0)
        elif op == "relax.clip":
            lo, hi = extra
            lo_real = lo if lo_real is None else max(lo_real, lo)
            hi_real = hi if hi_real is None else min(hi_real, hi)
        else:
            raise UnsupportedError(f"{op} inside an integer conv stage (supported: bias add, "
                                   "ReLU, Clip)")
    if np.abs(bias).max(initial=0) >= 2 ** 31:
        raise UnsupportedError("int32 bias overflow")
    scales = float32_scale(stage.in_scale, stage.w_scale, sy)
    mult, shift = zip(*(quantize_multiplier(m) for m in scales))
    lo, hi = activation_bounds("clip", lo_real, hi_real, sy, zy, out_dtype)
    stage.requant = (zy, lo, hi, bias.astype(np.int32), np.array(mult, np.int32),
                     np.array(shift, np.int32), out_dtype)
    stage.out_scale = sy
    # a consumer stage reads this output through dequantize(quantize(...)): alias it
    values[var] = ("int8_out", stage)


def _dequantized(desc):
    if desc[0] == "float":
        return desc[1].astype(np.float64)
    _, q, scale, zp, axis = desc
    q = q.astype(np.int64)
    if scale.size == 1:
        return (q - zp.reshape(())) * float(scale.reshape(()))
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q - zp.reshape(shape)) * scale.reshape(shape)


def _epilogue(kernel: Kernel, stage: Stage) -> Epilogue:
    if stage.integer:
        zy, lo, hi, bias, mult, shift, out_dtype = stage.requant
        ops = (("gap8.requant", (("acc",), ("channel", kernel.add_channel(bias)),
                                 ("channel", kernel.add_channel(mult)),
                                 ("channel", kernel.add_channel(shift))),
                (zy, lo, hi, out_dtype)),)
        return Epilogue(ops)
    ops = []
    for op, operands, extra in stage.ops:
        new = []
        for o in operands:
            if o[0] != "constant":
                new.append(o)
                continue
            arr = _dequantized(o[1]).astype(np.float32)
            if arr.size == 1:
                new.append(("scalar", float(arr.reshape(()))))
            else:
                new.append(("channel", kernel.add_channel(arr)))
        ops.append((op, tuple(new), extra))
    return Epilogue(tuple(ops))


def read_layer(kind: str, func: relax.Function, args):
    """(spec, call_tir arguments) of a ``gap8.add`` / ``gap8.pool`` / ``gap8.dense`` group."""
    from ..schedules.dense import DenseKernelSpec
    from ..schedules.eltwise import AddKernelSpec, add_multipliers
    from ..schedules.pool import PoolKernelSpec

    env = {p: a for p, a in zip(func.params, args)}
    values = {}

    def resolve(e):
        while isinstance(e, relax.Var) and e in env:
            e = env[e]
        return e

    def scalar(e):
        arr = _const_array(resolve(e))
        if arr is None or arr.size != 1:
            raise UnsupportedError(f"{kind}: quantization parameters must be per-tensor constants")
        return arr.reshape(())

    dq_inputs = []  # (source, scale, zp) of every dequantized activation
    anchor, quant, acts = None, None, []
    for b in bindings_of(func):
        call = b.value
        op = call.op.name
        if op == "relax.dequantize":
            src = resolve(call.args[0])
            arr = _const_array(src)
            if arr is not None:
                scale = _const_array(resolve(call.args[1])).astype(np.float64)
                zp = _const_array(resolve(call.args[2])).astype(np.int64)
                values[b.var] = ("const", ("q", arr, scale, zp, int(call.attrs.axis)))
            else:
                values[b.var] = ("dq", src, float(scalar(call.args[1])), int(scalar(call.args[2])))
                dq_inputs.append(values[b.var][1:])
        elif op == "relax.permute_dims":
            values[b.var] = values.get(call.args[0])
        elif op in ("relax.add", "relax.mean", "relax.matmul") and anchor is None:
            anchor = call
        elif op == "relax.add" and kind == "dense":
            values["bias"] = call.args[1]
        elif op in ("relax.nn.relu", "relax.clip"):
            acts.append((op, (float(call.args[1].value), float(call.args[2].value))
                         if op == "relax.clip" else None))
        elif op == "relax.quantize":
            quant = (float(scalar(call.args[1])), int(scalar(call.args[2])))
            qdtype = str(call.ty.dtype)
            if qdtype not in ("int8", "uint8"):
                raise UnsupportedError(f"{kind}: activations of type {qdtype}")
        else:
            raise UnsupportedError(f"{op} inside a {kind} group")
    integer = quant is not None
    lo_real = hi_real = None
    for op, extra in acts:
        lo_real = 0.0 if op == "relax.nn.relu" else extra[0] if lo_real is None else \
            max(lo_real, extra[0])
        if op == "relax.clip":
            hi_real = extra[1] if hi_real is None else min(hi_real, extra[1])

    if kind == "add":
        if integer:
            (src_a, sa, za), (src_b, sb, zb) = dq_inputs
            sy, zy = quant
            ma, mb, n = add_multipliers(sa, sb, sy)
            lo, hi = activation_bounds("clip", lo_real, hi_real, sy, zy, qdtype)
            shape = tuple(int(v) for v in src_a.ty.shape.values)
            if {str(src_a.ty.dtype), str(src_b.ty.dtype)} != {qdtype}:
                raise UnsupportedError("add of tensors with different integer types")
            return AddKernelSpec(shape, qdtype, za, zb, ma, mb, n, zy, lo, hi), [src_a, src_b]
        a, b = (resolve(x) for x in anchor.args)
        shape = tuple(int(v) for v in a.ty.shape.values)
        return AddKernelSpec(shape, str(a.ty.dtype),
                             lo=lo_real if lo_real is not None else -np.inf,
                             hi=hi_real if hi_real is not None else np.inf), [a, b]
    if kind == "pool":
        if integer:
            ((src, sx, zx),) = dq_inputs
            sy, zy = quant
            shape = tuple(int(v) for v in src.ty.shape.values)
            m, n = quantize_multiplier(sx / (sy * shape[2] * shape[3]))
            if str(src.ty.dtype) != qdtype:
                raise UnsupportedError("pooling that changes the integer type")
            return PoolKernelSpec(shape, qdtype, zx, m, n, zy), [src]
        x = resolve(anchor.args[0])
        return PoolKernelSpec(tuple(int(v) for v in x.ty.shape.values), str(x.ty.dtype)), [x]
    # dense
    kernel = Kernel(stages=[], x=None)
    if integer:
        ((src, sx, zx),) = dq_inputs
        wdesc = values[anchor.args[1]][1]
        _, wq, wscale, wzp, _axis = wdesc
        if np.any(wzp != 0):
            raise UnsupportedError("dense weights with a non-zero zero point")
        o = wq.shape[0]
        w_scale = np.broadcast_to(wscale.reshape(-1), (o,))
        sy, zy = quant
        bias = np.zeros(o, np.int64)
        if "bias" in values:
            bdesc = values[values["bias"]][1]
            bias = np.round(_dequantized(bdesc).reshape(-1) / (sx * w_scale)).astype(np.int64)
        mult, shift = zip(*(quantize_multiplier(m) for m in float32_scale(sx, w_scale, sy)))
        lo, hi = activation_bounds("clip", lo_real, hi_real, sy, zy, qdtype)
        ops = (("gap8.requant", (("acc",), ("channel", kernel.add_channel(bias.astype(np.int32))),
                                 ("channel", kernel.add_channel(np.array(mult, np.int32))),
                                 ("channel", kernel.add_channel(np.array(shift, np.int32)))),
                (zy, lo, hi, qdtype)),)
        x_shape = tuple(int(v) for v in src.ty.shape.values)
        spec = DenseKernelSpec(x_shape, o, Epilogue(ops), tuple(kernel.channel_shapes),
                               tuple(kernel.channel_dtypes), str(src.ty.dtype), zx,
                               str(wq.dtype))
        return spec, [src, relax.const(wq)] + kernel.channel_tensors
    x = resolve(anchor.args[0])
    wt = _const_array(resolve(anchor.args[1]))  # [K, O]
    ops = []
    if "bias" in values:
        bias = _const_array(resolve(values["bias"]))
        ops.append(("relax.add", (("acc",), ("channel", kernel.add_channel(
            bias.reshape(-1).astype(np.float32)))), None))
    x_shape = tuple(int(v) for v in x.ty.shape.values)
    spec = DenseKernelSpec(x_shape, wt.shape[1], Epilogue(tuple(ops)),
                           tuple(kernel.channel_shapes), tuple(kernel.channel_dtypes),
                           str(x.ty.dtype))
    return spec, [x, relax.const(np.ascontiguousarray(wt.T))] + kernel.channel_tensors


def bindings_of(func):
    for block in func.body.blocks:
        yield from block.bindings


def _np_op(op, args, extra):
    """onnxruntime's float32 arithmetic for the elementwise ops a table may hold.

    Every op is one float32-rounded IEEE operation, so the table is the same on every CPU,
    except for transcendentals, whose numpy float32 implementations are SIMD code that may
    differ by CPU: Sigmoid's ``exp`` is evaluated in float64 and rounded to float32, then
    ``1 / (1 + e)`` in float32. (float64 ``exp`` implementations differ by at most about an
    ulp of float64; that changes the float32 rounding only for a value within ~2^-29 relative
    of a float32 rounding boundary.) ``tvm_gap8.reference.ops.sigmoid`` uses the same
    definition."""
    f32 = np.float32
    if op == "relax.add":
        return (args[0] + args[1]).astype(f32)
    if op == "relax.subtract":
        return (args[0] - args[1]).astype(f32)
    if op == "relax.multiply":
        return (args[0] * args[1]).astype(f32)
    if op == "relax.divide":
        return (args[0] / args[1]).astype(f32)
    if op == "relax.maximum":
        return np.maximum(args[0], args[1]).astype(f32)
    if op == "relax.minimum":
        return np.minimum(args[0], args[1]).astype(f32)
    if op == "relax.nn.relu":
        return np.maximum(args[0], f32(0))
    if op == "relax.clip":
        return np.clip(args[0], f32(extra[0]), f32(extra[1])).astype(f32)
    if op == "relax.sigmoid":
        e = np.exp(-np.asarray(args[0], np.float64)).astype(f32)
        return (f32(1) / (f32(1) + e)).astype(f32)
    raise UnsupportedError(f"{op} in an int8 table")


def read_lut(func: relax.Function, args):
    """``quantize(f(dequantize(x)))`` -> (LutKernelSpec, [x, table]). The table holds the int8
    output for each of the 256 inputs, computed as onnxruntime would: dequantize, f in float32,
    divide by the scale, round half to even, add the zero point, saturate."""
    from ..schedules.lut import LutKernelSpec
    from ..schedules.requant import dtype_range

    env = {p: a for p, a in zip(func.params, args)}

    def const(e):
        while isinstance(e, relax.Var) and e in env:
            e = env[e]
        return _const_array(e)

    values, x, out = {}, None, None
    for b in bindings_of(func):
        call = b.value
        op = call.op.name
        if op == "relax.dequantize":
            src = call.args[0]
            while isinstance(src, relax.Var) and src in env:
                src = env[src]
            scale, zp = np.float32(const(call.args[1]).reshape(())), int(const(call.args[2]))
            if _const_array(src) is not None:  # a quantized constant operand
                q = _const_array(src).astype(np.int64)
            else:
                x = src
                lo, _ = dtype_range(str(x.ty.dtype))
                q = np.arange(lo, lo + 256, dtype=np.int64)
            values[b.var] = ((q - zp).astype(np.float32) * scale).astype(np.float32)
        elif op == "relax.quantize":
            scale, zp = np.float32(const(call.args[1]).reshape(())), int(const(call.args[2]))
            out_dtype = str(call.ty.dtype)
            lo, hi = dtype_range(out_dtype)
            v = values[call.args[0]]
            out = np.clip(np.rint((v / scale).astype(np.float32)) + zp, lo, hi).astype(out_dtype)
        else:
            operands = []
            for a in call.args:
                if isinstance(a, relax.Var) and a in values:
                    operands.append(values[a])
                elif const(a) is not None:
                    operands.append(const(a).astype(np.float32).reshape(()))
            extra = (float(call.args[1].value), float(call.args[2].value)) \
                if op == "relax.clip" else None
            values[b.var] = _np_op(op, operands, extra)
    shape = tuple(int(v) for v in x.ty.shape.values)
    spec = LutKernelSpec(shape, str(x.ty.dtype), str(out.dtype))
    return spec, [x, relax.const(out)]


def read_mul(func: relax.Function, args):
    """``quantize(dequantize(a) * dequantize(b))`` -> (MulKernelSpec, [a, b])."""
    from ..schedules.lut import MulKernelSpec

    env = {p: a for p, a in zip(func.params, args)}

    def resolve(e):
        while isinstance(e, relax.Var) and e in env:
            e = env[e]
        return e

    dq, quant, mul = {}, None, None
    for b in bindings_of(func):
        call = b.value
        op = call.op.name
        if op == "relax.dequantize":
            dq[b.var] = (resolve(call.args[0]), float(_const_array(resolve(call.args[1]))
                                                      .reshape(())),
                         int(_const_array(resolve(call.args[2])).reshape(())))
        elif op == "relax.multiply":
            mul = call
        elif op == "relax.quantize":
            quant = (float(_const_array(resolve(call.args[1])).reshape(())),
                     int(_const_array(resolve(call.args[2])).reshape(())), str(call.ty.dtype))
    (a, sa, za), (bb, sb, zb) = dq[mul.args[0]], dq[mul.args[1]]
    sy, zy, out_dtype = quant
    if str(a.ty.dtype) != str(bb.ty.dtype):
        raise UnsupportedError("multiply of tensors with different integer types")
    scale = (np.float32(sa) * np.float32(sb)) / np.float32(sy)
    m, n = quantize_multiplier(scale)
    spec = MulKernelSpec(tuple(int(v) for v in a.ty.shape.values),
                         tuple(int(v) for v in bb.ty.shape.values), str(a.ty.dtype), za, zb, m,
                         n, zy, out_dtype)
    return spec, [a, bb]
