"""The numpy integer reference (``tvm_gap8.reference``) against our compiled int8 models: bit
for bit, end to end; and the per-layer spec check against the ONNX QDQ float semantics."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tvm_gap8.compiler import build_host, compile_model, random_inputs, run_host
from tvm_gap8.frontend import import_onnx
from tvm_gap8.kernels.lut import _table_op
from tvm_gap8.reference import integer_reference, spec_layer_check
from tvm_gap8.reference.ops import dequantize, sigmoid
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def compiled(model, fuse=True):
    result = compile_model(model, check=False, fuse=fuse)
    result.executable = build_host(result.lowered)
    return result


def compare(result, seed=0):
    """Run ours and the reference on the same inputs; assert bit-exact outputs."""
    inputs = random_inputs(result.imported, seed)
    got = run_host(result.executable, result.imported, inputs)
    run = integer_reference(result.imported.onnx_model, inputs)
    assert run.exact_applicable, run.reasons
    assert len(got) == len(run.outputs)
    for g, w in zip(got, run.outputs):
        assert g.dtype == w.dtype == np.float32 and g.shape == w.shape
        assert np.array_equal(g, w), f"{np.sum(g != w)} of {g.size} output values differ"
    _assert_integer_outputs_agree(result.imported.onnx_model, run, got)
    return run


def _assert_integer_outputs_agree(model, run, got):
    """The outputs are dequantized integers: compare the integer levels too."""
    producers = {n.output[0]: n for n in model.graph.node}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for out, g in zip(model.graph.output, got):
        dq = producers[out.name]
        assert dq.op_type == "DequantizeLinear"
        scale, zp = inits[dq.input[1]], inits[dq.input[2]]
        levels = run.values[dq.input[0]]
        assert np.array_equal(np.rint(g / scale).astype(np.int64) + int(zp), levels.astype(np.int64))
        assert np.array_equal(dequantize(levels, scale, zp, 1, np.float32), g)


def check_model(model, fuse=True):
    result = compiled(model, fuse)
    run = compare(result)
    spec = spec_layer_check(result.imported.onnx_model, run)
    assert spec.passed, spec.to_dict()
    return result, run, spec


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("act", ["relu", "relu6"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_dw_pw_block(stride, act, per_channel):
    model = quantized(M.dw_pw_block(cin=16, cout=32, h=15, w=13, k=3, stride=stride, act=act,
                                    act_after_pw=act), per_channel=per_channel)
    result, run, _ = check_model(model)
    assert [f["kind"] for f in result.report["fusion"]["fused"]] == ["dw_pw"]
    assert [r.kind for r in run.layers] == ["float", "conv", "conv"]


@pytest.mark.parametrize("stride", [1, 2])
def test_pw_dw_block(stride):
    result, _, _ = check_model(quantized(M.pw_dw_block(cin=8, hidden=32, h=12, w=12, k=5,
                                                       stride=stride)))
    assert [f["kind"] for f in result.report["fusion"]["fused"]] == ["pw_dw"]


@pytest.mark.parametrize("activation_type", ["int8", "uint8"])
def test_inverted_residual_with_add(activation_type):
    _, run, _ = check_model(quantized(M.inverted_residual_block(cin=16, h=10, w=10, t=4),
                                      activation_type=activation_type))
    assert "add" in [r.kind for r in run.layers]
    assert run.layers[-1].output.dtype == np.dtype(activation_type)


def test_squeeze_excite_pool_table_multiply():
    _, run, _ = check_model(quantized(M.squeeze_excite_block()))
    assert {"pool", "table", "mul", "conv"} <= {r.kind for r in run.layers}


@pytest.mark.parametrize("act", ["hardswish", "hardswish_decomposed"])
def test_hardswish_block(act):
    _, run, _ = check_model(quantized(M.dw_pw_block(cin=8, cout=16, h=12, w=12, act=act)))
    assert {"table", "mul"} <= {r.kind for r in run.layers}


def _swish_block():
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 8, 8, 3, 1, groups=8, act=None, base="dw")
    y = b.node("Mul", [y, b.node("Sigmoid", [y], "sig")], "swish")
    y = b.conv_bn_act(y, 8, 16, 1, act=None, base="pw")
    return b.model("input", [1, 8, 12, 12], y, name="swish")


def test_sigmoid_table():
    _, run, _ = check_model(quantized(_swish_block()))
    assert run.layer("sig_0").kind == "table"


def test_sigmoid_table_definition_is_the_references():
    x = np.linspace(-20, 20, 4001, dtype=np.float32)
    want = (np.float32(1) / (np.float32(1) + np.exp(-x.astype(np.float64)).astype(np.float32)))
    assert np.array_equal(_table_op("relax.sigmoid", [x], None), want)
    assert np.array_equal(sigmoid(x, np.float32), want)


def test_gemm_classifier():
    _, run, _ = check_model(quantized(M.classifier_head()))
    kinds = [r.kind for r in run.layers]
    assert kinds.count("dense") == 2 and "reshape" in kinds


@pytest.mark.parametrize("per_channel", [True, False])
def test_linear_by_kxo_weights_is_an_integer_dense(per_channel):
    """Paddle's Linear (MatMul by [K, O] weights + Add, which onnxruntime fuses into a Gemm with
    transB=0) and a MatMul by constant weights without bias: integer dense kernels, bit for
    bit."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 3, 16, 3, 2, act="relu", base="c1")
    y = b.node("Flatten", [b.node("GlobalAveragePool", [y], "pool")], "flatten", axis=1)
    w1 = (b.rng.standard_normal((16, 24)) * 0.3).astype("float32")
    bias = (0.1 * b.rng.standard_normal(24)).astype("float32")
    y = b.node("Add", [b.node("MatMul", [y, b.const("fc1_w", w1)], "fc1"),
                       b.const("fc1_b", bias)], "fc1_bias")
    y = b.node("Relu", [y], "relu")
    w2 = (b.rng.standard_normal((24, 10)) * 0.3).astype("float32")
    y = b.node("MatMul", [y, b.const("fc2_w", w2)], "fc2")
    result, run, _ = check_model(quantized(b.model("input", [1, 3, 16, 16], y, [1, 10]),
                                           per_channel=per_channel))
    assert [r.kind for r in run.layers].count("dense") == 2
    assert [layer["kind"] for layer in result.report["layers"] if layer.get("integer")] == [
        "conv", "pool", "reshape", "dense", "dense"]  # the flatten: an int8 alias
    assert result.report["float_layers"] == []


