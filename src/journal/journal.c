/*
 * journal.c — the run journal on SQLite.
 *
 * Layout (schema version COH__JOURNAL_SCHEMA):
 *   meta(key TEXT PRIMARY KEY, value BLOB)       format, schema_version, inputs, ...
 *   ticks(tick INTEGER PRIMARY KEY, last_seq, n_events, events BLOB,
 *         walls BLOB, events_chain, chain, wall_us)
 *                                                 one row per committed tick,
 *                                                 its events included
 *   checkpoints(tick, n, agent, state, chain, PRIMARY KEY(tick, n))
 *   blobs(sha256 PRIMARY KEY, bytes)              content-addressed inputs
 *
 * Crash safety.  The file is in WAL mode with synchronous=NORMAL, and every
 * tick is one transaction (BEGIN IMMEDIATE ... COMMIT), or a few whole ticks
 * are (group_begin ... group_commit, as the writer thread does).  In WAL mode a
 * transaction becomes visible only when its commit frame is in the WAL, and
 * recovery ignores frames after the last valid commit frame (they are
 * checksummed), so a process killed at any point — kill -9 included — leaves
 * the journal at the end of its last committed tick: the OS still holds every
 * write() the process made.  synchronous=NORMAL skips the fsync at each
 * commit (it syncs at checkpoints), so a power loss or OS crash may lose the
 * last few committed ticks, but it never corrupts the file or leaves half a
 * tick; resume then continues from an earlier checkpoint.  That trade buys
 * the append rate (one fsync per tick would cap a run at disk latency).
 *
 * Every SQLite error is translated here, once, into COH_EJOURNAL (COH_ENOMEM
 * for SQLITE_NOMEM) with SQLite's message and the journal's path.
 *
 * The journal trusts nothing it reads back: rows are type-checked when they
 * are read, open() validates the file's structure (not its contents — that
 * is verify()'s job, which recomputes the hash chain), and the connection
 * runs with SQLite's defensive flags because a journal may come from
 * elsewhere.  SQLite allocates through its own allocator, not coh__malloc:
 * redirecting it would need process-wide sqlite3_config() before any other
 * SQLite use in the process, which a library cannot demand.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <zstd.h>
#include <zstd_errors.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal/journal_int.h"
#include "util/util_int.h"

/* ---- the chain -------------------------------------------------------- */

static void put_le64(uint8_t b[8], uint64_t v) {
  int i;
  for (i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static void sha_i64(coh__sha256 *s, int64_t v) {
  uint8_t b[8];
  put_le64(b, (uint64_t)v);
  coh__sha256_update(s, b, 8);
}

static void sha_str(coh__sha256 *s, const char *str) {
  coh__sha256_update(s, str, strlen(str) + 1); /* with its NUL */
}

/* A length-prefixed byte string. */
static void sha_bytes(coh__sha256 *s, const void *p, size_t len) {
  sha_i64(s, (int64_t)len);
  if (len > 0) coh__sha256_update(s, p, len);
}

/* Every record after the genesis starts with the previous link and its
 * one-letter kind. */
static void chain_begin(coh__sha256 *s, const uint8_t prev[32], const char *kind) {
  coh__sha256_init(s);
  coh__sha256_update(s, prev, 32);
  coh__sha256_update(s, kind, 1);
}

void coh__journal_chain0(const void *inputs, size_t len,
                         const uint8_t (*blob_keys)[32], size_t n_blobs,
                         uint8_t out[32]) {
  coh__sha256 s;
  size_t i;
  coh__sha256_init(&s);
  sha_str(&s, COH__JOURNAL_TAG);
  coh__sha256_update(&s, "G", 1);
  sha_bytes(&s, inputs, len);
  sha_i64(&s, (int64_t)n_blobs);
  for (i = 0; i < n_blobs; i++) coh__sha256_update(&s, blob_keys[i], 32);
  coh__sha256_final(&s, out);
}

void coh__journal_chain_events(const uint8_t prev[32], int64_t tick,
                               int64_t first_seq, int64_t n_events,
                               const void *blob, size_t len, uint8_t out[32]) {
  coh__sha256 s;
  chain_begin(&s, prev, "E");
  sha_i64(&s, tick);
  sha_i64(&s, first_seq);
  sha_i64(&s, n_events);
  sha_bytes(&s, blob, len);
  coh__sha256_final(&s, out);
}

/* ---- the events of a tick: one blob ------------------------------------ */

/* Appends v as an unsigned LEB128 varint; returns the bytes written (<= 10). */
static size_t put_uvarint(uint8_t *b, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  b[n++] = (uint8_t)v;
  return n;
}

/* Reads an unsigned LEB128 varint of at most 10 bytes from p[0..end);
 * returns the bytes read, 0 if it runs past end or is over-long. */
static size_t get_uvarint(const uint8_t *p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  size_t i;
  for (i = 0; i < 10 && p + i < end; i++) {
    uint8_t c = p[i];
    if (i == 9 && c > 1) return 0; /* more than 64 bits */
    x |= (uint64_t)(c & 0x7f) << (7 * i);
    if (!(c & 0x80)) {
      *v = x;
      return i + 1;
    }
  }
  return 0;
}

int coh__journal_event_decode(const uint8_t **pp, const uint8_t *end,
                              const char **kind, const char **source,
                              const char **target, const void **payload,
                              size_t *payload_len) {
  const uint8_t *p = *pp, *z;
  const char **str[3];
  uint64_t n;
  size_t k, i;
  str[0] = kind;
  str[1] = source;
  str[2] = target;
  for (i = 0; i < 3; i++) {
    z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
    if (z == NULL) return -1;
    *str[i] = (const char *)p;
    p = z + 1;
  }
  k = get_uvarint(p, end, &n);
  if (k == 0) return -1;
  p += k;
  if (n > (uint64_t)(end - p)) return -1;
  *payload = p;
  *payload_len = (size_t)n;
  *pp = p + n;
  return 0;
}

void coh__journal_chain_checkpoint(const uint8_t prev[32], int64_t tick,
                                   int64_t n, const char *agent,
                                   const void *state, size_t len,
                                   uint8_t out[32]) {
  coh__sha256 s;
  chain_begin(&s, prev, "C");
  sha_i64(&s, tick);
  sha_i64(&s, n);
  sha_str(&s, agent);
  sha_bytes(&s, state, len);
  coh__sha256_final(&s, out);
}

void coh__journal_chain_tick(const uint8_t prev[32], int64_t tick,
                             int64_t last_seq, int64_t n_checkpoints,
                             uint8_t out[32]) {
  coh__sha256 s;
  chain_begin(&s, prev, "T");
  sha_i64(&s, tick);
  sha_i64(&s, last_seq);
  sha_i64(&s, n_checkpoints);
  coh__sha256_final(&s, out);
}

/* ---- the handle -------------------------------------------------------- */

enum {
  ST_BEGIN,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_INS_TICK,
  ST_INS_CKPT,
  ST_META_PUT,
  ST_META_GET,
  ST_EVENTS,
  ST_VERIFY_TICKS,
  ST_VERIFY_BASE,
  ST_CKPT_TICK,
  ST_CKPT_TICK_OF,
  ST_CKPTS,
  ST_LAST_EVENT,
  ST_LAST_TICK,
  ST_DEL_TICKS,
  ST_DEL_CKPTS,
  ST_TICKS,
  ST_INS_BLOB,
  ST_BLOB_GET,
  ST_BLOB_KEYS,
  ST_VERIFY_CKPTS,
  ST_VERIFY_BLOBS,
  ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INS_TICK] = "INSERT INTO ticks(tick, last_seq, n_events, events, "
                    "walls, events_chain, chain, wall_us) "
                    "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_INS_CKPT] = "INSERT INTO checkpoints(tick, n, agent, state, chain) "
                    "VALUES(?, ?, ?, ?, ?)",
    [ST_META_PUT] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?",
    /* a tick's events are one row of ticks (schema comment below) */
    [ST_EVENTS] = "SELECT tick, last_seq, n_events, events, walls, "
                  "events_chain FROM ticks WHERE tick BETWEEN ?1 AND ?2 "
                  "ORDER BY tick",
    [ST_VERIFY_TICKS] = "SELECT tick, last_seq, n_events, events, walls, "
                        "events_chain, chain FROM ticks WHERE tick >= ?1 "
                        "ORDER BY tick",
    /* where a walk from tick ?1 starts: the stored chain of the row before */
    [ST_VERIFY_BASE] = "SELECT tick, last_seq, chain FROM ticks WHERE tick < ?1 "
                       "ORDER BY tick DESC LIMIT 1",
    [ST_CKPT_TICK] = "SELECT MAX(tick) FROM checkpoints WHERE tick <= ?",
    [ST_CKPT_TICK_OF] = "SELECT MAX(tick) FROM checkpoints WHERE tick <= ?1 "
                        "AND agent = ?2",
    [ST_CKPTS] = "SELECT agent, state FROM checkpoints WHERE tick = ? "
                 "ORDER BY agent",
    [ST_LAST_EVENT] = "SELECT tick, last_seq, chain, events_chain FROM ticks "
                      "ORDER BY tick DESC LIMIT 1",
    [ST_LAST_TICK] = "SELECT tick, last_seq FROM ticks ORDER BY tick DESC "
                     "LIMIT 1",
    [ST_DEL_TICKS] = "DELETE FROM ticks WHERE tick > ?",
    [ST_DEL_CKPTS] = "DELETE FROM checkpoints WHERE tick > ?",
    [ST_TICKS] = "SELECT tick, last_seq, wall_us FROM ticks ORDER BY tick",
    [ST_INS_BLOB] = "INSERT OR IGNORE INTO blobs(sha256, bytes) VALUES(?, ?)",
    [ST_BLOB_GET] = "SELECT bytes FROM blobs WHERE sha256 = ?",
    /* BLOB order is memcmp order: the genesis hashes the keys this way. */
    [ST_BLOB_KEYS] = "SELECT sha256 FROM blobs ORDER BY sha256",
    [ST_VERIFY_CKPTS] = "SELECT tick, n, agent, state, chain FROM checkpoints "
                        "WHERE tick >= ?1 ORDER BY tick, n",
    [ST_VERIFY_BLOBS] = "SELECT sha256, bytes FROM blobs ORDER BY sha256",
};

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);"
    /* One row per committed tick, its events included: `events` is the
     * tick's events encoded back to back (journal_int.h,
     * coh__journal_event_decode), n_events of them, seqs last_seq -
     * n_events + 1 .. last_seq; `walls` their wall-clock times (uvarints of
     * zigzag deltas; outside the chain); `events_chain` the chain after the
     * tick's events record, `chain` after its tick record.  One row (and no
     * index entry) per tick instead of one per event: with 1,000 agents a
     * routing tick is 2,000 events, and a row and a b-tree entry per event
     * were most of the journal's CPU (bench/RESULTS.md, "(a3)").  There is
     * no index by agent: a per-agent read decodes the ticks in its range
     * and filters, which is sequential and rare; appends are the hot path. */
    "CREATE TABLE ticks(tick INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, "
    "  n_events INTEGER NOT NULL, events BLOB NOT NULL, walls BLOB NOT NULL, "
    "  events_chain BLOB NOT NULL, chain BLOB NOT NULL, "
    "  wall_us INTEGER NOT NULL);"
    "CREATE TABLE checkpoints(tick INTEGER NOT NULL, n INTEGER NOT NULL, "
    "  agent TEXT NOT NULL, state BLOB NOT NULL, chain BLOB NOT NULL, "
    "  PRIMARY KEY(tick, n), UNIQUE(tick, agent));"
    "CREATE INDEX checkpoints_agent ON checkpoints(agent, tick);"
    /* Content-addressed inputs (scenario text, agent modules), written once
     * with the journal and covered by the genesis. */
    "CREATE TABLE blobs(sha256 BLOB PRIMARY KEY NOT NULL, "
    "  bytes BLOB NOT NULL);";

