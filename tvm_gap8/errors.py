"""Errors users see. Every failure we can anticipate becomes one of these, with a message that
names the thing at fault (file, input, node, layer) and the limit it broke; the CLI prints it as a
single ``error: ...`` line and exits 2 (usage) or 1 (compile)."""


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
