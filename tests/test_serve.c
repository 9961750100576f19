/*
 * test_serve.c — the serve loop's tick machine without HTTP (src/serve):
 * admission at tick boundaries, batch invariance through the tick machine,
 * a cancellation that frees its slot within one tick, the bounded queue,
 * the journal's payloads, the listen-address parser, and the request
 * checks before admission (serve_check.c, also replayed through the fuzz
 * harness's corpus).  The HTTP side is tested with real clients by
 * tests/serve_openai.sh.
 */
#include <dirent.h>
#include <jansson.h>
#include <string.h>

#include "serve/serve_int.h"
#include "test.h"
#include "test_fixture.h"
/* the fuzz harness of the request checks (coh__fuzz_serve_one) */
#include "fuzz/fuzz_serve.c"

static coh_serve *core(int max_batch, int max_queue) {
  coh_serve_options o;
  coh_serve *s = NULL;
  coh_err err;
  const char *dirs[1];
  coh_serve_options_default(&o);
  dirs[0] = fixture("llama-tiny-gqa-fp32");
  o.model_dirs = dirs;
  o.n_models = 1;
  o.listen = "127.0.0.1:0";
  o.max_batch = max_batch;
  o.max_queue = max_queue;
  o.device = COH_DEVICE_CPU;
  o.threads = 1;
  if (coh__serve_core_new(&o, &s, &err)) {
    fprintf(stderr, "core: %s\n", err.msg);
    return NULL;
  }
  return s;
}

static coh__serve_job *job(coh_serve *s, const char *prompt, int max_tokens, uint64_t seed) {
  char text[256];
  coh__serve_job *j = NULL;
  coh_err err;
  snprintf(text, sizeof text, "{\"prompt\":\"%s\",\"temperature\":0.9,\"ignore_eos\":true}", prompt);
  if (coh__serve_job_new(s, 0, COH__JOB_COMPLETION, 1, seed, text, NULL, 0, &j, &err)) {
    fprintf(stderr, "job: %s\n", err.msg);
    coh__serve_job_free(j);
    return NULL;
  }
  j->lr.req.max_tokens = max_tokens;
  return j;
}

/* Ticks until every job in jobs is done (bounded). */
static int run_until_done(coh_serve *s, coh__serve_job **jobs, int n) {
  int t, i, all = 0;
  for (t = 0; t < 10000 && !all; t++) {
    (void)coh__serve_tick(s);
    all = 1;
    for (i = 0; i < n; i++)
      if (!jobs[i]->done) all = 0;
  }
  return all;
}

static void test_listen(void) {
  char addr[16];
  int port = -1;
  coh_err err;
  CHECK_EQ_INT(coh__serve_parse_listen("8080", addr, &port, &err), 0);
  CHECK_STR(addr, "127.0.0.1");
  CHECK_EQ_INT(port, 8080);
  CHECK_EQ_INT(coh__serve_parse_listen("localhost:0", addr, &port, &err), 0);
  CHECK_STR(addr, "127.0.0.1");
  CHECK_EQ_INT(coh__serve_parse_listen("0.0.0.0:9", addr, &port, &err), 0);
  CHECK_STR(addr, "0.0.0.0");
  CHECK(coh__serve_parse_listen("[::1]:80", addr, &port, &err) == COH_EINVAL &&
        strstr(err.msg, "IPv6") != NULL);
  CHECK(coh__serve_parse_listen("1.2.3.4:70000", addr, &port, &err) == COH_EINVAL &&
        strstr(err.msg, "1.2.3.4:70000") != NULL);
  CHECK(coh__serve_parse_listen("example.org:80", addr, &port, &err) == COH_EINVAL &&
        strstr(err.msg, "example.org") != NULL);
}