static const char *const tables[] = {"meta", "ticks", "checkpoints", "blobs"};

/* meta keys the journal owns: what the file is and where the chain starts. */
static int reserved_key(const char *key) {
  return !strcmp(key, "format") || !strcmp(key, "schema_version") ||
         !strcmp(key, "inputs") || !strcmp(key, "genesis");
}

struct coh_journal {
  sqlite3 *db;
  char *path;
  sqlite3_stmt *st[ST_COUNT];
  uint8_t chain0[32];
  /* committed state */
  uint8_t chain[32];
  int64_t seq;
  int64_t last_tick;
  /* the open tick, if any */
  int in_tick;
  int64_t tick;
  uint8_t pchain[32];
  int64_t pseq;
  int64_t pckpt; /* checkpoints stored in the open tick (events come first) */
  int64_t pn;    /* events appended to the open tick */
  uint8_t echain[32]; /* the last committed tick's events record */
  int64_t pwall; /* wall_us of the open tick's last event (delta base) */
  uint8_t *eb, *wb; /* the open tick's events blob and walls blob */
  size_t eb_len, eb_cap, wb_len, wb_cap;
  /* zstd: the events blob as stored (zb) and as read back (rb) */
  ZSTD_CCtx *zc;
  ZSTD_DCtx *zd;
  uint8_t *zb, *rb;
  size_t zb_cap, rb_cap;
  int walking; /* an events()/checkpoints()/verify() walk is under way */
  int64_t verified_from; /* coh_journal_verified_from */
  /* an open group (group_begin): the committed state when it began */
  int in_group;
  uint8_t gchain[32];
  int64_t gseq;
  int64_t glast_tick;
};

/* An empty blob must still bind as a blob, not as NULL. */
static const char empty_blob[1] = {0};

/* The boundary: a SQLite result code (and the connection's message) becomes
 * a cohort error naming the journal and what was being done. */
static int sqlfail(coh_journal *j, coh_err *err, int rc, const char *what) {
  const char *msg = j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc);
  int prim = rc & 0xff;
  if (prim == SQLITE_NOMEM)
    return coh__err(err, COH_ENOMEM, "journal %s: %s: %s", j->path, what, msg);
  if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
    return coh__err(err, COH_EJOURNAL, "journal %s is damaged (%s): %s",
                    j->path, what, msg);
  return coh__err(err, COH_EJOURNAL, "journal %s: %s: %s", j->path, what, msg);
}

/* Steps a statement that returns no rows, then resets it. */
static int exec_st(coh_journal *j, int id, coh_err *err, const char *what) {
  sqlite3_stmt *st = j->st[id];
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return sqlfail(j, err, rc, what);
  return COH_OK;
}

static int exec_sql(coh_journal *j, const char *sql, coh_err *err,
                    const char *what) {
  int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK) return sqlfail(j, err, rc, what);
  return COH_OK;
}

static void close_db(coh_journal *j) {
  int i;
  for (i = 0; i < ST_COUNT; i++) {
    sqlite3_finalize(j->st[i]);
    j->st[i] = NULL;
  }
  if (j->db) sqlite3_close_v2(j->db);
  j->db = NULL;
}

void coh_journal_close(coh_journal *j) {
  if (j == NULL) return;
  if (j->in_tick || j->in_group) coh_journal_tick_rollback(j);
  close_db(j);
  coh__free(j->eb);
  coh__free(j->wb);
  coh__free(j->zb);
  coh__free(j->rb);
  ZSTD_freeCCtx(j->zc);
  ZSTD_freeDCtx(j->zd);
  coh__free(j->path);
  coh__free(j);
}

static int new_handle(const char *path, coh_journal **out, coh_err *err) {
  coh_journal *j = coh__calloc(1, sizeof *j);
  if (j == NULL) return coh__err(err, COH_ENOMEM, "journal %s: out of memory", path);
  j->path = coh__strdup(path);
  if (j->path == NULL) {
    coh__free(j);
    return coh__err(err, COH_ENOMEM, "journal %s: out of memory", path);
  }
  j->last_tick = -1;
  j->verified_from = INT64_MAX; /* nothing yet: coh_journal_verify_from */
  *out = j;
  return COH_OK;
}

static int open_db(coh_journal *j, coh_err *err) {
  int rc = sqlite3_open_v2(j->path, &j->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) return sqlfail(j, err, rc, "cannot open");
  sqlite3_extended_result_codes(j->db, 1);
  /* A journal may come from elsewhere: no schema-embedded SQL functions, no
   * writable_schema tricks. */
  sqlite3_db_config(j->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_db_config(j->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
  /* A reader (cohort inspect) may meet a writer's checkpoint. */
  sqlite3_busy_timeout(j->db, 5000);
  return COH_OK;
}

/* journal_mode=WAL, checked (a file system without shared memory, say,
 * keeps another mode). */
static int set_wal_mode(coh_journal *j, coh_err *err) {
  sqlite3_stmt *st = NULL;
  const unsigned char *mode;
  int rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc != SQLITE_OK) return sqlfail(j, err, rc, "setting WAL mode");
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    rc = sqlfail(j, err, rc, "setting WAL mode");
    sqlite3_finalize(st);
    return rc;
  }
  mode = sqlite3_column_text(st, 0);
  if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
    rc = coh__err(err, COH_EJOURNAL,
                  "journal %s: cannot use WAL mode (journal mode stays '%s')",
                  j->path, mode ? (const char *)mode : "?");
    sqlite3_finalize(st);
    return rc;
  }
  sqlite3_finalize(st);
  return COH_OK;
}

/* WAL + synchronous=NORMAL: see the comment at the top of the file. */
static int set_wal(coh_journal *j, coh_err *err) {
  int rc = set_wal_mode(j, err);
  if (rc) return rc;
  return exec_sql(j, "PRAGMA synchronous=NORMAL", err, "setting synchronous");
}

static int prepare_all(coh_journal *j, coh_err *err) {
  int i, rc;
  for (i = 0; i < ST_COUNT; i++) {
    rc = sqlite3_prepare_v3(j->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                            &j->st[i], NULL);
    if (rc != SQLITE_OK) {
      if ((rc & 0xff) == SQLITE_NOMEM) return sqlfail(j, err, rc, "preparing");
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: tables do not match cohort journal schema "
                      "version %d: %s",
                      j->path, COH__JOURNAL_SCHEMA, sqlite3_errmsg(j->db));
    }
  }
  return COH_OK;
}

/* Loads the committed state from the last ticks row (nothing is
 * recomputed; verify() does that): its tick, last seq and chain. */
