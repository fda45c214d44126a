"""Readable kernels: tile loops indexed by their axis' name, and the comment above each emitted
kernel: its tile loops, its L1 arena (offset, bytes, buffer,
what the buffer holds) and the stages of a tile, read off the kernel's own IR (the copy blocks'
annotations, the tile loops the schedule named, the arena ``plainc`` laid out)."""

from __future__ import annotations

import tvm_ffi
from tvm import s_tir, tirx

from ..ir.tirwalk import walk
from ..ir.vocab import COPY_ANN, L2_TO_L1, ROLE_ANN, TILE_ANN


#: the C name of a tile loop's index, by the plan's axis
TILE_NAMES = {"rows": "row_tile", "cols": "col_tile", "channels": "channel_tile",
              "in_channels": "in_channel_tile", "dw_channels": "dw_channel_tile"}


def name_tile_loops(func):
    """Tile loops (``TILE_ANN``, set by the schedule) indexed by a variable named after their
    axis (``row_tile``, ``channel_tile``, ...) instead of TVM's ``i2_0``."""
    def visit(loop):
        axis = loop.annotations.get(TILE_ANN) if loop.annotations else None
        if axis is None:
            return loop
        var = tirx.Var(TILE_NAMES.get(str(axis), f"{axis}_tile"), loop.loop_var.ty.dtype)
        old = loop.loop_var
        body = tvm_ffi.structural_map(loop.body, (tirx.Var, lambda v: var if v.same_as(old)
                                                  else v))
        return tirx.For(var, loop.min, loop.extent, loop.kind, body, None, loop.annotations,
                        loop.step, loop.span)

    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.For, visit)))


def _c_name(name: str) -> str:
    return name.replace(".", "_")


def buffer_roles(prim) -> dict:
    """L1 buffer (C name) -> what it holds (``input, copied in``), from the copy blocks of the
    scheduled kernel; an L1 buffer no copy touches is an intermediate (a fused pair's)."""
    roles = {}
    for stmt, _ in walk(prim.body):
        if isinstance(stmt, s_tir.SBlock) and COPY_ANN in stmt.annotations:
            into_l1 = str(stmt.annotations[COPY_ANN]) == L2_TO_L1
            l1 = stmt.writes[0].source if into_l1 else stmt.reads[0].source
            role = str(stmt.annotations.get(ROLE_ANN, "output" if not into_l1 else "input"))
            roles[_c_name(l1.name)] = f"{role}, copied {'in' if into_l1 else 'out'}"
    return roles


def tile_loops(func) -> list:
    """(index name, trip count) of the tile loops (``TILE_ANN``), outermost first."""
    seen = {}
    for stmt, _ in walk(func.body):
        if isinstance(stmt, tirx.For) and stmt.annotations and TILE_ANN in stmt.annotations \
                and isinstance(stmt.extent, tirx.IntImm):
            seen.setdefault(stmt.loop_var.name, int(stmt.extent.value))
    return list(seen.items())


def kernel_comment(name: str, prim, func, slots, l1_bytes: int) -> str:
    """The block comment above kernel ``name`` (``prim``: the scheduled kernel, ``func``: its
    final TIR, ``slots``: its L1 arena)."""
    roles = buffer_roles(prim)
    loops = tile_loops(func)
    tiles = " > ".join(f"{n} ({k} tiles)" for n, k in loops) or "none (one tile)"
    lines = [f"/* {name}",
             f" *   tile loops: {tiles}",
             " *   per tile: inputs and weights copied L2 -> L1 (DMA), computed by the cluster's",
             " *   cores (each its share of the parallel loop), outputs copied L1 -> L2",
             f" *   L1 arena l1_p, {l1_bytes:,} B:",
             " *     offset    bytes  buffer (type; what it holds)"]
    for slot in slots:
        c_name = _c_name(slot.name)
        what = roles.get(c_name, "intermediate, stays in L1")
        lines.append(f" *   {slot.offset:>8} {slot.nbytes:>8}  {c_name} ({slot.dtype}; {what})")
    return "\n".join(lines) + " */\n"
