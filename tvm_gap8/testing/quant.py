"""Quantize test models with onnxruntime, the way ``tvm-gap8 quantize`` does."""

import os
import tempfile

import onnx

from ..frontend.quantize import quantize_model


def quantized(model: onnx.ModelProto, per_channel: bool = True, samples: int = 8,
              seed: int = 0, activation_type: str = "int8") -> onnx.ModelProto:
    with tempfile.TemporaryDirectory(prefix="tvm_gap8_q_") as tmp:
        out = os.path.join(tmp, "int8.onnx")
        quantize_model(model, out, samples=samples, seed=seed, per_channel=per_channel,
                       warn=False, activation_type=activation_type)
        return onnx.load(out)
