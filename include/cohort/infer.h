/*
 * cohort/infer.h — the inference engine: load an ONNX decoder-only language
 * model, and generate from many requests at once with continuous batching.
 *
 * The engine is clocked from outside: coh_engine_step() runs exactly one
 * engine step — admit queued requests (in submission order, up to max_batch
 * active), one prefill chunk for each admitted request that is still
 * prefilling, one decode token for every request that is decoding — and then
 * returns.  Nothing happens between steps, so the orchestrator decides when
 * requests join (tick boundaries) and batch composition is a function of the
 * order of submit/step calls, never of wall time.
 *
 * Example:
 *   coh_model_options mo; coh_model_options_default(&mo);
 *   coh_model *m; coh_err err;
 *   if (coh_model_open("models/llama", &mo, &m, &err)) die(err.msg);
 *   coh_engine *e; coh_engine_new(m, 8, &e, &err);
 *   coh_request r; coh_request_default(&r);
 *   r.prompt = ids; r.n_prompt = n; r.max_tokens = 32;
 *   r.on_token = print_token; r.user = NULL;
 *   uint64_t id; coh_engine_submit(e, &r, &id, &err);
 *   while (coh_engine_busy(e)) if (coh_engine_step(e, &err)) die(err.msg);
 *   coh_engine_free(e); coh_model_close(m);
 *
 * Threading: a model and its engine belong to one thread at a time (ONNX
 * Runtime's own intra-op thread pool does the parallel work inside a step).
 * An engine that serves a constrained request (coh_request.grammar) starts
 * one helper thread of its own, which computes the next grammar masks of
 * the batch while ONNX Runtime runs the forward pass; coh_engine_free ends
 * it.
 */
#ifndef COHORT_INFER_H
#define COHORT_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/chat.h"
#include "cohort/common.h"
#include "cohort/grammar.h"
#include "cohort/sampling.h"
#include "cohort/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- execution providers ------------------------------------------------ */

typedef enum coh_device {
  COH_DEVICE_AUTO = 0, /* CUDA when it loads, else CPU (with one log line) */
  COH_DEVICE_CPU = 1,
  COH_DEVICE_CUDA = 2  /* CUDA or an error saying why not */
} coh_device;

/* Parses "auto" | "cpu" | "cuda".  COH_EINVAL otherwise. */
int coh_device_parse(const char *s, coh_device *out);
const char *coh_device_name(coh_device d);

/* ---- models ------------------------------------------------------------- */

typedef void (*coh_log_fn)(void *user, const char *line);

typedef struct coh_model_options {
  coh_device device;    /* default AUTO */
  int intra_op_threads; /* 0: all online cores */
  int prefill_chunk;    /* max prompt tokens per step per request; 0: 512 */
  int ort_log_level;    /* ONNX Runtime severity: 0 verbose .. 4 fatal; default 3 */
  const char *profile_prefix; /* non-NULL: ORT profiling JSON with this prefix */
  coh_log_fn log;       /* where notices go (e.g. the CUDA fallback line); NULL: stderr */
  void *log_user;
} coh_model_options;

void coh_model_options_default(coh_model_options *o);

/* The most end-of-sequence / end-of-turn ids a model may have. */
#define COH_MODEL_MAX_EOS 16

/* What a model folder turned out to hold.  Strings are owned by the model. */
typedef struct coh_model_info {
  const char *dir;
  const char *layout;       /* "genai" (genai_config.json) | "optimum" (config.json) */
  const char *onnx_path;
  const char *dtype;        /* "fp32" | "fp16" (of logits and the KV cache) */
  const char *attention;    /* "concat" (present = past ++ new) | "gqa" (GroupQueryAttention) */
  const char *provider;     /* "CPUExecutionProvider" | "CUDAExecutionProvider" */
  const char *provider_note;/* why AUTO fell back to CPU, or "" */
  int n_layers, n_heads, n_kv_heads, head_dim, hidden;
  int64_t vocab;
  int64_t context;          /* max total tokens of one sequence */
  int32_t bos_id, pad_id;
  /* Generation stops on any of these (unless ignore_eos): the end-of-
   * sequence ids of the configuration (genai_config.json's
   * model.eos_token_id or config.json's eos_token_id), of
   * generation_config.json's eos_token_id, and the special added tokens of
   * tokenizer.json that end a turn (see coh_model_open). */
  int32_t eos_ids[COH_MODEL_MAX_EOS];
  int n_eos;
  int has_position_ids;
  int has_use_cache_branch; /* Optimum merged decoders */
  int intra_op_threads;
} coh_model_info;

