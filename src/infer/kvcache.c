/* kvcache.c — packing rows of KV tensors (see kvcache.h). */
#include <string.h>

#include "kvcache.h"

int64_t coh__kv_pack_row(void *dst, int64_t dst_cols, int64_t dst_row,
                         const void *src, int64_t src_cols, int64_t src_row,
                         const int64_t *valid, int heads, int head_dim,
                         size_t elem_size) {
  const size_t col_bytes = (size_t)head_dim * elem_size;
  int64_t n = 0, c;
  int h;
  for (c = 0; c < src_cols; c++)
    if (valid == NULL || valid[c]) n++;
  if (n > dst_cols) return -1;
  for (h = 0; h < heads; h++) {
    const char *s = (const char *)src +
                    (((size_t)src_row * (size_t)heads + (size_t)h) *
                     (size_t)src_cols) * col_bytes;
    char *d = (char *)dst + (((size_t)dst_row * (size_t)heads + (size_t)h) *
                             (size_t)dst_cols) * col_bytes;
    if (valid == NULL) {
      /* Whole row valid: one contiguous copy per head. */
      memcpy(d, s, (size_t)src_cols * col_bytes);
      continue;
    }
    for (c = 0; c < src_cols; c++) {
      if (!valid[c]) continue;
      memcpy(d, s + (size_t)c * col_bytes, col_bytes);
      d += col_bytes;
    }
  }
  return n;
}

void coh__kv_copy_prefix(void *dst, int64_t dst_cols, int64_t dst_row, const void *src,
                         int64_t src_cols, int64_t src_row, int64_t n, int heads, int head_dim,
                         size_t elem_size) {
  const size_t col_bytes = (size_t)head_dim * elem_size;
  int h;
  for (h = 0; h < heads; h++) {
    const char *s = (const char *)src +
                    (((size_t)src_row * (size_t)heads + (size_t)h) * (size_t)src_cols) * col_bytes;
    char *d = (char *)dst +
              (((size_t)dst_row * (size_t)heads + (size_t)h) * (size_t)dst_cols) * col_bytes;
    memcpy(d, s, (size_t)n * col_bytes);
    memset(d + (size_t)n * col_bytes, 0, (size_t)(dst_cols - n) * col_bytes);
  }
}
