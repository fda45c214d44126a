"""The requantization arithmetic on its own: multiplier encoding, the integer formula against
exact rational arithmetic (ties at .5 and saturation included), and the TIR expression the
kernels use against the numpy reference, bit for bit."""

from fractions import Fraction

import numpy as np
import pytest
import tvm
from tvm import te

from tvm_gap8.schedules.eltwise import add_multipliers
from tvm_gap8.schedules.requant import (activation_bounds, quantize_multiplier, requant_expr,
                                        requant_reference)


@pytest.mark.parametrize("real", [1e-6, 0.0003, 0.01234, 0.5, 0.75, 0.999999, 1.0, 3.7, 1000.0])
def test_multiplier_encoding(real):
    m, n = quantize_multiplier(real)
    assert 2 ** 30 <= m < 2 ** 31
    assert abs(m / 2 ** n - real) <= real * 2 ** -30


def _exact(acc, m, n, zp, lo, hi):
    """round-half-up(acc * m / 2^n) + zp, saturated, with exact rationals."""
    out = []
    for a in acc:
        v = Fraction(int(a) * m, 2 ** n)
        r = (v + Fraction(1, 2)).__floor__()
        out.append(min(max(r + zp, lo), hi))
    return np.array(out, np.int8)


def test_reference_rounds_half_up_and_saturates():
    m, n = 1 << 30, 31  # multiplier exactly 0.5: every odd acc is a .5 tie
    acc = np.array([-5, -3, -1, 0, 1, 3, 5, 1000, -1000, 255, 256, -257], np.int64)
    got = requant_reference(acc, m, n, zp=3, lo=-128, hi=127)
    np.testing.assert_array_equal(got, _exact(acc, m, n, 3, -128, 127))
    # ties: 1*0.5 = 0.5 -> 1, -1*0.5 = -0.5 -> 0 (half up), then + zp
    assert got[4] == 1 + 3 and got[2] == 0 + 3
    assert got[7] == 127 and got[8] == -128  # saturation


def test_reference_matches_exact_on_random_values():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m, n = quantize_multiplier(float(rng.uniform(1e-4, 2.0)))
        acc = rng.integers(-2 ** 20, 2 ** 20, 200)
        zp = int(rng.integers(-128, 128))
        lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
        np.testing.assert_array_equal(requant_reference(acc, m, n, zp, lo, hi),
                                      _exact(acc, m, n, zp, lo, hi))


def test_tir_expression_is_bit_exact():
    rng = np.random.default_rng(1)
    size = 4096
    acc = np.concatenate([rng.integers(-2 ** 24, 2 ** 24, size - 8),
                          [2 ** 31 - 1, -2 ** 31, 0, 1, -1, 2, -2, 3]]).astype(np.int32)
    mult = rng.integers(2 ** 30, 2 ** 31, size).astype(np.int32)
    shift = rng.integers(20, 45, size).astype(np.int32)
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
