/*
 * test_agent.c — the agent runtime: module validation, the compile cache,
 * every trap kind, fuel determinism, caps, host pointer validation,
 * snapshots (and their independence from the toolchain), a host failure abandoning a call (coh_agent_host_fail), and
 * many agents trapping concurrently on several threads, and fixed-width
 * SIMD (validated, metered; refused by a wasm2c without SIMD).
 *
 * Modules come from ${COH_BUILD_DIR}/agents (built by the `agents` target
 * from the C agents in agents/ and the .wat files in agents/testmods).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_int.h" /* coh__wasm_instrument: the SIMD rewrite */
#include "cohort/agent.h"
#include "test.h"

/* REQUIRE evaluates its expression twice: evaluate side effects once. */
#define REQUIRE_OK(expr)              \
  do {                                \
    int rq__rc = (expr);              \
    REQUIRE(rq__rc == COH_OK);        \
  } while (0)

static char cache_dir[256];
static coh_agent_rt *rt;

static void rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[1024];
  if (d == NULL) return;
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
      rm_tree(p);
    else
      unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static const char *mod_path(const char *name) {
  static _Thread_local char buf[1024];
  const char *b = getenv("COH_BUILD_DIR");
  snprintf(buf, sizeof buf, "%s/agents/%s.wasm", b ? b : "build", name);
  return buf;
}

static coh_module *load(const char *name) {
  coh_module *m = NULL;
  coh_err err;
  coh_err_clear(&err);
  if (coh_module_load_file(rt, mod_path(name), &m, &err) != COH_OK)
    fprintf(stderr, "load %s: %s\n", name, err.msg);
  return m;
}

/* A host that records emitted output. */
typedef struct rec {
  char out[4096];
  size_t len;
  char sent_to[64];
  char log[1024];
  int nlog;
} rec;

static void rec_emit(void *ud, coh_agent *a, const uint8_t *d, size_t n) {
  rec *r = ud;
  (void)a;
  if (r->len + n + 1 < sizeof r->out) {
    memcpy(r->out + r->len, d, n);
    r->len += n;
    r->out[r->len++] = '|';
    r->out[r->len] = '\0';
  }
}
static int32_t rec_send(void *ud, coh_agent *a, const char *to, size_t tl,
                        const uint8_t *m, size_t ml) {
  rec *r = ud;
  (void)a;
  (void)m;
  (void)ml;
  snprintf(r->sent_to, sizeof r->sent_to, "%.*s", (int)tl, to);
  return 0;
}
static void rec_log(void *ud, coh_agent *a, int level, const char *m,
                    size_t n) {
  rec *r = ud;
  (void)a;
  (void)level;
  r->nlog++;
  snprintf(r->log, sizeof r->log, "%.*s", (int)n, m);
}

static const coh_agent_host rec_host = {rec_emit, rec_send, rec_log, NULL,
                                        NULL,     NULL,     NULL,    NULL,
                                        NULL,     NULL};

/* ---- validation ------------------------------------------------------------ */

static int load_bytes(const void *b, size_t n, coh_err *err) {
  coh_module *m = NULL;
  int rc = coh_module_load(rt, b, n, &m, err);
  coh_module_free(m);
  return rc;
}

static void test_not_wasm(void) {
  coh_err err;
  static const uint8_t v2[] = {0, 'a', 's', 'm', 2, 0, 0, 0};
  /* header then a section whose size runs past the end */
  static const uint8_t trunc[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 0x7f, 0};
  /* type section with a count whose LEB128 is 6 bytes long */
  static const uint8_t leb[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 6,
                                0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
  /* sections out of order: memory (5) before type (1) */
  static const uint8_t order[] = {0, 'a', 's', 'm', 1, 0, 0, 0,
                                  5, 1, 0, 1, 1, 0};
  CHECK_EQ_INT(load_bytes("hello, world", 12, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "not a WebAssembly module") != NULL);
  CHECK_EQ_INT(load_bytes("", 0, &err), COH_EFORMAT);
  CHECK_EQ_INT(load_bytes(v2, sizeof v2, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "version 2") != NULL);
  CHECK_EQ_INT(load_bytes(trunc, sizeof trunc, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "past the end") != NULL);
  CHECK_EQ_INT(load_bytes(leb, sizeof leb, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "LEB128") != NULL);
  CHECK_EQ_INT(load_bytes(order, sizeof order, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "out of order") != NULL);
  /* valid header, no exports */
  CHECK_EQ_INT(load_bytes(v2, 4, &err), COH_EFORMAT);
  {
    static const uint8_t empty[] = {0, 'a', 's', 'm', 1, 0, 0, 0};
    CHECK_EQ_INT(load_bytes(empty, sizeof empty, &err), COH_EUNSUPPORTED);
    CHECK(strstr(err.msg, "no exports") != NULL);
  }
}

static void test_unknown_import(void) {
  coh_module *m = NULL;
  coh_err err;
  CHECK_EQ_INT(coh_module_load_file(rt, mod_path("unknown_import"), &m, &err),
               COH_EUNSUPPORTED);
  CHECK(strstr(err.msg, "'env'.'system'") != NULL);
  CHECK(strstr(err.msg, "unknown_import.wasm") != NULL);
  CHECK_EQ_INT(coh_module_load_file(rt, mod_path("bad_signature"), &m, &err),
               COH_EUNSUPPORTED);
  CHECK(strstr(err.msg, "'cohort'.'log'") != NULL);
  CHECK(m == NULL);
}

/* Every malformed variant of a valid module: each truncation must fail
 * cleanly (never crash, never succeed with garbage). */
static void test_truncations(void) {
  FILE *f = fopen(mod_path("hostile"), "rb");
  uint8_t buf[4096];
  size_t n, cut;
  coh_err err;
  REQUIRE(f != NULL);
  n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  REQUIRE(n > 100);
  for (cut = 0; cut < n; cut += 7) {
    int rc = load_bytes(buf, cut, &err);
    CHECK(rc == COH_EFORMAT || rc == COH_EUNSUPPORTED || rc == COH_ECOMPILE);
  }
  /* flipped bytes: each variant is refused with a known code and a
   * message, or loads; never a crash, never another code.  Many flips
   * (section ids, sizes, opcodes) must be refused: a loader that accepted
   * everything would fail here. */
  {
    int refused = 0, loaded = 0;
    for (cut = 8; cut < n; cut += 13) {
      uint8_t save = buf[cut];
      int rc;
      buf[cut] ^= 0xff;
      coh_err_clear(&err);
      rc = load_bytes(buf, n, &err);
      buf[cut] = save;
      if (rc == COH_OK) {
        loaded++;
        continue;
      }
      refused++;
      CHECK(rc == COH_EFORMAT || rc == COH_EUNSUPPORTED || rc == COH_ECOMPILE);
      CHECK(err.msg[0] != '\0');
    }
    CHECK(refused > (refused + loaded) / 2);
    /* the unflipped module still loads */
    CHECK_EQ_INT(load_bytes(buf, n, &err), COH_OK);
  }
}

/* ---- SDK payload arena ---------------------------------------------------------- */

/* A host that checks each emit against the payload body it expects. */
typedef struct expect {
  const uint8_t *body;
  size_t len;
  int emits, matches;
} expect;

static void expect_emit(void *ud, coh_agent *a, const uint8_t *d, size_t n) {
  expect *e = ud;
  (void)a;
  e->emits++;
  e->matches += n == e->len && (n == 0 || memcmp(d, e->body, n) == 0);
}

static const coh_agent_host expect_host = {expect_emit, NULL, NULL, NULL, NULL,
                                           NULL,        NULL, NULL, NULL, NULL};

/* The SDK places a payload of up to COHORT_ARENA_BYTES (16 KiB) in a
 * static arena and larger ones in malloc'd memory: the echo agent (SDK)
 * sees the same bytes on both sides of the limit and when they alternate,
 * and a long run of payloads does not grow its memory (the arena is reused,
 * the malloc'd buffers freed). */
static void arena_round(const char *mod, size_t *mem_after, int32_t *rcs,
                        int nrc);

static void test_sdk_arena(void) {
  size_t mem_a = 0, mem_m = 0;
  int32_t rc_a[36], rc_m[36];
  arena_round("echo", &mem_a, NULL, 0);
  /* the same agent with the arena off: the same results */
  arena_round("sdk_step", &mem_a, rc_a, 36);
  arena_round("sdk_step_malloc", &mem_m, rc_m, 36);
  CHECK(memcmp(rc_a, rc_m, sizeof rc_a) == 0);
}

/* Three rounds of payloads of every size around the arena's limit through
 * agent `mod`, each checked against what it emits; *mem_after: memory size
 * after the first round (which must not change in the next two); rcs: the
 * handler's return values. */
static void arena_round(const char *mod, size_t *mem_after, int32_t *rcs,
                        int nrc) {
  static const size_t sizes[] = {0,     1,     7,     100,   16383, 16384,
                                 16385, 70000, 5,     16384, 200000, 3};
  coh_module *m = load(mod);
  coh_agent *a = NULL;
  coh_agent_result r;
  coh_err err;
  expect e;
  uint8_t *payload;
  size_t i, mem0 = 0;
  const size_t max = 200000 + 2;
  REQUIRE(m != NULL);
  payload = malloc(max);
  REQUIRE(payload != NULL);
  memset(&e, 0, sizeof e);
  REQUIRE_OK(coh_agent_new(m, NULL, &expect_host, &e, &a, &err));
  CHECK_EQ_INT(coh_agent_init(a, "{}", 2, &r), COH_OK);
  for (i = 0; i < 3 * sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])], j;
    payload[0] = '\0'; /* empty header: the whole rest is the body */
    for (j = 1; j < n + 1; j++) payload[j] = (uint8_t)('a' + (i + j) % 26);
    e.body = payload + 1;
    e.len = n;
    CHECK_EQ_INT(coh_agent_step(a, COH_ABI_EV_MESSAGE, payload, n + 1, &r),
                 COH_OK);
    CHECK_EQ_INT(r.trap, COH_TRAP_NONE);
    if ((int)i < nrc) rcs[i] = r.rc;
    if (i == sizeof sizes / sizeof sizes[0] - 1) mem0 = coh_agent_memory_size(a);
  }
  *mem_after = mem0;
  CHECK_EQ_INT(e.emits, (int)(3 * sizeof sizes / sizeof sizes[0]));
  CHECK_EQ_INT(e.matches, e.emits);
  /* after one round of every size, two more rounds grew nothing */
  CHECK(mem0 > 0 && coh_agent_memory_size(a) == mem0);
  coh_agent_free(a);
  free(payload);
  coh_module_free(m);
}

