"""The network planner: each L2 tensor's layout (CHW / HWC), each fused pair's fusion (fused, or
split into its two convs) and each kernel's variant (the layouts of its L1 tiles) and tile,
minimising the total modelled cycles.

Runs after formation (the fused pairs the rules and L1 allow are composites), before lowering,
which reads the decisions (a ``LayoutPlan``, by layer) from the ``Compilation`` the two passes
share. Every kernel's cost under a choice is its family's tile plan (``Compilation.plans``: the
tile search under the cycle model, memoised for the compile), so the planner and the tiler never
disagree.

Dynamic programming over the kernels in binding order: the state is the layout of every tensor
produced and not yet consumed (residual branches keep theirs across the branch); a kernel's
transition picks its output tensor's layout and, for that and its inputs' layouts, its cheapest
variant. Deterministic: states and choices are visited in a fixed order, ties keep the first.
A tensor read or written by anything but a layout-capable kernel (model inputs and outputs, ops
left to TVM) is CHW. Policies: ``auto`` (the search), ``chw`` (every tensor and tile CHW: the
kernels' defaults), ``hwc`` (every free tensor HWC, DW tiles CHW through a transposing copy and
other tiles HWC: the usual deployment, DORY's).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import tvm
from tvm import relax

from ..errors import TilingError
from ..ir.irutil import bindings
from ..kernels import KernelPlans, family_of
from ..kernels.layout import KernelLayouts
from ..kernels.pw_dw_pw import ChainKernelSpec, chain_alternatives
from ..progress import step
from ..ir.vocab import CHW, HWC, KIND_ATTR, LAYER_ATTR
from .compilation import Compilation
from .layout_plan import Alternative, LayerDecision, LayoutPlan

LAYOUT_POLICIES = ("auto", "chw", "hwc")
MAX_FRONTIER = 10  # live tensors a DP state may hold (2**10 states); beyond: CHW, noted


@dataclass
class Node:
    """One kernel of the network (a composite call): its inputs and output as Relax vars."""

    layer: str
    kind: str
    spec: object
    inputs: list  # activation Relax vars read
    output: object  # the Relax var bound
    rule: str = "fixed"  # the family's layout rule
    options: dict = field(default_factory=dict)  # (in layout, out layout) -> [Option], best first


@dataclass(frozen=True)
class Option:
    """One way to run a kernel: fused (one spec) or split (two convs, with the integer ops
    between them as kernels of their own, the intermediates in L2), with its layouts (one per
    kernel) and modelled cycles."""

    cycles: float
    layouts: tuple  # KernelLayouts per kernel spec (one, or two when split)
    split: bool = False

    def describe(self) -> str:
        if self.split:
            return "split " + " | ".join(lay.name() for lay in self.layouts)
        return self.layouts[0].name()


@dataclass(frozen=True)
class _Costing:
    """Prices kernel specs on ``hw`` by their tile plans, memoised in the compile's ``plans``."""

    hw: object
    plans: KernelPlans

    def cycles(self, spec) -> float:
        """The modelled cycles of ``spec``'s plan, infinite when it fits no tile."""
        try:
            return self.plans.plan(spec, self.hw).cycles
        except TilingError:
            return math.inf


def plan_network(mod: tvm.IRModule, hw, policy: str = "auto", fusion: str = "auto",
                 plans: KernelPlans | None = None) -> LayoutPlan:
    """The decision for every kernel of ``mod``'s main (see the module docstring); ``plans``:
    the compile's tile plans (a fresh memo when None)."""
    cost = _Costing(hw, plans if plans is not None else KernelPlans())
    func = mod["main"]
    nodes, forced = _nodes(mod, func, hw.requant)
    if policy == "chw":
        forced |= {n.output for n in nodes}
    for node in nodes:  # the costly part: every variant of every kernel tiled and priced
        with step(f"  planning {node.layer}", announce=False):
            node.options = _options(node, cost, policy, fusion)
    total, choice, capped = _search(nodes, forced, cost, policy)
    note = (f"output kept CHW: more than {MAX_FRONTIER} tensors live at once, the search does "
            "not choose its layout")
    decisions = {n.layer: _decision(n, choice[n.layer], note if n.layer in capped else "",
                                    cost, policy) for n in nodes}
    return LayoutPlan(policy, fusion, int(round(total)), decisions)


