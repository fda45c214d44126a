"""Remove quantize/dequantize round trips that change nothing.

``quantize(reshape(dequantize(x, s, z)), s, z)`` is ``reshape(x)`` on the int8 tensor (a
flatten before the classifier), and ``quantize(dequantize(x, s, z), s, z)`` is ``x``: both
would otherwise run in float between two integer kernels.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard


def _same_qparams(a_scale, a_zp, b_scale, b_zp) -> bool:
    vals = []
    for e in (a_scale, a_zp, b_scale, b_zp):
        if not isinstance(e, tvm.ir.expr.GenericConst):
            return False
        vals.append(e.value.numpy())
    return np.array_equal(vals[0], vals[2]) and np.array_equal(vals[1], vals[3])


@tvm.transform.module_pass(opt_level=0, name="SimplifyQDQ")
class SimplifyQDQ:
    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        x = wildcard()
        dq = is_op("relax.dequantize")(x, is_const(), is_const())
        shape = wildcard()
        reshaped = is_op("relax.reshape")(dq, shape)
        pattern = is_op("relax.quantize")(reshaped | dq, is_const(), is_const())

        def rewriter(expr, matches):
            dq_call = matches[dq]
            if not _same_qparams(dq_call.args[1], dq_call.args[2], expr.args[1], expr.args[2]):
                return expr
            if str(dq_call.args[0].ty.dtype) != str(expr.ty.dtype):
                return expr
            if reshaped in matches:
                old = matches[reshaped]
                new = relax.op.reshape(matches[x], old.args[1])
                ty = relax.TensorType(old.ty.shape, str(matches[x].ty.dtype))
                # keep the ONNX node name (the flatten) on the integer reshape; giving the type
                # keeps the builder from rebuilding the call (and dropping the span)
                return relax.Call(new.op, new.args, new.attrs, new.ty_args, span=old.span,
                                  ret_ty=ty)
            return matches[x]

        for gv, func in list(mod.functions_items()):
            if isinstance(func, relax.Function):
                mod[gv] = rewrite_call(pattern, rewriter, func)
        return mod
