/* chat_parse.c — tokens to a syntax tree, with the grammar and precedence of
 * @huggingface/jinja (loosest first): a if b else c, or, and, not,
 * comparisons and in, + - ~, * / // %, **, is, |, unary sign, member and
 * call.  Unknown filters and tests are refused here, at parse time. */
#include <stdlib.h>
#include <string.h>

#include "chat_int.h"

typedef struct parser {
  ch_arena *ar;
  const char *name;
  const ch_token *t;
  size_t n, i;
  int depth;
  coh_err *err;
} parser;

static int perr(parser *P, const char *what) {
  const ch_token *t = P->i < P->n ? &P->t[P->i] : (P->n ? &P->t[P->n - 1] : NULL);
  if (t == NULL)
    return coh__err(P->err, COH_EFORMAT, "%s:1:1: %s", P->name, what);
  return coh__err(P->err, COH_EFORMAT, "%s:%u:%u: %s%s%s%s", P->name,
                  (unsigned)t->line, (unsigned)t->col, what,
                  P->i < P->n ? " (at '" : " (at the end",
                  P->i < P->n ? (t->n > 40 ? "..." : t->s) : "",
                  P->i < P->n ? "')" : ")");
}

/* "unknown filter 'x'" at the name's position. */
static int perr_name(parser *P, const char *what, const char *name) {
  const ch_token *t = &P->t[P->i];
  return coh__err(P->err, COH_EFORMAT, "%s:%u:%u: %s '%s'", P->name,
                  (unsigned)t->line, (unsigned)t->col, what, name);
}

static ch_node *mk(parser *P, int kind, const ch_token *at) {
  ch_node *n = coh__ch_alloc(P->ar, sizeof *n);
  if (n == NULL) {
    coh__err(P->err, COH_ENOMEM, "out of memory");
    return NULL;
  }
  n->kind = kind;
  if (at == NULL) at = P->i < P->n ? &P->t[P->i] : (P->n ? &P->t[P->n - 1] : NULL);
  if (at) n->line = at->line, n->col = at->col;
  return n;
}

static int list_push(parser *P, ch_list *l, ch_node *x) {
  /* doubling growth in the arena: capacity is the next power of two */
  if ((l->n & (l->n - 1)) == 0) {
    size_t cap = l->n ? l->n * 2 : 1;
    ch_node **v = coh__ch_alloc(P->ar, cap * sizeof *v);
    if (v == NULL) return coh__err(P->err, COH_ENOMEM, "out of memory");
    if (l->n) memcpy(v, l->v, l->n * sizeof *v);
    l->v = v;
  }
  l->v[l->n++] = x;
  return 0;
}

static int is(parser *P, int type) { return P->i < P->n && P->t[P->i].type == type; }
static int is_ident(parser *P, const char *s) {
  return is(P, TK_IDENT) && !strcmp(P->t[P->i].s, s);
}
static int is_ident2(parser *P, const char *a, const char *b) {
  return P->i + 1 < P->n && P->t[P->i].type == TK_IDENT &&
         !strcmp(P->t[P->i].s, a) && P->t[P->i + 1].type == TK_IDENT &&
         !strcmp(P->t[P->i + 1].s, b);
}
static int is_stmt(parser *P, const char *a, const char *b, const char *c) {
  const char *s;
  if (!(P->i + 1 < P->n && P->t[P->i].type == TK_OPEN_STMT &&
        P->t[P->i + 1].type == TK_IDENT))
    return 0;
  s = P->t[P->i + 1].s;
  return (a && !strcmp(s, a)) || (b && !strcmp(s, b)) || (c && !strcmp(s, c));
}
static int expect(parser *P, int type, const char *what) {
  if (!is(P, type)) return perr(P, what);
  P->i++;
  return 0;
}
static int expect_ident(parser *P, const char *s, const char *what) {
  if (!is_ident(P, s)) return perr(P, what);
  P->i++;
  return 0;
}

static ch_node *expr(parser *P);
static ch_node *primary(parser *P);
static int any(parser *P, ch_list *body);

