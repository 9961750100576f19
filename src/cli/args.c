/* args.c — error printing and strict number parsing shared by subcommands. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_int.h"

static void vreport(const char *cmd, const char *fmt, va_list ap) {
  fprintf(stderr, "cohort %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int coh__usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(cmd, fmt, ap);
  va_end(ap);
  return COH_EXIT_USAGE;
}

int coh__runtime_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(cmd, fmt, ap);
  va_end(ap);
  return COH_EXIT_RUNTIME;
}

int coh__parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  long long v;
  if (s == NULL || *s == '\0') return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *end != '\0' || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int coh__parse_size_kib(const char *s, int64_t *out) {
  char num[32];
  size_t n = s ? strlen(s) : 0;
  int64_t v;
  int kib = n > 0 && (s[n - 1] == 'K' || s[n - 1] == 'k');
  if (n == 0 || n - (size_t)kib >= sizeof num) return -1;
  memcpy(num, s, n - (size_t)kib);
  num[n - (size_t)kib] = '\0';
  if (coh__parse_i64(num, 0, kib ? (int64_t)1 << 30 : (int64_t)1 << 20, &v)) return -1;
  *out = kib ? v : v << 10;
  return 0;
}

int coh__parse_f64(const char *s, double lo, double hi, double *out) {
  char *end;
  double v;
  if (s == NULL || *s == '\0') return -1;
  errno = 0;
  v = strtod(s, &end);
  if (errno || *end != '\0' || !isfinite(v) || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

char *coh__default_cache_dir(void) {
  /* The environment is read here, in the CLI, never in the library. */
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  const char *base = xdg && xdg[0] ? xdg : home && home[0] ? home : NULL;
  const char *suffix = xdg && xdg[0] ? "/cohort" : "/.cache/cohort";
  size_t n;
  char *p;
  if (base == NULL) return NULL;
  n = strlen(base) + strlen(suffix) + 1;
  p = malloc(n);
  if (p) snprintf(p, n, "%s%s", base, suffix);
  return p;
}

char *coh__exe_relative(const char *rel) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  char *slash, *p;
  size_t len;
  if (n <= 0) return NULL;
  exe[n] = '\0';
  slash = strrchr(exe, '/');
  if (slash == NULL) return NULL;
  *slash = '\0';
  len = strlen(exe) + strlen(rel) + 2;
  p = malloc(len);
  if (p) snprintf(p, len, "%s/%s", exe, rel);
  if (p && access(p, R_OK) != 0) {
    free(p);
    return NULL;
  }
  return p;
}
