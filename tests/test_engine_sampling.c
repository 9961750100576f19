/*
 * test_engine_sampling.c — sampling through the engine (the public API of
 * cohort/infer.h), against references that share no code with it:
 *
 *  1. For every sampled or greedy request, every token the engine produced
 *     must equal the token that an independent sampler picks from the
 *     logits that the engine reported for that step (coh_token_event's
 *     logits) with the request's history and random stream: ref_sample
 *     below (the full-sort reference of tests/test_sampler.c, extended
 *     with the repetition penalty) and its own xoshiro256**.  Exact: the
 *     same float logits give the same token.  This catches the engine
 *     passing the wrong history, seed, parameters or draw to the sampler.
 *  2. The same tokens are checked against tools/sampleref.py: the float64
 *     numpy forward pass of tools/mkfixture.py (whole sequence, no cache)
 *     and a numpy sampler written from the documented rules.  Its logits
 *     must agree with the engine's within TOL (absolute), and its token
 *     must be the engine's, except at a step the reference marks as
 *     borderline (a decision within 1e-6 relative of going the other way,
 *     where float32 against float64 may legitimately flip it); those are
 *     counted and printed, and must stay rare.
 *  3. Stop ids and stop strings (one spanning two tokens, one that ends
 *     exactly at the last token max_tokens allows, one that never occurs):
 *     the exact token at which the request ends, its finish reason and the
 *     streamed text, derived from an unconstrained run of the same request
 *     and the tokenizer's decode.
 * The model is the tests' fixture llama-tiny-plain-fp32 (tools/mkfixture.py
 * --suite tests): random weights whose next-token distribution is broad
 * (top probability about 5%), so every filter changes the outcome.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "cohort/infer.h"
#include "test.h"

#define MAXT 16     /* tokens per request */
#define TOL 1e-3    /* logits, absolute (fp32 against float64: ~1e-5 measured) */
#define MAX_CASES 16

#include "test_fixture.h"

/* The independent sampler: tests/ref_sampler.h (shared with test_sampler.c). */
#include "ref_sampler.h"

/* ---- running requests ----------------------------------------------------- */

typedef struct run {
  int32_t ids[MAXT];
  int n;
  float *logits; /* [MAXT][vocab] */
  size_t vocab;
  char text[8192];
  size_t text_len;
  coh_finish finish;
  int finals, bad_events;
} run;

static void on_token(void *user, const coh_token_event *ev) {
  run *r = user;
  if (ev->token >= 0) {
    if (ev->index != r->n || ev->logits == NULL || r->n >= MAXT) r->bad_events++;
    if (r->n < MAXT) {
      r->ids[r->n] = ev->token;
      if (ev->logits) memcpy(r->logits + (size_t)r->n * r->vocab, ev->logits, r->vocab * sizeof(float));
    }
    r->n++;
  } else if (ev->logits != NULL) {
    r->bad_events++;
  }
  if (ev->text_len > 0 && r->text_len + ev->text_len < sizeof r->text) {
    memcpy(r->text + r->text_len, ev->text, ev->text_len);
    r->text_len += ev->text_len;
  }
  if (ev->finish != COH_FINISH_NONE) {
    r->finish = ev->finish;
    r->finals++;
  }
}

static coh_model *model;
static coh_engine *engine;
static size_t vocab;

/* Generates; 0 on success.  r->logits must be allocated by the caller. */
static int generate(const int32_t *prompt, size_t n_prompt, const coh_sampling *s, int max_tokens,
                    const int32_t *stop_ids, size_t n_stop_ids, const char *const *stops,
                    size_t n_stops, run *r) {
  coh_request q;
  coh_err err;
  uint64_t id;
  int steps = 0;
  float *keep = r->logits;
  memset(r, 0, sizeof *r);
  r->logits = keep;
  r->vocab = vocab;
  coh_request_default(&q);
  q.prompt = prompt;
  q.n_prompt = n_prompt;
  q.sampling = *s;
  q.max_tokens = max_tokens;
  q.stop_ids = stop_ids;
  q.n_stop_ids = n_stop_ids;
  q.stop_strings = stops;
  q.n_stop_strings = n_stops;
  q.ignore_eos = 1;
  q.on_token = on_token;
  q.user = r;
  if (coh_engine_submit(engine, &q, &id, &err)) {
    fprintf(stderr, "submit: %s\n", err.msg);
    return -1;
  }
  while (coh_engine_busy(engine) && steps++ < 1000)
    if (coh_engine_step(engine, &err)) {
      fprintf(stderr, "step: %s\n", err.msg);
      return -1;
    }
  return coh_engine_busy(engine) || r->finals != 1 || r->bad_events ? -1 : 0;
}

