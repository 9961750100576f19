/*
 * test.h — the project's minimal test harness.  One test program per module;
 * each TEST() is a function registered in main() with RUN().  A failed CHECK
 * prints file:line and the expression, and the program exits non-zero at the
 * end.  Run one case with `./test_x NAME`.
 */
#ifndef COH_TEST_H
#define COH_TEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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

#if defined(__SANITIZE_THREAD__)
#define TEST__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST__TSAN 1
#endif
#endif

/* Threads of this process other than the calling one, from /proc (Linux;
 * -1 where it cannot be read), naming each in stderr.  TEST_MAIN_END
 * requires none: a thread still running when main returns races the exit
 * handlers (atexit, the libraries' static destructors), which is how ONNX
 * Runtime's telemetry thread gave a heap-use-after-free after main under
 * ASan (src/infer/ort.c).  Not under ThreadSanitizer, whose runtime keeps a
 * background thread of its own (and reports unjoined threads itself). */
#ifndef TEST__TSAN
static int test__other_threads(void) {
  char path[64], comm[64], self[32];
  FILE *f;
  int n = 0, tid, pid = (int)getpid();
  DIR *d;
  struct dirent *de;
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  snprintf(self, sizeof self, "%d", (int)syscall(SYS_gettid));
  if ((d = opendir(path)) == NULL) return -1;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.' || strcmp(de->d_name, self) == 0) continue;
    tid = atoi(de->d_name);
    snprintf(path, sizeof path, "/proc/%d/task/%d/comm", pid, tid);
    comm[0] = '\0';
    if ((f = fopen(path, "r")) != NULL) {
      if (fgets(comm, sizeof comm, f) == NULL) comm[0] = '\0';
      fclose(f);
    }
    comm[strcspn(comm, "\n")] = '\0';
    fprintf(stderr, "thread %d (%s) is still running at the end of main\n", tid, comm);
    n++;
  }
  closedir(d);
  return n;
}
#endif

#define TEST_MAIN_BEGIN(argc, argv) test__only = (argc) > 1 ? (argv)[1] : NULL
static int test__main_end(void) {
  if (test__ran == 0 && test__only != NULL) {
    fprintf(stderr, "FAIL: no test case named %s\n", test__only);
    return 1;
  }
#ifndef TEST__TSAN
  CHECK(test__other_threads() <= 0);
#endif
  fprintf(stderr, "%d checks, %d failures\n", test__checks, test__failures);
  return test__failures ? 1 : 0;
}
#define TEST_MAIN_END() test__main_end()

#endif /* COH_TEST_H */
