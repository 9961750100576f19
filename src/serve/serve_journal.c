/*
 * serve_journal.c — a served session's journal (cohort/journal.h) and its
 * replay.
 *
 * The journal of `cohort serve --journal FILE`:
 *   genesis (meta "inputs", on the chain): {"cohort": "serve", "version",
 *     "max_batch", "threads", "models": [{"id", "dir", "onnx_sha256"}]};
 *   meta "kind" = "serve" (outside the chain: how replay tells it apart);
 *   per tick of the serve loop that had any, in one transaction, events
 *   with source = the model id:
 *     "serve_request" {"seq", "kind", "n", "seed", "max_tokens",
 *        "logprobs", "top_logprobs", "request" (the llm request JSON the
 *        OpenAI body was translated into), "prompt_ids"?}   — admitted
 *     "serve_cancel"  {"seq"}                                 — client left
 *     "serve_result"  {"seq", "choices": [{"finish", "tokens", "text"}]}
 * The events are written by the serve loop, in the order of the tick's
 * steps (admissions in arrival order, cancellations, results in admission
 * order), so the journal is a function of what arrived at which tick.
 *
 * Replay feeds the journaled requests and cancellations to the same tick
 * machine (coh__serve_tick) at their ticks and compares every result
 * payload with the journaled one, byte for byte.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cohort/journal.h"
#include "serve_int.h"

/* ---- payloads ----------------------------------------------------------------- */

/* Generated text as JSON: invalid UTF-8 becomes U+FFFD. */
static json_t *text_json(const char *p, size_t len) {
  coh__buf b = {0};
  json_t *v;
  coh__buf_add_utf8_lossy(&b, p, len);
  v = b.oom ? NULL : json_stringn(b.p ? b.p : "", b.n);
  coh__buf_free(&b);
  return v;
}

static char *dump(json_t *v) {
  char *t = v ? json_dumps(v, JSON_COMPACT) : NULL, *out = NULL;
  if (t != NULL) {
    out = coh__strdup(t);
    free(t);
  }
  json_decref(v);
  return out;
}

char *coh__serve_request_payload(coh_serve *s, const coh__serve_job *job) {
  json_t *o = json_pack("{s:I,s:s,s:i,s:I,s:i,s:i,s:i,s:s}", "seq", (json_int_t)job->seq, "kind",
                        job->kind == COH__JOB_CHAT ? "chat" : "completion", "n", job->n, "seed",
                        (json_int_t)job->seed, "max_tokens", (int)job->lr.req.max_tokens,
                        "logprobs", job->logprobs, "top_logprobs", job->top_logprobs, "request",
                        job->llm_text ? job->llm_text : "");
  size_t i;
  (void)s;
  if (o != NULL && job->ids_given) {
    json_t *ids = json_array();
    for (i = 0; i < job->lr.n_ids && ids; i++) json_array_append_new(ids, json_integer(job->lr.ids[i]));
    json_object_set_new(o, "prompt_ids", ids);
  }
  return dump(o);
}

char *coh__serve_result_payload(coh_serve *s, const coh__serve_job *job) {
  json_t *choices = json_array();
  int i;
  int32_t t;
  (void)s;
  for (i = 0; i < job->n && choices; i++) {
    const coh__serve_choice *c = &job->choices[i];
    json_t *toks = json_array();
    for (t = 0; t < c->n_tokens && (size_t)t < c->cap_ids && toks; t++)
      json_array_append_new(toks, json_integer(c->ids[t]));
    json_array_append_new(choices, json_pack("{s:s,s:o,s:o}", "finish", coh_finish_name(c->finish),
                                             "tokens", toks, "text",
                                             text_json(c->text.p ? c->text.p : "", c->text.n)));
  }
  return dump(json_pack("{s:I,s:o}", "seq", (json_int_t)job->seq, "choices", choices));
}

/* ---- the live journal ------------------------------------------------------------ */

