"""What a compile produced, as data (``report.json``) and as a table for people.

Everything is read off the lowered module (after our passes, before TVM's build passes): fused
kernels from their PrimFunc's ``gap8.*`` attributes, the remaining layers from the Relax ops and
the ONNX node names the frontend put in their spans.
"""

from __future__ import annotations

import math
import textwrap

import tvm
from tvm import relax

from ..cost.ir import kernel_counts
from .floatlayers import float_layer_records
from ..ir.irutil import group_info, node_name_of
from ..kernels import family_of
from ..kernels.geometry import conv_kind
from ..passes import unfused_of
from ..passes.formation import refusals_of
from ..ir.vocab import (HWC, DMA_TRANSFERS, EPILOGUES_ATTR, INTEGER_ATTR, KIND_ATTR, L1_TO_L2_ACT,
                        L2_TO_L1_ACT, L2_TO_L1_TRANSPOSED, L2_TO_L1_WGT, L2_TO_L3, L3_TO_L2, LAYOUTS_ATTR,
                        MACS_ATTR, PLACEMENT_ATTR, PLAN_ATTR, PLAN_FIGURES_ATTR, WORK_ATTR)


#: report.json's ``schema_version`` (``tvm_gap8/report/report_schema.json``): bumped when a field is
#: renamed or removed, or changes meaning.
SCHEMA_VERSION = 1

def _shape(e):
    return [int(v) for v in e.ty.shape.values]


def _op_kind_and_macs(call) -> tuple[str, int]:
    op = call.op.name
    if op == "relax.nn.conv2d":
        x, w, y = _shape(call.args[0]), _shape(call.args[1]), _shape(call)
        return conv_kind(int(call.attrs.groups), x[1], w[2:]), math.prod(y) * w[1] * w[2] * w[3]
    if op in ("relax.matmul", "relax.linear"):
        a = _shape(call.args[0])
        return "dense", math.prod(_shape(call)) * a[-1]
    if op in ("relax.mean", "relax.nn.avg_pool2d", "relax.nn.max_pool2d",
              "relax.nn.adaptive_avg_pool2d"):
        return "pool", 0
    if op in ("relax.add", "relax.multiply", "relax.subtract", "relax.divide"):
        return "eltwise", 0
    if op in ("relax.nn.relu", "relax.clip", "relax.sigmoid", "relax.maximum", "relax.minimum"):
        return "activation", 0
    if op in ("relax.reshape", "relax.flatten", "relax.squeeze", "relax.expand_dims"):
        return "reshape", 0  # an alias of its input in the C
    if op == "relax.permute_dims":
        return "transpose", 0  # moves every value
    return op.replace("relax.", "").replace("nn.", ""), 0


# order of precedence when several ops of one ONNX node form a layer
_KIND_RANK = ["conv", "dw", "pw", "dense", "pool", "eltwise", "activation", "transpose",
              "reshape"]


def _kernel_entry(prim, counts_cache, name):
    """L1 peak and traffic of a kernel read off its IR (the truth the tests compare with the
    planner's own figures), the plan's figures and the weights' placement."""
    if name not in counts_cache:
        counts_cache[name] = kernel_counts(prim)
    counts = counts_cache[name]
    placement = prim.attrs[PLACEMENT_ATTR]
    traffic = {**counts["traffic"], L3_TO_L2: int(placement[L3_TO_L2]),
               L2_TO_L3: int(placement[L2_TO_L3])}
    return {"l1_peak_bytes": counts["l1_peak_bytes"], "traffic": traffic,
            "weights_in": str(placement["weights_in"]),
            "inputs_in": str(placement["inputs_in"]), "output_in": str(placement["output_in"]),
            "plan": {str(k): int(v) for k, v in prim.attrs[PLAN_FIGURES_ATTR].items()}}


def _tile(attr) -> dict:
    """The tile attribute of a lowered kernel as plain Python values."""
    return {str(k): bool(v) if str(k) == "double_buffered" else int(v) for k, v in attr.items()}


