/*
 * llm_request.c — parses an agent's llm() request JSON into an engine
 * request.  Agents are untrusted: every field is type- and range-checked and
 * errors name the field.  The prompt is either "prompt" (text) or
 * "messages" (a chat rendered with the model's template: build_chat_text).
 */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "util/util_int.h"
#include "cohort/infer.h"

void coh_llm_request_free(coh_llm_request *r) {
  size_t i;
  if (r == NULL) return;
  coh__free(r->model);
  coh_free(r->ids);
  for (i = 0; i < r->n_stops; i++) coh__free(r->stops[i]);
  coh__free(r->stops);
  coh_free(r->text); /* from coh__malloc or the chat module: both coh_free */
  memset(r, 0, sizeof *r);
}

static int num_field(json_t *v, const char *name, double lo, double hi,
                     double *out, coh_err *err) {
  double d = 0;
  if (!json_is_number(v))
    return coh__err(err, COH_EFORMAT, "llm request: field '%s' must be a number", name);
  d = json_number_value(v);
  if (!isfinite(d) || d < lo || d > hi)
    return coh__err(err, COH_EFORMAT, "llm request: field '%s' = %g is outside [%g, %g]",
                    name, d, lo, hi);
  *out = d;
  return COH_OK;
}

/* Checks one chat message: an object with a non-empty string "role", a
 * string "content" (null allowed when the message carries "tool_calls"),
 * and optionally "name", "tool_calls", "tool_call_id". */
static int check_message(json_t *m, size_t i, coh_err *err) {
  const char *key;
  json_t *v;
  if (!json_is_object(m))
    return coh__err(err, COH_EFORMAT, "llm request: field 'messages[%zu]' must be an object", i);
  json_object_foreach(m, key, v) {
    if (!strcmp(key, "role")) {
      if (!json_is_string(v) || json_string_length(v) == 0)
        return coh__err(err, COH_EFORMAT,
                        "llm request: field 'messages[%zu].role' must be a non-empty string", i);
    } else if (!strcmp(key, "content")) {
      if (!json_is_string(v) &&
          !(json_is_null(v) && json_object_get(m, "tool_calls") != NULL))
        return coh__err(err, COH_EFORMAT,
                        "llm request: field 'messages[%zu].content' must be a string", i);
    } else if (!strcmp(key, "name") || !strcmp(key, "tool_call_id")) {
      if (!json_is_string(v))
        return coh__err(err, COH_EFORMAT,
                        "llm request: field 'messages[%zu].%s' must be a string", i, key);
    } else if (!strcmp(key, "tool_calls")) {
      if (!json_is_array(v))
        return coh__err(err, COH_EFORMAT,
                        "llm request: field 'messages[%zu].tool_calls' must be an array", i);
    } else {
      return coh__err(err, COH_EFORMAT,
                      "llm request: unknown field 'messages[%zu].%s'", i, key);
    }
  }
  if (json_object_get(m, "role") == NULL)
    return coh__err(err, COH_EFORMAT, "llm request: field 'messages[%zu].role' is missing", i);
  if (json_object_get(m, "content") == NULL)
    return coh__err(err, COH_EFORMAT, "llm request: field 'messages[%zu].content' is missing", i);
  return COH_OK;
}

/* Checks the chat fields of a request: "messages", "tools",
 * "template_vars", "history_tokens". */
static int check_chat_fields(json_t *root, coh_err *err) {
  json_t *msgs = json_object_get(root, "messages");
  json_t *tools = json_object_get(root, "tools");
  json_t *tv = json_object_get(root, "template_vars");
  json_t *ht = json_object_get(root, "history_tokens");
  size_t i;
  int rc;
  if (!json_is_array(msgs) || json_array_size(msgs) == 0 ||
      json_array_size(msgs) > COH_LLM_MAX_MESSAGES)
    return coh__err(err, COH_EFORMAT,
                    "llm request: field 'messages' must be an array of 1 to %d messages",
                    COH_LLM_MAX_MESSAGES);
  for (i = 0; i < json_array_size(msgs); i++)
    if ((rc = check_message(json_array_get(msgs, i), i, err))) return rc;
  if (tools != NULL) {
    if (!json_is_array(tools))
      return coh__err(err, COH_EFORMAT, "llm request: field 'tools' must be an array of objects");
    for (i = 0; i < json_array_size(tools); i++)
      if (!json_is_object(json_array_get(tools, i)))
        return coh__err(err, COH_EFORMAT, "llm request: field 'tools[%zu]' must be an object", i);
  }
  if (tv != NULL) {
    if (!json_is_object(tv))
      return coh__err(err, COH_EFORMAT, "llm request: field 'template_vars' must be an object");
    if (json_object_get(tv, "messages") || json_object_get(tv, "tools") ||
        json_object_get(tv, "add_generation_prompt"))
      return coh__err(err, COH_EFORMAT,
                      "llm request: field 'template_vars' may not set messages, tools or "
                      "add_generation_prompt (they are fields of the request)");
  }
  if (ht != NULL && (!json_is_integer(ht) || json_integer_value(ht) < 1 ||
                     json_integer_value(ht) > 1 << 24))
    return coh__err(err, COH_EFORMAT,
                    "llm request: field 'history_tokens' must be an integer in [1, 16777216]");
  return COH_OK;
}

