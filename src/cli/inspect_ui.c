/*
 * inspect_ui.c — `cohort inspect RUN.db --ui ADDR:PORT`: the monitor's
 * dashboard over a finished (or still growing) journal.  One walk over the
 * events builds a snapshot (coh_monitor_snapshot: counters, agents' last
 * events and states, transcript, models) and trace spans from the events'
 * wall-clock times; the ticks table gives each tick's wall time.  Stage
 * latencies are not in a journal: those histograms are empty (count 0) and
 * the snapshot's run.mode "journal" tells the dashboard so.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli_int.h"
#include "cohort/journal.h"
#include "cohort/monitor.h"
#include "util/util_int.h"

#define TRANSCRIPT_MAX 200
#define TICKS_MAX 300
#define LAST_EVENT_MAX 120

typedef struct flow_in {
  uint64_t flow;
  int64_t tick; /* committed at; consumed by a step at a later tick */
} flow_in;

typedef struct llm_pending {
  int64_t id;
  uint64_t flow;
  double ts;
} llm_pending;

typedef struct agent_rec {
  char *id;
  int state; /* 0 alive, 1 exited, 2 failed */
  int64_t received, consumed, fuel, steps, last_tick;
  char *last_event;
  flow_in *in;
  size_t n_in, cap_in;
  llm_pending *llm;
  size_t n_llm, cap_llm;
} agent_rec;

typedef struct model_rec {
  char *name;
  int64_t tokens;
} model_rec;

typedef struct tick_rec {
  int64_t tick, events, steps;
  double wall_ms;
} tick_rec;

typedef struct builder {
  json_t *agent_index, *model_index; /* id → index */
  agent_rec *agents;
  size_t n_agents, cap_agents;
  model_rec *models;
  size_t n_models, cap_models;
  int64_t events, steps, messages, refused, traps, llm_requests, llm_tokens;
  json_t *transcript; /* ring of the latest TRANSCRIPT_MAX */
  size_t tr_next;
  tick_rec *ticks;
  size_t n_ticks, cap_ticks;
  /* trace */
  coh_trace_span *spans;
  size_t n_spans, cap_spans;
  int64_t cur_tick;
  double tick_start_us, max_wall_us;
  int oom;
} builder;

static void *grow(void *p, size_t *cap, size_t n, size_t elem, int *oom) {
  size_t nc;
  void *np;
  if (n < *cap) return p;
  nc = *cap ? *cap * 2 : 16;
  np = coh__realloc(p, nc * elem);
  if (np == NULL) {
    *oom = 1;
    return NULL;
  }
  *cap = nc;
  return np;
}

static void add_span(builder *b, const char *name, const char *track, int kind,
                     double ts, double dur, uint64_t flow, int phase) {
  coh_trace_span *s;
  coh_trace_span *np = grow(b->spans, &b->cap_spans, b->n_spans, sizeof *s,
                            &b->oom);
  if (np == NULL) return;
  b->spans = np;
  s = &b->spans[b->n_spans++];
  s->name = name;
  s->track = track;
  s->track_kind = kind;
  s->ts_us = ts;
  s->dur_us = dur < 0 ? 0 : dur;
  s->flow = flow;
  s->flow_phase = phase;
}

/* Index of agent id (added if new), or -1 when out of memory. */
static long agent_of(builder *b, const char *id) {
  json_t *v = json_object_get(b->agent_index, id);
  agent_rec *na;
  if (v) return (long)json_integer_value(v);
  na = grow(b->agents, &b->cap_agents, b->n_agents, sizeof *na, &b->oom);
  if (na == NULL) return -1;
  b->agents = na;
  memset(&na[b->n_agents], 0, sizeof *na);
  if ((na[b->n_agents].id = coh__strdup(id)) == NULL ||
      json_object_set_new(b->agent_index, id,
                          json_integer((json_int_t)b->n_agents))) {
    coh__free(na[b->n_agents].id);
    b->oom = 1;
    return -1;
  }
  return (long)b->n_agents++;
}

