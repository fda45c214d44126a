"""The networks the vertical slice must handle (issue 2's "must show")."""

import pytest

from tests.conftest import compile_checked
from tvm_gap8.testing import onnx_models as M


@pytest.fixture(scope="module")
def mbv1():
    return M.mobilenet_v1(alpha=0.25, resolution=96)


def test_mobilenet_v1_025_96_all_13_pairs_fused(mbv1):
    result = compile_checked(mbv1)
    fused = result.report["fusion"]["fused"]
    assert len(fused) == 13 and all(f["kind"] == "dw_pw" for f in fused)
    assert result.report["fusion"]["refused"] == []
    assert result.report["check"]["max_rel_err"] <= 1e-4
    # every DW->PW pair is one kernel: no depthwise conv is left as its own layer
    kinds = [layer["kind"] for layer in result.report["layers"]]
    assert "dw" not in kinds and kinds.count("dw_pw") == 13


def test_mobilenet_v1_025_96_unfused(mbv1):
    result = compile_checked(mbv1, fuse=False)
    kinds = [layer["kind"] for layer in result.report["layers"]]
    assert kinds.count("dw") == 13 and "dw_pw" not in kinds


def test_mobilenet_v2_every_dw_fused():
    result = compile_checked(M.mobilenet_v2(alpha=0.35, resolution=96))
    kinds = [layer["kind"] for layer in result.report["layers"]]
    assert "dw" not in kinds
    assert kinds.count("dw_pw") + kinds.count("pw_dw") == 9
    assert kinds.count("add") == 4  # the residual Adds: tiled kernels of their own


def test_mobilenet_v3_squeeze_excite_is_refused_with_reason():
    result = compile_checked(M.squeeze_excite_block())
    assert result.report["fusion"]["fused"] == []
    (refused,) = result.report["fusion"]["refused"]
    assert refused["onnx_nodes"] == ["dw_0"]
    assert "non-elementwise op, mean (se_pool_0)" in refused["reason"]


def _fused_groups(result):
    return [(f["kind"], [n for n in f["onnx_nodes"] if "Conv" in n or "_dw_" in n or "_pw_" in n
                         or "project" in n or "expand" in n])
            for f in result.report["fusion"]["fused"]]


@pytest.mark.parametrize("build", [lambda: M.mobilenet_v1(alpha=0.25, resolution=64),
                                   lambda: M.mobilenet_v2(alpha=0.35, resolution=64)],
                         ids=["mobilenet_v1", "mobilenet_v2"])
def test_int8_network_same_groups_as_float(build):
    from tvm_gap8.testing.quant import quantized

    float_result = compile_checked(build())
    int8_result = compile_checked(quantized(build()))
    layer_names = lambda r: [lay["name"] for lay in r.report["layers"]  # noqa: E731
                             if lay["kind"] in ("dw_pw", "pw_dw")]
    assert layer_names(int8_result) == layer_names(float_result)
    assert int8_result.report["float_layers"] == []
    (out,) = int8_result.report["check"]["outputs"]
    assert out["max_lsb_err"] == 0 and out["equal_fraction"] == 1.0  # the integer reference


def test_ops_without_gap8_kernel_fall_back_and_are_reported():
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 3, 8, 3, stride=1, act="relu", base="stem")
    y = b.node("MaxPool", [y], "maxpool", kernel_shape=[2, 2], strides=[2, 2])
    y = b.node("Sigmoid", [y], "gate")
    model = b.model("input", [1, 3, 16, 16], y, name="with_fallbacks")
    result = compile_checked(model)
    fallbacks = {layer["name"]: layer["fallback"] for layer in result.report["layers"]
                 if layer.get("fallback")}
    assert set(fallbacks) == {"maxpool_0", "gate_0"}
    assert all("not tiled for L1" in why for why in fallbacks.values())
    from tvm_gap8.report.contents import format_table

    assert "not tiled (TVM fallback): maxpool_0, gate_0" in format_table(result.report)


def test_batch_above_one_falls_back_instead_of_miscompiling():
    model = M.dw_pw_block(cin=8, cout=16, h=8, w=8)
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    result = compile_checked(model, input_shapes={"input": (2, 8, 8, 8)})
    (refused,) = result.report["fusion"]["refused"]
    assert "batch 2" in refused["reason"]
    assert not any(layer.get("tiled") for layer in result.report["layers"])


@pytest.mark.parametrize("int8", [False, True])
def test_grouped_conv_is_tiled_and_exact(int8):
    from tvm_gap8.testing.quant import quantized

    b = M.GraphBuilder(0)
    y = b.act(b.conv("input", 8, 16, 3, groups=2, base="gconv"), "relu")
    model = b.model("input", [1, 8, 10, 10], y)
    result = compile_checked(quantized(model) if int8 else model)
    (layer,) = [lay for lay in result.report["layers"] if lay.get("tiled")]
    assert layer["kind"] == "conv" and layer["l1_peak_bytes"] == layer["plan"]["l1_bytes"]


def test_exporter_reduce_mean_with_negative_axes_is_a_pool_kernel():
    """torch.onnx's dynamo exporter writes global pooling as ReduceMean(axes=[-2, -1])."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 3, 8, 3, act="relu", base="stem")
    y = b.node("ReduceMean", [y], "mean", axes=[-2, -1], keepdims=1)
    result = compile_checked(b.model("input", [1, 3, 12, 12], y))
    kinds = {layer["name"]: layer["kind"] for layer in result.report["layers"]}
    assert kinds["mean_0"] == "pool"


def test_unfused_dw_explains_both_directions():
    """t=1 inverted residual with SE after a 3x3 stem (MobileNetV3's first block): the DW has
    squeeze-excite after it and a 3x3 (not pointwise) conv before it."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 3, 16, 3, stride=2, act="hardswish", base="stem")
    y = b.conv_bn_act(y, 16, 16, 3, stride=2, groups=16, act="relu", base="dw")
    s = b.node("GlobalAveragePool", [y], "se_pool")
    s = b.node("HardSigmoid", [b.conv(s, 16, 16, 1, base="se_fc")], "se_gate", alpha=1 / 6,
               beta=0.5)
    y = b.conv_bn_act(b.node("Mul", [y, s], "se_scale"), 16, 16, 1, act=None, base="pw")
    result = compile_checked(b.model("input", [1, 3, 32, 32], y))
    (refused,) = result.report["fusion"]["refused"]
    assert refused["onnx_nodes"] == ["dw_0"]
    reason = refused["reason"]
    assert reason.startswith("a non-elementwise op, mean (se_pool_0)")
    assert "producer: the paired conv is 3x3, not a 1x1 pointwise" in reason