typedef struct coh_model coh_model;

/* Opens a model folder: reads its configuration, creates the ONNX Runtime
 * session on the chosen provider, checks every input and output the engine
 * needs against the configuration, and loads tokenizer.json when present.
 * Also loads the folder's chat template (coh_chat_template_load_dir) and
 * completes info.eos_ids: with generation_config.json's eos_token_id (an
 * integer or a list) when the folder has one, and with every special added
 * token of tokenizer.json whose content is one of the end-of-turn markers
 * of common chat models: <|im_end|>, <|eot_id|>, <|eom_id|>, <|end|>,
 * <end_of_turn>, <|endoftext|>, <|end_of_text|>, <｜end▁of▁sentence｜>
 * (a token of that text that is not special is ordinary text and never
 * stops generation).
 * *out: caller frees with coh_model_close.  Errors: COH_ENOENT (no
 * config/model file; the message lists what was looked for), COH_EFORMAT
 * (bad config, chat template or generation_config.json: file and field or
 * template position; more than COH_MODEL_MAX_EOS stop ids), COH_EMODEL (the graph lacks or mistypes an
 * input/output: named), COH_EPROVIDER (cuda requested and unavailable: why),
 * COH_EORT (ONNX Runtime refused the file, e.g. truncated), COH_ENOMEM. */
int coh_model_open(const char *dir, const coh_model_options *opts,
                   coh_model **out, coh_err *err);
void coh_model_close(coh_model *m);
const coh_model_info *coh_model_get_info(const coh_model *m);
/* The folder's tokenizer, or NULL when it has no tokenizer.json.  Borrowed:
 * lives as long as the model. */
const coh_tokenizer *coh_model_tokenizer(const coh_model *m);
/* The folder's chat template, or NULL when it has none (chat requests then
 * use coh_chat_render_plain).  Borrowed: lives as long as the model. */
const coh_chat_template *coh_model_chat_template(const coh_model *m);

/* ---- engine ------------------------------------------------------------- */

typedef enum coh_finish {
  COH_FINISH_NONE = 0,     /* still running */
  COH_FINISH_LENGTH,       /* max_tokens generated */
  COH_FINISH_EOS,          /* the model's end-of-sequence token; with a
                              grammar also: the output is complete and the
                              grammar allows nothing but end-of-sequence
                              (then the last event carries the last token
                              of the output and no EOS is generated) */
  COH_FINISH_STOP_TOKEN,   /* one of the request's stop ids */
  COH_FINISH_STOP_STRING,  /* one of the request's stop strings appeared */
  COH_FINISH_CONTEXT,      /* the sequence reached the model's context */
  COH_FINISH_CANCELLED,
  COH_FINISH_ERROR         /* the step failed; see coh_engine_step's error */
} coh_finish;

const char *coh_finish_name(coh_finish f);

/* One streamed event.  token is -1 on a final event that carries no token.
 * text: the newly completed UTF-8 text (not NUL-terminated), which is held
 * back while it could still be the start of a stop string or an incomplete
 * character; stop strings themselves are never streamed.  All borrowed for
 * the duration of the callback. */
typedef struct coh_token_event {
  uint64_t request_id;
  int32_t token;
  int32_t index;           /* 0-based index of token among generated ones */
  const char *text;
  size_t text_len;
  coh_finish finish;       /* != NONE on the request's last event */
  /* The raw logits (vocab floats, before temperature, penalties or any
   * filter) that token was sampled from; NULL on an event without a token.
   * Lets a caller check the model's output against a reference. */
  const float *logits;
} coh_token_event;

typedef void (*coh_token_fn)(void *user, const coh_token_event *ev);

/* The longest stop string a request may carry.  Each generated token is
 * checked against every stop string's prefixes (to hold back text that may
 * start one), so the work per token grows with their lengths. */
#define COH_STOP_STRING_MAX 1024

