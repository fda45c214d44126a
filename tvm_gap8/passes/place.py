"""The network's memory placement, decided once, and the lowering that plans under it.

Where a tensor lives depends on the network's tensors only (their bytes and lifetimes), never
on the tiles: so the network is lowered once to learn its tensors (the same ones the C emits,
read by ``emitc.network.read_tensors``), the placement is decided on them, and, when it puts
any weight in L3, the network is lowered again with every layer planned and costed under it
(``LowerFusedKernels`` reading ``compilation.placement``). The record is the compilation's
(``Compilation.placement``): the report and the C emitter read it there.

The rule: activations in L2 (one arena, first fit over lifetimes); weights the cores read
directly in L2; the weights a layer's DMA stages read (its streamable weights) in L2 while
they fit beside the arena, else in L3 — when something must go, the L2 room goes first to
the layers whose weights are copied most often per byte (their plans' weight traffic / weight
bytes), so the fewest bytes cross L3 -> L2; ties in layer order. A weight in L3 needs one
staging buffer in L2 for one copy: reserved at its bound (the L1 budget, or the largest weight
in L3 when smaller) for the decision, then sized to the final kernels' largest weight tile.
"""

from __future__ import annotations

from dataclasses import replace

import tvm
from tvm import relax

from ..emitc.network import ALIGN, activation_arena, read_tensors
from ..errors import UnsupportedError
from ..ir.placement import (ACTIVATION_ROLE, WEIGHT_ROLE, WEIGHT_TILE_BYTES, LayerPlacement,
                         Placement, TensorPlace)
from ..target import GAP8, Gap8Target, gap8_enabled
from ..ir.tirwalk import sblocks
from ..ir.vocab import COPY_ANN, KIND_ATTR, L2_TO_L1_WGT, PLACEMENT_ATTR, PLAN_FIGURES_ATTR
from .compilation import Compilation
from .lower import LowerFusedKernels
from .qdq import SimplifyQDQ
from .tables import MergeTables


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def dma_read_params(prim: tvm.tirx.PrimFunc) -> set:
    """Indices of a kernel's parameters that only its copy stages read (the DMA moves them:
    they may live in L3)."""
    copied, direct = set(), set()
    for block in sblocks(prim):
        names = {r.source.name for r in block.reads}
        (copied if COPY_ANN in block.annotations else direct).update(names)
    return {i for i, p in enumerate(prim.params) if p.name in copied - direct}


def _weights_of(read) -> tuple[dict, set]:
    """({layer index: its streamable weight names}, names of the weights read directly)."""
    streamable, direct = {}, set()
    for layer in read.layers:
        dma = dma_read_params(read.mod[layer.kernel]) if layer.gap8 else set()
        for i, name in enumerate(layer.args[:-1]):
            if read.tensors[name].kind != "const":
                continue
            if i in dma:
                streamable.setdefault(layer.index, []).append(name)
            else:
                direct.add(name)
    for names in streamable.values():
        names[:] = [n for n in dict.fromkeys(names) if n not in direct]
    return streamable, direct


def _traffic_per_byte(read, layer, names) -> float:
    """How often the layer's plan copies each byte of its streamable weights."""
    prim = read.mod[layer.kernel]
    nbytes = sum(read.tensors[n].nbytes for n in names)
    if not nbytes or not (prim.attrs and PLAN_FIGURES_ATTR in prim.attrs):
        return 0.0
    return int(prim.attrs[PLAN_FIGURES_ATTR][L2_TO_L1_WGT]) / nbytes


def _in_l3(read, streamable: dict, room: int) -> set:
    """Streamable weights that go to L3: the L2 ``room`` filled by the layers with the most
    weight traffic per byte first."""
    order = sorted(streamable, key=lambda i: (-_traffic_per_byte(read, read.layers[i],
                                                                 streamable[i]), i))
    kept, out = set(), set()
    for i in order:
        todo = [n for n in streamable[i] if n not in kept and n not in out]
        size = sum(_aligned(read.tensors[n].nbytes) for n in todo)
        (kept if size <= room else out).update(todo)
        room -= size if size <= room else 0
    return out


def _stage_bytes(hw: Gap8Target, l3: set, weight_bytes: dict) -> int:
    """The L2 buffer L3 weight tiles pass through: one copy, no larger than the L1 budget nor
    than the largest weight in L3."""
    return min(hw.l1_budget, max((weight_bytes[n] for n in l3), default=0))