int coh__serve_journal_create(coh_serve *s, const char *path, coh_err *err) {
  json_t *g = json_pack("{s:s,s:s,s:i,s:i,s:[]}", "cohort", "serve", "version", coh_version(),
                        "max_batch", s->o.max_batch, "threads", s->o.threads, "models");
  json_t *models = json_object_get(g, "models");
  size_t i;
  char *inputs;
  int rc;
  static const char *const keys[] = {"kind"};
  const void *vals[] = {"serve"};
  const size_t lens[] = {5};
  for (i = 0; i < s->n_models && models; i++)
    json_array_append_new(models, json_pack("{s:s,s:s,s:s}", "id", s->models[i].id, "dir",
                                            s->models[i].dir, "onnx_sha256",
                                            s->models[i].onnx_sha256));
  if ((inputs = dump(g)) == NULL) return coh__err(err, COH_ENOMEM, "serve: out of memory");
  rc = coh_journal_create_meta(path, inputs, strlen(inputs), keys, vals, lens, 1, &s->journal, err);
  coh__free(inputs);
  if (rc) coh__err_prefix(err, "serve: --journal %s: ", path);
  return rc;
}

int coh__serve_journal_tick(coh_serve *s, coh_err *err) {
  size_t i;
  int rc;
  if ((rc = coh_journal_tick_begin(s->journal, (int64_t)s->tick, err))) return rc;
  for (i = 0; i < s->n_ev; i++) {
    coh_jevent ev;
    memset(&ev, 0, sizeof ev);
    ev.tick = (int64_t)s->tick;
    ev.kind = s->ev[i].kind;
    ev.source = s->models[s->ev[i].model].id;
    ev.target = "";
    ev.payload = s->ev[i].payload;
    ev.payload_len = strlen(s->ev[i].payload);
    if ((rc = coh_journal_append(s->journal, &ev, err))) {
      coh_journal_tick_rollback(s->journal);
      return rc;
    }
  }
  return coh_journal_tick_commit(s->journal, 0, err);
}

/* ---- replay ------------------------------------------------------------------------- */

int coh_serve_journal_is(coh_journal *j) {
  char *v = NULL;
  size_t len = 0;
  int is;
  coh_err err;
  if (coh_journal_meta_get(j, "kind", &v, &len, &err) != COH_OK) return 0;
  is = len == 5 && !memcmp(v, "serve", 5);
  coh_free(v);
  return is;
}

typedef struct rev {
  int64_t tick;
  char kind; /* 'R' request, 'C' cancel, 'X' result */
  char *source;
  char *payload;
} rev;

typedef struct rev_list {
  rev *v;
  size_t n, cap;
  int oom, bad;
  int64_t bad_seq;
} rev_list;

static int collect(void *ud, const coh_jevent *ev) {
  rev_list *l = ud;
  char kind;
  if (!strcmp(ev->kind, "serve_request")) kind = 'R';
  else if (!strcmp(ev->kind, "serve_cancel")) kind = 'C';
  else if (!strcmp(ev->kind, "serve_result")) kind = 'X';
  else {
    l->bad = 1;
    l->bad_seq = ev->seq;
    return 1;
  }
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 256;
    rev *p = coh__realloc(l->v, nc * sizeof *p);
    if (p == NULL) {
      l->oom = 1;
      return 1;
    }
    l->v = p;
    l->cap = nc;
  }
  l->v[l->n].tick = ev->tick;
  l->v[l->n].kind = kind;
  l->v[l->n].source = coh__strdup(ev->source);
  l->v[l->n].payload = coh__malloc(ev->payload_len + 1);
  if (l->v[l->n].source == NULL || l->v[l->n].payload == NULL) {
    coh__free(l->v[l->n].source);
    coh__free(l->v[l->n].payload);
    l->oom = 1;
    return 1;
  }
  memcpy(l->v[l->n].payload, ev->payload, ev->payload_len);
  l->v[l->n].payload[ev->payload_len] = '\0';
  l->n++;
  return 0;
}

static void short_copy(char *dst, size_t cap, const char *a, const char *b) {
  snprintf(dst, cap, "journal: %.200s | replay: %.200s", a ? a : "(none)", b ? b : "(none)");
}

static int model_index(coh_serve *s, const char *id) {
  size_t i;
  for (i = 0; i < s->n_models; i++)
    if (!strcmp(s->models[i].id, id)) return (int)i;
  return -1;
}

