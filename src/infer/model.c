/*
 * model.c — opens a model folder: configuration (model_config.c), ONNX
 * Runtime session on the chosen execution provider, and a check of every
 * graph input and output against the configuration.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model_int.h"

int coh_device_parse(const char *s, coh_device *out) {
  if (s == NULL) return COH_EINVAL;
  if (!strcmp(s, "auto")) *out = COH_DEVICE_AUTO;
  else if (!strcmp(s, "cpu")) *out = COH_DEVICE_CPU;
  else if (!strcmp(s, "cuda")) *out = COH_DEVICE_CUDA;
  else return COH_EINVAL;
  return COH_OK;
}

const char *coh_device_name(coh_device d) {
  switch (d) {
    case COH_DEVICE_AUTO: return "auto";
    case COH_DEVICE_CPU: return "cpu";
    case COH_DEVICE_CUDA: return "cuda";
  }
  return "?";
}

void coh_model_options_default(coh_model_options *o) {
  memset(o, 0, sizeof *o);
  o->device = COH_DEVICE_AUTO;
  o->prefill_chunk = 512;
  o->ort_log_level = ORT_LOGGING_LEVEL_ERROR;
}

static void notice(coh_model *m, const char *line) {
  if (m->log) m->log(m->log_user, line);
  else fprintf(stderr, "%s\n", line);
}

static void free_names(char **names, int n) {
  int i;
  if (names == NULL) return;
  for (i = 0; i < n; i++) coh__free(names[i]);
  coh__free(names);
}

void coh_model_close(coh_model *m) {
  if (m == NULL) return;
  if (m->session) m->api->ReleaseSession(m->session);
  if (m->cpu_mem) m->api->ReleaseMemoryInfo(m->cpu_mem);
  if (m->env) m->api->ReleaseEnv(m->env);
  coh_grammar_vocab_free(m->gvocab); /* borrows the tokenizer */
  if (m->tok) coh_tokenizer_free(m->tok);
  if (m->chat) coh_chat_template_free(m->chat);
  free_names(m->past_key, m->info.n_layers);
  free_names(m->past_value, m->info.n_layers);
  free_names(m->present_key, m->info.n_layers);
  free_names(m->present_value, m->info.n_layers);
  coh__free(m->name_input_ids);
  coh__free(m->name_mask);
  coh__free(m->name_position_ids);
  coh__free(m->name_logits);
  coh__free(m->name_use_cache_branch);
  coh__free(m->dir);
  coh__free(m->onnx_path);
  coh__free(m->provider_note);
  coh__free(m);
}

const coh_model_info *coh_model_get_info(const coh_model *m) { return &m->info; }
const coh_tokenizer *coh_model_tokenizer(const coh_model *m) { return m->tok; }
const coh_chat_template *coh_model_chat_template(const coh_model *m) {
  return m->chat;
}

/* Session options common to every provider: explicit thread count and no
 * spinning (a spinning ORT pool steals the cores the agent workers need). */
static int make_session_options(coh_model *m, const coh_model_options *o,
                                OrtSessionOptions **out, coh_err *err) {
  const OrtApi *api = m->api;
  OrtSessionOptions *so = NULL;
  int threads = o->intra_op_threads;
  if (threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  m->info.intra_op_threads = threads;
  if (COH_ORT_CALL(api->CreateSessionOptions(&so), "CreateSessionOptions") ||
      COH_ORT_CALL(api->SetIntraOpNumThreads(so, threads), "SetIntraOpNumThreads") ||
      COH_ORT_CALL(api->SetInterOpNumThreads(so, 1), "SetInterOpNumThreads") ||
      COH_ORT_CALL(api->SetSessionExecutionMode(so, ORT_SEQUENTIAL), "SetSessionExecutionMode") ||
      COH_ORT_CALL(api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL),
                   "SetSessionGraphOptimizationLevel") ||
      COH_ORT_CALL(api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning", "0"),
                   "AddSessionConfigEntry(allow_spinning)") ||
      COH_ORT_CALL(api->AddSessionConfigEntry(so, "session.inter_op.allow_spinning", "0"),
                   "AddSessionConfigEntry(allow_spinning)")) {
    if (so) api->ReleaseSessionOptions(so);
    return COH_EORT;
  }
  if (o->profile_prefix != NULL &&
      COH_ORT_CALL(api->EnableProfiling(so, o->profile_prefix), "EnableProfiling")) {
    api->ReleaseSessionOptions(so);
    return COH_EORT;
  }
  *out = so;
  return COH_OK;
}

