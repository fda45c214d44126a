"""The structures of real third-party networks, built with onnx.helper, through every path:
an NHWC-input Keras-style MobileNet (a Transpose after the input, Reshape + Softmax at the end),
an EfficientNet-style MBConv (SiLU between the expand PW and the DW) and an FPN decoder (Resize
x2 + Add joins, many live tensors). Float and int8: ``--check`` passes, and ``--emit-c --run
rv32`` and ``--run host`` give the LLVM build's output exactly (the 3-output detector head:
test_networks.py). CI runs each at a small size; the 96x96 FPN decoder is marked ``slow``."""

import json

import numpy as np
import onnx
import pytest

from tvm_gap8.cli import main
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

STRUCTURES = {
    "keras_nhwc": lambda: M.keras_mobilenet_nhwc(resolution=32),
    "efficientnet_block": lambda: M.efficientnet_block(),
    "fpn_decoder_32": lambda: M.fpn_decoder(resolution=32),
    "fpn_decoder_96": lambda: M.fpn_decoder(resolution=96),
}

#: the float FPN decoder at 96x96 holds ~620 kB of float activations: more than GAP8's L2
#: (refused, test below); its C runs with a larger L2 by --hw (the rv32 memory map then moves
#: L1 and L3 up)
BIG_L2 = {"l2_bytes": 2_000_000}


def _model_file(name, int8, tmp_path):
    model = STRUCTURES[name]()
    path = tmp_path / f"{name}_{'int8' if int8 else 'float'}.onnx"
    onnx.save(quantized(model, samples=2) if int8 else model, str(path))
    return str(path)


def _compile_and_run(path, out, platform, *extra):
    rc = main(["compile", path, "--emit-c", "--check", "--run", platform, "-o", str(out), "-q",
               *extra])
    assert rc == 0
    return json.loads((out / "report.json").read_text())


def _assert_equal_to_llvm(report, platform, int8):
    assert report["check"]["passed"], report["check"]
    run = report["run"]
    assert run["platform"] == platform and run["check"]["passed"], run["check"]
    assert run["vs_llvm"] == ({"integers_equal": True, "max_abs_diff": 0} if int8 else
                              {"equal": True, "max_abs_diff": 0.0})


def _run_everywhere(name, int8, rv32, tmp_path, *extra, platforms=("rv32", "host")):
    path = _model_file(name, int8, tmp_path)
    reports = {}
    for platform in platforms:
        reports[platform] = _compile_and_run(path, tmp_path / platform, platform, *extra)
        _assert_equal_to_llvm(reports[platform], platform, int8)
    if len(platforms) < 2:
        return reports
    out = "gap8_out0.bin"
    dtype = np.int8 if int8 else np.float32
    assert np.array_equal(np.fromfile(tmp_path / "rv32" / "gap8" / out, dtype=dtype),
                          np.fromfile(tmp_path / "host" / "gap8" / out, dtype=dtype))
    return reports


#: CI runs one end-to-end of each structure; the rest (each a minute of wall time on a busy
#: 2-core machine) are ``slow``
CASES = [("keras_nhwc", True), pytest.param("keras_nhwc", False, marks=pytest.mark.slow),
         ("efficientnet_block", True), ("efficientnet_block", False),
         ("fpn_decoder_32", True), pytest.param("fpn_decoder_32", False, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,int8", CASES)
def test_structure_checks_and_runs_equal_to_llvm(name, int8, rv32, tmp_path):
    reports = _run_everywhere(name, int8, rv32, tmp_path)
    emit = reports["rv32"]["emit_c"]
    if not int8:
        assert emit["float_layers"]  # every layer float: GAP8 runs it in soft-float, warned
        return
    _assert_float_code_listed(reports["rv32"])
    # int8 float code left: the Keras net's Softmax; the FPN's nearest Resizes move integers
    assert [f["kind"] for f in reports["rv32"]["float_layers"]] == \
        (["softmax"] if name == "keras_nhwc" else [])


def _assert_float_code_listed(report):
    """int8: every emitted layer computing in float is a layer ``float_layers`` names (with its
    reason) or the dequantize/quantize around one; none listed: no soft-float routine linked."""
    listed = report["float_layers"]
    assert all(f["reason"] for f in listed), listed
    emitted = [n for n in report["emit_c"]["float_layers"]
               if not n.rstrip("0123456789").endswith("quantize")]
    assert len(emitted) == len(listed), (emitted, listed)
    if not listed:
        assert report["emit_c"]["float_layers"] == [] and report["emit_c"]["libm_calls"] == {}
        assert report["run"]["soft_float_symbols"] == []


INTEGER_MOVES = {  # builder, the layer moving int8 values, its kind
    "nhwc_transpose": (lambda: M.keras_mobilenet_nhwc(resolution=32, softmax=False),
                       "input_nchw_0", "transpose"),
    "channel_pad": (lambda: M.pad_add_block(), "channel_padding_0", "pad"),
}


@pytest.mark.parametrize("name", sorted(INTEGER_MOVES))
def test_int8_data_movement_is_integer_and_links_no_soft_float(name, rv32, tmp_path):
    """Between a dequantize and a quantize of equal parameters, a layout Transpose and a
    channel Pad (by the zero point) run on the int8 values (the FPN's nearest Resizes: above): no float layer left,
    the check bit-exact, and the rv32 link has no soft-float routine."""
    build, layer_name, kind = INTEGER_MOVES[name]
    path = tmp_path / f"{name}.onnx"
    onnx.save(quantized(build(), samples=2), str(path))
    report = _compile_and_run(str(path), tmp_path / "o", "rv32")
    _assert_equal_to_llvm(report, "rv32", True)
    layer = next(la for la in report["layers"] if la["name"] == layer_name)
    assert layer["kind"] == kind and layer["integer"], layer
    assert report["float_layers"] == []
    _assert_float_code_listed(report)


@pytest.mark.slow
@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float"])
def test_fpn_decoder_96_checks_and_runs_equal_to_llvm(int8, rv32, tmp_path):
    if int8:
        _run_everywhere("fpn_decoder_96", int8, rv32, tmp_path)
        return
    hw = tmp_path / "big_l2.json"
    hw.write_text(json.dumps(BIG_L2))
    _run_everywhere("fpn_decoder_96", int8, rv32, tmp_path, "--hw", str(hw))


@pytest.mark.slow
def test_float_fpn_decoder_96_does_not_fit_gap8_l2(rv32, tmp_path, capsys):
    """Without the larger L2: one error naming the L2 data (activations a kernel reads
    directly stay in L2), the budget and by how much, nothing written."""
    path = _model_file("fpn_decoder_96", False, tmp_path)
    rc = main(["compile", path, "--emit-c", "--run", "rv32", "-o", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: --emit-c: the L2 data (") and "exceeds the L2 budget" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "o").exists()
