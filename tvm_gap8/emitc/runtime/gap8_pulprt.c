/* pulp-runtime back end: the network on GVSOC's pulp-open cluster (8 RI5CY cores, MCHAN DMA),
 * built with -DGAP8_PULPRT against pulp-runtime (Makefile.pulprt). How pulp-open differs from
 * GAP8: L2 is larger (GAP8's 512 kB is enforced by the link script gap8_pulprt.ld), there is no
 * HyperRAM (weights the plan keeps in L3 sit in an L2 region past 512 kB: a stand-in with L2
 * timing), a cluster-controller core sits beside the 8 workers, clocks are pulp-open's.
 *
 * Cluster model: core 0 runs the network; cores 1..7 wait in worker_loop for a function
 * published by gap8_cluster_fork (a shared pointer between two barriers: pulp-runtime has no
 * team-fork call). DMA is issued by the master core; every copy returns when its data has
 * arrived (the API's contract, gap8_dma.h). The output and, with GAP8_INSTRUMENT, the per-layer
 * measurements are printed on stdout for the host to parse (lines "gap8-out" for every output,
 * "gap8-layer", "gap8-core"). */
#ifdef GAP8_PULPRT
#include <stdio.h>
#include <string.h>
#include "pulp.h"
#include "network.h"
#include "gap8_dma.h"
#include "gap8_cluster.h"

#define TIMER timer_base_cl(0, 0, 0)
static inline uint32_t gap8_now(void) { return timer_count_get(TIMER); } /* cluster cycles */

/* MCHAN fields are 16 bits: one command moves at most this many bytes, strides below 64 KiB */
#define GAP8_DMA_MAX_BYTES 32768
#define GAP8_DMA_MAX_STRIDE 65535
/* commands in flight before the oldest is waited for (MCHAN has a small counter pool) */
#define GAP8_DMA_WINDOW 4

/* every input (output) back to back, each at a multiple of 8 bytes (gap8_input.c) */
extern const int8_t gap8_input[];
static int8_t gap8_output[GAP8_OUT_TOTAL_BYTES] __attribute__((aligned(8)));

/* -- measurement ------------------------------------------------------------------------------ */
#ifdef GAP8_INSTRUMENT
gap8_counters_t gap8_counters[GAP8_NB_LAYERS + 1];
gap8_counters_t *gap8_current = &gap8_counters[GAP8_NB_LAYERS];
uint32_t gap8_copy_moved;
static int32_t current_layer = GAP8_NB_LAYERS;
/* per layer and core: active cycles and instructions (RI5CY PCCR: a core asleep in a barrier
 * or a DMA wait does not count), DMA wait cycles (master core, cluster timer) */
typedef struct { uint32_t cycles, instr; } gap8_core_count_t;
static gap8_core_count_t core_counts[GAP8_NB_LAYERS + 1][GAP8_NB_CORES];
static uint32_t dma_wait_cycles[GAP8_NB_LAYERS + 1];
/* the running layer's copy counts, kept in L1 (TCDM: one cycle a word; the per-layer arrays
 * are in L2, where every update cost the master core ~200 cycles a copy) and added to the
 * layer's L2 record when the layer ends (gap8_counters_layer) */
typedef struct { uint32_t bytes[GAP8_NB_DIRS], transfers[GAP8_NB_DIRS], tiles, dma_wait; } gap8_tally_t;
static gap8_tally_t tally __attribute__((section(".bss_l1"), aligned(8)));

void gap8_counters_layer(int32_t layer) {
  gap8_counters_t *c = gap8_current;
  for (int32_t d = 0; d < GAP8_NB_DIRS; ++d) {
    c->bytes[d] += tally.bytes[d];
    c->transfers[d] += tally.transfers[d];
  }
  c->tiles += tally.tiles;
  dma_wait_cycles[current_layer] += tally.dma_wait;
  memset(&tally, 0, sizeof(tally));
  current_layer = layer < 0 ? GAP8_NB_LAYERS : layer;
  gap8_current = &gap8_counters[current_layer];
}

