/*
 * serve.c — the server's lifecycle and its serve loop.
 *
 * The serve loop is a tick machine kept deliberately small, so that a
 * caller-owned tick machine (the orchestrator core with sinks) can host it
 * later: one call of tick() is
 *   1. admission: take every job queued by the HTTP threads, in arrival
 *      order, and submit its choices to its model's engine (the engine
 *      admits them at the start of its next step, up to max_batch);
 *   2. cancellation: cancel the engine requests of jobs whose client left;
 *   3. one engine step per busy model (callbacks append text to the jobs);
 *      then the HTTP thread of every job with new text is woken, once;
 *   4. retire the jobs whose choices have all finished.
 * Between ticks, with nothing to do, the loop waits for a job or the stop
 * flag.  Batch composition therefore follows the arrival order of requests,
 * and a request's tokens follow from its own prompt, parameters and seed
 * only (the engine is batch invariant on the CPU).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cohort/journal.h"
#include "serve_int.h"

void coh_serve_options_default(coh_serve_options *o) {
  memset(o, 0, sizeof *o);
  o->listen = "127.0.0.1:8080";
  o->max_batch = 16;
  o->max_queue = 256;
  o->max_body = (size_t)4 << 20;
  o->device = COH_DEVICE_AUTO;
}

static void say(coh_serve *s, const char *fmt, ...) COH__PRINTF(2, 3);
static void say(coh_serve *s, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (s->o.log) s->o.log(s->o.log_user, line);
  else fprintf(stderr, "%s\n", line);
}

/* ---- jobs -------------------------------------------------------------------- */

/* coh__serve_job_new and coh__serve_job_free are in serve_check.c. */

int coh__serve_enqueue(coh_serve *s, coh__serve_job *job) {
  size_t cap = (size_t)s->o.max_queue;
  pthread_mutex_lock(&s->lock);
  if (s->stopping) {
    pthread_mutex_unlock(&s->lock);
    return 503;
  }
  if (s->n_waiting >= cap) {
    pthread_mutex_unlock(&s->lock);
    return 429;
  }
  job->seq = ++s->next_seq;
  job->next = NULL;
  if (s->in_tail) s->in_tail->next = job;
  else s->in_head = job;
  s->in_tail = job;
  s->n_waiting++;
  s->n_open++;
  pthread_cond_signal(&s->loop_cond);
  pthread_mutex_unlock(&s->lock);
  return 0;
}

void coh__serve_count_status(coh_serve *s, int status) {
  int k = status == 429 ? 2 : status >= 500 ? 3 : status >= 400 ? 1 : 0;
  pthread_mutex_lock(&s->lock);
  s->m.requests[k]++;
  pthread_mutex_unlock(&s->lock);
}

/* ---- token events (serve loop, inside coh_engine_step) ----------------------- */

static const double ttft_bounds[10] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,  1,     2.5,  10};

/* Log-probabilities of the raw logits (log-softmax): the sampled token's and
 * the k best (ties: lower id first). */
