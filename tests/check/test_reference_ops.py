"""The integer reference on the detector's ops (Resize, Concat, ConvTranspose): each op against
its ONNX definition (onnxruntime / onnx's reference evaluator), the int8 detector through
``--check``, and a node the reference cannot evaluate reported as "not checked"."""

import itertools
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tvm_gap8.cli import main
from tvm_gap8.check import check_int8
from tvm_gap8.compiler import compile_model
from tvm_gap8.frontend import import_onnx
from tvm_gap8.reference import integer_reference
from tvm_gap8.reference.errors import UnsupportedOpError
from tvm_gap8.reference.graph import Graph
from tvm_gap8.reference.ops import eval_node
from tvm_gap8.report.contents import check_lines, unwrap
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def _one_node(node, inits, opset):
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _ours_and_ort(node, inits, x, opset=19, dtype=np.float64):
    from tvm_gap8.check.session import reference_session

    model = _one_node(node, inits, opset)
    ours = eval_node(Graph(model), node, [x] + [inits[t] for t in node.input[1:] if t], dtype)
    return ours, reference_session(model).run(None, {"x": x})[0]


X = np.random.default_rng(0).standard_normal((1, 2, 5, 6)).astype(np.float32)


@pytest.mark.parametrize("ctm,nearest_mode", list(itertools.product(
    ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"],
    ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])))
def test_nearest_resize_is_the_onnx_copy(ctm, nearest_mode):
    """Nearest: an exact copy of the element ONNX selects, by scales (x2, x3, x0.5) or sizes."""
    for inputs, inits in ((["x", "", "s"], {"s": np.array([1, 1, 2, 0.5], np.float32)}),
                          (["x", "", "s"], {"s": np.array([1, 1, 3, 2], np.float32)}),
                          (["x", "", "", "z"], {"z": np.array([1, 2, 10, 3], np.int64)})):
        node = helper.make_node("Resize", inputs, ["y"], name="r", mode="nearest",
                                coordinate_transformation_mode=ctm, nearest_mode=nearest_mode)
        ours, ort = _ours_and_ort(node, inits, X, dtype=np.float32)
        assert ours.dtype == np.float32 and np.array_equal(ours, ort), (inputs, inits)


@pytest.mark.parametrize("mode,ctm,extra", [
    ("linear", "half_pixel", {}), ("linear", "align_corners", {}),
    ("linear", "pytorch_half_pixel", {}), ("linear", "asymmetric", {}),
    ("cubic", "half_pixel", {}), ("cubic", "align_corners", {"cubic_coeff_a": -0.5}),
    ("cubic", "half_pixel", {"exclude_outside": 1}),
    ("linear", "half_pixel", {"antialias": 1}), ("cubic", "half_pixel", {"antialias": 1})])
def test_interpolating_resize_is_the_onnx_definition(mode, ctm, extra):
    for scales in ([1, 1, 2, 2], [1, 1, 0.5, 1.5]):
        node = helper.make_node("Resize", ["x", "", "s"], ["y"], name="r", mode=mode,
                                coordinate_transformation_mode=ctm, **extra)
        ours, ort = _ours_and_ort(node, {"s": np.array(scales, np.float32)}, X)
        assert ours.shape == ort.shape and np.abs(ours - ort).max() < 1e-5, scales


def test_legacy_resize_and_upsample():
    """Resize-10 and Upsample-9: asymmetric coordinates, floor for nearest (onnxruntime)."""
    for op, opset, mode in (("Resize", 10, "nearest"), ("Upsample", 9, "nearest"),
                            ("Resize", 10, "linear")):
        node = helper.make_node(op, ["x", "s"], ["y"], name="r", mode=mode)
        ours, ort = _ours_and_ort(node, {"s": np.array([1, 1, 2, 3], np.float32)}, X, opset)
        assert ours.shape == ort.shape and np.abs(ours - ort).max() < 1e-6


def test_float32_linear_resize_is_tvms_arithmetic():
    """float32 (our compiled code): TVM's lerp, within float32 rounding of the definition;
    exactly representable cases (x2 of small integers) agree exactly."""
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], name="r", mode="linear",
                            coordinate_transformation_mode="half_pixel")
    inits = {"s": np.array([1, 1, 2, 2], np.float32)}
    graph = Graph(_one_node(node, inits, 19))
    ints = np.arange(60, dtype=np.float32).reshape(1, 2, 5, 6)
    f32 = eval_node(graph, node, [ints, inits["s"]], np.float32)
    f64 = eval_node(graph, node, [ints.astype(np.float64), inits["s"]], np.float64)
    assert f32.dtype == np.float32 and np.array_equal(f32, f64)
    f32 = eval_node(graph, node, [X, inits["s"]], np.float32)
    f64 = eval_node(graph, node, [X.astype(np.float64), inits["s"]], np.float64)
    assert np.abs(f32 - f64).max() < 1e-6


