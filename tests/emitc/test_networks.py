"""--emit-c --run: whole int8 networks as plain C, on the host and on rv32imc (QEMU), equal to
the LLVM build of the same lowered IR and to the integer reference; the runtime counters
(--instrument) equal the report's static per-layer counts."""

import json
import os
import re

import numpy as np
import pytest

from tvm_gap8.cli import main
from tvm_gap8.emitc import build

FORBIDDEN = re.compile(r"TVMBackend|TVMFFI|tvm_ffi|__tvm|tvm/|\bmalloc\b|\bfree\(|dlpack|DLTensor")


def _compile(model, out, *extra):
    rc = main(["compile", model, "--emit-c", "-o", str(out), "-q", *extra])
    report = json.loads((out / "report.json").read_text())
    return rc, report


def _assert_ran_equal(report, platform):
    run = report["run"]
    assert run["platform"] == platform
    assert run["vs_llvm"] == {"integers_equal": True, "max_abs_diff": 0}
    check = run["check"]
    assert check["passed"] and check["exact"]["equal"] and check["spec"]["passed"], check


def _assert_counters_equal_report(report):
    """Per layer: runtime DMA bytes per edge, L2<->L1 transfers and MACs == the report's
    static counts (cost/ir.py, report.json layers)."""
    tiled = [layer for layer in report["layers"] if layer.get("tiled")]
    measured = [m for m in report["measured"]["layers"] if m["kind"] != "tvm"]
    assert [m["name"] for m in measured] == [t["name"] for t in tiled]
    for m, t in zip(measured, tiled):
        tr = t["traffic"]
        assert m["l2_to_l1_bytes"] == tr["l2_to_l1_act"] + tr["l2_to_l1_wgt"], m["name"]
        assert m["l1_to_l2_bytes"] == tr["l1_to_l2_act"], m["name"]
        assert m["l2_to_l1_transfers"] + m["l1_to_l2_transfers"] == tr["dma_transfers"], m["name"]
        assert m["macs"] == t["macs"], m["name"]
        assert m["tiles"] == t["tile"]["row_tiles"] * t["tile"]["channel_tiles"], m["name"]
        if t["weights_in"] == "L3":  # the report streams it: the same bytes, counted
            assert m["l3_to_l2_bytes"] == tr["l3_to_l2"] > 0, m["name"]
        # L3 -> L2: its weight copies when they are in L3, its input copies when they are;
        # L2 -> L3: its output copies when its output is (where the C put them)
        expected_l3 = (tr["l2_to_l1_wgt"] if m["weights_in"] == "L3" else 0) + \
            (tr["l2_to_l1_act"] if m["inputs_in"] == "L3" else 0)
        assert m["l3_to_l2_bytes"] == expected_l3 == tr["l3_to_l2"], m["name"]
        assert m["l2_to_l3_bytes"] == (tr["l1_to_l2_act"] if m["output_in"] == "L3" else 0) \
            == tr["l2_to_l3"], m["name"]
    assert report["measured"]["all_equal_to_static"]


def _output(out, index=0):
    return np.fromfile(out / "gap8" / f"gap8_out{index}.bin", dtype=np.int8)


def _assert_plain_c(project):
    files = sorted(os.listdir(project))
    for name in ("network.h", "network.c", "kernels.c", "weights.c", "gap8_dma.h",
                 "gap8_cluster.h", "gap8_portable.c", "gap8_pmsis.c", "Makefile", "main.c",
                 "gap8_memory.ld"):
        assert name in files
    for name in files:
        if name.endswith((".c", ".h")):
            text = (project / name).read_text()
            assert not FORBIDDEN.search(text), (name, FORBIDDEN.search(text).group(0))
    header = (project / "network.h").read_text()
    assert "int gap8_network_run(const int8_t *in, int8_t *out);" in header
    assert "gap8_dma_copy_1d_team(" in (project / "kernels.c").read_text()  # shared runs
    assert "gap8_team_size()" in (project / "kernels.c").read_text()  # loops split over cores


