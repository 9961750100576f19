/*
 * cohort/scenario.h — scenario files (YAML): which models, which agents,
 * which initial messages, which scheduling policy, which stop conditions.
 *
 * Example (paths are relative to the scenario file's folder):
 *
 *   name: debate
 *   seed: 42
 *   models:
 *     - name: demo
 *       path: ../build/fixtures/llama-demo
 *       device: auto          # auto | cpu | cuda
 *       max_batch: 16
 *       threads: 0            # ONNX Runtime intra-op threads; 0 = all cores
 *       prefill_chunk: 512    # prompt tokens per prefill run and per
 *                             # prefix-cache block (part of the computation:
 *                             # another value can change results)
 *   policy:
 *     kind: round_robin       # round_robin | priority | dag
 *     quantum: 4              # events an agent takes per tick (every policy)
 *   stop:
 *     max_ticks: 200
 *     quiescence: true        # stop when nothing is pending anywhere
 *     on_exit: judge          # stop when this agent exits
 *   checkpoint_every: 10      # ticks between agent checkpoints in the journal
 *   agents:
 *     - id: alice            # ids: 1-64 characters of A-Z a-z 0-9 _ . -
 *       kind: prompt          # the stock prompt agent (no module to build);
 *                             # default kind: wasm, which needs a module
 *       config: {role: "You are Alice.", model: demo, max_tokens: 32}
 *     - id: worker
 *       module: ../build/agents/echo.wasm
 *       count: 10             # worker-0 .. worker-9
 *       fuel: 1000000
 *       memory_mb: 16
 *       priority: 1           # higher steps first (priority policy)
 *       inbox: 64             # inbox capacity; a send to a full inbox fails
 *       after: [planner]      # dag policy: steps only while none of these
 *                             # has events queued at the start of the tick
 *                             # or an LLM answer outstanding (agent ids,
 *                             # meaning all their instances, or instance
 *                             # ids; a single id may be written without
 *                             # brackets)
 *   routes:                   # message routes with a JSON Schema
 *     - from: planner         # agent ids (all instances) or instance ids
 *       to: worker
 *       schema: {type: object, required: [task]}   # inline, a mapping
 *   outside: [user]           # names that are not agents but may be sent
 *                             # to: the message is journaled and goes
 *                             # nowhere (a send to another unknown name is
 *                             # refused); "*": every name that is no agent's
 *   default_model: demo       # requests naming an unknown model go here
 *                             # (default: they get an error result)
 *   no_model_error: "..."     # the error text of a request that names no
 *                             # model of the scenario
 *   messages:
 *     - to: alice
 *       from: user            # an id; default "scenario"
 *       body: "Is the sea wet?"   # a string, or any YAML value (sent as JSON);
 *                             # default: empty
 *       tick: 0
 *
 * Messages' `to` and stop.on_exit name one instance (alice, worker-3).
 * Plain scalars follow the YAML 1.2 core schema (null ~, true/false, ints
 * incl. 0x/0o, floats): in config they become JSON null/booleans/numbers;
 * quoted scalars are always strings, and yes/no/on/off stay strings.  Tags
 * are ignored.  Loading does not check that module and model files exist.
 */
#ifndef COHORT_SCENARIO_H
#define COHORT_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"
#include "cohort/infer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum coh_policy {
  COH_POLICY_ROUND_ROBIN = 0,
  COH_POLICY_PRIORITY = 1,
  COH_POLICY_DAG = 2
} coh_policy;

typedef struct coh_scn_model {
  char *name;
  char *path;        /* resolved against the scenario's folder */
  coh_device device; /* default AUTO */
  int max_batch;     /* default 16, 1..1024 */
  int threads;       /* default 0 (all cores) */
  int prefill_chunk; /* prompt tokens per prefill run and prefix-cache block;
                        default 0 (the engine's, 512), 1..65536 */
  int line;          /* where it was defined, for messages */
} coh_scn_model;

typedef struct coh_scn_agent {
  char *id;          /* as written; with count N the instances are id-0..id-(N-1) */
  char *module;      /* resolved .wasm path; NULL for kind: prompt */
  int is_prompt;     /* kind: prompt (the stock prompt agent) */
  char *config_json; /* the config mapping as compact JSON text ("{}" if none) */
  uint64_t fuel;     /* default 100000000; 0 = unlimited */
  uint32_t memory_mb;/* default 64 */
  int priority;      /* default 0 */
  int count;         /* default 1, 1..100000 */
  int inbox;         /* default 256, 1..1000000 */
  char **after;      /* dag dependencies (agent ids as written, or instance ids) */
  size_t n_after;
  int line;
} coh_scn_agent;

