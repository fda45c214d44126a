"""Lower each gap8 composite (``dw_pw``, ``pw_dw``, ``conv``) to ONE scheduled TIR PrimFunc.

Shaped like ``tvm/relax/transform/fuse_transpose_matmul.py``: a ``PyExprMutator`` replaces
every call of a composite function by a ``call_tir`` of a PrimFunc built with TE and scheduled
with ``tvm.s_tir`` under a tile plan for the target's L1. The composite's body is read into conv
stages (``extract.py``): float epilogues are computed exactly as the Relax ops wrote them, QDQ
stages become integer arithmetic with requantization.

The PrimFunc carries ``gap8.*`` attributes (kind, layouts, tile plan, L1 buffers, epilogues) for
the report and the IR tests, and ``op_pattern = kOpaque`` so that no later fusion touches it.
Identical layers share one PrimFunc (as they would share code on the device); the ``call_tir``
of each layer carries, in its span, the layer name and ONNX nodes it stands for.
"""

from __future__ import annotations

import json

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from ..errors import UnsupportedError
from ..irutil import bindings, group_span, with_span
from ..kernels.conv import ConvKernelSpec, schedule_conv
from ..kernels.fused import LAYOUTS, FusedKernelSpec, build_fused
from ..kernels.tiling import choose_plan, plan_conv, plan_fused
from ..target import GAP8, Gap8Target, gap8_enabled
from ..kernels.dense import DenseKernelSpec, plan_dense, schedule_dense
from ..kernels.eltwise import AddKernelSpec, plan_add, schedule_add
from ..kernels.pool import PoolKernelSpec, plan_pool, schedule_pool
from ..kernels.lut import (LutKernelSpec, MulKernelSpec, plan_lut, plan_mul, schedule_lut,
                             schedule_mul)
from .extract import conv_geom, read_composite, read_layer, read_lut, read_mul

OPAQUE = 8  # tvm::relax::OpPatternKind::kOpaque


def _common(kernel):
    first = kernel.stages[0]
    return dict(
        channel_shapes=tuple(kernel.channel_shapes),
        channel_dtypes=tuple(kernel.channel_dtypes),
        dtype=str(kernel.x.ty.dtype),
        in_zp=first.in_zp,
        w_dtype=str(first.weight.dtype))


def spec_from_composite(func: relax.Function, args):
    """(spec, call_tir tensor arguments) of a gap8 composite called with ``args``."""
    kind = str(func.attrs["gap8.kind"])
    if kind in ("add", "pool", "dense"):
        return read_layer(kind, func, args)
    if kind == "lut":
        return read_lut(func, args)
    if kind == "mul":
        return read_mul(func, args)
    kernel = read_composite(func, args)
    stages = kernel.stages
    if kind in ("dw_pw", "pw_dw"):
        spec = fused_spec(kind, kernel)
        weights = [stages[0].weight, stages[1].weight]
    else:
        (stage,) = stages
        geom = conv_geom(stage.conv)
        groups = stage.groups
        x_shape = tuple(int(v) for v in kernel.x.ty.shape.values)
        sub = "dw" if groups > 1 and groups == x_shape[1] else \
            "pw" if geom.kernel == 1 and groups == 1 else "conv"
        spec = ConvKernelSpec(in_shape=x_shape, geom=geom, groups=groups,
                              epilogue=kernel.epilogues[0], kind=sub, **_common(kernel))
    tensors = [kernel.x, *[relax.const(w) for w in weights]] if kind != "conv" else \
        [kernel.x, relax.const(stages[0].weight)]
    return spec, tensors + kernel.channel_tensors


def fused_spec(kind: str, kernel) -> FusedKernelSpec:
    """The spec of a ``dw_pw`` / ``pw_dw`` group read by ``read_composite``."""
    stages = kernel.stages
    if len(stages) != 2:
        raise UnsupportedError(f"{kind} group with {len(stages)} convs")
    if stages[0].integer != stages[1].integer:
        raise UnsupportedError(f"{kind} group mixing integer and float stages")
    return FusedKernelSpec(
        kind=kind, in_shape=tuple(int(v) for v in kernel.x.ty.shape.values),
        first=conv_geom(stages[0].conv), second=conv_geom(stages[1].conv),
        first_epilogue=kernel.epilogues[0], second_epilogue=kernel.epilogues[1],
        layouts=dict(LAYOUTS[kind]), mid_zp=stages[1].in_zp, **_common(kernel))


