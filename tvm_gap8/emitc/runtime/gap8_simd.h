/* Micro-kernels the emitted kernels call (tvm_gap8/emitc/intrinsics.py replaces a reduction
 * loop by one call). Three back ends, the same integers (integer sums in any order are equal):
 *   GAP8_PULPRT (GVSOC pulp-open): Xpulpv2 through .insn (Debian's GCC has no PULP builtins;
 *     encodings from GVSOC's isa_pulpv2.py, verified in shared/tools/gvsoc): a hardware loop
 *     (lp.setup), post-increment word loads (p.lw rd, 4(rs!)), pv.sdotsp.b (4 int8 MACs);
 *   GAP8_PMSIS (GAP SDK): __builtin_pulp_sdotsp4, the same instruction through PULP GCC;
 *   otherwise (host, rv32 emulator): plain C. */
#ifndef GAP8_SIMD_H
#define GAP8_SIMD_H
#include <stdint.h>

/* sum over i < n of (a[i * a_step] + a_offset) * b[i * b_step], int8 operands, int32 sum */
static inline int32_t gap8_dot_i8_scalar(const int8_t *a, int32_t a_step, const int8_t *b,
                                         int32_t b_step, int32_t n, int32_t a_offset) {
  int32_t acc = 0;
  for (int32_t i = 0; i < n; ++i, a += a_step, b += b_step)
    acc += ((int32_t)*a + a_offset) * (int32_t)*b;
  return acc;
}

#if defined(GAP8_PULPRT)
/* both operands contiguous and word-aligned: 4 MACs per pv.sdotsp.b; the offset term is
 * a_offset * sum(b), the sum a second pv.sdotsp.b against 0x01010101 */
static inline int32_t gap8_dot_i8(const int8_t *a, int32_t a_step, const int8_t *b,
                                  int32_t b_step, int32_t n, int32_t a_offset) {
  int32_t acc = 0, sum_b = 0, words = n >> 2;
  if (a_step != 1 || b_step != 1 || words == 0 || (((uintptr_t)a | (uintptr_t)b) & 3))
    return gap8_dot_i8_scalar(a, a_step, b, b_step, n, a_offset);
  if (a_offset == 0) {
    __asm__ volatile(".option push\n.option norelax\n"
                     ".insn i 0x7B, 4, x0, %[cnt], 6\n"      /* lp.setup x0, cnt, +12 */
                     ".insn i 0x0B, 2, t0, %[pa], 4\n"       /* p.lw t0, 4(pa!) */
                     ".insn i 0x0B, 2, t1, %[pb], 4\n"       /* p.lw t1, 4(pb!) */
                     ".insn r 0x57, 1, 0x5C, %[acc], t0, t1\n" /* pv.sdotsp.b acc, t0, t1 */
                     ".option pop\n"
                     : [acc] "+r"(acc), [pa] "+r"(a), [pb] "+r"(b)
                     : [cnt] "r"(words) : "t0", "t1", "memory");
  } else {
    int32_t ones = 0x01010101;
    __asm__ volatile(".option push\n.option norelax\n"
                     ".insn i 0x7B, 4, x0, %[cnt], 8\n"      /* lp.setup x0, cnt, +16 */
                     ".insn i 0x0B, 2, t0, %[pa], 4\n"
                     ".insn i 0x0B, 2, t1, %[pb], 4\n"
                     ".insn r 0x57, 1, 0x5C, %[acc], t0, t1\n"
                     ".insn r 0x57, 1, 0x5C, %[sum], t1, %[ones]\n"
                     ".option pop\n"
                     : [acc] "+r"(acc), [sum] "+r"(sum_b), [pa] "+r"(a), [pb] "+r"(b)
                     : [cnt] "r"(words), [ones] "r"(ones) : "t0", "t1", "memory");
  }
  return acc + a_offset * sum_b + gap8_dot_i8_scalar(a, 1, b, 1, n & 3, a_offset);
}
#elif defined(GAP8_PMSIS)
typedef signed char gap8_v4s __attribute__((vector_size(4)));
static inline int32_t gap8_dot_i8(const int8_t *a, int32_t a_step, const int8_t *b,
                                  int32_t b_step, int32_t n, int32_t a_offset) {
  int32_t acc = 0, sum_b = 0;
  const gap8_v4s ones = {1, 1, 1, 1};
  if (a_step != 1 || b_step != 1 || (((uintptr_t)a | (uintptr_t)b) & 3))
    return gap8_dot_i8_scalar(a, a_step, b, b_step, n, a_offset);
  for (; n >= 4; n -= 4, a += 4, b += 4) {
    acc = __builtin_pulp_sdotsp4(*(const gap8_v4s *)a, *(const gap8_v4s *)b, acc);
    sum_b = __builtin_pulp_sdotsp4(*(const gap8_v4s *)b, ones, sum_b);
  }
  return acc + a_offset * sum_b + gap8_dot_i8_scalar(a, 1, b, 1, n, a_offset);
}
#else
/* portable: two MACs per step, pointers stepped (the offset add vanishes when a_offset is the
 * constant 0 the emitted calls mostly pass) */
