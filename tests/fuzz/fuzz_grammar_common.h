/* fuzz_grammar_common.h — what the two grammar harnesses share
 * (fuzz_grammar_schema.c, fuzz_grammar_ebnf.c): the GPT-2 vocabulary, loaded
 * once, and the invariant walk over a compiled grammar.  Test-only; included
 * by both harnesses, and by test_grammar.c through them. */
#ifndef COH_FUZZ_GRAMMAR_COMMON_H
#define COH_FUZZ_GRAMMAR_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/grammar.h"
#include "cohort/tokenizer.h"
#include "grammar/gram_int.h"

#ifndef FUZZ_GCHECK
#define FUZZ_GCHECK(cond)                                             \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond,   \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)
#endif

static coh_tokenizer *fuzz_g_tok;
static coh_grammar_vocab *fuzz_g_vocab;
static int32_t fuzz_g_eos, fuzz_g_byte[256];

static void fuzz_g_init(void) {
  coh_err err;
  size_t i, n, len;
  char buf[1024];
  if (fuzz_g_vocab) return;
  if (coh_tokenizer_load(COH_TEST_DATA "/tokenizers/gpt2.tokenizer.json",
                         &fuzz_g_tok, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    abort();
  }
  fuzz_g_eos = coh_tokenizer_token_id(fuzz_g_tok, "<|endoftext|>");
  if (coh_grammar_vocab_new(fuzz_g_tok, &fuzz_g_eos, 1, &fuzz_g_vocab, &err))
    abort();
  for (i = 0; i < 256; i++) fuzz_g_byte[i] = -1;
  n = coh_tokenizer_vocab_size(fuzz_g_tok);
  for (i = 0; i < n; i++)
    if (!coh_tokenizer_is_special(fuzz_g_tok, (int32_t)i) &&
        coh_tokenizer_token_bytes(fuzz_g_tok, (int32_t)i, buf, sizeof buf,
                                  &len, &err) == 0 &&
        len == 1 && fuzz_g_byte[(unsigned char)buf[0]] < 0)
      fuzz_g_byte[(unsigned char)buf[0]] = (int32_t)i;
}

/* The invariant from the start state and a few steps on. */
static void fuzz_g_walk(const coh_grammar *g) {
  coh_grammar_state *s = NULL;
  coh_err err;
  size_t nw = (coh_grammar_vocab_size(fuzz_g_vocab) + 31) / 32, i, len;
  uint32_t *m = calloc(nw, 4);
  char buf[4096];
  int k;
  FUZZ_GCHECK(m != NULL);
  FUZZ_GCHECK(coh_grammar_state_new(g, fuzz_g_vocab, &s, &err) == 0);
  for (k = 0; k < 8; k++) {
    int32_t pick = -1;
    FUZZ_GCHECK(coh_grammar_state_mask(s, m, &err) == 0);
    FUZZ_GCHECK((int)((m[fuzz_g_eos >> 5] >> (fuzz_g_eos & 31)) & 1) ==
                coh_grammar_state_is_complete(s));
    for (i = 0; i < nw * 32 && pick < 0; i++)
      if (((m[i >> 5] >> (i & 31)) & 1) && (int32_t)i != fuzz_g_eos)
        pick = (int32_t)i;
    if (pick < 0) break;
    FUZZ_GCHECK(coh_grammar_state_accept(s, pick, &err) == 0);
  }
  if (coh__grammar_state_shortest(s, buf, sizeof buf, &len) == 0) {
    for (i = 0; i < len; i++) {
      int32_t id = fuzz_g_byte[(unsigned char)buf[i]];
      FUZZ_GCHECK(id >= 0);
      FUZZ_GCHECK(coh_grammar_state_mask(s, m, &err) == 0);
      FUZZ_GCHECK((m[id >> 5] >> (id & 31)) & 1);
      FUZZ_GCHECK(coh_grammar_state_accept(s, id, &err) == 0);
    }
    FUZZ_GCHECK(coh_grammar_state_is_complete(s));
  }
  coh_grammar_state_free(s);
  free(m);
}

#endif
