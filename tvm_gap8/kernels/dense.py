"""Fully connected layer (Gemm / matmul by constant weights, + bias) as an output-tiled L1
kernel, float or int8 (int8: requantized per output feature like a 1x1 conv)."""

from __future__ import annotations

import numpy as np
from tvm import relax

from ..errors import UnsupportedError
from .composite import CompositeReader, activation_range, layer_parts, requantization, shape_of
from .epilogue import ACC, EpilogueOp, Ref
from . import patterns
from .family import KernelFamily
from .stages import Kernel
from .tiling import choose_plan
import math
from dataclasses import dataclass

from .spec import TypedOperands
from .staging import (Operand, double_buffer, finish, scalar_accumulator,
                     stage_in, stage_out,
                     stage_params)
from .epilogue import Epilogue


@dataclass(frozen=True)
class DenseKernelSpec(TypedOperands):
    in_shape: tuple  # (N, K)
    out_features: int
    epilogue: Epilogue = Epilogue()
    channel_shapes: tuple = ()
    channel_dtypes: tuple = ()
    dtype: str = "float32"
    in_zp: int = 0
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
    from tvm import te

    n, k = spec.in_shape
    o = spec.out_features
    x = te.placeholder(spec.in_shape, spec.dtype, name="x")
    w = te.placeholder((o, k), spec.weight_dtype, name="w")
    chans = [te.placeholder(sh, spec.channel_dtype(i), name=f"p{i}")
             for i, sh in enumerate(spec.channel_shapes)]
    xin, wop = Operand(spec.dtype, spec.in_zp), Operand(spec.weight_dtype)
    rk = te.reduce_axis((0, k), name="rk")
    acc = te.compute((n, o), lambda b, oc: te.sum(xin.load(x[b, rk]) * wop.load(w[oc, rk]),
                                                  axis=rk), name="dense_acc")
    y = te.compute((n, o), lambda b, oc: spec.epilogue.apply(acc[b, oc], oc, chans),
                   name="dense_out")
    return [x, w, *chans, y]


def schedule_dense(spec: DenseKernelSpec, plan):
    from tvm import s_tir, te

    sch = s_tir.Schedule(te.create_prim_func(dense_compute(spec)))
    out = sch.get_sblock("dense_out")
    _, o = sch.get_loops(out)
    ot, oi = sch.split(o, [None, plan.channels])
    stage_out(sch, out, ot)
    acc = sch.get_sblock("dense_acc")
    scalar_accumulator(sch, acc, oi)
    stage_in(sch, acc, "x", "input")
    stage_in(sch, acc, "w", "weight", ot if plan.channel_tiles > 1 else None)
    names = [f"p{i}" for i in range(len(spec.channel_shapes))]
    tiled = plan.channel_tiles > 1
    stage_params(sch, [out], names, ot if tiled else None, set(names))
    if plan.double_buffered:
        double_buffer(sch, ot)
    return finish(sch)


def plan_dense(spec: DenseKernelSpec, hw, rows: int, channels: int):
    from .tiling import L1Buffer, TilePlan, dtype_bytes, _param_bytes, input_copies

    n, k = spec.in_shape
    o = spec.out_features
    ct = math.ceil(o / channels)
    db = input_copies(hw, ct)  # pipelined loop: the output-feature tiles
    e, we = dtype_bytes(spec.dtype), dtype_bytes(spec.weight_dtype)
    params = _param_bytes(spec) * channels // o if ct > 1 else _param_bytes(spec)
    bufs = (L1Buffer("x", "input", n * k, spec.dtype),
            L1Buffer("dense_out", "output", n * channels, spec.out_dtype, db),
            L1Buffer("w", "weight", channels * k, spec.weight_dtype, db),
            L1Buffer("params", "weight", params * db, "uint8"))
    transfers = 1 + 2 * ct + len(spec.channel_shapes) * ct
    wgt = o * k * we + _param_bytes(spec)
    moved = n * k * e + n * o * dtype_bytes(spec.out_dtype) + wgt
    cycles = n * ct * hw.linear_cycles(k, channels) + moved / hw.dma_bytes_per_cycle + \
        transfers * hw.dma_setup_cycles
    return TilePlan("dense", 1, channels, 1, ct, bufs, n * k * e,
                    n * o * dtype_bytes(spec.out_dtype), wgt, transfers, spec.macs(), cycles,
                    db == 2)


def read_dense(func, args):
    """A ``gap8.dense`` composite -> (DenseKernelSpec, [x, w, per-channel tensors])."""
    r = CompositeReader(func, args)
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
    w = r.values[parts.anchor.args[1]]
    if np.any(w.zero_point != 0):
        raise UnsupportedError("dense weights with a non-zero zero point")
    w_scale = np.broadcast_to(w.scale.reshape(-1), (w.q.shape[0],))
    bias = r.values[parts.bias].real() if parts.bias is not None else None
    requant, arrays = requantization(q.params.scale, w_scale, *parts.out,
                                     activation_range(parts.acts), bias)
    epilogue = kernel.requant_epilogue(requant, arrays)
    spec = DenseKernelSpec(shape_of(q.source), w.q.shape[0], epilogue,
                           tuple(kernel.channel_shapes), tuple(kernel.channel_dtypes),
                           str(q.source.ty.dtype), q.params.zero_point, str(w.q.dtype))
    return spec, [q.source, relax.const(w.q)] + kernel.channel_tensors


DENSE = KernelFamily(kind="dense", patterns=(patterns.q_dense_pattern, patterns.dense_pattern),
                     layer_keys=("anchor",), read=read_dense,
                     plan=lambda spec, hw, layer: choose_plan(spec, hw, layer, plan_dense),
                     schedule=schedule_dense, problem=patterns.anchored(patterns.dense_problem))
