/* test_sampler.c — sampling parameters, the token sampler, the random stream
 * and fp16 conversion. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/sampling.h"
#include "infer/sampler.h"
#include "ref_sampler.h"
#include "test.h"
#include "util/util_int.h"

/* ---- reference algorithms: tests/ref_sampler.h ------------------------- */

/* The mix of splitmix64 applied to a value (no increment). */
static uint64_t ref_fmix(uint64_t z) {
  uint64_t x = z - 0x9e3779b97f4a7c15ULL;
  return ref_splitmix64(&x);
}

/* ---- helpers ------------------------------------------------------------ */

static coh__sampler *new_sampler(size_t vocab) {
  coh__sampler *s = NULL;
  coh_err e;
  if (coh__sampler_new(vocab, &s, &e) != COH_OK) {
    fprintf(stderr, "coh__sampler_new: %s\n", e.msg);
    return NULL;
  }
  return s;
}

static coh_sampling params(float temperature) {
  coh_sampling p;
  coh_sampling_default(&p);
  p.temperature = temperature;
  return p;
}

/* Samples n draws with one rng stream; counts[token]++. Returns the number of
 * failed calls. */
static int draw_counts(coh__sampler *s, const coh_sampling *p,
                       const float *logits, uint64_t seed, int n,
                       long *counts, size_t vocab) {
  coh__rng rng;
  int i, fails = 0;
  coh__rng_seed(&rng, seed);
  memset(counts, 0, vocab * sizeof *counts);
  for (i = 0; i < n; i++) {
    int32_t t = -1;
    coh_err e;
    if (coh__sample(s, p, logits, NULL, 0, &rng, &t, &e) != COH_OK ||
        t < 0 || (size_t)t >= vocab) {
      fails++;
      continue;
    }
    counts[t]++;
  }
  return fails;
}

/* Pearson chi-square of counts against probabilities (support = prob > 0;
 * any count outside the support makes it infinite). */
static double chi_square(const long *counts, const double *prob, size_t n,
                         long total) {
  double chi = 0.0;
  size_t i;
  for (i = 0; i < n; i++) {
    if (prob[i] <= 0.0) {
      if (counts[i] != 0) return INFINITY;
      continue;
    }
    {
      double e = prob[i] * (double)total, d = (double)counts[i] - e;
      chi += d * d / e;
    }
  }
  return chi;
}

/* ---- parameters --------------------------------------------------------- */

static void test_validate(void) {
  coh_sampling p;
  coh_err e;
  coh_sampling_default(&p);
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_OK);
  CHECK(p.temperature == 0.0f && p.top_k == 0 && p.top_p == 1.0f &&
        p.min_p == 0.0f && p.repetition_penalty == 1.0f && p.seed == 0);

  p.temperature = NAN;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "temperature") != NULL);
  p.temperature = -INFINITY;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "temperature") != NULL);
  p.temperature = -3.0f; /* greedy, fine */
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_OK);
  p.temperature = INFINITY; /* uniform, fine */
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_OK);

  coh_sampling_default(&p);
  p.top_k = -1;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "top_k") != NULL);

  coh_sampling_default(&p);
  p.top_p = 0.0f;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "top_p") != NULL);
  p.top_p = 1.5f;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "top_p") != NULL);
  p.top_p = NAN;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "top_p") != NULL);

  coh_sampling_default(&p);
  p.min_p = -0.1f;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "min_p") != NULL);
  p.min_p = 1.01f;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "min_p") != NULL);
  p.min_p = NAN;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "min_p") != NULL);
  p.min_p = 1.0f;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_OK);

  coh_sampling_default(&p);
  p.repetition_penalty = 0.0f;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "repetition_penalty") != NULL);
  p.repetition_penalty = -1.0f;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "repetition_penalty") != NULL);
  p.repetition_penalty = NAN;
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "repetition_penalty") != NULL);
  p.repetition_penalty = 0.5f; /* < 1 rewards repeats; allowed */
  CHECK_EQ_INT(coh_sampling_validate(&p, &e), COH_OK);

  CHECK_EQ_INT(coh_sampling_validate(NULL, &e), COH_EINVAL);
  p.repetition_penalty = 0.0f;
  CHECK_EQ_INT(coh_sampling_validate(&p, NULL), COH_EINVAL);
}

/* ---- random stream ------------------------------------------------------ */

static void test_rng_known_answers(void) {
  static const uint64_t seeds[] = {0, 1, 42, 0xdeadbeefcafef00dULL,
                                   UINT64_MAX};
  size_t si;
  uint64_t x = 0;
  /* Published first output of splitmix64 from state 0. */
  CHECK(ref_splitmix64(&x) == 0xe220a8397b1dcdafULL);
  for (si = 0; si < sizeof seeds / sizeof seeds[0]; si++) {
    uint64_t ref[4], sm = seeds[si];
    coh__rng r;
    int i, j;
    for (j = 0; j < 4; j++) ref[j] = ref_splitmix64(&sm);
    coh__rng_seed(&r, seeds[si]);
    for (j = 0; j < 4; j++) CHECK(r.s[j] == ref[j]);
    for (i = 0; i < 1000; i++) {
      uint64_t want = ref_xoshiro(ref);
      if (coh__rng_next(&r) != want) {
        CHECK(!"xoshiro256** output differs from the reference");
        break;
      }
    }
    for (i = 0; i < 1000; i++) {
      uint64_t raw = ref_xoshiro(ref);
      double u = coh__rng_uniform(&r);
      CHECK(u >= 0.0 && u < 1.0);
      CHECK(u == ldexp((double)(raw >> 11), -53));
      if (test__failures) break;
    }
  }
}

