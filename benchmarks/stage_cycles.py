"""Cycles per stage of the emitted kernels, measured on GVSOC (pulp-open, not GAP8).

    python benchmarks/stage_cycles.py MODEL.onnx [--fusion F] [--layout L] [--layer NAME]

Every kernel's C marks where it starts and where each of its barriers is passed
(``GAP8_STAGE_END``, ``emitc/plainc.py``); built with ``GAP8_STAGE_TIMES`` the master core
reads the cluster timer there, so a stage's cycles are the cluster's wall time from one mark to
the next: the copies the master issues, a compute nest split over the cores up to its barrier, a
fill. Prints, per layer (or the one named), each stage's cycles, its share of the layer's
measured cycles and what its C calls (the micro-kernels, DMA calls and fills between the two
marks). The network runs on random int8 input; the timer reads add ~10 cycles a stage.
"""

import argparse
import os
import re
import tempfile

import numpy as np

from tvm_gap8.compiler import compile_model
from tvm_gap8.emitc import gvsoc
from tvm_gap8.emitc.network import read_network
from tvm_gap8.emitc.project import write_project
from tvm_gap8.target import GAP8

#: what a stage does, by the calls in its C (first match)
STAGE_KINDS = (("gap8_dma_copy", "copies"), ("gap8_copy_strided", "copies (transposing)"),
               ("gap8_dw3x3", "DW 3x3"), ("gap8_dot4x2", "PW 4x2"), ("gap8_dot4", "PW 4x1"),
               ("gap8_rows4", "conv rows"), ("gap8_dot", "dot products"),
               ("gap8_requantize", "requantize"), ("= (int8_t)", "fill"))


def stage_kinds(source: str, kernel: str) -> dict:
    """{stage: what its C does} for ``kernel`` in the project's ``kernels.c``."""
    body = source[source.index(f" {kernel}("):]
    body = body[:body.index("\n}\n")]
    parts = re.split(r"GAP8_STAGE_END\((\d+)\);", body)
    # parts: [signature, "0", stage 1's C, "1", stage 2's C, "2", ...]
    return {int(parts[k]): next((name for call, name in STAGE_KINDS if call in parts[k - 1]),
                                "other")
            for k in range(3, len(parts), 2)}


def run(model_path: str, fusion: str, layout: str):
    """The network's layers (``emitc.network``) and its GVSOC run with stage times."""
    result = compile_model(model_path, hw=GAP8, fuse=fusion != "none",
                           fusion=fusion, layout=layout)
    net = read_network(result.lowered, GAP8, placement=result.placement)
    project = os.path.join(tempfile.mkdtemp(prefix="stage_cycles_"), "gap8")
    write_project(net, GAP8, project)
    x_t, out_t = net.tensors[net.inputs[0]], net.tensors[net.outputs[0]]
    x = np.random.default_rng(0).integers(-128, 128, x_t.shape).astype(x_t.dtype)
    elf = gvsoc.build(project, x, net.cluster_stack_bytes, stage_times=True)
    sim = gvsoc.run(project, elf, out_t.shape, out_t.dtype)
    with open(os.path.join(project, "kernels.c"), encoding="utf-8") as f:
        return net, sim, f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--fusion", default="auto")
    ap.add_argument("--layout", default="auto")
    ap.add_argument("--layer", help="one layer (its report name), else every layer")
    args = ap.parse_args()
    net, sim, source = run(args.model, args.fusion, args.layout)
    print(f"{args.model} --fusion {args.fusion} --layout {args.layout}: {sim.cycles:,} "
          "cluster cycles on GVSOC pulp-open (not GAP8)")
    for layer, counts in zip(net.layers, sim.layers):
        if args.layer and layer.name != args.layer or "stages" not in counts:
            continue
        kinds = stage_kinds(source, layer.kernel)
        print(f"\n{layer.name} ({layer.kind}): {counts['cycles']:,} cycles")
        print("| stage | does | cycles | share |\n|---|---|---|---|")
        for stage, cycles in sorted(counts["stages"].items()):
            print(f"| {stage} | {kinds.get(stage, '?')} | {cycles:,} | "
                  f"{100 * cycles / max(counts['cycles'], 1):.1f}% |")


if __name__ == "__main__":
    main()
