/* tok_pretok.c — pre-tokenizers: Sequence, ByteLevel, Split, Metaspace,
 * Digits, Whitespace, WhitespaceSplit, Punctuation, BertPreTokenizer.  Each turns one piece of normalized
 * text into words for the model, exactly as HF's NormalizedString::split
 * does: find the matches, pair them with the text between them, apply the
 * delimiter behaviour, drop empty pieces. */
#include <string.h>

#include "tokenizer_int.h"

/* GPT-2's pre-tokenization regex, used by ByteLevel with use_regex. */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

static int parse_behavior(json_t *j, const char *path, int *out,
                          coh_err *err) {
  const char *b;
  int rc = coh__json_string(j, path, "behavior", &b, NULL, err);
  if (rc) return rc;
  if (!strcmp(b, "Removed")) *out = COH__SPLIT_REMOVED;
  else if (!strcmp(b, "Isolated")) *out = COH__SPLIT_ISOLATED;
  else if (!strcmp(b, "MergedWithPrevious")) *out = COH__SPLIT_MERGED_PREV;
  else if (!strcmp(b, "MergedWithNext")) *out = COH__SPLIT_MERGED_NEXT;
  else if (!strcmp(b, "Contiguous")) *out = COH__SPLIT_CONTIGUOUS;
  else
    return coh__err(err, COH_EUNSUPPORTED,
                    "%s.behavior: unsupported split behavior \"%s\"", path, b);
  return COH_OK;
}

/* The Sequence element parser, typed for coh__json_parse_list. */
static int seq_item(json_t *j, const char *path, void *out, coh_err *err) {
  return coh__pretok_parse(j, path, out, err);
}

int coh__pretok_parse(json_t *j, const char *path, coh__pretok *p,
                      coh_err *err) {
  const char *type;
  int rc;
  memset(p, 0, sizeof *p);
  rc = coh__json_type(j, path, &type, err);
  if (rc) return rc;
  if (!strcmp(type, "Sequence")) {
    void *kids = NULL;
    p->type = COH__PRE_SEQUENCE;
    rc = coh__json_parse_list(j, path, "pretokenizers", sizeof *p->kids, seq_item, &kids,
                              &p->n_kids, err);
    p->kids = kids;
    return rc;
  }

  if (!strcmp(type, "ByteLevel")) {
    p->type = COH__PRE_BYTELEVEL;
    p->use_pat = 1;
    rc = coh__json_opt_bool(j, path, "add_prefix_space", &p->add_prefix_space,
                            err);
    if (!rc) rc = coh__json_opt_bool(j, path, "use_regex", &p->use_pat, err);
    if (rc) return rc;
    if (p->use_pat) return coh__pattern_regex(gpt2_regex, path, &p->pat, err);
    return COH_OK;
  }
  if (!strcmp(type, "Split")) {
    json_t *pat;
    char sub[COH__PATH_MAX];
    p->type = COH__PRE_SPLIT;
    p->use_pat = 1;
    rc = coh__json_member(j, path, "pattern", &pat, err);
    if (rc) return rc;
    coh__path_key(sub, path, "pattern");
    rc = coh__pattern_parse(pat, sub, &p->pat, err);
    if (!rc) rc = parse_behavior(j, path, &p->behavior, err);
    if (!rc) rc = coh__json_opt_bool(j, path, "invert", &p->invert, err);
    return rc;
  }
  if (!strcmp(type, "Metaspace")) {
    const char *scheme = NULL;
    int add_prefix_space = 1;
    p->type = COH__PRE_METASPACE;
    p->split = 1;
    rc = coh__json_char(j, path, "replacement", &p->replacement, err);
    if (!rc) rc = coh__json_opt_bool(j, path, "split", &p->split, err);
    if (!rc)
      rc = coh__json_opt_bool(j, path, "add_prefix_space", &add_prefix_space,
                              err);
    if (!rc)
      rc = coh__json_opt_string(j, path, "prepend_scheme", &scheme, NULL, err);
    if (rc) return rc;
    /* Files written before prepend_scheme existed say add_prefix_space. */
    p->prepend_scheme = add_prefix_space ? 0 : 2;
    if (scheme != NULL) {
      if (!strcmp(scheme, "always")) p->prepend_scheme = 0;
      else if (!strcmp(scheme, "first")) p->prepend_scheme = 1;
      else if (!strcmp(scheme, "never")) p->prepend_scheme = 2;
      else
        return coh__err(err, COH_EFORMAT,
                        "%s.prepend_scheme: unknown value \"%s\"", path,
                        scheme);
    }
    return COH_OK;
  }
  if (!strcmp(type, "Digits")) {
    p->type = COH__PRE_DIGITS;
    p->use_pat = 1;
    rc = coh__json_opt_bool(j, path, "individual_digits",
                            &p->individual_digits, err);
    if (rc) return rc;
    p->behavior =
        p->individual_digits ? COH__SPLIT_ISOLATED : COH__SPLIT_CONTIGUOUS;
    return coh__pattern_regex("\\p{N}", path, &p->pat, err);
  }
  if (!strcmp(type, "Whitespace")) {
    p->type = COH__PRE_WHITESPACE;
    p->use_pat = 1;
    p->behavior = COH__SPLIT_REMOVED;
    p->invert = 1;
    /* HF's \w+|[^\w\s]+ runs in Oniguruma, whose Unicode \w is
     * Unicode's (TR18): Alphabetic, Mark, Decimal_Number,
     * Connector_Punctuation, Join_Control; and \s is tab..CR, NEL and Z*.
     * PCRE2's \w and \s differ (letters and all numbers, no marks; no
     * NEL), so the classes are spelled out. */
    return coh__pattern_regex(
        "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]+|"
        "[^\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}"
        "\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}]+",
        path, &p->pat, err);
  }
  if (!strcmp(type, "WhitespaceSplit")) {
    p->type = COH__PRE_WHITESPACE_SPLIT;
    p->behavior = COH__SPLIT_REMOVED;
    return COH_OK;
  }
  if (!strcmp(type, "Punctuation")) {
    p->type = COH__PRE_PUNCTUATION;
    p->behavior = COH__SPLIT_ISOLATED; /* HF's default */
    if (json_object_get(j, "behavior") != NULL)
      return parse_behavior(j, path, &p->behavior, err);
    return COH_OK;
  }
  if (!strcmp(type, "BertPreTokenizer")) {
    p->type = COH__PRE_BERT;
    return COH_OK;
  }
  return coh__err(err, COH_EUNSUPPORTED,
                  "%s.type: unsupported pre-tokenizer type \"%s\"", path,
                  type);
}

