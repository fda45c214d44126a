"""GAP8 kernel families: one module per family (spec, reader, TE compute, tiling, schedule,
and its ``KernelFamily`` declaration with patterns and rules), and the registry of them.

``FAMILIES`` is the order the formation passes run in: the fused pairs first (DW->PW before
PW->DW: the pairing rule), then every other layer. Lowering, the fusion policy and the report
find a family by kind here; nothing else dispatches on spec types.
"""

from .conv import CONV
from .dense import DENSE
from .eltwise import ADD
from .family import KernelFamily
from .fused import DW_PW, PW_DW
from .lut import LUT, MUL
from .pool import POOL

FAMILIES: tuple = (DW_PW, PW_DW, CONV, ADD, POOL, DENSE, MUL, LUT)

_BY_KIND = {kind: f for f in FAMILIES for kind in f.kinds}


def family_of(kind: str) -> KernelFamily:
    """The family of a composite (``gap8.<kind>``) or of a lowered kernel's ``gap8.kind``."""
    return _BY_KIND[kind]


__all__ = ["FAMILIES", "KernelFamily", "family_of"]
