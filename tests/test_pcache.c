/* test_pcache.c — the prefix cache: the module's bounds and eviction order
 * (src/infer/pcache.h), and through the engine, that every token and the
 * bits of every logit, and the engine step each appears at, are the same
 * with the cache on, off, and under a budget that evicts. */
#include "infer/pcache.h"
#include "test.h"
#include "test_fixture.h"

enum { B = 4, BYTES = 16 };

static void toks(int32_t *t, int32_t base) {
  for (int i = 0; i < B; i++) t[i] = base + i;
}

/* bytes one entry costs (header + tokens + data), as the cache counts it */
static size_t entry_cost(void) {
  coh__pcache *c;
  coh__pcache_stats st;
  int32_t t[B];
  void *d;
  toks(t, 1);
  if (coh__pcache_new(1 << 20, BYTES, B, &c)) return 0;
  (void)coh__pcache_insert(c, NULL, t, 1, &d);
  coh__pcache_get_stats(c, &st);
  coh__pcache_free(c);
  return st.bytes;
}

static void test_exact_keys(void) {
  coh__pcache *c;
  coh__pblock *a, *b, *x;
  int32_t t[B], u[B];
  void *d;
  REQUIRE(coh__pcache_new(1 << 20, BYTES, B, &c) == 0);
  toks(t, 10);
  toks(u, 10);
  u[B - 1] = 99;
  a = coh__pcache_insert(c, NULL, t, 1, &d);
  REQUIRE(a != NULL && d != NULL);
  memset(d, 0xAB, BYTES);
  CHECK(coh__pcache_find(c, NULL, t, 2, 1) == a);
  CHECK(((const unsigned char *)coh__pblock_data(a))[BYTES - 1] == 0xAB);
  CHECK(coh__pcache_find(c, NULL, u, 2, 1) == NULL); /* one token differs */
  /* the same tokens after a different prefix are a different block */
  b = coh__pcache_insert(c, a, t, 3, &d);
  REQUIRE(b != NULL && b != a);
  CHECK(coh__pcache_find(c, a, t, 4, 1) == b);
  CHECK(coh__pcache_find(c, b, t, 4, 1) == NULL);
  /* already there: not inserted twice */
  CHECK(coh__pcache_insert(c, NULL, t, 5, &d) == NULL && d == NULL);
  x = coh__pcache_find(c, NULL, t, 5, 0); /* a pure query counts nothing */
  CHECK(x == a);
  {
    coh__pcache_stats st;
    coh__pcache_get_stats(c, &st);
    CHECK_EQ_INT(st.lookups, 4);
    CHECK_EQ_INT(st.hits, 2);
    CHECK_EQ_INT(st.inserts, 2);
    CHECK_EQ_INT(st.entries, 2);
  }
  coh__pcache_free(c);
}

/* Fills a cache of room for 3 entries with root blocks 1, 2, 3 inserted at
 * ticks 1, 2, 3. */
static coh__pcache *three(coh__pblock **e) {
  coh__pcache *c;
  int32_t t[B];
  void *d;
  size_t eb = entry_cost();
  if (eb == 0 || coh__pcache_new(3 * eb + eb / 2, BYTES, B, &c)) return NULL;
  for (int i = 0; i < 3; i++) {
    toks(t, 100 * (i + 1));
    e[i] = coh__pcache_insert(c, NULL, t, (uint64_t)i + 1, &d);
  }
  return c;
}

static int present(coh__pcache *c, int32_t base) {
  int32_t t[B];
  toks(t, base);
  return coh__pcache_find(c, NULL, t, 0, 0) != NULL;
}