static inline int32_t gap8_dot_i8(const int8_t *a, int32_t a_step, const int8_t *b,
                                  int32_t b_step, int32_t n, int32_t a_offset) {
  int32_t acc = 0;
  for (; n >= 2; n -= 2, a += 2 * a_step, b += 2 * b_step)
    acc += ((int32_t)a[0] + a_offset) * (int32_t)b[0] +
           ((int32_t)a[a_step] + a_offset) * (int32_t)b[b_step];
  if (n > 0) acc += ((int32_t)a[0] + a_offset) * (int32_t)b[0];
  return acc;
}
#endif

/* four dot products sharing a: acc[k] = [acc[k] +] sum over i < n of (a[i] + a_offset) *
 * b[k * b_row + i], k < 4 (a 1x1 reduction blocked over 4 output channels) */
static inline void gap8_dot4_i8_rows(int32_t *acc, const int8_t *a, const int8_t *b,
                                     int32_t b_row, int32_t n, int32_t a_offset,
                                     int32_t accumulate) {
  for (int32_t k = 0; k < 4; ++k) {
    int32_t s = gap8_dot_i8(a, 1, b + k * b_row, 1, n, a_offset);
    acc[k] = accumulate ? acc[k] + s : s;
  }
}

/* four dot products sharing a strided a: acc[k] = [acc[k] +] sum over i < n of
 * (a[i * a_step] + a_offset) * b[k * b_row + i], k < 4 (a 1x1 reduction over a CHW tile,
 * channels a_step bytes apart, blocked over 4 output channels). Plain C on every back end
 * (no 4-way SIMD for strided bytes): each a[i] loaded once for the four rows, the rows' bytes
 * at constant offsets from one stepped pointer, two steps per iteration. */
static inline void gap8_dot4s_i8(int32_t *acc, const int8_t *a, int32_t a_step,
                                 const int8_t *b, int32_t b_row, int32_t n, int32_t a_offset,
                                 int32_t accumulate) {
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (; n >= 2; n -= 2, a += 2 * a_step, b += 2) {
    int32_t x = (int32_t)a[0] + a_offset, y = (int32_t)a[a_step] + a_offset;
    s0 += x * b[0] + y * b[1];
    s1 += x * b[b_row] + y * b[b_row + 1];
    s2 += x * b[2 * b_row] + y * b[2 * b_row + 1];
    s3 += x * b[3 * b_row] + y * b[3 * b_row + 1];
  }
  if (n > 0) {
    int32_t x = (int32_t)a[0] + a_offset;
    s0 += x * b[0]; s1 += x * b[b_row]; s2 += x * b[2 * b_row]; s3 += x * b[3 * b_row];
  }
  if (accumulate) {
    s0 += acc[0]; s1 += acc[1]; s2 += acc[2]; s3 += acc[3];
  }
  acc[0] = s0; acc[1] = s1; acc[2] = s2; acc[3] = s3;
}

#if defined(GAP8_PULPRT)
/* contiguous word-aligned rows, no offset: one hardware loop, per word of a one load of a and
 * one of each row of b, four pv.sdotsp.b (each load's first use two instructions later) */
