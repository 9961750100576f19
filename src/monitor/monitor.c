/*
 * monitor.c — the monitor server (civetweb) and the three channels between
 * it and the orchestrator, each built so that the orchestrator never waits
 * on a server thread:
 *
 *  - Snapshots: a triple buffer.  The publisher owns one buffer (`back`),
 *    one sits in the middle (`state`: its index plus a DIRTY bit), the
 *    server owns the third (`front`).  Publishing writes `back` and swaps it
 *    into the middle with one atomic exchange; the server side takes the
 *    middle the same way.  Only one server thread at a time takes and reads
 *    `front` (under snap_lock, a server-side mutex), so the buffer a reader
 *    copies from can never be the one being written.  Readers copy the
 *    snapshot out under snap_lock and send from their copy, so a slow client
 *    holds nothing shared.
 *  - Trace spans: a bounded ring under span_lock.  The orchestrator appends
 *    to its own pending list and moves it into the ring only when
 *    pthread_mutex_trylock succeeds; otherwise the spans wait for the next
 *    call.
 *  - Controls: a bounded ring; server threads push under ctl_lock (several
 *    producers), the orchestrator pops without a lock (one consumer), and a
 *    paused orchestrator sleeps on the ring's tail with a futex.
 *
 * WebSocket clients each get a sender thread that waits (futex on the
 * publish counter) for a new snapshot, copies the latest one out and writes
 * it.  Snapshots published while a client is still being written to are
 * skipped for that client (it always gets the latest), and pushes are at
 * most PUSH_INTERVAL_MS apart, so a slow client only slows itself.
 *
 * Flow control: a client that connects with `?ack=1` (the dashboard does)
 * answers every snapshot with {"ack": true} once it has handled it, and is
 * sent the next snapshot only then.  Without it the socket buffers fill
 * with snapshots faster than a busy page handles them: the page shows a
 * state seconds old, and a write stays blocked until civetweb's write
 * timeout gives up on it, possibly half-way through a frame.  Every write
 * to a connection holds that client's write_lock, and a write that does
 * not complete ends all writing to the connection: a frame cut short can
 * never be followed by another (the browser would read the next frame's
 * bytes as the rest of the cut one: "Invalid frame header"); the
 * connection is closed when the client next sends anything.
 */
#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cohort/monitor.h"
#include "monitor_int.h"

#define TB_DIRTY 4u
#define SPAN_CAPACITY 200000     /* spans kept for /trace */
#define PENDING_CAPACITY 200000  /* spans waiting for the lock */
#define INTERN_MAX 65536         /* distinct span/track names kept */
#define CTL_CAPACITY 64
#define WS_MAX_CLIENTS 16
#define PUSH_INTERVAL_MS 100
#define CONTROL_BODY_MAX 1024

/* ---- sleeping (futex wait/wake: util_int.h) ------------------------------ */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- structures ----------------------------------------------------------- */

typedef struct snapbuf {
  char *p;     /* the JSON, a NUL, then (mlen > 0) the /metrics text, a NUL */
  size_t len, cap;
  size_t mlen; /* 0: none (a JSON publish: /metrics parses the JSON) */
} snapbuf;

/* A stored span: names are indexes into the intern table. */
typedef struct span_rec {
  uint32_t name, track;
  int kind, phase;
  double ts, dur;
  uint64_t flow;
} span_rec;

/* A pending span (orchestrator-owned): names are offsets into an arena. */
typedef struct pend_rec {
  size_t name, track;
  int kind, phase;
  double ts, dur;
  uint64_t flow;
} pend_rec;

typedef struct ws_client ws_client;

struct coh_monitor {
  struct mg_context *ctx;
  char *url, *token;
  char addr[16]; /* the bound IPv4 address */
  int port;
  _Atomic int stopped; /* mg_stop has returned (ends the nudger) */

  /* snapshots */
  snapbuf buf[3];
  _Atomic uint32_t tb_state; /* middle index | TB_DIRTY */
  uint32_t tb_back;          /* publisher's */
  pthread_mutex_t snap_lock; /* server side: front and version */
  uint32_t tb_front;
  uint64_t snap_version;     /* number of snapshots taken */
  _Atomic uint32_t pub_seq;  /* futex word, bumped by every publish */
  _Atomic uint32_t pub_waiters;
  _Atomic uint64_t published, publish_dropped;
  coh__buf pub_json, pub_metrics; /* publisher's: publish_snapshot renders here */

  /* spans: store under span_lock; pending is the orchestrator's */
  pthread_mutex_t span_lock;
  span_rec *ring;
  size_t ring_start, ring_n;
  char **strs;        /* interned names, each its own allocation */
  size_t n_strs, cap_strs;
  uint32_t *str_slot; /* open addressing: index+1, 0 empty */
  size_t n_str_slot;
  pend_rec *pend;
  size_t n_pend, cap_pend;
  coh__buf pend_arena;
  _Atomic uint64_t spans_dropped;

  /* controls */
  pthread_mutex_t ctl_lock;
  int ctl_slots[CTL_CAPACITY];
  _Atomic uint32_t ctl_head, ctl_tail, ctl_waiters;

  /* websocket clients */
  pthread_mutex_t ws_lock;
  int n_ws;
  _Atomic int stopping;
};

