/* test_util.c — error tables and the replaceable allocator. */
#include <stdlib.h>

#include "test.h"
#include "util/util_int.h"

static void test_error_tables(void) {
  CHECK_STR(coh_err_name(COH_ENOMEM), "COH_ENOMEM");
  CHECK_STR(coh_strerror(COH_OK), "success");
  CHECK_STR(coh_err_name(12345), "COH_UNKNOWN");
}

static void test_err_format(void) {
  coh_err e;
  coh_err_clear(&e);
  CHECK_EQ_INT(coh__err(&e, COH_EFORMAT, "%s:%d: bad", "f.json", 3),
               COH_EFORMAT);
  CHECK_STR(e.msg, "f.json:3: bad");
  coh__err_prefix(&e, "loading %s", "x");
  CHECK_STR(e.msg, "loading x: f.json:3: bad");
  CHECK_EQ_INT(coh__err(NULL, COH_EIO, "ignored"), COH_EIO);
}

static int fail_after = -1;
static void *counting_malloc(size_t n) {
  if (fail_after == 0) return NULL;
  if (fail_after > 0) fail_after--;
  return malloc(n);
}

static void test_allocator_replace(void) {
  coh_err e;
  char *buf = NULL;
  CHECK_EQ_INT(coh_replace_allocator(NULL, realloc, calloc, free), COH_EINVAL);
  CHECK_EQ_INT(coh_replace_allocator(counting_malloc, realloc, calloc, free), 0);
  fail_after = 0;
  CHECK(coh__strdup("abc") == NULL);
  fail_after = -1;
  CHECK_EQ_INT(coh__read_file("/nonexistent/cohort", &buf, NULL, &e),
               COH_ENOENT);
  CHECK(strstr(e.msg, "/nonexistent/cohort") != NULL);
  coh_replace_allocator(malloc, realloc, calloc, free);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_error_tables);
  RUN(test_err_format);
  RUN(test_allocator_replace);
  return TEST_MAIN_END();
}
