/* The fixed-point requantization of an int32 accumulator to an output integer, every back end
 * (tvm_gap8/kernels/requant.py fixed_expr, the integer reference fixed_reference: the same
 * integers). Per output channel a multiplier M (int32) and a shift k, 33 <= k <= 63, fixed at
 * compile time so that M / 2^k is the real scale s_x * s_w / s_y:
 *   y = clamp(((acc * M + 2^(k-1)) >> k) + zp, lo, hi)     (>> an arithmetic shift: floor)
 * rounding half up (ties toward +infinity). With k >= 33 the rounding half has a zero low
 * word, so this is the high word of the 32x32-bit product (RV32 mulh), one add, one shift:
 *   h = (acc * M) >> 32;  y = clamp(((h + 2^(k-33)) >> (k-32)) + zp, lo, hi) */
/* Measured on GVSOC (pulp-open, MobileNetV1 x1.0 @128 int8): 20,396,748 cycles with this
 * function vs 20,202,213 with the same integers as TVM's inline expression (+0.96%: GCC lays out
 * the clamp's branches differently; a macro and other clamp forms measured the same or worse) --
 * kept for one definition of the rounding the reviewer reads. */
#ifndef GAP8_REQUANT_H
#define GAP8_REQUANT_H
#include <stdint.h>

static inline __attribute__((always_inline)) int32_t gap8_requantize(
    int32_t acc, int32_t mult, int32_t shift, int32_t zp, int32_t lo, int32_t hi) {
  int32_t high = (int32_t)(((int64_t)acc * (int64_t)mult) >> 32);
  int32_t y = ((high + (1 << ((shift - 1) & 31))) >> (shift & 31)) + zp;
  y = y < hi ? y : hi; /* min, then max: the order TVM's expression has */
  return y > lo ? y : lo;
}
#endif
