/*
 * engine.c — continuous batching over one model.
 *
 * A request moves QUEUED → PREFILL → DECODE → done.  One coh_engine_step():
 *   1. finishes cancelled requests;
 *   2. admits queued requests in submission order while fewer than
 *      max_batch are active;
 *   3. decode: every request that was already DECODE at the start of the
 *      step feeds its last sampled token, all in one batched OrtRun;
 *   4. prefill: every PREFILL request runs one prompt chunk on its own
 *      (batch 1) — or its whole prompt, on models that cannot continue a
 *      prefill (probe_continuation), or loads the chunk from the prefix
 *      cache (pcache.h; see "prefix cache" below); when its prompt is
 *      complete it samples its first token and becomes DECODE, joining the
 *      decode batch at the next step.
 * Rows of the decode batch are ordered by request id, callbacks run in that
 * order, so the tokens produced are a function of the submit/step sequence.
 *
 * Constrained decoding (a request with a grammar): each such request keeps a
 * parse state and a mask buffer.  The state is advanced with every sampled
 * token, so the mask for the next token is known before the forward pass
 * that produces its logits; decode_step hands the masks of all constrained
 * rows to the helper thread (gmask.h) right before OrtRun and collects them
 * right after, so mask work overlaps the forward pass instead of adding to
 * it (the last prefill chunk does the same for a request's first mask).
 * Sampling then applies the mask as step 0 of the filter order
 * (sampler.c).  A mask depends only on the state, so batch invariance is
 * unaffected.  When a token completes the output, its mask is computed at
 * once: if it allows nothing but end-of-sequence, the request finishes
 * there (COH_FINISH_EOS) without another forward pass.
 *
 * KV layout: "gqa" models (GroupQueryAttention) keep one packed batch
 * (kvcache.h): while its composition is unchanged, the present tensors of
 * one step are fed back as the past of the next with no copy; the new token
 * lands at column n_cached of its row, and masks are a prefix of ones.
 * "concat" models (past ++ new, masked) decode in buckets instead, so that
 * a row's attention layout does not depend on its batch-mates (batch
 * invariance; see "bucketed decode" below).
 */
#include <stdio.h>
#include <string.h>

#include "gmask.h"
#include "kvcache.h"
#include "model_int.h"
#include "pcache.h"
#include "sampler.h"

typedef enum seq_state { SEQ_QUEUED, SEQ_PREFILL, SEQ_DECODE } seq_state;

typedef struct seq {
  uint64_t id;
  seq_state state;
  int32_t *tokens; /* prompt then generated */
  size_t n_tokens, cap_tokens, n_prompt;
  int64_t n_cached;  /* tokens whose K/V are in the cache */
  int32_t n_generated;
  int32_t n_text;    /* generated tokens that contribute text (not stop ids) */
  coh_sampling sampling;
  coh__rng rng;
  int32_t max_tokens;
  int32_t *stop_ids;
  size_t n_stop_ids;
  char **stop_strings;
  size_t n_stop_strings, max_stop_len;
  int ignore_eos, cancelled;
  coh_token_fn on_token;
  void *user;
  /* constrained decoding: NULL without a grammar */
  coh_grammar_state *gstate;
  uint32_t *gmask;   /* [mask_words] mask for the next token */
  int gmask_fresh;   /* gmask matches gstate */
  int gdone;         /* complete and only EOS allowed: finish now */
  int32_t max_ws_run; /* coh_request.max_ws_run */
  int64_t ws_run;    /* JSON whitespace bytes at the end of the output */
  OrtValue **own_kv; /* [2*layers] batch-1 cache while prefilling/joining */
  /* prefix cache: the entry of the prompt's block that ends at n_cached
   * (pinned; NULL at 0 or when not cached), and whether the chain is broken
   * (a block could not be kept: later blocks have no key) */
  coh__pblock *pc_last;
  int pc_off;
  int row;           /* row in the decode batch, -1 if none */
  /* concat models: the bucket group (index into coh_engine.cg) and slot
   * that hold this request's cache between decode steps; cg -1: none (the
   * cache is own_kv) */
  int cg, cg_row;
  /* text streaming: text of (last prompt token + generated), of which the
   * first prefix_len bytes belong to the prompt token */
  size_t prefix_len, emitted;
  struct seq *next;
} seq;

typedef struct decode_batch {
  int rows;
  seq **row_seq;     /* [rows] */
  int64_t cols;      /* past columns */
  int64_t *valid;    /* [rows * cols] */
  OrtValue **kv;     /* [2*layers] tensors [rows, kv_heads, cols, head_dim] */
} decode_batch;

/* A bucket group of a concat model ("bucketed decode"): the decode rows
 * whose attention spans T columns.  store[l] ([cap, kv_heads, T - 1,
 * head_dim], data[l] its memory) holds one row per slot: slot j is
 * slot[j]'s cache, its n_cached real columns first, zeros after. */
typedef struct cgroup {
  int64_t T;
  int n, cap;        /* slots in use (0..n-1), slots allocated */
  seq **slot;        /* [cap] */
  OrtValue **store;  /* [2*layers]; NULL while cap is 0 */
  char **data;       /* [2*layers] */
} cgroup;

struct coh_engine {
  coh_model *m;
  const OrtApi *api;
  int max_batch;
  uint64_t next_id;
  seq *head;         /* all live requests, in id order */
  int active;
  decode_batch batch;
  /* concat models decode in bucket groups (see "bucketed decode"), one
   * per bucket, indexed by bucket_index(T); n_cg entries allocated */
  struct cgroup *cg;
  int n_cg;
  coh__sampler *sampler;
  float *logits_f32; /* [vocab] scratch */
  /* KV tensors the engine creates itself (batch re-layouts, empty pasts)
   * come from the session's arena when ONNX Runtime provides one
   * (alloc_owned: released after every tensor), else from the default
   * allocator.  Why: a re-layout at batch 64 allocates ~70 MB; from malloc
   * that is fresh mmap'ed memory whose first touch page-faults, which on a
   * virtualised machine cost 264 ms per re-layout (bench_infer, 100M
   * fixture, 64 rows x 64 columns) against 98 ms for a decode step.  The
   * arena keeps freed blocks, so later re-layouts reuse warm memory. */
  OrtAllocator *alloc;
  int alloc_owned;
  const char **in_names, **out_names; /* borrowed from the model */
  size_t n_in, n_out;
  /* Whether a prompt chunk may continue a cache: -1 not yet probed, 1 yes,
   * 0 no (every prompt is prefilled whole).  See probe_continuation(). */
  int continues;
  const float *cur_logits; /* the row just sampled from, for its event */
  /* constrained decoding, created at the first request with a grammar (the
   * token trie lives in the model: m->gvocab) */
  coh__masker *masker;
  size_t mask_words;        /* (vocab + 31) / 32 */
  coh__mask_job *jobs;      /* [max_batch] */
  /* the whitespace bound (coh_request.max_ws_run): bit set for the tokens
   * whose bytes are all JSON whitespace; each token's trailing whitespace
   * byte count (capped at 255); a scratch mask */
  uint32_t *ws_only, *ws_mask;
  uint32_t *budget_mask; /* scratch: a mask restricted to the token budget */
  size_t max_token_bytes; /* the longest token's bytes (SIZE_MAX: unknown) */
  uint8_t *ws_tail;
  size_t ws_n;              /* tokens in ws_tail */
  /* The prefix cache (pcache.h): made at the first full prompt chunk of a
   * model that continues prefills; pcache_budget 0: off. */
  coh__pcache *pcache;
  size_t pcache_budget;
  int pcache_failed;        /* could not be made (out of memory): off */
  coh_engine_stats stats;
};

const char *coh_finish_name(coh_finish f) {
  static const char *const names[] = {"none",       "length",      "eos",
                                      "stop_token", "stop_string", "context",
                                      "cancelled",  "error"};
  return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "?";
}

void coh_request_default(coh_request *r) {
  memset(r, 0, sizeof *r);
  coh_sampling_default(&r->sampling);
  r->max_tokens = 128;
}

/* ---- request lifetime ---------------------------------------------------- */

static void release_kv(coh_engine *e, OrtValue **kv) {
  int i;
  if (kv == NULL) return;
  for (i = 0; i < 2 * e->m->info.n_layers; i++)
    if (kv[i]) e->api->ReleaseValue(kv[i]);
}

static void cg_remove(coh_engine *e, seq *s);

static void seq_free(coh_engine *e, seq *s) {
  size_t i;
  if (s == NULL) return;
  cg_remove(e, s);
  coh__pblock_pin(s->pc_last, -1);
  release_kv(e, s->own_kv);
  coh__free(s->own_kv);
  coh_grammar_state_free(s->gstate);
  coh__free(s->gmask);
  for (i = 0; i < s->n_stop_strings; i++) coh__free(s->stop_strings[i]);
  coh__free(s->stop_strings);
  coh__free(s->stop_ids);
  coh__free(s->tokens);
  coh__free(s);
}

static int push_token(seq *s, int32_t t) {
  if (s->n_tokens == s->cap_tokens) {
    size_t ncap = s->cap_tokens ? s->cap_tokens * 2 : 64;
    int32_t *nt = coh__realloc(s->tokens, ncap * sizeof *nt);
    if (nt == NULL) return COH_ENOMEM;
    s->tokens = nt;
    s->cap_tokens = ncap;
  }
  s->tokens[s->n_tokens++] = t;
  return COH_OK;
}

/* Decodes (last prompt token + generated tokens) into *text.  The prompt
 * token is included so that decoders which strip a leading space (Llama's
 * Strip decoder) keep the space between prompt and continuation. */
static int seq_text(coh_engine *e, seq *s, char **text, size_t *len) {
  coh_err err;
  const int32_t *ids = s->tokens + s->n_prompt - 1;
  size_t n = (size_t)s->n_text + 1;
  return coh_tokenizer_decode(e->m->tok, ids, n, 1, text, len, &err);
}

/* Length of the longest suffix of text[0..len) that is a proper prefix of a
 * stop string: that much must be held back until the next token decides. */
static size_t stop_holdback(const seq *s, const char *text, size_t len) {
  size_t best = 0, i, k;
  for (i = 0; i < s->n_stop_strings; i++) {
    size_t sl = strlen(s->stop_strings[i]);
    for (k = sl - 1; k > best; k--)
      if (k <= len && !memcmp(text + len - k, s->stop_strings[i], k)) {
        best = k;
        break;
      }
  }
  return best;
}

/* Bytes at the end of text that form an incomplete UTF-8 sequence or a
 * trailing U+FFFD (a byte-level token that completes in the next one). */
