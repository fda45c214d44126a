"""How close an int8 model's integer semantics (``integer_reference`` in a requantization mode,
which our kernels equal bit for bit) come to the ONNX QDQ float semantics and to onnxruntime.

Two figures per quantized layer, aggregated over every element of every layer:

* **QDQ spec** (``reference.spec``): the layer evaluated in float64 on *its own* integer inputs,
  rounded half to even, vs the layer's integer output: the fraction of elements equal and the
  largest difference, in quantization steps;
* **onnxruntime** (basic optimisation level, ``session.py``: DQ -> float op -> Q) end to end,
  every QuantizeLinear's output exposed: the fraction of elements equal and the largest
  difference. A difference in an early layer propagates, so these also count inherited ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from ..reference import integer_reference, spec_layer_check
from ..reference.graph import Graph
from .session import reference_session


@dataclass(frozen=True)
class Agreement:
    """Aggregate figures of one model, one requantization mode, one input."""

    mode: str
    layers: int
    elements: int
    spec_equal_fraction: float  # elements equal to the QDQ float64 semantics (own inputs)
    spec_max_steps: int
    ort_equal_fraction: float  # elements equal to onnxruntime's (end to end)
    ort_max_steps: int
    ort_first_difference: str = ""  # the first layer differing from onnxruntime's, if any

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _with_layer_outputs(model: onnx.ModelProto, names: list) -> onnx.ModelProto:
    """``model`` with the outputs of the QuantizeLinear nodes ``names`` as graph outputs."""
    model = onnx.shape_inference.infer_shapes(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    known = {o.name for o in out.graph.output}
    infos = {v.name: v for v in out.graph.value_info}
    for name in names:
        if name in known:
            continue
        info = infos.get(name)
        out.graph.output.append(info if info is not None else
                                helper.make_empty_tensor_value_info(name))
    return out


def agreement(model: onnx.ModelProto, inputs: dict, mode: str) -> Agreement:
    """``model`` as our frontend leaves it (``import_onnx(...).onnx_model``), on ``inputs``."""
    run = integer_reference(model, inputs, mode)
    spec = spec_layer_check(model, run)
    graph = Graph(model)
    out_of = {n.name: n.output[0] for n in graph.nodes if n.op_type == "QuantizeLinear"}
    names = [out_of[rec.name] for rec in run.layers]
    ort = reference_session(_with_layer_outputs(model, names))
    wanted = dict(zip(names, ort.run(names, inputs)))
    sizes = [np.asarray(rec.output).size for rec in run.layers]
    total = max(1, sum(sizes))
    spec_equal = sum(size * (1 - r["fraction_differing"]) for size, r in zip(sizes, spec.layers))
    ort_equal, ort_max, first = 0, 0, ""
    for rec, name in zip(run.layers, names):
        diff = np.abs(np.asarray(rec.output).astype(np.int64) - wanted[name].astype(np.int64))
        ort_equal += int(np.sum(diff == 0))
        ort_max = max(ort_max, int(diff.max(initial=0)))
        if diff.any() and not first:
            first = (f"{rec.name} ({rec.op}): {int(np.sum(diff > 0))} of {diff.size} elements, "
                     f"max {int(diff.max())} step")
    return Agreement(mode, len(run.layers), int(sum(sizes)), round(spec_equal / total, 6),
                     max((r["max_step_diff"] for r in spec.layers), default=0),
                     round(ort_equal / total, 6), ort_max, first)
