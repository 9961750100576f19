/*
 * cohort_json.h — a tiny JSON reader and string escaper for agents (header
 * only, no allocation).  Values are spans of the input text; look members up
 * by key, walk arrays, and decode strings into caller buffers.
 *
 *   cj_val cfg = cj_parse(text, len);              // the whole document
 *   cj_val role = cj_get(cfg, "role");             // member (or invalid)
 *   char buf[256]; cj_str(role, buf, sizeof buf);  // decoded string
 *   for (cj_val it = cj_first(arr); cj_ok(it); it = cj_next(arr, it)) ...
 */
#ifndef COHORT_JSON_H
#define COHORT_JSON_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct cj_val {
  const char *p; /* start of the value, NULL if invalid */
  size_t n;      /* length of the value's text */
} cj_val;

static inline int cj_ok(cj_val v) { return v.p != NULL; }

static inline const char *cj__ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* End of the value starting at p (after whitespace), or NULL. */
static inline const char *cj__skip(const char *p, const char *e, int depth) {
  p = cj__ws(p, e);
  if (p >= e || depth > 64) return NULL;
  if (*p == '"') {
    for (p++; p < e; p++) {
      if (*p == '\\') p++;
      else if (*p == '"') return p + 1;
    }
    return NULL;
  }
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = cj__ws(p + 1, e);
    if (p < e && *p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = cj__skip(p, e, depth + 1); /* key */
        if (p == NULL) return NULL;
        p = cj__ws(p, e);
        if (p >= e || *p != ':') return NULL;
        p++;
      }
      p = cj__skip(p, e, depth + 1);
      if (p == NULL) return NULL;
      p = cj__ws(p, e);
      if (p < e && *p == ',') {
        p++;
        continue;
      }
      if (p < e && *p == close) return p + 1;
      return NULL;
    }
  }
  while (p < e && (*p == '-' || *p == '+' || *p == '.' ||
                   (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                   *p == 'E'))
    p++;
  return p;
}

static inline cj_val cj_parse(const char *text, size_t len) {
  cj_val v = {NULL, 0};
  const char *s = cj__ws(text, text + len);
  const char *e = cj__skip(s, text + len, 0);
  if (e != NULL) {
    v.p = s;
    v.n = (size_t)(e - s);
  }
  return v;
}

/* Decodes a string value into out (NUL-terminated, truncated to cap-1);
 * returns the decoded length, or -1 if v is not a string.  \uXXXX escapes
 * become UTF-8 (surrogate pairs are not combined). */
static inline long cj_str(cj_val v, char *out, size_t cap) {
  const char *p, *e;
  size_t n = 0;
  if (!cj_ok(v) || v.n < 2 || v.p[0] != '"' || cap == 0) return -1;
  p = v.p + 1;
  e = v.p + v.n - 1;
  while (p < e) {
    char c = *p++;
    char tmp[4];
    size_t k = 1, i;
    tmp[0] = c;
    if (c == '\\' && p < e) {
      c = *p++;
      switch (c) {
        case 'n': tmp[0] = '\n'; break;
        case 't': tmp[0] = '\t'; break;
        case 'r': tmp[0] = '\r'; break;
        case 'b': tmp[0] = '\b'; break;
        case 'f': tmp[0] = '\f'; break;
        case 'u': {
          unsigned cp = 0;
          int d;
          for (d = 0; d < 4 && p < e; d++, p++) {
            char h = *p;
            cp = cp * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10
                                      : h >= 'A' ? h - 'A' + 10 : h - '0');
          }
          if (cp < 0x80) {
            tmp[0] = (char)cp;
          } else if (cp < 0x800) {
            tmp[0] = (char)(0xc0 | cp >> 6);
            tmp[1] = (char)(0x80 | (cp & 63));
            k = 2;
          } else {
            tmp[0] = (char)(0xe0 | cp >> 12);
            tmp[1] = (char)(0x80 | ((cp >> 6) & 63));
            tmp[2] = (char)(0x80 | (cp & 63));
            k = 3;
          }
          break;
        }
        default: tmp[0] = c;
      }
    }
    for (i = 0; i < k; i++)
      if (n + 1 < cap) out[n++] = tmp[i];
  }
  out[n] = '\0';
  return (long)n;
}

/* Member `key` of an object value (invalid if absent or not an object). */
static inline cj_val cj_get(cj_val obj, const char *key) {
  cj_val none = {NULL, 0};
  const char *p, *e;
  size_t kl = strlen(key);
  if (!cj_ok(obj) || obj.p[0] != '{') return none;
  p = obj.p + 1;
  e = obj.p + obj.n - 1;
  for (;;) {
    const char *ks, *ke, *vs, *ve;
    p = cj__ws(p, e);
    if (p >= e || *p != '"') return none;
    ks = p;
    ke = cj__skip(p, e, 1);
    if (ke == NULL) return none;
    p = cj__ws(ke, e);
    if (p >= e || *p != ':') return none;
    vs = cj__ws(p + 1, e);
    ve = cj__skip(vs, e, 1);
    if (ve == NULL) return none;
    if ((size_t)(ke - ks) == kl + 2 && !memcmp(ks + 1, key, kl)) {
      cj_val v;
      v.p = vs;
      v.n = (size_t)(ve - vs);
      return v;
    }
    p = cj__ws(ve, e);
    if (p < e && *p == ',') p++;
  }
}

/* Array iteration: first element, then the element after `it`. */
static inline cj_val cj_first(cj_val arr) {
  cj_val v = {NULL, 0};
  const char *p, *e, *ve;
  if (!cj_ok(arr) || arr.p[0] != '[') return v;
  e = arr.p + arr.n - 1;
  p = cj__ws(arr.p + 1, e);
  if (p >= e) return v;
  ve = cj__skip(p, e, 1);
  if (ve == NULL) return v;
  v.p = p;
  v.n = (size_t)(ve - p);
  return v;
}
static inline cj_val cj_next(cj_val arr, cj_val it) {
  cj_val v = {NULL, 0};
  const char *e = arr.p + arr.n - 1, *p = cj__ws(it.p + it.n, e), *ve;
  if (p >= e || *p != ',') return v;
  p = cj__ws(p + 1, e);
  ve = cj__skip(p, e, 1);
  if (ve == NULL) return v;
  v.p = p;
  v.n = (size_t)(ve - p);
  return v;
}

static inline long cj_int(cj_val v, long dflt) {
  if (!cj_ok(v) || !((v.p[0] >= '0' && v.p[0] <= '9') || v.p[0] == '-'))
    return dflt;
  return strtol(v.p, NULL, 10);
}

/* Appends s (n bytes) to out as a JSON string body (no quotes); returns
 * the new length (stops at cap-1). */
static inline size_t cj_escape(char *out, size_t len, size_t cap,
                               const char *s, size_t n) {
  static const char hx[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[7];
    size_t k = 0, j;
    if (c == '"' || c == '\\') {
      esc[k++] = '\\';
      esc[k++] = (char)c;
    } else if (c == '\n') {
      esc[k++] = '\\';
      esc[k++] = 'n';
    } else if (c < 0x20) {
      esc[k++] = '\\'; esc[k++] = 'u'; esc[k++] = '0'; esc[k++] = '0';
      esc[k++] = hx[c >> 4]; esc[k++] = hx[c & 15];
    } else {
      esc[k++] = (char)c;
    }
    if (len + k >= cap) break;
    for (j = 0; j < k; j++) out[len++] = esc[j];
  }
  out[len < cap ? len : cap - 1] = '\0';
  return len;
}

#endif /* COHORT_JSON_H */
