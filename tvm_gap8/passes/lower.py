"""Lower each gap8 composite (any kernel family) to ONE scheduled TIR PrimFunc.

Shaped like ``tvm/relax/transform/fuse_transpose_matmul.py``: a ``PyExprMutator`` replaces
every call of a composite function by a ``call_tir`` of a PrimFunc built with TE and scheduled
with ``tvm.s_tir`` under a tile plan for the target's L1. Everything kind-specific comes from
the kernel family of the composite (``kernels.family_of``): its reader, tiling and schedule.

The PrimFunc carries ``gap8.*`` attributes (kind, layouts, tile, plan figures, epilogues) for
the report and the IR tests, and ``op_pattern = kOpaque`` so that no later fusion touches it.
Identical layers share one PrimFunc (as they would share code on the device); the ``call_tir``
of each layer carries, in its span, the layer name and ONNX nodes it stands for.
"""

from __future__ import annotations

from dataclasses import replace

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from ..errors import UnsupportedError
from ..ir.irutil import bindings, group_span, with_span
from ..kernels import family_of
from ..kernels.conv import CONV, hwc_weights
from ..kernels.layout import physical
from ..ir.placement import kernel_placement
from .compilation import Compilation
from ..target import GAP8, Gap8Target, gap8_enabled
from ..ir.vocab import (EPILOGUES_ATTR, INTEGER_ATTR, KIND_ATTR, LAYER_ATTR, LAYOUTS_ATTR,
                        MACS_ATTR, ONNX_NODES_ATTR, PLACEMENT_ATTR, PLAN_ATTR, PLAN_FIGURES_ATTR,
                        WORK_ATTR)
from ..cost.work import work_of

OPAQUE = 8  # tvm::relax::OpPatternKind::kOpaque


@tvm.transform.module_pass(opt_level=0, name="LowerFusedKernels")
class LowerFusedKernels:
    """Composite ``gap8.*`` calls -> ``call_tir`` of one tiled, L1-scoped PrimFunc each, each
    layer planned (costed) with its weights where the compilation's memory placement put them
    (``compilation.placement``, ``passes/place.py``; None: every weight in L2)."""

    def __init__(self, hw: Gap8Target = GAP8, compilation: Compilation | None = None):
        self.hw = hw
        # the layout plan (when a planner ran in the same compilation) is read from here
        self.compilation = compilation if compilation is not None else Compilation()

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if not gap8_enabled():
            return mod
        # plan every group first: a layer that cannot be tiled fails here, cleanly, before
        # the mutator has opened any block
        plan = self.compilation.layout_plan
        decisions = plan.layers if plan is not None else {}
        kernels = []
        for _, func in mod.functions_items():
            if isinstance(func, relax.Function) and not (func.attrs and "Composite" in func.attrs):
                for b in bindings(func):
                    call = b.value
                    if isinstance(call, relax.Call) and isinstance(call.op, relax.GlobalVar):
                        callee = mod[call.op]
                        if isinstance(callee, relax.Function) and callee.attrs is not None \
                                and KIND_ATTR in callee.attrs:
                            kernels.append((call, _plan_group(call, callee, self._placed,
                                                              self.compilation.plans,
                                                              decisions)))
        lowerer = _FusedLowerer(mod, kernels, self._placed)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function) and not (func.attrs and "Composite" in func.attrs):
                lowerer.builder_.update_func(gv, lowerer.visit_expr(func))
        out = lowerer.builder_.get()
        if mod.attrs is not None:  # keep the fusion record for the report
            for key, value in mod.attrs.items():
                out = out.with_attr(key, value)
        return relax.transform.DeadCodeElimination()(out)

    def _placed(self, layer: str) -> Gap8Target:
        """The target ``layer`` is planned and costed with: its weights, inputs and output
        where placed."""
        placement = self.compilation.placement
        if placement is None:
            return self.hw
        return self.hw.replace(**placement.memories(layer))


def _plan_group(call, func, placed, plans, decisions: dict) -> list:
    """The kernels a composite call lowers to, each (family, spec, tensors, plan, info): one,
    in the layouts the planner decided (its defaults without a plan), or the two convs of a
    fused pair the planner split (the first's output a new L2 tensor); tile plans from the
    compile's ``plans`` (``kernels.KernelPlans``), each on the target ``placed(layer)``."""
    family = family_of(str(func.attrs[KIND_ATTR]))
    info = {"layer": str(func.attrs.get(LAYER_ATTR, family.kind)),
            "onnx_nodes": [str(n) for n in func.attrs[ONNX_NODES_ATTR]]}
    hw = placed(info["layer"])
    spec, tensors = family.read(func, list(call.args), hw.requant)
    if min(spec.out_shape) < 1:
        raise UnsupportedError(f"layer {info['layer']}: output shape {spec.out_shape} is empty")
    decision = decisions.get(info["layer"])
    if decision is None or not spec.has_layouts():  # no plan, or a CHW-only family
        return [(family, spec, tensors, plans.plan(spec, hw, info["layer"]), info)]
    layouts = decision.layouts
    if not decision.split:
        spec = replace(spec, layouts=layouts[0])
        plan = plans.plan(spec, hw, info["layer"])
        if family is CONV:
            spec, tensors = hwc_weights(spec, plan, tensors)
        return [(family, spec, tensors, plan, info)]
    return _split(spec, tensors, layouts, info,
                  lambda k, layer: plans.plan(k, placed(layer), layer))


class Prev(int):
    """An argument of a split pair's kernel: the output of kernel number ``self`` of the pair."""