/* Says why the CUDA provider cannot load, before ONNX Runtime tries (whose
 * own message is only "Failed to load shared library"): the provider
 * libraries must sit beside libonnxruntime, and loading them must find
 * CUDA 13 (libcudart.so.13, libcublas.so.13, ...).  Returns 0 if they load. */
static int cuda_probe(coh_err *err) {
  Dl_info di;
  char dir[4096], path[4200];
  const char *slash;
  void *h;
  if (!dladdr((void *)OrtGetApiBase, &di) || di.dli_fname == NULL ||
      (slash = strrchr(di.dli_fname, '/')) == NULL)
    return coh__err(err, COH_EPROVIDER, "cannot locate libonnxruntime on disk");
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - di.dli_fname), di.dli_fname);
  snprintf(path, sizeof path, "%s/libonnxruntime_providers_cuda.so", dir);
  if (access(path, R_OK) != 0)
    return coh__err(err, COH_EPROVIDER,
                    "the CUDA provider library is not installed (%s is missing; "
                    "run scripts/setup.sh --gpu)", path);
  snprintf(path, sizeof path, "%s/libonnxruntime_providers_shared.so", dir);
  if ((h = dlopen(path, RTLD_NOW | RTLD_GLOBAL)) == NULL)
    return coh__err(err, COH_EPROVIDER, "%s", dlerror());
  snprintf(path, sizeof path, "%s/libonnxruntime_providers_cuda.so", dir);
  h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    /* dlerror() names the first missing dependency, e.g. libcudart.so.13 */
    return coh__err(err, COH_EPROVIDER, "%s", dlerror());
  }
  dlclose(h);
  return COH_OK;
}

/* Appends the CUDA provider and creates the session on it. */
static int open_cuda(coh_model *m, const coh_model_options *o, coh_err *err) {
  const OrtApi *api = m->api;
  OrtSessionOptions *so = NULL;
  OrtCUDAProviderOptionsV2 *cuda = NULL;
  int rc;
  if ((rc = cuda_probe(err))) return rc;
  if ((rc = make_session_options(m, o, &so, err))) return rc;
  if ((rc = COH_ORT_CALL(api->CreateCUDAProviderOptions(&cuda), "CUDA provider options")))
    goto done;
  if ((rc = COH_ORT_CALL(api->SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda),
                         "loading the CUDA provider")))
    goto done;
  rc = COH_ORT_CALL(api->CreateSession(m->env, m->onnx_path, so, &m->session),
                    "creating a CUDA session");
done:
  if (rc) err->code = rc = COH_EPROVIDER;
  if (cuda) api->ReleaseCUDAProviderOptions(cuda);
  api->ReleaseSessionOptions(so);
  return rc;
}

static int open_cpu(coh_model *m, const coh_model_options *o, coh_err *err) {
  OrtSessionOptions *so = NULL;
  int rc;
  if ((rc = make_session_options(m, o, &so, err))) return rc;
  rc = COH_ORT_CALL(m->api->CreateSession(m->env, m->onnx_path, so, &m->session),
                    m->onnx_path);
  m->api->ReleaseSessionOptions(so);
  return rc;
}

static int open_session(coh_model *m, const coh_model_options *o, coh_err *err) {
  int rc;
  if (o->device == COH_DEVICE_CPU) {
    m->info.provider = "CPUExecutionProvider";
    return open_cpu(m, o, err);
  }
  rc = open_cuda(m, o, err);
  if (rc == COH_OK) {
    m->info.provider = "CUDAExecutionProvider";
    return COH_OK;
  }
  if (o->device == COH_DEVICE_CUDA) {
    coh__err_prefix(err, "--device cuda: CUDA is unavailable");
    return COH_EPROVIDER;
  }
  /* AUTO: one clear line saying why, then the CPU. */
  {
    char line[COH_ERRMSG_MAX + 64];
    snprintf(line, sizeof line, "cohort: CUDA unavailable (%s); using the CPU",
             err->msg);
    m->provider_note = coh__strdup(err->msg);
    m->info.provider_note = m->provider_note ? m->provider_note : "";
    notice(m, line);
  }
  coh_err_clear(err);
  m->info.provider = "CPUExecutionProvider";
  return open_cpu(m, o, err);
}

