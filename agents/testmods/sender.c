/* sender.c — a test agent for route schemas (docs/orchestrator.md): a
 * message "TARGET BODY" sends BODY (the rest after the first space, as is)
 * to TARGET and emits "send TARGET: RC", the send's return code (0, or a
 * negative COH_ABI_E*: a message that is not valid for its route's schema
 * gets COH_ABI_EINVAL, -1).  A message that starts with '[' (after JSON whitespace) is a JSON
 * array from another agent (a planner's task): it is parsed and emitted as
 * "parsed N: ITEM | ITEM ..." (strings decoded, other values as written),
 * or "unparsed: BODY" when it is not an array.  Any other message without a
 * space is ignored.  A '~' in TARGET is sent as a NUL byte (names with NUL
 * bytes in them: tests/route_schema.sh). */
#include <stdio.h>

#include "cohort_json.h"
#include "cohort_sdk.h"

static int parse_task(const coh_event *ev) {
  static char out[2048], item[512];
  cj_val arr = cj_parse((const char *)ev->body, ev->body_len), it;
  size_t k = 0;
  int n = 0;
  if (!cj_ok(arr) || arr.p[0] != '[') {
    k = (size_t)snprintf(out, sizeof out, "unparsed: %.*s",
                         (int)(ev->body_len > 1000 ? 1000 : ev->body_len), (const char *)ev->body);
    coh_emit(out, k);
    return 0;
  }
  for (it = cj_first(arr); cj_ok(it) && n < 64; it = cj_next(arr, it)) n++;
  k = (size_t)snprintf(out, sizeof out, "parsed %d:", n);
  for (it = cj_first(arr), n = 0; cj_ok(it) && n < 64 && k < sizeof out - 1; it = cj_next(arr, it), n++) {
    long l = cj_str(it, item, sizeof item);
    if (l < 0) l = snprintf(item, sizeof item, "%.*s", (int)(it.n < 500 ? it.n : 500), it.p);
    k += (size_t)snprintf(out + k, sizeof out - k, "%s %s", n ? " |" : "", item);
  }
  if (k >= sizeof out) k = sizeof out - 1;
  coh_emit(out, k);
  return 0;
}

static int sender_init(const char *config, size_t len) {
  (void)config;
  (void)len;
  return 0;
}

static int sender_event(const coh_event *ev) {
  char target[80], buf[160];
  const char *b = (const char *)ev->body, *sp;
  size_t tl;
  int rc, k;
  if (ev->kind != COH_ABI_EV_MESSAGE) return 0;
  {
    size_t i = 0; /* JSON whitespace first: a model's output may start so */
    while (i < ev->body_len && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r')) i++;
    if (i < ev->body_len && b[i] == '[') return parse_task(ev);
  }
  sp = memchr(b, ' ', ev->body_len);
  if (sp == NULL) return 0;
  tl = (size_t)(sp - b);
  if (tl == 0 || tl >= sizeof target) return 0;
  memcpy(target, b, tl);
  target[tl] = '\0';
  /* '~' in TARGET stands for a NUL byte, which only a hostile agent would
   * send: the name is passed with its length, NULs included */
  for (k = 0; k < (int)tl; k++)
    if (target[k] == '~') target[k] = '\0';
  rc = cohort_send(target, (uint32_t)tl, sp + 1, (uint32_t)(ev->body_len - tl - 1));
  k = snprintf(buf, sizeof buf, "send %s: %d", target, rc);
  coh_emit(buf, (size_t)k);
  return 0;
}

COHORT_AGENT(sender_init, sender_event)
