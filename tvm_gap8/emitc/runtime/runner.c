/* Host / emulator runner: gap8_in.bin -> gap8_network_run -> gap8_out.bin (files in the current
 * directory; on QEMU through picolibc semihosting), counters -> gap8_counters.txt. */
#include <stdio.h>
#include <stdint.h>
#include "network.h"
#include "gap8_dma.h"

static int8_t in_buf[GAP8_IN0_BYTES];
static int8_t out_buf[GAP8_OUT0_BYTES];
#ifdef GAP8_INSTRUMENT
extern gap8_counters_t gap8_counters[];
#endif

int main(void) {
  FILE *f = fopen("gap8_in.bin", "rb");
  if (!f || fread(in_buf, 1, sizeof in_buf, f) != sizeof in_buf) { puts("gap8: no input"); return 3; }
  fclose(f);
  if (gap8_network_run((const void *)in_buf, (void *)out_buf) != 0) return 4;
  f = fopen("gap8_out.bin", "wb");
  if (!f || fwrite(out_buf, 1, sizeof out_buf, f) != sizeof out_buf) return 5;
  fclose(f);
#ifdef GAP8_INSTRUMENT
  f = fopen("gap8_counters.txt", "w");
  if (!f) return 6;
  for (int i = 0; i < GAP8_NB_LAYERS; ++i) {
    gap8_counters_t *c = &gap8_counters[i];
    fprintf(f, "%d %lu %lu %lu %lu %lu %lu %lu %lu %lu\n", i,
            (unsigned long)c->bytes[0], (unsigned long)c->bytes[1], (unsigned long)c->bytes[2],
            (unsigned long)c->transfers[0], (unsigned long)c->transfers[1],
            (unsigned long)c->transfers[2], (unsigned long)c->macs, (unsigned long)c->tiles,
            (unsigned long)c->instret);
  }
  fclose(f);
#endif
  return 0;
}