static void test_options(void) {
  coh_serve_options o;
  coh_serve *s = (coh_serve *)1;
  coh_err err;
  const char *dirs[1] = {fixture("llama-tiny-gqa-fp32")};
  coh_serve_options_default(&o);
  o.model_dirs = dirs;
  o.n_models = 1;
  o.listen = "0.0.0.0:0";
  CHECK(coh_serve_new(&o, &s, &err) == COH_EINVAL && s == NULL &&
        strstr(err.msg, "give --api-key") != NULL);
  o.listen = "127.0.0.1:0";
  o.max_batch = 0;
  CHECK(coh_serve_new(&o, &s, &err) == COH_EINVAL && strstr(err.msg, "--max-batch") != NULL);
  o.max_batch = 4;
  o.max_queue = 0;
  CHECK(coh_serve_new(&o, &s, &err) == COH_EINVAL && strstr(err.msg, "--max-queue") != NULL);
}

/* Four requests arriving at different ticks give, token for token, what
 * each gives alone. */
static void test_batched_equals_solo(void) {
  static const char *const prompts[4] = {"hello world", "the cat sat", "a", "one two three four"};
  char *solo[4] = {0};
  coh__serve_job *jobs[4] = {0};
  coh_serve *s = core(4, 16);
  int i, t;
  REQUIRE(s != NULL);
  for (i = 0; i < 4; i++) {
    coh__serve_job *j = job(s, prompts[i], 12 + 3 * i, 100 + (uint64_t)i);
    REQUIRE(j != NULL);
    CHECK_EQ_INT(coh__serve_enqueue(s, j), 0);
    CHECK(run_until_done(s, &j, 1));
    solo[i] = coh__strdup(j->choices[0].text.p ? j->choices[0].text.p : "");
    CHECK_EQ_INT(j->choices[0].n_tokens, 12 + 3 * i);
    coh__serve_job_free(j);
  }
  for (i = 0; i < 4; i++) jobs[i] = job(s, prompts[i], 12 + 3 * i, 100 + (uint64_t)i);
  for (i = 0; i < 4; i++) REQUIRE(jobs[i] != NULL);
  /* arrivals at ticks 1, 1, 3, 6: joins while others decode */
  CHECK_EQ_INT(coh__serve_enqueue(s, jobs[2]), 0);
  CHECK_EQ_INT(coh__serve_enqueue(s, jobs[0]), 0);
  (void)coh__serve_tick(s);
  (void)coh__serve_tick(s);
  CHECK_EQ_INT(coh__serve_enqueue(s, jobs[3]), 0);
  for (t = 0; t < 3; t++) (void)coh__serve_tick(s);
  CHECK_EQ_INT(coh__serve_enqueue(s, jobs[1]), 0);
  CHECK(run_until_done(s, jobs, 4));
  CHECK(s->m.max_batch >= 3);
  for (i = 0; i < 4; i++) {
    CHECK_STR(jobs[i]->choices[0].text.p ? jobs[i]->choices[0].text.p : "", solo[i]);
    coh__serve_job_free(jobs[i]);
    coh__free(solo[i]);
  }
  coh_serve_free(s);
}

/* A cancelled request finishes, and frees its batch slot, in the tick that
 * sees the cancellation. */
static void test_cancel_within_one_tick(void) {
  coh_serve *s = core(2, 4);
  coh__serve_job *a, *b;
  int t;
  REQUIRE(s != NULL);
  a = job(s, "hello world", 200, 1);
  b = job(s, "the cat sat", 200, 2);
  REQUIRE(a != NULL && b != NULL);
  CHECK_EQ_INT(coh__serve_enqueue(s, a), 0);
  CHECK_EQ_INT(coh__serve_enqueue(s, b), 0);
  for (t = 0; t < 5; t++) (void)coh__serve_tick(s);
  CHECK_EQ_INT(s->n_active_slots, 2);
  CHECK(!a->done && a->choices[0].n_tokens > 0);
  atomic_store(&a->cancel, 1);
  (void)coh__serve_tick(s);
  CHECK(a->done);
  CHECK_EQ_INT(a->choices[0].finish, COH_FINISH_CANCELLED);
  CHECK_EQ_INT(s->n_active_slots, 1);
  CHECK_EQ_INT(s->m.cancelled, 1);
  CHECK(!b->done);
  CHECK(run_until_done(s, &b, 1));
  CHECK_EQ_INT(b->choices[0].finish, COH_FINISH_LENGTH);
  CHECK_EQ_INT(s->n_open, 0);
  coh__serve_job_free(a);
  coh__serve_job_free(b);
  coh_serve_free(s);
}

