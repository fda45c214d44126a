"""What one compile's passes share (passes/compilation.py): the layout plan as a typed record
and the tile-plan memo, owned by the compile (no module attribute, no global cache)."""

import tvm

from tvm_gap8.compiler import lower
from tvm_gap8.frontend import import_onnx
from tvm_gap8.kernels import KernelPlans, plan_kernel
from tvm_gap8.kernels.conv import ConvKernelSpec
from tvm_gap8.kernels.geometry import ConvGeom
from tvm_gap8.passes.compilation import Compilation
from tvm_gap8.passes.layouts import LayerDecision, LayoutPlan
from tvm_gap8.target import GAP8
from tvm_gap8.testing import onnx_models as M


def _pw(cin=16, cout=32):
    return ConvKernelSpec(in_shape=(1, cin, 8, 8), geom=ConvGeom(cin, cout, 1), kind="pw")


def test_plan_memo_keys_on_the_spec_itself():
    plans = KernelPlans()
    a = plans.plan(_pw(), GAP8)
    assert plans.plan(_pw(), GAP8) is a  # an equal spec built again: the same plan
    assert len(plans) == 1
    small = GAP8.with_l1_budget(4000)
    assert plans.plan(_pw(), small) is not a and len(plans) == 2  # keyed on the target too
    assert plans.plan(_pw(cout=48), GAP8) is not a
    assert a.cycles == plan_kernel(_pw(), GAP8).cycles  # the memo changes nothing
    assert KernelPlans().plan(_pw(), GAP8) is not a  # a new compile: a new memo


def test_planner_and_lowering_share_a_typed_plan():
    mod = import_onnx(M.dw_pw_block(cin=8, cout=16, h=10, w=10, act="relu6")).mod
    compilation = Compilation()
    lowered = lower(mod, GAP8, "auto", "auto", compilation)
    plan = compilation.layout_plan
    assert isinstance(plan, LayoutPlan) and (plan.policy, plan.fusion) == ("auto", "auto")
    assert all(isinstance(d, LayerDecision) for d in plan.layers.values())
    assert len(compilation.plans) > 0  # the planner and the lowering planned through it
    # the lowered kernels are in the planned layouts; nothing JSON rides on the module
    assert lowered.attrs is None or "gap8.layout_plan" not in lowered.attrs
    layouts = [dict(f.attrs["gap8.layouts"]) for _, f in lowered.functions_items()
               if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "gap8.kind" in f.attrs]
    planned = [lay.describe() for d in plan.layers.values() for lay in d.layouts]
    assert sorted(map(str, layouts)) == sorted(map(str, planned))
    # without a planner in the same compilation, the lowering uses the defaults
    alone = Compilation()
    lower(mod, GAP8, "all", "chw", alone)
    assert alone.layout_plan is None


def test_a_float_flatten_is_an_alias_not_a_fallback():
    from tvm_gap8.compiler import compile_model
    from tvm_gap8.report.contents import format_table

    report = compile_model(M.classifier_head(), fusion="auto", layout="auto").report
    flatten = [layer for layer in report["layers"] if layer["onnx_nodes"] == ["flatten_0"]]
    assert len(flatten) == 1 and flatten[0]["kind"] == "reshape"
    assert "fallback" not in flatten[0] and "alias" in flatten[0]
    assert "flatten_0" not in "".join(line for line in format_table(report).splitlines()
                                      if "not tiled" in line)
