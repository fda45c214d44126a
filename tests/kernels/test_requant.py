"""The requantization arithmetic on its own, in both modes: the ``float32`` integer algorithm
against onnxruntime's float32 formula (round half to even included) and saturation, the
``fixed`` one against exact rational rounding (half up), the multiplier encodings, and the TIR
expressions the kernels use against their numpy twins, bit for bit."""

import numpy as np
import pytest
import tvm
from tvm import te

from tvm_gap8.kernels.eltwise import add_multipliers
from tvm_gap8.kernels.requant import (FIXED, FLOAT32, REQUANT_MODES, activation_bounds,
                                        fixed_multiplier, float32_expr, float32_scale,
                                        quantize_multiplier, requant_mode)

requant_expr, requant_reference = float32_expr, FLOAT32.reference


def _float32_rne(acc, scale, zp, lo, hi):
    """onnxruntime/MLAS: rne(fl32(fl32(acc) * scale)) + zp, saturated."""
    prod = np.asarray(acc, np.float32) * np.asarray(scale, np.float32)
    return np.clip(np.rint(prod) + zp, lo, hi).astype(np.int8)


@pytest.mark.parametrize("real", [1e-6, 0.0003, 0.01234, 0.5, 0.75, 0.999999, 1.0, 3.7])
def test_multiplier_is_the_float32_mantissa(real):
    m, n = quantize_multiplier(real)
    assert 2 ** 23 <= m < 2 ** 24
    assert m / 2 ** n == float(np.float32(real))  # exact


def test_ties_round_half_to_even_and_saturate():
    m, n = quantize_multiplier(0.5)  # every odd accumulator is a .5 tie
    acc = np.array([-5, -3, -1, 0, 1, 3, 5, 1000, -1000, 255, 256, -257], np.int64)
    got = requant_reference(acc, m, n, zp=3, lo=-128, hi=127)
    np.testing.assert_array_equal(got, _float32_rne(acc, 0.5, 3, -128, 127))
    assert list(got[:7]) == [-2 + 3, -2 + 3, 0 + 3, 3, 0 + 3, 2 + 3, 2 + 3]  # to even
    assert got[7] == 127 and got[8] == -128  # saturation


def test_integer_algorithm_equals_float32_formula():
    rng = np.random.default_rng(0)
    acc = rng.integers(-2 ** 23, 2 ** 23, 50000)
    scale = float32_scale(0.02, rng.uniform(1e-4, 0.05, 50000), 0.03)
    mn = [quantize_multiplier(s) for s in scale]
    m, n = np.array([a for a, _ in mn]), np.array([b for _, b in mn])
    np.testing.assert_array_equal(requant_reference(acc, m, n, -5, -128, 127),
                                  _float32_rne(acc, scale, -5, -128, 127))


def test_tir_expression_is_bit_exact():
    rng = np.random.default_rng(1)
    size = 4096
    acc = np.concatenate([rng.integers(-2 ** 24, 2 ** 24, size - 8),
                          [2 ** 31 - 1, -2 ** 31, 0, 1, -1, 2, -2, 3]]).astype(np.int32)
    mn = [quantize_multiplier(s) for s in rng.uniform(1e-6, 0.9, size)]
    mult = np.array([a for a, _ in mn], np.int32)
    shift = np.array([b for _, b in mn], np.int32)
    a = te.placeholder((size,), "int32", name="a")
    mt = te.placeholder((size,), "int32", name="m")
    st = te.placeholder((size,), "int32", name="s")
    y = te.compute((size,), lambda i: requant_expr(a[i], mt[i], st[i], -7, -100, 120), name="y")
    f = tvm.compile(te.create_prim_func([a, mt, st, y]), target="llvm")
    out = tvm.runtime.tensor(np.zeros(size, np.int8))
    f(*[tvm.runtime.tensor(v) for v in (acc, mult, shift)], out)
    np.testing.assert_array_equal(out.numpy(), requant_reference(acc, mult, shift, -7, -100, 120))