static coh_sampling sampling(float t, int32_t k, float p, float min_p, float pen, uint64_t seed) {
  coh_sampling s;
  coh_sampling_default(&s);
  s.temperature = t;
  s.top_k = k;
  s.top_p = p;
  s.min_p = min_p;
  s.repetition_penalty = pen;
  s.seed = seed;
  return s;
}

/* "The sea is wet and the sea is" in the fixture's Llama vocabulary. */
static const int32_t PROMPT[] = {1, 450, 7205, 338, 7990, 322, 278, 7205, 338};
#define N_PROMPT (sizeof PROMPT / sizeof PROMPT[0])

typedef struct scase {
  const char *name;
  int32_t prompt[64];
  size_t n_prompt;
  coh_sampling s;
  run r;
} scase;

static scase cases[MAX_CASES];
static int n_cases;

static scase *add_case(const char *name, const int32_t *prompt, size_t n_prompt, coh_sampling s) {
  scase *c = &cases[n_cases++];
  c->name = name;
  memcpy(c->prompt, prompt, n_prompt * sizeof *prompt);
  c->n_prompt = n_prompt;
  c->s = s;
  c->r.logits = malloc((size_t)MAXT * vocab * sizeof(float));
  return c;
}

/* Check 1: the engine's tokens against ref_sample on the engine's logits. */
static int check_against_own_logits(const scase *c) {
  ref_rng rng;
  int32_t hist[64 + MAXT];
  int i, bad = 0;
  ref_seed(&rng, c->s.seed);
  memcpy(hist, c->prompt, c->n_prompt * sizeof *hist);
  for (i = 0; i < c->r.n; i++) {
    int32_t want = ref_sample_history(&c->s, c->r.logits + (size_t)i * vocab, vocab, hist,
                              c->n_prompt + (size_t)i, &rng);
    if (want != c->r.ids[i]) {
      if (!bad) fprintf(stderr, "%s: step %d: engine %d, reference sampler %d\n", c->name, i,
                        c->r.ids[i], want);
      bad++;
    }
    hist[c->n_prompt + (size_t)i] = c->r.ids[i];
  }
  return bad;
}

/* Check 2: tools/sampleref.py.  Returns the number of failed checks;
 * *borderline: steps the reference marked as borderline. */
