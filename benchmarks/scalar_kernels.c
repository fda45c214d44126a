/* Hand-written scalar int8 kernels, the yardstick of benchmarks/rv32_instructions.py: a 3x3
 * depthwise conv (CHW, pad 1, stride 1) and a 1x1 pointwise conv (CHW), int32 accumulation,
 * fixed-point requantization to int8 (the network's: high word of acc * M, rounding shift,
 * zero point, clamp). Written the way one writes them by hand for a scalar core:
 *   - the input zero point folded into the bias (bias' = bias + zp_in * sum(w)), so the MAC
 *     is x * w; the DW pads with -zp_in (which then adds nothing);
 *   - DW: per channel the 9 weights and the requantization parameters in locals; per output
 *     row one stepped pointer and a sliding 3x3 window (3 new loads per output);
 *   - PW: 4 output channels x 2 pixels per block, each activation byte loaded once for the
 *     four channels and each weight byte once for the two pixels, pointers stepped.
 * Built with the same rv32imc flags as the network and run on QEMU; prints the instructions
 * (minstret) and MACs of each (the DW's count includes building its padded input, as a DW
 * layer does), and whether both equal a naive reference. */
#include <stdint.h>
#include <stdio.h>

#define C 32
#define H 24
#define W 24
#define CO 64
#define ZP_IN 1  /* the DW input's zero point: real value (x + ZP_IN) */
#define ZP_MID 3 /* the PW input's zero point */

static int8_t x[C][H][W], xpad[C][H + 2][W + 2], wdw[C][3][3], ydw[C][H][W], wpw[CO][C];
static int8_t ypw[CO][H][W], rdw[C][H][W], rpw[CO][H][W];
static int32_t bias_dw[C], bias_pw[CO], fold_dw[C], fold_pw[CO], mult[CO], shift[CO];

static uint32_t instret(void) {
  uint32_t v;
  __asm__ volatile(".option push\n.option arch, +zicsr\ncsrr %0, minstret\n.option pop" : "=r"(v));
  return v;
}

