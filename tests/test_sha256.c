/* test_sha256.c — SHA-256: FIPS 180-4 test vectors, padding at every length
 * around the block boundary, and the SHA-extension path against the portable
 * one on random inputs fed in random pieces; coh__sha256_buf on the vectors. */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util/util_int.h"

static void hash(const void *p, size_t n, int accel, char hex[65]) {
  coh__sha256 s;
  uint8_t out[32];
  coh__sha256_init(&s);
  if (!accel) s.accel = 0;
  coh__sha256_update(&s, p, n);
  coh__sha256_final(&s, out);
  coh__hex32(out, hex);
}

static void test_vectors(void) {
  static const char *const in[3] = {
      "", "abc", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"};
  static const char *const want[3] = {
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"};
  char hex[65];
  uint8_t out[32];
  int i, accel;
  for (accel = 0; accel < 2; accel++)
    for (i = 0; i < 3; i++) {
      hash(in[i], strlen(in[i]), accel, hex);
      CHECK_STR(hex, want[i]);
    }
  /* the one-buffer form, the empty buffer given as NULL too */
  for (i = 0; i < 3; i++) {
    coh__sha256_buf(in[i], strlen(in[i]), out);
    coh__hex32(out, hex);
    CHECK_STR(hex, want[i]);
  }
  coh__sha256_buf(NULL, 0, out);
  coh__hex32(out, hex);
  CHECK_STR(hex, want[0]);
}

static void test_million_a(void) {
  size_t n = 1000000;
  char *a = malloc(n), hex[65];
  int accel;
  REQUIRE(a != NULL);
  memset(a, 'a', n);
  for (accel = 0; accel < 2; accel++) {
    hash(a, n, accel, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }
  free(a);
}

/* Every length 0..300 (all padding cases), and random data in random pieces:
 * the two block functions agree, and piecewise equals one-shot. */
static void test_paths_agree(void) {
  uint8_t buf[4096];
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  size_t i, len;
  int trial;
  for (i = 0; i < sizeof buf; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
  for (len = 0; len <= 300; len++) {
    char a[65], b[65];
    hash(buf, len, 0, a);
    hash(buf, len, 1, b);
    CHECK_STR(a, b);
  }
  for (trial = 0; trial < 200; trial++) {
    coh__sha256 s;
    uint8_t out[32];
    char one[65], pieces[65];
    size_t off = 0;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    len = (size_t)(x % sizeof buf);
    hash(buf, len, 0, one);
    coh__sha256_init(&s);
    while (off < len) {
      size_t take;
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      take = (size_t)(x % 150);
      if (take > len - off) take = len - off;
      coh__sha256_update(&s, buf + off, take);
      off += take;
    }
    coh__sha256_final(&s, out);
    coh__hex32(out, pieces);
    CHECK_STR(one, pieces);
  }
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_vectors);
  RUN(test_million_a);
  RUN(test_paths_agree);
  return TEST_MAIN_END();
}
