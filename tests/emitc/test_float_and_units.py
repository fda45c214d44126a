"""--emit-c on a float model (host), the L2 arena planner, the C of one kernel."""

import json

import numpy as np
import onnx
import pytest

from tvm_gap8.cli import main
from tvm_gap8.emitc.network import first_fit
from tvm_gap8.testing import onnx_models as M


def test_first_fit_never_overlaps_live_tensors():
    rng = np.random.default_rng(0)
    items = []
    for i in range(60):
        first = int(rng.integers(0, 30))
        items.append((f"t{i}", int(rng.integers(1, 5000)), first, first + int(rng.integers(0, 5))))
    offsets, peak = first_fit(items)
    for a, sa, fa, la in items:
        assert offsets[a] % 8 == 0 and offsets[a] + sa <= peak
        for b, sb, fb, lb in items:
            if a < b and not (la < fb or lb < fa):  # live together: disjoint bytes
                assert offsets[a] + sa <= offsets[b] or offsets[b] + sb <= offsets[a], (a, b)
    # a chain where each tensor dies when the next is made reuses two slots
    chain = [(f"c{i}", 1000, i, i + 1) for i in range(10)]
    assert first_fit(chain)[1] == 2000


def test_float_network_host_equals_llvm_and_reference(tmp_path):
    model = tmp_path / "dwpw.onnx"
    onnx.save(M.mobilenet_v1(alpha=0.25, resolution=64), str(model))
    rc = main(["compile", str(model), "--emit-c", "--run", "host", "--instrument",
               "-o", str(tmp_path / "o"), "-q"])
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rc == 0
    assert "int gap8_network_run(const float *in, float *out);" in \
        (tmp_path / "o" / "gap8" / "network.h").read_text()
    assert report["run"]["vs_llvm"] == {"max_abs_diff": 0.0, "equal": True}  # exact floats
    assert report["run"]["check"]["passed"]
    assert report["measured"]["all_equal_to_static"]


@pytest.mark.parametrize("bad", ["--run", "--instrument"])
def test_run_flags_without_emit_c_are_usage_errors(bad, tmp_path, capsys):
    model = tmp_path / "m.onnx"
    onnx.save(M.dw_pw_block(cin=8, cout=8, h=8, w=8), str(model))
    args = ["compile", str(model), "-o", str(tmp_path / "o"), "-q", bad] + \
        (["host"] if bad == "--run" else [])
    assert main(args) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_core_copies_count_like_the_report(tmp_path, monkeypatch):
    """Copies that cannot become DMA calls stay core loops and still count exactly what
    cost/ir.py counts (forced here for every copy of an int8 DW->PW block, padded input too)."""
    from tvm_gap8.emitc import plainc
    from tvm_gap8.testing.quant import quantized

    monkeypatch.setattr(plainc, "_dma_call", lambda *a: None)
    monkeypatch.setattr(plainc, "_padded_dma", lambda *a: None)
    model = tmp_path / "block.onnx"
    onnx.save(quantized(M.dw_pw_block(cin=16, cout=32, h=15, w=13, k=3, stride=2)), str(model))
    rc = main(["compile", str(model), "--emit-c", "--run", "host", "--instrument",
               "-o", str(tmp_path / "o"), "-q"])
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rc == 0 and report["run"]["vs_llvm"]["integers_equal"], report["run"]
    assert report["emit_c"]["dma_calls"] == 0 and report["emit_c"]["core_copies"] > 0
    assert report["measured"]["all_equal_to_static"]
    assert "GAP8_COPY_ELEM" in (tmp_path / "o" / "gap8" / "kernels.c").read_text()
