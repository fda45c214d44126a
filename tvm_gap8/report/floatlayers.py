"""Why a layer of an int8 model still computes in float: its kind and the reason, read off the
Relax ops of the lowered module (the ops and their operands, never the layer's name).

A layer left in float is one no integer kernel family formed; the reason is the family's own
refusal when there is one (``kernels/patterns.py``: unequal strides, a 3-D add, ...) or what the
op is: a MatMul of two activations, a Softmax, a LayerNorm written as ONNX ops (found by its
structure: mean over the last axis, subtract, square, mean, [+ eps], sqrt, divide, [affine]).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from ..ir.irutil import bindings, node_name_of
from ..kernels import patterns

#: ops read through when looking for where an operand comes from
_THROUGH = ("relax.quantize", "relax.dequantize", "relax.reshape", "relax.permute_dims",
            "relax.astype")
_ELTWISE = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide")

MATMUL_REASON = ("MatMul of two activations: no integer kernel (our dense kernel takes "
                 "constant weights)")
SOFTMAX_REASON = "Softmax: float by design, exp has no integer table over a vector"
LAYERNORM_REASON = ("LayerNorm (ReduceMean/Sub/Pow/Sqrt/Div): float, the normalisation needs a "
                    "per-row reciprocal square root")


class _Graph:
    """Producers of ``main``'s bindings and the ops of each ONNX node."""

    def __init__(self, mod: tvm.IRModule):
        self.producer, self.by_node, self.calls = {}, {}, []
        for b in bindings(mod["main"]):
            v = b.value
            if not isinstance(v, relax.Call) or not isinstance(v.op, tvm.ir.Op):
                continue
            self.producer[b.var] = v
            self.calls.append(v)
            name = node_name_of(v)
            if name and v.op.name not in ("relax.quantize", "relax.dequantize"):
                self.by_node.setdefault(name, []).append(v)

    def source(self, expr):
        """What ``expr`` is once quantize/dequantize/reshapes are read through: a Constant, a
        Call (its producer) or a Var (a parameter)."""
        while isinstance(expr, relax.Var) and expr in self.producer:
            call = self.producer[expr]
            if call.op.name not in _THROUGH:
                return call
            expr = call.args[0]
        return expr

    def is_const(self, expr) -> bool:
        return isinstance(self.source(expr), tvm.ir.expr.Constant)


def _op(expr, name) -> bool:
    return isinstance(expr, relax.Call) and expr.op.name == name


def _row_mean(call) -> bool:
    """A mean over one non-batch axis (the feature axis of a LayerNorm; onnxruntime's transpose
    optimisation may have moved it off the last position)."""
    if not _op(call, "relax.mean") or call.attrs.axis is None or len(call.attrs.axis) != 1:
        return False
    return int(call.attrs.axis[0]) % call.args[0].ty.ndim != 0


def _layer_norm_core(g: _Graph, sqrt) -> list | None:
    """mean(x) -> x - mean -> square -> mean -> [+ eps] -> sqrt (each a mean over one axis),
    or None."""
    var = g.source(sqrt.args[0])
    eps = var if _op(var, "relax.add") and g.is_const(var.args[1]) else None
    var = g.source(var.args[0]) if eps is not None else var
    if not _row_mean(var):
        return None
    sq = g.source(var.args[0])
    if not (_op(sq, "relax.power") or _op(sq, "relax.multiply")):
        return None
    d = g.source(sq.args[0])
    if not _op(d, "relax.subtract"):
        return None
    mean = g.source(d.args[1])
    if not _row_mean(mean) or not g.source(mean.args[0]).same_as(g.source(d.args[0])):
        return None
    return [c for c in (mean, d, sq, var, eps, sqrt) if c is not None]


def layer_norm_nodes(g: _Graph) -> set[str]:
    """ONNX nodes of every LayerNorm written as elementwise ops and reductions (with the
    divide by the square root and an affine by constants after it)."""
    nodes = set()
    for sqrt in (c for c in g.calls if _op(c, "relax.sqrt")):
        core = _layer_norm_core(g, sqrt)
        if core is None:
            continue
        group = list(core)
        for c in g.calls:  # the divide, then a multiply and an add by constants
            last = group[-1]
            if _op(c, "relax.divide") and g.source(c.args[1]).same_as(sqrt) or \
                    not last.same_as(sqrt) and c.op.name in ("relax.multiply", "relax.add") \
                    and g.source(c.args[0]).same_as(last) and g.is_const(c.args[1]):
                group.append(c)
        nodes |= {n for n in map(node_name_of, group) if n}
    return nodes