static int load_state(coh_journal *j, coh_err *err) {
  sqlite3_stmt *st = j->st[ST_LAST_EVENT];
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const void *c = sqlite3_column_blob(st, 2);
    j->last_tick = sqlite3_column_int64(st, 0);
    j->seq = sqlite3_column_int64(st, 1);
    if (sqlite3_column_type(st, 2) != SQLITE_BLOB ||
        sqlite3_column_bytes(st, 2) != 32 || c == NULL) {
      sqlite3_reset(st);
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: table ticks, tick %lld: malformed chain "
                      "column (not a 32-byte blob)",
                      j->path, (long long)j->last_tick);
    }
    memcpy(j->chain, c, 32);
    c = sqlite3_column_blob(st, 3);
    if (sqlite3_column_bytes(st, 3) == 32 && c != NULL)
      memcpy(j->echain, c, 32);
    else
      memset(j->echain, 0, 32);
  } else if (rc == SQLITE_DONE) {
    j->seq = 0;
    j->last_tick = -1;
    memcpy(j->chain, j->chain0, 32);
    memset(j->echain, 0, 32);
  } else {
    sqlite3_reset(st);
    return sqlfail(j, err, rc, "reading the last tick");
  }
  sqlite3_reset(st);
  return COH_OK;
}

/* Computes the genesis from meta "inputs" and the blobs' keys. */
static int load_genesis(coh_journal *j, coh_err *err) {
  sqlite3_stmt *st = j->st[ST_BLOB_KEYS];
  uint8_t (*keys)[32] = NULL;
  size_t n = 0, cap = 0;
  char *inputs = NULL;
  size_t len = 0;
  int rc = coh_journal_meta_get(j, "inputs", &inputs, &len, err);
  if (rc == COH_ENOENT)
    return coh__err(err, COH_EJOURNAL, "journal %s: meta 'inputs' is missing",
                    j->path);
  if (rc) return rc;
  for (;;) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      rc = sqlfail(j, err, rc, "reading blob keys");
      goto done;
    }
    if (sqlite3_column_type(st, 0) != SQLITE_BLOB ||
        sqlite3_column_bytes(st, 0) != 32) {
      rc = coh__err(err, COH_EJOURNAL,
                    "journal %s: table blobs: a key is not a 32-byte sha256",
                    j->path);
      goto done;
    }
    if (n == cap) {
      uint8_t (*nk)[32];
      /* the blob table is bounded by the file, which SQLite has read */
      cap = cap ? cap * 2 : 16;
      nk = coh__realloc(keys, cap * sizeof *keys);
      if (nk == NULL) {
        rc = coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
        goto done;
      }
      keys = nk;
    }
    memcpy(keys[n++], sqlite3_column_blob(st, 0), 32);
  }
  coh__journal_chain0(inputs, len, (const uint8_t(*)[32])keys, n, j->chain0);
  rc = COH_OK;
done:
  sqlite3_reset(st);
  coh__free(keys);
  coh__free(inputs);
  return rc;
}

/* Deletes a file and its WAL companions. */
static void unlink_all(const char *path) {
  char buf[4096];
  unlink(path);
  if (snprintf(buf, sizeof buf, "%s-wal", path) < (int)sizeof buf) unlink(buf);
  if (snprintf(buf, sizeof buf, "%s-shm", path) < (int)sizeof buf) unlink(buf);
}

int coh_journal_create(const char *path, const void *inputs, size_t inputs_len,
                       coh_journal **out, coh_err *err) {
  return coh_journal_create_meta(path, inputs, inputs_len, NULL, NULL, NULL, 0,
                                 out, err);
}

int coh_journal_create_meta(const char *path, const void *inputs,
                            size_t inputs_len, const char *const *keys,
                            const void *const *values, const size_t *lens,
                            size_t n_meta, coh_journal **out, coh_err *err) {
  coh_journal_init init;
  memset(&init, 0, sizeof init);
  init.inputs = inputs;
  init.inputs_len = inputs_len;
  init.meta_keys = keys;
  init.meta_values = values;
  init.meta_lens = lens;
  init.n_meta = n_meta;
  return coh_journal_create_init(path, &init, out, err);
}

static int put_meta(coh_journal *j, const char *key, const void *value,
                    size_t len, coh_err *err) {
  sqlite3_stmt *st = j->st[ST_META_PUT];
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_blob64(st, 2, len ? value : (const void *)empty_blob, len,
                      SQLITE_STATIC);
  return exec_st(j, ST_META_PUT, err, "writing meta");
}

/* Writes a complete new journal (schema, fixed meta, extra meta, blobs,
 * genesis) into `tmp` in one rollback-mode transaction and closes it. */
static int create_file(const char *tmp, const coh_journal_init *in,
                       coh_err *err) {
  coh_journal *j = NULL;
  int fd, rc, created = 0;
  char ver[16], ghex[65];
  const char *path = tmp;
  size_t m;

  /* O_EXCL: never overwrite a previous run's journal. */
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST)
      return coh__err(err, COH_EIO, "journal %s already exists (refusing to "
                      "overwrite it)", path);
    return coh__err(err, COH_EIO, "journal %s: cannot create: %s", path,
                    strerror(errno));
  }
  close(fd);
  created = 1;
  /* The main file did not exist, so any WAL beside it is an orphan that
   * SQLite would otherwise replay into the new database. */
  {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s-wal", path) < (int)sizeof buf) unlink(buf);
    if (snprintf(buf, sizeof buf, "%s-shm", path) < (int)sizeof buf) unlink(buf);
  }
  rc = new_handle(path, &j, err);
  if (rc) goto fail;
  rc = open_db(j, err);
  if (rc) goto fail;
  /* The schema is written in rollback-journal mode, straight into the main
   * file, so the file is a complete journal before the first WAL frame.
   * The file is a temporary that nobody else opens and that is deleted if
   * anything fails, so SQLite need not make each step durable (its rollback
   * journal in memory, no syncs: that was 8 fdatasyncs, ~10% of a short
   * run's wall time on a VM disk); the whole file is synced once below,
   * before it takes its real name. */
  rc = exec_sql(j, "PRAGMA page_size=4096", err, "creating");
  if (rc) goto fail;
  if ((rc = exec_sql(j, "PRAGMA synchronous=OFF", err, "creating")) ||
      (rc = exec_sql(j, "PRAGMA journal_mode=MEMORY", err, "creating")))
    goto fail;
  rc = exec_sql(j, "BEGIN", err, "creating");
  if (rc) goto fail;
  rc = exec_sql(j, schema_sql, err, "creating the tables");
  if (rc) goto fail;
  rc = prepare_all(j, err);
  if (rc) goto fail;
  snprintf(ver, sizeof ver, "%d", COH__JOURNAL_SCHEMA);
  if ((rc = put_meta(j, "format", COH__JOURNAL_FORMAT,
                     strlen(COH__JOURNAL_FORMAT), err)) ||
      (rc = put_meta(j, "schema_version", ver, strlen(ver), err)) ||
      (rc = put_meta(j, "inputs", in->inputs, in->inputs_len, err)))
    goto fail;
  for (m = 0; m < in->n_meta; m++) {
    if (reserved_key(in->meta_keys[m])) {
      rc = coh__err(err, COH_EINVAL, "journal: meta key '%s' is reserved",
                    in->meta_keys[m]);
      goto fail;
    }
    rc = put_meta(j, in->meta_keys[m], in->meta_values[m], in->meta_lens[m],
                  err);
    if (rc) goto fail;
  }
  for (m = 0; m < in->n_blobs; m++) {
    sqlite3_stmt *st = j->st[ST_INS_BLOB];
    uint8_t key[32];
    coh__sha256_buf(in->blobs[m].bytes, in->blobs[m].len, key);
    sqlite3_bind_blob(st, 1, key, 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob64(st, 2, in->blobs[m].len ? in->blobs[m].bytes
                                                : (const void *)empty_blob,
                        in->blobs[m].len, SQLITE_STATIC);
    rc = exec_st(j, ST_INS_BLOB, err, "storing a blob");
    if (rc) goto fail;
  }
  /* The genesis, also kept in meta so that verify can tell a changed
   * genesis record from a changed first event. */
  rc = load_genesis(j, err);
  if (rc) goto fail;
  coh__hex32(j->chain0, ghex);
  rc = put_meta(j, "genesis", ghex, 64, err);
  if (rc) goto fail;
  rc = exec_sql(j, "COMMIT", err, "creating");
  if (rc) goto fail;
  /* WAL mode is recorded in the file's header now, so that opening it
   * (set_wal) changes nothing in the file */
  if ((rc = set_wal_mode(j, err))) goto fail;
  close_db(j);
  coh__free(j->path);
  coh__free(j);
  j = NULL;
  fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || fdatasync(fd) != 0) {
    rc = coh__err(err, COH_EIO, "journal %s: cannot sync the new file: %s", path,
                  strerror(errno));
    if (fd >= 0) close(fd);
    goto fail;
  }
  close(fd);
  return COH_OK;
fail:
  if (j) {
    close_db(j);
    coh__free(j->path);
    coh__free(j);
  }
  if (created) unlink_all(path);
  return rc;
}