static inline void gap8_dot4_i8(int32_t *acc, const int8_t *a, const int8_t *b, int32_t b_row,
                                int32_t n, int32_t a_offset, int32_t accumulate) {
  int32_t words = n >> 2, s0 = 0, s1 = 0, s2 = 0, s3 = 0, x, w0, w1, w2, w3;
  const int8_t *b0 = b, *b1 = b + b_row, *b2 = b + 2 * b_row, *b3 = b + 3 * b_row;
  if (a_offset != 0 || words == 0 || (((uintptr_t)a | (uintptr_t)b | (uintptr_t)b_row) & 3)) {
    gap8_dot4_i8_rows(acc, a, b, b_row, n, a_offset, accumulate);
    return;
  }
  __asm__ volatile(".option push\n.option norelax\n"
                   ".insn i 0x7B, 4, x0, %[cnt], 18\n"        /* lp.setup x0, cnt, +36 */
                   ".insn i 0x0B, 2, %[x], %[pa], 4\n"        /* p.lw x, 4(pa!) */
                   ".insn i 0x0B, 2, %[w0], %[b0], 4\n"
                   ".insn i 0x0B, 2, %[w1], %[b1], 4\n"
                   ".insn i 0x0B, 2, %[w2], %[b2], 4\n"
                   ".insn r 0x57, 1, 0x5C, %[s0], %[x], %[w0]\n" /* pv.sdotsp.b s0, x, w0 */
                   ".insn i 0x0B, 2, %[w3], %[b3], 4\n"
                   ".insn r 0x57, 1, 0x5C, %[s1], %[x], %[w1]\n"
                   ".insn r 0x57, 1, 0x5C, %[s2], %[x], %[w2]\n"
                   ".insn r 0x57, 1, 0x5C, %[s3], %[x], %[w3]\n"
                   ".option pop\n"
                   : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [pa] "+r"(a),
                     [b0] "+r"(b0), [b1] "+r"(b1), [b2] "+r"(b2), [b3] "+r"(b3), [x] "=&r"(x),
                     [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3)
                   : [cnt] "r"(words) : "memory");
  if (n & 3) {
    s0 += gap8_dot_i8_scalar(a, 1, b0, 1, n & 3, 0);
    s1 += gap8_dot_i8_scalar(a, 1, b1, 1, n & 3, 0);
    s2 += gap8_dot_i8_scalar(a, 1, b2, 1, n & 3, 0);
    s3 += gap8_dot_i8_scalar(a, 1, b3, 1, n & 3, 0);
  }
  if (accumulate) {
    s0 += acc[0]; s1 += acc[1]; s2 += acc[2]; s3 += acc[3];
  }
  acc[0] = s0; acc[1] = s1; acc[2] = s2; acc[3] = s3;
}
#elif defined(GAP8_PMSIS)
static inline void gap8_dot4_i8(int32_t *acc, const int8_t *a, const int8_t *b, int32_t b_row,
                                int32_t n, int32_t a_offset, int32_t accumulate) {
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
  const int8_t *b1 = b + b_row, *b2 = b + 2 * b_row, *b3 = b + 3 * b_row;
  if (a_offset != 0 || (((uintptr_t)a | (uintptr_t)b | (uintptr_t)b_row) & 3)) {
    gap8_dot4_i8_rows(acc, a, b, b_row, n, a_offset, accumulate);
    return;
  }
  for (; i + 4 <= n; i += 4) {
    gap8_v4s x = *(const gap8_v4s *)(a + i);
    s0 = __builtin_pulp_sdotsp4(x, *(const gap8_v4s *)(b + i), s0);
    s1 = __builtin_pulp_sdotsp4(x, *(const gap8_v4s *)(b1 + i), s1);
    s2 = __builtin_pulp_sdotsp4(x, *(const gap8_v4s *)(b2 + i), s2);
    s3 = __builtin_pulp_sdotsp4(x, *(const gap8_v4s *)(b3 + i), s3);
  }
  s0 += gap8_dot_i8_scalar(a + i, 1, b + i, 1, n - i, 0);
  s1 += gap8_dot_i8_scalar(a + i, 1, b1 + i, 1, n - i, 0);
  s2 += gap8_dot_i8_scalar(a + i, 1, b2 + i, 1, n - i, 0);
  s3 += gap8_dot_i8_scalar(a + i, 1, b3 + i, 1, n - i, 0);
  if (accumulate) {
    s0 += acc[0]; s1 += acc[1]; s2 += acc[2]; s3 += acc[3];
  }
  acc[0] = s0; acc[1] = s1; acc[2] = s2; acc[3] = s3;
}
#else
/* portable: the strided version with a step of 1 */
static inline void gap8_dot4_i8(int32_t *acc, const int8_t *a, const int8_t *b, int32_t b_row,
                                int32_t n, int32_t a_offset, int32_t accumulate) {
  gap8_dot4s_i8(acc, a, 1, b, b_row, n, a_offset, accumulate);
}
#endif

