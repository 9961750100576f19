/*
 * test_fault_vfs.c — I/O fault injection under the journal (issue 9,
 * part 6).  A SQLite VFS shim, registered here as the process's default VFS
 * and wrapping the unix VFS, fails the Nth xRead, xWrite or xSync call once.
 * The production binary carries no hook: this program links cohort_core and
 * drives a whole run through the public API (include/cohort/orch.h), as
 * `cohort run` does.
 *
 * A reference run of a small LLM-free scenario (echo ping-pong, a timer, the
 * random stream, checkpoints every 4 ticks) counts the calls of each kind
 * over journal creation, the run and close.  Then, for every N from 1 to
 * that count (or an even sample when the count is over SWEEP_MAX; the
 * figures printed say which), a fresh run with the Nth call failing must:
 *   - end with an error whose message names the journal, or, where SQLite
 *     absorbs the fault (it retries some reads; close's checkpoint has no
 *     caller to tell), complete with the reference digest;
 *   - leave either no journal at all (the fault came while the journal was
 *     being built under PATH.creating, which is removed) or one that
 *     verifies (coh_journal_verify: the chain, blobs and tick bookkeeping);
 *   - and `resume` of that journal (open, verify, coh_run_record_load,
 *     COH_RUN_RESUME) must reach the uninterrupted run's digest, and the
 *     resumed journal must verify again.
 * docs/reliability.md ("Fault injection") records the figures.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cohort/journal.h"
#include "cohort/orch.h"
#include "cohort/scenario.h"
#include "test.h"

/* Sweep every N up to this many calls of a kind; above it, an even sample
 * of SWEEP_MAX points (first and last call included). */
#define SWEEP_MAX 200

/* ---- the shim ----------------------------------------------------------- */

enum { K_READ, K_WRITE, K_SYNC, K_COUNT };
static const char *const kind_name[K_COUNT] = {"read", "write", "sync"};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static long calls[K_COUNT];  /* calls of each kind since shim_reset */
static int arm_kind = -1;    /* the kind to fail, -1: none */
static long arm_at;          /* fail call number arm_at of arm_kind, once */
static int fired;            /* the armed failure happened */

typedef struct shim_file {
  sqlite3_file base; /* pMethods = &shim_io, or NULL when the open failed */
  sqlite3_file *real; /* the unix VFS's file, allocated right after */
} shim_file;

static void shim_reset(int kind, long at) {
  memset(calls, 0, sizeof calls);
  arm_kind = kind;
  arm_at = at;
  fired = 0;
}

/* Counts a call; 1 if this one must fail. */
static int hit(int kind) {
  calls[kind]++;
  if (kind == arm_kind && calls[kind] == arm_at) {
    fired = 1;
    return 1;
  }
  return 0;
}

#define REAL(f) (((shim_file *)(f))->real)

