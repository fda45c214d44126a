"""Why each depthwise conv left outside a fused group was not fused: the module attribute
``gap8.unfused_dw`` the report reads. With fusion disabled (``--no-fuse``) every DW is recorded
with that reason; otherwise the reason is the rule that refused a matched pair, or what the
graph shows (the DW's consumers, its producer).
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..ir.irutil import bindings
from ..kernels import patterns
from ..kernels.epilogue import SUPPORTED_OPS
from ..kernels.patterns import node as _node
from ..ir.vocab import KIND_ATTR, ONNX_NODES_ATTR, UNFUSED_ATTR
from .formation import refusals_of


def _users(func):
    users: dict = {}
    for b in bindings(func):
        for v in relax.analysis.free_vars(b.value) if not isinstance(b.value, relax.Var) else [b.value]:
            users.setdefault(v, []).append(b)
    return users


def _is_epilogue_op(value) -> bool:
    return isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) \
        and value.op.name in SUPPORTED_OPS


def _describe(value) -> str:
    if isinstance(value, relax.Call):
        if isinstance(value.op, tvm.ir.Op):
            op = value.op.name.replace("relax.", "")
        elif isinstance(value.op, relax.GlobalVar):
            op = value.op.name_hint
        else:
            op = "call"
        return f"{op} ({_node(value)})"
    return type(value).__name__


@tvm.transform.module_pass(opt_level=0, name="RecordUnfusedDepthwise")
def record_unfused_depthwise(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """After the fusion passes: store, in the module attribute ``gap8.unfused_dw``, every DW
    left outside a group and why (later passes turn the DW into a kernel of its own)."""
    return mod.with_attr(UNFUSED_ATTR, explain_unfused(mod))


FUSION_DISABLED = "fusion disabled (--no-fuse)"


@tvm.transform.module_pass(opt_level=0, name="RecordFusionDisabled")
def record_fusion_disabled(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """With fusion disabled (after the formation passes): every DW, as a conv kernel or left on
    TVM's op, is unfused because fusion is disabled."""
    return mod.with_attr(UNFUSED_ATTR, [{"onnx_nodes": nodes, "reason": FUSION_DISABLED}
                                        for nodes in _depthwise_layers(mod)])


def _is_dw_conv(v) -> bool:
    return isinstance(v, relax.Call) and isinstance(v.op, tvm.ir.Op) \
        and v.op.name == "relax.nn.conv2d" and patterns.is_depthwise_like(v)


def _depthwise_layers(mod):
    """The ONNX nodes of each depthwise layer of ``main``, in order: a ``gap8.conv`` composite
    around a DW, or a DW conv no family took."""
    for b in bindings(mod["main"]):
        v = b.value
        if _is_dw_conv(v):
            yield [_node(v)]
        elif isinstance(v, relax.Call) and isinstance(v.op, relax.GlobalVar):
            callee = mod[v.op]
            attrs = callee.attrs if isinstance(callee, relax.Function) else None
            if attrs is not None and str(attrs.get(KIND_ATTR, "")) == "conv" and \
                    any(_is_dw_conv(c.value) for c in bindings(callee)):
                yield [str(n) for n in attrs[ONNX_NODES_ATTR]]


def unfused_of(mod) -> list[dict]:
    if mod.attrs is None or UNFUSED_ATTR not in mod.attrs:
        return []
    return [{"onnx_nodes": [str(n) for n in r["onnx_nodes"]], "reason": str(r["reason"])}
            for r in mod.attrs[UNFUSED_ATTR]]