int coh_journal_create_init(const char *path, const coh_journal_init *init,
                            coh_journal **out, coh_err *err) {
  char tmp[4096];
  size_t m;
  int rc;
  *out = NULL;
  if (path == NULL || init == NULL ||
      (init->inputs == NULL && init->inputs_len > 0) ||
      (init->n_meta > 0 && (init->meta_keys == NULL ||
                            init->meta_values == NULL ||
                            init->meta_lens == NULL)) ||
      (init->n_blobs > 0 && init->blobs == NULL))
    return coh__err(err, COH_EINVAL, "journal: NULL path, inputs, meta or blobs");
  for (m = 0; m < init->n_meta; m++)
    if (init->meta_keys[m] == NULL ||
        (init->meta_values[m] == NULL && init->meta_lens[m] > 0))
      return coh__err(err, COH_EINVAL, "journal: NULL meta key or value");
  for (m = 0; m < init->n_blobs; m++)
    if (init->blobs[m].bytes == NULL && init->blobs[m].len > 0)
      return coh__err(err, COH_EINVAL, "journal: NULL blob");
  if (access(path, F_OK) == 0)
    return coh__err(err, COH_EIO, "journal %s already exists (refusing to "
                    "overwrite it)", path);
  if (snprintf(tmp, sizeof tmp, "%s.creating", path) >= (int)sizeof tmp)
    return coh__err(err, COH_EINVAL, "journal: path too long");
  /* The journal is built complete under a temporary name and appears under
   * its real name in one step (link, which also refuses an existing file):
   * a process killed while creating leaves no half-made journal behind. */
  unlink_all(tmp);
  rc = create_file(tmp, init, err);
  if (rc) return rc;
  if (link(tmp, path) != 0) {
    int e = errno;
    unlink_all(tmp);
    if (e == EEXIST)
      return coh__err(err, COH_EIO, "journal %s already exists (refusing to "
                      "overwrite it)", path);
    return coh__err(err, COH_EIO, "journal %s: cannot create: %s", path, strerror(e));
  }
  unlink_all(tmp);
  rc = coh_journal_open(path, out, err);
  /* it holds only what this process just wrote */
  if (rc == COH_OK) (*out)->verified_from = INT64_MIN;
  return rc;
}

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         (uint32_t)b[3];
}

/* Checks the file itself before SQLite sees it: SQLite would treat an empty
 * file as an empty database (and write to it), and says only "file is not a
 * database" for anything else. */
static int check_file(const char *path, coh_err *err) {
  struct stat sb, wsb;
  unsigned char h[100];
  char wal[4096];
  FILE *f;
  size_t n;
  uint32_t page_size, pages;

  if (stat(path, &sb) != 0) {
    if (errno == ENOENT)
      return coh__err(err, COH_ENOENT, "journal %s: no such file", path);
    return coh__err(err, COH_EIO, "journal %s: %s", path, strerror(errno));
  }
  if (!S_ISREG(sb.st_mode))
    return coh__err(err, COH_EJOURNAL, "journal %s is not a regular file", path);
  if (sb.st_size == 0)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s is an empty file, not a cohort journal", path);
  f = fopen(path, "rb");
  if (f == NULL)
    return coh__err(err, COH_EIO, "journal %s: %s", path, strerror(errno));
  n = fread(h, 1, sizeof h, f);
  fclose(f);
  if (n < sizeof h || memcmp(h, "SQLite format 3", 16) != 0)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s is not a SQLite file (no SQLite header), so "
                    "not a cohort journal", path);
  page_size = (uint32_t)h[16] << 8 | h[17];
  if (page_size == 1) page_size = 65536;
  if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)))
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: damaged SQLite header (page size %u)", path,
                    (unsigned)page_size);
  /* The header's page count is valid when its change counter matches
   * "version-valid-for"; without a WAL beside the file (which may still
   * hold pages not yet checkpointed) the file must be that long. */
  pages = be32(h + 28);
  if (pages > 0 && be32(h + 24) == be32(h + 92) &&
      (uint64_t)sb.st_size < (uint64_t)pages * page_size &&
      !(snprintf(wal, sizeof wal, "%s-wal", path) < (int)sizeof wal &&
        stat(wal, &wsb) == 0 && wsb.st_size > 0))
    return coh__err(err, COH_EJOURNAL,
                    "journal %s is truncated: %lld bytes, but its header says "
                    "%u pages of %u bytes",
                    path, (long long)sb.st_size, (unsigned)pages,
                    (unsigned)page_size);
  return COH_OK;
}

/* Reads meta[key] as a NUL-terminated copy; COH_ENOENT if absent. */
static int meta_read(coh_journal *j, sqlite3_stmt *st, const char *key,
                     char **value, size_t *len, coh_err *err) {
  int rc;
  const void *p;
  size_t n;
  char *copy;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    return coh__err(err, COH_ENOENT, "journal %s: no meta '%s'", j->path, key);
  }
  if (rc != SQLITE_ROW) {
    rc = sqlfail(j, err, rc, "reading meta");
    sqlite3_reset(st);
    return rc;
  }
  p = sqlite3_column_blob(st, 0);
  n = (size_t)sqlite3_column_bytes(st, 0);
  copy = coh__malloc(n + 1);
  if (copy == NULL) {
    sqlite3_reset(st);
    return coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
  }
  if (n) memcpy(copy, p, n);
  copy[n] = '\0';
  sqlite3_reset(st);
  *value = copy;
  if (len) *len = n;
  return COH_OK;
}

static int check_meta(coh_journal *j, coh_err *err);

/* Structure checks on a file SQLite accepted: tables, format, version. */
static int check_schema(coh_journal *j, coh_err *err) {
  sqlite3_stmt *st = NULL;
  size_t i;
  int rc;

  rc = sqlite3_prepare_v2(j->db,
                          "SELECT 1 FROM sqlite_master WHERE type = 'table' "
                          "AND name = ?", -1, &st, NULL);
  if (rc != SQLITE_OK) {
    rc = sqlfail(j, err, rc, "reading the schema");
    goto done;
  }
  /* meta first: without it (or with another format in it) the file is
   * somebody else's database, not a damaged journal. */
  for (i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    if (i == 1) {
      rc = check_meta(j, err);
      if (rc) goto done;
    }
    sqlite3_bind_text(st, 1, tables[i], -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
      if (i == 0)
        rc = coh__err(err, COH_EJOURNAL,
                      "journal %s is a SQLite file but not a cohort journal "
                      "(no 'meta' table)", j->path);
      else
        rc = coh__err(err, COH_EJOURNAL,
                      "journal %s is damaged: table '%s' is missing", j->path,
                      tables[i]);
      goto done;
    }
    if (rc != SQLITE_ROW) {
      rc = sqlfail(j, err, rc, "reading the schema");
      goto done;
    }
  }
  rc = COH_OK;
done:
  sqlite3_finalize(st);
  return rc;
}

/* meta: format and schema version (the genesis is read after prepare). */
static int check_meta(coh_journal *j, coh_err *err) {
  sqlite3_stmt *st = NULL;
  char *v = NULL;
  int rc;

  rc = sqlite3_prepare_v2(j->db, "SELECT value FROM meta WHERE key = ?", -1,
                          &st, NULL);
  if (rc != SQLITE_OK) {
    rc = coh__err(err, COH_EJOURNAL,
                  "journal %s is not a cohort journal (its meta table is not "
                  "key/value: %s)", j->path, sqlite3_errmsg(j->db));
    goto done;
  }
  rc = meta_read(j, st, "format", &v, NULL, err);
  if (rc == COH_ENOENT || (rc == COH_OK && strcmp(v, COH__JOURNAL_FORMAT))) {
    rc = coh__err(err, COH_EJOURNAL,
                  "journal %s is a SQLite file but not a cohort journal (meta "
                  "'format' is %s%.64s%s)", j->path, v ? "'" : "",
                  v ? v : "missing", v ? "'" : "");
    goto done;
  }
  if (rc) goto done;
  coh__free(v);
  v = NULL;
  rc = meta_read(j, st, "schema_version", &v, NULL, err);
  if (rc == COH_ENOENT) {
    rc = coh__err(err, COH_EJOURNAL,
                  "journal %s: meta 'schema_version' is missing", j->path);
    goto done;
  }
  if (rc) goto done;
  {
    char want[16];
    snprintf(want, sizeof want, "%d", COH__JOURNAL_SCHEMA);
    if (strcmp(v, want) != 0) {
      rc = coh__err(err, COH_EJOURNAL,
                    "journal %s has schema version '%.32s'; this cohort reads "
                    "version %d", j->path, v, COH__JOURNAL_SCHEMA);
      goto done;
    }
  }
  rc = COH_OK;
done:
  coh__free(v);
  sqlite3_finalize(st);
  return rc;
}

int coh_journal_open(const char *path, coh_journal **out, coh_err *err) {
  coh_journal *j = NULL;
  int rc;

  *out = NULL;
  if (path == NULL) return coh__err(err, COH_EINVAL, "journal: NULL path");
  rc = check_file(path, err);
  if (rc) return rc;
  rc = new_handle(path, &j, err);
  if (rc) return rc;
  rc = open_db(j, err);
  if (rc) goto fail;
  rc = check_schema(j, err);
  if (rc) goto fail;
  rc = set_wal(j, err);
  if (rc) goto fail;
  rc = prepare_all(j, err);
  if (rc) goto fail;
  rc = load_genesis(j, err);
  if (rc) goto fail;
  rc = load_state(j, err);
  if (rc) goto fail;
  *out = j;
  return COH_OK;
fail:
  coh_journal_close(j);
  return rc;
}

/* ---- meta ------------------------------------------------------------- */

int coh_journal_meta_put(coh_journal *j, const char *key, const void *value,
                         size_t len, coh_err *err) {
  sqlite3_stmt *st = j->st[ST_META_PUT];
  if (key == NULL || (value == NULL && len > 0))
    return coh__err(err, COH_EINVAL, "journal %s: NULL meta key or value",
                    j->path);
  /* These define what the file is and where the chain starts. */
  if (reserved_key(key))
    return coh__err(err, COH_EINVAL,
                    "journal %s: meta '%s' is set by the journal itself",
                    j->path, key);
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_blob64(st, 2, len ? value : (const void *)empty_blob, len,
                      SQLITE_STATIC);
  return exec_st(j, ST_META_PUT, err, "writing meta");
}

int coh_journal_meta_get(coh_journal *j, const char *key, char **value,
                         size_t *len, coh_err *err) {
  *value = NULL;
  if (len) *len = 0;
  if (key == NULL)
    return coh__err(err, COH_EINVAL, "journal %s: NULL meta key", j->path);
  return meta_read(j, j->st[ST_META_GET], key, value, len, err);
}

