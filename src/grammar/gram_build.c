/*
 * gram_build.c — the grammar builder and its finish step (gram_int.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/gram_int.h"

void coh__gb_free(coh__gb *b) {
  size_t i;
  for (i = 0; i < b->n_rules; i++) coh__free(b->rules[i].e);
  coh__free(b->rules);
  coh__free(b->cls);
  memset(b, 0, sizeof *b);
}

int32_t coh__gb_rule(coh__gb *b, const char *name) {
  coh__gbr *r;
  if (b->oom || b->too_big) return -1;
  if (b->n_rules >= COH__GRAM_MAX_RULES) {
    b->too_big = 1;
    return -1;
  }
  if (b->n_rules == b->cap_rules) {
    size_t cap = b->cap_rules ? b->cap_rules * 2 : 64;
    coh__gbr *p = coh__realloc(b->rules, cap * sizeof *p);
    if (!p) {
      b->oom = 1;
      return -1;
    }
    b->rules = p;
    b->cap_rules = cap;
  }
  r = &b->rules[b->n_rules];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name ? name : "");
  return (int32_t)b->n_rules++;
}

void coh__gb_push(coh__gb *b, int32_t ri, int32_t e) {
  coh__gbr *r;
  if (b->oom || b->too_big || ri < 0 || (size_t)ri >= b->n_rules) return;
  if (e == -1 && 0) return;
  r = &b->rules[ri];
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 8;
    int32_t *p = coh__realloc(r->e, cap * sizeof *p);
    if (!p) {
      b->oom = 1;
      return;
    }
    r->e = p;
    r->cap = cap;
  }
  r->e[r->n++] = e;
}

int32_t coh__gb_cls(coh__gb *b, const coh__cls *c) {
  size_t i;
  if (b->oom) return -1;
  for (i = 0; i < b->n_cls; i++)
    if (!memcmp(&b->cls[i], c, sizeof *c)) return -(int32_t)i - 1;
  if (b->n_cls == b->cap_cls) {
    size_t cap = b->cap_cls ? b->cap_cls * 2 : 32;
    coh__cls *p = coh__realloc(b->cls, cap * sizeof *p);
    if (!p) {
      b->oom = 1;
      return -1;
    }
    b->cls = p;
    b->cap_cls = cap;
  }
  b->cls[b->n_cls] = *c;
  return -(int32_t)(b->n_cls++) - 1;
}

int32_t coh__gb_range(coh__gb *b, unsigned char lo, unsigned char hi) {
  coh__cls c;
  unsigned i;
  memset(&c, 0, sizeof c);
  for (i = lo; i <= hi; i++) c.w[i >> 5] |= 1u << (i & 31);
  return coh__gb_cls(b, &c);
}

int32_t coh__gb_byte(coh__gb *b, unsigned char c) {
  return coh__gb_range(b, c, c);
}

void coh__gb_lit(coh__gb *b, int32_t r, const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) coh__gb_push(b, r, coh__gb_byte(b, (unsigned char)s[i]));
}

int32_t coh__gb_seq(coh__gb *b, const int32_t *e, size_t n) {
  int32_t r = coh__gb_rule(b, "seq");
  size_t i;
  for (i = 0; i < n; i++) coh__gb_push(b, r, e[i]);
  coh__gb_push(b, r, COH__G_END);
  return r;
}

/* x{lo,hi}: lo copies, then hi-lo nested optionals (or a star). */
int32_t coh__gb_repeat(coh__gb *b, int32_t x, long lo, long hi) {
  int32_t r, tail = -1;
  long i;
  if (lo < 0) lo = 0;
  if (lo > COH__GRAM_MAX_REPEAT || hi > COH__GRAM_MAX_REPEAT) {
    b->too_big = 1;
    return -1;
  }
  if (hi < 0) { /* star: S ::= x S | () */
    tail = coh__gb_rule(b, "star");
    coh__gb_push(b, tail, x);
    coh__gb_push(b, tail, tail);
    coh__gb_push(b, tail, COH__G_END);
    coh__gb_push(b, tail, COH__G_END);
  } else {
    for (i = lo; i < hi; i++) { /* O ::= x O' | () */
      int32_t o = coh__gb_rule(b, "opt");
      coh__gb_push(b, o, x);
      if (tail >= 0) coh__gb_push(b, o, tail);
      coh__gb_push(b, o, COH__G_END);
      coh__gb_push(b, o, COH__G_END);
      tail = o;
    }
  }
  r = coh__gb_rule(b, "rep");
  for (i = 0; i < lo; i++) coh__gb_push(b, r, x);
  if (tail >= 0) coh__gb_push(b, r, tail);
  coh__gb_push(b, r, COH__G_END);
  return r;
}

/* ---- UTF-8 ranges ---------------------------------------------------------- */

