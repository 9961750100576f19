/* chat_value.c — the values templates compute with, the per-render arena
 * they live in, and how they print: {{ v }}, '~' and tojson, each as
 * @huggingface/jinja prints them (true/false, 1.0 for an integral float,
 * JavaScript's number formatting, tojson with ", " and ": "). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_int.h"

/* ---- arena ---------------------------------------------------------------- */
struct ch_chunk {
  ch_chunk *next;
  size_t used, cap;
  max_align_t data[];
};

void *coh__ch_alloc(ch_arena *a, size_t n) {
  ch_chunk *c = a->head;
  void *p;
  n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
  if (n == 0) n = sizeof(max_align_t);
  if (c == NULL || c->cap - c->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    if (a->oom || a->total + cap > COH__CHAT_MEM_MAX) {
      if (!a->oom) a->over = 1;
      a->oom = 1;
      return NULL;
    }
    c = coh__malloc(sizeof *c + cap);
    if (c == NULL) {
      a->oom = 1;
      return NULL;
    }
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
    a->total += cap;
  }
  p = (char *)c->data + c->used;
  c->used += n;
  memset(p, 0, n);
  return p;
}

char *coh__ch_strdup(ch_arena *a, const char *s, size_t n) {
  char *p = coh__ch_alloc(a, n + 1);
  if (p == NULL) return NULL;
  if (n) memcpy(p, s, n);
  p[n] = 0;
  return p;
}

void coh__ch_arena_free(ch_arena *a) {
  ch_chunk *c = a->head;
  while (c) {
    ch_chunk *nx = c->next;
    coh__free(c);
    c = nx;
  }
  a->head = NULL;
  a->total = 0;
}

/* ---- constructors ----------------------------------------------------------- */
ch_val coh__ch_str(const char *p, size_t n) {
  ch_val v;
  v.t = V_STR;
  v.u.s.p = p;
  v.u.s.n = n;
  return v;
}
ch_val coh__ch_int(int64_t i) {
  ch_val v;
  v.t = V_INT;
  v.u.i = i;
  return v;
}
ch_val coh__ch_bool(int b) {
  ch_val v;
  v.t = V_BOOL;
  v.u.b = !!b;
  return v;
}
ch_val coh__ch_undef(void) {
  ch_val v;
  memset(&v, 0, sizeof v);
  v.t = V_UNDEF;
  return v;
}
ch_val coh__ch_null(void) {
  ch_val v;
  memset(&v, 0, sizeof v);
  v.t = V_NULL;
  return v;
}

ch_arr *coh__ch_arr_new(ch_render *r, size_t cap) {
  ch_arr *a = coh__ch_alloc(&r->ar, sizeof *a);
  if (a && cap) {
    a->v = coh__ch_alloc(&r->ar, cap * sizeof *a->v);
    if (a->v == NULL) return NULL;
    a->cap = cap;
  }
  return a;
}

int coh__ch_arr_push(ch_render *r, ch_arr *a, ch_val v) {
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 4;
    ch_val *nv = coh__ch_alloc(&r->ar, nc * sizeof *nv);
    if (nv == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
    if (a->n) memcpy(nv, a->v, a->n * sizeof *nv);
    a->v = nv;
    a->cap = nc;
  }
  a->v[a->n++] = v;
  return 0;
}

ch_obj *coh__ch_obj_new(ch_render *r) {
  return coh__ch_alloc(&r->ar, sizeof(ch_obj));
}

ch_val *coh__ch_obj_get(const ch_obj *o, const char *k, size_t kn) {
  size_t i;
  for (i = 0; i < o->n; i++)
    if (o->kn[i] == kn && !memcmp(o->k[i], k, kn)) return &o->v[i];
  return NULL;
}

int coh__ch_obj_set(ch_render *r, ch_obj *o, const char *k, size_t kn,
                    ch_val v) {
  ch_val *p = coh__ch_obj_get(o, k, kn);
  if (p) {
    *p = v;
    return 0;
  }
  return coh__ch_obj_append(r, o, k, kn, v);
}

