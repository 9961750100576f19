/*
 * cohort/serve.h — an OpenAI-compatible HTTP server over the inference
 * engine (`cohort serve`).
 *
 * The server is a long run whose inputs arrive over HTTP.  civetweb's
 * threads parse and check each request (OpenAI JSON → an llm request,
 * cohort/infer.h) and hand it to one serve loop through a bounded queue;
 * the serve loop is a small tick machine: at each tick boundary it admits
 * the requests that arrived (in arrival order) into the continuous-batching
 * engine of their model, applies cancellations (a client that went away),
 * and runs one engine step per busy model.  Because the engine is batch
 * invariant (docs/inference.md), a request's tokens depend only on its
 * model, prompt, parameters and seed — never on what else ran beside it.
 *
 * Example:
 *   coh_serve_options o; coh_serve_options_default(&o);
 *   const char *dirs[] = {"models/shakespeare"};
 *   o.model_dirs = dirs; o.n_models = 1; o.listen = "127.0.0.1:0";
 *   coh_serve *s; coh_err err;
 *   if (coh_serve_new(&o, &s, &err)) die(err.msg);
 *   printf("port %d\n", coh_serve_port(s));
 *   coh_serve_run(s, &err);        // until o.should_stop says so, drained
 *   coh_serve_free(s);
 *
 * Threading: coh_serve_run runs the serve loop on the calling thread, which
 * owns the models and engines; everything else is civetweb's threads.
 */
#ifndef COHORT_SERVE_H
#define COHORT_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"
#include "cohort/infer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most models one server holds. */
#define COH_SERVE_MAX_MODELS 16

typedef struct coh_serve_options {
  const char *const *model_dirs; /* borrowed; 1..COH_SERVE_MAX_MODELS */
  size_t n_models;
  const char *listen;   /* "ADDR:PORT" or "PORT" (port 0: any free port);
                           default "127.0.0.1:8080" */
  const char *api_key;  /* NULL: no key (then listen must be loopback);
                           else every /v1 request needs
                           "Authorization: Bearer KEY" */
  int max_batch;        /* requests decoded at once per model; default 16 */
  int max_queue;        /* requests waiting for a batch slot before 429;
                           default 256 */
  size_t max_body;      /* largest request body; default 4 MiB (413 above) */
  coh_device device;    /* default AUTO */
  int threads;          /* ONNX Runtime intra-op threads; 0: all cores */
  const char *journal;  /* NULL, or a new journal file (refuses an existing
                           one): every admitted request (tick, parameters,
                           seed), cancellation and result, on the journal's
                           hash chain (docs/serve.md) */
  /* Polled by the serve loop at every tick and while idle; non-zero starts
   * the drain: new requests get 503, the requests in flight finish, then
   * coh_serve_run returns.  NULL: never. */
  int (*should_stop)(void *ud);
  void *stop_ud;
  coh_log_fn log;       /* notices; NULL: stderr */
  void *log_user;
} coh_serve_options;

void coh_serve_options_default(coh_serve_options *o);

typedef struct coh_serve coh_serve;

/* Opens every model (fingerprinting its model file), creates one engine per
 * model and starts listening.  Model ids are the folders' base names, which
 * must differ.  *out: caller frees with coh_serve_free.  Errors: COH_EINVAL
 * (bad listen address, a non-loopback address without api_key, a bad limit,
 * duplicate model ids: named), the errors of coh_model_open (prefixed with
 * the folder), COH_EIO (cannot listen: why), COH_ENOMEM. */
int coh_serve_new(const coh_serve_options *o, coh_serve **out, coh_err *err);

/* The port the server listens on (the chosen one when listen asked for 0). */
int coh_serve_port(const coh_serve *s);
/* The dotted IPv4 address it listens on.  Borrowed: lives as long as s. */
const char *coh_serve_host(const coh_serve *s);

/* Runs the serve loop until should_stop, then drains (see above).  Returns
 * COH_OK after a clean drain. */
int coh_serve_run(coh_serve *s, coh_err *err);

/* Stops listening and frees everything.  s may be NULL. */
void coh_serve_free(coh_serve *s);

/* ---- replay of a served session ---------------------------------------------- */

typedef struct coh_serve_replay_report {
  uint64_t requests, results;   /* journaled ones re-executed / compared */
  int diverged;                 /* 1: see tick, seq and what */
  int64_t tick;
  uint64_t seq;                 /* the request whose result differs */
  char what[COH_ERRMSG_MAX];    /* the two results, shortened */
} coh_serve_replay_report;

/* Whether the journal at path (already verified by the caller, borrowed)
 * is a served session's: 1 yes, 0 no. */
struct coh_journal;
int coh_serve_journal_is(struct coh_journal *j);

/* Re-executes the served session in journal j (borrowed; verified by the
 * caller): opens the models the genesis names (checking their hashes),
 * admits every journaled request at its tick, applies every cancellation
 * at its tick, steps the engines as the serve loop did, and compares every
 * result with the journal's, in order.  The first difference stops it
 * (rep->diverged).  device/threads: as in coh_serve_options (threads 0:
 * the journaled count).  Errors: COH_EJOURNAL (a malformed serve event or
 * genesis: named), COH_EMODEL (a model file whose hash differs from the
 * journal's), the errors of coh_model_open, COH_ENOMEM. */
int coh_serve_replay(struct coh_journal *j, coh_device device, int threads,
                     coh_serve_replay_report *rep, coh_err *err);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_SERVE_H */
