/*
 * cmd_generate.c — `cohort generate`: stream a completion from a model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_int.h"
#include "cohort/infer.h"
#include "util/util_int.h"

static const char usage[] =
    "usage: cohort generate [--model DIR] [options] PROMPT\n"
    "       cohort generate [--model DIR] [options] --prompt-ids 1,2,3\n"
    "  --model DIR              model folder (default: the embedded Shakespeare\n"
    "                           model, models/shakespeare, checked against its SHA256SUMS)\n"
    "  --device auto|cpu|cuda   execution provider (default auto)\n"
    "  --max-tokens N           tokens to generate (default 64)\n"
    "  --seed N                 sampling seed (default 0)\n"
    "  --temperature T          > 0 samples; 0 is greedy (default: greedy\n"
    "                           unless a sampling flag is given, then 1.0)\n"
    "  --top-k K  --top-p P  --min-p P  --repetition-penalty R\n"
    "  --stop S                 stop string (repeatable)\n"
    "  --stop-id N              stop token id (repeatable)\n"
    "  --ignore-eos             do not stop at the model's end-of-sequence token\n"
    "  --json-schema FILE       constrain the output to JSON valid under this JSON Schema\n"
    "                           (an unsupported keyword is an error naming it and its\n"
    "                           JSON pointer; docs/grammar.md lists what is supported)\n"
    "  --grammar FILE           constrain the output to this EBNF grammar (GBNF-style,\n"
    "                           start rule 'root'; docs/grammar.md)\n"
    "  --json-object            constrain the output to any JSON object\n"
    "                           (the three constraints exclude each other and --ignore-eos;\n"
    "                           the output ends when it is complete and nothing but\n"
    "                           end-of-sequence may follow, or at --max-tokens)\n"
    "  --threads N              ONNX Runtime intra-op threads (default: all cores)\n"
    "  --prefill-chunk N        prompt tokens per prefill run (default 512)\n"
    "  --prefix-cache SIZE      prefix cache budget: MiB, or KiB with a K suffix (default\n"
    "                           256 MiB; 0: off; one request only fills it)\n"
    "  --print-ids              print the generated ids as a JSON array on the last line\n"
    "  --verbose                print timing and provider details on stderr\n";

#define MAX_STOPS 16

typedef struct gen_state {
  int32_t *ids;
  size_t n_ids, cap;
  coh_finish finish;
  int oom;
} gen_state;

static void on_token(void *user, const coh_token_event *ev) {
  gen_state *g = user;
  if (ev->text_len > 0) {
    fwrite(ev->text, 1, ev->text_len, stdout);
    fflush(stdout);
  }
  if (ev->token >= 0) {
    if (g->n_ids == g->cap) {
      size_t ncap = g->cap ? g->cap * 2 : 64;
      int32_t *n = realloc(g->ids, ncap * sizeof *n);
      if (n == NULL) {
        g->oom = 1;
        return;
      }
      g->ids = n;
      g->cap = ncap;
    }
    g->ids[g->n_ids++] = ev->token;
  }
  if (ev->finish != COH_FINISH_NONE) g->finish = ev->finish;
}

/* Checks the default model folder against its SHA256SUMS ("HEX  NAME" lines,
 * as sha256sum writes them), so a missing or damaged file of the checkout is
 * named before ONNX Runtime sees it.  Returns 0, or 1 after printing the
 * error.  The number of lines is bounded by the file's size (64 KiB). */