static void test_seed_derive(void) {
  const uint64_t G = 0x9e3779b97f4a7c15ULL;
  uint64_t a = 1234, b = 7, c = 99, h;
  h = ref_fmix(a + G);
  h = ref_fmix((h ^ b) + G);
  h = ref_fmix((h ^ c) + G);
  CHECK(coh__seed_derive(a, b, c) == h);
  CHECK(coh__seed_derive(a, b, c) == coh__seed_derive(a, b, c));
  CHECK(coh__seed_derive(a, b, c) != coh__seed_derive(a, c, b));
  CHECK(coh__seed_derive(a, b, c) != coh__seed_derive(b, a, c));
  CHECK(coh__seed_derive(a, b, c) != coh__seed_derive(a, b, c + 1));
  CHECK(coh__seed_derive(0, 0, 0) != coh__seed_derive(0, 0, 1));
  CHECK(coh__seed_derive(0, 0, 1) != coh__seed_derive(0, 1, 0));
  CHECK(coh__seed_derive(0, 1, 0) != coh__seed_derive(1, 0, 0));
}

/* ---- sampler ------------------------------------------------------------ */

static void test_greedy(void) {
  float logits[6] = {0.5f, 3.0f, -1.0f, 3.0f, NAN, 2.9f};
  float copy[6];
  coh__sampler *s = new_sampler(6);
  coh_sampling p = params(0.0f);
  coh__rng rng, before;
  int32_t t = -1;
  coh_err e;
  REQUIRE(s != NULL);
  memcpy(copy, logits, sizeof logits);
  coh__rng_seed(&rng, 5);
  before = rng;
  CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rng, &t, &e), COH_OK);
  CHECK_EQ_INT(t, 1); /* tie between 1 and 3 → lowest id */
  CHECK(memcmp(&rng, &before, sizeof rng) == 0); /* no draw when greedy */
  CHECK(memcmp(logits, copy, sizeof logits) == 0);
  /* NULL rng is fine when greedy. */
  p.temperature = -1.0f;
  CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, NULL, &t, &e), COH_OK);
  CHECK_EQ_INT(t, 1);
  /* NaN at the front must not win, nor block later tokens. */
  logits[0] = NAN;
  logits[1] = -INFINITY;
  logits[3] = -INFINITY;
  CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, NULL, &t, &e), COH_OK);
  CHECK_EQ_INT(t, 5);
  /* All ties: id 0. */
  {
    float flat[6] = {1, 1, 1, 1, 1, 1};
    CHECK_EQ_INT(coh__sample(s, &p, flat, NULL, 0, NULL, &t, &e), COH_OK);
    CHECK_EQ_INT(t, 0);
  }
  /* +inf wins. */
  {
    float inf[6] = {1, 2, INFINITY, 3, INFINITY, 0};
    CHECK_EQ_INT(coh__sample(s, &p, inf, NULL, 0, NULL, &t, &e), COH_OK);
    CHECK_EQ_INT(t, 2);
  }
  coh__sampler_free(s);
}

static void test_all_inf(void) {
  float logits[4] = {-INFINITY, NAN, -INFINITY, NAN};
  coh__sampler *s = new_sampler(4);
  coh_sampling p = params(0.0f);
  coh__rng rng, before;
  int32_t t = 77;
  coh_err e;
  REQUIRE(s != NULL);
  CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, NULL, &t, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "all logits are -inf/NaN") != NULL);
  CHECK_EQ_INT(t, 77);
  p.temperature = 1.0f;
  p.top_k = 2;
  coh__rng_seed(&rng, 1);
  before = rng;
  CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rng, &t, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "all logits are -inf/NaN") != NULL);
  CHECK(memcmp(&rng, &before, sizeof rng) == 0);
  /* A penalty that drives the only finite (negative, huge) logit to -inf. */
  {
    float one[4] = {-3e38f, NAN, -INFINITY, NAN};
    int32_t hist[1] = {0};
    p.temperature = 0.0f;
    p.repetition_penalty = 10.0f;
    CHECK_EQ_INT(coh__sample(s, &p, one, hist, 1, NULL, &t, &e), COH_EINVAL);
    p.repetition_penalty = 1.0f;
    CHECK_EQ_INT(coh__sample(s, &p, one, hist, 1, NULL, &t, &e), COH_OK);
    CHECK_EQ_INT(t, 0);
  }
  coh__sampler_free(s);
}

static void test_bad_args(void) {
  float logits[4] = {1, 2, 3, 4};
  int32_t hist[3] = {0, 4, 1};
  coh__sampler *s = new_sampler(4), *none = NULL;
  coh_sampling p = params(1.0f);
  coh__rng rng;
  int32_t t;
  coh_err e;
  REQUIRE(s != NULL);
  coh__rng_seed(&rng, 1);
  CHECK_EQ_INT(coh__sample(s, &p, NULL, NULL, 0, &rng, &t, &e), COH_EINVAL);
  CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, NULL, &t, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "rng") != NULL);
  CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rng, NULL, &e),
               COH_EINVAL);
  CHECK_EQ_INT(coh__sample(s, NULL, logits, NULL, 0, &rng, &t, &e),
               COH_EINVAL);
  p.top_p = 2.0f;
  CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rng, &t, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "top_p") != NULL);
  p.top_p = 1.0f;
  p.repetition_penalty = 1.3f;
  CHECK_EQ_INT(coh__sample(s, &p, logits, hist, 3, &rng, &t, &e), COH_ERANGE);
  CHECK(strstr(e.msg, "history[1]") != NULL);
  hist[1] = -1;
  CHECK_EQ_INT(coh__sample(s, &p, logits, hist, 3, &rng, &t, &e), COH_ERANGE);
  /* The failed calls left no stale mark on id 0 (3.5/1.3 < 3 would lose). */
  {
    float l2[4] = {3.5f, 3.0f, 0.0f, 0.0f};
    int32_t h2[1] = {2};
    p.temperature = 0.0f;
    CHECK_EQ_INT(coh__sample(s, &p, l2, h2, 1, NULL, &t, &e), COH_OK);
    CHECK_EQ_INT(t, 0);
  }
  CHECK_EQ_INT(coh__sampler_new(0, &none, &e), COH_EINVAL);
  CHECK(none == NULL);
  coh__sampler_free(s);
  coh__sampler_free(NULL);
}

