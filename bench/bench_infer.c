/*
 * bench_infer.c — throughput of cohort's inference engine on one model
 * folder, measured through the public API only (include/cohort/infer.h).
 *
 *   bench_infer MODEL_DIR [--threads N] [--prompt-len P] [--decode-len D]
 *               [--concurrency 1,4,16,64 | 1:128:3,4:64,16:32,64:8]
 *               [--device cpu|cuda|auto] [--bandwidth GBS] [--warmup N]
 *               [--dump-tokens FILE] [--profile PREFIX]
 *
 * For every concurrency level C (optionally C:D to give that level its own
 * decode length, C:D:N to run it N times and keep the best prefill and the
 * best decode figure: the machine may be shared, and interference only
 * ever slows a run down) a fresh engine with max_batch C receives C greedy requests
 * (ignore_eos, max_tokens D) at once, all with prompts of the same length P.
 * Because the prompts are equal and shorter than the prefill chunk, the
 * first step does all the prefill (every request runs its prompt and samples
 * its first token) and no decode; every later step is a decode step of the
 * whole batch.  The bench classifies each step by the engine's counters
 * (prefill_tokens / decode_tokens deltas) and reports:
 *   prefill tok/s = prompt tokens / wall time of prefill-only steps
 *   decode tok/s  = decoded tokens / wall time of decode-only steps
 *                   (aggregate over the C requests)
 *   decode p50    = C / median decode-step wall time: the same rate with
 *                   bursts of interference from other processes filtered
 *                   out (printed beside the mean-based figure, not instead)
 *   best step     = C / fastest decode-step wall time (JSON only:
 *                   decode_tok_s_best_step), the undisturbed rate, for a
 *                   like-for-like ratio against STREAM's best-of-N
 *   runq wait     = time this process's threads were runnable but waited
 *                   for a CPU (Linux schedstat), as a share of the decode
 *                   wall time: other processes taking the cores.  Near 0%
 *                   the figures are the machine's; far above it they are
 *                   mostly the neighbours'
 *   outside Run   = 1 - (time inside OrtRun) / (time inside coh_engine_step)
 *                   over the decode-only steps
 * A step that mixes both (it cannot happen with equal prompts) would be left
 * out of both and counted in "mixed_steps".
 *
 * Roofline: decoding one token at batch 1 reads every weight matrix once.
 * The bytes are taken from model.safetensors (the identical weights the
 * fixture tool writes beside the ONNX file; else the size of model.onnx +
 * model.onnx.data).  Two figures are printed: all weight bytes, and the
 * bytes actually read per token, which leave out the token-embedding table
 * (a Gather reads one 3 KB row of it, not the whole table) unless the table
 * doubles as the output projection.  With --bandwidth (GB/s, from
 * bench_stream) the roofline tokens/s = bandwidth / bytes, and decode at
 * C = 1 is printed as a fraction of it.
 *
 * Prompts are fixed pseudo-random ids (request r, position i), the same in
 * every run, starting with the model's BOS id.  Request 0 has the same
 * prompt at every level, so its tokens at C > 1 are compared with those at
 * C = 1 ("batch_invariant").  --dump-tokens writes request 0's prompt and
 * greedy tokens at the first level as JSON for the Node reference to check.
 *
 * Output: a table on stdout, and one JSON object per line prefixed by
 * nothing (lines starting with '{') for scripts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <dirent.h>

#include <jansson.h>

#include "cohort/infer.h"

#define MAX_LEVELS 16

typedef struct level {
  int conc, decode_len, repeats;
} level;

#define MAX_REPEATS 16

typedef struct options {
  const char *model_dir;
  int threads, prompt_len, decode_len, warmup;
  level levels[MAX_LEVELS];
  int n_levels;
  coh_device device;
  double bandwidth_gbs;
  const char *dump_tokens, *profile;
} options;

/* Tokens received for one request. */
typedef struct sink {
  int32_t *tok;
  int n, cap;
  coh_finish finish;
} sink;

