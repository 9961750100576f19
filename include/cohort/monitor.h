/*
 * cohort/monitor.h — the optional live view of a run: an embedded HTTP +
 * WebSocket server (civetweb), started only when asked (`--ui ADDR:PORT`).
 *
 * The orchestrator never waits for it.  Between ticks the orchestrator
 * *publishes* a snapshot (JSON text, schema below) into a triple buffer and
 * appends trace spans; server threads read the latest snapshot whenever a
 * client asks or a WebSocket needs an update.  Controls travel the other
 * way through a queue the orchestrator polls between ticks.
 *
 * Endpoints:
 *   GET  /                 the dashboard (static files embedded in the binary)
 *   GET  /api/snapshot     the latest snapshot (application/json)
 *   GET  /metrics          Prometheus text exposition, rendered from the snapshot
 *   GET  /trace            Chrome trace event JSON (opens in Perfetto)
 *   POST /api/control      body {"control": "pause"|"resume"|"step"|"stop"}
 *   WS   /ws               the server pushes every new snapshot as a text
 *                          frame; the client may send control JSON as above.
 *                          With /ws?ack=1 the client answers each snapshot
 *                          with {"ack": true} once handled, and the next
 *                          (newest) snapshot is sent only then
 * With a token (always, when bound to a non-loopback address), every request
 * needs `Authorization: Bearer TOKEN` or `?token=TOKEN`, else 401.
 *
 * Snapshot schema (version 1; every field always present):
 * {
 *   "version": 1,
 *   "run": {"scenario": str, "tick": int, "paused": bool, "finished": bool,
 *           "stop_reason": str|null, "digest": str, "wall_seconds": num,
 *           "workers": int, "mode": "run"|"replay"|"resume"|"journal"},
 *   "counters": {"events": int, "agent_steps": int, "messages": int,
 *                "refused": int, "traps": int, "llm_requests": int,
 *                "llm_tokens": int},
 *   "agents": [{"id": str, "state": "alive"|"exited"|"failed",
 *               "inbox": int, "fuel_used": int, "steps": int,
 *               "last_tick": int, "last_event": str}],
 *   "models": [{"name": str, "provider": str, "batch": int, "queued": int,
 *               "max_batch": int, "tokens": int, "tokens_per_second": num}],
 *   "stages": {"queued": H, "agent_step": H, "inference": H,
 *              "delivered": H},
 *       H = {"count": int, "sum_ms": num, "p50_ms": num, "p95_ms": num,
 *            "p99_ms": num, "jitter_ms": num (standard deviation),
 *            "buckets": [[upper_bound_ms, cumulative_count], ...]}
 *       (the last bucket's bound is null, meaning +Inf)
 *   "transcript": [{"tick": int, "agent": str, "text": str}]  (latest 200)
 *   "ticks": [{"tick": int, "wall_ms": num, "events": int, "steps": int}]
 *            (latest 300)
 * }
 * Stages, per task, in wall-clock time (never part of the digest):
 *   queued     a message or LLM result committed → the step that takes it
 *              starts (or an LLM request committed → admitted to the engine)
 *   agent_step one agent step (init or events), on its worker
 *   inference  an LLM request admitted → its last token
 *   delivered  an LLM request's last token → its result is in the inbox
 */
#ifndef COHORT_MONITOR_H
#define COHORT_MONITOR_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coh_monitor coh_monitor;

/* Frees memory cohort returned (also declared in cohort/tokenizer.h). */
void coh_free(void *ptr);

typedef struct coh_monitor_opts {
  const char *listen;  /* "ADDR:PORT"; "PORT" alone means 127.0.0.1:PORT */
  const char *token;   /* NULL: none on loopback, a generated one otherwise */
} coh_monitor_opts;

/* Starts the server.  *out: caller frees with coh_monitor_stop.  Errors:
 * COH_EINVAL (malformed address), COH_EIO (cannot bind: the message says
 * why, e.g. address in use), COH_ENOMEM. */
int coh_monitor_start(const coh_monitor_opts *opts, coh_monitor **out,
                      coh_err *err);
/* Stops the server (closes connections, joins its threads) and frees m. */
void coh_monitor_stop(coh_monitor *m);

/* "http://ADDR:PORT/" (with "?token=..." when a token is required); and the
 * token or NULL.  Borrowed, valid while m lives. */
const char *coh_monitor_url(const coh_monitor *m);
const char *coh_monitor_token(const coh_monitor *m);

/* Orchestrator side.  Publishes a snapshot (JSON text, borrowed, copied):
 * never blocks on server threads (triple buffer swapped with atomics).
 * /metrics parses it (coh_monitor_render_metrics).  For `inspect --ui` and
 * tests; a run publishes coh_monitor_snapshot structs instead. */
void coh_monitor_publish(coh_monitor *m, const char *json, size_t len);

/* ---- the snapshot as a struct ------------------------------------------------
 * What the monitor sink (coh_sim_monitor_sink, cohort/orch.h) fills after a
 * tick: the fields of the JSON schema above, one to one.  Strings and
 * arrays are borrowed for the call that takes the struct. */
