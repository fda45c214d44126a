/* Host / emulator runner: gap8_in<i>.bin -> gap8_network_run -> gap8_out<i>.bin, one file per
 * input and output in the entry's order (files in the current directory; on QEMU through
 * picolibc semihosting), counters -> gap8_counters.txt. */
#include <stdio.h>
#include <stdint.h>
#include "network.h"
#include "gap8_dma.h"

/* every input (output) back to back, each at a multiple of 8 bytes */
static uint64_t in_buf[(GAP8_IN_TOTAL_BYTES + 7) / 8];
static uint64_t out_buf[(GAP8_OUT_TOTAL_BYTES + 7) / 8];
#ifdef GAP8_INSTRUMENT
extern gap8_counters_t gap8_counters[];
#endif

static int read_file(const char *name, void *buf, uint32_t bytes) {
  FILE *f = fopen(name, "rb");
  if (!f) return 1;
  int bad = fread(buf, 1, bytes, f) != bytes;
  fclose(f);
  return bad;
}

static int write_file(const char *name, const void *buf, uint32_t bytes) {
  FILE *f = fopen(name, "wb");
  if (!f) return 1;
  int bad = fwrite(buf, 1, bytes, f) != bytes;
  return fclose(f) != 0 || bad;
}

int main(void) {
  const void *in[GAP8_NB_INPUTS];
  void *out[GAP8_NB_OUTPUTS];
  char name[32];
  uint32_t off = 0;
  for (int i = 0; i < GAP8_NB_INPUTS; ++i) {
    in[i] = (int8_t *)in_buf + off;
    snprintf(name, sizeof name, "gap8_in%d.bin", i);
    if (read_file(name, (int8_t *)in_buf + off, gap8_in_bytes[i])) {
      printf("gap8: no input %d\n", i);
      return 3;
    }
    off += (gap8_in_bytes[i] + 7) / 8 * 8;
  }
  off = 0;
  for (int i = 0; i < GAP8_NB_OUTPUTS; ++i) {
    out[i] = (int8_t *)out_buf + off;
    off += (gap8_out_bytes[i] + 7) / 8 * 8;
  }
  if (gap8_network_run_arrays(in, out) != 0) return 4;
  for (int i = 0; i < GAP8_NB_OUTPUTS; ++i) {
    snprintf(name, sizeof name, "gap8_out%d.bin", i);
    if (write_file(name, out[i], gap8_out_bytes[i])) return 5;
  }
#ifdef GAP8_INSTRUMENT
  FILE *f = fopen("gap8_counters.txt", "w");
  if (!f) return 6;
  for (int i = 0; i < GAP8_NB_LAYERS; ++i) {
    gap8_counters_t *c = &gap8_counters[i];
    fprintf(f, "%d %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu\n", i,
            (unsigned long)c->bytes[0], (unsigned long)c->bytes[1], (unsigned long)c->bytes[2],
            (unsigned long)c->transfers[0], (unsigned long)c->transfers[1],
            (unsigned long)c->transfers[2], (unsigned long)c->macs, (unsigned long)c->tiles,
            (unsigned long)c->instret, (unsigned long)c->dma_instret,
            (unsigned long)c->bytes[GAP8_DIR_L2_TO_L3],
            (unsigned long)c->transfers[GAP8_DIR_L2_TO_L3]);
  }
  fclose(f);
#endif
  return 0;
}
