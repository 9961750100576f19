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
  COH_RUN_RESUME = 2   /* restore the journal's latest resume state and the
                          agent checkpoints of its tick (or start at tick 0:
                          resume_full, or no usable state), re-execute the
                          committed ticks after it (verifying them), then
                          continue appending */
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
  /* RESUME: 1 re-executes every committed tick from tick 0 (the behaviour
   * before checkpoints were restored; for measurements and tests) */
  int resume_full;
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
   * the event is checked.  The same stream as a sink's `reported`. */
  coh_run_event_fn on_event;
  void *ud;
  /* May be NULL (defaults).  The journal writer's bounds and test hook
   * (cohort/jwriter.h); its report fields are ignored (on_event is used). */
  const coh_jwriter_opts *journal_writer;
  coh_monitor *monitor;      /* borrowed, may be NULL: coh_sim_new adds the
                                monitor sink (coh_sim_monitor_sink: snapshots,
                                trace spans, pause/resume/step/stop between
                                ticks) */
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
  /* RESUME: the checkpoint tick the run was restored from (-1: it was
   * re-executed from tick 0, for resume_note's reason), and how many of the
   * journal's committed ticks were re-executed and compared */
  int64_t resumed_from;
  int64_t reexecuted;
  const char *resume_note;   /* NULL, or why no checkpoint was used */
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

/* ---- the tick machine -------------------------------------------------------
 * coh_run is a driver over these: the caller owns the loop, so it can run a
 * tick, look, and run the next (a server, a debugger, a test).
 *
 *   coh_sim *sim;
 *   if (coh_sim_new(s, &o, &sim, err)) return ...;     // agents, models, workers
 *   while (rc == COH_OK && coh_sim_stopped(sim) == NULL) rc = coh_sim_tick(sim, err);
 *   rc2 = coh_sim_finish(sim, &sum, err);              // flush, digest, summary
 *   coh_sim_free(sim);
 *
 * A run is the same sequence of ticks however it is driven: the digest does
 * not depend on the driver.  Everything is called on one thread (the
 * caller's); s and o are borrowed until coh_sim_free. */
typedef struct coh_sim coh_sim;

/* Loads the modules and models, instantiates the agents and starts the
 * worker (and engine) threads.  Errors as coh_run's; *out is NULL then. */
int coh_sim_new(const coh_scenario *s, const coh_run_options *o, coh_sim **out,
                coh_err *err);

/* Runs the next tick (tick 0 initialises the agents): commits, journals or
 * compares its events.  Once the run has stopped (coh_sim_stopped non-NULL)
 * it does nothing.  An error fails the run: the tick is not committed, and
 * only coh_sim_finish / coh_sim_free may follow (another coh_sim_tick
 * returns COH_EINVAL). */
int coh_sim_tick(coh_sim *sim, coh_err *err);

/* NULL while the run goes on; else the stop reason (coh_run_summary's
 * stop_reason values), set by the tick that ended the run (or, for
 * "interrupted", "stopped", "journal_end" and "max_ticks" of a run with no
 * tick, by the call that found it so). */
const char *coh_sim_stopped(const coh_sim *sim);

/* The tick coh_sim_tick would run next (= ticks run so far). */
int64_t coh_sim_next_tick(const coh_sim *sim);

/* Ends the run: waits until every committed tick is durable (and reported
 * to on_event), stops the journal writer, and fills *sum (may be NULL).
 * After a failed tick it rolls back the journal's open transaction and
 * returns that tick's error code.  Once per sim. */
int coh_sim_finish(coh_sim *sim, coh_run_summary *sum, coh_err *err);

/* Frees the machine (finishing it first if coh_sim_finish was not called,
 * its error ignored).  NULL is a no-op. */
void coh_sim_free(coh_sim *sim);

/* Ticks sim until the run stops, finishes it into *sum (may be NULL) and
 * frees it: what coh_run does after coh_sim_new, for a driver that adds
 * sinks of its own first.  Returns the first error (the machine is freed
 * either way). */
int coh_sim_run(coh_sim *sim, coh_run_summary *sum, coh_err *err);

/* ---- sinks ------------------------------------------------------------------
 * Everything that happens to committed events is handed to a table of
 * sinks, called in the order they were added, on the thread that calls
 * coh_sim_tick: the journal writer (below), and any the caller adds (a
 * transcript, a metrics counter, a test).  Every callback may be NULL.
 * A tick that fails (an error from the core or from a sink) is never
 * finished: no sink sees its tick_end.  Callbacks return COH_OK or a
 * negative COH_E* code, which fails the tick (and so the run); the error
 * message is passed on as the sink wrote it, so it should name the sink's
 * file or purpose.
 * coh_sim_new builds the sinks the options ask for, so coh_run's callers
 * need not know about them: the journal sink first when appending (FRESH
 * and RESUME, from the tick after the journal's last), then the comparator
 * (REPLAY, and RESUME's prefix); what they report (or, with neither, every
 * event as it is committed) goes to opt->on_event and to every sink's
 * `reported`. */
