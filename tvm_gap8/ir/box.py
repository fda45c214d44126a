"""The interior of a padded tile, as one TIR test: read by the schedules that compute it
(``kernels/staging.py``) and by the C emission that fills the ring around it
(``emitc/plainc._ring_blocks``), so both name the same box."""

from __future__ import annotations

from tvm import tirx


def inside(y, x, t: int, l: int, h: int, w: int):
    """Row ``y`` and column ``x`` of a tile padded by ``t`` rows above and ``l`` columns to the
    left lie in its ``h`` x ``w`` interior."""
    return tirx.all(y >= t, y < h + t, x >= l, x < w + l)
