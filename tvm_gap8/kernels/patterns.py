"""Dataflow patterns for depthwise-separable pairs, and the checks that decide if a match fuses.

A conv "stage" is ``conv2d -> [elementwise chain]``: any chain of elementwise ops of the conv's
result and constants (``elementwise_chain``): the bias add, BN shift, and every activation the
Relax ONNX importer writes as elementwise ops: ``relu``, ``clip`` (ReLU6, any constant Clip),
``nn.leakyrelu``, ``nn.prelu`` (per-channel slopes), ``sigmoid``, ``tanh``, SiLU
(``x * sigmoid(x)``), HardSigmoid (``clip(a * x + b, 0, 1)``), HardSwish in the importer's and
the exporters' forms, and chains of them. Relax's pattern language has no optional nodes and no
recursion, so the chain is an alternation of bounded depth, ordered longest first (the matcher
takes the first alternative that matches).

The checks here are the one place the fusion rules live; the refusal analysis reuses them so
the report's reasons are the rules' own words.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from ..ir.irutil import node_name_of
from .epilogue import SUPPORTED_OPS
from .geometry import conv_kind

#: Elementwise ops a float epilogue may hold, by operand form (``epilogue.SUPPORTED_OPS`` is
#: what lowering computes; these are the ones the stage pattern matches).
UNARY_OPS = ("relax.nn.relu", "relax.sigmoid", "relax.tanh", "relax.nn.leakyrelu", "relax.exp",
             "relax.negative", "relax.abs")
BINARY_OPS = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum",
              "relax.minimum")
#: how deep a chain of elementwise ops after one conv may be (HardSwish as imported is 4 ops
#: after the bias; LeakyRelu -> Clip after HardSwish still fits), and its side branches
CHAIN_DEPTH, BRANCH_DEPTH = 7, 4


def _any_op(names):
    return _alternation([is_op(n) for n in names])


def _step(p):
    """One elementwise op of ``p`` and constants: unary, clip, PRelu or binary by a constant."""
    binary = _any_op(BINARY_OPS)
    # ``by_const`` first checks that the second operand is a constant: the matcher visits
    # operands in order and forgets a failed branch, so descending ``p`` before finding the
    # operand is not a constant would redo the whole chain below per level (exponential)
    by_const = binary(wildcard(), is_const()) & binary(p, is_const())
    return _alternation([_any_op(UNARY_OPS)(p), is_op("relax.clip")(p, wildcard(), wildcard()),
                         is_op("relax.nn.prelu")(p, is_const()), by_const,
                         binary(is_const(), p)])


def _unary_chain(p, depth):
    """``p`` followed by up to ``depth`` single-tensor steps (longest first); fresh nodes."""
    chain = p
    for _ in range(depth):
        chain = _step(chain) | p
    return chain


def elementwise_chain(z, depth=CHAIN_DEPTH, branch=BRANCH_DEPTH):
    """Any chain of up to ``depth`` elementwise ops of the one tensor ``z`` and constants
    (or none), longest first. A step is a single-tensor op (``_step``) or a
    binary op of the chain so far and a single-tensor chain of it (SiLU ``x * sigmoid(x)``,
    HardSwish ``x * hardsigmoid(x)``, ``(x * clip(x + 3, 0, 6)) / 6``). The pattern language has
    no recursion, so the depth is bounded; every level builds fresh nodes, since a pattern node
    matches one expression."""
    chain = z
    for _ in range(depth):
        binary = _any_op(BINARY_OPS)
        branches = [binary(chain, _unary_chain(chain, branch)),
                    binary(_unary_chain(chain, branch), chain)]
        chain = _alternation([_step(chain)] + branches) | z
    return chain


def stage(conv):
    """``conv -> [elementwise chain]`` (bias, BN shift and activations are all elementwise)."""
    return elementwise_chain(conv)


def conv2d(data=None):
    return is_op("relax.nn.conv2d")(data if data is not None else wildcard(), wildcard())


def dw_pw_pattern():
    dw = conv2d()
    pw = conv2d(stage(dw))
    return stage(pw), {"dw": dw, "pw": pw}


def pw_dw_pattern():
    pw = conv2d()
    dw = conv2d(stage(pw))
    return stage(dw), {"pw": pw, "dw": dw}


def conv_pattern():
    conv = conv2d()
    return stage(conv), {"conv": conv}


# -- QDQ (int8) forms --------------------------------------------------------------------------
# dequantize(x) -> conv2d(., dequantize(int8 const)) -> [+ reshape(dequantize(int32 const))]
# -> [ReLU | Clip] -> quantize. onnxruntime's quantizer usually drops the ReLU/Clip (the output
# range already clamps), but keeps it when it does not.

def _dq(x):
    return is_op("relax.dequantize")(x, is_const(), is_const())


def _const_operand():
    c = _dq(is_const()) | is_const()
    return is_op("relax.reshape")(c, wildcard()) | c


def qconv2d(data):
    """conv2d on a dequantized activation with dequantized constant weights."""
    return is_op("relax.nn.conv2d")(_dq(data), _const_operand())


def qstage(conv):
    biased = is_op("relax.add")(conv, _const_operand())
    alts = []
    for base in (biased, conv):
        alts += [is_op("relax.nn.relu")(base), is_op("relax.clip")(base, wildcard(), wildcard()),
                 base]
    pat = alts[0]
    for alt in alts[1:]:
        pat = pat | alt
    return is_op("relax.quantize")(pat, is_const(), is_const())


def _between(first):
    """What the quantizer leaves between two quantized convs (``first``: the quantize closing
    the first): an activation of one tensor quantized on its own (a table: LeakyRelu, Sigmoid,
    HardSigmoid, ...), HardSwish as onnxruntime rewrites it (``x * HardSigmoid(x)``: the table,
    then the product with ``x``, each quantized; tf2onnx's Keras hard_swish ``x * (relu6(x + 3)
    * 1/6)``: two tables, one kernel table once composed, ``lut.merge_table_steps``), or
    nothing. Longest first."""
    def table_of(x):
        return is_op("relax.quantize")(_alternation(_unary_chains(_dq(x))), is_const(),
                                       is_const())
    one = table_of(first)
    tables = table_of(one) | one
    product = (is_op("relax.multiply")(_dq(first), _dq(tables))
               | is_op("relax.multiply")(_dq(tables), _dq(first)))
    return is_op("relax.quantize")(product, is_const(), is_const()) | tables | first


def q_dw_pw_pattern():
    dw = qconv2d(wildcard())
    pw = qconv2d(_between(qstage(dw)))
    return qstage(pw), {"dw": dw, "pw": pw}


def q_pw_dw_pattern():
    pw = qconv2d(wildcard())
    dw = qconv2d(_between(qstage(pw)))
    return qstage(dw), {"pw": pw, "dw": dw}


def q_conv_pattern():
    conv = qconv2d(wildcard())
    return qstage(conv), {"conv": conv}


# -- rules -------------------------------------------------------------------------------------

def _ints(arr):
    return [int(v) for v in arr]


def _shape(expr):
    return [int(v) for v in expr.ty.shape.values]


def depthwise_problem(call) -> str | None:
    """Why ``call`` is not a depthwise conv we can fuse (None if it is)."""
    a = call.attrs
    x_shape, w_shape = _shape(call.args[0]), _shape(call.args[1])
    cin, cout, groups = x_shape[1], w_shape[0], int(a.groups)
    if a.data_layout != "NCHW" or a.kernel_layout != "OIHW":
        return f"layout {a.data_layout}/{a.kernel_layout} (expected NCHW/OIHW)"
    if groups != cin or groups == 1 and cin != 1:
        return f"not depthwise (groups={groups}, in channels={cin})"
    if cout != cin:
        return f"channel multiplier {cout // max(cin, 1)} != 1 (in {cin}, out {cout} channels)"
    kh, kw = w_shape[2], w_shape[3]
    if kh != kw or kh % 2 == 0:
        return f"kernel {kh}x{kw} (supported: odd k x k)"
    strides, dil = _ints(a.strides), _ints(a.dilation)
    if any(v not in (1, 2) for v in strides):
        return f"stride {strides} (supported: 1 or 2 on each axis)"
    if dil != [1, 1]:
        return f"dilation {dil} != 1"
    return None


def conv_problem(call) -> str | None:
    """Why a conv cannot become a tiled gap8 conv kernel (None if it can)."""
    a = call.attrs
    w_shape = _shape(call.args[1])
    if a.data_layout != "NCHW" or a.kernel_layout != "OIHW":
        return f"layout {a.data_layout}/{a.kernel_layout}"
    if w_shape[2] != w_shape[3]:
        return f"non-square kernel {w_shape[2]}x{w_shape[3]}"
    if _ints(a.dilation) != [1, 1]:
        return f"dilation {_ints(a.dilation)}"
    return None


def is_depthwise_like(call) -> bool:
    """groups == in channels > 1: a depthwise conv, fusable or not."""
    x_shape, w_shape = _shape(call.args[0]), _shape(call.args[1])
    return conv_kind(int(call.attrs.groups), x_shape[1], w_shape[2:]) == "dw"


def pointwise_problem(call) -> str | None:
    a = call.attrs
    w_shape = _shape(call.args[1])
    if a.data_layout != "NCHW" or a.kernel_layout != "OIHW":
        return f"PW layout {a.data_layout}/{a.kernel_layout} (expected NCHW/OIHW)"
    if w_shape[2:] != [1, 1]:
        return f"the paired conv is {w_shape[2]}x{w_shape[3]}, not a 1x1 pointwise"
    if int(a.groups) != 1:
        return f"the PW conv is grouped (groups={int(a.groups)})"
    if _ints(a.strides) != [1, 1]:
        return f"the PW conv has stride {_ints(a.strides)}, not 1"
    if any(_ints(a.padding)):
        return f"the PW conv has padding {_ints(a.padding)}"
    if _ints(a.dilation) != [1, 1]:
        return f"the PW conv has dilation {_ints(a.dilation)}"
    return None


def dtype_problem(call) -> str | None:
    dts = {str(call.args[0].ty.dtype), str(call.args[1].ty.dtype), str(call.ty.dtype)}
    if dts != {"float32"}:  # QDQ convs compute in float on dequantized operands, too
        return f"element types {sorted(dts)} (expected float32 or a QDQ int8 conv)"
    if call.args[0].ty.ndim != 4:
        return f"a {call.args[0].ty.ndim}-D convolution"
    batch = int(call.args[0].ty.shape.values[0])
    if batch != 1:
        return f"batch {batch} (the GAP8 kernels take one image at a time)"
    return None


# -- the ops that remain: residual Add, global average pool, fully connected ---------------

def _act_alternatives(base):
    return [is_op("relax.nn.relu")(base), is_op("relax.clip")(base, wildcard(), wildcard()), base]


def _alternation(alts):
    pat = alts[0]
    for alt in alts[1:]:
        pat = pat | alt
    return pat


def activated(base):
    """``base`` followed by ReLU, Clip or nothing (longest first)."""
    return _alternation(_act_alternatives(base))


def dequantized(x):
    return _dq(x)


def quantized(p):
    return is_op("relax.quantize")(p, is_const(), is_const())


def add_pattern():
    add = is_op("relax.add")(wildcard(), wildcard())
    return _alternation(_act_alternatives(add)), {"anchor": add}


def q_add_pattern():
    add = is_op("relax.add")(_dq(wildcard()), _dq(wildcard()))
    return is_op("relax.quantize")(_alternation(_act_alternatives(add)), is_const(),
                                   is_const()), {"anchor": add}


def pool_pattern():
    mean = is_op("relax.mean")(wildcard())
    return mean, {"anchor": mean}


def q_pool_pattern():
    mean = is_op("relax.mean")(_dq(wildcard()))
    return is_op("relax.quantize")(mean, is_const(), is_const()), {"anchor": mean}


def dense_pattern():
    mm = is_op("relax.matmul")(wildcard(), is_const())
    return is_op("relax.add")(mm, is_const()) | mm, {"anchor": mm}


def q_dense_pattern():
    # Gemm transB=1 reads [O, K] weights through permute_dims; Gemm transB=0 (onnxruntime's
    # MatMul+Add fusion of a Linear) and MatMul by a constant read [K, O] weights directly
    w = is_op("relax.permute_dims")(_dq(is_const())) | _dq(is_const())
    mm = is_op("relax.matmul")(_dq(wildcard()), w)
    biased = is_op("relax.add")(mm, _dq(is_const())) | mm
    return is_op("relax.quantize")(biased, is_const(), is_const()), {"anchor": mm}


def add_problem(call) -> str | None:
    a, b = call.args
    if not (isinstance(a, relax.Var) and isinstance(b, relax.Var)):
        return "an add with a constant operand"
    sa, sb = _shape(a), _shape(b)
    if sa != sb or len(sa) != 4:
        return f"an add of shapes {sa} and {sb} (needs two equal 4-D tensors)"
    return None


def pool_problem(call) -> str | None:
    ndim = call.args[0].ty.ndim
    axes = sorted(int(v) % ndim for v in call.attrs.axis) if call.attrs.axis is not None else None
    if axes != [2, 3] or not call.attrs.keepdims or call.args[0].ty.ndim != 4:
        return f"mean over axes {axes} (only global average pooling over H, W)"
    return None


def dense_problem(call) -> str | None:
    x = call.args[0]
    if x.ty.ndim != 2:
        return f"a {x.ty.ndim}-D matmul (only [N, K] x [K, O])"
    return None


# -- int8 elementwise ops left between quantize/dequantize ---------------------------------

def _unary_chains(d):
    c = is_const
    scaled = is_op("relax.multiply")(c(), d) | is_op("relax.multiply")(d, c())
    hsig = is_op("relax.clip")(is_op("relax.add")(scaled, c()), wildcard(), wildcard())
    single = []
    for op in ("relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum",
               "relax.minimum"):
        k = _dq(is_const()) | is_const()  # the quantizer quantizes constants too
        single += [is_op(op)(d, k), is_op(op)(k, d)]
    return [is_op("relax.multiply")(d, hsig), is_op("relax.multiply")(hsig, d), hsig,
            is_op("relax.sigmoid")(d), is_op("relax.nn.leakyrelu")(d),
            is_op("relax.nn.relu")(d),
            is_op("relax.clip")(d, wildcard(), wildcard())] + single


def q_lut_pattern():
    d = _dq(wildcard())
    body = _alternation(_unary_chains(d))
    return is_op("relax.quantize")(body, is_const(), is_const()), {"anchor": body}


def q_mul_pattern():
    mul = is_op("relax.multiply")(_dq(wildcard()), _dq(wildcard()))
    return is_op("relax.quantize")(mul, is_const(), is_const()), {"anchor": mul}


def lut_problem(call) -> str | None:
    if call.ty.ndim not in (2, 4):
        return f"a {call.ty.ndim}-D elementwise op (the table kernel takes NCHW or [N, F])"
    return None


def mul_problem(call) -> str | None:
    a, b = (_shape(x) for x in call.args)
    if len(a) not in (2, 4) or not (b == a or (len(a) == 4 and b == [1, a[1], 1, 1])):
        return f"a multiply of shapes {a} and {b} (needs equal shapes or one value per channel)"
    if a[0] != 1:
        return f"batch {a[0]}"
    return None


# -- rules on a whole match -----------------------------------------------------------------

def node(expr) -> str:
    return node_name_of(expr) or "<unnamed>"


#: how a rule names a binding outside its match (the match context has only the var): the
#: formation pass, which has the function, replaces it with the binding's ONNX node
OUTSIDE_REF = "<binding {}>"


def outside_ref(var) -> str:
    return OUTSIDE_REF.format(var.name)


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
        problem = _constant_operand_problem(value)
        if problem:
            return problem
    return None


def _constant_operand_problem(value) -> str | None:
    c = int(value.ty.shape.values[1])
    for arg in value.args:
        arr = _const_value(arg)
        if arr is None or arr.size == 1:
            continue
        if value.op.name == "relax.nn.prelu":  # a 1-D slope along ``axis``
            axis = int(value.attrs.axis)
            if axis % value.ty.ndim != 1 or arr.size != c:
                return (f"prelu with {arr.size} slopes along axis {axis} is not per-channel "
                        f"(node {node(value)})")
            continue
        if arr.size != c or (arr.ndim == 4 and arr.shape != (1, c, 1, 1)) or arr.ndim not in (3, 4):
            return (f"{value.op.name} by a constant of shape {list(arr.shape)} is not a "
                    f"per-channel or scalar operand (node {node(value)})")
    return None


def escape_problem(ctx) -> str | None:
    """An intermediate of the match used outside it would be recomputed or lost: refuse."""
    root_var = ctx.value_to_bound_var.get(ctx.matched_expr)
    inside = set(ctx.matched_bindings.keys())
    for var, value in ctx.matched_bindings.items():
        if root_var is not None and var.same_as(root_var):
            continue
        users = list(ctx.var_usages.get(var, []))
        outside = [u for u in users if u not in inside]
        if outside or not isinstance(var, relax.DataflowVar):
            others = ", ".join(node(ctx.matched_bindings[u]) if u in ctx.matched_bindings
                               else outside_ref(u) for u in outside) or "the function's output"
            return (f"the intermediate {node(value)} has another consumer outside the pair "
                    f"({others})")
    return None


def pair_problem(dw, pw) -> str | None:
    """The fusion rules for one (DW, PW) pair, in the order a reader would check them."""
    return (dtype_problem(dw) or dtype_problem(pw)
            or depthwise_problem(dw) or pointwise_problem(pw))


def activation_quantization_problem(ctx) -> str | None:
    """Integer element-wise kernels take per-tensor int8/uint8 activations only."""
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
    return None


def _dequantized(ctx, expr):
    """What ``expr`` dequantizes, when the match binds it to a ``dequantize``; else ``expr``."""
    value = dict(ctx.matched_bindings.items()).get(expr) if isinstance(expr, relax.Var) else None
    if isinstance(value, relax.Call) and value.op.same_as(tvm.ir.Op.get("relax.dequantize")):
        return value.args[0]
    return expr


def _is_constant(expr) -> bool:
    return isinstance(expr, (tvm.ir.expr.Constant, tvm.ir.expr.GenericConst))


def quantized_constant_problem(what: str):
    """A rule refusing an int8 ``what`` (add, multiply) one of whose operands is a quantized
    constant: the kernels take two activations (the op stays on TVM's legalized ops)."""
    def problem(ctx):
        anchor = ctx.annotated_expr["anchor"]
        if any(_is_constant(_dequantized(ctx, a)) for a in anchor.args):
            return f"{what} with a constant operand (the kernel takes two activations)"
        return None

    return problem


def table_constant_problem(ctx) -> str | None:
    """A table op whose constant operand holds more than one value: a table is one function of
    the input value, so every constant in it must be a scalar."""
    for value in dict(ctx.matched_bindings.items()).values():
        if isinstance(value, relax.Call) and \
                value.op.same_as(tvm.ir.Op.get("relax.dequantize")) and \
                _is_constant(value.args[0]) and value.args[0].value.numpy().size > 1:
            return ("an elementwise op with a per-element constant (a table holds scalar "
                    "constants only)")
    return None


def anchored(rule):
    """A match rule from a rule on its ``anchor`` call, plus the escape check."""
    def problem(ctx):
        return rule(ctx.annotated_expr["anchor"]) or escape_problem(ctx)

    return problem
