/*
 * model_config.c — reads a model folder's configuration: ONNX Runtime GenAI
 * layout (genai_config.json) or Hugging Face Optimum layout (config.json +
 * model.onnx | decoder_model_merged.onnx).  Every error names the file and
 * the field.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model_int.h"

/* A JSON document plus its path, for error messages. */
typedef struct cfgdoc {
  const char *path;
  json_t *root;
} cfgdoc;

/* The largest configuration file read (real ones are a few KB). */
#define CONFIG_MAX_BYTES ((size_t)16 << 20)

static int load_json(const char *path, cfgdoc *doc, coh_err *err) {
  json_error_t je;
  char *text = NULL;
  size_t len = 0;
  int rc;
  doc->path = path;
  /* a regular file of bounded size: a symlink to /dev/zero must not hang */
  if ((rc = coh__read_file_max(path, CONFIG_MAX_BYTES, &text, &len, err)))
    return rc;
  doc->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  coh__free(text);
  if (doc->root == NULL)
    return coh__err(err, COH_EFORMAT, "%s:%d:%d: invalid JSON: %s", path,
                    je.line, je.column, je.text);
  if (!json_is_object(doc->root)) {
    json_decref(doc->root);
    doc->root = NULL;
    return coh__err(err, COH_EFORMAT, "%s: top level is not a JSON object",
                    path);
  }
  return COH_OK;
}

/* Looks up a dotted path ("model.decoder.head_size") in obj. */
static json_t *get_path(json_t *obj, const char *dotted) {
  char key[128];
  const char *p = dotted;
  while (obj != NULL && *p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n >= sizeof key) return NULL;
    memcpy(key, p, n);
    key[n] = '\0';
    obj = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    p += n + (dot ? 1 : 0);
  }
  return obj;
}

/* Reads an integer field in [lo, hi].  required=0: absent → *out unchanged. */
static int get_int(cfgdoc *doc, const char *field, int required, int64_t lo,
                   int64_t hi, int64_t *out, coh_err *err) {
  json_t *v = get_path(doc->root, field);
  if (v == NULL || json_is_null(v)) {
    if (!required) return COH_OK;
    return coh__err(err, COH_EFORMAT, "%s: missing field '%s'", doc->path,
                    field);
  }
  if (!json_is_integer(v))
    return coh__err(err, COH_EFORMAT, "%s: field '%s' must be an integer",
                    doc->path, field);
  if (json_integer_value(v) < lo || json_integer_value(v) > hi)
    return coh__err(err, COH_EFORMAT,
                    "%s: field '%s' = %lld is out of range [%lld, %lld]",
                    doc->path, field, (long long)json_integer_value(v),
                    (long long)lo, (long long)hi);
  *out = json_integer_value(v);
  return COH_OK;
}

/* Reads an optional string field; *out borrowed from the document. */
static int get_str(cfgdoc *doc, const char *field, const char **out,
                   coh_err *err) {
  json_t *v = get_path(doc->root, field);
  if (v == NULL || json_is_null(v)) return COH_OK;
  if (!json_is_string(v))
    return coh__err(err, COH_EFORMAT, "%s: field '%s' must be a string",
                    doc->path, field);
  *out = json_string_value(v);
  return COH_OK;
}

/* A token id field: -1 (none) when allowed, else in [0, vocab). */
static int check_id(cfgdoc *doc, const char *field, json_int_t id,
                    int64_t vocab, int none_ok, coh_err *err) {
  if ((none_ok && id == -1) || (id >= 0 && id < vocab)) return COH_OK;
  return coh__err(err, COH_EFORMAT,
                  "%s: field '%s' = %lld is outside the vocabulary; expected "
                  "a token id in [0, %lld)%s",
                  doc->path, field, (long long)id, (long long)vocab,
                  none_ok ? " or -1 for none" : "");
}

