/*
 * writer.c — the journal writer thread (see cohort/jwriter.h for the
 * contract).
 *
 * Ticks travel in batches, one per tick, on one FIFO list in tick order:
 *
 *   head ... [durable] [durable] [writing ...] [queued ...] ... tail
 *                                 ^ next_write
 *
 * The producer appends at the tail and recycles durable batches from the
 * head (after reporting them); the writer takes the batches from
 * next_write on, writes them without the lock (no other thread touches a
 * batch between next_write and the end of its group), and marks them
 * durable.  One mutex guards the list, the counters and the error; two
 * condition variables wake the writer (work queued, or stop) and the
 * producer (a group became durable, or the writer failed).  The lock is
 * taken a few times per tick, never per event.
 *
 * A batch keeps its events' strings and payloads in one byte buffer, by
 * offset (the buffer may move while the tick is built), and is reused:
 * recycled batches keep their buffers, so a steady run allocates nothing
 * per tick.
 */
#include <pthread.h>
#include <string.h>

#include "cohort/jwriter.h"
#include "util/util_int.h"

enum { B_BUILDING, B_QUEUED, B_WRITING, B_DURABLE };

typedef struct wev {
  size_t kind, source, target, payload, payload_len; /* offsets into buf */
  int64_t wall_us, seq;
  uint8_t chain[32];
} wev;

typedef struct wck {
  size_t agent, state, len;
} wck;

typedef struct batch {
  struct batch *next;
  int state;
  int64_t tick, wall_us;
  wev *ev;
  size_t n_ev, cap_ev;
  wck *ck;
  size_t n_ck, cap_ck;
  char *buf;
  size_t len, cap;
} batch;

struct coh_jwriter {
  coh_journal *j;
  coh_jwriter_opts o;
  pthread_t thread;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  /* under mu */
  batch *head, *tail, *next_write;
  int stopping, failed;
  coh_err werr; /* the writer's first error */
  coh_jwriter_stats st;
  /* producer only */
  batch *building, *free_list;
  size_t n_free;
  int64_t last_tick; /* last tick given to tick_begin */
};

static void batch_free(batch *b) {
  if (b == NULL) return;
  coh__free(b->ev);
  coh__free(b->ck);
  coh__free(b->buf);
  coh__free(b);
}

/* Appends n bytes (and a NUL) to b's buffer; the offset, or SIZE_MAX. */
static size_t put(batch *b, const void *p, size_t n) {
  size_t off = b->len;
  if (n > SIZE_MAX / 2 - b->len - 1) return SIZE_MAX;
  if (b->len + n + 1 > b->cap) {
    size_t ncap = b->cap ? b->cap : 4096;
    char *nb;
    while (ncap < b->len + n + 1) ncap *= 2;
    if ((nb = coh__realloc(b->buf, ncap)) == NULL) return SIZE_MAX;
    b->buf = nb;
    b->cap = ncap;
  }
  if (n) memcpy(b->buf + off, p, n);
  b->buf[off + n] = '\0';
  b->len += n + 1;
  return off;
}

static void fill_event(const batch *b, const wev *e, coh_jevent *ev) {
  memset(ev, 0, sizeof *ev);
  ev->tick = b->tick;
  ev->kind = b->buf + e->kind;
  ev->source = b->buf + e->source;
  ev->target = b->buf + e->target;
  ev->payload = b->buf + e->payload;
  ev->payload_len = e->payload_len;
  ev->wall_us = e->wall_us;
  ev->seq = e->seq;
  memcpy(ev->chain, e->chain, 32);
}

/* ---- the writer thread ---------------------------------------------------- */

/* Writes n batches from first on as one group; on failure the group is
 * rolled back (the journal keeps earlier groups). */
