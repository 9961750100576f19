/*
 * prompt.c — the stock prompt agent: usable from a scenario file with no
 * compiling, configured entirely by its JSON configuration:
 *
 *   {
 *     "role": "You are a terse assistant.",
 *     "prompt": "{role}\nUser ({from}): {input}\nAssistant:",
 *     "model": "tiny-llama",
 *     "max_tokens": 64,
 *     "temperature": 0.8, "top_k": 40, "stop": ["\n\n"],
 *     "routes": [ {"match": "ESCALATE", "to": "supervisor"} ],
 *     "reply": true
 *   }
 *
 * On a message it fills the template ({role}, {from}, {input}; {input} is
 * the message text: a JSON string input is decoded, anything else is used
 * verbatim) and requests a generation.  The sampling keys temperature,
 * top_k, top_p, min_p, repetition_penalty and stop (a string or a list of
 * strings) are passed to the request as written; the host validates them.  When the result arrives it emits the
 * text, sends it to the first route whose "match" occurs in the text, or
 * (with "reply": true, the default) back to the sender of the message.
 * A failed generation is logged and emitted as "[llm error] ...".
 */
#include <stdio.h>

#include "cohort_json.h"
#include "cohort_sdk.h"

#define MAX_CFG 8192
#define MAX_PENDING 64
#define PROMPT_MAX_TOKENS 1048576 /* as the llm request parser */

static char cfg[MAX_CFG];
static cj_val conf;
static char role[1024], tmpl[2048], model[128];
static long max_tokens = 64;
static int reply = 1;

static struct {
  int64_t id;
  char from[64];
} pending[MAX_PENDING];

/* Copies the string field key of conf into out (dflt when absent); logs
 * and returns 0 when it is not a string or does not fit. */
static int get_str(cj_val obj, const char *key, char *out, size_t cap,
                   const char *dflt) {
  static char msg[160], scratch[MAX_CFG]; /* a field fits the config */
  cj_val v = cj_get(obj, key);
  long n;
  if (!cj_ok(v)) {
    snprintf(out, cap, "%s", dflt);
    return 1;
  }
  /* cj_str truncates to fit: decode in full first to see the length */
  n = cj_str(v, scratch, sizeof scratch);
  if (n >= 0 && (size_t)n < cap) {
    memcpy(out, scratch, (size_t)n + 1);
    return 1;
  }
  snprintf(msg, sizeof msg, "prompt agent: config field '%s' must be a "
           "string of at most %zu bytes", key, cap - 1);
  coh_log(COH_ABI_LOG_ERROR, msg);
  return 0;
}

static int prompt_init(const char *config, size_t len) {
  cj_val v;
  if (len >= MAX_CFG) {
    coh_log(COH_ABI_LOG_ERROR, "prompt agent: configuration too large");
    return 1;
  }
  memcpy(cfg, config, len);
  cfg[len] = '\0';
  conf = cj_parse(cfg, len);
  if (len > 0 && (!cj_ok(conf) || conf.p[0] != '{')) {
    coh_log(COH_ABI_LOG_ERROR, "prompt agent: configuration is not a JSON "
                               "object");
    return 1;
  }
  /* The scenario loader checks these fields with file and line
   * (src/scenario/scenario.c, check_prompt_config); this repeats the checks
   * for `cohort exec` and any other host, so that a bad field fails init
   * instead of turning into a default or a refused request later. */
  if (!get_str(conf, "role", role, sizeof role, "") ||
      !get_str(conf, "prompt", tmpl, sizeof tmpl, "{role}\n{input}") ||
      !get_str(conf, "model", model, sizeof model, ""))
    return 1;
  v = cj_get(conf, "max_tokens");
  if (cj_ok(v)) {
    size_t i;
    int digits = v.n > 0 && v.n <= 7;
    for (i = 0; digits && i < v.n; i++)
      digits = v.p[i] >= '0' && v.p[i] <= '9';
    max_tokens = digits ? cj_int(v, -1) : -1;
    if (max_tokens < 0 || max_tokens > PROMPT_MAX_TOKENS) {
      coh_log(COH_ABI_LOG_ERROR, "prompt agent: config field 'max_tokens' "
                                 "must be an integer in [0, 1048576]");
      return 1;
    }
  }
  v = cj_get(conf, "reply");
  if (cj_ok(v) && v.n == 5 && !memcmp(v.p, "false", 5)) reply = 0;
  return 0;
}

