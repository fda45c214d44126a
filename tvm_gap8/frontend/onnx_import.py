"""ONNX file -> Relax IRModule with static shapes.

What this adds over ``tvm.relax.frontend.onnx.from_onnx``:

* Shapes are pinned first (``--input-shape``); a dimension still symbolic afterwards is an error
  naming the input, because GAP8 tiling needs static shapes.
* onnxruntime's *basic* graph optimisation is run on the pinned model. It folds constant
  subgraphs (the Shape -> Gather -> Concat -> Reshape chains that exporters emit, which TVM's
  importer rejects) and folds BatchNormalization (and Add-of-constant) into the preceding Conv.
* Every node gets a name (exporters sometimes leave them empty) and every Relax call the importer
  builds for a node carries that name in its span, so passes and reports can say which ONNX
  nodes a fused kernel came from.
* ``Clip`` with constant bounds imports as ``relax.op.clip`` (the stock importer emits two
  opaque ``call_tir``s), so ReLU6 and the HardSwish exporters write are visible to the pattern
  language.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend as of
from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

from ..errors import ModelError, UnsupportedError, UsageError
from ..ir.irutil import (ONNX_TAG, map_bindings, node_name_of,  # noqa: F401 (node_name_of: API)
                        span_named, with_span)

#: ONNX default-domain opsets we have tested the importer with.
MIN_OPSET, MAX_OPSET = 11, 21


@dataclass
class ImportedModel:
    """A Relax module plus what we learnt about the ONNX graph on the way in."""

    mod: tvm.IRModule
    onnx_model: onnx.ModelProto  # after pinning and onnxruntime's basic optimisation
    input_shapes: dict[str, tuple[int, ...]]
    input_dtypes: dict[str, str]
    node_ops: dict[str, str] = field(default_factory=dict)  # node name -> op type


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """Parse ``NAME:D0,D1,...`` or tvmc's ``NAME:[D0,D1,...]`` (the CLI's ``--input-shape``)."""
    name, sep, dims = text.rpartition(":")
    if not sep or not name:
        raise UsageError(f"--input-shape {text!r}: expected NAME:D0,D1,... or NAME:[D0,D1,...] "
                         "e.g. input:1,3,96,96")
    dims = dims.strip()
    if dims.startswith("[") and dims.endswith("]"):
        dims = dims[1:-1]
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        raise UsageError(f"--input-shape {text!r}: dimensions must be integers") from None
    return name, shape


def load_onnx(path_or_model) -> onnx.ModelProto:
    """Read and check an ONNX model, turning every failure into a ModelError."""
    if isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
    else:
        path = os.fspath(path_or_model)
        if not os.path.exists(path):
            raise ModelError(f"{path}: no such file")
        if os.path.isdir(path):
            raise ModelError(f"{path}: is a directory, expected an .onnx file")
        try:
            model = onnx.load(path)
        except Exception as exc:  # protobuf raises DecodeError, RuntimeError, ...
            raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'parse failed'})") from None
        if not model.graph.node and not model.graph.output:
            raise ModelError(f"{path}: not an ONNX model (no graph found)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        raise ModelError(f"model fails the ONNX checker: {msg[0] if msg else exc}") from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedError(f"unsupported ONNX opset {opset}: supported {MIN_OPSET}..{MAX_OPSET}"
                               " (convert with onnx.version_converter)")
    return model


def _name_nodes(model: onnx.ModelProto) -> None:
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            cand = f"{node.op_type}_{i}"
            while cand in used:
                cand += "_"
            node.name = cand
            used.add(cand)


def _graph_inputs(model: onnx.ModelProto) -> list:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _static(dim) -> bool:
    """A dimension with a positive ``dim_value``. Exporters write dynamic dims as a
    ``dim_param``, as nothing, or (PaddlePaddle: ``-1``; some tools: ``0``) as a non-positive
    ``dim_value``: all of these are dynamic, pinned by ``--input-shape``."""
    return dim.HasField("dim_value") and dim.dim_value > 0


def _pin(inp, want: tuple[int, ...]) -> None:
    """Write ``--input-shape``'s dims into a graph input, after checking them."""
    dims = inp.type.tensor_type.shape.dim
    if len(want) != len(dims):
        raise UsageError(f"--input-shape {inp.name}: rank {len(want)} given, the model's "
                         f"input has rank {len(dims)}")
    if any(v <= 0 for v in want):
        raise UsageError(f"--input-shape {inp.name}: zero-size or negative dimension "
                         f"{tuple(want)}; every dimension must be >= 1")
    for axis, (d, v) in enumerate(zip(dims, want)):
        if _static(d) and d.dim_value != v:
            raise UsageError(f"--input-shape {inp.name}: axis {axis} given as {v} conflicts "
                             f"with the model's static {d.dim_value} on that axis (the model's "
                             f"shape: {_shape_text(dims)})")
        d.Clear()
        d.dim_value = v