def explain_unfused(mod) -> list[dict]:
    """For every depthwise conv left outside a fused group in ``main``, say why."""
    func = mod["main"]
    users = _users(func)
    lookup = {b.var: b.value for b in bindings(func)}
    recorded = {tuple(r["onnx_nodes"]): r for r in refusals_of(mod)}
    out = []
    for b in bindings(func):
        v = b.value
        if not _is_dw_conv(v):
            continue
        dw = _node(v)
        # the DW is the first node of a refused dw_pw pair, the second of a pw_dw pair
        mine = {r["kind"]: r["reason"] for key, r in recorded.items()
                if key[0 if r["kind"] == "dw_pw" else -1] == dw}
        # each direction: the rule that refused a matched pair, or what the graph shows
        forward = mine.get("dw_pw") or _explain_forward(b, users, lookup)
        backward = mine.get("pw_dw") or _explain_backward(v, func)
        if backward and backward != forward:
            backward = backward if backward.startswith("producer") else f"producer: {backward}"
        reasons = [r for r in (forward, backward) if r]
        out.append({"onnx_nodes": [dw], "reason": "; ".join(dict.fromkeys(reasons)) or
                    "no fusable neighbour"})
    return out


_PASS_THROUGH = {"relax.quantize", "relax.dequantize"}  # QDQ around an elementwise chain
_CONSTANT_MAKERS = {"relax.reshape", "relax.dequantize", "relax.permute_dims"}


def _constant_derived(e, lookup, depth=0) -> bool:
    """A constant, or a reshape/dequantize of one (what a QDQ model's bias looks like)."""
    if not isinstance(e, relax.Var):
        return True
    value = lookup.get(e)
    if value is None or depth > 4:
        return False
    if isinstance(value, tvm.ir.expr.GenericConst):
        return True
    return isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and \
        value.op.name in _CONSTANT_MAKERS and \
        all(_constant_derived(a, lookup, depth + 1) for a in value.args)


def _is_elementwise_step(value, closure, lookup) -> bool:
    if not isinstance(value, relax.Call):
        return False
    elementwise = _is_epilogue_op(value) or (isinstance(value.op, tvm.ir.Op)
                                             and value.op.name in _PASS_THROUGH)
    return elementwise and all(a in closure or _constant_derived(a, lookup)
                               for a in value.args)


def _epilogue_closure(binding, users, lookup=None):
    """The elementwise ops fed (only) by the DW output and constants: its epilogue; and its
    frontier, the other consumers, in the function's binding order (deterministic)."""
    lookup = lookup or {}
    closure = {binding.var: None}  # insertion-ordered
    changed = True
    while changed:
        changed = False
        for var in list(closure):
            for u in users.get(var, []):
                if u.var not in closure and _is_elementwise_step(u.value, closure, lookup):
                    closure[u.var] = None
                    changed = True
    frontier = {u.var: u for var in closure for u in users.get(var, []) if u.var not in closure}
    order = {v: i for i, v in enumerate(lookup)}
    return closure, sorted(frontier.values(), key=lambda u: order.get(u.var, len(order)))


def _explain_forward(binding, users, lookup=None) -> str | None:
    problem = patterns.depthwise_problem(binding.value) or patterns.dtype_problem(binding.value)
    if problem:
        return problem
    closure, frontier = _epilogue_closure(binding, users, lookup)
    outputs = [u for u in frontier if isinstance(u.value, relax.Var)]  # `gv = lv`: the output
    convs = [u for u in frontier if isinstance(u.value, relax.Call)
             and isinstance(u.value.op, tvm.ir.Op) and u.value.op.name == "relax.nn.conv2d"]
    others = [u for u in frontier if u not in convs and u not in outputs]
    non_elementwise = [u for u in others if not _is_epilogue_op(u.value)]
    if non_elementwise:
        return _non_elementwise_reason(non_elementwise[0].value, frontier, bool(convs))
    if len(frontier) > 1:
        return (f"the DW output has {len(frontier)} consumers "
                f"({', '.join(_describe(u.value) for u in frontier)}), DW->PW needs exactly one")
    if not convs:
        return "the DW output is a graph output (no PW follows it)"
    return patterns.pointwise_problem(convs[0].value) or _between_problem(closure, lookup)


def _squeeze_excite(frontier) -> bool:
    """The DW output feeds a global mean (the squeeze) and a multiply (the excitation's gate)."""
    ops = {u.value.op.name for u in frontier if isinstance(u.value, relax.Call)
           and isinstance(u.value.op, tvm.ir.Op)}
    return "relax.mean" in ops and "relax.multiply" in ops


