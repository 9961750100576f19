/*
 * gram_ebnf.c — the EBNF text format (GBNF-compatible; docs/grammar.md).
 *
 *   root   ::= "{" ws pair ("," ws pair)* "}"   # comments to end of line
 *   pair   ::= [a-z]+ ":" [0-9]{1,3}
 *   ws     ::= [ \t\n]*
 *
 * Rules: NAME ::= alternatives; a rule ends where the next "NAME ::="
 * starts.  Items: "literal", [class] / [^class] (code points, ranges),
 * '.' (any character), NAME, ( ... ), with * + ? {m} {m,} {m,n}.
 * Escapes in literals and classes: \n \t \r \\ \" \] \[ \- \xHH \uHHHH
 * \UHHHHHHHH.  The start rule is root.  Left recursion is refused.
 */
#include <stdio.h>
#include <string.h>

#include "grammar/gram_int.h"

int32_t coh__gram_set_elem(coh__gb *b, const uint32_t *v, size_t n, int json);

typedef struct ep {
  coh__gb *b;
  const char *s;
  size_t n, i;
  const char *name;
  coh_err *err;
  int rc;
  int depth;
  /* rule names: name → rule, defined flag, first use position */
  char **names;
  int32_t *ids;
  unsigned char *defined;
  size_t *used_at;
  size_t n_names, cap_names;
} ep;

static void where(const ep *p, size_t at, int *line, int *col) {
  size_t k;
  *line = 1;
  *col = 1;
  for (k = 0; k < at && k < p->n; k++) {
    if (p->s[k] == '\n') (*line)++, *col = 1;
    else (*col)++;
  }
}

static int ep_fail(ep *p, size_t at, const char *what, const char *arg) {
  int line, col;
  if (p->rc) return -1;
  where(p, at, &line, &col);
  p->rc = coh__err(p->err, COH_EFORMAT, "%s:%d:%d: %s%s", p->name, line, col,
                   what, arg);
  return -1;
}

static void skip_ws(ep *p, int newlines) {
  while (p->i < p->n) {
    char c = p->s[p->i];
    if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) p->i++;
    else if (c == '#') {
      while (p->i < p->n && p->s[p->i] != '\n') p->i++;
    } else break;
  }
}

