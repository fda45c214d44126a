"""layers.png: per layer, the chosen plan against the usual deployment (modelled cycles, and the
GVSOC-measured ones when a run measured them), the L2<->L1 bytes (activations and weights) and
the L1 peak against the budget. Titled with the model, its dtype, the policies and L1."""

from __future__ import annotations

from ..ir.vocab import L1_TO_L2_ACT, L2_TO_L1_ACT, L2_TO_L1_WGT


def baseline_per_layer(report: dict, layers: list[dict]) -> list[float | None]:
    """The usual deployment's modelled cycles of each chosen layer: the sum over its kernels
    sharing an ONNX node with it (a fused pair's two convs), None when it has none."""
    base = (report.get("baseline") or {}).get("layers") or []
    out = []
    for layer in layers:
        nodes = set(layer["onnx_nodes"])
        hits = [b["cycles_modelled"] for b in base if nodes & set(b["onnx_nodes"])]
        out.append(sum(hits) if hits else None)
    return out


def title_of(report: dict) -> str:
    dtype = "int8" if any(layer.get("integer") for layer in report["layers"]) else "float"
    return (f"{report.get('model') or 'model'} ({dtype}) on {report['target']['name']}: "
            f"--fusion {report['fusion_policy']} --layout {report['layout_policy']} "
            f"--dma {report['dma']}, L1 {report['target']['l1_bytes'] / 1000:g} kB")


def plot_layers(report: dict, path: str) -> None:
    import matplotlib  # here: the backend must be chosen before pyplot is imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [layer for layer in report["layers"] if layer.get("traffic")]
    if not layers:
        return
    x = list(range(len(layers)))
    fig, (cyc, traffic, l1) = plt.subplots(3, 1, figsize=(max(9, 0.5 * len(layers)), 10),
                                           sharex=True)
    _cycles_panel(cyc, report, layers, x)
    _traffic_panel(traffic, layers, x)
    l1.bar(x, [layer["l1_peak_bytes"] / 1000 for layer in layers], color="gray",
           label="L1 peak")
    l1.axhline(report["target"]["l1_bytes"] / 1000, color="red", linestyle="--",
               label="L1 size")
    l1.set_ylabel("kB of L1")
    l1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    l1.set_xticks(x)
    l1.set_xticklabels([("* " if "+" in layer["name"] else "") + layer["name"]
                        for layer in layers], rotation=75, ha="right", fontsize=7)
    l1.set_xlabel("layer (* a fused pair, hatched bars)")
    fig.suptitle(title_of(report), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def _cycles_panel(ax, report, layers, x):
    hatch = ["//" if "+" in layer["name"] else "" for layer in layers]
    ours = [layer["plan"]["cycles"] / 1000 for layer in layers]
    ax.bar([i - 0.2 for i in x], ours, width=0.4, hatch=hatch, label="chosen (modelled)")
    base = baseline_per_layer(report, layers)
    if any(b is not None for b in base):
        ax.bar([i + 0.2 for i in x], [(b or 0) / 1000 for b in base], width=0.4,
               color="tab:orange", label="usual deployment (modelled)")
    measured = {row["name"]: row["cycles"] for row in
                (report.get("measured") or {}).get("layers", [])} \
        if "source" in (report.get("measured") or {}) else {}
    if measured:
        pts = [(i, measured[layer["name"]] / 1000) for i, layer in zip(x, layers)
               if layer["name"] in measured]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "k^", label="chosen (GVSOC)")
    ax.set_ylabel("k cycles")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)


def _traffic_panel(ax, layers, x):
    hatch = ["//" if "+" in layer["name"] else "" for layer in layers]
    act = [(layer["traffic"][L2_TO_L1_ACT] + layer["traffic"][L1_TO_L2_ACT]) / 1000
           for layer in layers]
    wgt = [layer["traffic"][L2_TO_L1_WGT] / 1000 for layer in layers]
    ax.bar(x, act, hatch=hatch, label="activations (L2<->L1)")
    ax.bar(x, wgt, bottom=act, hatch=hatch, color="tab:green", label="weights (L2->L1)")
    ax.set_ylabel("kB moved")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