typedef struct coh_request {
  const int32_t *prompt;   /* borrowed; copied by submit */
  size_t n_prompt;
  coh_sampling sampling;
  int32_t max_tokens;      /* >= 0; 0 finishes at the next step with no token */
  const int32_t *stop_ids; /* borrowed; copied */
  size_t n_stop_ids;
  const char *const *stop_strings; /* borrowed; copied; each non-empty and
                                      at most COH_STOP_STRING_MAX bytes */
  size_t n_stop_strings;
  int ignore_eos;          /* do not stop on the model's EOS ids */
  coh_token_fn on_token;   /* may be NULL */
  void *user;
  /* Constrained decoding (cohort/grammar.h): NULL, or every generated token
   * is one the grammar allows, and end-of-sequence is allowed exactly when
   * the output so far is complete.  Borrowed: must outlive the request (its
   * final event).  The engine keeps one parse state per request and one
   * token trie per model, built at the first constrained request from the
   * model's tokenizer and eos_ids.  The mask is step 0 of the sampling order
   * (cohort/sampling.h).  Needs a tokenizer and excludes ignore_eos.  A
   * request that reaches max_tokens or the context first ends incomplete
   * (finish LENGTH / CONTEXT), as without a grammar. */
  const coh_grammar *grammar;
  /* With a grammar: > 0 bounds runs of JSON whitespace (space, tab, CR,
   * LF): once the output ends in at least this many whitespace bytes, the
   * tokens made only of whitespace are left out of the mask, unless nothing
   * else is allowed (then the mask is unchanged).  So a model that keeps
   * choosing newlines between JSON tokens (or inside a string) must move
   * on.  0 (default): no bound. */
  int32_t max_ws_run;
} coh_request;

void coh_request_default(coh_request *r);

typedef struct coh_engine coh_engine;

typedef struct coh_engine_stats {
  uint64_t steps;
  uint64_t prefill_tokens, decode_tokens;
  uint64_t ort_runs;
  uint64_t batch_rebuilds;   /* GQA decode batches re-laid out (joins/leaves);
                              * concat models: bucket stores resized */
  double ort_seconds;        /* wall time inside OrtRun */
  double step_seconds;       /* wall time inside coh_engine_step */
  int active, queued;        /* now */
  int last_decode_batch;
  uint64_t prefill_runs;     /* prompt chunks run (one OrtRun each, or
                                loaded from the prefix cache) */
  /* Whether prompt chunks may continue a cache (see "Long prompts" in
   * docs/inference.md): 1 yes, 0 no (every prompt runs whole, in one run),
   * -1 not yet known (decided by the first prompt longer than a chunk). */
  int prefill_continues;
  /* Constrained decoding: grammar masks computed, the time spent computing
   * them (on the helper thread, overlapping the forward pass, or inline
   * when a request completes), and the time the engine thread waited for
   * masks after its forward pass had finished (the part not hidden). */
  uint64_t masks;
  double mask_seconds, mask_wait_seconds;
  /* The prefix cache (coh_engine_set_prefix_cache): its budget (0: off) and
   * block size in tokens (= the model's prefill_chunk); lookups of full
   * prompt chunks, and hits (chunks loaded instead of run); prompt tokens
   * loaded; blocks stored, evicted, and declined (no room without evicting
   * a block a waiting request will read); bytes held now and at most. */
  size_t prefix_budget;
  int prefix_block_tokens;
  uint64_t prefix_lookups, prefix_hits, prefix_hit_tokens;
  uint64_t prefix_inserts, prefix_evictions, prefix_declined;
  size_t prefix_bytes, prefix_peak_bytes;
  /* Tokens sampled again because the first choice left no completion
   * within max_tokens (the token budget, docs/grammar.md). */
  uint64_t budget_restricted;
} coh_engine_stats;

/* The prefix cache's default budget, in MiB. */
#define COH_PREFIX_CACHE_DEFAULT_MB 256

/* Creates an engine over model m (borrowed: must outlive the engine) that
 * runs at most max_batch requests at once (1..1024).  *out: caller frees
 * with coh_engine_free. */
int coh_engine_new(coh_model *m, int max_batch, coh_engine **out,
                   coh_err *err);
void coh_engine_free(coh_engine *e);

/* Sets the prefix cache's memory bound: at most budget_bytes of KV blocks
 * (0: no cache).  Default COH_PREFIX_CACHE_DEFAULT_MB MiB.  The cache keeps
 * the K/V of full prompt chunks (the model's prefill_chunk tokens at
 * position-aligned boundaries) keyed by their whole token prefix, and loads
 * them for a later prompt with the same prefix instead of running the
 * chunk.  It never changes a result: tokens, logits and the engine steps at
 * which they appear are the same with any budget (docs/inference.md,
 * "Prefix cache").  Only before the first coh_engine_submit: COH_ESTATE
 * after. */
int coh_engine_set_prefix_cache(coh_engine *e, size_t budget_bytes, coh_err *err);