static int is_name(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

static size_t name_len(const ep *p, size_t at) {
  size_t k = at;
  while (k < p->n && is_name(p->s[k]) && !(p->s[k] == '.' && k == at)) k++;
  /* a trailing '.' is not part of a name */
  while (k > at && p->s[k - 1] == '.') k--;
  return k - at;
}

static int32_t rule_of(ep *p, const char *s, size_t n, size_t at) {
  size_t i;
  char tmp[64];
  if (n >= sizeof tmp) {
    ep_fail(p, at, "rule name longer than 63 bytes", "");
    return -1;
  }
  memcpy(tmp, s, n);
  tmp[n] = 0;
  for (i = 0; i < p->n_names; i++)
    if (!strcmp(p->names[i], tmp)) return p->ids[i];
  if (p->n_names == p->cap_names) {
    size_t cap = p->cap_names ? p->cap_names * 2 : 32;
    char **a = coh__realloc(p->names, cap * sizeof *a);
    int32_t *b;
    unsigned char *d;
    size_t *u;
    if (!a) goto oom;
    p->names = a;
    b = coh__realloc(p->ids, cap * sizeof *b);
    if (!b) goto oom;
    p->ids = b;
    d = coh__realloc(p->defined, cap);
    if (!d) goto oom;
    p->defined = d;
    u = coh__realloc(p->used_at, cap * sizeof *u);
    if (!u) goto oom;
    p->used_at = u;
    p->cap_names = cap;
  }
  p->names[p->n_names] = coh__strdup(tmp);
  if (!p->names[p->n_names]) goto oom;
  p->ids[p->n_names] = coh__gb_rule(p->b, tmp);
  p->defined[p->n_names] = 0;
  p->used_at[p->n_names] = at;
  return p->ids[p->n_names++];
oom:
  p->b->oom = 1;
  return -1;
}

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* One code point of a literal or class (escapes decoded). */
static int read_cp(ep *p, uint32_t *cp) {
  unsigned char c;
  if (p->i >= p->n) return ep_fail(p, p->i, "unexpected end of text", "");
  c = (unsigned char)p->s[p->i];
  if (c == '\\') {
    int nd = 0, k;
    char e;
    if (p->i + 1 >= p->n) return ep_fail(p, p->i, "dangling backslash", "");
    e = p->s[p->i + 1];
    p->i += 2;
    switch (e) {
      case 'n': *cp = '\n'; return 0;
      case 't': *cp = '\t'; return 0;
      case 'r': *cp = '\r'; return 0;
      case 'x': nd = 2; break;
      case 'u': nd = 4; break;
      case 'U': nd = 8; break;
      default: *cp = (unsigned char)e; return 0;
    }
    *cp = 0;
    for (k = 0; k < nd; k++) {
      int h = p->i < p->n ? hexv(p->s[p->i]) : -1;
      if (h < 0) return ep_fail(p, p->i, "bad hex escape", "");
      *cp = *cp * 16 + (uint32_t)h;
      p->i++;
    }
    if (*cp > 0x10FFFF) return ep_fail(p, p->i, "code point beyond U+10FFFF", "");
    return 0;
  }
  if (c < 0x80) {
    *cp = c;
    p->i++;
    return 0;
  }
  {
    size_t l = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1, k;
    uint32_t v = l == 1 ? c : (uint32_t)(c & (l == 4 ? 0x07 : l == 3 ? 0x0F : 0x1F));
    if (p->i + l > p->n) return ep_fail(p, p->i, "bad UTF-8", "");
    for (k = 1; k < l; k++) v = (v << 6) | ((unsigned char)p->s[p->i + k] & 0x3F);
    p->i += l;
    *cp = v;
    return 0;
  }
}

static void push_cp(coh__gb *b, int32_t r, uint32_t cp) {
  char t[8];
  size_t n = 0;
  if (cp < 0x80) t[n++] = (char)cp;
  else if (cp < 0x800) {
    t[n++] = (char)(0xC0 | (cp >> 6));
    t[n++] = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    t[n++] = (char)(0xE0 | (cp >> 12));
    t[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    t[n++] = (char)(0x80 | (cp & 0x3F));
  } else {
    t[n++] = (char)(0xF0 | (cp >> 18));
    t[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
    t[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    t[n++] = (char)(0x80 | (cp & 0x3F));
  }
  coh__gb_lit(b, r, t, n);
}

static int32_t parse_alts(ep *p, size_t rule_start);

static int32_t parse_primary(ep *p) {
  char c = p->s[p->i];
  size_t at = p->i;
  if (c == '"') {
    int32_t r = coh__gb_rule(p->b, "lit");
    p->i++;
    while (p->i < p->n && p->s[p->i] != '"') {
      uint32_t cp;
      if (p->s[p->i] == '\n') return ep_fail(p, at, "unterminated literal", "");
      if (read_cp(p, &cp)) return -1;
      push_cp(p->b, r, cp);
    }
    if (p->i >= p->n) return ep_fail(p, at, "unterminated literal", "");
    p->i++;
    coh__gb_push(p->b, r, COH__G_END);
    return r;
  }
  if (c == '[') {
    uint32_t v[2 * 512];
    size_t nv = 0;
    int neg = 0;
    p->i++;
    if (p->i < p->n && p->s[p->i] == '^') neg = 1, p->i++;
    while (p->i < p->n && p->s[p->i] != ']') {
      uint32_t a, z;
      if (read_cp(p, &a)) return -1;
      z = a;
      if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
        p->i++;
        if (read_cp(p, &z)) return -1;
        if (z < a) return ep_fail(p, at, "class range out of order", "");
      }
      if (nv >= 512) return ep_fail(p, at, "more than 512 ranges in a class", "");
      v[2 * nv] = a;
      v[2 * nv + 1] = z;
      nv++;
    }
    if (p->i >= p->n) return ep_fail(p, at, "unterminated class", "");
    p->i++;
    if (neg) {
      int32_t r = coh__gb_cp_set(p->b, v, nv, 1);
      return r;
    }
    return coh__gb_cp_set(p->b, v, nv, 0);
  }
  if (c == '.') {
    p->i++;
    return coh__gb_cp_range(p->b, 0, 0x10FFFF);
  }
  if (c == '(') {
    int32_t r;
    p->i++;
    if (++p->depth > 64) return ep_fail(p, at, "groups nested deeper than 64", "");
    r = parse_alts(p, at);
    p->depth--;
    if (p->rc) return -1;
    skip_ws(p, 1);
    if (p->i >= p->n || p->s[p->i] != ')') return ep_fail(p, at, "missing ')' for this '('", "");
    p->i++;
    return r;
  }
  if (is_name(c)) {
    size_t l = name_len(p, p->i);
    int32_t r;
    if (l == 0) return ep_fail(p, at, "unexpected character", "");
    r = rule_of(p, p->s + p->i, l, at);
    p->i += l;
    return r;
  }
  {
    char t[2] = {c, 0};
    return ep_fail(p, at, "unexpected character ", t);
  }
}

static int read_num(ep *p, long *v) {
  size_t st = p->i;
  long x = 0;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
    x = x * 10 + (p->s[p->i] - '0');
    if (x > 1000000) x = 1000000;
    p->i++;
  }
  *v = x;
  return p->i > st;
}

/* Whether a "NAME ::=" starts at p->i. */
static int at_rule_start(ep *p) {
  size_t l = name_len(p, p->i), k;
  if (!l) return 0;
  k = p->i + l;
  while (k < p->n && (p->s[k] == ' ' || p->s[k] == '\t')) k++;
  return k + 3 <= p->n && !memcmp(p->s + k, "::=", 3);
}

static int32_t parse_alts(ep *p, size_t rule_start) {
  int32_t r = coh__gb_rule(p->b, "alts");
  (void)rule_start;
  for (;;) {
    /* one sequence */
    for (;;) {
      int32_t e;
      size_t at;
      skip_ws(p, 1);
      if (p->i >= p->n || p->s[p->i] == '|' || p->s[p->i] == ')') break;
      if (p->depth == 0 && at_rule_start(p)) break;
      at = p->i;
      e = parse_primary(p);
      if (p->rc) return -1;
      while (p->i < p->n) {
        char q = p->s[p->i];
        long lo, hi;
        if (q == '*') lo = 0, hi = -1, p->i++;
        else if (q == '+') lo = 1, hi = -1, p->i++;
        else if (q == '?') lo = 0, hi = 1, p->i++;
        else if (q == '{') {
          p->i++;
          skip_ws(p, 0);
          if (!read_num(p, &lo)) return ep_fail(p, at, "bad {m,n}", "");
          hi = lo;
          skip_ws(p, 0);
          if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            skip_ws(p, 0);
            if (!read_num(p, &hi)) hi = -1;
            skip_ws(p, 0);
          }
          if (p->i >= p->n || p->s[p->i] != '}') return ep_fail(p, at, "bad {m,n}", "");
          p->i++;
          if (hi >= 0 && hi < lo) return ep_fail(p, at, "{m,n} with n < m", "");
          if (lo > COH__GRAM_MAX_REPEAT || hi > COH__GRAM_MAX_REPEAT)
            return ep_fail(p, at, "repetition count over 2000", "");
        } else break;
        e = coh__gb_repeat(p->b, e, lo, hi);
      }
      coh__gb_push(p->b, r, e);
    }
    coh__gb_push(p->b, r, COH__G_END);
    if (p->i < p->n && p->s[p->i] == '|') {
      p->i++;
      continue;
    }
    return r;
  }
}

int coh_grammar_from_ebnf(const char *text, size_t len, const char *name,
                          coh_grammar **out, coh_err *err) {
  ep p;
  coh__gb b;
  size_t i;
  int32_t root = -1;
  int rc = COH_OK;
  if (!out) return coh__err(err, COH_EINVAL, "ebnf: NULL out");
  *out = NULL;
  if (!name) name = "grammar";
  if (!text) return coh__err(err, COH_EINVAL, "%s: NULL text", name);
  memset(&p, 0, sizeof p);
  memset(&b, 0, sizeof b);
  p.b = &b;
  p.s = text;
  p.n = len;
  p.name = name;
  p.err = err;
  for (;;) {
    size_t at, l, k;
    int32_t r, body;
    skip_ws(&p, 1);
    if (p.i >= p.n) break;
    at = p.i;
    if (!at_rule_start(&p)) {
      ep_fail(&p, at, "expected 'NAME ::='", "");
      break;
    }
    l = name_len(&p, p.i);
    r = rule_of(&p, p.s + p.i, l, at);
    if (r < 0) break;
    for (k = 0; k < p.n_names; k++)
      if (p.ids[k] == r) {
        if (p.defined[k]) {
          char nm[64];
          snprintf(nm, sizeof nm, "%s", p.names[k]);
          ep_fail(&p, at, "rule defined twice: ", nm);
        }
        p.defined[k] = 1;
      }
    if (p.rc) break;
    p.i += l;
    skip_ws(&p, 0);
    p.i += 3; /* ::= */
    body = parse_alts(&p, at);
    if (p.rc) break;
    if (p.i < p.n && p.s[p.i] == ')') {
      ep_fail(&p, p.i, "unbalanced ')'", "");
      break;
    }
    coh__gb_push(&b, r, body);
    coh__gb_push(&b, r, COH__G_END);
  }
  if (!p.rc) {
    for (i = 0; i < p.n_names; i++) {
      if (!strcmp(p.names[i], "root")) root = p.ids[i];
      if (!p.defined[i]) {
        ep_fail(&p, p.used_at[i], "undefined rule: ", p.names[i]);
        break;
      }
    }
    if (!p.rc && root < 0) ep_fail(&p, 0, "no rule named 'root'", "");
  }
  if (p.rc) {
    rc = p.rc;
    coh__gb_free(&b);
  } else {
    rc = coh__gb_finish(&b, root, name, out, err);
  }
  for (i = 0; i < p.n_names; i++) coh__free(p.names[i]);
  coh__free(p.names);
  coh__free(p.ids);
  coh__free(p.defined);
  coh__free(p.used_at);
  return rc;
}
