/*
 * bench_grammar.c — what constrained decoding costs the engine: decode at
 * batch B with every request under a grammar against the same requests
 * without one, side by side in one process.
 *
 *   bench_grammar MODEL_DIR (--json-schema FILE | --grammar FILE | --json-object)
 *                 [--batch 16] [--decode 64] [--max-tokens D] [--rounds 5] [--threads N]
 *
 * One round = one run without a constraint, then one with it (fresh engine,
 * max_batch B, B greedy requests with fixed pseudo-random prompts of 16
 * tokens, max_tokens M, default D, timing at most D full-batch steps: an M
 * above D measures a schema whose output fits its budget, an M equal to D one
 * whose token budget binds, docs/grammar.md); rounds alternate ABBA (odd rounds run the
 * constrained engine first) so that drift on a shared machine hits both
 * alike.  Only decode steps at the full batch B are timed, and only those
 * that both runs of a round have (a constrained request may finish early;
 * the later steps have a smaller batch; a later step also costs more than
 * an earlier one).  Per run: the median wall time of those steps.  Reported: the median over rounds of each, the overhead
 * (constrained / unconstrained - 1) from the medians, the best of each, and
 * the engine's mask counters: masks computed, the time computing them (on
 * the helper thread, overlapping OrtRun) and the time the engine waited for
 * masks after OrtRun (the part not hidden).
 * Output: a table, then one JSON line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "cohort/grammar.h"
#include "cohort/infer.h"

#define MAX_STEPS 4096
#define MAX_ROUNDS 64

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads a whole file (at most 16 MiB) into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  if (f == NULL) return NULL;
  buf = malloc((size_t)16 << 20);
  if (buf != NULL) {
    *len = fread(buf, 1, ((size_t)16 << 20) - 1, f);
    if (!feof(f)) {
      free(buf);
      buf = NULL;
    }
  }
  fclose(f);
  return buf;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  if (n <= 0) return 0.0;
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct run_result {
  double steps[MAX_STEPS]; /* wall seconds of the full-batch decode steps, in order */
  int full_steps;
  uint64_t masks, tokens;
  double mask_s, wait_s;
} run_result;

static int run_once(coh_model *m, const coh_grammar *g, int batch, int decode, int max_tokens,
                    run_result *out, coh_err *err) {
  const coh_model_info *info = coh_model_get_info(m);
  coh_engine *e = NULL;
  int32_t prompt[16];
  int r, i, n = 0, guard = 0, rc;
  coh_engine_stats st;
  memset(out, 0, sizeof *out);
  if ((rc = coh_engine_new(m, batch, &e, err))) return rc;
  for (r = 0; r < batch; r++) {
    coh_request q;
    uint64_t id;
    coh_request_default(&q);
    prompt[0] = info->bos_id >= 0 ? info->bos_id : 1;
    for (i = 1; i < 16; i++)
      prompt[i] = (int32_t)(100 + (uint64_t)(r * 7919 + i * 104729) % (uint64_t)(info->vocab - 200));
    q.prompt = prompt;
    q.n_prompt = 16;
    q.max_tokens = max_tokens;
    q.grammar = g;
    if ((rc = coh_engine_submit(e, &q, &id, err))) goto done;
  }
  while (coh_engine_busy(e) && guard++ < 100000 && n < decode) {
    uint64_t before, pbefore;
    double t0;
    coh_engine_get_stats(e, &st);
    before = st.decode_tokens;
    pbefore = st.prefill_tokens;
    t0 = wall_seconds();
    if ((rc = coh_engine_step(e, err))) goto done;
    t0 = wall_seconds() - t0;
    coh_engine_get_stats(e, &st);
    if (st.decode_tokens - before == (uint64_t)batch && st.prefill_tokens == pbefore &&
        n < MAX_STEPS)
      out->steps[n++] = t0;
  }
  coh_engine_get_stats(e, &st);
  out->full_steps = n;
  out->masks = st.masks;
  out->tokens = st.decode_tokens;
  out->mask_s = st.mask_seconds;
  out->wait_s = st.mask_wait_seconds;
  rc = COH_OK;
done:
  coh_engine_free(e);
  return rc;
}

