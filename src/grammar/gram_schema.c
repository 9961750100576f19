/*
 * gram_schema.c — JSON Schema (and "any JSON object") to a grammar.
 *
 * Every keyword is in one of four lists (docs/grammar.md): handled; an
 * annotation with no effect on validity (ignored); a validation keyword we
 * do not implement (COH_EUNSUPPORTED naming it and its JSON pointer); and
 * anything else, which JSON Schema itself ignores (a vendor extension such
 * as "propertyOrder" or "javaType": ignored, as every validator does).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/gram_int.h"

#define PTR_MAX 512
#define MAX_DEPTH 64 /* schema nesting (also $ref chains, allOf merges) */

typedef struct sc {
  coh__gb *b;
  json_t *root;
  const char *name;
  coh_err *err;
  int rc;
  int32_t ws, value, string, number, integer, chr;
  /* memo: schema object → rule (for $ref and recursion) */
  json_t **memo_j;
  int32_t *memo_r;
  size_t n_memo, cap_memo;
  json_t *owned; /* array holding merged schemas alive */
  int ordered;    /* coh_grammar_options.ordered_objects */
} sc;

static const char *annot[] = {
    "title", "description", "default", "examples", "example", "$schema",
    "$id", "id", "$comment", "readOnly", "writeOnly", "deprecated",
    "contentMediaType", "contentEncoding", "$defs", "definitions",
    "$anchor", "$vocabulary", "$dynamicAnchor", NULL};
static const char *unsup[] = {
    "not", "if", "then", "else", "contains", "minContains", "maxContains",
    "patternProperties", "propertyNames", "minProperties", "maxProperties",
    "dependencies", "dependentRequired", "dependentSchemas", "uniqueItems",
    "multipleOf", "unevaluatedProperties", "unevaluatedItems",
    "contentSchema", "$dynamicRef", "$recursiveRef", "$recursiveAnchor",
    NULL};
static const char *handled[] = {
    "type", "properties", "required", "additionalProperties", "enum",
    "const", "items", "prefixItems", "additionalItems", "minItems",
    "maxItems", "anyOf", "oneOf", "allOf", "$ref", "minLength",
    "maxLength", "pattern", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", NULL};

static int in_list(const char **l, const char *k) {
  for (; *l; l++)
    if (!strcmp(*l, k)) return 1;
  return 0;
}

static int fail(sc *c, int code, const char *ptr, const char *fmt,
                const char *a) {
  if (c->rc) return c->rc;
  c->rc = coh__err(c->err, code, "%s: %s%s at %s", c->name, fmt, a,
                   ptr[0] ? ptr : "/ (the root)");
  return c->rc;
}

static void ptr_add(char *out, const char *ptr, const char *key) {
  size_t n = strlen(ptr);
  snprintf(out, PTR_MAX, "%s/", ptr);
  n = strlen(out);
  for (; *key && n + 3 < PTR_MAX; key++) {
    if (*key == '~') out[n++] = '~', out[n++] = '0';
    else if (*key == '/') out[n++] = '~', out[n++] = '1';
    else out[n++] = *key;
  }
  out[n] = 0;
}

static void ptr_idx(char *out, const char *ptr, size_t i) {
  char k[32];
  snprintf(k, sizeof k, "%zu", i);
  ptr_add(out, ptr, k);
}

/* ---- shared pieces ----------------------------------------------------------- */

static int32_t lit_rule(coh__gb *b, const char *s) {
  int32_t r = coh__gb_rule(b, "lit");
  coh__gb_lit(b, r, s, strlen(s));
  coh__gb_push(b, r, COH__G_END);
  return r;
}

/* One JSON string character (escapes included), as the raw text. */
static int32_t json_char(coh__gb *b) {
  int32_t r = coh__gb_rule(b, "char"), hex, e;
  coh__cls k;
  unsigned i;
  memset(&k, 0, sizeof k);
  for (i = 0x20; i < 0x80; i++)
    if (i != '"' && i != '\\') k.w[i >> 5] |= 1u << (i & 31);
  coh__gb_push(b, r, coh__gb_cls(b, &k));
  coh__gb_push(b, r, COH__G_END);
  /* multi-byte UTF-8 */
  coh__gb_push(b, r, coh__gb_range(b, 0xC2, 0xDF));
  coh__gb_push(b, r, coh__gb_range(b, 0x80, 0xBF));
  coh__gb_push(b, r, COH__G_END);
  coh__gb_push(b, r, coh__gb_range(b, 0xE0, 0xEF));
  coh__gb_push(b, r, coh__gb_range(b, 0x80, 0xBF));
  coh__gb_push(b, r, coh__gb_range(b, 0x80, 0xBF));
  coh__gb_push(b, r, COH__G_END);
  coh__gb_push(b, r, coh__gb_range(b, 0xF0, 0xF4));
  coh__gb_push(b, r, coh__gb_range(b, 0x80, 0xBF));
  coh__gb_push(b, r, coh__gb_range(b, 0x80, 0xBF));
  coh__gb_push(b, r, coh__gb_range(b, 0x80, 0xBF));
  coh__gb_push(b, r, COH__G_END);
  /* escapes */
  memset(&k, 0, sizeof k);
  for (i = 0; i < 8; i++) {
    unsigned char c = (unsigned char)"\"\\/bfnrt"[i];
    k.w[c >> 5] |= 1u << (c & 31);
  }
  e = coh__gb_cls(b, &k);
  coh__gb_push(b, r, coh__gb_byte(b, '\\'));
  coh__gb_push(b, r, e);
  coh__gb_push(b, r, COH__G_END);
  memset(&k, 0, sizeof k);
  for (i = 0; i < 22; i++) {
    unsigned char c = (unsigned char)"0123456789abcdefABCDEF"[i];
    k.w[c >> 5] |= 1u << (c & 31);
  }
  hex = coh__gb_cls(b, &k);
  coh__gb_push(b, r, coh__gb_byte(b, '\\'));
  coh__gb_push(b, r, coh__gb_byte(b, 'u'));
  for (i = 0; i < 4; i++) coh__gb_push(b, r, hex);
  coh__gb_push(b, r, COH__G_END);
  return r;
}

/* A rule for a JSON string whose content is rule content (or any). */
static int32_t quoted(sc *c, int32_t content) {
  int32_t r = coh__gb_rule(c->b, "str");
  coh__gb_push(c->b, r, coh__gb_byte(c->b, '"'));
  if (content >= 0) coh__gb_push(c->b, r, content);
  coh__gb_push(c->b, r, coh__gb_byte(c->b, '"'));
  coh__gb_push(c->b, r, COH__G_END);
  return r;
}

/* A JSON string literal of s: each non-ASCII character either raw or as
 * \uXXXX (lowercase, as Python's json.dumps), controls escaped. */
static int32_t str_lit(sc *c, const char *s, size_t n) {
  coh__gb *b = c->b;
  int32_t r = coh__gb_rule(b, "strlit");
  size_t i = 0;
  coh__gb_push(b, r, coh__gb_byte(b, '"'));
  while (i < n) {
    unsigned char ch = (unsigned char)s[i];
    char tmp[16];
    if (ch == '"' || ch == '\\') {
      coh__gb_push(b, r, coh__gb_byte(b, '\\'));
      coh__gb_push(b, r, coh__gb_byte(b, ch));
      i++;
    } else if (ch < 0x20) {
      const char *esc = ch == '\n' ? "\\n" : ch == '\t' ? "\\t" : ch == '\r' ? "\\r" : ch == '\b' ? "\\b" : ch == '\f' ? "\\f" : NULL;
      if (esc) {
        coh__gb_lit(b, r, esc, 2);
      } else {
        snprintf(tmp, sizeof tmp, "\\u%04x", ch);
        coh__gb_lit(b, r, tmp, 6);
      }
      i++;
    } else if (ch < 0x80) {
      coh__gb_push(b, r, coh__gb_byte(b, ch));
      i++;
    } else {
      /* decode one UTF-8 character */
      uint32_t cp = 0;
      size_t l = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2, k;
      int32_t alt = coh__gb_rule(b, "uchar");
      if (i + l > n) l = n - i;
      coh__gb_lit(b, alt, s + i, l);
      coh__gb_push(b, alt, COH__G_END);
      cp = ch & (l == 4 ? 0x07 : l == 3 ? 0x0F : 0x1F);
      for (k = 1; k < l; k++) cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                 0xDC00 + (v & 0x3FF));
        coh__gb_lit(b, alt, tmp, 12);
      } else {
        snprintf(tmp, sizeof tmp, "\\u%04x", cp);
        coh__gb_lit(b, alt, tmp, 6);
      }
      coh__gb_push(b, alt, COH__G_END);
      coh__gb_push(b, r, alt);
      i += l;
    }
  }
  coh__gb_push(b, r, coh__gb_byte(b, '"'));
  coh__gb_push(b, r, COH__G_END);
  return r;
}

