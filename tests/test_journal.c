/* test_journal.c — the run journal: round trips, the hash chain against an
 * independent recomputation, crash safety with killed writers, tampering,
 * malformed files, checkpoints, truncation, filters.
 *
 * `test_journal --write-sample PATH` writes a small sample journal and prints
 * its digest (used by tests/cli_inspect.sh). */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "cohort/journal.h"
#include "fuzz/fuzz_journal.c"
#include "test.h"
#include "util/util_int.h"

static char tmpdir[256];
static int tmp_counter;

static const char *tmp_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%d-%s", tmpdir, tmp_counter++, name);
  return buf;
}

static void rm_journal(const char *path) {
  char b[600];
  unlink(path);
  snprintf(b, sizeof b, "%s-wal", path);
  unlink(b);
  snprintf(b, sizeof b, "%s-shm", path);
  unlink(b);
}

static int sql_exec(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  char *msg = NULL;
  int rc = sqlite3_open(path, &db);
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    fprintf(stderr, "sql_exec(%s): %s\n", sql, msg ? msg : sqlite3_errmsg(db));
  sqlite3_free(msg);
  sqlite3_close(db);
  return rc;
}

/* ---- ticks.events: one zstd frame of the events blob (journal.h) ------- */

/* Tick `tick`'s events blob as stored, decompressed here with libzstd
 * itself: *out is malloc'd (NULL and 0 if the row or frame is not there). */
static void events_get(const char *path, int64_t tick, uint8_t **out, size_t *len) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  *out = NULL;
  *len = 0;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  REQUIRE(sqlite3_prepare_v2(db, "SELECT events FROM ticks WHERE tick = ?", -1, &st,
                             NULL) == SQLITE_OK);
  sqlite3_bind_int64(st, 1, tick);
  if (sqlite3_step(st) == SQLITE_ROW) {
    const void *z = sqlite3_column_blob(st, 0);
    size_t zn = (size_t)sqlite3_column_bytes(st, 0);
    unsigned long long size = ZSTD_getFrameContentSize(z, zn);
    if (size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN &&
        size < (1u << 24)) {
      *out = malloc((size_t)size + 1);
      REQUIRE(*out != NULL);
      *len = ZSTD_decompress(*out, (size_t)size + 1, z, zn);
      if (ZSTD_isError(*len) || *len != size) {
        free(*out);
        *out = NULL;
        *len = 0;
      }
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
}

enum { STORE_FRAME, STORE_FRAME_TEXT, STORE_FRAME_NO_SIZE, STORE_RAW };

/* Stores p[0..n) as tick `tick`'s events column: compressed as cohort
 * stores it (as a blob, or as text as the sqlite3 shell may leave it),
 * compressed without the content size in the frame header, or raw. */
static void events_put(const char *path, int64_t tick, const void *p, size_t n, int how) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  void *z = NULL;
  size_t zn = n;
  if (how != STORE_RAW) {
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    REQUIRE(cc != NULL);
    z = malloc(ZSTD_compressBound(n));
    REQUIRE(z != NULL);
    if (how == STORE_FRAME_NO_SIZE)
      REQUIRE(!ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
    zn = ZSTD_compress2(cc, z, ZSTD_compressBound(n), p, n);
    REQUIRE(!ZSTD_isError(zn));
    ZSTD_freeCCtx(cc);
    p = z;
  }
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  REQUIRE(sqlite3_prepare_v2(db, "UPDATE ticks SET events = ? WHERE tick = ?", -1, &st,
                             NULL) == SQLITE_OK);
  if (how == STORE_FRAME_TEXT)
    sqlite3_bind_text(st, 1, p, (int)zn, SQLITE_TRANSIENT);
  else
    sqlite3_bind_blob(st, 1, n || how != STORE_RAW ? p : "", (int)zn, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, tick);
  REQUIRE(sqlite3_step(st) == SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);
  free(z);
}

/* ---- an independent chain: the header's definition, written out again --- */

static void ref_le64(coh__sha256 *s, int64_t v) {
  uint8_t b[8];
  int i;
  for (i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)v >> (8 * i));
  coh__sha256_update(s, b, 8);
}

/* A genesis with no blobs. */
static void ref_chain0(const char *inputs, uint8_t out[32]) {
  coh__sha256 s;
  coh__sha256_init(&s);
  coh__sha256_update(&s, "cohort-journal-5", 17);
  coh__sha256_update(&s, "G", 1);
  ref_le64(&s, (int64_t)strlen(inputs));
  coh__sha256_update(&s, inputs, strlen(inputs));
  ref_le64(&s, 0);
  coh__sha256_final(&s, out);
}

static void ref_tick(uint8_t c[32], int64_t tick, int64_t last_seq,
                     int64_t n_ckpt) {
  coh__sha256 s;
  coh__sha256_init(&s);
  coh__sha256_update(&s, c, 32);
  coh__sha256_update(&s, "T", 1);
  ref_le64(&s, tick);
  ref_le64(&s, last_seq);
  ref_le64(&s, n_ckpt);
  coh__sha256_final(&s, c);
}

static void ref_ckpt(uint8_t c[32], int64_t tick, int64_t n, const char *agent,
                     const char *state) {
  coh__sha256 s;
  coh__sha256_init(&s);
  coh__sha256_update(&s, c, 32);
  coh__sha256_update(&s, "C", 1);
  ref_le64(&s, tick);
  ref_le64(&s, n);
  coh__sha256_update(&s, agent, strlen(agent) + 1);
  ref_le64(&s, (int64_t)strlen(state));
  coh__sha256_update(&s, state, strlen(state));
  coh__sha256_final(&s, c);
}

/* A tick's events blob, built here from the definition in journal.h:
 * kind\0 source\0 target\0 uvarint(payload_len) payload, back to back. */
static uint8_t ref_blob[4096];
static size_t ref_blob_len;
static int64_t ref_blob_n;

