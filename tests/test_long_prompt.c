/*
 * test_long_prompt.c — prompts of 1 to context-1 tokens (1, 255, 511, 512,
 * 513, 1000, 1500, 2047) on every fixture and on the third-party ONNX
 * Runtime GenAI export, alone and all in one batch, against references that
 * share none of cohort's chunking, KV-cache or position code.
 *
 * The references (tests/data/long_prompt/, written by tools/longref.py) hold,
 * for each prompt, the next greedy ids and at every step the logits of 16 ids
 * computed by ONNX Runtime (onnxruntime-node) running the whole sequence with
 * no cache at every step, and for the fixtures also by the float64 numpy
 * forward pass of tools/mkfixture.py.  Greedy ids must match exactly, logits
 * within the tolerances below (docs/inference.md, "Long prompts").
 *
 * The fixtures with context 256 share the weights of the llama-long-* ones:
 * their prompts of 1 and 255 tokens are checked against the same references,
 * and every longer prompt must be refused with both numbers in the message.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "cohort/infer.h"
#include "test.h"
#include "util/util_int.h"

#define DATA COH_TEST_DATA "/long_prompt"
#define THIRD_PARTY COH_TEST_DATA "/models/ortgenai-tiny-llama-fp16"
#define MAX_CASES 16
#define MAX_STEPS 8
#define N_IDS 16

/* Logit tolerances, absolute (the logits here lie within about ±15).
 * fp32: cohort against full-recompute ONNX Runtime and against float64
 * numpy: measured max 8e-6 (reassociation only).
 * fp16: against ONNX Runtime on the same machine: measured 5e-6 (the same
 * kernels); another CPU's kernels may round differently, by up to a few
 * half-precision steps (0.008 at |logit| 10).  Against numpy: measured
 * 0.007, the fp16 rounding of weights, activations and the KV cache.
 * A position off by one or a wrong mask moves logits by whole units. */
#define TOL_FP32 1e-3
#define TOL_FP16_ORT 0.03
#define TOL_FP16_NUMPY 0.05

#include "test_fixture.h"

/* ---- references ------------------------------------------------------------ */

typedef struct ref_case {
  int len, steps;
  int32_t greedy[MAX_STEPS], numpy_greedy[MAX_STEPS];
  int has_numpy;
  int32_t ids[MAX_STEPS][N_IDS];
  double node[MAX_STEPS][N_IDS], numpy[MAX_STEPS][N_IDS];
} ref_case;

typedef struct ref_model {
  int n;
  int64_t context;
  ref_case c[MAX_CASES];
} ref_model;

static json_t *prompts_json;

static int32_t *prompt_ids(int len) {
  char key[16];
  json_t *a;
  int32_t *ids;
  size_t i;
  snprintf(key, sizeof key, "%d", len);
  a = json_object_get(json_object_get(prompts_json, "prompts"), key);
  if (a == NULL || json_array_size(a) != (size_t)len) return NULL;
  ids = malloc((size_t)len * sizeof *ids);
  for (i = 0; ids && i < (size_t)len; i++) ids[i] = (int32_t)json_integer_value(json_array_get(a, i));
  return ids;
}

static void hex_sha256_file(const char *path, char hex[65]) {
  FILE *f = fopen(path, "rb");
  coh__sha256 s;
  uint8_t out[32], buf[65536];
  size_t n;
  int i;
  hex[0] = '\0';
  if (f == NULL) return;
  coh__sha256_init(&s);
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) coh__sha256_update(&s, buf, n);
  fclose(f);
  coh__sha256_final(&s, out);
  for (i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", out[i]);
}

static void doubles(json_t *a, double *out, int n) {
  int i;
  for (i = 0; i < n; i++) out[i] = json_number_value(json_array_get(a, (size_t)i));
}

/* Reads tests/data/long_prompt/<name>.json; checks that it was computed from
 * the weights in model_dir. */