def decide_placement(lowered: tvm.IRModule, hw: Gap8Target) -> Placement:
    """Every weight's and activation's memory for the network ``lowered`` (see the module)."""
    read = read_tensors(lowered)
    _, arena = activation_arena(read.tensors)
    streamable, direct = _weights_of(read)
    weight_bytes = {n: _aligned(t.nbytes) for n, t in read.tensors.items() if t.kind == "const"}
    room = hw.l2_budget - arena
    l3: set = set()
    stage = 0
    if sum(weight_bytes.values()) > room and streamable:
        stage = _stage_bytes(hw, {n for names in streamable.values() for n in names}, weight_bytes)
        l3 = _in_l3(read, streamable, room - stage - sum(weight_bytes[n] for n in direct))
        stage = _stage_bytes(hw, l3, weight_bytes)
    layers = []
    for layer in read.layers:
        consts = [n for n in dict.fromkeys(layer.args[:-1]) if read.tensors[n].kind == "const"]
        acts = [n for n in dict.fromkeys(layer.args) if read.tensors[n].kind != "const"]
        layers.append(LayerPlacement(
            layer.name, "L3" if any(n in l3 for n in consts) else "L2",
            tuple(TensorPlace(n, WEIGHT_ROLE, "L3" if n in l3 else "L2", weight_bytes[n])
                  for n in consts),
            tuple(TensorPlace(n, ACTIVATION_ROLE, "L2", read.tensors[n].nbytes)
                  for n in acts)))
    l3_bytes = sum(weight_bytes[n] for n in l3)
    return Placement(tuple(layers), hw.l2_budget, arena, stage,
                     sum(weight_bytes.values()) - l3_bytes, l3_bytes)


def _lower(mod, hw, compilation):
    return tvm.transform.Sequential([LowerFusedKernels(hw, compilation), MergeTables(),
                                     SimplifyQDQ(), relax.transform.FoldConstant()])(mod)


def _same_tensors(lowered, placement: Placement) -> None:
    """The re-lowered network has the tensors the placement was decided on."""
    tensors = read_tensors(lowered).tensors
    for p in placement.layers:
        for t in p.weights:
            if t.name not in tensors or _aligned(tensors[t.name].nbytes) != t.nbytes:
                raise RuntimeError(f"placement: weight {t.name} of layer {p.layer} changed "
                                    "when the network was planned under its placement")


@tvm.transform.module_pass(opt_level=0, name="LowerAndPlace")
class LowerAndPlace:
    """``LowerFusedKernels`` (then ``MergeTables``, ``SimplifyQDQ``, ``FoldConstant``) under the network's
    memory placement, decided once (``decide_placement``) and recorded on the compilation
    (``Compilation.placement``). A network the C back end cannot read (``--emit-c`` would
    refuse it too) is lowered with every weight in L2 and gets no placement."""

    def __init__(self, hw: Gap8Target = GAP8, compilation: Compilation | None = None):
        self.hw = hw
        self.compilation = compilation if compilation is not None else Compilation()

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        self.compilation.placement = None
        lowered = _lower(mod, self.hw, self.compilation)
        if not gap8_enabled() or not _has_kernels(lowered):
            return lowered
        try:
            placement = decide_placement(lowered, self.hw)
        except UnsupportedError:
            return lowered
        self.compilation.placement = placement
        if placement.l3_weight_bytes:
            lowered = _lower(mod, self.hw, self.compilation)
            _same_tensors(lowered, placement)
            # the stage was reserved at its bound; the final tiles say what it must hold
            self.compilation.placement = replace(placement,
                                                 stage_bytes=_final_stage(lowered, placement))
        return lowered


def _final_stage(lowered, placement: Placement) -> int:
    """The L3 stage the final kernels need: their largest weight tile among the layers whose
    weights are in L3 (one L3 copy stages at most one tile), within the decision's bound."""
    tiles = [int(f.attrs[PLACEMENT_ATTR][WEIGHT_TILE_BYTES]) for _, f in lowered.functions_items()
             if isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None
             and PLACEMENT_ATTR in f.attrs and str(f.attrs[PLACEMENT_ATTR]["weights_in"]) == "L3"]
    return min(placement.stage_bytes, _aligned(max(tiles, default=placement.stage_bytes)))


def _has_kernels(mod) -> bool:
    return any(isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None and KIND_ATTR in f.attrs
               for _, f in mod.functions_items())
