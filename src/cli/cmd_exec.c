/*
 * cmd_exec.c — `cohort exec MODULE.wasm`: runs one agent headless.
 *
 * init (with --config), then every --input delivered in order as a message
 * event from "exec", then whatever the agent caused (LLM results, timers) in
 * logical-time order.  Each emit, send, log and llm request is printed as
 * one JSON line on stdout; the last line is the status:
 *   {"status":"ok"}  or  {"status":"trap","kind":"...","message":"..."}
 * Exit 0 ok, 3 trap, 1 load/compile/runtime error, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_int.h"
#include "cohort/agent.h"
#include "util/util_int.h"

#define MAX_EVENTS 100000

typedef struct ev {
  uint32_t kind;
  char *data;
  size_t len;
  int64_t due;
  int64_t seq;
} ev;

typedef struct kv {
  char *key, *val;
  size_t klen, vlen;
} kv;

typedef struct exec_ctx {
  ev *q;
  size_t nq, cap;
  int64_t seq;
  kv *kvs;
  size_t nkv;
  int64_t tick;
  int64_t next_req, next_timer;
  uint64_t seed;
  coh_agent_llm_fn llm_fn; /* NULL: no model */
  void *llm_ud;
  int oom;
} exec_ctx;

/* Inference for `--model DIR` is in exec_llm.c (coh__exec_llm_open). */

/* ---- output ------------------------------------------------------------------ */

/* A JSON string from bytes that may not be UTF-8 (invalid bytes as U+FFFD). */
static json_t *jstr(const char *p, size_t n) {
  json_t *s = json_stringn(p, n);
  char *clean;
  size_t i, j = 0;
  if (s != NULL) return s;
  clean = coh__malloc(n * 3 + 1);
  if (clean == NULL) return json_string("");
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x80) {
      clean[j++] = (char)c;
    } else {
      clean[j++] = (char)0xef;
      clean[j++] = (char)0xbf;
      clean[j++] = (char)0xbd;
    }
  }
  s = json_stringn(clean, j);
  coh__free(clean);
  return s ? s : json_string("");
}

static void print_line(json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s); /* jansson's allocation */
  }
  json_decref(o);
}

/* ---- event queue -------------------------------------------------------------- */

static int push(exec_ctx *x, uint32_t kind, const char *hdr, const char *body,
                size_t blen, int64_t due) {
  size_t hl = strlen(hdr);
  ev *e;
  if (x->nq == x->cap) {
    size_t nc = x->cap ? x->cap * 2 : 16;
    ev *nq = coh__realloc(x->q, nc * sizeof *nq);
    if (nq == NULL) return (x->oom = 1), -1;
    x->q = nq;
    x->cap = nc;
  }
  e = &x->q[x->nq];
  e->data = coh__malloc(hl + 1 + blen);
  if (e->data == NULL) return (x->oom = 1), -1;
  memcpy(e->data, hdr, hl + 1);
  if (blen) memcpy(e->data + hl + 1, body, blen);
  e->len = hl + 1 + blen;
  e->kind = kind;
  e->due = due;
  e->seq = x->seq++;
  x->nq++;
  return 0;
}

/* Removes and returns the next event: lowest (due, seq). */
static int pop(exec_ctx *x, ev *out) {
  size_t i, best = 0;
  if (x->nq == 0) return 0;
  for (i = 1; i < x->nq; i++)
    if (x->q[i].due < x->q[best].due ||
        (x->q[i].due == x->q[best].due && x->q[i].seq < x->q[best].seq))
      best = i;
  *out = x->q[best];
  memmove(&x->q[best], &x->q[best + 1], (x->nq - best - 1) * sizeof *x->q);
  x->nq--;
  return 1;
}

/* ---- host interface ----------------------------------------------------------- */

static void h_emit(void *ud, coh_agent *a, const uint8_t *d, size_t n) {
  json_t *o = json_object();
  (void)ud;
  (void)a;
  json_object_set_new(o, "type", json_string("emit"));
  json_object_set_new(o, "data", jstr((const char *)d, n));
  print_line(o);
}

static int32_t h_send(void *ud, coh_agent *a, const char *to, size_t tl,
                      const uint8_t *m, size_t ml) {
  json_t *o = json_object();
  (void)ud;
  (void)a;
  json_object_set_new(o, "type", json_string("send"));
  json_object_set_new(o, "to", jstr(to, tl));
  json_object_set_new(o, "data", jstr((const char *)m, ml));
  print_line(o);
  return COH_ABI_OK;
}

