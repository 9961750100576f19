/* test_fixture.h — the fixture models the engine tests share: their folder
 * (COH_FIXTURES, set by CTest; build/fixtures by hand) and opening one on
 * the CPU with one intra-op thread, so that runs are repeatable. */
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

#endif
