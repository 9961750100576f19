/* test_scenario.c — scenario files: a full scenario with every field, the
 * defaults, one test per error class (code, FILE:LINE:COLUMN and the key in
 * the message), the examples/ folder, out-of-memory at every allocation,
 * and the fuzz corpus replayed through the fuzz harness. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cohort/scenario.h"
#include "test.h"
#include "util/util_int.h"

#include "fuzz/fuzz_scenario.c"

#define SRC_DIR COH_TEST_DATA "/../.."

static coh_scenario *parse(const char *yaml, coh_err *err) {
  coh_scenario *s = NULL;
  int rc = coh_scenario_parse(yaml, strlen(yaml), "dir/scn.yaml", "/base",
                              &s, err);
  if (rc != COH_OK) {
    if (s != NULL) fprintf(stderr, "  *out set on failure\n");
    return NULL;
  }
  return s;
}

/* Parses yaml expecting failure `code` with "dir/scn.yaml:WHERE: " at the
 * front of the message and every word of `words` (|-separated) in it. */
#define EXPECT_ERR(yaml, code, where, words) \
  expect_err(__LINE__, yaml, code, where, words)
static void expect_err(int line, const char *yaml, int code,
                       const char *where, const char *words) {
  coh_err err;
  coh_scenario *s = NULL;
  char prefix[64], word[128];
  const char *w = words;
  int rc;
  coh_err_clear(&err);
  rc = coh_scenario_parse(yaml, strlen(yaml), "dir/scn.yaml", "/base", &s,
                          &err);
  /* where NULL: only the file name is checked */
  snprintf(prefix, sizeof prefix, where ? "dir/scn.yaml:%s: " : "%sdir/scn.yaml:",
           where ? where : "");
  test__checks++;
  if (rc != code || s != NULL || err.code != code ||
      strncmp(err.msg, prefix, strlen(prefix)) != 0) {
    fprintf(stderr, "%s:%d: expected %s at %s, got %s: %s\n", __FILE__, line,
            coh_err_name(code), where, coh_err_name(rc), err.msg);
    test__failures++;
  }
  while (*w) {
    size_t n = strcspn(w, "|");
    snprintf(word, sizeof word, "%.*s", (int)n, w);
    test__checks++;
    if (strstr(err.msg, word) == NULL) {
      fprintf(stderr, "%s:%d: message lacks '%s': %s\n", __FILE__, line,
              word, err.msg);
      test__failures++;
    }
    w += n;
    if (*w == '|') w++;
  }
  coh_scenario_free(s);
}

static const char full_yaml[] =
    "name: full-run\n"                                          /* 1 */
    "seed: 18446744073709551615\n"                              /* 2 */
    "models:\n"                                                 /* 3 */
    "  - name: demo\n"                                          /* 4 */
    "    path: ../fixtures/llama-demo\n"                        /* 5 */
    "    device: cuda\n"                                        /* 6 */
    "    max_batch: 32\n"                                       /* 7 */
    "    threads: 2\n"                                          /* 8 */
    "  - {name: other, path: /abs/model, device: cpu}\n"        /* 9 */
    "policy:\n"                                                 /* 10 */
    "  kind: dag\n"                                             /* 11 */
    "  quantum: 4\n"                                            /* 12 */
    "stop:\n"                                                   /* 13 */
    "  max_ticks: 200\n"                                        /* 14 */
    "  quiescence: false\n"                                     /* 15 */
    "  on_exit: judge\n"                                        /* 16 */
    "checkpoint_every: 10\n"                                    /* 17 */
    "agents:\n"                                                 /* 18 */
    "  - id: alice\n"                                           /* 19 */
    "    module: alice.wasm\n"                                  /* 20 */
    "    config:\n"                                             /* 21 */
    "      role: \"You are Alice.\"\n"                          /* 22 */
    "      model: demo\n"                                       /* 23 */
    "      max_tokens: 32\n"                                    /* 24 */
    "      temperature: 0.7\n"                                  /* 25 */
    "      reply: true\n"                                       /* 26 */
    "      none: ~\n"                                           /* 27 */
    "      quoted: \"42\"\n"                                    /* 28 */
    "      single: 'true'\n"                                    /* 29 */
    "      words: yes\n"                                        /* 30 */
    "      list: [1, two, 3.5e3, -0x10, 0o17]\n"                /* 31 */
    "      nested: {a: -1, b: [], c: {}}\n"                     /* 32 */
    "      text: |\n"                                           /* 33 */
    "        two\n"                                             /* 34 */
    "        lines\n"                                           /* 35 */
    "  - id: worker\n"                                          /* 36 */
    "    module: agents/echo.wasm\n"                            /* 37 */
    "    count: 10\n"                                           /* 38 */
    "    fuel: 0\n"                                             /* 39 */
    "    memory_mb: 16\n"                                       /* 40 */
    "    priority: -3\n"                                        /* 41 */
    "    inbox: 64\n"                                           /* 42 */
    "    after: [alice]\n"                                      /* 43 */
    "  - id: judge\n"                                           /* 44 */
    "    kind: wasm\n"                                          /* 45 */
    "    module: /opt/judge.wasm\n"                             /* 46 */
    "    fuel: 0x10\n"                                          /* 47 */
    "    after: [worker, alice, worker-9]\n"                    /* 48 */
    "    config: {}\n"                                          /* 49 */
    "messages:\n"                                               /* 50 */
    "  - to: alice\n"                                           /* 51 */
    "    from: user\n"                                          /* 52 */
    "    body: \"Is the sea wet?\"\n"                           /* 53 */
    "    tick: 0\n"                                             /* 54 */
    "  - {to: worker-3, body: {task: 3, weight: 0.25}, tick: 5}\n" /* 55 */
    "  - {to: judge, body: 17}\n"                               /* 56 */
    "  - {to: judge, body: plain words}\n"                      /* 57 */
    "  - {to: judge, body: \"nul\\0byte\"}\n"                   /* 58 */
    "  - {to: judge}\n";                                        /* 59 */

