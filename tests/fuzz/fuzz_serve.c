/* fuzz_serve.c — libFuzzer harness for what `cohort serve` does to a
 * request before it queues it (src/serve/serve_check.c, the functions the
 * server calls on civetweb's threads): route, Bearer check, reading the
 * body within --max-body, and checking a /v1/chat/completions or
 * /v1/completions body into a job (the OpenAI fields translated into an
 * llm request, the messages rendered with the model's chat template,
 * response_format and tools compiled into a grammar, stop strings,
 * logprobs, n, seed, the context bound).  No model runs: the server here
 * has two "models" with the GPT-2 test tokenizer, one with the Qwen2.5
 * chat template of tests/data/chat-templates ("qwen", context 512), one
 * without a template ("plain", the plain format; context 64).
 *
 * Input layout: one mode byte, then
 *   mode & 3 == 0: the rest is a chat completions body;
 *   mode & 3 == 1: the rest is a completions body;
 *   otherwise: lines (\n-separated) method, path, Authorization,
 *   Content-Length, then the body.  A missing line is an absent header; an
 *   empty or non-numeric Content-Length is "not given".  Bit 2: the server
 *   has the API key "fuzz-key"; bit 3: --max-body is 1024 (else 1 MiB);
 *   the body is read in pieces of at most 1 + (mode >> 4) * 61 bytes.
 *
 * Properties checked beyond "no crash, no sanitizer report":
 *  - a refusal has a status the server documents (400, 404, 413; 500 only
 *    when out of memory), a type, a message, and an OpenAI error body that
 *    can be built (valid UTF-8 after the lossy pass);
 *  - an accepted request holds only values in the documented ranges: 1..8
 *    choices, a prompt of 1..context-1 token ids inside the vocabulary,
 *    max_tokens >= 1 with prompt + max_tokens <= context, top_logprobs
 *    0..20, a grammar exactly when the llm request constrains;
 *  - checking is a function of the input: a second check with the same
 *    drawn seed gives the same llm request text, prompt and max_tokens;
 *  - the Bearer check agrees with strcmp against "Bearer fuzz-key"; a body
 *    is read only when both the Content-Length and the bytes sent fit
 *    --max-body, and it is exactly the bytes sent.
 *
 * Built as a fuzzer with -DCOH_FUZZ=ON (clang).  COH_TEST_DATA must name
 * tests/data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cohort/chat.h"
#include "cohort/infer.h"
#include "cohort/tokenizer.h"
#include "serve/serve_int.h"

#define FUZZ_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond,   \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)

#define FUZZ_KEY "fuzz-key"
#define FUZZ_SEED 0x1234abcdull

static coh_tokenizer *fuzz_tok;
static coh_chat_template *fuzz_chat;

static void fuzz_load(void) {
  coh_err err;
  if (fuzz_tok == NULL &&
      coh_tokenizer_load(COH_TEST_DATA "/tokenizers/gpt2.tokenizer.json", &fuzz_tok, &err)) {
    fprintf(stderr, "fuzz: cannot load the GPT-2 tokenizer: %s\n", err.msg);
    abort();
  }
  if (fuzz_chat == NULL &&
      coh_chat_template_load_file(
          COH_TEST_DATA "/chat-templates/shared-npm-qwen2_5.tokenizer_config.json", NULL,
          &fuzz_chat, &err)) {
    fprintf(stderr, "fuzz: cannot load the Qwen2.5 chat template: %s\n", err.msg);
    abort();
  }
}

/* A server without HTTP and without engines: what the checks read. */
static coh_serve *fuzz_server(size_t max_body, int with_key) {
  static char id_qwen[] = "qwen", id_plain[] = "plain", key[] = FUZZ_KEY;
  coh_serve *s = calloc(1, sizeof *s);
  FUZZ_CHECK(s != NULL);
  s->o.max_body = max_body;
  s->api_key = with_key ? key : NULL;
  s->n_models = 2;
  s->models[0].id = id_qwen;
  s->models[0].tok = fuzz_tok;
  s->models[0].chat = fuzz_chat;
  s->models[0].context = 512;
  s->models[1].id = id_plain;
  s->models[1].tok = fuzz_tok;
  s->models[1].chat = NULL;
  s->models[1].context = 64;
  s->models[0].vocab = s->models[1].vocab = (int64_t)coh_tokenizer_vocab_size(fuzz_tok);
  return s;
}

