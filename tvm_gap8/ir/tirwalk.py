"""Walking lowered TIR from Python.

This TVM build has no Python statement visitor, so this module walks statements itself: the
fields that hold child statements are few (``body``, ``seq``, ``then_case``/``else_case``,
``block``, ``init``). Everything that inspects kernels (the schedules' double buffering, the
IR measurement in ``cost.ir``, the tests) goes through ``walk`` and ``sblocks`` here.
"""

from __future__ import annotations

from collections.abc import Iterator

import tvm
from tvm import s_tir, tirx


def _children(stmt):
    if isinstance(stmt, tirx.SeqStmt):
        return list(stmt.seq)
    if isinstance(stmt, tirx.IfThenElse):
        return [c for c in (stmt.then_case, stmt.else_case) if c is not None]
    if isinstance(stmt, s_tir.SBlockRealize):
        return [stmt.block]
    if isinstance(stmt, s_tir.SBlock):
        return [c for c in (stmt.init, stmt.body) if c is not None]
    body = getattr(stmt, "body", None)
    return [body] if isinstance(body, tirx.Stmt) else []


def walk(stmt, loops=()) -> Iterator[tuple[object, tuple]]:
    """Pre-order (statement, enclosing For loops outermost first)."""
    yield stmt, loops
    inner = loops + (stmt,) if isinstance(stmt, tirx.For) else loops
    for child in _children(stmt):
        yield from walk(child, inner)


def sblocks(func) -> list:
    """Every SBlock of a scheduled PrimFunc (root block included)."""
    return [s for s, _ in walk(func.body) if isinstance(s, s_tir.SBlock)]


def allocations(func) -> list:
    """(buffer, enclosing loops) of every allocation: SBlock alloc_buffers and AllocBuffer."""
    out = []
    for s, loops in walk(func.body):
        if isinstance(s, s_tir.SBlock):
            out.extend((b, loops) for b in s.alloc_buffers)
        elif isinstance(s, tirx.AllocBuffer):
            out.append((s.buffer, loops))
    return out


def buffer_bytes(buf) -> int:
    n = 1
    for d in buf.shape:
        n *= int(d)
    return n * tvm.runtime.DataType(str(buf.dtype)).bits // 8
