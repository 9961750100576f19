/* sdk_step.c — an SDK agent that does what a routing agent does per event:
 * reads the payload and sends the body back to the sender (or, without a
 * sender, emits it).  Built twice: as is (payloads in the SDK's arena) and
 * as sdk_step_malloc.wasm with the arena off (COHORT_ARENA_BYTES 0: every
 * payload malloc'd and freed, as before the arena).  test_agent checks that
 * both give the same results; bench/agent_bench.c times both. */
#include "cohort_sdk.h"

static int st_init(const char *config, size_t len) {
  (void)config;
  (void)len;
  return 0;
}

static int st_event(const coh_event *ev) {
  if (ev->kind != COH_ABI_EV_MESSAGE) return 0;
  if (ev->header[0])
    coh_send(ev->header, ev->body, ev->body_len);
  else
    coh_emit(ev->body, ev->body_len);
  return (int)ev->body_len;
}

COHORT_AGENT(st_init, st_event)