/* ---- ticks ------------------------------------------------------------ */

int coh_journal_tick_begin(coh_journal *j, int64_t tick, coh_err *err) {
  int rc;
  if (j->in_tick)
    return coh__err(err, COH_ESTATE,
                    "journal %s: tick %lld is still open (commit or roll it "
                    "back first)", j->path, (long long)j->tick);
  if (tick <= j->last_tick || tick < 0)
    return coh__err(err, COH_EINVAL,
                    "journal %s: tick %lld is not after the last committed "
                    "tick %lld", j->path, (long long)tick,
                    (long long)j->last_tick);
  /* inside a group the group's transaction holds the tick */
  if (!j->in_group && (rc = exec_st(j, ST_BEGIN, err, "beginning a tick")))
    return rc;
  j->in_tick = 1;
  j->tick = tick;
  j->pseq = j->seq;
  j->pckpt = 0;
  j->pn = 0;
  j->pwall = 0;
  j->eb_len = 0;
  j->wb_len = 0;
  memcpy(j->pchain, j->chain, 32);
  return COH_OK;
}

/* Makes room for n more bytes in *buf (capacity *cap, *len used). */
static int grow(coh_journal *j, uint8_t **buf, size_t *len, size_t *cap,
                size_t n, coh_err *err) {
  uint8_t *nb;
  if (n > SIZE_MAX / 4 - *len)
    return coh__err(err, COH_EINVAL, "journal %s: tick %lld is too large",
                    j->path, (long long)j->tick);
  nb = coh__grow(*buf, cap, *len + n, 1, 4096);
  if (nb == NULL)
    return coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
  *buf = nb;
  return COH_OK;
}

int coh_journal_append(coh_journal *j, coh_jevent *ev, coh_err *err) {
  const char *target;
  size_t lk, ls, lt, need;
  uint8_t *p;
  int64_t dw;
  int rc;

  if (!j->in_tick)
    return coh__err(err, COH_ESTATE, "journal %s: append outside a tick",
                    j->path);
  if (ev->kind == NULL || ev->source == NULL ||
      (ev->payload == NULL && ev->payload_len > 0))
    return coh__err(err, COH_EINVAL,
                    "journal %s: event with NULL kind, source or payload",
                    j->path);
  if (ev->tick != j->tick)
    return coh__err(err, COH_EINVAL,
                    "journal %s: event for tick %lld appended to open tick "
                    "%lld", j->path, (long long)ev->tick, (long long)j->tick);
  /* The chain takes a tick's events, then its checkpoints. */
  if (j->pckpt > 0)
    return coh__err(err, COH_ESTATE,
                    "journal %s: event appended to tick %lld after its "
                    "checkpoints", j->path, (long long)j->tick);
  target = ev->target ? ev->target : "";
  lk = strlen(ev->kind) + 1;
  ls = strlen(ev->source) + 1;
  lt = strlen(target) + 1;
  if (ev->payload_len > SIZE_MAX / 4)
    return coh__err(err, COH_EINVAL, "journal %s: event payload too large",
                    j->path);
  need = lk + ls + lt + 10 + ev->payload_len;
  if ((rc = grow(j, &j->eb, &j->eb_len, &j->eb_cap, need, err)) ||
      (rc = grow(j, &j->wb, &j->wb_len, &j->wb_cap, 10, err)))
    return rc;
  p = j->eb + j->eb_len;
  memcpy(p, ev->kind, lk);
  p += lk;
  memcpy(p, ev->source, ls);
  p += ls;
  memcpy(p, target, lt);
  p += lt;
  p += put_uvarint(p, (uint64_t)ev->payload_len);
  if (ev->payload_len) memcpy(p, ev->payload, ev->payload_len);
  p += ev->payload_len;
  j->eb_len = (size_t)(p - j->eb);
  /* walls: zigzag of the difference to the previous event's wall_us */
  dw = (int64_t)((uint64_t)ev->wall_us - (uint64_t)j->pwall);
  j->wb_len += put_uvarint(j->wb + j->wb_len,
                           ((uint64_t)dw << 1) ^ (uint64_t)(dw >> 63));
  j->pwall = ev->wall_us;
  j->pn++;
  j->pseq++;
  ev->seq = j->pseq;
  /* an event's chain is its tick's events record, known at commit */
  memset(ev->chain, 0, sizeof ev->chain);
  return COH_OK;
}

/* The open tick's events record (before its first checkpoint). */
static void chain_events(coh_journal *j, uint8_t out[32]) {
  coh__journal_chain_events(j->chain, j->tick, j->pseq - j->pn + 1, j->pn,
                            j->eb_len ? j->eb : (const uint8_t *)empty_blob,
                            j->eb_len, out);
}

int coh_journal_checkpoint_put(coh_journal *j, const char *agent,
                               const void *state, size_t len, coh_err *err) {
  sqlite3_stmt *st = j->st[ST_INS_CKPT];
  uint8_t chain[32];
  int rc;
  if (!j->in_tick)
    return coh__err(err, COH_ESTATE, "journal %s: checkpoint outside a tick",
                    j->path);
  if (agent == NULL || (state == NULL && len > 0))
    return coh__err(err, COH_EINVAL,
                    "journal %s: checkpoint with NULL agent or state", j->path);
  if (j->pckpt == 0) chain_events(j, j->pchain);
  coh__journal_chain_checkpoint(j->pchain, j->tick, j->pckpt + 1, agent,
                                len ? state : (const void *)empty_blob, len,
                                chain);
  sqlite3_bind_int64(st, 1, j->tick);
  sqlite3_bind_int64(st, 2, j->pckpt + 1);
  sqlite3_bind_text(st, 3, agent, -1, SQLITE_STATIC);
  sqlite3_bind_blob64(st, 4, len ? state : (const void *)empty_blob, len,
                      SQLITE_STATIC);
  sqlite3_bind_blob(st, 5, chain, 32, SQLITE_STATIC);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if ((rc & 0xff) == SQLITE_CONSTRAINT)
    return coh__err(err, COH_EINVAL,
                    "journal %s: agent '%s' already has a checkpoint in tick "
                    "%lld", j->path, agent, (long long)j->tick);
  if (rc != SQLITE_DONE) return sqlfail(j, err, rc, "storing a checkpoint");
  j->pckpt++;
  memcpy(j->pchain, chain, 32);
  return COH_OK;
}

/* ticks.events holds the tick's events blob as one zstd frame (level 1,
 * its content size in the header): a routing run's rows shrink 18x, and
 * the bytes SQLite writes twice (WAL, then the database) and reads back were
 * most of the writer thread's work (bench/RESULTS.md).  The chain hashes
 * the uncompressed blob, so a digest does not depend on zstd's version or
 * level.  The blob is bounded like a SQLite value (SQLITE_MAX_LENGTH's
 * default, what bounded it before it was compressed), which also bounds
 * what a reader allocates for a row. */
#define EVENTS_MAX ((size_t)1000000000)
#define EVENTS_ZSTD_LEVEL 1

static int compress_events(coh_journal *j, size_t *zlen, coh_err *err) {
  size_t bound, n;
  if (j->eb_len > EVENTS_MAX)
    return coh__err(err, COH_EINVAL,
                    "journal %s: tick %lld's events take %zu bytes, more than "
                    "a tick may (%zu)", j->path, (long long)j->tick, j->eb_len,
                    EVENTS_MAX);
  bound = ZSTD_compressBound(j->eb_len);
  if (bound > j->zb_cap) {
    uint8_t *nb = coh__realloc(j->zb, bound);
    if (nb == NULL) return coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
    j->zb = nb;
    j->zb_cap = bound;
  }
  if (j->zc == NULL && (j->zc = ZSTD_createCCtx()) == NULL)
    return coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
  n = ZSTD_compressCCtx(j->zc, j->zb, bound, j->eb_len ? j->eb : (const void *)empty_blob,
                        j->eb_len, EVENTS_ZSTD_LEVEL);
  if (ZSTD_isError(n))
    return coh__err(err, ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation
                             ? COH_ENOMEM : COH_EJOURNAL,
                    "journal %s: compressing tick %lld's events: %s", j->path,
                    (long long)j->tick, ZSTD_getErrorName(n));
  *zlen = n;
  return COH_OK;
}

int coh_journal_tick_commit(coh_journal *j, int64_t wall_us, coh_err *err) {
  sqlite3_stmt *st = j->st[ST_INS_TICK];
  uint8_t echain[32], chain[32];
  size_t zlen = 0;
  int rc;
  if (!j->in_tick)
    return coh__err(err, COH_ESTATE, "journal %s: no open tick to commit",
                    j->path);
  if ((rc = compress_events(j, &zlen, err))) return rc;
  chain_events(j, echain);
  coh__journal_chain_tick(j->pckpt ? j->pchain : echain, j->tick, j->pseq,
                          j->pckpt, chain);
  sqlite3_bind_int64(st, 1, j->tick);
  sqlite3_bind_int64(st, 2, j->pseq);
  sqlite3_bind_int64(st, 3, j->pn);
  sqlite3_bind_blob64(st, 4, j->zb, zlen, SQLITE_STATIC);
  sqlite3_bind_blob64(st, 5, j->wb_len ? (const void *)j->wb : empty_blob,
                      j->wb_len, SQLITE_STATIC);
  sqlite3_bind_blob(st, 6, echain, 32, SQLITE_STATIC);
  sqlite3_bind_blob(st, 7, chain, 32, SQLITE_STATIC);
  sqlite3_bind_int64(st, 8, wall_us);
  rc = exec_st(j, ST_INS_TICK, err, "committing a tick");
  if (rc) return rc;
  /* On failure the transaction stays open (or SQLite already rolled it
   * back); either way the caller's tick_rollback cleans up.  Inside a group
   * the COMMIT is group_commit's. */
  if (!j->in_group && (rc = exec_st(j, ST_COMMIT, err, "committing a tick")))
    return rc;
  j->in_tick = 0;
  j->seq = j->pseq;
  j->last_tick = j->tick;
  memcpy(j->chain, chain, 32);
  memcpy(j->echain, echain, 32);
  return COH_OK;
}

