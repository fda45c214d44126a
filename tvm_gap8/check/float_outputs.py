"""Float output criterion that stays meaningful for saturated Sigmoid / Softmax outputs.

Why the plain criterion fails there
-----------------------------------
The plain criterion, ``max |got - want| <= rtol * max |want|``, compares against onnxruntime's
float32 output. onnxruntime (MLAS) evaluates Sigmoid with an absolute error of up to
~1.4 * eps32 (1.7e-7, measured over 2e6 points of [-30, 30]); near 0 that is a *relative*
error of 7% at x = -13, up to 676% just above x = -18, and it returns 0 for x <= -18. When every
output is saturated (a text detector seeing no text: sigmoid(-13) = 2.3e-6), max |want| is
~1e-6 and the plain criterion asks for 1e-10 absolute accuracy from a reference that has 1e-7:
it fails correct code (the user's "max abs err 1.08e-07, max rel err 0.035 -> FAILED").

The criterion used here
-----------------------
For a graph output produced by an elementwise Sigmoid or a Softmax, judge the compiled output
against the *exact* activation (float64) of onnxruntime's float32 pre-activation ``x``, with an
allowance propagated from the pre-activation:

* The pre-activation gets the plain criterion's allowance, ``delta = rtol * max |x|`` (it is an
  ordinary conv/dense output, where the plain criterion is sound).
* Sigmoid: ``|sigmoid(x + d) - sigmoid(x)| <= delta * max sigmoid'`` over ``[x - delta,
  x + delta]``; sigmoid' is even and decreasing in ``|x|``, so the max is at
  ``max(|x| - delta, 0)``. For a saturated element (sigmoid' ~ sigmoid) this is a *relative*
  bound of ``delta`` (1e-3 for |x| ~ 13), not the reference's 1e-7 absolute noise.
* Softmax (one axis): a shift of every logit by at most ``delta`` scales each probability by a
  factor in ``[exp(-2 delta), exp(2 delta)]``, so ``|dp_i| <= p_i * (exp(2 delta) - 1)``.
* Plus ``ACT_ABS_FLOOR`` for the float32 evaluation of the activation itself (ours or anyone's).

The bound is elementwise, so a wrong sign, a wrong bias or a 1e-3 error on a non-saturated
output still fails. Outputs with no final Sigmoid/Softmax keep the plain criterion.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from .session import reference_session

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23, the float32 spacing at 1
# Max abs error allowed on a float output, relative to the reference output's max |value|: far
# above float32 accumulation noise (~1e-7 relative per layer), far below a wrong weight or op.
RTOL = 1e-4
# Absolute error allowed for evaluating Sigmoid/Softmax in float32 (values in [0, 1]). A float32
# sigmoid that ends with an addition to 0.5 (MLAS: 0.5 + x * p(x^2) / q(x^2)) is exact to
# ulp(0.5)/2 from that add plus ~ulp(0.5) from the rational part, ~1 eps32 in all; onnxruntime's
# measured worst case is 1.4 eps32. 2 eps32 covers it; TVM's 1 / (1 + exp(-x)) is far below.
ACT_ABS_FLOOR = 2 * EPS32
FINAL_ACTIVATIONS = ("Sigmoid", "Softmax")
MIN_SOFTMAX_OPSET = 13  # before opset 13, Softmax flattened trailing axes: not handled here


def sigmoid64(x: np.ndarray) -> np.ndarray:
    """Exact (float64, overflow-free) logistic function."""
    x = np.asarray(x, np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax64(x: np.ndarray, axis: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def activation_bound(kind: str, pre: np.ndarray, delta: float, axis: int = -1):
    """(exact activation of ``pre``, elementwise bound on |activation(pre + d) - that| for any
    |d| <= delta, plus ACT_ABS_FLOOR)."""
    if kind == "Sigmoid":
        ref = sigmoid64(pre)
        s = sigmoid64(np.maximum(np.abs(np.asarray(pre, np.float64)) - delta, 0.0))
        return ref, delta * s * (1.0 - s) + ACT_ABS_FLOOR
    if kind == "Softmax":
        ref = softmax64(pre, axis)
        return ref, ref * np.expm1(2.0 * delta) + ACT_ABS_FLOOR
    raise ValueError(f"no propagated bound for activation {kind!r}")


def _plain_figures(got: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, float, float]:
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    scale = float(np.max(np.abs(want), initial=0.0)) or 1.0  # all-zero reference: absolute
    return diff, float(diff.max(initial=0.0)), scale


def float_output_verdict(got: np.ndarray, want: np.ndarray, pre_want: np.ndarray | None = None,
                         activation: str | None = None, rtol: float = RTOL,
                         axis: int = -1) -> dict:
    """Judge one float output. ``want`` is the float32 reference output; ``pre_want`` the
    reference's input to the final ``activation`` ("Sigmoid"/"Softmax") if the output has one.

    Without an activation: max |got - want| <= rtol * max |want|. With one: elementwise
    |got - act64(pre_want)| <= activation_bound(...) (see the module docstring)."""
    if got.shape != want.shape:
        raise ValueError(f"output shape {got.shape} differs from the reference's {want.shape}")
    diff, max_abs, scale = _plain_figures(got, want)
    finite = bool(np.all(np.isfinite(got)))
    out = {"max_abs_err": max_abs, "max_rel_err": max_abs / scale}
    if activation is None or pre_want is None:
        bound = rtol * scale
        out.update(criterion=f"max abs error <= {rtol:g} x max |reference|", bound=bound,
                   passed=finite and max_abs <= bound)
        return out
    delta = rtol * (float(np.max(np.abs(pre_want), initial=0.0)) or 1.0)
    exact, bound = activation_bound(activation, pre_want, delta, axis)
    err = np.abs(got.astype(np.float64) - exact)
    rel = err / np.maximum(np.abs(exact), np.finfo(np.float64).tiny)
    out.update(
        criterion=(f"|out - exact {activation}(reference pre-activation)| <= propagated "
                   f"{rtol:g} x max |pre-activation| + {ACT_ABS_FLOOR:.3g}, elementwise"),
        activation=activation, pre_activation_tolerance=delta,
        max_abs_err_vs_exact=float(err.max(initial=0.0)),
        max_elem_rel_err_vs_exact=float(rel.max(initial=0.0)),
        reference_activation_abs_err=float(np.abs(want.astype(np.float64) - exact).max(
            initial=0.0)),
        max_err_over_bound=float((err / bound).max(initial=0.0)),
        passed=finite and bool(np.all(err <= bound)))
    return out


def final_activations(model: onnx.ModelProto) -> list[tuple[str, str, int] | None]:
    """Per graph output: (activation op, its input tensor, softmax axis) when the output is
    produced by Sigmoid or (opset >= 13) Softmax, else None."""
    producers = {o: n for n in model.graph.node for o in n.output}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    found = []
    for o in model.graph.output:
        node = producers.get(o.name)
        kind = node.op_type if node is not None else None
        if kind not in FINAL_ACTIVATIONS or (kind == "Softmax" and opset < MIN_SOFTMAX_OPSET):
            found.append(None)
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        found.append((kind, node.input[0], axis))
    return found


def reference_pre_activations(model: onnx.ModelProto, inputs: dict) -> list:
    """onnxruntime's (float32, ORT_ENABLE_BASIC) pre-activations of the outputs that
    final_activations finds (None elsewhere): the model is run with those tensors as extra
    graph outputs. Runs nothing when no output ends in Sigmoid/Softmax."""
    finals = final_activations(model)
    names = [f[1] for f in finals if f is not None]
    if not names:
        return [None] * len(finals)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    existing = {o.name for o in m.graph.output}
    m.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                          for n in dict.fromkeys(names) if n not in existing)
    sess = reference_session(m)
    values = dict(zip([o.name for o in m.graph.output], sess.run(None, inputs)))
    return [None if f is None else values[f[1]] for f in finals]


def float_output_verdicts(got: list, want: list, model: onnx.ModelProto, inputs: dict,
                          rtol: float = RTOL) -> list[dict]:
    """float_output_verdict for every graph output of ``model`` (run on ``inputs``); None for
    an output whose shape differs from the reference's (the caller reports that)."""
    finals = final_activations(model)
    pres = reference_pre_activations(model, inputs)
    verdicts = []
    for g, w, f, pre in zip(got, want, finals, pres):
        kind, axis = (f[0], f[2]) if f is not None else (None, -1)
        ok_shape = g.shape == w.shape and (pre is None or pre.shape == w.shape)
        verdicts.append(float_output_verdict(g, w, pre, kind, rtol, axis) if ok_shape else None)
    return verdicts


def pre_activation_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` truncated before its final Sigmoid/Softmax: each graph output that
    final_activations finds is replaced by that activation's input. Compile it (with --check) to
    judge the pre-activations themselves with the plain criterion."""
    finals = final_activations(model)
    if not any(finals):
        raise ValueError("no graph output is produced by Sigmoid or Softmax")
    outs = [f[1] if f is not None else o.name for f, o in zip(finals, model.graph.output)]
    inferred = onnx.shape_inference.infer_shapes(model)
    inits = {t.name for t in model.graph.initializer}
    ins = [i.name for i in model.graph.input if i.name not in inits]
    return onnx.utils.Extractor(inferred).extract_model(ins, list(dict.fromkeys(outs)))