static size_t utf8_holdback(const char *text, size_t len) {
  size_t i, back = 0;
  if (len >= 3 && !memcmp(text + len - 3, "\xEF\xBF\xBD", 3)) return 3;
  for (i = len; i > 0 && back < 4; i--, back++) {
    unsigned char c = (unsigned char)text[i - 1];
    if ((c & 0xC0) != 0x80) {
      size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      return need > back + 1 ? back + 1 : 0;
    }
  }
  return 0;
}

/* Sends one event for s.  token -1: no token.  When finish is set, all text
 * not yet streamed (up to a stop string) is flushed.  When the text cannot
 * be decoded (out of memory), the event carries no text and finishes the
 * request with ERROR, and the error is returned: streaming on without the
 * text would skip the stop-string check and lose text silently. */
static int emit(coh_engine *e, seq *s, int32_t token, coh_finish finish) {
  coh_token_event ev;
  char *text = NULL;
  size_t len = 0, limit = 0;
  int rc = COH_OK;
  memset(&ev, 0, sizeof ev);
  ev.request_id = s->id;
  ev.token = token;
  ev.logits = token >= 0 ? e->cur_logits : NULL;
  ev.index = token >= 0 ? s->n_generated - 1 : s->n_generated;
  /* Text is decoded only when someone reads it: the callback, or the
   * stop-string matcher. */
  if (e->m->tok != NULL && s->n_text > 0 &&
      (s->on_token != NULL || s->n_stop_strings > 0) &&
      (rc = seq_text(e, s, &text, &len)) != COH_OK) {
    text = NULL;
    finish = COH_FINISH_ERROR;
  } else if (text != NULL) {
    size_t body_start = s->prefix_len <= len ? s->prefix_len : len;
    const char *body = text + body_start;
    size_t body_len = len - body_start, i;
    limit = body_len;
    /* A stop string cannot start before `emitted`: text that could begin
     * one is always held back. */
    if (s->emitted > body_len) s->emitted = body_len;
    for (i = 0; i < s->n_stop_strings; i++) {
      const char *hit = memmem(body + s->emitted, body_len - s->emitted,
                               s->stop_strings[i], strlen(s->stop_strings[i]));
      if (hit != NULL && (size_t)(hit - body) < limit) {
        limit = (size_t)(hit - body);
        if (finish == COH_FINISH_NONE || finish == COH_FINISH_LENGTH)
          finish = COH_FINISH_STOP_STRING;
      }
    }
    if (finish == COH_FINISH_NONE) {
      size_t hold = stop_holdback(s, body, limit);
      size_t uhold = utf8_holdback(body, limit - hold);
      limit -= hold + uhold;
    }
    if (limit < s->emitted) limit = s->emitted;
    ev.text = body + s->emitted;
    ev.text_len = limit - s->emitted;
    s->emitted = limit;
  }
  ev.finish = finish;
  if (s->on_token) s->on_token(s->user, &ev);
  coh__free(text);
  if (finish != COH_FINISH_NONE) s->cancelled = 2; /* marks "finished" */
  return rc;
}

static int is_finished(const seq *s) { return s->cancelled == 2; }

/* Appends a sampled token and reports it, finishing the request when a stop
 * condition holds. */
static int accept_token(coh_engine *e, seq *s, int32_t tok) {
  const coh_model_info *info = &e->m->info;
  coh_finish fin = COH_FINISH_NONE;
  size_t i;
  int k;
  if (push_token(s, tok)) return COH_ENOMEM;
  s->n_generated++;
  if (!s->ignore_eos)
    for (k = 0; k < info->n_eos; k++)
      if (tok == info->eos_ids[k]) fin = COH_FINISH_EOS;
  for (i = 0; fin == COH_FINISH_NONE && i < s->n_stop_ids; i++)
    if (tok == s->stop_ids[i]) fin = COH_FINISH_STOP_TOKEN;
  /* A stop token is reported but contributes no text. */
  if (fin != COH_FINISH_EOS && fin != COH_FINISH_STOP_TOKEN) s->n_text++;
  /* The grammar is complete and allows only EOS: this token, which has
   * text, is the last. */
  if (fin == COH_FINISH_NONE && s->gdone) fin = COH_FINISH_EOS;
  if (fin == COH_FINISH_NONE && s->n_generated >= s->max_tokens)
    fin = COH_FINISH_LENGTH;
  if (fin == COH_FINISH_NONE && (int64_t)s->n_tokens >= info->context)
    fin = COH_FINISH_CONTEXT;
  return emit(e, s, tok, fin);
}

/* ---- tensors ------------------------------------------------------------- */

static int make_tensor(coh_engine *e, const int64_t *shape, size_t rank,
                       ONNXTensorElementDataType type, OrtValue **out,
                       coh_err *err) {
  return COH_ORT_CALL(e->api->CreateTensorAsOrtValue(e->alloc, shape, rank, type, out),
                      "allocating a tensor");
}

static void *tensor_data(coh_engine *e, OrtValue *v) {
  void *p = NULL;
  OrtStatus *st = e->api->GetTensorMutableData(v, &p);
  if (st) {
    e->api->ReleaseStatus(st);
    return NULL;
  }
  return p;
}

static size_t kv_elem(const coh_engine *e) {
  return coh__ort_elem_size(e->m->kv_type);
}

/* Runs the session with the standard inputs.  past: [2*layers] values.
 * present (output): [2*layers] new values; *logits: output.  ro: run
 * options, may be NULL. */
static int run_model(coh_engine *e, int64_t rows, int64_t new_len,
                     int64_t total_cols, const int64_t *ids,
                     const int64_t *pos, const int64_t *mask, OrtValue **past,
                     int use_cache, OrtValue **present, OrtValue **logits,
                     OrtRunOptions *ro, coh_err *err) {
  const OrtApi *api = e->api;
  coh_model *m = e->m;
  const int L = m->info.n_layers;
  OrtValue *in_vals[8 + 2 * 4096];
  OrtValue *out_vals[1 + 2 * 4096];
  OrtValue *v_ids = NULL, *v_pos = NULL, *v_mask = NULL, *v_cache = NULL;
  int64_t shape_ids[2] = {rows, new_len}, shape_mask[2] = {rows, total_cols};
  int64_t one = 1;
  int rc, l;
  size_t n_in = 0, i;
  bool use = use_cache != 0;
  double t0;

  if ((rc = COH_ORT_CALL(api->CreateTensorWithDataAsOrtValue(
                             m->cpu_mem, (void *)ids, (size_t)(rows * new_len) * sizeof(int64_t),
                             shape_ids, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &v_ids),
                         "input_ids")) ||
      (rc = COH_ORT_CALL(api->CreateTensorWithDataAsOrtValue(
                             m->cpu_mem, (void *)mask, (size_t)(rows * total_cols) * sizeof(int64_t),
                             shape_mask, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &v_mask),
                         "attention_mask")))
    goto done;
  in_vals[n_in++] = v_ids;
  in_vals[n_in++] = v_mask;
  if (m->info.has_position_ids) {
    if ((rc = COH_ORT_CALL(api->CreateTensorWithDataAsOrtValue(
                               m->cpu_mem, (void *)pos, (size_t)(rows * new_len) * sizeof(int64_t),
                               shape_ids, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &v_pos),
                           "position_ids")))
      goto done;
    in_vals[n_in++] = v_pos;
  }
  if (m->info.has_use_cache_branch) {
    if ((rc = COH_ORT_CALL(api->CreateTensorWithDataAsOrtValue(
                               m->cpu_mem, &use, sizeof use, &one, 1,
                               ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, &v_cache),
                           "use_cache_branch")))
      goto done;
    in_vals[n_in++] = v_cache;
  }
  for (l = 0; l < 2 * L; l++) in_vals[n_in++] = past[l];
  for (i = 0; i < (size_t)(1 + 2 * L); i++) out_vals[i] = NULL;

  t0 = coh__wall_seconds();
  rc = COH_ORT_CALL(api->Run(m->session, ro, e->in_names, (const OrtValue *const *)in_vals,
                             n_in, e->out_names, (size_t)(1 + 2 * L), out_vals),
                    "OrtRun");
  e->stats.ort_seconds += coh__wall_seconds() - t0;
  e->stats.ort_runs++;
  if (rc == COH_OK) {
    *logits = out_vals[0];
    for (l = 0; l < 2 * L; l++) present[l] = out_vals[1 + l];
  } else {
    for (i = 0; i < (size_t)(1 + 2 * L); i++)
      if (out_vals[i]) api->ReleaseValue(out_vals[i]);
  }
done:
  if (v_ids) api->ReleaseValue(v_ids);
  if (v_mask) api->ReleaseValue(v_mask);
  if (v_pos) api->ReleaseValue(v_pos);
  if (v_cache) api->ReleaseValue(v_cache);
  return rc;
}

/* ---- constrained decoding ------------------------------------------------- */

static int is_eos(const coh_engine *e, int32_t tok) {
  int k;
  for (k = 0; k < e->m->info.n_eos; k++)
    if (tok == e->m->info.eos_ids[k]) return 1;
  return 0;
}

/* Advances s's parse state by the sampled token tok (an EOS id ends the
 * request and is not fed to the grammar).  When the output is complete, the
 * next mask is computed now; if it allows nothing but EOS, s->gdone. */
static int grammar_advance(coh_engine *e, seq *s, int32_t tok, coh_err *err) {
  int rc;
  if (is_eos(e, tok)) return COH_OK;
  s->gmask_fresh = 0;
  if ((rc = coh_grammar_state_accept(s->gstate, tok, err))) {
    coh__err_prefix(err, "grammar (token %ld was allowed by the mask)", (long)tok);
    return rc;
  }
  if (tok >= 0 && (size_t)tok < e->ws_n) {
    if (e->ws_only[tok / 32] & (1u << (tok % 32))) s->ws_run += e->ws_tail[tok];
    else s->ws_run = e->ws_tail[tok];
  }
  if (coh_grammar_state_is_complete(s->gstate)) {
    coh__mask_job j;
    size_t w, k;
    double t0 = coh__wall_seconds();
    int other = 0;
    memset(&j, 0, sizeof j);
    j.state = s->gstate;
    j.mask = s->gmask;
    coh__mask_compute(e->masker, &j);
    e->stats.mask_seconds += coh__wall_seconds() - t0;
    e->stats.masks++;
    if (j.rc) {
      *err = j.err;
      return j.rc;
    }
    s->gmask_fresh = 1;
    for (w = 0; w < e->mask_words && !other; w++) {
      uint32_t bits = s->gmask[w];
      for (k = 0; k < (size_t)e->m->info.n_eos; k++) {
        int32_t id = e->m->info.eos_ids[k];
        if (id >= 0 && (size_t)id / 32 == w) bits &= ~(1u << (id % 32));
      }
      other = bits != 0;
    }
    s->gdone = !other;
  }
  return COH_OK;
}

