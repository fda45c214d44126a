/* Board entry for the GAP SDK flow (make all run platform=board|gvsoc): opens the cluster and
 * runs the network on it. Input: zeros (replace with your sensor / readfs data). */
#include "pmsis.h"
#include "network.h"

PI_L2 static int8_t in_buf[GAP8_IN0_BYTES];
PI_L2 static int8_t out_buf[GAP8_OUT0_BYTES];

static void cluster_entry(void *arg) {
  (void)arg;
  gap8_network_run((const void *)in_buf, (void *)out_buf);
}

static void start(void) {
  struct pi_device cluster;
  struct pi_cluster_conf conf;
  struct pi_cluster_task task = {0};
  pi_cluster_conf_init(&conf);
  pi_open_from_conf(&cluster, &conf);
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
  printf("gap8 network: %d cycles, out[0] = %d\n", (int)pi_perf_read(PI_PERF_CYCLES), out_buf[0]);
  pi_cluster_close(&cluster);
  pmsis_exit(0);
}

int main(void) { return pmsis_kickoff((void *)start); }
