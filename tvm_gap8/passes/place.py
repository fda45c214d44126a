"""The network's memory placement, decided once, and the lowering that plans under it.

Where a tensor lives depends on the network's tensors only (their bytes and lifetimes), never
on the tiles: so the network is lowered once to learn its tensors (the same ones the C emits,
read by ``emitc.network.read_tensors``), the placement is decided on them, and, when it puts
anything in L3, the network is lowered again with every layer planned and costed under it
(``LowerFusedKernels`` reading ``compilation.placement``). The record is the compilation's
(``Compilation.placement``): the report and the C emitter read it there.

The rule: activations in L2 (one arena, first fit over lifetimes) while they fit beside the
weights the cores read directly; when they do not, the largest activations that only copy
stages touch move to L3 (their own arena, first fit too), the fewest that let the L2 arena fit
beside one stage buffer (DORY's and AutoTiler's answer: activations tiled L3 <-> L2 <-> L1;
each input tile then crosses L3 -> L2 stage -> L1, each output tile L1 -> L2 stage -> L3).
Weights the cores read directly in L2; the weights a layer's DMA stages read (its streamable
weights) in L2 while they fit beside the arena, else in L3 — when something must go, the L2
room goes first to the layers whose weights are copied most often per byte (their plans'
weight traffic / weight bytes), so the fewest bytes cross L3 -> L2; ties in layer order.
Anything in L3 needs one staging buffer in L2 for one copy: reserved at its bound (the L1
budget, or the largest weight in L3 when smaller) for the decision, then sized to the final
kernels' largest copy through it.
"""

from __future__ import annotations

from dataclasses import replace

import tvm
from tvm import relax

from ..emitc.network import ALIGN, activation_arenas, read_tensors, root_of
from ..errors import UnsupportedError
from ..ir.placement import (ACTIVATION_ROLE, WEIGHT_ROLE, WEIGHT_TILE_BYTES, LayerPlacement,
                         Placement, TensorPlace)
from ..target import GAP8, Gap8Target, gap8_enabled
from ..ir.tirwalk import sblocks
from ..cost.ir import copy_traffic, largest_copy
from ..ir.vocab import (COPY_ANN, INPUT, KIND_ATTR, L1_TO_L2, L2_TO_L1, L2_TO_L1_WGT, OUTPUT,
                         PLACEMENT_ATTR, PLAN_FIGURES_ATTR)
from .compilation import Compilation
from .lower import LowerFusedKernels
from .qdq import SimplifyQDQ
from .tables import MergeTables


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def dma_read_params(prim: tvm.tirx.PrimFunc) -> set:
    """Indices of a kernel's parameters that only its copy stages read (the DMA moves them:
    they may live in L3)."""
    return _copied_only(prim, lambda block: block.reads)


def dma_write_params(prim: tvm.tirx.PrimFunc) -> set:
    """Indices of a kernel's parameters that only its copy stages write."""
    return _copied_only(prim, lambda block: block.writes)


def _copied_only(prim, regions) -> set:
    copied, direct = set(), set()
    for block in sblocks(prim):
        names = {r.source.name for r in regions(block)}
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


def _l3_candidates(read) -> list:
    """Activations that may live in L3, largest first: written and read only by copy stages
    (the cores cannot address L3) of gap8 kernels that read no other activation (a layer's
    inputs are all in L2 or all in L3, so its L3 traffic is its plan's input traffic) and whose
    layer names are the network's alone (the placement is read per layer name)."""
    names = [layer.name for layer in read.layers]
    ok: dict = {}
    for layer in read.layers:
        prim = read.mod[layer.kernel]
        unique = layer.gap8 and names.count(layer.name) == 1
        reads = dma_read_params(prim) if unique else set()
        acts = {root_of(read.tensors, a) for a in layer.args[:-1]
                if read.tensors[a].kind != "const"}
        for i, arg in enumerate(layer.args[:-1]):
            if read.tensors[arg].kind != "const":
                root = root_of(read.tensors, arg)
                ok[root] = ok.get(root, True) and i in reads and len(acts) == 1
        out = root_of(read.tensors, layer.args[-1])
        ok[out] = ok.get(out, True) and unique and \
            len(layer.args) - 1 in dma_write_params(prim)
    return sorted((n for n, good in ok.items() if good and read.tensors[n].kind == "act"),
                  key=lambda n: (-read.tensors[n].nbytes, n))


def _activations_in_l3(read, hw: Gap8Target, budget: int, direct_bytes: int,
                       weight_stage: int) -> set:
    """The activations that go to L3: none while the L2 arena fits the ``budget`` beside the
    weights the cores read directly and the L3 weight stage (``weight_stage``: 0 when no
    weight goes to L3); else the fewest largest ``_l3_candidates`` for the arena to fit beside
    them and one stage (bound: the L1 budget), all of them when it cannot (the C emitter
    reports the overflow)."""
    l3: set = set()
    if activation_arenas(read.tensors)[1] + direct_bytes + weight_stage <= budget:
        return l3
    candidates = _l3_candidates(read)
    while activation_arenas(read.tensors, l3)[1] > budget - direct_bytes - hw.l1_budget \
            and candidates:
        l3.add(candidates.pop(0))
    return l3


