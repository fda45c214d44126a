/* Portable back end (host, rv32 emulator): DMA as a byte copy, counters per layer. */
#include <string.h>
#include "gap8_dma.h"
#include "gap8_cluster.h"

#ifdef GAP8_INSTRUMENT
#include "network.h"
gap8_counters_t gap8_counters[GAP8_NB_LAYERS + 1];
gap8_counters_t *gap8_current = &gap8_counters[GAP8_NB_LAYERS];
uint32_t gap8_copy_moved;

void gap8_counters_layer(int32_t layer) {
  gap8_current = &gap8_counters[layer < 0 ? GAP8_NB_LAYERS : layer];
}

uint64_t gap8_instret(void) {
#if defined(__riscv)
  uint32_t lo, hi, hi2;
  do {
    /* binutils 2.40 wants zicsr for csrr; -march=rv32imc_zicsr would pick the wrong multilib */
    __asm__ volatile(".option push\n.option arch, +zicsr\ncsrr %0, minstreth\n.option pop"
                     : "=r"(hi));
    __asm__ volatile(".option push\n.option arch, +zicsr\ncsrr %0, minstret\n.option pop"
                     : "=r"(lo));
    __asm__ volatile(".option push\n.option arch, +zicsr\ncsrr %0, minstreth\n.option pop"
                     : "=r"(hi2));
  } while (hi != hi2);
  return ((uint64_t)hi << 32) | lo;
#else
  return 0; /* host: no instruction counter */
#endif
}

/* the instructions the DMA stand-in executes (on GAP8 the DMA moves these bytes in hardware):
 * per layer in dma_instret, timed around the outermost copy call */
static int32_t dma_depth;
static uint64_t dma_start;
static void dma_enter(void) {
  if (dma_depth++ == 0) dma_start = gap8_instret();
}
static int32_t dma_leave(int32_t status) {
  if (--dma_depth == 0) gap8_current->dma_instret += gap8_instret() - dma_start;
  return status;
}

static void count(int32_t dir, uint32_t bytes) {
  if (dir < 0) return;
  gap8_current->bytes[dir] += bytes;
  gap8_current->transfers[dir] += bytes != 0;
  if (dir == GAP8_DIR_L1_TO_L2 && bytes != 0) gap8_current->tiles += 1;
}
#else
#define count(dir, bytes) ((void)0)
#define dma_enter() ((void)0)
#define dma_leave(status) (status)
#endif

/* The DMA stand-in's byte mover (GAP8's DMA moves the bytes in hardware; picolibc's memcpy
 * takes 6 rv32 instructions a byte): whole words when both ends are word-aligned, else four
 * bytes per step. The regions never overlap. */
static void copy_bytes(int8_t *d, const int8_t *s, int32_t n) {
#if defined(__GNUC__)
  typedef uint32_t word_t __attribute__((may_alias));
  if (((((uintptr_t)d) | (uintptr_t)s) & 3) == 0)
    for (; n >= 4; n -= 4, d += 4, s += 4) *(word_t *)d = *(const word_t *)s;
#endif
  for (; n >= 4; n -= 4, d += 4, s += 4) {
    int8_t b0 = s[0], b1 = s[1], b2 = s[2], b3 = s[3];
    d[0] = b0; d[1] = b1; d[2] = b2; d[3] = b3;
  }
  for (; n > 0; --n) *d++ = *s++;
}

#if defined(__riscv)
/* The rv32 emulator build's memset (the kernels' pad fills compile to memset calls):
 * picolibc's stores a byte per 4 instructions, this one whole words. Not on the host. */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) /* else: a memset call */
void *memset(void *dst, int c, size_t n) {
  typedef uint32_t word_t __attribute__((may_alias));
  uint8_t *d = (uint8_t *)dst;
  const uint32_t v = (uint8_t)c * 0x01010101u;
  for (; n > 0 && ((uintptr_t)d & 3); --n) *d++ = (uint8_t)c;
  for (; n >= 16; n -= 16, d += 16) {
    ((word_t *)d)[0] = v; ((word_t *)d)[1] = v; ((word_t *)d)[2] = v; ((word_t *)d)[3] = v;
  }
  for (; n >= 4; n -= 4, d += 4) *(word_t *)d = v;
  for (; n > 0; --n) *d++ = (uint8_t)c;
  return dst;
}
#endif

