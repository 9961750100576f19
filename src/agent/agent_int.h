/*
 * agent_int.h — internals of the agent module: the wasm binary reader and
 * instrumenter, SHA-256, the compile cache, and the per-thread trap
 * machinery shared by rt.c and agent.c.
 */
#ifndef COH_AGENT_INT_H
#define COH_AGENT_INT_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "cohort/agent.h"
#include "util/util_int.h"
#include "wasm-rt.h"
#include "glue_abi.h"

/* coh__buf (growable byte buffer) lives in util/util_int.h. */

/* SHA-256 (coh__sha256_*, coh__hex32) lives in util/util_int.h. */

/* ---- wasm reader and instrumenter ---------------------------------------- */
typedef struct coh__wasm_info {
  uint32_t ntypes;
  uint32_t nglobals;         /* the module's own globals (before injection) */
  uint8_t *global_types;     /* nglobals value-type bytes; coh__free */
  uint32_t fuel_global;      /* index of the injected fuel global */
  int has_table;
  int has_initialize, has_init, has_alloc, has_on_event;
  int imports_cohort, imports_wasi;
  uint32_t max_sig;          /* longest params+results of any type */
  int uses_simd;             /* v128 values or 0xfd instructions */
} coh__wasm_info;

/* Version of what coh__wasm_instrument emits (fuel metering scheme and
 * injected code); part of the compile-cache key, so bump it whenever the
 * rewritten module can differ for the same input.
 *   1: fuel counted directly in the global;
 *   2: fuel counted in a per-function local, synced with the global at
 *      calls, returns and traps. */
#define COH__INSTR_VERSION 2

/* Validates `in` and writes the instrumented module into *out (caller frees
 * with coh__buf_free).  fuel: insert fuel checks.  Errors COH_EFORMAT,
 * COH_EUNSUPPORTED, COH_ENOMEM with the offset and section in err. */
int coh__wasm_instrument(const uint8_t *in, size_t len, int fuel,
                         coh__wasm_info *info, coh__buf *out, coh_err *err);
void coh__wasm_info_free(coh__wasm_info *info);

/* ---- compiled modules ---------------------------------------------------- */
struct coh_module {
  coh_agent_rt *rt;
  void *dl;
  const struct coh__glue *glue;
  coh__wasm_info info;
  char key[65];   /* compile-cache key: hashes the toolchain too */
  char ident[65]; /* the module's identity in checkpoints: its bytes only,
                     so that checkpoints (and the run digest they reach)
                     do not depend on the local compiler or wasm2c */
  char *path;
  int from_cache;
};

/* ---- per-thread trap state (rt.c) --------------------------------------- */
typedef struct coh__thread {
  sigjmp_buf *jb;             /* where a trap on this thread lands */
  struct coh_agent *cur;      /* the agent running on this thread */
  volatile int in_wasm;       /* 1 while wasm code (not host code) runs */
  void *altstack;
  size_t altstack_size;
  int trap_kind;              /* coh_trap_kind of a trap raised in host code */
} coh__thread;

/* The calling thread's state, created on first use (with its alternate
 * signal stack); NULL on out of memory.  Installs the process's fault
 * handlers once. */
coh__thread *coh__thread_get(void);
/* Raise a trap of the given coh_trap_kind on the calling thread. */
void coh__trap(coh_trap_kind k) __attribute__((noreturn));
/* Abandons the running call for a host failure recorded in the agent's
 * host_rc and msg: run() returns host_rc, not a trap. */
#define COH__TRAP_HOST 0x100
void coh__trap_host(void) __attribute__((noreturn));
extern const struct coh__glue_ops coh__glue_ops_impl;

/* Size of the address-space reservation behind each linear memory: every
 * address a 32-bit memory access can form (base + u32 + u32 offset + 8)
 * lands inside it, so bounds checks cost nothing (guard pages). */
#define COH__MEM_RESERVE ((size_t)8 << 30 | (size_t)1 << 16)

struct coh_agent {
  coh_module *mod;
  void *inst;                 /* wasm2c instance, glue->instance_size bytes */
  coh_agent_host host;
  void *ud;
  coh_agent_opts opts;
  wasm_rt_memory_t *mem;      /* inside inst */
  uint8_t *mem_base;          /* reservation start, for the fault handler */
  int mem_allocated;
  wasm_rt_funcref_table_t *table;
  wasm_rt_funcref_t *table0;  /* the table as instantiated, for snapshots */
  uint32_t table0_size;
  int running, exited, exit_code;
  uint64_t rng;               /* default random stream state */
  char msg[256];              /* message of a trap raised in host code */
  int host_rc;                /* non-zero: a host failure (out of memory)
                                 abandoned a call (coh_agent_host_fail); the
                                 agent accepts no further call */
};

/* Host side of the imports (agent.c). */
uint64_t coh__import_call(void *host, uint32_t id, const uint64_t *args);

#endif /* COH_AGENT_INT_H */
