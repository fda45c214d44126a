"""The modelled GAP8 cycle count of a tiled kernel: the one home of the cycle model.

Compute: the per-kernel latency models of GAP8's int8 kernels on the 8-core cluster published
with PLiNIO (eml-eda/plinio ``plinio/cost/gap8_latency.py``, Jahier Pagliari et al.; fitted on
measurements), evaluated per tile so that small tiles pay their loop overheads. Add and pooling
have no published model: ``eltwise`` is our assumption, labelled as such. ONE formula per kernel
kind (``conv`` KxK, ``pointwise``, ``depthwise``, ``linear``, ``eltwise``), whether the kernel
runs standalone or as a half of a fused pair: a fused kernel's PW / DW half costs what the same
PW / DW costs standalone on the same tile and layouts, so fusion gains only what it changes
(DMA traffic and transfers, tile counts, the core split its tiles allow). Their constants are
data, ``ComputeCosts`` (``Gap8Target.compute``), each cited, to be fitted to measured cycles.

Layouts. ``conv`` and ``depthwise`` take the layouts of the kernel's L1 input and output buffers
("CHW" or "HWC"). None means the layouts PLiNIO's models stand for, and gives PLiNIO's figure
unchanged: PULP-NN's kernels, the int8 GAP8 kernels PLiNIO and MATCH model (MATCH's
``match/cost_model/examples/pulp_cluster.py`` carries the same formulas and names
``pulp_nn_depthwise_generic``): conv / pointwise HWC -> HWC, depthwise CHW -> HWC
(pulp-platform/pulp-nn README: its depthwise reads CHW, writes HWC; everything else is HWC).
PLiNIO's file does not say which kernels it was fitted on: that reading is ours. Other layouts
add a term derived from the paper's kernels (eml-eda/depthwise-separable-fusion, Daghero et al.,
"Accelerating Depthwise Separable Convolutions on Ultra-Low-Power Devices"): the extra loads and
stores each variant's inner loops execute over the reference variant's, one cycle each (RI5CY
issues one load/store per cycle; load-use stalls and L1 bank conflicts are not counted, so the
terms are lower bounds). ``linear`` and ``eltwise`` are layout-neutral: a dense layer reads a
flat vector, an element-wise kernel visits both operands in the same order whatever it is.

Data movement: ``dma_cycles`` per transfer kind (contiguous, 2-D, the HWC->CHW transposing copy
DORY uses for depthwise inputs, and ``l3``: weights streamed L3 -> L2; constants in
``Gap8Target``, cited or marked OUR ASSUMPTION there). ``kernel_cycles`` composes compute,
transfers, per-tile and per-layer overheads and the DMA mode (double-buffered: all trips but one
of the pipelined loop's copies hide behind compute; blocking: nothing hides).

These are model figures, not measurements; the tiler ranks tiles by them and the report shows
them as ``plan.cycles``. The IR measurement next door (``cost/ir.py``) is the truth for bytes
and transfers, never for cycles. ``python -m tvm_gap8.cost.cycles`` prints the comparison of the
modelled MAC/cycle with published per-kernel figures (docs/cycle_model.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..ir.vocab import CHW, HWC, LAYOUTS

DMA_KINDS = ("contiguous", "2d", "transposing", "l3")

#: Cores PLiNIO's fits (and the paper's kernels, NUM_CORES) run on: the models below are
#: cluster-level figures for 8 cores.
MODEL_CORES = 8

#: Reference layouts (in, out) = what the PLiNIO figure stands for (see the module docstring).
CONV_REF_LAYOUTS = (HWC, HWC)
DW_REF_LAYOUTS = (CHW, HWC)


@dataclass(frozen=True)
class ComputeCosts:
    """The constants of the per-kind compute formulas, as data: one record, read by every
    kernel family (fused or not) through ``Gap8Target.compute``, so that a later step can fit
    them to cycles measured on GVSOC (``dataclasses.replace``) without touching a formula.
    Today's values are the published / derived ones, each cited below; none is fitted here.

    One formula per kernel kind, whatever kernel it runs in: ``conv`` (a standard KxK conv),
    ``pointwise`` (a 1x1 conv: standalone, the PW half of dw_pw and of pw_dw), ``depthwise``
    (standalone, the DW half of dw_pw and of pw_dw), ``linear``, ``eltwise``. Per-tile and
    per-layer overheads and the DMA figures are ``Gap8Target`` fields (``tile_overhead_cycles``,
    ``layer_overhead_cycles``, ``dma_*``, ``l3_*``), also data."""

    # --- conv / pointwise: PLiNIO's GAP8 model (eml-eda/plinio plinio/cost/gap8_latency.py),
    # per call of the matmul on a pixel pair (2 output pixels):
    #   im2col: k*k*C_in*2 -> 1 cycle per byte copied per pixel
    conv_im2col_cycles_per_byte: int = 1
    #   matmul: ceil(C_out/4) * (5 + ceil(k*k*C_in/4) * 14 + 10): per 4 output channels a
    #   set-up of 5, 14 per 4 input channels ("(6 + 8)": 6 lw + 8 sdotp for 4 C_in x 4 C_out x
    #   2 pixels) and 10 for the requantization and stores of the 4 x 2 outputs
    conv_matmul_setup_cycles: int = 5
    conv_matmul_cycles_per_4_in: int = 14
    conv_requant_cycles_per_4_out: int = 10
    # a pointwise's odd pixel (the HoWo split's leftover, ``howo_split``): MATCH's single-pixel
    # cost (eml-eda/match match/cost_model/examples/pulp_cluster.py ``leftover_width_matmul``
    # = 5 + ceil(C_in/4)*(2+1) + 10 per output channel)
    pw_single_setup_cycles: int = 5
    pw_single_cycles_per_4_in: int = 3
    pw_single_requant_cycles: int = 10
    # a CHW input's im2col gather, derived from the paper's pulp_nn_pointwise_HoWo_parallel_
    # CHW_CHW.c, our reading (see ``PW_GATHER_CYCLES_PER_ELEMENT``): 2 lbu + 2 sb per input
    # channel per pixel pair; an HWC input is handed to the matmul in place (0)
    pw_gather_cycles_chw: int = 4
    pw_gather_cycles_hwc: int = 0
    # --- depthwise: PLiNIO's model, 4 * ceil(C/4) * OH * OW * K * K: one cycle per MAC over the
    # channels rounded up to the 4-way SIMD width
    dw_cycles_per_mac: int = 1
    dw_channel_granule: int = 4
    # the im2col strip fill per 4-byte word (see ``DW_STRIP_WORD_CYCLES``): CHW input 1 lw +
    # 1 sw, HWC input 4 lbu + 4 sb (paper's pulp_nn_depthwise_generic_*, our reading)
    dw_strip_word_cycles_chw: int = 2
    dw_strip_word_cycles_hwc: int = 8
    # --- linear: PLiNIO's model, ceil(C_in/2) * ceil(C_out/4) -> 1 cycle per 2 inputs x 4 outputs
    linear_cycles_per_2x4: int = 1
    # --- add / pooling / tables: OUR ASSUMPTION (no published model): 2 cycles per element per
    # core (load-load/accumulate-store in a 4-way SIMD loop), spread over the cores
    eltwise_cycles_per_element: int = 2
    # --- float kernels: GAP8's cluster has no FPU, every float multiply and add is a libgcc
    # soft-float call. MEASURED (``python benchmarks/soft_float_rv32.py``: QEMU rv32imc, the
    # network's -O2 build, 4096 random operand pairs, instructions taken as cycles: RI5CY
    # issues one per cycle, stalls left out): one MAC (__mulsf3 + __addsf3) 174.7 instructions
    # over an int32 MAC, one add (__addsf3) 65.3 over an int32 add. Per core; the cores share
    # the work. A float kernel's compute is its MACs at the first figure plus one add per
    # output element (bias / activation / element-wise op) at the second (``soft_float``).
    soft_float_mac_cycles: float = 174.7
    soft_float_add_cycles: float = 65.3

    def pw_gather(self, in_layout: str) -> int:
        return self.pw_gather_cycles_chw if in_layout == CHW else self.pw_gather_cycles_hwc

    def dw_strip_word(self, in_layout: str) -> int:
        return (self.dw_strip_word_cycles_chw if in_layout == CHW
                else self.dw_strip_word_cycles_hwc)

    def replace(self, **changes) -> "ComputeCosts":
        return dataclasses.replace(self, **changes)


#: Today's constants (the published / derived figures above).
DEFAULT_COSTS = ComputeCosts()

# --- layout terms, derived from the paper's kernels (our reading) --------------------------
# Depthwise, derived from src/convolution/pulp_nn_depthwise_generic_{CHW_CHW,CHW_HWC,HWC_HWC}.c,
# our reading. Each core takes ceil(C/8) channels; per channel and output column it fills a
# K-wide strip of every input row into its im2col buffer, ceil(K/4) words per row:
#   CHW input: ``*(v4u*)pBuffer = *(v4u*)(base_ptr + idx)``       -> 1 lw + 1 sw    = 2 / word
#   HWC input: 4 x ``*pBuffer = *(base_ptr + idx); idx += ch_im_in`` with an
#              ``asm volatile("":::"memory")`` between them        -> 4 lbu + 4 sb  = 8 / word
# so HWC input costs (8 - 2) = 6 more cycles per strip word. The MAC loop (leftCnt byte MACs,
# colCnt ``SumDotp``), the quantisation and the single byte store per output are the same code in
# all three files; CHW vs HWC output differs only in pOut's stride (diff CHW_CHW.c CHW_HWC.c):
# no term for the output layout. (The values: ``ComputeCosts.dw_strip_word_cycles_*``.)
DW_STRIP_WORD_CYCLES = {CHW: DEFAULT_COSTS.dw_strip_word_cycles_chw,
                        HWC: DEFAULT_COSTS.dw_strip_word_cycles_hwc}
# Pointwise, derived from src/convolution/pulp_nn_pointwise_HoWo_parallel_CHW_CHW.c, our
# reading: for every pixel pair the CHW kernel gathers both pixels' C_in bytes at stride H*W into
# an im2col buffer, ``pIm2Col[cin] = *pB; pIm2Col[cin + ch_in] = *(pB + 1); pB += H*W``
# -> 2 lbu + 2 sb = 4 cycles per input channel per pixel pair; the HWC kernels
# (..._HoWo_parallel_HWC_{HWC,CHW}.c) hand the input to ``pulp_nn_matmul_ANY_CHW`` in place.
# Same matmul afterwards (6 lw + 8 sdotp per 4 input channels x 4 output channels x 2 pixels,
# PLiNIO's "(6 + 8)"), and the output is stored one byte per output with a pointer stride
# either way (HWC_CHW vs HWC_HWC: same stores; the HWC_HWC file even calls matmul_ANY_CHW): no
# term for the output layout. Against the matmul of a pixel pair, ~ (C_out/4)*(C_in/4)*14 =
# 0.875*C_in*C_out cycles, the gather's 4*C_in is 4 / (0.875*C_out) ~= 4.6 / C_out.
# (The values: ``ComputeCosts.pw_gather_cycles_*``.)
PW_GATHER_CYCLES_PER_ELEMENT = {CHW: DEFAULT_COSTS.pw_gather_cycles_chw,
                                HWC: DEFAULT_COSTS.pw_gather_cycles_hwc}
# A standard K x K conv on CHW input: the paper's code has none. OUR EXTENSION of the pointwise
# gather: the im2col column of a pixel pair is 2*K*K*C_in bytes gathered one byte at a time
# (1 load + 1 store each) -> 4 cycles per (c, ky, kx) per pixel pair, on top of PLiNIO's HWC
# im2col term (which stands for PULP-NN's contiguous copy and is kept).


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _layouts(in_layout, out_layout, ref):
    in_layout = ref[0] if in_layout is None else in_layout
    out_layout = ref[1] if out_layout is None else out_layout
    for lay in (in_layout, out_layout):
        if lay not in LAYOUTS:
            raise ValueError(f"layout {lay!r}: expected one of {', '.join(LAYOUTS)}")
    return in_layout, out_layout


def _pair_cycles(reduce: int, cout: int, in_layout: str, costs: ComputeCosts) -> int:
    """One matmul call on a pixel pair reducing over ``reduce`` = k*k*C_in_per_group inputs
    (PLiNIO's per-iteration figure, plus the CHW gather)."""
    im2col = costs.conv_im2col_cycles_per_byte * reduce * 2
    gather = costs.pw_gather(in_layout) * reduce
    matmul = _ceil(cout, 4) * (costs.conv_matmul_setup_cycles
                               + _ceil(reduce, 4) * costs.conv_matmul_cycles_per_4_in
                               + costs.conv_requant_cycles_per_4_out)
    return im2col + gather + matmul


def conv(cin: int, cout: int, oh: int, ow: int, k: int, groups: int = 1,
         in_layout: str | None = None, out_layout: str | None = None, stride: int = 1,
         costs: ComputeCosts | None = None) -> int:
    """An int8 conv on the cluster, dispatched to the one formula of its kind: a depthwise conv
    (groups == cin == cout) to ``depthwise``, a pointwise one (1x1, ungrouped) to ``pointwise``,
    both with the layouts given; a standard KxK conv is PLiNIO's GAP8 model, for HWC -> HWC (the
    default), ceil(oh/2) * ceil(ow/8) pixel pairs per core; a CHW input adds the im2col gather
    (OUR EXTENSION of the paper's CHW pointwise gather); the output layout costs nothing extra.
    ``stride``: the depthwise's (its HWC-input term reads the input rows)."""
    costs = DEFAULT_COSTS if costs is None else costs
    if groups > 1 and groups == cin == cout:
        return depthwise(cout, oh, ow, k, in_layout, out_layout, stride, costs)
    if k == 1 and groups == 1:
        return pointwise(cin, cout, oh, ow, in_layout, out_layout, costs=costs)
    in_layout, _ = _layouts(in_layout, out_layout, CONV_REF_LAYOUTS)
    cin_g = cin // groups
    # pixel pairs per core: 2 output pixels per matmul call, 8 cores
    iterations = _ceil(oh, 2) * _ceil(ow, 8)
    return iterations * _pair_cycles(k * k * cin_g, cout, in_layout, costs)


def depthwise(channels: int, oh: int, ow: int, k: int, in_layout: str | None = None,
              out_layout: str | None = None, stride: int = 1,
              costs: ComputeCosts | None = None) -> int:
    """An int8 depthwise conv (same source), also for a tile of one channel; the one formula
    of the DW, standalone or the half of a fused kernel. PLiNIO's figure stands for CHW -> HWC
    (PULP-NN's depthwise, the default); an HWC input adds the strided byte fill of the paper's
    HWC kernel (``DW_STRIP_WORD_CYCLES``) on the busiest core: ceil(C/8) channels x ow output
    columns x ((oh-1)*stride + k) input rows x ceil(k/4) words."""
    costs = DEFAULT_COSTS if costs is None else costs
    in_layout, _ = _layouts(in_layout, out_layout, DW_REF_LAYOUTS)
    g = costs.dw_channel_granule
    base = costs.dw_cycles_per_mac * g * _ceil(channels, g) * oh * ow * k * k
    extra_per_word = costs.dw_strip_word(in_layout) - costs.dw_strip_word(DW_REF_LAYOUTS[0])
    if not extra_per_word:
        return base
    in_rows = (oh - 1) * stride + k
    return base + (_ceil(channels, MODEL_CORES) * ow * in_rows * _ceil(k, 4) * extra_per_word)


def linear(cin: int, cout: int, costs: ComputeCosts | None = None) -> int:
    """An int8 fully connected layer (same source). Layout-neutral: its input is a flat
    vector."""
    costs = DEFAULT_COSTS if costs is None else costs
    return costs.linear_cycles_per_2x4 * _ceil(cin, 2) * _ceil(cout, 4)


def eltwise(hw, elements: int) -> int:
    """Add / pooling: OUR ASSUMPTION (no published model): 2 cycles per element per core
    (``ComputeCosts.eltwise_cycles_per_element``), spread over the cores. Layout-neutral:
    both operands and the result are walked in the same order, whatever the layout."""
    costs = getattr(hw, "compute", None) or DEFAULT_COSTS
    return _ceil(costs.eltwise_cycles_per_element * elements, hw.cores)


def soft_float(costs: ComputeCosts, cores: int, macs: int, out_elements: int) -> float:
    """A float kernel's compute cycles on GAP8's FPU-less cluster: every MAC a soft-float
    multiply-accumulate, one soft-float add per output element, spread over the cores
    (``ComputeCosts.soft_float_*``, measured)."""
    return (macs * costs.soft_float_mac_cycles
            + out_elements * costs.soft_float_add_cycles) / max(1, cores)


# --- the core split of the paper's pointwise kernels over output rows ----------------------

def howo_split(rows: int, cols: int, cores: int = MODEL_CORES):
    """How ``pulp_nn_pointwise_HoWo_parallel_*`` splits ``rows`` x ``cols`` output pixels over
    the cores (derived from src/convolution/pulp_nn_pointwise_HoWo_parallel_*.c, our reading; the
    fused "rows" kernels in src/fused/*_rows_base.c call it on each batch of rows): when rows is
    not a multiple of the core count (and cols > 1) the cores pair up, cores/2 groups of rows,
    each row halved between the two cores of a pair; else one group of rows per core. Each core
    walks its rows' pixels two at a time, an odd pixel alone.

    Returns (pixel pairs, single pixels) on the busiest core, and the number of busy cores."""
    if rows % cores and cols > 1:
        groups, widths = cores // 2, (cols // 2, cols // 2 + cols % 2)
    else:
        groups, widths = cores, (cols,)
    chunk = _ceil(rows, groups)
    busy_groups = _ceil(rows, chunk)
    width = max(widths)
    busy = busy_groups * sum(1 for w in widths if w)
    return chunk * (width // 2), chunk * (width % 2), busy


def pointwise(cin: int, cout: int, rows: int, cols: int, in_layout: str | None = None,
              out_layout: str | None = None, cores: int = MODEL_CORES,
              costs: ComputeCosts | None = None) -> int:
    """An int8 pointwise conv on a tile of ``rows`` x ``cols`` output pixels: THE pointwise
    formula, the same for a standalone PW, the PW half of dw_pw and the PW half of pw_dw (on
    their tiles). The paper's pointwise kernels (``pulp_nn_pointwise_HoWo_parallel_*``, which
    its fused "rows" kernels call per batch of rows) split the tile's pixels over the cores by
    ``howo_split``: PLiNIO's per-pixel-pair cost (``_pair_cycles`` with k = 1) times the busiest
    core's pixel pairs, plus its odd pixels at MATCH's single-pixel cost (``ComputeCosts``).
    When rows and cols are multiples of 8 this is PLiNIO's ceil(oh/2) * ceil(ow/8) pairs
    exactly; otherwise it counts the cores the split really keeps busy (1 row: 2 of 8, 2 rows:
    4, 3 rows: 6). A CHW input adds the gather (``PW_GATHER_CYCLES_PER_ELEMENT``); the output
    layout costs nothing extra."""
    costs = DEFAULT_COSTS if costs is None else costs
    in_layout, _ = _layouts(in_layout, out_layout, CONV_REF_LAYOUTS)
    pairs, singles, _ = howo_split(rows, cols, cores)
    per_pair = _pair_cycles(cin, cout, in_layout, costs)
    per_single = (costs.conv_im2col_cycles_per_byte * cin + costs.pw_gather(in_layout) * cin // 2
                  + cout * (costs.pw_single_setup_cycles
                            + _ceil(cin, 4) * costs.pw_single_cycles_per_4_in
                            + costs.pw_single_requant_cycles))
    return pairs * per_pair + singles * per_single


def pointwise_rows(cin: int, cout: int, rows: int, cols: int, in_layout: str = HWC,
                   out_layout: str = HWC, cores: int = MODEL_CORES) -> int:
    """The old name of ``pointwise`` (a fused row batch): the same formula."""
    return pointwise(cin, cout, rows, cols, in_layout, out_layout, cores)


# --- data movement --------------------------------------------------------------------------

def dma_cycles(hw, nbytes: int, kind: str, rows: int = 1, channels: int = 1) -> float:
    """One transfer: set-up (``_setup``) + the engine's time. L2<->L1 cluster DMA:
    ``contiguous``: nbytes / ``dma_bytes_per_cycle``; ``2d``: the same + one cycle per row
    (``dma_cycles_per_row``); ``transposing`` (HWC in L2 -> CHW in L1, one 2-D copy of 1-byte
    rows per channel): nbytes / ``dma_transpose_bytes_per_cycle`` +
    ``dma_transpose_cycles_per_channel`` per channel. ``l3``: an L3 (HyperRAM) -> L2 copy of
    weights streamed from L3, nbytes / ``l3_bytes_per_cycle``, set-up ``l3_setup_cycles``. All
    constants in ``Gap8Target``, cited (or marked OUR ASSUMPTION) there."""
    return _setup(hw, kind) + _dma_engine(hw, nbytes, kind, rows, channels)


def _setup(hw, kind) -> float:
    return hw.l3_setup_cycles if kind == "l3" else hw.dma_setup_cycles


def _dma_engine(hw, nbytes, kind, rows, channels) -> float:
    if kind == "contiguous":
        return nbytes / hw.dma_bytes_per_cycle
    if kind == "2d":
        return nbytes / hw.dma_bytes_per_cycle + rows * hw.dma_cycles_per_row
    if kind == "transposing":
        return (nbytes / hw.dma_transpose_bytes_per_cycle
                + channels * hw.dma_transpose_cycles_per_channel)
    if kind == "l3":
        return nbytes / hw.l3_bytes_per_cycle
    raise ValueError(f"DMA kind {kind!r}: expected one of {', '.join(DMA_KINDS)}")


def _hidden(hw, compute: float, pipelined: float, trips: int) -> float:
    """DMA engine cycles hidden behind compute: all trips but one of the pipelined loop's copies
    (double-buffered), never more than the compute; nothing under blocking DMA."""
    if hw.dma_mode == "blocking":
        return 0.0
    trips = max(1, trips)
    return min(pipelined * (trips - 1) / trips, compute)


def kernel_cycles(hw, compute: float, transfers, tiles: int, overlap=None) -> float:
    """A layer's modelled cycles: compute + DMA not hidden + per-tile and per-layer overheads.

    ``transfers``: records (nbytes, kind, rows, channels, count): ``count`` transfers of
    ``nbytes`` each (``dma_cycles``; kind ``l3`` for the L3->L2 copies of weights streamed from
    L3). ``tiles``: trips of the tile loop, each paying ``hw.tile_overhead_cycles``; the layer
    pays ``hw.layer_overhead_cycles`` once (fork + barrier). ``overlap``: which copies the
    double-buffered loop pipelines, as (records, trips) in the format of ``transfers`` (e.g.
    the activations but not the weights loaded once); None: all of ``transfers`` over
    ``tiles`` trips. Under ``hw.dma_mode == "double"`` all trips but one of those copies'
    engine time hide behind compute (set-ups are core time and never hide); under "blocking"
    nothing hides."""
    setup = engine = 0.0
    for nbytes, kind, rows, channels, count in transfers:
        setup += count * _setup(hw, kind)
        engine += count * _dma_engine(hw, nbytes, kind, rows, channels)
    if overlap is None:
        pipelined_records, trips = transfers, tiles
    else:
        pipelined_records, trips = overlap
    pipelined = sum(count * _dma_engine(hw, nbytes, kind, rows, channels)
                    for nbytes, kind, rows, channels, count in pipelined_records)
    hidden = _hidden(hw, compute, pipelined, trips)
    return (compute + engine - hidden + setup + max(1, tiles) * hw.tile_overhead_cycles
            + hw.layer_overhead_cycles)


# --- comparison with published per-kernel figures ------------------------------------------

def _match_dw(channels, oh, ow, k, stride=1):
    """MATCH's own depthwise model (eml-eda/match match/cost_model/examples/pulp_cluster.py,
    ``__is_dw_node__``), for the cross-check only: ceil(C/8) * OX iterations of
    IY*KY + OY * (scalar_matmul + vec_matmul + COST_QUANT)."""
    scalar = 5 + (k * k % 4) * (2 * 2 + 1 * 2) + 10
    vec = 5 + _ceil(k * k, 4) * (2 * 3 + 1) + 10
    iy = (oh - 1) * stride + k
    return _ceil(channels, 8) * ow * (iy * k + oh * (scalar + vec + 9))


def comparison_rows():
    """(label, MACs, modelled compute cycles, modelled MAC/cycle, published MAC/cycle (lo, hi) or
    None, source) for representative MobileNet layers and the layers gap_sdk#150 reports, at 8
    cores. Published figures: PULP-NN's peak conv throughput, 15.5 MAC/cycle (PULP-NN paper
    abstract); GAP SDK AutoTiler per-layer figures of GreenWaves-Technologies/gap_sdk issue #150
    (whole layers, DMA included, a network using L3: weak evidence) converted from ops/cycle to
    MAC/cycle (its DW ops count K*K+1 per output: 374400 = 12*52*60*10 for S4; its PW ops count
    C_in per output: 998400 = 16*20*52*60 for S8)."""
    dw = dict(channels=32, oh=48, ow=48, k=3)
    dw_macs = 32 * 48 * 48 * 9
    pw_macs = 32 * 64 * 48 * 48
    st_macs = 3 * 32 * 48 * 48 * 9
    sdk_dw = (2.26 * 9 / 10, 3.06 * 9 / 10)  # #150: 3x3 DW layers S4, S10
    peak = (None, 15.5)
    rows = [
        ("DW 3x3 32ch 48x48 CHW->HWC (PLiNIO ref)", dw_macs, depthwise(**dw), sdk_dw,
         "gap_sdk#150 DW range"),
        ("DW 3x3 32ch 48x48 CHW->CHW", dw_macs,
         depthwise(**dw, in_layout=CHW, out_layout=CHW), sdk_dw, "gap_sdk#150 DW range"),
        ("DW 3x3 32ch 48x48 HWC->HWC", dw_macs,
         depthwise(**dw, in_layout=HWC, out_layout=HWC), sdk_dw, "gap_sdk#150 DW range"),
        ("DW 3x3 32ch 48x48, MATCH's own DW model", dw_macs, _match_dw(**dw), sdk_dw,
         "gap_sdk#150 DW range"),
        ("PW 32->64 48x48 HWC->HWC (PLiNIO ref)", pw_macs, conv(32, 64, 48, 48, 1), peak,
         "PULP-NN peak"),
        ("PW 32->64 48x48 HWC->CHW", pw_macs,
         conv(32, 64, 48, 48, 1, in_layout=HWC, out_layout=CHW), peak, "PULP-NN peak"),
        ("PW 32->64 48x48 CHW->CHW", pw_macs,
         conv(32, 64, 48, 48, 1, in_layout=CHW, out_layout=CHW), peak, "PULP-NN peak"),
        ("PW 32->64 1 row x 48 (HoWo split)", 32 * 64 * 48,
         pointwise(32, 64, 1, 48), peak, "PULP-NN peak"),
        ("PW 32->64 4 rows x 48 (HoWo split)", 32 * 64 * 4 * 48,
         pointwise(32, 64, 4, 48), peak, "PULP-NN peak"),
        ("conv 3x3 3->32 48x48 HWC->HWC (PLiNIO ref)", st_macs, conv(3, 32, 48, 48, 3), peak,
         "PULP-NN peak"),
        ("conv 3x3 3->32 48x48 CHW->HWC", st_macs, conv(3, 32, 48, 48, 3, in_layout=CHW),
         peak, "PULP-NN peak"),
        # the layer shapes gap_sdk#150 reports (52x60 maps)
        ("#150 S4: DW 3x3 12ch 52x60", 12 * 52 * 60 * 9, depthwise(12, 52, 60, 3),
         (2.26 * 9 / 10,) * 2, "gap_sdk#150 S4"),
        ("#150 S10: DW 3x3 36ch 52x60", 36 * 52 * 60 * 9, depthwise(36, 52, 60, 3),
         (3.06 * 9 / 10,) * 2, "gap_sdk#150 S10"),
        ("#150 S5: PW 12->8 52x60", 12 * 8 * 52 * 60, conv(12, 8, 52, 60, 1), (3.06, 3.06),
         "gap_sdk#150 S5"),
        ("#150 S9: PW 16->36 52x60", 16 * 36 * 52 * 60, conv(16, 36, 52, 60, 1), (5.11, 5.11),
         "gap_sdk#150 S9"),
        ("#150 S11: PW 36->16 52x60", 36 * 16 * 52 * 60, conv(36, 16, 52, 60, 1), (5.47, 5.47),
         "gap_sdk#150 S11"),
    ]
    return [(label, macs, cycles, macs / cycles, pub, src)
            for label, macs, cycles, pub, src in rows]


def _deviation(mpc, pub):
    lo, hi = pub
    if lo is None:
        return f"{mpc / hi:.2f}x peak"
    if lo == hi:
        return f"{mpc / hi:.2f}x"
    return f"{mpc / hi:.2f}-{mpc / lo:.2f}x"


def comparison_table() -> str:
    """The comparison as a Markdown table (docs/cycle_model.md); compute cycles only."""
    lines = ["| kernel (8 cores, compute only) | MACs | model cycles | model MAC/cyc "
             "| published MAC/cyc | model / published | source |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for label, macs, cycles, mpc, pub, src in comparison_rows():
        lo, hi = pub
        shown = f"<= {hi:.1f}" if lo is None else (f"{hi:.2f}" if lo == hi
                                                   else f"{lo:.2f}-{hi:.2f}")
        lines.append(f"| {label} | {macs} | {cycles} | {mpc:.2f} | {shown} "
                     f"| {_deviation(mpc, pub)} | {src} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(comparison_table())
