/*
 * orch.c — the tick loop (see cohort/orch.h for the contract).
 *
 * Layout of this file:
 *   setup      agents, modules, id index, workers
 *   events     producing an event: append to the journal, or compare with
 *              the reference journal (replay/resume)
 *   tick       timers and scenario messages in, policy, dispatch, commit
 *   run        the loop and its stop conditions
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orch_int.h"

#define QUIT ((void *)1)

/* ---- small helpers --------------------------------------------------------- */

int coh__orch_inbox_take(inbox *in, uint32_t kind, char *payload, size_t len,
                         double queued_at) {
  inbox_ev *ev;
  if (in->count == in->cap) {
    size_t ncap = in->cap ? in->cap * 2 : 8, i;
    inbox_ev *n = coh__malloc(ncap * sizeof *n);
    if (n == NULL) {
      coh__free(payload);
      return COH_ENOMEM;
    }
    for (i = 0; i < in->count; i++) n[i] = in->items[(in->head + i) % in->cap];
    coh__free(in->items);
    in->items = n;
    in->cap = ncap;
    in->head = 0;
  }
  ev = &in->items[(in->head + in->count) % in->cap];
  ev->kind = kind;
  ev->queued_at = queued_at;
  ev->len = len;
  ev->payload = payload;
  in->count++;
  return COH_OK;
}

int coh__orch_inbox_push(inbox *in, uint32_t kind, const char *header,
                      const void *body, size_t body_len, double queued_at) {
  size_t hl = strlen(header);
  char *p = coh__malloc(hl + 1 + body_len + 1);
  if (p == NULL) return COH_ENOMEM;
  memcpy(p, header, hl + 1);
  if (body_len) memcpy(p + hl + 1, body, body_len);
  p[hl + 1 + body_len] = '\0';
  return coh__orch_inbox_take(in, kind, p, hl + 1 + body_len, queued_at);
}

static void inbox_clear(inbox *in) {
  size_t i;
  for (i = 0; i < in->count; i++) coh__free(in->items[(in->head + i) % in->cap].payload);
  in->head = in->count = 0;
}

static int cmp_by_id(const void *a, const void *b, void *ctx) {
  const orch *o = ctx;
  return strcmp(o->agents[*(const int *)a].id, o->agents[*(const int *)b].id);
}

/* JSON text of obj (compact, keys in insertion order); NULL on OOM. */
static char *dump(json_t *obj) {
  char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(obj);
  return s;
}

/* ---- setup ------------------------------------------------------------------- */

