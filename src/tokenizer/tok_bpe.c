/* tok_bpe.c — the BPE model: vocab and merges from tokenizer.json, and the
 * encoding of one word.
 *
 * Encoding follows HF's Word::merge_all: start from one symbol per
 * character (with byte fallback or unk for characters outside the vocab),
 * then repeatedly merge the adjacent pair of lowest rank, leftmost first.
 * A binary heap of (rank, position) with lazy invalidation makes this
 * O(n log n) in the word length, which matters because SentencePiece-style
 * tokenizers without a pre-tokenizer hand the whole text over as one word. */
#include <stdio.h>
#include <string.h>

#include "tokenizer_int.h"

struct coh__bpe_sym {
  int32_t id;
  int32_t prev, next; /* -1 at the ends */
  int alive;
};

struct coh__bpe_item {
  uint32_t rank;
  uint32_t pos;
};

/* ---- loading -------------------------------------------------------------- */

static int split_merge(json_t *m, const char *path, const char **a,
                       size_t *alen, const char **b, size_t *blen,
                       coh_err *err) {
  if (json_is_string(m)) {
    /* legacy form "a b": the first space separates the two tokens */
    const char *s = json_string_value(m);
    size_t n = json_string_length(m);
    const char *sp = memchr(s, ' ', n);
    if (sp == NULL)
      return coh__err(err, COH_EFORMAT,
                      "%s: expected \"left right\" (two tokens separated by "
                      "a space)",
                      path);
    *a = s;
    *alen = (size_t)(sp - s);
    *b = sp + 1;
    *blen = n - *alen - 1;
    return COH_OK;
  }
  if (json_is_array(m) && json_array_size(m) == 2 &&
      json_is_string(json_array_get(m, 0)) &&
      json_is_string(json_array_get(m, 1))) {
    *a = json_string_value(json_array_get(m, 0));
    *alen = json_string_length(json_array_get(m, 0));
    *b = json_string_value(json_array_get(m, 1));
    *blen = json_string_length(json_array_get(m, 1));
    return COH_OK;
  }
  return coh__err(err, COH_EFORMAT,
                  "%s: expected a string \"left right\" or a pair of strings",
                  path);
}

int coh__model_load_vocab(json_t *model, coh__bpe *bpe, coh_err *err) {
  json_t *vocab, *v;
  const char *key;
  size_t total = 0, off = 0, max_id = 0;
  int rc;
  rc = coh__json_member(model, "model", "vocab", &vocab, err);
  if (rc) return rc;
  if (!json_is_object(vocab))
    return coh__err(err, COH_EFORMAT, "model.vocab: expected an object");
  json_object_foreach(vocab, key, v) {
    json_int_t id;
    if (!json_is_integer(v) || (id = json_integer_value(v)) < 0 ||
        id >= INT32_MAX - 1)
      return coh__err(err, COH_EFORMAT,
                      "model.vocab.\"%.100s\": expected an id (integer in "
                      "[0, 2^31-2])",
                      key);
    if ((size_t)id > max_id) max_id = (size_t)id;
    total += strlen(key) + 1;
  }
  bpe->n_ids = json_object_size(vocab) ? max_id + 1 : 0;
  if (bpe->n_ids > 16 * json_object_size(vocab) + 1024)
    return coh__err(err, COH_EFORMAT,
                    "model.vocab: ids are too sparse (largest %zu for %zu "
                    "tokens)",
                    max_id, json_object_size(vocab));
  bpe->arena = coh__malloc(total + 1);
  bpe->id_to_tok = coh__calloc(bpe->n_ids + 1, sizeof *bpe->id_to_tok);
  bpe->tok_len = coh__calloc(bpe->n_ids + 1, sizeof *bpe->tok_len);
  if (bpe->arena == NULL || bpe->id_to_tok == NULL || bpe->tok_len == NULL ||
      coh__vocab_init(&bpe->vocab, json_object_size(vocab)))
    return coh__err(err, COH_ENOMEM, "out of memory loading model.vocab");
  json_object_foreach(vocab, key, v) {
    size_t n = strlen(key);
    int32_t id = (int32_t)json_integer_value(v);
    char *dst = bpe->arena + off;
    memcpy(dst, key, n + 1);
    off += n + 1;
    if (coh__vocab_put(&bpe->vocab, dst, n, id))
      return coh__err(err, COH_ENOMEM, "out of memory loading model.vocab");
    bpe->id_to_tok[id] = dst;
    bpe->tok_len[id] = (uint32_t)n;
  }
  return COH_OK;
}

