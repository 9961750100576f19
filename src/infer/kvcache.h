/*
 * kvcache.h — layout of the KV cache of a decode batch, and the copies that
 * re-lay it out when requests join or leave.
 *
 * A decode batch of a GroupQueryAttention model keeps, per layer, a key and a value tensor of shape
 * [rows, kv_heads, cols, head_dim] plus a mask [rows, cols] that says which
 * columns of each row hold a real token (1) and which are padding (0).  In
 * steady state the present tensors of step t are the past tensors of step
 * t+1 with no copy; only a change of composition packs every surviving row
 * into a fresh, compact layout (valid columns first, in order).  Concat
 * models keep each row in a slot of a per-bucket tensor that persists
 * between steps (engine.c, "bucketed decode"); coh__kv_copy_prefix lays a
 * row into its slot when it joins a bucket.
 */
#ifndef COH_KVCACHE_H
#define COH_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

/* Copies the valid columns of row src_row of src (shape [*, heads, src_cols,
 * head_dim]) into columns [0, n) of row dst_row of dst (shape [*, heads,
 * dst_cols, head_dim]), keeping their order, for every head.  valid (borrowed,
 * src_cols entries, may be NULL = all valid) marks the columns to keep.
 * Returns n, or -1 if the valid columns would not fit in dst_cols. */
int64_t coh__kv_pack_row(void *dst, int64_t dst_cols, int64_t dst_row,
                         const void *src, int64_t src_cols, int64_t src_row,
                         const int64_t *valid, int heads, int head_dim,
                         size_t elem_size);

/* Copies columns [0, n) of row src_row of src (shape [*, heads, src_cols,
 * head_dim]) to columns [0, n) of row dst_row of dst (shape [*, heads,
 * dst_cols, head_dim]) and zeroes columns [n, dst_cols) of that row, for
 * every head.  The caller guarantees n <= src_cols and n <= dst_cols. */
void coh__kv_copy_prefix(void *dst, int64_t dst_cols, int64_t dst_row, const void *src,
                         int64_t src_cols, int64_t src_row, int64_t n, int heads, int head_dim,
                         size_t elem_size);

#endif /* COH_KVCACHE_H */
