"""The whole flow as one call: ONNX -> Relax -> gap8 passes -> (host build + check) -> report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib.metadata import version

import tvm

from . import __version__
from .check import check_outputs, random_inputs
from .errors import Gap8Error, TilingError, UnsupportedError
from .check.host import build_host, run_host  # noqa: F401  (part of this module's API)
from .frontend import ImportedModel, import_onnx
from .options import BASELINE, DEFAULTS, CompileOptions, with_dma  # noqa: F401
from .pipeline import gap8_passes
from .passes.compilation import Compilation
from .ir.placement import Placement
from .progress import SlowPasses, shown, step
from .report.contents import SCHEMA_VERSION, float_layers, fusion_of, layers_of, totals_of
from .target import GAP8, Gap8Target, tvm_target
from .ir.vocab import L1_TO_L2_ACT, L2_TO_L1_ACT, L2_TO_L1_WGT


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
    return {"tvm_gap8": __version__, **{key: version(dist) for key, dist in pkgs.items()}}


def lower(mod: tvm.IRModule, hw: Gap8Target = GAP8, fusion: str = DEFAULTS.fusion,
          layout: str = DEFAULTS.layout, compilation: Compilation | None = None) -> tvm.IRModule:
    """Apply our passes (under the GAP8 target, so passes can dispatch on its keys);
    ``compilation`` receives what they decided (the layout plan, the placement)."""
    with tvm_target(host=True):
        return tvm.transform.Sequential(gap8_passes(hw, fusion, layout, compilation))(mod)


def baseline_totals(mod: tvm.IRModule, hw: Gap8Target) -> dict:
    """The totals of the usual deployment (``BASELINE``) of an imported module, compiled by
    the same passes and costed by the same model."""
    lowered = lower(mod, with_dma(hw, BASELINE["dma"]), BASELINE["fusion"], BASELINE["layout"])
    layers = layers_of(lowered)
    return {**BASELINE, "totals": totals_of(layers),
            "layers": [{"name": layer["name"], "onnx_nodes": layer["onnx_nodes"],
                        "cycles_modelled": layer["plan"]["cycles"],
                        "act_bytes": layer["traffic"][L2_TO_L1_ACT] + layer["traffic"][L1_TO_L2_ACT],
                        "weight_bytes": layer["traffic"][L2_TO_L1_WGT]}
                       for layer in layers if layer["tiled"]]}


def cycle_model_of(hw: Gap8Target) -> dict:
    """Which model priced the plans (report.json ``cycle_model``)."""
    from .cost import calibrated
    cal = calibrated.SHIPPED
    if hw.cycle_model == "gvsoc" and cal is not None:
        return {"kind": "gvsoc", "source": cal.source, "fitted_on": list(cal.fitted_on)}
    return {"kind": "analytical", "source": "tvm_gap8/cost/cycles.py (cited constants)"}


def compile_model(model, input_shapes=None, hw: Gap8Target = GAP8, fuse: bool = True,
                  check: bool = False, seed: int = 0, quiet: bool = True,
                  fusion: str = DEFAULTS.fusion, layout: str = DEFAULTS.layout,
                  dma: str = DEFAULTS.dma, baseline: bool = False,
                  requant: str = DEFAULTS.requant, l1_kb: float | None = None) -> CompileResult:
    """ONNX model (path or ModelProto) -> lowered module, report (and host build with
    ``check``). The knobs are ``CompileOptions``' fields with its defaults, the CLI's:
    ``fusion`` auto | all | profitable | none (``fuse=False`` = none); ``layout`` auto | chw |
    hwc; ``dma`` double | blocking; ``requant`` fixed | float32 (``kernels/requant.py``; the
    check's integer reference computes the same); ``l1_kb`` L1 size (default ``hw``'s).
    ``baseline``: also cost the usual deployment (report.json's ``baseline``). ``quiet=False``
    prints the progress on stderr."""
    options = CompileOptions(fusion=fusion if fuse else "none", layout=layout, dma=dma,
                             requant=requant, l1_kb=l1_kb)
    hw = options.target(hw)
    with shown(not quiet):
        return _compile(model, input_shapes, hw, options, check, seed, baseline)


def _compile(model, input_shapes, hw: Gap8Target, options: CompileOptions, check: bool,
             seed: int, baseline: bool) -> CompileResult:
    timings = {}
    t0 = time.perf_counter()
    with step("importing the ONNX model"):
        imported = import_onnx(model, input_shapes)
    timings["import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    compilation = Compilation()
    with step(f"fusing (--fusion {options.fusion}), planning (--layout {options.layout}) and "
              "lowering for GAP8"):
        lowered = _lower_or_explain(imported.mod, hw, options, compilation)
    timings["lower_s"] = time.perf_counter() - t0
    report = _report(imported, lowered, hw, options, compilation)
    if baseline:
        t0 = time.perf_counter()
        with step("costing the usual deployment (baseline)"):
            report["baseline"] = baseline_totals(imported.mod, hw)
        timings["baseline_s"] = time.perf_counter() - t0
    result = CompileResult(imported, lowered, report, timings=timings, requant=options.requant,
                           hw=hw, placement=compilation.placement)
    if check:
        t0 = time.perf_counter()
        with step("building for the host (LLVM)"):
            result.executable = build_host(lowered)
        timings["build_s"] = time.perf_counter() - t0
        with step("checking against the references"):
            inputs = random_inputs(imported, seed)
            got = run_host(result.executable, imported, inputs)
            report["check"] = check_outputs(got, imported, inputs, seed, options.requant)
    return result


def _lower_or_explain(mod: tvm.IRModule, hw: Gap8Target, options: CompileOptions,
                      compilation: Compilation):
    try:
        with tvm.transform.PassContext(instruments=[SlowPasses()]):
            return lower(mod, hw, options.fusion, options.layout, compilation)
    except TilingError as err:
        if err.needed_budget is None:
            raise
        smallest = smallest_l1(mod, hw, options, err.needed_budget)
        hint = f"; the smallest L1 that compiles this model is {smallest / 1000:g} kB " \
               f"(--l1-kb {smallest / 1000:g})" if smallest else ""
        raise TilingError(f"{err}{hint}") from None
    except Gap8Error:
        raise
    except Exception as exc:  # a TVM failure is our bug or an unsupported case: say where
        msg = str(exc).strip().splitlines()
        raise UnsupportedError(f"lowering failed: {type(exc).__name__}: "
                               f"{msg[-1] if msg else ''}") from exc


def smallest_l1(mod: tvm.IRModule, hw: Gap8Target, options: CompileOptions,
                budget: int, tries: int = 8) -> int | None:
    """The smallest L1 (bytes) under which ``mod`` lowers, from the L1 budget the first layer
    that did not fit needs: raised to each next failing layer's need until every layer fits
    (None after ``tries`` lowerings, or past L2)."""
    for _ in range(tries):
        trial = hw.with_l1_budget(budget)
        if trial.l1_bytes > hw.l2_bytes:
            return None
        with step(f"  trying L1 = {trial.l1_bytes} B", announce=False):
            try:
                lower(mod, trial, options.fusion, options.layout)
                return trial.l1_bytes
            except TilingError as err:
                need = err.needed_budget
                if need is None or need <= budget:
                    return None
                budget = need
    return None


def _report(imported: ImportedModel, lowered: tvm.IRModule, hw: Gap8Target,
            options: CompileOptions, compilation: Compilation) -> dict:
    """report.json before the check, the baseline and the C (``report_schema.json``)."""
    layers = layers_of(lowered)
    report = {
        "schema_version": SCHEMA_VERSION,
        "model": imported.onnx_model.graph.name,
        "versions": versions(),
        "target": hw.to_dict(),
        "inputs": {k: list(v) for k, v in imported.input_shapes.items()},
        "fuse": options.fuse,
        "fusion_policy": options.fusion,
        "layout_policy": options.layout,
        "dma": options.dma,
        "requant": options.requant,
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
    return report


