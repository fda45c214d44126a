"""Write the bundled example networks (seeded, so every build is byte-identical).

    python examples/build_models.py [OUTDIR]      # default: examples/models
"""

import os
import sys

import onnx

from tvm_gap8.testing import onnx_models as M

MODELS = {
    "mobilenet_v1_025_96": lambda: M.mobilenet_v1(alpha=0.25, resolution=96),
    "mobilenet_v2_035_96": lambda: M.mobilenet_v2(alpha=0.35, resolution=96),
    "mbv3_se_block": lambda: M.squeeze_excite_block(),
}


def main(outdir: str) -> None:
    os.makedirs(outdir, exist_ok=True)
    for name, build in MODELS.items():
        path = os.path.join(outdir, f"{name}.onnx")
        onnx.save(build(), path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "models"))
