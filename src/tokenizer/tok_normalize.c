/* tok_normalize.c — normalizers: Sequence, Prepend, Replace, Strip, the
 * Unicode forms NFC/NFD/NFKC/NFKD, Lowercase, StripAccents, BertNormalizer
 * and ByteLevel.  Unicode data (decompositions, composition, case mapping,
 * general categories) comes from libutf8proc, never from tables of our own.
 * The SentencePiece "Precompiled" charsmap lives in tok_precompiled.c. */
#include <string.h>
#include <utf8proc.h>

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
  if (!strcmp(type, "Precompiled")) {
    n->type = COH__NORM_PRECOMPILED;
    rc = coh__json_string(j, path, "precompiled_charsmap", &s, &len, err);
    if (rc) return rc;
    return coh__charsmap_parse(s, len, path, &n->charsmap, err);
  }
  if (!strcmp(type, "NFC")) n->type = COH__NORM_NFC;
  else if (!strcmp(type, "NFD")) n->type = COH__NORM_NFD;
  else if (!strcmp(type, "NFKC")) n->type = COH__NORM_NFKC;
  else if (!strcmp(type, "NFKD")) n->type = COH__NORM_NFKD;
  else if (!strcmp(type, "Lowercase")) n->type = COH__NORM_LOWERCASE;
  else if (!strcmp(type, "StripAccents")) n->type = COH__NORM_STRIP_ACCENTS;
  else if (!strcmp(type, "ByteLevel")) n->type = COH__NORM_BYTELEVEL;
  else if (!strcmp(type, "BertNormalizer")) {
    json_t *sa;
    n->type = COH__NORM_BERT;
    n->clean_text = n->chinese_chars = n->lowercase = 1;
    n->strip_accents = -1;
    rc = coh__json_opt_bool(j, path, "clean_text", &n->clean_text, err);
    if (!rc)
      rc = coh__json_opt_bool(j, path, "handle_chinese_chars",
                              &n->chinese_chars, err);
    if (!rc) rc = coh__json_opt_bool(j, path, "lowercase", &n->lowercase, err);
    if (rc) return rc;
    sa = json_object_get(j, "strip_accents");
    if (sa != NULL && !json_is_null(sa)) {
      if (!json_is_boolean(sa))
        return coh__err(err, COH_EFORMAT,
                        "%s.strip_accents: expected a boolean or null", path);
      n->strip_accents = json_is_true(sa);
    }
  } else
    return coh__err(err, COH_EUNSUPPORTED,
                    "%s.type: unsupported normalizer type \"%s\"", path,
                    type);
  return COH_OK;
}

void coh__normalizer_free(coh__normalizer *n) {
  size_t i;
  for (i = 0; i < n->n_kids; i++) coh__normalizer_free(&n->kids[i]);
  coh__free(n->kids);
  coh__free(n->str);
  coh__pattern_free(&n->pat);
  coh__charsmap_free(n->charsmap);
  memset(n, 0, sizeof *n);
}

/* ---- Unicode ------------------------------------------------------------- */

/* utf8proc options of the four forms.  STABLE keeps the result the same
 * across Unicode versions for assigned characters. */
static int form_options(int type) {
  switch (type) {
    case COH__NORM_NFC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    case COH__NORM_NFD: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    case COH__NORM_NFKC:
      return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    default: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  }
}

/* Appends the normalization form of s[0..n) (valid UTF-8) to out.  The
 * code points go through a buffer we allocate, so out-of-memory is ours to
 * report (utf8proc_map would allocate with malloc).  A decomposition is at
 * most 18 code points per input character (Unicode's stability policy), so
 * the first call's size is bounded by the input. */
static int unicode_form(int type, const char *s, size_t n, coh__buf *out,
                        size_t max) {
  int opts = form_options(type);
  utf8proc_ssize_t need, got, i;
  utf8proc_int32_t *cps;
  if (n == 0) return COH_OK;
  need = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
                            NULL, 0, (utf8proc_option_t)opts);
  if (need < 0) return COH_EINVAL; /* not valid UTF-8: cannot happen */
  if ((size_t)need > max) return COH_ERANGE;
  cps = coh__malloc(((size_t)need + 1) * sizeof *cps);
  if (cps == NULL) return COH_ENOMEM;
  got = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
                           cps, need, (utf8proc_option_t)opts);
  if (got >= 0 && (opts & UTF8PROC_COMPOSE))
    got = utf8proc_normalize_utf32(cps, got, (utf8proc_option_t)opts);
  if (got < 0 || got > need) {
    coh__free(cps);
    return COH_EINVAL;
  }
  for (i = 0; i < got; i++) coh__buf_add_cp(out, (uint32_t)cps[i]);
  coh__free(cps);
  return COH_OK;
}

/* Rust's char::to_lowercase, which HF applies character by character: the
 * simple mapping, except U+0130, whose full lowercase is two characters. */
static void lower_cp(coh__buf *out, uint32_t cp) {
  if (cp == 0x130) {
    coh__buf_add(out, "i\xCC\x87", 3);
    return;
  }
  coh__buf_add_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
}

