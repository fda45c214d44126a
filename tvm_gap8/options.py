"""The compile knobs and their defaults, in one place: the CLI, ``compile_model``,
``gap8_passes`` and the registered ``gap8`` Relax pipeline all read them from here.

TVM 0.27 registers ``PassContext`` config options only from C++ (``TVM_REGISTER_PASS_CONFIG_OPTION``;
no FFI function exposes it), so ``PassContext(config={"gap8.l1_kb": 32})`` is refused by TVM
itself. The TVM way to configure a named pipeline from Python is ``relax.get_pipeline``'s
keyword arguments: ``tvm.compile(mod, target, relax_pipeline=relax.get_pipeline("gap8",
l1_kb=32, fusion="all"))`` takes every field of :class:`CompileOptions`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import UsageError
from .passes.layouts import LAYOUT_POLICIES
from .target import CYCLE_MODELS, DMA_MODES, GAP8, REQUANT_MODES, Gap8Target

#: ``fusion``: ``auto`` the planner fuses or splits each pair the rules allow; ``all`` every such
#: pair fused; ``none``; ``profitable`` each pair judged alone against its split; ``chains`` /
#: ``all-chains``: ``auto`` / ``all`` with PW->DW->PW chains (pipeline.CHAIN_POLICIES).
FUSION_POLICIES = ("auto", "all", "none", "profitable", "chains", "all-chains")

#: The usual deployment (DORY + PULP-NN) every report compares with: no fusion, HWC tensors,
#: DW inputs transposed by a blocking DMA.
BASELINE = {"fusion": "none", "layout": "hwc", "dma": "blocking"}


@dataclass(frozen=True)
class CompileOptions:
    """What a compile may choose; the defaults are every entry point's defaults."""

    fusion: str = "auto"
    layout: str = "auto"
    dma: str = "double"
    requant: str = "fixed"
    #: L1 size in kB (1 kB = 1000 B); None: the hardware description's (GAP8: 64 kB)
    l1_kb: float | None = None
    #: how plans are priced; None: the hardware description's (GAP8: ``gvsoc``)
    cycle_model: str | None = None

    def __post_init__(self):
        for name, choices in (("fusion", FUSION_POLICIES), ("layout", LAYOUT_POLICIES),
                              ("dma", DMA_MODES), ("requant", REQUANT_MODES)):
            value = getattr(self, name)
            if value not in choices:
                raise UsageError(f"{name} {value!r}: expected one of {', '.join(choices)}")
        if self.cycle_model is not None and self.cycle_model not in CYCLE_MODELS:
            raise UsageError(f"cycle_model {self.cycle_model!r}: expected one of "
                             f"{', '.join(CYCLE_MODELS)}")
        if self.l1_kb is not None and not self.l1_kb > 0:
            raise UsageError(f"--l1-kb {self.l1_kb:g}: must be > 0")

    @property
    def fuse(self) -> bool:
        return self.fusion != "none"

    def replace(self, **changes) -> "CompileOptions":
        return dataclasses.replace(self, **changes)

    def target(self, hw: Gap8Target = GAP8) -> Gap8Target:
        """``hw`` under these options: its DMA mode, requantization, L1 size and cycle model.
        An L1 larger than the description's L2, or too small for the cluster stacks, is
        refused here, before any layer is tiled."""
        hw = with_dma(hw, self.dma).replace(requant=self.requant)
        if self.cycle_model is not None:
            hw = hw.replace(cycle_model=self.cycle_model)
        if self.l1_kb is None:
            return hw
        l1 = int(round(self.l1_kb * 1000))
        if l1 > hw.l2_bytes:
            raise UsageError(f"--l1-kb {self.l1_kb:g}: {l1} B of L1 is more than the "
                             f"{hw.l2_bytes} B of L2 (GAP8: 64 kB of L1, 512 kB of L2)")
        hw = hw.replace(l1_bytes=l1)
        if hw.l1_budget <= 0:
            raise UsageError(f"--l1-kb {self.l1_kb:g}: {l1} B of L1 leaves nothing for tiles: "
                             f"{hw.describe_l1_budget()}")
        return hw


def with_dma(hw: Gap8Target, dma: str) -> Gap8Target:
    """The target under DMA mode ``dma``: ``blocking`` (DORY on GAP8: every copy waited for,
    single-buffered L1 tiles) or ``double`` (ours: double-buffered, copies overlap compute)."""
    if dma == "blocking":
        return hw.replace(dma_mode="blocking", double_buffering=False)
    return hw.replace(dma_mode="double")


#: Every entry point's defaults.
DEFAULTS = CompileOptions()