static void logprobs(const float *logits, int64_t vocab, int32_t tok, int k,
                     coh__serve_tok *out) {
  double mx = -INFINITY, sum = 0, lse;
  int64_t i;
  int j, n = 0;
  for (i = 0; i < vocab; i++)
    if (logits[i] > mx) mx = logits[i];
  for (i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
  lse = mx + log(sum);
  out->id = tok;
  out->logprob = (float)((double)logits[tok] - lse);
  for (i = 0; i < vocab; i++) {
    float v = logits[i];
    if (n == k && (k == 0 || v <= logits[out->top_id[n - 1]])) continue;
    j = n < k ? n++ : n - 1;
    while (j > 0 && logits[out->top_id[j - 1]] < v) {
      out->top_id[j] = out->top_id[j - 1];
      j--;
    }
    out->top_id[j] = (int32_t)i;
  }
  out->n_top = n;
  for (j = 0; j < n; j++) out->top_lp[j] = (float)((double)logits[out->top_id[j]] - lse);
}

static void on_token(void *user, const coh_token_event *ev) {
  coh__serve_choice *c = user;
  coh__serve_job *job = c->job;
  coh_serve *s = job->srv;
  coh__serve_tok t;
  int want_lp = job->logprobs && ev->token >= 0 && ev->logits != NULL, first;
  if (want_lp) {
    memset(&t, 0, sizeof t);
    logprobs(ev->logits, s->models[job->model].vocab, ev->token, job->top_logprobs, &t);
  }
  pthread_mutex_lock(&s->lock);
  if (ev->token >= 0) {
    if ((size_t)c->n_tokens == c->cap_ids) {
      size_t nc = c->cap_ids ? c->cap_ids * 2 : 64;
      int32_t *p = coh__realloc(c->ids, nc * sizeof *p);
      if (p == NULL) job->oom = 1;
      else {
        c->ids = p;
        c->cap_ids = nc;
      }
    }
    if ((size_t)c->n_tokens < c->cap_ids) c->ids[c->n_tokens] = ev->token;
    c->n_tokens++;
    s->m.completion_tokens++;
    if (job->t_first == 0) {
      int b;
      job->t_first = coh__wall_seconds();
      s->m.ttft_count++;
      s->m.ttft_sum += job->t_first - job->t_arrive;
      for (b = 0; b < 10; b++)
        if (job->t_first - job->t_arrive <= ttft_bounds[b]) s->m.ttft_bucket[b]++;
    }
    if (want_lp) {
      if (c->n_toks == c->cap_toks) {
        size_t nc = c->cap_toks ? c->cap_toks * 2 : 32;
        coh__serve_tok *p = coh__realloc(c->toks, nc * sizeof *p);
        if (p == NULL) job->oom = 1;
        else {
          c->toks = p;
          c->cap_toks = nc;
        }
      }
      if (c->n_toks < c->cap_toks) c->toks[c->n_toks++] = t;
    }
  }
  if (ev->text_len > 0) {
    coh__buf_add(&c->text, ev->text, ev->text_len);
    if (c->n_pieces == c->cap_pieces) {
      size_t nc = c->cap_pieces ? c->cap_pieces * 2 : 32;
      size_t *p = coh__realloc(c->piece_end, nc * sizeof *p);
      if (p == NULL) job->oom = 1;
      else {
        c->piece_end = p;
        c->cap_pieces = nc;
      }
    }
    if (c->text.oom) job->oom = 1;
    else if (c->n_pieces < c->cap_pieces) c->piece_end[c->n_pieces++] = c->text.n;
  }
  if (ev->finish != COH_FINISH_NONE) c->finish = ev->finish;
  /* The reader is woken after the step (wake_readers), not here: a wake-up
   * per token inside the step let the woken HTTP thread preempt the serve
   * loop and contend for this lock, token by token.  The first token is the
   * exception (once per request): a step that prefills many requests one
   * after another would otherwise hold every first token until its end,
   * which is time to first token.  Outside the lock: the job is not done
   * before this thread says so. */
  first = !job->notify && job->t_first != 0 && c->n_tokens == 1 && ev->token >= 0;
  job->notify = !first;
  pthread_mutex_unlock(&s->lock);
  if (first) pthread_cond_broadcast(&job->cond);
}

/* Wakes the HTTP thread of every job that got tokens in this tick's engine
 * steps: one broadcast per job, after the steps.  Broadcast outside the
 * lock: the job cannot be freed before the loop marks it done (later, in
 * this thread), and its new state was written under the lock, so a reader
 * that checked before waits on the condition and gets this wake-up. */
static void wake_readers(coh_serve *s) {
  size_t i;
  int any = 0;
  pthread_mutex_lock(&s->lock);
  for (i = 0; i < s->n_active; i++) {
    coh__serve_job *job = s->active[i];
    job->wake = job->notify;
    job->notify = 0;
    any |= job->wake;
  }
  pthread_mutex_unlock(&s->lock);
  for (i = 0; any && i < s->n_active; i++)
    if (s->active[i]->wake) {
      s->active[i]->wake = 0;
      pthread_cond_broadcast(&s->active[i]->cond);
    }
}

/* ---- the tick machine ---------------------------------------------------------- */

/* Submits every choice of job to its engine.  A failure (COH_ECONTEXT, a
 * token id outside the vocabulary, ...) finishes the job's choices that
 * were not submitted with COH_FINISH_ERROR and is logged; the HTTP side
 * turns a job with no tokens and an ERROR finish into a 400. */
static void admit(coh_serve *s, coh__serve_job *job) {
  coh__serve_model *m = &s->models[job->model];
  int i;
  for (i = 0; i < job->n; i++) {
    coh__serve_choice *c = &job->choices[i];
    coh_request r = job->lr.req;
    coh_err err = {0};
    r.sampling.seed = job->seed + (uint64_t)i;
    r.on_token = on_token;
    r.user = c;
    if (coh_engine_submit(m->engine, &r, &c->engine_id, &err) != COH_OK) {
      pthread_mutex_lock(&s->lock);
      c->finish = COH_FINISH_ERROR;
      s->m.errors++;
      pthread_mutex_unlock(&s->lock);
      say(s, "serve: request %llu choice %d: %s", (unsigned long long)job->seq, i, err.msg);
      continue;
    }
    c->submitted = 1;
  }
}

static int job_finished(coh_serve *s, const coh__serve_job *job) {
  int i, done = 1;
  (void)s;
  for (i = 0; i < job->n; i++)
    if (job->choices[i].finish == COH_FINISH_NONE) done = 0;
  return done;
}

/* Whether events are recorded (journal / replay): the payloads (JSON of the
 * whole request and result) are built only then. */
static int recording(const coh_serve *s) { return s->journal != NULL || s->replaying; }

/* Records an event of the current tick (journal / replay); payload owned.
 * An allocation failure drops it and is logged: the journal then misses an
 * event, which replay reports as a divergence. */
static void add_event(coh_serve *s, const char *kind, const coh__serve_job *job, char *payload) {
  if (!recording(s)) {
    coh__free(payload);
    return;
  }
  if (payload != NULL && s->n_ev == s->cap_ev) {
    size_t nc = s->cap_ev ? s->cap_ev * 2 : 64;
    coh__serve_event *p = coh__realloc(s->ev, nc * sizeof *p);
    if (p == NULL) {
      coh__free(payload);
      payload = NULL;
    } else {
      s->ev = p;
      s->cap_ev = nc;
    }
  }
  if (payload == NULL) {
    say(s, "serve: out of memory: event %s of request %llu not journaled", kind,
        (unsigned long long)job->seq);
    return;
  }
  s->ev[s->n_ev].kind = kind;
  s->ev[s->n_ev].model = job->model;
  s->ev[s->n_ev].seq = job->seq;
  s->ev[s->n_ev].payload = payload;
  s->n_ev++;
}

static int track(coh__serve_job ***arr, size_t *n, size_t *cap, coh__serve_job *job) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 64;
    coh__serve_job **p = coh__realloc(*arr, nc * sizeof *p);
    if (p == NULL) return -1;
    *arr = p;
    *cap = nc;
  }
  (*arr)[(*n)++] = job;
  return 0;
}

