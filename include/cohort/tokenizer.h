/*
 * cohort/tokenizer.h — Hugging Face tokenizer.json tokenizers.
 *
 * Supported, and compared id for id with HF `tokenizers` (tests/tok_compare.py):
 *   models          BPE — byte-level (GPT-2, Llama-3, Qwen, DeepSeek) and
 *                   SentencePiece-style (Llama-2, Mistral, Gemma: byte
 *                   fallback) — WordPiece (BERT and embedding models),
 *                   Unigram (T5/ALBERT-style; byte fallback, fused unk) and
 *                   WordLevel
 *   normalizers     Sequence, Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD,
 *                   Lowercase, StripAccents, BertNormalizer, ByteLevel
 *                   (Unicode data from libutf8proc), Precompiled
 *                   (SentencePiece's charsmap: T5, ALBERT, XLM-R)
 *   pre-tokenizers  Sequence, ByteLevel, Split (regex with Unicode classes),
 *                   Metaspace, Digits, Whitespace, WhitespaceSplit,
 *                   Punctuation, BertPreTokenizer
 *   decoders        Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip,
 *                   Metaspace, WordPiece
 *   post-processors TemplateProcessing, BertProcessing, RobertaProcessing,
 *                   ByteLevel, Sequence
 * plus added/special tokens.  "truncation" and "padding" are accepted and
 * ignored (coh_tokenizer_notice says so).  Any other component type — for
 * instance the "Nmt" normalizer or the "CTC" decoder — is refused at load
 * time with COH_EUNSUPPORTED naming the type and its JSON path.
 *
 * Example:
 *   coh_err err;
 *   coh_tokenizer *tok;
 *   if (coh_tokenizer_load("tokenizer.json", &tok, &err)) die(err.msg);
 *   int32_t *ids; size_t n;
 *   coh_tokenizer_encode(tok, "Hello", 5, 1, &ids, &n, &err);
 *   ...
 *   coh_free(ids);
 *   coh_tokenizer_free(tok);
 *
 * A loaded tokenizer is immutable: encode/decode may be called from several
 * threads at once.
 */
#ifndef COHORT_TOKENIZER_H
#define COHORT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coh_tokenizer coh_tokenizer;

/* Loads a tokenizer.json file.  *out: caller frees with coh_tokenizer_free.
 * Errors: COH_ENOENT/COH_EIO (file), COH_EFORMAT (bad JSON: line and column;
 * missing or mistyped field: its JSON path), COH_EUNSUPPORTED (a model,
 * normalizer, pre-tokenizer, decoder or post-processor type we do not
 * implement: named; a Prepend/Replace string or an added token longer than
 * 1024 bytes: its JSON path named), COH_EINVAL (not a regular file),
 * COH_ERANGE (a file over 128 MiB), COH_ENOMEM. */
int coh_tokenizer_load(const char *path, coh_tokenizer **out, coh_err *err);

/* Same, from a buffer (borrowed; need not be NUL-terminated).  name is used
 * in error messages only. */
int coh_tokenizer_load_buffer(const char *json, size_t len, const char *name,
                              coh_tokenizer **out, coh_err *err);

void coh_tokenizer_free(coh_tokenizer *tok);

/* Encodes len bytes of text (borrowed; may contain NUL bytes).  Invalid
 * UTF-8 never fails: before anything else, each maximal invalid subsequence
 * (Unicode's "best practice", as Rust's String::from_utf8_lossy: a lone
 * 0xFF, a truncated E2 82, each byte of a surrogate ED A0 80) is replaced by
 * U+FFFD, which is then encoded like any other character — through byte
 * fallback (<0xEF><0xBF><0xBD>) or the byte-level alphabet — so decode gives
 * back the repaired text.  A character that is neither in the vocab nor
 * covered by byte fallback becomes the model's unk token, or is dropped if
 * the model has none.  add_special: apply the post-processor (e.g. prepend
 * BOS).  *ids: caller frees with coh_free (NULL-safe; *n_ids may be 0).
 * Errors: COH_ENOMEM; COH_ERANGE when the normalizer or the pre-tokenizer
 * makes the text longer than 16 times its input plus 4096 bytes (a
 * Sequence of Replaces can multiply text without limit; the message names
 * the component). */
int coh_tokenizer_encode(const coh_tokenizer *tok, const char *text,
                         size_t len, int add_special, int32_t **ids,
                         size_t *n_ids, coh_err *err);

/* Decodes ids to UTF-8 text (NUL-terminated; *len excludes the NUL; len may
 * be NULL).  The text is always valid UTF-8: byte sequences that decode to
 * invalid UTF-8 become U+FFFD, as in HF.  skip_special: drop special tokens
 * (HF's default for decode is to skip them).  Ids out of range: COH_ERANGE
 * naming the id and its position, *text NULL.  *text: caller frees with
 * coh_free.  Errors: COH_ERANGE (also when the decoder makes the text
 * longer than 16 times the tokens' bytes plus 4096), COH_ENOMEM. */
int coh_tokenizer_decode(const coh_tokenizer *tok, const int32_t *ids,
                         size_t n_ids, int skip_special, char **text,
                         size_t *len, coh_err *err);

/* A one-line note about settings in the file that cohort accepted but
 * ignores (today: "truncation" and "padding", which are batching policy,
 * not tokenization), naming the file; NULL when there is none.  Borrowed:
 * valid until coh_tokenizer_free.  The CLI prints it once on stderr. */
const char *coh_tokenizer_notice(const coh_tokenizer *tok);

/* Number of ids (model vocab plus added tokens; the largest id + 1). */
size_t coh_tokenizer_vocab_size(const coh_tokenizer *tok);

/* Id of a token string (exact vocab or added-token content), or -1. */
int32_t coh_tokenizer_token_id(const coh_tokenizer *tok, const char *token);

/* Whether id is a special added token (e.g. <s>, </s>, <|endoftext|>). */
int coh_tokenizer_is_special(const coh_tokenizer *tok, int32_t id);

/* The exact bytes token id contributes to decoded text, for constrained
 * decoding: the byte-level alphabet mapped back to bytes, SentencePiece's
 * U+2581 to a space, a <0xNN> byte-fallback token to that byte; an added
 * token's content as is (coh_tokenizer_is_special tells special ones).  A
 * decoder's Strip of the text's first space is not applied (it depends on
 * the position).  buf: cap bytes, at least the token string's length;
 * when cap is too small, COH_ERANGE with *len set to the size needed.
 * Errors: COH_ERANGE (id out of range, *len 0; or cap too small). */
int coh_tokenizer_token_bytes(const coh_tokenizer *tok, int32_t id, char *buf,
                              size_t cap, size_t *len, coh_err *err);

/* Frees memory that a cohort function returned with "caller frees with
 * coh_free". */
void coh_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_TOKENIZER_H */