static void push_ws(sc *c, int32_t r) { coh__gb_push(c->b, r, c->ws); }

/* A rule for a JSON value literal (enum/const): compact form, with
 * whitespace allowed between tokens of arrays and objects. */
static int32_t value_lit(sc *c, json_t *v) {
  coh__gb *b = c->b;
  int32_t r;
  if (json_is_string(v)) return str_lit(c, json_string_value(v), json_string_length(v));
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    int first = 1;
    r = coh__gb_rule(b, "objlit");
    coh__gb_push(b, r, coh__gb_byte(b, '{'));
    push_ws(c, r);
    json_object_foreach(v, k, x) {
      if (!first) {
        coh__gb_push(b, r, coh__gb_byte(b, ','));
        push_ws(c, r);
      }
      first = 0;
      coh__gb_push(b, r, str_lit(c, k, strlen(k)));
      push_ws(c, r);
      coh__gb_push(b, r, coh__gb_byte(b, ':'));
      push_ws(c, r);
      coh__gb_push(b, r, value_lit(c, x));
      push_ws(c, r);
    }
    coh__gb_push(b, r, coh__gb_byte(b, '}'));
    coh__gb_push(b, r, COH__G_END);
    return r;
  }
  if (json_is_array(v)) {
    size_t i;
    r = coh__gb_rule(b, "arrlit");
    coh__gb_push(b, r, coh__gb_byte(b, '['));
    push_ws(c, r);
    for (i = 0; i < json_array_size(v); i++) {
      if (i) {
        coh__gb_push(b, r, coh__gb_byte(b, ','));
        push_ws(c, r);
      }
      coh__gb_push(b, r, value_lit(c, json_array_get(v, i)));
      push_ws(c, r);
    }
    coh__gb_push(b, r, coh__gb_byte(b, ']'));
    coh__gb_push(b, r, COH__G_END);
    return r;
  }
  if (json_is_real(v)) {
    /* a real that is integral also matches its integer spelling */
    char t[64];
    double d = json_real_value(v);
    r = coh__gb_rule(b, "numlit");
    snprintf(t, sizeof t, "%.17g", d);
    coh__gb_lit(b, r, t, strlen(t));
    coh__gb_push(b, r, COH__G_END);
    if (d == (double)(long long)d && d > -1e15 && d < 1e15) {
      snprintf(t, sizeof t, "%lld", (long long)d);
      coh__gb_lit(b, r, t, strlen(t));
      coh__gb_push(b, r, COH__G_END);
      snprintf(t, sizeof t, "%lld.0", (long long)d);
      coh__gb_lit(b, r, t, strlen(t));
      coh__gb_push(b, r, COH__G_END);
    }
    return r;
  }
  {
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!t) {
      b->oom = 1;
      return -1;
    }
    r = lit_rule(b, t);
    free(t);
    if (json_is_integer(v)) { /* 1 also as 1.0 */
      char t2[64];
      snprintf(t2, sizeof t2, "%lld.0", (long long)json_integer_value(v));
      coh__gb_lit(b, r, t2, strlen(t2));
      coh__gb_push(b, r, COH__G_END);
    }
    return r;
  }
}


/* chars ::= <each alternative of char> chars | () — the char rule's
 * alternatives inlined into the loop: one expansion per character instead
 * of two, on the hottest path of a mask (the inside of a string). */
static int32_t char_loop(sc *c) {
  coh__gb *b = c->b;
  int32_t r = coh__gb_rule(b, "chars");
  size_t k = 0;
  if (r < 0 || c->chr < 0 || b->oom) return -1; /* out of memory: b->oom says so */
  while (k < b->rules[c->chr].n) {
    int32_t e = b->rules[c->chr].e[k++];
    if (e == COH__G_END) {
      coh__gb_push(b, r, r);
      coh__gb_push(b, r, COH__G_END);
    } else {
      coh__gb_push(b, r, e);
    }
  }
  coh__gb_push(b, r, COH__G_END);
  return r;
}

/* ws ::= [ \t\n\r]* ; value ::= object | array | string | number | ... */
static void base_rules(sc *c) {
  coh__gb *b = c->b;
  coh__cls k;
  int32_t obj, arr, mem, memt, elt, digits, d19, frac, exp, intp, r;
  memset(&k, 0, sizeof k);
  k.w[0] = (1u << ' ' % 32 * 0) ; /* placeholder, set below */
  memset(&k, 0, sizeof k);
  k.w[' ' >> 5] |= 1u << (' ' & 31);
  k.w['\t' >> 5] |= 1u << ('\t' & 31);
  k.w['\n' >> 5] |= 1u << ('\n' & 31);
  k.w['\r' >> 5] |= 1u << ('\r' & 31);
  c->ws = coh__gb_repeat(b, coh__gb_cls(b, &k), 0, -1);
  c->chr = json_char(b);
  b->chr_rule = c->chr + 1;
  {
    int32_t loop = char_loop(c);
    c->string = quoted(c, loop);
    b->str_loop = loop + 1;
  }
  digits = coh__gb_repeat(b, coh__gb_range(b, '0', '9'), 0, -1);
  d19 = coh__gb_range(b, '1', '9');
  intp = coh__gb_rule(b, "intpart"); /* 0 | [1-9][0-9]* */
  coh__gb_push(b, intp, coh__gb_byte(b, '0'));
  coh__gb_push(b, intp, COH__G_END);
  coh__gb_push(b, intp, d19);
  coh__gb_push(b, intp, digits);
  coh__gb_push(b, intp, COH__G_END);
  c->integer = coh__gb_rule(b, "integer");
  coh__gb_push(b, c->integer, intp);
  coh__gb_push(b, c->integer, COH__G_END);
  coh__gb_push(b, c->integer, coh__gb_byte(b, '-'));
  coh__gb_push(b, c->integer, intp);
  coh__gb_push(b, c->integer, COH__G_END);
  frac = coh__gb_rule(b, "frac");
  coh__gb_push(b, frac, COH__G_END);
  coh__gb_push(b, frac, coh__gb_byte(b, '.'));
  coh__gb_push(b, frac, coh__gb_range(b, '0', '9'));
  coh__gb_push(b, frac, digits);
  coh__gb_push(b, frac, COH__G_END);
  exp = coh__gb_rule(b, "exp");
  coh__gb_push(b, exp, COH__G_END);
  memset(&k, 0, sizeof k);
  k.w['e' >> 5] |= 1u << ('e' & 31);
  k.w['E' >> 5] |= 1u << ('E' & 31);
  coh__gb_push(b, exp, coh__gb_cls(b, &k));
  r = coh__gb_rule(b, "sign");
  coh__gb_push(b, r, COH__G_END);
  coh__gb_push(b, r, coh__gb_byte(b, '+'));
  coh__gb_push(b, r, COH__G_END);
  coh__gb_push(b, r, coh__gb_byte(b, '-'));
  coh__gb_push(b, r, COH__G_END);
  coh__gb_push(b, exp, r);
  coh__gb_push(b, exp, coh__gb_range(b, '0', '9'));
  coh__gb_push(b, exp, digits);
  coh__gb_push(b, exp, COH__G_END);
  c->number = coh__gb_rule(b, "number");
  coh__gb_push(b, c->number, c->integer);
  coh__gb_push(b, c->number, frac);
  coh__gb_push(b, c->number, exp);
  coh__gb_push(b, c->number, COH__G_END);
  /* any value */
  c->value = coh__gb_rule(b, "value");
  obj = coh__gb_rule(b, "object");
  arr = coh__gb_rule(b, "array");
  mem = coh__gb_rule(b, "member");
  memt = coh__gb_rule(b, "members");
  elt = coh__gb_rule(b, "elements");
  coh__gb_push(b, c->value, obj); coh__gb_push(b, c->value, COH__G_END);
  coh__gb_push(b, c->value, arr); coh__gb_push(b, c->value, COH__G_END);
  coh__gb_push(b, c->value, c->string); coh__gb_push(b, c->value, COH__G_END);
  coh__gb_push(b, c->value, c->number); coh__gb_push(b, c->value, COH__G_END);
  coh__gb_lit(b, c->value, "true", 4); coh__gb_push(b, c->value, COH__G_END);
  coh__gb_lit(b, c->value, "false", 5); coh__gb_push(b, c->value, COH__G_END);
  coh__gb_lit(b, c->value, "null", 4); coh__gb_push(b, c->value, COH__G_END);
  /* member ::= string ws ":" ws value ws */
  coh__gb_push(b, mem, c->string);
  push_ws(c, mem);
  coh__gb_push(b, mem, coh__gb_byte(b, ':'));
  push_ws(c, mem);
  coh__gb_push(b, mem, c->value);
  push_ws(c, mem);
  coh__gb_push(b, mem, COH__G_END);
  /* members ::= "," ws member members | () */
  coh__gb_push(b, memt, coh__gb_byte(b, ','));
  push_ws(c, memt);
  coh__gb_push(b, memt, mem);
  coh__gb_push(b, memt, memt);
  coh__gb_push(b, memt, COH__G_END);
  coh__gb_push(b, memt, COH__G_END);
  /* object ::= "{" ws ( member members )? "}" */
  coh__gb_push(b, obj, coh__gb_byte(b, '{'));
  push_ws(c, obj);
  coh__gb_push(b, obj, mem);
  coh__gb_push(b, obj, memt);
  coh__gb_push(b, obj, coh__gb_byte(b, '}'));
  coh__gb_push(b, obj, COH__G_END);
  coh__gb_push(b, obj, coh__gb_byte(b, '{'));
  push_ws(c, obj);
  coh__gb_push(b, obj, coh__gb_byte(b, '}'));
  coh__gb_push(b, obj, COH__G_END);
  /* elements ::= "," ws value ws elements | () */
  coh__gb_push(b, elt, coh__gb_byte(b, ','));
  push_ws(c, elt);
  coh__gb_push(b, elt, c->value);
  push_ws(c, elt);
  coh__gb_push(b, elt, elt);
  coh__gb_push(b, elt, COH__G_END);
  coh__gb_push(b, elt, COH__G_END);
  coh__gb_push(b, arr, coh__gb_byte(b, '['));
  push_ws(c, arr);
  coh__gb_push(b, arr, c->value);
  push_ws(c, arr);
  coh__gb_push(b, arr, elt);
  coh__gb_push(b, arr, coh__gb_byte(b, ']'));
  coh__gb_push(b, arr, COH__G_END);
  coh__gb_push(b, arr, coh__gb_byte(b, '['));
  push_ws(c, arr);
  coh__gb_push(b, arr, coh__gb_byte(b, ']'));
  coh__gb_push(b, arr, COH__G_END);
}

