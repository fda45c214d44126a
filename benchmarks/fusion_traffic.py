"""The paper's headline, measured on our lowered IR: L2<->L1 activation traffic and modelled
cycles of int8 MobileNets compiled for GAP8 with and without DW/PW fusion.

    python benchmarks/fusion_traffic.py [--plot out/fusion_traffic.png]

Traffic is read off the lowered IR (every copy stage, counted exactly); cycles are the tiler's
model (compute at 15.5 MAC/cycle + DMA not hidden by double buffering + per-transfer set-up,
constants in tvm_gap8/target.py), so they are estimates, not measurements on a board.
"""

import argparse
import sys

from tvm_gap8.compiler import compile_model
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

NETWORKS = {
    "MobileNetV1 x0.25 96": lambda: M.mobilenet_v1(alpha=0.25, resolution=96),
    "MobileNetV1 x1.0 128": lambda: M.mobilenet_v1(alpha=1.0, resolution=128),
    "MobileNetV2 x0.35 96": lambda: M.mobilenet_v2(alpha=0.35, resolution=96),
}


def totals(report):
    act = cycles = 0
    for layer in report["layers"]:
        if layer.get("traffic"):
            act += layer["traffic"]["l2_to_l1_act"] + layer["traffic"]["l1_to_l2_act"]
            cycles += layer["plan"]["cycles"]
    return act, cycles


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", default=None, help="also write a bar chart here")
    args = ap.parse_args(argv)
    rows = []
    for name, build in NETWORKS.items():
        print(f"[fusion_traffic] {name}", file=sys.stderr, flush=True)
        model = quantized(build())
        unfused = totals(compile_model(model, fuse=False).report)
        fused = totals(compile_model(model, fuse=True).report)
        profitable = totals(compile_model(model, fuse=True, fusion="profitable").report)
        rows.append((name, unfused, fused, profitable))
    print(f"{'network (int8)':<22}{'traffic: unfused':>17}{'all fused':>11}{'change':>8}"
          f"{'profitable':>12}{'change':>8}{'cycles: unfused':>17}{'all fused':>12}{'change':>8}"
          f"{'profitable':>12}{'change':>8}")
    for name, (ua, uc), (fa, fc), (pa, pc) in rows:
        print(f"{name:<22}{ua:>17,}{fa:>11,}{(fa - ua) / ua:>8.1%}{pa:>12,}{(pa - ua) / ua:>8.1%}"
              f"{uc:>17,}{fc:>12,}{(fc - uc) / uc:>8.1%}{pc:>12,}{(pc - uc) / uc:>8.1%}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [r[1][0] / 1e3 for r in rows], 0.4, label="unfused")
        ax.bar([i + 0.2 for i in x], [r[2][0] / 1e3 for r in rows], 0.4, label="DW/PW fused")
        ax.set_xticks(list(x))
        ax.set_xticklabels([r[0] for r in rows])
        ax.set_ylabel("L2<->L1 activation traffic (kB)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100, metadata={"Software": None})
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
