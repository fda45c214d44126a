"""One lowered TIR PrimFunc -> a plain C99 function (no TVM runtime, no packed calls).

The recipe (docs/c-emission.md): TVM's s_tir lowering without
``MakePackedAPI``; buffer parameters become pointers bound by ``DeclBuffer``; every ``global.l1``
buffer is a view at a fixed offset of one ``l1`` arena parameter; every annotated copy stage
(``gap8.copy``) becomes a DMA call (``gap8_dma.h``) when its addresses are linear in its loops,
otherwise a core loop that counts what it moves the way ``cost/ir.py`` does; the outermost
data-parallel loop of each compute nest is split over the cluster cores (``gap8_cluster.h``), and
everything else runs on the master core between barriers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import tvm
import tvm_ffi
from tvm import s_tir, tirx

from ..cost.ir import inspection_passes
from ..errors import UnsupportedError
from ..ir.box import inside
from ..ir.float_exp import exp_in_double
from ..ir.tirwalk import walk
from .core_split import (CLUSTER_CORES, PAR_ANN, PAR_OUTER_ANN, fuse_for_balance,
                         mark_parallel_loops, split_nest, split_over_cores, with_annotation)
from .hoist import hoist_invariant_loads
from .intrinsics import dot_products
from .kernel_comment import kernel_comment, name_tile_loops
from .requant_calls import requant_calls
from ..ir.vocab import COPY_ANN, L1_SCOPE, L1_TO_L2, L2_TO_L1, MACS_ATTR, RING_ANN, ROLE_ANN

DMA_ANN = "gap8.dma"  # on every loop of a copy nest: "<direction>:<role>"
TEAM_ANN = "gap8.team_copy"  # a copy every core enters (gap8_copy_strided_part)
L1_ALIGN = 8
#: direction codes of gap8_dma.h
DIRECTIONS = {L2_TO_L1: 0, L1_TO_L2: 1, "l3_to_l2": 2}


@dataclass
class PlainKernel:
    name: str
    source: str  # the C function definition(s), no includes
    prototype: str  # its declaration
    params: list  # (name, C type) of the tensor parameters, in call_tir order
    l1_bytes: int  # the arena this kernel needs
    dma_calls: int  # copy stages that became DMA calls
    core_copies: int  # copy stages left as counted core loops
    parallel_loops: int
    staged: frozenset = frozenset()  # parameters read only by DMA calls (may live in L3)
    dot_calls: int = 0  # reduction loops replaced by gap8_dot_i8 (intrinsics.py)
    ring_fills: int = 0  # padded intermediate tiles filled around their interior only
    whole_fills: int = 0  # ... filled whole (their interior was not a box of the fill's loops)


# -- before lowering: mark copy nests and parallel loops ---------------------------------------

def _mark_copy_loops(func):
    """Annotate the perfect nest of ``ax*`` loops right around each copy block (the loops
    ``cost.ir._copy_loops`` counts as the copy's own) with its direction and role."""

    def visit(loop):
        body = loop.body
        tag = None
        if isinstance(body, s_tir.SBlockRealize) and COPY_ANN in body.block.annotations:
            ann = body.block.annotations
            tag = f"{ann[COPY_ANN]}:{ann[ROLE_ANN]}"
        elif isinstance(body, tirx.For) and DMA_ANN in body.annotations:
            tag = str(body.annotations[DMA_ANN])
        if tag and loop.loop_var.name.startswith("ax"):
            return with_annotation(loop, DMA_ANN, tag)
        return loop

    def single(realize):  # a copy of one element per tile: no loop of its own
        if COPY_ANN not in realize.block.annotations:
            return realize
        ann = realize.block.annotations
        var = tirx.Var("ax_one", "int32")
        return tirx.For(var, 0, 1, tirx.ForKind.SERIAL, realize, None,
                        {DMA_ANN: f"{ann[COPY_ANN]}:{ann[ROLE_ANN]}"})

    body = tvm_ffi.structural_map(func.body, (s_tir.SBlockRealize, single))
    return func.with_body(tvm_ffi.structural_map(body, (tirx.For, visit)))


RING_NEST_ANN = "gap8.ring_nest"  # on every loop right around a ring fill (``_ring_blocks``)


def _ring_blocks(func):
    """Each fill block annotated ``RING_ANN``: its store keeps the interior's points as they
    are (``if_then_else(inside, itself, pad)``: the block after it computes them) and the ``ax*``
    loops right around it are marked, for ``_ring_fills`` to store the ring only."""

    def realize(r):
        block = r.block
        if RING_ANN not in block.annotations:
            return r
        row, col, t, l, h, w = (int(v) for v in block.annotations[RING_ANN])
        store = block.body
        idx = store.indices
        interior = inside(idx[row], idx[col], t, l, h, w)
        keep = tirx.if_then_else(interior, tirx.BufferLoad(store.buffer, idx), store.value)
        block = s_tir.SBlock(block.iter_vars, block.reads, block.writes, block.name_hint,
                             tirx.BufferStore(store.buffer, keep, idx), block.init,
                             block.alloc_buffers, block.match_buffers, block.annotations)
        return s_tir.SBlockRealize(r.iter_values, r.predicate, block)

    def loop(lp):
        b = lp.body
        ring = (isinstance(b, s_tir.SBlockRealize) and RING_ANN in b.block.annotations) or \
            (isinstance(b, tirx.For) and RING_NEST_ANN in b.annotations)
        return with_annotation(lp, RING_NEST_ANN, 1) if ring and \
            lp.loop_var.name.startswith("ax") else lp

    body = tvm_ffi.structural_map(func.body, (s_tir.SBlockRealize, realize))
    return func.with_body(tvm_ffi.structural_map(body, (tirx.For, loop)))


# -- lowering ------------------------------------------------------------------------------

def _lower(func):
    mod = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
    passes = [
        *inspection_passes(),  # the IR the report's counts are read off, then on to C
        s_tir.transform.LowerOpaqueBlock(),
        # a block predicate on the outer loops only (the chain's expansion: the image's pixels)
        # tested once outside the loops below it, which then stay plain reductions
        s_tir.transform.HoistIfThenElse(),
        tirx.transform.FlattenBuffer(),
        tirx.transform.NarrowDataType(32),
        tirx.transform.StmtSimplify(),
    ]
    with tvm.transform.PassContext(config={"tirx.disable_storage_rewrite": True}):
        return tvm.transform.Sequential(passes)(mod)["main"]


def _finish(func):
    mod = tvm.IRModule({"main": func.with_attr("target", tvm.target.Target({"kind": "c"}))})
    passes = [
        exp_in_double,  # float exp as the LLVM build computes it (float_exp.py)
        tirx.transform.ConvertSSA(),
        tirx.transform.StmtSimplify(),
        tirx.transform.RemoveNoOp(),
        tirx.transform.LowerIntrin(),
    ]
    with tvm.target.Target({"kind": "c"}):
        with tvm.transform.PassContext(config={"tirx.disable_storage_rewrite": True,
                                               "tirx.disable_vectorize": True}):
            return tvm.transform.Sequential(passes)(mod)["main"]


# -- after FlattenBuffer: copies -> DMA calls ----------------------------------------------

def _elem_bytes(buf) -> int:
    return tvm.runtime.DataType(str(buf.ty.dtype)).bits // 8


def _nest(loop):
    loops = [loop]
    while isinstance(loops[-1].body, tirx.For) and DMA_ANN in loops[-1].body.annotations:
        loops.append(loops[-1].body)
    return loops, loops[-1].body


def _linear(index, loop_vars):
    coeffs = tvm.sym.detect_linear_equation(index, loop_vars)
    if len(coeffs) != len(loop_vars) + 1:
        return None
    if not all(isinstance(c, tirx.IntImm) for c in coeffs[:-1]):
        return None
    return [int(c.value) for c in coeffs[:-1]], coeffs[-1]


def _merged_dims(extents, dst_c, src_c):
    """Merge loops contiguous on both sides; returns [(extent, dst_stride, src_stride)] outer
    to inner (element units)."""
    dims = [[e, d, s] for e, d, s in zip(extents, dst_c, src_c) if e > 1]
    if not dims:
        return [[1, 1, 1]]
    merged = [dims[-1]]
    for e, d, s in reversed(dims[:-1]):
        inner = merged[0]
        if d == inner[0] * inner[1] and s == inner[0] * inner[2]:
            inner[0] *= e
        else:
            merged.insert(0, [e, d, s])
    return merged


#: one block of at least this many bytes is copied by the team, each core issuing its share
#: (>= 128 B per core; an MCHAN command costs ~100 cycles to issue,
#: shared/tools/gvsoc/README.md), so the master core's issue time does not unbalance the cores
TEAM_COPY_MIN_BYTES = 16384


def _shared_block(lines: int, row: int, dst_stride, src_stride, elem_bytes: int) -> bool:
    """One block (``lines`` of ``row`` elements) the team shares: large, and one contiguous
    run or a line per core at least (the rule of gap8_dma_copy_3d_part)."""
    contiguous = lines == 1 or (dst_stride == row and src_stride == row)
    return lines * row * elem_bytes >= TEAM_COPY_MIN_BYTES and \
        (contiguous or lines >= CLUSTER_CORES)


def _one_run(lines, row, dst_stride, src_stride) -> bool:
    """``lines`` of ``row`` elements that are one contiguous run on both sides."""
    def same(a, b):
        return isinstance(a, (int, tirx.IntImm)) and isinstance(b, (int, tirx.IntImm)) and \
            int(a) == int(b)
    return (isinstance(lines, tirx.IntImm) and int(lines.value) == 1) or \
        (same(dst_stride, row) and same(src_stride, row))


def _copy_call(dptr, sptr, dims, eb, direction):
    """One DMA call for up to 3 dims [(count, dst_stride, src_stride)] (element units, outer to
    inner): ``gap8_dma_copy_1d`` for one contiguous run, ``gap8_dma_copy_3d`` when the
    innermost is contiguous on both sides, else the
    element-strided ``gap8_dma_copy_strided`` (a layout-transposing copy, HWC <-> CHW)."""
    dims = [tuple(d) for d in dims]
    while len(dims) < 3:
        dims.insert(0, (tirx.const(1, "int32"), 0, 0))
    (n2, d2, s2), (n1, d1, s1), (n0, d0, s0) = dims
    if d0 == 1 and s0 == 1:
        args = [n2, n1, n0 * eb, d2 * eb, s2 * eb, d1 * eb, s1 * eb]
        one_block = isinstance(n2, tirx.IntImm) and int(n2.value) == 1
        if one_block and not _shared_block(n1, n0, d1, s1, eb) and _one_run(n1, n0, d1, s1):
            return tirx.Evaluate(tirx.call_extern("int32", "gap8_dma_copy_1d", dptr, sptr,
                                                  n1 * n0 * eb, direction))
        if one_block and not _shared_block(n1, n0, d1, s1, eb):
            return tirx.Evaluate(tirx.call_extern("int32", "gap8_dma_copy_3d", dptr, sptr,
                                                  *args, direction))
        # blocks (a tile's channel planes), or one block large enough to share: the whole team
        # enters, each core issues the commands of its share (gap8_dma_copy_3d_part)
        team = tirx.Var("gap8_c", "int32")
        call = tirx.call_extern("int32", "gap8_dma_copy_3d_part",
                                tirx.call_extern("int32", "gap8_core_of", team), dptr, sptr,
                                *args, direction)
        return tirx.For(team, 0, tirx.call_extern("int32", "gap8_team_size"),
                        tirx.ForKind.SERIAL, tirx.Evaluate(call), None, {TEAM_ANN: 1})
    args = [n2, n1, n0, eb, d2 * eb, s2 * eb, d1 * eb, s1 * eb, d0 * eb, s0 * eb]
    # the whole team enters a layout-transposing copy: the back end gives each core its share
    # when the lines are too short for DMA commands, else core 0 issues them
    team = tirx.Var("gap8_c", "int32")
    call = tirx.call_extern("int32", "gap8_copy_strided_part",
                            tirx.call_extern("int32", "gap8_core_of", team), dptr, sptr, *args,
                            direction)
    return tirx.For(team, 0, tirx.call_extern("int32", "gap8_team_size"), tirx.ForKind.SERIAL,
                    tirx.Evaluate(call), None, {TEAM_ANN: 1})


def _dma_call(loops, store, direction):
    """A DMA call for a plain (unpredicated, unpadded) linear copy nest, or None."""
    if not isinstance(store, tirx.BufferStore) or not isinstance(store.value, tvm.ir.TensorLoad):
        return None
    load = store.value
    if len(store.indices) != 1 or len(load.indices) != 1:
        return None
    if any(not isinstance(lp.extent, tirx.IntImm) for lp in loops):
        return None
    loop_vars = [lp.loop_var for lp in loops]
    dst, src = _linear(store.indices[0], loop_vars), _linear(load.indices[0], loop_vars)
    if dst is None or src is None:
        return None
    for lp in loops:  # loops start at 0 after canonicalization; be sure
        if not (isinstance(lp.min, tirx.IntImm) and int(lp.min.value) == 0):
            return None
    dims = _merged_dims([int(lp.extent.value) for lp in loops], dst[0], src[0])
    if len(dims) > 3:
        return None
    eb = _elem_bytes(store.buffer)
    dptr = tirx.address_of(tirx.BufferLoad(store.buffer, [dst[1]]))
    sptr = tirx.address_of(tirx.BufferLoad(load.source, [src[1]]))
    return _copy_call(dptr, sptr, dims, eb, direction)


def _is_if_then_else(e) -> bool:
    return isinstance(e, tvm.ir.expr.Call) and \
        getattr(e.op, "name", "") in ("tirx.if_then_else", "prim.if_then_else")


def _interior(loops, cond):
    """Per loop: (first, count) of the points where ``cond`` (a conjunction of linear bounds,
    the padding test) holds, as expressions of the enclosing tile loops; None if not of that
    form."""
    loop_vars = [lp.loop_var for lp in loops]
    bounds = tvm.sym.detect_clip_bound(cond, loop_vars)
    if len(bounds) != 2 * len(loops):
        return None
    out = []
    for k, lp in enumerate(loops):
        ext = int(lp.extent.value)
        lo, hi = bounds[2 * k], bounds[2 * k + 1]
        first = tirx.max(lo, 0) if lo is not None else tirx.const(0, "int32")
        last = tirx.min(hi, ext - 1) if hi is not None else tirx.const(ext - 1, "int32")
        out.append((first, tirx.max(last - first + 1, 0)))
    return out


def _padded_dma(loops, store, direction):
    """A padded copy (value ``if_then_else(inside, src[..], pad)``): the cores fill the tile with
    the pad value, then one DMA call moves the interior (what cost.ir counts)."""
    value = store.value
    if not _is_if_then_else(value) or len(store.indices) != 1:
        return None
    cond, load, pad = value.args
    if not isinstance(load, tvm.ir.TensorLoad) or len(load.indices) != 1:
        return None
    if any(not isinstance(lp.extent, tirx.IntImm) or int(lp.min) != 0 for lp in loops):
        return None
    loop_vars = [lp.loop_var for lp in loops]
    dst, src = _linear(store.indices[0], loop_vars), _linear(load.indices[0], loop_vars)
    interior = _interior(loops, cond)
    if dst is None or src is None or interior is None:
        return None
    kept = [k for k, lp in enumerate(loops) if int(lp.extent.value) > 1]
    if not kept or len(kept) > 3:
        return None
    dst_off = dst[1] + sum(c * f for c, (f, _) in zip(dst[0], interior))
    src_off = src[1] + sum(c * f for c, (f, _) in zip(src[0], interior))
    counts = [interior[k][1] for k in kept]
    for k in range(len(loops)):  # an extent-1 loop inside or outside the interior
        if k not in kept:
            counts[0] = counts[0] * interior[k][1]
    dims = [(n, dst[0][k], src[0][k]) for n, k in zip(counts, kept)]
    call = _copy_call(tirx.address_of(tirx.BufferLoad(store.buffer, [dst_off])),
                      tirx.address_of(tirx.BufferLoad(load.source, [src_off])), dims,
                      _elem_bytes(store.buffer), direction)
    fill = _ring_fill(loops, tirx.BufferStore(store.buffer, pad, store.indices), interior)
    if fill is None:
        return call
    return tirx.SeqStmt([fill, call])


def _ring_fill(loops, store, interior):
    """The stores of ``store`` (the pad value) outside the copied ``interior`` only: per loop,
    the points before the interior and after it with every point of the loops below, the
    interior's points with the ring of the loops below. The outermost loop runs once over its
    extent (each core its share; the interior test a branch per iteration); None when the
    interior is the whole tile."""
    analyzer = tvm.sym.Analyzer()

    def whole(k):
        first, count = interior[k]
        return analyzer.can_prove(first == 0) and \
            analyzer.can_prove(count == loops[k].extent)

    def loop(k, lo, hi, body):
        return tirx.For(loops[k].loop_var, lo, hi - lo, tirx.ForKind.SERIAL, body)

    def every(k):
        return store if k == len(loops) else loop(k, 0, loops[k].extent, every(k + 1))

    def ring(k):
        if k == len(loops):
            return None
        inner = ring(k + 1)
        if whole(k):
            return None if inner is None else loop(k, 0, loops[k].extent, inner)
        ext = loops[k].extent
        first = tirx.min(interior[k][0], ext)
        end = tirx.min(interior[k][0] + interior[k][1], ext)
        parts = [loop(k, 0, first, every(k + 1))]
        if inner is not None:
            parts.append(loop(k, first, end, inner))
        parts.append(loop(k, end, ext, every(k + 1)))
        return tirx.SeqStmt(parts)

    fill, v = ring(1), loops[0].loop_var
    if not whole(0):
        first, count = interior[0]
        fill = tirx.IfThenElse(tirx.any(v < first, v >= first + count), every(1), fill)
    if fill is None:
        return None
    fill = tirx.For(loops[0].loop_var, 0, loops[0].extent, tirx.ForKind.SERIAL, fill)
    if int(loops[0].extent) > 1:  # every core fills its share of the tile
        fill = with_annotation(fill, PAR_ANN, 1)
    return fill


def _ring_nest(loop, stats):
    """A marked fill nest (``_ring_blocks``) after lowering -> the stores of its ring only
    (``_ring_fill``; nothing when the tile is all interior), or the whole tile filled when its
    interior is not a box of its loops."""
    loops = [loop]
    while isinstance(loops[-1].body, tirx.For) and RING_NEST_ANN in loops[-1].body.annotations:
        loops.append(loops[-1].body)
    store = loops[-1].body
    if not isinstance(store, tirx.BufferStore):
        return None
    value = store.value
    if isinstance(value, tvm.ir.TensorLoad):  # the interior everywhere (simplified)
        return tirx.Evaluate(0)
    if not _is_if_then_else(value):
        return None
    cond, _, pad = value.args
    fill = tirx.BufferStore(store.buffer, pad, store.indices)
    interior = None
    if all(isinstance(lp.extent, tirx.IntImm) and int(lp.min) == 0 for lp in loops):
        interior = _interior(loops, cond)
    if interior is None:  # fill it all
        stats["whole_fills"] += 1
        return tvm_ffi.structural_map(loop, (tirx.BufferStore, lambda st: fill))
    stats["ring_fills"] += 1
    ring = _ring_fill(loops, fill, interior)
    return tirx.Evaluate(0) if ring is None else ring


def _ring_fills(func, stats):
    def visit(loop):
        if RING_NEST_ANN not in loop.annotations:
            return loop
        out = _ring_nest(loop, stats)
        return loop if out is None else out

    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.For, visit), order="pre"))


