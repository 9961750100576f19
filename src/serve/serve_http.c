/*
 * serve_http.c — the OpenAI HTTP API of `cohort serve`, on civetweb (the
 * library the monitor uses, linked the same way: cmake/monitor.cmake).
 *
 * Each request runs on one of civetweb's threads: the body is read (at most
 * max_body bytes, else 413), the OpenAI JSON is checked field by field
 * (errors name the field in the OpenAI error body), translated into an llm
 * request (cohort/infer.h: the one chat renderer, tokenizer and
 * constrained decoding of the engine) and parsed on the HTTP thread, by
 * serve_check.c (no sockets there, so that tests/fuzz/fuzz_serve.c runs the
 * same code);
 * the job then goes to the serve loop (serve.c) through its bounded queue,
 * and this thread writes what the loop generates: one JSON response, or
 * Server-Sent Events in the chunk format of the OpenAI API.
 *
 * Error bodies: {"error": {"message", "type", "param", "code"}}, with the
 * statuses the official clients map to their error classes (400
 * BadRequestError, 401 AuthenticationError, 404 NotFoundError, 413, 429
 * RateLimitError, 5xx InternalServerError).
 */
#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serve_int.h"

/* ---- responses ----------------------------------------------------------------- */

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

static void send_body(coh_serve *s, struct mg_connection *conn, int status, const char *mime,
                      const char *extra, const char *body, size_t len) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
            status, reason(status), mime, len, extra ? extra : "");
  if (len) mg_write(conn, body, len);
  coh__serve_count_status(s, status);
}

static void send_json(coh_serve *s, struct mg_connection *conn, int status, json_t *v,
                      const char *extra) {
  char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
  if (text == NULL) {
    static const char oom[] =
        "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
        "\"code\":null}}";
    send_body(s, conn, 500, "application/json", NULL, oom, sizeof oom - 1);
  } else {
    send_body(s, conn, status, "application/json", extra, text, strlen(text));
    free(text);
  }
  json_decref(v);
}

/* The error body; param and code may be NULL (JSON null). */
static void send_error(coh_serve *s, struct mg_connection *conn, int status, const char *type,
                       const char *param, const char *code, const char *fmt, ...)
    COH__PRINTF(7, 8);
static void send_error(coh_serve *s, struct mg_connection *conn, int status, const char *type,
                       const char *param, const char *code, const char *fmt, ...) {
  char msg[COH_ERRMSG_MAX + 256];
  va_list ap;
  json_t *e;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  e = coh__serve_error_json(type, param, code, msg);
  send_json(s, conn, status, e,
            status == 401 ? "WWW-Authenticate: Bearer realm=\"cohort\"\r\n" : NULL);
}

/* A JSON string of len bytes of generated text: invalid UTF-8 (a character
 * cut at max_tokens) becomes U+FFFD, so the body is always valid JSON. */
static json_t *text_string(const char *p, size_t len) {
  coh__buf b = {0};
  json_t *v;
  coh__buf_add_utf8_lossy(&b, p, len);
  if (b.oom) {
    coh__buf_free(&b);
    return NULL;
  }
  v = json_stringn(b.p ? b.p : "", b.n);
  coh__buf_free(&b);
  return v;
}

static uint64_t draw_seed(void) {
  uint64_t v = 0;
  size_t got = 0;
  int tries = 0;
  while (got < sizeof v && tries++ < 16) {
    ssize_t k = getrandom((char *)&v + got, sizeof v - got, 0);
    if (k > 0) got += (size_t)k;
  }
  if (got < sizeof v) v ^= (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
  return v >> 1; /* fits a signed 64-bit JSON integer */
}

/* ---- responses built from a job ------------------------------------------------------ */

static const char *finish_reason(coh_finish f) {
  switch (f) {
    case COH_FINISH_LENGTH:
    case COH_FINISH_CONTEXT: return "length";
    case COH_FINISH_NONE: return NULL;
    default: return "stop";
  }
}

/* The text of one token for logprobs (its exact bytes, as a JSON string
 * with U+FFFD for an incomplete character) and its bytes array. */
static void token_json(const coh_tokenizer *tok, int32_t id, json_t **str, json_t **bytes) {
  char buf[256];
  size_t len = 0, i;
  coh_err err = {0};
  if (coh_tokenizer_token_bytes(tok, id, buf, sizeof buf, &len, &err) != COH_OK) len = 0;
  *str = text_string(buf, len);
  *bytes = json_array();
  for (i = 0; i < len && *bytes; i++)
    json_array_append_new(*bytes, json_integer((unsigned char)buf[i]));
}

static json_t *chat_logprobs(const coh__serve_model *m, const coh__serve_choice *c) {
  json_t *content = json_array();
  size_t i;
  int k;
  for (i = 0; i < c->n_toks && content; i++) {
    const coh__serve_tok *t = &c->toks[i];
    json_t *str, *bytes, *top = json_array();
    token_json(m->tok, t->id, &str, &bytes);
    for (k = 0; k < t->n_top && top; k++) {
      json_t *s2, *b2;
      token_json(m->tok, t->top_id[k], &s2, &b2);
      json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", s2, "logprob",
                                           (double)t->top_lp[k], "bytes", b2));
    }
    json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", str, "logprob",
                                             (double)t->logprob, "bytes", bytes,
                                             "top_logprobs", top));
  }
  return json_pack("{s:o,s:[]}", "content", content, "refusal");
}