/* One tick.  Returns 1 if an engine has work left. */
int coh__serve_tick(coh_serve *s) {
  coh__serve_job *in, *job;
  size_t i, k;
  int busy = 0;
  coh_err err = {0};

  pthread_mutex_lock(&s->lock);
  in = s->in_head;
  s->in_head = s->in_tail = NULL;
  s->tick++;
  pthread_mutex_unlock(&s->lock);

  /* 1. admission, in arrival order */
  while (in != NULL) {
    job = in;
    in = in->next;
    if (track(&s->active, &s->n_active, &s->cap_active, job)) {
      /* cannot track it: fail it at once */
      pthread_mutex_lock(&s->lock);
      for (k = 0; k < (size_t)job->n; k++) job->choices[k].finish = COH_FINISH_ERROR;
      job->oom = 1;
      job->done = 1;
      s->n_waiting--;
      s->n_open--;
      pthread_cond_broadcast(&job->cond);
      pthread_mutex_unlock(&s->lock);
      continue;
    }
    job->tick_admitted = s->tick;
    if (recording(s)) add_event(s, "serve_request", job, coh__serve_request_payload(s, job));
    admit(s, job);
    pthread_mutex_lock(&s->lock);
    s->m.admitted++;
    s->m.prompt_tokens += job->lr.n_ids * (size_t)job->n;
    pthread_mutex_unlock(&s->lock);
  }

  /* 2. cancellations: a client that went away frees its slots this tick */
  for (i = 0; i < s->n_active; i++) {
    job = s->active[i];
    if (!job->cancel_sent && atomic_load(&job->cancel)) {
      job->cancel_sent = 1;
      if (recording(s)) {
        char *p = coh__malloc(48);
        if (p) snprintf(p, 48, "{\"seq\":%llu}", (unsigned long long)job->seq);
        add_event(s, "serve_cancel", job, p);
      }
      for (k = 0; k < (size_t)job->n; k++)
        if (job->choices[k].submitted)
          (void)coh_engine_cancel(s->models[job->model].engine, job->choices[k].engine_id);
    }
  }

  /* 3. one engine step per busy model */
  for (i = 0; i < s->n_models; i++) {
    coh__serve_model *m = &s->models[i];
    double t0;
    coh_engine_stats st;
    if (coh_engine_busy(m->engine) == 0) continue;
    t0 = coh__wall_seconds();
    if (coh_engine_step(m->engine, &err) != COH_OK)
      say(s, "serve: model %s: step failed: %s", m->id, err.msg);
    coh_engine_get_stats(m->engine, &st);
    pthread_mutex_lock(&s->lock);
    s->m.gen_seconds += coh__wall_seconds() - t0;
    s->m.steps++;
    s->m.last_batch = st.last_decode_batch;
    if (st.last_decode_batch > s->m.max_batch) s->m.max_batch = st.last_decode_batch;
    pthread_mutex_unlock(&s->lock);
    if (coh_engine_busy(m->engine)) busy = 1;
  }
  wake_readers(s);

  /* 4. retire finished jobs (in admission order); recount waiting and
   * active slots */
  pthread_mutex_lock(&s->lock);
  for (i = k = 0; i < s->n_active; i++) {
    job = s->active[i];
    if (job_finished(s, job)) {
      int j, cancelled = 0, failed = 0;
      for (j = 0; j < job->n; j++) {
        if (job->choices[j].finish == COH_FINISH_CANCELLED) cancelled = 1;
        if (job->choices[j].finish == COH_FINISH_ERROR) failed = 1;
      }
      if (cancelled) s->m.cancelled++;
      else if (!failed) s->m.completed++;
      if (recording(s)) add_event(s, "serve_result", job, coh__serve_result_payload(s, job));
      s->n_open--;
      if (s->replaying) {
        if (track(&s->retired, &s->n_retired, &s->cap_retired, job)) {
          say(s, "serve: out of memory retiring request %llu", (unsigned long long)job->seq);
          coh__serve_job_free(job);
        }
        continue;
      }
      job->done = 1;
      pthread_cond_broadcast(&job->cond);
      continue; /* from here on the HTTP thread owns it */
    }
    s->active[k++] = job;
  }
  s->n_active = k;
  {
    size_t waiting = 0, slots = 0;
    double ort = 0, step = 0;
    coh__serve_job *q;
    for (i = 0; i < s->n_models; i++) {
      coh_engine_stats st;
      coh_engine_get_stats(s->models[i].engine, &st);
      waiting += (size_t)st.queued;
      slots += (size_t)st.active;
      ort += st.ort_seconds;
      step += st.step_seconds;
    }
    s->ort_seconds = ort;
    s->step_seconds = step;
    for (q = s->in_head; q != NULL; q = q->next) waiting++;
    s->n_waiting = waiting;
    s->n_active_slots = slots;
  }
  pthread_mutex_unlock(&s->lock);

  /* 5. the journal: this tick's events in one transaction */
  if (s->journal != NULL && s->n_ev > 0 && coh__serve_journal_tick(s, &err) != COH_OK) {
    say(s, "serve: journal: %s; stopping", err.msg);
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_mutex_unlock(&s->lock);
  }
  if (!s->replaying) {
    for (i = 0; i < s->n_ev; i++) coh__free(s->ev[i].payload);
    s->n_ev = 0;
  }
  return busy;
}

