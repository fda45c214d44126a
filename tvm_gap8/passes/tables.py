"""Two table kernels back to back are one table.

A lut kernel maps each 8-bit value through a 256-entry table (``kernels/lut.py``). When its
input is another lut kernel's output that nothing else reads (a Keras HardSwish
``x * relu6(x + 3) * (1/6)``: the ``relu6(x + 3)`` table, then the ``* (1/6)`` table, then the
product), the second kernel reads the first's input through the composed table
``second[first[v]]``: the same integers (the first's rounding and clamping are in its table
entries), one pass over the tensor instead of two. The merged layer is named
``first+second`` and carries both layers' ONNX nodes.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from ..ir.irutil import bindings, group_info, group_span, map_bindings
from ..kernels.lut import compose_tables
from ..ir.vocab import KIND_ATTR, LAYOUTS_ATTR


def _lut_call(mod, expr):
    """``expr`` as a lut kernel call (``call_tir(lut, (x, table))``), or None."""
    if not (isinstance(expr, relax.Call) and expr.op.same_as(tvm.ir.Op.get("relax.call_tir"))):
        return None
    attrs = mod[expr.args[0]].attrs or {}
    if KIND_ATTR not in attrs or str(attrs[KIND_ATTR]) != "lut":
        return None
    return expr


def _uses(func) -> dict:
    count: dict = {}
    for b in bindings(func):
        for arg in _operands(b.value):
            count[arg] = count.get(arg, 0) + 1
    body = func.body.body
    for v in (body.fields if isinstance(body, relax.Tuple) else [body]):
        count[v] = count.get(v, 0) + 1
    return count


def _operands(value):
    if not isinstance(value, relax.Call):
        return []
    out = []
    for a in value.args:
        out += list(a.fields) if isinstance(a, relax.Tuple) else [a]
    return out


def _merged(mod, first, second):
    """``second`` reading ``first``'s input through the composed table, or None when the two
    kernels differ in layouts or types."""
    f1, f2 = mod[first.args[0]], mod[second.args[0]]
    if str(f1.attrs[LAYOUTS_ATTR]) != str(f2.attrs[LAYOUTS_ATTR]):
        return None
    (x, t1), (mid, t2) = first.args[1].fields, second.args[1].fields
    if not all(isinstance(t, tvm.ir.expr.GenericConst) for t in (t1, t2)) or \
            str(x.ty.dtype) != str(mid.ty.dtype):
        return None  # the second kernel's input type must take the first's input
    table = compose_tables(t1.value.numpy(), t2.value.numpy(), str(mid.ty.dtype))
    args = relax.Tuple([x, relax.const(table, str(t2.ty.dtype))])
    a, b = group_info(first) or {}, group_info(second) or {}
    info = {"layer": f"{a.get('layer', '?')}+{b.get('layer', '?')}",
            "onnx_nodes": a.get("onnx_nodes", []) + b.get("onnx_nodes", [])}
    return relax.Call(second.op, [second.args[0], args], second.attrs, second.ty_args,
                      span=group_span(info), ret_ty=second.ty)


@tvm.transform.module_pass(opt_level=0, name="MergeTables")
class MergeTables:
    """Every lut kernel whose input is the output of another lut kernel read by nothing else
    reads that kernel's input through the composed table (the first kernel then unused)."""

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        for _ in range(256):  # each round merges one table into the next in every chain
            func = mod["main"]
            uses, bound = _uses(func), {b.var: b.value for b in bindings(func)}

            def merge(b, uses=uses, bound=bound):
                second = _lut_call(mod, b.value)
                mid = second.args[1].fields[0] if second is not None else None
                first = _lut_call(mod, bound.get(mid)) if mid is not None else None
                if first is None or uses.get(mid, 0) != 1:
                    return None
                return _merged(mod, first, second)

            new = map_bindings(func, merge)
            if new.same_as(func):
                break
            mod["main"] = new
            mod = relax.transform.DeadCodeElimination(["main"])(mod)  # the first kernels
        return mod
