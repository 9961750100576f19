/*
 * tokenizer_int.h — internals of the tokenizer module.
 *
 * The pipeline follows Hugging Face `tokenizers` (the reference the test
 * cases were produced with):
 *
 *   text ─► UTF-8 repair ─► added tokens (non-normalized) split out
 *        ─► normalizer (per remaining piece) ─► added tokens (normalized)
 *        ─► pre-tokenizer (pieces → words) ─► BPE model (word → ids)
 *        ─► post-processor (add_special only)
 *
 *   ids ─► token strings (added vocab first, then model) ─► decoder chain
 *       ─► concatenation
 *
 * Files, one job each:
 *   tok_util.c      UTF-8 helpers, growable buffers, span and id lists
 *   tok_table.c     hash tables: string→id vocab, (id,id)→merge
 *   tok_pattern.c   literal and PCRE2 patterns, match finding
 *   tok_json.c      JSON field access with error paths
 *   tok_normalize.c normalizers (Unicode forms and case through libutf8proc)
 *   tok_precompiled.c the SentencePiece Precompiled normalizer (charsmap)
 *   tok_pretok.c    pre-tokenizers
 *   tok_bpe.c       the BPE model (load + encode one word)
 *   tok_wordpiece.c the WordPiece and WordLevel models
 *   tok_unigram.c   the Unigram model
 *   tok_added.c     added tokens: trie, leftmost-longest split
 *   tok_decode.c    decoders and coh_tokenizer_decode
 *   tok_post.c      post-processors
 *   tok_load.c      tokenizer.json loading, accessors, free
 *   tok_encode.c    coh_tokenizer_encode
 *
 * A loaded tokenizer is never written after load; every encode/decode works
 * in call-local buffers (PCRE2 match data included), so concurrent calls are
 * safe.
 */
#ifndef COH_TOKENIZER_INT_H
#define COH_TOKENIZER_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "cohort/tokenizer.h"
#include "util/util_int.h"

/* coh__buf (growable byte buffer) lives in util/util_int.h. */

/* ---- bounds on work (docs/reliability.md, "Bounds on input") --------------
 * A tokenizer.json comes from a stranger, and the text it is given from
 * another.  At load, every string the file asks to insert into text
 * (Prepend's prepend, Replace's content in normalizers and decoders) and
 * every added token's content is at most COH__TOK_STR_MAX bytes, and the
 * file at most COH__TOK_FILE_MAX.  Insertions compose — each Replace of a
 * Sequence multiplies the text again — so at run time the text that a
 * normalizer, a pre-tokenizer or a decoder chain produces, at any step, is
 * at most coh__tok_out_max(input bytes): COH__TOK_GROWTH times its input
 * plus COH__TOK_SLACK.  Real tokenizers stay under 4 times (Metaspace turns
 * a 1-byte space into a 3-byte U+2581).  Past the bound the step stops and
 * encode/decode fail with COH_ERANGE naming the component. */
#define COH__TOK_STR_MAX 1024
#define COH__TOK_GROWTH 16
#define COH__TOK_SLACK 4096
#define COH__TOK_FILE_MAX ((size_t)128 << 20)
/* WordPiece and Unigram try every vocab piece length at each position of a
 * word, hashing the candidate each time: their pieces are at most
 * COH__TOK_PIECE_MAX bytes (real ones stay under 100), so one position
 * costs at most about 32 K bytes of hashing. */
#define COH__TOK_PIECE_MAX 256
/* The decoded precompiled_charsmap of a Precompiled normalizer (real ones,
 * T5's and XLM-R's, are about 240 KB). */
#define COH__TOK_CHARSMAP_MAX (4 << 20)

static inline size_t coh__tok_out_max(size_t n) {
  if (n > (SIZE_MAX - COH__TOK_SLACK) / COH__TOK_GROWTH) return SIZE_MAX;
  return n * COH__TOK_GROWTH + COH__TOK_SLACK;
}

/* COH_EFORMAT naming path.key when a string field is longer than
 * COH__TOK_STR_MAX bytes. */
