/*
 * test_sim.c — the tick machine (coh_sim_* in cohort/orch.h).
 *
 *   ticks_match_run   a scenario driven tick by tick through coh_sim_tick
 *                     gives coh_run's digest, event count, tick count and
 *                     stop reason, for a run that stops at max_ticks (with
 *                     checkpoints) and one that stops at quiescence after a
 *                     late scenario message; coh_sim_next_tick advances by
 *                     one per tick, every event is reported once
 *   after_stop        coh_sim_tick after the stop is a no-op (the tick
 *                     count stays), a second coh_sim_finish is COH_EINVAL,
 *                     coh_sim_free of an unfinished machine finishes it (the
 *                     journal then holds every tick run and verifies)
 *   bad_options       coh_sim_new without a cache folder, or a replay
 *                     without a journal, is COH_EINVAL with no machine
 *   user_sink         a sink added next to the journal sees every committed
 *                     event once, in commit order (the same count and
 *                     sequence the journal reports), tick_begin/tick_end in
 *                     pairs for every tick, a checkpoint of every agent at
 *                     each checkpoint_every tick, flush at the end and close
 *                     last; a sink inactive for odd ticks sees only even
 *                     ticks' events; the digest is unchanged by either
 *   sink_error        a sink failing tick_end at tick 5 fails the run with
 *                     its error: the journal keeps ticks 0..4 (whole, they
 *                     verify), tick 5 never reaches tick_end of any sink,
 *                     and coh_sim_add_sink after the first tick is EINVAL
 *   replay_compare    the comparator sink (built from REPLAY options):
 *                     replaying a run's journal matches to the end
 *                     (same digest, every event reported with the
 *                     journal's seq), and a replay of the first 12 ticks
 *                     of it stops at "journal_end"; replaying it with a
 *                     scenario whose message body differs stops at tick 1
 *                     with the divergence naming both events
 *   sink_stop         a sink that returns COH_SINK_STOP from event at tick
 *                     3 stops the run with its reason; ticks 0..2 are
 *                     journaled and nothing of tick 3 (the open tick is
 *                     dropped)
 *   monitor_sink      the monitor sink (coh_run_options.monitor, built by
 *                     coh_sim_new): with pause, two single steps and resume
 *                     queued, the run gives the digest of a run without a
 *                     monitor; the last snapshot (read through the handler,
 *                     as /api/snapshot serves it) says finished, max_ticks,
 *                     tick 40, and its counters, agents' steps, timeline,
 *                     stage counts and transcript agree with the summary and
 *                     with a counting sink beside it (messages: agents' sends,
 *                     not the scenario's); /metrics is what the
 *                     JSON renderer makes of that snapshot; /trace has the
 *                     step and tick spans.  With pause, step, stop queued
 *                     the run stops after tick 0 ("stopped"), the journal
 *                     ends at tick 0, the snapshot says so
 */
#include <jansson.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/journal.h"
#include "cohort/orch.h"
#include "cohort/scenario.h"
#include "monitor/monitor_int.h"
#include "test.h"

static char tmpdir[256];
static int tmp_counter;
static char cache[1024];

static const char *tmp_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%d-%s", tmpdir, tmp_counter++, name);
  return buf;
}

typedef struct run_ctx {
  coh_scenario *s;
  coh_journal *j;
  coh_run_record *rec;
  coh_run_options o;
  coh_run_summary sum;
  coh_err err;
  int64_t reported;
  int64_t last_seq;
  int out_of_order;
  char jpath[600]; /* the journal prepare() made */
} run_ctx;

static void count_event(void *ud, const coh_jevent *ev) {
  run_ctx *c = ud;
  if (ev->seq <= c->last_seq) c->out_of_order++;
  c->last_seq = ev->seq;
  c->reported++;
}

/* Writes scenario text to a file and prepares a FRESH run with a new
 * journal, as the CLI does. */
static int prepare(run_ctx *c, const char *yaml) {
  char spath[600], jpath[600];
  coh_journal_init init;
  FILE *f;
  memset(c, 0, sizeof *c);
  c->last_seq = -1;
  tmp_path(spath, sizeof spath, "s.yaml");
  f = fopen(spath, "w");
  if (f == NULL) return -1;
  fputs(yaml, f);
  fclose(f);
  if (coh_scenario_load(spath, &c->s, &c->err)) return -1;
  c->o.cache_dir = cache;
  c->o.workers = 2;
  if (coh_run_record_new(c->s, &c->o, &c->rec, &c->err)) return -1;
  memset(&init, 0, sizeof init);
  init.inputs = c->rec->genesis;
  init.inputs_len = c->rec->genesis_len;
  init.blobs = c->rec->blobs;
  init.n_blobs = c->rec->n_blobs;
  if (coh_journal_create_init(tmp_path(jpath, sizeof jpath, "j.db"), &init, &c->j, &c->err))
    return -1;
  snprintf(c->jpath, sizeof c->jpath, "%s", jpath);
  c->o.mode = COH_RUN_FRESH;
  c->o.journal = c->j;
  c->o.modules = c->rec->modules;
  c->o.on_event = count_event;
  c->o.ud = c;
  return 0;
}