/* ---- integer ranges ------------------------------------------------------------ */

/* Adds to rule r one alternative per piece of [a, b], both n-digit
 * strings (a <= b). */
static void same_len(coh__gb *bd, int32_t r, const char *a, const char *b,
                     int n, int32_t *prefix, int np) {
  int32_t pre[24];
  int i;
  if (np) memcpy(pre, prefix, (size_t)np * sizeof *pre);
  if (n == 1) {
    for (i = 0; i < np; i++) coh__gb_push(bd, r, pre[i]);
    coh__gb_push(bd, r, coh__gb_range(bd, (unsigned char)a[0], (unsigned char)b[0]));
    coh__gb_push(bd, r, COH__G_END);
    return;
  }
  {
    int full = 1; /* a = d00..0, b = e99..9: [d-e][0-9]{n-1} */
    for (i = 1; i < n; i++)
      if (a[i] != '0' || b[i] != '9') full = 0;
    if (full) {
      for (i = 0; i < np; i++) coh__gb_push(bd, r, pre[i]);
      coh__gb_push(bd, r, coh__gb_range(bd, (unsigned char)a[0], (unsigned char)b[0]));
      for (i = 1; i < n; i++) coh__gb_push(bd, r, coh__gb_range(bd, '0', '9'));
      coh__gb_push(bd, r, COH__G_END);
      return;
    }
  }
  if (a[0] == b[0]) {
    pre[np] = coh__gb_byte(bd, (unsigned char)a[0]);
    same_len(bd, r, a + 1, b + 1, n - 1, pre, np + 1);
    return;
  }
  {
    char nines[24], zeros[24];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    /* a0 [a'..9..9] */
    pre[np] = coh__gb_byte(bd, (unsigned char)a[0]);
    same_len(bd, r, a + 1, nines, n - 1, pre, np + 1);
    if (a[0] + 1 <= b[0] - 1) {
      for (i = 0; i < np; i++) coh__gb_push(bd, r, pre[i]);
      coh__gb_push(bd, r, coh__gb_range(bd, (unsigned char)(a[0] + 1), (unsigned char)(b[0] - 1)));
      for (i = 1; i < n; i++) coh__gb_push(bd, r, coh__gb_range(bd, '0', '9'));
      coh__gb_push(bd, r, COH__G_END);
    }
    pre[np] = coh__gb_byte(bd, (unsigned char)b[0]);
    same_len(bd, r, zeros, b + 1, n - 1, pre, np + 1);
  }
}

/* Non-negative integers in [lo, hi]; hi < 0: unbounded.  Adds alts to r
 * with an optional leading literal prefix (e.g. '-'). */
static void nonneg(coh__gb *bd, int32_t r, long long lo, long long hi,
                   int32_t minus) {
  char a[24], z[24];
  int la, lz, L;
  int32_t pre[1];
  int np = minus != 0; /* 0: no prefix (elements are never 0 here) */
  pre[0] = minus;
  la = snprintf(a, sizeof a, "%lld", lo);
  lz = hi >= 0 ? snprintf(z, sizeof z, "%lld", hi) : 19;
  for (L = la; L <= lz && L <= 18; L++) {
    char x[24], y[24];
    if (L == la) memcpy(x, a, (size_t)L + 1);
    else {
      memset(x, '0', (size_t)L);
      x[0] = '1';
      x[L] = 0;
    }
    if (hi >= 0 && L == lz) memcpy(y, z, (size_t)L + 1);
    else {
      memset(y, '9', (size_t)L);
      y[L] = 0;
    }
    same_len(bd, r, x, y, L, pre, np);
  }
  if (hi < 0) { /* 19 or more digits: [1-9][0-9]{18,} */
    int i;
    if (np) coh__gb_push(bd, r, minus);
    coh__gb_push(bd, r, coh__gb_range(bd, '1', '9'));
    for (i = 0; i < 18; i++) coh__gb_push(bd, r, coh__gb_range(bd, '0', '9'));
    coh__gb_push(bd, r, coh__gb_repeat(bd, coh__gb_range(bd, '0', '9'), 0, -1));
    coh__gb_push(bd, r, COH__G_END);
  }
}

#define BIG 999999999999999999LL /* 18 digits */

/* integers in [lo, hi] (has_lo/has_hi: bounded) */
static int32_t int_range(sc *c, int has_lo, long long lo, int has_hi,
                         long long hi) {
  coh__gb *b = c->b;
  int32_t r = coh__gb_rule(b, "intrange"), minus = coh__gb_byte(b, '-');
  if (!has_lo && !has_hi) return c->integer;
  if (has_lo && has_hi && lo > hi) return r; /* empty: unproductive */
  /* negative part: -(max(1,-hi) .. -lo) */
  if (!has_lo || lo < 0) {
    long long nlo = has_hi && hi < 0 ? -hi : 1;
    long long nhi = has_lo ? -lo : -1;
    nonneg(b, r, nlo, nhi, minus);
  }
  if (!has_hi || hi >= 0) {
    long long plo = has_lo && lo > 0 ? lo : 0;
    nonneg(b, r, plo, has_hi ? hi : -1, 0);
  }
  return r;
}

/* ---- schema nodes ----------------------------------------------------------------- */

static int32_t compile(sc *c, json_t *s, const char *ptr, int depth);

static int memo_get(sc *c, json_t *s, int32_t *r) {
  size_t i;
  for (i = 0; i < c->n_memo; i++)
    if (c->memo_j[i] == s) {
      *r = c->memo_r[i];
      return 1;
    }
  return 0;
}

static void memo_put(sc *c, json_t *s, int32_t r) {
  if (c->n_memo == c->cap_memo) {
    size_t cap = c->cap_memo ? c->cap_memo * 2 : 32;
    json_t **a = coh__realloc(c->memo_j, cap * sizeof *a);
    int32_t *b;
    if (!a) { c->b->oom = 1; return; }
    c->memo_j = a;
    b = coh__realloc(c->memo_r, cap * sizeof *b);
    if (!b) { c->b->oom = 1; return; }
    c->memo_r = b;
    c->cap_memo = cap;
  }
  c->memo_j[c->n_memo] = s;
  c->memo_r[c->n_memo++] = r;
}

