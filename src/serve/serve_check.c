/*
 * serve_check.c — everything `cohort serve` does to a request before it
 * queues it, without sockets: the route of a method and path, the Bearer
 * check, reading the body within --max-body, and checking the OpenAI JSON
 * field by field into a job (an llm request parsed with the model's own
 * tokenizer and chat template).  serve_http.c calls these on civetweb's
 * threads and writes the reply; tests/fuzz/fuzz_serve.c calls the same
 * functions on arbitrary bytes, with a tokenizer and a chat template but no
 * model, which is why nothing here needs civetweb or an engine.
 *
 * Bounds on the work one request can cause (docs/serve.md): the body is at
 * most --max-body bytes (default 4 MiB), it nests arrays and objects at most
 * COH__SERVE_MAX_DEPTH deep (checked before parsing), at most
 * COH_LLM_MAX_MESSAGES messages of at most COH__SERVE_MAX_PARTS content parts
 * each, n at most COH__SERVE_MAX_N, prompt token ids at most the model's
 * context; stop strings, tools and the response schema are bounded by the
 * llm request parser (cohort/infer.h) and the chat render by its step and
 * output bounds (cohort/chat.h).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/infer.h"
#include "serve_int.h"

/* ---- jobs -------------------------------------------------------------------- */

void coh__serve_job_free(coh__serve_job *job) {
  int i;
  if (job == NULL) return;
  for (i = 0; i < job->n && job->choices; i++) {
    coh__buf_free(&job->choices[i].text);
    coh__free(job->choices[i].piece_end);
    coh__free(job->choices[i].toks);
    coh__free(job->choices[i].ids);
  }
  coh__free(job->llm_text);
  coh__free(job->choices);
  coh_llm_request_free(&job->lr);
  pthread_cond_destroy(&job->cond);
  coh__free(job);
}