static void test_temperature_limit(void) {
  enum { V = 100 };
  float logits[V];
  coh__sampler *s = new_sampler(V);
  coh_sampling p = params(1e-6f);
  coh__rng rng;
  int i;
  REQUIRE(s != NULL);
  for (i = 0; i < V; i++) logits[i] = (float)sin(i * 1.7) * 0.01f;
  logits[37] = 0.0101f; /* argmax by a hair */
  coh__rng_seed(&rng, 11);
  for (i = 0; i < 2000; i++) {
    int32_t t = -1;
    coh_err e;
    CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rng, &t, &e), COH_OK);
    if (t != 37) {
      CHECK_EQ_INT(t, 37);
      break;
    }
  }
  /* A subnormal temperature stays finite: still the argmax. */
  p.temperature = 1e-40f;
  {
    int32_t t = -1;
    CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rng, &t, NULL), COH_OK);
    CHECK_EQ_INT(t, 37);
  }
  /* Exactly one draw per sampled token. */
  {
    coh__rng a, b;
    int32_t t;
    coh__rng_seed(&a, 3);
    b = a;
    p.temperature = 0.7f;
    CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &a, &t, NULL), COH_OK);
    coh__rng_next(&b);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    p.top_k = 5;
    p.top_p = 0.5f;
    CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &a, &t, NULL), COH_OK);
    coh__rng_next(&b);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    p.top_k = 0;
    p.min_p = 1.0f; /* one survivor: still one draw */
    CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &a, &t, NULL), COH_OK);
    CHECK_EQ_INT(t, 37);
    coh__rng_next(&b);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
  }
  coh__sampler_free(s);
}

static void fill_random(float *logits, size_t n, uint64_t seed, int quantise) {
  coh__rng r;
  size_t i;
  coh__rng_seed(&r, seed);
  for (i = 0; i < n; i++) {
    double u = coh__rng_uniform(&r) * 8.0 - 4.0;
    /* Quantised logits produce many ties, which exercises the tie order. */
    logits[i] = quantise ? (float)floor(u * 2.0) / 2.0f : (float)u;
  }
}

static void test_top_k_one_is_greedy(void) {
  enum { V = 3000 };
  static float logits[V];
  coh__sampler *s = new_sampler(V);
  int trial;
  REQUIRE(s != NULL);
  for (trial = 0; trial < 50; trial++) {
    coh_sampling g = params(0.0f), k1 = params(1.5f);
    coh__rng rng;
    int32_t tg = -1, tk = -2;
    k1.top_k = 1;
    fill_random(logits, V, 100 + (uint64_t)trial, trial & 1);
    coh__rng_seed(&rng, (uint64_t)trial);
    CHECK_EQ_INT(coh__sample(s, &g, logits, NULL, 0, NULL, &tg, NULL), COH_OK);
    CHECK_EQ_INT(coh__sample(s, &k1, logits, NULL, 0, &rng, &tk, NULL),
                 COH_OK);
    CHECK_EQ_INT(tg, tk);
  }
  coh__sampler_free(s);
}

static void test_top_k_support(void) {
  enum { V = 1000, K = 10, N = 20000 };
  static float logits[V];
  static long counts[V];
  coh__sampler *s = new_sampler(V);
  coh_sampling p = params(5.0f); /* flat-ish: many tokens would be drawn */
  int i, outside = 0, distinct = 0;
  REQUIRE(s != NULL);
  for (i = 0; i < V; i++) logits[i] = (float)((i * 7919) % V) / 100.0f;
  /* 7919 is coprime to 1000, so the values are a permutation of 0..9.99;
   * the top 10 are the ids with (i*7919)%V >= 990. */
  p.top_k = K;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 9, N, counts, V), 0);
  for (i = 0; i < V; i++) {
    int in_top = (i * 7919) % V >= V - K;
    if (counts[i] && !in_top) outside++;
    if (counts[i]) distinct++;
  }
  CHECK_EQ_INT(outside, 0);
  CHECK_EQ_INT(distinct, K);
  /* Tie at the boundary: ids 3 and 5 share the 2nd-best value; top_k = 2
   * must keep id 3 (lower id), never 5. */
  {
    float tl[8] = {0, 1, 0, 2, 0, 2, 3, 0};
    long c8[8];
    coh__sampler *s8 = new_sampler(8);
    coh_sampling q = params(1.0f);
    REQUIRE(s8 != NULL);
    q.top_k = 2;
    CHECK_EQ_INT(draw_counts(s8, &q, tl, 1, 2000, c8, 8), 0);
    CHECK(c8[6] > 0 && c8[3] > 0);
    CHECK_EQ_INT(c8[5], 0);
    CHECK_EQ_INT(c8[0] + c8[1] + c8[2] + c8[4] + c8[7], 0);
    coh__sampler_free(s8);
  }
  coh__sampler_free(s);
}

