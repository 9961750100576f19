/*
 * cmd_exec.c — `cohort exec MODULE.wasm`: runs one agent headless, as a
 * one-agent scenario on the tick machine (cohort/orch.h), so that exec and
 * `cohort run` share one agent host, one event loop and one seeding.
 *
 * The scenario (built in memory, parsed by coh_scenario_parse):
 *   seed: --seed; agents: [{id: agent, module: MODULE, config: --config,
 *   fuel: --fuel, memory_mb: --memory-mb}]; every --input a message from
 *   "exec" at tick 1 (taken one per tick: quantum 1); outside: ["*"], so a
 *   send to "exec", or to any name that is not the agent's, succeeds and is
 *   printed; with --model DIR one model (max_batch 1) that answers every
 *   request (default_model), without it every request fails with
 *   no_model_error; stop: on_exit agent, quiescence, max_ticks
 *   EXEC_MAX_TICKS.
 * A sink prints the committed events as JSON lines on stdout (send, emit,
 * log, llm, error, refused); the last line is the status:
 *   {"status":"ok"}  or  {"status":"trap","kind":"...","message":"..."}
 *   or {"status":"error",...} (cohort_init refused to start).
 * Exit 0 ok, 3 trap, 1 load/compile/runtime error, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_int.h"
#include "cohort/orch.h"
#include "cohort/scenario.h"
#include "util/util_int.h"

/* The agent's id in the scenario, and the name its inputs come from. */
#define EXEC_AGENT "agent"
#define EXEC_FROM "exec"
#define EXEC_MODEL "model"
#define EXEC_NO_MODEL "no model: pass --model DIR"
/* the bound on a run (an agent that keeps itself busy forever) */
#define EXEC_MAX_TICKS 1000000

enum { ST_RUNNING, ST_EXITED, ST_TRAP, ST_REFUSED_INIT };

/* The printing sink's state. */
typedef struct exec_out {
  int state;
  int64_t last_rc;       /* of the agent's last init/step event */
  json_t *trap;          /* the trap event's payload (ST_TRAP) */
  int write_error;
} exec_out;

/* ---- output ------------------------------------------------------------------ */

/* A JSON string from bytes that may not be UTF-8 (invalid sequences as
 * U+FFFD); NULL when out of memory. */
static json_t *jstr(const char *p, size_t n) {
  json_t *s = json_stringn(p, n);
  coh__buf b;
  if (s != NULL) return s;
  memset(&b, 0, sizeof b);
  coh__buf_add_utf8_lossy(&b, p, n);
  s = b.oom ? NULL : json_stringn(b.p ? b.p : "", b.n);
  coh__buf_free(&b);
  return s;
}

/* Prints o as one line and releases it; COH_ENOMEM when it could not be
 * built (a line left out would misreport the run). */
static int print_line(json_t *o, coh_err *err) {
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
  json_decref(o);
  if (s == NULL) return coh__err(err, COH_ENOMEM, "exec: out of memory printing an event");
  fputs(s, stdout);
  fputc('\n', stdout);
  free(s); /* jansson's allocation */
  return COH_OK;
}

/* The event's payload as JSON (the core writes these payloads), or NULL. */
static json_t *payload_json(const coh_jevent *ev) {
  return json_loadb(ev->payload, ev->payload_len, 0, NULL);
}

/* ---- the printing sink ------------------------------------------------------------ */

