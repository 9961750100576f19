/*
 * gram_int.h — internals of the grammar module (constrained decoding).
 *
 * A grammar is a context-free grammar over bytes: rules with alternatives,
 * each a sequence of elements that are a byte class (a 256-bit set) or a
 * reference to a rule.  Regular constructs (JSON strings, numbers, regex
 * patterns, formats, repetition) are compiled into the same form through
 * the builder; the parser is a pushdown automaton over byte classes (a set
 * of stacks, for ambiguity), with tail calls folded so that loops keep a
 * constant stack.
 *
 * Files, one job each:
 *   gram_build.c   the builder (rules, classes, repetition, UTF-8 ranges),
 *                  finalize (flatten, productivity, left recursion checks)
 *   gram_regex.c   the regex subset for `pattern` and formats
 *   gram_ebnf.c    the EBNF/GBNF text format
 *   gram_schema.c  JSON Schema and any-JSON-object
 *   gram_state.c   vocabulary trie, parse states, masks
 */
#ifndef COH_GRAM_INT_H
#define COH_GRAM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/grammar.h"
#include "util/util_int.h"

/* Bounds (docs/grammar.md). */
#define COH__GRAM_MAX_RULES 200000
#define COH__GRAM_MAX_ELEMS 2000000
#define COH__GRAM_MAX_REPEAT 2000 /* {m,n} / minLength...: m, n <= this */
#define COH__GRAM_MAX_STACKS 1024 /* live stacks in one state */
#define COH__GRAM_MAX_DEPTH 4096  /* nesting of one stack */

/* An element while building: >= 0 a rule reference, else -(class + 1);
 * COH__G_END ends an alternative. */
#define COH__G_END INT32_MIN

typedef struct coh__gbr {
  int32_t *e; /* alternatives, each terminated by COH__G_END */
  size_t n, cap;
  char name[64];
} coh__gbr;

typedef struct coh__cls {
  uint32_t w[8];
} coh__cls;

typedef struct coh__gb {
  coh__gbr *rules;
  size_t n_rules, cap_rules;
  coh__cls *cls;
  size_t n_cls, cap_cls;
  int oom;
  int too_big;
  int32_t str_loop; /* the JSON string-content loop rule, or -1 (set 0
                       means none: the builder zero-initializes, so the
                       schema compiler stores rule + 1) */
  int32_t chr_rule; /* the JSON string character rule + 1, 0 if none */
} coh__gb;

/* Runtime element: kind in the top 2 bits, payload below. */
#define COH__E_CLS 0u
#define COH__E_REF 1u
#define COH__E_END 2u
#define COH__E_KIND(e) ((e) >> 30)
#define COH__E_VAL(e) ((e)&0x3fffffffu)

struct coh_grammar {
  uint32_t *elems;   /* all alternatives of all rules, END-terminated */
  size_t n_elems;
  uint32_t *alt_off; /* rule r's alternatives: alts[alt_off[r]..alt_off[r+1]) */
  uint32_t *alts;    /* start index in elems of each alternative */
  size_t n_rules;
  coh__cls *cls;
  size_t n_cls;
  uint32_t root;
  /* per position: 1 = first element of an alternative of the JSON string
   * loop (between characters), 2 = the closing quote after that loop;
   * NULL when the grammar has no such loop.  A state whose every top is
   * so marked accepts every "string-safe" token (gram_state.c). */
  uint8_t *pflag;
  /* per position (with pflag): 1 when the position is the first element
   * of an alternative of the string loop or of the character rule, and
   * that rule has the shape "one character, then (loop) the rule itself
   * or (character) the end": from a stack there, every string-safe
   * character leads to the same positions (the char-count fast path,
   * gram_state.c).  NULL when there is no such rule. */
  uint8_t *centry;
  /* per class: 1 when it holds no byte that can start a string-safe
   * character (0x20-0x7F but '"' and '\\', 0xC2-0xF4) */
  uint8_t *cinert;
  /* per class: 1 when it holds every byte of A (the string-safe ASCII
   * bytes: 0x20-0x7E but '"' and '\\'), 2 when it holds none of them, 0
   * otherwise.  From stacks whose tops are all at classes 1 or 2, every
   * byte of A leads to the same positions (the ASCII chain, gram_state.c). */
  uint8_t *cauni;
};

void coh__gb_free(coh__gb *b);
/* A new empty rule; -1 when out of memory / too big (b->oom, b->too_big). */
int32_t coh__gb_rule(coh__gb *b, const char *name);
/* Appends element e (rule ref, class, or COH__G_END) to rule r. */
void coh__gb_push(coh__gb *b, int32_t r, int32_t e);
/* A class element (interned). */
int32_t coh__gb_cls(coh__gb *b, const coh__cls *c);
int32_t coh__gb_byte(coh__gb *b, unsigned char c);
int32_t coh__gb_range(coh__gb *b, unsigned char lo, unsigned char hi);
/* Appends the bytes of s as class elements. */
void coh__gb_lit(coh__gb *b, int32_t r, const char *s, size_t n);
/* A rule matching one alternative that is a single element sequence e[0..n). */
int32_t coh__gb_seq(coh__gb *b, const int32_t *e, size_t n);
/* Rules for repetition of element x: x{lo,hi} (hi < 0: unbounded). */
int32_t coh__gb_repeat(coh__gb *b, int32_t x, long lo, long hi);
/* A rule for code points in [lo, hi] (UTF-8), surrogates excluded. */
int32_t coh__gb_cp_range(coh__gb *b, uint32_t lo, uint32_t hi);
/* A rule for a set of code point ranges (sorted or not, merged here),
 * negated if neg. */
int32_t coh__gb_cp_set(coh__gb *b, const uint32_t *ranges, size_t n_pairs,
                       int neg);
/* Flattens into a grammar with root rule; checks every rule reachable from
 * root is productive (derives some string: unproductive alternatives are
 * dropped) and that there is no left recursion.  what: the name for
 * errors.  b is freed. */
int coh__gb_finish(coh__gb *b, int32_t root, const char *what,
                   coh_grammar **out, coh_err *err);

/* Regex subset (gram_regex.c): compiles pattern src into a rule of b
 * matching the whole pattern (anchored=1, as JSON Schema's pattern is
 * searched: an unanchored start/end adds .* there).  err names where. */
int coh__gram_regex(coh__gb *b, const char *src, size_t n, const char *where,
                    int32_t *rule, coh_err *err);



/* Tests: a shortest byte string completing state s (from its first stack;
 * empty when s accepts).  COH_EINVAL when s has no stack and does not
 * accept (never, if the invariant holds), COH_ERANGE past cap. */
/* Tests: nonzero makes the mask the straightforward trie walk: no mask
 * cache, no string-safe or char-count fast paths, no byte-union cut (the
 * masks must not change). */
extern int coh__grammar_slow_masks;

int coh__grammar_state_shortest(const coh_grammar_state *s, char *buf,
                                size_t cap, size_t *len);
#endif
