/*
 * stats.c — what the monitor sees: stage latency histograms, the snapshot
 * JSON of include/cohort/monitor.h, and trace spans.  Everything here is
 * wall-clock, lives outside the journal and the digest, and runs only when a
 * monitor is attached (--ui).
 */
#include <math.h>
#include <stdio.h>
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

/* ---- snapshot writer ------------------------------------------------------
 * The snapshot is written straight into a byte buffer instead of building a
 * jansson tree and dumping it: with 200 agents and 200 transcript lines a
 * snapshot is ~170 KB, and the tree + json_dumps cost ~4.4 ms per publish on
 * the orchestrator thread (10 publishes/s: ~4 % of a run's wall time, see
 * bench/RESULTS.md "Monitor"); this writer takes a fraction of that.  The
 * output is the same JSON (same keys, order and number formatting) except
 * that invalid UTF-8 in a transcript line becomes U+FFFD instead of the whole
 * line reading "(binary)". */

/* Appends a string literal (its length known at compile time). */
#define LIT(b, lit) coh__buf_add((b), (lit), sizeof(lit) - 1)

/* Text that needs no escaping (keys and fixed words). */
static void put_plain(coh__buf *b, const char *s) { coh__buf_add(b, s, strlen(s)); }

static void put_key(coh__buf *b, const char *key) {
  coh__buf_addc(b, '"');
  put_plain(b, key);
  LIT(b, "\":");
}

static void put_i64(coh__buf *b, int64_t v) {
  char tmp[24], *e = tmp + sizeof tmp, *p = e;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--p = '-';
  coh__buf_add(b, p, (size_t)(e - p));
}

/* As jansson writes a real: %.17g, with ".0" when it would read as an
 * integer; JSON has no NaN or infinity, so those (never expected) are 0. */
static void put_real(coh__buf *b, double x) {
  char tmp[40];
  int n;
  if (!isfinite(x)) x = 0;
  n = snprintf(tmp, sizeof tmp, "%.17g", x);
  if (n <= 0 || n >= (int)sizeof tmp) n = snprintf(tmp, sizeof tmp, "0");
  coh__buf_add(b, tmp, (size_t)n);
  if (strpbrk(tmp, ".eE") == NULL) LIT(b, ".0");
}

static void put_str(coh__buf *b, const char *s) { coh__json_str(b, s, strlen(s)); }

static void hist_json(coh__buf *b, const stage_hist *h) {
  double sorted[COH__WINDOW], mean = 0, var = 0;
  size_t i;
  uint64_t cum = 0;
  memcpy(sorted, h->window, h->wn * sizeof *sorted);
  if (h->wn > 0) qsort(sorted, h->wn, sizeof *sorted, cmp_double);
  for (i = 0; i < h->wn; i++) mean += sorted[i];
  mean = h->wn ? mean / (double)h->wn : 0;
  for (i = 0; i < h->wn; i++) var += (sorted[i] - mean) * (sorted[i] - mean);
#define PCT(p) (h->wn ? sorted[(size_t)((double)(h->wn - 1) * (p) + 0.5)] : 0.0)
  LIT(b, "{\"count\":");
  put_i64(b, (int64_t)h->count);
  LIT(b, ",\"sum_ms\":");
  put_real(b, h->sum_ms);
  LIT(b, ",\"p50_ms\":");
  put_real(b, PCT(0.50));
  LIT(b, ",\"p95_ms\":");
  put_real(b, PCT(0.95));
  LIT(b, ",\"p99_ms\":");
  put_real(b, PCT(0.99));
  LIT(b, ",\"jitter_ms\":");
  put_real(b, h->wn ? sqrt(var / (double)h->wn) : 0.0);
#undef PCT
  LIT(b, ",\"buckets\":[");
  for (i = 0; i < COH__N_BUCKETS; i++) {
    cum += h->buckets[i];
    if (i) coh__buf_addc(b, ',');
    LIT(b, "[");
    if (i < COH__N_BUCKETS - 1) put_real(b, bucket_ms[i]);
    else LIT(b, "null");
    coh__buf_addc(b, ',');
    put_i64(b, (int64_t)cum);
    coh__buf_addc(b, ']');
  }
  LIT(b, "]}");
}

