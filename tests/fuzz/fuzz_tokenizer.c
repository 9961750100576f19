/* fuzz_tokenizer.c — libFuzzer harness for the tokenizer: the input is fed
 * both as a tokenizer.json (load, then encode/decode with whatever loaded)
 * and as text for the two reference tokenizers (GPT-2 and Llama).
 *
 * Properties checked beyond "no crash, no sanitizer report":
 *  - decode(encode(x)) with GPT-2 and special tokens kept reproduces x after
 *    UTF-8 repair (byte-level BPE loses nothing);
 *  - every id that encode returns decodes (no COH_ERANGE);
 *  - the bytes read as little-endian int32 ids (the other direction, as a
 *    model could produce them) decode with both reference tokenizers
 *    exactly when every id lies inside the vocabulary (COH_ERANGE naming
 *    the id otherwise), to valid UTF-8 of the length reported.
 *
 * Built as a fuzzer with -DCOH_FUZZ=ON (clang); test_tokenizer also
 * includes this file and replays tests/fuzz/corpus/tokenizer/ through
 * coh__fuzz_tokenizer_one, so regressions stay tested in ordinary builds.
 * COH_TEST_DATA must name tests/data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/tokenizer.h"
#include "tokenizer/tokenizer_int.h"

#define FUZZ_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond,   \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)

static coh_tokenizer *fuzz_ref[2];

static void fuzz_load_refs(void) {
  static const char *const names[2] = {
      COH_TEST_DATA "/tokenizers/gpt2.tokenizer.json",
      COH_TEST_DATA "/tokenizers/llama.tokenizer.json"};
  int i;
  for (i = 0; i < 2; i++) {
    coh_err err;
    if (fuzz_ref[i] != NULL) continue;
    if (coh_tokenizer_load(names[i], &fuzz_ref[i], &err)) {
      fprintf(stderr, "fuzz: cannot load %s: %s\n", names[i], err.msg);
      abort();
    }
  }
}

/* Encodes text (both add_special settings) and decodes the result (both
 * skip settings); returns the decode with specials kept, or NULL. */
static char *fuzz_cycle(const coh_tokenizer *tok, const char *text,
                        size_t len, size_t *out_len) {
  int32_t *ids = NULL;
  size_t n = 0, i;
  char *a = NULL, *b = NULL;
  coh_err err;
  int rc;
  rc = coh_tokenizer_encode(tok, text, len, 1, &ids, &n, &err);
  FUZZ_CHECK(rc == COH_OK || rc == COH_ENOMEM);
  coh_free(ids);
  ids = NULL;
  rc = coh_tokenizer_encode(tok, text, len, 0, &ids, &n, &err);
  FUZZ_CHECK(rc == COH_OK || rc == COH_ENOMEM);
  if (rc) return NULL;
  for (i = 0; i < n; i++)
    FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < coh_tokenizer_vocab_size(tok));
  rc = coh_tokenizer_decode(tok, ids, n, 1, &b, NULL, &err);
  FUZZ_CHECK(rc == COH_OK || rc == COH_ENOMEM);
  coh_free(b);
  rc = coh_tokenizer_decode(tok, ids, n, 0, &a, out_len, &err);
  FUZZ_CHECK(rc == COH_OK || rc == COH_ENOMEM);
  coh_free(ids);
  return a;
}

/* Is s (n bytes) valid UTF-8 throughout? */
static int fuzz_utf8_ok(const char *s, size_t n) {
  size_t k = 0, l;
  while (k < n) {
    l = coh__utf8_valid_len((const unsigned char *)s + k, n - k);
    if (l == 0) return 0;
    k += l;
  }
  return 1;
}

/* Decodes the input read as little-endian int32 ids (at most 4096). */
static void fuzz_decode_ids(const uint8_t *data, size_t size) {
  int32_t ids[4096];
  size_t n = size / 4, i, len;
  int t, skip, in_range;
  if (n > 4096) n = 4096;
  for (i = 0; i < n; i++)
    ids[i] = (int32_t)((uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 |
                       (uint32_t)data[4 * i + 2] << 16 |
                       (uint32_t)data[4 * i + 3] << 24);
  for (t = 0; t < 2; t++) {
    size_t vocab = coh_tokenizer_vocab_size(fuzz_ref[t]);
    in_range = 1;
    for (i = 0; i < n; i++)
      if (ids[i] < 0 || (size_t)ids[i] >= vocab) in_range = 0;
    for (skip = 0; skip < 2; skip++) {
      char *out = NULL;
      coh_err err;
      int rc;
      len = (size_t)-1;
      rc = coh_tokenizer_decode(fuzz_ref[t], ids, n, skip, &out, &len, &err);
      if (rc == COH_ENOMEM) continue;
      if (!in_range) {
        FUZZ_CHECK(rc == COH_ERANGE && out == NULL && err.msg[0] != '\0');
        continue;
      }
      FUZZ_CHECK(rc == COH_OK && out != NULL);
      FUZZ_CHECK(out[len] == '\0');
      FUZZ_CHECK(fuzz_utf8_ok(out, len));
      coh_free(out);
    }
  }
}

int coh__fuzz_tokenizer_one(const uint8_t *data, size_t size);
int coh__fuzz_tokenizer_one(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  coh_tokenizer *tok = NULL;
  coh_err err;
  size_t len;
  char *out;
  fuzz_load_refs();
  /* 1. the bytes as a tokenizer.json */
  if (coh_tokenizer_load_buffer(text, size, "fuzz.json", &tok, &err) ==
      COH_OK) {
    static const char sample[] = " Hello  wörld\n<s>\xFF 123 <|endoftext|>";
    coh_free(fuzz_cycle(tok, sample, sizeof sample - 1, &len));
    coh_free(fuzz_cycle(tok, text, size, &len));
    coh_tokenizer_free(tok);
  } else {
    FUZZ_CHECK(err.code == COH_EFORMAT || err.code == COH_EUNSUPPORTED ||
               err.code == COH_ENOMEM);
    FUZZ_CHECK(err.msg[0] != '\0');
  }
  /* 2. the bytes as text */
  if (size > 65536) size = 65536;
  out = fuzz_cycle(fuzz_ref[0], text, size, &len);
  if (out != NULL) {
    coh__buf want = {0};
    coh__utf8_repair(text, size, &want);
    FUZZ_CHECK(!want.oom);
    FUZZ_CHECK(len == want.n && (len == 0 || memcmp(out, want.p, len) == 0));
    coh__buf_free(&want);
  }
  coh_free(out);
  coh_free(fuzz_cycle(fuzz_ref[1], text, size, &len));
  /* 3. the bytes as token ids */
  fuzz_decode_ids(data, size);
  return 0;
}

#ifdef COH_FUZZ_MAIN
/* The reference tokenizers load once, before the first input (under ASan
 * that takes seconds, which must not count against -timeout). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_load_refs();
  return 0;
}
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return coh__fuzz_tokenizer_one(data, size);
}
#endif
