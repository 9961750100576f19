/* test_util.c — error tables, the replaceable allocator, bounded file
 * reads, paths kept inside a folder, lossy UTF-8 and listen addresses. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "util/util_int.h"

static void test_error_tables(void) {
  CHECK_STR(coh_err_name(COH_ENOMEM), "COH_ENOMEM");
  CHECK_STR(coh_strerror(COH_OK), "success");
  CHECK_STR(coh_err_name(12345), "COH_UNKNOWN");
}

static void test_err_format(void) {
  coh_err e;
  coh_err_clear(&e);
  CHECK_EQ_INT(coh__err(&e, COH_EFORMAT, "%s:%d: bad", "f.json", 3),
               COH_EFORMAT);
  CHECK_STR(e.msg, "f.json:3: bad");
  coh__err_prefix(&e, "loading %s", "x");
  CHECK_STR(e.msg, "loading x: f.json:3: bad");
  CHECK_EQ_INT(coh__err(NULL, COH_EIO, "ignored"), COH_EIO);
}

static int fail_after = -1;
static void *counting_malloc(size_t n) {
  if (fail_after == 0) return NULL;
  if (fail_after > 0) fail_after--;
  return malloc(n);
}

static void test_allocator_replace(void) {
  coh_err e;
  char *buf = NULL;
  CHECK_EQ_INT(coh_replace_allocator(NULL, realloc, calloc, free), COH_EINVAL);
  CHECK_EQ_INT(coh_replace_allocator(counting_malloc, realloc, calloc, free), 0);
  fail_after = 0;
  CHECK(coh__strdup("abc") == NULL);
  fail_after = -1;
  CHECK_EQ_INT(coh__read_file("/nonexistent/cohort", &buf, NULL, &e),
               COH_ENOENT);
  CHECK(strstr(e.msg, "/nonexistent/cohort") != NULL);
  coh_replace_allocator(malloc, realloc, calloc, free);
}

/* A private temporary folder (removed by the caller with rm_tree). */
static char *tmp_dir(void) {
  static char tmpl[64];
  snprintf(tmpl, sizeof tmpl, "/tmp/coh_util_XXXXXX");
  return mkdtemp(tmpl);
}

