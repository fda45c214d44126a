"""Every code block of README.md and docs/*.md: marked ``python``, ``sh`` or ``text`` (output
samples, diagrams, signatures, abridged IR); the ``python`` blocks of docs/ run as written on the
bundled float and int8 example (the README's own block: test_readme.py); in ``sh`` blocks every
``tvm-gap8`` line runs on the bundled example (``make`` lines are CI's and the demo's own
commands; ``--run gvsoc`` needs GVSOC, else that line is skipped, saying why)."""

import glob
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import onnx
import pytest

from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = ["README.md", *sorted(os.path.relpath(p, ROOT)
                             for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]


def blocks(doc: str) -> list[tuple[str, str]]:
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    return re.findall(r"^```(\S*)\n(.*?)^```", text, re.S | re.M)


def test_every_block_says_what_it_is():
    found = {(doc, lang) for doc in DOCS for lang, _ in blocks(doc)}
    assert {lang for _, lang in found} <= {"python", "sh", "text"}, sorted(found)
    assert ("docs/cli-and-api.md", "python") in found and ("README.md", "sh") in found


@pytest.fixture(scope="module")
def example_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("example")
    float_model = M.mobilenet_v1(alpha=0.25, resolution=96)
    onnx.save(float_model, d / "model.onnx")
    onnx.save(quantized(float_model, samples=4), d / "model_int8.onnx")
    return d


@pytest.mark.parametrize("doc", [d for d in DOCS if d != "README.md"])
def test_docs_python_blocks_run_on_float_and_int8(doc, example_models, capsys):
    code = [c for lang, c in blocks(doc) if lang == "python"]
    for block in code:
        for model in ("model.onnx", "model_int8.onnx"):
            path = repr(str(example_models / model))
            exec(compile(block.replace('"model.onnx"', path).replace('"model_int8.onnx"', path),
                         doc, "exec"), {})
    if doc == "docs/cli-and-api.md":  # kernels, then the planned cycles, per model
        printed = capsys.readouterr().out.split()
        assert len(printed) == 4 and all(int(v) > 0 for v in printed), printed


def _tvm_gap8_lines():
    return [(doc, line) for doc in DOCS for lang, code in blocks(doc) if lang == "sh"
            for line in code.splitlines() if line.startswith("tvm-gap8 ")]


def test_readme_quick_start_runs(example_models, tmp_path):
    from tvm_gap8.emitc.gvsoc import gvsoc_available

    lines = _tvm_gap8_lines()
    assert len(lines) >= 3
    os.symlink(example_models / "model.onnx", tmp_path / "model.onnx")
    (tmp_path / "calib").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(tmp_path / "calib" / f"{i}.npy", rng.random((1, 3, 96, 96), dtype=np.float32))
    for doc, line in lines:
        args = shlex.split(line.split("#")[0])
        if "gvsoc" in args and gvsoc_available():
            continue  # GVSOC not installed here: tests/emitc/test_gvsoc.py says why
        proc = subprocess.run([sys.executable, "-m", "tvm_gap8.cli", *args[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, (doc, line, proc.stderr)
    assert (tmp_path / "out" / "model" / "report.json").exists()
