"""A dense layer with too few output features for the cores (a 10-class head) splits its
reduction over them (``kernels/dense.py:reduction_parts``): partial sums in L1, then the sum
of each feature's parts. Integer sums in any order are the same integers: the kernel's
outputs equal the unsplit kernel's exactly."""

import dataclasses

import numpy as np
import tvm

from tvm_gap8.ir.vocab import INTERMEDIATE, L1_SCOPE
from tvm_gap8.ir.tirwalk import allocations
from tvm_gap8.cost.ir import lower_for_inspection
from tvm_gap8.kernels import build_kernel
from tvm_gap8.kernels.dense import PARTIALS, DenseKernelSpec, dense_tiling, reduction_parts
from tvm_gap8.kernels.epilogue import Epilogue, Requant
from tvm_gap8.kernels.tiling import choose_plan
from tvm_gap8.target import GAP8


def _spec(features: int, k: int = 256, dtype: str = "int8") -> DenseKernelSpec:
    requant = Requant(-3, -128, 127, "int8", 0, 1, 2)
    return DenseKernelSpec((1, k), features, Epilogue(requant=requant),
                           ((1, features, 1, 1),) * 3, ("int32",) * 3, dtype, 3, "int8")


def test_the_reduction_is_split_only_where_the_features_cannot_balance_the_cores():
    assert reduction_parts(_spec(10), GAP8, 10) == 8  # 1 or 2 features a core
    assert reduction_parts(_spec(16), GAP8, 16) == 1  # 2 features a core
    assert reduction_parts(_spec(1000), GAP8, 100) == 1  # 12 or 13 a core
    assert reduction_parts(_spec(10, k=100), GAP8, 10) == 1  # parts not whole SIMD words
    assert reduction_parts(DenseKernelSpec((1, 256), 10), GAP8, 10) == 1  # float: sum order


def _run(func, args, out_shape):
    f = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}),
                    target="llvm")
    out = tvm.runtime.tensor(np.zeros(out_shape, "int8"))
    f["main"](*[tvm.runtime.tensor(a) for a in args], out)
    return out.numpy()


def test_partial_sums_in_l1_give_the_unsplit_integers():
    spec = _spec(10)
    plan = choose_plan(spec, GAP8, "fc", dense_tiling)
    (partials,) = [b for b in plan.buffers if b.name == PARTIALS]
    assert partials.role == INTERMEDIATE and partials.elements == 8 * 10
    split = build_kernel(spec, plan)
    in_l1 = [b.name for b, _ in allocations(lower_for_inspection(split))
             if b.scope() == L1_SCOPE]
    assert f"dense_acc.rf_{L1_SCOPE}" in in_l1  # the buffer rfactor makes for PARTIALS
    whole = build_kernel(spec, dataclasses.replace(
        plan, buffers=tuple(b for b in plan.buffers if b.name != PARTIALS)))
    rng = np.random.default_rng(0)
    args = [rng.integers(-128, 128, (1, 256)).astype("int8"),
            rng.integers(-128, 128, (10, 256)).astype("int8"),
            rng.integers(-5000, 5000, (1, 10, 1, 1)).astype("int32"),
            rng.integers(1 << 29, 1 << 30, (1, 10, 1, 1)).astype("int32"),
            np.full((1, 10, 1, 1), 38, "int32")]
    got, want = _run(split, args, (1, 10)), _run(whole, args, (1, 10))
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 3  # not saturated: the test can see a wrong sum
