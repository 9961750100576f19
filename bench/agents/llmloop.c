/* llmloop.c — LLM benchmark agent: a closed-loop client.  Its first message
 * "K PROMPT" starts it: it asks the first model to continue PROMPT, and each
 * time a result arrives it asks again, `rounds` requests in all (config
 * {"rounds": R, "min_tokens": A, "max_tokens": B}).  Request r of client K
 * generates exactly A + (7K + 13r) mod (B - A + 1) tokens (ignore_eos), the
 * same lengths bench/orch_llm_bench.c uses, so both see the same work. */
#include <stdio.h>

#include "cohort_sdk.h"

static int rounds = 4, min_tok = 8, max_tok = 24;
static int client = 0, sent = 0;
static char prompt[160];

static int config_int(const char *cfg, const char *key, int dflt) {
  const char *p = strstr(cfg, key);
  if (p == NULL) return dflt;
  p = strchr(p + strlen(key), ':');
  return p ? atoi(p + 1) : dflt;
}

static int ll_init(const char *config, size_t len) {
  (void)len;
  rounds = config_int(config, "\"rounds\"", rounds);
  min_tok = config_int(config, "\"min_tokens\"", min_tok);
  max_tok = config_int(config, "\"max_tokens\"", max_tok);
  if (max_tok < min_tok) max_tok = min_tok;
  return 0;
}

static void ask(void) {
  char req[320];
  int n = min_tok + (7 * client + 13 * sent) % (max_tok - min_tok + 1);
  snprintf(req, sizeof req,
           "{\"prompt\":\"%s\",\"max_tokens\":%d,\"ignore_eos\":true,"
           "\"temperature\":0.8,\"top_k\":40}",
           prompt, n);
  sent++;
  if (coh_llm(req) < 0) coh_emit_str("llm refused");
}

static int ll_event(const coh_event *ev) {
  if (ev->kind == COH_ABI_EV_MESSAGE && sent == 0) {
    size_t n = ev->body_len < sizeof prompt - 1 ? ev->body_len : sizeof prompt - 1;
    size_t i;
    client = atoi((const char *)ev->body);
    for (i = 0; i < n; i++) {
      char c = (char)ev->body[i];
      prompt[i] = (c == '"' || c == '\\' || (unsigned char)c < 32) ? ' ' : c;
    }
    prompt[n] = '\0';
    ask();
  } else if (ev->kind == COH_ABI_EV_LLM && sent < rounds) {
    ask();
  }
  return 0;
}

COHORT_AGENT(ll_init, ll_event)
