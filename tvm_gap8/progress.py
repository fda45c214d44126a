"""Progress, through the ``tvm_gap8`` logger: every step a compile takes (import, planning,
fusion and lowering per layer, C emission, builds, runs) and, when it took a second or more, its
elapsed time. Silent unless shown: the CLI shows it on stderr (not with ``-q``), as does
``compile_model(quiet=False)``; a program may attach its own handler to ``tvm_gap8``."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager

import tvm

LOG = logging.getLogger("tvm_gap8")
#: Steps shorter than this are announced but their time is not printed.
SLOW_S = 1.0


@contextmanager
def step(what: str, announce: bool = True):
    """Logs ``what`` when it starts (``announce``) and, when it took >= ``SLOW_S``, its time."""
    if announce:
        LOG.info("%s", what)
    t0 = time.perf_counter()
    yield
    elapsed = time.perf_counter() - t0
    if elapsed >= SLOW_S:
        LOG.info("%s: %.1f s", what, elapsed)


@contextmanager
def shown(enabled: bool = True, stream=None):
    """Prints the ``tvm_gap8`` progress on ``stream`` (stderr) for the duration."""
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("[tvm-gap8] %(message)s"))
    level = LOG.level
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    try:
        yield
    finally:
        LOG.removeHandler(handler)
        LOG.setLevel(level)


@tvm.instrument.pass_instrument
class SlowPasses:
    """A TVM pass instrument logging every pass (ours or TVM's) that took >= ``SLOW_S``."""

    def __init__(self):
        self.started = []

    def run_before_pass(self, _mod, _info):
        self.started.append(time.perf_counter())

    def run_after_pass(self, _mod, info):
        elapsed = time.perf_counter() - self.started.pop()
        if elapsed >= SLOW_S and info.name not in ("sequential", "gap8_passes"):
            LOG.info("  pass %s: %.1f s", info.name, elapsed)
