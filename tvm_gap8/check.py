"""``--check``: the host build of the lowered kernels against references that do not depend on
the machine's CPU.

* **int8 models** are judged two ways, both CPU-independent: *exact* — the outputs equal, bit
  for bit, those of an integer reference of the semantics our kernels implement
  (``tvm_gap8.reference``: numpy, int32 accumulation, the float32-scale requantization
  QLinearConv specifies, round half to even; written independently of our TIR); *spec* —
  every quantized layer of that reference is within one quantization step of the ONNX QDQ
  float semantics (float64), fed with its own previous outputs (= ours, by the exact check).
  onnxruntime's end-to-end figures stay in the report as information (``check.onnxruntime``):
  its float32 summation order is implementation-defined, so near-ties flip by one step.
* **onnxruntime at basic graph optimisation** runs a QDQ graph as the ONNX spec writes it
  (DequantizeLinear -> float op -> QuantizeLinear). Its default level (all optimisations)
  rewrites QDQ into its own integer kernels, whose results depend on the CPU's instruction set
  (AVX2 vs AVX-512 VNNI): we never use it. Every session here is built by
  :func:`reference_session`.
* int8 outputs are compared in **integer quantization steps** (LSB), never as float ratios: a
  difference of one step is 1, not 1.000002.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedError
from .reference import integer_reference, spec_layer_check
from .reference.spec import MAX_STEPS as SPEC_MAX_STEPS

FLOAT_TOLERANCE = 1e-4  # max abs error allowed, relative to the reference output's max |value|
# int8 outputs where the exact comparison does not apply (a float layer whose result depends on
# summation order feeds a quantize; flagged by the reference), and onnxruntime's figures
INT8_WITHIN_1_LSB = 0.999  # fraction of elements within 1 step
INT8_MAX_LSB = 2  # and none further than this

#: The name of the onnxruntime reference in ``check.reference``.
ORT_BASIC = "onnxruntime (graph optimisation: basic)"


def reference_session(model):
    """An onnxruntime CPU session at the *basic* optimisation level (see the module doc)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


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
    import onnx.numpy_helper as nh

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
    passed = bool(np.all(np.isfinite(got))) and worst <= FLOAT_TOLERANCE * scale
    return {"max_abs_err": worst, "max_rel_err": worst / scale, "passed": passed}


def compare_with_onnxruntime(got: list, imported, inputs: dict) -> dict:
    """Our outputs against onnxruntime (basic level): float outputs judged by the float
    criterion, int8 outputs described in integer steps."""
    want = run_onnxruntime(imported, inputs)
    outs = []
    for g, w, lsb in zip(got, want, output_lsb(imported)):
        if g.shape != w.shape:
            raise UnsupportedError(f"output shape {g.shape} differs from onnxruntime's {w.shape}")
        fig = float_figures(g, w)
        if lsb is not None:
            fig.update(lsb_figures(g, w, lsb))
            fig["passed"] = (fig["within_1_lsb_fraction"] >= INT8_WITHIN_1_LSB
                             and fig["max_lsb_err"] <= INT8_MAX_LSB)
        outs.append(fig)
    return {"reference": ORT_BASIC, "outputs": outs}


INT8_REFERENCE = ("integer reference (tvm_gap8.reference: int32 accumulation, float32-scale "
                  "requantization, round half to even), bit for bit; ONNX QDQ spec per layer "
                  f"(<= {SPEC_MAX_STEPS} step)")


def _int8_against_reference(got: list, imported, inputs: dict) -> dict:
    """Exact: our outputs equal the integer reference's. Spec: every quantized layer of that
    reference (fed with its own previous outputs, which are ours) within one quantization step
    of the ONNX QDQ float semantics. Where a float op that depends on summation order feeds a
    quantize (``exact_applicable`` False), exactness cannot be asked: then the outputs must be
    within 1 step of the reference for >= 99.9% of the elements and none beyond 2."""
    run = integer_reference(imported.onnx_model, inputs)
    spec = spec_layer_check(imported.onnx_model, run)
    outs = []
    for g, w, lsb in zip(got, run.outputs, output_lsb(imported)):
        fig = float_figures(g, w)
        if lsb is not None:
            fig.update(lsb_figures(g, w, lsb))
        outs.append(fig)
    int8 = [o for o in outs if "lsb" in o]
    if run.exact_applicable:
        exact = all(np.array_equal(g, w) for g, w in zip(got, run.outputs))
    else:
        exact = all(o["within_1_lsb_fraction"] >= INT8_WITHIN_1_LSB and
                    o["max_lsb_err"] <= INT8_MAX_LSB for o in int8)
    return {"outputs": outs, "passed": exact and spec.passed,
            "exact": {"applicable": run.exact_applicable, "reasons": run.reasons,
                      "equal" if run.exact_applicable else "within_bounds": exact},
            "spec": {"criterion": spec.to_dict()["criterion"], "passed": spec.passed,
                     "layers": len(spec.layers), "failing": spec.failing,
                     "max_step_diff": max((r["max_step_diff"] for r in spec.layers),
                                          default=0)}}


def _is_int8(imported) -> bool:
    return any(lsb is not None for lsb in output_lsb(imported))


def check_outputs(got: list, imported, inputs: dict, seed: int) -> dict:
    """The ``check`` section of report.json: int8 models against the integer reference and the
    spec (onnxruntime's figures kept as information), float models against onnxruntime."""
    ort = compare_with_onnxruntime(got, imported, inputs)
    if _is_int8(imported):
        judged = _int8_against_reference(got, imported, inputs)
        result = {"reference": INT8_REFERENCE, "seed": seed, **_summary(judged["outputs"]),
                  "passed": judged["passed"],
                  "criterion": "int8: equal to the integer reference; every layer within "
                               f"{SPEC_MAX_STEPS} step of the QDQ spec",
                  "exact": judged["exact"], "spec": judged["spec"],
                  "outputs": [_lsb_only(o) for o in judged["outputs"] if "lsb" in o],
                  "onnxruntime": {"reference": ort["reference"], "information": True,
                                  "outputs": [_lsb_only(o) for o in ort["outputs"]
                                              if "lsb" in o]}}
        return result
    outs = ort["outputs"]
    return {"reference": ort["reference"], "seed": seed, **_summary(outs),
            "passed": all(o["passed"] for o in outs),
            "criterion": f"max abs error <= {FLOAT_TOLERANCE:g} x max |reference|",
            "tolerance_rel": FLOAT_TOLERANCE}


def _summary(outs) -> dict:
    return {"max_abs_err": max((o["max_abs_err"] for o in outs), default=0.0),
            "max_rel_err": max((o["max_rel_err"] for o in outs), default=0.0)}


def _lsb_only(o) -> dict:
    return {k: o[k] for k in ("lsb", "within_1_lsb_fraction", "max_lsb_err", "equal_fraction")}
