"""What a kernel computes, counted by kind of work: the features the GVSOC-calibrated cycle
model (``cost/calibrated.py``) prices. A fused pair counts as its two convs (``spec.split()``),
so a PW costs the same per MAC and per output whether fused or standalone, given the layout it
reduces in: a conv's MACs are tagged with the storage order of the L1 tile it reads (HWC: the
channels a PW reduces over are contiguous, one 4-way dot product per word; CHW: they are a plane
apart), since the emitted kernels run at different speeds in each."""

from __future__ import annotations

import math

from ..vocab import CHW, HWC

#: the work terms, each a count over the whole layer
TERMS = (*(f"{k}_macs_{lay.lower()}" for k in ("conv", "dw", "pw") for lay in (CHW, HWC)),
         "dense_macs", "conv_outputs", "add_elements", "pool_elements", "lut_elements",
         "mul_elements")


def _part_tiles(spec) -> list:
    """(conv part, layout of the L1 tile it reads) of a kernel spec."""
    lay = getattr(spec, "layouts", None)
    if hasattr(spec, "split"):  # fused: the first conv reads the input tile, the second the mid
        first, second = spec.split()
        return [(first, lay.tile), (second, lay.mid)]
    return [(spec, lay.tile if lay is not None else CHW)]


def work_of(spec) -> dict[str, int]:
    """Counts of ``TERMS`` for one kernel spec."""
    work = dict.fromkeys(TERMS, 0)
    for part, tile in _part_tiles(spec):
        kind = getattr(part, "kind", "")
        if kind in ("conv", "dw", "pw"):
            work[f"{kind}_macs_{tile.lower()}"] += part.macs()
            work["conv_outputs"] += math.prod(part.out_shape)
        elif kind == "dense":
            work["dense_macs"] += part.macs()
            work["conv_outputs"] += math.prod(part.out_shape)
        elif f"{kind}_elements" in work:  # add, pool, lut, mul: over their input elements
            work[f"{kind}_elements"] += math.prod(part.in_shape)
    return work