typedef struct coh_scn_message {
  char *from;        /* default "scenario" */
  char *to;          /* an agent instance id */
  char *body;        /* a string body as is; any other YAML value as compact JSON */
  size_t body_len;
  int64_t tick;      /* default 0 */
  int line;
} coh_scn_message;

/* A message route with a schema (docs/orchestrator.md "Route schemas"):
 * every message an instance of `from` sends to an instance of `to` must be
 * valid for the schema, or it is refused; a stock prompt agent that is the
 * `from` of a route gets its output constrained by the route's schema. */
typedef struct coh_scn_route {
  char *from;        /* an agent id (all its instances) or an instance id */
  char *to;          /* the same */
  char *schema_json; /* the JSON Schema as compact JSON text */
  size_t schema_len;
  int line;
} coh_scn_route;

typedef struct coh_scenario {
  char *path;        /* as given */
  char *dir;         /* its folder, against which paths resolve */
  char *text;        /* the file's exact bytes (journaled) */
  size_t text_len;
  char *name;        /* default: the file name without .yaml */
  uint64_t seed;     /* default 0 */
  coh_policy policy; /* default ROUND_ROBIN */
  int quantum;       /* default 1, 1..1000000 */
  int64_t max_ticks; /* default 1000; 1..10^9 */
  int quiescence;    /* default true */
  char *stop_on_exit;/* NULL if none */
  int checkpoint_every; /* default 0 = never; ticks */
  coh_scn_model *models;
  size_t n_models;
  coh_scn_agent *agents;
  size_t n_agents;
  coh_scn_message *messages;
  size_t n_messages;
  coh_scn_route *routes;
  size_t n_routes;
  char **outside;    /* names that are not agents but may be sent to: the
                        send succeeds, is committed as a "message" event,
                        and goes nowhere; "*" is every name that is no
                        agent instance's (`cohort exec`'s) */
  size_t n_outside;
  char *default_model;  /* NULL: a request naming an unknown model fails;
                           else it goes to this model */
  char *no_model_error; /* NULL: the default; else the error result of a
                           request that names no model of the scenario */
} coh_scenario;

/* Bounds on a scenario file, checked before it is parsed: its size, and
 * the nesting of mappings and sequences (the scenario's own structure
 * takes 3 levels; config and message bodies keep their own cap of 64). */
#define COH_SCENARIO_MAX_BYTES ((size_t)16 << 20)
#define COH_SCENARIO_MAX_DEPTH 100

/* Reads and validates a scenario file.  *out: caller frees with
 * coh_scenario_free.  Errors: COH_ENOENT/COH_EIO (file), COH_EFORMAT with
 * "FILE:LINE:COLUMN: what was expected" for YAML syntax errors, unknown or
 * mistyped keys, values out of range, duplicate ids, messages to unknown
 * agents, unknown models named in a prompt agent's config, dag cycles or
 * unknown dependencies, more than 1,000,000 agent instances in all, YAML
 * aliases expanding far beyond the file's size, nesting deeper than
 * COH_SCENARIO_MAX_DEPTH, a stock prompt agent's config field that is
 * unknown, mistyped, out of range or too long, a route (`routes`) with a
 * missing key, an unknown agent, a repeated (from, to) pair or a schema the
 * grammar engine refuses (the keyword and its JSON pointer), a prompt agent
 * sending over routes with two schemas, or with its own schema or tools and
 * a route schema; COH_EINVAL (not a regular
 * file), COH_ERANGE (more than COH_SCENARIO_MAX_BYTES); COH_ENOMEM. */
int coh_scenario_load(const char *path, coh_scenario **out, coh_err *err);

/* Same from a buffer (borrowed); path is used for messages and base_dir to
 * resolve relative paths. */
int coh_scenario_parse(const char *text, size_t len, const char *path,
                       const char *base_dir, coh_scenario **out, coh_err *err);

void coh_scenario_free(coh_scenario *s);

/* Number of agent instances (the sum of counts). */
size_t coh_scenario_instances(const coh_scenario *s);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_SCENARIO_H */
