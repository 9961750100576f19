/*
 * test_chat_request.c — chat llm requests ("messages"): validation, the plain
 * format of a model without a template, the history_tokens budget, and the
 * model's end-of-sequence / end-of-turn ids (generation_config.json and the
 * tokenizer's end-of-turn special tokens), and structured output
 * (response_format, tools, tool_choice: the grammars they compile to, the
 * errors, coh_llm_tool_calls).  Runs on the fixture models of
 * tools/mkfixture.py ($COH_FIXTURES).
 */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "cohort/infer.h"
#include "test.h"

#include "test_fixture.h"

/* Parses json expecting code and needle in the message. */
static void parse_fails(coh_model *m, const char *json, int code, const char *needle) {
  coh_llm_request lr;
  coh_err err;
  coh_err_clear(&err);
  CHECK_EQ_INT(coh_llm_request_parse(json, strlen(json), m, 1, &lr, &err), code);
  if (strstr(err.msg, needle) == NULL) {
    fprintf(stderr, "  %s\n  message \"%s\" lacks \"%s\"\n", json, err.msg, needle);
    CHECK(!"error message");
  }
  CHECK(strchr(err.msg, '\n') == NULL); /* one line */
  coh_llm_request_free(&lr);
}

/* The ids of text, with the tokenizer's special tokens. */
static size_t encode(coh_model *m, const char *text, int32_t **ids) {
  coh_err err;
  size_t n = 0;
  *ids = NULL;
  if (coh_tokenizer_encode(coh_model_tokenizer(m), text, strlen(text), 1, ids, &n, &err)) {
    CHECK(!"encode");
    return 0;
  }
  return n;
}

static void test_plain_format(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_llm_request lr;
  coh_err err;
  int32_t *ids;
  size_t n;
  const char *json =
      "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
      "{\"role\":\"user\",\"content\":\"Hi there\",\"name\":\"alice\"},"
      "{\"role\":\"assistant\",\"content\":\"Hello.\"},"
      "{\"role\":\"user\",\"content\":\"Bye\"}],\"max_tokens\":3}";
  REQUIRE(m != NULL);
  /* the fixture folder has no chat template: the plain format */
  CHECK(coh_model_chat_template(m) == NULL);
  REQUIRE(coh_llm_request_parse(json, strlen(json), m, 7, &lr, &err) == COH_OK);
  CHECK_EQ_INT(lr.chat, 1);
  CHECK_STR(lr.text, "SYSTEM: Be brief.\nalice (USER): Hi there\nASSISTANT: Hello.\n"
                     "USER: Bye\nASSISTANT: ");
  CHECK_EQ_INT(lr.text_len, strlen(lr.text));
  /* the plain format is tokenized like a prompt: with BOS */
  n = encode(m, lr.text, &ids);
  CHECK_EQ_INT(lr.req.n_prompt, n);
  CHECK(lr.req.prompt == lr.ids);
  CHECK(n > 0 && ids[0] == coh_model_get_info(m)->bos_id);
  CHECK(memcmp(lr.ids, ids, n * sizeof *ids) == 0);
  CHECK_EQ_INT(lr.req.max_tokens, 3);
  coh_free(ids);
  coh_llm_request_free(&lr);

  /* add_generation_prompt false: no trailing assistant header */
  json = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"add_generation_prompt\":false}";
  REQUIRE(coh_llm_request_parse(json, strlen(json), m, 7, &lr, &err) == COH_OK);
  CHECK_STR(lr.text, "USER: x\n");
  coh_llm_request_free(&lr);

  /* a prompt request keeps its text and tokenization */
  json = "{\"prompt\":\"Once upon\"}";
  REQUIRE(coh_llm_request_parse(json, strlen(json), m, 7, &lr, &err) == COH_OK);
  CHECK_EQ_INT(lr.chat, 0);
  CHECK_STR(lr.text, "Once upon");
  n = encode(m, "Once upon", &ids);
  CHECK_EQ_INT(lr.req.n_prompt, n);
  CHECK(memcmp(lr.ids, ids, n * sizeof *ids) == 0);
  coh_free(ids);
  coh_llm_request_free(&lr);
  coh_model_close(m);
}