static void h_log(void *ud, coh_agent *a, int level, const char *m,
                  size_t n) {
  static const char *lv[] = {"debug", "info", "warn", "error"};
  json_t *o = json_object();
  (void)ud;
  (void)a;
  while (n > 0 && m[n - 1] == '\n') n--;
  json_object_set_new(o, "type", json_string("log"));
  json_object_set_new(o, "level", json_string(lv[level & 3]));
  json_object_set_new(o, "message", jstr(m, n));
  print_line(o);
}


static int64_t h_llm(void *ud, coh_agent *a, const char *req, size_t n) {
  exec_ctx *x = ud;
  int64_t id = ++x->next_req;
  char hdr[32];
  json_t *o = json_object(), *res = json_object();
  char *body;
  (void)a;
  json_object_set_new(o, "type", json_string("llm"));
  json_object_set_new(o, "id", json_integer(id));
  json_object_set_new(o, "request", jstr(req, n));
  print_line(o);
  if (x->llm_fn == NULL) {
    json_t *e = json_object();
    json_object_set_new(e, "type", json_string("error"));
    json_object_set_new(e, "id", json_integer(id));
    json_object_set_new(e, "message",
                        json_string("no model: pass --model DIR"));
    print_line(e);
    json_object_set_new(res, "error",
                        json_string("no model: pass --model DIR"));
  } else {
    char *text = NULL;
    size_t tl = 0;
    coh_err err;
    coh_err_clear(&err);
    if (x->llm_fn(x->llm_ud, req, n, coh__seed_derive(x->seed, 0, (uint64_t)id), &text, &tl,
                  &err) == COH_OK) {
      json_object_set_new(res, "text", jstr(text, tl));
      coh_agent_buf_free(text);
    } else {
      json_object_set_new(res, "error", json_string(err.msg));
    }
  }
  body = json_dumps(res, JSON_COMPACT); /* freed with free(): jansson's */
  json_decref(res);
  snprintf(hdr, sizeof hdr, "%lld", (long long)id);
  if (body == NULL || push(x, COH_ABI_EV_LLM, hdr, body, strlen(body),
                           x->tick + 1) != 0) {
    free(body);
    return COH_ABI_EFULL;
  }
  free(body);
  return id;
}

static int64_t h_now(void *ud, coh_agent *a) {
  (void)a;
  return ((exec_ctx *)ud)->tick;
}

static int64_t h_timer(void *ud, coh_agent *a, int64_t ticks) {
  exec_ctx *x = ud;
  char hdr[32];
  int64_t id = ++x->next_timer;
  (void)a;
  if (ticks < 0 || ticks > 1000000) return COH_ABI_EINVAL;
  snprintf(hdr, sizeof hdr, "%lld", (long long)id);
  if (push(x, COH_ABI_EV_TIMER, hdr, "", 0, x->tick + (ticks ? ticks : 1)))
    return COH_ABI_EFULL;
  return id;
}

static kv *find_kv(exec_ctx *x, const char *k, size_t kl) {
  size_t i;
  for (i = 0; i < x->nkv; i++)
    if (x->kvs[i].klen == kl && !memcmp(x->kvs[i].key, k, kl))
      return &x->kvs[i];
  return NULL;
}

static int32_t h_state_get(void *ud, coh_agent *a, const char *k, size_t kl,
                           uint8_t *v, size_t cap) {
  kv *e = find_kv(ud, k, kl);
  (void)a;
  if (e == NULL) return COH_ABI_ENOTFOUND;
  memcpy(v, e->val, e->vlen < cap ? e->vlen : cap);
  return (int32_t)e->vlen;
}

static int32_t h_state_put(void *ud, coh_agent *a, const char *k, size_t kl,
                           const uint8_t *v, size_t vl) {
  exec_ctx *x = ud;
  kv *e = find_kv(x, k, kl);
  char *nv;
  (void)a;
  if (vl > 1 << 20) return COH_ABI_ETOOBIG;
  if (e == NULL) {
    kv *n = coh__realloc(x->kvs, (x->nkv + 1) * sizeof *n);
    if (n == NULL) return COH_ABI_EFULL;
    x->kvs = n;
    e = &x->kvs[x->nkv];
    e->key = coh__malloc(kl ? kl : 1);
    if (e->key == NULL) return COH_ABI_EFULL;
    memcpy(e->key, k, kl);
    e->klen = kl;
    e->val = NULL;
    e->vlen = 0;
    x->nkv++;
  }
  nv = coh__malloc(vl ? vl : 1);
  if (nv == NULL) return COH_ABI_EFULL;
  memcpy(nv, v, vl);
  coh__free(e->val);
  e->val = nv;
  e->vlen = vl;
  return COH_ABI_OK;
}

