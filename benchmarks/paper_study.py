"""The paper's study on our compiler: int8 MobileNets compiled for GAP8 four ways, costed by the
same cycle model, L2<->L1 activation bytes read off the lowered IR.

    python benchmarks/paper_study.py [--plot out/paper_study.png] [--jobs 2] [--quick] [--measure]

Per network: the usual deployment (baseline: ``--fusion none --layout hwc --dma blocking``, as
DORY + PULP-NN deploy), our best unfused (``--fusion none --layout auto``, double-buffered) and
the planner (``--fusion auto --layout auto``), and the planner with PW -> DW -> PW chains
(``--fusion chains --layout auto``, the chain column). Cycles are MODELLED (tvm_gap8/cost/cycles.py),
not measured on a board; bytes and MACs are counted exactly off the IR. Prints a Markdown table
(reductions against the baseline in %, activation bytes over the compulsory bytes of the
grouping, MAC/cycle, compile seconds: the unfused compile, and the planner's including the
baseline's, each from scratch) and writes a bar chart. ``--measure`` also emits each of the four
builds as C and runs it on GVSOC's pulp-open cluster (8 cores): MEASURED cluster cycles beside
the modelled ones (pulp-open, not GAP8: GAP8's 512 kB L2 enforced, L3 weights read from an L2
stand-in, pulp-open clocks; tvm_gap8/emitc/gvsoc.py).
"""

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor

NETWORKS = [  # (family, width, input)
    ("v1", 0.25, 96), ("v1", 0.25, 128), ("v1", 0.5, 96), ("v1", 0.5, 128),
    ("v1", 0.75, 128), ("v1", 1.0, 128), ("v2", 0.35, 96), ("v2", 0.5, 96),
]


def network_name(fam, width, res):
    return f"MobileNet{fam.upper()} x{width} @{res}"


CONFIGS = {  # name -> compile_model options
    "baseline": dict(fusion="none", layout="hwc", dma="blocking"),
    "unfused": dict(fusion="none", layout="auto"),
    "planner": dict(fusion="auto", layout="auto"),
    # the planner with PW -> DW -> PW chains where the model says they win (opt-in)
    "chains": dict(fusion="chains", layout="auto"),
}


def measure(model, net) -> dict:
    """config -> measured cluster cycles of the whole network on GVSOC."""
    import tempfile

    from tvm_gap8.compiler import compile_model
    from tvm_gap8.emitc.run import emit_and_run

    out = {}
    for cfg, opts in CONFIGS.items():
        result = compile_model(model, **opts)
        with tempfile.TemporaryDirectory() as tmp:
            emit_and_run(result, tmp, "gvsoc")
        run = result.report["run"]
        if not (run["vs_llvm"].get("integers_equal") and run["check"]["passed"]):
            raise SystemExit(f"{network_name(*net)} {cfg}: the GVSOC run is not exact")
        out[cfg] = run["measured_cycles"]
    print(f"[paper_study] {network_name(*net)} measured on GVSOC", file=sys.stderr, flush=True)
    return out


def study(net, measured: bool = False):
    """(name, {config: (totals, compile seconds)}) of one network."""
    from tvm_gap8.compiler import compile_model
    from tvm_gap8.testing import onnx_models as M
    from tvm_gap8.testing.quant import quantized

    fam, width, res = net
    build = M.mobilenet_v1 if fam == "v1" else M.mobilenet_v2
    model = quantized(build(alpha=width, resolution=res), samples=4)
    out = {}
    # every compile times its own tile search: the plan memo belongs to the compile
    t0 = time.perf_counter()
    planned = compile_model(model, fusion="auto", layout="auto", baseline=True)
    out["planner"] = (planned.report["totals"], time.perf_counter() - t0)
    out["baseline"] = (planned.report["baseline"]["totals"], None)
    t0 = time.perf_counter()
    unfused = compile_model(model, fusion="none", layout="auto")
    out["unfused"] = (unfused.report["totals"], time.perf_counter() - t0)
    t0 = time.perf_counter()
    chains = compile_model(model, **CONFIGS["chains"])
    out["chains"] = (chains.report["totals"], time.perf_counter() - t0)
    print(f"[paper_study] {network_name(*net)} done", file=sys.stderr, flush=True)
    if measured:
        out["measured"] = measure(model, net)
    return network_name(*net), out


def measured_table(results) -> str:
    """Measured on GVSOC beside modelled, and fusion's own share (planner vs best unfused)."""
    lines = ["| network | baseline Mcyc measured (modelled) | unfused measured (modelled) | "
             "planner measured (modelled) | chains measured (modelled) | planner vs baseline, "
             "measured | planner vs unfused (fusion's share), measured | chains vs planner, "
             "measured |", "|" + "---|" * 8]
    for name, r in results:
        m = r["measured"]
        cells = [f"{m[c] / 1e6:.2f} ({r[c][0]['cycles_modelled'] / 1e6:.2f})"
                 for c in ("baseline", "unfused", "planner", "chains")]
        lines.append(f"| {name} | {' | '.join(cells)} | "
                     f"{pct(m['planner'], m['baseline']):+.1f}% | "
                     f"{pct(m['planner'], m['unfused']):+.1f}% | "
                     f"{pct(m['chains'], m['planner']):+.1f}% |")
    return "\n".join(lines)


