"""The fixed-point requantization as one named C function: a pass over a kernel's final TIR
(the C back end only; the LLVM build keeps the expression) replacing each output's
``kernels/requant.py`` ``fixed_expr`` (the high-word form, shift >= 33) by a call of
``gap8_requantize`` (``runtime/gap8_requant.h``), which computes the same integers.

    clamp(((int32)((int64)acc * mult >> 32) + (1 << ((shift - 1) & 31)) >> (shift & 31)) + zp,
          lo, hi)                     ->  gap8_requantize(acc, mult, shift, zp, lo, hi)

TVM folds a constant multiplier and shift: the shift is then read back from the folded
``shift & 31`` (``shift`` = it + 32) after checking the folded rounding half against it. Other
forms (``--requant float32``, a shift below 33) are left as they are.
"""

from __future__ import annotations

import tvm_ffi
from tvm import tirx

#: the C function (runtime/gap8_requant.h)
REQUANTIZE = "gap8_requantize"


def _dtype(e) -> str:
    return str(e.ty.dtype)


def _int(e) -> int | None:
    return int(e.value) if isinstance(e, tirx.IntImm) else None


def _strip_cast(e, dtype: str):
    return e.value if isinstance(e, tirx.Cast) and _dtype(e) == dtype else None


def _product(e):
    """``(int32)((int64)acc * (int64)mult >> 32)`` -> (acc, mult), else None."""
    shifted = _strip_cast(e, "int32")
    if not isinstance(shifted, tirx.RShift) or _int(shifted.b) != 32:
        return None
    prod = shifted.a
    if not isinstance(prod, tirx.Mul) or _dtype(prod) != "int64":
        return None
    acc, mult = _strip_cast(prod.a, "int64"), prod.b
    if acc is None:
        return None
    narrowed = _strip_cast(mult, "int64")
    if narrowed is not None:
        mult = narrowed
    elif _int(mult) is not None and -(1 << 31) <= _int(mult) < (1 << 31):
        mult = tirx.const(_int(mult), "int32")
    else:
        return None
    return acc, mult


def _shift_of(half, amount):
    """The shift ``k`` of ``(1 << ((k - 1) & 31))`` and ``k & 31`` (variable or folded)."""
    if isinstance(amount, tirx.BitwiseAnd) and _int(amount.b) == 31:
        k = amount.a
        ok = (isinstance(half, tirx.LShift) and _int(half.a) == 1
              and isinstance(half.b, tirx.BitwiseAnd) and _int(half.b.b) == 31
              and tvm_ffi.structural_equal(half.b.a, k - tirx.const(1, "int32")))
        return k if ok else None
    s, h = _int(amount), _int(half)
    if s is not None and h is not None and 1 <= s <= 31 and h == 1 << (s - 1):
        return tirx.const(s + 32, "int32")
    return None


def _call(v, lo: int, hi: int):
    """``X + zp`` of the fixed form, clamped to [lo, hi] -> the call, else None."""
    zp = 0
    if isinstance(v, (tirx.Add, tirx.Sub)) and _int(v.b) is not None:
        zp, v = (_int(v.b) if isinstance(v, tirx.Add) else -_int(v.b)), v.a
    if not isinstance(v, tirx.RShift) or not isinstance(v.a, tirx.Add) or _dtype(v) != "int32":
        return None
    parts, k = _product(v.a.a), _shift_of(v.a.b, v.b)
    if parts is None or k is None:
        return None
    i32 = lambda n: tirx.const(n, "int32")  # noqa: E731
    return tirx.call_extern("int32", REQUANTIZE, *parts, k, i32(zp), i32(lo), i32(hi))


def _clamped(e):
    """``max(min(X + zp, hi), lo)`` -> the call, else None."""
    if not (isinstance(e, tirx.Max) and isinstance(e.a, tirx.Min)):
        return None
    lo, hi = _int(e.b), _int(e.a.b)
    return None if lo is None or hi is None else _call(e.a.a, lo, hi)


def _unclamped(e):
    """``(int8) (X + zp)`` whose clamp TVM proved redundant (a shift so large the value fits
    the output type) -> the call clamped to the type's range, else None."""
    if not isinstance(e, tirx.Cast) or _dtype(e) not in _RANGES:
        return None
    value, lets = e.value, []
    while isinstance(value, tirx.Let):
        lets.append(value)
        value = value.body
    call = _call(value, *_RANGES[_dtype(e)])
    if call is None:
        return None
    for let in reversed(lets):
        call = tirx.Let(let.var, let.value, call)
    return tirx.Cast(_dtype(e), call)


_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
           "uint16": (0, 65535)}


def requant_calls(func):
    """``func`` with every fixed-form requantization a ``gap8_requantize`` call."""
    def visit(find):
        def replace(e):
            call = find(e)
            return e if call is None else call
        return replace

    return func.with_body(tvm_ffi.structural_map(func.body, [(tirx.Max, visit(_clamped)),
                                                             (tirx.Cast, visit(_unclamped))]))