/* Ticks m until it stops or a tick fails (at most 1000 ticks). */
static int drive(coh_sim *m, coh_err *err) {
  int rc = COH_OK, guard = 0;
  while (rc == COH_OK && coh_sim_stopped(m) == NULL && guard++ < 1000) rc = coh_sim_tick(m, err);
  return rc;
}

static void release(run_ctx *c) {
  coh_journal_close(c->j);
  coh_run_record_free(c->rec);
  coh_scenario_free(c->s);
}

static char *scenario(const char *fmt) {
  static char buf[4096];
  snprintf(buf, sizeof buf, fmt, getenv("COH_BUILD_DIR"));
  return buf;
}

static const char *pingpong =
    "name: pingpong\nseed: 2\nstop: {max_ticks: 40}\ncheckpoint_every: 10\n"
    "agents:\n  - {id: e, module: %s/agents/echo.wasm, count: 4, inbox: 4}\n"
    "messages:\n  - {from: e-1, to: e-0, body: \"ping\"}\n"
    "  - {from: e-3, to: e-2, body: \"pong\"}\n";

/* "user" is no agent: e-0's echo to it is refused, and then nothing is
 * pending but the message due at tick 6 (delivered and answered in tick 6),
 * so the run goes quiet after tick 6: 7 ticks. */
static const char *quiet =
    "name: quiet\nseed: 3\nstop: {max_ticks: 100, quiescence: true}\n"
    "agents:\n  - {id: e, module: %s/agents/echo.wasm, count: 2}\n"
    "messages:\n  - {from: user, to: e-0, body: \"hello\"}\n"
    "  - {from: user, to: e-1, body: \"later\", tick: 6}\n";

static void compare_drivers(const char *fmt, const char *want_stop, int64_t want_ticks) {
  static run_ctx ref, sim;
  coh_sim *m = NULL;
  int64_t t = 0;
  int rc = COH_OK, guard = 0;
  REQUIRE(prepare(&ref, scenario(fmt)) == 0);
  REQUIRE(prepare(&sim, scenario(fmt)) == 0);
  CHECK_EQ_INT(coh_run(ref.s, &ref.o, &ref.sum, &ref.err), COH_OK);
  REQUIRE(coh_sim_new(sim.s, &sim.o, &m, &sim.err) == COH_OK);
  CHECK(coh_sim_stopped(m) == NULL);
  while (coh_sim_stopped(m) == NULL && rc == COH_OK && guard++ < 1000) {
    CHECK_EQ_INT(coh_sim_next_tick(m), t);
    rc = coh_sim_tick(m, &sim.err);
    t++;
  }
  CHECK_EQ_INT(rc, COH_OK);
  CHECK_EQ_INT(coh_sim_next_tick(m), ref.sum.ticks);
  CHECK_EQ_INT(coh_sim_finish(m, &sim.sum, &sim.err), COH_OK);
  coh_sim_free(m);
  CHECK_STR(sim.sum.digest, ref.sum.digest);
  CHECK_STR(sim.sum.stop_reason, want_stop);
  CHECK_STR(ref.sum.stop_reason, want_stop);
  CHECK_EQ_INT(sim.sum.ticks, ref.sum.ticks);
  CHECK_EQ_INT(sim.sum.ticks, want_ticks);
  CHECK_EQ_INT(sim.sum.events, ref.sum.events);
  CHECK(sim.sum.events > 0);
  CHECK_EQ_INT(sim.reported, sim.sum.events);
  CHECK_EQ_INT(ref.reported, ref.sum.events);
  CHECK_EQ_INT(sim.out_of_order, 0);
  CHECK(coh_journal_verify(sim.j, &sim.err) == COH_OK);
  release(&ref);
  release(&sim);
}

static void ticks_match_run(void) {
  compare_drivers(pingpong, "max_ticks", 40);
  compare_drivers(quiet, "quiescence", 7);
}

static void after_stop(void) {
  static run_ctx c;
  coh_run_summary sum;
  coh_sim *m = NULL;
  int64_t last = -1, nev = 0;
  int guard = 0;
  REQUIRE(prepare(&c, scenario(pingpong)) == 0);
  REQUIRE(coh_sim_new(c.s, &c.o, &m, &c.err) == COH_OK);
  while (coh_sim_stopped(m) == NULL && guard++ < 1000) REQUIRE(coh_sim_tick(m, &c.err) == COH_OK);
  CHECK_EQ_INT(coh_sim_next_tick(m), 40);
  CHECK_EQ_INT(coh_sim_tick(m, &c.err), COH_OK);
  CHECK_EQ_INT(coh_sim_next_tick(m), 40);
  CHECK_STR(coh_sim_stopped(m), "max_ticks");
  CHECK_EQ_INT(coh_sim_finish(m, &sum, &c.err), COH_OK);
  CHECK_EQ_INT(sum.ticks, 40);
  CHECK_EQ_INT(coh_sim_finish(m, &sum, &c.err), COH_EINVAL);
  coh_sim_free(m);
  release(&c);

  /* freed after 7 ticks without coh_sim_finish: ticks 0..6 are in the
   * journal, whole */
  REQUIRE(prepare(&c, scenario(pingpong)) == 0);
  REQUIRE(coh_sim_new(c.s, &c.o, &m, &c.err) == COH_OK);
  for (guard = 0; guard < 7; guard++) REQUIRE(coh_sim_tick(m, &c.err) == COH_OK);
  coh_sim_free(m);
  CHECK(coh_journal_last_tick(c.j, &last, &nev, &c.err) == COH_OK);
  CHECK_EQ_INT(last, 6);
  CHECK_EQ_INT(nev, c.reported);
  CHECK(coh_journal_verify(c.j, &c.err) == COH_OK);
  release(&c);
}