static int check_against_numpy(int *borderline, int *compared) {
  const char *src = getenv("COH_SOURCE_DIR"), *py = getenv("COH_PYTHON");
  char req[] = "/tmp/coh-sampleref-req-XXXXXX", resp[] = "/tmp/coh-sampleref-resp-XXXXXX";
  char cmd[4096];
  json_t *root = json_object(), *arr = json_array(), *ans = NULL;
  json_error_t je;
  int fd1, fd2, i, j, bad = 0;
  *borderline = *compared = 0;
  fd1 = mkstemp(req);
  fd2 = mkstemp(resp);
  if (fd1 < 0 || fd2 < 0 || src == NULL) {
    fprintf(stderr, "sampleref: cannot make temporary files or COH_SOURCE_DIR unset\n");
    return 1;
  }
  close(fd1);
  close(fd2);
  json_object_set_new(root, "model", json_string(fixture("llama-tiny-plain-fp32")));
  for (i = 0; i < n_cases; i++) {
    const scase *c = &cases[i];
    json_t *o = json_object(), *p = json_array(), *t = json_array();
    size_t k;
    for (k = 0; k < c->n_prompt; k++) json_array_append_new(p, json_integer(c->prompt[k]));
    for (j = 0; j < c->r.n; j++) json_array_append_new(t, json_integer(c->r.ids[j]));
    json_object_set_new(o, "prompt", p);
    json_object_set_new(o, "tokens", t);
    json_object_set_new(o, "temperature", json_real(c->s.temperature));
    json_object_set_new(o, "top_k", json_integer(c->s.top_k));
    json_object_set_new(o, "top_p", json_real(c->s.top_p));
    json_object_set_new(o, "min_p", json_real(c->s.min_p));
    json_object_set_new(o, "repetition_penalty", json_real(c->s.repetition_penalty));
    json_object_set_new(o, "seed", json_integer((json_int_t)c->s.seed));
    json_array_append_new(arr, o);
  }
  json_object_set_new(root, "cases", arr);
  if (json_dump_file(root, req, 0) != 0) bad++;
  json_decref(root);
  snprintf(cmd, sizeof cmd, "'%s' '%s/tools/sampleref.py' <'%s' >'%s'", py ? py : "/usr/bin/python3",
           src, req, resp);
  if (!bad && system(cmd) != 0) {
    fprintf(stderr, "sampleref: '%s' failed\n", cmd);
    bad++;
  }
  if (!bad && (ans = json_load_file(resp, 0, &je)) == NULL) {
    fprintf(stderr, "sampleref: %s: %s (line %d)\n", resp, je.text, je.line);
    bad++;
  }
  for (i = 0; ans && i < n_cases; i++) {
    const scase *c = &cases[i];
    json_t *steps = json_object_get(json_array_get(json_object_get(ans, "cases"), (size_t)i), "steps");
    double worst = 0;
    int mism = 0, border = 0;
    if (json_array_size(steps) != (size_t)c->r.n) {
      fprintf(stderr, "%s: the reference has %zu steps, the engine %d\n", c->name,
              json_array_size(steps), c->r.n);
      bad++;
      continue;
    }
    for (j = 0; j < c->r.n; j++) {
      json_t *st = json_array_get(steps, (size_t)j), *ids = json_object_get(st, "ids"),
             *lg = json_object_get(st, "logits");
      int32_t want = (int32_t)json_integer_value(json_object_get(st, "token"));
      size_t k;
      for (k = 0; k < json_array_size(ids); k++) {
        int64_t t = json_integer_value(json_array_get(ids, k));
        double d;
        if (t < 0 || (size_t)t >= vocab) {
          worst = INFINITY;
          continue;
        }
        d = fabs((double)c->r.logits[(size_t)j * vocab + (size_t)t] -
                 json_number_value(json_array_get(lg, k)));
        if (isnan(d)) d = INFINITY;
        if (d > worst) worst = d;
      }
      if (json_is_true(json_object_get(st, "borderline"))) {
        border++;
        continue;
      }
      (*compared)++;
      if (want != c->r.ids[j]) {
        if (!mism)
          fprintf(stderr, "%s: step %d: engine %d, numpy reference %d (margin %g)\n", c->name, j,
                  c->r.ids[j], want, json_number_value(json_object_get(st, "margin")));
        mism++;
      }
    }
    fprintf(stderr, "  %-22s %2d tokens, max |logit - numpy| %.2e, %d borderline, %d mismatches\n",
            c->name, c->r.n, worst, border, mism);
    if (!(worst <= TOL)) bad++;
    bad += mism;
    *borderline += border;
  }
  json_decref(ans);
  unlink(req);
  unlink(resp);
  return bad;
}

/* ---- tests ------------------------------------------------------------------ */

static int same_ids(const run *a, const run *b) {
  return a->n == b->n && !memcmp(a->ids, b->ids, (size_t)a->n * sizeof a->ids[0]);
}