/* StripAccents drops every combining mark (Mn, Mc, Me); BertNormalizer's
 * strip_accents only the nonspacing ones (Mn), as HF. */
static int is_mark(uint32_t cp, int nonspacing_only) {
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  if (nonspacing_only) return c == UTF8PROC_CATEGORY_MN;
  return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC ||
         c == UTF8PROC_CATEGORY_ME;
}

/* HF's BertNormalizer is_control: general category C (Cc, Cf, Co; Cn and
 * Cs never occur in valid text of assigned characters), except tab, newline
 * and carriage return, which are whitespace. */
static int is_bert_control(uint32_t cp) {
  utf8proc_category_t c;
  if (cp == '\t' || cp == '\n' || cp == '\r') return 0;
  c = utf8proc_category((utf8proc_int32_t)cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF ||
         c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CS;
}

/* The CJK ideograph blocks BERT surrounds with spaces. */
static int is_chinese(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) ||
         (cp >= 0x2B920 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* Per-character maps: Lowercase, StripAccents, the first two BertNormalizer
 * steps, ByteLevel.  cur is valid UTF-8. */
static void map_chars(const coh__normalizer *nz, int step, const coh__buf *cur,
                      coh__buf *tmp) {
  size_t i = 0;
  while (i < cur->n) {
    uint32_t cp;
    size_t k = coh__utf8_next(cur->p + i, cur->n - i, &cp);
    switch (step) {
      case COH__NORM_LOWERCASE:
        lower_cp(tmp, cp);
        break;
      case COH__NORM_STRIP_ACCENTS:
        if (!is_mark(cp, nz->type == COH__NORM_BERT))
          coh__buf_add(tmp, cur->p + i, k);
        break;
      case COH__NORM_BYTELEVEL: {
        size_t b;
        for (b = 0; b < k; b++)
          coh__buf_add_cp(tmp, coh__byte_level_cp((unsigned char)cur->p[i + b]));
        break;
      }
      default: /* COH__NORM_BERT: clean_text, then Chinese characters */
        if (nz->clean_text &&
            (cp == 0 || cp == 0xFFFD || is_bert_control(cp)))
          break;
        if (nz->clean_text && (cp == '\t' || cp == '\n' || cp == '\r' ||
                               coh__is_whitespace(cp))) {
          coh__buf_addc(tmp, ' ');
          break;
        }
        if (nz->chinese_chars && is_chinese(cp)) {
          coh__buf_addc(tmp, ' ');
          coh__buf_add(tmp, cur->p + i, k);
          coh__buf_addc(tmp, ' ');
          break;
        }
        coh__buf_add(tmp, cur->p + i, k);
        break;
    }
    i += k;
  }
}

/* Swaps cur and tmp after a step wrote tmp, checking its size. */
static int step_done(coh__buf *cur, coh__buf *tmp, size_t max) {
  coh__buf t;
  coh__buf_add(tmp, "", 0); /* keeps the buffer NUL-terminated */
  if (tmp->oom) return COH_ENOMEM;
  if (tmp->n > max) return COH_ERANGE;
  t = *cur;
  *cur = *tmp;
  *tmp = t;
  tmp->n = 0;
  return COH_OK;
}

/* BertNormalizer: clean_text and Chinese characters, then (strip_accents,
 * or lowercase when strip_accents is unset) NFD and drop marks, then
 * lowercase: HF's order. */
static int apply_bert(const coh__normalizer *nz, coh__buf *cur, coh__buf *tmp,
                      size_t max) {
  int strip = nz->strip_accents < 0 ? nz->lowercase : nz->strip_accents;
  int rc;
  if (nz->clean_text || nz->chinese_chars) {
    map_chars(nz, COH__NORM_BERT, cur, tmp);
    if ((rc = step_done(cur, tmp, max)) != COH_OK) return rc;
  }
  if (strip) {
    rc = unicode_form(COH__NORM_NFD, cur->p, cur->n, tmp, max);
    if (rc == COH_OK) rc = step_done(cur, tmp, max);
    if (rc) return rc;
    map_chars(nz, COH__NORM_STRIP_ACCENTS, cur, tmp);
    if ((rc = step_done(cur, tmp, max)) != COH_OK) return rc;
  }
  if (nz->lowercase) {
    map_chars(nz, COH__NORM_LOWERCASE, cur, tmp);
    if ((rc = step_done(cur, tmp, max)) != COH_OK) return rc;
  }
  return COH_OK;
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
    case COH__NORM_NFC:
    case COH__NORM_NFD:
    case COH__NORM_NFKC:
    case COH__NORM_NFKD: {
      int rc = unicode_form(nz->type, cur->p, cur->n, tmp, max);
      if (rc) return rc;
      break;
    }
    case COH__NORM_LOWERCASE:
    case COH__NORM_STRIP_ACCENTS:
    case COH__NORM_BYTELEVEL:
      map_chars(nz, nz->type, cur, tmp);
      break;
    case COH__NORM_BERT:
      return apply_bert(nz, cur, tmp, max);
    case COH__NORM_PRECOMPILED: {
      int rc = coh__charsmap_apply(nz->charsmap, cur->p, cur->n, tmp, max);
      if (rc) return rc;
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