static json_t *cmpl_logprobs(const coh__serve_model *m, const coh__serve_choice *c) {
  json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
  size_t i, off = 0;
  int k;
  for (i = 0; i < c->n_toks; i++) {
    const coh__serve_tok *t = &c->toks[i];
    json_t *str, *bytes, *top = json_object();
    token_json(m->tok, t->id, &str, &bytes);
    json_array_append(tokens, str);
    json_array_append_new(lps, json_real(t->logprob));
    json_array_append_new(offs, json_integer((json_int_t)off));
    off += json_array_size(bytes);
    json_decref(bytes);
    json_decref(str);
    for (k = 0; k < t->n_top && top; k++) {
      json_t *s2, *b2;
      token_json(m->tok, t->top_id[k], &s2, &b2);
      if (s2) json_object_set_new(top, json_string_value(s2), json_real(t->top_lp[k]));
      json_decref(s2);
      json_decref(b2);
    }
    json_array_append_new(tops, top);
  }
  return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps,
                   "top_logprobs", tops, "text_offset", offs);
}

/* The tool calls of a chat choice's text, in the OpenAI shape, or NULL. */
static json_t *tool_calls(const coh__serve_job *job, int index, const char *text, size_t len) {
  char *calls = NULL;
  json_t *arr, *out;
  size_t i;
  coh_err err = {0};
  if (job->lr.tool_choice == COH_TOOLS_NONE) return NULL;
  if (coh_llm_tool_calls(job->lr.tool_names, job->lr.n_tools, text, len, &calls, &err) != COH_OK ||
      calls == NULL)
    return NULL;
  arr = json_loads(calls, 0, NULL);
  coh_free(calls);
  if (!json_is_array(arr)) {
    json_decref(arr);
    return NULL;
  }
  out = json_array();
  for (i = 0; i < json_array_size(arr) && out; i++) {
    json_t *c = json_array_get(arr, i);
    char id[64], *args = json_dumps(json_object_get(c, "arguments"), JSON_COMPACT);
    snprintf(id, sizeof id, "call_%llu_%d_%zu", (unsigned long long)job->seq, index, i);
    json_array_append_new(out, json_pack("{s:i,s:s,s:s,s:{s:O,s:s}}", "index", (json_int_t)i,
                                         "id", id, "type", "function", "function", "name",
                                         json_object_get(c, "name"), "arguments",
                                         args ? args : "{}"));
    free(args);
  }
  json_decref(arr);
  return out;
}

static json_t *usage_json(const coh__serve_job *job) {
  json_int_t comp = 0;
  int i;
  for (i = 0; i < job->n; i++) comp += job->choices[i].n_tokens;
  return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)job->lr.n_ids,
                   "completion_tokens", comp, "total_tokens", (json_int_t)job->lr.n_ids + comp);
}

static void job_id(const coh__serve_job *job, char *buf, size_t cap) {
  snprintf(buf, cap, "%s-cohort-%llu", job->kind == COH__JOB_CHAT ? "chatcmpl" : "cmpl",
           (unsigned long long)job->seq);
}