/* --max-queue counts requests waiting for a slot: with one slot and a
 * queue of 2, the fourth open request is refused (429), and draining
 * refuses everything (503). */
static void test_queue_bound(void) {
  coh_serve *s = core(1, 2);
  coh__serve_job *j[4];
  int i;
  REQUIRE(s != NULL);
  for (i = 0; i < 4; i++) REQUIRE((j[i] = job(s, "hello", 50, (uint64_t)i)) != NULL);
  CHECK_EQ_INT(coh__serve_enqueue(s, j[0]), 0);
  (void)coh__serve_tick(s); /* j0 holds the slot */
  CHECK_EQ_INT(coh__serve_enqueue(s, j[1]), 0);
  CHECK_EQ_INT(coh__serve_enqueue(s, j[2]), 0);
  CHECK_EQ_INT(coh__serve_enqueue(s, j[3]), 429);
  (void)coh__serve_tick(s); /* j1, j2 wait in the engine's queue */
  CHECK_EQ_INT(s->n_waiting, 2);
  CHECK_EQ_INT(coh__serve_enqueue(s, j[3]), 429);
  s->stopping = 1;
  CHECK_EQ_INT(coh__serve_enqueue(s, j[3]), 503);
  CHECK(run_until_done(s, j, 3));
  for (i = 0; i < 4; i++) coh__serve_job_free(j[i]);
  coh_serve_free(s);
}

/* The journal payloads: a request names its seed and parameters; a result
 * its tokens, finish and text. */
static void test_payloads(void) {
  coh_serve *s = core(1, 2);
  coh__serve_job *j;
  char *req, *res;
  REQUIRE(s != NULL);
  j = job(s, "hello", 5, 77);
  REQUIRE(j != NULL);
  CHECK_EQ_INT(coh__serve_enqueue(s, j), 0);
  CHECK(run_until_done(s, &j, 1));
  req = coh__serve_request_payload(s, j);
  res = coh__serve_result_payload(s, j);
  REQUIRE(req != NULL && res != NULL);
  CHECK(strstr(req, "\"seq\":1,\"kind\":\"completion\",\"n\":1,\"seed\":77,\"max_tokens\":5") == req + 1);
  CHECK(strstr(req, "\\\"prompt\\\":\\\"hello\\\"") != NULL);
  CHECK(strstr(res, "{\"seq\":1,\"choices\":[{\"finish\":\"length\",\"tokens\":[") == res);
  coh__free(req);
  coh__free(res);
  coh__serve_job_free(j);
  coh_serve_free(s);
}

typedef struct mem_src {
  const char *p;
  size_t n, at;
} mem_src;

static long mem_read(void *ctx, char *buf, size_t n) {
  mem_src *m = ctx;
  size_t k = m->n - m->at;
  if (k > n) k = n;
  if (k > 5) k = 5;
  memcpy(buf, m->p + m->at, k);
  m->at += k;
  return (long)k;
}

