/* tok_encode.c — coh_tokenizer_encode: the pipeline of tokenizer_int.h,
 * run in call-local buffers. */
#include <string.h>

#include "tokenizer_int.h"

typedef struct enc_ctx {
  const coh_tokenizer *tok;
  const char *over; /* the component that passed its output bound */
  size_t over_in;   /* ... and the bytes it was given */
  coh__buf normed;
  coh__spans segs2;
  coh__pieces words, pre_in;
  coh__bpe_scratch scratch;
  coh__ids *out;
} enc_ctx;

/* Runs the pre-tokenizer and the model on one normalized piece. */
static int encode_piece(enc_ctx *c, const char *s, size_t n, int at_start) {
  const coh_tokenizer *tok = c->tok;
  size_t i;
  int rc;
  if (n == 0) return COH_OK;
  if (!tok->has_pre) return coh__bpe_encode(&tok->bpe, s, n, &c->scratch, c->out);
  coh__pieces_clear(&c->pre_in);
  coh__buf_add(&c->pre_in.text, s, n);
  coh__spans_push(&c->pre_in.spans, 0, n, at_start);
  if (c->pre_in.text.oom || c->pre_in.spans.oom) return COH_ENOMEM;
  rc = coh__pretokenize(&tok->pre, &c->pre_in, &c->words,
                        (const char(*)[4])tok->byte_chars);
  if (rc == COH_ERANGE) {
    c->over = "pre_tokenizer";
    c->over_in = n;
  }
  for (i = 0; rc == COH_OK && i < c->words.spans.n; i++)
    rc = coh__bpe_encode(&tok->bpe, c->words.text.p + c->words.spans.v[i].start,
                         c->words.spans.v[i].end - c->words.spans.v[i].start,
                         &c->scratch, c->out);
  return rc;
}

/* One segment of the input that is not a raw added token: normalize, split
 * out normalized added tokens, encode the rest. */
static int encode_segment(enc_ctx *c, const char *s, size_t n, int at_start) {
  const coh_tokenizer *tok = c->tok;
  size_t i;
  int rc;
  if (tok->has_norm) {
    rc = coh__normalize(&tok->norm, s, n, &c->normed);
    if (rc == COH_ERANGE) {
      c->over = "normalizer";
      c->over_in = n;
    }
    if (rc) return rc;
    s = c->normed.p ? c->normed.p : "";
    n = c->normed.n;
  }
  if (!tok->added.has_norm) return encode_piece(c, s, n, at_start);
  c->segs2.n = 0;
  rc = coh__added_split(&tok->added, &tok->added.norm, s, n, 0, &c->segs2);
  for (i = 0; rc == COH_OK && i < c->segs2.n; i++) {
    const coh__span *sp = &c->segs2.v[i];
    if (sp->val >= 0)
      coh__ids_push(c->out, sp->val);
    else
      rc = encode_piece(c, s + sp->start, sp->end - sp->start,
                        at_start && sp->start == 0);
  }
  return rc;
}

int coh_tokenizer_encode(const coh_tokenizer *tok, const char *text,
                         size_t len, int add_special, int32_t **ids,
                         size_t *n_ids, coh_err *err) {
  enc_ctx c;
  coh__buf fixed = {0};
  coh__spans segs = {0};
  coh__ids out = {0};
  size_t i;
  int rc = COH_OK;
  *ids = NULL;
  *n_ids = 0;
  memset(&c, 0, sizeof c);
  c.tok = tok;
  c.out = &out;
  if (text == NULL) len = 0;
  /* Invalid UTF-8 is repaired up front, so that every later stage (PCRE2
   * included) sees valid text. */
  if (len > 0 && !coh__utf8_repair(text, len, &fixed)) {
    if (fixed.oom) goto oom;
    text = fixed.p;
    len = fixed.n;
  }
  if (tok->added.has_raw) {
    rc = coh__added_split(&tok->added, &tok->added.raw, text, len, 0, &segs);
    for (i = 0; rc == COH_OK && i < segs.n; i++) {
      if (segs.v[i].val >= 0)
        coh__ids_push(&out, segs.v[i].val);
      else
        rc = encode_segment(&c, text + segs.v[i].start,
                            segs.v[i].end - segs.v[i].start,
                            segs.v[i].start == 0);
    }
  } else if (len > 0) {
    rc = encode_segment(&c, text, len, 1);
  }
  if (rc == COH_OK && out.oom) rc = COH_ENOMEM;
  if (rc == COH_OK && add_special && tok->has_post)
    rc = coh__post_apply(&tok->post, &out);
  if (rc == COH_ERANGE && c.over != NULL) {
    rc = coh__err(err, COH_ERANGE,
                  "encode: the tokenizer's %s turns %zu bytes of text into "
                  "more than %zu; expected at most %d times the input plus "
                  "%d bytes (tokenizer.json field '%s')",
                  c.over, c.over_in, coh__tok_out_max(c.over_in),
                  COH__TOK_GROWTH, COH__TOK_SLACK, c.over);
    goto done;
  }
  if (rc) goto oom;
  *ids = out.v;
  *n_ids = out.n;
  out.v = NULL;
  goto done;
oom:
  rc = coh__err(err, COH_ENOMEM, "encode: out of memory");
done:
  coh__ids_free(&out);
  coh__buf_free(&fixed);
  coh__spans_free(&segs);
  coh__buf_free(&c.normed);
  coh__spans_free(&c.segs2);
  coh__pieces_free(&c.words);
  coh__pieces_free(&c.pre_in);
  coh__bpe_scratch_free(&c.scratch);
  return rc;
}
