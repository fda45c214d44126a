"""Integer requantization: int32 accumulator -> 8-bit output, with no float arithmetic.

ONNX QDQ semantics for a conv output: ``y = saturate(round(r / s_y) + z_y)`` with
``r = s_x * s_w[o] * acc`` (``acc`` the int32 sum of ``(x - z_x) * (w - z_w)`` plus the int32
bias, whose scale is ``s_x * s_w[o]``). The real multiplier is onnxruntime's float32
``S = fl32(fl32(s_x * s_w) / s_y)`` (``float32_scale``). Two integer algorithms apply it, chosen
per compile (``RequantMode``, ``REQUANT_MODES``; the CLI's ``--requant``):

``fixed`` (the default; what an embedded engineer ships):
  ``S = M * 2^-k`` with ``2^30 <= M < 2^31`` (``fixed_multiplier``; exact, since ``S`` has a
  24-bit mantissa), then ``y = clamp(((acc * M + 2^(k-1)) >> k) + z_y, lo, hi)`` (``>>``
  arithmetic), i.e. ``floor(acc * S + 1/2)``: the exact product rounded to nearest with ties
  rounded toward +infinity (``-2.5 -> -2``, ``2.5 -> 3``). One 32x32->64-bit product; when
  every channel's ``k >= 33`` (``S < 1/4``, every conv here) only its high word is used and
  the rest is 32-bit (``fixed_expr``): 6.9 RV32 instructions per output, measured
  (``benchmarks/requant_rv32.py``, the per-channel values loaded once per channel by
  ``emitc/hoist.py``; 18.3 in the 64-bit form). ``1 <= k <= 62``: a tinier ``S`` (every ``|acc * S| < 1/2``) is encoded as
  ``M = 0, k = 62``, a huger one (``S >= 2^30``: every nonzero ``acc`` saturates) as
  ``M = 2^30, k = 1``; both give the same clamped outputs as the exact ``S``.
  It differs from onnxruntime only at exact ties (half up instead of half to even) and where
  ``fl32(acc)`` or the float32 product rounds (``|acc| >= 2^24``, or a product within half a
  float32 ulp of a rounding boundary): by at most one step.

``float32`` (onnxruntime's arithmetic, bit for bit): MLAS evaluates
  ``rne(fl32(fl32(acc) * S))``, ``rne`` round-half-to-even. We compute *the same number* with
  integers only:

  * ``S = m * 2^-n`` exactly, with ``m`` its 24-bit mantissa (``2^23 <= m < 2^24``);
  * ``P = acc * m`` exactly in 64 bits;
  * the float32 rounding of the product is a round-half-even of ``P`` to 24 significant bits
    (bit length from count-leading-zeros: GAP8 has ``p.fl1``);
  * then round-half-even by ``2^n``, add the zero point, clamp.

  So the kernels agree with onnxruntime bit for bit whenever ``|acc| < 2^24`` (``fl32(acc)`` is
  then exact). It costs 141.8 RV32 instructions per output, measured (a ``clz``, two 64-bit
  roundings).

In both, the activation (ReLU, ReLU6, any constant Clip) is folded into the clamp bounds:
rounding and clamping commute with monotone piecewise-linear functions. The TIR expression of
a mode (``RequantMode.expr``) is what the kernels compute on the LLVM host and in the emitted
C; its numpy twin (``RequantMode.reference``) is what the integer reference computes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tvm import tirx

INT8_MIN, INT8_MAX = -128, 127
MANTISSA_BITS = 24  # float32
FIXED_BITS = 31  # the fixed-point multiplier: 2^30 <= M < 2^31
MAX_SHIFT = 62  # |acc * M| < 2^62: a larger shift rounds every product to 0


def float32_scale(sx: float, sw, sy: float) -> np.ndarray:
    """onnxruntime's requantization scale, in its float32 evaluation order."""
    sw = np.asarray(sw, np.float32)
    return (np.float32(sx) * sw) / np.float32(sy)


def _float32_parts(real) -> tuple[float, int] | None:
    """``fl32(real)`` as (mantissa in [0.5, 1), exponent), None for 0; refuses negative and
    non-finite multipliers."""
    real = float(np.float32(real))
    if real == 0:
        return None
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"requantization multiplier {real} must be positive and finite")
    return math.frexp(real)