struct ws_client {
  coh_monitor *m;
  struct mg_connection *conn;
  pthread_t thread;
  int started;
  _Atomic int closing;
  int ack_mode;               /* connected with ?ack=1 */
  _Atomic uint32_t acked;     /* acks received (futex word) */
  uint32_t sent;              /* snapshots sent (sender thread) */
  _Atomic int broken;         /* a write failed or was cut short */
  pthread_mutex_t write_lock; /* one writer at a time, whole frames */
  char *buf;
  size_t cap;
};

/* ---- snapshots ------------------------------------------------------------ */

/* Publishes `len` bytes of JSON and `mlen` bytes of metrics text (mlen 0:
 * none); either pointer may be NULL when its part is already in place in
 * the back buffer (publish_snapshot renders into it). */
static void publish_parts(coh_monitor *m, const char *json, size_t len,
                          const char *metrics, size_t mlen) {
  snapbuf *b = &m->buf[m->tb_back];
  uint32_t old;
  size_t need = len + 1 + (mlen ? mlen + 1 : 0);
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *p;
    while (cap < need) cap *= 2;
    p = coh__realloc(b->p, cap);
    if (p == NULL) { /* keep the previous snapshot; count the loss */
      atomic_fetch_add_explicit(&m->publish_dropped, 1, memory_order_relaxed);
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p, json, len);
  b->p[len] = '\0';
  b->len = len;
  b->mlen = mlen;
  if (mlen) {
    memcpy(b->p + len + 1, metrics, mlen);
    b->p[len + 1 + mlen] = '\0';
  }
  old = atomic_exchange_explicit(&m->tb_state, m->tb_back | TB_DIRTY,
                                 memory_order_acq_rel);
  m->tb_back = old & 3u;
  atomic_fetch_add_explicit(&m->published, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->pub_seq, 1, memory_order_seq_cst);
  if (atomic_load_explicit(&m->pub_waiters, memory_order_seq_cst) != 0)
    coh__futex_wake(&m->pub_seq, INT32_MAX);
}

void coh_monitor_publish(coh_monitor *m, const char *json, size_t len) {
  publish_parts(m, json, len, NULL, 0);
}

void coh_monitor_publish_snapshot(coh_monitor *m, const coh_monitor_snapshot *s) {
  /* the publisher's buffers, kept between publishes (no regrowth after the
   * first) */
  m->pub_json.n = 0;
  m->pub_json.oom = 0;
  m->pub_metrics.n = 0;
  m->pub_metrics.oom = 0;
  coh__snapshot_json(&m->pub_json, s);
  coh__snapshot_metrics(&m->pub_metrics, s);
  if (m->pub_json.oom || m->pub_metrics.oom || m->pub_metrics.n == 0) {
    atomic_fetch_add_explicit(&m->publish_dropped, 1, memory_order_relaxed);
    return;
  }
  publish_parts(m, m->pub_json.p, m->pub_json.n, m->pub_metrics.p, m->pub_metrics.n);
}

/* Under snap_lock: makes `front` the newest published snapshot. */
static void take_latest(coh_monitor *m) {
  uint32_t old;
  if (!(atomic_load_explicit(&m->tb_state, memory_order_acquire) & TB_DIRTY))
    return;
  old = atomic_exchange_explicit(&m->tb_state, m->tb_front,
                                 memory_order_acq_rel);
  m->tb_front = old & 3u;
  m->snap_version++;
}

/* Copies the latest snapshot into *buf (grown as needed; the caller's):
 * its JSON, a NUL, and, when it was published as a struct, its /metrics
 * text and a NUL (*mlen bytes; 0: none; mlen may be NULL).
 * Returns its version (0: nothing published yet, or out of memory) and its
 * JSON's length in *len.  If the version equals `have`, nothing is copied. */
static uint64_t copy_latest(coh_monitor *m, char **buf, size_t *cap,
                            size_t *len, size_t *mlen, uint64_t have) {
  uint64_t v;
  snapbuf *f;
  size_t total;
  pthread_mutex_lock(&m->snap_lock);
  take_latest(m);
  v = m->snap_version;
  f = &m->buf[m->tb_front];
  if (v != 0 && v != have) {
    total = f->len + 1 + (f->mlen ? f->mlen + 1 : 0);
    if (*cap < total) {
      char *p = coh__realloc(*buf, total);
      if (p == NULL) {
        v = 0;
        goto out;
      }
      *buf = p;
      *cap = total;
    }
    memcpy(*buf, f->p, total);
    *len = f->len;
    if (mlen) *mlen = f->mlen;
  }
out:
  pthread_mutex_unlock(&m->snap_lock);
  return v;
}

/* ---- spans ----------------------------------------------------------------- */

