"""GAP8 as data: the one place hardware facts live.

Every figure cites where it comes from (a public source, or OUR ASSUMPTION / OUR CHOICE).
Schedules, the tiler and the cost model read this object; none of them hard-codes a size.
A description can be overridden field by field (``--l1-kb``, or a JSON file) to study other
parts, e.g. GAP9's larger L1.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import tvm

from .cost.cycles import ComputeCosts
from .errors import UsageError


#: How the cluster DMA runs against compute (``Gap8Target.dma_mode``).
DMA_MODES = ("double", "blocking")
#: How plans are priced (``Gap8Target.cycle_model``): ``gvsoc``, the linear model fitted to
#: GVSOC measurements of our emitted kernels (tvm_gap8/cost/calibrated.py, when the package
#: ships a fit); ``analytical``, the per-family formulas of tvm_gap8/cost/cycles.py.
CYCLE_MODELS = ("gvsoc", "analytical")
#: L1 the emitted arena may take beyond the plan: its buffers start at 8-byte boundaries
#: (emitc/plainc.py L1_ALIGN; measured <= 6 B over the IR's peak on the example networks)
L1_ALIGN_SLACK = 64
#: How integer kernels requantize (``Gap8Target.requant``; ``kernels/requant.py``).
REQUANT_MODES = ("fixed", "float32")


@dataclass(frozen=True)
class Gap8Target:
    """Memory hierarchy, DMA and compute figures of a GAP8-class PULP cluster."""

    name: str = "gap8"
    # pulp-platform/dory dory/Hardware_targets/PULP/GAP8/HW_description.json: "L1": 64000
    l1_bytes: int = 64000
    # same file: "L2": 512000
    l2_bytes: int = 512000
    # same file: "L3": 8000000 (off-chip HyperRAM)
    l3_bytes: int = 8000000
    # same file: 8 cluster cores
    cores: int = 8
    # same file / DORY README: runs at 100 MHz
    clock_hz: int = 100_000_000
    # eml-eda/match match/cost_model/examples/pulp_cluster.py: L2<->L1 cluster DMA 8 B/cycle
    dma_bytes_per_cycle: float = 8.0
    # same file: ~550 cycles of API + ~370 of setup per transfer
    dma_setup_cycles: int = 920
    # same file: +1 cycle per row of a 2-D transfer (OVERHEAD_2D_TRANSFER = 1)
    dma_cycles_per_row: int = 1
    # same file, a depthwise layer's input (HWC in L2 -> CHW in L1, DORY's
    # ``dory_dma_memcpy_hwc_to_chw`` in pulp-platform/dory dory/Hardware_targets/PULP/Common/
    # Utils/dory_dma.c: one 2-D transfer per channel whose rows are 1 byte long):
    # BYTES_PER_CYCLE = 1 and OVERHEAD_BETWEEN_TRANSFERS = 12 cycles per channel
    dma_transpose_bytes_per_cycle: float = 1.0
    dma_transpose_cycles_per_channel: int = 12
    # eml-eda/match match/cost_model/zigzag.py: every iteration of the tiled loop nest costs
    # MATCH_ITERATION_LATENCY = 300 ("TODO: profile MATCH latency") +
    # MATCH_EXECUTIONAL_MODEL_ITERATION_LATENCY = 200 ("default value"): MATCH's own unprofiled
    # defaults, for its generated loop; we take them for ours (index arithmetic, DMA descriptor
    # set-up, buffer swap, barriers per tile)
    tile_overhead_cycles: int = 500
    # OUR ASSUMPTION (no public figure found): one cluster fork + final barrier per layer
    # (DORY's dory/Hardware_targets/PULP/Common/Templates/network.c.t forks
    # ``pi_cl_team_fork(NUM_CORES, ...)`` once per layer; MATCH's gap9 cluster cost model charges a
    # barrier t_sync = 50 cycles); fork wake-up, argument passing and L1 allocation guessed at 1000
    layer_overhead_cycles: int = 1000
    # "double" (ours): copies of the next tile overlap compute, all trips of the pipelined loop but
    # one hidden; "blocking": every copy waited for before compute goes on, nothing hidden, as
    # DORY runs on the GAP8 board (dory/Hardware_targets/PULP/GAP8/HW_description.json
    # "blocking_dma_transfers": true; dory_dma.c ``ALWAYS_BLOCK_DMA_TRANSFERS // needed on GAP8
    # board``)
    dma_mode: str = "double"
    cycle_model: str = "gvsoc"
    # how the integer kernels requantize an int32 accumulator (kernels/requant.py): "fixed"
    # (a 31-bit multiplier, one 64-bit product, round half up: what an embedded engineer ships)
    # or "float32" (onnxruntime's float32 arithmetic in integers, bit for bit)
    requant: str = "fixed"
    # DORY HW_description.json: double buffering supported
    double_buffering: bool = True
    # DORY HW_description.json: 32 int8 MAC/cycle peak (8 cores x 4-way sdotp); the sustained
    # figure PULP-NN reports for convolutions is 15.5 MAC/cycle (PULP-NN paper abstract)
    peak_int8_macs_per_cycle: float = 32.0
    conv_int8_macs_per_cycle: float = 15.5
    #: Bytes of L1 kept free beyond the cluster stacks (our choice, not a hardware figure).
    l1_reserved_bytes: int = 0
    #: Stack of each cluster core, in L1 (PMSIS and pulp-runtime place the cluster stacks in
    #: L1; pulp-runtime's CLUSTER_STACK_SIZE default is 0x800). OUR CHOICE of 1024 B: the
    #: emitted network's deepest call chain measured ~450 B with -fstack-usage
    #: (docs/gvsoc.md); a full L1 made pulp-runtime's stack allocation fail
    #: silently and the run hang there. The emitted projects set their stacks to this figure.
    cluster_stack_bytes: int = 1024
    #: L2 kept for code, the fabric controller's stack and the runtime's data (on GAP8 code
    #: lives in L2 too). OUR ASSUMPTION, sized from what the GVSOC link of our emitted networks
    #: measured: .text 53 kB for int8 MobileNetV1 x0.25 @96 (before the dot-product kernels),
    #: ~99 kB reported for the MobileNetV2-style example, FC stack 2 kB. The link checks the real
    #: figure and names the region it overflows.
    l2_reserved_bytes: int = 98304
    # L3 (off-chip HyperRAM) -> L2, for weights that do not fit L2 (``ir/placement.py``):
    # OUR ASSUMPTION, no cited figure: GAP8's HyperBus is an 8-bit DDR bus; taken at ~1 byte per
    # cycle of the 100 MHz clock above (the order of the figure GreenWaves' docs give for
    # HyperRAM; not verified against a datasheet here), 8x slower than the cluster DMA
    l3_bytes_per_cycle: float = 1.0
    # OUR ASSUMPTION: an L3 transfer's software set-up (micro-DMA request from the fabric
    # controller + HyperRAM command/latency) taken equal to the cluster DMA's (MATCH's 920)
    l3_setup_cycles: int = 920
    #: Where the weights of the kernel being planned live: "L2", or "L3" (each weight tile
    #: then crosses L3 -> L2 before L2 -> L1, costed so). Not a property of the chip: the
    #: network's placement (``ir/placement.py``, decided once in ``passes/place.py``) sets it per
    #: layer on the target the tiler costs that layer with.
    weights_memory: str = "L2"
    #: Where the activations the kernel being planned reads (``inputs_memory``) and writes
    #: (``output_memory``) live: "L2", or "L3" (an activation larger than L2 can hold: each
    #: input tile crosses L3 -> L2 before L2 -> L1, each output tile L1 -> L2 -> L3, costed
    #: so). Set per layer from the network's placement, like ``weights_memory``.
    inputs_memory: str = "L2"
    output_memory: str = "L2"
    # The constants of the compute-cycle models (PLiNIO's GAP8 latency models and the terms we
    # derive), as one record, cited field by field in ``tvm_gap8/cost/cycles.py`` (the cycle
    # model's one home, with the formulas and the DMA/overlap arithmetic); a JSON ``--hw`` file
    # may override them as {"compute": {field: value}}
    compute: ComputeCosts = field(default_factory=ComputeCosts)
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.dma_mode not in DMA_MODES:
            raise UsageError(f"dma_mode {self.dma_mode!r}: expected one of {', '.join(DMA_MODES)}")
        if self.cycle_model not in CYCLE_MODELS:
            raise UsageError(f"cycle_model {self.cycle_model!r}: expected one of "
                             f"{', '.join(CYCLE_MODELS)}")
        for name in ("weights_memory", "inputs_memory", "output_memory"):
            if getattr(self, name) not in ("L2", "L3"):
                raise UsageError(f"{name} {getattr(self, name)!r}: expected L2 or L3")
        if self.requant not in REQUANT_MODES:
            raise UsageError(f"requant {self.requant!r}: expected one of "
                             f"{', '.join(REQUANT_MODES)}")

    @property
    def l1_budget(self) -> int:
        """Bytes of L1 the tiler may fill: L1 less the cluster cores' stacks and the reserve."""
        return max(0, self.l1_bytes - self.l1_reserved_bytes - self.stack_bytes - L1_ALIGN_SLACK)

    @property
    def l2_budget(self) -> int:
        """Bytes of L2 for activations, weights and staging: L2 less code and runtime."""
        return max(0, self.l2_bytes - self.l2_reserved_bytes)

    @property
    def stack_bytes(self) -> int:
        """L1 the cluster cores' stacks take."""
        return self.cores * self.cluster_stack_bytes

    def describe_l1_budget(self) -> str:
        return (f"the L1 budget is {self.l1_budget} B ({self.l1_bytes} B of L1 less "
                f"{self.stack_bytes} B of cluster stacks, {L1_ALIGN_SLACK} B of alignment"
                + (f" and {self.l1_reserved_bytes} B reserved" if self.l1_reserved_bytes else "")
                + ")")

    def with_l1_budget(self, budget: int) -> "Gap8Target":
        """This target with L1 sized so that the tiler may fill ``budget`` bytes."""
        return self.replace(l1_bytes=budget + self.l1_reserved_bytes + self.stack_bytes
                            + L1_ALIGN_SLACK)

    def replace(self, **changes) -> "Gap8Target":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d

    @classmethod
    def from_json(cls, path: str) -> "Gap8Target":
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as exc:
            raise UsageError(f"--hw {path}: cannot read ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--hw {path}: not valid JSON ({exc.msg} at line {exc.lineno})") \
                from None
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"--hw {path}: unknown field(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        if isinstance(data.get("compute"), dict):
            known_c = {f.name for f in dataclasses.fields(ComputeCosts)}
            bad = sorted(set(data["compute"]) - known_c)
            if bad:
                raise UsageError(f"--hw {path}: unknown compute field(s) {', '.join(bad)}; "
                                 f"known: {', '.join(sorted(known_c))}")
            data = {**data, "compute": ComputeCosts(**data["compute"])}
        return cls().replace(**data)


