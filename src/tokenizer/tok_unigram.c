/* tok_unigram.c — the Unigram model (SentencePiece's, as in T5, ALBERT,
 * XLM-R when converted to tokenizer.json): vocab of [piece, score] pairs
 * and the encoding of one word.
 *
 * Encoding is HF's Unigram::encode_optimized: a Viterbi search over byte
 * positions, where an edge is a vocab piece starting at a character
 * boundary (score: its log probability) or, for a character no single-
 * character piece covers, the unk piece (score: the lowest score minus 10).
 * Ties keep the first candidate found (shorter pieces first).  Walking the
 * best path back, adjacent unk pieces are fused into one.  A resulting
 * piece outside the vocab (only unk pieces can be) becomes its
 * <0xXX> byte tokens with byte_fallback, or the unk id.  Candidate pieces
 * are never longer than the longest vocab entry, so a word of n bytes
 * costs O(n × longest entry) lookups. */
#include <string.h>

#include "tokenizer_int.h"

#define UNK_PENALTY 10.0

int coh__unigram_parse(json_t *model, coh__bpe *ug, coh_err *err) {
  json_t *vocab, *unk;
  size_t i, total = 0, off = 0, n;
  double min_score = 0.0;
  int rc;
  ug->kind = COH__MODEL_UNIGRAM;
  ug->unk_id = -1;
  for (i = 0; i < 256; i++) ug->byte_ids[i] = -1;
  rc = coh__json_member(model, "model", "vocab", &vocab, err);
  if (!rc)
    rc = coh__json_opt_bool(model, "model", "byte_fallback",
                            &ug->byte_fallback, err);
  if (rc) return rc;
  if (!json_is_array(vocab))
    return coh__err(err, COH_EFORMAT,
                    "model.vocab: expected a list of [piece, score]");
  n = json_array_size(vocab);
  if (n >= INT32_MAX - 1)
    return coh__err(err, COH_EFORMAT, "model.vocab: too many pieces");
  for (i = 0; i < n; i++) {
    json_t *e = json_array_get(vocab, i);
    if (!json_is_array(e) || json_array_size(e) != 2 ||
        !json_is_string(json_array_get(e, 0)) ||
        !json_is_number(json_array_get(e, 1)))
      return coh__err(err, COH_EFORMAT,
                      "model.vocab[%zu]: expected [piece (string), score "
                      "(number)]",
                      i);
    if (json_string_length(json_array_get(e, 0)) > COH__TOK_PIECE_MAX)
      return coh__err(err, COH_EUNSUPPORTED,
                      "model.vocab[%zu]: a piece of %zu bytes; Unigram "
                      "pieces may have at most %d",
                      i, json_string_length(json_array_get(e, 0)),
                      COH__TOK_PIECE_MAX);
    total += json_string_length(json_array_get(e, 0)) + 1;
  }
  unk = json_object_get(model, "unk_id");
  if (unk != NULL && !json_is_null(unk)) {
    if (!json_is_integer(unk) || json_integer_value(unk) < 0 ||
        (size_t)json_integer_value(unk) >= n)
      return coh__err(err, COH_EFORMAT,
                      "model.unk_id: expected an index into model.vocab "
                      "(0..%zu)",
                      n ? n - 1 : 0);
    ug->unk_id = (int32_t)json_integer_value(unk);
  }
  ug->n_ids = n;
  ug->arena = coh__malloc(total + 1);
  ug->id_to_tok = coh__calloc(n + 1, sizeof *ug->id_to_tok);
  ug->tok_len = coh__calloc(n + 1, sizeof *ug->tok_len);
  ug->scores = coh__calloc(n + 1, sizeof *ug->scores);
  if (ug->arena == NULL || ug->id_to_tok == NULL || ug->tok_len == NULL ||
      ug->scores == NULL || coh__vocab_init(&ug->vocab, n))
    return coh__err(err, COH_ENOMEM, "out of memory loading model.vocab");
  for (i = 0; i < n; i++) {
    json_t *e = json_array_get(vocab, i);
    const char *p = json_string_value(json_array_get(e, 0));
    size_t len = json_string_length(json_array_get(e, 0));
    char *dst = ug->arena + off;
    memcpy(dst, p, len);
    dst[len] = '\0';
    off += len + 1;
    /* a repeated piece maps to its last id, as HF's token_to_ids */
    if (coh__vocab_put(&ug->vocab, dst, len, (int32_t)i))
      return coh__err(err, COH_ENOMEM, "out of memory loading model.vocab");
    ug->id_to_tok[i] = dst;
    ug->tok_len[i] = (uint32_t)len;
    ug->scores[i] = json_number_value(json_array_get(e, 1));
    if (i == 0 || ug->scores[i] < min_score) min_score = ug->scores[i];
    if (len > ug->max_tok_len) ug->max_tok_len = len;
  }
  ug->unk_score = min_score - UNK_PENALTY;
  for (i = 0; i < 256; i++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", (unsigned)i);
    ug->byte_ids[i] = coh__vocab_get(&ug->vocab, name, 6);
  }
  return COH_OK;
}

