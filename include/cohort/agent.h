/*
 * cohort/agent.h — running sandboxed WebAssembly agents.
 *
 * A runtime handle (coh_agent_rt) owns the compile cache settings.  A module
 * (coh_module) is a validated, fuel-instrumented, wasm2c-translated and
 * natively compiled .wasm file, loaded from the on-disk cache when it was
 * compiled before.  An agent (coh_agent) is one instance of a module: its own
 * linear memory, globals and table, its own fuel, memory and table caps, and
 * a caller-supplied host interface that answers its imports.
 *
 * Worked example:
 *
 *     coh_agent_rt_opts ro = {0};
 *     ro.cache_dir = "/home/me/.cache/cohort";
 *     coh_agent_rt *rt;  coh_module *m;  coh_agent *a;  coh_err err;
 *     coh_agent_rt_new(&ro, &rt, &err);
 *     coh_module_load_file(rt, "echo.wasm", &m, &err);
 *     coh_agent_opts ao;  coh_agent_opts_default(&ao);
 *     coh_agent_host host = {0};  host.emit = my_emit;
 *     coh_agent_new(m, &ao, &host, my_ud, &a, &err);
 *     coh_agent_result r;
 *     coh_agent_init(a, "{}", 2, &r);
 *     coh_agent_step(a, COH_ABI_EV_MESSAGE, "me\0hello", 8, &r);
 *     coh_agent_free(a);  coh_module_free(m);  coh_agent_rt_free(rt);
 *
 * Threads: the runtime and modules may be shared by any number of threads
 * (module loading is serialised inside the runtime).  Each agent is
 * single-threaded: one call at a time, but different agents may run
 * concurrently on different threads, and an agent may move between threads
 * between calls.  Traps are caught per thread (a per-thread trap target and
 * alternate signal stack), so a trap ends only that agent's call.
 *
 * Process-wide facts (documented exception to "no globals"): the first agent
 * call installs SIGSEGV/SIGBUS handlers (once per process) that turn a fault
 * inside the running agent's linear memory into a trap and pass every other
 * fault on to the previous handler (or the default action), so real bugs
 * still crash loudly.
 */
#ifndef COHORT_AGENT_H
#define COHORT_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/abi.h"
#include "cohort/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coh_agent_rt coh_agent_rt;
typedef struct coh_module coh_module;
typedef struct coh_agent coh_agent;

/* ---- runtime ------------------------------------------------------------ */

typedef struct coh_agent_rt_opts {
  /* Folder for compiled modules; created if missing.  Required (the CLI
   * resolves $XDG_CACHE_HOME/cohort or ~/.cache/cohort; the library reads no
   * environment).  Borrowed: copied by coh_agent_rt_new. */
  const char *cache_dir;
  /* Tools; NULL means "cc", "wasm2c" (looked up on PATH) and the wasm-rt
   * header folder "/usr/src/wasm2c".  Borrowed, copied. */
  const char *cc;
  const char *wasm2c;
  const char *wasm_rt_include;
  /* Extra C compiler optimisation flag, NULL for "-O2".  Borrowed, copied. */
  const char *opt_flag;
  /* 1: instrument for fuel (the default and what agents need); 0: build
   * without fuel counting (benchmarks only: no fuel limit is enforced). */
  int no_fuel;
} coh_agent_rt_opts;

/* Creates a runtime.  *out: caller frees with coh_agent_rt_free (after every
 * module and agent made from it).  Errors: COH_EINVAL (no cache_dir),
 * COH_ENOMEM. */
int coh_agent_rt_new(const coh_agent_rt_opts *opts, coh_agent_rt **out,
                     coh_err *err);
void coh_agent_rt_free(coh_agent_rt *rt);

/* ---- modules ------------------------------------------------------------ */

/* The largest module accepted, in bytes (64 MiB).  wasm2c and the C
 * compiler take time and memory in proportion to a module's size; real
 * agents are far smaller (the stock prompt agent is about 40 KB). */
#define COH_MODULE_MAX_BYTES ((size_t)64 << 20)

/* Validates, instruments, translates and compiles `bytes` (borrowed), or
 * loads the compiled object from the cache.  A cache entry whose recorded
 * hash does not match its file (corrupt or partial) is rebuilt.  *out:
 * caller frees with coh_module_free; it must outlive its agents.
 * Errors: COH_EFORMAT (not wasm / malformed, message names section and
 * offset), COH_EUNSUPPORTED (unknown import, with its module and name;
 * unsupported feature), COH_ECOMPILE (wasm2c or cc failed; message has the
 * tool's last output lines), COH_EIO (cache folder), COH_ERANGE (more than
 * COH_MODULE_MAX_BYTES), COH_ENOMEM. */
int coh_module_load(coh_agent_rt *rt, const uint8_t *bytes, size_t len,
                    coh_module **out, coh_err *err);
/* Same, reading the module from a file (the message names the path).  The
 * file must be a regular file (a device such as /dev/zero, a FIFO or a
 * folder: COH_EINVAL, without blocking) of at most COH_MODULE_MAX_BYTES
 * (COH_ERANGE). */