static void ref_ev(const char *kind, const char *source, const char *target,
                   const void *p, size_t n) {
  const char *str[3];
  size_t i, v = n;
  str[0] = kind;
  str[1] = source;
  str[2] = target;
  for (i = 0; i < 3; i++) {
    size_t l = strlen(str[i]) + 1;
    REQUIRE(ref_blob_len + l + 10 + n <= sizeof ref_blob);
    memcpy(ref_blob + ref_blob_len, str[i], l);
    ref_blob_len += l;
  }
  while (v >= 0x80) {
    ref_blob[ref_blob_len++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  ref_blob[ref_blob_len++] = (uint8_t)v;
  memcpy(ref_blob + ref_blob_len, p, n);
  ref_blob_len += n;
  ref_blob_n++;
}

/* The events record over the events given to ref_ev since the last one. */
static void ref_events(uint8_t c[32], int64_t tick, int64_t first_seq) {
  coh__sha256 s;
  coh__sha256_init(&s);
  coh__sha256_update(&s, c, 32);
  coh__sha256_update(&s, "E", 1);
  ref_le64(&s, tick);
  ref_le64(&s, first_seq);
  ref_le64(&s, ref_blob_n);
  ref_le64(&s, (int64_t)ref_blob_len);
  coh__sha256_update(&s, ref_blob, ref_blob_len);
  coh__sha256_final(&s, c);
  ref_blob_len = 0;
  ref_blob_n = 0;
}

/* ---- a fixed event list ----------------------------------------------- */

typedef struct tev {
  int64_t tick;
  const char *kind, *source, *target, *payload;
  size_t len; /* 0: strlen(payload) */
  int64_t wall_us;
} tev;

static const tev base_events[] = {
    {0, "message", "scenario", "alice", "hello alice", 0, 10},
    {0, "message", "scenario", "bob", "hello bob", 0, 11},
    {1, "emit", "alice", "", "I think therefore I am", 0, 20},
    {1, "llm_request", "alice", "tiny", "{\"prompt\":\"hi\"}", 0, 21},
    {1, "message", "alice", "bob", "ping", 0, 22},
    {2, "message", "bob", "alice", "pong", 0, 30},
    {2, "log", "bob", "", "", 0, 31},
    {3, "llm_result", "tiny", "alice", "\x00\x01\x02 binary", 10, 40},
    {3, "exit", "alice", "", "0", 0, 41},
};
#define N_BASE (sizeof base_events / sizeof base_events[0])

static size_t tev_len(const tev *e) {
  return e->len ? e->len : strlen(e->payload);
}

/* Appends evs[0..n) tick by tick (ticks as given) and commits. */
static int write_events(coh_journal *j, const tev *evs, size_t n,
                        coh_err *err) {
  size_t i = 0;
  int rc;
  while (i < n) {
    int64_t t = evs[i].tick;
    rc = coh_journal_tick_begin(j, t, err);
    if (rc) return rc;
    for (; i < n && evs[i].tick == t; i++) {
      coh_jevent ev;
      memset(&ev, 0, sizeof ev);
      ev.tick = t;
      ev.kind = evs[i].kind;
      ev.source = evs[i].source;
      ev.target = evs[i].target;
      ev.payload = evs[i].payload;
      ev.payload_len = tev_len(&evs[i]);
      ev.wall_us = evs[i].wall_us;
      rc = coh_journal_append(j, &ev, err);
      if (rc) return rc;
      if (ev.seq != (int64_t)i + 1) return -100;
    }
    rc = coh_journal_tick_commit(j, 1000 + t, err);
    if (rc) return rc;
  }
  return 0;
}

/* Builds a journal from evs and returns its digest in hex. */
static int build(const char *inputs, const tev *evs, size_t n, char hex[65]) {
  char path[512];
  coh_journal *j = NULL;
  coh_err err;
  int rc;
  tmp_path(path, sizeof path, "build.db");
  rc = coh_journal_create(path, inputs, strlen(inputs), &j, &err);
  if (rc == 0) rc = write_events(j, evs, n, &err);
  if (rc == 0) coh_journal_digest(j, hex);
  if (rc) fprintf(stderr, "build: %s\n", err.msg);
  coh_journal_close(j);
  rm_journal(path);
  return rc;
}

typedef struct collect {
  coh_jevent ev[64];
  char *str[64][4];
  size_t n;
  int stop_at; /* stop after this many (0: never) */
} collect;

static int collect_fn(void *ud, const coh_jevent *ev) {
  collect *c = ud;
  if (c->n >= 64) return 99;
  c->ev[c->n] = *ev;
  c->str[c->n][0] = coh__strdup(ev->kind);
  c->str[c->n][1] = coh__strdup(ev->source);
  c->str[c->n][2] = coh__strdup(ev->target);
  c->str[c->n][3] = coh__malloc(ev->payload_len + 1);
  memcpy(c->str[c->n][3], ev->payload, ev->payload_len);
  c->ev[c->n].kind = c->str[c->n][0];
  c->ev[c->n].source = c->str[c->n][1];
  c->ev[c->n].target = c->str[c->n][2];
  c->ev[c->n].payload = c->str[c->n][3];
  c->n++;
  if (c->stop_at && (int)c->n == c->stop_at) return 7;
  return 0;
}

static void collect_free(collect *c) {
  size_t i, k;
  for (i = 0; i < c->n; i++)
    for (k = 0; k < 4; k++) coh__free(c->str[i][k]);
  c->n = 0;
}

/* ---- tests ------------------------------------------------------------ */

static void test_roundtrip(void) {
  char path[512], hex[65], hex2[65], want[65];
  const char *inputs = "{\"scenario\":\"debate\",\"seed\":42}";
  coh_journal *j = NULL;
  coh_err err;
  collect c;
  uint8_t ref[32];
  int64_t tick, nev, first;
  char *v = NULL;
  size_t len, i;

  tmp_path(path, sizeof path, "rt.db");
  REQUIRE(coh_journal_create(path, inputs, strlen(inputs), &j, &err) == 0);
  /* before any event the digest is chain[0] */
  ref_chain0(inputs, ref);
  coh__hex32(ref, want);
  coh_journal_digest(j, hex);
  CHECK_STR(hex, want);
  CHECK(coh_journal_last_tick(j, &tick, &nev, &err) == 0);
  CHECK_EQ_INT(tick, -1);
  CHECK_EQ_INT(nev, 0);
  CHECK(coh_journal_meta_put(j, "seed", "42", 2, &err) == 0);
  CHECK(coh_journal_meta_put(j, "inputs", "x", 1, &err) == COH_EINVAL);
  CHECK(write_events(j, base_events, N_BASE, &err) == 0);
  CHECK(coh_journal_last_tick(j, &tick, &nev, &err) == 0);
  CHECK_EQ_INT(tick, 3);
  CHECK_EQ_INT(nev, (int)N_BASE);
  /* independent recomputation: each tick's events record, and a tick
   * record closing it */
  for (i = 0, first = 1; i < N_BASE; i++) {
    const tev *e = &base_events[i];
    ref_ev(e->kind, e->source, e->target, e->payload, tev_len(e));
    if (i + 1 == N_BASE || base_events[i + 1].tick != e->tick) {
      ref_events(ref, e->tick, first);
      ref_tick(ref, e->tick, (int64_t)i + 1, 0);
      first = (int64_t)i + 2;
    }
  }
  coh__hex32(ref, want);
  coh_journal_digest(j, hex);
  CHECK_STR(hex, want);
  CHECK(coh_journal_verify(j, &err) == 0);
  coh_journal_close(j);
  j = NULL;

  /* a second create on the same path is refused */
  CHECK(coh_journal_create(path, "", 0, &j, &err) == COH_EIO);
  CHECK(strstr(err.msg, "already exists") != NULL);

  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  coh_journal_digest(j, hex2);
  CHECK_STR(hex2, want);
  CHECK(coh_journal_last_tick(j, &tick, &nev, &err) == 0);
  CHECK_EQ_INT(tick, 3);
  CHECK_EQ_INT(nev, (int)N_BASE);
  CHECK(coh_journal_meta_get(j, "seed", &v, &len, &err) == 0);
  CHECK_STR(v, "42");
  CHECK_EQ_INT(len, 2);
  coh_free(v);
  CHECK(coh_journal_meta_get(j, "inputs", &v, &len, &err) == 0);
  CHECK_STR(v, inputs);
  coh_free(v);
  CHECK(coh_journal_meta_get(j, "nope", &v, &len, &err) == COH_ENOENT);
  CHECK(v == NULL);

  memset(&c, 0, sizeof c);
  CHECK(coh_journal_events(j, INT64_MIN, INT64_MAX, NULL, collect_fn, &c,
                           &err) == 0);
  CHECK_EQ_INT(c.n, N_BASE);
  ref_chain0(inputs, ref);
  for (i = 0, first = 1; i < c.n && i < N_BASE; i++) {
    const tev *e = &base_events[i];
    CHECK_EQ_INT(c.ev[i].seq, i + 1);
    CHECK_EQ_INT(c.ev[i].tick, e->tick);
    CHECK_STR(c.ev[i].kind, e->kind);
    CHECK_STR(c.ev[i].source, e->source);
    CHECK_STR(c.ev[i].target, e->target);
    CHECK_EQ_INT(c.ev[i].payload_len, tev_len(e));
    CHECK(memcmp(c.ev[i].payload, e->payload, tev_len(e)) == 0);
    CHECK_EQ_INT(c.ev[i].wall_us, e->wall_us);
    ref_ev(e->kind, e->source, e->target, e->payload, tev_len(e));
    if (i + 1 == N_BASE || base_events[i + 1].tick != e->tick) {
      size_t k;
      /* every event of a tick reads back its tick's events record */
      ref_events(ref, e->tick, first);
      for (k = (size_t)first - 1; k <= i; k++)
        CHECK(memcmp(ref, c.ev[k].chain, 32) == 0);
      ref_tick(ref, e->tick, (int64_t)i + 1, 0);
      first = (int64_t)i + 2;
    }
  }
  collect_free(&c);
  CHECK(coh_journal_verify(j, &err) == 0);

  /* appending after reopen continues the chain */
  {
    static const tev more[] = {{7, "message", "bob", "alice", "again", 0, 70}};
    coh_jevent ev;
    CHECK(coh_journal_tick_begin(j, 3, &err) == COH_EINVAL);
    CHECK(coh_journal_tick_begin(j, 7, &err) == 0);
    memset(&ev, 0, sizeof ev);
    ev.tick = 7;
    ev.kind = more[0].kind;
    ev.source = more[0].source;
    ev.target = more[0].target;
    ev.payload = more[0].payload;
    ev.payload_len = 5;
    CHECK(coh_journal_append(j, &ev, &err) == 0);
    CHECK_EQ_INT(ev.seq, N_BASE + 1);
    CHECK(coh_journal_checkpoint_put(j, "bob", "state", 5, &err) == 0);
    /* the chain takes a tick's events first, then its checkpoints */
    CHECK(coh_journal_append(j, &ev, &err) == COH_ESTATE);
    CHECK(coh_journal_tick_commit(j, 5, &err) == 0);
    ref_ev("message", "bob", "alice", "again", 5);
    {
      /* what ticks.events stores: the blob the chain hashes, as one frame */
      uint8_t *stored;
      size_t n;
      events_get(path, 7, &stored, &n);
      CHECK(stored != NULL && n == ref_blob_len && memcmp(stored, ref_blob, n) == 0);
      free(stored);
    }
    ref_events(ref, 7, ev.seq);
    {
      uint8_t ec[32];
      coh_journal_events_chain(j, ec);
      CHECK(memcmp(ec, ref, 32) == 0);
    }
    ref_ckpt(ref, 7, 1, "bob", "state");
    ref_tick(ref, 7, ev.seq, 1);
    coh__hex32(ref, want);
    coh_journal_digest(j, hex);
    CHECK_STR(hex, want);
    CHECK(coh_journal_verify(j, &err) == 0);
  }
  coh_journal_close(j);
  rm_journal(path);
}

static void test_state_errors(void) {
  char path[512], hex[65], hex2[65];
  coh_journal *j = NULL;
  coh_err err;
  coh_jevent ev;
  int64_t tick, nev;

  tmp_path(path, sizeof path, "state.db");
  REQUIRE(coh_journal_create(path, "in", 2, &j, &err) == 0);
  memset(&ev, 0, sizeof ev);
  ev.kind = "log";
  ev.source = "a";
  ev.payload = "x";
  ev.payload_len = 1;
  CHECK(coh_journal_append(j, &ev, &err) == COH_ESTATE);
  CHECK(coh_journal_tick_commit(j, 0, &err) == COH_ESTATE);
  CHECK(coh_journal_checkpoint_put(j, "a", "s", 1, &err) == COH_ESTATE);
  CHECK(coh_journal_tick_begin(j, -5, &err) == COH_EINVAL);
  CHECK(coh_journal_tick_begin(j, 0, &err) == 0);
  CHECK(coh_journal_tick_begin(j, 1, &err) == COH_ESTATE);
  CHECK(coh_journal_verify(j, &err) == COH_ESTATE);
  ev.tick = 4; /* not the open tick */
  CHECK(coh_journal_append(j, &ev, &err) == COH_EINVAL);
  ev.tick = 0;
  ev.target = NULL; /* NULL target is "" */
  CHECK(coh_journal_append(j, &ev, &err) == 0);
  CHECK(coh_journal_tick_commit(j, 0, &err) == 0);
  coh_journal_digest(j, hex);

  /* a rolled-back tick leaves nothing behind */
  CHECK(coh_journal_tick_begin(j, 1, &err) == 0);
  ev.tick = 1;
  CHECK(coh_journal_append(j, &ev, &err) == 0);
  CHECK(coh_journal_checkpoint_put(j, "a", "s", 1, &err) == 0);
  coh_journal_tick_rollback(j);
  coh_journal_digest(j, hex2);
  CHECK_STR(hex, hex2);
  CHECK(coh_journal_last_tick(j, &tick, &nev, &err) == 0);
  CHECK_EQ_INT(tick, 0);
  CHECK_EQ_INT(nev, 1);
  CHECK(coh_journal_checkpoint_tick(j, INT64_MAX, &tick, &err) == 0);
  CHECK_EQ_INT(tick, -1);
  /* the same tick can be begun again; seq continues from the commit */
  CHECK(coh_journal_tick_begin(j, 1, &err) == 0);
  CHECK(coh_journal_append(j, &ev, &err) == 0);
  CHECK_EQ_INT(ev.seq, 2);
  CHECK(coh_journal_tick_commit(j, 0, &err) == 0);
  CHECK(coh_journal_verify(j, &err) == 0);
  /* closing with a tick open rolls it back */
  CHECK(coh_journal_tick_begin(j, 2, &err) == 0);
  ev.tick = 2;
  CHECK(coh_journal_append(j, &ev, &err) == 0);
  coh_journal_digest(j, hex);
  coh_journal_close(j);
  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  coh_journal_digest(j, hex2);
  CHECK_STR(hex, hex2);
  CHECK(coh_journal_last_tick(j, &tick, &nev, &err) == 0);
  CHECK_EQ_INT(tick, 1);
  CHECK_EQ_INT(nev, 2);
  coh_journal_close(j);
  rm_journal(path);
}

/* Every deterministic column moves the digest; wall_us does not. */
static void test_digest_columns(void) {
  char base[65], hex[65];
  tev evs[N_BASE + 1];
  int field;
  REQUIRE(build("inputs", base_events, N_BASE, base) == 0);
  REQUIRE(build("inputs", base_events, N_BASE, hex) == 0);
  CHECK_STR(hex, base); /* deterministic */
  CHECK(build("inputs2", base_events, N_BASE, hex) == 0);
  CHECK(strcmp(hex, base) != 0);
  for (field = 0; field < 7; field++) {
    memcpy(evs, base_events, sizeof base_events);
    switch (field) {
      case 0: evs[4].tick = 2; break; /* moves one event to the next tick */
      case 1: evs[4].kind = "emit"; break;
      case 2: evs[4].source = "alicf"; break;
      case 3: evs[4].target = "bobb"; break;
      case 4: evs[4].payload = "pinG"; break;
      case 5: evs[7].len = 9; break; /* payload one byte shorter */
      case 6: /* same rows, one more event: every later seq shifts */
        memmove(&evs[3], &evs[2], (N_BASE - 2) * sizeof evs[0]);
        break;
    }
    CHECK(build("inputs", evs, field == 6 ? N_BASE + 1 : N_BASE, hex) == 0);
    if (strcmp(hex, base) == 0)
      fprintf(stderr, "digest did not change with field %d\n", field);
    CHECK(strcmp(hex, base) != 0);
  }
  /* the last event alone: digest still changes (no lag in the chain) */
  memcpy(evs, base_events, sizeof base_events);
  evs[N_BASE - 1].payload = "1";
  CHECK(build("inputs", evs, N_BASE, hex) == 0);
  CHECK(strcmp(hex, base) != 0);
  /* wall-clock is outside the chain */
  memcpy(evs, base_events, sizeof base_events);
  {
    size_t i;
    for (i = 0; i < N_BASE; i++) evs[i].wall_us = 999999 + (int64_t)i * 7;
  }
  CHECK(build("inputs", evs, N_BASE, hex) == 0);
  CHECK_STR(hex, base);
}

/* Writes ticks 0..n_ticks-1 with per_tick events each. */
static int write_ticks(coh_journal *j, int64_t from, int64_t n_ticks,
                       int per_tick, coh_err *err) {
  int64_t t;
  int k, rc;
  char payload[64];
  for (t = from; t < from + n_ticks; t++) {
    rc = coh_journal_tick_begin(j, t, err);
    if (rc) return rc;
    for (k = 0; k < per_tick; k++) {
      coh_jevent ev;
      memset(&ev, 0, sizeof ev);
      snprintf(payload, sizeof payload, "tick %lld event %d",
               (long long)t, k);
      ev.tick = t;
      ev.kind = "message";
      ev.source = k % 2 ? "a" : "b";
      ev.target = k % 2 ? "b" : "a";
      ev.payload = payload;
      ev.payload_len = strlen(payload);
      rc = coh_journal_append(j, &ev, err);
      if (rc) return rc;
    }
    rc = coh_journal_tick_commit(j, t, err);
    if (rc) return rc;
  }
  return 0;
}

/* A child that dies (by _exit or SIGKILL) with a tick open. */
static void killed_before_commit(int how) {
  char path[512], hex[65], hex2[65];
  coh_journal *j = NULL;
  coh_err err;
  int64_t tick, nev;
  pid_t pid;
  int status;

  tmp_path(path, sizeof path, "kill1.db");
  REQUIRE(coh_journal_create(path, "in", 2, &j, &err) == 0);
  REQUIRE(write_ticks(j, 0, 3, 10, &err) == 0);
  coh_journal_digest(j, hex);
  coh_journal_close(j);
  j = NULL;

  fflush(NULL);
  pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    coh_journal *cj = NULL;
    if (coh_journal_open(path, &cj, &err) != 0) _exit(3);
    if (coh_journal_tick_begin(cj, 3, &err) != 0) _exit(4);
    {
      int k;
      for (k = 0; k < 500; k++) {
        coh_jevent ev;
        memset(&ev, 0, sizeof ev);
        ev.tick = 3;
        ev.kind = "emit";
        ev.source = "a";
        ev.payload = "lost";
        ev.payload_len = 4;
        if (coh_journal_append(cj, &ev, &err) != 0) _exit(5);
      }
    }
    if (coh_journal_checkpoint_put(cj, "a", "lost", 4, &err) != 0) _exit(6);
    if (how == 0) _exit(0);
    kill(getpid(), SIGKILL);
    _exit(7);
  }
  REQUIRE(waitpid(pid, &status, 0) == pid);
  if (how == 0)
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  else
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  CHECK(coh_journal_last_tick(j, &tick, &nev, &err) == 0);
  CHECK_EQ_INT(tick, 2);
  CHECK_EQ_INT(nev, 30);
  coh_journal_digest(j, hex2);
  CHECK_STR(hex2, hex);
  CHECK(coh_journal_verify(j, &err) == 0);
  CHECK(coh_journal_checkpoint_tick(j, INT64_MAX, &tick, &err) == 0);
  CHECK_EQ_INT(tick, -1);
  /* and the run can go on from there */
  CHECK(write_ticks(j, 3, 1, 5, &err) == 0);
  CHECK(coh_journal_verify(j, &err) == 0);
  coh_journal_close(j);
  rm_journal(path);
}

static void test_killed_before_commit(void) {
  killed_before_commit(0);
  killed_before_commit(1);
}

static int count_fn(void *ud, const coh_jevent *ev) {
  (void)ev;
  (*(int64_t *)ud)++;
  return 0;
}

/* A child writing tick after tick, SIGKILLed from outside at an arbitrary
 * point: the journal ends at a whole committed tick. */
static void killed_midway(long delay_us) {
  char path[512];
  coh_journal *j = NULL;
  coh_err err;
  int64_t tick, nev, seen = -1;
  int fds[2], status;
  pid_t pid;
  const int per_tick = 200; /* ~6 pages a tick: WAL checkpoints happen */

  tmp_path(path, sizeof path, "kill2.db");
  REQUIRE(pipe(fds) == 0);
  fflush(NULL);
  pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    coh_journal *cj = NULL;
    int64_t t;
    close(fds[0]);
    if (coh_journal_create(path, "in", 2, &cj, &err) != 0) _exit(3);
    for (t = 0; t < 1000000; t++) {
      if (write_ticks(cj, t, 1, per_tick, &err) != 0) _exit(4);
      if (write(fds[1], &t, sizeof t) != (ssize_t)sizeof t) _exit(5);
    }
    _exit(0);
  }
  close(fds[1]);
  /* Wait until ~300 ticks are committed, then kill without warning; the
   * child is by then in the middle of some later tick (or a commit). */
  while (seen < 300 && read(fds[0], &seen, sizeof seen) == (ssize_t)sizeof seen)
    ;
  if (delay_us > 0) {
    struct timespec d;
    d.tv_sec = 0;
    d.tv_nsec = delay_us * 1000;
    nanosleep(&d, NULL);
  }
  kill(pid, SIGKILL);
  REQUIRE(waitpid(pid, &status, 0) == pid);
  close(fds[0]);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  REQUIRE(seen >= 300);
  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  CHECK(coh_journal_last_tick(j, &tick, &nev, &err) == 0);
  CHECK(tick >= seen);
  CHECK_EQ_INT(nev, (tick + 1) * per_tick);
  if (coh_journal_verify(j, &err) != 0) fprintf(stderr, "%s\n", err.msg);
  CHECK(coh_journal_verify(j, &err) == 0);
  {
    int64_t n_last = 0;
    CHECK(coh_journal_events(j, tick, tick, NULL, count_fn, &n_last, &err) ==
          0);
    CHECK_EQ_INT(n_last, per_tick);
  }
  /* continue the run and verify again */
  CHECK(write_ticks(j, tick + 1, 3, per_tick, &err) == 0);
  CHECK(coh_journal_verify(j, &err) == 0);
  fprintf(stderr, "  killed after >= %lld ticks (+%ld us); journal ended at "
          "tick %lld\n", (long long)seen, delay_us, (long long)tick);
  coh_journal_close(j);
  rm_journal(path);
}

