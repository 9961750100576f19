/*
 * snapshot.c — a coh_monitor_snapshot rendered as the two texts the server
 * hands out: the snapshot JSON (include/cohort/monitor.h's schema) and the
 * Prometheus exposition of /metrics.  Both are written straight into a byte
 * buffer, never through a jansson tree: with 200 agents and 200 transcript
 * lines a snapshot is ~170 KB, and a tree plus json_dumps cost ~4.4 ms per
 * publish on the tick thread (see bench/RESULTS.md "Monitor").  The JSON is
 * what jansson would write (same keys, order, number formatting), except
 * that invalid UTF-8 in a transcript line becomes U+FFFD.  The metrics are
 * byte for byte what coh_monitor_render_metrics makes of that JSON.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/monitor.h"
#include "monitor_int.h"

/* Appends a string literal (its length known at compile time). */
#define LIT(b, lit) coh__buf_add((b), (lit), sizeof(lit) - 1)

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

static void put_str(coh__buf *b, const char *s) {
  if (s == NULL) s = "";
  coh__json_str(b, s, strlen(s));
}

static const char *const stage_names[COH_STAGE_COUNT] = {"queued", "agent_step", "inference",
                                                         "delivered"};

static void hist_json(coh__buf *b, const coh_monitor_hist *h) {
  size_t i;
  LIT(b, "{\"count\":");
  put_i64(b, (int64_t)h->count);
  LIT(b, ",\"sum_ms\":");
  put_real(b, h->sum_ms);
  LIT(b, ",\"p50_ms\":");
  put_real(b, h->p50_ms);
  LIT(b, ",\"p95_ms\":");
  put_real(b, h->p95_ms);
  LIT(b, ",\"p99_ms\":");
  put_real(b, h->p99_ms);
  LIT(b, ",\"jitter_ms\":");
  put_real(b, h->jitter_ms);
  LIT(b, ",\"buckets\":[");
  for (i = 0; i < h->n_buckets && i < COH_MONITOR_BUCKETS; i++) {
    if (i) coh__buf_addc(b, ',');
    LIT(b, "[");
    if (isfinite(h->le_ms[i])) put_real(b, h->le_ms[i]);
    else LIT(b, "null");
    coh__buf_addc(b, ',');
    put_i64(b, (int64_t)h->cumulative[i]);
    coh__buf_addc(b, ']');
  }
  LIT(b, "]}");
}