static void test_bad_chat_requests(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  REQUIRE(m != NULL);
  parse_fails(m, "{\"prompt\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}",
              COH_EFORMAT, "exactly one of the fields 'prompt' and 'messages'");
  parse_fails(m, "{\"max_tokens\":3}", COH_EFORMAT,
              "exactly one of the fields 'prompt' and 'messages'");
  parse_fails(m, "{\"messages\":[]}", COH_EFORMAT, "field 'messages' must be an array of 1 to");
  parse_fails(m, "{\"messages\":\"hi\"}", COH_EFORMAT, "field 'messages' must be an array");
  parse_fails(m, "{\"messages\":[{\"role\":\"user\",\"content\":\"b\"},{\"content\":\"c\"}]}",
              COH_EFORMAT, "field 'messages[1].role' is missing");
  parse_fails(m, "{\"messages\":[{\"role\":\"\",\"content\":\"b\"}]}", COH_EFORMAT,
              "field 'messages[0].role' must be a non-empty string");
  parse_fails(m, "{\"messages\":[{\"role\":\"user\"}]}", COH_EFORMAT,
              "field 'messages[0].content' is missing");
  parse_fails(m, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", COH_EFORMAT,
              "field 'messages[0].content' must be a string");
  parse_fails(m, "{\"messages\":[{\"role\":\"user\",\"content\":\"b\",\"mood\":1}]}",
              COH_EFORMAT, "unknown field 'messages[0].mood'");
  parse_fails(m, "{\"messages\":[7]}", COH_EFORMAT, "field 'messages[0]' must be an object");
  parse_fails(m, "{\"messages\":[{\"role\":\"user\",\"content\":\"b\"}],\"tools\":{}}",
              COH_EFORMAT, "field 'tools' must be an array of objects");
  parse_fails(m, "{\"messages\":[{\"role\":\"user\",\"content\":\"b\"}],\"tools\":[{},\"f\"]}",
              COH_EFORMAT, "field 'tools[1]' must be an object");
  parse_fails(m, "{\"messages\":[{\"role\":\"user\",\"content\":\"b\"}],\"template_vars\":[]}",
              COH_EFORMAT, "field 'template_vars' must be an object");
  parse_fails(m,
              "{\"messages\":[{\"role\":\"user\",\"content\":\"b\"}],"
              "\"template_vars\":{\"messages\":[]}}",
              COH_EFORMAT, "field 'template_vars' may not set messages");
  parse_fails(m, "{\"prompt\":\"a\",\"tools\":[]}", COH_EFORMAT,
              "field 'tools' needs 'messages'");
  parse_fails(m, "{\"prompt\":\"a\",\"history_tokens\":5}", COH_EFORMAT,
              "field 'history_tokens' needs 'messages'");
  parse_fails(m, "{\"messages\":[{\"role\":\"user\",\"content\":\"b\"}],\"history_tokens\":0}",
              COH_EFORMAT, "field 'history_tokens' must be an integer in [1, 16777216]");
  parse_fails(m,
              "{\"messages\":[{\"role\":\"user\",\"content\":\"b\"}],"
              "\"add_generation_prompt\":1}",
              COH_EFORMAT, "field 'add_generation_prompt' must be true or false");
  coh_model_close(m);
}

/* The token count of the plain rendering of messages (a JSON array). */
static size_t plain_tokens(coh_model *m, const char *msgs, char *text, size_t cap) {
  char json[4096];
  coh_llm_request lr;
  coh_err err;
  size_t n;
  snprintf(json, sizeof json, "{\"messages\":%s}", msgs);
  if (coh_llm_request_parse(json, strlen(json), m, 1, &lr, &err)) {
    fprintf(stderr, "  %s\n", err.msg);
    CHECK(!"parse");
    coh_llm_request_free(&lr);
    return 0;
  }
  n = lr.req.n_prompt;
  snprintf(text, cap, "%s", lr.text);
  coh_llm_request_free(&lr);
  return n;
}