/* Queues a request; it is admitted at the start of a later step.  *id:
 * output, unique per engine, assigned in submission order from 1.  Errors
 * (nothing queued): COH_EINVAL (empty prompt, negative max_tokens, token id
 * outside the vocabulary, bad sampling parameter — named; a grammar on a
 * model without tokenizer.json, or with ignore_eos), COH_ECONTEXT
 * (prompt + max_tokens exceed the context; the message gives both),
 * COH_ENOMEM. */
int coh_engine_submit(coh_engine *e, const coh_request *r, uint64_t *id,
                      coh_err *err);

/* Runs one engine step (see the top of this file).  Callbacks run inside.
 * On an ONNX Runtime failure every request of the failed run is finished
 * with COH_FINISH_ERROR and the error is returned; the engine stays usable. */
int coh_engine_step(coh_engine *e, coh_err *err);

/* Cancels a queued or active request: it gets a final CANCELLED event at
 * the next step.  COH_EINVAL if the id is unknown or finished. */
int coh_engine_cancel(coh_engine *e, uint64_t id);

/* Number of requests queued or active (0: nothing left to step). */
size_t coh_engine_busy(const coh_engine *e);

void coh_engine_get_stats(const coh_engine *e, coh_engine_stats *out);

/* ---- agents' LLM requests ------------------------------------------------ */

/* An agent's llm() request, parsed.  The JSON object holds exactly one of
 *   "prompt" (string): text, tokenized with the model's special tokens
 *     (e.g. BOS) added by the tokenizer's post-processor;
 *   "messages" (array of 1..COH_LLM_MAX_MESSAGES objects, each with "role"
 *     (non-empty string) and "content" (string), and optionally "name"
 *     (string), "tool_calls" (array), "tool_call_id" (string)): a chat,
 *     rendered with the model's chat template (with add_generation_prompt)
 *     and tokenized WITHOUT the post-processor's special tokens, as Hugging
 *     Face's apply_chat_template does (the template prints bos_token itself
 *     when the model wants one); a model without a template renders it with
 *     coh_chat_render_plain, tokenized like a prompt;
 * and may hold:
 *   "tools" (array of at most 128 OpenAI function tools, {"type":
 *     "function", "function": {"name" ([A-Za-z0-9_-]{1,64}, unique),
 *     "description"?, "parameters"? (a JSON Schema; default: no
 *     arguments, {}), "strict"?}}; messages only): the template's `tools`;
 *   "template_vars" (object; messages only): extra template variables, e.g.
 *     "date_string" or "date_time" (never "messages", "tools" or
 *     "add_generation_prompt");
 *   "add_generation_prompt" (bool, default true; messages only);
 *   "response_format" (object): constrained output (docs/grammar.md):
 *     {"type": "json_schema", "json_schema": {"name", "schema", "strict"?,
 *     "description"?}}, {"type": "json_object"}, {"type": "grammar",
 *     "grammar": EBNF text} or {"type": "text"} (unconstrained).  The grammar
 *     is compiled here; an unsupported keyword is COH_EUNSUPPORTED naming
 *     the field, the keyword and its JSON pointer;
 *   "tool_choice" ("none", "auto", "required", or {"type": "function",
 *     "function": {"name": N}}; needs "tools"; default "auto") and
 *     "parallel_tool_calls" (bool, default true): with "required" or a named
 *     tool the output is constrained to {"tool_calls": [{"name": TOOL,
 *     "arguments": ARGS}, ...]} (one call or more; exactly one when
 *     parallel_tool_calls is false), TOOL one of the (named) tools, ARGS
 *     valid for that tool's "parameters"; with "auto" the output is free and
 *     is a tool call when it parses as that object (coh_llm_tool_calls);
 *     "required"/named cannot be combined with "response_format";
 *   "max_ws_run" (int in [0, 2^20], default COH_LLM_MAX_WS_RUN): with a
 *     constraint, coh_request.max_ws_run (0: no bound);
 *   "history_tokens" (int in [1, 2^24]; messages only): the most tokens the
 *     rendered prompt may have; when it has more, the oldest turns are left
 *     out (never the leading "system" messages nor the last message; the
 *     kept history starts at a "user" message): the fewest that make it fit.
 *     Counted exactly, with the model's tokenizer.  When even the system
 *     messages and the last message exceed it: COH_EFORMAT;
 *   "model" (string), "max_tokens" (int >= 0, default 64), "temperature",
 *   "top_k", "top_p", "min_p", "repetition_penalty" (numbers; greedy unless
 *   temperature > 0 or another sampling field is given, then temperature
 *   defaults to 1), "stop" (a string, or an array of at most 16; each
 *   1..COH_STOP_STRING_MAX bytes), "ignore_eos" (bool).
 * Unknown fields are refused, so a typo is an error rather than a silently
 * ignored setting.  Generation stops at the model's eos_ids (which include
 * its end-of-turn tokens, see coh_model_open) unless ignore_eos. */