static int enter(parser *P) {
  if (++P->depth > COH__CHAT_DEPTH_MAX) {
    perr(P, "nesting deeper than 64");
    P->err->code = COH_ERANGE;
    return -1;
  }
  return 0;
}

/* Parses statements into body until one of the named statements starts. */
static int block(parser *P, ch_list *body, const char *a, const char *b,
                 const char *c) {
  while (!is_stmt(P, a, b, c)) {
    int rc;
    if (P->i >= P->n) return perr(P, a ? "unclosed block: expected {% end... %}" : "unexpected end");
    if ((rc = any(P, body))) return rc;
  }
  return 0;
}

static ch_node *sequence(parser *P, int prim) {
  ch_node *first = prim ? primary(P) : expr(P), *tup;
  if (first == NULL) return NULL;
  if (!is(P, TK_COMMA)) return first;
  tup = mk(P, N_TUPLE, NULL);
  if (tup == NULL || list_push(P, &tup->l1, first)) return NULL;
  tup->line = first->line, tup->col = first->col;
  while (is(P, TK_COMMA)) {
    ch_node *x;
    P->i++;
    x = prim ? primary(P) : expr(P);
    if (x == NULL || list_push(P, &tup->l1, x)) return NULL;
  }
  return tup;
}

/* Argument list after '(' ; mode 1: parameters (a macro's). */
static int args(parser *P, ch_list *out, int params) {
  int saw_kw = 0, saw_spread = 0;
  if (expect(P, TK_LPAREN, "expected '('")) return -1;
  while (!is(P, TK_RPAREN)) {
    ch_node *a;
    int kwspread = is(P, TK_POW), spread = is(P, TK_MUL) && !strcmp(P->t[P->i].s, "*");
    if (P->i >= P->n) return perr(P, "expected ')'");
    if (params && (kwspread || spread))
      return perr(P, "argument unpacking is not allowed in parameters");
    if (kwspread) {
      ch_node *x;
      P->i++;
      a = mk(P, N_KWSPREAD, NULL);
      if (a == NULL || (x = expr(P)) == NULL) return -1;
      a->a = x;
      if (list_push(P, out, a)) return -1;
      if (is(P, TK_COMMA)) P->i++;
      if (!is(P, TK_RPAREN)) return perr(P, "'**' must be the last argument");
      break;
    }
    if (spread) {
      ch_node *x;
      if (saw_spread) return perr(P, "only one '*' argument is allowed");
      saw_spread = 1;
      P->i++;
      a = mk(P, N_SPREAD, NULL);
      if (a == NULL || (x = expr(P)) == NULL) return -1;
      a->a = x;
    } else {
      if ((a = expr(P)) == NULL) return -1;
      if (is(P, TK_EQUALS)) {
        ch_node *kw, *v;
        P->i++;
        if (a->kind != N_IDENT)
          return perr(P, params ? "expected an identifier for a parameter"
                                : "expected an identifier for a keyword argument");
        if ((v = expr(P)) == NULL || (kw = mk(P, N_KWARG, NULL)) == NULL) return -1;
        kw->s = a->s, kw->sn = a->sn, kw->a = v;
        kw->line = a->line, kw->col = a->col;
        a = kw;
      }
      if (params) {
        size_t k;
        if (a->kind != N_IDENT && a->kind != N_KWARG)
          return perr(P, "expected an identifier for a parameter");
        for (k = 0; k < out->n; k++)
          if (!strcmp(out->v[k]->s, a->s)) return perr(P, "duplicate parameter name");
      }
      if (a->kind == N_KWARG) saw_kw = 1;
      else if (saw_kw)
        return perr(P, params ? "non-default parameter follows a default one"
                              : "positional argument after keyword argument");
      else if (saw_spread)
        return perr(P, "positional argument after '*' unpacking");
    }
    if (list_push(P, out, a)) return -1;
    if (is(P, TK_COMMA)) P->i++;
  }
  P->i++;
  return 0;
}

static ch_node *member(parser *P, ch_node *obj);