/* Renders messages (a JSON array) with the request's "tools",
 * "template_vars" and "add_generation_prompt" and tokenizes the text:
 * *text and *ids (caller frees both with coh_free).  With chat NULL the plain
 * format, tokenized with the tokenizer's special tokens; with a template,
 * without them (the template prints bos_token itself, as Hugging Face's
 * apply_chat_template(tokenize=True) encodes with add_special_tokens=False). */
static int render_chat(json_t *root, json_t *msgs, const coh_chat_template *chat,
                       const coh_tokenizer *tok, char **text, size_t *text_len,
                       int32_t **ids, size_t *n_ids, coh_err *err) {
  json_t *tools = json_object_get(root, "tools");
  json_t *tv = json_object_get(root, "template_vars");
  json_t *agp = json_object_get(root, "add_generation_prompt");
  json_t *vars = NULL;
  char *dump = NULL;
  int rc, gen = agp == NULL || json_is_true(agp);

  *text = NULL;
  *ids = NULL;
  if (chat == NULL) {
    if ((dump = json_dumps(msgs, JSON_COMPACT)) == NULL) goto oom;
    rc = coh_chat_render_plain(dump, strlen(dump), gen, text, text_len, err);
  } else {
    vars = tv != NULL ? json_deep_copy(tv) : json_object();
    if (vars == NULL ||
        json_object_set(vars, "messages", msgs) ||
        (tools != NULL && json_object_set(vars, "tools", tools)) ||
        json_object_set_new(vars, "add_generation_prompt", json_boolean(gen)))
      goto oom;
    if ((dump = json_dumps(vars, JSON_COMPACT)) == NULL) goto oom;
    rc = coh_chat_render(chat, dump, strlen(dump), text, text_len, err);
  }
  if (rc == COH_OK)
    rc = coh_tokenizer_encode(tok, *text, *text_len, chat == NULL, ids, n_ids, err);
  goto done;
oom:
  rc = coh__err(err, COH_ENOMEM, "out of memory");
done:
  if (vars) json_decref(vars);
  free(dump); /* from jansson's allocator */
  if (rc != COH_OK) {
    coh_free(*text);
    coh_free(*ids);
    *text = NULL;
    *ids = NULL;
  }
  return rc;
}

/* Whether a message's role is r. */
static int role_is(json_t *msgs, size_t i, const char *r) {
  return !strcmp(json_string_value(json_object_get(json_array_get(msgs, i), "role")), r);
}

/* Renders the request's chat into out->text/ids.  With "history_tokens":
 * when the prompt is longer, drops the oldest turns (never the leading
 * system messages, never the last message; a kept history starts at a user
 * message, since many templates refuse a history that starts with an
 * assistant turn), keeping as many as fit: the fewest drops whose prompt
 * fits, found by bisection over the candidate cut points (each try renders
 * and tokenizes once: O(log messages) tries). */
