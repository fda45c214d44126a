"""The network as a C99 project: Relax ``main`` walked binding by binding.

* Boundary: an int8 model's leading ``quantize`` of the input and trailing ``dequantize`` of the
  output stay outside (the entry point takes and returns the int8 tensors; ``network.h`` gives
  their scales and zero points). Everything in between is emitted.
* Each ``call_tir`` (gap8 kernels and the TIR of ops TVM legalizes for us) is one layer, its
  function emitted by ``plainc``; reshapes are aliases (no code, no memory).
* L2 activations live in one static arena (greedy first-fit over tensor lifetimes); weights are
  ``const`` arrays in L2, or in one L3 array when they do not fit L2 beside the arena (the DMA
  back end stages each L3 weight tile through L2: ``l3_to_l2`` bytes = the weight bytes that
  reach L1, the report's figure); L1 is one static arena of the largest kernel's need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ..errors import UnsupportedError
from ..irutil import group_info
from ..vocab import KIND_ATTR, PLACEMENT_ATTR
from .plainc import C_TYPES, plain_kernel

ALIGN = 8
ALIAS_OPS = ("relax.reshape", "relax.flatten", "relax.squeeze", "relax.expand_dims")


@dataclass
class Tensor:
    name: str
    shape: tuple
    dtype: str
    kind: str  # input | output | act | const | alias
    nbytes: int
    first: int = -1  # layer that writes it (-1: before the network)
    last: int = -1  # last layer reading it
    offset: int = -1  # in the L2 arena (act), or the L3 array (const in L3)
    alias_of: str | None = None
    data: np.ndarray | None = None
    memory: str = "L2"


@dataclass
class Layer:
    index: int
    kernel: str  # the C function
    name: str  # the report's layer name (gap8 kernels) or the TIR function
    kind: str
    args: list  # tensor names, kernel parameter order (inputs then output)
    gap8: bool
    weights_in: str = "L2"


@dataclass
class Boundary:
    """What stays outside the C entry point: input quantization, output dequantization."""
    in_scale: float | None = None
    in_zp: int = 0
    out_scale: float | None = None
    out_zp: int = 0


@dataclass
class Network:
    tensors: dict
    layers: list
    kernels: dict  # C name -> PlainKernel
    inputs: list  # tensor names
    outputs: list
    boundary: Boundary
    l2_arena: int = 0
    l1_arena: int = 0
    l3_bytes: int = 0
    l2_weights: int = 0
    cluster_stack_bytes: int = 1024  # per core, in L1 beside the arena (from the target)
    stats: dict = field(default_factory=dict)


def _ttype(ty):
    shape = tuple(int(d) for d in ty.shape.values)
    dtype = str(ty.dtype)
    return shape, dtype


def _nbytes(shape, dtype):
    return int(np.prod(shape, dtype=np.int64)) * max(1, tvm.runtime.DataType(dtype).bits // 8)


def _op_name(call):
    return call.op.name if isinstance(call.op, tvm.ir.Op) else None


def _scalar(expr):
    return np.asarray(expr.value.numpy()).reshape(-1)[0]


def _strip_boundary(func):
    """(bindings to emit, entry input var, output var, Boundary)."""
    bindings = [b for block in func.body.blocks for b in block.bindings]
    out_var = func.body.body
    params = list(func.params)
    boundary = Boundary()
    first = bindings[0] if bindings else None
    if first is not None and isinstance(first.value, relax.Call) and \
            _op_name(first.value) == "relax.quantize" and first.value.args[0].same_as(params[0]) \
            and len(params) == 1:
        boundary.in_scale = float(_scalar(first.value.args[1]))
        boundary.in_zp = int(_scalar(first.value.args[2]))
        params = [first.var]
        bindings = bindings[1:]
    while bindings and bindings[-1].var.same_as(out_var) and \
            isinstance(bindings[-1].value, relax.Var):  # gv = lv: the output's alias
        out_var = bindings[-1].value
        bindings = bindings[:-1]
    last = bindings[-1] if bindings else None
    if last is not None and last.var.same_as(out_var) and isinstance(last.value, relax.Call) \
            and _op_name(last.value) == "relax.dequantize":
        boundary.out_scale = float(_scalar(last.value.args[1]))
        boundary.out_zp = int(_scalar(last.value.args[2]))
        out_var = last.value.args[0]
        bindings = bindings[:-1]
    return bindings, params, out_var, boundary


def _legalized(mod, bindings, params, out_var):
    """A module whose ``main`` is exactly the emitted part, TVM's legalization applied to ops
    that are not ours (reshape-like ops kept: they are aliases)."""
    body = relax.SeqExpr([relax.BindingBlock(list(bindings))], out_var)
    core = relax.Function(list(params), body, out_var.ty)
    work = tvm.IRModule({gv: f for gv, f in mod.functions_items() if gv.name_hint != "main"})
    work["main"] = core
    keep = {op: (lambda bb, call: call) for op in ALIAS_OPS}
    work = relax.transform.LegalizeOps(keep)(work)
    return work


def _constant_tensor(const, name):
    data = const.value.numpy()
    return Tensor(name, tuple(data.shape), str(data.dtype), "const", max(data.nbytes, 1),
                  data=data)


class _Reader:
    """Reads the legalized ``main`` into tensors and layers."""

    def __init__(self, mod):
        self.mod = mod
        self.tensors: dict = {}
        self.layers: list = []
        self.names: dict = {}  # relax var / constant -> tensor name
        self.consts: list = []

    def tensor_of(self, expr):
        for key, name in self.names.items():
            if key.same_as(expr):
                return name
        if isinstance(expr, tvm.ir.expr.GenericConst):
            name = f"gap8_w{len(self.consts)}"
            self.consts.append(name)
            self.tensors[name] = _constant_tensor(expr, name)
            self.names[expr] = name
            return name
        raise UnsupportedError(f"--emit-c: a layer reads {type(expr).__name__} "
                               f"'{expr}', which the C network cannot address")

    def define(self, var, kind, alias_of=None):
        shape, dtype = _ttype(var.ty)
        name = f"t{len(self.names)}_{var.name}"
        self.tensors[name] = Tensor(name, shape, dtype, kind, _nbytes(shape, dtype),
                                    alias_of=alias_of)
        self.names[var] = name
        return name

    def read(self, params, out_var):
        inputs = [self.define(p, "input") for p in params]
        main = self.mod["main"]
        call_tir = tvm.ir.Op.get("relax.call_tir")
        gap8_index = 0
        for block in main.body.blocks:
            for b in block.bindings:
                v = b.value
                if isinstance(v, relax.Call) and v.op.same_as(call_tir):
                    gap8_index = self._layer(b, v, gap8_index)
                elif isinstance(v, relax.Call) and _op_name(v) in ALIAS_OPS:
                    src = self.tensor_of(v.args[0])
                    self.define(b.var, "alias", alias_of=src)
                elif isinstance(v, relax.Var):
                    self.define(b.var, "alias", alias_of=self.tensor_of(v))
                else:
                    what = _op_name(v) if isinstance(v, relax.Call) else type(v).__name__
                    raise UnsupportedError(f"--emit-c: cannot emit '{what}' in main "
                                           f"(binding {b.var.name})")
        outputs = [self.tensor_of(out_var)]
        return inputs, outputs

    def _layer(self, binding, call, gap8_index):
        gv = call.args[0]
        prim = self.mod[gv]
        if isinstance(binding.var.ty, relax.TupleType):
            raise UnsupportedError(f"--emit-c: {gv.name_hint} has several outputs")
        args = [self.tensor_of(a) for a in call.args[1].fields]
        out = self.define(binding.var, "act")
        is_gap8 = bool(prim.attrs and KIND_ATTR in prim.attrs)
        info = group_info(call) if is_gap8 else None
        name = info["layer"] if info else gv.name_hint
        kind = str(prim.attrs[KIND_ATTR]) if is_gap8 else "tvm"
        weights_in = str(prim.attrs[PLACEMENT_ATTR]["weights_in"]) \
            if is_gap8 and PLACEMENT_ATTR in prim.attrs else "L2"
        self.layers.append(Layer(len(self.layers), gv.name_hint, name, kind, args + [out],
                                 is_gap8, weights_in))
        return gap8_index + int(is_gap8)


def _root(tensors, name):
    while tensors[name].alias_of is not None:
        name = tensors[name].alias_of
    return name


def _lifetimes(net_tensors, layers, outputs):
    for t in net_tensors.values():
        if t.kind == "input":
            t.first = -1
    for layer in layers:
        *ins, out = layer.args
        net_tensors[_root(net_tensors, out)].first = layer.index
        for a in ins:
            r = net_tensors[_root(net_tensors, a)]
            r.last = max(r.last, layer.index)
    for o in outputs:
        root = net_tensors[_root(net_tensors, o)]
        root.last = len(layers)
        if root.kind == "act":
            root.kind = "output"


def first_fit(items):
    """items: [(name, nbytes, first, last)] -> ({name: offset}, peak). Tensors whose lifetimes
    [first, last] intersect never share bytes."""
    placed: list = []
    offsets = {}
    for name, size, first, last in sorted(items, key=lambda i: (-i[1], i[2])):
        size = (size + ALIGN - 1) // ALIGN * ALIGN
        busy = sorted((o, o + s) for n, o, s, f, la in placed
                      if not (la < first or last < f))
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        placed.append((name, offset, size, first, last))
        offsets[name] = offset
    peak = max((o + s for _, o, s, _, _ in placed), default=0)
    return offsets, peak


def _plan_memory(net, hw):
    acts = [(t.name, t.nbytes, t.first, t.last) for t in net.tensors.values()
            if t.kind == "act"]
    offsets, net.l2_arena = first_fit(acts)
    for name, off in offsets.items():
        net.tensors[name].offset = off
    net.l1_arena = max((k.l1_bytes for k in net.kernels.values()), default=0)
    _place_weights(net, hw)


def _layer_consts(net, layer):
    """(staged, direct) constant tensors of a layer: staged ones are read only by DMA calls."""
    kernel = net.kernels[layer.kernel]
    staged, direct = [], []
    for name, (param, _) in zip(layer.args, kernel.params):
        if net.tensors[name].kind == "const":
            (staged if param in kernel.staged else direct).append(name)
    return staged, direct


def _aligned(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _place_weights(net, hw):
    """Weights in L2 while they fit beside the activation arena and the L3 stage (one
    L1-arena-sized buffer); a layer the report streams from L3, or whose staged weights no
    longer fit, has all its staged weights in L3. Weights read directly by the cores stay in L2."""
    per_layer = [_layer_consts(net, layer) for layer in net.layers]
    direct = {n for _, d in per_layer for n in d}
    l2_used = sum(_aligned(net.tensors[n].nbytes) for n in direct)
    budget = hw.l2_budget - net.l2_arena - net.l1_arena
    l3_off = 0
    for layer, (staged, _) in zip(net.layers, per_layer):
        todo = [n for n in dict.fromkeys(staged) if n not in direct
                and net.tensors[n].memory == "L2" and net.tensors[n].offset < 0]
        size = sum(_aligned(net.tensors[n].nbytes) for n in todo)
        if layer.weights_in != "L3" and l2_used + size <= budget:
            l2_used += size
            for n in todo:
                net.tensors[n].offset = 0  # placed (in L2, as its own array)
            continue
        for n in todo:
            t = net.tensors[n]
            t.memory, t.offset = "L3", l3_off
            l3_off += _aligned(t.nbytes)
    for layer in net.layers:  # a layer reading L3 weights streams them
        if any(net.tensors[a].memory == "L3" for a in layer.args[:-1]):
            layer.weights_in = "L3"
    net.l3_bytes, net.l2_weights = l3_off, l2_used


def read_network(lowered: tvm.IRModule, hw, instrument: bool = True) -> Network:
    lowered = relax.transform.ToNonDataflow()(lowered)
    bindings, params, out_var, boundary = _strip_boundary(lowered["main"])
    mod = _legalized(lowered, bindings, params, out_var)
    reader = _Reader(mod)
    inputs, outputs = reader.read(mod["main"].params, mod["main"].body.body)
    kernels = {}
    for layer in reader.layers:
        if layer.kernel not in kernels:
            kernels[layer.kernel] = plain_kernel(layer.kernel, mod[layer.kernel], instrument)
    net = Network(reader.tensors, reader.layers, kernels, inputs, outputs, boundary,
                  cluster_stack_bytes=hw.cluster_stack_bytes)
    _lifetimes(net.tensors, net.layers, outputs)
    _plan_memory(net, hw)
    net.stats = {
        "dma_calls": sum(k.dma_calls for k in kernels.values()),
        "core_copies": sum(k.core_copies for k in kernels.values()),
        "dot_calls": sum(k.dot_calls for k in kernels.values()),
        "parallel_loops": sum(k.parallel_loops for k in kernels.values()),
        "kernels_not_split_over_cores": sorted(k.name for k in kernels.values()
                                               if k.parallel_loops == 0),
    }
    return net


def c_type(dtype: str) -> str:
    if dtype not in C_TYPES:
        raise UnsupportedError(f"--emit-c: no C type for dtype {dtype}")
    return C_TYPES[dtype]
