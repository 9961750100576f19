/* tok_decode.c — decoders (Sequence, ByteLevel, Replace, ByteFallback,
 * Fuse, Strip, Metaspace, WordPiece) and coh_tokenizer_decode.
 *
 * As in HF, a decoder maps a list of token strings to a list of strings
 * (decode_chain) and the results are concatenated at the end. */
#include <stdio.h>
#include <string.h>

#include "tokenizer_int.h"

/* The Sequence element parser, typed for coh__json_parse_list. */
static int seq_item(json_t *j, const char *path, void *out, coh_err *err) {
  return coh__decoder_parse(j, path, out, err);
}

int coh__decoder_parse(json_t *j, const char *path, coh__decoder *d,
                       coh_err *err) {
  const char *type;
  int rc;
  memset(d, 0, sizeof *d);
  rc = coh__json_type(j, path, &type, err);
  if (rc) return rc;
  if (!strcmp(type, "Sequence")) {
    void *kids = NULL;
    d->type = COH__DEC_SEQUENCE;
    rc = coh__json_parse_list(j, path, "decoders", sizeof *d->kids, seq_item, &kids,
                              &d->n_kids, err);
    d->kids = kids;
    return rc;
  }

  if (!strcmp(type, "ByteLevel")) {
    d->type = COH__DEC_BYTELEVEL;
    return COH_OK;
  }
  if (!strcmp(type, "ByteFallback")) {
    d->type = COH__DEC_BYTEFALLBACK;
    return COH_OK;
  }
  if (!strcmp(type, "Fuse")) {
    d->type = COH__DEC_FUSE;
    return COH_OK;
  }
  if (!strcmp(type, "Replace")) {
    json_t *pat;
    char sub[COH__PATH_MAX];
    const char *s;
    size_t n;
    d->type = COH__DEC_REPLACE;
    rc = coh__json_member(j, path, "pattern", &pat, err);
    if (rc) return rc;
    coh__path_key(sub, path, "pattern");
    rc = coh__pattern_parse(pat, sub, &d->pat, err);
    if (!rc) rc = coh__json_string(j, path, "content", &s, &n, err);
    if (!rc) rc = coh__tok_check_len(path, "content", n, err);
    if (rc) return rc;
    d->str = coh__malloc(n + 1);
    if (d->str == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    memcpy(d->str, s, n + 1);
    d->str_len = n;
    return COH_OK;
  }
  if (!strcmp(type, "Strip")) {
    int64_t v;
    d->type = COH__DEC_STRIP;
    rc = coh__json_char(j, path, "content", &d->ch, err);
    if (!rc) rc = coh__json_int(j, path, "start", 0, INT32_MAX, &v, err);
    if (rc) return rc;
    d->start = (size_t)v;
    rc = coh__json_int(j, path, "stop", 0, INT32_MAX, &v, err);
    d->stop = (size_t)v;
    return rc;
  }
  if (!strcmp(type, "Metaspace")) {
    const char *scheme = NULL;
    int add_prefix_space = 1;
    d->type = COH__DEC_METASPACE;
    rc = coh__json_char(j, path, "replacement", &d->ch, err);
    if (!rc)
      rc = coh__json_opt_bool(j, path, "add_prefix_space", &add_prefix_space,
                              err);
    if (!rc)
      rc = coh__json_opt_string(j, path, "prepend_scheme", &scheme, NULL, err);
    if (rc) return rc;
    d->prepend_scheme = add_prefix_space ? 0 : 2;
    if (scheme != NULL) {
      if (!strcmp(scheme, "always")) d->prepend_scheme = 0;
      else if (!strcmp(scheme, "first")) d->prepend_scheme = 1;
      else if (!strcmp(scheme, "never")) d->prepend_scheme = 2;
      else
        return coh__err(err, COH_EFORMAT,
                        "%s.prepend_scheme: unknown value \"%s\"", path,
                        scheme);
    }
    return COH_OK;
  }
  if (!strcmp(type, "WordPiece")) {
    const char *prefix = "##";
    size_t n = 2;
    d->type = COH__DEC_WORDPIECE;
    d->cleanup = 1;
    rc = coh__json_opt_string(j, path, "prefix", &prefix, &n, err);
    if (!rc) rc = coh__tok_check_len(path, "prefix", n, err);
    if (!rc) rc = coh__json_opt_bool(j, path, "cleanup", &d->cleanup, err);
    if (rc) return rc;
    d->str = coh__malloc(n + 1);
    if (d->str == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    memcpy(d->str, prefix, n);
    d->str[n] = '\0';
    d->str_len = n;
    return COH_OK;
  }
  return coh__err(err, COH_EUNSUPPORTED,
                  "%s.type: unsupported decoder type \"%s\"", path, type);
}

void coh__decoder_free(coh__decoder *d) {
  size_t i;
  for (i = 0; i < d->n_kids; i++) coh__decoder_free(&d->kids[i]);
  coh__free(d->kids);
  coh__free(d->str);
  coh__pattern_free(&d->pat);
  memset(d, 0, sizeof *d);
}

/* ---- the decoders --------------------------------------------------------- */

static void push_tok(coh__pieces *out, const char *s, size_t n) {
  size_t off = out->text.n;
  coh__buf_add(&out->text, s, n);
  coh__spans_push(&out->spans, off, out->text.n, 0);
}

/* Token i of a list (never NULL, even for an empty list buffer). */
static const char *tok_at(const coh__pieces *l, size_t i) {
  return l->text.p ? l->text.p + l->spans.v[i].start : "";
}
#define TOK(L, i) tok_at((L), (i))
#define TOKLEN(L, i) ((L)->spans.v[i].end - (L)->spans.v[i].start)

/* Every token's characters back to bytes (a token with a character outside
 * the byte-level alphabet keeps its own bytes, as HF), concatenated and
 * repaired to valid UTF-8. */
static void dec_bytelevel(const coh__pieces *in, coh__pieces *out,
                          const uint16_t *char_byte) {
  coh__buf raw = {0};
  size_t i;
  for (i = 0; i < in->spans.n; i++) {
    const char *t = TOK(in, i);
    size_t n = TOKLEN(in, i), k = 0, mark = raw.n;
    int ok = 1;
    while (k < n) {
      uint32_t cp;
      k += coh__utf8_next(t + k, n - k, &cp);
      if (cp >= 324 || char_byte[cp] == 0) {
        ok = 0;
        break;
      }
      coh__buf_addc(&raw, (char)(char_byte[cp] - 1));
    }
    if (!ok) {
      raw.n = mark;
      coh__buf_add(&raw, t, n);
    }
  }
  {
    size_t off = out->text.n;
    coh__utf8_repair(raw.p ? raw.p : "", raw.n, &out->text);
    coh__spans_push(&out->spans, off, out->text.n, 0);
  }
  if (raw.oom) out->text.oom = 1;
  coh__buf_free(&raw);
}

static int byte_token(const char *t, size_t n, unsigned char *b) {
  unsigned v = 0;
  size_t i;
  const char *digits;
  size_t nd;
  if (n != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return 0;
  /* Rust's u8::from_str_radix also accepts a leading '+'. */
  digits = t + 3;
  nd = 2;
  if (digits[0] == '+') digits++, nd = 1;
  for (i = 0; i < nd; i++) {
    char c = digits[i];
    v *= 16;
    if (c >= '0' && c <= '9') v += (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v += (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v += (unsigned)(c - 'A' + 10);
    else return 0;
  }
  *b = (unsigned char)v;
  return 1;
}

static void flush_bytes(coh__buf *bytes, coh__pieces *out) {
  size_t i, k = 0;
  int valid = 1;
  if (bytes->n == 0) return;
  while (k < bytes->n && valid) {
    size_t l = coh__utf8_valid_len((const unsigned char *)bytes->p + k,
                                   bytes->n - k);
    valid = l > 0;
    k += l;
  }
  if (valid) {
    push_tok(out, bytes->p, bytes->n);
  } else {
    /* HF: one U+FFFD per byte when the run is not valid UTF-8 */
    for (i = 0; i < bytes->n; i++) push_tok(out, "\xEF\xBF\xBD", 3);
  }
  bytes->n = 0;
}

static void dec_bytefallback(const coh__pieces *in, coh__pieces *out) {
  coh__buf bytes = {0};
  size_t i;
  for (i = 0; i < in->spans.n; i++) {
    unsigned char b;
    if (byte_token(TOK(in, i), TOKLEN(in, i), &b)) {
      coh__buf_addc(&bytes, (char)b);
      continue;
    }
    flush_bytes(&bytes, out);
    push_tok(out, TOK(in, i), TOKLEN(in, i));
  }
  flush_bytes(&bytes, out);
  if (bytes.oom) out->text.oom = 1;
  coh__buf_free(&bytes);
}

static void dec_strip(const coh__decoder *d, const coh__pieces *in,
                      coh__pieces *out) {
  size_t i;
  for (i = 0; i < in->spans.n; i++) {
    const char *t = TOK(in, i);
    size_t n = TOKLEN(in, i), a = 0, b = n, k;
    uint32_t cp;
    for (k = 0; k < d->start && a < b; k++) {
      size_t l = coh__utf8_next(t + a, b - a, &cp);
      if (cp != d->ch) break;
      a += l;
    }
    for (k = 0; k < d->stop && b > a; k++) {
      size_t l = coh__utf8_prev_len(t, b);
      coh__utf8_next(t + b - l, l, &cp);
      if (cp != d->ch) break;
      b -= l;
    }
    push_tok(out, t + a, b - a);
  }
}

static void dec_metaspace(const coh__decoder *d, const coh__pieces *in,
                          coh__pieces *out) {
  size_t i;
  for (i = 0; i < in->spans.n; i++) {
    const char *t = TOK(in, i);
    size_t n = TOKLEN(in, i), k = 0, off = out->text.n;
    while (k < n) {
      uint32_t cp;
      size_t l = coh__utf8_next(t + k, n - k, &cp);
      if (cp != d->ch)
        coh__buf_add(&out->text, t + k, l);
      else if (!(i == 0 && d->prepend_scheme != 2))
        coh__buf_addc(&out->text, ' ');
      k += l;
    }
    coh__spans_push(&out->spans, off, out->text.n, 0);
  }
}

static int dec_replace(const coh__decoder *d, const coh__pieces *in,
                       coh__pieces *out, size_t max) {
  size_t i, j;
  coh__spans m = {0};
  for (i = 0; i < in->spans.n; i++) {
    const char *t = TOK(in, i);
    size_t n = TOKLEN(in, i), last = 0, off = out->text.n;
    int rc;
    m.n = 0;
    rc = coh__pattern_find(&d->pat, t, n, &m);
    if (rc) {
      coh__spans_free(&m);
      return rc;
    }
    for (j = 0; j < m.n; j++) {
      coh__buf_add(&out->text, t + last, m.v[j].start - last);
      coh__buf_add(&out->text, d->str, d->str_len);
      last = m.v[j].end;
      if (out->text.n > max) {
        coh__spans_free(&m);
        return COH_ERANGE;
      }
    }
    coh__buf_add(&out->text, t + last, n - last);
    coh__spans_push(&out->spans, off, out->text.n, 0);
  }
  coh__spans_free(&m);
  return COH_OK;
}

/* HF's cleanup of English tokenization artefacts, applied per token: each
 * pattern replaced everywhere, in this order. */
static void cleanup_tok(const char *t, size_t n, coh__buf *out) {
  static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't",
                                     " 'm", " do not", " 's", " 've", " 're"};
  static const char *const to[] = {".", "?", "!", ",", "'", "n't",
                                   "'m", " don't", "'s", "'ve", "'re"};
  coh__buf a = {0}, b = {0}, tmp;
  size_t k;
  coh__buf_add(&a, t, n);
  for (k = 0; k < sizeof from / sizeof from[0]; k++) {
    size_t fl = strlen(from[k]), i = 0;
    b.n = 0;
    while (i < a.n) {
      if (a.n - i >= fl && memcmp(a.p + i, from[k], fl) == 0) {
        coh__buf_add(&b, to[k], strlen(to[k]));
        i += fl;
      } else {
        coh__buf_addc(&b, a.p[i++]);
      }
    }
    tmp = a;
    a = b;
    b = tmp;
  }
  coh__buf_add(out, a.p, a.n);
  if (a.oom || b.oom) out->oom = 1;
  coh__buf_free(&a);
  coh__buf_free(&b);
}

/* WordPiece: a token after the first loses its prefix, or gains a leading
 * space when it has none; then cleanup. */
static void dec_wordpiece(const coh__decoder *d, const coh__pieces *in,
                          coh__pieces *out) {
  coh__buf t = {0};
  size_t i;
  for (i = 0; i < in->spans.n; i++) {
    const char *s = TOK(in, i);
    size_t n = TOKLEN(in, i), off = out->text.n;
    t.n = 0;
    if (i > 0) {
      if (n >= d->str_len && memcmp(s, d->str, d->str_len) == 0) {
        s += d->str_len;
        n -= d->str_len;
      } else {
        coh__buf_addc(&t, ' ');
      }
    }
    coh__buf_add(&t, s, n);
    if (d->cleanup)
      cleanup_tok(t.p ? t.p : "", t.n, &out->text);
    else
      coh__buf_add(&out->text, t.p, t.n);
    coh__spans_push(&out->spans, off, out->text.n, 0);
  }
  if (t.oom) out->text.oom = 1;
  coh__buf_free(&t);
}

/* One decoder (or Sequence) over toks, in place; no step's text may pass
 * max bytes. */
static int chain(const coh__decoder *d, coh__pieces *toks,
                 const uint16_t *char_byte, size_t max) {
  coh__pieces out = {0};
  size_t i;
  int rc = COH_OK;
  switch (d->type) {
    case COH__DEC_SEQUENCE:
      for (i = 0; i < d->n_kids && rc == COH_OK; i++)
        rc = chain(&d->kids[i], toks, char_byte, max);
      return rc;
    case COH__DEC_BYTELEVEL:
      dec_bytelevel(toks, &out, char_byte);
      break;
    case COH__DEC_BYTEFALLBACK:
      dec_bytefallback(toks, &out);
      break;
    case COH__DEC_FUSE: {
      size_t off = 0;
      for (i = 0; i < toks->spans.n; i++)
        coh__buf_add(&out.text, TOK(toks, i), TOKLEN(toks, i));
      coh__spans_push(&out.spans, off, out.text.n, 0);
      break;
    }
    case COH__DEC_STRIP:
      dec_strip(d, toks, &out);
      break;
    case COH__DEC_METASPACE:
      dec_metaspace(d, toks, &out);
      break;
    case COH__DEC_REPLACE:
      rc = dec_replace(d, toks, &out, max);
      break;
    case COH__DEC_WORDPIECE:
      dec_wordpiece(d, toks, &out);
      break;
  }
  if (rc == COH_OK && (out.text.oom || out.spans.oom)) rc = COH_ENOMEM;
  if (rc == COH_OK && out.text.n > max) rc = COH_ERANGE;
  if (rc) {
    coh__pieces_free(&out);
    return rc;
  }
  coh__pieces_free(toks);
  *toks = out;
  return COH_OK;
}

int coh__decode_chain(const coh__decoder *d, coh__pieces *toks,
                      const uint16_t *char_byte) {
  return chain(d, toks, char_byte, coh__tok_out_max(toks->text.n));
}

/* ---- public --------------------------------------------------------------- */

int coh_tokenizer_decode(const coh_tokenizer *tok, const int32_t *ids,
                         size_t n_ids, int skip_special, char **text,
                         size_t *len, coh_err *err) {
  coh__pieces toks = {0};
  coh__buf out = {0};
  size_t i;
  int rc = COH_OK;
  *text = NULL;
  if (len) *len = 0;
  for (i = 0; i < n_ids; i++) {
    size_t n;
    const char *s = coh__token_str(tok, ids[i], &n);
    if (s == NULL) {
      rc = coh__err(err, COH_ERANGE,
                    "decode: id %ld at position %zu is out of range (vocab "
                    "size %zu)",
                    (long)ids[i], i, tok->n_ids);
      goto done;
    }
    if (skip_special && coh_tokenizer_is_special(tok, ids[i])) continue;
    push_tok(&toks, s, n);
  }
  if (toks.text.oom || toks.spans.oom) goto oom;
  if (tok->has_dec) {
    size_t in_bytes = toks.text.n;
    rc = coh__decode_chain(&tok->dec, &toks, tok->char_byte);
    if (rc == COH_ERANGE) {
      rc = coh__err(err, COH_ERANGE,
                    "decode: the tokenizer's decoder turns %zu bytes of "
                    "tokens into more than %zu; expected at most %d times "
                    "the input plus %d bytes",
                    in_bytes, coh__tok_out_max(in_bytes),
                    COH__TOK_GROWTH, COH__TOK_SLACK);
      goto done;
    }
    if (rc) goto oom;
    for (i = 0; i < toks.spans.n; i++)
      coh__buf_add(&out, TOK(&toks, i), TOKLEN(&toks, i));
  } else {
    /* no decoder: HF joins the tokens with spaces */
    for (i = 0; i < toks.spans.n; i++) {
      if (i) coh__buf_addc(&out, ' ');
      coh__buf_add(&out, TOK(&toks, i), TOKLEN(&toks, i));
    }
  }
  coh__buf_add(&out, "", 0);
  if (out.oom) goto oom;
  *text = out.p;
  if (len) *len = out.n;
  out.p = NULL;
  goto done;
oom:
  rc = coh__err(err, COH_ENOMEM, "decode: out of memory");
done:
  coh__buf_free(&out);
  coh__pieces_free(&toks);
  return rc;
}
