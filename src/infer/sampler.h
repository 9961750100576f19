/*
 * sampler.h — internal: the token sampler of the inference engine, its
 * random stream, and fp16 <-> fp32 conversion.
 *
 * The engine keeps one coh__sampler per model (scratch sized for the
 * vocabulary, allocated once) and one coh__rng per request; coh__sample then
 * allocates nothing, starts no thread and reads no ambient state, so that the
 * token it returns is a pure function of its arguments.
 */
#ifndef COH_INFER_SAMPLER_H
#define COH_INFER_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"
#include "cohort/sampling.h"
#include "util/util_int.h"

/* The random stream (coh__rng) and the seed derivation (coh__seed_derive)
 * are util_int.h's (src/util/rng.c): one implementation for the library. */

/* ---- sampler ------------------------------------------------------------ */
typedef struct coh__sampler coh__sampler;

/* Allocates scratch for a vocabulary of vocab tokens (1 .. INT32_MAX): about
 * 24 bytes per token plus a bitmap.  *out: caller frees with
 * coh__sampler_free.  Errors: COH_EINVAL (vocab 0 or too large), COH_ENOMEM. */
int coh__sampler_new(size_t vocab, coh__sampler **out, coh_err *err);
/* Frees a sampler; NULL is a no-op. */
void coh__sampler_free(coh__sampler *s);
/* The vocabulary size the sampler was made for. */
size_t coh__sampler_vocab(const coh__sampler *s);

/* Picks the next token from logits[vocab] (float32, borrowed, NOT modified)
 * given the request's parameters p (borrowed), its token history (borrowed:
 * prompt + generated, for the repetition penalty; may be NULL when n_history
 * is 0) and its rng (advanced by exactly one draw when sampling, none when
 * greedy or on error).  NaN logits count as -inf.  Never allocates.
 * Deviation from the first sketch of this API: err is added, so that a
 * failure carries its message like everywhere else in cohort (may be NULL).
 * Errors: COH_EINVAL (NULL argument, invalid p — see coh_sampling_validate —
 * or "all logits are -inf/NaN" once the penalty is applied), COH_ERANGE (a
 * history id outside [0, vocab), naming its position). */
int coh__sample(coh__sampler *s, const coh_sampling *p, const float *logits,
                const int32_t *history, size_t n_history, coh__rng *rng,
                int32_t *out_token, coh_err *err);

/* coh__sample with a grammar mask first (step 0 of the order in
 * sampler.c): allowed (borrowed; (vocab + 31) / 32 words, bit i % 32 of
 * word i / 32 set when token i may be chosen; NULL: every token) turns every
 * disallowed token's logit into -inf before the repetition penalty, on the
 * greedy and the sampling path alike.  The rng is advanced exactly as by
 * coh__sample.  Errors: those of coh__sample; "no allowed token with a
 * finite logit" is COH_EINVAL. */
int coh__sample_masked(coh__sampler *s, const coh_sampling *p,
                       const float *logits, const uint32_t *allowed,
                       const int32_t *history, size_t n_history,
                       coh__rng *rng, int32_t *out_token, coh_err *err);

/* ---- fp16 ---------------------------------------------------------------
 * IEEE 754 binary16.  half → float is exact for every input (subnormals,
 * ±0, ±inf; a NaN keeps its sign and payload).  float → half rounds to
 * nearest, ties to even; overflow gives ±inf, underflow ±0 or a subnormal;
 * a NaN keeps its sign and the top 10 payload bits (forced non-zero so it
 * stays a NaN).  Hence float→half(half→float(h)) == h for all 65536 h. */
float coh__half_to_float(uint16_t h);
/* out[i] = coh__half_to_float(in[i]) for i < n; in and out borrowed, must not
 * overlap. */
void coh__half_to_float_array(const uint16_t *in, float *out, size_t n);
uint16_t coh__float_to_half(float f);

#endif /* COH_INFER_SAMPLER_H */
