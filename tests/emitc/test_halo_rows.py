"""A chain with several row tiles keeps the DW's halo rows of its expanded tile from one tile
to the next (``ir/halo.py``): the C is bit-exact against the LLVM build (which recomputes
them) and the integer reference, and the MACs it executes, counted at run time, are the
layer's, none recomputed. Cases: the first tile computing image rows of the halo or none
(stride 1 or 2, k 3 or 5), software-pipelined or not, with projection channel tiles or not,
CHW or HWC tiles, one-row tiles whose kept rows move up by fewer rows than they are."""

import json

import onnx
import pytest

from tvm_gap8.cli import main
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

CASES = [  # cin, cout, size, k, stride, L1 bytes, layout, pipelined
    (8, 8, 16, 3, 1, 20000, "chw", False),  # 2 projection channel tiles, not pipelined
    (8, 16, 16, 3, 2, 20000, "auto", True),
    (16, 16, 24, 3, 1, 64 * 1024, "auto", False),  # MobileNetV2 x0.5 @96's ir1_1
    (8, 8, 16, 5, 1, 18000, "auto", False),  # 1-row tiles: 4 rows kept, moved up by 1
    (8, 16, 16, 5, 2, 18000, "auto", False),
]


@pytest.mark.parametrize("cin,cout,size,k,stride,l1,layout,pipelined", CASES)
def test_kept_halo_rows_are_bit_exact_and_never_recomputed(cin, cout, size, k, stride, l1,
                                                          layout, pipelined, tmp_path):
    model = tmp_path / "chain.onnx"
    onnx.save(quantized(M.chain_block(cin=cin, cout=cout, h=size, w=size, t=6, k=k,
                                      stride=stride), samples=2), str(model))
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"l1_bytes": l1}))
    rc = main(["compile", str(model), "--fusion", "all-chains", "--layout", layout, "--emit-c",
               "--run", "host", "--instrument", "--check", "--hw", str(hw),
               "-o", str(tmp_path / "o"), "-q"])
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rc == 0
    (chain,) = [layer for layer in report["layers"] if layer.get("tiled")]
    assert chain["kind"] == "pw_dw_pw" and chain["tile"]["row_tiles"] > 1
    assert chain["tile"]["double_buffered"] == pipelined
    assert report["run"]["vs_llvm"] == {"integers_equal": True, "max_abs_diff": 0}
    assert report["run"]["check"]["passed"]
    # every MAC the C executes is one of the layer's: no expanded row computed twice
    assert report["measured"]["all_equal_to_static"]
    assert report["measured"]["totals"]["macs"] == chain["macs"]
    kernels = (tmp_path / "o" / "gap8" / "kernels.c").read_text()
    assert "halo_0" in kernels  # the move of the kept rows
    # the first tile computes the image rows among the kept ones (k - stride of them, the
    # first k // 2 the padding)
    assert ("_first" in kernels) == (k - stride > k // 2)
