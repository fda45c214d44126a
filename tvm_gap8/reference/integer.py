"""Integer semantics of each layer kind: what our kernels compute, restated in numpy.

Operands are the integer tensors of the layer's activation DQs; nothing here reads TIR or our
Relax extraction. The requantization arithmetic (``float32_scale``, a mode's ``multiplier``
encoding and numpy ``reference``, ``activation_bounds``) and the Add multipliers
(``add_multipliers``) are the numpy helpers the kernels' parameters are derived with; they are
documented in ``kernels/requant.py`` / ``kernels/eltwise.py``. Every evaluator takes the
requantization mode (``fixed`` | ``float32``) the compile used: ``requant(acc)`` below is that
mode's integers.

* conv / dense: ``acc = sum((x - z_x) * w) + b`` exactly (int64 here, int32 on the device; an
  accumulator outside int32 is an error), with ``b = round(dequantized bias / (s_x * s_w[o]))``
  in float64, then ``requant(acc)`` with ``S[o] = fl32(fl32(s_x * s_w[o]) / s_y)`` and the
  Relu/Clip folded into the clamp.
* add: ``clamp(z_y + (((a - z_a) m_a + (b - z_b) m_b + 2^(n-1)) >> n))``.
* pool (global average): ``requant(sum(x - z_x))`` with ``S = s_x / (s_y * H * W)``.
* mul: ``requant((a - z_a)(b - z_b))`` with ``S = fl32(fl32(s_a * s_b) / s_y)``, b the same shape
  or one value per channel (any other broadcast stays float in our compiler: evaluated so).
* table: one input, elementwise float32 chain (``ops.py``) evaluated on all 256 input values,
  dequantized and requantized as TVM's QDQ legalization does; the output is a table lookup.
* reshape / identity: the integer tensor reshaped / unchanged.
"""

from __future__ import annotations

import numpy as np

from ..kernels.eltwise import add_multipliers
from ..kernels.requant import (DEFAULT_REQUANT, activation_bounds, dtype_range, float32_scale,
                               requant_mode)
from .graph import Graph, Layer
from .ops import activation_range, conv2d, conv_attrs, dequantize, eval_node, quantize

INT32 = (-2 ** 31, 2 ** 31 - 1)


def requant(acc, m, n, zp, lo, hi, dtype, mode: str = DEFAULT_REQUANT):
    """Mode ``mode``'s numpy reference (which returns int8 bits) as ``dtype``: the int8 result
    reread modulo 256 is the clamped value for uint8 too (the clamp already bounds it to
    0..255)."""
    return requant_mode(mode).reference(acc, m, n, zp, lo, hi).astype(dtype)


def _check_int32(layer: Layer, acc):
    if acc.size and (acc.min() < INT32[0] or acc.max() > INT32[1]):
        raise ValueError(f"layer {layer.name!r}: accumulator outside int32 "
                         f"[{acc.min()}, {acc.max()}]")


def _bias(graph: Graph, tensor, sx, sw, cout):
    if not tensor:
        return np.zeros(cout, np.int64)
    q, scale, zp, axis = graph.const_dq(tensor)
    real = dequantize(q, scale.astype(np.float64), zp, axis, np.float64).reshape(-1)
    real = np.broadcast_to(real, (cout,))
    return np.round(real / (np.float64(sx) * sw.astype(np.float64))).astype(np.int64)


def _requant_channels(graph, layer, acc, sx, sw, channel_axis, mode):
    sy, zy, dtype = graph.act_qparams(layer.quant)
    scales = float32_scale(sx, sw, sy)
    encode = requant_mode(mode).multiplier
    mult, shift = (np.array(v, np.int64) for v in zip(*(encode(s) for s in scales)))
    lo, hi = activation_bounds("clip", *activation_range(graph, layer.nodes[1:]), sy, zy, dtype)
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    return requant(acc, mult.reshape(shape), shift.reshape(shape), zy, lo, hi, dtype, mode)