/* ---- SIMD ---------------------------------------------------------------------- */

/* An agent module whose cohort_on_event body (no locals) is `body`; its
 * cohort_alloc returns 0.  Returns the module's length in out. */
static size_t simd_module(const uint8_t *body, size_t blen, uint8_t *out) {
  static const uint8_t head[] = {
      0, 'a', 's', 'm', 1, 0, 0, 0,
      1, 13, 2, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 3, 0x7f, 0x7f, 0x7f, 1, 0x7f,
      3, 3, 2, 0, 1,
      5, 3, 1, 0, 1,
      7, 43, 3,
      6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0,
      12, 'c', 'o', 'h', 'o', 'r', 't', '_', 'a', 'l', 'l', 'o', 'c', 0, 0,
      15, 'c', 'o', 'h', 'o', 'r', 't', '_', 'o', 'n', '_', 'e', 'v', 'e',
      'n', 't', 0, 1};
  size_t n = sizeof head;
  memcpy(out, head, n);
  out[n++] = 10;                        /* code section */
  out[n++] = (uint8_t)(1 + 5 + 1 + 1 + blen + 1);
  out[n++] = 2;
  out[n++] = 4; out[n++] = 0; out[n++] = 0x41; out[n++] = 0; out[n++] = 0x0b;
  out[n++] = (uint8_t)(1 + blen + 1);
  out[n++] = 0;                         /* no locals */
  memcpy(out + n, body, blen);
  n += blen;
  out[n++] = 0x0b;
  return n;
}

/* Fuel charges in a rewritten module: `i64.const 1; i64.sub; local.tee`. */
static int count_charges(const coh__buf *b) {
  static const uint8_t pat[] = {0x42, 0x01, 0x7d, 0x22};
  size_t i;
  int n = 0;
  for (i = 0; i + sizeof pat <= b->n; i++)
    n += memcmp((const uint8_t *)b->p + i, pat, sizeof pat) == 0;
  return n;
}

/* Fixed-width SIMD: simd_ops.wasm (v128 locals, every kind of SIMD
 * immediate, two loops) is accepted by the validator, metered like other
 * code (a charge at entry and at each loop header, and a valid module
 * afterwards), and compiled only by a wasm2c that translates SIMD: Debian
 * 12's (wabt 1.0.32) does not, and the load is refused naming the reason
 * rather than crashing wasm2c.  Malformed and relaxed SIMD are refused with
 * the opcode and the offset. */
