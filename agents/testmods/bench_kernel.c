/* bench_kernel.c — benchmark agent: event kind 1 runs the compute kernel
 * (payload: u32 repetitions), kind 2 calls cohort_now() N times (payload:
 * u32 N), kind 3 returns at once. */
#include "cohort/abi.h"
#include "kernel.h"

static uint8_t buf[64];

__attribute__((export_name("cohort_alloc"))) void *cohort_alloc(uint32_t n) {
  return n <= sizeof buf ? buf : 0;
}

__attribute__((export_name("cohort_on_event"))) int32_t cohort_on_event(
    uint32_t kind, const uint8_t *p, uint32_t n) {
  uint32_t arg = 0, i;
  int64_t acc = 0;
  if (n >= 4) arg = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
  if (kind == 1) return (int32_t)kernel_run(arg);
  if (kind == 2) {
    for (i = 0; i < arg; i++) acc += cohort_now();
    return (int32_t)acc;
  }
  return 0;
}
