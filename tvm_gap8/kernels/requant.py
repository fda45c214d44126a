"""Integer requantization: int32 accumulator -> int8, with no float arithmetic.

ONNX QDQ semantics for a conv output: ``y = saturate(round(r / s_y) + z_y)`` with
``r = s_x * s_w[o] * acc`` (``acc`` the int32 sum of ``(x - z_x) * (w - z_w)`` plus the int32
bias, whose scale is ``s_x * s_w[o]``). onnxruntime (MLAS) evaluates it as
``rne(fl32(fl32(acc) * S))`` with ``S = fl32(fl32(s_x * s_w) / s_y)`` a float32 and ``rne``
round-half-to-even. We compute *the same number* with integers only:

* ``S = m * 2^-n`` exactly, with ``m`` its 24-bit mantissa (``2^23 <= m < 2^24``);
* ``P = acc * m`` exactly in 64 bits;
* the float32 rounding of the product is a round-half-even of ``P`` to 24 significant bits
  (bit length from count-leading-zeros: GAP8 has ``p.fl1``);
* then round-half-even by ``2^n``, add the zero point, clamp. The activation (ReLU, ReLU6, any
  constant Clip) is folded into the clamp bounds: rounding and clamping commute with monotone
  piecewise-linear functions.

So the kernels agree with onnxruntime bit for bit whenever ``|acc| < 2^24`` (``fl32(acc)`` is
then exact), and the difference between the two can only come from elsewhere in the graph.
"""

from __future__ import annotations

import math

import numpy as np
from tvm import tirx

INT8_MIN, INT8_MAX = -128, 127
MANTISSA_BITS = 24  # float32


def float32_scale(sx: float, sw, sy: float) -> np.ndarray:
    """onnxruntime's requantization scale, in its float32 evaluation order."""
    sw = np.asarray(sw, np.float32)
    return (np.float32(sx) * sw) / np.float32(sy)


def quantize_multiplier(real) -> tuple[int, int]:
    """``real`` as ``m / 2**n`` with ``m`` the 24-bit mantissa of its float32 value (exact for
    a float32 input; m = 0 for 0)."""
    real = float(np.float32(real))
    if real == 0:
        return 0, 1
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"requantization multiplier {real} must be positive and finite")
    mant, exp = math.frexp(real)  # real = mant * 2**exp, 0.5 <= mant < 1
    m = int(mant * (1 << MANTISSA_BITS))  # exact: a float32 mantissa has 24 bits
    n = MANTISSA_BITS - exp
    if n < 1:
        raise ValueError(f"requantization multiplier {real} is too large")
    if n > 62:  # everything rounds to 0
        return 0, 1
    return m, n


def _rne_shift_np(v, k):
    v = np.asarray(v, np.int64)
    k = np.asarray(k, np.int64)
    q = v >> k
    r = v - (q << k)
    half = np.where(k > 0, np.int64(1) << np.maximum(k - 1, 0), 0)
    up = np.where(k > 0, (r > half) | ((r == half) & ((q & 1) == 1)), False)
    return q + up.astype(np.int64)


def requant_reference(acc, m, n, zp: int, lo: int, hi: int) -> np.ndarray:
    """numpy reference of the integer algorithm (what the kernels must compute bit-exactly)."""
    acc = np.asarray(acc, np.int64)
    p = acc * np.asarray(m, np.int64)
    a = np.abs(p)
    bits = np.zeros_like(a)
    nz = a > 0
    bits[nz] = np.floor(np.log2(a[nz].astype(np.float64))).astype(np.int64) + 1
    # log2 of a float64 can be off by one near powers of two: fix it exactly
    bits = np.where(nz & ((np.int64(1) << np.maximum(bits - 1, 0)) > a), bits - 1, bits)
    bits = np.where(nz & (bits < 63) & ((np.int64(1) << np.minimum(bits, 62)) <= a), bits + 1,
                    bits)
    d = np.maximum(bits - MANTISSA_BITS, 0)
    a24 = _rne_shift_np(a, d) << d
    q = _rne_shift_np(a24, np.asarray(n, np.int64))
    y = np.where(p < 0, -q, q) + zp
    return np.clip(y, lo, hi).astype(np.int8)


def dtype_range(dtype: str) -> tuple[int, int]:
    return {"int8": (-128, 127), "uint8": (0, 255)}[dtype]


def activation_bounds(kind: str, lo_real: float | None, hi_real: float | None, scale: float,
                      zp: int, dtype: str = "int8") -> tuple[int, int]:
    """Clamp bounds of the 8-bit output for an activation folded into requantization."""
    lo, hi = dtype_range(dtype)
    if lo_real is not None and math.isfinite(lo_real):
        lo = max(lo, zp + int(np.rint(lo_real / scale)))
    if hi_real is not None and math.isfinite(hi_real):
        hi = min(hi, zp + int(np.rint(hi_real / scale)))
    return lo, max(lo, hi)


def _rne_shift(v, k):
    """Round-half-to-even of ``v / 2^k`` for ``v >= 0``, ``k >= 0`` (int64 TIR expressions).

    ``(2v + 2^k - 1 + ((v >> k) & 1)) >> (k + 1)``: the classic ``+ half - 1 + lsb`` trick on
    ``2v / 2^(k+1)``, which also holds for ``k = 0``. ``v`` appears twice, so the expression
    stays small enough for TVM's simplifier (a Let would be smaller still, but TVM's bound
    analysis rejects Let-bound vars duplicated by lowering)."""
    i64 = "int64"
    one = tirx.const(1, i64)
    lsb = tirx.bitwise_and(tirx.shift_right(v, k), one)
    return tirx.shift_right(v + v + tirx.shift_left(one, k) - one + lsb, k + one)


def requant_expr(acc, mult, shift, zp: int, lo: int, hi: int, out_dtype: str = "int8"):
    """The TIR expression of the algorithm above (integer operations only)."""
    i64 = "int64"
    zero = tirx.const(0, i64)
    p = acc.astype(i64) * mult.astype(i64)
    neg = p < zero
    a = tirx.Select(neg, zero - p, p)
    bits = tirx.const(64, i64) - tirx.clz(a).astype(i64)
    d = tirx.max(bits - tirx.const(MANTISSA_BITS, i64), zero)
    a24 = tirx.shift_left(_rne_shift(a, d), d)
    q = _rne_shift(a24, shift.astype(i64))
    v = tirx.Select(neg, zero - q, q) + tirx.const(zp, i64)
    v = tirx.max(tirx.min(v, tirx.const(hi, i64)), tirx.const(lo, i64))
    return v.astype(out_dtype)


def _register_c_lowering():
    """``clz`` for the C target (the GAP8 device code): the LLVM host lowers it natively, the C
    codegen needs a function. GCC's ``__builtin_clzll`` maps to GAP8's ``p.fl1``; it is
    undefined at 0, where ``clz`` is 64."""
    def lower_clz(op):
        x = op.args[0]
        n = tirx.call_pure_extern("int32", "__builtin_clzll", x.astype("uint64"))
        return tirx.Select(x == tirx.const(0, "int64"), tirx.const(64, "int32"), n)

    for name in ("prim.clz", "tirx.clz"):
        try:
            tirx.register_intrin_lowering(name, target="c", f=lower_clz, level=99)
        except Exception:  # already registered (module reload) or unknown name in this build
            pass


_register_c_lowering()
