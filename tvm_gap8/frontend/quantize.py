"""Float ONNX -> int8 QDQ ONNX through onnxruntime's static quantization.

The float model is first pinned and optimised the way the compiler's frontend does it
(BatchNorm folded into Conv), so the quantizer sees the graph we compile. Calibration data is a
directory of ``.npy`` files (one array per sample, or a dict-like ``.npz`` per sample for
multi-input models), or seeded random samples, with a warning that accuracy needs real data.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np
import onnx
from onnx import version_converter

from ..errors import Gap8Error, ModelError, UsageError
from .onnx_import import (_name_nodes, import_onnx, load_onnx, optimize_with_onnxruntime,
                          pin_input_shapes)

#: DequantizeLinear/QuantizeLinear take a per-axis scale (``axis``) from opset 13 on.
PER_AXIS_OPSET = 13


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _at_least_opset(model: onnx.ModelProto, version: int, warn: bool) -> onnx.ModelProto:
    """The model converted to ``version`` with onnx's version converter when it is older (the
    QDQ nodes the quantizer writes need opset 13 for per-channel scales)."""
    old = _opset(model)
    if old >= version:
        return model

    try:
        converted = version_converter.convert_version(model, version)
        onnx.checker.check_model(converted)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot convert the model from opset {old} to {version} for "
                         f"quantization: {first}") from None
    if warn:
        print(f"warning: model converted from opset {old} to {version} (per-channel "
              "QuantizeLinear/DequantizeLinear need opset 13)", file=sys.stderr)
    return converted


def _validate(path: str, shapes) -> None:
    """The quantized model must pass the ONNX checker and our importer before it is written."""
    try:
        import_onnx(path, shapes)
    except Gap8Error as exc:
        raise ModelError(f"the quantized model does not import: {exc}") from None


class _Reader:
    """onnxruntime CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - only some ORT versions call it
        pass


def _random_feeds(shapes, dtypes, n, seed):
    rng = np.random.default_rng(seed)
    return [{name: rng.standard_normal(shape).astype(dtypes[name])
             for name, shape in shapes.items()} for _ in range(n)]


def _npy_feeds(directory, shapes, dtypes):
    if not os.path.isdir(directory):
        raise UsageError(f"--calibration {directory}: not a directory")
    files = sorted(glob.glob(os.path.join(directory, "*.npy")) +
                   glob.glob(os.path.join(directory, "*.npz")))
    if not files:
        raise UsageError(f"--calibration {directory}: no .npy or .npz files")
    feeds = []
    (only,) = shapes if len(shapes) == 1 else (None,)
    for path in files:
        data = np.load(path)
        if isinstance(data, np.ndarray):
            if only is None:
                raise UsageError(f"{path}: the model has several inputs; use .npz with one "
                                 "array per input name")
            data = {only: data}
        feed = {}
        for name, shape in shapes.items():
            if name not in data:
                raise UsageError(f"{path}: no array for input {name!r}")
            arr = np.asarray(data[name]).astype(dtypes[name])
            if arr.shape != tuple(shape):
                if arr.shape == tuple(shape[1:]):
                    arr = arr[None]
                else:
                    raise UsageError(f"{path}: input {name!r} has shape {arr.shape}, the model "
                                     f"takes {tuple(shape)}")
            feed[name] = arr
        feeds.append(feed)
    return feeds


#: ONNX ops of a model that is quantized already (QDQ or operator-oriented)
QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                 "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")


def _refuse_quantized(model: onnx.ModelProto) -> None:
    found = [n for n in model.graph.node if n.op_type in QUANTIZED_OPS]
    if found:
        ops = sorted({n.op_type for n in found})
        raise UsageError(f"the model is quantized already: {len(found)} node(s) of "
                         f"{', '.join(ops)} (first: {found[0].name or found[0].op_type!r}); "
                         "quantize takes a float model; compile this one directly with "
                         "tvm-gap8 compile")


def quantize_model(model, output: str, input_shapes=None, calibration: str | None = None,
                   samples: int = 16, seed: int = 0, per_channel: bool = True,
                   warn: bool = True, activation_type: str = "int8") -> dict:
    """Write the int8 QDQ model to ``output``; return a summary."""
    # here: onnxruntime.quantization pulls in heavy optional modules only quantize needs
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    m = onnx.ModelProto()
    m.CopyFrom(load_onnx(model))
    _refuse_quantized(m)
    _name_nodes(m)
    shapes, dtypes = pin_input_shapes(m, input_shapes)
    optimized = optimize_with_onnxruntime(_at_least_opset(m, PER_AXIS_OPSET, warn))
    if calibration:
        feeds = _npy_feeds(calibration, shapes, dtypes)
        source = f"{len(feeds)} samples from {calibration}"
    else:
        if samples < 1:
            raise UsageError(f"--calibration-samples {samples}: must be >= 1")
        feeds = _random_feeds(shapes, dtypes, samples, seed)
        source = f"{samples} seeded random samples"
        if warn:
            print("warning: calibrating on random data; accuracy needs representative inputs "
                  "(--calibration DIR of .npy files)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tvm_gap8_q_") as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "int8.onnx")
        onnx.save(optimized, src)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")

            logging.getLogger().setLevel(logging.ERROR)
            act = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}.get(activation_type)
            if act is None:
                raise UsageError(f"activation type {activation_type!r}: int8 or uint8")
            quantize_static(src, dst, _Reader(feeds), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=act,
                            weight_type=QuantType.QInt8,
                            extra_options={"ActivationSymmetric": False,
                                           "WeightSymmetric": True})
        _validate(dst, shapes)
        shutil.move(dst, output)
    return {"output": output, "calibration": source, "per_channel": per_channel,
            "activation_type": activation_type}
