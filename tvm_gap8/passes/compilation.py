"""What the passes of one compile share, owned by that compile (no module attribute, no global).

``gap8_passes`` makes one ``Compilation`` and hands it to the passes that need it: the layout
planner records its ``LayoutPlan`` on it, the lowering builds every kernel in the layouts it
reads there, and the compiler puts it in the report. Passes built alone get a fresh one each
(no plan: every kernel in its family's default layouts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the planner imports this module
    from .layouts import LayoutPlan


@dataclass
class Compilation:
    layout_plan: LayoutPlan | None = None  # set by PlanLayouts; None: no planner ran