_KERNELS = {  # spec type -> (tile plan maker, schedule)
    ConvKernelSpec: (plan_conv, schedule_conv),
    AddKernelSpec: (plan_add, schedule_add),
    PoolKernelSpec: (plan_pool, schedule_pool),
    DenseKernelSpec: (plan_dense, schedule_dense),
    LutKernelSpec: (plan_lut, schedule_lut),
    MulKernelSpec: (plan_mul, schedule_mul),
}


def _plan(spec, hw, layer):
    if isinstance(spec, FusedKernelSpec):
        return plan_fused(spec, hw, layer)
    return choose_plan(spec, hw, layer, _KERNELS[type(spec)][0])


def _build(spec, plan):
    if isinstance(spec, FusedKernelSpec):
        return build_fused(spec, plan)
    return _KERNELS[type(spec)][1](spec, plan)


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
                                and "gap8.kind" in callee.attrs:
                            kernels.append((call, _plan_group(call, callee, self.hw)))
        lowerer = _FusedLowerer(mod, kernels)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function) and not (func.attrs and "Composite" in func.attrs):
                lowerer.builder_.update_func(gv, lowerer.visit_expr(func))
        out = lowerer.builder_.get()
        if mod.attrs is not None:  # keep the fusion record for the report
            for key, value in mod.attrs.items():
                out = out.with_attr(key, value)
        return relax.transform.DeadCodeElimination()(out)


def _plan_group(call, func, hw):
    spec, tensors = spec_from_composite(func, list(call.args))
    info = {"layer": str(func.attrs.get("gap8.layer", func.attrs["gap8.kind"])),
            "onnx_nodes": [str(n) for n in func.attrs["gap8.onnx_nodes"]]}
    if min(spec.out_shape) < 1:
        raise UnsupportedError(f"layer {info['layer']}: output shape {spec.out_shape} is empty")
    return spec, tensors, _plan(spec, hw, info["layer"]), info


@mutator
class _FusedLowerer(PyExprMutator):  # pylint: disable=abstract-method
    def __init__(self, mod, kernels):
        super().__init__(mod)
        self.kernels = kernels  # [(group call, (spec, tensors, plan, info))]

    def visit_call_(self, call: relax.Call) -> relax.Expr:  # pylint: disable=arguments-renamed
        for group_call, planned in self.kernels:
            if call.same_as(group_call):
                return self._lower(*planned)
        return super().visit_call_(call)

    def _lower(self, spec, tensors, plan, info):
        tensors = [self.visit_expr(a) for a in tensors]
        prim = _build(spec, plan)
        epilogues = [spec.first_epilogue, spec.second_epilogue] \
            if isinstance(spec, FusedKernelSpec) else \
            [spec.epilogue] if hasattr(spec, "epilogue") else []
        prim = prim.with_attrs({
            "gap8.integer": _is_integer(spec),
            "op_pattern": OPAQUE,
            "tir.is_scheduled": True,
            "gap8.kind": spec.kind,
            "gap8.layouts": dict(getattr(spec, "layouts", None) or
                                 {"input": "CHW", "output": "CHW"}),
            "gap8.macs": spec.macs(),
            "gap8.plan": json.dumps(plan.to_dict(), sort_keys=True),
            "gap8.l1_buffers": json.dumps([[b.name, b.role, b.bytes] for b in plan.buffers]),
            "gap8.plan_l1_bytes": plan.l1_bytes,
            "gap8.plan_traffic": json.dumps({
                "l2_to_l1_act": plan.l2_to_l1_act, "l1_to_l2_act": plan.l1_to_l2_act,
                "l2_to_l1_wgt": plan.l2_to_l1_wgt, "dma_transfers": plan.dma_transfers},
                sort_keys=True),
            "gap8.plan_cycles": int(round(plan.cycles)),
            "gap8.epilogues": [e.describe() for e in epilogues],
        })
        name = f"gap8_{spec.kind}_{_sanitize(info['layer'].split('+')[0])}"
        gv = self.builder_.add_func(prim, name)
        out_ty = relax.TensorType(spec.out_shape, spec.out_dtype)
        call_tir = self.builder_.normalize(relax.call_tir(gv, tensors, out_ty))
        return with_span(call_tir, group_span(info))


def _is_integer(spec) -> bool:
    return not str(spec.out_dtype).startswith("float")


def _sanitize(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
