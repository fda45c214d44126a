"""What a kernel computes, counted by kind of work: the features the GVSOC-calibrated cycle
model (``cost/calibrated.py``) prices. A fused pair counts as its two convs (``spec.split()``),
so a PW costs the same per MAC and per output whether fused or standalone, given the layout it
reduces in: a conv's MACs are tagged with the storage order of the L1 tile it reads (HWC: the
channels a PW reduces over are contiguous, one 4-way dot product per word; CHW: they are a plane
apart), since the emitted kernels run at different speeds in each. One term more, ``fused_macs``: every
MAC of a kernel that keeps an intermediate in L1 (a pair, a chain), counted once more, so that
the fit measures what a fused kernel costs per MAC beyond its convs' own terms (on GVSOC its
tiles are smaller, its stages more, its PW no faster: measured, not assumed; the fit's
coefficients are non-negative, so fusing is never priced cheaper than its parts); and
``fill_elements``: the elements a chain sets to the zero point around its expanded tile,
every row tile (the whole padded tile: it grows with the tile's width, not with its MACs)."""

from __future__ import annotations

import math

from ..ir.vocab import CHW, HWC

#: the work terms, each a count over the whole layer
TERMS = (*(f"{k}_macs_{lay.lower()}" for k in ("conv", "dw", "pw") for lay in (CHW, HWC)),
         "dense_macs", "conv_outputs", "add_elements", "pool_elements", "lut_elements",
         "mul_elements", "fused_macs", "fill_elements")


def _part_tiles(spec, plan=None) -> list:
    """(conv part, layout of the L1 tile it reads[, MACs it recomputes]) of a kernel spec. A
    PW -> DW -> PW chain has no term of its own: it is composed of its convs' and its residual
    Add's terms (``ChainKernelSpec.work_parts``), its expansion's MACs including the halo rows
    it recomputes per tile under ``plan``."""
    lay = getattr(spec, "layouts", None)
    if hasattr(spec, "work_parts"):
        return spec.work_parts(plan)
    if hasattr(spec, "split"):  # fused: the first conv reads the input tile, the second the mid
        first, second = spec.split()
        return [(first, lay.tile), (second, lay.mid)]
    return [(spec, lay.tile if lay is not None else CHW)]


def work_of(spec, plan=None) -> dict[str, int]:
    """Counts of ``TERMS`` for one kernel spec (tiled by ``plan``, when its work depends on
    the tile: the chain's recomputed halo)."""
    work = dict.fromkeys(TERMS, 0)
    for part, tile, *recomputed in _part_tiles(spec, plan):
        kind = getattr(part, "kind", "")
        if kind in ("conv", "dw", "pw"):
            work[f"{kind}_macs_{tile.lower()}"] += part.macs() + sum(recomputed)
            work["conv_outputs"] += math.prod(part.out_shape)
        elif kind == "dense":
            work["dense_macs"] += part.macs()
            work["conv_outputs"] += math.prod(part.out_shape)
        elif f"{kind}_elements" in work:  # add, pool, lut, mul: over their input elements
            work[f"{kind}_elements"] += math.prod(part.in_shape)
    if hasattr(spec, "fill_elements"):  # a chain's padded intermediate, set per row tile
        work["fill_elements"] = spec.fill_elements(plan)
    if hasattr(spec, "split") or hasattr(spec, "work_parts"):  # a fused kernel
        work["fused_macs"] = sum(work[f"{k}_macs_{lay.lower()}"]
                                 for k in ("conv", "dw", "pw") for lay in (CHW, HWC))
    return work