/* probs of the "known" distribution used below */
static const double KNOWN[8] = {0.30, 0.20, 0.15, 0.12, 0.10, 0.07, 0.04,
                                0.02};

static void known_logits(float *logits) {
  int i;
  for (i = 0; i < 8; i++) logits[i] = (float)log(KNOWN[i]);
}

static void test_top_p_nucleus(void) {
  float logits[8];
  long counts[8];
  double want[8] = {0};
  coh__sampler *s = new_sampler(8);
  coh_sampling p = params(1.0f);
  int i;
  REQUIRE(s != NULL);
  known_logits(logits);
  /* Cumulative: .30 .50 .65 .77 ... → top_p 0.6 keeps {0,1,2} (mass before
   * token 2 is 0.5 < 0.6; before token 3 it is 0.65 >= 0.6). */
  p.top_p = 0.6f;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 21, 100000, counts, 8), 0);
  for (i = 0; i < 3; i++) want[i] = KNOWN[i] / 0.65;
  CHECK(chi_square(counts, want, 8, 100000) < 40.0);
  /* A top_p below the top probability keeps only the top token. */
  p.top_p = 0.1f;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 22, 1000, counts, 8), 0);
  CHECK_EQ_INT(counts[0], 1000);
  /* Order in the vocabulary does not matter: reverse it. */
  {
    float rev[8];
    long rc[8];
    for (i = 0; i < 8; i++) rev[i] = logits[7 - i];
    p.top_p = 0.6f;
    CHECK_EQ_INT(draw_counts(s, &p, rev, 23, 20000, rc, 8), 0);
    CHECK_EQ_INT(rc[0] + rc[1] + rc[2] + rc[3] + rc[4], 0);
    CHECK(rc[5] > 0 && rc[6] > 0 && rc[7] > 0);
  }
  coh__sampler_free(s);
}

/* The boundaries, where a filter's comparison is exact (all weights here
 * are exactly 1 or 0, so every sum is exact): top-p keeps a token while the
 * mass before it is < top_p * Z, min-p keeps a weight >= min_p.  Four equal
 * logits and one far below: top_p 0.5 gives limit 2 of Z 4, so tokens 0 and
 * 1 are kept and token 2, with exactly 2 before it, is not; min_p 1 keeps
 * the four tied at weight 1.  Both with and without top-k (two code paths),
 * and each from a fresh sampler (so no state of an earlier call can help). */
static void test_filter_boundaries(void) {
  const float tl[5] = {0, 0, 0, 0, -1000};
  long c[5];
  int with_k;
  for (with_k = 0; with_k < 2; with_k++) {
    coh__sampler *s = new_sampler(5);
    coh_sampling p = params(1.0f);
    REQUIRE(s != NULL);
    p.top_k = with_k ? 4 : 0;
    p.top_p = 0.5f;
    CHECK_EQ_INT(draw_counts(s, &p, tl, 61, 4000, c, 5), 0);
    CHECK(c[0] > 1700 && c[1] > 1700);
    CHECK_EQ_INT(c[2] + c[3] + c[4], 0);
    coh__sampler_free(s);
    s = new_sampler(5);
    REQUIRE(s != NULL);
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    CHECK_EQ_INT(draw_counts(s, &p, tl, 62, 4000, c, 5), 0);
    CHECK(c[0] > 800 && c[1] > 800 && c[2] > 800 && c[3] > 800);
    CHECK_EQ_INT(c[4], 0);
    coh__sampler_free(s);
  }
}

static void test_min_p(void) {
  float logits[8];
  long counts[8];
  double want[8] = {0};
  coh__sampler *s = new_sampler(8);
  coh_sampling p = params(1.0f);
  int i;
  REQUIRE(s != NULL);
  known_logits(logits);
  /* min_p 0.3 → keep p >= 0.09: tokens 0..4. */
  p.min_p = 0.3f;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 31, 100000, counts, 8), 0);
  for (i = 0; i < 5; i++) want[i] = KNOWN[i] / 0.87;
  CHECK(chi_square(counts, want, 8, 100000) < 40.0);
  /* min_p composes with top_k (prefix of the ranked list). */
  p.top_k = 3;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 32, 20000, counts, 8), 0);
  CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
  CHECK_EQ_INT(counts[3] + counts[4] + counts[5] + counts[6] + counts[7], 0);
  p.top_k = 0;
  p.min_p = 1.0f;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 33, 1000, counts, 8), 0);
  CHECK_EQ_INT(counts[0], 1000);
  coh__sampler_free(s);
}