static long model_of(builder *b, const char *name) {
  json_t *v = json_object_get(b->model_index, name);
  model_rec *nm;
  if (v) return (long)json_integer_value(v);
  nm = grow(b->models, &b->cap_models, b->n_models, sizeof *nm, &b->oom);
  if (nm == NULL) return -1;
  b->models = nm;
  memset(&nm[b->n_models], 0, sizeof *nm);
  if ((nm[b->n_models].name = coh__strdup(name)) == NULL ||
      json_object_set_new(b->model_index, name,
                          json_integer((json_int_t)b->n_models))) {
    coh__free(nm[b->n_models].name);
    b->oom = 1;
    return -1;
  }
  return (long)b->n_models++;
}

/* "kind: payload" shortened to one line, as the agents table shows it. */
static char *describe(const coh_jevent *ev) {
  coh__buf d = {0};
  size_t i, n = ev->payload_len;
  const unsigned char *p = ev->payload;
  coh__buf_printf(&d, "%s", ev->kind);
  if (ev->target[0]) coh__buf_printf(&d, " → %s", ev->target);
  if (n) coh__buf_add(&d, ": ", 2);
  for (i = 0; i < n && d.n < LAST_EVENT_MAX; i++)
    coh__buf_addc(&d, p[i] < 0x20 ? ' ' : (char)p[i]);
  if (i < n) coh__buf_add(&d, "…", strlen("…"));
  if (d.oom) {
    coh__buf_free(&d);
    return NULL;
  }
  return d.p;
}

static void end_tick(builder *b) {
  if (b->cur_tick >= 0)
    add_span(b, "tick", "orchestrator", 2, b->tick_start_us,
             b->max_wall_us - b->tick_start_us, 0, 0);
}