void coh_journal_events_chain(const coh_journal *j, uint8_t out[32]) {
  memcpy(out, j->echain, 32);
}

void coh_journal_tick_rollback(coh_journal *j) {
  if (j == NULL || (!j->in_tick && !j->in_group)) return;
  /* "no transaction is active" after an error that already rolled back is
   * fine: the goal state is reached either way. */
  if (!sqlite3_get_autocommit(j->db)) {
    sqlite3_step(j->st[ST_ROLLBACK]);
    sqlite3_reset(j->st[ST_ROLLBACK]);
  }
  j->in_tick = 0;
  if (j->in_group) { /* the whole group goes: back to its start */
    j->in_group = 0;
    memcpy(j->chain, j->gchain, 32);
    j->seq = j->gseq;
    j->last_tick = j->glast_tick;
  }
}

/* ---- group commit ----------------------------------------------------- */

int coh_journal_group_begin(coh_journal *j, coh_err *err) {
  int rc;
  if (j->in_tick || j->in_group)
    return coh__err(err, COH_ESTATE,
                    "journal %s: a %s is still open", j->path,
                    j->in_group ? "group" : "tick");
  if ((rc = exec_st(j, ST_BEGIN, err, "beginning a group of ticks"))) return rc;
  j->in_group = 1;
  memcpy(j->gchain, j->chain, 32);
  j->gseq = j->seq;
  j->glast_tick = j->last_tick;
  return COH_OK;
}

int coh_journal_group_commit(coh_journal *j, coh_err *err) {
  int rc;
  if (!j->in_group || j->in_tick)
    return coh__err(err, COH_ESTATE, "journal %s: %s", j->path,
                    j->in_tick ? "a tick of the group is still open"
                               : "no open group to commit");
  /* On failure the group stays open; the caller's group_rollback (or
   * tick_rollback) abandons it and restores the handle. */
  if ((rc = exec_st(j, ST_COMMIT, err, "committing a group of ticks")))
    return rc;
  j->in_group = 0;
  return COH_OK;
}

void coh_journal_group_rollback(coh_journal *j) { coh_journal_tick_rollback(j); }

int coh_journal_last_tick(coh_journal *j, int64_t *tick, int64_t *n_events,
                          coh_err *err) {
  /* Read from the file, not the handle, so a reader sees a live writer's
   * progress; the ticks row is written by the commit, so an open tick of
   * this handle is not counted. */
  sqlite3_stmt *st = j->st[ST_LAST_TICK];
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    if (tick) *tick = sqlite3_column_int64(st, 0);
    if (n_events) *n_events = sqlite3_column_int64(st, 1);
  } else if (rc == SQLITE_DONE) {
    if (tick) *tick = -1;
    if (n_events) *n_events = 0;
  } else {
    rc = sqlfail(j, err, rc, "reading the last tick");
    sqlite3_reset(st);
    return rc;
  }
  sqlite3_reset(st);
  return COH_OK;
}

void coh_journal_digest(const coh_journal *j, char hex[65]) {
  coh__hex32(j->chain, hex);
}

/* ---- reading ---------------------------------------------------------- */

/* One ticks row as read (columns 0-5 as in ST_EVENTS and
 * ST_VERIFY_TICKS), type-checked: a journal file is input like any other. */
typedef struct trow {
  int64_t tick, last_seq, n;
  const uint8_t *ev, *walls; /* the events and walls blobs */
  size_t ev_len, walls_len;
  const uint8_t *echain;
} trow;

/* The stored events column back to the events blob (see compress_events):
 * exactly one whole zstd frame that states its size, within EVENTS_MAX,
 * decompressing to that size.  Anything else names the tick. */
static int decompress_events(coh_journal *j, int64_t tick, const void *z, size_t zlen,
                             trow *r, coh_err *err) {
  unsigned long long size;
  size_t got;
  if (z == NULL) z = empty_blob;
  size = ZSTD_getFrameContentSize(z, zlen);
  if (size == ZSTD_CONTENTSIZE_ERROR || ZSTD_findFrameCompressedSize(z, zlen) != zlen)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: table ticks, tick %lld: events is not one zstd "
                    "frame", j->path, (long long)tick);
  if (size == ZSTD_CONTENTSIZE_UNKNOWN || size > EVENTS_MAX)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: table ticks, tick %lld: events frame states %s "
                    "size (at most %zu bytes)", j->path, (long long)tick,
                    size == ZSTD_CONTENTSIZE_UNKNOWN ? "no" : "a larger", EVENTS_MAX);
  if (size + 1 > j->rb_cap) {
    uint8_t *nb = coh__realloc(j->rb, (size_t)size + 1);
    if (nb == NULL) return coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
    j->rb = nb;
    j->rb_cap = (size_t)size + 1;
  }
  if (j->zd == NULL && (j->zd = ZSTD_createDCtx()) == NULL)
    return coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
  got = ZSTD_decompressDCtx(j->zd, j->rb, j->rb_cap, z, zlen);
  if (ZSTD_isError(got) || got != size)
    return coh__err(err, ZSTD_isError(got) &&
                             ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation
                             ? COH_ENOMEM : COH_EJOURNAL,
                    "journal %s: table ticks, tick %lld: events frame does not "
                    "decompress (%s)", j->path, (long long)tick,
                    ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
  r->ev = j->rb;
  r->ev_len = got;
  return COH_OK;
}

static int read_trow(coh_journal *j, sqlite3_stmt *st, trow *r, coh_err *err) {
  int t3 = sqlite3_column_type(st, 3), t4 = sqlite3_column_type(st, 4), rc;
  memset(r, 0, sizeof *r);
  r->tick = sqlite3_column_int64(st, 0);
  if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
      sqlite3_column_type(st, 1) != SQLITE_INTEGER ||
      sqlite3_column_type(st, 2) != SQLITE_INTEGER)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: table ticks, tick %lld: a column is not an "
                    "integer", j->path, (long long)r->tick);
  r->last_seq = sqlite3_column_int64(st, 1);
  r->n = sqlite3_column_int64(st, 2);
  /* Text is accepted for the blobs too (the same bytes, as the sqlite3
   * shell may leave them), so that an edit shows up as what it changed (a
   * frame that does not decode, a chain mismatch), not as a type error. */
  if ((t3 != SQLITE_BLOB && t3 != SQLITE_TEXT) ||
      (t4 != SQLITE_BLOB && t4 != SQLITE_TEXT))
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: table ticks, tick %lld: events or walls is "
                    "not a blob", j->path, (long long)r->tick);
  {
    const void *z = sqlite3_column_blob(st, 3); /* before its size, as SQLite asks */
    if ((rc = decompress_events(j, r->tick, z, (size_t)sqlite3_column_bytes(st, 3), r, err)))
      return rc;
  }
  r->walls = sqlite3_column_blob(st, 4);
  r->walls_len = (size_t)sqlite3_column_bytes(st, 4);
  if (r->ev == NULL) r->ev = (const uint8_t *)empty_blob;
  if (r->walls == NULL) r->walls = (const uint8_t *)empty_blob;
  r->echain = sqlite3_column_blob(st, 5);
  if (sqlite3_column_type(st, 5) != SQLITE_BLOB ||
      sqlite3_column_bytes(st, 5) != 32 || r->echain == NULL)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: table ticks, tick %lld: events_chain is not "
                    "a 32-byte blob", j->path, (long long)r->tick);
  if (r->n < 0 || r->n > r->last_seq)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: table ticks, tick %lld: %lld events through "
                    "seq %lld cannot be right", j->path, (long long)r->tick,
                    (long long)r->n, (long long)r->last_seq);
  return COH_OK;
}

/* Calls fn (if not NULL) for each event of the row in seq order (only
 * those whose source or target is `agent`, if it is not NULL), checking the
 * encoding on the way: exactly n events and n wall times, nothing after
 * them.  A malformed blob: COH_EJOURNAL naming the tick and the event. */
static int walk_trow(coh_journal *j, const trow *r, const char *agent,
                     coh_jevent_fn fn, void *ud, coh_err *err) {
  const uint8_t *p = r->ev, *end = r->ev + r->ev_len;
  const uint8_t *w = r->walls, *wend = r->walls + r->walls_len;
  int64_t k, wall = 0;
  coh_jevent ev;
  int rc;
  for (k = 0; k < r->n; k++) {
    uint64_t z;
    size_t m;
    memset(&ev, 0, sizeof ev);
    if (coh__journal_event_decode(&p, end, &ev.kind, &ev.source, &ev.target,
                                  &ev.payload, &ev.payload_len) != 0)
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: table ticks, tick %lld: events blob is "
                      "malformed at event #%lld (seq %lld)", j->path,
                      (long long)r->tick, (long long)(k + 1),
                      (long long)(r->last_seq - r->n + 1 + k));
    m = get_uvarint(w, wend, &z);
    if (m == 0)
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: table ticks, tick %lld: walls blob is "
                      "malformed at event #%lld", j->path, (long long)r->tick,
                      (long long)(k + 1));
    w += m;
    wall = (int64_t)((uint64_t)wall + ((z >> 1) ^ (0 - (z & 1))));
    if (fn == NULL) continue;
    if (agent && strcmp(ev.source, agent) && strcmp(ev.target, agent))
      continue;
    ev.seq = r->last_seq - r->n + 1 + k;
    ev.tick = r->tick;
    ev.wall_us = wall;
    memcpy(ev.chain, r->echain, 32);
    if ((rc = fn(ud, &ev))) return rc;
  }
  if (p != end || w != wend)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: table ticks, tick %lld: %s blob has bytes "
                    "after its %lld events", j->path, (long long)r->tick,
                    p != end ? "events" : "walls", (long long)r->n);
  return COH_OK;
}