int coh__tok_check_len(const char *path, const char *key, size_t len,
                       coh_err *err);

/* ---- span list: [start, end) byte ranges plus a per-span value ---------- */
typedef struct coh__span {
  size_t start, end;
  int32_t val; /* meaning depends on the user: added-token id or -1, ... */
} coh__span;

typedef struct coh__spans {
  coh__span *v;
  size_t n, cap;
  int oom;
} coh__spans;

void coh__spans_free(coh__spans *s);
void coh__spans_push(coh__spans *s, size_t start, size_t end, int32_t val);

/* ---- id list ------------------------------------------------------------ */
typedef struct coh__ids {
  int32_t *v;
  size_t n, cap;
  int oom;
} coh__ids;

void coh__ids_free(coh__ids *l);
void coh__ids_push(coh__ids *l, int32_t id);

/* ---- UTF-8 ---------------------------------------------------------------
 * Length of the valid UTF-8 sequence at s[0..n), 0 if it is not one. */
size_t coh__utf8_valid_len(const unsigned char *s, size_t n);
/* Decodes one code point from valid UTF-8 (caller guarantees validity);
 * returns its length. */
size_t coh__utf8_next(const char *s, size_t n, uint32_t *cp);
/* Length of the code point before s[pos] (valid UTF-8). */
size_t coh__utf8_prev_len(const char *s, size_t pos);
/* Replaces each maximal invalid subsequence (Unicode's recommended practice,
 * the same as Rust's String::from_utf8_lossy) by U+FFFD, appending to out.
 * Returns 1 when the input was valid (then out received an exact copy). */
int coh__utf8_repair(const char *s, size_t n, coh__buf *out);
/* Unicode White_Space property. */
int coh__is_whitespace(uint32_t cp);
/* Punctuation as HF's BERT code sees it: ASCII punctuation or general
 * category P* (libutf8proc's tables). */
int coh__is_punct(uint32_t cp);
/* The byte-level alphabet's stand-in code point for byte b (GPT-2). */
uint32_t coh__byte_level_cp(unsigned b);

/* ---- hash tables -----------------------------------------------------------
 * Open addressing, keys compared by content: iteration order is never used,
 * so results do not depend on hashing. */
typedef struct coh__vocab_slot {
  const char *key; /* points into the owning arena */
  uint32_t len;
  int32_t id; /* -1: empty slot */
} coh__vocab_slot;

typedef struct coh__vocab {
  coh__vocab_slot *slots;
  size_t mask, count;
} coh__vocab;

int coh__vocab_init(coh__vocab *v, size_t expected);
void coh__vocab_free(coh__vocab *v);
/* Inserts or overwrites key (borrowed: must outlive the table). */
int coh__vocab_put(coh__vocab *v, const char *key, size_t len, int32_t id);
int32_t coh__vocab_get(const coh__vocab *v, const char *key, size_t len);

typedef struct coh__merge_slot {
  uint64_t pair; /* (left << 32) | right; UINT64_MAX: empty */
  uint32_t rank;
  int32_t new_id;
} coh__merge_slot;

typedef struct coh__merges {
  coh__merge_slot *slots;
  size_t mask, count;
} coh__merges;

int coh__merges_init(coh__merges *m, size_t expected);
void coh__merges_free(coh__merges *m);
int coh__merges_put(coh__merges *m, int32_t a, int32_t b, uint32_t rank,
                    int32_t new_id);
/* The merge slot for (a, b), or NULL. */
const coh__merge_slot *coh__merges_get(const coh__merges *m, int32_t a,
                                       int32_t b);

/* ---- patterns ------------------------------------------------------------- */
typedef struct coh__pattern {
  char *lit; /* literal pattern (non-NULL for {"String": ...}) */
  size_t lit_len;
  pcre2_code *re; /* regex pattern (non-NULL for {"Regex": ...}) */
  int jit;        /* pcre2_jit_compile succeeded */
} coh__pattern;

