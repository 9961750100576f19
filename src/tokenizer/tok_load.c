/* tok_load.c — reading tokenizer.json into an immutable coh_tokenizer, and
 * the small accessors (vocab size, token ids, special flags). */
#include <stdio.h>
#include <string.h>

#include "tokenizer_int.h"

/* GPT-2's byte-level alphabet: printable bytes stand for themselves, the
 * others for U+0100.. in byte order, so that every byte is a visible
 * character in vocab files. */
static void build_byte_alphabet(coh_tokenizer *tok) {
  unsigned b, extra = 0;
  for (b = 0; b < 256; b++) {
    uint32_t cp;
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
                    (b >= 0xAE && b <= 0xFF);
    cp = printable ? b : 256 + extra++;
    /* encode by hand: the buffer helper would allocate */
    if (cp < 0x80) {
      tok->byte_chars[b][0] = (char)cp;
      tok->byte_chars[b][1] = '\0';
    } else {
      tok->byte_chars[b][0] = (char)(0xC0 | (cp >> 6));
      tok->byte_chars[b][1] = (char)(0x80 | (cp & 0x3F));
      tok->byte_chars[b][2] = '\0';
    }
    tok->char_byte[cp] = (uint16_t)(b + 1);
  }
}

/* Parses an optional component ("normalizer", ...): absent or null means
 * none. */
static json_t *component(json_t *root, const char *key) {
  json_t *j = json_object_get(root, key);
  return (j == NULL || json_is_null(j)) ? NULL : j;
}