static void test_simd(void) {
  FILE *f = fopen(mod_path("simd_ops"), "rb");
  uint8_t buf[4096], mod[256];
  size_t n;
  coh__wasm_info info;
  coh__buf out = {0};
  coh_err err;
  coh_module *m = NULL;
  char path[600], cmd[800];
  int rc;
  REQUIRE(f != NULL);
  n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  REQUIRE(n > 100);
  /* validated and metered */
  REQUIRE_OK(coh__wasm_instrument(buf, n, 1, &info, &out, &err));
  CHECK(info.uses_simd == 1);
  /* the entries of cohort_alloc and cohort_on_event, its two loop headers */
  CHECK_EQ_INT(count_charges(&out), 4);
  snprintf(path, sizeof path, "%s/simd_fuel.wasm", cache_dir);
  f = fopen(path, "wb");
  REQUIRE(f != NULL);
  CHECK(fwrite(out.p, 1, out.n, f) == out.n);
  fclose(f);
  snprintf(cmd, sizeof cmd, "wasm-validate '%s'", path);
  CHECK_EQ_INT(system(cmd), 0); /* the rewrite is a valid SIMD module */
  coh__buf_free(&out);
  coh__wasm_info_free(&info);
  REQUIRE_OK(coh__wasm_instrument(buf, n, 0, &info, &out, &err));
  CHECK_EQ_INT(count_charges(&out), 0);
  coh__buf_free(&out);
  coh__wasm_info_free(&info);
  /* real compiler output: the kernel as clang -msimd128 vectorises it */
  {
    static uint8_t kb[1 << 20];
    size_t kn;
    f = fopen(mod_path("bench_kernel_simd"), "rb");
    REQUIRE(f != NULL);
    kn = fread(kb, 1, sizeof kb, f);
    fclose(f);
    REQUIRE(kn > 100);
    REQUIRE_OK(coh__wasm_instrument(kb, kn, 1, &info, &out, &err));
    CHECK(info.uses_simd == 1);
    CHECK(count_charges(&out) > 3);
    snprintf(path, sizeof path, "%s/kernel_simd_fuel.wasm", cache_dir);
    f = fopen(path, "wb");
    REQUIRE(f != NULL);
    CHECK(fwrite(out.p, 1, out.n, f) == out.n);
    fclose(f);
    snprintf(cmd, sizeof cmd, "wasm-validate '%s'", path);
    CHECK_EQ_INT(system(cmd), 0);
    coh__buf_free(&out);
    coh__wasm_info_free(&info);
    /* the scalar build of the same kernel uses no SIMD */
    f = fopen(mod_path("bench_kernel"), "rb");
    REQUIRE(f != NULL);
    kn = fread(kb, 1, sizeof kb, f);
    fclose(f);
    REQUIRE_OK(coh__wasm_instrument(kb, kn, 1, &info, &out, &err));
    CHECK(info.uses_simd == 0);
    coh__buf_free(&out);
    coh__wasm_info_free(&info);
  }
  /* a module without SIMD is not marked */
  {
    static const uint8_t plain[] = {0x41, 0x07};
    size_t mn = simd_module(plain, sizeof plain, mod);
    rc = coh__wasm_instrument(mod, mn, 1, &info, &out, &err);
    if (rc) fprintf(stderr, "plain module: %s\n", err.msg);
    REQUIRE(rc == COH_OK);
    CHECK(info.uses_simd == 0);
    coh__buf_free(&out);
    coh__wasm_info_free(&info);
  }
  /* compiled: refused by this wasm2c, which has no SIMD output */
  coh_err_clear(&err);
  rc = coh_module_load_file(rt, mod_path("simd_ops"), &m, &err);
  CHECK_EQ_INT(rc, COH_EUNSUPPORTED);
  CHECK(strstr(err.msg, "uses WebAssembly SIMD") != NULL);
  CHECK(strstr(err.msg, "wasm2c") != NULL);
  CHECK(strstr(err.msg, "simd_ops.wasm") != NULL);
  CHECK(m == NULL);
  if (rc == COH_OK) {
    fprintf(stderr, "this wasm2c translates SIMD: extend test_simd to run "
                    "simd_ops.wasm against its scalar result\n");
    coh_module_free(m);
  }
  /* malformed or unsupported SIMD: the code, the opcode, the offset */
  {
    static const struct {
      uint8_t body[24];
      size_t len;
      int code;
      const char *msg;
    } bad[] = {
        {{0xfd, 0x9a, 0x01}, 3, COH_EFORMAT, "unknown SIMD opcode 0xfd 0x9a"},
        {{0xfd, 0x94, 0x02}, 3, COH_EFORMAT, "unknown SIMD opcode 0xfd 0x114"},
        {{0x41, 0, 0xfd, 0x80, 0x02}, 5, COH_EUNSUPPORTED,
         "relaxed SIMD opcode 0xfd 0x100 (i8x16.relaxed_swizzle)"},
        {{0x41, 0, 0xfd, 0x85, 0x02}, 5, COH_EUNSUPPORTED,
         "relaxed SIMD opcode 0xfd 0x105 (f32x4.relaxed_madd)"},
        {{0x41, 0, 0xfd, 0x11, 0xfd, 0x1b, 4}, 7, COH_EFORMAT,
         "0xfd 0x1b names lane 4 of 4"},
        {{0x41, 0, 0x41, 0, 0xfd, 0x54, 0, 0, 16}, 9, COH_EFORMAT,
         "0xfd 0x54 names lane 16 of 16"},
        {{0x41, 0, 0xfd, 0x00, 5, 0}, 6, COH_EFORMAT,
         "alignment 2^5, above its natural 2^4"},
        {{0xfd, 0x0d, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 32},
         18, COH_EFORMAT, "i8x16.shuffle lane index 32"},
        {{0xfd, 0x0c, 1, 2, 3}, 5, COH_EFORMAT, "offset 0x"},
        {{0xfd, 0xff, 0xff, 0xff, 0xff, 0x7f}, 6, COH_EFORMAT,
         "LEB128 value overflows 32 bits"},
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      size_t mn = simd_module(bad[i].body, bad[i].len, mod);
      coh_err_clear(&err);
      rc = load_bytes(mod, mn, &err);
      CHECK_EQ_INT(rc, bad[i].code);
      CHECK(strstr(err.msg, bad[i].msg) != NULL);
      CHECK(strstr(err.msg, "code section, offset 0x") != NULL);
      if (rc != bad[i].code || strstr(err.msg, bad[i].msg) == NULL)
        fprintf(stderr, "case %zu: %s\n", i, err.msg);
    }
  }
  /* truncations of the SIMD module: refused with a known code, never a
   * crash (the untruncated module reaches the wasm2c refusal above) */
  for (n = n - 1; n > 8; n -= 3) {
    rc = load_bytes(buf, n, &err);
    CHECK(rc == COH_EFORMAT || rc == COH_EUNSUPPORTED);
  }
}

/* ---- traps ------------------------------------------------------------------ */

static int step_k(coh_agent *a, uint32_t kind, const void *p, size_t n,
                  coh_agent_result *r) {
  return coh_agent_step(a, kind, p, n, r);
}

static void test_traps(void) {
  coh_module *m = load("hostile");
  coh_agent *a = NULL;
  coh_agent_opts o;
  coh_agent_result r;
  coh_err err;
  uint32_t lim = 100;
  static const struct {
    uint32_t kind;
    coh_trap_kind want;
  } cases[] = {
      {1, COH_TRAP_OOB},
      {2, COH_TRAP_UNREACHABLE},
      {3, COH_TRAP_DIV_BY_ZERO},
      {4, COH_TRAP_STACK_EXHAUSTED},
      {5, COH_TRAP_CALL_INDIRECT},
      {6, COH_TRAP_CALL_INDIRECT},
      {7, COH_TRAP_FUEL},
      {9, COH_TRAP_BAD_POINTER},
      {14, COH_TRAP_OOB},
  };
  size_t i;
  REQUIRE(m != NULL);
  coh_agent_opts_default(&o);
  o.fuel = 100000;
  REQUIRE_OK(coh_agent_new(m, &o, NULL, NULL, &a, &err));
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = step_k(a, cases[i].kind, NULL, 0, &r);
    CHECK_EQ_INT(rc, COH_ETRAP);
    CHECK_STR(coh_trap_name(r.trap), coh_trap_name(cases[i].want));
    CHECK(r.message[0] != '\0');
    /* the agent is intact after each trap */
    CHECK_EQ_INT(step_k(a, 12, &lim, 4, &r), COH_OK);
    CHECK_EQ_INT(r.rc, 328350);
    CHECK_EQ_INT(r.trap, COH_TRAP_NONE);
  }
  /* signed division overflow: payload length 0 → divisor -1 */
  CHECK_EQ_INT(step_k(a, 10, NULL, 0, &r), COH_ETRAP);
  CHECK_EQ_INT(r.trap, COH_TRAP_INT_OVERFLOW);
  CHECK_EQ_INT(step_k(a, 13, NULL, 0, &r), COH_OK);
  CHECK_EQ_INT(r.rc, 42);
  CHECK(strstr(coh_trap_name(COH_TRAP_BAD_POINTER), "bad_pointer") != NULL);
  coh_agent_free(a);
  coh_module_free(m);
}