def pct(new, old):
    return 100.0 * (new - old) / old


def table(results) -> str:
    head = ("| network | baseline Mcycles | unfused Mcycles (%) | planner Mcycles (%) | "
            "baseline act kB | unfused act kB (%) | planner act kB (%) | act / compulsory "
            "(base, unf, plan) | MAC/cycle (base, plan) | compile s (unf, plan) | "
            "chains Mcycles (%) | chains act kB (%) |")
    lines = [head, "|" + "---|" * 12]
    for name, r in results:
        b, u, p, c = (r[k][0] for k in ("baseline", "unfused", "planner", "chains"))
        lines.append(
            f"| {name} | {b['cycles_modelled'] / 1e6:.3f} | "
            f"{u['cycles_modelled'] / 1e6:.3f} "
            f"({pct(u['cycles_modelled'], b['cycles_modelled']):+.1f}) | "
            f"{p['cycles_modelled'] / 1e6:.3f} "
            f"({pct(p['cycles_modelled'], b['cycles_modelled']):+.1f}) | "
            f"{b['act_bytes'] / 1e3:.1f} | "
            f"{u['act_bytes'] / 1e3:.1f} ({pct(u['act_bytes'], b['act_bytes']):+.1f}) | "
            f"{p['act_bytes'] / 1e3:.1f} ({pct(p['act_bytes'], b['act_bytes']):+.1f}) | "
            f"{b['act_bytes'] / b['compulsory_act_bytes']:.2f}, "
            f"{u['act_bytes'] / u['compulsory_act_bytes']:.2f}, "
            f"{p['act_bytes'] / p['compulsory_act_bytes']:.2f} | "
            f"{b['macs'] / b['cycles_modelled']:.2f}, {p['macs'] / p['cycles_modelled']:.2f} | "
            f"{r['unfused'][1]:.0f}, {r['planner'][1]:.0f} | "
            f"{c['cycles_modelled'] / 1e6:.3f} "
            f"({pct(c['cycles_modelled'], b['cycles_modelled']):+.1f}) | "
            f"{c['act_bytes'] / 1e3:.1f} ({pct(c['act_bytes'], b['act_bytes']):+.1f}) |")
    return "\n".join(lines)


def violations(results) -> list:
    """What the issues ask never to happen: the planner slower than the baseline or than our
    best unfused (--fusion none, what it could have chosen), or moving more activation bytes
    than our best unfused."""
    out = []
    for name, r in results:
        b, u, p = (r[k][0] for k in ("baseline", "unfused", "planner"))
        if p["cycles_modelled"] > b["cycles_modelled"]:
            out.append(f"{name}: planner cycles exceed the baseline's")
        if p["cycles_modelled"] > u["cycles_modelled"]:
            out.append(f"{name}: planner cycles exceed --fusion none's")
        if p["act_bytes"] > u["act_bytes"]:
            out.append(f"{name}: planner activation bytes exceed the best unfused")
        m = r.get("measured")
        if m and m["planner"] > m["baseline"]:  # shown, not hidden
            out.append(f"{name}: MEASURED planner cycles exceed the baseline's "
                       f"({m['planner']:,} > {m['baseline']:,})")
    return out


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [n for n, _ in results]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, key, label in ((axes[0], "cycles_modelled", "modelled Mcycles"),
                           (axes[1], "act_bytes", "L2<->L1 activation kB")):
        scale = 1e6 if key == "cycles_modelled" else 1e3
        for i, cfg in enumerate(("baseline", "unfused", "planner")):
            ax.bar([x + 0.27 * i for x in range(len(names))],
                   [r[cfg][0][key] / scale for _, r in results], 0.27, label=cfg)
        ax.set_xticks([x + 0.27 for x in range(len(names))])
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", default="out/paper_study.png")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="the two smallest networks only")
    ap.add_argument("--measure", action="store_true",
                    help="also run the four builds on GVSOC (measured cycles)")
    args = ap.parse_args(argv)
    nets = NETWORKS[:1] + NETWORKS[6:7] if args.quick else NETWORKS
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(study, nets, [args.measure] * len(nets)))
    print(table(results))
    if args.measure:
        print("\nMEASURED on GVSOC pulp-open (8 cores), not GAP8 (GAP8's 512 kB L2 enforced, "
              "L3 weights from an L2 stand-in, pulp-open clocks):\n" + measured_table(results))
    print(f"\n{len(results)} networks in {time.perf_counter() - t0:.0f} s")
    if args.plot:
        import os
        os.makedirs(os.path.dirname(args.plot) or ".", exist_ok=True)
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    bad = violations(results)
    for line in bad:
        print("VIOLATION:", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
