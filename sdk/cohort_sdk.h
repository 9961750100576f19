/*
 * cohort_sdk.h — write cohort agents in C.
 *
 * Build (Debian clang + wasi-libc + lld; see sdk/build-agent.sh):
 *   clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 \
 *         -I include -I sdk my_agent.c -o my_agent.wasm
 *
 * An agent is two functions and one macro:
 *
 *   static int my_init(const char *config, size_t len) { return 0; }
 *   static int my_event(const coh_event *ev) {
 *     if (ev->kind == COH_ABI_EV_MESSAGE) coh_emit(ev->body, ev->body_len);
 *     return 0;
 *   }
 *   COHORT_AGENT(my_init, my_event)
 *
 * COHORT_AGENT defines the exports the host calls (cohort_alloc,
 * cohort_init, cohort_on_event) and releases every buffer the host placed in
 * the agent's memory after the handler returns: handlers must copy what they
 * keep.  The imports themselves are declared in cohort/abi.h.
 *
 * Payload arena: the host asks cohort_alloc for exactly one buffer per call
 * (the config of cohort_init, the payload of cohort_on_event), and the
 * buffer dies when the handler returns.  So a payload of at most
 * COHORT_ARENA_BYTES (default 16 KiB; define it before including this file
 * to change it, 0 turns the arena off) is placed at the start of a static
 * arena, with no malloc and no free; a larger one comes from malloc and is
 * freed as before.  The arena is reset (made free) after every handler, so
 * it never holds more than one payload and its size is the bound.  What a
 * handler sees (the event's bytes) is the same either way; only where in
 * memory the payload lies differs.  Handlers compiled with -msimd128 (SIMD
 * agents) may rely on the arena being 16-byte aligned.
 */
#ifndef COHORT_SDK_H
#define COHORT_SDK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/abi.h"

/* One event, pointing into a buffer valid only during the handler. */
typedef struct coh_event {
  uint32_t kind;         /* COH_ABI_EV_* */
  const char *header;    /* sender / request id / timer id, NUL-terminated */
  const uint8_t *body;   /* message bytes / LLM result JSON */
  size_t body_len;
} coh_event;

static inline void coh_emit(const void *p, size_t n) {
  cohort_emit(p, (uint32_t)n);
}
static inline void coh_emit_str(const char *s) { coh_emit(s, strlen(s)); }
static inline int32_t coh_send(const char *to, const void *msg, size_t n) {
  return cohort_send(to, (uint32_t)strlen(to), msg, (uint32_t)n);
}
static inline void coh_log(int level, const char *s) {
  cohort_log(level, s, (uint32_t)strlen(s));
}
static inline int64_t coh_llm(const char *request_json) {
  return cohort_llm(request_json, (uint32_t)strlen(request_json));
}
/* Reads a value into buf (cap bytes); returns its full length or
 * COH_ABI_ENOTFOUND. */
static inline int32_t coh_state_get(const char *key, void *buf, size_t cap) {
  return cohort_state_get(key, (uint32_t)strlen(key), buf, (uint32_t)cap);
}
static inline int32_t coh_state_put(const char *key, const void *v,
                                    size_t n) {
  return cohort_state_put(key, (uint32_t)strlen(key), v, (uint32_t)n);
}
/* Asks the host for a new agent; see spawn() in cohort/abi.h. */
static inline int32_t coh_spawn(const char *request_json) {
  return cohort_spawn(request_json, (uint32_t)strlen(request_json));
}

/* Splits a payload into header and body (header missing its NUL: the whole
 * payload is the body and the header is empty). */
static inline void coh__split_event(uint32_t kind, const uint8_t *p,
                                    uint32_t n, coh_event *ev) {
  const uint8_t *nul = n ? (const uint8_t *)memchr(p, 0, n) : NULL;
  ev->kind = kind;
  if (nul == NULL) {
    ev->header = "";
    ev->body = p;
    ev->body_len = n;
  } else {
    ev->header = (const char *)p;
    ev->body = nul + 1;
    ev->body_len = n - (uint32_t)(nul + 1 - p);
  }
}

#ifndef COHORT_ARENA_BYTES
#define COHORT_ARENA_BYTES 16384
#endif

#if COHORT_ARENA_BYTES > 0
static unsigned char coh__arena[COHORT_ARENA_BYTES] __attribute__((aligned(16)));
static int coh__arena_busy; /* 1 while a payload lies in the arena */
#endif

/* cohort_alloc: the arena when the payload fits and the arena is free,
 * else malloc. */
static inline void *coh__payload_alloc(uint32_t n) {
#if COHORT_ARENA_BYTES > 0
  if (n <= COHORT_ARENA_BYTES && !coh__arena_busy) {
    coh__arena_busy = 1;
    return coh__arena;
  }
#endif
  return malloc(n ? n : 1);
}

/* After a handler: the arena is free again, or the malloc'd buffer is
 * freed. */
static inline void coh__payload_release(void *p) {
#if COHORT_ARENA_BYTES > 0
  if (p == (void *)coh__arena) {
    coh__arena_busy = 0;
    return;
  }
#endif
  free(p);
}

#define COHORT_AGENT(INIT_FN, EVENT_FN)                                      \
  __attribute__((export_name("cohort_alloc"))) void *cohort_alloc(          \
      uint32_t n) {                                                          \
    return coh__payload_alloc(n);                                            \
  }                                                                          \
  __attribute__((export_name("cohort_init"))) int32_t cohort_init(          \
      char *p, uint32_t n) {                                                 \
    int32_t r = (INIT_FN)(p ? p : "", n);                                    \
    coh__payload_release(p);                                                 \
    return r;                                                                \
  }                                                                          \
  __attribute__((export_name("cohort_on_event"))) int32_t cohort_on_event(  \
      uint32_t kind, uint8_t *p, uint32_t n) {                               \
    coh_event ev;                                                            \
    int32_t r;                                                               \
    coh__split_event(kind, p, n, &ev);                                       \
    r = (EVENT_FN)(&ev);                                                     \
    coh__payload_release(p);                                                 \
    return r;                                                                \
  }

#endif /* COHORT_SDK_H */