static void test_bad_pointer_message(void) {
  coh_module *m = load("hostile");
  coh_agent *a = NULL;
  coh_agent_result r;
  coh_err err;
  rec rc;
  memset(&rc, 0, sizeof rc);
  REQUIRE(m != NULL);
  REQUIRE_OK(coh_agent_new(m, NULL, &rec_host, &rc, &a, &err));
  CHECK_EQ_INT(step_k(a, 9, NULL, 0, &r), COH_ETRAP);
  CHECK_EQ_INT(r.trap, COH_TRAP_BAD_POINTER);
  CHECK(strstr(r.message, "0x7ffffff0") != NULL);
  CHECK_EQ_INT(rc.len, 0); /* the host callback never ran */
  coh_agent_free(a);
  coh_module_free(m);
}

/* fuel_count(m, 5000), derived in test_fuel_deterministic */
#define FUEL_COUNT_5000 4998

static uint32_t fuel_count(coh_module *m, uint64_t fuel) {
  coh_agent *a = NULL;
  coh_agent_opts o;
  coh_agent_result r;
  coh_err err;
  uint32_t v = 0;
  coh_agent_opts_default(&o);
  o.fuel = fuel;
  if (coh_agent_new(m, &o, NULL, NULL, &a, &err) != COH_OK) return 0;
  if (step_k(a, 7, NULL, 0, &r) == COH_ETRAP && r.trap == COH_TRAP_FUEL &&
      r.fuel_used == fuel && step_k(a, 11, NULL, 0, &r) == COH_OK)
    v = (uint32_t)r.rc;
  coh_agent_free(a);
  return v;
}

static void test_fuel_deterministic(void) {
  coh_module *m = load("hostile");
  uint32_t c1, c2, c3;
  REQUIRE(m != NULL);
  c1 = fuel_count(m, 5000);
  c2 = fuel_count(m, 5000);
  c3 = fuel_count(m, 6000);
  CHECK(c1 > 0);
  CHECK_EQ_INT(c1, c2);
  /* one unit per loop iteration, so the difference is exact */
  CHECK_EQ_INT(c3 - c1, 1000);
  /* exact: of 5000 units, cohort_alloc's entry (an event always gets a
   * buffer, even an empty one) and cohort_on_event's entry take 2; then
   * each loop header takes 1 before its iteration's store, so 4998 headers
   * run with their stores and the next one traps */
  CHECK_EQ_INT(c1, FUEL_COUNT_5000);
  coh_module_free(m);
}

/* One event of fuel_paths.wat with budget `fuel` (0 = unlimited). */
static int fuel_path_step(coh_module *m, uint32_t kind, uint32_t n,
                          uint64_t fuel, coh_agent_result *r) {
  coh_agent *a = NULL;
  coh_agent_opts o;
  coh_err err;
  int rc;
  coh_agent_opts_default(&o);
  o.fuel = fuel;
  if (coh_agent_new(m, &o, NULL, NULL, &a, &err) != COH_OK) return -1000;
  rc = step_k(a, kind, &n, 4, r);
  coh_agent_free(a);
  return rc;
}

/* fuel_used is exact on every way out of a function (the counter is a
 * per-function local written back to the global there), and the budget
 * boundary is exact: the cost runs, one unit less traps. */
static void test_fuel_paths(void) {
  coh_module *m = load("fuel_paths");
  static const struct {
    uint32_t kind;
    uint64_t per_iter, fixed;
  } cases[] = {{1, 3, 2}, {2, 3, 2}, {3, 3, 2}, {4, 3, 2}, {5, 3, 2},
               {6, 5, 4}};
  static const uint32_t ns[] = {1, 7, 1000};
  size_t i, j;
  REQUIRE(m != NULL);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (j = 0; j < sizeof ns / sizeof ns[0]; j++) {
      coh_agent_result r;
      uint32_t n = ns[j];
      uint64_t cost = cases[i].per_iter * n + cases[i].fixed;
      int32_t rc_want = cases[i].kind == 6 ? (int32_t)(n * (n - 1))
                                           : (int32_t)n;
      int failures_before = test__failures;
      CHECK_EQ_INT(fuel_path_step(m, cases[i].kind, n, 0, &r), COH_OK);
      CHECK_EQ_INT(r.rc, rc_want);
      CHECK_EQ_INT((long long)r.fuel_used, (long long)cost);
      CHECK_EQ_INT(fuel_path_step(m, cases[i].kind, n, cost, &r), COH_OK);
      CHECK_EQ_INT((long long)r.fuel_used, (long long)cost);
      CHECK_EQ_INT(fuel_path_step(m, cases[i].kind, n, cost - 1, &r),
                   COH_ETRAP);
      CHECK_STR(coh_trap_name(r.trap), "fuel");
      CHECK_EQ_INT((long long)r.fuel_used, (long long)(cost - 1));
      /* running out in the middle (often inside a callee) */
      CHECK_EQ_INT(fuel_path_step(m, cases[i].kind, n, cost / 2, &r),
                   COH_ETRAP);
      CHECK_STR(coh_trap_name(r.trap), "fuel");
      CHECK_EQ_INT((long long)r.fuel_used, (long long)(cost / 2));
      if (test__failures != failures_before)
        fprintf(stderr, "  (fuel_paths kind %u, n %u)\n", cases[i].kind, n);
    }
  coh_module_free(m);
}

/* Fuel at loop headers, exact and bounded: hostile.wat kind 12 runs a loop
 * of payload[0..4] iterations (plus the header that exits), so fuel_used
 * grows by exactly one unit per iteration.  Runs first: the later tests run
 * endless loops that only fuel stops, so if loop headers were not charged
 * (say, one charge before the loop) they would hang instead of failing. */
static int fuel_loop_headers_exact(void) {
  coh_module *m = load("hostile");
  uint64_t used[3];
  static const uint32_t ns[3] = {0, 1, 1000};
  int i, ok = 1;
  if (m == NULL) return 0;
  for (i = 0; i < 3; i++) {
    coh_agent *a = NULL;
    coh_agent_opts o;
    coh_agent_result r;
    coh_err err;
    coh_agent_opts_default(&o);
    o.fuel = 1000000;
    used[i] = 0;
    if (coh_agent_new(m, &o, NULL, NULL, &a, &err) != COH_OK) {
      ok = 0;
      break;
    }
    if (step_k(a, 12, &ns[i], 4, &r) == COH_OK) used[i] = r.fuel_used;
    coh_agent_free(a);
  }
  coh_module_free(m);
  if (!ok) return 0;
  CHECK(used[0] > 0);
  CHECK_EQ_INT((long long)(used[1] - used[0]), 1);
  CHECK_EQ_INT((long long)(used[2] - used[0]), 1000);
  return used[0] > 0 && used[1] - used[0] == 1 && used[2] - used[0] == 1000;
}

static void test_fuel_loop_headers(void) { CHECK(fuel_loop_headers_exact()); }