static int on_event(void *ud, const coh_jevent *ev, coh_err *err) {
  static const char *lv[] = {"debug", "info", "warn", "error"};
  exec_out *x = ud;
  const char *k = ev->kind;
  json_t *p = NULL, *o = NULL;
  int rc = COH_OK;
  if (x->state != ST_RUNNING) return COH_OK; /* the status is the last line */
  if (!strcmp(k, "message")) {
    if (!strcmp(ev->source, EXEC_FROM)) return COH_OK; /* an input */
    o = json_pack("{s:s,s:o,s:o}", "type", "send", "to", jstr(ev->target, strlen(ev->target)),
                  "data", jstr(ev->payload, ev->payload_len));
  } else if (!strcmp(k, "emit")) {
    o = json_pack("{s:s,s:o}", "type", "emit", "data", jstr(ev->payload, ev->payload_len));
  } else if (!strcmp(k, "log")) {
    const char *t;
    size_t n;
    if ((p = payload_json(ev)) == NULL) goto oom;
    t = json_string_value(json_object_get(p, "text"));
    n = t ? strlen(t) : 0;
    while (n > 0 && t[n - 1] == '\n') n--;
    o = json_pack("{s:s,s:s,s:o}", "type", "log", "level",
                  lv[json_integer_value(json_object_get(p, "level")) & 3], "message",
                  jstr(t ? t : "", n));
  } else if (!strcmp(k, "llm_request")) {
    if ((p = payload_json(ev)) == NULL) goto oom;
    o = json_pack("{s:s,s:O,s:O}", "type", "llm", "id", json_object_get(p, "id"), "request",
                  json_object_get(p, "request"));
  } else if (!strcmp(k, "llm_result")) {
    json_t *e;
    if ((p = payload_json(ev)) == NULL) goto oom;
    if ((e = json_object_get(p, "error")) == NULL) goto done; /* text: the agent's own */
    o = json_pack("{s:s,s:O,s:O}", "type", "error", "id", json_object_get(p, "id"), "message", e);
  } else if (!strcmp(k, "refused") || !strcmp(k, "spawn_refused")) {
    /* a send to a name that is neither the agent nor "exec" (or to a full
     * inbox), a spawn the run refused: the payload says why */
    if ((p = payload_json(ev)) == NULL) goto oom;
    o = json_pack("{s:s,s:s}", "type", k, "agent", ev->source);
    if (o && json_object_update(o, p)) goto oom;
  } else if (!strcmp(k, "init") || !strcmp(k, "step")) {
    if (strcmp(ev->source, EXEC_AGENT) != 0) goto done;
    if ((p = payload_json(ev)) == NULL) goto oom;
    x->last_rc = json_integer_value(json_object_get(p, "rc"));
    goto done;
  } else if (!strcmp(k, "trap") && !strcmp(ev->source, EXEC_AGENT)) {
    if ((p = payload_json(ev)) == NULL) goto oom;
    x->state = strcmp(json_string_value(json_object_get(p, "kind")), "refused_init") == 0
                   ? ST_REFUSED_INIT
                   : ST_TRAP;
    x->trap = p;
    return COH_OK;
  } else if (!strcmp(k, "exit") && !strcmp(ev->source, EXEC_AGENT)) {
    x->state = ST_EXITED;
    goto done;
  } else {
    goto done; /* timers, spawns: the agent's own business */
  }
  if (o == NULL) goto oom;
  rc = print_line(o, err);
  if (fflush(stdout) == EOF || ferror(stdout)) x->write_error = 1;
  goto done;
oom:
  json_decref(o);
  rc = coh__err(err, COH_ENOMEM, "exec: out of memory printing a %s event", k);
done:
  json_decref(p);
  return rc;
}

/* The last line: how the agent ended.  Returns the exit status. */
static int print_status(exec_out *x, coh_err *err) {
  json_t *o;
  int ex = COH_EXIT_OK;
  if (x->state == ST_TRAP) {
    o = json_pack("{s:s,s:O,s:O}", "status", "trap", "kind", json_object_get(x->trap, "kind"),
                  "message", json_object_get(x->trap, "message"));
    ex = COH_EXIT_TRAP;
  } else if (x->state == ST_REFUSED_INIT) {
    o = json_pack("{s:s,s:s,s:I}", "status", "error", "message", "cohort_init returned non-zero",
                  "rc", (json_int_t)x->last_rc);
    ex = COH_EXIT_RUNTIME;
  } else {
    o = json_pack("{s:s}", "status", "ok");
  }
  if (print_line(o, err)) return coh__runtime_error("exec", "%s", err->msg);
  return ex;
}

/* ---- the scenario ----------------------------------------------------------------- */

/* The one-agent scenario as JSON text (YAML's flow style): *out, caller
 * frees with free() (jansson's). */
