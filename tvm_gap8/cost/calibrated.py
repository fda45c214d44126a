"""The cycle model fitted to GVSOC: per layer, cycles as a non-negative linear function of what
the layer does (``cost/work.py`` work per core, DMA bytes and commands, tiles, one fork). The
coefficients are measured, not assumed: ``benchmarks/model_vs_measured.py --write`` fits them to
per-layer cluster cycles of *our* emitted kernels on GVSOC pulp-open and stores them, with the
networks, revision and date they came from, in ``gvsoc_calibration.json`` beside this module.
One coefficient per kind of work: a PW's MACs cost the same fused or standalone, and a fused
kernel's MACs once more at the measured cost of fusing (``work.py``: ``fused_macs``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..ir.vocab import (DMA_TRANSFERS, L1_TO_L2_ACT, L2_TO_L1_ACT, L2_TO_L1_TRANSPOSED,
                        L2_TO_L1_WGT)
from .cycles import DEFAULT_COSTS, ComputeCosts, soft_float
from .work import TERMS

#: the features, in the order of the fit
FEATURES = (*TERMS, "dma_bytes", "transposed_bytes", "dma_commands", "tiles", "layer")
CALIBRATION_FILE = os.path.join(os.path.dirname(__file__), "gvsoc_calibration.json")


@dataclass(frozen=True)
class Calibration:
    coefficients: dict       # feature -> cycles per unit
    source: str              # what was measured, on what (GVSOC revision), by which command
    fitted_on: tuple         # the networks of the fit
    cores: int = 8
    #: median |fitted - measured| / measured of the chain layers the fit saw: within it the
    #: model cannot tell a chain from the block's other kernels (``kernels/pw_dw_pw``)
    chain_error: float = 0.0

    def to_json(self) -> dict:
        return {"coefficients": self.coefficients, "source": self.source,
                "fitted_on": list(self.fitted_on), "cores": self.cores,
                "chain_error": self.chain_error}

    @classmethod
    def from_json(cls, data: dict) -> "Calibration":
        unknown = set(data["coefficients"]) - set(FEATURES)
        if unknown:
            raise ValueError(f"{CALIBRATION_FILE}: unknown features {sorted(unknown)}")
        return cls(dict(data["coefficients"]), data["source"], tuple(data["fitted_on"]),
                   int(data.get("cores", 8)), float(data.get("chain_error", 0.0)))


def load(path: str = CALIBRATION_FILE) -> Calibration | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return Calibration.from_json(json.load(f))


def plan_features(spec, plan, cores: int = 8) -> dict:
    """The features of a tile plan of ``spec`` (what ``features`` reads off report.json)."""
    from .work import work_of
    f = {term: n / cores for term, n in work_of(spec, plan).items()}
    f["dma_bytes"] = plan.l2_to_l1_act + plan.l2_to_l1_wgt + plan.l1_to_l2_act
    f["transposed_bytes"] = plan.l2_to_l1_transposed  # layout-changing copies (cores or DMA)
    f["dma_commands"] = plan.dma_transfers
    f["tiles"] = plan.row_tiles * plan.channel_tiles * plan.col_tiles
    f["layer"] = 1
    return f


def plan_cycles(cal: Calibration, spec, plan, costs: ComputeCosts = DEFAULT_COSTS) -> float:
    """The fitted model's cycles for a plan. The fit saw int8 kernels only: a float kernel's
    work terms are replaced by its soft-float compute (``cycles.soft_float``: GAP8's cluster
    has no FPU), its DMA, tiles and fork costed as fitted."""
    f = plan_features(spec, plan, cal.cores)
    if spec.integer:
        return sum(cal.coefficients.get(k, 0.0) * v for k, v in f.items())
    rest = sum(cal.coefficients.get(k, 0.0) * v for k, v in f.items() if k not in TERMS)
    out_elements = plan.l1_to_l2_act // 4
    return rest + soft_float(costs, cal.cores, spec.macs(), out_elements)


def features(layer: dict, cores: int = 8) -> dict:
    """The features of one tiled layer of ``report.json`` (its ``work``, ``traffic``, ``tile``):
    work spread over the cores, the DMA it does, its tiles and its one fork."""
    t = layer["traffic"]
    tile = layer["tile"]
    f = {term: layer["work"].get(term, 0) / cores for term in TERMS}
    f["dma_bytes"] = t[L2_TO_L1_ACT] + t[L2_TO_L1_WGT] + t[L1_TO_L2_ACT]
    f["transposed_bytes"] = t.get(L2_TO_L1_TRANSPOSED, 0)
    f["dma_commands"] = t[DMA_TRANSFERS]
    f["tiles"] = tile["row_tiles"] * tile["channel_tiles"] * tile.get("col_tiles", 1)
    f["layer"] = 1
    return f


def predict(cal: Calibration, layer: dict) -> int:
    f = features(layer, cal.cores)
    return int(round(sum(cal.coefficients.get(k, 0.0) * v for k, v in f.items())))


#: the calibration in use: the package's (None until benchmarks/model_vs_measured.py --write),
#: or the file named by TVM_GAP8_CALIBRATION (the benchmark judges a fit before shipping it)
SHIPPED = load(os.environ.get("TVM_GAP8_CALIBRATION", CALIBRATION_FILE))