int main(int argc, char **argv) {
  const char *dir = NULL, *schema = NULL, *gpath = NULL;
  int json_object = 0, batch = 16, decode = 64, max_tokens = 0, rounds = 5, threads = 0, i, k;
  coh_model_options mo;
  coh_model *m = NULL;
  coh_grammar *g = NULL;
  coh_err err;
  double plain[MAX_ROUNDS], cons[MAX_ROUNDS], pbest = 1e30, cbest = 1e30;
  static run_result last;
  char *text = NULL;
  size_t len = 0;

  for (i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--json-schema") && v) schema = argv[++i];
    else if (!strcmp(argv[i], "--grammar") && v) gpath = argv[++i];
    else if (!strcmp(argv[i], "--json-object")) json_object = 1;
    else if (!strcmp(argv[i], "--batch") && v) batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--decode") && v) decode = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--max-tokens") && v) max_tokens = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && v) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && v) threads = atoi(argv[++i]);
    else if (argv[i][0] != '-' && dir == NULL) dir = argv[i];
    else {
      fprintf(stderr, "bench_grammar: bad argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (dir == NULL || (schema != NULL) + (gpath != NULL) + json_object != 1 || batch < 1 ||
      batch > 1024 || decode < 2 || decode > MAX_STEPS || rounds < 1 || rounds > MAX_ROUNDS ||
      max_tokens < 0 || (max_tokens > 0 && max_tokens < decode)) {
    fprintf(stderr, "usage: bench_grammar MODEL_DIR (--json-schema F | --grammar F | --json-object) "
                    "[--batch 16] [--decode 64] [--max-tokens M >= decode] [--rounds 5 (<= 64)] "
                    "[--threads N]\n");
    return 2;
  }
  if (max_tokens == 0) max_tokens = decode;
  if (schema || gpath) {
    const char *p = schema ? schema : gpath;
    if ((text = read_file(p, &len)) == NULL) {
      fprintf(stderr, "bench_grammar: cannot read %s (or over 16 MiB)\n", p);
      return 1;
    }
    if (schema ? coh_grammar_from_json_schema(text, len, p, &g, &err)
               : coh_grammar_from_ebnf(text, len, p, &g, &err)) {
      fprintf(stderr, "bench_grammar: %s\n", err.msg);
      free(text);
      return 1;
    }
    free(text);
  } else if (coh_grammar_any_json_object(&g, &err)) {
    fprintf(stderr, "bench_grammar: %s\n", err.msg);
    return 1;
  }
  coh_model_options_default(&mo);
  mo.device = COH_DEVICE_CPU;
  mo.intra_op_threads = threads;
  if (coh_model_open(dir, &mo, &m, &err)) {
    fprintf(stderr, "bench_grammar: %s\n", err.msg);
    coh_grammar_free(g);
    return 1;
  }
  printf("round  plain ms/step  constrained ms/step  steps compared\n");
  for (k = 0; k < rounds; k++) {
    static run_result a, b;
    static double ta[MAX_STEPS], tb[MAX_STEPS];
    int common, j;
    /* ABBA: odd rounds run the constrained engine first */
    if (k % 2 == 0 ? run_once(m, NULL, batch, decode, max_tokens, &a, &err) ||
                         run_once(m, g, batch, decode, max_tokens, &b, &err)
                   : run_once(m, g, batch, decode, max_tokens, &b, &err) ||
                         run_once(m, NULL, batch, decode, max_tokens, &a, &err)) {
      fprintf(stderr, "bench_grammar: %s\n", err.msg);
      coh_model_close(m);
      coh_grammar_free(g);
      return 1;
    }
    if (a.full_steps == 0 || b.full_steps == 0) {
      fprintf(stderr, "bench_grammar: no decode step at the full batch (constrained requests "
                      "finished at once?); use a grammar with longer outputs\n");
      coh_model_close(m);
      coh_grammar_free(g);
      return 1;
    }
    /* Full-batch steps are a prefix of the decode (requests only leave);
     * compare the same steps of both runs (a later step attends to more
     * columns and costs more). */
    common = a.full_steps < b.full_steps ? a.full_steps : b.full_steps;
    for (j = 0; j < common; j++) {
      ta[j] = a.steps[j];
      tb[j] = b.steps[j];
    }
    plain[k] = median(ta, common);
    cons[k] = median(tb, common);
    if (plain[k] < pbest) pbest = plain[k];
    if (cons[k] < cbest) cbest = cons[k];
    last = b;
    printf("%5d  %13.3f  %19.3f  %d%s\n", k, plain[k] * 1e3, cons[k] * 1e3, common,
           k % 2 ? " (constrained ran first)" : "");
  }
  {
    double pm = median(plain, rounds), cm = median(cons, rounds);
    double per_mask = last.masks ? last.mask_s / (double)last.masks : 0.0;
    printf("median over rounds: plain %.3f ms/step, constrained %.3f ms/step: overhead %+.1f %%\n",
           pm * 1e3, cm * 1e3, (cm / pm - 1.0) * 100.0);
    printf("best: plain %.3f, constrained %.3f ms/step: overhead %+.1f %%\n", pbest * 1e3,
           cbest * 1e3, (cbest / pbest - 1.0) * 100.0);
    printf("last constrained run: %llu masks, %.1f us each (helper thread), %.3f ms waited for "
           "masks after OrtRun in total\n",
           (unsigned long long)last.masks, per_mask * 1e6, last.wait_s * 1e3);
    printf("{\"batch\":%d,\"decode\":%d,\"max_tokens\":%d,\"rounds\":%d,\"plain_ms\":%.4f,\"constrained_ms\":%.4f,"
           "\"overhead_pct\":%.2f,\"best_overhead_pct\":%.2f,\"mask_us\":%.2f,\"mask_wait_ms\":%.4f}\n",
           batch, decode, max_tokens, rounds, pm * 1e3, cm * 1e3, (cm / pm - 1.0) * 100.0,
           (cbest / pbest - 1.0) * 100.0, per_mask * 1e6, last.wait_s * 1e3);
  }
  coh_model_close(m);
  coh_grammar_free(g);
  return 0;
}
