"""How a kernel's compute is split over the cluster's cores: which loop of each compute nest
(the one whose split keeps the cores busiest; two nested loops fused first when that balances
them better), and the split itself (each core its share, the shares differing by one, then a
barrier). One decision, read by the C emission (``plainc``)."""

from __future__ import annotations

import math

import tvm
import tvm_ffi
from tvm import s_tir, tirx

from ..errors import UnsupportedError
from ..ir.tirwalk import walk
from ..ir.vocab import COPY_ANN, PAR_ANN, SPLIT_ANN

PAR_OUTER_ANN = "gap8.parallel_outer"  # on data-parallel loops above it: run by every core
CLUSTER_CORES = 8  # GAP8_NB_CORES of runtime/gap8_cluster.h: the team the loops are split over


def with_annotation(loop, key, value):
    return tirx.For(loop.loop_var, loop.min, loop.extent, loop.kind, loop.body,
                    loop.thread_binding, {**dict(loop.annotations), key: value}, loop.step,
                    loop.span)


def _uses(expr, var) -> bool:
    found = []

    def visit(v):
        if v.same_as(var):
            found.append(v)
        return v

    tvm_ffi.structural_map(expr, (tirx.Var, visit))
    return bool(found)


def _blocks_under(stmt) -> list:
    return [s for s, _ in walk(stmt) if isinstance(s, s_tir.SBlockRealize)]


def _is_data_parallel(loop) -> bool:
    """Every block under ``loop`` binds its loop variable to spatial iterators only, and no
    block under it is a copy (copies run on the master core)."""
    for realize in _blocks_under(loop.body):
        if COPY_ANN in realize.block.annotations:
            return False
        for iv, value in zip(realize.block.iter_vars, realize.iter_values):
            if int(iv.iter_type) != 0 and _uses(value, loop.loop_var):
                return False
    return True