struct coh_sim_step_info; /* below */
struct coh_sim_llm_info;
typedef struct coh_sim_sink {
  const char *name;   /* for error messages */
  void *ud;
  /* Before tick `tick`'s first event.  *active (preset to 1): 0 skips this
   * sink for the rest of the tick (no event, checkpoint or tick_end). */
  int (*tick_begin)(void *ud, int64_t tick, int *active, coh_err *err);
  /* A committed event of the tick (borrowed).  seq and chain are those of
   * the reference journal while a tick is compared with one (replay, a
   * resume's prefix), else 0 (the journal writer assigns them). */
  int (*event)(void *ud, const coh_jevent *ev, coh_err *err);
  /* An agent's memory snapshot, at ticks that are a multiple of the
   * scenario's checkpoint_every, after the tick's events (borrowed).
   * Snapshots are taken only when some active sink has this callback. */
  int (*checkpoint)(void *ud, const char *agent, const void *state, size_t len,
                    coh_err *err);
  /* The tick is whole (wall_us: how long it took; not deterministic).
   * Called in REVERSE order of addition, so that the journal sink (the
   * first, and the commit point) hears last: a tick another sink refuses
   * here is never journaled. */
  int (*tick_end)(void *ud, int64_t tick, int64_t wall_us, coh_err *err);
  /* Make every finished tick durable: at the end of a run, and after each
   * tick while a sink with `durable` is added (a monitor: it shows only
   * durable ticks). */
  int (*flush)(void *ud, coh_err *err);
  /* The last call: failed is nonzero when the run failed (a tick left
   * open must be dropped).  Frees what the sink owns. */
  int (*close)(void *ud, int failed, coh_err *err);
  /* May be NULL.  The stop reason after a callback returned COH_SINK_STOP
   * (NULL: "stopped"). */
  const char *(*stop_reason)(void *ud);
  /* May be NULL.  Every committed event as the run reports it, in commit
   * order, with its seq and chain: while appending, once its tick is
   * durable in the journal (a transcript must never show what a kill -9
   * could take back); while comparing with a journal (replay, a resume's
   * prefix), as the event is checked; with neither, as it is committed.
   * The same stream as coh_run_options.on_event; a transcript printer is a
   * sink with only this callback (cohort run's is, src/cli/cmd_run.c).
   * Called on the tick loop's thread, whatever the sink's `active` flag of
   * the tick (durability comes ticks later). */
  void (*reported)(void *ud, const coh_jevent *ev);
  /* May be NULL.  The orchestrator's own state at a checkpoint tick
   * (inboxes, timers, key-value stores, request and timer counters, spawned
   * agents, admission cursors, the LLM requests waiting and in engines:
   * COH_RESUME_STATE_MAGIC, borrowed), after the tick's agent checkpoints,
   * when every live agent was checkpointed; with the checkpoints it is what
   * `resume` restores instead of re-executing the ticks before it. */
  int (*resume_state)(void *ud, const void *state, size_t len, coh_err *err);

  /* ---- observers (all optional; wall-clock, never deterministic) ----------
   * What a live view needs beyond the committed events: the monitor sink
   * (coh_sim_monitor_sink) is built from these, and so may any other.  They
   * see timings only, and none of them can change what a tick does. */
  /* Nonzero: the run makes every finished tick durable (flush) before the
   * next one, and then calls tick_durable: a live view shows only what a
   * kill -9 cannot take back. */
  int durable;
  /* Before each tick, before anything of it runs (may block: a paused
   * run).  COH_SINK_STOP stops the run there (reason "interrupted" when the
   * options' interrupted says so, else the sink's stop_reason or
   * "stopped"); any other nonzero is an error that fails the run. */
  int (*between_ticks)(void *ud, coh_err *err);
  /* An agent's step (or init) was committed, right after its event. */
  void (*step)(void *ud, const struct coh_sim_step_info *st);
  /* An LLM result was committed, right after its event. */
  void (*llm_done)(void *ud, const struct coh_sim_llm_info *li);
  /* With `durable`: tick `tick` is finished and durable; t0 is the wall
   * clock (coh_sim_stats.t0's clock) at which it began. */
  int (*tick_durable)(void *ud, int64_t tick, double t0, coh_err *err);
} coh_sim_sink;

/* The format of the resume state (an orchestrator snapshot); the journal
 * sink stores one per such checkpoint tick as that tick's last checkpoint,
 * of the reserved id COH_JOURNAL_ORCH_CHECKPOINT, on the chain. */
#define COH_RESUME_STATE_MAGIC "COHORCH2"

/* A committed agent step, for observers (pointers borrowed for the call). */
typedef struct coh_sim_step_info {
  int agent;               /* index for coh_sim_get_agent */
  int is_init;
  uint64_t fuel;           /* fuel the step used */
  double t0, t1;           /* wall clock (seconds) of the step, on its worker */
  const double *queued_ms; /* how long each event it took had waited */
  size_t n_queued;
} coh_sim_step_info;