/* Appends the template with its placeholders filled, JSON-escaped. */
static size_t fill(char *out, size_t len, size_t cap, const char *from,
                   const char *input, size_t input_len) {
  const char *p = tmpl;
  while (*p) {
    if (!strncmp(p, "{input}", 7)) {
      len = cj_escape(out, len, cap, input, input_len);
      p += 7;
    } else if (!strncmp(p, "{from}", 6)) {
      len = cj_escape(out, len, cap, from, strlen(from));
      p += 6;
    } else if (!strncmp(p, "{role}", 6)) {
      len = cj_escape(out, len, cap, role, strlen(role));
      p += 6;
    } else {
      len = cj_escape(out, len, cap, p, 1);
      p++;
    }
  }
  return len;
}

/* Appends ,"key":value for each sampling key present in the configuration,
 * copying the value's JSON text; a value that does not fit is left out and the
 * request keeps the host's default. */
static size_t add_sampling(char *out, size_t len, size_t cap) {
  static const char *const keys[] = {"temperature", "top_k", "top_p", "min_p",
                                     "repetition_penalty", "stop"};
  size_t i;
  for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    cj_val v = cj_get(conf, keys[i]);
    size_t need;
    if (!cj_ok(v)) continue;
    need = strlen(keys[i]) + v.n + 4;
    if (len + need >= cap / 2) continue; /* leave room for the prompt */
    len += (size_t)snprintf(out + len, cap - len, ",\"%s\":%.*s", keys[i],
                            (int)v.n, v.p);
  }
  return len;
}

static int on_message(const coh_event *ev) {
  static char req[16384], text[8192];
  const char *input = (const char *)ev->body;
  size_t input_len = ev->body_len, len = 0;
  cj_val body = cj_parse((const char *)ev->body, ev->body_len);
  int64_t id;
  int i;
  if (cj_ok(body) && body.p[0] == '"' && body.n == ev->body_len) {
    long n = cj_str(body, text, sizeof text);
    if (n >= 0) {
      input = text;
      input_len = (size_t)n;
    }
  }
  len = (size_t)snprintf(req, sizeof req, "{\"model\":\"");
  len = cj_escape(req, len, sizeof req, model, strlen(model));
  len += (size_t)snprintf(req + len, sizeof req - len,
                          "\",\"max_tokens\":%ld", max_tokens);
  len = add_sampling(req, len, sizeof req);
  len += (size_t)snprintf(req + len, sizeof req - len, ",\"prompt\":\"");
  len = fill(req, len, sizeof req - 3, ev->header, input, input_len);
  memcpy(req + len, "\"}", 3);
  id = coh_llm(req);
  if (id < 0) {
    coh_log(COH_ABI_LOG_ERROR, "prompt agent: llm request refused");
    return 1;
  }
  for (i = 0; i < MAX_PENDING; i++)
    if (pending[i].id == 0) {
      pending[i].id = id;
      snprintf(pending[i].from, sizeof pending[i].from, "%s", ev->header);
      break;
    }
  return 0;
}

static int on_llm(const coh_event *ev) {
  static char text[8192], match[256], to[64], msg[8400];
  cj_val res = cj_parse((const char *)ev->body, ev->body_len);
  cj_val routes, it;
  int64_t id = strtoll(ev->header, NULL, 10);
  char from[64] = "";
  int i;
  for (i = 0; i < MAX_PENDING; i++)
    if (pending[i].id == id) {
      snprintf(from, sizeof from, "%s", pending[i].from);
      pending[i].id = 0;
      break;
    }
  if (cj_str(cj_get(res, "text"), text, sizeof text) < 0) {
    if (cj_str(cj_get(res, "error"), text, sizeof text) < 0)
      strcpy(text, "malformed result");
    snprintf(msg, sizeof msg, "[llm error] %s", text);
    coh_log(COH_ABI_LOG_ERROR, msg);
    coh_emit_str(msg);
    return 0;
  }
  coh_emit_str(text);
  routes = cj_get(conf, "routes");
  for (it = cj_first(routes); cj_ok(it); it = cj_next(routes, it)) {
    if (cj_str(cj_get(it, "match"), match, sizeof match) < 0 ||
        cj_str(cj_get(it, "to"), to, sizeof to) < 0)
      continue;
    if (strstr(text, match) != NULL) {
      coh_send(to, text, strlen(text));
      return 0;
    }
  }
  if (reply && from[0]) coh_send(from, text, strlen(text));
  return 0;
}

static int prompt_event(const coh_event *ev) {
  if (ev->kind == COH_ABI_EV_MESSAGE) return on_message(ev);
  if (ev->kind == COH_ABI_EV_LLM) return on_llm(ev);
  return 0;
}

COHORT_AGENT(prompt_init, prompt_event)