static void test_history_budget(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  const char *sys = "{\"role\":\"system\",\"content\":\"You are a careful judge of debates.\"}";
  const char *u1 = "{\"role\":\"user\",\"content\":\"First argument: cats are better.\",\"name\":\"ann\"}";
  const char *a1 = "{\"role\":\"assistant\",\"content\":\"Noted, with reservations.\"}";
  const char *u2 = "{\"role\":\"user\",\"content\":\"Second: dogs are loyal.\",\"name\":\"bob\"}";
  const char *a2 = "{\"role\":\"assistant\",\"content\":\"Loyalty counts.\"}";
  const char *u3 = "{\"role\":\"user\",\"content\":\"Verdict?\",\"name\":\"ann\"}";
  char all[2048], keep2[2048], keep1[2048], json[4096], want2[2048], want1[2048], full[2048];
  size_t n_all, n2, n1;
  coh_llm_request lr;
  coh_err err;
  REQUIRE(m != NULL);
  snprintf(all, sizeof all, "[%s,%s,%s,%s,%s,%s]", sys, u1, a1, u2, a2, u3);
  snprintf(keep2, sizeof keep2, "[%s,%s,%s,%s]", sys, u2, a2, u3);
  snprintf(keep1, sizeof keep1, "[%s,%s]", sys, u3);
  n_all = plain_tokens(m, all, full, sizeof full);
  n2 = plain_tokens(m, keep2, want2, sizeof want2);
  n1 = plain_tokens(m, keep1, want1, sizeof want1);
  REQUIRE(n1 < n2 && n2 < n_all);

  /* a budget the whole chat fits: nothing dropped */
  snprintf(json, sizeof json, "{\"messages\":%s,\"history_tokens\":%zu}", all, n_all);
  REQUIRE(coh_llm_request_parse(json, strlen(json), m, 1, &lr, &err) == COH_OK);
  CHECK_EQ_INT(lr.n_dropped, 0);
  CHECK_STR(lr.text, full);
  coh_llm_request_free(&lr);
  /* one token less: the oldest turn (user + assistant) goes, the system
   * prompt stays */
  snprintf(json, sizeof json, "{\"messages\":%s,\"history_tokens\":%zu}", all, n_all - 1);
  REQUIRE(coh_llm_request_parse(json, strlen(json), m, 1, &lr, &err) == COH_OK);
  CHECK_EQ_INT(lr.n_dropped, 2);
  CHECK_STR(lr.text, want2);
  CHECK_EQ_INT(lr.req.n_prompt, n2);
  coh_llm_request_free(&lr);
  /* exactly the budget of system + last turn */
  snprintf(json, sizeof json, "{\"messages\":%s,\"history_tokens\":%zu}", all, n1);
  REQUIRE(coh_llm_request_parse(json, strlen(json), m, 1, &lr, &err) == COH_OK);
  CHECK_EQ_INT(lr.n_dropped, 4);
  CHECK_STR(lr.text, want1);
  coh_llm_request_free(&lr);
  /* smaller than the system prompt and the last message: an error */
  snprintf(json, sizeof json, "{\"messages\":%s,\"history_tokens\":%zu}", all, n1 - 1);
  parse_fails(m, json, COH_EFORMAT, "field 'history_tokens'");
  coh_model_close(m);
}

static void copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  char buf[65536];
  size_t n;
  if (a && b)
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
  if (a) fclose(a);
  if (b) fclose(b);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static int has_eos(const coh_model_info *info, int32_t id) {
  int k;
  for (k = 0; k < info->n_eos; k++)
    if (info->eos_ids[k] == id) return 1;
  return 0;
}