static void test_bound_and_lru(void) {
  coh__pblock *e[3];
  coh__pcache *c = three(e);
  coh__pcache_stats st;
  int32_t t[B];
  void *d;
  REQUIRE(c != NULL && e[0] && e[1] && e[2]);
  /* block 1 used at tick 5: block 2 is now the least recently used */
  toks(t, 100);
  CHECK(coh__pcache_find(c, NULL, t, 5, 1) == e[0]);
  toks(t, 400);
  CHECK(coh__pcache_insert(c, NULL, t, 6, &d) != NULL);
  CHECK(present(c, 100) && !present(c, 200) && present(c, 300) && present(c, 400));
  coh__pcache_get_stats(c, &st);
  CHECK_EQ_INT(st.entries, 3);
  CHECK_EQ_INT(st.evictions, 1);
  CHECK(st.bytes <= 3 * entry_cost() + entry_cost() / 2 && st.peak_bytes == st.bytes);
  /* now block 3 (tick 3) is the least recently used */
  toks(t, 500);
  CHECK(coh__pcache_insert(c, NULL, t, 6, &d) != NULL);
  CHECK(present(c, 100) && !present(c, 300) && present(c, 400) && present(c, 500));
  coh__pcache_free(c);
}

static void test_ties_oldest_first(void) {
  coh__pcache *c;
  coh__pblock *e[3];
  int32_t t[B];
  void *d;
  size_t eb = entry_cost();
  REQUIRE(coh__pcache_new(2 * eb, BYTES, B, &c) == 0);
  for (int i = 0; i < 2; i++) {
    toks(t, 100 * (i + 1));
    e[i] = coh__pcache_insert(c, NULL, t, 7, &d); /* same tick */
  }
  toks(t, 300);
  e[2] = coh__pcache_insert(c, NULL, t, 7, &d);
  CHECK(e[2] != NULL && !present(c, 100) && present(c, 200) && present(c, 300));
  coh__pcache_free(c);
}

static void test_leaves_pins_wants(void) {
  coh__pcache *c;
  coh__pblock *a, *b, *x;
  coh__pcache_stats st;
  int32_t t[B];
  void *d;
  size_t eb = entry_cost();
  REQUIRE(coh__pcache_new(2 * eb, BYTES, B, &c) == 0);
  toks(t, 1);
  a = coh__pcache_insert(c, NULL, t, 1, &d);
  toks(t, 2);
  b = coh__pcache_insert(c, a, t, 2, &d); /* a -> b */
  REQUIRE(a && b);
  /* a is older but has a child: b (the leaf) goes */
  toks(t, 3);
  x = coh__pcache_insert(c, NULL, t, 3, &d);
  CHECK(x != NULL);
  toks(t, 2);
  CHECK(coh__pcache_find(c, a, t, 3, 0) == NULL);
  CHECK(present(c, 1) && present(c, 3));
  /* a pinned and x wanted at tick 4: nothing may go, the insert is declined */
  coh__pblock_pin(a, 1);
  coh__pcache_want(c, x, 4);
  toks(t, 4);
  CHECK(coh__pcache_insert(c, NULL, t, 4, &d) == NULL);
  coh__pcache_get_stats(c, &st);
  CHECK_EQ_INT(st.declined, 1);
  CHECK(present(c, 1) && present(c, 3) && !present(c, 4));
  /* at tick 5 the want has lapsed: x (unpinned) goes, a (pinned) stays */
  CHECK(coh__pcache_insert(c, NULL, t, 5, &d) != NULL);
  CHECK(present(c, 1) && !present(c, 3) && present(c, 4));
  /* unpinned, a is the least recently used */
  coh__pblock_pin(a, -1);
  toks(t, 6);
  CHECK(coh__pcache_insert(c, NULL, t, 6, &d) != NULL);
  CHECK(!present(c, 1) && present(c, 4) && present(c, 6));
  coh__pcache_free(c);
}

static void test_too_small(void) {
  coh__pcache *c;
  coh__pcache_stats st;
  int32_t t[B];
  void *d;
  toks(t, 1);
  CHECK(coh__pcache_new(1 << 20, 0, B, &c) == -1 && c == NULL);
  CHECK(coh__pcache_new(1 << 20, BYTES, 0, &c) == -1 && c == NULL);
  REQUIRE(coh__pcache_new(BYTES, BYTES, B, &c) == 0); /* less than one entry */
  CHECK(coh__pcache_insert(c, NULL, t, 1, &d) == NULL && d == NULL);
  coh__pcache_get_stats(c, &st);
  CHECK_EQ_INT(st.declined, 1);
  CHECK_EQ_INT(st.bytes, 0);
  coh__pcache_free(c);
}

/* ---- through the engine ---------------------------------------------------- */