int coh__serve_job_new(coh_serve *s, int model, int kind, int n, uint64_t seed,
                       const char *llm_text, const int32_t *ids, size_t n_ids,
                       coh__serve_job **out, coh_err *err) {
  coh__serve_job *job;
  int i, rc;
  *out = NULL;
  if ((job = coh__calloc(1, sizeof *job)) == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  pthread_cond_init(&job->cond, NULL);
  *out = job;
  job->srv = s;
  job->model = model;
  job->kind = kind;
  job->n = n;
  job->seed = seed;
  if ((job->choices = coh__calloc((size_t)n, sizeof *job->choices)) == NULL ||
      (job->llm_text = coh__strdup(llm_text)) == NULL) {
    job->n = 0;
    return coh__err(err, COH_ENOMEM, "out of memory");
  }
  for (i = 0; i < n; i++) {
    job->choices[i].job = job;
    job->choices[i].index = i;
  }
  /* the model's tokenizer and template (coh_llm_request_parse with the
   * model is this same call) */
  rc = coh_llm_request_parse_with(llm_text, strlen(llm_text), s->models[model].tok,
                                  s->models[model].chat, seed, &job->lr, err);
  if (rc != COH_OK) return rc;
  if (ids != NULL) {
    int32_t *copy = coh__malloc((n_ids ? n_ids : 1) * sizeof *copy);
    if (copy == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    memcpy(copy, ids, n_ids * sizeof *copy);
    coh_free(job->lr.ids);
    job->lr.ids = copy;
    job->lr.n_ids = n_ids;
    job->lr.req.prompt = copy;
    job->lr.req.n_prompt = n_ids;
    job->ids_given = 1;
  }
  return COH_OK;
}

/* ---- replies ------------------------------------------------------------------- */

static int reply(coh__serve_reply *r, int status, const char *type, const char *param,
                 const char *code, const char *fmt, ...) COH__PRINTF(6, 7);
static int reply(coh__serve_reply *r, int status, const char *type, const char *param,
                 const char *code, const char *fmt, ...) {
  va_list ap;
  r->status = status;
  r->type = type;
  r->code = code;
  snprintf(r->param, sizeof r->param, "%s", param ? param : "");
  va_start(ap, fmt);
  vsnprintf(r->msg, sizeof r->msg, fmt, ap);
  va_end(ap);
  return 1;
}

#define BAD(param, ...) reply(r, 400, "invalid_request_error", param, NULL, __VA_ARGS__)

/* A JSON string of a message or parameter: bytes that are not UTF-8 (a
 * message cut inside a character, raw input quoted by a parse error)
 * become U+FFFD, as json_pack would refuse them. */
static json_t *lossy_string(const char *p) {
  coh__buf b = {0};
  json_t *v;
  coh__buf_add_utf8_lossy(&b, p, strlen(p));
  v = b.oom ? NULL : json_stringn(b.p ? b.p : "", b.n);
  coh__buf_free(&b);
  return v;
}

json_t *coh__serve_error_json(const char *type, const char *param, const char *code,
                              const char *msg) {
  json_t *e = json_object(), *o = json_object();
  json_t *m = lossy_string(msg), *p = param ? lossy_string(param) : json_null();
  json_t *c = code ? json_string(code) : json_null(), *t = json_string(type);
  if (e == NULL || o == NULL || m == NULL || p == NULL || c == NULL || t == NULL) {
    json_decref(e);
    json_decref(o);
    json_decref(m);
    json_decref(p);
    json_decref(c);
    json_decref(t);
    return NULL;
  }
  /* each set_new takes its value, also when it fails */
  if (json_object_set_new(o, "message", m) | json_object_set_new(o, "type", t) |
      json_object_set_new(o, "param", p) | json_object_set_new(o, "code", c) |
      json_object_set_new(e, "error", o)) {
    json_decref(e);
    return NULL;
  }
  return e;
}

/* ---- routes and authentication ------------------------------------------------- */

int coh__serve_route_of(const char *method, const char *uri, const char **model_id) {
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
  *model_id = NULL;
  if (!strcmp(uri, "/health")) return COH__ROUTE_HEALTH;
  if (!strcmp(uri, "/metrics") && get) return COH__ROUTE_METRICS;
  if (!strcmp(uri, "/v1/models") && get) return COH__ROUTE_MODELS;
  if (!strncmp(uri, "/v1/models/", 11) && get) {
    *model_id = uri + 11;
    return COH__ROUTE_MODEL;
  }
  if (!strcmp(uri, "/v1/chat/completions") && post) return COH__ROUTE_CHAT;
  if (!strcmp(uri, "/v1/completions") && post) return COH__ROUTE_COMPLETIONS;
  if (!strcmp(uri, "/v1/models") || !strcmp(uri, "/v1/chat/completions") ||
      !strcmp(uri, "/v1/completions") || !strcmp(uri, "/metrics"))
    return COH__ROUTE_BAD_METHOD;
  return COH__ROUTE_UNKNOWN;
}

/* Constant time in the length of the presented header: every byte of the
 * longer of the two strings is compared. */
int coh__serve_bearer_ok(const char *key, const char *hdr) {
  static const char pre[] = "Bearer ";
  size_t kl = strlen(key), hl, i, n;
  unsigned char diff = 0;
  if (hdr == NULL) return 0;
  hl = strlen(hdr);
  n = hl > kl + 7 ? hl : kl + 7;
  for (i = 0; i < n; i++) {
    unsigned char want = i < 7 ? (unsigned char)pre[i] : i - 7 < kl ? (unsigned char)key[i - 7] : 0;
    unsigned char got = i < hl ? (unsigned char)hdr[i] : 0;
    diff |= (unsigned char)(want ^ got);
  }
  return diff == 0 && hl == kl + 7;
}

/* ---- the body -------------------------------------------------------------------- */

int coh__serve_read_body(size_t max, long long content_length, coh__serve_read_fn rd, void *ctx,
                         char **body, size_t *len, coh__serve_reply *r) {
  size_t n = 0, cap;
  char *p;
  *body = NULL;
  *len = 0;
  if (content_length > (long long)max)
    return reply(r, 413, "invalid_request_error", NULL, "request_too_large",
                 "request body of %lld bytes exceeds the limit of %zu bytes (--max-body)",
                 content_length, max);
  cap = content_length >= 0 ? (size_t)content_length + 1 : 65536;
  if ((p = coh__malloc(cap)) == NULL)
    return reply(r, 500, "server_error", NULL, NULL, "out of memory");
  /* each round reads at least one byte or ends; the buffer doubles only
   * while it is at most max, so at most max(64 KiB, 2 max) bytes are read
   * before the 413 */
  for (;;) {
    long k;
    if (n + 1 >= cap) {
      char *q;
      if (cap > max) {
        coh__free(p);
        return reply(r, 413, "invalid_request_error", NULL, "request_too_large",
                     "request body exceeds the limit of %zu bytes (--max-body)", max);
      }
      q = coh__realloc(p, cap * 2);
      if (q == NULL) {
        coh__free(p);
        return reply(r, 500, "server_error", NULL, NULL, "out of memory");
      }
      p = q;
      cap *= 2;
    }
    k = rd(ctx, p + n, cap - 1 - n);
    if (k <= 0) break;
    n += (size_t)k;
  }
  if (n > max) {
    coh__free(p);
    return reply(r, 413, "invalid_request_error", NULL, "request_too_large",
                 "request body exceeds the limit of %zu bytes (--max-body)", max);
  }
  p[n] = '\0';
  *body = p;
  *len = n;
  return 0;
}

/* The deepest nesting of arrays and objects in a JSON text (strings
 * skipped), stopping at limit + 1.  Checked before parsing: jansson, the
 * chat renderer and the schema compiler recurse per level, and civetweb's
 * threads have small stacks (a body nested 1000 deep overflowed one). */
static int json_depth(const char *p, size_t n, int limit) {
  size_t i;
  int depth = 0, max = 0, in_str = 0;
  for (i = 0; i < n && max <= limit; i++) {
    char c = p[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '[' || c == '{') {
      if (++depth > max) max = depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return max;
}

/* ---- the OpenAI JSON ---------------------------------------------------------------- */

typedef struct gen_params {
  int kind;
  int model;
  int stream, include_usage;
  int n;
  int logprobs, top_logprobs;
  int have_seed;
  uint64_t seed;
  int64_t max_tokens;  /* -1: not given */
  int32_t *ids;        /* completions: prompt as token ids */
  size_t n_ids;
} gen_params;

static int is_num(json_t *v) { return json_is_integer(v) || json_is_real(v); }

/* Copies a message, joining "content" given as an array of text parts
 * ({"type": "text", "text": ...}) into one string. */
static json_t *flatten_message(json_t *m, size_t i, char *param, size_t cap, int *bad) {
  json_t *c = json_object_get(m, "content"), *out;
  size_t k;
  coh__buf b = {0};
  if (!json_is_object(m) || !json_is_array(c)) return json_incref(m);
  for (k = 0; k < json_array_size(c) && k < COH__SERVE_MAX_PARTS; k++) {
    json_t *part = json_array_get(c, k), *t = json_object_get(part, "text");
    const char *ty = json_string_value(json_object_get(part, "type"));
    if (!json_is_object(part) || ty == NULL || strcmp(ty, "text") || !json_is_string(t)) {
      snprintf(param, cap, "messages[%zu].content[%zu]", i, k);
      *bad = 1;
      coh__buf_free(&b);
      return NULL;
    }
    coh__buf_add(&b, json_string_value(t), json_string_length(t));
  }
  if (k < json_array_size(c) || b.oom) {
    snprintf(param, cap, "messages[%zu].content", i);
    *bad = 1;
    coh__buf_free(&b);
    return NULL;
  }
  out = json_deep_copy(m);
  if (out) json_object_set_new(out, "content", json_stringn(b.p ? b.p : "", b.n));
  coh__buf_free(&b);
  return out;
}

/* The field an llm-request message names ("field 'messages[2].role'"). */
static void field_of(const char *msg, char *param, size_t cap) {
  const char *a = strstr(msg, "field '"), *e;
  param[0] = '\0';
  if (a == NULL) return;
  a += 7;
  e = strchr(a, '\'');
  if (e == NULL || (size_t)(e - a) >= cap) return;
  memcpy(param, a, (size_t)(e - a));
  param[e - a] = '\0';
}

/* Checks the OpenAI body (root, an object) and builds the llm request JSON
 * in *llm.  Returns 0, or 1 after sending the error response. */
static int check_body(coh_serve *s, coh__serve_reply *r, json_t *root, gen_params *g,
                      json_t **llm) {
  static const char *const chat_keys[] = {
      "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
      "seed", "stop", "n", "logprobs", "top_logprobs", "user", "stream", "stream_options",
      "response_format", "tools", "tool_choice", "parallel_tool_calls", "frequency_penalty",
      "presence_penalty", "logit_bias", "store", "metadata", "top_k", "min_p",
      "repetition_penalty", "ignore_eos", NULL};
  static const char *const cmpl_keys[] = {
      "model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "n",
      "logprobs", "user", "stream", "stream_options", "echo", "best_of", "suffix",
      "frequency_penalty", "presence_penalty", "logit_bias", "top_k", "min_p",
      "repetition_penalty", "ignore_eos", NULL};
  const char *const *keys = g->kind == COH__JOB_CHAT ? chat_keys : cmpl_keys;
  const char *key, *model;
  json_t *v, *out;
  size_t i;

  json_object_foreach(root, key, v) {
    for (i = 0; keys[i] && strcmp(keys[i], key); i++) {}
    if (keys[i] == NULL) {
      BAD(key, "Unrecognized request argument supplied: %s", key);
      return 1;
    }
  }
  v = json_object_get(root, "model");
  if (!json_is_string(v)) {
    BAD("model", v ? "'model' must be a string" : "you must provide a model parameter");
    return 1;
  }
  model = json_string_value(v);
  for (i = 0; i < s->n_models && strcmp(s->models[i].id, model); i++) {}
  if (i == s->n_models) {
    reply(r, 404, "invalid_request_error", "model", "model_not_found",
               "The model '%s' does not exist", model);
    return 1;
  }
  g->model = (int)i;
  if ((out = json_object()) == NULL) goto oom;
  *llm = out;
  json_object_set(out, "model", v);

  /* sampling: OpenAI's defaults (temperature 1, top_p 1) */
  v = json_object_get(root, "temperature");
  if (v && !json_is_null(v) && (!is_num(v) || json_number_value(v) < 0 || json_number_value(v) > 2)) {
    BAD("temperature", "'temperature' must be a number in [0, 2]");
    return 1;
  }
  json_object_set_new(out, "temperature",
                      json_real(v && !json_is_null(v) ? json_number_value(v) : 1.0));
  v = json_object_get(root, "top_p");
  if (v && !json_is_null(v)) {
    if (!is_num(v) || !(json_number_value(v) > 0) || json_number_value(v) > 1) {
      BAD("top_p", "'top_p' must be a number in (0, 1]");
      return 1;
    }
    json_object_set(out, "top_p", v);
  }
  {
    static const char *const ext[] = {"top_k", "min_p", "repetition_penalty"};
    for (i = 0; i < 3; i++)
      if ((v = json_object_get(root, ext[i])) != NULL && !json_is_null(v)) {
        if (!is_num(v)) {
          BAD(ext[i], "'%s' must be a number", ext[i]);
          return 1;
        }
        json_object_set(out, ext[i], v);
      }
  }
  {
    static const char *const pen[] = {"frequency_penalty", "presence_penalty"};
    for (i = 0; i < 2; i++)
      if ((v = json_object_get(root, pen[i])) != NULL && !json_is_null(v)) {
        if (!is_num(v) || json_number_value(v) < -2 || json_number_value(v) > 2) {
          BAD(pen[i], "'%s' must be a number in [-2, 2]", pen[i]);
          return 1;
        }
        if (json_number_value(v) != 0) {
          BAD(pen[i], "'%s' other than 0 is not supported by cohort (use repetition_penalty)",
              pen[i]);
          return 1;
        }
      }
  }
  v = json_object_get(root, "ignore_eos"); /* cohort's extension */
  if (v && !json_is_null(v)) {
    if (!json_is_boolean(v)) {
      BAD("ignore_eos", "'ignore_eos' must be a boolean");
      return 1;
    }
    json_object_set(out, "ignore_eos", v);
  }
  v = json_object_get(root, "logit_bias");
  if (v && !json_is_null(v) && !(json_is_object(v) && json_object_size(v) == 0)) {
    BAD("logit_bias", "'logit_bias' is not supported by cohort");
    return 1;
  }
  v = json_object_get(root, "user");
  if (v && !json_is_null(v) && !json_is_string(v)) {
    BAD("user", "'user' must be a string");
    return 1;
  }

  /* max_tokens / max_completion_tokens */
  g->max_tokens = -1;
  {
    static const char *const mt[] = {"max_tokens", "max_completion_tokens"};
    for (i = 0; i < 2; i++)
      if ((v = json_object_get(root, mt[i])) != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > s->models[g->model].context) {
          BAD(mt[i], "'%s' must be an integer in [1, %lld] (the model's context)", mt[i],
              (long long)s->models[g->model].context);
          return 1;
        }
        g->max_tokens = json_integer_value(v);
      }
  }
  /* seed */
  v = json_object_get(root, "seed");
  if (v && !json_is_null(v)) {
    if (!json_is_integer(v)) {
      BAD("seed", "'seed' must be an integer");
      return 1;
    }
    g->have_seed = 1;
    g->seed = (uint64_t)json_integer_value(v);
  }
  /* n */
  g->n = 1;
  v = json_object_get(root, "n");
  if (v && !json_is_null(v)) {
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > COH__SERVE_MAX_N) {
      BAD("n", "'n' must be an integer in [1, %d]", COH__SERVE_MAX_N);
      return 1;
    }
    g->n = (int)json_integer_value(v);
  }
  /* stop */
  v = json_object_get(root, "stop");
  if (v && !json_is_null(v)) json_object_set(out, "stop", v);
  /* stream, stream_options */
  v = json_object_get(root, "stream");
  if (v && !json_is_null(v) && !json_is_boolean(v)) {
    BAD("stream", "'stream' must be a boolean");
    return 1;
  }
  g->stream = json_is_true(v);
  v = json_object_get(root, "stream_options");
  if (v && !json_is_null(v)) {
    json_t *iu = json_object_get(v, "include_usage");
    const char *k2;
    json_t *x;
    if (!g->stream) {
      BAD("stream_options", "'stream_options' is only allowed when 'stream' is true");
      return 1;
    }
    if (!json_is_object(v)) {
      BAD("stream_options", "'stream_options' must be an object");
      return 1;
    }
    json_object_foreach(v, k2, x) if (strcmp(k2, "include_usage") && strcmp(k2, "include_obfuscation")) {
      BAD("stream_options", "Unrecognized stream option: %s", k2);
      return 1;
    }
    if (iu && !json_is_boolean(iu)) {
      BAD("stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
      return 1;
    }
    g->include_usage = json_is_true(iu);
  }

  if (g->kind == COH__JOB_CHAT) {
    json_t *msgs = json_object_get(root, "messages"), *arr;
    v = json_object_get(root, "logprobs");
    if (v && !json_is_null(v) && !json_is_boolean(v)) {
      BAD("logprobs", "'logprobs' must be a boolean");
      return 1;
    }
    g->logprobs = json_is_true(v);
    v = json_object_get(root, "top_logprobs");
    if (v && !json_is_null(v)) {
      if (!json_is_integer(v) || json_integer_value(v) < 0 ||
          json_integer_value(v) > COH__SERVE_MAX_TOP_LOGPROBS) {
        BAD("top_logprobs", "'top_logprobs' must be an integer in [0, %d]",
            COH__SERVE_MAX_TOP_LOGPROBS);
        return 1;
      }
      if (!g->logprobs) {
        BAD("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
        return 1;
      }
      g->top_logprobs = (int)json_integer_value(v);
    }
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
      BAD("messages", msgs ? "'messages' must be a non-empty array"
                           : "you must provide a messages parameter");
      return 1;
    }
    if (json_array_size(msgs) > COH_LLM_MAX_MESSAGES) {
      BAD("messages", "'messages' has %zu messages, more than %d", json_array_size(msgs),
          COH_LLM_MAX_MESSAGES);
      return 1;
    }
    if ((arr = json_array()) == NULL) goto oom;
    json_object_set_new(out, "messages", arr);
    for (i = 0; i < json_array_size(msgs); i++) {
      char param[64];
      int bad = 0;
      json_t *m = flatten_message(json_array_get(msgs, i), i, param, sizeof param, &bad);
      if (bad) {
        BAD(param, "'%s' must be a string or an array of text parts", param);
        return 1;
      }
      if (m == NULL) goto oom;
      json_array_append_new(arr, m);
    }
    {
      static const char *const pass[] = {"response_format", "tools", "tool_choice",
                                         "parallel_tool_calls"};
      for (i = 0; i < 4; i++)
        if ((v = json_object_get(root, pass[i])) != NULL && !json_is_null(v))
          json_object_set(out, pass[i], v);
    }
  } else {
    json_t *p = json_object_get(root, "prompt");
    v = json_object_get(root, "logprobs");
    if (v && !json_is_null(v)) {
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 5) {
        BAD("logprobs", "'logprobs' must be an integer in [0, 5]");
        return 1;
      }
      g->logprobs = 1;
      g->top_logprobs = (int)json_integer_value(v);
    }
    v = json_object_get(root, "echo");
    if (v && !json_is_null(v) && !json_is_false(v)) {
      BAD("echo", "'echo' is not supported by cohort");
      return 1;
    }
    v = json_object_get(root, "suffix");
    if (v && !json_is_null(v)) {
      BAD("suffix", "'suffix' is not supported by cohort");
      return 1;
    }
    v = json_object_get(root, "best_of");
    if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == g->n)) {
      BAD("best_of", "'best_of' must equal 'n' (cohort returns every choice)");
      return 1;
    }
    /* a one-element array holding a string or token ids is the same prompt */
    if (json_is_array(p) && json_array_size(p) == 1 &&
        (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0))))
      p = json_array_get(p, 0);
    if (json_is_string(p)) {
      json_object_set(out, "prompt", p);
    } else if (json_is_array(p) && json_array_size(p) > 0) {
      size_t n = json_array_size(p);
      int64_t vocab = s->models[g->model].vocab;
      if ((int64_t)n > s->models[g->model].context) {
        reply(r, 400, "invalid_request_error", "prompt", "context_length_exceeded",
                   "'prompt' has %zu tokens, more than the model's context of %lld", n,
                   (long long)s->models[g->model].context);
        return 1;
      }
      if ((g->ids = coh__malloc(n * sizeof *g->ids)) == NULL) goto oom;
      for (i = 0; i < n; i++) {
        json_t *t = json_array_get(p, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= vocab) {
          char param[48];
          snprintf(param, sizeof param, "prompt[%zu]", i);
          BAD(param, "'%s' must be a token id in [0, %lld)", param, (long long)vocab);
          return 1;
        }
        g->ids[i] = (int32_t)json_integer_value(t);
      }
      g->n_ids = n;
      json_object_set_new(out, "prompt", json_string(""));
    } else {
      BAD("prompt", p ? "'prompt' must be a string, a non-empty array of token ids, or a "
                        "one-element array of either"
                      : "you must provide a prompt parameter");
      return 1;
    }
  }
  return 0;