extern int8_t gap8_l3_stage[];
extern const int8_t *gap8_l3_begin, *gap8_l3_end;
extern int8_t *gap8_l3_act_begin, *gap8_l3_act_end;

/* whether p is in L3: the L3 weights or the L3 activation arena */
static int32_t in_l3(const void *p) {
  const int8_t *b = (const int8_t *)p;
  return (b >= gap8_l3_begin && b < gap8_l3_end) ||
         (b >= (const int8_t *)gap8_l3_act_begin && b < (const int8_t *)gap8_l3_act_end);
}
/* a copy into L1 from L3 (an L3 tile goes L3 -> L2 stage -> L1) */
static int32_t l3_source(const void *src, int32_t dir) {
  return dir == GAP8_DIR_L2_TO_L1 && in_l3(src);
}
/* a copy out of L1 into L3 (an L3 tile goes L1 -> L2 stage -> L3) */
static int32_t l3_destination(const void *dst, int32_t dir) {
  return dir == GAP8_DIR_L1_TO_L2 && in_l3(dst);
}

static int32_t copy_3d(void *dst, const void *src, int32_t n2, int32_t n1, int32_t row_bytes,
                       int32_t dst_s2, int32_t src_s2, int32_t dst_s1, int32_t src_s1,
                       int32_t dir) {
  int32_t i, j;
  if (l3_source(src, dir)) {
    /* the tile comes L3 -> L2 (packed into the stage), then L2 -> L1 */
    copy_3d(gap8_l3_stage, src, n2, n1, row_bytes, n1 * row_bytes, src_s2, row_bytes, src_s1,
            GAP8_DIR_L3_TO_L2);
    return copy_3d(dst, gap8_l3_stage, n2, n1, row_bytes, dst_s2, n1 * row_bytes, dst_s1,
                   row_bytes, GAP8_DIR_L2_TO_L1);
  }
  if (l3_destination(dst, dir)) {
    /* the tile goes L1 -> L2 (packed into the stage), then L2 -> L3 */
    copy_3d(gap8_l3_stage, src, n2, n1, row_bytes, n1 * row_bytes, src_s2, row_bytes, src_s1,
            GAP8_DIR_L1_TO_L2);
    return copy_3d(dst, gap8_l3_stage, n2, n1, row_bytes, dst_s2, n1 * row_bytes, dst_s1,
                   row_bytes, GAP8_DIR_L2_TO_L3);
  }
  for (i = 0; i < n2; ++i)
    for (j = 0; j < n1; ++j)
      copy_bytes((int8_t *)dst + i * dst_s2 + j * dst_s1,
                 (const int8_t *)src + i * src_s2 + j * src_s1, row_bytes);
  count(dir, (uint32_t)(n2 * n1 * row_bytes));
  return 0;
}

int32_t gap8_dma_copy_3d(void *dst, const void *src, int32_t n2, int32_t n1, int32_t row_bytes,
                         int32_t dst_s2, int32_t src_s2, int32_t dst_s1, int32_t src_s1,
                         int32_t dir) {
  dma_enter();
  return dma_leave(copy_3d(dst, src, n2, n1, row_bytes, dst_s2, src_s2, dst_s1, src_s1, dir));
}

static int32_t copy_strided(void *dst, const void *src, int32_t n2, int32_t n1, int32_t n0,
                            int32_t elem, int32_t dst_s2, int32_t src_s2, int32_t dst_s1,
                            int32_t src_s1, int32_t dst_s0, int32_t src_s0, int32_t dir) {
  int32_t i, j, k;
  if (l3_source(src, dir)) { /* via the L2 stage, packed */
    copy_strided(gap8_l3_stage, src, n2, n1, n0, elem, n1 * n0 * elem, src_s2, n0 * elem,
                 src_s1, elem, src_s0, GAP8_DIR_L3_TO_L2);
    return copy_strided(dst, gap8_l3_stage, n2, n1, n0, elem, dst_s2, n1 * n0 * elem, dst_s1,
                        n0 * elem, dst_s0, elem, GAP8_DIR_L2_TO_L1);
  }
  if (l3_destination(dst, dir)) { /* via the L2 stage, packed */
    copy_strided(gap8_l3_stage, src, n2, n1, n0, elem, n1 * n0 * elem, src_s2, n0 * elem,
                 src_s1, elem, src_s0, GAP8_DIR_L1_TO_L2);
    return copy_strided(dst, gap8_l3_stage, n2, n1, n0, elem, dst_s2, n1 * n0 * elem, dst_s1,
                        n0 * elem, dst_s0, elem, GAP8_DIR_L2_TO_L3);
  }
  for (i = 0; i < n2; ++i)
    for (j = 0; j < n1; ++j)
      for (k = 0; k < n0; ++k)
        copy_bytes((int8_t *)dst + i * dst_s2 + j * dst_s1 + k * dst_s0,
                   (const int8_t *)src + i * src_s2 + j * src_s1 + k * src_s0, elem);
  count(dir, (uint32_t)(n2 * n1 * n0 * elem));
  return 0;
}

