/*
 * model_int.h — a loaded model: its configuration, its ONNX Runtime session
 * and the names of the tensors the engine feeds and reads.
 */
#ifndef COH_MODEL_INT_H
#define COH_MODEL_INT_H

#include "ort_int.h"

struct coh_model {
  coh_model_info info;
  const OrtApi *api;
  OrtEnv *env;
  OrtSession *session;
  OrtMemoryInfo *cpu_mem;
  coh_tokenizer *tok;
  coh_chat_template *chat;                /* NULL: the folder has none */
  /* the token trie of tok for constrained decoding: built by the first
   * engine that gets a constrained request (engine.c), shared by every
   * engine of this model, freed with it */
  coh_grammar_vocab *gvocab;
  ONNXTensorElementDataType kv_type;     /* FLOAT or FLOAT16 */
  ONNXTensorElementDataType logits_type; /* FLOAT or FLOAT16 */
  int gqa;                               /* attention == "gqa" */
  int prefill_chunk;                     /* max prompt tokens per run */
  /* tensor names, owned */
  char *name_input_ids, *name_mask, *name_position_ids, *name_logits;
  char *name_use_cache_branch;           /* NULL unless the graph has it */
  char **past_key, **past_value;         /* [n_layers] */
  char **present_key, **present_value;   /* [n_layers] */
  /* owned strings behind info */
  char *dir, *onnx_path, *provider_note;
  coh_log_fn log;
  void *log_user;
};

#endif /* COH_MODEL_INT_H */

/* model_config.c: fills m->info, m->onnx_path and the tensor names from the
 * folder m->dir.  Partial results are freed by coh_model_close. */
int coh__model_read_config(coh_model *m, coh_err *err);
/* Completes info.eos_ids from generation_config.json and the tokenizer's
 * end-of-turn tokens (after the tokenizer is loaded). */
int coh__model_read_stop_ids(coh_model *m, coh_err *err);