static int write_group(coh_jwriter *w, batch *first, size_t n, coh_err *err) {
  coh_journal *j = w->j;
  batch *b = first;
  size_t i, k;
  int rc;
  if ((rc = coh_journal_group_begin(j, err))) return rc;
  for (i = 0; i < n; i++) {
    /* the last batch's next is the producer's to set (under the lock) */
    if (i > 0) b = b->next;
    if ((rc = coh_journal_tick_begin(j, b->tick, err))) goto fail;
    for (k = 0; k < b->n_ev; k++) {
      coh_jevent ev;
      fill_event(b, &b->ev[k], &ev);
      if ((rc = coh_journal_append(j, &ev, err))) goto fail;
      b->ev[k].seq = ev.seq;
    }
    for (k = 0; k < b->n_ck; k++)
      if ((rc = coh_journal_checkpoint_put(j, b->buf + b->ck[k].agent, b->buf + b->ck[k].state,
                                           b->ck[k].len, err)))
        goto fail;
    if ((rc = coh_journal_tick_commit(j, b->wall_us, err))) goto fail;
    if (b->n_ev > 0) { /* the tick's events share its events record */
      uint8_t ec[32];
      coh_journal_events_chain(j, ec);
      for (k = 0; k < b->n_ev; k++) memcpy(b->ev[k].chain, ec, 32);
    }
    if (i + 1 == n && w->o.before_commit) w->o.before_commit(w->o.hook_ud, b->tick);
  }
  if ((rc = coh_journal_group_commit(j, err))) goto fail;
  return COH_OK;
fail:
  coh_journal_group_rollback(j);
  return rc;
}

