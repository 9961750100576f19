/*
 * cohort/jwriter.h — the journal writer: a thread that takes committed ticks
 * off the tick loop and writes them to a journal (cohort/journal.h).
 *
 * The producer (the orchestrator thread) builds each committed tick —
 * tick_begin, its events and checkpoints, tick_end — into a batch (a copy:
 * the caller's buffers are free again at once); tick_end queues it.  The writer thread
 * takes every tick queued so far (at most max_group ticks and about
 * max_group_bytes), writes them in one
 * SQLite transaction (coh_journal_group_begin/commit: group commit in WAL
 * mode) and hashes the chain as it goes; the chain and the digest are
 * exactly those of a tick-by-tick coh_journal_append.  A tick is *durable*
 * once its group's COMMIT returned: a process killed after that point (kill
 * -9 included) keeps it, one killed before keeps none of the group.
 *
 * Reporting.  Events of durable ticks are handed to `report` on the
 * producer's thread, in commit order, with seq and chain filled in — from
 * tick_begin, drain, flush and stop.  So whatever a caller prints or shows
 * from `report` is already on disk: a kill -9 loses only ticks that were
 * never reported.
 *
 * Backpressure.  At most max_ticks ticks, and max_bytes bytes of event and
 * checkpoint data, are held at once (queued, being written, or durable but
 * not yet reported).  tick_begin blocks while the queue is at either bound,
 * so a lagging disk stalls the tick loop instead of growing memory without
 * bound.  A single tick larger than max_bytes is still taken, alone: memory
 * stays below max_bytes plus twice the largest tick.
 *
 * Errors.  The first error of the writer thread (disk full, I/O) abandons
 * the group it was writing (the journal keeps the ticks of earlier groups:
 * whole ticks, consistent), stops the writer, and is returned by the
 * producer's next call.  Ticks queued after it are dropped, never reported.
 *
 * Threading: every function is called from one producer thread; the journal
 * handle belongs to the writer from start until stop returns and must not be
 * used meanwhile.  This is the first of the tick loop's sinks (issue 12): it
 * consumes committed ticks and reports back what is durable.
 */
#ifndef COHORT_JWRITER_H
#define COHORT_JWRITER_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"
#include "cohort/journal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coh_jwriter coh_jwriter;

/* An event of a durable tick (borrowed: valid during the call). */
typedef void (*coh_jwriter_report_fn)(void *ud, const coh_jevent *ev);

typedef struct coh_jwriter_opts {
  size_t max_ticks;  /* ticks held at once; 0: 64 */
  size_t max_bytes;  /* bytes of events and checkpoints held; 0: 64 MiB */
  size_t max_group;  /* ticks per transaction at most; 0: max_ticks */
  size_t max_group_bytes; /* a group takes no further tick past this many
                             bytes (a first tick always); 0: 1 MiB */
  coh_jwriter_report_fn report; /* may be NULL */
  void *report_ud;
  /* Tests only (may be NULL): called on the writer thread before each
   * group's COMMIT with the group's last tick; it may block, which makes
   * the disk lag on demand. */
  void (*before_commit)(void *ud, int64_t last_tick);
  void *hook_ud;
  /* Tests only: 1 journals 0 as every event's and tick's wall_us (and
   * reports it so) instead of the timing given.  wall_us is outside the
   * chain, so the digest is the same; what changes is that the journal's
   * bytes, and so the number of SQLite writes that make them, no longer
   * vary with timing: a timing's varint width changes row sizes and with
   * them how many pages a commit touches (test_fault_vfs counts writes). */
  int zero_wall_us;
} coh_jwriter_opts;

typedef struct coh_jwriter_stats {
  size_t held_ticks, held_bytes;   /* now */
  size_t peak_ticks, peak_bytes;   /* the most held at once */
  size_t max_ticks, max_bytes;     /* the bounds in force */
  int64_t durable_tick;            /* last durable tick, -1 none */
  int64_t reported_tick;           /* last tick handed to report, -1 none */
  uint64_t groups;                 /* transactions committed */
  uint64_t ticks_written;
  uint64_t waits;                  /* tick_begin calls that blocked */
  double wait_seconds;             /* producer time spent blocked */
  double write_seconds;            /* writer time spent writing */
  int producer_waiting;            /* 1 while tick_begin is blocked */
} coh_jwriter_stats;

/* Starts the writer thread on journal j (borrowed; must outlive the writer;
 * no tick or group may be open).  o may be NULL (defaults).  *out: caller
 * ends it with coh_jwriter_stop.  COH_ENOMEM, COH_EINVAL. */
int coh_jwriter_start(coh_journal *j, const coh_jwriter_opts *o,
                      coh_jwriter **out, coh_err *err);

/* Starts building tick `tick` (greater than the last one given).  Reports
 * durable ticks, then blocks while the bounds are reached (backpressure).
 * Returns the writer's error if it failed; COH_ESTATE if a tick is being
 * built. */
int coh_jwriter_tick_begin(coh_jwriter *w, int64_t tick, coh_err *err);
/* Adds an event to the tick being built (copied; ev->seq and ev->chain are
 * ignored: the writer assigns them).  ev->tick must be the tick's
 * (COH_EINVAL); NULL target is "".  COH_ESTATE after a checkpoint. */
int coh_jwriter_event(coh_jwriter *w, const coh_jevent *ev, coh_err *err);
/* Adds an agent checkpoint (copied) after the tick's events. */
int coh_jwriter_checkpoint(coh_jwriter *w, const char *agent,
                           const void *state, size_t len, coh_err *err);
/* Queues the tick being built (wall_us: its duration, not hashed).  Does
 * not wait for the disk. */
int coh_jwriter_tick_end(coh_jwriter *w, int64_t wall_us, coh_err *err);
/* Drops the tick being built (nothing of it is written). */
void coh_jwriter_tick_abandon(coh_jwriter *w);

/* Reports every tick durable so far; never blocks.  Returns the writer's
 * error if it failed. */
int coh_jwriter_drain(coh_jwriter *w, coh_err *err);
/* Waits until every queued tick is durable (or the writer failed), and
 * reports them. */
int coh_jwriter_flush(coh_jwriter *w, coh_err *err);
/* Abandons a tick being built, flushes, ends the thread and frees w; the
 * journal handle is the caller's again, its digest that of the last durable
 * tick.  Returns the writer's first error (w is freed either way). */
int coh_jwriter_stop(coh_jwriter *w, coh_err *err);

void coh_jwriter_stats_get(coh_jwriter *w, coh_jwriter_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_JWRITER_H */
