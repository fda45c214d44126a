import numpy as np
import pytest

from tvm_gap8.compiler import compile_model


#: The kernel tests' compile: every pair the rules allow fused, every kernel in its default
#: layouts (not the planner's choices, the library default): what they test stays put.
KERNELS = {"fusion": "all", "layout": "chw"}


def compile_checked(model, fuse=True, **kw):
    """Compile with --check semantics; assert it passed and return the result."""
    result = compile_model(model, fuse=fuse, check=True, **{**KERNELS, **kw})
    check = result.report["check"]
    assert check["passed"], check
    if "exact" in check and check["exact"]["applicable"]:  # int8: bit for bit
        assert check["exact"]["equal"] and check["spec"]["passed"], check
    return result


@pytest.fixture
def rng():
    return np.random.default_rng(0)