struct node {
  double score;
  size_t start; /* SIZE_MAX: not reached */
  int32_t id;
};

/* Appends the ids of piece w[a..b) (fused unk pieces may be outside the
 * vocab). */
static void push_piece(const coh__bpe *ug, const char *w, size_t a, size_t b,
                       coh__ids *out) {
  int32_t id = coh__vocab_get(&ug->vocab, w + a, b - a);
  size_t i;
  if (id >= 0) {
    coh__ids_push(out, id);
    return;
  }
  if (ug->byte_fallback) {
    for (i = a; i < b && ug->byte_ids[(unsigned char)w[i]] >= 0; i++) {
    }
    if (i == b) {
      for (i = a; i < b; i++)
        coh__ids_push(out, ug->byte_ids[(unsigned char)w[i]]);
      return;
    }
  }
  if (ug->unk_id >= 0) coh__ids_push(out, ug->unk_id);
}

int coh__unigram_encode(const coh__bpe *ug, const char *w, size_t n,
                        coh__ids *out) {
  struct node *best;
  size_t *cuts = NULL, n_cuts = 0, pos, i;
  int rc = COH_OK;
  if (n == 0) return COH_OK;
  best = coh__malloc((n + 1) * sizeof *best);
  cuts = coh__malloc((n + 1) * sizeof *cuts);
  if (best == NULL || cuts == NULL) {
    rc = COH_ENOMEM;
    goto done;
  }
  for (i = 0; i <= n; i++) {
    best[i].score = 0.0;
    best[i].start = SIZE_MAX;
    best[i].id = -1;
  }
  best[0].start = 0;
  for (pos = 0; pos < n;) {
    uint32_t cp;
    size_t mblen = coh__utf8_next(w + pos, n - pos, &cp), len;
    double here = best[pos].score;
    int single = 0;
    for (len = 1; len <= ug->max_tok_len && pos + len <= n; len++) {
      int32_t id = coh__vocab_get(&ug->vocab, w + pos, len);
      double cand;
      if (id < 0) continue;
      cand = ug->scores[id] + here;
      if (best[pos + len].start == SIZE_MAX || cand > best[pos + len].score) {
        best[pos + len].score = cand;
        best[pos + len].start = pos;
        best[pos + len].id = id;
      }
      if (len == mblen) single = 1;
    }
    if (!single) {
      double cand = ug->unk_score + here;
      if (best[pos + mblen].start == SIZE_MAX ||
          cand > best[pos + mblen].score) {
        best[pos + mblen].score = cand;
        best[pos + mblen].start = pos;
        best[pos + mblen].id = ug->unk_id; /* -1 without an unk piece */
      }
    }
    pos += mblen;
  }
  /* The best path's piece ends, found from the end backwards, then walked
   * forwards; runs of unk pieces are fused (HF fuses only when the model
   * has an unk id). */
  {
    size_t k, run_start = SIZE_MAX, end_prev = 0;
    for (pos = n; pos > 0; pos = best[pos].start) cuts[n_cuts++] = pos;
    for (k = n_cuts; k-- > 0;) {
      size_t end = cuts[k], start = end_prev;
      int32_t id = best[end].id;
      int unk = id < 0 || (ug->unk_id >= 0 && id == ug->unk_id);
      if (unk && ug->unk_id >= 0) {
        if (run_start == SIZE_MAX) run_start = start;
      } else {
        if (run_start != SIZE_MAX) {
          push_piece(ug, w, run_start, start, out);
          run_start = SIZE_MAX;
        }
        if (id >= 0 && !unk)
          coh__ids_push(out, id);
        else
          push_piece(ug, w, start, end, out);
      }
      end_prev = end;
    }
    if (run_start != SIZE_MAX) push_piece(ug, w, run_start, n, out);
  }
  if (out->oom) rc = COH_ENOMEM;
done:
  coh__free(best);
  coh__free(cuts);
  return rc;
}
