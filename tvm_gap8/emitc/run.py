"""``--emit-c [--run host|rv32] [--instrument]``: write OUT/gap8, build it, run one inference,
compare with the host LLVM build of the same lowered IR and with the reference (as --check),
and put the result in report.json (``run``, ``measured``, ``emit_c``)."""

from __future__ import annotations

import os
import sys

import numpy as np
import tvm
from tvm import relax

from ..check import check_outputs, random_inputs
from ..check.host import build_host, run_host
from ..errors import UsageError
from ..progress import step
from ..ir.vocab import (DMA_TRANSFERS, L1_TO_L2_ACT, L2_TO_L1_ACT, L2_TO_L1_WGT, L2_TO_L3,
                        L3_TO_L2)
from . import build, gvsoc
from .network import read_network
from .project import libm_calls, write_project

PLATFORMS = ("host", "rv32", "gvsoc")


def _quantize_input(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """The model's own input quantization, run by TVM (LLVM) so the int8 input is TVM's."""
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType(x.shape, str(x.dtype)))
    with bb.function("main", [xv]):
        q = bb.emit(relax.op.quantize(xv, relax.const(scale, "float32"), relax.const(zp, "int8"),
                                      axis=1, out_dtype="int8"))
        bb.emit_func_output(q)
    exe = tvm.compile(bb.get(), target="llvm")
    vm = relax.VirtualMachine(exe, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def _dequantize(q: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return ((q.astype(np.float32) - np.float32(zp)) * np.float32(scale)).astype(np.float32)


def _llvm_outputs(result, inputs):
    if result.executable is None:
        result.executable = build_host(result.lowered)
    return run_host(result.executable, result.imported, inputs)


def _static_layers(report, net):
    """The report's per-layer static counts, in the order of the emitted gap8 layers."""
    tiled = [layer for layer in report["layers"] if layer.get("tiled")]
    emitted = [layer for layer in net.layers if layer.gap8]
    return {e.index: t for e, t in zip(emitted, tiled)}


def _expected_l3(layer, report_layer) -> tuple[int, int]:
    """Bytes the C layer moves (L3 -> L2, L2 -> L3), read off the IR's counts where the C put
    its tensors: the weight bytes reaching L1 when its weights are in L3, the input bytes when
    its inputs are, the output bytes when its output is (the report's l3_to_l2 and l2_to_l3
    when the report placed them there too)."""
    t = report_layer["traffic"]
    read = (t[L2_TO_L1_WGT] if layer.weights_in == "L3" else 0) + \
        (t[L2_TO_L1_ACT] if layer.inputs_in == "L3" else 0)
    return read, t[L1_TO_L2_ACT] if layer.output_in == "L3" else 0


def measured(counters, net, report) -> dict:
    static = _static_layers(report, net)
    rows = []
    for layer, c in zip(net.layers, counters):
        st = static.get(layer.index)
        row = {"name": layer.name, "kernel": layer.kernel, "kind": layer.kind,
               "weights_in": layer.weights_in, "inputs_in": layer.inputs_in,
               "output_in": layer.output_in, **c}
        if st is not None:
            traffic = st["traffic"]
            l3_read, l3_write = _expected_l3(layer, st)
            row["static"] = {"l2_to_l1_bytes": traffic[L2_TO_L1_ACT] + traffic[L2_TO_L1_WGT],
                             "l1_to_l2_bytes": traffic[L1_TO_L2_ACT],
                             "l2_l1_transfers": traffic[DMA_TRANSFERS],
                             "l3_to_l2_bytes": l3_read, "l2_to_l3_bytes": l3_write,
                             "report_l3_to_l2": traffic[L3_TO_L2],
                             "report_l2_to_l3": traffic[L2_TO_L3], "macs": st["macs"]}
            got = {"l2_to_l1_bytes": c["l2_to_l1_bytes"], "l1_to_l2_bytes": c["l1_to_l2_bytes"],
                   "l2_l1_transfers": c["l2_to_l1_transfers"] + c["l1_to_l2_transfers"],
                   "l3_to_l2_bytes": c["l3_to_l2_bytes"], "l2_to_l3_bytes": c["l2_to_l3_bytes"],
                   "macs": c["macs"]}
            row["equal_to_static"] = all(got[k] == row["static"][k] for k in got)
        rows.append(row)
    keys = [k for k in build.COUNTER_FIELDS]
    totals = {k: sum(r[k] for r in rows) for k in keys}
    checked = [r for r in rows if "equal_to_static" in r]
    return {"layers": rows, "totals": totals,
            "all_equal_to_static": bool(checked) and all(r["equal_to_static"] for r in checked)}


def measured_gvsoc(ran: "gvsoc.GvsocRun", net, report) -> dict:
    """report.json ``measured`` of a GVSOC run: per layer the cluster timer's cycles (wall, fork
    and join included), the master core's DMA wait cycles, per-core active cycles and
    instructions (PCCR), the DMA bytes and commands, beside the modelled cycles."""
    static = _static_layers(report, net)
    rows = []
    for layer, c in zip(net.layers, ran.layers):
        st = static.get(layer.index)
        rows.append({"name": layer.name, "kernel": layer.kernel, "kind": layer.kind,
                     "weights_in": layer.weights_in, "macs": st["macs"] if st else 0,
                     "modelled_cycles": st["plan"]["cycles"] if st else None,
                     **{k: v for k, v in c.items() if k != "macs"}})
    keys = ("cycles", "dma_wait_cycles", "l2_to_l1_bytes", "l1_to_l2_bytes", "l3_to_l2_bytes",
            "l2_to_l3_bytes", "macs")
    totals = {k: sum(r[k] for r in rows) for k in keys}
    totals["network_cycles"] = ran.cycles
    totals["modelled_cycles"] = sum(r["modelled_cycles"] or 0 for r in rows)
    return {"source": gvsoc.SOURCE, "note": gvsoc.PLATFORM_NOTE,
            "l3_stand_in": bool(net.l3_bytes or net.l3_act_bytes), "layers": rows, "totals": totals}


def _compare(ours: np.ndarray, llvm: np.ndarray, quant) -> dict:
    """One output: ours (int8 before the caller's dequantize when ``quant.scale``) against the
    LLVM build's float output (requantized with that output's own scale and zero point)."""
    if quant.scale is not None:
        llvm_q = np.rint(llvm.astype(np.float64) / quant.scale).astype(np.int64) + quant.zp
        return {"integers_equal": bool(np.array_equal(llvm_q, ours.astype(np.int64))),
                "max_abs_diff": int(np.abs(llvm_q - ours.astype(np.int64)).max(initial=0))}
    diff = float(np.abs(llvm.astype(np.float64) - ours.astype(np.float64)).max(initial=0))
    return {"max_abs_diff": diff, "equal": diff == 0.0}


def _compare_all(per_output: list) -> dict:
    """``vs_llvm`` of the whole run: the per-output comparisons folded (integers_equal when
    every output is an int8 one, equal when every one is float, both when mixed)."""
    if len(per_output) == 1:
        return dict(per_output[0])
    ints = [c for c in per_output if "integers_equal" in c]
    floats = [c for c in per_output if "equal" in c]
    out = {}
    if ints:
        out["integers_equal"] = all(c["integers_equal"] for c in ints)
    if floats:
        out["equal"] = all(c["equal"] for c in floats)
    diffs = [c["max_abs_diff"] for c in per_output]
    out["max_abs_diff"] = max(diffs) if ints and not floats else float(max(diffs))
    return out


def float_layers(net) -> list[str]:
    """The emitted layers that compute in floating point (any float operand): on GAP8's cluster,
    which has no FPU, they run in software floating point."""
    return [layer.name for layer in net.layers
            if any(ctype in ("float", "double") for _, ctype in net.kernels[layer.kernel].params)]


def emit_and_run(result, out_dir: str, platform: str | None = None,
                 instrument: bool = False, seed: int = 0, timeout: int = 600) -> dict:
    """Writes ``out_dir/gap8`` for the target ``result`` was compiled for (``result.hw``); with
    ``platform`` builds, runs and checks it (every input and output, in the entry's order).
    Updates and returns ``result.report``."""
    if platform is not None and platform not in PLATFORMS:
        raise UsageError(f"--run {platform}: choose one of {', '.join(PLATFORMS)}")
    out_dir = os.path.abspath(out_dir)  # the builds run inside the project
    hw = result.hw
    with step("emitting the C project"):
        net = read_network(result.lowered, hw, instrument=True, placement=result.placement)
        project = os.path.join(out_dir, "gap8")
        files = write_project(net, hw, project)
    report = result.report
    report["emit_c"] = _emit_record(net, files)
    _warn_float(report["emit_c"]["float_layers"])
    if platform is None:
        return report
    inputs = random_inputs(result.imported, seed)
    if len(inputs) != len(net.inputs):
        raise UsageError(f"--run: the model has {len(inputs)} inputs, the C entry "
                         f"{len(net.inputs)}")
    ran = _build_and_run(net, project, inputs, platform, instrument, timeout)
    run = report["run"] = _run_record(result, net, inputs, ran, platform, seed)
    if platform == "gvsoc":
        report["measured"] = measured_gvsoc(ran["sim"], net, report)
        totals = report["measured"]["totals"]
        run.update(source=gvsoc.SOURCE, note=gvsoc.PLATFORM_NOTE,
                   measured_cycles=totals["network_cycles"],
                   modelled_cycles=report["totals"]["cycles_modelled"])
    if ran["counters"] is not None:
        report["measured"] = measured(ran["counters"], net, report)
    return report


def _emit_record(net, files) -> dict:
    """report.json ``emit_c``: the project's files, arenas, weights and kernel statistics."""
    return {"dir": "gap8", "files": files, "l2_arena_bytes": net.l2_arena,
            "l1_arena_bytes": net.l1_arena, "l2_weight_bytes": net.l2_weights,
            "l3_weight_bytes": net.l3_bytes, "l3_stage_bytes": net.l3_stage_bytes,
            "l3_activation_bytes": net.l3_act_bytes, "layers": len(net.layers),
            "inputs": len(net.inputs), "outputs": len(net.outputs),
            "libm_calls": libm_calls(net), "float_layers": float_layers(net),
            **net.stats}


def _warn_float(names: list) -> None:
    if names:
        print(f"warning: GAP8's cluster has no FPU: {len(names)} "
              f"float layer(s) run in software floating point "
              f"({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})",
              file=sys.stderr)


def _build_and_run(net, project, inputs, platform, instrument, timeout) -> dict:
    """Build the project for ``platform``, run it on ``inputs`` (quantized as the model's own
    input quantization does); {"output", "seconds", "counters", "sim" (GVSOC), "exe"}."""
    b = net.boundary
    xs_c = [_quantize_input(x, q.scale, q.zp) if q.scale is not None else x
            for x, q in zip(inputs.values(), b.inputs)]
    t_outs = [net.tensors[o] for o in net.outputs]
    shapes, dtypes = [t.shape for t in t_outs], [t.dtype for t in t_outs]
    if platform == "gvsoc":
        refuse_float_on_gvsoc(net)
        with step("building the C project for GVSOC (pulp-runtime)"):
            elf = gvsoc.build(project, xs_c, net.cluster_stack_bytes)
        with step("running it on GVSOC"):
            sim = gvsoc.run(project, elf, shapes, dtypes, timeout)
        return {"output": sim.output, "seconds": sim.seconds, "counters": None, "sim": sim,
                "exe": elf}
    with step(f"building the C project ({platform})"):
        exe = build.build_host(project, instrument) if platform == "host" else \
            build.build_rv32(project, instrument)
    with step(f"running it ({'QEMU' if platform == 'rv32' else 'host'})"):
        ran = build.run_project(project, exe, platform, xs_c, shapes, dtypes, timeout)
    return {**ran, "exe": exe}


def _run_record(result, net, inputs, ran, platform, seed) -> dict:
    """report.json ``run``: the C outputs against the LLVM build's and the reference's."""
    ours = ran["output"]
    llvm = _llvm_outputs(result, inputs)
    if len(llvm) != len(ours):
        raise UsageError(f"--run: the LLVM build returns {len(llvm)} outputs, the C entry "
                         f"{len(ours)}")
    b = net.boundary
    got = [(_dequantize(o, q.scale, q.zp) if q.scale is not None else o).reshape(ref.shape)
           for o, q, ref in zip(ours, b.outputs, llvm)]
    per_output = [_compare(o, ref, q) for o, ref, q in zip(ours, llvm, b.outputs)]
    run = {"platform": platform, "seconds": round(ran["seconds"], 3), "seed": seed,
           "vs_llvm": _compare_all(per_output),
           "check": check_outputs(got, result.imported, inputs, seed, result.requant)}
    if len(per_output) > 1:
        run["vs_llvm_outputs"] = per_output
    if platform == "rv32":
        run["soft_float_symbols"] = build.soft_float_symbols(ran["exe"])
        run["l2_linked"] = build.l2_account(ran["exe"])  # code + data GAP8's L2 would hold
    return run


def refuse_float_on_gvsoc(net):
    """pulp-runtime links no C library beyond its minimal printf: leftover float code that
    calls <math.h> needs picolibc's libm (``gvsoc.libm_flags``); without it, one clear error
    naming the float layers."""
    calls = libm_calls(net)
    if calls and gvsoc.libm_flags() is None:
        layers = sorted({layer.name for layer in net.layers if layer.kernel in calls})
        raise UsageError("--run gvsoc: pulp-runtime has no libm for the float layers "
                         f"{', '.join(layers)} (they call "
                         f"{', '.join(sorted({f for v in calls.values() for f in v}))}); "
                         "run them with --run host or --run rv32")