/* Route, Bearer key and the body bound, as serve_http.c calls them. */
static void test_front(void) {
  const char *one = NULL;
  char *body = NULL;
  size_t len = 0;
  coh__serve_reply r;
  mem_src src = {"{\"a\":1}", 7, 0};
  CHECK_EQ_INT(coh__serve_route_of("POST", "/v1/chat/completions", &one), COH__ROUTE_CHAT);
  CHECK_EQ_INT(coh__serve_route_of("GET", "/v1/chat/completions", &one), COH__ROUTE_BAD_METHOD);
  CHECK_EQ_INT(coh__serve_route_of("GET", "/v1/models/m1", &one), COH__ROUTE_MODEL);
  CHECK(one != NULL && !strcmp(one, "m1"));
  CHECK_EQ_INT(coh__serve_route_of("DELETE", "/health", &one), COH__ROUTE_HEALTH);
  CHECK(one == NULL);
  CHECK_EQ_INT(coh__serve_route_of("GET", "/v1/nothing", &one), COH__ROUTE_UNKNOWN);
  CHECK(coh__serve_bearer_ok("k3y", "Bearer k3y"));
  CHECK(!coh__serve_bearer_ok("k3y", "Bearer k3y "));
  CHECK(!coh__serve_bearer_ok("k3y", "Bearer k3"));
  CHECK(!coh__serve_bearer_ok("k3y", "bearer k3y"));
  CHECK(!coh__serve_bearer_ok("k3y", NULL));
  /* a body read in pieces, without Content-Length */
  CHECK_EQ_INT(coh__serve_read_body(1024, -1, mem_read, &src, &body, &len, &r), 0);
  CHECK(body != NULL && len == 7 && !strcmp(body, "{\"a\":1}"));
  coh__free(body);
  /* a Content-Length over the bound: 413 before reading */
  src.at = 0;
  CHECK_EQ_INT(coh__serve_read_body(1024, 5 << 20, mem_read, &src, &body, &len, &r), 1);
  CHECK(body == NULL && r.status == 413 && !strcmp(r.code, "request_too_large"));
  CHECK_EQ_INT((int)src.at, 0);
  /* a body over the bound without Content-Length: 413 after reading at
   * most max(64 KiB, 2 max) bytes (the bound is 1024, the smallest
   * --max-body) */
  {
    char *huge = malloc(70000);
    REQUIRE(huge != NULL);
    memset(huge, 'x', 70000);
    src.p = huge;
    src.n = 70000;
    src.at = 0;
    CHECK_EQ_INT(coh__serve_read_body(1024, -1, mem_read, &src, &body, &len, &r), 1);
    CHECK(r.status == 413 && body == NULL);
    CHECK(src.at <= 65536 + 1);
    free(huge);
  }
}

#define ADDS(b, str) coh__buf_add((b), (str), strlen(str))

/* Checks an OpenAI body against the fixture model: 0 accepted (the job
 * freed), else the reply's status. */
static int check_one(coh_serve *s, int kind, const char *body, coh__serve_reply *r) {
  coh__serve_checked c;
  if (coh__serve_check_request(s, kind, body, strlen(body), 5, &c, r)) return r->status;
  coh__serve_job_free(c.job);
  return 0;
}

/* The request checks with a real model: a refusal names the field; the
 * bounds of docs/serve.md hold; the error body stays valid JSON when the
 * message is cut inside a UTF-8 character. */
