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
        strides = list(stride) if isinstance(stride, (tuple, list)) else [stride, stride]
        return self.node("Conv", inputs, base, kernel_shape=[k, k], strides=strides,
                         pads=list(pads), group=groups, dilations=[dilation, dilation])

    def bn(self, x, c, base="bn"):
        scale = (1.0 + 0.1 * self.rng.standard_normal(c)).astype(np.float32)
        shift = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
        mean = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
        var = (1.0 + 0.1 * np.abs(self.rng.standard_normal(c))).astype(np.float32)
        ins = [x] + [self.const(f"{base}_{n}", v)
                     for n, v in (("scale", scale), ("shift", shift), ("mean", mean), ("var", var))]
        return self.node("BatchNormalization", ins, base, epsilon=1e-5)

    def act(self, x, kind: str | None, channels: int | None = None):
        """``kind`` applied to ``x`` (PRelu needs ``channels``: one slope per channel)."""
        if kind is None or kind == "none":
            return x
        if kind in self._SIMPLE_ACTS:
            op, attrs = self._SIMPLE_ACTS[kind]
            return self.node(op, [x], kind, **attrs)
        if kind == "relu6":
            lo = self.const("clip_min", np.array(0.0, np.float32))
            hi = self.const("clip_max", np.array(6.0, np.float32))
            return self.node("Clip", [x, lo, hi], "relu6")
        if kind == "prelu":
            if channels is None:
                raise ValueError("prelu needs the channel count (one slope per channel)")
            slope = self.rng.uniform(0.05, 0.5, (channels, 1, 1)).astype(np.float32)
            return self.node("PRelu", [x, self.const("prelu_slope", slope)], "prelu")
        if kind == "silu":  # how exporters write SiLU/Swish: x * Sigmoid(x)
            return self.node("Mul", [x, self.node("Sigmoid", [x], "silu_sigmoid")], "silu")
        if kind == "hardswish_decomposed":
            # How PyTorch < 1.13 exporters write it: x * Clip(x + 3, 0, 6) / 6
            three = self.const("hs_three", np.array(3.0, np.float32))
            six = self.const("hs_six", np.array(6.0, np.float32))
            zero = self.const("hs_zero", np.array(0.0, np.float32))
            a = self.node("Add", [x, three], "hs_add")
            c = self.node("Clip", [a, zero, six], "hs_clip")
            m = self.node("Mul", [x, c], "hs_mul")
            return self.node("Div", [m, six], "hs_div")
        if kind == "hardswish_keras":
            # How tf2onnx writes a Keras hard_swish: x * (relu6(x + 3) * (1/6)); int8: the
            # relu6(x + 3) table, the * 1/6 table (merged into one), then the product
            three = self.const("hs_three", np.array(3.0, np.float32))
            zero = self.const("hs_zero", np.array(0.0, np.float32))
            six = self.const("hs_six", np.array(6.0, np.float32))
            sixth = self.const("hs_sixth", np.array(1.0 / 6.0, np.float32))
            r6 = self.node("Clip", [self.node("Add", [x, three], "hs_add"), zero, six], "hs_relu6")
            return self.node("Mul", [x, self.node("Mul", [r6, sixth], "hs_scale")], "hs_mul")
        raise ValueError(f"unknown activation {kind!r}")

    #: activations that are one ONNX node: kind -> (op type, attributes)
    _SIMPLE_ACTS = {"relu": ("Relu", {}), "hardswish": ("HardSwish", {}),
                    "leakyrelu": ("LeakyRelu", {"alpha": 0.1}), "sigmoid": ("Sigmoid", {}),
                    "tanh": ("Tanh", {}), "elu": ("Elu", {"alpha": 1.0}),
                    "hardsigmoid": ("HardSigmoid", {"alpha": 0.2, "beta": 0.5})}

    def conv_bn_act(self, x, cin, cout, k, stride=1, groups=1, act="relu", pads=None, base="conv"):
        y = self.conv(x, cin, cout, k, stride, groups, pads=pads, bias=False, base=base)
        y = self.bn(y, cout, base=base + "_bn")
        return self.act(y, act, cout)

    def model(self, x_name, x_shape, y, y_shape=None, name="net",
              opset: int = OPSET) -> onnx.ModelProto:
        """A model of input ``x_name``; ``y`` one output name or a list of them (graph outputs
        in that order; ``y_shape`` then a list too, or None to infer them)."""
        ys = list(y) if isinstance(y, (list, tuple)) else [y]
        shapes = list(y_shape) if isinstance(y, (list, tuple)) and y_shape is not None else \
            [y_shape] * len(ys)

        def build(out_shapes):
            graph = helper.make_graph(
                self.nodes, name,
                [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)],
                [helper.make_tensor_value_info(o, TensorProto.FLOAT, s)
                 for o, s in zip(ys, out_shapes)],
                initializer=self.inits)
            m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="tvm_gap8.testing")
            m.ir_version = 8
            return m

        if any(s is None for s in shapes):  # let ONNX shape inference fill in the output shapes
            inferred = onnx.shape_inference.infer_shapes(build([None] * len(ys)))
            shapes = [s if s is not None else [d.dim_value for d in vi.type.tensor_type.shape.dim]
                      for s, vi in zip(shapes, inferred.graph.output)]
        m = build(shapes)
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
        y = b.act(b.conv("input", cin, cin, k, stride, groups=cin, pads=pads, base="dw"), act,
                  cin)
        y = b.act(b.conv(y, cin, cout, 1, base="pw"), act_after_pw, cout)
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