static void test_memory_cap(void) {
  coh_module *m = load("hostile");
  coh_module *big = load("big_memory");
  coh_agent *a = NULL;
  coh_agent_opts o;
  coh_agent_result r;
  coh_err err;
  REQUIRE(m != NULL && big != NULL);
  coh_agent_opts_default(&o);
  o.max_memory_pages = 10;
  REQUIRE_OK(coh_agent_new(m, &o, NULL, NULL, &a, &err));
  CHECK_EQ_INT(step_k(a, 8, NULL, 0, &r), COH_OK);
  CHECK_EQ_INT(r.rc, 10);
  CHECK_EQ_INT(coh_agent_memory_size(a), 10 * 65536);
  coh_agent_free(a);
  /* the module's own maximum (100) applies under a larger cap */
  o.max_memory_pages = 1000;
  REQUIRE_OK(coh_agent_new(m, &o, NULL, NULL, &a, &err));
  CHECK_EQ_INT(step_k(a, 8, NULL, 0, &r), COH_OK);
  CHECK_EQ_INT(r.rc, 100);
  coh_agent_free(a);
  a = NULL;
  coh_agent_opts_default(&o);
  CHECK_EQ_INT(coh_agent_new(big, &o, NULL, NULL, &a, &err), COH_ETRAP);
  CHECK(strstr(err.msg, "exceeds the cap") != NULL);
  CHECK(a == NULL);
  o.max_memory_pages = 2000;
  CHECK_EQ_INT(coh_agent_new(big, &o, NULL, NULL, &a, &err), COH_OK);
  coh_agent_free(a);
  coh_module_free(m);
  coh_module_free(big);
}

/* ---- SDK agents, snapshots ------------------------------------------------------ */

static void test_echo(void) {
  coh_module *m = load("echo");
  coh_agent *a = NULL;
  coh_agent_result r;
  coh_err err;
  rec rc;
  static const char ev[] = "alice\0hello there";
  memset(&rc, 0, sizeof rc);
  REQUIRE(m != NULL);
  REQUIRE_OK(coh_agent_new(m, NULL, &rec_host, &rc, &a, &err));
  CHECK_EQ_INT(coh_agent_init(a, "{}", 2, &r), COH_OK);
  CHECK_EQ_INT(step_k(a, COH_ABI_EV_MESSAGE, ev, sizeof ev - 1, &r), COH_OK);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_STR(rc.out, "hello there|");
  CHECK_STR(rc.sent_to, "alice");
  CHECK_STR(rc.log, "echoed 11 bytes\n");
  coh_agent_free(a);
  coh_module_free(m);
}

/* A host that cannot do what the agent asks (out of memory) abandons the
 * call: the agent sees no result and runs no further (echo logs after its
 * send: no log), the step returns the host's code with its message and no
 * trap, and the agent refuses later calls and checkpoints. */
static int32_t failing_send(void *ud, coh_agent *a, const char *to, size_t tl,
                            const uint8_t *m, size_t ml) {
  rec_send(ud, a, to, tl, m, ml);
  coh_agent_host_fail(a, COH_ENOMEM, "out of memory in the host call send");
  coh_agent_host_fail(a, COH_EIO, "a second failure is not kept");
  return 0;
}

static void test_host_fail(void) {
  coh_module *m = load("echo");
  coh_agent *a = NULL;
  coh_agent_result r;
  coh_agent_host h = rec_host;
  coh_err err;
  rec rc;
  uint8_t *snap = NULL;
  size_t n = 0;
  static const char ev[] = "alice\0hello there";
  memset(&rc, 0, sizeof rc);
  h.send = failing_send;
  REQUIRE(m != NULL);
  REQUIRE_OK(coh_agent_new(m, NULL, &h, &rc, &a, &err));
  coh_agent_host_fail(a, COH_ENOMEM, "outside a call: ignored");
  CHECK_EQ_INT(coh_agent_init(a, "{}", 2, &r), COH_OK);
  rc.nlog = 0;
  CHECK_EQ_INT(step_k(a, COH_ABI_EV_MESSAGE, ev, sizeof ev - 1, &r), COH_ENOMEM);
  CHECK_EQ_INT(r.trap, COH_TRAP_NONE);
  CHECK_STR(r.message, "out of memory in the host call send");
  CHECK_STR(rc.out, "hello there|");
  CHECK_STR(rc.sent_to, "alice");
  CHECK_EQ_INT(rc.nlog, 0);
  CHECK_EQ_INT(step_k(a, COH_ABI_EV_MESSAGE, ev, sizeof ev - 1, &r), COH_ESTATE);
  CHECK(strstr(r.message, "abandoned by a host failure") != NULL);
  CHECK_EQ_INT(rc.nlog, 0);
  CHECK_EQ_INT(coh_agent_checkpoint(a, &snap, &n, &err), COH_ESTATE);
  CHECK(snap == NULL);
  coh_agent_free(a);
  coh_module_free(m);
}

/* A counter agent (recording into rc) after init and n "tick" events;
 * NULL on failure. */
static coh_agent *counter_stepped(coh_module *m, const coh_agent_opts *o, rec *rc, int n) {
  static const char ev[] = "x\0tick";
  coh_agent *a = NULL;
  coh_agent_result r;
  coh_err err;
  int i;
  if (coh_agent_new(m, o, &rec_host, rc, &a, &err) != COH_OK) return NULL;
  CHECK_EQ_INT(coh_agent_init(a, NULL, 0, &r), COH_OK);
  for (i = 0; i < n; i++) step_k(a, 1, ev, sizeof ev - 1, &r);
  return a;
}

static void test_snapshot(void) {
  coh_module *m = load("counter");
  coh_agent *a = NULL, *b = NULL;
  coh_agent_opts o;
  coh_agent_result r;
  coh_err err;
  rec ra, rb;
  uint8_t *snap = NULL, *snap2 = NULL;
  size_t n = 0, n2 = 0;
  int i;
  static const char ev[] = "x\0tick";
  static const char tot[] = "x\0total";
  memset(&ra, 0, sizeof ra);
  memset(&rb, 0, sizeof rb);
  REQUIRE(m != NULL);
  coh_agent_opts_default(&o);
  o.seed = 77;
  a = counter_stepped(m, &o, &ra, 3);
  REQUIRE(a != NULL);
  REQUIRE_OK(coh_agent_checkpoint(a, &snap, &n, &err));
  REQUIRE_OK(coh_agent_restore(m, &o, &rec_host, &rb, snap, n, &b, &err));
  ra.len = 0;
  ra.out[0] = '\0';
  for (i = 0; i < 4; i++) {
    step_k(a, 1, ev, sizeof ev - 1, &r);
    step_k(b, 1, ev, sizeof ev - 1, &r);
  }
  step_k(a, 1, tot, sizeof tot - 1, &r);
  step_k(b, 1, tot, sizeof tot - 1, &r);
  CHECK(ra.len > 0);
  CHECK_STR(ra.out, rb.out);
  CHECK(strstr(ra.out, "count=7") != NULL);
  CHECK(strstr(ra.out, "total=28") != NULL);
  /* both agents are now byte-identical */
  REQUIRE_OK(coh_agent_checkpoint(a, &snap2, &n2, &err));
  coh_agent_buf_free(snap);
  REQUIRE_OK(coh_agent_checkpoint(b, &snap, &n, &err));
  CHECK(n == n2 && memcmp(snap, snap2, n) == 0);
  /* damaged checkpoints are refused */
  coh_agent_free(b);
  b = NULL;
  CHECK_EQ_INT(coh_agent_restore(m, &o, NULL, NULL, snap, n / 2, &b, &err),
               COH_EFORMAT);
  snap[0] ^= 1;
  CHECK_EQ_INT(coh_agent_restore(m, &o, NULL, NULL, snap, n, &b, &err),
               COH_EFORMAT);
  CHECK(b == NULL);
  coh_agent_buf_free(snap);
  coh_agent_buf_free(snap2);
  coh_agent_free(a);
  coh_module_free(m);
}