/* A copy of the plain fixture with generation_config.json and a tokenizer
 * whose added tokens include end-of-turn markers: special ones stop
 * generation, a non-special one is ordinary text. */
static void test_stop_ids(void) {
  char tmpl[] = "/tmp/cohort-chatstop-XXXXXX";
  char *dir = mkdtemp(tmpl);
  char path[1200], src[1200];
  static const char *const files[] = {"genai_config.json", "config.json", "model.onnx"};
  json_error_t je;
  json_t *tok, *added;
  coh_model *m;
  size_t i;
  REQUIRE(dir != NULL);
  for (i = 0; i < 3; i++) {
    snprintf(src, sizeof src, "%s/%s", fixture("llama-tiny-plain-fp32"), files[i]);
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    copy_file(src, path);
  }
  snprintf(src, sizeof src, "%s/tokenizer.json", fixture("llama-tiny-plain-fp32"));
  tok = json_load_file(src, 0, &je);
  REQUIRE(tok != NULL);
  added = json_object_get(tok, "added_tokens");
  REQUIRE(json_is_array(added));
  json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", 31990, "content",
                                         "<|eot_id|>", "single_word", 0, "lstrip", 0, "rstrip", 0,
                                         "normalized", 0, "special", 1));
  json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", 31991, "content",
                                         "<|im_end|>", "single_word", 0, "lstrip", 0, "rstrip", 0,
                                         "normalized", 0, "special", 0));
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  REQUIRE(json_dump_file(tok, path, 0) == 0);
  json_decref(tok);

  /* without generation_config.json: the config's eos and <|eot_id|> */
  m = open_model(dir);
  REQUIRE(m != NULL);
  CHECK(has_eos(coh_model_get_info(m), 2));
  CHECK(has_eos(coh_model_get_info(m), 31990));
  CHECK(!has_eos(coh_model_get_info(m), 31991)); /* not special */
  CHECK_EQ_INT(coh_model_get_info(m)->n_eos, 2);
  coh_model_close(m);

  snprintf(path, sizeof path, "%s/generation_config.json", dir);
  write_text(path, "{\"bos_token_id\":1,\"eos_token_id\":[2,7,31990,9]}");
  m = open_model(dir);
  REQUIRE(m != NULL);
  CHECK_EQ_INT(coh_model_get_info(m)->n_eos, 4); /* 2, 7, 9, 31990: no duplicates */
  CHECK(has_eos(coh_model_get_info(m), 7) && has_eos(coh_model_get_info(m), 9));
  coh_model_close(m);
  write_text(path, "{\"eos_token_id\":5}");
  m = open_model(dir);
  REQUIRE(m != NULL);
  CHECK_EQ_INT(coh_model_get_info(m)->n_eos, 3);
  CHECK(has_eos(coh_model_get_info(m), 5));
  coh_model_close(m);

  /* a bad generation_config.json names its file and field */
  {
    coh_model_options o;
    coh_err err;
    coh_model_options_default(&o);
    o.device = COH_DEVICE_CPU;
    write_text(path, "{\"eos_token_id\":\"x\"}");
    m = NULL;
    CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_EFORMAT);
    CHECK(strstr(err.msg, "generation_config.json") && strstr(err.msg, "eos_token_id"));
    write_text(path, "{\"eos_token_id\":[2,40000]}");
    CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_EFORMAT);
    CHECK(strstr(err.msg, "generation_config.json") && strstr(err.msg, "eos_token_id[1]"));
    write_text(path, "[1]");
    CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_EFORMAT);
    CHECK(strstr(err.msg, "generation_config.json") != NULL);
  }

  for (i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/generation_config.json", dir);
  unlink(path);
  rmdir(dir);
}

