"""The conv stages of a ``gap8.conv`` / ``dw_pw`` / ``pw_dw`` composite, read once for the
three conv families.

A stage is ``conv2d -> elementwise ops`` (float) or, in a QDQ model,
``dequantize -> conv2d(dequantize(int8 weights)) -> [+ dequantize(int32 bias)] -> [ReLU/Clip]
-> quantize``, which becomes integer arithmetic: raw int8 operands into an int32 accumulator,
an int32 bias that also holds ``-z_x * sum(w)`` (the input zero point out of the MACs), and a
:class:`Requant` (``composite.requantization``). Nothing of the float graph is left inside an
integer stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from tvm import relax

from ..errors import UnsupportedError
from .composite import (DEQUANTIZE, QUANTIZE, CompositeReader, QuantAct, QuantConst,
                        activation_range, clip_bounds, output_dtype, real_value, requantization)
from .epilogue import ACC, SUPPORTED_OPS, Epilogue, EpilogueOp, Ref
from .lut import read_steps
from .requant import DEFAULT_REQUANT


@dataclass
class Stage:
    """One conv and the ops after it, as read (``ops``: (op, operands, bounds) with operands
    ``ACC``, ``Ref("val", i)`` or ``("const", value)``)."""

    conv: relax.Call
    weight: np.ndarray  # float32, or int8 for an integer stage
    groups: int
    act: QuantAct | None = None  # the dequantized input of an integer stage
    w_scale: np.ndarray | None = None  # per output channel, integer stages
    ops: list = field(default_factory=list)
    out: tuple | None = None  # (QuantParams, dtype) of the quantize closing an integer stage
    out_var: relax.Var | None = None  # the var that quantize is bound to
    between: list = field(default_factory=list)  # bindings after ``out``, before the next conv

    @property
    def integer(self) -> bool:
        return self.out is not None

    @property
    def in_zp(self) -> int:
        return self.act.params.zero_point if self.act is not None else 0


@dataclass
class Kernel:
    """Everything a schedule needs, plus the call_tir arguments."""

    stages: list
    x: relax.Expr  # the activation input (float, or int8 for an integer kernel)
    channel_tensors: list = field(default_factory=list)  # relax constants
    channel_shapes: list = field(default_factory=list)
    channel_dtypes: list = field(default_factory=list)
    epilogues: list = field(default_factory=list)
    steps: list = field(default_factory=list)  # lut.IntStep: integer ops between two stages
    tables: list = field(default_factory=list)  # their 256-entry tables (numpy)

    def add_channel(self, arr: np.ndarray) -> int:
        c = arr.size
        # the dtype said: relax.const narrows an int64 array to int32 without it
        self.channel_tensors.append(relax.const(arr.reshape(1, c, 1, 1), str(arr.dtype)))
        self.channel_shapes.append((1, c, 1, 1))
        self.channel_dtypes.append(str(arr.dtype))
        return len(self.channel_tensors) - 1

    def requant_epilogue(self, requant, arrays) -> Epilogue:
        bias, mult, shift = (self.add_channel(a) for a in arrays)
        return Epilogue(requant=dataclasses.replace(requant, bias=bias, mult=mult, shift=shift))


def _conv_stage(r: CompositeReader, call) -> Stage:
    wdesc = r.value(call.args[1])
    if wdesc is None:
        raise UnsupportedError("conv2d with non-constant weights")
    stage = Stage(conv=call, weight=None, groups=int(call.attrs.groups))
    act = r.values.get(call.args[0])
    if isinstance(act, QuantAct):
        if not isinstance(wdesc, QuantConst):
            raise UnsupportedError("a quantized activation with float weights")
        if np.any(wdesc.zero_point != 0):
            raise UnsupportedError("weights with a non-zero zero point")
        stage.weight, stage.act = wdesc.q, act
        stage.w_scale = np.broadcast_to(wdesc.scale.reshape(-1), (wdesc.q.shape[0],)).copy()
    else:
        if isinstance(wdesc, QuantConst):
            raise UnsupportedError("float activation with quantized weights")
        stage.weight = wdesc.astype(np.float32)
    return stage


def _stage_op(r: CompositeReader, call, cur) -> tuple:
    op = call.op.name
    if op not in SUPPORTED_OPS:
        raise UnsupportedError(f"{op} inside a fused group")
    operands = []
    for a in call.args:
        if isinstance(a, relax.Var) and a in cur:
            operands.append(cur[a])
            continue
        value = r.value(a)
        if value is None:
            if op == "relax.clip":
                continue  # the bounds: PrimValues, carried in `bounds`
            raise UnsupportedError(f"operand of {op} is not a constant")
        operands.append(("const", value))
    return op, tuple(operands), _op_params(call)


def _op_params(call):
    """What an op carries besides its operands: clip's bounds, leakyrelu's slope."""
    if call.op.name == "relax.clip":
        return clip_bounds(call)
    if call.op.name == "relax.nn.leakyrelu":
        return float(call.attrs.alpha)
    return None


def _read_stages(r: CompositeReader):
    stages, x, cur = [], None, {}
    for b in r.bindings():
        call = b.value
        op = call.op.name
        if op == DEQUANTIZE:
            r.dequantize(b.var, call)
            if stages and stages[-1].integer:
                stages[-1].between.append(b)  # read again by ``_read_between``
        elif r.alias_constant(b.var, call):
            pass
        elif op == "relax.nn.conv2d":
            stage = _conv_stage(r, call)
            if x is None:
                x = stage.act.source if stage.act is not None else r.resolve(call.args[0])
            stages.append(stage)
            cur = {b.var: ACC}
        elif not stages:
            raise UnsupportedError(f"{op} before the first conv of a group")
        elif stages[-1].integer:  # the stage is closed: what the quantizer left after it
            stages[-1].between.append(b)
        elif op == QUANTIZE:
            if stages[-1].act is None:
                raise UnsupportedError("quantize after a float conv")
            stages[-1].out = (r.per_tensor(call, "quantize"), output_dtype(call, "quantize"))
            stages[-1].out_var = b.var
        else:
            stages[-1].ops.append(_stage_op(r, call, cur))
            cur[b.var] = Ref("val", len(stages[-1].ops) - 1)
    return stages, x


def _integer_epilogue(kernel: Kernel, stage: Stage, mode: str) -> Epilogue:
    """quantize(act(conv + bias)): only a bias add and ReLU/Clip may sit in between."""
    bias, acts = None, []
    for op, operands, bounds in stage.ops:
        if op == "relax.add" and operands[0] == ACC and operands[1][0] == "const" \
                and bias is None:
            bias = real_value(operands[1][1])
        elif op in ("relax.nn.relu", "relax.clip"):
            acts.append((op, bounds))
        else:
            raise UnsupportedError(f"{op} inside an integer conv stage (supported: bias add, "
                                   "ReLU, Clip)")
    out, dtype = stage.out
    requant, arrays = requantization(stage.act.params.scale, stage.w_scale, out, dtype,
                                     activation_range(acts), bias, mode, stage.in_zp,
                                     stage.weight)
    return kernel.requant_epilogue(requant, arrays)


def _float_epilogue(kernel: Kernel, stage: Stage) -> Epilogue:
    def ref(o):
        if not isinstance(o, tuple):
            return o
        arr = real_value(o[1]).astype(np.float32)
        return Ref("scalar", float(arr.reshape(()))) if arr.size == 1 else \
            Ref("channel", kernel.add_channel(arr))

    def op(name, operands, params):
        alpha = params if name == "relax.nn.leakyrelu" else None
        return EpilogueOp(name, tuple(ref(o) for o in operands),
                          params if name == "relax.clip" else None, alpha)

    return Epilogue(tuple(op(*o) for o in stage.ops))


def read_composite(func: relax.Function, args, requant: str = DEFAULT_REQUANT) -> Kernel:
    """A conv / dw_pw / pw_dw composite -> its stages, input and epilogues (integer ones
    requantized by mode ``requant``)."""
    r = CompositeReader(func, args, requant)
    kernel = read_kernel(r)
    if len(kernel.stages) == 2 and kernel.stages[0].integer:
        _read_between(r, kernel, *kernel.stages)
    return kernel


def read_kernel(r: CompositeReader) -> Kernel:
    """The conv stages (any number) of the bindings ``r`` reads, with their epilogues."""
    stages, x = _read_stages(r)
    kernel = Kernel(stages=stages, x=x)
    for stage in stages:
        kernel.epilogues.append(_integer_epilogue(kernel, stage, r.requant) if stage.integer
                                else _float_epilogue(kernel, stage))
    return kernel


def _read_between(r: CompositeReader, kernel: Kernel, first: Stage, second: Stage):
    """The table / product kernels the quantizer left between the two convs of a fused group
    (``lut.read_steps``); the second conv must read the last of their values."""
    steps, tables, last = read_steps(r, first.between, first.out_var)
    if second.act is None or not second.act.source.same_as(last):
        raise UnsupportedError("the second conv does not read the first conv's (activated) "
                               "output")
    kernel.steps, kernel.tables = steps, tables


def spec_fields(kernel: Kernel) -> dict:
    """The KernelSpec fields every conv-like spec takes from its stages."""
    first = kernel.stages[0]
    return dict(channel_shapes=tuple(kernel.channel_shapes),
                channel_dtypes=tuple(kernel.channel_dtypes), dtype=str(kernel.x.ty.dtype),
                in_zp=first.in_zp, w_dtype=str(first.weight.dtype))
