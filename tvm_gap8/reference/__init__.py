"""A numpy reference of our int8 compiled models, independent of TVM and of the CPU.

* ``integer_reference(model, inputs) -> ReferenceRun``: the integer semantics our kernels
  implement, layer by layer; equals our compiled output bit for bit (``run.py``).
* ``spec_layer_check(model, run) -> SpecReport``: every quantized layer of that run against
  the ONNX QDQ float semantics (float64), in quantization steps (``spec.py``).
"""

from .run import LayerRecord, ReferenceRun, integer_reference
from .spec import SpecReport, spec_layer_check

__all__ = ["LayerRecord", "ReferenceRun", "SpecReport", "integer_reference",
           "spec_layer_check"]
