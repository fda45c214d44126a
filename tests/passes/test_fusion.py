"""FuseDepthwisePointwise / FusePointwiseDepthwise on tiny IR: structure of what they produce,
and every refusal rule with its recorded reason."""

import time

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from tvm_gap8.kernels.epilogue import SUPPORTED_OPS
from tvm_gap8.kernels.patterns import BINARY_OPS, CHAIN_DEPTH, UNARY_OPS
from tvm_gap8.passes import (FuseDepthwisePointwise, FusePointwiseDepthwise, explain_unfused,
                             refusals_of)


def _composites(mod):
    return {gv.name_hint: f for gv, f in mod.functions_items()
            if isinstance(f, relax.Function) and f.attrs is not None and "Composite" in f.attrs}


# a DW(3x3) -> ReLU -> PW(1x1) -> ReLU6 chain with weights as parameters
@I.ir_module
class DwPw:
    @R.function
    def main(x: R.Tensor((1, 8, 10, 10), "float32"), wd: R.Tensor((8, 1, 3, 3), "float32"),
             wp: R.Tensor((16, 8, 1, 1), "float32")):
        with R.dataflow():
            a = R.nn.conv2d(x, wd, padding=[1, 1, 1, 1], groups=8)
            b = R.nn.relu(a)
            c = R.nn.conv2d(b, wp)
            d = R.clip(c, 0, 6)
            R.output(d)
        return d


@I.ir_module
class DwPwExpected:
    @R.function(private=True)
    def fused_relax_nn_conv2d_relax_nn_relu_relax_nn_conv2d_relax_clip(
            x: R.Tensor((1, 8, 10, 10), "float32"), wd: R.Tensor((8, 1, 3, 3), "float32"),
            wp: R.Tensor((16, 8, 1, 1), "float32")) -> R.Tensor((1, 16, 10, 10), "float32"):
        R.func_attr({"Composite": "gap8.dw_pw", "Primitive": True, "gap8.kind": "dw_pw",
                     "gap8.layouts": {"input": "CHW", "input_tile": "CHW", "intermediate": "HWC",
                                      "output": "CHW"},
                     "gap8.onnx_nodes": [], "gap8.layer": "<unnamed>+<unnamed>"})
        with R.dataflow():
            a = R.nn.conv2d(x, wd, padding=[1, 1, 1, 1], groups=8)
            b = R.nn.relu(a)
            c = R.nn.conv2d(b, wp)
            gv = R.clip(c, 0, 6)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 8, 10, 10), "float32"), wd: R.Tensor((8, 1, 3, 3), "float32"),
             wp: R.Tensor((16, 8, 1, 1), "float32")) -> R.Tensor((1, 16, 10, 10), "float32"):
        cls = DwPwExpected
        with R.dataflow():
            gv = cls.fused_relax_nn_conv2d_relax_nn_relu_relax_nn_conv2d_relax_clip(x, wd, wp)
            R.output(gv)
        return gv


def test_dw_pw_becomes_one_composite():
    out = FuseDepthwisePointwise()(DwPw)
    tvm.ir.assert_structural_equal(out, DwPwExpected)


def test_pw_dw_pass_leaves_dw_pw_chain_alone():
    out = FusePointwiseDepthwise()(DwPw)
    assert not _composites(out)


@I.ir_module
class PwDw:
    @R.function
    def main(x: R.Tensor((1, 4, 9, 9), "float32"), wp: R.Tensor((24, 4, 1, 1), "float32"),
             wd: R.Tensor((24, 1, 5, 5), "float32")):
        with R.dataflow():
            a = R.nn.conv2d(x, wp)
            b = R.clip(a, 0, 6)
            c = R.nn.conv2d(b, wd, strides=[2, 2], padding=[2, 2, 2, 2], groups=24)
            R.output(c)
        return c


def test_pw_dw_becomes_one_composite():
    out = FusePointwiseDepthwise()(PwDw)
    comps = _composites(out)
    assert len(comps) == 1
    (func,) = comps.values()
    assert func.attrs["Composite"] == "gap8.pw_dw"
    assert dict(func.attrs["gap8.layouts"]) == {"input": "CHW", "input_tile": "CHW", "intermediate": "CHW",
                                                "output": "CHW"}
    ops = [b.value.op.name for blk in func.body.blocks for b in blk.bindings]
    assert ops == ["relax.nn.conv2d", "relax.clip", "relax.nn.conv2d"]
    main_ops = [b.value.op for blk in out["main"].body.blocks for b in blk.bindings]
    assert len(main_ops) == 1 and isinstance(main_ops[0], relax.GlobalVar)


