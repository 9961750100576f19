/* clock.c — the wall clock, for timings only (see util_int.h). */
#include <time.h>

#include "util_int.h"

double coh__wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
