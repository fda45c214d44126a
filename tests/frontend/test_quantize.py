"""``tvm-gap8 quantize`` on models older than opset 13 (per-channel Q/DQ need ``axis``)."""

import onnx
import pytest

from tests.conftest import compile_checked
from tvm_gap8.errors import ModelError
from tvm_gap8.frontend.quantize import _validate, quantize_model
from tvm_gap8.testing import onnx_models as M


def _opset(model):
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


@pytest.mark.parametrize("per_channel", [True, False])
def test_opset12_model_is_upgraded_then_quantized(tmp_path, capsys, per_channel):
    old = M.dw_pw_block(cin=8, cout=16, h=8, w=8, act="relu6")
    old.opset_import[0].version = 12  # every op of the block exists unchanged in opset 12
    onnx.checker.check_model(old)
    out = tmp_path / "int8.onnx"
    quantize_model(old, str(out), samples=4, per_channel=per_channel)
    assert "converted from opset 12 to 13" in capsys.readouterr().err
    model = onnx.load(out)
    assert _opset(model) >= 13
    axes = [a.i for n in model.graph.node if n.op_type == "DequantizeLinear"
            for a in n.attribute if a.name == "axis"]
    assert bool(axes) == per_channel  # per-channel weights carry an axis
    result = compile_checked(model)
    assert [f["kind"] for f in result.report["fusion"]["fused"]] == ["dw_pw"]


def test_output_is_validated_before_it_is_written(tmp_path):
    bad = M.dw_pw_block(cin=4, cout=8, h=8, w=8)
    bad.graph.node[0].input[1] = "no_such_tensor"
    path = tmp_path / "bad.onnx"
    onnx.save(bad, path)
    with pytest.raises(ModelError, match="does not import"):
        _validate(str(path), None)
