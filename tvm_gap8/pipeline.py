"""The ``gap8`` Relax pipeline: fold -> fuse DW/PW pairs -> lower fused kernels -> TVM build.

Registered under the name ``gap8`` so that ``tvm.compile(mod, target, relax_pipeline="gap8")``
works; ``relax.get_pipeline("gap8", l1_kb=32, fusion="all", ...)`` (every field of
``options.CompileOptions``) or ``gap8_pipeline(hw=..., options=...)`` builds it for other knobs or
another hardware description. Defaults: ``options.DEFAULTS``, the CLI's.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.pipeline import PIPELINE_MAP

from .ir.irutil import bindings
from .kernels import FAMILIES
from .passes import record_fusion_disabled, record_unfused_depthwise
from .passes.formation import formation_pass
from .passes.compilation import Compilation
from .passes.layouts import PlanLayouts
from .passes.place import LowerAndPlace
from .errors import UsageError
from .options import DEFAULTS, CompileOptions
from .target import GAP8, Gap8Target, is_gap8, tvm_target


@tvm.transform.module_pass(opt_level=0, name="FoldConstantKeepQuantized")
def fold_constants(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """FoldConstant, except on QDQ models: there it would fold ``dequantize(int8 weights)`` into
    float weights, and the patterns need the integers (they match the dequantize itself, and
    tolerate the unfolded ``reshape`` of a bias). Constants left over are folded after lowering.
    """
    if _has_quantize(mod):
        return mod
    return relax.transform.FoldConstant()(mod)


def _has_quantize(mod) -> bool:
    q = tvm.ir.Op.get("relax.quantize")
    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            for b in bindings(func):
                if isinstance(b.value, relax.Call) and b.value.op.same_as(q):
                    return True
    return False


#: fusion policies that form PW->DW->PW chains: ``chains`` (``auto`` plus each chain the cycle
#: model says beats its block without it), ``all-chains`` (``all`` plus every chain that fits).
#: Not the default: on GVSOC the chain kernels measure slower than the pairs (docs/
#: fusion-and-layouts.md, "PW -> DW -> PW chains"), which the calibrated model does not see yet.
CHAIN_POLICIES = ("chains", "all-chains")


def gap8_passes(hw: Gap8Target = GAP8, fusion: str = DEFAULTS.fusion,
                layout: str = DEFAULTS.layout, compilation: Compilation | None = None) -> list:
    """Our passes, in order, without TVM's final build passes. ``fusion``: fuse ``all`` pairs
    and PW->DW->PW chains the rules allow, only the ``profitable`` ones (by the tiler's cycle
    model), ``none``, ``chains`` (``auto`` with PW->DW->PW chains where the model says they
    win), ``all-chains`` (``all`` with every chain that fits), or let the planner decide
    (``auto``: it may split a formed pair); ``layout``: the planner's layout policy (``chw``
    with ``all`` / ``profitable`` / ``none``: no planner, every kernel in its default
    layouts); ``compilation``: the records the passes share (the layout plan), a new one when
    None. Defaults: ``options.DEFAULTS``, as everywhere."""
    CompileOptions(fusion=fusion, layout=layout)  # refuses an unknown policy, naming it
    fuse, policy = fusion != "none", fusion
    compilation = compilation if compilation is not None else Compilation()
    passes = [
        fold_constants,
        relax.transform.DecomposeOpsForInference(),  # any BN onnxruntime did not fold
        fold_constants,
    ]
    fused = [f for f in FAMILIES if f.fused]
    chains = policy in CHAIN_POLICIES
    if fuse:  # chains (when asked for), then the fused pairs, DW->PW before PW->DW
        formed = "all" if policy in ("auto", *CHAIN_POLICIES) else policy
        # a chain forms only where the model says it beats its block without it (the planner
        # cannot split it), except under ``all-chains``: every chain that fits
        passes += [formation_pass(f, hw, ("all" if policy == "all-chains" else "profitable")
                                  if f.compare else formed, compilation, layout)
                   for f in fused if chains or f.compare is None] + [record_unfused_depthwise]
    passes += [formation_pass(f) for f in FAMILIES if f not in fused]
    if not fuse:
        passes.append(record_fusion_disabled)
    planned = "auto" if policy == "chains" else policy  # chains: the planner as under auto
    if layout != "chw" or (fuse and planned == "auto"):
        passes.append(PlanLayouts(hw, layout, planned if fuse else "none", compilation))
    passes.append(LowerAndPlace(hw, compilation))  # lowering under the memory placement
    return passes


@tvm.transform.module_pass(opt_level=0, name="Gap8TargetCheck")
def _refuse_other_targets(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    target = tvm.target.Target.current(allow_none=True)
    if target is not None and target.kind.name not in ("llvm", "c"):
        raise UsageError(f"the gap8 pipeline builds CPU code (its kernels for GAP8, checked on "
                         f"the host with llvm or emitted as C), not for target kind "
                         f"{target.kind.name!r}; use tvm_gap8.target.tvm_target()")
    return mod


def gap8_pipeline(hw: Gap8Target = GAP8, options: CompileOptions | None = None,
                  **knobs) -> tvm.transform.Pass:
    """Our passes then TVM's ``default_build``. ``options`` (or its fields as keywords:
    ``relax.get_pipeline("gap8", l1_kb=32, fusion="all")``) default to ``DEFAULTS``.

    Under a target that is not GAP8's (``tvm.compile(mod, target="llvm",
    relax_pipeline="gap8")``) our passes still run, under the GAP8 host target
    (``tvm_target()``: the same ``llvm`` kind with ``gap8`` among its keys), so the module
    built holds the GAP8 kernels; a non-CPU target is refused, saying why."""
    options = (options or DEFAULTS).replace(**knobs)
    return tvm.transform.Sequential([_refuse_other_targets,
                                     _UnderGap8Target(options.target(hw), options),
                                     relax.get_pipeline("default_build")], name="gap8")


@tvm.transform.module_pass(opt_level=0, name="UnderGap8Target")
class _UnderGap8Target:
    """Runs our passes (``gap8_passes``, a new Compilation per module) under the GAP8 host
    target unless a GAP8 target is current already."""

    def __init__(self, hw: Gap8Target, options: CompileOptions):
        self.hw, self.options = hw, options

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        ours = tvm.transform.Sequential(gap8_passes(self.hw, self.options.fusion,
                                                    self.options.layout), name="gap8_passes")
        if is_gap8(tvm.target.Target.current(allow_none=True)):
            return ours(mod)
        with tvm_target(host=True):
            return ours(mod)


def _register():
    if "gap8" not in PIPELINE_MAP:  # re-imports (e.g. importlib.reload) must not raise
        relax.register_pipeline("gap8")(gap8_pipeline)


_register()
