/*
 * exec_llm.c — answers agents' llm() requests in `cohort exec --model DIR`
 * with the inference engine: one request at a time, run to completion (exec
 * runs a single agent headless; the orchestrator batches many).
 */
#include <string.h>

#include "cli_int.h"
#include "cohort/agent.h"
#include "cohort/infer.h"
#include "util/util_int.h"

typedef struct exec_llm {
  coh_model *model;
  coh_engine *engine;
} exec_llm;

typedef struct collected {
  coh__buf text;
  coh_finish finish;
} collected;

static void on_token(void *user, const coh_token_event *ev) {
  collected *c = user;
  if (ev->text_len) coh__buf_add(&c->text, ev->text, ev->text_len);
  if (ev->finish != COH_FINISH_NONE) c->finish = ev->finish;
}

static int answer(void *ud, const char *request, size_t request_len,
                  uint64_t seed, char **out_text, size_t *out_len,
                  coh_err *err) {
  exec_llm *x = ud;
  coh_llm_request lr;
  collected c;
  uint64_t id;
  int rc;
  memset(&c, 0, sizeof c);
  rc = coh_llm_request_parse(request, request_len, x->model,
                             seed, &lr, err);
  if (rc == COH_OK) {
    lr.req.on_token = on_token;
    lr.req.user = &c;
    rc = coh_engine_submit(x->engine, &lr.req, &id, err);
  }
  while (rc == COH_OK && coh_engine_busy(x->engine))
    rc = coh_engine_step(x->engine, err);
  coh_llm_request_free(&lr);
  if (rc == COH_OK && c.text.oom) rc = coh__err(err, COH_ENOMEM, "out of memory");
  if (rc == COH_OK && c.finish == COH_FINISH_ERROR)
    rc = coh__err(err, COH_EORT, "generation failed");
  if (rc != COH_OK) {
    coh__buf_free(&c.text);
    return rc;
  }
  /* The agent runtime frees with coh_agent_buf_free (the cohort allocator). */
  *out_len = c.text.n;
  *out_text = c.text.p ? c.text.p : coh__strdup("");
  return *out_text ? COH_OK : coh__err(err, COH_ENOMEM, "out of memory");
}

int coh__exec_llm_open(const char *model_dir, coh_agent_llm_fn *fn, void **ud,
                       coh_err *err) {
  coh_model_options mo;
  exec_llm *x = coh__calloc(1, sizeof *x);
  int rc;
  *fn = NULL;
  *ud = NULL;
  if (x == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  coh_model_options_default(&mo);
  if ((rc = coh_model_open(model_dir, &mo, &x->model, err)) ||
      (rc = coh_engine_new(x->model, 1, &x->engine, err))) {
    coh__exec_llm_close(x);
    return rc;
  }
  if (coh_model_tokenizer(x->model) == NULL) {
    coh__exec_llm_close(x);
    return coh__err(err, COH_EINVAL, "--model %s: the folder has no tokenizer.json", model_dir);
  }
  *fn = answer;
  *ud = x;
  return COH_OK;
}

void coh__exec_llm_close(void *ud) {
  exec_llm *x = ud;
  if (x == NULL) return;
  coh_engine_free(x->engine);
  coh_model_close(x->model);
  coh__free(x);
}
