"""Agreement of the int8 MobileNets with the ONNX QDQ float semantics and with onnxruntime, per
requantization mode (``--requant fixed | float32``; ``tvm_gap8.check.agreement``).

    python benchmarks/requant_agreement.py [--networks v1_025,v2_035] [--seeds 3]

Per network and mode, over every element of every quantized layer and ``--seeds`` random
inputs: the fraction equal to the QDQ spec (float64, each layer on its own integer inputs) and
the largest difference in steps; the same against onnxruntime end to end. Our compiled kernels
equal the integer reference of the mode bit for bit (``--check``; ``tests/models``), so these
are the figures of the compiled code.
"""

import argparse

from tvm_gap8.check import random_inputs
from tvm_gap8.check.agreement import agreement
from tvm_gap8.frontend import import_onnx
from tvm_gap8.kernels.requant import REQUANT_MODES
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

NETWORKS = {
    "v1_025": ("MobileNetV1 x0.25 96", lambda: M.mobilenet_v1(alpha=0.25, resolution=96)),
    "v2_035": ("MobileNetV2 x0.35 96", lambda: M.mobilenet_v2(alpha=0.35, resolution=96)),
}


def measure(model, seeds: int) -> dict:
    """{mode: [Agreement per seed]} of an int8 model."""
    imported = import_onnx(model)
    out = {}
    for mode in REQUANT_MODES:
        out[mode] = [agreement(imported.onnx_model, random_inputs(imported, seed), mode)
                     for seed in range(seeds)]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="v1_025,v2_035")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    results = {}
    for key in args.networks.split(","):
        title, build = NETWORKS[key]
        results[key] = measure(quantized(build()), args.seeds)
        print(f"{title} (int8, {args.seeds} seeded random inputs)")
        for mode, runs in results[key].items():
            n = sum(a.elements for a in runs)
            spec = sum(a.spec_equal_fraction * a.elements for a in runs) / n
            ort = sum(a.ort_equal_fraction * a.elements for a in runs) / n
            print(f"  {mode:8} {runs[0].layers} layers, {n} elements: QDQ spec "
                  f"{100 * spec:.4f}% equal, max {max(a.spec_max_steps for a in runs)} step; "
                  f"onnxruntime {100 * ort:.4f}% equal, max "
                  f"{max(a.ort_max_steps for a in runs)} step")
            for seed, a in enumerate(runs):
                if a.ort_first_difference:
                    print(f"    seed {seed}: first layer differing from onnxruntime: "
                          f"{a.ort_first_difference}")
    return results


if __name__ == "__main__":
    main()
