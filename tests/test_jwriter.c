/*
 * test_jwriter.c — the journal writer thread (cohort/jwriter.h).
 *
 *   same_chain     ticks written through the writer (small queue, groups of
 *                  up to three ticks) give the same rows, chain values and
 *                  digest as tick-by-tick coh_journal_append; every event is
 *                  reported once, in seq order, with its seq and chain
 *   backpressure   a disk that lags (a test hook blocks the writer before
 *                  its first COMMIT): the producer stops in tick_begin with
 *                  exactly max_ticks ticks held, nothing is durable and
 *                  nothing is reported; when the disk catches up every tick
 *                  is written and the peak never passed the bound
 *   byte_bound     the same with the byte bound: held bytes stay below
 *                  max_bytes plus twice the largest tick
 *   writer_error   an error on the writer thread (a second checkpoint of
 *                  one agent in a tick, refused by the journal) fails the
 *                  producer's next calls with the journal's message; the
 *                  journal keeps the earlier groups, verifies, and none of
 *                  the failed tick is reported
 *   group_bytes    a tick over max_group_bytes is not bundled with the
 *                  small ticks queued before it (a disk-full there loses
 *                  only it)
 *   run_lagging_loop  coh_run itself against a disk stuck at its first
 *                  COMMIT (queue of 2 ticks): the tick loop stops at the
 *                  start of tick 2, nothing is reported, and when the disk
 *                  moves the run ends with the digest of one that never
 *                  waited, every event reported once
 *   group_api      coh_journal_group_*: misuse is COH_ESTATE; a rolled-back
 *                  group leaves the handle and the file at its start
 *   zero_wall      zero_wall_us journals (and reports) every wall_us as 0
 *                  and leaves the digest that of the timed journal
 * Waits are for conditions with a deadline, never fixed sleeps.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cohort/journal.h"
#include "cohort/jwriter.h"
#include "cohort/orch.h"
#include "cohort/scenario.h"
#include "test.h"

static char tmpdir[256];
static int tmp_counter;

static const char *tmp_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%d-%s", tmpdir, tmp_counter++, name);
  return buf;
}

static const char inputs[] = "{\"test\":\"jwriter\"}";

/* ---- a deterministic stream of ticks ----------------------------------------- */

/* Tick t has (t * 7) % 5 events (some ticks none), payloads of varied length
 * (some empty), checkpoints of two agents every third tick and, every sixth,
 * a third one of the orchestrator's reserved id (its resume state), so that
 * every grouping below is compared with it on the chain too. */
typedef struct tick_gen {
  char payload[8][1200];
  coh_jevent ev[8];
  size_t n_ev;
  char state[3][64];
  size_t n_ck;
} tick_gen;

static const char *ck_agent(size_t i) {
  return i == 0 ? "agent-0" : i == 1 ? "agent-1" : COH_JOURNAL_ORCH_CHECKPOINT;
}

static void gen_tick(tick_gen *g, int64_t t, size_t payload_len) {
  static const char *const kinds[] = {"message", "emit", "log", "timer", "llm_request"};
  size_t i, k;
  memset(g->ev, 0, sizeof g->ev);
  g->n_ev = (size_t)((t * 7) % 5);
  for (i = 0; i < g->n_ev; i++) {
    size_t len = payload_len ? payload_len : (size_t)((t + (int64_t)i) % 3 == 0 ? 0 : 10 + i);
    for (k = 0; k < len; k++) g->payload[i][k] = (char)('a' + (t + (int64_t)k + (int64_t)i) % 26);
    g->ev[i].tick = t;
    g->ev[i].kind = kinds[i % 5];
    g->ev[i].source = i % 2 ? "agent-1" : "agent-0";
    g->ev[i].target = i % 3 ? "agent-2" : NULL;
    g->ev[i].payload = g->payload[i];
    g->ev[i].payload_len = len;
    g->ev[i].wall_us = t * 100 + (int64_t)i;
  }
  g->n_ck = t > 0 && t % 3 == 0 ? (t % 6 == 0 ? 3 : 2) : 0;
  for (i = 0; i < g->n_ck; i++) snprintf(g->state[i], sizeof g->state[i], "state %d of tick %lld", (int)i, (long long)t);
}