def decide_placement(lowered: tvm.IRModule, hw: Gap8Target) -> Placement:
    """Every weight's and activation's memory for the network ``lowered`` (see the module)."""
    read = read_tensors(lowered)
    streamable, direct = _weights_of(read)
    weight_bytes = {n: _aligned(t.nbytes) for n, t in read.tensors.items() if t.kind == "const"}
    io = sum(_aligned(t.nbytes) for t in read.tensors.values() if t.kind in ("input", "output"))
    budget = hw.l2_budget - io  # the caller's inputs and outputs are in L2 too
    direct_bytes, all_weights = sum(weight_bytes[n] for n in direct), sum(weight_bytes.values())
    # the stage an L3 weight copy needs, when the weights do not all fit beside the activations
    weights_fit = activation_arenas(read.tensors)[1] + all_weights <= budget
    weight_stage = 0 if weights_fit or not streamable else _stage_bytes(
        hw, {n for names in streamable.values() for n in names}, weight_bytes)
    l3_acts = _activations_in_l3(read, hw, budget, direct_bytes, weight_stage)
    _, arena, _, l3_arena = activation_arenas(read.tensors, l3_acts)
    act_stage = hw.l1_budget if l3_acts else 0  # bound: one activation copy lands in L1
    room = budget - arena - direct_bytes  # for the streamable weights and the stage
    l3: set = set()
    if all_weights - direct_bytes > room - act_stage and streamable:
        l3 = _in_l3(read, streamable, room - max(act_stage, weight_stage))
    stage = max(act_stage, _stage_bytes(hw, l3, weight_bytes))
    l3_bytes = sum(weight_bytes[n] for n in l3)
    return Placement(_layer_placements(read, l3, l3_acts, weight_bytes), hw.l2_budget, arena,
                     stage, all_weights - l3_bytes, l3_bytes, l3_arena, io)


def _layer_placements(read, l3: set, l3_acts: set, weight_bytes: dict) -> tuple:
    """Every layer's LayerPlacement: its weights in L3 when in ``l3``, its activations when
    (their alias roots) in ``l3_acts``."""
    layers = []
    for layer in read.layers:
        consts = [n for n in dict.fromkeys(layer.args[:-1]) if read.tensors[n].kind == "const"]
        acts = [n for n in dict.fromkeys(layer.args) if read.tensors[n].kind != "const"]
        memory = {n: "L3" if root_of(read.tensors, n) in l3_acts else "L2" for n in acts}
        layers.append(LayerPlacement(
            layer.name, "L3" if any(n in l3 for n in consts) else "L2",
            tuple(TensorPlace(n, WEIGHT_ROLE, "L3" if n in l3 else "L2", weight_bytes[n])
                  for n in consts),
            tuple(TensorPlace(n, ACTIVATION_ROLE, memory[n], read.tensors[n].nbytes)
                  for n in acts),
            inputs_in="L3" if any(memory[n] == "L3" for n in acts[:-1]) else "L2",
            output_in=memory[acts[-1]] if acts else "L2"))
    return tuple(layers)


def _lower(mod, hw, compilation):
    return tvm.transform.Sequential([LowerFusedKernels(hw, compilation), MergeTables(),
                                     SimplifyQDQ(), relax.transform.FoldConstant()])(mod)


def _same_tensors(lowered, placement: Placement) -> None:
    """The re-lowered network has the tensors the placement was decided on."""
    tensors = read_tensors(lowered).tensors
    for p in placement.layers:
        for t in p.weights + p.activations:
            size = tensors[t.name].nbytes if t.name in tensors else None
            if size is None or (_aligned(size) if t.role == WEIGHT_ROLE else size) != t.nbytes:
                raise RuntimeError(f"placement: {t.role} {t.name} of layer {p.layer} changed "
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
        if placement.uses_l3:
            lowered = _lower(mod, self.hw, self.compilation)
            _same_tensors(lowered, placement)
            # the stage was reserved at its bound; the final tiles say what it must hold
            self.compilation.placement = replace(placement,
                                                 stage_bytes=_final_stage(lowered, placement))
        return lowered


def _final_stage(lowered, placement: Placement) -> int:
    """The L3 stage the final kernels need: the largest single copy that crosses it (one L3
    copy stages at most one tile): weight tiles of the layers whose weights are in L3, input
    and output copies of the layers whose activations are, within the decision's bound."""
    copies = []
    for _, f in lowered.functions_items():
        if not (isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None
                and PLACEMENT_ATTR in f.attrs):
            continue
        where = f.attrs[PLACEMENT_ATTR]
        if str(where["weights_in"]) == "L3":
            copies.append(int(where[WEIGHT_TILE_BYTES]))
        acts = [(d, role) for d, role, key in ((L2_TO_L1, INPUT, "inputs_in"),
                                               (L1_TO_L2, OUTPUT, "output_in"))
                if str(where[key]) == "L3"]
        traffic = copy_traffic(f) if acts else {}
        copies += [largest_copy(traffic, d, role) for d, role in acts]
    return min(placement.stage_bytes, _aligned(max(copies, default=placement.stage_bytes)))


def _has_kernels(mod) -> bool:
    return any(isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None and KIND_ATTR in f.attrs
               for _, f in mod.functions_items())