def _shape_text(dims) -> str:
    """An input's shape as the model writes it: static sizes, dynamic ones by their name."""
    return "[" + ", ".join(str(d.dim_value) if _static(d) else (d.dim_param or "?")
                           for d in dims) + "]"


def _dynamic_dims(inp) -> list[str]:
    """``axis (label)`` of every dimension of a graph input that is not static."""
    return [f"{axis} ({d.dim_param or (str(d.dim_value) if d.HasField('dim_value') else '?')})"
            for axis, d in enumerate(inp.type.tensor_type.shape.dim) if not _static(d)]


def _refuse_dynamic(inputs) -> None:
    """One error naming every dynamic dimension of every input, and the option pinning them."""
    found = [(inp, _dynamic_dims(inp)) for inp in inputs]
    found = [(inp, dims) for inp, dims in found if dims]
    if not found:
        return
    what = "; ".join(f"input {inp.name!r} dimension{'s' if len(dims) > 1 else ''} "
                     f"{', '.join(dims)}" for inp, dims in found)
    pins = " ".join(f"--input-shape {inp.name}:D0,D1,..." for inp, _ in found)
    raise UsageError(f"dynamic dimensions: {what}; pin them with {pins}")


def pin_input_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None):
    """Write static shapes into the graph inputs; return {name: shape} and {name: dtype}."""
    input_shapes = dict(input_shapes or {})
    inputs = _graph_inputs(model)
    names = [i.name for i in inputs]
    for name in input_shapes:
        if name not in names:
            raise UsageError(f"--input-shape names unknown input {name!r}; the model's inputs are "
                             f"{', '.join(names)}")
    shapes, dtypes = {}, {}
    for inp in inputs:
        elem_type = inp.type.tensor_type.elem_type
        dtypes[inp.name] = onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
        if inp.name in input_shapes:
            _pin(inp, input_shapes[inp.name])
    _refuse_dynamic(inputs)
    for inp in inputs:
        shapes[inp.name] = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
    return shapes, dtypes


