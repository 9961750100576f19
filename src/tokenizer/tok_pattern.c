/* tok_pattern.c — the patterns of Split, Replace and the byte-level
 * pre-tokenizer: literal strings or PCRE2 regexes with Unicode classes.
 *
 * HF compiles its regexes with Oniguruma; PCRE2 in UTF + UCP mode accepts
 * the same syntax for every pattern seen in the tokenizers that matter
 * (\p{L}, \p{N}, lookahead, (?i:...), {1,3}).  The compiled code is shared
 * read-only; match data is allocated per call, which is what makes encode
 * thread-safe. */
#include <string.h>

#include "tokenizer_int.h"

int coh__pattern_regex(const char *src, const char *path, coh__pattern *p,
                       coh_err *err) {
  int errcode;
  PCRE2_SIZE erroff;
  memset(p, 0, sizeof *p);
  p->re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP, &errcode, &erroff, NULL);
  if (p->re == NULL) {
    PCRE2_UCHAR msg[160];
    if (errcode == PCRE2_ERROR_NOMEMORY)
      return coh__err(err, COH_ENOMEM, "%s: out of memory compiling regex",
                      path);
    pcre2_get_error_message(errcode, msg, sizeof msg);
    return coh__err(err, COH_EFORMAT, "%s: bad regex at offset %zu: %s",
                    path, (size_t)erroff, (const char *)msg);
  }
  /* JIT is an optimisation only: without it the interpreter runs. */
  p->jit = pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE) == 0;
  return COH_OK;
}

int coh__pattern_parse(json_t *j, const char *path, coh__pattern *p,
                       coh_err *err) {
  const char *s = NULL;
  size_t n = 0;
  int rc;
  memset(p, 0, sizeof *p);
  if (!json_is_object(j))
    return coh__err(err, COH_EFORMAT,
                    "%s: expected an object {\"String\": ...} or "
                    "{\"Regex\": ...}",
                    path);
  if (json_object_get(j, "String") != NULL) {
    rc = coh__json_string(j, path, "String", &s, &n, err);
    if (rc) return rc;
    p->lit = coh__malloc(n + 1);
    if (p->lit == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    memcpy(p->lit, s, n);
    p->lit[n] = '\0';
    p->lit_len = n;
    return COH_OK;
  }
  if (json_object_get(j, "Regex") != NULL) {
    char sub[COH__PATH_MAX];
    rc = coh__json_string(j, path, "Regex", &s, &n, err);
    if (rc) return rc;
    coh__path_key(sub, path, "Regex");
    if (strlen(s) != n)
      return coh__err(err, COH_EFORMAT, "%s: regex contains a NUL character",
                      sub);
    return coh__pattern_regex(s, sub, p, err);
  }
  return coh__err(err, COH_EFORMAT,
                  "%s: expected a \"String\" or \"Regex\" member", path);
}

void coh__pattern_free(coh__pattern *p) {
  coh__free(p->lit);
  if (p->re) pcre2_code_free(p->re);
  memset(p, 0, sizeof *p);
}

static int find_literal(const coh__pattern *p, const char *s, size_t n,
                        coh__spans *out) {
  size_t i = 0;
  if (p->lit_len == 0) return COH_OK; /* an empty literal never matches */
  while (i + p->lit_len <= n) {
    const char *hit = memmem(s + i, n - i, p->lit, p->lit_len);
    if (hit == NULL) break;
    i = (size_t)(hit - s);
    coh__spans_push(out, i, i + p->lit_len, 1);
    i += p->lit_len;
  }
  return out->oom ? COH_ENOMEM : COH_OK;
}

int coh__pattern_find(const coh__pattern *p, const char *s, size_t n,
                      coh__spans *out) {
  pcre2_match_data *md;
  PCRE2_SIZE off = 0;
  uint32_t opts = 0;
  int rc = COH_OK;
  if (p->re == NULL) return find_literal(p, s, n, out);
  md = pcre2_match_data_create_from_pattern(p->re, NULL);
  if (md == NULL) return COH_ENOMEM;
  while (off <= n) {
    PCRE2_SIZE *ov;
    int m = pcre2_match(p->re, (PCRE2_SPTR)s, n, off, opts, md, NULL);
    if (m == PCRE2_ERROR_JIT_STACKLIMIT)
      m = pcre2_match(p->re, (PCRE2_SPTR)s, n, off, opts | PCRE2_NO_JIT, md,
                      NULL);
    if (m == PCRE2_ERROR_NOMEMORY) {
      rc = COH_ENOMEM;
      break;
    }
    if (m < 0) break; /* no match, or the engine gave up: rest unmatched */
    /* The subject was checked once; later calls skip the O(n) UTF check,
     * which would otherwise make long inputs quadratic. */
    opts = PCRE2_NO_UTF_CHECK;
    ov = pcre2_get_ovector_pointer(md);
    if (ov[0] < off || ov[1] < ov[0] || ov[1] > n) break; /* \K tricks */
    coh__spans_push(out, ov[0], ov[1], 1);
    if (ov[1] > ov[0]) {
      off = ov[1];
    } else {
      uint32_t cp;
      if (ov[1] >= n) break;
      off = ov[1] + coh__utf8_next(s + ov[1], n - ov[1], &cp);
    }
  }
  pcre2_match_data_free(md);
  if (rc == COH_OK && out->oom) rc = COH_ENOMEM;
  return rc;
}