void coh__pretok_free(coh__pretok *p) {
  size_t i;
  for (i = 0; i < p->n_kids; i++) coh__pretok_free(&p->kids[i]);
  coh__free(p->kids);
  coh__pattern_free(&p->pat);
  memset(p, 0, sizeof *p);
}

/* Matches of one character (c == ch, or whitespace when ch is 0), each its
 * own match, as HF's char patterns. */
static void char_matches(const char *s, size_t n, uint32_t ch,
                         coh__spans *out) {
  size_t i = 0;
  while (i < n) {
    uint32_t cp;
    size_t k = coh__utf8_next(s + i, n - i, &cp);
    if (ch ? cp == ch : coh__is_whitespace(cp))
      coh__spans_push(out, i, i + k, 1);
    i += k;
  }
}

/* Each punctuation character (coh__is_punct) its own match. */
static void punct_matches(const char *s, size_t n, coh__spans *out) {
  size_t i = 0;
  while (i < n) {
    uint32_t cp;
    size_t k = coh__utf8_next(s + i, n - i, &cp);
    if (coh__is_punct(cp)) coh__spans_push(out, i, i + k, 1);
    i += k;
  }
}

/* Turns matches into HF's (offsets, is_match) cover of the whole string,
 * applies invert and the behaviour, and appends the non-empty results to out
 * (offsets shifted by base; val: at_start for a piece at offset 0). */