@pytest.mark.parametrize("name", ["mobilenet_v1_025_96", pytest.param("mobilenet_v2_035_96", marks=pytest.mark.slow)])
def test_int8_network_rv32_and_host(name, int8_model, rv32, tmp_path):
    model = int8_model(name)
    rc, rv = _compile(model, tmp_path / "rv32", "--run", "rv32", "--instrument")
    assert rc == 0
    _assert_plain_c(tmp_path / "rv32" / "gap8")
    _assert_ran_equal(rv, "rv32")
    assert rv["emit_c"]["kernels_not_split_over_cores"] == []
    assert rv["emit_c"]["core_copies"] == 0  # every copy stage is a DMA call
    assert rv["run"]["soft_float_symbols"] == []  # int8: no soft-float routine linked
    _assert_counters_equal_report(rv)
    assert all(m["instructions"] > 0 for m in rv["measured"]["layers"])  # minstret per layer
    # the DMA stand-in's share of them, counted apart: every layer copies, none only copies
    assert all(0 < m["dma_instructions"] < m["instructions"] for m in rv["measured"]["layers"])
    # the same project and input built with the host's cc: the same integers as on rv32
    # (the CLI's --run host path is tested on a float network, test_float_and_units.py)
    project = str(tmp_path / "rv32" / "gap8")
    x = np.fromfile(os.path.join(project, "gap8_in0.bin"), dtype=np.int8)
    rv32_out = _output(tmp_path / "rv32")
    host = build.run_project(project, build.build_host(project), "host", x, rv32_out.shape,
                             np.int8)
    assert np.array_equal(host["output"], rv32_out)


@pytest.mark.slow
def test_int8_mobilenet_v1_x1_streams_weights_from_l3(int8_model, rv32, tmp_path):
    """Weights > L2: layers stream their weights L3 -> L2 -> L1 (and, with the caller's
    buffers counted in L2, some activations go to L3 too), counted, equal to the report. L2
    is GAP8's 512 KiB here (the rows of docs/c-emission.md's instruction table)."""
    hw = tmp_path / "l2_512kib.json"
    hw.write_text(json.dumps({"l2_bytes": 512 * 1024}))
    rc, rep = _compile(int8_model("mobilenet_v1_100_128"), tmp_path / "o", "--run", "rv32",
                       "--instrument", "--hw", str(hw))
    assert rc == 0
    linked = rep["run"]["l2_linked"]
    assert linked["network_data_bytes"] + linked["code_bytes"] + linked["runtime_data_bytes"] \
        <= 512 * 1024
    _assert_ran_equal(rep, "rv32")
    assert rep["emit_c"]["l3_weight_bytes"] > 512000  # the weights do not fit L2
    assert rep["measured"]["totals"]["l3_to_l2_bytes"] > 0
    assert any(t.get("weights_in") == "L3" for t in rep["layers"])
    _assert_counters_equal_report(rep)


