/*
 * bench_stream.c — a STREAM-style memory bandwidth probe (copy and triad),
 * the denominator of bench_infer's roofline: decoding one token at batch 1
 * streams every weight from memory once, so tokens/s can be at most
 * bandwidth / weight bytes.
 *
 *   bench_stream [-t THREADS] [-m MIB_PER_ARRAY] [-n REPEATS]
 *
 * Three arrays of doubles, each far larger than the last-level cache
 * (default 256 MiB each), split into contiguous slices, one per thread
 * (default: all online cores).  Every thread first-touches its own slice so
 * that pages land where they are used.  One repeat runs the kernel once over
 * every slice, all threads in parallel between two barriers; the best of N
 * repeats is reported, as STREAM does.  Bytes counted as STREAM counts them:
 * copy c = a moves 2 words per element, triad a = b + s*c moves 3 (the
 * write-allocate read of the destination is not counted).  A third kernel,
 * read (a sum over a), moves 1 word: weight streaming is read-only, so it is
 * printed too, but the roofline uses copy, as the benchmark brief asks.
 *
 * Output: a readable table, then one JSON line per kernel:
 *   {"bench":"stream","kernel":"copy","threads":2,"array_mib":256,"best_gbs":..,"avg_gbs":..}
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { K_INIT, K_COPY, K_TRIAD, K_READ, K_EXIT };

typedef struct shared {
  double *a, *b, *c;
  size_t n;
  int threads;
  int kernel;
  double sums[64]; /* per-thread results of the read kernel (first 64) */
  pthread_barrier_t start, done;
} shared;

typedef struct worker {
  shared *sh;
  int idx;
  pthread_t tid;
} worker;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run_kernel(shared *sh, int idx) {
  size_t per = (sh->n + (size_t)sh->threads - 1) / (size_t)sh->threads;
  size_t lo = (size_t)idx * per, hi = lo + per, i;
  double *a = sh->a, *b = sh->b, *c = sh->c;
  const double s = 3.0;
  if (hi > sh->n) hi = sh->n;
  if (lo >= hi) return;
  switch (sh->kernel) {
  case K_INIT:
    for (i = lo; i < hi; i++) {
      a[i] = 1.0;
      b[i] = 2.0;
      c[i] = 0.0;
    }
    break;
  case K_COPY:
    for (i = lo; i < hi; i++) c[i] = a[i];
    break;
  case K_TRIAD:
    for (i = lo; i < hi; i++) a[i] = b[i] + s * c[i];
    break;
  case K_READ: {
    /* Four independent sums so the loads, not the adds, set the pace. */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (i = lo; i + 4 <= hi; i += 4) {
      s0 += a[i];
      s1 += a[i + 1];
      s2 += a[i + 2];
      s3 += a[i + 3];
    }
    for (; i < hi; i++) s0 += a[i];
    sh->sums[idx & 63] += s0 + s1 + s2 + s3;
    break;
  }
  default:
    break;
  }
}

static void *worker_main(void *arg) {
  worker *w = arg;
  for (;;) {
    int k;
    pthread_barrier_wait(&w->sh->start);
    k = w->sh->kernel;
    if (k == K_EXIT) break;
    run_kernel(w->sh, w->idx);
    pthread_barrier_wait(&w->sh->done);
  }
  return NULL;
}

/* Runs `kernel` once on all threads; the calling thread is worker 0.
 * Returns the wall time between the start and end barriers. */
static double parallel(shared *sh, int kernel) {
  double t0, t1;
  sh->kernel = kernel;
  pthread_barrier_wait(&sh->start);
  t0 = now_s();
  run_kernel(sh, 0);
  pthread_barrier_wait(&sh->done);
  t1 = now_s();
  return t1 - t0;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: bench_stream [-t THREADS] [-m MIB_PER_ARRAY] [-n REPEATS]\n");
}

