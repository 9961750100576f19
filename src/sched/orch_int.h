/*
 * orch_int.h — the orchestrator's state.  Ownership by thread:
 *   - the orchestrator thread owns everything between ticks;
 *   - during a tick, a worker owns the agent_slot it is stepping (its
 *     coh_agent, its outputs, its key-value store) and reads only immutable
 *     tables (agent ids, the tick's inbox snapshot sizes);
 *   - an engine thread owns its model_slot's engine and completion list.
 * Hand-over happens through the SPSC rings (release/acquire), so no lock is
 * needed anywhere.
 */
#ifndef COH_ORCH_INT_H
#define COH_ORCH_INT_H

#include <pthread.h>

#include "cohort/agent.h"
#include "cohort/grammar.h"
#include "cohort/infer.h"
#include "cohort/jwriter.h"
#include "cohort/orch.h"
#include "ring.h"
#include "util/util_int.h"

/* An event waiting in an inbox. */
typedef struct inbox_ev {
  uint32_t kind;    /* COH_ABI_EV_* */
  char *payload;    /* "header\0body" */
  size_t len;
  double queued_at; /* wall clock when committed (timings only) */
} inbox_ev;

typedef struct inbox {
  inbox_ev *items;
  size_t head, count, cap;
} inbox;

/* Outputs an agent produced during one step, committed in order. */
enum out_type {
  OUT_SEND, OUT_REFUSED, OUT_EMIT, OUT_LOG, OUT_LLM, OUT_TIMER, OUT_SPAWN,
  OUT_SCHEMA_REFUSED, /* a send that failed its route's schema */
  OUT_OUTSIDE         /* a send to a name in the scenario's `outside` */
};

/* Agents another agent may spawn during a run, beyond the scenario's: the
 * agent table is allocated once with this much room, so slots never move
 * (each agent's host callbacks hold a pointer to its slot). */
#define COH__MAX_SPAWNED 4096
typedef struct out_item {
  enum out_type type;
  int target;       /* OUT_SEND/OUT_REFUSED: agent index (-1: unknown);
                       OUT_SPAWN: scenario agent index of `like` */
  int64_t id;       /* OUT_LLM: request number; OUT_TIMER: timer id;
                       OUT_OUTSIDE: the length of the name in data;
                       OUT_SEND: the body's offset in data */
  int64_t due;      /* OUT_TIMER: due tick */
  int level;        /* OUT_LOG; OUT_SCHEMA_REFUSED: the route's index */
  int64_t at;       /* OUT_SCHEMA_REFUSED: the first byte refused, -1: incomplete */
  int cut;          /* OUT_SCHEMA_REFUSED: the parser's bounds were reached */
  char *data;       /* OUT_SEND: the inbox payload "sender\0body" (NUL-
                       terminated; moved into the inbox at commit) /
                       emit / log text / request JSON /
                       refused target name / spawn: "id\0config" /
                       OUT_OUTSIDE: "name\0body" */
  size_t len;
} out_item;

typedef struct kv_pair {
  char *key;
  size_t klen;
  uint8_t *val;
  size_t vlen;
} kv_pair;

enum agent_status { AGENT_ALIVE, AGENT_EXITED, AGENT_FAILED };