static uint64_t fnv(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* Under span_lock.  Index of the interned copy of s, or UINT32_MAX when out
 * of memory or the table is full. */
static uint32_t intern(coh_monitor *m, const char *s) {
  size_t k, i;
  if ((m->n_strs + 1) * 2 > m->n_str_slot) {
    size_t ns = m->n_str_slot ? m->n_str_slot * 2 : 256;
    uint32_t *sl;
    if (m->n_strs >= INTERN_MAX) goto lookup_only;
    sl = coh__calloc(ns, sizeof *sl);
    if (sl == NULL) goto lookup_only;
    for (i = 0; i < m->n_strs; i++) {
      k = fnv(m->strs[i]) & (ns - 1);
      while (sl[k]) k = (k + 1) & (ns - 1);
      sl[k] = (uint32_t)i + 1;
    }
    coh__free(m->str_slot);
    m->str_slot = sl;
    m->n_str_slot = ns;
  }
lookup_only:
  if (m->n_str_slot == 0) return UINT32_MAX;
  k = fnv(s) & (m->n_str_slot - 1);
  while (m->str_slot[k]) {
    if (strcmp(m->strs[m->str_slot[k] - 1], s) == 0) return m->str_slot[k] - 1;
    k = (k + 1) & (m->n_str_slot - 1);
  }
  if ((m->n_strs + 1) * 2 > m->n_str_slot) return UINT32_MAX; /* full */
  if (m->n_strs == m->cap_strs) {
    size_t nc = m->cap_strs ? m->cap_strs * 2 : 64;
    char **ns = coh__realloc(m->strs, nc * sizeof *ns);
    if (ns == NULL) return UINT32_MAX;
    m->strs = ns;
    m->cap_strs = nc;
  }
  if ((m->strs[m->n_strs] = coh__strdup(s)) == NULL) return UINT32_MAX;
  m->str_slot[k] = (uint32_t)m->n_strs + 1;
  return (uint32_t)m->n_strs++;
}

/* Under span_lock: moves the pending spans into the ring. */
static void flush_pending(coh_monitor *m) {
  size_t i;
  for (i = 0; i < m->n_pend; i++) {
    pend_rec *p = &m->pend[i];
    span_rec r;
    r.name = intern(m, m->pend_arena.p + p->name);
    r.track = intern(m, m->pend_arena.p + p->track);
    if (r.name == UINT32_MAX || r.track == UINT32_MAX) {
      atomic_fetch_add_explicit(&m->spans_dropped, 1, memory_order_relaxed);
      continue;
    }
    r.kind = p->kind;
    r.phase = p->phase;
    r.ts = p->ts;
    r.dur = p->dur;
    r.flow = p->flow;
    if (m->ring_n < SPAN_CAPACITY) {
      m->ring[(m->ring_start + m->ring_n++) % SPAN_CAPACITY] = r;
    } else { /* full: the oldest goes */
      m->ring[m->ring_start] = r;
      m->ring_start = (m->ring_start + 1) % SPAN_CAPACITY;
      atomic_fetch_add_explicit(&m->spans_dropped, 1, memory_order_relaxed);
    }
  }
  m->n_pend = 0;
  m->pend_arena.n = 0;
  m->pend_arena.oom = 0;
}

void coh_monitor_trace(coh_monitor *m, const coh_trace_span *spans, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    const coh_trace_span *s = &spans[i];
    pend_rec *p;
    if (s->name == NULL || s->track == NULL || s->track_kind < 0 ||
        s->track_kind > 2 || s->flow_phase < 0 || s->flow_phase > 3 ||
        m->n_pend >= PENDING_CAPACITY) {
      atomic_fetch_add_explicit(&m->spans_dropped, 1, memory_order_relaxed);
      continue;
    }
    if (m->n_pend == m->cap_pend) {
      size_t nc = m->cap_pend ? m->cap_pend * 2 : 256;
      pend_rec *np = coh__realloc(m->pend, nc * sizeof *np);
      if (np == NULL) {
        atomic_fetch_add_explicit(&m->spans_dropped, 1, memory_order_relaxed);
        continue;
      }
      m->pend = np;
      m->cap_pend = nc;
    }
    p = &m->pend[m->n_pend];
    p->name = m->pend_arena.n;
    coh__buf_add(&m->pend_arena, s->name, strlen(s->name) + 1);
    p->track = m->pend_arena.n;
    coh__buf_add(&m->pend_arena, s->track, strlen(s->track) + 1);
    if (m->pend_arena.oom) {
      atomic_fetch_add_explicit(&m->spans_dropped, 1, memory_order_relaxed);
      break; /* the arena keeps its oom state until the next flush */
    }
    p->kind = s->track_kind;
    p->phase = s->flow_phase;
    p->ts = s->ts_us;
    p->dur = s->dur_us;
    p->flow = s->flow;
    m->n_pend++;
  }
  if (m->n_pend == 0 && !m->pend_arena.oom) return;
  if (pthread_mutex_trylock(&m->span_lock) != 0) return; /* next call */
  flush_pending(m);
  pthread_mutex_unlock(&m->span_lock);
}

/* Renders the stored spans (a server thread). */
static int render_trace(coh_monitor *m, char **out, size_t *len,
                        coh_err *err) {
  coh_trace_span *v;
  size_t i, n;
  int rc;
  pthread_mutex_lock(&m->span_lock);
  n = m->ring_n;
  v = coh__malloc((n ? n : 1) * sizeof *v);
  if (v == NULL) {
    pthread_mutex_unlock(&m->span_lock);
    return coh__err(err, COH_ENOMEM, "trace: out of memory");
  }
  for (i = 0; i < n; i++) {
    const span_rec *r = &m->ring[(m->ring_start + i) % SPAN_CAPACITY];
    /* interned strings live until the monitor stops: safe after unlock */
    v[i].name = m->strs[r->name];
    v[i].track = m->strs[r->track];
    v[i].track_kind = r->kind;
    v[i].flow_phase = r->phase;
    v[i].ts_us = r->ts;
    v[i].dur_us = r->dur;
    v[i].flow = r->flow;
  }
  pthread_mutex_unlock(&m->span_lock);
  rc = coh_monitor_render_trace(v, n, out, len, err);
  coh__free(v);
  return rc;
}

/* ---- controls -------------------------------------------------------------- */

