"""ONNX -> Relax: shape pinning, folding of exporter shape subgraphs, node names, and errors."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import compile_checked
from tvm_gap8.errors import ModelError, UnsupportedError, UsageError
from tvm_gap8.frontend import import_onnx, node_name_of, parse_input_shape
from tvm_gap8.testing import onnx_models as M


def _dynamic_model(with_shape_subgraph=True, name_nodes=True):
    """Conv -> (Shape -> Gather -> Concat -> Reshape, as exporters write a flatten) with a
    symbolic batch dimension."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype("float32"), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1],
                              name="conv" if name_nodes else "")]
    inits = [w]
    if with_shape_subgraph:
        inits += [numpy_helper.from_array(np.array(0, np.int64), "zero"),
                  numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
        nodes += [
            helper.make_node("Shape", ["c"], ["s"], name="shape" if name_nodes else ""),
            helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
            helper.make_node("Concat", ["n1", "minus1"], ["newshape"], axis=0),
            helper.make_node("Reshape", ["c", "newshape"], ["y"]),
        ]
        inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes0"))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4 * 8 * 8])
    else:
        nodes[0].output[0] = "y"
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])
    graph = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 3, 8, 8])], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_shape_subgraph_folds_once_shapes_are_pinned():
    result = compile_checked(_dynamic_model(), input_shapes={"x": (1, 3, 8, 8)})
    names = [layer["name"] for layer in result.report["layers"]]
    assert names[0] == "conv"
    assert "shape" not in names  # folded away by onnxruntime before import


def test_unpinned_dynamic_dim_names_the_input():
    with pytest.raises(UsageError, match=r"input 'x' has a dynamic dimension 0 \(N\); pin it"):
        import_onnx(_dynamic_model())


def _paddle_style(model, dim_value):
    """The exporter's dynamic batch as PaddlePaddle writes it: ``dim_value: -1`` (or 0), on the
    input and the output."""
    for vi in list(model.graph.input) + list(model.graph.output):
        d = vi.type.tensor_type.shape.dim[0]
        d.Clear()
        d.dim_value = dim_value
    return model


@pytest.mark.parametrize("dim_value", [-1, 0])
def test_non_positive_dim_value_is_dynamic(dim_value):
    model = _paddle_style(_dynamic_model(), dim_value)
    label = str(dim_value)
    with pytest.raises(UsageError, match=rf"input 'x' has a dynamic dimension 0 \({label}\)"):
        import_onnx(model)
    result = compile_checked(model, input_shapes={"x": (1, 3, 8, 8)})
    assert result.report["inputs"] == {"x": [1, 3, 8, 8]}


def test_input_shape_errors():
    model = _dynamic_model()
    with pytest.raises(UsageError, match="unknown input 'nope'.*inputs are x"):
        import_onnx(model, {"nope": (1, 3, 8, 8)})
    with pytest.raises(UsageError, match="rank 3 given, the model's input has rank 4"):
        import_onnx(model, {"x": (1, 3, 8)})
    with pytest.raises(UsageError, match="zero-size"):
        import_onnx(model, {"x": (0, 3, 8, 8)})
    with pytest.raises(UsageError, match=r"axis 1 given as 4 conflicts with the model's static "
                                         r"3 on that axis \(the model's shape: \[\w+, 3, "):
        import_onnx(model, {"x": (1, 4, 8, 8)})
    with pytest.raises(UsageError, match="expected NAME:D0,D1"):
        parse_input_shape("1,3,8,8")
    with pytest.raises(UsageError, match="must be integers"):
        parse_input_shape("x:1,a")
    assert parse_input_shape("in:put:1,3") == ("in:put", (1, 3))


def test_unnamed_nodes_get_generated_names():
    imported = import_onnx(_dynamic_model(with_shape_subgraph=False, name_nodes=False),
                           {"x": (1, 3, 8, 8)})
    calls = [b.value for blk in imported.mod["main"].body.blocks for b in blk.bindings
             if hasattr(b.value, "op") and getattr(b.value.op, "name", "") == "relax.nn.conv2d"]
    assert [node_name_of(c) for c in calls] == ["Conv_0"]


def test_every_imported_call_names_its_node():
    imported = import_onnx(M.dw_pw_block(act="hardswish_decomposed"))
    names = {node_name_of(b.value) for blk in imported.mod["main"].body.blocks
             for b in blk.bindings if hasattr(b.value, "op")}
    assert {"dw_0", "pw_0", "hs_add_0", "hs_clip_0", "hs_mul_0", "hs_div_0"} <= names


def test_bad_files(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07this is not a protobuf\xff\xff")
    with pytest.raises(ModelError, match="garbage.onnx"):
        import_onnx(garbage)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(M.dw_pw_block().SerializeToString()[:200])
    with pytest.raises(ModelError):
        import_onnx(truncated)


def test_checker_failure_and_opset():
    model = M.dw_pw_block()
    bad = onnx.ModelProto()
    bad.CopyFrom(model)
    bad.graph.node[0].input[1] = "no_such_tensor"
    with pytest.raises(ModelError, match="ONNX checker"):
        import_onnx(bad)
    old = onnx.ModelProto()
    old.CopyFrom(model)
    old.opset_import[0].version = 7
    with pytest.raises(UnsupportedError, match="unsupported ONNX opset 7"):
        import_onnx(old)


def test_unsupported_op_names_node_and_type():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("QLinearConv", ["x"] * 8, ["y"], name="qc")],
                              "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(UnsupportedError, match="node 'qc': QLinearConv"):
        import_onnx(model)


def test_unknown_op_names_node_and_type():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Celu", ["x"], ["y"], name="my_celu")],
                              "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(UnsupportedError, match="node 'my_celu': op type Celu is not supported"):
        import_onnx(model)
