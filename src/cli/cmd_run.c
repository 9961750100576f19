/*
 * cmd_run.c — `cohort run`, `cohort replay` and `cohort resume`.
 *
 *   run SCENARIO      runs a scenario headless into a new journal, printing
 *                     the agents' emitted lines as they commit and a summary
 *                     whose last line is "digest: <hex>"
 *   replay RUN.db     re-executes from the journal's recorded inputs and
 *                     stops at the first divergence (exit 4), printing tick,
 *                     agent and the two differing events
 *   resume RUN.db     re-executes the committed part of a killed run
 *                     (verifying it) and continues it to the end
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_int.h"
#include "cohort/agent.h"
#include "cohort/journal.h"
#include "cohort/orch.h"
#include "util/util_int.h"

enum { COH_EXIT_DIVERGED = 4 };

typedef struct cli_opts {
  const char *target;   /* scenario or journal */
  const char *journal;
  const char *cache;
  int workers;
  int device_override;
  coh_device device;
  int no_model, quiet;
  int full;             /* resume --full: re-execute from tick 0 */
  const char *ui, *ui_token;
  const char *trace_prompts;
  int64_t prefix_cache_kib;  /* coh_run_options.prefix_cache_kib */
} cli_opts;

static int parse(const char *cmd, int argc, char **argv, cli_opts *o,
                 const char *usage) {
  int i;
  int64_t v;
  memset(o, 0, sizeof *o);
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return -1;
    } else if (!strcmp(a, "--workers")) {
      if (val == NULL || coh__parse_i64(val, 1, 1024, &v))
        return coh__usage_error(cmd, "--workers must be an integer in [1, 1024]");
      o->workers = (int)v;
      i++;
    } else if (!strcmp(a, "--trace-prompts") && !strcmp(cmd, "run")) {
      if (val == NULL) return coh__usage_error(cmd, "--trace-prompts needs a file name");
      o->trace_prompts = val;
      i++;
    } else if (!strcmp(a, "--journal") && !strcmp(cmd, "run")) {
      if (val == NULL) return coh__usage_error(cmd, "--journal needs a file name");
      o->journal = val;
      i++;
    } else if (!strcmp(a, "--cache-dir")) {
      if (val == NULL) return coh__usage_error(cmd, "--cache-dir needs a folder");
      o->cache = val;
      i++;
    } else if (!strcmp(a, "--device") && strcmp(cmd, "replay") != 0) {
      if (val == NULL || coh_device_parse(val, &o->device))
        return coh__usage_error(cmd, "--device must be auto, cpu or cuda");
      o->device_override = 1;
      i++;
    } else if (!strcmp(a, "--no-model") && !strcmp(cmd, "replay")) {
      o->no_model = 1;
    } else if (!strcmp(a, "--ui") && strcmp(cmd, "replay") != 0) {
      if (val == NULL) return coh__usage_error(cmd, "--ui needs ADDR:PORT (e.g. 127.0.0.1:8080)");
      o->ui = val;
      i++;
    } else if (!strcmp(a, "--ui-token") && strcmp(cmd, "replay") != 0) {
      if (val == NULL || *val == '\0') return coh__usage_error(cmd, "--ui-token needs a token");
      o->ui_token = val;
      i++;
    } else if (!strcmp(a, "--prefix-cache")) {
      if (val == NULL || coh__parse_size_kib(val, &v))
        return coh__usage_error(cmd, "--prefix-cache must be MiB, or KiB with a K suffix, "
                                     "at most 1 TiB (0: off)");
      o->prefix_cache_kib = v == 0 ? COH_RUN_PREFIX_CACHE_OFF : v;
      i++;
    } else if (!strcmp(a, "--quiet")) {
      o->quiet = 1;
    } else if (!strcmp(a, "--full") && !strcmp(cmd, "resume")) {
      o->full = 1;
    } else if (a[0] == '-' && a[1] == '-') {
      return coh__usage_error(cmd, "unknown option '%s' (see --help)", a);
    } else if (o->target == NULL) {
      o->target = a;
    } else {
      return coh__usage_error(cmd, "unexpected argument '%s'", a);
    }
  }
  if (o->ui_token && !o->ui) return coh__usage_error(cmd, "--ui-token needs --ui");
  if (o->target == NULL)
    return coh__usage_error(cmd, "%s", !strcmp(cmd, "run") ? "give a SCENARIO file" : "give a RUN.db journal");
  return 0;
}

/* The transcript sink's `reported` (see drive): emitted lines and traps, once
 * their tick is durable. */
