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

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from ..errors import UnsupportedError
from ..irutil import bindings, group_span, with_span
from ..kernels import family_of
from ..kernels.tiling import weights_placement
from ..target import GAP8, Gap8Target, gap8_enabled
from ..vocab import (EPILOGUES_ATTR, INTEGER_ATTR, KIND_ATTR, LAYER_ATTR, LAYOUTS_ATTR, MACS_ATTR,
                     ONNX_NODES_ATTR, PLACEMENT_ATTR, PLAN_ATTR, PLAN_FIGURES_ATTR)

OPAQUE = 8  # tvm::relax::OpPatternKind::kOpaque


@tvm.transform.module_pass(opt_level=0, name="LowerFusedKernels")
class LowerFusedKernels:
    """Composite ``gap8.*`` calls -> ``call_tir`` of one tiled, L1-scoped PrimFunc each."""

    def __init__(self, hw: Gap8Target = GAP8):
        self.hw = hw

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if not gap8_enabled():
            return mod
        # plan every group first: a layer that cannot be tiled fails here, cleanly, before
        # the mutator has opened any block
        kernels = []
        for _, func in mod.functions_items():
            if isinstance(func, relax.Function) and not (func.attrs and "Composite" in func.attrs):
                for b in bindings(func):
                    call = b.value
                    if isinstance(call, relax.Call) and isinstance(call.op, relax.GlobalVar):
                        callee = mod[call.op]
                        if isinstance(callee, relax.Function) and callee.attrs is not None \
                                and KIND_ATTR in callee.attrs:
                            kernels.append((call, _plan_group(call, callee, self.hw)))
        lowerer = _FusedLowerer(mod, kernels, self.hw)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function) and not (func.attrs and "Composite" in func.attrs):
                lowerer.builder_.update_func(gv, lowerer.visit_expr(func))
        out = lowerer.builder_.get()
        if mod.attrs is not None:  # keep the fusion record for the report
            for key, value in mod.attrs.items():
                out = out.with_attr(key, value)
        return relax.transform.DeadCodeElimination()(out)


def _plan_group(call, func, hw):
    family = family_of(str(func.attrs[KIND_ATTR]))
    spec, tensors = family.read(func, list(call.args))
    info = {"layer": str(func.attrs.get(LAYER_ATTR, family.kind)),
            "onnx_nodes": [str(n) for n in func.attrs[ONNX_NODES_ATTR]]}
    if min(spec.out_shape) < 1:
        raise UnsupportedError(f"layer {info['layer']}: output shape {spec.out_shape} is empty")
    return family, spec, tensors, family.plan(spec, hw, info["layer"]), info


@mutator
class _FusedLowerer(PyExprMutator):  # pylint: disable=abstract-method
    def __init__(self, mod, kernels, hw):
        super().__init__(mod)
        self.kernels = kernels  # [(group call, (family, spec, tensors, plan, info))]
        self.hw = hw

    def visit_call_(self, call: relax.Call) -> relax.Expr:  # pylint: disable=arguments-renamed
        for group_call, planned in self.kernels:
            if call.same_as(group_call):
                return self._lower(*planned)
        return super().visit_call_(call)

    def _lower(self, family, spec, tensors, plan, info):
        tensors = [self.visit_expr(a) for a in tensors]
        prim = family.schedule(spec, plan).with_attrs({
            INTEGER_ATTR: spec.integer,
            "op_pattern": OPAQUE,
            "tir.is_scheduled": True,
            KIND_ATTR: spec.kind,
            LAYOUTS_ATTR: spec.layouts.describe(),
            MACS_ATTR: spec.macs(),
            PLAN_ATTR: plan.tile(),
            PLAN_FIGURES_ATTR: plan.figures(),
            EPILOGUES_ATTR: spec.describe_epilogues(),
            PLACEMENT_ATTR: weights_placement(plan, self.hw),
        })
        name = f"gap8_{spec.kind}_{_sanitize(info['layer'].split('+')[0])}"
        gv = self.builder_.add_func(prim, name)
        out_ty = relax.TensorType(spec.out_shape, spec.out_dtype)
        call_tir = self.builder_.normalize(relax.call_tir(gv, tensors, out_ty))
        return with_span(call_tir, group_span(info))


def _sanitize(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