int32_t gap8_dma_copy_strided(void *dst, const void *src, int32_t n2, int32_t n1, int32_t n0,
                              int32_t elem, int32_t dst_s2, int32_t src_s2, int32_t dst_s1,
                              int32_t src_s1, int32_t dst_s0, int32_t src_s0, int32_t dir) {
  dma_enter();
  return dma_leave(copy_strided(dst, src, n2, n1, n0, elem, dst_s2, src_s2, dst_s1, src_s1,
                                dst_s0, src_s0, dir));
}

static int32_t copy_transpose(void *dst, const void *src, int32_t a, int32_t b,
                              int32_t elem_bytes, int32_t dir) {
  int32_t i, j;
  if (l3_source(src, dir)) { /* L3 -> L2 stage as it is, transposed on its way to L1 */
    copy_3d(gap8_l3_stage, src, 1, 1, a * b * elem_bytes, 0, 0, 0, 0, GAP8_DIR_L3_TO_L2);
    return copy_transpose(dst, gap8_l3_stage, a, b, elem_bytes, GAP8_DIR_L2_TO_L1);
  }
  if (l3_destination(dst, dir)) { /* transposed into the L2 stage, then L2 -> L3 as it is */
    copy_transpose(gap8_l3_stage, src, a, b, elem_bytes, GAP8_DIR_L1_TO_L2);
    return copy_3d(dst, gap8_l3_stage, 1, 1, a * b * elem_bytes, 0, 0, 0, 0, GAP8_DIR_L2_TO_L3);
  }
  for (i = 0; i < a; ++i)
    for (j = 0; j < b; ++j)
      copy_bytes((int8_t *)dst + (j * a + i) * elem_bytes,
                 (const int8_t *)src + (i * b + j) * elem_bytes, elem_bytes);
  count(dir, (uint32_t)(a * b * elem_bytes));
  return 0;
}

int32_t gap8_dma_copy_transpose(void *dst, const void *src, int32_t a, int32_t b,
                                int32_t elem_bytes, int32_t dir) {
  dma_enter();
  return dma_leave(copy_transpose(dst, src, a, b, elem_bytes, dir));
}

void gap8_dma_wait(void) {}
void gap8_dma_group_begin(void) {} /* every copy waits for its data */
void gap8_dma_group_end(void) {}

int32_t gap8_dma_copy_1d_team(int32_t core, int32_t slot, int32_t slots, void *dst,
                              const void *src, int32_t bytes, int32_t dir) {
  int32_t owner = slots > 1 ? slot % GAP8_NB_CORES : 0; /* one caller runs every core id: the owner copies */
  return core == owner ? gap8_dma_copy_1d(dst, src, bytes, dir) : 0;
}

int32_t gap8_dma_copy_3d_part(int32_t core, void *dst, const void *src, int32_t n2, int32_t n1,
                              int32_t row_bytes, int32_t dst_s2, int32_t src_s2, int32_t dst_s1,
                              int32_t src_s1, int32_t dir) {
  if (core != 0) return 0; /* one transfer, as the IR counts it */
  return gap8_dma_copy_3d(dst, src, n2, n1, row_bytes, dst_s2, src_s2, dst_s1, src_s1, dir);
}

int32_t gap8_copy_strided_part(int32_t core, void *dst, const void *src, int32_t n2, int32_t n1,
                               int32_t n0, int32_t elem, int32_t dst_s2, int32_t src_s2,
                               int32_t dst_s1, int32_t src_s1, int32_t dst_s0, int32_t src_s0,
                               int32_t dir) {
  if (core != 0) return 0; /* one transfer, as the IR counts it */
  return gap8_dma_copy_strided(dst, src, n2, n1, n0, elem, dst_s2, src_s2, dst_s1, src_s1,
                               dst_s0, src_s0, dir);
}