static inline int8_t requant(int32_t acc, int32_t m, int32_t round, int32_t k, int32_t zp) {
  int32_t v = (int32_t)(((int64_t)acc * m) >> 32);
  v = ((v + round) >> k) + zp;
  return (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
}

/* the pad loops stay loops (not calls of picolibc's byte-at-a-time memset / memcpy) */
__attribute__((noinline, optimize("no-tree-loop-distribute-patterns")))
static void dw3x3(void) {
  for (int c = 0; c < C; ++c) { /* the padded input: border -ZP_IN, interior copied */
    for (int j = 0; j < W + 2; ++j) xpad[c][0][j] = xpad[c][H + 1][j] = -ZP_IN;
    for (int i = 0; i < H; ++i) {
      const int8_t *src = x[c][i];
      int8_t *dst = xpad[c][i + 1];
      dst[0] = dst[W + 1] = -ZP_IN;
      for (int j = 0; j < W; j += 2) {
        int8_t v0 = src[j], v1 = src[j + 1];
        dst[j + 1] = v0; dst[j + 2] = v1;
      }
    }
  }
  for (int c = 0; c < C; ++c) {
    const int32_t w0 = wdw[c][0][0], w1 = wdw[c][0][1], w2 = wdw[c][0][2];
    const int32_t w3 = wdw[c][1][0], w4 = wdw[c][1][1], w5 = wdw[c][1][2];
    const int32_t w6 = wdw[c][2][0], w7 = wdw[c][2][1], w8 = wdw[c][2][2];
    const int32_t b = fold_dw[c], m = mult[c], k = shift[c], round = 1 << (k - 1);
    for (int i = 0; i < H; ++i) {
      const int8_t *r = xpad[c][i]; /* the window's top row; the next rows W + 2 bytes on */
      int8_t *out = ydw[c][i], *end = out + W;
      int32_t a0 = r[0], a1 = r[1], b0 = r[W + 2], b1 = r[W + 3], c0 = r[2 * W + 4];
      int32_t c1 = r[2 * W + 5];
      for (r += 2; out < end; ++out, ++r) {
        int32_t a2 = r[0], b2 = r[W + 2], c2 = r[2 * W + 4];
        int32_t acc = b + a0 * w0 + a1 * w1 + a2 * w2 + b0 * w3 + b1 * w4 + b2 * w5 +
                      c0 * w6 + c1 * w7 + c2 * w8;
        *out = requant(acc, m, round, k, -ZP_MID);
        a0 = a1; a1 = a2; b0 = b1; b1 = b2; c0 = c1; c1 = c2;
      }
    }
  }
}

__attribute__((noinline)) static void pw(void) {
  for (int o = 0; o < CO; o += 4)
    for (int p = 0; p < H * W; p += 2) {
      const int8_t *a = (const int8_t *)ydw + p, *w = wpw[o];
      int32_t s00 = fold_pw[o], s01 = s00, s10 = fold_pw[o + 1], s11 = s10;
      int32_t s20 = fold_pw[o + 2], s21 = s20, s30 = fold_pw[o + 3], s31 = s30;
      for (const int8_t *wend = w + C; w < wend; ++w, a += H * W) {
        int32_t x0 = a[0], x1 = a[1], v;
        v = w[0]; s00 += x0 * v; s01 += x1 * v;
        v = w[C]; s10 += x0 * v; s11 += x1 * v;
        v = w[2 * C]; s20 += x0 * v; s21 += x1 * v;
        v = w[3 * C]; s30 += x0 * v; s31 += x1 * v;
      }
      int8_t *y = (int8_t *)ypw + o * H * W + p;
      const int32_t *m = &mult[o], *k = &shift[o];
      y[0] = requant(s00, m[0], 1 << (k[0] - 1), k[0], 5);
      y[1] = requant(s01, m[0], 1 << (k[0] - 1), k[0], 5);
      y[H * W] = requant(s10, m[1], 1 << (k[1] - 1), k[1], 5);
      y[H * W + 1] = requant(s11, m[1], 1 << (k[1] - 1), k[1], 5);
      y[2 * H * W] = requant(s20, m[2], 1 << (k[2] - 1), k[2], 5);
      y[2 * H * W + 1] = requant(s21, m[2], 1 << (k[2] - 1), k[2], 5);
      y[3 * H * W] = requant(s30, m[3], 1 << (k[3] - 1), k[3], 5);
      y[3 * H * W + 1] = requant(s31, m[3], 1 << (k[3] - 1), k[3], 5);
    }
}

/* the naive reference: zero points not folded, bounds tested per tap */
static int reference_equal(void) {
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        int32_t acc = bias_dw[c];
        for (int ki = 0; ki < 3; ++ki)
          for (int kj = 0; kj < 3; ++kj) {
            int ii = i + ki - 1, jj = j + kj - 1;
            if (ii >= 0 && ii < H && jj >= 0 && jj < W)
              acc += (x[c][ii][jj] + ZP_IN) * wdw[c][ki][kj];
          }
        rdw[c][i][j] = requant(acc, mult[c], 1 << (shift[c] - 1), shift[c], -ZP_MID);
      }
  for (int o = 0; o < CO; ++o)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        int32_t acc = bias_pw[o];
        for (int c = 0; c < C; ++c) acc += (rdw[c][i][j] + ZP_MID) * wpw[o][c];
        rpw[o][i][j] = requant(acc, mult[o], 1 << (shift[o] - 1), shift[o], 5);
      }
  for (int c = 0; c < C; ++c) for (int i = 0; i < H; ++i) for (int j = 0; j < W; ++j)
    if (rdw[c][i][j] != ydw[c][i][j]) return 0;
  for (int o = 0; o < CO; ++o) for (int i = 0; i < H; ++i) for (int j = 0; j < W; ++j)
    if (rpw[o][i][j] != ypw[o][i][j]) return 0;
  return 1;
}

int main(void) {
  uint32_t s = 1;
  for (int c = 0; c < C; ++c) for (int i = 0; i < H; ++i) for (int j = 0; j < W; ++j)
    x[c][i][j] = (int8_t)((s = s * 1103515245u + 12345u) >> 24);
  for (int c = 0; c < C; ++c) {
    bias_dw[c] = 100 * c - 1000;
    fold_dw[c] = bias_dw[c];
    for (int k = 0; k < 9; ++k) {
      wdw[c][k / 3][k % 3] = (int8_t)((s = s * 1103515245u + 12345u) >> 24);
      fold_dw[c] += ZP_IN * wdw[c][k / 3][k % 3];
    }
  }
  for (int o = 0; o < CO; ++o) {
    mult[o] = (int32_t)(1u << 30) + o * 12345; shift[o] = 6 + o % 3;
    bias_pw[o] = 50 * o - 1500;
    fold_pw[o] = bias_pw[o];
    for (int c = 0; c < C; ++c) {
      wpw[o][c] = (int8_t)((s = s * 1103515245u + 12345u) >> 24);
      fold_pw[o] += ZP_MID * wpw[o][c];
    }
  }
  uint32_t t0 = instret(); dw3x3(); uint32_t t1 = instret(); pw(); uint32_t t2 = instret();
  printf("dw3x3 %lu %lu\npw %lu %lu\nreference_equal %d\n", (unsigned long)(t1 - t0),
         (unsigned long)(C * H * W * 9), (unsigned long)(t2 - t1),
         (unsigned long)(CO * H * W * C), reference_equal());
  return 0;
}
