/*
 * cohort/journal.h — the run journal: one SQLite file (WAL mode) per run.
 *
 * It holds the run's inputs (the genesis record in meta "inputs", and the
 * scenario text and agent modules as content-addressed blobs), every
 * committed event in commit order, agent checkpoints, and wall-clock
 * timings.  Events are committed one tick at a time, in one transaction (or
 * a group of whole ticks in one, coh_journal_group_begin): a run killed at
 * any point (kill -9 included) leaves the journal at the end of its last
 * committed tick, never in the middle of one.  A run's journal is written
 * by its own thread (cohort/jwriter.h).
 *
 * The chain.  Every record that matters is on one SHA-256 hash chain, in
 * this order: the genesis, then for each tick one record of all its events,
 * its checkpoints (in the order they were stored), and a tick record.  The
 * ticks row stores the chain value after the events record
 * (ticks.events_chain) and after the tick record (ticks.chain); each
 * checkpoints row the value after it.  Integers are little-endian 64-bit,
 * strings NUL-terminated, every step starts with a one-byte record type:
 *   genesis    = SHA256("cohort-journal-5\0" || 'G' || len || inputs ||
 *                       n_blobs || sorted 32-byte blob keys)
 *   events     = SHA256(prev || 'E' || tick || first_seq || n_events ||
 *                       len || events)
 *   checkpoint = SHA256(prev || 'C' || tick || n || agent || len || state)
 *   tick       = SHA256(prev || 'T' || tick || last_seq || n_checkpoints)
 * where `events` is the tick's events in seq order, back to back, each
 *   kind || source || target || uvarint(payload_len) || payload
 * (strings NUL-terminated, uvarint = unsigned LEB128 of at most 10 bytes):
 * the bytes ticks.events stores as one zstd frame (since format 5), so a
 * tick is one row and one hash step however many events it has; the chain
 * hashes the uncompressed bytes, so no digest depends on zstd.  first_seq is one after the previous
 * tick's last seq; a tick with no events still has its events record
 * (n_events 0, len 0).
 * The run digest is the chain value of the last tick record (the genesis
 * if no tick was committed).  Wall-clock columns (wall_us, ticks.walls) and
 * meta other than "inputs" are outside the chain.
 * A checkpoint's agent is an agent id ([A-Za-z0-9_.-], cohort/scenario.h)
 * or the reserved COH_JOURNAL_ORCH_CHECKPOINT, which no agent can have: the
 * orchestrator's own state at that tick (format COHORCH2, cohort/orch.h),
 * stored after the tick's agent checkpoints, so that what `resume` restores
 * is on the chain like every agent checkpoint (since format 3; format 2 kept
 * it in meta, outside the chain).  Format 4 stores a tick's events as one
 * row, format 5 compresses that row; open() refuses format 4 and older,
 * naming both versions.  docs/journal.md says what this
 * proves and what it does not.
 *
 * Threading: one thread at a time per journal handle.
 */
#ifndef COHORT_JOURNAL_H
#define COHORT_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The journal format (tables and chain); recorded in every journal and in
 * every run's genesis record.  open() refuses any other version. */
#define COH_JOURNAL_FORMAT_VERSION 5

/* The checkpoint "agent" that holds the orchestrator's resume state: '@' is
 * not an id character, so no agent has this id. */
#define COH_JOURNAL_ORCH_CHECKPOINT "@orchestrator"

typedef struct coh_journal coh_journal;

/* Frees memory cohort returned (also declared in cohort/tokenizer.h). */
void coh_free(void *ptr);

/* One event, as appended or as read back.  Strings and payload are borrowed
 * (for reads: valid only during the callback). */
typedef struct coh_jevent {
  int64_t seq;          /* assigned by append (1, 2, ...) */
  int64_t tick;
  const char *kind;     /* e.g. "message", "emit", "log", "llm_request",
                           "llm_result", "timer", "trap", "refused", "exit" */
  const char *source;   /* agent id, "scenario", or a model name */
  const char *target;   /* agent id or "" */
  const void *payload;
  size_t payload_len;
  int64_t wall_us;      /* wall-clock microseconds since run start; not hashed */
  uint8_t chain[32];    /* read: the chain after its tick's events record
                           (shared by the tick's events); append: zero */
} coh_jevent;

/* Creates a new journal at path (refuses an existing file: COH_EIO naming
 * it) and records `inputs` (borrowed; the canonical description of the
 * run's inputs, e.g. JSON) as meta "inputs" and as the chain's start.
 * *out: caller frees with coh_journal_close. */
int coh_journal_create(const char *path, const void *inputs, size_t inputs_len,
                       coh_journal **out, coh_err *err);

/* Same, and also writes n_meta extra meta entries (keys[i] → values[i],
 * lens[i] bytes; all borrowed) in the same transaction: a journal either
 * does not exist or holds all of them.  The journal is built under
 * "PATH.creating" and linked into place when complete, so a process killed
 * during creation leaves no journal at PATH. */