def _counted_store(store, direction):
    """A core copy element: the store plus the count of the bytes it moved (ring fill of a padded
    copy is not moved: it is written in L1, like cost.ir counts)."""
    count = tirx.Evaluate(tirx.call_extern("int32", "GAP8_COPY_ELEM", direction,
                                           _elem_bytes(store.buffer)))
    value = store.value
    if _is_if_then_else(value):
        cond, then_v, else_v = value.args
        return tirx.IfThenElse(cond, tirx.SeqStmt([
            tirx.BufferStore(store.buffer, then_v, store.indices), count]),
            tirx.BufferStore(store.buffer, else_v, store.indices))
    return tirx.SeqStmt([store, count])


def _unmarked(loop):
    ann = {k: v for k, v in loop.annotations.items() if k != DMA_ANN}
    return tirx.For(loop.loop_var, loop.min, loop.extent, loop.kind, loop.body,
                    loop.thread_binding, ann, loop.step, loop.span)


def _core_copy(loop, direction):
    """A copy nest left to the cores, counting what it moves (cost.ir's bytes and transfers)."""
    body = tvm_ffi.structural_map(loop, [
        (tirx.BufferStore, lambda st: _counted_store(st, direction)), (tirx.For, _unmarked)])
    return tirx.SeqStmt([
        tirx.Evaluate(tirx.call_extern("int32", "GAP8_COPY_BEGIN")), body,
        tirx.Evaluate(tirx.call_extern("int32", "GAP8_COPY_END", direction))])


