/*
 * orch_llm_bench.c — the cost of cohort's tick-boundary admission, measured
 * against the engine API directly (no orchestrator, no agents, no journal).
 *
 * A closed loop of C clients, each issuing `rounds` requests one after the
 * other (request r of client k: prompt "k <text>", exactly
 * min + (7k + 13r) mod (max - min + 1) tokens, ignore_eos — the same work
 * bench/agents/llmloop.c asks for inside cohort), on one engine, in one of
 * two admission disciplines:
 *
 *   free  a client resubmits the moment its previous request finishes (in
 *         the token callback of engine step s), so the new request is
 *         admitted at step s+1: the engine never waits for anybody.
 *   tick  cohort's discipline: a request finished at engine step s is
 *         delivered at tick s+1, where the agent steps and commits its next
 *         request; that request is admitted at the boundary of tick s+2.
 *         So each request boundary leaves the client's batch slot empty for
 *         one step.  A tick whose engine has nothing to do runs no step (as
 *         in cohort's dispatch).
 *
 * Prints one JSON line per run: tokens, seconds (first submit to last
 * token; model load excluded), tokens/s, process CPU seconds (ONNX Runtime's
 * threads included) and tokens per CPU second, logical steps (ticks),
 * engine steps, mean decode batch.  --reps N runs N rounds of (free, tick).
 *
 * usage: orch_llm_bench MODEL_DIR [--mode free|tick|both] [--reps N]
 *          [--clients N] [--rounds R] [--min-tokens A] [--max-tokens B]
 *          [--max-batch M] [--threads T] [--device cpu|cuda|auto]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cohort/infer.h"

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct client {
  int index, sent, rounds;
  int64_t finished_step;  /* engine step that finished its last request; -1 */
  int64_t submit_at;      /* tick mode: submit after this logical step; -1 */
  int busy;
} client;

typedef struct bench {
  coh_model *m;
  coh_engine *e;
  client *c;
  int n, min_tok, max_tok;
  int64_t step;           /* logical step (= tick) now running */
  int64_t tokens;
  int tick_mode;
  int rc;
  coh_err err;
} bench;

typedef struct req_ctx {
  bench *b;
  client *c;
} req_ctx;

/* CPU seconds of the whole process (ONNX Runtime's threads included). */
static double cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static const char *const prompts[4] = {
    "Once upon a time, in a quiet village by the sea,",
    "The committee met at dawn to decide",
    "Here is a short story about a robot who",
    "In the year 2050 the city of"};

static void on_token(void *user, const coh_token_event *ev) {
  req_ctx *x = user;
  bench *b = x->b;
  client *c = x->c;
  if (ev->token >= 0) b->tokens++;
  if (ev->finish == COH_FINISH_NONE) return;
  free(x);
  c->busy = 0;
  c->finished_step = b->step;
  if (ev->finish == COH_FINISH_ERROR) {
    b->rc = COH_EINVAL;
    return;
  }
  if (c->sent >= c->rounds) return;
  /* free: resubmitted as soon as this step returns (submitting from inside
   * the step's callback is not part of the engine's contract), so admitted
   * at the next step; tick: delivered at the next tick, committed there,
   * admitted one boundary later */
  c->submit_at = b->tick_mode ? b->step + 1 : b->step;
}

static int submit(bench *b, client *c) {
  char json[512];
  coh_llm_request lr;
  uint64_t id;
  req_ctx *x;
  int ntok = b->min_tok + (7 * c->index + 13 * c->sent) % (b->max_tok - b->min_tok + 1);
  int rc;
  snprintf(json, sizeof json,
           "{\"prompt\":\"%d %s\",\"max_tokens\":%d,\"ignore_eos\":true,"
           "\"temperature\":0.8,\"top_k\":40}",
           c->index, prompts[c->index % 4], ntok);
  rc = coh_llm_request_parse(json, strlen(json), b->m,
                             (uint64_t)c->index * 1000003u + (uint64_t)c->sent, &lr, &b->err);
  if (rc == COH_OK) {
    x = malloc(sizeof *x);
    if (x == NULL) rc = COH_ENOMEM;
    else {
      x->b = b;
      x->c = c;
      lr.req.on_token = on_token;
      lr.req.user = x;
      rc = coh_engine_submit(b->e, &lr.req, &id, &b->err);
      if (rc) free(x);
    }
  }
  coh_llm_request_free(&lr);
  if (rc == COH_OK) {
    c->sent++;
    c->busy = 1;
    c->submit_at = -1;
  }
  return rc;
}