static int build_chat(json_t *root, const coh_chat_template *chat,
                      const coh_tokenizer *tok, coh_llm_request *out,
                      coh_err *err) {
  json_t *msgs = json_object_get(root, "messages");
  json_t *ht = json_object_get(root, "history_tokens");
  json_t *sub = NULL;
  size_t n = json_array_size(msgs), sys = 0, i, *cuts = NULL, n_cuts = 0, lo, hi;
  size_t budget = ht ? (size_t)json_integer_value(ht) : 0, best_n_ids = 0;
  char *t = NULL, *best_text = NULL;
  size_t t_len = 0, best_len = 0;
  int32_t *ids = NULL, *best_ids = NULL;
  size_t n_ids = 0;
  int rc;

  if ((rc = render_chat(root, msgs, chat, tok, &out->text, &out->text_len, &out->ids,
                        &out->n_ids, err)))
    return rc;
  if (ht == NULL || out->n_ids <= budget) return COH_OK;
  while (sys < n && role_is(msgs, sys, "system")) sys++;
  /* candidate cuts: keep messages[sys..k-1] dropped, messages[k..] kept */
  if ((cuts = coh__calloc(n + 1, sizeof *cuts)) == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  for (i = sys + 1; i < n; i++)
    if (role_is(msgs, i, "user") || i == n - 1) cuts[n_cuts++] = i;
  lo = 0;
  hi = n_cuts; /* answer index in [lo, hi); hi == n_cuts: nothing fits */
  while (lo < hi && rc == COH_OK) {
    size_t mid = lo + (hi - lo) / 2, k = cuts[mid];
    if ((sub = json_array()) == NULL) goto oom;
    for (i = 0; i < sys; i++)
      if (json_array_append(sub, json_array_get(msgs, i))) goto oom;
    for (i = k; i < n; i++)
      if (json_array_append(sub, json_array_get(msgs, i))) goto oom;
    rc = render_chat(root, sub, chat, tok, &t, &t_len, &ids, &n_ids, err);
    json_decref(sub);
    sub = NULL;
    if (rc) break;
    if (n_ids <= budget) {
      coh_free(best_text);
      coh_free(best_ids);
      best_text = t;
      best_len = t_len;
      best_ids = ids;
      best_n_ids = n_ids;
      out->n_dropped = k - sys;
      hi = mid;
    } else {
      coh_free(t);
      coh_free(ids);
      lo = mid + 1;
    }
    t = NULL;
    ids = NULL;
  }
  if (rc == COH_OK && best_text == NULL)
    rc = coh__err(err, COH_EFORMAT,
                  "llm request: field 'history_tokens' = %zu is smaller than the prompt "
                  "of the system message(s) and the last message alone",
                  budget);
  if (rc == COH_OK) {
    coh_free(out->text);
    coh_free(out->ids);
    out->text = best_text;
    out->text_len = best_len;
    out->ids = best_ids;
    out->n_ids = best_n_ids;
    best_text = NULL;
    best_ids = NULL;
  }
  goto done;
oom:
  rc = coh__err(err, COH_ENOMEM, "out of memory");
done:
  if (sub) json_decref(sub);
  coh_free(best_text);
  coh_free(best_ids);
  coh__free(cuts);
  return rc;
}

int coh_llm_request_parse(const char *json, size_t len, const coh_model *m,
                          uint64_t seed, coh_llm_request *out, coh_err *err) {
  return coh_llm_request_parse_with(json, len, coh_model_tokenizer(m),
                                    coh_model_chat_template(m), seed, out, err);
}

int coh_llm_request_parse_with(const char *json, size_t len,
                               const coh_tokenizer *tok,
                               const coh_chat_template *chat, uint64_t seed,
                               coh_llm_request *out, coh_err *err) {
  json_error_t je;
  json_t *root, *v, *prompt, *msgs;
  const char *key;
  int rc = COH_OK, sampling_field = 0, have_temp = 0;
  double d = 0;

  memset(out, 0, sizeof *out);
  coh_request_default(&out->req);
  out->req.max_tokens = 64;
  out->req.sampling.seed = seed;
  if (tok == NULL)
    return coh__err(err, COH_EINVAL, "llm request: the model has no tokenizer.json");
  root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL)
    return coh__err(err, COH_EFORMAT, "llm request: invalid JSON at column %d: %s",
                    je.column, je.text);
  if (!json_is_object(root)) {
    rc = coh__err(err, COH_EFORMAT, "llm request: must be a JSON object");
    goto done;
  }
  json_object_foreach(root, key, v) {
    if (!strcmp(key, "prompt")) {
      if (!json_is_string(v)) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'prompt' must be a string");
        goto done;
      }
    } else if (!strcmp(key, "messages") || !strcmp(key, "tools") ||
               !strcmp(key, "template_vars") || !strcmp(key, "history_tokens")) {
      /* checked by check_chat_fields */
    } else if (!strcmp(key, "add_generation_prompt")) {
      if (!json_is_boolean(v)) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'add_generation_prompt' must be true or false");
        goto done;
      }
    } else if (!strcmp(key, "model")) {
      if (!json_is_string(v)) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'model' must be a string");
        goto done;
      }
      if ((out->model = coh__strdup(json_string_value(v))) == NULL) goto oom;
    } else if (!strcmp(key, "max_tokens")) {
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1 << 20) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'max_tokens' must be an integer in [0, 1048576]");
        goto done;
      }
      out->req.max_tokens = (int32_t)json_integer_value(v);
    } else if (!strcmp(key, "temperature")) {
      if ((rc = num_field(v, key, 0, 100, &d, err))) goto done;
      out->req.sampling.temperature = (float)d;
      have_temp = 1;
    } else if (!strcmp(key, "top_k")) {
      if ((rc = num_field(v, key, 0, INT32_MAX, &d, err))) goto done;
      out->req.sampling.top_k = (int32_t)d;
      sampling_field = 1;
    } else if (!strcmp(key, "top_p")) {
      if ((rc = num_field(v, key, 1e-9, 1, &d, err))) goto done;
      out->req.sampling.top_p = (float)d;
      sampling_field = 1;
    } else if (!strcmp(key, "min_p")) {
      if ((rc = num_field(v, key, 0, 1, &d, err))) goto done;
      out->req.sampling.min_p = (float)d;
      sampling_field = 1;
    } else if (!strcmp(key, "repetition_penalty")) {
      if ((rc = num_field(v, key, 1e-6, 100, &d, err))) goto done;
      out->req.sampling.repetition_penalty = (float)d;
    } else if (!strcmp(key, "ignore_eos")) {
      if (!json_is_boolean(v)) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'ignore_eos' must be true or false");
        goto done;
      }
      out->req.ignore_eos = json_is_true(v);
    } else if (!strcmp(key, "stop")) {
      /* a string is one stop string (as in the OpenAI API, and as the
       * stock prompt agent documents its "stop" key) */
      size_t i, n = json_is_string(v) ? 1 : json_array_size(v);
      if (!(json_is_array(v) || json_is_string(v)) || n > 16) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'stop' must be a string or an array of at most 16 strings");
        goto done;
      }
      out->stops = coh__calloc(n + 1, sizeof *out->stops);
      if (out->stops == NULL) goto oom;
      for (i = 0; i < n; i++) {
        json_t *sv = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(sv) || json_string_length(sv) == 0 ||
            json_string_length(sv) > COH_STOP_STRING_MAX) {
          rc = coh__err(err, COH_EFORMAT,
                        "llm request: field 'stop[%zu]' must be a non-empty "
                        "string of at most %d bytes",
                        i, COH_STOP_STRING_MAX);
          goto done;
        }
        if ((out->stops[out->n_stops] = coh__strdup(json_string_value(sv))) == NULL) goto oom;
        out->n_stops++;
      }
    } else {
      rc = coh__err(err, COH_EFORMAT, "llm request: unknown field '%s'", key);
      goto done;
    }
  }
  prompt = json_object_get(root, "prompt");
  msgs = json_object_get(root, "messages");
  if ((prompt == NULL) == (msgs == NULL)) {
    rc = coh__err(err, COH_EFORMAT, "llm request: give exactly one of the fields 'prompt' and 'messages'");
    goto done;
  }
  if (sampling_field && !have_temp) out->req.sampling.temperature = 1.0f;
  if (msgs != NULL) {
    out->chat = 1;
    if ((rc = check_chat_fields(root, err)) || (rc = build_chat(root, chat, tok, out, err)))
      goto done;
  } else {
    static const char *const chat_only[] = {"tools", "template_vars", "add_generation_prompt",
                                            "history_tokens"};
    size_t i;
    for (i = 0; i < sizeof chat_only / sizeof *chat_only; i++)
      if (json_object_get(root, chat_only[i]) != NULL) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field '%s' needs 'messages' (not 'prompt')",
                      chat_only[i]);
        goto done;
      }
    out->text_len = json_string_length(prompt);
    if ((out->text = coh__malloc(out->text_len + 1)) == NULL) goto oom;
    memcpy(out->text, json_string_value(prompt), out->text_len + 1);
    if ((rc = coh_tokenizer_encode(tok, out->text, out->text_len, 1, &out->ids, &out->n_ids,
                                   err)))
      goto done;
  }
  out->req.prompt = out->ids;
  out->req.n_prompt = out->n_ids;
  out->req.stop_strings = (const char *const *)out->stops;
  out->req.n_stop_strings = out->n_stops;
  goto done;
oom:
  rc = coh__err(err, COH_ENOMEM, "out of memory");
done:
  json_decref(root);
  return rc;
}
