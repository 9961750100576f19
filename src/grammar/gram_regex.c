/*
 * gram_regex.c — the regex subset of JSON Schema's `pattern` (and of the
 * formats), compiled into grammar rules that match the JSON-encoded string
 * content (docs/grammar.md lists the subset).
 *
 * Supported: literals, escapes (\. \\ \/ \- ... \n \t \r \f \v \uXXXX),
 * classes [a-z] [^...] with \d \w \s \D \W \S inside or outside, '.',
 * groups ( ) and (?: ), alternation |, quantifiers * + ? {m} {m,} {m,n}
 * (a lazy '?' after them is accepted: laziness does not change the
 * language), ^ at the start and $ at the end.  Anything else (back
 * references, lookaround, \b, named groups, possessive quantifiers) is
 * COH_EUNSUPPORTED.  In JSON context a '"' or '\' in the text is produced
 * escaped, a control character as its JSON escape, and classes never match
 * '"', '\' or controls except \t \n \r (which they produce as escapes).
 */
#include <stdio.h>
#include <string.h>

#include "grammar/gram_int.h"

typedef struct rx {
  coh__gb *b;
  const char *s;
  size_t n, i;
  const char *where;
  coh_err *err;
  int rc;
  int depth;
} rx;

static int rx_fail(rx *r, int code, const char *what) {
  if (!r->rc)
    r->rc = coh__err(r->err, code, "%s: pattern: %s at offset %zu", r->where,
                     what, r->i);
  return -1;
}

/* Ranges (pairs of code points) of a class. */
typedef struct rset {
  uint32_t v[512];
  size_t n; /* pairs */
} rset;

static void rs_add(rset *s, uint32_t lo, uint32_t hi) {
  if (s->n < 256) {
    s->v[2 * s->n] = lo;
    s->v[2 * s->n + 1] = hi;
    s->n++;
  }
}

static void rs_named(rset *s, char c) {
  switch (c) {
    case 'd': rs_add(s, '0', '9'); break;
    case 'w':
      rs_add(s, '0', '9'); rs_add(s, 'a', 'z'); rs_add(s, 'A', 'Z');
      rs_add(s, '_', '_');
      break;
    case 's':
      rs_add(s, ' ', ' '); rs_add(s, '\t', '\r');
      break;
  }
}

/* Complement of s within [0, 0x10FFFF]. */
static void rs_neg(rset *s) {
  rset o;
  uint32_t next = 0;
  size_t i, j;
  o.n = 0;
  /* sort pairs (insertion sort: at most 256) */
  for (i = 1; i < s->n; i++)
    for (j = i; j > 0 && s->v[2 * j] < s->v[2 * (j - 1)]; j--) {
      uint32_t a = s->v[2 * j], b = s->v[2 * j + 1];
      s->v[2 * j] = s->v[2 * (j - 1)];
      s->v[2 * j + 1] = s->v[2 * (j - 1) + 1];
      s->v[2 * (j - 1)] = a;
      s->v[2 * (j - 1) + 1] = b;
    }
  for (i = 0; i < s->n; i++) {
    if (s->v[2 * i] > next) rs_add(&o, next, s->v[2 * i] - 1);
    if (s->v[2 * i + 1] + 1 > next) next = s->v[2 * i + 1] + 1;
  }
  if (next <= 0x10FFFF) rs_add(&o, next, 0x10FFFF);
  *s = o;
}

int32_t coh__gram_set_elem(coh__gb *b, const uint32_t *v, size_t n, int json);

/* One element for the code points of v[0..n) pairs.  json: the JSON
 * string encoding (see the top). */