int coh_module_load_file(coh_agent_rt *rt, const char *path, coh_module **out,
                         coh_err *err);
void coh_module_free(coh_module *m);
/* 1 if this load found a valid compiled object in the cache, 0 if it
 * compiled one. */
int coh_module_from_cache(const coh_module *m);
/* The cache key (64 hex digits) and the compiled object's path; borrowed,
 * valid while m lives. */
const char *coh_module_key(const coh_module *m);
const char *coh_module_path(const coh_module *m);
/* The module's identity (64 hex digits): SHA-256 of its bytes alone, with
 * no toolchain in it (unlike the cache key, which changes with the
 * compiler's and wasm2c's versions).  Checkpoints name their module by it,
 * so they, and the run digest, are the same on every machine.  Borrowed,
 * valid while m lives. */
const char *coh_module_ident(const coh_module *m);

/* ---- agents ------------------------------------------------------------- */

typedef struct coh_agent_opts {
  /* Fuel per call (init, each step): one unit per function entry and per
   * loop iteration.  0 means unlimited.  Default 100000000. */
  uint64_t fuel;
  /* Cap on linear memory, in 64 KiB pages (memory.grow past it fails with
   * -1; a module whose initial memory exceeds it is refused at
   * instantiation).  Default 1024 (64 MiB); at most 65535. */
  uint32_t max_memory_pages;
  /* Cap on table elements.  Default 65536. */
  uint32_t max_table_elems;
  /* Maximum wasm call depth before a stack_exhausted trap.  Default 1000
   * (deterministic: counted, independent of the thread's stack size). */
  uint32_t max_call_depth;
  /* Seed of the agent's default random stream (used when the host gives no
   * random callback). */
  uint64_t seed;
} coh_agent_opts;

/* Fills opts with the defaults above. */
void coh_agent_opts_default(coh_agent_opts *opts);

/* The integration point for inference: a host answers an agent's llm()
 * request through a function of this type.  request (borrowed, valid during
 * the call) is the agent's request JSON; seed is the per-request sampling
 * seed.  On success returns COH_OK and *out_text (caller frees with
 * coh_agent_buf_free), *out_len; on failure a COH_E* code with the message in
 * err, which the host turns into an {"error": ...} LLM event. */
typedef int (*coh_agent_llm_fn)(void *llm_ud, const char *request,
                                size_t request_len, uint64_t seed,
                                char **out_text, size_t *out_len,
                                coh_err *err);

/* The host interface: answers the agent's imports.  Every member may be
 * NULL: emit/log are then dropped, send/llm/timer/state_* return
 * COH_ABI_ENOSYS, now returns 0, random uses the agent's own stream seeded
 * with coh_agent_opts.seed.  Buffers passed to callbacks point into the
 * agent's memory (already validated) and are valid only during the call.
 * Callbacks run on the thread that is running the agent and must not call
 * back into the same agent. */
typedef struct coh_agent_host {
  void (*emit)(void *ud, coh_agent *a, const uint8_t *data, size_t len);
  int32_t (*send)(void *ud, coh_agent *a, const char *to, size_t to_len,
                  const uint8_t *msg, size_t msg_len);
  void (*log)(void *ud, coh_agent *a, int level, const char *msg, size_t len);
  /* Returns a request id >= 1, or a negative COH_ABI_E*. */
  int64_t (*llm)(void *ud, coh_agent *a, const char *req, size_t len);
  int64_t (*now)(void *ud, coh_agent *a);
  void (*random)(void *ud, coh_agent *a, uint8_t *buf, size_t len);
  int64_t (*timer)(void *ud, coh_agent *a, int64_t ticks);
  /* Copies up to vcap bytes into v; returns the value's full length, or
   * COH_ABI_ENOTFOUND. */
  int32_t (*state_get)(void *ud, coh_agent *a, const char *key, size_t klen,
                       uint8_t *v, size_t vcap);
  int32_t (*state_put)(void *ud, coh_agent *a, const char *key, size_t klen,
                       const uint8_t *v, size_t vlen);
  /* Asks the host to start a new agent (request JSON, see abi.h spawn());
   * returns COH_ABI_OK or a negative COH_ABI_E*. */
  int32_t (*spawn)(void *ud, coh_agent *a, const char *req, size_t len);
} coh_agent_host;

/* For a host callback that cannot do what the agent asked for a reason that
 * is not the agent's doing (out of memory): whatever the callback returns,
 * the agent never sees it.  The running call is abandoned as soon as the
 * callback returns, and coh_agent_init/coh_agent_step (or coh_agent_new)
 * return `code` (COH_ENOMEM, say; COH_OK or COH_ETRAP become COH_EINVAL)
 * with msg (copied) in res->message and res->trap COH_TRAP_NONE.  The agent
 * is left in the middle of a call: every later call and checkpoint is
 * refused with COH_ESTATE, and the host should free it.  A deterministic
 * host uses this instead of an error return the agent could act on, which
 * would make the run depend on the machine's memory.  Only the first
 * failure of a call is kept; outside a running call this does nothing.
 * The runtime does the same for its own out of memory while the agent runs
 * (buffering fd_write, growing the table). */