static void test_killed_midway(void) {
  /* three kill points: right away, and a little later (mid-tick, mid-
   * commit or mid-checkpoint, wherever the child happens to be) */
  killed_midway(0);
  killed_midway(1500);
  killed_midway(7000);
}

static int verify_path(const char *path, coh_err *err) {
  coh_journal *j = NULL;
  int rc = coh_journal_open(path, &j, err);
  if (rc == 0) rc = coh_journal_verify(j, err);
  coh_journal_close(j);
  return rc;
}

/* Ticks 0..2 with 5 events each, a checkpoint of agent a in tick 1, and
 * a "status" meta outside the chain. */
static void make_sample(const char *path) {
  coh_journal *j = NULL;
  coh_err err;
  int rc = coh_journal_create(path, "in", 2, &j, &err);
  if (rc == 0) rc = write_ticks(j, 0, 1, 5, &err);
  if (rc == 0) rc = coh_journal_tick_begin(j, 1, &err);
  if (rc == 0) {
    int k;
    for (k = 0; k < 5 && rc == 0; k++) {
      coh_jevent ev;
      char payload[64];
      memset(&ev, 0, sizeof ev);
      snprintf(payload, sizeof payload, "tick 1 event %d", k);
      ev.tick = 1;
      ev.kind = "message";
      ev.source = k % 2 ? "a" : "b";
      ev.target = k % 2 ? "b" : "a";
      ev.payload = payload;
      ev.payload_len = strlen(payload);
      rc = coh_journal_append(j, &ev, &err);
    }
  }
  if (rc == 0) rc = coh_journal_checkpoint_put(j, "a", "mem", 3, &err);
  if (rc == 0) rc = coh_journal_tick_commit(j, 1, &err);
  if (rc == 0) rc = write_ticks(j, 2, 1, 5, &err);
  if (rc == 0) rc = coh_journal_meta_put(j, "status", "running", 7, &err);
  if (rc) fprintf(stderr, "make_sample: %s\n", err.msg);
  coh_journal_close(j);
}

