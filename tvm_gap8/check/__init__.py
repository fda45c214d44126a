"""``--check``: the host build of the lowered kernels against references that do not depend on
the machine's CPU.

* **int8 models** are judged two ways, both CPU-independent: *exact* — the outputs equal, bit
  for bit, those of an integer reference of the semantics our kernels implement
  (``tvm_gap8.reference``: numpy, int32 accumulation, the requantization of the compile's mode:
  ``fixed`` — the float32 scale as a 31-bit multiplier and a shift, round half up — or
  ``float32`` — the float32 arithmetic QLinearConv specifies, round half to even; written
  independently of our TIR); *spec* —
  every quantized layer of that reference is within one quantization step of the ONNX QDQ
  float semantics (float64), fed with its own previous outputs (= ours, by the exact check).
  onnxruntime's end-to-end figures stay in the report as information (``check.onnxruntime``):
  its float32 summation order is implementation-defined, so near-ties flip by one step. A node
  the reference cannot evaluate makes the model *not checked* (``not_checked``: ``passed``
  False, ``checked`` False, the node and its op type named), never an error.
* **float models** against onnxruntime at the basic graph optimisation level
  (``session.py``), by the criterion of ``float_outputs.py`` (max abs error <= 1e-4 x max
  |reference|; for outputs of a final Sigmoid/Softmax, elementwise against the exact activation
  of the reference's pre-activation with the propagated bound: saturated outputs near 0 are
  judged by what float32 can tell).
* int8 outputs are compared in **integer quantization steps** (LSB), never as float ratios: a
  difference of one step is 1, not 1.000002.
"""

from __future__ import annotations

import numpy as np
import onnx.numpy_helper as nh

from ..errors import UnsupportedError
from ..reference import integer_reference, spec_layer_check
from ..reference.errors import UnsupportedOpError
from ..reference.spec import MAX_STEPS as SPEC_MAX_STEPS
from .float_outputs import RTOL as FLOAT_TOLERANCE
from .float_outputs import float_output_verdicts
from .session import reference_session

# int8 outputs where the exact comparison does not apply (a float layer whose result depends on
# summation order feeds a quantize; flagged by the reference), and onnxruntime's figures
INT8_WITHIN_1_LSB = 0.999  # fraction of elements within 1 step
INT8_MAX_LSB = 2  # and none further than this

#: The name of the onnxruntime reference in ``check.reference``.
ORT_BASIC = "onnxruntime (graph optimisation: basic)"


def run_onnxruntime(imported, inputs: dict) -> list[np.ndarray]:
    return reference_session(imported.onnx_model).run(None, inputs)


