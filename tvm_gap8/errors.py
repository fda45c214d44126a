"""Errors users see. Every failure we can anticipate becomes one of these, with a message that
names the thing at fault (file, input, node, layer) and the limit it broke; the CLI prints it as a
single ``error: ...`` line and exits 2 (usage) or 1 (compile)."""

import re


class Gap8Error(Exception):
    """Base class: an anticipated, user-facing failure."""

    exit_code = 1


class UsageError(Gap8Error):
    """The command line or the arguments are wrong (exit status 2)."""

    exit_code = 2


class ModelError(Gap8Error):
    """The model file cannot be read, checked or imported."""


class UnsupportedError(Gap8Error):
    """The model is valid but uses something we cannot compile."""


class TilingError(Gap8Error):
    """A layer does not fit the target's L1 budget even at its smallest tile."""

    #: how the message states the L1 budget the layer's smallest tile needs (``needed_budget``
    #: reads it back: a pass's exception crosses TVM's FFI as its type and message only)
    NEEDS = "its smallest tile ({tile}) needs {needed} B, "

    @property
    def needed_budget(self) -> int | None:
        """The L1 budget (bytes) the failing layer's smallest tile needs, when stated."""
        found = re.search(r"its smallest tile \(.*?\) needs (\d+) B, ", str(self))
        return int(found.group(1)) if found else None


def _register_with_ffi():
    """Let our errors cross TVM's FFI (a pass raising TilingError reaches the caller as a
    TilingError, not a RuntimeError)."""
    try:
        import tvm_ffi
    except ImportError:  # pragma: no cover - tvm_ffi ships with apache-tvm
        return
    for cls in (Gap8Error, UsageError, ModelError, UnsupportedError, TilingError):
        tvm_ffi.register_error(cls.__name__, cls)


_register_with_ffi()


class BuildError(Gap8Error):
    """The emitted C project did not build or run (--emit-c --run)."""


class LinkError(BuildError):
    """The network does not fit a GAP8 memory region: the rv32 link said which."""