/* 4 x 2 dot products: acc[2k + p] = [acc[2k + p] +] sum over i < n of (a[p * a_pix + i] +
 * a_offset) * b[k * b_row + i], k < 4, p < 2 (a 1x1 reduction blocked over 4 output channels
 * and 2 pixels) */
static inline void gap8_dot4x2_i8_rows(int32_t *acc, const int8_t *a, int32_t a_pix,
                                       const int8_t *b, int32_t b_row, int32_t n,
                                       int32_t a_offset, int32_t accumulate) {
  for (int32_t k = 0; k < 4; ++k)
    for (int32_t p = 0; p < 2; ++p) {
      int32_t s = gap8_dot_i8(a + p * a_pix, 1, b + k * b_row, 1, n, a_offset);
      acc[2 * k + p] = accumulate ? acc[2 * k + p] + s : s;
    }
}

/* 4 x 2 dot products over a strided a: acc[2k + p] = [acc[2k + p] +] sum over i < n of
 * (a[i * a_step + p * a_pix] + a_offset) * b[k * b_row + i], k < 4, p < 2 (a 1x1 reduction
 * over a CHW tile, channels a_step bytes apart, blocked over 4 output channels and 2 pixels).
 * Plain C on every back end: per step the two pixels' bytes loaded once for the four rows,
 * each weight byte once for the two pixels. */
static inline void gap8_dot4x2s_i8(int32_t *acc, const int8_t *a, int32_t a_step,
                                   int32_t a_pix, const int8_t *b, int32_t b_row, int32_t n,
                                   int32_t a_offset, int32_t accumulate) {
  int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
  for (; n > 0; --n, a += a_step, ++b) {
    int32_t x0 = (int32_t)a[0] + a_offset, x1 = (int32_t)a[a_pix] + a_offset, w;
    w = b[0]; s00 += x0 * w; s01 += x1 * w;
    w = b[b_row]; s10 += x0 * w; s11 += x1 * w;
    w = b[2 * b_row]; s20 += x0 * w; s21 += x1 * w;
    w = b[3 * b_row]; s30 += x0 * w; s31 += x1 * w;
  }
  if (accumulate) {
    s00 += acc[0]; s01 += acc[1]; s10 += acc[2]; s11 += acc[3];
    s20 += acc[4]; s21 += acc[5]; s30 += acc[6]; s31 += acc[7];
  }
  acc[0] = s00; acc[1] = s01; acc[2] = s10; acc[3] = s11;
  acc[4] = s20; acc[5] = s21; acc[6] = s30; acc[7] = s31;
}

#if defined(GAP8_PULPRT)
/* contiguous word-aligned rows, no offset: one hardware loop; per word, 2 activation and 4
 * weight p.lw (two weight registers reused, each load's first use two instructions later) and
 * 8 pv.sdotsp.b: 14 instructions for 32 MACs */
