/*
 * ring.c — the SPSC ring (see ring.h).
 *
 * Wait/wake protocol: a thread that finds the ring empty (consumer) or full
 * (producer) registers in `waiters`, re-checks, and sleeps on the futex word
 * it is waiting to change (tail for the consumer, head for the producer).
 * The other side, after publishing, wakes that word if anyone is
 * registered.  The re-check after registering closes the lost-wake-up race:
 * the futex call itself returns at once if the word already changed.
 */
#include "ring.h"
#include "util/util_int.h"

int coh__ring_init(coh__ring *r, uint32_t capacity) {
  uint32_t cap = 2;
  while (cap < capacity && cap < (1u << 30)) cap <<= 1;
  r->slots = coh__calloc(cap, sizeof *r->slots);
  if (r->slots == NULL) return COH_ENOMEM;
  r->mask = cap - 1;
  atomic_init(&r->head, 0);
  atomic_init(&r->tail, 0);
  atomic_init(&r->waiters, 0);
  return COH_OK;
}

void coh__ring_destroy(coh__ring *r) {
  coh__free(r->slots);
  r->slots = NULL;
}

int coh__ring_try_push(coh__ring *r, void *p) {
  uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
  if (tail - head > r->mask) return -1;
  r->slots[tail & r->mask] = p;
  atomic_store_explicit(&r->tail, tail + 1, memory_order_seq_cst);
  if (atomic_load_explicit(&r->waiters, memory_order_seq_cst) != 0) coh__futex_wake(&r->tail, 1);
  return 0;
}

void coh__ring_push(coh__ring *r, void *p) {
  while (coh__ring_try_push(r, p) != 0) {
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    atomic_fetch_add_explicit(&r->waiters, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&r->tail, memory_order_relaxed) - head > r->mask)
      coh__futex_wait(&r->head, head, -1);
    atomic_fetch_sub_explicit(&r->waiters, 1, memory_order_seq_cst);
  }
}

void *coh__ring_try_pop(coh__ring *r) {
  uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
  void *p;
  if (head == tail) return NULL;
  p = r->slots[head & r->mask];
  atomic_store_explicit(&r->head, head + 1, memory_order_seq_cst);
  if (atomic_load_explicit(&r->waiters, memory_order_seq_cst) != 0) coh__futex_wake(&r->head, 1);
  return p;
}

void *coh__ring_pop(coh__ring *r) {
  for (;;) {
    void *p = coh__ring_try_pop(r);
    uint32_t tail;
    if (p != NULL) return p;
    tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    atomic_fetch_add_explicit(&r->waiters, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&r->head, memory_order_relaxed) == tail)
      coh__futex_wait(&r->tail, tail, -1);
    atomic_fetch_sub_explicit(&r->waiters, 1, memory_order_seq_cst);
  }
}