static ch_node *call(parser *P, ch_node *callee) {
  ch_node *c = mk(P, N_CALL, NULL);
  if (c == NULL) return NULL;
  c->line = callee->line, c->col = callee->col;
  c->a = callee;
  if (args(P, &c->l1, 0)) return NULL;
  c = member(P, c);
  if (c && is(P, TK_LPAREN)) c = call(P, c);
  return c;
}

static ch_node *member(parser *P, ch_node *obj) {
  while (obj && (is(P, TK_DOT) || is(P, TK_LBRACKET))) {
    int computed = is(P, TK_LBRACKET);
    ch_node *m = mk(P, N_MEMBER, NULL), *prop;
    if (m == NULL) return NULL;
    P->i++;
    m->a = obj;
    m->flag = computed;
    m->line = obj->line, m->col = obj->col;
    if (computed) {
      ch_node *sl[3] = {NULL, NULL, NULL};
      size_t ns = 0;
      int slice = 0;
      while (!is(P, TK_RBRACKET)) {
        if (P->i >= P->n) { perr(P, "expected ']'"); return NULL; }
        if (ns >= 3) { perr(P, "expected 0-3 arguments for a slice"); return NULL; }
        if (is(P, TK_COLON)) {
          sl[ns++] = NULL;
          P->i++;
          slice = 1;
        } else {
          if ((sl[ns++] = expr(P)) == NULL) return NULL;
          if (is(P, TK_COLON)) P->i++, slice = 1;
        }
      }
      if (ns == 0) { perr(P, "expected an index or a slice"); return NULL; }
      if (slice) {
        if ((prop = mk(P, N_SLICE, NULL)) == NULL) return NULL;
        prop->a = sl[0], prop->b = sl[1], prop->c = sl[2];
      } else {
        prop = sl[0];
      }
      P->i++; /* ] */
    } else {
      if ((prop = primary(P)) == NULL) return NULL;
      if (prop->kind != N_IDENT && prop->kind != N_INT) {
        perr(P, "expected an identifier or integer after '.'");
        return NULL;
      }
    }
    m->b = prop;
    obj = m;
  }
  return obj;
}

static ch_node *unary_sign(parser *P);

static ch_node *filter_expr(parser *P) {
  ch_node *o = unary_sign(P);
  while (o && is(P, TK_PIPE)) {
    ch_node *f, *fe;
    const ch_token *at;
    P->i++;
    at = P->i < P->n ? &P->t[P->i] : NULL;
    if ((f = primary(P)) == NULL) return NULL;
    if (f->kind != N_IDENT) { P->i--; perr(P, "expected a filter name"); return NULL; }
    if (!coh__ch_filter_known(f->s)) {
      P->i--;
      perr_name(P, "unknown filter", f->s);
      return NULL;
    }
    if (is(P, TK_LPAREN) && (f = call(P, f)) == NULL) return NULL;
    if ((fe = mk(P, N_FILTER, at)) == NULL) return NULL;
    fe->a = o, fe->b = f;
    o = fe;
  }
  return o;
}

static ch_node *test_expr(parser *P) {
  ch_node *o = filter_expr(P);
  while (o && is_ident(P, "is")) {
    ch_node *t, *name;
    int neg;
    const ch_token *at = &P->t[P->i];
    P->i++;
    neg = is_ident(P, "not");
    if (neg) P->i++;
    if ((name = primary(P)) == NULL) return NULL;
    if (name->kind != N_IDENT) { P->i--; perr(P, "expected a test name"); return NULL; }
    if (!coh__ch_test_known(name->s)) { P->i--; perr_name(P, "unknown test", name->s); return NULL; }
    if ((t = mk(P, N_TEST, at)) == NULL) return NULL;
    t->a = o, t->flag = neg, t->s = name->s, t->sn = name->sn;
    o = t;
  }
  return o;
}

static ch_node *binary(parser *P, int op, ch_node *l, ch_node *r,
                       const ch_token *at) {
  ch_node *b;
  if (l == NULL || r == NULL) return NULL;
  if ((b = mk(P, N_BINARY, at)) == NULL) return NULL;
  b->op = op, b->a = l, b->b = r;
  return b;
}