static void test_tamper(void) {
  char path[512];
  coh_err err;
  static const struct {
    const char *sql;
    int ok;
    const char *want;
  } cases[] = {
      /* tick 1's events column no longer one zstd frame (edited contents
       * are below, after this table) */
      {"UPDATE ticks SET events = X'00' WHERE tick = 1", 0,
       "table ticks, tick 1: events is not one zstd frame"},
      {"UPDATE ticks SET events = events || X'00' WHERE tick = 1", 0,
       "table ticks, tick 1: events is not one zstd frame"},
      /* the same frame as text, as the sqlite3 shell may leave it */
      {"UPDATE ticks SET events = CAST(events AS TEXT) WHERE tick = 1", 1, NULL},
      {"UPDATE ticks SET events_chain = zeroblob(32) WHERE tick = 0", 0,
       "table ticks, tick 0 (events, seqs 1..5)"},
      {"UPDATE ticks SET events_chain = X'00' WHERE tick = 0", 0,
       "table ticks, tick 0: events_chain is not a 32-byte blob"},
      {"UPDATE ticks SET chain = zeroblob(32) WHERE tick = 1", 0,
       "table ticks, tick 1:"},
      /* a tick row in the middle gone, with its events: a gap in seqs */
      {"DELETE FROM ticks WHERE tick = 1", 0,
       "table ticks, tick 2: its 5 events end at seq 15, but the tick before "
       "ends at seq 5 (events missing or doubled)"},
      /* tick bookkeeping */
      {"UPDATE ticks SET last_seq = 9 WHERE tick = 1", 0,
       "table ticks, tick 1: its 5 events end at seq 9"},
      {"UPDATE ticks SET n_events = 4, last_seq = 9 WHERE tick = 1", 0,
       "table ticks, tick 1 (events, seqs 6..9)"},
      {"UPDATE ticks SET n_events = -1, last_seq = 4 WHERE tick = 1", 0,
       "table ticks, tick 1: -1 events through seq 4 cannot be right"},
      {"UPDATE ticks SET n_events = 'x' WHERE tick = 1", 0,
       "table ticks, tick 1: a column is not an integer"},
      {"UPDATE ticks SET events = 7 WHERE tick = 1", 0,
       "table ticks, tick 1: events or walls is not a blob"},
      /* the wall-clock times are outside the chain, but must decode */
      {"UPDATE ticks SET walls = X'02' WHERE tick = 1", 0,
       "table ticks, tick 1: walls blob is malformed at event #2"},
      {"UPDATE ticks SET walls = X'020202020200' WHERE tick = 1", 0,
       "table ticks, tick 1: walls blob has bytes after its 5 events"},
      {"UPDATE ticks SET walls = X'0202020202' WHERE tick = 1", 1, NULL},
      {"UPDATE meta SET value = 'other' WHERE key = 'inputs'", 0,
       "table meta, key 'inputs' (the genesis record)"},
      {"UPDATE meta SET value = 'x' WHERE key = 'genesis'", 0,
       "table meta, key 'inputs' (the genesis record)"},
      {"DELETE FROM meta WHERE key = 'genesis'", 0,
       "table meta, key 'genesis': missing"},
      /* a blob added after creation changes the genesis */
      {"INSERT INTO blobs VALUES(zeroblob(32), X'01')", 0,
       "table meta, key 'inputs'"},
      {"UPDATE checkpoints SET state = X'00'", 0,
       "table checkpoints, tick 1, agent a:"},
      {"UPDATE checkpoints SET agent = 'b'", 0,
       "table checkpoints, tick 1, agent b:"},
      {"UPDATE checkpoints SET tick = 0", 0,
       "table checkpoints, tick 0, agent a:"},
      {"UPDATE checkpoints SET tick = 7", 0, "table ticks, tick 1:"},
      {"INSERT INTO checkpoints VALUES(9, 1, 'z', X'00', zeroblob(32))", 0,
       "table checkpoints, tick 9, agent z: it belongs to no committed tick"},
      {"INSERT INTO checkpoints VALUES(1, 2, 'c', X'00', zeroblob(32))", 0,
       "table checkpoints, tick 1, agent c:"},
      {"UPDATE meta SET value = 'complete' WHERE key = 'status'", 1, NULL},
      {"UPDATE ticks SET wall_us = 77", 1, NULL},
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc;
    tmp_path(path, sizeof path, "tamper.db");
    make_sample(path);
    REQUIRE(verify_path(path, &err) == 0);
    REQUIRE(sql_exec(path, cases[i].sql) == SQLITE_OK);
    rc = verify_path(path, &err);
    if (cases[i].ok) {
      CHECK_EQ_INT(rc, 0);
    } else {
      CHECK_EQ_INT(rc, COH_EJOURNAL);
      if (strstr(err.msg, cases[i].want) == NULL)
        fprintf(stderr, "case '%s': want '%s' in: %s\n", cases[i].sql,
                cases[i].want, err.msg);
      CHECK(strstr(err.msg, cases[i].want) != NULL);
    }
    rm_journal(path);
  }
  /* a well-formed frame whose contents were edited: the events record
   * (stored as a blob, or as text as the sqlite3 shell may leave it); a
   * frame without its size or claiming more than a tick may hold */
  {
    static const uint8_t huge[] = {0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00, /* magic, FHD, window */
                                   0x00, 0x94, 0x35, 0x77, 0, 0, 0, 0, /* 2e9 bytes */
                                   0x01, 0x00, 0x00};                 /* last raw block, empty */
    static const struct {
      int64_t tick;
      const char *find, *repl; /* same length, every occurrence */
      int how;
      const char *want;
    } edits[] = {
        {1, "event 1", "event 9", STORE_FRAME, "table ticks, tick 1 (events, seqs 6..10)"},
        {0, "message", "emitted", STORE_FRAME_TEXT, "table ticks, tick 0 (events, seqs 1..5)"},
        {1, NULL, NULL, STORE_FRAME_NO_SIZE, "table ticks, tick 1: events frame states no size"},
        {1, NULL, NULL, STORE_RAW, "table ticks, tick 1: events frame states a larger size"},
    };
    size_t e;
    for (e = 0; e < sizeof edits / sizeof edits[0]; e++) {
      uint8_t *ev, *at;
      size_t n, hits = 0;
      tmp_path(path, sizeof path, "edit.db");
      make_sample(path);
      events_get(path, edits[e].tick, &ev, &n);
      REQUIRE(ev != NULL);
      for (at = ev; edits[e].find && (at = memmem(at, n - (size_t)(at - ev), edits[e].find,
                                                   strlen(edits[e].find))) != NULL;
           hits++)
        memcpy(at, edits[e].repl, strlen(edits[e].repl));
      CHECK(edits[e].find == NULL || hits > 0);
      if (edits[e].how == STORE_RAW)
        events_put(path, edits[e].tick, huge, sizeof huge, STORE_RAW);
      else
        events_put(path, edits[e].tick, ev, n, edits[e].how);
      free(ev);
      CHECK_EQ_INT(verify_path(path, &err), COH_EJOURNAL);
      if (strstr(err.msg, edits[e].want) == NULL)
        fprintf(stderr, "edit %zu: want '%s' in: %s\n", e, edits[e].want, err.msg);
      CHECK(strstr(err.msg, edits[e].want) != NULL);
      rm_journal(path);
    }
  }
  /* reading without verify decodes the blob with bounds, and a blob that
   * does not decode is an error naming the tick and the event (blobs
   * that end inside a string, a varint, a payload; bytes left over), each
   * in a well-formed frame */
  {
    static const struct {
      const char *bytes;
      size_t len; /* 0: the tick's own blob and a NUL after it */
      const char *want;
    } bad[] = {
        {"a", 1, "tick 1: events blob is malformed at event #1 (seq 6)"},
        {"a\0b\0c\0\x80\x80", 8, "tick 1: events blob is malformed at event #1 (seq 6)"},
        {"a\0b\0c\0\x05" "ABC", 10, "tick 1: events blob is malformed at event #1 (seq 6)"},
        {"a\0b\0c\xff", 6, "tick 1: events blob is malformed at event #1 (seq 6)"},
        {NULL, 0, "tick 1: events blob has bytes after its 5 events"},
    };
    coh_journal *j = NULL;
    size_t b;
    for (b = 0; b < sizeof bad / sizeof bad[0]; b++) {
      int64_t n = 0;
      tmp_path(path, sizeof path, "badblob.db");
      make_sample(path);
      if (bad[b].bytes) {
        events_put(path, 1, bad[b].bytes, bad[b].len, STORE_FRAME);
      } else {
        uint8_t *ev, *more;
        size_t len;
        events_get(path, 1, &ev, &len);
        REQUIRE(ev != NULL);
        more = realloc(ev, len + 1);
        REQUIRE(more != NULL);
        more[len] = 0;
        events_put(path, 1, more, len + 1, STORE_FRAME);
        free(more);
      }
      REQUIRE(coh_journal_open(path, &j, &err) == 0);
      CHECK_EQ_INT(coh_journal_events(j, INT64_MIN, INT64_MAX, NULL, count_fn,
                                      &n, &err), COH_EJOURNAL);
      if (strstr(err.msg, bad[b].want) == NULL)
        fprintf(stderr, "blob case %zu: want '%s' in: %s\n", b, bad[b].want, err.msg);
      CHECK(strstr(err.msg, bad[b].want) != NULL);
      /* tick 0's events came first (and, with bytes left over, tick 1's) */
      CHECK_EQ_INT(n, bad[b].bytes == NULL ? 10 : 5);
      CHECK_EQ_INT(coh_journal_verify(j, &err), COH_EJOURNAL);
      coh_journal_close(j);
      j = NULL;
      rm_journal(path);
    }
  }
}