static int write_direct(coh_journal *j, int64_t from, int64_t to) {
  tick_gen g;
  coh_err err;
  int64_t t;
  size_t i;
  for (t = from; t <= to; t++) {
    gen_tick(&g, t, 0);
    if (coh_journal_tick_begin(j, t, &err)) return -1;
    for (i = 0; i < g.n_ev; i++)
      if (coh_journal_append(j, &g.ev[i], &err)) return -1;
    for (i = 0; i < g.n_ck; i++)
      if (coh_journal_checkpoint_put(j, ck_agent(i), g.state[i], strlen(g.state[i]), &err))
        return -1;
    if (coh_journal_tick_commit(j, t, &err)) return -1;
  }
  return 0;
}

/* Builds tick t into the writer; payload_len 0: varied. */
static int write_tick(coh_jwriter *w, int64_t t, size_t payload_len, coh_err *err) {
  tick_gen g;
  size_t i;
  int rc;
  gen_tick(&g, t, payload_len);
  if ((rc = coh_jwriter_tick_begin(w, t, err))) return rc;
  for (i = 0; i < g.n_ev; i++)
    if ((rc = coh_jwriter_event(w, &g.ev[i], err))) return rc;
  for (i = 0; i < g.n_ck; i++)
    if ((rc = coh_jwriter_checkpoint(w, ck_agent(i), g.state[i], strlen(g.state[i]), err)))
      return rc;
  return coh_jwriter_tick_end(w, t, err);
}

/* ---- reports ------------------------------------------------------------------ */

typedef struct reported {
  int64_t seq[4096], tick[4096];
  uint8_t chain[4096][32];
  atomic_size_t n;
  int out_of_order;
} reported;

static void on_report(void *ud, const coh_jevent *ev) {
  reported *r = ud;
  size_t n = atomic_load(&r->n);
  if (n >= 4096) return;
  if (ev->seq != (int64_t)n + 1) r->out_of_order = 1;
  r->seq[n] = ev->seq;
  r->tick[n] = ev->tick;
  memcpy(r->chain[n], ev->chain, 32);
  atomic_store(&r->n, n + 1);
}

typedef struct rows {
  int64_t seq[4096];
  uint8_t chain[4096][32];
  size_t n;
} rows;

static int collect_row(void *ud, const coh_jevent *ev) {
  rows *r = ud;
  if (r->n >= 4096) return 1;
  r->seq[r->n] = ev->seq;
  memcpy(r->chain[r->n], ev->chain, 32);
  r->n++;
  return 0;
}

static void read_rows(coh_journal *j, rows *r) {
  coh_err err;
  r->n = 0;
  CHECK(coh_journal_events(j, INT64_MIN, INT64_MAX, NULL, collect_row, r, &err) == COH_OK);
}

/* ---- the gate: a disk that lags on demand ------------------------------------- */

typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int closed;
  atomic_int hits; /* before_commit calls */
} gate;

