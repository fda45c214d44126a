/* GAP8 DMA API of the emitted network (sizes and strides in bytes).
 * Directions: the memory edge a copy crosses. Every call is one transfer; it returns when the
 * data has arrived (gap8_dma_wait is there for back ends that queue). With GAP8_INSTRUMENT the
 * back end counts bytes and transfers per direction for the current layer. */
#ifndef GAP8_DMA_H
#define GAP8_DMA_H
#include <stdint.h>

#define GAP8_DIR_L2_TO_L1 0
#define GAP8_DIR_L1_TO_L2 1
#define GAP8_DIR_L3_TO_L2 2
#define GAP8_DIR_L2_TO_L3 3 /* counted only: the back ends tell an L3 copy by its address */
#define GAP8_NB_DIRS 4

/* n2 blocks of n1 rows of row_bytes; strides between blocks (s2) and rows (s1) per side */
int32_t gap8_dma_copy_3d(void *dst, const void *src, int32_t n2, int32_t n1, int32_t row_bytes,
                         int32_t dst_s2, int32_t src_s2, int32_t dst_s1, int32_t src_s1,
                         int32_t dir);
/* one contiguous run: the commonest copy (a whole tile, weights, parameters). pulp-runtime
 * gives it a short path of its own (the master core issues every such copy); elsewhere it is
 * a 3-D copy (every back end implements gap8_dma_copy_3d) */
#ifdef GAP8_PULPRT
int32_t gap8_dma_copy_1d(void *dst, const void *src, int32_t bytes, int32_t dir);
#else
static inline int32_t gap8_dma_copy_1d(void *dst, const void *src, int32_t bytes,
                                       int32_t dir) {
  return gap8_dma_copy_3d(dst, src, 1, 1, bytes, 0, 0, 0, 0, dir);
}
#endif
/* the 2-D copy is a 3-D copy */
static inline int32_t gap8_dma_copy_2d(void *dst, const void *src, int32_t rows,
                                       int32_t row_bytes, int32_t dst_stride,
                                       int32_t src_stride, int32_t dir) {
  return gap8_dma_copy_3d(dst, src, 1, rows, row_bytes, 0, 0, dst_stride, src_stride, dir);
}
/* element-strided copy: n2 x n1 x n0 elements of elem bytes, byte strides per dim and side
 * (what a layout-transposing copy stage, HWC <-> CHW, becomes); one transfer */
int32_t gap8_dma_copy_strided(void *dst, const void *src, int32_t n2, int32_t n1, int32_t n0,
                              int32_t elem, int32_t dst_s2, int32_t src_s2, int32_t dst_s1,
                              int32_t src_s1, int32_t dst_s0, int32_t src_s0, int32_t dir);
/* the same copy entered by every core of the team (core: its id): each back end decides who
 * moves what (DMA by core 0, or a share per core); the caller's barrier ends it */
int32_t gap8_copy_strided_part(int32_t core, void *dst, const void *src, int32_t n2, int32_t n1,
                               int32_t n0, int32_t elem, int32_t dst_s2, int32_t src_s2,
                               int32_t dst_s1, int32_t src_s1, int32_t dst_s0, int32_t src_s0,
                               int32_t dir);
/* gap8_dma_copy_3d entered by every core of the team (core: its id): the back end shares the
 * blocks' commands among the cores (pulp-runtime) or lets core 0 copy; the caller's barrier
 * ends it */
int32_t gap8_dma_copy_3d_part(int32_t core, void *dst, const void *src, int32_t n2, int32_t n1,
                              int32_t row_bytes, int32_t dst_s2, int32_t src_s2, int32_t dst_s1,
                              int32_t src_s1, int32_t dir);
/* copy `slot` of a run of `slots` one-run copies (gap8_dma_copy_1d) the whole team enters
 * (core: its id; the caller's barrier ends it), so that no core issues them all while the
 * others wait: a copy alone is shared among the cores in word-aligned parts, of several copies
 * one core issues copy `slot` whole (pulp-runtime: each core on its own MCHAN queue, core 0,
 * which counts them, last). Back ends without per-core queues let one core copy it. Counted as
 * one transfer. */
int32_t gap8_dma_copy_1d_team(int32_t core, int32_t slot, int32_t slots, void *dst,
                              const void *src, int32_t bytes, int32_t dir);
/* layout change in flight: src [a][b] of elem_bytes -> dst [b][a] (CHW <-> HWC) */
int32_t gap8_dma_copy_transpose(void *dst, const void *src, int32_t a, int32_t b,
                                int32_t elem_bytes, int32_t dir);
void gap8_dma_wait(void);
/* the copies between these two (the master core's, back to back) may be waited for once, at
 * gap8_dma_group_end; back ends whose copies wait anyway make them no-ops */
void gap8_dma_group_begin(void);
void gap8_dma_group_end(void);

/* -- instrumentation ---------------------------------------------------------------------- */
typedef struct {
  uint64_t bytes[GAP8_NB_DIRS];
  uint32_t transfers[GAP8_NB_DIRS];
  uint64_t macs;
  uint32_t tiles;
  uint64_t instret;
  uint64_t dma_instret; /* of instret: the portable DMA stand-in's copying (GAP8: hardware) */
} gap8_counters_t;

#if defined(GAP8_INSTRUMENT) && !defined(GAP8_INSTRET_ONLY)
extern gap8_counters_t *gap8_current;
extern uint32_t gap8_copy_moved;
static inline int32_t GAP8_COPY_BEGIN(void) { gap8_copy_moved = 0; return 0; }
static inline int32_t GAP8_COPY_ELEM(int32_t dir, int32_t bytes) {
  gap8_current->bytes[dir] += (uint32_t)bytes; gap8_copy_moved = 1; return 0;
}
static inline int32_t GAP8_COPY_END(int32_t dir) {
  gap8_current->transfers[dir] += gap8_copy_moved;
  if (dir == GAP8_DIR_L1_TO_L2) gap8_current->tiles += gap8_copy_moved;
  return 0;
}
#ifdef GAP8_NO_MAC_COUNT
#define GAP8_COUNT_MAC() ((void)0)
#define GAP8_COUNT_MACS(n) ((void)0)
#else
static inline int32_t GAP8_COUNT_MAC(void) { gap8_current->macs += 1; return 0; }
static inline int32_t GAP8_COUNT_MACS(int32_t n) { gap8_current->macs += (uint32_t)n; return 0; }
#endif
#else
#define GAP8_COPY_BEGIN() ((void)0)
#define GAP8_COPY_ELEM(dir, bytes) ((void)0)
#define GAP8_COPY_END(dir) ((void)0)
#define GAP8_COUNT_MAC() ((void)0)
#define GAP8_COUNT_MACS(n) ((void)0)
#endif
#ifdef GAP8_INSTRUMENT /* GAP8_INSTRET_ONLY: per-layer instructions and DMA calls only */
extern gap8_counters_t *gap8_current;
void gap8_counters_layer(int32_t layer);
uint64_t gap8_instret(void);
#endif
#endif