def test_sequential_composes_and_dw_joins_one_group():
    # inverted residual: PW -> DW -> PW. The DW pairs with its consumer (dw_pw runs first).
    @I.ir_module
    class IR:
        @R.function
        def main(x: R.Tensor((1, 4, 8, 8), "float32"), we: R.Tensor((24, 4, 1, 1), "float32"),
                 wd: R.Tensor((24, 1, 3, 3), "float32"), wp: R.Tensor((4, 24, 1, 1), "float32")):
            with R.dataflow():
                a = R.nn.conv2d(x, we)
                b = R.clip(a, 0, 6)
                c = R.nn.conv2d(b, wd, padding=[1, 1, 1, 1], groups=24)
                d = R.clip(c, 0, 6)
                e = R.nn.conv2d(d, wp)
                f = R.add(x, e)
                R.output(f)
            return f

    seq = tvm.transform.Sequential([FuseDepthwisePointwise(), FusePointwiseDepthwise()])
    out = seq(IR)
    kinds = sorted(str(f.attrs["gap8.kind"]) for f in _composites(out).values())
    assert kinds == ["dw_pw"]
    main_ops = [b.value.op.name if isinstance(b.value.op, tvm.ir.Op) else "group"
                for blk in out["main"].body.blocks for b in blk.bindings]
    assert main_ops == ["relax.nn.conv2d", "relax.clip", "group", "relax.add"]