/* COHSNAP3 stores only the nonzero 4 KiB pages of linear memory behind a
 * page map: the snapshot is much smaller than the memory, it restores to the
 * same memory (the restored agent's own snapshot is byte-identical), a page
 * instantiation wrote but the agent zeroed stays zero, and every malformed
 * map is refused: each truncation, a bit past the memory, a stored page of
 * zeros (not canonical), trailing bytes. */
static void test_snapshot_pages(void) {
  coh_module *m = load("counter");
  coh_agent *a = NULL, *b = NULL;
  coh_agent_opts o;
  coh_err err;
  rec ra, rb;
  uint8_t *snap = NULL, *snap2 = NULL, *bad = NULL;
  size_t n = 0, n2 = 0, cut, nb, first = 0, k;
  uint32_t pages;
  int refused = 0, tries = 0;
  memset(&ra, 0, sizeof ra);
  memset(&rb, 0, sizeof rb);
  REQUIRE(m != NULL);
  coh_agent_opts_default(&o);
  o.seed = 9;
  a = counter_stepped(m, &o, &ra, 5);
  REQUIRE(a != NULL);
  REQUIRE_OK(coh_agent_checkpoint(a, &snap, &n, &err));
  CHECK(memcmp(snap, "COHSNAP3", 8) == 0);
  /* header: magic 8, identity 64, exited 4, code 4, rng 8, pages 4 */
  memcpy(&pages, snap + 88, 4);
  nb = ((size_t)pages * 16 + 7) / 8;
  CHECK(pages > 0 && n < (size_t)pages << 16);
  CHECK(coh_agent_memory_size(a) == (size_t)pages << 16);
  fprintf(stderr, "  snapshot %zu bytes for %u KiB of memory\n", n, pages * 64);
  REQUIRE_OK(coh_agent_restore(m, &o, &rec_host, &rb, snap, n, &b, &err));
  REQUIRE_OK(coh_agent_checkpoint(b, &snap2, &n2, &err));
  CHECK(n == n2 && memcmp(snap, snap2, n) == 0);
  coh_agent_free(b);
  b = NULL;
  /* every truncation is refused (none crashes) */
  for (cut = 0; cut < n; cut += cut < 200 ? 1 : 997) {
    tries++;
    refused += coh_agent_restore(m, &o, NULL, NULL, snap, cut, &b, &err) == COH_EFORMAT;
    coh_agent_free(b);
    b = NULL;
  }
  CHECK_EQ_INT(refused, tries);
  bad = malloc(n + 1);
  REQUIRE(bad != NULL);
  /* a bit past the memory (only when the map has spare bits) or trailing bytes */
  memcpy(bad, snap, n);
  bad[n] = 0;
  CHECK_EQ_INT(coh_agent_restore(m, &o, NULL, NULL, bad, n + 1, &b, &err), COH_EFORMAT);
  CHECK(b == NULL);
  /* the first stored page, zeroed: a non-canonical snapshot */
  for (k = 0; k < (size_t)pages * 16; k++)
    if (snap[92 + k / 8] >> (k % 8) & 1) break;
  REQUIRE(k < (size_t)pages * 16);
  first = 92 + nb;
  memcpy(bad, snap, n);
  memset(bad + first, 0, 4096);
  CHECK_EQ_INT(coh_agent_restore(m, &o, NULL, NULL, bad, n, &b, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "all zeros") != NULL);
  CHECK(b == NULL);
  /* the first stored page taken out of the map: instantiation writes that
   * page (data segments), yet the restored memory has it zero, so the
   * restored agent's own snapshot is exactly the edited one */
  memcpy(bad, snap, 92 + nb);
  bad[92 + k / 8] &= (uint8_t)~(1u << (k % 8));
  memcpy(bad + first, snap + first + 4096, n - first - 4096);
  REQUIRE_OK(coh_agent_restore(m, &o, NULL, NULL, bad, n - 4096, &b, &err));
  coh_agent_buf_free(snap2);
  snap2 = NULL;
  REQUIRE_OK(coh_agent_checkpoint(b, &snap2, &n2, &err));
  CHECK(n2 == n - 4096 && memcmp(snap2, bad, n2) == 0);
  coh_agent_free(b);
  b = NULL;
  /* a page marked present that is not there: the map no longer fits */
  memcpy(bad, snap, n);
  for (k = 0; k < (size_t)pages * 16; k++)
    if (!(bad[92 + k / 8] >> (k % 8) & 1)) break;
  REQUIRE(k < (size_t)pages * 16);
  bad[92 + k / 8] |= (uint8_t)(1u << (k % 8));
  CHECK_EQ_INT(coh_agent_restore(m, &o, NULL, NULL, bad, n, &b, &err), COH_EFORMAT);
  CHECK(b == NULL);
  free(bad);
  coh_agent_buf_free(snap);
  coh_agent_buf_free(snap2);
  coh_agent_free(a);
  coh_module_free(m);
}

/* A checkpoint does not depend on the toolchain: a runtime whose compiler
 * reports another version (a wrapper script around the real cc, as a second
 * machine with another gcc would) compiles the module under another cache
 * key, yet its agents write byte-identical checkpoints and each restores
 * the other's.  Before, the checkpoint held the cache key, and with it the
 * compiler's version string, which reached the run digest. */