static ch_node *power(parser *P) {
  ch_node *l = test_expr(P);
  while (l && is(P, TK_POW)) {
    const ch_token *at = &P->t[P->i++];
    l = binary(P, OP_POW, l, test_expr(P), at);
  }
  return l;
}

static ch_node *mult(parser *P) {
  ch_node *l = power(P);
  while (l && is(P, TK_MUL)) {
    const ch_token *at = &P->t[P->i++];
    int op = !strcmp(at->s, "*") ? OP_MUL : !strcmp(at->s, "/") ? OP_DIV
             : !strcmp(at->s, "//") ? OP_FLOORDIV : OP_MOD;
    l = binary(P, op, l, power(P), at);
  }
  return l;
}

static ch_node *additive(parser *P) {
  ch_node *l = mult(P);
  while (l && is(P, TK_ADD)) {
    const ch_token *at = &P->t[P->i++];
    int op = at->s[0] == '+' ? OP_ADD : at->s[0] == '-' ? OP_SUB : OP_CAT;
    l = binary(P, op, l, mult(P), at);
  }
  return l;
}

static ch_node *comparison(parser *P) {
  ch_node *l = additive(P);
  while (l) {
    int op;
    const ch_token *at = P->i < P->n ? &P->t[P->i] : NULL;
    if (is_ident2(P, "not", "in")) op = OP_NOTIN, P->i += 2;
    else if (is_ident(P, "in")) op = OP_IN, P->i++;
    else if (is(P, TK_CMP)) {
      const char *s = P->t[P->i++].s;
      op = !strcmp(s, "==") ? OP_EQ : !strcmp(s, "!=") ? OP_NE
           : !strcmp(s, "<") ? OP_LT : !strcmp(s, ">") ? OP_GT
           : !strcmp(s, "<=") ? OP_LE : OP_GE;
    } else break;
    l = binary(P, op, l, additive(P), at);
  }
  return l;
}

static ch_node *negation(parser *P) {
  ch_node *r = NULL;
  while (is_ident(P, "not")) {
    const ch_token *at = &P->t[P->i++];
    ch_node *arg;
    if (enter(P)) return NULL;
    arg = negation(P);
    P->depth--;
    if (arg == NULL || (r = mk(P, N_UNARY, at)) == NULL) return NULL;
    r->op = OP_NOT, r->a = arg;
  }
  return r ? r : comparison(P);
}

static ch_node *and_expr(parser *P) {
  ch_node *l = negation(P);
  while (l && is_ident(P, "and")) {
    const ch_token *at = &P->t[P->i++];
    l = binary(P, OP_AND, l, negation(P), at);
  }
  return l;
}

static ch_node *or_expr(parser *P) {
  ch_node *l = and_expr(P);
  while (l && is_ident(P, "or")) {
    const ch_token *at = &P->t[P->i++];
    l = binary(P, OP_OR, l, and_expr(P), at);
  }
  return l;
}

static ch_node *if_expr(parser *P) {
  ch_node *a = or_expr(P), *test, *n;
  if (a == NULL || !is_ident(P, "if")) return a;
  P->i++;
  if ((test = or_expr(P)) == NULL) return NULL;
  if (is_ident(P, "else")) {
    ch_node *f;
    P->i++;
    if (enter(P)) return NULL;
    f = if_expr(P);
    P->depth--;
    if (f == NULL || (n = mk(P, N_TERNARY, NULL)) == NULL) return NULL;
    n->a = test, n->b = a, n->c = f;
  } else {
    if ((n = mk(P, N_SELECT, NULL)) == NULL) return NULL;
    n->a = a, n->b = test;
  }
  n->line = a->line, n->col = a->col;
  return n;
}

static ch_node *expr(parser *P) {
  ch_node *n;
  if (enter(P)) return NULL;
  n = if_expr(P);
  P->depth--;
  return n;
}

