/* tok_precompiled.c — the SentencePiece "Precompiled" normalizer of T5,
 * ALBERT, XLM-R, mBART and Marian files.
 *
 * precompiled_charsmap is standard base64 of SentencePiece's compiled
 * normalization rules:
 *
 *   u32 LE  trie_bytes       size of the trie, a multiple of 4
 *   u32 LE  unit[trie_bytes/4]   a darts-clone double-array trie whose keys
 *                            are UTF-8 strings and whose values are byte
 *                            offsets into the table below
 *   bytes   table            the replacements, each ended by a NUL
 *
 * A darts-clone unit packs: bits 0-7 the label (the byte that leads to
 * this node; bit 31 set on value units, so they never equal a byte), bit 8
 * "has a leaf" (a key ends here; the value sits in the unit at this node's
 * child offset), bits 10-30 the offset to the children, scaled by 256 when
 * bit 9 is set.  A value unit's bits 0-30 are the value.  Walking byte c
 * from node p: q = p ^ offset(unit[p]) ^ c is the child when label(unit[q])
 * is c.
 *
 * HF (the spm_precompiled crate) applies it grapheme by grapheme: a
 * grapheme cluster of fewer than 6 bytes for which some prefix is a key is
 * replaced, whole, by the replacement of the SHORTEST such prefix (the
 * first common-prefix-search result; what follows that prefix inside the
 * grapheme is dropped).  Otherwise each character is replaced on its own in
 * the same way, or kept.  The search stops at a NUL byte, as darts-clone.
 * Grapheme clusters come from libutf8proc (extended clusters, UAX #29).
 *
 * Bounds: the decoded charsmap is at most COH__TOK_CHARSMAP_MAX bytes, and
 * the table must be valid UTF-8 (checked at load, errors name the field).
 * A walk reads at most 5 key bytes, each unit index checked against the
 * trie's size; a value outside the table, or inside a character, counts as
 * no match (a corrupt blob cannot read out of bounds; HF would panic). */
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_int.h"

struct coh__charsmap {
  uint32_t *unit;
  size_t n_units;
  char *table; /* n_table bytes plus a NUL */
  size_t n_table;
};

/* ---- base64 --------------------------------------------------------------- */

static int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decodes standard, padded base64 (as HF reads it) into a new buffer.
 * Returns 0, or -1 on a character outside the alphabet, bad padding or a
 * length that is not a multiple of 4, -2 when out of memory. */
static int b64_decode(const char *s, size_t n, unsigned char **out,
                      size_t *out_len) {
  size_t i, o = 0, pad = 0;
  unsigned char *p;
  *out = NULL;
  *out_len = 0;
  if (n % 4 != 0) return -1;
  if (n > 0 && s[n - 1] == '=') pad++;
  if (n > 1 && s[n - 2] == '=') pad++;
  p = coh__malloc(n / 4 * 3 + 1);
  if (p == NULL) return -2;
  for (i = 0; i < n; i += 4) {
    int v[4], k;
    uint32_t w;
    for (k = 0; k < 4; k++) {
      int last = i + 4 == n;
      if (last && s[i + k] == '=' && k >= 4 - (int)pad) {
        v[k] = 0;
        continue;
      }
      v[k] = b64_val((unsigned char)s[i + k]);
      if (v[k] < 0) {
        coh__free(p);
        return -1;
      }
    }
    w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
        (uint32_t)v[3];
    p[o++] = (unsigned char)(w >> 16);
    p[o++] = (unsigned char)(w >> 8);
    p[o++] = (unsigned char)w;
  }
  o -= pad;
  /* the bits that padding leaves over must be zero (canonical base64, as
   * HF's decoder requires) */
  if ((pad == 1 && p[o] != 0) || (pad == 2 && (p[o] != 0 || p[o + 1] != 0))) {
    coh__free(p);
    return -1;
  }
  *out = p;
  *out_len = o;
  return 0;
}

/* ---- load ----------------------------------------------------------------- */

static int utf8_valid_all(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t k = coh__utf8_valid_len(s + i, n - i);
    if (k == 0) return 0;
    i += k;
  }
  return 1;
}

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

