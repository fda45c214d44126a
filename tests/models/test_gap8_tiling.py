"""Issue 4's networks: everything tiled for GAP8's L1, read off the lowered IR."""

import json

import pytest
import tvm

from tests.conftest import compile_checked
from tvm_gap8.ir.tirwalk import allocations, sblocks
from tvm_gap8.target import GAP8
from tvm_gap8.ir.vocab import L1_SCOPE, ROLE_ANN
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


def _assert_tiled_within(result, budget):
    tiled = [layer for layer in result.report["layers"] if layer.get("tiled")]
    assert tiled
    for layer in tiled:
        assert layer["l1_peak_bytes"] <= budget, layer["name"]
        # the plan in report.json is the IR's
        assert layer["l1_peak_bytes"] == layer["plan"]["l1_bytes"], layer["name"]
        for key in ("l2_to_l1_act", "l1_to_l2_act", "l2_to_l1_wgt", "dma_transfers"):
            assert layer["traffic"][key] == layer["plan"][key], (layer["name"], key)
    # every conv, fused pair, add, pool and dense is a tiled kernel
    untiled = {layer["kind"] for layer in result.report["layers"] if not layer.get("tiled")}
    assert untiled <= {"quantize", "dequantize", "reshape"}, untiled
    return tiled


def _kernels(mod):
    return {gv.name_hint: f for gv, f in mod.functions_items()
            if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and "gap8.kind" in f.attrs}


def test_mobilenet_v1_10_128_int8_fits_64kB():
    result = compile_checked(quantized(M.mobilenet_v1(alpha=1.0, resolution=128)))
    _assert_tiled_within(result, 64000)
    assert len(result.report["fusion"]["fused"]) == 13


def test_mobilenet_v2_int8_fits_64kB():
    result = compile_checked(quantized(M.mobilenet_v2(alpha=0.35, resolution=96)))
    _assert_tiled_within(result, 64000)


def test_fused_intermediates_live_only_in_l1():
    result = compile_checked(quantized(M.mobilenet_v2(alpha=0.35, resolution=96)))
    for name, prim in _kernels(result.lowered).items():
        scopes = {b.name: b.scope() for b, _ in allocations(prim)}
        assert set(scopes.values()) <= {L1_SCOPE, "local"}, name
        if str(prim.attrs["gap8.kind"]) in ("dw_pw", "pw_dw"):
            (mid,) = [blk for blk in sblocks(prim) if blk.annotations.get(ROLE_ANN) == "intermediate"]
            assert scopes[mid.writes[0].source.name] == L1_SCOPE, name


@pytest.mark.slow
def test_half_the_l1_gives_more_tiles():
    model = M.mobilenet_v1(alpha=0.25, resolution=96)
    full = compile_checked(model)
    half = compile_checked(model, hw=GAP8.with_l1_budget(32000))
    tiles = lambda r: sum(lay["tile"]["row_tiles"] * lay["tile"]["channel_tiles"]  # noqa: E731
                          for lay in r.report["layers"] if lay.get("tiled"))
    _assert_tiled_within(half, 32000)
    assert tiles(half) > tiles(full)


def test_other_targets_are_left_alone():
    from tvm import relax

    from tvm_gap8.frontend import import_onnx
    from tvm_gap8.passes import FuseDepthwisePointwise

    mod = relax.transform.FoldConstant()(import_onnx(M.dw_pw_block()).mod)
    with tvm.target.Target("llvm"):
        assert not any("Composite" in (f.attrs or {}) for _, f in
                       FuseDepthwisePointwise()(mod).functions_items())
    with tvm.target.Target({"kind": "llvm", "keys": ["gap8", "cpu"]}):
        assert any("Composite" in (f.attrs or {}) for _, f in
                   FuseDepthwisePointwise()(mod).functions_items())


@pytest.mark.slow
def test_report_json_carries_the_tile_and_traffic(tmp_path):
    from tvm_gap8.cli import main

    path = tmp_path / "m.onnx"
    import onnx

    onnx.save(M.mobilenet_v1(alpha=0.25, resolution=96), path)
    assert main(["compile", str(path), "-o", str(tmp_path / "o"), "-q"]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    layer = [lay for lay in report["layers"] if lay["kind"] == "dw_pw"][0]
    assert set(layer["tile"]) >= {"rows", "channels", "row_tiles", "channel_tiles"}
    assert set(layer["traffic"]) == {"l2_to_l1_act", "l1_to_l2_act", "l2_to_l1_wgt",
                                     "l3_to_l2", "l2_to_l3", "dma_transfers",
                                     "l2_to_l1_transposed"}
    assert layer["l1_peak_bytes"] > 0
    assert report["target"]["l1_bytes"] == 64000


def test_profitable_fusion_policy_refuses_costly_pairs_and_wins():
    from tvm_gap8.compiler import compile_model

    # @128, priced by the analytical model: a network with a pair that model finds costlier
    # fused (at @96, since a fused kernel's PW half is costed as the standalone PW, every pair
    # there is profitable; the GVSOC-fitted model finds every pair profitable at both)
    model = quantized(M.mobilenet_v1(alpha=0.25, resolution=128))
    hw = GAP8.replace(cycle_model="analytical")

    def cycles(report):
        return sum(layer["plan"]["cycles"] for layer in report["layers"] if layer.get("plan"))

    none = compile_model(model, hw=hw, fuse=False, layout="chw").report
    every = compile_model(model, hw=hw, fusion="all", layout="chw").report
    profitable = compile_checked(model, hw=hw, fusion="profitable").report
    reasons = [r["reason"] for r in profitable["fusion"]["refused"]]
    assert reasons and all("fusion not profitable on gap8" in r for r in reasons)
    assert 0 < len(profitable["fusion"]["fused"]) < len(every["fusion"]["fused"])
    assert cycles(profitable) <= cycles(every) and cycles(profitable) <= cycles(none)
    assert profitable["fusion_policy"] == "profitable"
