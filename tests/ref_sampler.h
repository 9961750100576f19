/* ref_sampler.h — an independent reference of sampling.h's rules, for tests
 * only: splitmix64 and xoshiro256** as published by Vigna, and the sampler's
 * documented pipeline written out the slow, obvious way (full sort with a
 * total comparator, the documented summation orders).  test_sampler.c checks
 * coh__sample against it on random logits; test_engine_sampling.c checks the
 * engine's tokens against it on the engine's own logits.  Nothing here is
 * shared with src/infer/sampler.c, which is the point.
 *
 * Everything is static inline so that a test using only part of it compiles
 * without unused-function warnings. */
#ifndef COH_TEST_REF_SAMPLER_H
#define COH_TEST_REF_SAMPLER_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "cohort/sampling.h"

/* splitmix64 as published: x += golden; z = x; three mixing steps. */
static inline uint64_t ref_splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** 1.0 reference step. */
static inline uint64_t ref_xoshiro(uint64_t s[4]) {
  const uint64_t result = ref_rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = ref_rotl(s[3], 45);
  return result;
}

/* A generator seeded the documented way: four splitmix64 outputs. */
typedef struct ref_rng {
  uint64_t s[4];
} ref_rng;

static inline void ref_seed(ref_rng *r, uint64_t seed) {
  int i;
  for (i = 0; i < 4; i++) r->s[i] = ref_splitmix64(&seed);
}

/* A double in [0, 1) from the top 53 bits. */
static inline double ref_uniform(ref_rng *r) {
  return (double)(ref_xoshiro(r->s) >> 11) * 0x1.0p-53;
}

typedef struct ref_cand {
  float x;
  int32_t id;
} ref_cand;

/* Best logit first; equal logits by lower id. */
static inline int ref_cmp(const void *pa, const void *pb) {
  const ref_cand *a = pa, *b = pb;
  if (a->x != b->x) return a->x > b->x ? -1 : 1;
  return a->id < b->id ? -1 : 1;
}

static inline double ref_weight(float x, float m, double t) {
  double a;
  if (x == m) return 1.0;
  if (isinf(m)) return 0.0;
  a = ((double)x - (double)m) / t;
  return a < -200.0 ? 0.0 : (double)expf((float)a);
}

/* Temperature → top-k → softmax → top-p → min-p → renormalise → inverse CDF
 * at u (best first when a filter is active, else in id order).  NaN and -inf
 * logits are never candidates.  p->temperature must be > 0.  -1 when nothing
 * can be drawn or memory runs out. */
static inline int32_t ref_pick(const coh_sampling *p, const float *logits, size_t vocab,
                               double u) {
  ref_cand *c = malloc(vocab * sizeof *c);
  double *w = malloc(vocab * sizeof *w);
  size_t n = 0, i, k, nk;
  float m = -INFINITY;
  double z = 0, cum = 0, target;
  int32_t out = -1;
  if (!c || !w) goto done;
  for (i = 0; i < vocab; i++) {
    if (isnan(logits[i]) || logits[i] == -INFINITY) continue;
    c[n].x = logits[i];
    c[n].id = (int32_t)i;
    if (logits[i] > m) m = logits[i];
    n++;
  }
  k = p->top_k > 0 && (size_t)p->top_k < n ? (size_t)p->top_k : n;
  if (k == n && p->top_p >= 1.0f && p->min_p <= 0.0f) {
    for (i = 0; i < n; i++) z += (w[i] = ref_weight(c[i].x, m, p->temperature));
    nk = n;
  } else {
    if (k == n) /* normaliser summed in id order before ranking */
      for (i = 0; i < n; i++) z += ref_weight(c[i].x, m, p->temperature);
    qsort(c, n, sizeof *c, ref_cmp);
    for (i = 0; i < k; i++) w[i] = ref_weight(c[i].x, m, p->temperature);
    if (k < n)
      for (z = 0, i = 0; i < k; i++) z += w[i];
    for (nk = 0; nk < k; nk++) {
      if (p->top_p < 1.0f && cum >= (double)p->top_p * z) break;
      if (p->min_p > 0.0f && w[nk] < (double)p->min_p) break;
      cum += w[nk];
    }
    for (z = 0, i = 0; i < nk; i++) z += w[i];
  }
  target = u * z;
  for (cum = 0, i = 0; i < nk; i++) {
    cum += w[i];
    if (cum > target) {
      out = c[i].id;
      break;
    }
  }
  if (out < 0) /* rounding: last non-zero weight */
    for (i = nk; i-- > 0;)
      if (w[i] > 0) {
        out = c[i].id;
        break;
      }
done:
  free(c);
  free(w);
  return out;
}

/* The whole rule set: the repetition penalty over the distinct history ids,
 * then greedy (lowest id on ties, no draw) or ref_pick with one draw. */
static inline int32_t ref_sample_history(const coh_sampling *p, const float *logits0,
                                         size_t vocab, const int32_t *hist, size_t n_hist,
                                         ref_rng *rng) {
  float *x = malloc(vocab * sizeof *x);
  unsigned char *seen = calloc(vocab, 1);
  size_t i;
  int32_t out = -1;
  if (!x || !seen) goto done;
  for (i = 0; i < vocab; i++) x[i] = isnan(logits0[i]) ? -INFINITY : logits0[i];
  if (p->repetition_penalty != 1.0f)
    for (i = 0; i < n_hist; i++) {
      int32_t t = hist[i];
      if (t < 0 || (size_t)t >= vocab || seen[t]) continue;
      seen[t] = 1;
      x[t] = x[t] > 0 ? x[t] / p->repetition_penalty : x[t] * p->repetition_penalty;
    }
  if (!(p->temperature > 0)) {
    for (i = 0; i < vocab; i++)
      if (out < 0 || x[i] > x[out]) out = (int32_t)i;
    goto done;
  }
  out = ref_pick(p, x, vocab, ref_uniform(rng));
done:
  free(x);
  free(seen);
  return out;
}

#endif
