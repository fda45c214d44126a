/* GAP SDK back end (PMSIS cluster DMA), built with -DGAP8_PMSIS by the SDK Makefile.
 * Not compiled here (no GAP SDK on the build machines), never run on a board: written against
 * the PMSIS API (cl_dma.h, cl_team.h, bsp/ram.h, bsp/fs.h) and type-checked against those
 * declarations. L2 <-> L1 copies are issued by the master core; 3-D copies become one 2-D
 * command per block (GAP8's MCHAN has 2-D transfers only).
 *
 * L3: on GAP8 the L3 is HyperRAM, reached only by the micro-DMA into L2. The weights the
 * placement put in L3 are not in the image: gap8_l3_load (fabric controller, before the cluster
 * runs: main.c) copies gap8_l3_weights.bin from the flash's read-only file system (READFS_FILES
 * in the Makefile) into one HyperRAM allocation through an L2 chunk (as DORY's
 * Common/Utils/mem.c does), and points gap8_l3_weights at its HyperRAM address. A copy whose
 * source lies there is read with pi_cl_ram_read / pi_cl_ram_read_wait (the cluster asks the
 * fabric controller's micro-DMA) into gap8_l3_stage in L2, then the cluster DMA takes the stage
 * to L1; activations the placement put in L3 live in a second HyperRAM allocation (gap8_l3_acts,
 * made by gap8_l3_load), read the same way and written back with pi_cl_ram_write /
 * pi_cl_ram_write_wait from the stage. Each such read waits before the tile is used (like every
 * copy of this back end: the overlap with compute the plan models for double-buffered loops is
 * not exploited yet). */
#ifdef GAP8_PMSIS
#include "pmsis.h"
#include "bsp/ram.h"
#include "bsp/ram/hyperram.h"
#include "bsp/flash/hyperflash.h"
#include "bsp/fs.h"
#include "bsp/fs/readfs.h"
#include "gap8_dma.h"
#include "gap8_cluster.h"
#include "network.h"

extern int8_t gap8_l3_stage[];
extern const int8_t *gap8_l3_begin, *gap8_l3_end;
extern int8_t *gap8_l3_act_begin, *gap8_l3_act_end;
extern const int8_t *gap8_l3_weights;
#if GAP8_L3_ACT_BYTES > 0
extern int8_t *gap8_l3_acts; /* the L3 activation arena: one HyperRAM allocation */
#endif

#define GAP8_L3_FILE "gap8_l3_weights.bin"
#define GAP8_L3_CHUNK_BYTES 1024
static struct pi_device gap8_hyperram;

#if GAP8_L3_WEIGHT_BYTES > 0
static int32_t l3_copy_file(pi_fs_file_t *file, uint32_t ram_addr) {
  static PI_L2 int8_t chunk[GAP8_L3_CHUNK_BYTES];
  uint32_t done = 0;
  while (done < GAP8_L3_WEIGHT_BYTES) {
    int32_t got = pi_fs_read(file, chunk, GAP8_L3_CHUNK_BYTES);
    if (got <= 0) return -1;
    pi_ram_write(&gap8_hyperram, ram_addr + done, chunk, (uint32_t)got);
    done += (uint32_t)got;
  }
  return 0;
}
#endif

/* Fabric controller, once before the network runs: flash file -> HyperRAM. 0 when done (or
 * when no weight is in L3), negative on a failure (which step: -1 RAM, -2 flash, -3 file). */