typedef struct agent_slot {
  struct coh_sim *o;
  int index;
  int send_cache; /* the slot this agent last sent to (h_send; checked by id before use) */
  char *id;
  const coh_scn_agent *spec;
  coh_module *module;     /* borrowed from the module table */
  coh_agent *agent;
  char *config;           /* spawned agents: their config (else the spec's) */
  int needs_init;         /* spawned this tick: init runs at the next */
  enum agent_status status;
  inbox in;
  size_t in_snapshot;     /* inbox length at the start of the tick */
  int *after;             /* dag: agent indices this one waits for */
  size_t n_after;
  /* per step (worker-owned while stepping) */
  out_item *outs;
  size_t n_outs, cap_outs;
  /* A host-side failure during the step (out of memory in a host call or in
   * the runtime): the agent's call was abandoned and the tick must not be
   * committed (coh_run fails with fail_rc and fail_msg). */
  int fail_rc;
  size_t to_deliver;      /* events this step takes from the inbox */
  size_t delivered;
  uint64_t fuel_used;
  int32_t last_rc;
  int trapped, exited, is_init;
  double step_t0, step_t1; /* wall clock of this step (worker-written) */
  double *qlat;            /* queued latencies (ms) of the events it took */
  size_t n_qlat, cap_qlat;
  /* persistent, agent-owned */
  kv_pair *kv;
  size_t n_kv;
  int64_t next_llm, next_timer;
  /* Cold, and last so that the fields above share few cache lines: the
   * orchestrator's per-tick scans of every slot and the workers' steps
   * read those, these only after a failure, trap or exit. */
  char fail_msg[400];
  coh_agent_result res;   /* of the call that trapped/exited, if any */
} agent_slot;

/* One LLM request between commit and completion. */
typedef struct llm_req {
  int agent;
  int64_t number;         /* the agent's request number (its llm() return) */
  char *json;
  size_t len;
  uint64_t seed;
  coh__buf text;          /* collected by the engine thread */
  int32_t tokens;
  coh_finish finish;
  char error[COH_ERRMSG_MAX];
  int64_t done_tick;      /* tick at which the engine finished it */
  double t_commit, t_admit, t_done; /* wall clock (timings only) */
  char *body;             /* replay --no-model: the journaled result */
  size_t body_len;
  int64_t rec_seq;        /* replay --no-model: its seq in the journal */
  /* admission: the tick it was submitted to its engine and its place in
   * the model's submission order (the resume state lists the requests in
   * an engine in that order, with their admission ticks) */
  int64_t admit_tick;
  uint64_t admit_seq;
  /* resume: a request restored into an engine (llm_catch_up) must have
   * produced exactly these tokens and text when its steps are re-run */
  int restored;
  int32_t want_tokens;
  char *want_text;
  size_t want_len;
  /* taken from the parsed request (coh_llm_request): the engine borrows the
   * grammar until the final event; the tool names make the result's
   * "tool_calls" */
  coh_grammar *grammar;
  coh_llm_tools tool_choice;
  char *tool_names;
  size_t n_tools;
  struct llm_req *next;
} llm_req;

/* replay --no-model: an llm_result event of the reference journal. */
typedef struct recorded_llm {
  int agent;
  int64_t number, tick, seq;
  char *body;
  size_t len;
} recorded_llm;

typedef struct model_slot {
  struct coh_sim *o;
  const coh_scn_model *spec;
  coh_model *model;
  coh_engine *engine;
  int max_batch;
  /* waiting requests, per agent FIFO (fair admission) */
  llm_req **wait_head, **wait_tail; /* [n_agents] */
  int rr_next;            /* next agent to consider for admission */
  uint64_t admit_next;    /* the next admission's admit_seq */
  size_t waiting;
  int in_engine;          /* requests submitted and not yet finished */
  /* completions of the current engine step, in completion order */
  llm_req **done;
  size_t n_done, cap_done;
  llm_req **live;         /* in the engine now (freed at close if the run
                             stops with requests in flight) */
  size_t n_live, cap_live;
  llm_req **replay;       /* --no-model: admitted, waiting for their tick */
  size_t n_replay, cap_replay;
  llm_req **resub;        /* resume: requests to re-submit (llm_catch_up),
                             in admission order */
  size_t n_resub, cap_resub;
  int step_rc;
  coh_err step_err;
  int cb_oom;             /* out of memory in on_token during the step (the
                             step fails with COH_ENOMEM; engine thread) */
  int stepping;           /* an engine step was dispatched this tick */
  double step_t0, step_t1;  /* wall clock of the last engine step */
  pthread_t thread;
  int has_thread;
  coh__ring to_engine, from_engine;
} model_slot;