static void test_full(void) {
  coh_err err;
  coh_scenario *s = parse(full_yaml, &err);
  const coh_scn_agent *a;
  if (s == NULL) fprintf(stderr, "  %s\n", err.msg);
  REQUIRE(s != NULL);
  CHECK_STR(s->path, "dir/scn.yaml");
  CHECK_STR(s->dir, "/base");
  CHECK_STR(s->name, "full-run");
  CHECK_EQ_INT(s->text_len, strlen(full_yaml));
  CHECK(memcmp(s->text, full_yaml, s->text_len) == 0);
  CHECK(s->seed == UINT64_MAX);
  CHECK_EQ_INT(s->policy, COH_POLICY_DAG);
  CHECK_EQ_INT(s->quantum, 4);
  CHECK_EQ_INT(s->max_ticks, 200);
  CHECK_EQ_INT(s->quiescence, 0);
  CHECK_STR(s->stop_on_exit, "judge");
  CHECK_EQ_INT(s->checkpoint_every, 10);

  REQUIRE(s->n_models == 2);
  CHECK_STR(s->models[0].name, "demo");
  CHECK_STR(s->models[0].path, "/base/../fixtures/llama-demo");
  CHECK_EQ_INT(s->models[0].device, COH_DEVICE_CUDA);
  CHECK_EQ_INT(s->models[0].max_batch, 32);
  CHECK_EQ_INT(s->models[0].threads, 2);
  CHECK_EQ_INT(s->models[0].line, 4);
  CHECK_STR(s->models[1].path, "/abs/model");
  CHECK_EQ_INT(s->models[1].device, COH_DEVICE_CPU);
  CHECK_EQ_INT(s->models[1].max_batch, 16);
  CHECK_EQ_INT(s->models[1].line, 9);

  REQUIRE(s->n_agents == 3);
  a = &s->agents[0];
  CHECK_STR(a->id, "alice");
  CHECK(!a->is_prompt); /* a wasm agent's config may hold anything */
  CHECK_STR(a->module, "/base/alice.wasm");
  CHECK_EQ_INT(a->line, 19);
  CHECK_STR(a->config_json,
            "{\"role\":\"You are Alice.\",\"model\":\"demo\","
            "\"max_tokens\":32,\"temperature\":0.7,\"reply\":true,"
            "\"none\":null,\"quoted\":\"42\",\"single\":\"true\","
            "\"words\":\"yes\",\"list\":[1,\"two\",3500.0,\"-0x10\",15],"
            "\"nested\":{\"a\":-1,\"b\":[],\"c\":{}},"
            "\"text\":\"two\\nlines\\n\"}");
  CHECK(a->fuel == 100000000);
  CHECK_EQ_INT(a->count, 1);
  CHECK_EQ_INT(a->n_after, 0);
  a = &s->agents[1];
  CHECK_STR(a->id, "worker");
  CHECK(!a->is_prompt);
  CHECK_STR(a->module, "/base/agents/echo.wasm");
  CHECK_STR(a->config_json, "{}");
  CHECK_EQ_INT(a->count, 10);
  CHECK(a->fuel == 0);
  CHECK_EQ_INT(a->memory_mb, 16);
  CHECK_EQ_INT(a->priority, -3);
  CHECK_EQ_INT(a->inbox, 64);
  REQUIRE(a->n_after == 1);
  CHECK_STR(a->after[0], "alice");
  a = &s->agents[2];
  CHECK_STR(a->module, "/opt/judge.wasm");
  CHECK(a->fuel == 16);
  CHECK_STR(a->config_json, "{}");
  REQUIRE(a->n_after == 3);
  CHECK_STR(a->after[0], "worker");
  CHECK_STR(a->after[2], "worker-9");
  CHECK_EQ_INT(coh_scenario_instances(s), 12);

  REQUIRE(s->n_messages == 6);
  CHECK_STR(s->messages[0].to, "alice");
  CHECK_STR(s->messages[0].from, "user");
  CHECK_STR(s->messages[0].body, "Is the sea wet?");
  CHECK_EQ_INT(s->messages[0].body_len, 15);
  CHECK_EQ_INT(s->messages[0].tick, 0);
  CHECK_EQ_INT(s->messages[0].line, 51);
  CHECK_STR(s->messages[1].to, "worker-3");
  CHECK_STR(s->messages[1].from, "scenario");
  CHECK_STR(s->messages[1].body, "{\"task\":3,\"weight\":0.25}");
  CHECK_EQ_INT(s->messages[1].body_len, 24);
  CHECK_EQ_INT(s->messages[1].tick, 5);
  CHECK_STR(s->messages[2].body, "17");
  CHECK_STR(s->messages[3].body, "plain words");
  CHECK_EQ_INT(s->messages[4].body_len, 8);
  CHECK(memcmp(s->messages[4].body, "nul\0byte", 8) == 0);
  CHECK_STR(s->messages[5].body, "");
  CHECK_EQ_INT(s->messages[5].body_len, 0);
  coh_scenario_free(s);
}

static void test_defaults(void) {
  coh_err err;
  coh_scenario *s = NULL;
  const char *y = "agents:\n  - {id: a, module: a.wasm}\n";
  int rc = coh_scenario_parse(y, strlen(y), "some/where/my-run.yml", NULL, &s,
                              &err);
  REQUIRE(rc == COH_OK);
  CHECK_STR(s->name, "my-run");
  CHECK_STR(s->dir, ".");
  CHECK(s->seed == 0);
  CHECK_EQ_INT(s->policy, COH_POLICY_ROUND_ROBIN);
  CHECK_EQ_INT(s->quantum, 1);
  CHECK_EQ_INT(s->max_ticks, 1000);
  CHECK_EQ_INT(s->quiescence, 1);
  CHECK(s->stop_on_exit == NULL);
  CHECK_EQ_INT(s->checkpoint_every, 0);
  CHECK_EQ_INT(s->n_models, 0);
  CHECK_EQ_INT(s->n_messages, 0);
  REQUIRE(s->n_agents == 1);
  CHECK_STR(s->agents[0].module, "./a.wasm");
  CHECK_STR(s->agents[0].config_json, "{}");
  CHECK(s->agents[0].fuel == 100000000);
  CHECK_EQ_INT(s->agents[0].memory_mb, 64);
  CHECK_EQ_INT(s->agents[0].priority, 0);
  CHECK_EQ_INT(s->agents[0].count, 1);
  CHECK_EQ_INT(s->agents[0].inbox, 256);
  CHECK_EQ_INT(s->agents[0].line, 2);
  CHECK_EQ_INT(coh_scenario_instances(s), 1);
  coh_scenario_free(s);
  /* a model with defaults, a prompt agent without config */
  y = "models: [{name: m, path: m}]\nagents: [{id: p, kind: prompt}]\n";
  rc = coh_scenario_parse(y, strlen(y), "x.yaml", "d", &s, &err);
  REQUIRE(rc == COH_OK);
  CHECK_STR(s->name, "x");
  CHECK_STR(s->models[0].path, "d/m");
  CHECK_EQ_INT(s->models[0].device, COH_DEVICE_AUTO);
  CHECK_EQ_INT(s->models[0].max_batch, 16);
  CHECK_EQ_INT(s->models[0].threads, 0);
  CHECK_EQ_INT(s->models[0].prefill_chunk, 0);
  CHECK_STR(s->agents[0].config_json, "{}");
  coh_scenario_free(s);
  y = "models: [{name: m, path: m, prefill_chunk: 64}]\nagents: [{id: p, kind: prompt}]\n";
  rc = coh_scenario_parse(y, strlen(y), "x.yaml", "d", &s, &err);
  REQUIRE(rc == COH_OK);
  CHECK_EQ_INT(s->models[0].prefill_chunk, 64);
  coh_scenario_free(s);
  y = "agents: [{id: p, module: p, config: Null}]\n";
  rc = coh_scenario_parse(y, strlen(y), "x.yaml", "d", &s, &err);
  REQUIRE(rc == COH_OK);
  CHECK_STR(s->agents[0].config_json, "{}");
  coh_scenario_free(s);
}

