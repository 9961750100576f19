/*
 * sampler.c — next-token selection, the per-request random stream, and fp16
 * conversion.
 *
 * Order of operations in coh__sample (fixed; part of the determinism
 * contract):
 *
 *   0. grammar mask (coh__sample_masked, constrained decoding): a token whose
 *      bit is clear counts as -inf, before anything else, on the greedy and
 *      the sampling path alike, so no later filter can bring it back and the
 *      filters rank only allowed tokens.
 *   1. repetition penalty: for every distinct id in the history, a logit
 *      > 0 is divided by the penalty, any other logit multiplied by it
 *      (CTRL, Keskar et al. 2019).  NaN logits are treated as -inf first.
 *   2. temperature <= 0: greedy.  One pass, argmax, ties → lowest id; the
 *      filters below are irrelevant to the argmax and skipped; no rng draw.
 *      Otherwise z_i = (x_i - x_max) / T in double (subtracting the max
 *      first keeps tiny temperatures finite: the max has z = 0 and the
 *      rest underflow to weight 0, which is the greedy limit).
 *   3. top-k: the k best candidates under the total order
 *      "higher logit first, then lower id" (heap selection, O(n log k)).
 *   4. softmax: weights w_i = exp(z_i) (w_max = 1), normaliser Z = sum w_i.
 *   5. top-p: walking in that order, keep a token while the mass before it
 *      is < top_p * Z (so at least one token, the smallest such prefix).
 *   6. min-p: keep a token while w_i >= min_p (w_i / w_max = p_i / p_max).
 *   7. renormalise over the kept tokens; 8. one uniform draw u in [0, 1);
 *   9. inverse CDF: the first kept token whose cumulative weight exceeds
 *      u * Z_kept.
 *
 * The CDF walk order: when any of top-k / top-p / min-p is active, the kept
 * tokens are walked in the total order above (they had to be ranked
 * anyway); when none is active nothing is sorted and the tokens are walked
 * in id order.  Both are deterministic; they merely map u to tokens
 * differently.
 *
 * Efficiency: top-k selects with a bounded min-heap, then heap-sorts only
 * the k survivors.  Top-p/min-p without top-k heapify all candidates in
 * O(n) and pop only as many as the nucleus needs.  The greedy path is a
 * single pass.  All orderings use a comparator that is total (ids are
 * unique), so no sort instability can change a result.
 */
#include "infer/sampler.h"

#include <math.h>
#include <string.h>

#include "util/util_int.h"

/* ---- sampling parameters ------------------------------------------------ */

void coh_sampling_default(coh_sampling *s) {
  s->temperature = 0.0f;
  s->top_k = 0;
  s->top_p = 1.0f;
  s->min_p = 0.0f;
  s->repetition_penalty = 1.0f;
  s->seed = 0;
}

int coh_sampling_validate(const coh_sampling *s, coh_err *err) {
  if (s == NULL) return coh__err(err, COH_EINVAL, "sampling: NULL parameters");
  /* Comparisons are written so that NaN fails them. */
  if (isnan(s->temperature) || (isinf(s->temperature) && s->temperature < 0))
    return coh__err(err, COH_EINVAL,
                    "sampling.temperature: %g is not valid (NaN and -inf are "
                    "refused; <= 0 means greedy)",
                    (double)s->temperature);
  if (s->top_k < 0)
    return coh__err(err, COH_EINVAL,
                    "sampling.top_k: %ld is negative (0 turns it off)",
                    (long)s->top_k);
  if (!(s->top_p > 0.0f && s->top_p <= 1.0f))
    return coh__err(err, COH_EINVAL,
                    "sampling.top_p: %g is not in (0, 1] (1 turns it off)",
                    (double)s->top_p);
  if (!(s->min_p >= 0.0f && s->min_p <= 1.0f))
    return coh__err(err, COH_EINVAL,
                    "sampling.min_p: %g is not in [0, 1] (0 turns it off)",
                    (double)s->min_p);
  if (!(s->repetition_penalty > 0.0f) || isinf(s->repetition_penalty))
    return coh__err(err, COH_EINVAL,
                    "sampling.repetition_penalty: %g is not a positive finite "
                    "number (1 turns it off)",
                    (double)s->repetition_penalty);
  return COH_OK;
}

/* ---- sampler ------------------------------------------------------------ */

typedef struct cand {
  float x; /* penalised logit, never NaN or -inf */
  int32_t id;
} cand;