typedef struct result {
  int conc, decode_len, runs;
  double all_decode[MAX_REPEATS], all_prefill[MAX_REPEATS]; /* tok/s of every run */
  double prefill_s, decode_s, decode_step_s, decode_ort_s;
  uint64_t prefill_tokens, decode_tokens;
  int prefill_steps, decode_steps, mixed_steps;
  uint64_t decode_rebuilds;   /* decode batches re-laid out during decode steps */
  double outside_first_s;     /* outside Run in the first decode step (rebuild) */
  double outside_max_rest_s;  /* largest outside-Run time of the later steps */
  double decode_p50_step_s;   /* median wall time of one decode step */
  double decode_min_step_s;   /* fastest decode step: the undisturbed rate, the
                               * like of STREAM's best-of-N (run_roofline.sh) */
  /* Over the decode steps, summed over this process's threads (Linux
   * schedstat): CPU time, and time spent runnable but waiting for a CPU —
   * the direct measure of interference from other processes. */
  double decode_cpu_s, decode_runq_wait_s;
  int batch_invariant; /* -1: not compared */
} result;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_token(void *user, const coh_token_event *ev) {
  sink *s = user;
  if (ev->token >= 0 && s->n < s->cap) s->tok[s->n++] = ev->token;
  if (ev->finish != COH_FINISH_NONE) s->finish = ev->finish;
}

/* Fixed prompt: BOS, then ids mixed from (request, position), avoiding the
 * first few ids (pad/bos/eos in the fixtures). */
static void make_prompt(int32_t *p, int len, int req, const coh_model_info *info) {
  int i;
  int64_t span = info->vocab > 16 ? info->vocab - 3 : 1;
  p[0] = info->bos_id >= 0 ? info->bos_id : 1;
  for (i = 1; i < len; i++) {
    uint64_t x = (uint64_t)req * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 29;
    p[i] = (int32_t)(3 + (int64_t)(x % (uint64_t)span));
  }
}

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (*s == '\0' || end == s || errno || v < lo || v > hi) return -1;
  *out = (int)v;
  return (int)(end - s);
}

/* "1,4,16,64" or "1:128:3,4:64" (C[:D[:N]]: concurrency, decode length,
 * repeats). */
static int parse_levels(const char *s, options *o) {
  o->n_levels = 0;
  while (*s) {
    level lv;
    int k;
    char buf[32];
    size_t len = strcspn(s, ",");
    char *colon, *colon2;
    if (len == 0 || len >= sizeof buf || o->n_levels == MAX_LEVELS) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    colon = strchr(buf, ':');
    lv.decode_len = 0;
    lv.repeats = 1;
    if (colon) {
      *colon = '\0';
      if ((colon2 = strchr(colon + 1, ':')) != NULL) {
        *colon2 = '\0';
        if (parse_int(colon2 + 1, 1, MAX_REPEATS, &lv.repeats) != (int)strlen(colon2 + 1))
          return -1;
      }
      if (parse_int(colon + 1, 1, 1 << 20, &lv.decode_len) != (int)strlen(colon + 1)) return -1;
    }
    if ((k = parse_int(buf, 1, 1024, &lv.conc)) != (int)strlen(buf)) return -1;
    o->levels[o->n_levels++] = lv;
    s += len;
    if (*s == ',') s++;
  }
  return o->n_levels > 0 ? 0 : -1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_infer MODEL_DIR [--threads N] [--prompt-len P] [--decode-len D]\n"
          "         [--concurrency 1,4,16,64 | C:D[:N],...] [--device cpu|cuda|auto]\n"
          "         [--bandwidth GBS] [--warmup N] [--dump-tokens FILE] [--profile PREFIX]\n");
}

