/* pingpong.c — routing benchmark agent: sends every message back to its
 * sender unchanged, and does nothing else (no emit, no log), so a run
 * measures the orchestrator's routing path: deliver, step, commit, journal. */
#include "cohort_sdk.h"

static int pp_init(const char *config, size_t len) {
  (void)config;
  (void)len;
  return 0;
}

static int pp_event(const coh_event *ev) {
  if (ev->kind == COH_ABI_EV_MESSAGE && ev->header[0])
    coh_send(ev->header, ev->body, ev->body_len);
  return 0;
}

COHORT_AGENT(pp_init, pp_event)