def _nodes(mod, func, requant: str):
    """The kernels in binding order, and the tensors fixed to CHW."""
    nodes, users = [], {}
    for b in bindings(func):
        node = _kernel_node(mod, b, requant)
        if node is not None:
            nodes.append(node)
        for v in node.inputs if node is not None else relax.analysis.free_vars(b.value):
            users.setdefault(v, []).append(node)  # None: read by something not a kernel
    outputs = set(relax.analysis.free_vars(func.body.body))
    forced = {n.output for n in nodes
              if n.rule == "fixed" or n.output in outputs or not users.get(n.output)
              or any(r is None or r.rule == "fixed" for r in users[n.output])}
    return nodes, forced


def _kernel_node(mod, binding, requant: str):
    """The Node of a binding that calls a gap8 composite (read with requantization mode
    ``requant``), else None."""
    call = binding.value
    if not isinstance(call, relax.Call) or not isinstance(call.op, relax.GlobalVar):
        return None
    callee = mod[call.op]
    if callee.attrs is None or KIND_ATTR not in callee.attrs:
        return None
    family = family_of(str(callee.attrs[KIND_ATTR]))
    spec, tensors = family.read(callee, list(call.args), requant)
    rule = family.layout_rule if len(spec.out_shape) == 4 else "fixed"
    return Node(str(callee.attrs.get(LAYER_ATTR, family.kind)), spec.kind, spec,
                [t for t in tensors if isinstance(t, relax.Var)], binding.var, rule)


def _tiles(kind: str, policy: str):
    """L1 tile layouts a kernel may use under ``policy``."""
    if policy == "chw":
        return (None,)  # the kernel's default
    if policy == "hwc":
        return ((CHW,) if kind == "dw" else (HWC,))
    return (CHW, HWC)


def _options(node, cost, policy, fusion):
    """(in, out) -> options sorted by cycles, for every layout pair the node may see."""
    layouts = (CHW,) if node.rule == "fixed" else (CHW, HWC)
    out = {}
    for src, dst in itertools.product(layouts, layouts):
        opts = _variants(node, cost, policy, fusion, src, dst)
        if opts:
            out[(src, dst)] = sorted(opts, key=lambda o: o.cycles)
    return out


def _variants(node, cost, policy, fusion, src, dst):
    """The options of ``node`` reading its inputs in ``src`` and writing ``dst``, by its
    family's ``layout_rule``."""
    spec, rule = node.spec, node.rule
    if rule == "fixed":
        return [Option(cost.cycles(spec), (KernelLayouts(),))] if src == dst == CHW else []
    if rule == "fused":
        return _fused_variants(spec, cost, policy, fusion, src, dst)
    if rule == "conv":
        lays = _conv_layouts(spec, policy, src, dst)
    elif rule == "elementwise":
        lays = [KernelLayouts(src, src, dst)] if src == dst else []
    else:  # reduce: the input staged as stored, the output in either layout
        lays = [KernelLayouts(src, src, dst)]
    return [Option(cost.cycles(replace(spec, layouts=lay)), (lay,)) for lay in lays]


def _conv_layouts(spec, policy, src, dst):
    out = []
    for tile in _tiles(spec.kind, policy):
        out.append(KernelLayouts(src, src if tile is None else tile, dst))
    return out


def _fused_variants(spec, cost, policy, fusion, src, dst):
    opts = []
    mids = (spec.layouts.mid,) if policy == "chw" else (CHW, HWC)
    for tile, mid in itertools.product(_tiles(spec.kind, policy), mids):
        lay = KernelLayouts(src, src if tile is None else tile, dst, mid)
        opts.append(Option(cost.cycles(replace(spec, layouts=lay)), (lay,)))
    if fusion == "auto":
        opts += _split_variants(spec, cost, policy, src, dst)
    return opts


def _split_variants(spec, cost, policy, src, dst):
    """The pair as the kernels it is without fusion: the first conv, the integer ops between
    the convs (``spec.split_steps``: tables, products; each its own elementwise kernel, the
    intermediate in one layout ``mid``) and the second conv; one option per ``mid``."""
    first, second = spec.split()
    steps = spec.split_steps()
    opts = []
    for mid in ((CHW,) if policy == "chw" else (HWC,) if policy == "hwc" else (CHW, HWC)):
        a = min(_conv_layouts(first, policy, src, mid),
                key=lambda lay: cost.cycles(replace(first, layouts=lay)))
        b = min(_conv_layouts(second, policy, mid, dst),
                key=lambda lay: cost.cycles(replace(second, layouts=lay)))
        between = KernelLayouts(mid, mid, mid)
        cycles = (cost.cycles(replace(first, layouts=a))
                  + sum(cost.cycles(replace(st, layouts=between)) for st in steps)
                  + cost.cycles(replace(second, layouts=b)))
        opts.append(Option(cycles, (a, *(between for _ in steps), b), split=True))
    return opts


