"""Float ``exp`` computed the same way by every build: in double, rounded once to float.

``expf`` is not correctly rounded in glibc (about 1 input in 1,500 is an ulp away from the
correctly rounded float) and picolibc's soft-float ``expf`` differs from glibc's on other
inputs, so a float kernel calling ``expf`` gives the LLVM build (glibc) and the emitted C
(picolibc on rv32 and GAP8) different floats. ``exp`` in double rounded to float is the
correctly rounded float unless the double lands within its own last bits of a tie (about one
input in 2**29), whatever libm computes the double: both builds run this rewrite on their TIR
before lowering the intrinsics (``compiler.build_host``, ``emitc.plainc``).
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import tirx


def exp_in_double_func(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """``func`` with every float32 ``exp(x)`` replaced by ``float(exp(double(x)))``, and every
    float32 ``sigmoid(x)`` by ``1 / (1 + that exp(0 - x))`` (what ``LowerIntrin`` writes)."""
    exp, sigmoid = tvm.ir.Op.get("tirx.exp"), tvm.ir.Op.get("tirx.sigmoid")

    def exp_double(x):
        return tirx.Cast("float32", tirx.exp(tirx.Cast("float64", x)))

    def visit(call):
        if str(call.ty) != "float32":
            return call
        if call.op.same_as(exp):
            return exp_double(call.args[0])
        if call.op.same_as(sigmoid):  # what LowerIntrin would write, with exp as above
            one, zero = tirx.const(1.0, "float32"), tirx.const(0.0, "float32")
            return one / (one + exp_double(zero - call.args[0]))
        return call

    return func.with_body(tvm_ffi.structural_map(func.body, (tvm.ir.expr.Call, visit)))


@tvm.transform.module_pass(opt_level=0, name="Gap8ExpInDouble")
def exp_in_double(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """``exp_in_double_func`` on every PrimFunc of ``mod``."""
    out = {}
    for gv, func in mod.functions_items():
        out[gv] = exp_in_double_func(func) if isinstance(func, tirx.PrimFunc) else func
    return tvm.IRModule(out, attrs=mod.attrs)


#: the TIR pipeline ``compiler.build_host`` names: ``exp_in_double``, then TVM's default
TIR_PIPELINE = "gap8_exp_in_double"


def _tir_pipeline():
    default, finalize_host, finalize_device = tvm.tirx.get_tir_pipeline("default")

    return tvm.transform.Sequential([exp_in_double, default]), finalize_host, finalize_device


def register_tir_pipeline() -> None:
    """Register ``TIR_PIPELINE`` with TVM (again on re-import: the same factory)."""
    tvm.tirx.register_tir_pipeline(TIR_PIPELINE, _tir_pipeline)
