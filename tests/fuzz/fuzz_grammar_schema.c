/* fuzz_grammar_schema.c — libFuzzer harness for the grammar module's
 * JSON Schema compiler: the input is compiled as a
 * JSON Schema.
 *
 * Properties checked beyond "no crash, no sanitizer report":
 *  - a failure is one of the documented codes, with a message that names
 *    the input ("fuzz.schema");
 *  - a success gives a grammar whose start state, and every state reached
 *    by up to 8 allowed tokens (the lowest allowed id each time, with the
 *    GPT-2 vocabulary), has a shortest completion that the masks allow
 *    byte by byte and that ends complete with EOS allowed (the invariant).
 *
 * Built as a fuzzer with -DCOH_FUZZ=ON (clang); test_grammar includes this
 * file and replays tests/fuzz/corpus/grammar_schema/ in ordinary builds. */
#include <stdint.h>
#include <string.h>

#include "cohort/grammar.h"
#include "fuzz_grammar_common.h"

int coh__fuzz_grammar_schema_one(const uint8_t *data, size_t size);
int coh__fuzz_grammar_schema_one(const uint8_t *data, size_t size) {
  coh_grammar *g = NULL;
  coh_err err;
  int rc;
  if (size > 16384) return 0; /* bounded work per input */
  fuzz_g_init();
  rc = coh_grammar_from_json_schema((const char *)data, size, "fuzz.schema", &g, &err);
  if (rc) {
    FUZZ_GCHECK(g == NULL);
    FUZZ_GCHECK(rc == COH_EFORMAT || rc == COH_EUNSUPPORTED ||
                rc == COH_ERANGE || rc == COH_EINVAL || rc == COH_ENOMEM);
    FUZZ_GCHECK(strstr(err.msg, "fuzz.schema") != NULL);
    return 0;
  }
  fuzz_g_walk(g);
  coh_grammar_free(g);
  return 0;
}

#ifdef COH_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return coh__fuzz_grammar_schema_one(data, size);
}
#endif