/* Resolves a local $ref ("#", "#/a/b", with ~0 ~1 and %25 not decoded). */
static json_t *resolve(sc *c, const char *ref, const char *ptr) {
  json_t *x = c->root;
  const char *p = ref;
  char key[256];
  if (p[0] != '#') {
    fail(c, COH_EUNSUPPORTED, ptr, "unsupported remote $ref '", ref);
    return NULL;
  }
  p++;
  while (*p == '/') {
    size_t n = 0;
    p++;
    while (*p && *p != '/' && n + 1 < sizeof key) {
      if (p[0] == '~' && p[1] == '0') key[n++] = '~', p += 2;
      else if (p[0] == '~' && p[1] == '1') key[n++] = '/', p += 2;
      else key[n++] = *p++;
    }
    key[n] = 0;
    if (json_is_object(x)) x = json_object_get(x, key);
    else if (json_is_array(x)) x = json_array_get(x, (size_t)strtoul(key, NULL, 10));
    else x = NULL;
    if (!x) break;
  }
  if (!x || *p) {
    fail(c, COH_EFORMAT, ptr, "$ref target not found: ", ref);
    return NULL;
  }
  return x;
}

/* Shallow merge of schema b into a copy of a (allOf, and anyOf/oneOf
 * branches with sibling keywords): properties united, required
 * concatenated, equal keywords kept, other conflicts unsupported. */
static json_t *merge(sc *c, json_t *a, json_t *bb, const char *ptr, int depth) {
  json_t *m, *v;
  const char *k;
  if (depth > MAX_DEPTH) {
    fail(c, COH_ERANGE, ptr, "schema nested too deeply", "");
    return NULL;
  }
  while (json_is_object(bb) && json_object_get(bb, "$ref") && json_object_size(bb) == 1) {
    bb = resolve(c, json_string_value(json_object_get(bb, "$ref")) ? json_string_value(json_object_get(bb, "$ref")) : "", ptr);
    if (!bb) return NULL;
    if (--depth < -MAX_DEPTH) break;
  }
  if (json_is_true(bb)) return json_incref(a);
  if (!json_is_object(a) || !json_is_object(bb)) {
    fail(c, COH_EUNSUPPORTED, ptr, "unsupported allOf form (a boolean schema)", "");
    return NULL;
  }
  m = json_copy(a);
  if (!m) { c->b->oom = 1; return NULL; }
  json_array_append_new(c->owned, m);
  json_object_foreach(bb, k, v) {
    json_t *old = json_object_get(m, k);
    if (in_list(annot, k)) continue;
    if (!old) {
      json_object_set(m, k, v);
    } else if (!strcmp(k, "properties") && json_is_object(old) && json_is_object(v)) {
      json_t *np = json_copy(old);
      const char *pk;
      json_t *pv;
      json_object_foreach(v, pk, pv) {
        json_t *o2 = json_object_get(np, pk);
        if (o2 && !json_equal(o2, pv)) {
          json_t *mm = merge(c, o2, pv, ptr, depth + 1);
          if (!mm) { json_decref(np); return NULL; }
          json_object_set(np, pk, mm);
        } else {
          json_object_set(np, pk, pv);
        }
      }
      json_object_set_new(m, k, np);
    } else if (!strcmp(k, "required") && json_is_array(old) && json_is_array(v)) {
      json_t *nr = json_copy(old);
      json_array_extend(nr, v);
      json_object_set_new(m, k, nr);
    } else if (!strcmp(k, "allOf") && json_is_array(old) && json_is_array(v)) {
      json_t *nr = json_copy(old);
      json_array_extend(nr, v);
      json_object_set_new(m, k, nr);
    } else if (!json_equal(old, v)) {
      if (!in_list(handled, k) && !in_list(unsup, k)) continue; /* vendor */
      fail(c, COH_EUNSUPPORTED, ptr, "unsupported allOf form: both sides set ", k);
      return NULL;
    }
  }
  return m;
}