static void bad_options(void) {
  static run_ctx c;
  coh_sim *m = (coh_sim *)&c; /* must be reset to NULL */
  coh_run_options o;
  REQUIRE(prepare(&c, scenario(pingpong)) == 0);
  o = c.o;
  o.cache_dir = NULL;
  CHECK_EQ_INT(coh_sim_new(c.s, &o, &m, &c.err), COH_EINVAL);
  CHECK(m == NULL);
  CHECK(strstr(c.err.msg, "cache") != NULL);
  o = c.o;
  o.mode = COH_RUN_REPLAY;
  o.journal = NULL;
  m = (coh_sim *)&c;
  CHECK_EQ_INT(coh_sim_new(c.s, &o, &m, &c.err), COH_EINVAL);
  CHECK(m == NULL);
  CHECK(strstr(c.err.msg, "journal") != NULL);
  release(&c);
}

typedef struct rec_sink {
  int64_t begins, ends, events, checkpoints, flushes, closes;
  int64_t cur_tick, last_seq_order;
  int bad_pair, bad_tick, after_close;
  int odd_inactive;      /* 1: skips odd ticks */
  int64_t fail_end_at;   /* tick_end of this tick fails (-1: never) */
  int64_t ck_tick[8];
  size_t n_ck_ticks;
  char kinds[64][16];    /* the first events' kinds, for the order check */
  size_t n_kinds;
} rec_sink;

static int rs_begin(void *ud, int64_t tick, int *active, coh_err *err) {
  rec_sink *r = ud;
  (void)err;
  if (r->closes) r->after_close++;
  if (r->odd_inactive && tick % 2) {
    *active = 0;
    return COH_OK;
  }
  if (r->begins != r->ends) r->bad_pair++;
  r->begins++;
  r->cur_tick = tick;
  return COH_OK;
}

static int rs_event(void *ud, const coh_jevent *ev, coh_err *err) {
  rec_sink *r = ud;
  (void)err;
  if (ev->tick != r->cur_tick || (r->odd_inactive && ev->tick % 2)) r->bad_tick++;
  if (r->n_kinds < 64) snprintf(r->kinds[r->n_kinds++], 16, "%s", ev->kind);
  r->events++;
  return COH_OK;
}

static int rs_checkpoint(void *ud, const char *agent, const void *state, size_t len,
                         coh_err *err) {
  rec_sink *r = ud;
  (void)agent;
  (void)err;
  if (state == NULL || len == 0) r->bad_tick++;
  if (r->n_ck_ticks == 0 || r->ck_tick[r->n_ck_ticks - 1] != r->cur_tick)
    if (r->n_ck_ticks < 8) r->ck_tick[r->n_ck_ticks++] = r->cur_tick;
  r->checkpoints++;
  return COH_OK;
}

static int rs_end(void *ud, int64_t tick, int64_t wall_us, coh_err *err) {
  rec_sink *r = ud;
  if (tick != r->cur_tick || wall_us < 0) r->bad_tick++;
  if (tick == r->fail_end_at) {
    err->code = COH_EIO;
    snprintf(err->msg, sizeof err->msg, "rec sink: refused tick %lld", (long long)tick);
    return COH_EIO;
  }
  r->ends++;
  return COH_OK;
}

static int rs_flush(void *ud, coh_err *err) {
  (void)err;
  ((rec_sink *)ud)->flushes++;
  return COH_OK;
}

static int rs_close(void *ud, int failed, coh_err *err) {
  (void)failed;
  (void)err;
  ((rec_sink *)ud)->closes++;
  return COH_OK;
}

static coh_sim_sink rec_sink_of(rec_sink *r) {
  coh_sim_sink k;
  memset(&k, 0, sizeof k);
  k.name = "rec";
  k.ud = r;
  k.tick_begin = rs_begin;
  k.event = rs_event;
  k.checkpoint = rs_checkpoint;
  k.tick_end = rs_end;
  k.flush = rs_flush;
  k.close = rs_close;
  return k;
}

/* Reads the journal's events back in seq order: their kinds. */
typedef struct kinds_rd {
  char kinds[64][16];
  size_t n;
  int64_t even_events;
} kinds_rd;

static int read_kind(void *ud, const coh_jevent *ev) {
  kinds_rd *k = ud;
  if (k->n < 64) snprintf(k->kinds[k->n++], 16, "%s", ev->kind);
  if (ev->tick % 2 == 0) k->even_events++;
  return 0;
}

