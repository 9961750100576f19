/* tok_wordpiece.c — the WordPiece model (BERT and its embedding-model
 * descendants): vocab from tokenizer.json and the encoding of one word;
 * and WordLevel (a word is one vocab entry), which shares its fields.
 *
 * Encoding is HF's greedy longest-match-first: from the start of the word,
 * take the longest prefix that is in the vocab, then continue after it
 * with continuing_subword_prefix ("##") prepended to every later piece.  A
 * word with a piece that matches nothing, or longer than
 * max_input_chars_per_word characters, becomes a single unk token.  The
 * candidate pieces are never longer than the longest vocab entry, so one
 * word costs O(length × longest entry) lookups. */
#include <string.h>

#include "tokenizer_int.h"

int coh__wordpiece_parse(json_t *model, coh__bpe *wp, coh_err *err) {
  const char *unk = "[UNK]", *prefix = "##";
  size_t unk_len = 5, prefix_len = 2, i;
  int64_t max_chars = 100;
  int rc;
  wp->kind = COH__MODEL_WORDPIECE;
  for (i = 0; i < 256; i++) wp->byte_ids[i] = -1;
  rc = coh__json_opt_string(model, "model", "unk_token", &unk, &unk_len, err);
  if (!rc)
    rc = coh__json_opt_string(model, "model", "continuing_subword_prefix",
                              &prefix, &prefix_len, err);
  if (!rc) rc = coh__tok_check_len("model", "continuing_subword_prefix",
                                   prefix_len, err);
  if (!rc)
    rc = coh__json_opt_int(model, "model", "max_input_chars_per_word", 0,
                           INT32_MAX, &max_chars, err);
  if (!rc) rc = coh__model_load_vocab(model, wp, err);
  if (rc) return rc;
  wp->max_chars = (size_t)max_chars;
  wp->prefix = coh__malloc(prefix_len + 1);
  if (wp->prefix == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  memcpy(wp->prefix, prefix, prefix_len);
  wp->prefix[prefix_len] = '\0';
  wp->prefix_len = prefix_len;
  /* HF fails at encode time when the unk token is not in the vocab; cohort
   * drops what would have been unk, as for BPE. */
  wp->unk_id = coh__vocab_get(&wp->vocab, unk, unk_len);
  for (i = 0; i < wp->n_ids; i++) {
    if (wp->id_to_tok[i] == NULL) continue;
    if (wp->tok_len[i] > COH__TOK_PIECE_MAX)
      return coh__err(err, COH_EUNSUPPORTED,
                      "model.vocab.\"%.40s...\": a piece of %u bytes; "
                      "WordPiece pieces may have at most %d",
                      wp->id_to_tok[i], (unsigned)wp->tok_len[i],
                      COH__TOK_PIECE_MAX);
    if (wp->tok_len[i] > wp->max_tok_len) wp->max_tok_len = wp->tok_len[i];
  }
  return COH_OK;
}

int coh__wordlevel_parse(json_t *model, coh__bpe *wl, coh_err *err) {
  const char *unk = "<unk>";
  size_t unk_len = 5, i;
  int rc;
  wl->kind = COH__MODEL_WORDLEVEL;
  for (i = 0; i < 256; i++) wl->byte_ids[i] = -1;
  rc = coh__json_opt_string(model, "model", "unk_token", &unk, &unk_len, err);
  if (!rc) rc = coh__model_load_vocab(model, wl, err);
  if (rc) return rc;
  wl->unk_id = coh__vocab_get(&wl->vocab, unk, unk_len);
  return COH_OK;
}

static int push_unk(const coh__bpe *wp, coh__ids *out) {
  if (wp->unk_id >= 0) coh__ids_push(out, wp->unk_id);
  return out->oom ? COH_ENOMEM : COH_OK;
}

int coh__wordpiece_encode(const coh__bpe *wp, const char *w, size_t n,
                          coh__ids *out) {
  size_t start = 0, chars = 0, i, mark = out->n;
  coh__buf cand = {0};
  int rc = COH_OK;
  if (n == 0) return COH_OK;
  for (i = 0; i < n; i += coh__utf8_next(w + i, n - i, &(uint32_t){0}))
    if (++chars > wp->max_chars) return push_unk(wp, out);
  while (start < n) {
    size_t end = n, room = wp->max_tok_len;
    int32_t id = -1;
    if (start > 0) room = room > wp->prefix_len ? room - wp->prefix_len : 0;
    /* the longest candidate that can be in the vocab, on a character
     * boundary */
    if (end - start > room) {
      end = start + room;
      while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80) end--;
    }
    while (end > start) {
      if (start > 0) {
        cand.n = 0;
        coh__buf_add(&cand, wp->prefix, wp->prefix_len);
        coh__buf_add(&cand, w + start, end - start);
        if (cand.oom) {
          rc = COH_ENOMEM;
          goto done;
        }
        id = coh__vocab_get(&wp->vocab, cand.p, cand.n);
      } else {
        id = coh__vocab_get(&wp->vocab, w, end);
      }
      if (id >= 0) break;
      end -= coh__utf8_prev_len(w, end);
    }
    if (id < 0) { /* a piece matches nothing: the whole word is unk */
      out->n = mark;
      rc = push_unk(wp, out);
      goto done;
    }
    coh__ids_push(out, id);
    start = end;
  }
  if (out->oom) rc = COH_ENOMEM;
done:
  coh__buf_free(&cand);
  return rc;
}
