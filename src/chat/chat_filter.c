/* chat_filter.c — filters, tests, the methods of strings and mappings, and
 * the global functions (namespace, range, raise_exception, strftime_now),
 * each with @huggingface/jinja's behaviour, errors included. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "chat_int.h"

static const char *const filters[] = {
    "safe",  "tojson",  "list",     "first",      "last",      "length",
    "reverse", "sort",  "join",     "string",     "unique",    "upper",
    "lower", "title",   "capitalize", "trim",     "indent",    "int",
    "float", "abs",     "items",    "bool",       "default",   "selectattr",
    "rejectattr", "map", "replace", "get",        "keys",      "values",
    "dictsort"};
static const char *const tests[] = {
    "boolean", "callable", "odd",    "even",    "false",   "true",
    "none",    "string",   "number", "integer", "iterable", "mapping",
    "sequence", "lower",   "upper",  "defined", "undefined", "equalto",
    "eq"};

int coh__ch_filter_known(const char *name) {
  size_t i;
  for (i = 0; i < sizeof filters / sizeof filters[0]; i++)
    if (!strcmp(filters[i], name)) return 1;
  return 0;
}
int coh__ch_test_known(const char *name) {
  size_t i;
  for (i = 0; i < sizeof tests / sizeof tests[0]; i++)
    if (!strcmp(tests[i], name)) return 1;
  return 0;
}

#define OOM() coh__ch_fail(r, COH_ENOMEM, "out of memory")

static int is_word(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || c == '_';
}
static char up(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 32) : c; }
static char low(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

static int newstr(ch_render *r, const char *p, size_t n, ch_val *out) {
  char *c = coh__ch_strdup(&r->ar, p, n);
  if (c == NULL) return OOM();
  *out = coh__ch_str(c, n);
  return 0;
}
static int bufstr(ch_render *r, coh__buf *b, ch_val *out) {
  int rc;
  if (coh__ch_output_check(r, b)) {
    coh__buf_free(b);
    return -1;
  }
  rc = newstr(r, b->p ? b->p : "", b->n, out);
  coh__buf_free(b);
  return rc;
}
static ch_val mkarr(ch_arr *a) {
  ch_val v;
  v.t = V_ARR;
  v.u.a = a;
  return v;
}

static int trim(ch_render *r, ch_val s, int left, int right, ch_val *out) {
  const char *p = s.u.s.p;
  size_t n = s.u.s.n, k;
  if (left)
    while (n && (k = coh__ch_js_ws_at(p, n)) > 0) p += k, n -= k;
  if (right)
    while (n && (k = coh__ch_js_ws_before(p, n)) > 0) n -= k;
  *out = coh__ch_str(p, n);
  (void)r;
  return 0;
}

static int is_letter(utf8proc_int32_t cp) {
  utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL ||
         c == UTF8PROC_CATEGORY_LT;
}

/* Case mapping as JavaScript's toUpperCase/toLowerCase: utf8proc's simple
 * mappings, plus the unconditional special cases that change length for
 * the characters chat text meets (ß -> SS, İ -> i̇) and the final sigma. */
static void map_cp(coh__buf *b, const char *p, size_t n, size_t i,
                   utf8proc_int32_t cp, int how) {
  if (how == 'u') {
    if (cp == 0xDF) coh__buf_add(b, "SS", 2);
    else coh__buf_add_cp(b, (uint32_t)utf8proc_toupper(cp));
    return;
  }
  if (cp == 0x130) {
    coh__buf_add(b, "i\xCC\x87", 3);
    return;
  }
  if (cp == 0x3A3) {
    /* final sigma: after a letter and not before one */
    int before = 0, after = 0;
    size_t k = i;
    while (k > 0) {
      utf8proc_int32_t c;
      size_t s = k - 1;
      while (s > 0 && ((unsigned char)p[s] & 0xC0) == 0x80) s--;
      if (utf8proc_iterate((const utf8proc_uint8_t *)p + s, (utf8proc_ssize_t)(k - s), &c) <= 0) break;
      before = is_letter(c);
      break;
    }
    {
      size_t j = i + 2;
      utf8proc_int32_t c;
      if (j < n && utf8proc_iterate((const utf8proc_uint8_t *)p + j, (utf8proc_ssize_t)(n - j), &c) > 0)
        after = is_letter(c);
    }
    coh__buf_add_cp(b, before && !after ? 0x3C2 : 0x3C3);
    return;
  }
  coh__buf_add_cp(b, (uint32_t)utf8proc_tolower(cp));
}

static int casemap(ch_render *r, ch_val s, int how, ch_val *out) {
  coh__buf b = {0};
  size_t i = 0;
  const char *p = s.u.s.p;
  size_t n = s.u.s.n;
  if (coh__ch_step(r, n / 64)) return -1;
  if (how == 't') {
    /* JavaScript's /\b\w/g: ASCII word characters only */
    char *c = coh__ch_strdup(&r->ar, p, n);
    if (c == NULL) return OOM();
    for (i = 0; i < n; i++)
      if (is_word((unsigned char)c[i]) && (i == 0 || !is_word((unsigned char)c[i - 1])))
        c[i] = up(c[i]);
    *out = coh__ch_str(c, n);
    return 0;
  }
  while (i < n) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)p + i, (utf8proc_ssize_t)(n - i), &cp);
    if (l <= 0) {
      coh__buf_addc(&b, p[i++]);
      continue;
    }
    if (how == 'c') {
      /* charAt(0).toUpperCase(): the first UTF-16 unit (a character outside
       * the BMP is left as it is) */
      if (i == 0 && cp < 0x10000) map_cp(&b, p, n, i, cp, 'u');
      else coh__buf_add(&b, p + i, (size_t)l);
    } else {
      map_cp(&b, p, n, i, cp, how);
    }
    i += (size_t)l;
  }
  return bufstr(r, &b, out);
}

static int starts_ends(ch_render *r, ch_val s, ch_val *args, size_t na, int ends,
                       ch_val *out) {
  size_t i;
  ch_val pat;
  if (na == 0) return coh__ch_fail(r, COH_EFORMAT, "%s() requires an argument", ends ? "endswith" : "startswith");
  pat = args[0];
  if (pat.t == V_STR) {
    int m = pat.u.s.n <= s.u.s.n &&
            !memcmp(s.u.s.p + (ends ? s.u.s.n - pat.u.s.n : 0), pat.u.s.p, pat.u.s.n);
    *out = coh__ch_bool(m);
    return 0;
  }
  if (pat.t == V_ARR || pat.t == V_TUPLE) {
    for (i = 0; i < pat.u.a->n; i++) {
      ch_val x = pat.u.a->v[i];
      if (x.t != V_STR) return coh__ch_fail(r, COH_EFORMAT, "%s() tuple elements must be strings", ends ? "endswith" : "startswith");
      if (x.u.s.n <= s.u.s.n &&
          !memcmp(s.u.s.p + (ends ? s.u.s.n - x.u.s.n : 0), x.u.s.p, x.u.s.n)) {
        *out = coh__ch_bool(1);
        return 0;
      }
    }
    *out = coh__ch_bool(0);
    return 0;
  }
  return coh__ch_fail(r, COH_EFORMAT, "%s() argument must be a string or a tuple of strings", ends ? "endswith" : "startswith");
}

