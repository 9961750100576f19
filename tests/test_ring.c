/*
 * test_ring.c — the SPSC ring: order, capacity, blocking push/pop across two
 * threads (also run under ThreadSanitizer).
 */
#include <pthread.h>
#include <stdint.h>

#include "sched/ring.h"
#include "test.h"

static void test_order_and_capacity(void) {
  coh__ring r;
  uintptr_t i;
  REQUIRE(coh__ring_init(&r, 5) == 0); /* rounds up to 8 */
  CHECK(coh__ring_try_pop(&r) == NULL);
  for (i = 1; i <= 8; i++) CHECK_EQ_INT(coh__ring_try_push(&r, (void *)i), 0);
  CHECK_EQ_INT(coh__ring_try_push(&r, (void *)9), -1);
  for (i = 1; i <= 8; i++) CHECK(coh__ring_try_pop(&r) == (void *)i);
  CHECK(coh__ring_try_pop(&r) == NULL);
  coh__ring_destroy(&r);
}

#define N_ITEMS 200000

static void *producer(void *arg) {
  coh__ring *r = arg;
  uintptr_t i;
  for (i = 1; i <= N_ITEMS; i++) coh__ring_push(r, (void *)i);
  return NULL;
}

/* A small ring forces both sides to sleep on the futex many times; every
 * item must arrive exactly once, in order. */
static void test_two_threads(void) {
  coh__ring r;
  pthread_t t;
  uintptr_t i, bad = 0;
  REQUIRE(coh__ring_init(&r, 4) == 0);
  REQUIRE(pthread_create(&t, NULL, producer, &r) == 0);
  for (i = 1; i <= N_ITEMS; i++)
    if (coh__ring_pop(&r) != (void *)i) bad++;
  pthread_join(t, NULL);
  CHECK_EQ_INT(bad, 0);
  CHECK(coh__ring_try_pop(&r) == NULL);
  coh__ring_destroy(&r);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_order_and_capacity);
  RUN(test_two_threads);
  return TEST_MAIN_END();
}
