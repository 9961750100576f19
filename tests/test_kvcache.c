/* test_kvcache.c — packing KV rows when the decode batch is re-laid out, and
 * laying a row into a bucket slot. */
#include "infer/kvcache.h"
#include "test.h"

/* Element (row, head, col, d) of a [rows, heads, cols, dim] float tensor
 * filled with a value that encodes its coordinates. */
static float code(int row, int head, int col, int d) {
  return (float)(row * 1000 + head * 100 + col * 10 + d);
}

static void fill(float *t, int rows, int heads, int cols, int dim) {
  for (int r = 0; r < rows; r++)
    for (int h = 0; h < heads; h++)
      for (int c = 0; c < cols; c++)
        for (int d = 0; d < dim; d++)
          t[((r * heads + h) * cols + c) * dim + d] = code(r, h, c, d);
}

static void test_pack_with_holes(void) {
  enum { R = 3, H = 2, C = 5, D = 3, DC = 4 };
  float src[R * H * C * D], dst[2 * H * DC * D];
  const int64_t valid[C] = {1, 0, 1, 1, 0}; /* columns 0, 2, 3 */
  fill(src, R, H, C, D);
  memset(dst, 0, sizeof dst);
  CHECK_EQ_INT(coh__kv_pack_row(dst, DC, 1, src, C, 2, valid, H, D, sizeof(float)), 3);
  for (int h = 0; h < H; h++) {
    const int cols[3] = {0, 2, 3};
    for (int k = 0; k < 3; k++)
      for (int d = 0; d < D; d++)
        CHECK(dst[((1 * H + h) * DC + k) * D + d] == code(2, h, cols[k], d));
    /* the rest of the row and the other row are untouched */
    for (int d = 0; d < D; d++) CHECK(dst[((1 * H + h) * DC + 3) * D + d] == 0.0f);
    for (int c = 0; c < DC; c++) CHECK(dst[((0 * H + h) * DC + c) * D] == 0.0f);
  }
}

static void test_pack_whole_row(void) {
  enum { H = 2, C = 3, D = 2, DC = 6 };
  uint16_t src[1 * H * C * D], dst[3 * H * DC * D];
  for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) src[i] = (uint16_t)(i + 1);
  memset(dst, 0, sizeof dst);
  CHECK_EQ_INT(coh__kv_pack_row(dst, DC, 2, src, C, 0, NULL, H, D, sizeof(uint16_t)), 3);
  for (int h = 0; h < H; h++)
    for (int c = 0; c < C; c++)
      for (int d = 0; d < D; d++)
        CHECK(dst[((2 * H + h) * DC + c) * D + d] == src[(h * C + c) * D + d]);
}

static void test_pack_overflow_refused(void) {
  float src[1 * 1 * 4 * 1] = {1, 2, 3, 4}, dst[1 * 1 * 3 * 1] = {0, 0, 0};
  CHECK_EQ_INT(coh__kv_pack_row(dst, 3, 0, src, 4, 0, NULL, 1, 1, sizeof(float)), -1);
  CHECK(dst[0] == 0 && dst[1] == 0 && dst[2] == 0);
  /* an empty row packs to nothing */
  CHECK_EQ_INT(coh__kv_pack_row(dst, 3, 0, src, 0, 0, NULL, 1, 1, sizeof(float)), 0);
}

/* A row joining a bucket: the first n columns of a source row (of a wider
 * or a narrower tensor), zeros after them, for every head; the other rows
 * of the destination are untouched. */
static void test_copy_prefix(void) {
  enum { R = 2, H = 2, SC = 5, D = 3, DC = 7, N = 4 };
  float src[R * H * SC * D], dst[3 * H * DC * D];
  fill(src, R, H, SC, D);
  for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++) dst[i] = -1.0f;
  coh__kv_copy_prefix(dst, DC, 1, src, SC, 1, N, H, D, sizeof(float));
  for (int h = 0; h < H; h++) {
    for (int c = 0; c < DC; c++)
      for (int d = 0; d < D; d++)
        CHECK(dst[((1 * H + h) * DC + c) * D + d] == (c < N ? code(1, h, c, d) : 0.0f));
    for (int c = 0; c < DC; c++) {
      CHECK(dst[((0 * H + h) * DC + c) * D] == -1.0f);
      CHECK(dst[((2 * H + h) * DC + c) * D] == -1.0f);
    }
  }
  /* n = 0: the whole row is zeroed */
  coh__kv_copy_prefix(dst, DC, 0, src, SC, 0, 0, H, D, sizeof(float));
  for (int h = 0; h < H; h++)
    for (int c = 0; c < DC; c++) CHECK(dst[((0 * H + h) * DC + c) * D] == 0.0f);
  {
    /* n = dst_cols, from a wider source: nothing to zero */
    float narrow[1 * H * 3 * D];
    coh__kv_copy_prefix(narrow, 3, 0, src, SC, 1, 3, H, D, sizeof(float));
    for (int h = 0; h < H; h++)
      for (int c = 0; c < 3; c++)
        for (int d = 0; d < D; d++) CHECK(narrow[(h * 3 + c) * D + d] == code(1, h, c, d));
  }
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_pack_with_holes);
  RUN(test_pack_whole_row);
  RUN(test_pack_overflow_refused);
  RUN(test_copy_prefix);
  return TEST_MAIN_END();
}