static int x_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int x_read(sqlite3_file *f, void *b, int n, sqlite3_int64 off) {
  if (hit(K_READ)) return SQLITE_IOERR_READ;
  return REAL(f)->pMethods->xRead(REAL(f), b, n, off);
}
static int x_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off) {
  if (hit(K_WRITE)) return SQLITE_IOERR_WRITE;
  return REAL(f)->pMethods->xWrite(REAL(f), b, n, off);
}
static int x_truncate(sqlite3_file *f, sqlite3_int64 size) {
  return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int x_sync(sqlite3_file *f, int flags) {
  if (hit(K_SYNC)) return SQLITE_IOERR_FSYNC;
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int x_size(sqlite3_file *f, sqlite3_int64 *size) {
  return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int x_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int x_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int x_check(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int x_fcntl(sqlite3_file *f, int op, void *arg) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int x_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int x_devchar(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int x_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp) {
  return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int x_shm_lock(sqlite3_file *f, int off, int n, int flags) {
  return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void x_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int x_shm_unmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* Version 2: WAL's shared memory, but no xFetch, so SQLite does not
 * memory-map the file and every page read goes through xRead. */
static const sqlite3_io_methods shim_io = {
    2,        x_close,       x_read,      x_write,   x_truncate, x_sync,
    x_size,   x_lock,        x_unlock,    x_check,   x_fcntl,    x_sector,
    x_devchar, x_shm_map,    x_shm_lock,  x_shm_barrier, x_shm_unmap,
    NULL,     NULL};

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
  shim_file *sf = (shim_file *)f;
  int rc;
  (void)v;
  sf->real = (sqlite3_file *)(sf + 1);
  rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out);
  sf->base.pMethods = sf->real->pMethods ? &shim_io : NULL;
  return rc;
}
static int v_delete(sqlite3_vfs *v, const char *n, int sync) {
  return real_vfs->xDelete(real_vfs, n, sync);
}
static int v_access(sqlite3_vfs *v, const char *n, int flags, int *out) {
  return real_vfs->xAccess(real_vfs, n, flags, out);
}
static int v_full(sqlite3_vfs *v, const char *n, int len, char *out) {
  return real_vfs->xFullPathname(real_vfs, n, len, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *n) { return real_vfs->xDlOpen(real_vfs, n); }
static void v_dlerror(sqlite3_vfs *v, int n, char *m) { real_vfs->xDlError(real_vfs, n, m); }
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *s))(void) {
  return real_vfs->xDlSym(real_vfs, h, s);
}
static void v_dlclose(sqlite3_vfs *v, void *h) { real_vfs->xDlClose(real_vfs, h); }
static int v_random(sqlite3_vfs *v, int n, char *out) {
  return real_vfs->xRandomness(real_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us) { return real_vfs->xSleep(real_vfs, us); }
static int v_time(sqlite3_vfs *v, double *t) { return real_vfs->xCurrentTime(real_vfs, t); }
static int v_lasterr(sqlite3_vfs *v, int n, char *m) {
  return real_vfs->xGetLastError(real_vfs, n, m);
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *t) {
  return real_vfs->xCurrentTimeInt64(real_vfs, t);
}

static int shim_install(void) {
  real_vfs = sqlite3_vfs_find("unix");
  if (real_vfs == NULL || real_vfs->iVersion < 2) return -1;
  memset(&shim_vfs, 0, sizeof shim_vfs);
  shim_vfs.iVersion = 2;
  shim_vfs.szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile;
  shim_vfs.mxPathname = real_vfs->mxPathname;
  shim_vfs.zName = "cohort-faultsim";
  shim_vfs.xOpen = v_open;
  shim_vfs.xDelete = v_delete;
  shim_vfs.xAccess = v_access;
  shim_vfs.xFullPathname = v_full;
  shim_vfs.xDlOpen = v_dlopen;
  shim_vfs.xDlError = v_dlerror;
  shim_vfs.xDlSym = v_dlsym;
  shim_vfs.xDlClose = v_dlclose;
  shim_vfs.xRandomness = v_random;
  shim_vfs.xSleep = v_sleep;
  shim_vfs.xCurrentTime = v_time;
  shim_vfs.xGetLastError = v_lasterr;
  shim_vfs.xCurrentTimeInt64 = v_time64;
  /* the default VFS: every sqlite3_open_v2(..., NULL) in cohort uses it */
  return sqlite3_vfs_register(&shim_vfs, 1) == SQLITE_OK ? 0 : -1;
}

/* ---- the run ------------------------------------------------------------ */

static char tmp[512], cache[1024], scenario_path[1024];
static char ref_digest[65];
static int keep_files;

/* The sweep needs the same number of SQLite calls in every run of the
 * scenario, so nothing that reaches the journal may depend on timing:
 *   - one tick per transaction: the journal writer groups whatever ticks
 *     are queued when it commits, which depends on thread timing (grouping
 *     itself is tested in test_jwriter.c);
 *   - wall_us journaled as 0: a timing's varint width changes the size of
 *     its row, and with it how many pages a commit writes.  Under load (or
 *     in the first run of a process, which compiles the agent modules) the
 *     reference run made 2,753 writes and a trial 2,755, or the other way
 *     round, so the last N of the sweep was never reached.  wall_us is
 *     outside the chain: the digests are those of a timed run. */
static const coh_jwriter_opts one_tick_groups = {.max_group = 1, .zero_wall_us = 1};

static void init_options(coh_run_options *o) {
  memset(o, 0, sizeof *o);
  o->cache_dir = cache;
  o->workers = 2;
  o->journal_writer = &one_tick_groups;
}

/* Creates the journal at path (as the CLI does: genesis, blobs, and the
 * scenario's location as meta) and runs the scenario into it.  Returns the
 * first error; *sum is the run's summary when it got that far. */
static int fresh_run(const coh_scenario *s, const char *path, coh_run_summary *sum,
                     coh_err *err) {
  coh_run_options o;
  coh_run_record *rec = NULL;
  coh_journal *j = NULL;
  coh_journal_init init;
  const char *keys[3] = {"scenario_path", "scenario_dir", "status"};
  const void *vals[3];
  size_t lens[3];
  int rc;
  init_options(&o);
  memset(sum, 0, sizeof *sum);
  if ((rc = coh_run_record_new(s, &o, &rec, err))) return rc;
  vals[0] = s->path;
  vals[1] = s->dir;
  vals[2] = "running";
  lens[0] = strlen(s->path);
  lens[1] = strlen(s->dir);
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
  rc = coh_journal_create_init(path, &init, &j, err);
  if (rc == COH_OK) {
    o.mode = COH_RUN_FRESH;
    o.journal = j;
    o.modules = rec->modules;
    rc = coh_run(s, &o, sum, err);
  }
  coh_journal_close(j); /* close's WAL checkpoint is inside the sweep too */
  coh_run_record_free(rec);
  return rc;
}

/* Opens and verifies path; 0 on success, else prints why. */
static int verify_file(const char *path) {
  coh_journal *j = NULL;
  coh_err err;
  int rc = coh_journal_open(path, &j, &err);
  if (rc == COH_OK) rc = coh_journal_verify(j, &err);
  if (rc) fprintf(stderr, "verify %s: %s\n", path, err.msg);
  coh_journal_close(j);
  return rc;
}

/* Resumes path (verified first, as the CLI does) to the end. */
static int resume_file(const char *path, char digest[65], coh_err *err) {
  coh_run_options o;
  coh_run_summary sum;
  coh_run_record *rec = NULL;
  coh_scenario *s = NULL;
  coh_journal *j = NULL;
  int rc;
  init_options(&o);
  digest[0] = '\0';
  if ((rc = coh_journal_open(path, &j, err)) || (rc = coh_journal_verify(j, err)) ||
      (rc = coh_run_record_load(j, &o, &s, &rec, err)))
    goto done;
  o.mode = COH_RUN_RESUME;
  o.journal = j;
  o.modules = rec->modules;
  if ((rc = coh_run(s, &o, &sum, err))) goto done;
  if (sum.diverged_tick >= 0) {
    rc = COH_ESTATE;
    snprintf(err->msg, sizeof err->msg, "resume diverged at tick %lld", (long long)sum.diverged_tick);
    goto done;
  }
  memcpy(digest, sum.digest, 65);
done:
  coh_journal_close(j);
  coh_run_record_free(rec);
  coh_scenario_free(s);
  return rc;
}

static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

static void remove_journal(const char *path) {
  char b[1100];
  const char *sfx[] = {"", "-wal", "-shm", ".creating", ".creating-wal", ".creating-shm",
                       ".creating-journal"};
  size_t i;
  for (i = 0; i < sizeof sfx / sizeof *sfx; i++) {
    snprintf(b, sizeof b, "%s%s", path, sfx[i]);
    unlink(b);
  }
}

/* Figures for docs/reliability.md, per kind. */
typedef struct tally {
  long total, swept, errors, absorbed, no_journal, resumed;
} tally;

/* One trial: fail call `at` of `kind`; check everything the header says. */
static void trial(const coh_scenario *s, int kind, long at, tally *t) {
  char path[1024], creating[1100], digest[65];
  coh_run_summary sum;
  coh_err err, rerr;
  int rc, ok = 1, did_fire;
  snprintf(path, sizeof path, "%s/f-%s-%ld.db", tmp, kind_name[kind], at);
  snprintf(creating, sizeof creating, "%s.creating", path);
  remove_journal(path);
  coh_err_clear(&err);
  shim_reset(kind, at);
  rc = fresh_run(s, path, &sum, &err);
  if (keep_files && strcmp(sum.digest, ref_digest))
    printf("%s %ld: rc %d, %s, digest %s\n", kind_name[kind], at, rc, err.msg, sum.digest);
  did_fire = fired;
  shim_reset(-1, 0);
  t->swept++;
  if (!did_fire) {
    fprintf(stderr, "%s %ld: the fault never fired\n", kind_name[kind], at);
    CHECK(did_fire);
    return;
  }
  if (rc != COH_OK) {
    t->errors++;
    /* a clear error: it names the journal (PATH or PATH.creating) */
    if (strstr(err.msg, path) == NULL) {
      fprintf(stderr, "%s %ld: error does not name the journal: %s\n", kind_name[kind], at,
              err.msg);
      ok = 0;
    }
  } else {
    t->absorbed++;
    if (strcmp(sum.digest, ref_digest) != 0) {
      fprintf(stderr, "%s %ld: run succeeded with digest %s, want %s\n", kind_name[kind], at,
              sum.digest, ref_digest);
      ok = 0;
    }
  }
  if (exists(creating)) {
    fprintf(stderr, "%s %ld: %s left behind\n", kind_name[kind], at, creating);
    ok = 0;
  }
  if (!exists(path)) {
    /* only a failed creation may leave no journal */
    t->no_journal++;
    if (rc == COH_OK) {
      fprintf(stderr, "%s %ld: run succeeded but there is no journal\n", kind_name[kind], at);
      ok = 0;
    }
  } else if (verify_file(path) != COH_OK) {
    fprintf(stderr, "%s %ld: the journal does not verify after the fault (%s)\n",
            kind_name[kind], at, err.msg);
    ok = 0;
  } else if (resume_file(path, digest, &rerr) != COH_OK) {
    fprintf(stderr, "%s %ld: resume failed: %s\n", kind_name[kind], at, rerr.msg);
    ok = 0;
  } else if (strcmp(digest, ref_digest) != 0) {
    fprintf(stderr, "%s %ld: resume digest %s, want %s\n", kind_name[kind], at, digest,
            ref_digest);
    ok = 0;
  } else if (verify_file(path) != COH_OK) {
    ok = 0;
  } else {
    t->resumed++;
  }
  CHECK(ok);
  if (ok) remove_journal(path);
}

static const char scenario_fmt[] =
    "name: vfs\n"
    "seed: 5\n"
    "stop: {max_ticks: 24, quiescence: true}\n"
    "checkpoint_every: 4\n"
    "agents:\n"
    "  - {id: node, module: %s/agents/echo.wasm, count: 4, inbox: 8}\n"
    "  - {id: c, module: %s/agents/chatter.wasm}\n"
    "messages:\n"
    "  - {from: node-1, to: node-0, body: \"ping 0\"}\n"
    "  - {from: node-3, to: node-2, body: \"ping 1\", tick: 3}\n"
    "  - {to: c, body: \"timer 5\"}\n"
    "  - {to: c, body: \"rand\", tick: 2}\n"
    "  - {to: c, body: \"hello\", tick: 9}\n";

static void test_vfs_sweep(void) {
  const char *build = getenv("COH_BUILD_DIR");
  char ref_path[1100];
  long ref_calls[K_COUNT];
  coh_scenario *s = NULL;
  coh_run_summary sum;
  coh_err err;
  FILE *f;
  int k;
  REQUIRE(build != NULL);
  snprintf(cache, sizeof cache, "%s/test-module-cache", build);
  /* tmpfs where there is one: fsync is then free, and the sweep is
   * hundreds of runs */
  snprintf(tmp, sizeof tmp, "%s/coh-faultvfs-XXXXXX",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  REQUIRE(mkdtemp(tmp) != NULL);
  snprintf(scenario_path, sizeof scenario_path, "%s/vfs.yaml", tmp);
  f = fopen(scenario_path, "w");
  REQUIRE(f != NULL);
  fprintf(f, scenario_fmt, build, build);
  fclose(f);
  REQUIRE(shim_install() == 0);
  if (coh_scenario_load(scenario_path, &s, &err)) {
    fprintf(stderr, "scenario: %s\n", err.msg);
    REQUIRE(0);
  }

  /* the reference: no fault; count the calls.  Twice: the sweep stands on
   * every run making the same calls, so that is checked first (the first
   * run of the process also compiles the agent modules, the slow case). */
  snprintf(ref_path, sizeof ref_path, "%s/ref.db", tmp);
  for (k = 0; k < 2; k++) {
    remove_journal(ref_path);
    shim_reset(-1, 0);
    if (fresh_run(s, ref_path, &sum, &err)) fprintf(stderr, "reference run: %s\n", err.msg);
    if (k == 0) {
      memcpy(ref_calls, calls, sizeof calls);
      memcpy(ref_digest, sum.digest, 65);
    }
  }
  for (k = 0; k < K_COUNT; k++)
    if (calls[k] != ref_calls[k]) {
      fprintf(stderr, "two fault-free runs made %ld and %ld %s calls: the sweep needs the same "
              "count every run (see one_tick_groups)\n", ref_calls[k], calls[k], kind_name[k]);
      CHECK(calls[k] == ref_calls[k]);
    }
  CHECK(strcmp(sum.digest, ref_digest) == 0);
  CHECK(ref_digest[0] != '\0');
  CHECK(sum.ticks == 24);
  CHECK(verify_file(ref_path) == COH_OK);
  printf("reference: %lld ticks, %lld events, digest %s; calls: %ld reads, %ld writes, %ld syncs\n",
         (long long)sum.ticks, (long long)sum.events, ref_digest, ref_calls[K_READ],
         ref_calls[K_WRITE], ref_calls[K_SYNC]);
  for (k = 0; k < K_COUNT; k++) CHECK(ref_calls[k] > 0);

  if (getenv("COH_FAULT_ONLY")) {
    /* debugging: COH_FAULT_ONLY=write:2490 (or write:2400-2500) runs
     * those trials only and keeps the files of any that fails */
    char kn[16];
    long at, to;
    tally t;
    memset(&t, 0, sizeof t);
    REQUIRE(sscanf(getenv("COH_FAULT_ONLY"), "%15[a-z]:%ld", kn, &at) == 2);
    if (sscanf(getenv("COH_FAULT_ONLY"), "%*[a-z]:%*d-%ld", &to) != 1) to = at;
    for (k = 0; k < K_COUNT && strcmp(kn, kind_name[k]); k++) continue;
    REQUIRE(k < K_COUNT);
    keep_files = 1;
    for (; at <= to; at++) trial(s, k, at, &t);
    printf("kept in %s\n", tmp);
    coh_scenario_free(s);
    return;
  }
  for (k = 0; k < K_COUNT; k++) {
    tally t;
    long i, n = ref_calls[k], points = n <= SWEEP_MAX ? n : SWEEP_MAX;
    memset(&t, 0, sizeof t);
    t.total = n;
    for (i = 0; i < points; i++) {
      /* every N, or an even sample that includes the first and last */
      long at = points == n ? i + 1 : 1 + (i * (n - 1)) / (points - 1);
      trial(s, k, at, &t);
    }
    printf("fail the Nth %s: %ld calls in the run, %ld N swept (%s); %ld ended with an error "
           "naming the journal, %ld absorbed by SQLite with the right digest; %ld left no "
           "journal (fault during creation); %ld journals verified and resumed to the "
           "reference digest\n",
           kind_name[k], t.total, t.swept, points == n ? "all" : "even sample", t.errors,
           t.absorbed, t.no_journal, t.resumed);
    CHECK_EQ_INT(t.resumed + t.no_journal, t.swept);
  }
  fflush(stdout);
  coh_scenario_free(s);
  remove_journal(ref_path);
  unlink(scenario_path);
  if (test__failures == 0) rmdir(tmp);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_vfs_sweep);
  return TEST_MAIN_END();
}
