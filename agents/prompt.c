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
 *
 * Chat mode (conversation memory): with any of the keys "system",
 * "messages", "history_tokens", "tools" or "template_vars" (and no
 * "prompt"), the agent sends chat requests ("messages", rendered by the
 * host with the model's chat template) instead of a filled template:
 *
 *   {
 *     "system": "You are Alice. Answer in one sentence.",
 *     "messages": [ {"role": "user", "content": "Is the sea wet?"},
 *                   {"role": "assistant", "content": "Yes."} ],
 *     "history_tokens": 512,
 *     "tools": [ {...} ], "template_vars": {"date_string": "26 Jul 2024"},
 *     "model": "demo", "max_tokens": 64, ...
 *   }
 *
 * Each request holds the system prompt, the configured "messages" (they
 * open the conversation), then the conversation: one user turn per
 * incoming message ({"role": "user", "name": SENDER, "content": TEXT}) and
 * one assistant turn per reply of the agent's own, oldest first.
 * "history_tokens" is passed to the host, which leaves the oldest turns out
 * until the rendered prompt fits (counted exactly with the model's
 * tokenizer; the system prompt always stays, the configured messages are
 * the oldest turns, so they go first).  The
 * conversation lives in the agent's linear memory, so checkpoints hold it
 * and replay rebuilds it; the agent keeps at most HIST_TURNS turns and
 * HIST_BYTES bytes of them, dropping the oldest first beyond that.
 *
 * Structured output (docs/agents.md, "Structured output"):
 *   "schema": {JSON Schema}   the output is constrained to JSON valid for it
 *     (the request's response_format json_schema); the text is sent only
 *     when the generation completed (finish "eos"); an output cut by
 *     max_tokens or a stop string is logged and emitted as
 *     "[llm error] incomplete output (finish F)" and not sent;
 *   "tools": [OpenAI function tools], "tool_choice": "auto" | "none" |
 *     "required" | {"type": "function", "function": {"name": N}},
 *     "parallel_tool_calls": bool   (chat mode): when the result carries
 *     tool calls the agent sends {"tool_calls": [{"name", "arguments"}]}
 *     (compact JSON) instead of the text; with "required" or a named tool a
 *     result without tool calls (cut by max_tokens) is an error as above;
 *   "max_ws_run": N   passed to the request (the whitespace bound of
 *     constrained output).
 */
#include <stdio.h>

#include "cohort_json.h"
#include "cohort_sdk.h"

#define MAX_CFG 8192
#define MAX_PENDING 64
#define PROMPT_MAX_TOKENS 1048576 /* as the llm request parser */

#define HIST_TURNS 256
#define HIST_BYTES 65536
#define MAX_REQ (HIST_BYTES + 2 * MAX_CFG + 1024)

static char cfg[MAX_CFG];
static cj_val conf;
static int chat; /* chat mode: see the top of this file */

/* The conversation (chat mode): each turn as the JSON object text of a
 * message, packed in hist; turn i is hist[off[i] .. off[i] + len[i]). */
static char hist[HIST_BYTES];
static size_t hist_used, n_turns, turn_off[HIST_TURNS], turn_len[HIST_TURNS];
static char role[1024], tmpl[2048], model[128];
static long max_tokens = 64;
static int reply = 1;
static int constrained; /* "schema", or a tool_choice that forces a call */
static int want_calls;  /* a tool_choice that forces a call */

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

/* Logs "prompt agent: config field 'FIELD' WHAT" and returns 1. */
static int bad_field(const char *field, const char *what) {
  static char msg[256];
  snprintf(msg, sizeof msg, "prompt agent: config field '%s' %s", field, what);
  coh_log(COH_ABI_LOG_ERROR, msg);
  return 1;
}

/* Chat mode's keys (the scenario loader checks them with file and line;
 * this repeats the shape checks for other hosts). */
static int chat_init(void) {
  static const char *const keys[] = {"system", "messages", "history_tokens", "tools",
                                     "template_vars"};
  static char field[64], scratch[MAX_CFG];
  cj_val v, it;
  size_t i;
  for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (cj_ok(cj_get(conf, keys[i]))) chat = 1;
  if (!chat) return 0;
  if (cj_ok(cj_get(conf, "prompt")))
    return bad_field("prompt", "cannot be used with system/messages/history_tokens "
                               "(chat mode renders the model's chat template)");
  v = cj_get(conf, "system");
  if (cj_ok(v) && (v.p[0] != '"' || cj_str(v, scratch, sizeof scratch) < 0))
    return bad_field("system", "must be a string");
  v = cj_get(conf, "messages");
  if (cj_ok(v) && v.p[0] != '[') return bad_field("messages", "must be a list of messages");
  for (i = 0, it = cj_first(v); cj_ok(it); it = cj_next(v, it), i++) {
    cj_val r = cj_get(it, "role"), c = cj_get(it, "content");
    snprintf(field, sizeof field, "messages[%zu].role", i);
    if (it.p[0] != '{' || !cj_ok(r) || r.p[0] != '"' || r.n < 3)
      return bad_field(field, "must be a non-empty string");
    snprintf(field, sizeof field, "messages[%zu].content", i);
    if (!cj_ok(c) || c.p[0] != '"') return bad_field(field, "must be a string");
  }
  v = cj_get(conf, "tools");
  if (cj_ok(v) && v.p[0] != '[') return bad_field("tools", "must be a list of objects");
  for (i = 0, it = cj_first(v); cj_ok(it); it = cj_next(v, it), i++)
    if (it.p[0] != '{') {
      snprintf(field, sizeof field, "tools[%zu]", i);
      return bad_field(field, "must be an object");
    }
  v = cj_get(conf, "template_vars");
  if (cj_ok(v) && v.p[0] != '{') return bad_field("template_vars", "must be an object");
  v = cj_get(conf, "tool_choice");
  if (cj_ok(v)) {
    if (!cj_ok(cj_get(conf, "tools"))) return bad_field("tool_choice", "needs 'tools'");
    if (v.p[0] == '{' || (v.n == 10 && !memcmp(v.p, "\"required\"", 10)))
      constrained = want_calls = 1;
  }
  v = cj_get(conf, "parallel_tool_calls");
  if (cj_ok(v) && !cj_ok(cj_get(conf, "tools")))
    return bad_field("parallel_tool_calls", "needs 'tools'");
  v = cj_get(conf, "history_tokens");
  if (cj_ok(v) && (cj_int(v, 0) < 1 || cj_int(v, 0) > 16777216 || v.n > 8))
    return bad_field("history_tokens", "must be an integer in [1, 16777216]");
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
  v = cj_get(conf, "schema");
  if (cj_ok(v)) {
    if (v.p[0] != '{') return bad_field("schema", "must be an object (a JSON Schema)");
    constrained = 1;
  }
  return chat_init();
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
                                     "repetition_penalty", "stop", "max_ws_run"};
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

/* Appends a turn (role, optional name, content) to the conversation,
 * dropping the oldest turns while it does not fit. */
static void remember(const char *role, const char *name, const char *content, size_t n) {
  static char turn[HIST_BYTES];
  size_t len = 0, i;
  len = (size_t)snprintf(turn, sizeof turn, "{\"role\":\"%s\"", role);
  if (name != NULL && name[0]) {
    len += (size_t)snprintf(turn + len, sizeof turn - len, ",\"name\":\"");
    len = cj_escape(turn, len, sizeof turn, name, strlen(name));
    len += (size_t)snprintf(turn + len, sizeof turn - len, "\"");
  }
  len += (size_t)snprintf(turn + len, sizeof turn - len, ",\"content\":\"");
  len = cj_escape(turn, len, sizeof turn - 3, content, n);
  memcpy(turn + len, "\"}", 3);
  len += 2;
  while (n_turns > 0 && (n_turns == HIST_TURNS || hist_used + len > HIST_BYTES)) {
    size_t drop = turn_len[0];
    memmove(hist, hist + drop, hist_used - drop);
    hist_used -= drop;
    for (i = 1; i < n_turns; i++) {
      turn_off[i - 1] = turn_off[i] - drop;
      turn_len[i - 1] = turn_len[i];
    }
    n_turns--;
  }
  if (hist_used + len > HIST_BYTES) return; /* a turn larger than the whole memory */
  memcpy(hist + hist_used, turn, len);
  turn_off[n_turns] = hist_used;
  turn_len[n_turns] = len;
  hist_used += len;
  n_turns++;
}

/* Appends ,"key":VALUE (VALUE's JSON text as configured) when present. */
static size_t add_raw(char *out, size_t len, size_t cap, const char *key) {
  cj_val v = cj_get(conf, key);
  if (!cj_ok(v) || len + strlen(key) + v.n + 5 >= cap) return len;
  return len + (size_t)snprintf(out + len, cap - len, ",\"%s\":%.*s", key, (int)v.n, v.p);
}

/* Appends the chat request's "messages" and chat fields. */
static size_t add_chat(char *out, size_t len, size_t cap) {
  static char sys[MAX_CFG];
  cj_val v = cj_get(conf, "system"), msgs = cj_get(conf, "messages"), it;
  const char *sep = "";
  size_t i;
  len += (size_t)snprintf(out + len, cap - len, ",\"messages\":[");
  if (cj_ok(v) && cj_str(v, sys, sizeof sys) >= 0) {
    len += (size_t)snprintf(out + len, cap - len, "{\"role\":\"system\",\"content\":\"");
    len = cj_escape(out, len, cap, sys, strlen(sys));
    len += (size_t)snprintf(out + len, cap - len, "\"}");
    sep = ",";
  }
  for (it = cj_first(msgs); cj_ok(it); it = cj_next(msgs, it)) {
    len += (size_t)snprintf(out + len, cap - len, "%s%.*s", sep, (int)it.n, it.p);
    sep = ",";
  }
  for (i = 0; i < n_turns && len + turn_len[i] + 2 < cap; i++) {
    len += (size_t)snprintf(out + len, cap - len, "%s%.*s", sep, (int)turn_len[i],
                            hist + turn_off[i]);
    sep = ",";
  }
  len += (size_t)snprintf(out + len, cap - len, "]");
  len = add_raw(out, len, cap, "tools");
  len = add_raw(out, len, cap, "tool_choice");
  len = add_raw(out, len, cap, "parallel_tool_calls");
  len = add_raw(out, len, cap, "template_vars");
  return add_raw(out, len, cap, "history_tokens");
}

static int on_message(const coh_event *ev) {
  static char req[MAX_REQ], text[8192];
  const char *input = (const char *)ev->body;
  size_t input_len = ev->body_len, len = 0;
  cj_val body = cj_parse((const char *)ev->body, ev->body_len), v;
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
  v = cj_get(conf, "schema");
  if (cj_ok(v) && len + v.n + 96 < sizeof req / 2)
    len += (size_t)snprintf(req + len, sizeof req - len,
                            ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                            "{\"name\":\"schema\",\"schema\":%.*s}}",
                            (int)v.n, v.p);
  if (chat) {
    remember("user", ev->header, input, input_len);
    len = add_chat(req, len, sizeof req - 2);
    memcpy(req + len, "}", 2);
  } else {
    len += (size_t)snprintf(req + len, sizeof req - len, ",\"prompt\":\"");
    len = fill(req, len, sizeof req - 3, ev->header, input, input_len);
    memcpy(req + len, "\"}", 3);
  }
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
  static char text[8192], match[256], to[64], msg[8400], fin[32];
  cj_val res = cj_parse((const char *)ev->body, ev->body_len);
  cj_val routes, it, calls;
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
  calls = cj_get(res, "tool_calls");
  if (cj_str(cj_get(res, "finish"), fin, sizeof fin) < 0) strcpy(fin, "?");
  if (constrained && (want_calls ? !cj_ok(calls) : strcmp(fin, "eos") != 0)) {
    /* never pass on output that the constraint did not complete */
    if (chat) remember("assistant", NULL, text, strlen(text));
    snprintf(msg, sizeof msg, "[llm error] incomplete output (finish %s): %s", fin, text);
    coh_log(COH_ABI_LOG_ERROR, msg);
    coh_emit_str(msg);
    return 0;
  }
  if (chat) remember("assistant", NULL, text, strlen(text));
  if (cj_ok(calls) && calls.n + 16 < sizeof text)
    snprintf(text, sizeof text, "{\"tool_calls\":%.*s}", (int)calls.n, calls.p);
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