static void test_snapshot_toolchain_free(void) {
  char dir[512], cc[600];
  coh_agent_rt_opts ro;
  coh_agent_rt *rt2 = NULL;
  coh_module *m1 = load("counter"), *m2 = NULL;
  coh_agent *a1 = NULL, *a2 = NULL, *b = NULL;
  coh_agent_opts o;
  coh_agent_result r;
  coh_err err;
  rec r1, r2, rb;
  uint8_t *s1 = NULL, *s2 = NULL;
  size_t n1 = 0, n2 = 0;
  FILE *f;
  int i;
  static const char ev[] = "x\0tick";
  memset(&r1, 0, sizeof r1);
  memset(&r2, 0, sizeof r2);
  memset(&rb, 0, sizeof rb);
  REQUIRE(m1 != NULL);
  snprintf(dir, sizeof dir, "%s/othercc", cache_dir);
  REQUIRE(mkdir(dir, 0700) == 0);
  snprintf(cc, sizeof cc, "%s/cc", dir);
  f = fopen(cc, "w");
  REQUIRE(f != NULL);
  fputs("#!/bin/sh\n"
        "if [ \"$1\" = --version ]; then echo 'othercc 99.1 (not gcc)'; "
        "exit 0; fi\nexec cc \"$@\"\n", f);
  fclose(f);
  REQUIRE(chmod(cc, 0700) == 0);
  memset(&ro, 0, sizeof ro);
  ro.cache_dir = dir;
  ro.cc = cc;
  REQUIRE_OK(coh_agent_rt_new(&ro, &rt2, &err));
  if (coh_module_load_file(rt2, mod_path("counter"), &m2, &err) != COH_OK)
    fprintf(stderr, "load with the wrapper cc: %s\n", err.msg);
  REQUIRE(m2 != NULL);
  CHECK(coh_module_from_cache(m2) == 0);
  /* the wrapper's version really changed the toolchain identity */
  CHECK(strcmp(coh_module_key(m1), coh_module_key(m2)) != 0);
  CHECK_STR(coh_module_ident(m1), coh_module_ident(m2));
  CHECK(strlen(coh_module_ident(m1)) == 64);
  coh_agent_opts_default(&o);
  o.seed = 5;
  REQUIRE_OK(coh_agent_new(m1, &o, &rec_host, &r1, &a1, &err));
  REQUIRE_OK(coh_agent_new(m2, &o, &rec_host, &r2, &a2, &err));
  CHECK_EQ_INT(coh_agent_init(a1, NULL, 0, &r), COH_OK);
  CHECK_EQ_INT(coh_agent_init(a2, NULL, 0, &r), COH_OK);
  for (i = 0; i < 3; i++) {
    step_k(a1, 1, ev, sizeof ev - 1, &r);
    step_k(a2, 1, ev, sizeof ev - 1, &r);
  }
  REQUIRE_OK(coh_agent_checkpoint(a1, &s1, &n1, &err));
  REQUIRE_OK(coh_agent_checkpoint(a2, &s2, &n2, &err));
  CHECK(n1 == n2 && memcmp(s1, s2, n1) == 0);
  CHECK(memcmp(s1, "COHSNAP3", 8) == 0);
  /* across toolchains: machine 1's checkpoint continues on machine 2 */
  REQUIRE_OK(coh_agent_restore(m2, &o, &rec_host, &rb, s1, n1, &b, &err));
  step_k(b, 1, ev, sizeof ev - 1, &r);
  step_k(a1, 1, ev, sizeof ev - 1, &r);
  CHECK(rb.len > 0 && r1.len > rb.len);
  if (rb.len > 0 && r1.len > rb.len) CHECK_STR(r1.out + r1.len - rb.len, rb.out);
  coh_agent_free(b);
  b = NULL;
  /* a checkpoint of an old format is refused, naming both formats */
  memcpy(s2, "COHSNAP1", 8);
  CHECK_EQ_INT(coh_agent_restore(m1, &o, NULL, NULL, s2, n2, &b, &err),
               COH_EFORMAT);
  CHECK(strstr(err.msg, "COHSNAP1") != NULL &&
        strstr(err.msg, "COHSNAP3") != NULL);
  CHECK(b == NULL);
  memcpy(s2, "COHSNAP2", 8);
  CHECK_EQ_INT(coh_agent_restore(m1, &o, NULL, NULL, s2, n2, &b, &err),
               COH_EFORMAT);
  CHECK(strstr(err.msg, "COHSNAP2") != NULL &&
        strstr(err.msg, "COHSNAP3") != NULL);
  CHECK(b == NULL);
  coh_agent_buf_free(s1);
  coh_agent_buf_free(s2);
  coh_agent_free(a1);
  coh_agent_free(a2);
  coh_module_free(m1);
  coh_module_free(m2);
  coh_agent_rt_free(rt2);
}

/* The toolchain's identity is remembered in the cache folder: a second
 * runtime on the same cache starts no `cc --version` (a wrapper compiler
 * counts its calls), and a changed compiler (the wrapper rewritten to say
 * another version) is asked again and keys another object.  A damaged
 * entry is asked again too. */
static int count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  int c, n = 0;
  if (f == NULL) return 0;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

static void write_wrapper(const char *cc, const char *calls, const char *version) {
  FILE *f = fopen(cc, "w");
  REQUIRE(f != NULL);
  fprintf(f, "#!/bin/sh\nif [ \"$1\" = --version ]; then echo x >> '%s'; echo '%s'; exit 0; fi\n"
          "exec cc \"$@\"\n", calls, version);
  fclose(f);
  REQUIRE(chmod(cc, 0700) == 0);
}

/* Loads `counter` with a fresh runtime on dir and compiler cc: 1 on success,
 * with the module's cache key and whether it came from the cache. */
static int load_with(const char *dir, const char *cc, char key[80], int *from_cache) {
  coh_agent_rt_opts ro;
  coh_agent_rt *r = NULL;
  coh_module *m = NULL;
  coh_err err;
  memset(&ro, 0, sizeof ro);
  ro.cache_dir = dir;
  ro.cc = cc;
  if (coh_agent_rt_new(&ro, &r, &err) != COH_OK) return 0;
  if (coh_module_load_file(r, mod_path("counter"), &m, &err) != COH_OK) {
    fprintf(stderr, "load with %s: %s\n", cc, err.msg);
    coh_agent_rt_free(r);
    return 0;
  }
  snprintf(key, 80, "%s", coh_module_key(m));
  *from_cache = coh_module_from_cache(m);
  coh_module_free(m);
  coh_agent_rt_free(r);
  return 1;
}

static void test_tool_identity_cached(void) {
  char dir[512], cc[600], calls[600], k1[80], k2[80], k3[80], k4[80];
  int fc = -1;
  DIR *d;
  struct dirent *e;
  char entry[1200] = "";
  snprintf(dir, sizeof dir, "%s/toolid", cache_dir);
  REQUIRE(mkdir(dir, 0700) == 0);
  snprintf(cc, sizeof cc, "%s/wrapcc", dir);
  snprintf(calls, sizeof calls, "%s/calls", dir);
  write_wrapper(cc, calls, "wrapcc 1.0");
  REQUIRE(load_with(dir, cc, k1, &fc));
  CHECK_EQ_INT(fc, 0);
  CHECK_EQ_INT(count_lines(calls), 1);
  /* a second runtime (a second `cohort run`) on the same cache */
  REQUIRE(load_with(dir, cc, k2, &fc));
  CHECK_EQ_INT(fc, 1);
  CHECK_EQ_INT(count_lines(calls), 1); /* not asked again */
  CHECK_STR(k1, k2);
  /* another compiler behind the same name */
  write_wrapper(cc, calls, "wrapcc 2.0 (another build)");
  REQUIRE(load_with(dir, cc, k3, &fc));
  CHECK_EQ_INT(count_lines(calls), 2);
  CHECK_EQ_INT(fc, 0);
  CHECK(strcmp(k1, k3) != 0);
  /* a damaged entry (cut before its newline) is asked again, same key */
  d = opendir(dir);
  REQUIRE(d != NULL);
  while ((e = readdir(d)) != NULL) {
    char p[1100];
    FILE *f;
    char line[256];
    if (strncmp(e->d_name, ".tool-", 6) != 0 || !strncmp(e->d_name, ".tool-tmp", 9)) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    f = fopen(p, "r");
    if (f && fgets(line, sizeof line, f) && strstr(line, "wrapcc 2.0"))
      snprintf(entry, sizeof entry, "%s", p);
    if (f) fclose(f);
  }
  closedir(d);
  REQUIRE(entry[0] != '\0');
  CHECK(truncate(entry, 5) == 0);
  REQUIRE(load_with(dir, cc, k4, &fc));
  CHECK_EQ_INT(count_lines(calls), 3);
  CHECK_EQ_INT(fc, 1);
  CHECK_STR(k3, k4);
}

/* ---- cache ---------------------------------------------------------------------- */

static void corrupt(const char *path, int truncate_it) {
  FILE *f = fopen(path, "r+b");
  if (f == NULL) return;
  if (truncate_it) {
    fclose(f);
    if (truncate(path, 1000) != 0) perror("truncate");
    return;
  }
  fseek(f, 4096, SEEK_SET);
  fputs("garbage garbage garbage", f);
  fclose(f);
}