/* ---- structured output: response_format, tools, tool_choice ------------ */

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]"
#define TOOLS                                                                          \
  "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"meet\",\"description\":" \
  "\"d\",\"parameters\":{\"type\":\"object\",\"properties\":{\"hour\":{\"$ref\":"      \
  "\"#/$defs/h\"}},\"required\":[\"hour\"],\"additionalProperties\":false,\"$defs\":"  \
  "{\"h\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":23}}}}},"                    \
  "{\"type\":\"function\",\"function\":{\"name\":\"wait\"}}]"

/* Parses json, which must succeed; the caller frees *lr. */
static int parse_ok(coh_model *m, const char *json, coh_llm_request *lr) {
  coh_err err;
  int rc = coh_llm_request_parse(json, strlen(json), m, 1, lr, &err);
  if (rc) fprintf(stderr, "  %s\n  -> %s\n", json, err.msg);
  CHECK_EQ_INT(rc, COH_OK);
  return rc;
}

/* Whether text, tokenized, walks through lr's grammar to a complete state
 * (every token in the mask). */
static int grammar_takes(coh_model *m, const coh_llm_request *lr, const char *text) {
  const coh_model_info *info = coh_model_get_info(m);
  coh_grammar_vocab *v = NULL;
  coh_grammar_state *s = NULL;
  int32_t *ids = NULL;
  uint32_t *mask = NULL;
  size_t n = 0, i;
  coh_err err;
  int ok = 0;
  if (coh_grammar_vocab_new(coh_model_tokenizer(m), info->eos_ids, (size_t)info->n_eos, &v,
                            &err) ||
      coh_grammar_state_new(lr->grammar, v, &s, &err) ||
      coh_tokenizer_encode(coh_model_tokenizer(m), text, strlen(text), 0, &ids, &n, &err))
    goto done;
  mask = calloc((size_t)(info->vocab + 31) / 32, 4);
  if (mask == NULL) goto done;
  for (i = 0; i < n; i++) {
    if (coh_grammar_state_mask(s, mask, &err) ||
        !(mask[ids[i] / 32] & (1u << (ids[i] % 32))) ||
        coh_grammar_state_accept(s, ids[i], &err))
      goto done;
  }
  ok = coh_grammar_state_is_complete(s);
done:
  free(mask);
  coh_free(ids);
  coh_grammar_state_free(s);
  coh_grammar_vocab_free(v);
  return ok;
}

static void test_response_format(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_llm_request lr;
  REQUIRE(m != NULL);
  if (!parse_ok(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_schema\","
                   "\"json_schema\":{\"name\":\"x\",\"strict\":true,\"schema\":{\"type\":"
                   "\"object\",\"properties\":{\"a\":{\"enum\":[1,2]}},\"required\":[\"a\"]}}}}",
                &lr)) {
    CHECK_EQ_INT(lr.response, COH_RESPONSE_JSON_SCHEMA);
    CHECK(lr.grammar != NULL && lr.req.grammar == lr.grammar);
    CHECK_EQ_INT(lr.req.max_ws_run, COH_LLM_MAX_WS_RUN);
    CHECK_EQ_INT(lr.tool_choice, COH_TOOLS_NONE);
    CHECK(grammar_takes(m, &lr, "{\"a\": 2}"));
    CHECK(!grammar_takes(m, &lr, "{\"a\": 3}"));
  }
  coh_llm_request_free(&lr);
  if (!parse_ok(m, "{\"prompt\":\"a\",\"max_ws_run\":0,\"response_format\":{\"type\":"
                   "\"json_object\"}}", &lr)) {
    CHECK_EQ_INT(lr.response, COH_RESPONSE_JSON_OBJECT);
    CHECK_EQ_INT(lr.req.max_ws_run, 0);
    CHECK(grammar_takes(m, &lr, "{\"k\": [1, {}]}"));
    CHECK(!grammar_takes(m, &lr, "[1]"));
  }
  coh_llm_request_free(&lr);
  if (!parse_ok(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"grammar\",\"grammar\":"
                   "\"root ::= \\\" \\\"? (\\\"yes\\\" | \\\"no\\\")\"}}", &lr)) {
    /* SentencePiece: the first token is "▁no" (docs/grammar.md) */
    CHECK_EQ_INT(lr.response, COH_RESPONSE_GRAMMAR);
    CHECK(grammar_takes(m, &lr, "no"));
    CHECK(!grammar_takes(m, &lr, "maybe"));
  }
  coh_llm_request_free(&lr);
  if (!parse_ok(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"text\"}}", &lr)) {
    CHECK(lr.grammar == NULL && lr.req.grammar == NULL);
    CHECK_EQ_INT(lr.response, COH_RESPONSE_TEXT);
  }
  coh_llm_request_free(&lr);

  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":\"json\"}", COH_EFORMAT,
              "field 'response_format' must be an object with a string 'type'");
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"xml\"}}", COH_EFORMAT,
              "field 'response_format.type' = 'xml'");
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_object\",\"schema\":{}}}",
              COH_EFORMAT, "unknown field 'response_format.schema' for type 'json_object'");
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_schema\"}}", COH_EFORMAT,
              "field 'response_format.json_schema' must be an object");
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                 "{\"name\":\"x\"}}}",
              COH_EFORMAT, "field 'response_format.json_schema.schema' must be an object");
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                 "{\"schema\":{},\"strict\":1}}}",
              COH_EFORMAT, "field 'response_format.json_schema.strict' must be true or false");
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                 "{\"schema\":{},\"mode\":1}}}",
              COH_EFORMAT, "unknown field 'response_format.json_schema.mode'");
  /* an unsupported keyword: the field, the keyword and its pointer, never ignored */
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                 "{\"schema\":{\"properties\":{\"a\":{\"patternProperties\":{}}}}}}}",
              COH_EUNSUPPORTED, "field 'response_format.json_schema.schema'");
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                 "{\"schema\":{\"properties\":{\"a\":{\"patternProperties\":{}}}}}}}",
              COH_EUNSUPPORTED, "/properties/a");
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"grammar\",\"grammar\":"
                 "\"root ::= x\"}}",
              COH_EFORMAT, "field 'response_format.grammar'");
  parse_fails(m, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"grammar\",\"grammar\":\"\"}}",
              COH_EFORMAT, "field 'response_format.grammar' must be a non-empty string");
  parse_fails(m, "{\"prompt\":\"a\",\"ignore_eos\":true,\"response_format\":{\"type\":"
                 "\"json_object\"}}",
              COH_EFORMAT, "field 'ignore_eos' cannot be used with constrained output");
  parse_fails(m, "{\"prompt\":\"a\",\"max_ws_run\":-1}", COH_EFORMAT,
              "field 'max_ws_run' must be an integer");
  coh_model_close(m);
}

