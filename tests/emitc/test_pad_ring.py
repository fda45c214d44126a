"""A padded input copy fills only the ring the copy leaves (``plainc._ring_fill``), and so does a
chain's expanded tile around the interior its expansion computes (``plainc._ring_fills``):
every layer run from an L1 arena of garbage (``-DGAP8_POISON_L1``) gives the same bytes as from
a clean one, so no kernel reads an L1 byte it did not write, the pad ring included."""

import numpy as np
import pytest

from tvm_gap8.compiler import compile_model
from tvm_gap8.emitc import build
from tvm_gap8.emitc.network import read_network
from tvm_gap8.emitc.project import write_project
from tvm_gap8.target import GAP8
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized


@pytest.fixture(scope="module")
def model():
    return quantized(M.mobilenet_v1(alpha=0.25, resolution=32), samples=2)


@pytest.mark.parametrize("fusion,layout", [("none", "chw"), ("auto", "auto"), ("all", "hwc")])
def test_poisoned_l1_gives_the_same_output(model, fusion, layout, tmp_path):
    hw = GAP8.replace(l1_bytes=8192 + 3000)  # stacks + 3 kB: several row tiles: top, inner and bottom rings
    _same_output_poisoned(model, hw, fusion, layout, tmp_path)


def test_chain_fills_its_expanded_ring_only(tmp_path):
    """Chains (stride 1 and 2, with several row tiles): each expanded tile's fill becomes the
    ring around its interior, never the whole tile, and reads no unwritten L1 byte."""
    model = quantized(M.mobilenet_v2(alpha=0.35, resolution=32, blocks=[
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 1, 2)]), samples=2)
    net = _same_output_poisoned(model, GAP8.replace(l1_bytes=8192 + 9000), "all-chains",
                                "auto", tmp_path)
    chains = [k for name, k in net.kernels.items() if "pw_dw_pw" in name]
    assert len(chains) == 3
    assert all(k.ring_fills > 0 and k.whole_fills == 0 for k in chains), \
        [(k.name, k.ring_fills, k.whole_fills) for k in chains]


def _same_output_poisoned(model, hw, fusion, layout, tmp_path):
    result = compile_model(model, hw=hw, fuse=fusion != "none", fusion=fusion, layout=layout)
    net = read_network(result.lowered, hw, instrument=False, placement=result.placement)
    project = str(tmp_path / "p")
    write_project(net, hw, project)
    x_t, out_t = net.tensors[net.inputs[0]], net.tensors[net.outputs[0]]
    x = np.random.default_rng(0).integers(-128, 128, x_t.shape).astype(x_t.dtype)
    outs = []
    for flags in ((), ("-DGAP8_POISON_L1=0x33",), ("-DGAP8_POISON_L1=-0x80",)):
        exe = build.build_host(project, extra_flags=flags)
        outs.append(build.run_project(project, exe, "host", x, out_t.shape, out_t.dtype)["output"])
    assert any(t > 1 for t in _tiles(result.report)), "no layer has several tiles"
    np.testing.assert_array_equal(outs[1], outs[0])
    np.testing.assert_array_equal(outs[2], outs[0])
    return net


def _tiles(report):
    return [layer["tile"]["row_tiles"] for layer in report["layers"] if layer.get("tiled")
            and "row_tiles" in layer.get("tile", {})]
