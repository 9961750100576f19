/*
 * pcache.h — the prefix cache: KV blocks of prompt prefixes, kept so that a
 * later prompt with the same prefix loads them instead of recomputing them.
 *
 * A block holds the keys and values of one prefill chunk: `block_tokens`
 * prompt tokens at positions [k*B, (k+1)*B) of a prompt.  It is identified
 * by its whole prefix, never by a hash alone: an entry records its parent
 * (the entry of block k-1, NULL for block 0) and its own tokens, and a
 * lookup compares both exactly.  So two entries are the same block exactly
 * when the prompts agree on every token up to the block's end.  The cache
 * belongs to one engine, which runs one model, so the model is part of the
 * identity by construction.
 *
 * Bounds: at most `budget` bytes of block data (each entry also costs its
 * tokens and a small header, counted too) and at most COH__PCACHE_MAX_ENTRIES
 * entries.  An insert that does not fit evicts first.
 *
 * Eviction (coh__pcache_insert): only an entry with no children and no pins
 * can go (a child without its parent could never be reached).  Among those,
 * entries that a waiting request will read (marked with coh__pcache_want for
 * the current tick) go last — the engine knows which requests prefill next
 * and what they will look up; then the least recently used by logical tick;
 * then the oldest insert.  Ticks are the engine's step numbers, never wall
 * time, and the order is a total order on (wanted, last_used, serial), so
 * the cache's behaviour is a function of the engine's call sequence.  If
 * only wanted entries could make room, nothing is evicted and the insert is
 * declined (the new block is not kept).
 *
 * Pins: a request that is prefilling pins the entry of its last block, so
 * that the chain it is following cannot disappear under it.
 *
 * Not thread-safe: one engine thread owns it.
 */
#ifndef COH_PCACHE_H
#define COH_PCACHE_H

#include <stddef.h>
#include <stdint.h>

#define COH__PCACHE_MAX_ENTRIES 1048576

typedef struct coh__pcache coh__pcache;
typedef struct coh__pblock coh__pblock;

typedef struct coh__pcache_stats {
  uint64_t lookups, hits;  /* coh__pcache_find calls, and those that found */
  uint64_t inserts, evictions;
  uint64_t declined;       /* inserts refused: no room without a wanted/pinned entry */
  size_t entries, bytes;   /* now */
  size_t peak_bytes;
} coh__pcache_stats;

/* A cache of at most budget bytes whose blocks hold block_bytes of data for
 * block_tokens tokens (both > 0).  *out: caller frees with coh__pcache_free.
 * Returns 0, or -1 (out of memory, or a zero size). */
int coh__pcache_new(size_t budget, size_t block_bytes, int block_tokens, coh__pcache **out);
void coh__pcache_free(coh__pcache *c);

/* The entry that follows parent (NULL: block 0) and holds exactly tokens
 * (block_tokens of them, borrowed), or NULL.  A hit marks the entry used at
 * tick.  touch 0: a pure query (coh__pcache_want's walk), no statistics. */
coh__pblock *coh__pcache_find(coh__pcache *c, coh__pblock *parent, const int32_t *tokens,
                              uint64_t tick, int touch);

/* Adds the block that follows parent (NULL: block 0, else an entry of c)
 * with these tokens, evicting as described above.  *data (output): its
 * block_bytes, for the caller to fill before the next call.  Returns the
 * new entry, or NULL when it cannot be kept (no room, the entry limit, out
 * of memory, or the block is already there: then find() it instead). */
coh__pblock *coh__pcache_insert(coh__pcache *c, coh__pblock *parent, const int32_t *tokens,
                                uint64_t tick, void **data);

/* The data of an entry (block_bytes). */
const void *coh__pblock_data(const coh__pblock *b);
/* Pins (+1) or unpins (-1) an entry; b may be NULL (nothing to do). */
void coh__pblock_pin(coh__pblock *b, int delta);

/* Marks b as wanted at tick: it is evicted only after every entry that is
 * not (see the top of this file).  Marks from earlier ticks count for
 * nothing. */
void coh__pcache_want(coh__pcache *c, coh__pblock *b, uint64_t tick);

void coh__pcache_get_stats(const coh__pcache *c, coh__pcache_stats *out);

#endif /* COH_PCACHE_H */