static ch_node *unary_sign(parser *P) {
  if (P->i < P->n && (P->t[P->i].type == TK_UNARY || P->t[P->i].type == TK_ADD) &&
      (P->t[P->i].s[0] == '-' || P->t[P->i].s[0] == '+')) {
    const ch_token *at = &P->t[P->i++];
    ch_node *arg, *u;
    if (enter(P)) return NULL;
    arg = unary_sign(P);
    P->depth--;
    if (arg == NULL || (u = mk(P, N_UNARY, at)) == NULL) return NULL;
    u->op = at->s[0] == '-' ? OP_NEG : OP_POS;
    u->a = arg;
    return u;
  }
  {
    ch_node *m = member(P, primary(P));
    if (m && is(P, TK_LPAREN)) m = call(P, m);
    return m;
  }
}

static ch_node *primary(parser *P) {
  const ch_token *t;
  ch_node *n;
  if (P->i >= P->n) { perr(P, "unexpected end of template"); return NULL; }
  t = &P->t[P->i++];
  switch (t->type) {
    case TK_NUM:
      if (strchr(t->s, '.')) {
        if ((n = mk(P, N_FLOAT, t)) == NULL) return NULL;
        n->f = strtod(t->s, NULL);
      } else {
        double d = strtod(t->s, NULL);
        if ((n = mk(P, N_INT, t)) == NULL) return NULL;
        if (d > 9007199254740992.0 || d < -9007199254740992.0) {
          P->i--;
          perr(P, "integer literal out of range");
          return NULL;
        }
        n->i = (int64_t)d;
      }
      return n;
    case TK_STR: {
      coh__buf b = {0};
      coh__buf_add(&b, t->s, t->n);
      while (is(P, TK_STR)) {
        coh__buf_add(&b, P->t[P->i].s, P->t[P->i].n);
        P->i++;
      }
      if ((n = mk(P, N_STR, t)) == NULL || b.oom) {
        coh__buf_free(&b);
        if (n) coh__err(P->err, COH_ENOMEM, "out of memory");
        return NULL;
      }
      n->s = coh__ch_strdup(P->ar, b.p ? b.p : "", b.n);
      n->sn = b.n;
      coh__buf_free(&b);
      if (n->s == NULL) { coh__err(P->err, COH_ENOMEM, "out of memory"); return NULL; }
      return n;
    }
    case TK_IDENT:
      if ((n = mk(P, N_IDENT, t)) == NULL) return NULL;
      n->s = t->s, n->sn = t->n;
      return n;
    case TK_LPAREN:
      if (enter(P)) return NULL;
      n = sequence(P, 0);
      P->depth--;
      if (n == NULL || expect(P, TK_RPAREN, "expected ')'")) return NULL;
      return n;
    case TK_LBRACKET:
      if ((n = mk(P, N_ARRAY, t)) == NULL || enter(P)) return NULL;
      while (!is(P, TK_RBRACKET)) {
        ch_node *x;
        if (P->i >= P->n) { perr(P, "expected ']'"); return NULL; }
        if ((x = expr(P)) == NULL || list_push(P, &n->l1, x)) return NULL;
        if (is(P, TK_COMMA)) P->i++;
      }
      P->depth--;
      P->i++;
      return n;
    case TK_LBRACE:
      if ((n = mk(P, N_OBJECT, t)) == NULL || enter(P)) return NULL;
      while (!is(P, TK_RBRACE)) {
        ch_node *k, *v;
        if (P->i >= P->n) { perr(P, "expected '}'"); return NULL; }
        if ((k = expr(P)) == NULL) return NULL;
        if (expect(P, TK_COLON, "expected ':' in an object literal")) return NULL;
        if ((v = expr(P)) == NULL) return NULL;
        if (list_push(P, &n->l1, k) || list_push(P, &n->l2, v)) return NULL;
        if (is(P, TK_COMMA)) P->i++;
      }
      P->depth--;
      P->i++;
      return n;
    default:
      P->i--;
      perr(P, "unexpected token");
      return NULL;
  }
}