static int split(ch_render *r, ch_val s, ch_val *args, size_t na, ch_val *out) {
  ch_val sep = na > 0 ? args[0] : coh__ch_null();
  ch_val ms = na > 1 ? args[1] : coh__ch_int(-1);
  ch_arr *a = coh__ch_arr_new(r, 0);
  const char *p = s.u.s.p;
  size_t n = s.u.s.n, k;
  int64_t max;
  if (a == NULL) return OOM();
  if (sep.t != V_STR && sep.t != V_NULL) return coh__ch_fail(r, COH_EFORMAT, "split: sep must be a string or none");
  if (ms.t != V_INT) return coh__ch_fail(r, COH_EFORMAT, "split: maxsplit must be an integer");
  max = ms.u.i;
  if (coh__ch_step(r, n / 16)) return -1;
  if (sep.t == V_NULL) {
    while (n && (k = coh__ch_js_ws_at(p, n)) > 0) p += k, n -= k;
    while (n) {
      size_t w = 0;
      if (max != -1 && (int64_t)a->n >= max) {
        if (coh__ch_arr_push(r, a, coh__ch_str(p, n))) return -1;
        break;
      }
      while (w < n && coh__ch_js_ws_at(p + w, n - w) == 0) w++;
      if (coh__ch_arr_push(r, a, coh__ch_str(p, w))) return -1;
      p += w, n -= w;
      while (n && (k = coh__ch_js_ws_at(p, n)) > 0) p += k, n -= k;
    }
  } else {
    if (sep.u.s.n == 0) return coh__ch_fail(r, COH_EFORMAT, "split: empty separator");
    for (;;) {
      const char *hit = n >= sep.u.s.n ? memmem(p, n, sep.u.s.p, sep.u.s.n) : NULL;
      if (hit == NULL || (max != -1 && (int64_t)a->n >= max)) {
        if (coh__ch_arr_push(r, a, coh__ch_str(p, n))) return -1;
        break;
      }
      if (coh__ch_arr_push(r, a, coh__ch_str(p, (size_t)(hit - p)))) return -1;
      n -= (size_t)(hit - p) + sep.u.s.n;
      p = hit + sep.u.s.n;
    }
  }
  *out = mkarr(a);
  return 0;
}

static int replace(ch_render *r, ch_val s, ch_val *args, size_t na, ch_val *out) {
  ch_val old, nw, cnt = coh__ch_null();
  int64_t left;
  coh__buf b = {0};
  const char *p = s.u.s.p;
  size_t n = s.u.s.n;
  if (na < 2) return coh__ch_fail(r, COH_EFORMAT, "replace() requires two arguments");
  old = args[0], nw = args[1];
  if (old.t != V_STR || nw.t != V_STR) return coh__ch_fail(r, COH_EFORMAT, "replace() arguments must be strings");
  if (na > 2) {
    if (args[2].t == V_KWARGS) {
      ch_val *c = coh__ch_obj_get(args[2].u.o, "count", 5);
      if (c) cnt = *c;
    } else {
      cnt = args[2];
    }
  }
  if (cnt.t != V_INT && cnt.t != V_NULL) return coh__ch_fail(r, COH_EFORMAT, "replace() count must be an integer or none");
  if (cnt.t == V_INT && cnt.u.i == 0) { *out = s; return 0; }
  left = cnt.t == V_INT && cnt.u.i >= 0 ? cnt.u.i : INT64_MAX;
  if (coh__ch_step(r, n / 16)) return -1;
  if (old.u.s.n == 0) {
    /* matches before every character and at the end */
    size_t i = 0;
    for (;;) {
      if (left > 0) coh__buf_add(&b, nw.u.s.p, nw.u.s.n), left--;
      if (i >= n) break;
      {
        size_t l = coh__utf8_seq((const unsigned char *)p + i, n - i);
        if (l == 0) l = 1;
        coh__buf_add(&b, p + i, l);
        i += l;
      }
      if (coh__ch_output_check(r, &b)) { coh__buf_free(&b); return -1; }
    }
  } else {
    while (n) {
      const char *hit = left > 0 && n >= old.u.s.n ? memmem(p, n, old.u.s.p, old.u.s.n) : NULL;
      if (hit == NULL) break;
      coh__buf_add(&b, p, (size_t)(hit - p));
      coh__buf_add(&b, nw.u.s.p, nw.u.s.n);
      left--;
      n -= (size_t)(hit - p) + old.u.s.n;
      p = hit + old.u.s.n;
      if (coh__ch_output_check(r, &b)) { coh__buf_free(&b); return -1; }
    }
    coh__buf_add(&b, p, n);
  }
  return bufstr(r, &b, out);
}

/* ---- comparisons (sort, dictsort) ------------------------------------------- */
static int compare(ch_render *r, ch_val a, ch_val b, int cs, int *res) {
  int an = a.t == V_INT || a.t == V_FLOAT || a.t == V_BOOL;
  int bn = b.t == V_INT || b.t == V_FLOAT || b.t == V_BOOL;
  if (a.t == V_NULL && b.t == V_NULL) { *res = 0; return 0; }
  if (a.t == V_NULL || b.t == V_NULL || a.t == V_UNDEF || b.t == V_UNDEF) {
    if (a.t == V_UNDEF && b.t == V_UNDEF) { *res = 0; return 0; }
    return coh__ch_fail(r, COH_EFORMAT, "cannot compare a %s with a %s",
                        coh__ch_type_name(a.t), coh__ch_type_name(b.t));
  }
  if (an && bn) {
    double x = a.t == V_INT ? (double)a.u.i : a.t == V_FLOAT ? a.u.f : a.u.b;
    double y = b.t == V_INT ? (double)b.u.i : b.t == V_FLOAT ? b.u.f : b.u.b;
    *res = x < y ? -1 : x > y ? 1 : 0;
    return 0;
  }
  if (a.t == V_STR && b.t == V_STR) {
    /* UTF-16 order equals UTF-8 byte order outside surrogates; ASCII case
     * folding */
    size_t i, n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
    for (i = 0; i < n; i++) {
      unsigned char x = (unsigned char)a.u.s.p[i], y = (unsigned char)b.u.s.p[i];
      if (!cs) x = (unsigned char)low((char)x), y = (unsigned char)low((char)y);
      if (x != y) { *res = x < y ? -1 : 1; return 0; }
    }
    *res = a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n ? 1 : 0;
    return 0;
  }
  return coh__ch_fail(r, COH_EFORMAT, "cannot compare a %s with a %s",
                      coh__ch_type_name(a.t), coh__ch_type_name(b.t));
}