/* Every parameter, through the engine, against both references. */
static void test_sampling_against_references(void) {
  scase *g, *ga, *gp, *t07, *tk, *tp, *mp, *all, *tpen, *tnopen, *boost, *pre;
  int32_t longer[64];
  int i, borderline = 0, compared = 0;
  for (i = 0; i < MAX_CASES; i++) cases[i].r.logits = NULL;
  g = add_case("greedy", PROMPT, N_PROMPT, sampling(0, 0, 1, 0, 1, 0));
  REQUIRE(g->r.logits && generate(g->prompt, g->n_prompt, &g->s, MAXT, NULL, 0, NULL, 0, &g->r) == 0);
  /* A prompt whose greedy next token is in the prompt itself, so that the
   * penalty must change the greedy path: PROMPT with its greedy next token
   * inserted early (the first position where that keeps it the argmax). */
  {
    static run probe;
    coh_sampling gs = sampling(0, 0, 1, 0, 1, 0);
    size_t pos;
    int ok = 0;
    probe.logits = malloc((size_t)MAXT * vocab * sizeof(float));
    REQUIRE(probe.logits != NULL);
    for (pos = 1; pos < N_PROMPT && !ok; pos++) {
      memcpy(longer, PROMPT, pos * sizeof *longer);
      longer[pos] = g->r.ids[0];
      memcpy(longer + pos + 1, PROMPT + pos, (N_PROMPT - pos) * sizeof *longer);
      ok = generate(longer, N_PROMPT + 1, &gs, 1, NULL, 0, NULL, 0, &probe) == 0 &&
           probe.ids[0] == g->r.ids[0];
    }
    free(probe.logits);
    REQUIRE(ok);
  }
  ga = add_case("greedy, repeated", longer, N_PROMPT + 1, sampling(0, 0, 1, 0, 1, 0));
  gp = add_case("greedy, penalty 3", longer, N_PROMPT + 1, sampling(0, 0, 1, 0, 3.0f, 0));
  t07 = add_case("temperature 0.7", PROMPT, N_PROMPT, sampling(0.7f, 0, 1, 0, 1, 11));
  tk = add_case("top_k 5", PROMPT, N_PROMPT, sampling(1.0f, 5, 1, 0, 1, 12));
  tp = add_case("top_p 0.6", PROMPT, N_PROMPT, sampling(1.0f, 0, 0.6f, 0, 1, 13));
  mp = add_case("min_p 0.5", PROMPT, N_PROMPT, sampling(1.0f, 0, 1, 0.5f, 1, 14));
  all = add_case("all filters, penalty", PROMPT, N_PROMPT, sampling(1.3f, 50, 0.9f, 0.05f, 1.2f, 15));
  tpen = add_case("temperature, penalty", longer, N_PROMPT + 1, sampling(0.5f, 0, 1, 0, 1.3f, 16));
  tnopen = add_case("temperature, no penalty", longer, N_PROMPT + 1, sampling(0.5f, 0, 1, 0, 1, 16));
  /* a penalty below 1 boosts the history: the generated ids must be in it
   * (a repeat of a generated id that is not in the prompt shows it) */
  boost = add_case("penalty 0.5 (boost)", PROMPT, N_PROMPT, sampling(1.0f, 0, 1, 0, 0.5f, 17));
  pre = add_case("temperature 0.7 again", PROMPT, N_PROMPT, sampling(0.7f, 0, 1, 0, 1, 11));
  for (i = 1; i < n_cases; i++) {
    scase *c = &cases[i];
    REQUIRE(c->r.logits != NULL);
    CHECK(generate(c->prompt, c->n_prompt, &c->s, MAXT, NULL, 0, NULL, 0, &c->r) == 0);
    CHECK_EQ_INT(c->r.n, MAXT);
    CHECK_EQ_INT(c->r.finish, COH_FINISH_LENGTH);
  }
  /* each parameter changes the outcome (else the references prove little) */
  CHECK(!same_ids(&ga->r, &gp->r));
  CHECK(!same_ids(&g->r, &t07->r) && !same_ids(&t07->r, &tk->r) && !same_ids(&tk->r, &tp->r) &&
        !same_ids(&tp->r, &mp->r) && !same_ids(&mp->r, &all->r));
  CHECK(same_ids(&t07->r, &pre->r)); /* same seed, same tokens */
  {
    int a, b, repeat = 0;
    size_t q;
    for (a = 0; a < boost->r.n; a++)
      for (b = a + 1; b < boost->r.n; b++)
        if (boost->r.ids[a] == boost->r.ids[b]) {
          int in_prompt = 0;
          for (q = 0; q < N_PROMPT; q++) in_prompt |= PROMPT[q] == boost->r.ids[a];
          repeat |= !in_prompt;
        }
    CHECK(repeat);
  }
  CHECK(ga->r.ids[0] == g->r.ids[0] && gp->r.ids[0] != ga->r.ids[0]);
  CHECK(!same_ids(&tpen->r, &tnopen->r));
  for (i = 0; i < n_cases; i++) CHECK_EQ_INT(check_against_own_logits(&cases[i]), 0);
  CHECK_EQ_INT(check_against_numpy(&borderline, &compared), 0);
  fprintf(stderr, "  %d steps compared with the numpy reference, %d borderline\n", compared, borderline);
  CHECK(borderline <= 2 && compared >= (n_cases * MAXT) - 2);
  /* a parameter the engine ignored would be caught: e.g. top-k 5 keeps
   * every token among the 5 best of its step */
  for (i = 0; i < tk->r.n; i++) {
    const float *l = tk->r.logits + (size_t)i * vocab;
    size_t v, better = 0;
    for (v = 0; v < vocab; v++) better += l[v] > l[tk->r.ids[i]];
    CHECK(better < 5);
  }
}

