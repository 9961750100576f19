/*
 * agent_bench.c — agent runtime benchmark (not a test; results go into
 * bench/RESULTS.md):
 *   - module load: first (compile) vs cached;
 *   - compute kernel: native C vs the same C as wasm through cohort, with
 *     fuel instrumentation and without;
 *   - host-call round trip (agent -> host -> agent);
 *   - an SDK agent's event step (payload in, send back): the SDK's payload
 *     arena vs malloc/free (sdk_step.wasm vs sdk_step_malloc.wasm);
 *   - instantiate-from-cache time per agent and memory per idle agent.
 * usage: agent_bench AGENTS_DIR [CACHE_DIR]
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cohort/abi.h"
#include "cohort/agent.h"
#include "../agents/testmods/kernel.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, res = 0;
  if (f == NULL) return 0;
  if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
  fclose(f);
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static coh_module *load(coh_agent_rt *rt, const char *path, double *secs) {
  coh_module *m = NULL;
  coh_err err;
  double t0 = now_s();
  if (coh_module_load_file(rt, path, &m, &err) != COH_OK) {
    fprintf(stderr, "%s\n", err.msg);
    exit(1);
  }
  *secs = now_s() - t0;
  return m;
}

#define KERNEL_RUNS 9

static coh_agent *kernel_agent(coh_module *m) {
  coh_agent *a;
  coh_err err;
  coh_agent_opts o;
  coh_agent_opts_default(&o);
  o.fuel = 0; /* unlimited budget: the counting still runs when built in */
  if (coh_agent_new(m, &o, NULL, NULL, &a, &err) != COH_OK) exit(1);
  return a;
}

/* One kernel run in agent a; keeps the fastest time in *best. */
static void run_kernel(coh_agent *a, uint32_t reps, uint32_t *h,
                       double *best) {
  coh_agent_result r;
  double t0 = now_s(), t;
  if (coh_agent_step(a, 1, &reps, 4, &r) != COH_OK) exit(1);
  t = now_s() - t0;
  if (t < *best) *best = t;
  *h = (uint32_t)r.rc;
}