def random_inputs(imported, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in imported.input_shapes.items():
        dt = imported.input_dtypes[name]
        if dt.startswith("float"):
            out[name] = rng.standard_normal(shape).astype(dt)
        else:
            info = np.iinfo(dt)
            out[name] = rng.integers(info.min, info.max, shape, endpoint=True).astype(dt)
    return out


def output_lsb(imported) -> list[float | None]:
    """Per graph output: the scale of the DequantizeLinear producing it (an int8 model's
    output LSB), or None for a float output."""

    model = imported.onnx_model
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    out = []
    for o in model.graph.output:
        node = producers.get(o.name)
        scale = None
        if node is not None and node.op_type == "DequantizeLinear" and node.input[1] in inits:
            arr = nh.to_array(inits[node.input[1]])
            if arr.size == 1:
                scale = float(arr.reshape(()))
        out.append(scale)
    return out


def lsb_steps(got: np.ndarray, want: np.ndarray, lsb: float) -> np.ndarray:
    """|got - want| in quantization steps, as integers. Both are dequantized 8-bit values
    ``(q - z) * s`` in float32, so ``rint(v / s)`` recovers ``q - z`` exactly."""
    qg = np.rint(got.astype(np.float64) / lsb).astype(np.int64)
    qw = np.rint(want.astype(np.float64) / lsb).astype(np.int64)
    return np.abs(qg - qw)


def lsb_figures(got: np.ndarray, want: np.ndarray, lsb: float) -> dict:
    steps = lsb_steps(got, want, lsb)
    return {"lsb": lsb, "within_1_lsb_fraction": float(np.mean(steps <= 1)),
            "max_lsb_err": int(steps.max(initial=0)), "equal_fraction": float(np.mean(steps == 0))}


def float_figures(got: np.ndarray, want: np.ndarray) -> dict:
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    scale = float(np.max(np.abs(want))) or 1.0
    worst = float(diff.max(initial=0.0))
    return {"max_abs_err": worst, "max_rel_err": worst / scale}


def output_figures(got: list, want: list, lsbs: list, against: str) -> list[dict]:
    """Per output: float differences, and for an 8-bit output its differences in steps."""
    outs = []
    for g, w, lsb in zip(got, want, lsbs):
        if g.shape != w.shape:
            raise UnsupportedError(f"output shape {g.shape} differs from {against}'s {w.shape}")
        outs.append({**float_figures(g, w), **(lsb_figures(g, w, lsb) if lsb else {})})
    return outs


INT8_REFERENCE = ("integer reference (tvm_gap8.reference: int32 accumulation, the compile's "
                  "requantization: fixed-point round half up, or float32 round half to even), "
                  f"bit for bit; ONNX QDQ spec per layer (<= {SPEC_MAX_STEPS} step)")


def _exact(got: list, run, outs: list) -> dict:
    if run.exact_applicable:
        return {"applicable": True, "equal": all(np.array_equal(g, w)
                                                 for g, w in zip(got, run.outputs))}
    within = all(o["within_1_lsb_fraction"] >= INT8_WITHIN_1_LSB and
                 o["max_lsb_err"] <= INT8_MAX_LSB for o in outs if "lsb" in o)
    return {"applicable": False, "reasons": run.reasons, "within_bounds": within}


def _spec_summary(spec) -> dict:
    return {"criterion": spec.to_dict()["criterion"], "passed": spec.passed,
            "layers": len(spec.layers), "failing": spec.failing,
            "max_step_diff": max((r["max_step_diff"] for r in spec.layers), default=0)}


def check_int8(got: list, imported, inputs: dict, ort_outs: list,
               requant: str = "fixed") -> dict:
    """Exact: our outputs equal the integer reference's. Spec: every quantized layer of that
    reference (fed with its own previous outputs, which are ours) within one quantization step
    of the ONNX QDQ float semantics. Where a float op that depends on summation order feeds a
    quantize (``exact_applicable`` False, reasons named), exactness cannot be asked: then the
    outputs must be within 1 step of the reference for >= 99.9% of the elements, none beyond
    2. If the reference cannot evaluate a node, nothing is checked: ``not_checked`` names the
    node and its op type, and ``passed`` is False."""
    try:
        run = integer_reference(imported.onnx_model, inputs, requant)
        spec = spec_layer_check(imported.onnx_model, run)
    except UnsupportedOpError as exc:
        return not_checked(exc, ort_outs)
    outs = output_figures(got, run.outputs, output_lsb(imported), "the integer reference")
    exact = _exact(got, run, outs)
    return {"reference": INT8_REFERENCE, **_summary(outs),
            "passed": bool(exact.get("equal", exact.get("within_bounds"))) and spec.passed,
            "criterion": "int8: equal to the integer reference; every layer within "
                         f"{SPEC_MAX_STEPS} step of the QDQ spec",
            "exact": exact, "spec": _spec_summary(spec),
            "outputs": [_lsb_only(o) for o in outs if "lsb" in o],
            "onnxruntime": {"reference": ORT_BASIC, "information": True,
                            "outputs": [_lsb_only(o) for o in ort_outs if "lsb" in o]}}


def not_checked(exc: UnsupportedOpError, ort_outs: list) -> dict:
    """The ``check`` section when the integer reference cannot evaluate a node: nothing was
    checked (``passed`` False, ``checked`` False), the node and its op type named."""
    what = f"the reference cannot evaluate node {exc.node!r} (op type {exc.op_type}" + \
        (f": {exc.detail})" if exc.detail else ")")
    return {"reference": INT8_REFERENCE, "checked": False, "passed": False,
            "not_checked": what,
            "unsupported": {"node": exc.node, "op_type": exc.op_type, "detail": exc.detail},
            "criterion": "int8: equal to the integer reference; every layer within "
                         f"{SPEC_MAX_STEPS} step of the QDQ spec",
            "onnxruntime": {"reference": ORT_BASIC, "information": True,
                            "outputs": [_lsb_only(o) for o in ort_outs if "lsb" in o]}}


def check_float(got: list, imported, inputs: dict, want: list, ort_outs: list) -> dict:
    verdicts = float_output_verdicts(got, want, imported.onnx_model, inputs, FLOAT_TOLERANCE)
    return {"reference": ORT_BASIC, **_summary(ort_outs),
            "passed": all(v is not None and v["passed"] for v in verdicts),
            "criterion": "; ".join(dict.fromkeys(v["criterion"] for v in verdicts if v)),
            "tolerance_rel": FLOAT_TOLERANCE, "float_outputs": verdicts}


def is_quantized(model) -> bool:
    """A QDQ model (int8/uint8 layers inside, whatever its outputs' type)."""
    return any(n.op_type == "QuantizeLinear" for n in model.graph.node)


def check_outputs(got: list, imported, inputs: dict, seed: int, requant: str = "fixed") -> dict:
    """The ``check`` section of report.json: QDQ models (int8 or uint8 layers, even with float
    outputs) against the integer reference in requantization mode ``requant`` and the spec
    (onnxruntime's figures kept as information), float models against onnxruntime."""
    want = run_onnxruntime(imported, inputs)
    lsbs = output_lsb(imported)
    ort_outs = output_figures(got, want, lsbs, "onnxruntime")
    if is_quantized(imported.onnx_model):
        return {"seed": seed, **check_int8(got, imported, inputs, ort_outs, requant)}
    return {"seed": seed, **check_float(got, imported, inputs, want, ort_outs)}


def _summary(outs) -> dict:
    return {"max_abs_err": max((o["max_abs_err"] for o in outs), default=0.0),
            "max_rel_err": max((o["max_rel_err"] for o in outs), default=0.0)}


def _lsb_only(o) -> dict:
    return {k: o[k] for k in ("lsb", "within_1_lsb_fraction", "max_lsb_err", "equal_fraction")}