static void test_cache(void) {
  coh_module *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL;
  coh_agent *a = NULL;
  coh_agent_result r;
  coh_err err;
  char path[1024], sum[1100];
  uint32_t lim = 10;
  /* hostile was compiled by an earlier test in this process's cache */
  m1 = load("hostile");
  REQUIRE(m1 != NULL);
  CHECK_EQ_INT(coh_module_from_cache(m1), 1);
  snprintf(path, sizeof path, "%s", coh_module_path(m1));
  snprintf(sum, sizeof sum, "%.*s.sum", (int)(strlen(path) - 3), path);
  CHECK(access(sum, F_OK) == 0);
  coh_module_free(m1);
  m2 = load("hostile");
  REQUIRE(m2 != NULL);
  CHECK_EQ_INT(coh_module_from_cache(m2), 1);
  coh_module_free(m2);
  /* corruption: detected by the checksum, rebuilt, usable */
  corrupt(path, 0);
  m3 = load("hostile");
  REQUIRE(m3 != NULL);
  CHECK_EQ_INT(coh_module_from_cache(m3), 0);
  REQUIRE_OK(coh_agent_new(m3, NULL, NULL, NULL, &a, &err));
  CHECK_EQ_INT(coh_agent_step(a, 12, &lim, 4, &r), COH_OK);
  CHECK_EQ_INT(r.rc, 285);
  coh_agent_free(a);
  coh_module_free(m3);
  /* partial entry (truncated object) and missing checksum */
  corrupt(path, 1);
  m4 = load("hostile");
  REQUIRE(m4 != NULL);
  CHECK_EQ_INT(coh_module_from_cache(m4), 0);
  coh_module_free(m4);
  unlink(sum);
  m4 = load("hostile");
  REQUIRE(m4 != NULL);
  CHECK_EQ_INT(coh_module_from_cache(m4), 0);
  coh_module_free(m4);
  m4 = load("hostile");
  REQUIRE(m4 != NULL);
  CHECK_EQ_INT(coh_module_from_cache(m4), 1);
  coh_module_free(m4);
  /* no build folders left behind */
  {
    DIR *d = opendir(cache_dir);
    struct dirent *e;
    int tmp = 0;
    while (d && (e = readdir(d)) != NULL)
      if (!strncmp(e->d_name, ".tmp", 4)) tmp++;
    if (d) closedir(d);
    CHECK_EQ_INT(tmp, 0);
  }
}

/* ---- concurrency ---------------------------------------------------------------- */

#define NTHREADS 4
#define NAGENTS 6
#define NROUNDS 40

typedef struct worker {
  coh_module *m;
  int id;
  int failures;
  long steps;
} worker;

static void *worker_main(void *p) {
  worker *w = p;
  coh_agent *ag[NAGENTS];
  coh_agent_opts o;
  coh_err err;
  int i, round;
  coh_agent_opts_default(&o);
  o.fuel = 20000;
  for (i = 0; i < NAGENTS; i++)
    if (coh_agent_new(w->m, &o, NULL, NULL, &ag[i], &err) != COH_OK) {
      w->failures++;
      ag[i] = NULL;
    }
  for (round = 0; round < NROUNDS; round++) {
    for (i = 0; i < NAGENTS; i++) {
      coh_agent_result r;
      uint32_t lim = (uint32_t)(round + i + w->id);
      /* agents 0..2 trap in different ways every round; 3..5 compute */
      static const uint32_t bad[] = {1, 3, 4, 7, 5, 9, 2};
      int rc;
      uint64_t want = 0, j;
      if (ag[i] == NULL) continue;
      if (i < 3) {
        uint32_t k = bad[(round + i + w->id) % 7];
        rc = coh_agent_step(ag[i], k, NULL, 0, &r);
        if (rc != COH_ETRAP || r.trap == COH_TRAP_NONE) w->failures++;
      }
      rc = coh_agent_step(ag[i], 12, &lim, 4, &r);
      for (j = 0; j < lim; j++) want += j * j;
      if (rc != COH_OK || (uint32_t)r.rc != (uint32_t)want) w->failures++;
      w->steps++;
    }
  }
  for (i = 0; i < NAGENTS; i++) coh_agent_free(ag[i]);
  return NULL;
}

static void test_concurrent_traps(void) {
  coh_module *m = load("hostile");
  pthread_t th[NTHREADS];
  worker w[NTHREADS];
  int i;
  REQUIRE(m != NULL);
  for (i = 0; i < NTHREADS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].m = m;
    w[i].id = i;
    REQUIRE_OK(pthread_create(&th[i], NULL, worker_main, &w[i]));
  }
  for (i = 0; i < NTHREADS; i++) {
    pthread_join(th[i], NULL);
    CHECK_EQ_INT(w[i].failures, 0);
    CHECK_EQ_INT(w[i].steps, NAGENTS * NROUNDS);
  }
  coh_module_free(m);
}

/* Loading the same module from several threads at once: one compile, every
 * thread gets a working module. */
static void *loader_main(void *p) {
  coh_module *m = load("counter");
  coh_agent *a = NULL;
  coh_err err;
  coh_agent_result r;
  int *ok = p;
  static const char ev[] = "x\0y";
  if (m && coh_agent_new(m, NULL, NULL, NULL, &a, &err) == COH_OK &&
      coh_agent_step(a, 1, ev, 3, &r) == COH_OK)
    *ok = 1;
  coh_agent_free(a);
  coh_module_free(m);
  return NULL;
}

static void test_concurrent_load(void) {
  pthread_t th[3];
  int ok[3] = {0, 0, 0}, i;
  for (i = 0; i < 3; i++) pthread_create(&th[i], NULL, loader_main, &ok[i]);
  for (i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    CHECK_EQ_INT(ok[i], 1);
  }
}

int main(int argc, char **argv) {
  coh_agent_rt_opts ro;
  coh_err err;
  int rc;
  TEST_MAIN_BEGIN(argc, argv);
  snprintf(cache_dir, sizeof cache_dir, "/tmp/coh-test-agent-XXXXXX");
  if (mkdtemp(cache_dir) == NULL) return 1;
  memset(&ro, 0, sizeof ro);
  ro.cache_dir = cache_dir;
  if (coh_agent_rt_new(&ro, &rt, &err) != COH_OK) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  RUN(test_fuel_loop_headers);
  if (test__failures) {
    fprintf(stderr, "fuel is not charged at loop headers: the remaining tests "
                    "run endless loops that would hang; stopping\n");
    return TEST_MAIN_END();
  }
  RUN(test_not_wasm);
  RUN(test_unknown_import);
  RUN(test_traps);
  RUN(test_bad_pointer_message);
  RUN(test_fuel_deterministic);
  RUN(test_fuel_paths);
  RUN(test_memory_cap);
  RUN(test_echo);
  RUN(test_host_fail);
  RUN(test_snapshot);
  RUN(test_snapshot_pages);
  RUN(test_snapshot_toolchain_free);
  RUN(test_tool_identity_cached);
  RUN(test_concurrent_traps);
  RUN(test_concurrent_load);
  RUN(test_cache);
  RUN(test_truncations);
  RUN(test_simd);
  RUN(test_sdk_arena);
  coh_agent_rt_free(rt);
  rm_tree(cache_dir);
  rc = TEST_MAIN_END();
  return rc;
}