@pytest.mark.parametrize("attrs", [
    {"strides": [2, 2]}, {"strides": [2, 1], "pads": [1, 0, 0, 1], "dilations": [1, 2]},
    {"strides": [3, 2], "output_padding": [1, 1], "group": 2},
    {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, {"strides": [2, 2], "output_shape": [10, 11]},
    {"strides": [2, 2], "auto_pad": "VALID"}])
def test_conv_transpose_is_the_onnx_definition(attrs):
    rng = np.random.default_rng(1)
    groups = attrs.get("group", 1)
    inits = {"w": rng.standard_normal((2, 3, 3, 2)).astype(np.float32),
             "b": rng.standard_normal(3 * groups).astype(np.float32)}
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="ct", **attrs)
    ours, ort = _ours_and_ort(node, inits, X, opset=17)
    assert ours.shape == ort.shape and np.abs(ours - ort).max() < 1e-5


def test_conv_transpose_same_upper_output_shape_follows_the_spec():
    """SAME_UPPER with output_shape: the odd padding element at the end (the spec; onnxruntime
    puts it at the beginning), as onnx's reference evaluator does."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(2)
    inits = {"w": rng.standard_normal((2, 3, 3, 3)).astype(np.float32)}
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="ct", strides=[2, 2],
                            auto_pad="SAME_UPPER", output_shape=[10, 11])
    model = _one_node(node, inits, 17)
    ours = eval_node(Graph(model), node, [X.astype(np.float64), inits["w"]], np.float64)
    want = ReferenceEvaluator(model).run(None, {"x": X})[0]
    assert ours.shape == want.shape == (1, 3, 10, 11) and np.abs(ours - want).max() < 1e-5


def _upsample_block(mode):
    """conv -> x2 Resize (``mode``) -> Concat with a x2-upsampled branch -> conv."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 3, 8, 3, 1, act="relu", base="c1")
    up = M._resize_x2(b, y, mode)
    side = M._conv_transpose_x2(b, b.conv_bn_act(y, 8, 8, 1, act="relu", base="c2"), 8, 8)
    y = b.node("Concat", [up, b.act(side, "relu")], "cat", axis=1)
    y = b.conv_bn_act(y, 16, 8, 1, act=None, base="c3")
    return b.model("input", [1, 3, 8, 8], y, name=f"up_{mode}")


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_and_concat_are_exact_conv_transpose_flagged(mode):
    model = import_onnx(quantized(_upsample_block(mode), samples=2)).onnx_model
    inputs = {"input": np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    run = integer_reference(model, inputs)
    assert run.reasons == ["node 'deconv_0' (ConvTranspose) runs in float32 in our compiled "
                           "code: its result depends on the summation order"]
    assert {r.op for r in run.layers if r.kind == "float"} >= {"Resize", "Concat",
                                                              "ConvTranspose"}


def test_int8_resizes_and_concats_bit_exact():
    """Nearest and linear (half_pixel) x2 Resize and Concat, compiled and run: bit for bit
    equal to the reference, which flags nothing."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 3, 8, 3, 1, act="relu", base="c1")
    y = b.node("Concat", [M._resize_x2(b, y, "linear"), M._resize_x2(b, y, "nearest")], "cat",
               axis=1)
    y = b.conv_bn_act(y, 16, 8, 1, act=None, base="c2")
    check = compile_model(quantized(b.model("input", [1, 3, 8, 8], y, name="ups"), samples=2),
                          check=True, fusion="all", layout="chw").report["check"]
    assert check["passed"] and check["exact"] == {"applicable": True, "equal": True}, check


def test_int8_detector_passes_check():
    """The bug report's model (smaller): the int8 detector is checked and passes; only the
    ConvTranspose is not exactly comparable, and the outputs still agree bit for bit."""
    check = compile_model(quantized(M.text_detector(32), samples=2), check=True,
                          fusion="all", layout="chw").report["check"]
    assert check["passed"], check
    assert check["exact"]["reasons"] == [
        "node 'deconv_0' (ConvTranspose) runs in float32 in our compiled code: its result "
        "depends on the summation order"]
    assert check["spec"]["passed"] and check["spec"]["layers"] > 30
    assert all(o["max_lsb_err"] == 0 for o in check["outputs"]), check["outputs"]


def _tanh_model():
    """A QDQ conv -> Tanh -> conv: our compiler makes the Tanh a table; the reference has no
    Tanh."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 3, 8, 3, 1, act=None, base="c1")
    y = b.node("Tanh", [y], "squash")
    y = b.conv_bn_act(y, 8, 8, 1, act=None, base="c2")
    return quantized(b.model("input", [1, 3, 8, 8], y, name="tanh"), samples=2)


def test_unsupported_op_is_not_checked_cleanly(tmp_path, capsys):
    path = tmp_path / "tanh_int8.onnx"
    onnx.save(_tanh_model(), path)
    rc = main(["compile", str(path), "-o", str(tmp_path / "out"), "--check"])
    out, err = capsys.readouterr()
    assert rc == 1 and "internal error" not in out + err
    lines = [ln.strip() for ln in unwrap(out).splitlines() if "check vs" in ln]
    assert lines == ["check vs the integer reference: NOT CHECKED: the reference cannot "
                     "evaluate node 'squash_0' (op type Tanh)"], out
    check = json.loads((tmp_path / "out" / "report.json").read_text())["check"]
    assert check["checked"] is False and check["passed"] is False
    assert check["unsupported"] == {"node": "squash_0", "op_type": "Tanh", "detail": ""}


def test_not_checked_names_any_op_the_reference_lacks(monkeypatch):
    """With Resize taken out of the reference's op table, the detector's first Resize is
    reported, not raised."""
    import tvm_gap8.reference.ops as ops

    monkeypatch.setattr(ops, "_resample", lambda graph, node, a, dtype: None)

    class Imported:
        onnx_model = import_onnx(quantized(_upsample_block("nearest"), samples=2)).onnx_model

    inputs = {"input": np.zeros((1, 3, 8, 8), np.float32)}
    with pytest.raises(UnsupportedOpError, match="up_nearest_0.*Resize"):
        integer_reference(Imported.onnx_model, inputs)
    check = check_int8([], Imported, inputs, [])
    assert not check["passed"] and check["checked"] is False
    assert check_lines(check) == ["check vs the integer reference: NOT CHECKED: the reference "
                                  "cannot evaluate node 'up_nearest_0' (op type Resize)"]


@pytest.mark.parametrize("mode,pads,value,axes", [
    ("constant", [0, 0, 1, 2, 0, 3, 2, 0], None, None),
    ("constant", [0, 1, 0, 0, 0, 4, 0, 0], 0.0, None),  # channel padding
    ("constant", [0, 0, 1, 1, 0, 0, -1, 2], 1.5, None),  # a negative pad crops
    ("constant", [1, 2, 0, 1], -2.0, [1, 3]),  # opset 18: pads of the listed axes only
    ("reflect", [0, 0, 2, 1, 0, 0, 1, 2], None, None),
    ("edge", [0, 0, 1, 3, 0, 0, 2, 1], None, None)])
def test_pad_is_the_onnx_definition(mode, pads, value, axes):
    inits = {"p": np.array(pads, np.int64)}
    inputs = ["x", "p"]
    if value is not None or axes is not None:
        inputs.append("v" if value is not None else "")
        if value is not None:
            inits["v"] = np.array(value, np.float32)
    if axes is not None:
        inputs.append("a")
        inits["a"] = np.array(axes, np.int64)
    node = helper.make_node("Pad", inputs, ["y"], name="pad", mode=mode)
    for dtype in (np.float32, np.float64):
        ours, ort = _ours_and_ort(node, inits, X, opset=19, dtype=dtype)
        assert ours.shape == ort.shape and np.array_equal(ours.astype(np.float32), ort)


def test_pad_of_an_integer_tensor_pads_with_its_value():
    """An int8 tensor padded with a constant of its own type: the zero point when a QDQ graph
    pads a real 0."""
    node = helper.make_node("Pad", ["x", "p", "v"], ["y"], name="pad", mode="constant")
    model = _one_node(node, {}, 19)
    q = np.arange(-4, 4, dtype=np.int8).reshape(1, 2, 2, 2)
    y = eval_node(Graph(model), node, [q, np.array([0, 0, 0, 0, 0, 2, 0, 0]),
                                       np.array(-7, np.int8)], np.float32)
    assert y.dtype == np.int8 and y.shape == (1, 4, 2, 2)
    assert np.array_equal(y[:, :2], q) and (y[:, 2:] == -7).all()


@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float"])
def test_channel_pad_add_block_passes_check(int8):
    """The channel-padding shortcut through --check: checked (no longer "cannot evaluate
    Pad") and passed; int8 bit for bit, the padded channels at the zero point of the
    quantized Pad output (a real 0)."""
    model = quantized(M.pad_add_block(), samples=2) if int8 else M.pad_add_block()
    r = compile_model(model, check=True, fusion="all", layout="chw").report
    assert r["check"]["passed"] and r["check"].get("checked", True), r["check"]
    if not int8:
        return
    assert r["check"]["exact"]["equal"]
    imported = import_onnx(model)
    x = np.random.default_rng(0).standard_normal((1, 8, 16, 16)).astype(np.float32)
    run = integer_reference(imported.onnx_model, {"input": x})
    g = Graph(imported.onnx_model)
    pad = next(n for n in g.nodes if n.op_type == "Pad")
    q = next(n for n in g.nodes if n.op_type == "QuantizeLinear" and n.input[0] == pad.output[0])
    _, zp, _ = g.act_qparams(q)
    padded = run.values[q.output[0]]
    assert padded.shape == (1, 16, 16, 16) and (padded[:, 8:] == zp).all()
