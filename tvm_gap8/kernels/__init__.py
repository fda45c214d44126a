"""GAP8 kernel families: one module per family (spec, reader, TE compute, tiling, schedule,
and its ``KernelFamily`` declaration with patterns and rules), and the registry of them.

``FAMILIES`` is the order the formation passes run in: the PW->DW->PW chains first (formed only
where the cycle model says they beat the block without them), the fused pairs next (DW->PW
before PW->DW: the pairing rule), then every other layer. Lowering, the fusion policy and the report
find a family by kind here; nothing else dispatches on spec types.
"""

from .conv import CONV
from .dense import DENSE
from .dw_pw import DW_PW
from .eltwise import ADD
from .family import KernelFamily
from .lut import LUT, MUL
from .pool import POOL
from .pw_dw import PW_DW
from .pw_dw_pw import PW_DW_PW

FAMILIES: tuple = (PW_DW_PW, DW_PW, PW_DW, CONV, ADD, POOL, DENSE, MUL, LUT)

_BY_KIND = {kind: f for f in FAMILIES for kind in f.kinds}


def family_of(kind: str) -> KernelFamily:
    """The family of a composite (``gap8.<kind>``) or of a lowered kernel's ``gap8.kind``."""
    return _BY_KIND[kind]


def plan_kernel(spec, hw, layer: str = "?"):
    """The tile plan of any kernel spec, by its family's tiling search (deterministic; a spec
    that fits no tile raises, naming ``layer``). A compile asks its ``KernelPlans`` instead."""
    return family_of(spec.kind).plan(spec, hw, layer)


class KernelPlans:
    """The tile plans of one compile, memoised by (spec, target): the layout planner and the
    fusion policy cost a spec, the lowering builds it under the same plan. Owned by the
    compile (``passes.compilation.Compilation``), never global; specs and targets are frozen
    dataclasses, the key as they are. A spec that fits no tile is not memoised (it raises,
    naming the layer asked about, every time)."""

    def __init__(self):
        self._plans: dict = {}

    def __len__(self) -> int:
        return len(self._plans)

    def plan(self, spec, hw, layer: str = "?"):
        key = (spec, hw)
        if key not in self._plans:
            self._plans[key] = plan_kernel(spec, hw, layer)
        return self._plans[key]


def build_kernel(spec, plan):
    """The scheduled PrimFunc of any kernel spec under ``plan``, by its family's schedule."""
    return family_of(spec.kind).schedule(spec, plan)


__all__ = ["FAMILIES", "KernelFamily", "KernelPlans", "build_kernel", "family_of", "plan_kernel"]