static int write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return -1;
  if (n && fwrite(p, 1, n, f) != n) {
    fclose(f);
    return -1;
  }
  return fclose(f);
}

static char *slurp(const char *path, size_t *n) {
  char *p = NULL;
  coh_err err;
  if (coh__read_file(path, &p, n, &err)) return NULL;
  return p;
}

static void expect_open_error(const char *path, int code, const char *want) {
  coh_journal *j = NULL;
  coh_err err;
  int rc = coh_journal_open(path, &j, &err);
  CHECK_EQ_INT(rc, code);
  CHECK(j == NULL);
  if (rc && strstr(err.msg, want) == NULL)
    fprintf(stderr, "want '%s' in: %s\n", want, err.msg);
  CHECK(rc != 0 && strstr(err.msg, want) != NULL);
  CHECK(rc != 0 && strstr(err.msg, path) != NULL);
  coh_journal_close(j);
}

static void test_malformed(void) {
  char path[512], good[512];
  unsigned char rnd[8192];
  uint32_t x = 12345;
  size_t i, n;
  char *bytes;
  struct stat sb;

  tmp_path(path, sizeof path, "missing.db");
  expect_open_error(path, COH_ENOENT, "no such file");

  tmp_path(path, sizeof path, "random.db");
  for (i = 0; i < sizeof rnd; i++) {
    x = x * 1103515245u + 12345u;
    rnd[i] = (unsigned char)(x >> 16);
  }
  REQUIRE(write_bytes(path, rnd, sizeof rnd) == 0);
  expect_open_error(path, COH_EJOURNAL, "not a SQLite file");
  /* open() must not have turned it into a database */
  CHECK(stat(path, &sb) == 0 && sb.st_size == (off_t)sizeof rnd);
  rm_journal(path);

  tmp_path(path, sizeof path, "empty.db");
  REQUIRE(write_bytes(path, "", 0) == 0);
  expect_open_error(path, COH_EJOURNAL, "empty file");
  CHECK(stat(path, &sb) == 0 && sb.st_size == 0);
  rm_journal(path);

  tmp_path(path, sizeof path, "short.db");
  REQUIRE(write_bytes(path, "SQLite format 3", 16) == 0);
  expect_open_error(path, COH_EJOURNAL, "not a SQLite file");
  rm_journal(path);

  /* a directory */
  expect_open_error(tmpdir, COH_EJOURNAL, "not a regular file");

  tmp_path(path, sizeof path, "other.db");
  REQUIRE(sql_exec(path, "CREATE TABLE foo(x); INSERT INTO foo VALUES(1);") ==
          SQLITE_OK);
  expect_open_error(path, COH_EJOURNAL, "not a cohort journal (no 'meta'");
  rm_journal(path);

  tmp_path(path, sizeof path, "othermeta.db");
  REQUIRE(sql_exec(path, "CREATE TABLE meta(key, value);"
                         "INSERT INTO meta VALUES('format', 'lol');") ==
          SQLITE_OK);
  expect_open_error(path, COH_EJOURNAL, "not a cohort journal (meta 'format' is 'lol')");
  rm_journal(path);

  tmp_path(path, sizeof path, "othermeta2.db");
  REQUIRE(sql_exec(path, "CREATE TABLE meta(a, b);") == SQLITE_OK);
  expect_open_error(path, COH_EJOURNAL, "not a cohort journal");
  rm_journal(path);

  tmp_path(path, sizeof path, "version.db");
  make_sample(path);
  REQUIRE(sql_exec(path, "UPDATE meta SET value = '99' WHERE key = "
                         "'schema_version'") == SQLITE_OK);
  expect_open_error(path, COH_EJOURNAL, "schema version '99'");
  rm_journal(path);

  /* a format-4 journal (tick rows not compressed) is refused by name */
  tmp_path(path, sizeof path, "v4.db");
  make_sample(path);
  REQUIRE(sql_exec(path, "UPDATE meta SET value = '4' WHERE key = "
                         "'schema_version'") == SQLITE_OK);
  expect_open_error(path, COH_EJOURNAL,
                    "has schema version '4'; this cohort reads version 5");
  rm_journal(path);

  tmp_path(path, sizeof path, "notable.db");
  make_sample(path);
  REQUIRE(sql_exec(path, "DROP TABLE checkpoints") == SQLITE_OK);
  expect_open_error(path, COH_EJOURNAL, "table 'checkpoints' is missing");
  rm_journal(path);

  tmp_path(path, sizeof path, "nocolumn.db");
  make_sample(path);
  REQUIRE(sql_exec(path, "ALTER TABLE ticks DROP COLUMN walls") ==
          SQLITE_OK);
  expect_open_error(path, COH_EJOURNAL, "walls");
  rm_journal(path);

  tmp_path(path, sizeof path, "noinputs.db");
  make_sample(path);
  REQUIRE(sql_exec(path, "DELETE FROM meta WHERE key = 'inputs'") ==
          SQLITE_OK);
  expect_open_error(path, COH_EJOURNAL, "'inputs' is missing");
  rm_journal(path);

  /* truncated: a journal of several pages cut in half */
  tmp_path(good, sizeof good, "big.db");
  {
    coh_journal *j = NULL;
    coh_err err;
    REQUIRE(coh_journal_create(good, "in", 2, &j, &err) == 0);
    CHECK(write_ticks(j, 0, 50, 20, &err) == 0);
    coh_journal_close(j);
  }
  bytes = slurp(good, &n);
  REQUIRE(bytes != NULL && n > 8 * 4096);
  tmp_path(path, sizeof path, "trunc.db");
  REQUIRE(write_bytes(path, bytes, n / 2) == 0);
  expect_open_error(path, COH_EJOURNAL, "truncated");
  rm_journal(path);
  /* cut at a page boundary with the header's page count rewritten to match:
   * SQLite finds the damage when the missing pages are needed. */
  {
    size_t cut = (n / 2) & ~(size_t)4095;
    uint32_t pages = (uint32_t)(cut / 4096);
    coh_err err;
    int rc;
    bytes[28] = (char)(pages >> 24);
    bytes[29] = (char)(pages >> 16);
    bytes[30] = (char)(pages >> 8);
    bytes[31] = (char)pages;
    tmp_path(path, sizeof path, "trunc2.db");
    REQUIRE(write_bytes(path, bytes, cut) == 0);
    rc = verify_path(path, &err);
    CHECK_EQ_INT(rc, COH_EJOURNAL);
    if (rc) fprintf(stderr, "  truncated+patched: %s\n", err.msg);
    CHECK(rc && strstr(err.msg, path) != NULL);
    rm_journal(path);
  }
  coh__free(bytes);
  rm_journal(good);
}

static int ck_collect(void *ud, const char *agent, const void *state,
                      size_t len) {
  char *out = ud;
  size_t n = strlen(out);
  snprintf(out + n, 256 - n, "%s=%.*s;", agent, (int)len, (const char *)state);
  return 0;
}

