"""Fully connected layer (Gemm / matmul by constant weights, + bias) as an output-tiled L1
kernel, float or int8 (int8: requantized per output feature like a 1x1 conv)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tvm import relax, s_tir, te

from ..cost import cycles
from ..errors import UnsupportedError
from ..ir.vocab import INPUT, INTERMEDIATE, OUTPUT, WEIGHT
from . import patterns
from .composite import (CompositeReader, activation_range, layer_parts, requantization, shape_of)
from .epilogue import ACC, Epilogue, EpilogueOp, Ref
from .family import KernelFamily
from .requant import DEFAULT_REQUANT
from .spec import TypedOperands
from .stages import Kernel
from .staging import Operand, finish_staged, scalar_accumulator
from .tiling import LayerCost, ROOT, L1Buffer, choose_plan, input_copies, param_buffers, plan_from


@dataclass(frozen=True)
class DenseKernelSpec(TypedOperands):
    in_shape: tuple  # (N, K)
    out_features: int
    epilogue: Epilogue = Epilogue()
    channel_shapes: tuple = ()
    channel_dtypes: tuple = ()
    dtype: str = "float32"
    in_zp: int = 0  # informative: the MACs read raw integers (the bias holds -zp sum(w))
    w_dtype: str = ""
    kind: str = "dense"

    @property
    def out_shape(self):
        return (self.in_shape[0], self.out_features)

    @property
    def epilogues(self) -> tuple:
        return (self.epilogue,)

    @property
    def out_dtype(self):
        return self.epilogue.out_dtype or self.dtype

    def macs(self) -> int:
        return self.in_shape[0] * self.in_shape[1] * self.out_features


def dense_compute(spec: DenseKernelSpec):
    n, k = spec.in_shape
    o = spec.out_features
    x = te.placeholder(spec.in_shape, spec.dtype, name="x")
    w = te.placeholder((o, k), spec.weight_dtype, name="w")
    chans = [te.placeholder(sh, spec.channel_dtype(i), name=f"p{i}")
             for i, sh in enumerate(spec.channel_shapes)]
    # the MACs read the raw integers: the bias holds -in_zp * sum(w) (``requantization``)
    xin, wop = Operand(spec.dtype), Operand(spec.weight_dtype)
    rk = te.reduce_axis((0, k), name="rk")
    acc = te.compute((n, o), lambda b, oc: te.sum(xin.load(x[b, rk]) * wop.load(w[oc, rk]),
                                                  axis=rk), name="dense_acc")
    y = te.compute((n, o), lambda b, oc: spec.epilogue.apply(acc[b, oc], oc, chans),
                   name="dense_out")
    return [x, w, *chans, y]


#: the block of partial sums when the reduction is split over the cores (``sch.rfactor``)
PARTIALS = "dense_acc_rf"
#: output features per tile split over the cores are balanced enough from this many per core
#: up (the slowest core's share within 1.15 of the fastest's: 7 vs 8 features)
BALANCED_PER_CORE = 7
#: bytes of a SIMD word (``pv.sdotsp.b``): each core's part of the reduction a whole number
SIMD_BYTES = 4


def reduction_parts(spec: DenseKernelSpec, hw, channels: int) -> int:
    """Parts the reduction of a tile of ``channels`` output features is split into, one per
    core (1: not split). Split when the features alone cannot keep the cores balanced (fewer
    than ``BALANCED_PER_CORE`` per core and not a multiple of the cores: a 10-class classifier
    gives 8 cores 1 or 2 features), for integer MACs only (integer sums in any order are the
    same integers; a float sum in another order is not the reference's) and a reduction that
    splits in whole SIMD words. Each core then sums its part of every feature (partial sums in
    L1), and the features' sums of parts are split over the cores."""
    k = spec.in_shape[1]
    cores = hw.cores
    if spec.dtype.startswith("float") or channels % cores == 0 or \
            channels >= BALANCED_PER_CORE * cores or k % (cores * SIMD_BYTES):
        return 1
    return cores


def dense_tiling(spec: DenseKernelSpec, hw, rows: int, channels: int):
    """Output-feature tiles (pipelined): the whole input once, weights and per-feature
    parameters per tile when there is more than one; partial sums in L1 when the reduction is
    split over the cores (``reduction_parts``)."""
    n, k = spec.in_shape
    o = spec.out_features
    ct = math.ceil(o / channels)
    db = input_copies(hw, ct)
    tile_at = "channels" if ct > 1 else ROOT
    parts = reduction_parts(spec, hw, channels)
    partials = (L1Buffer(PARTIALS, INTERMEDIATE, n * channels * parts, "int32", 1, tile_at),) \
        if parts > 1 else ()
    bufs = (L1Buffer("dense_out", OUTPUT, n * channels, spec.out_dtype, db, "channels"),
            *partials,
            L1Buffer("x", INPUT, n * k, spec.dtype),
            L1Buffer("w", WEIGHT, channels * k, spec.weight_dtype, db, tile_at),
            *param_buffers(spec, channels, o, tile_at,
                           set(range(len(spec.channel_shapes))) if ct > 1 else set(), db))
    compute = n * ct * cycles.linear(k, channels, hw.compute)

    cost = LayerCost(hw, compute)  # every copy costed, the pipelined ones overlapping

    return plan_from("dense", 1, channels, (("channels", ct),), bufs, spec.macs(), cost,
                     "channels" if db == 2 else "")


def schedule_dense(spec: DenseKernelSpec, plan):
    sch = s_tir.Schedule(te.create_prim_func(dense_compute(spec)))
    out = sch.get_sblock("dense_out")
    b, o = sch.get_loops(out)
    ot, oi = sch.split(o, [None, plan.channels])
    sch.reorder(ot, b, oi)  # feature tiles outermost: each weight tile staged once for all rows
    partials = next((buf for buf in plan.buffers if buf.name == PARTIALS), None)
    if partials is not None:  # each core a part of every feature's reduction (reduction_parts)
        parts = partials.elements // (spec.in_shape[0] * plan.channels)
        part, _ = sch.split(sch.get_loops(sch.get_sblock("dense_acc"))[-1], [parts, None])
        partials = sch.rfactor(part, 0)  # the block PARTIALS: [part, n, feature], in L1
        loops = sch.get_loops(partials)  # (n, feature, part, rest) -> each core a part
        sch.reorder(loops[2], *loops[:2])
    scalar_accumulator(sch, sch.get_sblock("dense_acc"), oi)
    return finish_staged(sch, plan, {"channels": ot})


def read_dense(func, args, requant: str = DEFAULT_REQUANT):
    """A ``gap8.dense`` composite -> (DenseKernelSpec, [x, w, per-channel tensors]), an integer
    one requantized by mode ``requant``."""
    r = CompositeReader(func, args, requant)
    parts = layer_parts(r, "dense")
    kernel = Kernel(stages=[], x=None)
    if parts.out is None:
        x, wt = r.resolve(parts.anchor.args[0]), r.constant(parts.anchor.args[1])  # [K, O]
        ops = ()
        if parts.bias is not None:
            bias = r.constant(parts.bias).reshape(-1).astype(np.float32)
            ops = (EpilogueOp("relax.add", (ACC, Ref("channel", kernel.add_channel(bias)))),)
        spec = DenseKernelSpec(shape_of(x), wt.shape[1], Epilogue(ops),
                               tuple(kernel.channel_shapes), tuple(kernel.channel_dtypes),
                               str(x.ty.dtype))
        return spec, [x, relax.const(np.ascontiguousarray(wt.T))] + kernel.channel_tensors
    (q,) = parts.inputs
    w, wq = _int_weights(r, parts.anchor.args[1])
    w_scale = np.broadcast_to(w.scale.reshape(-1), (wq.shape[0],))
    bias = r.values[parts.bias].real() if parts.bias is not None else None
    requant, arrays = requantization(q.params.scale, w_scale, *parts.out,
                                     activation_range(parts.acts), bias, r.requant,
                                     q.params.zero_point, wq)
    epilogue = kernel.requant_epilogue(requant, arrays)
    spec = DenseKernelSpec(shape_of(q.source), wq.shape[0], epilogue,
                           tuple(kernel.channel_shapes), tuple(kernel.channel_dtypes),
                           str(q.source.ty.dtype), q.params.zero_point, str(wq.dtype))
    return spec, [q.source, relax.const(wq)] + kernel.channel_tensors


def _int_weights(r, var):
    """(QuantConst, int8 weights [O, K]) of a QDQ dense: a Gemm with transB=1 reads its [O, K]
    weights through permute_dims, a Gemm with transB=0 or a MatMul its [K, O] weights
    directly; per-channel scales must be per output channel."""
    w = r.values[var]
    if np.any(w.zero_point != 0):
        raise UnsupportedError("dense weights with a non-zero zero point")
    permuted = any(b.var.same_as(var) and b.value.op.name == "relax.permute_dims"
                   for b in r.bindings())
    out_axis = 0 if permuted else 1
    if w.scale.size > 1 and w.axis % 2 != out_axis:
        raise UnsupportedError(f"dense weights quantized per channel along axis {w.axis}, "
                               "not the output channels")
    return w, (w.q if permuted else np.ascontiguousarray(w.q.T))


DENSE = KernelFamily(kind="dense", patterns=(patterns.q_dense_pattern, patterns.dense_pattern),
                     layer_keys=("anchor",), read=read_dense,
                     plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, dense_tiling),
                     schedule=schedule_dense, problem=patterns.anchored(patterns.dense_problem))