def _replace_copies(func, stats):
    def visit(loop):
        if DMA_ANN not in loop.annotations:
            return loop
        tag = str(loop.annotations[DMA_ANN]).split(":")[0]
        direction = DIRECTIONS[tag]
        loops, inner = _nest(loop)
        if loops[0] is not loop:
            return loop
        call = _dma_call(loops, inner, direction)
        if call is None and isinstance(inner, tirx.BufferStore):
            call = _padded_dma(loops, inner, direction)
        if call is not None:
            stats["dma_calls"] += 1
            return call
        stats["core_copies"] += 1
        return _core_copy(loop, direction)

    # pre-order: the outermost loop of a nest is met first and replaced whole
    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.For, visit), order="pre"))


# -- MAC counting ------------------------------------------------------------------------

def _has_mul(expr) -> bool:
    """A product among the values ``expr`` computes (a load's index is an address, not one)."""
    if isinstance(expr, tirx.Mul):
        return True
    if isinstance(expr, (tirx.Add, tirx.Sub)):
        return _has_mul(expr.a) or _has_mul(expr.b)
    if isinstance(expr, tirx.Cast):
        return _has_mul(expr.value)
    if isinstance(expr, tvm.ir.expr.Call):
        return any(_has_mul(a) for a in expr.args)
    return False


