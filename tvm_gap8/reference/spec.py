"""Spec check: each quantized layer of a reference run against the ONNX QDQ semantics.

For every layer the run recorded, its own integer inputs are dequantized exactly (float64),
the layer's ONNX ops are evaluated in float64 by their ONNX definitions, and the result is
quantized with round-half-to-even and saturation. The difference to the layer's integer
output is counted in quantization steps (integers). Our kernels round a few intermediate
quantities (float32 requantization scale, integer multipliers, table arithmetic in float32), so
the contract is: at most 1 step per element, in every layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from .graph import Graph, trace
from .ops import dequantize, eval_node, quantize

MAX_STEPS = 1


@dataclass
class SpecReport:
    layers: list = field(default_factory=list)  # {name, kind, op, max_step_diff, fraction}
    max_steps: int = MAX_STEPS

    @property
    def failing(self) -> list:
        return [r["name"] for r in self.layers if r["max_step_diff"] > self.max_steps]

    @property
    def passed(self) -> bool:
        return not self.failing

    def to_dict(self) -> dict:
        return {"criterion": f"<= {self.max_steps} quantization step per layer",
                "passed": self.passed, "failing": self.failing, "layers": self.layers}


def _const64(graph: Graph, tensor):
    if graph.is_const_dq(tensor):
        q, scale, zp, axis = graph.const_dq(tensor)
        return dequantize(q, scale.astype(np.float64), zp, axis, np.float64)
    v = graph.const(tensor)
    if v is None:
        raise ValueError(f"tensor {tensor!r} has no value")
    return v.astype(np.float64) if v.dtype.kind == "f" else v


def spec_output(graph: Graph, layer, inputs: dict) -> np.ndarray:
    """ONNX QDQ semantics of ``layer`` in float64 on ``inputs`` (source tensor -> array)."""
    vals = {}
    for dq in layer.dqs:
        scale, zp, _ = graph.qparams(dq)
        vals[dq.output[0]] = dequantize(inputs[dq.input[0]], scale.astype(np.float64), zp,
                                        graph.attr(dq, "axis", 1), np.float64)
    for s in layer.sources:
        vals[s] = np.asarray(inputs[s], np.float64)
    for node in layer.nodes:
        args = [vals[t] if t in vals else _const64(graph, t) for t in node.input if t]
        vals[node.output[0]] = eval_node(graph, node, args, np.float64)
    scale, zp, dtype = graph.qparams(layer.quant)
    x = vals[layer.quant.input[0]]
    return quantize(x, scale.astype(np.float64).reshape(()), int(zp.reshape(())), dtype,
                    np.float64)


def spec_layer_check(model: onnx.ModelProto, run) -> SpecReport:
    """Per layer of ``run`` (an ``integer_reference`` result on ``model``): the max difference,
    in quantization steps, between the layer's integer output and the ONNX QDQ float64
    semantics on the same inputs, and the fraction of elements that differ at all."""
    graph = Graph(model)
    quants = {n.name: n for n in graph.nodes if n.op_type == "QuantizeLinear"}
    report = SpecReport()
    for rec in run.layers:
        layer = trace(graph, quants[rec.name])
        want = spec_output(graph, layer, rec.inputs).astype(np.int64)
        diff = np.abs(np.asarray(rec.output).astype(np.int64) - want)
        report.layers.append({
            "name": rec.name, "kind": rec.kind, "op": rec.op,
            "max_step_diff": int(diff.max(initial=0)),
            "fraction_differing": round(float(np.mean(diff > 0)) if diff.size else 0.0, 6)})
    return report