/* ---- command -------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: cohort exec MODULE.wasm [--config JSON] [--input JSON]...\n"
          "                   [--fuel N] [--memory-mb M] [--seed N]\n"
          "                   [--model DIR] [--cache-dir DIR]\n"
          "Runs one agent: init, then each input as a message event; prints "
          "one JSON\nline per emit/send/log/llm and a final status line.\n"
          "  --fuel N       fuel per call (0 = unlimited; default 100000000)\n"
          "  --memory-mb M  linear memory cap in MiB (default 64)\n"
          "  --cache-dir D  compiled-module cache (default "
          "$XDG_CACHE_HOME/cohort\n                 or ~/.cache/cohort)\n"
          "Exit: 0 ok, 3 trap, 1 load/compile error, 2 usage.\n");
}

static int print_trap(const coh_agent_result *r) {
  json_t *o = json_object();
  json_object_set_new(o, "status", json_string("trap"));
  json_object_set_new(o, "kind", json_string(coh_trap_name(r->trap)));
  json_object_set_new(o, "message", json_string(r->message));
  print_line(o);
  return COH_EXIT_TRAP;
}

int coh__cmd_exec(int argc, char **argv) {
  const char *module = NULL, *config = "", *model = NULL, *cache = NULL;
  const char **inputs = NULL;
  char *cache_buf = NULL;
  int ninputs = 0, i, rc = COH_EXIT_RUNTIME, crc;
  int64_t v;
  coh_agent_opts ao;
  coh_agent_rt_opts ro;
  coh_agent_rt *rt = NULL;
  coh_module *m = NULL;
  coh_agent *a = NULL;
  coh_agent_result r;
  coh_err err;
  exec_ctx x;
  static const coh_agent_host host = {h_emit,  h_send,      h_log,
                                      h_llm,   h_now,       NULL /* random: the agent's own stream */,
                                      h_timer, h_state_get, h_state_put,
                                      NULL /* spawn: exec runs one agent */};
  memset(&x, 0, sizeof x);
  coh_agent_opts_default(&ao);
  coh_err_clear(&err);
  inputs = coh__calloc((size_t)argc + 1, sizeof *inputs);
  if (inputs == NULL) return coh__runtime_error("exec", "out of memory");
  for (i = 1; i < argc; i++) {
    const char *f = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
      usage(stdout);
      coh__free(inputs);
      return COH_EXIT_OK;
    }
    if (f[0] != '-' || f[1] == '\0') {
      if (module) {
        coh__free(inputs);
        return coh__usage_error("exec", "unexpected argument '%s'", f);
      }
      module = f;
      continue;
    }
    if (val == NULL) {
      coh__free(inputs);
      return coh__usage_error("exec", "%s needs a value", f);
    }
    i++;
    if (!strcmp(f, "--config") || !strcmp(f, "--input")) {
      json_error_t je;
      json_t *j = json_loads(val, JSON_DECODE_ANY, &je);
      if (j == NULL) {
        coh__free(inputs);
        return coh__usage_error("exec", "%s: invalid JSON at column %d: %s",
                                f, je.column, je.text);
      }
      json_decref(j);
      if (f[2] == 'c')
        config = val;
      else
        inputs[ninputs++] = val;
    } else if (!strcmp(f, "--fuel")) {
      if (coh__parse_i64(val, 0, INT64_MAX, &v)) {
        coh__free(inputs);
        return coh__usage_error("exec", "--fuel: expected an integer >= 0");
      }
      ao.fuel = (uint64_t)v;
    } else if (!strcmp(f, "--memory-mb")) {
      if (coh__parse_i64(val, 1, 4095, &v)) {
        coh__free(inputs);
        return coh__usage_error("exec", "--memory-mb: expected 1..4095");
      }
      ao.max_memory_pages = (uint32_t)(v * 16);
    } else if (!strcmp(f, "--seed")) {
      if (coh__parse_i64(val, 0, INT64_MAX, &v)) {
        coh__free(inputs);
        return coh__usage_error("exec", "--seed: expected an integer >= 0");
      }
      ao.seed = (uint64_t)v;
    } else if (!strcmp(f, "--model")) {
      model = val;
    } else if (!strcmp(f, "--cache-dir")) {
      cache = val;
    } else {
      coh__free(inputs);
      return coh__usage_error("exec", "unknown flag '%s'", f);
    }
  }
  if (module == NULL) {
    coh__free(inputs);
    return coh__usage_error("exec", "no module given (cohort exec "
                            "MODULE.wasm)");
  }
  /* seeded as `cohort run` seeds a scenario's first agent (index 0) and its
   * LLM requests, so that exec and a one-agent run of the same module with
   * the same seed draw the same random bytes and sampling seeds */
  x.seed = ao.seed;
  ao.seed = coh__seed_derive(x.seed, 0, UINT64_MAX);
  if (cache == NULL) {
    cache_buf = coh__default_cache_dir();
    if (cache_buf == NULL) {
      coh__free(inputs);
      return coh__usage_error("exec", "no cache folder: set --cache-dir, "
                              "XDG_CACHE_HOME or HOME");
    }
    cache = cache_buf;
  }
  if (model &&
      coh__exec_llm_open(model, &x.llm_fn, &x.llm_ud, &err) != COH_OK) {
    rc = coh__runtime_error("exec", "%s", err.msg);
    goto done;
  }
  memset(&ro, 0, sizeof ro);
  ro.cache_dir = cache;
  if (coh_agent_rt_new(&ro, &rt, &err) != COH_OK ||
      coh_module_load_file(rt, module, &m, &err) != COH_OK) {
    rc = coh__runtime_error("exec", "%s", err.msg);
    goto done;
  }
  if (coh_agent_new(m, &ao, &host, &x, &a, &err) != COH_OK) {
    rc = coh__runtime_error("exec", "%s", err.msg);
    goto done;
  }
  crc = coh_agent_init(a, config, strlen(config), &r);
  if (crc == COH_ETRAP) {
    rc = print_trap(&r);
    goto done;
  }
  if (crc != COH_OK || r.rc != 0) {
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("error"));
    json_object_set_new(o, "message",
                        json_string(crc ? coh_strerror(crc)
                                        : "cohort_init returned non-zero"));
    json_object_set_new(o, "rc", json_integer(r.rc));
    print_line(o);
    rc = COH_EXIT_RUNTIME;
    goto done;
  }
  for (i = 0; i < ninputs; i++)
    if (push(&x, COH_ABI_EV_MESSAGE, "exec", inputs[i], strlen(inputs[i]),
             0) != 0)
      break;
  for (i = 0; !r.exited; i++) {
    ev e;
    if (!pop(&x, &e)) break;
    if (i >= MAX_EVENTS) {
      coh__free(e.data);
      rc = coh__runtime_error("exec", "over %d events: stopping", MAX_EVENTS);
      goto done;
    }
    if (e.due > x.tick) x.tick = e.due;
    crc = coh_agent_step(a, e.kind, e.data, e.len, &r);
    coh__free(e.data);
    x.tick++;
    if (crc == COH_ETRAP) {
      rc = print_trap(&r);
      goto done;
    }
    if (crc != COH_OK) {
      rc = coh__runtime_error("exec", "step: %s", coh_strerror(crc));
      goto done;
    }
  }
  if (x.oom) {
    rc = coh__runtime_error("exec", "out of memory");
    goto done;
  }
  print_line(json_pack("{s:s}", "status", "ok"));
  rc = COH_EXIT_OK;
done:
  fflush(stdout);
  coh_agent_free(a);
  coh_module_free(m);
  coh_agent_rt_free(rt);
  if (x.llm_fn) coh__exec_llm_close(x.llm_ud);
  for (i = 0; (size_t)i < x.nq; i++) coh__free(x.q[i].data);
  coh__free(x.q);
  for (i = 0; (size_t)i < x.nkv; i++) {
    coh__free(x.kvs[i].key);
    coh__free(x.kvs[i].val);
  }
  coh__free(x.kvs);
  free(cache_buf); /* from coh__default_cache_dir */
  coh__free(inputs);
  return rc;
}