static int check_default_model(const char *dir) {
  char path[4096], *sums = NULL, *line, *save = NULL;
  size_t len = 0;
  int n = 0, rc = 1;
  coh_err err = {0};
  if ((size_t)snprintf(path, sizeof path, "%s/SHA256SUMS", dir) >= sizeof path) {
    coh__runtime_error("generate", "default model: folder path too long");
    return 1;
  }
  if (coh__read_file(path, &sums, &len, &err)) {
    coh__runtime_error("generate", "default model: %s", err.msg);
    return 1;
  }
  if (len > 64 * 1024) {
    coh__runtime_error("generate", "%s: %zu bytes, more than a checksum list (64 KiB)", path, len);
    coh__free(sums);
    return 1;
  }
  for (line = strtok_r(sums, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    char want[65], got[65];
    const char *name = line + 66;
    if (strlen(line) < 67 || line[64] != ' ' || line[65] != ' ' || strchr(name, '/') != NULL) {
      coh__runtime_error("generate", "%s: line %d is not 'SHA256  FILE'", path, n + 1);
      goto done;
    }
    memcpy(want, line, 64);
    want[64] = '\0';
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
      coh__runtime_error("generate", "default model: path of %s too long", name);
      goto done;
    }
    if (coh__sha256_file(path, got, &err)) {
      coh__runtime_error("generate", "default model: %s (restore it with: git checkout -- models/)",
                         err.msg);
      goto done;
    }
    if (strcmp(want, got) != 0) {
      coh__runtime_error("generate",
                         "default model: %s is corrupted: sha256 %s, expected %s "
                         "(restore it with: git checkout -- models/)",
                         path, got, want);
      goto done;
    }
    n++;
  }
  if (n == 0) {
    coh__runtime_error("generate", "%s/SHA256SUMS lists no files", dir);
    goto done;
  }
  rc = 0;
done:
  coh__free(sums);
  return rc;
}

/* The default model folder: models/shakespeare beside the directory that
 * holds the executable (build/cohort -> models/shakespeare in a checkout, or
 * a relocated bin/ + models/ pair), else the source tree it was built from. */
static const char *default_model_dir(char *buf, size_t cap) {
  ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
  char *slash;
  struct stat st;
  if (n > 0 && (size_t)n < cap - 32) {
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (slash != NULL) {
      snprintf(slash, cap - (size_t)(slash - buf), "/../models/shakespeare");
      if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) return buf;
    }
  }
  return COH_DEFAULT_MODEL_DIR;
}

/* Parses "1,2,3" into a malloc'd array. */
static int parse_ids(const char *s, int32_t **out, size_t *n) {
  size_t cap = 16, k = 0;
  int32_t *ids = malloc(cap * sizeof *ids);
  char *copy = strdup(s), *tok, *save = NULL;
  if (ids == NULL || copy == NULL) goto bad;
  for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int64_t v;
    while (*tok == ' ') tok++;
    if (coh__parse_i64(tok, 0, INT32_MAX, &v)) goto bad;
    if (k == cap) {
      int32_t *n2 = realloc(ids, (cap *= 2) * sizeof *ids);
      if (n2 == NULL) goto bad;
      ids = n2;
    }
    ids[k++] = (int32_t)v;
  }
  free(copy);
  *out = ids;
  *n = k;
  return 0;
bad:
  free(ids);
  free(copy);
  return -1;
}