/* Server threads.  0, or -1 if the queue is full. */
static int push_control(coh_monitor *m, coh_control c) {
  uint32_t t, h;
  pthread_mutex_lock(&m->ctl_lock);
  t = atomic_load_explicit(&m->ctl_tail, memory_order_relaxed);
  h = atomic_load_explicit(&m->ctl_head, memory_order_acquire);
  if (t - h >= CTL_CAPACITY) {
    pthread_mutex_unlock(&m->ctl_lock);
    return -1;
  }
  m->ctl_slots[t % CTL_CAPACITY] = (int)c;
  atomic_store_explicit(&m->ctl_tail, t + 1, memory_order_seq_cst);
  pthread_mutex_unlock(&m->ctl_lock);
  if (atomic_load_explicit(&m->ctl_waiters, memory_order_seq_cst) != 0)
    coh__futex_wake(&m->ctl_tail, INT32_MAX);
  return 0;
}

int coh_monitor_post_control(coh_monitor *m, coh_control c) {
  if (c != COH_CONTROL_PAUSE && c != COH_CONTROL_RESUME && c != COH_CONTROL_STEP &&
      c != COH_CONTROL_STOP)
    return -1;
  return push_control(m, c);
}

coh_control coh_monitor_next_control(coh_monitor *m) {
  uint32_t h = atomic_load_explicit(&m->ctl_head, memory_order_relaxed);
  uint32_t t = atomic_load_explicit(&m->ctl_tail, memory_order_acquire);
  coh_control c;
  if (h == t) return COH_CONTROL_NONE;
  c = (coh_control)m->ctl_slots[h % CTL_CAPACITY];
  atomic_store_explicit(&m->ctl_head, h + 1, memory_order_release);
  return c;
}

coh_control coh_monitor_wait_control(coh_monitor *m) {
  for (;;) {
    coh_control c = coh_monitor_next_control(m);
    uint32_t h;
    if (c != COH_CONTROL_NONE) return c;
    h = atomic_load_explicit(&m->ctl_head, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->ctl_waiters, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&m->ctl_tail, memory_order_seq_cst) == h)
      coh__futex_wait(&m->ctl_tail, h, -1);
    atomic_fetch_sub_explicit(&m->ctl_waiters, 1, memory_order_seq_cst);
  }
}

/* {"control": "..."} → control, or NONE if malformed.  *is_ack (may be
 * NULL) is set for a WebSocket flow-control message {"ack": ...}. */
static coh_control parse_control(const char *data, size_t len, int *is_ack) {
  json_t *root = json_loadb(data, len, 0, NULL);
  const char *s = json_string_value(json_object_get(root, "control"));
  coh_control c = COH_CONTROL_NONE;
  if (is_ack) *is_ack = json_is_object(root) && json_object_get(root, "ack") != NULL;
  if (s != NULL) {
    if (!strcmp(s, "pause")) c = COH_CONTROL_PAUSE;
    else if (!strcmp(s, "resume")) c = COH_CONTROL_RESUME;
    else if (!strcmp(s, "step")) c = COH_CONTROL_STEP;
    else if (!strcmp(s, "stop")) c = COH_CONTROL_STOP;
  }
  json_decref(root);
  return c;
}

/* ---- HTTP ------------------------------------------------------------------- */

/* Constant-time comparison of a presented token with ours. */
static int token_ok(const char *want, const char *got, size_t got_len) {
  size_t n = strlen(want), i;
  unsigned diff = (unsigned)(n ^ got_len);
  for (i = 0; i < n; i++)
    diff |= (unsigned char)want[i] ^ (unsigned char)(i < got_len ? got[i] : 0);
  return diff == 0;
}

static int authorized(const coh_monitor *m, const coh__http_req *rq) {
  const char *h = rq->authorization;
  char q[128];
  int n;
  if (m->token == NULL) return 1;
  if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0 &&
      token_ok(m->token, h + 7, strlen(h + 7)))
    return 1;
  if (rq->query != NULL) {
    n = mg_get_var(rq->query, strlen(rq->query), "token", q, sizeof q);
    if (n >= 0 && token_ok(m->token, q, (size_t)n)) return 1;
  }
  return 0;
}

/* Without a token, only requests naming the server by an IP address or
 * "localhost": a page whose own domain was rebound to 127.0.0.1 (DNS
 * rebinding) sends that domain as Host. */
static int host_ok(const coh_monitor *m, const coh__http_req *rq) {
  const char *h = rq->host, *colon;
  char host[64];
  size_t n;
  struct in_addr ia;
  if (m->token != NULL || h == NULL) return 1; /* no Host: not a browser */
  colon = strrchr(h, ':');
  n = colon ? (size_t)(colon - h) : strlen(h);
  if (n == 0 || n >= sizeof host) return 0;
  memcpy(host, h, n);
  host[n] = '\0';
  return strcasecmp(host, "localhost") == 0 ||
         inet_pton(AF_INET, host, &ia) == 1;
}

static int set_body(coh__http_resp *rs, int status, const char *reason,
                     const char *mime, const void *body, size_t len) {
  rs->status = status;
  rs->reason = reason;
  rs->mime = mime;
  rs->body = body;
  rs->len = len;
  return status;
}

static int set_text(coh__http_resp *rs, int status, const char *reason,
                     const char *msg) {
  int n = snprintf(rs->text, sizeof rs->text, "{\"error\": \"%s\"}\n", msg);
  return set_body(rs, status, reason, "application/json", rs->text,
           n < 0 ? 0 : (size_t)n < sizeof rs->text ? (size_t)n
                                                   : sizeof rs->text - 1);
}

void coh__http_resp_free(coh__http_resp *rs) {
  coh__free(rs->owned);
  rs->owned = NULL;
}

