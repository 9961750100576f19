/*
 * sink_journal.c — the journal writer (cohort/jwriter.h) as a tick-machine
 * sink (cohort/orch.h): ticks from first_tick on are written by the writer
 * thread, which is started at the first of them (a resume's comparison
 * phase reads the journal on the tick loop's thread, so the writer must not
 * hold it before), and whose durable events go to `report`.
 */
#include <string.h>

#include "cohort/orch.h"
#include "util/util_int.h"

typedef struct jsink {
  coh_journal *j;
  int64_t first_tick;
  coh_jwriter_opts wo;
  coh_jwriter *w;
  int building;           /* a tick begun and not ended */
} jsink;

static int js_tick_begin(void *ud, int64_t tick, int *active, coh_err *err) {
  jsink *s = ud;
  int rc;
  if (tick < s->first_tick) {
    *active = 0;
    return COH_OK;
  }
  if (s->w == NULL && (rc = coh_jwriter_start(s->j, &s->wo, &s->w, err))) return rc;
  /* blocks while the writer's queue is full (backpressure) */
  if ((rc = coh_jwriter_tick_begin(s->w, tick, err))) return rc;
  s->building = 1;
  return COH_OK;
}

static int js_event(void *ud, const coh_jevent *ev, coh_err *err) {
  return coh_jwriter_event(((jsink *)ud)->w, ev, err);
}

static int js_checkpoint(void *ud, const char *agent, const void *state, size_t len,
                         coh_err *err) {
  return coh_jwriter_checkpoint(((jsink *)ud)->w, agent, state, len, err);
}

/* The orchestrator's resume state is the tick's last checkpoint, of the
 * reserved id COH_JOURNAL_ORCH_CHECKPOINT: on the chain, and durable
 * exactly when the tick and its agent checkpoints are. */
static int js_resume_state(void *ud, const void *state, size_t len, coh_err *err) {
  return coh_jwriter_checkpoint(((jsink *)ud)->w, COH_JOURNAL_ORCH_CHECKPOINT, state, len, err);
}

static int js_tick_end(void *ud, int64_t tick, int64_t wall_us, coh_err *err) {
  jsink *s = ud;
  (void)tick;
  s->building = 0;
  return coh_jwriter_tick_end(s->w, wall_us, err);
}

/* A tick begun and never ended (another sink stopped the run in it) is
 * dropped: nothing of it is written. */
static int js_flush(void *ud, coh_err *err) {
  jsink *s = ud;
  if (s->w == NULL) return COH_OK;
  if (s->building) coh_jwriter_tick_abandon(s->w);
  s->building = 0;
  return coh_jwriter_flush(s->w, err);
}

/* A failed tick was never queued; the ticks queued before it are whole and
 * are written (and reported) before the writer ends. */
static int js_close(void *ud, int failed, coh_err *err) {
  jsink *s = ud;
  int rc = COH_OK;
  if (s->w) rc = coh_jwriter_stop(s->w, err);
  if (failed || rc) coh_journal_tick_rollback(s->j);
  coh__free(s);
  return rc;
}

int coh_sim_journal_sink(coh_journal *j, int64_t first_tick, const coh_jwriter_opts *wo,
                         coh_run_event_fn report, void *report_ud, coh_sim_sink *out,
                         coh_err *err) {
  jsink *s;
  memset(out, 0, sizeof *out);
  if (j == NULL) return coh__err(err, COH_EINVAL, "journal sink: no journal");
  s = coh__calloc(1, sizeof *s);
  if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  s->j = j;
  s->first_tick = first_tick;
  if (wo) s->wo = *wo;
  s->wo.report = report;
  s->wo.report_ud = report_ud;
  out->name = "journal";
  out->ud = s;
  out->tick_begin = js_tick_begin;
  out->event = js_event;
  out->checkpoint = js_checkpoint;
  out->resume_state = js_resume_state;
  out->tick_end = js_tick_end;
  out->flush = js_flush;
  out->close = js_close;
  return COH_OK;
}