static int make_agents(orch *o, coh_err *err) {
  const coh_scenario *s = o->s;
  size_t i, total = coh_scenario_instances(s);
  int k = 0, c, rc;
  o->cap_agents = (int)total + COH__MAX_SPAWNED;
  o->agents = coh__calloc((size_t)o->cap_agents, sizeof *o->agents);
  o->by_id = coh__calloc((size_t)o->cap_agents, sizeof *o->by_id);
  o->modules = coh__calloc(s->n_agents + 1, sizeof *o->modules);
  if (o->agents == NULL || o->by_id == NULL || o->modules == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  for (i = 0; i < s->n_agents; i++) {
    const coh_scn_agent *sa = &s->agents[i];
    const char *path = sa->is_prompt ? o->opt->prompt_module : sa->module;
    if (path == NULL && o->opt->modules == NULL)
      return coh__err(err, COH_EINVAL, "%s:%d: agent '%s' is a prompt agent, but the "
                      "stock prompt agent's module was not found", s->path, sa->line, sa->id);
    if ((rc = o->opt->modules
                  ? coh_module_load(o->rt, o->opt->modules[i].bytes, o->opt->modules[i].len,
                                    &o->modules[i], err)
                  : coh_module_load_file(o->rt, path, &o->modules[i], err))) {
      coh__err_prefix(err, "%s:%d: agent '%s'", s->path, sa->line, sa->id);
      return rc;
    }
    for (c = 0; c < sa->count; c++, k++) {
      agent_slot *a = &o->agents[k];
      char id[96];
      if (sa->count > 1) snprintf(id, sizeof id, "%s-%d", sa->id, c);
      else snprintf(id, sizeof id, "%s", sa->id);
      a->o = o;
      a->index = k;
      a->spec = sa;
      a->module = o->modules[i];
      a->id = coh__strdup(id);
      /* teardown() frees the first n_agents slots: count this one now, so
       * that a failure later in this loop leaks nothing */
      o->n_agents = k + 1;
      if (a->id == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
      o->by_id[k] = k;
    }
  }
  o->n_agents = k;
  qsort_r(o->by_id, (size_t)k, sizeof *o->by_id, cmp_by_id, o);
  return COH_OK;
}

/* Finds an instance by id (exact), or -1. */
int coh__orch_agent_index(const orch *o, const char *id) {
  int lo = 0, hi = o->n_agents - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, c = strcmp(o->agents[o->by_id[mid]].id, id);
    if (c == 0) return o->by_id[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/* A route endpoint: a scenario agent's id (every instance) or an instance
 * id (the loader checked that it names one or the other). */
static int route_end(orch *o, const char *name, int *spec, const char **inst) {
  size_t i;
  int k;
  for (i = 0; i < o->s->n_agents; i++)
    if (!strcmp(o->s->agents[i].id, name)) {
      *spec = (int)i;
      *inst = NULL;
      return 0;
    }
  if ((k = coh__orch_agent_index(o, name)) < 0) return -1;
  *spec = (int)(o->agents[k].spec - o->s->agents);
  *inst = o->agents[k].id;
  return 0;
}

/* Compiles the route schemas (the permissive form: it checks what others
 * wrote, docs/grammar.md). */
static int make_routes(orch *o, coh_err *err) {
  const coh_scenario *s = o->s;
  size_t i;
  int rc;
  if (s->n_routes == 0) return COH_OK;
  o->routes = coh__calloc(s->n_routes, sizeof *o->routes);
  if (o->routes == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  for (i = 0; i < s->n_routes; i++) {
    const coh_scn_route *r = &s->routes[i];
    orch_route *x = &o->routes[i];
    char name[64];
    if (route_end(o, r->from, &x->from_spec, &x->from_inst) ||
        route_end(o, r->to, &x->to_spec, &x->to_inst))
      return coh__err(err, COH_EINVAL, "%s:%d: routes[%zu] names an unknown agent",
                      s->path, r->line, i);
    snprintf(name, sizeof name, "routes[%zu].schema", i);
    if ((rc = coh_grammar_from_json_schema(r->schema_json, r->schema_len, name, &x->g, err))) {
      coh__err_prefix(err, "%s:%d", s->path, r->line);
      return rc;
    }
  }
  return COH_OK;
}

/* dag: `after` names instance ids or base ids (all instances). */
static int resolve_after(orch *o, coh_err *err) {
  int k;
  for (k = 0; k < o->n_agents; k++) {
    agent_slot *a = &o->agents[k];
    size_t i;
    int j;
    if (a->spec->n_after == 0) continue;
    a->after = coh__calloc((size_t)o->n_agents, sizeof *a->after);
    if (a->after == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    for (i = 0; i < a->spec->n_after; i++) {
      const char *name = a->spec->after[i];
      for (j = 0; j < o->n_agents; j++)
        if (!strcmp(o->agents[j].id, name) || !strcmp(o->agents[j].spec->id, name))
          if (a->n_after < (size_t)o->n_agents) a->after[a->n_after++] = j;
    }
  }
  return COH_OK;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  for (;;) {
    size_t i;
    double t;
    if (coh__ring_pop(&w->tasks) == QUIT) break;
    t = coh__wall_seconds();
    for (i = 0; i < w->n_batch; i++) t = coh__orch_run_step(w->batch[i], w->o->tick, t);
    coh__ring_push(&w->done, w);
  }
  return NULL;
}

static int start_workers(orch *o, coh_err *err) {
  int n = o->opt->workers, i;
  if (n <= 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    n = cores > 1 ? (int)cores - 1 : 1;
  }
  o->workers = coh__calloc((size_t)n, sizeof *o->workers);
  if (o->workers == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    worker *w = &o->workers[i];
    w->o = o;
    w->batch = coh__calloc((size_t)o->cap_agents + 1, sizeof *w->batch);
    if (w->batch == NULL || coh__ring_init(&w->tasks, 2) || coh__ring_init(&w->done, 2) ||
        pthread_create(&w->thread, NULL, worker_main, w) != 0) {
      coh__ring_destroy(&w->tasks); /* a ring never initialised is all zeros */
      coh__ring_destroy(&w->done);
      coh__free(w->batch);
      return coh__err(err, COH_ENOMEM, "cannot start worker thread %d", i);
    }
    o->n_workers = i + 1;
  }
  return COH_OK;
}

static void stop_workers(orch *o) {
  int i;
  for (i = 0; i < o->n_workers; i++) {
    coh__ring_push(&o->workers[i].tasks, QUIT);
    pthread_join(o->workers[i].thread, NULL);
  }
  for (i = 0; o->workers && i < o->n_workers + 1 && i < o->n_workers; i++) {
    coh__ring_destroy(&o->workers[i].tasks);
    coh__ring_destroy(&o->workers[i].done);
    coh__free(o->workers[i].batch);
  }
  coh__free(o->workers);
  o->workers = NULL;
}

/* ---- events ---------------------------------------------------------------- */

static int spawn_agent(orch *o, int spec, const char *id, const char *config,
                       coh_err *err);

/* ---- sinks ------------------------------------------------------------------- */

int coh_sim_add_sink(coh_sim *o, const coh_sim_sink *sink, coh_err *err) {
  if (o->started || o->failed || o->finished)
    return coh__err(err, COH_EINVAL, "sink '%s': sinks are added before the first tick",
                    sink->name ? sink->name : "?");
  if (o->n_sinks >= COH_SIM_MAX_SINKS)
    return coh__err(err, COH_EINVAL, "sink '%s': more than %d sinks",
                    sink->name ? sink->name : "?", COH_SIM_MAX_SINKS);
  o->sinks[o->n_sinks++] = *sink;
  if (sink->durable) o->durable_sinks++;
  return COH_OK;
}

/* A sink's error is passed on as the sink wrote it (it names its own file:
 * the journal's name the journal). */
static int sink_fail(const coh_sim_sink *k, int rc, coh_err *err) {
  (void)k;
  (void)err;
  return rc;
}

/* A sink's COH_SINK_STOP: the first one's reason is kept. */
static void sink_stop(orch *o, const coh_sim_sink *k) {
  const char *why = k->stop_reason ? k->stop_reason(k->ud) : NULL;
  if (o->sink_stop == NULL) o->sink_stop = why ? why : "stopped";
}

static int sinks_tick_begin(orch *o, coh_err *err) {
  int i, rc;
  for (i = 0; i < o->n_sinks; i++) {
    const coh_sim_sink *k = &o->sinks[i];
    o->sink_active[i] = 1;
    if (k->tick_begin == NULL) continue;
    rc = k->tick_begin(k->ud, o->tick, &o->sink_active[i], err);
    if (rc == COH_SINK_STOP) sink_stop(o, k);
    else if (rc) return sink_fail(k, rc, err);
  }
  return COH_OK;
}

static int sinks_event(orch *o, const coh_jevent *ev, coh_err *err) {
  int i, rc;
  for (i = 0; i < o->n_sinks; i++) {
    const coh_sim_sink *k = &o->sinks[i];
    if (!o->sink_active[i] || k->event == NULL) continue;
    rc = k->event(k->ud, ev, err);
    if (rc == COH_SINK_STOP) sink_stop(o, k);
    else if (rc) return sink_fail(k, rc, err);
  }
  return COH_OK;
}

static int sinks_want_checkpoints(const orch *o) {
  int i;
  for (i = 0; i < o->n_sinks; i++)
    if (o->sink_active[i] && o->sinks[i].checkpoint) return 1;
  return 0;
}

static int sinks_checkpoint(orch *o, const char *agent, const void *state, size_t len,
                            coh_err *err) {
  int i, rc;
  for (i = 0; i < o->n_sinks; i++) {
    const coh_sim_sink *k = &o->sinks[i];
    if (o->sink_active[i] && k->checkpoint &&
        (rc = k->checkpoint(k->ud, agent, state, len, err)))
      return sink_fail(k, rc, err);
  }
  return COH_OK;
}

static int sinks_want_resume_state(const orch *o) {
  int i;
  for (i = 0; i < o->n_sinks; i++)
    if (o->sink_active[i] && o->sinks[i].resume_state) return 1;
  return 0;
}

/* The orchestrator's resume state after the tick's checkpoints, when the
 * tick can be resumed from (resume.c). */
static int sinks_resume_state(orch *o, coh_err *err) {
  coh__buf b = {0};
  int i, rc = COH_OK;
  if (!sinks_want_resume_state(o) || !coh__orch_resumable(o)) return COH_OK;
  if (coh__orch_state_save(o, &b)) {
    coh__buf_free(&b);
    return coh__err(err, COH_ENOMEM, "out of memory writing the resume state");
  }
  for (i = 0; i < o->n_sinks && rc == COH_OK; i++) {
    const coh_sim_sink *k = &o->sinks[i];
    if (o->sink_active[i] && k->resume_state &&
        (rc = k->resume_state(k->ud, b.p, b.n, err)))
      rc = sink_fail(k, rc, err);
  }
  coh__buf_free(&b);
  return rc;
}

/* In reverse order of addition: the first sink (the journal: the commit
 * point) hears last, so a tick that another sink refuses is not written. */
static int sinks_tick_end(orch *o, int64_t wall_us, coh_err *err) {
  int i, rc;
  for (i = o->n_sinks - 1; i >= 0; i--) {
    const coh_sim_sink *k = &o->sinks[i];
    if (!o->sink_active[i] || k->tick_end == NULL) continue;
    rc = k->tick_end(k->ud, o->tick, wall_us, err);
    if (rc == COH_SINK_STOP) {
      sink_stop(o, k);
      return COH_OK; /* the tick is not finished: no later sink hears of it */
    }
    if (rc) return sink_fail(k, rc, err);
  }
  return COH_OK;
}

static int sinks_flush(orch *o, coh_err *err) {
  int i, rc;
  for (i = 0; i < o->n_sinks; i++) {
    const coh_sim_sink *k = &o->sinks[i];
    if (k->flush && (rc = k->flush(k->ud, err))) return sink_fail(k, rc, err);
  }
  return COH_OK;
}

/* Before a tick: a COH_SINK_STOP sets sink_stop (the caller decides the
 * stop reason). */
static int sinks_between_ticks(orch *o, coh_err *err) {
  int i, rc;
  for (i = 0; i < o->n_sinks; i++) {
    const coh_sim_sink *k = &o->sinks[i];
    if (k->between_ticks == NULL) continue;
    rc = k->between_ticks(k->ud, err);
    if (rc == COH_SINK_STOP) {
      sink_stop(o, k);
      return COH_OK;
    }
    if (rc) return sink_fail(k, rc, err);
  }
  return COH_OK;
}

static int sinks_tick_durable(orch *o, double tick_t0, coh_err *err) {
  int i, rc;
  for (i = 0; i < o->n_sinks; i++) {
    const coh_sim_sink *k = &o->sinks[i];
    if (o->sink_active[i] && k->tick_durable &&
        (rc = k->tick_durable(k->ud, o->tick, tick_t0, err)))
      return sink_fail(k, rc, err);
  }
  return COH_OK;
}

/* Closes every sink (each exactly once); returns the first error. */
static int sinks_close(orch *o, int failed, coh_err *err) {
  int i, rc = COH_OK;
  for (i = 0; i < o->n_sinks; i++) {
    const coh_sim_sink *k = &o->sinks[i];
    coh_err e;
    int r = k->close ? k->close(k->ud, failed, &e) : COH_OK;
    if (r && rc == COH_OK) {
      rc = r;
      if (err) *err = e;
    }
  }
  o->n_sinks = 0;
  o->durable_sinks = 0;
  return rc;
}

/* The run's report of an event (cohort/orch.h: on_event and every sink's
 * `reported`): the journal and comparator sinks call it with their
 * reports, the core with each event when neither is there. */
static void sim_report(void *ud, const coh_jevent *ev) {
  orch *o = ud;
  int i;
  if (o->opt->on_event) o->opt->on_event(o->opt->ud, ev);
  for (i = 0; i < o->n_sinks; i++)
    if (o->sinks[i].reported) o->sinks[i].reported(o->sinks[i].ud, ev);
}

/* The wall clock for an event or an inbox stamp (see clock_held). */
static double orch_now(const orch *o) {
  return o->clock_held ? o->clock_now : coh__wall_seconds();
}

static void clock_hold(orch *o) {
  o->clock_now = coh__wall_seconds();
  o->clock_held = 1;
}

/* One committed event, handed to the sinks (the journal, the comparator,
 * ...). */
static int produce(orch *o, const char *kind, const char *src, const char *dst,
                   const void *payload, size_t len, coh_err *err) {
  coh_jevent ev;
  memset(&ev, 0, sizeof ev);
  ev.tick = o->tick;
  ev.kind = kind;
  ev.source = src;
  ev.target = dst;
  ev.payload = payload ? payload : "";
  ev.payload_len = len;
  ev.wall_us = (int64_t)((orch_now(o) - o->t0) * 1e6);
  o->events++;
  /* the journal and the comparator report (once the tick is durable, or as
   * the event is checked); without them the event is reported now */
  if (!o->reporting_sinks) sim_report(o, &ev);
  return sinks_event(o, &ev, err);
}

/* ---- tick: inputs ------------------------------------------------------------ */

/* Scenario messages for this tick (tick 0 is initialisation, so a message
 * for tick 0 arrives at tick 1) and timers due now go into inboxes, and are
 * journaled first in the tick. */
static int deliver_inputs_held(orch *o, coh_err *err) {
  const coh_scenario *s = o->s;
  size_t i, keep = 0;
  int rc;
  if (o->tick == 0) return COH_OK;
  for (i = 0; i < s->n_messages; i++) {
    const coh_scn_message *m = &s->messages[i];
    int64_t due = m->tick < 1 ? 1 : m->tick;
    int t;
    if (due != o->tick) continue;
    t = coh__orch_agent_index(o, m->to);
    if (t < 0 || o->agents[t].status != AGENT_ALIVE) continue;
    if ((rc = produce(o, "message", m->from, m->to, m->body, m->body_len, err))) return rc;
    if (coh__orch_inbox_push(&o->agents[t].in, COH_ABI_EV_MESSAGE, m->from, m->body, m->body_len,
                              orch_now(o)))
      return coh__err(err, COH_ENOMEM, "out of memory");
  }
  for (i = 0; i < o->n_timers; i++) {
    timer_ev *te = &o->timers[i];
    if (te->due == o->tick) {
      agent_slot *a = &o->agents[te->agent];
      char hdr[32];
      snprintf(hdr, sizeof hdr, "%lld", (long long)te->id);
      if (a->status == AGENT_ALIVE) {
        if ((rc = produce(o, "timer", a->id, a->id, hdr, strlen(hdr), err))) return rc;
        if (coh__orch_inbox_push(&a->in, COH_ABI_EV_TIMER, hdr, NULL, 0, orch_now(o)))
          return coh__err(err, COH_ENOMEM, "out of memory");
      }
    } else {
      o->timers[keep++] = *te;
    }
  }
  o->n_timers = keep;
  return COH_OK;
}

static int deliver_inputs(orch *o, coh_err *err) {
  int rc;
  clock_hold(o);
  rc = deliver_inputs_held(o, err);
  o->clock_held = 0;
  return rc;
}

int coh__orch_add_timer(orch *o, int agent, int64_t id, int64_t due) {
  size_t i;
  {
    timer_ev *n = coh__grow(o->timers, &o->cap_timers, o->n_timers + 1, sizeof *n, 16);
    if (n == NULL) return COH_ENOMEM;
    o->timers = n;
  }
  /* sorted by (due, agent, id): insertion keeps the canonical order */
  i = o->n_timers;
  while (i > 0) {
    timer_ev *p = &o->timers[i - 1];
    if (p->due < due || (p->due == due && (p->agent < agent || (p->agent == agent && p->id < id))))
      break;
    o->timers[i] = *p;
    i--;
  }
  o->timers[i].due = due;
  o->timers[i].agent = agent;
  o->timers[i].id = id;
  o->n_timers++;
  return COH_OK;
}

/* ---- tick: policy --------------------------------------------------------------- */

/* Chooses this tick's steps: sets to_deliver (0: does not step). */
static int choose(orch *o, int *pending_llm) {
  int k, n = 0, best = 0, have_best = 0;
  const int quantum = o->s->quantum;
  for (k = 0; k < o->n_agents; k++) o->agents[k].in_snapshot = o->agents[k].in.count;
  if (o->s->policy == COH_POLICY_PRIORITY)
    for (k = 0; k < o->n_agents; k++) {
      agent_slot *a = &o->agents[k];
      if (a->status != AGENT_ALIVE || a->in.count == 0) continue;
      if (!have_best || a->spec->priority > best) best = a->spec->priority;
      have_best = 1;
    }
  for (k = 0; k < o->n_agents; k++) {
    agent_slot *a = &o->agents[k];
    size_t i;
    int ok = a->status == AGENT_ALIVE && a->in.count > 0;
    if (ok && o->s->policy == COH_POLICY_PRIORITY) ok = a->spec->priority == best;
    if (ok && o->s->policy == COH_POLICY_DAG)
      for (i = 0; ok && i < a->n_after; i++) {
        int d = a->after[i];
        /* waits while a dependency has work queued or an answer pending */
        ok = o->agents[d].in_snapshot == 0 || o->agents[d].status != AGENT_ALIVE;
        if (ok && pending_llm[d] > 0) ok = 0;
      }
    a->to_deliver = ok ? (a->in.count < (size_t)quantum ? a->in.count : (size_t)quantum) : 0;
    /* a spawned agent's first step is its init */
    a->is_init = a->needs_init;
    if (a->needs_init) a->to_deliver = 0;
    a->needs_init = 0;
    n += ok;
  }
  return n;
}

/* ---- tick: dispatch ----------------------------------------------------------------- */

static void dispatch(orch *o, int init) {
  int k, w = 0, i;
  for (i = 0; i < o->n_workers; i++) o->workers[i].n_batch = 0;
  /* engines first: they overlap the agent steps */
  if (!init && !o->opt->no_model)
    for (i = 0; i < o->n_models; i++)
      if (o->models[i].has_thread && coh_engine_busy(o->models[i].engine))
        coh__ring_push(&o->models[i].to_engine, &o->models[i]), o->models[i].stepping = 1;
  for (k = 0; k < o->n_agents; k++) {
    agent_slot *a = &o->agents[k];
    if (!(init ? a->status == AGENT_ALIVE : a->to_deliver > 0 || a->is_init)) continue;
    a->is_init = init || a->is_init;
    o->workers[w].batch[o->workers[w].n_batch++] = a;
    w = (w + 1) % o->n_workers;
  }
  for (i = 0; i < o->n_workers; i++)
    if (o->workers[i].n_batch > 0) coh__ring_push(&o->workers[i].tasks, &o->workers[i]);
  for (i = 0; i < o->n_workers; i++)
    if (o->workers[i].n_batch > 0) (void)coh__ring_pop(&o->workers[i].done);
  for (i = 0; i < o->n_models; i++)
    if (o->models[i].stepping) {
      (void)coh__ring_pop(&o->models[i].from_engine);
      o->models[i].stepping = 0;
    }
  if (o->opt->no_model) coh__orch_llm_replay_step(o);
}

/* ---- tick: commit ------------------------------------------------------------------ */

/* The step event's text, formatted by hand: snprintf was ~4% of a routing
 * run's orchestrator thread.  The bytes are jansson's compact dump, which
 * the digests pin (test_sim, golden_digest).  The three fields take at most
 * 3 * 20 bytes plus 28 of text, so a 96-byte buffer cannot overflow. */
static size_t put_lit(char *buf, size_t n, const char *lit) {
  size_t l = strlen(lit);
  memcpy(buf + n, lit, l);
  return n + l;
}

static size_t put_i64(char *buf, size_t n, int64_t v) {
  char tmp[24];
  size_t k = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[k++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) buf[n++] = '-';
  while (k) buf[n++] = tmp[--k];
  return n;
}

/* The observers (cohort/orch.h): a committed step, a committed LLM result.
 * Wall-clock only; they cannot change the tick. */
static void sinks_step(orch *o, const agent_slot *a) {
  coh_sim_step_info st;
  int i;
  st.agent = a->index;
  st.is_init = a->is_init;
  st.fuel = a->fuel_used;
  st.t0 = a->step_t0;
  st.t1 = a->step_t1;
  st.queued_ms = a->qlat;
  st.n_queued = a->n_qlat;
  for (i = 0; i < o->n_sinks; i++)
    if (o->sink_active[i] && o->sinks[i].step) o->sinks[i].step(o->sinks[i].ud, &st);
}

static void sinks_llm(orch *o, const llm_req *r, int model) {
  coh_sim_llm_info li;
  int i;
  li.agent = r->agent;
  li.model = model;
  li.number = r->number;
  li.tokens = r->tokens;
  li.t_commit = r->t_commit;
  li.t_admit = r->t_admit;
  li.t_done = r->t_done;
  for (i = 0; i < o->n_sinks; i++)
    if (o->sink_active[i] && o->sinks[i].llm_done) o->sinks[i].llm_done(o->sinks[i].ud, &li);
}

static int commit_agent_held(orch *o, agent_slot *a, int *pending_llm, coh_err *err) {
  char buf[256];
  size_t i;
  int rc;
  json_t *j;
  char *s;
  /* One step event per agent and tick: formatted directly (the bytes
   * jansson's compact dump of {"events", "fuel", "rc"} gives, which the
   * digests pin), not built and serialised as a json_t on the hot path. */
  {
    char step[96];
    size_t n = 0;
    n = put_lit(step, n, "{\"events\":");
    n = put_i64(step, n, (int64_t)a->delivered);
    n = put_lit(step, n, ",\"fuel\":");
    n = put_i64(step, n, (int64_t)a->fuel_used);
    n = put_lit(step, n, ",\"rc\":");
    n = put_i64(step, n, (int64_t)(int)a->last_rc);
    n = put_lit(step, n, "}");
    rc = produce(o, a->is_init ? "init" : "step", a->id, "", step, n, err);
  }
  if (rc) return rc;
  o->sum->agent_steps++;
  sinks_step(o, a);
  for (i = 0; i < a->n_outs; i++) {
    out_item *it = &a->outs[i];
    switch (it->type) {
      case OUT_SEND: { /* data: "sender\0body", moved into the inbox */
        agent_slot *t = &o->agents[it->target];
        size_t off = (size_t)it->id;
        if ((rc = produce(o, "message", a->id, t->id, it->data + off, it->len - off, err)))
          return rc;
        if (t->status == AGENT_ALIVE) {
          char *p = it->data;
          it->data = NULL;
          if (coh__orch_inbox_take(&t->in, COH_ABI_EV_MESSAGE, p, it->len, orch_now(o)))
            return coh__err(err, COH_ENOMEM, "out of memory");
        }
        break;
      }
      case OUT_OUTSIDE: /* committed, delivered nowhere; data "name\0body" */
        if ((rc = produce(o, "message", a->id, it->data, it->data + it->id + 1,
                          it->len - (size_t)it->id - 1, err)))
          return rc;
        break;
      case OUT_REFUSED:
        j = json_object();
        json_object_set_new(j, "to", json_stringn(it->data ? it->data : "", it->len));
        json_object_set_new(j, "reason", json_string(it->target >= 0 ? "inbox_full" : "no_such_agent"));
        s = dump(j);
        if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
        rc = produce(o, "refused", a->id, it->target >= 0 ? o->agents[it->target].id : "", s,
                     strlen(s), err);
        free(s);
        if (rc) return rc;
        break;
      case OUT_SCHEMA_REFUSED: {
        const coh_scn_route *r = &o->s->routes[it->level];
        char why[300];
        if (it->at >= 0)
          snprintf(why, sizeof why, "byte %lld of the message is not allowed there by the "
                   "schema of routes[%d] (%s -> %s, line %d)%s", (long long)it->at, it->level,
                   r->from, r->to, r->line, it->cut ? " (the validator's stack bound was reached)" : "");
        else
          snprintf(why, sizeof why, "the message ends before it is a complete value of the "
                   "schema of routes[%d] (%s -> %s, line %d)", it->level, r->from, r->to, r->line);
        j = json_object();
        json_object_set_new(j, "to", json_stringn(it->data ? it->data : "", it->len));
        json_object_set_new(j, "reason", json_string("schema"));
        json_object_set_new(j, "route", json_integer(it->level));
        json_object_set_new(j, "at", it->at >= 0 ? json_integer((json_int_t)it->at) : json_null());
        json_object_set_new(j, "error", json_string(why));
        s = dump(j);
        if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
        rc = produce(o, "refused", a->id, o->agents[it->target].id, s, strlen(s), err);
        free(s);
        if (rc) return rc;
        break;
      }
      case OUT_EMIT:
        if ((rc = produce(o, "emit", a->id, "", it->data, it->len, err))) return rc;
        break;
      case OUT_LOG:
        snprintf(buf, sizeof buf, "%d", it->level);
        j = json_object();
        json_object_set_new(j, "level", json_integer(it->level));
        json_object_set_new(j, "text", json_stringn(it->data ? it->data : "", it->len));
        s = dump(j);
        if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
        rc = produce(o, "log", a->id, "", s, strlen(s), err);
        free(s);
        if (rc) return rc;
        break;
      case OUT_LLM:
        j = json_object();
        json_object_set_new(j, "id", json_integer(it->id));
        json_object_set_new(j, "request", json_stringn(it->data ? it->data : "", it->len));
        s = dump(j);
        if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
        rc = produce(o, "llm_request", a->id, "", s, strlen(s), err);
        free(s);
        if (rc) return rc;
        if ((rc = coh__orch_llm_enqueue(o, a->index, it->id, it->data ? it->data : "", it->len, err)))
          return rc;
        pending_llm[a->index]++;
        o->sum->llm_requests++;
        break;
      case OUT_SPAWN: {
        const char *nid = it->data, *cfg = it->data + strlen(it->data) + 1;
        int ok = coh__orch_agent_index(o, nid) < 0 && o->n_agents < o->cap_agents;
        j = json_object();
        json_object_set_new(j, "like", json_string(o->s->agents[it->target].id));
        json_object_set_new(j, "config", cfg[0] ? json_string(cfg) : json_null());
        if (!ok)
          json_object_set_new(j, "refused", json_string(o->n_agents < o->cap_agents ? "id_taken"
                                                                                  : "agent_limit"));
        s = dump(j);
        if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
        rc = produce(o, ok ? "spawn" : "spawn_refused", a->id, nid, s, strlen(s), err);
        free(s);
        if (rc) return rc;
        if (ok && (rc = spawn_agent(o, it->target, nid, cfg, err))) return rc;
        break;
      }
      case OUT_TIMER:
        snprintf(buf, sizeof buf, "{\"id\":%lld,\"due\":%lld}", (long long)it->id,
                 (long long)it->due);
        if ((rc = produce(o, "timer_set", a->id, "", buf, strlen(buf), err))) return rc;
        if (coh__orch_add_timer(o, a->index, it->id, it->due)) return coh__err(err, COH_ENOMEM, "out of memory");
        break;
    }
  }
  if (a->trapped) {
    j = json_object();
    json_object_set_new(j, "kind", json_string(a->res.trap != COH_TRAP_NONE ? coh_trap_name(a->res.trap)
                                                                             : "refused_init"));
    json_object_set_new(j, "message", json_string(a->res.message));
    s = dump(j);
    if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    rc = produce(o, "trap", a->id, "", s, strlen(s), err);
    free(s);
    if (rc) return rc;
    a->status = AGENT_FAILED;
    inbox_clear(&a->in);
    o->sum->traps++;
  } else if (a->exited) {
    if ((rc = produce(o, "exit", a->id, "", "", 0, err))) return rc;
    a->status = AGENT_EXITED;
    inbox_clear(&a->in);
  }
  coh__orch_clear_outs(a);
  return COH_OK;
}

/* An agent's committed step, its events stamped with one clock reading. */
static int commit_agent(orch *o, agent_slot *a, int *pending_llm, coh_err *err) {
  int rc;
  if (!a->is_init && a->to_deliver == 0) return COH_OK;
  clock_hold(o);
  rc = commit_agent_held(o, a, pending_llm, err);
  o->clock_held = 0;
  return rc;
}

/* A host-side failure in any agent's step (out of memory in a host call or
 * the runtime) fails the tick before anything of it is committed: turning it
 * into something the agents see (an error code, a trap event) would make the
 * run's result depend on the machine's memory.  The journal is rolled back to
 * the last committed tick, from which `cohort resume` continues. */
static int step_failures(orch *o, coh_err *err) {
  int k;
  for (k = 0; k < o->n_agents; k++) {
    const agent_slot *a = &o->agents[k];
    if (a->fail_rc != COH_OK)
      return coh__err(err, a->fail_rc, "tick %lld: agent '%s': %s (the tick is not committed)",
                      (long long)o->tick, a->id, a->fail_msg);
  }
  return COH_OK;
}

static int commit_llm(orch *o, int *pending_llm, coh_err *err) {
  int i, rc;
  for (i = 0; i <= o->n_models; i++) {
    model_slot *ms = &o->models[i];
    size_t k;
    for (k = 0; k < ms->n_done; k++) {
      llm_req *r = ms->done[k];
      agent_slot *a = &o->agents[r->agent];
      char hdr[32];
      char *s = NULL;
      size_t len;
      const char *src = ms->spec ? ms->spec->name : "";
      if (r->body != NULL) { /* replay --no-model */
        s = coh__malloc(r->body_len + 1);
        if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
        memcpy(s, r->body, r->body_len);
        s[r->body_len] = '\0';
        len = r->body_len;
      } else {
        json_t *j = json_object();
        char *d;
        json_object_set_new(j, "id", json_integer(r->number));
        if (r->finish == COH_FINISH_ERROR || r->text.oom) {
          json_object_set_new(j, "error", json_string(r->error[0] ? r->error
                                                      : r->text.oom ? "out of memory"
                                                                    : "generation failed"));
        } else {
          json_object_set_new(j, "text", json_stringn(r->text.p ? r->text.p : "", r->text.n));
          json_object_set_new(j, "tokens", json_integer(r->tokens));
          json_object_set_new(j, "finish", json_string(coh_finish_name(r->finish)));
          if (r->tool_choice != COH_TOOLS_NONE) {
            /* a tool call: the parsed calls beside the text (docs/agents.md) */
            char *calls = NULL;
            json_t *cj;
            if ((rc = coh_llm_tool_calls(r->tool_names, r->n_tools, r->text.p ? r->text.p : "",
                                         r->text.n, &calls, err))) {
              json_decref(j);
              return rc;
            }
            cj = calls ? json_loads(calls, 0, NULL) : NULL;
            if (calls != NULL && (cj == NULL || json_object_set_new(j, "tool_calls", cj))) {
              coh__free(calls);
              json_decref(j);
              return coh__err(err, COH_ENOMEM, "out of memory");
            }
            coh__free(calls);
          }
        }
        d = dump(j);
        if (d == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
        len = strlen(d);
        s = coh__malloc(len + 1);
        if (s) memcpy(s, d, len + 1);
        free(d);
        if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
      }
      rc = produce(o, "llm_result", src, a->id, s, len, err);
      if (rc == COH_OK) sinks_llm(o, r, i);
      snprintf(hdr, sizeof hdr, "%lld", (long long)r->number);
      if (rc == COH_OK && a->status == AGENT_ALIVE &&
          coh__orch_inbox_push(&a->in, COH_ABI_EV_LLM, hdr, s, len, orch_now(o)))
        rc = coh__err(err, COH_ENOMEM, "out of memory");
      coh__free(s);
      o->sum->llm_tokens += r->tokens;
      pending_llm[r->agent]--;
      coh__orch_llm_free(r);
      ms->done[k] = NULL;
      if (rc) return rc;
    }
    ms->n_done = 0;
  }
  return COH_OK;
}

static int checkpoint_agents(orch *o, int *complete, coh_err *err) {
  int k, rc;
  *complete = 1;
  for (k = 0; k < o->n_agents; k++) {
    agent_slot *a = &o->agents[k];
    uint8_t *snap = NULL;
    size_t len = 0;
    if (a->status != AGENT_ALIVE) continue;
    /* An agent whose state cannot be captured (a table slot set at run
     * time: COH_EUNSUPPORTED) has no checkpoint, the same in every run;
     * anything else (out of memory) fails the tick rather than leave out a
     * checkpoint, which would change the chain and the digest. */
    rc = coh_agent_checkpoint(a->agent, &snap, &len, err);
    if (rc == COH_EUNSUPPORTED) {
      *complete = 0; /* such a tick cannot be resumed from */
      continue;
    }
    if (rc) {
      coh__err_prefix(err, "agent '%s': checkpoint", a->id);
      return rc;
    }
    rc = sinks_checkpoint(o, a->id, snap, len, err);
    coh_agent_buf_free(snap);
    if (rc) return rc;
  }
  return COH_OK;
}

/* ---- run ------------------------------------------------------------------------------ */

static int anything_pending(orch *o) {
  const coh_scenario *s = o->s;
  size_t i;
  int k;
  for (k = 0; k < o->n_agents; k++)
    if (o->agents[k].status == AGENT_ALIVE && (o->agents[k].in.count > 0 || o->agents[k].needs_init))
      return 1;
  if (o->n_timers > 0 || coh__orch_llm_busy(o)) return 1;
  for (i = 0; i < s->n_messages; i++)
    if ((s->messages[i].tick < 1 ? 1 : s->messages[i].tick) > o->tick) return 1;
  return 0;
}

/* Instantiates slot k's agent with its spec's limits and its own seed;
 * from a checkpoint when snap is non-NULL (resume). */
static int instantiate_from(orch *o, int k, const void *snap, size_t snap_len, coh_err *err) {
  agent_slot *a = &o->agents[k];
  coh_agent_opts ao;
  int rc;
  coh_agent_opts_default(&ao);
  ao.fuel = a->spec->fuel;
  ao.max_memory_pages = a->spec->memory_mb * 16u > 65535u ? 65535u : a->spec->memory_mb * 16u;
  ao.seed = coh__seed_derive(o->s->seed, (uint64_t)k, UINT64_MAX);
  rc = snap ? coh_agent_restore(a->module, &ao, &coh__orch_host, a, snap, snap_len, &a->agent, err)
            : coh_agent_new(a->module, &ao, &coh__orch_host, a, &a->agent, err);
  if (rc) coh__err_prefix(err, "%s:%d: agent '%s'", o->s->path, a->spec->line, a->id);
  return rc;
}

static int instantiate(orch *o, int k, coh_err *err) { return instantiate_from(o, k, NULL, 0, err); }

static int create_agents(orch *o, coh_err *err) {
  int k, rc;
  for (k = 0; k < o->n_agents; k++)
    if ((rc = instantiate(o, k, err))) return rc;
  return COH_OK;
}

/* A spawn committed by another agent: a new slot at the end of the table
 * (so indices, and with them seeds and commit order, stay deterministic),
 * inserted into the id index; its init runs at the next tick.  An agent
 * that cannot be instantiated is journaled as failed, like a trap. */
static int spawn_agent(orch *o, int spec, const char *id, const char *config,
                       coh_err *err) {
  int k = o->n_agents, i, rc;
  agent_slot *a = &o->agents[k];
  coh_err e;
  memset(a, 0, sizeof *a);
  a->o = o;
  a->index = k;
  a->spec = &o->s->agents[spec];
  a->module = o->modules[spec];
  a->id = coh__strdup(id);
  a->config = config && config[0] ? coh__strdup(config) : NULL;
  if (a->id == NULL || (config && config[0] && a->config == NULL)) {
    coh__free(a->id); /* the slot is not counted yet: teardown would miss them */
    coh__free(a->config);
    a->id = a->config = NULL;
    return coh__err(err, COH_ENOMEM, "out of memory");
  }
  o->n_agents++;
  for (i = k; i > 0 && strcmp(o->agents[o->by_id[i - 1]].id, id) > 0; i--)
    o->by_id[i] = o->by_id[i - 1];
  o->by_id[i] = k;
  if ((rc = instantiate(o, k, &e)) == COH_ENOMEM) { /* ours, not the agent's: fail the tick */
    if (err) *err = e;
    return rc;
  }
  if (rc != COH_OK) {
    char msg[COH_ERRMSG_MAX + 64];
    snprintf(msg, sizeof msg, "{\"kind\":\"instantiate\",\"message\":\"could not start\"}");
    a->status = AGENT_FAILED;
    return produce(o, "trap", a->id, "", msg, strlen(msg), err);
  }
  a->needs_init = 1;
  return COH_OK;
}

static void teardown(orch *o) {
  int k;
  size_t i;
  if (o->workers) stop_workers(o);
  coh__orch_models_close(o);
  for (k = 0; o->agents && k < o->n_agents; k++) {
    agent_slot *a = &o->agents[k];
    coh_agent_free(a->agent);
    inbox_clear(&a->in);
    coh__free(a->in.items);
    coh__orch_clear_outs(a);
    coh__free(a->outs);
    for (i = 0; i < a->n_kv; i++) {
      coh__free(a->kv[i].key);
      coh__free(a->kv[i].val);
    }
    coh__free(a->kv);
    coh__free(a->after);
    coh__free(a->config);
    coh__free(a->qlat);
    coh__free(a->id);
  }
  for (i = 0; o->routes && i < o->s->n_routes; i++) coh_grammar_free(o->routes[i].g);
  coh__free(o->routes);
  for (i = 0; o->modules && i < o->s->n_agents; i++) coh_module_free(o->modules[i]);
  coh__free(o->modules);
  coh__free(o->agents);
  coh__free(o->by_id);
  coh__free(o->timers);
  for (i = 0; i < o->n_recorded; i++) coh__free(o->recorded[i].body);
  coh__free(o->recorded);
  if (o->rt) coh_agent_rt_free(o->rt);
}

/* replay --no-model: index every llm_result of the reference journal. */
static int collect_recorded(void *ud, const coh_jevent *ev) {
  orch *o = ud;
  json_error_t je;
  json_t *root, *id;
  recorded_llm *r;
  int agent;
  if (strcmp(ev->kind, "llm_result") != 0) return 0;
  agent = coh__orch_agent_index(o, ev->target);
  root = json_loadb(ev->payload, ev->payload_len, 0, &je);
  id = root ? json_object_get(root, "id") : NULL;
  if (agent < 0 || !json_is_integer(id)) {
    json_decref(root);
    return 0;
  }
  if ((o->n_recorded & (o->n_recorded + 1)) == 0 || o->recorded == NULL) {
    recorded_llm *n = coh__realloc(o->recorded, (o->n_recorded * 2 + 2) * sizeof *n);
    if (n == NULL) {
      json_decref(root);
      return COH_ENOMEM;
    }
    o->recorded = n;
  }
  r = &o->recorded[o->n_recorded];
  r->agent = agent;
  r->number = json_integer_value(id);
  r->tick = ev->tick;
  r->seq = ev->seq;
  r->len = ev->payload_len;
  r->body = coh__malloc(ev->payload_len + 1);
  json_decref(root);
  if (r->body == NULL) return COH_ENOMEM;
  memcpy(r->body, ev->payload, ev->payload_len);
  r->body[ev->payload_len] = '\0';
  o->n_recorded++;
  return 0;
}

/* The part of a run's end shared by coh_sim_finish and coh_sim_free: the
 * writer stopped (a failed tick was never queued; the ticks queued before
 * it are whole and are written, and reported, before the writer ends), an
 * open journal transaction rolled back after a failure, the summary. */
static int sim_close(orch *o, int rc, coh_err *err) {
  const coh_run_options *opt = o->opt;
  coh_run_summary *sum = o->sum;
  coh_err serr;
  int src = sinks_close(o, rc != COH_OK, &serr);
  if (rc == COH_OK && src != COH_OK) {
    rc = src;
    if (err) *err = serr;
  }
  /* Nothing runs after the last tick: stop the workers and the engines now,
   * so that the summary the caller gets holds the engines' final statistics
   * (the prefix cache's, added when each engine thread has ended). */
  if (o->workers) stop_workers(o);
  coh__orch_models_close(o);
  sum->events = o->events;
  sum->stop_reason = o->stop ? o->stop : "max_ticks";
  sum->wall_seconds = coh__wall_seconds() - o->t0;
  sum->tokens_per_second = sum->wall_seconds > 0 ? (double)sum->llm_tokens / sum->wall_seconds : 0;
  if (opt->journal) coh_journal_digest(opt->journal, sum->digest);
  o->finished = 1;
  return rc;
}

/* ---- resume from a checkpoint ------------------------------------------------ */

static void end_of_tick_stops(orch *o);

/* Copies the resume state (the checkpoint of COH_JOURNAL_ORCH_CHECKPOINT)
 * out of a checkpoint walk. */
typedef struct orch_ck {
  uint8_t *state;
  size_t len;
  int found, oom;
} orch_ck;

static int grab_orch_ck(void *ud, const char *agent, const void *state, size_t len) {
  orch_ck *c = ud;
  if (strcmp(agent, COH_JOURNAL_ORCH_CHECKPOINT) != 0) return 0;
  c->found = 1;
  c->state = coh__malloc(len ? len : 1);
  if (c->state == NULL) {
    c->oom = 1;
    return 1;
  }
  if (len) memcpy(c->state, state, len);
  c->len = len;
  return 1;
}

/* Replay and resume read only verified rows of their journal: the ticks
 * and checkpoints from `from` on.  What the caller verified already
 * (coh_journal_verified_from) is not read twice: `cohort resume` verifies
 * from the checkpoint it expects to restore, `replay` the whole chain. */
static int need_verified(orch *o, int64_t from, coh_err *err) {
  if (coh_journal_verified_from(o->opt->journal) <= from) return COH_OK;
  return coh_journal_verify_from(o->opt->journal, from, err);
}

/* The journal's latest resume state at or before its last committed tick,
 * if it can be used: *state NULL (and o->resume_note saying why) when the
 * resume must re-execute from tick 0.  The state is a checkpoint row, on
 * the chain verified from its tick on (need_verified). */
static int find_resume_state(orch *o, int64_t last, uint8_t **state, size_t *len,
                             coh_err *err) {
  orch_ck c;
  int64_t tick = -1, st_tick;
  int rc;
  *state = NULL;
  *len = 0;
  if (o->opt->resume_full) {
    o->resume_note = "a full re-execution was asked for";
    return COH_OK;
  }
  if ((rc = coh_journal_checkpoint_tick_of(o->opt->journal, COH_JOURNAL_ORCH_CHECKPOINT, last,
                                           &tick, err)))
    return rc;
  if (tick < 0) {
    o->resume_note = "the journal holds no resume state: no checkpoint tick yet had every "
                     "agent checkpointed";
    return COH_OK;
  }
  if ((rc = need_verified(o, tick, err))) return rc;
  memset(&c, 0, sizeof c);
  rc = coh_journal_checkpoints(o->opt->journal, tick, grab_orch_ck, &c, err);
  if (rc == 1 && c.oom) return coh__err(err, COH_ENOMEM, "out of memory");
  if (rc != 1 && rc != COH_OK) return rc;
  if (!c.found) /* the row was there a moment ago: the file changed under us */
    return coh__err(err, COH_EJOURNAL, "journal checkpoint '%s' at tick %lld vanished",
                    COH_JOURNAL_ORCH_CHECKPOINT, (long long)tick);
  if (coh__orch_state_tick(c.state, c.len, &st_tick)) {
    o->resume_note = "the journal's resume state is not of format " COH_RESUME_STATE_MAGIC
                     " (another cohort version wrote it)";
    coh__free(c.state);
    return COH_OK;
  }
  if (st_tick != tick) {
    coh__free(c.state);
    return coh__err(err, COH_EFORMAT, "journal checkpoint '%s' at tick %lld holds the state of "
                    "tick %lld", COH_JOURNAL_ORCH_CHECKPOINT, (long long)tick, (long long)st_tick);
  }
  *state = c.state;
  *len = c.len;
  return COH_OK;
}

typedef struct ck_restore {
  orch *o;
  int rc;
  coh_err err;
} ck_restore;

static int restore_one(void *ud, const char *agent, const void *state, size_t len) {
  ck_restore *c = ud;
  orch *o = c->o;
  int k;
  if (!strcmp(agent, COH_JOURNAL_ORCH_CHECKPOINT)) return 0; /* restored first */
  k = coh__orch_agent_index(o, agent);
  if (k < 0 || o->agents[k].status != AGENT_ALIVE || o->agents[k].agent != NULL) {
    c->rc = coh__err(&c->err, COH_EFORMAT, "the checkpoint of agent '%s' at tick %lld is of no "
                     "live agent of the resume state", agent, (long long)o->tick);
    return 1;
  }
  if ((c->rc = instantiate_from(o, k, state, len, &c->err))) return 1;
  return 0;
}

/* Restores the orchestrator from a resume state and the agents from the
 * checkpoints of its tick T (both after the chain was verified: the
 * checkpoints are on it), checks the stop conditions as tick T's end did,
 * and leaves the machine at tick T + 1. */
static int restore_state(orch *o, const uint8_t *state, size_t len, coh_err *err) {
  ck_restore c;
  int k, rc;
  int64_t tick;
  memcpy(&tick, state + 8, 8); /* find_resume_state checked it */
  /* the state, then the engines' requests re-run up to tick T */
  if ((rc = coh__orch_state_restore(o, state, len, err)) ||
      (rc = coh__orch_llm_catch_up(o, err))) {
    coh__err_prefix(err, "journal checkpoint '%s' at tick %lld", COH_JOURNAL_ORCH_CHECKPOINT,
                    (long long)tick);
    return rc;
  }
  memset(&c, 0, sizeof c);
  c.o = o;
  rc = coh_journal_checkpoints(o->opt->journal, o->tick, restore_one, &c, err);
  if (rc == 1) {
    if (err) *err = c.err;
    return c.rc;
  }
  if (rc) return rc;
  for (k = 0; k < o->n_agents; k++)
    if (o->agents[k].status == AGENT_ALIVE && o->agents[k].agent == NULL)
      return coh__err(err, COH_EFORMAT, "journal checkpoint '%s' at tick %lld: agent '%s' is "
                      "live but has no checkpoint there", COH_JOURNAL_ORCH_CHECKPOINT,
                      (long long)o->tick, o->agents[k].id);
  o->resumed_from = o->tick;
  end_of_tick_stops(o);
  o->tick++;
  return COH_OK;
}

int coh_sim_new(const coh_scenario *s, const coh_run_options *opt, coh_sim **out,
                coh_err *err) {
  orch *o;
  coh_agent_rt_opts ro;
  int rc = COH_OK;
  int64_t n_events_ref = 0, ref_last_tick = -1;
  uint8_t *state = NULL;
  size_t state_len = 0;

  *out = NULL;
  if (opt->cache_dir == NULL) return coh__err(err, COH_EINVAL, "no module cache folder given");
  if (opt->mode != COH_RUN_FRESH && opt->journal == NULL)
    return coh__err(err, COH_EINVAL, "replay and resume need a journal");
  o = coh__calloc(1, sizeof *o);
  if (o == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  o->s = s;
  o->opt = opt;
  o->sum = &o->own_sum;
  o->sum->diverged_tick = -1;
  o->div.tick = -1;
  o->resumed_from = -1;
  o->t0 = coh__wall_seconds();
  memset(&ro, 0, sizeof ro);
  ro.cache_dir = opt->cache_dir;
  if ((rc = coh_agent_rt_new(&ro, &o->rt, err))) goto fail;
  if ((rc = make_agents(o, err)) || (rc = resolve_after(o, err)) ||
      (rc = make_routes(o, err)))
    goto fail;
  o->pending_llm = coh__calloc((size_t)o->cap_agents + 1, sizeof *o->pending_llm);
  if (o->pending_llm == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto fail;
  }
  if (opt->mode != COH_RUN_FRESH) {
    if ((rc = coh_journal_last_tick(opt->journal, &ref_last_tick, &n_events_ref, err)))
      goto fail;
    /* a replay compares every tick (and --no-model reads every event) */
    if ((opt->mode == COH_RUN_REPLAY || opt->no_model) &&
        (rc = need_verified(o, INT64_MIN, err)))
      goto fail;
    if (opt->no_model &&
        (rc = coh_journal_events(opt->journal, INT64_MIN, INT64_MAX, NULL, collect_recorded, o,
                                 err)))
      goto fail;
    o->ref_last_tick = ref_last_tick;
    if (opt->mode == COH_RUN_RESUME &&
        (rc = find_resume_state(o, ref_last_tick, &state, &state_len, err)))
      goto fail;
    /* no usable resume state: every tick is re-executed and compared */
    if (opt->mode == COH_RUN_RESUME && state == NULL && (rc = need_verified(o, INT64_MIN, err)))
      goto fail;
  }
  /* the sinks the options ask for: the journal first (its tick_end, the
   * commit point, comes last), appending after a resume's verified prefix;
   * then the comparator over that prefix (or the whole journal: replay) */
  if (opt->journal && opt->mode != COH_RUN_REPLAY) {
    coh_sim_sink js;
    if ((rc = coh_sim_journal_sink(opt->journal, ref_last_tick + 1, opt->journal_writer,
                                   sim_report, o, &js, err)))
      goto fail;
    o->sinks[o->n_sinks++] = js;
    o->reporting_sinks++;
  }
  if (opt->mode != COH_RUN_FRESH) {
    coh_sim_sink cs;
    if ((rc = coh_sim_compare_sink(opt->journal, opt->mode == COH_RUN_REPLAY, sim_report,
                                   o, &o->div, &cs, err)))
      goto fail;
    o->sinks[o->n_sinks++] = cs;
    o->reporting_sinks++;
  }
  if ((rc = coh__orch_models_open(o, err)) ||
      (rc = state ? restore_state(o, state, state_len, err) : create_agents(o, err)) ||
      (rc = start_workers(o, err)))
    goto fail;
  coh__free(state);
  state = NULL;
  /* the live view: after the models are open (it shows them) */
  if (opt->monitor) {
    coh_sim_sink ms;
    if ((rc = coh_sim_monitor_sink(opt->monitor, o, s->name,
                                   opt->mode == COH_RUN_REPLAY   ? "replay"
                                   : opt->mode == COH_RUN_RESUME ? "resume"
                                                                 : "run",
                                   opt->journal, &ms, err)))
      goto fail;
    if ((rc = coh_sim_add_sink(o, &ms, err))) {
      coh_err ignored;
      (void)ms.close(ms.ud, 1, &ignored); /* not in the table: close it here */
      goto fail;
    }
  }
  if (o->stop == NULL && o->tick >= s->max_ticks) o->stop = "max_ticks";
  *out = o;
  return COH_OK;
fail:
  coh__free(state);
  o->failed = rc;
  (void)sim_close(o, rc, NULL);
  coh__free(o->pending_llm);
  teardown(o);
  coh__free(o);
  return rc;
}

const char *coh_sim_stopped(const coh_sim *o) { return o->stop; }

int64_t coh_sim_next_tick(const coh_sim *o) { return o->tick; }

/* The stop conditions checked after tick o->tick committed (also after a
 * resume restored the state of a tick). */
static void end_of_tick_stops(orch *o) {
  const coh_scenario *s = o->s;
  if (s->stop_on_exit) {
    int x = coh__orch_agent_index(o, s->stop_on_exit);
    if (x >= 0 && o->agents[x].status != AGENT_ALIVE) o->stop = "exit";
  }
  if (o->stop == NULL && s->quiescence && o->tick > 0 && !anything_pending(o))
    o->stop = "quiescence";
}

/* One tick; sets o->stop when the run ends (before the tick, or after it). */
static int sim_tick(orch *o, coh_err *err) {
  const coh_scenario *s = o->s;
  const coh_run_options *opt = o->opt;
  int *pending_llm = o->pending_llm;
  double tick_t0;
  int64_t events_before = o->events;
  int k, rc;
  o->started = 1;
  if (opt->interrupted && opt->interrupted(opt->interrupted_ud)) {
    o->stop = "interrupted";
    return COH_OK;
  }
  if ((rc = sinks_between_ticks(o, err))) return rc;
  if (o->sink_stop) { /* the dashboard's stop (or a signal while paused) */
    o->stop = opt->interrupted && opt->interrupted(opt->interrupted_ud) ? "interrupted"
                                                                         : o->sink_stop;
    o->sink_stop = NULL;
    return COH_OK;
  }
  tick_t0 = coh__wall_seconds();
  /* the journal sink blocks here while the writer's queue is full
   * (backpressure); the comparator loads the reference's tick, or ends a
   * replay ("journal_end") */
  if ((rc = sinks_tick_begin(o, err))) return rc;
  if (o->sink_stop) {
    o->stop = o->sink_stop;
    return COH_OK;
  }

  if ((rc = deliver_inputs(o, err))) return rc;
  if (o->tick == 0) {
    dispatch(o, 1);
  } else {
    if ((rc = coh__orch_llm_admit(o, err))) return rc;
    choose(o, pending_llm);
    dispatch(o, 0);
  }
  if ((rc = step_failures(o, err))) return rc;
  for (k = 0; k < o->n_agents; k++)
    if ((rc = commit_agent(o, &o->agents[k], pending_llm, err))) return rc;
  for (k = 0; k < o->n_models; k++)
    if (o->models[k].step_rc) {
      rc = o->models[k].step_rc;
      coh__err(err, rc, "model '%s': %s", o->models[k].spec->name, o->models[k].step_err.msg);
      return rc;
    }
  if ((rc = commit_llm(o, pending_llm, err))) return rc;
  if (o->sink_stop == NULL && s->checkpoint_every > 0 && o->tick > 0 &&
      o->tick % s->checkpoint_every == 0 && sinks_want_checkpoints(o)) {
    int complete;
    if ((rc = checkpoint_agents(o, &complete, err))) return rc;
    if (complete && (rc = sinks_resume_state(o, err))) return rc;
  }
  if (o->sink_stop == NULL &&
      (rc = sinks_tick_end(o, (int64_t)((coh__wall_seconds() - tick_t0) * 1e6), err)))
    return rc;
  if (o->sink_stop) { /* a divergence: the tick is not finished */
    o->events = events_before;
    o->stop = o->sink_stop;
    return COH_OK;
  }
  /* a live view shows only durable ticks: with one, every tick waits for
   * its commit (docs/orchestrator.md, durability) */
  if (o->durable_sinks) {
    if ((rc = sinks_flush(o, err))) return rc;
    if ((rc = sinks_tick_durable(o, tick_t0, err))) return rc;
  }
  end_of_tick_stops(o);
  if (opt->mode == COH_RUN_RESUME && o->tick <= o->ref_last_tick) o->reexecuted++;
  o->tick++;
  if (o->stop == NULL && o->tick >= s->max_ticks) o->stop = "max_ticks";
  return COH_OK;
}

int coh_sim_tick(coh_sim *o, coh_err *err) {
  int rc;
  if (o->failed) return coh__err(err, COH_EINVAL, "the run failed at tick %lld; only "
                                 "coh_sim_finish or coh_sim_free may follow",
                                 (long long)o->tick);
  if (o->stop || o->finished) return COH_OK;
  rc = sim_tick(o, err);
  if (rc) o->failed = rc;
  return rc;
}

int coh_sim_finish(coh_sim *o, coh_run_summary *sum, coh_err *err) {
  int rc = o->failed;
  if (o->finished) return coh__err(err, COH_EINVAL, "coh_sim_finish called twice");
  if (rc == COH_OK) {
    o->sum->ticks = o->tick;
    /* everything committed is on disk and reported before the run returns */
    rc = sinks_flush(o, err);
  }
  rc = sim_close(o, rc, err);
  o->sum->diverged_tick = o->div.tick;
  o->sum->resumed_from = o->resumed_from;
  o->sum->reexecuted = o->reexecuted;
  o->sum->resume_note = o->resume_note;
  if (o->div.tick >= 0) {
    memcpy(o->sum->diverged_agent, o->div.agent, sizeof o->sum->diverged_agent);
    memcpy(o->sum->diverged_expected, o->div.expected, sizeof o->sum->diverged_expected);
    memcpy(o->sum->diverged_actual, o->div.actual, sizeof o->sum->diverged_actual);
  }
  if (sum) *sum = *o->sum;
  return rc;
}

void coh_sim_free(coh_sim *o) {
  if (o == NULL) return;
  if (!o->finished) (void)coh_sim_finish(o, NULL, NULL);
  coh__free(o->pending_llm);
  teardown(o);
  coh__free(o);
}

/* ---- read-only queries (cohort/orch.h) ------------------------------------------- */

void coh_sim_get_stats(const coh_sim *o, coh_sim_stats *out) {
  memset(out, 0, sizeof *out);
  out->tick = o->tick;
  out->events = o->events;
  out->agent_steps = o->sum->agent_steps;
  out->llm_requests = o->sum->llm_requests;
  out->llm_tokens = o->sum->llm_tokens;
  out->traps = o->sum->traps;
  out->workers = o->n_workers;
  out->n_agents = o->n_agents;
  out->n_models = o->n_models;
  out->t0 = o->t0;
}

int coh_sim_get_agent(const coh_sim *o, int k, coh_sim_agent_info *out) {
  const agent_slot *a;
  if (k < 0 || k >= o->n_agents) return COH_EINVAL;
  a = &o->agents[k];
  out->id = a->id;
  out->state = a->status == AGENT_ALIVE ? "alive" : a->status == AGENT_EXITED ? "exited" : "failed";
  out->inbox = (int64_t)a->in.count;
  return COH_OK;
}

int coh_sim_agent_index(const coh_sim *o, const char *id) {
  return id ? coh__orch_agent_index(o, id) : -1;
}

int coh_sim_get_model(const coh_sim *o, int k, coh_sim_model_info *out) {
  const model_slot *ms;
  coh_engine_stats st;
  if (k < 0 || k >= o->n_models) return COH_EINVAL;
  ms = &o->models[k];
  memset(&st, 0, sizeof st);
  if (ms->engine) coh_engine_get_stats(ms->engine, &st);
  out->name = ms->spec->name;
  out->provider = ms->model ? coh_model_get_info(ms->model)->provider : "journal";
  out->batch = st.last_decode_batch;
  out->queued = (int64_t)ms->waiting + st.queued;
  out->max_batch = ms->max_batch;
  out->step_t0 = ms->step_t0;
  out->step_t1 = ms->step_t1;
  return COH_OK;
}

int coh_sim_run(coh_sim *sim, coh_run_summary *sum, coh_err *err) {
  int rc = COH_OK;
  while (rc == COH_OK && coh_sim_stopped(sim) == NULL) rc = coh_sim_tick(sim, err);
  if (rc == COH_OK) {
    rc = coh_sim_finish(sim, sum, err);
  } else {
    coh_err ignored;
    (void)coh_sim_finish(sim, sum, &ignored);
  }
  coh_sim_free(sim);
  return rc;
}

/* The plain driver: every tick until the run stops. */
int coh_run(const coh_scenario *s, const coh_run_options *opt,
            coh_run_summary *sum, coh_err *err) {
  coh_sim *sim;
  int rc;
  memset(sum, 0, sizeof *sum);
  sum->diverged_tick = -1;
  if ((rc = coh_sim_new(s, opt, &sim, err))) return rc;
  return coh_sim_run(sim, sum, err);
}