int coh_serve_run(coh_serve *s, coh_err *err) {
  int busy = 0;
  for (;;) {
    int stop = s->o.should_stop != NULL && s->o.should_stop(s->o.stop_ud);
    pthread_mutex_lock(&s->lock);
    if (stop && !s->stopping) {
      s->stopping = 1;
      say(s, "serve: stopping: draining %zu request(s) in flight", s->n_open);
    }
    if (s->stopping && s->n_open == 0 && s->in_head == NULL) {
      pthread_mutex_unlock(&s->lock);
      break;
    }
    if (!busy && s->in_head == NULL && s->n_active == 0) {
      /* idle: wait for a job, polling the stop flag every 100 ms */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 100 * 1000000L;
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&s->loop_cond, &s->lock, &ts);
      pthread_mutex_unlock(&s->lock);
      continue;
    }
    pthread_mutex_unlock(&s->lock);
    busy = coh__serve_tick(s);
  }
  (void)err;
  return COH_OK;
}

/* ---- metrics ------------------------------------------------------------------- */

void coh__serve_metrics_text(coh_serve *s, coh__buf *b) {
  coh__serve_metrics m;
  size_t waiting, slots, open;
  int i;
  double ort = 0, step = 0;
  pthread_mutex_lock(&s->lock);
  m = s->m;
  ort = s->ort_seconds;
  step = s->step_seconds;
  waiting = s->n_waiting;
  slots = s->n_active_slots;
  open = s->n_open;
  pthread_mutex_unlock(&s->lock);
  coh__buf_printf(b,
      "# HELP cohort_serve_http_responses_total HTTP responses by status class.\n"
      "# TYPE cohort_serve_http_responses_total counter\n"
      "cohort_serve_http_responses_total{class=\"2xx\"} %llu\n"
      "cohort_serve_http_responses_total{class=\"4xx\"} %llu\n"
      "cohort_serve_http_responses_total{class=\"429\"} %llu\n"
      "cohort_serve_http_responses_total{class=\"5xx\"} %llu\n",
      (unsigned long long)m.requests[0], (unsigned long long)m.requests[1],
      (unsigned long long)m.requests[2], (unsigned long long)m.requests[3]);
  coh__buf_printf(b,
      "# TYPE cohort_serve_requests_admitted_total counter\n"
      "cohort_serve_requests_admitted_total %llu\n"
      "# TYPE cohort_serve_requests_completed_total counter\n"
      "cohort_serve_requests_completed_total %llu\n"
      "# TYPE cohort_serve_requests_cancelled_total counter\n"
      "cohort_serve_requests_cancelled_total %llu\n"
      "# TYPE cohort_serve_requests_failed_total counter\n"
      "cohort_serve_requests_failed_total %llu\n"
      "# HELP cohort_serve_requests_open Requests accepted and not finished.\n"
      "# TYPE cohort_serve_requests_open gauge\n"
      "cohort_serve_requests_open %zu\n"
      "# HELP cohort_serve_queue_waiting Requests waiting for a batch slot.\n"
      "# TYPE cohort_serve_queue_waiting gauge\n"
      "cohort_serve_queue_waiting %zu\n"
      "# HELP cohort_serve_batch_active Engine slots in use (all models).\n"
      "# TYPE cohort_serve_batch_active gauge\n"
      "cohort_serve_batch_active %zu\n"
      "# TYPE cohort_serve_batch_last_decode gauge\n"
      "cohort_serve_batch_last_decode %d\n"
      "# HELP cohort_serve_batch_max_decode The largest decode batch so far.\n"
      "# TYPE cohort_serve_batch_max_decode gauge\n"
      "cohort_serve_batch_max_decode %d\n"
      "# TYPE cohort_serve_ticks_total counter\n"
      "cohort_serve_ticks_total %llu\n",
      (unsigned long long)m.admitted, (unsigned long long)m.completed,
      (unsigned long long)m.cancelled, (unsigned long long)m.errors, open, waiting,
      slots, m.last_batch, m.max_batch, (unsigned long long)m.steps);
  coh__buf_printf(b,
      "# TYPE cohort_serve_prompt_tokens_total counter\n"
      "cohort_serve_prompt_tokens_total %llu\n"
      "# TYPE cohort_serve_completion_tokens_total counter\n"
      "cohort_serve_completion_tokens_total %llu\n"
      "# HELP cohort_serve_tokens_per_second Completion tokens per second of engine time.\n"
      "# TYPE cohort_serve_tokens_per_second gauge\n"
      "cohort_serve_tokens_per_second %.3f\n"
      "# HELP cohort_serve_ttft_seconds Time from arrival to the first token.\n"
      "# TYPE cohort_serve_ttft_seconds histogram\n",
      (unsigned long long)m.prompt_tokens, (unsigned long long)m.completion_tokens,
      m.gen_seconds > 0 ? (double)m.completion_tokens / m.gen_seconds : 0.0);
  coh__buf_printf(b,
      "# HELP cohort_serve_engine_seconds_total Wall time of engine steps (all models).\n"
      "# TYPE cohort_serve_engine_seconds_total counter\n"
      "cohort_serve_engine_seconds_total %.6f\n"
      "# HELP cohort_serve_ort_seconds_total Wall time inside ONNX Runtime's Run.\n"
      "# TYPE cohort_serve_ort_seconds_total counter\n"
      "cohort_serve_ort_seconds_total %.6f\n", step, ort);
  for (i = 0; i < 10; i++)
    coh__buf_printf(b, "cohort_serve_ttft_seconds_bucket{le=\"%g\"} %llu\n", ttft_bounds[i],
                    (unsigned long long)m.ttft_bucket[i]);
  coh__buf_printf(b,
      "cohort_serve_ttft_seconds_bucket{le=\"+Inf\"} %llu\n"
      "cohort_serve_ttft_seconds_sum %.6f\n"
      "cohort_serve_ttft_seconds_count %llu\n",
      (unsigned long long)m.ttft_count, m.ttft_sum, (unsigned long long)m.ttft_count);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static const char *base_name(const char *dir, size_t *len) {
  size_t n = strlen(dir);
  const char *p;
  while (n > 1 && dir[n - 1] == '/') n--;
  p = dir + n;
  while (p > dir && p[-1] != '/') p--;
  *len = (size_t)(dir + n - p);
  return p;
}

static int is_loopback(const char *addr) { return strncmp(addr, "127.", 4) == 0; }

int coh_serve_new(const coh_serve_options *o, coh_serve **out, coh_err *err) {
  coh_serve *s;
  int rc;
  *out = NULL;
  if ((rc = coh__serve_core_new(o, &s, err))) return rc;
  if (o->journal != NULL && (rc = coh__serve_journal_create(s, o->journal, err))) goto fail;
  if ((rc = coh__serve_http_start(s, err))) goto fail;
  *out = s;
  return COH_OK;
fail:
  coh_serve_free(s);
  return rc;
}

int coh__serve_core_new(const coh_serve_options *o, coh_serve **out, coh_err *err) {
  coh_serve *s;
  size_t i, j;
  int rc, port;
  char addr[16];

  *out = NULL;
  if (o == NULL || o->n_models == 0 || o->model_dirs == NULL)
    return coh__err(err, COH_EINVAL, "serve: at least one --model is needed");
  if (o->n_models > COH_SERVE_MAX_MODELS)
    return coh__err(err, COH_EINVAL, "serve: at most %d --model folders", COH_SERVE_MAX_MODELS);
  if (o->max_batch < 1 || o->max_batch > 1024)
    return coh__err(err, COH_EINVAL, "serve: --max-batch %d: must lie in [1, 1024]", o->max_batch);
  if (o->max_queue < 1 || o->max_queue > 65536)
    return coh__err(err, COH_EINVAL, "serve: --max-queue %d: must lie in [1, 65536]", o->max_queue);
  if (o->max_body < 1024)
    return coh__err(err, COH_EINVAL, "serve: --max-body: at least 1024 bytes");
  if ((rc = coh__serve_parse_listen(o->listen ? o->listen : "127.0.0.1:8080", addr, &port, err)))
    return rc;
  if (!is_loopback(addr) && (o->api_key == NULL || o->api_key[0] == '\0'))
    return coh__err(err, COH_EINVAL,
                    "serve: --listen %s is not a loopback address: give --api-key too", o->listen);
  if ((s = coh__calloc(1, sizeof *s)) == NULL)
    return coh__err(err, COH_ENOMEM, "serve: out of memory");
  s->o = *o;
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->loop_cond, NULL);
  pthread_cond_init(&s->idle_cond, NULL);
  s->listen = coh__strdup(o->listen ? o->listen : "127.0.0.1:8080");
  s->api_key = o->api_key ? coh__strdup(o->api_key) : NULL;
  if (s->listen == NULL || (o->api_key && s->api_key == NULL)) {
    rc = coh__err(err, COH_ENOMEM, "serve: out of memory");
    goto fail;
  }
  s->o.listen = s->listen;
  s->o.api_key = s->api_key;
  s->o.model_dirs = NULL;
  for (i = 0; i < o->n_models; i++) {
    coh__serve_model *m = &s->models[i];
    coh_model_options mo;
    const coh_model_info *info;
    char hex[65];
    size_t blen;
    const char *b = base_name(o->model_dirs[i], &blen);
    if ((m->id = coh__malloc(blen + 1)) == NULL) {
      rc = coh__err(err, COH_ENOMEM, "serve: out of memory");
      goto fail;
    }
    memcpy(m->id, b, blen);
    m->id[blen] = '\0';
    s->n_models = i + 1;
    for (j = 0; j < i; j++)
      if (!strcmp(s->models[j].id, m->id)) {
        rc = coh__err(err, COH_EINVAL,
                      "serve: --model %s: model id '%s' is already taken by --model %s "
                      "(ids are the folders' base names)",
                      o->model_dirs[i], m->id, o->model_dirs[j]);
        goto fail;
      }
    coh_model_options_default(&mo);
    mo.device = o->device;
    mo.intra_op_threads = o->threads;
    mo.log = o->log;
    mo.log_user = o->log_user;
    if ((rc = coh_model_open(o->model_dirs[i], &mo, &m->model, err))) {
      coh__err_prefix(err, "serve: --model %s: ", o->model_dirs[i]);
      goto fail;
    }
    info = coh_model_get_info(m->model);
    if ((m->tok = coh_model_tokenizer(m->model)) == NULL) {
      rc = coh__err(err, COH_EINVAL, "serve: --model %s: no tokenizer.json (the API speaks text)",
                    o->model_dirs[i]);
      goto fail;
    }
    m->chat = coh_model_chat_template(m->model);
    m->context = info->context;
    if ((m->dir = coh__strdup(o->model_dirs[i])) == NULL) {
      rc = coh__err(err, COH_ENOMEM, "serve: out of memory");
      goto fail;
    }
    m->vocab = info->vocab;
    if ((rc = coh__sha256_file(info->onnx_path, hex, err))) goto fail;
    snprintf(m->fingerprint, sizeof m->fingerprint, "fp_%.12s_cohort-%s", hex, coh_version());
    memcpy(m->onnx_sha256, hex, sizeof hex);
    if ((rc = coh_engine_new(m->model, o->max_batch, &m->engine, err))) {
      coh__err_prefix(err, "serve: --model %s: ", o->model_dirs[i]);
      goto fail;
    }
  }
  memcpy(s->addr, addr, sizeof addr);
  s->port = port;
  *out = s;
  return COH_OK;
fail:
  coh_serve_free(s);
  return rc;
}

