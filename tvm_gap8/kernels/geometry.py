"""A 2-D convolution's geometry (NCHW / OIHW), shared by every conv-like kernel family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConvGeom:
    """A 2-D conv's geometry in NCHW / OIHW."""

    in_channels: int
    out_channels: int
    kernel: int
    stride: tuple = (1, 1)  # (rows, columns); an int means the same on both axes
    padding: tuple = (0, 0, 0, 0)  # top, left, bottom, right

    def __post_init__(self):
        s = self.stride
        object.__setattr__(self, "stride", (int(s), int(s)) if isinstance(s, int)
                           else tuple(int(v) for v in s))

    @property
    def sh(self) -> int:
        return self.stride[0]

    @property
    def sw(self) -> int:
        return self.stride[1]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        t, l, b, r = self.padding
        return ((h + t + b - self.kernel) // self.sh + 1,
                (w + l + r - self.kernel) // self.sw + 1)


def conv_geom(call) -> ConvGeom:
    w = [int(v) for v in call.args[1].ty.shape.values]
    a = call.attrs
    return ConvGeom(in_channels=int(call.args[0].ty.shape.values[1]), out_channels=w[0],
                    kernel=w[2], stride=tuple(int(v) for v in a.strides),
                    padding=tuple(int(v) for v in a.padding))


def conv_kind(groups: int, in_channels: int, kernel_hw) -> str:
    """``dw`` (groups == input channels > 1), ``pw`` (1x1, ungrouped) or ``conv``: the one
    place a convolution's kind is decided (patterns, the conv family and the report ask)."""
    if groups > 1 and groups == in_channels:
        return "dw"
    if tuple(kernel_hw) == (1, 1) and groups == 1:
        return "pw"
    return "conv"
