/* tok_table.c — the two hash tables on the encode path: token string → id
 * (vocab) and id pair → merge (rank and merged id).  Open addressing with
 * linear probing at load factor <= 1/2; keys are compared by content, and
 * nothing ever iterates a table, so hashing cannot change any result. */
#include <string.h>

#include "tokenizer_int.h"

static uint64_t hash_bytes(const char *s, size_t n) {
  /* FNV-1a, then a final mix so that short keys spread over the mask. */
  uint64_t h = 1469598103934665603ull;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h;
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

static size_t table_size(size_t expected) {
  size_t n = 16;
  while (n < expected * 2 + 2) {
    if (n > SIZE_MAX / 4) return 0;
    n *= 2;
  }
  return n;
}

/* ---- vocab ---------------------------------------------------------------- */

int coh__vocab_init(coh__vocab *v, size_t expected) {
  size_t n = table_size(expected), i;
  v->slots = n ? coh__malloc(n * sizeof *v->slots) : NULL;
  v->count = 0;
  v->mask = 0;
  if (v->slots == NULL) return COH_ENOMEM;
  for (i = 0; i < n; i++) v->slots[i].id = -1;
  v->mask = n - 1;
  return COH_OK;
}

void coh__vocab_free(coh__vocab *v) {
  coh__free(v->slots);
  v->slots = NULL;
  v->mask = v->count = 0;
}

static int vocab_grow(coh__vocab *v) {
  coh__vocab nv;
  size_t i;
  if (coh__vocab_init(&nv, (v->mask + 1)) != COH_OK) return COH_ENOMEM;
  for (i = 0; i <= v->mask; i++)
    if (v->slots[i].id >= 0)
      coh__vocab_put(&nv, v->slots[i].key, v->slots[i].len, v->slots[i].id);
  coh__vocab_free(v);
  *v = nv;
  return COH_OK;
}

int coh__vocab_put(coh__vocab *v, const char *key, size_t len, int32_t id) {
  size_t i;
  if (len > UINT32_MAX) return COH_ERANGE;
  if ((v->count + 1) * 2 > v->mask + 1 && vocab_grow(v) != COH_OK)
    return COH_ENOMEM;
  i = (size_t)hash_bytes(key, len) & v->mask;
  for (;;) {
    coh__vocab_slot *s = &v->slots[i];
    if (s->id < 0) {
      s->key = key;
      s->len = (uint32_t)len;
      s->id = id;
      v->count++;
      return COH_OK;
    }
    if (s->len == len && memcmp(s->key, key, len) == 0) {
      s->id = id;
      return COH_OK;
    }
    i = (i + 1) & v->mask;
  }
}

int32_t coh__vocab_get(const coh__vocab *v, const char *key, size_t len) {
  size_t i;
  if (v->slots == NULL) return -1;
  i = (size_t)hash_bytes(key, len) & v->mask;
  for (;;) {
    const coh__vocab_slot *s = &v->slots[i];
    if (s->id < 0) return -1;
    if (s->len == len && memcmp(s->key, key, len) == 0) return s->id;
    i = (i + 1) & v->mask;
  }
}

/* ---- merges --------------------------------------------------------------- */

#define EMPTY_PAIR UINT64_MAX

int coh__merges_init(coh__merges *m, size_t expected) {
  size_t n = table_size(expected), i;
  m->slots = n ? coh__malloc(n * sizeof *m->slots) : NULL;
  m->count = 0;
  m->mask = 0;
  if (m->slots == NULL) return COH_ENOMEM;
  for (i = 0; i < n; i++) m->slots[i].pair = EMPTY_PAIR;
  m->mask = n - 1;
  return COH_OK;
}

void coh__merges_free(coh__merges *m) {
  coh__free(m->slots);
  m->slots = NULL;
  m->mask = m->count = 0;
}

static uint64_t pair_key(int32_t a, int32_t b) {
  return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static int merges_grow(coh__merges *m) {
  coh__merges nm;
  size_t i;
  if (coh__merges_init(&nm, m->mask + 1) != COH_OK) return COH_ENOMEM;
  for (i = 0; i <= m->mask; i++) {
    coh__merge_slot *s = &m->slots[i];
    if (s->pair != EMPTY_PAIR)
      coh__merges_put(&nm, (int32_t)(s->pair >> 32), (int32_t)(uint32_t)s->pair,
                      s->rank, s->new_id);
  }
  coh__merges_free(m);
  *m = nm;
  return COH_OK;
}

int coh__merges_put(coh__merges *m, int32_t a, int32_t b, uint32_t rank,
                    int32_t new_id) {
  uint64_t key = pair_key(a, b);
  size_t i;
  if ((m->count + 1) * 2 > m->mask + 1 && merges_grow(m) != COH_OK)
    return COH_ENOMEM;
  i = (size_t)hash_u64(key) & m->mask;
  for (;;) {
    coh__merge_slot *s = &m->slots[i];
    if (s->pair == EMPTY_PAIR || s->pair == key) {
      /* A repeated pair keeps its last rank, as HF's map construction. */
      if (s->pair == EMPTY_PAIR) m->count++;
      s->pair = key;
      s->rank = rank;
      s->new_id = new_id;
      return COH_OK;
    }
    i = (i + 1) & m->mask;
  }
}

const coh__merge_slot *coh__merges_get(const coh__merges *m, int32_t a,
                                       int32_t b) {
  uint64_t key = pair_key(a, b);
  size_t i;
  if (m->slots == NULL) return NULL;
  i = (size_t)hash_u64(key) & m->mask;
  for (;;) {
    const coh__merge_slot *s = &m->slots[i];
    if (s->pair == key) return s;
    if (s->pair == EMPTY_PAIR) return NULL;
    i = (i + 1) & m->mask;
  }
}
