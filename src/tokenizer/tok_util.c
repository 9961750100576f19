/* tok_util.c — UTF-8 helpers and the small growable containers the
 * tokenizer's pipeline passes between stages. */
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_int.h"


/* ---- spans and ids -------------------------------------------------------- */

void coh__spans_free(coh__spans *s) {
  coh__free(s->v);
  s->v = NULL;
  s->n = s->cap = 0;
  s->oom = 0;
}

void coh__spans_push(coh__spans *s, size_t start, size_t end, int32_t val) {
  if (s->oom) return;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    coh__span *nv = coh__realloc(s->v, cap * sizeof *nv);
    if (nv == NULL) {
      s->oom = 1;
      return;
    }
    s->v = nv;
    s->cap = cap;
  }
  s->v[s->n].start = start;
  s->v[s->n].end = end;
  s->v[s->n].val = val;
  s->n++;
}

void coh__ids_free(coh__ids *l) {
  coh__free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
  l->oom = 0;
}

void coh__ids_push(coh__ids *l, int32_t id) {
  if (l->oom) return;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 32;
    int32_t *nv = coh__realloc(l->v, cap * sizeof *nv);
    if (nv == NULL) {
      l->oom = 1;
      return;
    }
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = id;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

size_t coh__utf8_valid_len(const unsigned char *s, size_t n) {
  unsigned c;
  if (n == 0) return 0;
  c = s[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    if (n < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (n < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 ||
        (s[3] & 0xC0) != 0x80)
      return 0;
    return 4;
  }
  return 0;
}

/* Length of the maximal prefix of an invalid sequence at s: the lead byte
 * plus the continuation bytes that could still have been valid (Unicode
 * "maximal subpart"), at least 1. */
static size_t invalid_len(const unsigned char *s, size_t n) {
  unsigned c = s[0], lo, hi;
  size_t need, i;
  if (c >= 0xC2 && c <= 0xDF) need = 2, lo = 0x80, hi = 0xBF;
  else if (c >= 0xE0 && c <= 0xEF)
    need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4)
    need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else
    return 1;
  for (i = 1; i < need && i < n; i++) {
    unsigned b = s[i];
    if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
  }
  return i;
}

int coh__utf8_repair(const char *s, size_t n, coh__buf *out) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0;
  int valid = 1;
  while (i < n) {
    size_t k = coh__utf8_valid_len(u + i, n - i);
    if (k) {
      i += k;
      continue;
    }
    valid = 0;
    coh__buf_add(out, s + run, i - run);
    coh__buf_add(out, "\xEF\xBF\xBD", 3);
    i += invalid_len(u + i, n - i);
    run = i;
  }
  coh__buf_add(out, s + run, n - run);
  return valid;
}

size_t coh__utf8_next(const char *s, size_t n, uint32_t *cp) {
  const unsigned char *u = (const unsigned char *)s;
  if (n == 0) {
    *cp = 0;
    return 0;
  }
  if (u[0] < 0x80 || n < 2) {
    *cp = u[0];
    return 1;
  }
  if (u[0] < 0xE0) {
    *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    return 2;
  }
  if (u[0] < 0xF0 || n < 4) {
    if (n < 3) {
      *cp = u[0];
      return 1;
    }
    *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) |
          (u[2] & 0x3F);
    return 3;
  }
  *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
        ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
  return 4;
}

size_t coh__utf8_prev_len(const char *s, size_t pos) {
  size_t k = 1;
  while (k < pos && k < 4 && ((unsigned char)s[pos - k] & 0xC0) == 0x80) k++;
  return k;
}

int coh__is_whitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 ||
         cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

/* ---- pieces --------------------------------------------------------------- */

void coh__pieces_free(coh__pieces *p) {
  coh__buf_free(&p->text);
  coh__spans_free(&p->spans);
}

void coh__pieces_clear(coh__pieces *p) {
  p->text.n = 0;
  p->spans.n = 0;
}

int coh__is_punct(uint32_t cp) {
  if (cp < 0x80)
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
           (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
  switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return 1;
    default:
      return 0;
  }
}

uint32_t coh__byte_level_cp(unsigned b) {
  unsigned i, extra = 0;
  int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
                  (b >= 0xAE && b <= 0xFF);
  if (printable) return b;
  /* the non-printable bytes take U+0100.. in byte order */
  for (i = 0; i < b; i++)
    if (!((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) ||
          (i >= 0xAE && i <= 0xFF)))
      extra++;
  return 256 + extra;
}
