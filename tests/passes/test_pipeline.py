"""The registered ``gap8`` Relax pipeline, used the TVM way."""

import numpy as np
import tvm
from tvm import relax

import tvm_gap8  # noqa: F401  (registers the pipeline)
from tvm_gap8.check import random_inputs, run_onnxruntime
from tvm_gap8.frontend import import_onnx
from tvm_gap8.target import tvm_target
from tvm_gap8.testing import onnx_models as M


def test_tvm_compile_with_gap8_pipeline_matches_onnxruntime():
    imported = import_onnx(M.dw_pw_block(cin=8, cout=16, h=10, w=10, act="relu6"))
    exe = tvm.compile(imported.mod, target=tvm_target(host=True), relax_pipeline="gap8")
    inputs = random_inputs(imported, 0)
    vm = relax.VirtualMachine(exe, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(inputs["input"])).numpy()
    (want,) = run_onnxruntime(imported, inputs)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # the same pipeline, applied by hand, leaves one fused gap8 kernel in the module
    with tvm_target(host=True):
        built = relax.get_pipeline("gap8")(imported.mod)
    kinds = [str(f.attrs["gap8.kind"]) for _, f in built.functions_items()
             if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "gap8.kind" in f.attrs]
    assert kinds == ["dw_pw"]


def test_pipeline_registration_is_idempotent():
    import importlib

    import tvm_gap8.pipeline as pipeline

    importlib.reload(pipeline)  # must not raise "already registered"
    assert "gap8" in relax.pipeline.PIPELINE_MAP


def test_tvm_compile_with_gap8_pipeline_int8():
    from tvm_gap8.testing.quant import quantized

    imported = import_onnx(quantized(M.dw_pw_block(cin=8, cout=16, h=10, w=10, act="relu6")))
    exe = tvm.compile(imported.mod, target=tvm_target(host=True), relax_pipeline="gap8")
    inputs = random_inputs(imported, 0)
    vm = relax.VirtualMachine(exe, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(inputs["input"])).numpy()
    (want,) = run_onnxruntime(imported, inputs)
    np.testing.assert_array_equal(got, want)  # bit-exact requantization
