"""Integer requantization: int32 accumulator -> int8, with no float arithmetic.

ONNX QDQ semantics for a conv output: ``y = saturate(round(r / s_y) + z_y)`` with
``r = s_x * s_w[o] * acc`` (``acc`` the int32 sum of ``(x - z_x) * (w - z_w)`` plus the int32
bias, whose scale is ``s_x * s_w[o]``). We compute it as

    y = clamp(((acc * m[o]) + 2^(n[o] - 1)) >> n[o]) + z_y, lo, hi)

where ``m[o] / 2^n[o]`` is the real multiplier ``M = s_x * s_w[o] / s_y`` with ``m`` a 31-bit
integer (``2^30 <= m < 2^31``): rounding is half-up at exactly .5 (onnxruntime rounds half to
even, so the two can differ by 1 LSB at ties), and the activation (ReLU, ReLU6, any constant
Clip) is folded into ``lo``/``hi`` because rounding and clamping commute with monotone
piecewise-linear functions. The product is formed in int64 (on GAP8 this is the 32x32->64
``mulh`` pair of RV32IM).
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``real`` ~= m / 2**n with 2**30 <= m < 2**31 (m = 0 for real == 0)."""
    if real <= 0 or not math.isfinite(real):
        if real == 0:
            return 0, 31
        raise ValueError(f"requantization multiplier {real} must be positive and finite")
    mant, exp = math.frexp(real)  # real = mant * 2**exp, 0.5 <= mant < 1
    m = int(round(mant * (1 << 31)))
    n = 31 - exp
    if m == 1 << 31:  # mant rounded up to 1.0
        m //= 2
        n -= 1
    if n < 1:
        raise ValueError(f"requantization multiplier {real} is too large (>= 2**30)")
    if n > 62:  # too small to matter: everything rounds to 0
        return 0, 31
    return m, n


def requant_reference(acc: np.ndarray, m, n, zp: int, lo: int, hi: int) -> np.ndarray:
    """numpy reference of the integer formula (what the kernels must compute bit-exactly)."""
    acc = np.asarray(acc, np.int64)
    m = np.asarray(m, np.int64)
    n = np.asarray(n, np.int64)
    rounded = (acc * m + (np.int64(1) << (n - 1))) >> n
    return np.clip(rounded + zp, lo, hi).astype(np.int8)


def activation_bounds(kind: str, lo_real: float | None, hi_real: float | None, scale: float,
                      zp: int) -> tuple[int, int]:
    """Clamp bounds of the int8 output for an activation folded into requantization."""
    lo, hi = INT8_MIN, INT8_MAX
    if lo_real is not None and math.isfinite(lo_real):
        lo = max(lo, zp + int(round(lo_real / scale)))
    if hi_real is not None and math.isfinite(hi_real):
        hi = min(hi, zp + int(round(hi_real / scale)))
    return lo, max(lo, hi)


def requant_expr(acc, mult, shift, zp: int, lo: int, hi: int, out_dtype: str = "int8"):
    """The TIR expression of the formula above."""
    from tvm import tirx

    i64 = "int64"
    prod = acc.astype(i64) * mult.astype(i64)
    sh = shift.astype(i64)
    rounded = tirx.shift_right(prod + tirx.shift_left(tirx.const(1, i64), sh - 1), sh)
    v = rounded + tirx.const(zp, i64)
    v = tirx.max(tirx.min(v, tirx.const(hi, i64)), tirx.const(lo, i64))
    return v.astype(out_dtype)
