"""Executed rv32imc instructions of the emitted C networks, --fusion all vs --no-fuse (CHW
layouts) and the CLI default (--fusion auto --layout auto), and instructions per MAC per layer
kind beside hand-written scalar DW 3x3 / PW kernels built with the same flags.

    python benchmarks/rv32_instructions.py [--networks v1_025,v2_035,v1_100]

Measured on QEMU rv32imc (qemu-system-riscv32 -machine virt -icount shift=0, minstret read
around each layer): instructions of GAP8's base ISA on one core (the 8 core ids run in turn),
not GAP8 cycles (no PULP SIMD, hardware loops or post-increment loads; DMA is memcpy).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from tvm_gap8.compiler import compile_model
from tvm_gap8.emitc import build
from tvm_gap8.emitc.network import read_network
from tvm_gap8.emitc.project import write_project
from tvm_gap8.target import GAP8
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

HERE = os.path.dirname(os.path.abspath(__file__))
NETWORKS = {
    "v1_025": ("MobileNetV1 x0.25 96", lambda: M.mobilenet_v1(alpha=0.25, resolution=96)),
    "v2_035": ("MobileNetV2 x0.35 96", lambda: M.mobilenet_v2(alpha=0.35, resolution=96)),
    "v1_100": ("MobileNetV1 x1.0 128", lambda: M.mobilenet_v1(alpha=1.0, resolution=128)),
}


def measure(model, fusion: str, layout: str, work: str) -> dict:
    """Per layer (name, kind, MACs, instructions) of one inference on QEMU."""
    result = compile_model(model, fuse=fusion != "none", fusion=fusion, layout=layout)
    net = read_network(result.lowered, GAP8, instrument=False, placement=result.placement)
    project = os.path.join(work, f"{fusion}_{layout}")
    write_project(net, GAP8, project)
    elf = build.build_rv32(project, instrument=True, extra_flags=["-DGAP8_INSTRET_ONLY"])
    x_t = net.tensors[net.inputs[0]]
    out_t = net.tensors[net.outputs[0]]
    x = np.random.default_rng(0).integers(-128, 128, x_t.shape).astype(x_t.dtype)
    ran = build.run_project(project, elf, "rv32", x, out_t.shape, out_t.dtype)
    macs = {t["name"]: t["macs"] for t in result.report["layers"] if t.get("tiled")}
    return [{"name": layer.name, "kind": layer.kind, "macs": macs.get(layer.name, 0),
             "instructions": c["instructions"]}
            for layer, c in zip(net.layers, ran["counters"])]


def scalar_reference(work: str) -> dict:
    elf = os.path.join(work, "scalar.elf")
    subprocess.run([build.RV32_GCC, "-std=c99", "-Wall", "-Werror", *build.RV32_FLAGS,
                    os.path.join(HERE, "scalar_kernels.c"), "-o", elf], check=True)
    proc = subprocess.run(["timeout", "120", *build.qemu_command(elf)], capture_output=True,
                          text=True, check=True)
    out = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("dw3x3", "pw"):
            out[parts[0]] = int(parts[1]) / int(parts[2])
    return out


def per_kind(layers) -> dict:
    kinds: dict = {}
    for layer in layers:
        if layer["macs"]:
            k = kinds.setdefault(layer["kind"], [0, 0])
            k[0] += layer["instructions"]
            k[1] += layer["macs"]
    return {kind: ins / macs for kind, (ins, macs) in sorted(kinds.items())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="v1_025,v2_035,v1_100")
    args = ap.parse_args(argv)
    missing = build.rv32_available()
    if missing:
        sys.exit(f"rv32_instructions: {missing} (run tools/ensure_riscv.sh as root)")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        scalar = scalar_reference(work)
        print(f"hand-written scalar C (same flags): DW 3x3 {scalar['dw3x3']:.2f} instr/MAC, "
              f"PW {scalar['pw']:.2f} instr/MAC")
        print("| network (int8) | --fusion all | --no-fuse | change | CLI default (auto, auto) "
              "| MACs | instr/MAC by kind, all (--no-fuse) |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for key in args.networks.split(","):
            name, builder = NETWORKS[key]
            print(f"[rv32_instructions] {name}", file=sys.stderr, flush=True)
            model = quantized(builder())
            fused = measure(model, "all", "chw", os.path.join(work, key))
            unfused = measure(model, "none", "chw", os.path.join(work, key))
            auto = measure(model, "auto", "auto", os.path.join(work, key))
            tf = sum(la["instructions"] for la in fused)
            tu = sum(la["instructions"] for la in unfused)
            ta = sum(la["instructions"] for la in auto)
            macs = sum(la["macs"] for la in fused)
            kinds = "; ".join(f"{k} {v:.2f}" for k, v in per_kind(fused).items())
            kinds_u = "; ".join(f"{k} {v:.2f}" for k, v in per_kind(unfused).items())
            print(f"| {name} | {tf:,} | {tu:,} | {100 * (tf - tu) / tu:+.1f}% | {ta:,} | "
                  f"{macs:,} | {kinds} ({kinds_u}) |", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