/* ---- graph I/O validation ----------------------------------------------- */

typedef struct tensor_desc {
  ONNXTensorElementDataType type;
  size_t rank;
  int64_t dims[8];
} tensor_desc;

static int describe(coh_model *m, int output, size_t index, tensor_desc *d,
                    coh_err *err) {
  const OrtApi *api = m->api;
  OrtTypeInfo *ti = NULL;
  const OrtTensorTypeAndShapeInfo *tsi = NULL;
  int rc;
  memset(d, 0, sizeof *d);
  rc = output ? COH_ORT_CALL(api->SessionGetOutputTypeInfo(m->session, index, &ti), "output type")
              : COH_ORT_CALL(api->SessionGetInputTypeInfo(m->session, index, &ti), "input type");
  if (rc) return rc;
  if ((rc = COH_ORT_CALL(api->CastTypeInfoToTensorInfo(ti, &tsi), "tensor info")) ||
      tsi == NULL) {
    api->ReleaseTypeInfo(ti);
    return rc ? rc : coh__err(err, COH_EMODEL, "a graph %s is not a tensor",
                              output ? "output" : "input");
  }
  if ((rc = COH_ORT_CALL(api->GetTensorElementType(tsi, &d->type), "element type")) ||
      (rc = COH_ORT_CALL(api->GetDimensionsCount(tsi, &d->rank), "rank"))) {
    api->ReleaseTypeInfo(ti);
    return rc;
  }
  if (d->rank > 8) d->rank = 8;
  rc = COH_ORT_CALL(api->GetDimensions(tsi, d->dims, d->rank), "dims");
  api->ReleaseTypeInfo(ti);
  return rc;
}

static const char *type_name(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
    default: return "unsupported type";
  }
}

/* Checks a KV tensor: [batch, kv_heads, seq, head_dim] in a float type, with
 * fixed dims matching the configuration. */
static int check_kv(coh_model *m, const char *name, const tensor_desc *d,
                    coh_err *err) {
  if (d->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT &&
      d->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16)
    return coh__err(err, COH_EMODEL, "%s: '%s' is %s; cohort supports float32 and float16 KV caches",
                    m->onnx_path, name, type_name(d->type));
  if (d->rank != 4)
    return coh__err(err, COH_EMODEL, "%s: '%s' has rank %zu, expected 4 "
                    "[batch, kv_heads, sequence, head_size]", m->onnx_path, name, d->rank);
  if (d->dims[1] > 0 && d->dims[1] != m->info.n_kv_heads)
    return coh__err(err, COH_EMODEL, "%s: '%s' has %lld KV heads but the configuration says %d",
                    m->onnx_path, name, (long long)d->dims[1], m->info.n_kv_heads);
  if (d->dims[3] > 0 && d->dims[3] != m->info.head_dim)
    return coh__err(err, COH_EMODEL, "%s: '%s' has head size %lld but the configuration says %d",
                    m->onnx_path, name, (long long)d->dims[3], m->info.head_dim);
  if (m->kv_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED) m->kv_type = d->type;
  else if (m->kv_type != d->type)
    return coh__err(err, COH_EMODEL, "%s: '%s' is %s but other KV tensors are %s",
                    m->onnx_path, name, type_name(d->type), type_name(m->kv_type));
  return COH_OK;
}

/* Finds name in the list; returns its index or -1. */
static int find_name(char **names, size_t n, const char *name) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!strcmp(names[i], name)) return (int)i;
  return -1;
}