static int load_root(coh_tokenizer *tok, json_t *root, coh_err *err) {
  json_t *j, *model;
  size_t i, max_id;
  int rc;
  if (!json_is_object(root))
    return coh__err(err, COH_EFORMAT, "(top level): expected an object");
  /* Truncation and padding are batching policy, not tokenization: cohort
   * manages context itself, so they are ignored and the fact is reported
   * once, through coh_tokenizer_notice. */
  tok->ignored_truncation = component(root, "truncation") != NULL;
  tok->ignored_padding = component(root, "padding") != NULL;
  rc = coh__json_member(root, "", "model", &model, err);
  if (!rc) rc = coh__bpe_parse(model, &tok->bpe, err);
  if (rc) return rc;
  if ((j = component(root, "normalizer")) != NULL) {
    tok->has_norm = 1;
    rc = coh__normalizer_parse(j, "normalizer", &tok->norm, err);
    if (rc) return rc;
  }
  if ((j = component(root, "pre_tokenizer")) != NULL) {
    tok->has_pre = 1;
    rc = coh__pretok_parse(j, "pre_tokenizer", &tok->pre, err);
    if (rc) return rc;
  }
  if ((j = component(root, "post_processor")) != NULL) {
    tok->has_post = 1;
    rc = coh__post_parse(j, "post_processor", &tok->post, err);
    if (rc) return rc;
  }
  if ((j = component(root, "decoder")) != NULL) {
    tok->has_dec = 1;
    rc = coh__decoder_parse(j, "decoder", &tok->dec, err);
    if (rc) return rc;
  }
  rc = coh__added_parse(json_object_get(root, "added_tokens"), &tok->added,
                        err);
  if (!rc)
    rc = coh__added_build(&tok->added, tok->has_norm ? &tok->norm : NULL,
                          err);
  if (rc) return rc;

  max_id = tok->bpe.n_ids;
  for (i = 0; i < tok->added.n; i++)
    if ((size_t)tok->added.tok[i].id + 1 > max_id)
      max_id = (size_t)tok->added.tok[i].id + 1;
  /* ids index arrays: refuse absurd gaps rather than allocate gigabytes */
  if (max_id > tok->bpe.n_ids + 16 * tok->added.n + 1024)
    return coh__err(err, COH_EFORMAT,
                    "added_tokens: ids are too sparse (largest %zu, model "
                    "vocab %zu)",
                    max_id - 1, tok->bpe.n_ids);
  tok->n_ids = max_id;
  tok->added_of_id = coh__malloc((max_id + 1) * sizeof *tok->added_of_id);
  if (tok->added_of_id == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  for (i = 0; i < max_id; i++) tok->added_of_id[i] = -1;
  for (i = 0; i < tok->added.n; i++)
    tok->added_of_id[tok->added.tok[i].id] = (int32_t)i;
  /* Every id a post-processor inserts must decode. */
  if (tok->has_post) {
    const coh__post *stack[64];
    size_t sp = 0;
    stack[sp++] = &tok->post;
    while (sp > 0) {
      const coh__post *p = stack[--sp];
      for (i = 0; i < p->n_kids && sp < 64; i++) stack[sp++] = &p->kids[i];
      for (i = 0; i < p->n_pre + p->n_post; i++) {
        int32_t id = i < p->n_pre ? p->pre[i] : p->post[i - p->n_pre];
        if (coh__token_str(tok, id, NULL) == NULL)
          return coh__err(err, COH_EFORMAT,
                          "post_processor: special id %ld is not in the "
                          "vocabulary",
                          (long)id);
      }
    }
  }
  return COH_OK;
}

int coh_tokenizer_load_buffer(const char *json, size_t len, const char *name,
                              coh_tokenizer **out, coh_err *err) {
  json_error_t jerr;
  json_t *root;
  coh_tokenizer *tok;
  int rc;
  *out = NULL;
  if (name == NULL) name = "tokenizer.json";
  root = json_loadb(json, len, 0, &jerr);
  if (root == NULL)
    return coh__err(err, COH_EFORMAT, "%s:%d:%d: invalid JSON: %s", name,
                    jerr.line, jerr.column, jerr.text);
  tok = coh__calloc(1, sizeof *tok);
  if (tok == NULL) {
    json_decref(root);
    return coh__err(err, COH_ENOMEM, "%s: out of memory", name);
  }
  build_byte_alphabet(tok);
  rc = load_root(tok, root, err);
  json_decref(root);
  if (rc == COH_OK && (tok->ignored_truncation || tok->ignored_padding)) {
    int both = tok->ignored_truncation && tok->ignored_padding;
    snprintf(tok->notice, sizeof tok->notice,
             "%s: %s ignored (cohort neither truncates nor pads; it manages "
             "context itself)",
             name,
             both ? "truncation and padding are"
                  : tok->ignored_truncation ? "truncation is" : "padding is");
  }
  if (rc) {
    coh__err_prefix(err, "%s", name);
    coh_tokenizer_free(tok);
    return rc;
  }
  *out = tok;
  return COH_OK;
}

int coh_tokenizer_load(const char *path, coh_tokenizer **out, coh_err *err) {
  char *buf;
  size_t len;
  int rc;
  *out = NULL;
  rc = coh__read_file_max(path, COH__TOK_FILE_MAX, &buf, &len, err);
  if (rc) return rc;
  rc = coh_tokenizer_load_buffer(buf, len, path, out, err);
  coh__free(buf);
  return rc;
}

void coh_tokenizer_free(coh_tokenizer *tok) {
  if (tok == NULL) return;
  coh__bpe_free(&tok->bpe);
  coh__added_free(&tok->added);
  coh__normalizer_free(&tok->norm);
  coh__pretok_free(&tok->pre);
  coh__decoder_free(&tok->dec);
  coh__post_free(&tok->post);
  coh__free(tok->added_of_id);
  coh__free(tok);
}

const char *coh__token_str(const coh_tokenizer *tok, int32_t id,
                           size_t *len) {
  int32_t a;
  if (id < 0 || (size_t)id >= tok->n_ids) return NULL;
  a = tok->added_of_id[id];
  if (a >= 0) {
    if (len) *len = tok->added.tok[a].len;
    return tok->added.tok[a].content;
  }
  if ((size_t)id < tok->bpe.n_ids && tok->bpe.id_to_tok[id] != NULL) {
    if (len) *len = tok->bpe.tok_len[id];
    return tok->bpe.id_to_tok[id];
  }
  return NULL;
}

const char *coh_tokenizer_notice(const coh_tokenizer *tok) {
  return tok->notice[0] != '\0' ? tok->notice : NULL;
}

size_t coh_tokenizer_vocab_size(const coh_tokenizer *tok) {
  return tok->n_ids;
}

int32_t coh_tokenizer_token_id(const coh_tokenizer *tok, const char *token) {
  size_t i, n = strlen(token);
  /* added tokens first, as HF's token_to_id */
  for (i = 0; i < tok->added.n; i++)
    if (tok->added.tok[i].len == n && !memcmp(tok->added.tok[i].content,
                                              token, n))
      return tok->added.tok[i].id;
  return coh__vocab_get(&tok->bpe.vocab, token, n);
}

int coh_tokenizer_is_special(const coh_tokenizer *tok, int32_t id) {
  int32_t a;
  if (id < 0 || (size_t)id >= tok->n_ids) return 0;
  a = tok->added_of_id[id];
  return a >= 0 && tok->added.tok[a].special;
}