def _balance(extent: int, cores: int = CLUSTER_CORES) -> float:
    """Share of the cores' time a split of ``extent`` iterations keeps busy."""
    return extent / (cores * -(-extent // cores))


def _parallel_nest(loop) -> list:
    """The perfect nest of data-parallel loops from ``loop`` down, outermost first."""
    nest = [loop]
    while isinstance(nest[-1].body, tirx.For) and _is_data_parallel(nest[-1].body):
        nest.append(nest[-1].body)
    return nest


def _best_split(loop):
    """In the perfect nest of data-parallel loops from ``loop`` down, the loop the kernel's
    schedule marked (``gap8.split``), else the one whose split keeps the cores busiest (the
    outermost of equals): [loops above it], that loop."""
    nest = [lp for lp in _parallel_nest(loop) if int(lp.extent) > 1]
    best = max(range(len(nest)), key=lambda k: (SPLIT_ANN in nest[k].annotations,
                                                _balance(int(nest[k].extent)), -k))
    return nest[:best], nest[best]


def _compute_nests(func) -> list:
    """The outermost loop of every compute nest (a loop holding no copy whose enclosing loops
    all hold copies; unit loops passed through) that starts a nest of data-parallel loops."""

    def holds_copy(stmt):
        return any(COPY_ANN in r.block.annotations for r in _blocks_under(stmt))

    starts = []
    for stmt, loops in walk(func.body):
        if isinstance(stmt, tirx.For) and not holds_copy(stmt) \
                and all(holds_copy(lp) for lp in loops):
            loop = stmt
            while int(loop.extent) == 1 and isinstance(loop.body, tirx.For):
                loop = loop.body  # through unit loops (a single tile of a split axis)
            if int(loop.extent) > 1 and _is_data_parallel(loop):
                starts.append(loop)
    return starts


#: nested loops are fused for the split when that keeps the cores this much busier than the
#: best single loop (a div and a mod per iteration of the fused loop: only loops whose body
#: holds loops, so a fused iteration is a row or a channel block, not one output)
FUSE_MIN_GAIN = 0.1
#: ... at most this many loops, the fewest that reach the gain (three loops where two would do
#: measured slower on MobileNetV2 x0.35's chains: 3.50 M cycles against 2.99 M)
FUSE_MAX_LOOPS = 3


def _fusion_for_balance(loop) -> list:
    """The loops of the compute nest from ``loop`` to fuse ([] for none): the shortest run
    (up to FUSE_MAX_LOOPS) of directly nested data-parallel loops, the innermost holding loops,
    whose fused extent splits over the cores at least FUSE_MIN_GAIN better than any single loop
    of the nest (of those, the best balanced, the outermost of equals); none in a nest whose
    split loop the schedule marked (``gap8.split``)."""
    nest = _parallel_nest(loop)
    if any(SPLIT_ANN in lp.annotations for lp in nest):
        return []  # the kernel's schedule chose the split loop
    single = max(_balance(int(lp.extent)) for lp in nest)

    def fused(run):
        return _balance(math.prod(int(lp.extent) for lp in run))

    for length in range(2, FUSE_MAX_LOOPS + 1):
        runs = [nest[k:k + length] for k in range(len(nest) - length + 1)]
        runs = [r for r in runs if any(isinstance(st, tirx.For) for st, _ in walk(r[-1].body))]
        if runs:
            run = max(runs, key=fused)
            if fused(run) >= single + FUSE_MIN_GAIN:
                return run
    return []


def fuse_for_balance(func):
    """Fuse the loop runs ``_fusion_for_balance`` picks (TVM's ``Schedule.fuse``): a nest of
    12 rows x 12 columns splits as 144 iterations (18 per core), not as 12 rows (2 cores
    idle)."""
    runs = [r for r in (_fusion_for_balance(lp) for lp in _compute_nests(func)) if r]
    if not runs:
        return func
    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    for run in runs:  # the run's loops, as the schedule names them: those of a block under it
        block = sch.get_sblock(_blocks_under(run[-1].body)[0].block.name_hint)
        sch.fuse(*[rv for rv in sch.get_loops(block)
                   if any(sch.get(rv).loop_var.same_as(lp.loop_var) for lp in run)])
    return sch.mod["main"]


def mark_parallel_loops(func):
    """Every compute nest (``_compute_nests``) of data-parallel loops: the one whose split
    balances the cores best gets PAR_ANN, the loops above it PAR_OUTER_ANN (every core runs
    them, one barrier after the nest)."""
    targets, outers = [], []
    for loop in _compute_nests(func):
        above, chosen = _best_split(loop)
        targets.append(chosen.loop_var)
        outers += [lp.loop_var for lp in above]

    def visit(loop):
        if any(loop.loop_var.same_as(v) for v in targets):
            return with_annotation(loop, PAR_ANN, 1)
        if any(loop.loop_var.same_as(v) for v in outers):
            return with_annotation(loop, PAR_OUTER_ANN, 1)
        return loop

    return func.with_body(tvm_ffi.structural_map(func.body, (tirx.For, visit)))


def split_over_cores(loop, stats, barrier: bool = True):
    """for v in [0, E) -> for c in team: core = gap8_core_of(c);
    for v in [E*core/cores, E*(core+1)/cores) (shares differ by one); then a barrier."""
    stats["parallel_loops"] += 1
    extent = int(loop.extent)
    team = tirx.Var("gap8_c", "int32")
    core = tirx.call_extern("int32", "gap8_core_of", team)
    start = tirx.call_extern("int32", "GAP8_SHARE_BEGIN", extent, core)
    end = tirx.call_extern("int32", "GAP8_SHARE_BEGIN", extent, core + 1)
    inner = tirx.For(loop.loop_var, start, end - start, tirx.ForKind.SERIAL, loop.body)
    team_loop = tirx.For(team, 0, tirx.call_extern("int32", "gap8_team_size"),
                         tirx.ForKind.SERIAL, inner)
    if not barrier:
        return team_loop
    return tirx.SeqStmt([team_loop, tirx.Evaluate(tirx.call_extern("int32", "gap8_barrier"))])


def split_nest(loop, stats):
    """A PAR_OUTER_ANN nest: every core runs the outer loops and its share of the split loop
    inside; one barrier after the nest."""
    if PAR_ANN in loop.annotations:
        return split_over_cores(loop, stats, barrier=False)
    if not isinstance(loop.body, tirx.For):
        raise UnsupportedError("--emit-c: a split loop is not directly under the loops above it")
    return tirx.For(loop.loop_var, loop.min, loop.extent, loop.kind,
                    split_nest(loop.body, stats), None, loop.annotations, loop.step, loop.span)