static int32_t format_rule(sc *c, const char *f, const char *ptr) {
  /* RFC 3339 full-date with the days each month has, and 29 February only
   * in leap years (divisible by 4, and by 400 at a century), as Ajv's
   * ajv-formats checks it: a date the grammar lets through must be one a
   * validator accepts. */
  static const char *date =
      "([0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
      "|02-(0[1-9]|1[0-9]|2[0-8]))"
      "|([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29)";
  /* seconds 00-59: a leap second (60) is valid only at 23:59 UTC, which
   * depends on the offset; the grammar leaves it out rather than allow an
   * invalid one */
  static const char *time =
      "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?"
      "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
  char re[512];
  int32_t r;
  if (!strcmp(f, "date")) snprintf(re, sizeof re, "^%s$", date);
  else if (!strcmp(f, "time")) snprintf(re, sizeof re, "^%s$", time);
  else if (!strcmp(f, "date-time")) snprintf(re, sizeof re, "^%s[Tt ]%s$", date, time);
  else if (!strcmp(f, "uuid"))
    snprintf(re, sizeof re, "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
             "[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
  else if (!strcmp(f, "email"))
    snprintf(re, sizeof re, "^[a-zA-Z0-9!#$%%&'*+/=?^_`{|}~.-]+@[a-zA-Z0-9-]+(\\.[a-zA-Z0-9-]+)*$");
  else if (!strcmp(f, "uri"))
    /* RFC 3986 characters only (pchar, "/", then "?query", "#fragment");
     * by construction each matches RFC 3986 URI syntax (and Ajv's "uri") */
    snprintf(re, sizeof re, "^[a-zA-Z][a-zA-Z0-9+.\\-]*:"
             "([a-zA-Z0-9._~!$&'()*+,;=:@/\\-]|%%[0-9a-fA-F]{2})+"
             "(\\?([a-zA-Z0-9._~!$&'()*+,;=:@/?\\-]|%%[0-9a-fA-F]{2})*)?"
             "(#([a-zA-Z0-9._~!$&'()*+,;=:@/?\\-]|%%[0-9a-fA-F]{2})*)?$");
  else if (!strcmp(f, "ipv4"))
    snprintf(re, sizeof re, "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}"
             "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$");
  else if (!strcmp(f, "hostname"))
    snprintf(re, sizeof re, "^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
             "(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$");
  else {
    static const char *std[] = {"duration", "idn-email", "idn-hostname",
                                "ipv6", "uri-reference", "iri",
                                "iri-reference", "uri-template",
                                "json-pointer", "relative-json-pointer",
                                "regex", NULL};
    if (in_list(std, f)) {
      fail(c, COH_EUNSUPPORTED, ptr, "unsupported format ", f);
      return -1;
    }
    /* not a JSON Schema format: an annotation (validators ignore it) */
    return c->string;
  }
  if (coh__gram_regex(c->b, re, strlen(re), c->name, &r, c->err)) {
    c->rc = COH_EFORMAT;
    return -1;
  }
  return quoted(c, r);
}

static int get_count(sc *c, json_t *s, const char *k, const char *ptr, long *v) {
  json_t *x = json_object_get(s, k);
  if (!x) return 0;
  if (json_is_real(x) && json_real_value(x) == (double)(long)json_real_value(x))
    *v = (long)json_real_value(x);
  else if (!json_is_integer(x) || json_integer_value(x) < 0) {
    fail(c, COH_EFORMAT, ptr, "not a non-negative integer: ", k);
    return -1;
  } else
    *v = (long)(json_integer_value(x) > 100000000 ? 100000000 : json_integer_value(x));
  if (*v > COH__GRAM_MAX_REPEAT && strcmp(k, "minLength") && strcmp(k, "minItems")) {
    *v = -1; /* a large maximum: unbounded (documented) */
    return 1;
  }
  if (*v > COH__GRAM_MAX_REPEAT) {
    fail(c, COH_ERANGE, ptr, "count over 2000: ", k);
    return -1;
  }
  return 1;
}

static int32_t string_rule(sc *c, json_t *s, const char *ptr) {
  long lo = 0, hi = -1;
  json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
  int a = get_count(c, s, "minLength", ptr, &lo), z = get_count(c, s, "maxLength", ptr, &hi);
  if (a < 0 || z < 0) return -1;
  if ((pat || fmt) && (a || z)) {
    fail(c, COH_EUNSUPPORTED, ptr, "unsupported combination: minLength/maxLength with ",
         pat ? "pattern" : "format");
    return -1;
  }
  if (pat && fmt) {
    fail(c, COH_EUNSUPPORTED, ptr, "unsupported combination: pattern with format", "");
    return -1;
  }
  if (pat) {
    int32_t r;
    char where[PTR_MAX + 64];
    if (!json_is_string(pat)) {
      fail(c, COH_EFORMAT, ptr, "pattern is not a string", "");
      return -1;
    }
    snprintf(where, sizeof where, "%s: %s/pattern", c->name, ptr);
    c->rc = coh__gram_regex(c->b, json_string_value(pat), json_string_length(pat), where, &r, c->err);
    if (c->rc) return -1;
    return quoted(c, r);
  }
  if (fmt) {
    if (!json_is_string(fmt)) {
      fail(c, COH_EFORMAT, ptr, "format is not a string", "");
      return -1;
    }
    return format_rule(c, json_string_value(fmt), ptr);
  }
  if (!a && !z) return c->string;
  return quoted(c, coh__gb_repeat(c->b, c->chr, lo, hi));
}

static int num_val(json_t *x, double *v) {
  if (json_is_integer(x)) { *v = (double)json_integer_value(x); return 1; }
  if (json_is_real(x)) { *v = json_real_value(x); return 1; }
  return 0;
}

static int32_t integer_rule(sc *c, json_t *s, const char *ptr, int is_int) {
  double lo = 0, hi = 0, x;
  int has_lo = 0, has_hi = 0;
  json_t *j;
  if ((j = json_object_get(s, "minimum")) && num_val(j, &x)) lo = x, has_lo = 1;
  if ((j = json_object_get(s, "maximum")) && num_val(j, &x)) hi = x, has_hi = 1;
  if ((j = json_object_get(s, "exclusiveMinimum"))) {
    if (json_is_true(j) && has_lo) lo = lo + (is_int ? 1 : 0), has_lo = is_int ? 1 : 2;
    else if (num_val(j, &x)) lo = x + (is_int ? 1 : 0), has_lo = is_int ? 1 : 2;
  }
  if ((j = json_object_get(s, "exclusiveMaximum"))) {
    if (json_is_true(j) && has_hi) hi = hi - (is_int ? 1 : 0), has_hi = is_int ? 1 : 2;
    else if (num_val(j, &x)) hi = x - (is_int ? 1 : 0), has_hi = is_int ? 1 : 2;
  }
  if (!is_int) {
    /* numbers: only "minimum: 0" / "exclusiveMinimum" at 0 style sign
     * bounds; anything else is unsupported */
    if (!has_lo && !has_hi) return c->number;
    if (has_lo == 1 && lo == 0 && !has_hi) {
      int32_t r = coh__gb_rule(c->b, "nonneg");
      coh__gb_push(c->b, r, c->number);
      coh__gb_push(c->b, r, COH__G_END);
      /* rebuild without the sign: number minus "-" — the base number rule
       * is sign-optional, so restrict through a fresh rule */
      c->b->rules[r].n = 0;
      {
        int32_t d = coh__gb_repeat(c->b, coh__gb_range(c->b, '0', '9'), 0, -1);
        int32_t ip = coh__gb_rule(c->b, "ip"), fr, ex;
        coh__gb_push(c->b, ip, coh__gb_byte(c->b, '0'));
        coh__gb_push(c->b, ip, COH__G_END);
        coh__gb_push(c->b, ip, coh__gb_range(c->b, '1', '9'));
        coh__gb_push(c->b, ip, d);
        coh__gb_push(c->b, ip, COH__G_END);
        /* reuse frac/exp of number: elements 1 and 2 of its alternative */
        fr = c->b->rules[c->number].e[1];
        ex = c->b->rules[c->number].e[2];
        coh__gb_push(c->b, r, ip);
        coh__gb_push(c->b, r, fr);
        coh__gb_push(c->b, r, ex);
        coh__gb_push(c->b, r, COH__G_END);
      }
      return r;
    }
    fail(c, COH_EUNSUPPORTED, ptr, "unsupported keyword 'minimum'/'maximum' on a non-integer number (only minimum 0)", "");
    return -1;
  }
  if ((has_lo && (lo < -(double)BIG || lo > (double)BIG)) ||
      (has_hi && (hi < -(double)BIG || hi > (double)BIG))) {
    fail(c, COH_ERANGE, ptr, "integer bound beyond 18 digits", "");
    return -1;
  }
  {
    long long l = has_lo ? (long long)lo : 0, h = has_hi ? (long long)hi : 0;
    if (has_lo && (double)l < lo) l++; /* ceil for fractional minimum */
    if (has_hi && (double)h > hi) h--;
    return int_range(c, has_lo, l, has_hi, h);
  }
}


/* String content (no quotes) that is none of names[0..n): a trie over the
 * names' bytes; leaving the trie anywhere (another byte, or ending at a
 * node that is not a whole name) gives any string.  Names holding '"',
 * '\\', control or non-ASCII bytes are not excluded (an escaped spelling
 * of a name is not caught either; docs/grammar.md). */
static int32_t key_except(sc *c, const char **names, size_t n, size_t depth,
                          int32_t any_rest) {
  coh__gb *b = c->b;
  int32_t r = coh__gb_rule(b, "keyx");
  coh__cls other;
  unsigned ch;
  size_t i, j;
  int whole = 0;
  memset(&other, 0, sizeof other);
  for (ch = 0x20; ch < 0x80; ch++)
    if (ch != '"' && ch != '\\') other.w[ch >> 5] |= 1u << (ch & 31);
  for (i = 0; i < n; i++)
    if (strlen(names[i]) == depth) whole = 1;
  if (!whole) coh__gb_push(b, r, COH__G_END); /* end here: not a name */
  for (i = 0; i < n; i++) {
    unsigned char x;
    const char *sub[256];
    size_t ns = 0;
    if (strlen(names[i]) <= depth) continue;
    x = (unsigned char)names[i][depth];
    if (!(other.w[x >> 5] & (1u << (x & 31)))) continue; /* done already */
    other.w[x >> 5] &= ~(1u << (x & 31));
    for (j = i; j < n && ns < 256; j++)
      if (strlen(names[j]) > depth && (unsigned char)names[j][depth] == x)
        sub[ns++] = names[j];
    coh__gb_push(b, r, coh__gb_byte(b, x));
    coh__gb_push(b, r, key_except(c, sub, ns, depth + 1, any_rest));
    coh__gb_push(b, r, COH__G_END);
  }
  /* any other character, then anything */
  coh__gb_push(b, r, coh__gb_cls(b, &other));
  coh__gb_push(b, r, any_rest);
  coh__gb_push(b, r, COH__G_END);
  {
    /* multi-byte characters and escapes: the json char rule's other
     * alternatives, i.e. a char that is not printable ASCII */
    int32_t nonascii = coh__gb_rule(b, "nonascii");
    size_t k = 0, a = 0;
    coh__gbr *jr = &b->rules[c->chr];
    /* copy every alternative but the first (printable ASCII) */
    while (k < jr->n) {
      size_t st = k;
      while (jr->e[k] != COH__G_END) k++;
      if (a++ > 0) {
        size_t q;
        for (q = st; q < k; q++) coh__gb_push(b, nonascii, b->rules[c->chr].e[q]);
        coh__gb_push(b, nonascii, COH__G_END);
        jr = &b->rules[c->chr];
      }
      k++;
    }
    coh__gb_push(b, r, nonascii);
    coh__gb_push(b, r, any_rest);
    coh__gb_push(b, r, COH__G_END);
  }
  return r;
}

static int32_t object_rule(sc *c, json_t *s, const char *ptr, int depth) {
  coh__gb *b = c->b;
  json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
  json_t *addl = json_object_get(s, "additionalProperties");
  const char *k;
  json_t *v;
  size_t n = 0, i, n_chain;
  int32_t *pr = NULL, tail[2], r, rest[2];
  char p2[PTR_MAX], p3[PTR_MAX];
  const char **names = NULL;
  int *isreq = NULL;
  int32_t addl_val = -1;
  if (props && !json_is_object(props)) { fail(c, COH_EFORMAT, ptr, "properties is not an object", ""); return -1; }
  if (req && !json_is_array(req)) { fail(c, COH_EFORMAT, ptr, "required is not an array", ""); return -1; }
  n = props ? json_object_size(props) : 0;
  /* required names that are not in properties get an any-value slot */
  pr = coh__calloc(n + (req ? json_array_size(req) : 0) + 1, sizeof *pr);
  names = coh__calloc(n + (req ? json_array_size(req) : 0) + 1, sizeof *names);
  isreq = coh__calloc(n + (req ? json_array_size(req) : 0) + 1, sizeof *isreq);
  if (!pr || !names || !isreq) { b->oom = 1; goto out; }
  n = 0;
  ptr_add(p2, ptr, "properties");
  if (props)
    json_object_foreach(props, k, v) {
      ptr_add(p3, p2, k);
      names[n] = k;
      pr[n] = compile(c, v, p3, depth + 1);
      if (c->rc) goto out;
      n++;
    }
  if (req)
    for (i = 0; i < json_array_size(req); i++) {
      const char *q = json_string_value(json_array_get(req, i));
      size_t j;
      if (!q) { fail(c, COH_EFORMAT, ptr, "required holds a non-string", ""); goto out; }
      for (j = 0; j < n; j++)
        if (!strcmp(names[j], q)) break;
      if (j == n) {
        if (json_is_false(addl)) {
          fail(c, COH_EUNSUPPORTED, ptr, "required property not in properties with additionalProperties false: ", q);
          goto out;
        }
        names[n] = q;
        pr[n] = c->value;
        n++;
      }
      isreq[j] = 1;
    }
  if (!addl || json_is_true(addl)) addl_val = c->value;
  else if (json_is_object(addl)) {
    ptr_add(p2, ptr, "additionalProperties");
    addl_val = compile(c, addl, p2, depth + 1);
    if (c->rc) goto out;
  } else if (!json_is_false(addl)) {
    fail(c, COH_EFORMAT, ptr, "additionalProperties is not a schema", "");
    goto out;
  }
  /* tail[f]: additional members (f: something came before) then "}" */
  for (i = 0; i < 2; i++) {
    tail[i] = coh__gb_rule(b, "objtail");
    coh__gb_push(b, tail[i], coh__gb_byte(b, '}'));
    coh__gb_push(b, tail[i], COH__G_END);
  }
  if (addl_val >= 0) {
    /* tail[f] ::= (f ? "," ws : "") key ws ":" ws V ws tail[1] | "}"
     * where key is a string that is not a listed property */
    int32_t key = c->string;
    if (n) {
      const char **ex = coh__calloc(n + 1, sizeof *ex);
      size_t ne = 0, q;
      if (!ex) { b->oom = 1; goto out; }
      for (i = 0; i < n; i++) {
        int plain = 1;
        for (q = 0; names[i][q]; q++) {
          unsigned char ch = (unsigned char)names[i][q];
          if (ch < 0x20 || ch >= 0x80 || ch == '"' || ch == '\\') plain = 0;
        }
        if (plain) ex[ne++] = names[i];
      }
      if (ne)
        key = quoted(c, key_except(c, ex, ne, 0, b->str_loop - 1));
      coh__free(ex);
      /* ordered (generation): a listed name that key_except cannot leave
       * out (an escape or a non-ASCII byte) could come again as an
       * additional member, so this object gets no additional members at
       * all; the output is still valid (docs/grammar.md) */
      if (c->ordered && ne < n) addl_val = -1;
    }
    for (i = 0; addl_val >= 0 && i < 2; i++) {
      if (i) {
        coh__gb_push(b, tail[i], coh__gb_byte(b, ','));
        push_ws(c, tail[i]);
      }
      coh__gb_push(b, tail[i], key);
      push_ws(c, tail[i]);
      coh__gb_push(b, tail[i], coh__gb_byte(b, ':'));
      push_ws(c, tail[i]);
      coh__gb_push(b, tail[i], addl_val);
      push_ws(c, tail[i]);
      coh__gb_push(b, tail[i], tail[1]);
      coh__gb_push(b, tail[i], COH__G_END);
    }
  }
  /* listed properties may also come after the ordered part, in any order
   * (a member already given may then repeat: docs/grammar.md); not in the
   * ordered form, where each comes at most once, in the chain below */
  for (i = 0; !c->ordered && i < 2; i++) {
    size_t q;
    for (q = 0; q < n; q++) {
      if (i) {
        coh__gb_push(b, tail[i], coh__gb_byte(b, ','));
        push_ws(c, tail[i]);
      }
      coh__gb_push(b, tail[i], str_lit(c, names[q], strlen(names[q])));
      push_ws(c, tail[i]);
      coh__gb_push(b, tail[i], coh__gb_byte(b, ':'));
      push_ws(c, tail[i]);
      coh__gb_push(b, tail[i], pr[q]);
      push_ws(c, tail[i]);
      coh__gb_push(b, tail[i], tail[1]);
      coh__gb_push(b, tail[i], COH__G_END);
    }
  }
  /* from the last required property back: rest_i[f].  The optional
   * properties after the last required one are left to the tail, which
   * takes them in any order: the language is the same, and a key there no
   * longer has two parses (chain and tail), which nested objects would
   * multiply into many stacks (and slow masks). */
  rest[0] = tail[0];
  rest[1] = tail[1];
  {
    size_t last = 0;
    for (i = 0; i < n; i++)
      if (isreq[i]) last = i + 1;
    n_chain = c->ordered ? n : last;
  }
  for (i = n_chain; i-- > 0;) {
    int32_t nr[2];
    int f;
    for (f = 0; f < 2; f++) {
      nr[f] = coh__gb_rule(b, "prop");
      if (f) {
        coh__gb_push(b, nr[f], coh__gb_byte(b, ','));
        push_ws(c, nr[f]);
      }
      coh__gb_push(b, nr[f], str_lit(c, names[i], strlen(names[i])));
      push_ws(c, nr[f]);
      coh__gb_push(b, nr[f], coh__gb_byte(b, ':'));
      push_ws(c, nr[f]);
      coh__gb_push(b, nr[f], pr[i]);
      push_ws(c, nr[f]);
      coh__gb_push(b, nr[f], rest[1]);
      coh__gb_push(b, nr[f], COH__G_END);
      if (!isreq[i]) {
        coh__gb_push(b, nr[f], rest[f]);
        coh__gb_push(b, nr[f], COH__G_END);
      }
    }
    rest[0] = nr[0];
    rest[1] = nr[1];
  }
  r = coh__gb_rule(b, "obj");
  coh__gb_push(b, r, coh__gb_byte(b, '{'));
  push_ws(c, r);
  coh__gb_push(b, r, rest[0]);
  coh__gb_push(b, r, COH__G_END);
  coh__free(pr);
  coh__free(names);
  coh__free(isreq);
  return r;
out:
  coh__free(pr);
  coh__free(names);
  coh__free(isreq);
  return -1;
}

static int32_t array_rule(sc *c, json_t *s, const char *ptr, int depth) {
  coh__gb *b = c->b;
  json_t *items = json_object_get(s, "items"), *prefix = json_object_get(s, "prefixItems");
  json_t *addi = json_object_get(s, "additionalItems");
  long lo = 0, hi = -1;
  size_t k = 0, i, C;
  int32_t *slot = NULL, item = c->value, *L = NULL, r;
  char p2[PTR_MAX], p3[PTR_MAX];
  int a = get_count(c, s, "minItems", ptr, &lo), z = get_count(c, s, "maxItems", ptr, &hi);
  if (a < 0 || z < 0) return -1;
  if (json_is_array(items)) { /* draft 4 tuple */
    prefix = items;
    items = addi;
  }
  if (prefix && !json_is_array(prefix)) { fail(c, COH_EFORMAT, ptr, "prefixItems is not an array", ""); return -1; }
  k = prefix ? json_array_size(prefix) : 0;
  if (k > COH__GRAM_MAX_REPEAT) { fail(c, COH_ERANGE, ptr, "too many prefixItems", ""); return -1; }
  slot = coh__calloc(k + 1, sizeof *slot);
  if (!slot) { b->oom = 1; return -1; }
  ptr_add(p2, ptr, json_object_get(s, "prefixItems") ? "prefixItems" : "items");
  for (i = 0; i < k; i++) {
    ptr_idx(p3, p2, i);
    slot[i] = compile(c, json_array_get(prefix, i), p3, depth + 1);
    if (c->rc) goto out;
  }
  if (json_is_false(items)) item = -1;
  else if (items && !json_is_true(items)) {
    ptr_add(p2, ptr, json_is_array(json_object_get(s, "items")) ? "additionalItems" : "items");
    item = compile(c, items, p2, depth + 1);
    if (c->rc) goto out;
  }
  /* L_i: the list from slot i on (i > 0: a comma first); C distinct */
  C = k > (size_t)lo ? k : (size_t)lo;
  if (hi >= 0 && (size_t)hi < C) C = (size_t)hi; /* unsatisfiable beyond */
  if (hi >= 0 && (size_t)hi > C) C = (size_t)hi;
  L = coh__calloc(C + 2, sizeof *L);
  if (!L) { b->oom = 1; goto out; }
  for (i = 0; i <= C; i++) L[i] = coh__gb_rule(b, "arr");
  for (i = 0; i <= C; i++) {
    int32_t el = i < k ? slot[i] : item;
    int last = i == C;
    /* end here */
    if ((long)i >= lo) {
      coh__gb_push(b, L[i], coh__gb_byte(b, ']'));
      coh__gb_push(b, L[i], COH__G_END);
    }
    if (last && hi >= 0 && (long)i >= hi) continue; /* full */
    if (el < 0) continue;
    if (i) {
      coh__gb_push(b, L[i], coh__gb_byte(b, ','));
      push_ws(c, L[i]);
    }
    coh__gb_push(b, L[i], el);
    push_ws(c, L[i]);
    if (!last) coh__gb_push(b, L[i], L[i + 1]);
    else if (i == 0) { /* unbounded from the first: L_0 -> el L_1-like */
      int32_t t = coh__gb_rule(b, "arrloop");
      coh__gb_push(b, t, coh__gb_byte(b, ']'));
      coh__gb_push(b, t, COH__G_END);
      coh__gb_push(b, t, coh__gb_byte(b, ','));
      push_ws(c, t);
      coh__gb_push(b, t, el);
      push_ws(c, t);
      coh__gb_push(b, t, t);
      coh__gb_push(b, t, COH__G_END);
      coh__gb_push(b, L[i], t);
    } else coh__gb_push(b, L[i], L[i]);
    coh__gb_push(b, L[i], COH__G_END);
  }
  r = coh__gb_rule(b, "array");
  coh__gb_push(b, r, coh__gb_byte(b, '['));
  push_ws(c, r);
  coh__gb_push(b, r, L[0]);
  coh__gb_push(b, r, COH__G_END);
  coh__free(slot);
  coh__free(L);
  return r;
out:
  coh__free(slot);
  coh__free(L);
  return -1;
}

static int32_t type_rule(sc *c, json_t *s, const char *t, const char *ptr, int depth) {
  if (!strcmp(t, "string")) return string_rule(c, s, ptr);
  if (!strcmp(t, "integer")) return integer_rule(c, s, ptr, 1);
  if (!strcmp(t, "number")) return integer_rule(c, s, ptr, 0);
  if (!strcmp(t, "boolean")) {
    int32_t r = coh__gb_rule(c->b, "bool");
    coh__gb_lit(c->b, r, "true", 4);
    coh__gb_push(c->b, r, COH__G_END);
    coh__gb_lit(c->b, r, "false", 5);
    coh__gb_push(c->b, r, COH__G_END);
    return r;
  }
  if (!strcmp(t, "null")) return lit_rule(c->b, "null");
  if (!strcmp(t, "object")) return object_rule(c, s, ptr, depth);
  if (!strcmp(t, "array")) return array_rule(c, s, ptr, depth);
  fail(c, COH_EFORMAT, ptr, "unknown type ", t);
  return -1;
}


/* Whether value v has one of the types t (a string, a list, or NULL). */
static int type_admits(json_t *t, json_t *v) {
  size_t i;
  if (!t) return 1;
  if (json_is_array(t)) {
    for (i = 0; i < json_array_size(t); i++)
      if (type_admits(json_array_get(t, i), v)) return 1;
    return 0;
  }
  if (!json_is_string(t)) return 1;
  {
    const char *n = json_string_value(t);
    if (!strcmp(n, "string")) return json_is_string(v);
    if (!strcmp(n, "object")) return json_is_object(v);
    if (!strcmp(n, "array")) return json_is_array(v);
    if (!strcmp(n, "boolean")) return json_is_boolean(v);
    if (!strcmp(n, "null")) return json_is_null(v);
    if (!strcmp(n, "number")) return json_is_number(v);
    if (!strcmp(n, "integer"))
      return json_is_integer(v) || (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v));
  }
  return 1;
}

