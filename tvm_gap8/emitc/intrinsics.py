"""Reductions -> micro-kernel calls: after lowering, every innermost reduction loop of the form

    for v in [0, n):  [if v == 0: acc[i] = 0]   acc[i] = acc[i] + (int32(a[pa + sa*v]) + c)
                                                                  * int32(b[pb + sb*v])

with int8 ``a`` and ``b`` becomes ``acc[i] = [acc[i] +] gap8_dot_i8(&a[pa], sa, &b[pb], sb, n,
c)`` (``runtime/gap8_simd.h``): one 4-way int8 dot product per 4 MACs (Xpulpv2
``pv.sdotsp.b`` on the cluster, with a hardware loop and post-increment loads when both
operands are contiguous), plain C on the host and the emulator. Integer sums in any order are
the same integers: every back end computes what the loop computed. The tensorize of TVM 0.27
crashes, so this is a pass over the lowered TIR.
A loop of any other form is left as it is.

Then a loop over ``DOT_ROWS`` accumulators of such calls that share their ``a`` operand,

    for k in [0, 4):  acc[i + k] = [acc[i + k] +] gap8_dot_i8(&a[pa], 1, &b[pb + K*k], 1, n, c)

(a 1x1 reduction whose schedule blocks output channels, ``kernels/conv.py:tile_pixels``)
becomes one ``gap8_dot4_i8(&acc[i], &a[pa], &b[pb], K, n, c, accumulate)``: each word of ``a``
loaded once feeds four ``pv.sdotsp.b`` (register blocking, PULP-NN's matmul); blocked over two
adjacent pixels too (``acc[i + 2k + p]``, ``a`` rows ``P`` apart), one
``gap8_dot4x2_i8(&acc[i], &a[pa], P, &b[pb], K, n, c, accumulate)``: 4 x 2 outputs, each word
of ``a`` feeding four ``pv.sdotsp.b`` and each word of ``b`` two. With ``a`` strided (a 1x1
conv over a CHW tile, channels ``S`` bytes apart), ``gap8_dot4s_i8(&acc[i], &a[pa], S,
&b[pb], K, n, c, accumulate)``: plain C on every back end, each byte of ``a`` loaded once for
the four rows (``gap8_dot4x2s_i8`` blocked over two pixels too).

And a 3x3 tap nest whose columns are contiguous in both operands (a depthwise conv over a CHW
tile, rows ``R`` bytes apart, weights [3][3]),

    for r in [0, 3):  for s in [0, 3):  [if r == 0 and s == 0: acc[i] = 0]
        acc[i] = acc[i] + (int32(a[pa + R*r + s]) + c) * int32(b[pb + 3*r + s])

becomes ``acc[i] = [acc[i] +] gap8_dw3x3w_i8(&a[pa], R, &b[pb], b[pb], ..., b[pb + 8], c)``:
on the cluster ``gap8_dw3x3_i8`` (three (unaligned) word loads of each operand, the weights'
fourth byte masked off, three ``pv.sdotsp.b``; the 9 weight values unused), in plain C the
weights as values: loads ``hoist.py`` binds before the pixel loops where they are invariant
(a CHW DW: once per channel), held in registers.

And a kxk conv over an HWC tile, each kernel row's kw x C taps contiguous (``gap8_rows_i8``),
blocked over 4 output channels of one pixel (the stem: ``kernels/conv.py:hwc_weights`` pads
each weight row with zeros to whole words),

    for k in [0, 4):  acc[i + k] = [acc +] gap8_rows_i8(&a[pa], A, &b[pb + K*k], B, R, L, c)

becomes one ``gap8_rows4_i8(&acc[i], &a[pa], A, &b[pb], K, B, R, L, c, accumulate)``: on the
cluster two nested hardware loops (rows, words), each activation word feeding four
``pv.sdotsp.b``.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import tirx

#: below this many MACs a call costs more than the loop it replaces
MIN_LENGTH = 4
DOT = "gap8_dot_i8"
DOT_ROWS = 4
DOT4 = "gap8_dot4_i8"
DOT4S = "gap8_dot4s_i8"


def _int8_load(e):
    """``int32(load)`` of an int8 buffer -> the load, else None."""
    if isinstance(e, tirx.Cast) and str(e.ty) == "int32" and \
            isinstance(e.value, tvm.ir.TensorLoad) and str(e.value.ty) == "int8" and \
            len(e.value.indices) == 1:
        return e.value
    return None


def _operand(e):
    """(load, offset) of ``int32(load)`` or ``int32(load) +/- c``."""
    load = _int8_load(e)
    if load is not None:
        return load, 0
    if isinstance(e, (tirx.Add, tirx.Sub)) and isinstance(e.b, tirx.IntImm):
        load = _int8_load(e.a)
        if load is not None:
            c = int(e.b.value)
            return load, (c if isinstance(e, tirx.Add) else -c)
    return None


def _uses(expr, var) -> bool:
    found = []
    tvm_ffi.structural_map(expr, (tirx.Var, lambda v: found.append(v) or v if v.same_as(var)
                                  else v))
    return bool(found)


def _mac(store, var):
    """(a load, a offset, b load) of ``acc[i] = acc[i] + A * B``, or None."""
    v = store.value
    if not isinstance(v, tirx.Add) or len(store.indices) != 1 or _uses(store.indices[0], var):
        return None
    acc, term = v.a, v.b
    if not (isinstance(acc, tvm.ir.TensorLoad) and acc.source.same_as(store.buffer)
            and tvm_ffi.structural_equal(acc.indices[0], store.indices[0])):
        return None
    if not isinstance(term, tirx.Mul) or str(store.buffer.ty.dtype) != "int32":
        return None
    for x, w in ((term.a, term.b), (term.b, term.a)):
        a, b = _operand(x), _int8_load(w)
        if a is not None and b is not None:
            return a[0], a[1], b
    return None


def _init(stmt, store, var) -> bool:
    """``if v == 0: acc[i] = 0`` for the accumulator ``store`` writes."""
    if not isinstance(stmt, tirx.IfThenElse) or stmt.else_case is not None:
        return False
    cond, then = stmt.condition, stmt.then_case
    return (isinstance(cond, tirx.EQ) and cond.a.same_as(var) and isinstance(cond.b, tirx.IntImm)
            and int(cond.b.value) == 0 and isinstance(then, tirx.BufferStore)
            and then.buffer.same_as(store.buffer) and isinstance(then.value, tirx.IntImm)
            and int(then.value.value) == 0
            and tvm_ffi.structural_equal(then.indices[0], store.indices[0]))


def _linear(index, var):
    coeffs = tvm.sym.detect_linear_equation(index, [var])
    if len(coeffs) != 2 or not isinstance(coeffs[0], tirx.IntImm):
        return None
    return int(coeffs[0].value), coeffs[1]


def _dot_call(loop, stats):
    """The call replacing ``loop``, or None."""
    var, body = loop.loop_var, loop.body
    if not (isinstance(loop.extent, tirx.IntImm) and isinstance(loop.min, tirx.IntImm)
            and int(loop.min.value) == 0 and int(loop.extent.value) >= MIN_LENGTH):
        return None
    init = False
    if isinstance(body, tirx.SeqStmt) and len(body.seq) == 2 and \
            isinstance(body.seq[1], tirx.BufferStore) and _init(body.seq[0], body.seq[1], var):
        init, body = True, body.seq[1]
    if not isinstance(body, tirx.BufferStore):
        return None
    mac = _mac(body, var)
    if mac is None:
        return None
    a, offset, b = mac
    la, lb = _linear(a.indices[0], var), _linear(b.indices[0], var)
    if la is None or lb is None:
        return None
    n = int(loop.extent.value)
    dot = tirx.call_extern("int32", DOT, tirx.address_of(tirx.BufferLoad(a.source, [la[1]])),
                           la[0], tirx.address_of(tirx.BufferLoad(b.source, [lb[1]])), lb[0], n,
                           offset)
    acc = tirx.BufferLoad(body.buffer, list(body.indices))
    stats["dot_calls"] += 1
    count = tirx.Evaluate(tirx.call_extern("int32", "GAP8_COUNT_MACS", n))
    return tirx.SeqStmt([tirx.BufferStore(body.buffer, dot if init else acc + dot,
                                          body.indices), count])


def _address(e):
    """(buffer, index) of ``&buf[index]``, else None."""
    if isinstance(e, tvm.ir.expr.Call) and getattr(e.op, "name", "") in (
            "tirx.address_of", "prim.address_of") and len(e.args) == 1 and \
            isinstance(e.args[0], tvm.ir.TensorLoad) and len(e.args[0].indices) == 1:
        return e.args[0].source, e.args[0].indices[0]
    return None


def _is_call(e, name):
    return isinstance(e, tvm.ir.expr.Call) and getattr(e.op, "name", "") in (
        "tirx.call_extern", "prim.call_extern") and str(e.args[0].value) == name


def _four_row_store(loop):
    """The first store of a ``for k < 4`` loop whose body is (store, next): the shape the
    4-row micro-kernels (``gap8_dot4_i8``, ``gap8_rows4_i8``) replace, or None."""
    body = loop.body
    if not (isinstance(loop.extent, tirx.IntImm) and isinstance(loop.min, tirx.IntImm)
            and int(loop.min.value) == 0 and int(loop.extent.value) == DOT_ROWS):
        return None
    if not (isinstance(body, tirx.SeqStmt) and len(body.seq) == 2
            and isinstance(body.seq[0], tirx.BufferStore)):
        return None
    return body.seq[0]


def _dot4_call(loop, stats):
    """``for k < 4: acc[i+k] = [acc[i+k] +] gap8_dot_i8(&a[pa], S, &b[pb+K*k], 1, n, c)``
    (``a`` the same for every k) -> one ``gap8_dot4_i8`` call (S = 1) or one
    ``gap8_dot4s_i8(&acc[i], &a[pa], S, &b[pb], K, n, c, accumulate)`` (S > 1: a 1x1 conv
    over a CHW tile, channels S bytes apart), or None."""
    var, store = loop.loop_var, _four_row_store(loop)
    if store is None:
        return None
    parts = _dot_parts(store)
    if parts is None:
        return None
    accumulate, a, a_step, b, n, offset = parts
    if _uses(a[1], var):
        return None
    lacc, lb = _linear(store.indices[0], var), _linear(b[1], var)
    if lacc is None or lb is None or lacc[0] != 1 or lb[0] <= 0:
        return None
    pacc = tirx.address_of(tirx.BufferLoad(store.buffer, [lacc[1]]))
    pa = tirx.address_of(tirx.BufferLoad(a[0], [a[1]]))
    pb = tirx.address_of(tirx.BufferLoad(b[0], [lb[1]]))
    if a_step == 1:
        dot = tirx.call_extern("int32", DOT4, pacc, pa, pb, lb[0], n, offset, int(accumulate))
        stats["dot4_calls"] = stats.get("dot4_calls", 0) + 1
    else:
        dot = tirx.call_extern("int32", DOT4S, pacc, pa, a_step, pb, lb[0], n, offset,
                               int(accumulate))
        stats["dot4s_calls"] = stats.get("dot4s_calls", 0) + 1
    count = tirx.Evaluate(tirx.call_extern("int32", "GAP8_COUNT_MACS", DOT_ROWS * n))
    return tirx.SeqStmt([tirx.Evaluate(dot), count])


DW3X3 = "gap8_dw3x3w_i8"
DOT4X2 = "gap8_dot4x2_i8"
DOT4X2S = "gap8_dot4x2s_i8"


def _accumulated_call(store, name: str):
    """(accumulate, the call) of ``acc[i] = [acc[i] +] name(...)`` (one index), or None."""
    value, accumulate = store.value, False
    if isinstance(value, tirx.Add) and _is_call(value.b, name):
        load = value.a
        if not (isinstance(load, tvm.ir.TensorLoad) and load.source.same_as(store.buffer)
                and len(load.indices) == 1 and len(store.indices) == 1
                and tvm_ffi.structural_equal(load.indices[0], store.indices[0])):
            return None
        accumulate, value = True, value.b
    if not _is_call(value, name) or len(store.indices) != 1:
        return None
    return accumulate, value


def _dot_parts(store):
    """(accumulate, a (buffer, index), a step, b (buffer, index), n, c) of ``acc[i] =
    [acc[i] +] gap8_dot_i8(&a[pa], sa, &b[pb], 1, n, c)``, or None."""
    found = _accumulated_call(store, DOT)
    if found is None:
        return None
    accumulate, value = found
    _, pa, sa, pb, sb, n, offset = value.args
    a, b = _address(pa), _address(pb)
    if a is None or b is None or not all(isinstance(x, tirx.IntImm) for x in (sa, sb, n)) \
            or int(sa.value) <= 0 or int(sb.value) != 1:
        return None
    return accumulate, a, int(sa.value), b, int(n.value), offset


def _dot4x2_call(loop):
    """``for k < 4: for p < 2: acc[i + 2k + p] = [acc +] gap8_dot_i8(&a[pa + P*p], S,
    &b[pb + K*k], 1, n, c)`` -> one ``gap8_dot4x2_i8`` call (S = 1; 4 output channels x 2
    pixels: each activation word feeds 4 ``pv.sdotsp.b``, each weight word 2) or one
    ``gap8_dot4x2s_i8(&acc[i], &a[pa], S, P, &b[pb], K, n, c, accumulate)`` (S > 1: a CHW
    tile, plain C), or None."""
    def unit(lp, extent):
        return isinstance(lp, tirx.For) and isinstance(lp.extent, tirx.IntImm) and \
            isinstance(lp.min, tirx.IntImm) and int(lp.min.value) == 0 and \
            int(lp.extent.value) == extent

    if not (unit(loop, DOT_ROWS) and unit(loop.body, 2)):
        return None
    k, p, body = loop.loop_var, loop.body.loop_var, loop.body.body
    if not (isinstance(body, tirx.SeqStmt) and len(body.seq) == 2
            and isinstance(body.seq[0], tirx.BufferStore)):
        return None
    store = body.seq[0]
    parts = _dot_parts(store)
    if parts is None:
        return None
    accumulate, a, a_step, b, n, offset = parts
    lacc, la, lb = (_linear2(store.indices[0], k, p), _linear2(a[1], k, p),
                    _linear2(b[1], k, p))
    if lacc is None or la is None or lb is None or lacc[:2] != (2, 1) or la[0] != 0 \
            or la[1] <= 0 or lb[1] != 0 or lb[0] <= 0:
        return None
    pacc = tirx.address_of(tirx.BufferLoad(store.buffer, [lacc[2]]))
    pa = tirx.address_of(tirx.BufferLoad(a[0], [la[2]]))
    pb = tirx.address_of(tirx.BufferLoad(b[0], [lb[2]]))
    if a_step == 1:
        dot = tirx.call_extern("int32", DOT4X2, pacc, pa, la[1], pb, lb[0], n, offset,
                               int(accumulate))
    else:
        dot = tirx.call_extern("int32", DOT4X2S, pacc, pa, a_step, la[1], pb, lb[0], n, offset,
                               int(accumulate))
    count = tirx.Evaluate(tirx.call_extern("int32", "GAP8_COUNT_MACS", 2 * DOT_ROWS * n))
    return tirx.SeqStmt([tirx.Evaluate(dot), count])


def _init2(stmt, store, outer, inner) -> bool:
    """``if r == 0 and s == 0: acc[i] = 0`` for the accumulator ``store`` writes."""
    if not isinstance(stmt, tirx.IfThenElse) or stmt.else_case is not None:
        return False
    cond, then = stmt.condition, stmt.then_case
    if not isinstance(cond, tirx.And):
        return False

    def zero_test(e, var):
        return isinstance(e, tirx.EQ) and e.a.same_as(var) and isinstance(e.b, tirx.IntImm) \
            and int(e.b.value) == 0

    return (zero_test(cond.a, outer) and zero_test(cond.b, inner)
            and isinstance(then, tirx.BufferStore) and then.buffer.same_as(store.buffer)
            and isinstance(then.value, tirx.IntImm) and int(then.value.value) == 0
            and len(then.indices) == 1
            and tvm_ffi.structural_equal(then.indices[0], store.indices[0]))


def _linear2(index, outer, inner):
    coeffs = tvm.sym.detect_linear_equation(index, [outer, inner])
    if len(coeffs) != 3 or not all(isinstance(c, tirx.IntImm) for c in coeffs[:2]):
        return None
    return int(coeffs[0].value), int(coeffs[1].value), coeffs[2]


def _dw3x3_call(loop):
    """``for r < 3: for s < 3: acc[i] += (a[pa + R*r + s] + c) * b[pb + 3*r + s]`` -> one
    ``gap8_dw3x3w_i8`` call (the weights by pointer and as 9 values), or None."""
    def unit(lp, extent):
        return isinstance(lp, tirx.For) and isinstance(lp.extent, tirx.IntImm) and \
            isinstance(lp.min, tirx.IntImm) and int(lp.min.value) == 0 and \
            int(lp.extent.value) == extent

    if not (unit(loop, 3) and unit(loop.body, 3)):
        return None
    outer, inner, body = loop.loop_var, loop.body.loop_var, loop.body.body
    init = False
    if isinstance(body, tirx.SeqStmt) and len(body.seq) == 2 and \
            isinstance(body.seq[1], tirx.BufferStore) and \
            _init2(body.seq[0], body.seq[1], outer, inner):
        init, body = True, body.seq[1]
    if not isinstance(body, tirx.BufferStore):
        return None
    mac = _mac(body, inner)
    if mac is None or _uses(body.indices[0], outer):
        return None
    a, offset, b = mac
    la, lb = _linear2(a.indices[0], outer, inner), _linear2(b.indices[0], outer, inner)
    if la is None or lb is None or la[1] != 1 or lb[:2] != (3, 1) or la[0] <= 0:
        return None
    weights = [tirx.Cast("int32", tirx.BufferLoad(b.source, [lb[2] + k])) for k in range(9)]
    call = tirx.call_extern("int32", DW3X3, tirx.address_of(tirx.BufferLoad(a.source, [la[2]])),
                            la[0], tirx.address_of(tirx.BufferLoad(b.source, [lb[2]])),
                            *weights, offset)
    acc = tirx.BufferLoad(body.buffer, list(body.indices))
    count = tirx.Evaluate(tirx.call_extern("int32", "GAP8_COUNT_MACS", 9))
    return tirx.SeqStmt([tirx.BufferStore(body.buffer, call if init else acc + call,
                                          body.indices), count])


ROWS = "gap8_rows_i8"


def _zero_tests(cond):
    """The variables of a conjunction of ``v == 0`` tests, else None."""
    if isinstance(cond, tirx.And):
        a, b = _zero_tests(cond.a), _zero_tests(cond.b)
        return None if a is None or b is None else a + b
    if isinstance(cond, tirx.EQ) and isinstance(cond.a, tirx.Var) and \
            isinstance(cond.b, tirx.IntImm) and int(cond.b.value) == 0:
        return [cond.a]
    return None


def _rows_call(loop):
    """``for r < R: for s < S: for c < C: acc[i] += (a[pa + A*r + C*s + c] + k) *
    b[pb + B*r + C*s + c]`` (each row's S x C taps contiguous in both operands: a kxk conv
    over an HWC tile with (o, kh, kw, i) weights, ``kernels/conv.py:hwc_weights``) -> one
    ``gap8_rows_i8(&a[pa], A, &b[pb], B, R, S*C, k)`` call, or None."""
    nest = [loop]
    while len(nest) < 3 and isinstance(nest[-1].body, tirx.For):
        nest.append(nest[-1].body)
    if len(nest) != 3 or not all(isinstance(lp.extent, tirx.IntImm) and
                                 isinstance(lp.min, tirx.IntImm) and int(lp.min.value) == 0
                                 for lp in nest):
        return None
    r, s_, c = (lp.loop_var for lp in nest)
    rows, e1, e2 = (int(lp.extent.value) for lp in nest)
    body, init = nest[-1].body, False
    if isinstance(body, tirx.SeqStmt) and len(body.seq) == 2 and \
            isinstance(body.seq[1], tirx.BufferStore):
        first, store = body.seq
        if not (isinstance(first, tirx.IfThenElse) and first.else_case is None):
            return None
        zeros = _zero_tests(first.condition)
        then = first.then_case
        if zeros is None or len(zeros) != 3 or \
                not all(any(z.same_as(v) for z in zeros) for v in (r, s_, c)) or \
                not (isinstance(then, tirx.BufferStore) and then.buffer.same_as(store.buffer)
                     and isinstance(then.value, tirx.IntImm) and int(then.value.value) == 0
                     and len(then.indices) == 1 and len(store.indices) == 1
                     and tvm_ffi.structural_equal(then.indices[0], store.indices[0])):
            return None
        init, body = True, store
    if not isinstance(body, tirx.BufferStore):
        return None
    mac = _mac(body, c)
    if mac is None or _uses(body.indices[0], r) or _uses(body.indices[0], s_):
        return None
    a, offset, b = mac

    def lin(index):
        coeffs = tvm.sym.detect_linear_equation(index, [r, s_, c])
        if len(coeffs) != 4 or not all(isinstance(x, tirx.IntImm) for x in coeffs[:3]):
            return None
        return [int(x.value) for x in coeffs[:3]], coeffs[3]

    la, lb = lin(a.indices[0]), lin(b.indices[0])
    if la is None or lb is None or la[0][1:] != [e2, 1] or lb[0][1:] != [e2, 1] or \
            la[0][0] <= 0 or lb[0][0] <= 0:
        return None
    call = tirx.call_extern("int32", ROWS, tirx.address_of(tirx.BufferLoad(a.source, [la[1]])),
                            la[0][0], tirx.address_of(tirx.BufferLoad(b.source, [lb[1]])),
                            lb[0][0], rows, e1 * e2, offset)
    acc = tirx.BufferLoad(body.buffer, list(body.indices))
    count = tirx.Evaluate(tirx.call_extern("int32", "GAP8_COUNT_MACS", rows * e1 * e2))
    return tirx.SeqStmt([tirx.BufferStore(body.buffer, call if init else acc + call,
                                          body.indices), count])


ROWS4 = "gap8_rows4_i8"


def _rows_parts(store):
    """(accumulate, a (buffer, index), a_row, b (buffer, index), b_row, rows, len, c) of
    ``acc[i] = [acc[i] +] gap8_rows_i8(&a[pa], A, &b[pb], B, rows, len, c)``, or None."""
    found = _accumulated_call(store, ROWS)
    if found is None:
        return None
    accumulate, value = found
    _, pa, a_row, pb, b_row, rows, n, offset = value.args
    a, b = _address(pa), _address(pb)
    if a is None or b is None or not all(isinstance(x, tirx.IntImm)
                                         for x in (a_row, b_row, rows, n)):
        return None
    return (accumulate, a, int(a_row.value), b, int(b_row.value), int(rows.value),
            int(n.value), offset)


def _rows4_call(loop):
    """``for k < 4: acc[i+k] = [acc[i+k] +] gap8_rows_i8(&a[pa], A, &b[pb + K*k], B, R, L,
    c)`` (``a`` the same for every k: one pixel, 4 output channels) -> one
    ``gap8_rows4_i8(&acc[i], &a[pa], A, &b[pb], K, B, R, L, c, accumulate)`` call, or None."""
    var, store = loop.loop_var, _four_row_store(loop)
    if store is None:
        return None
    parts = _rows_parts(store)
    if parts is None:
        return None
    accumulate, a, a_row, b, b_row, rows, n, offset = parts
    if _uses(a[1], var):
        return None
    lacc, lb = _linear(store.indices[0], var), _linear(b[1], var)
    if lacc is None or lb is None or lacc[0] != 1 or lb[0] <= 0:
        return None
    call = tirx.call_extern(
        "int32", ROWS4, tirx.address_of(tirx.BufferLoad(store.buffer, [lacc[1]])),
        tirx.address_of(tirx.BufferLoad(a[0], [a[1]])), a_row,
        tirx.address_of(tirx.BufferLoad(b[0], [lb[1]])), lb[0], b_row, rows, n, offset,
        int(accumulate))
    count = tirx.Evaluate(tirx.call_extern("int32", "GAP8_COUNT_MACS", DOT_ROWS * rows * n))
    return tirx.SeqStmt([tirx.Evaluate(call), count])


def dot_products(func, stats):
    """Every matching reduction loop of ``func`` -> a ``gap8_dot_i8`` call; every loop of
    four such calls sharing their ``a`` -> a ``gap8_dot4_i8`` call."""

    def visit(loop):
        call = _dot_call(loop, stats)
        if call is None:
            call = _dot4_call(loop, stats)
        if call is None:
            call = _dot4x2_call(loop)
            if call is not None:
                stats["dot4_calls"] = stats.get("dot4_calls", 0) + 1
        if call is None:
            call = _dw3x3_call(loop)
            if call is not None:
                stats["dw3x3_calls"] = stats.get("dw3x3_calls", 0) + 1
        if call is None:
            call = _rows_call(loop)
        if call is None:
            call = _rows4_call(loop)
            if call is not None:
                stats["rows4_calls"] = stats.get("rows4_calls", 0) + 1
        return loop if call is None else call

    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.For, visit)))