def _count_macs(func):
    """An accumulation with a product (acc = acc + a * b) is one MAC per execution."""

    def visit(store):
        v = store.value
        if isinstance(v, tirx.Add):
            for acc, term in ((v.a, v.b), (v.b, v.a)):
                if isinstance(acc, tvm.ir.TensorLoad) and acc.source.same_as(store.buffer) \
                        and _has_mul(term):
                    return tirx.SeqStmt([store, tirx.Evaluate(
                        tirx.call_extern("int32", "GAP8_COUNT_MAC"))])
        return store

    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.BufferStore, visit)))


# -- cores -------------------------------------------------------------------------------

def _contains_parallel(stmt) -> bool:
    from ..ir.tirwalk import walk
    return any(isinstance(s, tirx.For) and (PAR_ANN in s.annotations or TEAM_ANN in s.annotations)
               for s, _ in walk(stmt))


def _master(stmt):
    call = tirx.call_extern("int32", "gap8_is_master")
    return tirx.SeqStmt([tirx.IfThenElse(call != 0, stmt, None),
                         tirx.Evaluate(tirx.call_extern("int32", "gap8_barrier"))])


def _declares(stmt) -> bool:
    return isinstance(stmt, (tirx.AllocBuffer, tirx.DeclBuffer, tirx.Bind))


