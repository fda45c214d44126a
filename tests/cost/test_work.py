"""The work terms the GVSOC-fitted model prices (``cost/work.py``): a fused pair counts as its
two convs, plus its MACs once more as ``fused_macs`` (the measured cost of fusing); a standalone
conv has none."""

from tvm_gap8.cost.work import work_of
from tvm_gap8.kernels.fused import ConvGeom, FusedKernelSpec


def test_a_fused_pair_is_its_convs_plus_its_macs_as_fused_work():
    pair = FusedKernelSpec("dw_pw", (1, 32, 24, 24), ConvGeom(32, 32, 3, 1, (1, 1, 1, 1)),
                           ConvGeom(32, 64, 1))
    dw, pw = pair.split()
    work = work_of(pair)
    assert work["dw_macs_chw"] == dw.macs() and work["pw_macs_hwc"] == pw.macs()
    assert work["fused_macs"] == dw.macs() + pw.macs() == pair.macs()
    alone = work_of(pw)  # the same PW standalone: its MACs, no fused work
    assert alone["fused_macs"] == 0
    assert sum(v for k, v in alone.items() if k.endswith(("_chw", "_hwc"))) == pw.macs()