def test_activation_bounds():
    # ReLU: clamp at the zero point; ReLU6 at zp + round(6 / scale), within int8
    assert activation_bounds("relu", 0.0, None, 0.05, -10) == (-10, 127)
    assert activation_bounds("clip", 0.0, 6.0, 0.05, -128) == (-128, -8)
    assert activation_bounds("clip", 0.0, 6.0, 0.01, -128) == (-128, 127)


def test_add_multipliers_share_a_shift():
    ma, mb, n = add_multipliers(0.02, 0.05, 0.04)
    assert max(ma, mb) < 2 ** 31
    assert abs(ma / 2 ** n - 0.5) < 1e-8 and abs(mb / 2 ** n - 1.25) < 1e-8


def test_fuzz_regression_rounds_like_qlinearconv_not_like_the_float_path():
    """Found by benchmarks/fuzz.py (dw_pw 15->51, k7 s2, HardSwish after the PW, int8):
    accumulator 25057 with these scales is 38.5000018 in exact arithmetic. MLAS's QLinearConv
    (fl32(acc) * S, round half to even) and the integers give 39; onnxruntime had run that conv
    as float DQ->Conv->Q and gave 38. We keep the correctly rounded 39."""
    sx, sw, sy = 0.021686408668756485, 0.004205354023724794, 0.05935516580939293
    acc = 25057
    scale = float32_scale(sx, [sw], sy)[0]
    m, n = quantize_multiplier(scale)
    assert abs(acc * sx * sw / sy - 38.5000018) < 1e-6
    assert requant_reference([acc], m, n, 0, -128, 127)[0] == 39
    assert _float32_rne([acc], scale, 0, -128, 127)[0] == 39


# -- the fixed-point mode (the default) -------------------------------------------------------

