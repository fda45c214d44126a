"""Per-layer plot of what the report says: L2<->L1 traffic and L1 peak against the budget."""

from __future__ import annotations

from ..ir.vocab import L1_TO_L2_ACT, L2_TO_L1_ACT, L2_TO_L1_WGT


def plot_layers(report: dict, path: str) -> None:
    import matplotlib  # here: the backend must be chosen before pyplot is imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [layer for layer in report["layers"] if layer.get("traffic")]
    if not layers:
        return
    names = [layer["name"] for layer in layers]
    x = range(len(layers))
    act_in = [layer["traffic"][L2_TO_L1_ACT] / 1000 for layer in layers]
    act_out = [layer["traffic"][L1_TO_L2_ACT] / 1000 for layer in layers]
    wgt = [layer["traffic"][L2_TO_L1_WGT] / 1000 for layer in layers]
    peak = [layer["l1_peak_bytes"] / 1000 for layer in layers]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, 0.45 * len(layers)), 7),
                                      sharex=True)
    top.bar(x, act_in, label="L2->L1 activations")
    top.bar(x, act_out, bottom=act_in, label="L1->L2 activations")
    top.bar(x, wgt, bottom=[a + b for a, b in zip(act_in, act_out)], label="L2->L1 weights")
    top.set_ylabel("kB moved")
    top.legend()
    top.set_title(f"{report.get('model', '')} on {report['target']['name']}: traffic per layer")
    bottom.bar(x, peak, color="gray", label="L1 peak")
    bottom.axhline(report["target"]["l1_bytes"] / 1000, color="red", linestyle="--",
                   label="L1 budget")
    bottom.set_ylabel("kB of L1")
    bottom.legend()
    bottom.set_xticks(list(x))
    bottom.set_xticklabels(names, rotation=75, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
