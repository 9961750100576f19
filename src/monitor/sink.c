/*
 * sink.c — the monitor as a sink of the tick machine (cohort/orch.h,
 * coh_sim_monitor_sink): everything a live view keeps about a run — stage
 * latency histograms, the agents' step counts and last events, the tick
 * timeline, the transcript ring, trace spans — lives here, fed by the
 * sink's callbacks (committed events, and the observers step, llm_done,
 * tick_durable, between_ticks), never by fields of the core.  After each
 * durable tick it fills a coh_monitor_snapshot and publishes it (at most
 * ten a second, unless paused); between ticks it answers the dashboard's
 * pause / resume / step / stop.  All wall-clock: nothing here reaches the
 * journal or the digest.  Runs on the tick thread only.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/journal.h"
#include "cohort/monitor.h"
#include "cohort/orch.h"
#include "monitor_int.h"

#define WINDOW 2048     /* latest samples per stage, for percentiles */
#define TR_MAX 200      /* transcript lines kept */
#define TL_MAX 300      /* ticks kept on the timeline */
#define TEXT_MAX 500    /* bytes of an emit kept for the transcript */

/* Upper bounds of the histogram buckets in milliseconds; the last is +Inf. */
static const double bucket_ms[COH_MONITOR_BUCKETS - 1] = {
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};

typedef struct stage_hist {
  uint64_t count;
  double sum_ms;
  uint64_t buckets[COH_MONITOR_BUCKETS]; /* per bucket (not cumulative) */
  double window[WINDOW];                 /* latest samples, for percentiles */
  size_t wn, wpos;
} stage_hist;

/* What the dashboard shows of an agent beyond the core's state. */
typedef struct agent_view {
  uint64_t steps, fuel;
  int64_t last_tick;
  char last_event[120];
} agent_view;

typedef struct msink {
  coh_monitor *m;
  coh_sim *sim;
  char *scenario;
  const char *mode;
  coh_journal *j;
  stage_hist stages[COH_STAGE_COUNT];
  agent_view *av;             /* by agent index; grows with spawns */
  size_t n_av, cap_av;
  uint64_t *model_tokens;     /* by model index */
  int n_models;
  int64_t messages, refused;  /* sent by agents (not the scenario's) */
  int64_t tick_events, tick_steps;
  int stepping;               /* a step of this tick was committed: the
                                 tick's inputs (scenario messages) are over */
  coh_monitor_tick timeline[TL_MAX];
  size_t tl_n, tl_pos;
  struct tr_entry { int64_t tick; int agent; char *text; } transcript[TR_MAX];
  size_t tr_n, tr_pos;
  coh_trace_span *spans;      /* since the last publish */
  size_t n_spans, cap_spans;
  double last_publish;
  int paused, step_once;
  /* the snapshot's arrays, kept between publishes */
  coh_monitor_agent *snap_agents;
  size_t cap_snap_agents;
  coh_monitor_model *snap_models;
  coh_monitor_line snap_lines[TR_MAX];
  coh_monitor_tick snap_ticks[TL_MAX];
  double sorted[WINDOW];
} msink;