/* Marks a macro that reads kwargs or varargs (it then accepts extra
 * keyword or positional arguments), as @huggingface/jinja does. */
static void scan_special(const ch_node *n, int *flag, int depth) {
  size_t k;
  if (n == NULL || depth > 200) return;
  if (n->kind == N_IDENT) {
    if (!strcmp(n->s, "kwargs")) *flag |= 1;
    if (!strcmp(n->s, "varargs")) *flag |= 2;
    return;
  }
  if (n->kind == N_MEMBER && !n->flag) {
    scan_special(n->a, flag, depth + 1);
    return;
  }
  scan_special(n->a, flag, depth + 1);
  scan_special(n->b, flag, depth + 1);
  scan_special(n->c, flag, depth + 1);
  for (k = 0; k < n->l1.n; k++) scan_special(n->l1.v[k], flag, depth + 1);
  for (k = 0; k < n->l2.n; k++) scan_special(n->l2.v[k], flag, depth + 1);
  for (k = 0; k < n->l3.n; k++) scan_special(n->l3.v[k], flag, depth + 1);
}

static ch_node *statement(parser *P) {
  const ch_token *open = &P->t[P->i], *kw;
  ch_node *n = NULL;
  P->i++;
  if (!is(P, TK_IDENT)) { perr(P, "expected a statement name"); return NULL; }
  kw = &P->t[P->i];
  if (!strcmp(kw->s, "set")) {
    P->i++;
    if ((n = mk(P, N_SET, open)) == NULL || (n->a = sequence(P, 0)) == NULL) return NULL;
    if (is(P, TK_EQUALS)) {
      P->i++;
      if ((n->b = sequence(P, 0)) == NULL) return NULL;
    } else {
      if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
      if (block(P, &n->l1, "endset", NULL, NULL)) return NULL;
      P->i += 2;
    }
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
  } else if (!strcmp(kw->s, "if")) {
    ch_node *cur;
    P->i++;
    if ((n = mk(P, N_IF, open)) == NULL || (n->a = expr(P)) == NULL) return NULL;
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
    cur = n;
    for (;;) {
      if (block(P, &cur->l1, "elif", "else", "endif")) return NULL;
      if (is_stmt(P, "elif", NULL, NULL)) {
        ch_node *e = mk(P, N_IF, &P->t[P->i]);
        P->i += 2;
        if (e == NULL || (e->a = expr(P)) == NULL) return NULL;
        if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
        if (list_push(P, &cur->l2, e)) return NULL;
        cur = e;
        continue;
      }
      if (is_stmt(P, "else", NULL, NULL)) {
        P->i += 2;
        if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
        if (block(P, &cur->l2, "endif", NULL, NULL)) return NULL;
      }
      break;
    }
    P->i++;
    if (expect_ident(P, "endif", "expected endif") ||
        expect(P, TK_CLOSE_STMT, "expected '%}'"))
      return NULL;
  } else if (!strcmp(kw->s, "for")) {
    P->i++;
    if ((n = mk(P, N_FOR, open)) == NULL || (n->a = sequence(P, 1)) == NULL) return NULL;
    if (n->a->kind != N_IDENT && n->a->kind != N_TUPLE) {
      perr(P, "expected an identifier or tuple for the loop variable");
      return NULL;
    }
    if (expect_ident(P, "in", "expected 'in' after the loop variable")) return NULL;
    if ((n->b = expr(P)) == NULL) return NULL;
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
    if (block(P, &n->l1, "endfor", "else", NULL)) return NULL;
    if (is_stmt(P, "else", NULL, NULL)) {
      P->i += 2;
      if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
      if (block(P, &n->l2, "endfor", NULL, NULL)) return NULL;
    }
    P->i++;
    if (expect_ident(P, "endfor", "expected endfor") ||
        expect(P, TK_CLOSE_STMT, "expected '%}'"))
      return NULL;
  } else if (!strcmp(kw->s, "macro")) {
    ch_node *name;
    size_t k;
    int flag = 0;
    P->i++;
    if ((n = mk(P, N_MACRO, open)) == NULL || (name = primary(P)) == NULL) return NULL;
    if (name->kind != N_IDENT) { P->i--; perr(P, "expected a macro name"); return NULL; }
    n->s = name->s, n->sn = name->sn;
    if (args(P, &n->l2, 1)) return NULL;
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
    if (block(P, &n->l1, "endmacro", NULL, NULL)) return NULL;
    P->i += 2;
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
    for (k = 0; k < n->l1.n; k++) scan_special(n->l1.v[k], &flag, 0);
    for (k = 0; k < n->l2.n; k++)
      if (!strcmp(n->l2.v[k]->s, "kwargs")) flag &= ~1;
      else if (!strcmp(n->l2.v[k]->s, "varargs")) flag &= ~2;
    n->flag = flag;
  } else if (!strcmp(kw->s, "call")) {
    ch_node *callee;
    size_t k;
    int flag = 0;
    P->i++;
    if ((n = mk(P, N_CALLBLOCK, open)) == NULL) return NULL;
    if (is(P, TK_LPAREN) && args(P, &n->l2, 1)) return NULL;
    if ((callee = primary(P)) == NULL) return NULL;
    if (callee->kind != N_IDENT) { perr(P, "expected a macro name after call"); return NULL; }
    n->a = callee;
    if (args(P, &n->l3, 0)) return NULL;
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
    if (block(P, &n->l1, "endcall", NULL, NULL)) return NULL;
    P->i += 2;
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
    for (k = 0; k < n->l1.n; k++) scan_special(n->l1.v[k], &flag, 0);
    n->flag = flag;
  } else if (!strcmp(kw->s, "break") || !strcmp(kw->s, "continue")) {
    P->i++;
    if ((n = mk(P, kw->s[0] == 'b' ? N_BREAK : N_CONTINUE, open)) == NULL) return NULL;
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
  } else if (!strcmp(kw->s, "filter")) {
    ch_node *f;
    P->i++;
    if ((n = mk(P, N_FILTERBLOCK, open)) == NULL || (f = primary(P)) == NULL) return NULL;
    if (f->kind != N_IDENT) { P->i--; perr(P, "expected a filter name"); return NULL; }
    if (!coh__ch_filter_known(f->s)) { P->i--; perr_name(P, "unknown filter", f->s); return NULL; }
    if (is(P, TK_LPAREN) && (f = call(P, f)) == NULL) return NULL;
    n->b = f;
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
    if (block(P, &n->l1, "endfilter", NULL, NULL)) return NULL;
    P->i += 2;
    if (expect(P, TK_CLOSE_STMT, "expected '%}'")) return NULL;
  } else {
    perr(P, "unknown statement");
    return NULL;
  }
  return n;
}