def _search(nodes, forced, cost, policy):
    """Dynamic programming over ``nodes`` in order; returns (total cycles, {layer: (in, out)}).
    Under ``hwc`` the objective is (free tensors left CHW, cycles): HWC wherever the graph
    allows (a residual add joining a CHW-fixed tensor keeps its branch CHW)."""
    last_use = {}
    for i, n in enumerate(nodes):
        for v in n.inputs:
            last_use[v] = i
    states = {(): ((0, 0.0), {})}  # (var index, layout) pairs -> ((CHW count, cycles), choices)
    ids = {n.output: i for i, n in enumerate(nodes)}
    capped = []
    for i, node in enumerate(nodes):
        nxt = {}
        if node.output not in forced and all(len(st) >= MAX_FRONTIER for st in states):
            capped.append(node.layer)
        for state, (so_far, choices) in states.items():
            env = dict(state)
            src = _input_layout(node, env, ids)
            for dst in _out_layouts(node, forced, len(state)):
                opts = node.options.get((src, dst)) if src else None
                if not opts or math.isinf(opts[0].cycles):
                    continue
                new = {k: v for k, v in env.items() if last_use.get(nodes[k].output, -1) > i}
                if node.output in last_use:
                    new[i] = dst
                key = tuple(sorted(new.items()))
                unwanted = policy == "hwc" and dst == CHW and node.output not in forced
                total = (so_far[0] + unwanted, so_far[1] + opts[0].cycles)
                if key not in nxt or total < nxt[key][0]:
                    nxt[key] = (total, {**choices, node.layer: (src, dst)})
        if not nxt:  # no variant of this kernel fits: the tiler says why, naming the layer
            cost.plans.plan(node.spec, cost.hw, node.layer)
            raise TilingError(f"layer {node.layer}: no layout of its tensors can be planned")
        states = nxt
    (_, cycles), choices = min(states.values(), key=lambda s: s[0])
    return cycles, choices, capped


def _input_layout(node, env, ids):
    """The layout all of ``node``'s activation inputs share, None if they differ."""
    seen = {env.get(ids[v], CHW) if v in ids else CHW for v in node.inputs}
    if len(seen) > 1:
        return None
    return seen.pop() if seen else CHW


def _out_layouts(node, forced, frontier: int):
    """The layouts ``node``'s output tensor may take: CHW when fixed (or the state is full)."""
    if node.output in forced or frontier >= MAX_FRONTIER:
        return (CHW,)
    return (CHW, HWC)


def _decision(node, io, note: str, cost, policy: str) -> LayerDecision:
    src, dst = io
    best = node.options[(src, dst)][0]
    alternatives = tuple(Alternative(o.describe(), s, d, int(round(o.cycles)))
                         for (s, d), os_ in sorted(node.options.items()) for o in os_
                         if not math.isinf(o.cycles))
    if isinstance(node.spec, ChainKernelSpec):  # the block without the chain, for the report
        chosen = replace(node.spec, layouts=best.layouts[0])
        alternatives += tuple(
            Alternative(f"without the chain: {name}", src, dst, int(round(c)))
            for name, c in chain_alternatives(chosen, cost.hw, policy, cost.plans)
            if math.isfinite(c))
    return LayerDecision(tuple(best.layouts), best.split, int(round(best.cycles)), alternatives,
                         note)


@tvm.transform.module_pass(opt_level=0, name="PlanLayouts")
class PlanLayouts:
    """Plan the network's layouts and record the ``LayoutPlan`` on ``compilation`` (the
    compile's shared records, ``passes.compilation.Compilation``) for the lowering and the
    report; the module itself is unchanged."""

    def __init__(self, hw, policy: str = "auto", fusion: str = "auto", compilation=None):
        if policy not in LAYOUT_POLICIES:
            raise ValueError(f"layout policy {policy!r}: one of {', '.join(LAYOUT_POLICIES)}")
        self.hw, self.policy, self.fusion = hw, policy, fusion
        self.compilation = compilation if compilation is not None else Compilation()

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        self.compilation.layout_plan = plan_network(mod, self.hw, self.policy, self.fusion,
                                                    self.compilation.plans)
        return mod
