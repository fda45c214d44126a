"""The fused kernels alone: TE + s_tir schedule, built for the host, against numpy; and the
shape of their IR (intermediate only in L1, every L2<->L1 copy an annotated stage)."""

import numpy as np
import pytest
import tvm

from tvm_gap8.ir.tirwalk import sblocks
from tvm_gap8.kernels.epilogue import ACC, Epilogue, EpilogueOp, Ref
from tvm_gap8.kernels import build_kernel, plan_kernel
from tvm_gap8.kernels.fused import ConvGeom, FusedKernelSpec
from tvm_gap8.ir.vocab import COPY_ANN, L1_SCOPE, ROLE_ANN
from tvm_gap8.kernels.dw_pw import dw_pw_tiling
from tvm_gap8.kernels.pw_dw import pw_dw_tiling
from tvm_gap8.target import GAP8
from tvm_gap8.testing.reference import conv2d_nchw

BIAS_RELU = Epilogue((EpilogueOp("relax.add", (ACC, Ref("channel", 0))),
                      EpilogueOp("relax.nn.relu", (Ref("val", 0),))))
HARDSWISH = Epilogue((EpilogueOp("relax.add", (ACC, Ref("scalar", 3.0))),
                      EpilogueOp("relax.clip", (Ref("val", 0),), (0.0, 6.0)),
                      EpilogueOp("relax.divide", (Ref("val", 1), Ref("scalar", 6.0))),
                      EpilogueOp("relax.multiply", (ACC, Ref("val", 2)))))


def _hardswish(v):
    return v * np.clip(v + 3, 0, 6) / 6


def _run(func, args, out_shape):
    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}),
                      target="llvm")
    out = tvm.runtime.tensor(np.zeros(out_shape, "float32"))
    lib["main"](*[tvm.runtime.tensor(a) for a in args], out)
    return out.numpy()


CASES = [  # c, h, w, k, stride, padding (t, l, b, r), rows, channels
    (8, 9, 7, 3, 1, (1, 1, 1, 1), 4, 5),
    (6, 10, 11, 5, 2, (2, 1, 2, 2), 2, 4),
    (4, 3, 3, 5, 1, (2, 2, 1, 2), 1, 3),  # input smaller than the kernel, asymmetric padding
    (5, 6, 6, 3, 2, (0, 0, 1, 1), 2, 5),  # "SAME" padding of a stride-2 TF export
    (3, 1, 1, 3, 1, (1, 1, 1, 1), 1, 1),  # 1x1 spatial
]


@pytest.mark.parametrize("c,h,w,k,s,pad,rows,chans", CASES)
def test_dw_pw_matches_numpy(c, h, w, k, s, pad, rows, chans, rng):
    o = 12
    spec = FusedKernelSpec("dw_pw", (1, c, h, w), ConvGeom(c, c, k, s, pad), ConvGeom(c, o, 1),
                           BIAS_RELU, HARDSWISH, ((1, c, 1, 1),))
    plan = dw_pw_tiling(spec, GAP8, rows, chans)
    x = rng.standard_normal((1, c, h, w)).astype("float32")
    wd = rng.standard_normal((c, 1, k, k)).astype("float32")
    wp = rng.standard_normal((o, c, 1, 1)).astype("float32")
    b = rng.standard_normal((1, c, 1, 1)).astype("float32")
    ref = _hardswish(conv2d_nchw(np.maximum(conv2d_nchw(x, wd, s, pad, c) + b, 0), wp))
    got = _run(build_kernel(spec, plan), [x, wd, wp, b], spec.out_shape)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c,h,w,k,s,pad,rows,chans", CASES)
def test_pw_dw_matches_numpy(c, h, w, k, s, pad, rows, chans, rng):
    hid = 2 * c
    spec = FusedKernelSpec("pw_dw", (1, c, h, w), ConvGeom(c, hid, 1),
                           ConvGeom(hid, hid, k, s, pad), BIAS_RELU, Epilogue(), ((1, hid, 1, 1),))
    plan = pw_dw_tiling(spec, GAP8, rows, min(chans, hid))
    x = rng.standard_normal((1, c, h, w)).astype("float32")
    wp = rng.standard_normal((hid, c, 1, 1)).astype("float32")
    wd = rng.standard_normal((hid, 1, k, k)).astype("float32")
    b = rng.standard_normal((1, hid, 1, 1)).astype("float32")
    ref = conv2d_nchw(np.maximum(conv2d_nchw(x, wp) + b, 0), wd, s, pad, hid)
    got = _run(build_kernel(spec, plan), [x, wp, wd, b], spec.out_shape)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def _blocks(func):
    return sblocks(func)