#define COH_MONITOR_BUCKETS 19
typedef struct coh_monitor_hist {
  uint64_t count;
  double sum_ms, p50_ms, p95_ms, p99_ms, jitter_ms;
  size_t n_buckets;                         /* at most COH_MONITOR_BUCKETS */
  double le_ms[COH_MONITOR_BUCKETS];        /* increasing upper bounds; the
                                               last may be +Inf (JSON null) */
  uint64_t cumulative[COH_MONITOR_BUCKETS]; /* samples at or below le_ms */
} coh_monitor_hist;
typedef struct coh_monitor_agent {
  const char *id, *state, *last_event;
  int64_t inbox, fuel_used, steps, last_tick;
} coh_monitor_agent;
typedef struct coh_monitor_model {
  const char *name, *provider;
  int64_t batch, queued, max_batch, tokens;
  double tokens_per_second;
} coh_monitor_model;
typedef struct coh_monitor_line {
  int64_t tick;
  const char *agent, *text;
} coh_monitor_line;
typedef struct coh_monitor_tick {
  int64_t tick;
  double wall_ms;
  int64_t events, steps;
} coh_monitor_tick;
enum { COH_STAGE_QUEUED, COH_STAGE_STEP, COH_STAGE_INFER, COH_STAGE_DELIVER,
       COH_STAGE_COUNT };
typedef struct coh_monitor_snapshot {
  /* run */
  const char *scenario, *mode, *digest;
  const char *stop_reason;   /* NULL: null */
  int64_t tick, workers;
  int paused, finished;
  double wall_seconds;
  /* counters */
  int64_t events, agent_steps, messages, refused, traps, llm_requests, llm_tokens;
  const coh_monitor_agent *agents;
  size_t n_agents;
  const coh_monitor_model *models;
  size_t n_models;
  coh_monitor_hist stages[COH_STAGE_COUNT]; /* queued, agent_step, inference, delivered */
  const coh_monitor_line *transcript;       /* oldest first */
  size_t n_transcript;
  const coh_monitor_tick *ticks;            /* oldest first */
  size_t n_ticks;
} coh_monitor_snapshot;

/* Publishes s: the JSON of the schema above (for /api/snapshot and the
 * WebSocket) and the /metrics text are both rendered from the struct, here,
 * into buffers the monitor keeps between publishes; nothing is parsed back.
 * Never blocks on server threads.  Out of memory skips this publish. */
void coh_monitor_publish_snapshot(coh_monitor *m, const coh_monitor_snapshot *s);

/* The renderers of coh_monitor_publish_snapshot, exposed for tests: *out
 * (caller frees with coh_free) is exactly what /api/snapshot, resp.
 * /metrics, serve for s.  Errors: COH_ENOMEM. */
int coh_monitor_snapshot_json(const coh_monitor_snapshot *s, char **out,
                              size_t *out_len, coh_err *err);
int coh_monitor_snapshot_metrics(const coh_monitor_snapshot *s, char **out,
                                 size_t *out_len, coh_err *err);

/* One trace span: a complete event ("X") on a track, optionally a step of
 * a flow that correlates the stages of one task. */
typedef struct coh_trace_span {
  const char *name;    /* e.g. "step", "inference", "tick" (copied) */
  const char *track;   /* agent id or model name (copied) */
  int track_kind;      /* 0: agent, 1: model, 2: orchestrator */
  double ts_us;        /* start, microseconds since the run started */
  double dur_us;
  uint64_t flow;       /* task token; 0: none */
  int flow_phase;      /* 0: none, 1: start, 2: step, 3: end */
} coh_trace_span;

/* Appends spans to the trace (bounded: the oldest are dropped beyond the
 * capacity).  Never waits: if a server thread is serialising the trace at
 * that moment, the spans are kept for the next call. */
void coh_monitor_trace(coh_monitor *m, const coh_trace_span *spans, size_t n);

typedef enum coh_control {
  COH_CONTROL_NONE = 0,
  COH_CONTROL_PAUSE,
  COH_CONTROL_RESUME,
  COH_CONTROL_STEP,   /* while paused: run exactly one tick */
  COH_CONTROL_STOP
} coh_control;

/* The next control a client sent, or NONE.  Orchestrator thread only. */
coh_control coh_monitor_next_control(coh_monitor *m);
/* Blocks until a control arrives (for a paused run); returns it. */
coh_control coh_monitor_wait_control(coh_monitor *m);
/* Queues control c as if a client had sent it; any thread (the CLI posts
 * STOP when a signal interrupts a paused run).  0, or -1 if c is not a
 * control or the queue (64) is full. */
int coh_monitor_post_control(coh_monitor *m, coh_control c);

/* Renderers, exposed for tests and for `inspect --ui`.  *out: caller frees
 * with coh_free.  Errors: COH_EFORMAT (snapshot not of the schema above),
 * COH_ENOMEM. */
int coh_monitor_render_metrics(const char *snapshot_json, size_t len,
                               char **out, size_t *out_len, coh_err *err);
int coh_monitor_render_trace(const coh_trace_span *spans, size_t n,
                             char **out, size_t *out_len, coh_err *err);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_MONITOR_H */