static void hist_add(stage_hist *h, double ms) {
  int b = 0;
  if (ms < 0) ms = 0;
  while (b < COH_MONITOR_BUCKETS - 1 && ms > bucket_ms[b]) b++;
  h->buckets[b]++;
  h->count++;
  h->sum_ms += ms;
  h->window[h->wpos] = ms;
  h->wpos = (h->wpos + 1) % WINDOW;
  if (h->wn < WINDOW) h->wn++;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void hist_view(msink *k, const stage_hist *h, coh_monitor_hist *out) {
  double *sorted = k->sorted, mean = 0, var = 0;
  uint64_t cum = 0;
  size_t i;
  memcpy(sorted, h->window, h->wn * sizeof *sorted);
  if (h->wn > 0) qsort(sorted, h->wn, sizeof *sorted, cmp_double);
  for (i = 0; i < h->wn; i++) mean += sorted[i];
  mean = h->wn ? mean / (double)h->wn : 0;
  for (i = 0; i < h->wn; i++) var += (sorted[i] - mean) * (sorted[i] - mean);
#define PCT(p) (h->wn ? sorted[(size_t)((double)(h->wn - 1) * (p) + 0.5)] : 0.0)
  out->count = h->count;
  out->sum_ms = h->sum_ms;
  out->p50_ms = PCT(0.50);
  out->p95_ms = PCT(0.95);
  out->p99_ms = PCT(0.99);
  out->jitter_ms = h->wn ? sqrt(var / (double)h->wn) : 0.0;
#undef PCT
  out->n_buckets = COH_MONITOR_BUCKETS;
  for (i = 0; i < COH_MONITOR_BUCKETS; i++) {
    cum += h->buckets[i];
    out->le_ms[i] = i < COH_MONITOR_BUCKETS - 1 ? bucket_ms[i] : INFINITY;
    out->cumulative[i] = cum;
  }
}

/* The view of agent k, grown to hold it (NULL: out of memory; the view is
 * then incomplete, never the run). */
static agent_view *view_of(msink *k, int agent) {
  if (agent < 0) return NULL;
  if ((size_t)agent >= k->n_av) {
    agent_view *n = coh__grow(k->av, &k->cap_av, (size_t)agent + 1, sizeof *n, 64);
    if (n == NULL) return NULL;
    k->av = n;
    memset(k->av + k->n_av, 0, ((size_t)agent + 1 - k->n_av) * sizeof *n);
    k->n_av = (size_t)agent + 1;
  }
  return &k->av[agent];
}

/* "kind: payload" for the dashboard, printable ASCII only. */
static void set_last_event(msink *k, int agent, const char *kind, const char *p, size_t n) {
  agent_view *a = view_of(k, agent);
  size_t len, i;
  if (a == NULL) return;
  len = (size_t)snprintf(a->last_event, sizeof a->last_event, "%s: ", kind);
  for (i = 0; i < n && len + 1 < sizeof a->last_event; i++) {
    unsigned char c = (unsigned char)p[i];
    a->last_event[len++] = c >= 32 && c < 127 ? (char)c : c == '\n' ? ' ' : '?';
  }
  a->last_event[len] = '\0';
}

static void span(msink *k, const char *name, const char *track, int kind, double t0, double t1,
                 uint64_t flow, int phase) {
  coh_sim_stats st;
  coh_trace_span *s;
  if (k->n_spans == k->cap_spans) {
    coh_trace_span *n;
    if (k->cap_spans >= 1u << 20) return; /* the monitor is not draining: drop */
    n = coh__grow(k->spans, &k->cap_spans, k->n_spans + 1, sizeof *n, 256);
    if (n == NULL) return;
    k->spans = n;
  }
  coh_sim_get_stats(k->sim, &st);
  s = &k->spans[k->n_spans++];
  s->name = name; /* static strings and agent/model names outlive the flush */
  s->track = track;
  s->track_kind = kind;
  s->ts_us = (t0 - st.t0) * 1e6;
  s->dur_us = t1 > t0 ? (t1 - t0) * 1e6 : 0;
  s->flow = flow;
  s->flow_phase = phase;
}

/* A task token that correlates an LLM request's stages in the trace. */
static uint64_t flow_id(int agent, int64_t number) {
  return ((uint64_t)(agent + 1) << 32) | (uint64_t)(number & 0xffffffff);
}

static const char *agent_id(const msink *k, int agent) {
  coh_sim_agent_info ai;
  return coh_sim_get_agent(k->sim, agent, &ai) == COH_OK ? ai.id : "";
}

static void publish(msink *k, int force, int finished, const char *stop) {
  double now = coh__wall_seconds();
  char digest[65] = "";
  coh_monitor_snapshot s;
  coh_sim_stats st;
  size_t i;
  int n;
  if (k->n_spans > 0) {
    coh_monitor_trace(k->m, k->spans, k->n_spans);
    k->n_spans = 0;
  }
  /* at most ten snapshots a second: the monitor must cost the run nothing */
  if (!force && now - k->last_publish < 0.1) return;
  k->last_publish = now;
  coh_sim_get_stats(k->sim, &st);
  if (k->j) coh_journal_digest(k->j, digest);
  memset(&s, 0, sizeof s);
  s.scenario = k->scenario;
  s.mode = k->mode;
  s.digest = digest;
  s.stop_reason = stop;
  s.tick = st.tick;
  s.workers = st.workers;
  s.paused = k->paused;
  s.finished = finished;
  s.wall_seconds = now - st.t0;
  s.events = st.events;
  s.agent_steps = st.agent_steps;
  s.messages = k->messages;
  s.refused = k->refused;
  s.traps = st.traps;
  s.llm_requests = st.llm_requests;
  s.llm_tokens = st.llm_tokens;
  if ((size_t)st.n_agents > k->cap_snap_agents) {
    coh_monitor_agent *a = coh__grow(k->snap_agents, &k->cap_snap_agents, (size_t)st.n_agents,
                                     sizeof *a, 64);
    if (a == NULL) return; /* out of memory: the dashboard keeps the previous one */
    k->snap_agents = a;
  }
  for (n = 0; n < st.n_agents; n++) {
    coh_sim_agent_info ai;
    coh_monitor_agent *a = &k->snap_agents[n];
    const agent_view *v = (size_t)n < k->n_av ? &k->av[n] : NULL;
    (void)coh_sim_get_agent(k->sim, n, &ai);
    a->id = ai.id;
    a->state = ai.state;
    a->inbox = ai.inbox;
    a->fuel_used = v ? (int64_t)v->fuel : 0;
    a->steps = v ? (int64_t)v->steps : 0;
    a->last_tick = v ? v->last_tick : 0;
    a->last_event = v ? v->last_event : "";
  }
  s.agents = k->snap_agents;
  s.n_agents = (size_t)st.n_agents;
  for (n = 0; n < k->n_models && n < st.n_models; n++) {
    coh_sim_model_info mi;
    coh_monitor_model *ms = &k->snap_models[n];
    (void)coh_sim_get_model(k->sim, n, &mi);
    ms->name = mi.name;
    ms->provider = mi.provider;
    ms->batch = mi.batch;
    ms->queued = mi.queued;
    ms->max_batch = mi.max_batch;
    ms->tokens = (int64_t)k->model_tokens[n];
    ms->tokens_per_second = now > st.t0 ? (double)k->model_tokens[n] / (now - st.t0) : 0;
  }
  s.models = k->snap_models;
  s.n_models = (size_t)n;
  for (n = 0; n < COH_STAGE_COUNT; n++) hist_view(k, &k->stages[n], &s.stages[n]);
  for (i = 0; i < k->tr_n; i++) {
    const struct tr_entry *e = &k->transcript[(k->tr_pos + TR_MAX - k->tr_n + i) % TR_MAX];
    k->snap_lines[i].tick = e->tick;
    k->snap_lines[i].agent = agent_id(k, e->agent);
    k->snap_lines[i].text = e->text;
  }
  s.transcript = k->snap_lines;
  s.n_transcript = k->tr_n;
  for (i = 0; i < k->tl_n; i++)
    k->snap_ticks[i] = k->timeline[(k->tl_pos + TL_MAX - k->tl_n + i) % TL_MAX];
  s.ticks = k->snap_ticks;
  s.n_ticks = k->tl_n;
  coh_monitor_publish_snapshot(k->m, &s);
}

/* ---- the sink's callbacks ------------------------------------------------------ */

static int on_tick_begin(void *ud, int64_t tick, int *active, coh_err *err) {
  msink *k = ud;
  (void)tick;
  (void)active;
  (void)err;
  k->tick_events = 0;
  k->tick_steps = 0;
  k->stepping = 0;
  return COH_OK;
}

static void transcript_add(msink *k, int64_t tick, int agent, const char *text, size_t len) {
  struct tr_entry *e;
  char *copy;
  if (len > TEXT_MAX) len = TEXT_MAX;
  copy = coh__malloc(len + 1);
  if (copy == NULL) return;
  memcpy(copy, text, len);
  copy[len] = '\0';
  e = &k->transcript[k->tr_pos];
  if (k->tr_n == TR_MAX) coh__free(e->text);
  else k->tr_n++;
  e->tick = tick;
  e->agent = agent;
  e->text = copy;
  k->tr_pos = (k->tr_pos + 1) % TR_MAX;
}

/* The event's payload parsed (NULL when it is not JSON). */
static json_t *payload_json(const coh_jevent *ev) {
  return json_loadb(ev->payload, ev->payload_len, 0, NULL);
}

static int on_event(void *ud, const coh_jevent *ev, coh_err *err) {
  msink *k = ud;
  const char *kind = ev->kind;
  (void)err;
  k->tick_events++;
  /* a tick's scenario messages are committed before its first step; an
   * agent's sends after its step */
  if (!strcmp(kind, "message")) {
    k->messages += k->stepping;
  } else if (!strcmp(kind, "refused")) {
    json_t *j = payload_json(ev);
    const char *reason = json_string_value(json_object_get(j, "reason"));
    const char *why = json_string_value(json_object_get(j, "error"));
    k->refused++;
    if (reason && !strcmp(reason, "schema") && why)
      set_last_event(k, coh_sim_agent_index(k->sim, ev->source), "refused", why, strlen(why));
    json_decref(j);
  } else if (!strcmp(kind, "emit")) {
    int a = coh_sim_agent_index(k->sim, ev->source);
    if (a >= 0) transcript_add(k, ev->tick, a, ev->payload, ev->payload_len);
    set_last_event(k, a, "emit", ev->payload, ev->payload_len);
  } else if (!strcmp(kind, "llm_request")) {
    json_t *j = payload_json(ev);
    int a = coh_sim_agent_index(k->sim, ev->source);
    double now = coh__wall_seconds();
    if (a >= 0)
      span(k, "llm request", agent_id(k, a), 0, now, now,
           flow_id(a, (int64_t)json_integer_value(json_object_get(j, "id"))), 1);
    json_decref(j);
  } else if (!strcmp(kind, "llm_result")) {
    set_last_event(k, coh_sim_agent_index(k->sim, ev->target), "llm_result", ev->payload,
                   ev->payload_len);
  }
  return COH_OK;
}

static void on_step(void *ud, const coh_sim_step_info *st) {
  msink *k = ud;
  agent_view *a = view_of(k, st->agent);
  size_t i;
  k->tick_steps++;
  k->stepping = 1;
  if (a) {
    a->steps++;
    a->fuel += st->fuel;
    a->last_tick = coh_sim_next_tick(k->sim);
  }
  hist_add(&k->stages[COH_STAGE_STEP], (st->t1 - st->t0) * 1e3);
  for (i = 0; i < st->n_queued; i++) hist_add(&k->stages[COH_STAGE_QUEUED], st->queued_ms[i]);
  span(k, st->is_init ? "init" : "step", agent_id(k, st->agent), 0, st->t0, st->t1, 0, 0);
}

static void on_llm_done(void *ud, const coh_sim_llm_info *li) {
  msink *k = ud;
  double now = coh__wall_seconds();
  uint64_t fl = flow_id(li->agent, li->number);
  coh_sim_model_info mi;
  const char *model = coh_sim_get_model(k->sim, li->model, &mi) == COH_OK ? mi.name : "";
  if (li->t_admit > 0) {
    hist_add(&k->stages[COH_STAGE_QUEUED], (li->t_admit - li->t_commit) * 1e3);
    hist_add(&k->stages[COH_STAGE_INFER], (li->t_done - li->t_admit) * 1e3);
    span(k, "inference", model, 1, li->t_admit, li->t_done, fl, 2);
  }
  hist_add(&k->stages[COH_STAGE_DELIVER], (now - li->t_done) * 1e3);
  span(k, "llm result", agent_id(k, li->agent), 0, now, now, fl, 3);
  if (li->model >= 0 && li->model < k->n_models) k->model_tokens[li->model] += (uint64_t)li->tokens;
}

/* Pause / resume / single-step / stop from the dashboard, between ticks:
 * they change when ticks run, never what a tick does. */
static int on_between_ticks(void *ud, coh_err *err) {
  msink *k = ud;
  (void)err;
  if (k->step_once) { /* a single step just ran: pause again */
    k->step_once = 0;
    k->paused = 1;
    publish(k, 1, 0, NULL);
  }
  for (;;) {
    coh_control c = k->paused ? coh_monitor_wait_control(k->m) : coh_monitor_next_control(k->m);
    switch (c) {
      case COH_CONTROL_NONE:
        return COH_OK;
      case COH_CONTROL_PAUSE:
        k->paused = 1;
        publish(k, 1, 0, NULL);
        break;
      case COH_CONTROL_RESUME:
        k->paused = 0;
        publish(k, 1, 0, NULL);
        return COH_OK;
      case COH_CONTROL_STEP:
        if (k->paused) {
          k->paused = 0;
          k->step_once = 1;
          return COH_OK;
        }
        break;
      case COH_CONTROL_STOP:
        return COH_SINK_STOP;
    }
  }
}

static int on_tick_durable(void *ud, int64_t tick, double t0, coh_err *err) {
  msink *k = ud;
  coh_monitor_tick *e = &k->timeline[k->tl_pos];
  coh_sim_stats st;
  int n;
  (void)err;
  coh_sim_get_stats(k->sim, &st);
  for (n = 0; n < st.n_models; n++) {
    coh_sim_model_info mi;
    if (coh_sim_get_model(k->sim, n, &mi) == COH_OK && mi.step_t1 > t0)
      span(k, "engine step", mi.name, 1, mi.step_t0, mi.step_t1, 0, 0);
  }
  e->tick = tick;
  e->wall_ms = (coh__wall_seconds() - t0) * 1e3;
  e->events = k->tick_events;
  e->steps = k->tick_steps;
  k->tl_pos = (k->tl_pos + 1) % TL_MAX;
  if (k->tl_n < TL_MAX) k->tl_n++;
  span(k, "tick", "orchestrator", 2, t0, coh__wall_seconds(), 0, 0);
  publish(k, k->paused || k->step_once, 0, NULL);
  return COH_OK;
}

static void msink_free(msink *k) {
  size_t i;
  for (i = 0; i < k->tr_n; i++)
    coh__free(k->transcript[(k->tr_pos + TR_MAX - k->tr_n + i) % TR_MAX].text);
  coh__free(k->av);
  coh__free(k->model_tokens);
  coh__free(k->spans);
  coh__free(k->snap_agents);
  coh__free(k->snap_models);
  coh__free(k->scenario);
  coh__free(k);
}

/* The last snapshot ("finished", with the stop reason) when the run ended
 * well; then the sink is freed. */
static int on_close(void *ud, int failed, coh_err *err) {
  msink *k = ud;
  (void)err;
  if (!failed) {
    const char *stop = coh_sim_stopped(k->sim);
    publish(k, 1, 1, stop ? stop : "max_ticks");
  }
  msink_free(k);
  return COH_OK;
}

int coh_sim_monitor_sink(coh_monitor *m, coh_sim *sim, const char *scenario, const char *mode,
                         coh_journal *j, coh_sim_sink *out, coh_err *err) {
  msink *k;
  coh_sim_stats st;
  memset(out, 0, sizeof *out);
  if (m == NULL || sim == NULL)
    return coh__err(err, COH_EINVAL, "monitor sink: no monitor or no run");
  k = coh__calloc(1, sizeof *k);
  if (k == NULL) return coh__err(err, COH_ENOMEM, "monitor sink: out of memory");
  coh_sim_get_stats(sim, &st);
  k->m = m;
  k->sim = sim;
  k->mode = mode ? mode : "run";
  k->j = j;
  k->scenario = coh__strdup(scenario ? scenario : "");
  k->n_models = st.n_models;
  k->model_tokens = coh__calloc((size_t)st.n_models + 1, sizeof *k->model_tokens);
  k->snap_models = coh__calloc((size_t)st.n_models + 1, sizeof *k->snap_models);
  if (k->scenario == NULL || k->model_tokens == NULL || k->snap_models == NULL) {
    msink_free(k);
    return coh__err(err, COH_ENOMEM, "monitor sink: out of memory");
  }
  out->name = "monitor";
  out->ud = k;
  out->tick_begin = on_tick_begin;
  out->event = on_event;
  out->close = on_close;
  out->durable = 1;
  out->between_ticks = on_between_ticks;
  out->step = on_step;
  out->llm_done = on_llm_done;
  out->tick_durable = on_tick_durable;
  return COH_OK;
}