/* Adds id to the model's stop ids unless it is there already. */
static int add_eos(coh_model_info *info, int32_t id, const char *path,
                   const char *field, coh_err *err) {
  int k;
  for (k = 0; k < info->n_eos; k++)
    if (info->eos_ids[k] == id) return COH_OK;
  if (info->n_eos == COH_MODEL_MAX_EOS)
    return coh__err(err, COH_EFORMAT,
                    "%s: field '%s': the model would have more than %d "
                    "end-of-sequence/end-of-turn ids",
                    path, field, COH_MODEL_MAX_EOS);
  info->eos_ids[info->n_eos++] = id;
  return COH_OK;
}

/* eos may be an integer or an array of integers, each a token id in
 * [0, vocab): an id outside it can never be sampled, so generation would
 * never stop on it.  The ids are added to those already known. */
static int get_eos(cfgdoc *doc, const char *field, coh_model_info *info,
                   coh_err *err) {
  json_t *v = get_path(doc->root, field);
  size_t i;
  int rc;
  if (v == NULL || json_is_null(v)) return COH_OK;
  if (json_is_integer(v)) {
    if ((rc = check_id(doc, field, json_integer_value(v), info->vocab, 0,
                       err)))
      return rc;
    return add_eos(info, (int32_t)json_integer_value(v), doc->path, field,
                   err);
  }
  if (!json_is_array(v) || json_array_size(v) > COH_MODEL_MAX_EOS)
    return coh__err(err, COH_EFORMAT,
                    "%s: field '%s' must be an integer or an array of at "
                    "most %d integers",
                    doc->path, field, COH_MODEL_MAX_EOS);
  for (i = 0; i < json_array_size(v); i++) {
    json_t *x = json_array_get(v, i);
    char name[160];
    snprintf(name, sizeof name, "%s[%zu]", field, i);
    if (!json_is_integer(x))
      return coh__err(err, COH_EFORMAT, "%s: field '%s' must be an integer",
                      doc->path, name);
    if ((rc = check_id(doc, name, json_integer_value(x), info->vocab, 0,
                       err)) ||
        (rc = add_eos(info, (int32_t)json_integer_value(x), doc->path, name,
                      err)))
      return rc;
  }
  return COH_OK;
}

/* Expands a name template with one %d ("past_key_values.%d.key") for each
 * layer into an owned array. */
static int expand_names(const char *tmpl, int n, char ***out, cfgdoc *doc,
                        const char *field, coh_err *err) {
  const char *pct = strstr(tmpl, "%d");
  char **names;
  int i;
  if (pct == NULL || strstr(pct + 2, "%") != NULL || strchr(tmpl, '%') != pct)
    return coh__err(err, COH_EFORMAT,
                    "%s: field '%s' = \"%s\" must contain exactly one %%d",
                    doc->path, field, tmpl);
  names = coh__calloc((size_t)n, sizeof *names);
  if (names == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    size_t len = strlen(tmpl) + 16;
    names[i] = coh__malloc(len);
    if (names[i] == NULL) {
      *out = names; /* partially filled; freed by the model's cleanup */
      return coh__err(err, COH_ENOMEM, "out of memory");
    }
    snprintf(names[i], len, "%.*s%d%s", (int)(pct - tmpl), tmpl, i, pct + 2);
  }
  *out = names;
  return COH_OK;
}

static int set_name(char **dst, const char *src, coh_err *err) {
  *dst = coh__strdup(src);
  return *dst ? COH_OK : coh__err(err, COH_ENOMEM, "out of memory");
}

static int file_exists(const char *path) { return access(path, R_OK) == 0; }