int32_t coh__gram_set_elem(coh__gb *b, const uint32_t *v, size_t n, int json) {
  coh__cls k;
  uint32_t hi[512];
  size_t i, nh = 0;
  int32_t r, ce;
  int any_ascii = 0, esc_t = 0, esc_n = 0, esc_r = 0, q = 0, bs = 0;
  memset(&k, 0, sizeof k);
  for (i = 0; i < n; i++) {
    uint32_t lo = v[2 * i], h = v[2 * i + 1], c;
    for (c = lo; c <= h && c < 0x80; c++) {
      if (json && (c < 0x20 || c == '"' || c == '\\')) {
        if (c == '\t') esc_t = 1;
        if (c == '\n') esc_n = 1;
        if (c == '\r') esc_r = 1;
        if (c == '"') q = 1;
        if (c == '\\') bs = 1;
        continue;
      }
      k.w[c >> 5] |= 1u << (c & 31);
      any_ascii = 1;
    }
    if (h >= 0x80 && nh < 256) {
      hi[2 * nh] = lo < 0x80 ? 0x80 : lo;
      hi[2 * nh + 1] = h;
      nh++;
    }
  }
  (void)q;
  (void)bs;
  if (!nh && !esc_t && !esc_n && !esc_r && !q && !bs)
    return coh__gb_cls(b, &k); /* may be empty: unproductive */
  r = coh__gb_rule(b, "class");
  if (any_ascii) {
    ce = coh__gb_cls(b, &k);
    coh__gb_push(b, r, ce);
    coh__gb_push(b, r, COH__G_END);
  }
  if (nh) {
    coh__gb_push(b, r, coh__gb_cp_set(b, hi, nh, 0));
    coh__gb_push(b, r, COH__G_END);
    /* a set holding all of U+0080..U+FFFF ('.', most negated classes)
     * also matches those characters written as \uXXXX escapes (Python's
     * json.dumps writes every non-ASCII character so) */
    if (json) {
      size_t q;
      for (q = 0; q < nh; q++)
        if (hi[2 * q] <= 0x80 && hi[2 * q + 1] >= 0xFFFF) break;
      if (q < nh) {
        coh__cls hx;
        int32_t he;
        unsigned ch;
        memset(&hx, 0, sizeof hx);
        for (ch = 0; ch < 256; ch++)
          if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
              (ch >= 'A' && ch <= 'F'))
            hx.w[ch >> 5] |= 1u << (ch & 31);
        he = coh__gb_cls(b, &hx);
        coh__gb_lit(b, r, "\\u", 2);
        coh__gb_push(b, r, he);
        coh__gb_push(b, r, he);
        coh__gb_push(b, r, he);
        coh__gb_push(b, r, he);
        coh__gb_push(b, r, COH__G_END);
      }
    }
  }
  if (esc_t) coh__gb_lit(b, r, "\\t", 2), coh__gb_push(b, r, COH__G_END);
  if (esc_n) coh__gb_lit(b, r, "\\n", 2), coh__gb_push(b, r, COH__G_END);
  if (esc_r) coh__gb_lit(b, r, "\\r", 2), coh__gb_push(b, r, COH__G_END);
  if (q) coh__gb_lit(b, r, "\\\"", 2), coh__gb_push(b, r, COH__G_END);
  if (bs) coh__gb_lit(b, r, "\\\\", 2), coh__gb_push(b, r, COH__G_END);
  return r;
}

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reads one (possibly escaped) code point at r->i into *cp; named class
 * escapes go into set (returns 2), a code point returns 1, error -1. */
static int rx_char(rx *r, uint32_t *cp, rset *named) {
  unsigned char c;
  if (r->i >= r->n) return rx_fail(r, COH_EFORMAT, "unexpected end");
  c = (unsigned char)r->s[r->i];
  if (c == '\\') {
    char e;
    r->i++;
    if (r->i >= r->n) return rx_fail(r, COH_EFORMAT, "dangling backslash");
    e = r->s[r->i++];
    switch (e) {
      case 'd': case 'w': case 's':
        rs_named(named, e);
        return 2;
      case 'D': case 'W': case 'S': {
        rset t;
        t.n = 0;
        rs_named(&t, (char)(e + 32));
        rs_neg(&t);
        memcpy(named->v + 2 * named->n, t.v,
               (named->n + t.n <= 256 ? t.n : 0) * 2 * sizeof(uint32_t));
        if (named->n + t.n <= 256) named->n += t.n;
        return 2;
      }
      case 'n': *cp = '\n'; return 1;
      case 't': *cp = '\t'; return 1;
      case 'r': *cp = '\r'; return 1;
      case 'f': *cp = '\f'; return 1;
      case 'v': *cp = '\v'; return 1;
      case '0': *cp = 0; return 1;
      case 'u': {
        int k, h;
        uint32_t v = 0;
        if (r->i + 4 > r->n) return rx_fail(r, COH_EFORMAT, "bad \\u escape");
        for (k = 0; k < 4; k++) {
          h = hexv(r->s[r->i + (size_t)k]);
          if (h < 0) return rx_fail(r, COH_EFORMAT, "bad \\u escape");
          v = v * 16 + (uint32_t)h;
        }
        r->i += 4;
        *cp = v;
        return 1;
      }
      case 'x': {
        int h1, h2;
        if (r->i + 2 > r->n) return rx_fail(r, COH_EFORMAT, "bad \\x escape");
        h1 = hexv(r->s[r->i]);
        h2 = hexv(r->s[r->i + 1]);
        if (h1 < 0 || h2 < 0) return rx_fail(r, COH_EFORMAT, "bad \\x escape");
        r->i += 2;
        *cp = (uint32_t)(h1 * 16 + h2);
        return 1;
      }
      default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') ||
            (e >= '1' && e <= '9')) {
          r->i -= 2;
          return rx_fail(r, COH_EUNSUPPORTED,
                         "unsupported escape (back reference, \\b, \\p...)");
        }
        *cp = (unsigned char)e;
        return 1;
    }
  }
  if (c < 0x80) {
    *cp = c;
    r->i++;
    return 1;
  }
  {
    size_t l = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2, k;
    uint32_t v = c & (l == 4 ? 0x07 : l == 3 ? 0x0F : 0x1F);
    if (r->i + l > r->n) return rx_fail(r, COH_EFORMAT, "bad UTF-8");
    for (k = 1; k < l; k++) v = (v << 6) | ((unsigned char)r->s[r->i + k] & 0x3F);
    r->i += l;
    *cp = v;
    return 1;
  }
}