static void test_checkpoints(void) {
  char path[512], got[256];
  coh_journal *j = NULL;
  coh_err err;
  int64_t t, tick;

  tmp_path(path, sizeof path, "ck.db");
  REQUIRE(coh_journal_create(path, "in", 2, &j, &err) == 0);
  for (t = 0; t < 10; t++) {
    char s[32];
    CHECK(coh_journal_tick_begin(j, t, &err) == 0);
    if (t % 4 == 0) {
      snprintf(s, sizeof s, "b@%lld", (long long)t);
      CHECK(coh_journal_checkpoint_put(j, "b", s, strlen(s), &err) == 0);
      snprintf(s, sizeof s, "a@%lld", (long long)t);
      CHECK(coh_journal_checkpoint_put(j, "a", s, strlen(s), &err) == 0);
      /* one per agent and tick: a checkpoint is a link of the chain, and
       * replacing it would leave the links after it stale */
      CHECK_EQ_INT(coh_journal_checkpoint_put(j, "a", "new", 3, &err), COH_EINVAL);
      CHECK(strstr(err.msg, "already has a checkpoint") != NULL);
      CHECK(coh_journal_checkpoint_put(j, "empty", NULL, 0, &err) == 0);
      /* the orchestrator's state, at ticks 0 and 4 only */
      snprintf(s, sizeof s, "o@%lld", (long long)t);
      if (t < 8)
        CHECK(coh_journal_checkpoint_put(j, COH_JOURNAL_ORCH_CHECKPOINT, s, strlen(s), &err) == 0);
    }
    CHECK(coh_journal_tick_commit(j, 0, &err) == 0);
  }
  CHECK(coh_journal_checkpoint_tick(j, INT64_MAX, &tick, &err) == 0);
  CHECK_EQ_INT(tick, 8);
  /* the latest tick with a checkpoint of a given agent */
  CHECK(coh_journal_checkpoint_tick_of(j, COH_JOURNAL_ORCH_CHECKPOINT, INT64_MAX, &tick, &err) == 0);
  CHECK_EQ_INT(tick, 4);
  CHECK(coh_journal_checkpoint_tick_of(j, COH_JOURNAL_ORCH_CHECKPOINT, 3, &tick, &err) == 0);
  CHECK_EQ_INT(tick, 0);
  CHECK(coh_journal_checkpoint_tick_of(j, COH_JOURNAL_ORCH_CHECKPOINT, -1, &tick, &err) == 0);
  CHECK_EQ_INT(tick, -1);
  CHECK(coh_journal_checkpoint_tick_of(j, "b", INT64_MAX, &tick, &err) == 0);
  CHECK_EQ_INT(tick, 8);
  CHECK(coh_journal_checkpoint_tick_of(j, "nobody", INT64_MAX, &tick, &err) == 0);
  CHECK_EQ_INT(tick, -1);
  CHECK_EQ_INT(coh_journal_checkpoint_tick_of(j, NULL, INT64_MAX, &tick, &err), COH_EINVAL);
  /* it is on the chain like every checkpoint */
  CHECK(coh_journal_verify(j, &err) == 0);
  CHECK(coh_journal_checkpoint_tick(j, 7, &tick, &err) == 0);
  CHECK_EQ_INT(tick, 4);
  CHECK(coh_journal_checkpoint_tick(j, 4, &tick, &err) == 0);
  CHECK_EQ_INT(tick, 4);
  CHECK(coh_journal_checkpoint_tick(j, -1, &tick, &err) == 0);
  CHECK_EQ_INT(tick, -1);
  got[0] = '\0';
  CHECK(coh_journal_checkpoints(j, 4, ck_collect, got, &err) == 0);
  CHECK_STR(got, "@orchestrator=o@4;a=a@4;b=b@4;empty=;");
  got[0] = '\0';
  CHECK(coh_journal_checkpoints(j, 5, ck_collect, got, &err) == 0);
  CHECK_STR(got, "");
  coh_journal_close(j);
  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  got[0] = '\0';
  CHECK(coh_journal_checkpoints(j, 8, ck_collect, got, &err) == 0);
  CHECK_STR(got, "a=a@8;b=b@8;empty=;");
  coh_journal_close(j);
  rm_journal(path);
}

/* coh_journal_verify_from: what a resume from a checkpoint at tick `from`
 * reads is checked (the genesis, the blobs, the ticks and checkpoints from
 * `from` on, and the link from the last row before `from`), and nothing
 * before that row is read. */
/* Ticks 0..9, one event each (seq = tick + 1), with checkpoints of agent
 * "a" and of the orchestrator at ticks 4 and 8. */
static void mk_from_journal(const char *path) {
  coh_journal *j = NULL;
  coh_err err;
  int64_t t;
  rm_journal(path);
  REQUIRE(coh_journal_create(path, "in", 2, &j, &err) == 0);
  CHECK_EQ_INT(coh_journal_verified_from(j), INT64_MIN); /* it wrote every row */
  for (t = 0; t < 10; t++) {
    coh_jevent ev;
    char payload[32];
    REQUIRE(coh_journal_tick_begin(j, t, &err) == 0);
    memset(&ev, 0, sizeof ev);
    snprintf(payload, sizeof payload, "tick %lld", (long long)t);
    ev.tick = t;
    ev.kind = "message";
    ev.source = "a";
    ev.target = "b";
    ev.payload = payload;
    ev.payload_len = strlen(payload);
    REQUIRE(coh_journal_append(j, &ev, &err) == 0);
    if (t % 4 == 0 && t > 0) {
      REQUIRE(coh_journal_checkpoint_put(j, "a", payload, strlen(payload), &err) == 0);
      REQUIRE(coh_journal_checkpoint_put(j, COH_JOURNAL_ORCH_CHECKPOINT, "o", 1, &err) == 0);
    }
    REQUIRE(coh_journal_tick_commit(j, t, &err) == 0);
  }
  coh_journal_close(j);
}

static void verify_from_case(const char *path, const char *sql, int64_t from, int want_ok,
                             const char *want) {
  coh_journal *j = NULL;
  coh_err err;
  int rc;
  mk_from_journal(path);
  if (sql) REQUIRE(sql_exec(path, sql) == SQLITE_OK);
  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  rc = coh_journal_verify_from(j, from, &err);
  if (want_ok) {
    CHECK_EQ_INT(rc, COH_OK);
    if (rc) fprintf(stderr, "  case %s, from %lld: %s\n", sql ? sql : "(none)", (long long)from, err.msg);
    CHECK_EQ_INT(coh_journal_verified_from(j), from);
  } else {
    CHECK_EQ_INT(rc, COH_EJOURNAL);
    if (want) {
      CHECK(strstr(err.msg, want) != NULL);
      if (!strstr(err.msg, want)) fprintf(stderr, "  case %s: got '%s', want '%s'\n", sql, err.msg, want);
    }
    CHECK_EQ_INT(coh_journal_verified_from(j), INT64_MAX); /* nothing verified */
  }
  coh_journal_close(j);
}

static void test_verify_from(void) {
  char path[512];
  coh_journal *j = NULL;
  coh_err err;
  tmp_path(path, sizeof path, "vfrom.db");
  /* a sound journal: nothing verified when opened; a later, larger `from`
   * does not narrow what was verified */
  mk_from_journal(path);
  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  CHECK_EQ_INT(coh_journal_verified_from(j), INT64_MAX);
  CHECK(coh_journal_verify_from(j, 8, &err) == 0);
  CHECK_EQ_INT(coh_journal_verified_from(j), 8);
  CHECK(coh_journal_verify_from(j, 4, &err) == 0);
  CHECK_EQ_INT(coh_journal_verified_from(j), 4);
  CHECK(coh_journal_verify_from(j, 9, &err) == 0);
  CHECK_EQ_INT(coh_journal_verified_from(j), 4);
  CHECK(coh_journal_verify(j, &err) == 0);
  CHECK_EQ_INT(coh_journal_verified_from(j), INT64_MIN);
  coh_journal_close(j);
  /* past the last tick: only the genesis and the blobs */
  verify_from_case(path, NULL, 100, 1, NULL);
  /* a tick before `from` changed: not read from 4 on, found from 2 on */
  verify_from_case(path, "UPDATE ticks SET events_chain = zeroblob(32) WHERE tick = 2", 4, 1, NULL);
  verify_from_case(path, "UPDATE ticks SET events_chain = zeroblob(32) WHERE tick = 2", 2, 0,
                   "table ticks, tick 2 (events, seqs 3..3)");
  verify_from_case(path, "UPDATE ticks SET events_chain = zeroblob(32) WHERE tick = 2",
                   INT64_MIN, 0, "table ticks, tick 2 (events");
  /* a tick from `from` on */
  verify_from_case(path, "UPDATE ticks SET events_chain = zeroblob(32) WHERE tick = 6", 4, 0,
                   "table ticks, tick 6 (events, seqs 7..7)");
  /* the row the walk starts from: its chain, its last seq, its absence */
  verify_from_case(path, "UPDATE ticks SET chain = zeroblob(32) WHERE tick = 3", 4, 0,
                   "table ticks, tick 4 (events, seqs 5..5)");
  verify_from_case(path, "UPDATE ticks SET last_seq = 3 WHERE tick = 3", 4, 0,
                   "table ticks, tick 4: its 1 events end at seq 5, but the tick before ends at "
                   "seq 3");
  verify_from_case(path, "DELETE FROM ticks WHERE tick = 3", 4, 0,
                   "table ticks, tick 4: its 1 events end at seq 5, but the tick before ends at "
                   "seq 3");
  verify_from_case(path, "UPDATE ticks SET chain = X'00' WHERE tick = 3", 4, 0,
                   "table ticks, tick 3: a column has the wrong type");
  /* the checkpoints of tick `from` are read, those before it are not */
  verify_from_case(path, "UPDATE checkpoints SET state = 'x' WHERE tick = 4 AND agent = 'a'", 4, 0,
                   "table checkpoints, tick 4, agent a");
  verify_from_case(path, "UPDATE checkpoints SET state = 'x' WHERE tick = 4 AND agent = 'a'", 5, 1,
                   NULL);
  /* a checkpoint after the last tick row belongs to no committed tick */
  verify_from_case(path, "DELETE FROM ticks WHERE tick >= 8", 8, 0,
                   "table checkpoints, tick 8, agent a: it belongs to no committed tick");
  /* the genesis is always checked */
  verify_from_case(path, "UPDATE meta SET value = 'other' WHERE key = 'inputs'", 8, 0,
                   "table meta, key 'inputs'");
  rm_journal(path);
}