#define COH_LLM_MAX_MESSAGES 4096
/* The default bound on runs of JSON whitespace in constrained output. */
#define COH_LLM_MAX_WS_RUN 8

typedef enum coh_llm_response {
  COH_RESPONSE_TEXT = 0,       /* unconstrained */
  COH_RESPONSE_JSON_SCHEMA,
  COH_RESPONSE_JSON_OBJECT,
  COH_RESPONSE_GRAMMAR
} coh_llm_response;

typedef enum coh_llm_tools {
  COH_TOOLS_NONE = 0,  /* no tools, or tool_choice "none" */
  COH_TOOLS_AUTO,      /* free output; a tool call when it parses as one */
  COH_TOOLS_REQUIRED,  /* constrained to a call of one of the tools */
  COH_TOOLS_NAMED      /* constrained to a call of the named tool */
} coh_llm_tools;

typedef struct coh_llm_request {
  coh_request req;   /* ready for coh_engine_submit (set on_token/user) */
  char *model;       /* NULL if not given */
  int32_t *ids;      /* the tokenized prompt (req.prompt points here) */
  size_t n_ids;
  char **stops;      /* req.stop_strings points here */
  size_t n_stops;
  char *text;        /* the text that was tokenized: the prompt, or the
                        rendered chat (NUL-terminated) */
  size_t text_len;
  int chat;          /* 1: from "messages" */
  size_t n_dropped;  /* messages left out to fit "history_tokens" */
  coh_llm_response response;
  /* The compiled constraint (response_format, or the tool-call shape), or
   * NULL; req.grammar points here.  Owned: the engine borrows it until the
   * request's final event, so a caller that frees the request earlier
   * takes it first (set this field to NULL and free it later with
   * coh_grammar_free). */
  coh_grammar *grammar;
  coh_llm_tools tool_choice;
  char *tool_names;  /* the n_tools names a call may use (the named one
                        only for COH_TOOLS_NAMED), each NUL-terminated,
                        back to back; NULL for COH_TOOLS_NONE.  Owned
                        (coh_free) and may be taken like grammar */
  size_t n_tools;
} coh_llm_request;

/* Parses json (borrowed, len bytes) for model m (its tokenizer and chat
 * template); seed becomes the sampling seed.  *out: release with
 * coh_llm_request_free, also after a failure.  Errors: COH_EFORMAT naming
 * the field (messages[2].role) or, from the template, its position;
 * COH_EUNSUPPORTED / COH_ERANGE (a schema the grammar engine refuses: the
 * field, the keyword and its JSON pointer);
 * COH_ERAISED (the template raised: its message), COH_EINVAL (the model has
 * no tokenizer.json), COH_ENOMEM. */
int coh_llm_request_parse(const char *json, size_t len, const coh_model *m,
                          uint64_t seed, coh_llm_request *out, coh_err *err);

/* The same with an explicit tokenizer and template (chat: may be NULL, the
 * plain format), for callers without a model (tools, fuzzing). */
int coh_llm_request_parse_with(const char *json, size_t len,
                               const coh_tokenizer *tok,
                               const coh_chat_template *chat, uint64_t seed,
                               coh_llm_request *out, coh_err *err);
void coh_llm_request_free(coh_llm_request *r);

/* The tool calls of a generated text: when text (len bytes) is exactly a
 * JSON object {"tool_calls": [CALL, ...]} with at least one CALL, each
 * {"name": NAME, "arguments": OBJECT} with NAME one of the n_names
 * NUL-separated names (coh_llm_request.tool_names), *out is the compact
 * JSON text of the array (caller frees with coh_free); otherwise *out is
 * NULL.  A member given twice counts once, with its last value (as
 * JSON.parse).  Deterministic.  Errors: COH_ENOMEM. */
int coh_llm_tool_calls(const char *names, size_t n_names, const char *text, size_t len,
                       char **out, coh_err *err);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_INFER_H */