static void rm_tree(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static void write_bytes(const char *path, const char *s, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return;
  fwrite(s, 1, n, f);
  fclose(f);
}

/* Devices, FIFOs and folders are refused without blocking; a cap holds. */
static void test_read_file_bounded(void) {
  coh_err e;
  char *buf = NULL, path[256], hex[65];
  size_t len = 0;
  char *dir = tmp_dir();
  REQUIRE(dir != NULL);
  CHECK_EQ_INT(coh__read_file("/dev/zero", &buf, &len, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "/dev/zero: is a character device; expected a regular "
                      "file") != NULL);
  CHECK(buf == NULL);
  CHECK_EQ_INT(coh__sha256_file("/dev/urandom", hex, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "/dev/urandom") != NULL);
  CHECK_EQ_INT(coh__read_file(dir, &buf, &len, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "is a folder") != NULL);
  snprintf(path, sizeof path, "%s/fifo", dir);
  REQUIRE(mkfifo(path, 0600) == 0);
  /* no writer ever comes: a blocking open would hang here */
  CHECK_EQ_INT(coh__read_file(path, &buf, &len, &e), COH_EINVAL);
  CHECK(strstr(e.msg, "is a FIFO") != NULL);
  CHECK_EQ_INT(coh__sha256_file(path, hex, &e), COH_EINVAL);
  snprintf(path, sizeof path, "%s/ten", dir);
  write_bytes(path, "0123456789", 10);
  CHECK_EQ_INT(coh__read_file_max(path, 9, &buf, &len, &e), COH_ERANGE);
  CHECK(strstr(e.msg, "file is 10 bytes; expected at most 9 bytes") != NULL);
  REQUIRE(coh__read_file_max(path, 10, &buf, &len, &e) == COH_OK);
  CHECK_EQ_INT(len, 10);
  CHECK_STR(buf, "0123456789");
  coh__free(buf);
  buf = NULL;
  snprintf(path, sizeof path, "%s/empty", dir);
  write_bytes(path, "", 0);
  REQUIRE(coh__read_file_max(path, 0, &buf, &len, &e) == COH_OK);
  CHECK_EQ_INT(len, 0);
  CHECK_STR(buf, "");
  coh__free(buf);
  rm_tree(dir);
}

static void test_path_inside(void) {
  coh_err e;
  char *out = NULL, path[320], target[256];
  char *dir = tmp_dir();
  REQUIRE(dir != NULL);
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  write_bytes(path, "x", 1);
  snprintf(path, sizeof path, "%s/sub", dir);
  REQUIRE(mkdir(path, 0700) == 0);
  snprintf(path, sizeof path, "%s/sub/w.bin", dir);
  write_bytes(path, "x", 1);
  REQUIRE(coh__path_inside(dir, "model.onnx", "cfg: field 'f'", &out, &e) ==
          COH_OK);
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  CHECK_STR(out, path);
  coh__free(out);
  REQUIRE(coh__path_inside(dir, "sub/w.bin", "cfg: field 'f'", &out, &e) ==
          COH_OK);
  coh__free(out);
  CHECK_EQ_INT(coh__path_inside(dir, "../../../../etc/passwd",
                                "cfg: field 'f'", &out, &e),
               COH_EFORMAT);
  CHECK(strstr(e.msg, "cfg: field 'f' = \"../../../../etc/passwd\" goes up "
                      "with '..'") != NULL);
  CHECK(out == NULL);
  CHECK_EQ_INT(coh__path_inside(dir, "sub/../model.onnx", "w", &out, &e),
               COH_EFORMAT);
  CHECK_EQ_INT(coh__path_inside(dir, "/etc/passwd", "w", &out, &e),
               COH_EFORMAT);
  CHECK(strstr(e.msg, "is an absolute path") != NULL);
  CHECK_EQ_INT(coh__path_inside(dir, "", "w", &out, &e), COH_EFORMAT);
  /* a symbolic link out of the folder, and one that stays inside */
  snprintf(path, sizeof path, "%s/out.onnx", dir);
  REQUIRE(symlink("/etc/passwd", path) == 0);
  CHECK_EQ_INT(coh__path_inside(dir, "out.onnx", "cfg: field 'f'", &out, &e),
               COH_EFORMAT);
  CHECK(strstr(e.msg, "resolves to /etc/passwd, outside the folder") != NULL);
  snprintf(path, sizeof path, "%s/in.onnx", dir);
  REQUIRE(symlink("sub/w.bin", path) == 0);
  CHECK_EQ_INT(coh__path_inside(dir, "in.onnx", "w", &out, &e), COH_OK);
  coh__free(out);
  /* a sibling folder whose name extends this one's is still outside */
  snprintf(target, sizeof target, "%sx", dir);
  REQUIRE(mkdir(target, 0700) == 0);
  snprintf(path, sizeof path, "%s/f", target);
  write_bytes(path, "x", 1);
  snprintf(path, sizeof path, "%s/sib", dir);
  snprintf(target, sizeof target, "%sx/f", dir);
  REQUIRE(symlink(target, path) == 0);
  CHECK_EQ_INT(coh__path_inside(dir, "sib", "w", &out, &e), COH_EFORMAT);
  CHECK_EQ_INT(coh__path_inside(dir, "missing.onnx", "w", &out, &e),
               COH_ENOENT);
  CHECK(strstr(e.msg, "missing.onnx") != NULL);
  snprintf(target, sizeof target, "%sx", dir);
  rm_tree(target);
  rm_tree(dir);
}

/* Valid sequences pass through; each byte that starts no valid sequence
 * (a cut character, a stray continuation, an overlong) becomes U+FFFD. */
static void test_utf8_lossy(void) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"", ""},
      {"abc", "abc"},
      {"caf\xC3\xA9 \xE2\x98\x95", "caf\xC3\xA9 \xE2\x98\x95"},
      {"x\xE2\x98", "x\xEF\xBF\xBD\xEF\xBF\xBD"},   /* cut at the end */
      {"\x80y", "\xEF\xBF\xBDy"},                      /* stray continuation */
      {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},      /* overlong '/' */
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    coh__buf b = {0};
    coh__buf_add_utf8_lossy(&b, cases[i].in, strlen(cases[i].in));
    CHECK(!b.oom);
    CHECK(b.n == strlen(cases[i].out) && (b.n == 0 || !memcmp(b.p, cases[i].out, b.n)));
    coh__buf_free(&b);
  }
}

/* The random helpers are part of the determinism contract: known answers.
 * splitmix64 from state 0 gives the published first outputs
 * 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4; seed derivation is the chained
 * formula of util_int.h, spelled out here; the xoshiro stream from seed 0
 * is reproducible and its uniform doubles lie in [0, 1). */
