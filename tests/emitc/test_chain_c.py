"""A PW -> DW -> PW chain (the whole inverted residual, Add included) as plain C: on rv32imc
(QEMU) and on GVSOC's pulp-open cluster, bit-exact against the LLVM build and the integer
reference; its reductions are micro-kernel calls; its runtime counters equal the report's."""

import json

import onnx
import pytest

from tvm_gap8.cli import main
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


@pytest.fixture(scope="module")
def chain_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain") / "chain_int8.onnx"
    onnx.save(quantized(M.chain_block(cin=16, cout=16, h=12, w=12, t=6)), str(path))
    return str(path)


def _compile(model, out, *extra):
    rc = main(["compile", model, "--fusion", "all-chains", "--emit-c", "-o", str(out), "-q", *extra])
    return rc, json.loads((out / "report.json").read_text())


def _assert_one_exact_chain(rc, report, platform):
    assert rc == 0
    assert [layer["kind"] for layer in report["layers"] if layer.get("tiled")] == ["pw_dw_pw"]
    run = report["run"]
    assert run["platform"] == platform
    assert run["vs_llvm"] == {"integers_equal": True, "max_abs_diff": 0}
    assert run["check"]["passed"] and run["check"]["exact"]["equal"]


def test_chain_rv32_bit_exact_counters_equal_report(chain_model, rv32, tmp_path):
    rc, report = _compile(chain_model, tmp_path / "o", "--run", "rv32", "--instrument")
    _assert_one_exact_chain(rc, report, "rv32")
    assert report["measured"]["all_equal_to_static"]  # DMA bytes, transfers, executed MACs
    kernels = (tmp_path / "o" / "gap8" / "kernels.c").read_text()
    # expansion, depthwise and projection: one micro-kernel call per reduction
    for call in ("gap8_dot4_i8(", "gap8_dw3x3w_i8(", "gap8_dot4x2_i8("):
        assert call in kernels, call
    # neither intermediate is copied: the only copies are the input, weights, output
    assert "pw_out_global_l1" in kernels and "dw_out_global_l1" in kernels
    assert "pw_out_p" not in kernels and "dw_out_p" not in kernels


def test_chain_on_gvsoc_bit_exact_and_measured(chain_model, rv32, gvsoc, tmp_path):
    rc, report = _compile(chain_model, tmp_path / "g", "--run", "gvsoc")
    _assert_one_exact_chain(rc, report, "gvsoc")
    (row,) = [r for r in report["measured"]["layers"] if r["kind"] == "pw_dw_pw"]
    tiled = [layer for layer in report["layers"] if layer.get("tiled")][0]
    assert row["cycles"] > 0 and row["modelled_cycles"] == tiled["plan"]["cycles"]
    assert row["l2_to_l1_bytes"] == tiled["traffic"]["l2_to_l1_act"] + \
        tiled["traffic"]["l2_to_l1_wgt"]
    # every core busy: the expansion's channel blocks and padded rows are one split loop (the
    # rows alone left the ring rows' cores idle)
    active = [c["active_cycles"] for c in row["cores"]]
    assert max(active) <= 1.15 * min(active), active