/* Text the engine streams for generated ids[0..n): the decode of the last
 * prompt token and the ids, minus the decode of that token alone. */
static char *decoded(const int32_t *prompt, size_t n_prompt, const int32_t *ids, int n, size_t *len) {
  const coh_tokenizer *tok = coh_model_tokenizer(model);
  int32_t buf[1 + MAXT];
  char *a = NULL, *b = NULL, *out;
  size_t la = 0, lb = 0;
  coh_err err;
  buf[0] = prompt[n_prompt - 1];
  memcpy(buf + 1, ids, (size_t)n * sizeof *ids);
  if (coh_tokenizer_decode(tok, buf, 1, 1, &a, &la, &err) ||
      coh_tokenizer_decode(tok, buf, (size_t)n + 1, 1, &b, &lb, &err) || lb < la ||
      memcmp(a, b, la) != 0) {
    coh_free(a);
    coh_free(b);
    return NULL;
  }
  out = malloc(lb - la + 1);
  memcpy(out, b + la, lb - la);
  out[lb - la] = '\0';
  *len = lb - la;
  coh_free(a);
  coh_free(b);
  return out;
}

static int ascii(const char *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if ((unsigned char)p[i] < 32 || (unsigned char)p[i] > 126) return 0;
  return 1;
}

/* Stop ids and stop strings, exactly. */
static void test_stops(void) {
  static run full, r, lim;
  coh_sampling s = sampling(0.7f, 0, 1, 0, 1, 11);
  size_t L[MAXT + 1], flen = 0, len;
  char *ftext, *t;
  int32_t stop;
  int j, k, first, found = 0;
  full.logits = malloc((size_t)MAXT * vocab * sizeof(float));
  r.logits = malloc((size_t)MAXT * vocab * sizeof(float));
  lim.logits = malloc((size_t)MAXT * vocab * sizeof(float));
  REQUIRE(full.logits && r.logits && lim.logits);
  REQUIRE(generate(PROMPT, N_PROMPT, &s, MAXT, NULL, 0, NULL, 0, &full) == 0);
  REQUIRE(full.n == MAXT);
  /* the streamed text is the decode of the ids; L[k]: text length of k ids */
  ftext = decoded(PROMPT, N_PROMPT, full.ids, MAXT, &flen);
  REQUIRE(ftext != NULL);
  CHECK(flen == full.text_len && !memcmp(ftext, full.text, flen));
  for (k = 0; k <= MAXT; k++) {
    t = decoded(PROMPT, N_PROMPT, full.ids, k, &len);
    REQUIRE(t != NULL);
    L[k] = len;
    free(t);
  }

  /* stop id: the request ends at the first occurrence of the 6th token,
   * which is reported (with its logits) but adds no text */
  stop = full.ids[5];
  for (first = 0; full.ids[first] != stop; first++) {}
  REQUIRE(generate(PROMPT, N_PROMPT, &s, MAXT, &stop, 1, NULL, 0, &r) == 0);
  CHECK_EQ_INT(r.finish, COH_FINISH_STOP_TOKEN);
  CHECK_EQ_INT(r.n, first + 1);
  CHECK(!memcmp(r.ids, full.ids, (size_t)(first + 1) * sizeof r.ids[0]));
  CHECK(r.text_len == L[first] && !memcmp(r.text, ftext, r.text_len));

  /* a stop string spanning two tokens: the last 2 bytes of token j and the
   * first 2 of token j+1 (ASCII, first occurrence there) */
  for (j = 2; j + 1 < MAXT && !found; j++) {
    const char *at = ftext + L[j] - 2;
    if (L[j] - L[j - 1] < 2 || L[j + 1] - L[j] < 2 || !ascii(at, 4)) continue;
    {
      char stopstr[5];
      const char *stops[1];
      memcpy(stopstr, at, 4);
      stopstr[4] = '\0';
      if (strstr(ftext, stopstr) != at) continue;
      found = 1;
      stops[0] = stopstr;
      REQUIRE(generate(PROMPT, N_PROMPT, &s, MAXT, NULL, 0, stops, 1, &r) == 0);
      fprintf(stderr, "  stop string \"%s\" spans tokens %d and %d\n", stopstr, j - 1, j);
      CHECK_EQ_INT(r.finish, COH_FINISH_STOP_STRING);
      CHECK_EQ_INT(r.n, j + 1); /* ends at the token that completes it */
      CHECK(!memcmp(r.ids, full.ids, (size_t)(j + 1) * sizeof r.ids[0]));
      CHECK(r.text_len == L[j] - 2 && !memcmp(r.text, ftext, r.text_len));
    }
  }
  CHECK(found); /* the fixture's output has such a place */

  /* a stop string that ends exactly at the last token max_tokens allows:
   * STOP_STRING wins over LENGTH and the string is not streamed */
  found = 0;
  for (k = 6; k <= MAXT && !found; k++) {
    char stopstr[4];
    const char *stops[1];
    if (L[k] - L[k - 1] < 3 || !ascii(ftext + L[k] - 3, 3)) continue;
    memcpy(stopstr, ftext + L[k] - 3, 3);
    stopstr[3] = '\0';
    {
      char *head = malloc(L[k] + 1);
      memcpy(head, ftext, L[k]);
      head[L[k]] = '\0';
      if (strstr(head, stopstr) != head + L[k] - 3) {
        free(head);
        continue;
      }
      free(head);
    }
    found = 1;
    stops[0] = stopstr;
    REQUIRE(generate(PROMPT, N_PROMPT, &s, k, NULL, 0, stops, 1, &r) == 0);
    REQUIRE(generate(PROMPT, N_PROMPT, &s, k, NULL, 0, NULL, 0, &lim) == 0);
    CHECK_EQ_INT(lim.finish, COH_FINISH_LENGTH);
    CHECK(lim.text_len == L[k] && !memcmp(lim.text, ftext, L[k]));
    CHECK_EQ_INT(r.finish, COH_FINISH_STOP_STRING);
    CHECK_EQ_INT(r.n, k);
    CHECK(r.text_len == L[k] - 3 && !memcmp(r.text, ftext, r.text_len));
  }
  CHECK(found);

  /* a stop string that never occurs: held-back text is flushed at the end */
  {
    const char *stops[1] = {"\x01never\x02"};
    REQUIRE(generate(PROMPT, N_PROMPT, &s, MAXT, NULL, 0, stops, 1, &r) == 0);
    CHECK_EQ_INT(r.finish, COH_FINISH_LENGTH);
    CHECK(same_ids(&r, &full));
    CHECK(r.text_len == flen && !memcmp(r.text, ftext, flen));
  }
  free(ftext);
  free(full.logits);
  free(r.logits);
  free(lim.logits);
}

int main(int argc, char **argv) {
  coh_model_options mo;
  coh_err err;
  int i;
  TEST_MAIN_BEGIN(argc, argv);
  coh_model_options_default(&mo);
  mo.device = COH_DEVICE_CPU;
  mo.intra_op_threads = 1;
  if (coh_model_open(fixture("llama-tiny-plain-fp32"), &mo, &model, &err) ||
      coh_engine_new(model, 4, &engine, &err)) {
    fprintf(stderr, "cannot open the fixture: %s\n", err.msg);
    return 1;
  }
  vocab = (size_t)coh_model_get_info(model)->vocab;
  RUN(test_sampling_against_references);
  RUN(test_stops);
  for (i = 0; i < n_cases; i++) free(cases[i].r.logits);
  coh_engine_free(engine);
  coh_model_close(model);
  return TEST_MAIN_END();
}