static int run(coh_model *m, const char *mode, int rep, int n, int rounds, int min_tok,
               int max_tok, int max_batch) {
  bench b;
  coh_engine_stats st;
  double t0, c0, secs, cpus;
  int k, rc;
  memset(&b, 0, sizeof b);
  b.m = m;
  b.n = n;
  b.min_tok = min_tok;
  b.max_tok = max_tok;
  b.tick_mode = !strcmp(mode, "tick");
  b.c = calloc((size_t)n, sizeof *b.c);
  if (b.c == NULL) return COH_ENOMEM;
  if ((rc = coh_engine_new(m, max_batch, &b.e, &b.err))) goto fail;
  for (k = 0; k < n; k++) {
    b.c[k].index = k;
    b.c[k].rounds = rounds;
    b.c[k].finished_step = -1;
    b.c[k].submit_at = -1;
  }
  t0 = wall();
  c0 = cpu();
  for (k = 0; k < n; k++)
    if ((rc = submit(&b, &b.c[k]))) goto fail;
  for (b.step = 1;; b.step++) {
    int waiting = 0;
    if (coh_engine_busy(b.e) && (rc = coh_engine_step(b.e, &b.err))) goto fail;
    if (b.rc) {
      rc = b.rc;
      goto fail;
    }
    /* clients whose next request is committed at this step's end */
    for (k = 0; k < n; k++) {
      client *c = &b.c[k];
      if (c->submit_at == b.step && (rc = submit(&b, c))) goto fail;
      waiting += c->submit_at >= 0;
    }
    if (!coh_engine_busy(b.e) && waiting == 0) break;
  }
  secs = wall() - t0;
  cpus = cpu() - c0;
  coh_engine_get_stats(b.e, &st);
  printf("{\"impl\":\"engine-api\",\"mode\":\"%s\",\"rep\":%d,\"clients\":%d,\"rounds\":%d,"
         "\"max_batch\":%d,\"tokens\":%lld,\"seconds\":%.4f,\"tokens_per_s\":%.2f,"
         "\"cpu_seconds\":%.4f,\"tokens_per_cpu_s\":%.2f,\"logical_steps\":%lld,"
         "\"engine_steps\":%llu,\"decode_tokens\":%llu,\"ort_runs\":%llu,"
         "\"batch_rebuilds\":%llu,\"mean_decode_batch\":%.2f,\"ort_seconds\":%.4f}\n",
         mode, rep, n, rounds, max_batch, (long long)b.tokens, secs, (double)b.tokens / secs, cpus,
         cpus > 0 ? (double)b.tokens / cpus : 0.0, (long long)b.step,
         (unsigned long long)st.steps, (unsigned long long)st.decode_tokens,
         (unsigned long long)st.ort_runs, (unsigned long long)st.batch_rebuilds,
         st.steps ? (double)st.decode_tokens / (double)st.steps : 0.0, st.ort_seconds);
  fflush(stdout);
  rc = COH_OK;
fail:
  if (rc) fprintf(stderr, "orch_llm_bench: %s: %s\n", mode, b.err.msg[0] ? b.err.msg : "failed");
  coh_engine_free(b.e);
  free(b.c);
  return rc;
}

static int arg_int(const char *s, int lo, int hi, const char *name) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "orch_llm_bench: %s must be an integer in [%d, %d]\n", name, lo, hi);
    exit(2);
  }
  return (int)v;
}

int main(int argc, char **argv) {
  const char *dir = NULL, *mode = "both";
  int n = 64, rounds = 4, min_tok = 8, max_tok = 24, max_batch = 64, reps = 3, i, rc = 0;
  coh_model_options mo;
  coh_model *m;
  coh_err err;
  coh_model_options_default(&mo);
  mo.device = COH_DEVICE_CPU;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (a[0] != '-') {
      dir = a;
      continue;
    }
    if (v == NULL) {
      fprintf(stderr, "orch_llm_bench: %s needs a value\n", a);
      return 2;
    }
    i++;
    if (!strcmp(a, "--mode")) mode = v;
    else if (!strcmp(a, "--clients")) n = arg_int(v, 1, 4096, a);
    else if (!strcmp(a, "--rounds")) rounds = arg_int(v, 1, 100000, a);
    else if (!strcmp(a, "--reps")) reps = arg_int(v, 1, 1000, a);
    else if (!strcmp(a, "--min-tokens")) min_tok = arg_int(v, 1, 4096, a);
    else if (!strcmp(a, "--max-tokens")) max_tok = arg_int(v, 1, 4096, a);
    else if (!strcmp(a, "--max-batch")) max_batch = arg_int(v, 1, 1024, a);
    else if (!strcmp(a, "--threads")) mo.intra_op_threads = arg_int(v, 0, 1024, a);
    else if (!strcmp(a, "--device")) {
      if (coh_device_parse(v, &mo.device)) {
        fprintf(stderr, "orch_llm_bench: --device must be auto, cpu or cuda\n");
        return 2;
      }
    } else {
      fprintf(stderr, "orch_llm_bench: unknown option %s\n", a);
      return 2;
    }
  }
  if (dir == NULL || (strcmp(mode, "free") && strcmp(mode, "tick") && strcmp(mode, "both")) ||
      max_tok < min_tok) {
    fprintf(stderr, "usage: orch_llm_bench MODEL_DIR [--mode free|tick|both] [--reps N] [--clients N] "
                    "[--rounds R] [--min-tokens A] [--max-tokens B] [--max-batch M] "
                    "[--threads T] [--device cpu|cuda|auto]\n");
    return 2;
  }
  if (coh_model_open(dir, &mo, &m, &err)) {
    fprintf(stderr, "orch_llm_bench: %s\n", err.msg);
    return 1;
  }
  if (coh_model_tokenizer(m) == NULL) {
    fprintf(stderr, "orch_llm_bench: %s has no tokenizer.json\n", dir);
    coh_model_close(m);
    return 1;
  }
  /* both: free, tick, free, tick, ... — adjacent pairs, so that load on a
   * shared machine hits both alike; every run prints its line */
  {
    int rep;
    for (rep = 1; rep <= reps && rc == 0; rep++) {
      if (strcmp(mode, "tick")) rc = run(m, "free", rep, n, rounds, min_tok, max_tok, max_batch);
      if (rc == 0 && strcmp(mode, "free"))
        rc = run(m, "tick", rep, n, rounds, min_tok, max_tok, max_batch);
    }
  }
  coh_model_close(m);
  return rc ? 1 : 0;
}