def layers_of(mod: tvm.IRModule) -> list[dict]:
    """Layers of ``main`` in execution order: one per gap8 kernel, one per other ONNX node."""
    layers: list[dict] = []
    counts_cache: dict = {}
    call_tir = tvm.ir.Op.get("relax.call_tir")
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            v = b.value
            if not isinstance(v, relax.Call):
                continue
            if v.op.same_as(call_tir):
                gv = v.args[0]
                prim = mod[gv]
                attrs = prim.attrs or {}
                if KIND_ATTR in attrs:
                    info = group_info(v)  # set by the fusion passes, kept by lowering
                    layers.append({
                        "name": info["layer"],
                        "kind": str(attrs[KIND_ATTR]),
                        "onnx_nodes": info["onnx_nodes"],
                        "macs": int(attrs[MACS_ATTR]),
                        "work": {str(k): int(v) for k, v in attrs[WORK_ATTR].items()},
                        "fused": family_of(str(attrs[KIND_ATTR])).fused,
                        "tiled": True,
                        "kernel": gv.name_hint,
                        "epilogues": [str(e) for e in attrs[EPILOGUES_ATTR]],
                        "tile": _tile(attrs[PLAN_ATTR]),
                        "integer": bool(attrs.get(INTEGER_ATTR, False)),
                        "layouts": {str(k): str(x) for k, x in attrs[LAYOUTS_ATTR].items()},
                        "compulsory_act_bytes": _compulsory(v),
                        **_kernel_entry(prim, counts_cache, gv.name_hint),
                    })
                    continue
                # a TE function the importer emitted (reflect pad, ...): its op, not the
                # numbered function name (pad1, pad2, ...)
                kind = gv.name_hint.rstrip("0123456789").rstrip("_") or gv.name_hint
                macs, node = 0, node_name_of(v)
            elif isinstance(v.op, tvm.ir.Op):
                kind, macs = _op_kind_and_macs(v)
                node = node_name_of(v)
            else:
                continue
            node = node or f"{kind}_{len(layers)}"
            last = layers[-1] if layers else None
            if last is not None and not last["tiled"] and last["onnx_nodes"] == [node]:
                last["macs"] += macs  # e.g. a conv and its bias add, both from one Conv node
                if _KIND_RANK.index(kind) < _KIND_RANK.index(last["kind"]) \
                        if kind in _KIND_RANK and last["kind"] in _KIND_RANK else False:
                    last["kind"] = kind
                continue
            layers.append({"name": node, "kind": kind, "onnx_nodes": [node], "macs": macs,
                           "fused": False, "tiled": False, "integer": _integer_only(v),
                           **_untiled(kind)})
    return layers


ALIAS = "a view of its input (no code, no memory of its own: an alias in the C)"


def _untiled(kind: str) -> dict:
    """Why a layer has no GAP8 kernel: a reshape-like op (flatten, squeeze...) needs none, it is
    an ``alias``; anything else is a ``fallback`` to TVM's legalized op."""
    if kind == "reshape":
        return {"alias": ALIAS}
    return {"fallback": f"no GAP8 kernel for {kind}: TVM's legalized op, not tiled for L1"}


def _integer_only(call) -> bool:
    """Every tensor ``call`` reads and writes is an integer (data movement on int8 tensors,
    SimplifyQDQ's rewrites): no float code; a quantize/dequantize is not."""
    tensors = [a for a in call.args if isinstance(getattr(a, "ty", None), relax.TensorType)]
    tensors += [f for a in call.args if isinstance(a, relax.Tuple) for f in a.fields]
    return all(isinstance(t.ty, relax.TensorType) and "int" in str(t.ty.dtype)
               for t in tensors + [call])