/* The whole response of a finished job (lock held: the job is done). */
static json_t *full_response(coh_serve *s, const coh__serve_job *job, long long created) {
  const coh__serve_model *m = &s->models[job->model];
  json_t *choices = json_array();
  char id[64];
  int i;
  job_id(job, id, sizeof id);
  for (i = 0; i < job->n && choices; i++) {
    const coh__serve_choice *c = &job->choices[i];
    const char *text = c->text.p ? c->text.p : "";
    json_t *lp = job->logprobs ? (job->kind == COH__JOB_CHAT ? chat_logprobs(m, c)
                                                             : cmpl_logprobs(m, c))
                               : json_null();
    if (job->kind == COH__JOB_CHAT) {
      json_t *calls = tool_calls(job, i, text, c->text.n), *msg;
      if (calls)
        msg = json_pack("{s:s,s:n,s:o,s:n}", "role", "assistant", "content", "tool_calls", calls,
                        "refusal");
      else
        msg = json_pack("{s:s,s:o,s:n}", "role", "assistant", "content",
                        text_string(text, c->text.n), "refusal");
      json_array_append_new(choices,
                            json_pack("{s:i,s:o,s:o,s:s}", "index", i, "message", msg, "logprobs",
                                      lp, "finish_reason",
                                      calls ? "tool_calls" : finish_reason(c->finish)));
    } else {
      json_array_append_new(choices,
                            json_pack("{s:o,s:i,s:o,s:s}", "text", text_string(text, c->text.n),
                                      "index", i, "logprobs", lp, "finish_reason",
                                      finish_reason(c->finish)));
    }
  }
  return json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o}", "id", id, "object",
                   job->kind == COH__JOB_CHAT ? "chat.completion" : "text_completion", "created",
                   (json_int_t)created, "model", m->id, "system_fingerprint", m->fingerprint,
                   "choices", choices, "usage", usage_json(job));
}

/* ---- SSE ------------------------------------------------------------------------------ */

typedef struct stream_ctx {
  coh_serve *s;
  struct mg_connection *conn;
  coh__serve_job *job;
  char id[64];
  long long created;
  int broken;
} stream_ctx;

/* One chunk: "data: " + the chunk object + a blank line, appended to b.
 * choice: the choices array's one element, or NULL (the usage chunk). */
static void chunk(stream_ctx *x, coh__buf *b, json_t *choice, json_t *usage) {
  const coh__serve_model *m = &x->s->models[x->job->model];
  json_t *c = json_pack("{s:s,s:s,s:I,s:s,s:s,s:o}", "id", x->id, "object",
                        x->job->kind == COH__JOB_CHAT ? "chat.completion.chunk"
                                                      : "text_completion",
                        "created", (json_int_t)x->created, "model", m->id, "system_fingerprint",
                        m->fingerprint, "choices", choice ? json_pack("[o]", choice) : json_array());
  char *t;
  /* with include_usage every chunk carries "usage": null, the last one the counts */
  if (c && usage) json_object_set_new(c, "usage", usage);
  else json_decref(usage);
  t = c ? json_dumps(c, JSON_COMPACT) : NULL;
  if (t == NULL) {
    b->oom = 1;
  } else {
    coh__buf_printf(b, "data: %s\n\n", t);
    free(t);
  }
  json_decref(c);
}

static json_t *delta_choice(const coh__serve_job *job, int index, json_t *delta,
                            const char *finish) {
  if (job->kind == COH__JOB_CHAT)
    return json_pack("{s:i,s:o,s:n,s:s?}", "index", index, "delta", delta, "logprobs",
                     "finish_reason", finish);
  /* completions: the delta is the text */
  return json_pack("{s:o,s:i,s:n,s:s?}", "text", delta, "index", index, "logprobs",
                   "finish_reason", finish);
}

static int write_all(stream_ctx *x, const coh__buf *b) {
  if (x->broken || b->n == 0) return x->broken ? -1 : 0;
  if (mg_write(x->conn, b->p, b->n) != (int)b->n) x->broken = 1;
  return x->broken ? -1 : 0;
}

/* Whether job has something stream_job has not sent yet (lock held). */
static int stream_news(const coh__serve_job *job, const size_t *sent, const int *reported) {
  int i;
  if (job->done) return 1;
  for (i = 0; i < job->n; i++)
    if (job->choices[i].n_pieces > sent[i] ||
        (!reported[i] && job->choices[i].finish != COH_FINISH_NONE))
      return 1;
  return 0;
}

/* Streams job until it is done or the client is gone (then cancels it and
 * waits until the loop has let go of it).  The lock is held only to copy
 * what is new: the JSON of the chunks is built and written after it is
 * released, so the serve loop, which appends tokens under the same lock,
 * does not wait for this thread's formatting. */