@pytest.mark.parametrize("kind", ["dw_pw", "pw_dw"])
def test_intermediate_only_in_l1_and_copies_annotated(kind):
    c = 8
    if kind == "dw_pw":
        spec = FusedKernelSpec(kind, (1, c, 12, 12), ConvGeom(c, c, 3, 1, (1, 1, 1, 1)),
                               ConvGeom(c, 16, 1))
    else:
        spec = FusedKernelSpec(kind, (1, c, 12, 12), ConvGeom(c, 24, 1),
                               ConvGeom(24, 24, 3, 2, (1, 1, 1, 1)))
    plan = plan_kernel(spec, GAP8.with_l1_budget(6000))
    assert plan.row_tiles > 1  # the small L1 forces tiling
    blocks = _blocks(build_kernel(spec, plan))
    by_role = {}
    for blk in blocks:
        role = blk.annotations.get(ROLE_ANN)
        if role is not None:
            by_role.setdefault(str(role), []).append(blk)
    # the intermediate is produced by one block, into a buffer in L1 scope
    (mid,) = by_role["intermediate"]
    scopes = {buf.name: buf.scope() for blk in blocks for buf in blk.alloc_buffers}
    mid_buf = [w.source for w in mid.writes][0]
    assert scopes[mid_buf.name] == L1_SCOPE
    # every copy stage has a direction; inputs/weights come in, the output goes out
    copies = [blk for blk in blocks if COPY_ANN in blk.annotations]
    dirs = {(str(b.annotations[ROLE_ANN]), str(b.annotations[COPY_ANN])) for b in copies}
    assert ("input", "l2_to_l1") in dirs and ("output", "l1_to_l2") in dirs
    assert ("weight", "l2_to_l1") in dirs
    for blk in copies:
        dst = [w.source for w in blk.writes][0]
        src = [r.source for r in blk.reads][0]
        if str(blk.annotations[COPY_ANN]) == "l2_to_l1":
            assert scopes[dst.name] == L1_SCOPE and src.scope() == "global"
        else:
            assert scopes[src.name] == L1_SCOPE and dst.scope() == "global"


def test_planner_is_deterministic_and_respects_budget():
    spec = FusedKernelSpec("dw_pw", (1, 32, 24, 24), ConvGeom(32, 32, 3, 1, (1, 1, 1, 1)),
                           ConvGeom(32, 64, 1))
    for l1 in (64000, 40000, 24000):
        hw = GAP8.with_l1_budget(l1)
        a, b = plan_kernel(spec, hw), plan_kernel(spec, hw)
        assert a == b
        assert a.l1_bytes <= l1
    big, small = plan_kernel(spec, GAP8), plan_kernel(spec, GAP8.with_l1_budget(24000))
    assert small.row_tiles * small.channel_tiles > big.row_tiles * big.channel_tiles


def test_planner_names_layer_that_cannot_fit():
    from tvm_gap8.errors import TilingError

    spec = FusedKernelSpec("dw_pw", (1, 64, 48, 48), ConvGeom(64, 64, 3, 1, (1, 1, 1, 1)),
                           ConvGeom(64, 128, 1))
    # 1000 B fit since the columns are tiled too (2 rows x 1 column x 1 channel, DW 2 channels
    # at a time); the smallest tile is named over every tiled dimension
    assert plan_kernel(spec, GAP8.with_l1_budget(1000)).cols == 1
    with pytest.raises(TilingError, match=r"layer b3 \(dw_pw\) cannot fit L1: its smallest tile "
                                          r"\(1 row\(s\) x 1 column\(s\) x 1 channel\(s\), DW 1 "
                                          r"channel\(s\) at a time\) needs \d+ B, "
                                          r"the L1 budget is 300 B"):
        plan_kernel(spec, GAP8.with_l1_budget(300), layer="b3")
