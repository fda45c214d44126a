"""The planner is never worse than what it could have chosen, on whole networks: the paper
study's MobileNets at a small input (their widths, strides and residuals are what the planner
sees) and the real-network structures of the tests (NHWC input, channel pad, SiLU between the
convs, FPN joins, a text detector, a Keras HardSwish). Modelled cycles under the same cycle
model: planner (--fusion auto --layout auto) <= the usual deployment (baseline) and <=
--fusion none (the planner may split every pair, so fusing never costs it cycles)."""

import time

import pytest

from tvm_gap8.compiler import compile_model
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def _keras_hardswish_block():
    b = M.GraphBuilder(0)
    y = b.conv_bn_act("input", 8, 32, 1, act="hardswish_keras", base="expand")
    y = b.conv_bn_act(y, 32, 32, 3, groups=32, act="hardswish_keras", base="dw")
    y = b.conv_bn_act(y, 32, 16, 1, act=None, base="project")
    return b.model("input", [1, 8, 16, 16], y)


PAPER_STUDY = [  # (family, width) of benchmarks/paper_study.py, at 32x32
    ("v1", 0.25), ("v1", 0.5), ("v1", 0.75), ("v1", 1.0), ("v2", 0.35), ("v2", 0.5)]

STRUCTURES = {
    "keras_nhwc": lambda: M.keras_mobilenet_nhwc(resolution=32),
    "pad_add_block": lambda: M.pad_add_block(),
    "fpn_decoder_32": lambda: M.fpn_decoder(resolution=32),
    "text_detector_32": lambda: M.text_detector(32),
    "keras_hardswish_block": _keras_hardswish_block,
    "inverted_residual_block": lambda: M.inverted_residual_block(),
}


def _assert_never_worse(model):
    t0 = time.perf_counter()
    auto = compile_model(model, fusion="auto", layout="auto", baseline=True).report
    unfused = compile_model(model, fusion="none", layout="auto").report
    cycles = auto["totals"]["cycles_modelled"]
    assert cycles <= auto["baseline"]["totals"]["cycles_modelled"], auto["baseline"]
    assert cycles <= unfused["totals"]["cycles_modelled"], (cycles, unfused["totals"])
    return time.perf_counter() - t0


def _paper_net(fam, width):
    build = M.mobilenet_v1 if fam == "v1" else M.mobilenet_v2
    return quantized(build(alpha=width, resolution=32), samples=2)


@pytest.mark.parametrize("fam,width", [
    pytest.param(f, w, marks=[] if (f, w) in (("v1", 0.25), ("v2", 0.35)) else pytest.mark.slow)
    for f, w in PAPER_STUDY])
def test_paper_study_networks(fam, width):
    _assert_never_worse(_paper_net(fam, width))


#: the larger float ones (half a minute of wall time each on a busy 2-core machine): slow
SLOW = {("fpn_decoder_32", False), ("text_detector_32", False)}


@pytest.mark.parametrize("name,int8", [
    pytest.param(n, q, marks=[pytest.mark.slow] if (n, q) in SLOW else [],
                 id=f"{n}-{'int8' if q else 'float'}")
    for n in sorted(STRUCTURES) for q in (True, False)])
def test_real_structures(name, int8):
    model = STRUCTURES[name]()
    _assert_never_worse(quantized(model, samples=2) if int8 else model)
