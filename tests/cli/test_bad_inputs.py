"""Every bad input through the CLI: non-zero exit (2 usage, 1 compile), one ``error:`` line
naming what and where, no traceback, and no output directory left behind."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.cli.test_cli import run_cli
from tvm_gap8.testing import onnx_models as M


def _save(model, path, check=True):
    onnx.save(model, path)
    return path


def _dynamic(tmp):
    m = M.dw_pw_block(cin=4, cout=8, h=8, w=8)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    return _save(m, tmp / "dynamic.onnx")


def _zero_dim(tmp):
    m = M.dw_pw_block(cin=4, cout=8, h=8, w=8)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 0
    return _save(m, tmp / "zero.onnx")


def _bad_checker(tmp):
    m = M.dw_pw_block(cin=4, cout=8, h=8, w=8)
    m.graph.node[0].input[1] = "no_such_tensor"
    return _save(m, tmp / "bad_checker.onnx")


def _old_opset(tmp):
    m = M.dw_pw_block(cin=4, cout=8, h=8, w=8)
    m.opset_import[0].version = 7
    return _save(m, tmp / "opset7.onnx")


def _unknown_op(tmp):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Celu", ["x"], ["y"], name="my_celu")], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return _save(m, tmp / "celu.onnx")


def _qlinearconv(tmp):
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "xs"),
             numpy_helper.from_array(np.array(0, np.int8), "xz"),
             numpy_helper.from_array(np.ones((2, 1, 1, 1), np.int8), "w"),
             numpy_helper.from_array(np.array(0.1, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.2, np.float32), "ys"),
             numpy_helper.from_array(np.array(0, np.int8), "yz")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
                            name="qconv")
    g = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", TensorProto.INT8,
                                                                      [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 2, 4, 4])],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return _save(m, tmp / "qlinear.onnx")


def _good(tmp):
    return _save(M.dw_pw_block(cin=4, cout=8, h=8, w=8), tmp / "good.onnx")


def _text(tmp):
    p = tmp / "notes.onnx"
    p.write_text("this is a text file, not a model\n")
    return p


def _truncated(tmp):
    p = tmp / "truncated.onnx"
    p.write_bytes(M.dw_pw_block(cin=4, cout=8, h=8, w=8).SerializeToString()[:150])
    return p


CASES = [
    ("missing file", lambda t: t / "missing.onnx", [], 1, "no such file"),
    ("not onnx", _text, [], 1, "not a readable ONNX model"),
    ("truncated protobuf", _truncated, [], 1, "truncated.onnx"),
    ("fails the checker", _bad_checker, [], 1, "fails the ONNX checker"),
    ("unsupported opset", _old_opset, [], 1, "unsupported ONNX opset 7"),
    ("unsupported op", _unknown_op, [], 1, "node 'my_celu': op type Celu is not supported"),
    ("dynamic dims not pinned", _dynamic, [], 2, "input 'input' dimension 0 (batch)"),
    ("unknown input", _good, ["--input-shape", "nope:1,4,8,8"], 2, "unknown input 'nope'"),
    ("wrong rank", _good, ["--input-shape", "input:1,4,8"], 2, "rank 3 given"),
    ("zero dim_value (dynamic)", _zero_dim, [], 2, "input 'input' dimension 2 (0)"),
    ("zero-size --input-shape", _good, ["--input-shape", "input:1,4,0,8"], 2, "zero-size"),
    # 0.1 kB fits since columns are tiled too: 1 row x 1 column x 1 channel of a 4-channel DW
    ("L1 below the stacks", _good, ["--l1-kb", "0.02"], 2, "leaves nothing for tiles"),
    ("L1 above L2", _good, ["--l1-kb", "600"], 2, "more than the 512000 B of L2"),
    ("QOperator quantization", _qlinearconv, [], 1, "node 'qconv': QLinearConv (QOperator"),
    ("bad --l1-kb", _good, ["--l1-kb", "-3"], 2, "--l1-kb -3: must be > 0"),
]


@pytest.mark.parametrize("name,make,args,code,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, name, make, args, code, message):
    model = make(tmp_path)
    out = tmp_path / "out"
    proc = run_cli("compile", model, *args, "-o", out)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("[tvm-gap8]")]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tvm-gap8-")]


def test_unwritable_output_directory(tmp_path):
    model = _good(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = run_cli("compile", model, "-o", blocker / "out")
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1
    assert "cannot" in proc.stderr and "Traceback" not in proc.stderr


def test_verbose_shows_the_traceback(tmp_path):
    proc = run_cli("compile", tmp_path / "missing.onnx", "--verbose")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "error:" in proc.stderr