struct coh__sampler {
  size_t vocab;
  cand *c;       /* [vocab] candidates */
  cand *kept;    /* [vocab] ranked survivors (top-p/min-p without top-k) */
  double *w;     /* [vocab] weights of the ranked survivors */
  uint8_t *seen; /* [(vocab+7)/8] history bitmap; all zero between calls */
};

int coh__sampler_new(size_t vocab, coh__sampler **out, coh_err *err) {
  coh__sampler *s;
  *out = NULL;
  if (vocab == 0 || vocab > (size_t)INT32_MAX ||
      vocab > SIZE_MAX / sizeof(double))
    return coh__err(err, COH_EINVAL,
                    "sampler: vocabulary size %zu is not in 1..%ld", vocab,
                    (long)INT32_MAX);
  s = coh__calloc(1, sizeof *s);
  if (s == NULL) goto fail;
  s->vocab = vocab;
  s->c = coh__malloc(vocab * sizeof *s->c);
  if (s->c == NULL) goto fail;
  s->kept = coh__malloc(vocab * sizeof *s->kept);
  if (s->kept == NULL) goto fail;
  s->w = coh__malloc(vocab * sizeof *s->w);
  if (s->w == NULL) goto fail;
  s->seen = coh__calloc((vocab + 7) / 8, 1);
  if (s->seen == NULL) goto fail;
  *out = s;
  return COH_OK;
fail:
  coh__sampler_free(s);
  return coh__err(err, COH_ENOMEM, "sampler: out of memory for a vocabulary "
                                   "of %zu tokens", vocab);
}

void coh__sampler_free(coh__sampler *s) {
  if (s == NULL) return;
  coh__free(s->c);
  coh__free(s->kept);
  coh__free(s->w);
  coh__free(s->seen);
  coh__free(s);
}

size_t coh__sampler_vocab(const coh__sampler *s) { return s->vocab; }

/* The total order of candidates: a ranks before b. */
static int better(cand a, cand b) {
  return a.x > b.x || (a.x == b.x && a.id < b.id);
}

/* Min-heap on "better" (root = the worst): sift h[i] down in h[0..n). */
static void sift_down_min(cand *h, size_t n, size_t i) {
  cand v = h[i];
  for (;;) {
    size_t l = 2 * i + 1, m;
    if (l >= n) break;
    m = l;
    if (l + 1 < n && better(h[m], h[l + 1])) m = l + 1; /* the worse child */
    if (!better(v, h[m])) break;
    h[i] = h[m];
    i = m;
  }
  h[i] = v;
}

/* Max-heap on "better" (root = the best). */
static void sift_down_max(cand *h, size_t n, size_t i) {
  cand v = h[i];
  for (;;) {
    size_t l = 2 * i + 1, m;
    if (l >= n) break;
    m = l;
    if (l + 1 < n && better(h[l + 1], h[l])) m = l + 1; /* the better child */
    if (!better(h[m], v)) break;
    h[i] = h[m];
    i = m;
  }
  h[i] = v;
}

/* Moves the k best of c[0..n) into c[0..k), ranked best first. */
static void select_top_k(cand *c, size_t n, size_t k) {
  size_t i;
  for (i = k / 2; i-- > 0;) sift_down_min(c, k, i);
  for (i = k; i < n; i++) {
    if (better(c[i], c[0])) {
      c[0] = c[i];
      sift_down_min(c, k, 0);
    }
  }
  /* Heap sort: repeatedly move the worst to the end of the shrinking heap,
   * which leaves c[0..k) ranked best first. */
  for (i = k; i > 1; i--) {
    cand t = c[0];
    c[0] = c[i - 1];
    c[i - 1] = t;
    sift_down_min(c, i - 1, 0);
  }
}

/* Weight exp((x - m) / T) of a candidate, m the largest penalised logit.
 * x == m gives exactly 1 (also when both are +inf); with m = +inf any finite
 * x gives 0.  The exponent is formed in double (no overflow for any float
 * x, m and T > 0) and exponentiated in single precision: expf is about twice
 * as fast as exp, which matters at 150k tokens a step, and its ~1 ulp error
 * is far below anything sampling can observe.  Sums stay in double. */
static double weight(float x, float m, double t) {
  double a;
  if (x == m) return 1.0;
  if (isinf(m)) return 0.0;
  a = ((double)x - (double)m) / t;
  /* expf underflows to 0 below about -104; the early return also keeps the
   * double → float conversion in range. */
  if (a < -200.0) return 0.0;
  return (double)expf((float)a);
}