int32_t gap8_l3_load(void) {
#if GAP8_L3_WEIGHT_BYTES > 0 || GAP8_L3_ACT_BYTES > 0
  struct pi_hyperram_conf ram_conf;
  pi_hyperram_conf_init(&ram_conf);
  pi_open_from_conf(&gap8_hyperram, &ram_conf);
  if (pi_ram_open(&gap8_hyperram)) return -1;
#endif
#if GAP8_L3_ACT_BYTES > 0
  uint32_t act_addr = 0;
  if (pi_ram_alloc(&gap8_hyperram, &act_addr, GAP8_L3_ACT_BYTES)) return -1;
  gap8_l3_acts = (int8_t *)(uintptr_t)act_addr;
#endif
#if GAP8_L3_WEIGHT_BYTES > 0
  static struct pi_device flash, fs;
  struct pi_hyperflash_conf flash_conf;
  struct pi_readfs_conf fs_conf;
  uint32_t ram_addr = 0;
  if (pi_ram_alloc(&gap8_hyperram, &ram_addr, GAP8_L3_WEIGHT_BYTES)) return -1;
  pi_hyperflash_conf_init(&flash_conf);
  pi_open_from_conf(&flash, &flash_conf);
  if (pi_flash_open(&flash)) return -2;
  pi_readfs_conf_init(&fs_conf);
  fs_conf.fs.flash = &flash;
  pi_open_from_conf(&fs, &fs_conf);
  if (pi_fs_mount(&fs)) return -2;
  pi_fs_file_t *file = pi_fs_open(&fs, GAP8_L3_FILE, 0);
  if (file == NULL || l3_copy_file(file, ram_addr)) return -3;
  pi_fs_close(file);
  pi_fs_unmount(&fs);
  gap8_l3_weights = (const int8_t *)(uintptr_t)ram_addr;
#endif
  return 0;
}

/* whether p is a HyperRAM address: the L3 weights or the L3 activation arena */
static int in_l3(const void *p) {
  const int8_t *b = (const int8_t *)p;
  return (b >= gap8_l3_begin && b < gap8_l3_end) ||
         (b >= (const int8_t *)gap8_l3_act_begin && b < (const int8_t *)gap8_l3_act_end);
}
static int from_l3(const void *src, int32_t dir) { return dir == GAP8_DIR_L2_TO_L1 && in_l3(src); }
static int to_l3(const void *dst, int32_t dir) { return dir == GAP8_DIR_L1_TO_L2 && in_l3(dst); }

/* HyperRAM -> L2, from the cluster: one request per contiguous run, each waited for */
static void l3_read(int8_t *l2, const int8_t *l3, uint32_t bytes) {
  pi_cl_ram_req_t req;
  pi_cl_ram_read(&gap8_hyperram, (uint32_t)(uintptr_t)l3, l2, bytes, &req);
  pi_cl_ram_read_wait(&req);
}

/* L2 -> HyperRAM, from the cluster: one request per contiguous run, each waited for */
static void l3_write(int8_t *l3, int8_t *l2, uint32_t bytes) {
  pi_cl_ram_req_t req;
  pi_cl_ram_write(&gap8_hyperram, (uint32_t)(uintptr_t)l3, l2, bytes, &req);
  pi_cl_ram_write_wait(&req);
}

/* n2 blocks of n1 rows of row_bytes at l3 (strides l3_s2, l3_s1) <-> gap8_l3_stage, packed:
 * read into the stage (write = 0) or written from it (write = 1), one request per contiguous
 * run (a whole block when its rows are contiguous) */
static void l3_stage_runs(int8_t *l3, int32_t n2, int32_t n1, int32_t row_bytes, int32_t l3_s2,
                          int32_t l3_s1, int32_t write) {
  int32_t packed = l3_s1 == row_bytes;
  int32_t rows = packed ? 1 : n1, run = packed ? n1 * row_bytes : row_bytes;
  for (int32_t i = 0; i < n2; ++i)
    for (int32_t j = 0; j < rows; ++j) {
      int8_t *far = l3 + i * l3_s2 + j * l3_s1, *near = gap8_l3_stage + (i * n1 + j) * row_bytes;
      if (write)
        l3_write(far, near, (uint32_t)run);
      else
        l3_read(near, far, (uint32_t)run);
    }
}

