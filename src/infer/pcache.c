/* pcache.c — the prefix cache (see pcache.h). */
#include <string.h>

#include "pcache.h"
#include "util/util_int.h"

struct coh__pblock {
  coh__pblock *parent;
  coh__pblock *hnext;          /* hash chain */
  coh__pblock *prev, *next;    /* all entries, in insert order */
  uint64_t serial;             /* insert number, from 1: the identity used in keys */
  uint64_t hash;
  uint64_t last_used, wanted;  /* logical ticks; wanted: tick + 1 of the last mark */
  int children, pins;
  int32_t *tokens;             /* [block_tokens], after the struct */
  unsigned char *data;         /* [block_bytes], after the tokens */
};

struct coh__pcache {
  size_t budget, block_bytes, entry_bytes;
  int block_tokens;
  coh__pblock **buckets;
  size_t n_buckets;            /* power of two */
  coh__pblock *head, *tail;
  uint64_t next_serial;
  coh__pcache_stats st;
};

/* FNV-1a over the parent's serial and the tokens. */
static uint64_t key_hash(uint64_t parent_serial, const int32_t *tokens, int n) {
  uint64_t h = 1469598103934665603ull;
  const unsigned char *p = (const unsigned char *)&parent_serial;
  size_t i;
  for (i = 0; i < sizeof parent_serial; i++) h = (h ^ p[i]) * 1099511628211ull;
  p = (const unsigned char *)tokens;
  for (i = 0; i < (size_t)n * sizeof *tokens; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int coh__pcache_new(size_t budget, size_t block_bytes, int block_tokens, coh__pcache **out) {
  coh__pcache *c;
  *out = NULL;
  if (block_bytes == 0 || block_tokens <= 0) return -1;
  c = coh__calloc(1, sizeof *c);
  if (c == NULL) return -1;
  c->budget = budget;
  c->block_bytes = block_bytes;
  c->block_tokens = block_tokens;
  c->entry_bytes = sizeof(coh__pblock) + (size_t)block_tokens * sizeof(int32_t) + block_bytes;
  c->n_buckets = 64;
  c->buckets = coh__calloc(c->n_buckets, sizeof *c->buckets);
  if (c->buckets == NULL) {
    coh__free(c);
    return -1;
  }
  c->next_serial = 1;
  *out = c;
  return 0;
}

void coh__pcache_free(coh__pcache *c) {
  coh__pblock *b, *n;
  if (c == NULL) return;
  for (b = c->head; b; b = n) {
    n = b->next;
    coh__free(b);
  }
  coh__free(c->buckets);
  coh__free(c);
}

coh__pblock *coh__pcache_find(coh__pcache *c, coh__pblock *parent, const int32_t *tokens,
                              uint64_t tick, int touch) {
  uint64_t h = key_hash(parent ? parent->serial : 0, tokens, c->block_tokens);
  coh__pblock *b;
  if (touch) c->st.lookups++;
  for (b = c->buckets[h & (c->n_buckets - 1)]; b; b = b->hnext)
    if (b->hash == h && b->parent == parent &&
        !memcmp(b->tokens, tokens, (size_t)c->block_tokens * sizeof *tokens))
      break;
  if (b != NULL && touch) {
    c->st.hits++;
    if (tick > b->last_used) b->last_used = tick;
  }
  return b;
}

static void unlink_entry(coh__pcache *c, coh__pblock *b) {
  coh__pblock **p = &c->buckets[b->hash & (c->n_buckets - 1)];
  while (*p != b) p = &(*p)->hnext;
  *p = b->hnext;
  if (b->prev) b->prev->next = b->next;
  else c->head = b->next;
  if (b->next) b->next->prev = b->prev;
  else c->tail = b->prev;
  if (b->parent) b->parent->children--;
  c->st.entries--;
  c->st.bytes -= c->entry_bytes;
  coh__free(b);
}

/* The entry to evict: a leaf without pins, not wanted at tick, least
 * recently used, oldest insert first.  NULL: none. */
static coh__pblock *victim(coh__pcache *c, uint64_t tick, const coh__pblock *keep) {
  coh__pblock *b, *best = NULL;
  for (b = c->head; b; b = b->next) {
    if (b->children > 0 || b->pins > 0 || b == keep || b->wanted == tick + 1) continue;
    /* the list is in serial order, so '<' keeps the oldest of equal ticks */
    if (best == NULL || b->last_used < best->last_used) best = b;
  }
  return best;
}

static int grow(coh__pcache *c) {
  size_t n = c->n_buckets * 2, i;
  coh__pblock **nb = coh__calloc(n, sizeof *nb), *b;
  if (nb == NULL) return -1;
  for (i = 0; i < c->n_buckets; i++)
    while ((b = c->buckets[i]) != NULL) {
      c->buckets[i] = b->hnext;
      b->hnext = nb[b->hash & (n - 1)];
      nb[b->hash & (n - 1)] = b;
    }
  coh__free(c->buckets);
  c->buckets = nb;
  c->n_buckets = n;
  return 0;
}

coh__pblock *coh__pcache_insert(coh__pcache *c, coh__pblock *parent, const int32_t *tokens,
                                uint64_t tick, void **data) {
  coh__pblock *b;
  uint64_t h;
  *data = NULL;
  if (c->entry_bytes > c->budget) {
    c->st.declined++;
    return NULL;
  }
  if (coh__pcache_find(c, parent, tokens, tick, 0) != NULL) return NULL;
  while (c->st.bytes + c->entry_bytes > c->budget ||
         c->st.entries >= COH__PCACHE_MAX_ENTRIES) {
    coh__pblock *v = victim(c, tick, parent);
    if (v == NULL) {
      c->st.declined++;
      return NULL;
    }
    unlink_entry(c, v);
    c->st.evictions++;
  }
  if (c->st.entries + 1 > c->n_buckets && grow(c) != 0) return NULL;
  b = coh__malloc(c->entry_bytes);
  if (b == NULL) return NULL;
  memset(b, 0, sizeof *b);
  b->tokens = (int32_t *)(void *)(b + 1);
  b->data = (unsigned char *)(b->tokens + c->block_tokens);
  memcpy(b->tokens, tokens, (size_t)c->block_tokens * sizeof *tokens);
  h = key_hash(parent ? parent->serial : 0, tokens, c->block_tokens);
  b->hash = h;
  b->parent = parent;
  b->serial = c->next_serial++;
  b->last_used = tick;
  if (parent) parent->children++;
  b->hnext = c->buckets[h & (c->n_buckets - 1)];
  c->buckets[h & (c->n_buckets - 1)] = b;
  b->prev = c->tail;
  if (c->tail) c->tail->next = b;
  else c->head = b;
  c->tail = b;
  c->st.entries++;
  c->st.inserts++;
  c->st.bytes += c->entry_bytes;
  if (c->st.bytes > c->st.peak_bytes) c->st.peak_bytes = c->st.bytes;
  *data = b->data;
  return b;
}

const void *coh__pblock_data(const coh__pblock *b) { return b->data; }

void coh__pblock_pin(coh__pblock *b, int delta) {
  if (b != NULL) b->pins += delta;
}

void coh__pcache_want(coh__pcache *c, coh__pblock *b, uint64_t tick) {
  (void)c;
  if (b != NULL) b->wanted = tick + 1;
}

void coh__pcache_get_stats(const coh__pcache *c, coh__pcache_stats *out) { *out = c->st; }