void coh__orch_span(orch *o, const char *name, const char *track, int kind,
                    double t0, double t1, uint64_t flow, int phase) {
  coh_trace_span *s;
  if (o->mon == NULL) return;
  if (o->n_spans == o->cap_spans) {
    coh_trace_span *n;
    if (o->cap_spans >= 1u << 20) return; /* the monitor is not draining: drop */
    n = coh__grow(o->spans, &o->cap_spans, o->n_spans + 1, sizeof *n, 256);
    if (n == NULL) return;
    o->spans = n;
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
  static const char *const stage_names[ST_COUNT] = {"queued", "agent_step", "inference",
                                                    "delivered"};
  double now = coh__wall_seconds();
  char digest[65] = "";
  coh__buf *b = &o->snap;
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
  /* the buffer is kept between publishes (no regrowth after the first) */
  b->n = 0;
  b->oom = 0;
  LIT(b, "{\"version\":1,\"run\":{");
  put_key(b, "scenario");
  put_str(b, o->s->name);
  LIT(b, ",\"tick\":");
  put_i64(b, o->tick);
  if (o->paused) LIT(b, ",\"paused\":true"); else LIT(b, ",\"paused\":false");
  if (finished) LIT(b, ",\"finished\":true"); else LIT(b, ",\"finished\":false");
  LIT(b, ",\"stop_reason\":");
  if (stop) put_str(b, stop);
  else LIT(b, "null");
  LIT(b, ",\"digest\":");
  put_str(b, digest);
  LIT(b, ",\"wall_seconds\":");
  put_real(b, now - o->t0);
  LIT(b, ",\"workers\":");
  put_i64(b, o->n_workers);
  LIT(b, ",\"mode\":");
  put_str(b, o->opt->mode == COH_RUN_REPLAY   ? "replay"
             : o->opt->mode == COH_RUN_RESUME ? "resume"
                                               : "run");
  LIT(b, "},\"counters\":{\"events\":");
  put_i64(b, o->events);
  LIT(b, ",\"agent_steps\":");
  put_i64(b, o->sum->agent_steps);
  LIT(b, ",\"messages\":");
  put_i64(b, o->messages);
  LIT(b, ",\"refused\":");
  put_i64(b, o->refused);
  LIT(b, ",\"traps\":");
  put_i64(b, o->sum->traps);
  LIT(b, ",\"llm_requests\":");
  put_i64(b, o->sum->llm_requests);
  LIT(b, ",\"llm_tokens\":");
  put_i64(b, o->sum->llm_tokens);
  LIT(b, "},\"agents\":[");
  for (k = 0; k < o->n_agents; k++) {
    const agent_slot *a = &o->agents[k];
    if (k) coh__buf_addc(b, ',');
    LIT(b, "{\"id\":");
    put_str(b, a->id);
    LIT(b, ",\"state\":\"");
    put_plain(b, state_name(a->status));
    coh__buf_addc(b, '"');
    LIT(b, ",\"inbox\":");
    put_i64(b, (int64_t)a->in.count);
    LIT(b, ",\"fuel_used\":");
    put_i64(b, (int64_t)a->fuel_total);
    LIT(b, ",\"steps\":");
    put_i64(b, (int64_t)a->steps);
    LIT(b, ",\"last_tick\":");
    put_i64(b, a->last_tick);
    LIT(b, ",\"last_event\":");
    put_str(b, a->last_event);
    coh__buf_addc(b, '}');
  }
  LIT(b, "],\"models\":[");
  for (k = 0; k < o->n_models; k++) {
    const model_slot *ms = &o->models[k];
    coh_engine_stats st;
    memset(&st, 0, sizeof st);
    if (ms->engine) coh_engine_get_stats(ms->engine, &st);
    if (k) coh__buf_addc(b, ',');
    LIT(b, "{\"name\":");
    put_str(b, ms->spec->name);
    LIT(b, ",\"provider\":");
    put_str(b, ms->model ? coh_model_get_info(ms->model)->provider : "journal");
    LIT(b, ",\"batch\":");
    put_i64(b, st.last_decode_batch);
    LIT(b, ",\"queued\":");
    put_i64(b, (int64_t)ms->waiting + st.queued);
    LIT(b, ",\"max_batch\":");
    put_i64(b, ms->max_batch);
    LIT(b, ",\"tokens\":");
    put_i64(b, (int64_t)ms->tokens);
    LIT(b, ",\"tokens_per_second\":");
    put_real(b, now > o->t0 ? (double)ms->tokens / (now - o->t0) : 0);
    coh__buf_addc(b, '}');
  }
  LIT(b, "],\"stages\":{");
  for (k = 0; k < ST_COUNT; k++) {
    if (k) coh__buf_addc(b, ',');
    put_key(b, stage_names[k]);
    hist_json(b, &o->stages[k]);
  }
  LIT(b, "},\"transcript\":[");
  for (i = 0; i < o->tr_n; i++) {
    const struct tr_entry *e = &o->transcript[(o->tr_pos + 200 - o->tr_n + i) % 200];
    if (i) coh__buf_addc(b, ',');
    LIT(b, "{\"tick\":");
    put_i64(b, e->tick);
    LIT(b, ",\"agent\":");
    put_str(b, o->agents[e->agent].id);
    LIT(b, ",\"text\":");
    put_str(b, e->text);
    coh__buf_addc(b, '}');
  }
  LIT(b, "],\"ticks\":[");
  for (i = 0; i < o->tl_n; i++) {
    const struct tl_entry *e = &o->timeline[(o->tl_pos + 300 - o->tl_n + i) % 300];
    if (i) coh__buf_addc(b, ',');
    LIT(b, "{\"tick\":");
    put_i64(b, e->tick);
    LIT(b, ",\"wall_ms\":");
    put_real(b, e->wall_ms);
    LIT(b, ",\"events\":");
    put_i64(b, e->events);
    LIT(b, ",\"steps\":");
    put_i64(b, e->steps);
    coh__buf_addc(b, '}');
  }
  LIT(b, "]}");
  /* out of memory: skip this publish (the dashboard keeps the previous one) */
  if (!b->oom) coh_monitor_publish(o->mon, b->p, b->n);
}

void coh__orch_stats_free(orch *o) {
  size_t i;
  for (i = 0; i < o->tr_n; i++) coh__free(o->transcript[(o->tr_pos + 200 - o->tr_n + i) % 200].text);
  o->tr_n = 0;
  coh__free(o->spans);
  o->spans = NULL;
  coh__buf_free(&o->snap);
}
