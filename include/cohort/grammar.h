/*
 * cohort/grammar.h — constrained decoding: a JSON Schema, an EBNF grammar
 * (GBNF-compatible, see docs/grammar.md) or "any JSON object" compiled into a
 * grammar, and per-sequence parse states that give the set of vocabulary
 * tokens allowed next.
 *
 * The invariant, tested: every token the mask allows keeps the output
 * completable (some continuation reaches an accepting state), and an
 * end-of-sequence token is allowed exactly when the grammar accepts the
 * output so far.  Masks are deterministic functions of (grammar, vocabulary,
 * tokens accepted so far).
 *
 * Example:
 *   coh_grammar *g;  coh_grammar_vocab *v;  coh_grammar_state *s;
 *   coh_grammar_from_json_schema(schema, len, "schema.json", &g, &err);
 *   coh_grammar_vocab_new(tok, eos_ids, n_eos, &v, &err);  // once per tokenizer
 *   coh_grammar_state_new(g, v, &s, &err);
 *   uint32_t *mask = calloc((n_vocab + 31) / 32, 4);
 *   loop: coh_grammar_state_mask(s, mask, &err);   // bit i: token i allowed
 *         ...pick token among allowed...
 *         coh_grammar_state_accept(s, token, &err);
 *         if (coh_grammar_state_is_complete(s) && token is eos) done
 *
 * A compiled grammar and a vocabulary are immutable and may be shared by
 * threads; a state belongs to one sequence.
 */
#ifndef COHORT_GRAMMAR_H
#define COHORT_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"
#include "cohort/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coh_grammar coh_grammar;
typedef struct coh_grammar_vocab coh_grammar_vocab;
typedef struct coh_grammar_state coh_grammar_state;

/* Compiles a JSON Schema (borrowed JSON text, len bytes).  name is used in
 * error messages.  A keyword that is not supported is COH_EUNSUPPORTED naming
 * the keyword and its JSON pointer ("unsupported keyword 'patternProperties'
 * at /properties/a"); it is never ignored.  Other errors: COH_EFORMAT (not
 * JSON, or an invalid schema: the pointer), COH_ERANGE (bounds, documented),
 * COH_ENOMEM. */
int coh_grammar_from_json_schema(const char *schema, size_t len,
                                 const char *name, coh_grammar **out,
                                 coh_err *err);

/* Compile options for JSON Schema.  A zeroed struct (or NULL) is the
 * permissive form of coh_grammar_from_json_schema. */
typedef struct coh_grammar_options {
  /* The form for generation (docs/grammar.md "Validation and generation"):
   * an object's listed properties come in schema order, each at most once
   * (required ones mandatory, optional ones skippable), and additional
   * properties (when allowed) only under names that are not listed.  The
   * permissive form (0) also takes listed properties again after the
   * ordered part, in any order, as instances written by hand do; a sampler
   * on it may repeat a key until max_tokens.  Every output of the ordered
   * form is accepted by the permissive form. */
  int ordered_objects;
} coh_grammar_options;

/* coh_grammar_from_json_schema with options (o may be NULL: defaults). */
int coh_grammar_from_json_schema_opts(const char *schema, size_t len,
                                      const char *name,
                                      const coh_grammar_options *o,
                                      coh_grammar **out, coh_err *err);

/* Compiles a grammar in the EBNF text format (docs/grammar.md); the start
 * rule is "root".  Errors: COH_EFORMAT "NAME:LINE:COL: what". */
int coh_grammar_from_ebnf(const char *text, size_t len, const char *name,
                          coh_grammar **out, coh_err *err);

/* A grammar accepting any JSON object (response_format json_object). */
int coh_grammar_any_json_object(coh_grammar **out, coh_err *err);

void coh_grammar_free(coh_grammar *g);

/* Builds the token trie of a tokenizer (the byte string of every token id;
 * special tokens are never allowed by a mask except the eos ids).  eos_ids:
 * the ids that end a sequence (borrowed, copied). */
int coh_grammar_vocab_new(const coh_tokenizer *tok, const int32_t *eos_ids,
                          size_t n_eos, coh_grammar_vocab **out, coh_err *err);
void coh_grammar_vocab_free(coh_grammar_vocab *v);
size_t coh_grammar_vocab_size(const coh_grammar_vocab *v);

/* A parse state at the start of the grammar.  g and v are borrowed and must
 * outlive the state. */
int coh_grammar_state_new(const coh_grammar *g, const coh_grammar_vocab *v,
                          coh_grammar_state **out, coh_err *err);
void coh_grammar_state_free(coh_grammar_state *s);

/* Writes the allowed-token bitmask: (vocab_size + 31) / 32 words, bit
 * (id % 32) of word (id / 32) set when id is allowed next. */
int coh_grammar_state_mask(coh_grammar_state *s, uint32_t *mask,
                           coh_err *err);

/* Advances by one token.  COH_EINVAL (state unchanged) when the token is not
 * allowed; the message names the token and the text so far. */
int coh_grammar_state_accept(coh_grammar_state *s, int32_t token,
                             coh_err *err);

/* Whether the output so far is a complete sentence of the grammar. */
int coh_grammar_state_is_complete(const coh_grammar_state *s);

/* The token budget (docs/grammar.md, "Finishing within max_tokens").
 * *out := the fewest bytes that complete the output from this state (0 when
 * it is complete).  Errors: COH_EINVAL, COH_ENOMEM. */
int coh_grammar_state_min_bytes(coh_grammar_state *s, uint64_t *out, coh_err *err);
/* *out := the fewest bytes that would complete the output after token
 * (UINT64_MAX when the token is not allowed; an eos id: 0 when the output
 * is complete).  The state is unchanged. */
int coh_grammar_state_token_min_bytes(coh_grammar_state *s, int32_t token, uint64_t *out,
                                      coh_err *err);
/* Restricts mask (a mask of s: allowed tokens) to the tokens after which
 * the output can still be completed in at most max_bytes bytes; an eos id
 * stays exactly when the output is complete (max_bytes < 0: only eos).
 * Only removes tokens, so every token left keeps the output completable.
 * *n_left (may be NULL): the tokens left.  Deterministic: a function of
 * (state, mask, max_bytes).  Its cost is one step per allowed token. */
int coh_grammar_state_budget_mask(coh_grammar_state *s, uint32_t *mask, int64_t max_bytes,
                                  size_t *n_left, coh_err *err);

/* Checking a whole text (no tokenizer): the bytes of text are walked
 * through the grammar.  rejected_at: the offset of the first byte that no
 * parse takes, or -1; complete: every byte was taken and the text is a
 * complete sentence; accepted: both (the text is valid).  cut: the parser
 * dropped stacks at its bounds (docs/grammar.md: 1024 stacks, depth 4096),
 * so a refusal may be the bound's, not the text's. */
typedef struct coh_grammar_check {
  int accepted;
  int complete;
  int64_t rejected_at;
  int cut;
} coh_grammar_check;

/* Checks text[0..len) (borrowed) against g.  The result is a function of
 * (g, text) only; g may be shared by threads (each call has its own
 * state).  Errors: COH_EINVAL (NULL), COH_ENOMEM. */
int coh_grammar_check_text(const coh_grammar *g, const char *text, size_t len,
                           coh_grammar_check *out, coh_err *err);

#ifdef __cplusplus
}
#endif
#endif