static void test_syntax_errors(void) {
  EXPECT_ERR("agents: [{id: a, module: a.wasm}\n", COH_EFORMAT, "2:1",
             "YAML syntax error|expected ',' or ']'");
  EXPECT_ERR("agents:\n  - id: a\n   module: x\n", COH_EFORMAT, "3:4",
             "YAML syntax error");
  EXPECT_ERR("agents: *nowhere\n", COH_EFORMAT, "1:9", "undefined alias");
  EXPECT_ERR("", COH_EFORMAT, "1:1", "empty|agents");
  EXPECT_ERR("# only a comment\n", COH_EFORMAT, "1:1", "empty");
  EXPECT_ERR("agents: [{id: a, module: a}]\n---\nseed: 1\n", COH_EFORMAT,
             "3:1", "second YAML document");
  EXPECT_ERR("name: ok\nseed: \xff\xfe\n", COH_EFORMAT, "2:7", "UTF-8");
  EXPECT_ERR("- a\n- b\n", COH_EFORMAT, "1:1", "the scenario|mapping");
}

static void test_unknown_keys(void) {
  EXPECT_ERR("agnets: []\n", COH_EFORMAT, "1:1",
             "unknown key 'agnets'|expected one of: name, seed, models, "
             "policy, stop, checkpoint_every, agents, messages");
  EXPECT_ERR("agents:\n  - id: a\n    modle: a.wasm\n", COH_EFORMAT, "3:5",
             "unknown key 'modle'|agents[0]|module|count|after");
  EXPECT_ERR("policy: {kind: dag, quanta: 3}\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:21", "unknown key 'quanta'|kind, quantum");
  EXPECT_ERR("stop: {max_tick: 3}\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:8", "'max_tick'|max_ticks, quiescence, on_exit");
  EXPECT_ERR("models: [{name: m, path: p, gpu: 1}]\n"
             "agents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:29", "'gpu'|models[0]|max_batch");
  EXPECT_ERR("agents: [{id: a, module: a}]\nmessages: [{to: a, text: hi}]\n",
             COH_EFORMAT, "2:20", "'text'|to, from, body, tick");
  EXPECT_ERR("seed: 1\nseed: 2\nagents: [{id: a, module: a}]\n", COH_EFORMAT,
             "2:1", "duplicate key 'seed'|line 1");
  EXPECT_ERR("agents: [{id: a, module: a, config: {x: 1, x: 2}}]\n",
             COH_EFORMAT, "1:44", "duplicate key 'x'");
}

static void test_wrong_types(void) {
  EXPECT_ERR("agents: [{id: a, module: a, count: \"3\"}]\n", COH_EFORMAT,
             "1:36", "count|quoted string|expected an integer");
  EXPECT_ERR("stop: {quiescence: yes}\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:20", "stop.quiescence|expected true or false");
  EXPECT_ERR("agents: {id: a}\n", COH_EFORMAT, "1:9",
             "agents is a mapping|expected a sequence");
  EXPECT_ERR("agents: [a]\n", COH_EFORMAT, "1:10",
             "agents[0] is a string|expected a mapping");
  EXPECT_ERR("agents: [{id: a, module: [x]}]\n", COH_EFORMAT, "1:26",
             "module is a sequence|expected a string");
  EXPECT_ERR("agents: [{id: a, module: a, config: [1]}]\n", COH_EFORMAT,
             "1:37", "config is a sequence|expected a mapping");
  EXPECT_ERR("agents: [{id: a, module: a, fuel: 1.5}]\n", COH_EFORMAT,
             "1:35", "fuel is a number|expected an integer");
  EXPECT_ERR("policy: {kind: fifo}\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:16",
             "policy.kind is 'fifo'|round_robin | priority | dag");
  EXPECT_ERR("models: [{name: m, path: p, device: tpu}]\n"
             "agents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:37", "device|'tpu'|auto | cpu | cuda");
  EXPECT_ERR("agents: [{id: a, kind: python}]\n", COH_EFORMAT, "1:24",
             "kind|'python'|wasm | prompt");
  EXPECT_ERR("agents: [{id: a, kind: prompt, config: {model: 3}}]\n",
             COH_EFORMAT, "1:48",
             "agent 'a': config.model is an integer; expected a string");
  EXPECT_ERR("agents: [{id: a, module: a, config: {x: .inf}}]\n",
             COH_EFORMAT, "1:41", "'.inf'|finite number");
  EXPECT_ERR("agents: [{id: a, module: a, config: {x: 99999999999999999999}}]"
             "\n", COH_EFORMAT, "1:41", "64 bits");
  EXPECT_ERR("agents: [{id: a, module: a, config: {[k]: 1}}]\n",
             COH_EFORMAT, "1:38", "mapping key|sequence");
  EXPECT_ERR("agents: [{id: \"a b\", module: a}]\n", COH_EFORMAT, "1:15",
             "agents[0].id|'a b'|not a valid id|1-64");
  EXPECT_ERR("agents: [{id: "
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,"
             " module: a}]\n",
             COH_EFORMAT, "1:15", "not a valid id");
  EXPECT_ERR("agents: [{id: a, module: a}]\nmessages: [{to: a, from: \"\"}]\n",
             COH_EFORMAT, "2:26", "messages[0].from|empty");
  EXPECT_ERR("agents: [{id: a, module: a, after: {x: 1}}]\n", COH_EFORMAT,
             "1:36", "after is a mapping");
}

