"""Resize (opsets 10-19) and Upsample (7-9) by the ONNX definitions, in numpy.

The output is computed one axis at a time (the ONNX interpolation is separable): every output
coordinate ``x`` of a resized axis maps to ``x_original`` by the node's
``coordinate_transformation_mode`` (``scale`` = the given scale, or ``sizes / input`` when sizes
are given; ``length_resized`` = the integer output length):

* ``half_pixel`` (the default): ``(x + 0.5) / scale - 0.5``
* ``half_pixel_symmetric``: ``half_pixel`` shifted by ``L / 2 * (1 - length_resized /
  (scale * L))`` (``L`` the input length)
* ``pytorch_half_pixel``: ``half_pixel`` if ``length_resized > 1``, else 0
* ``align_corners``: ``x * (L - 1) / (length_resized - 1)`` (0 if ``length_resized == 1``)
* ``asymmetric``: ``x / scale``
* ``tf_half_pixel_for_nn`` (opset 11): ``(x + 0.5) / scale``
* ``tf_crop_and_resize``: ``start * (L - 1) + x * (end - start) * (L - 1) / (length_resized -
  1)`` (``0.5 * (start + end) * (L - 1)`` if ``length_resized == 1``), the roi's ``start``/``end``;
  a coordinate outside ``[0, L - 1]`` gives ``extrapolation_value``.

``nearest`` then reads one input element (``nearest_mode``: ``round_prefer_floor`` (default),
``round_prefer_ceil``, ``floor``, ``ceil``; the index clamped to the axis): an exact copy in any
precision. ``linear`` and ``cubic`` (``cubic_coeff_a``, ``exclude_outside``, ``antialias``) take
a weighted sum of the neighbours (indices outside the axis read the edge element, or with
``exclude_outside`` get weight 0 and the weights are renormalised), computed in float64 and
rounded once to the precision asked for: its float32 value depends on the evaluation order,
which ``graph.order_dependent`` records; except a linear Resize our compiled code computes
with TVM's ``resize2d`` (``tvm_linear_form``), whose float32 arithmetic is restated exactly
(``linear_float32``), as ``ops.py`` restates the Relax importer's HardSwish.

Output length: ``sizes`` when given (``keep_aspect_ratio_policy`` ``not_larger`` /
``not_smaller``: one scale for the resized axes, lengths rounded half up), else
``floor(L * scale)`` (``floor(L * (end - start) * scale)`` for ``tf_crop_and_resize``).
Resize-10 and Upsample have no such attributes: they are ``asymmetric`` with ``floor`` for
nearest, the convention of onnxruntime (the spec only fixes the output length there).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UnsupportedOpError

MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                    "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _str(v, default):
    if v is None:
        return default
    return v.decode() if isinstance(v, bytes) else v


class ResizeSpec:
    """The attributes and inputs of a Resize / Upsample node, with their ONNX defaults."""

    def __init__(self, graph, node, operands, opset: int):
        self._node = node
        attr = lambda name, default=None: graph.attr(node, name, default)  # noqa: E731
        x = operands[0]
        self.rank = x.ndim
        self.mode = _str(attr("mode"), "nearest")
        if node.op_type == "Upsample" or opset < 11:
            scales, sizes = self._legacy(operands, attr)
        else:
            scales, sizes = self._current(operands, attr)
        self._check_modes()
        self.in_shape = x.shape
        self.scale, self.sizes = self._scale_and_sizes(scales, sizes)

    def _unsupported(self, detail):
        return UnsupportedOpError(self._node, detail)

    def _legacy(self, operands, attr):
        """Upsample-7/9, Resize-10: X, scales (Upsample-7: the scales attribute)."""
        self.ctm, self.nearest_mode = "asymmetric", "floor"
        scales = operands[1] if len(operands) > 1 else attr("scales")
        self.roi, self.axes = None, list(range(self.rank))
        self.cubic_a, self.exclude_outside, self.antialias = -0.75, False, False
        self.extrapolation, self.policy = 0.0, "stretch"
        return scales, None

    def _current(self, operands, attr):
        """Resize-11 and later: X, roi, scales, sizes and the attributes."""
        self.ctm = _str(attr("coordinate_transformation_mode"), "half_pixel")
        self.nearest_mode = _str(attr("nearest_mode"), "round_prefer_floor")
        self.cubic_a = float(attr("cubic_coeff_a", -0.75))
        self.exclude_outside = bool(attr("exclude_outside", 0))
        self.antialias = bool(attr("antialias", 0))
        self.extrapolation = float(attr("extrapolation_value", 0.0))
        self.policy = _str(attr("keep_aspect_ratio_policy"), "stretch")
        axes = attr("axes")
        self.axes = [int(a) % self.rank for a in axes] if axes else list(range(self.rank))
        roi, scales, sizes = (operands[i] if len(operands) > i else None for i in (1, 2, 3))
        self.roi = None if roi is None or np.size(roi) == 0 else \
            np.asarray(roi, np.float64).reshape(-1)
        if scales is not None and np.size(scales) == 0:
            scales = None
        if sizes is not None and np.size(sizes) == 0:
            sizes = None
        return scales, sizes

    def _check_modes(self):
        if self.mode not in MODES:
            raise self._unsupported(f"mode {self.mode!r}")
        if self.ctm not in COORDINATE_MODES:
            raise self._unsupported(f"coordinate_transformation_mode {self.ctm!r}")
        if self.mode == "nearest" and self.nearest_mode not in NEAREST_MODES:
            raise self._unsupported(f"nearest_mode {self.nearest_mode!r}")
        if self.ctm == "tf_crop_and_resize" and self.roi is None:
            raise self._unsupported("tf_crop_and_resize without a roi")
        n = len(self.axes)
        if self.roi is not None and self.roi.size != 2 * n:
            raise self._unsupported(f"a roi of {self.roi.size} values for {n} axes")

    def _scale_and_sizes(self, scales, sizes):
        """(scale per resized axis, output size per resized axis), from sizes or scales."""
        n, in_shape = len(self.axes), self.in_shape
        if sizes is not None:
            sizes = [int(v) for v in np.asarray(sizes).reshape(-1)]
            if len(sizes) != n:
                raise self._unsupported(f"{len(sizes)} sizes for {n} axes")
            scale = [s / in_shape[a] for s, a in zip(sizes, self.axes)]
            if self.policy in ("not_larger", "not_smaller"):
                one = min(scale) if self.policy == "not_larger" else max(scale)
                scale = [one] * n
                sizes = [int(math.floor(one * in_shape[a] + 0.5)) for a in self.axes]
            elif self.policy != "stretch":
                raise self._unsupported(f"keep_aspect_ratio_policy {self.policy!r}")
        elif scales is not None:
            scale = [float(v) for v in np.asarray(scales, np.float64).reshape(-1)]
            if len(scale) != n:
                raise self._unsupported(f"{len(scale)} scales for {n} axes")
            extent = [1.0] * n if self.ctm != "tf_crop_and_resize" else \
                [float(self.roi[n + i] - self.roi[i]) for i in range(n)]
            sizes = [int(math.floor(in_shape[a] * e * s))
                     for a, e, s in zip(self.axes, extent, scale)]
        else:
            raise self._unsupported("neither scales nor sizes")
        if any(s <= 0 for s in scale):
            raise self._unsupported(f"scales {scale} (must be > 0)")
        return scale, sizes


def _x_original(spec: ResizeSpec, i: int, length: int, out_len: int) -> np.ndarray:
    """The input coordinate of every output position of resized axis ``i`` (float64)."""
    x = np.arange(out_len, dtype=np.float64)
    scale, ctm = spec.scale[i], spec.ctm
    if ctm == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if ctm == "half_pixel_symmetric":
        # L / 2 * (1 - out_len / (scale * L)), with one rounding fewer (exact for x2, x0.5)
        offset = (length - out_len / scale) / 2
        return offset + (x + 0.5) / scale - 0.5
    if ctm == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros_like(x)
    if ctm == "align_corners":
        return x * (length - 1) / (out_len - 1) if out_len > 1 else np.zeros_like(x)
    if ctm == "asymmetric":
        return x / scale
    if ctm == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    n = len(spec.axes)  # tf_crop_and_resize
    start, end = spec.roi[i], spec.roi[n + i]
    if out_len > 1:
        return start * (length - 1) + x * (end - start) * (length - 1) / (out_len - 1)
    return np.full_like(x, 0.5 * (start + end) * (length - 1))


def _nearest_index(spec: ResizeSpec, xo: np.ndarray, length: int) -> np.ndarray:
    m = spec.nearest_mode
    if m == "round_prefer_floor":
        idx = np.ceil(xo - 0.5)
    elif m == "round_prefer_ceil":
        idx = np.floor(xo + 0.5)
    elif m == "floor":
        idx = np.floor(xo)
    else:
        idx = np.ceil(xo)
    return np.clip(idx, 0, length - 1).astype(np.int64)


def _kernel(spec: ResizeSpec, d: np.ndarray) -> np.ndarray:
    """Interpolation weight at distance ``d`` (in input elements, stretched by antialias)."""
    d = np.abs(d)
    if spec.mode == "linear":
        return np.clip(1.0 - d, 0.0, 1.0)
    a = spec.cubic_a  # Keys' cubic convolution kernel
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _weights(spec: ResizeSpec, i: int, xo: np.ndarray, length: int) -> np.ndarray:
    """[out_len, length] interpolation matrix of resized axis ``i``."""
    stretch = min(spec.scale[i], 1.0) if spec.antialias else 1.0
    reach = (1 if spec.mode == "linear" else 2) / stretch
    lo = np.floor(xo - reach).astype(np.int64)
    taps = int(math.ceil(2 * reach)) + 2
    idx = lo[:, None] + np.arange(taps)[None, :]  # a superset of the support
    w = _kernel(spec, (idx - xo[:, None]) * stretch)
    if spec.exclude_outside:
        w = np.where((idx < 0) | (idx >= length), 0.0, w)
    if spec.antialias or spec.exclude_outside:
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    mat = np.zeros((xo.size, length))
    rows = np.broadcast_to(np.arange(xo.size)[:, None], idx.shape)
    np.add.at(mat, (rows, np.clip(idx, 0, length - 1)), w)  # outside: the edge element
    return mat


#: coordinate modes TVM's ``resize2d`` computes for a linear Resize (``topi/image/resize.py``)
TVM_LINEAR_MODES = ("half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel",
                    "tf_half_pixel_for_nn")


def tvm_linear_form(spec: ResizeSpec) -> bool:
    """Our compiled code computes this linear Resize with TVM's ``resize2d``: NCHW, H and W
    resized. Its float32 arithmetic is ``linear_float32``'s, element for element."""
    return spec.mode == "linear" and spec.rank == 4 and spec.ctm in TVM_LINEAR_MODES \
        and not spec.antialias and all(
            spec.sizes[i] == spec.in_shape[a] for i, a in enumerate(spec.axes) if a < 2)