GAP8 = Gap8Target()

TARGET_TAG = "greenwaves/gap8"


def tvm_target(host: bool = True):
    """The TVM Target for GAP8 code.

    A new target *kind* cannot be registered from Python, so GAP8 is a ``c`` (or, for the host
    check, ``llvm``) target whose ``keys`` include ``gap8``; passes dispatch on that key.
    """

    if host:
        return tvm.target.Target({"kind": "llvm", "keys": ["gap8", "cpu"]})
    _register_tag()
    return tvm.target.Target({"tag": TARGET_TAG})


def _register_tag():

    try:
        tvm.target.Target({"tag": TARGET_TAG})
    except Exception:  # not registered yet in this process
        tvm.target.register_tag(TARGET_TAG, {"kind": "c", "keys": ["gap8", "cpu"],
                                             "mcpu": "gap8", "model": "gap8"})


def is_gap8(target) -> bool:
    return target is not None and "gap8" in list(target.keys)


def gap8_enabled() -> bool:
    """Passes of this package act when no target is set, or the current one is GAP8 (its
    ``keys`` hold ``gap8``): under another target (say a plain ``llvm`` build) they do
    nothing."""

    current = tvm.target.Target.current(allow_none=True)
    return current is None or is_gap8(current)


_register_tag()  # ``tvm.target.Target("greenwaves/gap8")`` works once tvm_gap8 is imported