/* A worker thread.  Each tick the orchestrator fills `batch` with the agents
 * this worker steps (or initialises) and pushes the worker itself through
 * `tasks`; the worker runs the whole batch and pushes itself back through
 * `done`.  One hand-over per worker per tick, not one per agent: a futex
 * wake-up costs microseconds, an agent step often less. */
typedef struct worker {
  struct coh_sim *o;
  pthread_t thread;
  coh__ring tasks, done;
  agent_slot **batch;     /* [cap_agents]; orchestrator-written between ticks */
  size_t n_batch;
} worker;

typedef struct timer_ev {
  int64_t due;
  int agent;
  int64_t id;
} timer_ev;

/* A route schema (coh_scn_route), compiled: an endpoint is a scenario agent
 * (spec index) and, when the route names one instance, that instance's id. */
typedef struct orch_route {
  int from_spec, to_spec;
  const char *from_inst, *to_inst; /* NULL: every instance (and spawned like it) */
  coh_grammar *g;                  /* the permissive form (any property order after
                                      the required ones, docs/grammar.md) */
} orch_route;

typedef struct coh_sim {
  const coh_scenario *s;
  const coh_run_options *opt;
  coh_agent_rt *rt;
  coh_module **modules;   /* per scenario agent spec (shared by its instances) */
  agent_slot *agents;     /* cap_agents slots, never reallocated */
  int n_agents, cap_agents;
  model_slot *models;
  int n_models;
  worker *workers;
  int n_workers;
  timer_ev *timers;       /* sorted by (due, agent, id) */
  size_t n_timers, cap_timers;
  int64_t tick;
  int64_t events;
  double t0;
  /* The wall clock for events and inbox stamps while clock_held: read once
   * per commit unit (an agent's committed step, a tick's inputs) instead of
   * once per event and message; a clock read was ~5% of a routing run's CPU
   * on a VM.  Wall-clock only (wall_us, queue latency), outside the chain. */
  double clock_now;
  int clock_held;
  coh_run_summary *sum;
  /* the sinks (cohort/orch.h), in the order added; active[i]: sink i takes
   * part in the current tick (its tick_begin said so) */
  coh_sim_sink sinks[COH_SIM_MAX_SINKS];
  int sink_active[COH_SIM_MAX_SINKS];
  int n_sinks;
  int reporting_sinks;    /* sinks built from the options that report events
                             (journal, comparator): on_event and the sinks'
                             `reported` hear their reports */
  const char *sink_stop;  /* a sink asked to stop at the end of this tick */
  coh_sim_divergence div; /* the options' comparator writes here */
  /* no-model replay: recorded LLM results, looked up by (agent, number) */
  recorded_llm *recorded;
  size_t n_recorded;
  int *by_id;             /* agent indices sorted by id (binary search) */
  orch_route *routes;     /* s->n_routes, compiled once; read-only while ticking */
  int durable_sinks;      /* sinks with `durable`: flush after every tick */
  /* the tick machine (coh_sim_*): per-agent LLM requests outstanding, the
   * stop reason (NULL while running), a failed tick's code, the summary */
  int *pending_llm;
  int started;            /* a tick ran (sinks can no longer be added) */
  /* RESUME: the reference journal's last tick, the tick restored from
   * (-1: none) and why not, the committed ticks re-executed */
  int64_t ref_last_tick, resumed_from, reexecuted;
  const char *resume_note;
  const char *stop;
  int failed;
  int finished;
  coh_run_summary own_sum;
} orch;

/* host.c: the agent host interface (worker side) and a step task. */
extern const coh_agent_host coh__orch_host;
double coh__orch_run_step(agent_slot *a, int64_t tick, double t0);
void coh__orch_clear_outs(agent_slot *a);

