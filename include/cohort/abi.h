/*
 * cohort/abi.h — the host ABI between cohort and its WebAssembly agents.
 *
 * This one header is shared by the runtime (compiled natively) and by the C
 * SDK (compiled with clang --target=wasm32-wasi).  It fixes:
 *   - the imports an agent may use, all in module "cohort";
 *   - the exports an agent provides;
 *   - the event kinds and the layout of event payloads;
 *   - the status codes the host returns to the agent.
 *
 * All pointers and lengths are i32 offsets into the agent's own linear
 * memory.  The host validates every (pointer, length) pair against the
 * memory's current size; a pair that reaches outside it traps the agent
 * (trap kind "bad_pointer"), it never reads or writes host memory.
 *
 * Imports (module "cohort"; wasm types in brackets):
 *   emit(ptr, len)                              [i32 i32 -> ]
 *       Appends transcript output (the agent's visible output).
 *   send(to_ptr, to_len, msg_ptr, msg_len)     [i32 i32 i32 i32 -> i32]
 *       Sends msg to the agent named `to`.  Returns COH_ABI_OK or a negative
 *       COH_ABI_E* (a full inbox is COH_ABI_EFULL, seen deterministically).
 *   log(level, ptr, len)                        [i32 i32 i32 -> ]
 *       Diagnostic log line, level one of COH_ABI_LOG_*.
 *   llm(req_ptr, req_len)                       [i32 i32 -> i64]
 *       Requests a generation; req is JSON (see docs/agents.md: "prompt",
 *       "model", "max_tokens", ...).  Returns a request id (>= 1) at once; the
 *       result arrives later as a COH_ABI_EV_LLM event.  Negative: error.
 *   now()                                       [ -> i64]
 *       The logical tick.  There is no wall clock.
 *   random(ptr, len)                            [i32 i32 -> ]
 *       Fills len bytes from the agent's deterministic stream (seeded from
 *       the run seed and the agent's identity).
 *   timer(ticks)                                [i64 -> i64]
 *       Schedules a COH_ABI_EV_TIMER event `ticks` ticks from now; returns
 *       the timer id (>= 1) or a negative error.
 *   state_get(kptr, klen, vptr, vcap)           [i32 i32 i32 i32 -> i32]
 *       Copies up to vcap bytes of the value stored under the key; returns
 *       the value's full length (call again with a larger buffer if it is
 *       larger than vcap) or COH_ABI_ENOTFOUND.
 *   state_put(kptr, klen, vptr, vlen)           [i32 i32 i32 i32 -> i32]
 *       Stores a value under the key; returns COH_ABI_OK or an error.
 *   spawn(req_ptr, req_len)                     [i32 i32 -> i32]
 *       Asks for a new agent.  req is JSON: {"id": "new-id", "like":
 *       "scenario-agent-id", "config": {...}}: the new agent runs the module
 *       (and the fuel, memory and inbox limits) of the scenario agent `like`,
 *       initialised with `config` (default: `like`'s config).  It exists
 *       from the next tick, when its init runs.  Returns COH_ABI_OK, or
 *       COH_ABI_EINVAL (bad JSON, bad or taken id, unknown `like`).
 *
 * Exports an agent provides:
 *   memory                                      (its linear memory; required)
 *   cohort_alloc(size) -> ptr                   [i32 -> i32] (required)
 *       The host places event payloads and the configuration in buffers
 *       it obtains here; the agent owns (and frees) them.
 *   cohort_init(ptr, len) -> i32                [i32 i32 -> i32] (optional)
 *       Called once with the agent's configuration (JSON text, may be
 *       empty).  Non-zero return: the agent refuses to start.
 *   cohort_on_event(kind, ptr, len) -> i32      [i32 i32 i32 -> i32] (required)
 *       Delivers one event.  The return value is recorded, 0 meaning ok.
 *   _initialize                                 [ -> ] (optional; WASI reactor
 *       constructor, run once before cohort_init)
 *
 * Event payloads (all kinds): a NUL-terminated header string, followed by
 * the body bytes (the body runs to the end of the payload):
 *   COH_ABI_EV_MESSAGE: header = sender name,      body = message bytes
 *   COH_ABI_EV_LLM:     header = request id (decimal), body = JSON
 *                       {"text": "..."} or {"error": "..."}
 *   COH_ABI_EV_TIMER:   header = timer id (decimal),   body = empty
 *
 * WASI (module "wasi_snapshot_preview1"): only what wasi-libc reactors need.
 * fd_write to fd 1/2 goes to the agent's log (info/warn); args and environ
 * are empty; clock_time_get returns the logical tick in milliseconds
 * (tick * 1e6 ns); random_get reads the agent's deterministic stream;
 * proc_exit ends the agent; fd_close/fd_seek/fd_fdstat_get/fd_prestat_* are
 * minimal (no files are ever open beyond 0-2).  Any other import is refused
 * when the module is loaded.
 */
#ifndef COHORT_ABI_H
#define COHORT_ABI_H

#include <stddef.h>
#include <stdint.h>

#define COH_ABI_VERSION 1

/* Event kinds passed to cohort_on_event. */
#define COH_ABI_EV_MESSAGE 1
#define COH_ABI_EV_LLM 2
#define COH_ABI_EV_TIMER 3

/* Log levels for log(). */
#define COH_ABI_LOG_DEBUG 0
#define COH_ABI_LOG_INFO 1
#define COH_ABI_LOG_WARN 2
#define COH_ABI_LOG_ERROR 3

/* Status codes returned by host functions (i32/i64). */
#define COH_ABI_OK 0
#define COH_ABI_EINVAL (-1)    /* malformed argument (e.g. bad JSON) */
#define COH_ABI_ENOTFOUND (-2) /* no such key / agent */
#define COH_ABI_EFULL (-3)     /* inbox or queue full: retry later */
#define COH_ABI_ENOSYS (-4)    /* the host does not provide this service */
#define COH_ABI_ETOOBIG (-5)   /* over a size limit */

/* Import and export names, for tools that check modules. */
#define COH_ABI_IMPORT_MODULE "cohort"
#define COH_ABI_EXPORT_ALLOC "cohort_alloc"
#define COH_ABI_EXPORT_INIT "cohort_init"
#define COH_ABI_EXPORT_ON_EVENT "cohort_on_event"

#if defined(__wasm__)
/* ---- agent side: the imports, declared for C agents --------------------- */
#define COH__IMPORT(name) \
  __attribute__((import_module("cohort"), import_name(#name)))

COH__IMPORT(emit) void cohort_emit(const void *ptr, uint32_t len);
COH__IMPORT(send)
int32_t cohort_send(const char *to, uint32_t to_len, const void *msg,
                    uint32_t msg_len);
COH__IMPORT(log) void cohort_log(int32_t level, const char *ptr, uint32_t len);
COH__IMPORT(llm) int64_t cohort_llm(const char *req, uint32_t req_len);
COH__IMPORT(now) int64_t cohort_now(void);
COH__IMPORT(random) void cohort_random(void *ptr, uint32_t len);
COH__IMPORT(timer) int64_t cohort_timer(int64_t ticks);
COH__IMPORT(state_get)
int32_t cohort_state_get(const char *key, uint32_t klen, void *val,
                         uint32_t vcap);
COH__IMPORT(state_put)
int32_t cohort_state_put(const char *key, uint32_t klen, const void *val,
                         uint32_t vlen);
COH__IMPORT(spawn)
int32_t cohort_spawn(const char *req, uint32_t req_len);
#undef COH__IMPORT
#endif /* __wasm__ */

#endif /* COHORT_ABI_H */
