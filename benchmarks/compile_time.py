"""Compile time per phase, with the CLI's defaults (--fusion auto --layout auto), float and
int8, for the example networks, a generated FPN decoder and the PP-LCNetV3-like recognizer.

    python benchmarks/compile_time.py [--quick] [--only NAME] [--limit-s 120]

Phases (wall seconds, this machine): ``import`` (ONNX -> Relax, onnxruntime's folding),
``fusion`` (pattern formation: the fused pairs' candidate and tile search, then the other
families), ``planning`` (the layout planner: PlanLayouts), ``lowering`` (the kernels' TIR and
the clean-up passes), ``build`` (TVM's build passes + LLVM codegen of the lowered module).
Each pass runs on its own so its time is its own. ``cpu`` is the process's CPU seconds for
the whole compile: on a shared machine the wall times grow with the load, the CPU time does
not. Exits 1 naming every network whose CPU time is over ``--limit-s`` (default: 120 s, the
issue's bound).
"""

from __future__ import annotations

import argparse
import sys
import time

import tvm

from tvm_gap8.compiler import build_host
from tvm_gap8.frontend import import_onnx
from tvm_gap8.passes.compilation import Compilation
from tvm_gap8.passes.layouts import PlanLayouts
from tvm_gap8.passes.lower import LowerFusedKernels
from tvm_gap8.pipeline import gap8_passes
from tvm_gap8.target import GAP8, tvm_target
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

NETWORKS = {  # name -> builder (examples/build_models.py's, then the generated ones)
    "mobilenet_v1_025_96": lambda: M.mobilenet_v1(alpha=0.25, resolution=96),
    "mobilenet_v2_035_96": lambda: M.mobilenet_v2(alpha=0.35, resolution=96),
    "mbv3_se_block": lambda: M.squeeze_excite_block(),
    "fpn_decoder_96": lambda: M.fpn_decoder(resolution=96),
    "text_detector_96": lambda: M.text_detector(96),
    "keras_mobilenet_nhwc_96": lambda: M.keras_mobilenet_nhwc(resolution=96),
    "text_recognizer_48x320": lambda: M.text_recognizer(48, 320),
}
QUICK = ("mobilenet_v1_025_96", "fpn_decoder_96")


def compile_phases(model) -> dict:
    """phase -> seconds of one compile with the CLI's defaults."""
    times = {"import": 0.0, "fusion": 0.0, "planning": 0.0, "lowering": 0.0, "build": 0.0}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    mod = import_onnx(model).mod
    times["import"] = time.perf_counter() - t0
    phase = "fusion"  # the passes before the planner; after it (or without it): lowering
    with tvm_target(host=True):
        for p in gap8_passes(GAP8, True, "auto", "auto", Compilation()):
            if isinstance(p, PlanLayouts):
                phase = "planning"
            elif isinstance(p, LowerFusedKernels) or phase == "planning":
                phase = "lowering"
            t0 = time.perf_counter()
            mod = p(mod)
            times[phase] += time.perf_counter() - t0
    t0 = time.perf_counter()
    build_host(mod)
    times["build"] = time.perf_counter() - t0
    times["cpu"] = time.process_time() - cpu0
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--only", choices=sorted(NETWORKS))
    ap.add_argument("--limit-s", type=float, default=120.0)
    args = ap.parse_args(argv)
    names = [args.only] if args.only else QUICK if args.quick else list(NETWORKS)
    print(f"{'network':28} {'type':5} {'import':>7} {'fusion':>7} {'planning':>8} "
          f"{'lowering':>8} {'build':>7} {'total':>7} {'cpu':>7}  (s; phases wall, TVM "
          f"{tvm.__version__})")
    over = []
    for name in names:
        for int8 in (False, True):
            model = NETWORKS[name]()
            model = quantized(model, samples=2) if int8 else model
            t = compile_phases(model)
            total = sum(v for k, v in t.items() if k != "cpu")
            kind = "int8" if int8 else "float"
            print(f"{name:28} {kind:5} {t['import']:7.1f} {t['fusion']:7.1f} "
                  f"{t['planning']:8.1f} {t['lowering']:8.1f} {t['build']:7.1f} {total:7.1f} "
                  f"{t['cpu']:7.1f}",
                  flush=True)
            if t["cpu"] > args.limit_s:
                over.append(f"{name} {kind}: {t['cpu']:.0f} CPU s")
    if over:
        print(f"over {args.limit_s:.0f} s: {'; '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
