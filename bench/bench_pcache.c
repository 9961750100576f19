/*
 * bench_pcache.c — time to first token with the prefix cache against
 * without it, on the workload of issue #15: N agents whose prompts share a
 * P-token preamble, each adding its own T-token turn.
 *
 *   bench_pcache MODEL_DIR [--agents 32] [--preamble 512] [--turn 32]
 *                [--decode 8] [--chunk 512] [--rounds 3] [--threads N]
 *
 * One round = one run with the cache off, then one with it on (default
 * budget), each on a fresh engine (max_batch N) over the same model
 * session; rounds alternate the order (ABBA) so that drift on a shared
 * machine hits both alike.  All N requests are submitted at once, greedy,
 * max_tokens D.  A request's time to first token: wall time from the
 * submission until its first token event; per run the mean and the largest
 * over the N requests.  The digest of a run is FNV-1a over every token
 * event (request, step, token, finish) and the bytes of the logits each
 * token was sampled from: equal digests mean the same tokens, the same
 * logit bits, at the same engine steps.
 * Output: a line per run, then one JSON line with the medians and the ratio.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/infer.h"

#define MAX_AGENTS 1024
#define MAX_ROUNDS 64

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct run {
  double t0, first[MAX_AGENTS];
  uint64_t step, digest;
  int64_t vocab;
  uint64_t base_id;
} run;

static void fnv(uint64_t *h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) *h = (*h ^ b[i]) * 1099511628211ull;
}

static void on_token(void *user, const coh_token_event *ev) {
  run *r = user;
  uint64_t k = ev->request_id - r->base_id;
  int32_t f = (int32_t)ev->finish;
  if (ev->token >= 0 && k < MAX_AGENTS && r->first[k] == 0.0) r->first[k] = wall_seconds() - r->t0;
  fnv(&r->digest, &k, sizeof k);
  fnv(&r->digest, &r->step, sizeof r->step);
  fnv(&r->digest, &ev->token, sizeof ev->token);
  fnv(&r->digest, &f, sizeof f);
  if (ev->logits) fnv(&r->digest, ev->logits, (size_t)r->vocab * sizeof(float));
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One run; returns 0 and fills mean/max TTFT, or -1. */
static int one(coh_model *m, int cache, int agents, int preamble, int turn, int decode,
               run *r, double *mean, double *max, coh_engine_stats *st) {
  coh_engine *e = NULL;
  coh_err err;
  int32_t *p = malloc((size_t)(preamble + turn) * sizeof *p);
  int a, i, rc = 0;
  uint64_t id;
  if (p == NULL) return -1;
  memset(r, 0, sizeof *r);
  r->digest = 1469598103934665603ull;
  r->vocab = coh_model_get_info(m)->vocab;
  if (coh_engine_new(m, agents, &e, &err) ||
      (!cache && coh_engine_set_prefix_cache(e, 0, &err))) {
    fprintf(stderr, "bench_pcache: %s\n", err.msg);
    free(p);
    coh_engine_free(e);
    return -1;
  }
  /* the shared preamble: fixed pseudo-random ids; each turn its own */
  for (i = 0; i < preamble; i++) p[i] = 100 + (int32_t)((i * 7919u) % 20000u);
  r->t0 = wall_seconds();
  for (a = 0; a < agents && rc == 0; a++) {
    coh_request q;
    for (i = 0; i < turn; i++) p[preamble + i] = 100 + (int32_t)((a * 104729u + i * 31u) % 20000u);
    coh_request_default(&q);
    q.prompt = p;
    q.n_prompt = (size_t)(preamble + turn);
    q.max_tokens = decode;
    q.ignore_eos = 1;
    q.on_token = on_token;
    q.user = r;
    rc = coh_engine_submit(e, &q, &id, &err);
    if (a == 0) r->base_id = id;
  }
  while (rc == 0 && coh_engine_busy(e)) {
    r->step++;
    rc = coh_engine_step(e, &err);
  }
  if (rc) fprintf(stderr, "bench_pcache: %s\n", err.msg);
  coh_engine_get_stats(e, st);
  coh_engine_free(e);
  free(p);
  *mean = 0;
  *max = 0;
  for (a = 0; a < agents; a++) {
    *mean += r->first[a] / agents;
    if (r->first[a] > *max) *max = r->first[a];
  }
  return rc ? -1 : 0;
}

