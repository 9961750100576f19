/*
 * tok_bytes.c — coh_tokenizer_token_bytes: the bytes one token contributes
 * to decoded text, for constrained decoding (src/grammar/ builds its token
 * trie from them).
 */
#include <string.h>

#include "tokenizer/tokenizer_int.h"

/* Walks the decoder tree for the steps that change a token's bytes. */
static void dec_flags(const coh__decoder *d, int *bytelevel, int *fallback,
                      int *space) {
  size_t i;
  switch (d->type) {
    case COH__DEC_SEQUENCE:
      for (i = 0; i < d->n_kids; i++)
        dec_flags(&d->kids[i], bytelevel, fallback, space);
      break;
    case COH__DEC_BYTELEVEL: *bytelevel = 1; break;
    case COH__DEC_BYTEFALLBACK: *fallback = 1; break;
    case COH__DEC_METASPACE:
    case COH__DEC_REPLACE: *space = 1; break;
    default: break;
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int coh_tokenizer_token_bytes(const coh_tokenizer *tok, int32_t id, char *buf,
                              size_t cap, size_t *len, coh_err *err) {
  size_t n, k = 0, o = 0;
  const char *s = coh__token_str(tok, id, &n);
  int bytelevel = 0, fallback = 0, space = 0;
  *len = 0;
  if (s == NULL)
    return coh__err(err, COH_ERANGE,
                    "token_bytes: id %ld is out of range (vocab size %zu)",
                    (long)id, tok->n_ids);
  if (cap < n) {
    *len = n;
    return coh__err(err, COH_ERANGE,
                    "token_bytes: id %ld needs up to %zu bytes, buffer has "
                    "%zu",
                    (long)id, n, cap);
  }
  if (tok->has_dec) dec_flags(&tok->dec, &bytelevel, &fallback, &space);
  if (tok->added_of_id[id] >= 0) { /* added tokens are not decoded */
    memcpy(buf, s, n);
    *len = n;
    return COH_OK;
  }
  if (fallback && n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' &&
      hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
    buf[0] = (char)(hexval(s[3]) * 16 + hexval(s[4]));
    *len = 1;
    return COH_OK;
  }
  while (k < n) {
    uint32_t cp;
    size_t l = coh__utf8_next(s + k, n - k, &cp);
    if (bytelevel && cp < 324 && tok->char_byte[cp] != 0)
      buf[o++] = (char)(tok->char_byte[cp] - 1);
    else if (space && cp == 0x2581)
      buf[o++] = ' ';
    else
      memcpy(buf + o, s + k, l), o += l;
    k += l;
  }
  *len = o;
  return COH_OK;
}