static int has_any(json_t *s, const char **keys) {
  for (; *keys; keys++)
    if (json_object_get(s, *keys)) return 1;
  return 0;
}

/* Whether an object with every name in required lists a and b (JSON
 * arrays, or NULL) and in the schema s's own required list is allowed by
 * s: each name a property whose schema is not false, or additional
 * properties allowed. */
static int names_allowed(json_t *s, json_t *a, json_t *b) {
  json_t *props = json_object_get(s, "properties"), *addl = json_object_get(s, "additionalProperties");
  json_t *lists[3];
  size_t l, i;
  lists[0] = a;
  lists[1] = b;
  lists[2] = json_object_get(s, "required");
  for (l = 0; l < 3; l++) {
    if (!lists[l]) continue;
    if (!json_is_array(lists[l])) return 0;
    for (i = 0; i < json_array_size(lists[l]); i++) {
      const char *q = json_string_value(json_array_get(lists[l], i));
      json_t *ps;
      if (!q) return 0;
      ps = json_is_object(props) ? json_object_get(props, q) : NULL;
      if (ps ? json_is_false(ps) : json_is_false(addl)) return 0;
    }
  }
  return 1;
}

/* oneOf is compiled as anyOf, which is exact only when no instance
 * matches two branches.  This finds the overlap it can prove: two branches
 * that only list required properties (the "exactly one of these members"
 * idiom) of an object schema that allows all of them together — an object
 * with both lists' members matches both branches.  That is
 * COH_EUNSUPPORTED naming the branches, rather than a grammar that
 * accepts invalid instances.  (Other overlaps are not detected: docs.) */