static int validate_io(coh_model *m, coh_err *err) {
  const OrtApi *api = m->api;
  OrtAllocator *alloc = NULL;
  size_t n_in = 0, n_out = 0, i;
  char **in = NULL, **out = NULL;
  tensor_desc d;
  int rc, l, idx;

  if ((rc = COH_ORT_CALL(api->GetAllocatorWithDefaultOptions(&alloc), "allocator")) ||
      (rc = COH_ORT_CALL(api->SessionGetInputCount(m->session, &n_in), "input count")) ||
      (rc = COH_ORT_CALL(api->SessionGetOutputCount(m->session, &n_out), "output count")))
    return rc;
  in = coh__calloc(n_in + 1, sizeof *in);
  out = coh__calloc(n_out + 1, sizeof *out);
  if (in == NULL || out == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto done;
  }
  for (i = 0; i < n_in; i++)
    if ((rc = COH_ORT_CALL(api->SessionGetInputName(m->session, i, alloc, &in[i]), "input name")))
      goto done;
  for (i = 0; i < n_out; i++)
    if ((rc = COH_ORT_CALL(api->SessionGetOutputName(m->session, i, alloc, &out[i]), "output name")))
      goto done;

  /* Every input must be one we know how to feed. */
  for (i = 0; i < n_in; i++) {
    int known = !strcmp(in[i], m->name_input_ids) || !strcmp(in[i], m->name_mask) ||
                !strcmp(in[i], m->name_position_ids) || !strcmp(in[i], "use_cache_branch");
    for (l = 0; !known && l < m->info.n_layers; l++)
      known = !strcmp(in[i], m->past_key[l]) || !strcmp(in[i], m->past_value[l]);
    if (!known) {
      rc = coh__err(err, COH_EMODEL,
                    "%s: unexpected graph input '%s' (cohort feeds %s, %s, %s and "
                    "the past key/value tensors)",
                    m->onnx_path, in[i], m->name_input_ids, m->name_mask,
                    m->name_position_ids);
      goto done;
    }
  }
  /* Required inputs. */
  idx = find_name(in, n_in, m->name_input_ids);
  if (idx < 0) {
    rc = coh__err(err, COH_EMODEL, "%s: the graph has no input '%s'", m->onnx_path,
                  m->name_input_ids);
    goto done;
  }
  if ((rc = describe(m, 0, (size_t)idx, &d, err))) goto done;
  if (d.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 || d.rank != 2) {
    rc = coh__err(err, COH_EMODEL, "%s: input '%s' is %s of rank %zu, expected int64 [batch, sequence]",
                  m->onnx_path, m->name_input_ids, type_name(d.type), d.rank);
    goto done;
  }
  idx = find_name(in, n_in, m->name_mask);
  if (idx < 0) {
    rc = coh__err(err, COH_EMODEL, "%s: the graph has no input '%s' (cohort needs an attention mask for batching)",
                  m->onnx_path, m->name_mask);
    goto done;
  }
  if ((rc = describe(m, 0, (size_t)idx, &d, err))) goto done;
  if (d.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 || d.rank != 2) {
    rc = coh__err(err, COH_EMODEL, "%s: input '%s' is %s of rank %zu, expected int64 [batch, total_sequence]",
                  m->onnx_path, m->name_mask, type_name(d.type), d.rank);
    goto done;
  }
  idx = find_name(in, n_in, m->name_position_ids);
  m->info.has_position_ids = idx >= 0;
  if (idx >= 0) {
    if ((rc = describe(m, 0, (size_t)idx, &d, err))) goto done;
    if (d.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
      rc = coh__err(err, COH_EMODEL, "%s: input '%s' is %s, expected int64", m->onnx_path,
                    m->name_position_ids, type_name(d.type));
      goto done;
    }
  }
  idx = find_name(in, n_in, "use_cache_branch");
  if (idx >= 0) {
    m->info.has_use_cache_branch = 1;
    if ((m->name_use_cache_branch = coh__strdup("use_cache_branch")) == NULL) {
      rc = coh__err(err, COH_ENOMEM, "out of memory");
      goto done;
    }
  }
  m->kv_type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  for (l = 0; l < m->info.n_layers; l++) {
    const char *names[2] = {m->past_key[l], m->past_value[l]};
    const char *onames[2] = {m->present_key[l], m->present_value[l]};
    int k;
    for (k = 0; k < 2; k++) {
      idx = find_name(in, n_in, names[k]);
      if (idx < 0) {
        rc = coh__err(err, COH_EMODEL, "%s: the graph has no input '%s' (the configuration "
                      "says %d layers with a KV cache)", m->onnx_path, names[k], m->info.n_layers);
        goto done;
      }
      if ((rc = describe(m, 0, (size_t)idx, &d, err)) || (rc = check_kv(m, names[k], &d, err)))
        goto done;
      idx = find_name(out, n_out, onames[k]);
      if (idx < 0) {
        rc = coh__err(err, COH_EMODEL, "%s: the graph has no output '%s'", m->onnx_path, onames[k]);
        goto done;
      }
      if ((rc = describe(m, 1, (size_t)idx, &d, err)) || (rc = check_kv(m, onames[k], &d, err)))
        goto done;
    }
  }
  idx = find_name(out, n_out, m->name_logits);
  if (idx < 0) {
    rc = coh__err(err, COH_EMODEL, "%s: the graph has no output '%s'", m->onnx_path, m->name_logits);
    goto done;
  }
  if ((rc = describe(m, 1, (size_t)idx, &d, err))) goto done;
  if ((d.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT &&
       d.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) || d.rank != 3) {
    rc = coh__err(err, COH_EMODEL, "%s: output '%s' is %s of rank %zu, expected float32/float16 "
                  "[batch, sequence, vocab]", m->onnx_path, m->name_logits, type_name(d.type), d.rank);
    goto done;
  }
  if (d.dims[2] > 0 && d.dims[2] != m->info.vocab) {
    rc = coh__err(err, COH_EMODEL, "%s: output '%s' has vocabulary %lld but the configuration says %lld",
                  m->onnx_path, m->name_logits, (long long)d.dims[2], (long long)m->info.vocab);
    goto done;
  }
  m->logits_type = d.type;
  m->info.dtype = m->kv_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? "fp16" : "fp32";
  rc = COH_OK;
done:
  for (i = 0; in && i < n_in; i++)
    if (in[i]) coh__ort_check(api->AllocatorFree(alloc, in[i]), NULL, "free");
  for (i = 0; out && i < n_out; i++)
    if (out[i]) coh__ort_check(api->AllocatorFree(alloc, out[i]), NULL, "free");
  coh__free(in);
  coh__free(out);
  return rc;
}