static void test_rng(void) {
  uint64_t st = 0, h;
  coh__rng r1, r2;
  int i, same = 1, in_range = 1;
  CHECK(coh__splitmix64_next(&st) == 0xe220a8397b1dcdafULL);
  CHECK(coh__splitmix64_next(&st) == 0x6e789e6aa1b965f4ULL);
  CHECK(st == 2 * 0x9e3779b97f4a7c15ULL);
  st = 7;
  h = coh__splitmix64_next(&st); /* mix(7 + G) */
  st = h ^ 3;
  h = coh__splitmix64_next(&st); /* mix((h ^ 3) + G) */
  st = h ^ 5;
  h = coh__splitmix64_next(&st);
  CHECK(coh__seed_derive(7, 3, 5) == h);
  CHECK(coh__seed_derive(7, 3, 5) != coh__seed_derive(7, 5, 3));
  coh__rng_seed(&r1, 0);
  coh__rng_seed(&r2, 0);
  for (i = 0; i < 1000; i++) {
    double u = coh__rng_uniform(&r1);
    same &= coh__rng_next(&r2) >> 11 == (uint64_t)(u * 0x1.0p53);
    in_range &= u >= 0.0 && u < 1.0;
  }
  CHECK(same);
  CHECK(in_range);
  CHECK(r1.s[0] | r1.s[1] | r1.s[2] | r1.s[3]);
}

/* coh__grow: doubles from `first`, jumps straight to a larger need, keeps
 * the contents, leaves items and cap alone when they fit or on overflow. */
static void test_grow(void) {
  int *v = NULL, *n;
  size_t cap = 0, i;
  n = coh__grow(v, &cap, 1, sizeof *v, 4);
  REQUIRE(n != NULL);
  v = n;
  CHECK_EQ_INT(cap, 4);
  for (i = 0; i < 4; i++) v[i] = (int)i;
  CHECK(coh__grow(v, &cap, 4, sizeof *v, 4) == v);
  CHECK_EQ_INT(cap, 4);
  n = coh__grow(v, &cap, 5, sizeof *v, 4);
  REQUIRE(n != NULL);
  v = n;
  CHECK_EQ_INT(cap, 8);
  n = coh__grow(v, &cap, 33, sizeof *v, 4);
  REQUIRE(n != NULL);
  v = n;
  CHECK_EQ_INT(cap, 64);
  for (i = 0; i < 4; i++) CHECK_EQ_INT(v[i], (int)i);
  CHECK(coh__grow(v, &cap, SIZE_MAX / 2, sizeof *v, 4) == NULL);
  CHECK(coh__grow(v, &cap, SIZE_MAX, 1, 4) == NULL);
  CHECK_EQ_INT(cap, 64);
  CHECK_EQ_INT(v[3], 3);
  coh__free(v);
}

static void test_parse_listen(void) {
  char addr[16];
  int port = -1;
  coh_err err = {0};
  CHECK_EQ_INT(coh__parse_listen("--ui", "8080", addr, &port, &err), COH_OK);
  CHECK(!strcmp(addr, "127.0.0.1") && port == 8080);
  CHECK_EQ_INT(coh__parse_listen("--ui", "localhost:0", addr, &port, &err), COH_OK);
  CHECK(!strcmp(addr, "127.0.0.1") && port == 0);
  CHECK_EQ_INT(coh__parse_listen("--ui", "0.0.0.0:65535", addr, &port, &err), COH_OK);
  CHECK(!strcmp(addr, "0.0.0.0") && port == 65535);
  CHECK_EQ_INT(coh__parse_listen("--ui", "[::1]:80", addr, &port, &err), COH_EINVAL);
  CHECK(strstr(err.msg, "--ui '[::1]:80'") && strstr(err.msg, "IPv6"));
  CHECK_EQ_INT(coh__parse_listen("--listen", "1.2.3.4:65536", addr, &port, &err), COH_EINVAL);
  CHECK(strstr(err.msg, "--listen '1.2.3.4:65536'") != NULL);
  CHECK_EQ_INT(coh__parse_listen("--ui", ":80", addr, &port, &err), COH_EINVAL);
  CHECK_EQ_INT(coh__parse_listen("--ui", "host.example:80", addr, &port, &err), COH_EINVAL);
  CHECK(strstr(err.msg, "not an IPv4 address") != NULL);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_error_tables);
  RUN(test_err_format);
  RUN(test_allocator_replace);
  RUN(test_read_file_bounded);
  RUN(test_path_inside);
  RUN(test_utf8_lossy);
  RUN(test_parse_listen);
  RUN(test_rng);
  RUN(test_grow);
  return TEST_MAIN_END();
}