static void test_repetition_penalty(void) {
  coh__sampler *s = new_sampler(4);
  coh_sampling p = params(0.0f);
  int32_t t = -1;
  REQUIRE(s != NULL);
  p.repetition_penalty = 1.5f;
  {
    float l[4] = {2.0f, 1.9f, -1.0f, 0.0f};
    float copy[4];
    int32_t h[1] = {0};
    memcpy(copy, l, sizeof l);
    CHECK_EQ_INT(coh__sample(s, &p, l, h, 0, NULL, &t, NULL), COH_OK);
    CHECK_EQ_INT(t, 0); /* empty history: no penalty */
    CHECK_EQ_INT(coh__sample(s, &p, l, h, 1, NULL, &t, NULL), COH_OK);
    CHECK_EQ_INT(t, 1); /* 2.0/1.5 < 1.9 */
    CHECK(memcmp(l, copy, sizeof l) == 0);
  }
  {
    /* Negative logits are multiplied: -1 * 1.5 = -1.5 < -1.2. */
    float l[4] = {-1.0f, -1.2f, -5.0f, -9.0f};
    int32_t h[2] = {2, 0};
    CHECK_EQ_INT(coh__sample(s, &p, l, h, 2, NULL, &t, NULL), COH_OK);
    CHECK_EQ_INT(t, 1);
  }
  {
    /* Repeated ids are penalised once: 2.0/1.2 = 1.67 > 1.5 (three times
     * would give 1.16 < 1.5). */
    float l[4] = {2.0f, 1.5f, 0.0f, 0.0f};
    int32_t h[5] = {0, 0, 3, 0, 3};
    p.repetition_penalty = 1.2f;
    CHECK_EQ_INT(coh__sample(s, &p, l, h, 5, NULL, &t, NULL), COH_OK);
    CHECK_EQ_INT(t, 0);
    /* and marks do not leak into the next call */
    p.repetition_penalty = 1.0f;
    CHECK_EQ_INT(coh__sample(s, &p, l, h, 5, NULL, &t, NULL), COH_OK);
    CHECK_EQ_INT(t, 0);
  }
  {
    /* The penalty also shapes the sampled distribution: with token 0
     * penalised to probability ~0 it should never appear. */
    float l[4] = {20.0f, 1.0f, 1.0f, 1.0f};
    int32_t h[1] = {0};
    coh__rng rng;
    int i, zero = 0;
    p.temperature = 1.0f;
    p.repetition_penalty = 1000.0f; /* 20 → 0.02 */
    coh__rng_seed(&rng, 8);
    for (i = 0; i < 2000; i++) {
      CHECK_EQ_INT(coh__sample(s, &p, l, h, 1, &rng, &t, NULL), COH_OK);
      if (t == 0) zero++;
    }
    /* p(0) = e^0.02/(e^0.02+3e) ≈ 0.11: seen but far from the unpenalised
     * ~1.0. */
    CHECK(zero > 100 && zero < 350);
  }
  coh__sampler_free(s);
}

static void test_seed_determinism(void) {
  enum { V = 5000, STEPS = 64 };
  static float logits[V];
  coh__sampler *s = new_sampler(V);
  coh_sampling p = params(1.0f);
  int32_t a[STEPS], b[STEPS], c[STEPS];
  int mode, i, diff;
  REQUIRE(s != NULL);
  fill_random(logits, V, 77, 0);
  for (mode = 0; mode < 4; mode++) {
    coh__rng ra, rb, rc;
    coh_sampling_default(&p);
    p.temperature = 1.0f;
    if (mode == 1) p.top_k = 50;
    if (mode == 2) p.top_p = 0.9f;
    if (mode == 3) {
      p.top_k = 500;
      p.top_p = 0.8f;
      p.min_p = 0.05f;
    }
    coh__rng_seed(&ra, 1000);
    coh__rng_seed(&rb, 1000);
    coh__rng_seed(&rc, 1001);
    for (i = 0; i < STEPS; i++) {
      CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &ra, &a[i], NULL), 0);
      CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rb, &b[i], NULL), 0);
      CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rc, &c[i], NULL), 0);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    for (diff = 0, i = 0; i < STEPS; i++) diff += a[i] != c[i];
    CHECK(diff > STEPS / 2);
  }
  coh__sampler_free(s);
}

static void test_distribution_matches(void) {
  float logits[8];
  long counts[8];
  double want[8];
  coh__sampler *s = new_sampler(8);
  coh_sampling p = params(1.0f);
  int i;
  const long N = 200000;
  double z;
  REQUIRE(s != NULL);
  known_logits(logits);
  /* 7 degrees of freedom: P(chi2 > 40) ≈ 1e-6, so a correct sampler passes
   * with a fixed seed and a wrong one (any probability off by ~2%) fails. */
  CHECK_EQ_INT(draw_counts(s, &p, logits, 41, N, counts, 8), 0);
  CHECK(chi_square(counts, KNOWN, 8, N) < 40.0);
  /* Same distribution through the ranked (top-k) path, k = vocab - 1. */
  p.top_k = 7;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 42, N, counts, 8), 0);
  for (i = 0; i < 8; i++) want[i] = i < 7 ? KNOWN[i] / 0.98 : 0.0;
  CHECK(chi_square(counts, want, 8, N) < 40.0);
  /* Temperature 2: p ∝ sqrt(p0). */
  p.top_k = 0;
  p.temperature = 2.0f;
  for (z = 0, i = 0; i < 8; i++) z += sqrt(KNOWN[i]);
  for (i = 0; i < 8; i++) want[i] = sqrt(KNOWN[i]) / z;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 43, N, counts, 8), 0);
  CHECK(chi_square(counts, want, 8, N) < 40.0);
  /* Infinite temperature: uniform over the finite logits. */
  p.temperature = INFINITY;
  logits[6] = -INFINITY;
  logits[7] = NAN;
  for (i = 0; i < 8; i++) want[i] = i < 6 ? 1.0 / 6.0 : 0.0;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 44, N, counts, 8), 0);
  CHECK(chi_square(counts, want, 8, N) < 40.0);
  /* +inf logits: uniform over them. */
  p.temperature = 1.0f;
  known_logits(logits);
  logits[2] = INFINITY;
  logits[5] = INFINITY;
  for (i = 0; i < 8; i++) want[i] = (i == 2 || i == 5) ? 0.5 : 0.0;
  CHECK_EQ_INT(draw_counts(s, &p, logits, 45, N / 10, counts, 8), 0);
  CHECK(chi_square(counts, want, 8, N / 10) < 40.0);
  coh__sampler_free(s);
}