/* Parses {"String": s} or {"Regex": r} at path.  Regexes are compiled with
 * PCRE2_UTF | PCRE2_UCP (Unicode classes, as HF's Oniguruma). */
int coh__pattern_parse(json_t *j, const char *path, coh__pattern *p,
                       coh_err *err);
/* Compiles a regex given as source text. */
int coh__pattern_regex(const char *src, const char *path, coh__pattern *p,
                       coh_err *err);
void coh__pattern_free(coh__pattern *p);
/* Appends every non-overlapping match in s[0..n) (valid UTF-8) to out, left
 * to right, as spans with val 1.  Empty regex matches are reported and the
 * search resumes one character later.  If the regex engine gives up (match
 * limit on a pathological pattern), the rest of the text is treated as not
 * matching: the result is still defined.  Errors: COH_ENOMEM. */
int coh__pattern_find(const coh__pattern *p, const char *s, size_t n,
                      coh__spans *out);

/* ---- JSON helpers (tok_json.c) --------------------------------------------
 * Every getter names the field by its JSON path in errors ("model.vocab"),
 * returning COH_EFORMAT for missing or mistyped fields. */
#define COH__PATH_MAX 256
/* Writes "parent.key" (or "key" if parent is empty) into out. */
void coh__path_key(char *out, const char *parent, const char *key);
/* Writes "parent[i]" into out. */
void coh__path_index(char *out, const char *parent, size_t i);
/* Required member of an object; COH_EFORMAT if missing. */
int coh__json_member(json_t *obj, const char *parent, const char *key,
                     json_t **out, coh_err *err);
/* Parses the array member obj[key] (required) element by element with
 * parse(element, "parent.key[i]", &items[i], err) into a new array of
 * elem_size-byte items.  *items: the owner frees it (and its elements);
 * *n counts the elements handed to parse, also after a failure, so that
 * the caller's cleanup frees exactly those.  Used for every "Sequence". */
typedef int (*coh__parse_fn)(json_t *j, const char *path, void *out,
                             coh_err *err);
int coh__json_parse_list(json_t *obj, const char *parent, const char *key,
                         size_t elem_size, coh__parse_fn parse, void **items,
                         size_t *n, coh_err *err);
/* Typed members.  `opt` variants leave *out untouched when the member is
 * absent or null. */
int coh__json_string(json_t *obj, const char *parent, const char *key,
                     const char **out, size_t *len, coh_err *err);
/* The code point of a string member that holds exactly one character
 * (Metaspace's replacement, Strip's content); COH_EFORMAT otherwise. */
int coh__json_char(json_t *obj, const char *parent, const char *key,
                   uint32_t *out, coh_err *err);
int coh__json_opt_string(json_t *obj, const char *parent, const char *key,
                         const char **out, size_t *len, coh_err *err);
int coh__json_opt_bool(json_t *obj, const char *parent, const char *key,
                       int *out, coh_err *err);
int coh__json_int(json_t *obj, const char *parent, const char *key,
                  int64_t lo, int64_t hi, int64_t *out, coh_err *err);
int coh__json_opt_int(json_t *obj, const char *parent, const char *key,
                      int64_t lo, int64_t hi, int64_t *out, coh_err *err);
/* The "type" member of a component object; COH_EFORMAT if not an object or
 * no string "type". */
int coh__json_type(json_t *obj, const char *path, const char **type,
                   coh_err *err);

/* ---- normalizers ---------------------------------------------------------- */
enum {
  COH__NORM_SEQUENCE,
  COH__NORM_PREPEND,
  COH__NORM_REPLACE,
  COH__NORM_STRIP,
  COH__NORM_NFC,
  COH__NORM_NFD,
  COH__NORM_NFKC,
  COH__NORM_NFKD,
  COH__NORM_LOWERCASE,
  COH__NORM_STRIP_ACCENTS,
  COH__NORM_BERT,
  COH__NORM_BYTELEVEL,
  COH__NORM_PRECOMPILED
};

/* SentencePiece's precompiled_charsmap (tok_precompiled.c). */
typedef struct coh__charsmap coh__charsmap;
/* Decodes and checks the base64 blob b64[0..n) of path.precompiled_charsmap;
 * errors name that field (COH_EFORMAT) or COH_ENOMEM. */
