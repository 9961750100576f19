/*
 * llm.c — the orchestrator's side of inference: one engine (and one engine
 * thread) per scenario model, fair admission of agents' requests at tick
 * boundaries, and, for `replay --no-model`, results taken from the journal.
 *
 * Fairness: each model keeps a FIFO of waiting requests per agent.  At the
 * start of a tick, while the engine has free batch slots, admission takes
 * the head request of the next agent in round-robin order (continuing after
 * the agent served last), so one agent's burst of requests cannot keep the
 * others out of the batch for more than one round.
 */
#include <jansson.h>
#include <string.h>

#include "orch_int.h"

/* ---- results ------------------------------------------------------------- */

/* Out of memory here (the text, the completion list) fails the engine step
 * (cb_oom), so the tick fails: an {"error": "out of memory"} result would
 * make the run depend on the machine's memory.  A request that cannot be
 * moved to `done` stays in `live`, which models_close frees. */
static void on_token(void *user, const coh_token_event *ev) {
  llm_req *r = user;
  model_slot *ms = (model_slot *)r->next; /* set while in the engine */
  size_t i;
  if (ev->text_len) coh__buf_add(&r->text, ev->text, ev->text_len);
  if (r->text.oom) ms->cb_oom = 1;
  if (ev->token >= 0) r->tokens++;
  if (ev->finish == COH_FINISH_NONE) return;
  if (ms->n_done == ms->cap_done) {
    llm_req **n = coh__grow(ms->done, &ms->cap_done, ms->n_done + 1, sizeof *n, 16);
    if (n == NULL) {
      ms->cb_oom = 1;
      return;
    }
    ms->done = n;
  }
  r->finish = ev->finish;
  r->done_tick = ms->o->tick;
  r->t_done = coh__wall_seconds();
  r->next = NULL;
  ms->in_engine--;
  for (i = 0; i < ms->n_live; i++)
    if (ms->live[i] == r) {
      ms->live[i] = ms->live[--ms->n_live];
      break;
    }
  ms->done[ms->n_done++] = r;
}

/* Finishes r at once with an error (unknown model, bad request JSON, ...);
 * it is committed with this tick's completions.  COH_ENOMEM (r freed) if
 * there is no room for it. */
static int fail_now(orch *o, model_slot *ms, llm_req *r, const char *msg, coh_err *err) {
  snprintf(r->error, sizeof r->error, "%s", msg);
  r->finish = COH_FINISH_ERROR;
  r->done_tick = o->tick;
  r->t_done = coh__wall_seconds();
  r->next = NULL;
  if (ms->n_done == ms->cap_done) {
    llm_req **n = coh__grow(ms->done, &ms->cap_done, ms->n_done + 1, sizeof *n, 16);
    if (n == NULL) {
      coh__orch_llm_free(r);
      return coh__err(err, COH_ENOMEM, "out of memory");
    }
    ms->done = n;
  }
  ms->done[ms->n_done++] = r;
  return COH_OK;
}

/* ---- models -------------------------------------------------------------- */

static int pick_model(orch *o, const char *json, size_t len);
static int check_prompt_agents(orch *o, coh_err *err);