def _tensor_bytes(e) -> int:
    return math.prod(_shape(e)) * (tvm.runtime.DataType(str(e.ty.dtype)).bits // 8)


def _compulsory(call) -> int:
    """Activation bytes a kernel cannot avoid moving: each input read once, its output written
    once (weights and per-channel tensors are constants, not counted)."""
    acts = [a for a in call.args[1].fields if not isinstance(a, tvm.ir.expr.Constant)]
    return sum(_tensor_bytes(a) for a in acts) + _tensor_bytes(call)


def totals_of(layers: list[dict]) -> dict:
    """The network's figures summed over its GAP8 kernels (report.json's ``totals``): modelled
    cycles (the plans'), MACs, bytes and transfers read off the IR, and the compulsory
    activation bytes of the grouping."""
    tiled = [layer for layer in layers if layer["tiled"]]

    def total(key):
        return sum(layer["traffic"][key] for layer in tiled)

    return {"cycles_modelled": sum(layer["plan"]["cycles"] for layer in tiled),
            "macs": sum(layer["macs"] for layer in tiled),
            "act_bytes": total(L2_TO_L1_ACT) + total(L1_TO_L2_ACT),
            "transposed_bytes": total(L2_TO_L1_TRANSPOSED),
            "weight_bytes": total(L2_TO_L1_WGT), "l3_to_l2_bytes": total(L3_TO_L2),
            "l2_to_l3_bytes": total(L2_TO_L3),
            "dma_transfers": total(DMA_TRANSFERS),
            "compulsory_act_bytes": sum(layer["compulsory_act_bytes"] for layer in tiled),
            "kernels": len(tiled)}


def float_layers(mod: tvm.IRModule, layers: list[dict]) -> list[dict]:
    """Layers of an int8 model that still compute in float (not counting the quantize of the
    input and the dequantize of the outputs, which are float by definition), each as
    ``{"name", "kind", "reason"}``: why no integer kernel computes it (``report/floatlayers.py``)."""
    if not any(layer.get("integer") and layer["tiled"] or layer["kind"] == "quantize"
               for layer in layers):
        return []  # a float model
    left = [layer for layer in layers if not layer.get("integer")
            and layer["kind"] not in ("quantize", "dequantize", "reshape")]
    return float_layer_records(mod, left)


def fusion_of(mod: tvm.IRModule, layers: list[dict], plan=None) -> dict:
    """The fused groups (from the kernels) and the DWs left unfused with the passes' reasons;
    ``plan``: the compile's ``LayoutPlan`` (the pairs it split), None when no planner ran."""
    fused = [{"kind": layer["kind"], "onnx_nodes": layer["onnx_nodes"],
              "layouts": _layouts(mod, layer["kernel"]), "epilogues": layer["epilogues"]}
             for layer in layers if layer.get("fused")]
    chains = [r for r in refusals_of(mod) if r["kind"] == "pw_dw_pw"]
    return {"fused": fused, "refused": unfused_of(mod), "split": split_by_planner(plan),
            "chains_refused": chains}


def split_by_planner(plan) -> list[dict]:
    """The pairs the ``LayoutPlan`` ``plan`` formed but runs as two kernels, each with its
    reason: the modelled cycles of the split against the best fused variant for the same
    tensor layouts."""
    out = []
    for name, d in (plan.layers if plan is not None else {}).items():
        if not d.split:
            continue
        io = (d.layouts[0].source, d.layouts[-1].out)
        fused = [a.cycles for a in d.alternatives
                 if not a.variant.startswith("split") and (a.input, a.output) == io]
        best = f"{min(fused):,} fused" if fused else "no fused variant fits"
        kernels = "two" if len(d.layouts) == 2 else str(len(d.layouts))
        out.append({"layer": name, "reason": f"split by the planner: {d.cycles:,} modelled "
                                             f"cycles as {kernels} kernels vs {best}"})
    return out


def _layouts(mod, name):
    prim = mod[name]
    return {str(k): str(v) for k, v in prim.attrs[LAYOUTS_ATTR].items()}


def _layouts_cell(layer) -> str:
    """in[>L1 tile]_[intermediate_]out, e.g. ``HWC>CHW_HWC`` (a transposing DW input)."""
    lay = layer.get("layouts")
    if not lay:
        return "-"
    src = lay["input"] if lay["input"] == lay["input_tile"] else \
        f"{lay['input']}>{lay['input_tile']}"
    return "_".join(p for p in (src, lay.get("intermediate"), lay["output"]) if p)


#: The table's width limit (every line, the table's rows and the text under it)
WIDTH = 100

LEGEND = """\
kind: conv dw pw dense pool add lut mul: one GAP8 kernel; dw_pw / pw_dw: a fused pair (one kernel,
  the intermediate only in L1); quantize, reshape... ops left to TVM (no L1 tiles)
layouts: IN_OUT storage order of the kernel's L1 tiles (fused: IN_MID_OUT); CHW>HWC: stored CHW
  in L2, turned into an HWC tile by its copy
tile: output rows (r) x channels (c) per tile, then row tiles x channel tiles; dwN: a fused DW
  computes N channels at a time
L1 B: L1 peak read off the IR; act B / wgt B: activation (in and out) / weight bytes the DMA
  moves between L2 and L1; cycles: the cycle model's; GVSOC: measured on pulp-open (--run gvsoc)"""


def _tile_cell(tile) -> str:
    if not tile:
        return "-"
    cell = f"{tile['rows']}r {tile['channels']}c {tile['row_tiles']}x{tile['channel_tiles']}"
    return cell + (f" dw{tile['dw_channels']}" if tile.get("dw_channels") else "")


def _row(i, layer, measured: dict) -> tuple:
    t = layer.get("traffic")
    cells = (str(i), layer["name"], layer["kind"], _layouts_cell(layer),
             _tile_cell(layer.get("tile")),
             f"{layer['l1_peak_bytes']:,}" if t else "-",
             f"{t[L2_TO_L1_ACT] + t[L1_TO_L2_ACT]:,}" if t else "-",
             f"{t[L2_TO_L1_WGT]:,}" if t else "-",
             f"{layer['plan']['cycles']:,}" if layer.get("plan") else "-")
    return cells + ((f"{measured[layer['name']]:,}" if layer["name"] in measured else "-",)
                    if measured else ())


def table_rows(report: dict) -> list[tuple]:
    """The header, a row per layer and the totals row (which report.json's totals hold)."""
    measured = _measured_cycles(report)
    head = ("#", "layer", "kind", "layouts", "tile", "L1 B", "act B", "wgt B", "cycles") + \
        (("GVSOC",) if measured else ())
    rows = [_row(i, layer, measured) for i, layer in enumerate(report["layers"])]
    tot = report["totals"]
    total = ("", "total", "", "", "", "", f"{tot['act_bytes']:,}", f"{tot['weight_bytes']:,}",
             f"{tot['cycles_modelled']:,}")
    if measured:
        total += (f"{sum(measured.values()):,}",)
    return [head, *rows, total]


def _aligned(rows: list[tuple]) -> list[str]:
    """Columns aligned (numbers right), the layer names cut so that a row fits ``WIDTH``."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    others = sum(widths) - widths[1] + len(widths) - 1
    widths[1] = max(8, min(widths[1], WIDTH - others))
    numeric = set(range(5, len(widths)))

    def cell(c, text):
        if c == 1 and len(text) > widths[1]:
            text = text[:widths[1] - 1] + "~"
        return text.rjust(widths[c]) if c in numeric or c == 0 else text.ljust(widths[c])

    lines = [" ".join(cell(c, t) for c, t in enumerate(r)).rstrip() for r in rows]
    rule = "-" * max(len(line) for line in lines)
    return [lines[0], rule, *lines[1:-1], rule, lines[-1]]


def format_table(report: dict) -> str:
    """The per-layer table the CLI prints, its legend, the decisions and the totals, every
    line at most ``WIDTH`` characters."""
    lines = _aligned(table_rows(report))
    fusion = report["fusion"]
    text = [f"{len(report['layers'])} layers, "
            f"{sum(layer['macs'] for layer in report['layers']):,} MACs; fused groups: "
            f"{len(fusion['fused'])} (dw_pw {sum(f['kind'] == 'dw_pw' for f in fusion['fused'])}"
            f", pw_dw {sum(f['kind'] == 'pw_dw' for f in fusion['fused'])}); unfused DW: "
            f"{len(fusion['refused'])}"]
    text += _grouped("not fused", [(",".join(r["onnx_nodes"]), r["reason"])
                                   for r in fusion["refused"]])
    text += [f"  not fused: {r['layer']}: {r['reason']}" for r in fusion.get("split", [])]
    fallbacks = [layer["name"] for layer in report["layers"]
                 if layer.get("fallback") and layer["kind"] not in ("quantize", "dequantize")]
    if fallbacks:
        text.append(f"  not tiled (TVM fallback): {', '.join(fallbacks)}")
    text += plan_lines(report)
    text += float_lines(report.get("float_layers") or [])
    if report.get("check"):
        text += check_lines(report["check"])
    return "\n".join(lines + LEGEND.splitlines() + [w for t in text for w in _wrap(t)])


def _grouped(what: str, named_reasons: list[tuple]) -> list[str]:
    """One line per reason: how many, the names, the reason."""
    groups: dict = {}
    for name, reason in named_reasons:
        groups.setdefault(reason, []).append(name)
    return [f"  {what} ({len(names)}): {', '.join(names)}: {reason}" if len(names) > 1
            else f"  {what}: {names[0]}: {reason}" for reason, names in groups.items()]


def _wrap(line: str) -> list[str]:
    indent = " " * (len(line) - len(line.lstrip()) + 4)
    return textwrap.wrap(line, WIDTH, subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=False) or [line]


def unwrap(text: str) -> str:
    """The table's text with every line ``_wrap`` split joined back (a continuation is indented
    4 more than the line it continues): what to search for a whole reason or verdict."""
    out: list[str] = []
    head_indent = None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if out and head_indent is not None and line.strip() and indent == head_indent + 4:
            out[-1] += " " + line.strip()
            continue
        out.append(line)
        head_indent = indent
    return "\n".join(out)


def _measured_cycles(report: dict) -> dict:
    """Layer name -> cycles measured on GVSOC (the cluster timer), when a run measured them."""
    measured = report.get("measured") or {}
    if "source" not in measured:
        return {}
    return {row["name"]: row["cycles"] for row in measured["layers"]}


def plan_lines(report: dict) -> list[str]:
    """The planner's choices and the modelled totals against the usual deployment."""
    lines = []
    plan = report.get("layout_plan")
    if plan:
        pairs = [d for name, d in plan["layers"].items() if "+" in name]
        hwc = sum(layer.get("layouts", {}).get("output") == HWC for layer in report["layers"])
        lines.append(f"planner (--fusion {plan['fusion']} --layout {plan['policy']}): "
                     f"{sum(not d['split'] for d in pairs)} pair(s) fused, "
                     f"{sum(d['split'] for d in pairs)} split; {hwc} kernel output(s) HWC")
    base = report.get("baseline")
    if base:
        ours, theirs = report["totals"], base["totals"]

        def change(key):
            return f"{100.0 * (ours[key] - theirs[key]) / theirs[key]:+.1f}%" if theirs[key] \
                else "n/a"

        lines.append(f"modelled {ours['cycles_modelled']:,} cycles ({change('cycles_modelled')}), "
                     f"activation traffic {ours['act_bytes']:,} B ({change('act_bytes')}) vs "
                     f"the usual deployment (--fusion none --layout hwc --dma blocking): "
                     f"{theirs['cycles_modelled']:,} cycles, {theirs['act_bytes']:,} B")
    return lines


