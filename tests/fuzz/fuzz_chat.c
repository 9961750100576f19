/* fuzz_chat.c — libFuzzer harness for chat templates (src/chat/): the input
 * is a template's source, optionally followed by a NUL byte and the JSON
 * variables to render it with (else a fixed conversation with tools).
 *
 * Properties checked beyond "no crash, no sanitizer report":
 *  - a parse failure is COH_EFORMAT or COH_ERANGE (or COH_ENOMEM) with a
 *    message that starts "fuzz.jinja:LINE:COLUMN: " (or, over 1 MiB,
 *    "fuzz.jinja: "): every error says where;
 *  - a render ends in text of at most 4 MiB, NUL-terminated at its length,
 *    or in COH_ERAISED, COH_EFORMAT ("fuzz.jinja:" first), COH_ERANGE or
 *    COH_ENOMEM — the step, output, memory and nesting bounds hold;
 *  - rendering twice gives the same bytes (no hidden state, no clock).
 *
 * Built as a fuzzer with -DCOH_FUZZ=ON (clang); test_chat also includes
 * this file and replays tests/fuzz/corpus/chat/ through coh__fuzz_chat_one,
 * so the seeds stay tested in ordinary builds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/chat.h"

#define FUZZ_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond,   \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)

static const char fuzz_chat_vars[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"Weather in K\\u00f6ln? \\ud83e\\udd9c\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": \"function\","
    " \"function\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"K\\u00f6ln\"}}}]},"
    " {\"role\": \"tool\", \"content\": \"21\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
    " \"date_time\": \"2024-07-26T10:30:00Z\"}";

static void fuzz_chat_where(const coh_err *err) {
  unsigned long line = 0, col = 0;
  if (sscanf(err->msg, "fuzz.jinja:%lu:%lu: ", &line, &col) == 2) {
    FUZZ_CHECK(line >= 1 && col >= 1);
    return;
  }
  FUZZ_CHECK(strncmp(err->msg, "fuzz.jinja: ", 12) == 0);
}

int coh__fuzz_chat_one(const uint8_t *data, size_t size);
int coh__fuzz_chat_one(const uint8_t *data, size_t size) {
  const char *src = (const char *)data, *vars = fuzz_chat_vars;
  const uint8_t *nul = memchr(data, 0, size);
  size_t src_len = size, vars_len = strlen(fuzz_chat_vars);
  coh_chat_template *t = NULL;
  coh_err err;
  char *a = NULL, *b = NULL;
  size_t na = 0, nb = 0;
  int rc, rc2;
  if (nul) {
    src_len = (size_t)(nul - data);
    vars = (const char *)nul + 1;
    vars_len = size - src_len - 1;
  }
  rc = coh_chat_template_parse(src, src_len, "fuzz.jinja", &t, &err);
  if (rc != COH_OK) {
    FUZZ_CHECK(t == NULL);
    FUZZ_CHECK(rc == COH_EFORMAT || rc == COH_ERANGE || rc == COH_ENOMEM);
    FUZZ_CHECK(err.code == rc);
    if (rc != COH_ENOMEM) fuzz_chat_where(&err);
    return 0;
  }
  rc = coh_chat_render(t, vars, vars_len, &a, &na, &err);
  if (rc == COH_OK) {
    FUZZ_CHECK(a != NULL && a[na] == '\0' && na <= ((size_t)4 << 20));
  } else {
    FUZZ_CHECK(a == NULL);
    FUZZ_CHECK(rc == COH_ERAISED || rc == COH_EFORMAT || rc == COH_ERANGE ||
               rc == COH_ENOMEM);
    FUZZ_CHECK(err.code == rc);
    if (rc == COH_EFORMAT) FUZZ_CHECK(strncmp(err.msg, "fuzz.jinja:", 11) == 0);
  }
  rc2 = coh_chat_render(t, vars, vars_len, &b, &nb, &err);
  FUZZ_CHECK(rc2 == rc);
  if (rc == COH_OK) FUZZ_CHECK(nb == na && memcmp(a, b, na) == 0);
  coh_free(a);
  coh_free(b);
  coh_chat_template_free(t);
  return 0;
}

#ifdef COH_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return coh__fuzz_chat_one(data, size);
}
#endif