int coh_journal_events(coh_journal *j, int64_t from_tick, int64_t to_tick,
                       const char *agent, coh_jevent_fn fn, void *ud,
                       coh_err *err) {
  sqlite3_stmt *st = j->st[ST_EVENTS];
  trow r;
  int rc;
  if (j->walking)
    return coh__err(err, COH_ESTATE,
                    "journal %s: events() called from inside a walk", j->path);
  sqlite3_bind_int64(st, 1, from_tick);
  sqlite3_bind_int64(st, 2, to_tick);
  j->walking = 1;
  for (;;) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
      rc = COH_OK;
      break;
    }
    if (rc != SQLITE_ROW) {
      rc = sqlfail(j, err, rc, "reading events");
      break;
    }
    if ((rc = read_trow(j, st, &r, err))) break;
    if ((rc = walk_trow(j, &r, agent, fn, ud, err))) break;
  }
  sqlite3_reset(st);
  j->walking = 0;
  return rc;
}

static int ckpt_tick(coh_journal *j, const char *agent, int64_t at_most,
                     int64_t *tick, coh_err *err) {
  sqlite3_stmt *st = j->st[agent ? ST_CKPT_TICK_OF : ST_CKPT_TICK];
  int rc;
  sqlite3_bind_int64(st, 1, at_most);
  if (agent) sqlite3_bind_text(st, 2, agent, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    rc = sqlfail(j, err, rc, "reading checkpoints");
    sqlite3_reset(st);
    if (agent) sqlite3_clear_bindings(st);
    return rc;
  }
  *tick = sqlite3_column_type(st, 0) == SQLITE_NULL
              ? -1
              : sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (agent) sqlite3_clear_bindings(st);
  return COH_OK;
}

int coh_journal_checkpoint_tick(coh_journal *j, int64_t at_most,
                                int64_t *tick, coh_err *err) {
  return ckpt_tick(j, NULL, at_most, tick, err);
}

int coh_journal_checkpoint_tick_of(coh_journal *j, const char *agent,
                                   int64_t at_most, int64_t *tick,
                                   coh_err *err) {
  if (agent == NULL)
    return coh__err(err, COH_EINVAL, "journal %s: no checkpoint agent given",
                    j->path);
  return ckpt_tick(j, agent, at_most, tick, err);
}

int coh_journal_ticks(coh_journal *j, coh_jtick_fn fn, void *ud,
                      coh_err *err) {
  sqlite3_stmt *st = j->st[ST_TICKS];
  int rc;
  if (j->walking)
    return coh__err(err, COH_ESTATE,
                    "journal %s: ticks() called from inside a walk", j->path);
  j->walking = 1;
  for (;;) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
      rc = COH_OK;
      break;
    }
    if (rc != SQLITE_ROW) {
      rc = sqlfail(j, err, rc, "reading ticks");
      break;
    }
    if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
        sqlite3_column_type(st, 1) != SQLITE_INTEGER ||
        sqlite3_column_type(st, 2) != SQLITE_INTEGER) {
      rc = coh__err(err, COH_EJOURNAL,
                    "journal %s: a ticks row has a non-integer column",
                    j->path);
      break;
    }
    rc = fn(ud, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
            sqlite3_column_int64(st, 2));
    if (rc) break;
  }
  sqlite3_reset(st);
  j->walking = 0;
  return rc;
}

int coh_journal_checkpoints(coh_journal *j, int64_t tick,
                            coh_jcheckpoint_fn fn, void *ud, coh_err *err) {
  sqlite3_stmt *st = j->st[ST_CKPTS];
  int rc;
  if (j->walking)
    return coh__err(err, COH_ESTATE,
                    "journal %s: checkpoints() called from inside a walk",
                    j->path);
  sqlite3_bind_int64(st, 1, tick);
  j->walking = 1;
  for (;;) {
    const char *agent;
    const void *state;
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
      rc = COH_OK;
      break;
    }
    if (rc != SQLITE_ROW) {
      rc = sqlfail(j, err, rc, "reading checkpoints");
      break;
    }
    if (sqlite3_column_type(st, 0) != SQLITE_TEXT ||
        sqlite3_column_type(st, 1) != SQLITE_BLOB) {
      rc = coh__err(err, COH_EJOURNAL,
                    "journal %s: checkpoint at tick %lld has a non-text agent "
                    "or a non-blob state", j->path, (long long)tick);
      break;
    }
    state = sqlite3_column_blob(st, 1);
    agent = (const char *)sqlite3_column_text(st, 0);
    if (agent == NULL) {
      rc = coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
      break;
    }
    rc = fn(ud, agent, state ? state : empty_blob,
            (size_t)sqlite3_column_bytes(st, 1));
    if (rc) break;
  }
  sqlite3_reset(st);
  j->walking = 0;
  return rc;
}

/* ---- verification ----------------------------------------------------- */

/* The verify cursor over checkpoints (tick, n order). */
typedef struct ck_cursor {
  sqlite3_stmt *st;
  int have;        /* a row is current */
  int64_t tick, n;
  const char *agent;
  const void *state;
  size_t len;
  const void *chain;
} ck_cursor;

static int ck_next(coh_journal *j, ck_cursor *c, coh_err *err) {
  int rc = sqlite3_step(c->st);
  c->have = 0;
  if (rc == SQLITE_DONE) return COH_OK;
  if (rc != SQLITE_ROW) return sqlfail(j, err, rc, "verify: reading checkpoints");
  c->tick = sqlite3_column_int64(c->st, 0);
  c->n = sqlite3_column_int64(c->st, 1);
  if (sqlite3_column_type(c->st, 0) != SQLITE_INTEGER ||
      sqlite3_column_type(c->st, 1) != SQLITE_INTEGER ||
      sqlite3_column_type(c->st, 2) != SQLITE_TEXT ||
      (sqlite3_column_type(c->st, 3) != SQLITE_BLOB &&
       sqlite3_column_type(c->st, 3) != SQLITE_TEXT) ||
      sqlite3_column_type(c->st, 4) != SQLITE_BLOB ||
      sqlite3_column_bytes(c->st, 4) != 32)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: verify failed at table checkpoints, tick "
                    "%lld, #%lld: a column has the wrong type", j->path,
                    (long long)c->tick, (long long)c->n);
  /* Text state is accepted so that an edit made with the sqlite3 shell
   * shows up as a chain mismatch, not as a type error. */
  c->state = sqlite3_column_blob(c->st, 3);
  c->len = (size_t)sqlite3_column_bytes(c->st, 3);
  if (c->state == NULL) c->state = empty_blob;
  c->chain = sqlite3_column_blob(c->st, 4);
  c->agent = (const char *)sqlite3_column_text(c->st, 2);
  if (c->agent == NULL || c->chain == NULL)
    return coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
  c->have = 1;
  return COH_OK;
}

/* The genesis: meta "genesis" must name the hash of meta "inputs" and the
 * blobs' keys, and every blob's bytes must hash to its key. */
static int verify_inputs(coh_journal *j, coh_err *err) {
  sqlite3_stmt *st = j->st[ST_VERIFY_BLOBS];
  char *g = NULL, hex[65], got[65];
  size_t len = 0;
  int rc = coh_journal_meta_get(j, "genesis", &g, &len, err);
  if (rc == COH_ENOENT)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: verify failed at table meta, key 'genesis': "
                    "missing", j->path);
  if (rc) return rc;
  coh__hex32(j->chain0, hex);
  rc = len == 64 && memcmp(g, hex, 64) == 0;
  coh__free(g);
  if (!rc)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: verify failed at table meta, key 'inputs' "
                    "(the genesis record): the run's inputs or the set of "
                    "blobs do not match the recorded genesis", j->path);
  for (;;) {
    uint8_t h[32];
    const void *p;
    size_t n;
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlfail(j, err, rc, "verify: reading blobs");
    if (sqlite3_column_type(st, 0) != SQLITE_BLOB ||
        sqlite3_column_bytes(st, 0) != 32)
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: verify failed at table blobs: a key is not "
                      "a 32-byte sha256", j->path);
    coh__hex32(sqlite3_column_blob(st, 0), hex);
    p = sqlite3_column_blob(st, 1);
    n = (size_t)sqlite3_column_bytes(st, 1);
    coh__sha256_buf(p, p != NULL ? n : 0, h);
    coh__hex32(h, got);
    if (strcmp(hex, got) != 0)
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: verify failed at table blobs, sha256 %.16s...: "
                      "its bytes hash to %.16s... (the content was changed)",
                      j->path, hex, got);
  }
  return COH_OK;
}

/* Where a walk from tick `from` starts: the genesis and seq 0, or, when
 * a ticks row lies before `from`, that row's stored chain and last seq
 * (taken as stored: the rows before `from` are not read). */