static void split_by(const char *s, size_t n, const coh__spans *m,
                     int behavior, int invert, int at_start,
                     coh__pieces *out) {
  coh__spans cov = {0}, res = {0};
  size_t i, prev = 0;
  if (n == 0) return;
  for (i = 0; i < m->n; i++) {
    if (prev != m->v[i].start) coh__spans_push(&cov, prev, m->v[i].start, 0);
    coh__spans_push(&cov, m->v[i].start, m->v[i].end, 1);
    prev = m->v[i].end;
  }
  if (prev != n) coh__spans_push(&cov, prev, n, 0);
  if (invert)
    for (i = 0; i < cov.n; i++) cov.v[i].val = !cov.v[i].val;
  /* res.val: 1 = removed */
  switch (behavior) {
    case COH__SPLIT_ISOLATED:
      for (i = 0; i < cov.n; i++)
        coh__spans_push(&res, cov.v[i].start, cov.v[i].end, 0);
      break;
    case COH__SPLIT_REMOVED:
      for (i = 0; i < cov.n; i++)
        coh__spans_push(&res, cov.v[i].start, cov.v[i].end, cov.v[i].val);
      break;
    case COH__SPLIT_CONTIGUOUS:
    case COH__SPLIT_MERGED_PREV: {
      int prev_match = 0;
      for (i = 0; i < cov.n; i++) {
        int is_match = cov.v[i].val;
        int merge = behavior == COH__SPLIT_CONTIGUOUS
                        ? is_match == prev_match
                        : (is_match && !prev_match);
        if (merge && res.n > 0)
          res.v[res.n - 1].end = cov.v[i].end;
        else
          coh__spans_push(&res, cov.v[i].start, cov.v[i].end, 0);
        prev_match = is_match;
      }
      break;
    }
    case COH__SPLIT_MERGED_NEXT: {
      /* Built right to left, then reversed, as HF. */
      int prev_match = 0;
      size_t k;
      for (k = cov.n; k-- > 0;) {
        int is_match = cov.v[k].val;
        if (is_match && !prev_match && res.n > 0)
          res.v[res.n - 1].start = cov.v[k].start;
        else
          coh__spans_push(&res, cov.v[k].start, cov.v[k].end, 0);
        prev_match = is_match;
      }
      for (i = 0; i < res.n / 2; i++) {
        coh__span t = res.v[i];
        res.v[i] = res.v[res.n - 1 - i];
        res.v[res.n - 1 - i] = t;
      }
      break;
    }
  }
  if (cov.oom || res.oom) out->spans.oom = 1;
  for (i = 0; i < res.n; i++) {
    size_t off;
    if (res.v[i].val || res.v[i].end == res.v[i].start) continue;
    off = out->text.n;
    coh__buf_add(&out->text, s + res.v[i].start,
                 res.v[i].end - res.v[i].start);
    coh__spans_push(&out->spans, off, out->text.n,
                    at_start && res.v[i].start == 0);
  }
  coh__spans_free(&cov);
  coh__spans_free(&res);
}

static void push_piece(coh__pieces *out, const char *s, size_t n,
                       int at_start) {
  size_t off = out->text.n;
  if (n == 0) return;
  coh__buf_add(&out->text, s, n);
  coh__spans_push(&out->spans, off, out->text.n, at_start);
}

static int pre_one(const coh__pretok *pt, const char *s, size_t n,
                   int at_start, coh__pieces *out,
                   const char byte_chars[256][4], size_t max);

/* Each kid runs over every piece the previous one produced.  No step's
 * text may pass max bytes: a ByteLevel doubles the bytes it is given, so a
 * Sequence of them would otherwise grow the text geometrically. */
static int pre_sequence(const coh__pretok *pt, const char *s, size_t n,
                        int at_start, coh__pieces *out,
                        const char byte_chars[256][4], size_t max) {
  coh__pieces a = {0}, b = {0}, t;
  size_t k, i;
  int rc = COH_OK;
  push_piece(&a, s, n, at_start);
  for (k = 0; k < pt->n_kids && rc == COH_OK; k++) {
    coh__pieces_clear(&b);
    for (i = 0; i < a.spans.n && rc == COH_OK; i++) {
      rc = pre_one(&pt->kids[k], a.text.p + a.spans.v[i].start,
                   a.spans.v[i].end - a.spans.v[i].start, a.spans.v[i].val, &b,
                   byte_chars, max);
      if (rc == COH_OK && b.text.n > max) rc = COH_ERANGE;
    }
    t = a;
    a = b;
    b = t;
  }
  for (i = 0; i < a.spans.n && rc == COH_OK; i++)
    push_piece(out, a.text.p + a.spans.v[i].start,
               a.spans.v[i].end - a.spans.v[i].start, a.spans.v[i].val);
  if (a.text.oom || a.spans.oom) rc = COH_ENOMEM;
  coh__pieces_free(&a);
  coh__pieces_free(&b);
  return rc;
}

static int pre_bytelevel(const coh__pretok *pt, const char *s, size_t n,
                         int at_start, coh__pieces *out,
                         const char byte_chars[256][4]) {
  coh__buf src = {0};
  coh__spans m = {0};
  coh__pieces split = {0};
  size_t i, j;
  int rc = COH_OK;
  if (pt->add_prefix_space && (n == 0 || s[0] != ' '))
    coh__buf_addc(&src, ' ');
  coh__buf_add(&src, s, n);
  if (src.oom) {
    rc = COH_ENOMEM;
    goto done;
  }
  if (pt->use_pat) {
    rc = coh__pattern_find(&pt->pat, src.p, src.n, &m);
    if (rc) goto done;
    split_by(src.p, src.n, &m, COH__SPLIT_ISOLATED, 0, at_start, &split);
  } else {
    push_piece(&split, src.p, src.n, at_start);
  }
  /* Every byte becomes its stand-in character of the byte-level alphabet. */
  for (i = 0; i < split.spans.n; i++) {
    size_t off = out->text.n;
    for (j = split.spans.v[i].start; j < split.spans.v[i].end; j++) {
      const char *c = byte_chars[(unsigned char)split.text.p[j]];
      coh__buf_add(&out->text, c, strlen(c));
    }
    coh__spans_push(&out->spans, off, out->text.n, split.spans.v[i].val);
  }
  if (split.text.oom || split.spans.oom) rc = COH_ENOMEM;
done:
  coh__buf_free(&src);
  coh__spans_free(&m);
  coh__pieces_free(&split);
  return rc;
}