static float penalise(float x, float pen) { return x > 0 ? x / pen : x * pen; }

/* Inverse-CDF pick over weights w[0..n) (total z) with one draw u: the index
 * of the first entry whose cumulative weight exceeds u * z.  Rounding can
 * leave u * z at or past the last cumulative sum; then the last entry with
 * non-zero weight is taken, so a zero-weight token is never returned. */
static size_t pick(const double *w, size_t n, double z, double u) {
  double target = u * z, cum = 0.0;
  size_t i, last = 0;
  for (i = 0; i < n; i++) {
    if (w[i] > 0.0) last = i;
    cum += w[i];
    if (cum > target) return i;
  }
  return last;
}

int coh__sample(coh__sampler *s, const coh_sampling *p, const float *logits,
                const int32_t *history, size_t n_history, coh__rng *rng,
                int32_t *out_token, coh_err *err) {
  return coh__sample_masked(s, p, logits, NULL, history, n_history, rng,
                            out_token, err);
}

/* Whether bit i of the allowed-token mask is clear (NULL: all allowed). */
#define MASKED_OUT(mask, i) \
  ((mask) != NULL && !(((mask)[(i) >> 5] >> ((i) & 31)) & 1u))

int coh__sample_masked(coh__sampler *s, const coh_sampling *p,
                       const float *logits, const uint32_t *allowed,
                       const int32_t *history, size_t n_history,
                       coh__rng *rng, int32_t *out_token, coh_err *err) {
  const size_t vocab = s ? s->vocab : 0;
  int greedy, penalty, rc;
  float pen, m = -INFINITY;
  size_t i, n = 0;

  if (s == NULL || logits == NULL || out_token == NULL ||
      (history == NULL && n_history > 0))
    return coh__err(err, COH_EINVAL, "sample: NULL argument");
  rc = coh_sampling_validate(p, err);
  if (rc) return rc;
  greedy = !(p->temperature > 0.0f);
  if (!greedy && rng == NULL)
    return coh__err(err, COH_EINVAL, "sample: NULL rng with temperature %g",
                    (double)p->temperature);

  pen = p->repetition_penalty;
  penalty = pen != 1.0f && n_history > 0;
  if (penalty) {
    /* Check every id before marking any, so an error leaves the bitmap
     * clean.  Marking makes the penalty apply once per distinct id. */
    for (i = 0; i < n_history; i++)
      if (history[i] < 0 || (size_t)history[i] >= vocab)
        return coh__err(err, COH_ERANGE,
                        "sample: history[%zu] = %ld is outside the vocabulary "
                        "[0, %zu)",
                        i, (long)history[i], vocab);
    for (i = 0; i < n_history; i++)
      s->seen[history[i] >> 3] |= (uint8_t)(1u << (history[i] & 7));
  }

  if (greedy) {
    size_t best = 0;
    int found = 0;
    for (i = 0; i < vocab; i++) {
      float x = logits[i];
      if (MASKED_OUT(allowed, i) || isnan(x)) continue;
      if (penalty && (s->seen[i >> 3] >> (i & 7) & 1)) x = penalise(x, pen);
      if (x == -INFINITY) continue;
      if (!found || x > m) { /* strict: ties keep the lowest id */
        m = x;
        best = i;
        found = 1;
      }
    }
    n = found;
    if (found) *out_token = (int32_t)best;
  } else {
    for (i = 0; i < vocab; i++) {
      float x = logits[i];
      if (MASKED_OUT(allowed, i) || isnan(x)) continue;
      if (penalty && (s->seen[i >> 3] >> (i & 7) & 1)) x = penalise(x, pen);
      if (x == -INFINITY) continue;
      if (x > m) m = x;
      s->c[n].x = x;
      s->c[n].id = (int32_t)i;
      n++;
    }
  }

  if (penalty)
    for (i = 0; i < n_history; i++) s->seen[history[i] >> 3] = 0;
  if (n == 0)
    return coh__err(err, COH_EINVAL,
                    allowed ? "sample: every allowed token's logit is -inf/NaN "
                              "(or the grammar mask allows no token)"
                            : "sample: all logits are -inf/NaN");
  if (greedy) return COH_OK;

  {
    const double t = p->temperature;
    const size_t k =
        p->top_k > 0 && (size_t)p->top_k < n ? (size_t)p->top_k : n;
    const int top_p = p->top_p < 1.0f, min_p = p->min_p > 0.0f;
    cand *c = s->c;
    const cand *ranked;
    double *w = s->w, z = 0.0, u;
    size_t nk = 0;

    if (k == n && !top_p && !min_p) {
      /* No filter: plain softmax over everything, in id order. */
      for (i = 0; i < n; i++) {
        w[i] = weight(c[i].x, m, t);
        z += w[i];
      }
      u = coh__rng_uniform(rng);
      *out_token = c[pick(w, n, z, u)].id;
      return COH_OK;
    }

    if (k < n) {
      /* top-k: rank only the k survivors; softmax over them. */
      select_top_k(c, n, k);
      for (i = 0; i < k; i++) {
        w[i] = weight(c[i].x, m, t);
        z += w[i];
      }
      {
        double cum = 0.0, limit = (double)p->top_p * z;
        for (nk = 0; nk < k; nk++) {
          if (top_p && cum >= limit) break;
          if (min_p && w[nk] < (double)p->min_p) break;
          cum += w[nk];
        }
      }
      ranked = c;
    } else {
      /* top-p and/or min-p over all candidates: the normaliser needs every
       * weight, but only the nucleus needs ranking, so heapify and pop. */
      double cum = 0.0, limit;
      size_t hn = n;
      for (i = 0; i < n; i++) z += weight(c[i].x, m, t);
      limit = (double)p->top_p * z;
      for (i = n / 2; i-- > 0;) sift_down_max(c, n, i);
      while (hn > 0) {
        double wi;
        if (top_p && cum >= limit) break;
        wi = weight(c[0].x, m, t);
        if (min_p && wi < (double)p->min_p) break;
        s->kept[nk] = c[0];
        w[nk++] = wi;
        cum += wi;
        c[0] = c[--hn];
        sift_down_max(c, hn, 0);
      }
      ranked = s->kept;
    }

    /* nk >= 1: the best token has weight 1, which passes min-p (<= 1), and
     * top-p keeps the first token unconditionally (cum starts at 0 < limit
     * because top_p > 0 and z >= 1). */
    z = 0.0;
    for (i = 0; i < nk; i++) z += w[i];
    u = coh__rng_uniform(rng);
    *out_token = ranked[pick(w, nk, z, u)].id;
    return COH_OK;
  }
}