/* Fills names and info from genai_config.json. */
static int read_genai(coh_model *m, cfgdoc *doc, coh_err *err) {
  coh_model_info *info = &m->info;
  int64_t v = 0;
  int rc;
  const char *filename = "model.onnx", *t_ids = "input_ids",
             *t_mask = "attention_mask", *t_pos = "position_ids",
             *t_pk = "past_key_values.%d.key", *t_pv = "past_key_values.%d.value",
             *t_logits = "logits", *t_ck = "present.%d.key",
             *t_cv = "present.%d.value";
  json_t *share;

  if (get_path(doc->root, "model.decoder") == NULL)
    return coh__err(err, COH_EFORMAT, "%s: missing field 'model.decoder'",
                    doc->path);
  if ((rc = get_str(doc, "model.decoder.filename", &filename, err)) ||
      (rc = get_str(doc, "model.decoder.inputs.input_ids", &t_ids, err)) ||
      (rc = get_str(doc, "model.decoder.inputs.attention_mask", &t_mask, err)) ||
      (rc = get_str(doc, "model.decoder.inputs.position_ids", &t_pos, err)) ||
      (rc = get_str(doc, "model.decoder.inputs.past_key_names", &t_pk, err)) ||
      (rc = get_str(doc, "model.decoder.inputs.past_value_names", &t_pv, err)) ||
      (rc = get_str(doc, "model.decoder.outputs.logits", &t_logits, err)) ||
      (rc = get_str(doc, "model.decoder.outputs.present_key_names", &t_ck, err)) ||
      (rc = get_str(doc, "model.decoder.outputs.present_value_names", &t_cv, err)))
    return rc;
  if ((rc = get_int(doc, "model.decoder.num_hidden_layers", 1, 1, 4096, &v, err)))
    return rc;
  info->n_layers = (int)v;
  if ((rc = get_int(doc, "model.decoder.num_attention_heads", 1, 1, 4096, &v, err)))
    return rc;
  info->n_heads = (int)v;
  v = info->n_heads;
  if ((rc = get_int(doc, "model.decoder.num_key_value_heads", 0, 1, 4096, &v, err)))
    return rc;
  info->n_kv_heads = (int)v;
  if ((rc = get_int(doc, "model.decoder.head_size", 1, 1, 65536, &v, err)))
    return rc;
  info->head_dim = (int)v;
  v = (int64_t)info->head_dim * info->n_heads;
  if ((rc = get_int(doc, "model.decoder.hidden_size", 0, 1, 1 << 20, &v, err)))
    return rc;
  info->hidden = (int)v;
  if ((rc = get_int(doc, "model.vocab_size", 1, 1, INT32_MAX, &info->vocab, err)) ||
      (rc = get_int(doc, "model.context_length", 1, 2, INT32_MAX, &info->context, err)))
    return rc;
  v = -1;
  if ((rc = get_int(doc, "model.bos_token_id", 0, -1, INT32_MAX, &v, err)) ||
      (rc = check_id(doc, "model.bos_token_id", v, info->vocab, 1, err)))
    return rc;
  info->bos_id = (int32_t)v;
  v = -1;
  if ((rc = get_int(doc, "model.pad_token_id", 0, -1, INT32_MAX, &v, err)) ||
      (rc = check_id(doc, "model.pad_token_id", v, info->vocab, 1, err)))
    return rc;
  info->pad_id = (int32_t)v;
  if ((rc = get_eos(doc, "model.eos_token_id", info, err))) return rc;

  share = get_path(doc->root, "search.past_present_share_buffer");
  m->gqa = share != NULL && json_is_true(share);

  {
    /* a name from the file: it must stay inside the model folder (no
     * absolute path, no '..', no symbolic link out) */
    char what[COH_ERRMSG_MAX / 2];
    snprintf(what, sizeof what, "%s: field 'model.decoder.filename'",
             doc->path);
    if ((rc = coh__path_inside(m->dir, filename, what, &m->onnx_path, err)))
      return rc;
  }
  if ((rc = set_name(&m->name_input_ids, t_ids, err)) ||
      (rc = set_name(&m->name_mask, t_mask, err)) ||
      (rc = set_name(&m->name_position_ids, t_pos, err)) ||
      (rc = set_name(&m->name_logits, t_logits, err)))
    return rc;
  if ((rc = expand_names(t_pk, info->n_layers, &m->past_key, doc,
                         "model.decoder.inputs.past_key_names", err)) ||
      (rc = expand_names(t_pv, info->n_layers, &m->past_value, doc,
                         "model.decoder.inputs.past_value_names", err)) ||
      (rc = expand_names(t_ck, info->n_layers, &m->present_key, doc,
                         "model.decoder.outputs.present_key_names", err)) ||
      (rc = expand_names(t_cv, info->n_layers, &m->present_value, doc,
                         "model.decoder.outputs.present_value_names", err)))
    return rc;
  info->layout = "genai";
  return COH_OK;
}

