"""What the passes of one compile share, owned by that compile (no module attribute, no global).

``gap8_passes`` makes one ``Compilation`` and hands it to the passes that need it: the fusion
policy and the layout planner cost kernels through its ``plans`` (the tile plans, memoised), the
planner records its ``LayoutPlan`` on it, the lowering builds every kernel in the layouts it
reads there under the same plans and the memory placement (``LowerAndPlace``), and the
compiler puts the plan and the placement in the report (the C emitter reads the placement). Passes built
alone get a fresh one each (no plan: every kernel in its family's default layouts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kernels import KernelPlans
from ..ir.placement import Placement
from .layout_plan import LayoutPlan


@dataclass
class Compilation:
    plans: KernelPlans = field(default_factory=KernelPlans)  # tile plans by (spec, target)
    layout_plan: LayoutPlan | None = None  # set by PlanLayouts; None: no planner ran
    # where every weight and activation lives, set by LowerAndPlace (passes/place.py); None:
    # not decided (every weight in L2)
    placement: Placement | None = None
