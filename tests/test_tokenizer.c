/* test_tokenizer.c — the tokenizer against Hugging Face tokenizers 0.23.2
 * reference cases (every line of tests/data/tokenizers/{gpt2,llama}.cases.jsonl), plus
 * bad-input, edge-case and round-trip tests. */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cohort/tokenizer.h"
#include <dirent.h>

#include "fuzz/fuzz_tokenizer.c"
#include "test.h"
#include "tokenizer/tokenizer_int.h"

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


/* ---- small tokenizers written in the test, so that expected ids can be
 * worked out by hand ---------------------------------------------------- */

/* No pre-tokenizer: spaces reach the model and become (fused) <unk>. */
static const char tiny_json[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
    "\"added_tokens\":["
    "{\"id\":10,\"content\":\"<sp>\",\"special\":true,\"normalized\":false,"
    "\"lstrip\":true,\"rstrip\":true,\"single_word\":false},"
    "{\"id\":11,\"content\":\"cat\",\"special\":false,\"normalized\":false,"
    "\"single_word\":true,\"lstrip\":false,\"rstrip\":false}],"
    "\"normalizer\":null,\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
    "{\"SpecialToken\":{\"id\":\"<sp>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"SpecialToken\":{\"id\":\"<sp>\",\"type_id\":0}}],\"pair\":[],"
    "\"special_tokens\":{\"<sp>\":{\"id\":\"<sp>\",\"ids\":[10],"
    "\"tokens\":[\"<sp>\"]}}},"
    "\"decoder\":null,"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,"
    "\"byte_fallback\":false,\"dropout\":null,"
    "\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"c\":3,\"t\":4,\"ab\":5,"
    "\"abc\":6,\"ca\":7,\"cat\":8},"
    "\"merges\":[\"a b\",[\"ab\",\"c\"],\"c a\",\"ca t\"]}}";

static coh_tokenizer *load_str(const char *json, coh_err *err) {
  coh_tokenizer *tok = NULL;
  coh_err_clear(err);
  if (coh_tokenizer_load_buffer(json, strlen(json), "t.json", &tok, err))
    return NULL;
  return tok;
}

/* Encodes text and compares with the expected ids (n_want of them). */
static int enc_is(const coh_tokenizer *tok, const char *text, int special,
                  const int32_t *want, size_t n_want) {
  int32_t *ids = NULL;
  size_t n = 0, i;
  coh_err err;
  int ok;
  if (coh_tokenizer_encode(tok, text, strlen(text), special, &ids, &n, &err))
    return 0;
  ok = n == n_want;
  for (i = 0; ok && i < n; i++) ok = ids[i] == want[i];
  if (!ok) {
    fprintf(stderr, "  encode \"%s\":", text);
    print_ids("got", ids, n);
  }
  coh_free(ids);
  return ok;
}

#define ENC_IS(tok, text, special, ...)                                   \
  do {                                                                    \
    static const int32_t want_[] = {__VA_ARGS__};                         \
    CHECK(enc_is(tok, text, special, want_, sizeof want_ / sizeof *want_)); \
  } while (0)

static char *dec(const coh_tokenizer *tok, const int32_t *ids, size_t n,
                 int skip) {
  char *text = NULL;
  size_t len;
  coh_err err;
  if (coh_tokenizer_decode(tok, ids, n, skip, &text, &len, &err)) return NULL;
  return text;
}

static void test_tiny_bpe(void) {
  coh_err err;
  coh_tokenizer *tok = load_str(tiny_json, &err);
  static const int32_t special_ids[] = {10, 5, 10}, two[] = {5, 6};
  char *s;
  if (tok == NULL) fprintf(stderr, "  %s\n", err.msg);
  REQUIRE(tok != NULL);
  ENC_IS(tok, "abc", 0, 6);        /* a b c → ab c → abc */
  ENC_IS(tok, "ab abc", 0, 5, 0, 6); /* the space is unk */
  ENC_IS(tok, "xyz", 0, 0);        /* fuse_unk: one unk */
  ENC_IS(tok, "axb", 0, 1, 0, 2);
  ENC_IS(tok, "ab <sp> ab", 0, 5, 10, 5); /* lstrip/rstrip eat spaces */
  ENC_IS(tok, "ab<sp>ab", 0, 5, 10, 5);
  ENC_IS(tok, "cat ab", 0, 11, 0, 5);   /* single word: added token */
  ENC_IS(tok, "bcat", 0, 2, 8);         /* inside a word: the model's cat */
  ENC_IS(tok, "ab", 1, 10, 5, 10);      /* template: <sp> A <sp> */
  ENC_IS(tok, "", 1, 10, 10);
  CHECK_EQ_INT(coh_tokenizer_vocab_size(tok), 12);
  CHECK_EQ_INT(coh_tokenizer_token_id(tok, "abc"), 6);
  CHECK_EQ_INT(coh_tokenizer_token_id(tok, "<sp>"), 10);
  CHECK_EQ_INT(coh_tokenizer_token_id(tok, "zzz"), -1);
  CHECK(coh_tokenizer_is_special(tok, 10));
  CHECK(!coh_tokenizer_is_special(tok, 11));
  CHECK(!coh_tokenizer_is_special(tok, 5));
  CHECK(!coh_tokenizer_is_special(tok, -3));
  CHECK(!coh_tokenizer_is_special(tok, 1000));
  /* no decoder: tokens joined by spaces, as HF */
  s = dec(tok, two, 2, 1);
  CHECK_STR(s, "ab abc");
  coh_free(s);
  s = dec(tok, special_ids, 3, 1);
  CHECK_STR(s, "ab");
  coh_free(s);
  s = dec(tok, special_ids, 3, 0);
  CHECK_STR(s, "<sp> ab <sp>");
  coh_free(s);
  coh_tokenizer_free(tok);
}

static const char meta_json[] =
    "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\u2581\":0,\"h\":1,\"i\":2,"
    "\"\\u2581h\":3,\"\\u2581hi\":4,\"<0x21>\":5},"
    "\"merges\":[[\"\\u2581\",\"h\"],[\"\\u2581h\",\"i\"]],"
    "\"byte_fallback\":true},"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
    "\"prepend_scheme\":\"always\",\"split\":true},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":"
    "\"ByteFallback\"},{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
    "\"prepend_scheme\":\"always\",\"split\":true}]}}";

static void test_metaspace(void) {
  coh_err err;
  coh_tokenizer *tok = load_str(meta_json, &err);
  static const int32_t ids[] = {4, 4, 5};
  char *s;
  if (tok == NULL) fprintf(stderr, "  %s\n", err.msg);
  REQUIRE(tok != NULL);
  ENC_IS(tok, "hi hi!", 0, 4, 4, 5); /* ! through byte fallback */
  ENC_IS(tok, "hi", 1, 4);           /* no post-processor: nothing added */
  ENC_IS(tok, "?", 0, 0); /* "▁?": no unk, no byte token: ? dropped */
  s = dec(tok, ids, 3, 1);
  CHECK_STR(s, "hi hi!");
  coh_free(s);
  coh_tokenizer_free(tok);
}

static const char split_json[] =
    "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"1\":0,\"2\":1,\"3\":2,"
    "\"4\":3,\"5\":4,\"34\":5,\"12\":6,\"123\":7,\"45\":8},"
    "\"merges\":[\"3 4\",\"1 2\",\"12 3\",\"4 5\"]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":"
    "\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t)|\\\\p{N}{1,3}\"},"
    "\"behavior\":\"Isolated\",\"invert\":false}]}}";

static const char nosplit_json[] =
    "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"1\":0,\"2\":1,\"3\":2,"
    "\"4\":3,\"5\":4,\"34\":5,\"12\":6,\"123\":7,\"45\":8},"
    "\"merges\":[\"3 4\",\"1 2\",\"12 3\",\"4 5\"]}}";

static void test_split_regex(void) {
  coh_err err;
  coh_tokenizer *a = load_str(split_json, &err), *b;
  if (a == NULL) fprintf(stderr, "  %s\n", err.msg);
  b = load_str(nosplit_json, &err);
  REQUIRE(a != NULL && b != NULL);
  ENC_IS(a, "12345", 0, 7, 8); /* split as 123|45 */
  ENC_IS(b, "12345", 0, 6, 5, 4); /* one word: 3 4 merges first */
  coh_tokenizer_free(a);
  coh_tokenizer_free(b);
}

/* Llama-3 style: Split regex, then ByteLevel without its own regex, and
 * ignore_merges (a word found whole in the vocab is one token even when
 * the merges could not build it). */
#define L3_HEAD                                                            \
  "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["          \
  "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[a-z]+| ?[^a-z ]+\"},"     \
  "\"behavior\":\"Isolated\",\"invert\":false},"                         \
  "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}," \
  "\"decoder\":{\"type\":\"ByteLevel\"},"                                  \
  "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,"        \
  "\"bc\":3,\"abc\":4,\"\\u0120\":5,\"!\":6,\"\\u0120!\":7},"              \
  "\"merges\":[\"b c\",\"\\u0120 !\"],"

static void test_llama3_style(void) {
  coh_err err;
  coh_tokenizer *on = load_str(L3_HEAD "\"ignore_merges\":true}}", &err);
  coh_tokenizer *off = load_str(L3_HEAD "\"ignore_merges\":false}}", &err);
  static const int32_t ids[] = {4, 7, 0, 3};
  char *s;
  REQUIRE(on != NULL && off != NULL);
  ENC_IS(on, "abc !abc", 0, 4, 7, 4);
  ENC_IS(off, "abc !abc", 0, 0, 3, 7, 0, 3);
  s = dec(on, ids, 4, 0);
  CHECK_STR(s, "abc !abc");
  coh_free(s);
  coh_tokenizer_free(on);
  coh_tokenizer_free(off);
}

/* The real pre-tokenization regexes compile under PCRE2 (UTF + UCP) and
 * split as tiktoken/HF do. */
static int splits_are(const char *re, const char *text, const char *const *want,
                      size_t n_want) {
  coh__pattern p;
  coh__spans m = {0};
  coh_err err;
  size_t i;
  int ok;
  if (coh__pattern_regex(re, "test", &p, &err)) {
    fprintf(stderr, "  %s\n", err.msg);
    return 0;
  }
  ok = coh__pattern_find(&p, text, strlen(text), &m) == COH_OK &&
       m.n == n_want;
  for (i = 0; ok && i < m.n; i++)
    ok = m.v[i].end - m.v[i].start == strlen(want[i]) &&
         !memcmp(text + m.v[i].start, want[i], strlen(want[i])) &&
         (i == 0 || m.v[i].start == m.v[i - 1].end);
  if (!ok)
    for (i = 0; i < m.n; i++)
      fprintf(stderr, "  [%.*s]\n", (int)(m.v[i].end - m.v[i].start),
              text + m.v[i].start);
  coh__spans_free(&m);
  coh__pattern_free(&p);
  return ok;
}

static void test_real_regexes(void) {
  static const char gpt2[] =
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
      "\\s+(?!\\S)|\\s+";
  static const char llama3[] =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
      "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|"
      "\\s+";
  static const char *const w1[] = {"Hello", " ", " world", "'s", " na\xC3\xAFve",
                                   " \xE6\x97\xA5\xE6\x9C\xAC", "!!"};
  static const char *const w2[] = {"Hello", " world", "'S", " ", "123",
                                   "45", "!!\n\n", " ", " x"};
  CHECK(splits_are(gpt2, "Hello  world's na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC!!",
                   w1, 7));
  CHECK(splits_are(llama3, "Hello world'S 12345!!\n\n  x", w2, 9));
}

/* ---- bad tokenizer files -------------------------------------------------- */

/* Loads json and checks the code and that the message holds each needle. */
static void bad(const char *json, int code, const char *n1, const char *n2) {
  coh_err err;
  coh_tokenizer *tok = load_str(json, &err);
  CHECK(tok == NULL);
  CHECK_EQ_INT(err.code, code);
  if ((n1 && !strstr(err.msg, n1)) || (n2 && !strstr(err.msg, n2))) {
    fprintf(stderr, "  message \"%s\" lacks \"%s\" / \"%s\"\n", err.msg,
            n1 ? n1 : "", n2 ? n2 : "");
    CHECK(!"error message");
  }
  coh_tokenizer_free(tok);
}

#define MODEL_OK "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}"

static void test_bad_json(void) {
  bad("{\n  \"model\": tru }", COH_EFORMAT, "t.json:2:", "invalid JSON");
  bad("", COH_EFORMAT, "t.json:", "invalid JSON");
  bad("[1, 2", COH_EFORMAT, "t.json:1:", NULL);
  bad("[]", COH_EFORMAT, "top level", NULL);
}

static void test_bad_fields(void) {
  bad("{}", COH_EFORMAT, "model: missing field", NULL);
  bad("{\"model\":{\"type\":\"BPE\",\"merges\":[]}}", COH_EFORMAT,
      "model.vocab: missing field", NULL);
  bad("{\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}",
      COH_EFORMAT, "model.vocab", "expected an object");
  bad("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},\"merges\":[]}}",
      COH_EFORMAT, "model.vocab.\"a\"", NULL);
  bad("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", COH_EFORMAT,
      "model.merges: missing field", NULL);
  bad("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[1]}}",
      COH_EFORMAT, "model.merges[0]", NULL);
  bad("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":"
      "[\"a b\"]}}",
      COH_EFORMAT, "model.merges[0]", "\"b\" is not in model.vocab");
  bad("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],"
      "\"byte_fallback\":1}}",
      COH_EFORMAT, "model.byte_fallback", "boolean");
  bad("{" MODEL_OK ",\"added_tokens\":[{\"id\":\"1\",\"content\":\"x\"}]}",
      COH_EFORMAT, "added_tokens[0].id", "integer");
  bad("{" MODEL_OK ",\"added_tokens\":[{\"id\":1}]}", COH_EFORMAT,
      "added_tokens[0].content: missing field", NULL);
  bad("{" MODEL_OK ",\"normalizer\":{\"type\":\"Replace\",\"pattern\":"
      "{\"Regex\":\"(\"},\"content\":\"x\"}}",
      COH_EFORMAT, "normalizer.pattern.Regex", "bad regex");
  bad("{" MODEL_OK ",\"normalizer\":{\"prepend\":\"x\"}}", COH_EFORMAT,
      "normalizer.type: missing field", NULL);
  bad("{" MODEL_OK ",\"decoder\":{\"type\":\"Strip\",\"content\":\"ab\","
      "\"start\":1,\"stop\":0}}",
      COH_EFORMAT, "decoder.content", "single character");
  bad("{" MODEL_OK ",\"post_processor\":{\"type\":\"TemplateProcessing\","
      "\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":"
      "{\"id\":\"A\"}}],\"special_tokens\":{}}}",
      COH_EFORMAT, "post_processor.special_tokens", "<s>");
}

static void test_unsupported(void) {
  bad("{\"model\":{\"type\":\"Custom\",\"vocab\":{}}}", COH_EUNSUPPORTED,
      "model.type", "Custom");
  /* no "type" and no fields to tell the model by: unsupported, not a
   * missing field */
  bad("{\"model\":{\"vocab\":{\"a\":0},\"unk_token\":\"a\"}}",
      COH_EUNSUPPORTED, "model", "no \"type\"");
  bad("{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",\"x\"]]}}",
      COH_EFORMAT, "model.vocab[0]", "score");
  bad("{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",-1]],"
      "\"unk_id\":3}}",
      COH_EFORMAT, "model.unk_id", NULL);
  {
    /* a piece past COH__TOK_PIECE_MAX (256 bytes) */
    char json[600];
    snprintf(json, sizeof json,
             "{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",-1],"
             "[\"%0300d\",-2]]}}",
             0);
    bad(json, COH_EUNSUPPORTED, "model.vocab[1]", "at most 256");
    snprintf(json, sizeof json,
             "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0,"
             "\"%0300d\":1}}}",
             0);
    bad(json, COH_EUNSUPPORTED, "model.vocab", "at most 256");
  }
  bad("{" MODEL_OK ",\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
      "{\"type\":\"NFC\"},{\"type\":\"Nmt\"}]}}",
      COH_EUNSUPPORTED, "normalizer.normalizers[1].type", "Nmt");
  bad("{" MODEL_OK ",\"normalizer\":{\"type\":\"BertNormalizer\","
      "\"strip_accents\":1}}",
      COH_EFORMAT, "normalizer.strip_accents", "boolean");
  bad("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Sequence\","
      "\"pretokenizers\":[{\"type\":\"ByteLevel\"},{\"type\":"
      "\"UnicodeScripts\"}]}}",
      COH_EUNSUPPORTED, "pre_tokenizer.pretokenizers[1].type",
      "UnicodeScripts");
  bad("{" MODEL_OK ",\"decoder\":{\"type\":\"Sequence\",\"decoders\":["
      "{\"type\":\"Fuse\"},{\"type\":\"CTC\"}]}}",
      COH_EUNSUPPORTED, "decoder.decoders[1].type", "CTC");
  bad("{" MODEL_OK ",\"post_processor\":{\"type\":\"Whatever\"}}",
      COH_EUNSUPPORTED, "post_processor.type", "Whatever");
  bad("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[],"
      "\"dropout\":0.1}}",
      COH_EUNSUPPORTED, "model.dropout", NULL);
}

