/*
 * test_engine_grammar.c — constrained decoding in the engine (coh_request.
 * grammar) on a random-weight fixture: every generated token is one the
 * grammar accepts (replayed through a fresh parse state), complete outputs
 * match the language (checked by hand-written recognisers and jansson, not
 * by the grammar engine), a complete output that allows only end-of-sequence
 * finishes at once, and batched constrained requests produce exactly the
 * tokens they produce alone (batch invariance), with the helper thread that
 * computes masks during the forward pass, and the whitespace bound
 * (coh_request.max_ws_run).  Runs under ThreadSanitizer too
 * (scripts/test.sh).
 */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/grammar.h"
#include "cohort/infer.h"
#include "test.h"

#define MAX_GEN 200

#include "test_fixture.h"

typedef struct out {
  int32_t ids[MAX_GEN];
  int n;
  coh_finish finish;
  int events_after_finish;
  char text[8192];
  size_t text_len;
} out;

static void collect(void *user, const coh_token_event *ev) {
  out *o = user;
  if (o->finish != COH_FINISH_NONE) o->events_after_finish++;
  if (ev->token >= 0 && o->n < MAX_GEN) o->ids[o->n++] = ev->token;
  if (ev->text_len && o->text_len + ev->text_len < sizeof o->text) {
    memcpy(o->text + o->text_len, ev->text, ev->text_len);
    o->text_len += ev->text_len;
  }
  o->finish = ev->finish;
}

static const int32_t PROMPT[] = {1, 450, 1234, 29901};