static int any(parser *P, ch_list *body) {
  const ch_token *t = &P->t[P->i];
  ch_node *n = NULL;
  if (enter(P)) return -1;
  switch (t->type) {
    case TK_COMMENT:
      P->i++;
      P->depth--;
      return 0;
    case TK_TEXT:
    case TK_RAW:
      if ((n = mk(P, N_TEXT, t)) == NULL) return -1;
      n->s = t->s, n->sn = t->n;
      P->i++;
      break;
    case TK_OPEN_STMT:
      if ((n = statement(P)) == NULL) return -1;
      break;
    case TK_OPEN_EXPR:
      P->i++;
      if ((n = expr(P)) == NULL) return -1;
      if (expect(P, TK_CLOSE_EXPR, "expected '}}'")) return -1;
      break;
    default:
      return perr(P, "unexpected token");
  }
  P->depth--;
  return list_push(P, body, n);
}

int coh__ch_parse(ch_arena *ar, const char *name, const ch_token *toks,
                  size_t n, ch_list *body, coh_err *err) {
  parser P;
  memset(&P, 0, sizeof P);
  P.ar = ar, P.name = name, P.t = toks, P.n = n, P.err = err;
  while (P.i < P.n)
    if (any(&P, body)) {
      if (err->code == 0) err->code = COH_EFORMAT;
      return err->code;
    }
  return 0;
}
