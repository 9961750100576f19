/*
 * render.c — the monitor's two text renderers: Prometheus text exposition
 * (format 0.0.4) from a snapshot, and Chrome trace event JSON from spans.
 * Both are pure functions of their input, so tests compare exact text.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/monitor.h"
#include "monitor_int.h"

/* ---- small text helpers ------------------------------------------------- */


void coh__json_str(coh__buf *b, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, k;
  coh__buf_addc(b, '"');
  while (i < n) {
    unsigned char c = p[i];
    /* printable ASCII other than '"' and '\\' is copied in runs: the
     * orchestrator writes ~170 KB snapshots with this ten times a second */
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      size_t j = i + 1;
      while (j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"' && p[j] != '\\') j++;
      coh__buf_add(b, p + i, j - i);
      i = j;
      continue;
    }
    if (c == '"' || c == '\\') {
      coh__buf_addc(b, '\\');
      coh__buf_addc(b, (char)c);
      i++;
    } else if (c == '\n') {
      coh__buf_add(b, "\\n", 2), i++;
    } else if (c == '\t') {
      coh__buf_add(b, "\\t", 2), i++;
    } else if (c == '\r') {
      coh__buf_add(b, "\\r", 2), i++;
    } else if (c < 0x20 || c == 0x7f) {
      coh__buf_printf(b, "\\u%04x", c), i++;
    } else if ((k = coh__utf8_seq(p + i, n - i)) == 0) {
      coh__buf_add(b, "\\ufffd", 6), i++;
    } else {
      coh__buf_add(b, p + i, k), i += k;
    }
  }
  coh__buf_addc(b, '"');
}

void coh__fmt_num(coh__buf *b, double x) {
  char tmp[40];
  int prec;
  if (isnan(x)) {
    coh__buf_add(b, "NaN", 3);
    return;
  }
  if (isinf(x)) {
    coh__buf_add(b, x > 0 ? "+Inf" : "-Inf", 4);
    return;
  }
  if (x == floor(x) && fabs(x) < 1e15) {
    coh__buf_printf(b, "%.0f", x == 0 ? 0.0 : x); /* no "-0" */
    return;
  }
  for (prec = 1; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, x);
    if (strtod(tmp, NULL) == x) break;
  }
  coh__buf_add(b, tmp, strlen(tmp));
}

/* Prometheus label value: backslash, double quote and newline escaped. */
static void label_value(coh__buf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\') coh__buf_add(b, "\\\\", 2);
    else if (*s == '"') coh__buf_add(b, "\\\"", 2);
    else if (*s == '\n') coh__buf_add(b, "\\n", 2);
    else coh__buf_addc(b, *s);
  }
}

/* ---- snapshot access with schema checks --------------------------------- */

typedef struct snap_ctx {
  coh_err *err;
  int bad; /* first schema error already reported */
} snap_ctx;

static void schema_err(snap_ctx *c, const char *path, const char *want) {
  if (c->bad) return;
  c->bad = 1;
  coh__err(c->err, COH_EFORMAT, "snapshot: %s: expected %s", path, want);
}

static json_t *get(snap_ctx *c, json_t *obj, const char *path,
                   const char *key, int type) {
  json_t *v = json_object_get(obj, key);
  char where[160];
  const char *want = type == JSON_OBJECT   ? "an object"
                     : type == JSON_ARRAY  ? "an array"
                     : type == JSON_STRING ? "a string"
                     : type == JSON_INTEGER ? "an integer"
                     : type == JSON_REAL   ? "a number"
                                           : "a boolean";
  snprintf(where, sizeof where, "%s%s%s", path, path[0] ? "." : "", key);
  if (v == NULL) {
    schema_err(c, where, want);
    return NULL;
  }
  if (type == JSON_REAL ? !json_is_number(v)
      : type == JSON_TRUE ? !json_is_boolean(v)
                          : (int)json_typeof(v) != type) {
    schema_err(c, where, want);
    return NULL;
  }
  return v;
}

static long long get_int(snap_ctx *c, json_t *obj, const char *path,
                         const char *key) {
  json_t *v = get(c, obj, path, key, JSON_INTEGER);
  return v ? (long long)json_integer_value(v) : 0;
}

static double get_num(snap_ctx *c, json_t *obj, const char *path,
                      const char *key) {
  json_t *v = get(c, obj, path, key, JSON_REAL);
  return v ? json_number_value(v) : 0;
}

static const char *get_str(snap_ctx *c, json_t *obj, const char *path,
                           const char *key) {
  json_t *v = get(c, obj, path, key, JSON_STRING);
  return v ? json_string_value(v) : "";
}

/* ---- /metrics ------------------------------------------------------------ */