int coh__charsmap_parse(const char *b64, size_t n, const char *path,
                        coh__charsmap **out, coh_err *err);
void coh__charsmap_free(coh__charsmap *m);
/* Appends the normalization of s[0..n) (valid UTF-8) to out, grapheme by
 * grapheme as HF.  Errors: COH_ENOMEM, COH_ERANGE (out passed max bytes). */
int coh__charsmap_apply(const coh__charsmap *m, const char *s, size_t n,
                        coh__buf *out, size_t max);

typedef struct coh__normalizer {
  int type;
  struct coh__normalizer *kids;
  size_t n_kids;
  char *str; /* Prepend: prepend; Replace: content */
  size_t str_len;
  coh__pattern pat; /* Replace */
  int strip_left, strip_right;
  /* BertNormalizer; strip_accents -1: follow lowercase (HF's None) */
  int clean_text, chinese_chars, strip_accents, lowercase;
  coh__charsmap *charsmap; /* Precompiled */
} coh__normalizer;

int coh__normalizer_parse(json_t *j, const char *path, coh__normalizer *n,
                          coh_err *err);
void coh__normalizer_free(coh__normalizer *n);
/* Normalizes s[0..n) into out (cleared first).  Errors: COH_ENOMEM,
 * COH_ERANGE (the text grew past coh__tok_out_max(n)). */
int coh__normalize(const coh__normalizer *nz, const char *s, size_t n,
                   coh__buf *out);

/* ---- pre-tokenizers ------------------------------------------------------ */
enum {
  COH__PRE_SEQUENCE,
  COH__PRE_BYTELEVEL,
  COH__PRE_SPLIT,
  COH__PRE_METASPACE,
  COH__PRE_DIGITS,
  COH__PRE_WHITESPACE,
  COH__PRE_WHITESPACE_SPLIT,
  COH__PRE_PUNCTUATION,
  COH__PRE_BERT
};

/* SplitDelimiterBehavior */
enum {
  COH__SPLIT_REMOVED,
  COH__SPLIT_ISOLATED,
  COH__SPLIT_MERGED_PREV,
  COH__SPLIT_MERGED_NEXT,
  COH__SPLIT_CONTIGUOUS
};

typedef struct coh__pretok {
  int type;
  struct coh__pretok *kids;
  size_t n_kids;
  coh__pattern pat; /* Split, ByteLevel (use_regex), Whitespace */
  int use_pat;
  int behavior, invert;
  int add_prefix_space; /* ByteLevel */
  uint32_t replacement; /* Metaspace */
  int prepend_scheme;   /* Metaspace: 0 always, 1 first, 2 never */
  int split;            /* Metaspace */
  int individual_digits;
} coh__pretok;

/* A list of pieces of text, each a span into `text` (val: 1 when the piece
 * starts at offset 0 of the original input, for Metaspace "first"). */
typedef struct coh__pieces {
  coh__buf text;
  coh__spans spans;
} coh__pieces;

void coh__pieces_free(coh__pieces *p);
void coh__pieces_clear(coh__pieces *p);

int coh__pretok_parse(json_t *j, const char *path, coh__pretok *p,
                      coh_err *err);
void coh__pretok_free(coh__pretok *p);
/* Pre-tokenizes pieces `in` into `out` (cleared first).  byte_chars: the
 * byte-level alphabet (byte → UTF-8 of its stand-in character).  Errors:
 * COH_ENOMEM, COH_ERANGE (the text grew past coh__tok_out_max of the
 * input's bytes). */
int coh__pretokenize(const coh__pretok *pt, const coh__pieces *in,
                     coh__pieces *out, const char byte_chars[256][4]);

/* ---- the model: BPE or WordPiece (tok_bpe.c, tok_wordpiece.c) ------------ */
enum {
  COH__MODEL_BPE,
  COH__MODEL_WORDPIECE,
  COH__MODEL_UNIGRAM,
  COH__MODEL_WORDLEVEL
};