void coh__snapshot_json(coh__buf *b, const coh_monitor_snapshot *s) {
  size_t i;
  LIT(b, "{\"version\":1,\"run\":{");
  put_key(b, "scenario");
  put_str(b, s->scenario);
  LIT(b, ",\"tick\":");
  put_i64(b, s->tick);
  if (s->paused) LIT(b, ",\"paused\":true"); else LIT(b, ",\"paused\":false");
  if (s->finished) LIT(b, ",\"finished\":true"); else LIT(b, ",\"finished\":false");
  LIT(b, ",\"stop_reason\":");
  if (s->stop_reason) put_str(b, s->stop_reason);
  else LIT(b, "null");
  LIT(b, ",\"digest\":");
  put_str(b, s->digest);
  LIT(b, ",\"wall_seconds\":");
  put_real(b, s->wall_seconds);
  LIT(b, ",\"workers\":");
  put_i64(b, s->workers);
  LIT(b, ",\"mode\":");
  put_str(b, s->mode);
  LIT(b, "},\"counters\":{\"events\":");
  put_i64(b, s->events);
  LIT(b, ",\"agent_steps\":");
  put_i64(b, s->agent_steps);
  LIT(b, ",\"messages\":");
  put_i64(b, s->messages);
  LIT(b, ",\"refused\":");
  put_i64(b, s->refused);
  LIT(b, ",\"traps\":");
  put_i64(b, s->traps);
  LIT(b, ",\"llm_requests\":");
  put_i64(b, s->llm_requests);
  LIT(b, ",\"llm_tokens\":");
  put_i64(b, s->llm_tokens);
  LIT(b, "},\"agents\":[");
  for (i = 0; i < s->n_agents; i++) {
    const coh_monitor_agent *a = &s->agents[i];
    if (i) coh__buf_addc(b, ',');
    LIT(b, "{\"id\":");
    put_str(b, a->id);
    LIT(b, ",\"state\":");
    put_str(b, a->state);
    LIT(b, ",\"inbox\":");
    put_i64(b, a->inbox);
    LIT(b, ",\"fuel_used\":");
    put_i64(b, a->fuel_used);
    LIT(b, ",\"steps\":");
    put_i64(b, a->steps);
    LIT(b, ",\"last_tick\":");
    put_i64(b, a->last_tick);
    LIT(b, ",\"last_event\":");
    put_str(b, a->last_event);
    coh__buf_addc(b, '}');
  }
  LIT(b, "],\"models\":[");
  for (i = 0; i < s->n_models; i++) {
    const coh_monitor_model *ms = &s->models[i];
    if (i) coh__buf_addc(b, ',');
    LIT(b, "{\"name\":");
    put_str(b, ms->name);
    LIT(b, ",\"provider\":");
    put_str(b, ms->provider);
    LIT(b, ",\"batch\":");
    put_i64(b, ms->batch);
    LIT(b, ",\"queued\":");
    put_i64(b, ms->queued);
    LIT(b, ",\"max_batch\":");
    put_i64(b, ms->max_batch);
    LIT(b, ",\"tokens\":");
    put_i64(b, ms->tokens);
    LIT(b, ",\"tokens_per_second\":");
    put_real(b, ms->tokens_per_second);
    coh__buf_addc(b, '}');
  }
  LIT(b, "],\"stages\":{");
  for (i = 0; i < COH_STAGE_COUNT; i++) {
    if (i) coh__buf_addc(b, ',');
    put_key(b, stage_names[i]);
    hist_json(b, &s->stages[i]);
  }
  LIT(b, "},\"transcript\":[");
  for (i = 0; i < s->n_transcript; i++) {
    const coh_monitor_line *e = &s->transcript[i];
    if (i) coh__buf_addc(b, ',');
    LIT(b, "{\"tick\":");
    put_i64(b, e->tick);
    LIT(b, ",\"agent\":");
    put_str(b, e->agent);
    LIT(b, ",\"text\":");
    put_str(b, e->text);
    coh__buf_addc(b, '}');
  }
  LIT(b, "],\"ticks\":[");
  for (i = 0; i < s->n_ticks; i++) {
    const coh_monitor_tick *e = &s->ticks[i];
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
}

/* ---- /metrics ---------------------------------------------------------------- */

/* Prometheus label value: backslash, double quote and newline escaped. */
static void label_value(coh__buf *b, const char *s) {
  for (; s && *s; s++) {
    if (*s == '\\') LIT(b, "\\\\");
    else if (*s == '"') LIT(b, "\\\"");
    else if (*s == '\n') LIT(b, "\\n");
    else coh__buf_addc(b, *s);
  }
}

static void gauge(coh__buf *b, const char *name, const char *label, const char *id, double v) {
  coh__buf_printf(b, "%s{%s=\"", name, label);
  label_value(b, id);
  LIT(b, "\"} ");
  coh__fmt_num(b, v);
  coh__buf_addc(b, '\n');
}

void coh__snapshot_metrics(coh__buf *b, const coh_monitor_snapshot *s) {
  const struct {
    const char *name;
    int64_t v;
  } ctr[] = {
      {"cohort_events_total", s->events},     {"cohort_agent_steps_total", s->agent_steps},
      {"cohort_messages_total", s->messages}, {"cohort_refused_total", s->refused},
      {"cohort_traps_total", s->traps},       {"cohort_llm_requests_total", s->llm_requests},
      {"cohort_llm_tokens_total", s->llm_tokens},
  };
  size_t i, k;
  for (i = 0; i < sizeof ctr / sizeof ctr[0]; i++) {
    coh__metrics_family(b, ctr[i].name, "counter", coh__metrics_help(ctr[i].name));
    coh__buf_printf(b, "%s %lld\n", ctr[i].name, (long long)ctr[i].v);
  }
  coh__metrics_family(b, "cohort_tick", "gauge", "The last tick run.");
  coh__buf_printf(b, "cohort_tick %lld\n", (long long)s->tick);
  coh__metrics_family(b, "cohort_paused", "gauge", "1 while the run is paused.");
  coh__buf_printf(b, "cohort_paused %d\n", s->paused ? 1 : 0);
  coh__metrics_family(b, "cohort_agent_inbox", "gauge", "Messages waiting in the agent's inbox.");
  for (i = 0; i < s->n_agents; i++)
    gauge(b, "cohort_agent_inbox", "agent", s->agents[i].id, (double)s->agents[i].inbox);
  coh__metrics_family(b, "cohort_agent_fuel_used", "gauge", "Fuel the agent has used.");
  for (i = 0; i < s->n_agents; i++)
    gauge(b, "cohort_agent_fuel_used", "agent", s->agents[i].id, (double)s->agents[i].fuel_used);
  coh__metrics_family(b, "cohort_model_batch", "gauge", "Sequences in the model's current batch.");
  for (i = 0; i < s->n_models; i++)
    gauge(b, "cohort_model_batch", "model", s->models[i].name, (double)s->models[i].batch);
  coh__metrics_family(b, "cohort_model_queued", "gauge", "Requests waiting for admission.");
  for (i = 0; i < s->n_models; i++)
    gauge(b, "cohort_model_queued", "model", s->models[i].name, (double)s->models[i].queued);
  coh__metrics_family(b, "cohort_model_tokens_per_second", "gauge",
                      "Recent generation rate of the model.");
  for (i = 0; i < s->n_models; i++)
    gauge(b, "cohort_model_tokens_per_second", "model", s->models[i].name,
          s->models[i].tokens_per_second);
  coh__metrics_family(b, "cohort_stage_latency_seconds", "histogram",
                      "Wall-clock latency per task stage.");
  for (i = 0; i < COH_STAGE_COUNT; i++) {
    const coh_monitor_hist *h = &s->stages[i];
    int have_inf = 0;
    for (k = 0; k < h->n_buckets && k < COH_MONITOR_BUCKETS; k++) {
      coh__buf_printf(b, "cohort_stage_latency_seconds_bucket{stage=\"%s\",le=\"", stage_names[i]);
      if (isfinite(h->le_ms[k])) {
        coh__fmt_num(b, h->le_ms[k] / 1000.0);
      } else {
        LIT(b, "+Inf");
        have_inf = 1;
      }
      coh__buf_printf(b, "\"} %lld\n", (long long)h->cumulative[k]);
    }
    if (!have_inf) /* a histogram always ends with +Inf, which is the count */
      coh__buf_printf(b, "cohort_stage_latency_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %lld\n",
                      stage_names[i], (long long)h->count);
    coh__buf_printf(b, "cohort_stage_latency_seconds_sum{stage=\"%s\"} ", stage_names[i]);
    coh__fmt_num(b, h->sum_ms / 1000.0);
    coh__buf_printf(b, "\ncohort_stage_latency_seconds_count{stage=\"%s\"} %lld\n", stage_names[i],
                    (long long)h->count);
  }
}

static int render(void (*fn)(coh__buf *, const coh_monitor_snapshot *),
                  const coh_monitor_snapshot *s, char **out, size_t *out_len, coh_err *err) {
  coh__buf b = {0};
  *out = NULL;
  if (out_len) *out_len = 0;
  fn(&b, s);
  coh__buf_addc(&b, '\0');
  if (b.oom) {
    coh__buf_free(&b);
    return coh__err(err, COH_ENOMEM, "rendering the snapshot: out of memory");
  }
  *out = b.p;
  if (out_len) *out_len = b.n - 1;
  return COH_OK;
}

int coh_monitor_snapshot_json(const coh_monitor_snapshot *s, char **out, size_t *out_len,
                              coh_err *err) {
  return render(coh__snapshot_json, s, out, out_len, err);
}

int coh_monitor_snapshot_metrics(const coh_monitor_snapshot *s, char **out, size_t *out_len,
                                 coh_err *err) {
  return render(coh__snapshot_metrics, s, out, out_len, err);
}
