"""Reading a ``gap8.*`` composite function's body: the one reader every kernel family uses.

A composite is called with arguments; its bindings refer to its parameters, to constants, and
(in a QDQ model) to ``dequantize`` of int8 constants or activations. :class:`CompositeReader`
resolves all of that once, so a family's reader only says what its ops mean. Quantization
parameters travel as small typed records (:class:`QuantParams`, :class:`QuantConst`,
:class:`QuantAct`), and the requantization of an int32 accumulator is built by one function,
:func:`requantization`, for conv, dense and fused kernels alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ..errors import UnsupportedError
from .epilogue import Requant
from .requant import DEFAULT_REQUANT, activation_bounds, float32_scale, requant_mode

DEQUANTIZE, QUANTIZE = "relax.dequantize", "relax.quantize"


@dataclass(frozen=True)
class QuantParams:
    """Per-tensor quantization: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class QuantConst:
    """A quantized constant (weights, bias) entering through ``dequantize``."""

    q: np.ndarray
    scale: np.ndarray  # float64, one value or one per ``axis`` entry
    zero_point: np.ndarray  # int64, same
    axis: int

    def real(self) -> np.ndarray:
        q = self.q.astype(np.int64)
        if self.scale.size == 1:
            return (q - self.zero_point.reshape(())) * float(self.scale.reshape(()))
        shape = [1] * q.ndim
        shape[self.axis] = -1
        return (q - self.zero_point.reshape(shape)) * self.scale.reshape(shape)


@dataclass(frozen=True)
class QuantAct:
    """An activation entering through ``dequantize``: its integer source and parameters."""

    source: relax.Expr
    params: QuantParams


def const_array(e):
    """The numpy value of a Relax tensor constant (None for anything else)."""
    if isinstance(e, tvm.ir.expr.GenericConst):
        return e.value.numpy()
    return None


def shape_of(e) -> tuple:
    return tuple(int(v) for v in e.ty.shape.values)


class CompositeReader:
    """The bindings of a composite function called with ``args``, operands resolved;
    ``requant``: the requantization mode of the compile (``requant.REQUANT_MODES``), for the
    kernels it reads."""

    def __init__(self, func: relax.Function, args, requant: str = DEFAULT_REQUANT):
        self.func = func
        self.requant = requant_mode(requant).name
        self.env = dict(zip(func.params, args))
        self.values: dict = {}  # var -> QuantConst | QuantAct | ndarray (a reshaped constant)

    def bindings(self):
        for block in self.func.body.blocks:
            yield from block.bindings

    def resolve(self, e):
        """Through the composite's parameters to the caller's argument."""
        while isinstance(e, relax.Var) and e in self.env:
            e = self.env[e]
        return e

    def constant(self, e):
        return const_array(self.resolve(e))

    def value(self, e):
        """A constant operand: a literal array, or the QuantConst / array bound to ``e``."""
        e = self.resolve(e)
        arr = const_array(e)
        return arr if arr is not None else self.values.get(e)

    def alias_constant(self, var, call) -> bool:
        """``var = reshape / permute_dims(constant)``: the same per-channel data (its shape
        does not matter to the kernels). False if ``call`` is not one."""
        if call.op.name not in ("relax.reshape", "relax.permute_dims"):
            return False
        value = self.value(call.args[0])
        if value is None or isinstance(value, QuantAct):
            return False
        self.values[var] = value
        return True

    def per_tensor(self, call, what: str) -> QuantParams:
        """The scalar (scale, zero point) of a quantize/dequantize call."""
        scale, zp = self.constant(call.args[1]), self.constant(call.args[2])
        if scale is None or zp is None or scale.size != 1 or zp.size != 1:
            raise UnsupportedError(f"{what}: quantization parameters must be per-tensor "
                                   "constants")
        return QuantParams(float(scale.reshape(())), int(zp.reshape(())))

    def dequantize(self, var, call):
        """Record what ``var = dequantize(...)`` brings in: a QuantConst or a QuantAct."""
        src = self.resolve(call.args[0])
        q = const_array(src)
        if q is not None:
            scale, zp = self.constant(call.args[1]), self.constant(call.args[2])
            if scale is None or zp is None:
                raise UnsupportedError("dequantize with non-constant scale/zero point")
            value = QuantConst(q, scale.astype(np.float64), zp.astype(np.int64),
                               int(call.attrs.axis))
        else:
            value = QuantAct(src, self.per_tensor(call, "a dequantized activation"))
        self.values[var] = value
        return value