typedef struct coh__bpe {
  int kind;           /* COH__MODEL_* */
  size_t max_chars;   /* WordPiece: max_input_chars_per_word */
  size_t max_tok_len; /* WordPiece, Unigram: longest vocab entry, bytes */
  double *scores;     /* Unigram: id → log probability */
  double unk_score;   /* Unigram: lowest score minus 10 */
  coh__vocab vocab;   /* token → id */
  char **id_to_tok;   /* id → token (NUL-terminated), NULL for gaps */
  uint32_t *tok_len;  /* id → token length */
  size_t n_ids;       /* largest model id + 1 */
  char *arena;        /* all token strings */
  coh__merges merges; /* (a, b) → rank, merged id */
  int32_t unk_id;     /* -1: no unk token */
  int fuse_unk, byte_fallback, ignore_merges;
  char *prefix; /* continuing_subword_prefix or NULL */
  size_t prefix_len;
  char *suffix; /* end_of_word_suffix or NULL */
  size_t suffix_len;
  int32_t byte_ids[256]; /* <0xXX> ids for byte fallback, -1 if absent */
} coh__bpe;

/* Scratch memory for BPE, reused across words of one encode call. */
typedef struct coh__bpe_scratch {
  struct coh__bpe_sym *syms;
  size_t syms_cap;
  struct coh__bpe_item *heap;
  size_t heap_cap;
  coh__buf tmp;
} coh__bpe_scratch;

int coh__bpe_parse(json_t *model, coh__bpe *bpe, coh_err *err);
/* Loads the vocab object model.vocab into bpe (shared by the models). */
int coh__model_load_vocab(json_t *model, coh__bpe *bpe, coh_err *err);
/* WordPiece: parse (type already checked) and encode one word, as HF's
 * greedy longest-match-first with continuing_subword_prefix; a word longer
 * than max_input_chars_per_word, or with a piece not in the vocab, becomes
 * one unk token (dropped when the model has none). */
int coh__wordpiece_parse(json_t *model, coh__bpe *wp, coh_err *err);
int coh__wordpiece_encode(const coh__bpe *wp, const char *w, size_t n,
                          coh__ids *out);
/* WordLevel: a word is its vocab id, or the unk token (dropped when the
 * vocab lacks it).  Parsed by the WordPiece code (same fields). */
int coh__wordlevel_parse(json_t *model, coh__bpe *wl, coh_err *err);
/* Unigram (SentencePiece's model, T5/ALBERT): parse (type checked) and
 * encode one word by HF's Viterbi search over the vocab's pieces, unknown
 * characters fused into one unk piece, then byte fallback or unk for a
 * piece outside the vocab. */
int coh__unigram_parse(json_t *model, coh__bpe *ug, coh_err *err);
int coh__unigram_encode(const coh__bpe *ug, const char *w, size_t n,
                        coh__ids *out);
void coh__bpe_free(coh__bpe *bpe);
void coh__bpe_scratch_free(coh__bpe_scratch *s);
/* Appends the ids of word w[0..n) (valid UTF-8) to out.  Characters that
 * are neither in the vocab nor covered by byte fallback become the unk token,
 * or are dropped when the model has none.  Errors: COH_ENOMEM. */
int coh__bpe_encode(const coh__bpe *bpe, const char *w, size_t n,
                    coh__bpe_scratch *scratch, coh__ids *out);

/* ---- added tokens --------------------------------------------------------- */
typedef struct coh__added_token {
  char *content;
  size_t len;
  int32_t id;
  int special, single_word, lstrip, rstrip, normalized;
} coh__added_token;

/* A byte trie; children found through a hash of (node, byte). */
typedef struct coh__trie {
  struct coh__trie_edge *edges;
  size_t edge_mask, n_edges;
  int32_t *term; /* node → added-token index, -1 */
  size_t n_nodes, nodes_cap;
} coh__trie;

