"""Data layouts of a kernel's activations: CHW (NCHW in L2) or HWC (NHWC), per tensor and per
L1 tile, as the paper's kernels have them (``dw_CHW_HWC``, ``pw_HWC_HWC``,
``dw_pw_CHW_CHW_HWC``...).

A kernel spec keeps its shapes logical (N, C, H, W); its ``layouts`` (``KernelLayouts``) say
how each tensor is stored: the input tensor in L2 (``source``), the input tile in L1 the kernel
computes from (``tile``: when it differs from ``source``, the L2->L1 copy transposes, as
DORY's DMA does for a DW layer's input), the output tile in L1 and the output tensor in L2
(``out``: kernels write their output in its layout, no transposition on the way out), and a
fused kernel's intermediate (``mid``). The TE computes address tensors through ``element`` and
build stages with ``stage``, so one compute serves every layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import te

from ..ir.vocab import CHW, HWC  # noqa: F401  (defined once, in ir/vocab.py; re-exported)


@dataclass(frozen=True)
class KernelLayouts:
    source: str = CHW  # the input tensor(s) in L2
    tile: str = CHW  # the input tile in L1, the layout the kernel computes from
    out: str = CHW  # the output tile in L1 and the output tensor in L2
    mid: str = ""  # a fused kernel's intermediate (L1 only)

    @property
    def transposing(self) -> bool:
        """The input copy L2->L1 transposes (HWC <-> CHW)."""
        return self.source != self.tile

    def describe(self) -> dict:
        """The report's ``layouts``: the L2 tensors and the L1 tiles."""
        d = {"input": self.source, "input_tile": self.tile, "output": self.out}
        if self.mid:
            d["intermediate"] = self.mid
        return d

    def name(self) -> str:
        """Short name, the paper's style: in[>tile]_[mid_]out."""
        src = self.source if not self.transposing else f"{self.source}>{self.tile}"
        return "_".join(p for p in (src, self.mid, self.out) if p)


def _perm(rank: int, layout: str) -> tuple:
    """Logical axes in storage order: (N,) C, H, W stored as (N,) H, W, C for HWC."""
    if layout == CHW:
        return tuple(range(rank))
    return (0, 2, 3, 1) if rank == 4 else (1, 2, 0)


def storage_axis(rank: int, layout: str, axis: int) -> int:
    """Where logical ``axis`` of a rank-``rank`` tensor stored in ``layout`` is indexed."""
    return _perm(rank, layout).index(axis)


def physical(shape, layout: str) -> tuple:
    """The stored shape of a logical (N, C, H, W) or (C, H, W) tensor."""
    return tuple(shape[a] for a in _perm(len(shape), layout))


def element(tensor, layout: str, *idx):
    """``tensor``'s element at logical indices (n, c, h, w) or (c, h, w)."""
    return tensor[tuple(idx[a] for a in _perm(len(idx), layout))]


def stage(shape, fcompute, layout: str, name: str):
    """``te.compute`` of a logical (N, C, H, W) or (C, H, W) stage stored in ``layout``:
    ``fcompute`` gets logical indices whatever the storage."""
    perm = _perm(len(shape), layout)

    def body(*phys):
        logical = [None] * len(phys)
        for p, a in zip(phys, perm):
            logical[a] = p
        return fcompute(*logical)

    return te.compute(physical(shape, layout), body, name=name)


def placeholder(shape, layout: str, dtype: str, name: str):
    return te.placeholder(physical(shape, layout), dtype, name=name)


def logical_loops(loops, layout: str) -> tuple:
    """Logical-order loops of a stage's block whose loops follow its storage."""
    loops = list(loops)
    perm = _perm(len(loops), layout)
    out = [None] * len(loops)
    for lp, a in zip(loops, perm):
        out[a] = lp
    return tuple(out)