static void stream_job(coh_serve *s, struct mg_connection *conn, coh__serve_job *job,
                       int include_usage) {
  stream_ctx x;
  size_t sent[COH__SERVE_MAX_N] = {0};
  int reported[COH__SERVE_MAX_N] = {0}, role_sent = 0, i, buffered;
  char hdr[128];

  memset(&x, 0, sizeof x);
  x.s = s;
  x.conn = conn;
  x.job = job;
  x.created = (long long)time(NULL);
  job_id(job, x.id, sizeof x.id);
  /* a chat with tools is sent whole at the end: it may turn out to be a
   * tool call, which is not text */
  buffered = job->kind == COH__JOB_CHAT && job->lr.tool_choice != COH_TOOLS_NONE;
  snprintf(hdr, sizeof hdr, "x-cohort-seed: %llu\r\n", (unsigned long long)job->seed);
  mg_printf(conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
            "Cache-Control: no-cache\r\n%sConnection: close\r\n\r\n",
            hdr);
  coh__serve_count_status(s, 200);
  pthread_mutex_lock(&s->lock);
  for (;;) {
    /* Under the lock: the new pieces.  A choice still generating may grow
     * (and move) its text and piece ends, so its new bytes and ends are
     * copied; a finished choice's are final (the loop appends nothing after
     * the finish) and are read in place. */
    coh__buf b = {0}, fresh = {0};
    size_t np[COH__SERVE_MAX_N], from[COH__SERVE_MAX_N], at[COH__SERVE_MAX_N];
    size_t *ends = NULL, n_new = 0, k = 0;
    coh_finish fin[COH__SERVE_MAX_N];
    int done = job->done;
    for (i = 0; i < job->n; i++) n_new += job->choices[i].n_pieces - sent[i];
    if (n_new > 0 && (ends = coh__malloc(n_new * sizeof *ends)) == NULL) b.oom = 1;
    for (i = 0; i < job->n && !b.oom; i++) {
      const coh__serve_choice *c = &job->choices[i];
      size_t j;
      fin[i] = c->finish;
      np[i] = c->n_pieces;
      from[i] = sent[i] ? c->piece_end[sent[i] - 1] : 0;
      at[i] = fresh.n;
      if (fin[i] == COH_FINISH_NONE && np[i] > sent[i])
        coh__buf_add(&fresh, c->text.p + from[i], c->piece_end[np[i] - 1] - from[i]);
      for (j = sent[i]; j < np[i]; j++) ends[k++] = c->piece_end[j];
    }
    if (fresh.oom) b.oom = 1;
    pthread_mutex_unlock(&s->lock);

    if (!b.oom && !role_sent && job->kind == COH__JOB_CHAT) {
      for (i = 0; i < job->n; i++)
        chunk(&x, &b, delta_choice(job, i, json_pack("{s:s,s:s}", "role", "assistant", "content", ""),
                                   NULL),
              include_usage ? json_null() : NULL);
      role_sent = 1;
    }
    for (i = 0, k = 0; i < job->n && !b.oom; i++) {
      const coh__serve_choice *c = &job->choices[i];
      size_t a = from[i];
      for (; sent[i] < np[i]; sent[i]++, k++) {
        size_t e = ends[k];
        if (!buffered) {
          /* pieces are never empty, so the text they point into exists */
          const char *p = fin[i] == COH_FINISH_NONE ? fresh.p + at[i] + (a - from[i])
                                                    : c->text.p + a;
          json_t *d = job->kind == COH__JOB_CHAT
                          ? json_pack("{s:o}", "content", text_string(p, e - a))
                          : text_string(p, e - a);
          chunk(&x, &b, delta_choice(job, i, d, NULL), include_usage ? json_null() : NULL);
        }
        a = e;
      }
      if (!reported[i] && fin[i] != COH_FINISH_NONE && fin[i] != COH_FINISH_CANCELLED &&
          fin[i] != COH_FINISH_ERROR) {
        const char *fr = finish_reason(fin[i]);
        if (buffered) {
          json_t *calls = tool_calls(job, i, c->text.p ? c->text.p : "", c->text.n);
          if (calls) {
            fr = "tool_calls";
            chunk(&x, &b, delta_choice(job, i, json_pack("{s:o}", "tool_calls", calls), NULL),
                  include_usage ? json_null() : NULL);
          } else if (c->text.n) {
            chunk(&x, &b,
                  delta_choice(job, i,
                               json_pack("{s:o}", "content", text_string(c->text.p, c->text.n)),
                               NULL),
                  include_usage ? json_null() : NULL);
          }
        }
        chunk(&x, &b, delta_choice(job, i, job->kind == COH__JOB_CHAT ? json_object()
                                                                     : json_string(""), fr),
              include_usage ? json_null() : NULL);
        reported[i] = 1;
      }
    }
    coh__free(ends);
    coh__buf_free(&fresh);
    if (done) {
      /* the job is done: it is this thread's alone */
      int failed = 0;
      for (i = 0; i < job->n; i++)
        if (job->choices[i].finish == COH_FINISH_ERROR || job->oom) failed = 1;
      if (failed)
        coh__buf_printf(&b, "data: {\"error\":{\"message\":\"generation failed (see the server "
                            "log)\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n");
      else if (include_usage)
        chunk(&x, &b, NULL, usage_json(job));
      coh__buf_printf(&b, "data: [DONE]\n\n");
    }
    if (b.oom) x.broken = 1;
    (void)write_all(&x, &b);
    coh__buf_free(&b);
    pthread_mutex_lock(&s->lock);
    if (done) break;
    if (x.broken) {
      /* the client is gone: cancel, and wait until the loop lets go */
      atomic_store(&job->cancel, 1);
      pthread_cond_signal(&s->loop_cond);
      while (!job->done) pthread_cond_wait(&job->cond, &s->lock);
      break;
    }
    while (!stream_news(job, sent, reported)) pthread_cond_wait(&job->cond, &s->lock);
  }
  pthread_mutex_unlock(&s->lock);
}