static int parse_args(int argc, char **argv, options *o) {
  int i;
  memset(o, 0, sizeof *o);
  o->prompt_len = 64;
  o->decode_len = 64;
  o->warmup = 4;
  o->device = COH_DEVICE_CPU;
  parse_levels("1,4,16,64", o);
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int bad = 0;
    if (a[0] != '-') {
      if (o->model_dir) bad = 1;
      o->model_dir = a;
      if (bad) {
        fprintf(stderr, "bench_infer: more than one model folder ('%s')\n", a);
        return -1;
      }
      continue;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage();
      exit(0);
    }
    if (v == NULL) {
      fprintf(stderr, "bench_infer: %s needs a value\n", a);
      return -1;
    }
    i++;
    if (!strcmp(a, "--threads")) bad = parse_int(v, 0, 4096, &o->threads) != (int)strlen(v);
    else if (!strcmp(a, "--prompt-len")) bad = parse_int(v, 1, 1 << 20, &o->prompt_len) != (int)strlen(v);
    else if (!strcmp(a, "--decode-len")) bad = parse_int(v, 1, 1 << 20, &o->decode_len) != (int)strlen(v);
    else if (!strcmp(a, "--warmup")) bad = parse_int(v, 0, 1 << 20, &o->warmup) != (int)strlen(v);
    else if (!strcmp(a, "--concurrency")) bad = parse_levels(v, o) != 0;
    else if (!strcmp(a, "--device")) bad = coh_device_parse(v, &o->device) != COH_OK;
    else if (!strcmp(a, "--dump-tokens")) o->dump_tokens = v;
    else if (!strcmp(a, "--profile")) o->profile = v;
    else if (!strcmp(a, "--bandwidth")) {
      char *end;
      o->bandwidth_gbs = strtod(v, &end);
      bad = *end != '\0' || !(o->bandwidth_gbs >= 0);
    } else {
      fprintf(stderr, "bench_infer: unknown option %s\n", a);
      return -1;
    }
    if (bad) {
      fprintf(stderr, "bench_infer: bad value for %s: '%s'\n", a, v);
      return -1;
    }
  }
  if (o->model_dir == NULL) {
    fprintf(stderr, "bench_infer: no model folder given\n");
    return -1;
  }
  for (i = 0; i < o->n_levels; i++)
    if (o->levels[i].decode_len == 0) o->levels[i].decode_len = o->decode_len;
  return 0;
}

/* ---- weight bytes ------------------------------------------------------ */

static long long file_size(const char *dir, const char *name) {
  char path[4096];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Sums the tensor bytes listed in model.safetensors' header.  *embed: bytes
 * of the token-embedding table when a separate lm_head exists (so the table
 * is only gathered from), else 0.  Returns 0 on success. */
static int safetensors_bytes(const char *dir, long long *total, long long *embed,
                             char *why, size_t why_len) {
  char path[4096];
  FILE *f;
  unsigned char lenb[8];
  uint64_t hlen = 0;
  char *hdr = NULL;
  json_t *root = NULL, *v;
  json_error_t jerr;
  const char *key;
  long long emb = 0;
  int has_lm_head = 0, i, rc = -1;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  *total = 0;
  *embed = 0;
  if ((f = fopen(path, "rb")) == NULL) {
    snprintf(why, why_len, "%.300s: %s", path, strerror(errno));
    return -1;
  }
  if (fread(lenb, 1, 8, f) != 8) {
    snprintf(why, why_len, "%.300s: truncated header", path);
    goto out;
  }
  for (i = 7; i >= 0; i--) hlen = hlen << 8 | lenb[i];
  if (hlen == 0 || hlen > (64u << 20)) {
    snprintf(why, why_len, "%.300s: header length %llu is implausible", path, (unsigned long long)hlen);
    goto out;
  }
  if ((hdr = malloc((size_t)hlen)) == NULL || fread(hdr, 1, (size_t)hlen, f) != hlen) {
    snprintf(why, why_len, "%.300s: cannot read the %llu-byte header", path, (unsigned long long)hlen);
    goto out;
  }
  if ((root = json_loadb(hdr, (size_t)hlen, 0, &jerr)) == NULL || !json_is_object(root)) {
    snprintf(why, why_len, "%.300s: header is not a JSON object (%s)", path, jerr.text);
    goto out;
  }
  json_object_foreach(root, key, v) {
    json_t *offs = json_object_get(v, "data_offsets");
    long long bytes;
    if (!strcmp(key, "__metadata__")) continue;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1))) {
      snprintf(why, why_len, "%.300s: tensor '%s' has no data_offsets [begin, end]", path, key);
      goto out;
    }
    bytes = (long long)(json_integer_value(json_array_get(offs, 1)) -
                        json_integer_value(json_array_get(offs, 0)));
    *total += bytes;
    if (strstr(key, "embed_tokens.weight")) emb = bytes;
    if (strstr(key, "lm_head.weight")) has_lm_head = 1;
  }
  *embed = has_lm_head ? emb : 0;
  rc = 0;