int coh_journal_create_meta(const char *path, const void *inputs,
                            size_t inputs_len, const char *const *keys,
                            const void *const *values, const size_t *lens,
                            size_t n_meta, coh_journal **out, coh_err *err);

/* A blob to store at creation: its key is the SHA-256 of its bytes. */
typedef struct coh_jblob {
  const void *bytes; /* borrowed */
  size_t len;
} coh_jblob;

/* Everything a journal holds from its creation on (all borrowed). */
typedef struct coh_journal_init {
  const void *inputs;          /* the genesis record (e.g. JSON) */
  size_t inputs_len;
  const char *const *meta_keys; /* extra meta, not in the chain */
  const void *const *meta_values;
  const size_t *meta_lens;
  size_t n_meta;
  const coh_jblob *blobs;      /* content-addressed, in the genesis; equal
                                  blobs are stored once */
  size_t n_blobs;
} coh_journal_init;

/* Creates a journal holding init's inputs, meta and blobs, all in one
 * transaction, built under "PATH.creating" and linked into place when
 * complete (see create_meta).  The meta keys "format", "schema_version",
 * "inputs" and "genesis" are the journal's own: COH_EINVAL. */
int coh_journal_create_init(const char *path, const coh_journal_init *init,
                            coh_journal **out, coh_err *err);

/* The bytes of the blob whose SHA-256 is sha256, checked against it.
 * *bytes: caller frees with coh_free.  COH_ENOENT if there is none,
 * COH_EJOURNAL if its bytes do not hash to its key. */
int coh_journal_blob_get(coh_journal *j, const uint8_t sha256[32],
                         uint8_t **bytes, size_t *len, coh_err *err);

/* Opens an existing journal for reading and appending.  Errors:
 * COH_ENOENT, COH_EJOURNAL (empty, not a SQLite file, truncated, not a
 * cohort journal, schema version, missing tables or columns — the message
 * says which).  Checks structure only: the chain state is taken from the
 * last ticks row as stored; coh_journal_verify checks it.  Every command
 * that trusts a journal verifies it first (resume: what it reads,
 * coh_journal_verify_from). */
int coh_journal_open(const char *path, coh_journal **out, coh_err *err);

void coh_journal_close(coh_journal *j);

/* Key/value run metadata outside the chain (e.g. a run's status).  Inside
 * an open tick the write belongs to that tick's transaction.  The keys
 * "format", "schema_version", "inputs" and "genesis" are the journal's own:
 * COH_EINVAL. */
int coh_journal_meta_put(coh_journal *j, const char *key, const void *value,
                         size_t len, coh_err *err);
/* *value: caller frees with coh_free (NUL-terminated for convenience).
 * COH_ENOENT if the key is absent. */
int coh_journal_meta_get(coh_journal *j, const char *key, char **value,
                         size_t *len, coh_err *err);

/* Starts tick `tick` (must be greater than the last committed tick). */
int coh_journal_tick_begin(coh_journal *j, int64_t tick, coh_err *err);
/* Appends an event to the open tick (copied: nothing of ev is kept);
 * ev->seq is filled, ev->chain zeroed (it is known when the tick commits:
 * coh_journal_events_chain).
 * ev->tick must equal the open tick (COH_EINVAL); a NULL target is "".
 * COH_ESTATE outside a tick or after the tick's first checkpoint.  After a
 * failure, roll the tick back. */
int coh_journal_append(coh_journal *j, coh_jevent *ev, coh_err *err);
/* Stores an agent checkpoint taken at the end of the open tick, after its
 * events, on the chain.  One per agent and tick (a second: COH_EINVAL). */
int coh_journal_checkpoint_put(coh_journal *j, const char *agent,
                               const void *state, size_t len, coh_err *err);
/* Commits the open tick atomically: events, checkpoints and a ticks row
 * holding the tick record's chain and the wall-clock duration (not
 * hashed). */
int coh_journal_tick_commit(coh_journal *j, int64_t wall_us, coh_err *err);
/* The chain value after the events record of the last committed tick: the
 * `chain` of each of its events (a tick's events share it; see "The
 * chain").  All zero before the first tick. */
void coh_journal_events_chain(const coh_journal *j, uint8_t out[32]);
/* Abandons the open tick (nothing of it is kept); inside a group, the whole
 * group (see group_begin). */
void coh_journal_tick_rollback(coh_journal *j);

/* Group commit: several ticks in one transaction (the journal writer,
 * cohort/jwriter.h, uses it to take the commit off the per-tick path).
 * Between group_begin and group_commit, every tick_begin/tick_commit pair
 * writes its tick's rows and advances the handle (digest, last tick) but
 * does not commit; group_commit commits every tick of the group at once,
 * so a process killed at any point still leaves whole ticks only.  A
 * failure inside the group (or tick_rollback, or group_rollback) abandons
 * every tick of the group and returns the handle to the state at
 * group_begin.  COH_ESTATE: group_begin with a tick or group open,
 * group_commit with a tick open or no group. */