static int enc(uint32_t cp, unsigned char *o) {
  if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Adds alternatives to rule r for code points lo..hi of equal encoded
 * length (the classic split into byte-class sequences). */
static void utf8_alts(coh__gb *b, int32_t r, uint32_t lo, uint32_t hi) {
  unsigned char a[4], z[4];
  int n, i;
  if (lo > hi) return;
  n = enc(lo, a);
  if (enc(hi, z) != n) return; /* caller splits by length */
  for (i = 0; i < n - 1; i++) {
    uint32_t m = (1u << (6 * (n - 1 - i))) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_alts(b, r, lo, lo | m);
        utf8_alts(b, r, (lo | m) + 1, hi);
        return;
      }
      if ((hi & m) != m) {
        utf8_alts(b, r, lo, (hi & ~m) - 1);
        utf8_alts(b, r, hi & ~m, hi);
        return;
      }
    }
  }
  for (i = 0; i < n; i++) coh__gb_push(b, r, coh__gb_range(b, a[i], z[i]));
  coh__gb_push(b, r, COH__G_END);
}

static void cp_alts(coh__gb *b, int32_t r, uint32_t lo, uint32_t hi) {
  static const uint32_t lim[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  uint32_t start = lo;
  int i;
  if (hi > 0x10FFFF) hi = 0x10FFFF;
  if (lo <= 0xD7FF && hi >= 0xD800) { /* no surrogates */
    cp_alts(b, r, lo, 0xD7FF);
    if (hi > 0xDFFF) cp_alts(b, r, 0xE000, hi);
    return;
  }
  if (lo >= 0xD800 && lo <= 0xDFFF) {
    if (hi <= 0xDFFF) return;
    start = lo = 0xE000;
  }
  for (i = 0; i < 4 && start <= hi; i++) {
    if (start > lim[i]) continue;
    uint32_t end = hi < lim[i] ? hi : lim[i];
    utf8_alts(b, r, start, end);
    start = end + 1;
  }
}

int32_t coh__gb_cp_range(coh__gb *b, uint32_t lo, uint32_t hi) {
  int32_t r = coh__gb_rule(b, "cp");
  cp_alts(b, r, lo, hi);
  return r;
}

static int cmp_pair(const void *x, const void *y) {
  const uint32_t *a = x, *c = y;
  return a[0] < c[0] ? -1 : a[0] > c[0];
}

int32_t coh__gb_cp_set(coh__gb *b, const uint32_t *ranges, size_t n_pairs,
                       int neg) {
  uint32_t *v = coh__malloc((n_pairs + 1) * 2 * sizeof *v);
  size_t i, m = 0;
  int32_t r;
  if (!v) {
    b->oom = 1;
    return -1;
  }
  if (n_pairs) memcpy(v, ranges, n_pairs * 2 * sizeof *v);
  qsort(v, n_pairs, 2 * sizeof *v, cmp_pair);
  for (i = 0; i < n_pairs; i++) { /* merge */
    if (m && v[2 * i] <= v[2 * (m - 1) + 1] + 1) {
      if (v[2 * i + 1] > v[2 * (m - 1) + 1]) v[2 * (m - 1) + 1] = v[2 * i + 1];
    } else {
      v[2 * m] = v[2 * i];
      v[2 * m + 1] = v[2 * i + 1];
      m++;
    }
  }
  r = coh__gb_rule(b, "set");
  if (!neg) {
    for (i = 0; i < m; i++) cp_alts(b, r, v[2 * i], v[2 * i + 1]);
  } else {
    uint32_t next = 0;
    for (i = 0; i < m; i++) {
      if (v[2 * i] > next) cp_alts(b, r, next, v[2 * i] - 1);
      next = v[2 * i + 1] + 1;
    }
    if (next <= 0x10FFFF) cp_alts(b, r, next, 0x10FFFF);
  }
  coh__free(v);
  return r;
}

/* ---- finish ------------------------------------------------------------------ */

static int cls_empty(const coh__cls *c) {
  int i;
  for (i = 0; i < 8; i++)
    if (c->w[i]) return 0;
  return 1;
}

int coh__gb_finish(coh__gb *b, int32_t root, const char *what,
                   coh_grammar **out, coh_err *err) {
  coh_grammar *g = NULL;
  unsigned char *prod = NULL, *null = NULL, *mark = NULL;
  size_t i, k, n_el = 0, n_alts = 0;
  int changed, rc = COH_OK;
  int32_t *stk = NULL;
  *out = NULL;
  if (b->oom) {
    rc = coh__err(err, COH_ENOMEM, "%s: out of memory", what);
    goto done;
  }
  if (b->too_big || root < 0) {
    rc = coh__err(err, COH_ERANGE,
                  "%s: grammar too large (at most %d rules, repetition "
                  "counts at most %d)",
                  what, COH__GRAM_MAX_RULES, COH__GRAM_MAX_REPEAT);
    goto done;
  }
  prod = coh__calloc(b->n_rules + 1, 1);
  null = coh__calloc(b->n_rules + 1, 1);
  mark = coh__calloc(b->n_rules + 1, 1);
  if (!prod || !null || !mark) goto oom;
  /* productive / nullable fixpoints */
  do {
    changed = 0;
    for (i = 0; i < b->n_rules; i++) {
      coh__gbr *r = &b->rules[i];
      size_t s = 0;
      for (k = 0; k < r->n; k++) {
        if (r->e[k] != COH__G_END) continue;
        size_t j;
        int p = 1, nl = 1;
        for (j = s; j < k; j++) {
          int32_t e = r->e[j];
          if (e >= 0) {
            if (!prod[e]) p = 0;
            if (!null[e]) nl = 0;
          } else {
            nl = 0;
            if (cls_empty(&b->cls[-e - 1])) p = 0;
          }
        }
        if (p && !prod[i]) prod[i] = 1, changed = 1;
        if (p && nl && !null[i]) null[i] = 1, changed = 1;
        s = k + 1;
      }
    }
  } while (changed);
  if (!prod[root]) {
    rc = coh__err(err, COH_EINVAL,
                  "%s: the grammar matches no string at all", what);
    goto done;
  }
  /* drop unproductive alternatives (in place) */
  for (i = 0; i < b->n_rules; i++) {
    coh__gbr *r = &b->rules[i];
    size_t s = 0, w = 0;
    for (k = 0; k < r->n; k++) {
      if (r->e[k] != COH__G_END) continue;
      size_t j;
      int p = 1;
      for (j = s; j < k; j++) {
        int32_t e = r->e[j];
        if (e >= 0 ? !prod[e] : cls_empty(&b->cls[-e - 1])) p = 0;
      }
      if (p) {
        memmove(r->e + w, r->e + s, (k + 1 - s) * sizeof *r->e);
        w += k + 1 - s;
      }
      s = k + 1;
    }
    r->n = w;
  }
  /* left recursion: rule A reaches itself through leftmost positions
   * (after nullable prefixes).  DFS per rule over the "left" graph. */
  stk = coh__malloc((b->n_rules + 1) * sizeof *stk);
  if (!stk) goto oom;
  for (i = 0; i < b->n_rules; i++) {
    size_t sp = 0;
    memset(mark, 0, b->n_rules);
    stk[sp++] = (int32_t)i;
    while (sp) {
      coh__gbr *r = &b->rules[stk[--sp]];
      int lead = 1;
      for (k = 0; k < r->n; k++) {
        int32_t e = r->e[k];
        if (e == COH__G_END) {
          lead = 1;
          continue;
        }
        if (!lead) continue;
        if (e < 0) {
          lead = 0;
          continue;
        }
        if ((size_t)e == i) {
          rc = coh__err(err, COH_EUNSUPPORTED,
                        "%s: rule '%s' is left-recursive (rewrite it with "
                        "repetition)",
                        what, b->rules[i].name);
          goto done;
        }
        if (!mark[e]) {
          mark[e] = 1;
          stk[sp++] = e;
        }
        if (!null[e]) lead = 0;
      }
    }
  }
  /* flatten */
  for (i = 0; i < b->n_rules; i++) {
    n_el += b->rules[i].n;
    for (k = 0; k < b->rules[i].n; k++)
      if (b->rules[i].e[k] == COH__G_END) n_alts++;
  }
  if (n_el > COH__GRAM_MAX_ELEMS) {
    rc = coh__err(err, COH_ERANGE, "%s: grammar too large (%zu elements, at "
                  "most %d)", what, n_el, COH__GRAM_MAX_ELEMS);
    goto done;
  }
  g = coh__calloc(1, sizeof *g);
  if (!g) goto oom;
  g->elems = coh__malloc((n_el + 1) * sizeof *g->elems);
  g->alts = coh__malloc((n_alts + 1) * sizeof *g->alts);
  g->alt_off = coh__malloc((b->n_rules + 1) * sizeof *g->alt_off);
  g->cls = coh__malloc((b->n_cls + 1) * sizeof *g->cls);
  if (!g->elems || !g->alts || !g->alt_off || !g->cls) goto oom;
  if (b->n_cls) memcpy(g->cls, b->cls, b->n_cls * sizeof *g->cls);
  g->n_cls = b->n_cls;
  g->n_rules = b->n_rules;
  {
    size_t e = 0, a = 0;
    for (i = 0; i < b->n_rules; i++) {
      coh__gbr *r = &b->rules[i];
      int start = 1;
      g->alt_off[i] = (uint32_t)a;
      for (k = 0; k < r->n; k++) {
        int32_t x = r->e[k];
        if (start) g->alts[a++] = (uint32_t)e, start = 0;
        if (x == COH__G_END) {
          g->elems[e++] = COH__E_END << 30;
          start = 1;
        } else if (x >= 0) {
          g->elems[e++] = (COH__E_REF << 30) | (uint32_t)x;
        } else {
          g->elems[e++] = (COH__E_CLS << 30) | (uint32_t)(-x - 1);
        }
      }
    }
    g->alt_off[b->n_rules] = (uint32_t)a;
    g->n_elems = e;
  }
  g->root = (uint32_t)root;
  if (b->str_loop > 0) {
    uint32_t lr = (uint32_t)(b->str_loop - 1), a;
    g->pflag = coh__calloc(g->n_elems + 1, 1);
    if (!g->pflag) goto oom;
    for (a = g->alt_off[lr]; a < g->alt_off[lr + 1]; a++)
      if (COH__E_KIND(g->elems[g->alts[a]]) == COH__E_CLS)
        g->pflag[g->alts[a]] = 1;
    for (i = 1; i < g->n_elems; i++) {
      uint32_t x = g->elems[i], pr = g->elems[i - 1];
      if (COH__E_KIND(x) == COH__E_CLS && COH__E_KIND(pr) == COH__E_REF &&
          COH__E_VAL(pr) == lr) {
        const coh__cls *k = &g->cls[COH__E_VAL(x)];
        int only_quote = 1;
        unsigned c;
        for (c = 0; c < 256; c++)
          if (((k->w[c >> 5] >> (c & 31)) & 1) != (c == '"')) only_quote = 0;
        if (only_quote) g->pflag[i] = 2;
      }
    }
  }
  g->cauni = coh__calloc(g->n_cls + 1, 1);
  if (!g->cauni) goto oom;
  for (i = 0; i < g->n_cls; i++) {
    const coh__cls *k = &g->cls[i];
    unsigned c, all = 1, none = 1;
    for (c = 0x20; c < 0x7F; c++) {
      if (c == '"' || c == '\\') continue;
      if ((k->w[c >> 5] >> (c & 31)) & 1) none = 0;
      else all = 0;
    }
    g->cauni[i] = (uint8_t)(all ? 1 : none ? 2 : 0);
  }
  /* the char-count fast path: entries of the character rule and of the
   * string loop, each checked to have the shape the fast path assumes */
  if (b->str_loop > 0 && b->chr_rule > 0) {
    uint32_t rs[2], a, q;
    int j;
    rs[0] = (uint32_t)(b->str_loop - 1);
    rs[1] = (uint32_t)(b->chr_rule - 1);
    g->centry = coh__calloc(g->n_elems + 1, 1);
    g->cinert = coh__calloc(g->n_cls + 1, 1);
    if (!g->centry || !g->cinert) goto oom;
    for (i = 0; i < g->n_cls; i++) {
      const coh__cls *k = &g->cls[i];
      unsigned c;
      int inert = 1;
      for (c = 0x20; c < 0xF5 && inert; c++) {
        if (c == '"' || c == '\\' || (c >= 0x80 && c < 0xC2)) continue;
        if ((k->w[c >> 5] >> (c & 31)) & 1) inert = 0;
      }
      g->cinert[i] = (uint8_t)inert;
    }
    for (j = 0; j < 2; j++) {
      int shape = 1;
      for (a = g->alt_off[rs[j]]; a < g->alt_off[rs[j] + 1]; a++) {
        for (q = g->alts[a]; COH__E_KIND(g->elems[q]) == COH__E_CLS; q++) {}
        if (j == 0 && COH__E_KIND(g->elems[q]) == COH__E_REF &&
            COH__E_VAL(g->elems[q]) == rs[0])
          q++;
        if (COH__E_KIND(g->elems[q]) != COH__E_END) shape = 0;
      }
      if (!shape) continue;
      for (a = g->alt_off[rs[j]]; a < g->alt_off[rs[j] + 1]; a++)
        if (COH__E_KIND(g->elems[g->alts[a]]) == COH__E_CLS)
          g->centry[g->alts[a]] = 1;
    }
  }
  *out = g;
  g = NULL;
  goto done;
oom:
  rc = coh__err(err, COH_ENOMEM, "%s: out of memory", what);
done:
  coh_grammar_free(g);
  coh__free(prod);
  coh__free(null);
  coh__free(mark);
  coh__free(stk);
  coh__gb_free(b);
  return rc;
}

void coh_grammar_free(coh_grammar *g) {
  if (!g) return;
  coh__free(g->elems);
  coh__free(g->alts);
  coh__free(g->alt_off);
  coh__free(g->cls);
  coh__free(g->pflag);
  coh__free(g->centry);
  coh__free(g->cinert);
  coh__free(g->cauni);
  coh__free(g);
}
