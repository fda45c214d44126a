"""emitc/hoist.py: loop-invariant loads bound before serial loops, and only when nothing in the
loop can change them (a store, a micro-kernel's accumulator pointer, a DMA or barrier call)."""

from tvm import tirx
from tvm.script import tirx as T

from tvm_gap8.emitc.hoist import hoist_invariant_loads


def _loops(func) -> dict:
    """{loop variable name: the For} of every loop of ``func``."""
    found = {}

    def visit(stmt):
        if isinstance(stmt, tirx.For):
            found[stmt.loop_var.name] = stmt
        elif isinstance(stmt, tirx.SeqStmt):
            for s in stmt.seq:
                visit(s)
        if isinstance(stmt, tirx.For):
            visit(stmt.body)

    visit(func.body)
    return found


def _binds_before(stmt) -> list:
    """The names of the loads bound at the head of ``stmt`` (a For's body)."""
    seq = stmt.seq if isinstance(stmt, tirx.SeqStmt) else [stmt]
    return [str(s.value.source.name) for s in seq if isinstance(s, tirx.Bind)]


def test_per_channel_loads_bound_once_before_the_pixel_loops():
    @T.prim_func
    def f(x: T.Buffer((64,), "int8"), p: T.Buffer((4,), "int32"), y: T.Buffer((64,), "int8")):
        for c in T.serial(4, annotations={"gap8.parallel": 1}):
            for i in T.serial(4):
                for j in T.serial(4):
                    y[c * 16 + i * 4 + j] = T.Cast(
                        "int8", T.Cast("int32", x[c * 16 + i * 4 + j]) * p[c] + p[c])

    out = hoist_invariant_loads(f)
    loops = _loops(out)
    # p[c] (twice in the expression) is one local, moved past both pixel loops, not past the
    # loop split over the cores; x[...] depends on the pixel and stays
    assert _binds_before(loops["c"].body) == ["p"]
    assert _binds_before(loops["i"].body) == [] and _binds_before(loops["j"].body) == []
    assert "p[c]" not in loops["j"].body.script()


def test_nothing_hoisted_when_the_loop_may_change_the_value():
    @T.prim_func
    def stores(p: T.Buffer((4,), "int32"), y: T.Buffer((16,), "int32")):
        for i in T.serial(16):
            y[i] = p[0]
            p[1] = i

    @T.prim_func
    def dma(p: T.Buffer((4,), "int32"), y: T.Buffer((16,), "int32")):
        for i in T.serial(16):
            T.evaluate(T.call_extern("int32", "gap8_dma_copy_3d", T.address_of(p[0]),
                                     T.address_of(y[0]), 1, 1, 4, 0, 0, 0, 0, 0))
            y[i] = p[0]

    @T.prim_func
    def accumulates(a: T.Buffer((16,), "int8"), b: T.Buffer((64,), "int8"),
                    acc: T.Buffer((4,), "int32"), y: T.Buffer((16,), "int32")):
        for i in T.serial(16):
            T.evaluate(T.call_extern("int32", "gap8_dot4_i8", T.address_of(acc[0]),
                                     T.address_of(a[0]), T.address_of(b[0]), 16, 16, 0, 1))
            y[i] = acc[0]

    @T.prim_func
    def variable_extent(p: T.Buffer((4,), "int32"), y: T.Buffer((16,), "int32"), n: T.int32):
        for i in T.serial(n):
            y[i] = p[0]

    for func in (stores, dma, accumulates, variable_extent):
        out = hoist_invariant_loads(func)
        assert not _binds_before(out.body), func.script()
        assert all(not isinstance(s, tirx.Bind) for s in
                   (out.body.seq if isinstance(out.body, tirx.SeqStmt) else [out.body]))


def test_address_operands_stay_addresses():
    @T.prim_func
    def f(a: T.Buffer((64,), "int8"), w: T.Buffer((9,), "int8"), y: T.Buffer((16,), "int32")):
        for i in T.serial(16):
            y[i] = T.call_extern("int32", "gap8_dw3x3w_i8", T.address_of(a[i]), 8,
                                 T.address_of(w[0]), T.Cast("int32", w[0]),
                                 T.Cast("int32", w[1]), T.Cast("int32", w[2]),
                                 T.Cast("int32", w[3]), T.Cast("int32", w[4]),
                                 T.Cast("int32", w[5]), T.Cast("int32", w[6]),
                                 T.Cast("int32", w[7]), T.Cast("int32", w[8]), 0)

    out = hoist_invariant_loads(f)
    seq = out.body.seq
    assert [str(s.value.source.name) for s in seq[:-1]] == ["w"] * 9   # the 9 weight values
    assert "T.address_of(w[0])" in seq[-1].script()                    # the pointer unchanged
