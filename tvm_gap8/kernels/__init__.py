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


_PLANS: dict = {}  # (spec, target) -> plan: the planner costs a spec, the lowering builds it


def clear_plans() -> None:
    """Forget the memoised plans (e.g. to time a compile from scratch)."""
    _PLANS.clear()


def plan_kernel(spec, hw, layer: str = "?"):
    """The tile plan of any kernel spec, by its family's tiling search (memoised: the search
    is deterministic; a spec that fits no tile raises every time, naming ``layer``)."""
    key = (repr(spec), hw)
    if key not in _PLANS:
        if len(_PLANS) > 4096:
            _PLANS.clear()
        _PLANS[key] = family_of(spec.kind).plan(spec, hw, layer)
    return _PLANS[key]


def build_kernel(spec, plan):
    """The scheduled PrimFunc of any kernel spec under ``plan``, by its family's schedule."""
    return family_of(spec.kind).schedule(spec, plan)


__all__ = ["FAMILIES", "KernelFamily", "build_kernel", "clear_plans", "family_of", "plan_kernel"]