/* ---- a non-streaming client that leaves ---------------------------------------------- */

/* The socket of conn.  civetweb has no call that returns it (nor a close
 * notification), so it is found among the process's descriptors: the TCP
 * socket whose local port is the server's and whose peer is the request's
 * remote address and port (unique while the request is open: civetweb
 * closes it only after the handler returns).  -1 when not found; at most
 * 65536 descriptors are looked at. */
static int client_socket(const coh_serve *s, const struct mg_connection *conn) {
  const struct mg_request_info *ri = mg_get_request_info(conn);
  DIR *d;
  struct dirent *de;
  int fd = -1, seen = 0;
  if (ri == NULL || (d = opendir("/proc/self/fd")) == NULL) return -1;
  while (fd < 0 && seen++ < 65536 && (de = readdir(d)) != NULL) {
    struct sockaddr_in local, peer;
    socklen_t ll = sizeof local, pl = sizeof peer;
    struct stat st;
    char addr[INET_ADDRSTRLEN];
    char *end;
    long v = strtol(de->d_name, &end, 10);
    if (*end != '\0' || end == de->d_name || v < 0 || v > 1 << 30 || v == dirfd(d)) continue;
    if (fstat((int)v, &st) != 0 || !S_ISSOCK(st.st_mode) ||
        getsockname((int)v, (struct sockaddr *)&local, &ll) != 0 || local.sin_family != AF_INET ||
        ntohs(local.sin_port) != s->port ||
        getpeername((int)v, (struct sockaddr *)&peer, &pl) != 0 || peer.sin_family != AF_INET ||
        ntohs(peer.sin_port) != ri->remote_port ||
        inet_ntop(AF_INET, &peer.sin_addr, addr, sizeof addr) == NULL ||
        strcmp(addr, ri->remote_addr) != 0)
      continue;
    fd = (int)v;
  }
  closedir(d);
  return fd;
}

/* Whether the client closed its end: the request was read whole, so
 * anything readable now is the end of the stream (or an error).  A client
 * that half-closes after sending its request (shutdown of its write side;
 * the OpenAI clients, curl and browsers do not) reads as gone too. */