static int on_event(void *ud, const coh_jevent *ev) {
  builder *b = ud;
  double wall = (double)ev->wall_us;
  long a = -1, t = -1;
  json_t *pl = NULL;
  if (ev->tick != b->cur_tick) { /* a tick starts where the last one ended */
    end_tick(b);
    b->cur_tick = ev->tick;
    b->tick_start_us = b->max_wall_us;
  }
  if (wall > b->max_wall_us) b->max_wall_us = wall;
  b->events++;
  if (!strcmp(ev->kind, "init") || !strcmp(ev->kind, "step")) {
    agent_rec *r;
    size_t i, keep = 0;
    if ((a = agent_of(b, ev->source)) < 0) return 1;
    r = &b->agents[a];
    pl = json_loadb(ev->payload, ev->payload_len, 0, NULL);
    r->consumed += json_integer_value(json_object_get(pl, "events"));
    r->fuel += json_integer_value(json_object_get(pl, "fuel"));
    r->steps++;
    b->steps++;
    /* span names must outlive the walk: ev->kind is the journal's */
    add_span(b, ev->kind[0] == 'i' ? "init" : "step", r->id, 0,
             b->tick_start_us, wall - b->tick_start_us, 0, 0);
    /* what arrived before this tick ends its arrow here */
    for (i = 0; i < r->n_in; i++) {
      if (r->in[i].tick < ev->tick)
        add_span(b, "receive", r->id, 0, b->tick_start_us, 0, r->in[i].flow, 3);
      else
        r->in[keep++] = r->in[i];
    }
    r->n_in = keep;
  } else if (!strcmp(ev->kind, "message") || !strcmp(ev->kind, "llm_result") ||
             !strcmp(ev->kind, "timer")) {
    uint64_t flow = (uint64_t)ev->seq;
    if (ev->target[0] && (t = agent_of(b, ev->target)) < 0) return 1;
    if (!strcmp(ev->kind, "message")) {
      b->messages++;
      if (strcmp(ev->source, "scenario") != 0) {
        if ((a = agent_of(b, ev->source)) < 0) return 1;
        add_span(b, "send", b->agents[a].id, 0, wall, 0, flow, 1);
      } else {
        add_span(b, "scenario message", "orchestrator", 2, wall, 0, flow, 1);
      }
    } else if (!strcmp(ev->kind, "llm_result") && t >= 0) {
      agent_rec *r = &b->agents[t];
      long mi = model_of(b, ev->source);
      int64_t id;
      size_t i;
      if (mi < 0) return 1;
      pl = json_loadb(ev->payload, ev->payload_len, 0, NULL);
      id = json_integer_value(json_object_get(pl, "id"));
      b->models[mi].tokens += json_integer_value(json_object_get(pl, "tokens"));
      b->llm_tokens += json_integer_value(json_object_get(pl, "tokens"));
      flow = 0;
      for (i = 0; i < r->n_llm; i++)
        if (r->llm[i].id == id) {
          flow = r->llm[i].flow;
          add_span(b, "inference", b->models[mi].name, 1, r->llm[i].ts,
                   wall - r->llm[i].ts, flow, 2);
          r->llm[i] = r->llm[--r->n_llm];
          break;
        }
      if (flow == 0) flow = (uint64_t)ev->seq;
    }
    if (t >= 0 && strcmp(ev->kind, "timer") != 0) {
      agent_rec *r = &b->agents[t];
      flow_in *ni = grow(r->in, &r->cap_in, r->n_in, sizeof *ni, &b->oom);
      if (ni == NULL) return 1;
      r->in = ni;
      r->in[r->n_in].flow = flow;
      r->in[r->n_in++].tick = ev->tick;
    }
    if (t >= 0) b->agents[t].received++;
  } else if (!strcmp(ev->kind, "llm_request")) {
    agent_rec *r;
    llm_pending *np;
    if ((a = agent_of(b, ev->source)) < 0) return 1;
    r = &b->agents[a];
    b->llm_requests++;
    np = grow(r->llm, &r->cap_llm, r->n_llm, sizeof *np, &b->oom);
    if (np == NULL) return 1;
    r->llm = np;
    pl = json_loadb(ev->payload, ev->payload_len, 0, NULL);
    r->llm[r->n_llm].id = json_integer_value(json_object_get(pl, "id"));
    r->llm[r->n_llm].flow = (uint64_t)ev->seq;
    r->llm[r->n_llm++].ts = wall;
    add_span(b, "llm_request", r->id, 0, wall, 0, (uint64_t)ev->seq, 1);
  } else if (!strcmp(ev->kind, "refused")) {
    b->refused++;
  } else if (!strcmp(ev->kind, "trap") || !strcmp(ev->kind, "exit")) {
    if ((a = agent_of(b, ev->source)) < 0) return 1;
    if (ev->kind[0] == 't') b->traps++;
    b->agents[a].state = ev->kind[0] == 't' ? 2 : 1;
  } else if (!strcmp(ev->kind, "emit")) {
    json_t *line = json_object();
    json_t *text = json_stringn((const char *)ev->payload, ev->payload_len);
    if (line == NULL) return b->oom = 1;
    json_object_set_new(line, "tick", json_integer(ev->tick));
    json_object_set_new(line, "agent", json_string(ev->source));
    json_object_set_new(line, "text", text ? text : json_string("(not UTF-8)"));
    if (json_array_size(b->transcript) < TRANSCRIPT_MAX)
      json_array_append_new(b->transcript, line);
    else
      json_array_set_new(b->transcript, b->tr_next, line);
    b->tr_next = (b->tr_next + 1) % TRANSCRIPT_MAX;
  }
  json_decref(pl);
  /* the agent's last event: anything it did (source), else what it got */
  if (a < 0 && strcmp(ev->source, "scenario") != 0) {
    json_t *v = json_object_get(b->agent_index, ev->source);
    if (v) a = (long)json_integer_value(v);
  }
  if (a >= 0) {
    char *d = describe(ev);
    if (d == NULL) return b->oom = 1;
    coh__free(b->agents[a].last_event);
    b->agents[a].last_event = d;
    b->agents[a].last_tick = ev->tick;
  }
  return b->oom;
}

static int on_tick(void *ud, int64_t tick, int64_t last_seq, int64_t wall_us) {
  builder *b = ud;
  tick_rec *nt = grow(b->ticks, &b->cap_ticks, b->n_ticks, sizeof *nt, &b->oom);
  (void)last_seq;
  if (nt == NULL) return 1;
  b->ticks = nt;
  memset(&nt[b->n_ticks], 0, sizeof *nt);
  nt[b->n_ticks].tick = tick;
  nt[b->n_ticks++].wall_ms = (double)wall_us / 1000.0;
  return 0;
}