/* The Unicode normalizers on a vocabulary of single characters (no merges,
 * no unk: a character outside the vocabulary is dropped, so the ids show
 * exactly which characters the normalizer produced).  The comparison with
 * HF on real vocabularies is tests/tok_compare.py. */
#define CHAR_VOCAB                                                          \
  "\"model\":{\"type\":\"BPE\",\"merges\":[],\"vocab\":{\"e\":0,"           \
  "\"\u00e9\":1,\"\u0301\":2,\"f\":3,\"i\":4,\"\u0307\":5,\" \":6,"         \
  "\"\u4e2d\":7,\"x\":8,\"\u00c9\":9,\"E\":10}}"

static void norm_case(const char *norm, const char *text, const int32_t *want,
                      size_t n_want) {
  char json[1024];
  coh_err err;
  coh_tokenizer *tok;
  snprintf(json, sizeof json, "{" CHAR_VOCAB ",\"normalizer\":%s}", norm);
  tok = load_str(json, &err);
  CHECK(tok != NULL);
  if (tok == NULL) {
    fprintf(stderr, "  %s: %s\n", norm, err.msg);
    return;
  }
  if (!enc_is(tok, text, 0, want, n_want)) {
    fprintf(stderr, "  normalizer %s\n", norm);
    CHECK(!"normalizer output");
  }
  coh_tokenizer_free(tok);
}