/* Fills names and info from a Hugging Face config.json (Optimum export). */
static int read_optimum(coh_model *m, cfgdoc *doc, coh_err *err) {
  coh_model_info *info = &m->info;
  int64_t v = 0;
  int rc;
  static const char *const candidates[] = {"model.onnx",
                                           "decoder_model_merged.onnx",
                                           "decoder_with_past_model.onnx"};
  size_t i;

  if ((rc = get_int(doc, "num_hidden_layers", 1, 1, 4096, &v, err))) return rc;
  info->n_layers = (int)v;
  if ((rc = get_int(doc, "num_attention_heads", 1, 1, 4096, &v, err))) return rc;
  info->n_heads = (int)v;
  v = info->n_heads;
  if ((rc = get_int(doc, "num_key_value_heads", 0, 1, 4096, &v, err))) return rc;
  info->n_kv_heads = (int)v;
  if ((rc = get_int(doc, "hidden_size", 1, 1, 1 << 20, &v, err))) return rc;
  info->hidden = (int)v;
  if (info->hidden % info->n_heads != 0)
    return coh__err(err, COH_EFORMAT,
                    "%s: hidden_size %d is not a multiple of "
                    "num_attention_heads %d",
                    doc->path, info->hidden, info->n_heads);
  v = info->hidden / info->n_heads;
  if ((rc = get_int(doc, "head_dim", 0, 1, 65536, &v, err))) return rc;
  info->head_dim = (int)v;
  if ((rc = get_int(doc, "vocab_size", 1, 1, INT32_MAX, &info->vocab, err)) ||
      (rc = get_int(doc, "max_position_embeddings", 1, 2, INT32_MAX,
                    &info->context, err)))
    return rc;
  v = -1;
  if ((rc = get_int(doc, "bos_token_id", 0, -1, INT32_MAX, &v, err)) ||
      (rc = check_id(doc, "bos_token_id", v, info->vocab, 1, err)))
    return rc;
  info->bos_id = (int32_t)v;
  v = -1;
  if ((rc = get_int(doc, "pad_token_id", 0, -1, INT32_MAX, &v, err)) ||
      (rc = check_id(doc, "pad_token_id", v, info->vocab, 1, err)))
    return rc;
  info->pad_id = (int32_t)v;
  if ((rc = get_eos(doc, "eos_token_id", info, err))) return rc;

  for (i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
    char *p = coh__path_join(m->dir, candidates[i]);
    if (p == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    if (file_exists(p)) {
      coh__free(p);
      /* a symbolic link out of the folder is refused here too */
      if ((rc = coh__path_inside(m->dir, candidates[i], "model file",
                                 &m->onnx_path, err)))
        return rc;
      break;
    }
    coh__free(p);
  }
  if (m->onnx_path == NULL)
    return coh__err(err, COH_ENOENT,
                    "%s: no model file (looked for model.onnx, "
                    "decoder_model_merged.onnx, decoder_with_past_model.onnx)",
                    m->dir);
  if ((rc = set_name(&m->name_input_ids, "input_ids", err)) ||
      (rc = set_name(&m->name_mask, "attention_mask", err)) ||
      (rc = set_name(&m->name_position_ids, "position_ids", err)) ||
      (rc = set_name(&m->name_logits, "logits", err)))
    return rc;
  if ((rc = expand_names("past_key_values.%d.key", info->n_layers, &m->past_key, doc, "", err)) ||
      (rc = expand_names("past_key_values.%d.value", info->n_layers, &m->past_value, doc, "", err)) ||
      (rc = expand_names("present.%d.key", info->n_layers, &m->present_key, doc, "", err)) ||
      (rc = expand_names("present.%d.value", info->n_layers, &m->present_value, doc, "", err)))
    return rc;
  info->layout = "optimum";
  return COH_OK;
}

/* A file the folder holds under a fixed name must resolve inside it too. */
static int inside(coh_model *m, const char *name, coh_err *err) {
  char *p = NULL;
  int rc = coh__path_inside(m->dir, name, name, &p, err);
  coh__free(p);
  return rc;
}

int coh__model_read_config(coh_model *m, coh_err *err) {
  char *genai = coh__path_join(m->dir, "genai_config.json");
  char *hf = coh__path_join(m->dir, "config.json");
  cfgdoc doc = {NULL, NULL};
  int rc;
  if (genai == NULL || hf == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto done;
  }
  m->info.n_eos = 0;
  if (file_exists(genai)) {
    if ((rc = inside(m, "genai_config.json", err)) == COH_OK &&
        (rc = load_json(genai, &doc, err)) == COH_OK)
      rc = read_genai(m, &doc, err);
  } else if (file_exists(hf)) {
    if ((rc = inside(m, "config.json", err)) == COH_OK &&
        (rc = load_json(hf, &doc, err)) == COH_OK)
      rc = read_optimum(m, &doc, err);
  } else if (access(m->dir, R_OK) != 0) {
    rc = coh__err(err, COH_ENOENT, "%s: no such model folder", m->dir);
  } else {
    rc = coh__err(err, COH_ENOENT,
                  "%s: not a model folder (neither genai_config.json nor "
                  "config.json is there)",
                  m->dir);
  }
  if (rc == COH_OK) {
    if (m->info.n_heads % m->info.n_kv_heads != 0)
      rc = coh__err(err, COH_EFORMAT,
                    "%s: num_attention_heads %d is not a multiple of "
                    "num_key_value_heads %d",
                    doc.path, m->info.n_heads, m->info.n_kv_heads);
    if (rc == COH_OK && !file_exists(m->onnx_path))
      rc = coh__err(err, COH_ENOENT, "%s: model file is missing (named by %s)",
                    m->onnx_path, doc.path);
  }
  m->info.attention = m->gqa ? "gqa" : "concat";
done:
  if (doc.root) json_decref(doc.root);
  coh__free(genai);
  coh__free(hf);
  return rc;
}

/* The special added tokens that end a turn in common chat models (see
 * coh_model_open in cohort/infer.h). */
static const char *const turn_end_tokens[] = {
    "<|im_end|>",      /* Qwen, SmolLM, ChatML */
    "<|eot_id|>",      /* Llama 3 */
    "<|eom_id|>",      /* Llama 3.1+ after a tool call */
    "<|end|>",         /* Phi-3, Phi-4 */
    "<end_of_turn>",   /* Gemma */
    "<|endoftext|>",   /* Qwen, Phi, GPT-2 family */
    "<|end_of_text|>", /* Llama 3 base */
    "<\xef\xbd\x9c\x65nd\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", /* DeepSeek (\x65: e) */
};

int coh__model_read_stop_ids(coh_model *m, coh_err *err) {
  char *path = coh__path_join(m->dir, "generation_config.json");
  cfgdoc doc = {NULL, NULL};
  size_t i;
  int rc = COH_OK;
  if (path == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  if (file_exists(path)) {
    if ((rc = inside(m, "generation_config.json", err)) == COH_OK &&
        (rc = load_json(path, &doc, err)) == COH_OK) {
      if (!json_is_object(doc.root))
        rc = coh__err(err, COH_EFORMAT, "%s: must be a JSON object", doc.path);
      else
        rc = get_eos(&doc, "eos_token_id", &m->info, err);
    }
  }
  for (i = 0; rc == COH_OK && m->tok != NULL &&
              i < sizeof turn_end_tokens / sizeof *turn_end_tokens;
       i++) {
    int32_t id = coh_tokenizer_token_id(m->tok, turn_end_tokens[i]);
    if (id >= 0 && id < m->info.vocab && coh_tokenizer_is_special(m->tok, id))
      rc = add_eos(&m->info, id, "tokenizer.json", turn_end_tokens[i], err);
  }
  if (doc.root) json_decref(doc.root);
  coh__free(path);
  return rc;
}