/* ---- fp16 --------------------------------------------------------------- */

static float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static uint32_t float_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

float coh__half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t e = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (e == 0x1f) return bits_to_float(sign | 0x7f800000u | (mant << 13));
  if (e == 0) {
    int shift = 0;
    if (mant == 0) return bits_to_float(sign);
    /* Subnormal: normalise so the leading 1 lands on bit 10. */
    while (!(mant & 0x400)) {
      mant <<= 1;
      shift++;
    }
    /* value = mant * 2^(-14-10-shift); float exponent field = -14 - shift +
     * 127. */
    return bits_to_float(sign | ((uint32_t)(113 - shift) << 23) |
                         ((mant & 0x3ff) << 13));
  }
  return bits_to_float(sign | ((e + 112) << 23) | (mant << 13));
}

void coh__half_to_float_array(const uint16_t *in, float *out, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) out[i] = coh__half_to_float(in[i]);
}

uint16_t coh__float_to_half(float f) {
  uint32_t x = float_to_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t h, rem;
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) { /* NaN: keep the top payload bits, stay a NaN */
    uint32_t m = (x >> 13) & 0x3ff;
    return (uint16_t)(sign | 0x7c00 | (m ? m : 0x200));
  }
  /* 0x477ff000 = 65520, halfway between 65504 (max half, odd mantissa) and
   * 65536: ties-to-even rounds it, and everything above, to inf. */
  if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);
  if (x < 0x38800000u) { /* below 2^-14: subnormal half or zero */
    uint32_t mant, shift, half;
    /* <= 2^-25 (half the smallest subnormal; the tie goes to even 0). */
    if (x <= 0x33000000u) return sign;
    mant = (x & 0x7fffffu) | 0x800000u;
    shift = 126 - (x >> 23); /* 14..24 */
    h = mant >> shift;
    rem = mant & ((1u << shift) - 1);
    half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h); /* a carry into 0x400 is the min normal */
  }
  h = (x - 0x38000000u) >> 13; /* rebias the exponent 127 → 15 */
  rem = x & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}