static void test_check_request(void) {
  coh_serve *s = core(1, 2);
  coh__serve_reply r;
  coh__serve_checked c;
  coh__buf b = {0};
  json_t *e;
  char *text;
  int i;
  REQUIRE(s != NULL);
  /* accepted: the job carries what the body said */
  {
    const char *ok = "{\"model\":\"llama-tiny-gqa-fp32\",\"messages\":[{\"role\":\"user\","
                     "\"content\":\"hi\"}],\"max_tokens\":7,\"n\":2,\"seed\":11,"
                     "\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    REQUIRE(coh__serve_check_request(s, COH__JOB_CHAT, ok, strlen(ok), 5, &c, &r) == 0);
    CHECK(c.job != NULL && c.stream == 1 && c.include_usage == 1);
    CHECK_EQ_INT(c.job->n, 2);
    CHECK_EQ_INT(c.job->lr.req.max_tokens, 7);
    CHECK(c.job->seed == 11 && c.job->lr.n_ids > 0);
    coh__serve_job_free(c.job);
  }
  /* no seed: the drawn one */
  {
    const char *p = "{\"model\":\"llama-tiny-gqa-fp32\",\"prompt\":\"x\"}";
    CHECK_EQ_INT(coh__serve_check_request(s, COH__JOB_COMPLETION, p, strlen(p), 99, &c, &r), 0);
  }
  CHECK(c.job != NULL && c.job->seed == 99);
  coh__serve_job_free(c.job);
  CHECK_EQ_INT(check_one(s, COH__JOB_CHAT, "{\"model\":\"nope\",\"messages\":[]}", &r), 404);
  CHECK(!strcmp(r.param, "model") && !strcmp(r.code, "model_not_found"));
  CHECK_EQ_INT(check_one(s, COH__JOB_CHAT,
                         "{\"model\":\"llama-tiny-gqa-fp32\",\"messages\":[{\"role\":\"user\","
                         "\"content\":\"x\"}],\"stop\":[\"\"]}", &r), 400);
  CHECK_STR(r.param, "stop[0]");
  /* 4097 messages: refused by count, before any is copied */
  ADDS(&b, "{\"model\":\"llama-tiny-gqa-fp32\",\"messages\":[");
  for (i = 0; i < COH_LLM_MAX_MESSAGES + 1; i++)
    ADDS(&b, i ? ",{\"role\":\"user\",\"content\":\"x\"}" : "{\"role\":\"user\",\"content\":\"x\"}");
  ADDS(&b, "]}");
  REQUIRE(!b.oom);
  CHECK_EQ_INT(coh__serve_check_request(s, COH__JOB_CHAT, b.p, b.n, 5, &c, &r), 1);
  CHECK(r.status == 400 && !strcmp(r.param, "messages") && strstr(r.msg, "4096") != NULL);
  coh__buf_free(&b);
  /* an unknown key of 500 two-byte characters: the message is cut inside
   * a character; the error body (U+FFFD for the cut) is still built */
  ADDS(&b, "{\"model\":\"llama-tiny-gqa-fp32\",\"");
  for (i = 0; i < 500; i++) ADDS(&b, "\xc3\xa9");
  ADDS(&b, "\":1}");
  REQUIRE(!b.oom);
  CHECK_EQ_INT(coh__serve_check_request(s, COH__JOB_CHAT, b.p, b.n, 5, &c, &r), 1);
  CHECK_EQ_INT(r.status, 400);
  CHECK(strncmp(r.msg, "Unrecognized request argument supplied: ", 40) == 0);
  CHECK(json_string(r.msg) == NULL); /* not UTF-8 as cut: json_pack would fail */
  e = coh__serve_error_json(r.type, r.param, r.code, r.msg);
  REQUIRE(e != NULL);
  text = json_dumps(e, JSON_COMPACT);
  CHECK(text != NULL && strstr(text, "\"type\":\"invalid_request_error\"") != NULL);
  free(text);
  json_decref(e);
  coh__buf_free(&b);
  coh_serve_free(s);
}

/* Replays the fuzz seeds and crash regressions through the harness, which
 * aborts on a violated property. */
static void test_fuzz_corpus(void) {
  const char *dirs[2] = {COH_TEST_DATA "/../fuzz/corpus/serve",
                         COH_TEST_DATA "/../fuzz/regressions/serve"};
  int n = 0, k;
  for (k = 0; k < 2; k++) {
    DIR *d = opendir(dirs[k]);
    struct dirent *e;
    if (d == NULL) continue;
    while ((e = readdir(d)) != NULL) {
      char path[1024];
      char *buf = NULL;
      size_t len = 0;
      coh_err err;
      if (e->d_name[0] == '.') continue;
      snprintf(path, sizeof path, "%s/%s", dirs[k], e->d_name);
      if (coh__read_file(path, &buf, &len, &err) != COH_OK) continue;
      coh__fuzz_serve_one((const uint8_t *)buf, len);
      coh__free(buf);
      n++;
    }
    closedir(d);
  }
  fprintf(stderr, "  %d corpus files replayed\n", n);
  CHECK(n >= 40);
  coh_tokenizer_free(fuzz_tok);
  coh_chat_template_free(fuzz_chat);
  fuzz_tok = NULL;
  fuzz_chat = NULL;
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_listen);
  RUN(test_options);
  RUN(test_batched_equals_solo);
  RUN(test_cancel_within_one_tick);
  RUN(test_queue_bound);
  RUN(test_payloads);
  RUN(test_front);
  RUN(test_check_request);
  RUN(test_fuzz_corpus);
  return TEST_MAIN_END();
}