def _refused_module(body):
    """Build main(x, ...) with `body(bb, x)` and run both fusion passes."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8, 10, 10), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(body(bb, x))
        bb.emit_func_output(out)
    mod = bb.get()
    return tvm.transform.Sequential([FuseDepthwisePointwise(), FusePointwiseDepthwise()])(mod)


def _w(*shape):
    return relax.const(np.ones(shape, "float32"))


def _dw(bb, x, c=8, k=3, stride=1, dilation=1):
    p = (k - 1) // 2 * dilation
    return bb.emit(relax.op.nn.conv2d(x, _w(c, 1, k, k), strides=stride, padding=p, groups=c,
                                      dilation=dilation))


def test_refuses_when_dw_output_has_another_consumer():
    def body(bb, x):
        d = bb.emit(relax.op.nn.relu(_dw(bb, x)))
        p = bb.emit(relax.op.nn.conv2d(d, _w(16, 8, 1, 1)))
        s = bb.emit(relax.op.sum(d, axis=[1], keepdims=True))  # second consumer
        return bb.emit(relax.op.add(p, s))

    out = _refused_module(body)
    assert not _composites(out)
    reasons = [r["reason"] for r in refusals_of(out)]
    assert any("another consumer" in r for r in reasons), reasons
    (unfused,) = explain_unfused(out)
    assert "another consumer" in unfused["reason"]


def test_refuses_squeeze_excite_between():
    def body(bb, x):
        d = bb.emit(relax.op.nn.relu(_dw(bb, x)))
        s = bb.emit(relax.op.mean(d, axis=[2, 3], keepdims=True))
        s = bb.emit(relax.op.sigmoid(bb.emit(relax.op.nn.conv2d(s, _w(8, 8, 1, 1)))))
        d = bb.emit(relax.op.multiply(d, s))
        return bb.emit(relax.op.nn.conv2d(d, _w(16, 8, 1, 1)))

    out = _refused_module(body)
    assert not _composites(out)
    (unfused,) = explain_unfused(out)
    assert "non-elementwise op, mean" in unfused["reason"]


@pytest.mark.parametrize("pw_kwargs, shape, expect", [
    ({}, (16, 8, 3, 3), "3x3, not a 1x1"),
    ({"strides": 2}, (16, 8, 1, 1), "stride [2, 2]"),
    ({"groups": 2}, (16, 4, 1, 1), "grouped"),
])
def test_refuses_pw_that_is_not_1x1_stride1(pw_kwargs, shape, expect):
    def body(bb, x):
        d = bb.emit(relax.op.nn.relu(_dw(bb, x)))
        pad = 1 if shape[2] == 3 else 0
        return bb.emit(relax.op.nn.conv2d(d, _w(*shape), padding=pad, **pw_kwargs))

    out = _refused_module(body)
    assert not _composites(out)
    assert any(expect in r["reason"] for r in refusals_of(out)), refusals_of(out)
    assert expect in explain_unfused(out)[0]["reason"]


def test_refuses_dilation_and_channel_multiplier():
    def dilated(bb, x):
        d = _dw(bb, x, dilation=2)
        return bb.emit(relax.op.nn.conv2d(d, _w(16, 8, 1, 1)))

    out = _refused_module(dilated)
    assert not _composites(out)
    assert "dilation" in explain_unfused(out)[0]["reason"]

    def multiplier(bb, x):
        d = bb.emit(relax.op.nn.conv2d(x, _w(16, 1, 3, 3), padding=1, groups=8))
        return bb.emit(relax.op.nn.conv2d(d, _w(16, 16, 1, 1)))

    out = _refused_module(multiplier)
    assert not _composites(out)
    assert any("channel multiplier 2" in r["reason"] for r in refusals_of(out))


def test_refuses_even_kernel_and_stride_3():
    def even(bb, x):
        d = bb.emit(relax.op.nn.conv2d(x, _w(8, 1, 2, 2), groups=8))
        return bb.emit(relax.op.nn.conv2d(d, _w(16, 8, 1, 1)))

    assert "kernel 2x2" in explain_unfused(_refused_module(even))[0]["reason"]

    def stride3(bb, x):
        d = _dw(bb, x, stride=3)
        return bb.emit(relax.op.nn.conv2d(d, _w(16, 8, 1, 1)))

    assert "stride [3, 3]" in explain_unfused(_refused_module(stride3))[0]["reason"]


def test_non_channel_constant_operand_is_refused():
    """add of a full [1,C,H,W] tensor between DW and PW is not an epilogue we can fuse."""
    def body(bb, x):
        d = bb.emit(relax.op.add(_dw(bb, x), relax.const(np.ones((1, 8, 10, 10), "float32"))))
        return bb.emit(relax.op.nn.conv2d(d, _w(16, 8, 1, 1)))

    out = _refused_module(body)
    assert not _composites(out)
    assert any("not a per-channel or scalar" in r["reason"] for r in refusals_of(out))


# -- float activations between the convs fuse; every refusal reason names its structure ------

def _pw(bb, d, c=8):
    return bb.emit(relax.op.nn.conv2d(d, _w(16, c, 1, 1)))


_FLOAT_ACTS = {
    "leakyrelu": lambda bb, x: bb.emit(relax.op.nn.leakyrelu(x, 0.1)),
    "prelu": lambda bb, x: bb.emit(relax.op.nn.prelu(
        x, relax.const(np.linspace(0.1, 0.8, 8).astype("float32")), axis=1)),
    "sigmoid": lambda bb, x: bb.emit(relax.op.sigmoid(x)),
    "silu": lambda bb, x: bb.emit(relax.op.multiply(x, bb.emit(relax.op.sigmoid(x)))),
    "tanh": lambda bb, x: bb.emit(relax.op.tanh(x)),
    # a chain: LeakyRelu -> Clip -> Tanh
    "chain": lambda bb, x: bb.emit(relax.op.tanh(bb.emit(relax.op.clip(
        bb.emit(relax.op.nn.leakyrelu(x, 0.2)), -1, 4)))),
}


@pytest.mark.parametrize("act", sorted(_FLOAT_ACTS))
def test_float_activation_between_dw_and_pw_fuses(act):
    out = _refused_module(lambda bb, x: _pw(bb, _FLOAT_ACTS[act](bb, _dw(bb, x))))
    (comp,) = _composites(out).values()
    assert comp.attrs["Composite"] == "gap8.dw_pw"
    assert not refusals_of(out) and not explain_unfused(out)


@pytest.mark.parametrize("act", sorted(_FLOAT_ACTS))
def test_float_activation_between_pw_and_dw_fuses(act):
    def body(bb, x):
        p = bb.emit(relax.op.nn.conv2d(x, _w(8, 8, 1, 1)))
        return _dw(bb, _FLOAT_ACTS[act](bb, p))

    out = _refused_module(body)
    (comp,) = _composites(out).values()
    assert comp.attrs["Composite"] == "gap8.pw_dw"


def test_prelu_slopes_along_width_are_not_per_channel():
    """ONNX broadcasts a 1-D PRelu slope along the last axis: the importer writes axis=3."""
    def body(bb, x):
        s = relax.const(np.linspace(0.1, 0.5, 10).astype("float32"))
        return _pw(bb, bb.emit(relax.op.nn.prelu(_dw(bb, x), s, axis=3)))

    out = _refused_module(body)
    assert not _composites(out)
    (r,) = [r for r in refusals_of(out) if r["kind"] == "dw_pw"]
    assert "prelu with 10 slopes along axis 3 is not per-channel" in r["reason"], r


def test_padded_pw_is_refused():
    out = _refused_module(lambda bb, x: bb.emit(relax.op.nn.conv2d(
        bb.emit(relax.op.nn.relu(_dw(bb, x))), _w(16, 8, 1, 1), padding=1)))
    assert not _composites(out)
    assert "the PW conv has padding [1, 1, 1, 1]" in explain_unfused(out)[0]["reason"]


def test_dw_as_last_layer_is_a_graph_output():
    out = _refused_module(lambda bb, x: bb.emit(relax.op.nn.relu(_dw(bb, x))))
    (unfused,) = explain_unfused(out)
    assert unfused["reason"] == "the DW output is a graph output (no PW follows it)", unfused


def test_two_pw_consumers_are_counted():
    def body(bb, x):
        d = bb.emit(relax.op.nn.relu(_dw(bb, x)))
        return bb.emit(relax.op.add(_pw(bb, d), _pw(bb, d)))

    out = _refused_module(body)
    assert not _composites(out)
    reasons = [r["reason"] for r in refusals_of(out)]
    assert reasons and all("has another consumer outside the pair" in r for r in reasons), reasons


def _q(bb, x):
    s, z = relax.const(0.05, "float32"), relax.const(0, "int8")
    return bb.emit(relax.op.dequantize(bb.emit(relax.op.quantize(x, s, z, out_dtype="int8")),
                                       s, z))


def test_int8_activation_chain_between_is_named():
    """DW -> Q/DQ -> sigmoid -> Q/DQ -> PW: the activation is quantized on its own."""
    def body(bb, x):
        a = bb.emit(relax.op.sigmoid(_q(bb, _dw(bb, x))))
        return _pw(bb, _q(bb, a))

    out = _refused_module(body)
    (unfused,) = explain_unfused(out)
    assert unfused["reason"].startswith("an int8 activation chain quantized on its own "
                                        "(sigmoid ("), unfused
    assert "2 quantize steps" in unfused["reason"] and "already fused" not in unfused["reason"]


def test_chain_longer_than_the_patterns():
    def body(bb, x):
        d = _dw(bb, x)
        for _ in range(CHAIN_DEPTH + 1):
            d = bb.emit(relax.op.tanh(d))
        return _pw(bb, d)

    out = _refused_module(body)
    assert not any(c.attrs["Composite"] == "gap8.dw_pw" for c in _composites(out).values())
    (unfused,) = explain_unfused(out)
    assert f"({CHAIN_DEPTH + 1} ops: tanh" in unfused["reason"]
    assert f"is deeper than the fusion patterns match ({CHAIN_DEPTH} steps)" in unfused["reason"]


def test_deep_silu_chain_matches_in_linear_time():
    """Seven chained SiLUs (x * sigmoid(x)): the bounded-depth pattern once took 39 s here
    (a failed operand redid the chain below per level); guarded, it takes ~0.3 s."""
    def body(bb, x):
        d = _dw(bb, x)
        for _ in range(CHAIN_DEPTH):
            d = bb.emit(relax.op.multiply(d, bb.emit(relax.op.sigmoid(d))))
        return _pw(bb, d)

    start = time.perf_counter()
    out = _refused_module(body)
    assert time.perf_counter() - start < 10
    (comp,) = _composites(out).values()
    assert comp.attrs["Composite"] == "gap8.dw_pw"


def test_two_tensor_chain_no_pattern_matches_is_named():
    """Elu as imported: relu(x) + -1 * relu(1 - exp(x)); both sides branch off x."""
    def body(bb, x):
        d = _dw(bb, x)
        e = bb.emit(relax.op.nn.relu(bb.emit(relax.op.subtract(
            relax.const(1.0, "float32"), bb.emit(relax.op.exp(d))))))
        e = bb.emit(relax.op.multiply(relax.const(-1.0, "float32"), e))
        return _pw(bb, bb.emit(relax.op.add(e, bb.emit(relax.op.nn.relu(d)))))

    out = _refused_module(body)
    (unfused,) = explain_unfused(out)
    assert unfused["reason"].startswith(
        "no fusion pattern matched the ops between the DW and the PW (exp"), unfused


def test_every_op_the_chain_pattern_matches_is_an_epilogue_op():
    """What the stage pattern lets into a composite, lowering must compute."""
    matched = set(UNARY_OPS) | set(BINARY_OPS) | {"relax.clip", "relax.nn.prelu"}
    assert matched <= set(SUPPORTED_OPS), matched - set(SUPPORTED_OPS)