/* the wall clock of a layer: the cluster timer, in the counters' instret field */
uint64_t gap8_instret(void) { return gap8_now(); }

#ifdef GAP8_STAGE_TIMES
/* per layer and stage: the master core's cluster-timer cycles from the previous stage end */
#define GAP8_MAX_STAGES 64
static uint32_t stage_cycles[GAP8_NB_LAYERS + 1][GAP8_MAX_STAGES];
static uint32_t stage_t;

void gap8_stage_end(int32_t stage) {
  if (hal_core_id() != 0) return;
  uint32_t t = gap8_now();
  if (stage > 0 && stage < GAP8_MAX_STAGES) stage_cycles[current_layer][stage] += t - stage_t;
  stage_t = t;
}
#endif

static void count(int32_t dir, uint32_t bytes) {
  if (dir < 0 || bytes == 0) return;
  tally.bytes[dir] += bytes; /* core 0's: it counts the team's copies too */
  tally.transfers[dir] += 1;
  if (dir == GAP8_DIR_L1_TO_L2) tally.tiles += 1;
}

static void core_perf_start(void) {
  cpu_perf_conf_events(CSR_PCER_ALL_EVENTS_MASK);
  cpu_perf_setall(0);
  cpu_perf_conf(CSR_PCMR_ACTIVE | CSR_PCMR_SATURATE);
}

static void core_perf_stop(void) {
  gap8_core_count_t *c = &core_counts[current_layer][hal_core_id()];
  c->cycles += cpu_perf_get(CSR_PCER_CYCLES);
  c->instr += cpu_perf_get(CSR_PCER_INSTR);
}
#else
#define count(dir, bytes) ((void)0)
#define core_perf_start() ((void)0)
#define core_perf_stop() ((void)0)
#endif

/* -- DMA -------------------------------------------------------------------------------------- */
/* One MCHAN transfer counter per copy call: every command of the copy is pushed on it (the
 * counter stays active until the next allocation) and the copy waits once for all of them. */
static uint32_t copy_counter;
/* between gap8_dma_group_begin and _end one counter takes every copy's commands, waited for
 * once at the end: the master core issues a group's copies back to back */
static int32_t group_open;

static void counter_wait(void) {
#ifdef GAP8_INSTRUMENT
  uint32_t t0 = gap8_now();
#endif
  plp_dma_wait(copy_counter);
#ifdef GAP8_INSTRUMENT
  tally.dma_wait += gap8_now() - t0;
#endif
}

static void dma_begin(void) {
  if (!group_open) copy_counter = (uint32_t)plp_dma_counter_alloc();
}

static void dma_end(void) {
  if (!group_open) counter_wait();
}

void gap8_dma_group_begin(void) {
  copy_counter = (uint32_t)plp_dma_counter_alloc();
  group_open = 1;
}

void gap8_dma_group_end(void) {
  group_open = 0;
  counter_wait();
}

/* every core has its own MCHAN command queue at the cluster's demux address (pulp-open binds
 * each core's demux port to its own channel: gvsoc generators/pulp/chips/pulp_open/cluster.py);
 * the master's copies use the shared port, a team copy (gap8_dma_copy_3d_part) the cores' own */
#define DEMUX(off) (ARCHI_MCHAN_DEMUX_ADDR + (off))
static void push(int32_t demux, uint32_t word) {
  if (demux) pulp_write32(DEMUX(MCHAN_CMD_OFFSET), word);
  else pulp_write32(ARCHI_MCHAN_EXT_ADDR + MCHAN_CMD_OFFSET, word);
}

/* one L1 <-> L2 command: `rows` lines of `row_bytes`, contiguous in L1, `ext_stride` apart in L2 */
static void dma_lines(int8_t *ext, int8_t *loc, int32_t rows, int32_t row_bytes,
                      int32_t ext_stride, int32_t ext2loc, int32_t demux) {
  uint32_t size = (uint32_t)(rows * row_bytes);
  int32_t two_d = !(rows == 1 || ext_stride == row_bytes);
  push(demux, plp_dma_getCmd(ext2loc, size, two_d ? PLP_DMA_2D : PLP_DMA_1D, PLP_DMA_TRIG_EVT,
                             PLP_DMA_NO_TRIG_IRQ, PLP_DMA_SHARED));
  push(demux, (uint32_t)loc);
  push(demux, (uint32_t)ext);
  if (two_d) {
    push(demux, (uint32_t)row_bytes);  /* length, then stride: plp_dma_cmd_push_2d */
    push(demux, (uint32_t)ext_stride);
  }
}