int coh_serve_port(const coh_serve *s) { return s->port; }
const char *coh_serve_host(const coh_serve *s) { return s->addr; }

void coh_serve_free(coh_serve *s) {
  size_t i;
  if (s == NULL) return;
  if (s->ctx != NULL) coh__serve_http_stop(s);
  /* jobs still queued or active belong to HTTP threads that have ended:
   * none are left once civetweb has stopped, since every handler waits for
   * its job to be done */
  for (i = 0; i < s->n_models; i++) {
    coh_engine_free(s->models[i].engine);
    coh_model_close(s->models[i].model);
    coh__free(s->models[i].id);
    coh__free(s->models[i].dir);
  }
  if (s->journal != NULL) coh_journal_close(s->journal);
  for (i = 0; i < s->n_ev; i++) coh__free(s->ev[i].payload);
  coh__free(s->ev);
  for (i = 0; i < s->n_retired; i++) coh__serve_job_free(s->retired[i]);
  coh__free(s->retired);
  /* jobs left active (replay stopped at a divergence) */
  for (i = 0; i < s->n_active && s->replaying; i++) coh__serve_job_free(s->active[i]);
  coh__free(s->active);
  coh__free(s->listen);
  coh__free(s->api_key);
  pthread_cond_destroy(&s->loop_cond);
  pthread_cond_destroy(&s->idle_cond);
  pthread_mutex_destroy(&s->lock);
  coh__free(s);
}
