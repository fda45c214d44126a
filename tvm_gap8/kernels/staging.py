"""Pieces every GAP8 kernel schedule shares: the L1 staging of copies, and the arithmetic of
operands (float, or integer with zero points).

Conventions, checked by the IR tests and read by the cost model:
* every L2->L1 / L1->L2 copy is a block annotated ``gap8.copy`` = ``l2_to_l1`` / ``l1_to_l2``,
  with ``gap8.role`` = ``input`` | ``weight`` | ``output``;
* a fused intermediate is produced by the block annotated ``gap8.role = intermediate``;
* L1 buffers are in scope ``global.l1`` (``target.L1_SCOPE``), accumulators in ``local``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir, tirx

from ..ir.box import inside
from ..ir.tirwalk import sblocks, walk
from ..ir.vocab import (CHW, COPY_ANN, INPUT, INTERMEDIATE, L1_SCOPE, L1_TO_L2, L2_TO_L1, OUTPUT,
                        ROLE_ANN, TILE_ANN, TRANSPOSE_ANN, WEIGHT)
from .layout import KernelLayouts, element, stage


@dataclass(frozen=True)
class Operand:
    """How a kernel reads one tensor: element type, zero point, and the accumulation type."""

    dtype: str = "float32"
    zero_point: int = 0

    def acc_dtype(self) -> str:
        return "float32" if self.dtype.startswith("float") else "int32"

    def load(self, value):
        """The value as it enters the MAC: cast to the accumulator type, zero point removed."""
        acc = self.acc_dtype()
        if acc == "float32":
            return value if value.dtype == "float32" else value.astype("float32")
        v = value.astype(acc)
        return v - tirx.const(self.zero_point, acc) if self.zero_point else v

    def zero(self):
        return tirx.const(0, self.acc_dtype())


def padded_input(x, operand: Operand, padding, layouts: KernelLayouts = KernelLayouts()):
    """The input in padded coordinates, as the stage that copies it L2->L1: ``x`` stored in
    ``layouts.source``, the stage in ``layouts.tile`` (a transposing copy when they differ).

    The ring is filled with the zero point (the real value 0), the interior is copied. Kernels
    read it without bounds checks, and every row tile needs the same number of its rows, so
    TVM compacts the L1 buffer to exactly one tile (halo included)."""
    t, l, b, r = padding
    n, c, h, w = logical_shape(x, layouts.source)
    dtype = str(x.dtype)
    fill = tirx.const(operand.zero_point if not dtype.startswith("float") else 0, dtype)
    if not any(padding):
        return stage((n, c, h, w),
                     lambda nn, cc, yy, xx: element(x, layouts.source, nn, cc, yy, xx),
                     layouts.tile, "x_pad")
    return stage(
        (n, c, h + t + b, w + l + r),
        lambda nn, cc, yy, xx: tirx.if_then_else(
            inside(yy, xx, t, l, h, w), element(x, layouts.source, nn, cc, yy - t, xx - l), fill),
        layouts.tile, "x_pad")


def logical_shape(x, layout: str) -> tuple:
    n, a, b, d = (int(v) for v in x.shape)
    return (n, a, b, d) if layout == CHW else (n, d, a, b)


def stage_padded_input(sch, loop, transposing: bool = False):
    """Place the ``x_pad`` stage in L1 at ``loop``: the kernel's input copy (annotated
    ``gap8.transpose`` when it transposes the layout)."""
    block = sch.get_sblock("x_pad")
    sch.compute_at(block, loop)
    sch.set_scope(block, 0, L1_SCOPE)
    sch.annotate(block, COPY_ANN, L2_TO_L1)
    sch.annotate(block, ROLE_ANN, INPUT)
    if transposing:
        sch.annotate(block, TRANSPOSE_ANN, 1)
    return block


def stage_in(sch, block, name, role, loop=None):
    """Copy read buffer ``name`` of ``block`` L2->L1: at ``loop`` (per tile) or at the root."""
    cb = sch.cache_read(block, name, L1_SCOPE)
    if loop is not None:
        sch.compute_at(cb, loop)
    sch.annotate(cb, COPY_ANN, L2_TO_L1)
    sch.annotate(cb, ROLE_ANN, role)
    return cb


def stage_out(sch, block, loop):
    """The block computes into an L1 tile that is copied L1->L2 once per iteration of loop."""
    copy = sch.cache_write(block, 0, L1_SCOPE)
    sch.reverse_compute_at(copy, loop)
    sch.annotate(copy, COPY_ANN, L1_TO_L2)
    sch.annotate(copy, ROLE_ANN, OUTPUT)
    return copy


def stage_intermediate(sch, block, loop):
    """A fused kernel's intermediate: computed per tile at ``loop`` (None: once, at the root)
    into L1, nowhere else."""
    if loop is not None:
        sch.compute_at(block, loop)
    sch.set_scope(block, 0, L1_SCOPE)
    sch.annotate(block, ROLE_ANN, INTERMEDIATE)


def _reader(sch, name: str):
    """The first block (program order) that reads the buffer ``name``."""
    for block in sblocks(sch.mod["main"]):
        if any(region.source.name == name for region in block.reads):
            return sch.get_sblock(block.name_hint)
    raise ValueError(f"no block reads {name!r}")


def stage_buffers(sch, plan, loops: dict, roles=(OUTPUT, INTERMEDIATE, INPUT, WEIGHT)):
    """Stage the plan's declared L1 buffers of ``roles``, in declaration order, each at the
    loop its ``at`` names (``loops``: label -> loop; a label not in it, e.g. ``root``: once
    outside the tile loops). The one place a schedule's copies come from."""
    for b in plan.buffers:
        if b.role not in roles:
            continue
        loop = loops.get(b.at)
        if b.role == OUTPUT:
            stage_out(sch, sch.get_sblock(b.name), loop)
        elif b.role == INTERMEDIATE:
            stage_intermediate(sch, sch.get_sblock(b.name), loop)
        elif b.name == "x_pad":
            stage_padded_input(sch, loop, b.transposing)
        else:
            stage_in(sch, _reader(sch, b.name), b.name, b.role, loop)