static void test_out_of_range(void) {
  EXPECT_ERR("agents: [{id: a, module: a, count: 0}]\n", COH_EFORMAT, "1:36",
             "count is 0, out of range|expected 1..100000");
  EXPECT_ERR("agents: [{id: a, module: a, count: 100001}]\n", COH_EFORMAT,
             "1:36", "count|1..100000");
  EXPECT_ERR("models: [{name: m, path: p, max_batch: 2000}]\n"
             "agents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:40", "max_batch is 2000|1..1024");
  EXPECT_ERR("models: [{name: m, path: p, prefill_chunk: 0}]\n"
             "agents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:44", "models[0].prefill_chunk is 0|1..65536");
  EXPECT_ERR("models: [{name: m, path: p, prefill_chunk: 65537}]\n"
             "agents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:44", "prefill_chunk is 65537|1..65536");
  EXPECT_ERR("agents: [{id: a, module: a, memory_mb: 0}]\n", COH_EFORMAT,
             "1:40", "memory_mb|1..4096");
  EXPECT_ERR("agents: [{id: a, module: a, inbox: 0}]\n", COH_EFORMAT, "1:36",
             "inbox|1..1000000");
  EXPECT_ERR("agents: [{id: a, module: a, fuel: -1}]\n", COH_EFORMAT, "1:35",
             "fuel is -1, out of range|0..18446744073709551615");
  EXPECT_ERR("seed: 18446744073709551616\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:7", "seed|out of range");
  EXPECT_ERR("policy: {quantum: 0}\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:19", "policy.quantum|1..1000000");
  EXPECT_ERR("stop: {max_ticks: 0}\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:19", "stop.max_ticks|1..1000000000");
  EXPECT_ERR("checkpoint_every: -1\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:19", "checkpoint_every|0..1000000000");
  EXPECT_ERR("agents: [{id: a, module: a}]\nmessages: [{to: a, tick: -2}]\n",
             COH_EFORMAT, "2:26", "messages[0].tick|0..1000000000");
  EXPECT_ERR("agents: [{id: a, module: a, priority: 9999999}]\n",
             COH_EFORMAT, "1:39", "priority|-1000000..1000000");
  EXPECT_ERR("agents:\n"
             "  - {id: a, module: a, count: 100000}\n"
             "  - {id: b, module: a, count: 100000}\n"
             "  - {id: c, module: a, count: 100000}\n"
             "  - {id: d, module: a, count: 100000}\n"
             "  - {id: e, module: a, count: 100000}\n"
             "  - {id: f, module: a, count: 100000}\n"
             "  - {id: g, module: a, count: 100000}\n"
             "  - {id: h, module: a, count: 100000}\n"
             "  - {id: i, module: a, count: 100000}\n"
             "  - {id: j, module: a, count: 100000}\n"
             "  - {id: k, module: a, count: 1}\n",
             COH_EFORMAT, "12:5", "agent 'k'|1000001|at most 1000000");
}