def optimize_with_onnxruntime(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant-fold shape subgraphs and fold BN into Conv (onnxruntime basic level)."""

    with tempfile.TemporaryDirectory(prefix="tvm_gap8_ort_") as tmp:
        out = os.path.join(tmp, "optimized.onnx")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = out
        opts.log_severity_level = 3
        try:
            ort.InferenceSession(model.SerializeToString(), opts,
                                 providers=["CPUExecutionProvider"])
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"onnxruntime cannot load the model: {first}") from None
        optimized = onnx.load(out)
    return optimized


def import_onnx(path_or_model, input_shapes=None) -> ImportedModel:
    """The whole frontend: load, check, pin shapes, fold, import to Relax."""
    model = onnx.ModelProto()
    model.CopyFrom(load_onnx(path_or_model))
    _name_nodes(model)
    _check_supported_ops(model)  # before onnxruntime, whose messages name no remedy
    shapes, dtypes = pin_input_shapes(model, input_shapes)
    optimized = optimize_with_onnxruntime(model)
    _name_nodes(optimized)
    _check_supported_ops(optimized)
    mod = _to_relax(optimized, shapes, dtypes)
    return ImportedModel(mod, optimized, shapes, dtypes,
                         {n.name: n.op_type for n in optimized.graph.node})


def _check_supported_ops(model: onnx.ModelProto) -> None:

    known = _get_convert_map()
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedError(f"node {node.name!r}: op {node.domain}::{node.op_type} is not "
                                   "supported (only the default ONNX domain is)")
        if node.op_type in {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}:
            raise UnsupportedError(f"node {node.name!r}: {node.op_type} (QOperator quantization "
                                   "form) is not supported; quantize to QDQ format instead")
        if node.op_type not in known and node.op_type not in ("Constant", "If"):
            raise UnsupportedError(f"node {node.name!r}: op type {node.op_type} is not supported "
                                   "by the Relax ONNX importer")


class _NamedImporter(of.ONNXGraphImporter):
    """Stock importer, plus a Relax-visible Clip and a record of which node built what."""

    origin: dict = {}  # bound var -> ONNX node name

    def _convert_operator(self, op_name, inputs, attr, opset):
        node_name = attr["tvm_custom"]["name"]
        out = None
        if op_name == "Clip":
            out = _clip_as_relax(inputs, attr, opset)
        if op_name == "Pad":
            out = _pad_as_relax(inputs, attr, opset)
        if out is None:
            out = super()._convert_operator(op_name, inputs, attr, opset)
        if isinstance(out, relax.Call):
            # bind the node's result here, or a consumer's converter would bind it and
            # claim it as its own
            out = self.bb.emit(out)
        self._claim(out, node_name)
        return out

    def _claim(self, expr, node_name):
        """Every binding this node's converter emitted (reachable from its result and not
        claimed by an earlier node) came from this node."""
        stack = [expr]
        while stack:
            e = stack.pop()
            if isinstance(e, relax.Var) and e not in self.origin:
                value = self.bb.lookup_binding(e)
                if value is None:
                    continue
                self.origin[e] = node_name
                if isinstance(value, relax.Call):
                    stack.extend(value.args)
                elif isinstance(value, relax.Tuple):
                    stack.extend(value.fields)


def _const_scalar(expr):

    if isinstance(expr, tvm.ir.expr.Constant) and expr.value.numpy().size == 1:
        return float(expr.value.numpy().reshape(()))
    return None


def _clip_as_relax(inputs, attr, opset):

    x = inputs[0]
    if opset < 11:
        lo, hi = attr.get("min", -np.inf), attr.get("max", np.inf)
    else:
        lo = -np.inf if len(inputs) < 2 or inputs[1] is None else _const_scalar(inputs[1])
        hi = np.inf if len(inputs) < 3 or inputs[2] is None else _const_scalar(inputs[2])
    if lo is None or hi is None or not isinstance(x.ty, relax.TensorType):
        return None  # data-dependent bounds: let the stock converter handle it
    if "float" not in str(x.ty.dtype):
        return None
    return relax.op.clip(x, float(lo), float(hi))


def _pad_as_relax(inputs, attr, opset):
    """A constant Pad as Relax's ``nn.pad`` (the stock converter emits it as a TE ``call_tir``
    named ``pad``: no op to report, and nothing SimplifyQDQ can put on the integers), or None
    for the stock converter (other modes, opset < 11, pads, value or axes not constants)."""
    if opset < 11 or attr.get("mode", b"constant") != b"constant":
        return None
    x = inputs[0]
    if not isinstance(x.ty, relax.TensorType) or x.ty.ndim < 0:
        return None
    extra = list(inputs[1:]) + [None] * (4 - len(inputs))
    pads, value, axes = extra[0], extra[1], extra[2]
    consts = [e for e in (pads, value, axes) if e is not None]
    if not all(isinstance(e, tvm.ir.expr.GenericConst) for e in consts):
        return None
    pads = pads.value.numpy().astype(np.int64).tolist()
    rank = x.ty.ndim
    axes = list(range(rank)) if axes is None else \
        [int(a) % rank for a in axes.value.numpy().reshape(-1)]
    if len(pads) != 2 * len(axes):
        return None  # the stock converter names the mismatch
    before, after = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        before[a], after[a] = pads[i], pads[len(axes) + i]
    fill = 0.0 if value is None else float(value.value.numpy().reshape(-1)[0])
    width = [v for pair in zip(before, after) for v in pair]
    return relax.op.nn.pad(x, width, "constant", fill)


def _to_relax(model: onnx.ModelProto, shapes, dtypes):
    importer = _NamedImporter({k: list(v) for k, v in shapes.items()}, dtypes)
    importer.origin = {}
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    try:
        # the stock importer prints to stdout before re-raising; keep that out of our output
        with contextlib.redirect_stdout(io.StringIO()):
            mod = importer.from_onnx(model.graph, opset)
        mod = _apply_origin_spans(mod, importer.origin)
    except Exception as exc:  # the importer raises bare Python errors from deep inside
        msg = str(exc).strip().splitlines()
        raise UnsupportedError(f"the Relax ONNX importer failed: {type(exc).__name__}: "
                               f"{msg[0] if msg else ''}") from None
    return mod


def _apply_origin_spans(mod, origin):
    """Rebuild ``main`` so that every call bound to a claimed var carries its node's span."""


    def tag(b):
        if isinstance(b.value, relax.Call) and b.value.span is None and b.var in origin:
            return with_span(b.value, span_named(ONNX_TAG + origin[b.var]))
        return None

    mod["main"] = map_bindings(mod["main"], tag)
    return mod