static int submit(coh_engine *e, const coh_grammar *g, int max_tokens,
                  float temperature, uint64_t seed, out *o) {
  coh_request r;
  coh_err err;
  uint64_t id;
  coh_request_default(&r);
  r.prompt = PROMPT;
  r.n_prompt = sizeof PROMPT / sizeof PROMPT[0];
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.seed = seed;
  r.grammar = g;
  r.on_token = collect;
  r.user = o;
  memset(o, 0, sizeof *o);
  if (coh_engine_submit(e, &r, &id, &err)) {
    fprintf(stderr, "submit: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static coh_grammar *ebnf(const char *text) {
  coh_grammar *g = NULL;
  coh_err err;
  if (coh_grammar_from_ebnf(text, strlen(text), "test", &g, &err)) {
    fprintf(stderr, "ebnf: %s\n", err.msg);
    return NULL;
  }
  return g;
}

static int is_eos(const coh_model *m, int32_t t) {
  const coh_model_info *info = coh_model_get_info(m);
  int k;
  for (k = 0; k < info->n_eos; k++)
    if (t == info->eos_ids[k]) return 1;
  return 0;
}

/* Replays o's tokens through a fresh parse state: each must be accepted
 * (an EOS id only at the end, when the state is complete).  Returns 1 when
 * the whole output is accepted and, if finish is EOS, complete. */
static int replay(const coh_model *m, const coh_grammar *g,
                  const coh_grammar_vocab *v, const out *o) {
  coh_grammar_state *s = NULL;
  coh_err err;
  int i, ok = 1;
  if (coh_grammar_state_new(g, v, &s, &err)) return 0;
  for (i = 0; ok && i < o->n; i++) {
    if (is_eos(m, o->ids[i])) {
      ok = i == o->n - 1 && coh_grammar_state_is_complete(s);
      break;
    }
    if (coh_grammar_state_accept(s, o->ids[i], &err)) {
      fprintf(stderr, "replay: token %d (#%d): %s\n", o->ids[i], i, err.msg);
      ok = 0;
    }
  }
  if (ok && o->finish == COH_FINISH_EOS) ok = coh_grammar_state_is_complete(s);
  coh_grammar_state_free(s);
  return ok;
}

static coh_grammar_vocab *vocab_of(const coh_model *m) {
  const coh_model_info *info = coh_model_get_info(m);
  coh_grammar_vocab *v = NULL;
  coh_err err;
  if (coh_grammar_vocab_new(coh_model_tokenizer(m), info->eos_ids, (size_t)info->n_eos, &v, &err)) {
    fprintf(stderr, "vocab: %s\n", err.msg);
    return NULL;
  }
  return v;
}

/* The language [d+(,d+)*] written out by hand. */
static int is_int_list(const char *t, size_t n) {
  size_t i = 0;
  if (i >= n || t[i++] != '[') return 0;
  for (;;) {
    size_t d = 0;
    while (i < n && isdigit((unsigned char)t[i])) i++, d++;
    if (d == 0 || i >= n) return 0;
    if (t[i] == ']') return i + 1 == n;
    if (t[i++] != ',') return 0;
  }
}

static const char *LIST = "root ::= \"[\" num (\",\" num)* \"]\"\nnum ::= [0-9]+\n";

/* Greedy and sampled outputs under a small grammar: accepted token by
 * token; every complete one is in the language; EOS only when complete. */
static void test_list_grammar(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_grammar *g = ebnf(LIST);
  coh_grammar_vocab *v = NULL;
  coh_engine *e = NULL;
  coh_engine_stats st;
  coh_err err;
  static out o[8];
  int i, complete = 0;
  REQUIRE(m != NULL && g != NULL);
  REQUIRE((v = vocab_of(m)) != NULL);
  REQUIRE(coh_engine_new(m, 8, &e, &err) == 0);
  for (i = 0; i < 8; i++) REQUIRE(submit(e, g, 150, i == 0 ? 0.0f : 1.0f, (uint64_t)i, &o[i]) == 0);
  REQUIRE(run_all(e) == 0);
  for (i = 0; i < 8; i++) {
    CHECK(o[i].n > 0);
    CHECK(o[i].finish == COH_FINISH_EOS || o[i].finish == COH_FINISH_LENGTH);
    CHECK_EQ_INT(o[i].events_after_finish, 0);
    CHECK(replay(m, g, v, &o[i]));
    if (o[i].finish == COH_FINISH_EOS) {
      complete++;
      if (!is_int_list(o[i].text, o[i].text_len)) {
        fprintf(stderr, "not in the language: '%.*s'\n", (int)o[i].text_len, o[i].text);
        CHECK(0);
      }
    } else {
      /* a prefix of the language: starts with '[', no stray bytes */
      CHECK(o[i].text_len > 0 && o[i].text[0] == '[');
    }
  }
  fprintf(stderr, "  list grammar: %d of 8 complete\n", complete);
  coh_engine_get_stats(e, &st);
  CHECK(st.masks > 0);
  CHECK(st.mask_seconds > 0.0);
  coh_engine_free(e);
  coh_grammar_vocab_free(v);
  coh_grammar_free(g);
  coh_model_close(m);
}

/* A grammar with exactly one sentence: the request finishes with EOS as
 * soon as the sentence is complete, without generating an EOS token. */
static void test_fixed_sentence(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_grammar *g = ebnf("root ::= \"hello world\"\n");
  coh_engine *e = NULL;
  coh_err err;
  out o;
  int i;
  REQUIRE(m != NULL && g != NULL);
  REQUIRE(coh_engine_new(m, 1, &e, &err) == 0);
  REQUIRE(submit(e, g, 50, 1.0f, 3, &o) == 0);
  REQUIRE(run_all(e) == 0);
  CHECK_EQ_INT(o.finish, COH_FINISH_EOS);
  CHECK(o.text_len == 11 && !memcmp(o.text, "hello world", 11));
  CHECK(o.n >= 1 && o.n <= 11);
  for (i = 0; i < o.n; i++) CHECK(!is_eos(m, o.ids[i]));
  coh_engine_free(e);
  coh_grammar_free(g);
  coh_model_close(m);
}

/* Checks a complete output of BOUNDED against the schema by hand (jansson):
 * exactly the keys a (boolean) and b ("x" or "y"). */
static const char *BOUNDED =
    "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"boolean\"}, "
    "\"b\": {\"enum\": [\"x\", \"y\"]}}, \"required\": [\"a\", \"b\"], "
    "\"additionalProperties\": false}";

static int bounded_ok(const char *text, size_t len) {
  json_error_t je;
  json_t *j = json_loadb(text, len, 0, &je), *b;
  int ok = j != NULL && json_is_object(j) && json_object_size(j) == 2 &&
           json_is_boolean(json_object_get(j, "a")) &&
           json_is_string(b = json_object_get(j, "b")) &&
           (!strcmp(json_string_value(b), "x") || !strcmp(json_string_value(b), "y"));
  json_decref(j);
  return ok;
}

/* Any JSON object, and a JSON Schema whose language is small: every complete
 * output parses (jansson) as an object, and under the schema has exactly
 * its keys and values.  The schema's outputs are short, so most complete
 * even on random weights (any JSON object rarely does: strings go on). */
static void test_json_object(void) {
  coh_model *m = open_model(fixture("llama-tiny-gqa-fp32"));
  coh_grammar *g = NULL, *gs = NULL;
  coh_engine *e = NULL;
  coh_err err;
  static out o[12];
  int i, complete = 0, complete_schema = 0;
  REQUIRE(m != NULL);
  REQUIRE(coh_grammar_any_json_object(&g, &err) == 0);
  REQUIRE(coh_grammar_from_json_schema(BOUNDED, strlen(BOUNDED), "bounded", &gs, &err) == 0);
  REQUIRE(coh_engine_new(m, 12, &e, &err) == 0);
  for (i = 0; i < 12; i++)
    REQUIRE(submit(e, i < 6 ? g : gs, 200, i % 6 < 2 ? 0.0f : 0.7f, 100 + (uint64_t)i, &o[i]) == 0);
  REQUIRE(run_all(e) == 0);
  for (i = 0; i < 12; i++) {
    if (o[i].finish == COH_FINISH_EOS) {
      json_error_t je;
      json_t *j = json_loadb(o[i].text, o[i].text_len, 0, &je);
      if (i < 6) complete++;
      else complete_schema++;
      if (j == NULL || !json_is_object(j) || (i >= 6 && !bounded_ok(o[i].text, o[i].text_len))) {
        fprintf(stderr, "not a valid object: '%.*s'\n", (int)o[i].text_len, o[i].text);
        CHECK(0);
      }
      json_decref(j);
    } else {
      CHECK_EQ_INT(o[i].finish, COH_FINISH_LENGTH);
    }
  }
  fprintf(stderr, "  json object: %d of 6 complete; bounded schema: %d of 6\n", complete,
          complete_schema);
  CHECK(complete_schema >= 3);
  coh_engine_free(e);
  coh_grammar_free(g);
  coh_grammar_free(gs);
  coh_model_close(m);
}

/* Batch invariance with grammars: 12 requests (three grammars and none,
 * greedy and sampled) joining a batch of 8 at different steps give exactly
 * the tokens and finish each gives alone. */
static void test_batch_invariance(void) {
  static const char *const models[] = {"llama-tiny-plain-fp32", "llama-tiny-gqa-fp32"};
  int mi;
  for (mi = 0; mi < 2; mi++) {
    coh_model *m = open_model(fixture(models[mi]));
    coh_grammar *gs[4] = {NULL, NULL, NULL, NULL};
    coh_engine *e = NULL;
    coh_err err;
    static out alone[12], batched[12];
    int i, same = 0, step;
    REQUIRE(m != NULL);
    gs[0] = ebnf(LIST);
    gs[1] = ebnf("root ::= \"{\" ws \"\\\"a\\\"\" ws \":\" ws [a-z]+ ws \"}\"\nws ::= [ \\t\\n]*\n");
    REQUIRE(coh_grammar_any_json_object(&gs[2], &err) == 0);
    REQUIRE(gs[0] != NULL && gs[1] != NULL);
    for (i = 0; i < 12; i++) {
      REQUIRE(coh_engine_new(m, 1, &e, &err) == 0);
      REQUIRE(submit(e, gs[i % 4], 60, i % 3 == 0 ? 0.0f : 0.9f, 7 + (uint64_t)i, &alone[i]) == 0);
      REQUIRE(run_all(e) == 0);
      coh_engine_free(e);
    }
    REQUIRE(coh_engine_new(m, 8, &e, &err) == 0);
    /* four join now, the rest two per step while others decode */
    for (i = 0; i < 4; i++)
      REQUIRE(submit(e, gs[i % 4], 60, i % 3 == 0 ? 0.0f : 0.9f, 7 + (uint64_t)i, &batched[i]) == 0);
    for (step = 0; step < 10000 && coh_engine_busy(e); step++) {
      if (i < 12 && step % 2 == 1) {
        int k;
        for (k = 0; k < 2 && i < 12; k++, i++)
          REQUIRE(submit(e, gs[i % 4], 60, i % 3 == 0 ? 0.0f : 0.9f, 7 + (uint64_t)i, &batched[i]) == 0);
      }
      REQUIRE(coh_engine_step(e, &err) == 0);
    }
    CHECK_EQ_INT(i, 12);
    for (i = 0; i < 12; i++) {
      int eq = alone[i].n == batched[i].n && alone[i].finish == batched[i].finish &&
               !memcmp(alone[i].ids, batched[i].ids, (size_t)alone[i].n * sizeof(int32_t));
      if (!eq) fprintf(stderr, "  %s request %d differs batched vs alone\n", models[mi], i);
      same += eq;
    }
    CHECK_EQ_INT(same, 12);
    coh_engine_free(e);
    for (i = 0; i < 4; i++) coh_grammar_free(gs[i]);
    coh_model_close(m);
  }
}

/* Refused combinations, and an engine freed with constrained requests
 * still queued and active (the helper thread ends cleanly). */
static void test_errors_and_teardown(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_grammar *g = ebnf(LIST);
  coh_engine *e = NULL;
  coh_request r;
  coh_err err;
  uint64_t id;
  static out o[3];
  int i;
  REQUIRE(m != NULL && g != NULL);
  REQUIRE(coh_engine_new(m, 2, &e, &err) == 0);
  coh_request_default(&r);
  r.prompt = PROMPT;
  r.n_prompt = 2;
  r.grammar = g;
  r.ignore_eos = 1;
  CHECK_EQ_INT(coh_engine_submit(e, &r, &id, &err), COH_EINVAL);
  CHECK(strstr(err.msg, "ignore_eos") != NULL);
  for (i = 0; i < 3; i++) REQUIRE(submit(e, g, 100, 1.0f, (uint64_t)i, &o[i]) == 0);
  REQUIRE(coh_engine_step(e, &err) == 0);
  REQUIRE(coh_engine_step(e, &err) == 0);
  coh_engine_free(e); /* two active, one queued */
  coh_grammar_free(g);
  coh_model_close(m);
}

/* Whether token t's bytes are all JSON whitespace (ws_only) and whether
 * they end in whitespace (ends_ws). */
static void ws_kind(const coh_model *m, int32_t t, int *ws_only, int *ends_ws) {
  char buf[512];
  size_t len = 0, i;
  coh_err err;
  *ws_only = *ends_ws = 0;
  if (coh_tokenizer_token_bytes(coh_model_tokenizer(m), t, buf, sizeof buf, &len, &err) ||
      len == 0)
    return;
  for (i = 0; i < len && strchr(" \t\n\r", buf[i]) != NULL && buf[i]; i++) {}
  *ws_only = i == len;
  *ends_ws = strchr(" \t\n\r", buf[len - 1]) != NULL && buf[len - 1];
}

/* coh_request.max_ws_run: without it a random model under a grammar that
 * allows whitespace anywhere emits whitespace-only tokens back to back;
 * with max_ws_run = 1 a whitespace-only token never follows an output that
 * ends in whitespace (the grammar always allows something else here), every
 * output still follows the grammar, and all of them complete. */
static void test_ws_bound(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_grammar *g;
  coh_grammar_vocab *v;
  coh_engine *e = NULL;
  coh_err err;
  static out o[8];
  int i, k, pairs_free = 0, pairs_bounded = 0, complete = 0;
  REQUIRE(m != NULL);
  g = ebnf("root ::= ws \"[\" ws \"1\" ws \"]\"\nws ::= [ \\t\\n]*\n");
  REQUIRE(g != NULL);
  v = vocab_of(m);
  REQUIRE(v != NULL);
  REQUIRE(coh_engine_new(m, 8, &e, &err) == 0);
  for (i = 0; i < 8; i++) {
    coh_request r;
    uint64_t id;
    coh_request_default(&r);
    r.prompt = PROMPT;
    r.n_prompt = sizeof PROMPT / sizeof PROMPT[0];
    r.max_tokens = 60;
    r.sampling.temperature = 1.0f;
    r.sampling.seed = 7 + (uint64_t)(i % 4);
    r.grammar = g;
    r.max_ws_run = i < 4 ? 0 : 1;
    r.on_token = collect;
    r.user = &o[i];
    memset(&o[i], 0, sizeof o[i]);
    REQUIRE(coh_engine_submit(e, &r, &id, &err) == 0);
  }
  REQUIRE(run_all(e) == 0);
  for (i = 0; i < 8; i++) {
    CHECK(replay(m, g, v, &o[i]));
    for (k = 1; k < o[i].n; k++) {
      int wo_prev, end_prev, wo, end;
      if (is_eos(m, o[i].ids[k])) break;
      ws_kind(m, o[i].ids[k - 1], &wo_prev, &end_prev);
      ws_kind(m, o[i].ids[k], &wo, &end);
      if (end_prev && wo) {
        if (i < 4) pairs_free++;
        else pairs_bounded++;
      }
    }
    if (i >= 4 && o[i].finish == COH_FINISH_EOS) complete++;
  }
  fprintf(stderr, "  whitespace after whitespace: %d unbounded, %d with max_ws_run 1; "
          "%d of 4 bounded complete\n", pairs_free, pairs_bounded, complete);
  CHECK(pairs_free > 0);  /* the bound has something to do */
  CHECK_EQ_INT(pairs_bounded, 0);
  CHECK_EQ_INT(complete, 4);
  coh_engine_free(e);
  coh_grammar_vocab_free(v);
  coh_grammar_free(g);
  coh_model_close(m);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_list_grammar);
  RUN(test_fixed_sentence);
  RUN(test_json_object);
  RUN(test_batch_invariance);
  RUN(test_errors_and_teardown);
  RUN(test_ws_bound);
  return TEST_MAIN_END();
}