def activation_range(acts) -> tuple[float | None, float | None]:
    """The real-valued clamp of a chain of ReLU / Clip ops: ``acts`` as (op name, bounds)."""
    lo = hi = None
    for op, bounds in acts:
        if op == "relax.nn.relu":
            lo = 0.0 if lo is None else max(lo, 0.0)
        elif op == "relax.clip":
            lo = bounds[0] if lo is None else max(lo, bounds[0])
            hi = bounds[1] if hi is None else min(hi, bounds[1])
    return lo, hi


def clip_bounds(call) -> tuple[float, float]:
    return float(call.args[1].value), float(call.args[2].value)


def output_dtype(call, what: str) -> str:
    dtype = str(call.ty.dtype)
    if dtype not in ("int8", "uint8"):
        raise UnsupportedError(f"{what}: activations of type {dtype} (int8 and uint8 are "
                               "supported)")
    return dtype


def real_value(value) -> np.ndarray:
    """The float value of a constant operand (a literal, or a dequantized QuantConst)."""
    return value.real() if isinstance(value, QuantConst) else value.astype(np.float64)


def requantization(in_scale: float, w_scale: np.ndarray, out: QuantParams, out_dtype: str,
                   act_range, bias_real: np.ndarray | None, mode: str = DEFAULT_REQUANT,
                   in_zp: int = 0, weights: np.ndarray | None = None):
    """(Requant without its tensor indices, [int32 bias, int32 multiplier, int32 shift]) of a
    conv or dense output: the bias in accumulator units, the float32 scale
    ``fl32(fl32(s_x s_w) / s_y)`` as multiplier and shift per output channel in the encoding of
    requantization mode ``mode``, the activation folded into the clamp.

    The input zero point leaves the MACs: with ``weights`` (integer, output channels first) the
    bias also holds ``-in_zp * sum(w[o])``, so the kernel accumulates ``x * w`` and the sum
    equals ``sum((x - in_zp) * w)`` plus the bias exactly (padded taps hold ``in_zp``; weights
    have no zero point: ``_conv_stage`` / ``_int_weights`` refuse one)."""
    cout = w_scale.size
    bias = np.zeros(cout, np.int64)
    if bias_real is not None:
        real = np.broadcast_to(bias_real.reshape(-1), (cout,))
        bias = np.round(real / (in_scale * w_scale)).astype(np.int64)
    if weights is not None and in_zp:
        bias = bias - in_zp * weights.reshape(cout, -1).astype(np.int64).sum(axis=1)
    if np.abs(bias).max(initial=0) >= 2 ** 31:
        raise UnsupportedError("int32 bias overflow")
    rq = requant_mode(mode)
    mult, shift = zip(*(rq.multiplier(m) for m in float32_scale(in_scale, w_scale, out.scale)))
    lo, hi = activation_bounds("clip", *act_range, out.scale, out.zero_point, out_dtype)
    arrays = [bias.astype(np.int32), np.array(mult, np.int32), np.array(shift, np.int32)]
    return Requant(out.zero_point, lo, hi, out_dtype, mode=mode, min_shift=min(shift)), arrays


@dataclass
class LayerParts:
    inputs: list = field(default_factory=list)  # QuantAct of each dequantized activation
    anchor: relax.Call | None = None
    bias: relax.Expr | None = None  # dense
    acts: list = field(default_factory=list)  # (op, bounds)
    out: tuple | None = None  # (QuantParams, dtype)


def layer_parts(r: CompositeReader, kind: str) -> LayerParts:
    """The parts of a single-op layer (add, pool, dense): its dequantized inputs, the anchor
    op, a dense bias, ReLU/Clip, and the closing quantize."""
    parts = LayerParts()
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
