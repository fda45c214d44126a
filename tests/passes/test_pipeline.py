"""The registered ``gap8`` Relax pipeline, used the TVM way."""

import numpy as np
import tvm
from tvm import relax

import tvm_gap8  # noqa: F401  (registers the pipeline)
from tvm_gap8.check import random_inputs, run_onnxruntime
from tvm_gap8.frontend import import_onnx
from tvm_gap8.target import tvm_target
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.instruments import KeepLowered


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


def test_greenwaves_gap8_tag_works_after_import():
    target = tvm.target.Target("greenwaves/gap8")
    assert target.kind.name == "c" and "gap8" in list(target.keys)


def _gap8_kernels(exe_or_mod) -> list[str]:
    return sorted(str(f.attrs["gap8.kind"]) for _, f in exe_or_mod.functions_items()
                  if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "gap8.kind" in f.attrs)


def test_tvm_compile_with_plain_llvm_target_still_builds_gap8_kernels():
    imported = import_onnx(M.dw_pw_block(cin=8, cout=16, h=10, w=10, act="relu6"))
    keep = KeepLowered()
    with tvm.transform.PassContext(instruments=[keep]):
        exe = tvm.compile(imported.mod, target="llvm", relax_pipeline="gap8")
    assert _gap8_kernels(keep.lowered) == ["dw_pw"]
    inputs = random_inputs(imported, 0)
    got = relax.VirtualMachine(exe, tvm.cpu())["main"](
        tvm.runtime.tensor(inputs["input"])).numpy()
    (want,) = run_onnxruntime(imported, inputs)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_gap8_pipeline_refuses_a_gpu_target_saying_why():
    import pytest

    from tvm_gap8.errors import UsageError

    imported = import_onnx(M.dw_pw_block(cin=8, cout=16, h=10, w=10))
    with pytest.raises(UsageError, match="not for target kind 'cuda'"):
        with tvm.target.Target("cuda"):
            relax.get_pipeline("gap8")(imported.mod)


def test_pipeline_knobs_as_get_pipeline_keywords():
    """PassContext options cannot be registered from Python in TVM 0.27 (options.py): the
    pipeline's knobs are relax.get_pipeline's keywords, CompileOptions' fields."""
    import pytest

    from tvm_gap8.errors import UsageError
    from tvm_gap8.report.contents import layers_of

    imported = import_onnx(M.dw_pw_block(cin=8, cout=16, h=10, w=10))
    with pytest.raises(Exception, match="Invalid config option"):
        tvm.transform.PassContext(config={"gap8.l1_kb": 32})
    keep = KeepLowered()
    with tvm.transform.PassContext(instruments=[keep]):
        tvm.compile(imported.mod, target="llvm",
                    relax_pipeline=relax.get_pipeline("gap8", fusion="none", l1_kb=16))
    assert _gap8_kernels(keep.lowered) == ["dw", "pw"]
    assert all(layer["l1_peak_bytes"] <= 16000 for layer in layers_of(keep.lowered)
               if layer.get("tiled"))
    with pytest.raises(UsageError, match="fusion 'most': expected one of auto, all"):
        relax.get_pipeline("gap8", fusion="most")
