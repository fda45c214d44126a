"""Formation passes: every gap8 kernel family's patterns -> composite functions.

One pass class, :class:`FormKernels`, serves every family of the registry
(``kernels.FAMILIES``): ``FuseOpsByPattern`` over the family's patterns with its rule check; a
match the rules refuse is recorded with its reason in the module attribute
``gap8.fusion_refused``. The composites carry ``gap8.kind``, ``gap8.layouts``,
``gap8.onnx_nodes`` and ``gap8.layer``. For the fused families the fusion policy
(``policy.py``) is asked too: a pair whose fused kernel fits no tile stays unfused under every
policy, and ``profitable`` refuses pairs the cycle model says are slower fused.

The named passes (``FuseDepthwisePointwise``, ``FormConvKernels``, ...) are this pass bound to
one family, for use alone in a ``Sequential``. A DW belongs to at most one group: once fused it
sits inside a composite function and no later pattern sees it. Pairing rule when a DW could pair
either way (inverted residuals): the pass that runs first wins; the ``gap8`` pipeline runs
``FuseDepthwisePointwise`` first (the paper's primary ``dw_pw`` kernel, and the only choice for
t=1 blocks), then ``FusePointwiseDepthwise`` for DWs left over.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.transform import FusionPattern

from ..ir.irutil import bindings, node_name_of
from ..kernels.conv import CONV
from ..kernels.dense import DENSE
from ..kernels.dw_pw import DW_PW
from ..kernels.eltwise import ADD
from ..kernels.lut import LUT, MUL
from ..kernels.patterns import OUTSIDE_REF, node
from ..kernels.pool import POOL
from ..kernels.pw_dw import PW_DW
from ..kernels.pw_dw_pw import PW_DW_PW
from ..target import GAP8, gap8_enabled
from ..ir.vocab import KIND_ATTR, LAYER_ATTR, LAYOUTS_ATTR, ONNX_NODES_ATTR, REFUSED_ATTR
from .compilation import Compilation
from .policy import POLICIES, policy_problem


class FormKernels:
    """The formation pass of ``family`` (for a fused family, under ``hw`` and ``policy``)."""

    family = None

    def __init__(self, hw=None, policy: str = "all", compilation: Compilation | None = None,
                 layout: str = "chw"):
        if policy not in POLICIES:
            raise ValueError(f"fusion policy {policy!r}: one of {', '.join(POLICIES)}")
        self.hw = hw or GAP8
        self.policy = policy
        self.compilation = compilation if compilation is not None else Compilation()
        self.layout = layout  # the planner's layout policy (what a chain is weighed under)
        self.refused: list[dict] = []

    def _check(self, ctx) -> bool:
        f = self.family
        if f.candidate is not None and not f.candidate(ctx):
            return False  # not a candidate (e.g. two ordinary convs): nothing to record
        reason = f.problem(ctx)
        if reason is None and f.fused:
            reason = policy_problem(f, ctx, self.hw, self.policy, self.compilation.plans,
                                    self.layout)
        if reason:
            reason = self._name_outside_bindings(reason)
            self.refused.append({"kind": f.kind, "reason": reason, "onnx_nodes":
                                 [node(ctx.annotated_expr[k]) for k in f.layer_keys]})
            return False
        return True

    def _name_outside_bindings(self, reason: str) -> str:
        """``reason`` with every binding a rule could only name by its var (``patterns.
        outside_ref``) named by its ONNX node (or its op when it has none)."""
        for hint, name in self.bound_names.items():
            ref = OUTSIDE_REF.format(hint)
            if ref in reason:
                reason = reason.replace(ref, name)
        return reason

    def _attrs(self, annotated) -> dict:
        """Name the layer on the composite function. Besides naming it, this keeps
        FuseOpsByPattern from sharing one function between structurally equal groups (e.g.
        MobileNet's five identical 512-channel blocks), so each group keeps its own ONNX
        nodes."""
        return {LAYER_ATTR: "+".join(node(annotated[k]) for k in self.family.layer_keys)}

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if not gap8_enabled():
            return mod
        self.refused = []
        self.bound_names = _bound_names(mod)
        f = self.family
        fusion_patterns = [FusionPattern(f"gap8.{f.kind}", *factory(), self._check, self._attrs)
                           for factory in f.patterns]
        fused = relax.transform.FuseOpsByPattern(fusion_patterns, bind_constants=False)(mod)
        return _record_refusals(_annotate_composites(fused, f), self.refused)


def _bound_names(mod) -> dict:
    """var name -> what made it, in ``main``: its ONNX node, else its op."""
    out = {}
    for b in bindings(mod["main"]):
        v = b.value
        name = node_name_of(v) if isinstance(v, relax.Call) else None
        if name is None and isinstance(v, relax.Call):
            name = getattr(v.op, "name", getattr(v.op, "name_hint", "a call"))
        name = name or type(v).__name__
        seen = out.get(b.var.name)  # one name for two vars: both, not a guess
        out[b.var.name] = name if seen is None else f"{seen} or {name}"
    return out


_PASS_OF = {}  # family kind -> its formation pass class (the named ones below, or generic)


def _formation_pass(name: str, family, doc: str):
    cls = type(name, (FormKernels,), {"family": family, "__doc__": doc})
    _PASS_OF[family.kind] = tvm.transform.module_pass(opt_level=0, name=name)(cls)
    return _PASS_OF[family.kind]


def formation_pass(family, hw=None, policy: str = "all", compilation: Compilation | None = None,
                   layout: str = "chw"):
    """The formation pass of any registered family (what the pipeline builds)."""
    if family.kind not in _PASS_OF:
        _PASS_OF[family.kind] = _formation_pass(f"Form_{family.kind}", family, family.kind)
    return _PASS_OF[family.kind](hw, policy, compilation, layout)


FusePointwiseDepthwisePointwise = _formation_pass(
    "FusePointwiseDepthwisePointwise", PW_DW_PW,
    "PW -> DW -> PW [-> residual Add] into one ``gap8.pw_dw_pw`` composite (when modelled "
    "faster than the block without it).")
FuseDepthwisePointwise = _formation_pass(
    "FuseDepthwisePointwise", DW_PW,
    "DW -> (elementwise) -> PW into one ``gap8.dw_pw`` composite.")
FusePointwiseDepthwise = _formation_pass(
    "FusePointwiseDepthwise", PW_DW,
    "PW -> (elementwise) -> DW into one ``gap8.pw_dw`` composite.")
FormConvKernels = _formation_pass(
    "FormConvKernels", CONV,
    "Every conv left over (stem, head, expansion PW, refused DW) -> ``gap8.conv``.")
FormAddKernels = _formation_pass(
    "FormAddKernels", ADD, "Residual Adds (+ ReLU/Clip) -> ``gap8.add``.")
FormPoolKernels = _formation_pass(
    "FormPoolKernels", POOL, "Global average pooling -> ``gap8.pool``.")
FormDenseKernels = _formation_pass(
    "FormDenseKernels", DENSE, "Fully connected layers -> ``gap8.dense``.")
FormMulKernels = _formation_pass(
    "FormMulKernels", MUL, "quantize(dequantize(a) * dequantize(b)) -> ``gap8.mul``.")
FormLutKernels = _formation_pass(
    "FormLutKernels", LUT, "quantize(f(dequantize(x))) -> ``gap8.lut`` (a 256-entry table).")



def _annotate_composites(mod, family):
    kind = family.kind
    for gv, func in list(mod.functions_items()):
        if not isinstance(func, relax.Function) or func.attrs is None:
            continue
        if func.attrs.get("Composite") != f"gap8.{kind}" or KIND_ATTR in func.attrs:
            continue
        nodes = []
        for block in func.body.blocks:
            for b in block.bindings:
                name = node_name_of(b.value)
                if name and name not in nodes:
                    nodes.append(name)
        func = func.with_attr(KIND_ATTR, kind)
        func = func.with_attr(LAYOUTS_ATTR, family.layouts.describe())
        func = func.with_attr(ONNX_NODES_ATTR, nodes)
        mod[gv] = func
    return mod


def _record_refusals(mod, refused):
    seen = {(r["kind"], tuple(r["onnx_nodes"])) for r in refusals_of(mod)}
    records = list(mod.attrs[REFUSED_ATTR]) if mod.attrs and REFUSED_ATTR in mod.attrs else []
    for r in refused:
        key = (r["kind"], tuple(r["onnx_nodes"]))
        if key not in seen:
            seen.add(key)
            records.append(r)
    if not records:
        return mod
    return mod.with_attr(REFUSED_ATTR, records)


def refusals_of(mod) -> list[dict]:
    if mod.attrs is None or REFUSED_ATTR not in mod.attrs:
        return []
    return [{"kind": str(r["kind"]), "onnx_nodes": [str(n) for n in r["onnx_nodes"]],
             "reason": str(r["reason"])} for r in mod.attrs[REFUSED_ATTR]]
