"""Loop-invariant loads out of serial loops, as named locals before the loop.

A kernel's innermost loops read per-channel values once per output: the requantization's bias,
multiplier and shift (``p0[c]``, ``p1[c]``, ``p2[c]``), a DW's 9 weights. The C compiler cannot
keep them in registers across the loop: the loop stores ``int8_t`` outputs, which may alias
anything. This pass binds such a load to a local before the loop (``int32_t v = p1[c];``) when

* the loop is serial with a constant extent > 0 (not a loop split over the cores later: its
  body runs at least once, so the load reads what the loop would have read);
* the load's index uses neither the loop's variable nor any variable bound inside it;
* nothing in the loop writes the buffer: no store to it, no micro-kernel accumulating through a
  pointer into it, and no call other than the micro-kernels and counters (a DMA or a barrier
  ends the search: the loop is left as it is);
* the load is not the operand of ``&buf[i]``.

The values are the same loads the loop made, so every back end computes the same integers.
A loop's leading bindings that are invariant in it move out with it (bound once per channel,
not once per row)."""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import tirx

#: extern calls that read their pointer operands only (the first operand of the ACC_FIRST
#: ones is the accumulator they write)
READ_ONLY_PREFIXES = ("gap8_dot", "gap8_dw3x3", "gap8_rows", "GAP8_COUNT_MAC")
ACC_FIRST = ("gap8_dot4_i8", "gap8_dot4s_i8", "gap8_dot4x2_i8", "gap8_dot4x2s_i8",
             "gap8_rows4_i8")


def _call_name(call) -> str | None:
    if getattr(call.op, "name", "") in ("tirx.call_extern", "prim.call_extern"):
        return str(call.args[0].value)
    return None


def _is_address_of(call) -> bool:
    return getattr(call.op, "name", "") in ("tirx.address_of", "prim.address_of")


def _scan(body):
    """(written buffers, bound variables, address-of operands, ok) of a loop body; ok is False
    when it calls anything but the read-only micro-kernels and counters."""
    written, bound, operands, ok = [], [], [], [True]

    def record(node):
        if isinstance(node, tirx.BufferStore):
            written.append(node.buffer)
        elif isinstance(node, tirx.AllocBuffer):
            written.append(node.buffer)
        elif isinstance(node, tirx.For):
            bound.append(node.loop_var)
        elif isinstance(node, (tirx.Bind, tirx.Let)):
            bound.append(node.var)
        elif isinstance(node, tvm.ir.expr.Call):
            name = _call_name(node)
            if _is_address_of(node):
                operands.append(node.args[0])
            elif name is not None and not name.startswith(READ_ONLY_PREFIXES):
                ok[0] = False
            elif name in ACC_FIRST and _is_address_of(node.args[1]):
                written.append(node.args[1].args[0].source)
        return node

    tvm_ffi.structural_map(body, [((tirx.BufferStore, tirx.AllocBuffer, tirx.For, tirx.Bind,
                                    tirx.Let, tvm.ir.expr.Call), record)])
    return written, bound, operands, ok[0]


def _uses_any(expr, variables) -> bool:
    found = []

    def visit(v):
        if any(v.same_as(x) for x in variables):
            found.append(v)
        return v

    tvm_ffi.structural_map(expr, (tirx.Var, visit))
    return bool(found)


def _reads_written(expr, written) -> bool:
    found = []

    def visit(load):
        if any(load.source.same_as(b) for b in written):
            found.append(load)
        return load

    tvm_ffi.structural_map(expr, (tvm.ir.TensorLoad, visit))
    return bool(found)


def _flat(stmt) -> list:
    """The statements of ``stmt``, nested sequences flattened."""
    if not isinstance(stmt, tirx.SeqStmt):
        return [stmt]
    return [s for part in stmt.seq for s in _flat(part)]


def _hoistable_loop(loop) -> bool:
    return (loop.kind == tirx.ForKind.SERIAL and isinstance(loop.extent, tirx.IntImm)
            and int(loop.extent.value) > 0 and not loop.annotations)


def _hoist(loop, names):
    """``loop`` -> [bindings before it..., the loop] (or ``[loop]``)."""
    if not _hoistable_loop(loop):
        return [loop]
    written, bound, operands, ok = _scan(loop.body)
    if not ok:
        return [loop]
    inner = _flat(loop.body)
    outside = []
    while inner and isinstance(inner[0], tirx.Bind) and not _reads_written(
            inner[0].value, written) and not _uses_any(inner[0].value,
                                                       [loop.loop_var, *bound]):
        outside.append(inner.pop(0))
    scope = [loop.loop_var, *bound]
    hoisted = []   # (load, var)

    def replace(load):
        if any(load.same_as(x) for x in operands) or \
                any(load.source.same_as(b) for b in written) or \
                any(_uses_any(i, scope) or _reads_written(i, written) for i in load.indices):
            return load
        for seen, var in hoisted:
            if tvm_ffi.structural_equal(seen, load):
                return var
        var = tirx.Var(f"{load.source.name}_{next(names)}", load.ty)
        hoisted.append((load, var))
        return var

    body = tvm_ffi.structural_map(tirx.SeqStmt(inner) if len(inner) > 1 else inner[0],
                                  (tvm.ir.TensorLoad, replace))
    if not hoisted and not outside:
        return [loop]
    new = tirx.For(loop.loop_var, loop.min, loop.extent, loop.kind, body,
                   thread_binding=loop.thread_binding, step=loop.step)
    return outside + [tirx.Bind(var, load) for load, var in hoisted] + [new]


def hoist_invariant_loads(func):
    """Every serial loop of ``func``, innermost first: its invariant loads bound before it."""
    counter = iter(range(1 << 30))

    def visit(loop):
        out = _hoist(loop, counter)
        return out[0] if len(out) == 1 else tirx.SeqStmt(out)

    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.For, visit)))
