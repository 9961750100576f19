/*
 * glue_abi.h — the contract between the agent runtime and the glue compiled
 * into every module's shared object.
 *
 * This file is included by the runtime AND embedded verbatim (as text) into
 * the generated glue of each module, so it must stay self-contained: it may
 * only rely on <stdint.h>, <stddef.h> and wasm-rt.h, which both sides include
 * first.  Changing it changes COH__GLUE_ABI, which is part of the cache key,
 * so stale compiled modules are never loaded.
 */
#ifndef COH_GLUE_ABI_H
#define COH_GLUE_ABI_H

#define COH__GLUE_ABI 4

/* Import ids: the glue forwards every import through ops->import_call with
 * one of these ids and its arguments widened to uint64_t. */
enum {
  COH__IMP_EMIT = 0, COH__IMP_SEND, COH__IMP_LOG, COH__IMP_LLM, COH__IMP_NOW,
  COH__IMP_RANDOM, COH__IMP_TIMER, COH__IMP_STATE_GET, COH__IMP_STATE_PUT,
  COH__IMP_FD_WRITE, COH__IMP_FD_CLOSE, COH__IMP_FD_SEEK,
  COH__IMP_FD_FDSTAT_GET, COH__IMP_FD_PRESTAT_GET,
  COH__IMP_FD_PRESTAT_DIR_NAME, COH__IMP_PROC_EXIT,
  COH__IMP_ENVIRON_SIZES_GET, COH__IMP_ENVIRON_GET, COH__IMP_ARGS_SIZES_GET,
  COH__IMP_ARGS_GET, COH__IMP_CLOCK_TIME_GET, COH__IMP_RANDOM_GET,
  COH__IMP_SPAWN,
  COH__IMP_COUNT
};

/* Host functions the glue calls.  The memory/table functions find the agent
 * they act for through the calling thread's current agent. */
struct coh__glue_ops {
  void (*trap)(int wasm_rt_trap_kind) __attribute__((noreturn));
  void (*alloc_memory)(wasm_rt_memory_t *m, uint32_t initial, uint32_t max);
  uint32_t (*grow_memory)(wasm_rt_memory_t *m, uint32_t delta);
  void (*free_memory)(wasm_rt_memory_t *m);
  void (*alloc_table)(wasm_rt_funcref_table_t *t, uint32_t n, uint32_t max);
  uint32_t (*grow_table)(wasm_rt_funcref_table_t *t, uint32_t delta,
                         wasm_rt_funcref_t init);
  void (*free_table)(wasm_rt_funcref_table_t *t);
  /* host: the import-instance pointer given to instantiate (the agent). */
  uint64_t (*import_call)(void *host, uint32_t id, const uint64_t *args);
};

/* What a compiled module exports: one constant of this type named
 * coh_glue (the only visible symbol of the shared object). */
struct coh__glue {
  uint32_t abi;
  uint32_t nglobals;            /* the module's own globals */
  const uint8_t *global_types;  /* wasm value type byte of each */
  size_t instance_size;
  int has_table;
  /* Once per process and object: binds ops and registers function types. */
  void (*bind)(const struct coh__glue_ops *ops);
  void (*instantiate)(void *inst, void *host);
  void (*free_instance)(void *inst);
  wasm_rt_memory_t *(*memory)(void *inst);
  wasm_rt_funcref_table_t *(*table)(void *inst); /* NULL without a table */
  void *(*global)(void *inst, uint32_t i);
  uint64_t *(*fuel)(void *inst);       /* NULL when built without fuel */
  uint32_t *(*depth)(void *inst);
  uint32_t *(*depth_max)(void *inst);
  /* Exports (NULL when the module does not export them). */
  void (*initialize)(void *inst);
  uint32_t (*alloc)(void *inst, uint32_t size);
  uint32_t (*init)(void *inst, uint32_t ptr, uint32_t len);
  uint32_t (*on_event)(void *inst, uint32_t kind, uint32_t ptr, uint32_t len);
};

#endif /* COH_GLUE_ABI_H */