static void test_matches_reference(void) {
  enum { V = 4000 };
  static float logits[V];
  coh__sampler *s = new_sampler(V);
  coh__rng pr;
  int trial, mismatches = 0;
  REQUIRE(s != NULL);
  coh__rng_seed(&pr, 4242);
  for (trial = 0; trial < 300; trial++) {
    coh_sampling p = params(0.3f + (float)coh__rng_uniform(&pr) * 2.0f);
    coh__rng rng, copy;
    int32_t t = -1, want;
    uint64_t mode = coh__rng_next(&pr);
    fill_random(logits, V, 5000 + (uint64_t)trial, trial % 3 == 0);
    if (trial % 5 == 0) logits[trial % V] = NAN;
    if (mode & 1) p.top_k = 1 + (int32_t)(coh__rng_next(&pr) % 300);
    if (mode & 2) p.top_p = 0.05f + 0.9f * (float)coh__rng_uniform(&pr);
    if (mode & 4) p.min_p = 0.3f * (float)coh__rng_uniform(&pr);
    if ((mode & 24) == 8) p.top_k = V + 10;
    coh__rng_seed(&rng, (uint64_t)trial);
    copy = rng;
    CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rng, &t, NULL), COH_OK);
    want = ref_pick(&p, logits, V, coh__rng_uniform(&copy));
    if (t != want) mismatches++;
  }
  CHECK_EQ_INT(mismatches, 0);
  coh__sampler_free(s);
}

/* Grammar mask (step 0): a masked-out token is exactly a -inf logit, before
 * the repetition penalty, on the greedy and the sampling path; the rng moves
 * the same way; every pick is an allowed token. */
static void test_mask(void) {
  enum { V = 3000, W = (V + 31) / 32 };
  static float logits[V], inf_logits[V];
  static uint32_t mask[W];
  static const int32_t hist[] = {5, 17, 17, 2999, 40};
  coh__sampler *s = new_sampler(V);
  coh__rng pr;
  int trial, mismatches = 0, disallowed = 0;
  REQUIRE(s != NULL);
  coh__rng_seed(&pr, 777);
  for (trial = 0; trial < 400; trial++) {
    coh_sampling p = params(trial % 4 == 0 ? 0.0f : 0.2f + (float)coh__rng_uniform(&pr) * 2.0f);
    coh__rng r1, r2;
    int32_t t1 = -1, t2 = -2;
    uint64_t mode = coh__rng_next(&pr);
    size_t i;
    /* density from one allowed token in ~3000 to nearly all */
    uint64_t keep = 1 + coh__rng_next(&pr) % (trial % 7 == 0 ? 1000 : 4);
    fill_random(logits, V, 9000 + (uint64_t)trial, trial % 3 == 0);
    memset(mask, 0, sizeof mask);
    for (i = 0; i < V; i++) {
      int on = coh__rng_next(&pr) % (keep * (trial % 7 == 0 ? 3 : 1)) == 0;
      if (i == (size_t)(trial * 13) % V) on = 1; /* at least one */
      if (on) mask[i >> 5] |= 1u << (i & 31);
      inf_logits[i] = on ? logits[i] : -INFINITY;
    }
    if (mode & 1) p.top_k = 1 + (int32_t)(coh__rng_next(&pr) % 50);
    if (mode & 2) p.top_p = 0.05f + 0.9f * (float)coh__rng_uniform(&pr);
    if (mode & 4) p.min_p = 0.3f * (float)coh__rng_uniform(&pr);
    if (mode & 8) p.repetition_penalty = 0.5f + 2.0f * (float)coh__rng_uniform(&pr);
    coh__rng_seed(&r1, (uint64_t)trial);
    r2 = r1;
    CHECK_EQ_INT(coh__sample_masked(s, &p, logits, mask, hist, 5, &r1, &t1, NULL), COH_OK);
    CHECK_EQ_INT(coh__sample(s, &p, inf_logits, hist, 5, &r2, &t2, NULL), COH_OK);
    if (t1 != t2 || memcmp(&r1, &r2, sizeof r1)) mismatches++;
    if (t1 < 0 || t1 >= V || !(mask[t1 >> 5] >> (t1 & 31) & 1)) disallowed++;
  }
  CHECK_EQ_INT(mismatches, 0);
  CHECK_EQ_INT(disallowed, 0);
  {
    /* greedy: the best allowed token, not the best token */
    coh_sampling p = params(0.0f);
    int32_t t = -1;
    size_t i;
    for (i = 0; i < V; i++) logits[i] = (float)i; /* best is V-1 */
    memset(mask, 0, sizeof mask);
    mask[0] = 1u << 7 | 1u << 3;
    CHECK_EQ_INT(coh__sample_masked(s, &p, logits, mask, NULL, 0, NULL, &t, NULL), COH_OK);
    CHECK_EQ_INT(t, 7);
    /* a penalty cannot bring back a masked token with a huge logit: mask
     * before penalty (penalty 0.01 would make V-1's logit 300000) */
    p.repetition_penalty = 0.01f;
    {
      const int32_t h[] = {V - 1};
      CHECK_EQ_INT(coh__sample_masked(s, &p, logits, mask, h, 1, NULL, &t, NULL), COH_OK);
      CHECK_EQ_INT(t, 7);
    }
    /* nothing allowed, or only -inf/NaN allowed: a clear error */
    memset(mask, 0, sizeof mask);
    {
      coh_err e;
      t = -1;
      CHECK_EQ_INT(coh__sample_masked(s, &p, logits, mask, NULL, 0, NULL, &t, &e), COH_EINVAL);
      CHECK(strstr(e.msg, "mask") != NULL);
      CHECK_EQ_INT(t, -1);
      logits[9] = NAN;
      mask[0] = 1u << 9;
      p = params(1.0f);
      coh__rng_seed(&pr, 1);
      CHECK_EQ_INT(coh__sample_masked(s, &p, logits, mask, NULL, 0, &pr, &t, &e), COH_EINVAL);
    }
  }
  coh__sampler_free(s);
}