/* Starts the helper thread on the masks that rows[0..n) need for their next
 * token (none: nothing to do). */
static void masks_start(coh_engine *e, seq **rows, int n) {
  size_t k = 0;
  int i;
  if (e->masker == NULL) return;
  for (i = 0; i < n; i++) {
    seq *s = rows[i];
    if (s->gstate == NULL || s->gmask_fresh) continue;
    memset(&e->jobs[k], 0, sizeof e->jobs[k]);
    e->jobs[k].state = s->gstate;
    e->jobs[k].mask = s->gmask;
    k++;
  }
  coh__masker_start(e->masker, e->jobs, k);
}

/* Waits for the masks of masks_start(rows, n) and marks them fresh. */
static int masks_finish(coh_engine *e, seq **rows, int n, coh_err *err) {
  double cs = 0.0, ws = 0.0;
  size_t k = 0;
  int i, rc;
  if (e->masker == NULL) return COH_OK;
  rc = coh__masker_wait(e->masker, &cs, &ws, err);
  for (i = 0; i < n; i++)
    if (rows[i]->gstate != NULL && !rows[i]->gmask_fresh) {
      if (rc == COH_OK) rows[i]->gmask_fresh = 1;
      k++;
    }
  e->stats.masks += k;
  e->stats.mask_seconds += cs;
  e->stats.mask_wait_seconds += ws;
  if (rc) coh__err_prefix(err, "grammar mask");
  return rc;
}

/* The mask s samples from: its grammar mask, less the whitespace-only
 * tokens once the output ends in max_ws_run whitespace bytes, unless that
 * leaves nothing (then whitespace is all the grammar allows: the full
 * mask).  Only removes tokens from a mask whose tokens all keep the output
 * completable, so the grammar's invariant holds. */
static const uint32_t *ws_bound(coh_engine *e, seq *s) {
  size_t w;
  uint32_t any = 0;
  if (s->max_ws_run <= 0 || s->ws_run < s->max_ws_run || e->ws_only == NULL) return s->gmask;
  for (w = 0; w < e->mask_words; w++) {
    e->ws_mask[w] = s->gmask[w] & ~e->ws_only[w];
    any |= e->ws_mask[w];
  }
  return any ? e->ws_mask : s->gmask;
}

/* The token budget (docs/grammar.md, "Finishing within max_tokens"): the
 * sampled token *out must leave a completion of the output that fits the
 * tokens left after it (max_tokens and the context), counting a byte a
 * token (every byte is a token of the vocabularies we serve, so the
 * shortest completion fits) and one token for EOS.  When it does not, the
 * mask is restricted to the tokens that do and the token is sampled again
 * from that mask (with the same sampling parameters, the stream going on):
 * for greedy and temperature sampling, the same as sampling from the
 * restricted mask at once, but the restricted mask (a step per allowed
 * token) is only computed when the sampled token breaks the budget.  If no
 * token keeps a completion within the budget (a schema whose shortest
 * output is longer than max_tokens), the token stays. */
static int budget_check(coh_engine *e, seq *s, const float *lf, const uint32_t *allowed,
                        int32_t *out, coh_err *err) {
  int64_t left = (int64_t)s->max_tokens - s->n_generated - 1;
  int64_t ctx = e->m->info.context - (int64_t)s->n_tokens - 1;
  uint64_t cost;
  size_t n_left = 0;
  int rc;
  if (is_eos(e, *out)) return COH_OK;
  if (ctx < left) left = ctx;
  if ((rc = coh_grammar_state_token_min_bytes(s->gstate, *out, &cost, err))) return rc;
  /* after *out, `left` tokens: the cost in bytes, then EOS */
  if (left > 0 && cost < (uint64_t)left) return COH_OK;
  /* No token can fit when even the longest one leaves more than the budget
   * to complete: every token t costs at least (completion now) - len(t).
   * Then the restricted mask would be empty and the token stays, so skip
   * the step-per-allowed-token walk that would find that out (the common
   * case while a long schema's output cannot fit max_tokens at all). */
  if (e->max_token_bytes != SIZE_MAX) {
    uint64_t now;
    if ((rc = coh_grammar_state_min_bytes(s->gstate, &now, err))) return rc;
    if (now > (uint64_t)e->max_token_bytes &&
        (left <= 0 || now - (uint64_t)e->max_token_bytes >= (uint64_t)left)) {
      e->stats.budget_restricted++;
      return COH_OK;
    }
  }
  memcpy(e->budget_mask, allowed, e->mask_words * sizeof *e->budget_mask);
  if ((rc = coh_grammar_state_budget_mask(s->gstate, e->budget_mask, left - 1, &n_left, err)))
    return rc;
  e->stats.budget_restricted++;
  if (n_left == 0) return COH_OK;
  return coh__sample_masked(e->sampler, &s->sampling, lf, e->budget_mask, s->tokens, s->n_tokens,
                            &s->rng, out, err);
}

/* Samples from row `row`, position `pos` of a logits tensor [rows, seq, V]. */
static int sample_from(coh_engine *e, seq *s, OrtValue *logits, int64_t row,
                       int64_t seq_len, int64_t pos, int32_t *out,
                       coh_err *err) {
  const int64_t V = e->m->info.vocab;
  const void *base = tensor_data(e, logits);
  const float *lf;
  int rc;
  if (base == NULL) return coh__err(err, COH_EORT, "reading logits");
  if (e->m->logits_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
    coh__half_to_float_array((const uint16_t *)base + (row * seq_len + pos) * V,
                             e->logits_f32, (size_t)V);
    lf = e->logits_f32;
  } else {
    lf = (const float *)base + (row * seq_len + pos) * V;
  }
  e->cur_logits = lf;
  if (s->gstate != NULL && !s->gmask_fresh)
    return coh__err(err, COH_ESTATE, "internal: request %llu has no grammar mask",
                    (unsigned long long)s->id);
  {
    const uint32_t *allowed = s->gstate ? ws_bound(e, s) : NULL;
    rc = coh__sample_masked(e->sampler, &s->sampling, lf, allowed, s->tokens, s->n_tokens,
                            &s->rng, out, err);
    if (rc == COH_OK && s->gstate != NULL) rc = budget_check(e, s, lf, allowed, out, err);
  }
  if (rc == COH_OK && s->gstate != NULL) rc = grammar_advance(e, s, *out, err);
  if (rc) coh__err_prefix(err, "request %llu", (unsigned long long)s->id);
  return rc;
}

/* ---- prefill ------------------------------------------------------------- */

static int empty_kv(coh_engine *e, OrtValue **kv, coh_err *err) {
  const coh_model_info *info = &e->m->info;
  int64_t shape[4] = {1, info->n_kv_heads, 0, info->head_dim};
  int l, rc;
  for (l = 0; l < 2 * info->n_layers; l++)
    if ((rc = make_tensor(e, shape, 4, e->m->kv_type, &kv[l], err))) return rc;
  return COH_OK;
}

/* Copies position `pos` of a batch-1 logits tensor [1, seq, V] to out as
 * float32. */
static int logits_row(coh_engine *e, OrtValue *logits, int64_t pos, float *out) {
  const int64_t V = e->m->info.vocab;
  const void *base = tensor_data(e, logits);
  if (base == NULL) return -1;
  if (e->m->logits_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16)
    coh__half_to_float_array((const uint16_t *)base + pos * V, out, (size_t)V);
  else
    memcpy(out, (const float *)base + pos * V, (size_t)V * sizeof *out);
  return 0;
}

/* Decides whether this model can continue a prefill: run a prompt chunk of
 * several tokens on top of a non-empty cache.  Not every export can.  The
 * ONNX Runtime GenAI builder's attention-mask subgraph
 * (/model/attn_mask_reformat) builds the causal mask as a [seq, seq]
 * triangle and Expands it to [batch, 1, seq, past + seq]: that broadcast
 * only exists when past is 0 (a whole prompt) or seq is 1 (a decode step),
 * so a second chunk of 2..n tokens fails with "invalid expand shape".
 *
 * The probe asks the model itself, with three fixed tokens: one run of all
 * three (A), then one of the first token (B1) followed by one of the other
 * two on B1's cache (B2).  The model can continue when B2 runs and its
 * logits equal A's last two rows within a tolerance (so a graph that
 * accepts the shapes but masks wrongly is caught too).  Otherwise every
 * prompt is prefilled in one run, which is what a full recompute does and
 * is right on every export; only the peak memory of a long prompt grows.
 * A failing probe run is the expected answer, not an error, so its ONNX
 * Runtime log line is silenced.  Errors: out of memory only. */