static void test_missing(void) {
  EXPECT_ERR("seed: 3\n", COH_EFORMAT, "1:1", "no 'agents'");
  EXPECT_ERR("agents: []\n", COH_EFORMAT, "1:9", "agents is empty");
  EXPECT_ERR("agents:\n  - module: a.wasm\n", COH_EFORMAT, "2:5",
             "agents[0] has no 'id'");
  EXPECT_ERR("agents:\n  - id: a\n    count: 2\n", COH_EFORMAT, "2:5",
             "agent 'a' has no 'module'|kind: prompt");
  EXPECT_ERR("agents: [{id: a, module: a}]\nmessages:\n  - body: hi\n",
             COH_EFORMAT, "3:5", "messages[0] has no 'to'");
  EXPECT_ERR("models:\n  - path: p\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "2:5", "models[0] has no 'name'");
  EXPECT_ERR("models:\n  - name: m\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "2:5", "models[0] ('m') has no 'path'");
  EXPECT_ERR("agents: [{id: a, module: \"\"}]\n", COH_EFORMAT, "1:26",
             "module is empty");
  EXPECT_ERR("agents: [{id: a, module: }]\n", COH_EFORMAT, "1:26",
             "module is empty");
  EXPECT_ERR("models: [{name: m, path: ''}]\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "1:26", "models[0].path is empty");
  EXPECT_ERR("agents: [{id: a, kind: prompt, module: a.wasm}]\n",
             COH_EFORMAT, "1:40", "kind: prompt and a 'module'");
}

static void test_duplicates(void) {
  EXPECT_ERR("agents:\n  - {id: a, module: a}\n  - {id: b, module: b}\n"
             "  - {id: a, module: c}\n",
             COH_EFORMAT, "4:5", "duplicate agent id 'a'|line 2");
  EXPECT_ERR("agents:\n  - {id: w-1, module: a}\n"
             "  - {id: w, module: b, count: 3}\n",
             COH_EFORMAT, "2:5", "'w-1' is also an instance of 'w'|count 3");
  EXPECT_ERR("models:\n  - {name: m, path: a}\n  - {name: m, path: b}\n"
             "agents: [{id: a, module: a}]\n",
             COH_EFORMAT, "3:12", "duplicate model name 'm'|line 2");
  { /* w-3 with count 3 does not collide (w-0..w-2), w-03 never */
    coh_err err;
    coh_scenario *s = parse("agents:\n  - {id: w-3, module: a}\n"
                            "  - {id: w, module: b, count: 3}\n"
                            "  - {id: w-01, module: b}\n", &err);
    CHECK(s != NULL);
    coh_scenario_free(s);
  }
}

static void test_unknown_targets(void) {
  EXPECT_ERR("agents: [{id: a, module: a}]\nmessages: [{to: b, body: x}]\n",
             COH_EFORMAT, "2:17",
             "messages[0].to names unknown agent 'b'|instance id");
  EXPECT_ERR("agents: [{id: w, module: a, count: 3}]\n"
             "messages: [{to: w-3}]\n",
             COH_EFORMAT, "2:17", "unknown agent 'w-3'");
  EXPECT_ERR("agents: [{id: w, module: a, count: 3}]\n"
             "messages: [{to: w}]\n",
             COH_EFORMAT, "2:17", "'w', which has 3 instances|w-0 .. w-2");
  EXPECT_ERR("agents: [{id: w, module: a, count: 3}]\n"
             "messages: [{to: w-01}]\n",
             COH_EFORMAT, "2:17", "unknown agent 'w-01'");
  EXPECT_ERR("agents: [{id: a, module: a}]\nstop: {on_exit: judge}\n",
             COH_EFORMAT, "2:17", "stop.on_exit names unknown agent 'judge'");
  EXPECT_ERR("agents: [{id: w, module: a, count: 2}]\nstop: {on_exit: w}\n",
             COH_EFORMAT, "2:17", "stop.on_exit|2 instances");
  {
    coh_err err;
    coh_scenario *s = parse("agents: [{id: w, module: a, count: 2}]\n"
                            "stop: {on_exit: w-1}\n"
                            "messages: [{to: w-0, from: w-1}]\n", &err);
    CHECK(s != NULL);
    coh_scenario_free(s);
  }
}

static void test_prompt_models(void) {
  EXPECT_ERR("models: [{name: demo, path: d}]\n"
             "agents:\n"
             "  - id: alice\n"
             "    kind: prompt\n"
             "    config: {role: hi, model: dem}\n",
             COH_EFORMAT, "5:31",
             "agent 'alice'|config.model|unknown model 'dem'");
  EXPECT_ERR("agents: [{id: p, kind: prompt, config: {model: demo}}]\n",
             COH_EFORMAT, "1:48", "unknown model 'demo'|there are none");
  { /* a wasm agent's config.model is its own business */
    coh_err err;
    coh_scenario *s = parse("agents: [{id: a, module: a, config: {model: x}}]"
                            "\n", &err);
    CHECK(s != NULL);
    coh_scenario_free(s);
  }
}

static void test_dag(void) {
  EXPECT_ERR("policy: {kind: dag}\n"
             "agents:\n"
             "  - {id: a, module: a, after: [ghost]}\n",
             COH_EFORMAT, "3:32", "agent 'a': after|unknown agent 'ghost'");
  EXPECT_ERR("policy: {kind: dag}\n"
             "agents:\n"
             "  - {id: a, module: m, after: [c]}\n"
             "  - {id: b, module: m, after: [a]}\n"
             "  - {id: c, module: m, after: [b]}\n",
             COH_EFORMAT, "4:32",
             "agent 'b': after 'a'|dependency cycle: a -> c -> b -> a");
  EXPECT_ERR("agents:\n  - {id: a, module: m, after: a}\n", COH_EFORMAT,
             "2:31", "cycle: a -> a");
  EXPECT_ERR("agents:\n"
             "  - {id: w, module: m, count: 3, after: [r]}\n"
             "  - {id: r, module: m, after: [w-2]}\n",
             COH_EFORMAT, "3:32", "cycle: w -> r -> w");
  { /* a diamond is no cycle; base ids and instances both resolve */
    coh_err err;
    coh_scenario *s = parse("policy: {kind: dag}\nagents:\n"
                            "  - {id: p, module: m}\n"
                            "  - {id: w, module: m, count: 3, after: [p]}\n"
                            "  - {id: x, module: m, after: p}\n"
                            "  - {id: r, module: m, after: [w, x, w-0]}\n",
                            &err);
    if (s == NULL) fprintf(stderr, "  %s\n", err.msg);
    CHECK(s != NULL);
    coh_scenario_free(s);
  }
}

static void test_aliases(void) {
  coh_err err;
  coh_scenario *s;
  /* anchors are fine where they are finite */
  s = parse("base: &b {model: m}\n"
            "agents: [{id: a, module: a, config: *b}]\n", &err);
  CHECK(s == NULL); /* 'base' is not a scenario key */
  s = parse("agents:\n"
            "  - {id: a, module: a, config: &c {k: [1, 2]}}\n"
            "  - {id: b, module: a, config: *c}\n", &err);
  REQUIRE(s != NULL);
  CHECK_STR(s->agents[1].config_json, "{\"k\":[1,2]}");
  coh_scenario_free(s);
  /* recursion and billion laughs end in errors, not in a crash */
  EXPECT_ERR("agents: [{id: a, module: a, config: &r {self: *r}}]\n",
             COH_EFORMAT, "1:37", "recursive alias");
  EXPECT_ERR("agents: [{id: a, module: a, config: {x: &a [y, y, y, y, y, y, "
             "y, y, y, y],\n"
             " b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a],\n"
             " c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b],\n"
             " d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c],\n"
             " e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d],\n"
             " f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e],\n"
             " g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f],\n"
             " h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]}}]\n",
             COH_EFORMAT, NULL, "too much data");
}

/* The stock prompt agent's config is checked at load, with the field and
 * its position. */
static void test_prompt_config(void) {
  coh_err err;
  coh_scenario *s;
  char *big;
  size_t i;
  const char *head = "models: [{name: m, path: m}]\nagents:\n  - id: p\n"
                     "    kind: prompt\n    config: ";
  char y[512];
#define PCFG(cfg) (snprintf(y, sizeof y, "%s%s\n", head, cfg), y)
  s = parse(PCFG("{role: r, prompt: \"{role} {input}\", model: m, "
                 "max_tokens: 0, reply: false, routes: [{match: X, to: "
                 "boss-1}]}"), &err);
  if (s == NULL) fprintf(stderr, "  %s\n", err.msg);
  CHECK(s != NULL);
  coh_scenario_free(s);
  EXPECT_ERR(PCFG("{model: m, max_tokens: -5}"), COH_EFORMAT, "5:36",
             "agent 'p': config.max_tokens is -5, out of range|0..1048576");
  EXPECT_ERR(PCFG("{model: m, max_tokens: \"x\"}"), COH_EFORMAT, "5:36",
             "agent 'p': config.max_tokens is a quoted string|expected an "
             "integer");
  EXPECT_ERR(PCFG("{model: m, max_tokens: x}"), COH_EFORMAT, "5:36",
             "config.max_tokens is a string|expected an integer");
  EXPECT_ERR(PCFG("{model: m, max_tokens: 1048577}"), COH_EFORMAT, "5:36",
             "config.max_tokens is 1048577, out of range");
  EXPECT_ERR(PCFG("{model: m, max_tokens: 2.5}"), COH_EFORMAT, "5:36",
             "config.max_tokens is a number");
  EXPECT_ERR(PCFG("{model: m, max_token: 5}"), COH_EFORMAT, "5:24",
             "unknown key 'max_token' in agent 'p': config|role, prompt, "
             "model, max_tokens, reply, routes");
  EXPECT_ERR(PCFG("{role: 12}"), COH_EFORMAT, "5:20",
             "config.role is an integer; expected a string");
  EXPECT_ERR(PCFG("{role: ~}"), COH_EFORMAT, "5:20", "config.role is null");
  EXPECT_ERR(PCFG("{prompt: [a]}"), COH_EFORMAT, "5:22",
             "config.prompt is a sequence");
  EXPECT_ERR(PCFG("{reply: yes}"), COH_EFORMAT, "5:21",
             "config.reply is a string; expected true or false");
  EXPECT_ERR(PCFG("{routes: {match: a, to: b}}"), COH_EFORMAT, "5:22",
             "config.routes is a mapping|sequence");
  EXPECT_ERR(PCFG("{routes: [{match: a}]}"), COH_EFORMAT, "5:23",
             "config.routes[0] has no 'to'");
  EXPECT_ERR(PCFG("{routes: [{match: a, to: \"no way\"}]}"), COH_EFORMAT,
             "5:38", "config.routes[0].to 'no way' is not a valid id");
  /* the sampling keys the agent passes to its requests, in the ranges the
   * request parser takes */
  s = parse(PCFG("{model: m, temperature: 0.7, top_k: 40, top_p: 0.9, "
                 "min_p: 0, repetition_penalty: 1.1, stop: [\"\\n\\n\", x]}"),
            &err);
  if (s == NULL) fprintf(stderr, "  %s\n", err.msg);
  CHECK(s != NULL);
  coh_scenario_free(s);
  s = parse(PCFG("{model: m, stop: end}"), &err);
  CHECK(s != NULL);
  coh_scenario_free(s);
  EXPECT_ERR(PCFG("{temperature: -1}"), COH_EFORMAT, "5:27",
             "config.temperature is -1, out of range; expected [0, 100]");
  EXPECT_ERR(PCFG("{temperature: hot}"), COH_EFORMAT, "5:27",
             "config.temperature is a string; expected a number");
  EXPECT_ERR(PCFG("{top_p: 0}"), COH_EFORMAT, "5:21",
             "config.top_p is 0, out of range; expected (0, 1]");
  EXPECT_ERR(PCFG("{top_k: 2.5}"), COH_EFORMAT, "5:21",
             "config.top_k is a number; expected an integer");
  EXPECT_ERR(PCFG("{min_p: 2}"), COH_EFORMAT, "5:21", "config.min_p is 2");
  EXPECT_ERR(PCFG("{repetition_penalty: 0}"), COH_EFORMAT, "5:34",
             "config.repetition_penalty is 0, out of range");
  EXPECT_ERR(PCFG("{stop: [a, \"\"]}"), COH_EFORMAT, "5:24",
             "config.stop[1] is empty");
  EXPECT_ERR(PCFG("{stop: [[a]]}"), COH_EFORMAT, "5:21",
             "config.stop[0] is a sequence; expected a string");
  EXPECT_ERR(PCFG("{stop: [a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a]}"), COH_EFORMAT,
             "5:20", "config.stop has 17 strings; expected at most 16");
  EXPECT_ERR(PCFG("{routes: [{match: a, to: b, when: c}]}"), COH_EFORMAT,
             "5:41", "unknown key 'when' in agent 'p': config.routes[0]");
#undef PCFG
  /* too long for the agent's buffers: a field, then the whole config */
  big = malloc(16384);
  REQUIRE(big != NULL);
  strcpy(big, "agents: [{id: p, kind: prompt, config: {role: \"");
  for (i = 0; i < 1024; i++) strcat(big, "r");
  strcat(big, "\"}}]\n");
  EXPECT_ERR(big, COH_EFORMAT, "1:47",
             "config.role is 1024 bytes long; expected at most 1023");
  strcpy(big, "agents: [{id: p, kind: prompt, config: {routes: [");
  for (i = 0; i < 400; i++) strcat(big, "{match: abcdefgh, to: x},");
  strcat(big, "]}}]\n");
  EXPECT_ERR(big, COH_EFORMAT, "1:40",
             "agent 'p': config is 12012 bytes as JSON; expected at most 8191");
  free(big);
  /* a wasm agent's config is its own business */
  s = parse("agents: [{id: w, module: w, config: {max_tokens: -5, x: y}}]\n",
            &err);
  CHECK(s != NULL);
  coh_scenario_free(s);
}

/* Inputs that used to hang or that have no business being read: deep
 * nesting (libyaml is quadratic in flow depth), oversized text, and paths
 * that name devices or FIFOs.  A regression hangs until the CTest
 * timeout. */
static void test_bounds(void) {
  coh_err err;
  coh_scenario *s = NULL;
  size_t n = 200000, i, len;
  char *y = malloc(2 * n + 16), path[128], *dir;
  REQUIRE(y != NULL);
  /* 200,000 '[' on one line: refused at the 101st level */
  len = (size_t)sprintf(y, "agents: ");
  for (i = 0; i < n; i++) y[len++] = '[';
  for (i = 0; i < n; i++) y[len++] = ']';
  y[len++] = '\n';
  y[len] = '\0';
  EXPECT_ERR(y, COH_EFORMAT, "1:108",
             "nesting deeper than 100 levels; expected at most 100");
  /* flow mappings, then block sequences on one line */
  len = (size_t)sprintf(y, "agents: ");
  for (i = 0; i < n / 4; i++) len += (size_t)sprintf(y + len, "{a: ");
  y[len++] = '\n';
  y[len] = '\0';
  EXPECT_ERR(y, COH_EFORMAT, "1:405", "nesting deeper than 100 levels");
  len = (size_t)sprintf(y, "agents:\n  ");
  for (i = 0; i < n / 2; i++) len += (size_t)sprintf(y + len, "- ");
  y[len++] = '\n';
  y[len] = '\0';
  EXPECT_ERR(y, COH_EFORMAT, "2:201", "nesting deeper than 100 levels");
  /* exactly 100 levels pass the parser's cap; the config's own cap of 64
   * then speaks */
  len = (size_t)sprintf(y, "agents: [{id: a, module: a, config: {k: ");
  for (i = 0; i < 96; i++) y[len++] = '[';
  for (i = 0; i < 96; i++) y[len++] = ']';
  len += (size_t)sprintf(y + len, "}}]\n");
  EXPECT_ERR(y, COH_EFORMAT, NULL, "nesting deeper than 64 levels");
  y[36 + 4 + 96] = '\0';
  strcat(y, "[[]]}}]\n"); /* one more level: the parser's cap */
  EXPECT_ERR(y, COH_EFORMAT, "1:137", "nesting deeper than 100 levels");
  free(y);
  /* size: refused before parsing */
  len = COH_SCENARIO_MAX_BYTES + 1;
  y = malloc(len + 1);
  REQUIRE(y != NULL);
  memset(y, '#', len);
  y[len] = '\0';
  CHECK_EQ_INT(coh_scenario_parse(y, len, "big.yaml", ".", &s, &err),
               COH_ERANGE);
  CHECK(s == NULL);
  CHECK(strstr(err.msg, "big.yaml: the scenario is 16777217 bytes; expected "
                        "at most 16777216") != NULL);
  free(y);
  /* a device or a FIFO as the scenario file: refused without reading */
  CHECK_EQ_INT(coh_scenario_load("/dev/zero", &s, &err), COH_EINVAL);
  CHECK(strstr(err.msg, "/dev/zero: is a character device; expected a "
                        "regular file") != NULL);
  snprintf(path, sizeof path, "/tmp/coh_scn_XXXXXX");
  dir = mkdtemp(path);
  REQUIRE(dir != NULL);
  strcat(path, "/fifo.yaml");
  REQUIRE(mkfifo(path, 0600) == 0);
  CHECK_EQ_INT(coh_scenario_load(path, &s, &err), COH_EINVAL);
  CHECK(strstr(err.msg, "fifo.yaml: is a FIFO") != NULL);
  unlink(path);
  *strrchr(path, '/') = '\0';
  rmdir(path);
}

static void test_floats(void) {
  coh_err err;
  coh_scenario *s = parse("agents: [{id: a, module: a, config: "
                          "{a: 0.1, b: 1.0, c: -2.5e-3, d: .5, e: 1e300, "
                          "g: 3500., h: +7.25}}]\n", &err);
  REQUIRE(s != NULL);
  /* reals from short decimals print as written (15 digits, no noise) */
  CHECK_STR(s->agents[0].config_json,
            "{\"a\":0.1,\"b\":1.0,\"c\":-0.0025,\"d\":0.5,\"e\":1e300,"
            "\"g\":3500.0,\"h\":7.25}");
  coh_scenario_free(s);
  /* a real that needs 17 digits gets them */
  s = parse("agents: [{id: a, module: a, config: {f: 0.30000000000000004}}]\n",
            &err);
  REQUIRE(s != NULL);
  CHECK_STR(s->agents[0].config_json, "{\"f\":0.30000000000000004}");
  coh_scenario_free(s);
}

static void test_load_examples(void) {
  static const struct {
    const char *file, *name;
    size_t agents, instances, messages;
    coh_policy policy;
  } ex[] = {
      {"debate.yaml", "debate", 2, 2, 1, COH_POLICY_ROUND_ROBIN},
      {"pipeline.yaml", "pipeline", 3, 5, 4, COH_POLICY_DAG},
      {"swarm.yaml", "swarm", 1, 100, 50, COH_POLICY_ROUND_ROBIN},
  };
  size_t i;
  for (i = 0; i < sizeof ex / sizeof ex[0]; i++) {
    char path[512];
    coh_scenario *s = NULL;
    coh_err err;
    char *bytes = NULL;
    size_t len = 0;
    int rc;
    snprintf(path, sizeof path, "%s/examples/%s", SRC_DIR, ex[i].file);
    rc = coh_scenario_load(path, &s, &err);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    CHECK_EQ_INT(rc, COH_OK);
    if (rc) continue;
    CHECK_STR(s->name, ex[i].name);
    CHECK_EQ_INT(s->n_agents, ex[i].agents);
    CHECK_EQ_INT(coh_scenario_instances(s), ex[i].instances);
    CHECK_EQ_INT(s->n_messages, ex[i].messages);
    CHECK_EQ_INT(s->policy, ex[i].policy);
    CHECK(coh__read_file(path, &bytes, &len, &err) == COH_OK);
    CHECK(bytes != NULL && len == s->text_len &&
          memcmp(bytes, s->text, len) == 0);
    coh__free(bytes);
    if (strcmp(ex[i].name, "swarm") != 0) {
      REQUIRE(s->n_models == 1);
      /* the debate runs on the embedded default model */
      CHECK(strstr(s->models[0].path,
                   strcmp(ex[i].name, "debate") == 0
                       ? "/examples/../models/shakespeare"
                       : "/examples/../build/fixtures/llama-demo") != NULL);
    }
    coh_scenario_free(s);
  }
  {
    coh_scenario *s = NULL;
    coh_err err;
    CHECK_EQ_INT(coh_scenario_load(SRC_DIR "/examples/nope.yaml", &s, &err),
                 COH_ENOENT);
    CHECK(s == NULL);
    CHECK(strstr(err.msg, "nope.yaml") != NULL);
  }
}

/* ---- out of memory at every cohort allocation ---------------------------- */
static long fail_countdown = -1;
static int fail_now(void) {
  if (fail_countdown < 0) return 0;
  return fail_countdown-- == 0;
}
static void *fail_malloc(size_t n) { return fail_now() ? NULL : malloc(n); }
static void *fail_realloc(void *p, size_t n) {
  return fail_now() ? NULL : realloc(p, n);
}
static void *fail_calloc(size_t c, size_t n) {
  return fail_now() ? NULL : calloc(c, n);
}

static void test_out_of_memory(void) {
  long k;
  int saw_ok = 0;
  coh_replace_allocator(fail_malloc, fail_realloc, fail_calloc, free);
  for (k = 0; k < 2000 && !saw_ok; k++) {
    coh_scenario *s = NULL;
    coh_err err;
    int rc;
    fail_countdown = k;
    rc = coh_scenario_parse(full_yaml, strlen(full_yaml), "f.yaml", "/b", &s,
                            &err);
    fail_countdown = -1;
    if (rc != COH_OK) {
      CHECK_EQ_INT(rc, COH_ENOMEM);
      CHECK(s == NULL);
    } else {
      saw_ok = 1;
      CHECK_EQ_INT(coh_scenario_instances(s), 12);
    }
    coh_scenario_free(s);
  }
  coh_replace_allocator(malloc, realloc, calloc, free);
  CHECK(saw_ok);
}

/* Route schemas: parsed, compiled, the prompt agent's config gets the
 * schema; errors name the place; out of memory anywhere is COH_ENOMEM. */
static const char routes_yaml[] =
    "models: [{name: demo, path: m}]\n"                                   /* 1 */
    "agents:\n"                                                           /* 2 */
    "  - {id: p, kind: prompt, config: {model: demo, prompt: \"{input}\",\n" /* 3 */
    "      routes: [{match: \"\", to: w}]}}\n"                            /* 4 */
    "  - {id: w, module: w.wasm, count: 3, config: {k: 1}}\n"              /* 5 */
    "  - {id: e, module: e.wasm}\n"                                        /* 6 */
    "routes:\n"                                                           /* 7 */
    "  - from: p\n"                                                       /* 8 */
    "    to: w\n"                                                         /* 9 */
    "    schema: {type: array, items: {type: integer, maximum: 2.5e1}}\n"  /* 10 */
    "  - {from: w-1, to: e, schema: {type: object}}\n";                    /* 11 */

static void test_routes(void) {
  coh_err err;
  coh_scenario *s = parse(routes_yaml, &err);
  long k;
  int saw_ok = 0;
  if (s == NULL) fprintf(stderr, "  %s\n", err.msg);
  REQUIRE(s != NULL);
  CHECK_EQ_INT((int)s->n_routes, 2);
  CHECK_STR(s->routes[0].from, "p");
  CHECK_STR(s->routes[0].to, "w");
  CHECK_EQ_INT(s->routes[0].line, 8);
  CHECK_STR(s->routes[0].schema_json,
               "{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"maximum\":25.0}}");
  CHECK_EQ_INT((int)s->routes[0].schema_len, (int)strlen(s->routes[0].schema_json));
  CHECK_STR(s->routes[1].from, "w-1");
  CHECK_EQ_INT(s->routes[1].line, 11);
  /* the prompt agent's config: the route's schema first, then its own */
  CHECK_STR(s->agents[0].config_json,
               "{\"schema\":{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"maximum\":"
               "25.0}},\"model\":\"demo\",\"prompt\":\"{input}\",\"routes\":[{\"match\":\"\","
               "\"to\":\"w\"}]}");
  CHECK_STR(s->agents[1].config_json, "{\"k\":1}"); /* a wasm agent: as written */
  coh_scenario_free(s);
  /* a prompt agent with an empty config gets {"schema": S} */
  s = parse("models: [{name: d, path: m}]\nagents: [{id: p, kind: prompt}, {id: q, module: q}]\n"
            "routes: [{from: p, to: q, schema: {const: 1}}]\n", &err);
  REQUIRE(s != NULL);
  CHECK_STR(s->agents[0].config_json, "{\"schema\":{\"const\":1}}");
  coh_scenario_free(s);
  EXPECT_ERR("agents: [{id: a, module: a}]\nroutes: {from: a}\n", COH_EFORMAT, "2:9",
             "routes is a mapping|expected a sequence");
  EXPECT_ERR("agents: [{id: a, module: a}]\nroutes: [{from: a, to: a}]\n", COH_EFORMAT, "2:10",
             "routes[0] has no 'schema'");
  EXPECT_ERR("agents: [{id: a, module: a}]\nroutes: [{from: a, to: b, schema: {}}]\n",
             COH_EFORMAT, "2:24", "routes[0].to names unknown agent 'b'");
  EXPECT_ERR("agents: [{id: a, module: a, count: 2}]\nroutes: [{from: a-2, to: a, schema: {}}]\n",
             COH_EFORMAT, "2:17", "routes[0].from names unknown agent 'a-2'");
  EXPECT_ERR("agents: [{id: a, module: a}]\nroutes: [{from: a, to: a, schema: {not: {}}}]\n",
             COH_EFORMAT, "2:35",
             "routes[0].schema|unsupported keyword not at /");
  EXPECT_ERR("agents: [{id: a, module: a}]\nroutes: [{from: a, to: a, schema: {$ref: \"#/x\"}}]\n",
             COH_EFORMAT, "2:35", "routes[0].schema");
  EXPECT_ERR("agents: [{id: a, module: a}]\nroutes: [{from: a, to: a, schema: {}},\n"
             "  {from: a, to: a, schema: {}}]\n", COH_EFORMAT, "3:10",
             "routes[1] repeats the route a -> a of routes[0] (line 2)");
  EXPECT_ERR("models: [{name: d, path: m}]\nagents: [{id: p, kind: prompt, count: 2}, {id: q, module: q}]\n"
             "routes: [{from: p-1, to: q, schema: {}}]\n", COH_EFORMAT, "3:17",
             "one instance of the prompt agent 'p'|expected 'p'");
  EXPECT_ERR("models: [{name: d, path: m}]\nagents: [{id: p, kind: prompt, config: {tools: []}},"
             " {id: q, module: q}]\nroutes: [{from: p, to: q, schema: {}}]\n", COH_EFORMAT, "3:17",
             "prompt agent 'p' a schema, but its config (line 2) has 'tools'");
  /* out of memory at every allocation: COH_ENOMEM, nothing leaked */
  coh_replace_allocator(fail_malloc, fail_realloc, fail_calloc, free);
  for (k = 0; k < 4000 && !saw_ok; k++) {
    int rc;
    s = NULL;
    fail_countdown = k;
    rc = coh_scenario_parse(routes_yaml, strlen(routes_yaml), "f.yaml", "/b", &s, &err);
    fail_countdown = -1;
    if (rc != COH_OK) {
      CHECK_EQ_INT(rc, COH_ENOMEM);
      CHECK(s == NULL);
    } else {
      saw_ok = 1;
      CHECK_EQ_INT((int)s->n_routes, 2);
    }
    coh_scenario_free(s);
  }
  coh_replace_allocator(malloc, realloc, calloc, free);
  CHECK(saw_ok);
}

/* Replays the fuzz corpus (seeds and crash regressions) through the fuzz
 * harness, which aborts on a violated property. */
/* outside, default_model, no_model_error: what `cohort exec` needs to be a
 * one-agent scenario. */
static void test_outside(void) {
  coh_err err;
  coh_scenario *s;
  const char *y = "models: [{name: m, path: p}, {name: n, path: q}]\n"
                  "default_model: n\nno_model_error: ask for one\n"
                  "outside: [user, '*']\nagents: [{id: a, module: a}]\n";
  coh_err_clear(&err);
  s = parse(y, &err);
  REQUIRE(s != NULL);
  CHECK(s->n_outside == 2);
  CHECK_STR(s->outside[0], "user");
  CHECK_STR(s->outside[1], "*");
  CHECK_STR(s->default_model, "n");
  CHECK_STR(s->no_model_error, "ask for one");
  coh_scenario_free(s);
  s = parse("agents: [{id: a, module: a}]\n", &err);
  REQUIRE(s != NULL);
  CHECK(s->n_outside == 0 && s->default_model == NULL && s->no_model_error == NULL);
  coh_scenario_free(s);
  EXPECT_ERR("outside: user\nagents: [{id: a, module: a}]\n", COH_EFORMAT, "1:10",
             "outside is a string|expected a sequence of ids");
  EXPECT_ERR("outside: [a]\nagents: [{id: a, module: a}]\n", COH_EFORMAT, "1:11",
             "outside[0] 'a' is an agent's id|no agent instance has");
  EXPECT_ERR("outside: [w-1]\nagents: [{id: w, module: a, count: 2}]\n", COH_EFORMAT,
             "1:11", "outside[0] 'w-1' is an agent's id");
  EXPECT_ERR("outside: [u, u]\nagents: [{id: a, module: a}]\n", COH_EFORMAT, "1:14",
             "outside[1] 'u' is listed twice");
  EXPECT_ERR("outside: ['a b']\nagents: [{id: a, module: a}]\n", COH_EFORMAT, "1:11",
             "outside[0] 'a b' is not a valid id");
  EXPECT_ERR("default_model: m\nagents: [{id: a, module: a}]\n", COH_EFORMAT, "1:16",
             "default_model names unknown model 'm'|(there are none)");
  EXPECT_ERR("models: [{name: m, path: p}]\ndefault_model: x\nagents: [{id: a, module: a}]\n",
             COH_EFORMAT, "2:16", "default_model names unknown model 'x'");
  EXPECT_ERR("no_model_error: ''\nagents: [{id: a, module: a}]\n", COH_EFORMAT, "1:17",
             "no_model_error is empty");
}

static void test_fuzz_corpus(void) {
  const char *dir = COH_TEST_DATA "/../fuzz/corpus/scenario";
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
    coh__fuzz_scenario_one((const uint8_t *)buf, len);
    coh__free(buf);
    n++;
  }
  closedir(d);
  fprintf(stderr, "  %d corpus files replayed\n", n);
  CHECK(n >= 5);
  /* and the full scenario of this file */
  coh__fuzz_scenario_one((const uint8_t *)full_yaml, strlen(full_yaml));
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_full);
  RUN(test_defaults);
  RUN(test_syntax_errors);
  RUN(test_unknown_keys);
  RUN(test_wrong_types);
  RUN(test_out_of_range);
  RUN(test_missing);
  RUN(test_duplicates);
  RUN(test_unknown_targets);
  RUN(test_prompt_models);
  RUN(test_dag);
  RUN(test_aliases);
  RUN(test_prompt_config);
  RUN(test_bounds);
  RUN(test_floats);
  RUN(test_load_examples);
  RUN(test_out_of_memory);
  RUN(test_routes);
  RUN(test_outside);
  RUN(test_fuzz_corpus);
  return TEST_MAIN_END();
}
