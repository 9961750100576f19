/* relay.c — a test agent for the scheduling policies: messages carry their
 * own route, so a scenario can lay out any graph of sends.
 *   "trap"            traps (unreachable)
 *   "T1+T2/REST"      emits "from:BODY", then sends REST to T1 and to T2
 *                     (the first hop is a '+'-separated list of agent ids)
 *   "T"               (no '/') emits "from:BODY" and sends "" to T
 *   ""                emits "from:" and sends nothing
 * Every other event (timer, LLM result) is ignored.  The emit shows, in the
 * transcript, which message each step consumed and from whom. */
#include <stdio.h>

#include "cohort_sdk.h"

static int relay_init(const char *config, size_t len) {
  (void)config;
  (void)len;
  return 0;
}

static int relay_event(const coh_event *ev) {
  char buf[600], hop[600];
  const char *b = (const char *)ev->body, *slash, *rest, *p;
  size_t n = ev->body_len > 500 ? 500 : ev->body_len, hop_len, rest_len;
  int k;
  if (ev->kind != COH_ABI_EV_MESSAGE) return 0;
  if (n == 4 && !memcmp(b, "trap", 4)) __builtin_trap();
  k = snprintf(buf, sizeof buf, "%s:%.*s", ev->header, (int)n, b);
  coh_emit(buf, (size_t)k);
  if (n == 0) return 0;
  slash = memchr(b, '/', n);
  hop_len = slash ? (size_t)(slash - b) : n;
  rest = slash ? slash + 1 : b + n;
  rest_len = (size_t)(b + n - rest);
  memcpy(hop, b, hop_len);
  hop[hop_len] = '\0';
  for (p = hop; *p;) { /* each '+'-separated target of the first hop */
    char target[80];
    size_t tl = strcspn(p, "+");
    if (tl > 0 && tl < sizeof target) {
      memcpy(target, p, tl);
      target[tl] = '\0';
      coh_send(target, rest, rest_len);
    }
    p += tl;
    if (*p == '+') p++;
  }
  return 0;
}

COHORT_AGENT(relay_init, relay_event)