static ch_val attr_path(ch_val item, const char *path, size_t n) {
  size_t s = 0;
  while (s <= n) {
    size_t e = s;
    while (e < n && path[e] != '.') e++;
    if (item.t == V_OBJ || item.t == V_KWARGS || item.t == V_NS) {
      ch_val *x = coh__ch_obj_get(item.u.o, path + s, e - s);
      if (x == NULL) return coh__ch_undef();
      item = *x;
    } else if (item.t == V_ARR || item.t == V_TUPLE) {
      char buf[24];
      long long k;
      char *end;
      if (e - s == 0 || e - s >= sizeof buf) return coh__ch_undef();
      memcpy(buf, path + s, e - s);
      buf[e - s] = 0;
      k = strtoll(buf, &end, 10);
      if (end == buf || k < 0 || (size_t)k >= item.u.a->n) return coh__ch_undef();
      item = item.u.a->v[k];
    } else {
      return coh__ch_undef();
    }
    s = e + 1;
  }
  return item;
}

/* Stable sort of v[0..n) by keys k (merge sort). */
static int sort_vals(ch_render *r, ch_val *v, ch_val *k, size_t n, int cs, int rev) {
  ch_val *tv, *tk;
  size_t w, i;
  if (n < 2) return 0;
  tv = coh__ch_alloc(&r->ar, n * sizeof *tv);
  tk = coh__ch_alloc(&r->ar, n * sizeof *tk);
  if (!tv || !tk) return OOM();
  for (w = 1; w < n; w *= 2) {
    if (coh__ch_step(r, n)) return -1;
    for (i = 0; i < n; i += 2 * w) {
      size_t a = i, am = i + w < n ? i + w : n, b = am, bm = i + 2 * w < n ? i + 2 * w : n, o = i;
      while (a < am || b < bm) {
        int take_a;
        if (a >= am) take_a = 0;
        else if (b >= bm) take_a = 1;
        else {
          int c = 0;
          if (compare(r, k[a], k[b], cs, &c)) return -1;
          if (rev) c = -c;
          take_a = c <= 0;
        }
        if (take_a) tv[o] = v[a], tk[o++] = k[a++];
        else tv[o] = v[b], tk[o++] = k[b++];
      }
    }
    memcpy(v, tv, n * sizeof *v);
    memcpy(k, tk, n * sizeof *k);
  }
  return 0;
}

static int kwget(ch_obj *kw, const char *name, ch_val *out) {
  ch_val *x = kw ? coh__ch_obj_get(kw, name, strlen(name)) : NULL;
  if (x) *out = *x;
  return x != NULL;
}

static int dictsort(ch_render *r, ch_val o, ch_val *args, size_t na, ch_val *out) {
  ch_obj *kw = NULL;
  ch_val cs = coh__ch_bool(0), by = coh__ch_str("key", 3), rev = coh__ch_bool(0);
  ch_arr *a;
  ch_val *keys;
  size_t i, np = na;
  if (np && args[np - 1].t == V_KWARGS) kw = args[--np].u.o;
  if (np > 0) cs = args[0]; else kwget(kw, "case_sensitive", &cs);
  if (np > 1) by = args[1]; else kwget(kw, "by", &by);
  if (np > 2) rev = args[2]; else kwget(kw, "reverse", &rev);
  if (cs.t != V_BOOL) return coh__ch_fail(r, COH_EFORMAT, "case_sensitive must be a boolean");
  if (by.t != V_STR) return coh__ch_fail(r, COH_EFORMAT, "by must be a string");
  if (!(by.u.s.n == 3 && !memcmp(by.u.s.p, "key", 3)) && !(by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5)))
    return coh__ch_fail(r, COH_EFORMAT, "by must be 'key' or 'value'");
  if (rev.t != V_BOOL) return coh__ch_fail(r, COH_EFORMAT, "reverse must be a boolean");
  a = coh__ch_arr_new(r, o.u.o->n);
  keys = coh__ch_alloc(&r->ar, (o.u.o->n + 1) * sizeof *keys);
  if (a == NULL || keys == NULL) return OOM();
  for (i = 0; i < o.u.o->n; i++) {
    ch_arr *pair = coh__ch_arr_new(r, 2);
    if (pair == NULL) return OOM();
    pair->v[0] = coh__ch_str(o.u.o->k[i], o.u.o->kn[i]);
    pair->v[1] = o.u.o->v[i];
    pair->n = 2;
    a->v[i] = mkarr(pair);
    keys[i] = by.u.s.n == 3 ? pair->v[0] : pair->v[1];
  }
  a->n = o.u.o->n;
  if (sort_vals(r, a->v, keys, a->n, cs.u.b, rev.u.b)) return -1;
  *out = mkarr(a);
  return 0;
}

static int items(ch_render *r, ch_val o, int what, ch_val *out) {
  ch_arr *a = coh__ch_arr_new(r, o.u.o->n);
  size_t i;
  if (a == NULL) return OOM();
  if (coh__ch_step(r, o.u.o->n)) return -1;
  for (i = 0; i < o.u.o->n; i++) {
    ch_val k = coh__ch_str(o.u.o->k[i], o.u.o->kn[i]);
    if (what == 'i') {
      ch_arr *pair = coh__ch_arr_new(r, 2);
      if (pair == NULL) return OOM();
      pair->v[0] = k;
      pair->v[1] = o.u.o->v[i];
      pair->n = 2;
      a->v[i] = mkarr(pair);
    } else {
      a->v[i] = what == 'k' ? k : o.u.o->v[i];
    }
  }
  a->n = o.u.o->n;
  *out = mkarr(a);
  return 0;
}

/* ---- methods ------------------------------------------------------------------ */
static const char *const str_methods[] = {
    "upper", "lower", "strip", "title", "capitalize", "rstrip", "lstrip",
    "startswith", "endswith", "split", "replace"};
static const char *const obj_methods[] = {"get", "items", "keys", "values", "dictsort"};

static int method(ch_render *r, ch_val self, const char *name, ch_val *out) {
  ch_fn *fn = coh__ch_alloc(&r->ar, sizeof *fn);
  if (fn == NULL) return OOM();
  fn->kind = FN_METHOD;
  fn->self = self;
  fn->name = name;
  out->t = V_FUNC;
  out->u.fn = fn;
  return 0;
}

int coh__ch_builtin(ch_render *r, ch_val self, const char *name, size_t n,
                    ch_val *out) {
  size_t i;
  *out = coh__ch_undef();
  if (self.t == V_STR) {
    if (n == 6 && !memcmp(name, "length", 6)) {
      *out = coh__ch_int((int64_t)coh__ch_utf16_len(self.u.s.p, self.u.s.n));
      return 0;
    }
    for (i = 0; i < sizeof str_methods / sizeof str_methods[0]; i++)
      if (strlen(str_methods[i]) == n && !memcmp(str_methods[i], name, n))
        return method(r, self, str_methods[i], out);
  } else if (self.t == V_ARR || self.t == V_TUPLE) {
    if (n == 6 && !memcmp(name, "length", 6)) *out = coh__ch_int((int64_t)self.u.a->n);
  } else if (self.t == V_OBJ || self.t == V_KWARGS) {
    for (i = 0; i < sizeof obj_methods / sizeof obj_methods[0]; i++)
      if (strlen(obj_methods[i]) == n && !memcmp(obj_methods[i], name, n))
        return method(r, self, obj_methods[i], out);
  }
  return 0;
}

