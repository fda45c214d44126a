"""The fixed-point requantization written once in C: the pass turning kernels/requant.py's
fixed_expr into gap8_requantize calls (variable and folded multiplier/shift; other forms left
alone), and runtime/gap8_requant.h computing fixed_reference's integers on the host."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import tvm
import tvm_ffi
from tvm import s_tir, te, tirx

from tvm_gap8.emitc.requant_calls import REQUANTIZE, requant_calls
from tvm_gap8.kernels.requant import fixed_expr, fixed_reference, float32_biased_expr

RUNTIME = os.path.join(os.path.dirname(__file__), "..", "..", "tvm_gap8", "emitc", "runtime")


def _func(value_of):
    """A PrimFunc y[i] = value_of(acc[i], bias[i], mult[i], shift[i]) lowered and simplified as
    the C back end's final passes leave it."""
    acc, bias, mult, shift = (te.placeholder((4,), "int32", n)
                              for n in ("acc", "bias", "mult", "shift"))
    y = te.compute((4,), lambda i: value_of(acc[i], bias[i], mult[i], shift[i]), name="y")
    mod = tvm.IRModule({"main": te.create_prim_func([acc, bias, mult, shift, y])})
    passes = [s_tir.transform.ConvertBlocksToOpaque(), s_tir.transform.LowerOpaqueBlock(),
              tirx.transform.FlattenBuffer(),
              tirx.transform.StmtSimplify()]
    return tvm.transform.Sequential(passes)(mod)["main"]


def _calls(func) -> list:
    found = []
    tvm_ffi.structural_map(func.body, (tvm.ir.expr.Call, lambda c: found.append(c) or c))
    return [c for c in found if getattr(c.op, "name", "") == "tirx.call_extern"
            and c.args[0].value == REQUANTIZE]


def test_variable_multiplier_and_shift_become_one_call():
    func = requant_calls(_func(lambda a, b, m, k: fixed_expr(a, b, m, k, -3, -128, 127, "int8",
                                                             33)))
    (call,) = _calls(func)
    assert "mult" in str(call.args[2]) and "shift" in str(call.args[3])
    assert [int(x.value) for x in call.args[4:]] == [-3, -128, 127]


@pytest.mark.parametrize("shift", [33, 40, 63])
def test_folded_constants_give_back_the_shift(shift):
    func = requant_calls(_func(lambda a, b, m, k: fixed_expr(
        a, b, tirx.const(1234567890, "int32"), tirx.const(shift, "int32"), 5, 0, 255, "uint8",
        shift)))
    (call,) = _calls(func)
    assert [int(x.value) for x in call.args[2:]] == [1234567890, shift, 5, 0, 255]


def test_other_forms_are_left_alone():
    """--requant float32 and the 64-bit form (a shift that may be below 33): no call."""
    float32 = requant_calls(_func(lambda a, b, m, k: float32_biased_expr(a, b, m, k, 0, -128,
                                                                         127, "int8")))
    low = requant_calls(_func(lambda a, b, m, k: fixed_expr(a, b, m, k, 0, -128, 127, "int8",
                                                            1)))
    assert _calls(float32) == [] and _calls(low) == []


def test_c_function_equals_the_integer_reference(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is part of the test environment"
    rng = np.random.default_rng(0)
    n = 4000
    acc = np.concatenate([rng.integers(-(1 << 31), 1 << 31, n // 2),
                          rng.integers(-(1 << 20), 1 << 20, n // 2)]).astype(np.int64)
    mult = rng.integers(1 << 30, (1 << 31) - 1, n).astype(np.int64)
    shift = rng.integers(33, 64, n).astype(np.int64)
    zp = rng.integers(-128, 128, n).astype(np.int64)
    rows = "\n".join(f"{{{a}, {m}, {k}, {z}}}," for a, m, k, z in zip(acc, mult, shift, zp))
    (tmp_path / "t.c").write_text(
        '#include <stdio.h>\n#include "gap8_requant.h"\n'
        f"static const long long T[{n}][4] = {{\n{rows}\n}};\n"
        "int main(void) {\n  for (int i = 0; i < %d; ++i)\n" % n +
        '    printf("%d\\n", (int)gap8_requantize((int32_t)T[i][0], (int32_t)T[i][1], '
        "(int32_t)T[i][2], (int32_t)T[i][3], -128, 127));\n  return 0;\n}\n")
    exe = tmp_path / "t"
    subprocess.run([cc, "-std=c99", "-O2", f"-I{RUNTIME}", str(tmp_path / "t.c"), "-o",
                    str(exe)], check=True)
    got = np.array(subprocess.run([str(exe)], capture_output=True, text=True,
                                  check=True).stdout.split(), np.int64)
    want = np.array([fixed_reference(a, m, k, int(z), -128, 127)
                     for a, m, k, z in zip(acc, mult, shift, zp)], np.int64).reshape(-1)
    assert np.array_equal(got, want)