int coh__orch_models_open(orch *o, coh_err *err) {
  const coh_scenario *s = o->s;
  int i, rc;
  /* Slot 0 is always there: it collects requests that name no known model
   * (they fail) when the scenario has none. */
  o->n_models = (int)s->n_models;
  o->models = coh__calloc((size_t)o->n_models + 1, sizeof *o->models);
  if (o->models == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  for (i = 0; i <= o->n_models; i++) {
    model_slot *ms = &o->models[i];
    ms->o = o;
    ms->wait_head = coh__calloc((size_t)o->cap_agents + 1, sizeof *ms->wait_head);
    ms->wait_tail = coh__calloc((size_t)o->cap_agents + 1, sizeof *ms->wait_tail);
    if (ms->wait_head == NULL || ms->wait_tail == NULL)
      return coh__err(err, COH_ENOMEM, "out of memory");
    if (i == o->n_models) break;
    ms->spec = &s->models[i];
    ms->max_batch = ms->spec->max_batch;
    if (o->opt->no_model) continue; /* results come from the journal */
    {
      coh_model_options mo;
      coh_model_options_default(&mo);
      mo.device = o->opt->device_override ? o->opt->device : ms->spec->device;
      mo.intra_op_threads = ms->spec->threads;
      mo.prefill_chunk = ms->spec->prefill_chunk;
      if ((rc = coh_model_open(ms->spec->path, &mo, &ms->model, err))) {
        coh__err_prefix(err, "%s:%d: model '%s'", s->path, ms->spec->line, ms->spec->name);
        return rc;
      }
      if ((rc = coh_engine_new(ms->model, ms->max_batch, &ms->engine, err))) return rc;
      if (o->opt->prefix_cache_kib != 0 &&
          (rc = coh_engine_set_prefix_cache(
               ms->engine,
               o->opt->prefix_cache_kib > 0 ? (size_t)o->opt->prefix_cache_kib << 10 : 0, err)))
        return rc;
    }
    if (coh__ring_init(&ms->to_engine, 2) || coh__ring_init(&ms->from_engine, 2))
      return coh__err(err, COH_ENOMEM, "out of memory");
    if (pthread_create(&ms->thread, NULL, coh__orch_engine_thread, ms) != 0)
      return coh__err(err, COH_ENOMEM, "cannot start the engine thread for model '%s'",
                      ms->spec->name);
    ms->has_thread = 1;
  }
  return o->opt->no_model ? COH_OK : check_prompt_agents(o, err);
}

/* A run never starts with a chat-mode prompt agent (agents/prompt.c) that
 * cannot render its first prompt: for each, the request the agent sends on
 * its first message (system prompt, configured messages, one user turn) is
 * parsed for its model as the engine would: a template that raises, a
 * history_tokens budget smaller than that prompt, a bad tool list fail the
 * run here, naming the agent.  The same for a prompt agent with a "schema"
 * or tools: the constraint compiles with the model, or the run fails. */
static int check_prompt_agents(orch *o, coh_err *err) {
  static const char *const chat_keys[] = {"system", "messages", "history_tokens", "tools",
                                          "template_vars", "tool_choice",
                                          "parallel_tool_calls"};
  const coh_scenario *s = o->s;
  size_t i, k;
  int rc = COH_OK;
  for (i = 0; i < s->n_agents && rc == COH_OK; i++) {
    const coh_scn_agent *a = &s->agents[i];
    json_t *cfg, *req = NULL, *msgs, *v, *schema;
    char *text = NULL;
    int chat = 0, slot;
    coh_llm_request lr;
    if (!a->is_prompt || a->config_json == NULL) continue;
    if ((cfg = json_loads(a->config_json, 0, NULL)) == NULL) continue;
    for (k = 0; k < 5; k++)
      if (json_object_get(cfg, chat_keys[k])) chat = 1;
    schema = json_object_get(cfg, "schema");
    if (!chat && schema == NULL) {
      json_decref(cfg);
      continue;
    }
    if ((req = json_object()) == NULL) goto oom;
    if (schema != NULL &&
        json_object_set_new(req, "response_format",
                            json_pack("{s:s,s:{s:s,s:O}}", "type", "json_schema", "json_schema",
                                      "name", "schema", "schema", schema)))
      goto oom;
    if (chat) {
      if ((msgs = json_array()) == NULL || json_object_set_new(req, "messages", msgs)) goto oom;
      if ((v = json_object_get(cfg, "system")) != NULL &&
          json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", v)))
        goto oom;
      if ((v = json_object_get(cfg, "messages")) != NULL && json_array_extend(msgs, v)) goto oom;
      if (json_array_append_new(msgs, json_pack("{s:s,s:s,s:s}", "role", "user", "name",
                                                "scenario", "content", "?")))
        goto oom;
      for (k = 2; k < sizeof chat_keys / sizeof *chat_keys; k++)
        if ((v = json_object_get(cfg, chat_keys[k])) != NULL &&
            json_object_set(req, chat_keys[k], v))
          goto oom;
    } else if (json_object_set_new(req, "prompt", json_string("?"))) {
      goto oom;
    }
    if ((v = json_object_get(cfg, "model")) != NULL && json_object_set(req, "model", v)) goto oom;
    if ((text = json_dumps(req, JSON_COMPACT)) == NULL) goto oom;
    slot = pick_model(o, text, strlen(text));
    if (slot < o->n_models && o->models[slot].model != NULL) {
      rc = coh_llm_request_parse(text, strlen(text), o->models[slot].model, 0, &lr, err);
      coh_llm_request_free(&lr);
      if (rc)
        coh__err_prefix(err, "%s:%d: agent '%s' cannot render its first prompt with model '%s'",
                        s->path, a->line, a->id, s->models[slot].name);
    }
    goto next;
  oom:
    rc = coh__err(err, COH_ENOMEM, "out of memory");
  next:
    free(text); /* jansson's allocator */
    if (req) json_decref(req);
    json_decref(cfg);
  }
  return rc;
}

void coh__orch_llm_free(llm_req *r) {
  if (r == NULL) return;
  coh__free(r->json);
  coh__buf_free(&r->text);
  coh_grammar_free(r->grammar);
  coh__free(r->tool_names);
  coh__free(r->want_text);
  coh__free(r); /* r->body is borrowed from o->recorded */
}

void coh__orch_models_close(orch *o) {
  int i;
  size_t k;
  if (o->models == NULL) return;
  for (i = 0; i <= o->n_models; i++) {
    model_slot *ms = &o->models[i];
    int a;
    if (ms->has_thread) {
      coh__ring_push(&ms->to_engine, (void *)1); /* 1: quit */
      pthread_join(ms->thread, NULL);
    }
    if (ms->to_engine.slots) coh__ring_destroy(&ms->to_engine);
    if (ms->from_engine.slots) coh__ring_destroy(&ms->from_engine);
    if (ms->engine != NULL && o->sum != NULL) {
      /* the engine thread has ended: its statistics are final */
      coh_engine_stats st;
      coh_engine_get_stats(ms->engine, &st);
      o->sum->prefix_lookups += (int64_t)st.prefix_lookups;
      o->sum->prefix_hits += (int64_t)st.prefix_hits;
      o->sum->prefix_evictions += (int64_t)st.prefix_evictions;
    }
    coh_engine_free(ms->engine); /* callbacks for live requests are not run */
    coh_model_close(ms->model);
    for (a = 0; ms->wait_head && a <= o->n_agents; a++) {
      llm_req *r = ms->wait_head[a];
      while (r) {
        llm_req *n = r->next;
        coh__orch_llm_free(r);
        r = n;
      }
    }
    for (k = 0; k < ms->n_done; k++) coh__orch_llm_free(ms->done[k]);
    for (k = 0; k < ms->n_live; k++) coh__orch_llm_free(ms->live[k]);
    coh__free(ms->live);
    for (k = 0; k < ms->n_replay; k++) coh__orch_llm_free(ms->replay[k]);
    for (k = 0; k < ms->n_resub; k++) coh__orch_llm_free(ms->resub[k]);
    coh__free(ms->resub);
    coh__free(ms->done);
    coh__free(ms->replay);
    coh__free(ms->wait_head);
    coh__free(ms->wait_tail);
  }
  coh__free(o->models);
  o->models = NULL;
}

/* ---- requests -------------------------------------------------------------- */

/* The model a request names ("model" field), or the first model. */
static int pick_model(orch *o, const char *json, size_t len) {
  json_error_t je;
  json_t *root = json_loadb(json, len, 0, &je), *m;
  int i, found = o->n_models > 0 ? 0 : o->n_models;
  if (root == NULL) return found;
  m = json_object_get(root, "model");
  if (json_is_string(m) && json_string_length(m) > 0) {
    found = o->n_models; /* unknown unless matched, or the default model's */
    for (i = 0; i < o->n_models; i++)
      if (!strcmp(o->s->models[i].name, json_string_value(m))) found = i;
    for (i = 0; found == o->n_models && o->s->default_model && i < o->n_models; i++)
      if (!strcmp(o->s->models[i].name, o->s->default_model)) found = i;
  }
  json_decref(root);
  return found;
}

/* A request as committed (its seed derived from the run seed, the agent
 * and the request number); NULL when out of memory. */
static llm_req *new_req(orch *o, int agent, int64_t number, const char *json, size_t len) {
  llm_req *r = coh__calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->json = coh__malloc(len + 1);
  if (r->json == NULL) {
    coh__free(r);
    return NULL;
  }
  memcpy(r->json, json, len);
  r->json[len] = '\0';
  r->len = len;
  r->agent = agent;
  r->number = number;
  r->seed = coh__seed_derive(o->s->seed, (uint64_t)agent, (uint64_t)number);
  r->t_commit = coh__wall_seconds();
  return r;
}

static void wait_push(model_slot *ms, llm_req *r) {
  if (ms->wait_tail[r->agent]) ms->wait_tail[r->agent]->next = r;
  else ms->wait_head[r->agent] = r;
  ms->wait_tail[r->agent] = r;
  ms->waiting++;
}

int coh__orch_llm_enqueue(orch *o, int agent, int64_t number, const char *json,
                          size_t len, coh_err *err) {
  llm_req *r = new_req(o, agent, number, json, len);
  if (r == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  wait_push(&o->models[pick_model(o, json, len)], r);
  return COH_OK;
}

/* --trace-prompts: one JSON line with the text the engine tokenized. */
static void trace_prompt(orch *o, model_slot *ms, llm_req *r, const coh_llm_request *lr) {
  json_t *line = json_pack("{s:s,s:I,s:s,s:b,s:I,s:I,s:s%}", "agent", o->agents[r->agent].id,
                           "request", (json_int_t)r->number, "model", ms->spec->name, "chat",
                           lr->chat, "dropped", (json_int_t)lr->n_dropped, "tokens",
                           (json_int_t)lr->req.n_prompt, "text", lr->text, lr->text_len);
  if (line == NULL) return;
  json_dumpf(line, o->opt->trace_prompts, JSON_COMPACT);
  fputc('\n', o->opt->trace_prompts);
  fflush(o->opt->trace_prompts);
  json_decref(line);
}

/* Starts r on ms's engine, or fails it at once (a request the agent got
 * wrong).  Out of memory, ours, is COH_ENOMEM (r freed), never a result.
 * trace: --trace-prompts may print it (not when a resume re-submits it). */
static int admit_one(orch *o, model_slot *ms, llm_req *r, int trace, coh_err *err) {
  coh_llm_request lr;
  coh_err e;
  uint64_t id;
  int rc;
  r->t_admit = coh__wall_seconds();
  r->admit_tick = o->tick;
  r->admit_seq = ms->admit_next++;
  if (ms->spec == NULL)
    return fail_now(o, ms, r, o->s->no_model_error ? o->s->no_model_error
                                                   : "the request names no model of this scenario",
                    err);
  if (o->opt->no_model) {
    /* replay --no-model: the result comes from the reference journal, at
     * the tick it was recorded; a request the journal never answered stays
     * pending (and the comparison reports the divergence). */
    size_t k;
    for (k = 0; k < o->n_recorded; k++) {
      recorded_llm *rec = &o->recorded[k];
      if (rec->agent == r->agent && rec->number == r->number) {
        r->body = rec->body;
        r->body_len = rec->len;
        r->done_tick = rec->tick;
        r->rec_seq = rec->seq;
        break;
      }
    }
    if (ms->n_replay == ms->cap_replay) {
      llm_req **n = coh__grow(ms->replay, &ms->cap_replay, ms->n_replay + 1, sizeof *n, 16);
      if (n == NULL) {
        coh__orch_llm_free(r);
        return coh__err(err, COH_ENOMEM, "out of memory");
      }
      ms->replay = n;
    }
    ms->replay[ms->n_replay++] = r;
    ms->in_engine++;
    return COH_OK;
  }
  /* room in `live` first: once submitted, r must be findable at close */
  if (ms->n_live == ms->cap_live) {
    llm_req **n = coh__grow(ms->live, &ms->cap_live, ms->n_live + 1, sizeof *n, 16);
    if (n == NULL) {
      coh__orch_llm_free(r);
      return coh__err(err, COH_ENOMEM, "out of memory");
    }
    ms->live = n;
  }
  rc = coh_llm_request_parse(r->json, r->len, ms->model, r->seed, &lr, &e);
  if (rc == COH_OK) {
    if (trace && o->opt->trace_prompts) trace_prompt(o, ms, r, &lr);
    lr.req.on_token = on_token;
    lr.req.user = r;
    /* r owns them from here: the engine borrows the grammar until the
     * request's final event, and the result needs the tool names */
    r->grammar = lr.grammar;
    r->tool_choice = lr.tool_choice;
    r->tool_names = lr.tool_names;
    r->n_tools = lr.n_tools;
    lr.grammar = NULL;
    lr.tool_names = NULL;
    r->next = (llm_req *)ms; /* the callback finds its model through this */
    rc = coh_engine_submit(ms->engine, &lr.req, &id, &e);
  }
  coh_llm_request_free(&lr);
  if (rc == COH_ENOMEM) {
    coh__orch_llm_free(r);
    return coh__err(err, COH_ENOMEM, "model '%s': admitting a request: %s", ms->spec->name, e.msg);
  }
  if (rc != COH_OK) {
    r->next = NULL;
    return fail_now(o, ms, r, e.msg, err);
  }
  ms->in_engine++;
  ms->live[ms->n_live++] = r;
  return COH_OK;
}

int coh__orch_llm_admit(orch *o, coh_err *err) {
  int i, rc;
  for (i = 0; i <= o->n_models; i++) {
    model_slot *ms = &o->models[i];
    int scanned = 0;
    while (ms->waiting > 0 && (ms->spec == NULL || o->opt->no_model ||
                               ms->in_engine < ms->max_batch)) {
      int a = ms->rr_next % o->n_agents;
      llm_req *r = ms->wait_head[a];
      ms->rr_next = a + 1;
      if (r == NULL) {
        if (++scanned > o->n_agents) break;
        continue;
      }
      scanned = 0;
      ms->wait_head[a] = r->next;
      if (ms->wait_head[a] == NULL) ms->wait_tail[a] = NULL;
      r->next = NULL;
      ms->waiting--;
      if ((rc = admit_one(o, ms, r, 1, err))) return rc;
    }
  }
  return COH_OK;
}

int coh__orch_llm_busy(const orch *o) {
  int i;
  for (i = 0; i <= o->n_models; i++)
    if (o->models[i].waiting > 0 || o->models[i].in_engine > 0 || o->models[i].n_done > 0)
      return 1;
  return 0;
}

void coh__orch_llm_replay_step(orch *o) {
  int i;
  for (i = 0; i < o->n_models; i++) {
    model_slot *ms = &o->models[i];
    size_t k, keep = 0;
    for (k = 0; k < ms->n_replay; k++) {
      llm_req *r = ms->replay[k];
      if (r->body != NULL && r->done_tick == o->tick) {
        size_t j;
        if (ms->n_done == ms->cap_done) {
          llm_req **n = coh__grow(ms->done, &ms->cap_done, ms->n_done + 1, sizeof *n, 16);
          if (n == NULL) { /* a late result would be a false divergence: fail the tick */
            ms->replay[keep++] = r;
            ms->step_rc = coh__err(&ms->step_err, COH_ENOMEM, "out of memory");
            continue;
          }
          ms->done = n;
        }
        /* keep `done` in journal order */
        for (j = ms->n_done; j > 0 && ms->done[j - 1]->rec_seq > r->rec_seq; j--)
          ms->done[j] = ms->done[j - 1];
        ms->done[j] = r;
        ms->n_done++;
        ms->in_engine--;
      } else {
        ms->replay[keep++] = r;
      }
    }
    ms->n_replay = keep;
  }
}

/* ---- resume: outstanding requests ------------------------------------------- */

int coh__orch_llm_restore(orch *o, int model, int agent, int64_t number, const char *json,
                          size_t len, int in_engine, int64_t admit_tick, int32_t tokens,
                          const char *text, size_t text_len, coh_err *err) {
  model_slot *ms = &o->models[model];
  llm_req *r;
  if (pick_model(o, json, len) != model)
    return coh__err(err, COH_EFORMAT, "request %lld of agent '%s' is in model slot %d, its JSON "
                    "names another", (long long)number, o->agents[agent].id, model);
  if (in_engine &&
      (ms->spec == NULL || (size_t)ms->in_engine + ms->n_resub >= (size_t)ms->max_batch))
    return coh__err(err, COH_EFORMAT, "request %lld of agent '%s': more requests in model slot "
                    "%d's engine than it can hold", (long long)number, o->agents[agent].id, model);
  if ((r = new_req(o, agent, number, json, len)) == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  o->pending_llm[agent]++;
  if (!in_engine) {
    wait_push(ms, r);
    return COH_OK;
  }
  r->restored = 1;
  r->admit_tick = admit_tick;
  r->want_tokens = tokens;
  if ((r->want_text = coh__malloc(text_len + 1)) == NULL) goto oom;
  if (text_len) memcpy(r->want_text, text, text_len);
  r->want_len = text_len;
  if (ms->n_resub == ms->cap_resub) {
    llm_req **n = coh__grow(ms->resub, &ms->cap_resub, ms->n_resub + 1, sizeof *n, 4);
    if (n == NULL) goto oom;
    ms->resub = n;
  }
  ms->resub[ms->n_resub++] = r;
  return COH_OK;
oom:
  coh__orch_llm_free(r);
  return coh__err(err, COH_ENOMEM, "out of memory");
}

/* One engine step of every model that has work, on the engine threads (as
 * a tick's dispatch does); the first failure, if any. */
static int catch_up_step(orch *o, coh_err *err) {
  int i, rc = COH_OK;
  for (i = 0; i < o->n_models; i++)
    if (o->models[i].has_thread && coh_engine_busy(o->models[i].engine)) {
      coh__ring_push(&o->models[i].to_engine, &o->models[i]);
      o->models[i].stepping = 1;
    }
  for (i = 0; i < o->n_models; i++) {
    model_slot *ms = &o->models[i];
    if (!ms->stepping) continue;
    (void)coh__ring_pop(&ms->from_engine);
    ms->stepping = 0;
    if (ms->step_rc && rc == COH_OK)
      rc = coh__err(err, ms->step_rc, "model '%s': %s", ms->spec->name, ms->step_err.msg);
  }
  return rc;
}

int coh__orch_llm_catch_up(orch *o, coh_err *err) {
  const int64_t tick = o->tick;
  int64_t t, first = INT64_MAX;
  size_t *next;
  int i, rc = COH_OK;
  for (i = 0; i < o->n_models; i++)
    if (o->models[i].n_resub > 0 && o->models[i].resub[0]->admit_tick < first)
      first = o->models[i].resub[0]->admit_tick;
  if (first == INT64_MAX) return COH_OK;
  if ((next = coh__calloc((size_t)o->n_models, sizeof *next)) == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  /* the ticks first..tick again, for the engines only: at each, the
   * requests admitted then are submitted (in their order), then one step */
  for (t = first; t <= tick && rc == COH_OK; t++) {
    o->tick = t; /* admit_one records it; nothing may finish (checked) */
    for (i = 0; i < o->n_models && rc == COH_OK; i++) {
      model_slot *ms = &o->models[i];
      while (rc == COH_OK && next[i] < ms->n_resub && ms->resub[next[i]]->admit_tick == t) {
        llm_req *r = ms->resub[next[i]];
        ms->resub[next[i]++] = NULL; /* admit_one owns it now */
        rc = admit_one(o, ms, r, 0, err);
      }
    }
    if (rc == COH_OK && !o->opt->no_model) rc = catch_up_step(o, err);
    for (i = 0; i <= o->n_models && rc == COH_OK; i++)
      if (o->models[i].n_done > 0) {
        llm_req *r = o->models[i].done[0];
        rc = coh__err(err, COH_EFORMAT, "request %lld of agent '%s' (in an engine at tick %lld) "
                      "finished at tick %lld when its steps were re-run%s%s",
                      (long long)r->number, o->agents[r->agent].id, (long long)tick, (long long)t,
                      r->error[0] ? ": " : "", r->error);
      }
  }
  o->tick = tick;
  for (i = 0; i < o->n_models && rc == COH_OK; i++) {
    model_slot *ms = &o->models[i];
    size_t k;
    if (next[i] != ms->n_resub)
      rc = coh__err(err, COH_EFORMAT, "model '%s': a request admitted after tick %lld",
                    ms->spec->name, (long long)tick);
    for (k = 0; k < ms->n_live && rc == COH_OK; k++) {
      llm_req *r = ms->live[k];
      if (!r->restored) continue;
      if (r->tokens != r->want_tokens || r->text.n != r->want_len ||
          (r->want_len && memcmp(r->text.p, r->want_text, r->want_len) != 0))
        rc = coh__err(err, COH_EFORMAT, "request %lld of agent '%s' re-run from its admission "
                      "at tick %lld gave %d tokens (%zu bytes of text), the checkpoint holds "
                      "%d (%zu bytes)%s: this engine does not reproduce the run (resume --full "
                      "re-executes it from tick 0)",
                      (long long)r->number, o->agents[r->agent].id, (long long)r->admit_tick,
                      (int)r->tokens, r->text.n, (int)r->want_tokens, r->want_len,
                      r->tokens == r->want_tokens && r->text.n == r->want_len
                          ? ", a different text"
                          : "");
      r->restored = 0;
      coh__free(r->want_text);
      r->want_text = NULL;
    }
  }
  for (i = 0; i < o->n_models; i++) {
    model_slot *ms = &o->models[i];
    size_t k;
    for (k = 0; k < ms->n_resub; k++) coh__orch_llm_free(ms->resub[k]); /* NULL once taken */
    ms->n_resub = 0;
  }
  coh__free(next);
  return rc;
}

/* ---- engine thread ---------------------------------------------------------- */

void *coh__orch_engine_thread(void *arg) {
  model_slot *ms = arg;
  for (;;) {
    void *cmd = coh__ring_pop(&ms->to_engine);
    if (cmd == (void *)1) break;
    coh_err_clear(&ms->step_err);
    ms->step_t0 = coh__wall_seconds();
    ms->cb_oom = 0;
    ms->step_rc = coh_engine_busy(ms->engine) ? coh_engine_step(ms->engine, &ms->step_err)
                                               : COH_OK;
    if (ms->step_rc == COH_OK && ms->cb_oom)
      ms->step_rc = coh__err(&ms->step_err, COH_ENOMEM, "out of memory collecting generated text");
    ms->step_t1 = coh__wall_seconds();
    coh__ring_push(&ms->from_engine, ms);
  }
  return NULL;
}