int main(int argc, char **argv) {
  shared sh;
  worker *ws = NULL;
  int threads = 0, mib = 256, reps = 10, i, r, k, rc = 1;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  static const char *const names[] = {"copy", "triad", "read"};
  static const int kernels[] = {K_COPY, K_TRIAD, K_READ};
  static const double words[] = {2.0, 3.0, 1.0};
  double best[3] = {1e30, 1e30, 1e30}, sum[3] = {0, 0, 0}, check = 0;

  for (i = 1; i < argc; i += 2) { /* option, value */
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int *dst = NULL, lo = 1, hi = 1;
    if (!strcmp(argv[i], "-t")) dst = &threads, hi = 4096;
    else if (!strcmp(argv[i], "-m")) dst = &mib, hi = 1 << 16;
    else if (!strcmp(argv[i], "-n")) dst = &reps, hi = 10000;
    else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage();
      return 0;
    }
    if (dst == NULL || v == NULL || parse_int(v, lo, hi, dst)) {
      fprintf(stderr, "bench_stream: bad argument '%s'%s%s\n", argv[i], v ? " " : "", v ? v : "");
      usage();
      return 2;
    }
  }
  if (threads == 0) threads = online > 0 ? (int)online : 1;

  memset(&sh, 0, sizeof sh);
  sh.n = (size_t)mib * 1024 * 1024 / sizeof(double);
  sh.threads = threads;
  /* 2 MiB alignment lets the kernel back the arrays with huge pages. */
  if (posix_memalign((void **)&sh.a, 1 << 21, sh.n * sizeof(double)) ||
      posix_memalign((void **)&sh.b, 1 << 21, sh.n * sizeof(double)) ||
      posix_memalign((void **)&sh.c, 1 << 21, sh.n * sizeof(double))) {
    fprintf(stderr, "bench_stream: cannot allocate 3 x %d MiB\n", mib);
    goto out;
  }
  ws = calloc((size_t)threads, sizeof *ws);
  if (ws == NULL) {
    fprintf(stderr, "bench_stream: out of memory\n");
    goto out;
  }
  pthread_barrier_init(&sh.start, NULL, (unsigned)threads);
  pthread_barrier_init(&sh.done, NULL, (unsigned)threads);
  for (i = 1; i < threads; i++) {
    ws[i].sh = &sh;
    ws[i].idx = i;
    if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
      /* Workers already started wait on a barrier sized for all of
       * them; exiting the process is the only clean way out. */
      fprintf(stderr, "bench_stream: cannot start thread %d\n", i);
      exit(1);
    }
  }
  parallel(&sh, K_INIT);
  parallel(&sh, K_COPY); /* warm-up, not counted */
  for (r = 0; r < reps; r++)
    for (k = 0; k < 3; k++) {
      double t = parallel(&sh, kernels[k]);
      if (t < best[k]) best[k] = t;
      sum[k] += t;
    }
  /* a[0] after the triads depends on every kernel having run; printing it
   * keeps the compiler from discarding the work. */
  for (i = 0; i < 64; i++) check += sh.sums[i];
  printf("STREAM-style bandwidth: %d threads, 3 arrays x %d MiB, best of %d (check %.3g)\n",
         threads, mib, reps, sh.a[0] + sh.c[sh.n - 1] + check);
  printf("  %-6s %12s %12s\n", "kernel", "best GB/s", "avg GB/s");
  for (k = 0; k < 3; k++) {
    double bytes = words[k] * sizeof(double) * (double)sh.n;
    printf("  %-6s %12.2f %12.2f\n", names[k], bytes / best[k] / 1e9,
           bytes / (sum[k] / reps) / 1e9);
  }
  for (k = 0; k < 3; k++) {
    double bytes = words[k] * sizeof(double) * (double)sh.n;
    printf("{\"bench\":\"stream\",\"kernel\":\"%s\",\"threads\":%d,\"array_mib\":%d,"
           "\"reps\":%d,\"best_gbs\":%.3f,\"avg_gbs\":%.3f}\n",
           names[k], threads, mib, reps, bytes / best[k] / 1e9, bytes / (sum[k] / reps) / 1e9);
  }
  rc = 0;
  sh.kernel = K_EXIT;
  pthread_barrier_wait(&sh.start);
  for (i = 1; i < threads; i++) pthread_join(ws[i].tid, NULL);
  pthread_barrier_destroy(&sh.start);
  pthread_barrier_destroy(&sh.done);
out:
  free(ws);
  free(sh.a);
  free(sh.b);
  free(sh.c);
  return rc;
}