static void copy_2d(int8_t *dst, const int8_t *src, int32_t rows, int32_t row_bytes,
                    int32_t dst_stride, int32_t src_stride, int32_t dir) {
  pi_cl_dma_cmd_t cmd;
  int32_t l1_to_l2 = dir == GAP8_DIR_L1_TO_L2;
  int8_t *loc = l1_to_l2 ? (int8_t *)src : dst;
  int8_t *ext = l1_to_l2 ? dst : (int8_t *)src;
  int32_t ext_stride = l1_to_l2 ? dst_stride : src_stride;
  int32_t loc_stride = l1_to_l2 ? src_stride : dst_stride;
  uint32_t d = l1_to_l2 ? PI_CL_DMA_DIR_LOC2EXT : PI_CL_DMA_DIR_EXT2LOC;
  if (rows == 1 || (ext_stride == row_bytes && loc_stride == row_bytes)) {
    pi_cl_dma_cmd((uint32_t)(uintptr_t)ext, (uint32_t)(uintptr_t)loc, (uint32_t)(rows * row_bytes), d, &cmd);
    pi_cl_dma_cmd_wait(&cmd);
  } else if (loc_stride == row_bytes) {
    pi_cl_dma_cmd_2d((uint32_t)(uintptr_t)ext, (uint32_t)(uintptr_t)loc, (uint32_t)(rows * row_bytes),
                     (uint32_t)ext_stride, (uint32_t)row_bytes, d, &cmd);
    pi_cl_dma_cmd_wait(&cmd);
  } else {
    for (int32_t r = 0; r < rows; ++r) {
      pi_cl_dma_cmd((uint32_t)(uintptr_t)(ext + r * ext_stride), (uint32_t)(uintptr_t)(loc + r * loc_stride),
                    (uint32_t)row_bytes, d, &cmd);
      pi_cl_dma_cmd_wait(&cmd);
    }
  }
}

int32_t gap8_dma_copy_3d(void *dst, const void *src, int32_t n2, int32_t n1, int32_t row_bytes,
                         int32_t dst_s2, int32_t src_s2, int32_t dst_s1, int32_t src_s1,
                         int32_t dir) {
  if (from_l3(src, dir)) { /* L3 -> the L2 stage (packed), then the stage -> L1 */
    l3_stage_runs((int8_t *)src, n2, n1, row_bytes, src_s2, src_s1, 0);
    return gap8_dma_copy_3d(dst, gap8_l3_stage, n2, n1, row_bytes, dst_s2, n1 * row_bytes,
                            dst_s1, row_bytes, GAP8_DIR_L2_TO_L1);
  }
  if (to_l3(dst, dir)) { /* L1 -> the L2 stage (packed), then the stage -> L3 */
    gap8_dma_copy_3d(gap8_l3_stage, src, n2, n1, row_bytes, n1 * row_bytes, src_s2, row_bytes,
                     src_s1, GAP8_DIR_L1_TO_L2);
    l3_stage_runs((int8_t *)dst, n2, n1, row_bytes, dst_s2, dst_s1, 1);
    return 0;
  }
  if (dir < 0) { /* L2 -> L2 (an output that is another tensor's alias): the core copies */
    for (int32_t i = 0; i < n2; ++i)
      for (int32_t j = 0; j < n1; ++j)
        for (int32_t k = 0; k < row_bytes; ++k)
          ((int8_t *)dst)[i * dst_s2 + j * dst_s1 + k] =
              ((const int8_t *)src)[i * src_s2 + j * src_s1 + k];
    return 0;
  }
  for (int32_t i = 0; i < n2; ++i)
    copy_2d((int8_t *)dst + i * dst_s2, (const int8_t *)src + i * src_s2, n1, row_bytes,
            dst_s1, src_s1, dir);
  return 0;
}