static void print_event(void *ud, const coh_jevent *ev) {
  const cli_opts *o = ud;
  if (o->quiet) return;
  if (!strcmp(ev->kind, "emit")) {
    printf("[%lld] %s: %.*s\n", (long long)ev->tick, ev->source, (int)ev->payload_len,
           (const char *)ev->payload);
  } else if (!strcmp(ev->kind, "trap")) {
    printf("[%lld] %s TRAPPED: %.*s\n", (long long)ev->tick, ev->source, (int)ev->payload_len,
           (const char *)ev->payload);
  } else {
    return;
  }
  /* a closed stdout (EPIPE; SIGPIPE is ignored) stops the run like a signal */
  if (fflush(stdout) == EOF || ferror(stdout)) coh__interrupt_request(SIGPIPE);
}

static void print_summary(const coh_run_summary *s) {
  printf("--\n");
  printf("ticks: %lld (stopped: %s)\n", (long long)s->ticks, s->stop_reason);
  printf("events: %lld, agent steps: %lld, traps: %lld\n", (long long)s->events,
         (long long)s->agent_steps, (long long)s->traps);
  printf("llm: %lld requests, %lld tokens, %.1f tokens/s\n", (long long)s->llm_requests,
         (long long)s->llm_tokens, s->tokens_per_second);
  if (s->prefix_lookups > 0)
    printf("prefix cache: %lld of %lld prompt chunks loaded, %lld blocks evicted\n",
           (long long)s->prefix_hits, (long long)s->prefix_lookups,
           (long long)s->prefix_evictions);
  printf("wall: %.2f s\n", s->wall_seconds);
  printf("digest: %s\n", s->digest);
}

static void print_divergence(const coh_run_summary *s) {
  printf("divergence at tick %lld, agent %s\n", (long long)s->diverged_tick, s->diverged_agent);
  printf("  journal:   %s\n", s->diverged_expected);
  printf("  re-run:    %s\n", s->diverged_actual);
}

/* Fills cache dir and prompt module; returns 0 or an exit status. */
static int environment(const char *cmd, cli_opts *c, coh_run_options *ro,
                       char **cache_buf, char **prompt_buf) {
  if (c->cache == NULL) {
    *cache_buf = coh__default_cache_dir();
    if (*cache_buf == NULL)
      return coh__usage_error(cmd, "no cache folder: set --cache-dir, XDG_CACHE_HOME or HOME");
    c->cache = *cache_buf;
  }
  *prompt_buf = coh__exe_relative("agents/prompt.wasm");
  ro->cache_dir = c->cache;
  ro->prompt_module = *prompt_buf;
  ro->workers = c->workers;
  ro->device_override = c->device_override;
  ro->device = c->device;
  ro->no_model = c->no_model;
  ro->prefix_cache_kib = c->prefix_cache_kib;
  ro->interrupted = coh__interrupt_check;
  return 0;
}

/* The driver of run, replay and resume: the tick machine, plus the sinks
 * the CLI adds itself (the journal and the comparator come with the
 * options' mode): the transcript printer, unless --quiet (a sink that only
 * hears what the run reports, so it shows durable events only; with no
 * transcript the journal writer walks no event for it), and the dashboard
 * with --ui; then every tick until the run stops. */
static int drive(const char *mode, const coh_scenario *s, const coh_run_options *ro,
                 const cli_opts *c, coh_monitor *mon, coh_run_summary *sum, coh_err *err) {
  coh_sim *sim;
  coh_sim_sink k;
  int rc;
  memset(sum, 0, sizeof *sum);
  sum->diverged_tick = -1;
  if ((rc = coh_sim_new(s, ro, &sim, err))) return rc;
  if (!c->quiet) {
    memset(&k, 0, sizeof k);
    k.name = "transcript";
    k.ud = (void *)c;
    k.reported = print_event;
    rc = coh_sim_add_sink(sim, &k, err);
  }
  if (rc == COH_OK && mon != NULL &&
      (rc = coh_sim_monitor_sink(mon, sim, s->name, mode, ro->journal, &k, err)) == COH_OK &&
      (rc = coh_sim_add_sink(sim, &k, err)) != COH_OK) {
    coh_err ignored;
    (void)k.close(k.ud, 1, &ignored); /* not in the table: close it here */
  }
  if (rc != COH_OK) {
    coh_sim_free(sim); /* finishes it, its error ignored: ours is reported */
    return rc;
  }
  return coh_sim_run(sim, sum, err);
}