int main(int argc, char **argv) {
  int agents = 32, preamble = 512, turn = 32, decode = 8, chunk = 512, rounds = 3, threads = 0;
  coh_model_options mo;
  coh_model *m = NULL;
  coh_err err;
  static run r;
  double mean[2][MAX_ROUNDS], mx[2][MAX_ROUNDS];
  uint64_t dig[2][MAX_ROUNDS];
  coh_engine_stats st[2];
  int k, c, ok = 1;
  if (argc < 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: bench_pcache MODEL_DIR [--agents 32] [--preamble 512] [--turn 32] "
                    "[--decode 8] [--chunk 512] [--rounds 3] [--threads N]\n");
    return 2;
  }
  for (k = 2; k + 1 < argc; k += 2) {
    int v = atoi(argv[k + 1]);
    if (!strcmp(argv[k], "--agents")) agents = v;
    else if (!strcmp(argv[k], "--preamble")) preamble = v;
    else if (!strcmp(argv[k], "--turn")) turn = v;
    else if (!strcmp(argv[k], "--decode")) decode = v;
    else if (!strcmp(argv[k], "--chunk")) chunk = v;
    else if (!strcmp(argv[k], "--rounds")) rounds = v;
    else if (!strcmp(argv[k], "--threads")) threads = v;
    else {
      fprintf(stderr, "bench_pcache: unknown option %s\n", argv[k]);
      return 2;
    }
  }
  if (k != argc || agents < 1 || agents > MAX_AGENTS || preamble < 1 || turn < 1 || decode < 1 ||
      chunk < 1 || rounds < 1 || rounds > MAX_ROUNDS || threads < 0) {
    fprintf(stderr, "bench_pcache: bad arguments (agents 1..%d, rounds 1..%d, others >= 1)\n",
            MAX_AGENTS, MAX_ROUNDS);
    return 2;
  }
  coh_model_options_default(&mo);
  mo.device = COH_DEVICE_CPU;
  mo.intra_op_threads = threads;
  mo.prefill_chunk = chunk;
  if (coh_model_open(argv[1], &mo, &m, &err)) {
    fprintf(stderr, "bench_pcache: %s\n", err.msg);
    return 1;
  }
  for (k = 0; k < rounds; k++)
    for (c = 0; c < 2; c++) {
      int cache = (k % 2) ? 1 - c : c; /* ABBA */
      if (one(m, cache, agents, preamble, turn, decode, &r, &mean[cache][k], &mx[cache][k],
              &st[cache])) {
        coh_model_close(m);
        return 1;
      }
      dig[cache][k] = r.digest;
      printf("round %d cache %-3s ttft mean %.3f s max %.3f s  digest %016llx  hits %llu of %llu\n",
             k + 1, cache ? "on" : "off", mean[cache][k], mx[cache][k],
             (unsigned long long)r.digest, (unsigned long long)st[cache].prefix_hits,
             (unsigned long long)st[cache].prefix_lookups);
      fflush(stdout);
    }
  for (k = 0; k < rounds; k++) ok &= dig[0][k] == dig[0][0] && dig[1][k] == dig[0][0];
  {
    const coh_model_info *info = coh_model_get_info(m);
    double moff = median(mean[0], rounds), mon = median(mean[1], rounds);
    double xoff = median(mx[0], rounds), xon = median(mx[1], rounds);
    printf("{\"bench\":\"pcache\",\"model\":\"%s\",\"threads\":%d,\"agents\":%d,\"preamble\":%d,"
           "\"turn\":%d,\"decode\":%d,\"chunk\":%d,\"rounds\":%d,"
           "\"ttft_mean_off_s\":%.4f,\"ttft_mean_on_s\":%.4f,\"ttft_max_off_s\":%.4f,"
           "\"ttft_max_on_s\":%.4f,\"speedup_mean\":%.2f,\"speedup_max\":%.2f,"
           "\"hits\":%llu,\"lookups\":%llu,\"digest_off\":\"%016llx\",\"digest_on\":\"%016llx\","
           "\"same_digest\":%s}\n",
           info->dir, info->intra_op_threads, agents, preamble, turn, decode, chunk, rounds, moff,
           mon, xoff, xon, mon > 0 ? moff / mon : 0, xon > 0 ? xoff / xon : 0,
           (unsigned long long)st[1].prefix_hits, (unsigned long long)st[1].prefix_lookups,
           (unsigned long long)dig[0][0], (unsigned long long)dig[1][0], ok ? "true" : "false");
  }
  coh_model_close(m);
  return ok ? 0 : 3;
}
