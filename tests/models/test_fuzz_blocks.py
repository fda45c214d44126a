"""Property-based: random DW->PW and PW->DW blocks (1..64 channels, 1..40 pixels, k 3/5/7,
stride 1/2, symmetric and asymmetric padding, every activation (float also LeakyRelu,
PRelu, Sigmoid, SiLU, Tanh), float and int8, random L1
budgets) through the full GAP8 lowering, passing --check (float: onnxruntime; int8: bit for bit
the integer reference, every layer within one step of the QDQ spec). The CI profile runs 30
examples (``TVM_GAP8_FUZZ_EXAMPLES``); ``benchmarks/fuzz.py`` runs 1000+."""

import os

from hypothesis import HealthCheck, given, settings

from tvm_gap8.testing.fuzz import run_case_report, strategy

EXAMPLES = int(os.environ.get("TVM_GAP8_FUZZ_EXAMPLES", "30"))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(strategy())
def test_random_block_equals_onnxruntime(case):
    report = run_case_report(case)
    if report is None:
        return  # the drawn L1 budget is too small for one of the layers (the error says so)
    assert report["check"]["passed"], (case, report["check"])
    dw_channels = case.channels if case.kind == "dw_pw" else case.out_channels
    if not case.int8 and dw_channels > 1:  # (a 1-channel "DW" is an ordinary conv)
        # every float activation fuses: the pair is one kernel unless it fits no tile
        fused = [f["kind"] for f in report["fusion"]["fused"]]
        refused = [r["reason"] for r in report["fusion"]["refused"]]
        assert fused == [case.kind] or any("cannot fit L1" in r for r in refused), \
            (case, fused, refused)