int32_t gap8_dma_copy_strided(void *dst, const void *src, int32_t n2, int32_t n1, int32_t n0,
                              int32_t elem, int32_t dst_s2, int32_t src_s2, int32_t dst_s1,
                              int32_t src_s1, int32_t dst_s0, int32_t src_s0, int32_t dir) {
  /* element-strided: one 2-D command per row of elements, the L1 side contiguous when it is
   * (DORY's HWC -> CHW), else one command per element */
  if (from_l3(src, dir)) { /* L3 -> the L2 stage (packed, element by element), then -> L1 */
    for (int32_t i = 0; i < n2; ++i)
      for (int32_t j = 0; j < n1; ++j)
        for (int32_t k = 0; k < n0; ++k)
          l3_read(gap8_l3_stage + ((i * n1 + j) * n0 + k) * elem,
                  (const int8_t *)src + i * src_s2 + j * src_s1 + k * src_s0, (uint32_t)elem);
    return gap8_dma_copy_strided(dst, gap8_l3_stage, n2, n1, n0, elem, dst_s2, n1 * n0 * elem,
                                 dst_s1, n0 * elem, dst_s0, elem, GAP8_DIR_L2_TO_L1);
  }
  if (to_l3(dst, dir)) { /* L1 -> the L2 stage (packed), then -> L3 element by element */
    gap8_dma_copy_strided(gap8_l3_stage, src, n2, n1, n0, elem, n1 * n0 * elem, src_s2,
                          n0 * elem, src_s1, elem, src_s0, GAP8_DIR_L1_TO_L2);
    for (int32_t i = 0; i < n2; ++i)
      for (int32_t j = 0; j < n1; ++j)
        for (int32_t k = 0; k < n0; ++k)
          l3_write((int8_t *)dst + i * dst_s2 + j * dst_s1 + k * dst_s0,
                   gap8_l3_stage + ((i * n1 + j) * n0 + k) * elem, (uint32_t)elem);
    return 0;
  }
  for (int32_t i = 0; i < n2; ++i)
    for (int32_t j = 0; j < n1; ++j) {
      int8_t *d = (int8_t *)dst + i * dst_s2 + j * dst_s1;
      const int8_t *s = (const int8_t *)src + i * src_s2 + j * src_s1;
      if ((dir == GAP8_DIR_L2_TO_L1 ? dst_s0 : src_s0) == elem)
        copy_2d(d, s, n0, elem, dst_s0, src_s0, dir);
      else
        for (int32_t k = 0; k < n0; ++k)
          copy_2d(d + k * dst_s0, s + k * src_s0, 1, elem, elem, elem, dir);
    }
  return 0;
}

int32_t gap8_dma_copy_transpose(void *dst, const void *src, int32_t a, int32_t b,
                                int32_t elem_bytes, int32_t dir) {
  /* one 2-D transfer per destination row (DORY's HWC->CHW): element-strided source */
  for (int32_t j = 0; j < b; ++j)
    gap8_dma_copy_3d((int8_t *)dst + j * a * elem_bytes, (const int8_t *)src + j * elem_bytes,
                     1, a, elem_bytes, 0, 0, elem_bytes, b * elem_bytes, dir);
  return 0;
}

void gap8_dma_wait(void) { pi_cl_dma_flush(); }
void gap8_dma_group_begin(void) {} /* every copy waits for its data */
void gap8_dma_group_end(void) {}

int32_t gap8_dma_copy_1d_team(int32_t core, int32_t slot, int32_t slots, void *dst,
                              const void *src, int32_t bytes, int32_t dir) {
  int32_t owner = slots > 1 ? slot % GAP8_NB_CORES : 0; /* the owner core copies (the cluster DMA of PMSIS: one queue) */
  return core == owner ? gap8_dma_copy_1d(dst, src, bytes, dir) : 0;
}

int32_t gap8_dma_copy_3d_part(int32_t core, void *dst, const void *src, int32_t n2, int32_t n1,
                              int32_t row_bytes, int32_t dst_s2, int32_t src_s2, int32_t dst_s1,
                              int32_t src_s1, int32_t dir) {
  if (core != 0) return 0; /* core 0 issues the commands */
  return gap8_dma_copy_3d(dst, src, n2, n1, row_bytes, dst_s2, src_s2, dst_s1, src_s1, dir);
}

int32_t gap8_copy_strided_part(int32_t core, void *dst, const void *src, int32_t n2, int32_t n1,
                               int32_t n0, int32_t elem, int32_t dst_s2, int32_t src_s2,
                               int32_t dst_s1, int32_t src_s1, int32_t dst_s0, int32_t src_s0,
                               int32_t dir) {
  if (core != 0) return 0; /* core 0 issues the commands */
  return gap8_dma_copy_strided(dst, src, n2, n1, n0, elem, dst_s2, src_s2, dst_s1, src_s1,
                               dst_s0, src_s0, dir);
}
#endif
