"""The interface every kernel spec offers, whatever its family.

Fields, spelled the same in every spec dataclass: ``kind`` (the lowered kernel's kind),
``dtype`` (the activation input's element type), ``out_shape`` / ``out_dtype``, ``macs()``;
conv-like specs also ``in_shape``, ``w_dtype``, ``in_zp``, ``channel_shapes`` /
``channel_dtypes`` (the per-channel tensors their epilogues read). Derived here: ``integer``
and ``epilogues``, so that lowering and the fusion policy never ask a spec's type.
"""

from __future__ import annotations

import dataclasses

from .layout import KernelLayouts


class KernelSpec:
    epilogues: tuple = ()  # the specs with epilogues return theirs, in compute order
    layouts = KernelLayouts()  # CHW everywhere; the layout-capable specs have it as a field

    @classmethod
    def has_layouts(cls) -> bool:
        """Its kernels take and give either layout (``layouts`` is a field of the spec)."""
        return "layouts" in {f.name for f in dataclasses.fields(cls)}

    def describe_epilogues(self) -> list:
        """Human names of the epilogues, in compute order (the report's ``epilogues``)."""
        return [e.describe() for e in self.epilogues]

    @property
    def integer(self) -> bool:
        """An integer kernel (int8/uint8 output; no float inside, for a QDQ layer)."""
        return not str(self.out_dtype).startswith("float")


class TypedOperands(KernelSpec):
    """Element types of a kernel spec with ``dtype``, ``w_dtype`` and ``channel_dtypes``
    fields: weights default to the input's type, as do per-channel tensors."""

    @property
    def weight_dtype(self) -> str:
        return self.w_dtype or self.dtype

    def channel_dtype(self, i: int) -> str:
        return self.channel_dtypes[i] if self.channel_dtypes else self.dtype