static int scenario_text(const char *module, json_t *config, const char *const *inputs,
                         int ninputs, uint64_t seed, uint64_t fuel, int memory_mb,
                         const char *model, char **out, coh_err *err) {
  json_t *s, *agent, *msgs, *models;
  int i;
  *out = NULL;
  agent = json_pack("{s:s,s:s,s:O,s:I,s:i}", "id", EXEC_AGENT, "module", module, "config", config,
                    "fuel", (json_int_t)fuel, "memory_mb", memory_mb);
  msgs = json_array();
  s = json_pack("{s:s,s:I,s:{s:s,s:i},s:{s:I,s:b,s:s},s:[s],s:s,s:[o]}", "name", "exec", "seed",
                (json_int_t)seed, "policy", "kind", "round_robin", "quantum", 1, "stop",
                "max_ticks", (json_int_t)EXEC_MAX_TICKS, "quiescence", 1, "on_exit", EXEC_AGENT,
                "outside", "*", "no_model_error", EXEC_NO_MODEL, "agents", agent);
  if (s == NULL || msgs == NULL) goto oom;
  for (i = 0; i < ninputs; i++)
    /* the body is the input's JSON text itself (a string body is sent as is) */
    if (json_array_append_new(msgs, json_pack("{s:s,s:s,s:s,s:i}", "from", EXEC_FROM, "to",
                                              EXEC_AGENT, "body", inputs[i], "tick", 1)))
      goto oom;
  if (ninputs && json_object_set(s, "messages", msgs)) goto oom;
  if (model) {
    models = json_pack("[{s:s,s:s,s:i}]", "name", EXEC_MODEL, "path", model, "max_batch", 1);
    if (models == NULL || json_object_set_new(s, "models", models) ||
        json_object_set_new(s, "default_model", json_string(EXEC_MODEL)))
      goto oom;
  }
  *out = json_dumps(s, JSON_INDENT(1));
  json_decref(s);
  json_decref(msgs);
  return *out ? COH_OK : coh__err(err, COH_ENOMEM, "exec: out of memory");
oom:
  json_decref(s);
  json_decref(msgs);
  return coh__err(err, COH_ENOMEM, "exec: out of memory");
}