int coh__monitor_allow(const coh_monitor *m, const coh__http_req *rq,
                       coh__http_resp *rs) {
  static const char body[] =
      "{\"error\": \"a token is required (Bearer or ?token=)\"}\n";
  memset(rs, 0, sizeof *rs);
  if (!host_ok(m, rq)) {
    set_text(rs, 403, "Forbidden", "Host must be an IP address or localhost");
    return 0;
  }
  if (authorized(m, rq)) return 1;
  set_body(rs, 401, "Unauthorized", "application/json", body, sizeof body - 1);
  rs->challenge = 1;
  return 0;
}

static int handle_control(coh_monitor *m, const coh__http_req *rq,
                           coh__http_resp *rs) {
  const char *ct = rq->content_type;
  char body[CONTROL_BODY_MAX];
  size_t got = 0;
  long r;
  coh_control c;
  /* Demanding JSON makes a cross-site form post impossible (a browser
   * preflights it, and no CORS headers are sent). */
  if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
    return set_text(rs, 415, "Unsupported Media Type",
                    "Content-Type must be application/json");
  if (rq->content_length < 0 || rq->content_length > CONTROL_BODY_MAX)
    return set_text(rs, 413, "Payload Too Large",
                    "the body must be a small JSON object");
  while (got < (size_t)rq->content_length && rq->read != NULL &&
         (r = rq->read(rq->read_ctx, body + got,
                       (size_t)rq->content_length - got)) > 0)
    got += (size_t)r < (size_t)rq->content_length - got
               ? (size_t)r
               : (size_t)rq->content_length - got;
  c = parse_control(body, got, NULL);
  if (c == COH_CONTROL_NONE)
    return set_text(rs, 400, "Bad Request",
                    "expected {\\\"control\\\": \\\"pause\\\"|\\\"resume\\\"|"
                    "\\\"step\\\"|\\\"stop\\\"}");
  if (push_control(m, c))
    return set_text(rs, 503, "Service Unavailable",
                    "too many controls waiting");
  return set_body(rs, 202, "Accepted", "application/json", "{\"ok\": true}\n",
                  13);
}

static int route(coh_monitor *m, const coh__http_req *rq,
                 coh__http_resp *rs) {
  const char *uri = rq->uri ? rq->uri : "";
  const char *method = rq->method ? rq->method : "";
  int is_get = !strcmp(method, "GET"), is_head = !strcmp(method, "HEAD");
  char *out = NULL;
  size_t len = 0, cap = 0, mlen = 0;
  coh_err err;
  const coh__ui_asset *a;

  if (!coh__monitor_allow(m, rq, rs)) return rs->status;
  if (!strcmp(uri, "/api/control")) {
    if (strcmp(method, "POST"))
      return set_text(rs, 405, "Method Not Allowed", "use POST");
    return handle_control(m, rq, rs);
  }
  if (!is_get && !is_head)
    return set_text(rs, 405, "Method Not Allowed", "use GET");
  if (!strcmp(uri, "/api/snapshot") || !strcmp(uri, "/metrics")) {
    if (copy_latest(m, &out, &cap, &len, &mlen, 0) == 0) {
      coh__free(out);
      return set_text(rs, 503, "Service Unavailable",
                      "no snapshot published yet");
    }
    if (!strcmp(uri, "/api/snapshot")) {
      rs->owned = out;
      return set_body(rs, 200, "OK", "application/json", out,
                      is_head ? 0 : len);
    } else if (mlen > 0) { /* rendered from the struct when published */
      rs->owned = out;
      return set_body(rs, 200, "OK",
                      "text/plain; version=0.0.4; charset=utf-8", out + len + 1,
                      is_head ? 0 : mlen);
    } else {
      char *text = NULL;
      size_t tlen = 0;
      int bad = coh_monitor_render_metrics(out, len, &text, &tlen, &err);
      coh__free(out);
      if (bad) {
        coh__free(text);
        return set_text(rs, 500, "Internal Server Error",
                        "the snapshot does not match the schema");
      }
      rs->owned = text;
      return set_body(rs, 200, "OK",
                      "text/plain; version=0.0.4; charset=utf-8", text,
                      is_head ? 0 : tlen);
    }
  }
  if (!strcmp(uri, "/trace")) {
    if (render_trace(m, &out, &len, &err))
      return set_text(rs, 500, "Internal Server Error", "out of memory");
    rs->owned = out;
    return set_body(rs, 200, "OK", "application/json", out, is_head ? 0 : len);
  }
  if (!strcmp(uri, "/")) uri = "/index.html";
  for (a = coh__ui_assets; a->path != NULL; a++)
    if (!strcmp(a->path, uri))
      return set_body(rs, 200, "OK", a->mime, a->data, is_head ? 0 : a->len);
  return set_text(rs, 404, "Not Found", "no such page");
}

/* A response to HEAD has no body, errors included (a body there would be
 * read by the client as the start of the next response). */
int coh__monitor_http(coh_monitor *m, const coh__http_req *rq,
                      coh__http_resp *rs) {
  int status = route(m, rq, rs);
  if (rq->method != NULL && !strcmp(rq->method, "HEAD")) rs->len = 0;
  return status;
}

/* ---- civetweb adapter -------------------------------------------------------- */