/* A run stopped by a signal or a closed stdout: the journal (closed by the
 * caller) holds ticks 0..N-1; says how to go on and returns 128 + signal. */
static int report_interrupt(const char *cmd, const coh_run_summary *sum, const char *file) {
  int sig = coh__interrupt_pending();
  fprintf(stderr, "cohort %s: interrupted at tick %lld; continue with: cohort resume %s\n", cmd,
          (long long)sum->ticks, file);
  return 128 + (sig ? sig : SIGINT);
}

/* Starts the dashboard server when --ui was given; prints where it is. */
static int start_ui(const char *cmd, const cli_opts *c, coh_monitor **mon) {
  coh_monitor_opts mo;
  coh_err err;
  *mon = NULL;
  if (c->ui == NULL) return 0;
  mo.listen = c->ui;
  mo.token = c->ui_token;
  if (coh_monitor_start(&mo, mon, &err))
    return coh__runtime_error(cmd, "--ui %s: %s", c->ui, err.msg);
  fprintf(stderr, "cohort %s: dashboard at %s\n", cmd, coh_monitor_url(*mon));
  return 0;
}

/* After the run: the dashboard stays up until a signal or a stop control
 * (a signal posts STOP, see signals.c). */
static void linger_ui(const char *cmd, coh_monitor *mon) {
  if (mon == NULL || coh__interrupt_pending()) return;
  fprintf(stderr, "cohort %s: finished; the dashboard stays at %s until Ctrl-C\n", cmd,
          coh_monitor_url(mon));
  while (coh_monitor_wait_control(mon) != COH_CONTROL_STOP) {
  }
}

/* A fresh journal name: runs/<scenario name>-<n>.db, the first free n. */
static char *default_journal(const coh_scenario *s) {
  char *p = malloc(strlen(s->name) + 64);
  int n;
  if (p == NULL) return NULL;
  mkdir("runs", 0777);
  for (n = 1; n < 100000; n++) {
    sprintf(p, "runs/%s-%d.db", s->name, n);
    if (access(p, F_OK) != 0) return p;
  }
  free(p);
  return NULL;
}

static const char run_usage[] =
    "usage: cohort run SCENARIO.yaml [--workers N] [--journal FILE] [--device auto|cpu|cuda]\n"
    "                  [--cache-dir DIR] [--quiet] [--ui ADDR:PORT [--ui-token T]]\n"
    "                  [--trace-prompts FILE] [--prefix-cache SIZE]\n"
    "Runs a scenario headless: prints emitted lines as they commit, then a summary\n"
    "whose last line is `digest: <hex>`.  The journal (default runs/NAME-N.db)\n"
    "can be replayed, resumed and inspected.  --trace-prompts FILE writes one JSON\n"
    "line per LLM request with the exact text the engine tokenized (see\n"
    "docs/inference.md).  --prefix-cache SIZE bounds each model's prefix cache\n"
    "(MiB, or KiB with a K suffix; default 256; 0: off); it never changes a result\n"
    "or the digest.\n";