static void test_truncate_after(void) {
  char path[512], at4[65], full[65], hex[65];
  coh_journal *j = NULL;
  coh_err err;
  int64_t tick, nev;

  tmp_path(path, sizeof path, "trunc_after.db");
  REQUIRE(coh_journal_create(path, "in", 2, &j, &err) == 0);
  CHECK(write_ticks(j, 0, 5, 3, &err) == 0);
  coh_journal_digest(j, at4);
  CHECK(coh_journal_tick_begin(j, 5, &err) == 0);
  CHECK(coh_journal_checkpoint_put(j, "a", "s5", 2, &err) == 0);
  CHECK(coh_journal_tick_commit(j, 0, &err) == 0);
  CHECK(write_ticks(j, 6, 4, 3, &err) == 0);
  coh_journal_digest(j, full);
  coh_journal_close(j);
  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  CHECK(coh_journal_truncate_after(j, 5, &err) == 0);
  CHECK(coh_journal_checkpoint_tick(j, INT64_MAX, &tick, &err) == 0);
  CHECK_EQ_INT(tick, 5);
  CHECK(coh_journal_truncate_after(j, 4, &err) == 0);
  CHECK(coh_journal_last_tick(j, &tick, &nev, &err) == 0);
  CHECK_EQ_INT(tick, 4);
  CHECK_EQ_INT(nev, 15);
  coh_journal_digest(j, hex);
  CHECK_STR(hex, at4);
  CHECK(coh_journal_checkpoint_tick(j, INT64_MAX, &tick, &err) == 0);
  CHECK_EQ_INT(tick, -1);
  CHECK(coh_journal_verify(j, &err) == 0);
  /* re-running the same ticks reproduces the same digest; the checkpoint
   * is on the chain, so without it the digest differs */
  CHECK(coh_journal_tick_begin(j, 5, &err) == 0);
  CHECK(coh_journal_tick_commit(j, 0, &err) == 0);
  CHECK(write_ticks(j, 6, 4, 3, &err) == 0);
  coh_journal_digest(j, hex);
  CHECK(strcmp(hex, full) != 0);
  CHECK(coh_journal_truncate_after(j, 4, &err) == 0);
  CHECK(coh_journal_tick_begin(j, 5, &err) == 0);
  CHECK(coh_journal_checkpoint_put(j, "a", "s5", 2, &err) == 0);
  CHECK(coh_journal_tick_commit(j, 0, &err) == 0);
  CHECK(write_ticks(j, 6, 4, 3, &err) == 0);
  coh_journal_digest(j, hex);
  CHECK_STR(hex, full);
  CHECK(coh_journal_verify(j, &err) == 0);
  /* truncate to nothing */
  CHECK(coh_journal_truncate_after(j, -1, &err) == 0);
  CHECK(coh_journal_last_tick(j, &tick, &nev, &err) == 0);
  CHECK_EQ_INT(tick, -1);
  CHECK_EQ_INT(nev, 0);
  CHECK(coh_journal_verify(j, &err) == 0);
  coh_journal_close(j);
  rm_journal(path);
}

typedef struct tick_walk {
  int n;
  int64_t tick[8], last_seq[8], wall_us[8];
  int stop_at;
} tick_walk;

static int on_tick_row(void *ud, int64_t tick, int64_t last_seq,
                       int64_t wall_us) {
  tick_walk *w = ud;
  if (w->n < 8) {
    w->tick[w->n] = tick;
    w->last_seq[w->n] = last_seq;
    w->wall_us[w->n] = wall_us;
  }
  w->n++;
  return w->n == w->stop_at ? 7 : 0;
}

/* coh_journal_ticks: every committed tick in order, with its last seq and
 * wall time; a non-zero return stops the walk. */
static void test_ticks_walk(void) {
  char path[512];
  coh_journal *j = NULL;
  coh_err err;
  tick_walk w;
  int i;
  tmp_path(path, sizeof path, "ticks_walk.db");
  REQUIRE(coh_journal_create(path, "in", 2, &j, &err) == 0);
  memset(&w, 0, sizeof w);
  CHECK(coh_journal_ticks(j, on_tick_row, &w, &err) == 0);
  CHECK_EQ_INT(w.n, 0);
  CHECK(write_ticks(j, 0, 5, 3, &err) == 0);
  CHECK(coh_journal_ticks(j, on_tick_row, &w, &err) == 0);
  CHECK_EQ_INT(w.n, 5);
  for (i = 0; i < 5; i++) {
    CHECK_EQ_INT(w.tick[i], i);
    CHECK_EQ_INT(w.last_seq[i], 3 * (i + 1));
    CHECK_EQ_INT(w.wall_us[i], i); /* write_ticks commits with wall_us = t */
  }
  memset(&w, 0, sizeof w);
  w.stop_at = 2;
  CHECK_EQ_INT(coh_journal_ticks(j, on_tick_row, &w, &err), 7);
  CHECK_EQ_INT(w.n, 2);
  coh_journal_close(j);
  rm_journal(path);
}

static void test_events_filters(void) {
  char path[512];
  coh_journal *j = NULL;
  coh_err err;
  collect c;
  size_t i;

  tmp_path(path, sizeof path, "filters.db");
  REQUIRE(coh_journal_create(path, "in", 2, &j, &err) == 0);
  REQUIRE(write_events(j, base_events, N_BASE, &err) == 0);
  memset(&c, 0, sizeof c);
  CHECK(coh_journal_events(j, 1, 2, NULL, collect_fn, &c, &err) == 0);
  CHECK_EQ_INT(c.n, 5);
  CHECK_EQ_INT(c.ev[0].seq, 3);
  CHECK_EQ_INT(c.ev[4].seq, 7);
  collect_free(&c);
  CHECK(coh_journal_events(j, 3, INT64_MAX, NULL, collect_fn, &c, &err) == 0);
  CHECK_EQ_INT(c.n, 2);
  collect_free(&c);
  CHECK(coh_journal_events(j, 5, 9, NULL, collect_fn, &c, &err) == 0);
  CHECK_EQ_INT(c.n, 0);
  /* agent: as source or as target */
  CHECK(coh_journal_events(j, INT64_MIN, INT64_MAX, "bob", collect_fn, &c,
                           &err) == 0);
  CHECK_EQ_INT(c.n, 4); /* seqs 2, 5, 6, 7 */
  {
    static const int64_t want[] = {2, 5, 6, 7};
    for (i = 0; i < c.n && i < 4; i++) CHECK_EQ_INT(c.ev[i].seq, want[i]);
  }
  collect_free(&c);
  CHECK(coh_journal_events(j, 0, 1, "alice", collect_fn, &c, &err) == 0);
  CHECK_EQ_INT(c.n, 4); /* seqs 1, 3, 4, 5 */
  collect_free(&c);
  CHECK(coh_journal_events(j, INT64_MIN, INT64_MAX, "nobody", collect_fn, &c,
                           &err) == 0);
  CHECK_EQ_INT(c.n, 0);
  /* early stop returns the callback's value; the walk can be restarted */
  c.stop_at = 2;
  CHECK_EQ_INT(coh_journal_events(j, INT64_MIN, INT64_MAX, NULL, collect_fn,
                                  &c, &err), 7);
  CHECK_EQ_INT(c.n, 2);
  collect_free(&c);
  c.stop_at = 0;
  CHECK(coh_journal_events(j, INT64_MIN, INT64_MAX, NULL, collect_fn, &c,
                           &err) == 0);
  CHECK_EQ_INT(c.n, N_BASE);
  collect_free(&c);
  coh_journal_close(j);
  rm_journal(path);
}

/* The fuzz harness over valid, bit-flipped and truncated journals. */
static void test_fuzz_seeds(void) {
  char path[512];
  char *good;
  size_t n, i;
  uint32_t x = 777;
  int opened = 0;

  tmp_path(path, sizeof path, "fuzzseed.db");
  make_sample(path);
  good = slurp(path, &n);
  REQUIRE(good != NULL);
  CHECK(coh__fuzz_journal_one((const uint8_t *)good, n) == 1);
  coh__fuzz_journal_one((const uint8_t *)good, 0);
  coh__fuzz_journal_one((const uint8_t *)good, 100);
  coh__fuzz_journal_one((const uint8_t *)good, n / 3);
  for (i = 0; i < 60; i++) {
    char *m = coh__malloc(n);
    size_t k, flips = 1 + i % 4;
    REQUIRE(m != NULL);
    memcpy(m, good, n);
    for (k = 0; k < flips; k++) {
      x = x * 1103515245u + 12345u;
      /* keep most flips past the header so that SQLite parses the file */
      m[100 + (x >> 8) % (n - 100)] ^= (char)(1u << (x % 8));
    }
    opened += coh__fuzz_journal_one((const uint8_t *)m, n);
    coh__free(m);
  }
  fprintf(stderr, "  %d of 60 bit-flipped journals still opened\n", opened);
  coh__free(good);
  rm_journal(path);
}