static int call_method(ch_render *r, ch_fn *fn, ch_val *args, size_t na, ch_val *out) {
  ch_val s = fn->self;
  const char *m = fn->name;
  if (s.t == V_STR) {
    if (!strcmp(m, "upper")) return casemap(r, s, 'u', out);
    if (!strcmp(m, "lower")) return casemap(r, s, 'l', out);
    if (!strcmp(m, "title")) return casemap(r, s, 't', out);
    if (!strcmp(m, "capitalize")) return casemap(r, s, 'c', out);
    if (!strcmp(m, "strip")) return trim(r, s, 1, 1, out);
    if (!strcmp(m, "lstrip")) return trim(r, s, 1, 0, out);
    if (!strcmp(m, "rstrip")) return trim(r, s, 0, 1, out);
    if (!strcmp(m, "startswith")) return starts_ends(r, s, args, na, 0, out);
    if (!strcmp(m, "endswith")) return starts_ends(r, s, args, na, 1, out);
    if (!strcmp(m, "split")) return split(r, s, args, na, out);
    if (!strcmp(m, "replace")) return replace(r, s, args, na, out);
  } else {
    if (!strcmp(m, "get")) {
      ch_val *x;
      if (na < 1 || args[0].t != V_STR)
        return coh__ch_fail(r, COH_EFORMAT, "get: the key must be a string");
      x = coh__ch_obj_get(s.u.o, args[0].u.s.p, args[0].u.s.n);
      *out = x ? *x : na > 1 ? args[1] : coh__ch_null();
      return 0;
    }
    if (!strcmp(m, "items")) return items(r, s, 'i', out);
    if (!strcmp(m, "keys")) return items(r, s, 'k', out);
    if (!strcmp(m, "values")) return items(r, s, 'v', out);
    if (!strcmp(m, "dictsort")) return dictsort(r, s, args, na, out);
  }
  return coh__ch_fail(r, COH_EFORMAT, "unknown method %s", m);
}

/* ---- global functions ----------------------------------------------------------- */
static const char *const months[] = {"January", "February", "March", "April",
                                     "May", "June", "July", "August",
                                     "September", "October", "November", "December"};

/* strftime_now(fmt): the variable date_time (RFC 3339), never the clock.
 * Only %Y %m %d %b %B %H %M %% are replaced, as @huggingface/jinja does. */
static int strftime_now(ch_render *r, ch_val *args, size_t na, ch_val *out) {
  int y = 1970, mo = 1, d = 1, h = 0, mi = 0;
  coh__buf b = {0};
  size_t i;
  ch_val f = na > 0 ? args[0] : coh__ch_undef();
  if (r->date_time) {
    char tmp[64];
    size_t n = r->date_time_n < sizeof tmp - 1 ? r->date_time_n : sizeof tmp - 1;
    memcpy(tmp, r->date_time, n);
    tmp[n] = 0;
    if (sscanf(tmp, "%4d-%2d-%2dT%2d:%2d", &y, &mo, &d, &h, &mi) < 3 || mo < 1 ||
        mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59)
      return coh__ch_fail(r, COH_EFORMAT,
                          "date_time '%s' is not an RFC 3339 date (YYYY-MM-DDTHH:MM...)", tmp);
  }
  if (f.t != V_STR) return coh__ch_fail(r, COH_EFORMAT, "strftime_now expects a format string");
  for (i = 0; i < f.u.s.n; i++) {
    char c = f.u.s.p[i];
    if (c == '%' && i + 1 < f.u.s.n && strchr("YmdbBHM%", f.u.s.p[i + 1])) {
      switch (f.u.s.p[++i]) {
        case 'Y': coh__buf_printf(&b, "%d", y); break;
        case 'm': coh__buf_printf(&b, "%02d", mo); break;
        case 'd': coh__buf_printf(&b, "%02d", d); break;
        case 'b': coh__buf_add(&b, months[mo - 1], 3); break;
        case 'B': coh__buf_add(&b, months[mo - 1], strlen(months[mo - 1])); break;
        case 'H': coh__buf_printf(&b, "%02d", h); break;
        case 'M': coh__buf_printf(&b, "%02d", mi); break;
        default: coh__buf_addc(&b, '%');
      }
    } else {
      coh__buf_addc(&b, c);
    }
  }
  return bufstr(r, &b, out);
}

static int range_fn(ch_render *r, ch_val *args, size_t na, ch_val *out) {
  double start = 0, stop, step = 1;
  ch_arr *a;
  size_t i;
  for (i = 0; i < na && i < 3; i++)
    if (args[i].t != V_INT && args[i].t != V_FLOAT)
      return coh__ch_fail(r, COH_EFORMAT, "range() arguments must be numbers");
  if (na == 0) return coh__ch_fail(r, COH_EFORMAT, "range() needs an argument");
  if (na == 1) stop = args[0].t == V_INT ? (double)args[0].u.i : args[0].u.f;
  else {
    start = args[0].t == V_INT ? (double)args[0].u.i : args[0].u.f;
    stop = args[1].t == V_INT ? (double)args[1].u.i : args[1].u.f;
    if (na > 2) step = args[2].t == V_INT ? (double)args[2].u.i : args[2].u.f;
  }
  if (step == 0) return coh__ch_fail(r, COH_EFORMAT, "range() step must not be zero");
  {
    double cnt = ceil((stop - start) / step);
    if (cnt > 0 && coh__ch_step(r, cnt > 1e8 ? (uint64_t)1e8 : (uint64_t)cnt)) return -1;
    if ((a = coh__ch_arr_new(r, cnt > 0 ? (size_t)cnt : 0)) == NULL) return OOM();
  }
  for (; step > 0 ? start < stop : start > stop; start += step) {
    ch_val v;
    if (start == floor(start)) v = coh__ch_int((int64_t)start);
    else v.t = V_FLOAT, v.u.f = start;
    if (coh__ch_arr_push(r, a, v)) return -1;
  }
  *out = mkarr(a);
  return 0;
}

