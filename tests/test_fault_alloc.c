/*
 * test_fault_alloc.c — out-of-memory injection through the replaceable
 * allocator (coh_replace_allocator; issue 9, part 6).  The test allocator
 * fails the Nth allocation (malloc, calloc or realloc) once and keeps a
 * count of live blocks, so that a leak of cohort's own memory is an
 * assertion here in every build, not only under LeakSanitizer (which covers
 * the memory of the libraries cohort calls: this program runs in the ASan
 * suite of scripts/test.sh too).
 *
 * Three operations, each swept over N (load and generate at every N; a run
 * at an even sample of RUN_SAMPLE points including the first and the last
 * allocation; the figures printed say which):
 *   load      coh_model_open of a fixture model (configuration, ORT session,
 *             tokenizer.json) and coh_model_close, then coh_tokenizer_load
 *             of the same tokenizer.json on its own;
 *   run       a whole `cohort run`: scenario load, the run's record, the
 *             journal's creation and coh_run over agents that ask the model;
 *   generate  on an open model: engine, encode, submit, steps to the end,
 *             decode, engine free.
 * For every N at which the failure fired, the operation must fail with
 * COH_ENOMEM — or succeed with exactly the fault-free result (an allocation
 * whose failure changes nothing, e.g. a copy that was not needed), never a
 * different result (for a run: never another digest) — and after cleanup no
 * block of cohort's may be live.  A run that failed after its journal was
 * created must leave a journal that verifies, and `resume` of it (with no
 * fault) must end with the uninterrupted run's digest.
 * COH_FAULT_ALL=1 sweeps the run at every N (a long run, ~1,000 trials);
 * COH_FAULT_AT=N runs one trial.  ONNX
 * Runtime, SQLite, jansson and libyaml allocate through their own
 * allocators and are outside this sweep (docs/reliability.md).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cohort/infer.h"
#include "cohort/journal.h"
#include "cohort/orch.h"
#include "cohort/scenario.h"
#include "cohort/tokenizer.h"
#include "test.h"

/* load and generate are swept at every N; a run (about 1,000 allocations,
 * each trial a whole run) at an even sample of RUN_SAMPLE points. */
#define SWEEP_MAX 400
/* Under AddressSanitizer a run costs several times more CPU, and the test
 * runs there too (scripts/test.sh, 1800 s per sanitized test, stress-tests.sh under
 * load): 60 points, with the resumes below, cost less than the 100 points
 * without resumes did.  The Release build sweeps 100. */
#if defined(__SANITIZE_ADDRESS__)
#define COH_FA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COH_FA_ASAN 1
#endif
#endif
#ifdef COH_FA_ASAN
#define RUN_SAMPLE 60
#else
#define RUN_SAMPLE 100
#endif

/* ---- the allocator ------------------------------------------------------ */

static atomic_long n_calls; /* allocations since fa_arm */
static atomic_long n_live;  /* blocks allocated and not freed */
static atomic_long fail_at; /* 0: never */
static atomic_int fired;

static void fa_arm(long at) {
  atomic_store(&n_calls, 0);
  atomic_store(&fired, 0);
  atomic_store(&fail_at, at);
}

/* Where a debugger stops to see who got the NULL (break fa_failed). */
void fa_failed(long k);
volatile long fa_last_failed;
__attribute__((noinline)) void fa_failed(long k) { fa_last_failed = k; }

static int fa_fail(void) {
  long k = atomic_fetch_add(&n_calls, 1) + 1;
  if (k == atomic_load(&fail_at)) {
    atomic_store(&fired, 1);
    fa_failed(k);
    return 1;
  }
  return 0;
}

static void *fa_malloc(size_t n) {
  void *p;
  if (fa_fail()) return NULL;
  p = malloc(n);
  if (p) atomic_fetch_add(&n_live, 1);
  return p;
}
static void *fa_calloc(size_t c, size_t n) {
  void *p;
  if (fa_fail()) return NULL;
  p = calloc(c, n);
  if (p) atomic_fetch_add(&n_live, 1);
  return p;
}
static void *fa_realloc(void *p, size_t n) {
  void *q;
  if (fa_fail()) return NULL;
  q = realloc(p, n);
  if (q && p == NULL) atomic_fetch_add(&n_live, 1);
  return q;
}
static void fa_free(void *p) {
  if (p) atomic_fetch_sub(&n_live, 1);
  free(p);
}

/* ---- the operations ----------------------------------------------------- */

static char fixture[1024], tmp[512], cache[1024], scenario_path[1024];
static coh_model *gen_model; /* for op_generate, opened with no fault */

static int open_model(coh_model **m, coh_err *err) {
  coh_model_options o;
  coh_model_options_default(&o);
  o.device = COH_DEVICE_CPU;
  o.intra_op_threads = 1;
  return coh_model_open(fixture, &o, m, err);
}