static void family(coh__buf *b, const char *name, const char *type,
                   const char *help) {
  coh__buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const struct {
  const char *key, *name, *help;
} counters[] = {
    {"events", "cohort_events_total", "Events committed to the journal."},
    {"agent_steps", "cohort_agent_steps_total", "Agent steps run."},
    {"messages", "cohort_messages_total", "Messages delivered between agents."},
    {"refused", "cohort_refused_total",
     "Messages refused (full inbox or unknown target)."},
    {"traps", "cohort_traps_total", "Agent traps."},
    {"llm_requests", "cohort_llm_requests_total", "LLM requests committed."},
    {"llm_tokens", "cohort_llm_tokens_total", "Tokens generated by models."},
};

static const char *const stage_names[] = {"queued", "agent_step", "inference",
                                          "delivered"};

/* Per-agent or per-model gauge family over the array `arr`. */
static void labelled_gauge(coh__buf *b, snap_ctx *c, json_t *arr,
                           const char *arr_name, const char *label,
                           const char *id_key, const char *key,
                           const char *name, const char *help) {
  size_t i;
  json_t *e;
  char path[64];
  family(b, name, "gauge", help);
  json_array_foreach(arr, i, e) {
    const char *id;
    double v;
    snprintf(path, sizeof path, "%s[%zu]", arr_name, i);
    if (!json_is_object(e)) {
      schema_err(c, path, "an object");
      return;
    }
    id = get_str(c, e, path, id_key);
    v = get_num(c, e, path, key);
    if (c->bad) return;
    coh__buf_printf(b, "%s{%s=\"", name, label);
    label_value(b, id);
    coh__buf_add(b, "\"} ", 3);
    coh__fmt_num(b, v);
    coh__buf_addc(b, '\n');
  }
}

static void histogram(coh__buf *b, snap_ctx *c, json_t *h, const char *stage) {
  char path[64];
  json_t *buckets, *e;
  size_t i, nb;
  long long count, prev = 0;
  double sum_ms, prev_bound = -INFINITY;
  int have_inf = 0;
  snprintf(path, sizeof path, "stages.%s", stage);
  count = get_int(c, h, path, "count");
  sum_ms = get_num(c, h, path, "sum_ms");
  buckets = get(c, h, path, "buckets", JSON_ARRAY);
  if (c->bad) return;
  nb = json_array_size(buckets);
  json_array_foreach(buckets, i, e) {
    json_t *ub = json_array_get(e, 0), *cum = json_array_get(e, 1);
    char bpath[96];
    snprintf(bpath, sizeof bpath, "%s.buckets[%zu]", path, i);
    if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_integer(cum) ||
        !(json_is_number(ub) || (json_is_null(ub) && i + 1 == nb))) {
      schema_err(c, bpath, "[upper_bound_ms, cumulative_count] "
                           "(a null bound only last)");
      return;
    }
    if (json_integer_value(cum) < prev ||
        (json_is_number(ub) && json_number_value(ub) <= prev_bound)) {
      schema_err(c, bpath, "increasing bounds and non-decreasing counts");
      return;
    }
    prev = (long long)json_integer_value(cum);
    coh__buf_printf(b, "cohort_stage_latency_seconds_bucket{stage=\"%s\",le=\"",
                    stage);
    if (json_is_null(ub)) {
      coh__buf_add(b, "+Inf", 4);
      have_inf = 1;
    } else {
      prev_bound = json_number_value(ub);
      coh__fmt_num(b, prev_bound / 1000.0);
    }
    coh__buf_printf(b, "\"} %lld\n", prev);
  }
  if (!have_inf) /* a histogram always ends with +Inf, which is the count */
    coh__buf_printf(b, "cohort_stage_latency_seconds_bucket{stage=\"%s\","
                       "le=\"+Inf\"} %lld\n", stage, count);
  coh__buf_printf(b, "cohort_stage_latency_seconds_sum{stage=\"%s\"} ", stage);
  coh__fmt_num(b, sum_ms / 1000.0);
  coh__buf_printf(b, "\ncohort_stage_latency_seconds_count{stage=\"%s\"} %lld\n",
                  stage, count);
}