int coh__cmd_generate(int argc, char **argv) {
  const char *model_dir = NULL, *prompt = NULL, *prompt_ids = NULL;
  const char *schema_path = NULL, *grammar_path = NULL;
  int json_object = 0;
  coh_grammar *grammar = NULL;
  const char *stops[MAX_STOPS];
  int32_t stop_ids[MAX_STOPS];
  size_t n_stops = 0, n_stop_ids = 0, n_prompt = 0, i;
  int print_ids = 0, verbose = 0, sampling_flag = 0, have_temp = 0, rc;
  int64_t iv, pcache_kib = -1;
  double dv;
  coh_model_options mo;
  coh_request req;
  coh_model *model = NULL;
  char default_dir[4096];
  coh_engine *engine = NULL;
  int32_t *ids = NULL;
  gen_state g;
  coh_err err;
  uint64_t id;
  int status = COH_EXIT_RUNTIME;

  memset(&g, 0, sizeof g);
  coh_err_clear(&err);
  coh_model_options_default(&mo);
  coh_request_default(&req);
  req.max_tokens = 64;

  for (i = 1; i < (size_t)argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < (size_t)argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                        \
  do {                                                                      \
    if (v == NULL) return coh__usage_error("generate", "%s needs a value", a); \
    i++;                                                                    \
  } while (0)
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return COH_EXIT_OK;
    } else if (!strcmp(a, "--model")) {
      NEED_VALUE();
      model_dir = v;
    } else if (!strcmp(a, "--device")) {
      NEED_VALUE();
      if (coh_device_parse(v, &mo.device))
        return coh__usage_error("generate", "--device must be auto, cpu or cuda (got '%s')", v);
    } else if (!strcmp(a, "--max-tokens")) {
      NEED_VALUE();
      if (coh__parse_i64(v, 0, 1 << 20, &iv))
        return coh__usage_error("generate", "--max-tokens must be an integer >= 0 (got '%s')", v);
      req.max_tokens = (int32_t)iv;
    } else if (!strcmp(a, "--seed")) {
      NEED_VALUE();
      if (coh__parse_i64(v, 0, INT64_MAX, &iv))
        return coh__usage_error("generate", "--seed must be a non-negative integer (got '%s')", v);
      req.sampling.seed = (uint64_t)iv;
    } else if (!strcmp(a, "--temperature")) {
      NEED_VALUE();
      if (coh__parse_f64(v, 0, 100, &dv))
        return coh__usage_error("generate", "--temperature must be a number in [0, 100] (got '%s')", v);
      req.sampling.temperature = (float)dv;
      have_temp = 1;
    } else if (!strcmp(a, "--top-k")) {
      NEED_VALUE();
      if (coh__parse_i64(v, 0, INT32_MAX, &iv))
        return coh__usage_error("generate", "--top-k must be an integer >= 0 (got '%s')", v);
      req.sampling.top_k = (int32_t)iv;
      sampling_flag = 1;
    } else if (!strcmp(a, "--top-p")) {
      NEED_VALUE();
      if (coh__parse_f64(v, 1e-9, 1, &dv))
        return coh__usage_error("generate", "--top-p must be in (0, 1] (got '%s')", v);
      req.sampling.top_p = (float)dv;
      sampling_flag = 1;
    } else if (!strcmp(a, "--min-p")) {
      NEED_VALUE();
      if (coh__parse_f64(v, 0, 1, &dv))
        return coh__usage_error("generate", "--min-p must be in [0, 1] (got '%s')", v);
      req.sampling.min_p = (float)dv;
      sampling_flag = 1;
    } else if (!strcmp(a, "--repetition-penalty")) {
      NEED_VALUE();
      if (coh__parse_f64(v, 1e-6, 100, &dv))
        return coh__usage_error("generate", "--repetition-penalty must be > 0 (got '%s')", v);
      req.sampling.repetition_penalty = (float)dv;
    } else if (!strcmp(a, "--stop")) {
      NEED_VALUE();
      if (n_stops == MAX_STOPS)
        return coh__usage_error("generate", "at most %d --stop strings", MAX_STOPS);
      if (*v == '\0') return coh__usage_error("generate", "--stop needs a non-empty string");
      stops[n_stops++] = v;
    } else if (!strcmp(a, "--stop-id")) {
      NEED_VALUE();
      if (n_stop_ids == MAX_STOPS)
        return coh__usage_error("generate", "at most %d --stop-id values", MAX_STOPS);
      if (coh__parse_i64(v, 0, INT32_MAX, &iv))
        return coh__usage_error("generate", "--stop-id must be a token id (got '%s')", v);
      stop_ids[n_stop_ids++] = (int32_t)iv;
    } else if (!strcmp(a, "--threads")) {
      NEED_VALUE();
      if (coh__parse_i64(v, 1, 1024, &iv))
        return coh__usage_error("generate", "--threads must be in [1, 1024] (got '%s')", v);
      mo.intra_op_threads = (int)iv;
    } else if (!strcmp(a, "--prefill-chunk")) {
      NEED_VALUE();
      if (coh__parse_i64(v, 1, 65536, &iv))
        return coh__usage_error("generate", "--prefill-chunk must be in [1, 65536] (got '%s')", v);
      mo.prefill_chunk = (int)iv;
    } else if (!strcmp(a, "--prefix-cache")) {
      NEED_VALUE();
      if (coh__parse_size_kib(v, &iv))
        return coh__usage_error("generate", "--prefix-cache must be MiB, or KiB with a K suffix, "
                                "at most 1 TiB (got '%s')", v);
      pcache_kib = iv;
    } else if (!strcmp(a, "--prompt-ids")) {
      NEED_VALUE();
      prompt_ids = v;
    } else if (!strcmp(a, "--json-schema")) {
      NEED_VALUE();
      schema_path = v;
    } else if (!strcmp(a, "--grammar")) {
      NEED_VALUE();
      grammar_path = v;
    } else if (!strcmp(a, "--json-object")) {
      json_object = 1;
    } else if (!strcmp(a, "--ignore-eos")) {
      req.ignore_eos = 1;
    } else if (!strcmp(a, "--print-ids")) {
      print_ids = 1;
    } else if (!strcmp(a, "--verbose")) {
      verbose = 1;
    } else if (a[0] == '-' && a[1] == '-') {
      return coh__usage_error("generate", "unknown option '%s' (see --help)", a);
    } else if (prompt == NULL) {
      prompt = a;
    } else {
      return coh__usage_error("generate", "more than one PROMPT given ('%s'); quote the prompt", a);
    }
#undef NEED_VALUE
  }
  if (model_dir == NULL) {
    model_dir = default_model_dir(default_dir, sizeof default_dir);
    if (check_default_model(model_dir)) return 1;
  }
  if (prompt == NULL && prompt_ids == NULL)
    return coh__usage_error("generate", "give a PROMPT or --prompt-ids");
  if (prompt != NULL && prompt_ids != NULL)
    return coh__usage_error("generate", "give either a PROMPT or --prompt-ids, not both");
  if ((schema_path != NULL) + (grammar_path != NULL) + json_object > 1)
    return coh__usage_error("generate", "--json-schema, --grammar and --json-object exclude each other");
  if ((schema_path != NULL || grammar_path != NULL || json_object) && req.ignore_eos)
    return coh__usage_error("generate", "--ignore-eos cannot be combined with a constraint");
  if (sampling_flag && !have_temp) req.sampling.temperature = 1.0f;
  if (schema_path != NULL || grammar_path != NULL) {
    /* Compiled before the model is loaded: a bad constraint fails fast. */
    const char *path = schema_path ? schema_path : grammar_path;
    static const coh_grammar_options gen_opts = {.ordered_objects = 1};
    char *text = NULL;
    size_t len = 0;
    if (coh__read_file_max(path, (size_t)16 << 20, &text, &len, &err))
      return coh__runtime_error("generate", "%s", err.msg);
    /* the generation form: object properties in schema order, each once */
    rc = schema_path ? coh_grammar_from_json_schema_opts(text, len, path, &gen_opts, &grammar, &err)
                     : coh_grammar_from_ebnf(text, len, path, &grammar, &err);
    coh__free(text);
    if (rc)
      return coh__runtime_error("generate", "%s%s%s%s", rc == COH_EUNSUPPORTED ? "unsupported: " : "",
                                strstr(err.msg, path) ? "" : path, strstr(err.msg, path) ? "" : ": ",
                                err.msg);
  } else if (json_object && (rc = coh_grammar_any_json_object(&grammar, &err))) {
    return coh__runtime_error("generate", "--json-object: %s", err.msg);
  }
  req.grammar = grammar;
  if (prompt_ids != NULL) {
    if (parse_ids(prompt_ids, &ids, &n_prompt) || n_prompt == 0) {
      free(ids);
      coh_grammar_free(grammar);
      return coh__usage_error("generate", "--prompt-ids must be a comma-separated list of token ids (got '%s')",
                              prompt_ids);
    }
  }

  if ((rc = coh_model_open(model_dir, &mo, &model, &err))) {
    free(ids);
    coh_grammar_free(grammar);
    return coh__runtime_error("generate", "%s", err.msg);
  }
  if (coh_model_tokenizer(model) != NULL &&
      coh_tokenizer_notice(coh_model_tokenizer(model)) != NULL)
    fprintf(stderr, "cohort generate: warning: %s\n",
            coh_tokenizer_notice(coh_model_tokenizer(model)));
  if (prompt != NULL) {
    const coh_tokenizer *tok = coh_model_tokenizer(model);
    int32_t *t = NULL;
    if (tok == NULL) {
      coh__runtime_error("generate", "%s has no tokenizer.json; use --prompt-ids", model_dir);
      goto done;
    }
    if (coh_tokenizer_encode(tok, prompt, strlen(prompt), 1, &t, &n_prompt, &err)) {
      coh__runtime_error("generate", "tokenizing the prompt: %s", err.msg);
      goto done;
    }
    ids = malloc((n_prompt ? n_prompt : 1) * sizeof *ids);
    if (ids == NULL) {
      coh_free(t);
      coh__runtime_error("generate", "out of memory");
      goto done;
    }
    memcpy(ids, t, n_prompt * sizeof *ids);
    coh_free(t);
  }
  req.prompt = ids;
  req.n_prompt = n_prompt;
  req.stop_strings = stops;
  req.n_stop_strings = n_stops;
  req.stop_ids = stop_ids;
  req.n_stop_ids = n_stop_ids;
  req.on_token = on_token;
  req.user = &g;
  if ((rc = coh_engine_new(model, 1, &engine, &err)) ||
      (pcache_kib >= 0 &&
       (rc = coh_engine_set_prefix_cache(engine, (size_t)pcache_kib << 10, &err))) ||
      (rc = coh_engine_submit(engine, &req, &id, &err))) {
    coh__runtime_error("generate", "%s", err.msg);
    goto done;
  }
  while (coh_engine_busy(engine))
    if ((rc = coh_engine_step(engine, &err))) {
      coh__runtime_error("generate", "%s", err.msg);
      goto done;
    }
  if (g.oom) {
    coh__runtime_error("generate", "out of memory");
    goto done;
  }
  if (print_ids) {
    printf("%s[", g.n_ids > 0 || prompt != NULL ? "\n" : "");
    for (i = 0; i < g.n_ids; i++) printf("%s%d", i ? ", " : "", g.ids[i]);
    printf("]\n");
  } else if (prompt != NULL) {
    printf("\n");
  }
  if (verbose) {
    const coh_model_info *info = coh_model_get_info(model);
    coh_engine_stats st;
    coh_engine_get_stats(engine, &st);
    fprintf(stderr,
            "[cohort] %s, %s %s, %d threads; prompt %zu tokens, generated %zu (%s); "
            "%llu steps, %.1f ms in OrtRun of %.1f ms total",
            info->provider, info->dtype, info->attention, info->intra_op_threads, n_prompt,
            g.n_ids, coh_finish_name(g.finish), (unsigned long long)st.steps,
            st.ort_seconds * 1e3, st.step_seconds * 1e3);
    if (grammar != NULL)
      fprintf(stderr, "; %llu grammar masks, %.1f ms computing them, %.1f ms waited for",
              (unsigned long long)st.masks, st.mask_seconds * 1e3, st.mask_wait_seconds * 1e3);
    fputc('\n', stderr);
  }
  status = COH_EXIT_OK;
done:
  coh_engine_free(engine);
  coh_grammar_free(grammar); /* after the engine, which borrowed it */
  coh_model_close(model);
  free(ids);
  free(g.ids);
  return status;
}