def test_linear_over_a_sequence_is_an_integer_dense():
    """A Linear over 16 rows ([16, K] x [K, O], a feature map read as rows): an integer dense
    kernel, bit for bit (its weight staging per feature tile: ``tests/cost``)."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 3, 16, 3, 1, act="relu", base="c1")
    y = b.node("Reshape", [y, b.const("seq_shape", np.array([16, 64], np.int64))], "seq")
    w = (b.rng.standard_normal((64, 40)) * 0.2).astype("float32")
    y = b.node("Add", [b.node("MatMul", [y, b.const("fc_w", w)], "fc"),
                       b.const("fc_b", (0.1 * b.rng.standard_normal(40)).astype("float32"))],
               "fc_bias")
    result, run, _ = check_model(quantized(b.model("input", [1, 3, 8, 8], y, [16, 40])))
    (dense,) = [layer for layer in result.report["layers"] if layer["kind"] == "dense"]
    assert dense["integer"] and [r.kind for r in run.layers].count("dense") == 1


def test_maxpool_stays_float_and_is_exact():
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 3, 8, 3, 1, act="relu", base="c1")
    y = b.node("MaxPool", [y], "mp", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    y = b.conv_bn_act(y, 8, 16, 1, act=None, base="c2")
    result, run, _ = check_model(quantized(b.model("input", [1, 3, 16, 16], y, name="mp")))
    assert result.report["float_layers"] == [
        {"name": "mp_0", "kind": "max_pool2d",
         "reason": "no GAP8 kernel for max_pool2d: TVM's legalized op"}]
    assert run.layer("mp_0").kind == "float"


def test_broadcast_products_and_sums_stay_float_and_are_exact():
    """A gate * tensor product and a tensor + per-channel sum have no integer kernel: the
    compiler keeps them in float32, and the reference evaluates them so."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 8, 8, 3, 1, groups=8, act="relu", base="dw")
    y = b.node("Mul", [b.node("Sigmoid", [b.node("GlobalAveragePool", [y], "gp")], "gate"), y],
               "scale")
    side = b.node("GlobalAveragePool", [b.conv_bn_act("input", 8, 8, 1, act=None, base="side")],
                  "gp2")
    y = b.conv_bn_act(b.node("Add", [y, side], "badd"), 8, 16, 1, act=None, base="pw")
    result, run, _ = check_model(quantized(b.model("input", [1, 8, 12, 12], y, name="bcast")))
    records = result.report["float_layers"]
    assert [(r["name"], r["kind"]) for r in records] == [("scale_0", "eltwise"),
                                                         ("badd_0", "eltwise")]
    assert records[0]["reason"].startswith("multiply of two activations: a multiply of shapes")
    assert records[1]["reason"].startswith("add of two activations: an add of shapes")
    assert run.layer("scale_0").kind == run.layer("badd_0").kind == "float"


