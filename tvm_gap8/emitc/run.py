"""``--emit-c [--run host|rv32] [--instrument]``: write OUT/gap8, build it, run one inference,
compare with the host LLVM build of the same lowered IR and with the reference (as --check),
and put the result in report.json (``run``, ``measured``, ``emit_c``)."""

from __future__ import annotations

import os

import numpy as np
import tvm
from tvm import relax

from ..check import check_outputs, random_inputs
from ..errors import UsageError
from ..vocab import DMA_TRANSFERS, L1_TO_L2_ACT, L2_TO_L1_ACT, L2_TO_L1_WGT, L3_TO_L2
from . import build, gvsoc
from .network import read_network
from .project import write_project

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
    from ..compiler import build_host, run_host
    if result.executable is None:
        result.executable = build_host(result.lowered)
    return run_host(result.executable, result.imported, inputs)


def _static_layers(report, net):
    """The report's per-layer static counts, in the order of the emitted gap8 layers."""
    tiled = [layer for layer in report["layers"] if layer.get("tiled")]
    emitted = [layer for layer in net.layers if layer.gap8]
    return {e.index: t for e, t in zip(emitted, tiled)}


def _expected_l3(net, report_layer):
    """Bytes the layer streams L3 -> L2: its weight bytes reaching L1 when its weights are in
    L3 (the report's l3_to_l2 when the report placed them there too)."""
    return report_layer["traffic"][L2_TO_L1_WGT] if report_layer else 0


def measured(counters, net, report) -> dict:
    static = _static_layers(report, net)
    rows = []
    for layer, c in zip(net.layers, counters):
        st = static.get(layer.index)
        row = {"name": layer.name, "kernel": layer.kernel, "kind": layer.kind,
               "weights_in": layer.weights_in, **c}
        if st is not None:
            traffic = st["traffic"]
            l3 = _expected_l3(net, st) if layer.weights_in == "L3" else 0
            row["static"] = {"l2_to_l1_bytes": traffic[L2_TO_L1_ACT] + traffic[L2_TO_L1_WGT],
                             "l1_to_l2_bytes": traffic[L1_TO_L2_ACT],
                             "l2_l1_transfers": traffic[DMA_TRANSFERS],
                             "l3_to_l2_bytes": l3, "report_l3_to_l2": traffic[L3_TO_L2],
                             "macs": st["macs"]}
            got = {"l2_to_l1_bytes": c["l2_to_l1_bytes"], "l1_to_l2_bytes": c["l1_to_l2_bytes"],
                   "l2_l1_transfers": c["l2_to_l1_transfers"] + c["l1_to_l2_transfers"],
                   "l3_to_l2_bytes": c["l3_to_l2_bytes"], "macs": c["macs"]}
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
            "macs")
    totals = {k: sum(r[k] for r in rows) for k in keys}
    totals["network_cycles"] = ran.cycles
    totals["modelled_cycles"] = sum(r["modelled_cycles"] or 0 for r in rows)
    return {"source": gvsoc.SOURCE, "note": gvsoc.PLATFORM_NOTE,
            "l3_stand_in": bool(net.l3_bytes), "layers": rows, "totals": totals}


def _compare(ours: np.ndarray, llvm: np.ndarray, boundary) -> dict:
    if boundary.out_scale is not None:
        llvm_q = np.rint(llvm.astype(np.float64) / boundary.out_scale).astype(np.int64) \
            + boundary.out_zp
        return {"integers_equal": bool(np.array_equal(llvm_q, ours.astype(np.int64))),
                "max_abs_diff": int(np.abs(llvm_q - ours.astype(np.int64)).max(initial=0))}
    diff = float(np.abs(llvm.astype(np.float64) - ours.astype(np.float64)).max(initial=0))
    return {"max_abs_diff": diff, "equal": diff == 0.0}


def emit_and_run(result, hw, out_dir: str, platform: str | None = None,
                 instrument: bool = False, seed: int = 0, timeout: int = 600) -> dict:
    """Writes ``out_dir/gap8``; with ``platform`` builds, runs and checks it. Updates and
    returns ``result.report``."""
    if platform is not None and platform not in PLATFORMS:
        raise UsageError(f"--run {platform}: choose one of {', '.join(PLATFORMS)}")
    net = read_network(result.lowered, hw, instrument=True)
    project = os.path.join(out_dir, "gap8")
    files = write_project(net, hw, project)
    report = result.report
    report["emit_c"] = {"dir": "gap8", "files": files, "l2_arena_bytes": net.l2_arena,
                        "l1_arena_bytes": net.l1_arena, "l2_weight_bytes": net.l2_weights,
                        "l3_weight_bytes": net.l3_bytes, "layers": len(net.layers), **net.stats}
    if platform is None:
        return report
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        raise UsageError("--run: the runner handles one input and one output")
    inputs = random_inputs(result.imported, seed)
    x = next(iter(inputs.values()))
    b = net.boundary
    x_c = _quantize_input(x, b.in_scale, b.in_zp) if b.in_scale is not None else x
    t_out = net.tensors[net.outputs[0]]
    if platform == "gvsoc":
        elf = gvsoc.build(project, x_c, net.cluster_stack_bytes)
        sim = gvsoc.run(project, elf, t_out.shape, t_out.dtype, timeout)
        ran = {"output": sim.output, "seconds": sim.seconds, "counters": None}
    else:
        exe = build.build_host(project, instrument) if platform == "host" else \
            build.build_rv32(project, instrument)
        ran = build.run_project(project, exe, platform, x_c, t_out.shape, t_out.dtype, timeout)
    ours = ran["output"]
    got = _dequantize(ours, b.out_scale, b.out_zp) if b.out_scale is not None else ours
    llvm = _llvm_outputs(result, inputs)[0]
    run = {"platform": platform, "seconds": round(ran["seconds"], 3), "seed": seed,
           "vs_llvm": _compare(ours, llvm, b),
           "check": check_outputs([got.reshape(llvm.shape)], result.imported, inputs, seed,
                                  result.requant)}
    if platform == "rv32":
        run["soft_float_symbols"] = build.soft_float_symbols(exe)
    report["run"] = run
    if platform == "gvsoc":
        report["measured"] = measured_gvsoc(sim, net, report)
        totals = report["measured"]["totals"]
        run.update(source=gvsoc.SOURCE, note=gvsoc.PLATFORM_NOTE,
                   measured_cycles=totals["network_cycles"],
                   modelled_cycles=report["totals"]["cycles_modelled"])
    if ran["counters"] is not None:
        report["measured"] = measured(ran["counters"], net, report)
    return report
