/* GAP SDK back end (PMSIS cluster DMA), built with -DGAP8_PMSIS by the SDK Makefile.
 * Not compiled here (no GAP SDK on the build machines): written against the PMSIS API
 * (cl_dma.h, cl_team.h). L2 <-> L1 copies are issued by the master core; 3-D copies become one
 * 2-D command per block (GAP8's MCHAN has 2-D transfers only). */
#ifdef GAP8_PMSIS
#include "pmsis.h"
#include "gap8_dma.h"

extern int8_t gap8_l3_stage[];
extern const int8_t *const gap8_l3_begin, *const gap8_l3_end;

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
  /* L3 weights: on the board they are in HyperRAM; pi_cl_ram_read into gap8_l3_stage
   * belongs here (see gap-sdk-api notes); this back end expects them in L2 (PI_L2). */
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
