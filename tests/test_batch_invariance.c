/*
 * test_batch_invariance.c — a request's tokens and logits are the same bits
 * whether it runs alone or inside a busy decode batch (docs/inference.md,
 * "Batch invariance").
 *
 * Short prompts hide the failure this test exists for: on "concat"
 * attention models (past ++ new, with an attention mask) a batch pads rows
 * of different lengths, and where a row's real columns fall inside ONNX
 * Runtime's vectorised softmax/MatMul reductions changes the rounding.  So
 * every model here gets requests whose prompts range from 1 token to most
 * of the context, greedy and seeded sampling mixed, first each alone and
 * then all together, joining a few per step (the batch is re-laid out again
 * and again), with a max batch below the request count (some wait in the
 * queue).  Every generated token and the bits of every logits vector it was
 * sampled from must match the solo run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/infer.h"
#include "test.h"
#include "test_fixture.h"

#define N_REQ 40
#define GEN 12
#define MAX_PROMPT 600

typedef struct out {
  int32_t ids[GEN];
  uint64_t logit_hash[GEN];
  int n, events;
  coh_finish finish;
} out;

static uint64_t fnv(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 1469598103934665603ull;
  size_t i;
  for (i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static size_t g_vocab;

static void collect(void *user, const coh_token_event *ev) {
  out *o = user;
  o->events++;
  if (ev->token >= 0 && o->n < GEN) {
    o->ids[o->n] = ev->token;
    o->logit_hash[o->n] = ev->logits ? fnv(ev->logits, g_vocab * sizeof(float)) : 0;
    o->n++;
  }
  o->finish = ev->finish;
}

typedef struct req {
  int32_t *prompt;
  size_t n_prompt;
  coh_sampling sampling;
} req;

static int submit(coh_engine *e, const req *r, out *o) {
  coh_request q;
  coh_err err;
  uint64_t id;
  coh_request_default(&q);
  q.prompt = r->prompt;
  q.n_prompt = r->n_prompt;
  q.max_tokens = GEN;
  q.ignore_eos = 1;
  q.sampling = r->sampling;
  q.on_token = collect;
  q.user = o;
  memset(o, 0, sizeof *o);
  if (coh_engine_submit(e, &q, &id, &err)) {
    fprintf(stderr, "submit: %s\n", err.msg);
    return -1;
  }
  return 0;
}

/* Runs the check on one model; returns the number of requests whose
 * batched output differs from their solo output (-1 on a setup failure). */
