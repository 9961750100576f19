/* chatter.c — a test agent for the orchestrator, driven by its messages:
 *   "flood N TARGET"  sends N messages to TARGET; emits "sent S refused R"
 *   "trap"            traps (unreachable)
 *   "llm TEXT"        asks the first model for a sampled continuation
 *                     (temperature 0.9, top_k 40); the result is emitted
 *   "timer N"         sets a timer N ticks ahead; emits when it fires
 *   "rand"            emits 8 bytes of its deterministic random stream (hex)
 *   "spawn ID"        asks for a new agent ID like scenario agent "a";
 *                     emits "spawn ID: <rc>"
 *   anything else     emits "got: <msg> (n=<count>)", keeping the count in
 *                     its key-value state
 */
#include <stdio.h>

#include "cohort_sdk.h"

static int chatter_init(const char *config, size_t len) {
  (void)config;
  (void)len;
  return 0;
}

static int starts(const coh_event *ev, const char *p) {
  size_t n = strlen(p);
  return ev->body_len >= n && !memcmp(ev->body, p, n);
}

static int chatter_event(const coh_event *ev) {
  char buf[512];
  if (ev->kind == COH_ABI_EV_LLM || ev->kind == COH_ABI_EV_TIMER) {
    int n = snprintf(buf, sizeof buf, "%s %s: %.*s", ev->kind == COH_ABI_EV_LLM ? "llm" : "timer",
                     ev->header, (int)(ev->body_len > 400 ? 400 : ev->body_len),
                     (const char *)ev->body);
    coh_emit(buf, (size_t)n);
    return 0;
  }
  if (starts(ev, "flood ")) {
    int n = 0, sent = 0, refused = 0, i;
    char target[64] = "";
    sscanf((const char *)ev->body + 6, "%d %63s", &n, target);
    for (i = 0; i < n; i++) {
      int k = snprintf(buf, sizeof buf, "msg %d", i);
      if (coh_send(target, buf, (size_t)k) == COH_ABI_OK) sent++;
      else refused++;
    }
    n = snprintf(buf, sizeof buf, "sent %d refused %d", sent, refused);
    coh_emit(buf, (size_t)n);
  } else if (starts(ev, "trap")) {
    __builtin_trap();
  } else if (starts(ev, "llm ")) {
    int n = snprintf(buf, sizeof buf,
                     "{\"prompt\":\"%.*s\",\"max_tokens\":12,\"temperature\":0.9,\"top_k\":40}",
                     (int)(ev->body_len - 4 > 200 ? 200 : ev->body_len - 4),
                     (const char *)ev->body + 4);
    (void)n;
    if (coh_llm(buf) < 0) coh_emit_str("llm refused");
  } else if (starts(ev, "timer ")) {
    cohort_timer(atoi((const char *)ev->body + 6));
  } else if (starts(ev, "spawn ")) {
    char req[160];
    int n = (int)(ev->body_len - 6 > 60 ? 60 : ev->body_len - 6);
    snprintf(req, sizeof req, "{\"id\":\"%.*s\",\"like\":\"a\"}", n, (const char *)ev->body + 6);
    n = snprintf(buf, sizeof buf, "spawn %.*s: %d", n, (const char *)ev->body + 6, (int)coh_spawn(req));
    coh_emit(buf, (size_t)n);
  } else if (starts(ev, "rand")) {
    uint8_t r[8];
    int i, n = 0;
    cohort_random(r, sizeof r);
    for (i = 0; i < 8; i++) n += snprintf(buf + n, sizeof buf - (size_t)n, "%02x", r[i]);
    coh_emit(buf, (size_t)n);
  } else {
    int32_t count = 0, n;
    if (coh_state_get("count", &count, sizeof count) < 0) count = 0;
    count++;
    coh_state_put("count", &count, sizeof count);
    n = snprintf(buf, sizeof buf, "got: %.*s (n=%d)", (int)(ev->body_len > 200 ? 200 : ev->body_len),
                 (const char *)ev->body, (int)count);
    coh_emit(buf, (size_t)n);
  }
  return 0;
}

COHORT_AGENT(chatter_init, chatter_event)
