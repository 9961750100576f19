/* tok_added.c — added tokens (special or not): parsed from
 * "added_tokens", matched in the text before the model runs.
 *
 * Matching is leftmost-longest and non-overlapping (HF uses an
 * Aho-Corasick automaton with that match kind); a byte trie walked from
 * each start position gives the same matches.  Tokens with normalized=false
 * are matched on the raw input, the others (with their content normalized)
 * on the normalized pieces. */
#include <string.h>

#include "tokenizer_int.h"

struct coh__trie_edge {
  uint32_t node; /* parent node; UINT32_MAX: empty slot */
  uint32_t child;
  unsigned char byte;
};

static uint64_t edge_hash(uint32_t node, unsigned char byte) {
  uint64_t x = ((uint64_t)node << 8) | byte;
  x *= 0x9e3779b97f4a7c15ull;
  return x ^ (x >> 29);
}

static void trie_free(coh__trie *t) {
  coh__free(t->edges);
  coh__free(t->term);
  memset(t, 0, sizeof *t);
}

static int trie_init(coh__trie *t, size_t bytes) {
  size_t cap = 16, i;
  memset(t, 0, sizeof *t);
  while (cap < 2 * bytes + 2) cap *= 2;
  t->edges = coh__malloc(cap * sizeof *t->edges);
  t->nodes_cap = bytes + 1;
  t->term = coh__malloc(t->nodes_cap * sizeof *t->term);
  if (t->edges == NULL || t->term == NULL) return COH_ENOMEM;
  for (i = 0; i < cap; i++) t->edges[i].node = UINT32_MAX;
  t->edge_mask = cap - 1;
  t->n_nodes = 1;
  t->term[0] = -1;
  return COH_OK;
}

static int64_t trie_child(const coh__trie *t, uint32_t node,
                          unsigned char byte) {
  size_t i = (size_t)edge_hash(node, byte) & t->edge_mask;
  for (;;) {
    const struct coh__trie_edge *e = &t->edges[i];
    if (e->node == UINT32_MAX) return -1;
    if (e->node == node && e->byte == byte) return e->child;
    i = (i + 1) & t->edge_mask;
  }
}

/* Inserts s; the trie was sized for the total bytes of all keys, so it never
 * grows.  A repeated key keeps its first token. */
static void trie_insert(coh__trie *t, const char *s, size_t n, int32_t tok) {
  uint32_t node = 0;
  size_t k;
  if (n == 0) return;
  for (k = 0; k < n; k++) {
    unsigned char b = (unsigned char)s[k];
    int64_t c = trie_child(t, node, b);
    if (c < 0) {
      size_t i = (size_t)edge_hash(node, b) & t->edge_mask;
      while (t->edges[i].node != UINT32_MAX) i = (i + 1) & t->edge_mask;
      t->edges[i].node = node;
      t->edges[i].byte = b;
      t->edges[i].child = (uint32_t)t->n_nodes;
      t->term[t->n_nodes] = -1;
      c = (int64_t)t->n_nodes++;
    }
    node = (uint32_t)c;
  }
  if (t->term[node] < 0) t->term[node] = tok;
}