/* rows of row_bytes, each side with its stride; L1 is the local side */
static void copy_2d(int8_t *dst, const int8_t *src, int32_t rows, int32_t row_bytes,
                    int32_t dst_stride, int32_t src_stride, int32_t dir, int32_t demux) {
  int32_t ext2loc = dir == GAP8_DIR_L2_TO_L1;
  int8_t *loc = ext2loc ? dst : (int8_t *)src;
  int8_t *ext = ext2loc ? (int8_t *)src : dst;
  int32_t loc_stride = ext2loc ? dst_stride : src_stride;
  int32_t ext_stride = ext2loc ? src_stride : dst_stride;
  if (rows > 1 && loc_stride == row_bytes && ext_stride == row_bytes) { /* one contiguous run */
    row_bytes *= rows;
    rows = 1;
  }
  if (row_bytes > GAP8_DMA_MAX_BYTES || (rows > 1 && loc_stride != row_bytes) ||
      ext_stride > GAP8_DMA_MAX_STRIDE) {
    for (int32_t r = 0; r < rows; ++r) /* line by line, each split into commands */
      for (int32_t b = 0; b < row_bytes; b += GAP8_DMA_MAX_BYTES) {
        int32_t n = row_bytes - b < GAP8_DMA_MAX_BYTES ? row_bytes - b : GAP8_DMA_MAX_BYTES;
        dma_lines(ext + r * ext_stride + b, loc + r * loc_stride + b, 1, n, n, ext2loc, demux);
      }
    return;
  }
  int32_t per_cmd = GAP8_DMA_MAX_BYTES / row_bytes; /* whole lines per command */
  for (int32_t r = 0; r < rows; r += per_cmd) {
    int32_t n = rows - r < per_cmd ? rows - r : per_cmd;
    dma_lines(ext + r * ext_stride, loc + r * row_bytes, n, row_bytes, ext_stride, ext2loc,
              demux);
  }
}

/* the L3 stand-in is L2 memory: its tiles go to and from L1 in one DMA, counted on both edges
 * (L3 weights and the L3 activation arena both live there) */
/* the stand-in's bounds: symbols of the link script (tvm_gap8/emitc/gvsoc.py), addresses the
 * code holds as constants (weak: a build without the stand-in has no L3 copy) */
extern const int8_t __gap8_l3_start[] __attribute__((weak));
extern const int8_t __gap8_l3_stop[] __attribute__((weak));
static int32_t in_l3(const void *p) {
  return (const int8_t *)p >= __gap8_l3_start && (const int8_t *)p < __gap8_l3_stop;
}
/* the L3 edge a copy crosses besides its own (L3 -> L2 into L1, L2 -> L3 out of L1), or -1 */
static int32_t l3_edge(const void *dst, const void *src, int32_t dir) {
  if (dir == GAP8_DIR_L2_TO_L1 && in_l3(src)) return GAP8_DIR_L3_TO_L2;
  if (dir == GAP8_DIR_L1_TO_L2 && in_l3(dst)) return GAP8_DIR_L2_TO_L3;
  return -1;
}

int32_t gap8_dma_copy_3d(void *dst, const void *src, int32_t n2, int32_t n1, int32_t row_bytes,
                         int32_t dst_s2, int32_t src_s2, int32_t dst_s1, int32_t src_s1,
                         int32_t dir) {
  uint32_t bytes = (uint32_t)(n2 * n1 * row_bytes);
  if (dir < 0) { /* L2 -> L2 (an output that is another tensor's alias) */
    for (int32_t i = 0; i < n2; ++i)
      for (int32_t j = 0; j < n1; ++j)
        memcpy((int8_t *)dst + i * dst_s2 + j * dst_s1,
               (const int8_t *)src + i * src_s2 + j * src_s1, (size_t)row_bytes);
    return 0;
  }
  count(l3_edge(dst, src, dir), bytes);
  dma_begin();
  for (int32_t i = 0; i < n2; ++i)
    copy_2d((int8_t *)dst + i * dst_s2, (const int8_t *)src + i * src_s2, n1, row_bytes,
            dst_s1, src_s1, dir, 0);
  dma_end();
  count(dir, bytes);
  return 0;
}

