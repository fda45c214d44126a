"""Elementwise epilogues of a convolution (bias, BN shift, ReLU, ReLU6/Clip, HardSwish, ...).

The fusion passes turn the Relax ops between a conv and its consumer into an ``Epilogue``: a
tiny SSA program over one output element. Lowering evaluates it on the conv's accumulator inside
the fused kernel, so whatever sequence of supported ops the pattern matched is computed exactly
as Relax would (no activation is re-derived from a name).

Operands: ``("acc",)`` the conv result; ``("val", i)`` the result of op ``i``; ``("scalar", v)``
a constant; ``("channel", k)`` element ``[channel]`` of the k-th per-channel tensor (a
``[1, C, 1, 1]`` constant such as a bias).

Integer kernels end with ``gap8.requant``: int32 accumulator + int32 bias, times a per-channel
int32 multiplier, rounding right shift, plus the output zero point, clamped (the activation
folded into the clamp bounds) and cast to int8. See ``requant.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Relax op -> number of tensor operands. These are the ops an epilogue may contain.
SUPPORTED_OPS = {
    "relax.add": 2, "relax.subtract": 2, "relax.multiply": 2, "relax.divide": 2,
    "relax.maximum": 2, "relax.minimum": 2, "relax.nn.relu": 1, "relax.clip": 1,
}


@dataclass(frozen=True)
class Epilogue:
    ops: tuple = ()  # ((op_name, (operand, ...), extra), ...)

    def apply(self, acc, channel, channel_tensors):
        """The TIR expression of the epilogue for one element."""
        from tvm import tirx

        dtype = acc.dtype
        vals = []

        def operand(o):
            kind = o[0]
            if kind == "acc":
                return acc
            if kind == "val":
                return vals[o[1]]
            if kind == "scalar":
                return tirx.const(o[1], dtype)
            if kind == "channel":
                t = channel_tensors[o[1]]
                return t[(0, channel, 0, 0)] if len(t.shape) == 4 else t[channel]
            raise ValueError(o)

        for op, operands, extra in self.ops:
            a = [operand(o) for o in operands]
            if op == "gap8.requant":
                from .requant import requant_expr

                acc_plus_bias, mult, shift = a[0] + a[1], a[2], a[3]
                zp, lo, hi, out_dtype = extra
                vals.append(requant_expr(acc_plus_bias, mult, shift, zp, lo, hi, out_dtype))
                continue
            if op == "relax.add":
                v = a[0] + a[1]
            elif op == "relax.subtract":
                v = a[0] - a[1]
            elif op == "relax.multiply":
                v = a[0] * a[1]
            elif op == "relax.divide":
                v = a[0] / a[1]
            elif op == "relax.maximum":
                v = tirx.max(a[0], a[1])
            elif op == "relax.minimum":
                v = tirx.min(a[0], a[1])
            elif op == "relax.nn.relu":
                v = tirx.max(a[0], tirx.const(0, dtype))
            elif op == "relax.clip":
                lo, hi = extra
                v = tirx.min(tirx.max(a[0], tirx.const(lo, dtype)), tirx.const(hi, dtype))
            else:  # the pass only builds epilogues from SUPPORTED_OPS
                raise ValueError(f"unsupported epilogue op {op}")
            vals.append(v)
        return vals[-1] if vals else acc

    def channels(self) -> set:
        """Indices of the per-channel tensors this epilogue reads."""
        return {o[1] for _, operands, _ in self.ops for o in operands if o[0] == "channel"}

    @property
    def out_dtype(self) -> str | None:
        """The integer type a requantizing epilogue produces (None for float epilogues)."""
        for op, _, extra in self.ops:
            if op == "gap8.requant":
                return extra[3]
        return None

    @property
    def is_integer(self) -> bool:
        return any(op == "gap8.requant" for op, _, _ in self.ops)

    def describe(self) -> str:
        """A human name for the epilogue, e.g. ``bias+relu6``."""
        if self.is_integer:
            (_, _, (zp, lo, hi, dt)) = [o for o in self.ops if o[0] == "gap8.requant"][0]
            return f"bias+requant[{dt} zp={zp} clamp={lo}..{hi}]"
        names = [op for op, _, _ in self.ops]
        parts = []
        if names and names[0] == "relax.add" and self.ops[0][1][1][0] == "channel":
            parts.append("bias")
            names = names[1:]
        rest = [op for op, _, _ in self.ops[len(parts):]]
        if rest == ["relax.nn.relu"]:
            parts.append("relu")
        elif rest == ["relax.clip"]:
            lo, hi = self.ops[-1][2]
            parts.append("relu6" if (lo, hi) == (0.0, 6.0) else f"clip[{lo:g},{hi:g}]")
        elif rest in (["relax.add", "relax.clip", "relax.divide", "relax.multiply"],
                      ["relax.add", "relax.clip", "relax.multiply", "relax.divide"]):
            parts.append("hardswish")
        elif rest:
            parts.append("+".join(op.split(".")[-1] for op in rest))
        return "+".join(parts) or "none"
