/*
 * ring.h — bounded single-producer/single-consumer ring of pointers, C11
 * atomics, with futex wait/wake so that an idle consumer (or a producer
 * facing a full ring) sleeps instead of spinning.
 *
 * The orchestrator hands work to each worker and engine thread through one
 * ring, and gets results back through another: no thread ever writes a
 * structure another thread is reading.
 */
#ifndef COH_RING_H
#define COH_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct coh__ring {
  void **slots;
  uint32_t mask;              /* capacity - 1 (capacity: power of two) */
  _Alignas(64) _Atomic uint32_t head; /* next slot to read; consumer-owned */
  _Alignas(64) _Atomic uint32_t tail; /* next slot to write; producer-owned */
  _Alignas(64) _Atomic uint32_t waiters; /* sleepers on head/tail (futex) */
} coh__ring;

/* capacity: rounded up to a power of two, >= 2.  COH_ENOMEM on failure. */
int coh__ring_init(coh__ring *r, uint32_t capacity);
void coh__ring_destroy(coh__ring *r);

/* Producer: enqueues p (non-NULL), sleeping while the ring is full. */
void coh__ring_push(coh__ring *r, void *p);
/* Producer: enqueues p if there is room; 0 on success, -1 if full. */
int coh__ring_try_push(coh__ring *r, void *p);
/* Consumer: dequeues, sleeping while the ring is empty. */
void *coh__ring_pop(coh__ring *r);
/* Consumer: dequeues if not empty; NULL if empty. */
void *coh__ring_try_pop(coh__ring *r);

#endif /* COH_RING_H */