static int load_merges(json_t *model, coh__bpe *bpe, coh_err *err) {
  json_t *merges;
  coh__buf cat = {0};
  size_t i;
  int rc = COH_OK;
  rc = coh__json_member(model, "model", "merges", &merges, err);
  if (rc) return rc;
  if (!json_is_array(merges))
    return coh__err(err, COH_EFORMAT, "model.merges: expected an array");
  if (json_array_size(merges) >= UINT32_MAX)
    return coh__err(err, COH_EFORMAT, "model.merges: too many merges");
  if (coh__merges_init(&bpe->merges, json_array_size(merges)))
    return coh__err(err, COH_ENOMEM, "out of memory loading model.merges");
  for (i = 0; i < json_array_size(merges); i++) {
    char path[COH__PATH_MAX];
    const char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    int32_t ia, ib, inew;
    coh__path_index(path, "model.merges", i);
    rc = split_merge(json_array_get(merges, i), path, &a, &alen, &b, &blen,
                     err);
    if (rc) break;
    ia = coh__vocab_get(&bpe->vocab, a, alen);
    ib = coh__vocab_get(&bpe->vocab, b, blen);
    if (ia < 0 || ib < 0) {
      rc = coh__err(err, COH_EFORMAT, "%s: token \"%.*s\" is not in model.vocab",
                    path, (int)(ia < 0 ? (alen > 100 ? 100 : alen)
                                       : (blen > 100 ? 100 : blen)),
                    ia < 0 ? a : b);
      break;
    }
    /* The merged token drops the right side's continuing_subword_prefix. */
    if (bpe->prefix_len && blen >= bpe->prefix_len &&
        memcmp(b, bpe->prefix, bpe->prefix_len) == 0) {
      b += bpe->prefix_len;
      blen -= bpe->prefix_len;
    }
    cat.n = 0;
    coh__buf_add(&cat, a, alen);
    coh__buf_add(&cat, b, blen);
    if (cat.oom) {
      rc = coh__err(err, COH_ENOMEM, "out of memory loading model.merges");
      break;
    }
    inew = coh__vocab_get(&bpe->vocab, cat.p, cat.n);
    if (inew < 0) {
      rc = coh__err(err, COH_EFORMAT,
                    "%s: merged token \"%.*s\" is not in model.vocab", path,
                    (int)(cat.n > 100 ? 100 : cat.n), cat.p);
      break;
    }
    if (coh__merges_put(&bpe->merges, ia, ib, (uint32_t)i, inew)) {
      rc = coh__err(err, COH_ENOMEM, "out of memory loading model.merges");
      break;
    }
  }
  coh__buf_free(&cat);
  return rc;
}

