/*
 * test_engine.c — models and the continuous-batching engine, on the shared
 * third-party export (tests/data/models) and on the fixture models that
 * tools/mkfixture.py generates into $COH_FIXTURES during the test run.
 */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "cohort/infer.h"
#include "test.h"

#define THIRD_PARTY COH_TEST_DATA "/models/ortgenai-tiny-llama-fp16"
#define MAX_GEN 64

#include "test_fixture.h"

/* Collected output of one request. */
typedef struct out {
  int32_t ids[MAX_GEN];
  int n;
  coh_finish finish;
  int events_after_finish;
  char text[4096];
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

static int submit(coh_engine *e, const int32_t *prompt, size_t n, int max_tokens,
                  const coh_sampling *s, out *o) {
  coh_request r;
  coh_err err;
  uint64_t id;
  coh_request_default(&r);
  r.prompt = prompt;
  r.n_prompt = n;
  r.max_tokens = max_tokens;
  r.ignore_eos = 1;
  if (s) r.sampling = *s;
  r.on_token = collect;
  r.user = o;
  memset(o, 0, sizeof *o);
  if (coh_engine_submit(e, &r, &id, &err)) {
    fprintf(stderr, "submit: %s\n", err.msg);
    return -1;
  }
  return 0;
}

/* Parses a JSON array of ints into ids; returns the count. */
static int json_ids(json_t *a, int32_t *ids, int cap) {
  size_t i;
  int n = 0;
  for (i = 0; i < json_array_size(a) && n < cap; i++)
    ids[n++] = (int32_t)json_integer_value(json_array_get(a, i));
  return n;
}

/* Every greedy_ids line of the third-party export, through the KV cache,
 * one request at a time and then all 25 at once in one batch. */
static void test_third_party_greedy_cases(void) {
  coh_model *m = open_model(THIRD_PARTY);
  coh_engine *e = NULL;
  coh_err err;
  FILE *f = fopen(THIRD_PARTY "/greedy.cases.jsonl", "r");
  char line[8192];
  int32_t prompts[64][64], want[64][32];
  int np[64], nw[64], n = 0, i, alone_ok = 0, batch_ok = 0;
  static out outs[64];
  REQUIRE(m != NULL && f != NULL);
  while (n < 64 && fgets(line, sizeof line, f)) {
    json_error_t je;
    json_t *c = json_loads(line, 0, &je);
    REQUIRE(c != NULL);
    np[n] = json_ids(json_object_get(c, "prompt_ids"), prompts[n], 64);
    nw[n] = json_ids(json_object_get(c, "greedy_ids"), want[n], 32);
    json_decref(c);
    n++;
  }
  fclose(f);
  CHECK(n >= 20);
  REQUIRE(coh_engine_new(m, 64, &e, &err) == 0);
  for (i = 0; i < n; i++) {
    REQUIRE(submit(e, prompts[i], (size_t)np[i], nw[i], NULL, &outs[i]) == 0);
    REQUIRE(run_all(e) == 0);
    alone_ok += outs[i].n == nw[i] && !memcmp(outs[i].ids, want[i], sizeof(int32_t) * (size_t)nw[i]);
    CHECK_EQ_INT(outs[i].finish, COH_FINISH_LENGTH);
  }
  CHECK_EQ_INT(alone_ok, n);
  /* all at once: prompts of different lengths share the decode batch */
  for (i = 0; i < n; i++) REQUIRE(submit(e, prompts[i], (size_t)np[i], nw[i], NULL, &outs[i]) == 0);
  REQUIRE(run_all(e) == 0);
  for (i = 0; i < n; i++)
    batch_ok += outs[i].n == nw[i] && !memcmp(outs[i].ids, want[i], sizeof(int32_t) * (size_t)nw[i]);
  fprintf(stderr, "  third-party export: %d/%d alone, %d/%d batched match the reference\n",
          alone_ok, n, batch_ok, n);
  CHECK_EQ_INT(batch_ok, n);
  coh_engine_free(e);
  coh_model_close(m);
}

static const int32_t P1[] = {1, 450, 4996, 17354};
static const int32_t P2[] = {1, 3439, 17354, 29892, 590, 1024, 338, 29871, 13, 1576, 2};
static const int32_t P3[] = {1, 29871};

/* The same request alone and inside batches whose members join and leave
 * at different steps: the decode batch is re-laid out several times. */
static void check_batching(const char *name) {
  coh_model *m = open_model(fixture(name));
  coh_engine *e = NULL;
  coh_err err;
  out alone[3], batched[3], again[3];
  const int32_t *ps[3] = {P1, P2, P3};
  size_t ns[3] = {4, 11, 2};
  int lens[3] = {24, 9, 17}, i, same = 1;
  REQUIRE(m != NULL);
  REQUIRE(coh_engine_new(m, 8, &e, &err) == 0);
  for (i = 0; i < 3; i++) {
    REQUIRE(submit(e, ps[i], ns[i], lens[i], NULL, &alone[i]) == 0);
    REQUIRE(run_all(e) == 0);
    CHECK_EQ_INT(alone[i].n, lens[i]);
  }
  for (int round = 0; round < 2; round++) {
    out *o = round == 0 ? batched : again;
    /* staggered: 0 now, 1 after 3 steps, 2 after 5 */
    REQUIRE(submit(e, ps[0], ns[0], lens[0], NULL, &o[0]) == 0);
    for (i = 0; i < 3; i++) REQUIRE(coh_engine_step(e, &err) == 0);
    REQUIRE(submit(e, ps[1], ns[1], lens[1], NULL, &o[1]) == 0);
    for (i = 0; i < 2; i++) REQUIRE(coh_engine_step(e, &err) == 0);
    REQUIRE(submit(e, ps[2], ns[2], lens[2], NULL, &o[2]) == 0);
    REQUIRE(run_all(e) == 0);
  }
  for (i = 0; i < 3; i++) {
    /* same schedule → identical tokens, always */
    CHECK(again[i].n == batched[i].n &&
          !memcmp(again[i].ids, batched[i].ids, sizeof(int32_t) * (size_t)batched[i].n));
    CHECK_EQ_INT(batched[i].n, lens[i]);
    CHECK_EQ_INT(batched[i].events_after_finish, 0);
    same &= batched[i].n == alone[i].n &&
            !memcmp(alone[i].ids, batched[i].ids, sizeof(int32_t) * (size_t)alone[i].n);
  }
  /* Batch invariance (measured; see docs/inference.md): on these fixtures
   * the batched tokens match the solo tokens exactly. */
  fprintf(stderr, "  %s: batched == alone: %s\n", name, same ? "yes" : "NO");
  CHECK(same);
  coh_engine_free(e);
  coh_model_close(m);
}

static void test_batching_plain(void) { check_batching("llama-tiny-plain-fp32"); }
static void test_batching_gqa(void) { check_batching("llama-tiny-gqa-fp32"); }
static void test_batching_fp16(void) { check_batching("llama-tiny-plain-fp16"); }
static void test_batching_optimum(void) { check_batching("llama-tiny-optimum-fp32"); }
/* Weight-only quantized twins (com.microsoft.MatMulNBits, accuracy_level 0):
 * symmetric int8, asymmetric int4 with zero points, and int4 with padded
 * 128-blocks and a quantized head under GroupQueryAttention. */
static void test_batching_int8(void) { check_batching("llama-tiny-plain-int8"); }
static void test_batching_int4(void) { check_batching("llama-tiny-plain-int4"); }
static void test_batching_gqa_int4(void) { check_batching("llama-tiny-gqa-int4"); }
/* accuracy_level 4: MatMulNBits quantizes each row's activations to int8 */
static void test_batching_int4_acc4(void) { check_batching("llama-tiny-plain-int4-acc4"); }
/* int8 + head at accuracy_level 4: the shipped default model's configuration */
static void test_batching_int8_acc4(void) { check_batching("llama-tiny-plain-int8-acc4"); }

/* Plain attention, GroupQueryAttention, fp16 and the Optimum layout hold the
 * same weights (same seed): their greedy continuations must agree. */
static void test_variants_agree(void) {
  const char *names[] = {"llama-tiny-plain-fp32", "llama-tiny-gqa-fp32",
                         "llama-tiny-optimum-fp32", "llama-tiny-plain-fp16"};
  out o[4];
  int i;
  for (i = 0; i < 4; i++) {
    coh_model *m = open_model(fixture(names[i]));
    coh_engine *e = NULL;
    coh_err err;
    REQUIRE(m != NULL);
    REQUIRE(coh_engine_new(m, 4, &e, &err) == 0);
    REQUIRE(submit(e, P2, 11, 16, NULL, &o[i]) == 0);
    REQUIRE(run_all(e) == 0);
    coh_engine_free(e);
    coh_model_close(m);
  }
  /* each produced its 16 tokens (equal empty outputs would agree too) */
  for (i = 0; i < 4; i++) {
    CHECK_EQ_INT(o[i].n, 16);
    CHECK_EQ_INT(o[i].finish, COH_FINISH_LENGTH);
  }
  for (i = 1; i < 3; i++) CHECK(!memcmp(o[0].ids, o[i].ids, 16 * sizeof(int32_t)));
  /* fp16 may drift late; the first tokens must agree */
  CHECK(!memcmp(o[0].ids, o[3].ids, 4 * sizeof(int32_t)));
}

static void test_sampling_seeded(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_engine *e = NULL;
  coh_err err;
  coh_sampling s;
  out a, b, c;
  REQUIRE(m != NULL);
  REQUIRE(coh_engine_new(m, 4, &e, &err) == 0);
  coh_sampling_default(&s);
  s.temperature = 1.0f;
  s.top_k = 50;
  s.top_p = 0.95f;
  s.seed = 42;
  REQUIRE(submit(e, P1, 4, 24, &s, &a) == 0);
  REQUIRE(submit(e, P1, 4, 24, &s, &b) == 0);
  s.seed = 43;
  REQUIRE(submit(e, P1, 4, 24, &s, &c) == 0);
  REQUIRE(run_all(e) == 0);
  CHECK(a.n == 24 && !memcmp(a.ids, b.ids, sizeof a.ids));
  CHECK(memcmp(a.ids, c.ids, sizeof a.ids) != 0);
  coh_engine_free(e);
  coh_model_close(m);
}

static void test_stops_and_limits(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_engine *e = NULL;
  coh_err err;
  coh_request r;
  out full, o, z;
  uint64_t id;
  int32_t stop;
  REQUIRE(m != NULL);
  REQUIRE(coh_engine_new(m, 4, &e, &err) == 0);
  REQUIRE(submit(e, P1, 4, 12, NULL, &full) == 0);
  REQUIRE(run_all(e) == 0);
  /* stop id: the 5th greedy token ends generation, and is reported */
  stop = full.ids[4];
  coh_request_default(&r);
  r.prompt = P1;
  r.n_prompt = 4;
  r.max_tokens = 12;
  r.stop_ids = &stop;
  r.n_stop_ids = 1;
  r.on_token = collect;
  r.user = &o;
  memset(&o, 0, sizeof o);
  REQUIRE(coh_engine_submit(e, &r, &id, &err) == 0);
  REQUIRE(run_all(e) == 0);
  CHECK_EQ_INT(o.finish, COH_FINISH_STOP_TOKEN);
  CHECK(o.n >= 1 && o.n <= 5 && o.ids[o.n - 1] == stop);
  /* max_tokens 0: one final event, no token */
  REQUIRE(submit(e, P1, 4, 0, NULL, &z) == 0);
  REQUIRE(run_all(e) == 0);
  CHECK_EQ_INT(z.n, 0);
  CHECK_EQ_INT(z.finish, COH_FINISH_LENGTH);
  /* cancel while decoding */
  REQUIRE(submit(e, P1, 4, 40, NULL, &o) == 0);
  REQUIRE(coh_engine_step(e, &err) == 0);
  REQUIRE(coh_engine_step(e, &err) == 0);
  CHECK(coh_engine_cancel(e, 4) == 0); /* ids so far: 1..4 */
  REQUIRE(run_all(e) == 0);
  CHECK_EQ_INT(o.finish, COH_FINISH_CANCELLED);
  CHECK_EQ_INT(o.n, 2);
  CHECK(coh_engine_cancel(e, 4) == COH_EINVAL);
  coh_engine_free(e);
  coh_model_close(m);
}

/* Context limit: generation stops at the model's context (256 tokens). */
static void test_context_limit(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_engine *e = NULL;
  coh_err err;
  coh_request r;
  int32_t long_prompt[300];
  uint64_t id;
  out o;
  int i;
  REQUIRE(m != NULL);
  REQUIRE(coh_engine_new(m, 2, &e, &err) == 0);
  for (i = 0; i < 300; i++) long_prompt[i] = 100 + i;
  coh_request_default(&r);
  r.prompt = long_prompt;
  r.n_prompt = 300;
  CHECK_EQ_INT(coh_engine_submit(e, &r, &id, &err), COH_ECONTEXT);
  CHECK(strstr(err.msg, "300") != NULL && strstr(err.msg, "256") != NULL);
  /* 250 prompt tokens + up to 40: stops at 256 total */
  REQUIRE(submit(e, long_prompt, 250, 40, NULL, &o) == 0);
  REQUIRE(run_all(e) == 0);
  CHECK_EQ_INT(o.finish, COH_FINISH_CONTEXT);
  CHECK_EQ_INT(o.n, 6);
  coh_engine_free(e);
  coh_model_close(m);
}

static void test_bad_requests(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_engine *e = NULL;
  coh_err err;
  coh_request r;
  uint64_t id;
  int32_t bad_id[] = {1, 32000};
  const char *empty_stop[] = {""};
  REQUIRE(m != NULL);
  CHECK_EQ_INT(coh_engine_new(m, 0, &e, &err), COH_EINVAL);
  REQUIRE(coh_engine_new(m, 2, &e, &err) == 0);
  coh_request_default(&r);
  CHECK_EQ_INT(coh_engine_submit(e, &r, &id, &err), COH_EINVAL);
  CHECK(strstr(err.msg, "empty prompt") != NULL);
  r.prompt = bad_id;
  r.n_prompt = 2;
  CHECK_EQ_INT(coh_engine_submit(e, &r, &id, &err), COH_EINVAL);
  CHECK(strstr(err.msg, "32000") != NULL);
  r.n_prompt = 1;
  r.max_tokens = -1;
  CHECK_EQ_INT(coh_engine_submit(e, &r, &id, &err), COH_EINVAL);
  r.max_tokens = 4;
  r.sampling.top_p = 2.0f;
  CHECK_EQ_INT(coh_engine_submit(e, &r, &id, &err), COH_EINVAL);
  CHECK(strstr(err.msg, "top_p") != NULL);
  r.sampling.top_p = 1.0f;
  r.stop_strings = empty_stop;
  r.n_stop_strings = 1;
  CHECK_EQ_INT(coh_engine_submit(e, &r, &id, &err), COH_EINVAL);
  {
    /* a stop string past COH_STOP_STRING_MAX: each token would compare
     * against every prefix of it */
    char *long_stop = malloc(COH_STOP_STRING_MAX + 2);
    const char *stops[1];
    REQUIRE(long_stop != NULL);
    memset(long_stop, 's', COH_STOP_STRING_MAX + 1);
    long_stop[COH_STOP_STRING_MAX + 1] = '\0';
    stops[0] = long_stop;
    r.stop_strings = stops;
    CHECK_EQ_INT(coh_engine_submit(e, &r, &id, &err), COH_EINVAL);
    CHECK(strstr(err.msg, "stop string 0 is 1025 bytes; expected at most "
                          "1024") != NULL);
    long_stop[COH_STOP_STRING_MAX] = '\0'; /* exactly the cap: accepted */
    CHECK_EQ_INT(coh_engine_submit(e, &r, &id, &err), COH_OK);
    while (coh_engine_busy(e)) REQUIRE(coh_engine_step(e, &err) == COH_OK);
    free(long_stop);
    r.stop_strings = empty_stop;
  }
  {
    /* the same bounds through an agent's llm() request */
    char json[1200];
    coh_llm_request lr;
    int n = snprintf(json, sizeof json, "{\"prompt\":\"hi\",\"stop\":[\"");
    memset(json + n, 's', COH_STOP_STRING_MAX + 1);
    strcpy(json + n + COH_STOP_STRING_MAX + 1, "\"]}");
    CHECK_EQ_INT(coh_llm_request_parse(json, strlen(json), m, 1, &lr, &err),
                 COH_EFORMAT);
    CHECK(strstr(err.msg, "field 'stop[0]' must be a non-empty string of at "
                          "most 1024 bytes") != NULL);
    coh_llm_request_free(&lr);
    /* a single string is one stop string */
    strcpy(json, "{\"prompt\":\"hi\",\"stop\":\"\\n\\n\"}");
    REQUIRE(coh_llm_request_parse(json, strlen(json), m,
                                  1, &lr, &err) == COH_OK);
    CHECK_EQ_INT(lr.req.n_stop_strings, 1);
    CHECK_STR(lr.req.stop_strings[0], "\n\n");
    coh_llm_request_free(&lr);
    strcpy(json, "{\"prompt\":\"hi\",\"stop\":7}");
    CHECK_EQ_INT(coh_llm_request_parse(json, strlen(json), m, 1, &lr, &err),
                 COH_EFORMAT);
    coh_llm_request_free(&lr);
    strcpy(json, "{\"prompt\":\"hi\",\"max_tokens\":-5}");
    CHECK_EQ_INT(coh_llm_request_parse(json, strlen(json), m, 1, &lr, &err),
                 COH_EFORMAT);
    CHECK(strstr(err.msg, "field 'max_tokens' must be an integer in [0, "
                          "1048576]") != NULL);
    coh_llm_request_free(&lr);
  }
  CHECK_EQ_INT(coh_engine_busy(e), 0);
  coh_engine_free(e);
  coh_model_close(m);
}

/* Writes a broken copy of a fixture into a temp folder. */
static void copy_file(const char *from, const char *to, long truncate_to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  char buf[65536];
  size_t n;
  long total = 0;
  if (!a || !b) {
    if (a) fclose(a);
    if (b) fclose(b);
    return;
  }
  while ((n = fread(buf, 1, sizeof buf, a)) > 0) {
    if (truncate_to >= 0 && total + (long)n > truncate_to) n = (size_t)(truncate_to - total);
    fwrite(buf, 1, n, b);
    total += (long)n;
    if (truncate_to >= 0 && total >= truncate_to) break;
  }
  fclose(a);
  fclose(b);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* Copies the folder's pristine genai_config.json from src and sets the
 * field at dotted path (under "model") to the JSON text value. */
static void config_with(const char *src, const char *path, const char *field,
                        const char *value) {
  json_error_t je;
  json_t *cfg = json_load_file(src, 0, &je), *obj, *v;
  char key[128], *dot;
  const char *p = field;
  if (cfg == NULL) return;
  obj = json_object_get(cfg, "model");
  while ((dot = strchr(p, '.')) != NULL) {
    snprintf(key, sizeof key, "%.*s", (int)(dot - p), p);
    obj = json_object_get(obj, key);
    p = dot + 1;
  }
  v = json_loads(value, JSON_DECODE_ANY, &je);
  if (obj != NULL && v != NULL) json_object_set_new(obj, p, v);
  json_dump_file(cfg, path, 0);
  json_decref(cfg);
}

/* Opens dir expecting code and every needle (|-separated) in the message. */
static void open_fails(const char *dir, const coh_model_options *o, int code,
                       const char *needles) {
  coh_model *m = NULL;
  coh_err err;
  char word[160];
  const char *w = needles;
  coh_err_clear(&err);
  CHECK_EQ_INT(coh_model_open(dir, o, &m, &err), code);
  CHECK(m == NULL);
  while (*w) {
    size_t n = strcspn(w, "|");
    snprintf(word, sizeof word, "%.*s", (int)n, w);
    if (strstr(err.msg, word) == NULL) {
      fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err.msg, word);
      CHECK(!"error message");
    }
    w += n;
    if (*w == '|') w++;
  }
  coh_model_close(m);
}

static void test_bad_model_folders(void) {
  char tmpl[] = "/tmp/cohort-badmodel-XXXXXX";
  char *dir = mkdtemp(tmpl);
  char path[1200], src[1200];
  coh_model_options o;
  coh_model *m = NULL;
  coh_err err;
  const char *plain = fixture("llama-tiny-plain-fp32");
  char plain_dir[1024];
  REQUIRE(dir != NULL);
  snprintf(plain_dir, sizeof plain_dir, "%s", plain);
  coh_model_options_default(&o);
  o.device = COH_DEVICE_CPU;

  CHECK_EQ_INT(coh_model_open("/nonexistent/model", &o, &m, &err), COH_ENOENT);
  CHECK(strstr(err.msg, "/nonexistent/model") != NULL);
  CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_ENOENT);
  CHECK(strstr(err.msg, "genai_config.json") != NULL);

  /* config present, model.onnx missing */
  snprintf(src, sizeof src, "%s/genai_config.json", plain_dir);
  snprintf(path, sizeof path, "%s/genai_config.json", dir);
  copy_file(src, path, -1);
  CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_ENOENT);
  CHECK(strstr(err.msg, "model.onnx") != NULL);

  /* truncated model.onnx */
  snprintf(src, sizeof src, "%s/model.onnx", plain_dir);
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  copy_file(src, path, 5000);
  CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_EORT);
  CHECK(strstr(err.msg, "model.onnx") != NULL);

  /* a whole model, but the config names an input the graph lacks */
  copy_file(src, path, -1);
  snprintf(path, sizeof path, "%s/genai_config.json", dir);
  {
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    REQUIRE(cfg != NULL);
    json_object_set_new(json_object_get(json_object_get(json_object_get(cfg, "model"), "decoder"), "inputs"),
                        "past_key_names", json_string("past.%d.k"));
    json_dump_file(cfg, path, 0);
    json_decref(cfg);
  }
  CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_EMODEL);
  CHECK(strstr(err.msg, "past_key_values.0.key") != NULL || strstr(err.msg, "past.0.k") != NULL);

  /* wrong head count */
  write_text(path, "{\"model\": {\"type\": \"llama\", \"vocab_size\": 32000, \"context_length\": 256,"
                   " \"decoder\": {\"head_size\": 16, \"num_attention_heads\": 4, \"num_hidden_layers\": 2,"
                   " \"num_key_value_heads\": 4}}}");
  CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_EMODEL);
  CHECK(strstr(err.msg, "KV heads") != NULL);

  /* malformed JSON: line and column */
  write_text(path, "{\n  \"model\": {\n    \"decoder\": ,\n  }\n}\n");
  CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "genai_config.json:3:") != NULL);

  /* missing field */
  write_text(path, "{\"model\": {\"decoder\": {\"head_size\": 16}}}");
  CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "model.decoder.num_hidden_layers") != NULL);

  /* Files the config names stay inside the folder: no '..', no absolute
   * path, no symbolic link out of it (../../../../etc/passwd used to be
   * opened). */
  snprintf(src, sizeof src, "%s/genai_config.json", plain_dir);
  config_with(src, path, "decoder.filename", "\"../../../../etc/passwd\"");
  open_fails(dir, &o, COH_EFORMAT,
             "genai_config.json: field 'model.decoder.filename' = "
             "\"../../../../etc/passwd\" goes up with '..'");
  config_with(src, path, "decoder.filename", "\"/etc/passwd\"");
  open_fails(dir, &o, COH_EFORMAT,
             "field 'model.decoder.filename' = \"/etc/passwd\" is an "
             "absolute path");
  {
    char link[1200], target[1200];
    snprintf(link, sizeof link, "%s/elsewhere.onnx", dir);
    snprintf(target, sizeof target, "%s/model.onnx", plain_dir);
    REQUIRE(symlink(target, link) == 0);
    config_with(src, path, "decoder.filename", "\"elsewhere.onnx\"");
    open_fails(dir, &o, COH_EFORMAT,
               "field 'model.decoder.filename' = \"elsewhere.onnx\" "
               "resolves to|outside the folder");
    /* the configuration itself, as a link to a device: refused, no hang */
    unlink(path);
    REQUIRE(symlink("/dev/zero", path) == 0);
    open_fails(dir, &o, COH_EFORMAT, "genai_config.json|outside the folder");
    unlink(path);
  }
  /* token ids outside the vocabulary (vocab_size 32000) */
  config_with(src, path, "eos_token_id", "-1");
  open_fails(dir, &o, COH_EFORMAT,
             "field 'model.eos_token_id' = -1 is outside the vocabulary; "
             "expected a token id in [0, 32000)");
  config_with(src, path, "eos_token_id", "99999999");
  open_fails(dir, &o, COH_EFORMAT,
             "field 'model.eos_token_id' = 99999999 is outside the vocabulary");
  config_with(src, path, "eos_token_id", "[2, 32000]");
  open_fails(dir, &o, COH_EFORMAT, "field 'model.eos_token_id[1]' = 32000");
  config_with(src, path, "bos_token_id", "99999999");
  open_fails(dir, &o, COH_EFORMAT,
             "field 'model.bos_token_id' = 99999999 is outside the "
             "vocabulary|or -1 for none");
  config_with(src, path, "pad_token_id", "32000");
  open_fails(dir, &o, COH_EFORMAT, "field 'model.pad_token_id' = 32000");
  /* the good config opens; a tokenizer.json linked from outside does not */
  config_with(src, path, "eos_token_id", "2");
  {
    char link[1200], target[1200];
    snprintf(link, sizeof link, "%s/tokenizer.json", dir);
    snprintf(target, sizeof target, "%s/tokenizer.json", plain_dir);
    REQUIRE(symlink(target, link) == 0);
    open_fails(dir, &o, COH_EFORMAT, "tokenizer.json|outside the folder");
    unlink(link);
    copy_file(target, link, -1);
    CHECK_EQ_INT(coh_model_open(dir, &o, &m, &err), COH_OK);
    coh_model_close(m);
    m = NULL;
  }

  /* --device cuda on a machine without CUDA libraries is an error, with why */
  if (access("/usr/local/cuda", F_OK) != 0) {
    o.device = COH_DEVICE_CUDA;
    CHECK_EQ_INT(coh_model_open(plain_dir, &o, &m, &err), COH_EPROVIDER);
    CHECK(strstr(err.msg, "CUDA") != NULL);
  }
  {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
  }
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_third_party_greedy_cases);
  RUN(test_batching_plain);
  RUN(test_batching_gqa);
  RUN(test_batching_fp16);
  RUN(test_batching_optimum);
  RUN(test_batching_int8);
  RUN(test_batching_int4);
  RUN(test_batching_gqa_int4);
  RUN(test_batching_int4_acc4);
  RUN(test_batching_int8_acc4);
  RUN(test_variants_agree);
  RUN(test_sampling_seeded);
  RUN(test_stops_and_limits);
  RUN(test_context_limit);
  RUN(test_bad_requests);
  RUN(test_bad_model_folders);
  return TEST_MAIN_END();
}
