"""Fixtures of the --emit-c tests: int8 models (built once per session) and the rv32 toolchain
(installed by tools/ensure_riscv.sh when missing and possible, else the tests skip, saying why)."""

import os
import subprocess

import onnx
import pytest

from tvm_gap8.emitc.build import rv32_available
from tvm_gap8.testing import onnx_models as M
from tvm_gap8.testing.quant import quantized

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def rv32():
    if rv32_available():
        subprocess.run(["sh", os.path.join(ROOT, "tools", "ensure_riscv.sh")], check=False)
    missing = rv32_available()
    if missing:
        pytest.skip(f"rv32 toolchain/QEMU unavailable ({missing}); run tools/ensure_riscv.sh "
                    "as root or apt-get install gcc-riscv64-unknown-elf "
                    "picolibc-riscv64-unknown-elf qemu-system-misc")
    return True


@pytest.fixture(scope="session")
def int8_model(tmp_path_factory):
    """name -> path of an int8 QDQ model, built on first use."""
    cache = {}
    builders = {
        "mobilenet_v1_025_96": lambda: M.mobilenet_v1(alpha=0.25, resolution=96),
        "mobilenet_v2_035_96": lambda: M.mobilenet_v2(alpha=0.35, resolution=96),
        "mobilenet_v1_100_128": lambda: M.mobilenet_v1(alpha=1.0, resolution=128),
        "mobilenet_v1_100_224_1000": lambda: M.mobilenet_v1(alpha=1.0, resolution=224,
                                                            num_classes=1000),
    }

    def get(name):
        if name not in cache:
            path = tmp_path_factory.mktemp("models") / f"{name}_int8.onnx"
            onnx.save(quantized(builders[name]()), str(path))
            cache[name] = str(path)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def gvsoc():
    """GVSOC (pulp-open) and pulp-runtime, installed by tools/ensure_gvsoc.sh (make test runs it)
    when its tarballs or GitHub are reachable; otherwise the GVSOC tests skip, saying why."""
    from tvm_gap8.emitc.gvsoc import gvsoc_available
    if gvsoc_available():
        subprocess.run(["sh", os.path.join(ROOT, "tools", "ensure_gvsoc.sh")], check=False)
    missing = gvsoc_available()
    if missing:
        pytest.skip(missing)
    return True
