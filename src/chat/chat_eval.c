/* chat_eval.c — evaluation: statements write into an output buffer,
 * expressions compute values.  Scopes are those of @huggingface/jinja: a
 * for loop has its own (its body's sets stay in it), a macro call gets one
 * whose parent is the caller's, if blocks share their surroundings.  Every
 * evaluation counts a step; steps, output bytes, call depth and memory are
 * bounded (chat_int.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat_int.h"

int coh__ch_fail(ch_render *r, int code, const char *fmt, ...) {
  char what[400];
  va_list ap;
  if (r->failed) return -1;
  r->failed = 1;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (code == COH_ENOMEM && r->ar.over) {
    code = COH_ERANGE;
    snprintf(what, sizeof what, "render memory over %zu MiB (a template's memory is bounded)",
             COH__CHAT_MEM_MAX >> 20);
  }
  if (code == COH_ERAISED)
    coh__err(r->err, code, "%s", what);
  else if (r->at)
    coh__err(r->err, code, "%s:%u:%u: %s", r->t->name, (unsigned)r->at->line,
             (unsigned)r->at->col, what);
  else
    coh__err(r->err, code, "%s: %s", r->t->name, what);
  return -1;
}

int coh__ch_step(ch_render *r, uint64_t n) {
  r->steps += n;
  if (r->steps > COH__CHAT_STEPS_MAX)
    return coh__ch_fail(r, COH_ERANGE,
                        "over %llu evaluation steps (a template loop is bounded)",
                        (unsigned long long)COH__CHAT_STEPS_MAX);
  if (r->ar.oom) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
  return 0;
}

int coh__ch_output_check(ch_render *r, const coh__buf *b) {
  if (b->oom) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
  if (b->n > COH__CHAT_OUT_MAX)
    return coh__ch_fail(r, COH_ERANGE, "rendered text over %zu bytes",
                        COH__CHAT_OUT_MAX);
  return 0;
}

static ch_env *env_new(ch_render *r, ch_env *parent) {
  ch_env *e = coh__ch_alloc(&r->ar, sizeof *e);
  if (e == NULL) {
    coh__ch_fail(r, COH_ENOMEM, "out of memory");
    return NULL;
  }
  e->parent = parent;
  return e;
}

/* A variable's value; lookups are linear in the scopes' sizes, which count
 * as steps (a variables object of many keys stays bounded in time). */
static ch_val lookup(ch_render *r, ch_env *e, const char *name, size_t n) {
  size_t scanned = 0;
  ch_val out = coh__ch_undef();
  for (; e; e = e->parent) {
    ch_val *v = coh__ch_obj_get(&e->vars, name, n);
    scanned += e->vars.n;
    if (v) {
      out = *v;
      break;
    }
  }
  if (scanned > 64) coh__ch_step(r, scanned / 64);
  return out;
}

static int setvar(ch_render *r, ch_env *e, const char *name, size_t n, ch_val v) {
  return coh__ch_obj_set(r, &e->vars, name, n, v);
}

static int block(ch_render *r, ch_env *env, const ch_list *body, coh__buf *out);

static ch_val str_of_buf(ch_render *r, coh__buf *b, int *bad) {
  char *p = coh__ch_strdup(&r->ar, b->p ? b->p : "", b->n);
  if (p == NULL) {
    *bad = coh__ch_fail(r, COH_ENOMEM, "out of memory");
    return coh__ch_undef();
  }
  return coh__ch_str(p, b->n);
}

/* ---- calls ------------------------------------------------------------------ */

/* Binds a macro's (or call block's) parameters in scope, as
 * @huggingface/jinja's bindMacroArguments. */