/* one contiguous run, L1 <-> L2: one MCHAN command when it fits one (the master core issues
 * most copies one by one; the general path's loops and checks, ~200 instructions a copy, kept
 * the seven other cores waiting) */
int32_t gap8_dma_copy_1d(void *dst, const void *src, int32_t bytes, int32_t dir) {
  if (dir < 0 || bytes > GAP8_DMA_MAX_BYTES || l3_edge(dst, src, dir) >= 0)
    return gap8_dma_copy_3d(dst, src, 1, 1, bytes, 0, 0, 0, 0, dir);
  if (bytes == 0) return 0;
  int32_t ext2loc = dir == GAP8_DIR_L2_TO_L1;
  dma_begin();
  dma_lines((int8_t *)(ext2loc ? (void *)src : dst), (int8_t *)(ext2loc ? dst : (void *)src), 1,
            bytes, bytes, ext2loc, 0);
  dma_end();
  count(dir, (uint32_t)bytes);
  return 0;
}

/* element-strided (layout-transposing) copy: commands along the dimension that is contiguous
 * in L1, the other side strided (2-D lines of one element: DORY's HWC <-> CHW); when no
 * dimension is contiguous in L1, the master core copies */
int32_t gap8_dma_copy_strided(void *dst, const void *src, int32_t n2, int32_t n1, int32_t n0,
                              int32_t elem, int32_t dst_s2, int32_t src_s2, int32_t dst_s1,
                              int32_t src_s1, int32_t dst_s0, int32_t src_s0, int32_t dir) {
  int32_t n[3] = {n0, n1, n2};
  int32_t ds[3] = {dst_s0, dst_s1, dst_s2}, ss[3] = {src_s0, src_s1, src_s2};
  const int32_t *loc_s = dir == GAP8_DIR_L2_TO_L1 ? ds : ss;
  const int32_t *ext_s = dir == GAP8_DIR_L2_TO_L1 ? ss : ds;
  uint32_t bytes = (uint32_t)(n0 * n1 * n2 * elem);
  int32_t in = -1; /* the dimension contiguous in L1, with an L2 stride a command can take */
  for (int32_t d = 0; d < 3 && in < 0; ++d)
    if ((loc_s[d] == elem || n[d] == 1) && ext_s[d] <= GAP8_DMA_MAX_STRIDE &&
        n[d] * elem <= GAP8_DMA_MAX_BYTES && n[d] > 1)
      in = d;
  count(l3_edge(dst, src, dir), bytes);
  if (in < 0) { /* core copy */
    for (int32_t i = 0; i < n2; ++i)
      for (int32_t j = 0; j < n1; ++j)
        for (int32_t k = 0; k < n0; ++k)
          memcpy((int8_t *)dst + i * dst_s2 + j * dst_s1 + k * dst_s0,
                 (const int8_t *)src + i * src_s2 + j * src_s1 + k * src_s0, (size_t)elem);
  } else {
    int32_t a = (in + 1) % 3, b = (in + 2) % 3; /* the two outer dimensions */
    int32_t ext2loc = dir == GAP8_DIR_L2_TO_L1;
    int8_t *loc0 = ext2loc ? (int8_t *)dst : (int8_t *)src;
    int8_t *ext0 = ext2loc ? (int8_t *)src : (int8_t *)dst;
    dma_begin();
    for (int32_t i = 0; i < n[b]; ++i)
      for (int32_t j = 0; j < n[a]; ++j)
        dma_lines(ext0 + i * ext_s[b] + j * ext_s[a], loc0 + i * loc_s[b] + j * loc_s[a], n[in],
                  elem, ext_s[in], ext2loc, 0);
    dma_end();
  }
  count(dir, bytes);
  return 0;
}