static void check_reply(const coh__serve_reply *r) {
  json_t *body;
  char *text;
  FUZZ_CHECK(r->status == 400 || r->status == 404 || r->status == 413 ||
             (r->status == 500 && strstr(r->msg, "out of memory") != NULL));
  FUZZ_CHECK(r->type != NULL && r->msg[0] != '\0');
  FUZZ_CHECK(memchr(r->param, '\0', sizeof r->param) != NULL);
  FUZZ_CHECK(r->status != 404 || (r->code && !strcmp(r->code, "model_not_found")));
  FUZZ_CHECK(r->status != 413 || (r->code && !strcmp(r->code, "request_too_large")));
  body = coh__serve_error_json(r->type, r->param[0] ? r->param : NULL, r->code, r->msg);
  FUZZ_CHECK(body != NULL);
  text = json_dumps(body, JSON_COMPACT);
  FUZZ_CHECK(text != NULL);
  free(text);
  json_decref(body);
}

static void check_body(coh_serve *s, int kind, const char *body, size_t len) {
  coh__serve_checked c, c2;
  coh__serve_reply r, r2;
  const coh__serve_model *m;
  const coh__serve_job *j;
  size_t i;
  if (coh__serve_check_request(s, kind, body, len, FUZZ_SEED, &c, &r)) {
    FUZZ_CHECK(c.job == NULL);
    check_reply(&r);
    return;
  }
  j = c.job;
  FUZZ_CHECK(j != NULL && r.status == 0);
  FUZZ_CHECK(j->model >= 0 && (size_t)j->model < s->n_models && j->kind == kind);
  m = &s->models[j->model];
  FUZZ_CHECK(j->n >= 1 && j->n <= COH__SERVE_MAX_N && j->choices != NULL);
  FUZZ_CHECK(j->lr.n_ids >= 1 && (int64_t)j->lr.n_ids < m->context);
  FUZZ_CHECK(j->lr.req.prompt == j->lr.ids && j->lr.req.n_prompt == j->lr.n_ids);
  for (i = 0; i < j->lr.n_ids; i++)
    FUZZ_CHECK(j->lr.ids[i] >= 0 && j->lr.ids[i] < m->vocab);
  FUZZ_CHECK(j->lr.req.max_tokens >= 1 &&
             (int64_t)j->lr.n_ids + j->lr.req.max_tokens <= m->context);
  FUZZ_CHECK(j->logprobs == 0 || j->logprobs == 1);
  FUZZ_CHECK(j->top_logprobs >= 0 && j->top_logprobs <= COH__SERVE_MAX_TOP_LOGPROBS);
  FUZZ_CHECK(j->top_logprobs == 0 || j->logprobs);
  FUZZ_CHECK(j->lr.req.grammar == j->lr.grammar);
  FUZZ_CHECK(j->lr.n_stops <= 16 && j->lr.req.n_stop_strings == j->lr.n_stops);
  FUZZ_CHECK(j->lr.req.sampling.seed == j->seed);
  FUZZ_CHECK(c.include_usage == 0 || c.stream);
  FUZZ_CHECK(j->llm_text != NULL);
  /* the same input, checked again, gives the same request */
  FUZZ_CHECK(coh__serve_check_request(s, kind, body, len, FUZZ_SEED, &c2, &r2) == 0 ||
             r2.status == 500);
  if (c2.job != NULL) {
    FUZZ_CHECK(!strcmp(c2.job->llm_text, j->llm_text));
    FUZZ_CHECK(c2.job->seed == j->seed && c2.job->n == j->n);
    FUZZ_CHECK(c2.job->lr.n_ids == j->lr.n_ids &&
               !memcmp(c2.job->lr.ids, j->lr.ids, j->lr.n_ids * sizeof *j->lr.ids));
    FUZZ_CHECK(c2.job->lr.req.max_tokens == j->lr.req.max_tokens);
    FUZZ_CHECK(c2.stream == c.stream && c2.include_usage == c.include_usage);
  }
  coh__serve_job_free(c2.job);
  coh__serve_job_free(c.job);
}

typedef struct fuzz_src {
  const char *p;
  size_t n, at, piece;
} fuzz_src;