static int namespace_fn(ch_render *r, ch_val *args, size_t na, ch_val *out) {
  ch_obj *o = coh__ch_obj_new(r), *kw = NULL;
  size_t i;
  if (o == NULL) return OOM();
  if (na && args[na - 1].t == V_KWARGS) kw = args[--na].u.o;
  if (na > 1) return coh__ch_fail(r, COH_EFORMAT, "namespace expected at most 1 argument, got %zu", na);
  if (na == 1) {
    ch_val s = args[0];
    if (s.t == V_OBJ || s.t == V_KWARGS) {
      if (coh__ch_step(r, s.u.o->n)) return -1;
      for (i = 0; i < s.u.o->n; i++) /* unique keys: appended */
        if (coh__ch_obj_append(r, o, s.u.o->k[i], s.u.o->kn[i], s.u.o->v[i])) return -1;
    } else if (s.t == V_ARR || s.t == V_TUPLE) {
      for (i = 0; i < s.u.a->n; i++) {
        ch_val p = s.u.a->v[i];
        if ((p.t != V_ARR && p.t != V_TUPLE) || p.u.a->n != 2 || p.u.a->v[0].t != V_STR)
          return coh__ch_fail(r, COH_EFORMAT, "namespace expected a mapping or [key, value] pairs");
        if (coh__ch_step(r, 1 + o->n / 64)) return -1;
        if (coh__ch_obj_set(r, o, p.u.a->v[0].u.s.p, p.u.a->v[0].u.s.n, p.u.a->v[1])) return -1;
      }
    } else {
      return coh__ch_fail(r, COH_EFORMAT, "a %s is not iterable", coh__ch_type_name(s.t));
    }
  }
  if (kw)
    for (i = 0; i < kw->n; i++)
      if (coh__ch_obj_set(r, o, kw->k[i], kw->kn[i], kw->v[i])) return -1;
  out->t = V_NS;
  out->u.o = o;
  return 0;
}

int coh__ch_call_builtin(ch_render *r, ch_fn *fn, ch_val *args, size_t nargs,
                         ch_val *out) {
  switch (fn->kind) {
    case FN_NAMESPACE: return namespace_fn(r, args, nargs, out);
    case FN_RANGE: return range_fn(r, args, nargs, out);
    case FN_STRFTIME: return strftime_now(r, args, nargs, out);
    case FN_RAISE: {
      coh__buf b = {0};
      int rc;
      if (nargs > 0 && args[0].t != V_UNDEF && coh__ch_jsstr(r, &b, args[0])) {
        coh__buf_free(&b);
        return -1;
      }
      rc = coh__ch_fail(r, COH_ERAISED, "%s", b.p ? b.p : "");
      coh__buf_free(&b);
      return rc;
    }
    case FN_METHOD: return call_method(r, fn, args, nargs, out);
    default: return coh__ch_fail(r, COH_EFORMAT, "not callable");
  }
}

/* ---- tests ------------------------------------------------------------------------ */
int coh__ch_apply_test(ch_render *r, const char *name, ch_val v, ch_val arg,
                       int has_arg, int *res) {
  int t = v.t;
  (void)has_arg;
  if (!strcmp(name, "boolean")) *res = t == V_BOOL;
  else if (!strcmp(name, "callable")) *res = t == V_FUNC;
  else if (!strcmp(name, "odd") || !strcmp(name, "even")) {
    if (t != V_INT) return coh__ch_fail(r, COH_EFORMAT, "cannot test %s on a %s", name, coh__ch_type_name(t));
    *res = (v.u.i % 2 != 0) == (name[0] == 'o');
  } else if (!strcmp(name, "false")) *res = t == V_BOOL && !v.u.b;
  else if (!strcmp(name, "true")) *res = t == V_BOOL && v.u.b;
  else if (!strcmp(name, "none")) *res = t == V_NULL;
  else if (!strcmp(name, "string")) *res = t == V_STR;
  else if (!strcmp(name, "number")) *res = t == V_INT || t == V_FLOAT;
  else if (!strcmp(name, "integer")) *res = t == V_INT;
  else if (!strcmp(name, "iterable")) *res = t == V_ARR || t == V_STR;
  else if (!strcmp(name, "mapping")) *res = t == V_OBJ || t == V_KWARGS;
  else if (!strcmp(name, "sequence"))
    *res = t == V_ARR || t == V_TUPLE || t == V_OBJ || t == V_KWARGS || t == V_STR;
  else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
    size_t i;
    *res = t == V_STR;
    for (i = 0; *res && i < v.u.s.n; i++) {
      char c = v.u.s.p[i];
      if (name[0] == 'l' ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z')) *res = 0;
    }
  } else if (!strcmp(name, "defined")) *res = t != V_UNDEF;
  else if (!strcmp(name, "undefined")) *res = t == V_UNDEF;
  else if (!strcmp(name, "equalto") || !strcmp(name, "eq")) {
    /* JavaScript's === on the payloads; a missing argument is undefined */
    if (arg.t == V_UNDEF || v.t == V_UNDEF) *res = arg.t == v.t;
    else *res = coh__ch_strict_eq(v, arg) && !((v.t == V_ARR || v.t == V_OBJ) && 0);
  } else return coh__ch_fail(r, COH_EFORMAT, "unknown test '%s'", name);
  return 0;
}

/* ---- filters ---------------------------------------------------------------------- */
static int is_arr(ch_val v) { return v.t == V_ARR || v.t == V_TUPLE; }
static int is_obj(ch_val v) { return v.t == V_OBJ || v.t == V_KWARGS; }

static int join(ch_render *r, ch_val v, const char *sep, size_t sn, ch_val *out) {
  coh__buf b = {0};
  size_t i;
  if (v.t == V_STR) {
    size_t pos = 0;
    while (pos < v.u.s.n) {
      size_t l = coh__utf8_seq((const unsigned char *)v.u.s.p + pos, v.u.s.n - pos);
      if (l == 0) l = 1;
      if (pos) coh__buf_add(&b, sep, sn);
      coh__buf_add(&b, v.u.s.p + pos, l);
      pos += l;
      if (coh__ch_output_check(r, &b)) { coh__buf_free(&b); return -1; }
    }
    return bufstr(r, &b, out);
  }
  for (i = 0; i < v.u.a->n; i++) {
    ch_val x = v.u.a->v[i];
    if (i) coh__buf_add(&b, sep, sn);
    if (x.t != V_NULL && x.t != V_UNDEF && coh__ch_jsstr(r, &b, x)) {
      coh__buf_free(&b);
      return -1;
    }
    if (coh__ch_step(r, 1) || coh__ch_output_check(r, &b)) { coh__buf_free(&b); return -1; }
  }
  return bufstr(r, &b, out);
}

