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

from ..target import L1_SCOPE

COPY_ANN = "gap8.copy"
ROLE_ANN = "gap8.role"


@dataclass(frozen=True)
class Operand:
    """How a kernel reads one tensor: element type, zero point, and the accumulation type."""

    dtype: str = "float32"
    zero_point: int = 0

    def acc_dtype(self) -> str:
        return "float32" if self.dtype.startswith("float") else "int32"

    def load(self, value):
        """The value as it enters the MAC: cast to the accumulator type, zero point removed."""
        from tvm import tirx

        acc = self.acc_dtype()
        if acc == "float32":
            return value if value.dtype == "float32" else value.astype("float32")
        v = value.astype(acc)
        return v - tirx.const(self.zero_point, acc) if self.zero_point else v

    def zero(self):
        from tvm import tirx

        return tirx.const(0, self.acc_dtype())


def inside(y, x, t, l, h, w):
    from tvm import tirx

    return tirx.all(y >= t, y < h + t, x >= l, x < w + l)


def stage_in(sch, block, name, role, loop=None):
    """Copy read buffer ``name`` of ``block`` L2->L1: at ``loop`` (per tile) or at the root."""
    cb = sch.cache_read(block, name, L1_SCOPE)
    if loop is not None:
        sch.compute_at(cb, loop)
    sch.annotate(cb, COPY_ANN, "l2_to_l1")
    sch.annotate(cb, ROLE_ANN, role)
    return cb


def stage_params(sch, blocks, names):
    """Per-channel parameters (bias, requant multipliers): copied once, at the root."""
    names = set(names)
    for block in blocks:
        for region in sch.get(block).reads:
            if region.source.name in names:
                names.discard(region.source.name)
                stage_in(sch, block, region.source.name, "weight")


def stage_out(sch, block, loop):
    """The block computes into an L1 tile that is copied L1->L2 once per iteration of loop."""
    copy = sch.cache_write(block, 0, L1_SCOPE)
    sch.reverse_compute_at(copy, loop)
    sch.annotate(copy, COPY_ANN, "l1_to_l2")
    sch.annotate(copy, ROLE_ANN, "output")
    return copy


def scalar_accumulator(sch, block, loop):
    """Compute a reduction block per output element into a register."""
    sch.compute_at(block, loop)
    sch.set_scope(block, 0, "local")


def finish(sch):
    # the schedule's module names its function "main"; the caller picks the real name
    return sch.mod["main"].without_attr("global_symbol")
