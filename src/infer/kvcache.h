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
 * models pack rows into per-bucket tensors every step (engine.c, "bucketed
 * decode") with coh__kv_pack_row too.
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

#endif /* COH_KVCACHE_H */