static int oneof_overlap(sc *c, json_t *s, json_t *x, const char *ptr) {
  static const char *req_only[] = {"required", "title", "description", "$comment", NULL};
  json_t *t = json_object_get(s, "type");
  size_t i, j;
  char p2[PTR_MAX], msg[160];
  const char *k;
  json_t *v;
  if (!(json_is_string(t) && !strcmp(json_string_value(t), "object")) &&
      !json_object_get(s, "properties"))
    return 0;
  for (i = 0; i < json_array_size(x); i++) {
    json_t *a = json_array_get(x, i);
    int ok = json_is_object(a) && json_is_array(json_object_get(a, "required"));
    if (ok) json_object_foreach(a, k, v) if (!in_list(req_only, k)) ok = 0;
    if (!ok) continue;
    for (j = i + 1; j < json_array_size(x); j++) {
      json_t *b = json_array_get(x, j);
      int okb = json_is_object(b) && json_is_array(json_object_get(b, "required"));
      if (okb) json_object_foreach(b, k, v) if (!in_list(req_only, k)) okb = 0;
      if (!okb || !names_allowed(s, json_object_get(a, "required"), json_object_get(b, "required")))
        continue;
      ptr_add(p2, ptr, "oneOf");
      snprintf(msg, sizeof msg, "unsupported oneOf: branches %zu and %zu can both match "
               "(an object with the members both require)", i, j);
      fail(c, COH_EUNSUPPORTED, p2, msg, "");
      return 1;
    }
  }
  return 0;
}