def _exact_half_up(acc, m, k, zp, lo, hi):
    """floor(acc * m / 2^k + 1/2) + zp, clamped: exact rational arithmetic (Python ints)."""
    out = []
    for a, mm, kk in np.broadcast(np.asarray(acc, object), m, k):
        num = int(a) * int(mm) * 2 + (1 << int(kk))  # 2 * (acc * S + 1/2) * 2^k
        out.append(min(max((num // (1 << (int(kk) + 1))) + zp, lo), hi))
    return np.array(out, np.int64).astype(np.int8)


@pytest.mark.parametrize("real", [2.0 ** -32, 1e-9, 1e-6, 0.0003, 0.01234, 0.5, 0.75, 0.999999,
                                  1.0, 3.7, 1000.0, 2.0 ** 29])
def test_fixed_multiplier_is_the_float32_scale_in_31_bits(real):
    m, k = fixed_multiplier(real)
    assert 2 ** 30 <= m < 2 ** 31 and 1 <= k <= 62
    assert m / 2 ** k == float(np.float32(real))  # exact: at least float32's precision


@pytest.mark.parametrize("real,expected", [(0.0, (0, 62)), (2.0 ** -33, (0, 62)),
                                           (1e-30, (0, 62)),
                                           (2.0 ** 30, (2 ** 30, 1)), (1e30, (2 ** 30, 1))])
def test_fixed_multiplier_tiny_and_huge_scales(real, expected):
    """Below 2^-32 every product rounds to 0 (M = 0); from 2^30 up every nonzero accumulator
    saturates, as it does with 2^30 / 2^1: the clamped outputs are those of the exact scale.
    (M = 0 keeps a large shift: the 32-bit form needs every shift >= 32.)"""
    assert fixed_multiplier(real) == expected
    acc = np.array([-2 ** 31, -2 ** 20, -3, -1, 0, 1, 2, 2 ** 20, 2 ** 31 - 1], np.int64)
    m, k = expected
    exact = np.clip(np.floor(acc.astype(np.float64) * np.float64(np.float32(real)) + 0.5) + 5,
                    -128, 127).astype(np.int8)
    np.testing.assert_array_equal(FIXED.reference(acc, m, k, 5, -128, 127), exact)


def test_fixed_rounds_half_up_at_ties():
    m, k = fixed_multiplier(0.5)  # every odd accumulator is a .5 tie
    acc = np.array([-5, -3, -1, 0, 1, 3, 5, 1000, -1000], np.int64)
    got = FIXED.reference(acc, m, k, zp=3, lo=-128, hi=127)
    assert list(got) == [-2 + 3, -1 + 3, 0 + 3, 3, 1 + 3, 2 + 3, 3 + 3, 127, -128]


def test_fixed_reference_is_exact_rational_rounding():
    rng = np.random.default_rng(2)
    n = 20000
    acc = np.concatenate([rng.integers(-2 ** 31, 2 ** 31, n // 2), rng.integers(-2 ** 12, 2 ** 12,
                                                                              n // 2)])
    reals = np.exp(rng.uniform(np.log(2.0 ** -34), np.log(2.0 ** 8), n))
    mk = np.array([fixed_multiplier(r) for r in reals])
    m, k = mk[:, 0], mk[:, 1]
    np.testing.assert_array_equal(FIXED.reference(acc, m, k, -3, -128, 127),
                                  _exact_half_up(acc, m, k, -3, -128, 127))


def _llvm_requant(mode, acc, bias, mult, shift, zp, lo, hi, out_dtype="int8", min_shift=1):
    """The mode's TIR built for LLVM, run on int32 (acc, bias, mult, shift)."""
    size = acc.size
    arrays = [np.asarray(v).astype(np.int32) for v in (acc, bias, mult, shift)]
    a, f, mt, st = (te.placeholder((size,), str(v.dtype), name=n)
                    for v, n in zip(arrays, ("a", "f", "m", "s")))
    y = te.compute((size,), lambda i: mode.expr(a[i], f[i], mt[i], st[i], zp, lo, hi, out_dtype,
                                                min_shift), name="y")
    fn = tvm.compile(te.create_prim_func([a, f, mt, st, y]), target="llvm")
    out = tvm.runtime.tensor(np.zeros(size, out_dtype))
    fn(*[tvm.runtime.tensor(v) for v in arrays], out)
    return out.numpy()


def _fixed_cases(rng, size, min_real=2.0 ** -34, max_real=2.0 ** 31):
    """Accumulators with the extremes (their sum with the bias within int32), scales from
    ``min_real`` to ``max_real`` (from below 2^-32 to above 2^30: 0 included), exact ties
    (S = 2^-k, odd multiples of 2^(k-1)). -> (acc, bias, mult, shift)"""
    acc = rng.integers(-2 ** 31, 2 ** 31, size).astype(np.int64)
    acc[:16] = [2 ** 31 - 1, -2 ** 31, 0, 1, -1, 2, -2, 3, -3, 2 ** 30, -2 ** 30, 127, -128,
                2 ** 24 + 1, -(2 ** 24) - 1, 7]
    small = rng.integers(-2 ** 16, 2 ** 16, size // 4)
    acc[16:16 + small.size] = small
    bias = rng.integers(-2 ** 20, 2 ** 20, size)
    bias[:2] = 0
    bias = np.clip(acc + bias, -2 ** 31, 2 ** 31 - 1) - acc  # acc + bias is an int32
    reals = np.exp(rng.uniform(np.log(min_real), np.log(max_real), size))
    special = [0.0, 2.0 ** -40, 2.0 ** -32, 2.0 ** -31, 2.0 ** 30, 1e30, 1.0, 0.5]
    special = [r for r in special if r <= max_real]
    reals[:len(special)] = special
    mk = np.array([fixed_multiplier(r) for r in reals])
    mult, shift = mk[:, 0], mk[:, 1]
    ties = slice(size - 64, size)  # (acc + bias) * 2^-k exactly half-way: (2j + 1) * 2^(k-1)
    kk = rng.integers(3, 20, 64)
    mult[ties], shift[ties] = 2 ** 30, kk + 30
    total = (2 * rng.integers(-40, 40, 64) + 1) << (kk - 1)
    bias[ties] = rng.integers(-2 ** 10, 2 ** 10, 64)
    acc[ties] = total - bias[ties]
    return acc, bias, mult, shift


@pytest.mark.parametrize("out_dtype,zp,lo,hi", [("int8", -7, -100, 120), ("int8", 0, -128, 127),
                                               ("uint8", 128, 0, 255)])
def test_fixed_tir_expression_is_bit_exact(out_dtype, zp, lo, hi):
    acc, bias, mult, shift = _fixed_cases(np.random.default_rng(3), 8192)
    got = _llvm_requant(FIXED, acc, bias, mult, shift, zp, lo, hi, out_dtype)
    want = FIXED.reference(acc + bias, mult, shift, zp, lo, hi).astype(out_dtype)
    np.testing.assert_array_equal(got, want)
    assert np.all(got.astype(np.int64) >= lo) and np.all(got.astype(np.int64) <= hi)


@pytest.mark.parametrize("out_dtype,zp,lo,hi", [("int8", -7, -100, 120), ("uint8", 128, 0, 255)])
def test_fixed_tir_32_bit_form_is_bit_exact(out_dtype, zp, lo, hi):
    """Every shift >= 33 (scales below 1/4, every conv here): the high-word form."""
    acc, bias, mult, shift = _fixed_cases(np.random.default_rng(5), 8192, max_real=0.2499)
    assert shift.min() == 33
    got = _llvm_requant(FIXED, acc, bias, mult, shift, zp, lo, hi, out_dtype, shift.min())
    want = FIXED.reference(acc + bias, mult, shift, zp, lo, hi).astype(out_dtype)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", sorted(REQUANT_MODES))
def test_constant_scale_expression_is_bit_exact(mode):
    """Pool and Mul: no bias, a constant scale (``RequantMode.const_expr``)."""
    rq = requant_mode(mode)
    rng = np.random.default_rng(6)
    acc = rng.integers(-2 ** 16, 2 ** 16, 2048).astype(np.int32)
    a = te.placeholder((acc.size,), "int32", name="a")
    for real in (1e-4, 0.3, 0.7, 3.0):
        m, k = rq.multiplier(real)
        y = te.compute(a.shape, lambda i: rq.const_expr(a[i], m, k, 4, -128, 127, "int8"),
                       name="y")
        fn = tvm.compile(te.create_prim_func([a, y]), target="llvm")
        out = tvm.runtime.tensor(np.zeros(acc.size, np.int8))
        fn(tvm.runtime.tensor(acc), out)
        np.testing.assert_array_equal(out.numpy(), rq.reference(acc, m, k, 4, -128, 127))


def test_fixed_tir_expression_is_small():
    """One int64 product, no clz, no repeated sub-expression: what the C emission prints."""
    a, m, s = (tvm.tirx.Var(n, "int32") for n in "ams")
    f = tvm.tirx.Var("f", "int32")
    for min_shift in (1, 33):
        text = str(FIXED.expr(a, f, m, s, 3, -128, 127, "int8", min_shift))
        assert text.count("*") == 1 and "clz" not in text
        assert len(text) < 400, text


def test_modes_by_name():
    assert requant_mode("fixed") is FIXED and requant_mode("float32") is FLOAT32
    with pytest.raises(ValueError, match="requantization mode"):
        requant_mode("double")


def test_fixed_and_float32_differ_by_at_most_one_step():
    """Same real scale, two roundings: a tie (half up vs half to even) or a float32 rounding of
    the product moves an output by one step at most."""
    rng = np.random.default_rng(4)
    acc = rng.integers(-2 ** 23, 2 ** 23, 50000)
    scale = float32_scale(0.02, rng.uniform(1e-4, 0.05, 50000), 0.03)
    fx = np.array([fixed_multiplier(s) for s in scale])
    fl = np.array([quantize_multiplier(s) for s in scale])
    a = FIXED.reference(acc, fx[:, 0], fx[:, 1], -5, -128, 127).astype(np.int64)
    b = FLOAT32.reference(acc, fl[:, 0], fl[:, 1], -5, -128, 127).astype(np.int64)
    assert np.abs(a - b).max() <= 1