#define MAXEV 4096
typedef struct ev {
  uint64_t req, step;
  int32_t token;
  int finish;
  uint32_t hash; /* FNV-1a of the logits' bytes */
  float l0;
} ev;

typedef struct log_ {
  ev e[MAXEV];
  int n;
  uint64_t step;
  int64_t vocab;
} log_;

static void on_token(void *user, const coh_token_event *t) {
  log_ *l = user;
  ev *e;
  if (l->n == MAXEV) return;
  e = &l->e[l->n++];
  e->req = t->request_id;
  e->step = l->step;
  e->token = t->token;
  e->finish = (int)t->finish;
  e->hash = 2166136261u;
  if (t->logits != NULL) {
    const unsigned char *p = (const unsigned char *)t->logits;
    for (size_t i = 0; i < (size_t)l->vocab * sizeof(float); i++)
      e->hash = (e->hash ^ p[i]) * 16777619u;
    e->l0 = t->logits[0];
  }
}

/* Runs a fixed workload (prompts sharing prefixes of various lengths, some
 * ending exactly on a block boundary, greedy and sampled, in two waves) on
 * model m with the given budget (bytes; 0 off); the events go to l. */
static int workload(coh_model *m, size_t budget, log_ *l, coh_engine_stats *st) {
  enum { N = 7 };
  static const int lens[N] = {150, 100, 96, 64, 140, 33, 160};
  static const int shared[N] = {150, 100, 96, 64, 120, 33, 10};
  int32_t base[200], p[200];
  coh_engine *e = NULL;
  coh_err err;
  int rc = 0, wave, i;
  l->n = 0;
  l->step = 0;
  l->vocab = coh_model_get_info(m)->vocab;
  for (i = 0; i < 200; i++) base[i] = 3 + (i * 7919) % 900;
  if (coh_engine_new(m, 3, &e, &err) || coh_engine_set_prefix_cache(e, budget, &err)) {
    fprintf(stderr, "engine: %s\n", err.msg);
    coh_engine_free(e);
    return -1;
  }
  for (wave = 0; wave < 2 && rc == 0; wave++) {
    for (i = 0; i < N; i++) {
      coh_request r;
      uint64_t id;
      int k;
      for (k = 0; k < lens[i]; k++) p[k] = k < shared[i] ? base[k] : 950 + (k * 31 + i) % 40;
      coh_request_default(&r);
      r.prompt = p;
      r.n_prompt = (size_t)lens[i];
      r.max_tokens = 4;
      r.ignore_eos = 1;
      if ((i + wave) % 2) {
        r.sampling.temperature = 0.9f;
        r.sampling.seed = (uint64_t)(17 + i + 100 * wave);
      }
      r.on_token = on_token;
      r.user = l;
      if ((rc = coh_engine_submit(e, &r, &id, &err))) break;
    }
    while (rc == 0 && coh_engine_busy(e)) {
      l->step++;
      rc = coh_engine_step(e, &err);
    }
  }
  if (rc) fprintf(stderr, "workload: %s\n", err.msg);
  coh_engine_get_stats(e, st);
  coh_engine_free(e);
  return rc;
}

static int same_events(const log_ *a, const log_ *b) {
  if (a->n != b->n) return 0;
  for (int i = 0; i < a->n; i++)
    if (a->e[i].req != b->e[i].req || a->e[i].step != b->e[i].step ||
        a->e[i].token != b->e[i].token || a->e[i].finish != b->e[i].finish ||
        a->e[i].hash != b->e[i].hash || memcmp(&a->e[i].l0, &b->e[i].l0, sizeof(float)))
      return 0;
  return 1;
}

static log_ L_off, L_on, L_small;

