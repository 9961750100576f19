/* test_fixture.h — the fixture models the engine tests share: their folder
 * (COH_FIXTURES, set by CTest; build/fixtures by hand), opening one on the
 * CPU with one intra-op thread, so that runs are repeatable, and stepping an
 * engine until its requests are done. */
#ifndef COH_TEST_FIXTURE_H
#define COH_TEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "cohort/infer.h"

static char fixture_dir[1024];

/* The folder of fixture `name` (a static buffer: valid until the next call). */
static inline const char *fixture(const char *name) {
  const char *root = getenv("COH_FIXTURES");
  snprintf(fixture_dir, sizeof fixture_dir, "%s/%s", root ? root : "build/fixtures", name);
  return fixture_dir;
}

/* Opens dir on the CPU with one thread; NULL (the reason on stderr) on failure. */
static inline coh_model *open_model(const char *dir) {
  coh_model_options o;
  coh_model *m = NULL;
  coh_err err;
  coh_model_options_default(&o);
  o.device = COH_DEVICE_CPU;
  o.intra_op_threads = 1;
  if (coh_model_open(dir, &o, &m, &err)) {
    fprintf(stderr, "open %s: %s\n", dir, err.msg);
    return NULL;
  }
  return m;
}

/* Steps e until it has no request left (at most 100,000 steps, a bound
 * against a hang); 0, or -1 (the reason on stderr) on a step error or when
 * requests are still running at the bound. */
static inline int run_all(coh_engine *e) {
  coh_err err;
  int guard = 0;
  while (coh_engine_busy(e) && guard++ < 100000)
    if (coh_engine_step(e, &err)) {
      fprintf(stderr, "step: %s\n", err.msg);
      return -1;
    }
  if (coh_engine_busy(e)) {
    fprintf(stderr, "step: still busy after 100000 steps\n");
    return -1;
  }
  return 0;
}

#endif