#: the master core's copy calls (``_copy_call``), which a DMA group may leave unwaited
MASTER_DMA_CALLS = ("gap8_dma_copy_1d", "gap8_dma_copy_3d", "gap8_dma_copy_strided")


def _call_name(stmt) -> str:
    """The name of the extern function ``stmt`` calls, "" if it is not such a call."""
    if isinstance(stmt, tirx.Evaluate) and isinstance(stmt.value, tvm.ir.expr.Call) and \
            stmt.value.args:
        return str(getattr(stmt.value.args[0], "value", ""))
    return ""


def _is_dma_call(stmt) -> bool:
    return _call_name(stmt) in MASTER_DMA_CALLS


def _dma_groups(stmts: list) -> list:
    """Runs of two or more DMA calls between gap8_dma_group_begin / _end: issued back to back,
    waited for once (gap8_dma.h)."""
    out, run = [], []

    def flush():
        if len(run) > 1:
            out.append(tirx.Evaluate(tirx.call_extern("int32", "gap8_dma_group_begin")))
            out.extend(run)
            out.append(tirx.Evaluate(tirx.call_extern("int32", "gap8_dma_group_end")))
        else:
            out.extend(run)
        run.clear()

    for s in stmts:
        if _is_dma_call(s):
            run.append(s)
        else:
            flush()
            out.append(s)
    flush()
    return out


