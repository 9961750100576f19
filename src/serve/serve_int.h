/*
 * serve_int.h — the server's internals shared by serve.c (lifecycle and the
 * serve loop, the one thread that owns the engines) and serve_http.c
 * (civetweb's threads: the OpenAI API, request checking and responses).
 *
 * Hand-off: an HTTP thread builds a job (parsed llm request, choices) and
 * queues it under s->lock; the serve loop admits queued jobs at the next
 * tick boundary, appends generated text to the job's choices under s->lock
 * and broadcasts job->cond; the HTTP thread reads what is new and writes it
 * out.  A job belongs to the serve loop from admission until it sets
 * job->done (under the lock); from then on only its HTTP thread touches it
 * and frees it.  A client that went away sets job->cancel; the loop cancels
 * its engine requests at the next tick.
 */
#ifndef COH_SERVE_INT_H
#define COH_SERVE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cohort/serve.h"
#include "util/util_int.h"

#define COH__SERVE_MAX_N 8           /* most choices per request ("n") */
#define COH__SERVE_MAX_TOP_LOGPROBS 20
#define COH__SERVE_MAX_DEPTH 64      /* deepest nesting of a request body */
#define COH__SERVE_MAX_PARTS 4096    /* most text parts of one message */

typedef struct coh__serve_model {
  coh_model *model;
  coh_engine *engine;
  const coh_tokenizer *tok;
  const coh_chat_template *chat;  /* the model's (NULL: plain format) */
  char *id;               /* the folder's base name */
  char fingerprint[40];   /* "fp_" + 12 hex of the model file + "-" version */
  char onnx_sha256[65];
  char *dir;              /* as given */
  int64_t context;
  int64_t vocab;
} coh__serve_model;

/* One generated token, for logprobs. */
typedef struct coh__serve_tok {
  int32_t id;
  float logprob;
  int n_top;
  int32_t top_id[COH__SERVE_MAX_TOP_LOGPROBS];
  float top_lp[COH__SERVE_MAX_TOP_LOGPROBS];
} coh__serve_tok;

struct coh__serve_job;

typedef struct coh__serve_choice {
  struct coh__serve_job *job;
  int index;
  uint64_t engine_id;
  int submitted;          /* loop only */
  /* under s->lock: */
  coh__buf text;          /* every byte streamed so far */
  size_t *piece_end;      /* end offsets of the streamed pieces (one per
                             token event that completed text) */
  size_t n_pieces, cap_pieces;
  coh__serve_tok *toks;   /* when the job wants logprobs */
  size_t n_toks, cap_toks;
  int32_t n_tokens;       /* tokens generated */
  int32_t *ids;           /* the generated ids (for the journal) */
  size_t cap_ids;
  coh_finish finish;      /* NONE while running */
} coh__serve_choice;

enum { COH__JOB_CHAT = 0, COH__JOB_COMPLETION = 1 };

typedef struct coh__serve_job {
  struct coh__serve_job *next; /* the admission queue */
  struct coh_serve *srv;
  int model;                   /* index into s->models */
  int kind;
  coh_llm_request lr;          /* parsed by the HTTP thread; the engine
                                  borrows its prompt and grammar */
  char *llm_text;              /* the llm request JSON lr was parsed from
                                  (journaled; replay parses it again) */
  int ids_given;               /* completions: the prompt came as ids */
  int n;                       /* choices */
  coh__serve_choice *choices;
  int logprobs, top_logprobs;  /* logprobs: 0 off, 1 on */
  uint64_t seed;
  uint64_t seq;                /* serve-wide sequence number from 1 */
  uint64_t tick_admitted;
  double t_arrive, t_first;    /* wall clock, metrics only */
  _Atomic int cancel;          /* set by the HTTP thread */
  int cancel_sent;             /* loop only */
  int done;                    /* under s->lock */
  int oom;                     /* under s->lock: an append failed */
  int notify;                  /* under s->lock: new tokens since the last
                                  wake-up (the loop wakes the reader once
                                  per tick, after the engine step) */
  int wake;                    /* loop only: notify taken, to broadcast */
  pthread_cond_t cond;
} coh__serve_job;