static void test_tools(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_llm_request lr;
  char *calls = NULL;
  coh_err err;
  REQUIRE(m != NULL);
  /* default: auto — free output, the names kept for the result */
  if (!parse_ok(m, "{" MSG "," TOOLS "}", &lr)) {
    CHECK_EQ_INT(lr.tool_choice, COH_TOOLS_AUTO);
    CHECK(lr.grammar == NULL);
    CHECK_EQ_INT((int)lr.n_tools, 2);
    CHECK(!strcmp(lr.tool_names, "meet") && !strcmp(lr.tool_names + 5, "wait"));
  }
  coh_llm_request_free(&lr);
  if (!parse_ok(m, "{" MSG "," TOOLS ",\"tool_choice\":\"none\"}", &lr)) {
    CHECK_EQ_INT(lr.tool_choice, COH_TOOLS_NONE);
    CHECK(lr.grammar == NULL && lr.tool_names == NULL);
  }
  coh_llm_request_free(&lr);
  /* required: constrained to a call of either tool; $ref inside parameters
   * still resolves */
  if (!parse_ok(m, "{" MSG "," TOOLS ",\"tool_choice\":\"required\"}", &lr)) {
    CHECK_EQ_INT(lr.tool_choice, COH_TOOLS_REQUIRED);
    CHECK(lr.grammar != NULL && lr.req.grammar == lr.grammar);
    CHECK(grammar_takes(m, &lr,
                        "{\"tool_calls\": [{\"name\": \"meet\", \"arguments\": {\"hour\": 7}}]}"));
    CHECK(grammar_takes(m, &lr,
                        "{\"tool_calls\":[{\"name\":\"wait\",\"arguments\":{}},"
                        "{\"name\":\"meet\",\"arguments\":{\"hour\":23}}]}"));
    CHECK(!grammar_takes(m, &lr,
                         "{\"tool_calls\": [{\"name\": \"meet\", \"arguments\": {\"hour\": 24}}]}"));
    CHECK(!grammar_takes(m, &lr, "{\"tool_calls\": [{\"name\": \"run\", \"arguments\": {}}]}"));
    CHECK(!grammar_takes(m, &lr, "{\"tool_calls\": []}"));
    CHECK(!grammar_takes(m, &lr, "Hello"));
  }
  coh_llm_request_free(&lr);
  /* one call only */
  if (!parse_ok(m, "{" MSG "," TOOLS ",\"tool_choice\":\"required\",\"parallel_tool_calls\":false}",
                &lr)) {
    CHECK(grammar_takes(m, &lr, "{\"tool_calls\":[{\"name\":\"wait\",\"arguments\":{}}]}"));
    CHECK(!grammar_takes(m, &lr,
                         "{\"tool_calls\":[{\"name\":\"wait\",\"arguments\":{}},"
                         "{\"name\":\"wait\",\"arguments\":{}}]}"));
  }
  coh_llm_request_free(&lr);
  /* a named tool: only that one */
  if (!parse_ok(m, "{" MSG "," TOOLS ",\"tool_choice\":{\"type\":\"function\",\"function\":"
                   "{\"name\":\"wait\"}}}", &lr)) {
    CHECK_EQ_INT(lr.tool_choice, COH_TOOLS_NAMED);
    CHECK_EQ_INT((int)lr.n_tools, 1);
    CHECK(!strcmp(lr.tool_names, "wait"));
    CHECK(grammar_takes(m, &lr, "{\"tool_calls\":[{\"name\":\"wait\",\"arguments\":{}}]}"));
    CHECK(!grammar_takes(m, &lr,
                         "{\"tool_calls\":[{\"name\":\"meet\",\"arguments\":{\"hour\":1}}]}"));
  }
  coh_llm_request_free(&lr);

  parse_fails(m, "{" MSG ",\"tools\":[{\"type\":\"code\",\"function\":{\"name\":\"f\"}}]}",
              COH_EFORMAT, "field 'tools[0].type' must be \"function\"");
  parse_fails(m, "{" MSG ",\"tools\":[{\"type\":\"function\"}]}", COH_EFORMAT,
              "field 'tools[0].function' must be an object");
  parse_fails(m, "{" MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]}",
              COH_EFORMAT, "field 'tools[0].function.name' must be 1 to 64 characters");
  parse_fails(m, "{" MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                 "\"args\":{}}}]}",
              COH_EFORMAT, "unknown field 'tools[0].function.args'");
  parse_fails(m, "{" MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                 "\"parameters\":[]}}]}",
              COH_EFORMAT, "field 'tools[0].function.parameters' must be an object");
  parse_fails(m, "{" MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
                 "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}",
              COH_EFORMAT, "field 'tools[1].function.name': 'f' is also tools[0]");
  parse_fails(m, "{" MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                 "\"parameters\":{\"type\":\"object\",\"not\":{}}}}]}",
              COH_EUNSUPPORTED, "field 'tools[0].function.parameters'");
  /* an empty language (fuzzing found it: the engine's COH_EINVAL) */
  parse_fails(m, "{" MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                 "\"parameters\":{\"type\":\"integer\",\"minimum\":5,\"maximum\":3}}}]}",
              COH_EFORMAT, "field 'tools[0].function.parameters': the grammar matches no string");
  parse_fails(m, "{" MSG "," TOOLS ",\"tool_choice\":\"always\"}", COH_EFORMAT,
              "field 'tool_choice' = 'always'");
  parse_fails(m, "{" MSG "," TOOLS ",\"tool_choice\":{\"type\":\"function\"}}", COH_EFORMAT,
              "field 'tool_choice' must be");
  parse_fails(m, "{" MSG "," TOOLS ",\"tool_choice\":{\"type\":\"function\",\"function\":"
                 "{\"name\":\"fly\"}}}",
              COH_EFORMAT, "field 'tool_choice.function.name' = 'fly' is not one of the tools");
  parse_fails(m, "{" MSG ",\"tool_choice\":\"auto\"}", COH_EFORMAT,
              "field 'tool_choice' needs 'tools'");
  parse_fails(m, "{" MSG ",\"tools\":[],\"tool_choice\":\"required\"}", COH_EFORMAT,
              "'tools' is empty");
  parse_fails(m, "{" MSG "," TOOLS ",\"parallel_tool_calls\":1}", COH_EFORMAT,
              "field 'parallel_tool_calls' must be true or false");
  parse_fails(m, "{" MSG "," TOOLS ",\"tool_choice\":\"required\",\"response_format\":"
                 "{\"type\":\"json_object\"}}",
              COH_EFORMAT, "cannot be combined with a tool_choice that forces a tool call");
  parse_fails(m, "{\"prompt\":\"a\",\"tool_choice\":\"auto\"}", COH_EFORMAT,
              "field 'tool_choice' needs 'messages'");

  /* the result's tool calls */
  {
    static const char names[] = "meet\0wait";
    static const char *const no[] = {
        "{\"tool_calls\":[{\"name\":\"fly\",\"arguments\":{}}]}",
        "{\"tool_calls\":[{\"name\":\"wait\",\"arguments\":{}}],\"x\":1}",
        "{\"tool_calls\":[{\"name\":\"wait\",\"arguments\":{},\"name\":\"fly\"}]}",
        "{\"tool_calls\":[{\"name\":\"wait\"}]}",
        "{\"tool_calls\":[{\"name\":\"wait\",\"arguments\":[]}]}",
        "{\"tool_calls\":[]}",
        "{\"tool_calls\":[{\"name\":\"wait\",\"arguments\":{}}",
        "Call wait.",
        ""};
    size_t i;
    const char *t = " {\"tool_calls\": [{\"name\": \"meet\", \"arguments\": {\"hour\": 7}}]}\n";
    CHECK_EQ_INT(coh_llm_tool_calls(names, 2, t, strlen(t), &calls, &err), COH_OK);
    CHECK(calls != NULL && !strcmp(calls, "[{\"name\":\"meet\",\"arguments\":{\"hour\":7}}]"));
    coh_free(calls);
    /* a repeated member (the grammar allows it): the last value counts */
    t = "{\"tool_calls\":[{\"name\":\"meet\",\"arguments\":{},\"arguments\":{\"hour\":7}}]}";
    CHECK_EQ_INT(coh_llm_tool_calls(names, 2, t, strlen(t), &calls, &err), COH_OK);
    CHECK(calls != NULL && !strcmp(calls, "[{\"name\":\"meet\",\"arguments\":{\"hour\":7}}]"));
    coh_free(calls);
    for (i = 0; i < sizeof no / sizeof *no; i++) {
      calls = (char *)1;
      CHECK_EQ_INT(coh_llm_tool_calls(names, 2, no[i], strlen(no[i]), &calls, &err), COH_OK);
      if (calls != NULL) fprintf(stderr, "  taken as a call: %s\n", no[i]);
      CHECK(calls == NULL);
    }
  }
  coh_model_close(m);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_plain_format);
  RUN(test_bad_chat_requests);
  RUN(test_history_budget);
  RUN(test_stop_ids);
  RUN(test_response_format);
  RUN(test_tools);
  return TEST_MAIN_END();
}
