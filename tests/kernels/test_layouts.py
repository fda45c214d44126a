"""Every layout variant of every kernel family: built for the host, the result (stored in the
variant's output layout) equals the reference (float) or, bit for bit, the all-CHW kernel
(int8, itself checked against the integer reference by the model tests); the IR's copies are
the plan's (IR == plan), a transposing input copy is annotated and counted as such."""

import itertools

import numpy as np
import pytest
import tvm

from tvm_gap8.cost.ir import kernel_counts
from tvm_gap8.kernels import build_kernel, family_of, plan_kernel
from tvm_gap8.kernels.conv import ConvKernelSpec
from tvm_gap8.kernels.epilogue import ACC, Epilogue, EpilogueOp, Ref, Requant
from tvm_gap8.kernels.geometry import ConvGeom
from tvm_gap8.kernels.layout import CHW, HWC, KernelLayouts, physical
from tvm_gap8.target import GAP8
from tvm_gap8.tirwalk import sblocks
from tvm_gap8.vocab import L2_TO_L1_TRANSPOSED, TRANSPOSE_ANN

BIAS_RELU6 = Epilogue((EpilogueOp("relax.add", (ACC, Ref("channel", 0))),
                       EpilogueOp("relax.clip", (Ref("val", 0),), (0.0, 6.0))))


def _requant(c):
    return (Epilogue(requant=Requant(-3, -128, 127, "int8", 0, 1, 2)), ((1, c, 1, 1),) * 3,
            ("int32",) * 3)


def to_layout(a, layout):
    return a if layout == CHW or a.ndim != 4 else np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def from_layout(a, layout):
    return a if layout == CHW or a.ndim != 4 else np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def run(spec, plan, args, in_count=1):
    """Build ``spec`` under ``plan`` and run it on logical (NCHW) ``args``: the first
    ``in_count`` are stored in the spec's source layout; the output is returned logical."""
    func = build_kernel(spec, plan).with_attr("global_symbol", "main")
    lib = tvm.compile(tvm.IRModule({"main": func}), target="llvm")
    lay = spec.layouts
    stored = [to_layout(a, lay.source) if i < in_count else a for i, a in enumerate(args)]
    out = tvm.runtime.tensor(np.zeros(physical(spec.out_shape, lay.out), spec.out_dtype))
    lib["main"](*[tvm.runtime.tensor(a) for a in stored], out)
    return from_layout(out.numpy(), lay.out)


def conv_specs():
    """(name, spec, args) of a DW 3x3 s2, a PW and a standard 3x3 conv, float and int8."""
    rng = np.random.default_rng(0)

    def args(spec, integer):
        o, cg, k = spec.geom.out_channels, spec.in_shape[1] // spec.groups, spec.geom.kernel
        if integer:
            x = rng.integers(-128, 128, spec.in_shape).astype("int8")
            w = rng.integers(-128, 128, (o, cg, k, k)).astype("int8")
            chans = [rng.integers(-2000, 2000, (1, o, 1, 1)).astype("int32"),
                     np.full((1, o, 1, 1), 1 << 30, "int32"), np.full((1, o, 1, 1), 38, "int32")]
            return [x, w, *chans]
        return [rng.standard_normal(spec.in_shape).astype("float32"),
                rng.standard_normal((o, cg, k, k)).astype("float32"),
                rng.standard_normal((1, o, 1, 1)).astype("float32")]

    for name, shape, geom, groups in (
            ("dw", (1, 16, 11, 10), ConvGeom(16, 16, 3, (2, 1), (1, 1, 1, 1)), 16),
            ("pw", (1, 12, 7, 9), ConvGeom(12, 20, 1), 1),
            ("conv", (1, 3, 9, 9), ConvGeom(3, 8, 3, 2, (1, 1, 1, 1)), 1)):
        yield f"{name} float", ConvKernelSpec(shape, geom, groups, BIAS_RELU6, ((1, geom.out_channels, 1, 1),)), args
        e, s, d = _requant(geom.out_channels)
        yield f"{name} int8", ConvKernelSpec(shape, geom, groups, e, s, d, "int8", 3), args


CONV = list(conv_specs())
VARIANTS = [KernelLayouts(src, tile, out) for src, tile, out in itertools.product((CHW, HWC),
                                                                                 repeat=3)]


def _variant(spec, lay):
    from dataclasses import replace
    return replace(spec, layouts=lay)


@pytest.mark.parametrize("lay", VARIANTS, ids=[v.name() for v in VARIANTS])
@pytest.mark.parametrize("name,spec,make_args", CONV, ids=[c[0] for c in CONV])
def test_conv_variant_equals_reference(name, spec, make_args, lay):
    args = make_args(spec, spec.dtype == "int8")
    base_plan = plan_kernel(spec, GAP8)
    expected = run(spec, base_plan, args)
    variant = _variant(spec, lay)
    plan = plan_kernel(variant, GAP8)
    got = run(variant, plan, args)
    if spec.dtype == "int8":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    func = build_kernel(variant, plan)
    counts = kernel_counts(func)
    assert counts["traffic"] == {k: v for k, v in plan.figures().items()
                                 if k in counts["traffic"]}
    assert counts["l1_peak_bytes"] == plan.l1_bytes
    transposing = [b for b in sblocks(func) if TRANSPOSE_ANN in b.annotations]
    assert bool(transposing) == lay.transposing
    assert (counts["traffic"][L2_TO_L1_TRANSPOSED] > 0) == lay.transposing
