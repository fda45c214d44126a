/* GAP8 cluster API of the emitted network: fork over the cores, barrier, core id.
 * Kernels are written once for both back ends: a loop split over the cores is
 *   for (c = 0; c < gap8_team_size(); ++c) { core = gap8_core_of(c); <share of core> }
 *   gap8_barrier();
 * and every other statement runs under gap8_is_master() followed by gap8_barrier().
 * Portable back end (GAP8_PMSIS undefined): one caller runs the core ids 0..7 in turn.
 * PMSIS back end: the kernel runs on all cores (pi_cl_team_fork); each core takes its share.
 * pulp-runtime back end (GAP8_PULPRT, GVSOC): the same on all cores; the fork is a shared
 * function pointer between two barriers (gap8_pulprt.c). */
#ifndef GAP8_CLUSTER_H
#define GAP8_CLUSTER_H
#include <stdint.h>

#ifndef GAP8_NB_CORES
#define GAP8_NB_CORES 8
#endif
/* the first of core's iterations of a loop of n split over the cores: shares differ by one */
#define GAP8_SHARE_BEGIN(n, core) ((n) * (core) / GAP8_NB_CORES)

typedef void (*gap8_team_fn)(void *arg);

#ifdef GAP8_PMSIS
#include "pmsis.h"
static inline int32_t gap8_team_size(void) { return 1; }
static inline int32_t gap8_core_of(int32_t c) { (void)c; return (int32_t)pi_core_id(); }
static inline int32_t gap8_is_master(void) { return pi_core_id() == 0; }
static inline int32_t gap8_barrier(void) { pi_cl_team_barrier(); return 0; }
static inline void gap8_cluster_fork(gap8_team_fn fn, void *arg) {
  pi_cl_team_fork(GAP8_NB_CORES, fn, arg);
}
#elif defined(GAP8_PULPRT)
#include "pulp.h"
static inline int32_t gap8_team_size(void) { return 1; }
static inline int32_t gap8_core_of(int32_t c) { (void)c; return (int32_t)hal_core_id(); }
static inline int32_t gap8_is_master(void) { return hal_core_id() == 0; }
static inline int32_t gap8_barrier(void) { synch_barrier(); return 0; }
void gap8_cluster_fork(gap8_team_fn fn, void *arg);
#else
static inline int32_t gap8_team_size(void) { return GAP8_NB_CORES; }
static inline int32_t gap8_core_of(int32_t c) { return c; }
static inline int32_t gap8_is_master(void) { return 1; }
static inline int32_t gap8_barrier(void) { return 0; }
static inline void gap8_cluster_fork(gap8_team_fn fn, void *arg) { fn(arg); }
#endif

/* a kernel's stage ends (its barrier passed; stage 0: the kernel starts). Timed per layer on
 * GVSOC when built with GAP8_STAGE_TIMES (gap8_pulprt.c; benchmarks/stage_cycles.py), else
 * nothing. */
#if defined(GAP8_PULPRT) && defined(GAP8_STAGE_TIMES)
void gap8_stage_end(int32_t stage);
#define GAP8_STAGE_END(stage) gap8_stage_end(stage)
#else
#define GAP8_STAGE_END(stage) ((void)0)
#endif
#endif
