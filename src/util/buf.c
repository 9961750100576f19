/* buf.c — the growable byte buffer (see util_int.h). */
#include <stdio.h>
#include <string.h>

#include "util_int.h"

/* ---- buffers ---------------------------------------------------------- */

void coh__buf_free(coh__buf *b) {
  coh__free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
  b->oom = 0;
}

void coh__buf_reserve(coh__buf *b, size_t extra) {
  size_t need, cap;
  char *np;
  if (b->oom) return;
  if (extra > SIZE_MAX / 2 - b->n) {
    b->oom = 1;
    return;
  }
  need = b->n + extra + 1; /* room for a NUL terminator */
  if (need <= b->cap) return;
  cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  np = coh__realloc(b->p, cap);
  if (np == NULL) {
    b->oom = 1;
    return;
  }
  b->p = np;
  b->cap = cap;
}

void coh__buf_add(coh__buf *b, const void *s, size_t n) {
  coh__buf_reserve(b, n);
  if (b->oom) return;
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

void coh__buf_addc(coh__buf *b, char c) { coh__buf_add(b, &c, 1); }

void coh__buf_add_cp(coh__buf *b, uint32_t cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  coh__buf_add(b, u, n);
}

void coh__buf_uleb(coh__buf *b, uint64_t v) {
  do {
    char byte = (char)(v & 0x7f);
    v >>= 7;
    if (v) byte = (char)(byte | 0x80);
    coh__buf_addc(b, byte);
  } while (v);
}

void coh__buf_printf(coh__buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    coh__buf_add(b, tmp, (size_t)n);
    return;
  }
  coh__buf_reserve(b, (size_t)n);
  if (b->oom) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)n;
}