def _split(spec, tensors, layouts, info, plan_of) -> list:
    """A fused pair's kernels without fusion: the first conv [x, w1, p...], the integer ops
    between the convs (tables [value, table], products [value, value]) and the second conv
    [<its input value>, w2, p...] (``Prev(i)``: the output of kernel i), the ONNX nodes cut
    at each ``QuantizeLinear`` closing a value and at the second anchor; ``plan_of(spec,
    layer)``: a kernel's tile plan."""
    names = info["layer"].split("+")
    nodes = info["onnx_nodes"]
    cut = nodes.index(names[1]) if len(names) > 1 and names[1] in nodes else len(nodes)
    x, w1, w2, *rest = tensors
    chans, tables = rest[:len(spec.channel_shapes)], rest[len(spec.channel_shapes):]
    steps = spec.split_steps()
    parts, rest_nodes = _cut_nodes(nodes[:cut], len(steps) + 1)
    tail = rest_nodes + list(nodes[cut:])
    first, second = spec.split()
    out = []
    for i, (conv, epilogue) in enumerate(((first, spec.first_epilogue),
                                          (second, spec.second_epilogue))):
        used = sorted(epilogue.channels())
        args = [x if i == 0 else Prev(len(steps)), w1 if i == 0 else w2,
                *(chans[k] for k in used)]
        conv = replace(conv, layouts=layouts[0] if i == 0 else layouts[-1])
        part = {"layer": names[min(i, len(names) - 1)],
                "onnx_nodes": parts[0] if i == 0 else tail}
        out.append((CONV, conv, args, plan_of(conv, part["layer"]), part))
        if i == 0:
            for j, (st, kernel) in enumerate(zip(spec.mid_steps, steps)):
                kernel = replace(kernel, layouts=layouts[1 + j])
                args = [Prev(st.args[0]), tables[st.table]] if st.kind == "table" \
                    else [Prev(a) for a in st.args]
                part = {"layer": _main_node(parts[1 + j]) or f"{names[0]}_{st.describe()}{j}",
                        "onnx_nodes": parts[1 + j]}
                out.append((family_of(kernel.kind), kernel, args,
                            plan_of(kernel, part["layer"]), part))
    return out


def _cut_nodes(nodes, count: int) -> list:
    """``nodes`` (a pair's ONNX nodes before its second conv) as (``count`` parts, each ending
    at a ``QuantizeLinear``: the first conv's output, then each op between the convs; what
    follows the last: the second conv's dequantizes); all in the first part when they do not
    cut that way."""
    ends = [i for i, n in enumerate(nodes) if _base(n).endswith("QuantizeLinear")
            and not _base(n).endswith("DequantizeLinear")]
    if len(ends) != count:
        return [list(nodes)] + [[] for _ in range(count - 1)], []
    bounds = [0] + [e + 1 for e in ends] + [len(nodes)]
    parts = [list(nodes[a:b]) for a, b in zip(bounds, bounds[1:])]
    return parts[:count], parts[count]


def _base(node: str) -> str:
    return node.split("/")[0]


def _main_node(nodes) -> str | None:
    """The op a part computes: its first node that is no (De)QuantizeLinear."""
    return next((n for n in nodes if not _base(n).endswith(("QuantizeLinear",
                                                          "DequantizeLinear"))), None)


@mutator
class _FusedLowerer(PyExprMutator):  # pylint: disable=abstract-method
    def __init__(self, mod, kernels, placed):
        super().__init__(mod)
        self.kernels = kernels  # [(group call, (family, spec, tensors, plan, info))]
        self.placed = placed  # layer -> the target it was planned with

    def visit_call_(self, call: relax.Call) -> relax.Expr:  # pylint: disable=arguments-renamed
        for group_call, planned in self.kernels:
            if call.same_as(group_call):
                outs = []
                for i, kernel in enumerate(planned):
                    if outs:
                        outs[-1] = self.builder_.emit(outs[-1])
                    outs.append(self._lower(*kernel, outs))
                return outs[-1]
        return super().visit_call_(call)

    def _lower(self, family, spec, tensors, plan, info, outs=()):
        tensors = [outs[a] if isinstance(a, Prev) else self.visit_expr(a) for a in tensors]
        prim = family.schedule(spec, plan).with_attrs({
            INTEGER_ATTR: spec.integer,
            "op_pattern": OPAQUE,
            "tir.is_scheduled": True,
            KIND_ATTR: spec.kind,
            LAYOUTS_ATTR: spec.layouts.describe(),
            MACS_ATTR: plan.macs,  # executed: halo rows a fused kernel recomputes included
            WORK_ATTR: work_of(spec, plan),
            PLAN_ATTR: plan.tile(),
            PLAN_FIGURES_ATTR: plan.figures(),
            EPILOGUES_ATTR: spec.describe_epilogues(),
            PLACEMENT_ATTR: kernel_placement(self.placed(info["layer"]), plan.figures(),
                                             plan.weight_tile_bytes),
        })
        name = f"gap8_{spec.kind}_{_sanitize(info['layer'].split('+')[0])}"
        gv = self.builder_.add_func(prim, name)
        shape = spec.out_shape
        if len(shape) == 4:
            shape = physical(shape, spec.layouts.out)
        out_ty = relax.TensorType(shape, spec.out_dtype)
        call_tir = self.builder_.normalize(relax.call_tir(gv, tensors, out_ty))
        return with_span(call_tir, group_span(info))


def _sanitize(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