static int tojson(ch_render *r, ch_val v, ch_obj *kw, ch_val *out) {
  ch_json_opt o;
  ch_val x;
  coh__buf b = {0};
  memset(&o, 0, sizeof o);
  o.undef_null = 1;
  if (kwget(kw, "indent", &x)) {
    if (x.t == V_INT) {
      if (x.u.i < 0 || x.u.i > 64) return coh__ch_fail(r, COH_ERANGE, "tojson indent over 64");
      o.indent = x.u.i;
    } else if (x.t != V_NULL) return coh__ch_fail(r, COH_EFORMAT, "if set, indent must be a number");
  }
  if (kwget(kw, "ensure_ascii", &x)) {
    if (x.t != V_BOOL) return coh__ch_fail(r, COH_EFORMAT, "if set, ensure_ascii must be a boolean");
    o.ensure_ascii = x.u.b;
  }
  if (kwget(kw, "sort_keys", &x)) {
    if (x.t != V_BOOL) return coh__ch_fail(r, COH_EFORMAT, "if set, sort_keys must be a boolean");
    o.sort_keys = x.u.b;
  }
  if (kwget(kw, "separators", &x) && x.t != V_NULL) {
    if (!is_arr(x) || x.u.a->n != 2 || x.u.a->v[0].t != V_STR || x.u.a->v[1].t != V_STR)
      return coh__ch_fail(r, COH_EFORMAT, "separators must be a tuple of two strings");
    o.item_sep = coh__ch_strdup(&r->ar, x.u.a->v[0].u.s.p, x.u.a->v[0].u.s.n);
    o.key_sep = coh__ch_strdup(&r->ar, x.u.a->v[1].u.s.p, x.u.a->v[1].u.s.n);
    if (!o.item_sep || !o.key_sep) return OOM();
  }
  if (coh__ch_tojson(r, &b, v, &o, 0)) {
    coh__buf_free(&b);
    return -1;
  }
  return bufstr(r, &b, out);
}

static int indent(ch_render *r, ch_val s, int64_t width, int first, int blank, ch_val *out) {
  coh__buf b = {0};
  size_t i = 0, line = 0;
  int64_t k;
  if (width < 0) width = 0;
  if (width > 256) return coh__ch_fail(r, COH_ERANGE, "indent width over 256");
  for (;;) {
    size_t e = i;
    while (e < s.u.s.n && s.u.s.p[e] != '\n') e++;
    if (!((!first && line == 0) || (!blank && e == i)))
      for (k = 0; k < width; k++) coh__buf_addc(&b, ' ');
    coh__buf_add(&b, s.u.s.p + i, e - i);
    if (coh__ch_output_check(r, &b)) { coh__buf_free(&b); return -1; }
    if (e >= s.u.s.n) break;
    coh__buf_addc(&b, '\n');
    i = e + 1;
    line++;
  }
  return bufstr(r, &b, out);
}

/* parseInt(s, 10) / parseFloat(s); 0 when not a number. */
static int parse_num(const char *p, size_t n, int isfloat, double *d) {
  char buf[128], *end;
  size_t i = 0, k;
  while (i < n && (k = coh__ch_js_ws_at(p + i, n - i)) > 0) i += k;
  p += i, n -= i;
  if (n >= sizeof buf) n = sizeof buf - 1;
  memcpy(buf, p, n);
  buf[n] = 0;
  if (isfloat) {
    size_t j = 0;
    if (buf[j] == '+' || buf[j] == '-') j++;
    if (!strncmp(buf + j, "Infinity", 8)) {
      *d = buf[0] == '-' ? -INFINITY : INFINITY;
      return 1;
    }
    /* keep [digits][.digits][e[+-]digits] only */
    {
      size_t q = j, dg = 0;
      while (buf[q] >= '0' && buf[q] <= '9') q++, dg++;
      if (buf[q] == '.') {
        q++;
        while (buf[q] >= '0' && buf[q] <= '9') q++, dg++;
      }
      if (!dg) return 0;
      if (buf[q] == 'e' || buf[q] == 'E') {
        size_t e = q + 1;
        if (buf[e] == '+' || buf[e] == '-') e++;
        if (buf[e] >= '0' && buf[e] <= '9') {
          while (buf[e] >= '0' && buf[e] <= '9') e++;
          q = e;
        }
      }
      buf[q] = 0;
    }
    *d = strtod(buf, &end);
    return 1;
  } else {
    size_t j = 0, s;
    double v = 0;
    int neg = 0;
    if (buf[j] == '+' || buf[j] == '-') neg = buf[j] == '-', j++;
    s = j;
    while (buf[j] >= '0' && buf[j] <= '9') v = v * 10 + (buf[j++] - '0');
    if (j == s) return 0;
    *d = neg ? -v : v;
    return 1;
  }
}

static int mknum(ch_render *r, double d, int isfloat, ch_val *out) {
  if (isfloat) {
    out->t = V_FLOAT;
    out->u.f = d;
    return 0;
  }
  if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0))
    return coh__ch_fail(r, COH_ERANGE, "integer out of range");
  *out = coh__ch_int((int64_t)d);
  return 0;
}