static int opt_affix(json_t *model, const char *key, char **out, size_t *len,
                     coh_err *err) {
  const char *s = NULL;
  size_t n = 0;
  int rc = coh__json_opt_string(model, "model", key, &s, &n, err);
  if (rc || s == NULL || n == 0) return rc;
  *out = coh__malloc(n + 1);
  if (*out == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  memcpy(*out, s, n + 1);
  *len = n;
  return COH_OK;
}

int coh__bpe_parse(json_t *model, coh__bpe *bpe, coh_err *err) {
  const char *type = NULL, *unk = NULL;
  size_t unk_len = 0;
  json_t *dropout;
  int rc, b;
  memset(bpe, 0, sizeof *bpe);
  bpe->unk_id = -1;
  if (!json_is_object(model))
    return coh__err(err, COH_EFORMAT, "model: expected an object");
  rc = coh__json_opt_string(model, "model", "type", &type, NULL, err);
  if (rc) return rc;
  if (type == NULL) {
    /* Files without "type": HF tells the models apart by their fields. */
    if (json_object_get(model, "merges") != NULL) type = "BPE";
    else if (json_object_get(model, "max_input_chars_per_word") != NULL)
      type = "WordPiece";
    else if (json_is_array(json_object_get(model, "vocab")))
      type = "Unigram";
    else
      return coh__err(err, COH_EUNSUPPORTED,
                      "model: unsupported model (no \"type\", and neither "
                      "BPE's merges nor WordPiece's fields)");
  }
  if (!strcmp(type, "WordPiece")) return coh__wordpiece_parse(model, bpe, err);
  if (!strcmp(type, "Unigram")) return coh__unigram_parse(model, bpe, err);
  if (!strcmp(type, "WordLevel")) return coh__wordlevel_parse(model, bpe, err);
  if (strcmp(type, "BPE") != 0)
    return coh__err(err, COH_EUNSUPPORTED,
                    "model.type: unsupported model type \"%s\" (supported: "
                    "BPE, WordPiece, Unigram, WordLevel)",
                    type);
  dropout = json_object_get(model, "dropout");
  if (dropout != NULL && !json_is_null(dropout)) {
    if (!json_is_number(dropout))
      return coh__err(err, COH_EFORMAT, "model.dropout: expected a number");
    /* Dropout makes encoding random: refused, cohort must be replayable. */
    if (json_number_value(dropout) > 0.0)
      return coh__err(err, COH_EUNSUPPORTED,
                      "model.dropout: BPE dropout %g is not supported",
                      json_number_value(dropout));
  }
  rc = coh__json_opt_bool(model, "model", "fuse_unk", &bpe->fuse_unk, err);
  if (!rc)
    rc = coh__json_opt_bool(model, "model", "byte_fallback",
                            &bpe->byte_fallback, err);
  if (!rc)
    rc = coh__json_opt_bool(model, "model", "ignore_merges",
                            &bpe->ignore_merges, err);
  if (!rc)
    rc = opt_affix(model, "continuing_subword_prefix", &bpe->prefix,
                   &bpe->prefix_len, err);
  if (!rc)
    rc = opt_affix(model, "end_of_word_suffix", &bpe->suffix, &bpe->suffix_len,
                   err);
  if (!rc) rc = coh__json_opt_string(model, "model", "unk_token", &unk,
                                     &unk_len, err);
  if (!rc) rc = coh__model_load_vocab(model, bpe, err);
  if (!rc) rc = load_merges(model, bpe, err);
  if (rc) return rc;
  /* An unk token missing from the vocab is treated as no unk token (HF
   * would fail at encode time instead). */
  if (unk != NULL) bpe->unk_id = coh__vocab_get(&bpe->vocab, unk, unk_len);
  for (b = 0; b < 256; b++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    bpe->byte_ids[b] = coh__vocab_get(&bpe->vocab, name, 6);
  }
  return COH_OK;
}

void coh__bpe_free(coh__bpe *bpe) {
  coh__vocab_free(&bpe->vocab);
  coh__merges_free(&bpe->merges);
  coh__free(bpe->id_to_tok);
  coh__free(bpe->tok_len);
  coh__free(bpe->arena);
  coh__free(bpe->prefix);
  coh__free(bpe->suffix);
  coh__free(bpe->scores);
  memset(bpe, 0, sizeof *bpe);
}

void coh__bpe_scratch_free(coh__bpe_scratch *s) {
  coh__free(s->syms);
  coh__free(s->heap);
  coh__buf_free(&s->tmp);
  memset(s, 0, sizeof *s);
}

/* ---- encoding ------------------------------------------------------------- */

static int item_less(const struct coh__bpe_item *a,
                     const struct coh__bpe_item *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct coh__bpe_item *h, size_t *n, uint32_t rank,
                      uint32_t pos) {
  size_t i = (*n)++;
  h[i].rank = rank;
  h[i].pos = pos;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    struct coh__bpe_item t;
    if (!item_less(&h[i], &h[p])) break;
    t = h[i];
    h[i] = h[p];
    h[p] = t;
    i = p;
  }
}

static struct coh__bpe_item heap_pop(struct coh__bpe_item *h, size_t *n) {
  struct coh__bpe_item top = h[0];
  size_t i = 0;
  h[0] = h[--(*n)];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    struct coh__bpe_item t;
    if (l < *n && item_less(&h[l], &h[m])) m = l;
    if (r < *n && item_less(&h[r], &h[m])) m = r;
    if (m == i) break;
    t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
  return top;
}

/* Adds a symbol to the word being built. */
static void sym_add(struct coh__bpe_sym *syms, size_t *n, int32_t id) {
  syms[*n].id = id;
  syms[*n].prev = (int32_t)*n - 1;
  syms[*n].next = -1;
  syms[*n].alive = 1;
  if (*n > 0) syms[*n - 1].next = (int32_t)*n;
  (*n)++;
}

static int reserve(coh__bpe_scratch *s, size_t n) {
  if (n > s->syms_cap) {
    struct coh__bpe_sym *ns = coh__realloc(s->syms, n * sizeof *ns);
    if (ns == NULL) return COH_ENOMEM;
    s->syms = ns;
    s->syms_cap = n;
  }
  /* Each merge pushes at most two items; the initial pairs are n - 1. */
  if (3 * n > s->heap_cap) {
    struct coh__bpe_item *nh = coh__realloc(s->heap, 3 * n * sizeof *nh);
    if (nh == NULL) return COH_ENOMEM;
    s->heap = nh;
    s->heap_cap = 3 * n;
  }
  return COH_OK;
}