int coh_journal_group_begin(coh_journal *j, coh_err *err);
int coh_journal_group_commit(coh_journal *j, coh_err *err);
void coh_journal_group_rollback(coh_journal *j);

/* Last committed tick (-1 if none) and the number of events through it,
 * read from the file (so a reader sees a live writer's progress). */
int coh_journal_last_tick(coh_journal *j, int64_t *tick, int64_t *n_events,
                          coh_err *err);

/* The current digest: hex of the last committed tick record's chain (or of
 * the genesis); hex must hold 65 bytes. */
void coh_journal_digest(const coh_journal *j, char hex[65]);

/* Calls fn for every event with from_tick <= tick <= to_tick (use
 * INT64_MIN/INT64_MAX for no bound) and, if agent is non-NULL, source or
 * target equal to it, in seq order.  fn returning non-zero stops the walk
 * (that value is returned).  fn must not start another walk (events,
 * checkpoints, verify) on the same handle: COH_ESTATE.  A row of the wrong
 * type (a damaged file) stops the walk with COH_EJOURNAL naming its seq. */
typedef int (*coh_jevent_fn)(void *ud, const coh_jevent *ev);
int coh_journal_events(coh_journal *j, int64_t from_tick, int64_t to_tick,
                       const char *agent, coh_jevent_fn fn, void *ud,
                       coh_err *err);

/* Calls fn for every committed tick in order: its number, the seq of its
 * last event and its wall-clock duration in microseconds (not hashed).  fn
 * returning non-zero stops the walk (that value is returned); fn must not
 * start another walk (COH_ESTATE).  A non-integer column (a damaged file):
 * COH_EJOURNAL. */
typedef int (*coh_jtick_fn)(void *ud, int64_t tick, int64_t last_seq,
                            int64_t wall_us);
int coh_journal_ticks(coh_journal *j, coh_jtick_fn fn, void *ud, coh_err *err);

/* The latest tick <= at_most that has checkpoints (-1 if none), and a walk
 * over the checkpoints of that tick (agent id, state). */
int coh_journal_checkpoint_tick(coh_journal *j, int64_t at_most,
                                int64_t *tick, coh_err *err);
/* The latest tick <= at_most that has a checkpoint of `agent` (-1 if
 * none); e.g. of COH_JOURNAL_ORCH_CHECKPOINT, for resume. */
int coh_journal_checkpoint_tick_of(coh_journal *j, const char *agent,
                                   int64_t at_most, int64_t *tick,
                                   coh_err *err);
typedef int (*coh_jcheckpoint_fn)(void *ud, const char *agent,
                                  const void *state, size_t len);
int coh_journal_checkpoints(coh_journal *j, int64_t tick,
                            coh_jcheckpoint_fn fn, void *ud, coh_err *err);

/* Recomputes the whole chain: the genesis against meta "genesis", every
 * blob against its key, then every event, checkpoint and tick record.
 * COH_OK if every stored value matches, else COH_EJOURNAL naming the first
 * bad record as "table T, <row>, tick N".  Also checks that seqs are
 * contiguous, that each event lies in the tick whose ticks row covers its
 * seq, and that no event or checkpoint lies outside a committed tick (so a
 * deleted ticks row is found).  Removing whole trailing ticks is not
 * detectable from the file alone; compare the digest with one kept
 * elsewhere.  On success the handle's digest is the verified one.
 * COH_ESTATE with a tick open. */
int coh_journal_verify(coh_journal *j, coh_err *err);

/* The same checks for what a resume from a checkpoint at tick `from` reads:
 * the genesis and every blob, then the ticks and checkpoints from tick
 * `from` on, recomputed from the stored chain of the last ticks row before
 * `from` (that row's chain and last seq are taken as stored; the rows
 * before it are not read, so the cost is bounded by what lies after
 * `from`, not by the length of the run).  A row before `from` that was
 * changed is not found: coh_journal_verify (`inspect --verify`) audits the
 * whole file.  from = INT64_MIN is coh_journal_verify. */
int coh_journal_verify_from(coh_journal *j, int64_t from, coh_err *err);

/* The first tick from which this handle's rows have been verified (the
 * smallest `from` that passed): INT64_MIN for all of them (and for a
 * journal this handle created), INT64_MAX for none (an opened journal not
 * verified yet). */
int64_t coh_journal_verified_from(const coh_journal *j);

/* Deletes every event, checkpoint and tick row with tick > tick (used by
 * resume to continue from a checkpoint), in one transaction; the digest and
 * last tick then are those of tick `tick`.  COH_ESTATE with a tick open. */
int coh_journal_truncate_after(coh_journal *j, int64_t tick, coh_err *err);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_JOURNAL_H */
