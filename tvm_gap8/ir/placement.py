"""Where every weight and activation lives (L1, L2, L3), as one record decided once per network.

The decision (``passes/place.py``) is made on the network's tensors, before the final tile
plans are costed, and kept on the compile's ``Compilation``; the tiler costs each layer under
it (``Gap8Target.weights_memory``), the lowering writes each kernel's share of it on the kernel
(``gap8.placement``), the report prints it and the C emitter places the arrays by it: nobody
else decides. This module is the record; it imports nothing of the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass

from .vocab import L3_TO_L2

MEMORIES = ("L1", "L2", "L3")
WEIGHT_ROLE, ACTIVATION_ROLE = "weight", "activation"


@dataclass(frozen=True)
class TensorPlace:
    """One tensor of the emitted network: its C name, role, memory level and bytes."""
    name: str
    role: str  # weight | activation
    memory: str  # L1 | L2 | L3
    nbytes: int


@dataclass(frozen=True)
class LayerPlacement:
    """One layer's tensors. ``weights_in`` is where the weights its DMA stages read live (L3:
    each weight tile goes L3 -> L2 stage -> L1); weights the cores read directly stay in L2."""
    layer: str
    weights_in: str
    weights: tuple  # TensorPlace of every constant the layer reads
    activations: tuple  # TensorPlace of the activations it reads and writes

    @property
    def weight_bytes(self) -> dict:
        """{memory: bytes} of this layer's weights."""
        out: dict = {}
        for t in self.weights:
            out[t.memory] = out.get(t.memory, 0) + t.nbytes
        return out


@dataclass(frozen=True)
class Placement:
    """The network's placement: per layer (execution order) its tensors' memories, and the L2
    account it was decided against (``l2_budget`` = L2 less code/runtime; activations in one
    arena; one L3 stage buffer of ``stage_bytes`` only when a weight is in L3)."""
    layers: tuple  # LayerPlacement
    l2_budget: int
    activation_arena_bytes: int
    stage_bytes: int
    l2_weight_bytes: int
    l3_weight_bytes: int

    def of(self, layer: str) -> LayerPlacement | None:
        return next((p for p in self.layers if p.layer == layer), None)

    def weights_in(self, layer: str) -> str:
        """Where ``layer``'s staged weights live (L2 for a layer the record does not hold)."""
        found = self.of(layer)
        return found.weights_in if found is not None else "L2"

    def memory_of(self, tensor: str) -> str | None:
        for p in self.layers:
            for t in p.weights + p.activations:
                if t.name == tensor:
                    return t.memory
        return None

    def largest_output(self) -> tuple:
        """(layer, TensorPlace) of the largest activation a layer writes."""
        outs = [(p.layer, p.activations[-1]) for p in self.layers if p.activations]
        return max(outs, key=lambda o: o[1].nbytes, default=(None, None))

    @property
    def activations_fit_l2(self) -> bool:
        """Whether the activation arena fits the L2 budget (activations in L3: not yet)."""
        return self.activation_arena_bytes <= self.l2_budget

    @property
    def l2_peak_bytes(self) -> int:
        """L2 the data takes (activations, L2 weights, stage): the budget's share in use."""
        return self.activation_arena_bytes + self.l2_weight_bytes + self.stage_bytes

    def describe(self) -> dict:
        """report.json's ``placement``: the account and, per layer, memories and bytes."""
        return {"l2_budget_bytes": self.l2_budget,
                "activation_arena_bytes": self.activation_arena_bytes,
                "l2_weight_bytes": self.l2_weight_bytes,
                "l3_weight_bytes": self.l3_weight_bytes, "stage_bytes": self.stage_bytes,
                "l2_peak_bytes": self.l2_peak_bytes,
                "activations_fit_l2": self.activations_fit_l2,
                "layers": [{"name": p.layer, "weights_in": p.weights_in,
                            "weight_bytes": p.weight_bytes,
                            "activations": {t.name: t.memory for t in p.activations}}
                           for p in self.layers]}


#: The key of a kernel's ``gap8.placement`` giving its largest weight tile (one L1 version)
WEIGHT_TILE_BYTES = "weight_tile_bytes"


def kernel_placement(weights_in: str, weight_traffic: int, weight_tile_bytes: int) -> dict:
    """A lowered kernel's ``gap8.placement`` attribute: where its staged weights live, the
    bytes they cross L3 -> L2 (every weight byte its tiles copy, when they live in L3) and its
    largest weight tile (what one L3 copy stages in L2 at most)."""
    return {"weights_in": weights_in, L3_TO_L2: weight_traffic if weights_in == "L3" else 0,
            WEIGHT_TILE_BYTES: weight_tile_bytes}