#: the copy of one contiguous run (``_copy_call``), which the team may issue in its stead
ONE_RUN_COPY = "gap8_dma_copy_1d"


def _team_copies(copies):
    """A run of one-run copies and nothing else, which the master core would issue alone
    while seven cores wait: the whole team enters and shares them
    (``gap8_dma_copy_1d_team``: one copy in word-aligned parts, several round robin over the
    cores), then the barrier."""
    team = tirx.Var("gap8_c", "int32")
    core = tirx.call_extern("int32", "gap8_core_of", team)
    calls = [tirx.Evaluate(tirx.call_extern("int32", "gap8_dma_copy_1d_team", core, slot,
                                            len(copies), *c.value.args[1:]))
             for slot, c in enumerate(copies)]
    loop = tirx.For(team, 0, tirx.call_extern("int32", "gap8_team_size"), tirx.ForKind.SERIAL,
                    calls[0] if len(calls) == 1 else tirx.SeqStmt(calls), None, {TEAM_ANN: 1})
    return tirx.SeqStmt([loop, tirx.Evaluate(tirx.call_extern("int32", "gap8_barrier"))])


def _team_seq(stmts, stats):
    """A sequence the team executes: consecutive master-only statements under one
    gap8_is_master() test and one barrier (their DMA calls grouped), the rest by ``_team``."""
    out, run = [], []

    def flush():
        if run and all(_call_name(s) == ONE_RUN_COPY for s in run):
            out.append(_team_copies(run))
        elif run:
            grouped = _dma_groups(run)
            out.append(_master(grouped[0] if len(grouped) == 1 else tirx.SeqStmt(grouped)))
        run.clear()

    for s in stmts:
        if not _contains_parallel(s) and not _declares(s):
            run.append(s)
        else:
            flush()
            out.append(_team(s, stats))
    flush()
    return tirx.SeqStmt(out)


def _team(stmt, stats):
    """Rewrite a statement the whole team executes: parallel loops are split, loops and
    branches holding parallel loops are entered by every core, everything else runs on the
    master core followed by a barrier."""
    if isinstance(stmt, tirx.For) and PAR_ANN in stmt.annotations:
        return split_over_cores(stmt, stats)
    if isinstance(stmt, tirx.For) and TEAM_ANN in stmt.annotations:
        return tirx.SeqStmt([stmt, tirx.Evaluate(tirx.call_extern("int32", "gap8_barrier"))])
    if isinstance(stmt, tirx.For) and PAR_OUTER_ANN in stmt.annotations:
        return tirx.SeqStmt([split_nest(stmt, stats),
                             tirx.Evaluate(tirx.call_extern("int32", "gap8_barrier"))])
    if not _contains_parallel(stmt):
        return stmt if _declares(stmt) else _master(stmt)
    if isinstance(stmt, tirx.SeqStmt):
        return _team_seq(list(stmt.seq), stats)
    if isinstance(stmt, tirx.For):
        return tirx.For(stmt.loop_var, stmt.min, stmt.extent, stmt.kind,
                        _team(stmt.body, stats), None, stmt.annotations, stmt.step, stmt.span)
    if isinstance(stmt, tirx.IfThenElse):
        return tirx.IfThenElse(stmt.condition, _team(stmt.then_case, stats),
                               _team(stmt.else_case, stats) if stmt.else_case else None)
    body = getattr(stmt, "body", None)
    if isinstance(body, tirx.Stmt):
        raise UnsupportedError(f"--emit-c: a parallel loop under a {type(stmt).__name__} "
                               "statement cannot be split over the cores")
    return _master(stmt)