def chain_block(cin=8, cout=8, h=12, w=12, t=6, k=3, stride=1, seed=0) -> onnx.ModelProto:
    """One inverted residual that always has its expansion PW (even at ``t`` = 1): PW + ReLU6
    -> DW kxk + ReLU6 -> PW; the residual Add when the stride is 1 and ``cin == cout``."""
    b = GraphBuilder(seed)
    hidden = cin * t
    y = b.conv_bn_act("input", cin, hidden, 1, act="relu6", base="ir_expand")
    y = b.conv_bn_act(y, hidden, hidden, k, stride=stride, groups=hidden, act="relu6",
                      base="ir_dw")
    y = b.conv_bn_act(y, hidden, cout, 1, act=None, base="ir_project")
    if stride == 1 and cin == cout:
        y = b.node("Add", ["input", y], "ir_add")
    return b.model("input", [1, cin, h, w], y, name="chain_block")


def classifier_head(seed=0) -> onnx.ModelProto:
    """MobileNetV3's classifier on [1, F] tensors: conv -> pool -> flatten -> Gemm -> HardSwish
    -> Gemm."""
    b = GraphBuilder(seed)
    y = b.conv_bn_act("input", 3, 16, 3, stride=2, act="relu", base="stem")
    y = b.node("Flatten", [b.node("GlobalAveragePool", [y], "pool")], "flatten", axis=1)
    w1 = (b.rng.standard_normal((32, 16)) * 0.25).astype("float32")
    y = b.node("Gemm", [y, b.const("fc1_w", w1), b.const("fc1_b", np.zeros(32, "float32"))],
               "fc1", transB=1)
    y = b.node("HardSwish", [y], "hswish")
    w2 = (b.rng.standard_normal((10, 32)) * 0.25).astype("float32")
    y = b.node("Gemm", [y, b.const("fc2_w", w2), b.const("fc2_b", np.zeros(10, "float32"))],
               "fc2", transB=1)
    return b.model("input", [1, 3, 16, 16], y, [1, 10])


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


# -- a float text detector whose output Sigmoid is saturated ------------------------------------
# The user report this reproduces: a MobileNetV3 + FPN text detector whose Sigmoid outputs are
# ~3e-6 on random input. A pre-activation near -13 gives sigmoid(-13) = 2.3e-6.
SATURATING_BIAS = -13.0


