"""ONNX in: the import to Relax (``onnx_import``) and float -> int8 QDQ quantization
(``quantize``)."""

from .onnx_import import ImportedModel, import_onnx, node_name_of, parse_input_shape

__all__ = ["ImportedModel", "import_onnx", "node_name_of", "parse_input_shape"]
