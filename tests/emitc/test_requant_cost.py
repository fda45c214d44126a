"""The requantization's executed rv32imc instructions per output (``benchmarks/
requant_rv32.py``): the default fixed-point mode within the issue's budget of 40, and several
times cheaper than the float32-faithful one."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _benchmark():
    path = os.path.join(ROOT, "benchmarks", "requant_rv32.py")
    spec = importlib.util.spec_from_file_location("requant_rv32", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixed_point_requantization_costs_at_most_40_instructions(rv32):
    channels, pixels = 8, 128
    counts = _benchmark().run(channels, pixels)
    sums = counts.pop("sums")
    assert sums["fixed"] == sums["fixed64"]  # the two forms compute the same outputs
    per_output = {k: (v - counts["baseline"]) / (channels * pixels) for k, v in counts.items()}
    assert per_output["fixed"] <= 16 and per_output["fixed64"] <= 40, per_output
    assert per_output["float32"] >= 4 * per_output["fixed"], per_output