out:
  json_decref(root);
  free(hdr);
  fclose(f);
  return rc;
}

/* ---- one level ----------------------------------------------------------- */

/* Sums /proc/self/task/<tid>/schedstat over this process's threads: field 1
 * is time on a CPU, field 2 time waiting on a run queue (nanoseconds).
 * Returns -1 where schedstat is unavailable. */
static int sched_times(double *cpu_s, double *wait_s) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *de;
  unsigned long long run = 0, wait = 0;
  if (d == NULL) return -1;
  while ((de = readdir(d)) != NULL) {
    char path[300];
    unsigned long long a, b;
    FILE *f;
    if (de->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/proc/self/task/%.64s/schedstat", de->d_name);
    if ((f = fopen(path, "r")) == NULL) continue; /* thread just exited */
    if (fscanf(f, "%llu %llu", &a, &b) == 2) {
      run += a;
      wait += b;
    }
    fclose(f);
  }
  closedir(d);
  *cpu_s = (double)run * 1e-9;
  *wait_s = (double)wait * 1e-9;
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int run_level(coh_model *m, const options *o, int conc, int decode_len,
                     sink *sinks, result *res) {
  const coh_model_info *info = coh_model_get_info(m);
  coh_engine *e = NULL;
  coh_err err;
  int32_t *prompt = NULL;
  double *step_s = NULL; /* wall time of every decode step */
  double cpu0 = 0, wait0 = 0, cpu1 = 0, wait1 = 0;
  int r, rc = 1;
  coh_engine_stats prev, cur;

  memset(res, 0, sizeof *res);
  res->conc = conc;
  res->decode_len = decode_len;
  res->batch_invariant = -1;
  prompt = malloc((size_t)o->prompt_len * sizeof *prompt);
  step_s = malloc(((size_t)decode_len + 1) * sizeof *step_s);
  if (prompt == NULL || step_s == NULL) {
    fprintf(stderr, "bench_infer: out of memory\n");
    goto out;
  }
  if (coh_engine_new(m, conc, &e, &err)) {
    fprintf(stderr, "bench_infer: engine: %s\n", err.msg);
    goto out;
  }
  for (r = 0; r < conc; r++) {
    coh_request rq;
    uint64_t id;
    sinks[r].n = 0;
    sinks[r].finish = COH_FINISH_NONE;
    make_prompt(prompt, o->prompt_len, r, info);
    coh_request_default(&rq);
    rq.prompt = prompt;
    rq.n_prompt = (size_t)o->prompt_len;
    rq.max_tokens = decode_len;
    rq.ignore_eos = 1; /* sampling defaults to greedy (temperature 0) */
    rq.sampling.temperature = 0;
    rq.on_token = on_token;
    rq.user = &sinks[r];
    if (coh_engine_submit(e, &rq, &id, &err)) {
      fprintf(stderr, "bench_infer: submit: %s\n", err.msg);
      goto out;
    }
  }
  coh_engine_get_stats(e, &prev);
  while (coh_engine_busy(e)) {
    double t0, dt;
    uint64_t dp, dd;
    /* read outside the timed region; -1 (no schedstat) leaves zeros */
    if (sched_times(&cpu0, &wait0)) cpu0 = wait0 = 0;
    t0 = now_s();
    if (coh_engine_step(e, &err)) {
      fprintf(stderr, "bench_infer: step: %s\n", err.msg);
      goto out;
    }
    dt = now_s() - t0;
    if (sched_times(&cpu1, &wait1)) cpu1 = wait1 = 0;
    coh_engine_get_stats(e, &cur);
    dp = cur.prefill_tokens - prev.prefill_tokens;
    dd = cur.decode_tokens - prev.decode_tokens;
    if (dp > 0 && dd == 0) {
      res->prefill_s += dt;
      res->prefill_tokens += dp;
      res->prefill_steps++;
    } else if (dd > 0 && dp == 0) {
      res->decode_cpu_s += cpu1 - cpu0;
      res->decode_runq_wait_s += wait1 - wait0;
      if (res->decode_steps < decode_len + 1) step_s[res->decode_steps] = dt;
      res->decode_s += dt;
      res->decode_tokens += dd;
      res->decode_steps++;
      res->decode_step_s += cur.step_seconds - prev.step_seconds;
      res->decode_ort_s += cur.ort_seconds - prev.ort_seconds;
      res->decode_rebuilds += cur.batch_rebuilds - prev.batch_rebuilds;
      {
        double outside = (cur.step_seconds - prev.step_seconds) - (cur.ort_seconds - prev.ort_seconds);
        if (res->decode_steps == 1) res->outside_first_s = outside;
        else if (outside > res->outside_max_rest_s) res->outside_max_rest_s = outside;
      }
    } else if (dp > 0 && dd > 0) {
      res->mixed_steps++;
    }
    prev = cur;
  }
  for (r = 0; r < conc; r++)
    if (sinks[r].finish != COH_FINISH_LENGTH || sinks[r].n != decode_len) {
      fprintf(stderr, "bench_infer: request %d ended with %s after %d tokens (expected %d)\n",
              r, coh_finish_name(sinks[r].finish), sinks[r].n, decode_len);
      goto out;
    }
  if (res->decode_steps > 0) {
    int n = res->decode_steps < decode_len + 1 ? res->decode_steps : decode_len + 1;
    qsort(step_s, (size_t)n, sizeof *step_s, cmp_double);
    res->decode_p50_step_s = n % 2 ? step_s[n / 2] : (step_s[n / 2 - 1] + step_s[n / 2]) / 2;
    res->decode_min_step_s = step_s[0];
  }
  rc = 0;
out:
  coh_engine_free(e);
  free(step_s);
  free(prompt);
  return rc;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

static int dump_tokens(const char *path, const coh_model_info *info, int prompt_len,
                       const sink *s) {
  FILE *f = fopen(path, "w");
  int32_t *prompt = malloc((size_t)prompt_len * sizeof *prompt);
  int i;
  if (f == NULL || prompt == NULL) {
    fprintf(stderr, "bench_infer: cannot write %s: %s\n", path, strerror(errno));
    if (f) fclose(f);
    free(prompt);
    return 1;
  }
  make_prompt(prompt, prompt_len, 0, info);
  fprintf(f, "{\"prompt\":[");
  for (i = 0; i < prompt_len; i++) fprintf(f, "%s%d", i ? "," : "", prompt[i]);
  fprintf(f, "],\"tokens\":[");
  for (i = 0; i < s->n; i++) fprintf(f, "%s%d", i ? "," : "", s->tok[i]);
  fprintf(f, "]}\n");
  free(prompt);
  return fclose(f) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  options o;
  coh_model_options mo;
  coh_model *m = NULL;
  const coh_model_info *info;
  coh_err err;
  sink *sinks = NULL, ref;
  result res[MAX_LEVELS];
  int max_conc = 1, max_dec = 1, i, r, rc = 1;
  long long wbytes = 0, embed = 0, wread;
  char why[512] = "";
  const char *wsource = "model.safetensors";
  const char *name;
  double t_load;

  memset(&ref, 0, sizeof ref);
  if (parse_args(argc, argv, &o)) {
    usage();
    return 2;
  }
  name = strrchr(o.model_dir, '/');
  name = name && name[1] ? name + 1 : o.model_dir;

  if (safetensors_bytes(o.model_dir, &wbytes, &embed, why, sizeof why)) {
    long long a = file_size(o.model_dir, "model.onnx"), b = file_size(o.model_dir, "model.onnx.data");
    fprintf(stderr, "bench_infer: note: %s; using the ONNX file sizes\n", why);
    wbytes = (a > 0 ? a : 0) + (b > 0 ? b : 0);
    embed = 0;
    wsource = "model.onnx(+.data) file size";
  }
  wread = wbytes - embed;

  coh_model_options_default(&mo);
  mo.device = o.device;
  mo.intra_op_threads = o.threads;
  mo.profile_prefix = o.profile;
  t_load = now_s();
  if (coh_model_open(o.model_dir, &mo, &m, &err)) {
    fprintf(stderr, "bench_infer: %s\n", err.msg);
    return 1;
  }
  t_load = now_s() - t_load;
  info = coh_model_get_info(m);
  if (o.prompt_len + o.decode_len >= info->context) {
    fprintf(stderr, "bench_infer: prompt %d + decode %d exceed the context %lld\n",
            o.prompt_len, o.decode_len, (long long)info->context);
    goto out;
  }
  for (i = 0; i < o.n_levels; i++) {
    if (o.levels[i].conc > max_conc) max_conc = o.levels[i].conc;
    if (o.levels[i].decode_len > max_dec) max_dec = o.levels[i].decode_len;
  }
  if (max_dec < o.warmup) max_dec = o.warmup;
  sinks = calloc((size_t)max_conc, sizeof *sinks);
  ref.tok = malloc((size_t)max_dec * sizeof *ref.tok);
  if (sinks == NULL || ref.tok == NULL) goto oom;
  for (r = 0; r < max_conc; r++) {
    sinks[r].cap = max_dec;
    if ((sinks[r].tok = malloc((size_t)max_dec * sizeof *sinks[r].tok)) == NULL) goto oom;
  }

  printf("model %s (%s, %s, %s), %d layers, hidden %d, vocab %lld; provider %s, %d intra-op threads; "
         "load %.2f s\n",
         name, info->layout, info->dtype, info->attention, info->n_layers, info->hidden,
         (long long)info->vocab, info->provider, info->intra_op_threads, t_load);
  printf("weights: %.1f MB (%s); read per decoded token: %.1f MB%s\n", (double)wbytes / 1e6,
         wsource, (double)wread / 1e6,
         embed ? " (the embedding table is gathered, not streamed)" : "");
  fflush(stdout);

  /* Warm-up: ONNX Runtime plans and allocates on its first runs. */
  if (o.warmup > 0) {
    result w;
    if (run_level(m, &o, 1, o.warmup, sinks, &w)) goto out;
  }

  printf("\n%6s %7s %7s %5s %14s %14s %10s %13s %12s %9s %10s\n", "conc", "prompt", "decode",
         "runs", "prefill tok/s", "decode tok/s", "(p50)", "ms/dec step", "outside Run", "batch-inv",
         "runq wait");
  for (i = 0; i < o.n_levels; i++) {
    result *x = &res[i], t;
    int c = o.levels[i].conc, k;
    double best_d = -1, best_p = -1, best_p50 = 0, best_min = 0;
    for (k = 0; k < o.levels[i].repeats; k++) {
      double d, p;
      if (run_level(m, &o, c, o.levels[i].decode_len, sinks, &t)) goto out;
      d = ratio((double)t.decode_tokens, t.decode_s);
      p = ratio((double)t.prefill_tokens, t.prefill_s);
      if (k == 0) *x = t;
      else x->mixed_steps += t.mixed_steps;
      x->all_decode[k] = d;
      x->all_prefill[k] = p;
      if (d > best_d) { /* the decode figures of the best decode run */
        best_d = d;
        x->decode_s = t.decode_s;
        x->decode_tokens = t.decode_tokens;
        x->decode_steps = t.decode_steps;
        x->decode_step_s = t.decode_step_s;
        x->decode_ort_s = t.decode_ort_s;
        x->decode_rebuilds = t.decode_rebuilds;
        x->decode_cpu_s = t.decode_cpu_s;
        x->decode_runq_wait_s = t.decode_runq_wait_s;
        x->outside_first_s = t.outside_first_s;
        x->outside_max_rest_s = t.outside_max_rest_s;
      }
      if (t.decode_p50_step_s > 0 && (best_p50 == 0 || t.decode_p50_step_s < best_p50))
        best_p50 = t.decode_p50_step_s;
      if (t.decode_min_step_s > 0 && (best_min == 0 || t.decode_min_step_s < best_min))
        best_min = t.decode_min_step_s;
      if (p > best_p) {
        best_p = p;
        x->prefill_s = t.prefill_s;
        x->prefill_tokens = t.prefill_tokens;
        x->prefill_steps = t.prefill_steps;
      }
    }
    x->runs = o.levels[i].repeats;
    x->decode_p50_step_s = best_p50;
    x->decode_min_step_s = best_min;
    if (i == 0) {
      ref.n = sinks[0].n;
      memcpy(ref.tok, sinks[0].tok, (size_t)sinks[0].n * sizeof *ref.tok);
      if (o.dump_tokens && dump_tokens(o.dump_tokens, info, o.prompt_len, &ref)) goto out;
    } else {
      int n = sinks[0].n < ref.n ? sinks[0].n : ref.n;
      x->batch_invariant = !memcmp(sinks[0].tok, ref.tok, (size_t)n * sizeof *ref.tok);
    }
    printf("%6d %7d %7d %5d %14.1f %14.1f %10.1f %13.2f %11.2f%% %9s %9.0f%%\n", c, o.prompt_len,
           x->decode_len, x->runs,
           ratio((double)x->prefill_tokens, x->prefill_s),
           ratio((double)x->decode_tokens, x->decode_s), ratio((double)c, x->decode_p50_step_s),
           1e3 * ratio(x->decode_s, x->decode_steps),
           100 * ratio(x->decode_step_s - x->decode_ort_s, x->decode_step_s),
           x->batch_invariant < 0 ? "ref" : x->batch_invariant ? "yes" : "NO",
           100 * ratio(x->decode_runq_wait_s, x->decode_s));
    fflush(stdout);
  }

  printf("\n");
  for (i = 0; i < o.n_levels; i++) {
    result *x = &res[i];
    int k;
    printf("{\"bench\":\"infer\",\"runs\":%d,\"decode_tok_s_runs\":[", x->runs);
    for (k = 0; k < x->runs; k++) printf("%s%.3f", k ? "," : "", x->all_decode[k]);
    printf("],\"prefill_tok_s_runs\":[");
    for (k = 0; k < x->runs; k++) printf("%s%.3f", k ? "," : "", x->all_prefill[k]);
    printf("],\"model\":\"%s\",\"attention\":\"%s\",\"provider\":\"%s\","
           "\"threads\":%d,\"concurrency\":%d,\"prompt_len\":%d,\"decode_len\":%d,"
           "\"prefill_tokens\":%llu,\"prefill_s\":%.6f,\"prefill_tok_s\":%.3f,"
           "\"decode_tokens\":%llu,\"decode_steps\":%d,\"decode_s\":%.6f,\"decode_tok_s\":%.3f,"
           "\"decode_step_ms\":%.4f,\"decode_p50_step_ms\":%.4f,\"decode_tok_s_p50\":%.3f,"
           "\"decode_min_step_ms\":%.4f,\"decode_tok_s_best_step\":%.3f,"
           "\"decode_ort_s\":%.6f,\"decode_engine_step_s\":%.6f,"
           "\"outside_run_frac\":%.5f,\"decode_cpu_s\":%.4f,\"decode_runq_wait_s\":%.4f,"
           "\"outside_first_step_ms\":%.4f,"
           "\"outside_max_later_step_ms\":%.4f,\"decode_rebuilds\":%llu,"
           "\"mixed_steps\":%d,\"batch_invariant\":%s}\n",
           name, info->attention, info->provider, info->intra_op_threads, x->conc, o.prompt_len,
           x->decode_len, (unsigned long long)x->prefill_tokens, x->prefill_s,
           ratio((double)x->prefill_tokens, x->prefill_s), (unsigned long long)x->decode_tokens,
           x->decode_steps, x->decode_s, ratio((double)x->decode_tokens, x->decode_s),
           1e3 * ratio(x->decode_s, x->decode_steps), 1e3 * x->decode_p50_step_s,
           ratio((double)x->conc, x->decode_p50_step_s), 1e3 * x->decode_min_step_s,
           ratio((double)x->conc, x->decode_min_step_s), x->decode_ort_s, x->decode_step_s,
           ratio(x->decode_step_s - x->decode_ort_s, x->decode_step_s), x->decode_cpu_s,
           x->decode_runq_wait_s, 1e3 * x->outside_first_s, 1e3 * x->outside_max_rest_s,
           (unsigned long long)x->decode_rebuilds, x->mixed_steps,
           x->batch_invariant < 0 ? "null" : x->batch_invariant ? "true" : "false");
  }
  {
    /* Summary: scaling and roofline, with the first level as batch 1. */
    double d1 = 0, d16 = 0, out1 = -1, roof_all = 0, roof_read = 0;
    for (i = 0; i < o.n_levels; i++) {
      double d = ratio((double)res[i].decode_tokens, res[i].decode_s);
      if (res[i].conc == 1) {
        d1 = d;
        out1 = ratio(res[i].decode_step_s - res[i].decode_ort_s, res[i].decode_step_s);
      }
      if (res[i].conc == 16) d16 = d;
    }
    if (o.bandwidth_gbs > 0) {
      roof_all = o.bandwidth_gbs * 1e9 / (double)wbytes;
      roof_read = o.bandwidth_gbs * 1e9 / (double)wread;
    }
    printf("{\"bench\":\"infer_summary\",\"model\":\"%s\",\"attention\":\"%s\","
           "\"weight_bytes\":%lld,\"weight_bytes_read_per_token\":%lld,"
           "\"bandwidth_gbs\":%.3f,\"roofline_tok_s_all_weights\":%.3f,"
           "\"roofline_tok_s_read_per_token\":%.3f,\"decode1_tok_s\":%.3f,\"decode16_tok_s\":%.3f,"
           "\"decode16_over_decode1\":%.4f,\"outside_run_frac_b1\":%.5f,"
           "\"roofline_frac_all_weights\":%.4f,\"roofline_frac_read_per_token\":%.4f}\n",
           name, info->attention, wbytes, wread, o.bandwidth_gbs, roof_all, roof_read, d1, d16,
           ratio(d16, d1), out1, ratio(d1, roof_all), ratio(d1, roof_read));
    printf("\ndecode@16 / decode@1: %.2fx;  outside Run at batch 1: %.2f%%\n", ratio(d16, d1),
           100 * out1);
    if (o.bandwidth_gbs > 0)
      printf("roofline at %.1f GB/s: %.1f tok/s (all weights) / %.1f tok/s (bytes read per "
             "token); decode@1 reaches %.1f%% / %.1f%%\n",
             o.bandwidth_gbs, roof_all, roof_read, 100 * ratio(d1, roof_all),
             100 * ratio(d1, roof_read));
  }
  rc = 0;
  goto out;
oom:
  fprintf(stderr, "bench_infer: out of memory\n");
out:
  if (sinks)
    for (r = 0; r < max_conc; r++) free(sinks[r].tok);
  free(sinks);
  free(ref.tok);
  coh_model_close(m);
  return rc;
}
