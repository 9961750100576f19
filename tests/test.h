/*
 * test.h — the project's minimal test harness.  One test program per module;
 * each TEST() is a function registered in main() with RUN().  A failed CHECK
 * prints file:line and the expression, and the program exits non-zero at the
 * end.  Run one case with `./test_x NAME`.
 */
#ifndef COH_TEST_H
#define COH_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test__failures;
static int test__checks;
static const char *test__only;
static int test__ran; /* cases run: `./test_x NAME` that names none fails */

#define CHECK(expr)                                                       \
  do {                                                                    \
    test__checks++;                                                       \
    if (!(expr)) {                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
              #expr);                                                     \
      test__failures++;                                                   \
    }                                                                     \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                \
  do {                                                                    \
    long long test__a = (long long)(a), test__b = (long long)(b);         \
    test__checks++;                                                       \
    if (test__a != test__b) {                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n",   \
              __FILE__, __LINE__, #a, #b, test__a, test__b);              \
      test__failures++;                                                   \
    }                                                                     \
  } while (0)

#define CHECK_STR(a, b)                                                   \
  do {                                                                    \
    const char *test__a = (a), *test__b = (b);                            \
    test__checks++;                                                       \
    if (test__a == NULL || test__b == NULL || strcmp(test__a, test__b)) { \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" vs \"%s\")\n", \
              __FILE__, __LINE__, #a, #b, test__a ? test__a : "(null)",   \
              test__b ? test__b : "(null)");                              \
      test__failures++;                                                   \
    }                                                                     \
  } while (0)

/* Aborts the current test function (use after a CHECK whose failure makes
 * the rest meaningless). */
#define REQUIRE(expr)                                                     \
  do {                                                                    \
    int test__ok = (expr) ? 1 : 0; /* evaluated once */                   \
    test__checks++;                                                       \
    if (!test__ok) {                                                      \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, \
              #expr);                                                     \
      test__failures++;                                                   \
      return;                                                             \
    }                                                                     \
  } while (0)

#define RUN(fn)                                                           \
  do {                                                                    \
    if (test__only == NULL || strcmp(test__only, #fn) == 0) {             \
      int test__before = test__failures;                                  \
      test__ran++;                                                        \
      fn();                                                               \
      fprintf(stderr, "%s %s\n", test__failures == test__before ? "ok  " \
                                                                : "FAIL", \
              #fn);                                                       \
    }                                                                     \
  } while (0)

#define TEST_MAIN_BEGIN(argc, argv) test__only = (argc) > 1 ? (argv)[1] : NULL
#define TEST_MAIN_END()                                                   \
  (test__ran == 0 && test__only != NULL                                   \
       ? (fprintf(stderr, "FAIL: no test case named %s\n", test__only), 1) \
       : (fprintf(stderr, "%d checks, %d failures\n", test__checks,       \
                  test__failures),                                        \
          test__failures ? 1 : 0))

#endif /* COH_TEST_H */
