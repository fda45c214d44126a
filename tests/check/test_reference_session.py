"""The onnxruntime reference runs QDQ graphs as the ONNX spec writes them: basic optimisation
level, never the default (which rewrites QDQ into CPU-dependent integer kernels)."""

import pathlib
import re

import numpy as np
import onnxruntime as ort

import tvm_gap8
from tvm_gap8.check import lsb_figures, lsb_steps, reference_session
from tvm_gap8.testing import onnx_models as M


def test_reference_session_is_basic_level():
    sess = reference_session(M.dw_pw_block(cin=4, cout=8, h=8, w=8))
    level = sess.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def test_every_session_in_the_package_states_its_level():
    """A new ``InferenceSession(`` anywhere in tvm_gap8 must set the level in the same file."""
    root = pathlib.Path(tvm_gap8.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        if re.search(r"InferenceSession\(", text):
            assert "ORT_ENABLE_BASIC" in text, f"{path} builds a session at the default level"


def test_one_step_counts_as_one():
    """A difference of exactly one quantization step measured in float is 1.000002 LSB for
    some scales; counted in integers it is 1."""
    lsb = np.float32(0.0235)
    q = np.arange(-128, 127, dtype=np.int64)
    want = (q.astype(np.float32) * lsb).astype(np.float32)
    got = ((q + 1).astype(np.float32) * lsb).astype(np.float32)
    ratio = np.abs(got.astype(np.float64) - want.astype(np.float64)) / float(lsb)
    assert ratio.max() > 1 + 1e-7  # the float ratio overshoots one step
    assert (lsb_steps(got, want, float(lsb)) == 1).all()
    fig = lsb_figures(got, want, float(lsb))
    assert fig["max_lsb_err"] == 1 and fig["within_1_lsb_fraction"] == 1.0
    got[3] += 2 * lsb
    assert lsb_figures(got, want, float(lsb))["max_lsb_err"] == 3
