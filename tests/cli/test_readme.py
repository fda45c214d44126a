"""The README's Python block runs as written (the model path pointed at the bundled int8 demo
model, the output into a temporary folder)."""

import os
import re

import onnx

from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_readme_python_block_runs(tmp_path, capsys):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    model = tmp_path / "model_int8.onnx"
    onnx.save(quantized(M.mobilenet_v1(alpha=0.25, resolution=96)), str(model))
    code = blocks[0].replace('"model_int8.onnx"', repr(str(model)))
    code = code.replace('"out/model"', repr(str(tmp_path / "out")))
    exec(compile(code, "README.md", "exec"), {})
    cycles, passed = capsys.readouterr().out.split()[-2:]
    assert int(cycles) > 0 and passed == "True"
    assert (tmp_path / "out" / "gap8" / "gap8_out.bin").exists() or \
        (tmp_path / "out" / "gap8" / "gap8_out0.bin").exists()
