"""Elementwise epilogues of a convolution (bias, BN shift, ReLU, ReLU6/Clip, HardSwish,
LeakyRelu, PRelu, Sigmoid, SiLU, Tanh, ...).

The fusion passes turn the Relax ops between a conv and its consumer into an ``Epilogue``: a
tiny SSA program over one output element. Lowering evaluates it on the conv's accumulator inside
the fused kernel, so whatever sequence of supported ops the pattern matched is computed exactly
as Relax would (no activation is re-derived from a name).

Operands are ``Ref`` records: the conv result, the result of an earlier op, a constant, or an
element of a per-channel tensor (a ``[1, C, 1, 1]`` constant such as a bias).

Integer kernels have a ``Requant`` instead: int32 accumulator + int32 bias, times a per-channel
int32 multiplier, rounding right shift, plus the output zero point, clamped (the activation
folded into the clamp bounds) and cast to int8. See ``requant.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tvm import tirx

from .requant import DEFAULT_REQUANT, requant_mode

#: Relax op -> number of tensor operands. These are the ops an epilogue may contain.
SUPPORTED_OPS = {
    "relax.add": 2, "relax.subtract": 2, "relax.multiply": 2, "relax.divide": 2,
    "relax.maximum": 2, "relax.minimum": 2, "relax.nn.relu": 1, "relax.clip": 1,
    "relax.nn.leakyrelu": 1, "relax.nn.prelu": 2, "relax.sigmoid": 1, "relax.tanh": 1,
    "relax.exp": 1, "relax.negative": 1, "relax.abs": 1,
}


@dataclass(frozen=True)
class Ref:
    """An operand of an epilogue op: ``acc`` (the accumulator), ``val`` (the result of op
    ``value``), ``scalar`` (the constant ``value``), ``channel`` (element ``[channel]`` of the
    per-channel tensor number ``value``)."""

    kind: str
    value: float = 0


ACC = Ref("acc")


@dataclass(frozen=True)
class EpilogueOp:
    op: str  # a Relax op name of SUPPORTED_OPS
    operands: tuple  # of Ref
    bounds: tuple | None = None  # clip's (lo, hi)
    alpha: float | None = None  # leakyrelu's slope


@dataclass(frozen=True)
class Requant:
    """What follows an int32 accumulator: + the int32 bias, times ``mult / 2^shift`` per
    channel, rounded (``requant.py``), + ``zero_point``, clamped to ``[lo, hi]`` (the
    activation folded in), as ``out_dtype``, by the algorithm ``mode`` (``requant.py``:
    ``fixed`` | ``float32``). ``bias``, ``mult``, ``shift``: indices of the kernel's
    per-channel tensors that hold them; ``min_shift``: the smallest shift of any channel
    (``fixed`` takes its 32-bit form from 33 up)."""

    zero_point: int
    lo: int
    hi: int
    out_dtype: str
    bias: int = -1
    mult: int = -1
    shift: int = -1
    mode: str = DEFAULT_REQUANT
    min_shift: int = 1


_BINARY = {"relax.add": lambda a, b: a + b, "relax.subtract": lambda a, b: a - b,
           "relax.multiply": lambda a, b: a * b, "relax.divide": lambda a, b: a / b,
           "relax.maximum": tirx.max, "relax.minimum": tirx.min,
           # PRelu: the slope operand is per channel (or a scalar), as topi computes it
           "relax.nn.prelu": lambda a, s: tirx.Select(a > tirx.const(0.0, "float32"), a, a * s)}
#: the unary ops as TVM's legalization computes them (topi), so fused and unfused agree
_UNARY = {"relax.sigmoid": tirx.sigmoid, "relax.tanh": tirx.tanh, "relax.exp": tirx.exp,
          "relax.negative": lambda a: -a, "relax.abs": tirx.abs}


def _float_op(e: EpilogueOp, a, dtype):
    if e.op in _BINARY:
        return _BINARY[e.op](a[0], a[1])
    if e.op in _UNARY:
        return _UNARY[e.op](a[0])
    if e.op == "relax.nn.relu":
        return tirx.max(a[0], tirx.const(0, dtype))
    if e.op == "relax.nn.leakyrelu":
        return tirx.Select(a[0] > tirx.const(0, dtype), a[0],
                           a[0] * tirx.const(e.alpha, dtype))
    if e.op == "relax.clip":
        lo, hi = e.bounds
        return tirx.min(tirx.max(a[0], tirx.const(lo, dtype)), tirx.const(hi, dtype))
    raise ValueError(f"unsupported epilogue op {e.op}")  # passes build only SUPPORTED_OPS


@dataclass(frozen=True)
class Epilogue:
    """Float: a program of ``EpilogueOp``; integer: ``requant`` (and no ops)."""

    ops: tuple = ()
    requant: Requant | None = None

    def apply(self, acc, channel, channel_tensors):
        """The TIR expression of the epilogue for one element."""
        def channel_value(k):
            t = channel_tensors[k]
            return t[(0, channel, 0, 0)] if len(t.shape) == 4 else t[channel]

        if self.requant is not None:
            r = self.requant
            return requant_mode(r.mode).expr(acc, channel_value(r.bias), channel_value(r.mult),
                                             channel_value(r.shift), r.zero_point, r.lo, r.hi,
                                             r.out_dtype, r.min_shift)
        vals = []

        def operand(o: Ref):
            return {"acc": lambda: acc, "val": lambda: vals[o.value],
                    "scalar": lambda: tirx.const(o.value, acc.dtype),
                    "channel": lambda: channel_value(o.value)}[o.kind]()

        for e in self.ops:
            vals.append(_float_op(e, [operand(o) for o in e.operands], acc.dtype))
        return vals[-1] if vals else acc

    def reindexed(self, mapping: dict) -> "Epilogue":
        """The same epilogue reading per-channel tensor ``mapping[k]`` where it read ``k``."""
        if self.requant is not None:
            r = self.requant
            return Epilogue(requant=dataclasses.replace(
                r, bias=mapping[r.bias], mult=mapping[r.mult], shift=mapping[r.shift]))

        def ref(o):
            return Ref("channel", mapping[o.value]) if o.kind == "channel" else o

        return Epilogue(tuple(dataclasses.replace(e, operands=tuple(ref(o) for o in e.operands))
                              for e in self.ops))

    def channels(self) -> set:
        """Indices of the per-channel tensors this epilogue reads."""
        if self.requant is not None:
            return {self.requant.bias, self.requant.mult, self.requant.shift}
        return {o.value for e in self.ops for o in e.operands if o.kind == "channel"}

    @property
    def out_dtype(self) -> str | None:
        """The integer type a requantizing epilogue produces (None for float epilogues)."""
        return self.requant.out_dtype if self.requant is not None else None

    @property
    def is_integer(self) -> bool:
        return self.requant is not None

    def describe(self) -> str:
        """A human name for the epilogue, e.g. ``bias+relu6``."""
        if self.requant is not None:
            r = self.requant
            return f"bias+requant[{r.out_dtype} zp={r.zero_point} clamp={r.lo}..{r.hi}]"
        ops = list(self.ops)
        parts = []
        if ops and ops[0].op == "relax.add" and ops[0].operands[1].kind == "channel":
            parts.append("bias")
            ops = ops[1:]
        parts += [_activation_name(ops)] if ops else []
        return "+".join(parts) or "none"


_HARDSWISH = (["relax.add", "relax.clip", "relax.divide", "relax.multiply"],
              ["relax.add", "relax.clip", "relax.multiply", "relax.divide"],
              ["relax.multiply", "relax.add", "relax.clip", "relax.multiply"])
_NAMED = {("relax.sigmoid", "relax.multiply"): "silu",
          ("relax.multiply", "relax.add", "relax.clip"): "hardsigmoid"}


def _activation_name(ops) -> str:
    names = [e.op for e in ops]
    if names == ["relax.nn.relu"]:
        return "relu"
    if names == ["relax.clip"]:
        lo, hi = ops[-1].bounds
        return "relu6" if (lo, hi) == (0.0, 6.0) else f"clip[{lo:g},{hi:g}]"
    if names in _HARDSWISH:
        return "hardswish"
    if tuple(names) in _NAMED:
        return _NAMED[tuple(names)]
    return "+".join(op.split(".")[-1] for op in names)
