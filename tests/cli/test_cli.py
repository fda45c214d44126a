"""``tvm-gap8`` end to end, as a user runs it."""

import json
import os
import subprocess
import sys

import onnx
import pytest

from tvm_gap8.testing import onnx_models as M


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tvm_gap8.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "mobilenet_v1_025_96.onnx"
    onnx.save(M.mobilenet_v1(alpha=0.25, resolution=96), path)
    return path


@pytest.fixture(scope="module")
def compiled(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "mbv1"
    proc = run_cli("compile", example, "--check", "-o", out)
    return proc, out


def test_compile_example_writes_report_and_lowered_ir(compiled):
    proc, out = compiled
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["check"]["passed"] and "basic" in report["check"]["reference"]
    assert {"max_abs_err", "max_rel_err"} <= set(report["check"])
    from importlib.metadata import version

    assert report["versions"] == {"tvm": version("apache-tvm"), "onnx": version("onnx"),
                                  "onnxruntime": version("onnxruntime"),
                                  "numpy": version("numpy")}
    _assert_13_pairs_planned(report)
    for layer in report["layers"]:
        assert {"name", "kind", "onnx_nodes", "macs"} <= set(layer)
    lowered = (out / "lowered.py").read_text()
    assert "global.l1" in lowered and "gap8.copy" in lowered
    # the printed table: a row per layer and the check verdict
    assert "b1_dw_0" in proc.stdout and "PASSED" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_two_compiles_are_byte_identical(example, compiled, tmp_path):
    _, first = compiled
    proc = run_cli("compile", example, "--check", "-o", tmp_path / "again", "-q")
    assert proc.returncode == 0, proc.stderr
    for name in ("report.json", "lowered.py", "layers.png"):
        assert (first / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_no_fuse(example, tmp_path):
    proc = run_cli("compile", example, "--no-fuse", "--check", "-o", tmp_path / "o", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["fusion"]["fused"] == [] and report["check"]["passed"]


def test_help_has_examples():
    proc = run_cli("compile", "--help")
    assert proc.returncode == 0
    assert "--input-shape" in proc.stdout and "examples:" in proc.stdout


def _assert_one_line_error(proc, code, pattern):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("[tvm-gap8]")]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_inputs(tmp_path, example):
    out = tmp_path / "out"
    _assert_one_line_error(run_cli("compile", tmp_path / "nope.onnx", "-o", out), 1,
                           "no such file")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    _assert_one_line_error(run_cli("compile", garbage, "-o", out), 1, "garbage.onnx")
    _assert_one_line_error(run_cli("compile", example, "--input-shape", "bogus:1,3", "-o", out),
                           2, "unknown input 'bogus'")
    _assert_one_line_error(run_cli("compile", example, "--input-shape", "input:1,3,96", "-o",
                                   out), 2, "rank 3 given")
    _assert_one_line_error(run_cli("compile", example, "--bogus-flag"), 2, "unrecognized")
    _assert_one_line_error(run_cli("compile", example, "--l1-kb", "0.05", "-o", out), 1,
                           "layer stem_0 (conv) cannot fit L1")
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tvm-gap8-")]


def test_unwritable_output(tmp_path, example):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_one_line_error(run_cli("compile", example, "-o", blocker / "sub"), 2, "cannot")


def test_quantize_then_compile(example, tmp_path):
    int8 = tmp_path / "int8.onnx"
    proc = run_cli("quantize", example, "-o", int8, "--calibration-samples", "4")
    assert proc.returncode == 0, proc.stderr
    assert "random data" in proc.stderr  # the accuracy warning
    proc = run_cli("compile", int8, "--check", "-o", tmp_path / "o", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["check"]["passed"] and report["check"]["exact"]["equal"]
    assert report["check"]["outputs"][0]["max_lsb_err"] == 0 and report["check"]["spec"]["passed"]
    _assert_13_pairs_planned(report)


def _assert_13_pairs_planned(report):
    """MobileNetV1's 13 DW->PW pairs under the default --fusion auto: each fused, or split by
    the planner (its decision recorded with the alternatives it costed)."""
    plan = report["layout_plan"]["layers"]
    pairs = [name for name in plan if "+" in name]
    assert len(pairs) == 13
    assert len(report["fusion"]["fused"]) == sum(not plan[p]["split"] for p in pairs)
    kernels = {layer["name"] for layer in report["layers"]}
    for p in pairs:  # a fused pair is one kernel, a split one two
        assert (p in kernels) != plan[p]["split"]
        assert all(name in kernels for name in p.split("+")) == plan[p]["split"]
    for layer in report["fusion"]["fused"]:
        assert layer["kind"] == "dw_pw" and set(layer["layouts"]) >= {"input", "output"}


def test_quantize_with_calibration_directory(example, tmp_path):
    import numpy as np

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        np.save(calib / f"{i}.npy", np.random.default_rng(i).standard_normal((1, 3, 96, 96))
                .astype("float32"))
    proc = run_cli("quantize", example, "-o", tmp_path / "q.onnx", "--calibration", calib)
    assert proc.returncode == 0, proc.stderr
    assert "3 samples from" in proc.stdout and "random data" not in proc.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "0.npy", np.zeros((1, 3, 8, 8), "float32"))
    _assert_one_line_error(run_cli("quantize", example, "-o", tmp_path / "q2.onnx",
                                   "--calibration", bad), 2, "has shape (1, 3, 8, 8)")


def test_hardware_description_overrides(example, tmp_path):
    hw = tmp_path / "gap9ish.json"
    hw.write_text(json.dumps({"name": "bigger-l1", "l1_bytes": 128000}))
    proc = run_cli("compile", example, "--hw", hw, "-o", tmp_path / "o", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["target"]["name"] == "bigger-l1" and report["target"]["l1_bytes"] == 128000
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"l1_size": 1}))
    _assert_one_line_error(run_cli("compile", example, "--hw", bad, "-o", tmp_path / "p"), 2,
                           "unknown field(s) l1_size")


def test_target_tag_is_registered():
    from tvm_gap8.target import TARGET_TAG, is_gap8, tvm_target

    target = tvm_target(host=False)
    assert str(target.tag) == TARGET_TAG and is_gap8(target) and target.kind.name == "c"


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_emit_c_compiles_with_a_c99_compiler(example, tmp_path, int8):
    import shutil

    from tvm_gap8.testing.quant import quantized

    model = example
    if int8:
        model = tmp_path / "int8.onnx"
        onnx.save(quantized(onnx.load(example), samples=2), model)
    proc = run_cli("compile", model, "--emit-c", "--fusion", "all", "-o", tmp_path / "o", "-q")
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "o" / "gap8"  # the one C output: the project (no packed-API file)
    assert not (tmp_path / "o" / "kernels.c").exists()
    source = (project / "kernels.c").read_text()
    assert "void gap8_dw_pw_b0_dw_0(" in source
    # the default fixed-point requantization: no count-leading-zeros (--requant float32 has one)
    assert "__builtin_clzll" not in source
    assert ("int32_t biased = " in source) == int8  # its int32 acc + bias
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is part of the test environment"
    build = subprocess.run([cc, "-std=c99", "-O2", "-c", str(project / "kernels.c"),
                            "-o", str(tmp_path / "k.o"), f"-I{project}"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[:2000]
