"""The requantization arithmetic on its own: the integer algorithm against onnxruntime's float32
formula (round half to even included) and saturation, the multiplier encoding, and the TIR
expression the kernels use against the numpy reference, bit for bit."""

import numpy as np
import pytest
import tvm
from tvm import te

from tvm_gap8.kernels.eltwise import add_multipliers
from tvm_gap8.kernels.requant import (activation_bounds, float32_scale, quantize_multiplier,
                                        requant_expr, requant_reference)


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