static int load_ref(const char *name, const char *model_dir, ref_model *r) {
  char path[1400], wpath[1400], hex[65];
  json_error_t je;
  json_t *j, *cases;
  size_t i;
  int s, k;
  memset(r, 0, sizeof *r);
  snprintf(path, sizeof path, "%s/%s.json", DATA, name);
  j = json_load_file(path, 0, &je);
  if (j == NULL) {
    fprintf(stderr, "%s:%d: %s\n", path, je.line, je.text);
    return -1;
  }
  snprintf(wpath, sizeof wpath, "%s/%s", model_dir, json_string_value(json_object_get(j, "weights")));
  hex_sha256_file(wpath, hex);
  if (strcmp(hex, json_string_value(json_object_get(j, "weights_sha256")))) {
    fprintf(stderr, "%s: stale: %s has other weights; regenerate with tools/longref.py %s\n",
            path, wpath, model_dir);
    json_decref(j);
    return -1;
  }
  r->context = json_integer_value(json_object_get(j, "context"));
  cases = json_object_get(j, "cases");
  for (i = 0; i < json_array_size(cases) && r->n < MAX_CASES; i++) {
    json_t *c = json_array_get(cases, i);
    ref_case *rc = &r->c[r->n++];
    json_t *g = json_object_get(c, "greedy"), *ng = json_object_get(c, "numpy_greedy");
    rc->len = (int)json_integer_value(json_object_get(c, "len"));
    rc->steps = (int)json_array_size(g);
    if (rc->steps > MAX_STEPS) rc->steps = MAX_STEPS;
    rc->has_numpy = ng != NULL;
    for (s = 0; s < rc->steps; s++) {
      rc->greedy[s] = (int32_t)json_integer_value(json_array_get(g, (size_t)s));
      if (ng) rc->numpy_greedy[s] = (int32_t)json_integer_value(json_array_get(ng, (size_t)s));
      for (k = 0; k < N_IDS; k++)
        rc->ids[s][k] = (int32_t)json_integer_value(
            json_array_get(json_array_get(json_object_get(c, "logit_ids"), (size_t)s), (size_t)k));
      doubles(json_array_get(json_object_get(c, "node"), (size_t)s), rc->node[s], N_IDS);
      if (ng) doubles(json_array_get(json_object_get(c, "numpy"), (size_t)s), rc->numpy[s], N_IDS);
    }
  }
  json_decref(j);
  return r->n > 0 ? 0 : -1;
}

/* ---- running cohort ----------------------------------------------------------- */

typedef struct out {
  const ref_case *ref;
  int32_t ids[MAX_STEPS];
  double logits[MAX_STEPS][N_IDS];
  int n, no_logits;
  coh_finish finish;
} out;

static void collect(void *user, const coh_token_event *ev) {
  out *o = user;
  int k;
  if (ev->token >= 0 && o->n < MAX_STEPS) {
    if (ev->logits == NULL) o->no_logits++;
    for (k = 0; k < N_IDS && ev->logits; k++) o->logits[o->n][k] = ev->logits[o->ref->ids[o->n][k]];
    o->ids[o->n++] = ev->token;
  }
  if (ev->finish != COH_FINISH_NONE) o->finish = ev->finish;
}

static int submit(coh_engine *e, const int32_t *p, int len, int max_tokens, out *o, coh_err *err) {
  coh_request r;
  uint64_t id;
  coh_request_default(&r);
  r.prompt = p;
  r.n_prompt = (size_t)len;
  r.max_tokens = max_tokens;
  r.ignore_eos = 1;
  r.on_token = collect;
  r.user = o;
  return coh_engine_submit(e, &r, &id, err);
}

/* Compares one request's output with its reference; n_want tokens are
 * expected (fewer than the reference's at a smaller context). */