oom:
  reply(r, 500, "server_error", NULL, NULL, "out of memory");
  return 1;
}

int coh__serve_check_request(coh_serve *s, int kind, const char *body, size_t len,
                             uint64_t drawn_seed, coh__serve_checked *out, coh__serve_reply *r) {
  char *llm_text = NULL;
  json_error_t je;
  json_t *root = NULL, *llm = NULL;
  gen_params g;
  coh__serve_job *job = NULL;
  const coh__serve_model *m;
  coh_err err;
  int rc, bad = 1;

  memset(out, 0, sizeof *out);
  memset(r, 0, sizeof *r);
  memset(&g, 0, sizeof g);
  coh_err_clear(&err);
  g.kind = kind;
  if (json_depth(body, len, COH__SERVE_MAX_DEPTH) > COH__SERVE_MAX_DEPTH) {
    reply(r, 400, "invalid_request_error", NULL, "invalid_json",
          "the JSON body nests arrays and objects deeper than %d levels", COH__SERVE_MAX_DEPTH);
    goto done;
  }
  root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL) {
    reply(r, 400, "invalid_request_error", NULL, "invalid_json",
          "We could not parse the JSON body of your request: line %d, column %d: %s", je.line,
          je.column, je.text);
    goto done;
  }
  if (!json_is_object(root)) {
    reply(r, 400, "invalid_request_error", NULL, "invalid_json",
          "the request body must be a JSON object");
    goto done;
  }
  if (check_body(s, r, root, &g, &llm)) goto done;
  m = &s->models[g.model];
  if (!g.have_seed) g.seed = drawn_seed;
  if ((llm_text = json_dumps(llm, JSON_COMPACT)) == NULL) {
    reply(r, 500, "server_error", NULL, NULL, "out of memory");
    goto done;
  }
  rc = coh__serve_job_new(s, g.model, kind, g.n, g.seed, llm_text, g.ids, g.n_ids, &job, &err);
  if (rc != COH_OK) {
    char param[128];
    field_of(err.msg, param, sizeof param);
    if (rc == COH_ENOMEM) reply(r, 500, "server_error", NULL, NULL, "%s", err.msg);
    else BAD(param[0] ? param : NULL, "%s", err.msg);
    goto done;
  }
  job->logprobs = g.logprobs;
  job->top_logprobs = g.top_logprobs;
  if (job->lr.n_ids == 0) {
    BAD(kind == COH__JOB_CHAT ? "messages" : "prompt", "the prompt has no tokens");
    goto done;
  }
  if ((int64_t)job->lr.n_ids >= m->context ||
      (g.max_tokens > 0 && (int64_t)job->lr.n_ids + g.max_tokens > m->context)) {
    reply(r, 400, "invalid_request_error", kind == COH__JOB_CHAT ? "messages" : "prompt",
          "context_length_exceeded",
          "This model's maximum context length is %lld tokens. However, you requested "
          "%lld tokens (%zu in the prompt, %lld for the completion).",
          (long long)m->context, (long long)job->lr.n_ids + (g.max_tokens > 0 ? g.max_tokens : 0),
          job->lr.n_ids, (long long)(g.max_tokens > 0 ? g.max_tokens : 0));
    goto done;
  }
  job->lr.req.max_tokens =
      (int32_t)(g.max_tokens > 0 ? g.max_tokens : m->context - (int64_t)job->lr.n_ids);
  out->job = job;
  out->stream = g.stream;
  out->include_usage = g.include_usage;
  job = NULL;
  bad = 0;
done:
  coh__serve_job_free(job);
  coh__free(g.ids);
  free(llm_text);
  json_decref(llm);
  json_decref(root);
  return bad;
}