/* orch.c, for resume.c: an inbox push ("header\0body"), an id lookup
 * (-1: none), a timer in canonical order (COH_ENOMEM). */
int coh__orch_inbox_push(inbox *in, uint32_t kind, const char *header, const void *body,
                         size_t body_len, double queued_at);
/* The same with a payload already "header\0body" (len bytes plus a NUL),
 * which the inbox takes over (freed by it, also on failure). */
int coh__orch_inbox_take(inbox *in, uint32_t kind, char *payload, size_t len,
                         double queued_at);
int coh__orch_agent_index(const orch *o, const char *id);
int coh__orch_add_timer(orch *o, int agent, int64_t id, int64_t due);

/* resume.c: the resume state (cohort/orch.h, COH_RESUME_STATE_MAGIC).
 * resumable: nothing finished and not yet committed (LLM requests waiting
 * or in an engine are part of the state).  save: appends the state of the
 * tick just committed to b (COH_ENOMEM).  tick: the state's tick, -1 if p
 * is not a state of this format (or of the older COHORCH1).  restore:
 * applies a state to o, whose scenario slots exist, whose models are open
 * and whose agents are not instantiated (spawned slots are added, inboxes,
 * stores, timers, counters, waiting LLM requests and o->tick set; requests
 * that were in an engine are queued for coh__orch_llm_catch_up); an
 * inconsistent state is COH_EFORMAT naming the field. */
int coh__orch_resumable(const orch *o);
int coh__orch_state_save(const orch *o, coh__buf *b);
int coh__orch_state_tick(const uint8_t *p, size_t n, int64_t *tick);
int coh__orch_state_restore(orch *o, const uint8_t *p, size_t n, coh_err *err);

/* llm.c: models, admission and engine steps. */
int coh__orch_models_open(orch *o, coh_err *err);
void coh__orch_models_close(orch *o);
int coh__orch_llm_enqueue(orch *o, int agent, int64_t number, const char *json,
                          size_t len, coh_err *err);
/* Admits waiting requests.  Out of memory is an error (COH_ENOMEM), never
 * an error result for the agent, which would change the run. */
int coh__orch_llm_admit(orch *o, coh_err *err);
int coh__orch_llm_busy(const orch *o);
/* --no-model: moves recorded results due at the current tick to `done`
 * (out of memory: step_rc COH_ENOMEM, which fails the tick). */
void coh__orch_llm_replay_step(orch *o);
void coh__orch_llm_free(llm_req *r);
/* resume (resume.c): a request of the resume state, outstanding at its
 * tick.  in_engine 0: back at the tail of its agent's FIFO of model slot
 * `model`; 1: queued for re-submission (admitted at admit_tick, having
 * produced `tokens` tokens and text[0..text_len) by the state's tick).
 * COH_EFORMAT (naming the request) if the request does not fit: its model
 * is not the one its JSON names, an engine request on the no-model slot,
 * an engine over its max_batch. */
int coh__orch_llm_restore(orch *o, int model, int agent, int64_t number, const char *json,
                          size_t len, int in_engine, int64_t admit_tick, int32_t tokens,
                          const char *text, size_t text_len, coh_err *err);
/* resume: re-runs the engine steps of the restored engine requests, from
 * the first one's admission tick to o->tick (the state's tick), submitting
 * each at its admission tick in its original order, one engine step per
 * tick, as the run did.  A request's tokens are a function of its own
 * prompt, seed and steps (docs/inference.md, "Batch invariance"), so each
 * is left exactly as it was at the checkpoint: KV cache, sampler stream,
 * grammar state, text so far.  Checked: none may finish, and each must
 * have produced its recorded tokens and text (else COH_EFORMAT). */
int coh__orch_llm_catch_up(orch *o, coh_err *err);
void *coh__orch_engine_thread(void *arg);

#endif /* COH_ORCH_INT_H */
