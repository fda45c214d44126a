"""What a kernel family is: everything about one kind of GAP8 kernel, declared once.

A family names its composite (``gap8.<kind>``), the dataflow patterns that form it and the rule
check that refuses a match (with its reason), the reader that turns a composite into a kernel
spec and the call_tir tensors, the tiling (the candidate tile plans, each declaring its L1
buffers: role, the loop it is staged at, elements per tile, copies) and the schedule, which
derives its staging from the plan. The registry (``kernels/__init__.py``) lists the families;
the formation passes, the lowering, the fusion policy and the report dispatch through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .layout import KernelLayouts


def no_problem(_ctx) -> None:
    return None


@dataclass(frozen=True)
class KernelFamily:
    kind: str  # the composite's name ``gap8.<kind>``; the lowered PrimFunc's ``gap8.kind``
    patterns: tuple  # factories () -> (pattern, annotations), tried in this order
    layer_keys: tuple  # annotations whose ONNX nodes name the layer, joined by "+"
    read: Callable  # (composite function, call args, requant mode) -> (spec, call_tir tensors)
    plan: Callable  # (spec, hw, layer name) -> the TilePlan (the tiling and its search)
    schedule: Callable  # (spec, plan) -> the scheduled PrimFunc
    problem: Callable = no_problem  # (PatternCheckContext) -> why the match must not form
    candidate: Callable | None = None  # (ctx) -> anchors, or None: not a candidate, no record
    fused: bool = False  # a DW/PW pair: refused when it fits no tile, subject to --fusion
    integer_only: bool = False  # only QDQ forms (a float op stays on TVM's legalized op)
    layouts: KernelLayouts = KernelLayouts()  # without a layout plan
    # which layouts its kernels take (``passes/layouts.py``): "fixed" (CHW only), "elementwise"
    # (every operand and the result in one layout), "reduce" (the input tile as stored, the
    # output in either), "conv" (any input tile layout: a transposing copy when it differs from
    # the tensor's), "fused" (input tile and intermediate in either; the pair may be split)
    layout_rule: str = "fixed"
    kernel_kinds: tuple = ()  # the spec kinds it lowers to (default: its own kind)
    # (spec, hw, layout policy, plans, the match's check context) -> why the planner prefers
    # the layers without this kernel, or None; asked at formation for every match the rules
    # and L1 allow (the chain family)
    compare: Callable | None = None

    @property
    def kinds(self) -> tuple:
        return self.kernel_kinds or (self.kind,)
