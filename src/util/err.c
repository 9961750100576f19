/* err.c — the error list's tables and the error-record helpers. */
#include <stdio.h>
#include <string.h>

#include "util_int.h"

const char *coh_strerror(int code) {
  switch (code) {
#define COH__ERR_DESC(name, val, desc) \
  case (val):                          \
    return desc;
    COH_ERRNO_MAP(COH__ERR_DESC)
#undef COH__ERR_DESC
  }
  return "unknown error";
}

const char *coh_err_name(int code) {
  switch (code) {
#define COH__ERR_NAME(name, val, desc) \
  case (val):                          \
    return "COH_" #name;
    COH_ERRNO_MAP(COH__ERR_NAME)
#undef COH__ERR_NAME
  }
  return "COH_UNKNOWN";
}

const char *coh_version(void) { return COH_VERSION; }

void coh_err_clear(coh_err *err) {
  if (err == NULL) return;
  err->code = 0;
  err->msg[0] = '\0';
}

int coh__verr(coh_err *err, int code, const char *fmt, va_list ap) {
  if (err == NULL) return code;
  err->code = code;
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  return code;
}

int coh__err(coh_err *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  coh__verr(err, code, fmt, ap);
  va_end(ap);
  return code;
}

void coh__err_prefix(coh_err *err, const char *fmt, ...) {
  char prefix[COH_ERRMSG_MAX];
  char old[COH_ERRMSG_MAX];
  va_list ap;
  size_t n;
  if (err == NULL) return;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  /* Built in two bounded copies: the result is truncated, never overrun. */
  n = strlen(prefix);
  if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
  memcpy(err->msg, prefix, n);
  err->msg[n++] = ':';
  err->msg[n++] = ' ';
  old[sizeof old - 1] = '\0';
  strncpy(err->msg + n, old, sizeof err->msg - n - 1);
  err->msg[sizeof err->msg - 1] = '\0';
}