def float_lines(records: list[dict]) -> list[str]:
    """One line per (kind, reason) of the float layers: the names, then why."""
    groups: dict = {}
    for r in records:
        groups.setdefault((r["kind"], r["reason"]), []).append(r["name"])
    return [f"  still float, {kind} ({len(names)}): {', '.join(names)}: {reason}"
            for (kind, reason), names in groups.items()]


def check_lines(check: dict) -> list[str]:
    """What ``--check`` found, for people (the figures are in report.json's ``check``)."""
    if check.get("checked") is False:  # the integer reference cannot evaluate a node
        return [f"check vs the integer reference: NOT CHECKED: {check['not_checked']}"]
    verdict = "PASSED" if check["passed"] else "FAILED"
    if "exact" in check:  # int8: the integer reference and the spec decide
        exact = check["exact"]
        same = ("bit for bit equal" if exact.get("equal") else "NOT equal") \
            if exact["applicable"] else \
            f"exact comparison not applicable ({'; '.join(exact['reasons'])})"
        spec = check["spec"]
        lines = [f"check vs the integer reference: {same}; QDQ spec: {spec['layers']} layers, "
                 f"max {spec['max_step_diff']} step(s)"
                 + (f", failing {', '.join(spec['failing'])}" if spec["failing"] else "")
                 + f" -> {verdict}"]
        for o in check["onnxruntime"]["outputs"]:
            lines.append(f"  (information) vs {check['onnxruntime']['reference']}: "
                         f"{o['equal_fraction']:.4%} equal, {o['within_1_lsb_fraction']:.4%} "
                         f"within 1 LSB, max {o['max_lsb_err']} LSB")
        return lines
    detail = f"max abs err {check['max_abs_err']:.3g}, max rel err {check['max_rel_err']:.3g}"
    for o in check.get("float_outputs", []):  # check/float_outputs.py: final Sigmoid/Softmax
        if o and o.get("activation"):
            detail += (f"; {o['activation']} output vs exact {o['activation']} of the "
                       f"reference pre-activation: max rel err "
                       f"{o['max_elem_rel_err_vs_exact']:.3g}, "
                       f"{o['max_err_over_bound']:.3g} x its bound")
    return [f"check vs {check['reference']}: {detail} -> {verdict}"]