int coh_monitor_render_metrics(const char *snapshot_json, size_t len,
                               char **out, size_t *out_len, coh_err *err) {
  json_t *root = NULL, *run, *ctr, *agents, *models, *stages;
  json_error_t jerr;
  coh__buf b = {0};
  snap_ctx c = {err, 0};
  size_t i;
  int rc = COH_EFORMAT;

  *out = NULL;
  if (out_len) *out_len = 0;
  root = json_loadb(snapshot_json, len, 0, &jerr);
  if (root == NULL) {
    coh__err(err, COH_EFORMAT, "snapshot: line %d column %d: %s", jerr.line,
             jerr.column, jerr.text);
    return COH_EFORMAT;
  }
  if (!json_is_object(root)) {
    schema_err(&c, "(root)", "an object");
    goto done;
  }
  if (get_int(&c, root, "", "version") != 1 && !c.bad) {
    coh__err(err, COH_EFORMAT, "snapshot: version: expected 1");
    goto done;
  }
  run = get(&c, root, "", "run", JSON_OBJECT);
  ctr = get(&c, root, "", "counters", JSON_OBJECT);
  agents = get(&c, root, "", "agents", JSON_ARRAY);
  models = get(&c, root, "", "models", JSON_ARRAY);
  stages = get(&c, root, "", "stages", JSON_OBJECT);
  if (c.bad) goto done;

  for (i = 0; i < sizeof counters / sizeof counters[0]; i++) {
    long long v = get_int(&c, ctr, "counters", counters[i].key);
    if (c.bad) goto done;
    family(&b, counters[i].name, "counter", counters[i].help);
    coh__buf_printf(&b, "%s %lld\n", counters[i].name, v);
  }
  {
    long long tick = get_int(&c, run, "run", "tick");
    json_t *paused = get(&c, run, "run", "paused", JSON_TRUE);
    if (c.bad) goto done;
    family(&b, "cohort_tick", "gauge", "The last tick run.");
    coh__buf_printf(&b, "cohort_tick %lld\n", tick);
    family(&b, "cohort_paused", "gauge", "1 while the run is paused.");
    coh__buf_printf(&b, "cohort_paused %d\n", json_is_true(paused) ? 1 : 0);
  }
  labelled_gauge(&b, &c, agents, "agents", "agent", "id", "inbox",
                 "cohort_agent_inbox", "Messages waiting in the agent's inbox.");
  labelled_gauge(&b, &c, agents, "agents", "agent", "id", "fuel_used",
                 "cohort_agent_fuel_used", "Fuel the agent has used.");
  labelled_gauge(&b, &c, models, "models", "model", "name", "batch",
                 "cohort_model_batch", "Sequences in the model's current batch.");
  labelled_gauge(&b, &c, models, "models", "model", "name", "queued",
                 "cohort_model_queued", "Requests waiting for admission.");
  labelled_gauge(&b, &c, models, "models", "model", "name",
                 "tokens_per_second", "cohort_model_tokens_per_second",
                 "Recent generation rate of the model.");
  if (c.bad) goto done;
  family(&b, "cohort_stage_latency_seconds", "histogram",
         "Wall-clock latency per task stage.");
  for (i = 0; i < 4; i++) {
    json_t *h = get(&c, stages, "stages", stage_names[i], JSON_OBJECT);
    if (c.bad) goto done;
    histogram(&b, &c, h, stage_names[i]);
    if (c.bad) goto done;
  }
  if (b.oom) {
    rc = coh__err(err, COH_ENOMEM, "rendering metrics: out of memory");
    goto done;
  }
  *out = b.p;
  if (out_len) *out_len = b.n;
  b.p = NULL;
  rc = COH_OK;
done:
  coh__buf_free(&b);
  json_decref(root);
  return rc;
}

/* ---- /trace -------------------------------------------------------------- */

/* A track: (kind, name) → tid within the kind's process. */
typedef struct track {
  int kind;
  const char *name;
  int tid;
} track;

typedef struct track_map {
  track *t;
  size_t n, cap;
  size_t *slot; /* open addressing; index+1, 0 = empty */
  size_t nslot;
  int next_tid[3];
} track_map;

static uint64_t hash_str(int kind, const char *s) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int grow_slots(track_map *tm) {
  size_t ns = tm->nslot ? tm->nslot * 2 : 64, i;
  size_t *s = coh__calloc(ns, sizeof *s);
  if (s == NULL) return COH_ENOMEM;
  for (i = 0; i < tm->n; i++) {
    size_t k = hash_str(tm->t[i].kind, tm->t[i].name) & (ns - 1);
    while (s[k]) k = (k + 1) & (ns - 1);
    s[k] = i + 1;
  }
  coh__free(tm->slot);
  tm->slot = s;
  tm->nslot = ns;
  return COH_OK;
}

/* Finds or adds the track; *is_new says whether it was added. */
static int track_of(track_map *tm, int kind, const char *name, int *tid,
                    int *is_new) {
  size_t k;
  *is_new = 0;
  if ((tm->n + 1) * 2 > tm->nslot && grow_slots(tm)) return COH_ENOMEM;
  k = hash_str(kind, name) & (tm->nslot - 1);
  while (tm->slot[k]) {
    track *t = &tm->t[tm->slot[k] - 1];
    if (t->kind == kind && strcmp(t->name, name) == 0) {
      *tid = t->tid;
      return COH_OK;
    }
    k = (k + 1) & (tm->nslot - 1);
  }
  if (tm->n == tm->cap) {
    size_t nc = tm->cap ? tm->cap * 2 : 32;
    track *nt = coh__realloc(tm->t, nc * sizeof *nt);
    if (nt == NULL) return COH_ENOMEM;
    tm->t = nt;
    tm->cap = nc;
  }
  tm->t[tm->n].kind = kind;
  tm->t[tm->n].name = name;
  tm->t[tm->n].tid = *tid = ++tm->next_tid[kind];
  tm->slot[k] = ++tm->n;
  *is_new = 1;
  return COH_OK;
}