/* a core's share of a team copy: its commands on its own channel and counter (allocated by
 * team_begin), waited for once by team_end */
static uint32_t team_begin(void) { return pulp_read32(DEMUX(MCHAN_CMD_OFFSET)); }

static void team_end(int32_t core, uint32_t counter) {
#ifdef GAP8_INSTRUMENT
  uint32_t t0 = core == 0 ? gap8_now() : 0;
#endif
  while (pulp_read32(DEMUX(MCHAN_STATUS_OFFSET)) & (1u << counter))
    eu_evt_maskWaitAndClr(1 << ARCHI_CL_EVT_DMA0);
  pulp_write32(DEMUX(MCHAN_STATUS_OFFSET), 1u << counter); /* free */
#ifdef GAP8_INSTRUMENT
  if (core == 0) tally.dma_wait += gap8_now() - t0;
#endif
}

/* [first, last) of core's share of n items split evenly over the cores (sizes differ by 1) */
static void share_of(int32_t core, int32_t n, int32_t *first, int32_t *last) {
  *first = n * core / GAP8_NB_CORES;
  *last = n * (core + 1) / GAP8_NB_CORES;
}

/* gap8_dma_copy_3d entered by every core of the team: each core pushes the commands of its
 * share on its own channel and counter and waits for them; core 0 counts the copy once. The
 * share: of the n2 blocks; of one block's n1 lines (at least one per core); of one contiguous
 * run, in word-aligned parts. From the L3 stand-in or L2 -> L2: core 0 alone. */
int32_t gap8_dma_copy_3d_part(int32_t core, void *dst, const void *src, int32_t n2, int32_t n1,
                              int32_t row_bytes, int32_t dst_s2, int32_t src_s2, int32_t dst_s1,
                              int32_t src_s1, int32_t dir) {
  int32_t first, last, run = n1 * row_bytes;
  int32_t contiguous = n1 == 1 || (dst_s1 == row_bytes && src_s1 == row_bytes);
  if (dir < 0 || l3_edge(dst, src, dir) >= 0 || (n2 < 2 && n1 < GAP8_NB_CORES && !contiguous))
    return core == 0 ? gap8_dma_copy_3d(dst, src, n2, n1, row_bytes, dst_s2, src_s2, dst_s1,
                                        src_s1, dir) : 0;
  int32_t blocks = n2 >= 2, lines = !blocks && !contiguous;
  if (blocks) { /* whole blocks, ceil(n2 / cores) per core */
    int32_t chunk = (n2 + GAP8_NB_CORES - 1) / GAP8_NB_CORES;
    first = core * chunk;
    last = first + chunk < n2 ? first + chunk : n2;
  } else {
    share_of(core, lines ? n1 : (run + 3) >> 2, &first, &last);
  }
  if (!blocks && !lines) { /* one run of words: bytes [first, last) */
    first <<= 2;
    last = (last << 2) < run ? last << 2 : run;
  }
  if (first < last) {
    uint32_t counter = team_begin();
    if (blocks)
      for (int32_t i = first; i < last; ++i)
        copy_2d((int8_t *)dst + i * dst_s2, (const int8_t *)src + i * src_s2, n1, row_bytes,
                dst_s1, src_s1, dir, 1);
    else if (lines)
      copy_2d((int8_t *)dst + first * dst_s1, (const int8_t *)src + first * src_s1,
              last - first, row_bytes, dst_s1, src_s1, dir, 1);
    else
      copy_2d((int8_t *)dst + first, (const int8_t *)src + first, 1, last - first,
              last - first, last - first, dir, 1);
    team_end(core, counter);
  }
  if (core == 0) count(dir, (uint32_t)(n2 * run));
  return 0;
}

