"""How a compute nest is split over the cores (``emitc/core_split.py``): the loop that balances the cores
best, two nested loops fused when that balances them better, shares that differ by one."""

from tvm import te, tirx

from tvm_gap8.emitc import core_split
from tvm_gap8.ir.tirwalk import walk


def _nest(rows: int, cols: int, red: int = 8):
    """y[i, j] = sum_k x[i, j, k]: a rows x cols nest of data-parallel loops over a reduction."""
    x = te.placeholder((rows, cols, red), "int32", name="x")
    k = te.reduce_axis((0, red), name="k")
    y = te.compute((rows, cols), lambda i, j: te.sum(x[i, j, k], axis=k), name="y")
    return te.create_prim_func([x, y])


def _outer_loop(func):
    body = func.body
    while not isinstance(body, tirx.For):
        body = body.block.body if hasattr(body, "block") else body.body
    return body


def test_twelve_rows_of_twelve_are_fused_for_eight_cores():
    func = _nest(12, 12)
    run = core_split._fusion_for_balance(_outer_loop(func))
    assert len(run) == 2  # 12 rows keep 6 cores x 2 busy (0.75); 144 iterations: 18 each (1.0)
    fused = core_split.fuse_for_balance(func)
    loops = [s for s, _ in walk(fused.body) if isinstance(s, tirx.For)]
    assert int(loops[0].extent) == 144


def _nest3(a: int, b: int, c: int, red: int = 8):
    x = te.placeholder((a, b, c, red), "int32", name="x")
    k = te.reduce_axis((0, red), name="k")
    y = te.compute((a, b, c), lambda i, j, m: te.sum(x[i, j, m, k], axis=k), name="y")
    return te.create_prim_func([x, y])


def test_three_loops_fuse_only_when_no_two_do():
    # 6 rows x 3 column pairs x 6 channel blocks: no two of them split better than 6 (0.75),
    # all three (108) do (0.96)
    assert len(core_split._fusion_for_balance(_outer_loop(_nest3(6, 3, 6)))) == 3
    # 12 x 12 x 4: the two outer ones suffice (144: 1.0)
    assert len(core_split._fusion_for_balance(_outer_loop(_nest3(12, 12, 4)))) == 2


def test_a_loop_that_splits_evenly_is_not_fused():
    assert core_split._fusion_for_balance(_outer_loop(_nest(16, 12))) == []  # 16 rows: 2 per core


def test_innermost_loops_are_not_fused():
    # 3 x 3 = 9 would split better than 3 (0.56 vs 0.38), but the columns hold no loop here:
    # a fused iteration of one output would pay a div and a mod
    x = te.placeholder((3, 3), "int32", name="x")
    y = te.compute((3, 3), lambda i, j: x[i, j] + 1, name="y")
    assert core_split._fusion_for_balance(_outer_loop(te.create_prim_func([x, y]))) == []


def test_shares_differ_by_one_and_cover_the_loop():
    header = core_split.__file__.rsplit("/", 1)[0] + "/runtime/gap8_cluster.h"
    assert "#define GAP8_SHARE_BEGIN(n, core) ((n) * (core) / GAP8_NB_CORES)" in open(header).read()
    for n in (1, 3, 10, 12, 36, 97, 512):
        bounds = [n * c // core_split.CLUSTER_CORES for c in range(core_split.CLUSTER_CORES + 1)]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
        assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
