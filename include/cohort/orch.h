/*
 * cohort/orch.h — the deterministic orchestrator: runs a scenario's agents
 * and models tick by tick on a logical clock, journals every committed
 * event, and prints the run digest.
 *
 * A tick t:
 *   1. events due at t (messages and LLM results committed at t-1, timers
 *      due at t, scenario messages for t) are in the agents' inboxes, in
 *      canonical order;
 *   2. LLM requests committed at t-1 are admitted to their model's engine,
 *      fairly across agents (round-robin over agents with waiting requests,
 *      while the engine has free batch slots);
 *   3. the policy picks the agents that step; workers run their steps in
 *      parallel while each model's engine thread runs one engine step;
 *   4. the orchestrator commits, in agent-index order, every step's outputs
 *      (messages, emits, logs, LLM requests, timers, traps) and then each
 *      engine's completions, journals them in one transaction, and routes
 *      them to tick t+1.
 * Tick 0 initialises the agents.  Nothing depends on wall time or on the
 * number of workers, so the journal's deterministic columns — and the
 * digest — are the same for any worker count.
 */
#ifndef COHORT_ORCH_H
#define COHORT_ORCH_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "cohort/common.h"
#include "cohort/journal.h"
#include "cohort/jwriter.h"
#include "cohort/monitor.h"
#include "cohort/scenario.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum coh_run_mode {
  COH_RUN_FRESH = 0,   /* a new run, appending to a new journal */
  COH_RUN_REPLAY = 1,  /* re-execute and compare with `journal`; write nothing */
  COH_RUN_RESUME = 2   /* re-execute the committed prefix of `journal`
                          (verifying it), then continue appending to it */
} coh_run_mode;

/* An agent module's bytes (borrowed). */
typedef struct coh_run_module {
  const uint8_t *bytes;
  size_t len;
} coh_run_module;

/* Called for every committed event, in commit order (for transcripts). */
typedef void (*coh_run_event_fn)(void *ud, const coh_jevent *ev);

#define COH_RUN_PREFIX_CACHE_OFF (-1)

typedef struct coh_run_options {
  coh_run_mode mode;
  coh_journal *journal;      /* borrowed: FRESH/RESUME append here; REPLAY reads */
  int workers;               /* 0: online cores - 1, at least 1 */
  const char *cache_dir;     /* compiled-module cache (required) */
  const char *prompt_module; /* the stock prompt agent's .wasm (for kind: prompt) */
  const coh_run_module *modules; /* NULL: each agent's module is read from
                                    its path; else one per scenario agent
                                    (a coh_run_record's), borrowed */
  int device_override;       /* 1: use `device` for every model */
  coh_device device;
  int no_model;              /* REPLAY: LLM results come from the journal */
  /* Called for every committed event, in commit order: while appending,
   * once the event's tick is durable in the journal (so a transcript never
   * shows what a kill -9 could lose); while comparing with a journal, as
   * the event is checked. */
  coh_run_event_fn on_event;
  void *ud;
  /* May be NULL (defaults).  The journal writer's bounds and test hook
   * (cohort/jwriter.h); its report fields are ignored (on_event is used). */
  const coh_jwriter_opts *journal_writer;
  coh_monitor *monitor;      /* borrowed, may be NULL: snapshots, trace spans,
                                and pause/resume/step/stop between ticks */
  /* May be NULL.  Asked before every tick (and when a paused run receives
   * STOP): nonzero stops the run there, with stop reason "interrupted"; the
   * ticks before are committed.  The CLI's signal handling answers it. */
  int (*interrupted)(void *interrupted_ud);
  void *interrupted_ud;
  /* May be NULL.  One JSON line per LLM request the engine admits, with the
   * exact text it tokenized: {"agent","request","model","chat","dropped",
   * "tokens","text"} (a debugging aid, `cohort run --trace-prompts FILE`;
   * not journaled). */
  FILE *trace_prompts;
  /* The prefix cache's budget per model, in KiB: 0 the engine's default
   * (COH_PREFIX_CACHE_DEFAULT_MB MiB), COH_RUN_PREFIX_CACHE_OFF none.  It
   * cannot change a result, so it is not part of the run's inputs (not
   * journaled, not in the digest). */
  int64_t prefix_cache_kib;
} coh_run_options;

typedef struct coh_run_summary {
  int64_t ticks;             /* ticks run (the last tick + 1) */
  int64_t events;            /* committed events */
  int64_t agent_steps;
  int64_t llm_requests, llm_tokens;
  int64_t traps;
  double wall_seconds;
  double tokens_per_second;
  /* the prefix cache, summed over models (engine statistics; not part of
   * the digest): full prompt chunks looked up, loaded from it, evicted */
  int64_t prefix_lookups, prefix_hits, prefix_evictions;
  char digest[65];
  /* REPLAY/RESUME: where the re-execution first differed (tick -1: none) */
  int64_t diverged_tick;
  char diverged_agent[80];
  char diverged_expected[512];
  char diverged_actual[512];
  const char *stop_reason;   /* "max_ticks" | "quiescence" | "exit" | "journal_end" |
                                "divergence" | "stopped" (a monitor's stop) |
                                "interrupted" (o->interrupted said so) */
} coh_run_summary;

/* Runs scenario s.  Errors: module/model load errors (naming the agent or
 * model and the file), COH_EJOURNAL (journal I/O), COH_EINVAL (options).
 * A divergence in REPLAY/RESUME is not an error: it is reported in the
 * summary (diverged_tick >= 0) and the run stops there. */
int coh_run(const coh_scenario *s, const coh_run_options *o,
            coh_run_summary *sum, coh_err *err);

/* A run's record: the genesis (the canonical description of its inputs,
 * from which the journal's hash chain starts: journal format and cohort
 * versions, seed, the scenario text's SHA-256, every agent module's SHA-256,
 * every model's identity and files, the inference configuration) and the
 * blobs that make the journal self-contained (the scenario text and the
 * distinct agent modules).  src/sched/inputs.c documents the format. */
struct coh_run_record_priv;
typedef struct coh_run_record {
  char *genesis;             /* compact JSON */
  size_t genesis_len;
  coh_run_module *modules;   /* one per scenario agent (s->agents[i]); pass
                                as coh_run_options.modules */
  size_t n_modules;
  coh_jblob *blobs;          /* for coh_journal_init.blobs */
  size_t n_blobs;
  struct coh_run_record_priv *priv;
} coh_run_record;

/* A fresh run's record: reads every agent's module (a regular file of at
 * most 64 MiB; the prompt agent's is o->prompt_module) once, and hashes
 * every regular file of every model folder.  The record borrows s->text:
 * s must outlive it.  Errors name the scenario line and the agent or model.
 * *out: caller frees with coh_run_record_free. */
int coh_run_record_new(const coh_scenario *s, const coh_run_options *o,
                       coh_run_record **out, coh_err *err);

/* Replay and resume: rebuilds the scenario and the record from a journal
 * (which the caller has verified) — the scenario from its recorded text,
 * the modules from the journal's blobs, so no module file is read — and
 * checks this machine against the genesis: every model folder's files
 * (unless o->no_model; the error names the model and the first differing,
 * missing or extra file), then versions, seed and inference configuration
 * (the error names the first differing field).  *s: caller frees with
 * coh_scenario_free; *out with coh_run_record_free. */
int coh_run_record_load(coh_journal *j, const coh_run_options *o,
                        coh_scenario **s, coh_run_record **out,
                        coh_err *err);

void coh_run_record_free(coh_run_record *r);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_ORCH_H */
