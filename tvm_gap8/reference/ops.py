"""numpy evaluation of single ONNX ops, in two precisions.

* ``float32``: what our compiled code computes where it computes in float: the op as the
  Relax importer writes it (HardSwish = ``x * (clip(x + 3, 0, 6) / 6)``, HardSigmoid =
  ``clip(alpha * x + beta, 0, 1)``), each elementary operation rounded to float32. Sigmoid's
  ``exp`` is evaluated in float64 and rounded to float32 (``passes/extract.py::_np_op`` builds
  its tables the same way), so no result depends on the CPU's SIMD ``exp``.
* ``float64``: the ONNX definitions (the spec check).

Resize / Upsample follow the ONNX definitions in ``resize.py`` (nearest: an exact copy; a
float32 linear Resize as TVM's ``resize2d`` computes it). An op evaluated nowhere here raises
``UnsupportedOpError`` naming the node and its op type.

Summations (conv, ConvTranspose, Gemm, pooling means) are exact in integer arithmetic when
given int64 operands; in float they are order-dependent, which ``graph.order_dependent``
records.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import UnsupportedOpError
from .graph import Graph
from .resize import resize


def conv2d(x, w, strides, pads, groups):
    """NCHW x OIHW convolution of already zero-point-free operands, padded with 0. int64
    operands give the exact integer sum; float64 operands a float64 one."""
    t, l, b, r = pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    o, cg, kh, kw = w.shape
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::strides[0], ::strides[1]]
    n, c, oh, ow = win.shape[:4]
    og = o // groups
    if cg == 1 and og == 1:  # depthwise
        return np.einsum("nchwij,cij->nchw", win, w[:, 0])
    win = win.reshape(n, groups, cg, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6)
    win = win.reshape(n, groups, oh * ow, cg * kh * kw)
    wg = w.reshape(groups, og, cg * kh * kw)
    out = np.matmul(win, wg.transpose(0, 2, 1)[None])  # n, g, oh*ow, og
    return out.transpose(0, 1, 3, 2).reshape(n, o, oh, ow)


def conv_transpose(graph: Graph, node, x, w):
    """ConvTranspose (N-D, NC...): ``x`` [N, C, *in], ``w`` [C, O / group, *k], every input
    element times the kernel added into the output at ``stride * i + dilation * k``, then
    ``pads`` cropped at each end (ONNX: from ``output_shape`` when given, or ``auto_pad``
    SAME_UPPER / SAME_LOWER giving ``in * stride``; the odd element at the end for SAME_UPPER,
    at the beginning otherwise), ``output_padding`` extra elements at the end. float64 operands
    give a float64 sum."""
    nsp = x.ndim - 2
    ins, ks = x.shape[2:], w.shape[2:]
    attr = lambda name, default: [int(v) for v in graph.attr(node, name, default)]  # noqa: E731
    strides, dil = attr("strides", [1] * nsp), attr("dilations", [1] * nsp)
    outpad, pads = attr("output_padding", [0] * nsp), attr("pads", [0] * (2 * nsp))
    groups = int(graph.attr(node, "group", 1))
    auto = graph.attr(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    full = [s * (i - 1) + p + (k - 1) * d + 1
            for s, i, p, k, d in zip(strides, ins, outpad, ks, dil)]
    out_shape = graph.attr(node, "output_shape", None)
    if out_shape is not None:
        out_shape = [int(v) for v in out_shape][-nsp:]
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = [i * s for i, s in zip(ins, strides)]
    if auto == "VALID":
        pads = [0] * (2 * nsp)
    elif out_shape is not None:
        total = [f - o for f, o in zip(full, out_shape)]
        if auto == "SAME_UPPER":
            pads = [t // 2 for t in total] + [t - t // 2 for t in total]
        else:
            pads = [t - t // 2 for t in total] + [t // 2 for t in total]
    n, c = x.shape[:2]
    cg, og = c // groups, w.shape[1]
    y = np.zeros((n, og * groups, *full), np.result_type(x, w))
    for kpos in np.ndindex(*ks):
        dst = (slice(None), slice(None)) + tuple(
            slice(kk * d, kk * d + s * (i - 1) + 1, s)
            for kk, d, s, i in zip(kpos, dil, strides, ins))
        wk = w[(slice(None), slice(None)) + kpos]  # [C, O / group]
        for g in range(groups):
            part = np.tensordot(x[:, g * cg:(g + 1) * cg], wk[g * cg:(g + 1) * cg], axes=(1, 0))
            y[dst][:, g * og:(g + 1) * og] += np.moveaxis(part, -1, 1)
    # crop the pads (a negative pad, from an output_shape beyond the full size, adds zeros)
    grow = [(0, 0), (0, 0)] + [(max(-b, 0), max(-e, 0)) for b, e in zip(pads[:nsp], pads[nsp:])]
    y = np.pad(y, grow)
    crop = tuple(slice(max(b, 0), y.shape[2 + i] - max(e, 0))
                 for i, (b, e) in enumerate(zip(pads[:nsp], pads[nsp:])))
    return y[(slice(None), slice(None)) + crop]


def conv_attrs(graph: Graph, node, x_shape, w_shape):
    k = w_shape[2:]
    strides = list(graph.attr(node, "strides", [1, 1]))
    pads = list(graph.attr(node, "pads", [0, 0, 0, 0]))
    auto = graph.attr(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):  # SAME_UPPER / SAME_LOWER
        total = [max((-(-x_shape[2 + i] // strides[i]) - 1) * strides[i] + k[i]
                     - x_shape[2 + i], 0) for i in range(2)]
        small = [v // 2 for v in total]
        big = [v - s for v, s in zip(total, small)]
        pads = small + big if auto == "SAME_UPPER" else big + small
    # ONNX pads are (top, left, bottom, right) for 2-D
    return strides, (pads[0], pads[1], pads[2], pads[3]), int(graph.attr(node, "group", 1))


def clip_bounds(graph: Graph, node):
    """(lo, hi) of a Clip node as Python floats (None when absent)."""
    if len(node.input) > 1:
        lo = graph.const(node.input[1]) if node.input[1] else None
        hi = graph.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        for name, v in ((1, lo), (2, hi)):
            if v is None and len(node.input) > name and node.input[name]:
                raise ValueError(f"node {node.name!r} (Clip): non-constant bounds")
        return (None if lo is None else float(lo.reshape(())),
                None if hi is None else float(hi.reshape(())))
    return graph.attr(node, "min", None), graph.attr(node, "max", None)


def activation_range(graph: Graph, nodes):
    """(lo, hi) real bounds of a chain of Relu/Clip nodes (None = unbounded), as our
    extraction folds them (``extract.py``)."""
    lo = hi = None
    for n in nodes:
        if n.op_type == "Relu":
            lo = 0.0 if lo is None else max(lo, 0.0)
        else:
            a, b = clip_bounds(graph, n)
            if a is not None:
                lo = a if lo is None else max(lo, a)
            if b is not None:
                hi = b if hi is None else min(hi, b)
    return lo, hi


def sigmoid(x, dtype):
    if dtype == np.float32:
        e = np.exp(-x.astype(np.float64)).astype(np.float32)
        return (np.float32(1) / (np.float32(1) + e)).astype(np.float32)
    return 1.0 / (1.0 + np.exp(-x))


def _elementwise(graph: Graph, node, a, dtype):
    """Elementwise ops of one or two tensors, in ``dtype``."""
    op, c = node.op_type, dtype.type
    binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
              "Max": np.maximum, "Min": np.minimum, "Pow": np.power}
    if op in binary:
        return binary[op](a[0], a[1]).astype(dtype)
    x = a[0]
    if op == "Relu":
        return np.maximum(x, c(0))
    if op == "Clip":
        lo, hi = clip_bounds(graph, node)
        return np.clip(x, c(-np.inf if lo is None else lo), c(np.inf if hi is None else hi))
    if op == "Sigmoid":
        return sigmoid(x, dtype)
    if op == "Sqrt":  # correctly rounded in float32 (IEEE), like TVM's sqrt
        return np.sqrt(x).astype(dtype)
    if op == "LeakyRelu":  # onnxruntime: x >= 0 ? x : alpha * x
        return np.where(x >= 0, x, c(graph.attr(node, "alpha", 0.01)) * x).astype(dtype)
    if op == "HardSigmoid":
        alpha, beta = c(graph.attr(node, "alpha", 0.2)), c(graph.attr(node, "beta", 0.5))
        return np.clip(alpha * x + beta, c(0), c(1)).astype(dtype)
    if op == "HardSwish":
        if dtype == np.float32:  # the Relax importer's form
            return (x * (np.clip(x + c(3), c(0), c(6)) / c(6))).astype(dtype)
        return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)  # ONNX: x * HardSigmoid(x; 1/6, 1/2)
    return None


def _shape_op(graph: Graph, node, a):
    op, x = node.op_type, a[0]
    if op == "Reshape":
        shape = [int(v) for v in a[1]]
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return x.reshape(shape)
    if op == "Flatten":
        axis = graph.attr(node, "axis", 1) % max(x.ndim, 1)
        return x.reshape(int(np.prod(x.shape[:axis])), -1)
    if op == "Transpose":
        return np.transpose(x, graph.attr(node, "perm", None))
    if op == "Concat":
        return np.concatenate(a, axis=graph.attr(node, "axis"))
    if op in ("Squeeze", "Unsqueeze"):
        axes = graph.attr(node, "axes", None)
        axes = [int(v) for v in (a[1] if len(a) > 1 else axes or [])]
        if op == "Squeeze":
            return np.squeeze(x, axis=tuple(axes) if axes else None)
        return np.expand_dims(x, axis=tuple(axes))
    if op == "Identity":
        return x
    if op == "MaxPool":
        return _maxpool(graph, node, x)
    if op == "Pad":
        return pad(graph, node, _operands(node, a))
    return None


def pad(graph: Graph, node, ops):
    """ONNX Pad: ``ops`` its inputs aligned with ``node.input`` (data, pads, constant_value,
    axes; None where absent). Opset >= 11 takes pads (and the value) as inputs, older opsets as
    attributes. Modes constant (the value, default 0, in the data's type: an int8 tensor is
    padded with that integer, the zero point when the QDQ graph pads a real 0), reflect, edge.
    Negative pads crop."""
    x = ops[0]
    if len(ops) > 1 and ops[1] is not None:
        pads = [int(v) for v in np.asarray(ops[1]).reshape(-1)]
    else:
        pads = [int(v) for v in graph.attr(node, "pads", [])]
    value = ops[2] if len(ops) > 2 and ops[2] is not None else graph.attr(node, "value", 0.0)
    value = np.asarray(value).reshape(-1)[0] if np.size(value) else 0
    axes = list(range(x.ndim))
    if len(ops) > 3 and ops[3] is not None:
        axes = [int(v) % x.ndim for v in np.asarray(ops[3]).reshape(-1)]
    n = len(axes)
    if len(pads) != 2 * n:
        raise UnsupportedOpError(node, f"{len(pads)} pads for {n} axes")
    before, after = [0] * x.ndim, [0] * x.ndim
    for i, ax in enumerate(axes):
        before[ax], after[ax] = pads[i], pads[n + i]
    crop = tuple(slice(max(-b, 0), x.shape[d] - max(-e, 0))
                 for d, (b, e) in enumerate(zip(before, after)))
    x = x[crop]
    width = [(max(b, 0), max(e, 0)) for b, e in zip(before, after)]
    mode = graph.attr(node, "mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=np.asarray(value).astype(x.dtype))
    if mode in ("reflect", "edge"):
        return np.pad(x, width, mode=mode)
    raise UnsupportedOpError(node, f"mode {mode}")


def _maxpool(graph: Graph, node, x):
    k = graph.attr(node, "kernel_shape")
    strides = graph.attr(node, "strides", [1, 1])
    t, l, b, r = graph.attr(node, "pads", [0, 0, 0, 0])
    if graph.attr(node, "ceil_mode", 0) or list(graph.attr(node, "dilations", [1, 1])) != [1, 1]:
        raise UnsupportedOpError(node, "ceil_mode/dilations")
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=-np.inf)
    win = sliding_window_view(xp, tuple(k), axis=(2, 3))[:, :, ::strides[0], ::strides[1]]
    return win.max(axis=(-2, -1)).astype(x.dtype)


def _reduction(graph: Graph, node, a, dtype):
    """Order-dependent ops: computed in float64, rounded to ``dtype``."""
    op = node.op_type
    x = [v.astype(np.float64) if v.dtype.kind == "f" else v for v in a]
    if op == "Conv":
        strides, pads, groups = conv_attrs(graph, node, x[0].shape, x[1].shape)
        y = conv2d(x[0], x[1], strides, pads, groups)
        if len(x) > 2:
            y = y + x[2].reshape(1, -1, 1, 1)
    elif op == "ConvTranspose":
        y = conv_transpose(graph, node, x[0], x[1])
        if len(x) > 2:
            y = y + x[2].reshape((1, -1) + (1,) * (y.ndim - 2))
    elif op == "Gemm":
        aa = x[0].T if graph.attr(node, "transA", 0) else x[0]
        bb = x[1].T if graph.attr(node, "transB", 0) else x[1]
        y = graph.attr(node, "alpha", 1.0) * (aa @ bb)
        if len(x) > 2:
            y = y + graph.attr(node, "beta", 1.0) * x[2]
    elif op == "MatMul":
        y = x[0] @ x[1]
    elif op in ("GlobalAveragePool", "ReduceMean"):
        axes = (2, 3) if op == "GlobalAveragePool" else tuple(graph.attr(node, "axes"))
        y = x[0].mean(axis=axes, keepdims=bool(graph.attr(node, "keepdims", 1)))
    elif op == "Softmax":
        axis = graph.attr(node, "axis", -1)
        e = np.exp(x[0] - x[0].max(axis=axis, keepdims=True))
        y = e / e.sum(axis=axis, keepdims=True)
    else:
        return None
    return y.astype(dtype)


def _operands(node, args):
    """``args`` (the values of the node's non-empty inputs, in order) aligned with
    ``node.input``: None where an optional input is absent (Resize's roi, ...)."""
    it = iter(args)
    return [next(it, None) if t else None for t in node.input]


def _resample(graph: Graph, node, a, dtype):
    if node.op_type not in ("Resize", "Upsample"):
        return None
    return resize(graph, node, _operands(node, a), dtype, graph.opset)


#: evaluators(graph, node, args, dtype) tried in turn; each returns None for an op it lacks
EVALUATORS = [
    lambda graph, node, args, dtype: _elementwise(graph, node, args, dtype),
    lambda graph, node, args, dtype: _shape_op(graph, node, args),
    lambda graph, node, args, dtype: _reduction(graph, node, args, dtype),
    lambda graph, node, args, dtype: _resample(graph, node, args, dtype),
]


def eval_node(graph: Graph, node, args, dtype):
    """One float node on numpy operands (the values of its non-empty inputs, in order), in
    ``dtype`` (np.float32 or np.float64). An op the reference does not know raises
    ``UnsupportedOpError`` naming the node and the op type."""
    dtype = np.dtype(dtype)
    for fn in EVALUATORS:
        y = fn(graph, node, args, dtype)
        if y is not None:
            return y
    raise UnsupportedOpError(node)


def dequantize(q, scale, zp, axis, dtype):
    """DequantizeLinear. float32: TVM's legalization, ``fl32(int32(q - zp)) * scale``;
    float64: exact."""
    scale, zp = np.asarray(scale), np.asarray(zp, np.int64)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[axis % q.ndim] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape) if zp.size > 1 else zp
    d = (q.astype(np.int64) - zp).astype(dtype)
    return (d * scale.astype(dtype)).astype(dtype)


def quantize(x, scale, zp, out_dtype, dtype):
    """QuantizeLinear: ``saturate(rne(x / scale) + zp)``, the division in ``dtype`` (float32:
    TVM's legalization, whose round is half-to-even)."""
    info = np.iinfo(out_dtype)
    v = np.rint((x.astype(dtype) / np.asarray(scale).astype(dtype)).astype(dtype))
    return np.clip(v + np.asarray(zp, np.int64), info.min, info.max).astype(out_dtype)
