"""What a kernel computes, counted by kind of work: the features the GVSOC-calibrated cycle
model (``cost/calibrated.py``) prices. A fused pair counts as its two convs (``spec.split()``),
so a PW costs the same per MAC and per output whether fused or standalone."""

from __future__ import annotations

import math

#: the work terms, each a count over the whole layer
TERMS = ("conv_macs", "dw_macs", "pw_macs", "dense_macs", "conv_outputs", "add_elements",
         "pool_elements", "lut_elements", "mul_elements")


def work_of(spec) -> dict[str, int]:
    """Counts of ``TERMS`` for one kernel spec."""
    work = dict.fromkeys(TERMS, 0)
    convs = spec.split() if hasattr(spec, "split") else (spec,)
    for part in convs:
        kind = getattr(part, "kind", "")
        if kind in ("conv", "dw", "pw"):
            work[f"{kind}_macs"] += part.macs()
            work["conv_outputs"] += math.prod(part.out_shape)
        elif kind == "dense":
            work["dense_macs"] += part.macs()
            work["conv_outputs"] += math.prod(part.out_shape)
        elif f"{kind}_elements" in work:  # add, pool, lut, mul: over their input elements
            work[f"{kind}_elements"] += math.prod(part.in_shape)
    return work
