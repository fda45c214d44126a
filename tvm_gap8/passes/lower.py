"""Lower each ``gap8.dw_pw`` / ``gap8.pw_dw`` composite to ONE scheduled TIR PrimFunc.

Shaped like ``tvm/relax/transform/fuse_transpose_matmul.py``: a ``PyExprMutator`` replaces
every call of a composite function by a ``call_tir`` of a PrimFunc built with TE and scheduled
with ``tvm.s_tir`` (``schedules/fused.py``) under a tile plan for the target's L1
(``schedules/plan.py``). The composite's body is read into a ``FusedKernelSpec``: conv
geometry, and the elementwise ops between and after the convs as ``Epilogue`` programs, so the
kernel computes exactly what the Relax ops did.

The PrimFunc carries ``gap8.*`` attributes (kind, layouts, tile plan, epilogues) for the
report and the IR tests, and ``op_pattern = kOpaque`` so that no later fusion touches it.
Identical layers share one PrimFunc (as they would share code on the device); the ``call_tir``
of each layer carries, in its span, the layer name and ONNX nodes it stands for.
"""

from __future__ import annotations

import json

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from ..errors import UnsupportedError
from ..irutil import bindings, group_info, group_span, with_span
from ..schedules.epilogue import SUPPORTED_OPS, Epilogue
from ..schedules.fused import LAYOUTS, ConvGeom, FusedKernelSpec, build_fused
from ..schedules.plan import plan_fused
from ..target import GAP8, Gap8Target

OPAQUE = 8  # tvm::relax::OpPatternKind::kOpaque


def _ints(a):
    return [int(v) for v in a]


def _geom(call) -> ConvGeom:
    w = [int(v) for v in call.args[1].ty.shape.values]
    a = call.attrs
    return ConvGeom(in_channels=int(call.args[0].ty.shape.values[1]), out_channels=w[0],
                    kernel=w[2], stride=_ints(a.strides)[0], padding=tuple(_ints(a.padding)))


def spec_from_composite(func: relax.Function, args) -> tuple[FusedKernelSpec, list]:
    """Read a composite's body. Returns the spec and the call_tir tensor arguments."""
    kind = str(func.attrs["gap8.kind"])
    env = {p: a for p, a in zip(func.params, args)}

    def resolve(e):
        while isinstance(e, relax.Var) and e in env:
            e = env[e]
        return e

    convs, weights, epilogues, channel_tensors, channel_shapes = [], [], [[], []], [], []
    value_index = {}  # var -> ("acc",) | ("val", i) within the current stage
    stage = -1
    for block in func.body.blocks:
        for b in block.bindings:
            call = b.value
            op = call.op.name
            if op == "relax.nn.conv2d":
                stage += 1
                convs.append(call)
                weights.append(resolve(call.args[1]))
                value_index = {b.var: ("acc",)}
                continue
            if op not in SUPPORTED_OPS or stage < 0:
                raise UnsupportedError(f"fused group contains unsupported op {op}")
            operands = []
            for a in call.args:
                if isinstance(a, relax.Var) and a in value_index:
                    operands.append(value_index[a])
                    continue
                const = resolve(a)
                if isinstance(const, tvm.ir.expr.GenericConst):
                    arr = const.value.numpy()
                    if arr.size == 1:
                        operands.append(("scalar", float(arr.reshape(()))))
                    else:
                        c = arr.size
                        channel_tensors.append(relax.const(arr.reshape(1, c, 1, 1)))
                        channel_shapes.append((1, c, 1, 1))
                        operands.append(("channel", len(channel_tensors) - 1))
                elif isinstance(a, (tvm.tirx.FloatImm, tvm.tirx.IntImm)) or op == "relax.clip":
                    continue  # clip bounds: carried in `extra`
                else:
                    raise UnsupportedError(f"fused group: operand {a} of {op} is not a constant")
            extra = None
            if op == "relax.clip":
                extra = (float(call.args[1].value), float(call.args[2].value))
            epilogues[stage].append((op, tuple(operands), extra))
            value_index[b.var] = ("val", len(epilogues[stage]) - 1)
    if len(convs) != 2:
        raise UnsupportedError(f"fused group of kind {kind} has {len(convs)} convs, expected 2")
    x = args[0]
    spec = FusedKernelSpec(
        kind=kind,
        in_shape=tuple(int(v) for v in x.ty.shape.values),
        first=_geom(convs[0]), second=_geom(convs[1]),
        first_epilogue=Epilogue(tuple(epilogues[0])),
        second_epilogue=Epilogue(tuple(epilogues[1])),
        channel_shapes=tuple(channel_shapes),
        dtype=str(x.ty.dtype),
        layouts=dict(LAYOUTS[kind]))
    return spec, [x, weights[0], weights[1], *channel_tensors]


@tvm.transform.module_pass(opt_level=0, name="LowerFusedKernels")
class LowerFusedKernels:
    """Composite ``gap8.*`` calls -> ``call_tir`` of one tiled, L1-scoped PrimFunc each."""

    def __init__(self, hw: Gap8Target = GAP8):
        self.hw = hw

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        # plan every group first: a layer that cannot be tiled fails here, cleanly, before
        # the mutator has opened any block
        kernels = []
        for gv, func in mod.functions_items():
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
        return relax.transform.DeadCodeElimination()(out)


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
        nodes = info["onnx_nodes"]
        prim = build_fused(spec, plan)
        prim = prim.with_attrs({
            "op_pattern": OPAQUE,
            "tir.is_scheduled": True,
            "gap8.kind": spec.kind,
            "gap8.layouts": dict(spec.layouts),
            "gap8.macs": spec.macs(),
            "gap8.plan": json.dumps(plan.to_dict(), sort_keys=True),
            "gap8.epilogues": [spec.first_epilogue.describe(), spec.second_epilogue.describe()],
        })
        # identical layers (same shapes, epilogues and plan) share one kernel, as on the
        # device; which layer a call is stays on the call: its span names the ONNX nodes
        name = f"gap8_{spec.kind}_{_sanitize(nodes[0] if nodes else 'k')}"
        gv = self.builder_.add_func(prim, name)
        out_ty = relax.TensorType(spec.out_shape, spec.dtype)
        call_tir = self.builder_.normalize(relax.call_tir(gv, tensors, out_ty))
        return with_span(call_tir, group_span(info))


def _plan_group(call, func, hw):
    spec, tensors = spec_from_composite(func, list(call.args))
    info = group_info(call) or {"layer": spec.kind,
                                "onnx_nodes": [str(n) for n in func.attrs["gap8.onnx_nodes"]]}
    if min(spec.out_shape) < 1:
        raise UnsupportedError(f"layer {info['layer']}: output shape {spec.out_shape} is empty")
    return spec, tensors, plan_fused(spec, hw, info["layer"]), info


def _sanitize(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