def _weights(graph: Graph, node, transposed: bool = False):
    """Integer weights with the output channels first, and one scale per output channel
    (``transposed``: stored [K, O], as a MatMul or a Gemm with transB=0 holds them)."""
    wq, sw, zw, _ = graph.const_dq(node.input[1])
    if np.any(zw != 0):
        raise ValueError(f"node {node.name!r}: weights with a non-zero zero point")
    wq = wq.T if transposed else wq
    return wq.astype(np.int64), np.broadcast_to(sw.reshape(-1), (wq.shape[0],))


def conv_layer(graph: Graph, layer: Layer, acts, mode: str = DEFAULT_REQUANT):
    node = layer.nodes[0]
    x, sx, zx = acts[node.input[0]]
    wq, sw = _weights(graph, node)
    strides, pads, groups = conv_attrs(graph, node, x.shape, wq.shape)
    acc = conv2d(x.astype(np.int64) - zx, wq, strides, pads, groups)
    bias = _bias(graph, node.input[2] if len(node.input) > 2 else "", sx, sw, wq.shape[0])
    acc = acc + bias.reshape(1, -1, 1, 1)
    _check_int32(layer, acc)
    return _requant_channels(graph, layer, acc, sx, sw, 1, mode)


def dense_layer(graph: Graph, layer: Layer, acts, mode: str = DEFAULT_REQUANT):
    node = layer.nodes[0]
    x, sx, zx = acts[node.input[0]]
    transposed = node.op_type == "MatMul" or not graph.attr(node, "transB", 0)
    wq, sw = _weights(graph, node, transposed)  # [O, K]
    acc = (x.astype(np.int64) - zx) @ wq.T
    bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 else ""
    acc = acc + _bias(graph, bias, sx, sw, wq.shape[0])
    _check_int32(layer, acc)
    return _requant_channels(graph, layer, acc, sx, sw, acc.ndim - 1, mode)


def add_layer(graph: Graph, layer: Layer, acts, mode: str = DEFAULT_REQUANT):
    """The same in every mode (``add_multipliers``: already fixed-point, round half up)."""
    node = layer.nodes[0]
    (a, sa, za), (b, sb, zb) = acts[node.input[0]], acts[node.input[1]]
    sy, zy, dtype = graph.act_qparams(layer.quant)
    ma, mb, n = add_multipliers(sa, sb, sy)
    lo, hi = activation_bounds("clip", *activation_range(graph, layer.nodes[1:]), sy, zy, dtype)
    acc = (a.astype(np.int64) - za) * ma + (b.astype(np.int64) - zb) * mb + (1 << (n - 1))
    return np.clip(zy + (acc >> n), lo, hi).astype(dtype)


def pool_layer(graph: Graph, layer: Layer, acts, mode: str = DEFAULT_REQUANT):
    (x, sx, zx), = acts.values()
    sy, zy, dtype = graph.act_qparams(layer.quant)
    h, w = x.shape[2], x.shape[3]
    m, n = requant_mode(mode).multiplier(sx / (sy * h * w))
    acc = (x.astype(np.int64) - zx).sum(axis=(2, 3), keepdims=True)
    return requant(acc, m, n, zy, *dtype_range(dtype), dtype, mode)


def mul_layer(graph: Graph, layer: Layer, acts, mode: str = DEFAULT_REQUANT):
    node = layer.nodes[0]
    (a, sa, za), (b, sb, zb) = acts[node.input[0]], acts[node.input[1]]
    sy, zy, dtype = graph.act_qparams(layer.quant)
    m, n = requant_mode(mode).multiplier((np.float32(sa) * np.float32(sb)) / np.float32(sy))
    prod = (a.astype(np.int64) - za) * (b.astype(np.int64) - zb)
    return requant(prod, m, n, zy, *dtype_range(dtype), dtype, mode)


def float_path(graph: Graph, layer: Layer, acts):
    """An elementwise layer our compiler leaves in float32 (a broadcast it has no integer
    kernel for): TVM's dequantize, the ops in float32, TVM's quantize."""
    vals = {t: dequantize(x, np.float32(s), z, 1, np.float32) for t, (x, s, z) in acts.items()}
    for node in layer.nodes:
        args = [vals[t] if t in vals else _const_f32(graph, layer, t, scalar=False)
                for t in node.input if t]
        vals[node.output[0]] = eval_node(graph, node, args, np.float32)
    sy, zy, dtype = graph.act_qparams(layer.quant)
    return quantize(vals[layer.quant.input[0]], np.float32(sy), zy, dtype, np.float32)


