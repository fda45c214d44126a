"""``tvm-gap8``: the command line (tvmc's conventions; tvmc itself left TVM in 0.20).

    tvm-gap8 compile MODEL.onnx [--input-shape NAME:D0,D1,...] [--check] [--emit-c] [-o OUT]
    tvm-gap8 quantize MODEL.onnx -o OUT.onnx [--calibration DIR]

Defaults: ``options.DEFAULTS`` (the same as ``compile_model``'s and the ``gap8`` pipeline's).

Exit status: 0 success, 1 compile error, 2 usage error. Errors are one ``error: ...`` line on
stderr (``--verbose`` adds the traceback). Artifacts are written to a temporary directory next
to OUT and renamed into place at the end, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import traceback

from . import __version__
from .compiler import compile_model
from .errors import Gap8Error, UsageError
from .frontend import parse_input_shape
from .emitc.run import PLATFORMS, emit_and_run
from .options import DEFAULTS, FUSION_POLICIES
from .passes.layouts import LAYOUT_POLICIES
from .report.plot import plot_layers
from .frontend.quantize import quantize_model
from .report.contents import format_table
from .progress import shown, step
from .target import CYCLE_MODELS, DMA_MODES, GAP8, REQUANT_MODES, Gap8Target

EXAMPLES = """examples:
  tvm-gap8 compile out/models/mobilenet_v1_025_96.onnx --check -o out/mbv1
  tvm-gap8 compile model.onnx --input-shape "input:[1,3,96,96]" --l1-kb 32
  tvm-gap8 compile model.onnx --fusion none --layout hwc --dma blocking   # the usual deployment
  tvm-gap8 quantize model.onnx -o model_int8.onnx --calibration calib_npy/
  tvm-gap8 compile model_int8.onnx --check --emit-c --run host   # integer kernels, as C
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other usage error
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tvm-gap8", description="Compile depthwise-separable CNNs for GAP8 with "
                "fused DW/PW kernels (Apache TVM Relax plugin).",
                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"tvm-gap8 {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_compile(sub)
    _add_quantize(sub)
    return p