def linear_float32(spec: ResizeSpec, x: np.ndarray) -> np.ndarray:
    """A linear Resize in float32 as TVM's ``resize2d`` evaluates it (no FMA: the host build
    targets generic x86-64): ``in = (o + 0.5) * fl32(L / out) - 0.5`` (half_pixel; the other
    modes likewise), ``i = floor(in)``, ``t = in - i``, neighbours clamped to the edge,
    ``lerp(a, b, t) = a * (1 - t) + b * t`` along W, then along H."""
    f = np.float32
    x = x.astype(f)
    h, w = x.shape[2], x.shape[3]
    oh, ow = (spec.sizes[spec.axes.index(a)] if a in spec.axes else x.shape[a] for a in (2, 3))

    def coords(length, out):
        o = np.arange(out).astype(f)
        scale = f(f(length) / f(out))
        if spec.ctm == "align_corners":
            return (f(f(length - 1) / f(out - 1)) if out > 1 else f(0)) * o
        if spec.ctm == "asymmetric":
            return scale * o
        if spec.ctm == "tf_half_pixel_for_nn":
            return (o + f(0.5)) * scale
        c = (o + f(0.5)) * scale - f(0.5)
        return c if spec.ctm == "half_pixel" or out > 1 else np.zeros_like(c)

    def taps(length, out):
        c = coords(length, out).astype(f)
        i = np.floor(c).astype(np.int64)
        t = (c - i.astype(f)).astype(f)
        return np.clip(i, 0, length - 1), np.clip(i + 1, 0, length - 1), t

    y0, y1, ty = taps(h, oh)
    x0, x1, tx = taps(w, ow)

    def lerp(a, b, t):
        return (a * (f(1) - t) + b * t).astype(f)

    p00, p01 = x[:, :, y0][:, :, :, x0], x[:, :, y0][:, :, :, x1]
    p10, p11 = x[:, :, y1][:, :, :, x0], x[:, :, y1][:, :, :, x1]
    top = lerp(p00, p01, tx)
    bottom = lerp(p10, p11, tx)
    return lerp(top, bottom, ty[:, None])