typedef struct coh__serve_metrics {
  uint64_t requests[6];        /* by status class: 2xx,4xx(not 429),429,5xx,... */
  uint64_t admitted, completed, cancelled, errors;
  uint64_t prompt_tokens, completion_tokens;
  uint64_t ttft_count;
  double ttft_sum;
  uint64_t ttft_bucket[10];    /* cumulative at the bounds in serve.c */
  double gen_seconds;          /* wall time of engine steps */
  uint64_t steps;
  int last_batch, max_batch;
} coh__serve_metrics;

struct coh_serve {
  coh_serve_options o;
  char *listen, *api_key;
  coh__serve_model models[COH_SERVE_MAX_MODELS];
  size_t n_models;
  struct mg_context *ctx;
  int port;
  char addr[16];
  _Atomic int mg_stopped;
  pthread_mutex_t lock;
  pthread_cond_t loop_cond;
  /* under lock: */
  coh__serve_job *in_head, *in_tail;  /* admission queue, arrival order */
  size_t n_waiting;   /* jobs queued or not yet holding engine slots */
  size_t n_open;      /* jobs accepted and not done */
  size_t n_active_slots;
  int stopping;
  int n_handlers;     /* HTTP handlers running (drain waits for 0) */
  pthread_cond_t idle_cond;
  uint64_t next_seq;
  uint64_t tick;
  coh__serve_metrics m;
  double ort_seconds, step_seconds;   /* engine stats, summed over models */
  /* loop only: */
  coh__serve_job **active;
  size_t n_active, cap_active;
  struct coh_journal *journal;  /* --journal, or NULL */
  int replaying;                /* coh_serve_replay: no HTTP, jobs retire
                                   into retired[] instead of to a waiter */
  coh__serve_job **retired;
  size_t n_retired, cap_retired;
  /* the events of the current tick (journal / replay comparison) */
  struct coh__serve_event *ev;
  size_t n_ev, cap_ev;
};

/* One journaled event of the serve loop: "serve_request" (admitted),
 * "serve_cancel" (its client left), "serve_result" (finished). */
typedef struct coh__serve_event {
  const char *kind;
  int model;
  uint64_t seq;
  char *payload;  /* JSON, owned */
} coh__serve_event;

/* serve.c: one tick of the serve loop (the tick machine). */
int coh__serve_tick(coh_serve *s);
/* The models and engines of a server, without HTTP (replay). */
int coh__serve_core_new(const coh_serve_options *o, coh_serve **out, coh_err *err);
/* serve_journal.c: the payloads, and the journal of a live server. */
char *coh__serve_request_payload(coh_serve *s, const coh__serve_job *job);
char *coh__serve_result_payload(coh_serve *s, const coh__serve_job *job);
int coh__serve_journal_create(coh_serve *s, const char *path, coh_err *err);
int coh__serve_journal_tick(coh_serve *s, coh_err *err);

/* serve_http.c: starts civetweb on s->listen (s->addr/s->port set). */
int coh__serve_http_start(coh_serve *s, coh_err *err);
void coh__serve_http_stop(coh_serve *s);
/* "ADDR:PORT" / "PORT" → dotted IPv4 and port; localhost → 127.0.0.1. */
int coh__serve_parse_listen(const char *s, char addr[16], int *port,
                            coh_err *err);

/* ---- serve_check.c: a request up to its admission, without sockets ---- */

/* What the server answers a request it refuses: the HTTP status and the
 * OpenAI error body's fields. */
typedef struct coh__serve_reply {
  int status;            /* 0: not refused */
  const char *type;      /* "invalid_request_error", "server_error" */
  const char *code;      /* static, or NULL (JSON null) */
  char param[128];       /* "" is JSON null */
  char msg[COH_ERRMSG_MAX + 256];
} coh__serve_reply;