static int32_t compile_obj(sc *c, json_t *s, const char *ptr, int depth) {
  const char *k;
  json_t *v, *t, *x;
  int32_t r;
  char p2[PTR_MAX];
  static const char *obj_kw[] = {"properties", "required", "additionalProperties", NULL};
  static const char *arr_kw[] = {"items", "prefixItems", "additionalItems", "minItems", "maxItems", NULL};
  static const char *str_kw[] = {"minLength", "maxLength", "pattern", "format", NULL};
  static const char *num_kw[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};
  json_object_foreach(s, k, v) {
    if (in_list(unsup, k)) {
      if (!strcmp(k, "uniqueItems") && json_is_false(v)) continue;
      fail(c, COH_EUNSUPPORTED, ptr, "unsupported keyword ", k);
      return -1;
    }
  }
  /* $ref, alone or with siblings (merged, 2019+ semantics) */
  if ((x = json_object_get(s, "$ref"))) {
    json_t *tg;
    if (!json_is_string(x)) { fail(c, COH_EFORMAT, ptr, "$ref is not a string", ""); return -1; }
    tg = resolve(c, json_string_value(x), ptr);
    if (!tg) return -1;
    {
      json_t *rest = json_copy(s);
      int only = 1;
      if (!rest) { c->b->oom = 1; return -1; }
      json_array_append_new(c->owned, rest);
      json_object_del(rest, "$ref");
      json_object_foreach(rest, k, v) if (in_list(handled, k)) only = 0;
      ptr_add(p2, ptr, "$ref");
      if (only) return compile(c, tg, p2, depth + 1);
      {
        json_t *m = merge(c, rest, tg, ptr, depth);
        if (!m) return -1;
        return compile(c, m, ptr, depth + 1);
      }
    }
  }
  if ((x = json_object_get(s, "allOf"))) {
    json_t *m = json_copy(s);
    size_t i;
    if (!json_is_array(x)) { fail(c, COH_EFORMAT, ptr, "allOf is not an array", ""); return -1; }
    if (!m) { c->b->oom = 1; return -1; }
    json_array_append_new(c->owned, m);
    json_object_del(m, "allOf");
    for (i = 0; i < json_array_size(x); i++) {
      m = merge(c, m, json_array_get(x, i), ptr, depth);
      if (!m) return -1;
      if (json_object_get(m, "allOf")) { /* nested allOf from a $ref */
        json_t *inner = json_object_get(m, "allOf");
        json_t *m2 = json_copy(m);
        size_t j;
        json_array_append_new(c->owned, m2);
        json_object_del(m2, "allOf");
        for (j = 0; j < json_array_size(inner); j++) {
          m2 = merge(c, m2, json_array_get(inner, j), ptr, depth + 1);
          if (!m2) return -1;
        }
        m = m2;
      }
    }
    return compile(c, m, ptr, depth + 1);
  }
  if ((x = json_object_get(s, "anyOf")) || (x = json_object_get(s, "oneOf"))) {
    const char *kw = json_object_get(s, "anyOf") ? "anyOf" : "oneOf";
    json_t *base = json_copy(s);
    size_t i;
    int plain = 1;
    if (!json_is_array(x)) { fail(c, COH_EFORMAT, ptr, "anyOf/oneOf is not an array", ""); return -1; }
    if (!base) { c->b->oom = 1; return -1; }
    json_array_append_new(c->owned, base);
    json_object_del(base, kw);
    if (json_object_get(s, "anyOf") && json_object_get(s, "oneOf")) {
      fail(c, COH_EUNSUPPORTED, ptr, "unsupported: anyOf together with oneOf", "");
      return -1;
    }
    json_object_foreach(base, k, v) if (in_list(handled, k)) plain = 0;
    if (!strcmp(kw, "oneOf") && oneof_overlap(c, s, x, ptr)) return -1;
    r = coh__gb_rule(c->b, kw);
    ptr_add(p2, ptr, kw);
    for (i = 0; i < json_array_size(x); i++) {
      char p3[PTR_MAX];
      json_t *br = json_array_get(x, i);
      int32_t e;
      ptr_idx(p3, p2, i);
      if (!plain) {
        br = merge(c, base, br, p3, depth);
        if (!br) return -1;
      }
      e = compile(c, br, p3, depth + 1);
      if (c->rc) return -1;
      coh__gb_push(c->b, r, e);
      coh__gb_push(c->b, r, COH__G_END);
    }
    return r;
  }
  if ((x = json_object_get(s, "const"))) {
    if (!type_admits(json_object_get(s, "type"), x)) return coh__gb_rule(c->b, "none");
    return value_lit(c, x);
  }
  if ((x = json_object_get(s, "enum"))) {
    size_t i;
    if (!json_is_array(x)) { fail(c, COH_EFORMAT, ptr, "enum is not an array", ""); return -1; }
    r = coh__gb_rule(c->b, "enum");
    for (i = 0; i < json_array_size(x); i++) {
      if (!type_admits(json_object_get(s, "type"), json_array_get(x, i))) continue;
      coh__gb_push(c->b, r, value_lit(c, json_array_get(x, i)));
      coh__gb_push(c->b, r, COH__G_END);
    }
    return r;
  }
  t = json_object_get(s, "type");
  if (json_is_string(t)) return type_rule(c, s, json_string_value(t), ptr, depth);
  if (json_is_array(t) || !t) {
    /* a list of types, or none: the types the keywords imply (any value
     * when there are none) */
    const char *all[7] = {"object", "array", "string", "number", "boolean", "null", NULL};
    const char *use[8];
    size_t n = 0, i;
    if (t) {
      for (i = 0; i < json_array_size(t) && n < 7; i++) {
        const char *tn = json_string_value(json_array_get(t, i));
        if (!tn) { fail(c, COH_EFORMAT, ptr, "type holds a non-string", ""); return -1; }
        use[n++] = tn;
      }
    } else {
      if (!has_any(s, obj_kw) && !has_any(s, arr_kw) && !has_any(s, str_kw) && !has_any(s, num_kw))
        return c->value;
      for (i = 0; all[i]; i++) use[n++] = all[i];
    }
    r = coh__gb_rule(c->b, "types");
    for (i = 0; i < n; i++) {
      int32_t e;
      /* "integer" and "number" together: number covers it */
      if (!strcmp(use[i], "integer")) {
        size_t j;
        int dup = 0;
        for (j = 0; j < n; j++) if (!strcmp(use[j], "number")) dup = 1;
        if (dup) continue;
      }
      e = type_rule(c, s, use[i], ptr, depth);
      if (c->rc) return -1;
      coh__gb_push(c->b, r, e);
      coh__gb_push(c->b, r, COH__G_END);
    }
    return r;
  }
  fail(c, COH_EFORMAT, ptr, "type is not a string or an array", "");
  return -1;
}

static int32_t compile(sc *c, json_t *s, const char *ptr, int depth) {
  int32_t r, body;
  if (c->rc || c->b->oom) return -1;
  if (depth > MAX_DEPTH) {
    fail(c, COH_ERANGE, ptr, "schema nested deeper than 64", "");
    return -1;
  }
  if (json_is_true(s)) return c->value;
  if (json_is_false(s)) return coh__gb_rule(c->b, "false"); /* no alts */
  if (!json_is_object(s)) {
    fail(c, COH_EFORMAT, ptr, "a schema must be an object or a boolean", "");
    return -1;
  }
  if (memo_get(c, s, &r)) return r;
  /* allocate first: recursion through $ref lands on this rule */
  r = coh__gb_rule(c->b, "schema");
  memo_put(c, s, r);
  body = compile_obj(c, s, ptr, depth);
  if (c->rc || body < 0) return -1;
  coh__gb_push(c->b, r, body);
  coh__gb_push(c->b, r, COH__G_END);
  return r;
}

static int finish_top(sc *c, int32_t value, coh_grammar **out) {
  int32_t top = coh__gb_rule(c->b, "root");
  coh__gb_push(c->b, top, c->ws);
  coh__gb_push(c->b, top, value);
  coh__gb_push(c->b, top, c->ws);
  coh__gb_push(c->b, top, COH__G_END);
  return coh__gb_finish(c->b, top, c->name, out, c->err);
}

int coh_grammar_from_json_schema(const char *schema, size_t len,
                                 const char *name, coh_grammar **out,
                                 coh_err *err) {
  return coh_grammar_from_json_schema_opts(schema, len, name, NULL, out, err);
}

int coh_grammar_from_json_schema_opts(const char *schema, size_t len,
                                      const char *name,
                                      const coh_grammar_options *o,
                                      coh_grammar **out, coh_err *err) {
  sc c;
  coh__gb b;
  json_error_t je;
  int32_t v;
  int rc;
  if (!out) return coh__err(err, COH_EINVAL, "json schema: NULL out");
  *out = NULL;
  if (!name) name = "schema";
  if (!schema) return coh__err(err, COH_EINVAL, "%s: NULL schema", name);
  memset(&c, 0, sizeof c);
  memset(&b, 0, sizeof b);
  c.b = &b;
  c.name = name;
  c.err = err;
  c.ordered = o ? o->ordered_objects != 0 : 0;
  c.root = json_loadb(schema, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (!c.root)
    return coh__err(err, COH_EFORMAT, "%s:%d:%d: not JSON: %s", name,
                    je.line, je.column, je.text);
  c.owned = json_array();
  base_rules(&c);
  v = compile(&c, c.root, "", 0);
  if (c.rc) {
    rc = c.rc;
    coh__gb_free(&b);
  } else if (b.oom) {
    rc = coh__err(err, COH_ENOMEM, "%s: out of memory", name);
    coh__gb_free(&b);
  } else if (b.too_big) {
    rc = coh__err(err, COH_ERANGE, "%s: grammar too large", name);
    coh__gb_free(&b);
  } else {
    rc = finish_top(&c, v, out);
  }
  json_decref(c.owned);
  json_decref(c.root);
  coh__free(c.memo_j);
  coh__free(c.memo_r);
  return rc;
}

int coh_grammar_any_json_object(coh_grammar **out, coh_err *err) {
  static const char s[] = "{\"type\": \"object\"}";
  return coh_grammar_from_json_schema(s, sizeof s - 1, "json_object", out, err);
}
