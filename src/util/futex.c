/*
 * futex.c — the library's futex wait and wake (util_int.h), for the
 * orchestrator's SPSC rings and the monitor's publication and control
 * words.  Linux only, private (process-local) futexes.
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util_int.h"

void coh__futex_wait(_Atomic uint32_t *word, uint32_t expected, int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, ms >= 0 ? &ts : NULL,
          NULL, 0);
}

void coh__futex_wake(_Atomic uint32_t *word, int n) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