static inline void gap8_dot4x2_i8(int32_t *acc, const int8_t *a, int32_t a_pix,
                                  const int8_t *b, int32_t b_row, int32_t n, int32_t a_offset,
                                  int32_t accumulate) {
  int32_t words = n >> 2;
  int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
  const int8_t *a0 = a, *a1 = a + a_pix;
  const int8_t *b0 = b, *b1 = b + b_row, *b2 = b + 2 * b_row, *b3 = b + 3 * b_row;
  if (a_offset != 0 || words == 0 ||
      (((uintptr_t)a | (uintptr_t)a_pix | (uintptr_t)b | (uintptr_t)b_row) & 3)) {
    gap8_dot4x2_i8_rows(acc, a, a_pix, b, b_row, n, a_offset, accumulate);
    return;
  }
  __asm__ volatile(".option push\n.option norelax\n"
                   ".insn i 0x7B, 4, x0, %[cnt], 28\n"          /* lp.setup x0, cnt, +56 */
                   ".insn i 0x0B, 2, t0, %[a0], 4\n"            /* p.lw t0, 4(a0!) */
                   ".insn i 0x0B, 2, t1, %[a1], 4\n"
                   ".insn i 0x0B, 2, t2, %[b0], 4\n"
                   ".insn i 0x0B, 2, t3, %[b1], 4\n"
                   ".insn r 0x57, 1, 0x5C, %[s00], t0, t2\n"     /* pv.sdotsp.b */
                   ".insn r 0x57, 1, 0x5C, %[s01], t1, t2\n"
                   ".insn i 0x0B, 2, t2, %[b2], 4\n"
                   ".insn r 0x57, 1, 0x5C, %[s10], t0, t3\n"
                   ".insn r 0x57, 1, 0x5C, %[s11], t1, t3\n"
                   ".insn i 0x0B, 2, t3, %[b3], 4\n"
                   ".insn r 0x57, 1, 0x5C, %[s20], t0, t2\n"
                   ".insn r 0x57, 1, 0x5C, %[s21], t1, t2\n"
                   ".insn r 0x57, 1, 0x5C, %[s30], t0, t3\n"
                   ".insn r 0x57, 1, 0x5C, %[s31], t1, t3\n"
                   ".option pop\n"
                   : [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11),
                     [s20] "+r"(s20), [s21] "+r"(s21), [s30] "+r"(s30), [s31] "+r"(s31),
                     [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [b2] "+r"(b2),
                     [b3] "+r"(b3)
                   : [cnt] "r"(words) : "t0", "t1", "t2", "t3", "memory");
  if (n & 3) {
    int32_t t = n & 3;
    s00 += gap8_dot_i8_scalar(a0, 1, b0, 1, t, 0); s01 += gap8_dot_i8_scalar(a1, 1, b0, 1, t, 0);
    s10 += gap8_dot_i8_scalar(a0, 1, b1, 1, t, 0); s11 += gap8_dot_i8_scalar(a1, 1, b1, 1, t, 0);
    s20 += gap8_dot_i8_scalar(a0, 1, b2, 1, t, 0); s21 += gap8_dot_i8_scalar(a1, 1, b2, 1, t, 0);
    s30 += gap8_dot_i8_scalar(a0, 1, b3, 1, t, 0); s31 += gap8_dot_i8_scalar(a1, 1, b3, 1, t, 0);
  }
  if (accumulate) {
    s00 += acc[0]; s01 += acc[1]; s10 += acc[2]; s11 += acc[3];
    s20 += acc[4]; s21 += acc[5]; s30 += acc[6]; s31 += acc[7];
  }
  acc[0] = s00; acc[1] = s01; acc[2] = s10; acc[3] = s11;
  acc[4] = s20; acc[5] = s21; acc[6] = s30; acc[7] = s31;
}
#elif defined(GAP8_PMSIS)
static inline void gap8_dot4x2_i8(int32_t *acc, const int8_t *a, int32_t a_pix,
                                  const int8_t *b, int32_t b_row, int32_t n, int32_t a_offset,
                                  int32_t accumulate) {
  if (a_offset != 0 || (((uintptr_t)a | (uintptr_t)a_pix | (uintptr_t)b | (uintptr_t)b_row) & 3)) {
    gap8_dot4x2_i8_rows(acc, a, a_pix, b, b_row, n, a_offset, accumulate);
    return;
  }
  int32_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0}, i = 0;
  for (; i + 4 <= n; i += 4) {
    gap8_v4s x0 = *(const gap8_v4s *)(a + i), x1 = *(const gap8_v4s *)(a + a_pix + i);
    for (int32_t k = 0; k < 4; ++k) {
      gap8_v4s w = *(const gap8_v4s *)(b + k * b_row + i);
      s[2 * k] = __builtin_pulp_sdotsp4(x0, w, s[2 * k]);
      s[2 * k + 1] = __builtin_pulp_sdotsp4(x1, w, s[2 * k + 1]);
    }
  }
  for (int32_t k = 0; k < 4; ++k)
    for (int32_t p = 0; p < 2; ++p) {
      int32_t v = s[2 * k + p] + gap8_dot_i8_scalar(a + p * a_pix + i, 1, b + k * b_row + i, 1,
                                                    n - i, 0);
      acc[2 * k + p] = accumulate ? acc[2 * k + p] + v : v;
    }
}
#else
/* portable: the strided version with a step of 1 */
static inline void gap8_dot4x2_i8(int32_t *acc, const int8_t *a, int32_t a_pix,
                                  const int8_t *b, int32_t b_row, int32_t n, int32_t a_offset,
                                  int32_t accumulate) {
  gap8_dot4x2s_i8(acc, a, 1, a_pix, b, b_row, n, a_offset, accumulate);
}
#endif

