/* Hand-written scalar int8 kernels, the yardstick of benchmarks/rv32_instructions.py: a 3x3
 * depthwise conv (CHW, pad 1, stride 1) and a 1x1 pointwise conv (CHW), int32 accumulation,
 * fixed-point requantization to int8. Built with the same rv32imc flags as the network and run on
 * QEMU; prints the instructions (minstret) and MACs of each. */
#include <stdint.h>
#include <stdio.h>

#define C 32
#define H 24
#define W 24
#define CO 64

static int8_t x[C][H][W], wdw[C][3][3], ydw[C][H][W], wpw[CO][C], ypw[CO][H][W];
static int32_t bias[CO], mult[CO];

static uint32_t instret(void) {
  uint32_t v;
  __asm__ volatile(".option push\n.option arch, +zicsr\ncsrr %0, minstret\n.option pop" : "=r"(v));
  return v;
}

static inline int8_t requant(int32_t acc, int32_t m, int32_t zp) {
  int32_t v = (int32_t)(((int64_t)acc * m + (1LL << 30)) >> 31) + zp;
  return (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
}

static void dw3x3(void) {
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        int32_t acc = bias[c];
        for (int ki = 0; ki < 3; ++ki)
          for (int kj = 0; kj < 3; ++kj) {
            int ii = i + ki - 1, jj = j + kj - 1;
            if (ii >= 0 && ii < H && jj >= 0 && jj < W) acc += (x[c][ii][jj] + 1) * wdw[c][ki][kj];
          }
        ydw[c][i][j] = requant(acc, mult[c], -3);
      }
}

static void pw(void) {
  for (int o = 0; o < CO; ++o)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        int32_t acc = bias[o];
        for (int c = 0; c < C; ++c) acc += (ydw[c][i][j] + 3) * wpw[o][c];
        ypw[o][i][j] = requant(acc, mult[o], 5);
      }
}

int main(void) {
  uint32_t s = 1;
  for (int c = 0; c < C; ++c) for (int i = 0; i < H; ++i) for (int j = 0; j < W; ++j)
    x[c][i][j] = (int8_t)((s = s * 1103515245u + 12345u) >> 24);
  for (int c = 0; c < C; ++c) for (int k = 0; k < 9; ++k) wdw[c][k / 3][k % 3] = (int8_t)(c - k);
  for (int o = 0; o < CO; ++o) { mult[o] = 1 << 24; bias[o] = o; for (int c = 0; c < C; ++c) wpw[o][c] = (int8_t)(o ^ c); }
  uint32_t t0 = instret(); dw3x3(); uint32_t t1 = instret(); pw(); uint32_t t2 = instret();
  printf("dw3x3 %lu %lu\npw %lu %lu\ncheck %d\n", (unsigned long)(t1 - t0),
         (unsigned long)(C * H * W * 9), (unsigned long)(t2 - t1), (unsigned long)(CO * H * W * C),
         ypw[3][5][7] + ydw[1][2][3]);
  return 0;
}
