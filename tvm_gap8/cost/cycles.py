"""The modelled GAP8 cycle count of a tiled kernel: the one home of the cycle model.

Compute: the per-kernel latency models of GAP8's int8 kernels on the 8-core cluster published
with PLiNIO (eml-eda/plinio ``plinio/cost/gap8_latency.py``, Jahier Pagliari et al.; fitted on
measurements), evaluated per tile so that small tiles pay their loop overheads. Add and pooling
have no published model: ``eltwise`` is our assumption, labelled as such.

Data movement: bytes / the cluster DMA's bandwidth plus a set-up cost per transfer
(``Gap8Target.dma_bytes_per_cycle``, ``dma_setup_cycles``, cited there); with double buffering
all but the first load and the last store of the pipelined loop hide behind compute.

These are model figures, not measurements; the tiler ranks tiles by them and the report shows
them as ``plan.cycles``. The IR measurement next door (``cost/ir.py``) is the truth for bytes
and transfers, never for cycles.
"""

from __future__ import annotations


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def conv(cin: int, cout: int, oh: int, ow: int, k: int, groups: int = 1) -> int:
    """An int8 conv on the cluster (PLiNIO's GAP8 model; a depthwise conv has its own)."""
    if groups > 1 and groups == cin == cout:
        return depthwise(cout, oh, ow, k)
    cin_g = cin // groups
    iterations = _ceil(oh, 2) * _ceil(ow, 8)
    im2col = k * k * cin_g * 2
    matmul = _ceil(cout, 4) * (5 + _ceil(k * k * cin_g, 4) * 14 + 10)
    return iterations * (im2col + matmul)


def depthwise(channels: int, oh: int, ow: int, k: int) -> int:
    """An int8 depthwise conv (same source), also for a tile of one channel."""
    return 4 * _ceil(channels, 4) * oh * ow * k * k


def linear(cin: int, cout: int) -> int:
    """An int8 fully connected layer (same source)."""
    return _ceil(cin, 2) * _ceil(cout, 4)


def eltwise(hw, elements: int) -> int:
    """Add / pooling: OUR ASSUMPTION (no published model): 2 cycles per element per core
    (load-load/accumulate-store in a 4-way SIMD loop), spread over the cores."""
    return _ceil(2 * elements, hw.cores)


def tiled_kernel(hw, compute: float, moved: int, transfers: int, overlap=None) -> float:
    """Compute + the DMA not hidden + per-transfer set-up. ``moved``: all bytes the kernel
    copies; ``overlap``: (bytes, trips) of the copies at the pipelined loop when the kernel is
    double-buffered (None: it is not), of which all trips but one hide behind compute."""
    dma = moved / hw.dma_bytes_per_cycle
    if overlap is not None:
        pipelined, trips = overlap
        trips = max(1, trips)
        dma -= min(pipelined / hw.dma_bytes_per_cycle * (trips - 1) / trips, compute)
    return compute + dma + transfers * hw.dma_setup_cycles


def streamed_kernel(hw, compute: float, moved: int, transfers: int) -> float:
    """Compute + all DMA + set-up, nothing hidden: how the element-wise, pooling and dense
    kernels are costed (their copies are as long as their compute)."""
    return compute + moved / hw.dma_bytes_per_cycle + transfers * hw.dma_setup_cycles