static int check_model(const char *dir, int max_batch) {
  coh_model *m = open_model(dir);
  coh_engine *e = NULL;
  const coh_model_info *info;
  coh_err err;
  static req reqs[N_REQ];
  static out alone[N_REQ], batched[N_REQ];
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  int i, differ = 0, tok_differ = 0, submitted, max_prompt;
  size_t k;
  if (m == NULL) return -1;
  info = coh_model_get_info(m);
  g_vocab = (size_t)info->vocab;
  max_prompt = (int)info->context - GEN - 1;
  if (max_prompt > MAX_PROMPT) max_prompt = MAX_PROMPT;
  for (i = 0; i < N_REQ; i++) {
    req *r = &reqs[i];
    /* lengths spread over [1, max_prompt], in a shuffled order */
    r->n_prompt = 1 + (size_t)(((long)i * 37 % N_REQ) * (max_prompt - 1) / (N_REQ - 1));
    r->prompt = malloc(r->n_prompt * sizeof *r->prompt);
    if (r->prompt == NULL) return -1;
    for (k = 0; k < r->n_prompt; k++) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      r->prompt[k] = 3 + (int32_t)((rng >> 33) % (uint64_t)(info->vocab - 3));
    }
    coh_sampling_default(&r->sampling);
    if (i % 2) {
      r->sampling.temperature = 1.0f;
      r->sampling.top_k = 0;
      r->sampling.top_p = 1.0f;
      r->sampling.seed = 1000 + (uint64_t)i;
    }
  }
  if (coh_engine_new(m, max_batch, &e, &err)) {
    fprintf(stderr, "engine: %s\n", err.msg);
    return -1;
  }
  for (i = 0; i < N_REQ; i++)
    if (submit(e, &reqs[i], &alone[i]) || run_all(e)) return -1;
  /* all together: 1..3 join per step, so rows of every length share it */
  for (submitted = 0; submitted < N_REQ;) {
    int j, join = 1 + submitted % 3;
    for (j = 0; j < join && submitted < N_REQ; j++, submitted++)
      if (submit(e, &reqs[submitted], &batched[submitted])) return -1;
    if (coh_engine_step(e, &err)) {
      fprintf(stderr, "step: %s\n", err.msg);
      return -1;
    }
  }
  if (run_all(e)) return -1;
  for (i = 0; i < N_REQ; i++) {
    int tokens_same = alone[i].n == batched[i].n &&
                      !memcmp(alone[i].ids, batched[i].ids, sizeof(int32_t) * (size_t)alone[i].n);
    int logits_same = tokens_same && !memcmp(alone[i].logit_hash, batched[i].logit_hash,
                                             sizeof(uint64_t) * (size_t)alone[i].n);
    CHECK_EQ_INT(alone[i].n, GEN);
    CHECK_EQ_INT(alone[i].finish, COH_FINISH_LENGTH);
    CHECK_EQ_INT(batched[i].finish, COH_FINISH_LENGTH);
    if (!logits_same) {
      differ++;
      tok_differ += !tokens_same;
      fprintf(stderr, "    request %d (%s, prompt %zu tokens): %s differ\n", i,
              i % 2 ? "sampled" : "greedy", reqs[i].n_prompt, tokens_same ? "logits" : "tokens");
    }
  }
  fprintf(stderr, "  %s (max batch %d): %d/%d requests differ from their solo run (%d in tokens)\n",
          dir, max_batch, differ, N_REQ, tok_differ);
  for (i = 0; i < N_REQ; i++) free(reqs[i].prompt);
  coh_engine_free(e);
  coh_model_close(m);
  return differ;
}

static void test_long_plain_fp32(void) {
  CHECK_EQ_INT(check_model(fixture("llama-long-plain-fp32"), 32), 0);
}
static void test_long_plain_fp16(void) {
  CHECK_EQ_INT(check_model(fixture("llama-long-plain-fp16"), 32), 0);
}
static void test_long_optimum_fp32(void) {
  CHECK_EQ_INT(check_model(fixture("llama-long-optimum-fp32"), 64), 0);
}
/* The quantized twins (256-token context) at accuracy_level 4, the shipped
 * default model's configuration: MatMulNBits quantizes each row's
 * activations on its own.  Not here: the accuracy_level 0 twins
 * (llama-tiny-plain-int8, -int4, -gqa-int4).  There ONNX Runtime's
 * MatMulNBits fp32 path rounds a row differently with the number of rows
 * in the call, GroupQueryAttention included (40 of 40 requests differ in
 * logit bits, 0 in tokens, measured 2026-11-30): a property of that kernel,
 * not of the attention layout; docs/inference.md says so. */
static void test_tiny_int8_acc4(void) {
  CHECK_EQ_INT(check_model(fixture("llama-tiny-plain-int8-acc4"), 32), 0);
}
static void test_tiny_int4_acc4(void) {
  CHECK_EQ_INT(check_model(fixture("llama-tiny-plain-int4-acc4"), 32), 0);
}
/* GroupQueryAttention: each row attends over its own length (control) */
static void test_long_gqa_fp32(void) {
  CHECK_EQ_INT(check_model(fixture("llama-long-gqa-fp32"), 32), 0);
}
/* the shipped default model */
static void test_default_model(void) {
  CHECK_EQ_INT(check_model(COH_TEST_DATA "/../../models/shakespeare", 32), 0);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_long_plain_fp32);
  RUN(test_long_plain_fp16);
  RUN(test_long_optimum_fp32);
  RUN(test_tiny_int8_acc4);
  RUN(test_tiny_int4_acc4);
  RUN(test_long_gqa_fp32);
  RUN(test_default_model);
  return TEST_MAIN_END();
}