static int client_gone(int fd) {
  struct pollfd p;
  char c;
  memset(&p, 0, sizeof p);
  p.fd = fd;
  p.events = POLLIN | POLLRDHUP;
  if (poll(&p, 1, 0) <= 0) return 0;
  if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return 1;
  return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Waits (lock held) until the loop is done with a non-streaming job.  Its
 * client is checked every 50 ms: one that went away has its request
 * cancelled, which frees its batch slot at the next tick, as a streaming
 * client's failed write does.  Returns 1 when the client went away. */
static int wait_done(coh_serve *s, coh__serve_job *job, int fd) {
  int gone = 0;
  while (!job->done) {
    struct timespec ts;
    if (fd < 0 || gone) {
      pthread_cond_wait(&job->cond, &s->lock);
      continue;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(&job->cond, &s->lock, &ts);
    if (job->done) break;
    pthread_mutex_unlock(&s->lock);
    gone = client_gone(fd);
    pthread_mutex_lock(&s->lock);
    if (gone) {
      atomic_store(&job->cancel, 1);
      pthread_cond_signal(&s->loop_cond);
    }
  }
  return gone;
}

/* ---- endpoints ------------------------------------------------------------------------ */

/* The reply of a refused request, as an OpenAI error body. */
static void send_reply(coh_serve *s, struct mg_connection *conn, const coh__serve_reply *r) {
  send_error(s, conn, r->status, r->type, r->param[0] ? r->param : NULL, r->code, "%s", r->msg);
}

static long conn_read(void *ctx, char *buf, size_t n) {
  return mg_read(ctx, buf, n);
}

static void handle_generate(coh_serve *s, struct mg_connection *conn, int kind) {
  const struct mg_request_info *ri = mg_get_request_info(conn);
  char *body = NULL, hdr[64];
  size_t len = 0;
  coh__serve_reply r;
  coh__serve_checked c;
  coh__serve_job *job = NULL;
  int i, rc;

  memset(&r, 0, sizeof r);
  if (coh__serve_read_body(s->o.max_body, ri->content_length, conn_read, conn, &body, &len, &r)) {
    send_reply(s, conn, &r);
    return;
  }
  if (coh__serve_check_request(s, kind, body, len, draw_seed(), &c, &r)) {
    send_reply(s, conn, &r);
    goto done;
  }
  job = c.job;
  job->t_arrive = coh__wall_seconds();

  rc = coh__serve_enqueue(s, job);
  if (rc == 429) {
    send_error(s, conn, 429, "rate_limit_exceeded", NULL, "queue_full",
               "the server's queue is full (--max-queue %d): retry later", s->o.max_queue);
    goto done;
  }
  if (rc == 503) {
    send_error(s, conn, 503, "server_error", NULL, "shutting_down",
               "the server is shutting down");
    goto done;
  }
  /* from here the job belongs to the loop until job->done */
  if (c.stream) {
    stream_job(s, conn, job, c.include_usage);
  } else {
    json_t *resp = NULL;
    int failed = 0, gone, fd = client_socket(s, conn);
    pthread_mutex_lock(&s->lock);
    gone = wait_done(s, job, fd);
    for (i = 0; i < job->n; i++)
      if (job->choices[i].finish == COH_FINISH_ERROR) failed = 1;
    if (!gone && !failed && !job->oom) resp = full_response(s, job, (long long)time(NULL));
    pthread_mutex_unlock(&s->lock);
    snprintf(hdr, sizeof hdr, "x-cohort-seed: %llu\r\n", (unsigned long long)job->seed);
    if (failed && !gone)
      send_error(s, conn, 500, "server_error", NULL, NULL,
                 "generation failed (see the server log)");
    else if (!gone)
      send_json(s, conn, resp ? 200 : 500, resp, hdr);
  }
done:
  coh__serve_job_free(job);
  coh__free(body);
}

static void handle_models(coh_serve *s, struct mg_connection *conn, const char *one) {
  json_t *data = json_array();
  size_t i;
  for (i = 0; i < s->n_models; i++) {
    json_t *mj = json_pack("{s:s,s:s,s:i,s:s}", "id", s->models[i].id, "object", "model",
                           "created", 0, "owned_by", "cohort");
    if (one != NULL && !strcmp(one, s->models[i].id)) {
      json_decref(data);
      send_json(s, conn, 200, mj, NULL);
      return;
    }
    json_array_append_new(data, mj);
  }
  if (one != NULL) {
    json_decref(data);
    send_error(s, conn, 404, "invalid_request_error", "model", "model_not_found",
               "The model '%s' does not exist", one);
    return;
  }
  send_json(s, conn, 200, json_pack("{s:s,s:o}", "object", "list", "data", data), NULL);
}

static int route(coh_serve *s, struct mg_connection *conn);

typedef struct route_arg {
  coh_serve *s;
  struct mg_connection *conn;
  int rc;
} route_arg;

static void *route_thread(void *p) {
  route_arg *a = p;
  a->rc = route(a->s, a->conn);
  return NULL;
}

/* The stack a request is handled on.  civetweb's own threads have small
 * stacks (Debian builds it with a fixed 100 KiB or so), and checking a
 * request recurses per nesting level of its JSON (jansson, the chat
 * renderer, the JSON Schema compiler): a schema 58 levels deep overflowed
 * one.  So each request runs on a thread of its own with this stack while
 * the civetweb thread waits for it. */
#define ROUTE_STACK ((size_t)8 << 20)

/* Counts the handlers that run, so that the drain can wait until every
 * response has been written out before civetweb stops (mg_stop makes
 * writes in progress fail). */
static int request_handler(struct mg_connection *conn, void *cbdata) {
  coh_serve *s = cbdata;
  int rc;
  pthread_attr_t attr;
  pthread_t th;
  route_arg a;
  pthread_mutex_lock(&s->lock);
  s->n_handlers++;
  pthread_mutex_unlock(&s->lock);
  a.s = s;
  a.conn = conn;
  a.rc = 0;
  if (pthread_attr_init(&attr) == 0 && pthread_attr_setstacksize(&attr, ROUTE_STACK) == 0 &&
      pthread_create(&th, &attr, route_thread, &a) == 0) {
    pthread_join(th, NULL);
    rc = a.rc;
  } else {
    send_error(s, conn, 503, "server_error", NULL, "no_thread",
               "the server cannot start a thread for this request: retry later");
    rc = 503;
  }
  pthread_attr_destroy(&attr);
  pthread_mutex_lock(&s->lock);
  if (--s->n_handlers == 0) pthread_cond_broadcast(&s->idle_cond);
  pthread_mutex_unlock(&s->lock);
  return rc;
}

static int route(coh_serve *s, struct mg_connection *conn) {
  const struct mg_request_info *ri = mg_get_request_info(conn);
  const char *uri = ri->local_uri ? ri->local_uri : "/", *method = ri->request_method, *one;
  int which = coh__serve_route_of(method, uri, &one);

  if (which == COH__ROUTE_HEALTH) {
    int stopping;
    pthread_mutex_lock(&s->lock);
    stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    if (stopping) send_body(s, conn, 503, "application/json", NULL, "{\"status\":\"draining\"}", 21);
    else send_body(s, conn, 200, "application/json", NULL, "{\"status\":\"ok\"}", 15);
    return 200;
  }
  if (s->api_key != NULL && !coh__serve_bearer_ok(s->api_key, mg_get_header(conn, "Authorization"))) {
    send_error(s, conn, 401, "invalid_request_error", NULL, "invalid_api_key",
               "Incorrect API key provided (send it as 'Authorization: Bearer KEY')");
    return 401;
  }
  switch (which) {
    case COH__ROUTE_METRICS: {
      coh__buf b = {0};
      coh__serve_metrics_text(s, &b);
      if (b.oom) send_error(s, conn, 500, "server_error", NULL, NULL, "out of memory");
      else send_body(s, conn, 200, "text/plain; version=0.0.4", NULL, b.p, b.n);
      coh__buf_free(&b);
      break;
    }
    case COH__ROUTE_MODELS: handle_models(s, conn, NULL); break;
    case COH__ROUTE_MODEL: handle_models(s, conn, one); break;
    case COH__ROUTE_CHAT: handle_generate(s, conn, COH__JOB_CHAT); break;
    case COH__ROUTE_COMPLETIONS: handle_generate(s, conn, COH__JOB_COMPLETION); break;
    case COH__ROUTE_BAD_METHOD:
      send_error(s, conn, 405, "invalid_request_error", NULL, "method_not_allowed",
                 "method %s is not allowed on %s", method, uri);
      break;
    default:
      send_error(s, conn, 404, "invalid_request_error", NULL, "unknown_url",
                 "Unknown request URL: %s %s", method, uri);
  }
  return 200;
}

/* civetweb's worker threads (type 1) run as SCHED_BATCH: the serve loop
 * wakes one of them per streaming job and step, and a woken SCHED_OTHER
 * thread may preempt the loop on the spot (wake-up preemption), which left
 * the loop waiting for a CPU once per job and step and made the HTTP side
 * cost the engine's clock; a batch thread never preempts on wake-up, it
 * runs on an idle core or when the running thread's slice ends.  The same
 * nice level: it is not starved, and nothing needs a privilege.  A hint:
 * where the policy is not available nothing changes. */
static void *init_thread(const struct mg_context *ctx, int thread_type) {
  (void)ctx;
#ifdef SCHED_BATCH
  if (thread_type == 1) {
    struct sched_param sp;
    memset(&sp, 0, sizeof sp);
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
  }
#else
  (void)thread_type;
#endif
  return NULL;
}

static int log_message(const struct mg_connection *conn, const char *msg) {
  (void)conn;
  (void)msg;
  return 1; /* bad clients must not fill the server's stderr */
}

/* ---- start/stop ------------------------------------------------------------------------ */

int coh__serve_parse_listen(const char *s, char addr[16], int *port, coh_err *err) {
  return coh__parse_listen("--listen", s, addr, port, err);
}

int coh__serve_http_start(coh_serve *s, coh_err *err) {
  char listen[40], threads[24], queue[24], etext[256] = "";
  struct mg_callbacks cb;
  struct mg_init_data init;
  struct mg_error_data edata;
  unsigned ecode = 0;
  struct mg_server_port ports[2];
  /* a thread per request that may be open (in a batch slot or queued),
   * plus spares that answer 429, health and metrics at once */
  long nt = (long)s->o.max_batch * (long)s->n_models + s->o.max_queue + 16;
  const char *options[] = {"listening_ports", listen,
                           "num_threads", threads,
                           "connection_queue", queue,
                           "request_timeout_ms", "60000",
                           "enable_keep_alive", "no",
                           "enable_directory_listing", "no",
                           NULL};
  if (nt > 1024) nt = 1024;
  snprintf(threads, sizeof threads, "%ld", nt);
  snprintf(queue, sizeof queue, "%d", 256);
  snprintf(listen, sizeof listen, "%s:%d", s->addr, s->port);
  memset(&cb, 0, sizeof cb);
  cb.log_message = log_message;
  cb.init_thread = init_thread;
  memset(&init, 0, sizeof init);
  init.callbacks = &cb;
  init.user_data = s;
  init.configuration_options = options;
  memset(&edata, 0, sizeof edata);
  edata.code = &ecode;
  edata.text = etext;
  edata.text_buffer_size = sizeof etext;
  mg_init_library(0);
  s->ctx = mg_start2(&init, &edata);
  if (s->ctx == NULL) {
    mg_exit_library();
    return coh__err(err, COH_EIO, "serve: --listen %s: cannot listen: %s", s->listen,
                    etext[0] ? etext : "unknown error");
  }
  if (mg_get_server_ports(s->ctx, 2, ports) < 1) {
    mg_stop(s->ctx);
    s->ctx = NULL;
    mg_exit_library();
    return coh__err(err, COH_EIO, "serve: --listen %s: no listening port", s->listen);
  }
  s->port = ports[0].port;
  mg_set_request_handler(s->ctx, "/", request_handler, s);
  return COH_OK;
}

/* civetweb's listening thread notices mg_stop only between polls, which
 * last up to 2 s; a connection wakes it, so stopping takes milliseconds. */
static void *nudger(void *arg) {
  coh_serve *s = arg;
  struct sockaddr_in a;
  int i;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)s->port);
  if (strcmp(s->addr, "0.0.0.0") == 0 || inet_pton(AF_INET, s->addr, &a.sin_addr) != 1)
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (i = 0; i < 500 && !atomic_load(&s->mg_stopped); i++) {
    struct timespec ts = {0, 20 * 1000000L};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      (void)connect(fd, (struct sockaddr *)&a, sizeof a);
      close(fd);
    }
    nanosleep(&ts, NULL);
  }
  return NULL;
}

void coh__serve_http_stop(coh_serve *s) {
  pthread_t th;
  int nudging;
  struct timespec dl;
  /* let the handlers finish writing (bounded: 10 s, for a stalled client) */
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  pthread_mutex_lock(&s->lock);
  s->stopping = 1;
  while (s->n_handlers > 0)
    if (pthread_cond_timedwait(&s->idle_cond, &s->lock, &dl) != 0) break;
  pthread_mutex_unlock(&s->lock);
  nudging = pthread_create(&th, NULL, nudger, s) == 0;
  mg_stop(s->ctx);
  atomic_store(&s->mg_stopped, 1);
  if (nudging) pthread_join(th, NULL);
  s->ctx = NULL;
  mg_exit_library();
}