def resize(graph, node, operands, dtype, opset: int) -> np.ndarray:
    """``node`` (Resize / Upsample) on ``operands`` (aligned with ``node.input``, None for an
    absent input): nearest in the input's type; linear/cubic in float64 rounded to ``dtype``,
    except a float32 linear Resize of TVM's form (``tvm_linear_form``), evaluated as TVM does
    (``linear_float32``)."""
    spec = ResizeSpec(graph, node, operands, opset)
    y = operands[0]
    if np.dtype(dtype) == np.float32 and tvm_linear_form(spec):
        return linear_float32(spec, y)
    if spec.mode != "nearest":
        y = y.astype(np.float64)
    for i, axis in enumerate(spec.axes):
        length, out_len = y.shape[axis], spec.sizes[i]
        if out_len == length and spec.scale[i] == 1.0 and spec.ctm not in (
                "tf_crop_and_resize", "tf_half_pixel_for_nn"):
            continue  # x_original = x: an identity along this axis
        xo = _x_original(spec, i, length, out_len)
        if spec.mode == "nearest":
            y = np.take(y, _nearest_index(spec, xo, length), axis=axis)
        else:
            y = np.moveaxis(np.tensordot(_weights(spec, i, xo, length), np.moveaxis(y, axis, 0),
                                         axes=(1, 0)), 0, axis)
        if spec.ctm == "tf_crop_and_resize":
            outside = (xo < 0) | (xo > length - 1)
            if outside.any():
                shape = [1] * y.ndim
                shape[axis] = -1
                y = np.where(outside.reshape(shape), np.asarray(spec.extrapolation, y.dtype), y)
    return y if spec.mode == "nearest" else y.astype(dtype)
