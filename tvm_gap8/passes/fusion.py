"""Fuse depthwise-separable conv pairs into composite functions.

``FuseDepthwisePointwise``: DW kxk -> [bias] -> [act] -> PW 1x1 -> [bias] -> [act]  => ``gap8.dw_pw``
``FusePointwiseDepthwise``: PW 1x1 -> [bias] -> [act] -> DW kxk -> [bias] -> [act]  => ``gap8.pw_dw``

Both are ``FuseOpsByPattern`` with a check callback holding the rules (``patterns.py``). The
composite functions carry ``gap8.kind``, ``gap8.layouts`` and ``gap8.onnx_nodes``; a match the
rules refuse is recorded with its reason in the module attribute ``gap8.fusion_refused``.

A DW belongs to at most one group: once fused it sits inside a composite function and no later
pattern sees it. Pairing rule when a DW could pair either way (inverted residuals): the pass that
runs first wins; the ``gap8`` pipeline runs ``FuseDepthwisePointwise`` first (the paper's
primary ``dw_pw`` kernel, and the only choice for t=1 blocks), then ``FusePointwiseDepthwise``
for DWs left over.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.transform import FusionPattern, PatternCheckContext

from ..irutil import bindings, node_name_of
from ..kernels.epilogue import SUPPORTED_OPS
from ..kernels.fused import LAYOUTS
from ..target import gap8_enabled
from ..kernels import patterns

REFUSED_ATTR = "gap8.fusion_refused"


def _node(expr) -> str:
    return node_name_of(expr) or "<unnamed>"


def _const_value(expr):
    # relax tensor constants are GenericConst; FloatImm/IntImm are Constants too (scalars)
    if isinstance(expr, tvm.ir.expr.GenericConst):
        return expr.value.numpy()
    return None


def epilogue_problem(values) -> str | None:
    """Every constant operand of the elementwise ops must be a scalar or per-channel."""
    for value in values:
        if not isinstance(value, relax.Call) or not isinstance(value.op, tvm.ir.Op):
            continue
        if value.op.name not in SUPPORTED_OPS:
            continue
        c = int(value.ty.shape.values[1])
        for arg in value.args:
            arr = _const_value(arg)
            if arr is None or arr.size == 1:
                continue
            if arr.size != c or (arr.ndim == 4 and arr.shape != (1, c, 1, 1)) or arr.ndim not in (3, 4):
                return (f"{value.op.name} by a constant of shape {list(arr.shape)} is not a "
                        f"per-channel or scalar operand (node {_node(value)})")
    return None


def _escape_problem(ctx: PatternCheckContext) -> str | None:
    """An intermediate of the match used outside it would be recomputed or lost: refuse."""
    root_var = ctx.value_to_bound_var.get(ctx.matched_expr)
    inside = set(ctx.matched_bindings.keys())
    for var, value in ctx.matched_bindings.items():
        if root_var is not None and var.same_as(root_var):
            continue
        users = list(ctx.var_usages.get(var, []))
        outside = [u for u in users if u not in inside]
        if outside or not isinstance(var, relax.DataflowVar):
            others = ", ".join(_node(ctx.matched_bindings.get(u, u)) for u in outside) or \
                "the function's output"
            return (f"the intermediate {_node(value)} has another consumer outside the pair "
                    f"({others})")
    return None


def pair_problem(kind: str, dw, pw) -> str | None:
    """The fusion rules for one (DW, PW) pair, in the order a reader would check them."""
    return (patterns.dtype_problem(dw) or patterns.dtype_problem(pw)
            or patterns.depthwise_problem(dw) or patterns.pointwise_problem(pw))


class _GroupFormation:
    """FuseOpsByPattern over a float and a QDQ pattern of one kind, with the rule check."""

    kind = ""
    patterns: tuple = ()  # pattern factories: () -> (pattern, annotations)

    # subclasses define _convs(ctx) -> the anchor calls (None: not a candidate) and
    # _problem(ctx) -> why the match must not fuse (None: it may)

    def __init__(self):
        self.refused: list[dict] = []

    def _check(self, ctx: PatternCheckContext) -> bool:
        convs = self._convs(ctx)
        if convs is None:
            return False
        reason = self._problem(ctx)
        if reason:
            self.refused.append({"kind": self.kind, "onnx_nodes": [_node(c) for c in convs],
                                 "reason": reason})
            return False
        return True

    def _attrs(self, annotated) -> dict:
        """Name the layer on the composite function. Besides naming it, this keeps
        FuseOpsByPattern from sharing one function between structurally equal groups (e.g.
        MobileNet's five identical 512-channel blocks), so each group keeps its own ONNX
        nodes."""
        keys = ("dw", "pw") if self.kind == "dw_pw" else ("pw", "dw") \
            if self.kind == "pw_dw" else ("conv",) if self.kind == "conv" else ("anchor",)
        return {"gap8.layer": "+".join(_node(annotated[k]) for k in keys)}

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if not gap8_enabled():
            return mod
        self.refused = []
        fusion_patterns = []
        for factory in self.patterns:
            pattern, annotations = factory()
            fusion_patterns.append(FusionPattern(f"gap8.{self.kind}", pattern, annotations,
                                                 self._check, self._attrs))
        fused = relax.transform.FuseOpsByPattern(fusion_patterns, bind_constants=False)(mod)
        fused = _annotate_composites(fused, self.kind)
        return _record_refusals(fused, self.refused)


POLICIES = ("all", "profitable")


class _DepthwiseSeparableFusion(_GroupFormation):
    """``policy="all"`` fuses every pair the rules allow; ``"profitable"`` also asks the tiler
    whether the fused kernel's modelled cycles beat the two separate kernels' on ``hw``, and
    refuses the pair (saying so) when they do not."""

    def __init__(self, hw=None, policy: str = "all"):
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(f"fusion policy {policy!r}: one of {', '.join(POLICIES)}")
        from ..target import GAP8

        self.hw = hw or GAP8
        self.policy = policy

    def _convs(self, ctx):
        dw, pw = ctx.annotated_expr["dw"], ctx.annotated_expr["pw"]
        if not patterns.is_depthwise_like(dw):
            return None  # two ordinary convs: not a candidate, nothing to record
        return (dw, pw) if self.kind == "dw_pw" else (pw, dw)

    def _problem(self, ctx):
        dw, pw = ctx.annotated_expr["dw"], ctx.annotated_expr["pw"]
        problem = (pair_problem(self.kind, dw, pw) or _escape_problem(ctx)
                   or epilogue_problem(ctx.matched_bindings.values()))
        if problem is None:  # every policy: a fused kernel that fits no tile stays unfused
            problem = self._unfit(ctx)
        if problem is None and self.policy == "profitable":
            problem = self._unprofitable(ctx, dw, pw)
        return problem

    def _unfit(self, ctx) -> str | None:
        """The bytes the fused kernel's smallest tile needs vs the L1 budget, when no tile of
        it fits (the kernel read off the match as the lowering will read the composite)."""
        from ..errors import Gap8Error
        from ..kernels.tiling import fused_fit_problem
        from .extract import read_composite
        from .lower import fused_spec

        try:
            spec = fused_spec(self.kind, read_composite(_matched_function(ctx), []))
        except Gap8Error:
            return None  # the lowering will say what it cannot read
        return fused_fit_problem(spec, self.hw)

    def _unprofitable(self, ctx, dw, pw) -> str | None:
        from ..errors import TilingError
        from ..kernels.conv import ConvKernelSpec
        from ..kernels.fused import FusedKernelSpec
        from ..kernels.tiling import choose_plan, plan_conv, plan_fused
        from .extract import conv_geom

        integer = any(getattr(v, "op", None) is not None and
                      getattr(v.op, "name", "") == "relax.quantize"
                      for v in ctx.matched_bindings.values())
        dtype = "int8" if integer else "float32"
        first, second = (dw, pw) if self.kind == "dw_pw" else (pw, dw)
        shape = tuple(int(v) for v in first.args[0].ty.shape.values)
        fused_spec = FusedKernelSpec(self.kind, shape, conv_geom(first), conv_geom(second),
                                     dtype=dtype)
        mid_shape = tuple(int(v) for v in second.args[0].ty.shape.values)
        separate = [ConvKernelSpec(shape, conv_geom(first), int(first.attrs.groups),
                                   dtype=dtype),
                    ConvKernelSpec(mid_shape, conv_geom(second), int(second.attrs.groups),
                                   dtype=dtype)]
        try:
            fused = plan_fused(fused_spec, self.hw).cycles
        except TilingError:
            return f"the fused kernel does not fit L1 on {self.hw.name} at any tile"
        try:
            apart = sum(choose_plan(s, self.hw, "?", plan_conv).cycles for s in separate)
        except TilingError:
            return None  # only the fused form fits
        if fused >= apart:
            return (f"fusion not profitable on {self.hw.name}: fused {fused:,.0f} modelled "
                    f"cycles vs {apart:,.0f} as two kernels (--fusion profitable)")
        return None


def _matched_function(ctx: PatternCheckContext):
    """The match as ``read_composite`` reads a composite function: its bindings in dataflow
    order (no parameters: values from outside stay free variables)."""
    from types import SimpleNamespace

    pending = dict(ctx.matched_bindings.items())
    order = []
    while pending:
        ready = [v for v, value in pending.items()
                 if not any(u in pending for u in relax.analysis.free_vars(value))]
        if not ready:
            raise RuntimeError("cyclic match")  # cannot happen in SSA dataflow
        for v in ready:
            order.append(SimpleNamespace(var=v, value=pending.pop(v)))
    return SimpleNamespace(params=[], body=SimpleNamespace(
        blocks=[SimpleNamespace(bindings=order)]))


@tvm.transform.module_pass(opt_level=0, name="FuseDepthwisePointwise")
class FuseDepthwisePointwise(_DepthwiseSeparableFusion):
    """DW -> (elementwise) -> PW into one ``gap8.dw_pw`` composite function."""

    kind = "dw_pw"
    patterns = (patterns.q_dw_pw_pattern, patterns.dw_pw_pattern)


@tvm.transform.module_pass(opt_level=0, name="FusePointwiseDepthwise")
class FusePointwiseDepthwise(_DepthwiseSeparableFusion):
    """PW -> (elementwise) -> DW into one ``gap8.pw_dw`` composite function."""

    kind = "pw_dw"
    patterns = (patterns.q_pw_dw_pattern, patterns.pw_dw_pattern)


@tvm.transform.module_pass(opt_level=0, name="FormConvKernels")
class FormConvKernels(_GroupFormation):
    """Every conv left over (stem, head, expansion PW, refused DW) -> ``gap8.conv``, with its
    bias and activation, so that it too becomes one tiled L1 kernel."""

    kind = "conv"
    patterns = (patterns.q_conv_pattern, patterns.conv_pattern)

    def _convs(self, ctx):
        return (ctx.annotated_expr["conv"],)

    def _problem(self, ctx):
        conv = ctx.annotated_expr["conv"]
        return (patterns.dtype_problem(conv) or patterns.conv_problem(conv)
                or _escape_problem(ctx) or epilogue_problem(ctx.matched_bindings.values()))


class _LayerKernelFormation(_GroupFormation):
    problem = staticmethod(lambda call: None)

    def _convs(self, ctx):
        return (ctx.annotated_expr["anchor"],)

    def _problem(self, ctx):
        anchor = ctx.annotated_expr["anchor"]
        return self.problem(anchor) or _escape_problem(ctx)


@tvm.transform.module_pass(opt_level=0, name="FormAddKernels")
class FormAddKernels(_LayerKernelFormation):
    """Residual Adds (with an optional ReLU/Clip) -> ``gap8.add``."""

    kind = "add"
    problem = staticmethod(patterns.add_problem)  # (before `patterns` is shadowed)
    patterns = (patterns.q_add_pattern, patterns.add_pattern)


@tvm.transform.module_pass(opt_level=0, name="FormPoolKernels")
class FormPoolKernels(_LayerKernelFormation):
    """Global average pooling -> ``gap8.pool``."""

    kind = "pool"
    problem = staticmethod(patterns.pool_problem)  # (before `patterns` is shadowed)
    patterns = (patterns.q_pool_pattern, patterns.pool_pattern)


@tvm.transform.module_pass(opt_level=0, name="FormDenseKernels")
class FormDenseKernels(_LayerKernelFormation):
    """Fully connected layers (matmul by constant weights + bias) -> ``gap8.dense``."""

    kind = "dense"
    problem = staticmethod(patterns.dense_problem)  # (before `patterns` is shadowed)
    patterns = (patterns.q_dense_pattern, patterns.dense_pattern)


class _QuantizedElementwise(_LayerKernelFormation):
    """Only integer forms: a float elementwise op stays on TVM's legalized op."""

    def _problem(self, ctx):
        for value in ctx.matched_bindings.values():
            if isinstance(value, relax.Call) and getattr(value.op, "name", "") in (
                    "relax.quantize", "relax.dequantize"):
                for q in value.args[1:]:
                    if isinstance(q, tvm.ir.expr.GenericConst) and q.value.numpy().size != 1:
                        return "per-channel activation quantization"
                dtype = str(value.ty.dtype if value.op.name == "relax.quantize"
                            else value.args[0].ty.dtype)
                if dtype not in ("int8", "uint8"):
                    return f"{dtype} activations"
        return super()._problem(ctx)


@tvm.transform.module_pass(opt_level=0, name="FormLutKernels")
class FormLutKernels(_QuantizedElementwise):
    """quantize(f(dequantize(x))) for an elementwise f -> ``gap8.lut`` (a 256-entry table)."""

    kind = "lut"
    problem = staticmethod(patterns.lut_problem)  # (before `patterns` is shadowed)
    patterns = (patterns.q_lut_pattern,)


@tvm.transform.module_pass(opt_level=0, name="FormMulKernels")
class FormMulKernels(_QuantizedElementwise):
    """quantize(dequantize(a) * dequantize(b)) -> ``gap8.mul`` (integer product, requantized)."""

    kind = "mul"
    problem = staticmethod(patterns.mul_problem)  # (before `patterns` is shadowed)
    patterns = (patterns.q_mul_pattern,)


def _annotate_composites(mod, kind):
    layouts = LAYOUTS.get(kind, {"input": "CHW", "output": "CHW"})
    for gv, func in list(mod.functions_items()):
        if not isinstance(func, relax.Function) or func.attrs is None:
            continue
        if func.attrs.get("Composite") != f"gap8.{kind}" or "gap8.kind" in func.attrs:
            continue
        nodes = []
        for block in func.body.blocks:
            for b in block.bindings:
                name = node_name_of(b.value)
                if name and name not in nodes:
                    nodes.append(name)
        func = func.with_attr("gap8.kind", kind)
        func = func.with_attr("gap8.layouts", dict(layouts))
        func = func.with_attr("gap8.onnx_nodes", nodes)
        mod[gv] = func
    return mod


def _record_refusals(mod, refused):
    seen = {(r["kind"], tuple(r["onnx_nodes"])) for r in refusals_of(mod)}
    records = list(mod.attrs[REFUSED_ATTR]) if mod.attrs and REFUSED_ATTR in mod.attrs else []
    for r in refused:
        key = (r["kind"], tuple(r["onnx_nodes"]))
        if key not in seen:
            seen.add(key)
            records.append(r)
    if not records:
        return mod
    return mod.with_attr(REFUSED_ATTR, records)


def refusals_of(mod) -> list[dict]:
    if mod.attrs is None or REFUSED_ATTR not in mod.attrs:
        return []
    return [{"kind": str(r["kind"]), "onnx_nodes": [str(n) for n in r["onnx_nodes"]],
             "reason": str(r["reason"])} for r in mod.attrs[REFUSED_ATTR]]


# -- explaining the DWs no pattern took ------------------------------------------------------

def _users(func):
    users: dict = {}
    for b in bindings(func):
        for v in relax.analysis.free_vars(b.value) if not isinstance(b.value, relax.Var) else [b.value]:
            users.setdefault(v, []).append(b)
    return users


def _is_epilogue_op(value) -> bool:
    return isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) \
        and value.op.name in SUPPORTED_OPS