/* a 3x3 tap window: sum over r, s < 3 of (a[r * a_row + s] + a_offset) * b[3 * r + s] */
static inline int32_t gap8_dw3x3_i8_scalar(const int8_t *a, int32_t a_row, const int8_t *b,
                                           int32_t a_offset) {
  int32_t acc = 0;
  for (int32_t r = 0; r < 3; ++r, a += a_row, b += 3)
    for (int32_t s = 0; s < 3; ++s)
      acc += ((int32_t)a[s] + a_offset) * (int32_t)b[s];
  return acc;
}

#if defined(GAP8_PULPRT)
/* one word load per row of each operand (unaligned: the core splits it), the fourth weight
 * byte masked to 0 (so the fourth activation byte, the next column or one byte past the tile
 * in L1, adds nothing), three pv.sdotsp.b */
static inline int32_t gap8_lw_any(const int8_t *p) {
  int32_t v;
  __asm__ volatile("lw %0, 0(%1)" : "=r"(v) : "r"(p) : "memory");
  return v;
}
static inline int32_t gap8_dw3x3_i8(const int8_t *a, int32_t a_row, const int8_t *b,
                                    int32_t a_offset) {
  int32_t acc = 0;
  const int32_t m = 0x00FFFFFF;
  if (a_offset != 0) return gap8_dw3x3_i8_scalar(a, a_row, b, a_offset);
  int32_t x0 = gap8_lw_any(a), x1 = gap8_lw_any(a + a_row), x2 = gap8_lw_any(a + 2 * a_row);
  int32_t w0 = gap8_lw_any(b) & m, w1 = gap8_lw_any(b + 3) & m, w2 = gap8_lw_any(b + 6) & m;
  __asm__(".insn r 0x57, 1, 0x5C, %[acc], %[x0], %[w0]\n"
          ".insn r 0x57, 1, 0x5C, %[acc], %[x1], %[w1]\n"
          ".insn r 0x57, 1, 0x5C, %[acc], %[x2], %[w2]\n"
          : [acc] "+r"(acc) : [x0] "r"(x0), [x1] "r"(x1), [x2] "r"(x2), [w0] "r"(w0),
            [w1] "r"(w1), [w2] "r"(w2));
  return acc;
}
#else
/* portable: the nine taps written out (constant offsets from a and b once inlined) */
static inline int32_t gap8_dw3x3_i8(const int8_t *a, int32_t a_row, const int8_t *b,
                                    int32_t a_offset) {
  const int8_t *a1 = a + a_row, *a2 = a1 + a_row;
  return ((int32_t)a[0] + a_offset) * b[0] + ((int32_t)a[1] + a_offset) * b[1] +
         ((int32_t)a[2] + a_offset) * b[2] + ((int32_t)a1[0] + a_offset) * b[3] +
         ((int32_t)a1[1] + a_offset) * b[4] + ((int32_t)a1[2] + a_offset) * b[5] +
         ((int32_t)a2[0] + a_offset) * b[6] + ((int32_t)a2[1] + a_offset) * b[7] +
         ((int32_t)a2[2] + a_offset) * b[8];
}
#endif

/* the same 3x3 tap window, the weights also passed as values (b[0] .. b[8]): the emitted
 * kernels bind them before the pixel loops (emitc/hoist.py), so plain C keeps them in
 * registers; the cluster's version reads them as three words through b (the values unused) */
#if defined(GAP8_PULPRT)
static inline int32_t gap8_dw3x3w_i8(const int8_t *a, int32_t a_row, const int8_t *b,
                                     int32_t w0, int32_t w1, int32_t w2, int32_t w3, int32_t w4,
                                     int32_t w5, int32_t w6, int32_t w7, int32_t w8,
                                     int32_t a_offset) {
  (void)w0; (void)w1; (void)w2; (void)w3; (void)w4; (void)w5; (void)w6; (void)w7; (void)w8;
  return gap8_dw3x3_i8(a, a_row, b, a_offset);
}
#else
static inline int32_t gap8_dw3x3w_i8(const int8_t *a, int32_t a_row, const int8_t *b,
                                     int32_t w0, int32_t w1, int32_t w2, int32_t w3, int32_t w4,
                                     int32_t w5, int32_t w6, int32_t w7, int32_t w8,
                                     int32_t a_offset) {
  const int8_t *a1 = a + a_row, *a2 = a1 + a_row;
  (void)b;
  return ((int32_t)a[0] + a_offset) * w0 + ((int32_t)a[1] + a_offset) * w1 +
         ((int32_t)a[2] + a_offset) * w2 + ((int32_t)a1[0] + a_offset) * w3 +
         ((int32_t)a1[1] + a_offset) * w4 + ((int32_t)a1[2] + a_offset) * w5 +
         ((int32_t)a2[0] + a_offset) * w6 + ((int32_t)a2[1] + a_offset) * w7 +
         ((int32_t)a2[2] + a_offset) * w8;
}
#endif