static int filter_ident(ch_render *r, ch_val v, const char *f, ch_val *out) {
  if (!strcmp(f, "safe")) { *out = v; return 0; }
  if (!strcmp(f, "tojson")) return tojson(r, v, NULL, out);
  if (is_arr(v)) {
    ch_arr *a = v.u.a;
    if (!strcmp(f, "list")) { *out = v; return 0; }
    if (!strcmp(f, "first")) { *out = a->n ? a->v[0] : coh__ch_undef(); return 0; }
    if (!strcmp(f, "last")) { *out = a->n ? a->v[a->n - 1] : coh__ch_undef(); return 0; }
    if (!strcmp(f, "length")) { *out = coh__ch_int((int64_t)a->n); return 0; }
    if (!strcmp(f, "reverse")) {
      ch_arr *b = coh__ch_arr_new(r, a->n);
      size_t i;
      if (b == NULL) return OOM();
      for (i = 0; i < a->n; i++) b->v[i] = a->v[a->n - 1 - i];
      b->n = a->n;
      *out = mkarr(b);
      return 0;
    }
    if (!strcmp(f, "sort")) {
      ch_arr *b = coh__ch_arr_new(r, a->n);
      ch_val *k = coh__ch_alloc(&r->ar, (a->n + 1) * sizeof *k);
      if (b == NULL || k == NULL) return OOM();
      memcpy(b->v, a->v, a->n * sizeof *a->v);
      memcpy(k, a->v, a->n * sizeof *a->v);
      b->n = a->n;
      if (sort_vals(r, b->v, k, b->n, 0, 0)) return -1;
      *out = mkarr(b);
      return 0;
    }
    if (!strcmp(f, "join")) return join(r, v, "", 0, out);
    if (!strcmp(f, "string")) {
      coh__buf b = {0};
      ch_json_opt o;
      memset(&o, 0, sizeof o);
      if (coh__ch_tojson(r, &b, v, &o, 0)) { coh__buf_free(&b); return -1; }
      return bufstr(r, &b, out);
    }
    if (!strcmp(f, "unique")) {
      ch_arr *b = coh__ch_arr_new(r, 0);
      size_t i, j;
      if (b == NULL) return OOM();
      for (i = 0; i < a->n; i++) {
        int seen = 0;
        if (coh__ch_step(r, b->n + 1)) return -1;
        for (j = 0; j < b->n && !seen; j++) seen = coh__ch_strict_eq(b->v[j], a->v[i]);
        if (!seen && coh__ch_arr_push(r, b, a->v[i])) return -1;
      }
      *out = mkarr(b);
      return 0;
    }
    return coh__ch_fail(r, COH_EFORMAT, "filter %s does not apply to a list", f);
  }
  if (v.t == V_STR) {
    if (!strcmp(f, "length")) { *out = coh__ch_int((int64_t)coh__ch_utf16_len(v.u.s.p, v.u.s.n)); return 0; }
    if (!strcmp(f, "upper")) return casemap(r, v, 'u', out);
    if (!strcmp(f, "lower")) return casemap(r, v, 'l', out);
    if (!strcmp(f, "title")) return casemap(r, v, 't', out);
    if (!strcmp(f, "capitalize")) return casemap(r, v, 'c', out);
    if (!strcmp(f, "trim")) return trim(r, v, 1, 1, out);
    if (!strcmp(f, "indent")) return indent(r, v, 4, 0, 0, out);
    if (!strcmp(f, "join") || !strcmp(f, "string")) { *out = v; return 0; }
    if (!strcmp(f, "int") || !strcmp(f, "float")) {
      double d = 0;
      if (!parse_num(v.u.s.p, v.u.s.n, f[0] == 'f', &d)) d = 0;
      if (f[0] == 'i' && !(d >= -9007199254740992.0 && d <= 9007199254740992.0)) d = 0;
      return mknum(r, d, f[0] == 'f', out);
    }
    return coh__ch_fail(r, COH_EFORMAT, "filter %s does not apply to a string", f);
  }
  if (v.t == V_INT || v.t == V_FLOAT) {
    double d = v.t == V_INT ? (double)v.u.i : v.u.f;
    if (!strcmp(f, "abs")) return mknum(r, fabs(d), v.t == V_FLOAT, out);
    if (!strcmp(f, "int")) return mknum(r, floor(d), 0, out);
    if (!strcmp(f, "float")) return mknum(r, d, 1, out);
    if (!strcmp(f, "string")) {
      coh__buf b = {0};
      coh__ch_print(r, &b, v);
      return bufstr(r, &b, out);
    }
    return coh__ch_fail(r, COH_EFORMAT, "filter %s does not apply to a number", f);
  }
  if (is_obj(v)) {
    if (!strcmp(f, "items")) return items(r, v, 'i', out);
    if (!strcmp(f, "length")) { *out = coh__ch_int((int64_t)v.u.o->n); return 0; }
    if (!strcmp(f, "keys")) return items(r, v, 'k', out);
    if (!strcmp(f, "values")) return items(r, v, 'v', out);
    if (!strcmp(f, "dictsort")) return dictsort(r, v, NULL, 0, out);
    if (!strcmp(f, "get")) return coh__ch_fail(r, COH_EFORMAT, "get: the key must be a string");
    return coh__ch_fail(r, COH_EFORMAT, "filter %s does not apply to a mapping", f);
  }
  if (v.t == V_BOOL) {
    if (!strcmp(f, "bool")) { *out = v; return 0; }
    if (!strcmp(f, "int")) { *out = coh__ch_int(v.u.b); return 0; }
    if (!strcmp(f, "float")) return mknum(r, v.u.b, 1, out);
    if (!strcmp(f, "string")) return newstr(r, v.u.b ? "true" : "false", v.u.b ? 4 : 5, out);
    return coh__ch_fail(r, COH_EFORMAT, "filter %s does not apply to a boolean", f);
  }
  return coh__ch_fail(r, COH_EFORMAT, "cannot apply filter %s to a %s", f, coh__ch_type_name(v.t));
}

static int select_reject(ch_render *r, ch_env *env, ch_val v, const ch_node *call, int sel,
                         ch_val *out) {
  const char *name = sel ? "selectattr" : "rejectattr";
  ch_arr *a;
  size_t i;
  ch_val attr = coh__ch_undef(), test = coh__ch_undef(), val = coh__ch_undef();
  for (i = 0; i < v.u.a->n; i++)
    if (!is_obj(v.u.a->v[i]) && v.u.a->v[i].t != V_NS)
      return coh__ch_fail(r, COH_EFORMAT, "%s can only be applied to a list of mappings", name);
  for (i = 0; i < call->l1.n; i++)
    if (call->l1.v[i]->kind != N_STR)
      return coh__ch_fail(r, COH_EFORMAT, "the arguments of %s must be strings", name);
  if (call->l1.n > 0) attr = coh__ch_str(call->l1.v[0]->s, call->l1.v[0]->sn);
  if (call->l1.n > 1) test = coh__ch_str(call->l1.v[1]->s, call->l1.v[1]->sn);
  if (call->l1.n > 2) val = coh__ch_str(call->l1.v[2]->s, call->l1.v[2]->sn);
  (void)env;
  if (attr.t != V_STR) return coh__ch_fail(r, COH_EFORMAT, "%s needs an attribute name", name);
  if (test.t == V_STR && !coh__ch_test_known(test.u.s.p))
    return coh__ch_fail(r, COH_EFORMAT, "unknown test: %s", test.u.s.p);
  if ((a = coh__ch_arr_new(r, 0)) == NULL) return OOM();
  for (i = 0; i < v.u.a->n; i++) {
    ch_val *x = coh__ch_obj_get(v.u.a->v[i].u.o, attr.u.s.p, attr.u.s.n);
    int res = 0;
    if (coh__ch_step(r, 1 + v.u.a->v[i].u.o->n / 64)) return -1;
    if (x) {
      if (test.t == V_STR) {
        if (coh__ch_apply_test(r, test.u.s.p, *x, val, call->l1.n > 2, &res)) return -1;
      } else {
        res = coh__ch_truthy(*x);
      }
    }
    if (sel ? res : !res)
      if (coh__ch_arr_push(r, a, v.u.a->v[i])) return -1;
  }
  *out = mkarr(a);
  return 0;
}

