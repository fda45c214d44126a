"""The PW -> DW -> PW chain kernel alone (TE + s_tir schedule, built for the host) against numpy
at several tiles and layouts, and the shape of its IR: both intermediates only in L1."""

import numpy as np
import pytest
import tvm

from tvm_gap8.cost.ir import lower_for_inspection
from tvm_gap8.kernels import build_kernel
from tvm_gap8.kernels.eltwise import AddKernelSpec
from tvm_gap8.kernels.epilogue import ACC, Epilogue, EpilogueOp, Ref
from tvm_gap8.kernels.geometry import ConvGeom
from tvm_gap8.kernels.layout import CHW, HWC, KernelLayouts, physical
from tvm_gap8.kernels.pw_dw_pw import ChainKernelSpec, chain_tiling
from tvm_gap8.target import GAP8
from tvm_gap8.testing.reference import conv2d_nchw
from tvm_gap8.ir.tirwalk import allocations, sblocks
from tvm_gap8.ir.vocab import COPY_ANN, L1_SCOPE, ROLE_ANN


def _bias_relu6(i):
    return Epilogue((EpilogueOp("relax.add", (ACC, Ref("channel", i))),
                     EpilogueOp("relax.clip", (Ref("val", 0),), (0.0, 6.0))))


def _spec(c, t, k, s, o, layouts):
    hid, pad = c * t, (k // 2,) * 4
    residual = AddKernelSpec((1, c, 9, 7)) if s == 1 and o == c else None
    return ChainKernelSpec((1, c, 9, 7), ConvGeom(c, hid, 1), ConvGeom(hid, hid, k, s, pad),
                           ConvGeom(hid, o, 1), (_bias_relu6(0), _bias_relu6(1), Epilogue()),
                           ((1, hid, 1, 1), (1, hid, 1, 1)), residual=residual,
                           layouts=layouts)


def _reference(spec, x, w1, w2, w3, b1, b2):
    dw = spec.dw
    y = np.clip(conv2d_nchw(x, w1) + b1, 0, 6)
    y = np.clip(conv2d_nchw(y, w2, dw.sh, dw.padding, spec.hidden) + b2, 0, 6)
    y = conv2d_nchw(y, w3)
    return y + x if spec.residual else y


CASES = [  # c, t, k, stride, out channels, rows, channels per tile, layouts (in, tile, out)
    (8, 6, 3, 1, 8, 3, 4, (CHW, CHW, CHW)),
    (8, 6, 3, 1, 8, 9, 8, (HWC, HWC, HWC)),
    (4, 1, 5, 2, 12, 2, 4, (CHW, HWC, CHW)),
    (6, 2, 5, 1, 6, 1, 3, (HWC, CHW, HWC)),
]


@pytest.mark.parametrize("c,t,k,s,o,rows,chans,lays", CASES)
def test_chain_kernel_matches_numpy(c, t, k, s, o, rows, chans, lays, rng):
    spec = _spec(c, t, k, s, o, KernelLayouts(*lays))
    plan = chain_tiling(spec, GAP8, rows, chans)
    hid = spec.hidden
    x = rng.standard_normal(spec.in_shape).astype("float32")
    ws = [rng.standard_normal(shape).astype("float32")
          for shape in ((hid, c, 1, 1), (hid, 1, k, k), (o, hid, 1, 1), (1, hid, 1, 1),
                        (1, hid, 1, 1))]
    func = build_kernel(spec, plan)
    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}),
                      target="llvm")
    src = x if lays[0] == CHW else x.transpose(0, 2, 3, 1).copy()
    out = tvm.runtime.tensor(np.zeros(physical(spec.out_shape, lays[2]), "float32"))
    lib["main"](*[tvm.runtime.tensor(a) for a in (src, *ws)], out)
    got = out.numpy() if lays[2] == CHW else out.numpy().transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, _reference(spec, x, *ws), rtol=1e-4, atol=1e-4)


def test_chain_intermediates_live_only_in_l1():
    spec = _spec(8, 6, 3, 1, 8, KernelLayouts())
    plan = chain_tiling(spec, GAP8, 3, 8)
    func = build_kernel(spec, plan)
    roles = {b.name_hint: (str(b.annotations.get(ROLE_ANN, "")),
                           str(b.annotations.get(COPY_ANN, ""))) for b in sblocks(func)}
    # the expanded tensor and the DW output: produced in L1, never copied anywhere
    assert roles["pw_out"] == ("intermediate", "") and roles["dw_out"] == ("intermediate", "")
    copies = sorted(r for r, c in roles.values() if c)
    assert copies == ["input", "output", "weight", "weight", "weight", "weight", "weight"]
    lowered = lower_for_inspection(func)
    scopes = {b.name.split("_global")[0]: b.scope() for b, _ in allocations(lowered)}
    assert scopes["pw_out"] == scopes["dw_out"] == L1_SCOPE
    assert set(scopes.values()) <= {L1_SCOPE, "local"}


def test_expansion_keeps_the_halo_rows_of_the_tile_before():
    """Three row tiles of 3 rows over a 9-row image, k 3, stride 1: each tile's expanded tile
    holds 5 rows, 2 of them the previous tile's last. The expansion's split loop (rows x 12
    channel blocks, rows outermost) computes 3 rows on every tile; the first tile alone
    computes the image row before them (the other is padding); the others move the 2 rows up
    from rows 3-4 (``ir/halo.py``).
    No expanded row is computed twice: the plan's MACs are the layer's."""
    from tvm_gap8.ir.tirwalk import walk
    from tvm_gap8.kernels.pw_dw_pw import kept_halo_rows
    spec = _spec(8, 6, 3, 1, 8, KernelLayouts())
    plan = chain_tiling(spec, GAP8, 3, 8)
    assert (plan.row_tiles, kept_halo_rows(spec, plan.row_tiles)) == (3, 2)
    assert plan.macs == spec.macs()
    lowered = lower_for_inspection(build_kernel(spec, plan))
    blocks = spec.hidden // 4
    def branches(ann):  # the tile-index tests holding a loop annotated ``ann``
        return [s.then_case for s, _ in walk(lowered.body) if isinstance(s, tvm.tirx.IfThenElse)
                and any(isinstance(t, tvm.tirx.For) and ann in t.annotations
                        for t, _ in walk(s.then_case))]

    def loops(stmt, ann=None):
        return [int(s.extent) for s, _ in walk(stmt) if isinstance(s, tvm.tirx.For)
                and (ann is None or ann in s.annotations)]

    # software pipelining makes a copy of the tile loop's body per stage it runs
    split = set(loops(lowered.body, "gap8.split"))
    assert split == {blocks, blocks * 3}, split  # first tile's 1 image row; every tile's 3
    firsts, moves = branches("gap8.split"), branches("gap8.parallel")
    assert firsts and moves
    assert all(loops(first, "gap8.split") == [blocks] for first in firsts)
    for move in moves:
        stores = [s for s, _ in walk(move) if isinstance(s, tvm.tirx.BufferStore)]
        assert len(stores) == 1 and stores[0].buffer.name.startswith("pw_out")
        assert loops(move) == [spec.hidden, 2, 9]  # channels x the 2 kept rows x the columns
        # the moved rows are read 3 rows (a tile's advance) below where they go
        src = stores[0].value.indices[1] - stores[0].indices[1]
        assert tvm.sym.Analyzer().simplify(src).value == 3