void coh_agent_host_fail(coh_agent *a, int code, const char *msg);

/* Why an agent call stopped early. */
typedef enum coh_trap_kind {
  COH_TRAP_NONE = 0,
  COH_TRAP_OOB,                /* out-of-bounds memory or table access */
  COH_TRAP_INT_OVERFLOW,       /* signed division overflow, float->int */
  COH_TRAP_DIV_BY_ZERO,        /* integer division by zero */
  COH_TRAP_INVALID_CONVERSION, /* NaN to integer */
  COH_TRAP_UNREACHABLE,        /* unreachable executed (abort() in C) */
  COH_TRAP_CALL_INDIRECT,      /* bad indirect call (null, type, range) */
  COH_TRAP_STACK_EXHAUSTED,    /* call depth over max_call_depth */
  COH_TRAP_FUEL,               /* fuel for this call ran out */
  COH_TRAP_BAD_POINTER,        /* a pointer/length given to the host */
  COH_TRAP_LIMIT,              /* memory/table cap exceeded at instantiation */
  COH_TRAP_EXIT                /* proc_exit with a non-zero code */
} coh_trap_kind;

/* Stable lower-case name of a trap kind ("oob", "fuel", ...); never NULL. */
const char *coh_trap_name(coh_trap_kind k);

/* The outcome of one agent call. */
typedef struct coh_agent_result {
  int32_t rc;             /* the export's return value when it returned */
  coh_trap_kind trap;     /* COH_TRAP_NONE unless the call trapped */
  uint64_t fuel_used;     /* fuel consumed by this call */
  int exited;             /* 1 once the agent called proc_exit */
  char message[384];      /* human description of a trap */
} coh_agent_result;

/* Instantiates m (which must outlive the agent).  Runs the module's start
 * function and _initialize (under the fuel limit).  host (copied) and ud
 * (borrowed, must outlive the agent).  *out: caller frees with
 * coh_agent_free.  Errors: COH_ETRAP (instantiation trapped, e.g. initial
 * memory over the cap: message says which), COH_EINVAL, COH_ENOMEM. */
int coh_agent_new(coh_module *m, const coh_agent_opts *opts,
                  const coh_agent_host *host, void *ud, coh_agent **out,
                  coh_err *err);
void coh_agent_free(coh_agent *a);

/* Calls cohort_init with the configuration bytes (borrowed).  A module
 * without cohort_init succeeds with rc 0.  Returns COH_OK (result in *res,
 * rc may be non-zero), COH_ETRAP (res->trap, res->message), COH_ESTATE
 * (agent exited, already running, or abandoned by a host failure),
 * COH_ENOMEM (also a host failure's code: see coh_agent_host_fail). */
int coh_agent_init(coh_agent *a, const void *config, size_t len,
                   coh_agent_result *res);
/* Delivers one event (kind, payload borrowed); same returns as init. */
int coh_agent_step(coh_agent *a, uint32_t kind, const void *payload,
                   size_t len, coh_agent_result *res);

/* Sets the fuel budget for the following calls (0 = unlimited). */
void coh_agent_set_fuel(coh_agent *a, uint64_t fuel);
/* The caller's ud given to coh_agent_new. */
void *coh_agent_userdata(const coh_agent *a);
/* Current linear memory size in bytes. */
size_t coh_agent_memory_size(const coh_agent *a);

/* Checkpoints the agent (linear memory, globals, table, exit state, its
 * default random stream) to bytes.  *out: caller frees with
 * coh_agent_buf_free.  Errors: COH_ESTATE (agent running), COH_EUNSUPPORTED
 * (table holds a function not placed there at instantiation), COH_ENOMEM. */
int coh_agent_checkpoint(coh_agent *a, uint8_t **out, size_t *out_len,
                         coh_err *err);
/* COH_OK if snap (len bytes) is a checkpoint of the format this cohort
 * writes (COHSNAP3: memory as a map of its nonzero 4 KiB pages);
 * COH_EFORMAT otherwise, naming both formats for an older one (COHSNAP2,
 * memory stored whole; COHSNAP1, which named the module by its
 * toolchain-dependent cache key). */
int coh_agent_checkpoint_format(const uint8_t *snap, size_t len,
                                coh_err *err);
/* Creates a new agent from module m and a checkpoint (borrowed) instead of
 * initialising it: _initialize and cohort_init are not run; it continues
 * exactly where the checkpointed agent was.  Errors: COH_EFORMAT (not a
 * checkpoint of this module, truncated), plus those of coh_agent_new. */
int coh_agent_restore(coh_module *m, const coh_agent_opts *opts,
                      const coh_agent_host *host, void *ud,
                      const uint8_t *snap, size_t snap_len, coh_agent **out,
                      coh_err *err);

/* Frees a buffer returned by this module's functions. */
void coh_agent_buf_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_AGENT_H */