static int32_t rx_alt(rx *r);

/* A literal code point as JSON-encoded text. */
static int32_t lit_elem(rx *r, uint32_t cp) {
  uint32_t v[2];
  v[0] = v[1] = cp;
  return coh__gram_set_elem(r->b, v, 1, 1);
}

static int32_t rx_atom(rx *r) {
  char c = r->s[r->i];
  if (c == '(') {
    int32_t e;
    r->i++;
    if (r->i < r->n && r->s[r->i] == '?') {
      if (r->i + 1 < r->n && r->s[r->i + 1] == ':') r->i += 2;
      else return rx_fail(r, COH_EUNSUPPORTED, "unsupported group (lookaround or named)");
    }
    if (++r->depth > 64) return rx_fail(r, COH_ERANGE, "groups nested deeper than 64");
    e = rx_alt(r);
    r->depth--;
    if (e == -1 && r->rc) return -1;
    if (r->i >= r->n || r->s[r->i] != ')') return rx_fail(r, COH_EFORMAT, "missing ')'");
    r->i++;
    return e;
  }
  if (c == '[') {
    rset s;
    int neg = 0, first = 1;
    s.n = 0;
    r->i++;
    if (r->i < r->n && r->s[r->i] == '^') neg = 1, r->i++;
    while (r->i < r->n && (r->s[r->i] != ']' || first)) {
      uint32_t a, z;
      int k;
      first = 0;
      if (r->s[r->i] == '[')
        return rx_fail(r, COH_EUNSUPPORTED, "nested class or POSIX class");
      k = rx_char(r, &a, &s);
      if (k < 0) return -1;
      if (k == 2) continue;
      if (r->i + 1 < r->n && r->s[r->i] == '-' && r->s[r->i + 1] != ']') {
        r->i++;
        k = rx_char(r, &z, &s);
        if (k < 0) return -1;
        if (k == 2 || z < a) return rx_fail(r, COH_EFORMAT, "bad range in class");
        rs_add(&s, a, z);
      } else {
        rs_add(&s, a, a);
      }
    }
    if (r->i >= r->n) return rx_fail(r, COH_EFORMAT, "missing ']'");
    r->i++;
    if (neg) rs_neg(&s);
    return coh__gram_set_elem(r->b, s.v, s.n, 1);
  }
  if (c == '.') {
    rset s;
    s.n = 0;
    rs_add(&s, '\n', '\n');
    rs_neg(&s);
    r->i++;
    return coh__gram_set_elem(r->b, s.v, s.n, 1);
  }
  if (c == '*' || c == '+' || c == '?' || c == '{')
    return rx_fail(r, COH_EFORMAT, "quantifier without an operand");
  if (c == '^' || c == '$')
    return rx_fail(r, COH_EUNSUPPORTED, "anchor inside the pattern");
  {
    uint32_t cp;
    rset s;
    int k;
    s.n = 0;
    k = rx_char(r, &cp, &s);
    if (k < 0) return -1;
    if (k == 2) return coh__gram_set_elem(r->b, s.v, s.n, 1);
    return lit_elem(r, cp);
  }
}

static int rx_num(rx *r, long *v) {
  long x = 0;
  size_t st = r->i;
  while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') {
    x = x * 10 + (r->s[r->i] - '0');
    if (x > 100000) x = 100000;
    r->i++;
  }
  *v = x;
  return r->i > st;
}

/* Whether element e (a builder element) can match the empty string: 1
 * yes, 0 no or not known within the depth bound (the regex's rules form a
 * DAG apart from repetition rules, which have an empty alternative and are
 * answered by it before any recursion). */
