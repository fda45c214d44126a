"""Where every weight and activation lives (L1, L2, L3), as one record decided once per network.

The decision (``passes/place.py``) is made on the network's tensors, before the final tile
plans are costed, and kept on the compile's ``Compilation``; the tiler costs each layer under
it (``Gap8Target.weights_memory``), the lowering writes each kernel's share of it on the kernel
(``gap8.placement``), the report prints it and the C emitter places the arrays by it: nobody
else decides. This module is the record; it imports nothing of the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass

from .vocab import L1_TO_L2_ACT, L2_TO_L1_ACT, L2_TO_L1_WGT, L2_TO_L3, L3_TO_L2

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
    each weight tile goes L3 -> L2 stage -> L1); weights the cores read directly stay in L2.
    ``inputs_in`` / ``output_in``: where the activations it reads / writes live (L3: each tile
    crosses the L2 stage on its way, only for a layer whose copy stages alone touch them)."""
    layer: str
    weights_in: str
    weights: tuple  # TensorPlace of every constant the layer reads
    activations: tuple  # TensorPlace of the activations it reads and writes (output last)
    inputs_in: str = "L2"
    output_in: str = "L2"

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
    arena, those L2 cannot hold in an L3 one; the caller's inputs and outputs; one L3 stage
    buffer of ``stage_bytes`` only when something is in L3)."""
    layers: tuple  # LayerPlacement
    l2_budget: int
    activation_arena_bytes: int  # the L2 activation arena
    stage_bytes: int
    l2_weight_bytes: int
    l3_weight_bytes: int
    l3_activation_bytes: int = 0  # the L3 activation arena (activations L2 cannot hold)
    io_bytes: int = 0  # the network's inputs and outputs, in L2 (the caller's buffers)

    def of(self, layer: str) -> LayerPlacement | None:
        return next((p for p in self.layers if p.layer == layer), None)

    def weights_in(self, layer: str) -> str:
        """Where ``layer``'s staged weights live (L2 for a layer the record does not hold)."""
        found = self.of(layer)
        return found.weights_in if found is not None else "L2"

    def memories(self, layer: str) -> dict:
        """The ``Gap8Target`` fields ``layer`` is planned and costed with: where its weights,
        inputs and output live (all L2 for a layer the record does not hold)."""
        found = self.of(layer)
        if found is None:
            return {"weights_memory": "L2", "inputs_memory": "L2", "output_memory": "L2"}
        return {"weights_memory": found.weights_in, "inputs_memory": found.inputs_in,
                "output_memory": found.output_in}

    @property
    def uses_l3(self) -> bool:
        return bool(self.l3_weight_bytes or self.l3_activation_bytes)

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
    def fits_l2(self) -> bool:
        """Whether what the placement keeps in L2 (activation arena, L2 weights, stage) fits
        the L2 budget (false only when the activations L3 cannot take do not fit)."""
        return self.l2_peak_bytes <= self.l2_budget

    @property
    def l2_peak_bytes(self) -> int:
        """L2 the data takes (activations, L2 weights, stage, the caller's inputs and
        outputs): the budget's share in use."""
        return self.activation_arena_bytes + self.l2_weight_bytes + self.stage_bytes + \
            self.io_bytes

    def describe(self) -> dict:
        """report.json's ``placement``: the account and, per layer, memories and bytes."""
        return {"l2_budget_bytes": self.l2_budget,
                "activation_arena_bytes": self.activation_arena_bytes,
                "l2_weight_bytes": self.l2_weight_bytes,
                "l3_weight_bytes": self.l3_weight_bytes, "stage_bytes": self.stage_bytes,
                "l3_activation_bytes": self.l3_activation_bytes, "io_bytes": self.io_bytes,
                "l2_peak_bytes": self.l2_peak_bytes, "fits_l2": self.fits_l2,
                "layers": [{"name": p.layer, "weights_in": p.weights_in,
                            "inputs_in": p.inputs_in, "output_in": p.output_in,
                            "weight_bytes": p.weight_bytes,
                            "activations": {t.name: t.memory for t in p.activations}}
                           for p in self.layers]}


#: The key of a kernel's ``gap8.placement`` giving its largest weight tile (one L1 version)
WEIGHT_TILE_BYTES = "weight_tile_bytes"


def kernel_placement(hw, figures: dict, weight_tile_bytes: int) -> dict:
    """A lowered kernel's ``gap8.placement`` attribute: where its staged weights, inputs and
    output live (``hw``: the target the layer was planned on, ``Placement.memories``), the bytes
    its tiles cross L3 -> L2 (weights and inputs in L3: every byte their copies move) and
    L2 -> L3 (an output in L3), from the plan's ``figures`` (equal to the IR's counts), and its
    largest weight tile (what one L3 weight copy stages in L2 at most)."""
    l3_in = figures[L2_TO_L1_WGT] if hw.weights_memory == "L3" else 0
    l3_in += figures[L2_TO_L1_ACT] if hw.inputs_memory == "L3" else 0
    return {"weights_in": hw.weights_memory, "inputs_in": hw.inputs_memory,
            "output_in": hw.output_memory, L3_TO_L2: l3_in,
            L2_TO_L3: figures[L1_TO_L2_ACT] if hw.output_memory == "L3" else 0,
            WEIGHT_TILE_BYTES: weight_tile_bytes}