def _resize_x2(b: GraphBuilder, x, mode: str):
    """ONNX Resize by scales [1, 1, 2, 2] (the form PyTorch exports for nn.Upsample)."""
    scales = b.const("up_scales", np.array([1.0, 1.0, 2.0, 2.0], np.float32))
    attrs = {"mode": mode}
    if mode == "nearest":
        attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        attrs.update(coordinate_transformation_mode="half_pixel")
    return b.node("Resize", [x, "", scales], f"up_{mode}", **attrs)


def _conv_transpose_x2(b: GraphBuilder, x, cin, cout, base="deconv"):
    """ConvTranspose k2 s2 (He-scaled, with bias): the learned x2 upsampling of DB-style heads."""
    w = (b.rng.standard_normal((cin, cout, 2, 2)) * np.sqrt(2.0 / cin)).astype(np.float32)
    bias = (0.1 * b.rng.standard_normal(cout)).astype(np.float32)
    return b.node("ConvTranspose", [x, b.const(base + "_w", w), b.const(base + "_b", bias)],
                  base, kernel_shape=[2, 2], strides=[2, 2])


def _se(b: GraphBuilder, x, c, base="se"):
    s = b.node("GlobalAveragePool", [x], base + "_pool")
    s = b.act(b.conv(s, c, max(c // 4, 8), 1, base=base + "_reduce"), "relu")
    s = b.conv(s, max(c // 4, 8), c, 1, base=base + "_expand")
    s = b.node("HardSigmoid", [s], base + "_gate", alpha=1.0 / 6, beta=0.5)
    return b.node("Mul", [x, s], base + "_scale")


def _mbv3_backbone(b: GraphBuilder):
    """Stem (s2) + three DW/PW stages; returns the 1/2, 1/4 and 1/8 feature maps."""
    y = b.conv_bn_act("input", 3, 16, 3, stride=2, act="hardswish", base="stem")
    y = b.conv_bn_act(y, 16, 16, 3, groups=16, act="hardswish", base="b0_dw")
    c1 = b.conv_bn_act(y, 16, 16, 1, act=None, base="b0_pw")  # 1/2
    y = b.conv_bn_act(c1, 16, 48, 1, act="hardswish", base="b1_expand")
    y = b.conv_bn_act(y, 48, 48, 3, stride=2, groups=48, act="hardswish", base="b1_dw")
    y = _se(b, y, 48, base="b1_se")
    c2 = b.conv_bn_act(y, 48, 24, 1, act=None, base="b1_pw")  # 1/4
    y = b.conv_bn_act(c2, 24, 72, 1, act="hardswish", base="b2_expand")
    y = b.conv_bn_act(y, 72, 72, 3, stride=2, groups=72, act="hardswish", base="b2_dw")
    c3 = b.conv_bn_act(y, 72, 40, 1, act=None, base="b2_pw")  # 1/8
    return c1, c2, c3


def text_detector(resolution: int = 96, seed: int = 0,
                  final_bias: float = SATURATING_BIAS) -> onnx.ModelProto:
    """Small MobileNetV3 + FPN text detector (DB-net style) with a saturated Sigmoid output.

    Backbone: conv stem s2, DW/PW blocks with HardSwish, one squeeze-excite, strides 2 down to
    1/8. Decoder: 1x1 lateral convs, nearest Resize x2 -> Concat -> 3x3 conv, linear Resize x2
    -> Concat -> 3x3 conv, ConvTranspose s2 back to full resolution, 1x1 conv with a large
    negative bias (``final_bias``) and Sigmoid: outputs ~1e-6 like a model that sees no text.
    ``resolution`` must be a multiple of 8.
    """
    b = GraphBuilder(seed)
    c1, c2, c3 = _mbv3_backbone(b)
    p3 = b.conv(c3, 40, 16, 1, base="lat3")
    p2 = b.node("Concat", [_resize_x2(b, p3, "nearest"), b.conv(c2, 24, 16, 1, base="lat2")],
                "cat2", axis=1)
    p2 = b.act(b.conv(p2, 32, 16, 3, base="smooth2"), "hardswish")
    p1 = b.node("Concat", [_resize_x2(b, p2, "linear"), b.conv(c1, 16, 16, 1, base="lat1")],
                "cat1", axis=1)
    p1 = b.act(b.conv(p1, 32, 16, 3, base="smooth1"), "relu")
    y = b.act(_conv_transpose_x2(b, p1, 16, 8), "relu")
    # Final 1x1: small weights (so the pre-activation spread is ~1) and the saturating bias.
    w = (0.1 * b.rng.standard_normal((1, 8, 1, 1))).astype(np.float32)
    y = b.node("Conv", [y, b.const("head_w", w),
                        b.const("head_b", np.array([final_bias], np.float32))], "head",
               kernel_shape=[1, 1])
    y = b.node("Sigmoid", [y], "prob")
    return b.model("input", [1, 3, resolution, resolution], y, name=f"text_detector_{resolution}")


def saturated_sigmoid_block(cin=8, cout=4, h=16, w=16, seed=0,
                            biases=(-14.0, 14.0)) -> onnx.ModelProto:
    """Conv 3x3 -> Sigmoid with every output saturated: output channel c gets bias
    ``biases[c % len(biases)]`` (|bias| >> the conv's spread of a few units, so
    sigmoid is ~1e-6 near 0 or ~1 - 1e-6 near 1)."""
    b = GraphBuilder(seed)
    wt = (b.rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
    bias = np.array([biases[c % len(biases)] for c in range(cout)], np.float32)
    y = b.node("Conv", ["input", b.const("conv_w", wt), b.const("conv_b", bias)], "conv",
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = b.node("Sigmoid", [y], "sigmoid")
    return b.model("input", [1, cin, h, w], y, name="saturated_sigmoid")


# -- a PaddleOCR-style text recognizer (PPLCNet backbone + attention neck), opset 12 ---------
# PaddleOCR's rec backbone keeps the text line's width: after the stem, DW strides are (2, 2)
# once, then (2, 1) (halve the height only) and (1, 2) (the width only). Paddle2ONNX at opset
# 12 has no HardSwish op (it is opset 14) and no LayerNormalization (opset 17): it writes
# x * HardSigmoid(x) and the LayerNorm as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add.

#: (kernel, out channels at scale 1, DW stride (h, w), squeeze-excite) per block, after a stem
#: of 16 channels at scale 1: PP-LCNet's progression, strided the way PaddleOCR's rec net is
RECOGNIZER_BLOCKS = ((3, 32, (1, 1), False), (3, 64, (2, 2), False), (3, 64, (1, 1), False),
                     (3, 128, (2, 1), False), (3, 128, (1, 1), False), (5, 256, (1, 2), False),
                     (5, 256, (1, 1), True), (5, 512, (2, 1), True), (5, 512, (1, 1), True))


def _hardswish_opset12(b: GraphBuilder, x, base="hs"):
    """HardSwish the way opset-12 exporters write it: x * HardSigmoid(x) (alpha 1/6, beta 1/2)."""
    gate = b.node("HardSigmoid", [x], base + "_hsig", alpha=1.0 / 6, beta=0.5)
    return b.node("Mul", [x, gate], base + "_mul")


def _conv_bn_hs(b: GraphBuilder, x, cin, cout, k, stride=(1, 1), groups=1, base="conv"):
    """Conv (no bias) -> BatchNormalization -> HardSwish (opset-12 form); ``stride`` (h, w)."""
    fan_in = (cin // groups) * k * k
    w = (b.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / fan_in))
    p = (k - 1) // 2
    y = b.node("Conv", [x, b.const(base + "_w", w.astype(np.float32))], base,
               kernel_shape=[k, k], strides=list(stride), pads=[p, p, p, p], group=groups)
    return _hardswish_opset12(b, b.bn(y, cout, base=base + "_bn"), base=base + "_hs")


def _se_lcnet(b: GraphBuilder, x, c, base="se"):
    """PP-LCNet's squeeze-excite: GAP -> 1x1 -> ReLU -> 1x1 -> HardSigmoid -> Mul."""
    s = b.node("GlobalAveragePool", [x], base + "_pool")
    s = b.act(b.conv(s, c, max(c // 4, 4), 1, base=base + "_reduce"), "relu")
    s = b.conv(s, max(c // 4, 4), c, 1, base=base + "_expand")
    s = b.node("HardSigmoid", [s], base + "_gate", alpha=1.0 / 6, beta=0.5)
    return b.node("Mul", [x, s], base + "_scale")


def _linear(b: GraphBuilder, x, din, dout, base):
    """Paddle's Linear as Paddle2ONNX writes it: MatMul by a [din, dout] weight, then Add."""
    w = (b.rng.standard_normal((din, dout)) * np.sqrt(1.0 / din)).astype(np.float32)
    bias = (0.1 * b.rng.standard_normal(dout)).astype(np.float32)
    return b.node("Add", [b.node("MatMul", [x, b.const(base + "_w", w)], base),
                          b.const(base + "_b", bias)], base + "_bias")


def _layer_norm_opset12(b: GraphBuilder, x, c, base="ln", eps=1e-5):
    """LayerNorm over the last axis as Paddle2ONNX writes it at opset 12."""
    mean = b.node("ReduceMean", [x], base + "_mean", axes=[-1], keepdims=1)
    d = b.node("Sub", [x, mean], base + "_sub")
    sq = b.node("Pow", [d, b.const(base + "_two", np.array(2.0, np.float32))], base + "_pow")
    var = b.node("ReduceMean", [sq], base + "_var", axes=[-1], keepdims=1)
    var = b.node("Add", [var, b.const(base + "_eps", np.array(eps, np.float32))], base + "_addeps")
    y = b.node("Div", [d, b.node("Sqrt", [var], base + "_sqrt")], base + "_div")
    gamma = (1.0 + 0.1 * b.rng.standard_normal(c)).astype(np.float32)
    beta = (0.1 * b.rng.standard_normal(c)).astype(np.float32)
    y = b.node("Mul", [y, b.const(base + "_gamma", gamma)], base + "_scale")
    return b.node("Add", [y, b.const(base + "_beta", beta)], base + "_shift")


def _attention_neck(b: GraphBuilder, seq, c, base="attn"):
    """Pre-norm single-head self-attention with a residual: LN -> Q, K, V -> softmax(QK^T/sqrt(c))V
    -> projection -> + input."""
    x = _layer_norm_opset12(b, seq, c, base=base + "_ln")
    q, k, v = (_linear(b, x, c, c, base=f"{base}_{n}") for n in "qkv")
    kt = b.node("Transpose", [k], base + "_kT", perm=[0, 2, 1])
    scores = b.node("MatMul", [q, kt], base + "_scores")
    scale = b.const(base + "_scale", np.array(1.0 / np.sqrt(c), np.float32))
    probs = b.node("Softmax", [b.node("Mul", [scores, scale], base + "_scaled")], base + "_softmax",
                   axis=-1)
    y = _linear(b, b.node("MatMul", [probs, v], base + "_context"), c, c, base=base + "_proj")
    return b.node("Add", [seq, y], base + "_residual")


def text_recognizer(height: int = 48, width: int = 320, scale: float = 0.25, seed: int = 0,
                    opset: int = 12, num_classes: int = 37, blocks=RECOGNIZER_BLOCKS,
                    ) -> onnx.ModelProto:
    """PaddleOCR-style CTC text recognizer: PP-LCNet backbone, attention neck, classifier.

    Backbone: 3x3 conv stem stride 2 + BN + HardSwish, then ``blocks`` of DW kxk (stride (h, w):
    (2, 2), (2, 1), (1, 2) as PaddleOCR's rec net uses) -> BN -> HardSwish -> [squeeze-excite]
    -> PW 1x1 -> BN -> HardSwish, channels = PP-LCNet's x ``scale`` (multiples of 8). Neck: the
    remaining height averaged (ReduceMean over H), the map read as a sequence of W steps
    (Reshape + Transpose to [1, W, C]), LayerNorm, self-attention (MatMul, Softmax) with a
    residual. Head: MatMul + Add to ``num_classes`` logits per step: output [1, W', classes].
    ``opset`` 12 writes HardSwish and LayerNorm as Paddle2ONNX does at that opset.
    """
    b = GraphBuilder(seed)
    c = _make_divisible(16 * scale)
    y = _conv_bn_hs(b, "input", 3, c, 3, stride=(2, 2), base="stem")
    h, w = (height + 1) // 2, (width + 1) // 2
    for i, (k, cout, stride, se) in enumerate(blocks):
        co = _make_divisible(cout * scale)
        y = _conv_bn_hs(b, y, c, c, k, stride=stride, groups=c, base=f"b{i}_dw")
        h, w = (h - 1) // stride[0] + 1, (w - 1) // stride[1] + 1
        if se:
            y = _se_lcnet(b, y, c, base=f"b{i}_se")
        y = _conv_bn_hs(b, y, c, co, 1, base=f"b{i}_pw")
        c = co
    y = b.node("ReduceMean", [y], "neck_pool", axes=[2], keepdims=1)  # [1, C, 1, W]
    y = b.node("Reshape", [y, b.const("neck_shape", np.array([1, c, w], np.int64))], "neck_seq")
    y = b.node("Transpose", [y], "neck_steps", perm=[0, 2, 1])  # [1, W, C]
    y = _attention_neck(b, y, c, base="attn")
    y = _linear(b, y, c, num_classes, base="head")
    return b.model("input", [1, 3, height, width], y, [1, w, num_classes],
                   name=f"text_recognizer_{height}x{width}", opset=opset)


# -- several outputs, channel padding, SiLU between the convs -----------------------------------

def detector_head(resolution: int = 32, classes: int = 3, anchors: int = 2,
                  seed: int = 0) -> onnx.ModelProto:
    """A small single-shot detector (SSD-lite / BlazeFace style) with three outputs, in order:
    ``scores`` [1, anchors*classes, R/8, R/8] (1x1 conv + Sigmoid on the 1/8 map), ``boxes``
    [1, anchors*4, R/8, R/8] (DW 3x3 + PW 1x1 on the 1/8 map, linear) and ``scores_coarse``
    [1, anchors*classes, R/16, R/16] (1x1 conv + Sigmoid on the 1/16 map). Backbone: conv stem
    s2 and three DW/PW blocks of stride 2. ``resolution`` a multiple of 16."""
    b = GraphBuilder(seed)
    y = b.conv_bn_act("input", 3, 8, 3, stride=2, act="relu", base="stem")
    y = b.conv_bn_act(y, 8, 8, 3, stride=2, groups=8, act="relu", base="b0_dw")
    y = b.conv_bn_act(y, 8, 16, 1, act="relu", base="b0_pw")
    y = b.conv_bn_act(y, 16, 16, 3, stride=2, groups=16, act="relu", base="b1_dw")
    f1 = b.conv_bn_act(y, 16, 24, 1, act="relu", base="b1_pw")  # 1/8
    y = b.conv_bn_act(f1, 24, 24, 3, stride=2, groups=24, act="relu", base="b2_dw")
    f2 = b.conv_bn_act(y, 24, 32, 1, act="relu", base="b2_pw")  # 1/16
    scores = b.node("Sigmoid", [b.conv(f1, 24, anchors * classes, 1, base="cls1")], "scores")
    boxes = b.conv(b.conv(f1, 24, 24, 3, groups=24, base="box_dw"), 24, anchors * 4, 1,
                   base="box_pw")
    coarse = b.node("Sigmoid", [b.conv(f2, 32, anchors * classes, 1, base="cls2")],
                    "scores_coarse")
    return b.model("input", [1, 3, resolution, resolution], [scores, boxes, coarse],
                   name=f"detector_head_{resolution}")


def pad_add_block(cin=8, cout=16, h=16, w=16, seed=0) -> onnx.ModelProto:
    """A ResNet-style shortcut that widens by channel padding (constant Pad of zeros on the
    channel axis, as exporters write ``F.pad`` of the channels) added to a DW/PW branch:
    Add(PW(DW(x)), Pad(x, channels cin -> cout)) -> ReLU."""
    b = GraphBuilder(seed)
    y = b.conv_bn_act("input", cin, cin, 3, groups=cin, act="relu", base="dw")
    y = b.conv_bn_act(y, cin, cout, 1, act=None, base="pw")
    pads = b.const("pads", np.array([0, 0, 0, 0, 0, cout - cin, 0, 0], np.int64))
    short = b.node("Pad", ["input", pads], "channel_padding", mode="constant")
    y = b.node("Relu", [b.node("Add", [y, short], "add")], "relu")
    return b.model("input", [1, cin, h, w], y, name="pad_add_block")


def efficientnet_block(cin=8, hidden=32, cout=16, h=16, w=16, k=3, stride=1,
                       seed=0) -> onnx.ModelProto:
    """EfficientNet-style MBConv without squeeze-excite: PW expand + BN + SiLU (x * Sigmoid(x),
    int8: a table and a product between the convs) -> DW kxk + BN + SiLU -> PW project + BN."""
    b = GraphBuilder(seed)
    y = b.conv_bn_act("input", cin, hidden, 1, act="silu", base="expand")
    y = b.conv_bn_act(y, hidden, hidden, k, stride, groups=hidden, act="silu", base="dw")
    y = b.conv_bn_act(y, hidden, cout, 1, act=None, base="project")
    return b.model("input", [1, cin, h, w], y, name="efficientnet_block")


def efficientnet_small(resolution: int = 32, seed: int = 0) -> onnx.ModelProto:
    """A few EfficientNet-style MBConv blocks (SiLU everywhere) after a conv stem."""
    b = GraphBuilder(seed)
    y = b.conv_bn_act("input", 3, 8, 3, stride=2, act="silu", base="stem")
    c = 8
    for i, (t, co, s) in enumerate([(1, 8, 1), (4, 16, 2), (4, 16, 1), (4, 24, 2)]):
        hidden = c * t
        x = y
        if t != 1:
            y = b.conv_bn_act(y, c, hidden, 1, act="silu", base=f"m{i}_expand")
        y = b.conv_bn_act(y, hidden, hidden, 3, s, groups=hidden, act="silu", base=f"m{i}_dw")
        y = b.conv_bn_act(y, hidden, co, 1, act=None, base=f"m{i}_project")
        if s == 1 and c == co:
            y = b.node("Add", [x, y], f"m{i}_add")
        c = co
    return b.model("input", [1, 3, resolution, resolution], y, name="efficientnet_small")


def two_input_block(c=8, h=8, w=8, seed=0) -> onnx.ModelProto:
    """Two inputs and two outputs: ``a`` through DW 3x3 + ReLU -> PW, ``b`` added to it
    (``sum``, then 1x1 conv ``head``); outputs ``head`` [1, c, h, w] and ``pooled``
    [1, c, 1, 1] (global average pool of the sum), in that order."""
    b = GraphBuilder(seed)
    y = b.conv_bn_act("a", c, c, 3, groups=c, act="relu", base="dw")
    y = b.conv_bn_act(y, c, c, 1, act=None, base="pw")
    s = b.node("Add", [y, "b"], "sum")
    head = b.conv(s, c, c, 1, base="head")
    pooled = b.node("GlobalAveragePool", [s], "pooled")
    graph = helper.make_graph(
        b.nodes, "two_input_block",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, h, w]) for n in "ab"],
        [helper.make_tensor_value_info(head, TensorProto.FLOAT, [1, c, h, w]),
         helper.make_tensor_value_info(pooled, TensorProto.FLOAT, [1, c, 1, 1])],
        initializer=b.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="tvm_gap8.testing")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


# -- Keras-style NHWC input and an FPN decoder with Add joins --------------------------------

def keras_mobilenet_nhwc(alpha: float = 0.25, resolution: int = 32, num_classes: int = 10,
                         blocks=((64, 1), (128, 2), (128, 1), (256, 2)), softmax: bool = True,
                         seed: int = 0) -> onnx.ModelProto:
    """A MobileNetV1 the way tf2onnx exports a Keras model: the input is NHWC
    [1, R, R, 3] and a Transpose (perm 0, 3, 1, 2) follows it; stem, DW/PW pairs (ReLU6 as
    Clip), global average pool, then Reshape to [1, C] (not Flatten), Gemm and (``softmax``)
    Softmax."""
    b = GraphBuilder(seed)
    y = b.node("Transpose", ["input"], "input_nchw", perm=[0, 3, 1, 2])
    c = _make_divisible(32 * alpha)
    y = b.conv_bn_act(y, 3, c, 3, stride=2, act="relu6", base="stem")
    for i, (cout, s) in enumerate(blocks):
        co = _make_divisible(cout * alpha)
        y = b.conv_bn_act(y, c, c, 3, stride=s, groups=c, act="relu6", base=f"b{i}_dw")
        y = b.conv_bn_act(y, c, co, 1, act="relu6", base=f"b{i}_pw")
        c = co
    y = b.node("GlobalAveragePool", [y], "pool")
    y = b.node("Reshape", [y, b.const("flat_shape", np.array([1, c], np.int64))], "flat")
    w = (b.rng.standard_normal((num_classes, c)) * np.sqrt(1.0 / c)).astype(np.float32)
    y = b.node("Gemm", [y, b.const("fc_w", w), b.const("fc_b", np.zeros(num_classes,
                                                                          np.float32))],
               "fc", transB=1)
    if softmax:
        y = b.node("Softmax", [y], "probs", axis=-1)
    return b.model("input", [1, resolution, resolution, 3], y, [1, num_classes],
                   name=f"keras_mobilenet_nhwc_{resolution}")


def fpn_decoder(resolution: int = 96, width: int = 16, seed: int = 0) -> onnx.ModelProto:
    """MobileNetV3-style backbone (1/2, 1/4, 1/8 maps) and an FPN decoder joined by Adds:
    lateral 1x1 convs to ``width`` channels, top-down nearest Resize x2 + Add at each level
    (every lateral and every merged map live at once), a 3x3 DW/PW smoothing per level, the
    coarser smoothed maps upsampled back to 1/2 and added (a sum of three), 1x1 head +
    Sigmoid. ``resolution`` a multiple of 8."""
    b = GraphBuilder(seed)
    c1, c2, c3 = _mbv3_backbone(b)
    l1, l2, l3 = (b.conv(c, ci, width, 1, base=f"lat{i}")
                  for i, (c, ci) in enumerate(((c1, 16), (c2, 24), (c3, 40)), start=1))
    p3 = l3
    p2 = b.node("Add", [l2, _resize_x2(b, p3, "nearest")], "top_down2")
    p1 = b.node("Add", [l1, _resize_x2(b, p2, "nearest")], "top_down1")
    s = []
    for i, p in ((1, p1), (2, p2), (3, p3)):
        q = b.conv_bn_act(p, width, width, 3, groups=width, act="relu", base=f"smooth{i}_dw")
        s.append(b.conv_bn_act(q, width, width, 1, act="relu", base=f"smooth{i}_pw"))
    s3_up = _resize_x2(b, _resize_x2(b, s[2], "nearest"), "nearest")
    y = b.node("Add", [b.node("Add", [s[0], _resize_x2(b, s[1], "nearest")], "fuse12"),
                       s3_up], "fuse123")
    y = b.node("Sigmoid", [b.conv(y, width, 1, 1, base="head")], "prob")
    return b.model("input", [1, 3, resolution, resolution], y, name=f"fpn_decoder_{resolution}")