int coh__charsmap_parse(const char *b64, size_t n, const char *path,
                        coh__charsmap **out, coh_err *err) {
  unsigned char *raw = NULL;
  size_t len, trie_bytes, i, off;
  coh__charsmap *m = NULL;
  int rc;
  *out = NULL;
  if (n > COH__TOK_CHARSMAP_MAX / 3 * 4 + 4)
    return coh__err(err, COH_EFORMAT,
                    "%s.precompiled_charsmap: %zu bytes of base64, more "
                    "than the %d-byte limit decoded",
                    path, n, COH__TOK_CHARSMAP_MAX);
  rc = b64_decode(b64, n, &raw, &len);
  if (rc == -2) return coh__err(err, COH_ENOMEM, "out of memory");
  if (rc)
    return coh__err(err, COH_EFORMAT,
                    "%s.precompiled_charsmap: not valid base64", path);
  rc = COH_EFORMAT;
  if (len < 4) {
    coh__err(err, rc, "%s.precompiled_charsmap: %zu bytes, shorter than "
             "its 4-byte trie size", path, len);
    goto done;
  }
  trie_bytes = le32(raw);
  if (trie_bytes % 4 != 0 || trie_bytes == 0 || trie_bytes > len - 4) {
    coh__err(err, rc, "%s.precompiled_charsmap: trie size %zu is not a "
             "non-zero multiple of 4 within the %zu bytes that follow",
             path, trie_bytes, len - 4);
    goto done;
  }
  off = 4 + trie_bytes;
  if (!utf8_valid_all(raw + off, len - off)) {
    coh__err(err, rc, "%s.precompiled_charsmap: its replacement table "
             "(bytes %zu..%zu) is not valid UTF-8", path, off, len);
    goto done;
  }
  rc = COH_ENOMEM;
  m = coh__calloc(1, sizeof *m);
  if (m == NULL) goto oom;
  m->n_units = trie_bytes / 4;
  m->unit = coh__malloc(m->n_units * sizeof *m->unit);
  m->n_table = len - off;
  m->table = coh__malloc(m->n_table + 1);
  if (m->unit == NULL || m->table == NULL) goto oom;
  for (i = 0; i < m->n_units; i++) m->unit[i] = le32(raw + 4 + 4 * i);
  memcpy(m->table, raw + off, m->n_table);
  m->table[m->n_table] = '\0';
  *out = m;
  m = NULL;
  rc = COH_OK;
  goto done;
oom:
  coh__err(err, COH_ENOMEM, "out of memory");
done:
  coh__charsmap_free(m);
  coh__free(raw);
  return rc;
}

void coh__charsmap_free(coh__charsmap *m) {
  if (m == NULL) return;
  coh__free(m->unit);
  coh__free(m->table);
  coh__free(m);
}

/* ---- lookup --------------------------------------------------------------- */

static uint32_t unit_offset(uint32_t u) {
  return (u >> 10) << ((u & (1u << 9)) >> 6);
}

/* The replacement for the shortest key that is a prefix of s[0..n), or
 * NULL when none is (*len: its length). */
static const char *lookup(const coh__charsmap *m, const char *s, size_t n,
                          size_t *len) {
  size_t pos, i;
  uint32_t u;
  if (m->n_units == 0) return NULL;
  pos = unit_offset(m->unit[0]);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    size_t v;
    if (c == 0) return NULL;
    pos ^= c;
    if (pos >= m->n_units) return NULL;
    u = m->unit[pos];
    if ((u & ((1u << 31) | 0xFFu)) != c) return NULL;
    /* the children's base may only be read when a key ends here (a valid
     * trie keeps every child inside the array; darts-clone allocates whole
     * 256-unit blocks) */
    pos ^= unit_offset(u);
    if (!((u >> 8) & 1)) continue;
    if (pos >= m->n_units) return NULL;
    v = m->unit[pos] & 0x7FFFFFFFu;
    /* a corrupt value: outside the table or inside a character */
    if (v >= m->n_table || ((unsigned char)m->table[v] & 0xC0) == 0x80)
      return NULL;
    *len = strlen(m->table + v); /* the table ends with a NUL */
    return m->table + v;
  }
  return NULL;
}

/* Appends the normalization of one character or grapheme g[0..n). */
static void map_one(const coh__charsmap *m, const char *g, size_t n,
                    coh__buf *out) {
  size_t rl;
  const char *r = lookup(m, g, n, &rl);
  if (r != NULL) coh__buf_add(out, r, rl);
  else coh__buf_add(out, g, n);
}

/* One grapheme cluster g[0..n) (valid UTF-8). */
static void map_grapheme(const coh__charsmap *m, const char *g, size_t n,
                         coh__buf *out) {
  size_t i = 0, rl;
  if (n < 6) {
    const char *r = lookup(m, g, n, &rl);
    if (r != NULL) {
      coh__buf_add(out, r, rl);
      return;
    }
  }
  while (i < n) {
    uint32_t cp;
    size_t k = coh__utf8_next(g + i, n - i, &cp);
    map_one(m, g + i, k, out);
    i += k;
  }
}

int coh__charsmap_apply(const coh__charsmap *m, const char *s, size_t n,
                        coh__buf *out, size_t max) {
  size_t start = 0, i = 0;
  utf8proc_int32_t state = 0;
  uint32_t prev = 0;
  while (i < n) {
    uint32_t cp;
    size_t k = coh__utf8_next(s + i, n - i, &cp);
    if (i > start &&
        utf8proc_grapheme_break_stateful((utf8proc_int32_t)prev,
                                         (utf8proc_int32_t)cp, &state)) {
      map_grapheme(m, s + start, i - start, out);
      if (out->oom) return COH_ENOMEM;
      if (out->n > max) return COH_ERANGE;
      start = i;
    }
    prev = cp;
    i += k;
  }
  if (i > start) map_grapheme(m, s + start, i - start, out);
  if (out->oom) return COH_ENOMEM;
  if (out->n > max) return COH_ERANGE;
  return COH_OK;
}