int coh__cmd_run(int argc, char **argv) {
  cli_opts c;
  coh_run_options ro;
  coh_run_summary sum;
  coh_scenario *s = NULL;
  coh_journal *j = NULL;
  coh_monitor *mon = NULL;
  coh_run_record *rec = NULL;
  coh_err err;
  char *cache_buf = NULL, *prompt_buf = NULL, *jpath = NULL;
  FILE *trace = NULL;
  int rc, status = COH_EXIT_RUNTIME;

  if ((rc = parse("run", argc, argv, &c, run_usage))) return rc < 0 ? COH_EXIT_OK : rc;
  memset(&ro, 0, sizeof ro);
  if ((rc = environment("run", &c, &ro, &cache_buf, &prompt_buf))) return rc;
  if (c.trace_prompts && (trace = fopen(c.trace_prompts, "w")) == NULL) {
    coh__runtime_error("run", "--trace-prompts %s: %s", c.trace_prompts, strerror(errno));
    goto done;
  }
  ro.trace_prompts = trace;
  if (coh__interrupt_install()) {
    coh__runtime_error("run", "cannot set up signal handling");
    goto done;
  }
  if (coh_scenario_load(c.target, &s, &err)) {
    coh__runtime_error("run", "%s", err.msg);
    goto done;
  }
  if (coh_run_record_new(s, &ro, &rec, &err)) {
    coh__runtime_error("run", "%s", err.msg);
    goto done;
  }
  jpath = c.journal ? strdup(c.journal) : default_journal(s);
  if (jpath == NULL) {
    coh__runtime_error("run", "cannot choose a journal file name");
    goto done;
  }
  if (coh__create_journal(jpath, s, rec, &j, &err)) {
    coh__runtime_error("run", "%s", err.msg);
    goto done;
  }
  ro.mode = COH_RUN_FRESH;
  ro.modules = rec->modules; /* the bytes that were hashed and stored */
  ro.journal = j;
  if (!c.quiet) fprintf(stderr, "cohort run: journal %s\n", jpath);
  if (start_ui("run", &c, &mon)) goto done;
  coh__interrupt_monitor(mon);
  if (drive("run", s, &ro, &c, mon, &sum, &err)) {
    coh__runtime_error("run", "%s (the journal %s holds every committed tick)", err.msg, jpath);
    goto done;
  }
  if (!strcmp(sum.stop_reason, "interrupted")) {
    coh_journal_meta_put(j, "status", "interrupted", 11, &err);
    coh_journal_close(j);
    j = NULL;
    status = report_interrupt("run", &sum, jpath);
    goto done;
  }
  coh_journal_meta_put(j, "status", !strcmp(sum.stop_reason, "stopped") ? "stopped" : "complete",
                       !strcmp(sum.stop_reason, "stopped") ? 7 : 8, &err);
  print_summary(&sum);
  fflush(stdout);
  linger_ui("run", mon);
  status = COH_EXIT_OK;
done:
  coh__interrupt_monitor(NULL);
  coh_monitor_stop(mon);
  coh__interrupt_uninstall();
  coh_journal_close(j);
  coh_run_record_free(rec);
  coh_scenario_free(s);
  free(jpath);
  free(cache_buf);
  free(prompt_buf);
  if (trace) fclose(trace);
  return status;
}

static const char replay_usage[] =
    "usage: cohort replay RUN.db [--no-model] [--workers N] [--cache-dir DIR]\n"
    "                     [--prefix-cache SIZE]\n"
    "Verifies the journal's chain (exit 1 naming the first bad record), then\n"
    "re-executes the run from its recorded inputs (modules from the journal, models\n"
    "checked by hash) and compares every event with the journal; stops at the first\n"
    "divergence (exit 4).  --no-model takes LLM results from the journal instead of\n"
    "running the model.\n";

static const char resume_usage[] =
    "usage: cohort resume RUN.db [--workers N] [--device D] [--cache-dir DIR] [--quiet]\n"
    "                     [--prefix-cache SIZE] [--full]\n"
    "Continues a run that was killed: verifies the journal's chain from the\n"
    "latest checkpoint on (exit 1 naming the first bad record), restores the\n"
    "agents, the orchestrator and the LLM requests in flight from it,\n"
    "re-executes the committed ticks after it (comparing them with the\n"
    "journal), then runs on, appending, to the end.  --full verifies the whole\n"
    "chain and re-executes every committed tick from tick 0.\n";

/* Resume appends checkpoints in this cohort's format to the journal's
 * chain: refuse a journal whose checkpoints are of an older format (the
 * chain would hold both, and the digest would match no uninterrupted run).
 * The latest checkpoint tick is checked; replay and inspect still read
 * such a journal. */
typedef struct ck_check {
  coh_err err;
  char agent[128];
} ck_check;

static int ck_check_one(void *ud, const char *agent, const void *state, size_t len) {
  ck_check *c = ud;
  /* the orchestrator's state: its format is checked where it is used */
  if (!strcmp(agent, COH_JOURNAL_ORCH_CHECKPOINT)) return 0;
  if (coh_agent_checkpoint_format(state, len, &c->err) == COH_OK) return 0;
  snprintf(c->agent, sizeof c->agent, "%s", agent);
  return 1;
}

static int checkpoints_resumable(const char *cmd, coh_journal *j, const char *path) {
  ck_check c;
  coh_err err;
  int64_t tick = -1;
  int rc;
  memset(&c, 0, sizeof c);
  if (coh_journal_checkpoint_tick(j, INT64_MAX, &tick, &err)) {
    coh__runtime_error(cmd, "%s: %s", path, err.msg);
    return -1;
  }
  if (tick < 0) return 0;
  rc = coh_journal_checkpoints(j, tick, ck_check_one, &c, &err);
  if (rc == 1) {
    coh__runtime_error(cmd,
                       "%s: agent '%s', tick %lld: %s; the journal was written by an "
                       "older cohort and cannot be resumed by this one (replay and "
                       "inspect still read it)",
                       path, c.agent, (long long)tick, c.err.msg);
    return -1;
  }
  if (rc) {
    coh__runtime_error(cmd, "%s: %s", path, err.msg);
    return -1;
  }
  return 0;
}