/* ---- command -------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: cohort exec MODULE.wasm [--config JSON] [--input JSON]...\n"
          "                   [--fuel N] [--memory-mb M] [--seed N]\n"
          "                   [--model DIR] [--cache-dir DIR]\n"
          "Runs one agent: init, then each input as a message event; prints "
          "one JSON\nline per emit/send/log/llm and a final status line.\n"
          "  --config JSON  the agent's config (a JSON object)\n"
          "  --fuel N       fuel per call (0 = unlimited; default 100000000)\n"
          "  --memory-mb M  linear memory cap in MiB (default 64)\n"
          "  --cache-dir D  compiled-module cache (default "
          "$XDG_CACHE_HOME/cohort\n                 or ~/.cache/cohort)\n"
          "Exit: 0 ok, 3 trap, 1 load/compile error, 2 usage.\n");
}

int coh__cmd_exec(int argc, char **argv) {
  const char *module = NULL, *model = NULL, *cache = NULL;
  const char **inputs = NULL;
  char *cache_buf = NULL, *text = NULL;
  json_t *config = NULL;
  int ninputs = 0, i, rc = COH_EXIT_RUNTIME, crc, memory_mb = 64;
  int64_t v;
  uint64_t seed = 0, fuel = 100000000;
  coh_scenario *scn = NULL;
  coh_run_options ro;
  coh_sim *sim = NULL;
  coh_sim_sink sink;
  exec_out x;
  coh_err err;
  memset(&x, 0, sizeof x);
  coh_err_clear(&err);
  inputs = coh__calloc((size_t)argc + 1, sizeof *inputs);
  if (inputs == NULL) return coh__runtime_error("exec", "out of memory");
  for (i = 1; i < argc; i++) {
    const char *f = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
      usage(stdout);
      rc = COH_EXIT_OK;
      goto done;
    }
    if (f[0] != '-' || f[1] == '\0') {
      if (module) {
        rc = coh__usage_error("exec", "unexpected argument '%s'", f);
        goto done;
      }
      module = f;
      continue;
    }
    if (val == NULL) {
      rc = coh__usage_error("exec", "%s needs a value", f);
      goto done;
    }
    i++;
    if (!strcmp(f, "--config") || !strcmp(f, "--input")) {
      json_error_t je;
      json_t *j = json_loads(val, JSON_DECODE_ANY, &je);
      if (j == NULL) {
        rc = coh__usage_error("exec", "%s: invalid JSON at column %d: %s", f, je.column, je.text);
        goto done;
      }
      if (f[2] == 'c') {
        if (!json_is_object(j)) {
          json_decref(j);
          rc = coh__usage_error("exec", "--config: expected a JSON object (an agent's "
                                "config, as in a scenario)");
          goto done;
        }
        json_decref(config);
        config = j;
      } else {
        json_decref(j);
        inputs[ninputs++] = val;
      }
    } else if (!strcmp(f, "--fuel")) {
      if (coh__parse_i64(val, 0, INT64_MAX, &v)) {
        rc = coh__usage_error("exec", "--fuel: expected an integer >= 0");
        goto done;
      }
      fuel = (uint64_t)v;
    } else if (!strcmp(f, "--memory-mb")) {
      if (coh__parse_i64(val, 1, 4095, &v)) {
        rc = coh__usage_error("exec", "--memory-mb: expected 1..4095");
        goto done;
      }
      memory_mb = (int)v;
    } else if (!strcmp(f, "--seed")) {
      if (coh__parse_i64(val, 0, INT64_MAX, &v)) {
        rc = coh__usage_error("exec", "--seed: expected an integer >= 0");
        goto done;
      }
      seed = (uint64_t)v;
    } else if (!strcmp(f, "--model")) {
      model = val;
    } else if (!strcmp(f, "--cache-dir")) {
      cache = val;
    } else {
      rc = coh__usage_error("exec", "unknown flag '%s'", f);
      goto done;
    }
  }
  if (module == NULL) {
    rc = coh__usage_error("exec", "no module given (cohort exec MODULE.wasm)");
    goto done;
  }
  if (cache == NULL) {
    cache_buf = coh__default_cache_dir();
    if (cache_buf == NULL) {
      rc = coh__usage_error("exec", "no cache folder: set --cache-dir, XDG_CACHE_HOME or HOME");
      goto done;
    }
    cache = cache_buf;
  }
  if (config == NULL && (config = json_object()) == NULL) {
    rc = coh__runtime_error("exec", "out of memory");
    goto done;
  }
  /* relative paths (module, model) resolve against the working folder */
  if (scenario_text(module, config, inputs, ninputs, seed, fuel, memory_mb, model, &text, &err) ||
      coh_scenario_parse(text, strlen(text), "exec", ".", &scn, &err)) {
    rc = coh__runtime_error("exec", "%s", err.msg);
    goto done;
  }
  memset(&ro, 0, sizeof ro);
  ro.mode = COH_RUN_FRESH;
  ro.workers = 1;
  ro.cache_dir = cache;
  memset(&sink, 0, sizeof sink);
  sink.name = "exec output";
  sink.ud = &x;
  sink.event = on_event;
  if (coh_sim_new(scn, &ro, &sim, &err) || coh_sim_add_sink(sim, &sink, &err)) {
    rc = coh__runtime_error("exec", "%s", err.msg);
    goto done;
  }
  crc = COH_OK;
  while (crc == COH_OK && coh_sim_stopped(sim) == NULL && !x.write_error)
    crc = coh_sim_tick(sim, &err);
  if (crc == COH_OK) crc = coh_sim_finish(sim, NULL, &err);
  if (crc != COH_OK) {
    rc = coh__runtime_error("exec", "%s", err.msg);
    goto done;
  }
  if (x.write_error) {
    rc = coh__runtime_error("exec", "cannot write to stdout");
    goto done;
  }
  if (x.state == ST_RUNNING && coh_sim_stopped(sim) != NULL &&
      !strcmp(coh_sim_stopped(sim), "max_ticks")) {
    rc = coh__runtime_error("exec", "over %d ticks: stopping", EXEC_MAX_TICKS);
    goto done;
  }
  rc = print_status(&x, &err);
done:
  fflush(stdout);
  coh_sim_free(sim);
  coh_scenario_free(scn);
  free(text); /* jansson's */
  json_decref(config);
  json_decref(x.trap);
  free(cache_buf); /* from coh__default_cache_dir */
  coh__free(inputs);
  return rc;
}
