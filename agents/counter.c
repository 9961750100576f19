/* counter.c — counts the messages it receives.  The count lives both in the
 * agent's memory and in the host's key-value state ("count"), so it survives
 * a checkpoint/restore of memory and a restart with the same state.  Each
 * message emits "count=N r=R" where R is a byte of the agent's deterministic
 * random stream.  A message "total" emits the sum of all counts so far. */
#include <stdio.h>

#include "cohort_sdk.h"

static uint64_t count;
static uint64_t total;

static int counter_init(const char *config, size_t len) {
  char buf[32];
  int32_t n = coh_state_get("count", buf, sizeof buf - 1);
  (void)config;
  (void)len;
  if (n > 0 && n < (int32_t)sizeof buf) {
    buf[n] = '\0';
    count = strtoull(buf, NULL, 10);
  }
  return 0;
}

static int counter_event(const coh_event *ev) {
  char out[96], num[32];
  uint8_t r;
  if (ev->kind != COH_ABI_EV_MESSAGE) return 0;
  /* "total", bare or as a JSON string (cohort exec passes JSON text) */
  if ((ev->body_len == 5 && !memcmp(ev->body, "total", 5)) ||
      (ev->body_len == 7 && !memcmp(ev->body, "\"total\"", 7))) {
    snprintf(out, sizeof out, "total=%llu", (unsigned long long)total);
    coh_emit_str(out);
    return 0;
  }
  count++;
  total += count;
  cohort_random(&r, 1);
  snprintf(num, sizeof num, "%llu", (unsigned long long)count);
  coh_state_put("count", num, strlen(num));
  snprintf(out, sizeof out, "count=%llu r=%u", (unsigned long long)count, r);
  coh_emit_str(out);
  return 0;
}

COHORT_AGENT(counter_init, counter_event)