int32_t gap8_dma_copy_1d_team(int32_t core, int32_t slot, int32_t slots, void *dst,
                              const void *src, int32_t bytes, int32_t dir) {
  if (dir < 0) return core == 0 ? gap8_dma_copy_1d(dst, src, bytes, dir) : 0; /* L2 -> L2 */
  int32_t first = 0, last = bytes;
  if (core == 0) { /* core 0 counts every copy of the run (the counts are core 0's) */
    count(l3_edge(dst, src, dir), (uint32_t)bytes);
    count(dir, (uint32_t)bytes);
  }
  if (slots == 1) { /* this core's words of the run */
    share_of(core, (bytes + 3) >> 2, &first, &last);
    first <<= 2;
    last = (last << 2) < bytes ? last << 2 : bytes;
  } else if (core != (slot + 1) % GAP8_NB_CORES) { /* core 0, which counts them, last */
    return 0;
  }
  if (first < last) {
    int32_t ext2loc = dir == GAP8_DIR_L2_TO_L1;
    int8_t *loc = (int8_t *)(ext2loc ? dst : (void *)src) + first;
    int8_t *ext = (int8_t *)(ext2loc ? (void *)src : dst) + first;
    uint32_t counter = team_begin();
    for (int32_t b = 0; b < last - first; b += GAP8_DMA_MAX_BYTES) {
      int32_t n = last - first - b < GAP8_DMA_MAX_BYTES ? last - first - b : GAP8_DMA_MAX_BYTES;
      dma_lines(ext + b, loc + b, 1, n, n, ext2loc, 1);
    }
    team_end(core, counter);
  }
  return 0;
}

int32_t gap8_dma_copy_transpose(void *dst, const void *src, int32_t a, int32_t b,
                                int32_t elem_bytes, int32_t dir) {
  return gap8_dma_copy_strided(dst, src, 1, a, b, elem_bytes, 0, 0, elem_bytes, b * elem_bytes,
                               a * elem_bytes, elem_bytes, dir);
}

void gap8_dma_wait(void) {} /* every copy has waited for its data */

/* DMA lines shorter than this go faster by core loads and stores, every core a share (an MCHAN
 * command costs ~100 cycles: shared/tools/gvsoc/README.md) */
#define GAP8_MIN_DMA_LINE 16

int32_t gap8_copy_strided_part(int32_t core, void *dst, const void *src, int32_t n2, int32_t n1,
                               int32_t n0, int32_t elem, int32_t dst_s2, int32_t src_s2,
                               int32_t dst_s1, int32_t src_s1, int32_t dst_s0, int32_t src_s0,
                               int32_t dir) {
  int32_t loc_s0 = dir == GAP8_DIR_L2_TO_L1 ? dst_s0 : src_s0;
  int32_t loc_s1 = dir == GAP8_DIR_L2_TO_L1 ? dst_s1 : src_s1;
  int32_t line = loc_s0 == elem ? n0 * elem : loc_s1 == elem ? n1 * elem : 0;
  if (line >= GAP8_MIN_DMA_LINE || l3_edge(dst, src, dir) >= 0)
    return core == 0 ? gap8_dma_copy_strided(dst, src, n2, n1, n0, elem, dst_s2, src_s2, dst_s1,
                                             src_s1, dst_s0, src_s0, dir) : 0;
  int32_t outer = n2 * n1, chunk = (outer + GAP8_NB_CORES - 1) / GAP8_NB_CORES;
  int32_t first = core * chunk, last = first + chunk < outer ? first + chunk : outer;
  for (int32_t ij = first; ij < last; ++ij) {
    int32_t i = ij / n1, j = ij % n1;
    int8_t *d = (int8_t *)dst + i * dst_s2 + j * dst_s1;
    const int8_t *s = (const int8_t *)src + i * src_s2 + j * src_s1;
    if (elem == 1)
      for (int32_t k = 0; k < n0; ++k) d[k * dst_s0] = s[k * src_s0];
    else
      for (int32_t k = 0; k < n0; ++k) memcpy(d + k * dst_s0, s + k * src_s0, (size_t)elem);
  }
  if (core == 0) count(dir, (uint32_t)(n2 * n1 * n0 * elem));
  return 0;
}

/* -- cluster ---------------------------------------------------------------------------------- */
static volatile gap8_team_fn team_fn;
static void *volatile team_arg;