static void gate_hook(void *ud, int64_t last_tick) {
  gate *g = ud;
  (void)last_tick;
  atomic_fetch_add(&g->hits, 1);
  pthread_mutex_lock(&g->mu);
  while (g->closed) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate *g) {
  pthread_mutex_lock(&g->mu);
  g->closed = 0;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

/* Polls cond(ud) every millisecond for up to 60 s (a deadline, not a
 * fixed sleep). */
static int wait_until(int (*cond)(void *), void *ud) {
  struct timespec d = {0, 1000000};
  int i;
  for (i = 0; i < 60000; i++) {
    if (cond(ud)) return 1;
    nanosleep(&d, NULL);
  }
  return cond(ud);
}

/* ---- same_chain ---------------------------------------------------------------- */

static void same_chain(void) {
  char pa[512], pb[512], da[65], db[65];
  coh_journal *a = NULL, *b = NULL;
  coh_jwriter *w = NULL;
  coh_jwriter_opts wo;
  coh_jwriter_stats st;
  static reported rep;
  static rows ra, rb;
  coh_err err;
  int64_t t, last = -1, nev = 0;
  size_t i;
  REQUIRE(coh_journal_create(tmp_path(pa, sizeof pa, "a.db"), inputs, strlen(inputs), &a, &err) == COH_OK);
  REQUIRE(coh_journal_create(tmp_path(pb, sizeof pb, "b.db"), inputs, strlen(inputs), &b, &err) == COH_OK);
  REQUIRE(write_direct(a, 0, 199) == 0);
  memset(&wo, 0, sizeof wo);
  memset(&rep, 0, sizeof rep);
  wo.max_ticks = 4;
  wo.max_group = 3;
  wo.report = on_report;
  wo.report_ud = &rep;
  REQUIRE(coh_jwriter_start(b, &wo, &w, &err) == COH_OK);
  for (t = 0; t < 200; t++) CHECK(write_tick(w, t, 0, &err) == COH_OK);
  CHECK(coh_jwriter_flush(w, &err) == COH_OK);
  coh_jwriter_stats_get(w, &st);
  CHECK_EQ_INT(st.durable_tick, 199);
  CHECK_EQ_INT(st.reported_tick, 199);
  CHECK_EQ_INT(st.ticks_written, 200);
  CHECK(st.peak_ticks <= 4);
  CHECK(st.groups >= 200 / 3 && st.groups <= 200);
  CHECK_EQ_INT(st.held_ticks, 0);
  CHECK(coh_jwriter_stop(w, &err) == COH_OK);
  coh_journal_digest(a, da);
  coh_journal_digest(b, db);
  CHECK_STR(da, db);
  CHECK(coh_journal_verify(b, &err) == COH_OK);
  CHECK(coh_journal_last_tick(b, &last, &nev, &err) == COH_OK);
  CHECK_EQ_INT(last, 199);
  read_rows(a, &ra);
  read_rows(b, &rb);
  CHECK_EQ_INT(ra.n, rb.n);
  CHECK_EQ_INT(nev, (int64_t)ra.n);
  CHECK(ra.n > 300);
  /* every event reported once, in seq order, with the journal's chain */
  CHECK_EQ_INT(atomic_load(&rep.n), ra.n);
  CHECK(!rep.out_of_order);
  for (i = 0; i < ra.n && i < rb.n && i < atomic_load(&rep.n); i++) {
    CHECK_EQ_INT(ra.seq[i], rb.seq[i]);
    CHECK(memcmp(ra.chain[i], rb.chain[i], 32) == 0);
    CHECK(memcmp(ra.chain[i], rep.chain[i], 32) == 0);
  }
  coh_journal_close(a);
  coh_journal_close(b);
}

/* ---- backpressure ------------------------------------------------------------------ */

typedef struct producer {
  coh_jwriter *w;
  int64_t n_ticks;
  size_t payload_len;
  atomic_long ended; /* ticks queued */
  int rc;
} producer;

static void *produce_main(void *arg) {
  producer *p = arg;
  coh_err err;
  int64_t t;
  for (t = 0; t < p->n_ticks; t++) {
    if ((p->rc = write_tick(p->w, t, p->payload_len, &err))) {
      fprintf(stderr, "producer: %s\n", err.msg);
      break;
    }
    atomic_fetch_add(&p->ended, 1);
  }
  return NULL;
}

typedef struct bp_watch {
  coh_jwriter *w;
  gate *g;
} bp_watch;

static int producer_blocked(void *ud) {
  bp_watch *b = ud;
  coh_jwriter_stats st;
  coh_jwriter_stats_get(b->w, &st);
  return st.producer_waiting && atomic_load(&b->g->hits) > 0;
}

static void run_lagging(size_t max_ticks, size_t max_bytes, size_t payload_len, int64_t n_ticks) {
  char path[512];
  coh_journal *j = NULL, *reader = NULL;
  coh_jwriter *w = NULL;
  coh_jwriter_opts wo;
  coh_jwriter_stats st;
  static reported rep;
  static gate g;
  producer p;
  bp_watch bw;
  pthread_t th;
  coh_err err;
  int64_t last = 0, nev = 0;
  size_t tick_bytes = 8 * (payload_len + 64);
  REQUIRE(coh_journal_create(tmp_path(path, sizeof path, "lag.db"), inputs, strlen(inputs), &j, &err) == COH_OK);
  memset(&rep, 0, sizeof rep);
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  g.closed = 1;
  atomic_store(&g.hits, 0);
  memset(&wo, 0, sizeof wo);
  wo.max_ticks = max_ticks;
  wo.max_bytes = max_bytes;
  wo.report = on_report;
  wo.report_ud = &rep;
  wo.before_commit = gate_hook;
  wo.hook_ud = &g;
  REQUIRE(coh_jwriter_start(j, &wo, &w, &err) == COH_OK);
  memset(&p, 0, sizeof p);
  p.w = w;
  p.n_ticks = n_ticks;
  p.payload_len = payload_len;
  REQUIRE(pthread_create(&th, NULL, produce_main, &p) == 0);
  bw.w = w;
  bw.g = &g;
  /* the disk is stuck before its first COMMIT: the tick loop must stop */
  CHECK(wait_until(producer_blocked, &bw));
  coh_jwriter_stats_get(w, &st);
  CHECK(st.producer_waiting);
  CHECK_EQ_INT(st.durable_tick, -1);
  CHECK_EQ_INT(atomic_load(&rep.n), 0); /* nothing reported before it is durable */
  CHECK_EQ_INT(atomic_load(&p.ended), (long)st.held_ticks);
  CHECK(atomic_load(&p.ended) < n_ticks);
  if (max_bytes == 0) {
    CHECK_EQ_INT(st.held_ticks, max_ticks); /* exactly at the bound */
  } else {
    CHECK(st.held_bytes >= max_bytes); /* it stopped for the bytes */
    CHECK(st.held_ticks < max_ticks);
  }
  /* another connection sees nothing committed yet */
  CHECK(coh_journal_open(path, &reader, &err) == COH_OK);
  if (reader) {
    CHECK(coh_journal_last_tick(reader, &last, &nev, &err) == COH_OK);
    CHECK_EQ_INT(last, -1);
    coh_journal_close(reader);
  }
  gate_open(&g);
  pthread_join(th, NULL);
  CHECK_EQ_INT(p.rc, COH_OK);
  CHECK_EQ_INT(atomic_load(&p.ended), n_ticks);
  CHECK(coh_jwriter_flush(w, &err) == COH_OK);
  coh_jwriter_stats_get(w, &st);
  CHECK(st.waits >= 1);
  CHECK(st.peak_ticks <= (max_bytes ? max_ticks : st.max_ticks));
  if (max_bytes) CHECK(st.peak_bytes < max_bytes + 2 * tick_bytes);
  CHECK_EQ_INT(st.durable_tick, n_ticks - 1);
  fprintf(stderr, "  lagging disk: peak %zu ticks / %zu bytes held (bounds %zu / %zu), "
                  "%llu waits, %llu groups\n", st.peak_ticks, st.peak_bytes, st.max_ticks,
          st.max_bytes, (unsigned long long)st.waits, (unsigned long long)st.groups);
  CHECK(coh_jwriter_stop(w, &err) == COH_OK);
  CHECK(coh_journal_verify(j, &err) == COH_OK);
  CHECK(coh_journal_last_tick(j, &last, &nev, &err) == COH_OK);
  CHECK_EQ_INT(last, n_ticks - 1);
  CHECK_EQ_INT(atomic_load(&rep.n), nev);
  CHECK(!rep.out_of_order);
  coh_journal_close(j);
  pthread_cond_destroy(&g.cv);
  pthread_mutex_destroy(&g.mu);
}

static void backpressure(void) { run_lagging(4, 0, 0, 60); }

static void byte_bound(void) { run_lagging(1000, 16 * 1024, 1000, 60); }

/* ---- writer_error ------------------------------------------------------------------- */

static void writer_error(void) {
  char pa[512], pb[512], da[65], db[65];
  coh_journal *a = NULL, *b = NULL;
  coh_jwriter *w = NULL;
  coh_jwriter_opts wo;
  static reported rep;
  coh_jevent ev;
  coh_err err;
  int64_t t, last = 0, nev = 0, n_before;
  REQUIRE(coh_journal_create(tmp_path(pa, sizeof pa, "ea.db"), inputs, strlen(inputs), &a, &err) == COH_OK);
  REQUIRE(coh_journal_create(tmp_path(pb, sizeof pb, "eb.db"), inputs, strlen(inputs), &b, &err) == COH_OK);
  REQUIRE(write_direct(a, 0, 9) == 0);
  memset(&wo, 0, sizeof wo);
  memset(&rep, 0, sizeof rep);
  wo.report = on_report;
  wo.report_ud = &rep;
  REQUIRE(coh_jwriter_start(b, &wo, &w, &err) == COH_OK);
  for (t = 0; t < 10; t++) CHECK(write_tick(w, t, 0, &err) == COH_OK);
  CHECK(coh_jwriter_flush(w, &err) == COH_OK);
  n_before = (int64_t)atomic_load(&rep.n);
  /* tick 10: an event, then the same agent's checkpoint twice */
  memset(&ev, 0, sizeof ev);
  ev.tick = 10;
  ev.kind = "emit";
  ev.source = "agent-0";
  ev.payload = "lost";
  ev.payload_len = 4;
  CHECK(coh_jwriter_tick_begin(w, 10, &err) == COH_OK);
  CHECK(coh_jwriter_event(w, &ev, &err) == COH_OK);
  CHECK(coh_jwriter_checkpoint(w, "agent-0", "x", 1, &err) == COH_OK);
  CHECK(coh_jwriter_checkpoint(w, "agent-0", "y", 1, &err) == COH_OK);
  CHECK(coh_jwriter_tick_end(w, 0, &err) == COH_OK);
  CHECK(coh_jwriter_flush(w, &err) == COH_EINVAL);
  CHECK(strstr(err.msg, pb) != NULL && strstr(err.msg, "already has a checkpoint") != NULL);
  CHECK(coh_jwriter_tick_begin(w, 11, &err) == COH_EINVAL);
  CHECK(coh_jwriter_drain(w, &err) == COH_EINVAL);
  CHECK(coh_jwriter_stop(w, &err) == COH_EINVAL);
  CHECK_EQ_INT((int64_t)atomic_load(&rep.n), n_before); /* nothing of tick 10 */
  /* the journal: ticks 0..9, consistent, the same as the direct one */
  coh_journal_digest(a, da);
  coh_journal_digest(b, db);
  CHECK_STR(da, db);
  CHECK(coh_journal_last_tick(b, &last, &nev, &err) == COH_OK);
  CHECK_EQ_INT(last, 9);
  CHECK_EQ_INT(nev, n_before);
  CHECK(coh_journal_verify(b, &err) == COH_OK);
  /* and it goes on from there, directly */
  CHECK(write_direct(b, 10, 12) == 0);
  CHECK(write_direct(a, 10, 12) == 0);
  coh_journal_digest(a, da);
  coh_journal_digest(b, db);
  CHECK_STR(da, db);
  coh_journal_close(a);
  coh_journal_close(b);
}

/* ---- group_bytes ------------------------------------------------------------------- */

typedef struct group_log {
  gate g;
  int64_t last[64];
  int n;
} group_log;

static void log_hook(void *ud, int64_t last_tick) {
  group_log *l = ud;
  if (l->n < 64) l->last[l->n++] = last_tick;
  gate_hook(&l->g, last_tick);
}

static int first_group_held(void *ud) { return atomic_load(&((gate *)ud)->hits) > 0; }

/* A big tick is not bundled with the small ones queued before it: with the
 * disk held at tick 0's commit, ticks 1..9 queue up (tick 5 carries 5,000
 * bytes, over max_group_bytes); then the groups are 1-4, 5, 6-9. */
static void group_bytes(void) {
  char path[512], big[5000];
  coh_journal *j = NULL;
  coh_jwriter *w = NULL;
  coh_jwriter_opts wo;
  static group_log lg;
  coh_jevent ev;
  coh_err err;
  int64_t t;
  REQUIRE(coh_journal_create(tmp_path(path, sizeof path, "gb.db"), inputs, strlen(inputs), &j, &err) == COH_OK);
  memset(&lg, 0, sizeof lg);
  memset(big, 'x', sizeof big);
  pthread_mutex_init(&lg.g.mu, NULL);
  pthread_cond_init(&lg.g.cv, NULL);
  lg.g.closed = 1;
  memset(&wo, 0, sizeof wo);
  wo.max_group_bytes = 4096;
  wo.before_commit = log_hook;
  wo.hook_ud = &lg;
  REQUIRE(coh_jwriter_start(j, &wo, &w, &err) == COH_OK);
  for (t = 0; t < 10; t++) {
    memset(&ev, 0, sizeof ev);
    ev.tick = t;
    ev.kind = "message";
    ev.source = "a";
    ev.target = "b";
    ev.payload = big;
    ev.payload_len = t == 5 ? sizeof big : 100;
    CHECK(coh_jwriter_tick_begin(w, t, &err) == COH_OK);
    CHECK(coh_jwriter_event(w, &ev, &err) == COH_OK);
    CHECK(coh_jwriter_tick_end(w, 0, &err) == COH_OK);
    /* tick 0 alone in the first group, held at its commit */
    if (t == 0) CHECK(wait_until(first_group_held, &lg.g));
  }
  gate_open(&lg.g);
  CHECK(coh_jwriter_stop(w, &err) == COH_OK);
  CHECK_EQ_INT(lg.n, 4);
  CHECK_EQ_INT(lg.last[0], 0);
  CHECK_EQ_INT(lg.last[1], 4);
  CHECK_EQ_INT(lg.last[2], 5);
  CHECK_EQ_INT(lg.last[3], 9);
  CHECK(coh_journal_verify(j, &err) == COH_OK);
  coh_journal_close(j);
  pthread_cond_destroy(&lg.g.cv);
  pthread_mutex_destroy(&lg.g.mu);
}

/* ---- run_lagging: the whole tick loop against a stuck disk -------------------- */

typedef struct run_ctx {
  coh_scenario *s;
  coh_journal *j;
  coh_run_record *rec;
  coh_run_options o;
  coh_run_summary sum;
  coh_err err;
  int rc;
  atomic_int ticks_started; /* interrupted() is asked before every tick */
  atomic_int reported;      /* on_event calls */
} run_ctx;

static int count_tick(void *ud) {
  atomic_fetch_add(&((run_ctx *)ud)->ticks_started, 1);
  return 0;
}

static void count_event(void *ud, const coh_jevent *ev) {
  (void)ev;
  atomic_fetch_add(&((run_ctx *)ud)->reported, 1);
}

static void *run_main(void *arg) {
  run_ctx *c = arg;
  c->rc = coh_run(c->s, &c->o, &c->sum, &c->err);
  return NULL;
}

/* Creates the journal (as the CLI does) and prepares a FRESH run of s. */
static int run_prepare(run_ctx *c, const char *path, const char *cache) {
  coh_journal_init init;
  memset(&c->o, 0, sizeof c->o);
  c->o.cache_dir = cache;
  c->o.workers = 2;
  if (coh_run_record_new(c->s, &c->o, &c->rec, &c->err)) return -1;
  memset(&init, 0, sizeof init);
  init.inputs = c->rec->genesis;
  init.inputs_len = c->rec->genesis_len;
  init.blobs = c->rec->blobs;
  init.n_blobs = c->rec->n_blobs;
  if (coh_journal_create_init(path, &init, &c->j, &c->err)) return -1;
  c->o.mode = COH_RUN_FRESH;
  c->o.journal = c->j;
  c->o.modules = c->rec->modules;
  c->o.on_event = count_event;
  c->o.ud = c;
  c->o.interrupted = count_tick;
  c->o.interrupted_ud = c;
  return 0;
}

typedef struct loop_watch {
  run_ctx *c;
  gate *g;
} loop_watch;

static int loop_held(void *ud) {
  loop_watch *l = ud;
  return atomic_load(&l->g->hits) > 0 && atomic_load(&l->c->ticks_started) >= 3;
}

/* coh_run with a 2-tick queue and a disk stuck at its first COMMIT: the
 * tick loop stops at the start of tick 2 (tick 0 being written, tick 1
 * queued), nothing is reported, and once the disk moves the run ends with
 * the digest of a run that never waited. */
static void run_lagging_loop(void) {
  const char *build = getenv("COH_BUILD_DIR");
  char cache[1024], spath[600], pref[512], plag[512];
  static run_ctx ref, lag;
  static gate g;
  coh_jwriter_opts wo;
  loop_watch lw;
  pthread_t th;
  FILE *f;
  int held;
  REQUIRE(build != NULL);
  snprintf(cache, sizeof cache, "%s/test-module-cache", build);
  snprintf(spath, sizeof spath, "%s/lag.yaml", tmpdir);
  f = fopen(spath, "w");
  REQUIRE(f != NULL);
  fprintf(f,
          "name: lag\nseed: 2\nstop: {max_ticks: 40}\ncheckpoint_every: 10\n"
          "agents:\n  - {id: e, module: %s/agents/echo.wasm, count: 4, inbox: 4}\n"
          "messages:\n  - {from: e-1, to: e-0, body: \"ping\"}\n"
          "  - {from: e-3, to: e-2, body: \"pong\"}\n", build);
  fclose(f);
  memset(&ref, 0, sizeof ref);
  memset(&lag, 0, sizeof lag);
  REQUIRE(coh_scenario_load(spath, &ref.s, &ref.err) == COH_OK);
  REQUIRE(coh_scenario_load(spath, &lag.s, &lag.err) == COH_OK);
  REQUIRE(run_prepare(&ref, tmp_path(pref, sizeof pref, "ref.db"), cache) == 0);
  REQUIRE(run_prepare(&lag, tmp_path(plag, sizeof plag, "lagrun.db"), cache) == 0);
  run_main(&ref);
  CHECK_EQ_INT(ref.rc, COH_OK);
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  g.closed = 1;
  atomic_store(&g.hits, 0);
  memset(&wo, 0, sizeof wo);
  wo.max_ticks = 2;
  wo.before_commit = gate_hook;
  wo.hook_ud = &g;
  lag.o.journal_writer = &wo;
  REQUIRE(pthread_create(&th, NULL, run_main, &lag) == 0);
  lw.c = &lag;
  lw.g = &g;
  held = wait_until(loop_held, &lw);
  CHECK(held);
  /* held at the bound: had the loop not blocked, it would be far past
   * tick 2 by now (the whole reference run is 40 ticks) */
  CHECK_EQ_INT(atomic_load(&lag.ticks_started), 3);
  CHECK_EQ_INT(atomic_load(&lag.reported), 0);
  gate_open(&g);
  pthread_join(th, NULL);
  CHECK_EQ_INT(lag.rc, COH_OK);
  CHECK_STR(lag.sum.digest, ref.sum.digest);
  CHECK_EQ_INT(lag.sum.events, ref.sum.events);
  CHECK_EQ_INT(atomic_load(&lag.reported), lag.sum.events);
  CHECK_EQ_INT(atomic_load(&ref.reported), ref.sum.events);
  CHECK(coh_journal_verify(lag.j, &lag.err) == COH_OK);
  coh_journal_close(ref.j);
  coh_journal_close(lag.j);
  coh_run_record_free(ref.rec);
  coh_run_record_free(lag.rec);
  coh_scenario_free(ref.s);
  coh_scenario_free(lag.s);
  pthread_cond_destroy(&g.cv);
  pthread_mutex_destroy(&g.mu);
}

/* ---- group_api ---------------------------------------------------------------------- */

static void group_api(void) {
  char p[512], d0[65], d1[65];
  coh_journal *j = NULL;
  coh_err err;
  int64_t last = 0, nev = 0;
  REQUIRE(coh_journal_create(tmp_path(p, sizeof p, "g.db"), inputs, strlen(inputs), &j, &err) == COH_OK);
  CHECK(coh_journal_group_commit(j, &err) == COH_ESTATE);
  REQUIRE(write_direct(j, 0, 2) == 0);
  coh_journal_digest(j, d0);
  CHECK(coh_journal_group_begin(j, &err) == COH_OK);
  CHECK(coh_journal_group_begin(j, &err) == COH_ESTATE);
  CHECK(coh_journal_verify(j, &err) == COH_ESTATE);
  CHECK(coh_journal_truncate_after(j, 0, &err) == COH_ESTATE);
  CHECK(write_direct(j, 3, 5) == 0);
  CHECK(coh_journal_tick_begin(j, 6, &err) == COH_OK);
  CHECK(coh_journal_group_commit(j, &err) == COH_ESTATE); /* a tick is open */
  coh_journal_group_rollback(j);                         /* the whole group goes */
  coh_journal_digest(j, d1);
  CHECK_STR(d0, d1);
  CHECK(coh_journal_last_tick(j, &last, &nev, &err) == COH_OK);
  CHECK_EQ_INT(last, 2);
  CHECK(coh_journal_verify(j, &err) == COH_OK);
  /* a committed group equals tick-by-tick commits */
  CHECK(coh_journal_group_begin(j, &err) == COH_OK);
  CHECK(write_direct(j, 3, 5) == 0);
  CHECK(coh_journal_group_commit(j, &err) == COH_OK);
  CHECK(coh_journal_verify(j, &err) == COH_OK);
  CHECK(coh_journal_last_tick(j, &last, &nev, &err) == COH_OK);
  CHECK_EQ_INT(last, 5);
  coh_journal_close(j);
}

/* ---- zero_wall ---------------------------------------------------------------------- */

static int nonzero_event_wall(void *ud, const coh_jevent *ev) {
  if (ev->wall_us != 0) (*(int *)ud)++;
  return 0;
}

static int nonzero_tick_wall(void *ud, int64_t tick, int64_t last_seq, int64_t wall_us) {
  (void)tick;
  (void)last_seq;
  if (wall_us != 0) (*(int *)ud)++;
  return 0;
}

static int wall_reported_nonzero;
static void report_wall(void *ud, const coh_jevent *ev) {
  (void)ud;
  if (ev->wall_us != 0) wall_reported_nonzero++;
}

static void zero_wall(void) {
  char pa[512], pb[512], da[65], db[65];
  coh_journal *a = NULL, *b = NULL;
  coh_jwriter *w = NULL;
  coh_jwriter_opts wo;
  coh_err err;
  int64_t t;
  int timed = 0, ev_nonzero = 0, tick_nonzero = 0;
  REQUIRE(coh_journal_create(tmp_path(pa, sizeof pa, "a.db"), inputs, strlen(inputs), &a, &err) == COH_OK);
  REQUIRE(coh_journal_create(tmp_path(pb, sizeof pb, "b.db"), inputs, strlen(inputs), &b, &err) == COH_OK);
  REQUIRE(write_direct(a, 0, 29) == 0);
  /* the direct journal has the generator's timings (tick t: t * 100 + i) */
  CHECK(coh_journal_events(a, INT64_MIN, INT64_MAX, NULL, nonzero_event_wall, &timed, &err) == COH_OK);
  CHECK(timed > 0);
  memset(&wo, 0, sizeof wo);
  wo.zero_wall_us = 1;
  wo.report = report_wall;
  wall_reported_nonzero = 0;
  REQUIRE(coh_jwriter_start(b, &wo, &w, &err) == COH_OK);
  for (t = 0; t < 30; t++) CHECK(write_tick(w, t, 0, &err) == COH_OK);
  CHECK(coh_jwriter_stop(w, &err) == COH_OK);
  CHECK(coh_journal_events(b, INT64_MIN, INT64_MAX, NULL, nonzero_event_wall, &ev_nonzero, &err) == COH_OK);
  CHECK(coh_journal_ticks(b, nonzero_tick_wall, &tick_nonzero, &err) == COH_OK);
  CHECK_EQ_INT(ev_nonzero, 0);
  CHECK_EQ_INT(tick_nonzero, 0);
  CHECK_EQ_INT(wall_reported_nonzero, 0);
  /* wall_us is outside the chain */
  coh_journal_digest(a, da);
  coh_journal_digest(b, db);
  CHECK_STR(da, db);
  CHECK(coh_journal_verify(b, &err) == COH_OK);
  coh_journal_close(a);
  coh_journal_close(b);
}

int main(int argc, char **argv) {
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  char cmd[600];
  int rc;
  TEST_MAIN_BEGIN(argc, argv);
  snprintf(tmpdir, sizeof tmpdir, "%s/coh-jwriter-XXXXXX", base);
  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  RUN(same_chain);
  RUN(backpressure);
  RUN(byte_bound);
  RUN(writer_error);
  RUN(group_bytes);
  RUN(run_lagging_loop);
  RUN(group_api);
  RUN(zero_wall);
  rc = TEST_MAIN_END();
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return rc;
}