static void check_model(const char *dir, int expect_hits) {
  coh_model_options o;
  coh_model *m = NULL;
  coh_engine_stats s_off, s_on, s_small;
  coh_err err;
  coh_model_options_default(&o);
  o.device = COH_DEVICE_CPU;
  o.intra_op_threads = 1;
  o.prefill_chunk = 32;
  if (coh_model_open(dir, &o, &m, &err)) {
    fprintf(stderr, "open %s: %s\n", dir, err.msg);
    CHECK(0);
    return;
  }
  {
    const coh_model_info *info = coh_model_get_info(m);
    size_t elem = strcmp(info->dtype, "fp16") ? 4 : 2;
    size_t block = (size_t)2 * (size_t)info->n_layers * (size_t)info->n_kv_heads * 32 *
                   (size_t)info->head_dim * elem;
    CHECK(workload(m, 0, &L_off, &s_off) == 0);
    CHECK(workload(m, (size_t)COH_PREFIX_CACHE_DEFAULT_MB << 20, &L_on, &s_on) == 0);
    /* room for two blocks and a half: eviction on every wave */
    CHECK(workload(m, block * 5 / 2, &L_small, &s_small) == 0);
  }
  CHECK(L_off.n > 0);
  CHECK(same_events(&L_off, &L_on));
  CHECK(same_events(&L_off, &L_small));
  CHECK_EQ_INT(s_off.prefix_lookups, 0);
  CHECK_EQ_INT(s_off.steps, s_on.steps);
  CHECK_EQ_INT(s_off.steps, s_small.steps);
  CHECK_EQ_INT(s_off.prefill_runs, s_on.prefill_runs); /* loaded chunks count as chunks */
  if (expect_hits) {
    CHECK_EQ_INT(s_on.prefill_continues, 1);
    CHECK(s_on.prefix_hits >= 10);
    CHECK_EQ_INT(s_on.prefix_hit_tokens, 32 * s_on.prefix_hits);
    CHECK_EQ_INT(s_on.prefix_evictions, 0);
    CHECK(s_on.ort_runs + s_on.prefix_hits == s_off.ort_runs);
    CHECK(s_small.prefix_evictions > 0);
    CHECK(s_small.prefix_peak_bytes <= s_small.prefix_budget);
    CHECK(s_small.prefix_hits < s_on.prefix_hits);
  } else {
    /* cannot continue a prefill: every prompt runs whole, nothing is cached */
    CHECK_EQ_INT(s_on.prefill_continues, 0);
    CHECK_EQ_INT(s_on.prefix_lookups, 0);
    CHECK_EQ_INT(s_on.prefix_inserts, 0);
  }
  fprintf(stderr, "  %s: off %llu runs; on %llu hits of %llu lookups; small %llu hits, %llu evicted\n",
          dir, (unsigned long long)s_off.ort_runs, (unsigned long long)s_on.prefix_hits,
          (unsigned long long)s_on.prefix_lookups, (unsigned long long)s_small.prefix_hits,
          (unsigned long long)s_small.prefix_evictions);
  coh_model_close(m);
}

static void test_engine_same_bits(void) {
  check_model(fixture("llama-long-plain-fp32"), 1);
  check_model(fixture("llama-long-gqa-fp32"), 1);
  check_model(fixture("llama-long-plain-fp16"), 1);
  check_model(fixture("llama-long-optimum-fp32"), 1);
  check_model(fixture("llama-tiny-gqa-int4"), 1);
}

static void test_engine_genai_export(void) {
  check_model(COH_TEST_DATA "/models/ortgenai-tiny-llama-fp16", 0);
}

static void test_set_after_submit(void) {
  coh_model *m = open_model(fixture("llama-tiny-plain-fp32"));
  coh_engine *e = NULL;
  coh_request r;
  int32_t p[3] = {5, 6, 7};
  uint64_t id;
  coh_err err;
  REQUIRE(m != NULL);
  REQUIRE(coh_engine_new(m, 1, &e, &err) == 0);
  coh_request_default(&r);
  r.prompt = p;
  r.n_prompt = 3;
  REQUIRE(coh_engine_submit(e, &r, &id, &err) == 0);
  CHECK_EQ_INT(coh_engine_set_prefix_cache(e, 0, &err), COH_ESTATE);
  CHECK(strstr(err.msg, "first request") != NULL);
  coh_engine_free(e);
  coh_model_close(m);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_exact_keys);
  RUN(test_bound_and_lru);
  RUN(test_ties_oldest_first);
  RUN(test_leaves_pins_wants);
  RUN(test_too_small);
  RUN(test_engine_same_bits);
  RUN(test_engine_genai_export);
  RUN(test_set_after_submit);
  return TEST_MAIN_END();
}