def finish_staged(sch, plan, loops: dict, roles=(OUTPUT, INTERMEDIATE, INPUT, WEIGHT)):
    """Stage the plan's buffers (of ``roles``), double-buffer its pipelined loop, and return
    the PrimFunc."""
    stage_buffers(sch, plan, loops, roles)
    for axis, loop in loops.items():  # the C names the tile loops by their axis
        if int(sch.get(loop).extent) > 1:  # (an annotated unit loop would stay in the C)
            sch.annotate(loop, TILE_ANN, axis)
    if plan.pipelined:
        double_buffer(sch, loops[plan.pipelined])
    return finish(sch)


def scalar_accumulator(sch, block, loop):
    """Compute a reduction block per output element into a register."""
    sch.compute_at(block, loop)
    sch.set_scope(block, 0, "local")


def double_buffer(sch, loop):
    """Double-buffer the copies that are direct children of ``loop``.

    Children that only copy L2->L1 become pipeline stage 0, children that only copy L1->L2
    stage 2, the compute in between stage 1. TVM's InjectSoftwarePipeline then gives each of
    those L1 buffers two versions (a leading dimension of 2): the DMA fills tile i+1 and drains
    tile i-1 while the cores compute tile i — GAP8's double-buffered DMA, in the IR.
    """
    body = sch.get(loop).body
    children = list(body.seq) if hasattr(body, "seq") else [body]
    stages = []
    for child in children:
        directions = set()
        for stmt, _ in walk(child):
            if isinstance(stmt, s_tir.SBlock):
                directions.add(str(stmt.annotations.get(COPY_ANN, "compute")))
        stages.append(0 if directions == {L2_TO_L1} else
                      2 if directions == {L1_TO_L2} else 1)
    if 1 not in stages or len(set(stages)) < 2:
        return False
    # the copies in first (a compute child before them, e.g. a fill of an intermediate, reads
    # nothing they write): each child's place in the loop body's order
    sequence = [i for i, st in enumerate(stages) if st == 0] + \
        [i for i, st in enumerate(stages) if st != 0]
    sch.annotate(loop, "software_pipeline_stage", stages)
    sch.annotate(loop, "software_pipeline_order", [sequence.index(i) for i in range(len(stages))])
    return True


def finish(sch):
    # the schedule's module names its function "main"; the caller picks the real name
    return sch.mod["main"].without_attr("global_symbol")