/* Events and steps per tick, for the ticks table (walk after on_tick). */
typedef struct tick_count {
  builder *b;
  size_t i;
} tick_count;

static int count_tick(void *ud, const coh_jevent *ev) {
  tick_count *c = ud;
  builder *b = c->b;
  while (c->i < b->n_ticks && b->ticks[c->i].tick < ev->tick) c->i++;
  if (c->i < b->n_ticks && b->ticks[c->i].tick == ev->tick) {
    b->ticks[c->i].events++;
    if (!strcmp(ev->kind, "step") || !strcmp(ev->kind, "init"))
      b->ticks[c->i].steps++;
  }
  return 0;
}

/* The journal's view as the monitor's snapshot struct, published as a run
 * publishes its own (coh_monitor_publish_snapshot renders the JSON and the
 * metrics).  Stage latencies are not journaled: each histogram is empty,
 * with one bucket (+Inf, 0).  Returns 0, or -1 out of memory. */
static int publish_snapshot(builder *b, coh_journal *j, const char *path, coh_monitor *m) {
  static const char *const states[] = {"alive", "exited", "failed"};
  coh_monitor_snapshot s;
  coh_monitor_agent *agents = NULL;
  coh_monitor_model *models = NULL;
  coh_monitor_tick *ticks = NULL;
  coh_monitor_line *lines = NULL;
  char digest[65], *scenario = NULL, *status = NULL;
  size_t len, i, n, first;
  double wall = 0;
  int64_t last_tick = -1, n_events = 0;
  int rc = -1;
  coh_err err;

  memset(&s, 0, sizeof s);
  coh_journal_digest(j, digest);
  if (coh_journal_meta_get(j, "scenario_path", &scenario, &len, &err))
    scenario = NULL;
  if (coh_journal_meta_get(j, "status", &status, &len, &err)) status = NULL;
  coh_journal_last_tick(j, &last_tick, &n_events, &err);
  for (i = 0; i < b->n_ticks; i++) wall += b->ticks[i].wall_ms / 1000.0;
  first = b->n_ticks > TICKS_MAX ? b->n_ticks - TICKS_MAX : 0;
  n = json_array_size(b->transcript);
  agents = coh__calloc(b->n_agents + 1, sizeof *agents);
  models = coh__calloc(b->n_models + 1, sizeof *models);
  ticks = coh__calloc(b->n_ticks - first + 1, sizeof *ticks);
  lines = coh__calloc(n + 1, sizeof *lines);
  if (!agents || !models || !ticks || !lines) goto done;
  s.scenario = scenario ? scenario : path;
  s.tick = last_tick;
  s.finished = 1;
  s.stop_reason = status;
  s.digest = digest;
  s.wall_seconds = wall;
  s.mode = "journal";
  s.events = b->events;
  s.agent_steps = b->steps;
  s.messages = b->messages;
  s.refused = b->refused;
  s.traps = b->traps;
  s.llm_requests = b->llm_requests;
  s.llm_tokens = b->llm_tokens;
  for (i = 0; i < b->n_agents; i++) {
    agent_rec *r = &b->agents[i];
    agents[i].id = r->id;
    agents[i].state = states[r->state];
    agents[i].inbox = r->state == 0 && r->received > r->consumed ? r->received - r->consumed : 0;
    agents[i].fuel_used = r->fuel;
    agents[i].steps = r->steps;
    agents[i].last_tick = r->last_tick;
    agents[i].last_event = r->last_event ? r->last_event : "";
  }
  s.agents = agents;
  s.n_agents = b->n_agents;
  for (i = 0; i < b->n_models; i++) {
    models[i].name = b->models[i].name;
    models[i].provider = "";
    models[i].tokens = b->models[i].tokens;
  }
  s.models = models;
  s.n_models = b->n_models;
  for (i = 0; i < COH_STAGE_COUNT; i++) {
    s.stages[i].n_buckets = 1;
    s.stages[i].le_ms[0] = INFINITY;
  }
  for (i = first; i < b->n_ticks; i++) {
    ticks[i - first].tick = b->ticks[i].tick;
    ticks[i - first].wall_ms = b->ticks[i].wall_ms;
    ticks[i - first].events = b->ticks[i].events;
    ticks[i - first].steps = b->ticks[i].steps;
  }
  s.ticks = ticks;
  s.n_ticks = b->n_ticks - first;
  /* the transcript ring, oldest first */
  for (i = 0; i < n; i++) {
    json_t *e = json_array_get(b->transcript, n < TRANSCRIPT_MAX ? i : (b->tr_next + i) % n);
    lines[i].tick = (int64_t)json_integer_value(json_object_get(e, "tick"));
    lines[i].agent = json_string_value(json_object_get(e, "agent"));
    lines[i].text = json_string_value(json_object_get(e, "text"));
  }
  s.transcript = lines;
  s.n_transcript = n;
  coh_monitor_publish_snapshot(m, &s);
  rc = 0;
done:
  coh__free(agents);
  coh__free(models);
  coh__free(ticks);
  coh__free(lines);
  coh_free(scenario);
  coh_free(status);
  return rc;
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig) { got_signal = sig; }

