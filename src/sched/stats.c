/*
 * stats.c — what the monitor sees: stage latency histograms, the snapshot
 * JSON of include/cohort/monitor.h, and trace spans.  Everything here is
 * wall-clock, lives outside the journal and the digest, and runs only when a
 * monitor is attached (--ui).
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "orch_int.h"

/* Upper bounds of the histogram buckets in milliseconds; the last is +Inf. */
static const double bucket_ms[COH__N_BUCKETS - 1] = {
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};

void coh__hist_add(stage_hist *h, double ms) {
  int b = 0;
  if (ms < 0) ms = 0;
  while (b < COH__N_BUCKETS - 1 && ms > bucket_ms[b]) b++;
  h->buckets[b]++;
  h->count++;
  h->sum_ms += ms;
  h->window[h->wpos] = ms;
  h->wpos = (h->wpos + 1) % COH__WINDOW;
  if (h->wn < COH__WINDOW) h->wn++;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static json_t *hist_json(const stage_hist *h) {
  json_t *j = json_object(), *bk = json_array();
  double sorted[COH__WINDOW], mean = 0, var = 0;
  size_t i;
  uint64_t cum = 0;
  memcpy(sorted, h->window, h->wn * sizeof *sorted);
  if (h->wn > 0) qsort(sorted, h->wn, sizeof *sorted, cmp_double);
  for (i = 0; i < h->wn; i++) mean += sorted[i];
  mean = h->wn ? mean / (double)h->wn : 0;
  for (i = 0; i < h->wn; i++) var += (sorted[i] - mean) * (sorted[i] - mean);
#define PCT(p) (h->wn ? sorted[(size_t)((double)(h->wn - 1) * (p) + 0.5)] : 0.0)
  json_object_set_new(j, "count", json_integer((json_int_t)h->count));
  json_object_set_new(j, "sum_ms", json_real(h->sum_ms));
  json_object_set_new(j, "p50_ms", json_real(PCT(0.50)));
  json_object_set_new(j, "p95_ms", json_real(PCT(0.95)));
  json_object_set_new(j, "p99_ms", json_real(PCT(0.99)));
  json_object_set_new(j, "jitter_ms", json_real(h->wn ? sqrt(var / (double)h->wn) : 0.0));
#undef PCT
  for (i = 0; i < COH__N_BUCKETS; i++) {
    json_t *pair = json_array();
    cum += h->buckets[i];
    json_array_append_new(pair, i < COH__N_BUCKETS - 1 ? json_real(bucket_ms[i]) : json_null());
    json_array_append_new(pair, json_integer((json_int_t)cum));
    json_array_append_new(bk, pair);
  }
  json_object_set_new(j, "buckets", bk);
  return j;
}

void coh__orch_span(orch *o, const char *name, const char *track, int kind,
                    double t0, double t1, uint64_t flow, int phase) {
  coh_trace_span *s;
  if (o->mon == NULL) return;
  if (o->n_spans == o->cap_spans) {
    size_t ncap = o->cap_spans ? o->cap_spans * 2 : 256;
    coh_trace_span *n;
    if (ncap > 1u << 20) return; /* the monitor is not draining: drop */
    n = coh__realloc(o->spans, ncap * sizeof *n);
    if (n == NULL) return;
    o->spans = n;
    o->cap_spans = ncap;
  }
  s = &o->spans[o->n_spans++];
  s->name = name; /* static strings and agent/model names outlive the flush */
  s->track = track;
  s->track_kind = kind;
  s->ts_us = (t0 - o->t0) * 1e6;
  s->dur_us = t1 > t0 ? (t1 - t0) * 1e6 : 0;
  s->flow = flow;
  s->flow_phase = phase;
}

void coh__orch_transcript(orch *o, int agent, const char *text, size_t len) {
  struct tr_entry *e;
  char *copy;
  if (o->mon == NULL) return;
  if (len > 500) len = 500;
  copy = coh__malloc(len + 1);
  if (copy == NULL) return;
  memcpy(copy, text, len);
  copy[len] = '\0';
  e = &o->transcript[o->tr_pos];
  if (o->tr_n == 200) coh__free(e->text);
  else o->tr_n++;
  e->tick = o->tick;
  e->agent = agent;
  e->text = copy;
  o->tr_pos = (o->tr_pos + 1) % 200;
}

static const char *state_name(enum agent_status s) {
  return s == AGENT_ALIVE ? "alive" : s == AGENT_EXITED ? "exited" : "failed";
}

void coh__orch_publish(orch *o, int force, int finished, const char *stop) {
  json_t *root, *run, *c, *agents, *models, *stages, *tr, *ticks;
  static const char *const stage_names[ST_COUNT] = {"queued", "agent_step", "inference",
                                                    "delivered"};
  double now = coh__wall_seconds();
  char digest[65] = "";
  char *text;
  size_t i;
  int k;
  if (o->mon == NULL) return;
  if (o->n_spans > 0) {
    coh_monitor_trace(o->mon, o->spans, o->n_spans);
    o->n_spans = 0;
  }
  /* at most ten snapshots a second: the monitor must cost the run nothing */
  if (!force && now - o->last_publish < 0.1) return;
  o->last_publish = now;
  if (o->opt->journal) coh_journal_digest(o->opt->journal, digest);
  root = json_object();
  json_object_set_new(root, "version", json_integer(1));
  run = json_object();
  json_object_set_new(run, "scenario", json_string(o->s->name));
  json_object_set_new(run, "tick", json_integer(o->tick));
  json_object_set_new(run, "paused", json_boolean(o->paused));
  json_object_set_new(run, "finished", json_boolean(finished));
  json_object_set_new(run, "stop_reason", stop ? json_string(stop) : json_null());
  json_object_set_new(run, "digest", json_string(digest));
  json_object_set_new(run, "wall_seconds", json_real(now - o->t0));
  json_object_set_new(run, "workers", json_integer(o->n_workers));
  json_object_set_new(run, "mode", json_string(o->opt->mode == COH_RUN_REPLAY   ? "replay"
                                               : o->opt->mode == COH_RUN_RESUME ? "resume"
                                                                                 : "run"));
  json_object_set_new(root, "run", run);
  c = json_object();
  json_object_set_new(c, "events", json_integer(o->events));
  json_object_set_new(c, "agent_steps", json_integer(o->sum->agent_steps));
  json_object_set_new(c, "messages", json_integer(o->messages));
  json_object_set_new(c, "refused", json_integer(o->refused));
  json_object_set_new(c, "traps", json_integer(o->sum->traps));
  json_object_set_new(c, "llm_requests", json_integer(o->sum->llm_requests));
  json_object_set_new(c, "llm_tokens", json_integer(o->sum->llm_tokens));
  json_object_set_new(root, "counters", c);
  agents = json_array();
  for (k = 0; k < o->n_agents; k++) {
    const agent_slot *a = &o->agents[k];
    json_t *ja = json_object();
    json_object_set_new(ja, "id", json_string(a->id));
    json_object_set_new(ja, "state", json_string(state_name(a->status)));
    json_object_set_new(ja, "inbox", json_integer((json_int_t)a->in.count));
    json_object_set_new(ja, "fuel_used", json_integer((json_int_t)a->fuel_total));
    json_object_set_new(ja, "steps", json_integer((json_int_t)a->steps));
    json_object_set_new(ja, "last_tick", json_integer(a->last_tick));
    json_object_set_new(ja, "last_event", json_string(a->last_event));
    json_array_append_new(agents, ja);
  }
  json_object_set_new(root, "agents", agents);
  models = json_array();
  for (k = 0; k < o->n_models; k++) {
    const model_slot *ms = &o->models[k];
    json_t *jm = json_object();
    coh_engine_stats st;
    memset(&st, 0, sizeof st);
    if (ms->engine) coh_engine_get_stats(ms->engine, &st);
    json_object_set_new(jm, "name", json_string(ms->spec->name));
    json_object_set_new(jm, "provider",
                        json_string(ms->model ? coh_model_get_info(ms->model)->provider : "journal"));
    json_object_set_new(jm, "batch", json_integer(st.last_decode_batch));
    json_object_set_new(jm, "queued", json_integer((json_int_t)ms->waiting + st.queued));
    json_object_set_new(jm, "max_batch", json_integer(ms->max_batch));
    json_object_set_new(jm, "tokens", json_integer((json_int_t)ms->tokens));
    json_object_set_new(jm, "tokens_per_second",
                        json_real(now > o->t0 ? (double)ms->tokens / (now - o->t0) : 0));
    json_array_append_new(models, jm);
  }
  json_object_set_new(root, "models", models);
  stages = json_object();
  for (k = 0; k < ST_COUNT; k++) json_object_set_new(stages, stage_names[k], hist_json(&o->stages[k]));
  json_object_set_new(root, "stages", stages);
  tr = json_array();
  for (i = 0; i < o->tr_n; i++) {
    const struct tr_entry *e = &o->transcript[(o->tr_pos + 200 - o->tr_n + i) % 200];
    json_t *je = json_object();
    json_object_set_new(je, "tick", json_integer(e->tick));
    json_object_set_new(je, "agent", json_string(o->agents[e->agent].id));
    json_object_set_new(je, "text", json_string(e->text));
    if (json_object_get(je, "text") == NULL) /* not UTF-8 */
      json_object_set_new(je, "text", json_string("(binary)"));
    json_array_append_new(tr, je);
  }
  json_object_set_new(root, "transcript", tr);
  ticks = json_array();
  for (i = 0; i < o->tl_n; i++) {
    const struct tl_entry *e = &o->timeline[(o->tl_pos + 300 - o->tl_n + i) % 300];
    json_t *je = json_object();
    json_object_set_new(je, "tick", json_integer(e->tick));
    json_object_set_new(je, "wall_ms", json_real(e->wall_ms));
    json_object_set_new(je, "events", json_integer(e->events));
    json_object_set_new(je, "steps", json_integer(e->steps));
    json_array_append_new(ticks, je);
  }
  json_object_set_new(root, "ticks", ticks);
  text = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (text) {
    coh_monitor_publish(o->mon, text, strlen(text));
    free(text);
  }
}

void coh__orch_stats_free(orch *o) {
  size_t i;
  for (i = 0; i < o->tr_n; i++) coh__free(o->transcript[(o->tr_pos + 200 - o->tr_n + i) % 200].text);
  o->tr_n = 0;
  coh__free(o->spans);
  o->spans = NULL;
}
