"""Property-based: random DW->PW and PW->DW blocks (1..64 channels, 1..40 pixels, k 3/5/7,
stride 1/2, symmetric and asymmetric padding, every activation, float and int8, random L1
budgets) through the full GAP8 lowering, passing --check (float: onnxruntime; int8: bit for bit
the integer reference, every layer within one step of the QDQ spec). The CI profile runs 100
examples; ``benchmarks/fuzz.py`` runs 1000+."""

import os

from hypothesis import HealthCheck, given, settings

from tvm_gap8.testing.fuzz import run_case, strategy

EXAMPLES = int(os.environ.get("TVM_GAP8_FUZZ_EXAMPLES", "100"))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(strategy())
def test_random_block_equals_onnxruntime(case):
    check = run_case(case)
    if check is not None:
        assert check["passed"], (case, check)

