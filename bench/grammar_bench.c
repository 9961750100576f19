/*
 * grammar_bench.c — constrained decoding cost: compile time per schema and
 * mask time per token, over the MaskBench schemas (tests/data/maskbench),
 * walking each valid instance's tokens through the masks as MaskBench does.
 *
 *   grammar_bench TOKENIZER.json [CASES.jsonl] [--stride N] [--slow US] [--cpu]
 *
 * --slow US lists every schema whose slowest mask call took >= US µs.
 * Mask times are reported twice: wall time, and the thread's CPU time (on
 * a shared machine, time the thread spent preempted is not counted in the
 * latter).  Compile times are wall time, or CPU time with --cpu, which
 * also makes --slow use CPU time.
 *
 * Prints p50/p99/max of compile (per schema) and mask (per token), and the
 * share of mask calls served by the state's cache.  Single thread.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/grammar.h"
#include "cohort/tokenizer.h"

static clockid_t clk = CLOCK_MONOTONIC;

static double wall_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static double cpu_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(clk, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

typedef struct vec {
  double *v;
  size_t n, cap;
} vec;

static void push(vec *a, double x) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 1024;
    a->v = realloc(a->v, a->cap * sizeof *a->v);
    if (!a->v) exit(3);
  }
  a->v[a->n++] = x;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(vec *a, double p) {
  size_t i;
  if (!a->n) return 0;
  i = (size_t)(p * (double)(a->n - 1) + 0.5);
  return a->v[i];
}

int main(int argc, char **argv) {
  const char *tpath = NULL, *cases = "tests/data/maskbench/cases.jsonl";
  int stride = 1, i, idx = 0, n_schemas = 0, n_compiled = 0;
  coh_tokenizer *tok = NULL;
  coh_grammar_vocab *v = NULL;
  coh_err err;
  int32_t eos;
  FILE *f;
  char *line = NULL;
  size_t cap = 0;
  vec comp = {0}, mask = {0}, maskc = {0};
  int n_slow = 0;
  double worst_all = 0;
  long n_over = 0;
  uint32_t *m;
  double t0;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--stride") && i + 1 < argc) stride = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--slow") && i + 1 < argc) n_slow = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--cpu")) clk = CLOCK_THREAD_CPUTIME_ID;
    else if (!tpath) tpath = argv[i];
    else cases = argv[i];
  }
  if (!tpath || stride < 1) {
    fprintf(stderr, "usage: grammar_bench TOKENIZER.json [CASES.jsonl] [--stride N] [--slow US] [--cpu]\n");
    return 2;
  }
  if (coh_tokenizer_load(tpath, &tok, &err)) {
    fprintf(stderr, "grammar_bench: %s\n", err.msg);
    return 1;
  }
  { /* the first of these that is a special token ("</s>" is ordinary
       text in Qwen's vocabulary) */
    static const char *names[] = {"</s>", "<|endoftext|>", "<|im_end|>",
                                  "<|end_of_text|>", "<|eot_id|>", NULL};
    eos = -1;
    for (i = 0; names[i] && eos < 0; i++) {
      eos = coh_tokenizer_token_id(tok, names[i]);
      if (eos >= 0 && !coh_tokenizer_is_special(tok, eos)) eos = -1;
    }
  }
  t0 = now_us();
  if (coh_grammar_vocab_new(tok, &eos, eos >= 0, &v, &err)) {
    fprintf(stderr, "grammar_bench: %s\n", err.msg);
    return 1;
  }
  printf("vocab %zu tokens, trie built in %.1f ms\n", coh_grammar_vocab_size(v),
         (now_us() - t0) / 1e3);
  m = calloc((coh_grammar_vocab_size(v) + 31) / 32, 4);
  f = fopen(cases, "r");
  if (!f || !m) {
    fprintf(stderr, "grammar_bench: cannot open %s\n", cases);
    return 1;
  }
  while (getline(&line, &cap, f) > 0) {
    json_t *j, *tests;
    char *schema;
    coh_grammar *g = NULL;
    size_t k;
    if (idx++ % stride) continue;
    j = json_loads(line, 0, NULL);
    if (!j) continue;
    n_schemas++;
    schema = json_dumps(json_object_get(j, "schema"), JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    t0 = now_us();
    if (coh_grammar_from_json_schema(schema, strlen(schema), "s", &g, &err)) {
      free(schema);
      json_decref(j);
      continue;
    }
    push(&comp, now_us() - t0);
    n_compiled++;
    tests = json_object_get(j, "tests");
    worst_all = 0;
    n_over = 0;
    for (k = 0; k < json_array_size(tests); k++) {
      json_t *tc = json_array_get(tests, k);
      const char *text = json_string_value(json_object_get(tc, "text"));
      int32_t *ids = NULL;
      size_t n = 0, q;
      coh_grammar_state *s = NULL;
      if (!json_is_true(json_object_get(tc, "valid"))) continue;
      if (coh_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, &err)) continue;
      if (coh_grammar_state_new(g, v, &s, &err) == 0) {
        for (q = 0; q < n; q++) {
          double c0 = cpu_us(), w0 = wall_us(), cw, cc;
          coh_grammar_state_mask(s, m, &err);
          cw = wall_us() - w0;
          cc = cpu_us() - c0;
          push(&mask, cw);
          push(&maskc, cc);
          t0 = clk == CLOCK_MONOTONIC ? cw : cc;
          if (t0 > worst_all) worst_all = t0;
          if (n_slow && t0 >= (double)n_slow) n_over++;
          if (!((m[ids[q] >> 5] >> (ids[q] & 31)) & 1)) break;
          if (coh_grammar_state_accept(s, ids[q], &err)) break;
        }
        coh_grammar_state_free(s);
      }
      coh_free(ids);
    }
    if (n_slow && worst_all >= (double)n_slow)
      printf("slow %s: worst mask %.0f us, %ld calls over\n",
             json_string_value(json_object_get(j, "id")), worst_all, n_over);
    coh_grammar_free(g);
    free(schema);
    json_decref(j);
  }
  fclose(f);
  qsort(comp.v, comp.n, sizeof *comp.v, cmpd);
  qsort(mask.v, mask.n, sizeof *mask.v, cmpd);
  qsort(maskc.v, maskc.n, sizeof *maskc.v, cmpd);
  printf("schemas %d (compiled %d), mask calls %zu\n", n_schemas, n_compiled, mask.n);
  printf("compile us: p50 %.1f  p99 %.1f  max %.1f\n", pct(&comp, 0.5), pct(&comp, 0.99),
         comp.n ? comp.v[comp.n - 1] : 0);
  printf("mask    us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (wall)\n", pct(&mask, 0.5),
         pct(&mask, 0.9), pct(&mask, 0.99), mask.n ? mask.v[mask.n - 1] : 0);
  printf("mask    us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (thread CPU)\n",
         pct(&maskc, 0.5), pct(&maskc, 0.9), pct(&maskc, 0.99),
         maskc.n ? maskc.v[maskc.n - 1] : 0);
  free(comp.v);
  free(mask.v);
  free(maskc.v);
  free(m);
  free(line);
  coh_grammar_vocab_free(v);
  coh_tokenizer_free(tok);
  return 0;
}
