/*
 * gmask.h — internal: grammar masks of a decode batch, computed on a helper
 * thread while ONNX Runtime runs the batch's forward pass.
 *
 * The engine hands the masker one job per constrained row (a parse state
 * and the buffer its mask goes to) before OrtRun; after OrtRun it computes
 * the jobs the helper has not started yet itself and waits for the rest.
 * Each job is claimed by exactly one thread under the masker's mutex and
 * touched by no one else until coh__masker_wait returns, so that hand-over
 * is the only synchronisation needed.  A mask is a pure
 * function of its state (cohort/grammar.h), so where and when it is
 * computed cannot change a token: batch invariance holds with grammars.
 */
#ifndef COH_INFER_GMASK_H
#define COH_INFER_GMASK_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"
#include "cohort/grammar.h"

typedef struct coh__mask_job {
  coh_grammar_state *state; /* borrowed */
  uint32_t *mask;           /* borrowed: words words */
  int rc;                   /* output: COH_OK or the error */
  coh_err err;
} coh__mask_job;

typedef struct coh__masker coh__masker;

/* A masker for masks of `words` 32-bit words, of which the grammar writes
 * the first `grammar_words` (the vocabulary of the tokenizer may be smaller
 * than the model's logits; the rest stay clear: never allowed).  Starts the
 * helper thread; when the thread cannot be started the masker computes
 * inline in coh__masker_wait (same masks, no overlap).  Errors: COH_ENOMEM. */
int coh__masker_new(size_t words, size_t grammar_words, coh__masker **out,
                    coh_err *err);
/* Ends the helper thread (after waiting for a running batch) and frees. */
void coh__masker_free(coh__masker *m);

/* Computes one mask now, on the calling thread. */
void coh__mask_compute(const coh__masker *m, coh__mask_job *j);

/* Hands jobs[0..n) (borrowed until coh__masker_wait returns) to the helper
 * thread and returns at once.  n may be 0. */
void coh__masker_start(coh__masker *m, coh__mask_job *jobs, size_t n);

/* Computes the jobs of the last start that the helper has not claimed,
 * then waits for the ones it has.  *compute_s: seconds spent computing
 * them (both threads); *wait_s: seconds this call took (its own share of
 * the masks plus the wait).  Returns the first
 * failing job's rc with its message in *err, or COH_OK. */
int coh__masker_wait(coh__masker *m, double *compute_s, double *wait_s,
                     coh_err *err);

#endif /* COH_INFER_GMASK_H */