static void test_normalizers(void) {
  static const int32_t composed[] = {1}, decomposed[] = {0, 2},
                       fi[] = {3, 4}, i_dot[] = {4, 5}, e_only[] = {0},
                       bert[] = {6, 6, 7, 6, 8, 6, 0}, upper[] = {9},
                       upper_nfd[] = {10, 2};
  norm_case("{\"type\":\"NFC\"}", "e\xcc\x81", composed, 1);
  norm_case("{\"type\":\"NFD\"}", "\xc3\xa9", decomposed, 2);
  norm_case("{\"type\":\"NFKC\"}", "\xef\xac\x81", fi, 2); /* U+FB01 */
  norm_case("{\"type\":\"NFKD\"}", "\xc3\xa9", decomposed, 2);
  norm_case("{\"type\":\"NFC\"}", "\xc3\x89", upper, 1);
  norm_case("{\"type\":\"NFD\"}", "\xc3\x89", upper_nfd, 2);
  /* U+0130 lowercases to two characters, as Rust's to_lowercase */
  norm_case("{\"type\":\"Lowercase\"}", "\xc4\xb0", i_dot, 2);
  norm_case("{\"type\":\"Lowercase\"}", "\xc3\x89", composed, 1);
  norm_case("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},"
            "{\"type\":\"StripAccents\"}]}",
            "\xc3\xa9", e_only, 1);
  /* clean_text drops controls and makes whitespace a space; CJK padded;
   * lowercase implies strip_accents */
  norm_case("{\"type\":\"BertNormalizer\"}", "\x01\t\xe4\xb8\xadX\n\xc3\x89",
            bert, 7);
  norm_case("{\"type\":\"BertNormalizer\",\"lowercase\":false,"
            "\"strip_accents\":false}",
            "\xc3\x89", upper, 1);
}

/* WordPiece: greedy longest match with "##" continuations; a word with an
 * unmatched piece, or too long, is one [UNK]; the decoder joins pieces and
 * cleans up " ." and the like. */
static void test_wordpiece(void) {
  static const char json[] =
      "{\"normalizer\":{\"type\":\"BertNormalizer\"},"
      "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
      "\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\"##\"},"
      "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\","
      "\"max_input_chars_per_word\":9,\"vocab\":{\"[UNK]\":0,\"un\":1,"
      "\"##aff\":2,\"##able\":3,\"a\":4,\".\":5,\"##a\":6,\"caf\":7,"
      "\"##e\":8}}}";
  static const int32_t want[] = {1, 2, 3, 0, 5, 7, 8, 4, 0};
  coh_err err;
  coh_tokenizer *tok = load_str(json, &err);
  char *text = NULL;
  size_t len;
  CHECK(tok != NULL);
  if (tok == NULL) {
    fprintf(stderr, "  %s\n", err.msg);
    return;
  }
  /* "unaffable": un ##aff ##able; "unx": [UNK]; "Café" -> cafe; "a" * 10
   * (10 characters > 9): [UNK] */
  CHECK(enc_is(tok, "UnAffable unx. Caf\xc3\xa9 a aaaaaaaaaa", 0, want, 9));
  CHECK_EQ_INT(coh_tokenizer_decode(tok, want, 9, 1, &text, &len, &err),
               COH_OK);
  CHECK(text != NULL && !strcmp(text, "unaffable [UNK]. cafe a [UNK]"));
  coh_free(text);
  coh_tokenizer_free(tok);
}

/* Unigram: the Viterbi path of highest total score; unknown characters
 * fused into one unk. */