def _eltwise_reason(g: _Graph, call) -> str:
    op = call.op.name.replace("relax.", "")
    consts = [a for a in call.args if g.is_const(a)]
    if any(np.size(g.source(a).value.numpy()) != 1 for a in consts):
        return f"{op} by a non-scalar constant: the int8 tables take scalar constants only"
    if consts:
        return f"{op} by a constant: " + (patterns.lut_problem(call) or "no table formed")
    if op == "add":
        return "add of two activations: " + (patterns.add_problem(call) or "not formed")
    if op == "multiply":
        return "multiply of two activations: " + (patterns.mul_problem(call) or "not formed")
    return f"{op} of two activations: no integer kernel (integer kernels: Add, Mul)"


def _reason(g: _Graph, call) -> tuple[str, str]:
    """(kind, reason) of one float op."""
    op = call.op.name
    if op in ("relax.matmul", "relax.linear"):
        if not g.is_const(call.args[1]):
            return "matmul", MATMUL_REASON
        return "dense", ("matmul by constant weights: " + (patterns.dense_problem(call) or
                         "weights not in the [O, K] layout (Gemm transB=1) the int8 dense "
                         "pattern reads"))
    if op == "relax.nn.softmax":
        return "softmax", SOFTMAX_REASON
    if op == "relax.nn.layer_norm":
        return "layernorm", LAYERNORM_REASON
    if op == "relax.nn.conv2d":
        problem = patterns.conv_problem(call) or patterns.dtype_problem(call)
        return "conv", f"no integer conv kernel: {problem or 'no QDQ conv pattern matched'}"
    if op == "relax.mean":
        return "pool", f"no integer pool kernel: {patterns.pool_problem(call) or 'not formed'}"
    if op in _ELTWISE:
        return "eltwise", _eltwise_reason(g, call)
    short = op.replace("relax.", "").replace("nn.", "")
    if op in _TABLE_OPS:
        return "activation", _table_reason(short, call)
    return short, f"no GAP8 kernel for {short}: TVM's legalized op"


#: unary activations the int8 table kernel (``kernels/lut.py``) computes when it can
_TABLE_OPS = ("relax.sigmoid", "relax.nn.relu", "relax.nn.leakyrelu", "relax.clip",
              "relax.tanh")


def _table_reason(short: str, call) -> str:
    """Why the table family left a unary activation in float: its own rule (the rank), or the
    shape of the int8 graph around it."""
    problem = patterns.lut_problem(call)
    if problem:
        return f"{short}: the int8 table kernel refused it: {problem}"
    return (f"{short}: no int8 table formed (the table kernel takes quantize({short}("
            f"dequantize(x))) with per-tensor parameters)")


#: which op of a multi-op ONNX node gives its reason (conv before its bias add, ...)
_PRIMARY = ("relax.nn.conv2d", "relax.matmul", "relax.linear", "relax.nn.softmax",
            "relax.nn.layer_norm", "relax.mean")


def float_layer_records(mod: tvm.IRModule, layers: list[dict]) -> list[dict]:
    """``{"name", "kind", "reason"}`` for each of ``layers`` (report layers left in float)."""
    g = _Graph(mod)
    ln = layer_norm_nodes(g)
    out = []
    for layer in layers:
        name = layer["name"]
        calls = g.by_node.get(name, [])
        if name in ln:
            kind, reason = "layernorm", LAYERNORM_REASON
        elif calls:
            main = next((c for c in calls if c.op.name in _PRIMARY), calls[0])
            kind, reason = _reason(g, main)
        else:
            kind = layer["kind"]
            kind, reason = kind, f"no GAP8 kernel for {kind}: TVM's legalized op"
        out.append({"name": name, "kind": kind, "reason": reason})
    return out