/* Counting allocator: coh__sample must not allocate. */
static long alloc_calls;
static int alloc_fail;
static void *count_malloc(size_t n) {
  alloc_calls++;
  return alloc_fail ? NULL : malloc(n);
}
static void *count_realloc(void *p, size_t n) {
  alloc_calls++;
  return alloc_fail ? NULL : realloc(p, n);
}
static void *count_calloc(size_t c, size_t n) {
  alloc_calls++;
  return alloc_fail ? NULL : calloc(c, n);
}

static void test_no_allocation_and_oom(void) {
  enum { V = 32000 };
  static float logits[V];
  static const float temps[3] = {0.0f, 0.8f, 1.2f};
  coh__sampler *s = NULL;
  int32_t hist[4] = {1, 2, 3, 31999};
  coh_err e;
  int i;
  CHECK_EQ_INT(coh_replace_allocator(count_malloc, count_realloc,
                                     count_calloc, free),
               COH_OK);
  alloc_fail = 1;
  CHECK_EQ_INT(coh__sampler_new(V, &s, &e), COH_ENOMEM);
  CHECK(s == NULL);
  alloc_fail = 0;
  if (coh__sampler_new(V, &s, &e) == COH_OK) {
    fill_random(logits, V, 3, 0);
    alloc_calls = 0;
    for (i = 0; i < 12; i++) {
      coh_sampling p = params(temps[i % 3]);
      coh__rng rng;
      int32_t t;
      p.repetition_penalty = 1.1f;
      if (i & 4) p.top_k = 40;
      if (i & 8) p.top_p = 0.9f;
      coh__rng_seed(&rng, (uint64_t)i);
      CHECK_EQ_INT(coh__sample(s, &p, logits, hist, 4, &rng, &t, NULL),
                   COH_OK);
    }
    CHECK_EQ_INT(alloc_calls, 0);
    coh__sampler_free(s);
  } else {
    CHECK(!"sampler_new failed");
  }
  coh_replace_allocator(malloc, realloc, calloc, free);
}

/* A large-vocab smoke test of the efficient paths (and their agreement). */
static void test_large_vocab(void) {
  enum { V = 150000 };
  static float logits[V];
  coh__sampler *s = new_sampler(V);
  coh_sampling p = params(0.8f);
  coh__rng rng;
  int i;
  REQUIRE(s != NULL);
  CHECK_EQ_INT(coh__sampler_vocab(s), V);
  fill_random(logits, V, 9, 0);
  for (i = 0; i < 5; i++) logits[1000 * i + 7] = 30.0f - (float)i;
  p.top_k = 40;
  p.top_p = 0.95f;
  coh__rng_seed(&rng, 1);
  for (i = 0; i < 20; i++) {
    int32_t t = -1;
    CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rng, &t, NULL), COH_OK);
    /* the five planted logits hold nearly all the mass */
    CHECK(t >= 7 && t <= 4007 && t % 1000 == 7);
  }
  p.top_k = 0;
  for (i = 0; i < 20; i++) {
    int32_t t = -1;
    CHECK_EQ_INT(coh__sample(s, &p, logits, NULL, 0, &rng, &t, NULL), COH_OK);
    CHECK(t >= 7 && t <= 4007 && t % 1000 == 7);
  }
  coh__sampler_free(s);
}

/* ---- fp16 --------------------------------------------------------------- */

/* Exact value of a finite half, computed arithmetically. */
static double ref_half_value(uint16_t h) {
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}

