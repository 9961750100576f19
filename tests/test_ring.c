/*
 * test_ring.c — the SPSC ring: order, capacity and its rounding, wrap-around,
 * blocking push/pop across two threads (also run under ThreadSanitizer).
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

/* Fills a ring made with `asked` slots and returns how many pushes it took. */
static uint32_t filled(uint32_t asked) {
  coh__ring r;
  uintptr_t i = 1;
  if (coh__ring_init(&r, asked) != 0) return 0;
  while (i <= 64 && coh__ring_try_push(&r, (void *)i) == 0) i++;
  coh__ring_destroy(&r);
  return (uint32_t)(i - 1);
}

/* A power of two is kept as it is; anything else rounds up; at least 2. */
static void test_rounding(void) {
  CHECK_EQ_INT(filled(0), 2);
  CHECK_EQ_INT(filled(1), 2);
  CHECK_EQ_INT(filled(2), 2);
  CHECK_EQ_INT(filled(3), 4);
  CHECK_EQ_INT(filled(4), 4);
  CHECK_EQ_INT(filled(16), 16);
  CHECK_EQ_INT(filled(17), 32);
}

/* Indices keep working after they wrap around the slots many times over. */
static void test_wrap(void) {
  coh__ring r;
  uintptr_t i, next = 1, bad = 0;
  REQUIRE(coh__ring_init(&r, 4) == 0);
  for (i = 1; i <= 1000; i++) {
    CHECK_EQ_INT(coh__ring_try_push(&r, (void *)i), 0);
    if (i % 3 == 0) /* one to three items in the ring, then empty it */
      while (next <= i)
        if (coh__ring_try_pop(&r) != (void *)next++) bad++;
  }
  while (next <= 1000)
    if (coh__ring_try_pop(&r) != (void *)next++) bad++;
  CHECK_EQ_INT(bad, 0);
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
  RUN(test_rounding);
  RUN(test_wrap);
  RUN(test_two_threads);
  return TEST_MAIN_END();
}
