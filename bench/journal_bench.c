/* journal_bench.c — journal append throughput: N ticks of E events each
 * (payload of P bytes, agents a0..a63), one transaction per tick, then a
 * full verify() and an agent-filtered read.  Prints events/s; nothing is
 * asserted.  Usage: journal_bench [TICKS [EVENTS_PER_TICK [PAYLOAD_BYTES]]]
 * The journal is written in $TMPDIR (default /tmp) and deleted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cohort/journal.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int count(void *ud, const coh_jevent *ev) {
  (void)ev;
  (*(long *)ud)++;
  return 0;
}

int main(int argc, char **argv) {
  long ticks = argc > 1 ? atol(argv[1]) : 200;
  long per = argc > 2 ? atol(argv[2]) : 1000;
  long plen = argc > 3 ? atol(argv[3]) : 64;
  const char *dir = getenv("TMPDIR");
  char path[512], buf[600], hex[65], src[16], dst[16];
  char *payload;
  coh_journal *j = NULL;
  coh_err err;
  double t0, t1, t2, t3, c0, c1;
  long t, k, n = 0;
  int i;

  if (ticks <= 0 || per <= 0 || plen < 0) {
    fprintf(stderr, "usage: journal_bench [TICKS [EVENTS_PER_TICK [PAYLOAD_BYTES]]]\n");
    return 2;
  }
  snprintf(path, sizeof path, "%s/journal_bench_%ld.db", dir && *dir ? dir : "/tmp",
           (long)getpid());
  payload = malloc((size_t)plen + 1);
  if (payload == NULL) return 1;
  for (k = 0; k < plen; k++) payload[k] = (char)('a' + k % 26);
  if (coh_journal_create(path, "bench", 5, &j, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  t0 = now_s();
  c0 = cpu_s();
  for (t = 0; t < ticks; t++) {
    if (coh_journal_tick_begin(j, t, &err)) goto fail;
    for (k = 0; k < per; k++) {
      coh_jevent ev;
      memset(&ev, 0, sizeof ev);
      snprintf(src, sizeof src, "a%ld", k % 64);
      snprintf(dst, sizeof dst, "a%ld", (k * 7 + t) % 64);
      ev.tick = t;
      ev.kind = "message";
      ev.source = src;
      ev.target = dst;
      ev.payload = payload;
      ev.payload_len = (size_t)plen;
      if (coh_journal_append(j, &ev, &err)) goto fail;
    }
    if (coh_journal_tick_commit(j, 0, &err)) goto fail;
  }
  t1 = now_s();
  c1 = cpu_s();
  if (coh_journal_verify(j, &err)) goto fail;
  t2 = now_s();
  if (coh_journal_events(j, INT64_MIN, INT64_MAX, "a5", count, &n, &err)) goto fail;
  t3 = now_s();
  coh_journal_digest(j, hex);
  printf("journal append: %ld ticks x %ld events (%ld-byte payloads): %.0f events/s "
         "(%.2f us/event)\n", ticks, per, plen, ticks * per / (t1 - t0),
         (t1 - t0) * 1e6 / (double)(ticks * per));
  /* CPU time too: on a shared machine wall time includes waiting for a
   * core (the writer is single-threaded; pwrite/fdatasync are counted in
   * both). */
  printf("journal append, CPU time: %.0f events/s\n", ticks * per / (c1 - c0));
  printf("journal verify: %.0f events/s\n", ticks * per / (t2 - t1));
  printf("journal events(agent a5): %ld events in %.3f s\n", n, t3 - t2);
  printf("digest: %s\n", hex);
  coh_journal_close(j);
  free(payload);
  for (i = 0; i < 3; i++) {
    snprintf(buf, sizeof buf, "%s%s", path, i == 0 ? "" : i == 1 ? "-wal" : "-shm");
    unlink(buf);
  }
  return 0;
fail:
  fprintf(stderr, "%s\n", err.msg);
  coh_journal_close(j);
  unlink(path);
  return 1;
}
