/*
 * monitor_int.h — internals of the monitor shared between its files: the
 * dashboard's static files embedded at build time (cmake/monitor.cmake
 * generates the table from ui/), and small text helpers of the renderers.
 */
#ifndef COH_MONITOR_INT_H
#define COH_MONITOR_INT_H

#include <stddef.h>

#include "cohort/monitor.h"
#include "util/util_int.h"

/* One embedded dashboard file: path as served ("/index.html"), its MIME
 * type and bytes.  The table ends with an entry whose path is NULL. */
typedef struct coh__ui_asset {
  const char *path;
  const char *mime;
  const unsigned char *data;
  size_t len;
} coh__ui_asset;

extern const coh__ui_asset coh__ui_assets[];

/* Appends x as the shortest decimal that reads back as the same double
 * (integers without a fraction); NaN and infinities as Prometheus writes
 * them ("NaN", "+Inf", "-Inf"). */
void coh__fmt_num(coh__buf *b, double x);

/* Prometheus "# HELP/# TYPE" lines; the help text of a counter family
 * (render.c's table, shared by both metrics writers). */
void coh__metrics_family(coh__buf *b, const char *name, const char *type,
                         const char *help);
const char *coh__metrics_help(const char *name);

/* snapshot.c: a snapshot struct as JSON text, and as /metrics text
 * (appended to b; b->oom on failure). */
void coh__snapshot_json(coh__buf *b, const coh_monitor_snapshot *s);
void coh__snapshot_metrics(coh__buf *b, const coh_monitor_snapshot *s);

/* ---- HTTP and WebSocket handlers, apart from civetweb --------------------
 * monitor.c's civetweb callbacks only translate a connection into these
 * structs and send the response; the decisions (Host and token checks,
 * routing, controls) are made here, so tests and the fuzz harness
 * (tests/fuzz/fuzz_monitor.c) call them without sockets. */
typedef struct coh__http_req {
  const char *method, *uri, *query; /* query: NULL if none */
  const char *host, *authorization, *content_type, *origin; /* NULL: absent */
  long long content_length;         /* -1: not given */
  /* reads up to n body bytes; > 0 bytes read, <= 0 end or error */
  long (*read)(void *ctx, char *buf, size_t n);
  void *read_ctx;
} coh__http_req;
typedef struct coh__http_resp {
  int status;
  const char *reason, *mime;
  const void *body; /* len bytes: text, owned or static */
  size_t len;
  int challenge;    /* 401: send WWW-Authenticate */
  char *owned;      /* freed by coh__http_resp_free */
  char text[256];   /* small error bodies */
} coh__http_resp;

/* A monitor without a server (coh_monitor_start adds civetweb); token may
 * be NULL.  Free with coh__monitor_free.  Errors: COH_ENOMEM. */
int coh__monitor_new(const char *token, coh_monitor **out, coh_err *err);
void coh__monitor_free(coh_monitor *m);
/* Host and token checks: 1 if allowed, else 0 with the 403/401 in *rs. */
int coh__monitor_allow(const coh_monitor *m, const coh__http_req *rq,
                       coh__http_resp *rs);
/* Answers one request (checks included) into *rs; returns the status.
 * Release *rs with coh__http_resp_free. */
int coh__monitor_http(coh_monitor *m, const coh__http_req *rq,
                      coh__http_resp *rs);
void coh__http_resp_free(coh__http_resp *rs);
/* May this WebSocket upgrade go ahead (Host, token, Origin)? */
int coh__monitor_ws_allow(const coh_monitor *m, const coh__http_req *rq);
/* A text frame from a client: queues its control; returns the reply frame
 * (*reply_len bytes, static) or NULL when none is due.  *is_ack: set when
 * the frame is a flow-control ack ({"ack": ...}), which queues nothing. */
const char *coh__monitor_ws_text(coh_monitor *m, const char *data,
                                 size_t len, int *is_ack, size_t *reply_len);

#endif /* COH_MONITOR_INT_H */