/* A job from a journaled serve_request. */
static int job_from(coh_serve *s, const rev *e, coh__serve_job **out, coh_err *err) {
  json_error_t je;
  json_t *o = json_loads(e->payload, 0, &je), *ids;
  int32_t *pid = NULL;
  size_t n_ids = 0, i;
  int model = model_index(s, e->source), rc;
  json_int_t seq, n, mt, lp, top;
  const char *kind = NULL, *req = NULL;
  *out = NULL;
  if (o == NULL || model < 0 ||
      json_unpack(o, "{s:I,s:s,s:I,s:I,s:I,s:I,s:s}", "seq", &seq, "kind", &kind, "n", &n,
                  "max_tokens", &mt, "logprobs", &lp, "top_logprobs", &top, "request", &req) ||
      !json_is_integer(json_object_get(o, "seed")) || n < 1 || n > COH__SERVE_MAX_N ||
      mt < 0 || top < 0 || top > COH__SERVE_MAX_TOP_LOGPROBS) {
    rc = coh__err(err, COH_EJOURNAL, "serve journal: tick %lld: a malformed serve_request (%s)",
                  (long long)e->tick, model < 0 ? "unknown model" : "fields");
    json_decref(o);
    return rc;
  }
  ids = json_object_get(o, "prompt_ids");
  if (json_is_array(ids)) {
    n_ids = json_array_size(ids);
    if ((pid = coh__malloc((n_ids ? n_ids : 1) * sizeof *pid)) == NULL) {
      json_decref(o);
      return coh__err(err, COH_ENOMEM, "out of memory");
    }
    for (i = 0; i < n_ids; i++) pid[i] = (int32_t)json_integer_value(json_array_get(ids, i));
  }
  rc = coh__serve_job_new(s, model, !strcmp(kind, "chat") ? COH__JOB_CHAT : COH__JOB_COMPLETION,
                          (int)n, (uint64_t)json_integer_value(json_object_get(o, "seed")), req,
                          pid, n_ids, out, err);
  coh__free(pid);
  if (rc == COH_OK) {
    (*out)->seq = (uint64_t)seq;
    (*out)->logprobs = (int)lp;
    (*out)->top_logprobs = (int)top;
    (*out)->lr.req.max_tokens = (int32_t)mt;
  } else {
    coh__err_prefix(err, "serve journal: tick %lld: request %lld: ", (long long)e->tick,
                    (long long)seq);
    if (rc != COH_ENOMEM) rc = COH_EJOURNAL;
  }
  json_decref(o);
  return rc;
}

static uint64_t seq_of(const char *payload) {
  json_t *o = json_loads(payload, 0, NULL);
  uint64_t v = (uint64_t)json_integer_value(json_object_get(o, "seq"));
  json_decref(o);
  return v;
}