def test_network_too_big_for_l2_is_refused_naming_the_overflow(rv32, tmp_path, capsys):
    import onnx

    from tvm_gap8.testing import onnx_models as M
    from tvm_gap8.testing.quant import quantized

    model = tmp_path / "block.onnx"  # its L2 data (the L3 stage: one weight tile) exceeds 256 B
    onnx.save(quantized(M.dw_pw_block(cin=16, cout=32, h=32, w=32)), str(model))
    hw = tmp_path / "small_l2.json"
    hw.write_text(json.dumps({"l2_bytes": 256, "l2_reserved_bytes": 0}))
    rc = main(["compile", str(model), "--emit-c", "--run", "rv32", "--hw", str(hw),
               "-o", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1  # refused by the placement, before any C is built: one error
    assert len(err) == 1 and err[0].startswith("error: --emit-c: the L2 data (")
    assert "exceeds the L2 budget of 256 B" in err[0]
    assert not (tmp_path / "o").exists()  # nothing written


def test_code_counts_in_l2_at_link(rv32, tmp_path, capsys):
    """The network's L2 data fits the L2 region, but not beside its linked code: the rv32 build
    reads the ELF's section sizes and fails naming L2, the code and by how much."""
    import onnx

    from tvm_gap8.testing import onnx_models as M
    from tvm_gap8.testing.quant import quantized

    model = tmp_path / "block.onnx"
    onnx.save(quantized(M.dw_pw_block(cin=16, cout=32, h=32, w=32)), str(model))
    fits = _compile(str(model), tmp_path / "fits", "--run", "rv32")[1]
    linked = fits["run"]["l2_linked"]
    assert linked["code_bytes"] > 1000 and linked["network_data_bytes"] > 0
    assert linked["l2_bytes"] == fits["target"]["l2_bytes"]
    io = fits["placement"]["io_bytes"]  # the caller's buffers: the runner's data, in L2
    # the data and the caller's buffers alone fit; code and stack do not
    tight = linked["network_data_bytes"] + io + 64
    hw = tmp_path / "tight_l2.json"
    hw.write_text(json.dumps({"l2_bytes": tight, "l2_reserved_bytes": 0}))
    rc = main(["compile", str(model), "--emit-c", "--run", "rv32", "--hw", str(hw),
               "-o", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    over = linked["code_bytes"] + linked["runtime_data_bytes"] - io - 64
    assert err == [f"error: the network does not fit GAP8's L2: "
                   f"{linked['network_data_bytes']:,} B of network data (.gap8_l2) + "
                   f"{linked['code_bytes']:,} B of code + {linked['runtime_data_bytes']:,} B "
                   f"of runtime data and stack = {linked['network_data_bytes'] + over + io + 64:,} B,"
                   f" over {tight:,} B by {over:,} bytes (rv32 link, section sizes)"]


def _assert_outputs_equal(report, n):
    """Every one of the ``n`` outputs equal to the LLVM build's (integers or floats)."""
    per = report["run"]["vs_llvm_outputs"]
    assert len(per) == n
    for c in per:
        assert c.get("integers_equal", c.get("equal")) is True and c["max_abs_diff"] == 0, per


@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float"])
def test_detector_head_three_outputs_rv32_and_host(int8, rv32, tmp_path):
    """A detector with three outputs (scores, boxes, coarse scores: a Relax Tuple): --check
    passes, and --emit-c --run rv32 and --run host both equal the LLVM build output by output
    (int8: each output with its own dequantize left to the caller; float: the Sigmoids call
    expf through <math.h>, linked with -lm)."""
    import onnx

    from tvm_gap8.testing import onnx_models as M
    from tvm_gap8.testing.quant import quantized

    model = M.detector_head()
    path = tmp_path / "det.onnx"
    onnx.save(quantized(model) if int8 else model, str(path))
    for platform in ("rv32", "host"):
        rc, rep = _compile(str(path), tmp_path / platform, "--run", platform, "--check")
        assert rc == 0, rep.get("run")
        assert rep["check"]["passed"]
        run = rep["run"]
        assert run["platform"] == platform and run["check"]["passed"]
        assert run["vs_llvm"] == ({"integers_equal": True, "max_abs_diff": 0} if int8 else
                                  {"equal": True, "max_abs_diff": 0.0})
        _assert_outputs_equal(rep, 3)
        assert rep["emit_c"]["inputs"] == 1 and rep["emit_c"]["outputs"] == 3
        project = tmp_path / platform / "gap8"
        header = (project / "network.h").read_text()
        t = "int8_t" if int8 else "float"
        assert f"int gap8_network_run(const {t} *in, {t} *out0, {t} *out1, {t} *out2);" \
            in header
        for i, shape in enumerate(([1, 6, 4, 4], [1, 8, 4, 4], [1, 6, 2, 2])):
            assert f"#define GAP8_OUT{i}_BYTES {np.prod(shape) * (1 if int8 else 4)}" in header
            assert (project / f"gap8_out{i}.bin").exists()
            assert (f"#define GAP8_OUT{i}_SCALE" in header) == int8  # its own dequantize
        kernels = (project / "kernels.c").read_text()
        assert ("#include <math.h>" in kernels) == (not int8)  # only leftover float code
        assert bool(rep["emit_c"]["libm_calls"]) == (not int8)
        if int8 and platform == "rv32":
            assert run["soft_float_symbols"] == []  # no float code left


def test_two_inputs_two_outputs_int8_rv32(rv32, tmp_path):
    """Two inputs, each quantized by the caller with its own scale and zero point, and two
    outputs, each dequantized with its own: the entry takes in0, in1, out0, out1."""
    import onnx

    from tvm_gap8.testing import onnx_models as M
    from tvm_gap8.testing.quant import quantized

    path = tmp_path / "two.onnx"
    onnx.save(quantized(M.two_input_block()), str(path))
    rc, rep = _compile(str(path), tmp_path / "o", "--run", "rv32")
    assert rc == 0
    _assert_ran_equal(rep, "rv32")
    _assert_outputs_equal(rep, 2)
    header = (tmp_path / "o" / "gap8" / "network.h").read_text()
    assert ("int gap8_network_run(const int8_t *in0, const int8_t *in1, int8_t *out0, "
            "int8_t *out1);") in header
    for name in ("IN0", "IN1", "OUT0", "OUT1"):
        assert f"#define GAP8_{name}_SCALE" in header and f"#define GAP8_{name}_ZP" in header
    scales = [float(line.split()[2].rstrip("f")) for line in header.splitlines()
              if line.startswith("#define GAP8_IN") and "_SCALE" in line]
    assert len(scales) == 2 and scales[0] != scales[1]


@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float"])
def test_channel_pad_add_block_on_host(int8, tmp_path):
    """A shortcut widened by a channel Pad (Relax nn.pad; in the int8 graph between a
    dequantize and a quantize of the same parameters: an integer pad by the zero point, no
    float code) added to a DW/PW branch: --check passes (the reference evaluates Pad) and the
    C equals the LLVM build."""
    import onnx

    from tvm_gap8.testing import onnx_models as M
    from tvm_gap8.testing.quant import quantized

    path = tmp_path / "pad.onnx"
    onnx.save(quantized(M.pad_add_block()) if int8 else M.pad_add_block(), str(path))
    rc, rep = _compile(str(path), tmp_path / "o", "--run", "host", "--check")
    assert rc == 0
    assert rep["check"]["passed"] and rep["run"]["check"]["passed"]
    pad = next(layer for layer in rep["layers"] if layer["name"] == "channel_padding_0")
    assert pad["kind"] == "pad" and pad["integer"] == int8
    if int8:
        _assert_ran_equal(rep, "host")
        assert rep["emit_c"]["libm_calls"] == {} and rep["emit_c"]["float_layers"] == []
        assert rep["float_layers"] == []
    else:
        assert rep["run"]["vs_llvm"] == {"equal": True, "max_abs_diff": 0.0}


@pytest.mark.slow
def test_int8_network_rv32_float32_requantization(int8_model, rv32, tmp_path):
    """``--requant float32`` (count-leading-zeros, two 64-bit roundings) in the emitted C: equal
    to the LLVM build and to the integer reference of that mode; more instructions per layer
    than the default fixed-point requantization, none fewer."""
    model = int8_model("mobilenet_v1_025_96")
    rc, flt = _compile(model, tmp_path / "f32", "--run", "rv32", "--instrument",
                       "--requant", "float32")
    assert rc == 0 and flt["requant"] == "float32"
    _assert_ran_equal(flt, "rv32")
    assert "__builtin_clzll" in (tmp_path / "f32" / "gap8" / "kernels.c").read_text()
    rc, fix = _compile(model, tmp_path / "fixed", "--run", "rv32", "--instrument")
    assert rc == 0 and fix["requant"] == "fixed"
    _assert_ran_equal(fix, "rv32")
    assert "__builtin_clzll" not in (tmp_path / "fixed" / "gap8" / "kernels.c").read_text()
    counts = {m["name"]: m["instructions"] for m in fix["measured"]["layers"]}
    for m in flt["measured"]["layers"]:
        if m["kind"] in ("conv", "dw", "pw", "dw_pw", "pw_dw", "dense"):
            assert m["instructions"] > counts[m["name"]], m["name"]