def fixed_multiplier(real) -> tuple[int, int]:
    """``fl32(real)`` as ``M / 2**k`` with ``2^30 <= M < 2^31`` and ``1 <= k <= 62``, exactly
    (a float32 mantissa has 24 bits); ``(0, 62)`` for 0 and for a scale under
    ``2^-32`` (every product of an int32 accumulator then rounds to 0; a large shift keeps the
    32-bit form of ``fixed_expr`` available), ``(2^30, 1)`` for a scale of at least ``2^30``
    (every nonzero accumulator saturates either way)."""
    parts = _float32_parts(real)
    if parts is None:
        return 0, MAX_SHIFT
    mant, exp = parts
    m = int(mant * (1 << FIXED_BITS))  # exact
    k = FIXED_BITS - exp
    if k > MAX_SHIFT:
        return 0, MAX_SHIFT
    if k < 1:
        return 1 << (FIXED_BITS - 1), 1
    return m, k


def quantize_multiplier(real) -> tuple[int, int]:
    """``real`` as ``m / 2**n`` with ``m`` the 24-bit mantissa of its float32 value (exact for
    a float32 input; m = 0 for 0): the ``float32`` mode's encoding."""
    parts = _float32_parts(real)
    if parts is None:
        return 0, 1
    mant, exp = parts
    m = int(mant * (1 << MANTISSA_BITS))  # exact: a float32 mantissa has 24 bits
    n = MANTISSA_BITS - exp
    if n < 1:
        raise ValueError(f"requantization multiplier {real} is too large")
    if n > 62:  # everything rounds to 0
        return 0, 1
    return m, n


def fixed_reference(acc, m, k, zp: int, lo: int, hi: int) -> np.ndarray:
    """numpy twin of ``fixed_expr`` (``acc`` with its bias): ``clamp(((acc * M + 2^(k-1)) >> k)
    + zp, lo, hi)`` in int64, as int8 bits."""
    p = np.asarray(acc, np.int64) * np.asarray(m, np.int64)
    k = np.asarray(k, np.int64)
    y = ((p + (np.int64(1) << (k - 1))) >> k) + zp
    return np.clip(y, lo, hi).astype(np.int8)


def _biased(acc, bias):
    """``acc + bias`` as an int32 value bound once (a Let): TVM would otherwise rewrite the
    int64 cast of the sum into a sum of int64 casts, a 64-bit add and a 64x32-bit product in
    the C. No Let for a constant 0 bias."""
    if isinstance(bias, tirx.IntImm) and bias.value == 0:
        return acc, None
    var = tirx.Var("biased", "int32")
    return var, (var, acc + bias.astype("int32"))


def _bind(binding, value):
    return value if binding is None else tirx.Let(binding[0], binding[1], value)


def fixed_expr(acc, bias, mult, shift, zp: int, lo: int, hi: int, out_dtype: str = "int8",
               min_shift: int = 1):
    """The ``fixed`` mode's TIR of one output of the int32 accumulator ``acc`` and its int32
    ``bias``: ``b = acc + bias`` (int32), ``((b * M + 2^(k-1)) >> k) + zp`` clamped to
    ``[lo, hi]``, cast to ``out_dtype``; one 32x32->64-bit product.

    ``min_shift``: a compile-time lower bound of ``shift`` (every channel's). From 33 up, the
    same integers come from 32-bit operations on the product's high word ``h = (b * M) >> 32``:
    ``((h + 2^(k-33)) >> (k-32))`` (the rounding half ``2^(k-1)`` has a zero low word, so adding
    it carries nothing out of the low word; floor divisions compose; ``|h| <= 2^30``), then a
    32-bit clamp: RV32 ``mulh``, ``sll``, ``add``, ``sra``. The shift amounts are written
    ``(k - 1) & 31`` and ``k & 31`` (equal to ``k - 33``, ``k - 32`` for ``33 <= k <= 63``): that
    tells TVM's bound analysis they lie in [0, 31] (with an unbounded shift it takes the
    shifted value for [-1, 0] and drops the clamp). Below 33 the rounding, shift and clamp are
    64-bit."""
    i64, i32 = "int64", "int32"
    b, binding = _biased(acc, bias)
    p = b.astype(i64) * mult.astype(i64)
    k = shift.astype(i32)
    if min_shift >= 33:
        high = tirx.shift_right(p, tirx.const(32, i64)).astype(i32)
        half = tirx.shift_left(tirx.const(1, i32),
                               tirx.bitwise_and(k - tirx.const(1, i32), tirx.const(31, i32)))
        v = tirx.shift_right(high + half, tirx.bitwise_and(k, tirx.const(31, i32)))
        v = v + tirx.const(zp, i32)
        v = tirx.max(tirx.min(v, tirx.const(hi, i32)), tirx.const(lo, i32))
        return _bind(binding, v).astype(out_dtype)
    k64 = k.astype(i64)
    half = tirx.shift_left(tirx.const(1, i64), k64 - tirx.const(1, i64))
    v = tirx.shift_right(p + half, k64) + tirx.const(zp, i64)
    v = tirx.max(tirx.min(v, tirx.const(hi, i64)), tirx.const(lo, i64))
    return _bind(binding, v).astype(out_dtype)