def _add_compile(sub) -> None:
    d = DEFAULTS
    c = sub.add_parser("compile", help="compile an ONNX model (float or int8 QDQ) for GAP8",
                       description="Compile an ONNX model for GAP8: fuse DW/PW pairs, choose "
                       "layouts, tile every kernel for L1; write report.json, lowered.py and "
                       "layers.png, print the per-layer table.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("model", help="path to the .onnx model")
    c.add_argument("--target", default="gap8", choices=["gap8"],
                   help="target to compile for (default: gap8)")
    c.add_argument("--input-shape", action="append", default=[], metavar="NAME:D0,D1,...",
                   help="pin an input's shape, NAME:1,3,96,96 or tvmc's NAME:[1,3,96,96] "
                        "(repeat for several inputs)")
    c.add_argument("--no-fuse", action="store_true", help="do not fuse DW/PW pairs: the same "
                   "as --fusion none (the usual deployment is --fusion none --layout hwc "
                   "--dma blocking)")
    c.add_argument("--fusion", choices=FUSION_POLICIES, default=d.fusion,
                   help="auto (default): the planner fuses or splits each pair the rules allow "
                        "by the cycle model; all: fuse every one; none; profitable: fuse those "
                        "faster than their two kernels, each judged alone; chains: auto, plus "
                        "whole PW->DW->PW[->Add] blocks as one kernel where modelled faster; "
                        "all-chains: all, plus every such chain that fits")
    c.add_argument("--layout", choices=LAYOUT_POLICIES, default=d.layout,
                   help="L2 tensor layouts: auto (default: the planner chooses each tensor's "
                        "and each kernel's tile layouts), chw (all CHW), hwc (all HWC, DW inputs "
                        "transposed to CHW by the DMA, as DORY does)")
    c.add_argument("--dma", choices=DMA_MODES, default=d.dma,
                   help="double (default): double-buffered copies overlapping compute; "
                        "blocking: every copy waited for, single-buffered tiles (DORY on GAP8)")
    c.add_argument("--cycle-model", choices=CYCLE_MODELS, default=d.cycle_model,
                   help="price plans by the model fitted to GVSOC measurements of the emitted "
                        "kernels (default; benchmarks/model_vs_measured.py) or by the "
                        "analytical per-family formulas (tvm_gap8/cost/cycles.py)")
    c.add_argument("--requant", choices=REQUANT_MODES, default=d.requant,
                   help="int8 requantization: fixed (default: a 31-bit multiplier and a "
                        "rounding shift, round half up) or float32 (onnxruntime's float32 "
                        "arithmetic emulated in integers, bit for bit, ~4x the instructions)")
    _add_compile_outputs(c)


def _add_compile_outputs(c) -> None:
    """``compile``'s options on what to check, write and run."""
    c.add_argument("--check", action="store_true",
                   help="build for the host (LLVM) and compare on a seeded random input: float "
                        "models with onnxruntime, int8 models bit for bit with the integer "
                        "reference (onnxruntime's agreement reported for information)")
    c.add_argument("--seed", type=int, default=0, help="seed of the check's input (default 0)")
    c.add_argument("-o", "--output", default=None,
                   help="output directory (default: ./<model name>.gap8)")
    c.add_argument("--emit-c", action="store_true",
                   help="also write OUT/gap8/, the whole network as a C99 project (network.c, "
                        "kernels.c, weights.c, runtime/; no TVM runtime, no malloc)")
    c.add_argument("--run", choices=PLATFORMS, default=None,
                   help="with --emit-c: build OUT/gap8 on the host (cc), for rv32imc (QEMU) or "
                        "for GVSOC's pulp-open cluster (cycles measured per layer), run it, "
                        "compare with the LLVM build and the reference (report.json run, "
                        "measured)")
    c.add_argument("--instrument", action="store_true",
                   help="with --emit-c --run: count DMA bytes/transfers, MACs, tiles and "
                        "instructions per layer (report.json measured)")
    c.add_argument("--l1-kb", type=float, default=DEFAULTS.l1_kb,
                   help="L1 size in kB (1 kB = 1000 B; default GAP8's 64); more than L2, or "
                        "too small for a layer, is refused, naming the smallest that works")
    c.add_argument("--hw", default=None, metavar="JSON",
                   help="JSON file overriding fields of the GAP8 description (target.py)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress, no table")
    c.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")


def _add_quantize(sub) -> None:
    q = sub.add_parser("quantize", help="quantize a float ONNX model to int8 (QDQ)",
                       description="Quantize a float ONNX model to int8 QDQ with onnxruntime's "
                       "static quantization (BatchNorm folded first; int8 activations and "
                       "symmetric per-channel int8 weights). A quantized model is refused.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("model", help="path to the float .onnx model")
    q.add_argument("-o", "--output", required=True, help="path of the int8 .onnx model to write")
    q.add_argument("--input-shape", action="append", default=[], metavar="NAME:D0,D1,...",
                   help="pin an input's shape, NAME:1,3,96,96 or NAME:[1,3,96,96]")
    src = q.add_mutually_exclusive_group()
    src.add_argument("--calibration", metavar="DIR",
                     help="directory of .npy (one sample each) or .npz (one array per input)")
    src.add_argument("--calibration-samples", type=int, default=16, metavar="N",
                     help="seeded random samples when no --calibration (default 16)")
    q.add_argument("--activation-type", choices=["int8", "uint8"], default="int8",
                   help="element type of the quantized activations (default int8)")
    q.add_argument("--per-tensor", action="store_true",
                   help="one weight scale per tensor instead of per output channel")
    q.add_argument("--seed", type=int, default=0, help="seed of the random samples")
    q.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")


def _hardware(args) -> Gap8Target:
    hw = Gap8Target.from_json(args.hw) if args.hw else GAP8
    return hw.replace(cycle_model=args.cycle_model) if args.cycle_model else hw


def _output_dir(args) -> str:
    if args.output:
        return args.output
    stem = os.path.splitext(os.path.basename(args.model))[0] or "model"
    return f"{stem}.gap8"


def _prepare_output(out: str) -> str:
    """A fresh temporary directory beside ``out`` (same file system, so rename is atomic)."""

    parent = os.path.dirname(os.path.abspath(out)) or "."
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"-o {out}: exists and is not a directory")
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"-o {out}: cannot create {parent} ({exc.strerror})") from None
    try:
        return tempfile.mkdtemp(prefix=".tvm-gap8-", dir=parent)
    except OSError as exc:
        raise UsageError(f"-o {out}: cannot write in {parent} ({exc.strerror})") from None


