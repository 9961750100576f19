/*
 * rng.c — the library's one implementation of splitmix64, the seed
 * derivation and the xoshiro256** stream (util_int.h).  The agent runtime's
 * random_get, the sampler's per-request streams, the orchestrator's agent
 * and request seeds and `cohort exec` all use these, so that a change here
 * is a change of the determinism contract (journals depend on it).
 */
#include "util/util_int.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL

/* The splitmix64 output function (Steele, Lea & Flood 2014). */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t coh__splitmix64_next(uint64_t *state) { return mix64(*state += GOLDEN); }

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void coh__rng_seed(coh__rng *r, uint64_t seed) {
  /* splitmix64: state += G, output mix(state).  Four consecutive outputs of
   * a bijection on distinct states are never all zero. */
  int i;
  for (i = 0; i < 4; i++) r->s[i] = coh__splitmix64_next(&seed);
}

uint64_t coh__rng_next(coh__rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double coh__rng_uniform(coh__rng *r) {
  return (double)(coh__rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t coh__seed_derive(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t h = mix64(a + GOLDEN);
  h = mix64((h ^ b) + GOLDEN);
  h = mix64((h ^ c) + GOLDEN);
  return h;
}
