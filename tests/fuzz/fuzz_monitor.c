/* fuzz_monitor.c — libFuzzer harness for the monitor's request and control
 * handlers (src/monitor), called directly, without sockets or civetweb.
 *
 * Input layout: one flags byte, then lines (\n-separated):
 *   method, uri (with ?query), Host, Authorization, Content-Type, Origin,
 *   Content-Length
 * and the rest is the body.  A missing line is an absent header; an empty
 * Content-Length line means "not given".  Flags: bit 0 — the monitor has
 * the token "fuzz-token"; bit 1 — the body is published as the snapshot
 * first (so /api/snapshot and /metrics render it); bit 2 — the body is also
 * sent as a WebSocket text frame.  A fresh monitor per input keeps every
 * input reproducible.
 *
 * Properties checked beyond "no crash, no sanitizer report":
 *  - the status is one the handlers document, with a reason and a MIME type,
 *    and a body that fits its length;
 *  - with a token, a request without the right token gets 401, never 2xx;
 *    without one, a Host that is neither an IP address nor localhost gets
 *    403;
 *  - 202 (control accepted) queues exactly one control, and nothing else
 *    queues any; a WebSocket frame queues one control exactly when it is
 *    not a flow-control ack and no reply (an error) comes back;
 *  - HEAD never carries a body.
 *
 * Built as a fuzzer with -DCOH_FUZZ=ON (clang). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/monitor.h"
#include "monitor/monitor_int.h"

#define FUZZ_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond,   \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)

#define FUZZ_TOKEN "fuzz-token"
#define FUZZ_LINES 7

typedef struct fuzz_body {
  const char *p;
  size_t n, at;
} fuzz_body;

/* Reads in pieces of at most 7 bytes, as a socket might deliver them. */
static long fuzz_read(void *ctx, char *buf, size_t n) {
  fuzz_body *b = ctx;
  size_t k = b->n - b->at;
  if (k > n) k = n;
  if (k > 7) k = 7;
  memcpy(buf, b->p + b->at, k);
  b->at += k;
  return (long)k;
}

static size_t fuzz_drain(coh_monitor *m) {
  size_t n = 0;
  while (coh_monitor_next_control(m) != COH_CONTROL_NONE) n++;
  return n;
}

static int fuzz_status_ok(int s) {
  static const int ok[] = {200, 202, 400, 401, 403, 404,
                           405, 413, 415, 500, 503};
  size_t i;
  for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (s == ok[i]) return 1;
  return 0;
}

/* Does the request carry FUZZ_TOKEN as the handlers accept it? */
static int fuzz_has_token(const coh__http_req *rq) {
  const char *q = rq->query, *p;
  if (rq->authorization != NULL &&
      strncasecmp(rq->authorization, "Bearer ", 7) == 0 &&
      strcmp(rq->authorization + 7, FUZZ_TOKEN) == 0)
    return 1;
  /* the query may encode it (%xx); only an exact plain match is claimed
   * absent with certainty when no "token" appears at all */
  if (q != NULL && (p = strstr(q, "token")) != NULL) return -1;
  return 0;
}

int coh__fuzz_monitor_one(const uint8_t *data, size_t size);
int coh__fuzz_monitor_one(const uint8_t *data, size_t size) {
  char *copy, *line[FUZZ_LINES], *p, *end, *q;
  coh_monitor *m = NULL;
  coh__http_req rq;
  coh__http_resp rs;
  fuzz_body body;
  coh_err err;
  unsigned flags;
  int i, status, has;
  size_t queued, n;
  if (size < 1) return 0;
  flags = data[0];
  copy = malloc(size); /* NUL-terminated lines and the body */
  FUZZ_CHECK(copy != NULL);
  memcpy(copy, data + 1, size - 1);
  copy[size - 1] = '\0';
  p = copy;
  end = copy + (size - 1);
  for (i = 0; i < FUZZ_LINES; i++) {
    char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
    if (nl == NULL) {
      line[i] = NULL;
      continue;
    }
    *nl = '\0';
    line[i] = p;
    p = nl + 1;
  }
  FUZZ_CHECK(coh__monitor_new((flags & 1) ? FUZZ_TOKEN : NULL, &m, &err) ==
             COH_OK);
  body.p = p;
  body.n = (size_t)(end - p);
  body.at = 0;
  if (flags & 2) coh_monitor_publish(m, body.p, body.n);
  memset(&rq, 0, sizeof rq);
  rq.method = line[0] ? line[0] : "GET";
  rq.uri = line[1] ? line[1] : "/";
  if (line[1] != NULL && (q = strchr(line[1], '?')) != NULL) {
    *q = '\0';
    rq.query = q + 1;
  }
  rq.host = line[2];
  rq.authorization = line[3];
  rq.content_type = line[4];
  rq.origin = line[5];
  rq.content_length = -1;
  if (line[6] != NULL && line[6][0] != '\0')
    rq.content_length = strtoll(line[6], NULL, 10);
  rq.read = fuzz_read;
  rq.read_ctx = &body;

  status = coh__monitor_http(m, &rq, &rs);
  FUZZ_CHECK(status == rs.status && fuzz_status_ok(status));
  FUZZ_CHECK(rs.reason != NULL && rs.mime != NULL);
  FUZZ_CHECK(rs.len == 0 || rs.body != NULL);
  if (rs.len > 0) {
    volatile char sink = ((const char *)rs.body)[rs.len - 1];
    (void)sink; /* ASan checks the whole length is readable */
  }
  if (!strcmp(rq.method, "HEAD")) FUZZ_CHECK(rs.len == 0);
  has = fuzz_has_token(&rq);
  if ((flags & 1) && has == 0) FUZZ_CHECK(status == 401);
  if (!(flags & 1) && rq.host != NULL && rq.host[0] == '\0')
    FUZZ_CHECK(status == 403);
  if (status == 401) FUZZ_CHECK(rs.challenge);
  queued = fuzz_drain(m);
  FUZZ_CHECK(queued == (status == 202 ? 1u : 0u));
  coh__http_resp_free(&rs);

  (void)coh__monitor_ws_allow(m, &rq);
  if (flags & 4) {
    int ack = -1;
    const char *reply = coh__monitor_ws_text(m, body.p, body.n, &ack, &n);
    FUZZ_CHECK(ack == 0 || ack == 1);
    FUZZ_CHECK(reply == NULL ? n == 0 : n > 0 && n == strlen(reply));
    FUZZ_CHECK(!ack || reply == NULL);
    queued = fuzz_drain(m);
    FUZZ_CHECK(queued == (reply == NULL && !ack ? 1u : 0u));
  }
  coh__monitor_free(m);
  free(copy);
  return 0;
}

#ifdef COH_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return coh__fuzz_monitor_one(data, size);
}
#endif
