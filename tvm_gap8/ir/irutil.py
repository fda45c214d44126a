"""Small Relax IR helpers shared by the frontend and the passes."""

from __future__ import annotations

import json

import tvm
from tvm import relax

ONNX_TAG = "onnx:"  # span source name of a call imported from an ONNX node
GROUP_TAG = "gap8:"  # span source name of a fused group call: JSON {"layer", "onnx_nodes"}


def span_named(name: str):
    """A span whose source name carries ``name`` (our way to tag a call with its origin).

    Names carry a tag prefix so they are never confused with TVMScript's spans, whose source
    name is a Python file."""
    return tvm.ir.Span(tvm.ir.SourceName(name), 0, 0, 0, 0)


def tagged(expr, tag: str) -> str | None:
    """The text after ``tag`` in ``expr``'s span source name, if it has that tag."""
    span = getattr(expr, "span", None)
    if span is None:
        return None
    name = span.source_name.name
    return name[len(tag):] if name.startswith(tag) else None


def node_name_of(expr) -> str | None:
    """The ONNX node a Relax call was imported from (None if unknown)."""
    return tagged(expr, ONNX_TAG)


def group_info(call) -> dict | None:
    """``{"layer", "onnx_nodes"}`` of a fused group call, set by the fusion passes."""
    text = tagged(call, GROUP_TAG)
    return json.loads(text) if text else None


def group_span(info: dict):
    return span_named(GROUP_TAG + json.dumps(info, sort_keys=True))


def with_span(call: relax.Call, span) -> relax.Call:
    """``call`` with ``span``; keeps its type so the block builder does not rebuild it."""
    return relax.Call(call.op, call.args, call.attrs, call.ty_args, span=span, ret_ty=call.ty)


def map_bindings(func: relax.Function, fn) -> relax.Function:
    """Rebuild ``func`` with each binding's value replaced by ``fn(binding)`` (None: keep)."""
    blocks, changed = [], False
    for block in func.body.blocks:
        bindings = []
        for b in block.bindings:
            new = fn(b) if isinstance(b, relax.VarBinding) else None
            changed |= new is not None
            bindings.append(b if new is None else relax.VarBinding(b.var, new))
        cls = relax.DataflowBlock if isinstance(block, relax.DataflowBlock) else relax.BindingBlock
        blocks.append(cls(bindings))
    if not changed:
        return func
    body = relax.SeqExpr(blocks, func.body.body)
    new_func = relax.Function(func.params, body, func.ret_ty, func.is_pure, func.attrs)
    return relax.BlockBuilder().normalize(new_func)


def bindings(func: relax.Function):
    for block in func.body.blocks:
        yield from block.bindings
