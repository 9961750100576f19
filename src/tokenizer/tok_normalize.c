/* tok_normalize.c — normalizers: Sequence, Prepend, Replace, Strip.
 * Unicode normalization forms (NFC/NFKC/...), Lowercase and the
 * SentencePiece "Precompiled" charsmap need Unicode tables that cohort does
 * not carry; they are refused at load time by name. */
#include <string.h>

#include "tokenizer_int.h"

static int dup_str(const char *s, size_t n, char **out, size_t *out_len) {
  *out = coh__malloc(n + 1);
  if (*out == NULL) return COH_ENOMEM;
  memcpy(*out, s, n);
  (*out)[n] = '\0';
  *out_len = n;
  return COH_OK;
}

/* The Sequence element parser, typed for coh__json_parse_list. */
static int seq_item(json_t *j, const char *path, void *out,
                                      coh_err *err) {
  return coh__normalizer_parse(j, path, out, err);
}

int coh__normalizer_parse(json_t *j, const char *path, coh__normalizer *n,
                          coh_err *err) {
  const char *type, *s;
  size_t len;
  int rc;
  memset(n, 0, sizeof *n);
  rc = coh__json_type(j, path, &type, err);
  if (rc) return rc;
  if (!strcmp(type, "Sequence")) {
    void *kids = NULL;
    n->type = COH__NORM_SEQUENCE;
    rc = coh__json_parse_list(j, path, "normalizers", sizeof *n->kids,
                              seq_item, &kids, &n->n_kids, err);
    n->kids = kids;
    return rc;
  }

  if (!strcmp(type, "Prepend")) {
    n->type = COH__NORM_PREPEND;
    rc = coh__json_string(j, path, "prepend", &s, &len, err);
    if (!rc) rc = coh__tok_check_len(path, "prepend", len, err);
    if (rc) return rc;
    if (dup_str(s, len, &n->str, &n->str_len))
      return coh__err(err, COH_ENOMEM, "out of memory");
    return COH_OK;
  }
  if (!strcmp(type, "Replace")) {
    json_t *pat;
    char sub[COH__PATH_MAX];
    n->type = COH__NORM_REPLACE;
    rc = coh__json_member(j, path, "pattern", &pat, err);
    if (rc) return rc;
    coh__path_key(sub, path, "pattern");
    rc = coh__pattern_parse(pat, sub, &n->pat, err);
    if (rc) return rc;
    rc = coh__json_string(j, path, "content", &s, &len, err);
    if (!rc) rc = coh__tok_check_len(path, "content", len, err);
    if (rc) return rc;
    if (dup_str(s, len, &n->str, &n->str_len))
      return coh__err(err, COH_ENOMEM, "out of memory");
    return COH_OK;
  }
  if (!strcmp(type, "Strip")) {
    n->type = COH__NORM_STRIP;
    n->strip_left = n->strip_right = 1;
    rc = coh__json_opt_bool(j, path, "strip_left", &n->strip_left, err);
    if (rc) return rc;
    return coh__json_opt_bool(j, path, "strip_right", &n->strip_right, err);
  }
  return coh__err(err, COH_EUNSUPPORTED,
                  "%s.type: unsupported normalizer type \"%s\"", path, type);
}

void coh__normalizer_free(coh__normalizer *n) {
  size_t i;
  for (i = 0; i < n->n_kids; i++) coh__normalizer_free(&n->kids[i]);
  coh__free(n->kids);
  coh__free(n->str);
  coh__pattern_free(&n->pat);
  memset(n, 0, sizeof *n);
}

/* Applies one normalizer to the string in *cur, using *tmp as the output,
 * then swaps them so that *cur always holds the current text.  No step's
 * output may pass max bytes (COH_ERANGE): checked inside Replace's loop
 * too, so one step cannot allocate more than max plus one insertion. */
static int apply(const coh__normalizer *nz, coh__buf *cur, coh__buf *tmp,
                 size_t max) {
  coh__buf t;
  size_t i;
  tmp->n = 0;
  switch (nz->type) {
    case COH__NORM_SEQUENCE:
      for (i = 0; i < nz->n_kids; i++) {
        int rc = apply(&nz->kids[i], cur, tmp, max);
        if (rc) return rc;
      }
      return COH_OK;
    case COH__NORM_PREPEND:
      if (cur->n == 0) return COH_OK; /* HF: only non-empty strings */
      if (cur->n + nz->str_len > max) return COH_ERANGE;
      coh__buf_add(tmp, nz->str, nz->str_len);
      coh__buf_add(tmp, cur->p, cur->n);
      break;
    case COH__NORM_REPLACE: {
      coh__spans m = {0};
      size_t last = 0;
      int rc = coh__pattern_find(&nz->pat, cur->p ? cur->p : "", cur->n, &m);
      if (rc) {
        coh__spans_free(&m);
        return rc;
      }
      for (i = 0; i < m.n; i++) {
        coh__buf_add(tmp, cur->p + last, m.v[i].start - last);
        coh__buf_add(tmp, nz->str, nz->str_len);
        last = m.v[i].end;
        if (tmp->n > max) {
          coh__spans_free(&m);
          return COH_ERANGE;
        }
      }
      coh__buf_add(tmp, cur->p + last, cur->n - last);
      coh__spans_free(&m);
      break;
    }
    case COH__NORM_STRIP: {
      size_t a = 0, b = cur->n;
      uint32_t cp;
      while (nz->strip_left && a < b) {
        size_t k = coh__utf8_next(cur->p + a, b - a, &cp);
        if (!coh__is_whitespace(cp)) break;
        a += k;
      }
      while (nz->strip_right && b > a) {
        size_t k = coh__utf8_prev_len(cur->p, b);
        coh__utf8_next(cur->p + b - k, k, &cp);
        if (!coh__is_whitespace(cp)) break;
        b -= k;
      }
      coh__buf_add(tmp, cur->p + a, b - a);
      break;
    }
  }
  coh__buf_add(tmp, "", 0); /* keeps the buffer NUL-terminated */
  if (tmp->oom) return COH_ENOMEM;
  if (tmp->n > max) return COH_ERANGE;
  t = *cur;
  *cur = *tmp;
  *tmp = t;
  return COH_OK;
}

int coh__normalize(const coh__normalizer *nz, const char *s, size_t n,
                   coh__buf *out) {
  coh__buf tmp = {0};
  int rc;
  out->n = 0;
  coh__buf_add(out, s, n);
  if (out->oom) return COH_ENOMEM;
  rc = apply(nz, out, &tmp, coh__tok_out_max(n));
  coh__buf_free(&tmp);
  return rc;
}
