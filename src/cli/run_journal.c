/*
 * run_journal.c — how the CLI creates a run's journal and opens one it is
 * going to trust.
 *
 * Creating: the journal holds the run's genesis record and its blobs (the
 * scenario text and every agent module), so that replay and resume need no
 * file but the models; the scenario's folder is recorded as an absolute
 * path, so the models are found from any working directory.
 *
 * Opening (replay, resume, inspect): open, then verify the whole chain —
 * genesis, blobs, events, checkpoints and tick records — before anything
 * else reads it.  A journal that fails is refused with exit 1 and a message
 * naming the first bad record (table, row, tick); docs/journal.md.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"
#include "cohort/journal.h"
#include "cohort/orch.h"
#include "util/util_int.h"

int coh__create_journal(const char *path, const coh_scenario *s, const coh_run_record *rec,
                        coh_journal **out, coh_err *err) {
  coh_journal_init init;
  char *dir = realpath(s->dir, NULL);
  const char *keys[3] = {"scenario_path", "scenario_dir", "status"};
  const void *vals[3];
  size_t lens[3];
  int rc;
  if (dir == NULL) {
    *out = NULL;
    return coh__err(err, COH_EIO, "scenario folder %s: cannot resolve it", s->dir);
  }
  vals[0] = s->path;
  vals[1] = dir;
  vals[2] = "running";
  lens[0] = strlen(s->path);
  lens[1] = strlen(dir);
  lens[2] = 7;
  memset(&init, 0, sizeof init);
  init.inputs = rec->genesis;
  init.inputs_len = rec->genesis_len;
  init.meta_keys = keys;
  init.meta_values = vals;
  init.meta_lens = lens;
  init.n_meta = 3;
  init.blobs = rec->blobs;
  init.n_blobs = rec->n_blobs;
  rc = coh_journal_create_init(path, &init, out, err);
  free(dir);
  return rc;
}

int coh__journal_open_verified(const char *cmd, const char *path, coh_journal **out) {
  return coh__journal_open_resumable(cmd, path, 1, out);
}

/* Where a resume will restore from: the latest resume state at or before
 * the last tick row (orch.c's find_resume_state asks the same), or
 * INT64_MIN when there is none, the run is complete (a resume that does
 * nothing says so only of a journal that verifies) or `whole` asks for the
 * whole chain. */
static int resume_from(coh_journal *j, int whole, int64_t *from, coh_err *err) {
  int64_t last = -1, n = 0, tick = -1;
  char *status = NULL;
  size_t sl;
  int rc;
  *from = INT64_MIN;
  if (whole) return COH_OK;
  rc = coh_journal_meta_get(j, "status", &status, &sl, err);
  if (rc == COH_OK && !strcmp(status, "complete")) rc = 1;
  coh_free(status);
  if (rc == 1) return COH_OK;
  if (rc != COH_OK && rc != COH_ENOENT) return rc;
  if ((rc = coh_journal_last_tick(j, &last, &n, err)) ||
      (rc = coh_journal_checkpoint_tick_of(j, COH_JOURNAL_ORCH_CHECKPOINT, last, &tick, err)))
    return rc;
  if (tick >= 0) *from = tick;
  return COH_OK;
}

int coh__journal_open_resumable(const char *cmd, const char *path, int whole, coh_journal **out) {
  coh_journal *j = NULL;
  coh_err err;
  int64_t from = INT64_MIN;
  *out = NULL;
  if (coh_journal_open(path, &j, &err)) return coh__runtime_error(cmd, "%s", err.msg);
  if (resume_from(j, whole, &from, &err)) {
    coh_journal_close(j);
    return coh__runtime_error(cmd, "%s", err.msg);
  }
  if (coh_journal_verify_from(j, from, &err)) {
    coh_journal_close(j);
    return coh__runtime_error(cmd, "%s; refusing a journal that fails verification", err.msg);
  }
  *out = j;
  return COH_EXIT_OK;
}