def test_uint8_dw_pw_block():
    _, run, _ = check_model(quantized(M.dw_pw_block(cin=16, cout=24, h=12, w=12, stride=2),
                                      activation_type="uint8"))
    assert all(r.output.dtype == np.uint8 for r in run.layers)


NETWORKS = {
    "mobilenet_v1": lambda: quantized(M.mobilenet_v1(alpha=0.25, resolution=96)),
    "mobilenet_v2": lambda: quantized(M.mobilenet_v2(alpha=0.35, resolution=64)),
}


@pytest.fixture(scope="module")
def networks():
    cache = {}

    def get(name, fuse=True):
        if (name, fuse) not in cache:
            if name not in cache:
                cache[name] = NETWORKS[name]()
            result = compiled(cache[name], fuse)
            run = compare(result)
            cache[name, fuse] = (result, run)
        return cache[name, fuse]
    return get


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_networks_bit_exact_and_within_spec(networks, name, fuse):
    result, run = networks(name, fuse)  # compare() asserted bit-exactness
    assert bool(result.report["fusion"]["fused"]) == fuse
    spec = spec_layer_check(result.imported.onnx_model, run)
    assert spec.passed, spec.to_dict()
    assert len(spec.layers) == len(run.layers) > 20


def test_spec_check_fails_on_a_perturbed_layer(networks):
    result, run = networks("mobilenet_v2")
    rec = next(r for r in run.layers[len(run.layers) // 2:] if r.kind == "conv")
    original = rec.output
    rec.output = np.clip(original.astype(np.int64) + 2, -128, 127).astype(original.dtype)
    try:
        spec = spec_layer_check(result.imported.onnx_model, run)
    finally:
        rec.output = original
    assert not spec.passed
    assert spec.failing == [rec.name]
    (row,) = [r for r in spec.layers if r["name"] == rec.name]
    assert row["max_step_diff"] >= 2


def _scaled_quantize(model, node_name, factor):
    out = onnx.ModelProto()
    out.CopyFrom(model)
    (q,) = [n for n in out.graph.node if n.name == node_name]
    (init,) = [t for t in out.graph.initializer if t.name == q.input[1]]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor),
                                          init.name))
    return out


def test_reference_reads_the_model_not_our_compile():
    """Scaling one layer's output scale in the ONNX model changes the reference there, and
    the recompiled model still agrees with it bit for bit."""
    result = compiled(quantized(M.dw_pw_block(cin=16, cout=32, h=12, w=12)))
    model = result.imported.onnx_model
    inputs = random_inputs(result.imported, 0)
    before = integer_reference(model, inputs)
    mid = before.layers[1]
    assert mid.op == "Conv"
    changed = _scaled_quantize(model, mid.name, 1.3)
    after = integer_reference(changed, inputs)
    assert not np.array_equal(after.layer(mid.name).output, mid.output)
    assert not np.array_equal(after.outputs[0], before.outputs[0])
    compare(compiled(changed))


def test_float_conv_is_not_exact_and_says_where():
    model = import_onnx(M.dw_pw_block(cin=8, cout=16, h=8, w=8)).onnx_model
    run = integer_reference(model, {"input": np.ones((1, 8, 8, 8), np.float32)})
    assert not run.exact_applicable
    assert any("'dw_0' (Conv)" in r for r in run.reasons)


def test_unsupported_op_names_the_node():
    node = helper.make_node("Erf", ["x"], ["y"], name="my_erf")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph)
    with pytest.raises(ValueError, match="my_erf.*Erf"):
        integer_reference(model, {"x": np.zeros((1, 4), np.float32)})