static int probe_continuation(coh_engine *e, coh_err *err) {
  const coh_model_info *info = &e->m->info;
  const int L2 = 2 * info->n_layers;
  const int64_t V = info->vocab;
  /* ids, positions, mask of the three-token prompt */
  int64_t ids[3], pos[3] = {0, 1, 2}, mask[3] = {1, 1, 1};
  OrtValue **kv = NULL, **pa = NULL, **pb = NULL, **pc = NULL;
  OrtValue *la = NULL, *lb = NULL, *lc = NULL;
  OrtRunOptions *ro = NULL;
  float *fa = NULL, *fc = NULL;
  coh_err perr;
  int rc = COH_OK, ok = 0, i;
  OrtStatus *st;

  for (i = 0; i < 3; i++) ids[i] = (1 + 7 * i) % V;
  kv = coh__calloc((size_t)L2, sizeof *kv);
  pa = coh__calloc((size_t)L2, sizeof *pa);
  pb = coh__calloc((size_t)L2, sizeof *pb);
  pc = coh__calloc((size_t)L2, sizeof *pc);
  fa = coh__malloc((size_t)V * sizeof *fa);
  fc = coh__malloc((size_t)V * sizeof *fc);
  if (kv == NULL || pa == NULL || pb == NULL || pc == NULL || fa == NULL || fc == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto done;
  }
  st = e->api->CreateRunOptions(&ro);
  if (st == NULL) st = e->api->RunOptionsSetRunLogSeverityLevel(ro, ORT_LOGGING_LEVEL_FATAL);
  if (st != NULL) e->api->ReleaseStatus(st); /* then the log line shows: harmless */
  if (empty_kv(e, kv, &perr) ||
      run_model(e, 1, 3, 3, ids, pos, mask, kv, 0, pa, &la, ro, &perr) ||
      run_model(e, 1, 1, 1, ids, pos, mask, kv, 0, pb, &lb, ro, &perr) ||
      run_model(e, 1, 2, 3, ids + 1, pos + 1, mask, pb, 1, pc, &lc, ro, &perr))
    goto done; /* ok stays 0 */
  ok = 1;
  for (i = 0; ok && i < 2; i++) {
    /* fp32 kernels differ by reassociation only (~1e-5 here); fp16 by
     * about one half-precision ulp of the largest logit.  A wrong mask or
     * wrong positions move logits by whole units. */
    const float rel = e->m->logits_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? 2e-2f : 1e-3f;
    float scale = 1.0f, worst = 0.0f;
    int64_t v;
    if (logits_row(e, la, 1 + i, fa) || logits_row(e, lc, i, fc)) {
      ok = 0;
      break;
    }
    for (v = 0; v < V; v++) {
      float a = fa[v] < 0 ? -fa[v] : fa[v], d = fa[v] - fc[v];
      if (a > scale) scale = a;
      if (d < 0) d = -d;
      if (d != d) d = 3.0e38f; /* NaN counts as the worst */
      if (d > worst) worst = d;
    }
    ok = worst <= rel * scale;
  }
done:
  if (rc == COH_OK) e->continues = ok;
  release_kv(e, kv);
  release_kv(e, pa);
  release_kv(e, pb);
  release_kv(e, pc);
  if (la) e->api->ReleaseValue(la);
  if (lb) e->api->ReleaseValue(lb);
  if (lc) e->api->ReleaseValue(lc);
  if (ro) e->api->ReleaseRunOptions(ro);
  coh__free(kv);
  coh__free(pa);
  coh__free(pb);
  coh__free(pc);
  coh__free(fa);
  coh__free(fc);
  return rc;
}

/* ---- prefix cache -------------------------------------------------------- *
 * Why a cached block is the same bits as a recomputed one: with the cache on
 * or off, a prompt is prefilled in the same chunks of prefill_chunk tokens at
 * the same positions (0, C, 2C, ...), each run on the cache of the chunks
 * before it.  A block holds the K/V columns one such run wrote for its
 * chunk; a later prompt with the same tokens up to the block's end would run
 * that very chunk with the same inputs (same ids, positions, mask, and a
 * past that is, by induction, the same bits), so it would compute the same
 * columns.  Loading them instead only skips the run.  The chunk that holds a
 * prompt's last token always runs (its logits give the first token), and a
 * loaded chunk still takes its engine step, so when a request samples, and
 * everything after, is the same with the cache on or off.  Only full chunks
 * that prefill computed are stored (decode steps compute K/V in other
 * shapes), and only on models that continue a prefill (probe_continuation):
 * on the others a prompt runs whole and no block can be reused. */

/* Bytes of one block: K and V of every layer, kv_heads x C x head_dim. */
static size_t block_bytes(const coh_engine *e) {
  const coh_model_info *info = &e->m->info;
  return (size_t)2 * (size_t)info->n_layers * (size_t)info->n_kv_heads *
         (size_t)e->m->prefill_chunk * (size_t)info->head_dim * kv_elem(e);
}

/* The cache, made on first use; NULL when off. */
static coh__pcache *pcache_get(coh_engine *e) {
  if (e->pcache == NULL && e->pcache_budget > 0 && !e->pcache_failed &&
      coh__pcache_new(e->pcache_budget, block_bytes(e), e->m->prefill_chunk, &e->pcache) != 0)
    e->pcache_failed = 1; /* out of memory: run without; results are the same */
  return e->pcache;
}

/* Moves s's pin to b (may be NULL). */
static void seq_set_block(seq *s, coh__pblock *b) {
  coh__pblock_pin(b, 1);
  coh__pblock_pin(s->pc_last, -1);
  s->pc_last = b;
}

/* Copies columns [col, col + C) of every layer's K/V (src: [1, heads, cols,
 * head_dim]) into a block, or back (to_block 0: the block's columns into
 * columns [col, col + C) of dst tensors). */
static void block_copy(coh_engine *e, OrtValue **kv, int64_t cols, int64_t col,
                       unsigned char *blk, int to_block) {
  const coh_model_info *info = &e->m->info;
  const size_t cb = (size_t)info->head_dim * kv_elem(e), C = (size_t)e->m->prefill_chunk;
  int l, h;
  for (l = 0; l < 2 * info->n_layers; l++) {
    unsigned char *t = tensor_data(e, kv[l]);
    for (h = 0; h < info->n_kv_heads; h++) {
      unsigned char *tc = t + ((size_t)h * (size_t)cols + (size_t)col) * cb;
      unsigned char *bc = blk + ((size_t)l * (size_t)info->n_kv_heads + (size_t)h) * C * cb;
      if (to_block) memcpy(bc, tc, C * cb);
      else memcpy(tc, bc, C * cb);
    }
  }
}