def _describe(value) -> str:
    if isinstance(value, relax.Call):
        if isinstance(value.op, tvm.ir.Op):
            op = value.op.name.replace("relax.", "")
        elif isinstance(value.op, relax.GlobalVar):
            op = value.op.name_hint
        else:
            op = "call"
        return f"{op} ({_node(value)})"
    return type(value).__name__


UNFUSED_ATTR = "gap8.unfused_dw"


@tvm.transform.module_pass(opt_level=0, name="RecordUnfusedDepthwise")
def record_unfused_depthwise(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """After the fusion passes: store, in the module attribute ``gap8.unfused_dw``, every DW
    left outside a group and why (later passes turn the DW into a kernel of its own)."""
    return mod.with_attr(UNFUSED_ATTR, explain_unfused(mod))


def unfused_of(mod) -> list[dict]:
    if mod.attrs is None or UNFUSED_ATTR not in mod.attrs:
        return []
    return [{"onnx_nodes": [str(n) for n in r["onnx_nodes"]], "reason": str(r["reason"])}
            for r in mod.attrs[UNFUSED_ATTR]]


def explain_unfused(mod) -> list[dict]:
    """For every depthwise conv left outside a fused group in ``main``, say why."""
    func = mod["main"]
    users = _users(func)
    lookup = {b.var: b.value for b in bindings(func)}
    recorded = {tuple(r["onnx_nodes"]): r for r in refusals_of(mod)}
    out = []
    for b in bindings(func):
        v = b.value
        if not (isinstance(v, relax.Call) and isinstance(v.op, tvm.ir.Op)
                and v.op.name == "relax.nn.conv2d" and patterns.is_depthwise_like(v)):
            continue
        dw = _node(v)
        # the DW is the first node of a refused dw_pw pair, the second of a pw_dw pair
        mine = {r["kind"]: r["reason"] for key, r in recorded.items()
                if key[0 if r["kind"] == "dw_pw" else -1] == dw}
        # each direction: the rule that refused a matched pair, or what the graph shows
        forward = mine.get("dw_pw") or _explain_forward(b, users, lookup)
        backward = mine.get("pw_dw") or _explain_backward(v, func)
        if backward and backward != forward:
            backward = backward if backward.startswith("producer") else f"producer: {backward}"
        reasons = [r for r in (forward, backward) if r]
        out.append({"onnx_nodes": [dw], "reason": "; ".join(dict.fromkeys(reasons)) or
                    "no fusable neighbour"})
    return out


_PASS_THROUGH = {"relax.quantize", "relax.dequantize"}  # QDQ around an elementwise chain
_CONSTANT_MAKERS = {"relax.reshape", "relax.dequantize", "relax.permute_dims"}


def _constant_derived(e, lookup, depth=0) -> bool:
    """A constant, or a reshape/dequantize of one (what a QDQ model's bias looks like)."""
    if not isinstance(e, relax.Var):
        return True
    value = lookup.get(e)
    if value is None or depth > 4:
        return False
    if isinstance(value, tvm.ir.expr.GenericConst):
        return True
    return isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and \
        value.op.name in _CONSTANT_MAKERS and \
        all(_constant_derived(a, lookup, depth + 1) for a in value.args)


def _epilogue_closure(binding, users, lookup=None):
    """The elementwise ops fed (only) by the DW output and constants: its epilogue."""
    lookup = lookup or {}
    closure = {binding.var}
    frontier = []
    changed = True
    while changed:
        changed = False
        for var in list(closure):
            for u in users.get(var, []):
                if u.var in closure:
                    continue
                args_ok = all(a in closure or _constant_derived(a, lookup)
                              for a in u.value.args) if isinstance(u.value, relax.Call) else False
                elementwise = _is_epilogue_op(u.value) or (
                    isinstance(u.value, relax.Call) and isinstance(u.value.op, tvm.ir.Op)
                    and u.value.op.name in _PASS_THROUGH)
                if elementwise and args_ok:
                    closure.add(u.var)
                    changed = True
    for var in closure:
        for u in users.get(var, []):
            if u.var not in closure and u not in frontier:
                frontier.append(u)
    return closure, frontier


def _explain_forward(binding, users, lookup=None) -> str | None:
    problem = patterns.depthwise_problem(binding.value) or patterns.dtype_problem(binding.value)
    if problem:
        return problem
    _, frontier = _epilogue_closure(binding, users, lookup)
    convs = [u for u in frontier if isinstance(u.value, relax.Call)
             and isinstance(u.value.op, tvm.ir.Op) and u.value.op.name == "relax.nn.conv2d"]
    others = [u for u in frontier if u not in convs]
    non_elementwise = [u for u in others if not _is_epilogue_op(u.value)]
    if non_elementwise:
        return (f"a non-elementwise op, {_describe(non_elementwise[0].value)}, sits between the "
                f"DW and the next PW (the DW output feeds "
                f"{', '.join(_describe(u.value) for u in frontier)}; e.g. squeeze-excite)")
    if others or len(convs) > 1:
        return (f"the DW output has {len(frontier)} consumers "
                f"({', '.join(_describe(u.value) for u in frontier)}), DW->PW needs exactly one")
    if not convs:
        return "the DW output is a graph output"
    return patterns.pointwise_problem(convs[0].value) or "the following PW is already fused"


def _explain_backward(dw, func) -> str | None:
    lookup = {b.var: b.value for b in bindings(func)}
    cur = dw.args[0]
    while isinstance(cur, relax.Var) and cur in lookup:
        val = lookup[cur]
        if _is_epilogue_op(val):
            cur = val.args[0]
            continue
        if isinstance(val, relax.Call) and isinstance(val.op, tvm.ir.Op) \
                and val.op.name == "relax.nn.conv2d":
            p = patterns.pointwise_problem(val)
            return f"producer: {p}" if p else None
        return None
    return None
