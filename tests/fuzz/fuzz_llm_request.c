/* fuzz_llm_request.c — libFuzzer harness for the parser of an agent's llm()
 * request (src/infer/llm_request.c): the input is the request JSON, parsed
 * against the GPT-2 test tokenizer.
 *
 * Properties checked beyond "no crash, no sanitizer report":
 *  - a failure is COH_EFORMAT, COH_EUNSUPPORTED or COH_ERANGE (a schema the
 *    grammar engine refuses) or COH_ENOMEM, with a message that starts
 *    "llm request: " (or is the out-of-memory message), and releasing the
 *    half-built request is safe;
 *  - structured output: a grammar exactly when response_format constrains
 *    or tool_choice forces a call, the engine request pointing at it; tool
 *    names only with a tool choice other than none;
 *  - a success holds only values inside the documented ranges: max_tokens
 *    in [0, 2^20], temperature in [0, 100], top_p in (0, 1], min_p in
 *    [0, 1], top_k >= 0, at most 16 stop strings of 1..COH_STOP_STRING_MAX
 *    bytes, prompt ids inside the vocabulary, the given seed;
 *  - parsing is a function of the input: a second parse gives the same ids.
 *
 * Built as a fuzzer with -DCOH_FUZZ=ON (clang).  COH_TEST_DATA must name
 * tests/data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/infer.h"
#include "cohort/tokenizer.h"

#define FUZZ_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond,   \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)

static coh_tokenizer *fuzz_tok;

static void fuzz_load_tok(void) {
  coh_err err;
  if (fuzz_tok == NULL &&
      coh_tokenizer_load(COH_TEST_DATA "/tokenizers/gpt2.tokenizer.json",
                         &fuzz_tok, &err)) {
    fprintf(stderr, "fuzz: cannot load the GPT-2 tokenizer: %s\n", err.msg);
    abort();
  }
}

int coh__fuzz_llm_request_one(const uint8_t *data, size_t size);
int coh__fuzz_llm_request_one(const uint8_t *data, size_t size) {
  coh_llm_request r, r2;
  coh_err err;
  size_t i, vocab;
  int rc;
  fuzz_load_tok();
  vocab = coh_tokenizer_vocab_size(fuzz_tok);
  coh_err_clear(&err);
  rc = coh_llm_request_parse_with((const char *)data, size, fuzz_tok, NULL, 42, &r, &err);
  if (rc != COH_OK) {
    FUZZ_CHECK(rc == COH_EFORMAT || rc == COH_EUNSUPPORTED || rc == COH_ERANGE ||
               rc == COH_ENOMEM);
    FUZZ_CHECK(err.code == rc);
    FUZZ_CHECK(rc == COH_ENOMEM ||
               strncmp(err.msg, "llm request: ", 13) == 0);
    coh_llm_request_free(&r);
    return 0;
  }
  FUZZ_CHECK(r.req.max_tokens >= 0 && r.req.max_tokens <= (1 << 20));
  FUZZ_CHECK(r.req.sampling.temperature >= 0 &&
             r.req.sampling.temperature <= 100);
  FUZZ_CHECK(r.req.sampling.top_p > 0 && r.req.sampling.top_p <= 1);
  FUZZ_CHECK(r.req.sampling.min_p >= 0 && r.req.sampling.min_p <= 1);
  FUZZ_CHECK(r.req.sampling.top_k >= 0);
  FUZZ_CHECK(r.req.sampling.seed == 42);
  FUZZ_CHECK(r.n_stops <= 16 && r.req.n_stop_strings == r.n_stops);
  for (i = 0; i < r.n_stops; i++) {
    size_t n = strlen(r.stops[i]);
    FUZZ_CHECK(n >= 1 && n <= COH_STOP_STRING_MAX);
    FUZZ_CHECK(r.req.stop_strings[i] == r.stops[i]);
  }
  FUZZ_CHECK(r.req.prompt == r.ids);
  FUZZ_CHECK(r.req.grammar == r.grammar);
  FUZZ_CHECK((r.grammar != NULL) ==
             (r.response != COH_RESPONSE_TEXT || r.tool_choice == COH_TOOLS_REQUIRED ||
              r.tool_choice == COH_TOOLS_NAMED));
  FUZZ_CHECK((r.tool_names != NULL) == (r.tool_choice != COH_TOOLS_NONE));
  FUZZ_CHECK(r.req.max_ws_run >= 0 && r.req.max_ws_run <= (1 << 20));
  for (i = 0; i < r.req.n_prompt; i++)
    FUZZ_CHECK(r.ids[i] >= 0 && (size_t)r.ids[i] < vocab);
  rc = coh_llm_request_parse_with((const char *)data, size, fuzz_tok, NULL, 42, &r2,
                             &err);
  FUZZ_CHECK(rc == COH_OK || rc == COH_ENOMEM);
  if (rc == COH_OK) {
    FUZZ_CHECK(r2.req.n_prompt == r.req.n_prompt);
    FUZZ_CHECK(r.req.n_prompt == 0 ||
               memcmp(r.ids, r2.ids, r.req.n_prompt * sizeof *r.ids) == 0);
    FUZZ_CHECK(r2.req.max_tokens == r.req.max_tokens);
  }
  coh_llm_request_free(&r2);
  coh_llm_request_free(&r);
  return 0;
}

#ifdef COH_FUZZ_MAIN
/* The tokenizer loads before the first input, outside -timeout. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_load_tok();
  return 0;
}
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return coh__fuzz_llm_request_one(data, size);
}
#endif