# -- signature and L1 arena ----------------------------------------------------------------

@dataclass(frozen=True)
class L1Slot:
    """One L1 buffer's place in the kernel's arena."""
    name: str
    offset: int
    nbytes: int
    dtype: str


def _l1_arena(func, arena):
    """Every global.l1 allocation -> a view at a fixed offset of ``arena``; returns the new
    function, the arena size and the slots. One region per buffer name: the copies of a buffer
    that lowering makes for the peeled iterations of a loop (disjoint scopes) share it, as
    ``cost/ir.py`` counts the L1 peak."""
    slots = {}
    size = 0
    from ..ir.tirwalk import walk
    for stmt, _ in walk(func.body):
        if isinstance(stmt, tirx.AllocBuffer) and stmt.buffer.ty.storage_scope == L1_SCOPE \
                and stmt.buffer.name not in slots:
            buf = stmt.buffer
            nbytes = _elem_bytes(buf)
            for d in buf.ty.shape:
                nbytes *= int(d)
            slots[buf.name] = L1Slot(buf.name, size, nbytes, str(buf.ty.dtype))
            size += (nbytes + L1_ALIGN - 1) // L1_ALIGN * L1_ALIGN

    def visit(stmt):
        if isinstance(stmt, tirx.AllocBuffer) and stmt.buffer.name in slots:
            offset = slots[stmt.buffer.name].offset
            ptr = tirx.address_of(tirx.BufferLoad(arena, [offset]))
            ptr = tirx.reinterpret(tvm.ir.PointerType(tvm.ir.PrimType(str(stmt.buffer.ty.dtype))),
                                   ptr) if str(stmt.buffer.ty.dtype) != "int8" else ptr
            return tirx.DeclBuffer(stmt.buffer, data=ptr)
        return stmt

    body = tvm_ffi.structural_map(func.body, (tirx.AllocBuffer, visit))
    return func.with_body(body), size, tuple(slots.values())


def _globalize_locals(func):
    """``local`` scratch (accumulators) -> ``global`` stack arrays (the C codegen's only scope)."""
    from ..ir.tirwalk import walk
    remap = {}
    for stmt, _ in walk(func.body):
        if isinstance(stmt, tirx.AllocBuffer) and stmt.buffer.ty.storage_scope == "local":
            b = stmt.buffer
            remap[b] = tirx.decl_buffer(b.ty.shape, b.ty.dtype, b.name, scope="global")
    if not remap:
        return func

    def visit(v):
        for old, new in remap.items():
            if v.same_as(old):
                return new
        return v

    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.Var, visit)))


C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
           "int64": "int64_t", "float32": "float", "float64": "double", "bool": "int8_t",
           "uint16": "uint16_t", "uint32": "uint32_t"}


def _plain_signature(func, name):
    """Buffer params -> pointer params bound by DeclBuffer, plus ``int8_t* l1`` last."""
    ptrs, decls, params = [], [], []
    for p in func.params:
        dtype = str(p.ty.dtype)
        ptr = tirx.Var(f"{p.name}_p", tvm.ir.PointerType(tvm.ir.PrimType(dtype)))
        ptrs.append(ptr)
        decls.append(tirx.DeclBuffer(p, data=ptr))
        params.append((p.name, C_TYPES[dtype]))
    arena_ptr = tirx.Var("l1_p", tvm.ir.PointerType(tvm.ir.PrimType("int8")))
    arena = tirx.decl_buffer((1 << 20,), "int8", "l1_arena", data=arena_ptr)
    body, l1, slots = _l1_arena(_globalize_locals(func), arena)
    stmt = tirx.SeqStmt(decls + [tirx.DeclBuffer(arena, data=arena_ptr), body.body])
    attrs = tvm.ir.make_node("ir.DictAttrs", **{"global_symbol": name, "tirx.noalias": True})
    new = tirx.PrimFunc(ptrs + [arena_ptr], stmt, ret_type=None, attrs=attrs)
    return new, params, l1, slots


# -- C text ----------------------------------------------------------------------------

def _exact_floats(func):
    """TVM's C codegen prints float literals with 7 digits; pass their bits instead
    (``gap8_f32``/``gap8_f64``, inline in kernels.c) so float kernels compute what LLVM does."""

    def visit(imm):
        dtype = str(imm.ty)
        if dtype == "float32":
            bits = struct.unpack("<I", struct.pack("<f", float(imm.value)))[0]
            return tirx.call_extern("float32", "gap8_f32", tirx.const(bits, "uint32"))
        if dtype == "float64":
            bits = struct.unpack("<Q", struct.pack("<d", float(imm.value)))[0]
            return tirx.call_extern("float64", "gap8_f64", tirx.const(bits, "uint64"))
        return imm

    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.FloatImm, visit)))


