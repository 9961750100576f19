/* yaml_json.c — YAML scalar resolution (YAML 1.2 core schema) and the
 * conversion of YAML nodes to JSON for agents' config and message bodies. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario_int.h"

int coh__yaml_err(coh_err *err, int code, const char *path, yaml_mark_t mark,
                  const char *fmt, ...) {
  char msg[COH_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return coh__err(err, code, "%s:%zu:%zu: %s", path, mark.line + 1,
                  mark.column + 1, msg);
}

int coh__utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t k, need;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07;
    else return 0;
    if (n - i <= need) return 0;
    for (k = 1; k <= need; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += need + 1;
  }
  return 1;
}

/* ---- scalar resolution --------------------------------------------------- */

static int is_digits(const char *s, size_t n, int base) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++) {
    char ch = s[i];
    int ok = base == 16 ? ((ch >= '0' && ch <= '9') ||
                           (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))
             : base == 8 ? (ch >= '0' && ch <= '7')
                         : (ch >= '0' && ch <= '9');
    if (!ok) return 0;
  }
  return 1;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_float(const char *s, size_t n) {
  size_t i = 0, int_digits = 0, frac_digits = 0;
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++, int_digits++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, frac_digits++;
  }
  if (int_digits == 0 && frac_digits == 0) return 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    size_t e = 0;
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, e++;
    if (e == 0) return 0;
  }
  return i == n;
}

static int is_one_of(const char *s, size_t n, const char *const *words) {
  for (; *words; words++)
    if (strlen(*words) == n && memcmp(s, *words, n) == 0) return 1;
  return 0;
}

void coh__yaml_resolve(const yaml_node_t *node, coh__yscalar *out) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
  static const char *const trues[] = {"true", "True", "TRUE", NULL};
  static const char *const falses[] = {"false", "False", "FALSE", NULL};
  static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf",
                                     "+.INF", "-.inf", "-.Inf", "-.INF",
                                     ".nan", ".NaN", ".NAN", NULL};
  const char *s = (const char *)node->data.scalar.value;
  size_t n = node->data.scalar.length;
  memset(out, 0, sizeof *out);
  out->kind = COH__Y_STR;
  if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return;
  if (is_one_of(s, n, nulls)) {
    out->kind = COH__Y_NULL;
  } else if (is_one_of(s, n, trues) || is_one_of(s, n, falses)) {
    out->kind = COH__Y_BOOL;
    out->b = s[0] == 't' || s[0] == 'T';
  } else if (is_one_of(s, n, infs)) {
    out->kind = COH__Y_NONFINITE;
  } else {
    size_t off = 0;
    int base = 10;
    out->neg = n > 0 && s[0] == '-';
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
      base = s[1] == 'x' ? 16 : 8;
      off = 2;
    } else if (n > 0 && (s[0] == '-' || s[0] == '+')) {
      off = 1;
    }
    if (is_digits(s + off, n - off, base)) {
      /* magnitude with overflow detection; int64 admits -2^63 */
      uint64_t mag = 0, lim = out->neg ? (uint64_t)INT64_MAX + 1
                                       : (uint64_t)INT64_MAX;
      size_t i;
      int over = 0;
      for (i = off; i < n; i++) {
        char ch = s[i];
        unsigned dv = ch <= '9' ? (unsigned)(ch - '0')
                      : ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                                  : (unsigned)(ch - 'a' + 10);
        if (mag > (lim - dv) / (unsigned)base) {
          over = 1;
          break;
        }
        mag = mag * (unsigned)base + dv;
      }
      if (over) {
        out->kind = COH__Y_BIGINT;
      } else {
        out->kind = COH__Y_INT;
        out->i = out->neg ? (mag == (uint64_t)INT64_MAX + 1
                                 ? INT64_MIN
                                 : -(int64_t)mag)
                          : (int64_t)mag;
      }
    } else if (is_float(s, n)) {
      char buf[128];
      double d;
      if (n >= sizeof buf) { /* absurdly long: strtod on a heap copy */
        char *copy = coh__malloc(n + 1);
        if (copy == NULL) return; /* stays a string; harmless */
        memcpy(copy, s, n);
        copy[n] = '\0';
        d = strtod(copy, NULL);
        coh__free(copy);
      } else {
        memcpy(buf, s, n);
        buf[n] = '\0';
        d = strtod(buf, NULL);
      }
      if (isfinite(d)) {
        out->kind = COH__Y_FLOAT;
        out->d = d;
      } else {
        out->kind = COH__Y_NONFINITE; /* 1e999 */
      }
    }
  }
}

/* ---- YAML → JSON --------------------------------------------------------- */

/* The fewest significant digits that print d so that it reads back
 * exactly (see coh__json_compact). */
static int shortest_prec(double d) {
  int p;
  for (p = 1; p < 17; p++) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.*g", p, d);
    if (strtod(buf, NULL) == d) return p;
  }
  return 17;
}

static int spend(coh__yjson *c, yaml_node_t *n, size_t units) {
  if (units > c->budget)
    return coh__yaml_err(c->err, COH_EFORMAT, c->path, n->start_mark,
                         "YAML aliases expand to too much data; expected "
                         "config and message bodies of at most about 16 "
                         "times the file's size");
  c->budget -= units;
  return COH_OK;
}