static void conn_req(const struct mg_connection *conn, coh__http_req *rq) {
  const struct mg_request_info *ri = mg_get_request_info(conn);
  memset(rq, 0, sizeof *rq);
  rq->method = ri->request_method;
  rq->uri = ri->local_uri;
  rq->query = ri->query_string;
  rq->host = mg_get_header(conn, "Host");
  rq->authorization = mg_get_header(conn, "Authorization");
  rq->content_type = mg_get_header(conn, "Content-Type");
  rq->origin = mg_get_header(conn, "Origin");
  rq->content_length = ri->content_length;
}

static long conn_read(void *ctx, char *buf, size_t n) {
  return mg_read(ctx, buf, n);
}

static int send_resp(struct mg_connection *conn, const coh__http_resp *rs) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "Connection: close\r\n\r\n",
            rs->status, rs->reason,
            rs->challenge ? "WWW-Authenticate: Bearer realm=\"cohort\"\r\n" : "",
            rs->mime, rs->len);
  if (rs->len) mg_write(conn, rs->body, rs->len);
  return rs->status;
}

static int auth_handler(struct mg_connection *conn, void *cbdata) {
  coh__http_req rq;
  coh__http_resp rs;
  conn_req(conn, &rq);
  if (coh__monitor_allow(cbdata, &rq, &rs)) return 1;
  send_resp(conn, &rs);
  return 0;
}

static int request_handler(struct mg_connection *conn, void *cbdata) {
  coh__http_req rq;
  coh__http_resp rs;
  int status;
  conn_req(conn, &rq);
  rq.read = conn_read;
  rq.read_ctx = conn;
  coh__monitor_http(cbdata, &rq, &rs);
  status = send_resp(conn, &rs);
  coh__http_resp_free(&rs);
  return status;
}

/* ---- WebSocket ---------------------------------------------------------------- */

/* Writes one whole text frame to a client; 0, or -1 if the write failed or
 * was cut short, after which nothing more is written to this connection. */
static int ws_write(ws_client *c, const char *data, size_t len) {
  int rc = -1;
  pthread_mutex_lock(&c->write_lock);
  if (!atomic_load(&c->broken)) {
    /* civetweb returns the payload bytes written: fewer (or an error) when
     * its write timeout expired with the socket still full */
    if (mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_TEXT, data, len) == (int)len)
      rc = 0;
    else
      atomic_store(&c->broken, 1);
  }
  pthread_mutex_unlock(&c->write_lock);
  return rc;
}

static void *ws_sender(void *arg) {
  ws_client *c = arg;
  coh_monitor *m = c->m;
  uint64_t have = 0, v;
  size_t len = 0;
  while (!atomic_load(&c->closing) && !atomic_load(&m->stopping)) {
    uint32_t seq;
    if (c->ack_mode) { /* the previous snapshot not handled yet: wait */
      uint32_t a = atomic_load_explicit(&c->acked, memory_order_seq_cst);
      if ((int32_t)(a - c->sent) < 0) {
        coh__futex_wait(&c->acked, a, 1000);
        continue;
      }
    }
    seq = atomic_load_explicit(&m->pub_seq, memory_order_seq_cst);
    v = copy_latest(m, &c->buf, &c->cap, &len, NULL, have);
    if (v != 0 && v != have) {
      c->sent++;
      if (ws_write(c, c->buf, len)) break; /* the client is gone or stuck */
      have = v;
      sleep_ms(PUSH_INTERVAL_MS);
      continue;
    }
    atomic_fetch_add_explicit(&m->pub_waiters, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&m->pub_seq, memory_order_seq_cst) == seq &&
        !atomic_load(&c->closing) && !atomic_load(&m->stopping))
      coh__futex_wait(&m->pub_seq, seq, 1000);
    atomic_fetch_sub_explicit(&m->pub_waiters, 1, memory_order_seq_cst);
  }
  return NULL;
}

/* Cross-site WebSocket hijacking: a browser sends Origin; accept only our
 * own page (same host:port). */
static int origin_ok(const coh__http_req *rq) {
  const char *origin = rq->origin;
  const char *host = rq->host;
  const char *p;
  if (origin == NULL) return 1; /* not a browser */
  if (host == NULL) return 0;
  p = strstr(origin, "://");
  return p != NULL && strcmp(p + 3, host) == 0;
}

int coh__monitor_ws_allow(const coh_monitor *m, const coh__http_req *rq) {
  return host_ok(m, rq) && authorized(m, rq) && origin_ok(rq);
}

static int ws_connect(const struct mg_connection *conn, void *cbdata) {
  coh_monitor *m = cbdata;
  ws_client *c;
  coh__http_req rq;
  conn_req(conn, &rq);
  if (!coh__monitor_ws_allow(m, &rq)) return 1;
  pthread_mutex_lock(&m->ws_lock);
  if (m->n_ws >= WS_MAX_CLIENTS || atomic_load(&m->stopping)) {
    pthread_mutex_unlock(&m->ws_lock);
    return 1;
  }
  m->n_ws++;
  pthread_mutex_unlock(&m->ws_lock);
  c = coh__calloc(1, sizeof *c);
  if (c == NULL) {
    pthread_mutex_lock(&m->ws_lock);
    m->n_ws--;
    pthread_mutex_unlock(&m->ws_lock);
    return 1;
  }
  c->m = m;
  pthread_mutex_init(&c->write_lock, NULL);
  {
    const char *qs = mg_get_request_info(conn)->query_string;
    char v[8];
    c->ack_mode = qs != NULL && mg_get_var(qs, strlen(qs), "ack", v, sizeof v) > 0 &&
                  !strcmp(v, "1");
  }
  mg_set_user_connection_data(conn, c);
  return 0;
}