int coh__ch_obj_append(ch_render *r, ch_obj *o, const char *k, size_t kn,
                       ch_val v) {
  if (o->n == o->cap) {
    size_t nc = o->cap ? o->cap * 2 : 8;
    const char **nk = coh__ch_alloc(&r->ar, nc * sizeof *nk);
    size_t *nn = coh__ch_alloc(&r->ar, nc * sizeof *nn);
    ch_val *nv = coh__ch_alloc(&r->ar, nc * sizeof *nv);
    if (!nk || !nn || !nv) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
    if (o->n) {
      memcpy(nk, o->k, o->n * sizeof *nk);
      memcpy(nn, o->kn, o->n * sizeof *nn);
      memcpy(nv, o->v, o->n * sizeof *nv);
    }
    o->k = nk, o->kn = nn, o->v = nv, o->cap = nc;
  }
  o->k[o->n] = k;
  o->kn[o->n] = kn;
  o->v[o->n] = v;
  o->n++;
  return 0;
}

const char *coh__ch_type_name(int t) {
  static const char *names[] = {"undefined", "none",     "boolean",
                                "integer",   "float",    "string",
                                "list",      "tuple",    "mapping",
                                "keyword arguments", "namespace", "function"};
  return t >= 0 && t <= V_FUNC ? names[t] : "?";
}

int coh__ch_truthy(ch_val v) {
  switch (v.t) {
    case V_UNDEF: case V_NULL: return 0;
    case V_BOOL: return v.u.b;
    case V_INT: return v.u.i != 0;
    case V_FLOAT: return v.u.f != 0 && !isnan(v.u.f);
    case V_STR: return v.u.s.n != 0;
    case V_ARR: case V_TUPLE: return v.u.a->n != 0;
    case V_OBJ: case V_KWARGS: return v.u.o->n != 0;
    default: return 1;
  }
}

size_t coh__ch_utf16_len(const char *p, size_t n) {
  size_t i, k = 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if ((c & 0xC0) != 0x80) k += c >= 0xF0 ? 2 : 1;
  }
  return k;
}

/* ---- numbers as JavaScript prints them ------------------------------------- */
void coh__ch_num(coh__buf *b, double d) {
  char digits[32], tmp[40];
  int prec, e, k, nd, i;
  if (isnan(d)) { coh__buf_add(b, "NaN", 3); return; }
  if (isinf(d)) {
    if (d < 0) coh__buf_addc(b, '-');
    coh__buf_add(b, "Infinity", 8);
    return;
  }
  if (d == 0) { coh__buf_addc(b, '0'); return; }
  if (d < 0) { coh__buf_addc(b, '-'); d = -d; }
  /* the shortest digits that read back as d */
  for (prec = 1; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
    if (strtod(tmp, NULL) == d) break;
  }
  /* tmp: D.DDDDe[+-]XX */
  nd = 0;
  for (i = 0; tmp[i] && tmp[i] != 'e'; i++)
    if (tmp[i] != '.') digits[nd++] = tmp[i];
  digits[nd] = 0;
  e = atoi(tmp + i + 1);
  while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
  k = nd;
  e = e + 1; /* n in ECMAScript's Number::toString: value = 0.digits * 10^e */
  if (k <= e && e <= 21) {
    coh__buf_add(b, digits, (size_t)k);
    for (i = 0; i < e - k; i++) coh__buf_addc(b, '0');
  } else if (0 < e && e <= 21) {
    coh__buf_add(b, digits, (size_t)e);
    coh__buf_addc(b, '.');
    coh__buf_add(b, digits + e, (size_t)(k - e));
  } else if (-6 < e && e <= 0) {
    coh__buf_add(b, "0.", 2);
    for (i = 0; i < -e; i++) coh__buf_addc(b, '0');
    coh__buf_add(b, digits, (size_t)k);
  } else {
    coh__buf_addc(b, digits[0]);
    if (k > 1) {
      coh__buf_addc(b, '.');
      coh__buf_add(b, digits + 1, (size_t)(k - 1));
    }
    coh__buf_printf(b, "e%c%d", e - 1 >= 0 ? '+' : '-', abs(e - 1));
  }
}

static void print_float(coh__buf *b, double f) {
  if (f == 0 && signbit(f)) { coh__buf_add(b, "-0.0", 4); return; }
  if (isfinite(f) && f == floor(f) && fabs(f) < 1e21) {
    /* toFixed(1) */
    coh__ch_num(b, f);
    coh__buf_add(b, ".0", 2);
    return;
  }
  coh__ch_num(b, f);
}