def _const_f32(graph: Graph, layer: Layer, tensor, scalar=True):
    if graph.is_const_dq(tensor):
        q, scale, zp, axis = graph.const_dq(tensor)
        v = dequantize(q, scale, zp, axis, np.float32)
    elif graph.const(tensor) is not None:
        v = graph.const(tensor).astype(np.float32)
    else:
        raise ValueError(f"layer {layer.name!r}: operand {tensor!r} is neither the input nor a "
                         "constant")
    if not scalar:
        return v
    if v.size != 1:
        raise ValueError(f"layer {layer.name!r}: a non-scalar constant {tensor!r} in a table")
    return v.reshape(())


def table_of(graph: Graph, layer: Layer, in_dtype: str, float_dtype=np.float32):
    """The 256-entry output table of a one-input elementwise layer, indexed by
    ``x - min(in_dtype)``."""
    (dq,) = layer.dqs
    sx, zx, _ = graph.act_qparams(dq)
    lo, _ = dtype_range(in_dtype)
    vals = {dq.output[0]: dequantize(np.arange(lo, lo + 256), np.float32(sx), zx, 1,
                                     float_dtype)}
    for node in layer.nodes:
        args = [vals[t] if t in vals else _const_f32(graph, layer, t).astype(float_dtype)
                for t in node.input if t]
        vals[node.output[0]] = eval_node(graph, node, args, float_dtype)
    sy, zy, dtype = graph.act_qparams(layer.quant)
    return quantize(vals[layer.quant.input[0]], np.float32(sy), zy, dtype, float_dtype)


def table_layer(graph: Graph, layer: Layer, acts, mode: str = DEFAULT_REQUANT):
    ((x, _, _),) = acts.values()
    table = table_of(graph, layer, str(x.dtype))
    return table[x.astype(np.int64) - dtype_range(str(x.dtype))[0]]


def reshape_layer(graph: Graph, layer: Layer, acts, mode: str = DEFAULT_REQUANT):
    ((x, _, _),) = acts.values()
    node = layer.nodes[0]
    return eval_node(graph, node, [x] + [graph.const(t) for t in node.input[1:] if t],
                     np.float32)


def identity_layer(graph: Graph, layer: Layer, acts, mode: str = DEFAULT_REQUANT):
    ((x, _, _),) = acts.values()
    return x


EVALUATORS = {"conv": conv_layer, "dense": dense_layer, "add": add_layer, "pool": pool_layer,
              "mul": mul_layer, "table": table_layer, "reshape": reshape_layer,
              "identity": identity_layer}


def effective_kind(layer: Layer, acts) -> str:
    """``layer.kind``, or ``float`` for an Add / Mul / dense whose operand shapes our integer
    kernels do not take (``patterns.add_problem`` / ``mul_problem`` / ``dense_problem``): the
    compiler keeps it float."""
    if layer.kind == "dense":  # patterns.dense_problem: a 2-D input only
        return "dense" if acts[layer.nodes[0].input[0]][0].ndim == 2 else "float"
    if layer.kind not in ("add", "mul"):
        return layer.kind
    node = layer.nodes[0]
    a, b = acts[node.input[0]][0].shape, acts[node.input[1]][0].shape
    if layer.kind == "add":
        return "add" if a == b and len(a) == 4 else "float"
    ok = len(a) in (2, 4) and a[0] == 1 and (b == a or (len(a) == 4 and b == (1, a[1], 1, 1)))
    return "mul" if ok else "float"


def eval_layer(graph: Graph, layer: Layer, acts, mode: str = DEFAULT_REQUANT):
    """(kind, integer output) of ``layer``; ``acts`` maps each activation DQ's output name to
    (integer tensor, scale, zero point); ``mode``: the requantization mode (``fixed`` |
    ``float32``)."""
    kind = effective_kind(layer, acts)
    if kind == "float":
        return kind, float_path(graph, layer, acts)
    return kind, EVALUATORS[kind](graph, layer, acts, mode)