static int pre_metaspace(const coh__pretok *pt, const char *s, size_t n,
                         int at_start, coh__pieces *out) {
  coh__buf t = {0};
  coh__spans m = {0};
  size_t i;
  int rc = COH_OK;
  coh__buf rep = {0};
  coh__buf_add_cp(&rep, pt->replacement);
  if (rep.oom) return COH_ENOMEM;
  /* replace ' ' by the replacement, then maybe prepend it */
  if (pt->prepend_scheme != 2 && (pt->prepend_scheme == 0 || at_start) &&
      !(n >= rep.n && memcmp(s, rep.p, rep.n) == 0)) {
    /* HF checks the string after replacing spaces: a leading ' ' becomes
     * the replacement, so nothing is prepended then. */
    if (!(n > 0 && s[0] == ' ')) coh__buf_add(&t, rep.p, rep.n);
  }
  for (i = 0; i < n; i++) {
    if (s[i] == ' ')
      coh__buf_add(&t, rep.p, rep.n);
    else
      coh__buf_addc(&t, s[i]);
  }
  if (t.oom) {
    rc = COH_ENOMEM;
    goto done;
  }
  if (pt->split) {
    char_matches(t.p, t.n, pt->replacement, &m);
    split_by(t.p, t.n, &m, COH__SPLIT_MERGED_NEXT, 0, at_start, out);
  } else {
    push_piece(out, t.p, t.n, at_start);
  }
  if (m.oom) rc = COH_ENOMEM;
done:
  coh__buf_free(&t);
  coh__buf_free(&rep);
  coh__spans_free(&m);
  return rc;
}

static int pre_one(const coh__pretok *pt, const char *s, size_t n,
                   int at_start, coh__pieces *out,
                   const char byte_chars[256][4], size_t max) {
  coh__spans m = {0};
  int rc = COH_OK;
  switch (pt->type) {
    case COH__PRE_SEQUENCE:
      return pre_sequence(pt, s, n, at_start, out, byte_chars, max);
    case COH__PRE_BYTELEVEL:
      return pre_bytelevel(pt, s, n, at_start, out, byte_chars);
    case COH__PRE_METASPACE:
      return pre_metaspace(pt, s, n, at_start, out);
    case COH__PRE_WHITESPACE_SPLIT:
      char_matches(s, n, 0, &m);
      break;
    case COH__PRE_PUNCTUATION:
      punct_matches(s, n, &m);
      break;
    case COH__PRE_BERT: {
      /* whitespace removed, then each punctuation character isolated */
      coh__pieces words = {0};
      size_t i;
      char_matches(s, n, 0, &m);
      split_by(s, n, &m, COH__SPLIT_REMOVED, 0, at_start, &words);
      for (i = 0; i < words.spans.n; i++) {
        const char *w = words.text.p + words.spans.v[i].start;
        size_t wn = words.spans.v[i].end - words.spans.v[i].start;
        m.n = 0;
        punct_matches(w, wn, &m);
        split_by(w, wn, &m, COH__SPLIT_ISOLATED, 0, words.spans.v[i].val,
                 out);
      }
      if (m.oom || words.text.oom || words.spans.oom) rc = COH_ENOMEM;
      coh__pieces_free(&words);
      coh__spans_free(&m);
      return rc;
    }
    default: /* Split, Digits, Whitespace */
      rc = coh__pattern_find(&pt->pat, s, n, &m);
      break;
  }
  if (rc == COH_OK) {
    split_by(s, n, &m, pt->behavior, pt->invert, at_start, out);
    if (m.oom) rc = COH_ENOMEM;
  }
  coh__spans_free(&m);
  return rc;
}

int coh__pretokenize(const coh__pretok *pt, const coh__pieces *in,
                     coh__pieces *out, const char byte_chars[256][4]) {
  size_t i, max = coh__tok_out_max(in->text.n);
  int rc = COH_OK;
  coh__pieces_clear(out);
  for (i = 0; i < in->spans.n && rc == COH_OK; i++) {
    rc = pre_one(pt, in->text.p + in->spans.v[i].start,
                 in->spans.v[i].end - in->spans.v[i].start, in->spans.v[i].val,
                 out, byte_chars, max);
    if (rc == COH_OK && out->text.n > max) rc = COH_ERANGE;
  }
  if (rc == COH_OK && (out->text.oom || out->spans.oom)) rc = COH_ENOMEM;
  return rc;
}