static void *writer_main(void *arg) {
  coh_jwriter *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    batch *first, *b;
    size_t n = 0, bytes = 0;
    int64_t last = -1;
    double t0;
    coh_err e;
    int rc;
    while (w->next_write == NULL && !w->stopping) pthread_cond_wait(&w->work, &w->mu);
    if (w->next_write == NULL) break; /* stopping, and nothing left */
    first = w->next_write;
    /* a group: what is queued, up to max_group ticks and, unless it is the
     * first, no tick that would take it past max_group_bytes — so a big
     * tick (checkpoints) is not bundled with the small ones before it, and
     * a failure there (disk full) does not take them down with it */
    for (b = first; b != NULL && n < w->o.max_group; b = b->next, n++) {
      if (n > 0 && bytes + b->len > w->o.max_group_bytes) break;
      bytes += b->len;
      b->state = B_WRITING;
      last = b->tick;
    }
    w->next_write = b;
    pthread_mutex_unlock(&w->mu);

    t0 = coh__wall_seconds();
    rc = write_group(w, first, n, &e);

    pthread_mutex_lock(&w->mu);
    w->st.write_seconds += coh__wall_seconds() - t0;
    if (rc) {
      w->failed = 1;
      w->werr = e;
      w->werr.code = rc;
      pthread_cond_broadcast(&w->done);
      break;
    }
    for (b = first; n > 0; b = b->next, n--) {
      b->state = B_DURABLE;
      w->st.ticks_written++;
    }
    w->st.durable_tick = last;
    w->st.groups++;
    pthread_cond_broadcast(&w->done);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* ---- the producer side ------------------------------------------------------ */

static int failed_err(coh_jwriter *w, coh_err *err) {
  if (err) *err = w->werr;
  return w->werr.code ? w->werr.code : COH_EJOURNAL;
}

/* Reports and recycles the durable batches at the head.  Called with mu
 * held; drops it around the reports. */
static void report_durable(coh_jwriter *w) {
  while (w->head && w->head->state == B_DURABLE) {
    batch *b = w->head;
    int64_t tick = b->tick;
    size_t k;
    w->head = b->next;
    if (w->head == NULL) w->tail = NULL;
    w->st.held_ticks--;
    w->st.held_bytes -= b->len;
    pthread_mutex_unlock(&w->mu);
    if (w->o.report)
      for (k = 0; k < b->n_ev; k++) {
        coh_jevent ev;
        fill_event(b, &b->ev[k], &ev);
        w->o.report(w->o.report_ud, &ev);
      }
    b->n_ev = b->n_ck = b->len = 0;
    b->next = NULL;
    if (w->n_free < w->o.max_ticks) {
      b->next = w->free_list;
      w->free_list = b;
      w->n_free++;
    } else {
      batch_free(b);
    }
    pthread_mutex_lock(&w->mu);
    w->st.reported_tick = tick;
  }
}

int coh_jwriter_start(coh_journal *j, const coh_jwriter_opts *o, coh_jwriter **out,
                      coh_err *err) {
  coh_jwriter *w;
  *out = NULL;
  if (j == NULL) return coh__err(err, COH_EINVAL, "journal writer: no journal");
  w = coh__calloc(1, sizeof *w);
  if (w == NULL) return coh__err(err, COH_ENOMEM, "journal writer: out of memory");
  if (o) w->o = *o;
  if (w->o.max_ticks == 0) w->o.max_ticks = 64;
  if (w->o.max_bytes == 0) w->o.max_bytes = (size_t)64 << 20;
  if (w->o.max_group == 0 || w->o.max_group > w->o.max_ticks) w->o.max_group = w->o.max_ticks;
  if (w->o.max_group_bytes == 0) w->o.max_group_bytes = (size_t)1 << 20;
  w->j = j;
  w->last_tick = -1;
  w->st.max_ticks = w->o.max_ticks;
  w->st.max_bytes = w->o.max_bytes;
  w->st.durable_tick = w->st.reported_tick = -1;
  if (pthread_mutex_init(&w->mu, NULL)) goto fail_mu;
  if (pthread_cond_init(&w->work, NULL)) goto fail_work;
  if (pthread_cond_init(&w->done, NULL)) goto fail_done;
  if (pthread_create(&w->thread, NULL, writer_main, w)) goto fail_thread;
  w->started = 1;
  *out = w;
  return COH_OK;
fail_thread:
  pthread_cond_destroy(&w->done);
fail_done:
  pthread_cond_destroy(&w->work);
fail_work:
  pthread_mutex_destroy(&w->mu);
fail_mu:
  coh__free(w);
  return coh__err(err, COH_ENOMEM, "journal writer: cannot start its thread");
}

int coh_jwriter_tick_begin(coh_jwriter *w, int64_t tick, coh_err *err) {
  batch *b;
  int waited = 0;
  double t0 = 0;
  if (w->building)
    return coh__err(err, COH_ESTATE, "journal writer: tick %lld is still being built",
                    (long long)w->building->tick);
  if (tick <= w->last_tick)
    return coh__err(err, COH_EINVAL, "journal writer: tick %lld is not after tick %lld",
                    (long long)tick, (long long)w->last_tick);
  pthread_mutex_lock(&w->mu);
  for (;;) {
    report_durable(w);
    if (w->failed) break;
    if (w->st.held_ticks < w->o.max_ticks &&
        (w->st.held_bytes < w->o.max_bytes || w->st.held_ticks == 0))
      break;
    if (!waited) {
      waited = 1;
      t0 = coh__wall_seconds();
      w->st.waits++;
    }
    w->st.producer_waiting = 1;
    pthread_cond_wait(&w->done, &w->mu);
  }
  w->st.producer_waiting = 0;
  if (waited) w->st.wait_seconds += coh__wall_seconds() - t0;
  if (w->failed) {
    int rc = failed_err(w, err);
    pthread_mutex_unlock(&w->mu);
    return rc;
  }
  pthread_mutex_unlock(&w->mu);
  if ((b = w->free_list) != NULL) {
    w->free_list = b->next;
    w->n_free--;
  } else if ((b = coh__calloc(1, sizeof *b)) == NULL) {
    return coh__err(err, COH_ENOMEM, "journal writer: out of memory");
  }
  b->next = NULL;
  b->state = B_BUILDING;
  b->tick = tick;
  b->n_ev = b->n_ck = b->len = 0;
  w->building = b;
  w->last_tick = tick;
  return COH_OK;
}

int coh_jwriter_event(coh_jwriter *w, const coh_jevent *ev, coh_err *err) {
  batch *b = w->building;
  wev *e;
  if (b == NULL) return coh__err(err, COH_ESTATE, "journal writer: event outside a tick");
  if (ev->kind == NULL || ev->source == NULL || (ev->payload == NULL && ev->payload_len > 0))
    return coh__err(err, COH_EINVAL, "journal writer: event with NULL kind, source or payload");
  if (ev->tick != b->tick)
    return coh__err(err, COH_EINVAL, "journal writer: event for tick %lld in tick %lld",
                    (long long)ev->tick, (long long)b->tick);
  if (b->n_ck > 0)
    return coh__err(err, COH_ESTATE, "journal writer: event in tick %lld after its checkpoints",
                    (long long)b->tick);
  if (b->n_ev == b->cap_ev) {
    size_t ncap = b->cap_ev ? b->cap_ev * 2 : 64;
    wev *n = coh__realloc(b->ev, ncap * sizeof *n);
    if (n == NULL) return coh__err(err, COH_ENOMEM, "journal writer: out of memory");
    b->ev = n;
    b->cap_ev = ncap;
  }
  e = &b->ev[b->n_ev];
  e->kind = put(b, ev->kind, strlen(ev->kind));
  e->source = put(b, ev->source, strlen(ev->source));
  e->target = put(b, ev->target ? ev->target : "", ev->target ? strlen(ev->target) : 0);
  e->payload = put(b, ev->payload_len ? ev->payload : "", ev->payload_len);
  if (e->kind == SIZE_MAX || e->source == SIZE_MAX || e->target == SIZE_MAX ||
      e->payload == SIZE_MAX)
    return coh__err(err, COH_ENOMEM, "journal writer: out of memory");
  e->payload_len = ev->payload_len;
  e->wall_us = w->o.zero_wall_us ? 0 : ev->wall_us;
  e->seq = 0;
  b->n_ev++;
  return COH_OK;
}

int coh_jwriter_checkpoint(coh_jwriter *w, const char *agent, const void *state, size_t len,
                           coh_err *err) {
  batch *b = w->building;
  wck *c;
  if (b == NULL) return coh__err(err, COH_ESTATE, "journal writer: checkpoint outside a tick");
  if (agent == NULL || (state == NULL && len > 0))
    return coh__err(err, COH_EINVAL, "journal writer: checkpoint with NULL agent or state");
  if (b->n_ck == b->cap_ck) {
    size_t ncap = b->cap_ck ? b->cap_ck * 2 : 16;
    wck *n = coh__realloc(b->ck, ncap * sizeof *n);
    if (n == NULL) return coh__err(err, COH_ENOMEM, "journal writer: out of memory");
    b->ck = n;
    b->cap_ck = ncap;
  }
  c = &b->ck[b->n_ck];
  c->agent = put(b, agent, strlen(agent));
  c->state = put(b, len ? state : "", len);
  if (c->agent == SIZE_MAX || c->state == SIZE_MAX)
    return coh__err(err, COH_ENOMEM, "journal writer: out of memory");
  c->len = len;
  b->n_ck++;
  return COH_OK;
}

int coh_jwriter_tick_end(coh_jwriter *w, int64_t wall_us, coh_err *err) {
  batch *b = w->building;
  int rc = COH_OK;
  if (b == NULL) return coh__err(err, COH_ESTATE, "journal writer: no tick to end");
  b->wall_us = w->o.zero_wall_us ? 0 : wall_us;
  w->building = NULL;
  pthread_mutex_lock(&w->mu);
  if (w->failed) {
    rc = failed_err(w, err);
    pthread_mutex_unlock(&w->mu);
    batch_free(b);
    return rc;
  }
  b->state = B_QUEUED;
  if (w->tail) w->tail->next = b;
  else w->head = b;
  w->tail = b;
  if (w->next_write == NULL) w->next_write = b;
  w->st.held_ticks++;
  w->st.held_bytes += b->len;
  if (w->st.held_ticks > w->st.peak_ticks) w->st.peak_ticks = w->st.held_ticks;
  if (w->st.held_bytes > w->st.peak_bytes) w->st.peak_bytes = w->st.held_bytes;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

void coh_jwriter_tick_abandon(coh_jwriter *w) {
  batch *b = w->building;
  if (b == NULL) return;
  w->building = NULL;
  b->next = w->free_list;
  w->free_list = b;
  w->n_free++;
}

int coh_jwriter_drain(coh_jwriter *w, coh_err *err) {
  int rc = COH_OK;
  pthread_mutex_lock(&w->mu);
  report_durable(w);
  if (w->failed) rc = failed_err(w, err);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int coh_jwriter_flush(coh_jwriter *w, coh_err *err) {
  int rc = COH_OK;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    report_durable(w);
    if (w->failed || w->head == NULL) break;
    pthread_cond_wait(&w->done, &w->mu);
  }
  if (w->failed) rc = failed_err(w, err);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int coh_jwriter_stop(coh_jwriter *w, coh_err *err) {
  int rc;
  batch *b;
  if (w == NULL) return COH_OK;
  coh_jwriter_tick_abandon(w);
  rc = coh_jwriter_flush(w, err);
  pthread_mutex_lock(&w->mu);
  w->stopping = 1;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->mu);
  if (w->started) pthread_join(w->thread, NULL);
  /* after a failure, what was queued behind it is dropped unreported */
  while ((b = w->head) != NULL) {
    w->head = b->next;
    batch_free(b);
  }
  while ((b = w->free_list) != NULL) {
    w->free_list = b->next;
    batch_free(b);
  }
  pthread_cond_destroy(&w->done);
  pthread_cond_destroy(&w->work);
  pthread_mutex_destroy(&w->mu);
  coh__free(w);
  return rc;
}

void coh_jwriter_stats_get(coh_jwriter *w, coh_jwriter_stats *st) {
  pthread_mutex_lock(&w->mu);
  *st = w->st;
  pthread_mutex_unlock(&w->mu);
}
