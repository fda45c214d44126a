"""``tvm-gap8`` end to end, as a user runs it."""

import json
import os
import re
import subprocess
import sys

import onnx
import pytest

import tvm

from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.instruments import KeepLowered


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

    from tvm_gap8 import __version__

    assert report["versions"] == {"tvm_gap8": __version__, "tvm": version("apache-tvm"), "onnx": version("onnx"),
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


@pytest.mark.slow
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
    _assert_one_line_error(run_cli("compile", example, "--l1-kb", "0.05", "-o", out), 2,
                           "50 B of L1 leaves nothing for tiles")
    _assert_one_line_error(run_cli("compile", example, "--l1-kb", "2000", "-o", out), 2,
                           "2000000 B of L1 is more than the 512000 B of L2")
    assert not out.exists()


@pytest.mark.slow
def test_too_small_l1_names_the_layer_and_the_smallest_l1_that_works(example, tmp_path):
    """At 9 kB only the classifier's smallest tile (2,056 B) misses the 744 B budget (every
    pair fused in default layouts: no planner, so the four compiles stay quick)."""
    quick = ("--fusion", "all", "--layout", "chw", "-o", tmp_path / "o")
    _assert_one_line_error(run_cli("compile", example, "--l1-kb", "9", *quick), 1,
                           "layer fc_0 (dense) cannot fit L1: its smallest tile (1 row(s) x 1 "
                           "channel(s)) needs 2056 B, the L1 budget is 744 B (9000 B of L1 less "
                           "8192 B of cluster stacks, 64 B of alignment); the smallest L1 that "
                           "compiles this model is 10.312 kB (--l1-kb 10.312)")
    assert run_cli("compile", example, "--l1-kb", "10.312", *quick, "-q").returncode == 0
    _assert_one_line_error(run_cli("compile", example, "--l1-kb", "10.311", *quick, "-q"),
                           1, "needs 2056 B, the L1 budget is 2055 B")


def test_unwritable_output(tmp_path, example):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_one_line_error(run_cli("compile", example, "-o", blocker / "sub"), 2, "cannot")


def test_quantize_refuses_a_quantized_model(example, tmp_path):
    from tvm_gap8.testing.quant import quantized

    int8 = tmp_path / "int8.onnx"
    onnx.save(quantized(M.dw_pw_block(cin=4, cout=8, h=8, w=8), samples=2), int8)
    _assert_one_line_error(run_cli("quantize", int8, "-o", tmp_path / "again.onnx"), 2,
                           "the model is quantized already: ")
    assert not (tmp_path / "again.onnx").exists()


def test_tvmc_input_shape_and_progress_with_elapsed_times(tmp_path):
    """tvmc's NAME:[D0,...] syntax; every step announced on stderr, those over a second timed."""
    import re

    model = M.mobilenet_v1(alpha=0.25, resolution=96)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(model, tmp_path / "dyn.onnx")
    proc = run_cli("compile", tmp_path / "dyn.onnx", "--input-shape", "input:[1,3,96,96]",
                   "--emit-c", "-o", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    steps = [ln for ln in proc.stderr.splitlines() if ln.startswith("[tvm-gap8] ")]
    for what in ("importing the ONNX model", "fusing (--fusion auto), planning", "emitting the C "
                 "project", "writing report.json"):
        assert any(what in ln for ln in steps), (what, proc.stderr)
    timed = [ln for ln in steps if re.search(r": \d+\.\d s$", ln)]
    assert any("fusing (--fusion auto)" in ln for ln in timed), proc.stderr  # ~3-10 s here
    assert all(float(ln.rsplit(" ", 2)[-2]) >= 1.0 for ln in timed)
    _assert_emitted_c_compiles_with_c99(tmp_path / "o", tmp_path, int8=False)


@pytest.mark.slow
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


@pytest.mark.slow
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


def _assert_emitted_c_compiles_with_c99(out, tmp_path, int8: bool):
    import shutil

    project = out / "gap8"  # the one C output: the project (no packed-API file)
    assert not (out / "kernels.c").exists()
    source = (project / "kernels.c").read_text()
    assert re.search(r"void gap8_dw_pw_b\d+_dw_0\(", source), "no fused DW->PW kernel"
    # the default fixed-point requantization: no count-leading-zeros (--requant float32 has one)
    assert "__builtin_clzll" not in source
    assert ("int32_t biased = " in source) == int8  # its int32 acc + bias
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is part of the test environment"
    build = subprocess.run([cc, "-std=c99", "-O2", "-c", str(project / "kernels.c"),
                            "-o", str(tmp_path / "k.o"), f"-I{project}"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[:2000]


def test_int8_emit_c_compiles_with_a_c99_compiler(example, tmp_path):
    """(the float project: compiled by the tvmc-shape test, which emits it)"""
    from tvm_gap8.testing.quant import quantized

    model = tmp_path / "int8.onnx"
    onnx.save(quantized(onnx.load(example), samples=2), model)
    proc = run_cli("compile", model, "--emit-c", "--fusion", "all", "-o", tmp_path / "o", "-q")
    assert proc.returncode == 0, proc.stderr
    _assert_emitted_c_compiles_with_c99(tmp_path / "o", tmp_path, int8=True)


def test_every_entry_point_gives_the_cli_totals(example, compiled):
    """The example network through the CLI, compile_model, gap8_passes, the registered gap8
    pipeline and tvm.compile(..., relax_pipeline="gap8"): one set of defaults, one result."""
    import tvm

    from tvm_gap8.compiler import compile_model
    from tvm_gap8.frontend import import_onnx
    from tvm_gap8.report.contents import layers_of, totals_of

    proc, out = compiled
    assert proc.returncode == 0, proc.stderr
    cli = json.loads((out / "report.json").read_text())
    assert (cli["fusion_policy"], cli["layout_policy"], cli["dma"]) == ("auto", "auto", "double")
    assert compile_model(str(example)).report["totals"] == cli["totals"]
    # tvm.compile runs relax.get_pipeline("gap8"), gap8_passes() in a Sequential (both default
    # to options.DEFAULTS): one compile covers the three
    mod = import_onnx(str(example)).mod
    keep = KeepLowered()
    with tvm.transform.PassContext(instruments=[keep]):  # no target: the pipeline's own
        tvm.compile(mod, target="llvm", relax_pipeline="gap8")
    assert totals_of(layers_of(keep.lowered)) == cli["totals"]


def test_cli_defaults_are_the_library_defaults():
    from tvm_gap8.cli import build_parser
    from tvm_gap8.options import DEFAULTS

    args = build_parser().parse_args(["compile", "m.onnx"])
    assert (args.fusion, args.layout, args.dma, args.requant, args.l1_kb, args.cycle_model) == \
        (DEFAULTS.fusion, DEFAULTS.layout, DEFAULTS.dma, DEFAULTS.requant, DEFAULTS.l1_kb,
         DEFAULTS.cycle_model)


def test_report_json_follows_its_schema(compiled):
    from tvm_gap8.testing.schema import report_schema, violations

    _, out = compiled
    report = json.loads((out / "report.json").read_text())
    schema = report_schema()
    assert violations(report, schema) == []
    assert report["schema_version"] == schema["properties"]["schema_version"]["const"]
    renamed = dict(report, totals={("cycles" if k == "cycles_modelled" else k): v
                                   for k, v in report["totals"].items()})
    assert violations(renamed, schema) == ["report.totals: missing 'cycles_modelled'",
                                           "report.totals: unexpected 'cycles'"]
    assert violations(dict(report, layers=[{"name": "x"}]), schema) == [
        f"report.layers[0]: missing {k!r}" for k in ("kind", "macs", "onnx_nodes")]


def test_table_fits_100_columns_adds_up_and_explains_itself(compiled):
    from tvm_gap8.report.contents import LEGEND, format_table, table_rows

    _, out = compiled
    report = json.loads((out / "report.json").read_text())
    # as a GVSOC run would record it: the measured column and its total appear
    report["measured"] = {"source": "gvsoc", "layers": [
        {"name": layer["name"], "cycles": 1000 + i} for i, layer in enumerate(report["layers"])
        if layer.get("tiled")]}
    text = format_table(report)
    assert all(len(line) <= 100 for line in text.splitlines()), max(map(len, text.splitlines()))
    assert LEGEND in text
    for notation in ("dw_pw", "CHW>HWC", "IN_OUT", "row tiles x channel tiles", "dwN"):
        assert notation in LEGEND
    head, *rows, total = table_rows(report)
    col = {name: i for i, name in enumerate(head)}

    def column_sum(name):
        return sum(int(r[col[name]].replace(",", "")) for r in rows if r[col[name]] != "-")

    assert column_sum("act B") == report["totals"]["act_bytes"] == \
        int(total[col["act B"]].replace(",", ""))
    assert column_sum("wgt B") == report["totals"]["weight_bytes"]
    assert column_sum("cycles") == report["totals"]["cycles_modelled"]
    assert column_sum("GVSOC") == int(total[col["GVSOC"]].replace(",", "")) > 0


def test_repeated_reasons_are_grouped():
    from tvm_gap8.report.contents import _grouped

    lines = _grouped("not fused", [("a", "why"), ("b", "why"), ("c", "other")])
    assert lines == ["  not fused (2): a, b: why", "  not fused: c: other"]


def test_unwrap_joins_what_the_table_wrapped():
    """``unwrap`` is ``_wrap``'s inverse on footer lines, and leaves table rows alone."""
    from tvm_gap8.report.contents import _wrap, unwrap

    long = "  check vs the integer reference: " + " ".join(f"word{i}" for i in range(40))
    wrapped = _wrap(long)
    assert len(wrapped) > 1 and all(len(w) <= 100 for w in wrapped)
    rows = [" 1 a  conv", " 2 b  pw"]
    assert unwrap("\n".join(rows + wrapped)).splitlines() == rows + [long]