int coh__added_parse(json_t *arr, coh__added *a, coh_err *err) {
  size_t i;
  int rc;
  memset(a, 0, sizeof *a);
  if (arr == NULL || json_is_null(arr)) return COH_OK;
  if (!json_is_array(arr))
    return coh__err(err, COH_EFORMAT, "added_tokens: expected an array");
  a->tok = coh__calloc(json_array_size(arr) + 1, sizeof *a->tok);
  if (a->tok == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  for (i = 0; i < json_array_size(arr); i++) {
    json_t *o = json_array_get(arr, i);
    char path[COH__PATH_MAX];
    coh__added_token *t = &a->tok[i];
    const char *content;
    size_t len;
    int64_t id;
    coh__path_index(path, "added_tokens", i);
    if (!json_is_object(o))
      return coh__err(err, COH_EFORMAT, "%s: expected an object", path);
    rc = coh__json_int(o, path, "id", 0, INT32_MAX - 2, &id, err);
    if (!rc) rc = coh__json_string(o, path, "content", &content, &len, err);
    if (!rc) rc = coh__tok_check_len(path, "content", len, err);
    if (!rc) rc = coh__json_opt_bool(o, path, "special", &t->special, err);
    t->normalized = !t->special;
    if (!rc)
      rc = coh__json_opt_bool(o, path, "single_word", &t->single_word, err);
    if (!rc) rc = coh__json_opt_bool(o, path, "lstrip", &t->lstrip, err);
    if (!rc) rc = coh__json_opt_bool(o, path, "rstrip", &t->rstrip, err);
    if (!rc)
      rc = coh__json_opt_bool(o, path, "normalized", &t->normalized, err);
    if (rc) return rc;
    t->content = coh__malloc(len + 1);
    if (t->content == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    memcpy(t->content, content, len + 1);
    t->len = len;
    t->id = (int32_t)id;
    a->n = i + 1;
  }
  return COH_OK;
}

int coh__added_build(coh__added *a, const coh__normalizer *nz, coh_err *err) {
  coh__buf *normed = NULL;
  size_t i, raw_bytes = 0, norm_bytes = 0;
  int rc = COH_OK, need_word = 0;
  if (a->n == 0) return COH_OK;
  normed = coh__calloc(a->n, sizeof *normed);
  if (normed == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  for (i = 0; i < a->n; i++) {
    coh__added_token *t = &a->tok[i];
    need_word |= t->single_word;
    if (!t->normalized) {
      raw_bytes += t->len;
      continue;
    }
    if (nz != NULL) {
      rc = coh__normalize(nz, t->content, t->len, &normed[i]);
      if (rc == COH_ERANGE) {
        char path[COH__PATH_MAX];
        coh__path_index(path, "added_tokens", i);
        rc = coh__err(err, COH_EFORMAT,
                      "%s.content: the normalizer turns its %zu bytes into "
                      "more than %zu; expected at most %d times the input "
                      "plus %d bytes",
                      path, t->len, coh__tok_out_max(t->len),
                      COH__TOK_GROWTH, COH__TOK_SLACK);
        goto fail_msg;
      }
      if (rc) goto fail;
    } else {
      coh__buf_add(&normed[i], t->content, t->len);
      if (normed[i].oom) {
        rc = COH_ENOMEM;
        goto fail;
      }
    }
    norm_bytes += normed[i].n;
  }
  if (trie_init(&a->raw, raw_bytes) || trie_init(&a->norm, norm_bytes)) {
    rc = COH_ENOMEM;
    goto fail;
  }
  for (i = 0; i < a->n; i++) {
    if (!a->tok[i].normalized) {
      trie_insert(&a->raw, a->tok[i].content, a->tok[i].len, (int32_t)i);
      a->has_raw |= a->tok[i].len > 0;
    } else {
      trie_insert(&a->norm, normed[i].p, normed[i].n, (int32_t)i);
      a->has_norm |= normed[i].n > 0;
    }
  }
  if (need_word) {
    int ec;
    PCRE2_SIZE eo;
    /* Rust's char::is_alphanumeric, approximated by letters and numbers */
    a->word_re = pcre2_compile((PCRE2_SPTR) "[\\p{L}\\p{N}_]",
                               PCRE2_ZERO_TERMINATED,
                               PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &ec,
                               &eo, NULL);
    if (a->word_re == NULL) rc = COH_ENOMEM;
  }
fail:
  if (rc) rc = coh__err(err, rc, "added_tokens: out of memory");
fail_msg:
  for (i = 0; i < a->n; i++) coh__buf_free(&normed[i]);
  coh__free(normed);
  return rc;
}

void coh__added_free(coh__added *a) {
  size_t i;
  for (i = 0; i < a->n; i++) coh__free(a->tok[i].content);
  coh__free(a->tok);
  trie_free(&a->raw);
  trie_free(&a->norm);
  if (a->word_re) pcre2_code_free(a->word_re);
  memset(a, 0, sizeof *a);
}

/* Whether the character at s[pos] (or before it, if before) is a word
 * character. */
static int is_word_char(const coh__added *a, pcre2_match_data *md,
                        const char *s, size_t n, size_t pos) {
  if (md == NULL) return 0;
  return pcre2_match(a->word_re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK,
                     md, NULL) >= 0;
}

int coh__added_split(const coh__added *a, const coh__trie *t, const char *s,
                     size_t n, size_t base, coh__spans *out) {
  size_t pos = 0, start_off = 0;
  pcre2_match_data *md = NULL;
  if (t->n_nodes <= 1 || n == 0) {
    if (n) coh__spans_push(out, base, base + n, -1);
    return out->oom ? COH_ENOMEM : COH_OK;
  }
  if (a->word_re) {
    md = pcre2_match_data_create(1, NULL);
    if (md == NULL) return COH_ENOMEM;
  }
  while (pos < n) {
    uint32_t node = 0;
    size_t k, end = 0, start, stop;
    int32_t best = -1;
    const coh__added_token *tok;
    for (k = pos; k < n; k++) {
      int64_t c = trie_child(t, node, (unsigned char)s[k]);
      if (c < 0) break;
      node = (uint32_t)c;
      if (t->term[node] >= 0) {
        best = t->term[node];
        end = k + 1;
      }
    }
    if (best < 0) {
      pos++;
      continue;
    }
    tok = &a->tok[best];
    start = pos;
    stop = end;
    pos = end; /* the next search starts after this match, kept or not */
    if (start < start_off) continue; /* inside a previous rstrip: skip */
    if (tok->single_word) {
      int before = start > 0 &&
                   is_word_char(a, md, s, n,
                                start - coh__utf8_prev_len(s, start));
      int after = stop < n && is_word_char(a, md, s, n, stop);
      if (before || after) continue;
    }
    if (tok->lstrip) {
      while (start > start_off) {
        uint32_t cp;
        size_t pl = coh__utf8_prev_len(s, start);
        coh__utf8_next(s + start - pl, pl, &cp);
        if (!coh__is_whitespace(cp)) break;
        start -= pl;
      }
    }
    if (tok->rstrip) {
      while (stop < n) {
        uint32_t cp;
        size_t nl = coh__utf8_next(s + stop, n - stop, &cp);
        if (!coh__is_whitespace(cp)) break;
        stop += nl;
      }
    }
    if (start_off < start) coh__spans_push(out, base + start_off, base + start, -1);
    coh__spans_push(out, base + start, base + stop, tok->id);
    start_off = stop;
  }
  if (start_off < n) coh__spans_push(out, base + start_off, base + n, -1);
  if (md) pcre2_match_data_free(md);
  return out->oom ? COH_ENOMEM : COH_OK;
}