int main(int argc, char **argv) {
  char path[1024], cache[512], cache_nf[600];
  int own_cache = 0; /* a temporary cache this run made, removed at the end */
  coh_agent_rt_opts ro;
  coh_agent_rt *rt, *rt_nf;
  coh_module *m, *m_nf, *echo;
  coh_err err;
  double t_first, t_cached, t_native = 1e9, t_fuel = 1e9, t_nofuel = 1e9, t0;
  uint32_t reps = 200, h_native = 0, h_fuel, h_nofuel, n = 1000000;
  coh_agent *a, **many;
  coh_agent_result r;
  int i, nagents = 1000;
  long rss0, rss1;
  if (argc < 2) {
    fprintf(stderr, "usage: agent_bench AGENTS_DIR [CACHE_DIR]\n");
    return 2;
  }
  if (argc > 2) {
    snprintf(cache, sizeof cache, "%s", argv[2]);
  } else {
    snprintf(cache, sizeof cache, "/tmp/coh-bench-XXXXXX");
    if (mkdtemp(cache) == NULL) return 1;
    own_cache = 1;
  }
  snprintf(cache_nf, sizeof cache_nf, "%s/nofuel", cache);
  memset(&ro, 0, sizeof ro);
  ro.cache_dir = cache;
  if (coh_agent_rt_new(&ro, &rt, &err)) return 1;
  ro.cache_dir = cache_nf;
  ro.no_fuel = 1;
  if (coh_agent_rt_new(&ro, &rt_nf, &err)) return 1;

  snprintf(path, sizeof path, "%s/echo.wasm", argv[1]);
  echo = load(rt, path, &t_first);
  coh_module_free(echo);
  echo = load(rt, path, &t_cached);
  printf("module load, echo.wasm (wasi-libc, printf): first %.0f ms "
         "(wasm2c + cc), cached %.2f ms (from cache: %d)\n", t_first * 1e3,
         t_cached * 1e3, coh_module_from_cache(echo));

  snprintf(path, sizeof path, "%s/bench_kernel.wasm", argv[1]);
  m = load(rt, path, &t0);
  m_nf = load(rt_nf, path, &t0);
  {
    /* the three interleaved, fastest of KERNEL_RUNS each: the machine is
     * shared, and interleaving exposes all three to the same load */
    coh_agent *af = kernel_agent(m), *an = kernel_agent(m_nf);
    for (i = 0; i < KERNEL_RUNS; i++) {
      double s = now_s();
      h_native = kernel_run(reps);
      if (now_s() - s < t_native) t_native = now_s() - s;
      run_kernel(af, reps, &h_fuel, &t_fuel);
      run_kernel(an, reps, &h_nofuel, &t_nofuel);
    }
    coh_agent_free(af);
    coh_agent_free(an);
  }
  printf("kernel (64x64 matmul x%u): native %.2f ms, wasm+fuel %.2f ms "
         "(%.2fx), wasm no fuel %.2f ms (%.2fx); hashes %s\n", reps,
         t_native * 1e3, t_fuel * 1e3, t_fuel / t_native, t_nofuel * 1e3,
         t_nofuel / t_native,
         (h_native == h_fuel && h_fuel == h_nofuel) ? "equal" : "DIFFER");

  {
    /* the same kernel built with -msimd128: loads only with a wasm2c that
     * translates SIMD (not Debian 12's) */
    coh_module *ms = NULL;
    snprintf(path, sizeof path, "%s/bench_kernel_simd.wasm", argv[1]);
    if (coh_module_load_file(rt, path, &ms, &err) != COH_OK) {
      printf("kernel built with -msimd128: not loaded: %s\n", err.msg);
    } else {
      coh_agent *as = kernel_agent(ms);
      double t_simd = 1e9;
      uint32_t h_simd = 0;
      for (i = 0; i < KERNEL_RUNS; i++) {
        double s0 = now_s();
        h_native = kernel_run(reps);
        if (now_s() - s0 < t_native) t_native = now_s() - s0;
        run_kernel(as, reps, &h_simd, &t_simd);
      }
      printf("kernel built with -msimd128: wasm+fuel %.2f ms (%.2fx native); "
             "hash %s\n", t_simd * 1e3, t_simd / t_native,
             h_simd == h_native ? "equal" : "DIFFERS");
      coh_agent_free(as);
      coh_module_free(ms);
    }
  }

  if (coh_agent_new(m, NULL, NULL, NULL, &a, &err)) return 1;
  coh_agent_set_fuel(a, 0);
  {
    uint32_t zero = 0;
    double base, full;
    t0 = now_s();
    coh_agent_step(a, 2, &zero, 4, &r);
    base = now_s() - t0;
    t0 = now_s();
    coh_agent_step(a, 2, &n, 4, &r);
    full = now_s() - t0;
    printf("host call round trip (cohort.now): %.1f ns\n",
           (full - base) / n * 1e9);
    t0 = now_s();
    for (i = 0; i < 100000; i++) coh_agent_step(a, 3, NULL, 0, &r);
    printf("empty step (host -> agent -> host): %.1f ns\n",
           (now_s() - t0) / 100000 * 1e9);
  }
  coh_agent_free(a);

  {
    /* SDK event step, arena vs malloc, interleaved, fastest of 9 rounds of
     * 20000 steps each; a 64-byte body sent back to a named sender */
    static const coh_agent_host sink = {NULL, NULL, NULL, NULL, NULL,
                                        NULL, NULL, NULL, NULL, NULL};
    static const char hdr[] = "peer";
    uint8_t msg[sizeof hdr + 64];
    coh_module *ma, *mm;
    coh_agent *aa, *am;
    double ta = 1e9, tm = 1e9;
    int k, nsteps = 20000;
    memcpy(msg, hdr, sizeof hdr);
    memset(msg + sizeof hdr, 'x', 64);
    snprintf(path, sizeof path, "%s/sdk_step.wasm", argv[1]);
    ma = load(rt, path, &t0);
    snprintf(path, sizeof path, "%s/sdk_step_malloc.wasm", argv[1]);
    mm = load(rt, path, &t0);
    if (coh_agent_new(ma, NULL, &sink, NULL, &aa, &err) ||
        coh_agent_new(mm, NULL, &sink, NULL, &am, &err))
      return 1;
    coh_agent_set_fuel(aa, 0);
    coh_agent_set_fuel(am, 0);
    if (coh_agent_step(aa, COH_ABI_EV_MESSAGE, msg, sizeof msg, &r) ||
        r.rc != 64 ||
        coh_agent_step(am, COH_ABI_EV_MESSAGE, msg, sizeof msg, &r) ||
        r.rc != 64) {
      fprintf(stderr, "sdk_step: the step failed (rc %d): %s\n", r.rc,
              r.message);
      return 1;
    }
    for (k = 0; k < KERNEL_RUNS; k++) {
      t0 = now_s();
      for (i = 0; i < nsteps; i++)
        coh_agent_step(aa, COH_ABI_EV_MESSAGE, msg, sizeof msg, &r);
      if (now_s() - t0 < ta) ta = now_s() - t0;
      t0 = now_s();
      for (i = 0; i < nsteps; i++)
        coh_agent_step(am, COH_ABI_EV_MESSAGE, msg, sizeof msg, &r);
      if (now_s() - t0 < tm) tm = now_s() - t0;
    }
    printf("SDK event step (64-byte message sent back): arena %.1f ns, "
           "malloc/free %.1f ns (arena %.2fx)\n", ta / nsteps * 1e9,
           tm / nsteps * 1e9, ta / tm);
    coh_agent_free(aa);
    coh_agent_free(am);
    coh_module_free(ma);
    coh_module_free(mm);
  }

  many = calloc((size_t)nagents, sizeof *many);
  rss0 = rss_kb();
  t0 = now_s();
  for (i = 0; i < nagents; i++)
    if (coh_agent_new(echo, NULL, NULL, NULL, &many[i], &err)) {
      fprintf(stderr, "agent %d: %s\n", i, err.msg);
      return 1;
    }
  t0 = now_s() - t0;
  rss1 = rss_kb();
  printf("instantiate from cache (echo, incl. _initialize): %.1f us/agent; "
         "idle agent memory: %.0f KiB resident each\n",
         t0 / nagents * 1e6, (double)(rss1 - rss0) / nagents);
  for (i = 0; i < nagents; i++) coh_agent_free(many[i]);
  free(many);
  coh_module_free(echo);
  coh_module_free(m);
  coh_module_free(m_nf);
  coh_agent_rt_free(rt);
  coh_agent_rt_free(rt_nf);
  /* depth-first, so each folder is empty when it is removed */
  if (own_cache && nftw(cache, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "agent_bench: could not remove the temporary cache %s\n", cache);
  return 0;
}
