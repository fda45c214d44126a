"""The kernel-family registry: every family declares what lowering, formation and the report
need, the pipeline's formation passes follow the registry, and a schedule stages exactly the
L1 buffers its plan declares."""

import tvm

from tvm_gap8.kernels import FAMILIES, family_of
from tvm_gap8.kernels.conv import ConvKernelSpec, conv_tiling, schedule_conv
from tvm_gap8.kernels.epilogue import ACC, Epilogue, EpilogueOp, Ref
from tvm_gap8.kernels.geometry import ConvGeom
from tvm_gap8.pipeline import gap8_passes
from tvm_gap8.target import GAP8
from tvm_gap8.ir.tirwalk import walk
from tvm_gap8.ir.vocab import COPY_ANN, INTERMEDIATE, ROLE_ANN


def test_every_family_declares_itself_once():
    kinds = [k for f in FAMILIES for k in f.kinds]
    assert len(kinds) == len(set(kinds))
    for f in FAMILIES:
        assert f.patterns and f.layer_keys, f.kind
        assert all(callable(c) for c in (f.read, f.plan, f.schedule, f.problem)), f.kind
        assert all(family_of(k) is f for k in f.kinds)
    # chains before the pairs, DW->PW before PW->DW (the pairing rule)
    assert [f.kind for f in FAMILIES if f.fused] == ["pw_dw_pw", "dw_pw", "pw_dw"]


def test_pipeline_forms_kernels_in_registry_order():
    names = [p.info.name for p in gap8_passes()]
    formed = [n for n in names if n.startswith(("Fuse", "Form"))]
    assert formed == ["FuseDepthwisePointwise", "FusePointwiseDepthwise", "FormConvKernels",
                      "FormAddKernels", "FormPoolKernels", "FormDenseKernels", "FormMulKernels",
                      "FormLutKernels"]
    assert len(formed) == len(FAMILIES) - 1  # the chains only when asked for
    chained = [p.info.name for p in gap8_passes(fusion="chains")]
    assert [n for n in chained if n.startswith(("Fuse", "Form"))] == \
        ["FusePointwiseDepthwisePointwise", *formed]


def _copies(prim):
    out = []
    for stmt, _ in walk(prim.body):
        if isinstance(stmt, tvm.s_tir.SBlock) and COPY_ANN in stmt.annotations:
            out.append(str(stmt.annotations[ROLE_ANN]))
    return out


def test_schedule_stages_exactly_the_declared_buffers():
    bias = Epilogue((EpilogueOp("relax.add", (ACC, Ref("channel", 0))),))
    spec = ConvKernelSpec((1, 16, 12, 12), ConvGeom(16, 32, 3, 1, (1, 1, 1, 1)), 1, bias,
                          channel_shapes=((1, 32, 1, 1),))
    for rows, channels in ((12, 32), (4, 8), (1, 1)):
        plan = conv_tiling(spec, GAP8, rows, channels)
        declared = sorted(b.role for b in plan.buffers if b.role != INTERMEDIATE)
        assert sorted(_copies(schedule_conv(spec, plan))) == declared, (rows, channels)