static int scalar_to_json(coh__yjson *c, yaml_node_t *n, json_t **out) {
  coh__yscalar v;
  const char *s = (const char *)n->data.scalar.value;
  size_t len = n->data.scalar.length;
  coh__yaml_resolve(n, &v);
  switch (v.kind) {
  case COH__Y_NULL: *out = json_null(); break;
  case COH__Y_BOOL: *out = json_boolean(v.b); break;
  case COH__Y_INT: *out = json_integer((json_int_t)v.i); break;
  case COH__Y_FLOAT: {
    int p = shortest_prec(v.d);
    if (p > c->prec) c->prec = p;
    *out = json_real(v.d);
    break;
  }
  case COH__Y_BIGINT:
    return coh__yaml_err(c->err, COH_EFORMAT, c->path, n->start_mark,
                         "integer '%.40s' does not fit in 64 bits; expected "
                         "-2^63..2^63-1 (quote it for a string)", s);
  case COH__Y_NONFINITE:
    return coh__yaml_err(c->err, COH_EFORMAT, c->path, n->start_mark,
                         "'%.40s' has no JSON form; expected a finite number "
                         "(quote it for a string)", s);
  case COH__Y_STR:
  default:
    if (!coh__utf8_valid(s, len))
      return coh__yaml_err(c->err, COH_EFORMAT, c->path, n->start_mark,
                           "string is not valid UTF-8; expected UTF-8 text");
    *out = json_stringn_nocheck(s, len);
    break;
  }
  return *out == NULL ? COH_ENOMEM : COH_OK;
}

int coh__yaml_to_json(coh__yjson *c, yaml_node_t *n, int depth, json_t **out) {
  json_t *v = NULL;
  yaml_node_item_t *it;
  yaml_node_pair_t *pair;
  int rc;
  *out = NULL;
  if (depth > COH__YJSON_MAX_DEPTH)
    return coh__yaml_err(c->err, COH_EFORMAT, c->path, n->start_mark,
                         "nesting deeper than %d levels (or a recursive "
                         "alias); expected at most %d",
                         COH__YJSON_MAX_DEPTH, COH__YJSON_MAX_DEPTH);
  rc = spend(c, n, 1 + (n->type == YAML_SCALAR_NODE
                            ? n->data.scalar.length : 0));
  if (rc) return rc;
  switch (n->type) {
  case YAML_SCALAR_NODE:
    return scalar_to_json(c, n, out);
  case YAML_SEQUENCE_NODE:
    v = json_array();
    if (v == NULL) return COH_ENOMEM;
    for (it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
      json_t *e;
      rc = coh__yaml_to_json(c, yaml_document_get_node(c->doc, *it),
                             depth + 1, &e);
      if (rc) goto fail;
      if (json_array_append_new(v, e)) {
        rc = COH_ENOMEM;
        goto fail;
      }
    }
    break;
  case YAML_MAPPING_NODE:
    v = json_object();
    if (v == NULL) return COH_ENOMEM;
    for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
      yaml_node_t *k = yaml_document_get_node(c->doc, pair->key);
      const char *ks;
      size_t kl;
      json_t *e;
      if (k->type != YAML_SCALAR_NODE) {
        rc = coh__yaml_err(c->err, COH_EFORMAT, c->path, k->start_mark,
                           "a mapping key here is a %s; expected a scalar "
                           "key (JSON object keys are strings)",
                           k->type == YAML_MAPPING_NODE ? "mapping"
                                                        : "sequence");
        goto fail;
      }
      ks = (const char *)k->data.scalar.value;
      kl = k->data.scalar.length;
      if (!coh__utf8_valid(ks, kl)) {
        rc = coh__yaml_err(c->err, COH_EFORMAT, c->path, k->start_mark,
                           "key is not valid UTF-8; expected UTF-8 text");
        goto fail;
      }
      if (json_object_getn(v, ks, kl) != NULL) {
        rc = coh__yaml_err(c->err, COH_EFORMAT, c->path, k->start_mark,
                           "duplicate key '%.64s'; expected each key once",
                           ks);
        goto fail;
      }
      rc = coh__yaml_to_json(c, yaml_document_get_node(c->doc, pair->value),
                             depth + 1, &e);
      if (rc) goto fail;
      if (json_object_setn_new_nocheck(v, ks, kl, e)) {
        rc = COH_ENOMEM;
        goto fail;
      }
    }
    break;
  default:
    return coh__yaml_err(c->err, COH_EFORMAT, c->path, n->start_mark,
                         "empty node; expected a value");
  }
  *out = v;
  return COH_OK;
fail:
  json_decref(v);
  return rc;
}

int coh__json_compact(const json_t *v, int prec, char **out, size_t *out_len) {
  /* jansson takes one precision for the whole dump.  Any double read from
   * a decimal of at most 15 significant digits prints back as that decimal
   * at %.15g, so 15 is exact and noise-free for ordinary configs; only if
   * some real needs more does the dump use 16 or 17 (exact for all, with
   * noise digits in the short ones). */
  size_t flags = JSON_COMPACT | JSON_ENCODE_ANY |
                 JSON_REAL_PRECISION(prec <= 15 ? 15 : prec);
  size_t n = json_dumpb(v, NULL, 0, flags);
  char *p;
  *out = NULL;
  if (n == 0) return COH_ENOMEM; /* every value dumps to >= 1 byte */
  p = coh__malloc(n + 1);
  if (p == NULL) return COH_ENOMEM;
  if (json_dumpb(v, p, n, flags) != n) {
    coh__free(p);
    return COH_ENOMEM;
  }
  p[n] = '\0';
  *out = p;
  if (out_len) *out_len = n;
  return COH_OK;
}
