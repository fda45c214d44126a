"""Walk an ONNX QDQ graph with the integer semantics of our kernels (``integer_reference``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from .graph import Graph, Layer, order_dependent, trace
from ..kernels.requant import DEFAULT_REQUANT
from .integer import eval_layer
from .ops import dequantize, eval_node, quantize


@dataclass
class LayerRecord:
    """One quantized layer of a reference run."""

    name: str  # the QuantizeLinear's node name
    kind: str  # conv | dense | add | pool | mul | table | reshape | identity | float
    op: str  # the ONNX op type of the layer's main node (QuantizeLinear if none)
    node: str  # the main node's name (e.g. the Conv)
    output: np.ndarray  # the layer's integer output
    inputs: dict  # source tensor name -> array (integer tensors of its DQs, float sources)
    nodes: list = field(default_factory=list)  # names of the float ops inside the layer


@dataclass
class ReferenceRun:
    outputs: list  # graph outputs in graph order, as run_host returns them
    layers: list  # LayerRecord per QuantizeLinear evaluated, in graph order
    exact_applicable: bool = True  # False if a float op depends on summation order
    reasons: list = field(default_factory=list)  # why not exact_applicable, naming nodes
    values: dict = field(default_factory=dict, repr=False)  # every tensor computed

    def layer(self, name: str) -> LayerRecord:
        for rec in self.layers:
            if name in (rec.name, rec.node):
                return rec
        raise KeyError(name)


def _needed(graph: Graph, layers: dict) -> set:
    """Tensors the graph outputs depend on, integer layers reading only their DQs' inputs."""
    needed, stack = set(), list(graph.outputs)
    while stack:
        t = stack.pop()
        if t in needed or t in graph.inits:
            continue
        needed.add(t)
        p = graph.producer.get(t)
        if p is None:
            continue
        layer = layers.get(t)
        if layer is not None and layer.kind != "float":
            stack.extend(dq.input[0] for dq in layer.dqs)
        else:
            stack.extend(i for i in p.input if i)
    return needed


def _float_node(graph: Graph, node, values):
    """A node our compiler computes in float32 (TVM's QDQ legalization for Q/DQ)."""
    if node.op_type in ("DequantizeLinear", "QuantizeLinear"):
        scale, zp, dtype = graph.qparams(node)
        axis = graph.attr(node, "axis", 1)
        x = values[node.input[0]] if node.input[0] in values else graph.const(node.input[0])
        if node.op_type == "DequantizeLinear":
            return dequantize(x, scale, zp, axis, np.float32)
        if scale.size != 1:
            raise ValueError(f"node {node.name!r}: per-channel QuantizeLinear of an activation")
        return quantize(x, scale.reshape(()), int(zp.reshape(())), dtype, np.float32)
    args = []
    for t in node.input:
        if not t:
            continue
        v = values[t] if t in values else graph.const(t)
        if v is None:
            raise ValueError(f"node {node.name!r}: input {t!r} has no value")
        args.append(v.astype(np.float32) if v.dtype.kind == "f" else v)
    return eval_node(graph, node, args, np.float32)


def _operands(graph: Graph, node, values):
    """The node's inputs aligned with ``node.input`` (None where absent)."""
    return [(values[t] if t in values else graph.const(t)) if t else None for t in node.input]


def _record(graph: Graph, layer: Layer, values, output, kind) -> LayerRecord:
    inputs = {dq.input[0]: values[dq.input[0]] for dq in layer.dqs}
    inputs.update({s: values[s] for s in layer.sources})
    return LayerRecord(layer.name, kind, layer.op, layer.main_node, output, inputs,
                       [n.name for n in layer.nodes])


def integer_reference(model: onnx.ModelProto, inputs: dict,
                      requant: str = DEFAULT_REQUANT) -> ReferenceRun:
    """Evaluate ``model`` (the ONNX model after our frontend: ``import_onnx(...).onnx_model``)
    on ``inputs`` with the integer semantics of our kernels, requantizing as the kernels of
    a compile in mode ``requant`` do (``fixed`` | ``float32``, ``kernels/requant.py``).

    Every QuantizeLinear ends a layer (``graph.trace``); a layer one of our integer kernels
    computes is evaluated with that kernel's integer arithmetic (``integer.py``), bit for bit;
    everything else (the quantize of the input, the dequantize of the outputs, ops our
    compiler leaves in float such as MaxPool, Concat, Resize, ConvTranspose) is evaluated node
    by node in float32 as our compiled code computes it (``ops.py``). Ops whose float result
    depends on the summation order (a float Conv, ConvTranspose, Softmax, ...;
    ``graph.order_dependent``) make the comparison inexact: the run says so in
    ``exact_applicable`` / ``reasons``. An op the reference cannot evaluate raises
    ``UnsupportedOpError`` (a ``ValueError``) naming the node and its op type.

    Returns a ``ReferenceRun``: ``outputs`` are the graph outputs in graph order, float32
    dequantized exactly as ``compiler.run_host`` returns them; ``layers`` one ``LayerRecord``
    per quantized layer (its integer output and inputs).
    """
    graph = Graph(model)
    layers = {n.output[0]: trace(graph, n) for n in graph.nodes if n.op_type == "QuantizeLinear"}
    needed = _needed(graph, layers)
    missing = [i for i in graph.inputs if i in needed and i not in inputs]
    if missing:
        raise ValueError(f"missing inputs: {', '.join(missing)}")
    values = {k: np.asarray(v) for k, v in inputs.items()}
    run = ReferenceRun([], [], values=values)
    for node in graph.nodes:
        if not any(o in needed for o in node.output):
            continue
        layer = layers.get(node.output[0]) if node.op_type == "QuantizeLinear" else None
        if layer is not None and layer.kind != "float":
            acts = {dq.output[0]: (values[dq.input[0]], *graph.act_qparams(dq)[:2])
                    for dq in layer.dqs}
            kind, out = eval_layer(graph, layer, acts, requant)
        else:
            kind, out = "float", _float_node(graph, node, values)
            if order_dependent(graph, node, _operands(graph, node, values)):
                run.exact_applicable = False
                run.reasons.append(f"node {node.name!r} ({node.op_type}) runs in float32 in our "
                                   "compiled code: its result depends on the summation order")
        values[node.output[0]] = out
        if layer is not None:
            run.layers.append(_record(graph, layer, values, out, kind))
    run.outputs = [values[o] for o in graph.outputs]
    return run
