import numpy as np
import pytest

from tvm_gap8.compiler import compile_model


def compile_checked(model, fuse=True, **kw):
    """Compile with --check semantics; assert it passed and return the result."""
    result = compile_model(model, fuse=fuse, check=True, **kw)
    check = result.report["check"]
    assert check["passed"], check
    if "exact" in check and check["exact"]["applicable"]:  # int8: bit for bit
        assert check["exact"]["equal"] and check["spec"]["passed"], check
    return result


@pytest.fixture
def rng():
    return np.random.default_rng(0)