static void ws_ready(struct mg_connection *conn, void *cbdata) {
  ws_client *c = mg_get_user_connection_data(conn);
  (void)cbdata;
  if (c == NULL) return;
  c->conn = conn;
  if (pthread_create(&c->thread, NULL, ws_sender, c) == 0) c->started = 1;
}

const char *coh__monitor_ws_text(coh_monitor *m, const char *data,
                                 size_t len, int *is_ack, size_t *reply_len) {
  static const char bad[] =
      "{\"error\": \"expected {\\\"control\\\": \\\"pause\\\"|\\\"resume\\\"|"
      "\\\"step\\\"|\\\"stop\\\"}\"}";
  static const char full[] = "{\"error\": \"too many controls waiting\"}";
  coh_control c = parse_control(data, len, is_ack);
  *reply_len = 0;
  if (*is_ack) return NULL; /* flow control, not a control */
  if (c == COH_CONTROL_NONE) {
    *reply_len = sizeof bad - 1;
    return bad;
  }
  if (push_control(m, c)) {
    *reply_len = sizeof full - 1;
    return full;
  }
  *reply_len = 0;
  return NULL;
}

static int ws_data(struct mg_connection *conn, int bits, char *data,
                   size_t len, void *cbdata) {
  ws_client *wc = mg_get_user_connection_data(conn);
  int op = bits & 0x0f, ack = 0;
  const char *reply;
  size_t n = 0;
  if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) return 0;
  if (wc == NULL || atomic_load(&wc->broken)) return 0; /* close it */
  if (op != MG_WEBSOCKET_OPCODE_TEXT) return 1; /* pings are civetweb's */
  reply = coh__monitor_ws_text(cbdata, data, len, &ack, &n);
  if (ack) {
    if (wc->ack_mode) {
      atomic_fetch_add_explicit(&wc->acked, 1, memory_order_seq_cst);
      coh__futex_wake(&wc->acked, INT32_MAX);
    }
    return 1;
  }
  if (reply != NULL) ws_write(wc, reply, n);
  return 1;
}

/* Ends a client's sender and frees it; from the close handler, or from
 * connection_closed if civetweb never called that. */
static void ws_release(const struct mg_connection *conn) {
  ws_client *c = mg_get_user_connection_data(conn);
  coh_monitor *m;
  if (c == NULL) return;
  m = c->m;
  mg_set_user_connection_data(conn, NULL);
  atomic_store(&c->closing, 1);
  coh__futex_wake(&m->pub_seq, INT32_MAX);
  coh__futex_wake(&c->acked, INT32_MAX);
  if (c->started) pthread_join(c->thread, NULL);
  pthread_mutex_destroy(&c->write_lock);
  coh__free(c->buf);
  coh__free(c);
  pthread_mutex_lock(&m->ws_lock);
  m->n_ws--;
  pthread_mutex_unlock(&m->ws_lock);
}

static void ws_close(const struct mg_connection *conn, void *cbdata) {
  (void)cbdata;
  ws_release(conn);
}

static void connection_closed(const struct mg_connection *conn) {
  ws_release(conn);
}

static int log_message(const struct mg_connection *conn, const char *msg) {
  (void)conn;
  (void)msg;
  return 1; /* bad clients must not fill the run's stderr */
}

/* ---- start/stop ------------------------------------------------------------- */

static int token_chars_ok(const char *t) {
  if (*t == '\0' || strlen(t) > 100) return 0;
  for (; *t; t++)
    if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
          (*t >= '0' && *t <= '9') || *t == '-' || *t == '_' || *t == '.' ||
          *t == '~'))
      return 0;
  return 1;
}