static long fuzz_read(void *ctx, char *buf, size_t n) {
  fuzz_src *b = ctx;
  size_t k = b->n - b->at;
  if (k > n) k = n;
  if (k > b->piece) k = b->piece;
  memcpy(buf, b->p + b->at, k);
  b->at += k;
  return (long)k;
}

/* The HTTP front: route, key, body, then the check. */
static void check_http(coh_serve *s, unsigned mode, char *text, size_t size) {
  char *line[4], *p = text, *end = text + size, *body = NULL, *e;
  const char *method, *uri, *one = NULL;
  long long cl = -1;
  size_t got = 0;
  coh__serve_reply r;
  fuzz_src src;
  int i, which, rc;
  for (i = 0; i < 4; i++) {
    char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
    if (nl == NULL) {
      line[i] = NULL;
      continue;
    }
    *nl = '\0';
    line[i] = p;
    p = nl + 1;
  }
  method = line[0] ? line[0] : "POST";
  uri = line[1] ? line[1] : "/v1/chat/completions";
  which = coh__serve_route_of(method, uri, &one);
  FUZZ_CHECK(which >= COH__ROUTE_UNKNOWN && which <= COH__ROUTE_COMPLETIONS);
  FUZZ_CHECK((one != NULL) == (which == COH__ROUTE_MODEL));
  FUZZ_CHECK(one == NULL || (one >= uri && one <= uri + strlen(uri)));
  FUZZ_CHECK(which != COH__ROUTE_CHAT || (!strcmp(method, "POST") &&
                                          !strcmp(uri, "/v1/chat/completions")));
  FUZZ_CHECK(which != COH__ROUTE_COMPLETIONS || (!strcmp(method, "POST") &&
                                                 !strcmp(uri, "/v1/completions")));
  if (which == COH__ROUTE_HEALTH) return;
  if (s->api_key != NULL) {
    int ok = coh__serve_bearer_ok(s->api_key, line[2]);
    FUZZ_CHECK(ok == (line[2] != NULL && !strcmp(line[2], "Bearer " FUZZ_KEY)));
    if (!ok) return;
  }
  if (which != COH__ROUTE_CHAT && which != COH__ROUTE_COMPLETIONS) return;
  if (line[3] != NULL && line[3][0] >= '0' && line[3][0] <= '9') {
    cl = strtoll(line[3], &e, 10);
    if (*e != '\0') cl = -1;
  }
  src.p = p;
  src.n = (size_t)(end - p);
  src.at = 0;
  src.piece = 1 + (size_t)(mode >> 4) * 61;
  memset(&r, 0, sizeof r);
  rc = coh__serve_read_body(s->o.max_body, cl, fuzz_read, &src, &body, &got, &r);
  if (rc != 0) {
    FUZZ_CHECK(body == NULL);
    FUZZ_CHECK(cl > (long long)s->o.max_body || src.n > s->o.max_body);
    check_reply(&r);
    return;
  }
  FUZZ_CHECK(cl <= (long long)s->o.max_body && src.n <= s->o.max_body);
  FUZZ_CHECK(body != NULL && got == src.n && !memcmp(body, p, got) && body[got] == '\0');
  check_body(s, which == COH__ROUTE_CHAT ? COH__JOB_CHAT : COH__JOB_COMPLETION, body, got);
  coh__free(body);
}

int coh__fuzz_serve_one(const uint8_t *data, size_t size);
int coh__fuzz_serve_one(const uint8_t *data, size_t size) {
  unsigned mode;
  char *text;
  coh_serve *s;
  if (size < 1) return 0;
  fuzz_load();
  mode = data[0];
  /* a copy of exactly the body's bytes, so that ASan sees any overread */
  text = malloc(size > 1 ? size - 1 : 1);
  FUZZ_CHECK(text != NULL);
  memcpy(text, data + 1, size - 1);
  s = fuzz_server((mode & 8) ? 1024 : (size_t)1 << 20, (mode & 4) != 0);
  if ((mode & 3) < 2) check_body(s, (mode & 3) == 0 ? COH__JOB_CHAT : COH__JOB_COMPLETION, text,
                                 size - 1);
  else check_http(s, mode, text, size - 1);
  free(s);
  free(text);
  return 0;
}

#ifdef COH_FUZZ_MAIN
/* The tokenizer and the template load before the first input, outside
 * -timeout. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_load();
  return 0;
}
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return coh__fuzz_serve_one(data, size);
}
#endif