int coh_serve_replay(coh_journal *j, coh_device device, int threads,
                     coh_serve_replay_report *rep, coh_err *err) {
  char *inputs = NULL;
  size_t len = 0, i, idx = 0;
  json_t *g = NULL, *models;
  const char *dirs[COH_SERVE_MAX_MODELS];
  coh_serve_options o;
  coh_serve *s = NULL;
  rev_list l;
  int rc;
  int64_t last_tick = -1;

  memset(rep, 0, sizeof *rep);
  memset(&l, 0, sizeof l);
  if ((rc = coh_journal_meta_get(j, "inputs", &inputs, &len, err))) return rc;
  g = json_loadb(inputs, len, 0, NULL);
  coh_free(inputs);
  models = json_object_get(g, "models");
  if (!json_is_array(models) || json_array_size(models) == 0 ||
      json_array_size(models) > COH_SERVE_MAX_MODELS ||
      !json_is_integer(json_object_get(g, "max_batch"))) {
    rc = coh__err(err, COH_EJOURNAL, "serve journal: the genesis lacks 'models' or 'max_batch'");
    goto done;
  }
  coh_serve_options_default(&o);
  o.max_batch = (int)json_integer_value(json_object_get(g, "max_batch"));
  o.threads = threads ? threads : (int)json_integer_value(json_object_get(g, "threads"));
  o.device = device;
  o.listen = "127.0.0.1:0";
  for (i = 0; i < json_array_size(models); i++) {
    json_t *m = json_array_get(models, i);
    dirs[i] = json_string_value(json_object_get(m, "dir"));
    if (dirs[i] == NULL || !json_is_string(json_object_get(m, "onnx_sha256"))) {
      rc = coh__err(err, COH_EJOURNAL, "serve journal: genesis models[%zu] lacks 'dir' or "
                    "'onnx_sha256'", i);
      goto done;
    }
  }
  o.model_dirs = dirs;
  o.n_models = json_array_size(models);
  if ((rc = coh__serve_core_new(&o, &s, err))) goto done;
  for (i = 0; i < s->n_models; i++) {
    const char *want = json_string_value(json_object_get(json_array_get(models, i), "onnx_sha256"));
    if (strcmp(want, s->models[i].onnx_sha256)) {
      rc = coh__err(err, COH_EMODEL,
                    "serve journal: model %s: %s has sha256 %s, the session ran %s",
                    s->models[i].id, s->models[i].dir, s->models[i].onnx_sha256, want);
      goto done;
    }
  }
  s->replaying = 1;

  rc = coh_journal_events(j, INT64_MIN, INT64_MAX, NULL, collect, &l, err);
  if (l.oom) rc = coh__err(err, COH_ENOMEM, "out of memory");
  else if (l.bad)
    rc = coh__err(err, COH_EJOURNAL, "serve journal: event %lld is not a serve event",
                  (long long)l.bad_seq);
  if (rc) goto done;
  if (l.n) last_tick = l.v[l.n - 1].tick;

  /* the serve loop, fed from the journal */
  while (idx < l.n || s->n_active > 0) {
    int64_t t;
    size_t r, x;
    if (s->n_active == 0 && s->in_head == NULL) {
      /* idle: the live loop waited for the next request */
      s->tick = (uint64_t)(l.v[idx].tick - 1);
    }
    t = (int64_t)s->tick + 1;
    if (t > last_tick + 1 && s->n_active > 0 && idx >= l.n) {
      rep->diverged = 1;
      rep->tick = t;
      rep->seq = s->active[0]->seq;
      snprintf(rep->what, sizeof rep->what,
               "request %llu is still running after the journal's last tick %lld",
               (unsigned long long)rep->seq, (long long)last_tick);
      goto done;
    }
    /* this tick's requests and cancellations */
    for (r = idx; r < l.n && l.v[r].tick == t; r++) {
      if (l.v[r].kind == 'R') {
        coh__serve_job *job;
        if ((rc = job_from(s, &l.v[r], &job, err))) {
          coh__serve_job_free(job);
          goto done;
        }
        job->next = NULL;
        if (s->in_tail) s->in_tail->next = job;
        else s->in_head = job;
        s->in_tail = job;
        s->n_open++;
        rep->requests++;
      } else if (l.v[r].kind == 'C') {
        uint64_t seq = seq_of(l.v[r].payload);
        size_t a;
        coh__serve_job *q;
        for (a = 0; a < s->n_active; a++)
          if (s->active[a]->seq == seq) atomic_store(&s->active[a]->cancel, 1);
        for (q = s->in_head; q; q = q->next)
          if (q->seq == seq) atomic_store(&q->cancel, 1);
      }
    }
    (void)coh__serve_tick(s);
    /* compare the tick's events with the journal's, in order */
    for (x = 0, r = idx; x < s->n_ev || (r < l.n && l.v[r].tick == t); x++, r++) {
      const rev *want = r < l.n && l.v[r].tick == t ? &l.v[r] : NULL;
      const coh__serve_event *got = x < s->n_ev ? &s->ev[x] : NULL;
      if (want && want->kind == 'X') rep->results++;
      if (want == NULL || got == NULL || strcmp(want->payload, got->payload) ||
          (want->kind == 'R') != !strcmp(got->kind, "serve_request") ||
          (want->kind == 'X') != !strcmp(got->kind, "serve_result")) {
        rep->diverged = 1;
        rep->tick = t;
        rep->seq = got ? got->seq : seq_of(want->payload);
        short_copy(rep->what, sizeof rep->what, want ? want->payload : NULL,
                   got ? got->payload : NULL);
        goto done;
      }
    }
    idx = r;
    for (x = 0; x < s->n_ev; x++) coh__free(s->ev[x].payload);
    s->n_ev = 0;
    for (x = 0; x < s->n_retired; x++) coh__serve_job_free(s->retired[x]);
    s->n_retired = 0;
  }
  rc = COH_OK;
done:
  for (i = 0; i < l.n; i++) {
    coh__free(l.v[i].source);
    coh__free(l.v[i].payload);
  }
  coh__free(l.v);
  if (s != NULL) {
    coh__serve_job *q = s->in_head, *nx;
    for (; q; q = nx) {
      nx = q->next;
      coh__serve_job_free(q);
    }
    s->in_head = NULL;
  }
  coh_serve_free(s);
  json_decref(g);
  return rc;
}
