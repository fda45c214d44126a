"""FuseDepthwisePointwise / FusePointwiseDepthwise on tiny IR: structure of what they produce,
and every refusal rule with its recorded reason."""

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

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
                     "gap8.layouts": {"input": "CHW", "intermediate": "HWC", "output": "CHW"},
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
    assert dict(func.attrs["gap8.layouts"]) == {"input": "CHW", "intermediate": "CHW",
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
