"""Random depthwise-separable blocks for property-based testing (hypothesis strategies) and the
fuzz benchmark: build the block in ONNX, compile it through the full GAP8 lowering (tiling, L1
scopes, double buffering) and compare with onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass

from ..compiler import compile_model
from ..errors import TilingError
from ..target import GAP8
from . import onnx_models as M
from .quant import quantized

ACTIVATIONS = ["relu", "relu6", "hardswish", "hardswish_decomposed", None]
# float blocks also draw the other elementwise activations the fused epilogues compute in float
FLOAT_ACTIVATIONS = ACTIVATIONS + ["leakyrelu", "prelu", "sigmoid", "silu", "tanh"]
# int8 draws every activation too. (HardSwish was once left out: the check then compared with
# onnxruntime, which runs some QDQ convs as float DQ->Conv->Q whose rounding can differ from the
# correctly rounded integer result by 1 LSB, amplified to 3 by a steep int8 HardSigmoid. The
# check is now the exact integer reference plus the per-layer spec, where that 1 LSB is one
# layer's allowed step, not an end-to-end failure.)
# LeakyRelu and Sigmoid between the convs become tables inside the fused int8 kernels.
INT8_ACTIVATIONS = ACTIVATIONS + ["leakyrelu", "sigmoid"]


@dataclass(frozen=True)
class BlockCase:
    kind: str  # dw_pw | pw_dw
    channels: int
    out_channels: int
    h: int
    w: int
    k: int
    stride: int
    pads: tuple
    act: str | None
    act2: str | None
    int8: bool
    l1_bytes: int
    seed: int

    def model(self):
        if self.kind == "dw_pw":
            return M.dw_pw_block(cin=self.channels, cout=self.out_channels, h=self.h, w=self.w,
                                 k=self.k, stride=self.stride, act=self.act,
                                 act_after_pw=self.act2, pads=list(self.pads), seed=self.seed)
        return M.pw_dw_block(cin=self.channels, hidden=self.out_channels, h=self.h, w=self.w,
                             k=self.k, stride=self.stride, act=self.act, act_after_dw=self.act2,
                             pads=list(self.pads), seed=self.seed)

    def out_hw(self):
        t, l, b, r = self.pads
        return ((self.h + t + b - self.k) // self.stride + 1,
                (self.w + l + r - self.k) // self.stride + 1)


def strategy(int8=None):
    from hypothesis import (
        strategies as st,  # here: hypothesis is a test-only dependency
    )

    @st.composite
    def cases(draw):
        k = draw(st.sampled_from([3, 5, 7]))
        h = draw(st.integers(1, 40))
        w = draw(st.integers(1, 40))
        symmetric = draw(st.booleans())
        if symmetric:
            p = draw(st.integers(0, k // 2))
            pads = (p, p, p, p)
        else:
            pads = tuple(draw(st.integers(0, k - 1)) for _ in range(4))
        stride = draw(st.sampled_from([1, 2]))
        quant = draw(st.booleans()) if int8 is None else int8
        acts = INT8_ACTIVATIONS if quant else FLOAT_ACTIVATIONS
        case = BlockCase(
            kind=draw(st.sampled_from(["dw_pw", "pw_dw"])),
            channels=draw(st.integers(1, 64)),
            out_channels=draw(st.integers(1, 64)),
            h=h, w=w, k=k, stride=stride, pads=pads,
            act=draw(st.sampled_from(acts)), act2=draw(st.sampled_from(acts)),
            int8=quant,
            l1_bytes=draw(st.sampled_from([64000, 32000, 16000, 8000])),
            seed=draw(st.integers(0, 2 ** 16)))
        oh, ow = case.out_hw()
        from hypothesis import assume  # test-only dependency, as above

        assume(oh >= 1 and ow >= 1)
        return case

    return cases()


def random_case(rng, int8=None) -> BlockCase:
    """The same space as ``strategy()``, drawn from a numpy Generator (for the benchmark)."""
    while True:
        k = int(rng.choice([3, 5, 7]))
        if rng.random() < 0.5:
            p = int(rng.integers(0, k // 2 + 1))
            pads = (p, p, p, p)
        else:
            pads = tuple(int(v) for v in rng.integers(0, k, 4))
        quant = bool(rng.random() < 0.5) if int8 is None else int8
        acts = INT8_ACTIVATIONS if quant else FLOAT_ACTIVATIONS
        case = BlockCase(
            kind=str(rng.choice(["dw_pw", "pw_dw"])),
            channels=int(rng.integers(1, 65)), out_channels=int(rng.integers(1, 65)),
            h=int(rng.integers(1, 41)), w=int(rng.integers(1, 41)), k=k,
            stride=int(rng.choice([1, 2])), pads=pads,
            act=acts[int(rng.integers(len(acts)))], act2=acts[int(rng.integers(len(acts)))],
            int8=quant, l1_bytes=int(rng.choice([64000, 32000, 16000, 8000])),
            seed=int(rng.integers(0, 2 ** 16)))
        oh, ow = case.out_hw()
        if oh >= 1 and ow >= 1:
            return case


def run_case(case: BlockCase):
    """Compile and check one case. Returns the check dict, or None when the L1 budget is too
    small for the block (then the error must name the layer and the bytes)."""
    report = run_case_report(case)
    return report["check"] if report is not None else None


def run_case_report(case: BlockCase):
    """``run_case``, returning the whole report (fusion records included)."""
    model = case.model()
    if case.int8:
        model = quantized(model, samples=4, seed=case.seed)
    try:
        result = compile_model(model, hw=GAP8.with_l1_budget(case.l1_bytes), check=True,
                               seed=case.seed, fusion="all", layout="chw")
    except TilingError as exc:
        msg = str(exc)
        assert "cannot fit L1" in msg and " B, the L1 budget is " in msg, msg
        return None
    return result.report