static int64_t run_with_sink(const char *fmt, rec_sink *r, char digest[65], kinds_rd *kr) {
  static run_ctx c;
  coh_sim *m = NULL;
  coh_sim_sink k = rec_sink_of(r);
  coh_run_summary sum;
  int rc;
  int64_t events = -1;
  if (prepare(&c, scenario(fmt)) != 0) return -1;
  if (coh_sim_new(c.s, &c.o, &m, &c.err) != COH_OK) return -1;
  CHECK_EQ_INT(coh_sim_add_sink(m, &k, &c.err), COH_OK);
  rc = drive(m, &c.err);
  CHECK_EQ_INT(rc, COH_OK);
  CHECK_EQ_INT(coh_sim_finish(m, &sum, &c.err), COH_OK);
  coh_sim_free(m);
  CHECK_EQ_INT(c.reported, sum.events);
  memcpy(digest, sum.digest, 65);
  memset(kr, 0, sizeof *kr);
  CHECK(coh_journal_events(c.j, INT64_MIN, INT64_MAX, NULL, read_kind, kr, &c.err) == COH_OK);
  events = sum.events;
  release(&c);
  return events;
}

static void user_sink(void) {
  static rec_sink r, odd;
  static kinds_rd kr, kr2;
  char d0[65], d1[65];
  int64_t events;
  size_t i;
  memset(&r, 0, sizeof r);
  r.fail_end_at = -1;
  events = run_with_sink(pingpong, &r, d0, &kr);
  CHECK(events > 0);
  CHECK_EQ_INT(r.events, events);
  CHECK_EQ_INT(r.begins, 40);
  CHECK_EQ_INT(r.ends, 40);
  CHECK_EQ_INT(r.bad_pair, 0);
  CHECK_EQ_INT(r.bad_tick, 0);
  /* checkpoint_every 10 over ticks 0..39: ticks 10, 20, 30, 4 agents each */
  CHECK_EQ_INT(r.n_ck_ticks, 3);
  CHECK_EQ_INT(r.ck_tick[0], 10);
  CHECK_EQ_INT(r.ck_tick[2], 30);
  CHECK_EQ_INT(r.checkpoints, 12);
  CHECK(r.flushes >= 1);
  CHECK_EQ_INT(r.closes, 1);
  CHECK_EQ_INT(r.after_close, 0);
  CHECK_EQ_INT(kr.n, r.n_kinds);
  for (i = 0; i < kr.n && i < r.n_kinds; i++) CHECK_STR(r.kinds[i], kr.kinds[i]);

  memset(&odd, 0, sizeof odd);
  odd.fail_end_at = -1;
  odd.odd_inactive = 1;
  CHECK_EQ_INT(run_with_sink(pingpong, &odd, d1, &kr2), events);
  CHECK_STR(d1, d0);
  CHECK_EQ_INT(odd.begins, 20);
  CHECK_EQ_INT(odd.ends, 20);
  CHECK_EQ_INT(odd.bad_tick, 0);
  CHECK_EQ_INT(odd.events, kr2.even_events);
  CHECK(odd.events < events);
  CHECK_EQ_INT(odd.checkpoints, 12); /* 10, 20, 30 are even */
}

/* A sink with only `reported` (a transcript printer): it hears every
 * event the journal holds, once, in seq order, with the journal's seq,
 * and the same events as on_event; with no journal at all it hears every
 * committed event as it is committed (seq 0). */
typedef struct heard {
  int64_t n, last_seq, bad_order, seq_zero;
  char kinds[64][16];
  size_t n_kinds;
} heard;

static void heard_reported(void *ud, const coh_jevent *ev) {
  heard *h = ud;
  if (ev->seq != 0 && ev->seq <= h->last_seq) h->bad_order++;
  if (ev->seq == 0) h->seq_zero++;
  h->last_seq = ev->seq;
  if (h->n_kinds < 64) snprintf(h->kinds[h->n_kinds++], 16, "%s", ev->kind);
  h->n++;
}

static void reported_sink(void) {
  static run_ctx c;
  static heard h;
  static kinds_rd kr;
  coh_sim_sink k;
  coh_sim *m = NULL;
  coh_run_summary sum;
  size_t i;
  int pass;
  for (pass = 0; pass < 2; pass++) { /* 0: with a journal, 1: without */
    memset(&h, 0, sizeof h);
    h.last_seq = -1;
    REQUIRE(prepare(&c, scenario(pingpong)) == 0);
    if (pass == 1) c.o.journal = NULL;
    memset(&k, 0, sizeof k);
    k.name = "heard";
    k.ud = &h;
    k.reported = heard_reported;
    REQUIRE(coh_sim_new(c.s, &c.o, &m, &c.err) == COH_OK);
    CHECK_EQ_INT(coh_sim_add_sink(m, &k, &c.err), COH_OK);
    CHECK_EQ_INT(drive(m, &c.err), COH_OK);
    CHECK_EQ_INT(coh_sim_finish(m, &sum, &c.err), COH_OK);
    coh_sim_free(m);
    CHECK(sum.events > 0);
    CHECK_EQ_INT(h.n, sum.events);
    CHECK_EQ_INT(h.n, c.reported); /* the same stream as on_event */
    CHECK_EQ_INT(h.bad_order, 0);
    if (pass == 0) {
      CHECK_EQ_INT(h.seq_zero, 0);
      memset(&kr, 0, sizeof kr);
      CHECK(coh_journal_events(c.j, INT64_MIN, INT64_MAX, NULL, read_kind, &kr, &c.err) == COH_OK);
      CHECK_EQ_INT(kr.n, h.n_kinds);
      for (i = 0; i < kr.n && i < h.n_kinds; i++) CHECK_STR(h.kinds[i], kr.kinds[i]);
    } else {
      CHECK_EQ_INT(h.seq_zero, h.n);
    }
    release(&c);
  }
}