def _codegen(func) -> str:
    mod = tvm.IRModule({func.attrs["global_symbol"]: func})
    target = tvm.target.Target({"kind": "c"})
    lib = tvm.get_global_func("target.build.c")(mod, target)
    return lib.inspect_source()


def _clean(source: str) -> str:
    """Drop TVM's includes, exports and declarations around the function; keep the function."""
    lines = []
    skip_extern = False
    for line in source.splitlines():
        s = line.strip()
        if s.startswith("#include") or s.startswith("#define TVM_EXPORTS") or \
                "__tvm_ffi__library_ctx" in s or s.startswith("// tvm target"):
            continue
        if s == "#ifdef __cplusplus":
            skip_extern = True
            continue
        if skip_extern:
            if s == "#endif":
                skip_extern = False
            continue
        if s.startswith("TVM_DLL") and s.endswith(");"):
            continue  # TVM's declarations of extern calls: gap8_*.h declares them
        lines.append(line.replace("TVM_DLL ", ""))
    return "\n".join(lines).strip() + "\n"


def _stage_mark(stage: int):
    return tirx.Evaluate(tirx.call_extern("int32", "GAP8_STAGE_END", stage))


def _stage_marks(body):
    """``GAP8_STAGE_END(n)`` where the kernel starts (0) and after its n-th barrier (program
    order, as ``_team`` and ``split_over_cores`` place them): the end of each stage, timed when
    the runtime is built to (``GAP8_STAGE_TIMES``), else nothing."""
    barriers = [s for s, _ in walk(body) if _call_name(s) == "gap8_barrier"]
    stage_of = {barrier: n for n, barrier in enumerate(barriers, 1)}  # TIR nodes: by identity

    def seq(stmt):
        out = []
        for child in stmt.seq:
            out.append(child)
            if child in stage_of:
                out.append(_stage_mark(stage_of[child]))
        return tirx.SeqStmt(out)

    return tirx.SeqStmt([_stage_mark(0), tvm_ffi.structural_map(body, (tirx.SeqStmt, seq))])


def plain_kernel(name: str, prim, instrument_macs: bool = True) -> PlainKernel:
    stats = {"dma_calls": 0, "core_copies": 0, "parallel_loops": 0, "dot_calls": 0,
             "ring_fills": 0, "whole_fills": 0}
    func = mark_parallel_loops(_mark_copy_loops(_ring_blocks(fuse_for_balance(prim))))
    func = _lower(func)
    func = _ring_fills(_replace_copies(func, stats), stats)
    func = dot_products(func, stats)
    declared = prim.attrs.get(MACS_ATTR) if prim.attrs else None
    if instrument_macs and (declared is None or int(declared) > 0):
        func = _count_macs(func)  # a kernel the report gives 0 MACs (pooling) counts none
    func = hoist_invariant_loads(func)
    func = func.with_body(_stage_marks(_team(func.body, stats)))
    func, params, l1, slots = _plain_signature(func, name)
    func = name_tile_loops(requant_calls(_exact_floats(_finish(func))))
    source = _clean(_codegen(func))
    proto = next(line for line in source.splitlines() if f" {name}(" in line)
    source = kernel_comment(name, prim, func, slots, l1) + source
    proto = proto.rstrip(" {") + ";"
    return PlainKernel(name, source, proto, params, l1, stats["dma_calls"],
                       stats["core_copies"], stats["parallel_loops"],
                       _staged_params(func, [p for p, _ in params]), stats["dot_calls"],
                       stats["ring_fills"], stats["whole_fills"])


#: the DMA calls of gap8_dma.h a copy stage becomes (``_copy_call``)
DMA_CALLS = ("gap8_dma_copy_1d", "gap8_dma_copy_1d_team", "gap8_dma_copy_3d",
             "gap8_dma_copy_3d_part", "gap8_copy_strided_part")


def _accessed(expr) -> list:
    """The names of the buffers every load and store in ``expr`` accesses, one per access."""
    names = []

    def load(node):
        names.append(node.source.name)
        return node

    def store(node):
        names.append(node.buffer.name)
        return node

    tvm_ffi.structural_map(expr, [(tvm.ir.TensorLoad, load), (tirx.BufferStore, store)])
    return names


def _staged_params(func, names) -> frozenset:
    """The parameters (of ``names``) every access to which, in the C function's final TIR, is
    an operand of a DMA call (``DMA_CALLS``): the cores never read them, so they may live in
    L3 and reach L1 through an L2 stage."""
    in_dma = []

    def call(node):
        if getattr(node.op, "name", "") in ("tirx.call_extern", "prim.call_extern") \
                and node.args and str(getattr(node.args[0], "value", "")) in DMA_CALLS:
            in_dma.extend(_accessed(node))
        return node

    tvm_ffi.structural_map(func.body, (tvm.ir.expr.Call, call))
    every = _accessed(func.body)
    return frozenset(n for n in names if n in every and every.count(n) == in_dma.count(n))