/* Append rate, printed only (timings are never asserted). */
static void test_append_rate(void) {
  char path[512];
  coh_journal *j = NULL;
  coh_err err;
  struct timespec a, b;
  double s;
  const int ticks = 50, per_tick = 1000;

  tmp_path(path, sizeof path, "rate.db");
  REQUIRE(coh_journal_create(path, "in", 2, &j, &err) == 0);
  clock_gettime(CLOCK_MONOTONIC, &a);
  CHECK(write_ticks(j, 0, ticks, per_tick, &err) == 0);
  clock_gettime(CLOCK_MONOTONIC, &b);
  s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  fprintf(stderr, "  append: %d events in ticks of %d: %.0f events/s\n",
          ticks * per_tick, per_tick, ticks * per_tick / s);
  coh_journal_close(j);
  rm_journal(path);
}

/* A sample journal for tests/cli_inspect.sh: two agents, a scenario
 * message, emits, an LLM request/result, a binary payload, a long one,
 * checkpoints. */
static int write_sample(const char *path) {
  static const tev evs[] = {
      {0, "message", "scenario", "alice", "Debate: is C11 enough?", 0, 5},
      {0, "message", "scenario", "bob", "Debate: is C11 enough?", 0, 6},
      {1, "emit", "alice", "", "alice: yes, with care\nsecond line", 0, 10},
      {1, "llm_request", "alice", "tiny", "{\"prompt\":\"argue\",\"max\":8}", 0, 11},
      {1, "message", "alice", "bob", "your turn", 0, 12},
      {2, "llm_result", "tiny", "alice", "\x00\x01\x02\xff binary", 11, 20},
      {2, "emit", "bob", "", "bob: no — we need \"atomics\"", 0, 21},
      {3, "log", "bob", "", "", 0, 30},
      {3, "exit", "alice", "", "0", 0, 31},
  };
  coh_journal *j = NULL;
  coh_err err;
  char hex[65], long_payload[600];
  int rc, i;
  rm_journal(path);
  rc = coh_journal_create(path, "{\"scenario\":\"sample\"}", 21, &j, &err);
  if (rc == 0) rc = write_events(j, evs, sizeof evs / sizeof evs[0], &err);
  if (rc == 0) rc = coh_journal_tick_begin(j, 4, &err);
  for (i = 0; i < (int)sizeof long_payload; i++)
    long_payload[i] = (char)('a' + i % 26);
  if (rc == 0) {
    coh_jevent ev;
    memset(&ev, 0, sizeof ev);
    ev.tick = 4;
    ev.kind = "emit";
    ev.source = "bob";
    ev.payload = long_payload;
    ev.payload_len = sizeof long_payload;
    rc = coh_journal_append(j, &ev, &err);
  }
  if (rc == 0) rc = coh_journal_checkpoint_put(j, "alice", "A", 1, &err);
  if (rc == 0) rc = coh_journal_tick_commit(j, 40, &err);
  if (rc == 0) {
    coh_journal_digest(j, hex);
    printf("%s\n", hex);
  } else {
    fprintf(stderr, "write-sample: %s\n", err.msg);
  }
  coh_journal_close(j);
  return rc ? 1 : 0;
}

/* create_meta: the extra meta arrives with the journal, atomically; no
 * temporary file is left; reserved keys and existing paths are refused. */
static void test_create_meta(void) {
  char path[600], tmpname[700];
  coh_journal *j = NULL;
  coh_err err;
  const char *keys[2] = {"scenario_text", "status"};
  const void *vals[2] = {"name: x\n", "running"};
  size_t lens[2] = {8, 7};
  const char *bad_keys[1] = {"inputs"};
  char *v = NULL;
  size_t vl = 0;
  tmp_path(path, sizeof path, "meta.db");
  REQUIRE(coh_journal_create_meta(path, "in", 2, keys, vals, lens, 2, &j, &err) == COH_OK);
  REQUIRE(coh_journal_meta_get(j, "scenario_text", &v, &vl, &err) == COH_OK);
  CHECK(vl == 8 && !memcmp(v, "name: x\n", 8));
  coh_free(v);
  coh_journal_close(j);
  snprintf(tmpname, sizeof tmpname, "%s.creating", path);
  CHECK(access(tmpname, F_OK) != 0);
  CHECK_EQ_INT(coh_journal_create_meta(path, "in", 2, keys, vals, lens, 2, &j, &err), COH_EIO);
  CHECK(strstr(err.msg, "already exists") != NULL);
  unlink(path);
  CHECK_EQ_INT(coh_journal_create_meta(path, "in", 2, bad_keys, vals, lens, 1, &j, &err),
               COH_EINVAL);
  CHECK(access(path, F_OK) != 0);
  CHECK(access(tmpname, F_OK) != 0);
}

/* Blobs: content-addressed, stored once, covered by the genesis, checked by
 * verify and on every read. */
static void test_blobs(void) {
  char path[512], path2[512], d1[65], d2[65];
  coh_journal *j = NULL;
  coh_journal_init in;
  coh_jblob blobs[3] = {{"module bytes", 12}, {"scenario", 8}, {"module bytes", 12}};
  const char *keys[1] = {"genesis"};
  const void *vals[1] = {"x"};
  size_t lens[1] = {1};
  uint8_t key[32], *bytes = NULL;
  size_t len = 0;
  coh__sha256 sh;
  coh_err err;

  memset(&in, 0, sizeof in);
  in.inputs = "{}";
  in.inputs_len = 2;
  in.blobs = blobs;
  in.n_blobs = 3;
  tmp_path(path, sizeof path, "blobs.db");
  REQUIRE(coh_journal_create_init(path, &in, &j, &err) == 0);
  coh__sha256_init(&sh);
  coh__sha256_update(&sh, "scenario", 8);
  coh__sha256_final(&sh, key);
  CHECK(coh_journal_blob_get(j, key, &bytes, &len, &err) == 0);
  CHECK(len == 8 && bytes && memcmp(bytes, "scenario", 8) == 0);
  coh_free(bytes);
  key[0] ^= 1;
  CHECK_EQ_INT(coh_journal_blob_get(j, key, &bytes, &len, &err), COH_ENOENT);
  CHECK(bytes == NULL);
  CHECK(coh_journal_verify(j, &err) == 0);
  CHECK(write_ticks(j, 0, 2, 2, &err) == 0);
  coh_journal_digest(j, d1);
  coh_journal_close(j);
  j = NULL;
  /* equal blobs are stored once */
  {
    sqlite3 *db;
    sqlite3_stmt *st;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM blobs", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  /* the genesis covers the blobs: another blob set, another digest */
  in.n_blobs = 1;
  tmp_path(path2, sizeof path2, "blobs2.db");
  REQUIRE(coh_journal_create_init(path2, &in, &j, &err) == 0);
  CHECK(write_ticks(j, 0, 2, 2, &err) == 0);
  coh_journal_digest(j, d2);
  CHECK(strcmp(d1, d2) != 0);
  coh_journal_close(j);
  j = NULL;
  rm_journal(path2);
  /* reserved meta key */
  in.meta_keys = keys;
  in.meta_values = vals;
  in.meta_lens = lens;
  in.n_meta = 1;
  CHECK_EQ_INT(coh_journal_create_init(path2, &in, &j, &err), COH_EINVAL);
  CHECK(access(path2, F_OK) != 0);
  /* changed bytes: verify names the blob, and a read refuses it */
  REQUIRE(sql_exec(path, "UPDATE blobs SET bytes = CAST('scenarix' AS BLOB) "
                         "WHERE length(bytes) = 8") == SQLITE_OK);
  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  CHECK_EQ_INT(coh_journal_verify(j, &err), COH_EJOURNAL);
  CHECK(strstr(err.msg, "verify failed at table blobs, sha256 ") != NULL);
  key[0] ^= 1;
  CHECK_EQ_INT(coh_journal_blob_get(j, key, &bytes, &len, &err), COH_EJOURNAL);
  coh_journal_close(j);
  j = NULL;
  /* re-keyed to match the new bytes: the genesis no longer matches */
  REQUIRE(sql_exec(path, "UPDATE blobs SET sha256 = zeroblob(32) WHERE length(bytes) = 8")
          == SQLITE_OK);
  REQUIRE(coh_journal_open(path, &j, &err) == 0);
  CHECK_EQ_INT(coh_journal_verify(j, &err), COH_EJOURNAL);
  CHECK(strstr(err.msg, "table meta, key 'inputs' (the genesis record)") != NULL);
  coh_journal_close(j);
  rm_journal(path);
}

int main(int argc, char **argv) {
  const char *base;
  int rc;
  if (argc == 3 && !strcmp(argv[1], "--write-sample"))
    return write_sample(argv[2]);
  TEST_MAIN_BEGIN(argc, argv);
  base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/coh_journal_XXXXXX",
           base && *base ? base : "/tmp");
  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_roundtrip);
  RUN(test_state_errors);
  RUN(test_digest_columns);
  RUN(test_killed_before_commit);
  RUN(test_killed_midway);
  RUN(test_tamper);
  RUN(test_malformed);
  RUN(test_checkpoints);
  RUN(test_verify_from);
  RUN(test_truncate_after);
  RUN(test_ticks_walk);
  RUN(test_events_filters);
  RUN(test_fuzz_seeds);
  RUN(test_append_rate);
  RUN(test_create_meta);
  RUN(test_blobs);
  rc = TEST_MAIN_END();
  rmdir(tmpdir);
  return rc;
}