static int bind_args(ch_render *r, const ch_node *m, const ch_list *params,
                     ch_val *args, size_t nargs, ch_env *scope) {
  ch_obj *kw = NULL;
  size_t npos = nargs, i;
  const ch_node *pending[COH__CHAT_DEPTH_MAX * 4];
  size_t np = 0;
  if (npos && args[npos - 1].t == V_KWARGS) {
    ch_obj *src = args[--npos].u.o;
    if ((kw = coh__ch_obj_new(r)) == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
    for (i = 0; i < src->n; i++)
      if (coh__ch_obj_set(r, kw, src->k[i], src->kn[i], src->v[i])) return -1;
  }
  if (params->n > sizeof pending / sizeof pending[0])
    return coh__ch_fail(r, COH_ERANGE, "too many parameters");
  for (i = 0; i < params->n; i++) {
    const ch_node *p = params->v[i];
    ch_val v = coh__ch_undef();
    int have = 0;
    if (i < npos) v = args[i], have = 1;
    if (!have && kw) {
      ch_val *x = coh__ch_obj_get(kw, p->s, p->sn);
      if (x) {
        size_t j;
        v = *x, have = 1;
        for (j = 0; j < kw->n; j++)
          if (kw->kn[j] == p->sn && !memcmp(kw->k[j], p->s, p->sn)) {
            memmove(kw->k + j, kw->k + j + 1, (kw->n - j - 1) * sizeof *kw->k);
            memmove(kw->kn + j, kw->kn + j + 1, (kw->n - j - 1) * sizeof *kw->kn);
            memmove(kw->v + j, kw->v + j + 1, (kw->n - j - 1) * sizeof *kw->v);
            kw->n--;
            break;
          }
      }
    }
    if (!have && p->kind == N_KWARG) pending[np++] = p;
    if (setvar(r, scope, p->s, p->sn, v)) return -1;
  }
  if (m->flag & 1) {
    ch_val o;
    o.t = V_OBJ;
    o.u.o = kw ? kw : coh__ch_obj_new(r);
    if (o.u.o == NULL || setvar(r, scope, "kwargs", 6, o)) return -1;
  } else if (kw && kw->n > 0) {
    return coh__ch_fail(r, COH_EFORMAT, "macro %s takes no keyword argument '%.*s'",
                        m->kind == N_MACRO ? m->s : "caller", (int)kw->kn[0], kw->k[0]);
  }
  if (m->flag & 2) {
    ch_val a;
    a.t = V_ARR;
    a.u.a = coh__ch_arr_new(r, 0);
    if (a.u.a == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
    for (i = params->n; i < npos; i++)
      if (coh__ch_arr_push(r, a.u.a, args[i])) return -1;
    if (setvar(r, scope, "varargs", 7, a)) return -1;
  } else if (npos > params->n) {
    return coh__ch_fail(r, COH_EFORMAT, "macro %s takes not more than %zu argument(s)",
                        m->kind == N_MACRO ? m->s : "caller", params->n);
  }
  for (i = 0; i < np; i++) {
    ch_val v;
    if (coh__ch_eval(r, scope, pending[i]->a, &v)) return -1;
    if (setvar(r, scope, pending[i]->s, pending[i]->sn, v)) return -1;
  }
  return 0;
}

int coh__ch_call(ch_render *r, ch_env *env, ch_val fn, ch_val *args,
                 size_t nargs, ch_val *out) {
  if (fn.t != V_FUNC)
    return coh__ch_fail(r, COH_EFORMAT, "cannot call a %s: it is not a function",
                        coh__ch_type_name(fn.t));
  if (fn.u.fn->kind == FN_MACRO || fn.u.fn->kind == FN_CALLER) {
    const ch_node *m = fn.u.fn->node;
    ch_env *scope;
    coh__buf b = {0};
    int rc, bad = 0;
    if (r->depth >= COH__CHAT_DEPTH_MAX)
      return coh__ch_fail(r, COH_ERANGE, "macro calls nested deeper than %d",
                          COH__CHAT_DEPTH_MAX);
    scope = env_new(r, fn.u.fn->kind == FN_CALLER ? fn.u.fn->env : env);
    if (scope == NULL) return -1;
    if (bind_args(r, m, &m->l2, args, nargs, scope)) return -1;
    r->depth++;
    rc = block(r, scope, &m->l1, &b);
    r->depth--;
    if (rc > 0) {
      coh__buf_free(&b);
      return coh__ch_fail(r, COH_EFORMAT, "break or continue outside a loop");
    }
    if (rc == 0) *out = str_of_buf(r, &b, &bad);
    coh__buf_free(&b);
    return rc < 0 || bad ? -1 : 0;
  }
  return coh__ch_call_builtin(r, fn.u.fn, args, nargs, out);
}

/* Evaluates a call's arguments: positional (with * spread) first, then
 * keyword ones (with ** spread) collected into a trailing kwargs value. */
static int eval_args(ch_render *r, ch_env *env, const ch_list *l, ch_val **out,
                     size_t *n, ch_obj **kwout) {
  size_t i, cap = l->n + 1;
  ch_val *v;
  ch_obj *kw = NULL;
  size_t k = 0;
  for (i = 0; i < l->n; i++)
    if (l->v[i]->kind == N_SPREAD) {
      ch_val s;
      if (coh__ch_eval(r, env, l->v[i]->a, &s)) return -1;
      if (s.t != V_ARR && s.t != V_TUPLE)
        return coh__ch_fail(r, COH_EFORMAT, "cannot unpack a %s", coh__ch_type_name(s.t));
      cap += s.u.a->n;
    }
  v = coh__ch_alloc(&r->ar, cap * sizeof *v);
  if (v == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
  for (i = 0; i < l->n; i++) {
    const ch_node *a = l->v[i];
    if (a->kind == N_KWARG || a->kind == N_KWSPREAD) continue;
    if (a->kind == N_SPREAD) {
      ch_val s;
      size_t j;
      if (coh__ch_eval(r, env, a->a, &s)) return -1;
      if (s.t != V_ARR && s.t != V_TUPLE)
        return coh__ch_fail(r, COH_EFORMAT, "cannot unpack a %s", coh__ch_type_name(s.t));
      for (j = 0; j < s.u.a->n && k < cap; j++) v[k++] = s.u.a->v[j];
      continue;
    }
    if (coh__ch_eval(r, env, a, &v[k])) return -1;
    k++;
  }
  for (i = 0; i < l->n; i++) {
    const ch_node *a = l->v[i];
    if (a->kind != N_KWARG && a->kind != N_KWSPREAD) continue;
    if (kw == NULL && (kw = coh__ch_obj_new(r)) == NULL)
      return coh__ch_fail(r, COH_ENOMEM, "out of memory");
    if (a->kind == N_KWARG) {
      ch_val x;
      if (coh__ch_obj_get(kw, a->s, a->sn))
        return coh__ch_fail(r, COH_EFORMAT, "multiple values for keyword argument '%s'", a->s);
      if (coh__ch_eval(r, env, a->a, &x) || coh__ch_obj_set(r, kw, a->s, a->sn, x)) return -1;
    } else {
      ch_val s;
      size_t j;
      if (coh__ch_eval(r, env, a->a, &s)) return -1;
      if (s.t != V_OBJ && s.t != V_KWARGS)
        return coh__ch_fail(r, COH_EFORMAT, "argument after ** must be a mapping, not a %s",
                            coh__ch_type_name(s.t));
      for (j = 0; j < s.u.o->n; j++) {
        if (coh__ch_obj_get(kw, s.u.o->k[j], s.u.o->kn[j]))
          return coh__ch_fail(r, COH_EFORMAT, "multiple values for keyword argument '%.*s'",
                              (int)s.u.o->kn[j], s.u.o->k[j]);
        if (coh__ch_obj_set(r, kw, s.u.o->k[j], s.u.o->kn[j], s.u.o->v[j])) return -1;
      }
    }
  }
  *out = v;
  *n = k;
  *kwout = kw;
  return 0;
}

int coh__ch_eval_args(ch_render *r, ch_env *env, const ch_list *l,
                      ch_val **out, size_t *n, ch_obj **kw) {
  return eval_args(r, env, l, out, n, kw);
}

/* ---- expressions ------------------------------------------------------------ */
static int is_num(ch_val v) { return v.t == V_INT || v.t == V_FLOAT; }
static double num(ch_val v) {
  return v.t == V_INT ? (double)v.u.i : v.t == V_FLOAT ? v.u.f : v.t == V_BOOL ? v.u.b : 0;
}
static int mknum(ch_render *r, double d, int isfloat, ch_val *out) {
  if (isfloat) {
    out->t = V_FLOAT;
    out->u.f = d;
    return 0;
  }
  if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0))
    return coh__ch_fail(r, COH_ERANGE, "integer result out of range");
  *out = coh__ch_int((int64_t)d);
  return 0;
}

static int binary(ch_render *r, ch_env *env, const ch_node *n, ch_val *out) {
  ch_val l, rv;
  int op = n->op;
  if (coh__ch_eval(r, env, n->a, &l)) return -1;
  if (op == OP_AND) {
    if (!coh__ch_truthy(l)) { *out = l; return 0; }
    return coh__ch_eval(r, env, n->b, out);
  }
  if (op == OP_OR) {
    if (coh__ch_truthy(l)) { *out = l; return 0; }
    return coh__ch_eval(r, env, n->b, out);
  }
  if (coh__ch_eval(r, env, n->b, &rv)) return -1;
  r->at = n;
  if (op == OP_EQ || op == OP_NE) {
    int eq = coh__ch_loose_eq(l, rv);
    *out = coh__ch_bool(op == OP_EQ ? eq : !eq);
    return 0;
  }
  if (l.t == V_UNDEF || rv.t == V_UNDEF) {
    if (rv.t == V_UNDEF && (op == OP_IN || op == OP_NOTIN)) {
      *out = coh__ch_bool(op == OP_NOTIN);
      return 0;
    }
    return coh__ch_fail(r, COH_EFORMAT, "cannot apply an operator to an undefined value");
  }
  if (l.t == V_NULL || rv.t == V_NULL)
    return coh__ch_fail(r, COH_EFORMAT, "cannot apply an operator to none");
  if (op == OP_CAT) {
    coh__buf b = {0};
    int bad = 0;
    if (coh__ch_jsstr(r, &b, l) || coh__ch_jsstr(r, &b, rv) ||
        coh__ch_output_check(r, &b)) { coh__buf_free(&b); return -1; }
    *out = str_of_buf(r, &b, &bad);
    coh__buf_free(&b);
    return bad ? -1 : 0;
  }
  if (op == OP_POW && (is_num(l) || l.t == V_BOOL) && (is_num(rv) || rv.t == V_BOOL)) {
    double a = num(l), b = num(rv), res;
    if (a == 0 && b < 0) return coh__ch_fail(r, COH_EFORMAT, "0.0 cannot be raised to a negative power");
    res = pow(a, b);
    if (!isfinite(res)) return coh__ch_fail(r, COH_EFORMAT, "exponentiation result is not finite");
    return mknum(r, res, l.t == V_FLOAT || rv.t == V_FLOAT || b < 0, out);
  }
  if (is_num(l) && is_num(rv)) {
    double a = num(l), b = num(rv);
    int fl = l.t == V_FLOAT || rv.t == V_FLOAT;
    switch (op) {
      case OP_ADD: return mknum(r, a + b, fl, out);
      case OP_SUB: return mknum(r, a - b, fl, out);
      case OP_MUL: return mknum(r, a * b, fl, out);
      case OP_DIV: return mknum(r, a / b, 1, out);
      case OP_FLOORDIV:
        if (!fl && b == 0) return coh__ch_fail(r, COH_EFORMAT, "integer division by zero");
        return mknum(r, floor(a / b), fl, out);
      case OP_MOD:
        if (!fl && b == 0) return coh__ch_fail(r, COH_EFORMAT, "integer modulo by zero");
        return mknum(r, fmod(a, b), fl, out);
      case OP_LT: *out = coh__ch_bool(a < b); return 0;
      case OP_GT: *out = coh__ch_bool(a > b); return 0;
      case OP_LE: *out = coh__ch_bool(a <= b); return 0;
      case OP_GE: *out = coh__ch_bool(a >= b); return 0;
      default: break;
    }
  } else if ((l.t == V_ARR || l.t == V_TUPLE) && (rv.t == V_ARR || rv.t == V_TUPLE)) {
    if (op == OP_ADD) {
      size_t i;
      ch_arr *a = coh__ch_arr_new(r, l.u.a->n + rv.u.a->n);
      if (a == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      if (coh__ch_step(r, l.u.a->n + rv.u.a->n)) return -1;
      for (i = 0; i < l.u.a->n; i++) a->v[a->n++] = l.u.a->v[i];
      for (i = 0; i < rv.u.a->n; i++) a->v[a->n++] = rv.u.a->v[i];
      out->t = V_ARR;
      out->u.a = a;
      return 0;
    }
  } else if (rv.t == V_ARR || rv.t == V_TUPLE) {
    if (op == OP_IN || op == OP_NOTIN) {
      size_t i;
      int found = 0;
      if (coh__ch_step(r, rv.u.a->n)) return -1;
      for (i = 0; i < rv.u.a->n && !found; i++) found = coh__ch_strict_eq(rv.u.a->v[i], l);
      *out = coh__ch_bool(op == OP_IN ? found : !found);
      return 0;
    }
  }
  if ((l.t == V_STR || rv.t == V_STR) && op == OP_ADD) {
    coh__buf b = {0};
    int bad = 0;
    if (coh__ch_jsstr(r, &b, l) || coh__ch_jsstr(r, &b, rv) ||
        coh__ch_output_check(r, &b)) { coh__buf_free(&b); return -1; }
    *out = str_of_buf(r, &b, &bad);
    coh__buf_free(&b);
    return bad ? -1 : 0;
  }
  if (l.t == V_STR && rv.t == V_STR && (op == OP_IN || op == OP_NOTIN)) {
    int found = l.u.s.n == 0 || (rv.u.s.n >= l.u.s.n &&
                                 memmem(rv.u.s.p, rv.u.s.n, l.u.s.p, l.u.s.n) != NULL);
    *out = coh__ch_bool(op == OP_IN ? found : !found);
    return 0;
  }
  if (l.t == V_STR && (rv.t == V_OBJ || rv.t == V_KWARGS) && (op == OP_IN || op == OP_NOTIN)) {
    int found;
    if (coh__ch_step(r, rv.u.o->n / 64)) return -1;
    found = coh__ch_obj_get(rv.u.o, l.u.s.p, l.u.s.n) != NULL;
    *out = coh__ch_bool(op == OP_IN ? found : !found);
    return 0;
  }
  return coh__ch_fail(r, COH_EFORMAT, "unsupported operator between a %s and a %s",
                      coh__ch_type_name(l.t), coh__ch_type_name(rv.t));
}

/* Python-style slice over n items (@huggingface/jinja's slice()). */
static int slice_bounds(ch_render *r, ch_env *env, const ch_node *s, int64_t n,
                        int64_t *start, int64_t *stop, int64_t *step) {
  ch_val a = coh__ch_undef(), b = coh__ch_undef(), c = coh__ch_undef();
  if ((s->a && coh__ch_eval(r, env, s->a, &a)) || (s->b && coh__ch_eval(r, env, s->b, &b)) ||
      (s->c && coh__ch_eval(r, env, s->c, &c)))
    return -1;
  r->at = s;
  if ((a.t != V_INT && a.t != V_UNDEF) || (b.t != V_INT && b.t != V_UNDEF) ||
      (c.t != V_INT && c.t != V_UNDEF))
    return coh__ch_fail(r, COH_EFORMAT, "slice bounds must be integers");
  *step = c.t == V_INT ? c.u.i : 1;
  if (*step == 0) return coh__ch_fail(r, COH_EFORMAT, "slice step cannot be zero");
  if (*step > 0) {
    int64_t x = a.t == V_INT ? a.u.i : 0, y = b.t == V_INT ? b.u.i : n;
    *start = x < 0 ? (n + x > 0 ? n + x : 0) : (x < n ? x : n);
    *stop = y < 0 ? (n + y > 0 ? n + y : 0) : (y < n ? y : n);
  } else {
    int64_t x = a.t == V_INT ? a.u.i : n - 1, y = b.t == V_INT ? b.u.i : -1;
    *start = x < 0 ? (n + x > -1 ? n + x : -1) : (x < n - 1 ? x : n - 1);
    *stop = y < -1 ? (n + y > -1 ? n + y : -1) : (y < n - 1 ? y : n - 1);
  }
  return 0;
}

static int member(ch_render *r, ch_env *env, const ch_node *n, ch_val *out) {
  ch_val o, p;
  if (coh__ch_eval(r, env, n->a, &o)) return -1;
  r->at = n;
  if (n->flag && n->b->kind == N_SLICE) {
    int64_t start, stop, step, i;
    if (o.t != V_ARR && o.t != V_TUPLE && o.t != V_STR)
      return coh__ch_fail(r, COH_EFORMAT, "only a list or a string can be sliced, not a %s",
                          coh__ch_type_name(o.t));
    if (o.t == V_STR) {
      /* by code points */
      size_t *starts, k = 0, pos = 0;
      int64_t cnt = 0;
      coh__buf b = {0};
      int bad = 0;
      for (pos = 0; pos < o.u.s.n; pos++)
        if (((unsigned char)o.u.s.p[pos] & 0xC0) != 0x80) cnt++;
      starts = coh__ch_alloc(&r->ar, (size_t)(cnt + 1) * sizeof *starts);
      if (starts == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      for (pos = 0; pos < o.u.s.n; pos++)
        if (((unsigned char)o.u.s.p[pos] & 0xC0) != 0x80) starts[k++] = pos;
      starts[k] = o.u.s.n;
      if (slice_bounds(r, env, n->b, cnt, &start, &stop, &step)) return -1;
      if (coh__ch_step(r, (uint64_t)cnt)) return -1;
      for (i = start; step > 0 ? i < stop : i > stop; i += step)
        coh__buf_add(&b, o.u.s.p + starts[i], starts[i + 1] - starts[i]);
      *out = str_of_buf(r, &b, &bad);
      coh__buf_free(&b);
      return bad ? -1 : 0;
    } else {
      ch_arr *a;
      if (slice_bounds(r, env, n->b, (int64_t)o.u.a->n, &start, &stop, &step)) return -1;
      if ((a = coh__ch_arr_new(r, 0)) == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      if (coh__ch_step(r, o.u.a->n)) return -1;
      for (i = start; step > 0 ? i < stop : i > stop; i += step)
        if (coh__ch_arr_push(r, a, o.u.a->v[i])) return -1;
      out->t = V_ARR;
      out->u.a = a;
      return 0;
    }
  }
  if (n->flag) {
    if (coh__ch_eval(r, env, n->b, &p)) return -1;
    r->at = n;
  } else if (n->b->kind == N_INT) {
    p = coh__ch_int(n->b->i);
  } else {
    p = coh__ch_str(n->b->s, n->b->sn);
  }
  *out = coh__ch_undef();
  if (o.t == V_OBJ || o.t == V_KWARGS || o.t == V_NS) {
    ch_val *x;
    if (p.t != V_STR)
      return coh__ch_fail(r, COH_EFORMAT, "cannot look up a %s key in a mapping",
                          coh__ch_type_name(p.t));
    if (o.u.o->n > 64 && coh__ch_step(r, o.u.o->n / 64)) return -1;
    x = coh__ch_obj_get(o.u.o, p.u.s.p, p.u.s.n);
    if (x) *out = *x;
    else if (o.t != V_NS) return coh__ch_builtin(r, o, p.u.s.p, p.u.s.n, out);
    return 0;
  }
  if (o.t == V_ARR || o.t == V_TUPLE || o.t == V_STR) {
    if (p.t == V_INT) {
      int64_t i = p.u.i;
      if (o.t == V_STR) {
        /* JavaScript's String#at: UTF-16 units; a character outside the BMP
         * counts two (its halves are not representable: undefined) */
        int64_t len = (int64_t)coh__ch_utf16_len(o.u.s.p, o.u.s.n), u = 0;
        size_t pos = 0;
        if (i < 0) i += len;
        if (i < 0 || i >= len) return 0;
        while (pos < o.u.s.n) {
          size_t l = coh__utf8_seq((const unsigned char *)o.u.s.p + pos, o.u.s.n - pos);
          if (l == 0) l = 1;
          if (u == i) {
            if (l == 4) return 0;
            *out = coh__ch_str(o.u.s.p + pos, l);
            return 0;
          }
          u += l == 4 ? 2 : 1;
          pos += l;
          if (u > i) return 0;
        }
        return 0;
      }
      if (i < 0) i += (int64_t)o.u.a->n;
      if (i >= 0 && i < (int64_t)o.u.a->n) *out = o.u.a->v[i];
      return 0;
    }
    if (p.t == V_STR) return coh__ch_builtin(r, o, p.u.s.p, p.u.s.n, out);
    return coh__ch_fail(r, COH_EFORMAT, "cannot index a %s with a %s",
                        coh__ch_type_name(o.t), coh__ch_type_name(p.t));
  }
  if (p.t != V_STR)
    return coh__ch_fail(r, COH_EFORMAT, "cannot look up a %s in a %s",
                        coh__ch_type_name(p.t), coh__ch_type_name(o.t));
  return 0;
}

int coh__ch_eval(ch_render *r, ch_env *env, const ch_node *n, ch_val *out) {
  if (coh__ch_step(r, 1)) return -1;
  r->at = n;
  switch (n->kind) {
    case N_INT: *out = coh__ch_int(n->i); return 0;
    case N_FLOAT: out->t = V_FLOAT; out->u.f = n->f; return 0;
    case N_STR: *out = coh__ch_str(n->s, n->sn); return 0;
    case N_IDENT:
      *out = lookup(r, env, n->s, n->sn);
      return r->failed ? -1 : 0;
    case N_ARRAY: case N_TUPLE: {
      size_t i;
      ch_arr *a = coh__ch_arr_new(r, n->l1.n);
      if (a == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      for (i = 0; i < n->l1.n; i++)
        if (coh__ch_eval(r, env, n->l1.v[i], &a->v[i])) return -1;
      a->n = n->l1.n;
      out->t = n->kind == N_ARRAY ? V_ARR : V_TUPLE;
      out->u.a = a;
      return 0;
    }
    case N_OBJECT: {
      size_t i;
      ch_obj *o = coh__ch_obj_new(r);
      if (o == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      for (i = 0; i < n->l1.n; i++) {
        ch_val k, v;
        if (coh__ch_eval(r, env, n->l1.v[i], &k)) return -1;
        if (k.t != V_STR) {
          r->at = n->l1.v[i];
          return coh__ch_fail(r, COH_EFORMAT, "object keys must be strings, not a %s",
                              coh__ch_type_name(k.t));
        }
        if (coh__ch_eval(r, env, n->l2.v[i], &v)) return -1;
        if (o->n > 64 && coh__ch_step(r, o->n / 64)) return -1; /* the lookup */
        if (coh__ch_obj_set(r, o, k.u.s.p, k.u.s.n, v)) return -1;
      }
      out->t = V_OBJ;
      out->u.o = o;
      return 0;
    }
    case N_MEMBER: return member(r, env, n, out);
    case N_CALL: {
      ch_val *args, fn;
      size_t na;
      ch_obj *kw;
      if (eval_args(r, env, &n->l1, &args, &na, &kw)) return -1;
      if (kw && kw->n) {
        args[na].t = V_KWARGS;
        args[na].u.o = kw;
        na++;
      }
      if (coh__ch_eval(r, env, n->a, &fn)) return -1;
      r->at = n;
      return coh__ch_call(r, env, fn, args, na, out);
    }
    case N_UNARY: {
      ch_val a;
      if (coh__ch_eval(r, env, n->a, &a)) return -1;
      r->at = n;
      if (n->op == OP_NOT) {
        *out = coh__ch_bool(!coh__ch_truthy(a));
        return 0;
      }
      if (a.t == V_INT || a.t == V_FLOAT || a.t == V_BOOL) {
        double d = (n->op == OP_NEG ? -1 : 1) * num(a);
        return mknum(r, d, a.t == V_FLOAT, out);
      }
      return coh__ch_fail(r, COH_EFORMAT, "unary %c on a %s", n->op == OP_NEG ? '-' : '+',
                          coh__ch_type_name(a.t));
    }
    case N_BINARY: return binary(r, env, n, out);
    case N_FILTER: {
      ch_val v;
      if (coh__ch_eval(r, env, n->a, &v)) return -1;
      r->at = n;
      return coh__ch_apply_filter(r, env, v, n->b, out);
    }
    case N_TEST: {
      ch_val v;
      int res;
      if (coh__ch_eval(r, env, n->a, &v)) return -1;
      r->at = n;
      if (coh__ch_apply_test(r, n->s, v, coh__ch_undef(), 0, &res)) return -1;
      *out = coh__ch_bool(n->flag ? !res : res);
      return 0;
    }
    case N_SELECT: {
      ch_val t;
      if (coh__ch_eval(r, env, n->b, &t)) return -1;
      if (!coh__ch_truthy(t)) { *out = coh__ch_undef(); return 0; }
      return coh__ch_eval(r, env, n->a, out);
    }
    case N_TERNARY: {
      ch_val c;
      if (coh__ch_eval(r, env, n->a, &c)) return -1;
      return coh__ch_eval(r, env, coh__ch_truthy(c) ? n->b : n->c, out);
    }
    default:
      return coh__ch_fail(r, COH_EFORMAT, "this cannot be used as a value here");
  }
}

/* ---- statements ----------------------------------------------------------- */
static int assign_target(ch_render *r, ch_env *env, const ch_node *target, ch_val v,
                         const char *what) {
  if (target->kind == N_IDENT) return setvar(r, env, target->s, target->sn, v);
  if (target->kind == N_TUPLE) {
    size_t i;
    if (v.t != V_ARR && v.t != V_TUPLE)
      return coh__ch_fail(r, COH_EFORMAT, "cannot unpack a %s%s", coh__ch_type_name(v.t), what);
    if (v.u.a->n != target->l1.n)
      return coh__ch_fail(r, COH_EFORMAT, "too %s items to unpack%s",
                          target->l1.n > v.u.a->n ? "few" : "many", what);
    for (i = 0; i < target->l1.n; i++) {
      if (target->l1.v[i]->kind != N_IDENT)
        return coh__ch_fail(r, COH_EFORMAT, "can only unpack into names");
      if (setvar(r, env, target->l1.v[i]->s, target->l1.v[i]->sn, v.u.a->v[i])) return -1;
    }
    return 0;
  }
  return coh__ch_fail(r, COH_EFORMAT, "invalid assignment target");
}

static int stmt_set(ch_render *r, ch_env *env, const ch_node *n) {
  ch_val v;
  const ch_node *t = n->a;
  if (n->b) {
    if (coh__ch_eval(r, env, n->b, &v)) return -1;
  } else {
    coh__buf b = {0};
    int rc = block(r, env, &n->l1, &b), bad = 0;
    if (rc == 0) v = str_of_buf(r, &b, &bad);
    coh__buf_free(&b);
    if (rc) return rc;
    if (bad) return -1;
  }
  r->at = n;
  if (t->kind == N_MEMBER) {
    ch_val o;
    if (coh__ch_eval(r, env, t->a, &o)) return -1;
    r->at = n;
    if (o.t != V_NS)
      return coh__ch_fail(r, COH_EFORMAT, "cannot assign an attribute of a %s (only of a namespace)",
                          coh__ch_type_name(o.t));
    if (t->flag || t->b->kind != N_IDENT)
      return coh__ch_fail(r, COH_EFORMAT, "cannot assign to a member that is not a name");
    if (o.u.o->n > 64 && coh__ch_step(r, o.u.o->n / 64)) return -1;
    return coh__ch_obj_set(r, o.u.o, t->b->s, t->b->sn, v);
  }
  return assign_target(r, env, t, v, " in set");
}

static int stmt_for(ch_render *r, ch_env *env, const ch_node *n, coh__buf *out) {
  ch_env *scope = env_new(r, env);
  ch_val it;
  const ch_node *test = NULL, *iter = n->b;
  ch_val *items;
  ch_obj *loop;
  size_t ni = 0, i, total;
  int rc, any = 0;
  if (scope == NULL) return -1;
  if (iter->kind == N_SELECT) {
    test = iter->b;
    iter = iter->a;
  }
  if (coh__ch_eval(r, scope, iter, &it)) return -1;
  r->at = n;
  if (it.t == V_OBJ || it.t == V_KWARGS) {
    ch_arr *k = coh__ch_arr_new(r, it.u.o->n);
    if (k == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
    for (i = 0; i < it.u.o->n; i++) k->v[i] = coh__ch_str(it.u.o->k[i], it.u.o->kn[i]);
    k->n = it.u.o->n;
    it.t = V_ARR;
    it.u.a = k;
  }
  if (it.t != V_ARR && it.t != V_TUPLE)
    return coh__ch_fail(r, COH_EFORMAT, "for loop over a %s (expected a list or a mapping)",
                        coh__ch_type_name(it.t));
  total = it.u.a->n;
  /* the list itself when there is no filter (no copy per loop) */
  items = test ? coh__ch_alloc(&r->ar, (total ? total : 1) * sizeof *items) : it.u.a->v;
  if (items == NULL && total) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
  for (i = 0; i < total; i++) {
    ch_val cur = it.u.a->v[i];
    if (coh__ch_step(r, 1)) return -1;
    if (n->a->kind == N_TUPLE && cur.t != V_ARR && cur.t != V_TUPLE)
      return coh__ch_fail(r, COH_EFORMAT, "cannot unpack a %s", coh__ch_type_name(cur.t));
    if (test) {
      ch_env *ls = env_new(r, scope);
      ch_val tv;
      if (ls == NULL || assign_target(r, ls, n->a, cur, "")) return -1;
      if (coh__ch_eval(r, ls, test, &tv)) return -1;
      if (!coh__ch_truthy(tv)) continue;
    } else if (n->a->kind == N_TUPLE && cur.u.a->n != n->a->l1.n) {
      r->at = n;
      return coh__ch_fail(r, COH_EFORMAT, "too %s items to unpack",
                          n->a->l1.n > cur.u.a->n ? "few" : "many");
    }
    if (test) items[ni] = cur;
    ni++;
  }
  /* one loop object per for statement, updated in place each iteration (so
   * that a long loop does not allocate per iteration) */
  loop = coh__ch_obj_new(r);
  if (loop == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
  for (i = 0; i < ni; i++) {
    ch_val lv;
    if (coh__ch_step(r, 1)) return -1;
    if (coh__ch_obj_set(r, loop, "index", 5, coh__ch_int((int64_t)i + 1)) ||
        coh__ch_obj_set(r, loop, "index0", 6, coh__ch_int((int64_t)i)) ||
        coh__ch_obj_set(r, loop, "revindex", 8, coh__ch_int((int64_t)(ni - i))) ||
        coh__ch_obj_set(r, loop, "revindex0", 9, coh__ch_int((int64_t)(ni - i - 1))) ||
        coh__ch_obj_set(r, loop, "first", 5, coh__ch_bool(i == 0)) ||
        coh__ch_obj_set(r, loop, "last", 4, coh__ch_bool(i == ni - 1)) ||
        coh__ch_obj_set(r, loop, "length", 6, coh__ch_int((int64_t)ni)) ||
        coh__ch_obj_set(r, loop, "previtem", 8, i > 0 ? items[i - 1] : coh__ch_undef()) ||
        coh__ch_obj_set(r, loop, "nextitem", 8, i + 1 < ni ? items[i + 1] : coh__ch_undef()))
      return -1;
    lv.t = V_OBJ;
    lv.u.o = loop;
    if (setvar(r, scope, "loop", 4, lv)) return -1;
    r->at = n;
    if (assign_target(r, scope, n->a, items[i], "")) return -1;
    rc = block(r, scope, &n->l1, out);
    if (rc < 0) return -1;
    if (rc == 2) continue;
    if (rc == 1) break;
    any = 1;
  }
  if (!any) {
    rc = block(r, scope, &n->l2, out);
    if (rc) return rc;
  }
  return 0;
}

static int stmt(ch_render *r, ch_env *env, const ch_node *n, coh__buf *out) {
  ch_val v;
  int rc;
  if (coh__ch_step(r, 1)) return -1;
  r->at = n;
  switch (n->kind) {
    case N_TEXT: coh__buf_add(out, n->s, n->sn); return 0;
    case N_COMMENT: return 0;
    case N_IF:
      if (coh__ch_eval(r, env, n->a, &v)) return -1;
      return block(r, env, coh__ch_truthy(v) ? &n->l1 : &n->l2, out);
    case N_FOR: return stmt_for(r, env, n, out);
    case N_SET: return stmt_set(r, env, n);
    case N_MACRO: {
      ch_fn *fn = coh__ch_alloc(&r->ar, sizeof *fn);
      if (fn == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      fn->kind = FN_MACRO;
      fn->node = n;
      fn->name = n->s;
      v.t = V_FUNC;
      v.u.fn = fn;
      return setvar(r, env, n->s, n->sn, v);
    }
    case N_CALLBLOCK: {
      ch_fn *caller = coh__ch_alloc(&r->ar, sizeof *caller);
      ch_val *args, fnv, cv;
      size_t na;
      ch_obj *kw;
      ch_env *ne;
      if (caller == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      caller->kind = FN_CALLER;
      caller->node = n;
      caller->env = env;
      if (eval_args(r, env, &n->l3, &args, &na, &kw)) return -1;
      args[na].t = V_KWARGS;
      args[na].u.o = kw ? kw : coh__ch_obj_new(r);
      if (args[na].u.o == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      na++;
      if (coh__ch_eval(r, env, n->a, &fnv)) return -1;
      r->at = n;
      if ((ne = env_new(r, env)) == NULL) return -1;
      cv.t = V_FUNC;
      cv.u.fn = caller;
      if (setvar(r, ne, "caller", 6, cv)) return -1;
      if (coh__ch_call(r, ne, fnv, args, na, &v)) return -1;
      return coh__ch_print(r, out, v);
    }
    case N_BREAK: return 1;
    case N_CONTINUE: return 2;
    case N_FILTERBLOCK: {
      coh__buf b = {0};
      int bad = 0;
      rc = block(r, env, &n->l1, &b);
      if (rc == 0) v = str_of_buf(r, &b, &bad);
      coh__buf_free(&b);
      if (rc) return rc;
      if (bad) return -1;
      r->at = n;
      if (coh__ch_apply_filter(r, env, v, n->b, &v)) return -1;
      if (v.t != V_NULL && v.t != V_UNDEF) return coh__ch_print(r, out, v);
      return 0;
    }
    default:
      if (coh__ch_eval(r, env, n, &v)) return -1;
      if (v.t != V_NULL && v.t != V_UNDEF) return coh__ch_print(r, out, v);
      return 0;
  }
}

static int block(ch_render *r, ch_env *env, const ch_list *body, coh__buf *out) {
  size_t i;
  for (i = 0; i < body->n; i++) {
    int rc = stmt(r, env, body->v[i], out);
    if (rc) return rc;
    if (coh__ch_output_check(r, out)) return -1;
  }
  return 0;
}

int coh__ch_run(ch_render *r, ch_env *global, coh__buf *out) {
  int rc = block(r, global, &r->t->body, out);
  if (rc > 0) {
    r->at = NULL;
    return coh__ch_fail(r, COH_EFORMAT, "break or continue outside a loop");
  }
  return rc;
}

ch_env *coh__ch_env_new(ch_render *r, ch_env *parent) { return env_new(r, parent); }
int coh__ch_setvar(ch_render *r, ch_env *e, const char *name, size_t n, ch_val v) {
  return setvar(r, e, name, n, v);
}