static int verify_base(coh_journal *j, int64_t from, uint8_t cur[32], int64_t *prev_seq,
                       coh_err *err) {
  sqlite3_stmt *st = j->st[ST_VERIFY_BASE];
  int rc;
  memcpy(cur, j->chain0, 32);
  *prev_seq = 0;
  sqlite3_bind_int64(st, 1, from);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    int64_t tick = sqlite3_column_int64(st, 0);
    if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
        sqlite3_column_type(st, 1) != SQLITE_INTEGER ||
        sqlite3_column_type(st, 2) != SQLITE_BLOB || sqlite3_column_bytes(st, 2) != 32) {
      sqlite3_reset(st);
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: verify failed at table ticks, tick %lld: a "
                      "column has the wrong type", j->path, (long long)tick);
    }
    *prev_seq = sqlite3_column_int64(st, 1);
    memcpy(cur, sqlite3_column_blob(st, 2), 32);
    rc = SQLITE_DONE;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return sqlfail(j, err, rc, "verify: reading ticks");
  return COH_OK;
}

/* Walks ticks (by tick) and checkpoints (by tick, n) from tick `from`
 * together, recomputing the chain from verify_base: each tick's events
 * must follow the previous tick's seqs, its events blob must hash to its
 * stored events chain and decode to exactly its n_events events, every
 * checkpoint must belong to a committed tick, and every stored chain must
 * equal the recomputed one.  Errors name the first bad record: table, row,
 * tick. */
static int verify_walk(coh_journal *j, int64_t from, coh_err *err) {
  sqlite3_stmt *tt = j->st[ST_VERIFY_TICKS];
  ck_cursor ck;
  uint8_t cur[32];
  int64_t prev_seq = 0, nck;
  trow r;
  int rc;

  if ((rc = verify_base(j, from, cur, &prev_seq, err))) return rc;
  sqlite3_bind_int64(tt, 1, from);
  memset(&ck, 0, sizeof ck);
  ck.st = j->st[ST_VERIFY_CKPTS];
  sqlite3_bind_int64(ck.st, 1, from);
  if ((rc = ck_next(j, &ck, err))) return rc;
  for (;;) {
    rc = sqlite3_step(tt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlfail(j, err, rc, "verify: reading ticks");
    if ((rc = read_trow(j, tt, &r, err))) return rc;
    if (r.last_seq - r.n != prev_seq)
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: verify failed at table ticks, tick %lld: "
                      "its %lld events end at seq %lld, but the tick before "
                      "ends at seq %lld (events missing or doubled)", j->path,
                      (long long)r.tick, (long long)r.n,
                      (long long)r.last_seq, (long long)prev_seq);
    coh__journal_chain_events(cur, r.tick, prev_seq + 1, r.n, r.ev, r.ev_len,
                              cur);
    if (memcmp(cur, r.echain, 32) != 0)
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: verify failed at table ticks, tick %lld "
                      "(events, seqs %lld..%lld): the stored events chain "
                      "does not match the tick's events", j->path,
                      (long long)r.tick, (long long)(prev_seq + 1),
                      (long long)r.last_seq);
    if ((rc = walk_trow(j, &r, NULL, NULL, NULL, err))) return rc;
    prev_seq = r.last_seq;
    if (ck.have && ck.tick < r.tick)
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: verify failed at table checkpoints, tick "
                      "%lld, agent %s: it belongs to no committed tick",
                      j->path, (long long)ck.tick, ck.agent);
    for (nck = 0; ck.have && ck.tick == r.tick;) {
      nck++;
      if (ck.n != nck)
        return coh__err(err, COH_EJOURNAL,
                        "journal %s: verify failed at table checkpoints, tick "
                        "%lld, agent %s: it is #%lld, expected #%lld (one is "
                        "missing)", j->path, (long long)r.tick, ck.agent,
                        (long long)ck.n, (long long)nck);
      coh__journal_chain_checkpoint(cur, r.tick, nck, ck.agent, ck.state,
                                    ck.len, cur);
      if (memcmp(cur, ck.chain, 32) != 0)
        return coh__err(err, COH_EJOURNAL,
                        "journal %s: verify failed at table checkpoints, tick "
                        "%lld, agent %s: the stored chain does not match the "
                        "checkpoint's contents", j->path, (long long)r.tick,
                        ck.agent);
      if ((rc = ck_next(j, &ck, err))) return rc;
    }
    coh__journal_chain_tick(cur, r.tick, r.last_seq, nck, cur);
    if (sqlite3_column_type(tt, 6) != SQLITE_BLOB ||
        sqlite3_column_bytes(tt, 6) != 32 ||
        memcmp(cur, sqlite3_column_blob(tt, 6), 32) != 0)
      return coh__err(err, COH_EJOURNAL,
                      "journal %s: verify failed at table ticks, tick %lld: "
                      "the tick's recorded chain does not match the chain "
                      "through its events (to seq %lld) and its %lld "
                      "checkpoint(s)", j->path, (long long)r.tick,
                      (long long)r.last_seq, (long long)nck);
  }
  if (ck.have)
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: verify failed at table checkpoints, tick "
                    "%lld, agent %s: it belongs to no committed tick",
                    j->path, (long long)ck.tick, ck.agent);
  return COH_OK;
}

int coh_journal_verify(coh_journal *j, coh_err *err) {
  return coh_journal_verify_from(j, INT64_MIN, err);
}

int64_t coh_journal_verified_from(const coh_journal *j) { return j->verified_from; }

int coh_journal_verify_from(coh_journal *j, int64_t from, coh_err *err) {
  int rc;
  if (j->in_tick)
    return coh__err(err, COH_ESTATE,
                    "journal %s: verify with tick %lld open", j->path,
                    (long long)j->tick);
  if (j->in_group)
    return coh__err(err, COH_ESTATE,
                    "journal %s: verify with a group of ticks open", j->path);
  if (j->walking)
    return coh__err(err, COH_ESTATE,
                    "journal %s: verify() called from inside a walk", j->path);
  /* One read transaction, so every cursor sees the same snapshot. */
  rc = exec_sql(j, "BEGIN", err, "verify");
  if (rc) return rc;
  j->walking = 1;
  rc = load_genesis(j, err);
  if (rc == COH_OK) rc = verify_inputs(j, err);
  if (rc == COH_OK) rc = verify_walk(j, from, err);
  sqlite3_reset(j->st[ST_VERIFY_BLOBS]);
  sqlite3_reset(j->st[ST_VERIFY_TICKS]);
  sqlite3_reset(j->st[ST_VERIFY_CKPTS]);
  j->walking = 0;
  /* The digest now names the snapshot just verified (a reader's handle may
   * have been opened before a writer's later ticks). */
  if (rc == COH_OK) rc = load_state(j, err);
  if (rc == COH_OK && from < j->verified_from) j->verified_from = from;
  sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL);
  return rc;
}

/* ---- blobs ------------------------------------------------------------ */

int coh_journal_blob_get(coh_journal *j, const uint8_t sha256[32],
                         uint8_t **bytes, size_t *len, coh_err *err) {
  sqlite3_stmt *st = j->st[ST_BLOB_GET];
  uint8_t h[32];
  char hex[65];
  const void *p;
  size_t n;
  int rc;
  *bytes = NULL;
  *len = 0;
  coh__hex32(sha256, hex);
  sqlite3_bind_blob(st, 1, sha256, 32, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    return coh__err(err, COH_ENOENT, "journal %s: no blob with sha256 %s",
                    j->path, hex);
  }
  if (rc != SQLITE_ROW) {
    rc = sqlfail(j, err, rc, "reading a blob");
    sqlite3_reset(st);
    return rc;
  }
  p = sqlite3_column_blob(st, 0);
  n = (size_t)sqlite3_column_bytes(st, 0);
  /* checked again here: the bytes handed out are the bytes named */
  coh__sha256_buf(p, p != NULL ? n : 0, h);
  if (memcmp(h, sha256, 32) != 0) {
    sqlite3_reset(st);
    return coh__err(err, COH_EJOURNAL,
                    "journal %s: table blobs, sha256 %.16s...: its bytes do not "
                    "hash to its key", j->path, hex);
  }
  *bytes = coh__malloc(n ? n : 1);
  if (*bytes == NULL) {
    sqlite3_reset(st);
    return coh__err(err, COH_ENOMEM, "journal %s: out of memory", j->path);
  }
  if (n) memcpy(*bytes, p, n);
  *len = n;
  sqlite3_reset(st);
  return COH_OK;
}

int coh_journal_truncate_after(coh_journal *j, int64_t tick, coh_err *err) {
  static const int dels[2] = {ST_DEL_TICKS, ST_DEL_CKPTS};
  int i, rc;
  if (j->in_tick || j->in_group || j->walking)
    return coh__err(err, COH_ESTATE,
                    "journal %s: truncate with a tick open or a walk under "
                    "way", j->path);
  rc = exec_st(j, ST_BEGIN, err, "truncating");
  if (rc) return rc;
  for (i = 0; i < 2; i++) {
    sqlite3_bind_int64(j->st[dels[i]], 1, tick);
    rc = exec_st(j, dels[i], err, "truncating");
    if (rc) goto fail;
  }
  rc = exec_st(j, ST_COMMIT, err, "truncating");
  if (rc) goto fail;
  return load_state(j, err);
fail:
  if (!sqlite3_get_autocommit(j->db)) {
    sqlite3_step(j->st[ST_ROLLBACK]);
    sqlite3_reset(j->st[ST_ROLLBACK]);
  }
  return rc;
}