static int gen_token(char **out, coh_err *err) {
  unsigned char r[16];
  size_t got = 0, i;
  static const char hex[] = "0123456789abcdef";
  while (got < sizeof r) {
    ssize_t k = getrandom(r + got, sizeof r - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      return coh__err(err, COH_EIO, "--ui: cannot generate a token: %s",
                      strerror(errno));
    got += (size_t)k;
  }
  if ((*out = coh__malloc(33)) == NULL)
    return coh__err(err, COH_ENOMEM, "--ui: out of memory");
  for (i = 0; i < 16; i++) {
    (*out)[2 * i] = hex[r[i] >> 4];
    (*out)[2 * i + 1] = hex[r[i] & 15];
  }
  (*out)[32] = '\0';
  return COH_OK;
}

void coh__monitor_free(coh_monitor *m) {
  size_t i;
  for (i = 0; i < 3; i++) coh__free(m->buf[i].p);
  coh__buf_free(&m->pub_json);
  coh__buf_free(&m->pub_metrics);
  for (i = 0; i < m->n_strs; i++) coh__free(m->strs[i]);
  coh__free(m->strs);
  coh__free(m->str_slot);
  coh__free(m->ring);
  coh__free(m->pend);
  coh__buf_free(&m->pend_arena);
  coh__free(m->url);
  coh__free(m->token);
  pthread_mutex_destroy(&m->snap_lock);
  pthread_mutex_destroy(&m->span_lock);
  pthread_mutex_destroy(&m->ctl_lock);
  pthread_mutex_destroy(&m->ws_lock);
  coh__free(m);
}

int coh__monitor_new(const char *token, coh_monitor **out, coh_err *err) {
  coh_monitor *m = coh__calloc(1, sizeof *m);
  *out = NULL;
  if (m == NULL) return coh__err(err, COH_ENOMEM, "--ui: out of memory");
  pthread_mutex_init(&m->snap_lock, NULL);
  pthread_mutex_init(&m->span_lock, NULL);
  pthread_mutex_init(&m->ctl_lock, NULL);
  pthread_mutex_init(&m->ws_lock, NULL);
  m->tb_back = 0;
  atomic_init(&m->tb_state, 1u);
  m->tb_front = 2;
  m->ring = coh__malloc(SPAN_CAPACITY * sizeof *m->ring);
  if (m->ring == NULL ||
      (token != NULL && (m->token = coh__strdup(token)) == NULL)) {
    coh__monitor_free(m);
    return coh__err(err, COH_ENOMEM, "--ui: out of memory");
  }
  *out = m;
  return COH_OK;
}

int coh_monitor_start(const coh_monitor_opts *opts, coh_monitor **out,
                      coh_err *err) {
  coh_monitor *m = NULL;
  char addr[16], listen[40], etext[256] = "";
  int port = 0, rc;
  struct mg_callbacks cb;
  struct mg_init_data init;
  struct mg_error_data edata;
  unsigned ecode = 0;
  struct mg_server_port ports[2];
  const char *options[] = {
      "listening_ports", listen,
      "num_threads", "32",
      "connection_queue", "64",
      "max_request_size", "16384",
      "request_timeout_ms", "10000",
      "keep_alive_timeout_ms", "500",
      "websocket_timeout_ms", "30000",
      "enable_websocket_ping_pong", "yes",
      "enable_directory_listing", "no",
      "access_control_allow_origin", "",
      "access_control_allow_methods", "",
      "access_control_allow_headers", "",
      NULL};

  *out = NULL;
  if (opts == NULL || opts->listen == NULL)
    return coh__err(err, COH_EINVAL, "--ui: no address given");
  if ((rc = coh__parse_listen("--ui", opts->listen, addr, &port, err))) return rc;
  if (opts->token != NULL && !token_chars_ok(opts->token))
    return coh__err(err, COH_EINVAL,
                    "--ui-token: use 1..100 characters from A-Z a-z 0-9 - _ . ~");
  if ((rc = coh__monitor_new(opts->token, &m, err))) return rc;
  if (opts->token == NULL && strncmp(addr, "127.", 4) != 0) {
    if ((rc = gen_token(&m->token, err))) goto fail;
  }
  snprintf(listen, sizeof listen, "%s:%d", addr, port);

  memset(&cb, 0, sizeof cb);
  cb.log_message = log_message;
  cb.connection_closed = connection_closed;
  memset(&init, 0, sizeof init);
  init.callbacks = &cb;
  init.user_data = m;
  init.configuration_options = options;
  edata.code = &ecode;
  edata.text = etext;
  edata.text_buffer_size = sizeof etext;
  mg_init_library(0);
  m->ctx = mg_start2(&init, &edata);
  if (m->ctx == NULL) {
    mg_exit_library();
    rc = coh__err(err, COH_EIO, "--ui %s: cannot listen: %s", opts->listen,
                  etext[0] ? etext : "unknown error");
    goto fail;
  }
  if (mg_get_server_ports(m->ctx, 2, ports) < 1) {
    rc = coh__err(err, COH_EIO, "--ui %s: no listening port", opts->listen);
    goto fail_ctx;
  }
  m->port = ports[0].port;
  memcpy(m->addr, addr, sizeof m->addr);
  mg_set_auth_handler(m->ctx, "/", auth_handler, m);
  mg_set_request_handler(m->ctx, "/", request_handler, m);
  mg_set_websocket_handler(m->ctx, "/ws", ws_connect, ws_ready, ws_data,
                           ws_close, m);
  {
    coh__buf u = {0};
    coh__buf_printf(&u, "http://%s:%d/", addr, m->port);
    if (m->token) coh__buf_printf(&u, "?token=%s", m->token);
    if (u.oom) {
      coh__buf_free(&u);
      rc = coh__err(err, COH_ENOMEM, "--ui: out of memory");
      goto fail_ctx;
    }
    m->url = u.p;
  }
  *out = m;
  return COH_OK;
fail_ctx:
  mg_stop(m->ctx);
  mg_exit_library();
fail:
  coh__monitor_free(m);
  return rc;
}

/* civetweb's listening thread notices mg_stop only between polls, which
 * last up to 2 s; a connection wakes it, so stopping takes milliseconds. */
static void *nudger(void *arg) {
  coh_monitor *m = arg;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)m->port);
  if (strcmp(m->addr, "0.0.0.0") == 0 || inet_pton(AF_INET, m->addr, &a.sin_addr) != 1)
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  while (!atomic_load(&m->stopped)) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      (void)connect(fd, (struct sockaddr *)&a, sizeof a);
      close(fd);
    }
    sleep_ms(20);
  }
  return NULL;
}

void coh_monitor_stop(coh_monitor *m) {
  pthread_t th;
  int nudging;
  if (m == NULL) return;
  atomic_store(&m->stopping, 1);
  coh__futex_wake(&m->pub_seq, INT32_MAX);
  nudging = pthread_create(&th, NULL, nudger, m) == 0;
  mg_stop(m->ctx); /* joins civetweb's threads; close handlers join ours */
  atomic_store(&m->stopped, 1);
  if (nudging) pthread_join(th, NULL);
  mg_exit_library();
  coh__monitor_free(m);
}

const char *coh_monitor_url(const coh_monitor *m) { return m->url; }
const char *coh_monitor_token(const coh_monitor *m) { return m->token; }
