/* fuzz_scenario.c — libFuzzer harness for scenario files: the input is
 * parsed as a scenario YAML.
 *
 * Properties checked beyond "no crash, no sanitizer report":
 *  - a failure is COH_EFORMAT (or COH_ENOMEM) with a message that starts
 *    "fuzz.yaml:LINE:COLUMN: " — every error says where;
 *  - a success keeps the input bytes exactly, has at least one agent
 *    instance, ids that follow the id rule, config_json that jansson reads
 *    back as an object, message bodies whose body_len matches, messages
 *    and on_exit naming existing instances (checked independently of the
 *    loader's own index), and after lists that name known agents.
 *
 * Built as a fuzzer with -DCOH_FUZZ=ON (clang); test_scenario also
 * includes this file and replays tests/fuzz/corpus/scenario/ through
 * coh__fuzz_scenario_one, so regressions stay tested in ordinary builds. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/scenario.h"

#define FUZZ_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond,   \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)

static int fuzz_id_ok(const char *s) {
  size_t n = strlen(s), i;
  if (n < 1 || n > 64) return 0;
  for (i = 0; i < n; i++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 "0123456789_.-", s[i]))
      return 0;
  return 1;
}

/* Does name denote an instance (is_base: or, with base_ok, an agent)?
 * A plain linear scan, deliberately unlike the loader's sorted index. */
static int fuzz_names_instance(const coh_scenario *s, const char *name,
                               int base_ok) {
  size_t i;
  for (i = 0; i < s->n_agents; i++) {
    const coh_scn_agent *a = &s->agents[i];
    size_t n = strlen(a->id);
    if (strcmp(a->id, name) == 0 && (a->count == 1 || base_ok)) return 1;
    if (a->count > 1 && strncmp(a->id, name, n) == 0 && name[n] == '-') {
      const char *k = name + n + 1;
      char *end;
      long v = strtol(k, &end, 10);
      if (k[0] >= '0' && k[0] <= '9' && *end == '\0' &&
          (k[0] != '0' || k[1] == '\0') && v < a->count)
        return 1;
    }
  }
  return 0;
}

int coh__fuzz_scenario_one(const uint8_t *data, size_t size);
int coh__fuzz_scenario_one(const uint8_t *data, size_t size) {
  coh_scenario *s = NULL;
  coh_err err;
  size_t i, j;
  int rc;
  coh_err_clear(&err);
  rc = coh_scenario_parse((const char *)data, size, "fuzz.yaml", "/base", &s,
                          &err);
  if (rc != COH_OK) {
    unsigned long line = 0, col = 0;
    FUZZ_CHECK(s == NULL);
    FUZZ_CHECK(rc == COH_EFORMAT || rc == COH_ENOMEM);
    FUZZ_CHECK(err.code == rc);
    if (rc == COH_EFORMAT) {
      FUZZ_CHECK(sscanf(err.msg, "fuzz.yaml:%lu:%lu: ", &line, &col) == 2);
      FUZZ_CHECK(line >= 1 && col >= 1);
    }
    return 0;
  }
  FUZZ_CHECK(s->text_len == size && memcmp(s->text, data, size) == 0);
  FUZZ_CHECK(s->n_agents >= 1);
  FUZZ_CHECK(coh_scenario_instances(s) >= s->n_agents);
  FUZZ_CHECK(s->quantum >= 1 && s->max_ticks >= 1);
  for (i = 0; i < s->n_models; i++) {
    FUZZ_CHECK(fuzz_id_ok(s->models[i].name));
    FUZZ_CHECK(strncmp(s->models[i].path, "/", 1) == 0);
    FUZZ_CHECK(s->models[i].max_batch >= 1 && s->models[i].max_batch <= 1024);
  }
  for (i = 0; i < s->n_agents; i++) {
    const coh_scn_agent *a = &s->agents[i];
    json_error_t jerr;
    json_t *cfg;
    FUZZ_CHECK(fuzz_id_ok(a->id));
    FUZZ_CHECK(a->count >= 1 && a->inbox >= 1);
    FUZZ_CHECK(a->is_prompt ? a->module == NULL
                            : a->module != NULL && a->module[0] == '/');
    cfg = json_loads(a->config_json, JSON_ALLOW_NUL, &jerr);
    FUZZ_CHECK(cfg != NULL && json_is_object(cfg));
    json_decref(cfg);
    for (j = 0; j < a->n_after; j++)
      FUZZ_CHECK(fuzz_names_instance(s, a->after[j], 1));
    for (j = 0; j < i; j++) FUZZ_CHECK(strcmp(s->agents[j].id, a->id) != 0);
  }
  for (i = 0; i < s->n_messages; i++) {
    const coh_scn_message *m = &s->messages[i];
    FUZZ_CHECK(fuzz_names_instance(s, m->to, 0));
    FUZZ_CHECK(fuzz_id_ok(m->from));
    FUZZ_CHECK(m->body != NULL && m->body[m->body_len] == '\0');
    FUZZ_CHECK(m->tick >= 0);
  }
  if (s->stop_on_exit) FUZZ_CHECK(fuzz_names_instance(s, s->stop_on_exit, 0));
  coh_scenario_free(s);
  return 0;
}

#ifdef COH_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return coh__fuzz_scenario_one(data, size);
}
#endif
