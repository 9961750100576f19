/*
 * sink_compare.c — the replay comparator as a tick-machine sink
 * (cohort/orch.h): every committed event of a tick up to the reference
 * journal's last is compared with the journal's next event of that tick
 * (kind, source, target, payload); the first difference — a different
 * event, one too many, one missing at the end of the tick — is the
 * divergence, and stops the run.  Matching events are reported with the
 * journal's seq and chain.
 */
#include <stdio.h>
#include <string.h>

#include "cohort/orch.h"
#include "util/util_int.h"

typedef struct csink {
  coh_journal *j;
  int64_t last_tick;      /* the reference's last tick, -1: empty */
  int stop_at_end;
  coh_run_event_fn report;
  void *report_ud;
  coh_sim_divergence *div;
  const char *why;        /* the stop reason once one is asked for */
  /* the reference journal's events of the current tick */
  coh_jevent *ref;
  size_t n_ref, cap_ref, pos;
  int diverged;
} csink;

static void describe(char *buf, size_t n, const char *kind, const char *src,
                     const char *dst, const void *payload, size_t len) {
  snprintf(buf, n, "%s %s -> %s: %.*s", kind, src, dst[0] ? dst : "-",
           (int)(len > 300 ? 300 : len), (const char *)payload);
}

static void note_divergence(csink *c, int64_t tick, const char *agent, const char *expected,
                            const char *actual) {
  if (c->diverged) return;
  c->diverged = 1;
  c->why = "divergence";
  c->div->tick = tick;
  snprintf(c->div->agent, sizeof c->div->agent, "%s", agent);
  snprintf(c->div->expected, sizeof c->div->expected, "%s", expected);
  snprintf(c->div->actual, sizeof c->div->actual, "%s", actual);
}

/* Reference events of one tick are copied into one allocation each (kind,
 * source, target and payload back to back; freed through `kind`). */
static int ref_collect(void *ud, const coh_jevent *ev) {
  csink *c = ud;
  size_t kl = strlen(ev->kind) + 1, sl = strlen(ev->source) + 1, tl = strlen(ev->target) + 1;
  char *blob;
  coh_jevent *r;
  {
    coh_jevent *n = coh__grow(c->ref, &c->cap_ref, c->n_ref + 1, sizeof *n, 64);
    if (n == NULL) return COH_ENOMEM;
    c->ref = n;
  }
  blob = coh__malloc(kl + sl + tl + ev->payload_len + 1);
  if (blob == NULL) return COH_ENOMEM;
  r = &c->ref[c->n_ref++];
  *r = *ev;
  memcpy(blob, ev->kind, kl);
  memcpy(blob + kl, ev->source, sl);
  memcpy(blob + kl + sl, ev->target, tl);
  if (ev->payload_len) memcpy(blob + kl + sl + tl, ev->payload, ev->payload_len);
  blob[kl + sl + tl + ev->payload_len] = '\0';
  r->kind = blob;
  r->source = blob + kl;
  r->target = blob + kl + sl;
  r->payload = blob + kl + sl + tl;
  return 0;
}

static void ref_clear(csink *c) {
  size_t i;
  for (i = 0; i < c->n_ref; i++) coh__free((void *)c->ref[i].kind);
  c->n_ref = c->pos = 0;
}

static int cs_tick_begin(void *ud, int64_t tick, int *active, coh_err *err) {
  csink *c = ud;
  ref_clear(c);
  if (tick > c->last_tick) {
    *active = 0;
    if (c->stop_at_end) {
      c->why = "journal_end";
      return COH_SINK_STOP;
    }
    return COH_OK;
  }
  return coh_journal_events(c->j, tick, tick, NULL, ref_collect, c, err);
}

static int cs_event(void *ud, const coh_jevent *ev, coh_err *err) {
  csink *c = ud;
  char want[512], got[512];
  const coh_jevent *r;
  coh_jevent out;
  (void)err;
  if (c->diverged) return COH_SINK_STOP;
  describe(got, sizeof got, ev->kind, ev->source, ev->target, ev->payload, ev->payload_len);
  if (c->pos >= c->n_ref) {
    note_divergence(c, ev->tick, ev->source, "(no further event in this tick)", got);
    return COH_SINK_STOP;
  }
  r = &c->ref[c->pos];
  if (strcmp(r->kind, ev->kind) || strcmp(r->source, ev->source) ||
      strcmp(r->target, ev->target) || r->payload_len != ev->payload_len ||
      (ev->payload_len && memcmp(r->payload, ev->payload, ev->payload_len))) {
    describe(want, sizeof want, r->kind, r->source, r->target, r->payload, r->payload_len);
    note_divergence(c, ev->tick, ev->source, want, got);
    return COH_SINK_STOP;
  }
  c->pos++;
  if (c->report) {
    out = *ev;
    out.seq = r->seq;
    memcpy(out.chain, r->chain, sizeof out.chain);
    c->report(c->report_ud, &out);
  }
  return COH_OK;
}

/* An event of the reference that the tick did not produce. */
static int cs_tick_end(void *ud, int64_t tick, int64_t wall_us, coh_err *err) {
  csink *c = ud;
  (void)wall_us;
  (void)err;
  if (c->diverged) return COH_SINK_STOP;
  if (c->pos < c->n_ref) {
    const coh_jevent *r = &c->ref[c->pos];
    char want[512];
    describe(want, sizeof want, r->kind, r->source, r->target, r->payload, r->payload_len);
    note_divergence(c, tick, r->source, want, "(no such event in this tick)");
    return COH_SINK_STOP;
  }
  return COH_OK;
}

static const char *cs_why(void *ud) { return ((csink *)ud)->why; }

static int cs_close(void *ud, int failed, coh_err *err) {
  csink *c = ud;
  (void)failed;
  (void)err;
  ref_clear(c);
  coh__free(c->ref);
  coh__free(c);
  return COH_OK;
}

int coh_sim_compare_sink(coh_journal *j, int stop_at_end, coh_run_event_fn report,
                         void *report_ud, coh_sim_divergence *div, coh_sim_sink *out,
                         coh_err *err) {
  csink *c;
  int64_t n_events = 0;
  int rc;
  memset(out, 0, sizeof *out);
  if (j == NULL || div == NULL)
    return coh__err(err, COH_EINVAL, "compare sink: no journal or no divergence record");
  c = coh__calloc(1, sizeof *c);
  if (c == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  if ((rc = coh_journal_last_tick(j, &c->last_tick, &n_events, err))) {
    coh__free(c);
    return rc;
  }
  c->j = j;
  c->stop_at_end = stop_at_end;
  c->report = report;
  c->report_ud = report_ud;
  c->div = div;
  memset(div, 0, sizeof *div);
  div->tick = -1;
  out->name = "compare";
  out->ud = c;
  out->tick_begin = cs_tick_begin;
  out->event = cs_event;
  out->tick_end = cs_tick_end;
  out->stop_reason = cs_why;
  out->close = cs_close;
  return COH_OK;
}
