"""The ONNX QDQ graph as the reference reads it: constants, producers, and *layers*.

A layer is what one of our kernels computes: the float ops between the DequantizeLinear nodes
of its integer activation inputs and one QuantizeLinear. ``classify`` names the integer
semantics that apply (the kernel our compiler forms for that subgraph), or ``float`` when our
compiler leaves the subgraph in float (then the reference evaluates it node by node).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from .resize import ResizeSpec, tvm_linear_form

#: kinds evaluated with integer semantics (``integer.py``)
INTEGER_KINDS = ("conv", "dense", "add", "pool", "mul", "table", "reshape", "identity")
#: elementwise ops a one-input table may hold (besides constants)
TABLE_OPS = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Relu", "Clip", "Sigmoid", "HardSigmoid",
             "HardSwish", "LeakyRelu"}
#: float ops whose float32 result depends on the summation order
ORDER_DEPENDENT = {"Conv", "ConvTranspose", "Gemm", "MatMul", "GlobalAveragePool", "ReduceMean",
                   "ReduceSum", "AveragePool", "Softmax", "LogSoftmax", "Resize", "Upsample"}
ACTIVATIONS = ("Relu", "Clip")


def order_dependent(graph: "Graph", node, operands=None) -> bool:
    """The node's float32 result in our compiled code depends on the evaluation order
    (``ORDER_DEPENDENT``), so the reference cannot restate it bit for bit. Not so for a
    nearest Resize / Upsample (it copies elements), nor for a linear Resize our compiled code
    computes with TVM's ``resize2d``, whose float32 arithmetic ``resize.linear_float32``
    restates (``operands``: the node's inputs aligned with ``node.input``, None if absent)."""
    if node.op_type in ("Resize", "Upsample"):

        mode = graph.attr(node, "mode", b"nearest")
        if (mode.decode() if isinstance(mode, bytes) else mode) == "nearest":
            return False
        return operands is None or not tvm_linear_form(
            ResizeSpec(graph, node, operands, graph.opset))
    return node.op_type in ORDER_DEPENDENT


@dataclass
class Layer:
    name: str  # the QuantizeLinear's node name
    kind: str  # one of INTEGER_KINDS, or "float"
    quant: onnx.NodeProto
    nodes: list = field(default_factory=list)  # float ops between, topological order
    dqs: list = field(default_factory=list)  # DequantizeLinear nodes of integer activations
    sources: list = field(default_factory=list)  # float tensors entering (e.g. graph inputs)

    @property
    def op(self) -> str:
        return self.nodes[0].op_type if self.nodes else "QuantizeLinear"

    @property
    def main_node(self) -> str:
        return self.nodes[0].name if self.nodes else self.quant.name


class Graph:
    """Constants, producers and node order of an ONNX model."""

    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        self.model = model
        self.inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.nodes = []
        for n in g.node:
            if n.op_type == "Constant":
                self.inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
            else:
                self.nodes.append(n)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.index = {id(n): i for i, n in enumerate(self.nodes)}
        self.inputs = [i.name for i in g.input if i.name not in self.inits]
        self.outputs = [o.name for o in g.output]

    @property
    def opset(self) -> int:
        """The model's default-domain opset."""
        return next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")),
                    1)

    def const(self, name: str):
        return self.inits.get(name)

    def is_act_dq(self, tensor: str) -> bool:
        p = self.producer.get(tensor)
        return p is not None and p.op_type == "DequantizeLinear" and p.input[0] not in self.inits

    def is_const_dq(self, tensor: str) -> bool:
        p = self.producer.get(tensor)
        return p is not None and p.op_type == "DequantizeLinear" and p.input[0] in self.inits

    def qparams(self, node) -> tuple[np.ndarray, np.ndarray, str]:
        """(scale float32, zero point int64, integer type) of a Q or DQ node."""
        scale = self.inits.get(node.input[1])
        if scale is None:
            raise ValueError(f"node {node.name!r} ({node.op_type}): non-constant scale")
        if len(node.input) > 2 and node.input[2]:
            zp = self.inits.get(node.input[2])
            if zp is None:
                raise ValueError(f"node {node.name!r} ({node.op_type}): non-constant zero point")
            dtype = str(zp.dtype)
        else:
            zp, dtype = np.zeros((), np.uint8), "uint8"  # ONNX default
        return scale.astype(np.float32), zp.astype(np.int64), dtype

    def act_qparams(self, node) -> tuple[float, int, str]:
        """Per-tensor (scale, zero point, type) of an activation Q/DQ."""
        scale, zp, dtype = self.qparams(node)
        if scale.size != 1 or zp.size != 1:
            raise ValueError(f"node {node.name!r}: per-channel activation quantization is not "
                             "supported")
        return float(scale.reshape(())), int(zp.reshape(())), dtype

    def const_dq(self, tensor: str):
        """(int values, scale float32, zero point int64, axis) of a dequantized constant."""
        p = self.producer[tensor]
        scale, zp, _ = self.qparams(p)
        axis = next((a.i for a in p.attribute if a.name == "axis"), 1)
        return self.inits[p.input[0]], scale, zp, axis

    def attr(self, node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def sort(self, nodes):
        return sorted(nodes, key=lambda n: self.index[id(n)])


def trace(graph: Graph, q) -> Layer:
    """The subgraph feeding QuantizeLinear ``q``, back to activation DQs and constants."""
    nodes, dqs, sources, seen = [], [], [], set()
    stack = [q.input[0]]
    while stack:
        t = stack.pop()
        if not t or t in seen or t in graph.inits:
            continue
        seen.add(t)
        p = graph.producer.get(t)
        if p is None:
            sources.append(t)
        elif p.op_type == "DequantizeLinear":
            if p.input[0] not in graph.inits:
                dqs.append(p)
        elif p.op_type == "QuantizeLinear":
            raise ValueError(f"node {p.name!r}: a QuantizeLinear output read as a float")
        else:
            nodes.append(p)
            stack.extend(p.input)
    layer = Layer(q.name, "float", q, graph.sort(nodes), graph.sort(dqs), sources)
    layer.kind = classify(graph, layer)
    return layer


def _chain(nodes, first: str, rest=ACTIVATIONS) -> bool:
    """``nodes`` is ``first`` followed by a chain of ``rest`` ops, each reading the previous."""
    if not nodes or nodes[0].op_type != first:
        return False
    return all(n.op_type in rest and n.input[0] == prev.output[0]
               for prev, n in zip(nodes, nodes[1:]))


def _same_qparams(graph: Graph, dq, q) -> bool:
    a, b = graph.qparams(dq), graph.qparams(q)
    return a[2] == b[2] and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def classify(graph: Graph, layer: Layer) -> str:
    """Which of our kernels computes ``layer`` (the compiler's patterns, ``passes/patterns.py``
    and ``passes/qdq.py``), or ``float`` if none does."""
    nodes, dqs = layer.nodes, layer.dqs
    if layer.sources or not dqs:
        return "float"
    ops = [n.op_type for n in nodes]
    acts = [graph.is_act_dq(t) for t in (nodes[0].input if nodes else ())]
    if _chain(nodes, "Conv") and acts[0] and graph.is_const_dq(nodes[0].input[1]) \
            and _conv_kernel_ok(graph, nodes[0]):
        return "conv"
    if _chain(nodes, "Gemm") and acts[0] and graph.is_const_dq(nodes[0].input[1]) \
            and not graph.attr(nodes[0], "transA", 0) \
            and graph.attr(nodes[0], "alpha", 1.0) == 1.0 \
            and graph.attr(nodes[0], "beta", 1.0) == 1.0:
        return "dense"
    if _chain(nodes, "MatMul") and acts[0] and graph.is_const_dq(nodes[0].input[1]):
        return "dense"  # a 2-D input (``integer.effective_kind`` checks it)
    if _chain(nodes, "Add") and len(acts) == 2 and all(acts):
        return "add"
    if ops == ["GlobalAveragePool"] or (ops == ["ReduceMean"] and sorted(
            a % 4 for a in graph.attr(nodes[0], "axes", [])) == [2, 3]
            and graph.attr(nodes[0], "keepdims", 1)):
        return "pool"
    if ops == ["Mul"] and len(acts) == 2 and all(acts):
        return "mul"
    if len(dqs) == 1 and nodes and set(ops) <= TABLE_OPS and _scalar_constants(graph, nodes):
        return "table"
    if ops in (["Reshape"], ["Flatten"]) and _same_qparams(graph, dqs[0], layer.quant):
        return "reshape"
    if not ops and len(dqs) == 1 and _same_qparams(graph, dqs[0], layer.quant):
        return "identity"
    return "float"



def _scalar_constants(graph: Graph, nodes) -> bool:
    """Every constant operand is a scalar (a table kernel takes no per-element constants: a
    LayerNorm's gamma/beta multiply stays float in our compiler)."""
    for node in nodes:
        for t in node.input[1:]:
            p = graph.producer.get(t)
            v = graph.inits.get(p.input[0] if p is not None and p.op_type == "DequantizeLinear"
                                else t)
            if v is not None and np.size(v) != 1:
                return False
    return True


def _conv_kernel_ok(graph: Graph, conv) -> bool:
    """The convs our conv kernels take (``patterns.conv_problem``): square kernel (strides
    per axis), no dilation; any other QDQ conv stays float in our compiler."""
    w = graph.inits[graph.producer[conv.input[1]].input[0]]
    return w.ndim == 4 and w.shape[2] == w.shape[3] \
        and list(graph.attr(conv, "dilations", [1, 1])) == [1, 1]
