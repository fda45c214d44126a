"""Every refusal and fallback names the op, the rule and the consumer/producer involved."""

import numpy as np
import pytest

from tvm_gap8.compiler import compile_model
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def _refused(model, **kw):
    return compile_model(model, fusion="all", **kw).report["fusion"]["refused"]


def test_outside_consumer_is_named():
    """DW -> ReLU -> PW, the ReLU's output also added after the PW: the consumer outside the
    pair is named by its ONNX node."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 8, 8, 3, groups=8, act="relu", base="dw")
    p = b.conv_bn_act(y, 8, 8, 1, act=None, base="pw")
    model = b.model("input", [1, 8, 8, 8], b.node("Add", [p, y], "skip"))
    (r,) = _refused(model)
    assert r["reason"] == ("the intermediate relu_0 has another consumer outside the pair "
                           "(skip_0)")


def test_maxpool_after_dw_is_not_called_squeeze_excite():
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 8, 8, 3, groups=8, act="relu", base="dw")
    y = b.node("MaxPool", [y], "pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    model = b.model("input", [1, 8, 16, 16], b.conv_bn_act(y, 8, 16, 1, act="relu", base="pw"))
    (r,) = _refused(model)
    assert r["reason"].startswith("a non-elementwise op, nn.max_pool2d (pool_0), reads the DW "
                                  "output and no PW reads it")
    assert "squeeze-excite" not in r["reason"] and "next PW" not in r["reason"]


def test_squeeze_excite_after_dw_says_so():
    (r,) = _refused(M.squeeze_excite_block())
    assert r["reason"].startswith("a non-elementwise op, mean (se_pool_0), reads the DW "
                                  "output: a squeeze-excite (pool and gate multiply)")
    assert "multiply (se_scale_0)" in r["reason"]


def test_expand_pw_unmatched_chain_dw_side_gets_a_reason():
    """PW -> x * (relu6(x + 3) * 1/6) -> LeakyRelu, quantized op by op -> DW (a table after the
    product: no pattern takes it; the Keras hard_swish alone fuses, tests/passes/
    test_tables.py): the producer side says which PW and which ops no pattern matched."""
    b = M.GraphBuilder(0)
    y = b.act(b.act(b.conv("input", 8, 16, 1, base="pw"), "hardswish_keras"), "leakyrelu")
    model = b.model("input", [1, 8, 16, 16], b.conv(y, 16, 16, 3, groups=16, base="dw"))
    (r,) = _refused(quantized(model, samples=2))
    assert "producer: the PW pw_0 reaches the DW through ops no PW->DW pattern matched " \
           "(add (hs_add_0), multiply (hs_scale_0), multiply (hs_mul_0), nn.leakyrelu " \
           in r["reason"], r


def test_3d_sigmoid_names_the_table_rule():
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 8, 16, 3, act="relu", base="conv")
    y = b.node("Reshape", [y, b.const("seq", np.array([1, 16, 64], np.int64))], "to_seq")
    model = b.model("input", [1, 8, 8, 8], b.node("Sigmoid", [y], "gate"))
    report = compile_model(quantized(model, samples=2), check=True, fusion="all",
                           layout="chw").report
    assert report["check"]["passed"]
    assert report["float_layers"] == [{
        "name": "gate_0", "kind": "activation",
        "reason": "sigmoid: the int8 table kernel refused it: a 3-D elementwise op (the table "
                  "kernel takes NCHW or [N, F])"}]


@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float"])
def test_pad_layer_has_kind_pad(int8):
    model = quantized(M.pad_add_block(), samples=2) if int8 else M.pad_add_block()
    layers = compile_model(model, fusion="all", layout="chw").report["layers"]
    pad = [la for la in layers if la["name"] == "channel_padding_0"]
    assert [(la["kind"], la["integer"]) for la in pad] == [("pad", int8)]
    assert not any(la["kind"].startswith(("pad1", "call_tir")) for la in layers)


def test_reflect_pads_are_named_by_their_op_not_their_function():
    """Two reflect Pads (TE functions mirror_pad, mirror_pad1): both reported as mirror_pad."""
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 8, 8, 3, act="relu", base="c")
    for i in range(2):
        pads = b.const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
        y = b.conv(b.node("Pad", [y, pads], f"rpad{i}", mode="reflect"), 8, 8, 3,
                   pads=[0, 0, 0, 0], base=f"c{i}")
    layers = compile_model(b.model("input", [1, 8, 8, 8], y), fusion="all",
                           layout="chw").report["layers"]
    assert [(la["name"], la["kind"]) for la in layers if "pad" in la["name"]] == [
        ("rpad0_0", "mirror_pad"), ("rpad1_0", "mirror_pad")]
