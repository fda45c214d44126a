"""Integer data movement where the values are integers: remove quantize/dequantize round trips
around ops that only move values.

``quantize(op(dequantize(x, s, z)), s, z)`` with the same scale and zero point on both sides is
``op(x)`` on the int8 tensor when ``op`` only moves, drops or repeats values: a reshape
(flatten before a classifier: an alias in the C), a layout transpose (a Keras model's NHWC input
Transpose), squeeze/expand_dims/flatten, a slice, a nearest-neighbour resize (an FPN's
upsampling: it copies values), a concat of tensors that all carry those
parameters, and a constant pad whose value is 0.0 (its int8 value: the zero point, exactly:
quantize(0.0) = z). ``quantize(dequantize(x, s, z), s, z)`` is ``x``. Each would otherwise run
in float between two integer kernels (dequantize, the op on float tensors four times the size,
quantize). The rewrite changes no integer: dequantize then quantize with the same parameters is
the identity on int8, and moving values commutes with both.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

#: ops that only move values (one data input first), rewritten onto the integers
MOVES = ("relax.reshape", "relax.permute_dims", "relax.squeeze", "relax.expand_dims",
         "relax.flatten", "relax.strided_slice", "relax.nn.pad", "relax.image.resize2d")

#: ops whose further operands (after the data) are matched as they are
_EXTRA_OPERANDS = {"relax.reshape": 1, "relax.strided_slice": 3, "relax.image.resize2d": 1}


def _consts(*exprs):
    if not all(isinstance(e, tvm.ir.expr.GenericConst) for e in exprs):
        return None
    return [e.value.numpy() for e in exprs]


def _same_qparams(dq_call, q_call) -> bool:
    """Equal scalar scale and zero point on the dequantize and the quantize (per-channel
    parameters would be re-read along a moved axis: not rewritten)."""
    vals = _consts(dq_call.args[1], dq_call.args[2], q_call.args[1], q_call.args[2])
    if vals is None or any(np.size(v) != 1 for v in vals):
        return False
    return np.array_equal(vals[0], vals[2]) and np.array_equal(vals[1], vals[3])


def _integer_move(move, data, zero_point):
    """``move`` (a call of one of MOVES or a concat) on the integer ``data`` (a var, or the
    list of vars of a concat), keeping its ONNX span; None if its values are not integers."""
    op = move.op.name
    if op == "relax.concat":
        new = relax.op.concat(data, axis=move.attrs.axis)
    elif op == "relax.image.resize2d":
        if move.attrs.method != "nearest_neighbor" or \
                move.attrs.coordinate_transformation_mode == "tf_crop_and_resize":
            return None  # interpolates (or extrapolates): new values
        new = relax.Call(move.op, [data, *move.args[1:]], move.attrs, move.ty_args)
    elif op == "relax.nn.pad":
        if move.attrs.pad_mode != "constant" or float(move.attrs.pad_value) != 0.0:
            return None  # another value is a float the integers may not hold exactly
        new = relax.op.nn.pad(data, move.attrs.pad_width, "constant", float(zero_point))
    else:
        new = relax.Call(move.op, [data, *move.args[1:]], move.attrs, move.ty_args)
    dtype = str(data[0].ty.dtype if isinstance(data, list) else data.ty.dtype)
    ty = relax.TensorType(move.ty.shape, dtype)
    # giving the type keeps the builder from rebuilding the call (and dropping the span)
    return relax.Call(new.op, new.args, new.attrs, new.ty_args, span=move.span, ret_ty=ty)


class _Rewriter:
    """The rewriter of one function: ``bound`` maps its vars to their values (a concat's
    fields are vars bound to the dequantizes)."""

    def __init__(self, func, pattern_parts):
        self.bound = {b.var: b.value for block in func.body.blocks for b in block.bindings}
        self.x, self.dq, self.move = pattern_parts

    def _dequantized(self, expr, q_call):
        """The int8 tensor ``expr`` dequantizes with ``q_call``'s parameters, or None."""
        dq = self.bound.get(expr, expr)
        if not (isinstance(dq, relax.Call) and dq.op.name == "relax.dequantize"):
            return None
        if not _same_qparams(dq, q_call) or str(dq.args[0].ty.dtype) != str(q_call.ty.dtype):
            return None
        return dq.args[0]

    def __call__(self, expr, matches):
        if self.move not in matches:  # quantize(dequantize(x)) with the same parameters
            return matches[self.x] if self._dequantized(matches[self.dq], expr) is not None \
                else expr
        move = matches[self.move]
        zero_point = expr.args[2].value.numpy().reshape(())
        if move.op.name == "relax.concat":
            fields = self.bound.get(move.args[0], move.args[0])
            if not isinstance(fields, relax.Tuple):
                return expr
            data = [self._dequantized(f, expr) for f in fields.fields]
            if any(d is None for d in data):
                return expr
        else:
            data = self._dequantized(move.args[0], expr)
            if data is None:
                return expr
        new = _integer_move(move, data, zero_point)
        return expr if new is None else new


@tvm.transform.module_pass(opt_level=0, name="SimplifyQDQ")
class SimplifyQDQ:
    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        x = wildcard()
        dq = is_op("relax.dequantize")(x, is_const(), is_const())
        moves = is_op("relax.concat")(wildcard())
        for op in MOVES:
            extra = [wildcard() for _ in range(_EXTRA_OPERANDS.get(op, 0))]
            moves = moves | is_op(op)(dq, *extra)
        pattern = is_op("relax.quantize")(moves | dq, is_const(), is_const())
        for gv, func in list(mod.functions_items()):
            if isinstance(func, relax.Function):
                mod[gv] = rewrite_call(pattern, _Rewriter(func, (x, dq, moves)), func)
        return mod