/* A committed LLM result, for observers. */
typedef struct coh_sim_llm_info {
  int agent;               /* the requester's index */
  int model;               /* index for coh_sim_get_model; >= n_models: the
                              journal's recorded results (replay --no-model) */
  int64_t number;          /* the agent's request number */
  int64_t tokens;
  double t_commit, t_admit, t_done; /* wall clock; t_admit 0: never in an engine */
} coh_sim_llm_info;

/* ---- read-only queries ------------------------------------------------------
 * For sinks, between and during their callbacks, on the thread that calls
 * coh_sim_tick.  Returned strings are borrowed until coh_sim_free. */
typedef struct coh_sim_stats {
  int64_t tick;            /* coh_sim_next_tick (the tick running, in a
                              callback during a tick) */
  int64_t events, agent_steps, llm_requests, llm_tokens, traps;
  int workers, n_agents, n_models;
  double t0;               /* wall clock (seconds) when the run started */
} coh_sim_stats;
void coh_sim_get_stats(const coh_sim *sim, coh_sim_stats *out);

typedef struct coh_sim_agent_info {
  const char *id;
  const char *state;       /* "alive" | "exited" | "failed" */
  int64_t inbox;           /* events waiting */
} coh_sim_agent_info;
/* COH_EINVAL if k is not in 0..n_agents-1. */
int coh_sim_get_agent(const coh_sim *sim, int k, coh_sim_agent_info *out);
/* The agent's index, or -1. */
int coh_sim_agent_index(const coh_sim *sim, const char *id);

typedef struct coh_sim_model_info {
  const char *name, *provider;   /* provider "journal": no model loaded */
  int64_t batch;           /* sequences in the last decode step */
  int64_t queued;          /* requests waiting for admission */
  int max_batch;
  double step_t0, step_t1; /* wall clock of its last engine step (0: none) */
} coh_sim_model_info;
/* COH_EINVAL if k is not in 0..n_models-1. */
int coh_sim_get_model(const coh_sim *sim, int k, coh_sim_model_info *out);

/* A sink callback's answer (positive, unlike the COH_E* codes) that stops
 * the run: from tick_begin, before the tick runs; from event or tick_end,
 * at the end of the tick, which is then not finished (no later sink hears
 * its tick_end, it does not count as run, and its events are not counted
 * in the summary).  The machine's stop reason is the sink's stop_reason. */
#define COH_SINK_STOP 1

/* Where a re-execution first differed from its reference journal. */
typedef struct coh_sim_divergence {
  int64_t tick;          /* -1: none */
  char agent[80];
  char expected[512];
  char actual[512];
} coh_sim_divergence;

/* The replay comparator as a sink: every event of the ticks up to j's last
 * is compared with j's event at the same place; the first difference is
 * written to *div (borrowed until close) and stops the run ("divergence").
 * Matching events go to report (may be NULL) with j's seq and chain.  Past
 * j's last tick the sink is inactive, or, with stop_at_end, stops the run
 * ("journal_end": a replay).  Reads j on the tick loop's thread. */
int coh_sim_compare_sink(coh_journal *j, int stop_at_end, coh_run_event_fn report,
                         void *report_ud, coh_sim_divergence *div, coh_sim_sink *out,
                         coh_err *err);

/* The monitor as a sink (src/monitor/sink.c): stage histograms, the tick
 * timeline, the transcript ring and trace spans, kept by the sink; a
 * coh_monitor_snapshot published after every durable tick (at most ten a
 * second, unless paused), and pause/resume/step/stop between ticks.
 * scenario and mode ("run" | "replay" | "resume") name the run; the digest
 * is read from j (may be NULL: "").  m and sim are borrowed; *out is ready
 * for coh_sim_add_sink (before the first tick); its close frees it (after
 * a last snapshot, "finished", when the run did not fail).
 * coh_sim_new adds one when coh_run_options.monitor is set. */
int coh_sim_monitor_sink(coh_monitor *m, coh_sim *sim, const char *scenario,
                         const char *mode, coh_journal *j, coh_sim_sink *out,
                         coh_err *err);

/* At most this many sinks per machine. */
#define COH_SIM_MAX_SINKS 8

/* Adds a sink (the struct is copied; ud is borrowed until its close), before
 * the first tick.  COH_EINVAL after the first tick or past
 * COH_SIM_MAX_SINKS. */
int coh_sim_add_sink(coh_sim *sim, const coh_sim_sink *sink, coh_err *err);

/* The journal writer as a sink: ticks from first_tick on are written to j
 * by a writer thread (cohort/jwriter.h; wo may be NULL: defaults), started
 * at the first such tick; earlier ticks are skipped (a resume's verified
 * prefix).  report (may be NULL) hears every event once its tick is
 * durable, in commit order, with seq and chain.  On close after a failure,
 * the journal's open transaction is rolled back.  *out is ready for
 * coh_sim_add_sink; its close frees it. */
int coh_sim_journal_sink(coh_journal *j, int64_t first_tick, const coh_jwriter_opts *wo,
                         coh_run_event_fn report, void *report_ud, coh_sim_sink *out,
                         coh_err *err);

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
