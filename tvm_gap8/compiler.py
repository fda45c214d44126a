"""The whole flow as one call: ONNX -> Relax -> gap8 passes -> (host build + check) -> report."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version

import tvm

from .check import check_outputs, random_inputs
from .check.host import build_host, run_host  # noqa: F401  (part of this module's API)
from .errors import Gap8Error, UnsupportedError
from .frontend.onnx_import import ImportedModel, import_onnx
from .pipeline import gap8_passes
from .passes.compilation import Compilation
from .ir.placement import Placement
from .report.contents import float_layers, fusion_of, layers_of, totals_of
from .target import GAP8, Gap8Target, tvm_target


@dataclass
class CompileResult:
    imported: ImportedModel
    lowered: tvm.IRModule  # after our passes, before TVM's build passes
    report: dict
    executable: object = None
    timings: dict = field(default_factory=dict)
    requant: str = "fixed"  # the requantization mode the kernels were built with
    # the target the kernels were compiled for (DMA mode and requantization applied): the C
    # emitter reads it from here, so it sees the very target the tiles were planned on
    hw: Gap8Target = GAP8
    # where every weight and activation lives (passes/place.py): the C emitter places by it
    placement: Placement | None = None


def versions() -> dict:
    """The versions of what a compile depends on (report.json's ``versions``)."""

    pkgs = {"tvm": "apache-tvm", "onnx": "onnx", "onnxruntime": "onnxruntime", "numpy": "numpy"}
    return {key: version(dist) for key, dist in pkgs.items()}


def _progress(msg: str, quiet: bool):
    if not quiet:
        print(f"[tvm-gap8] {msg}", file=sys.stderr, flush=True)


def lower(mod: tvm.IRModule, hw: Gap8Target = GAP8, fuse: bool = True,
          policy: str = "all", layout: str = "chw",
          compilation: Compilation | None = None) -> tvm.IRModule:
    """Apply our passes (under the GAP8 target, so passes can dispatch on its keys);
    ``compilation`` receives what they decided (the layout plan)."""
    with tvm_target(host=True):
        return tvm.transform.Sequential(gap8_passes(hw, fuse, policy, layout, compilation))(mod)


def with_dma(hw: Gap8Target, dma: str) -> Gap8Target:
    """The target under DMA mode ``dma``: ``blocking`` (DORY on GAP8: every copy waited for,
    single-buffered L1 tiles) or ``double`` (ours: double-buffered, copies overlap compute)."""
    if dma == "blocking":
        return hw.replace(dma_mode="blocking", double_buffering=False)
    return hw.replace(dma_mode="double")


#: The usual deployment (DORY + PULP-NN): no fusion, HWC tensors, DW inputs transposed by a
#: blocking DMA: what every report's ``baseline`` is.
BASELINE = {"fusion": "none", "layout": "hwc", "dma": "blocking"}


def baseline_totals(mod: tvm.IRModule, hw: Gap8Target) -> dict:
    """The totals of the usual deployment (``BASELINE``) of an imported module, compiled by
    the same passes and costed by the same model."""
    lowered = lower(mod, with_dma(hw, BASELINE["dma"]), False, "all", BASELINE["layout"])
    return {**BASELINE, "totals": totals_of(layers_of(lowered))}


def cycle_model_of(hw: Gap8Target) -> dict:
    """Which model priced the plans (report.json ``cycle_model``)."""
    from .cost import calibrated
    cal = calibrated.SHIPPED
    if hw.cycle_model == "gvsoc" and cal is not None:
        return {"kind": "gvsoc", "source": cal.source, "fitted_on": list(cal.fitted_on)}
    return {"kind": "analytical", "source": "tvm_gap8/cost/cycles.py (cited constants)"}


def compile_model(model, input_shapes=None, hw: Gap8Target = GAP8, fuse: bool = True,
                  check: bool = False, seed: int = 0, quiet: bool = True,
                  fusion: str = "all", layout: str = "chw", dma: str = "double",
                  baseline: bool = False, requant: str = "fixed") -> CompileResult:
    """``fusion``: auto (the planner decides) | all | profitable | chains (auto with PW->DW->PW
    chains where modelled faster) | all-chains (all with every chain that fits) | none;
    ``layout``: auto |
    chw | hwc (the planner's layout policy); ``dma``: double | blocking; ``baseline``: also
    cost the usual deployment (report.json's ``baseline``); ``requant``: fixed | float32, how
    the integer kernels requantize (``kernels/requant.py``; the check's integer reference
    computes the same). The library defaults keep every kernel in its default layouts with
    every allowed pair fused; the CLI's are auto/auto."""
    fuse = fuse and fusion != "none"
    hw = with_dma(hw, dma).replace(requant=requant)
    timings = {}
    t0 = time.perf_counter()
    _progress("importing ONNX model", quiet)
    imported = import_onnx(model, input_shapes)
    timings["import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    compilation = Compilation()
    _progress("fusing and lowering for GAP8" if fuse else "lowering for GAP8 (no fusion)", quiet)
    lowered = _lower_or_say_why(imported.mod, hw, fuse, fusion, layout, compilation)
    timings["lower_s"] = time.perf_counter() - t0
    _progress("reading tiles and traffic off the lowered IR", quiet)
    layers = layers_of(lowered)
    report = {
        "model": imported.onnx_model.graph.name,
        "versions": versions(),
        "target": hw.to_dict(),
        "inputs": {k: list(v) for k, v in imported.input_shapes.items()},
        "fuse": fuse,
        "fusion_policy": fusion if fuse else "none",
        "layout_policy": layout,
        "dma": dma,
        "requant": requant,
        "cycle_model": cycle_model_of(hw),
        "fusion": fusion_of(lowered, layers, compilation.layout_plan),
        "layers": layers,
        "float_layers": float_layers(lowered, layers),
        "totals": totals_of(layers),
    }
    if compilation.layout_plan is not None:
        report["layout_plan"] = compilation.layout_plan.describe()
    if compilation.placement is not None:  # where every weight and activation lives
        report["placement"] = compilation.placement.describe()
    if baseline:
        _progress("costing the usual deployment (baseline)", quiet)
        t0 = time.perf_counter()
        report["baseline"] = baseline_totals(imported.mod, hw)
        timings["baseline_s"] = time.perf_counter() - t0
    result = CompileResult(imported, lowered, report, timings=timings, requant=requant, hw=hw,
                           placement=compilation.placement)
    if check:
        _check(result, seed, quiet)
    return result


def _lower_or_say_why(mod, hw, fuse, fusion, layout, compilation) -> tvm.IRModule:
    """``lower``; a TVM failure (our bug or an unsupported case) as one UnsupportedError."""
    try:
        return lower(mod, hw, fuse, fusion, layout, compilation)
    except Gap8Error:
        raise
    except Exception as exc:  # a TVM failure is our bug or an unsupported case: say where
        msg = str(exc).strip().splitlines()
        raise UnsupportedError(f"lowering failed: {type(exc).__name__}: "
                               f"{msg[-1] if msg else ''}") from exc


def _check(result: CompileResult, seed: int, quiet: bool) -> None:
    """``--check``: the host (LLVM) build against the references (report.json ``check``)."""
    t0 = time.perf_counter()
    _progress("building for the host (LLVM)", quiet)
    result.executable = build_host(result.lowered)
    result.timings["build_s"] = time.perf_counter() - t0
    _progress("checking against the references", quiet)
    inputs = random_inputs(result.imported, seed)
    got = run_host(result.executable, result.imported, inputs)
    result.report["check"] = check_outputs(got, result.imported, inputs, seed, result.requant)