int coh_model_open(const char *dir, const coh_model_options *opts,
                   coh_model **out, coh_err *err) {
  coh_model_options defaults;
  coh_model *m;
  char *tok_path = NULL;
  int rc;

  *out = NULL;
  if (opts == NULL) {
    coh_model_options_default(&defaults);
    opts = &defaults;
  }
  if (dir == NULL || *dir == '\0')
    return coh__err(err, COH_EINVAL, "no model folder given");
  m = coh__calloc(1, sizeof *m);
  if (m == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  m->log = opts->log;
  m->log_user = opts->log_user;
  m->prefill_chunk = opts->prefill_chunk > 0 ? opts->prefill_chunk : 512;
  m->info.provider_note = "";
  m->dir = coh__strdup(dir);
  m->api = coh__ort();
  if (m->dir == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto fail;
  }
  if (m->api == NULL) {
    rc = coh__err(err, COH_EORT, "the loaded libonnxruntime does not provide C API version %d",
                  ORT_API_VERSION);
    goto fail;
  }
  m->info.dir = m->dir;
  if ((rc = coh__model_read_config(m, err))) goto fail;
  m->info.onnx_path = m->onnx_path;

  if ((rc = COH_ORT_CALL(m->api->CreateEnv((OrtLoggingLevel)opts->ort_log_level, "cohort", &m->env),
                         "CreateEnv")) ||
      (rc = COH_ORT_CALL(m->api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &m->cpu_mem),
                         "CreateCpuMemoryInfo")))
    goto fail;
  if ((rc = open_session(m, opts, err))) goto fail;
  if ((rc = validate_io(m, err))) goto fail;

  tok_path = coh__path_join(m->dir, "tokenizer.json");
  if (tok_path == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto fail;
  }
  if (access(tok_path, F_OK) == 0) {
    char *inside = NULL; /* no symbolic link out of the folder */
    rc = coh__path_inside(m->dir, "tokenizer.json", "tokenizer.json",
                          &inside, err);
    coh__free(inside);
    if (rc || (rc = coh_tokenizer_load(tok_path, &m->tok, err))) goto fail;
  }
  if ((rc = coh__model_read_stop_ids(m, err)) ||
      (rc = coh_chat_template_load_dir(m->dir, &m->chat, err)))
    goto fail;
  coh__free(tok_path);
  *out = m;
  return COH_OK;
fail:
  coh__free(tok_path);
  coh_model_close(m);
  return rc;
}