def cmd_compile(args) -> int:

    shapes = dict(parse_input_shape(s) for s in args.input_shape)
    hw = _hardware(args)
    out = _output_dir(args)
    tmp = _prepare_output(out)
    try:
        if (args.run or args.instrument) and not args.emit_c:
            raise UsageError("--run and --instrument need --emit-c")
        with shown(not args.quiet):
            result = compile_model(args.model, shapes, hw=hw, check=args.check, seed=args.seed,
                                   fusion="none" if args.no_fuse else args.fusion,
                                   layout=args.layout, dma=args.dma, baseline=True,
                                   requant=args.requant, l1_kb=args.l1_kb)
            if args.emit_c:
                emit_and_run(result, tmp, args.run, args.instrument, args.seed)
            with step("writing report.json, lowered.py and layers.png"):
                write_artifacts(result, tmp)
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    if not args.quiet:
        print(format_table(result.report))
        print(f"wrote {os.path.join(out, 'report.json')}, {os.path.join(out, 'lowered.py')} and "
              f"{os.path.join(out, 'layers.png')}")
    check = result.report.get("check")
    run = result.report.get("run")
    if run is not None and not args.quiet:
        print(f"--run {run['platform']}: {_run_line(run)}")
    failed = check is not None and not check["passed"] or \
        run is not None and not (run["check"]["passed"] and _run_equal(run))
    return 1 if failed else 0


def _run_equal(run) -> bool:
    """Every output equal to the LLVM build's (int8 outputs as integers, float ones exactly)."""
    vs = run["vs_llvm"]
    keys = [k for k in ("integers_equal", "equal") if k in vs]
    return bool(keys) and all(vs[k] for k in keys)


def _run_line(run) -> str:
    same = "equal to the LLVM build" if _run_equal(run) else "DIFFERS from the LLVM build"
    verdict = "PASSED" if run["check"]["passed"] else "FAILED"
    line = f"{same}; reference check {verdict}; {run['seconds']} s"
    if run.get("measured_cycles") is not None:
        line += (f"\n  measured on {run['source']}: {run['measured_cycles']:,} cluster cycles "
                 f"(modelled {run['modelled_cycles']:,}; {run['note']})")
    return line


def cmd_quantize(args) -> int:

    shapes = dict(parse_input_shape(s) for s in args.input_shape)
    parent = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UsageError(f"-o {args.output}: cannot write in {parent}")
    fd, tmp = tempfile.mkstemp(prefix=".tvm-gap8-", suffix=".onnx", dir=parent)
    os.close(fd)
    try:
        summary = quantize_model(args.model, tmp, shapes, args.calibration,
                                 args.calibration_samples, args.seed, not args.per_tensor,
                                 activation_type=args.activation_type)
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {args.output} (QDQ, {args.activation_type} activations, int8 "
          f"{'per-tensor' if args.per_tensor else 'per-channel'} weights, calibrated on "
          f"{summary['calibration']})")
    return 0


def write_artifacts(result, directory: str) -> None:
    """report.json, lowered.py and layers.png (the C project, ``--emit-c``, is emitc's)."""
    with open(os.path.join(directory, "report.json"), "w", encoding="utf-8") as f:
        json.dump(result.report, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(directory, "lowered.py"), "w", encoding="utf-8") as f:
        f.write(result.lowered.script())

    plot_layers(result.report, os.path.join(directory, "layers.png"))


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2

    try:
        return cmd_quantize(args) if args.command == "quantize" else cmd_compile(args)
    except Gap8Error as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: still one line unless --verbose
        if args.verbose:
            traceback.print_exc()
        first = str(exc).strip().splitlines()
        print(f"error: internal error: {type(exc).__name__}: {first[-1] if first else ''} "
              "(re-run with --verbose and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