static void sink_error(void) {
  static run_ctx c;
  static rec_sink r;
  coh_sim_sink k;
  coh_sim *m = NULL;
  coh_run_summary sum;
  int64_t last = -1, nev = 0;
  int rc;
  memset(&r, 0, sizeof r);
  r.fail_end_at = 5;
  k = rec_sink_of(&r);
  REQUIRE(prepare(&c, scenario(pingpong)) == 0);
  REQUIRE(coh_sim_new(c.s, &c.o, &m, &c.err) == COH_OK);
  CHECK_EQ_INT(coh_sim_add_sink(m, &k, &c.err), COH_OK);
  rc = drive(m, &c.err);
  CHECK_EQ_INT(rc, COH_EIO);
  CHECK(strstr(c.err.msg, "rec sink: refused tick 5") != NULL);
  CHECK_EQ_INT(coh_sim_next_tick(m), 5);
  CHECK_EQ_INT(coh_sim_tick(m, &c.err), COH_EINVAL);
  CHECK_EQ_INT(coh_sim_add_sink(m, &k, &c.err), COH_EINVAL);
  CHECK_EQ_INT(coh_sim_finish(m, &sum, &c.err), COH_EIO);
  coh_sim_free(m);
  CHECK_EQ_INT(r.ends, 5);
  CHECK_EQ_INT(r.closes, 1);
  CHECK(coh_journal_last_tick(c.j, &last, &nev, &c.err) == COH_OK);
  CHECK_EQ_INT(last, 4);
  CHECK_EQ_INT(nev, c.reported);
  CHECK(coh_journal_verify(c.j, &c.err) == COH_OK);
  release(&c);
}

static void replay_compare(void) {
  static run_ctx a, b, c;
  static const char *changed =
      "name: pingpong\nseed: 2\nstop: {max_ticks: 40}\ncheckpoint_every: 10\n"
      "agents:\n  - {id: e, module: %s/agents/echo.wasm, count: 4, inbox: 4}\n"
      "messages:\n  - {from: e-1, to: e-0, body: \"pinG\"}\n"
      "  - {from: e-3, to: e-2, body: \"pong\"}\n";
  coh_run_summary sum;
  REQUIRE(prepare(&a, scenario(pingpong)) == 0);
  CHECK_EQ_INT(coh_run(a.s, &a.o, &a.sum, &a.err), COH_OK);
  /* the same scenario against a's journal */
  REQUIRE(prepare(&b, scenario(pingpong)) == 0);
  b.o.mode = COH_RUN_REPLAY;
  b.o.journal = a.j;
  CHECK_EQ_INT(coh_run(b.s, &b.o, &sum, &b.err), COH_OK);
  CHECK_STR(sum.stop_reason, "max_ticks"); /* the journal ends at max_ticks too */
  CHECK_EQ_INT(sum.diverged_tick, -1);
  CHECK_STR(sum.digest, a.sum.digest);
  CHECK_EQ_INT(sum.events, a.sum.events);
  CHECK_EQ_INT(sum.ticks, 40);
  CHECK_EQ_INT(b.reported, a.sum.events);
  CHECK_EQ_INT(b.out_of_order, 0);
  CHECK_EQ_INT(b.last_seq, a.last_seq);
  /* a 12-tick run's journal, replayed by the 40-tick scenario */
  {
    static run_ctx s12, r12;
    static const char *short12 =
        "name: pingpong\nseed: 2\nstop: {max_ticks: 12}\ncheckpoint_every: 10\n"
        "agents:\n  - {id: e, module: %s/agents/echo.wasm, count: 4, inbox: 4}\n"
        "messages:\n  - {from: e-1, to: e-0, body: \"ping\"}\n"
        "  - {from: e-3, to: e-2, body: \"pong\"}\n";
    REQUIRE(prepare(&s12, scenario(short12)) == 0);
    CHECK_EQ_INT(coh_run(s12.s, &s12.o, &s12.sum, &s12.err), COH_OK);
    REQUIRE(prepare(&r12, scenario(pingpong)) == 0);
    r12.o.mode = COH_RUN_REPLAY;
    r12.o.journal = s12.j;
    CHECK_EQ_INT(coh_run(r12.s, &r12.o, &sum, &r12.err), COH_OK);
    CHECK_STR(sum.stop_reason, "journal_end");
    CHECK_EQ_INT(sum.ticks, 12);
    CHECK_EQ_INT(sum.diverged_tick, -1);
    CHECK_EQ_INT(sum.events, s12.sum.events);
    CHECK_STR(sum.digest, s12.sum.digest);
    release(&s12);
    release(&r12);
  }
  /* a different message body: the first event of tick 1 differs */
  REQUIRE(prepare(&c, scenario(changed)) == 0);
  c.o.mode = COH_RUN_REPLAY;
  c.o.journal = a.j;
  CHECK_EQ_INT(coh_run(c.s, &c.o, &sum, &c.err), COH_OK);
  CHECK_STR(sum.stop_reason, "divergence");
  CHECK_EQ_INT(sum.diverged_tick, 1);
  CHECK_STR(sum.diverged_agent, "e-1");
  CHECK(strstr(sum.diverged_expected, "message e-1 -> e-0: ping") != NULL);
  CHECK(strstr(sum.diverged_actual, "message e-1 -> e-0: pinG") != NULL);
  CHECK_EQ_INT(sum.ticks, 1);
  release(&a);
  release(&b);
  release(&c);
}