static void test_unigram(void) {
  static const char json[] =
      "{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":"
      "\"\u2581\",\"prepend_scheme\":\"always\",\"split\":true},"
      "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\u2581\","
      "\"prepend_scheme\":\"always\",\"split\":true},"
      "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":["
      "[\"<unk>\",0],[\"\u2581\",-2],[\"a\",-3],[\"b\",-3],[\"ab\",-6],"
      "[\"\u2581ab\",-9],[\"\u2581a\",-4]]}}";
  /* "ab": _ab (-9) loses to _a b (-7); "xyb": _ then fused unk "xy", b */
  static const int32_t want[] = {6, 3, 1, 0, 3};
  coh_err err;
  coh_tokenizer *tok = load_str(json, &err);
  char *text = NULL;
  size_t len;
  CHECK(tok != NULL);
  if (tok == NULL) {
    fprintf(stderr, "  %s\n", err.msg);
    return;
  }
  CHECK(enc_is(tok, "ab xyb", 0, want, 5));
  CHECK_EQ_INT(coh_tokenizer_decode(tok, want, 5, 1, &text, &len, &err),
               COH_OK);
  CHECK(text != NULL && !strcmp(text, "ab <unk>b"));
  coh_free(text);
  coh_tokenizer_free(tok);
}

/* ---- Precompiled (SentencePiece charsmap) ---------------------------------
 * TINY_CHARSMAP is what SentencePiece 0.1.97 compiles from the rules
 *   41 -> 61 (A -> a), 65 -> 45 (e -> E), 65 301 -> E9 (e + acute -> é),
 *   FB01 -> 66 69 (ﬁ -> fi), 200B -> "" (deleted), 3000 -> 20
 * (`tools/spm_to_tokenizer_json.py --charsmap-from-rules RULES.tsv`).  The
 * expected ids are those HF tokenizers 0.23.2 gives for the same file
 * (tests/tokref/encode.mjs): a grapheme under 6 bytes takes the SHORTEST
 * matching prefix's replacement and loses the rest, so "e" + U+0301 is "E"
 * and U+FB01 + U+0301 is "fi".  The comparison with HF on full T5- and
 * XLM-R-style charsmaps is tests/tok_compare.py. */
#define TINY_CHARSMAP \
  "AAQAAAAAAQBBDQAABQAAgAMAAICBBQAACgAAgIAoAgCLPQAAAAAAgIAMAgCABQAAAQAAgKwM" \
  "AgAHAACAgQ0AAA4AAAARAAAAEAAAABMAAAASAAAAFQAAABQAAAAXAAAAFgAAABkAAAAYAAAA" \
  "GwAAABoAAAAdAAAAHAAAAB8AAAAeAAAAIQAAACAAAAAjAAAAIgAAACUAAABlmQAAJwAAACYA" \
  "AAApAAAAKAAAACsAAAAqAAAALQAAACwAAAAvAAAALgAAADEAAAAwAAAAMwAAADIAAAA1AAAA" \
  "NAAAADcAAAA2AAAAOQAAADgAAAA7AAAAOgAAAD0AAAA8AAAAPwAAAD4AAABBAAAAQAAAAEMA" \
  "AABCAAAARQAAAEQAAABHAAAARgAAAEkAAABIAAAASwAAAEoAAABNAAAATAAAAE8AAABOAAAA" \
  "UQAAAFAAAABTAAAAUgAAAFUAAABUAAAAVwAAAFYAAABZAAAAWAAAAFsAAABaAAAAXQAAAFwA" \
  "AABfAAAAXgAAAGEAAABgAAAAYwAAAGIAAABlAAAAZAAAAGcAAABmAAAAaQAAAGgAAABrAAAA" \
  "agAAAG0AAABsAAAAbwAAAG4AAABxAAAAcAAAAHMAAAByAAAAdQAAAHQAAAB3AAAAdgAAAHkA" \
  "AAB4AAAAewAAAHoAAAB9AAAAfAAAAH8AAAB+AAAAgQAAAIAAAACDAAAAggAAAIUAAACEAAAA" \
  "hwAAAIYAAACJAAAAiAAAAIsAAACKAAAAjQAAAIwAAACPAAAAjgAAAJEAAACQAAAAkwAAAJIA" \
  "AACVAAAAlAAAAJcAAACWAAAAmQAAAJgAAACbAAAAmgAAAJ0AAACcAAAAnwAAAJ4AAAChAAAA" \
  "oAAAAOKQAADjqAAApQAAAKQAAACnAAAApgAAAKkAAACoAAAAqwAAAKoAAACtAAAArAAAAK8A" \
  "AADvPAAAsQAAALAAAACzAAAAsgAAALUAAAC0AAAAtwAAALYAAAC5AAAAuAAAALsAAAC6AAAA" \
  "vQAAALwAAAC/AAAAvgAAAMEAAADAAAAAwwAAAMIAAADFAAAAxAAAAMcAAADGAAAAyQAAAMgA" \
  "AADLAAAAygAAAM0AAADMAAAAzwAAAMwoAQDRAAAA0AAAANMAAADSAAAA1QAAANQAAADXAAAA" \
  "1gAAANkAAADYAAAA2wAAANoAAADdAAAA3AAAAN8AAADeAAAA4QAAAOAAAADjAAAA4gAAAOUA" \
  "AADkAAAA5wAAAOYAAADpAAAA6AAAAOsAAADqAAAA7QAAAOwAAADvAAAA7gAAAPEAAADwAAAA" \
  "8wAAAPIAAAD1AAAA9AAAAPcAAAD2AAAA+QAAAPgAAAD7AAAA+gAAAP0AAAD8AAAA/wAAAP4A" \
  "AAAAIABFAGEAZmkAw6kA"

#define PRECOMP_VOCAB                                                       \
  "\"model\":{\"type\":\"BPE\",\"merges\":[],\"vocab\":{\"a\":0,"           \
  "\"A\":1,\"E\":2,\"e\":3,\"\u00e9\":4,\"f\":5,\"i\":6,\" \":7,"           \
  "\"\u0301\":8,\"\ufb01\":9,\"x\":10,\"y\":11,\"b\":12,\"d\":13}}"

/* Standard padded base64 of b[0..n) into out (4 * ceil(n / 3) + 1 bytes). */
static void b64(const unsigned char *b, size_t n, char *out) {
  static const char al[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i, o = 0;
  for (i = 0; i < n; i += 3) {
    uint32_t w = (uint32_t)b[i] << 16;
    if (i + 1 < n) w |= (uint32_t)b[i + 1] << 8;
    if (i + 2 < n) w |= b[i + 2];
    out[o++] = al[w >> 18 & 63];
    out[o++] = al[w >> 12 & 63];
    out[o++] = i + 1 < n ? al[w >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? al[w & 63] : '=';
  }
  out[o] = '\0';
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

/* A tokenizer whose charsmap is b[0..n) (raw bytes, base64-encoded here). */
static coh_tokenizer *load_charsmap(const unsigned char *b, size_t n,
                                    coh_err *err) {
  char *json = malloc(n * 2 + 1024), *enc = malloc(n * 2 + 8);
  coh_tokenizer *tok = NULL;
  if (json != NULL && enc != NULL) {
    b64(b, n, enc);
    sprintf(json,
            "{\"normalizer\":{\"type\":\"Precompiled\","
            "\"precompiled_charsmap\":\"%s\"}," PRECOMP_VOCAB "}",
            enc);
    tok = load_str(json, err);
  }
  free(json);
  free(enc);
  return tok;
}

static void test_precompiled(void) {
  coh_err err;
  coh_tokenizer *tok = load_str(
      "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":"
      "\"Precompiled\",\"precompiled_charsmap\":\"" TINY_CHARSMAP "\"}]},"
      PRECOMP_VOCAB "}",
      &err);
  CHECK(tok != NULL);
  if (tok == NULL) {
    fprintf(stderr, "  %s\n", err.msg);
    return;
  }
  ENC_IS(tok, "A", 0, 0);
  ENC_IS(tok, "e", 0, 2);
  ENC_IS(tok, "\xc3\xa9", 0, 4);                 /* no rule: kept */
  ENC_IS(tok, "e\xcc\x81", 0, 2);                /* shortest prefix wins */
  ENC_IS(tok, "\xef\xac\x81\xcc\x81", 0, 5, 6);  /* the mark is dropped */
  ENC_IS(tok, "x\xe2\x80\x8by", 0, 10, 11);      /* U+200B deleted */
  ENC_IS(tok, "\xe3\x80\x80", 0, 7);             /* U+3000 -> space */
  ENC_IS(tok, "\xcc\x81", 0, 8);
  ENC_IS(tok, "Ae\xcc\x81\xef\xac\x81x", 0, 0, 2, 5, 6, 10);
  /* a grapheme of 6 bytes or more goes character by character: e + three
   * acutes (7 bytes) is E then the marks */
  ENC_IS(tok, "e\xcc\x81\xcc\x81\xcc\x81", 0, 2, 8, 8, 8);
  coh_tokenizer_free(tok);

  {
    /* A corrupt trie never reads out of bounds: 'a' leads to a value past
     * the table, 'b' to one inside "é"'s bytes (both count as no rule),
     * 'd' to "é"; every other byte to no node. */
    unsigned char blob[4 + 4 * 0x66 + 3];
    memset(blob, 0, sizeof blob);
    put32(blob, 4 * 0x66);
    put32(blob + 4 + 4 * 0x61, 0x61u | 1u << 8);            /* value 0x161 */
    put32(blob + 4 + 4 * 0x62, 0x62u | 1u << 8 | 1u << 10); /* at 0x63 */
    put32(blob + 4 + 4 * 0x63, 1);                          /* inside é */
    put32(blob + 4 + 4 * 0x64, 0x64u | 1u << 8 | 1u << 10); /* at 0x65 */
    put32(blob + 4 + 4 * 0x65, 0);                          /* "é" */
    memcpy(blob + 4 + 4 * 0x66, "\xc3\xa9", 3);
    tok = load_charsmap(blob, sizeof blob, &err);
    CHECK(tok != NULL);
    if (tok != NULL) ENC_IS(tok, "abde", 0, 0, 12, 4, 3);
    coh_tokenizer_free(tok);
    /* a root whose child offset points far outside the trie */
    put32(blob + 4, 0xFFFFFC00u & 0x7FFFFFFFu);
    tok = load_charsmap(blob, sizeof blob, &err);
    CHECK(tok != NULL);
    if (tok != NULL) ENC_IS(tok, "abde", 0, 0, 12, 13, 3);
    coh_tokenizer_free(tok);
  }
}

/* Corrupt charsmaps: each error names normalizer...precompiled_charsmap. */
static void test_precompiled_bad(void) {
  static const unsigned char bad_size[] = {5, 0, 0, 0, 0, 0, 0, 0, 0};
  static const unsigned char past_end[] = {8, 0, 0, 0, 0, 0, 0, 0};
  static const unsigned char bad_utf8[] = {4, 0, 0, 0, 0, 0, 0, 0, 0xFF};
  static const unsigned char no_trie[] = {0, 0, 0, 0, 'a', 0};
  coh_err err;
  char *json;
  size_t n, i;
  coh_tokenizer *tok;
  bad("{\"normalizer\":{\"type\":\"Precompiled\"}," MODEL_OK "}",
      COH_EFORMAT, "normalizer.precompiled_charsmap: missing field", NULL);
  bad("{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":"
      "3}," MODEL_OK "}",
      COH_EFORMAT, "normalizer.precompiled_charsmap", NULL);
  bad("{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":"
      "\"NFC\"},{\"type\":\"Precompiled\",\"precompiled_charsmap\":"
      "\"AAA*\"}]}," MODEL_OK "}",
      COH_EFORMAT, "normalizer.normalizers[1].precompiled_charsmap",
      "base64");
  bad("{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":"
      "\"AAAAA\"}," MODEL_OK "}",
      COH_EFORMAT, "normalizer.precompiled_charsmap", "base64");
  bad("{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":"
      "\"AAB=\"}," MODEL_OK "}", /* non-zero bits after the last byte */
      COH_EFORMAT, "normalizer.precompiled_charsmap", "base64");
  bad("{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":"
      "\"AAA=\"}," MODEL_OK "}",
      COH_EFORMAT, "normalizer.precompiled_charsmap", "shorter");
  bad("{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":"
      "\"\"}," MODEL_OK "}",
      COH_EFORMAT, "normalizer.precompiled_charsmap", "shorter");
  tok = load_charsmap(bad_size, sizeof bad_size, &err);
  CHECK(tok == NULL && err.code == COH_EFORMAT &&
        strstr(err.msg, "normalizer.precompiled_charsmap: trie size 5"));
  tok = load_charsmap(past_end, sizeof past_end, &err);
  CHECK(tok == NULL && err.code == COH_EFORMAT &&
        strstr(err.msg, "trie size 8"));
  tok = load_charsmap(no_trie, sizeof no_trie, &err);
  CHECK(tok == NULL && err.code == COH_EFORMAT &&
        strstr(err.msg, "trie size 0"));
  tok = load_charsmap(bad_utf8, sizeof bad_utf8, &err);
  CHECK(tok == NULL && err.code == COH_EFORMAT &&
        strstr(err.msg, "not valid UTF-8"));
  /* past the 4 MiB bound (decoded): refused before decoding */
  n = ((size_t)4 << 20) / 3 * 4 + 8;
  json = malloc(n + 256);
  REQUIRE(json != NULL);
  i = (size_t)sprintf(json, "{\"normalizer\":{\"type\":\"Precompiled\","
                            "\"precompiled_charsmap\":\"");
  memset(json + i, 'A', n);
  sprintf(json + i + n, "\"}," MODEL_OK "}");
  tok = load_str(json, &err);
  CHECK(tok == NULL && err.code == COH_EFORMAT &&
        strstr(err.msg, "normalizer.precompiled_charsmap") &&
        strstr(err.msg, "limit"));
  free(json);
}

/* truncation and padding are accepted, ignored, and reported once. */
static void test_ignored_settings(void) {
  coh_err err;
  coh_tokenizer *tok = load_str(
      "{" MODEL_OK ",\"truncation\":{\"max_length\":1},\"padding\":"
      "{\"length\":9}}",
      &err);
  static const int32_t aaa[] = {0, 0, 0};
  CHECK(tok != NULL);
  if (tok == NULL) return;
  CHECK(coh_tokenizer_notice(tok) != NULL &&
        strstr(coh_tokenizer_notice(tok), "t.json") &&
        strstr(coh_tokenizer_notice(tok), "truncation and padding"));
  CHECK(enc_is(tok, "aaa", 0, aaa, 3)); /* not truncated to 1, not padded */
  coh_tokenizer_free(tok);
  tok = load_str("{" MODEL_OK ",\"truncation\":null}", &err);
  CHECK(tok != NULL && coh_tokenizer_notice(tok) == NULL);
  coh_tokenizer_free(tok);
}

static void test_missing_file(void) {
  coh_tokenizer *tok = (coh_tokenizer *)1;
  coh_err err;
  CHECK_EQ_INT(coh_tokenizer_load("/nonexistent/tokenizer.json", &tok, &err),
               COH_ENOENT);
  CHECK(tok == NULL);
  CHECK(strstr(err.msg, "/nonexistent/tokenizer.json") != NULL);
}

/* ---- bounds on work: hostile tokenizer.json files ------------------------ */

/* "{MODEL_OK,<field>:<json>}" with a string of n copies of ch spliced in
 * where <json> has "@" (malloc'd; the caller frees). */
static char *with_long(const char *field_json, char ch, size_t n) {
  const char *at = strchr(field_json, '@');
  size_t pre = (size_t)(at - field_json), len;
  char *j = malloc(strlen(field_json) + n + 64);
  if (j == NULL) return NULL;
  len = (size_t)sprintf(j, "{" MODEL_OK ",%.*s", (int)pre, field_json);
  memset(j + len, ch, n);
  len += n;
  sprintf(j + len, "%s}", at + 1);
  return j;
}

static void test_bounds_at_load(void) {
  char *j;
  /* a 1 MB Prepend (it used to be accepted, and to slow every encode) */
  j = with_long("\"normalizer\":{\"type\":\"Prepend\",\"prepend\":\"@\"}", 'p',
                1 << 20);
  REQUIRE(j != NULL);
  bad(j, COH_EFORMAT, "normalizer.prepend: 1048576 bytes; expected at most "
      "1024", NULL);
  free(j);
  j = with_long("\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
                "{\"type\":\"Strip\"},{\"type\":\"Replace\",\"pattern\":"
                "{\"String\":\"a\"},\"content\":\"@\"}]}", 'r', 1025);
  REQUIRE(j != NULL);
  bad(j, COH_EFORMAT, "normalizer.normalizers[1].content: 1025 bytes", NULL);
  free(j);
  j = with_long("\"decoder\":{\"type\":\"Sequence\",\"decoders\":["
                "{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\"},"
                "\"content\":\"@\"}]}", 'r', 5000);
  REQUIRE(j != NULL);
  bad(j, COH_EFORMAT, "decoder.decoders[0].content: 5000 bytes", NULL);
  free(j);
  j = with_long("\"added_tokens\":[{\"id\":1,\"content\":\"<s>\"},{\"id\":2,"
                "\"content\":\"@\"}]", 'x', 2000);
  REQUIRE(j != NULL);
  bad(j, COH_EFORMAT, "added_tokens[1].content: 2000 bytes; expected at most "
      "1024", NULL);
  free(j);
  /* exactly at the cap is fine */
  j = with_long("\"normalizer\":{\"type\":\"Prepend\",\"prepend\":\"@\"}", 'p',
                1024);
  REQUIRE(j != NULL);
  {
    coh_err err;
    coh_tokenizer *tok = load_str(j, &err);
    CHECK(tok != NULL);
    coh_tokenizer_free(tok);
  }
  free(j);
  /* an added token that the normalizer blows up is refused at load */
  j = with_long("\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
                "{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\"},"
                "\"content\":\"@\"},{\"type\":\"Replace\",\"pattern\":"
                "{\"String\":\"a\"},\"content\":\"@\"}]},\"added_tokens\":["
                "{\"id\":1,\"content\":\"aaaa\",\"normalized\":true}]", 'a',
                1000);
  REQUIRE(j != NULL);
  {
    /* with_long fills only the first '@': write the second by hand */
    char *at = strchr(j, '@');
    REQUIRE(at != NULL);
    {
      char *k = malloc(strlen(j) + 1001);
      REQUIRE(k != NULL);
      memcpy(k, j, (size_t)(at - j));
      memset(k + (at - j), 'a', 1000);
      strcpy(k + (at - j) + 1000, at + 1);
      bad(k, COH_EFORMAT, "added_tokens[0].content: the normalizer turns its "
          "4 bytes into more than 4160", NULL);
      free(k);
    }
  }
  free(j);
  /* the file itself: devices and FIFOs are refused without reading */
  {
    coh_tokenizer *tok = NULL;
    coh_err err;
    CHECK_EQ_INT(coh_tokenizer_load("/dev/zero", &tok, &err), COH_EINVAL);
    CHECK(tok == NULL);
    CHECK(strstr(err.msg, "/dev/zero: is a character device") != NULL);
  }
}

/* Encodes text expecting COH_ERANGE and a message with needle. */
static void enc_over(const coh_tokenizer *tok, const char *text,
                     const char *needle) {
  int32_t *ids = NULL;
  size_t n = 0;
  coh_err err;
  coh_err_clear(&err);
  CHECK_EQ_INT(coh_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n,
                                    &err),
               COH_ERANGE);
  CHECK(ids == NULL);
  if (strstr(err.msg, needle) == NULL) {
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err.msg, needle);
    CHECK(!"error message");
  }
}

static void test_bounds_at_run(void) {
  coh_err err;
  coh_tokenizer *tok;
  char *j, *big;
  size_t i, len;
  int32_t *ids = NULL, ids3[3] = {0, 0, 0};
  size_t n = 0;
  /* ten Replaces of "a" by 1000 "a"s: 1000^10 bytes if nothing stops it */
  j = malloc(16 * 1024);
  REQUIRE(j != NULL);
  len = (size_t)sprintf(j, "{" MODEL_OK ",\"normalizer\":{\"type\":"
                        "\"Sequence\",\"normalizers\":[");
  for (i = 0; i < 10; i++) {
    len += (size_t)sprintf(j + len, "%s{\"type\":\"Replace\",\"pattern\":"
                           "{\"String\":\"a\"},\"content\":\"", i ? "," : "");
    memset(j + len, 'a', 1000);
    len += 1000;
    len += (size_t)sprintf(j + len, "\"}");
  }
  sprintf(j + len, "]}}");
  tok = load_str(j, &err);
  free(j);
  if (tok == NULL) fprintf(stderr, "  %s\n", err.msg);
  REQUIRE(tok != NULL);
  enc_over(tok, "aaaa", "encode: the tokenizer's normalizer turns 4 bytes of "
           "text into more than 4160; expected at most 16 times the input "
           "plus 4096 bytes (tokenizer.json field 'normalizer')");
  coh_tokenizer_free(tok);
  /* an empty regex match inserts at every position */
  j = with_long("\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":"
                "\"\"},\"content\":\"@\"}", 'z', 1024);
  REQUIRE(j != NULL);
  tok = load_str(j, &err);
  free(j);
  REQUIRE(tok != NULL);
  enc_over(tok, "0123456789", "normalizer turns 10 bytes");
  coh_tokenizer_free(tok);
  /* thirty ByteLevels: each doubles every byte >= 0x80 */
  j = malloc(4096);
  REQUIRE(j != NULL);
  len = (size_t)sprintf(j, "{" MODEL_OK ",\"pre_tokenizer\":{\"type\":"
                        "\"Sequence\",\"pretokenizers\":[");
  for (i = 0; i < 30; i++)
    len += (size_t)sprintf(j + len, "%s{\"type\":\"ByteLevel\","
                           "\"add_prefix_space\":false,\"use_regex\":false}",
                           i ? "," : "");
  sprintf(j + len, "]}}");
  tok = load_str(j, &err);
  free(j);
  if (tok == NULL) fprintf(stderr, "  %s\n", err.msg);
  REQUIRE(tok != NULL);
  enc_over(tok, "          ", "the tokenizer's pre_tokenizer turns 10 bytes "
           "of text into more than 4256");
  coh_tokenizer_free(tok);
  /* a decoder chain of Replaces multiplies too */
  j = malloc(16 * 1024);
  REQUIRE(j != NULL);
  len = (size_t)sprintf(j, "{" MODEL_OK ",\"decoder\":{\"type\":"
                        "\"Sequence\",\"decoders\":[");
  for (i = 0; i < 10; i++) {
    len += (size_t)sprintf(j + len, "%s{\"type\":\"Replace\",\"pattern\":"
                           "{\"String\":\"a\"},\"content\":\"", i ? "," : "");
    memset(j + len, 'a', 1000);
    len += 1000;
    len += (size_t)sprintf(j + len, "\"}");
  }
  sprintf(j + len, "]}}");
  tok = load_str(j, &err);
  free(j);
  REQUIRE(tok != NULL);
  {
    char *text = (char *)1;
    size_t tl = 0;
    CHECK_EQ_INT(coh_tokenizer_decode(tok, ids3, 3, 0, &text, &tl, &err),
                 COH_ERANGE);
    CHECK(text == NULL);
    CHECK(strstr(err.msg, "decode: the tokenizer's decoder turns 3 bytes of "
                          "tokens into more than 4144") != NULL);
  }
  coh_tokenizer_free(tok);
  /* the bound is relative: 1 MB through a 3x Replace is fine */
  tok = load_str("{" MODEL_OK ",\"normalizer\":{\"type\":\"Replace\","
                 "\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}}",
                 &err);
  REQUIRE(tok != NULL);
  big = malloc(1 << 20);
  REQUIRE(big != NULL);
  memset(big, ' ', 1 << 20);
  CHECK_EQ_INT(coh_tokenizer_encode(tok, big, 1 << 20, 0, &ids, &n, &err),
               COH_OK);
  coh_free(ids);
  free(big);
  coh_tokenizer_free(tok);
}

/* ---- the real tokenizers on edge cases ---------------------------------- */

static int same_encoding(const coh_tokenizer *tok, const char *a, size_t na,
                         const char *b, size_t nb) {
  int32_t *x = NULL, *y = NULL;
  size_t nx = 0, ny = 0;
  coh_err err;
  int ok = coh_tokenizer_encode(tok, a, na, 0, &x, &nx, &err) == COH_OK &&
           coh_tokenizer_encode(tok, b, nb, 0, &y, &ny, &err) == COH_OK &&
           nx == ny && (nx == 0 || memcmp(x, y, nx * sizeof *x) == 0);
  coh_free(x);
  coh_free(y);
  return ok;
}

/* Invalid UTF-8: each maximal invalid subsequence reads as U+FFFD, which
 * then goes through byte fallback (llama) or the byte alphabet (gpt2). */
static void test_invalid_utf8(void) {
  const char *names[] = {"gpt2.tokenizer.json", "llama.tokenizer.json"};
  size_t k;
  for (k = 0; k < 2; k++) {
    coh_tokenizer *tok = load(names[k]);
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = NULL;
    coh_err err;
    REQUIRE(tok != NULL);
    CHECK(same_encoding(tok, "a\xFF" "b", 3, "a\xEF\xBF\xBD" "b", 5));
    /* E2 82 is a truncated 3-byte sequence: one U+FFFD, then 'a' */
    CHECK(same_encoding(tok, "\xE2\x82" "a", 3, "\xEF\xBF\xBD" "a", 4));
    /* a surrogate (ED A0 80) is three invalid subsequences */
    CHECK(same_encoding(tok, "\xED\xA0\x80", 3,
                        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 9));
    CHECK(same_encoding(tok, "x\xC0\xAFy\xF5", 5,
                        "x\xEF\xBF\xBD\xEF\xBF\xBDy\xEF\xBF\xBD", 11));
    /* embedded NUL is ordinary text */
    CHECK_EQ_INT(coh_tokenizer_encode(tok, "a\0b", 3, 0, &ids, &n, &err),
                 COH_OK);
    CHECK(n >= 2);
    CHECK_EQ_INT(coh_tokenizer_decode(tok, ids, n, 1, &text, NULL, &err),
                 COH_OK);
    CHECK(text != NULL && text[0] == 'a');
    coh_free(ids);
    coh_free(text);
    ids = NULL;
    CHECK_EQ_INT(coh_tokenizer_encode(tok, "\xFF\xFE", 2, 0, &ids, &n, &err),
                 COH_OK);
    CHECK_EQ_INT(coh_tokenizer_decode(tok, ids, n, 1, &text, NULL, &err),
                 COH_OK);
    CHECK_STR(text, "\xEF\xBF\xBD\xEF\xBF\xBD");
    coh_free(ids);
    coh_free(text);
    coh_tokenizer_free(tok);
  }
}

static void test_empty(void) {
  coh_tokenizer *tok = load("llama.tokenizer.json");
  int32_t *ids = (int32_t *)1;
  size_t n = 99, len = 99;
  char *text = NULL;
  coh_err err;
  REQUIRE(tok != NULL);
  CHECK_EQ_INT(coh_tokenizer_encode(tok, "", 0, 0, &ids, &n, &err), COH_OK);
  CHECK_EQ_INT(n, 0);
  coh_free(ids);
  CHECK_EQ_INT(coh_tokenizer_encode(tok, NULL, 0, 1, &ids, &n, &err), COH_OK);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(ids[0], 1);
  coh_free(ids);
  CHECK_EQ_INT(coh_tokenizer_decode(tok, NULL, 0, 0, &text, &len, &err),
               COH_OK);
  CHECK_STR(text, "");
  CHECK_EQ_INT(len, 0);
  coh_free(text);
  coh_tokenizer_free(tok);
}

static void test_decode_range(void) {
  coh_tokenizer *tok = load("gpt2.tokenizer.json");
  int32_t ids[] = {15496, 50295};
  int32_t neg[] = {-1};
  char *text = (char *)1;
  coh_err err;
  REQUIRE(tok != NULL);
  CHECK_EQ_INT(coh_tokenizer_vocab_size(tok), 50295);
  CHECK_EQ_INT(coh_tokenizer_decode(tok, ids, 2, 0, &text, NULL, &err),
               COH_ERANGE);
  CHECK(text == NULL);
  CHECK(strstr(err.msg, "50295") != NULL);
  CHECK_EQ_INT(coh_tokenizer_decode(tok, neg, 1, 1, &text, NULL, &err),
               COH_ERANGE);
  CHECK(strstr(err.msg, "-1") != NULL);
  coh_tokenizer_free(tok);
}

static const char *const round_texts[] = {
    "Hello, world!",
    "  leading and trailing  ",
    "tabs\tand\nnewlines\r\n",
    "emoji 😀🎉 and CJK 中文 and RTL שלום",
    "combining e\xCC\x81 and ZWJ 👩\xE2\x80\x8D💻",
    "x = [1, 2, 3]; // code",
    "many     spaces          here",
    "\xEF\xBF\xBD replacement char",
};

static void test_round_trip(void) {
  const char *names[] = {"gpt2.tokenizer.json", "llama.tokenizer.json"};
  size_t k, i;
  for (k = 0; k < 2; k++) {
    coh_tokenizer *tok = load(names[k]);
    REQUIRE(tok != NULL);
    for (i = 0; i < sizeof round_texts / sizeof *round_texts; i++) {
      int32_t *ids = NULL;
      size_t n = 0;
      char *text = NULL;
      coh_err err;
      CHECK_EQ_INT(coh_tokenizer_encode(tok, round_texts[i],
                                        strlen(round_texts[i]), 1, &ids, &n,
                                        &err),
                   COH_OK);
      CHECK_EQ_INT(coh_tokenizer_decode(tok, ids, n, 1, &text, NULL, &err),
                   COH_OK);
      CHECK_STR(text, round_texts[i]);
      coh_free(ids);
      coh_free(text);
    }
    coh_tokenizer_free(tok);
  }
}

/* Special tokens in the text are split out before the model and survive a
 * decode without skipping. */
static void test_special_in_text(void) {
  coh_tokenizer *g = load("gpt2.tokenizer.json");
  coh_tokenizer *l = load("llama.tokenizer.json");
  char *text = NULL;
  int32_t *ids = NULL;
  size_t n = 0;
  coh_err err;
  REQUIRE(g != NULL && l != NULL);
  ENC_IS(g, "<|endoftext|>", 0, 50256);
  ENC_IS(g, "a<|endoftext|>b", 0, 64, 50256, 65);
  ENC_IS(l, "<s>", 0, 1);
  CHECK_EQ_INT(coh_tokenizer_encode(g, "hi<|endoftext|>", 15, 0, &ids, &n,
                                    &err),
               COH_OK);
  CHECK_EQ_INT(coh_tokenizer_decode(g, ids, n, 0, &text, NULL, &err), COH_OK);
  CHECK_STR(text, "hi<|endoftext|>");
  coh_free(text);
  CHECK_EQ_INT(coh_tokenizer_decode(g, ids, n, 1, &text, NULL, &err), COH_OK);
  CHECK_STR(text, "hi");
  coh_free(text);
  coh_free(ids);
  CHECK_EQ_INT(coh_tokenizer_token_id(l, "<s>"), 1);
  CHECK_EQ_INT(coh_tokenizer_token_id(l, "<0x0A>"), 13);
  CHECK(coh_tokenizer_is_special(l, 2));
  coh_tokenizer_free(g);
  coh_tokenizer_free(l);
}

/* ---- speed and threads ---------------------------------------------------- */

/* CPU time of this thread, not wall time: the speed check below guards
 * against a super-linear blowup, and must not fail because the machine is
 * loaded (a test that depends on timing is a broken test, tests/README.md;
 * the work a thread does is not timing). */
static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

static void test_speed(void) {
  double t0 = thread_cpu_s(), t_load, t_enc;
  coh_tokenizer *tok = load("llama.tokenizer.json");
  coh__buf big = {0};
  int32_t *ids = NULL;
  size_t n = 0, i;
  coh_err err;
  t_load = thread_cpu_s() - t0;
  REQUIRE(tok != NULL);
  /* 200 KB of text with no pre-tokenizer: one 200 KB word for BPE */
  for (i = 0; i < 4000; i++)
    coh__buf_add(&big, "The quick brown fox jumps over the lazy dog. ", 45);
  REQUIRE(!big.oom);
  t0 = thread_cpu_s();
  CHECK_EQ_INT(coh_tokenizer_encode(tok, big.p, big.n, 0, &ids, &n, &err),
               COH_OK);
  t_enc = thread_cpu_s() - t0;
  CHECK(n > 0 && n < big.n);
  fprintf(stderr, "  llama load %.3f s, encode 180 KB %.3f s CPU (%zu ids)\n",
          t_load, t_enc, n);
  CHECK(t_load < (SLOW_BUILD ? 5.0 : 1.0));
  CHECK(t_enc < (SLOW_BUILD ? 10.0 : 1.0));
  coh_free(ids);
  coh__buf_free(&big);
  coh_tokenizer_free(tok);
}

typedef struct thread_job {
  const coh_tokenizer *tok;
  int failures;
} thread_job;

static void *thread_main(void *arg) {
  thread_job *job = arg;
  int round;
  size_t i;
  for (round = 0; round < 20; round++)
    for (i = 0; i < sizeof round_texts / sizeof *round_texts; i++) {
      int32_t *ids = NULL;
      size_t n = 0;
      char *text = NULL;
      coh_err err;
      if (coh_tokenizer_encode(job->tok, round_texts[i],
                               strlen(round_texts[i]), 0, &ids, &n, &err) ||
          coh_tokenizer_decode(job->tok, ids, n, 1, &text, NULL, &err) ||
          strcmp(text, round_texts[i]) != 0)
        job->failures++;
      coh_free(ids);
      coh_free(text);
    }
  return NULL;
}

static void test_threads(void) {
  coh_tokenizer *tok = load("gpt2.tokenizer.json");
  pthread_t th[4];
  thread_job jobs[4];
  int i;
  REQUIRE(tok != NULL);
  for (i = 0; i < 4; i++) {
    jobs[i].tok = tok;
    jobs[i].failures = 0;
    CHECK_EQ_INT(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
  }
  for (i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK_EQ_INT(jobs[i].failures, 0);
  }
  coh_tokenizer_free(tok);
}

/* ---- out of memory -------------------------------------------------------- */

static long fail_countdown = -1;
static void *fail_malloc(size_t n) {
  if (fail_countdown == 0) return NULL;
  if (fail_countdown > 0) fail_countdown--;
  return malloc(n);
}
static void *fail_realloc(void *p, size_t n) {
  if (fail_countdown == 0) return NULL;
  if (fail_countdown > 0) fail_countdown--;
  return realloc(p, n);
}
static void *fail_calloc(size_t c, size_t n) {
  if (fail_countdown == 0) return NULL;
  if (fail_countdown > 0) fail_countdown--;
  return calloc(c, n);
}

/* Every allocation of load, encode and decode fails in turn: each must end
 * in COH_ENOMEM (never a crash or leak), and the run without failures must
 * give the normal result (want: the decoded text). */
static void oom_sweep(const char *json, const char *in, const char *want,
                      long max_k) {
  long k;
  int saw_ok = 0;
  coh_replace_allocator(fail_malloc, fail_realloc, fail_calloc, free);
  for (k = 0; k < max_k && !saw_ok; k++) {
    coh_tokenizer *tok = NULL;
    coh_err err;
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = NULL;
    int rc;
    fail_countdown = k;
    rc = coh_tokenizer_load_buffer(json, strlen(json), "t.json", &tok, &err);
    if (rc == COH_OK)
      rc = coh_tokenizer_encode(tok, in, strlen(in), 1, &ids, &n, &err);
    if (rc == COH_OK) rc = coh_tokenizer_decode(tok, ids, n, 0, &text, NULL,
                                                &err);
    if (rc != COH_OK) {
      CHECK_EQ_INT(rc, COH_ENOMEM);
    } else {
      saw_ok = 1;
      CHECK_STR(text, want);
    }
    fail_countdown = -1;
    coh_free(ids);
    coh_free(text);
    coh_tokenizer_free(tok);
  }
  coh_replace_allocator(malloc, realloc, calloc, free);
  CHECK(saw_ok);
}

static void test_out_of_memory(void) {
  oom_sweep(tiny_json, "ab <sp> cat abc", "<sp> ab <sp> cat <unk> abc <sp>",
            400);
  /* the normalizers, pre-tokenizers and models added with libutf8proc */
  oom_sweep("{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
            "{\"type\":\"NFKC\"},{\"type\":\"BertNormalizer\"}]},"
            "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
            "\"decoder\":{\"type\":\"WordPiece\"},"
            "\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"[UNK]\":0,"
            "\"caf\":1,\"##e\":2,\".\":3}}}",
            "Caf\xc3\xa9. \xef\xac\x81", "cafe. [UNK]", 600);
  oom_sweep("{\"normalizer\":{\"type\":\"NFD\"},"
            "\"pre_tokenizer\":{\"type\":\"Punctuation\"},"
            "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":["
            "[\"<unk>\",0],[\"a\",-1],[\"b\",-1],[\"ab\",-1]]}}",
            "ab!xb", "ab <unk> <unk> b", 600);
  /* the Precompiled normalizer (its charsmap at load, the grapheme walk) */
  oom_sweep("{\"normalizer\":{\"type\":\"Precompiled\","
            "\"precompiled_charsmap\":\"" TINY_CHARSMAP "\"},"
            "\"model\":{\"type\":\"BPE\",\"merges\":[],\"vocab\":"
            "{\"a\":0,\"E\":1,\"f\":2,\"i\":3}}}",
            "Ae\xcc\x81\xef\xac\x81\xe2\x80\x8b", "a E f i", 600);
}

/* Replays the fuzz corpus (seeds and crash regressions) through the
 * fuzz harness, which aborts on a violated property. */
static void test_fuzz_corpus(void) {
  const char *dir = COH_TEST_DATA "/../fuzz/corpus/tokenizer";
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  REQUIRE(d != NULL);
  while ((e = readdir(d)) != NULL) {
    char path[1024];
    char *buf = NULL;
    size_t len = 0;
    coh_err err;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (coh__read_file(path, &buf, &len, &err) != COH_OK) continue;
    coh__fuzz_tokenizer_one((const uint8_t *)buf, len);
    coh__free(buf);
    n++;
  }
  closedir(d);
  fprintf(stderr, "  %d corpus files replayed\n", n);
  CHECK(n >= 5);
  coh_tokenizer_free(fuzz_ref[0]);
  coh_tokenizer_free(fuzz_ref[1]);
  fuzz_ref[0] = fuzz_ref[1] = NULL;
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_gpt2_cases);
  RUN(test_llama_cases);
  RUN(test_tiny_bpe);
  RUN(test_metaspace);
  RUN(test_split_regex);
  RUN(test_llama3_style);
  RUN(test_real_regexes);
  RUN(test_bad_json);
  RUN(test_bad_fields);
  RUN(test_unsupported);
  RUN(test_normalizers);
  RUN(test_ignored_settings);
  RUN(test_wordpiece);
  RUN(test_unigram);
  RUN(test_precompiled);
  RUN(test_precompiled_bad);
  RUN(test_missing_file);
  RUN(test_bounds_at_load);
  RUN(test_bounds_at_run);
  RUN(test_invalid_utf8);
  RUN(test_empty);
  RUN(test_decode_range);
  RUN(test_round_trip);
  RUN(test_special_in_text);
  RUN(test_speed);
  RUN(test_threads);
  RUN(test_out_of_memory);
  RUN(test_fuzz_corpus);
  return TEST_MAIN_END();
}
