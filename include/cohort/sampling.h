/*
 * cohort/sampling.h — the parameters that turn a model's logits into the next
 * token.  One coh_sampling travels with every LLM request.
 *
 * The filters are applied in a fixed order (see src/infer/sampler.c):
 *   grammar mask (a request's constraint, coh_request.grammar: disallowed
 *   tokens become -inf) → repetition penalty → temperature → top-k → softmax → top-p → min-p
 *   → renormalise → one uniform draw → inverse-CDF pick.
 * A temperature <= 0 means greedy decoding (argmax over the allowed tokens
 * after the repetition penalty; ties go to the lowest token id) and ignores the other filters.
 *
 * Sampling is deterministic: the same parameters, logits, history and seed
 * give the same token on every run.  The seed is per request; the runtime
 * derives it from (run seed, agent id, request sequence number).
 *
 * Example:
 *   coh_sampling s;
 *   coh_sampling_default(&s);      // greedy
 *   s.temperature = 0.8f;
 *   s.top_p = 0.95f;
 *   if (coh_sampling_validate(&s, &err)) die(err.msg);
 */
#ifndef COHORT_SAMPLING_H
#define COHORT_SAMPLING_H

#include <stdint.h>

#include "cohort/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coh_sampling {
  /* <= 0: greedy (argmax; ties → lowest id).  > 0: logits are divided by it
   * (+inf gives the uniform distribution over the finite logits). */
  float temperature;
  /* Keep only the k most likely tokens (ties → lower id first).  0: off;
   * a value >= the vocabulary size is also no restriction. */
  int32_t top_k;
  /* Nucleus: keep the smallest set of most likely tokens whose probability
   * mass reaches top_p.  1: off.  Must lie in (0, 1]. */
  float top_p;
  /* Keep tokens with p >= min_p * p_max.  0: off.  Must lie in [0, 1]. */
  float min_p;
  /* CTRL-style penalty for every distinct id in the history (prompt and
   * generated tokens): a logit > 0 is divided by it, any other logit is
   * multiplied by it.  1: off.  Must be positive and finite. */
  float repetition_penalty;
  /* Per-request seed of the sampling random stream. */
  uint64_t seed;
} coh_sampling;

/* Fills *s with the defaults: greedy (temperature 0), top_k 0, top_p 1,
 * min_p 0, repetition_penalty 1, seed 0.  s must be non-NULL. */
void coh_sampling_default(coh_sampling *s);

/* Checks every field of *s (borrowed).  Returns COH_OK, or COH_EINVAL with a
 * message naming the first bad field and its value: temperature NaN or -inf;
 * top_k < 0; top_p NaN or outside (0, 1]; min_p NaN or outside [0, 1];
 * repetition_penalty NaN, <= 0 or infinite.  s == NULL is COH_EINVAL too.
 * err may be NULL. */
int coh_sampling_validate(const coh_sampling *s, coh_err *err);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_SAMPLING_H */