static void run_here(gap8_team_fn fn, void *arg) {
  core_perf_start();
  fn(arg);
  core_perf_stop();
}

/* core 0: publish, release the workers, take part, join */
void gap8_cluster_fork(gap8_team_fn fn, void *arg) {
  team_fn = fn;
  team_arg = arg;
  synch_barrier();
  run_here(fn, arg);
  synch_barrier();
}

static void worker_loop(void) {
  for (;;) {
    synch_barrier();
    gap8_team_fn fn = team_fn;
    if (fn == 0) return;
    run_here(fn, team_arg);
    synch_barrier();
  }
}

static void print_results(int32_t status, uint32_t cycles) {
  printf("gap8-status %d cycles %u\n", (int)status, (unsigned)cycles);
  /* "gap8-out <output> <byte offset> <bytes in hex>", every output in order */
  uint32_t off = 0;
  for (int32_t o = 0; o < GAP8_NB_OUTPUTS; off += (gap8_out_bytes[o] + 7) / 8 * 8, ++o) {
    const int8_t *out = gap8_output + off;
    for (int32_t i = 0; i < (int32_t)gap8_out_bytes[o]; i += 32) {
      printf("gap8-out %d %d", (int)o, (int)i);
      for (int32_t j = i; j < i + 32 && j < (int32_t)gap8_out_bytes[o]; ++j)
        printf(" %02x", (unsigned)(uint8_t)out[j]);
      printf("\n");
    }
  }
#ifdef GAP8_INSTRUMENT
  for (int32_t l = 0; l < GAP8_NB_LAYERS; ++l) {
    gap8_counters_t *c = &gap8_counters[l];
    printf("gap8-layer %d %u %u %u %u %u %u %u %u %u %u %u %u\n", (int)l, (unsigned)c->bytes[0],
           (unsigned)c->bytes[1], (unsigned)c->bytes[2], (unsigned)c->transfers[0],
           (unsigned)c->transfers[1], (unsigned)c->transfers[2], (unsigned)c->macs,
           (unsigned)c->tiles, (unsigned)c->instret, (unsigned)dma_wait_cycles[l],
           (unsigned)c->bytes[3], (unsigned)c->transfers[3]);
    printf("gap8-core %d", (int)l);
    for (int32_t k = 0; k < GAP8_NB_CORES; ++k)
      printf(" %u %u", (unsigned)core_counts[l][k].cycles, (unsigned)core_counts[l][k].instr);
    printf("\n");
#ifdef GAP8_STAGE_TIMES
    for (int32_t k = 1; k < GAP8_MAX_STAGES; ++k)
      if (stage_cycles[l][k]) printf("gap8-stage %d %d %u\n", (int)l, (int)k, (unsigned)stage_cycles[l][k]);
#endif
  }
#endif
}

static int cluster_entry(void) {
  if (hal_core_id() != 0) {
    worker_loop();
    return 0;
  }
  timer_conf_set(TIMER, TIMER_CFG_LO_ENABLE_MASK | TIMER_CFG_LO_RESET_MASK);
  uint32_t t0 = gap8_now();
  const void *in[GAP8_NB_INPUTS];
  void *out[GAP8_NB_OUTPUTS];
  uint32_t off = 0;
  for (int32_t i = 0; i < GAP8_NB_INPUTS; off += (gap8_in_bytes[i] + 7) / 8 * 8, ++i)
    in[i] = gap8_input + off;
  off = 0;
  for (int32_t i = 0; i < GAP8_NB_OUTPUTS; off += (gap8_out_bytes[i] + 7) / 8 * 8, ++i)
    out[i] = gap8_output + off;
  int32_t status = gap8_network_run_arrays(in, out);
  uint32_t t1 = gap8_now();
  team_fn = 0; /* release the workers for good */
  synch_barrier();
  print_results(status, t1 - t0);
  return status;
}

int main(void) {
  if (hal_cluster_id() == 0 && !hal_is_fc()) return cluster_entry();
  return bench_cluster_forward(0);
}
#endif
