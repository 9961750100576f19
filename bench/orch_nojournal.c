/*
 * orch_nojournal.c — runs a scenario through coh_run() with no journal, to
 * isolate what the journal costs in bench/run_orch.sh's routing benchmark
 * (`cohort run` always journals).  Everything else is the same code path:
 * tick loop, worker pool, agent steps, commit, routing.
 *
 * Prints one JSON line: ticks, events, steps (deliveries), wall seconds of the
 * whole run, and loop_seconds (from the first event of tick 1 to the last
 * event, as bench/orch_util.py measures a journal), steps_per_s over it.
 *
 * usage: orch_nojournal SCENARIO.yaml CACHE_DIR WORKERS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/orch.h"

typedef struct span {
  int64_t first_us, last_us;
  int64_t steps;  /* "step" events: deliveries, not inits */
} span;

static void on_event(void *ud, const coh_jevent *ev) {
  span *s = ud;
  if (ev->tick >= 1 && s->first_us < 0) s->first_us = ev->wall_us;
  if (ev->wall_us > s->last_us) s->last_us = ev->wall_us;
  if (!strcmp(ev->kind, "step")) s->steps++;
}

int main(int argc, char **argv) {
  coh_scenario *sc;
  coh_run_options o = {0};
  coh_run_summary sum;
  coh_err err;
  span sp = {-1, 0, 0};
  double loop;
  if (argc != 4 || atoi(argv[3]) < 1) {
    fprintf(stderr, "usage: orch_nojournal SCENARIO.yaml CACHE_DIR WORKERS\n");
    return 2;
  }
  if (coh_scenario_load(argv[1], &sc, &err)) {
    fprintf(stderr, "orch_nojournal: %s\n", err.msg);
    return 1;
  }
  o.mode = COH_RUN_FRESH;
  o.cache_dir = argv[2];
  o.workers = atoi(argv[3]);
  o.on_event = on_event;
  o.ud = &sp;
  if (coh_run(sc, &o, &sum, &err)) {
    fprintf(stderr, "orch_nojournal: %s\n", err.msg);
    coh_scenario_free(sc);
    return 1;
  }
  loop = (double)(sp.last_us - sp.first_us) / 1e6;
  printf("{\"ticks\":%lld,\"events\":%lld,\"steps\":%lld,\"wall\":%.4f,\"loop_seconds\":%.6f,"
         "\"rate\":%.1f}\n",
         (long long)sum.ticks, (long long)sum.events, (long long)sp.steps, sum.wall_seconds, loop,
         loop > 0 ? (double)sp.steps / loop : 0.0);
  coh_scenario_free(sc);
  return 0;
}