/* The OpenAI error body {"error": {"message", "type", "param", "code"}}
 * (param, code: NULL is JSON null); bytes of msg or param that are not
 * UTF-8 become U+FFFD.  NULL when out of memory; caller json_decrefs. */
struct json_t;
struct json_t *coh__serve_error_json(const char *type, const char *param, const char *code,
                                     const char *msg);

enum {
  COH__ROUTE_UNKNOWN = 0,  /* 404 */
  COH__ROUTE_BAD_METHOD,   /* a known path with the wrong method: 405 */
  COH__ROUTE_HEALTH,       /* any method, before the key check */
  COH__ROUTE_METRICS,
  COH__ROUTE_MODELS,
  COH__ROUTE_MODEL,        /* GET /v1/models/ID */
  COH__ROUTE_CHAT,
  COH__ROUTE_COMPLETIONS
};
/* The route of method and path (borrowed); *model_id points into uri for
 * COH__ROUTE_MODEL, else NULL. */
int coh__serve_route_of(const char *method, const char *uri, const char **model_id);
/* 1 when hdr (may be NULL) is "Bearer KEY"; constant time in the length
 * of hdr. */
int coh__serve_bearer_ok(const char *key, const char *hdr);

/* Reads up to n bytes into buf: the count, 0 at the end, < 0 on error. */
typedef long (*coh__serve_read_fn)(void *ctx, char *buf, size_t n);
/* Reads a body of at most max bytes (content_length: the header's value,
 * -1 when absent): 0 with *body (NUL-terminated, caller frees with
 * coh__free) and *len, or 1 with *r (413, 500). */
int coh__serve_read_body(size_t max, long long content_length, coh__serve_read_fn rd, void *ctx,
                         char **body, size_t *len, coh__serve_reply *r);

/* A request that passed the checks. */
typedef struct coh__serve_checked {
  coh__serve_job *job;   /* owned by the caller: enqueue or free */
  int stream, include_usage;
} coh__serve_checked;
/* Checks the body (len bytes, borrowed) of a POST to /v1/chat/completions
 * (kind COH__JOB_CHAT) or /v1/completions against s->models (only their
 * id, tok, chat, context and vocab are read) and builds its job: the
 * OpenAI fields translated into an llm request, parsed with the model's
 * tokenizer and chat template, its max_tokens set.  drawn_seed is the seed
 * when the body gives none.  0 with out->job, or 1 with *r (400 naming
 * the field, 404 unknown model, 500 out of memory) and out->job NULL. */
int coh__serve_check_request(coh_serve *s, int kind, const char *body, size_t len,
                             uint64_t drawn_seed, coh__serve_checked *out, coh__serve_reply *r);

/* serve.c: queues job for admission (under s->lock): 0, or the HTTP status
 * to answer with (429 queue full, 503 draining). */
int coh__serve_enqueue(coh_serve *s, coh__serve_job *job);
/* serve_check.c: a new job for model: parses llm_text (copied) with seed; ids (n_ids,
 * copied; NULL: from the text) replace the prompt's tokens.  *out: free
 * with coh__serve_job_free, also after a failure (then *out may be NULL).
 * Errors: those of coh_llm_request_parse, COH_ENOMEM. */
int coh__serve_job_new(coh_serve *s, int model, int kind, int n, uint64_t seed,
                       const char *llm_text, const int32_t *ids, size_t n_ids,
                       coh__serve_job **out, coh_err *err);
/* Frees a job that is done or was never queued. */
void coh__serve_job_free(coh__serve_job *job);
/* Counts a response by status (metrics). */
void coh__serve_count_status(coh_serve *s, int status);
/* Writes the Prometheus text of the metrics into b. */
void coh__serve_metrics_text(coh_serve *s, coh__buf *b);

#endif /* COH_SERVE_INT_H */