static int op_load(coh_err *err, char *sig) {
  char path[1100];
  coh_model *m = NULL;
  coh_tokenizer *tok = NULL;
  int rc = open_model(&m, err);
  coh_model_close(m);
  if (rc) return rc;
  snprintf(path, sizeof path, "%s/tokenizer.json", fixture);
  rc = coh_tokenizer_load(path, &tok, err);
  if (rc == COH_OK) snprintf(sig, 128, "vocab %zu", coh_tokenizer_vocab_size(tok));
  coh_tokenizer_free(tok);
  return rc;
}

typedef struct gen_out {
  int finished;
  char *sig; /* the generated ids and text */
  size_t n;
} gen_out;

static void on_token(void *user, const coh_token_event *ev) {
  gen_out *g = user;
  if (ev->finish != COH_FINISH_NONE) g->finished = 1;
  if (g->n < 100)
    g->n += (size_t)snprintf(g->sig + g->n, 128 - g->n, "%d:%.*s|", (int)ev->token,
                             (int)(ev->text_len < 8 ? ev->text_len : 8), ev->text ? ev->text : "");
}

static int op_generate(coh_err *err, char *sig) {
  const coh_tokenizer *tok = coh_model_tokenizer(gen_model);
  coh_engine *e = NULL;
  coh_request r;
  int32_t *ids = NULL, out[16];
  size_t n_ids = 0;
  char *text = NULL;
  uint64_t id;
  int rc, steps;
  gen_out g;
  g.finished = 0;
  g.sig = sig;
  g.n = 0;
  if ((rc = coh_engine_new(gen_model, 2, &e, err))) goto done;
  if ((rc = coh_tokenizer_encode(tok, "Once upon a time", 16, 1, &ids, &n_ids, err))) goto done;
  coh_request_default(&r);
  r.prompt = ids;
  r.n_prompt = n_ids;
  r.max_tokens = 8;
  r.sampling.temperature = 0.8f;
  r.sampling.top_k = 20;
  r.sampling.seed = 11;
  r.on_token = on_token;
  r.user = &g;
  if ((rc = coh_engine_submit(e, &r, &id, err))) goto done;
  for (steps = 0; !g.finished && steps < 64; steps++)
    if ((rc = coh_engine_step(e, err))) goto done;
  if (!g.finished) {
    rc = COH_ESTATE;
    snprintf(err->msg, sizeof err->msg, "generation did not finish");
    goto done;
  }
  memcpy(out, ids, (n_ids < 16 ? n_ids : 16) * sizeof *out);
  rc = coh_tokenizer_decode(tok, out, n_ids < 16 ? n_ids : 16, 1, &text, NULL, err);
done:
  coh_free(text);
  coh_free(ids);
  coh_engine_free(e);
  return rc;
}

static void remove_journal(const char *path) {
  char b[1200];
  unlink(path);
  snprintf(b, sizeof b, "%s-wal", path);
  unlink(b);
  snprintf(b, sizeof b, "%s-shm", path);
  unlink(b);
}

/* Set by op_run: whether the journal was created (a failure after that
 * must leave a journal that verifies and resumes). */
static int run_journal_made;

static int op_run(coh_err *err, char *sig) {
  char path[1100];
  coh_scenario *s = NULL;
  coh_run_options o;
  coh_run_summary sum;
  coh_run_record *rec = NULL;
  coh_journal *j = NULL;
  coh_journal_init init;
  const char *keys[2] = {"scenario_path", "scenario_dir"};
  const void *vals[2];
  size_t lens[2];
  int rc;
  snprintf(path, sizeof path, "%s/run.db", tmp);
  remove_journal(path);
  run_journal_made = 0;
  memset(&o, 0, sizeof o);
  o.cache_dir = cache;
  o.workers = 2;
  if ((rc = coh_scenario_load(scenario_path, &s, err))) goto done;
  if ((rc = coh_run_record_new(s, &o, &rec, err))) goto done;
  vals[0] = s->path;
  vals[1] = s->dir;
  lens[0] = strlen(s->path);
  lens[1] = strlen(s->dir);
  memset(&init, 0, sizeof init);
  init.inputs = rec->genesis;
  init.inputs_len = rec->genesis_len;
  init.meta_keys = keys;
  init.meta_values = vals;
  init.meta_lens = lens;
  init.n_meta = 2;
  init.blobs = rec->blobs;
  init.n_blobs = rec->n_blobs;
  if ((rc = coh_journal_create_init(path, &init, &j, err))) goto done;
  run_journal_made = 1;
  o.mode = COH_RUN_FRESH;
  o.journal = j;
  o.modules = rec->modules;
  rc = coh_run(s, &o, &sum, err);
  if (rc == COH_OK) snprintf(sig, 128, "digest %s", sum.digest);
done:
  coh_journal_close(j);
  coh_run_record_free(rec);
  coh_scenario_free(s);
  /* the journal stays for resume_run; the next op_run removes it */
  return rc;
}