/* rows of contiguous taps: sum over r < rows, i < len of (a[r * a_row + i] + a_offset) *
 * b[r * b_row + i] (a kxk conv over an HWC tile, (o, kh, kw, i) weights: len = k * C) */
static inline int32_t gap8_rows_i8_scalar(const int8_t *a, int32_t a_row, const int8_t *b,
                                          int32_t b_row, int32_t rows, int32_t len,
                                          int32_t a_offset) {
  int32_t acc = 0;
  for (int32_t r = 0; r < rows; ++r, a += a_row, b += b_row)
    for (int32_t i = 0; i < len; ++i)
      acc += ((int32_t)a[i] + a_offset) * (int32_t)b[i];
  return acc;
}

#if defined(GAP8_PULPRT)
/* per row, (unaligned) word loads of both operands and pv.sdotsp.b; the last partial word's
 * weight bytes past the row masked to 0 (the activation bytes there, in L1, add nothing) */
static inline int32_t gap8_rows_i8(const int8_t *a, int32_t a_row, const int8_t *b,
                                   int32_t b_row, int32_t rows, int32_t len, int32_t a_offset) {
  int32_t acc = 0, words = len >> 2, tail = len & 3;
  const int32_t mask = tail ? (int32_t)((1u << (8 * tail)) - 1) : 0;
  if (a_offset != 0) return gap8_rows_i8_scalar(a, a_row, b, b_row, rows, len, a_offset);
  for (int32_t r = 0; r < rows; ++r, a += a_row, b += b_row) {
    int32_t i = 0;
    for (; i < words; ++i) {
      int32_t x = gap8_lw_any(a + 4 * i), w = gap8_lw_any(b + 4 * i);
      __asm__(".insn r 0x57, 1, 0x5C, %[acc], %[x], %[w]\n" : [acc] "+r"(acc)
              : [x] "r"(x), [w] "r"(w));
    }
    if (tail) {
      int32_t x = gap8_lw_any(a + 4 * i), w = gap8_lw_any(b + 4 * i) & mask;
      __asm__(".insn r 0x57, 1, 0x5C, %[acc], %[x], %[w]\n" : [acc] "+r"(acc)
              : [x] "r"(x), [w] "r"(w));
    }
  }
  return acc;
}
#else
#define gap8_rows_i8 gap8_rows_i8_scalar
#endif
/* four output channels of one pixel over rows of contiguous taps: acc[k] = [acc[k] +] sum over
 * r < rows, i < len of (a[r * a_row + i] + a_offset) * b[k * b_oc + r * b_row + i], k < 4 (a
 * kxk conv over an HWC tile blocked over 4 output channels, (o, kh, kw * C padded to 4) weights:
 * ``kernels/conv.py:hwc_weights``) */
static inline void gap8_rows4_i8_each(int32_t *acc, const int8_t *a, int32_t a_row,
                                      const int8_t *b, int32_t b_oc, int32_t b_row,
                                      int32_t rows, int32_t len, int32_t a_offset,
                                      int32_t accumulate) {
  for (int32_t k = 0; k < 4; ++k) {
    int32_t s = gap8_rows_i8(a, a_row, b + k * b_oc, b_row, rows, len, a_offset);
    acc[k] = accumulate ? acc[k] + s : s;
  }
}