int coh__ch_apply_filter(ch_render *r, ch_env *env, ch_val v, const ch_node *f,
                         ch_val *out) {
  const char *name;
  ch_val *args;
  size_t na;
  ch_obj *kw;
  ch_val x;
  if (coh__ch_step(r, 1)) return -1;
  if (f->kind == N_IDENT) return filter_ident(r, v, f->s, out);
  /* `x | f(a)(b)` or `x | f(a).b`: not a filter, as in @huggingface/jinja */
  if (f->kind != N_CALL || f->a->kind != N_IDENT)
    return coh__ch_fail(r, COH_EFORMAT, "a filter must be a name or a call of a name");
  name = f->a->s;
  if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr")) {
    if (!is_arr(v)) return coh__ch_fail(r, COH_EFORMAT, "cannot apply filter %s to a %s", name, coh__ch_type_name(v.t));
    return select_reject(r, env, v, f, name[0] == 's', out);
  }
  if (coh__ch_eval_args(r, env, &f->l1, &args, &na, &kw)) return -1;
  r->at = f;
  if (!strcmp(name, "tojson")) return tojson(r, v, kw, out);
  if (!strcmp(name, "join")) {
    ch_val sep = na > 0 ? args[0] : coh__ch_str("", 0);
    if (na == 0) kwget(kw, "separator", &sep);
    if (v.t != V_STR && !is_arr(v)) return coh__ch_fail(r, COH_EFORMAT, "cannot apply filter join to a %s", coh__ch_type_name(v.t));
    if (sep.t != V_STR) return coh__ch_fail(r, COH_EFORMAT, "join: separator must be a string");
    return join(r, v, sep.u.s.p, sep.u.s.n, out);
  }
  if (!strcmp(name, "int") || !strcmp(name, "float")) {
    int fl = name[0] == 'f';
    ch_val def;
    if (na > 0) def = args[0];
    else if (!kwget(kw, "default", &def)) {
      if (fl) def.t = V_FLOAT, def.u.f = 0;
      else def = coh__ch_int(0);
    }
    if (v.t == V_STR) {
      double d;
      if (!parse_num(v.u.s.p, v.u.s.n, fl, &d)) { *out = def; return 0; }
      return mknum(r, d, fl, out);
    }
    if (v.t == V_INT || v.t == V_FLOAT) { *out = v; return 0; }
    if (v.t == V_BOOL) return mknum(r, v.u.b, fl, out);
    return coh__ch_fail(r, COH_EFORMAT, "cannot apply filter %s to a %s", name, coh__ch_type_name(v.t));
  }
  if (!strcmp(name, "default")) {
    ch_val def = na > 0 ? args[0] : coh__ch_str("", 0), b = coh__ch_bool(0);
    if (na > 1) b = args[1];
    else kwget(kw, "boolean", &b);
    if (b.t != V_BOOL) return coh__ch_fail(r, COH_EFORMAT, "default: the flag must be a boolean");
    *out = v.t == V_UNDEF || (b.u.b && !coh__ch_truthy(v)) ? def : v;
    return 0;
  }
  if (is_arr(v)) {
    if (!strcmp(name, "sort")) {
      ch_val rev = coh__ch_bool(0), cs = coh__ch_bool(0), at = coh__ch_null();
      ch_arr *b;
      ch_val *k;
      size_t i;
      if (na > 0) rev = args[0]; else kwget(kw, "reverse", &rev);
      if (na > 1) cs = args[1]; else kwget(kw, "case_sensitive", &cs);
      if (na > 2) at = args[2]; else kwget(kw, "attribute", &at);
      if (rev.t != V_BOOL) return coh__ch_fail(r, COH_EFORMAT, "reverse must be a boolean");
      if (cs.t != V_BOOL) return coh__ch_fail(r, COH_EFORMAT, "case_sensitive must be a boolean");
      if (at.t != V_STR && at.t != V_INT && at.t != V_NULL)
        return coh__ch_fail(r, COH_EFORMAT, "attribute must be a string, integer, or none");
      b = coh__ch_arr_new(r, v.u.a->n);
      k = coh__ch_alloc(&r->ar, (v.u.a->n + 1) * sizeof *k);
      if (b == NULL || k == NULL) return OOM();
      for (i = 0; i < v.u.a->n; i++) {
        b->v[i] = v.u.a->v[i];
        if (at.t == V_NULL) k[i] = b->v[i];
        else if (at.t == V_STR) k[i] = attr_path(b->v[i], at.u.s.p, at.u.s.n);
        else {
          char num[24];
          int l = snprintf(num, sizeof num, "%lld", (long long)at.u.i);
          k[i] = attr_path(b->v[i], num, (size_t)l);
        }
      }
      b->n = v.u.a->n;
      if (sort_vals(r, b->v, k, b->n, cs.u.b, rev.u.b)) return -1;
      *out = mkarr(b);
      return 0;
    }
    if (!strcmp(name, "map")) {
      ch_val at, def;
      int has_def;
      ch_arr *b;
      size_t i;
      if (!kwget(kw, "attribute", &at))
        return coh__ch_fail(r, COH_EFORMAT, "map without attribute= is not supported");
      if (at.t != V_STR) return coh__ch_fail(r, COH_EFORMAT, "map: attribute must be a string");
      has_def = kwget(kw, "default", &def);
      if ((b = coh__ch_arr_new(r, v.u.a->n)) == NULL) return OOM();
      for (i = 0; i < v.u.a->n; i++) {
        ch_val it = v.u.a->v[i], y;
        if (!is_obj(it) && it.t != V_NS) return coh__ch_fail(r, COH_EFORMAT, "map: items must be mappings");
        y = attr_path(it, at.u.s.p, at.u.s.n);
        b->v[i] = y.t == V_UNDEF && has_def ? def : y;
      }
      b->n = v.u.a->n;
      *out = mkarr(b);
      return 0;
    }
    return coh__ch_fail(r, COH_EFORMAT, "filter %s does not apply to a list", name);
  }
  if (v.t == V_STR) {
    if (!strcmp(name, "indent")) {
      ch_val w = coh__ch_int(4), first = coh__ch_bool(0), blank = coh__ch_bool(0);
      if (na > 0) w = args[0]; else kwget(kw, "width", &w);
      if (na > 1) first = args[1]; else kwget(kw, "first", &first);
      if (na > 2) blank = args[2]; else kwget(kw, "blank", &blank);
      if (w.t != V_INT) return coh__ch_fail(r, COH_EFORMAT, "indent: width must be a number");
      return indent(r, v, w.u.i, coh__ch_truthy(first), coh__ch_truthy(blank), out);
    }
    if (!strcmp(name, "replace")) {
      ch_val *a2 = coh__ch_alloc(&r->ar, (na + 1) * sizeof *a2);
      if (a2 == NULL) return OOM();
      if (na) memcpy(a2, args, na * sizeof *args);
      a2[na].t = V_KWARGS;
      a2[na].u.o = kw ? kw : coh__ch_obj_new(r);
      if (a2[na].u.o == NULL) return OOM();
      return replace(r, v, a2, na + 1, out);
    }
    return coh__ch_fail(r, COH_EFORMAT, "filter %s does not apply to a string", name);
  }
  if (is_obj(v)) {
    ch_fn fn;
    ch_val *a2;
    size_t i;
    for (i = 0; i < sizeof obj_methods / sizeof obj_methods[0]; i++)
      if (!strcmp(obj_methods[i], name)) break;
    if (i == sizeof obj_methods / sizeof obj_methods[0])
      return coh__ch_fail(r, COH_EFORMAT, "filter %s does not apply to a mapping", name);
    memset(&fn, 0, sizeof fn);
    fn.kind = FN_METHOD;
    fn.self = v;
    fn.name = obj_methods[i];
    a2 = coh__ch_alloc(&r->ar, (na + 1) * sizeof *a2);
    if (a2 == NULL) return OOM();
    if (na) memcpy(a2, args, na * sizeof *args);
    if (kw && kw->n) {
      a2[na].t = V_KWARGS;
      a2[na].u.o = kw;
      na++;
    }
    return call_method(r, &fn, a2, na, out);
  }
  (void)x;
  return coh__ch_fail(r, COH_EFORMAT, "cannot apply filter %s to a %s", name, coh__ch_type_name(v.t));
}