/* `cohort resume` of op_run's journal, as the command does it: open,
 * verify the whole chain, load the run's record from the journal, re-run
 * the committed ticks comparing them, then run on to the end. */
static int resume_run(coh_err *err, char *sig) {
  char path[1100];
  coh_scenario *s = NULL;
  coh_run_options o;
  coh_run_summary sum;
  coh_run_record *rec = NULL;
  coh_journal *j = NULL;
  int rc;
  snprintf(path, sizeof path, "%s/run.db", tmp);
  memset(&o, 0, sizeof o);
  o.cache_dir = cache;
  o.workers = 2;
  if ((rc = coh_journal_open(path, &j, err))) goto done;
  if ((rc = coh_journal_verify(j, err))) goto done;
  if ((rc = coh_run_record_load(j, &o, &s, &rec, err))) goto done;
  o.mode = COH_RUN_RESUME;
  o.journal = j;
  o.modules = rec->modules;
  rc = coh_run(s, &o, &sum, err);
  if (rc == COH_OK && sum.diverged_tick >= 0) {
    rc = COH_ESTATE;
    snprintf(err->msg, sizeof err->msg, "resume diverged at tick %lld", (long long)sum.diverged_tick);
  }
  if (rc == COH_OK) snprintf(sig, 128, "digest %s", sum.digest);
done:
  coh_journal_close(j);
  coh_run_record_free(rec);
  coh_scenario_free(s);
  remove_journal(path);
  return rc;
}

/* ---- the sweep ---------------------------------------------------------- */

/* resume: for op_run, after a trial that failed with COH_ENOMEM once the
 * journal existed, the journal must verify and resume (with no fault) must
 * end with the uninterrupted digest.  Each resume costs a whole run, so the
 * sampled sweep resumes every RESUME_EVERY-th such trial (spread over the
 * run like the sample); COH_FAULT_ALL resumes every one. */
#define RESUME_EVERY 3
static void sweep(const char *name, int (*op)(coh_err *, char *), long max,
                  int (*resume)(coh_err *, char *)) {
  coh_err err;
  char ref[128] = "", sig[128];
  long base, total, points, i, enomem = 0, swept = 0, absorbed = 0, resumed = 0, with_journal = 0;
  int rc, did_fire;
  /* A warm-up run first: a thread's first agent step allocates the
   * thread's trap state (src/agent/rt.c), kept until the thread exits.
   * The live count after it is the base; the fault-free run that follows
   * must return to it, and so must every trial. */
  fa_arm(0);
  rc = op(&err, ref);
  if (rc) fprintf(stderr, "%s without a fault: %s\n", name, err.msg);
  REQUIRE(rc == COH_OK);
  base = atomic_load(&n_live);
  fa_arm(0);
  rc = op(&err, ref);
  total = atomic_load(&n_calls);
  if (rc) fprintf(stderr, "%s without a fault: %s\n", name, err.msg);
  REQUIRE(rc == COH_OK);
  REQUIRE(ref[0] != '\0');
  CHECK_EQ_INT(atomic_load(&n_live), base);
  REQUIRE(total > 0);
  points = total <= max ? total : max;
  if (getenv("COH_FAULT_ALL")) points = total; /* a long run: every N */
  if (getenv("COH_FAULT_AT")) points = 1; /* debugging one N */
  for (i = 0; i < points; i++) {
    long at = getenv("COH_FAULT_AT")  ? atol(getenv("COH_FAULT_AT"))
              : points == total       ? i + 1
                                      : 1 + (i * (total - 1)) / (points - 1);
    coh_err_clear(&err);
    sig[0] = '\0';
    fa_arm(at);
    rc = op(&err, sig);
    did_fire = atomic_load(&fired);
    fa_arm(0);
    swept++;
    if (getenv("COH_FAULT_AT")) printf("%s N=%ld: %s: %s\n", name, at, coh_err_name(rc), err.msg);
    if (!did_fire) {
      /* fewer allocations this time (e.g. thread timing): must succeed */
      if (rc != COH_OK) fprintf(stderr, "%s N=%ld (no fault): %s\n", name, at, err.msg);
      CHECK_EQ_INT(rc, COH_OK);
    } else if (rc == COH_ENOMEM) {
      enomem++;
      if (resume && run_journal_made &&
          (with_journal++ % RESUME_EVERY == 0 || getenv("COH_FAULT_ALL") || getenv("COH_FAULT_AT"))) {
        coh_err rerr;
        char rsig[128] = "";
        int rrc;
        coh_err_clear(&rerr);
        rrc = resume(&rerr, rsig);
        if (rrc != COH_OK || strcmp(rsig, ref) != 0) {
          fprintf(stderr, "%s N=%ld (%s): resume: %s: %s [%s vs %s]\n", name, at, err.msg,
                  coh_err_name(rrc), rerr.msg, rsig, ref);
          CHECK_EQ_INT(rrc, COH_OK);
          CHECK(strcmp(rsig, ref) == 0);
        } else {
          resumed++;
        }
      }
    } else if (rc == COH_OK && !strcmp(sig, ref)) {
      absorbed++; /* a failure with no effect on the result (e.g. a copy
                     that turned out not to be needed) */
    } else {
      fprintf(stderr, "%s N=%ld: want COH_ENOMEM, got %s: %s [%s vs %s]\n", name, at,
              coh_err_name(rc), err.msg, sig, ref);
      CHECK_EQ_INT(rc, COH_ENOMEM);
    }
    if (atomic_load(&n_live) != base) {
      fprintf(stderr, "%s N=%ld: %ld blocks leaked\n", name, at, atomic_load(&n_live) - base);
      CHECK_EQ_INT(atomic_load(&n_live), base);
      atomic_store(&n_live, base);
    }
  }
  printf("%s: %ld allocations; %ld N swept (%s); %ld ended with COH_ENOMEM, %ld succeeded "
         "with the fault-free result; no other outcome; no block leaked\n",
         name, total, swept, points == total ? "all" : "even sample", enomem, absorbed);
  if (resume)
    printf("%s: %ld of the COH_ENOMEM runs had created the journal; %ld of them (1 in %d) "
           "verified and resumed to the uninterrupted digest\n",
           name, with_journal, resumed, getenv("COH_FAULT_ALL") ? 1 : RESUME_EVERY);
  fflush(stdout);
}