static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static float bitsf(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static void test_half_all(void) {
  uint32_t i;
  int bad_value = 0, bad_trip = 0, bad_nan = 0;
  static uint16_t all[65536];
  static float conv[65536];
  for (i = 0; i < 65536; i++) {
    uint16_t h = (uint16_t)i;
    float f = coh__half_to_float(h);
    int e = (h >> 10) & 0x1f;
    all[i] = h;
    if (e == 0x1f && (h & 0x3ff)) {
      /* NaN: stays NaN, keeps sign and payload */
      if (!isnan(f) || (signbit(f) != 0) != ((h & 0x8000) != 0) ||
          ((fbits(f) >> 13) & 0x3ff) != (h & 0x3ffu))
        bad_nan++;
    } else if (e == 0x1f) {
      if (!isinf(f) || (f < 0) != ((h & 0x8000) != 0)) bad_value++;
    } else if ((double)f != ref_half_value(h) ||
               (signbit(f) != 0) != ((h & 0x8000) != 0)) {
      bad_value++;
    }
    if (coh__float_to_half(f) != h) bad_trip++;
  }
  CHECK_EQ_INT(bad_value, 0);
  CHECK_EQ_INT(bad_nan, 0);
  CHECK_EQ_INT(bad_trip, 0);
  coh__half_to_float_array(all, conv, 65536);
  for (i = 0; i < 65536; i++)
    if (fbits(conv[i]) != fbits(coh__half_to_float((uint16_t)i))) break;
  CHECK_EQ_INT(i, 65536);
}

static void test_half_known(void) {
  CHECK_EQ_INT(coh__float_to_half(1.0f), 0x3c00);
  CHECK_EQ_INT(coh__float_to_half(-2.0f), 0xc000);
  CHECK_EQ_INT(coh__float_to_half(0.0f), 0x0000);
  CHECK_EQ_INT(coh__float_to_half(-0.0f), 0x8000);
  CHECK_EQ_INT(coh__float_to_half(65504.0f), 0x7bff);
  CHECK_EQ_INT(coh__float_to_half(65519.996f), 0x7bff);
  CHECK_EQ_INT(coh__float_to_half(65520.0f), 0x7c00);
  CHECK_EQ_INT(coh__float_to_half(1e10f), 0x7c00);
  CHECK_EQ_INT(coh__float_to_half(-INFINITY), 0xfc00);
  CHECK_EQ_INT(coh__float_to_half(0.1f), 0x2e66);
  CHECK_EQ_INT(coh__float_to_half(0.333333333f), 0x3555);
  CHECK_EQ_INT(coh__float_to_half(ldexpf(1.0f, -14)), 0x0400);
  CHECK_EQ_INT(coh__float_to_half(ldexpf(1.0f, -24)), 0x0001);
  CHECK_EQ_INT(coh__float_to_half(ldexpf(1.0f, -25)), 0x0000); /* tie→even */
  CHECK_EQ_INT(coh__float_to_half(ldexpf(1.0001f, -25)), 0x0001);
  CHECK_EQ_INT(coh__float_to_half(ldexpf(3.0f, -25)), 0x0002); /* 1.5 → 2 */
  CHECK_EQ_INT(coh__float_to_half(ldexpf(5.0f, -25)), 0x0002); /* 2.5 → 2 */
  CHECK_EQ_INT(coh__float_to_half(ldexpf(1.0f, -30)), 0x0000);
  CHECK_EQ_INT(coh__float_to_half(1.0f + ldexpf(1.0f, -11)), 0x3c00);
  CHECK_EQ_INT(coh__float_to_half(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
  /* just below min normal rounds up into it */
  CHECK_EQ_INT(coh__float_to_half(ldexpf(1.0f, -14) - ldexpf(1.0f, -26)),
               0x0400);
  CHECK(isnan(coh__half_to_float(coh__float_to_half(NAN))));
  /* A float NaN whose payload lives only in the low bits stays a NaN. */
  {
    uint16_t h = coh__float_to_half(bitsf(0xff800001u));
    CHECK((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0 && (h & 0x8000));
  }
  CHECK(coh__half_to_float(0x3c00) == 1.0f);
  CHECK(coh__half_to_float(0xc000) == -2.0f);
  CHECK(coh__half_to_float(0x7bff) == 65504.0f);
  CHECK(coh__half_to_float(0x0001) == ldexpf(1.0f, -24));
  CHECK(coh__half_to_float(0x03ff) == ldexpf(1023.0f, -24));
  CHECK(coh__half_to_float(0x7c00) == INFINITY);
  CHECK(signbit(coh__half_to_float(0x8000)) &&
        coh__half_to_float(0x8000) == 0.0f);
}

/* Every float→half result must be the nearest half, ties to even: checked
 * against the neighbouring halfs' exact values on a stride of all floats. */
static void test_half_rounding_sweep(void) {
  uint64_t u;
  long bad = 0;
  for (u = 0; u < 0x100000000ULL; u += 4093) {
    float f = bitsf((uint32_t)u);
    uint16_t h;
    double a, best;
    if (isnan(f)) continue;
    h = coh__float_to_half(f);
    a = fabs((double)f);
    if (a >= 65520.0) {
      if ((h & 0x7fff) != 0x7c00) bad++;
      continue;
    }
    best = fabs(ref_half_value(h & 0x7fff));
    if ((h & 0x7c00) == 0x7c00) {
      bad++;
      continue;
    }
    {
      uint16_t mag = h & 0x7fff;
      double err = fabs(a - best);
      double lo = mag > 0 ? fabs(a - ref_half_value((uint16_t)(mag - 1)))
                          : INFINITY;
      double hi = mag < 0x7bff
                      ? fabs(a - ref_half_value((uint16_t)(mag + 1)))
                      : INFINITY;
      if (err > lo || err > hi) bad++;
      else if ((err == lo || err == hi) && (mag & 1)) bad++; /* tie → even */
      if (((h & 0x8000) != 0) != (signbit(f) != 0)) bad++;
    }
  }
  CHECK_EQ_INT(bad, 0);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_validate);
  RUN(test_rng_known_answers);
  RUN(test_seed_derive);
  RUN(test_greedy);
  RUN(test_all_inf);
  RUN(test_bad_args);
  RUN(test_temperature_limit);
  RUN(test_top_k_one_is_greedy);
  RUN(test_top_k_support);
  RUN(test_top_p_nucleus);
  RUN(test_min_p);
  RUN(test_filter_boundaries);
  RUN(test_repetition_penalty);
  RUN(test_seed_determinism);
  RUN(test_distribution_matches);
  RUN(test_matches_reference);
  RUN(test_mask);
  RUN(test_no_allocation_and_oom);
  RUN(test_large_vocab);
  RUN(test_half_all);
  RUN(test_half_known);
  RUN(test_half_rounding_sweep);
  return TEST_MAIN_END();
}