def _rne_shift_np(v, k):
    v = np.asarray(v, np.int64)
    k = np.asarray(k, np.int64)
    q = v >> k
    r = v - (q << k)
    half = np.where(k > 0, np.int64(1) << np.maximum(k - 1, 0), 0)
    up = np.where(k > 0, (r > half) | ((r == half) & ((q & 1) == 1)), False)
    return q + up.astype(np.int64)


def float32_reference(acc, m, n, zp: int, lo: int, hi: int) -> np.ndarray:
    """numpy twin of ``float32_expr`` (onnxruntime's float32 arithmetic in integers), as int8
    bits."""
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


def float32_expr(acc, mult, shift, zp: int, lo: int, hi: int, out_dtype: str = "int8"):
    """The ``float32`` mode's TIR (integer operations only)."""
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


def float32_biased_expr(acc, bias, mult, shift, zp: int, lo: int, hi: int,
                        out_dtype: str = "int8", min_shift: int = 1):
    """``float32_expr`` of ``acc + bias`` (``min_shift`` unused)."""
    is_zero = isinstance(bias, tirx.IntImm) and bias.value == 0
    return float32_expr(acc if is_zero else acc + bias.astype(acc.dtype), mult, shift, zp, lo, hi,
                        out_dtype)


@dataclass(frozen=True)
class RequantMode:
    """One requantization algorithm. The kernel reads three int32 numbers per output channel:
    the bias (in accumulator units), a multiplier and a shift.

    * ``multiplier``: real scale -> (multiplier, shift);
    * ``expr``: the TIR of one output, ``(acc, bias, mult, shift, zp, lo, hi, out_dtype,
      min_shift)``, with ``acc`` the int32 accumulator without its bias and ``min_shift`` a
      compile-time lower bound of ``shift``;
    * ``reference``: the numpy twin, ``(acc + bias, mult, shift, zp, lo, hi)`` -> int8 bits.
    """

    name: str
    multiplier: Callable
    expr: Callable
    reference: Callable

    def const_expr(self, acc, mult: int, shift: int, zp: int, lo: int, hi: int,
                   out_dtype: str, bias: int = 0):
        """``expr`` of an accumulator with a constant bias and (``multiplier``) scale."""
        return self.expr(acc, tirx.const(bias, "int32"), tirx.const(mult, "int32"),
                         tirx.const(shift, "int32"), zp, lo, hi, out_dtype, shift)


FIXED = RequantMode("fixed", fixed_multiplier, fixed_expr, fixed_reference)
FLOAT32 = RequantMode("float32", quantize_multiplier, float32_biased_expr, float32_reference)
REQUANT_MODES = {m.name: m for m in (FIXED, FLOAT32)}
DEFAULT_REQUANT = FIXED.name


def requant_mode(name: str) -> RequantMode:
    """The mode named ``name`` (``fixed`` | ``float32``)."""
    try:
        return REQUANT_MODES[name]
    except KeyError:
        raise ValueError(f"requantization mode {name!r}: expected one of "
                         f"{', '.join(REQUANT_MODES)}") from None


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