static int rx_nullable(const coh__gb *b, int32_t e, int depth) {
  const coh__gbr *ru;
  size_t k, st;
  if (e < 0 || depth > 64) return 0;
  ru = &b->rules[e];
  for (k = 0; k < ru->n; k++) /* an empty alternative */
    if (ru->e[k] == COH__G_END && (k == 0 || ru->e[k - 1] == COH__G_END)) return 1;
  for (st = 0, k = 0; k < ru->n; k++) {
    if (ru->e[k] != COH__G_END) continue;
    {
      size_t q;
      int all = 1;
      for (q = st; q < k && all; q++)
        if (!rx_nullable(b, ru->e[q], depth + 1)) all = 0;
      if (all) return 1;
    }
    st = k + 1;
  }
  return 0;
}

/* A sequence until '|' or ')' or the end; returns a rule. */
static int32_t rx_seq(rx *r, int32_t rule) {
  while (r->i < r->n && r->s[r->i] != '|' && r->s[r->i] != ')') {
    int32_t a;
    if (r->s[r->i] == '$' && r->i + 1 == r->n) break;
    a = rx_atom(r);
    if (r->rc) return -1;
    while (r->i < r->n) {
      char q = r->s[r->i];
      long lo, hi;
      if (q == '*') lo = 0, hi = -1, r->i++;
      else if (q == '+') lo = 1, hi = -1, r->i++;
      else if (q == '?') lo = 0, hi = 1, r->i++;
      else if (q == '{') {
        size_t save = r->i;
        r->i++;
        if (!rx_num(r, &lo)) { r->i = save; break; }
        hi = lo;
        if (r->i < r->n && r->s[r->i] == ',') {
          r->i++;
          if (!rx_num(r, &hi)) hi = -1;
        }
        if (r->i >= r->n || r->s[r->i] != '}') return rx_fail(r, COH_EFORMAT, "bad {m,n}");
        r->i++;
        if (hi >= 0 && hi < lo) return rx_fail(r, COH_EFORMAT, "bad {m,n}: n < m");
        if (lo > COH__GRAM_MAX_REPEAT || hi > COH__GRAM_MAX_REPEAT)
          return rx_fail(r, COH_ERANGE, "repetition count over 2000");
      } else break;
      if (r->i < r->n && r->s[r->i] == '?') r->i++; /* lazy */
      else if (r->i < r->n && r->s[r->i] == '+')
        return rx_fail(r, COH_EUNSUPPORTED, "possessive quantifier");
      if (hi < 0 && rx_nullable(r->b, a, 0))
        return rx_fail(r, COH_EUNSUPPORTED,
                       "unsupported: unbounded repetition of a group that can "
                       "match the empty string (such as (a*)*)");
      a = coh__gb_repeat(r->b, a, lo, hi);
    }
    coh__gb_push(r->b, rule, a);
  }
  coh__gb_push(r->b, rule, COH__G_END);
  return rule;
}

static int32_t rx_alt(rx *r) {
  int32_t rule = coh__gb_rule(r->b, "re");
  rx_seq(r, rule);
  while (!r->rc && r->i < r->n && r->s[r->i] == '|') {
    r->i++;
    rx_seq(r, rule);
  }
  return r->rc ? -1 : rule;
}

int coh__gram_regex(coh__gb *b, const char *src, size_t n, const char *where,
                    int32_t *rule, coh_err *err) {
  rx r;
  int32_t body, top, any = -1;
  int start_anch = 0, end_anch = 0;
  memset(&r, 0, sizeof r);
  r.b = b;
  r.s = src;
  r.n = n;
  r.where = where;
  r.err = err;
  if (n && src[0] == '^') start_anch = 1, r.i = 1;
  if (n > 1 && src[n - 1] == '$' && src[n - 2] != '\\') end_anch = 1;
  body = rx_alt(&r);
  if (r.rc) return r.rc;
  if (r.i < r.n && !(end_anch && r.i == r.n - 1)) {
    rx_fail(&r, COH_EFORMAT, "unbalanced ')'");
    return r.rc;
  }
  if (!start_anch || !end_anch) {
    rset s;
    s.n = 0;
    rs_add(&s, '\n', '\n');
    rs_neg(&s);
    /* search semantics: anything before/after (any JSON char) */
    rs_add(&s, '\n', '\n');
    any = coh__gb_repeat(b, coh__gram_set_elem(b, s.v, s.n, 1), 0, -1);
  }
  top = coh__gb_rule(b, "pattern");
  if (!start_anch) coh__gb_push(b, top, any);
  coh__gb_push(b, top, body);
  if (!end_anch) coh__gb_push(b, top, any);
  coh__gb_push(b, top, COH__G_END);
  *rule = top;
  return COH_OK;
}