#if defined(GAP8_PULPRT)
/* weights word-aligned, each row zero-padded to whole words (b_row = 4 * ceil(len / 4), the
 * padding 0: ``kernels/conv.py:hwc_weights``; the activation bytes read past a row then add
 * nothing), channels b_oc bytes apart. Two nested hardware loops: over the rows (moving the
 * activation pointer to the next row) and over a row's words (p.lw of the activation word,
 * unaligned, and of the 4 channels' next weight words, 4 pv.sdotsp.b; each load's first use
 * at least one instruction later). Compact on purpose: pulp-open's per-core L0 instruction
 * cache is 512 B (8 sets x 4 ways x 16 B); the stem's fully unrolled version with its
 * requantization did not fit (GVSOC: 2x the instruction-miss cycles). The stem's 3 x 9 taps:
 * 2 + 3 x (2 + 3 x 9) instructions for 108 MACs. */
static inline void gap8_rows4_i8(int32_t *acc, const int8_t *a, int32_t a_row, const int8_t *b,
                                 int32_t b_oc, int32_t b_row, int32_t rows, int32_t len,
                                 int32_t a_offset, int32_t accumulate) {
  const int32_t words = (len + 3) >> 2, a_next = a_row - 4 * words;
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, x, v0, v1;
  const int8_t *w0 = b, *w1 = b + b_oc, *w2 = b + 2 * b_oc, *w3 = b + 3 * b_oc;
  if (a_offset != 0 || rows <= 0 || len <= 0 || b_row != 4 * words ||
      (((uintptr_t)b | (uintptr_t)b_oc) & 3)) {
    gap8_rows4_i8_each(acc, a, a_row, b, b_oc, b_row, rows, len, a_offset, accumulate);
    return;
  }
  __asm__ volatile(".option push\n.option norelax\n.option norvc\n"
                   ".insn i 0x7B, 4, x1, %[rows], 22\n"      /* lp.setup x1, rows, +44 */
                   ".insn i 0x7B, 4, x0, %[words], 18\n"     /* lp.setup x0, words, +36 */
                   ".insn i 0x0B, 2, %[x], %[pa], 4\n"       /* p.lw x, 4(pa!) */
                   ".insn i 0x0B, 2, %[v0], %[w0], 4\n"
                   ".insn i 0x0B, 2, %[v1], %[w1], 4\n"
                   ".insn r 0x57, 1, 0x5C, %[s0], %[x], %[v0]\n" /* pv.sdotsp.b s0, x, v0 */
                   ".insn i 0x0B, 2, %[v0], %[w2], 4\n"
                   ".insn r 0x57, 1, 0x5C, %[s1], %[x], %[v1]\n"
                   ".insn i 0x0B, 2, %[v1], %[w3], 4\n"
                   ".insn r 0x57, 1, 0x5C, %[s2], %[x], %[v0]\n"
                   ".insn r 0x57, 1, 0x5C, %[s3], %[x], %[v1]\n" /* end of the word loop */
                   "add %[pa], %[pa], %[next]\n"              /* end of the row loop */
                   ".option pop\n"
                   : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [pa] "+r"(a),
                     [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [w3] "+r"(w3), [x] "=&r"(x),
                     [v0] "=&r"(v0), [v1] "=&r"(v1)
                   : [rows] "r"(rows), [words] "r"(words), [next] "r"(a_next) : "memory");
  if (accumulate) {
    s0 += acc[0]; s1 += acc[1]; s2 += acc[2]; s3 += acc[3];
  }
  acc[0] = s0; acc[1] = s1; acc[2] = s2; acc[3] = s3;
}
#else
/* portable: each activation byte loaded once for the four channels, the channels' weight
 * bytes at constant offsets from one stepped pointer */
static inline void gap8_rows4_i8(int32_t *acc, const int8_t *a, int32_t a_row, const int8_t *b,
                                 int32_t b_oc, int32_t b_row, int32_t rows, int32_t len,
                                 int32_t a_offset, int32_t accumulate) {
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int32_t r = 0; r < rows; ++r, a += a_row, b += b_row) {
    const int8_t *x = a, *w = b;
    for (int32_t i = 0; i < len; ++i, ++x, ++w) {
      int32_t v = (int32_t)*x + a_offset;
      s0 += v * w[0]; s1 += v * w[b_oc]; s2 += v * w[2 * b_oc]; s3 += v * w[3 * b_oc];
    }
  }
  if (accumulate) {
    s0 += acc[0]; s1 += acc[1]; s2 += acc[2]; s3 += acc[3];
  }
  acc[0] = s0; acc[1] = s1; acc[2] = s2; acc[3] = s3;
}
#endif
#endif
