"""A chain's expanded rows kept from one row tile to the next instead of recomputed.

Consecutive row tiles of a chain read overlapping rows of the expanded tensor (the DW's halo:
``k - stride`` rows). The schedule (``kernels/pw_dw_pw._channel_blocks``) walks the
expansion's split loop rows outermost and marks it ``HALO_ANN``; after TVM has compacted the
expanded tile to its rows (``CompactBufferAllocation``), this pass, on each row tile loop:

- splits the marked nest in two: its first rows (the halo) and the rest, which every tile
  computes;
- computes the halo's image rows on the first tile only, right before the rest (its input
  tile is in by then); on the others it moves the previous tile's last rows up to them (an
  L1 -> L1 move split over the cores by channel), before anything else writes the tile (the
  ring fill would overwrite rows it reads).

Every lowering of a kernel runs it (``cost/ir.inspection_passes``), so what the report counts
and what the C computes are the same IR. TVM's ``rolling_buffer`` keeps rows too, but
circularises the buffer (row ``i % rows``): the DW's windows would no longer be contiguous.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import s_tir, tirx

from .tirwalk import walk
from .vocab import HALO_ANN, L1_SCOPE, PAR_ANN, TILE_ANN

_PIPELINE = ("software_pipeline_stage", "software_pipeline_order")


def _marked(stmt):
    """The loop under ``stmt`` carrying HALO_ANN, or None."""
    return next((s for s, _ in walk(stmt) if isinstance(s, tirx.For)
                 and HALO_ANN in s.annotations), None)


def _replace_loop(stmt, loop, new):
    return tvm_ffi.structural_map(stmt, (tirx.For, lambda lp: new if lp.same_as(loop) else lp))


def _unmarked(loop, start, extent):
    """``loop`` over iterations [start, start + extent), as a loop from 0, unmarked."""
    body = loop.body
    if start:
        shifted = loop.loop_var + start
        body = tvm_ffi.structural_map(
            body, (tirx.Var, lambda v: shifted if v.same_as(loop.loop_var) else v))
    ann = {k: v for k, v in loop.annotations.items() if k != HALO_ANN}
    return tirx.For(loop.loop_var, 0, extent, loop.kind, body, None, ann)


def _fresh_loop_vars(stmt):
    """``stmt`` with a new variable for every loop it holds (it becomes a sibling of a copy
    of itself, and TVM's simplifier binds each loop variable to one range)."""
    fresh = {}
    for s, _ in walk(stmt):
        if isinstance(s, tirx.For):
            fresh[s.loop_var] = tirx.Var(f"{s.loop_var.name}_first", s.loop_var.ty)
    return tvm_ffi.structural_map(stmt, (tirx.Var, lambda v: fresh.get(v, v)))


def _expanded_tile(loop):
    """The L1 buffer the marked loop's nest stores (the expanded tile)."""
    stores = {s.buffer for s, _ in walk(loop) if isinstance(s, tirx.BufferStore)
              and s.buffer.scope() == L1_SCOPE}
    if len(stores) != 1:
        raise ValueError(f"a halo loop must store one L1 tile, it stores {len(stores)}")
    return stores.pop()


def _move_up(tile, kept: int, step: int, row_axis: int):
    """tile[.., r, ..] = tile[.., r + step, ..] for r < kept, split over the cores along the
    tile's first axis (its channels)."""
    shape = [int(d) for d in tile.shape]
    shape[row_axis] = kept
    idx = [tirx.Var(f"halo_{n}", "int32") for n in range(len(shape))]
    src = list(idx)
    src[row_axis] = idx[row_axis] + step
    body = tirx.BufferStore(tile, tirx.BufferLoad(tile, src), idx)
    for n in reversed(range(len(shape))):
        body = tirx.For(idx[n], 0, shape[n], tirx.ForKind.SERIAL, body, None,
                        {PAR_ANN: 1} if n == 0 else {})
    return body


def _writes(stmt, buffer) -> bool:
    return any(isinstance(s, tirx.BufferStore) and s.buffer.same_as(buffer) for s, _ in walk(stmt))


def _keep_halo(tile_loop, children: list):
    """[(index, statement)] to insert in the row tile loop's ``children`` (the marked nest
    among them replaced by the rows every tile computes), see the module doc; None when no
    child is marked."""
    at = next((n for n, c in enumerate(children) if _marked(c) is not None), None)
    if at is None:
        return None
    nest = children[at]
    loop = _marked(nest)
    kept, step, per_row, row_axis, image_rows = (int(v) for v in loop.annotations[HALO_ANN])
    first = kept * per_row
    tile = _expanded_tile(loop)
    children[at] = _replace_loop(nest, loop, _unmarked(loop, first, int(loop.extent) - first))
    inserts = []
    if image_rows:  # the first tile computes the image rows among them (the last ones), once
        image = _unmarked(loop, (kept - image_rows) * per_row, image_rows * per_row)
        inserts.append((at, tirx.IfThenElse(
            tile_loop.loop_var == 0, _fresh_loop_vars(_replace_loop(nest, loop, image)), None)))
    # the others move them up before anything writes the tile (the ring fill)
    fill = next(n for n, c in enumerate(children) if _writes(c, tile))
    inserts.append((fill, tirx.IfThenElse(tile_loop.loop_var > 0,
                                          _move_up(tile, kept, step, row_axis), None)))
    return inserts


def _pipeline_insert(ann: dict, where: int) -> None:
    """The software-pipeline annotations given a statement inserted at ``where``: the stage
    and place in the order of the statement it precedes."""
    if _PIPELINE[0] not in ann:
        return
    stages = [int(v) for v in ann[_PIPELINE[0]]]
    order = [int(v) for v in ann[_PIPELINE[1]]]
    slot = order[where]
    ann[_PIPELINE[0]] = stages[:where] + [stages[where]] + stages[where:]
    order = [o + (o >= slot) for o in order]
    ann[_PIPELINE[1]] = order[:where] + [slot] + order[where:]


def _rows_loop(loop):
    if str(loop.annotations.get(TILE_ANN, "")) != "rows" or _marked(loop.body) is None:
        return loop
    realize = loop.body  # the tile's allocations, then its statements
    if not isinstance(realize, s_tir.SBlockRealize) or \
            not isinstance(realize.block.body, tirx.SeqStmt):
        raise ValueError("a halo row tile loop must hold a block of statements")
    block = realize.block
    children = list(block.body.seq)
    inserts = _keep_halo(loop, children)
    if inserts is None:
        return loop
    ann = dict(loop.annotations)
    for where, stmt in sorted(inserts, key=lambda x: -x[0]):  # the later first
        children.insert(where, stmt)
        _pipeline_insert(ann, where)
    block = s_tir.SBlock(block.iter_vars, block.reads, block.writes, block.name_hint,
                         tirx.SeqStmt(children), block.init, block.alloc_buffers,
                         block.match_buffers, block.annotations)
    return tirx.For(loop.loop_var, loop.min, loop.extent, loop.kind,
                    s_tir.SBlockRealize(realize.iter_values, realize.predicate, block), None, ann)


@tvm.tirx.transform.prim_func_pass(opt_level=0, name="gap8.KeepHaloRows")
def keep_halo_rows(func, mod, ctx):
    """Run after ``CompactBufferAllocation`` (the expanded tile in its tile's rows)."""
    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.For, _rows_loop)))
