"""The layout planner's decisions as typed records (``passes/layouts.py`` makes them, the
lowering and the report read them through the compile's ``Compilation``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alternative:
    """A variant the planner priced for a kernel: its name, tensor layouts and cycles."""

    variant: str
    input: str
    output: str
    cycles: int

    def describe(self) -> dict:
        return {"variant": self.variant, "input": self.input, "output": self.output,
                "cycles": self.cycles}


@dataclass(frozen=True)
class LayerDecision:
    """The planner's decision for one layer: the layouts of its kernel(s) (two or more when a
    fused pair is split), its modelled cycles and every alternative it priced."""

    layouts: tuple  # KernelLayouts per kernel
    split: bool
    cycles: int
    alternatives: tuple = ()  # Alternative
    note: str = ""  # why the search did not choose its output's layout

    def describe(self) -> dict:
        """The report's form (``report.json`` ``layout_plan.layers.<layer>``)."""
        d = {"layouts": [lay.describe() for lay in self.layouts], "split": self.split,
             "cycles": self.cycles, "alternatives": [a.describe() for a in self.alternatives]}
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True)
class LayoutPlan:
    """The planner's decisions for a whole network, by layer (binding order)."""

    policy: str
    fusion: str
    cycles: int
    layers: dict  # layer name -> LayerDecision

    def describe(self) -> dict:
        """The report's ``layout_plan``."""
        return {"policy": self.policy, "fusion": self.fusion, "cycles": self.cycles,
                "layers": {name: d.describe() for name, d in self.layers.items()}}