static int replay_or_resume(const char *cmd, int argc, char **argv) {
  int resume = !strcmp(cmd, "resume");
  cli_opts c;
  coh_run_options ro;
  coh_run_summary sum;
  coh_scenario *s = NULL;
  coh_journal *j = NULL;
  coh_monitor *mon = NULL;
  coh_run_record *rec = NULL;
  coh_err err;
  char *cache_buf = NULL, *prompt_buf = NULL, *status_text = NULL;
  size_t sl;
  int rc, status = COH_EXIT_RUNTIME;

  if ((rc = parse(cmd, argc, argv, &c, resume ? resume_usage : replay_usage)))
    return rc < 0 ? COH_EXIT_OK : rc;
  memset(&ro, 0, sizeof ro);
  if ((rc = environment(cmd, &c, &ro, &cache_buf, &prompt_buf))) return rc;
  if (!resume) {
    c.quiet = 1; /* a replay prints its verdict, not the transcript */
    ro.interrupted = NULL; /* a replay writes nothing: a signal simply ends it */
  } else if (coh__interrupt_install()) {
    coh__runtime_error(cmd, "cannot set up signal handling");
    goto done;
  }
  /* The chain is verified before anything in the journal is used: whole
   * for a replay, from its checkpoint on for a resume (docs/journal.md). */
  if (resume ? coh__journal_open_resumable(cmd, c.target, c.full, &j)
             : coh__journal_open_verified(cmd, c.target, &j))
    goto done;
  if (coh_run_record_load(j, &ro, &s, &rec, &err)) {
    coh__runtime_error(cmd, "%s: %s", c.target, err.msg);
    goto done;
  }
  ro.modules = rec->modules; /* from the journal, not from any file */
  if (resume && coh_journal_meta_get(j, "status", &status_text, &sl, &err) == COH_OK &&
      !strcmp(status_text, "complete")) {
    printf("the run in %s is complete; nothing to resume\n", c.target);
    status = COH_EXIT_OK;
    goto done;
  }
  if (resume && checkpoints_resumable(cmd, j, c.target)) goto done;
  ro.mode = resume ? COH_RUN_RESUME : COH_RUN_REPLAY;
  ro.resume_full = c.full;
  ro.journal = j;
  if (resume && start_ui(cmd, &c, &mon)) goto done;
  coh__interrupt_monitor(mon);
  if (drive(resume ? "resume" : "replay", s, &ro, &c, mon, &sum, &err)) {
    coh__runtime_error(cmd, "%s", err.msg);
    goto done;
  }
  if (resume) {
    if (sum.resumed_from >= 0)
      printf("resumed from checkpoint at tick %lld, re-executed %lld ticks\n",
             (long long)sum.resumed_from, (long long)sum.reexecuted);
    else
      printf("resumed from tick 0 (%s), re-executed %lld ticks\n",
             sum.resume_note ? sum.resume_note : "no checkpoint", (long long)sum.reexecuted);
  }
  if (resume && !strcmp(sum.stop_reason, "interrupted")) {
    coh_journal_meta_put(j, "status", "interrupted", 11, &err);
    coh_journal_close(j);
    j = NULL;
    status = report_interrupt(cmd, &sum, c.target);
    goto done;
  }
  if (sum.diverged_tick >= 0) {
    print_divergence(&sum);
    status = COH_EXIT_DIVERGED;
    goto done;
  }
  if (resume) {
    coh_journal_meta_put(j, "status", "complete", 8, &err);
    print_summary(&sum);
    fflush(stdout);
    linger_ui(cmd, mon);
  } else {
    printf("replay matches: %lld events over %lld ticks\n", (long long)sum.events,
           (long long)sum.ticks);
    printf("digest: %s\n", sum.digest);
  }
  status = COH_EXIT_OK;
done:
  coh__interrupt_monitor(NULL);
  coh_monitor_stop(mon);
  coh__interrupt_uninstall();
  coh_free(status_text);
  coh_journal_close(j);
  coh_run_record_free(rec);
  coh_scenario_free(s);
  free(cache_buf);
  free(prompt_buf);
  return status;
}

int coh__cmd_replay(int argc, char **argv) {
  int rc = coh__serve_replay_maybe(argc, argv); /* a served session's journal */
  return rc >= 0 ? rc : replay_or_resume("replay", argc, argv);
}
int coh__cmd_resume(int argc, char **argv) { return replay_or_resume("resume", argc, argv); }
