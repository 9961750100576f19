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
#include "cohort/grammar.h"
#include "cohort/infer.h"

void coh_llm_request_free(coh_llm_request *r) {
  size_t i;
  if (r == NULL) return;
  coh__free(r->model);
  coh_free(r->ids);
  for (i = 0; i < r->n_stops; i++) coh__free(r->stops[i]);
  coh__free(r->stops);
  coh_free(r->text); /* from coh__malloc or the chat module: both coh_free */
  coh_grammar_free(r->grammar);
  coh__free(r->tool_names);
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

/* ---- structured output: response_format, tools, tool_choice ------------- */

/* The most tools a request may list, and the longest tool name. */
#define TOOLS_MAX 128
#define TOOL_NAME_MAX 64

/* Prefixes every local "$ref" ("#", "#/...") under v with "#/$defs/NAME", so
 * that a schema moved to /$defs/NAME of another schema keeps its references.
 * Values of keywords that hold data rather than schemas are left alone. */
static int rebase_refs(json_t *v, const char *name, int depth, coh_err *err) {
  const char *key;
  json_t *x;
  size_t i;
  if (depth > 128)
    return coh__err(err, COH_ERANGE, "nested deeper than 128 levels");
  if (json_is_array(v)) {
    json_array_foreach(v, i, x) if (rebase_refs(x, name, depth + 1, err)) return err->code;
    return COH_OK;
  }
  if (!json_is_object(v)) return COH_OK;
  json_object_foreach(v, key, x) {
    if (!strcmp(key, "enum") || !strcmp(key, "const") || !strcmp(key, "default") ||
        !strcmp(key, "examples") || !strcmp(key, "example"))
      continue;
    if (!strcmp(key, "$ref") && json_is_string(x) && json_string_value(x)[0] == '#') {
      const char *r = json_string_value(x);
      size_t n = strlen(name) + strlen(r) + 16;
      char *s = coh__malloc(n);
      if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
      snprintf(s, n, "#/$defs/%s%s", name, r + 1);
      i = (size_t)json_string_set(x, s);
      coh__free(s);
      if (i) return coh__err(err, COH_ENOMEM, "out of memory");
    } else if (rebase_refs(x, name, depth + 1, err)) {
      return err->code;
    }
  }
  return COH_OK;
}

/* A constraint that compiles to an empty language (COH_EINVAL from the
 * grammar engine: "matches no string at all", e.g. minimum > maximum) is a
 * bad request like any other: COH_EFORMAT. */
static int bad_schema(int rc, coh_err *err) {
  if (rc == COH_EINVAL) rc = err->code = COH_EFORMAT;
  return rc;
}

/* Compiles schema (a JSON value) for field; errors name the field. */
static int compile_schema(json_t *schema, const char *field, coh_grammar **out,
                          coh_err *err) {
  char *text = json_dumps(schema, JSON_COMPACT | JSON_ENCODE_ANY), name[96];
  int rc;
  if (text == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  /* the engine's messages begin with the name: "NAME: unsupported ..." */
  snprintf(name, sizeof name, "llm request: field '%s'", field);
  rc = coh_grammar_from_json_schema(text, strlen(text), name, out, err);
  free(text); /* jansson's allocator */
  return bad_schema(rc, err);
}

/* Checks "response_format" and compiles its grammar into out->grammar. */
static int parse_response_format(json_t *rf, coh_llm_request *out, coh_err *err) {
  json_t *type = json_object_get(rf, "type"), *js, *schema, *v;
  const char *t, *key;
  int rc;
  if (!json_is_object(rf) || !json_is_string(type))
    return coh__err(err, COH_EFORMAT, "llm request: field 'response_format' must be an "
                    "object with a string 'type' (json_schema, json_object, grammar or text)");
  t = json_string_value(type);
  json_object_foreach(rf, key, v) {
    if (!strcmp(key, "type") || (!strcmp(t, "json_schema") && !strcmp(key, "json_schema")) ||
        (!strcmp(t, "grammar") && !strcmp(key, "grammar")))
      continue;
    return coh__err(err, COH_EFORMAT, "llm request: unknown field 'response_format.%s' "
                    "for type '%s'", key, t);
  }
  if (!strcmp(t, "text")) return COH_OK;
  if (!strcmp(t, "json_object")) {
    out->response = COH_RESPONSE_JSON_OBJECT;
    if ((rc = coh_grammar_any_json_object(&out->grammar, err)))
      coh__err_prefix(err, "llm request: field 'response_format'");
    return rc;
  }
  if (!strcmp(t, "grammar")) {
    v = json_object_get(rf, "grammar");
    if (!json_is_string(v) || json_string_length(v) == 0)
      return coh__err(err, COH_EFORMAT, "llm request: field 'response_format.grammar' must "
                      "be a non-empty string (EBNF, docs/grammar.md)");
    out->response = COH_RESPONSE_GRAMMAR;
    return bad_schema(coh_grammar_from_ebnf(json_string_value(v), json_string_length(v),
                                            "llm request: field 'response_format.grammar'",
                                            &out->grammar, err),
                      err);
  }
  if (strcmp(t, "json_schema"))
    return coh__err(err, COH_EFORMAT, "llm request: field 'response_format.type' = '%s'; "
                    "expected json_schema, json_object, grammar or text", t);
  js = json_object_get(rf, "json_schema");
  if (!json_is_object(js))
    return coh__err(err, COH_EFORMAT, "llm request: field 'response_format.json_schema' "
                    "must be an object {name, schema, strict?, description?}");
  json_object_foreach(js, key, v) {
    if (!strcmp(key, "name") || !strcmp(key, "description")) {
      if (!json_is_string(v))
        return coh__err(err, COH_EFORMAT, "llm request: field 'response_format.json_schema.%s' "
                        "must be a string", key);
    } else if (!strcmp(key, "strict")) {
      if (!json_is_boolean(v))
        return coh__err(err, COH_EFORMAT, "llm request: field "
                        "'response_format.json_schema.strict' must be true or false");
    } else if (strcmp(key, "schema")) {
      return coh__err(err, COH_EFORMAT, "llm request: unknown field "
                      "'response_format.json_schema.%s'", key);
    }
  }
  schema = json_object_get(js, "schema");
  if (!json_is_object(schema))
    return coh__err(err, COH_EFORMAT, "llm request: field 'response_format.json_schema.schema' "
                    "must be an object (a JSON Schema)");
  out->response = COH_RESPONSE_JSON_SCHEMA;
  return compile_schema(schema, "response_format.json_schema.schema", &out->grammar, err);
}

/* Checks one OpenAI function tool; *name: its name (borrowed from t). */
static int check_tool(json_t *t, size_t i, const char **name, coh_err *err) {
  json_t *fn = json_object_get(t, "function"), *v;
  const char *key, *n;
  size_t k;
  json_object_foreach(t, key, v) if (strcmp(key, "type") && strcmp(key, "function"))
    return coh__err(err, COH_EFORMAT, "llm request: unknown field 'tools[%zu].%s'", i, key);
  v = json_object_get(t, "type");
  if (!json_is_string(v) || strcmp(json_string_value(v), "function"))
    return coh__err(err, COH_EFORMAT, "llm request: field 'tools[%zu].type' must be \"function\"",
                    i);
  if (!json_is_object(fn))
    return coh__err(err, COH_EFORMAT, "llm request: field 'tools[%zu].function' must be an "
                    "object {name, description?, parameters?, strict?}", i);
  json_object_foreach(fn, key, v) {
    if (!strcmp(key, "name") || !strcmp(key, "description")) {
      if (!json_is_string(v))
        return coh__err(err, COH_EFORMAT, "llm request: field 'tools[%zu].function.%s' must "
                        "be a string", i, key);
    } else if (!strcmp(key, "parameters")) {
      if (!json_is_object(v))
        return coh__err(err, COH_EFORMAT, "llm request: field 'tools[%zu].function.parameters' "
                        "must be an object (a JSON Schema)", i);
    } else if (!strcmp(key, "strict")) {
      if (!json_is_boolean(v))
        return coh__err(err, COH_EFORMAT, "llm request: field 'tools[%zu].function.strict' "
                        "must be true or false", i);
    } else {
      return coh__err(err, COH_EFORMAT, "llm request: unknown field 'tools[%zu].function.%s'",
                      i, key);
    }
  }
  v = json_object_get(fn, "name");
  n = json_string_value(v);
  if (n == NULL || n[0] == '\0' || json_string_length(v) > TOOL_NAME_MAX)
    return coh__err(err, COH_EFORMAT, "llm request: field 'tools[%zu].function.name' must be "
                    "1 to %d characters of [A-Za-z0-9_-]", i, TOOL_NAME_MAX);
  for (k = 0; n[k]; k++)
    if (!((n[k] >= 'a' && n[k] <= 'z') || (n[k] >= 'A' && n[k] <= 'Z') ||
          (n[k] >= '0' && n[k] <= '9') || n[k] == '_' || n[k] == '-'))
      return coh__err(err, COH_EFORMAT, "llm request: field 'tools[%zu].function.name' must "
                      "be 1 to %d characters of [A-Za-z0-9_-]", i, TOOL_NAME_MAX);
  *name = n;
  return COH_OK;
}

/* The schema of a tool-call answer for the tools[i] with use[i] set:
 * {"tool_calls": [ {"name": NAME, "arguments": PARAMETERS}, ... ]}, at
 * least one call, at most one unless parallel. */
static int tool_call_schema(json_t *tools, const unsigned char *use, int parallel,
                            json_t **out, coh_err *err) {
  json_t *defs = json_object(), *alts = json_array(), *items, *arr, *root;
  size_t i;
  char name[32], ref[48];
  int rc = COH_OK;
  *out = NULL;
  if (defs == NULL || alts == NULL) goto oom;
  for (i = 0; i < json_array_size(tools); i++) {
    json_t *fn = json_object_get(json_array_get(tools, i), "function");
    json_t *params = json_object_get(fn, "parameters"), *p, *call;
    if (!use[i]) continue;
    snprintf(name, sizeof name, "coh_tool_%zu", i);
    p = params ? json_deep_copy(params)
               : json_pack("{s:s,s:{},s:b}", "type", "object", "properties",
                           "additionalProperties", 0);
    if (p == NULL) goto oom;
    if ((rc = rebase_refs(p, name, 0, err))) {
      json_decref(p);
      coh__err_prefix(err, "llm request: field 'tools[%zu].function.parameters'", i);
      goto done;
    }
    if (json_object_set_new(defs, name, p)) goto oom;
    snprintf(ref, sizeof ref, "#/$defs/%s", name);
    call = json_pack("{s:s,s:{s:{s:O},s:{s:s}},s:[s,s],s:b}", "type", "object", "properties",
                     "name", "const", json_object_get(fn, "name"), "arguments", "$ref", ref,
                     "required", "name", "arguments", "additionalProperties", 0);
    if (call == NULL || json_array_append_new(alts, call)) goto oom;
  }
  items = json_array_size(alts) == 1 ? json_incref(json_array_get(alts, 0))
                                     : json_pack("{s:O}", "anyOf", alts);
  arr = json_pack("{s:s,s:o,s:i}", "type", "array", "items", items, "minItems", 1);
  if (arr == NULL) goto oom;
  if (!parallel && json_object_set_new(arr, "maxItems", json_integer(1))) {
    json_decref(arr);
    goto oom;
  }
  root = json_pack("{s:s,s:{s:o},s:[s],s:b,s:O}", "type", "object", "properties", "tool_calls",
                   arr, "required", "tool_calls", "additionalProperties", 0, "$defs", defs);
  if (root == NULL) goto oom;
  *out = root;
  goto done;
oom:
  rc = coh__err(err, COH_ENOMEM, "out of memory");
done:
  if (defs) json_decref(defs);
  if (alts) json_decref(alts);
  return rc;
}

/* Checks "tools", "tool_choice" and "parallel_tool_calls"; records the tool
 * names and, for "required" or a named tool, compiles the tool-call
 * grammar. */
static int parse_tools(json_t *root, coh_llm_request *out, coh_err *err) {
  json_t *tools = json_object_get(root, "tools"), *tc = json_object_get(root, "tool_choice");
  json_t *ptc = json_object_get(root, "parallel_tool_calls"), *schema = NULL;
  const char *names[TOOLS_MAX];
  unsigned char use[TOOLS_MAX];
  size_t i, k, n = json_array_size(tools), total = 0;
  const char *want = NULL;
  int rc;
  if (tools == NULL) {
    if (tc != NULL || ptc != NULL)
      return coh__err(err, COH_EFORMAT, "llm request: field '%s' needs 'tools'",
                      tc != NULL ? "tool_choice" : "parallel_tool_calls");
    return COH_OK;
  }
  if (n > TOOLS_MAX)
    return coh__err(err, COH_EFORMAT, "llm request: field 'tools' has %zu tools; at most %d",
                    n, TOOLS_MAX);
  for (i = 0; i < n; i++) {
    if ((rc = check_tool(json_array_get(tools, i), i, &names[i], err))) return rc;
    for (k = 0; k < i; k++)
      if (!strcmp(names[k], names[i]))
        return coh__err(err, COH_EFORMAT, "llm request: field 'tools[%zu].function.name': "
                        "'%s' is also tools[%zu]", i, names[i], k);
    total += strlen(names[i]) + 1;
  }
  if (ptc != NULL && !json_is_boolean(ptc))
    return coh__err(err, COH_EFORMAT,
                    "llm request: field 'parallel_tool_calls' must be true or false");
  out->tool_choice = n > 0 ? COH_TOOLS_AUTO : COH_TOOLS_NONE;
  if (json_is_string(tc)) {
    const char *s = json_string_value(tc);
    if (!strcmp(s, "none")) out->tool_choice = COH_TOOLS_NONE;
    else if (!strcmp(s, "auto")) out->tool_choice = n > 0 ? COH_TOOLS_AUTO : COH_TOOLS_NONE;
    else if (!strcmp(s, "required")) out->tool_choice = COH_TOOLS_REQUIRED;
    else
      return coh__err(err, COH_EFORMAT, "llm request: field 'tool_choice' = '%s'; expected "
                      "\"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                      "\"function\": {\"name\": ...}}", s);
  } else if (tc != NULL) {
    json_t *fn = json_object_get(tc, "function"), *ty = json_object_get(tc, "type");
    if (!json_is_object(tc) || json_object_size(tc) != 2 || !json_is_string(ty) ||
        strcmp(json_string_value(ty), "function") || !json_is_object(fn) ||
        json_object_size(fn) != 1 || !json_is_string(json_object_get(fn, "name")))
      return coh__err(err, COH_EFORMAT, "llm request: field 'tool_choice' must be \"none\", "
                      "\"auto\", \"required\" or {\"type\": \"function\", \"function\": "
                      "{\"name\": ...}}");
    want = json_string_value(json_object_get(fn, "name"));
    out->tool_choice = COH_TOOLS_NAMED;
  }
  if ((out->tool_choice == COH_TOOLS_REQUIRED || out->tool_choice == COH_TOOLS_NAMED) &&
      n == 0)
    return coh__err(err, COH_EFORMAT, "llm request: field 'tool_choice' asks for a tool call "
                    "but 'tools' is empty");
  for (i = 0; i < n; i++) use[i] = want == NULL || !strcmp(names[i], want);
  if (want != NULL) {
    for (i = 0; i < n && !use[i]; i++) {}
    if (i == n)
      return coh__err(err, COH_EFORMAT, "llm request: field 'tool_choice.function.name' = "
                      "'%s' is not one of the tools", want);
  }
  /* every tool's parameters compile on their own: an error names the tool */
  for (i = 0; i < n; i++) {
    json_t *p = json_object_get(json_object_get(json_array_get(tools, i), "function"),
                                "parameters");
    char field[64];
    coh_grammar *g = NULL;
    if (p == NULL || out->tool_choice == COH_TOOLS_NONE) continue;
    snprintf(field, sizeof field, "tools[%zu].function.parameters", i);
    rc = compile_schema(p, field, &g, err);
    coh_grammar_free(g);
    if (rc) return rc;
  }
  if (out->tool_choice != COH_TOOLS_NONE) {
    char *p;
    if ((out->tool_names = coh__malloc(total + 1)) == NULL)
      return coh__err(err, COH_ENOMEM, "out of memory");
    for (p = out->tool_names, i = 0; i < n; i++)
      if (use[i]) {
        size_t l = strlen(names[i]) + 1;
        memcpy(p, names[i], l);
        p += l;
        out->n_tools++;
      }
  }
  if (out->tool_choice != COH_TOOLS_REQUIRED && out->tool_choice != COH_TOOLS_NAMED)
    return COH_OK;
  if (out->grammar != NULL)
    return coh__err(err, COH_EFORMAT, "llm request: field 'response_format' cannot be combined "
                    "with a tool_choice that forces a tool call (the call's shape is the format)");
  if ((rc = tool_call_schema(tools, use, ptc == NULL || json_is_true(ptc), &schema, err)))
    return rc;
  rc = compile_schema(schema, "tools", &out->grammar, err);
  json_decref(schema);
  return rc;
}

/* Whether name is one of the n NUL-separated names. */
static int is_tool(const char *names, size_t n, const char *name) {
  size_t i;
  for (i = 0; i < n; i++, names += strlen(names) + 1)
    if (!strcmp(names, name)) return 1;
  return 0;
}

int coh_llm_tool_calls(const char *names, size_t n_names, const char *text, size_t len,
                       char **out, coh_err *err) {
  json_t *root, *calls, *c;
  size_t i;
  int ok;
  *out = NULL;
  /* a repeated member: the last one counts, as with JSON.parse (the
   * grammar of an object lets a listed property repeat: docs/grammar.md) */
  root = json_loadb(text, len, 0, NULL);
  if (root == NULL) return COH_OK;
  calls = json_object_get(root, "tool_calls");
  ok = json_is_object(root) && json_object_size(root) == 1 && json_is_array(calls) &&
       json_array_size(calls) > 0;
  json_array_foreach(calls, i, c) {
    json_t *name = json_object_get(c, "name");
    if (!ok) break;
    ok = json_is_object(c) && json_object_size(c) == 2 && json_is_string(name) &&
         json_is_object(json_object_get(c, "arguments")) &&
         is_tool(names, n_names, json_string_value(name));
  }
  if (ok) {
    char *d = json_dumps(calls, JSON_COMPACT);
    if (d != NULL) *out = coh__strdup(d);
    free(d); /* jansson's allocator */
    if (*out == NULL) {
      json_decref(root);
      return coh__err(err, COH_ENOMEM, "out of memory");
    }
  }
  json_decref(root);
  return COH_OK;
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
    } else if (!strcmp(key, "response_format") || !strcmp(key, "tool_choice") ||
               !strcmp(key, "parallel_tool_calls")) {
      /* checked after the prompt: parse_response_format, parse_tools */
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
    } else if (!strcmp(key, "max_ws_run")) {
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1 << 20) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'max_ws_run' must be an integer in [0, 1048576]");
        goto done;
      }
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
                                            "history_tokens", "tool_choice",
                                            "parallel_tool_calls"};
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
  if ((v = json_object_get(root, "response_format")) != NULL &&
      (rc = parse_response_format(v, out, err)))
    goto done;
  if (msgs != NULL && (rc = parse_tools(root, out, err))) goto done;
  if (out->grammar != NULL && out->req.ignore_eos) {
    rc = coh__err(err, COH_EFORMAT, "llm request: field 'ignore_eos' cannot be used with "
                  "constrained output (response_format, or tool_choice required or named)");
    goto done;
  }
  out->req.grammar = out->grammar;
  v = json_object_get(root, "max_ws_run");
  out->req.max_ws_run = v != NULL ? (int32_t)json_integer_value(v) : COH_LLM_MAX_WS_RUN;
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
