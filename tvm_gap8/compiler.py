"""The whole flow as one call: ONNX -> Relax -> gap8 passes -> (host build + check) -> report."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from .check_float import float_output_verdicts
from .errors import Gap8Error, UnsupportedError
from .frontend import ImportedModel, import_onnx
from .pipeline import gap8_passes
from .report import float_layers, fusion_of, layers_of
from .target import GAP8, Gap8Target, tvm_target

FLOAT_TOLERANCE = 1e-4  # max abs error allowed, relative to the reference output's max |value|


@dataclass
class CompileResult:
    imported: ImportedModel
    lowered: tvm.IRModule  # after our passes, before TVM's build passes
    report: dict
    executable: object = None
    timings: dict = field(default_factory=dict)


def _progress(msg: str, quiet: bool):
    if not quiet:
        print(f"[tvm-gap8] {msg}", file=sys.stderr, flush=True)


def lower(mod: tvm.IRModule, hw: Gap8Target = GAP8, fuse: bool = True,
          policy: str = "all") -> tvm.IRModule:
    """Apply our passes (under the GAP8 target, so passes can dispatch on its keys)."""
    with tvm_target(host=True):
        return tvm.transform.Sequential(gap8_passes(hw, fuse, policy))(mod)


def build_host(lowered: tvm.IRModule):
    """TVM's build passes + LLVM codegen for the host: runs the same lowered kernels."""
    return tvm.compile(lowered, target=tvm_target(host=True), relax_pipeline="default_build")


def compile_model(model, input_shapes=None, hw: Gap8Target = GAP8, fuse: bool = True,
                  check: bool = False, seed: int = 0, quiet: bool = True,
                  fusion: str = "all") -> CompileResult:
    timings = {}
    t0 = time.perf_counter()
    _progress("importing ONNX model", quiet)
    imported = import_onnx(model, input_shapes)
    timings["import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _progress("fusing and lowering for GAP8" if fuse else "lowering for GAP8 (no fusion)", quiet)
    try:
        lowered = lower(imported.mod, hw, fuse, fusion)
    except Gap8Error:
        raise
    except Exception as exc:  # a TVM failure is our bug or an unsupported case: say where
        msg = str(exc).strip().splitlines()
        raise UnsupportedError(f"lowering failed: {type(exc).__name__}: "
                               f"{msg[-1] if msg else ''}") from exc
    timings["lower_s"] = time.perf_counter() - t0
    _progress("reading tiles and traffic off the lowered IR", quiet)
    layers = layers_of(lowered, hw)
    report = {
        "model": imported.onnx_model.graph.name,
        "target": hw.to_dict(),
        "inputs": {k: list(v) for k, v in imported.input_shapes.items()},
        "fuse": fuse,
        "fusion_policy": fusion if fuse else "none",
        "fusion": fusion_of(lowered, layers, fuse),
        "layers": layers,
        "float_layers": float_layers(lowered, layers),
    }
    result = CompileResult(imported, lowered, report, timings=timings)
    if check:
        t0 = time.perf_counter()
        _progress("building for the host (LLVM)", quiet)
        result.executable = build_host(lowered)
        timings["build_s"] = time.perf_counter() - t0
        _progress("checking against onnxruntime", quiet)
        report["check"] = check_against_onnxruntime(result.executable, imported, seed)
    return result


def random_inputs(imported: ImportedModel, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in imported.input_shapes.items():
        dt = imported.input_dtypes[name]
        if dt.startswith("float"):
            out[name] = rng.standard_normal(shape).astype(dt)
        else:
            info = np.iinfo(dt)
            out[name] = rng.integers(info.min, info.max, shape, endpoint=True).astype(dt)
    return out


def run_host(executable, imported: ImportedModel, inputs: dict) -> list[np.ndarray]:
    vm = relax.VirtualMachine(executable, tvm.cpu())
    args = [tvm.runtime.tensor(inputs[n]) for n in imported.input_shapes]
    out = vm["main"](*args)
    outs = out if isinstance(out, (list, tuple)) or hasattr(out, "__len__") and \
        not hasattr(out, "numpy") else [out]
    return [o.numpy() for o in outs]


def run_onnxruntime(imported: ImportedModel, inputs: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(imported.onnx_model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)


def output_lsb(imported: ImportedModel) -> list[float | None]:
    """Per graph output: the scale of the DequantizeLinear producing it (an int8 model's
    output LSB), or None for a float output."""
    import onnx.numpy_helper as nh

    model = imported.onnx_model
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    out = []
    for o in model.graph.output:
        node = producers.get(o.name)
        scale = None
        if node is not None and node.op_type == "DequantizeLinear" and node.input[1] in inits:
            arr = nh.to_array(inits[node.input[1]])
            if arr.size == 1:
                scale = float(arr.reshape(()))
        out.append(scale)
    return out


INT8_WITHIN_1_LSB = 0.999  # fraction of output elements within 1 LSB of onnxruntime
INT8_MAX_LSB = 2  # and none further than this


def check_against_onnxruntime(executable, imported: ImportedModel, seed: int = 0) -> dict:
    """Float outputs: check_float.float_output_verdict (max abs error <= 1e-4 x max
    |reference|, or for a final Sigmoid/Softmax the bound propagated from its pre-activation).
    Int8 (dequantized) outputs: >= 99.9% of elements within 1 LSB of the output scale and none
    beyond 2 LSB."""
    inputs = random_inputs(imported, seed)
    got = run_host(executable, imported, inputs)
    want = run_onnxruntime(imported, inputs)
    lsbs = output_lsb(imported)
    # -- float criterion: tvm_gap8/check_float.py (saturated Sigmoid/Softmax outputs) --
    verdicts = float_output_verdicts(got, want, imported.onnx_model, inputs, FLOAT_TOLERANCE)
    max_abs, max_rel, ok = 0.0, 0.0, True
    lsb_stats = []
    for g, w, lsb, verdict in zip(got, want, lsbs, verdicts):
        if g.shape != w.shape:
            raise UnsupportedError(f"output shape {g.shape} differs from onnxruntime's {w.shape}")
        diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
        scale = float(np.max(np.abs(w))) or 1.0
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        max_rel = max(max_rel, float(diff.max(initial=0.0)) / scale)
        ok = ok and bool(np.all(np.isfinite(g)))
        if lsb is None:
            ok = ok and verdict["passed"]
        else:
            in_lsb = diff / lsb
            within = float(np.mean(in_lsb <= 1 + 1e-6))
            worst = float(in_lsb.max(initial=0.0))
            lsb_stats.append({"lsb": lsb, "within_1_lsb_fraction": within,
                              "max_lsb_err": round(worst, 6)})
            ok = ok and within >= INT8_WITHIN_1_LSB and worst <= INT8_MAX_LSB + 1e-6
    result = {"reference": "onnxruntime", "seed": seed, "max_abs_err": max_abs,
              "max_rel_err": max_rel, "passed": ok}
    if lsb_stats:
        result["criterion"] = (f">= {INT8_WITHIN_1_LSB:.1%} of elements within 1 LSB, none "
                               f"beyond {INT8_MAX_LSB} LSB")
        result["outputs"] = lsb_stats
    else:
        result["criterion"] = "; ".join(dict.fromkeys(v["criterion"] for v in verdicts if v))
        result["tolerance_rel"] = FLOAT_TOLERANCE
        result["float_outputs"] = verdicts
    return result