def _non_elementwise_reason(op, frontier, pw_follows: bool) -> str:
    """Why a DW whose output (after its elementwise ops) reaches ``op``, no elementwise op
    nor a conv, has no PW to fuse with: the op, every consumer, and which structure it is."""
    feeds = ", ".join(_describe(u.value) for u in frontier)
    if _squeeze_excite(frontier):
        return (f"a non-elementwise op, {_describe(op)}, reads the DW output: a squeeze-excite "
                f"(pool and gate multiply) sits between the DW and the PW (the DW output "
                f"feeds {feeds})")
    where = "besides the PW" if pw_follows else "and no PW reads it"
    return (f"a non-elementwise op, {_describe(op)}, reads the DW output {where} (the DW "
            f"output feeds {feeds}): DW->PW needs its only consumer to be a PW, through "
            f"elementwise ops")


def _between_problem(closure, lookup) -> str:
    """DW -> elementwise ops -> a PW the rules accept, yet no pattern matched: say what sits
    between them (in an int8 model, an activation quantized on its own)."""
    ops = [lookup[v] for v in list(closure)[1:] if v in lookup]
    named = [v for v in ops if isinstance(v, relax.Call) and isinstance(v.op, tvm.ir.Op)]
    quantizes = [v for v in named if v.op.name == "relax.quantize"]
    acts = [v for v in named if v.op.name not in _PASS_THROUGH]
    chain = ", ".join(_describe(v) for v in acts) or "none"
    if len(quantizes) > 1:  # the DW's own stage (bias) ends at its quantize
        after = named[named.index(quantizes[0]) + 1:]
        chain = ", ".join(_describe(v) for v in after if v.op.name not in _PASS_THROUGH)
        return (f"an int8 activation chain quantized on its own ({chain}; {len(quantizes)} "
                f"quantize steps) sits between the DW and the PW: the int8 fused kernels take "
                f"a one-tensor table chain (one or two tables) or x * tables(x) there, not this chain")
    if len(acts) > patterns.CHAIN_DEPTH:
        return (f"the elementwise chain between the DW and the PW ({len(acts)} ops: {chain}) "
                f"is deeper than the fusion patterns match ({patterns.CHAIN_DEPTH} steps)")
    return f"no fusion pattern matched the ops between the DW and the PW ({chain})"


def _explain_backward(dw, func) -> str | None:
    """Why no PW -> DW pair formed on the DW's input side: the PW producing it breaks a rule,
    or sits behind ops (an int8 activation quantized step by step) no pattern matched."""
    lookup = {b.var: b.value for b in bindings(func)}
    ops, convs, seen, stack = [], [], set(), [dw.args[0]]
    while stack and len(seen) < 4 * patterns.CHAIN_DEPTH:
        cur = stack.pop()
        if not isinstance(cur, relax.Var) or cur in seen or cur not in lookup:
            continue
        seen.add(cur)
        val = lookup[cur]
        if not (isinstance(val, relax.Call) and isinstance(val.op, tvm.ir.Op)):
            continue
        if val.op.name == "relax.nn.conv2d":
            convs.append(val)
        elif _is_epilogue_op(val) or val.op.name in _PASS_THROUGH:
            ops.append(val)
            stack += [a for a in val.args if not _constant_derived(a, lookup)]
    if len(convs) != 1:
        return None  # not a PW -> elementwise -> DW side
    problem = patterns.pointwise_problem(convs[0])
    if problem:
        return f"producer: {problem}"
    quantizes = sum(v.op.name == "relax.quantize" for v in ops)
    own = _node(convs[0])  # the PW's bias add is its own
    chain = ", ".join(_describe(v) for v in reversed(ops)
                      if v.op.name not in _PASS_THROUGH and _node(v) != own)
    if quantizes <= 2 and not chain:
        return None  # PW -> DW directly: a rule of the pair (recorded) or the policy decided
    return (f"producer: the PW {_node(convs[0])} reaches the DW through ops no PW->DW pattern "
            f"matched ({chain or 'quantize/dequantize'}; {quantizes} quantize steps): the "
            f"int8 fused kernels take a one-tensor table chain (one or two tables) or "
            f"x * tables(x) there")