static void compare(const char *model, const char *how, const out *o, int n_want,
                    coh_finish fin_want, int fp16, double *worst_ort, double *worst_np) {
  const ref_case *rc = o->ref;
  double tol_ort = fp16 ? TOL_FP16_ORT : TOL_FP32, tol_np = fp16 ? TOL_FP16_NUMPY : TOL_FP32;
  int s, k, before = test__failures;
  CHECK_EQ_INT(o->n, n_want);
  CHECK_EQ_INT(o->finish, fin_want);
  CHECK_EQ_INT(o->no_logits, 0);
  CHECK(!memcmp(o->ids, rc->greedy, (size_t)n_want * sizeof(int32_t)));
  /* the float64 reference's greedy ids too, where it agrees with ORT in fp32 */
  if (rc->has_numpy && !fp16) CHECK(!memcmp(o->ids, rc->numpy_greedy, (size_t)n_want * sizeof(int32_t)));
  for (s = 0; s < o->n && s < n_want; s++)
    for (k = 0; k < N_IDS; k++) {
      double d = fabs(o->logits[s][k] - rc->node[s][k]);
      if (!(d <= *worst_ort)) *worst_ort = d;
      CHECK(d <= tol_ort);
      if (rc->has_numpy) {
        d = fabs(o->logits[s][k] - rc->numpy[s][k]);
        if (!(d <= *worst_np)) *worst_np = d;
        CHECK(d <= tol_np);
      }
    }
  if (test__failures != before) {
    fprintf(stderr, "  %s, prompt of %d tokens (%s): got", model, rc->len, how);
    for (s = 0; s < o->n; s++) fprintf(stderr, " %d", o->ids[s]);
    fprintf(stderr, "; reference");
    for (s = 0; s < rc->steps; s++) fprintf(stderr, " %d", rc->greedy[s]);
    fprintf(stderr, "\n");
  }
}

/* The whole sweep on one model: every reference prompt that fits in the
 * model's context, alone and then all at once; longer ones refused. */
static void sweep(const char *model_dir, const char *ref_name, int chunk_expected) {
  static out outs[MAX_CASES];
  static int32_t *prompts[MAX_CASES];
  ref_model ref;
  coh_model *m = open_model(model_dir);
  coh_engine *e = NULL;
  coh_engine_stats st;
  coh_err err;
  const coh_model_info *info;
  double worst_ort = 0, worst_np = 0;
  int i, fp16, fits = 0;
  REQUIRE(m != NULL);
  REQUIRE(load_ref(ref_name, model_dir, &ref) == 0);
  info = coh_model_get_info(m);
  fp16 = !strcmp(info->dtype, "fp16");
  REQUIRE(coh_engine_new(m, MAX_CASES, &e, &err) == 0);
  for (i = 0; i < ref.n; i++) {
    prompts[i] = prompt_ids(ref.c[i].len);
    REQUIRE(prompts[i] != NULL);
  }
  /* alone */
  for (int round = 0; round < 2; round++) {
    for (i = 0; i < ref.n; i++) {
      const ref_case *rc = &ref.c[i];
      int want = rc->steps;
      coh_finish fin = COH_FINISH_LENGTH;
      if (rc->len >= info->context) {
        if (round == 0) {
          /* past the context: a clear error naming both numbers */
          char a[32], b[32];
          memset(&outs[i], 0, sizeof outs[i]);
          outs[i].ref = rc;
          CHECK_EQ_INT(submit(e, prompts[i], rc->len, want, &outs[i], &err), COH_ECONTEXT);
          snprintf(a, sizeof a, "%d tokens", rc->len);
          snprintf(b, sizeof b, "context is %lld", (long long)info->context);
          CHECK(strstr(err.msg, a) != NULL && strstr(err.msg, b) != NULL);
        }
        continue;
      }
      if (rc->len + want >= info->context) {
        want = (int)(info->context - rc->len);
        fin = COH_FINISH_CONTEXT;
      }
      fits += round == 0;
      memset(&outs[i], 0, sizeof outs[i]);
      outs[i].ref = rc;
      /* where the context binds, max_tokens allows more: the context stops it */
      REQUIRE(submit(e, prompts[i], rc->len, fin == COH_FINISH_CONTEXT ? want + 8 : want, &outs[i],
                     &err) == 0);
      if (round == 0) {
        uint64_t runs_before;
        coh_engine_get_stats(e, &st);
        runs_before = st.prefill_runs;
        REQUIRE(run_all(e) == 0);
        coh_engine_get_stats(e, &st);
        /* the number of prompt chunks shows which prefill path ran */
        if (rc->len > 512) {
          CHECK_EQ_INT(st.prefill_continues, chunk_expected);
          CHECK_EQ_INT(st.prefill_runs - runs_before,
                       chunk_expected ? (rc->len + 511) / 512 : 1);
        }
        compare(ref_name, "alone", &outs[i], want, fin, fp16, &worst_ort, &worst_np);
      }
    }
    if (round == 1) {
      /* batched: every prompt at once, chunks interleaved, one decode batch
       * whose rows differ in length by up to 2046 columns */
      REQUIRE(run_all(e) == 0);
      for (i = 0; i < ref.n; i++) {
        const ref_case *rc = &ref.c[i];
        int want = rc->steps;
        coh_finish fin = COH_FINISH_LENGTH;
        if (rc->len >= info->context) continue;
        if (rc->len + want >= info->context) {
          want = (int)(info->context - rc->len);
          fin = COH_FINISH_CONTEXT;
        }
        compare(ref_name, "batched", &outs[i], want, fin, fp16, &worst_ort, &worst_np);
      }
    }
  }
  /* one past the context and far past it */
  {
    int32_t *big = calloc((size_t)info->context + 1000, sizeof *big);
    char a[64];
    REQUIRE(big != NULL);
    for (i = 0; i < info->context + 1000; i++) big[i] = 1 + i % 1000;
    memset(&outs[0], 0, sizeof outs[0]);
    CHECK_EQ_INT(submit(e, big, (int)info->context, 4, &outs[0], &err), COH_ECONTEXT);
    snprintf(a, sizeof a, "%lld tokens but the model's context is %lld", (long long)info->context,
             (long long)info->context);
    CHECK(strstr(err.msg, a) != NULL);
    CHECK_EQ_INT(submit(e, big, (int)info->context + 1000, 4, &outs[0], &err), COH_ECONTEXT);
    snprintf(a, sizeof a, "%lld tokens but the model's context is %lld",
             (long long)info->context + 1000, (long long)info->context);
    CHECK(strstr(err.msg, a) != NULL);
    CHECK_EQ_INT(coh_engine_busy(e), 0);
    free(big);
  }
  fprintf(stderr, "  %s: %d prompts (1..%lld tokens) alone and batched; max |dlogit| %.2g vs ORT",
          model_dir, fits, (long long)info->context - 1, worst_ort);
  if (ref.c[0].has_numpy) fprintf(stderr, ", %.2g vs numpy", worst_np);
  fprintf(stderr, "\n");
  for (i = 0; i < ref.n; i++) free(prompts[i]);
  coh_engine_free(e);
  coh_model_close(m);
}