static void builder_free(builder *b) {
  size_t i;
  for (i = 0; i < b->n_agents; i++) {
    coh__free(b->agents[i].id);
    coh__free(b->agents[i].last_event);
    coh__free(b->agents[i].in);
    coh__free(b->agents[i].llm);
  }
  for (i = 0; i < b->n_models; i++) coh__free(b->models[i].name);
  coh__free(b->agents);
  coh__free(b->models);
  coh__free(b->ticks);
  coh__free(b->spans);
  json_decref(b->agent_index);
  json_decref(b->model_index);
  json_decref(b->transcript);
}

int coh__inspect_ui(const char *path, coh_journal *j, const char *listen,
                    const char *token) {
  builder b;
  coh_err err;
  coh_monitor *m = NULL;
  coh_monitor_opts o;
  tick_count tc;
  size_t i;
  int status = COH_EXIT_OK, rc;
  struct sigaction sa, old_int, old_term;

  memset(&b, 0, sizeof b);
  b.cur_tick = -1;
  b.agent_index = json_object();
  b.model_index = json_object();
  b.transcript = json_array();
  if (!b.agent_index || !b.model_index || !b.transcript) {
    status = coh__runtime_error("inspect", "out of memory");
    goto done;
  }
  rc = coh_journal_ticks(j, on_tick, &b, &err);
  if (rc == COH_OK) {
    memset(&tc, 0, sizeof tc);
    tc.b = &b;
    rc = coh_journal_events(j, INT64_MIN, INT64_MAX, NULL, count_tick, &tc, &err);
  }
  if (rc == COH_OK)
    rc = coh_journal_events(j, INT64_MIN, INT64_MAX, NULL, on_event, &b, &err);
  if (b.oom) {
    status = coh__runtime_error("inspect", "%s: out of memory", path);
    goto done;
  }
  if (rc) {
    status = coh__runtime_error("inspect", "%s", err.msg);
    goto done;
  }
  end_tick(&b);
  if (b.oom) {
    status = coh__runtime_error("inspect", "%s: out of memory", path);
    goto done;
  }
  o.listen = listen;
  o.token = token;
  if (coh_monitor_start(&o, &m, &err)) {
    status = err.code == COH_EINVAL ? coh__usage_error("inspect", "%s", err.msg)
                                    : coh__runtime_error("inspect", "%s", err.msg);
    goto done;
  }
  if (publish_snapshot(&b, j, path, m)) {
    coh_monitor_stop(m);
    status = coh__runtime_error("inspect", "%s: cannot build the snapshot "
                                "(out of memory)", path);
    goto done;
  }
  for (i = 0; i < b.n_spans; i += 4096)
    coh_monitor_trace(m, b.spans + i, b.n_spans - i < 4096 ? b.n_spans - i : 4096);

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  printf("dashboard: %s\n", coh_monitor_url(m));
  printf("serving %s (%zu agents, %zu trace spans); Ctrl-C to stop\n", path,
         b.n_agents, b.n_spans);
  fflush(stdout);
  while (!got_signal) {
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    coh_monitor_trace(m, NULL, 0); /* spans a busy lock left pending */
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  coh_monitor_stop(m);
done:
  builder_free(&b);
  return status;
}
