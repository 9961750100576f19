/*
 * llm_request.c — parses an agent's llm() request JSON into an engine
 * request.  Agents are untrusted: every field is type- and range-checked and
 * errors name the field.
 */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "util/util_int.h"
#include "cohort/infer.h"

void coh_llm_request_free(coh_llm_request *r) {
  size_t i;
  if (r == NULL) return;
  coh__free(r->model);
  coh_free(r->ids);
  for (i = 0; i < r->n_stops; i++) coh__free(r->stops[i]);
  coh__free(r->stops);
  memset(r, 0, sizeof *r);
}

static int num_field(json_t *v, const char *name, double lo, double hi,
                     double *out, coh_err *err) {
  double d = 0;
  if (!json_is_number(v))
    return coh__err(err, COH_EFORMAT, "llm request: field '%s' must be a number", name);
  d = json_number_value(v);
  if (!isfinite(d) || d < lo || d > hi)
    return coh__err(err, COH_EFORMAT, "llm request: field '%s' = %g is outside [%g, %g]",
                    name, d, lo, hi);
  *out = d;
  return COH_OK;
}

int coh_llm_request_parse(const char *json, size_t len,
                          const coh_tokenizer *tok, uint64_t seed,
                          coh_llm_request *out, coh_err *err) {
  json_error_t je;
  json_t *root, *v;
  const char *key;
  size_t n_ids = 0;
  int rc = COH_OK, sampling_field = 0, have_temp = 0;
  double d = 0;

  memset(out, 0, sizeof *out);
  coh_request_default(&out->req);
  out->req.max_tokens = 64;
  out->req.sampling.seed = seed;
  if (tok == NULL)
    return coh__err(err, COH_EINVAL, "llm request: the model has no tokenizer.json");
  root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL)
    return coh__err(err, COH_EFORMAT, "llm request: invalid JSON at column %d: %s",
                    je.column, je.text);
  if (!json_is_object(root)) {
    rc = coh__err(err, COH_EFORMAT, "llm request: must be a JSON object");
    goto done;
  }
  json_object_foreach(root, key, v) {
    if (!strcmp(key, "prompt")) {
      if (!json_is_string(v)) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'prompt' must be a string");
        goto done;
      }
    } else if (!strcmp(key, "model")) {
      if (!json_is_string(v)) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'model' must be a string");
        goto done;
      }
      if ((out->model = coh__strdup(json_string_value(v))) == NULL) goto oom;
    } else if (!strcmp(key, "max_tokens")) {
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1 << 20) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'max_tokens' must be an integer in [0, 1048576]");
        goto done;
      }
      out->req.max_tokens = (int32_t)json_integer_value(v);
    } else if (!strcmp(key, "temperature")) {
      if ((rc = num_field(v, key, 0, 100, &d, err))) goto done;
      out->req.sampling.temperature = (float)d;
      have_temp = 1;
    } else if (!strcmp(key, "top_k")) {
      if ((rc = num_field(v, key, 0, INT32_MAX, &d, err))) goto done;
      out->req.sampling.top_k = (int32_t)d;
      sampling_field = 1;
    } else if (!strcmp(key, "top_p")) {
      if ((rc = num_field(v, key, 1e-9, 1, &d, err))) goto done;
      out->req.sampling.top_p = (float)d;
      sampling_field = 1;
    } else if (!strcmp(key, "min_p")) {
      if ((rc = num_field(v, key, 0, 1, &d, err))) goto done;
      out->req.sampling.min_p = (float)d;
      sampling_field = 1;
    } else if (!strcmp(key, "repetition_penalty")) {
      if ((rc = num_field(v, key, 1e-6, 100, &d, err))) goto done;
      out->req.sampling.repetition_penalty = (float)d;
    } else if (!strcmp(key, "ignore_eos")) {
      if (!json_is_boolean(v)) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'ignore_eos' must be true or false");
        goto done;
      }
      out->req.ignore_eos = json_is_true(v);
    } else if (!strcmp(key, "stop")) {
      /* a string is one stop string (as in the OpenAI API, and as the
       * stock prompt agent documents its "stop" key) */
      size_t i, n = json_is_string(v) ? 1 : json_array_size(v);
      if (!(json_is_array(v) || json_is_string(v)) || n > 16) {
        rc = coh__err(err, COH_EFORMAT, "llm request: field 'stop' must be a string or an array of at most 16 strings");
        goto done;
      }
      out->stops = coh__calloc(n + 1, sizeof *out->stops);
      if (out->stops == NULL) goto oom;
      for (i = 0; i < n; i++) {
        json_t *sv = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(sv) || json_string_length(sv) == 0 ||
            json_string_length(sv) > COH_STOP_STRING_MAX) {
          rc = coh__err(err, COH_EFORMAT,
                        "llm request: field 'stop[%zu]' must be a non-empty "
                        "string of at most %d bytes",
                        i, COH_STOP_STRING_MAX);
          goto done;
        }
        if ((out->stops[out->n_stops] = coh__strdup(json_string_value(sv))) == NULL) goto oom;
        out->n_stops++;
      }
    } else {
      rc = coh__err(err, COH_EFORMAT, "llm request: unknown field '%s'", key);
      goto done;
    }
  }
  v = json_object_get(root, "prompt");
  if (v == NULL) {
    rc = coh__err(err, COH_EFORMAT, "llm request: missing field 'prompt'");
    goto done;
  }
  if (sampling_field && !have_temp) out->req.sampling.temperature = 1.0f;
  if ((rc = coh_tokenizer_encode(tok, json_string_value(v), json_string_length(v), 1,
                                 &out->ids, &n_ids, err)))
    goto done;
  out->req.prompt = out->ids;
  out->req.n_prompt = n_ids;
  out->req.stop_strings = (const char *const *)out->stops;
  out->req.n_stop_strings = out->n_stops;
  goto done;
oom:
  rc = coh__err(err, COH_ENOMEM, "out of memory");
done:
  json_decref(root);
  return rc;
}