/* The case: the GenAI builder's attention-mask subgraph cannot
 * continue a prefill, so the engine prefills whole prompts (one run). */
static void test_third_party(void) { sweep(THIRD_PARTY, "ortgenai-tiny-llama-fp16", 0); }
static void test_long_plain(void) { sweep(fixture("llama-long-plain-fp32"), "llama-long-plain-fp32", 1); }
static void test_long_gqa(void) { sweep(fixture("llama-long-gqa-fp32"), "llama-long-gqa-fp32", 1); }
static void test_long_fp16(void) { sweep(fixture("llama-long-plain-fp16"), "llama-long-plain-fp16", 1); }
static void test_long_optimum(void) {
  sweep(fixture("llama-long-optimum-fp32"), "llama-long-optimum-fp32", 1);
}

/* The context-256 fixtures hold the same weights as the llama-long ones. */
static void test_tiny_fixtures(void) {
  static const char *const names[][2] = {
      {"llama-tiny-plain-fp32", "llama-long-plain-fp32"},
      {"llama-tiny-gqa-fp32", "llama-long-gqa-fp32"},
      {"llama-tiny-plain-fp16", "llama-long-plain-fp16"},
      {"llama-tiny-optimum-fp32", "llama-long-optimum-fp32"}};
  size_t t;
  /* sweep() checks that the weights file is byte-identical to the one the
   * reference was computed from */
  for (t = 0; t < sizeof names / sizeof names[0]; t++) sweep(fixture(names[t][0]), names[t][1], 1);
}

int main(int argc, char **argv) {
  char path[1200];
  json_error_t je;
  TEST_MAIN_BEGIN(argc, argv);
  snprintf(path, sizeof path, "%s/prompts.json", DATA);
  prompts_json = json_load_file(path, 0, &je);
  if (prompts_json == NULL) {
    fprintf(stderr, "%s:%d: %s\n", path, je.line, je.text);
    return 1;
  }
  RUN(test_third_party);
  RUN(test_long_plain);
  RUN(test_long_gqa);
  RUN(test_long_fp16);
  RUN(test_long_optimum);
  RUN(test_tiny_fixtures);
  json_decref(prompts_json);
  return TEST_MAIN_END();
}