/* Loads block b as s's next chunk: s->own_kv grows by C columns. */
static int load_block(coh_engine *e, seq *s, coh__pblock *b, coh_err *err) {
  const coh_model_info *info = &e->m->info;
  const int L2 = 2 * info->n_layers;
  const int64_t C = e->m->prefill_chunk, cols = s->n_cached + C;
  const size_t cb = (size_t)info->head_dim * kv_elem(e);
  int64_t shape[4] = {1, info->n_kv_heads, cols, info->head_dim};
  OrtValue **nkv = coh__calloc((size_t)L2, sizeof *nkv);
  int l, h, rc = COH_OK;
  if (nkv == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  for (l = 0; l < L2 && rc == COH_OK; l++) {
    unsigned char *dst, *src;
    if ((rc = make_tensor(e, shape, 4, e->m->kv_type, &nkv[l], err))) break;
    dst = tensor_data(e, nkv[l]);
    src = s->n_cached > 0 ? tensor_data(e, s->own_kv[l]) : NULL;
    if (dst == NULL || (s->n_cached > 0 && src == NULL)) {
      rc = coh__err(err, COH_EORT, "reading a KV tensor");
      break;
    }
    for (h = 0; h < info->n_kv_heads && src; h++)
      memcpy(dst + (size_t)h * (size_t)cols * cb, src + (size_t)h * (size_t)s->n_cached * cb,
             (size_t)s->n_cached * cb);
  }
  if (rc == COH_OK) {
    block_copy(e, nkv, cols, s->n_cached, (unsigned char *)coh__pblock_data(b), 0);
    release_kv(e, s->own_kv);
    memcpy(s->own_kv, nkv, (size_t)L2 * sizeof *nkv);
  } else {
    release_kv(e, nkv);
  }
  coh__free(nkv);
  return rc;
}

/* Marks the blocks that the requests waiting to prefill will load (the
 * engine's knowledge of what runs next), so that eviction keeps them. */
static void pcache_mark_wanted(coh_engine *e) {
  const int64_t C = e->m->prefill_chunk;
  seq *s;
  if (e->pcache == NULL) return;
  for (s = e->head; s; s = s->next) {
    coh__pblock *b;
    int64_t at;
    if ((s->state != SEQ_QUEUED && s->state != SEQ_PREFILL) || is_finished(s) || s->pc_off)
      continue;
    if (s->state == SEQ_PREFILL && s->n_cached > 0 && s->pc_last == NULL) continue;
    b = s->state == SEQ_PREFILL ? s->pc_last : NULL;
    at = s->state == SEQ_PREFILL ? s->n_cached : 0;
    for (; at + C < (int64_t)s->n_prompt; at += C) {
      if ((b = coh__pcache_find(e->pcache, b, s->tokens + at, 0, 0)) == NULL) break;
      coh__pcache_want(e->pcache, b, e->stats.steps);
    }
  }
}

/* Runs the next prompt chunk of s (batch 1). */
static int prefill_chunk(coh_engine *e, seq *s, coh_err *err) {
  const coh_model_info *info = &e->m->info;
  const int L2 = 2 * info->n_layers;
  int64_t chunk = (int64_t)s->n_prompt - s->n_cached;
  int64_t *ids = NULL, *pos, *mask, i;
  OrtValue **present = NULL, *logits = NULL;
  int rc;
  if (chunk > e->m->prefill_chunk) {
    /* Only a prompt's first chunk decides: a prompt never switches mode
     * half-way (the probe runs before any prompt has been chunked). */
    if (e->continues < 0) {
      if (s->n_cached != 0)
        return coh__err(err, COH_ESTATE, "internal: chunked prefill before the probe");
      if ((rc = probe_continuation(e, err))) return rc;
    }
    if (e->continues) chunk = e->m->prefill_chunk;
  }
  if (chunk <= 0) return coh__err(err, COH_ESTATE, "internal: empty prefill chunk");
  if (s->own_kv == NULL) {
    s->own_kv = coh__calloc((size_t)L2, sizeof *s->own_kv);
    if (s->own_kv == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    if ((rc = empty_kv(e, s->own_kv, err))) return rc;
  }
  /* A full chunk that is not the prompt's last may come from the cache
   * (see "prefix cache" above): it takes this step, without a run. */
  if (e->continues == 1 && chunk == e->m->prefill_chunk && !s->pc_off &&
      (s->n_cached == 0 || s->pc_last != NULL) && s->n_cached + chunk < (int64_t)s->n_prompt &&
      pcache_get(e) != NULL) {
    coh__pblock *b = coh__pcache_find(e->pcache, s->pc_last, s->tokens + s->n_cached,
                                      e->stats.steps, 1);
    if (b != NULL) {
      if ((rc = load_block(e, s, b, err))) return rc;
      seq_set_block(s, b);
      s->n_cached += chunk;
      e->stats.prefill_runs++;
      e->stats.prefill_tokens += (uint64_t)chunk;
      e->stats.prefix_hit_tokens += (uint64_t)chunk;
      return COH_OK;
    }
  }
  ids = coh__malloc((size_t)(2 * chunk + s->n_cached + chunk) * sizeof *ids);
  present = coh__calloc((size_t)L2, sizeof *present);
  if (ids == NULL || present == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto done;
  }
  pos = ids + chunk;
  mask = pos + chunk;
  for (i = 0; i < chunk; i++) {
    ids[i] = s->tokens[s->n_cached + i];
    pos[i] = s->n_cached + i;
  }
  for (i = 0; i < s->n_cached + chunk; i++) mask[i] = 1;
  {
    /* the first token's mask, computed during the last chunk's run */
    const int last = s->n_cached + chunk == (int64_t)s->n_prompt;
    int mrc;
    if (last) masks_start(e, &s, 1);
    rc = run_model(e, 1, chunk, s->n_cached + chunk, ids, pos, mask, s->own_kv,
                   s->n_cached > 0, present, &logits, NULL, err);
    if (last) {
      coh_err merr;
      mrc = masks_finish(e, &s, 1, &merr);
      if (rc == COH_OK && mrc != COH_OK) {
        *err = merr;
        rc = mrc;
      }
    }
  }
  if (rc) goto done;
  e->stats.prefill_runs++;
  release_kv(e, s->own_kv);
  memcpy(s->own_kv, present, (size_t)L2 * sizeof *present);
  if (e->continues == 1 && chunk == e->m->prefill_chunk && !s->pc_off &&
      (s->n_cached == 0 || s->pc_last != NULL) && pcache_get(e) != NULL) {
    /* keep the block this run computed; when it cannot be kept, the later
     * blocks of this prompt have no parent to hang from */
    void *data;
    coh__pblock *b = coh__pcache_insert(e->pcache, s->pc_last, s->tokens + s->n_cached,
                                        e->stats.steps, &data);
    if (b == NULL)
      b = coh__pcache_find(e->pcache, s->pc_last, s->tokens + s->n_cached, e->stats.steps, 0);
    else
      block_copy(e, s->own_kv, s->n_cached + chunk, s->n_cached, data, 1);
    seq_set_block(s, b);
    if (b == NULL) s->pc_off = 1;
  }
  s->n_cached += chunk;
  e->stats.prefill_tokens += (uint64_t)chunk;
  if (s->n_cached == (int64_t)s->n_prompt) {
    int32_t tok;
    seq_set_block(s, NULL); /* the prompt is done with the cache */
    if ((rc = sample_from(e, s, logits, 0, chunk, chunk - 1, &tok, err))) goto done;
    s->state = SEQ_DECODE;
    if ((rc = accept_token(e, s, tok)))
      rc = coh__err(err, rc, "out of memory");
  }
done:
  if (logits) e->api->ReleaseValue(logits);
  coh__free(present);
  coh__free(ids);
  return rc;
}

/* ---- decode batch ---------------------------------------------------------- */

static void batch_clear(coh_engine *e) {
  decode_batch *b = &e->batch;
  int i;
  release_kv(e, b->kv);
  coh__free(b->kv);
  for (i = 0; i < b->rows; i++)
    if (b->row_seq[i]) b->row_seq[i]->row = -1;
  coh__free(b->row_seq);
  coh__free(b->valid);
  memset(b, 0, sizeof *b);
}

/* Lays out a fresh batch for `rows` (in id order): every row's cached
 * columns packed at the front, from the old batch or the row's own prefill
 * cache. */
static int batch_rebuild(coh_engine *e, seq **rows, int n, coh_err *err) {
  const coh_model_info *info = &e->m->info;
  const int L2 = 2 * info->n_layers;
  decode_batch nb;
  int64_t cols = 0, shape[4];
  int i, l, rc;
  memset(&nb, 0, sizeof nb);
  for (i = 0; i < n; i++)
    if (rows[i]->n_cached > cols) cols = rows[i]->n_cached;
  nb.rows = n;
  nb.cols = cols;
  nb.row_seq = coh__malloc((size_t)n * sizeof *nb.row_seq);
  nb.valid = coh__calloc((size_t)n * (size_t)cols + 1, sizeof *nb.valid);
  nb.kv = coh__calloc((size_t)L2, sizeof *nb.kv);
  if (nb.row_seq == NULL || nb.valid == NULL || nb.kv == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto fail;
  }
  shape[0] = n;
  shape[1] = info->n_kv_heads;
  shape[2] = cols;
  shape[3] = info->head_dim;
  for (l = 0; l < L2; l++) {
    void *dst;
    const size_t col_bytes = (size_t)info->head_dim * kv_elem(e);
    if ((rc = make_tensor(e, shape, 4, e->m->kv_type, &nb.kv[l], err))) goto fail;
    dst = tensor_data(e, nb.kv[l]);
    for (i = 0; i < n; i++) {
      seq *s = rows[i];
      const void *src;
      int64_t src_cols, src_row, got;
      const int64_t *valid;
      if (s->row >= 0) {
        src = tensor_data(e, e->batch.kv[l]);
        src_cols = e->batch.cols;
        src_row = s->row;
        valid = e->batch.valid + (size_t)s->row * (size_t)e->batch.cols;
      } else {
        src = tensor_data(e, s->own_kv[l]);
        src_cols = s->n_cached;
        src_row = 0;
        valid = NULL;
      }
      got = coh__kv_pack_row(dst, cols, i, src, src_cols, src_row, valid,
                             info->n_kv_heads, info->head_dim, kv_elem(e));
      if (got != s->n_cached) {
        rc = coh__err(err, COH_ESTATE, "internal: KV row of request %llu has %lld columns, expected %lld",
                      (unsigned long long)s->id, (long long)got, (long long)s->n_cached);
        goto fail;
      }
      /* Padding must be finite (masked scores are still computed) and the
       * arena's memory is not zeroed: clear only the columns after the
       * row's packed ones, not the whole tensor. */
      if (got < cols) {
        int h;
        for (h = 0; h < info->n_kv_heads; h++)
          memset((char *)dst + (((size_t)i * (size_t)info->n_kv_heads + (size_t)h) * (size_t)cols +
                                (size_t)got) * col_bytes,
                 0, (size_t)(cols - got) * col_bytes);
      }
    }
  }
  for (i = 0; i < n; i++) {
    int64_t c;
    nb.row_seq[i] = rows[i];
    for (c = 0; c < rows[i]->n_cached; c++) nb.valid[(size_t)i * (size_t)cols + (size_t)c] = 1;
  }
  batch_clear(e);
  for (i = 0; i < n; i++) {
    rows[i]->row = i;
    if (rows[i]->own_kv) {
      release_kv(e, rows[i]->own_kv);
      coh__free(rows[i]->own_kv);
      rows[i]->own_kv = NULL;
    }
  }
  e->batch = nb;
  e->stats.batch_rebuilds++;
  return COH_OK;
fail:
  release_kv(e, nb.kv);
  coh__free(nb.kv);
  coh__free(nb.row_seq);
  coh__free(nb.valid);
  return rc;
}

static int decode_concat(coh_engine *e, seq **rows, int n, coh_err *err);

static int decode_step(coh_engine *e, seq **rows, int n, coh_err *err) {
  const coh_model_info *info = &e->m->info;
  const int L2 = 2 * info->n_layers;
  decode_batch *b;
  int64_t *ids = NULL, *pos, *mask = NULL, *valid = NULL, cols, c;
  OrtValue **present = NULL, *logits = NULL;
  int i, rc, same = e->batch.rows == n;

  if (!e->m->gqa) return decode_concat(e, rows, n, err);
  for (i = 0; same && i < n; i++) same = e->batch.row_seq[i] == rows[i];
  if (!same && (rc = batch_rebuild(e, rows, n, err))) return rc;
  b = &e->batch;
  cols = b->cols;

  ids = coh__malloc((size_t)(2 * n) * sizeof *ids);
  mask = coh__malloc((size_t)n * (size_t)(cols + 1) * sizeof *mask);
  valid = coh__malloc((size_t)n * (size_t)(cols + 1) * sizeof *valid);
  present = coh__calloc((size_t)L2, sizeof *present);
  if (ids == NULL || mask == NULL || valid == NULL || present == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto done;
  }
  pos = ids + n;
  for (i = 0; i < n; i++) {
    seq *s = rows[i];
    int64_t *mrow = mask + (size_t)i * (size_t)(cols + 1);
    const int64_t *vrow = b->valid + (size_t)i * (size_t)cols;
    ids[i] = s->tokens[s->n_tokens - 1];
    pos[i] = s->n_cached;
    if (e->m->gqa) {
      /* valid columns are a prefix; the new token lands at n_cached */
      for (c = 0; c <= cols; c++) mrow[c] = c <= s->n_cached;
    } else {
      for (c = 0; c < cols; c++) mrow[c] = vrow[c];
      mrow[cols] = 1;
    }
  }
  masks_start(e, rows, n);
  rc = run_model(e, n, 1, cols + 1, ids, pos, mask, b->kv, 1, present, &logits, NULL, err);
  {
    coh_err merr;
    int mrc = masks_finish(e, rows, n, &merr);
    if (rc == COH_OK && mrc != COH_OK) {
      *err = merr;
      rc = mrc;
    }
  }
  if (rc) goto done;

  /* The presents become the batch's cache: one more column per row. */
  release_kv(e, b->kv);
  memcpy(b->kv, present, (size_t)L2 * sizeof *present);
  for (i = 0; i < n; i++) {
    int64_t *vrow = valid + (size_t)i * (size_t)(cols + 1);
    const int64_t *orow = b->valid + (size_t)i * (size_t)cols;
    for (c = 0; c < cols; c++) vrow[c] = orow[c];
    vrow[cols] = 0;
    vrow[e->m->gqa ? rows[i]->n_cached : cols] = 1;
  }
  coh__free(b->valid);
  b->valid = valid;
  valid = NULL;
  b->cols = cols + 1;
  e->stats.decode_tokens += (uint64_t)n;
  e->stats.last_decode_batch = n;

  for (i = 0; i < n; i++) {
    seq *s = rows[i];
    int32_t tok;
    s->n_cached++;
    if ((rc = sample_from(e, s, logits, i, 1, 0, &tok, err))) goto done;
    if ((rc = accept_token(e, s, tok))) {
      rc = coh__err(err, rc, "out of memory");
      goto done;
    }
  }
done:
  if (logits) e->api->ReleaseValue(logits);
  coh__free(present);
  coh__free(ids);
  coh__free(mask);
  coh__free(valid);
  return rc;
}

/* ---- bucketed decode (concat models) --------------------------------------- *
 * Why: a concat model attends over past ++ new with an attention mask, and
 * ONNX Runtime reduces over all columns of the tensor (softmax sums, the
 * probabilities x V MatMul) in vectorised blocks.  Masked columns add exact
 * zeros, but where a row's real columns fall among those blocks, and how
 * many columns there are, decide the order of the additions, so a row
 * padded to its batch's longest row rounds differently from the same row
 * alone (test_batch_invariance: 39 of 40 requests differed in logit bits).
 * So a row's attention layout is made a function of the row alone: with n
 * cached tokens, its past has P = T - 1 columns, where T = n + 1 rounded up
 * to a multiple of COH__DECODE_BUCKET (at most the context): the n real
 * columns first, zeros up to P, the new token at column P.  Rows with the
 * same T share one OrtRun (every attention slice then has the same shape
 * and layout as when the row runs alone; the other operators work row by
 * row), rows of different T run in separate calls of the same step.  The
 * past of a bucket persists between steps (struct cgroup): each row keeps a
 * slot, a step writes only its new column into it, and a row is copied
 * whole only when it joins a bucket or another row's leaving moves it into
 * the freed slot.  (Gathering every row into fresh tensors each step, the
 * first version, copied the whole cache per step: the largest CPU cost
 * outside Run in a profile of `cohort serve`, bench/RESULTS.md.)  A row's
 * place among the slots
 * does not change its result, as batch invariance requires anyway.
 * GQA models attend over each row's own length already and keep the
 * packed batch (decode_step). */
#define COH__DECODE_BUCKET 64

static int64_t bucket_cols(const coh_engine *e, int64_t n_cached) {
  int64_t t = (n_cached + 1 + COH__DECODE_BUCKET - 1) / COH__DECODE_BUCKET * COH__DECODE_BUCKET;
  if (e->m->info.context > 0 && t > e->m->info.context && n_cached + 1 <= e->m->info.context)
    t = e->m->info.context;
  return t;
}

/* The group of T columns: T is a multiple of the bucket or the context (the
 * last, shorter bucket), so the bucket number names it. */
static int bucket_index(int64_t T) {
  return (int)((T + COH__DECODE_BUCKET - 1) / COH__DECODE_BUCKET - 1);
}

/* Bytes of one slot of one store tensor. */
static size_t cg_slot_bytes(const coh_engine *e, const cgroup *g) {
  const coh_model_info *info = &e->m->info;
  return (size_t)info->n_kv_heads * (size_t)(g->T - 1) * (size_t)info->head_dim * kv_elem(e);
}

static void cg_release(coh_engine *e, cgroup *g) {
  int j;
  for (j = 0; j < g->n; j++) g->slot[j]->cg = -1;
  release_kv(e, g->store);
  coh__free(g->store);
  coh__free(g->data);
  coh__free(g->slot);
  memset(g, 0, sizeof *g);
}

static void cgroups_clear(coh_engine *e) {
  int g;
  for (g = 0; g < e->n_cg; g++) cg_release(e, &e->cg[g]);
}

/* Gives group g (of T columns) room for `need` slots: the store grows by
 * doubling (the rows in use are copied, in place order) and shrinks to half
 * when a quarter is in use, so a burst does not hold its memory. */
static int cg_resize(coh_engine *e, cgroup *g, int64_t T, int need, coh_err *err) {
  const coh_model_info *info = &e->m->info;
  const int L2 = 2 * info->n_layers;
  OrtValue **store = NULL;
  char **data = NULL;
  seq **slot = NULL;
  int64_t shape[4];
  size_t bytes;
  int cap = g->cap, l, rc = COH_OK;
  if (g->cap == 0) g->T = T;
  while (cap < need) cap = cap ? 2 * cap : 4;
  while (cap > 4 && need * 4 <= cap) cap /= 2;
  if (cap == g->cap) return COH_OK;
  bytes = cg_slot_bytes(e, g);
  store = coh__calloc((size_t)L2, sizeof *store);
  data = coh__calloc((size_t)L2, sizeof *data);
  slot = coh__calloc((size_t)cap, sizeof *slot);
  if (store == NULL || data == NULL || slot == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto fail;
  }
  shape[0] = cap;
  shape[1] = info->n_kv_heads;
  shape[2] = T - 1;
  shape[3] = info->head_dim;
  for (l = 0; l < L2; l++) {
    if ((rc = make_tensor(e, shape, 4, e->m->kv_type, &store[l], err))) goto fail;
    if ((data[l] = tensor_data(e, store[l])) == NULL) {
      rc = coh__err(err, COH_EORT, "reading a KV tensor");
      goto fail;
    }
    if (g->n > 0) memcpy(data[l], g->data[l], (size_t)g->n * bytes);
  }
  if (g->n > 0) memcpy(slot, g->slot, (size_t)g->n * sizeof *slot);
  release_kv(e, g->store);
  coh__free(g->store);
  coh__free(g->data);
  coh__free(g->slot);
  g->store = store;
  g->data = data;
  g->slot = slot;
  g->cap = cap;
  e->stats.batch_rebuilds++;
  return COH_OK;
fail:
  release_kv(e, store);
  coh__free(store);
  coh__free(data);
  coh__free(slot);
  return rc;
}

/* Takes s out of its group: the last slot moves into its place (one row
 * copy); an emptied group frees its memory. */
static void cg_remove(coh_engine *e, seq *s) {
  cgroup *g;
  int last, l, j = s->cg_row;
  if (s->cg < 0) return;
  g = &e->cg[s->cg];
  s->cg = -1;
  last = g->n - 1;
  if (j != last) {
    const size_t bytes = cg_slot_bytes(e, g);
    for (l = 0; l < 2 * e->m->info.n_layers; l++)
      memcpy(g->data[l] + (size_t)j * bytes, g->data[l] + (size_t)last * bytes, bytes);
    g->slot[j] = g->slot[last];
    g->slot[j]->cg_row = j;
  }
  g->n--;
  if (g->n == 0) cg_release(e, g);
  else {
    coh_err ignored;
    (void)cg_resize(e, g, g->T, g->n, &ignored); /* shrinking is optional */
  }
}

/* Puts s into the group of its bucket: its n_cached real columns from
 * src[l] (row src_row of a tensor of src_cols columns), zeros after. */
static int cg_add(coh_engine *e, seq *s, char *const *src, int64_t src_cols, int64_t src_row,
                  coh_err *err) {
  const coh_model_info *info = &e->m->info;
  const int64_t T = bucket_cols(e, s->n_cached);
  const int k = bucket_index(T);
  cgroup *g;
  int l, rc;
  if (k >= e->n_cg) {
    int n = k + 1;
    cgroup *p = coh__realloc(e->cg, (size_t)n * sizeof *p);
    if (p == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    memset(p + e->n_cg, 0, (size_t)(n - e->n_cg) * sizeof *p);
    e->cg = p;
    e->n_cg = n;
  }
  g = &e->cg[k];
  if (g->cap > 0 && g->T != T)
    return coh__err(err, COH_ESTATE, "internal: bucket %d holds %lld columns, not %lld", k,
                    (long long)g->T, (long long)T);
  if ((rc = cg_resize(e, g, T, g->n + 1, err))) return rc;
  for (l = 0; l < 2 * info->n_layers; l++)
    coh__kv_copy_prefix(g->data[l], T - 1, g->n, src[l], src_cols, src_row, s->n_cached,
                        info->n_kv_heads, info->head_dim, kv_elem(e));
  g->slot[g->n] = s;
  s->cg = k;
  s->cg_row = g->n++;
  return COH_OK;
}

/* One decode step of concat rows: every busy group runs once with its store
 * as the past (rows in slot order).  Afterwards a row whose bucket still has
 * room gets its new column written into its slot (column n_cached, which
 * was padding): one column per row and layer, not a copy of the cache.  A
 * row that filled its bucket moves to the next bucket, from the present
 * tensor (whose T columns are then all real). */
static int decode_concat(coh_engine *e, seq **rows, int n, coh_err *err) {
  const coh_model_info *info = &e->m->info;
  const int L2 = 2 * info->n_layers;
  const int H = info->n_kv_heads;
  const size_t col_bytes = (size_t)info->head_dim * kv_elem(e);
  OrtValue ***present = NULL, **logits = NULL, **past = NULL;
  int64_t *ids = NULL, *pos, *mask = NULL, max_t = 0;
  int *order = NULL, *lrow = NULL, *lgrp = NULL, *moving = NULL;
  int ng = 0, n_moving = 0, i, g, l, rc = COH_OK;

  for (i = 0; i < n; i++) {
    seq *s = rows[i];
    if (s->cg < 0) {
      char **src = coh__calloc((size_t)L2, sizeof *src);
      if (src == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
      for (l = 0; l < L2 && rc == COH_OK; l++)
        if ((src[l] = tensor_data(e, s->own_kv[l])) == NULL)
          rc = coh__err(err, COH_EORT, "reading a KV tensor");
      if (rc == COH_OK) rc = cg_add(e, s, src, s->n_cached, 0, err);
      coh__free(src);
      if (rc) return rc;
      release_kv(e, s->own_kv);
      coh__free(s->own_kv);
      s->own_kv = NULL;
    } else if (e->cg[s->cg].T != bucket_cols(e, s->n_cached)) {
      return coh__err(err, COH_ESTATE,
                      "internal: request %llu with %lld cached tokens is in the bucket of %lld "
                      "columns",
                      (unsigned long long)s->id, (long long)s->n_cached,
                      (long long)e->cg[s->cg].T);
    }
  }
  order = coh__calloc((size_t)n, sizeof *order);
  lrow = coh__calloc((size_t)n, sizeof *lrow);
  lgrp = coh__calloc((size_t)n, sizeof *lgrp);
  moving = coh__calloc((size_t)n, sizeof *moving);
  present = coh__calloc((size_t)n, sizeof *present);
  logits = coh__calloc((size_t)n, sizeof *logits);
  past = coh__calloc((size_t)L2, sizeof *past);
  ids = coh__malloc((size_t)(2 * n) * sizeof *ids);
  if (order == NULL || lrow == NULL || lgrp == NULL || moving == NULL || present == NULL ||
      logits == NULL || past == NULL || ids == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto done;
  }
  pos = ids + n;
  /* groups in order of their first row (rows are in id order); every row
   * of a group is in rows (finished requests left their group when they
   * were reaped) */
  for (i = 0; i < n; i++) {
    for (g = 0; g < ng && order[g] != rows[i]->cg; g++) {
    }
    if (g == ng) {
      order[ng++] = rows[i]->cg;
      if (e->cg[rows[i]->cg].T > max_t) max_t = e->cg[rows[i]->cg].T;
    }
    lgrp[i] = g;
    lrow[i] = rows[i]->cg_row;
  }
  {
    int counted = 0;
    for (g = 0; g < ng; g++) counted += e->cg[order[g]].n;
    if (counted != n) {
      rc = coh__err(err, COH_ESTATE, "internal: the buckets hold %d rows, the step has %d",
                    counted, n);
      goto done;
    }
  }
  mask = coh__malloc((size_t)n * (size_t)max_t * sizeof *mask);
  if (mask == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto done;
  }
  masks_start(e, rows, n);
  for (g = 0; g < ng && rc == COH_OK; g++) {
    cgroup *cg = &e->cg[order[g]];
    const int64_t T = cg->T, P = T - 1, gn = cg->n;
    const size_t bytes = cg_slot_bytes(e, cg);
    int64_t shape[4], c;
    int j, h;
    for (j = 0; j < gn; j++) {
      seq *s = cg->slot[j];
      int64_t *mrow = mask + (size_t)j * (size_t)T;
      ids[j] = s->tokens[s->n_tokens - 1];
      pos[j] = s->n_cached;
      for (c = 0; c < T; c++) mrow[c] = c < s->n_cached || c == P;
    }
    shape[0] = gn;
    shape[1] = H;
    shape[2] = P;
    shape[3] = info->head_dim;
    for (l = 0; l < L2 && rc == COH_OK; l++)
      rc = COH_ORT_CALL(e->api->CreateTensorWithDataAsOrtValue(
                            e->m->cpu_mem, cg->data[l], (size_t)gn * bytes, shape, 4,
                            e->m->kv_type, &past[l]),
                        "a KV tensor");
    if (rc == COH_OK && (present[g] = coh__calloc((size_t)L2, sizeof *present[g])) == NULL)
      rc = coh__err(err, COH_ENOMEM, "out of memory");
    if (rc == COH_OK)
      rc = run_model(e, gn, 1, T, ids, pos, mask, past, 1, present[g], &logits[g], NULL, err);
    for (l = 0; l < L2; l++) {
      if (past[l]) e->api->ReleaseValue(past[l]);
      past[l] = NULL;
    }
    /* the new column into each slot with room; a full row moves later */
    for (l = 0; l < L2 && rc == COH_OK; l++) {
      const char *src = tensor_data(e, present[g][l]);
      if (src == NULL) {
        rc = coh__err(err, COH_EORT, "reading a KV tensor");
        break;
      }
      for (j = 0; j < gn; j++) {
        const int64_t nc = cg->slot[j]->n_cached;
        if (nc >= P) continue;
        for (h = 0; h < H; h++)
          memcpy(cg->data[l] + (size_t)j * bytes + ((size_t)h * (size_t)P + (size_t)nc) * col_bytes,
                 src + (((size_t)j * (size_t)H + (size_t)h) * (size_t)T + (size_t)P) * col_bytes,
                 col_bytes);
      }
    }
  }
  {
    coh_err merr;
    int mrc = masks_finish(e, rows, n, &merr);
    if (rc == COH_OK && mrc != COH_OK) {
      *err = merr;
      rc = mrc;
    }
  }
  if (rc) goto done;
  for (i = 0; i < n; i++)
    if (rows[i]->n_cached >= e->cg[rows[i]->cg].T - 1) moving[n_moving++] = i;
  e->stats.decode_tokens += (uint64_t)n;
  e->stats.last_decode_batch = n;
  for (i = 0; i < n; i++) {
    seq *s = rows[i];
    int32_t tok;
    s->n_cached++;
    if ((rc = sample_from(e, s, logits[lgrp[i]], lrow[i], 1, 0, &tok, err))) goto done;
    if ((rc = accept_token(e, s, tok))) {
      rc = coh__err(err, rc, "out of memory");
      goto done;
    }
  }
  /* rows that filled their bucket move on (a finished one just leaves);
   * the present row holds all T columns */
  for (g = 0; g < n_moving; g++) {
    seq *s;
    char **src;
    int64_t T;
    i = moving[g];
    s = rows[i];
    T = e->cg[s->cg].T;
    cg_remove(e, s);
    if (is_finished(s)) continue;
    if ((src = coh__calloc((size_t)L2, sizeof *src)) == NULL) {
      rc = coh__err(err, COH_ENOMEM, "out of memory");
      goto done;
    }
    for (l = 0; l < L2 && rc == COH_OK; l++)
      if ((src[l] = tensor_data(e, present[lgrp[i]][l])) == NULL)
        rc = coh__err(err, COH_EORT, "reading a KV tensor");
    if (rc == COH_OK) rc = cg_add(e, s, src, T, lrow[i], err);
    coh__free(src);
    if (rc) goto done;
  }
done:
  for (g = 0; g < ng && present != NULL; g++) {
    if (logits[g]) e->api->ReleaseValue(logits[g]);
    if (present[g]) {
      release_kv(e, present[g]);
      coh__free(present[g]);
    }
  }
  coh__free(present);
  coh__free(logits);
  coh__free(past);
  coh__free(order);
  coh__free(lrow);
  coh__free(lgrp);
  coh__free(moving);
  coh__free(ids);
  coh__free(mask);
  return rc;
}

/* ---- engine ---------------------------------------------------------------- */

int coh_engine_new(coh_model *m, int max_batch, coh_engine **out,
                   coh_err *err) {
  coh_engine *e;
  int rc, l;
  size_t k = 0;
  *out = NULL;
  if (max_batch < 1 || max_batch > 1024)
    return coh__err(err, COH_EINVAL, "max batch %d is out of range [1, 1024]", max_batch);
  e = coh__calloc(1, sizeof *e);
  if (e == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  e->m = m;
  e->api = m->api;
  e->max_batch = max_batch;
  e->next_id = 1;
  e->continues = -1;
  e->pcache_budget = (size_t)COH_PREFIX_CACHE_DEFAULT_MB << 20;
  e->n_in = 4 + 2 * (size_t)m->info.n_layers;
  e->n_out = 1 + 2 * (size_t)m->info.n_layers;
  e->in_names = coh__calloc(e->n_in, sizeof *e->in_names);
  e->out_names = coh__calloc(e->n_out, sizeof *e->out_names);
  e->logits_f32 = coh__malloc((size_t)m->info.vocab * sizeof(float));
  if (e->in_names == NULL || e->out_names == NULL || e->logits_f32 == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = coh__sampler_new((size_t)m->info.vocab, &e->sampler, err))) goto fail;
  {
    OrtStatus *st = e->api->CreateAllocator(m->session, m->cpu_mem, &e->alloc);
    if (st == NULL) {
      e->alloc_owned = 1;
    } else {
      /* No arena for CPU memory (e.g. disabled): fall back, slower only. */
      e->api->ReleaseStatus(st);
      e->alloc = NULL;
      if ((rc = COH_ORT_CALL(e->api->GetAllocatorWithDefaultOptions(&e->alloc), "allocator")))
        goto fail;
    }
  }
  /* Input order must match run_model(). */
  e->in_names[k++] = m->name_input_ids;
  e->in_names[k++] = m->name_mask;
  if (m->info.has_position_ids) e->in_names[k++] = m->name_position_ids;
  if (m->info.has_use_cache_branch) e->in_names[k++] = m->name_use_cache_branch;
  for (l = 0; l < m->info.n_layers; l++) {
    e->in_names[k++] = m->past_key[l];
    e->in_names[k++] = m->past_value[l];
  }
  e->out_names[0] = m->name_logits;
  for (l = 0; l < m->info.n_layers; l++) {
    e->out_names[1 + 2 * l] = m->present_key[l];
    e->out_names[2 + 2 * l] = m->present_value[l];
  }
  *out = e;
  return COH_OK;
fail:
  coh_engine_free(e);
  return rc;
}

void coh_engine_free(coh_engine *e) {
  seq *s, *next;
  if (e == NULL) return;
  batch_clear(e);
  cgroups_clear(e);
  coh__free(e->cg);
  coh__masker_free(e->masker); /* before the states its jobs point to */
  for (s = e->head; s; s = next) {
    next = s->next;
    seq_free(e, s);
  }
  coh__pcache_free(e->pcache); /* after the requests that pin its entries */
  coh__free(e->jobs);
  coh__free(e->ws_only);
  coh__free(e->ws_mask);
  coh__free(e->budget_mask);
  coh__free(e->ws_tail);
  coh__sampler_free(e->sampler);
  /* Last: every tensor from this allocator was released above. */
  if (e->alloc_owned && e->alloc) e->api->ReleaseAllocator(e->alloc);
  coh__free(e->in_names);
  coh__free(e->out_names);
  coh__free(e->logits_f32);
  coh__free(e);
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The whitespace tables of the first gv tokens (coh_request.max_ws_run). */
static int ws_setup(coh_engine *e, size_t gv, coh_err *err) {
  char buf[1024];
  size_t id, len, t;
  coh_err e2;
  if (e->ws_only != NULL) return COH_OK; /* made by an earlier, failed setup */
  e->ws_only = coh__calloc(e->mask_words, sizeof *e->ws_only);
  e->ws_mask = coh__calloc(e->mask_words, sizeof *e->ws_mask);
  e->ws_tail = coh__calloc(gv ? gv : 1, 1);
  if (e->ws_only == NULL || e->ws_mask == NULL || e->ws_tail == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  e->ws_n = gv;
  e->max_token_bytes = 0;
  for (id = 0; id < gv; id++) {
    /* a token too long for buf counts as not whitespace, and leaves the
     * longest token's length unknown */
    if (coh_tokenizer_token_bytes(e->m->tok, (int32_t)id, buf, sizeof buf, &len, &e2)) {
      e->max_token_bytes = SIZE_MAX;
      continue;
    }
    if (len > e->max_token_bytes && e->max_token_bytes != SIZE_MAX) e->max_token_bytes = len;
    for (t = 0; t < len && is_ws(buf[len - 1 - t]); t++) {}
    e->ws_tail[id] = (uint8_t)(t > 255 ? 255 : t);
    if (len > 0 && t == len) e->ws_only[id / 32] |= 1u << (id % 32);
  }
  return COH_OK;
}

/* The token trie of the model's tokenizer (once per model), the helper
 * thread and its job list (once per engine): made at the first constrained
 * request. */
static int grammar_setup(coh_engine *e, coh_err *err) {
  const coh_model_info *info = &e->m->info;
  size_t gv;
  int rc;
  if (e->masker != NULL) return COH_OK;
  if (e->m->gvocab == NULL &&
      (rc = coh_grammar_vocab_new(e->m->tok, info->eos_ids, (size_t)info->n_eos,
                                  &e->m->gvocab, err)))
    return rc;
  gv = coh_grammar_vocab_size(e->m->gvocab);
  if ((int64_t)gv > info->vocab)
    return coh__err(err, COH_EMODEL,
                    "the tokenizer has %zu tokens but the model's logits only %lld; "
                    "a grammar cannot be applied",
                    gv, (long long)info->vocab);
  e->mask_words = ((size_t)info->vocab + 31) / 32;
  if (e->jobs == NULL) e->jobs = coh__calloc((size_t)e->max_batch, sizeof *e->jobs);
  if (e->jobs == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  if ((rc = ws_setup(e, gv, err))) return rc;
  if (e->budget_mask == NULL &&
      (e->budget_mask = coh__calloc(e->mask_words, sizeof *e->budget_mask)) == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  return coh__masker_new(e->mask_words, (gv + 31) / 32, &e->masker, err);
}

int coh_engine_submit(coh_engine *e, const coh_request *r, uint64_t *id,
                      coh_err *err) {
  const coh_model_info *info = &e->m->info;
  seq *s, **tail;
  size_t i;
  int rc;
  if (r->prompt == NULL || r->n_prompt == 0)
    return coh__err(err, COH_EINVAL, "empty prompt: a request needs at least one token");
  if (r->max_tokens < 0)
    return coh__err(err, COH_EINVAL, "max_tokens is %d; it must be >= 0", r->max_tokens);
  for (i = 0; i < r->n_prompt; i++)
    if (r->prompt[i] < 0 || r->prompt[i] >= info->vocab)
      return coh__err(err, COH_EINVAL, "prompt token %zu is %d, outside the vocabulary [0, %lld)",
                      i, r->prompt[i], (long long)info->vocab);
  /* The prompt and the generated tokens share the context; the prompt
   * must leave room for at least one. */
  if ((int64_t)r->n_prompt >= info->context)
    return coh__err(err, COH_ECONTEXT,
                    "the prompt has %zu tokens but the model's context is %lld "
                    "(at most %lld prompt tokens, leaving room for one generated)",
                    r->n_prompt, (long long)info->context, (long long)info->context - 1);
  if ((rc = coh_sampling_validate(&r->sampling, err))) return rc;
  if (r->grammar != NULL && e->m->tok == NULL)
    return coh__err(err, COH_EINVAL, "a grammar needs a tokenizer.json in the model folder");
  if (r->grammar != NULL && r->ignore_eos)
    return coh__err(err, COH_EINVAL,
                    "ignore_eos cannot be combined with a grammar (end-of-sequence "
                    "is what ends a complete output)");
  if (r->grammar != NULL && (rc = grammar_setup(e, err))) return rc;
  if (r->n_stop_strings > 0 && e->m->tok == NULL)
    return coh__err(err, COH_EINVAL, "stop strings need a tokenizer.json in the model folder");
  for (i = 0; i < r->n_stop_strings; i++)
    if (r->stop_strings[i] == NULL || r->stop_strings[i][0] == '\0')
      return coh__err(err, COH_EINVAL, "stop string %zu is empty", i);
    else if (strlen(r->stop_strings[i]) > COH_STOP_STRING_MAX)
      return coh__err(err, COH_EINVAL,
                      "stop string %zu is %zu bytes; expected at most %d", i,
                      strlen(r->stop_strings[i]), COH_STOP_STRING_MAX);

  s = coh__calloc(1, sizeof *s);
  if (s == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  s->row = -1;
  s->cg = -1;
  s->cap_tokens = r->n_prompt + (size_t)(r->max_tokens < 4096 ? r->max_tokens : 4096) + 1;
  s->tokens = coh__malloc(s->cap_tokens * sizeof *s->tokens);
  if (s->tokens == NULL) goto oom;
  memcpy(s->tokens, r->prompt, r->n_prompt * sizeof *s->tokens);
  s->n_tokens = s->n_prompt = r->n_prompt;
  s->sampling = r->sampling;
  coh__rng_seed(&s->rng, r->sampling.seed);
  s->max_tokens = r->max_tokens;
  s->ignore_eos = r->ignore_eos;
  s->on_token = r->on_token;
  s->user = r->user;
  if (r->n_stop_ids > 0) {
    s->stop_ids = coh__malloc(r->n_stop_ids * sizeof *s->stop_ids);
    if (s->stop_ids == NULL) goto oom;
    memcpy(s->stop_ids, r->stop_ids, r->n_stop_ids * sizeof *s->stop_ids);
    s->n_stop_ids = r->n_stop_ids;
  }
  if (r->n_stop_strings > 0) {
    s->stop_strings = coh__calloc(r->n_stop_strings, sizeof *s->stop_strings);
    if (s->stop_strings == NULL) goto oom;
    for (i = 0; i < r->n_stop_strings; i++) {
      size_t len = strlen(r->stop_strings[i]);
      s->stop_strings[i] = coh__strdup(r->stop_strings[i]);
      s->n_stop_strings = i + 1;
      if (s->stop_strings[i] == NULL) goto oom;
      if (len > s->max_stop_len) s->max_stop_len = len;
    }
  }
  if (r->grammar != NULL) {
    s->max_ws_run = r->max_ws_run;
    s->gmask = coh__calloc(e->mask_words, sizeof *s->gmask);
    if (s->gmask == NULL) goto oom;
    if ((rc = coh_grammar_state_new(r->grammar, e->m->gvocab, &s->gstate, err))) {
      seq_free(e, s);
      return rc;
    }
  }
  if (e->m->tok != NULL) {
    /* The text of the prompt's last token, which seq_text() decodes in
     * front of the continuation: without its length the stream would
     * begin with it, so a failure here fails the request. */
    char *t = NULL;
    size_t len = 0;
    rc = coh_tokenizer_decode(e->m->tok, s->tokens + s->n_prompt - 1, 1, 1, &t, &len, err);
    coh__free(t);
    if (rc) {
      seq_free(e, s);
      return rc;
    }
    s->prefix_len = len;
  }
  s->id = e->next_id++;
  s->state = SEQ_QUEUED;
  for (tail = &e->head; *tail; tail = &(*tail)->next) {}
  *tail = s;
  *id = s->id;
  return COH_OK;
oom:
  seq_free(e, s);
  return coh__err(err, COH_ENOMEM, "out of memory");
}

int coh_engine_cancel(coh_engine *e, uint64_t id) {
  seq *s;
  for (s = e->head; s; s = s->next)
    if (s->id == id && !is_finished(s)) {
      s->cancelled = 1;
      return COH_OK;
    }
  return COH_EINVAL;
}

size_t coh_engine_busy(const coh_engine *e) {
  size_t n = 0;
  const seq *s;
  for (s = e->head; s; s = s->next) n++;
  return n;
}

/* Unlinks and frees every finished request. */
static void reap(coh_engine *e) {
  seq **p = &e->head;
  while (*p) {
    seq *s = *p;
    if (is_finished(s)) {
      if (s->state != SEQ_QUEUED) e->active--;
      /* Its batch row becomes a hole; the next decode re-lays the batch. */
      if (s->row >= 0) e->batch.row_seq[s->row] = NULL;
      *p = s->next;
      seq_free(e, s);
    } else {
      p = &s->next;
    }
  }
}

/* Finishes every live request of rows with ERROR after a failed run. */
static void fail_rows(coh_engine *e, seq **rows, int n) {
  int i;
  for (i = 0; i < n; i++)
    if (!is_finished(rows[i])) (void)emit(e, rows[i], -1, COH_FINISH_ERROR);
}

int coh_engine_step(coh_engine *e, coh_err *err) {
  seq *s, **rows = NULL;
  int n = 0, rc = COH_OK, i;
  double t0 = coh__wall_seconds();

  /* 1. cancellations (an error here still finishes the request) */
  for (s = e->head; s; s = s->next)
    if (s->cancelled == 1 && (i = emit(e, s, -1, COH_FINISH_CANCELLED)) && rc == COH_OK)
      rc = coh__err(err, i, "out of memory");
  reap(e);

  /* 2. admission, in id order */
  for (s = e->head; s && e->active < e->max_batch; s = s->next) {
    if (s->state != SEQ_QUEUED) continue;
    s->state = SEQ_PREFILL;
    e->active++;
    if (s->max_tokens == 0 && (i = emit(e, s, -1, COH_FINISH_LENGTH)) && rc == COH_OK)
      rc = coh__err(err, i, "out of memory");
  }

  /* 3. decode for requests that were decoding at the start of the step */
  rows = coh__malloc((size_t)(e->active + 1) * sizeof *rows);
  if (rows == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  for (s = e->head; s; s = s->next)
    if (s->state == SEQ_DECODE && !is_finished(s)) rows[n++] = s;
  if (rc == COH_OK && n > 0) {
    rc = decode_step(e, rows, n, err);
    if (rc) {
      fail_rows(e, rows, n);
      batch_clear(e);
      cgroups_clear(e);
    }
  }

  /* 4. one prefill chunk for each prefilling request */
  pcache_mark_wanted(e);
  for (s = e->head; rc == COH_OK && s; s = s->next) {
    if (s->state != SEQ_PREFILL || is_finished(s)) continue;
    rc = prefill_chunk(e, s, err);
    if (rc && !is_finished(s)) (void)emit(e, s, -1, COH_FINISH_ERROR);
  }

  coh__free(rows);
  reap(e);
  {
    /* Forget the batch's memory as soon as no row is left in it. */
    int alive = 0;
    for (i = 0; i < e->batch.rows; i++) alive += e->batch.row_seq[i] != NULL;
    if (alive == 0) batch_clear(e);
    for (alive = 0, s = e->head; s && !alive; s = s->next) alive = s->cg >= 0;
    if (!alive) cgroups_clear(e);
  }
  e->stats.steps++;
  e->stats.step_seconds += coh__wall_seconds() - t0;
  return rc;
}

int coh_engine_set_prefix_cache(coh_engine *e, size_t budget_bytes, coh_err *err) {
  if (e->next_id != 1)
    return coh__err(err, COH_ESTATE,
                    "the prefix cache is set before the engine's first request");
  e->pcache_budget = budget_bytes;
  return COH_OK;
}

void coh_engine_get_stats(const coh_engine *e, coh_engine_stats *out) {
  const seq *s;
  *out = e->stats;
  out->prefix_budget = e->pcache_budget;
  out->prefix_block_tokens = e->pcache_budget ? e->m->prefill_chunk : 0;
  if (e->pcache != NULL) {
    coh__pcache_stats ps;
    coh__pcache_get_stats(e->pcache, &ps);
    out->prefix_lookups = ps.lookups;
    out->prefix_hits = ps.hits;
    out->prefix_inserts = ps.inserts;
    out->prefix_evictions = ps.evictions;
    out->prefix_declined = ps.declined;
    out->prefix_bytes = ps.bytes;
    out->prefix_peak_bytes = ps.peak_bytes;
  }
  out->prefill_continues = e->continues;
  out->active = e->active;
  out->queued = 0;
  for (s = e->head; s; s = s->next) out->queued += s->state == SEQ_QUEUED;
}
