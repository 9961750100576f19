/* sha256.c — SHA-256 (FIPS 180-4), used for compile-cache keys, for
 * verifying cached objects and for the journal's hash chain.
 *
 * The journal hashes every committed event (two blocks for a small one), on
 * the orchestrator's serial commit path: with the portable block function
 * that was ~15% of a routing run's CPU (bench/RESULTS.md, Orchestrator).
 * On x86-64 CPUs with the SHA extensions the block function uses them
 * (about 5x faster per block); the choice is made per context at init from
 * the CPU's feature bits, never changes the result, and tests compare both
 * paths on random inputs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define COH_SHA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#endif

#include "util_int.h"

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void block(coh__sha256 *s, const uint8_t *p) {
  uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
  int i;
  for (i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
  e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
  for (i = 0; i < 64; i++) {
    t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) +
         K[i] + w[i];
    t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g; g = f; f = e; e = d + t1;
    d = c; c = b; b = a; a = t1 + t2;
  }
  s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
  s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

#ifdef COH_SHA_X86
/* One block with SHA-NI.  State layout as the instructions want it:
 * st0 = (A,B,E,F), st1 = (C,D,G,H) (highest lane first). */
__attribute__((target("sha,sse4.1,ssse3"))) static void block_x86(uint32_t h[8],
                                                                  const uint8_t *p) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i st0, st1, tmp, msg, save0, save1, w[4];
  int i;
  tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* CDAB */
  st1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* EFGH */
  st0 = _mm_alignr_epi8(tmp, st1, 8);                                      /* ABEF */
  st1 = _mm_blend_epi16(st1, tmp, 0xF0);                                   /* CDGH */
  save0 = st0;
  save1 = st1;
  for (i = 0; i < 4; i++)
    w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
  /* 16 groups of 4 rounds; w[g & 3] holds W[4g..4g+3] and is replaced by
   * W[4g+16..4g+19] once the group has used it */
  for (i = 0; i < 16; i++) {
    msg = _mm_add_epi32(w[i & 3], _mm_loadu_si128((const __m128i *)&K[4 * i]));
    st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
    st0 = _mm_sha256rnds2_epu32(st0, st1, _mm_shuffle_epi32(msg, 0x0E));
    if (i < 12) {
      tmp = _mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]);          /* W[t-16] + s0(W[t-15]) */
      tmp = _mm_add_epi32(tmp, _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4)); /* + W[t-7] */
      w[i & 3] = _mm_sha256msg2_epu32(tmp, w[(i + 3) & 3]);          /* + s1(W[t-2]) */
    }
  }
  st0 = _mm_add_epi32(st0, save0);
  st1 = _mm_add_epi32(st1, save1);
  tmp = _mm_shuffle_epi32(st0, 0x1B);       /* FEBA */
  st1 = _mm_shuffle_epi32(st1, 0xB1);       /* DCHG */
  st0 = _mm_blend_epi16(tmp, st1, 0xF0);    /* DCBA */
  st1 = _mm_alignr_epi8(st1, tmp, 8);       /* HGFE */
  _mm_storeu_si128((__m128i *)&h[0], st0);
  _mm_storeu_si128((__m128i *)&h[4], st1);
}

/* Whether the CPU has SHA (CPUID.7.0:EBX[29]), SSE4.1 and SSSE3.  The answer
 * is cached in a static: it is a fact about the hardware, the same for every
 * caller, and cpuid traps to the hypervisor in a VM (too slow to ask per
 * hash).  Racing first calls store the same value. */
static int cpu_has_sha(void) {
  static _Atomic int cached = -1;
  int v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v < 0) {
    unsigned a, b, c, d;
    v = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)) &&
        __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 19)) && (c & (1u << 9));
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v;
}
#endif

static void compress(coh__sha256 *s, const uint8_t *p) {
#ifdef COH_SHA_X86
  if (s->accel) {
    block_x86(s->h, p);
    return;
  }
#endif
  block(s, p);
}

void coh__sha256_init(coh__sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                 0xa54ff53a, 0x510e527f, 0x9b05688c,
                                 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->n = 0;
  s->fill = 0;
#ifdef COH_SHA_X86
  s->accel = cpu_has_sha();
#else
  s->accel = 0;
#endif
}

void coh__sha256_update(coh__sha256 *s, const void *data, size_t n) {
  const uint8_t *p = data;
  s->n += n;
  while (n > 0) {
    size_t take = 64 - s->fill;
    if (s->fill == 0 && n >= 64) { /* whole blocks straight from the input */
      compress(s, p);
      p += 64;
      n -= 64;
      continue;
    }
    if (take > n) take = n;
    memcpy(s->blk + s->fill, p, take);
    s->fill += take;
    p += take;
    n -= take;
    if (s->fill == 64) {
      compress(s, s->blk);
      s->fill = 0;
    }
  }
}

void coh__sha256_final(coh__sha256 *s, uint8_t out[32]) {
  uint64_t bits = s->n * 8;
  int i;
  /* 0x80, zeros up to 56 mod 64, the bit length big-endian */
  s->blk[s->fill++] = 0x80;
  if (s->fill > 56) {
    memset(s->blk + s->fill, 0, 64 - s->fill);
    compress(s, s->blk);
    s->fill = 0;
  }
  memset(s->blk + s->fill, 0, 56 - s->fill);
  for (i = 0; i < 8; i++) s->blk[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
  compress(s, s->blk);
  s->fill = 0;
  for (i = 0; i < 8; i++) {
    out[4 * i] = (uint8_t)(s->h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
    out[4 * i + 3] = (uint8_t)s->h[i];
  }
}

void coh__hex32(const uint8_t in[32], char out[65]) {
  static const char hx[] = "0123456789abcdef";
  int i;
  for (i = 0; i < 32; i++) {
    out[2 * i] = hx[in[i] >> 4];
    out[2 * i + 1] = hx[in[i] & 15];
  }
  out[64] = '\0';
}

int coh__sha256_file(const char *path, char hex[65], coh_err *err) {
  uint8_t h[32];
  char buf[1 << 16];
  uint64_t size, done = 0;
  coh__sha256 s;
  int fd, rc;
  /* A regular file only, and no more than the size it had when opened:
   * hashing /dev/zero (a module path) must fail, not run forever. */
  if ((rc = coh__open_regular(path, &fd, &size, err))) return rc;
  coh__sha256_init(&s);
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return coh__err(err, COH_EIO, "%s: read error: %s", path, strerror(e));
    }
    if (n == 0) break;
    done += (uint64_t)n;
    if (done > size) {
      close(fd);
      return coh__err(err, COH_EIO,
                      "%s: the file grew while it was hashed (%llu bytes "
                      "when opened)",
                      path, (unsigned long long)size);
    }
    coh__sha256_update(&s, buf, (size_t)n);
  }
  close(fd);
  coh__sha256_final(&s, h);
  coh__hex32(h, hex);
  return COH_OK;
}

void coh__sha256_buf(const void *p, size_t n, uint8_t out[32]) {
  coh__sha256 s;
  coh__sha256_init(&s);
  if (n > 0) coh__sha256_update(&s, p, n);
  coh__sha256_final(&s, out);
}