static void test_alloc_load(void) { sweep("load (model folder + tokenizer.json)", op_load, SWEEP_MAX, NULL); }

static void test_alloc_generate(void) {
  coh_err err;
  if (open_model(&gen_model, &err)) fprintf(stderr, "open: %s\n", err.msg);
  REQUIRE(gen_model != NULL);
  sweep("generate (engine, encode, 8 tokens, decode)", op_generate, SWEEP_MAX, NULL);
  coh_model_close(gen_model);
  gen_model = NULL;
}

static const char scenario_fmt[] =
    "name: oom\n"
    "seed: 9\n"
    "models:\n"
    "  - {name: tiny, path: %s, device: cpu, max_batch: 2, threads: 1}\n"
    "stop: {max_ticks: 40, quiescence: true}\n"
    "checkpoint_every: 5\n"
    "agents:\n"
    "  - {id: node, module: %s/agents/echo.wasm, count: 2}\n"
    "  - {id: c, module: %s/agents/chatter.wasm}\n"
    "messages:\n"
    "  - {from: node-1, to: node-0, body: \"ping\"}\n"
    "  - {to: c, body: \"llm Once upon\"}\n"
    "  - {to: c, body: \"timer 2\"}\n";

static void test_alloc_run(void) {
  char path[1100];
  sweep("run (scenario, record, journal, 2 echo + 1 llm agent)", op_run, RUN_SAMPLE, resume_run);
  snprintf(path, sizeof path, "%s/run.db", tmp);
  remove_journal(path);
}

int main(int argc, char **argv) {
  const char *fix = getenv("COH_FIXTURES"), *build = getenv("COH_BUILD_DIR");
  FILE *f;
  int rc;
  TEST_MAIN_BEGIN(argc, argv);
  if (fix == NULL || build == NULL) {
    fprintf(stderr, "COH_FIXTURES and COH_BUILD_DIR must be set (ctest sets them)\n");
    return 1;
  }
  snprintf(fixture, sizeof fixture, "%s/llama-tiny-plain-fp32", fix);
  snprintf(cache, sizeof cache, "%s/test-module-cache", build);
  snprintf(tmp, sizeof tmp, "/tmp/coh-faultalloc-XXXXXX");
  if (mkdtemp(tmp) == NULL) return 1;
  snprintf(scenario_path, sizeof scenario_path, "%s/oom.yaml", tmp);
  f = fopen(scenario_path, "w");
  if (f == NULL) return 1;
  fprintf(f, scenario_fmt, fixture, build, build);
  fclose(f);
  if (coh_replace_allocator(fa_malloc, fa_realloc, fa_calloc, fa_free) != COH_OK) return 1;
  RUN(test_alloc_load);
  RUN(test_alloc_generate);
  RUN(test_alloc_run);
  rc = TEST_MAIN_END();
  unlink(scenario_path);
  rmdir(tmp);
  return rc;
}
