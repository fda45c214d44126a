"""The onnxruntime reference session: always at the *basic* graph optimisation level, which
runs a QDQ graph as the ONNX spec writes it (DequantizeLinear -> float op -> QuantizeLinear).
The default level (all optimisations) rewrites QDQ into onnxruntime's own integer kernels,
whose results depend on the CPU's instruction set (AVX2 vs AVX-512 VNNI): never used here."""

from __future__ import annotations


def reference_session(model):
    """An onnxruntime CPU session of ``model`` at ORT_ENABLE_BASIC."""
    import onnxruntime as ort  # here: loaded only when a reference is needed

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
