"""Fully connected layer (Gemm / matmul by constant weights, + bias) as an output-tiled L1
kernel, float or int8 (int8: requantized per output feature like a 1x1 conv)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .staging import (Operand, TypedOperands, double_buffer, finish, scalar_accumulator,
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
    from .tiling import L1Buffer, TilePlan, _dtype_bytes, _param_bytes, input_copies

    n, k = spec.in_shape
    o = spec.out_features
    ct = math.ceil(o / channels)
    db = input_copies(hw, ct)  # pipelined loop: the output-feature tiles
    e, we = _dtype_bytes(spec.dtype), _dtype_bytes(spec.weight_dtype)
    params = _param_bytes(spec) * channels // o if ct > 1 else _param_bytes(spec)
    bufs = (L1Buffer("x", "input", n * k, spec.dtype),
            L1Buffer("dense_out", "output", n * channels, spec.out_dtype, db),
            L1Buffer("w", "weight", channels * k, spec.weight_dtype, db),
            L1Buffer("params", "weight", params * db, "uint8"))
    transfers = 1 + 2 * ct + len(spec.channel_shapes) * ct
    wgt = o * k * we + _param_bytes(spec)
    moved = n * k * e + n * o * _dtype_bytes(spec.out_dtype) + wgt
    cycles = n * ct * hw.linear_cycles(k, channels) + moved / hw.dma_bytes_per_cycle + \
        transfers * hw.dma_setup_cycles
    return TilePlan("dense", 1, channels, 1, ct, bufs, n * k * e,
                    n * o * _dtype_bytes(spec.out_dtype), wgt, transfers, spec.macs(), cycles,
                    db == 2)