/* ---- JSON ----------------------------------------------------------------- */
void coh__ch_json_str(coh__buf *b, const char *p, size_t n, int ascii) {
  size_t i = 0;
  coh__buf_addc(b, '"');
  while (i < n) {
    unsigned char c = (unsigned char)p[i];
    if (c == '"') coh__buf_add(b, "\\\"", 2);
    else if (c == '\\') coh__buf_add(b, "\\\\", 2);
    else if (c == '\n') coh__buf_add(b, "\\n", 2);
    else if (c == '\r') coh__buf_add(b, "\\r", 2);
    else if (c == '\t') coh__buf_add(b, "\\t", 2);
    else if (c == '\b') coh__buf_add(b, "\\b", 2);
    else if (c == '\f') coh__buf_add(b, "\\f", 2);
    else if (c < 0x20) coh__buf_printf(b, "\\u%04x", c);
    else if (ascii && c >= 0x7f) {
      size_t len = coh__utf8_seq((const unsigned char *)p + i, n - i);
      uint32_t cp;
      if (len == 0) len = 1, cp = 0xFFFD;
      else if (len == 1) cp = c;
      else if (len == 2) cp = ((c & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
      else if (len == 3)
        cp = ((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
      else
        cp = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) |
             ((p[i + 2] & 0x3Fu) << 6) | (p[i + 3] & 0x3Fu);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        coh__buf_printf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
      } else {
        coh__buf_printf(b, "\\u%04x", cp);
      }
      i += len;
      continue;
    } else coh__buf_addc(b, (char)c);
    i++;
  }
  coh__buf_addc(b, '"');
}

int coh__ch_tojson(ch_render *r, coh__buf *b, ch_val v, const ch_json_opt *o,
                   int depth) {
  const char *isep = o->item_sep ? o->item_sep : o->indent ? "," : ", ";
  const char *ksep = o->key_sep ? o->key_sep : ": ";
  size_t i, n;
  int k;
  if (depth > COH__CHAT_DEPTH_MAX * 4)
    return coh__ch_fail(r, COH_ERANGE, "tojson: value nested too deeply");
  if (coh__ch_step(r, 1)) return -1;
  switch (v.t) {
    case V_NULL: coh__buf_add(b, "null", 4); return 0;
    case V_UNDEF:
      if (o->undef_null) coh__buf_add(b, "null", 4);
      else coh__buf_add(b, "undefined", 9);
      return 0;
    case V_BOOL: coh__buf_add(b, v.u.b ? "true" : "false", v.u.b ? 4 : 5); return 0;
    case V_INT: coh__buf_printf(b, "%lld", (long long)v.u.i); return 0;
    case V_FLOAT:
      if (!isfinite(v.u.f)) coh__buf_add(b, "null", 4);
      else coh__ch_num(b, v.u.f);
      return 0;
    case V_STR: coh__ch_json_str(b, v.u.s.p, v.u.s.n, o->ensure_ascii); return 0;
    case V_TUPLE: case V_KWARGS:
      /* as @huggingface/jinja, which has no JSON form for these */
      return coh__ch_fail(r, COH_EFORMAT, "cannot convert a %s to JSON",
                          coh__ch_type_name(v.t));
    case V_ARR: case V_OBJ: case V_NS: {
      int arr = v.t == V_ARR;
      size_t *order = NULL;
      n = arr ? v.u.a->n : v.u.o->n;
      coh__buf_addc(b, arr ? '[' : '{');
      if (!arr && o->sort_keys && n > 1) {
        order = coh__ch_alloc(&r->ar, n * sizeof *order);
        if (order == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
        for (i = 0; i < n; i++) order[i] = i;
        /* insertion sort by bytes (keys are few) */
        for (i = 1; i < n; i++) {
          size_t x = order[i], j = i;
          while (j > 0) {
            size_t y = order[j - 1], ln = v.u.o->kn[x] < v.u.o->kn[y] ? v.u.o->kn[x] : v.u.o->kn[y];
            int c = memcmp(v.u.o->k[x], v.u.o->k[y], ln);
            if (c > 0 || (c == 0 && v.u.o->kn[x] >= v.u.o->kn[y])) break;
            order[j] = y;
            j--;
          }
          order[j] = x;
        }
      }
      for (i = 0; i < n; i++) {
        size_t ix = order ? order[i] : i;
        if (i) coh__buf_add(b, isep, strlen(isep));
        if (o->indent) {
          coh__buf_addc(b, '\n');
          for (k = 0; k < (depth + 1) * o->indent; k++) coh__buf_addc(b, ' ');
        }
        if (arr) {
          if (coh__ch_tojson(r, b, v.u.a->v[ix], o, depth + 1)) return -1;
        } else {
          coh__ch_json_str(b, v.u.o->k[ix], v.u.o->kn[ix], o->ensure_ascii);
          coh__buf_add(b, ksep, strlen(ksep));
          if (coh__ch_tojson(r, b, v.u.o->v[ix], o, depth + 1)) return -1;
        }
        if (coh__ch_output_check(r, b)) return -1;
      }
      if (o->indent && n > 0) {
        coh__buf_addc(b, '\n');
        for (k = 0; k < depth * o->indent; k++) coh__buf_addc(b, ' ');
      }
      coh__buf_addc(b, arr ? ']' : '}');
      return 0;
    }
    default:
      return coh__ch_fail(r, COH_EFORMAT, "cannot convert a %s to JSON",
                          coh__ch_type_name(v.t));
  }
}

/* ---- printing ----------------------------------------------------------------- */
int coh__ch_print(ch_render *r, coh__buf *b, ch_val v) {
  ch_json_opt o;
  switch (v.t) {
    case V_UNDEF: coh__buf_add(b, "undefined", 9); return 0;
    case V_NULL: coh__buf_add(b, "null", 4); return 0;
    case V_BOOL: coh__buf_add(b, v.u.b ? "true" : "false", v.u.b ? 4 : 5); return 0;
    case V_INT: coh__buf_printf(b, "%lld", (long long)v.u.i); return 0;
    case V_FLOAT: print_float(b, v.u.f); return 0;
    case V_STR: coh__buf_add(b, v.u.s.p, v.u.s.n); return 0;
    case V_ARR: case V_TUPLE: case V_OBJ: case V_KWARGS: case V_NS:
      memset(&o, 0, sizeof o);
      return coh__ch_tojson(r, b, v, &o, 0);
    default: coh__buf_add(b, "[function]", 10); return 0;
  }
}

/* String(v.value) in JavaScript: what '~' and '+' concatenate. */
int coh__ch_jsstr(ch_render *r, coh__buf *b, ch_val v) {
  size_t i;
  switch (v.t) {
    case V_FLOAT: coh__ch_num(b, v.u.f); return 0;
    case V_ARR: case V_TUPLE:
      for (i = 0; i < v.u.a->n; i++) {
        if (i) coh__buf_addc(b, ',');
        if (coh__ch_print(r, b, v.u.a->v[i])) return -1;
        if (coh__ch_output_check(r, b)) return -1;
      }
      return 0;
    case V_OBJ: case V_KWARGS: case V_NS: coh__buf_add(b, "[object Map]", 12); return 0;
    default: return coh__ch_print(r, b, v);
  }
}

/* ---- equality ------------------------------------------------------------------ */
static int js_number(ch_val v, double *d) {
  switch (v.t) {
    case V_BOOL: *d = v.u.b; return 1;
    case V_INT: *d = (double)v.u.i; return 1;
    case V_FLOAT: *d = v.u.f; return 1;
    case V_STR: {
      char buf[64], *end;
      size_t s = 0, e = v.u.s.n;
      while (s < e && strchr(" \t\n\r\v\f", v.u.s.p[s])) s++;
      while (e > s && strchr(" \t\n\r\v\f", v.u.s.p[e - 1])) e--;
      if (s == e) { *d = 0; return 1; }
      if (e - s >= sizeof buf) { *d = NAN; return 1; }
      memcpy(buf, v.u.s.p + s, e - s);
      buf[e - s] = 0;
      if (strpbrk(buf, "xXnN") || strchr(buf, 'i') || strchr(buf, 'I')) {
        *d = NAN;
        return 1;
      }
      *d = strtod(buf, &end);
      if (*end) *d = NAN;
      return 1;
    }
    default: return 0;
  }
}

/* JavaScript's == on the two values' payloads (what '==' means in
 * @huggingface/jinja). */
int coh__ch_loose_eq(ch_val a, ch_val b) {
  double x, y;
  int an = a.t == V_UNDEF || a.t == V_NULL, bn = b.t == V_UNDEF || b.t == V_NULL;
  if (an || bn) return an && bn;
  if (a.t == V_STR && b.t == V_STR)
    return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
  if ((a.t == V_STR || a.t == V_BOOL || a.t == V_INT || a.t == V_FLOAT) &&
      (b.t == V_STR || b.t == V_BOOL || b.t == V_INT || b.t == V_FLOAT)) {
    js_number(a, &x);
    js_number(b, &y);
    return x == y;
  }
  if (a.t == V_FUNC || b.t == V_FUNC) return a.t == b.t && a.u.fn == b.u.fn;
  if ((a.t == V_ARR || a.t == V_TUPLE) && (b.t == V_ARR || b.t == V_TUPLE))
    return a.u.a == b.u.a;
  if ((a.t == V_OBJ || a.t == V_KWARGS || a.t == V_NS) &&
      (b.t == V_OBJ || b.t == V_KWARGS || b.t == V_NS))
    return a.u.o == b.u.o;
  return 0;
}

/* JavaScript's === on the payloads ('in' over a list). */
int coh__ch_strict_eq(ch_val a, ch_val b) {
  int an = a.t == V_INT || a.t == V_FLOAT, bn = b.t == V_INT || b.t == V_FLOAT;
  if (an && bn) {
    double x = a.t == V_INT ? (double)a.u.i : a.u.f;
    double y = b.t == V_INT ? (double)b.u.i : b.u.f;
    return x == y;
  }
  if (a.t != b.t) return 0;
  return coh__ch_loose_eq(a, b);
}

/* ---- from JSON ------------------------------------------------------------------ */
int coh__ch_from_json(ch_render *r, json_t *j, ch_val *out, int depth) {
  if (depth > 512) return coh__ch_fail(r, COH_ERANGE, "variables nested over 512 deep");
  switch (json_typeof(j)) {
    case JSON_NULL: *out = coh__ch_null(); return 0;
    case JSON_TRUE: *out = coh__ch_bool(1); return 0;
    case JSON_FALSE: *out = coh__ch_bool(0); return 0;
    case JSON_INTEGER: {
      json_int_t i = json_integer_value(j);
      if (i > 9007199254740992LL || i < -9007199254740992LL) {
        out->t = V_FLOAT;
        out->u.f = (double)i;
      } else {
        *out = coh__ch_int(i);
      }
      return 0;
    }
    case JSON_REAL: {
      double d = json_real_value(j);
      if (d == floor(d) && fabs(d) <= 9007199254740992.0) *out = coh__ch_int((int64_t)d);
      else out->t = V_FLOAT, out->u.f = d;
      return 0;
    }
    case JSON_STRING: {
      const char *p = coh__ch_strdup(&r->ar, json_string_value(j), json_string_length(j));
      if (p == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      *out = coh__ch_str(p, json_string_length(j));
      return 0;
    }
    case JSON_ARRAY: {
      size_t i, n = json_array_size(j);
      ch_arr *a = coh__ch_arr_new(r, n);
      if (a == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      for (i = 0; i < n; i++)
        if (coh__ch_from_json(r, json_array_get(j, i), &a->v[i], depth + 1)) return -1;
      a->n = n;
      out->t = V_ARR;
      out->u.a = a;
      return 0;
    }
    case JSON_OBJECT: {
      const char *k;
      json_t *x;
      ch_obj *o = coh__ch_obj_new(r);
      if (o == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      json_object_foreach(j, k, x) {
        ch_val v;
        size_t kn = strlen(k);
        char *kc = coh__ch_strdup(&r->ar, k, kn);
        if (kc == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
        if (coh__ch_from_json(r, x, &v, depth + 1)) return -1;
        /* jansson's keys are unique: no lookup (a large object stays
         * linear to load) */
        if (coh__ch_obj_append(r, o, kc, kn, v)) return -1;
      }
      out->t = V_OBJ;
      out->u.o = o;
      return 0;
    }
  }
  return coh__ch_fail(r, COH_EFORMAT, "unexpected JSON value");
}
