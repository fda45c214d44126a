"""Seeded ONNX builders for the networks and blocks we test and demo on.

Everything here is built with ``onnx.helper`` so that tests, examples and benchmarks need no
downloads. Weights are drawn from a seeded generator and scaled (He init) so activations stay
in a sane range through deep networks; BatchNormalization nodes are emitted the way exporters
write them, so the frontend's BN folding is exercised on every model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclass
class GraphBuilder:
    """Accumulates ONNX nodes/initializers with unique, readable names."""

    seed: int = 0
    nodes: list = field(default_factory=list)
    inits: list = field(default_factory=list)
    _count: dict = field(default_factory=dict)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)

    def name(self, base: str) -> str:
        n = self._count.get(base, 0)
        self._count[base] = n + 1
        return f"{base}_{n}"

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], base: str | None = None, **attrs) -> str:
        name = self.name(base or op.lower())
        out = name + "_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    # -- layers ----------------------------------------------------------------------------
    def conv(self, x, cin, cout, k, stride=1, groups=1, pads=None, bias=True, dilation=1,
             base="conv"):
        fan_in = (cin // groups) * k * k
        w = self.rng.standard_normal((cout, cin // groups, k, k)).astype(np.float32)
        w *= np.float32(np.sqrt(2.0 / fan_in))
        inputs = [x, self.const(base + "_w", w)]
        if bias:
            b = (0.1 * self.rng.standard_normal(cout)).astype(np.float32)
            inputs.append(self.const(base + "_b", b))
        if pads is None:
            p = (k - 1) // 2 * dilation
            pads = [p, p, p, p]
        return self.node("Conv", inputs, base, kernel_shape=[k, k], strides=[stride, stride],
                         pads=list(pads), group=groups, dilations=[dilation, dilation])

    def bn(self, x, c, base="bn"):
        scale = (1.0 + 0.1 * self.rng.standard_normal(c)).astype(np.float32)
        shift = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
        mean = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
        var = (1.0 + 0.1 * np.abs(self.rng.standard_normal(c))).astype(np.float32)
        ins = [x] + [self.const(f"{base}_{n}", v)
                     for n, v in (("scale", scale), ("shift", shift), ("mean", mean), ("var", var))]
        return self.node("BatchNormalization", ins, base, epsilon=1e-5)

    def act(self, x, kind: str | None):
        if kind is None or kind == "none":
            return x
        if kind == "relu":
            return self.node("Relu", [x], "relu")
        if kind == "relu6":
            lo = self.const("clip_min", np.array(0.0, np.float32))
            hi = self.const("clip_max", np.array(6.0, np.float32))
            return self.node("Clip", [x, lo, hi], "relu6")
        if kind == "hardswish":
            return self.node("HardSwish", [x], "hardswish")
        if kind == "hardswish_decomposed":
            # How PyTorch < 1.13 exporters write it: x * Clip(x + 3, 0, 6) / 6
            three = self.const("hs_three", np.array(3.0, np.float32))
            six = self.const("hs_six", np.array(6.0, np.float32))
            zero = self.const("hs_zero", np.array(0.0, np.float32))
            a = self.node("Add", [x, three], "hs_add")
            c = self.node("Clip", [a, zero, six], "hs_clip")
            m = self.node("Mul", [x, c], "hs_mul")
            return self.node("Div", [m, six], "hs_div")
        raise ValueError(f"unknown activation {kind!r}")

    def conv_bn_act(self, x, cin, cout, k, stride=1, groups=1, act="relu", pads=None, base="conv"):
        y = self.conv(x, cin, cout, k, stride, groups, pads=pads, bias=False, base=base)
        y = self.bn(y, cout, base=base + "_bn")
        return self.act(y, act)

    def model(self, x_name, x_shape, y, y_shape=None, name="net") -> onnx.ModelProto:
        def build(out_shape):
            graph = helper.make_graph(
                self.nodes, name,
                [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)],
                [helper.make_tensor_value_info(y, TensorProto.FLOAT, out_shape)],
                initializer=self.inits)
            m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="tvm_gap8.testing")
            m.ir_version = 8
            return m

        if y_shape is None:  # let ONNX shape inference fill in the output shape
            inferred = onnx.shape_inference.infer_shapes(build(None))
            vi = inferred.graph.output[0]
            y_shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        m = build(y_shape)
        onnx.checker.check_model(m)
        return m


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def mobilenet_v1(alpha: float = 0.25, resolution: int = 96, num_classes: int = 10,
                 seed: int = 0, act: str = "relu6") -> onnx.ModelProto:
    """MobileNetV1 (Howard et al. 2017): stem + 13 DW->PW pairs + pool + FC."""
    b = GraphBuilder(seed)
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
          [(1024, 2), (1024, 1)]
    c = _make_divisible(32 * alpha)
    y = b.conv_bn_act("input", 3, c, 3, stride=2, act=act, base="stem")
    for i, (cout, s) in enumerate(cfg):
        co = _make_divisible(cout * alpha)
        y = b.conv_bn_act(y, c, c, 3, stride=s, groups=c, act=act, base=f"b{i}_dw")
        y = b.conv_bn_act(y, c, co, 1, act=act, base=f"b{i}_pw")
        c = co
    y = b.node("GlobalAveragePool", [y], "pool")
    y = b.node("Flatten", [y], "flatten", axis=1)
    w = (b.rng.standard_normal((c, num_classes)) * np.sqrt(1.0 / c)).astype(np.float32)
    y = b.node("Gemm", [y, b.const("fc_w", w.T.copy()),
                        b.const("fc_b", np.zeros(num_classes, np.float32))], "fc", transB=1)
    return b.model("input", [1, 3, resolution, resolution], y, [1, num_classes],
                   name=f"mobilenet_v1_{alpha}_{resolution}")


def mobilenet_v2(alpha: float = 0.35, resolution: int = 96, num_classes: int = 10,
                 seed: int = 0, expansion: int = 6, blocks=None) -> onnx.ModelProto:
    """MobileNetV2-style network: inverted residuals (PW expand -> DW -> PW project, residual Add)."""
    b = GraphBuilder(seed)
    # (expansion t, out channels c, repeats n, first stride s), as in Sandler et al. 2018 Table 2
    blocks = blocks or [(1, 16, 1, 1), (expansion, 24, 2, 2), (expansion, 32, 3, 2),
                        (expansion, 64, 2, 2), (expansion, 96, 1, 1)]
    c = _make_divisible(32 * alpha)
    y = b.conv_bn_act("input", 3, c, 3, stride=2, act="relu6", base="stem")
    for bi, (t, cout, n, s) in enumerate(blocks):
        co = _make_divisible(cout * alpha)
        for r in range(n):
            stride = s if r == 0 else 1
            y = inverted_residual(b, y, c, co, stride, t, base=f"ir{bi}_{r}")
            c = co
    y = b.conv_bn_act(y, c, 128, 1, act="relu6", base="head")
    y = b.node("GlobalAveragePool", [y], "pool")
    y = b.node("Flatten", [y], "flatten", axis=1)
    w = (b.rng.standard_normal((num_classes, 128)) * np.sqrt(1.0 / 128)).astype(np.float32)
    y = b.node("Gemm", [y, b.const("fc_w", w), b.const("fc_b", np.zeros(num_classes, np.float32))],
               "fc", transB=1)
    return b.model("input", [1, 3, resolution, resolution], y, [1, num_classes],
                   name=f"mobilenet_v2_{alpha}_{resolution}")


def inverted_residual(b: GraphBuilder, x, cin, cout, stride, t, act="relu6", k=3, base="ir"):
    hidden = cin * t
    y = x
    if t != 1:
        y = b.conv_bn_act(y, cin, hidden, 1, act=act, base=base + "_expand")
    y = b.conv_bn_act(y, hidden, hidden, k, stride=stride, groups=hidden, act=act,
                      base=base + "_dw")
    y = b.conv_bn_act(y, hidden, cout, 1, act=None, base=base + "_project")
    if stride == 1 and cin == cout:
        y = b.node("Add", [x, y], base + "_add")
    return y


def dw_pw_block(cin=16, cout=32, h=16, w=16, k=3, stride=1, act="relu", act_after_pw=None,
                pads=None, seed=0, batchnorm=True) -> onnx.ModelProto:
    """One MobileNetV1 block: DW kxk (+BN) + act -> PW 1x1 (+BN) + act."""
    b = GraphBuilder(seed)
    if batchnorm:
        y = b.conv_bn_act("input", cin, cin, k, stride, groups=cin, act=act, pads=pads, base="dw")
        y = b.conv_bn_act(y, cin, cout, 1, act=act_after_pw, base="pw")
    else:
        y = b.act(b.conv("input", cin, cin, k, stride, groups=cin, pads=pads, base="dw"), act)
        y = b.act(b.conv(y, cin, cout, 1, base="pw"), act_after_pw)
    return b.model("input", [1, cin, h, w], y, name="dw_pw_block")


def pw_dw_block(cin=8, hidden=48, h=16, w=16, k=3, stride=1, act="relu6", act_after_dw="relu6",
                pads=None, seed=0) -> onnx.ModelProto:
    """Expansion half of an inverted residual: PW 1x1 + act -> DW kxk + act."""
    b = GraphBuilder(seed)
    y = b.conv_bn_act("input", cin, hidden, 1, act=act, base="pw")
    y = b.conv_bn_act(y, hidden, hidden, k, stride, groups=hidden, act=act_after_dw, pads=pads,
                      base="dw")
    return b.model("input", [1, cin, h, w], y, name="pw_dw_block")


def inverted_residual_block(cin=16, h=16, w=16, t=6, k=3, seed=0) -> onnx.ModelProto:
    b = GraphBuilder(seed)
    y = inverted_residual(b, "input", cin, cin, 1, t, k=k, base="ir")
    return b.model("input", [1, cin, h, w], y, name="inverted_residual")


def squeeze_excite_block(c=16, h=16, w=16, seed=0) -> onnx.ModelProto:
    """MobileNetV3-style block: DW + hardswish -> squeeze-excite -> PW (the pair cannot fuse)."""
    b = GraphBuilder(seed)
    y = b.conv_bn_act("input", c, c, 3, 1, groups=c, act="hardswish", base="dw")
    s = b.node("GlobalAveragePool", [y], "se_pool")
    s = b.act(b.conv(s, c, max(c // 4, 1), 1, base="se_reduce"), "relu")
    s = b.conv(s, max(c // 4, 1), c, 1, base="se_expand")
    s = b.node("HardSigmoid", [s], "se_gate", alpha=1.0 / 6, beta=0.5)
    y = b.node("Mul", [y, s], "se_scale")
    y = b.conv_bn_act(y, c, 24, 1, act=None, base="pw")
    return b.model("input", [1, c, h, w], y, name="mbv3_se_block")
