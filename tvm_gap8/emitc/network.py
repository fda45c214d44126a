"""The network as a C99 project: Relax ``main`` walked binding by binding.

* Boundary: an int8 model's ``quantize`` of each input and trailing ``dequantize`` of each output
  stay outside (the entry point takes and returns the int8 tensors; ``network.h`` gives each
  one's scale and zero point). Everything in between is emitted. A model with several outputs
  (Relax ``main`` returning a Tuple) has one output pointer per field, in order.
* Each ``call_tir`` (gap8 kernels and the TIR of ops TVM legalizes for us) is one layer, its
  function emitted by ``plainc``; reshapes are aliases (no code, no memory).
* Activations live in one static L2 arena (greedy first-fit over tensor lifetimes), those the
  placement put in L3 in a second one (``gap8_l3_acts``); weights are ``const`` arrays in L2,
  or in one L3 array, as the network's placement says (``ir/placement.py``, decided in
  ``passes/place.py`` on the tensors read here: nothing is decided here); the DMA back end
  stages each L3 tile through L2 (``l3_to_l2`` bytes = the weight and input bytes that reach L1
  from L3, ``l2_to_l3`` = the output bytes written back to L3, the report's figures); L1 is
  one static arena of the largest kernel's need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ..errors import UnsupportedError
from ..ir.irutil import group_info
from ..ir.placement import Placement
from ..ir.vocab import KIND_ATTR
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
    offset: int = -1  # in its arena (act: L2 or L3), or the L3 array (const in L3)
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
    weights_in: str = "L2"  # where its DMA-read weights are in the C (set by _place_weights)
    inputs_in: str = "L2"  # where the activations it reads / writes are in the C (_plan_memory)
    output_in: str = "L2"


@dataclass
class Quant:
    """One boundary tensor's quantization, which stays with the caller: an input quantized as
    q = clamp(round(x / scale) + zp), an output dequantized as x = (q - zp) * scale. ``scale``
    None: the tensor crosses the boundary as it is (float, or an integer the model takes)."""
    scale: float | None = None
    zp: int = 0


@dataclass
class Boundary:
    """What stays outside the C entry point: per input its quantization, per output its
    dequantization (in the entry's order)."""
    inputs: list = field(default_factory=list)   # Quant per input
    outputs: list = field(default_factory=list)  # Quant per output


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
    l3_stage_bytes: int = 0  # the L2 buffer L3 tiles pass through (the placement's)
    l3_act_bytes: int = 0  # the L3 activation arena (activations L2 cannot hold)
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


def _per_tensor(call) -> bool:
    """A (de)quantize by one constant scale and zero point (what the caller can apply)."""
    return all(isinstance(a, tvm.ir.expr.GenericConst) and a.value.numpy().size == 1
               for a in call.args[1:3])


def _reads(bindings, var) -> int:
    """How many times ``bindings`` read ``var``."""
    n = [0]

    def visit(expr):
        if isinstance(expr, relax.Var) and expr.same_as(var):
            n[0] += 1

    for b in bindings:
        relax.analysis.post_order_visit(b.value, visit)
    return n[0]


def _strip_boundary(func):
    """(bindings to emit, entry params, output vars, Boundary).

    Inputs: a param read only by one ``quantize`` becomes that quantize's result (the caller
    quantizes). Outputs: the fields of the function's result, a Tuple (several outputs, in
    order) or one var, ``gv = lv`` aliases and the Tuple binding followed (and not emitted); an
    output a ``dequantize`` produces and nothing else reads becomes the dequantize's operand
    (the caller dequantizes)."""
    bindings = [b for block in func.body.blocks for b in block.bindings]
    producer = {b.var: b for b in bindings}

    def bound(var):
        for v, b in producer.items():
            if v.same_as(var):
                return b
        return None

    plumbing = set()

    def resolve(expr):  # follow `gv = lv` and the bound output Tuple
        while isinstance(expr, relax.Var):
            b = bound(expr)
            if b is None or not isinstance(b.value, (relax.Var, relax.Tuple)):
                break
            plumbing.add(id(b))
            expr = b.value
        return expr

    top = resolve(func.body.body)
    fields = [resolve(f) for f in top.fields] if isinstance(top, relax.Tuple) else [top]
    if any(isinstance(f, relax.Tuple) for f in fields):
        raise UnsupportedError("--emit-c: a nested Tuple output; the C entry takes one pointer "
                               "per output tensor")
    params = list(func.params)
    boundary = Boundary(inputs=[Quant() for _ in params])
    drop = set(plumbing)
    rest = [b for b in bindings if id(b) not in plumbing]
    for i, p in enumerate(params):
        readers = [b for b in rest if isinstance(b.value, relax.Call)
                   and _op_name(b.value) == "relax.quantize" and b.value.args[0].same_as(p)]
        if len(readers) == 1 and _reads(rest, p) == 1 and _per_tensor(readers[0].value) \
                and not any(f.same_as(p) for f in fields):
            q = readers[0]
            boundary.inputs[i] = Quant(float(_scalar(q.value.args[1])),
                                       int(_scalar(q.value.args[2])))
            params[i] = q.var
            drop.add(id(q))
    outs = []
    for f in fields:
        b = bound(f)
        quant = Quant()
        if b is not None and isinstance(b.value, relax.Call) \
                and _op_name(b.value) == "relax.dequantize" and _per_tensor(b.value) \
                and _reads(rest, f) == 0:
            quant = Quant(float(_scalar(b.value.args[1])), int(_scalar(b.value.args[2])))
            f = b.value.args[0]
            drop.add(id(b))
        outs.append(f)
        boundary.outputs.append(quant)
    return [b for b in bindings if id(b) not in drop], params, outs, boundary


def _legalized(mod, bindings, params, out_vars):
    """A module whose ``main`` is exactly the emitted part (returning one var, or a Tuple of
    them), TVM's legalization applied to ops that are not ours (reshape-like ops kept: they
    are aliases)."""
    out = out_vars[0] if len(out_vars) == 1 else relax.Tuple(list(out_vars))
    body = relax.SeqExpr([relax.BindingBlock(list(bindings))], out)
    ret = out.ty if len(out_vars) == 1 else relax.TupleType([v.ty for v in out_vars])
    core = relax.Function(list(params), body, ret)
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

    def read(self, params, result):
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
                elif isinstance(v, relax.Tuple) and b.var.same_as(result):
                    result = v  # the outputs, bound by the normalizer
                else:
                    what = _op_name(v) if isinstance(v, relax.Call) else type(v).__name__
                    raise UnsupportedError(f"--emit-c: cannot emit '{what}' in main "
                                           f"(binding {b.var.name})")
        fields = result.fields if isinstance(result, relax.Tuple) else [result]
        outputs = [self.tensor_of(f) for f in fields]
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
        self.layers.append(Layer(len(self.layers), gv.name_hint, name, kind, args + [out],
                                 is_gap8))
        return gap8_index + int(is_gap8)


def root_of(tensors: dict, name: str) -> str:
    """The tensor ``name`` aliases (itself when it is no alias)."""
    while tensors[name].alias_of is not None:
        name = tensors[name].alias_of
    return name


def _lifetimes(net_tensors, layers, outputs):
    for t in net_tensors.values():
        if t.kind == "input":
            t.first = -1
    for layer in layers:
        *ins, out = layer.args
        net_tensors[root_of(net_tensors, out)].first = layer.index
        for a in ins:
            r = net_tensors[root_of(net_tensors, a)]
            r.last = max(r.last, layer.index)
    for o in outputs:
        root = net_tensors[root_of(net_tensors, o)]
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


def _plan_memory(net, placement):
    in_l3 = {n for n, t in net.tensors.items()
             if t.kind == "act" and placement is not None and placement.memory_of(n) == "L3"}
    l2_offsets, net.l2_arena, l3_offsets, net.l3_act_bytes = activation_arenas(net.tensors, in_l3)
    for name, off in l2_offsets.items():
        net.tensors[name].offset = off
    for name, off in l3_offsets.items():
        net.tensors[name].offset, net.tensors[name].memory = off, "L3"
    for layer in net.layers:
        memory = [net.tensors[root_of(net.tensors, a)].memory for a in layer.args
                  if net.tensors[a].kind != "const"]
        layer.inputs_in = "L3" if "L3" in memory[:-1] else "L2"
        layer.output_in = memory[-1]
    net.l1_arena = max((k.l1_bytes for k in net.kernels.values()), default=0)
    _place_weights(net, placement)


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


def _place_weights(net, placement):
    """Weights where the network's placement put them (``ir/placement.py``; None: every weight in
    L2): the L3 ones in one L3 array, in layer order. Nothing is decided here; a weight placed
    in L3 that the C reads other than by DMA is an error (the cores cannot read L3)."""
    l3_off, l2_used = 0, 0
    for layer in net.layers:
        staged, direct = _layer_consts(net, layer)
        for name in dict.fromkeys(staged + direct):
            t = net.tensors[name]
            if t.offset >= 0:
                continue  # placed (read by an earlier layer too)
            memory = (placement.memory_of(name) if placement else None) or "L2"
            if memory == "L3" and name in direct:
                raise UnsupportedError(f"--emit-c: weight {name} of layer {layer.name} is "
                                       "placed in L3 but its kernel reads it directly")
            t.memory, t.offset = memory, (l3_off if memory == "L3" else 0)
            if memory == "L3":
                l3_off += _aligned(t.nbytes)
            else:
                l2_used += _aligned(t.nbytes)
        if any(net.tensors[a].memory == "L3" for a in staged):
            layer.weights_in = "L3"
    net.l3_bytes, net.l2_weights = l3_off, l2_used
    net.l3_stage_bytes = placement.stage_bytes if l3_off or net.l3_act_bytes else 0


@dataclass
class NetworkTensors:
    """The emitted network's tensors and layers, read off the lowered module (no C yet):
    what the memory placement (``ir/placement.py``) and the C emitter both read."""
    mod: tvm.IRModule  # the legalized module whose ``main`` is emitted
    tensors: dict
    layers: list
    inputs: list
    outputs: list
    boundary: Boundary


def read_tensors(lowered: tvm.IRModule) -> NetworkTensors:
    """Tensors (with lifetimes) and layers of the part of ``main`` the C emits."""
    lowered = relax.transform.ToNonDataflow()(lowered)
    bindings, params, out_vars, boundary = _strip_boundary(lowered["main"])
    mod = _legalized(lowered, bindings, params, out_vars)
    reader = _Reader(mod)
    inputs, outputs = reader.read(mod["main"].params, mod["main"].body.body)
    _lifetimes(reader.tensors, reader.layers, outputs)
    return NetworkTensors(mod, reader.tensors, reader.layers, inputs, outputs, boundary)


def activation_arenas(tensors: dict, in_l3=frozenset()) -> tuple[dict, int, dict, int]:
    """({activation: offset}, bytes) of the L2 activation arena, then of the L3 one holding the
    activations ``in_l3`` (each first fit over lifetimes)."""
    def arena(memory_is_l3):
        return first_fit([(t.name, t.nbytes, t.first, t.last) for t in tensors.values()
                          if t.kind == "act" and (t.name in in_l3) == memory_is_l3])
    return (*arena(False), *arena(True))


def read_network(lowered: tvm.IRModule, hw, instrument: bool = True,
                 placement: Placement | None = None) -> Network:
    """The network of ``lowered`` as C: kernels, tensors, the L2/L1 arenas and the weights
    where ``placement`` (the compile's, ``CompileResult.placement``) put them (None: in L2)."""
    read = read_tensors(lowered)
    kernels = {}
    for layer in read.layers:
        if layer.kernel not in kernels:
            kernels[layer.kernel] = plain_kernel(layer.kernel, read.mod[layer.kernel],
                                                 instrument)
    net = Network(read.tensors, read.layers, kernels, read.inputs, read.outputs,
                  read.boundary, cluster_stack_bytes=hw.cluster_stack_bytes)
    if placement is not None:
        refuse_beyond_l2(placement)
    _plan_memory(net, placement)
    net.stats = {
        "dma_calls": sum(k.dma_calls for k in kernels.values()),
        "core_copies": sum(k.core_copies for k in kernels.values()),
        "dot_calls": sum(k.dot_calls for k in kernels.values()),
        "parallel_loops": sum(k.parallel_loops for k in kernels.values()),
        "kernels_not_split_over_cores": sorted(k.name for k in kernels.values()
                                               if k.parallel_loops == 0),
    }
    return net


def refuse_beyond_l2(placement: Placement) -> None:
    """What the placement keeps in L2 must fit it: activations only copy stages touch go to
    L3 when they do not, but one that a kernel reads directly (or a network input or output,
    which the caller passes) cannot."""
    if placement.fits_l2:
        return
    layer, big = placement.largest_output()
    raise UnsupportedError(
        f"--emit-c: the L2 data ({placement.activation_arena_bytes:,} B of activations, "
        f"{placement.l2_weight_bytes:,} B of weights, a {placement.stage_bytes:,} B stage, "
        f"{placement.io_bytes:,} B of inputs and outputs) "
        f"exceeds the L2 budget of {placement.l2_budget:,} B (L2 less code and runtime) by "
        f"{placement.l2_peak_bytes - placement.l2_budget:,} B, with every activation that only "
        f"copy stages touch already in L3 (the largest output, {big.name} of layer {layer}, "
        f"is {big.nbytes:,} B, in {big.memory})")


def c_type(dtype: str) -> str:
    if dtype not in C_TYPES:
        raise UnsupportedError(f"--emit-c: no C type for dtype {dtype}")
    return C_TYPES[dtype]
