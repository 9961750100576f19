/* args.c — error printing and strict number parsing shared by subcommands. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
