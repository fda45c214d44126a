"""Pass instruments the tests use to look inside a pipeline run."""

import tvm


@tvm.instrument.pass_instrument
class KeepLowered:
    """Keeps the module the gap8 passes produced inside a pipeline run (before TVM's build)."""

    def __init__(self):
        self.lowered = None

    def run_after_pass(self, mod, info):
        if info.name == "gap8_passes":
            self.lowered = mod