int coh__bpe_encode(const coh__bpe *bpe, const char *w, size_t n,
                    coh__bpe_scratch *s, coh__ids *out) {
  size_t i = 0, nsym = 0, nheap = 0;
  int32_t unk_pending = 0; /* 1 while an unk symbol waits to be added */
  struct coh__bpe_sym *syms;
  struct coh__bpe_item *heap;
  if (bpe->kind == COH__MODEL_WORDPIECE)
    return coh__wordpiece_encode(bpe, w, n, out);
  if (bpe->kind == COH__MODEL_UNIGRAM)
    return coh__unigram_encode(bpe, w, n, out);
  if (bpe->kind == COH__MODEL_WORDLEVEL) {
    int32_t id = n ? coh__vocab_get(&bpe->vocab, w, n) : -1;
    if (n == 0) return COH_OK;
    if (id < 0) id = bpe->unk_id;
    if (id >= 0) coh__ids_push(out, id);
    return out->oom ? COH_ENOMEM : COH_OK;
  }
  if (n == 0) return COH_OK;
  if (n > UINT32_MAX / 4) return COH_ENOMEM; /* positions are 32-bit */
  if (bpe->ignore_merges) {
    int32_t id = coh__vocab_get(&bpe->vocab, w, n);
    if (id >= 0) {
      coh__ids_push(out, id);
      return out->oom ? COH_ENOMEM : COH_OK;
    }
  }
  /* At most one symbol per byte (byte fallback) plus nothing else. */
  if (reserve(s, n + 1)) return COH_ENOMEM;
  syms = s->syms;
  heap = s->heap;
  while (i < n) {
    uint32_t cp;
    size_t k = coh__utf8_next(w + i, n - i, &cp);
    const char *tok = w + i;
    size_t tlen = k;
    int32_t id;
    if ((i > 0 && bpe->prefix_len) || (i + k == n && bpe->suffix_len)) {
      s->tmp.n = 0;
      if (i > 0) coh__buf_add(&s->tmp, bpe->prefix, bpe->prefix_len);
      coh__buf_add(&s->tmp, w + i, k);
      if (i + k == n) coh__buf_add(&s->tmp, bpe->suffix, bpe->suffix_len);
      if (s->tmp.oom) return COH_ENOMEM;
      tok = s->tmp.p;
      tlen = s->tmp.n;
    }
    id = coh__vocab_get(&bpe->vocab, tok, tlen);
    if (id >= 0) {
      if (unk_pending) sym_add(syms, &nsym, bpe->unk_id);
      unk_pending = 0;
      sym_add(syms, &nsym, id);
    } else {
      size_t b, ok = bpe->byte_fallback;
      for (b = 0; ok && b < tlen; b++)
        ok = bpe->byte_ids[(unsigned char)tok[b]] >= 0;
      if (ok && tlen <= k) {
        /* HF flushes no pending unk here: a byte-fallback character
         * simply follows it. */
        for (b = 0; b < tlen; b++)
          sym_add(syms, &nsym, bpe->byte_ids[(unsigned char)tok[b]]);
      } else if (ok) {
        /* prefix/suffix made the token longer than the character: the
         * symbol array was sized per byte of w, so grow it first */
        if (reserve(s, nsym + tlen + (n - i) + 1)) return COH_ENOMEM;
        syms = s->syms;
        heap = s->heap;
        for (b = 0; b < tlen; b++)
          sym_add(syms, &nsym, bpe->byte_ids[(unsigned char)tok[b]]);
      } else if (bpe->unk_id >= 0) {
        if (unk_pending && !bpe->fuse_unk) sym_add(syms, &nsym, bpe->unk_id);
        unk_pending = 1;
      }
      /* else: no unk token, the character is dropped */
    }
    i += k;
  }
  if (unk_pending) sym_add(syms, &nsym, bpe->unk_id);
  if (reserve(s, nsym + 1)) return COH_ENOMEM;
  syms = s->syms;
  heap = s->heap;

  for (i = 0; i + 1 < nsym; i++) {
    const coh__merge_slot *m =
        coh__merges_get(&bpe->merges, syms[i].id, syms[i + 1].id);
    if (m) heap_push(heap, &nheap, m->rank, (uint32_t)i);
  }
  while (nheap > 0) {
    struct coh__bpe_item top = heap_pop(heap, &nheap);
    struct coh__bpe_sym *a = &syms[top.pos], *b;
    const coh__merge_slot *m;
    if (!a->alive || a->next < 0) continue;
    b = &syms[a->next];
    m = coh__merges_get(&bpe->merges, a->id, b->id);
    if (m == NULL || m->rank != top.rank) continue; /* stale entry */
    a->id = m->new_id;
    a->next = b->next;
    b->alive = 0;
    if (b->next >= 0) syms[b->next].prev = (int32_t)top.pos;
    if (a->prev >= 0) {
      m = coh__merges_get(&bpe->merges, syms[a->prev].id, a->id);
      if (m) heap_push(heap, &nheap, m->rank, (uint32_t)a->prev);
    }
    if (a->next >= 0) {
      m = coh__merges_get(&bpe->merges, a->id, syms[a->next].id);
      if (m) heap_push(heap, &nheap, m->rank, top.pos);
    }
  }
  for (i = 0; i < nsym; i++)
    if (syms[i].alive) coh__ids_push(out, syms[i].id);
  return out->oom ? COH_ENOMEM : COH_OK;
}
