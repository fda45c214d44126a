"""Counts read off a lowered kernel's IR: the L1 peak and the bytes and transfers of every
annotated copy stage, exactly. The report and the tests compare these with the tile plan."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import s_tir, tirx

from ..ir.halo import keep_halo_rows
from ..ir.tirwalk import allocations, buffer_bytes, walk
from ..ir.vocab import (COPY_ANN, DMA_TRANSFERS, INPUT, L1_SCOPE, L1_TO_L2, L1_TO_L2_ACT, L2_TO_L1,
                        L2_TO_L1_ACT, L2_TO_L1_TRANSPOSED, L2_TO_L1_WGT, OUTPUT, ROLE_ANN,
                        TRANSPOSE_ANN, WEIGHT)

# -- what the tests and the report read off a kernel ---------------------------------------

def inspection_passes() -> list:
    """TVM's s_tir lowering up to software pipelining (and our halo rows), the stage whose IR
    we measure (and the C emission continues from)."""
    return [
        s_tir.transform.CanonicalizeLoop(),
        s_tir.transform.LowerInitBlock(),
        s_tir.transform.PlanAndUpdateBufferAllocationLocation(),
        s_tir.transform.ConvertBlocksToOpaque(),
        s_tir.transform.CompactBufferAllocation(),
        keep_halo_rows,  # a chain's rows kept from one row tile to the next (ir/halo.py)
        s_tir.transform.LowerMatchBuffer(),
        s_tir.transform.StmtSimplify(),
        s_tir.transform.InjectSoftwarePipeline(),
    ]


def lower_for_inspection(func):
    """Run ``inspection_passes``: buffers are compacted to their tile shapes and double-buffered
    copies have their two versions, blocks still carry our annotations. This is the IR whose L1
    footprint we report."""
    mod = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
    return tvm.transform.Sequential(inspection_passes())(mod)["main"]


def l1_buffers(func, scope: str) -> dict:
    """{buffer name: bytes} of the allocations in ``scope`` of a lowered kernel."""
    return {b.name: buffer_bytes(b) for b, _ in allocations(func) if b.scope() == scope}


def _evaluate(expr, env):
    """Evaluate an integer/boolean TIR expression over numpy arrays (loop vars -> arrays)."""
    e = expr
    if isinstance(e, (tirx.IntImm,)):
        return np.int64(e.value)
    if isinstance(e, tvm.ir.expr.Call) and getattr(e.op, "name", "") == "prim.likely":
        return _evaluate(e.args[0], env)
    if isinstance(e, tirx.Var):
        return env[e.name]
    if isinstance(e, tirx.Cast):
        return _evaluate(e.value, env)
    binary = {
        "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
        "FloorDiv": lambda a, b: np.floor_divide(a, b), "FloorMod": lambda a, b: np.mod(a, b),
        "Min": np.minimum, "Max": np.maximum, "LT": lambda a, b: a < b,
        "LE": lambda a, b: a <= b, "GT": lambda a, b: a > b, "GE": lambda a, b: a >= b,
        "EQ": lambda a, b: a == b, "NE": lambda a, b: a != b,
        "And": np.logical_and, "Or": np.logical_or,
    }
    name = type(e).__name__
    if name in binary:
        return binary[name](_evaluate(e.a, env), _evaluate(e.b, env))
    if name == "Not":
        return np.logical_not(_evaluate(e.a, env))
    raise ValueError(f"copy_traffic cannot evaluate a {name} in a copy predicate: {e}")


def _is_if_then_else(e) -> bool:
    return isinstance(e, tvm.ir.expr.Call) and \
        getattr(e.op, "name", "") in ("prim.if_then_else", "tirx.if_then_else")


def _copy_loops(loops, realize) -> tuple:
    """The loops of a copy itself: the perfect nest of loops created for it (named ax*) right
    around its block; the rest are tile loops (a tile loop may be named ax* too, e.g. a split
    of a loop created by compute_at, but it holds more than this copy)."""
    n, child = len(loops), realize
    while n and loops[n - 1].loop_var.name.startswith("ax") and loops[n - 1].body.same_as(child):
        n -= 1
        child = loops[n]
    return tuple(loops[n:])


def copy_traffic(func) -> dict:
    """Bytes moved and transfers issued by every annotated copy of a *scheduled* kernel,
    counted exactly: every point of the copy's loop nest where its predicate holds moves one
    element. Returns {(direction, role): {"bytes": b, "transfers": t}}."""
    out: dict = {}
    for stmt, loops in walk(func.body):
        if not isinstance(stmt, s_tir.SBlockRealize):
            continue
        block = stmt.block
        direction = block.annotations.get(COPY_ANN)
        if direction is None:
            continue
        role = str(block.annotations[ROLE_ANN])
        inner = _copy_loops(loops, stmt)
        outer = loops[:len(loops) - len(inner)]
        grids = np.meshgrid(*[np.arange(int(lp.min), int(lp.min) + int(lp.extent))
                              for lp in loops], indexing="ij") if loops else []
        env = {lp.loop_var.name: g for lp, g in zip(loops, grids)}
        valid = _evaluate(stmt.predicate, env) if not isinstance(stmt.predicate, tirx.IntImm) \
            else np.bool_(bool(stmt.predicate.value))
        valid = np.broadcast_to(valid, tuple(int(lp.extent) for lp in loops) or ())
        # a padded input copy moves only the interior; its ring is filled in L1
        store = block.body
        if isinstance(store, tirx.BufferStore) and _is_if_then_else(store.value):
            iters = {iv.var.name: _evaluate(v, env)
                     for iv, v in zip(block.iter_vars, stmt.iter_values)}
            valid = np.logical_and(valid, _evaluate(store.value.args[0], iters))
        elem_bytes = tvm.runtime.DataType(str(block.writes[0].source.dtype)).bits // 8
        elements = int(np.count_nonzero(valid))
        # a transfer: one execution of the copy nest that moves something
        axes = tuple(range(len(outer), len(loops)))
        issued = np.any(valid, axis=axes) if axes else valid
        transfers = int(np.count_nonzero(issued))
        key = (str(direction), role)
        if TRANSPOSE_ANN in block.annotations:
            key = (*key, TRANSPOSE_ANN)
        acc = out.setdefault(key, {"bytes": 0, "transfers": 0, "largest": 0})
        acc["bytes"] += elements * elem_bytes
        acc["transfers"] += transfers
        per_issue = np.sum(valid, axis=axes) if axes else np.asarray(valid, np.int64)
        acc["largest"] = max(acc["largest"], int(np.max(per_issue, initial=0)) * elem_bytes)
    return out


def largest_copy(traffic: dict, direction: str, role: str) -> int:
    """Bytes of the largest single transfer of a kernel's ``role`` copies in ``direction``
    (what one staged copy through an L2 buffer must hold), from its ``copy_traffic``."""
    return max((v["largest"] for k, v in traffic.items() if k[:2] == (direction, role)),
               default=0)


def kernel_counts(func) -> dict:
    """What a scheduled gap8 kernel does, read off its IR: peak L1 bytes (all L1 buffers of the
    kernel are live together, double-buffered ones with both versions) and the traffic of its
    copy stages, in the report's terms."""
    lowered = lower_for_inspection(func)
    traffic = copy_traffic(func)

    def get(direction, role, what="bytes"):
        return sum(v[what] for k, v in traffic.items() if k[:2] == (direction, role))

    transfers = sum(v["transfers"] for v in traffic.values())
    return {
        "l1_peak_bytes": sum(l1_buffers(lowered, L1_SCOPE).values()),
        "traffic": {
            L2_TO_L1_ACT: get(L2_TO_L1, INPUT),
            L1_TO_L2_ACT: get(L1_TO_L2, OUTPUT),
            L2_TO_L1_WGT: get(L2_TO_L1, WEIGHT),
            DMA_TRANSFERS: transfers,
            L2_TO_L1_TRANSPOSED: traffic.get((L2_TO_L1, INPUT, TRANSPOSE_ANN), {}).get("bytes", 0),
        },
    }
