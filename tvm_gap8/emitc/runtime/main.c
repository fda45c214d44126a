/* Board entry for the GAP SDK flow (make all run platform=board|gvsoc): opens the cluster and
 * runs the network on it. Input: zeros (replace with your sensor / readfs data). */
#include "pmsis.h"
#include "network.h"

int32_t gap8_l3_load(void);

/* every input (output) back to back, each at a multiple of 8 bytes */
PI_L2 static int8_t in_buf[GAP8_IN_TOTAL_BYTES] __attribute__((aligned(8)));
PI_L2 static int8_t out_buf[GAP8_OUT_TOTAL_BYTES] __attribute__((aligned(8)));

static void cluster_entry(void *arg) {
  (void)arg;
  const void *in[GAP8_NB_INPUTS];
  void *out[GAP8_NB_OUTPUTS];
  uint32_t off = 0;
  for (int i = 0; i < GAP8_NB_INPUTS; off += (gap8_in_bytes[i] + 7) / 8 * 8, ++i)
    in[i] = in_buf + off;
  off = 0;
  for (int i = 0; i < GAP8_NB_OUTPUTS; off += (gap8_out_bytes[i] + 7) / 8 * 8, ++i)
    out[i] = out_buf + off;
  gap8_network_run_arrays(in, out);
}

static void start(void) {
  struct pi_device cluster;
  struct pi_cluster_conf conf;
  struct pi_cluster_task task = {0};
  pi_cluster_conf_init(&conf);
  pi_open_from_conf(&cluster, &conf);
  if (gap8_l3_load()) pmsis_exit(-2); /* the L3 weights: flash -> HyperRAM (gap8_pmsis.c) */
  if (pi_cluster_open(&cluster)) pmsis_exit(-1);
  pi_cluster_task(&task, cluster_entry, 0);
  /* the cluster stacks live in L1 beside the arena: the tiler's budget left exactly these */
  task.stack_size = GAP8_CLUSTER_STACK_BYTES;
  task.slave_stack_size = GAP8_CLUSTER_STACK_BYTES;
  pi_perf_conf(1 << PI_PERF_CYCLES);
  pi_perf_reset();
  pi_perf_start();
  pi_cluster_send_task_to_cl(&cluster, &task);
  pi_perf_stop();
  printf("gap8 network: %d cycles, out0[0] = %d\n", (int)pi_perf_read(PI_PERF_CYCLES), out_buf[0]);
  pi_cluster_close(&cluster);
  pmsis_exit(0);
}

int main(void) { return pmsis_kickoff((void *)start); }
