"""Per-layer float precision of a compiled model: where (if anywhere) do we lose accuracy?

    python benchmarks/float_layer_precision.py [--resolution 96] [--taps NODE ...]

For each tapped node of ``text_detector(resolution)``, the model is truncated at that node's
output and compiled with ``compile_model(..., check=True)``; our output and onnxruntime's
(float32, ORT_ENABLE_BASIC) are both compared with a float64 reference (the truncated model cast
to float64, imported with the stock Relax importer and built for llvm). Columns: max |ref|,
then for ours and for onnxruntime the max abs error, the max elementwise relative error and the
max abs error over max |ref|.
"""

import argparse

import numpy as np
import onnx
import tvm
from onnx import TensorProto, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from tvm_gap8.compiler import compile_model, random_inputs, run_host
from tvm_gap8.testing import onnx_models as M

TAPS = ["hardswish_0", "b0_pw_bn_0", "b1_se_scale_0", "b1_pw_bn_0", "b2_pw_bn_0", "lat3_0",
        "up_nearest_0", "cat2_0", "hardswish_6", "up_linear_0", "cat1_0", "relu_1", "deconv_0",
        "relu_2", "head_0", "prob_0"]


def truncate(model, tensor):
    inferred = onnx.shape_inference.infer_shapes(model)
    return onnx.utils.Extractor(inferred).extract_model(["input"], [tensor])


def to_float64(model):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i, t in enumerate(m.graph.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32:
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(a.astype(np.float64), t.name))
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    return m


def reference64(model, x):
    ex = tvm.compile(from_onnx(to_float64(model), keep_params_in_input=False), target="llvm")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x.astype(np.float64))).numpy()


def onnxruntime32(model, x):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.log_severity_level = 3  # errors only
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def errors(got, ref):
    d = np.abs(got.astype(np.float64) - ref)
    rel = d / np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    return d.max(), rel.max(), d.max() / np.abs(ref).max()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--taps", nargs="*", default=TAPS)
    args = ap.parse_args(argv)
    model = M.text_detector(args.resolution)
    outputs = {n.name: n.output[0] for n in model.graph.node}
    print(f"{'layer':14s} {'max|ref|':>9s} | ours: {'abs':>8s} {'rel':>8s} {'abs/max':>8s}"
          f" | ort: {'abs':>8s} {'rel':>8s} {'abs/max':>8s}")
    for tap in args.taps:
        sub = truncate(model, outputs[tap])
        result = compile_model(sub, check=True, fusion="all", layout="chw")
        x = random_inputs(result.imported, 0)["input"]
        ref = reference64(sub, x)
        ours = errors(run_host(result.executable, result.imported, {"input": x})[0], ref)
        ort_ = errors(onnxruntime32(sub, x), ref)
        print(f"{tap:14s} {np.abs(ref).max():9.3g} | ours: " + " ".join(f"{v:8.2e}" for v in ours)
              + " | ort: " + " ".join(f"{v:8.2e}" for v in ort_), flush=True)


if __name__ == "__main__":
    main()