typedef struct coh__added {
  coh__added_token *tok;
  size_t n;
  coh__trie raw;  /* tokens with normalized=false, matched on input */
  coh__trie norm; /* normalized=true, content normalized, on pieces */
  int has_raw, has_norm;
  pcre2_code *word_re; /* one alphanumeric character, for single_word */
} coh__added;

int coh__added_parse(json_t *arr, coh__added *a, coh_err *err);
/* Builds both tries (normalized contents through nz, which may be NULL). */
int coh__added_build(coh__added *a, const coh__normalizer *nz, coh_err *err);
void coh__added_free(coh__added *a);
/* Splits s[0..n) around matches of the trie (leftmost-longest, honouring
 * single_word/lstrip/rstrip).  Appends spans (offsets relative to s, plus
 * `base`) with val = token id for matches and -1 for text between. */
int coh__added_split(const coh__added *a, const coh__trie *t, const char *s,
                     size_t n, size_t base, coh__spans *out);

/* ---- decoders ------------------------------------------------------------- */
enum {
  COH__DEC_SEQUENCE,
  COH__DEC_BYTELEVEL,
  COH__DEC_REPLACE,
  COH__DEC_BYTEFALLBACK,
  COH__DEC_FUSE,
  COH__DEC_STRIP,
  COH__DEC_METASPACE,
  COH__DEC_WORDPIECE
};

typedef struct coh__decoder {
  int type;
  struct coh__decoder *kids;
  size_t n_kids;
  coh__pattern pat; /* Replace */
  char *str;        /* Replace content */
  size_t str_len;
  uint32_t ch; /* Strip content / Metaspace replacement */
  size_t start, stop;
  int prepend_scheme; /* Metaspace */
  int cleanup;        /* WordPiece */
} coh__decoder;

int coh__decoder_parse(json_t *j, const char *path, coh__decoder *d,
                       coh_err *err);
void coh__decoder_free(coh__decoder *d);
/* Runs the decoder over a token list (pieces) in place.  Errors:
 * COH_ENOMEM, COH_ERANGE (the text grew past coh__tok_out_max of the
 * tokens' bytes). */
int coh__decode_chain(const coh__decoder *d, coh__pieces *toks,
                      const uint16_t *char_byte);

/* ---- post-processors ------------------------------------------------------ */
enum {
  COH__POST_SEQUENCE,
  COH__POST_BYTELEVEL,
  COH__POST_TEMPLATE,
  COH__POST_BERT /* also RobertaProcessing: [cls] A [sep] */
};

typedef struct coh__post {
  int type;
  struct coh__post *kids;
  size_t n_kids;
  /* TemplateProcessing "single" (and Bert/Roberta): ids before and after
   * the sequence. */
  int32_t *pre, *post;
  size_t n_pre, n_post;
} coh__post;

int coh__post_parse(json_t *j, const char *path, coh__post *p, coh_err *err);
void coh__post_free(coh__post *p);
/* Applies the post-processor to ids (in place). */
int coh__post_apply(const coh__post *p, coh__ids *ids);

/* ---- the tokenizer -------------------------------------------------------- */
struct coh_tokenizer {
  coh__bpe bpe;
  coh__added added;
  coh__normalizer norm;
  int has_norm;
  coh__pretok pre;
  int has_pre;
  coh__decoder dec;
  int has_dec;
  coh__post post;
  int has_post;
  size_t n_ids;        /* max id + 1 over model and added tokens */
  int32_t *added_of_id; /* id → added-token index or -1 (n_ids entries) */
  /* Byte-level alphabet: byte → UTF-8 stand-in (NUL-terminated), and the
   * stand-in code point (< 324) → byte + 1 (0: not a stand-in). */
  char byte_chars[256][4];
  uint16_t char_byte[324];
  /* What the file asked for that cohort ignores (coh_tokenizer_notice), or
   * "" */
  char notice[512];
  int ignored_truncation, ignored_padding;
};

/* The token string of id (added token first, then model), or NULL. */
const char *coh__token_str(const coh_tokenizer *tok, int32_t id,
                           size_t *len);

#endif /* COH_TOKENIZER_INT_H */
