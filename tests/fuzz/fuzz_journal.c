/* fuzz_journal.c — libFuzzer harness for the journal reader: the input is
 * written to a temporary file, which is then opened as a journal, walked
 * (events, checkpoints, meta), verified, and — if it opened — appended to
 * (a tick after its last one) and verified again.
 *
 * Properties checked beyond "no crash, no sanitizer report":
 *  - every failure is a COH_E* code with a non-empty message;
 *  - after a successful append + commit on a journal that verified, it
 *    still verifies (appending never breaks a good chain).
 *
 * Built as a fuzzer with -DCOH_FUZZ=ON (clang); test_journal also includes
 * this file and runs coh__fuzz_journal_one over valid, bit-flipped and
 * truncated journals, so regressions stay tested in ordinary builds.
 * Seed corpus: any journal (`test_journal --write-sample seed.db`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/journal.h"

#define FUZZ_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond,   \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)

static int fuzz_count_ev(void *ud, const coh_jevent *ev) {
  size_t *n = ud;
  FUZZ_CHECK(ev->kind != NULL && ev->source != NULL && ev->target != NULL);
  FUZZ_CHECK(ev->payload != NULL || ev->payload_len == 0);
  (*n)++;
  return 0;
}

static int fuzz_count_ck(void *ud, const char *agent, const void *state,
                         size_t len) {
  size_t *n = ud;
  FUZZ_CHECK(agent != NULL && (state != NULL || len == 0));
  (*n)++;
  return 0;
}

static void fuzz_rc_ok(int rc, const coh_err *err) {
  if (rc == 0) return;
  FUZZ_CHECK(rc < 0 && err->code == rc && err->msg[0] != '\0');
}

static void fuzz_unlink(const char *path) {
  char buf[512];
  unlink(path);
  snprintf(buf, sizeof buf, "%s-wal", path);
  unlink(buf);
  snprintf(buf, sizeof buf, "%s-shm", path);
  unlink(buf);
}

/* Runs the properties on one input; returns 1 if it opened as a journal. */
static int coh__fuzz_journal_one(const uint8_t *data, size_t size) {
  /* tmpfs when there is one: every append commits, and an fsync to disk
   * would cost more than the rest of the input together */
  char path[64];
  coh_journal *j = NULL;
  coh_err err;
  int fd, rc, opened = 0, verified;
  size_t n = 0;
  int64_t tick = 0, nev = 0, ck = -1;
  char *v = NULL;
  char hex[65];

  snprintf(path, sizeof path, "%s/coh_fuzz_journal_XXXXXX",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  fd = mkstemp(path);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
  close(fd);
  coh_err_clear(&err);
  rc = coh_journal_open(path, &j, &err);
  fuzz_rc_ok(rc, &err);
  if (rc == 0) {
    opened = 1;
    coh_journal_digest(j, hex);
    FUZZ_CHECK(strlen(hex) == 64);
    rc = coh_journal_last_tick(j, &tick, &nev, &err);
    fuzz_rc_ok(rc, &err);
    rc = coh_journal_events(j, INT64_MIN, INT64_MAX, NULL, fuzz_count_ev, &n,
                            &err);
    fuzz_rc_ok(rc, &err);
    rc = coh_journal_events(j, 0, 3, "a", fuzz_count_ev, &n, &err);
    fuzz_rc_ok(rc, &err);
    rc = coh_journal_meta_get(j, "inputs", &v, NULL, &err);
    fuzz_rc_ok(rc, &err);
    coh_free(v);
    rc = coh_journal_checkpoint_tick(j, INT64_MAX, &ck, &err);
    fuzz_rc_ok(rc, &err);
    if (rc == 0 && ck >= 0) {
      rc = coh_journal_checkpoints(j, ck, fuzz_count_ck, &n, &err);
      fuzz_rc_ok(rc, &err);
    }
    rc = coh_journal_verify(j, &err);
    fuzz_rc_ok(rc, &err);
    verified = rc == 0;
    if (coh_journal_last_tick(j, &tick, &nev, &err) == 0 && tick < INT64_MAX &&
        coh_journal_tick_begin(j, tick + 1, &err) == 0) {
      coh_jevent ev;
      memset(&ev, 0, sizeof ev);
      ev.tick = tick + 1;
      ev.kind = "message";
      ev.source = "a";
      ev.target = "b";
      ev.payload = "hi";
      ev.payload_len = 2;
      rc = coh_journal_append(j, &ev, &err);
      fuzz_rc_ok(rc, &err);
      if (rc == 0) rc = coh_journal_tick_commit(j, 0, &err);
      fuzz_rc_ok(rc, &err);
      if (rc != 0) coh_journal_tick_rollback(j);
      else if (verified) {
        rc = coh_journal_verify(j, &err);
        if (rc != 0) fprintf(stderr, "fuzz: %s\n", err.msg);
        FUZZ_CHECK(rc == 0);
      }
    }
    coh_journal_close(j);
  }
  fuzz_unlink(path);
  return opened;
}

#ifdef COH_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  coh__fuzz_journal_one(data, size);
  return 0;
}
#endif