/* Replay and resume read only verified rows (docs/journal.md, "What resume
 * verifies"), whatever the caller verified: a journal opened and verified
 * from its last checkpoint on (as `cohort resume` does) resumes from that
 * checkpoint even with a changed tick before it, but the same journal is
 * verified whole by the core, and refused, when the resume re-executes
 * every tick (resume_full) or for a replay. */
static void reads_only_verified(void) {
  static run_ctx a, b;
  coh_journal *j = NULL;
  coh_run_summary sum;
  coh_err err;
  sqlite3 *db = NULL;
  int mode;
  REQUIRE(prepare(&a, scenario(pingpong)) == 0);
  CHECK_EQ_INT(coh_run(a.s, &a.o, &a.sum, &a.err), COH_OK);
  coh_journal_close(a.j);
  a.j = NULL;
  /* tick 5 changed: before the last checkpoint (tick 30) */
  REQUIRE(sqlite3_open(a.jpath, &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "UPDATE ticks SET events_chain = zeroblob(32) WHERE tick = 5", NULL,
                       NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  for (mode = 0; mode < 3; mode++) {
    REQUIRE(prepare(&b, scenario(pingpong)) == 0);
    REQUIRE(coh_journal_open(a.jpath, &j, &err) == COH_OK);
    CHECK_EQ_INT(coh_journal_verify_from(j, 30, &err), COH_OK);
    b.o.mode = mode == 2 ? COH_RUN_REPLAY : COH_RUN_RESUME;
    b.o.resume_full = mode == 1;
    b.o.journal = j;
    memset(&sum, 0, sizeof sum);
    if (mode == 0) {
      CHECK_EQ_INT(coh_run(b.s, &b.o, &sum, &b.err), COH_OK);
      CHECK_EQ_INT(sum.resumed_from, 30);
      CHECK_STR(sum.digest, a.sum.digest);
      CHECK_EQ_INT(coh_journal_verified_from(j), 30);
    } else {
      CHECK_EQ_INT(coh_run(b.s, &b.o, &sum, &b.err), COH_EJOURNAL);
      CHECK(strstr(b.err.msg, "verify failed at table ticks, tick 5 (events") != NULL);
      if (!strstr(b.err.msg, "tick 5")) fprintf(stderr, "  mode %d: %s\n", mode, b.err.msg);
    }
    coh_journal_close(j);
    release(&b);
  }
  release(&a);
}

typedef struct stopper {
  int64_t at;
  int64_t begins;
} stopper;

static int st_begin(void *ud, int64_t tick, int *active, coh_err *err) {
  (void)tick;
  (void)active;
  (void)err;
  ((stopper *)ud)->begins++;
  return COH_OK;
}

static int st_event(void *ud, const coh_jevent *ev, coh_err *err) {
  (void)err;
  return ev->tick == ((stopper *)ud)->at ? COH_SINK_STOP : COH_OK;
}

static const char *st_why(void *ud) {
  (void)ud;
  return "enough";
}

static void sink_stop(void) {
  static run_ctx c;
  static stopper st;
  coh_sim_sink k;
  coh_sim *m = NULL;
  coh_run_summary sum;
  int64_t last = -1, nev = 0;
  int rc;
  memset(&k, 0, sizeof k);
  st.at = 3;
  k.name = "stopper";
  k.ud = &st;
  k.tick_begin = st_begin;
  k.event = st_event;
  k.stop_reason = st_why;
  REQUIRE(prepare(&c, scenario(pingpong)) == 0);
  REQUIRE(coh_sim_new(c.s, &c.o, &m, &c.err) == COH_OK);
  CHECK_EQ_INT(coh_sim_add_sink(m, &k, &c.err), COH_OK);
  rc = drive(m, &c.err);
  CHECK_EQ_INT(rc, COH_OK);
  CHECK_STR(coh_sim_stopped(m), "enough");
  CHECK_EQ_INT(coh_sim_next_tick(m), 3);
  CHECK_EQ_INT(coh_sim_finish(m, &sum, &c.err), COH_OK);
  coh_sim_free(m);
  CHECK_EQ_INT(st.begins, 4);
  CHECK_STR(sum.stop_reason, "enough");
  CHECK_EQ_INT(sum.ticks, 3);
  CHECK(coh_journal_last_tick(c.j, &last, &nev, &c.err) == COH_OK);
  CHECK_EQ_INT(last, 2);
  CHECK_EQ_INT(nev, sum.events);
  CHECK_EQ_INT(nev, c.reported);
  CHECK(coh_journal_verify(c.j, &c.err) == COH_OK);
  release(&c);
}

/* ---- the monitor sink ---------------------------------------------------------------- */

typedef struct kinds {
  int64_t messages, emits, events;
} kinds;

static int kinds_event(void *ud, const coh_jevent *ev, coh_err *err) {
  kinds *k = ud;
  (void)err;
  k->events++;
  k->messages += !strcmp(ev->kind, "message");
  k->emits += !strcmp(ev->kind, "emit");
  return COH_OK;
}

/* GET uri from m's handler; the body (NUL-terminated) or NULL. */
static char *mon_get(coh_monitor *m, const char *uri, size_t *len) {
  coh__http_req rq;
  coh__http_resp rs;
  char *out = NULL;
  memset(&rq, 0, sizeof rq);
  rq.method = "GET";
  rq.uri = uri;
  rq.content_length = -1;
  if (coh__monitor_http(m, &rq, &rs) == 200 && (out = malloc(rs.len + 1)) != NULL) {
    memcpy(out, rs.body, rs.len);
    out[rs.len] = '\0';
    *len = rs.len;
  }
  coh__http_resp_free(&rs);
  return out;
}

static int64_t jint(json_t *o, const char *a, const char *b) {
  return (int64_t)json_integer_value(json_object_get(b ? json_object_get(o, a) : o, b ? b : a));
}

static void monitor_sink(void) {
  static run_ctx ref, c;
  static kinds kc;
  coh_monitor *mon = NULL;
  coh_sim_sink k;
  coh_sim *m = NULL;
  coh_run_summary sum;
  coh_err err;
  char *snap, *metrics, *via = NULL, *trace;
  size_t slen = 0, mlen = 0, vlen = 0, tlen = 0, i;
  int64_t steps = 0, tl_events = 0, tl_steps = 0, last = -1, nev = 0;
  json_t *root, *arr, *e;
  REQUIRE(prepare(&ref, scenario(pingpong)) == 0);
  CHECK_EQ_INT(coh_run(ref.s, &ref.o, &ref.sum, &ref.err), COH_OK);
  REQUIRE(coh__monitor_new(NULL, &mon, &err) == COH_OK);
  REQUIRE(prepare(&c, scenario(pingpong)) == 0);
  c.o.monitor = mon;
  /* queued before the run: the first tick runs paused, one step at a time */
  CHECK(coh_monitor_post_control(mon, COH_CONTROL_PAUSE) == 0);
  CHECK(coh_monitor_post_control(mon, COH_CONTROL_STEP) == 0);
  CHECK(coh_monitor_post_control(mon, COH_CONTROL_STEP) == 0);
  CHECK(coh_monitor_post_control(mon, COH_CONTROL_RESUME) == 0);
  memset(&k, 0, sizeof k);
  k.name = "kinds";
  k.ud = &kc;
  k.event = kinds_event;
  REQUIRE(coh_sim_new(c.s, &c.o, &m, &c.err) == COH_OK);
  CHECK_EQ_INT(coh_sim_add_sink(m, &k, &c.err), COH_OK);
  CHECK_EQ_INT(drive(m, &c.err), COH_OK);
  CHECK_EQ_INT(coh_sim_finish(m, &sum, &c.err), COH_OK);
  coh_sim_free(m);
  CHECK_STR(sum.digest, ref.sum.digest);
  CHECK_EQ_INT(sum.events, ref.sum.events);
  CHECK(coh_monitor_next_control(mon) == COH_CONTROL_NONE); /* all taken */
  snap = mon_get(mon, "/api/snapshot", &slen);
  REQUIRE(snap != NULL);
  root = json_loadb(snap, slen, 0, NULL);
  REQUIRE(root != NULL);
  CHECK(json_is_true(json_object_get(json_object_get(root, "run"), "finished")));
  CHECK(json_is_false(json_object_get(json_object_get(root, "run"), "paused")));
  CHECK_STR(json_string_value(json_object_get(json_object_get(root, "run"), "stop_reason")),
            "max_ticks");
  CHECK_STR(json_string_value(json_object_get(json_object_get(root, "run"), "scenario")),
            "pingpong");
  CHECK_STR(json_string_value(json_object_get(json_object_get(root, "run"), "mode")), "run");
  CHECK_STR(json_string_value(json_object_get(json_object_get(root, "run"), "digest")),
            sum.digest);
  CHECK_EQ_INT(jint(root, "run", "tick"), 40);
  CHECK_EQ_INT(jint(root, "run", "workers"), 2);
  CHECK_EQ_INT(jint(root, "counters", "events"), sum.events);
  CHECK_EQ_INT(jint(root, "counters", "agent_steps"), sum.agent_steps);
  /* messages between agents: not the scenario's two */
  CHECK_EQ_INT(jint(root, "counters", "messages"), kc.messages - 2);
  CHECK(kc.messages > 0);
  CHECK_EQ_INT(kc.events, sum.events);
  arr = json_object_get(root, "agents");
  CHECK_EQ_INT((int64_t)json_array_size(arr), 4);
  json_array_foreach(arr, i, e) {
    steps += jint(e, "steps", NULL);
    CHECK(jint(e, "fuel_used", NULL) > 0);
    CHECK_STR(json_string_value(json_object_get(e, "state")), "alive");
  }
  CHECK_EQ_INT(steps, sum.agent_steps);
  CHECK_STR(json_string_value(json_object_get(json_array_get(arr, 0), "id")), "e-0");
  CHECK(strncmp(json_string_value(json_object_get(json_array_get(arr, 0), "last_event")),
                "emit: ", 6) == 0);
  arr = json_object_get(root, "ticks");
  CHECK_EQ_INT((int64_t)json_array_size(arr), 40);
  json_array_foreach(arr, i, e) {
    CHECK_EQ_INT(jint(e, "tick", NULL), (int64_t)i);
    tl_events += jint(e, "events", NULL);
    tl_steps += jint(e, "steps", NULL);
  }
  CHECK_EQ_INT(tl_events, sum.events);
  CHECK_EQ_INT(tl_steps, sum.agent_steps);
  CHECK_EQ_INT(jint(json_object_get(root, "stages"), "agent_step", "count"), sum.agent_steps);
  /* every event a step took waited: the scenario's two and the messages
   * taken before the end */
  CHECK(jint(json_object_get(root, "stages"), "queued", "count") > 0);
  CHECK(jint(json_object_get(root, "stages"), "queued", "count") <= kc.messages + 2);
  CHECK_EQ_INT((int64_t)json_array_size(json_object_get(root, "transcript")),
               kc.emits < 200 ? kc.emits : 200);
  CHECK(kc.emits > 0);
  json_decref(root);
  metrics = mon_get(mon, "/metrics", &mlen);
  REQUIRE(metrics != NULL);
  CHECK_EQ_INT(coh_monitor_render_metrics(snap, slen, &via, &vlen, &err), COH_OK);
  CHECK(via != NULL && vlen == mlen && memcmp(via, metrics, mlen) == 0);
  trace = mon_get(mon, "/trace", &tlen);
  CHECK(trace != NULL && strstr(trace, "\"name\":\"init\"") && strstr(trace, "\"name\":\"step\"") &&
        strstr(trace, "\"name\":\"tick\""));
  free(snap);
  free(metrics);
  free(trace);
  coh_free(via);
  release(&c);
  release(&ref);

  /* pause, step, stop: tick 0 only */
  REQUIRE(prepare(&c, scenario(pingpong)) == 0);
  c.o.monitor = mon;
  CHECK(coh_monitor_post_control(mon, COH_CONTROL_PAUSE) == 0);
  CHECK(coh_monitor_post_control(mon, COH_CONTROL_STEP) == 0);
  CHECK(coh_monitor_post_control(mon, COH_CONTROL_STOP) == 0);
  REQUIRE(coh_sim_new(c.s, &c.o, &m, &c.err) == COH_OK);
  CHECK_EQ_INT(drive(m, &c.err), COH_OK);
  CHECK_STR(coh_sim_stopped(m), "stopped");
  CHECK_EQ_INT(coh_sim_next_tick(m), 1);
  CHECK_EQ_INT(coh_sim_finish(m, &sum, &c.err), COH_OK);
  coh_sim_free(m);
  CHECK_STR(sum.stop_reason, "stopped");
  CHECK(coh_journal_last_tick(c.j, &last, &nev, &c.err) == COH_OK);
  CHECK_EQ_INT(last, 0);
  snap = mon_get(mon, "/api/snapshot", &slen);
  REQUIRE(snap != NULL);
  root = json_loadb(snap, slen, 0, NULL);
  CHECK(root != NULL);
  CHECK_STR(json_string_value(json_object_get(json_object_get(root, "run"), "stop_reason")),
            "stopped");
  CHECK(json_is_true(json_object_get(json_object_get(root, "run"), "paused")));
  CHECK_EQ_INT(jint(root, "run", "tick"), 1);
  CHECK_EQ_INT(jint(root, "counters", "events"), nev);
  CHECK_EQ_INT((int64_t)json_array_size(json_object_get(root, "ticks")), 1);
  json_decref(root);
  free(snap);
  release(&c);
  coh__monitor_free(mon);
}

int main(int argc, char **argv) {
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  const char *build = getenv("COH_BUILD_DIR");
  char cmd[600];
  int rc;
  TEST_MAIN_BEGIN(argc, argv);
  if (build == NULL) {
    fprintf(stderr, "COH_BUILD_DIR is not set (run through ctest)\n");
    return 1;
  }
  snprintf(cache, sizeof cache, "%s/test-module-cache", build);
  snprintf(tmpdir, sizeof tmpdir, "%s/coh-sim-XXXXXX", base);
  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  RUN(ticks_match_run);
  RUN(after_stop);
  RUN(bad_options);
  RUN(user_sink);
  RUN(sink_error);
  RUN(reported_sink);
  RUN(replay_compare);
  RUN(reads_only_verified);
  RUN(sink_stop);
  RUN(monitor_sink);
  rc = TEST_MAIN_END();
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return rc;
}