/* Processes: one per track kind, so Perfetto groups agents, models and the
 * orchestrator; each track is a thread of its kind's process. */
static const char *const proc_names[3] = {"agents", "models", "orchestrator"};
static const int proc_pid[3] = {2, 3, 1};

static void us(coh__buf *b, double v) {
  if (!isfinite(v) || v < 0) v = 0;
  coh__buf_printf(b, "%.3f", v);
}

int coh_monitor_render_trace(const coh_trace_span *spans, size_t n,
                             char **out, size_t *out_len, coh_err *err) {
  coh__buf b = {0};
  track_map tm;
  size_t i;
  int rc = COH_OK, tid, is_new, first = 1, used[3] = {0, 0, 0};
  static const char flow_ph[4] = {0, 's', 't', 'f'};

  *out = NULL;
  if (out_len) *out_len = 0;
  memset(&tm, 0, sizeof tm);
  for (i = 0; i < n; i++) {
    if (spans[i].track_kind < 0 || spans[i].track_kind > 2 ||
        spans[i].name == NULL || spans[i].track == NULL ||
        spans[i].flow_phase < 0 || spans[i].flow_phase > 3) {
      rc = coh__err(err, COH_EINVAL,
                    "trace span %zu: track_kind must be 0..2, flow_phase "
                    "0..3, name and track non-NULL", i);
      goto done;
    }
  }
  coh__buf_add(&b, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", 39);
#define SEP() (first ? (void)(first = 0) : coh__buf_add(&b, ",\n", 2))
  for (i = 0; i < n; i++) {
    const coh_trace_span *s = &spans[i];
    int kind = s->track_kind, pid = proc_pid[kind];
    rc = track_of(&tm, kind, s->track, &tid, &is_new);
    if (rc) {
      coh__err(err, rc, "rendering the trace: out of memory");
      goto done;
    }
    if (!used[kind]) {
      used[kind] = 1;
      SEP();
      coh__buf_printf(&b, "{\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"name\":"
                          "\"process_name\",\"args\":{\"name\":\"%s\"}},\n",
                      pid, proc_names[kind]);
      coh__buf_printf(&b, "{\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"name\":"
                          "\"process_sort_index\",\"args\":{\"sort_index\":%d}}",
                      pid, pid);
    }
    if (is_new) {
      SEP();
      coh__buf_printf(&b, "{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":"
                          "\"thread_name\",\"args\":{\"name\":", pid, tid);
      coh__json_str(&b, s->track, strlen(s->track));
      coh__buf_printf(&b, "}},\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":"
                          "\"thread_sort_index\",\"args\":{\"sort_index\":%d}}",
                      pid, tid, tid);
    }
    SEP();
    coh__buf_add(&b, "{\"ph\":\"X\",\"name\":", 17);
    coh__json_str(&b, s->name, strlen(s->name));
    coh__buf_printf(&b, ",\"cat\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":",
                    proc_names[kind], pid, tid);
    us(&b, s->ts_us);
    coh__buf_add(&b, ",\"dur\":", 7);
    us(&b, s->dur_us);
    if (s->flow != 0)
      coh__buf_printf(&b, ",\"args\":{\"task\":\"0x%" PRIx64 "\"}", s->flow);
    coh__buf_addc(&b, '}');
    if (s->flow != 0 && s->flow_phase != 0) {
      /* A flow event at the slice's start binds to that slice ("bp":"e":
       * the enclosing slice), so the arrow joins the stages of one task. */
      SEP();
      coh__buf_printf(&b, "{\"ph\":\"%c\",\"name\":\"task\",\"cat\":\"task\","
                          "\"id\":\"0x%" PRIx64 "\",\"pid\":%d,\"tid\":%d,"
                          "\"bp\":\"e\",\"ts\":",
                      flow_ph[s->flow_phase], s->flow, pid, tid);
      us(&b, s->ts_us);
      coh__buf_addc(&b, '}');
    }
  }
#undef SEP
  coh__buf_add(&b, "]}\n", 3);
  if (b.oom) {
    rc = coh__err(err, COH_ENOMEM, "rendering the trace: out of memory");
    goto done;
  }
  *out = b.p;
  if (out_len) *out_len = b.n;
  b.p = NULL;
done:
  coh__free(tm.t);
  coh__free(tm.slot);
  coh__buf_free(&b);
  return rc;
}
